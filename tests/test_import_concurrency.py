"""Several `ckptdb import` processes at once into one database, the same ids in each: every outcome
each one reports must be what the database holds afterwards.

Three directories hold the same 1,000 ids under the same names (so the three imports walk them in
the same order, batch by batch, and meet on the same ids at the same time); a third of the ids
have the same content in every directory, the others a different content in each, and every
tenth id has a second file in each directory (the same id twice in one batch). The three
imports run as real subprocesses of the command as users run it, several trials on each engine,
and afterwards every line of every report is checked against the final rows:

- `imported`: this file's row is the one stored (its `source` is this file, its content this
  file's), and no other import of the trial claims the id;
- `unchanged`: the stored content is this file's, and the row came from another file;
- `conflict`: the stored content differs (kept), or, with `--on-conflict replace`, this file's
  row replaced it; with `--on-conflict fail` the import stops there, its batch not written;
- a file whose report does not say it was written is never the source of a row.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import new_db_target
from helpers.db import is_postgres, stored_rows

from ckptdb import Checkpoint
from ckptdb.importer import canonical_json
from ckptdb.sql.rows import from_row

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import gen_echo  # noqa: E402

IDS = 1000
COPIES = IDS // 10
IMPORTS = 3
TRIALS = 3
BATCH = 20  # many batches, so many chances for two imports to read an id before either writes it


@pytest.fixture(scope="module")
def source_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("overlap")
    rng = gen_echo.make_rng("overlap")
    bases = [gen_echo.build_checkpoint(rng, state_bytes=300) for _ in range(IDS)]
    dirs = []
    for k in range(IMPORTS):
        directory = root / f"src{k}"
        directory.mkdir()
        for i, base in enumerate(bases):
            checkpoint = Checkpoint.from_json(base.to_json())
            if i % 3:  # two thirds differ between directories, one third is the same everywhere
                checkpoint.step_count = base.step_count + 1000 * (k + 1)
            (directory / f"{base.id}.json").write_text(checkpoint.to_json(), encoding="utf-8")
            if i % 10 == 5:  # a copy, read just before the original, in the same batch
                (directory / f"{base.id}.copy.json").write_text(checkpoint.to_json(), encoding="utf-8")
        dirs.append(directory)
    return dirs


def _import(db: str, directory: Path, report: Path, *flags: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "ckptdb", "--db", db, "import", str(directory), "-q"]
    args += ["--batch-size", str(BATCH), "--report", str(report), *flags]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _has_open(pid: int, path: str) -> bool:
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    return True
    return False


def _waiting_writers(conn: Any) -> int:
    found = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE c.relname = 'checkpoints' AND NOT l.granted"
    ).fetchone()
    return int(found[0])


@contextlib.contextmanager
def _writes_held(db: str) -> Iterator[Any]:
    """Hold the database's write lock while the imports start, so that they all read their first
    batch before any of them can write it; yields `release(procs)`, which lets the writes go once
    every import waits for them (PostgreSQL shows waiting locks; on SQLite, once each process has
    opened the database file, the best an outsider can see)."""
    if is_postgres(db):
        import psycopg

        holder: Any = psycopg.connect(db)
        holder.execute("LOCK TABLE checkpoints IN EXCLUSIVE MODE")  # reads go on, writes wait

        def ready(procs: list[subprocess.Popen[str]]) -> bool:
            return _waiting_writers(holder) >= len(procs)

    else:
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")

        def ready(procs: list[subprocess.Popen[str]]) -> bool:
            return all(_has_open(proc.pid, db) for proc in procs)

    def release(procs: list[subprocess.Popen[str]]) -> None:
        deadline = time.monotonic() + 120
        while not ready(procs):
            for proc in procs:
                assert proc.poll() is None, f"an import ended early: {proc.communicate()}"
            assert time.monotonic() < deadline, "the imports never reached the database"
            time.sleep(0.01)
        holder.rollback() if is_postgres(db) else holder.execute("ROLLBACK")

    try:
        yield release
    finally:
        holder.close()


def _canonical_file(path: str) -> str:
    return canonical_json(Checkpoint.from_json(Path(path).read_bytes()))


def _check_trial(db: str, reports: list[dict[str, Any]], on_conflict: str) -> list[str]:
    """Every report line against the final rows; returns what is wrong, one line each."""
    rows = {row[0]: row for row in stored_rows(db)}
    kept = on_conflict != "replace"  # skip and fail never overwrite: every outcome must still hold
    content = {cid: canonical_json(from_row(row[:11])) for cid, row in rows.items()}
    wrong: list[str] = []
    claimed: Counter[str] = Counter()
    wrote: set[str] = set()
    for report in reports:
        for entry in report["files"]:
            path, cid, outcome, reason = entry["path"], entry["id"], entry["outcome"], entry["reason"]
            here = f"{path}: {outcome} ({reason})"
            if cid not in rows:
                wrong.append(f"{here}, but id {cid} is not stored")
                continue
            same = _canonical_file(path) == content[cid]
            source = rows[cid][11]
            replaced = outcome == "conflict" and "replaced by this file" in (reason or "")
            if outcome == "imported":
                claimed[cid] += 1
                wrote.add(path)
                if kept and (source != path or not same):
                    wrong.append(f"{here}, but the stored row came from {source}")
            elif replaced:
                wrote.add(path)
            elif outcome == "unchanged":
                if kept and not same:
                    wrong.append(f"{here}, but the stored content differs (from {source})")
                if source == path:
                    wrong.append(f"{here}, but this file's row is the one stored")
            elif outcome == "conflict":
                if kept and same:
                    wrong.append(f"{here}, but the stored content is this file's (from {source})")
                if source == path:
                    wrong.append(f"{here}, but this file's row is the one stored")
            else:
                wrong.append(f"{here}: unexpected outcome")
    for cid, count in claimed.items():
        if count != 1:
            wrong.append(f"id {cid}: {count} imports say they imported it")
    for cid, row in rows.items():
        if row[11] not in wrote:
            wrong.append(f"id {cid}: stored from {row[11]}, which no report says it wrote")
    return wrong


@pytest.mark.parametrize("on_conflict", ["skip", "replace", "fail"])
def test_concurrent_imports_report_what_the_database_holds(
    tmp_path: Path, source_dirs: list[Path], engine: str, on_conflict: str
) -> None:
    for trial in range(TRIALS):
        db = new_db_target(engine, tmp_path, f"trial{trial}.db")
        made = subprocess.run(
            [sys.executable, "-m", "ckptdb", "--db", db, "db", "upgrade"], capture_output=True, text=True
        )
        assert made.returncode == 0, made.stderr
        paths = [tmp_path / f"trial{trial}-r{k}.json" for k in range(IMPORTS)]
        flags = ("--on-conflict", on_conflict)
        with _writes_held(db) as release:
            procs = [_import(db, source_dirs[k], paths[k], *flags) for k in range(IMPORTS)]
            release(procs)
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode in ((0, 3, 4) if on_conflict == "fail" else (0, 3)), err
            assert err == "", err  # one summary line on stdout, nothing else
        reports = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
        wrong = _check_trial(db, reports, on_conflict)
        assert not wrong, f"trial {trial}: {len(wrong)} outcomes are not what is stored:\n" + "\n".join(
            wrong[:10]
        )
        for report in reports:
            summary = report["summary"]
            conflicts = [entry for entry in report["files"] if entry["outcome"] == "conflict"]
            if on_conflict == "fail":  # the first conflict stops the import, whenever it is found
                assert conflicts in ([], report["files"][-1:]), conflicts[:2]
            if summary["status"] == "stopped-on-conflict":  # only with fail: at its first conflict
                assert on_conflict == "fail"
                last = report["files"][-1]
                assert (last["path"], last["outcome"]) == (summary["stopped_at"], "conflict")
                assert "stopped here (--on-conflict fail)" in last["reason"]
                continue
            assert summary["status"] == "completed"
            assert summary["files"] == IDS + COPIES == len(report["files"])
        if on_conflict != "fail":
            assert sum(report["summary"]["imported"] for report in reports) == IDS
