"""`ckptdb langgraph import`: a real graph's database written by LangGraph's SQLite or PostgreSQL
saver (a subgraph with an interrupt() approval, parallel branches, threads left waiting) imported
into ckptdb on both engines, read back as the old saver reads it, resumed in a new process on
AsyncCkptdbSaver exactly as the old saver resumes, re-run after a kill, and the source never
changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import PG, PG_SKIP, PG_SKIP_REASON, new_db_target
from helpers import langgraph_graphs as lg

pytest.importorskip("langgraph.graph", reason="needs the langgraphtest extra")

from ckptdb.langgraph import AsyncCkptdbSaver
from ckptdb.langgraph_import import Outcome, run_langgraph_import

HELPERS = Path(__file__).resolve().parent / "helpers"
SOURCES = [
    pytest.param("sqlite", id="from-sqlite"),
    pytest.param("postgres", id="from-postgres", marks=pytest.mark.postgres),
]


@contextmanager
def _source(kind: str, directory: Path) -> Iterator[str]:
    """A fresh source written by the official saver running the real graph."""
    if kind == "sqlite":
        path = directory / "langgraph.sqlite"
        lg.write_sqlite(path)
        yield str(path)
        return
    if PG_SKIP:
        pytest.skip(PG_SKIP_REASON)
    url = PG.acquire(migrated=False, keep=True)
    try:
        lg.write_postgres(url)
        yield url
    finally:
        PG.give_back(url, migrated=False)


def _fingerprint(source: str) -> str:
    """Every byte the source holds (SQLite: the files of the database; PostgreSQL: every row)."""
    digest = hashlib.sha256()
    if source.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(source) as conn:
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"):
                for row in sorted(repr(r) for r in conn.execute(f"SELECT * FROM {table}")):
                    digest.update(row.encode())
        return digest.hexdigest()
    for path in sorted(Path(source).parent.iterdir()):
        if path.name.startswith(Path(source).name):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _rows(target: str) -> dict[str, list[Any]]:
    """Every row of ckptdb's LangGraph tables, sorted (blobs as bytes)."""

    async def read() -> dict[str, list[Any]]:
        async with AsyncCkptdbSaver.from_conn_string(target) as saver:
            found = {}
            for table in ("langgraph_checkpoints", "langgraph_values", "langgraph_items", "langgraph_writes"):
                rows = await saver.store.backend.fetchall(f"SELECT * FROM {table}")
                found[table] = sorted(
                    (tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows), key=repr
                )
            return found

    import asyncio

    return asyncio.run(read())


def _cli(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", target, "langgraph", "import", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _official_tuples(source: str, directory: Path) -> list[Any]:
    """Every checkpoint as the official saver reads it (SQLite: from a copy, its setup() writes)."""
    if source.startswith("postgresql://"):
        opened = lg.postgres_saver(source, setup=False)
    else:
        copy = directory / "official-copy.sqlite"
        shutil.copy(source, copy)
        opened = lg.sqlite_saver(copy)
    with opened as saver:
        return [_plain(t) for t in saver.list(None)]


def _plain(t: Any) -> Any:
    writes = sorted((task, channel, repr(value)) for task, channel, value in t.pending_writes or [])
    return (t.config["configurable"], t.parent_config, t.checkpoint, t.metadata, writes)


async def _ckptdb_tuples(target: str) -> list[Any]:
    async with AsyncCkptdbSaver.from_conn_string(target) as saver:
        return [_plain(t) async for t in saver.alist(None)]


def _sort(tuples: list[Any]) -> list[Any]:
    return sorted(tuples, key=lambda t: (t[0]["thread_id"], t[0]["checkpoint_ns"], t[0]["checkpoint_id"]))


@pytest.mark.parametrize("source_kind", SOURCES)
async def test_every_checkpoint_reads_back_as_the_old_saver_reads_it(
    source_kind: str, engine: str, tmp_path: Path
) -> None:
    with _source(source_kind, tmp_path) as source:
        before = _fingerprint(source)
        target = new_db_target(engine, tmp_path)
        report = await run_langgraph_import(target, source, batch_size=7)
        assert report.counts[Outcome.IMPORTED] == report.total > 40
        assert report.exit_status == 0
        official = _official_tuples(source, tmp_path)
        assert _sort(await _ckptdb_tuples(target)) == _sort(official)
        again = await run_langgraph_import(target, source)
        assert again.counts[Outcome.UNCHANGED] == again.total == report.total
        assert _fingerprint(source) == before
        if not source.startswith("postgresql://"):
            assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("langgraph.sqlite")) == [
                "langgraph.sqlite"
            ]


@pytest.mark.parametrize("source_kind", SOURCES)
def test_resumed_on_ckptdb_in_a_new_process_as_the_old_saver_resumes(
    source_kind: str, engine: str, tmp_path: Path
) -> None:
    with _source(source_kind, tmp_path) as source:
        target = new_db_target(engine, tmp_path)
        done = _cli(target, source)
        assert done.returncode == 0, done.stderr
        # the old saver resumes on its own data (SQLite: a copy, so both start from the same bytes)
        old = source
        if source_kind == "sqlite":
            old = str(tmp_path / "old-saver.sqlite")
            shutil.copy(source, old)
        for thread, answer in (("waiting", True), ("long", False)):
            ours = _resume("ckptdb", target, thread, answer)
            theirs = _resume(source_kind, old, thread, answer)
            assert ours["result"] == theirs["result"]
            assert ours["result"]["messages"][-1]["content"] == ("sent" if answer else "dropped")
            imported = {s["checkpoint_id"] for s in theirs["history"]} & {
                s["checkpoint_id"] for s in ours["history"]
            }
            assert len(imported) >= 3  # the history before the resume is the imported one, ids and all
            assert _masked(ours["history"], imported) == _masked(theirs["history"], imported)


def _resume(kind: str, db: str, thread: str, answer: Any) -> Any:
    done = subprocess.run(
        [sys.executable, str(HELPERS / "lg_resume.py"), kind, db, thread, json.dumps(answer)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _masked(history: list[Any], imported: set[str]) -> list[Any]:
    """The history with the ids of checkpoints the resume wrote (new uuids on each side) masked."""
    return [
        {
            **s,
            "checkpoint_id": s["checkpoint_id"] if s["checkpoint_id"] in imported else "new",
            "parent": s["parent"] if s["parent"] in imported or s["parent"] is None else "new",
            "values": {k: v for k, v in s["values"].items()},
        }
        for s in history
    ]


def _big_source(path: Path, threads: int) -> None:
    """Many threads of the real graph through SqliteSaver."""
    from langgraph.types import Command

    with lg.sqlite_saver(path) as saver:
        graph = lg.build_graph(saver)
        for n in range(threads):
            config = {"configurable": {"thread_id": f"t{n:04}"}}
            graph.invoke({"messages": [], "notes": []}, config)
            graph.invoke(Command(resume=n % 2 == 0), config)


def test_killed_import_rerun_finishes_without_duplicates(engine: str, tmp_path: Path) -> None:
    source = tmp_path / "src" / "big.sqlite"
    source.parent.mkdir()
    _big_source(source, 60)
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    listing = sorted(p.name for p in source.parent.iterdir())
    whole = new_db_target(engine, tmp_path, "whole.db")
    assert _cli(whole, str(source), "-q").returncode == 0
    killed = new_db_target(engine, tmp_path, "killed.db")
    total = sum(len(rows) for rows in [_rows(whole)["langgraph_checkpoints"]])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ckptdb",
            "--db",
            killed,
            "langgraph",
            "import",
            str(source),
            "--batch-size",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while _count(killed) < 5:
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    committed = _count(killed)
    assert 0 < committed < total
    # SIGKILL leaves the reader's empty -wal and its -shm index beside the file (no reader was left
    # to remove them); the rerun removes them
    assert sorted(p.name for p in source.parent.iterdir()) == sorted(
        [*listing, "big.sqlite-wal", "big.sqlite-shm"]
    )
    assert Path(f"{source}-wal").stat().st_size == 0
    rerun = _cli(killed, str(source))
    assert rerun.returncode == 0, rerun.stderr
    assert f"{total - committed} imported, {committed} unchanged, 0 conflict, 0 invalid" in rerun.stdout
    assert _rows(killed) == _rows(whole)
    # the directory is as it was, and the database file unchanged, byte for byte
    assert sorted(p.name for p in source.parent.iterdir()) == listing
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


def _count(target: str) -> int:
    try:
        if target.startswith("postgresql://"):
            import psycopg

            with psycopg.connect(target) as conn:
                return int(conn.execute("SELECT count(*) FROM langgraph_checkpoints").fetchone()[0])
        with sqlite3.connect(f"file:{target}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM langgraph_checkpoints").fetchone()[0])
    except Exception:  # not created yet
        return 0


def test_dry_run_writes_nothing_and_says_what_would_happen(tmp_path: Path) -> None:
    with _source("sqlite", tmp_path) as source:
        target = tmp_path / "target.db"
        done = _cli(str(target), source, "--dry-run")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("dry run, nothing written: ")
        assert " 0 unchanged" in done.stdout and not target.exists()
        assert _cli(str(target), source, "-q").returncode == 0
        again = _cli(str(target), source, "-n")
        assert "0 imported" in again.stdout


def test_a_changed_checkpoint_is_a_conflict_and_left_alone(tmp_path: Path) -> None:
    with _source("sqlite", tmp_path) as source:
        target = tmp_path / "target.db"
        assert _cli(str(target), source, "-q").returncode == 0
        with sqlite3.connect(target) as db:
            db.execute(
                "UPDATE langgraph_checkpoints SET metadata = '{\"step\": 99}' WHERE checkpoint_id = "
                "(SELECT max(checkpoint_id) FROM langgraph_checkpoints WHERE thread_id = 'waiting')"
            )
        kept = _rows(str(target))
        again = _cli(str(target), source)
        assert again.returncode == 3, again.stdout
        assert "conflict  thread 'waiting' " in again.stdout
        assert "different metadata" in again.stdout and " 1 conflict" in again.stdout
        assert _rows(str(target)) == kept


def test_checkpoints_older_than_format_4_resume_their_pending_sends(engine: str, tmp_path: Path) -> None:
    """SQLite's old checkpoints keep `pending_sends` in the checkpoint (LangGraph moves them on
    load): copied as they are, they read back the same."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.types import Send

    path = tmp_path / "v1.sqlite"
    with lg.sqlite_saver(path) as saver:
        parent = {**empty_checkpoint(), "v": 1, "channel_values": {"topic": "cats"}}
        config = saver.put(
            {"configurable": {"thread_id": "old", "checkpoint_ns": ""}},
            parent,
            {"source": "loop", "step": 0},
            {"topic": 1},
        )
        saver.put_writes(config, [("__pregel_tasks", Send("write", {"topic": "cats"}))], task_id="t1")
        child = {
            **empty_checkpoint(),
            "v": 1,
            "channel_values": {"topic": "cats", "log": ["a", "b"]},
            "channel_versions": {"topic": 2, "log": 2},
            "pending_sends": [Send("write", {"topic": "cats"})],
        }
        saver.put(config, child, {"source": "loop", "step": 1}, {"topic": 2, "log": 2})
    target = new_db_target(engine, tmp_path)
    done = _cli(target, str(path))
    assert done.returncode == 0 and "2 imported" in done.stdout, done.stdout + done.stderr
    assert _sort(await_(_ckptdb_tuples(target))) == _sort(_official_tuples(str(path), tmp_path))


def await_(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def test_what_cannot_be_copied_exactly_is_refused_one_line_each(tmp_path: Path) -> None:
    with _source("sqlite", tmp_path) as source:
        broken = tmp_path / "broken.sqlite"
        shutil.copy(source, broken)
        with sqlite3.connect(broken) as db:
            db.execute("UPDATE checkpoints SET type = 'json' WHERE thread_id = 'approved'")
            db.execute("UPDATE checkpoints SET metadata = x'ff' WHERE thread_id = 'rejected'")
            db.execute(
                "UPDATE checkpoints SET checkpoint = substr(checkpoint, 1, 40) WHERE thread_id = 'waiting'"
            )
            n_approved, n_rejected, n_waiting = (
                db.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?", (t,)).fetchone()[0]
                for t in ("approved", "rejected", "waiting")
            )
        done = _cli(str(tmp_path / "target.db"), str(broken))
        assert done.returncode == 3
        lines = [line for line in done.stdout.splitlines() if line.startswith("invalid")]
        assert len(lines) == 20 < n_approved + n_rejected + n_waiting
        assert any("serde type 'json'" in line for line in lines)
        report = tmp_path / "report.json"
        _cli(str(tmp_path / "target.db"), str(broken), "--report", str(report))
        reasons = {
            c["thread_id"]: c["reason"] for c in json.loads(report.read_text())["checkpoints"] if c["reason"]
        }
        assert "its msgpack is broken" in reasons["waiting"] and "metadata" in reasons["rejected"]
        assert f"{n_approved + n_rejected + n_waiting} invalid" in done.stdout


def test_source_that_is_not_a_langgraph_database_is_refused_in_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    done = _cli(str(tmp_path / "target.db"), str(other))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "not a LangGraph saver database" in done.stderr
    assert not (tmp_path / "target.db").exists()


@pytest.mark.postgres
def test_postgres_checkpoints_older_than_format_4_get_the_tasks_the_saver_builds(
    engine: str, tmp_path: Path
) -> None:
    """LangGraph's PostgreSQL saver rebuilds an old checkpoint's tasks channel from its parent's
    writes on every load; the import stores what it builds, so ckptdb reads the same."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.types import Send

    with _source_database() as url:
        with lg.postgres_saver(url) as saver:
            parent = {**empty_checkpoint(), "v": 1, "channel_values": {"topic": "cats"}}
            config = saver.put(
                {"configurable": {"thread_id": "old", "checkpoint_ns": ""}},
                parent,
                {"source": "loop", "step": 0},
                {"topic": "1"},
            )
            sends = [Send("write", {"topic": "cats"}), Send("read", {"n": 2})]
            saver.put_writes(config, [("__pregel_tasks", s) for s in sends], task_id="t1")
            child = {
                **empty_checkpoint(),
                "v": 1,
                "channel_values": {"topic": "dogs", "log": ["a", "b"]},
                "channel_versions": {"topic": "2", "log": "2"},
            }
            saver.put(config, child, {"source": "loop", "step": 1}, {"topic": "2", "log": "2"})
        target = new_db_target(engine, tmp_path)
        done = _cli(target, url)
        assert done.returncode == 0 and "2 imported" in done.stdout, done.stdout + done.stderr
        official = _official_tuples(url, tmp_path)
        assert any(t[2]["channel_values"].get("__pregel_tasks") == sends for t in official)
        assert _sort(await_(_ckptdb_tuples(target))) == _sort(official)


@contextmanager
def _source_database() -> Iterator[str]:
    if PG_SKIP:
        pytest.skip(PG_SKIP_REASON)
    url = PG.acquire(migrated=False, keep=True)
    try:
        yield url
    finally:
        PG.give_back(url, migrated=False)


def test_a_value_without_a_version_stays_in_the_checkpoint(engine: str, tmp_path: Path) -> None:
    """A saver keeps a channel value whatever its versions say; the import keeps it too (in the
    checkpoint's own blob, as there is no version to store it under)."""
    from langgraph.checkpoint.base import empty_checkpoint

    path = tmp_path / "versionless.sqlite"
    with lg.sqlite_saver(path) as saver:
        values = {"messages": [{"role": "user", "content": "x" * 300}] * 3, "note": "y" * 1000, "n": 2}
        checkpoint = {**empty_checkpoint(), "channel_values": values}
        saver.put({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, checkpoint, {"step": 0}, {})
    target = new_db_target(engine, tmp_path)
    done = _cli(target, str(path))
    assert done.returncode == 0 and "1 imported" in done.stdout, done.stdout + done.stderr
    [ours] = await_(_ckptdb_tuples(target))
    assert ours == _official_tuples(str(path), tmp_path)[0]
    assert ours[2]["channel_values"] == values


def test_report_file_lists_every_checkpoint_and_never_lands_on_a_database(tmp_path: Path) -> None:
    with _source("sqlite", tmp_path) as source:
        target = tmp_path / "target.db"
        report = tmp_path / "report.json"
        done = _cli(str(target), source, "--report", str(report), "-q")
        assert done.returncode == 0, done.stderr
        written = json.loads(report.read_text())
        assert written["report"] == "ckptdb-langgraph-import"
        assert (
            written["summary"]["imported"] == len(written["checkpoints"]) == written["summary"]["checkpoints"]
        )
        assert {c["outcome"] for c in written["checkpoints"]} == {"imported"}
        again = _cli(str(target), source, "--report", str(report), "-q")
        assert {c["outcome"] for c in json.loads(report.read_text())["checkpoints"]} == {"unchanged"}
        before = _fingerprint(source)
        onto_source = _cli(str(target), source, "--report", source)
        assert onto_source.returncode == 2 and onto_source.stderr.count("\n") == 1, onto_source.stderr
        assert _fingerprint(source) == before
        same = _cli(source, source)
        assert same.returncode == 1 and "SOURCE is the --db database" in same.stderr
        assert _fingerprint(source) == before
        assert again.returncode == 0
