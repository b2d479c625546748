"""Concurrent writers on one SQLite file (issue #6, part 2).

Four writer processes save 1,000 checkpoints each into one database (two of them one save at a
time, two from 8 concurrent tasks, so both cross-process locking and in-process group commit are
exercised) while a fifth process lists and loads in a loop, all at synchronous NORMAL. Expected:
zero errors anywhere, exactly 4,000 rows, every row exactly what was saved.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from helpers.content import check_intact
from helpers.report import announce

from ckptdb import open_store

HELPER = Path(__file__).resolve().parent / "helpers" / "concurrent_worker.py"
WRITERS = 4
SAVES_PER_WRITER = 1000


def start(role: str, db: Path, tmp_path: Path, name: str, *extra: str) -> subprocess.Popen[str]:
    args = [sys.executable, str(HELPER), role, "--db", str(db), "--go", str(tmp_path / "go")]
    args += ["--ready", str(tmp_path / f"ready-{name}"), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(tmp_path: Path, names: list[str], procs: list[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all((tmp_path / f"ready-{n}").exists() for n in names):
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"a worker exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail("workers not ready in time")
        time.sleep(0.01)


def result_of(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"worker did not finish in {timeout}s: {err[-2000:]}")
    lines = out.strip().splitlines()
    assert lines, f"worker printed nothing (exit {proc.returncode}): {err[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    result["returncode"] = proc.returncode
    result["stderr"] = err[-2000:]
    return result


async def race(target: str, tmp_path: Path) -> dict[str, Any]:
    """Run the four writers and the reader against `target` (created and migrated already), check
    the result row by row, and return the figures."""
    names = [f"w{k}" for k in range(WRITERS)] + ["reader"]
    writers = [
        start(
            "writer", target, tmp_path, f"w{k}",
            "--worker", str(k), "--count", str(SAVES_PER_WRITER), "--tasks", "1" if k < 2 else "8",
        )
        for k in range(WRITERS)
    ]  # fmt: skip
    reader = start("reader", target, tmp_path, "reader", "--stop", str(tmp_path / "stop"))
    wait_ready(tmp_path, names, [*writers, reader], timeout=30)
    started = time.monotonic()
    (tmp_path / "go").touch()
    results = [result_of(proc, timeout=60) for proc in writers]
    write_seconds = time.monotonic() - started
    (tmp_path / "stop").touch()
    read = result_of(reader, timeout=60)

    for result in [*results, read]:
        assert result["errors"] == [], result
        assert result["returncode"] == 0, result
    assert [r["saved"] for r in results] == [SAVES_PER_WRITER] * WRITERS
    assert read["lists"] >= 2 and read["loads"] >= SAVES_PER_WRITER * WRITERS, read
    assert read["rows_seen"] == WRITERS * SAVES_PER_WRITER

    expected_ids = {f"w{k}-{i}" for k in range(WRITERS) for i in range(SAVES_PER_WRITER)}
    store = await open_store(target)
    try:
        seen = set()
        problems = []
        async for checkpoint in store.iter_checkpoints():
            seen.add(checkpoint.id)
            problem = check_intact(checkpoint, checkpoint.id)
            if problem:
                problems.append(problem)
        assert not problems, problems[:10]
        assert seen == expected_ids
        assert await store.count() == WRITERS * SAVES_PER_WRITER
    finally:
        await store.close()
    return {
        "writers": WRITERS,
        "saves": sum(r["saved"] for r in results),
        "synchronous": sorted({r["synchronous"] for r in results}, key=str),
        "write_seconds": round(write_seconds, 2),
        "saves_per_second": round(WRITERS * SAVES_PER_WRITER / write_seconds),
        "reader_lists": read["lists"],
        "reader_loads_checked": read["loads"],
        "rows_checked": len(seen),
        "errors": 0,
    }


def report(request: pytest.FixtureRequest, tmp_path: Path, backend: str, summary: dict[str, Any]) -> None:
    (tmp_path / "concurrency-summary.json").write_text(json.dumps(summary, indent=2))
    announce(
        request.config,
        f"\nconcurrency ({backend}): {summary['saves']} saves from {WRITERS} processes in "
        f"{summary['write_seconds']} s ({summary['saves_per_second']}/s), reader "
        f"{summary['reader_lists']} lists and {summary['reader_loads_checked']} loads checked, "
        f"{summary['rows_checked']} rows intact, 0 errors",
    )


@pytest.mark.slow
async def test_four_writers_and_a_reader_lose_nothing(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    db = tmp_path / "shared.db"
    store = await open_store(db)  # created and migrated before the race starts
    await store.close()
    summary = await race(str(db), tmp_path)
    assert summary["synchronous"] == [1], "the writers must run at synchronous NORMAL"
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone() == (WRITERS * SAVES_PER_WRITER,)
    report(request, tmp_path, "SQLite, synchronous NORMAL", summary)


@pytest.mark.slow
@pytest.mark.postgres
async def test_four_writers_and_a_reader_lose_nothing_on_postgres(
    tmp_path: Path, request: pytest.FixtureRequest, pg_url: str
) -> None:
    summary = await race(pg_url, tmp_path)
    report(request, tmp_path, "PostgreSQL", summary)


@pytest.mark.slow
async def test_four_processes_creating_the_same_database_at_once(tmp_path: Path) -> None:
    """open_store creates and migrates a missing database: four first openers racing must all succeed."""
    db = tmp_path / "fresh.db"
    names = [f"w{k}" for k in range(WRITERS)]
    (tmp_path / "go").touch()  # no barrier: the race is the opening itself
    writers = [
        start("writer", db, tmp_path, f"w{k}", "--worker", str(k), "--count", "50", "--tasks", "4")
        for k in range(WRITERS)
    ]
    results = [result_of(proc, timeout=60) for proc in writers]
    for result in results:
        assert result["errors"] == [] and result["returncode"] == 0, result
    assert all((tmp_path / f"ready-{n}").exists() for n in names)
    store = await open_store(db, create=False)
    try:
        assert await store.count() == WRITERS * 50
        async for checkpoint in store.iter_checkpoints():
            assert check_intact(checkpoint, checkpoint.id) is None
    finally:
        await store.close()
