"""SQLite durability under faults the OS and the disk make: a power cut, a failing fsync.

A power cut loses what the OS had not written to the disk. `tests/helpers/iotrace.c`, compiled
here and preloaded into a real writer process, records every write to the database and its WAL
and every fsync/fdatasync of them; the test then rebuilds the two files as a power cut at sampled
moments would leave them (only the writes an fsync that had finished by then covered) and opens
them with SQLite.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.power_writer import make

from ckptdb import OutcomeUnknownError, StoreError, connect, open_store
from ckptdb.sql.sqlite.settings import WAL_SIZE_LIMIT

HELPERS = Path(__file__).resolve().parent / "helpers"

SYNC_INTERVAL = float(os.environ.get("CKPTDB_TEST_SYNC_INTERVAL", "0.2"))
"""The bound the test asks of the store (seconds); short, to keep the run short."""
MARGIN = 1.0
"""Slack on top of the bound for a loaded 2-core CI machine (a thread woken late, a slow fsync):
the test asserts on saves acknowledged more than SYNC_INTERVAL + MARGIN before a crash point."""
SAVES = 200
PAUSE = 0.012
"""A few saves at a time with pauses, as an agent between steps: too few WAL pages for any
page-count checkpoint, which is what left the WAL unsynced for seconds."""
CRASH_POINTS = 16


@pytest.fixture(scope="session")
def iotrace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the I/O tracing shim (scripts/test.sh installs it)")
    out = tmp_path_factory.mktemp("iotrace") / "iotrace.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-o", str(out), str(HELPERS / "iotrace.c"), "-ldl", "-lpthread"],
        check=True,
    )
    return out


@dataclass
class Trace:
    """The parsed shim log: (time, op, file path, a, b, data) in the order they happened."""

    records: list[tuple[int, str, str, int, int, bytes]] = field(default_factory=list)


def read_trace(log: Path) -> Trace:
    data = log.read_bytes()
    header = struct.Struct("<B3xiqqq")
    paths: dict[int, str] = {}
    trace = Trace()
    at = 0
    while at + header.size <= len(data):
        op_code, file, when, a, b = header.unpack_from(data, at)
        at += header.size
        op = chr(op_code)
        payload = b""
        if op in "OW":
            payload = data[at : at + b]
            at += b
        if op == "O":
            paths[file] = payload.decode()
            continue
        trace.records.append((when, op, paths[file], a, b, payload))
    return trace


def durable_images(trace: Trace, baseline: dict[str, bytes], moments: list[int]) -> list[dict[str, bytes]]:
    """The file contents a power cut at each moment leaves: the baseline, plus every write or
    truncate that a sync of the same file covered (begun after it, ended before the moment)."""
    durable = {path: bytearray(content) for path, content in baseline.items()}
    pending: dict[str, list[tuple[int, str, int, bytes]]] = {}
    begun: dict[int, int] = {}  # sync sequence -> operation counter when it began
    images: list[dict[str, bytes]] = []
    remaining = sorted(moments)

    def apply(path: str, op: str, a: int, payload: bytes) -> None:
        image = durable.setdefault(path, bytearray())
        if op == "T":
            del image[a:]
            image.extend(b"\0" * (a - len(image)))
            return
        if len(image) < a:
            image.extend(b"\0" * (a - len(image)))
        image[a : a + len(payload)] = payload

    for order, (when, op, path, a, b, payload) in enumerate(trace.records):
        while remaining and when > remaining[0]:
            images.append({p: bytes(c) for p, c in durable.items()})
            remaining.pop(0)
        if op in "WT":
            pending.setdefault(path, []).append((order, op, a, payload))
        elif op == "B":
            begun[a] = order
        elif op == "E" and b == 0:
            start = begun.pop(a)
            kept = []
            for item in pending.get(path, []):
                if item[0] < start:
                    apply(path, item[1], item[2], item[3])
                else:
                    kept.append(item)
            pending[path] = kept
    for _ in remaining:
        images.append({p: bytes(c) for p, c in durable.items()})
    return images


def stored_ids(image: dict[str, bytes], db: Path, scratch: Path) -> set[str]:
    """Write one rebuilt image next to nothing else (no -shm: a reboot starts without it) and read
    it with SQLite, which replays the valid part of the WAL."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir()
    for path, content in image.items():
        (scratch / (db.name + path[len(str(db)) :])).write_bytes(content)
    conn = sqlite3.connect(scratch / db.name)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in conn.execute("SELECT id FROM checkpoints")}
    finally:
        conn.close()


async def make_database(db: Path) -> dict[str, bytes]:
    async with await open_store(db):
        pass  # created and migrated; the close checkpoints, fsyncs and removes the WAL
    os.sync()
    return {str(db): db.read_bytes()}


def power_cut_run(
    iotrace: Path, tmp: Path, baseline_db: Path, sync_interval: str
) -> tuple[list[int], list[int], dict[str, int]]:
    """Run the writer under the shim; for each sampled crash point, the saves that were
    acknowledged more than SYNC_INTERVAL + MARGIN before it and are missing after the cut, and
    how many acknowledged saves were missing in all."""
    db = tmp / "power.db"
    shutil.copy(baseline_db, db)
    log = tmp / "io.log"
    env = dict(os.environ, LD_PRELOAD=str(iotrace), IOTRACE_DB=str(db), IOTRACE_LOG=str(log))
    options = ["--count", str(SAVES), "--pause", str(PAUSE), "--sync-interval", sync_interval]
    child = subprocess.run(
        [sys.executable, str(HELPERS / "power_writer.py"), str(db), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.split()
    start = int(lines[1])
    acked = [(lines[i], int(lines[i + 1])) for i in range(2, len(lines), 2)]
    assert len(acked) == SAVES
    end = acked[-1][1]
    window = int((SYNC_INTERVAL + MARGIN) * 1e9)
    first = start + window
    moments = [first + (end - first) * (k + 1) // CRASH_POINTS for k in range(CRASH_POINTS)]
    trace = read_trace(log)
    assert any(op == "W" and path.endswith("-wal") for _, op, path, *_ in trace.records), "shim saw no write"
    images = durable_images(trace, {str(db): baseline_db.read_bytes()}, moments)
    late_losses: list[int] = []
    all_losses: list[int] = []
    oldest_ms = 0
    for moment, image in zip(moments, images, strict=True):
        present = stored_ids(image, db, tmp / "rebuilt")
        missing = [when for cid, when in acked if when <= moment and cid not in present]
        all_losses.append(len(missing))
        late_losses.append(sum(1 for when in missing if when <= moment - window))
        oldest_ms = max([oldest_ms, *((moment - when) // 1_000_000 for when in missing)])
    syncs = sum(1 for _, op, path, *_ in trace.records if op == "E" and path.endswith("-wal"))
    return late_losses, all_losses, {"wal_syncs": syncs, "oldest_lost_ms": oldest_ms}


async def test_power_cut_loses_no_save_acknowledged_longer_ago_than_the_sync_interval(
    iotrace: Path, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.db"
    await make_database(baseline)
    bounded = tmp_path / "bounded"
    unbounded = tmp_path / "unbounded"
    bounded.mkdir()
    unbounded.mkdir()
    late, every, figures = power_cut_run(iotrace, bounded, baseline, str(SYNC_INTERVAL))
    off_late, off_every, off_figures = power_cut_run(iotrace, unbounded, baseline, "off")
    print(
        f"\npower cut at {CRASH_POINTS} points, {SAVES} saves: with sync_interval={SYNC_INTERVAL}: "
        f"{figures['wal_syncs']} WAL syncs, acknowledged saves lost per point {every} (older than "
        f"{SYNC_INTERVAL + MARGIN} s: {late}; the oldest acknowledged {figures['oldest_lost_ms']} ms "
        f"before the cut); without: {off_figures['wal_syncs']} WAL syncs, lost {off_every} (older: "
        f"{off_late}; the oldest {off_figures['oldest_lost_ms']} ms before the cut)"
    )
    assert sum(late) == 0, f"saves acknowledged over {SYNC_INTERVAL + MARGIN} s before a cut lost: {late}"
    # The same run without the bound must show the defect, or this test proves nothing.
    assert sum(off_late) > 0, f"without sync_interval no old save was lost: {off_every}"


async def test_a_save_whose_fsync_fails_says_its_outcome_is_unknown(iotrace: Path, tmp_path: Path) -> None:
    """fdatasync of the WAL fails with EIO at FULL: the failed save and save_many may be in the
    database after a restart (here they are: the WAL holds their frames with the commit mark), so
    their error must say the outcome is unknown, not that the write failed."""
    db = tmp_path / "eio.db"
    await make_database(db)
    flag = tmp_path / "eio-now"
    env = dict(os.environ, LD_PRELOAD=str(iotrace), IOTRACE_DB=str(db), IOTRACE_EIO_FLAG=str(flag))
    child = subprocess.run(
        [sys.executable, str(HELPERS / "eio_writer.py"), str(db), str(flag)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    outcomes = [json.loads(line) for line in child.stdout.splitlines()]
    assert [outcome["call"] for outcome in outcomes] == ["save", "save_many"]
    for outcome in outcomes:
        assert outcome["error"] == "OutcomeUnknownError", outcome
        assert "may or may not be on disk: load what it saved" in outcome["message"], outcome
        assert "\n" not in outcome["message"]
    async with await open_store(db) as store:  # after the process died: what did land?
        assert await store.load("p-00000") == make(0)
        landed = [index for index in (1, 2, 3) if await store.load(f"p-{index:05d}") == make(index)]
    print(f"\nfailed writes found in the database after the restart: {landed}")
    assert landed, "no failed write landed: the test no longer shows why the outcome is unknown"


def _pg(url: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def _pg_standby_names(url: str, value: str | None) -> None:
    """Set (or reset) synchronous_standby_names server-wide, and wait until a new connection sees it."""
    if value is None:
        _pg(url, "ALTER SYSTEM RESET synchronous_standby_names")
    else:
        _pg(url, f"ALTER SYSTEM SET synchronous_standby_names = '{value}'")
    _pg(url, "SELECT pg_reload_conf()")
    for _ in range(400):  # the postmaster rereads its configuration on its own time
        if _pg(url, "SHOW synchronous_standby_names")[0][0] == (value or ""):
            return
        time.sleep(0.025)
    raise AssertionError(f"the server never took synchronous_standby_names = {value!r}")


WAITING_FOR_STANDBY = (
    "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = current_database()"
)


@pytest.mark.postgres
async def test_a_connection_lost_during_commit_says_the_outcome_is_unknown(pg_url: str) -> None:
    """A real lost COMMIT: with a synchronous standby that never comes, the server commits locally
    and waits; terminating that backend cuts the connection while the save is committed. The error
    must say that the outcome is unknown (here it is in fact committed). The setting is
    server-wide for well under a second; the test cluster runs synchronous_commit = off, so only
    sessions that ask for it (this store's, with synchronous="FULL") wait meanwhile."""
    await asyncio.to_thread(_pg_standby_names, pg_url, "ckptdb_test_standby_that_never_comes")
    try:
        # synchronous="FULL": synchronous_commit = on for the store's sessions (the test cluster
        # runs with it off, for speed), so its COMMIT waits for the standby.
        async with await open_store(pg_url, synchronous="FULL") as store:
            save = asyncio.create_task(store.save(make(1)))
            waiting: list[tuple[object, ...]] = []
            for _ in range(400):
                waiting = await asyncio.to_thread(_pg, pg_url, WAITING_FOR_STANDBY)
                if waiting or save.done():
                    break
                await asyncio.sleep(0.025)
            assert waiting, f"the save never waited for the standby ({save})"
            await asyncio.to_thread(_pg, pg_url, f"SELECT pg_terminate_backend({int(str(waiting[0][0]))})")
            with pytest.raises(OutcomeUnknownError) as failure:
                await save
    finally:
        await asyncio.to_thread(_pg_standby_names, pg_url, None)
    message = str(failure.value)
    assert "during a write" in message and "may or may not be committed: load what it saved" in message
    assert "\n" not in message
    async with await open_store(pg_url) as store:
        assert await store.load("p-00001") == make(1)


# -- vacuum beside a reader ---------------------------------------------------------------------

READER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
conn.execute("SELECT count(*) FROM checkpoints").fetchone()
print("reading", flush=True)
sys.stdin.read()  # hold the read transaction until the test closes our stdin
conn.execute("COMMIT")
"""


def start_reader(db: Path) -> subprocess.Popen[str]:
    """A real reader in another process: python's sqlite3 holding BEGIN; SELECT."""
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None and reader.stdout.readline() == "reading\n"
    return reader


def end_reader(reader: subprocess.Popen[str]) -> None:
    assert reader.stdin is not None
    reader.stdin.close()
    assert reader.wait(timeout=60) == 0


def ckptdb_cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", str(db), *args], capture_output=True, text=True, timeout=300
    )


async def test_vacuum_beside_a_reader_fails_no_save_and_reports_what_it_kept(tmp_path: Path) -> None:
    db = tmp_path / "vacuum.db"
    async with await open_store(db) as store:
        await store.save_many([make(index) for index in range(3000)])
        await store.delete_many([f"p-{index:05d}" for index in range(0, 3000, 2)])  # space to give back
    reader = start_reader(db)
    stop = tmp_path / "stop"
    savers = [
        subprocess.Popen(
            [sys.executable, str(HELPERS / "steady_saver.py"), str(db), f"s{k}", str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    try:
        for saver in savers:
            assert saver.stdout is not None and saver.stdout.readline() == "READY\n"
        vacuumed = ckptdb_cli(db, "vacuum")
        wal_then = (tmp_path / "vacuum.db-wal").stat().st_size
    finally:
        stop.touch()
        outcomes = []
        for saver in savers:
            out, err = saver.communicate(timeout=120)
            outcomes.append((saver.returncode, out, err))
    for returncode, out, err in outcomes:
        result = json.loads(out.splitlines()[-1])
        assert returncode == 0 and result["errors"] == [], (result, err)
        assert result["saves"] > 0
    print(
        f"\nvacuum beside a reader: {vacuumed.stdout.strip()} (exit {vacuumed.returncode}); saves beside "
        f"it: {[json.loads(out.splitlines()[-1])['saves'] for _, out, _ in outcomes]}, 0 failed"
    )
    assert vacuumed.returncode == 3, vacuumed
    (line,) = vacuumed.stdout.splitlines()
    assert line.startswith("vacuumed: ") and "open read transaction kept the WAL at " in line, line
    assert "shrinks once that reader ends" in line
    assert wal_then > 1_000_000  # what it says it kept is there: the vacuum's rewrite, not yet copied back
    end_reader(reader)
    again = ckptdb_cli(db, "vacuum")
    assert again.returncode == 0, again
    assert re.fullmatch(r"vacuumed: \S+ \S+ -> \S+ \S+ on disk\n", again.stdout)
    wal = tmp_path / "vacuum.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


# -- a reader that starves checkpoints, on a small disk --------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 24 MiB file system (tmpfs), mounted for this test and unmounted after it."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 24 MiB tmpfs (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_reader_that_fills_the_disk_with_wal_does_not_wedge_the_store(
    kind: str, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader in another process holds BEGIN; SELECT while the app saves: checkpoints cannot
    finish, the WAL grows until the disk is nearly full, and saves fail with one clear line. Once
    the reader ends, later saves succeed in the same store (no reopening) and the WAL shrinks back
    to the bound. Before, the WAL took the last byte and nothing could ever write again: the
    checkpoint that would free it needs room to grow the database file. The same through the
    synchronous store (`connect`), whose saving threads commit on the same shared writer."""
    db = small_disk / "app.db"
    caplog.set_level(logging.WARNING, logger="ckptdb.sqlite")
    store = await open_store(db) if kind == "async" else connect(db)

    async def call(method: str, *args: Any) -> Any:
        result = getattr(store, method)(*args)
        return await result if inspect.isawaitable(result) else result

    try:
        await call("save_many", [make(index) for index in range(200)])
        reader = start_reader(db)
        try:
            saved, refusal = 200, None
            while refusal is None:
                assert saved < 20_000, "the disk never filled"
                try:
                    await call("save", make(saved))
                    saved += 1
                except StoreError as exc:
                    refusal = exc
            stats = json.loads(ckptdb_cli(db, "stats", "-f", "json").stdout)
            check = ckptdb_cli(db, "db", "check")
        finally:
            end_reader(reader)
        message = str(refusal)
        print(f"\nsmall disk: {saved - 200} saves beside the reader, then: {message}")
        assert "\n" not in message and "nothing of this write was saved" in message
        assert "a reader's open transaction has kept checkpoints from finishing" in message
        assert any("starved by a reader" in record.getMessage() for record in caplog.records)
        assert stats["wal"]["checkpoints_starved"] is True and stats["wal"]["bytes"] > WAL_SIZE_LIMIT
        assert check.returncode == 0 and "wal          checkpoints starved by a reader" in check.stdout, check
        tries = 0
        while True:  # the reader has ended: the next checkpoint finishes
            tries += 1
            try:
                await call("save", make(saved))
                break
            except StoreError as exc:
                assert tries < 200, f"saves never recovered after the reader ended: {exc}"
                await asyncio.sleep(0.05)
        for index in range(saved + 1, saved + 50):
            await call("save", make(index))
        assert await call("load", f"p-{saved + 10:05d}") == make(saved + 10)
        wal = Path(f"{db}-wal")
        for _ in range(200):  # the checkpointer's retry comes within STARVED_RETRY_SECONDS
            if wal.stat().st_size <= WAL_SIZE_LIMIT:
                break
            await asyncio.sleep(0.05)
        print(f"recovered after {tries} tries; WAL back to {wal.stat().st_size / 2**20:.1f} MiB")
        assert wal.stat().st_size <= WAL_SIZE_LIMIT
    finally:
        await call("close")
