"""Group commit, on both engines: the one isolation policy (`ckptdb.sql.group_commit`) that each
engine's own fast path drives."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ckptdb import Checkpoint, StoreError, open_store
from ckptdb.sql import rows as sqlrows


def _cp(i: int) -> Checkpoint:
    return Checkpoint.new("g", f"node{i}", {"values": {"i": i}}, ["a"], i, "afternode")


async def test_a_failing_save_in_a_shared_transaction_fails_alone(db_target: str, tmp_path: Path) -> None:
    """Saves that queue behind one in flight share the next transaction; one of them that the
    database refuses fails that transaction, and then each is retried alone: only it fails."""
    async with await open_store(db_target) as store:
        good = [_cp(i) for i in range(20)]
        bad_row = list(sqlrows.to_row(_cp(99)))
        bad_row[sqlrows.COLUMNS.index("interrupt_type")] = "BeforeNode"  # the CHECK constraint refuses it
        results = await asyncio.gather(
            *(store.save(cp) for cp in good[:10]),
            store.save_rows([tuple(bad_row)]),
            *(store.save(cp) for cp in good[10:]),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], StoreError), errors
        assert "check constraint" in str(errors[0]).lower()
        assert {i.id for i in await store.list()} == {cp.id for cp in good}


def test_a_leader_waits_for_the_threads_that_saved_lately() -> None:
    """Three threads saved lately: the next leader commits once all three are queued (one
    transaction), not the first save alone and then the other two."""
    import threading

    from ckptdb.sql.group_commit import LeaderCommit, SyncRequest

    groups: list[int] = []

    def attempt(batch: list[SyncRequest]) -> None:
        groups.append(sum(len(request.rows) for request in batch))

    saves = LeaderCommit(attempt, lambda exc: True, lambda exc: exc)
    saves._savers, saves._commit_seconds = 3, 60.0  # as after a group of three; a long bound
    threads = [threading.Thread(target=saves.save, args=("sql", [(n,)])) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert groups == [3]
    assert saves._savers == 3


def test_a_saver_that_stopped_costs_one_bounded_wait() -> None:
    """The estimate says two threads, but only one saves: its save still commits (after the
    wait's bound), and the estimate drops to the one thread, which then never waits."""
    from ckptdb.sql.group_commit import LeaderCommit, SyncRequest

    groups: list[int] = []

    def attempt(batch: list[SyncRequest]) -> None:
        groups.append(len(batch))

    saves = LeaderCommit(attempt, lambda exc: True, lambda exc: exc)
    saves._savers, saves._commit_seconds = 2, 0.2
    saves.save("sql", [(1,)])
    assert (groups, saves._savers) == ([1], 1)
    saves.save("sql", [(2,)])
    assert groups == [1, 1]
