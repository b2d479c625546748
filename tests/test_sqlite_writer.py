"""The SQLite writer thread and the checkpointer beside it: the WAL stays bounded while saves keep
coming, checkpoints run off the writer's connection, and both threads end with the store."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from ckptdb import Checkpoint, StoreError, open_store
from ckptdb.sql import sqlite as sqlite_backend

WAL_HEADER = 32
FRAME_HEADER = 24


def _cp(i: int, graph: str = "g") -> Checkpoint:
    state = {"messages": [{"role": "user", "content": f"message {i} " + "x" * 1500}], "values": {"i": i}}
    return Checkpoint.new(graph, "node", state, ["a"], i, "afternode")


def _wal_frames(db: Path, page_size: int) -> int:
    """The most frames the WAL file has ever held (SQLite reuses the file from its start)."""
    size = os.path.getsize(f"{db}-wal")
    return max(0, size - WAL_HEADER) // (page_size + FRAME_HEADER)


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_wal_stays_bounded_under_sustained_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synchronous: str
) -> None:
    # Small marks so a few hundred saves cross them many times over.
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_PAGES", 60)
    monkeypatch.setattr(sqlite_backend, "WAL_LIMIT_PAGES", 200)
    monkeypatch.setattr(sqlite_backend, "WAL_BACKSTOP_PAGES", 10**6)  # the bound must come from the writer
    db = tmp_path / "wal.db"
    store = await open_store(db, synchronous=synchronous)
    backend = store.backend
    assert isinstance(backend, sqlite_backend.SqliteBackend)
    checkpointer = backend._checkpointer
    assert checkpointer is not None
    page_size = (await backend.fetchall("PRAGMA page_size"))[0][0]
    assert (await backend._conns()[0].execute_fetchall("PRAGMA wal_autocheckpoint"))[0][0] == 10**6

    saved = []
    for i in range(300):  # one at a time: every save its own transaction, ~4 frames each
        checkpoint = _cp(i)
        await store.save(checkpoint)
        saved.append(checkpoint)
    for wave in range(20):  # and in groups: 16 saves per transaction
        batch = [_cp(1000 + wave * 16 + k, graph=f"g{k}") for k in range(16)]
        await asyncio.gather(*(store.save(cp) for cp in batch))
        saved.extend(batch)

    frames = _wal_frames(db, page_size)
    # Without checkpoints this would be over 1,400 frames. The mark is an estimate of pages from
    # the rows, so the real bound is near it, not on it: within twice the mark.
    assert frames <= 2 * 200, frames
    assert backend._conns()[0].finished_checkpoints > 0
    assert checkpointer.runs > 0
    assert checkpointer.last_error is None
    assert await store.count() == len(saved)
    await store.close()

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == len(saved)


async def test_checkpointer_copies_the_wal_back_while_the_store_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_PAGES", 30)
    db = tmp_path / "ckpt.db"
    store = await open_store(db)
    checkpointer = store.backend._checkpointer  # type: ignore[attr-defined]
    for i in range(60):
        await store.save(_cp(i))
    # The writer pokes the checkpointer, which runs on its own thread: wait until it has run.
    for _ in range(1000):
        if checkpointer.runs:
            break
        await asyncio.sleep(0.01)
    assert checkpointer.runs > 0
    assert checkpointer.last_error is None
    assert checkpointer.last_result is not None
    busy, _log, copied = checkpointer.last_result
    assert busy == 0 and copied > 0  # it copied frames back into the database file
    await store.close()


async def test_writer_and_checkpointer_threads_end_with_the_store(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "end.db")
    backend = store.backend
    writer = backend._writer  # type: ignore[attr-defined]
    checkpointer = backend._checkpointer  # type: ignore[attr-defined]
    await store.save(_cp(1))
    assert writer.alive and checkpointer.alive
    await store.close()
    assert not writer.alive
    assert not checkpointer.alive
    with pytest.raises(StoreError, match="closed"):
        await store.save(_cp(2))


async def test_saves_queued_before_close_are_all_committed(tmp_path: Path) -> None:
    db = tmp_path / "close.db"
    store = await open_store(db)
    checkpoints = [_cp(i, graph=f"g{i % 8}") for i in range(100)]
    saves = [asyncio.ensure_future(store.save(cp)) for cp in checkpoints]
    await asyncio.sleep(0)  # every save has queued its rows
    await store.close()
    await asyncio.gather(*saves)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 100


async def test_other_writes_keep_their_place_in_the_queue(tmp_path: Path) -> None:
    """A delete queued between saves runs between them: saves after it are not deleted."""
    async with await open_store(tmp_path / "order.db") as store:
        first = [_cp(i) for i in range(10)]
        later = [_cp(100 + i) for i in range(10)]
        await asyncio.gather(
            *(store.save(cp) for cp in first),
            store.clear(),
            *(store.save(cp) for cp in later),
        )
        assert {info.id for info in await store.list()} == {cp.id for cp in later}


async def test_a_failing_checkpoint_step_is_kept_and_saves_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, batch: object, count: int) -> None:
        raise RuntimeError("bookkeeping bug")

    monkeypatch.setattr(sqlite_backend.WriterThread, "_after_rows", broken)
    async with await open_store(tmp_path / "c.db") as store:
        for i in range(3):
            await store.save(_cp(i))
        writer = store.backend._writer  # type: ignore[attr-defined]
        assert isinstance(writer.last_error, RuntimeError)
        assert writer.alive
        assert await store.count() == 3


async def test_a_writer_thread_that_dies_fails_its_saves_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(batch: object, errors: object) -> None:
        raise RuntimeError("delivery bug")

    monkeypatch.setattr(sqlite_backend.WriterThread, "_deliver_rows", staticmethod(broken))
    store = await open_store(tmp_path / "c.db")
    try:
        # wait_for only turns a hang (the bug this guards against) into a failure; no timing is asserted
        with pytest.raises(StoreError, match=r"writer thread stopped .*RuntimeError: delivery bug"):
            await asyncio.wait_for(store.save(_cp(1)), 30)
        with pytest.raises(StoreError, match="the store is closed"):
            await asyncio.wait_for(store.save(_cp(2)), 30)
        assert isinstance(store.backend._writer.last_error, RuntimeError)  # type: ignore[attr-defined]
    finally:
        await asyncio.wait_for(store.close(), 30)
