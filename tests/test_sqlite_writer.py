"""The SQLite writer thread and the checkpointer beside it: the WAL stays bounded while saves keep
coming, checkpoints run off the writer's connection, and both threads end with the store."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from ckptdb import Checkpoint, StoreError, open_store
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.sqlite import backend as sqlite_backend
from ckptdb.sql.sqlite import settings as sqlite_settings
from ckptdb.sql.sqlite import writer as sqlite_writer

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
    monkeypatch.setattr(sqlite_settings, "CHECKPOINT_PAGES", 60)
    monkeypatch.setattr(sqlite_settings, "WAL_LIMIT_PAGES", 200)
    monkeypatch.setattr(sqlite_settings, "WAL_BACKSTOP_PAGES", 10**6)  # the bound must come from the writer
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
    writer = backend._conns()[0]
    assert writer.finished_checkpoints > 0
    # NORMAL commits on the event loop's thread, FULL on the writer thread: both are bounded.
    assert (writer.loop_transactions > 0) == (synchronous == "NORMAL")
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
    monkeypatch.setattr(sqlite_settings, "CHECKPOINT_PAGES", 30)
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
    def broken(self: object, batch: object) -> bool:
        raise RuntimeError("bookkeeping bug")

    monkeypatch.setattr(sqlite_writer.WriterThread, "_count_pages", broken)
    for commit_on_loop in (True, False):
        async with await open_store(
            tmp_path / f"c{commit_on_loop}.db", commit_on_loop=commit_on_loop
        ) as store:
            for i in range(3):
                await store.save(_cp(i))
            writer = store.backend._writer  # type: ignore[attr-defined]
            assert writer.loop_transactions == (3 if commit_on_loop else 0)
            assert isinstance(writer.last_error, RuntimeError)
            assert writer.alive
            assert await store.count() == 3


async def test_a_writer_thread_that_dies_fails_its_saves_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(batch: object, errors: object) -> None:
        raise RuntimeError("delivery bug")

    monkeypatch.setattr(sqlite_writer.WriterThread, "_deliver_rows", staticmethod(broken))
    store = await open_store(tmp_path / "c.db", commit_on_loop=False)  # saves on the thread
    try:
        # wait_for only turns a hang (the bug this guards against) into a failure; no timing is asserted
        with pytest.raises(StoreError, match=r"writer thread stopped .*RuntimeError: delivery bug"):
            await asyncio.wait_for(store.save(_cp(1)), 30)
        with pytest.raises(StoreError, match=r"writer thread stopped .*RuntimeError: delivery bug"):
            await asyncio.wait_for(store.save(_cp(2)), 30)  # and every save after it, saying why
        assert isinstance(store.backend._writer.last_error, RuntimeError)  # type: ignore[attr-defined]
    finally:
        await asyncio.wait_for(store.close(), 30)


async def test_after_the_thread_dies_saves_fail_instead_of_committing_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, jobs: int) -> None:
        raise RuntimeError("bookkeeping bug")

    monkeypatch.setattr(sqlite_writer.WriterThread, "_finished", broken)
    store = await open_store(tmp_path / "c.db")
    writer = store.backend._writer  # type: ignore[attr-defined]
    try:
        await store.save(_cp(1))  # on the loop: the thread is not involved
        with pytest.raises(StoreError, match="may or may not be committed"):
            await store.clear()  # runs on the thread, which then dies before answering
        await asyncio.wait_for(asyncio.to_thread(writer._thread.join), 30)
        with pytest.raises(StoreError, match=r"writer thread stopped .*RuntimeError: bookkeeping bug"):
            await asyncio.wait_for(store.save(_cp(2)), 30)
        assert writer.loop_transactions == 1
    finally:
        await asyncio.wait_for(store.close(), 30)
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0


async def test_saves_of_one_loop_turn_commit_together_on_the_loop(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "loop.db") as store:
        writer = store.backend._writer  # type: ignore[attr-defined]
        for i in range(5):
            await store.save(_cp(i))
        assert (writer.transactions, writer.loop_transactions) == (5, 5)
        await asyncio.gather(*(store.save(_cp(100 + i, graph=f"g{i}")) for i in range(16)))
        assert (writer.transactions, writer.loop_transactions) == (6, 6)
        # More rows than a loop commit takes: the thread commits them, in one transaction.
        many = sqlite_settings.LOOP_COMMIT_ROWS + 1
        await store.save_many([_cp(200 + i) for i in range(many)])
        assert (writer.transactions, writer.loop_transactions) == (7, 6)
        assert await store.count() == 5 + 16 + many


@pytest.mark.parametrize("options", [{"commit_on_loop": False}, {"synchronous": "FULL"}])
async def test_commits_stay_off_the_loop_when_asked_or_at_full(
    tmp_path: Path, options: dict[str, object]
) -> None:
    async with await open_store(tmp_path / "thread.db", **options) as store:
        writer = store.backend._writer  # type: ignore[attr-defined]
        for i in range(3):
            await store.save(_cp(i))
        await asyncio.gather(*(store.save(_cp(100 + i)) for i in range(8)))
        assert writer.loop_transactions == 0
        assert writer.transactions >= 4
        assert await store.count() == 11


async def test_a_locked_database_sends_saves_to_the_thread_and_the_loop_runs_on(tmp_path: Path) -> None:
    """Another connection holds the write lock: the save must neither fail nor hold up the event
    loop. Were the loop to wait for the lock itself, it would stop for the whole busy timeout (a
    minute here) and only this connection, on the same loop, could end the wait: the largest gap
    between two turns of the loop would be a minute instead of milliseconds. The check allows
    half of that, so machine noise cannot fail it."""
    db = tmp_path / "locked.db"
    busy_timeout_s = 60
    async with await open_store(db, busy_timeout_ms=busy_timeout_s * 1000) as store:
        writer = store.backend._writer  # type: ignore[attr-defined]
        await store.save(_cp(0))
        other = sqlite3.connect(db, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # the write lock, until COMMIT
            save = asyncio.ensure_future(store.save(_cp(1)))
            loop = asyncio.get_running_loop()
            turns = [loop.time()]
            for _ in range(20):
                await asyncio.sleep(0.005)
                turns.append(loop.time())
            assert not save.done()
            other.execute("COMMIT")
        finally:
            other.close()
        await asyncio.wait_for(save, 2 * busy_timeout_s)
        assert max(b - a for a, b in itertools.pairwise(turns)) < busy_timeout_s / 2
        assert writer.loop_transactions == 1  # the first save only; the second waited on the thread
        assert writer.transactions == 2
        assert await store.count() == 2
        # The loop's attempt turned the busy timeout off for that moment only.
        assert (await writer.execute_fetchall("PRAGMA busy_timeout"))[0][0] == busy_timeout_s * 1000


async def test_a_store_shared_by_event_loops_on_several_threads_loses_no_save(tmp_path: Path) -> None:
    """Saves gather per event loop; a loop on another thread sends its saves to the writer thread
    while this one's are gathered, and each caller hears back on its own loop. The other loops run
    in debug mode, which raises if anything touches them from a thread not their own; wait_for
    turns a save that never hears back into a failure (no timing is asserted)."""
    async with await open_store(tmp_path / "loops.db") as store:

        async def save_all(prefix: int) -> None:
            for i in range(40):
                saves = (store.save(_cp(prefix + i * 4 + k, graph=f"t{prefix}")) for k in range(4))
                await asyncio.wait_for(asyncio.gather(*saves), 30)

        def in_own_loop(prefix: int) -> None:
            asyncio.run(save_all(prefix), debug=True)

        others = [asyncio.to_thread(in_own_loop, prefix) for prefix in (10_000, 20_000)]
        await asyncio.gather(save_all(0), *others)
        assert await store.count() == 3 * 160
        writer = store.backend._writer  # type: ignore[attr-defined]
        assert writer.loop_transactions > 0


@pytest.mark.parametrize("commit_on_loop", [True, False])
async def test_cancelled_saves_fail_no_other_save_and_leave_no_half_row(
    tmp_path: Path, commit_on_loop: bool
) -> None:
    """A save cancelled after it was handed over may or may not be committed (as with any
    database call cancelled in flight), but whole or not at all; the saves beside it in its group
    are unaffected, and the store goes on working."""
    async with await open_store(tmp_path / "cancel.db", commit_on_loop=commit_on_loop) as store:
        checkpoints = [_cp(i, graph=f"g{i % 4}") for i in range(16)]
        saves = [asyncio.ensure_future(store.save(cp)) for cp in checkpoints]
        await asyncio.sleep(0)  # every save has handed its row over
        for save in saves[::3]:
            save.cancel()
        # wait_for only turns a hang into a failure; no timing is asserted
        outcomes = await asyncio.wait_for(asyncio.gather(*saves, return_exceptions=True), 30)
        cancelled = [
            cp
            for cp, out in zip(checkpoints, outcomes, strict=True)
            if isinstance(out, asyncio.CancelledError)
        ]
        assert len(cancelled) == len(saves[::3])
        assert all(out is None for out in outcomes if not isinstance(out, asyncio.CancelledError))
        for cp in checkpoints:
            loaded = await store.load(cp.id)
            if cp in cancelled and loaded is None:
                continue
            assert loaded is not None and loaded.to_json() == cp.to_json()
        later = _cp(100)
        await store.save(later)
        assert await store.load(later.id) is not None


async def test_a_bug_in_a_commit_on_the_loop_fails_its_saves_instead_of_leaving_them_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await open_store(tmp_path / "bug.db") as store:
        with monkeypatch.context() as patch:

            def broken(self: object, batch: object, *, translate: bool = True) -> None:
                raise RuntimeError("commit bug")

            patch.setattr(sqlite_writer.WriterThread, "_commit", broken)
            # wait_for only turns a hang (the bug this guards against) into a failure
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(store.save(_cp(i)) for i in range(3)), return_exceptions=True), 30
            )
            assert [str(out) for out in outcomes] == ["commit bug"] * 3
        await store.save(_cp(10))  # the connection was left usable
        assert await store.count() == 1


async def test_saves_gathered_by_a_loop_that_closed_are_not_stranded(tmp_path: Path) -> None:
    """A loop stopped and closed between a save and the end of its turn never runs that turn's
    commit: the next save from another loop hands those rows to the thread and gathers anew."""
    async with await open_store(tmp_path / "stranded.db") as store:
        writer = store.backend._writer  # type: ignore[attr-defined]
        stranded = _cp(1)

        def strand() -> None:
            other = asyncio.new_event_loop()

            def submit_and_stop() -> None:
                store.save(stranded).send(None)  # runs the save up to its wait for the commit
                other.stop()

            other.call_soon(submit_and_stop)
            other.run_forever()
            other.close()

        await asyncio.to_thread(strand)
        await store.save(_cp(2))  # behind the stranded row, on the thread: order is kept
        assert await store.load(stranded.id) is not None
        await store.save(_cp(3))
        assert writer.loop_transactions == 1  # and this loop gathers and commits again
        assert await store.count() == 3


async def test_a_loop_commits_only_the_saves_it_gathered_itself(tmp_path: Path) -> None:
    """This loop gathers a save; another loop, on another thread, hands it to the writer thread
    (jobs keep their order) and starts gathering its own. When this loop's turn ends, its commit
    must leave the other loop's saves alone: settling them from this thread would never wake
    their loop (in debug mode, it raises)."""
    async with await open_store(tmp_path / "two.db") as store:
        writer = store.backend._writer  # type: ignore[attr-defined]
        ready, proceed = threading.Event(), threading.Event()
        mine = writer.submit_rows(sqlrows.UPSERT, [sqlrows.to_row(_cp(1))])  # gathered, turn not over
        theirs: dict[str, Any] = {}

        async def other_loop() -> None:
            loop = asyncio.get_running_loop()
            handed = writer.submit_rows(sqlrows.UPSERT, [sqlrows.to_row(_cp(2))])  # takes ours along
            gathered = writer.submit_rows(sqlrows.UPSERT, [sqlrows.to_row(_cp(3))])  # gathers anew
            theirs["loop"] = loop
            ready.set()
            proceed.wait(30)  # hold this loop's turn open until the main loop's turn has ended
            await asyncio.wait_for(asyncio.gather(handed, gathered), 30)

        failures: list[BaseException] = []

        def run_other() -> None:
            try:
                asyncio.run(other_loop(), debug=True)
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=run_other)
        thread.start()
        try:
            assert ready.wait(30)  # blocking on purpose: this loop's turn must not end before that
            await asyncio.sleep(0)  # now it ends, and its commit runs
            assert writer._gather_loop is theirs["loop"] and len(writer._gathered) == 1
        finally:
            proceed.set()
        await asyncio.wait_for(mine, 30)
        await asyncio.to_thread(thread.join, 60)
        assert not failures and not thread.is_alive()
        assert await store.count() == 3
