"""SQLite specifics of SqlCheckpointStore: pragmas, URL forms, group commit, index use, SQL readability."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ckptdb import Checkpoint, CkptdbError, InvalidCheckpointError, SqlCheckpointStore, StoreError, open_store
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.engines import parse_target


def _cp(i: int, graph: str = "g") -> Checkpoint:
    return Checkpoint.new(graph, f"node{i}", {"values": {"i": i, "task": f"t{i}"}}, ["a"], i, "afternode")


async def _pragma(store: SqlCheckpointStore, name: str) -> Any:
    writer = store.backend._writer  # type: ignore[attr-defined]
    return (await writer.execute_fetchall(f"PRAGMA {name}"))[0][0]


@pytest.mark.parametrize(("mode", "value"), [("NORMAL", 1), ("FULL", 2)])
async def test_wal_busy_timeout_and_synchronous_setting(tmp_path: Path, mode: str, value: int) -> None:
    async with await open_store(tmp_path / "p.db", synchronous=mode) as store:
        assert await _pragma(store, "journal_mode") == "wal"
        assert await _pragma(store, "synchronous") == value
        assert await _pragma(store, "busy_timeout") == 30_000
        # The checkpointer writes the database file too: at FULL its syncs are what make the WAL's
        # reuse safe after a power cut, so it must run at the writer's level, not the default.
        checkpointer_db = store.backend._checkpointer._connect()  # type: ignore[attr-defined]
        try:
            assert checkpointer_db.execute("PRAGMA synchronous").fetchone()[0] == value
            assert checkpointer_db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
        finally:
            checkpointer_db.close()


async def test_bad_synchronous_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CkptdbError, match="NORMAL or FULL"):
        await open_store(tmp_path / "p.db", synchronous="OFF")


def test_target_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_target("x.db").path == tmp_path / "x.db"
    assert parse_target("sqlite:///x.db").path == tmp_path / "x.db"
    assert parse_target(f"sqlite:///{tmp_path}/y.db").path == tmp_path / "y.db"
    assert parse_target("postgresql://u:secret@h/db").display() == "postgresql://u:***@h/db"
    with pytest.raises(CkptdbError, match="unsupported database URL"):
        parse_target("mysql://h/db")
    with pytest.raises(CkptdbError, match="MemoryCheckpointStore"):
        parse_target(":memory:")


async def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        await open_store(tmp_path / "nope" / "x.db")


async def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        await open_store(path)
    assert path.read_text().startswith("these are my notes")


async def test_concurrent_saves_are_group_committed_and_all_durable(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    store = await open_store(db)
    writer = store.backend._writer  # type: ignore[attr-defined]
    checkpoints = [_cp(i) for i in range(200)]
    await asyncio.gather(*(store.save(cp) for cp in checkpoints))
    rows, transactions = writer.rows, writer.transactions
    await store.close()
    assert rows == 200
    assert transactions < 200  # at least some saves shared a transaction
    with sqlite3.connect(db) as conn:  # another connection sees every row: they were committed
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 200


async def test_save_many_is_all_or_nothing(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "all.db") as store:
        batch = [_cp(i) for i in range(5)]
        batch[3].state_snapshot = {"bad": float("nan")}
        with pytest.raises(InvalidCheckpointError):
            await store.save_many(batch)
        assert await store.list() == []


async def test_newest_twenty_for_a_graph_uses_the_index(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "plan.db") as store:
        await store.save_many([_cp(i, graph=f"g{i % 5}") for i in range(100)])
        sql, params = store.select_infos(store_query(graph_name="g1", limit=20), limit=21)
        plan = " | ".join(r[3] for r in await store.backend.fetchall(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "ix_checkpoints_graph_name_created_at_id" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
        page = await store.query(graph_name="g1", limit=20)
        assert len(page.items) == 20 and all(i.graph_name == "g1" for i in page.items)


async def test_the_save_order_costs_index_probes_not_scans(tmp_path: Path) -> None:
    """The next save_seq is read from the end of an index, and "latest of a graph" (a resume, each
    graph of `pending`) is one probe of the graph's save-order index: no scan, no sort."""
    async with await open_store(tmp_path / "plan.db") as store:
        await store.save_many([_cp(i, graph=f"g{i % 5}") for i in range(100)])

        async def plan_of(sql: str, params: Sequence[Any]) -> str:
            found = await store.backend.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)
            return " | ".join(r[3] for r in found)

        latest = await plan_of(sqlrows.LATEST, ["g1"])
        by_graph = "ix_checkpoints_graph_name_save_seq_created_at_id (graph_name=?)"
        assert latest == f"SEARCH checkpoints USING INDEX {by_graph}"
        upsert = await plan_of(sqlrows.UPSERT, sqlrows.to_row(_cp(1000)))
        assert "SEARCH checkpoints USING COVERING INDEX ix_checkpoints_save_seq_created_at_id" in upsert, (
            upsert
        )
        assert "SCAN" not in upsert.replace("SCAN CONSTANT ROW", ""), upsert
        pending_plan = await plan_of(
            f"SELECT id FROM checkpoints WHERE graph_name = ? ORDER BY {sqlrows.ORDER_NEWEST_FIRST} LIMIT 1",
            ["g1"],
        )
        assert pending_plan == f"SEARCH checkpoints USING COVERING INDEX {by_graph}"


def store_query(**kwargs: Any) -> Any:
    from ckptdb import CheckpointQuery

    return CheckpointQuery.build(**kwargs)


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="sqlite3 shell not installed")
async def test_state_is_queryable_at_the_sqlite3_prompt(tmp_path: Path, fixture_dir: Path) -> None:
    db = tmp_path / "shell.db"
    async with await open_store(db) as store:
        await store.save_many(
            Checkpoint.from_json(p.read_bytes()) for p in sorted(fixture_dir.glob("*.json"))
        )
        cp = Checkpoint.new("demo", "approve", {"values": {"task": "ship it"}}, [], 1, "toolapproval")
        await store.save(cp)
    out = subprocess.run(
        [
            "sqlite3",
            str(db),
            "SELECT json_extract(state_snapshot, '$.values.task'), created_at FROM checkpoints "
            f"WHERE id = '{cp.id}'; SELECT count(*) FROM checkpoints;",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0] == f"ship it|{cp.created_at.utc_text()}"
    assert out[1] == "301"


async def test_text_order_of_created_at_is_instant_order(tmp_path: Path) -> None:
    """created_at is UTC text with nine digits, so SQL ORDER BY sorts to the nanosecond."""
    from ckptdb import Timestamp

    async with await open_store(tmp_path / "ns.db") as store:
        base = 1_794_431_947_116_615_071
        stamps = [base + d for d in (999, 1, 0, 500_000_000, -1_000_000_000)]
        for n, ns in enumerate(stamps):
            cp = _cp(n)
            cp.created_at = Timestamp(ns)
            await store.save(cp)
        got = [
            r[0]
            for r in await store.backend.fetchall("SELECT created_at FROM checkpoints ORDER BY created_at")
        ]
        assert got == [Timestamp(ns).utc_text() for ns in sorted(stamps)]
        assert [i.created_at.unix_nanos for i in await store.list()] == sorted(stamps, reverse=True)


def test_a_store_left_open_does_not_hang_interpreter_exit(tmp_path: Path) -> None:
    """aiosqlite's worker thread is not a daemon; an app that forgets close() must still exit."""
    import sys

    script = (
        "import asyncio, ckptdb\n"
        "async def main():\n"
        f"    store = await ckptdb.open_store({str(tmp_path / 'leak.db')!r})\n"
        "    globals()['kept'] = store  # never closed\n"
        "    await store.save(ckptdb.Checkpoint.new('g', 'n', {}, [], 1, 'beforenode'))\n"
        "asyncio.run(main())\n"
        "print('done')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    with sqlite3.connect(tmp_path / "leak.db") as conn:  # the acknowledged save is there
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 1


def test_several_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Switching a new file to WAL needs it to itself, and when two connections try at once SQLite
    answers "database is locked" to one of them at once, without its busy handler: an import
    creating a database while `ckptdb list` polled it failed that way. The switch now waits like
    every other lock. (Threads stand in for processes: each opens its own connections. Without the
    wait, 4 of 5 runs of this test failed; it is a race, so not every run can catch it.)"""

    def trial(path: Path) -> list[BaseException]:
        sqlite3.connect(path).close()  # an empty file, still in rollback-journal mode
        start = threading.Barrier(4)
        errors: list[BaseException] = []

        def first_use() -> None:
            async def go() -> None:
                start.wait()
                async with await open_store(path) as store:
                    await store.count()

            try:
                asyncio.run(go())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=first_use) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return errors

    failures = [error for i in range(60) for error in trial(tmp_path / f"new{i}.db")]
    assert failures == []
