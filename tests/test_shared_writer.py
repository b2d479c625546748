"""One SQLite writer per database file per process: every store of a process on one file (async and
sync stores, the two LangGraph savers) writes through one connection and takes turns on its lock,
never through SQLite's busy handler; stores with other settings, a file replaced under an open
store and a forked child keep writers of their own."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from test_sync_store import in_forked_child, make

from ckptdb import connect, open_store

CHECKPOINTER = "ckptdb-sqlite-checkpoint"


def checkpointers() -> int:
    """Checkpointer threads alive: one per writer connection of the process."""
    return sum(thread.name == CHECKPOINTER for thread in threading.enumerate())


async def test_an_async_and_a_sync_store_share_one_writer(tmp_path: Path) -> None:
    """Both stores' saves go through one connection (its change count is theirs together), one
    checkpointer serves both, each reads what the other saved, and the writer outlives the first
    store to close: the last one closes it (and the WAL goes back into the file)."""
    db = tmp_path / "one.db"
    before = checkpointers()
    aio = await open_store(db)
    sync = connect(db)
    try:
        assert checkpointers() == before + 1
        await aio.save(make("by-async", 1))
        sync.save(make("by-sync", 2))
        writer = aio.backend._writer._conn  # type: ignore[attr-defined]
        assert writer is sync.backend._writer  # type: ignore[attr-defined]
        assert (await aio.load("by-sync")) is not None and sync.load("by-async") is not None
        await aio.close()
        sync.save(make("after-async-closed", 3))
        assert sync.load("after-async-closed") is not None
        assert checkpointers() == before + 1
    finally:
        await aio.close()
        sync.close()
    assert checkpointers() == before
    assert not os.path.exists(f"{db}-wal")
    with sqlite3.connect(db) as check:
        ids = sorted(row[0] for row in check.execute("SELECT id FROM checkpoints"))
    assert ids == ["after-async-closed", "by-async", "by-sync"]


async def test_a_save_waits_for_another_stores_transaction_instead_of_meeting_sqlites_lock(
    tmp_path: Path,
) -> None:
    """A sync store holds a write transaction open on the writer connection (under its lock, as
    its commits do); an async store's save, with the busy timeout off, waits for it and then
    commits. With a connection each, that save met SQLite's write lock and failed at once with
    "database is locked"."""
    db = tmp_path / "busy.db"
    aio = await open_store(db, busy_timeout_ms=0)
    sync = connect(db, busy_timeout_ms=0)
    try:
        lock, writer = sync.backend._saves.lock, sync.backend._writer  # type: ignore[attr-defined]
        with lock:
            writer.execute("BEGIN IMMEDIATE")
            try:
                saving = asyncio.create_task(aio.save(make("waits", 1)))
                await asyncio.sleep(0.3)  # time enough for a save that fails at once to have failed
                assert not saving.done(), saving.exception()
            finally:
                writer.execute("ROLLBACK")
        await saving
        assert sync.load("waits") is not None
    finally:
        await aio.close()
        sync.close()


async def test_an_async_and_a_sync_store_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    """An async store saving on its loop and two threads saving through a sync store at once, on
    one writer: every save succeeds and every row is there."""
    db = tmp_path / "both.db"
    aio = await open_store(db)
    sync = connect(db)
    errors: list[BaseException] = []

    def save_sync(n: int) -> None:
        try:
            for i in range(300):
                sync.save(make(f"sync-{n}-{i}", i))
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=save_sync, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for i in range(300):
            await aio.save(make(f"async-{i}", i))
        await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        assert errors == []
        assert await aio.count() == 900
        assert sync.count() == 900
    finally:
        await aio.close()
        sync.close()


async def test_the_two_langgraph_savers_share_one_writer(tmp_path: Path) -> None:
    """The async saver on the loop and the sync saver from two threads put at once through one
    writer: no put fails, and every checkpoint reads back through either saver."""
    pytest.importorskip("langgraph.checkpoint.base")
    from test_langgraph_saver import checkpoint, config

    from ckptdb.langgraph import AsyncCkptdbSaver, CkptdbSaver

    db = tmp_path / "savers.db"
    before = checkpointers()

    def chat(saver: Any, thread: str) -> list[Any]:
        cfg, version, stored = config(thread), None, []
        for step in range(60):
            version = saver.get_next_version(version, None)
            values = {"messages": [f"{thread}:{i}" for i in range(step + 1)]}
            cfg = saver.put(cfg, checkpoint(values, {"messages": version}, step), {}, {"messages": version})
            saver.put_writes(cfg, [("messages", f"w{step}")], f"task-{step}")
            stored.append(cfg)
        return stored

    async with AsyncCkptdbSaver.from_conn_string(db) as aio:
        with CkptdbSaver.from_conn_string(db) as sync:
            assert checkpointers() == before + 1
            threads = [asyncio.to_thread(chat, sync, f"sync-{n}") for n in range(2)]
            cfg, version = config("async"), None
            for step in range(60):
                version = aio.get_next_version(version, None)
                values = {"messages": [f"async:{i}" for i in range(step + 1)]}
                cp = checkpoint(values, {"messages": version}, step)
                cfg = await aio.aput(cfg, cp, {}, {"messages": version})
                await aio.aput_writes(cfg, [("messages", f"w{step}")], f"task-{step}")
            stored = await asyncio.gather(*threads)
            for thread, configs in [("sync-0", stored[0]), ("sync-1", stored[1])]:
                found = await aio.aget_tuple(configs[-1])
                assert found is not None
                assert found.checkpoint["channel_values"]["messages"] == [f"{thread}:{i}" for i in range(60)]
            mine = sync.get_tuple(config("async"))
            assert mine is not None and mine.pending_writes == [("task-59", "messages", "w59")]
            assert mine.checkpoint["channel_values"]["messages"] == [f"async:{i}" for i in range(60)]
    assert checkpointers() == before


async def test_other_settings_keep_a_writer_of_their_own(tmp_path: Path) -> None:
    """A store opened with another `synchronous` cannot share a connection set for the first: it
    gets its own (and both write)."""
    db = tmp_path / "settings.db"
    before = checkpointers()
    normal = connect(db, synchronous="NORMAL")
    full = await open_store(db, synchronous="FULL")
    try:
        assert checkpointers() == before + 2
        assert full.backend._writer._conn is not normal.backend._writer  # type: ignore[attr-defined]
        normal.save(make("normal", 1))
        await full.save(make("full", 2))
        assert {c.id for c in normal.list()} == {"normal", "full"}
    finally:
        normal.close()
        await full.close()


def test_a_file_replaced_under_an_open_store_is_not_written_through_its_writer(tmp_path: Path) -> None:
    """The writer is the file's (device and inode), not the path's: a new database created where
    an open store's file was moved away gets a writer of its own, and each store's saves land in
    its own file."""
    db = tmp_path / "moved.db"
    old = connect(db)
    try:
        old.save(make("in-old", 1))
        moved = tmp_path / "old.db"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{db}{suffix}"):
                shutil.move(f"{db}{suffix}", f"{moved}{suffix}")
        with connect(db) as new:
            new.save(make("in-new", 2))
            assert new.backend._writer is not old.backend._writer  # type: ignore[attr-defined]
        old.save(make("in-old-again", 3))
    finally:
        old.close()
    with sqlite3.connect(db) as check:
        assert [row[0] for row in check.execute("SELECT id FROM checkpoints")] == ["in-new"]
    with sqlite3.connect(moved) as check:
        assert sorted(row[0] for row in check.execute("SELECT id FROM checkpoints")) == [
            "in-old",
            "in-old-again",
        ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_opens_a_writer_of_its_own(tmp_path: Path) -> None:
    """A store the child opens on its parent's file never writes through the parent's connection
    (SQLite's locks are per process: a connection carried across fork() believes it holds locks
    the child does not have) and has its own checkpointer thread; the parent's writer goes on."""
    db = tmp_path / "fork.db"
    with connect(db) as parent:
        parent.save(make("parent", 1))
        inherited = parent.backend._writer  # type: ignore[attr-defined]

        def child_work() -> str:
            with connect(db) as child:
                child.save(make("child", 2))
                shared = child.backend._writer is inherited  # type: ignore[attr-defined]
                return f"shared={shared} checkpointers={checkpointers()}"

        answer = in_forked_child(child_work)
        assert answer == "shared=False checkpointers=1"
        parent.save(make("parent-after", 3))
        assert {c.id for c in parent.list()} == {"parent", "child", "parent-after"}


async def test_a_sync_save_after_the_loops_commit_still_waits_for_another_writer(tmp_path: Path) -> None:
    """The event loop commits with the shared connection's busy timeout at 0 and leaves it so
    (setting it back after each commit cost about 8% of a flat put); a sync store's save that
    comes next must still wait out another connection's write lock (the store's 30 s), not fail
    at once with "database is locked"."""
    db = tmp_path / "timeout.db"
    aio = await open_store(db)
    sync = connect(db)
    try:
        await aio.save(make("on-the-loop", 1))  # committed on the loop: busy timeout 0
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        outcome: list[BaseException | None] = []

        def save() -> None:
            try:
                sync.save(make("waits", 2))
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=save)
        thread.start()
        await asyncio.sleep(0.3)
        other.execute("ROLLBACK")
        other.close()
        await asyncio.to_thread(thread.join)
        assert outcome == [None]
        assert (await aio.load("waits")) is not None
    finally:
        await aio.close()
        sync.close()
