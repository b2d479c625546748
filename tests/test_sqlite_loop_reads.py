"""Short SQLite reads on the event loop's own thread (`read_on_loop`, on by default): which reads
go there, that they never wait for a lock, and that everything else keeps the reader thread."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import STORE_FACTORIES

from ckptdb import Checkpoint, CkptdbError, SqlCheckpointStore, StoreError, open_store
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.sqlite import loop_reader
from ckptdb.sql.sqlite.backend import SqliteBackend
from ckptdb.sql.sqlite.loop_reader import LoopReader


@pytest.fixture(autouse=True)
def no_clock_bound(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The half-millisecond bound depends on the machine; these tests rely on the step bound only."""
    monkeypatch.setattr(loop_reader, "READ_SECONDS", 3600.0)
    yield


def _cp(i: int, graph: str = "g", **values: object) -> Checkpoint:
    return Checkpoint.new(graph, "node", {"values": {"i": i, **values}}, ["a"], i, "afternode")


def _backend(store: SqlCheckpointStore) -> SqliteBackend:
    backend = store.backend
    assert isinstance(backend, SqliteBackend)
    return backend


def _loop_reader(store: SqlCheckpointStore) -> LoopReader:
    found = _backend(store)._loop_reader
    assert found is not None
    return found


async def _trace(store: SqlCheckpointStore) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(thread name, statement) of every statement each read connection runs from now on: the
    loop's own connection, then the aiosqlite reader's."""
    on_loop: list[tuple[str, str]] = []
    on_reader: list[tuple[str, str]] = []
    backend = _backend(store)
    if backend._loop_reader is not None:
        db = backend._loop_reader._db
        assert db is not None
        db.set_trace_callback(lambda sql: on_loop.append((threading.current_thread().name, sql)))
    reader = backend._reader
    assert reader is not None
    await reader.set_trace_callback(lambda sql: on_reader.append((threading.current_thread().name, sql)))
    return on_loop, on_reader


async def test_short_reads_run_on_the_loop_thread_and_the_rest_on_the_reader_thread(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "on.db") as store:
        saved = [_cp(i) for i in range(5)]
        for checkpoint in saved:
            await store.save(checkpoint)
        on_loop, on_reader = await _trace(store)
        here = threading.current_thread().name
        assert (await store.load(saved[2].id)) == saved[2]
        assert (await store.latest("g")) == saved[-1]
        assert [info.id for info in (await store.query(limit=2)).items] == [cp.id for cp in saved[:-3:-1]]
        assert len(on_loop) == 3 and {name for name, _ in on_loop} == {here}
        assert on_reader == []
        # A count, an unbounded query and a stream are not short: they keep the reader's thread.
        assert await store.count() == 5
        assert len((await store.query(limit=None)).items) == 5
        assert len([cp async for cp in store.iter_checkpoints()]) == 5
        assert len(on_reader) == 3 and here not in {name for name, _ in on_reader}
        assert len(on_loop) == 3
        assert (_loop_reader(store).reads, _loop_reader(store).handed_back) == (3, 0)


async def test_read_on_loop_false_sends_every_read_to_the_reader_thread(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "off.db", read_on_loop=False) as store:
        saved = _cp(1)
        await store.save(saved)
        assert _backend(store)._loop_reader is None
        on_loop, on_reader = await _trace(store)
        assert (await store.load(saved.id)) == saved
        assert (await store.latest("g")) == saved
        assert len((await store.query(limit=2)).items) == 1
        assert on_loop == [] and len(on_reader) == 3
        assert threading.current_thread().name not in {name for name, _ in on_reader}


async def test_the_contract_suite_runs_sqlite_with_reads_on_the_loop_and_off_it(tmp_path: Path) -> None:
    """The contract's `sqlite` store is opened with the defaults (reads on the loop); its
    `sqlite-thread-reads` twin covers the reader thread's way."""
    for name, on_loop in (("sqlite", True), ("sqlite-thread-reads", False)):
        (tmp_path / name).mkdir()
        store = await STORE_FACTORIES[name](tmp_path / name)
        assert isinstance(store, SqlCheckpointStore)
        try:
            checkpoint = _cp(1)
            await store.save(checkpoint)
            assert await store.load(checkpoint.id) == checkpoint
            found = _backend(store)._loop_reader
            assert (found is not None and found.reads == 1) is on_loop
        finally:
            await store.close()


async def test_a_read_beside_a_long_write_transaction_never_waits(tmp_path: Path) -> None:
    """WAL: another connection holds the write lock with changes not committed; reads on the loop
    (busy timeout 0: they cannot wait) still answer at once, with what was committed."""
    db = tmp_path / "wal.db"
    async with await open_store(db) as store:
        first = _cp(1)
        await store.save(first)
        other = sqlite3.connect(db, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")  # in WAL, the write lock: readers go on
            other.execute("UPDATE checkpoints SET current_node = 'uncommitted'")
            other.execute("DELETE FROM checkpoints WHERE id = ?", (first.id,))
            for _ in range(3):
                assert (await store.load(first.id)) == first
                assert (await store.latest("g")) == first
                assert [info.current_node for info in (await store.query(limit=5)).items] == ["node"]
            assert (_loop_reader(store).reads, _loop_reader(store).handed_back) == (9, 0)
        finally:
            other.execute("ROLLBACK")
            other.close()


async def test_a_busy_read_goes_to_the_reader_thread_which_waits_while_the_loop_turns(tmp_path: Path) -> None:
    """A file in rollback-journal mode (switched back by some other tool, opened read-only) whose
    writer holds an exclusive lock: the read on the loop meets SQLITE_BUSY at once and is handed
    to the reader thread, which waits out the busy timeout while the loop keeps turning."""
    db = tmp_path / "journal.db"
    checkpoint = _cp(7)
    async with await open_store(db) as store:
        await store.save(checkpoint)
    with sqlite3.connect(db, isolation_level=None) as switch:
        assert switch.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    switch.close()
    async with await open_store(db, readonly=True) as store:
        here = _loop_reader(store)
        assert here._db is not None and here._db.execute("PRAGMA busy_timeout").fetchone() == (0,)
        other = sqlite3.connect(db, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            loading = asyncio.create_task(store.load(checkpoint.id))
            for _ in range(20):
                await asyncio.sleep(0)  # the loop turns: the load is not holding it
            assert (here.reads, here.handed_back) == (0, 1)
            assert not loading.done()  # waiting on the reader thread, for the lock
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await asyncio.wait_for(loading, 30) == checkpoint
        assert await store.load(checkpoint.id) == checkpoint  # the lock is gone: on the loop again
        assert (here.reads, here.handed_back) == (1, 1)


async def test_a_long_read_is_handed_back_to_the_reader_thread(tmp_path: Path) -> None:
    """A page whose filter reads many rows passes the step budget: interrupted on the loop, then
    answered whole by the reader thread."""
    async with await open_store(tmp_path / "long.db") as store:
        await store.save_many([_cp(i, flag=i == 1999) for i in range(2000)])
        here = _loop_reader(store)
        page = await store.query(state="values.flag == true", limit=10)
        assert [info.step_count for info in page.items] == [1999]
        assert (here.reads, here.handed_back) == (0, 1)
        page = await store.query(graph_name="g", limit=10)  # a page through the index: short
        assert len(page.items) == 10
        assert (here.reads, here.handed_back) == (1, 1)


async def test_a_store_used_from_another_thread_reads_through_the_reader_thread(tmp_path: Path) -> None:
    """The loop's connection belongs to the thread that opened the store: another thread, with an
    event loop of its own, gets the same answers through the reader thread."""
    async with await open_store(tmp_path / "shared.db") as store:
        checkpoint = _cp(3)
        await store.save(checkpoint)

        def elsewhere() -> Checkpoint | None:
            return asyncio.run(store.load(checkpoint.id))

        assert await asyncio.to_thread(elsewhere) == checkpoint
        assert (_loop_reader(store).reads, _loop_reader(store).handed_back) == (0, 0)
        assert await store.load(checkpoint.id) == checkpoint
        assert _loop_reader(store).reads == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_forked_child_never_reads_through_its_parents_connection(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "fork.db") as store:
        checkpoint = _cp(4)
        await store.save(checkpoint)
        here = _loop_reader(store)
        assert here.read(sqlrows.LOAD, (checkpoint.id,))
        with warnings.catch_warnings():  # 3.12+ warns of fork beside threads: the child only reads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: same thread identity, but the parent's connection is off limits
            os._exit(0 if here.read(sqlrows.LOAD, (checkpoint.id,)) is None and here._db is None else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert await store.load(checkpoint.id) == checkpoint  # the parent's own reads go on
        assert here.reads == 2


async def test_a_readonly_store_reads_on_the_loop_and_closing_tidies_up(tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    checkpoint = _cp(5)
    async with await open_store(db) as store:
        await store.save(checkpoint)
    assert not Path(f"{db}-wal").exists()
    store = await open_store(db, readonly=True)
    here = _loop_reader(store)
    connection = here._db
    assert connection is not None
    assert await store.load(checkpoint.id) == checkpoint
    assert here.reads == 1
    with pytest.raises(StoreError, match="read-only"):
        await store.save(_cp(6))
    await store.close()
    assert _backend(store)._loop_reader is None
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        connection.execute("SELECT 1")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ro.db"]  # no -wal or -shm left
    with pytest.raises(StoreError, match="closed"):
        await store.load(checkpoint.id)


async def test_the_loop_connection_cannot_write(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "q.db") as store:
        with pytest.raises(StoreError, match="is read-only"):
            await store.backend.fetch_quick("DELETE FROM checkpoints")


@pytest.mark.parametrize("value", ["no", 1, None])
async def test_read_on_loop_must_be_a_bool(tmp_path: Path, value: object) -> None:
    with pytest.raises(CkptdbError) as caught:
        await open_store(tmp_path / "x.db", read_on_loop=value)
    assert str(caught.value) == f"read_on_loop must be True or False, got {value!r}"
    assert list(tmp_path.iterdir()) == []
