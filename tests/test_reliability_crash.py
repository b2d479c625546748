"""Crash safety: a child process saves in a loop and is SIGKILLed at random moments (issue #6, part 1).

The child (`helpers/crash_writer.py`) prints `<id> <version>` only after save()/save_many() has
returned. After every kill the parent checks, before anything else touches the database:

- SQLite: `PRAGMA integrity_check` is `ok`; the file opens through `open_store` with no repair step;
  every acknowledged id loads with exactly the content the child saved (recomputed from id and
  version by `helpers.content`, compared as exact echo JSON), at the acknowledged version or a
  later one; and every other row in the database is intact too.
- Files: every `*.json` in the directory parses and is intact (no torn file, ever), every
  acknowledged id loads intact, and `list()` sees exactly the `*.json` files.

Kill times come from a seeded RNG (`CKPTDB_CRASH_SEED` to change it; the seed is in the summary).
A JSON summary (kills survived, acknowledged ids, rows checked) is printed and written to
`<pytest basetemp>/reliability/crash-*.json`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from random import Random

import pytest
from helpers.content import check_intact
from helpers.report import announce

from ckptdb import (
    Checkpoint,
    CkptdbError,
    FileCheckpointStore,
    InvalidCheckpointError,
    SqlCheckpointStore,
    open_store,
)

HELPER = Path(__file__).resolve().parent / "helpers" / "crash_writer.py"
SEED = int(os.environ.get("CKPTDB_CRASH_SEED", "20261103"))
SQLITE_KILLS_PER_MODE = 8  # x 3 modes = 24 kills
FILE_KILLS_PER_MODE = 5  # x 3 modes = 15 kills
CREATION_KILLS = 8
POSTGRES_KILLS = 6  # modes in turn
MODES = ("single", "many", "concurrent")


@dataclass
class Summary:
    kind: str
    mode: str
    seed: int
    kills: int = 0
    kills_before_ready: int = 0
    acknowledged_saves: int = 0
    acknowledged_ids: int = 0
    acknowledged_checks: int = 0
    rows_checked: int = 0
    final_rows: int = 0
    leftover_tmp_files: int = 0
    seconds: float = 0.0
    synchronous: list[str] = field(default_factory=list)
    database_at_kill: dict[str, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where each test writes its summary; at the end, the totals go to crash-total.json and to the
    terminal (so CI logs carry the figures without -s)."""
    path = tmp_path_factory.getbasetemp() / "reliability"
    path.mkdir(exist_ok=True)
    yield path
    parts = [json.loads(p.read_text()) for p in sorted(path.glob("crash-*-*.json"))]
    if not parts:
        return
    total = {
        "seed": SEED,
        "kills_survived": sum(p["kills"] for p in parts),
        "acknowledged_saves": sum(p["acknowledged_saves"] for p in parts),
        "acknowledged_checks": sum(p["acknowledged_checks"] for p in parts),
        "rows_checked": sum(p["rows_checked"] for p in parts),
        "runs": {f"{p['kind']}-{p['mode']}": p["kills"] for p in parts},
    }
    (path / "crash-total.json").write_text(json.dumps(total, indent=2))
    announce(
        request.config,
        f"\ncrash tests: {total['kills_survived']} SIGKILLs survived, {total['acknowledged_saves']} "
        f"acknowledged saves, {total['acknowledged_checks']} acknowledged-id checks, "
        f"{total['rows_checked']} rows/files checked intact (seed {SEED}; {path / 'crash-total.json'})",
    )


def write_summary(report_dir: Path, summary: Summary) -> None:
    data = asdict(summary)
    (report_dir / f"crash-{summary.kind}-{summary.mode}.json").write_text(json.dumps(data, indent=2))
    print(f"\ncrash summary: {json.dumps(data)}")


@dataclass
class ChildRun:
    acknowledged: list[tuple[str, int]]
    killed_before_ready: bool


def wait_for_ready(proc: subprocess.Popen[bytes], out: Path, err: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.read_bytes().startswith(b"READY\n"):
            return
        if proc.poll() is not None:
            pytest.fail(f"child exited with {proc.returncode} before READY:\n{err.read_text()}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"child not READY after {timeout}s:\n{err.read_text()}")


def run_and_kill(
    args: list[str], workdir: Path, label: str, rng: Random, *, early: bool, early_window: float = 0.5
) -> ChildRun:
    """Start the child, SIGKILL it at a random moment, return what it acknowledged."""
    out, err = workdir / f"{label}.out", workdir / f"{label}.err"
    with open(out, "wb") as out_file, open(err, "wb") as err_file:
        proc = subprocess.Popen([sys.executable, str(HELPER), *args], stdout=out_file, stderr=err_file)
    try:
        if early:  # anywhere from interpreter start-up through opening (and creating) the store
            time.sleep(rng.uniform(0.0, early_window))
        else:
            wait_for_ready(proc, out, err)
            time.sleep(rng.uniform(0.02, 0.25))
        if proc.poll() is not None:
            pytest.fail(f"child exited by itself with {proc.returncode}:\n{err.read_text()}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, err.read_text()
    text = out.read_bytes().decode("utf-8")
    lines = text.split("\n")[:-1]  # a line counts only once its newline was written
    ready = bool(lines) and lines[0] == "READY"
    acknowledged = []
    for line in lines[1:] if ready else lines:
        cid, version = line.rsplit(" ", 1)
        acknowledged.append((cid, int(version)))
    assert ready or not acknowledged
    return ChildRun(acknowledged, not ready)


def record(acked: dict[str, int], run: ChildRun, summary: Summary) -> None:
    summary.kills += 1
    summary.kills_before_ready += run.killed_before_ready
    summary.acknowledged_saves += len(run.acknowledged)
    for cid, version in run.acknowledged:
        assert version >= acked.get(cid, 0), f"{cid}: the child acknowledged version {version} twice?"
        acked[cid] = version


def database_state(db: Path) -> str:
    """What a kill left, looked at read-only (WAL content included): for the summary."""
    if not db.exists():
        return "no file"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "ckptdb_alembic_version" in tables:
        return "schema complete"
    return "tables, no version" if tables else "empty file"


async def verify_sqlite(db: Path, acked: dict[str, int], summary: Summary, synchronous: str) -> None:
    if not db.exists():
        assert not acked, "acknowledged saves but no database file"
        return
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    await verify_sql(await open_store(db, synchronous=synchronous), acked, summary)  # no repair step


async def verify_sql(store: SqlCheckpointStore, acked: dict[str, int], summary: Summary) -> None:
    try:
        problems = []
        for cid, version in acked.items():
            try:
                problem = check_intact(await store.load(cid), cid, version)
            except CkptdbError as exc:
                problem = f"{cid}: acknowledged, now unreadable: {exc}"
            if problem:
                problems.append(problem)
        assert not problems, f"{len(problems)} lost or damaged after kill {summary.kills}: {problems[:10]}"
        summary.acknowledged_checks += len(acked)
        rows = 0
        async for checkpoint in store.iter_checkpoints():
            rows += 1
            problem = check_intact(checkpoint, checkpoint.id, acked.get(checkpoint.id, 0))
            if problem:
                problems.append(f"row {problem}")
        assert rows == await store.count() == len(await store.list())
        summary.rows_checked += rows
        summary.final_rows = rows
    finally:
        await store.close()
    assert not problems, f"{len(problems)} lost or damaged after kill {summary.kills}: {problems[:10]}"


async def verify_files(directory: Path, acked: dict[str, int], summary: Summary) -> None:
    if not directory.exists():
        assert not acked
        return
    problems = []
    json_files = [p for p in directory.iterdir() if p.name.endswith(".json")]
    for path in json_files:
        try:
            checkpoint = Checkpoint.from_json(path.read_bytes(), source=str(path))
        except InvalidCheckpointError as exc:
            problems.append(f"torn file: {exc}")
            continue
        if path.name != f"{checkpoint.id}.json":
            problems.append(f"{path.name} holds id {checkpoint.id!r}")
        problem = check_intact(checkpoint, checkpoint.id, acked.get(checkpoint.id, 0))
        if problem:
            problems.append(f"file {problem}")
    store = FileCheckpointStore(directory)
    for cid, version in acked.items():
        try:
            problem = check_intact(await store.load(cid), cid, version)
        except CkptdbError as exc:
            problem = f"{cid}: acknowledged, now unreadable: {exc}"
        if problem:
            problems.append(problem)
    assert not problems, f"{len(problems)} lost or damaged after kill {summary.kills}: {problems[:10]}"
    assert len(await store.list()) == len(json_files)
    others = [p.name for p in directory.iterdir() if not p.name.endswith((".json", ".json.tmp"))]
    assert not others, f"unexpected files: {others[:5]}"
    summary.acknowledged_checks += len(acked)
    summary.rows_checked += len(json_files)
    summary.final_rows = len(json_files)
    summary.leftover_tmp_files = sum(1 for p in directory.iterdir() if p.name.endswith(".json.tmp"))


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> Iterator[Random]:
    yield Random(f"{SEED}/{request.node.name}")


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
async def test_sqlite_survives_sigkill(mode: str, tmp_path: Path, rng: Random, report_dir: Path) -> None:
    db = tmp_path / "crash.db"
    summary = Summary("sqlite", mode, SEED)
    acked: dict[str, int] = {}
    started = time.monotonic()
    for run in range(SQLITE_KILLS_PER_MODE):
        synchronous = ("NORMAL", "FULL")[run % 2]
        summary.synchronous.append(synchronous)
        args = ["--kind", "sqlite", "--target", str(db), "--run", str(run), "--mode", mode]
        args += ["--synchronous", synchronous, "--seed", str(rng.randrange(2**32))]
        # The first run is killed at a random moment from start-up on, so sometimes while the
        # database is being created and migrated; later runs also now and then during opening.
        early = run == 0 or rng.random() < 0.15
        record(acked, run_and_kill(args, tmp_path, f"run{run}", rng, early=early), summary)
        await verify_sqlite(db, acked, summary, synchronous)
    summary.acknowledged_ids = len(acked)
    summary.seconds = round(time.monotonic() - started, 2)
    write_summary(report_dir, summary)
    assert summary.kills == SQLITE_KILLS_PER_MODE
    assert summary.acknowledged_saves > 100, "the child barely saved anything: the kills prove nothing"


@pytest.mark.slow
@pytest.mark.postgres
async def test_postgres_survives_sigkill(tmp_path: Path, rng: Random, report_dir: Path, pg_url: str) -> None:
    """The client process dies; what PostgreSQL acknowledged (COMMIT returned) must all be there."""
    summary = Summary("postgres", "mixed", SEED)
    acked: dict[str, int] = {}
    started = time.monotonic()
    for run in range(POSTGRES_KILLS):
        mode = MODES[run % len(MODES)]
        args = ["--kind", "postgres", "--target", pg_url, "--run", str(run), "--mode", mode]
        args += ["--seed", str(rng.randrange(2**32))]
        record(acked, run_and_kill(args, tmp_path, f"run{run}", rng, early=rng.random() < 0.15), summary)
        await verify_sql(await open_store(pg_url), acked, summary)
    summary.acknowledged_ids = len(acked)
    summary.seconds = round(time.monotonic() - started, 2)
    write_summary(report_dir, summary)
    assert summary.acknowledged_saves > 100, "the child barely saved anything: the kills prove nothing"


@pytest.mark.slow
async def test_sqlite_survives_sigkill_during_creation(tmp_path: Path, rng: Random, report_dir: Path) -> None:
    """Each kill hits a fresh database somewhere between interpreter start and the first saves
    (start-up to READY takes about 0.8 s, most of it creating and migrating the database)."""
    summary = Summary("sqlite", "creation", SEED)
    started = time.monotonic()
    for run in range(CREATION_KILLS):
        db = tmp_path / f"fresh{run}.db"
        args = ["--kind", "sqlite", "--target", str(db), "--run", "0", "--mode", "single"]
        acked: dict[str, int] = {}
        record(acked, run_and_kill(args, tmp_path, f"run{run}", rng, early=True, early_window=1.2), summary)
        state = database_state(db)
        summary.database_at_kill[state] = summary.database_at_kill.get(state, 0) + 1
        await verify_sqlite(db, acked, summary, "NORMAL")
        summary.acknowledged_ids += len(acked)
    summary.seconds = round(time.monotonic() - started, 2)
    write_summary(report_dir, summary)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
async def test_file_store_survives_sigkill(mode: str, tmp_path: Path, rng: Random, report_dir: Path) -> None:
    directory = tmp_path / "ckpts"
    summary = Summary("files", mode, SEED)
    acked: dict[str, int] = {}
    started = time.monotonic()
    for run in range(FILE_KILLS_PER_MODE):
        args = ["--kind", "files", "--target", str(directory), "--run", str(run), "--mode", mode]
        args += ["--seed", str(rng.randrange(2**32))]
        record(acked, run_and_kill(args, tmp_path, f"run{run}", rng, early=rng.random() < 0.15), summary)
        await verify_files(directory, acked, summary)
    summary.acknowledged_ids = len(acked)
    summary.seconds = round(time.monotonic() - started, 2)
    write_summary(report_dir, summary)
    assert summary.acknowledged_saves > 50, "the child barely saved anything: the kills prove nothing"
