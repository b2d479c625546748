"""The LangGraph thread table (migration 0007), on both engines: whatever writes to the checkpoints
(both savers' put, re-put, delete_thread, prune of both strategies, copy_thread, delete_for_runs,
the CLI's prune and delete, the import, a hand-written UPDATE, several processes at once), its rows
are what grouping the checkpoints gives; the listing reads it and shows what it showed before;
`db check` reports a damaged row in one line with the remedy, and `rebuild-threads` is that remedy;
the migration fills it from the checkpoints already stored, and its downgrade drops it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import new_db_target
from helpers import langgraph_graphs as lg
from test_langgraph_saver import opened

pytest.importorskip("langgraph.checkpoint.base")

from langgraph.checkpoint.base.id import uuid6

from ckptdb import migrate
from ckptdb.cli import main
from ckptdb.langgraph import AsyncCkptdbSaver, CkptdbSaver
from ckptdb.langgraph_import import run_langgraph_import
from ckptdb.langgraph_inspect import checkpoint_time, open_stored, threads

HELPERS = Path(__file__).parent / "helpers"
REPO = Path(__file__).resolve().parents[1]

GROUPED = (
    "SELECT t.thread_id, t.checkpoint_ns, t.n, t.newest, c.step, CAST(c.metadata AS TEXT) FROM ("
    "SELECT thread_id, checkpoint_ns, count(*) AS n, max(checkpoint_id) AS newest FROM langgraph_checkpoints "
    "GROUP BY thread_id, checkpoint_ns) t JOIN langgraph_checkpoints c ON c.thread_id = t.thread_id "
    "AND c.checkpoint_ns = t.checkpoint_ns AND c.checkpoint_id = t.newest "
    "ORDER BY t.thread_id, t.checkpoint_ns"
)
"""What the thread table must hold, from the checkpoints themselves (the listing's old query)."""
TABLE = (
    "SELECT thread_id, checkpoint_ns, checkpoints, newest_checkpoint_id, step, CAST(metadata AS TEXT) "
    "FROM langgraph_threads ORDER BY thread_id, checkpoint_ns"
)


async def fetch(saver: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    if isinstance(saver, CkptdbSaver):
        return [tuple(r) for r in saver.store.backend.fetchall(sql, params)]
    return [tuple(r) for r in await saver.store.backend.fetchall(sql, params)]


async def write_sql(saver: Any, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    if isinstance(saver, CkptdbSaver):
        saver.store.backend.write(statements)
    else:
        await saver.store.backend.write(statements)


def _normal(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(r[0], r[1], int(r[2]), r[3], None if r[4] is None else int(r[4]), r[5]) for r in rows]


async def assert_exact(saver: Any) -> list[tuple[Any, ...]]:
    grouped = _normal(await fetch(saver, GROUPED))
    assert _normal(await fetch(saver, TABLE)) == grouped
    return grouped


def checkpoint(step: int, version: str, checkpoint_id: str | None = None) -> Any:
    return {
        "v": 4,
        "id": checkpoint_id or str(uuid6(clock_seq=step)),
        "ts": datetime.now(UTC).isoformat(),
        "channel_values": {"count": step, "messages": [f"m{n}" for n in range(step + 1)]},
        "channel_versions": {"count": version, "messages": version},
        "versions_seen": {},
        "updated_channels": ["count", "messages"],
    }


def config(thread: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    configurable: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def put(saver: Any, cfg: Any, cp: Any, metadata: dict[str, Any]) -> Any:
    versions = cp["channel_versions"]
    if isinstance(saver, CkptdbSaver):
        return saver.put(cfg, cp, metadata, versions)
    return await saver.aput(cfg, cp, metadata, versions)


async def grow(saver: Any, thread: str, steps: int, ns: str = "", run_id: str | None = None) -> list[Any]:
    cfg = config(thread, ns)
    stored = []
    version = None
    for step in range(steps):
        version = saver.get_next_version(version, None)
        metadata: dict[str, Any] = {"source": "loop", "step": step}
        if run_id is not None:
            metadata["run_id"] = run_id
        cfg = await put(saver, cfg, checkpoint(step, version), metadata)
        stored.append(cfg)
    return stored


async def call(saver: Any, name: str, *args: Any, **kwargs: Any) -> None:
    if isinstance(saver, CkptdbSaver):
        getattr(saver, name)(*args, **kwargs)
    else:
        await getattr(saver, "a" + name)(*args, **kwargs)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_every_saver_write_keeps_the_thread_table_exact(engine: str, kind: str, tmp_path: Path) -> None:
    async with opened(kind, new_db_target(engine, tmp_path)) as saver:
        assert await assert_exact(saver) == []
        t1 = await grow(saver, "t1", 5)
        await grow(saver, "t1", 3, ns="child")
        await grow(saver, "t2", 4)
        assert [(r[0], r[1], r[2]) for r in await assert_exact(saver)] == [
            ("t1", "", 5),
            ("t1", "child", 3),
            ("t2", "", 4),
        ]

        # a re-put of the newest id replaces its step and metadata; it is not counted twice
        newest = t1[-1]["configurable"]["checkpoint_id"]
        again = checkpoint(40, "9.0", newest)
        await put(saver, t1[-2], again, {"source": "update", "step": 40})
        rows = await assert_exact(saver)
        assert rows[0][2:5] == (5, newest, 40) and json.loads(rows[0][5])["source"] == "update"
        # a re-put of an older id changes nothing the table shows
        older = t1[1]["configurable"]["checkpoint_id"]
        await put(saver, t1[0], checkpoint(41, "9.1", older), {"source": "update", "step": 41})
        assert (await assert_exact(saver))[0][2:5] == (5, newest, 40)
        # a checkpoint with an id older than the newest, put last: counted, not the newest
        early = "1f000000-0000-6000-8000-000000000001"  # a UUIDv6 of early 2024
        await put(saver, config("t1"), checkpoint(0, "0.5", early), {"source": "fork", "step": -7})
        assert (await assert_exact(saver))[0][2:4] == (6, newest)

        await call(saver, "copy_thread", "t1", "t3")
        await call(saver, "copy_thread", "t1", "t3")  # every row there already: nothing counted
        rows = await assert_exact(saver)
        assert [(r[0], r[1], r[2]) for r in rows if r[0] == "t3"] == [("t3", "", 6), ("t3", "child", 3)]

        await call(saver, "prune", ["t1"], strategy="keep_latest")
        assert [(r[0], r[1], r[2]) for r in await assert_exact(saver) if r[0] == "t1"] == [
            ("t1", "", 1),
            ("t1", "child", 1),
        ]
        await call(saver, "prune", ["t2"], strategy="delete")
        assert "t2" not in {r[0] for r in await assert_exact(saver)}

        # delete_for_runs takes the newest of one thread (the next one down becomes the newest)
        # and all of another
        await grow(saver, "t4", 3)
        await grow(saver, "t4", 2, run_id="run-x")
        await grow(saver, "t5", 2, run_id="run-x")
        await call(saver, "delete_for_runs", ["run-x"])
        rows = await assert_exact(saver)
        assert [r[2:5] for r in rows if r[0] == "t4"] == [(3, rows[-1][3], 2)] and "t5" not in {
            r[0] for r in rows
        }

        await call(saver, "delete_thread", "t3")
        assert "t3" not in {r[0] for r in await assert_exact(saver)}

        # a hand-written UPDATE that moves the newest checkpoint to another thread
        [(head,)] = await fetch(
            saver, "SELECT max(checkpoint_id) FROM langgraph_checkpoints WHERE thread_id = 't4'"
        )
        await write_sql(
            saver, [("UPDATE langgraph_checkpoints SET thread_id = 'moved' WHERE checkpoint_id = ?", (head,))]
        )
        rows = await assert_exact(saver)
        assert [r[:3] for r in rows if r[0] in ("t4", "moved")] == [("moved", "", 1), ("t4", "", 2)]

        # a transaction that fails leaves no count behind
        with pytest.raises(Exception):  # noqa: B017 - the engine's own constraint error
            await write_sql(
                saver,
                [
                    ("DELETE FROM langgraph_checkpoints WHERE thread_id = 't4'", ()),
                    ("INSERT INTO langgraph_checkpoints (thread_id) VALUES ('broken')", ()),
                ],
            )
        assert [r[:3] for r in await assert_exact(saver) if r[0] == "t4"] == [("t4", "", 2)]

        await grow(saver, "t6", 2)
        emptied = (
            "TRUNCATE langgraph_checkpoints" if engine == "postgres" else "DELETE FROM langgraph_checkpoints"
        )
        await write_sql(saver, [(emptied, ())])
        assert await assert_exact(saver) == []


def _cli(db: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["--db", db, *args])


async def _exact_at(db: str) -> list[tuple[Any, ...]]:
    store = await open_stored(db, readonly=True)
    try:
        grouped = _normal([tuple(r) for r in await store.backend.fetchall(GROUPED)])
        assert _normal([tuple(r) for r in await store.backend.fetchall(TABLE)]) == grouped
        return grouped
    finally:
        await store.close()


def test_import_and_the_cli_prune_and_delete_keep_it_exact_and_the_listing_reads_it(
    engine: str, tmp_path: Path
) -> None:
    source = tmp_path / "langgraph.sqlite"
    lg.write_sqlite(source)
    db = new_db_target(engine, tmp_path)
    assert asyncio.run(run_langgraph_import(db, source)).exit_status == 0
    assert asyncio.run(run_langgraph_import(db, source)).exit_status == 0  # all unchanged: nothing counted
    grouped = asyncio.run(_exact_at(db))
    assert {r[0] for r in grouped} == set(lg.THREADS) and any(r[1] for r in grouped)

    # the listing is the grouping, row for row, with the newest's time
    done = _cli(db, "langgraph", "threads", "-f", "jsonl")
    assert done.exit_code == 0, done.output
    listed = [json.loads(line) for line in done.stdout.splitlines()]
    assert listed == [
        {
            "thread_id": r[0],
            "checkpoint_ns": r[1],
            "checkpoints": r[2],
            "step": r[4],
            "newest_checkpoint_id": r[3],
            "updated": checkpoint_time(r[3]),
            "metadata": json.loads(r[5]),
        }
        for r in grouped
    ]
    assert (
        _cli(db, "langgraph", "threads", "--limit", "2", "-f", "jsonl").stdout.splitlines()
        == (done.stdout.splitlines()[:2])
    )

    assert _cli(db, "langgraph", "prune", "--keep-last", "2", "-y").exit_code == 0
    assert {r[2] for r in asyncio.run(_exact_at(db))} <= {1, 2}
    assert _cli(db, "langgraph", "delete", "long", "-y").exit_code == 0
    assert "long" not in {r[0] for r in asyncio.run(_exact_at(db))}
    assert _cli(db, "db", "check").exit_code == 0


def test_db_check_reports_a_damaged_thread_table_and_rebuild_threads_mends_it(
    engine: str, tmp_path: Path
) -> None:
    source = tmp_path / "langgraph.sqlite"
    lg.write_sqlite(source)
    db = new_db_target(engine, tmp_path)
    assert asyncio.run(run_langgraph_import(db, source)).exit_status == 0
    assert _cli(db, "db", "check").exit_code == 0

    async def damage() -> None:
        store = await open_stored(db, readonly=False)
        try:
            await store.backend.write(
                [
                    (
                        "UPDATE langgraph_threads SET checkpoints = checkpoints + 1 "
                        "WHERE thread_id = 'approved' AND checkpoint_ns = ''",
                        (),
                    ),
                    ("DELETE FROM langgraph_threads WHERE thread_id = 'rejected' AND checkpoint_ns = ''", ()),
                    (
                        "INSERT INTO langgraph_threads (thread_id, checkpoint_ns, checkpoints, "
                        "newest_checkpoint_id, step, metadata) VALUES ('ghost', '', 2, 'x', 1, NULL)",
                        (),
                    ),
                    (
                        "UPDATE langgraph_threads SET step = 99 "
                        "WHERE thread_id = 'waiting' AND checkpoint_ns = ''",
                        (),
                    ),
                ]
            )
        finally:
            await store.close()

    asyncio.run(damage())
    [(approved,)] = [(r[2],) for r in asyncio.run(_grouped(db)) if r[:2] == ("approved", "")]
    # the listing reads the table: it shows the damaged count
    listed = _cli(db, "langgraph", "threads", "-f", "jsonl")
    first = json.loads(listed.stdout.splitlines()[0])
    assert (first["thread_id"], first["checkpoints"]) == ("approved", approved + 1)
    # prune and delete decide from the checkpoints, whatever the table says
    plan = _cli(db, "langgraph", "prune", "--keep-last", "1", "--dry-run")
    assert plan.exit_code == 0 and "rejected" in plan.stdout and "ghost" not in plan.stdout
    assert _cli(db, "langgraph", "delete", "ghost", "-y").exit_code == 1
    done = _cli(db, "db", "check")
    assert done.exit_code == 3, done.output
    lines = [line for line in done.stdout.splitlines() if line.startswith("langgraph    thread")]
    assert lines == [
        f"langgraph    thread 'approved' namespace '': {approved + 1:,} checkpoints in the thread table, "
        f"{approved:,} stored",
        f"langgraph    thread 'rejected' namespace '': "
        f"{next(r[2] for r in asyncio.run(_grouped(db)) if r[:2] == ('rejected', '')):,} checkpoints, "
        "not in the thread table",
        "langgraph    thread 'waiting' namespace '': the thread table's step or metadata is not the newest "
        "checkpoint's",
        "langgraph    thread 'ghost' namespace '': 2 checkpoints in the thread table, none stored",
    ]
    assert done.stderr.strip().splitlines() == [
        "the LangGraph thread table disagrees with the checkpoints: run `ckptdb langgraph rebuild-threads` "
        "(it makes the table again from them)"
    ]
    rebuilt = _cli(db, "langgraph", "rebuild-threads")
    assert rebuilt.exit_code == 0 and rebuilt.stdout.startswith("rebuilt the thread table: ")
    asyncio.run(_exact_at(db))
    assert _cli(db, "db", "check").exit_code == 0


async def _grouped(db: str) -> list[tuple[Any, ...]]:
    store = await open_stored(db, readonly=True)
    try:
        return _normal([tuple(r) for r in await store.backend.fetchall(GROUPED)])
    finally:
        await store.close()


def _raw(db: str, statements: Sequence[str]) -> list[tuple[Any, ...]]:
    """Statements straight through the driver (the store refuses a schema behind head)."""
    if db.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            found: list[tuple[Any, ...]] = []
            for sql in statements:
                cursor = conn.execute(sql)
                if cursor.description is not None:
                    found = [tuple(r) for r in cursor.fetchall()]
            return found
    import sqlite3

    with sqlite3.connect(db) as conn:
        found = []
        for sql in statements:
            found = [tuple(r) for r in conn.execute(sql).fetchall()]
        return found


async def test_the_migration_fills_the_table_and_its_downgrade_drops_it(engine: str, tmp_path: Path) -> None:
    db = new_db_target(engine, tmp_path)
    async with AsyncCkptdbSaver.from_conn_string(db) as saver:
        await grow(saver, "a", 4)
        await grow(saver, "a", 2, ns="sub")
        await grow(saver, "b", 3)
    migrate.downgrade(db, "0006_langgraph_checkpoints_view")
    tables = _raw(
        db,
        [
            # with no thread table left, a trigger that wrote to it would fail these
            "DELETE FROM langgraph_checkpoints WHERE thread_id = 'b'",
            "UPDATE langgraph_checkpoints SET metadata = '{\"step\": 70}' WHERE thread_id = 'a' "
            "AND checkpoint_ns = 'sub'",
            "SELECT count(*) FROM langgraph_checkpoints",
        ],
    )
    assert tables == [(6,)]
    migrate.upgrade(db)
    rows = await _exact_at(db)
    assert [r[:3] for r in rows] == [("a", "", 4), ("a", "sub", 2)] and json.loads(rows[1][5]) == {"step": 70}


@pytest.mark.parametrize("shape", ["different threads", "one thread"])
async def test_processes_writing_at_once_keep_the_counts_exact(
    engine: str, shape: str, tmp_path: Path
) -> None:
    """Real processes: two putting (every third id put twice), on two threads or on one, while a
    third prunes that thread over and over (keep_latest: the newest moves under the pruner)."""
    db = new_db_target(engine, tmp_path)
    async with AsyncCkptdbSaver.from_conn_string(db):
        pass  # created once, so the workers only write
    threads_of = ["w-0", "w-1"] if shape == "different threads" else ["shared", "shared"]
    jobs = [["put", thread, "60"] for thread in threads_of] + [["prune", "shared", "25"]]
    workers = [
        subprocess.Popen(
            [sys.executable, str(HELPERS / "lg_threads_worker.py"), db, *job],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for job in jobs
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0 and out.strip() == "ok", err
    rows = await _exact_at(db)
    if shape == "different threads":
        assert [r[:3] for r in rows] == [("w-0", "", 60), ("w-1", "", 60)]
    else:
        assert [r[:2] for r in rows] == [("shared", "")] and 1 <= rows[0][2] <= 120


async def test_the_listing_streams_every_thread_in_pages(engine: str, tmp_path: Path) -> None:
    db = new_db_target(engine, tmp_path)
    async with AsyncCkptdbSaver.from_conn_string(db) as saver:
        for n in range(23):
            await grow(saver, f"thread-{n:02}", 1 + n % 3)
        store = saver.store
        every = [t async for t in threads(store)]
        assert [(t.summary.thread_id, t.summary.count) for t in every] == [
            (f"thread-{n:02}", 1 + n % 3) for n in range(23)
        ]
        assert all(t.updated == checkpoint_time(t.summary.newest_checkpoint_id) for t in every)
        async with aclosing(threads(store, 5, after=("thread-04", ""))) as found:
            assert [t.summary.thread_id async for t in found] == [f"thread-{n:02}" for n in range(5, 10)]
