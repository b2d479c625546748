"""PostgreSQL specifics: exact storage of what jsonb/text cannot hold, the migration lock, concurrency
from several processes, migrations and drift, and one-line errors. The shared contract suite
(test_store_contract.py) runs on PostgreSQL too, through conftest's "postgres" store factory.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import canonical_sha256

from ckptdb import (
    Checkpoint,
    CkptdbError,
    InvalidCheckpointError,
    StoreError,
    migrate,
    open_store,
)
from ckptdb.copy import copy_checkpoints
from ckptdb.echo_json import dumps_compact
from ckptdb.sql.postgres.backend import MIGRATION_LOCK_KEY
from ckptdb.sql.postgres.spelling import to_dollar_params
from ckptdb.sql.revision import HEAD, KNOWN_REVISIONS, VERSION_TABLE
from ckptdb.sql.schema import metadata

pytestmark = pytest.mark.postgres


def _cp(i: int, graph: str = "g", **state: Any) -> Checkpoint:
    return Checkpoint.new(graph, f"node{i}", {"values": {"i": i, **state}}, ["a"], i, "afternode")


def _sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def _fixtures(fixture_dir: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    return {e["id"]: (fixture_dir / e["path"]).read_bytes() for e in manifest["files"]}


def _with_db(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


# ── exactness: what jsonb and text would lose ─────────────────────────────────────────────────────


async def test_all_300_fixtures_round_trip_with_the_manifest_canonical_hash(
    pg_url: str, fixture_dir: Path, manifest: dict[str, Any]
) -> None:
    raw = _fixtures(fixture_dir, manifest)
    assert sum(e["contains_nul_char"] for e in manifest["files"]) > 0  # the hard case is in there
    async with await open_store(pg_url) as store:
        assert await store.save_many(Checkpoint.from_json(data) for data in raw.values()) == 300
        for entry in manifest["files"]:
            loaded = await store.load(entry["id"])
            assert loaded is not None, entry["id"]
            text = loaded.to_json()
            assert canonical_sha256(text) == entry["sha256_canonical"], entry["id"]
            assert text.encode("utf-8") == raw[entry["id"]], entry["id"]
    # the `json` column holds the very text the store wrote, \u0000 escapes included
    nul = next(e for e in manifest["files"] if e["contains_nul_char"])
    (stored,) = _sql(pg_url, "SELECT state_snapshot::text FROM checkpoints WHERE id = %s", nul["id"])[0]
    assert "\\u0000" in stored
    assert stored == dumps_compact(Checkpoint.from_json(raw[nul["id"]]).state_snapshot)


async def test_nul_key_order_duplicates_and_big_integers_are_kept_exactly(pg_url: str) -> None:
    state = {"z": 1, "a": {"y": "a\x00b", "b": [2**64 - 1, -(2**63), 10**30, 0.1, -0.0, 1e300]}, "m": "🙏"}
    cp = Checkpoint.new("g", "n", state, ["x"], 2**64 - 1, "toolapproval", pending_action={"k\x00": None})
    async with await open_store(pg_url) as store:
        await store.save(cp)
        loaded = await store.load(cp.id)
    assert loaded is not None and loaded.to_json() == cp.to_json()
    assert loaded.step_count == 2**64 - 1
    assert list(loaded.state_snapshot) == ["z", "a", "m"]  # insertion order, where jsonb would sort
    (stored,) = _sql(pg_url, "SELECT state_snapshot::text FROM checkpoints")[0]
    assert stored == dumps_compact(state)
    # the column type keeps duplicate keys and any order verbatim (jsonb would collapse and sort them)
    dup = '{"b":1,"a":2,"a":3,"s":"\\u0000"}'
    _sql(pg_url, "UPDATE checkpoints SET state_snapshot = %s::json", dup)
    assert _sql(pg_url, "SELECT state_snapshot::text FROM checkpoints")[0][0] == dup
    with pytest.raises(psycopg.errors.UntranslatableCharacter):
        _sql(pg_url, "SELECT %s::jsonb", dup)  # why the column is json, not jsonb


async def test_nul_in_a_text_field_is_refused_before_anything_is_written(pg_url: str) -> None:
    async with await open_store(pg_url) as store:
        await store.save(_cp(0))
        bad = _cp(1)
        bad.graph_name = "g\x00h"
        with pytest.raises(InvalidCheckpointError, match=r"graph_name.*U\+0000"):
            await store.save(bad)
        with pytest.raises(InvalidCheckpointError, match="U\\+0000"):
            await store.save_many([_cp(2), bad, _cp(3)])
        # concurrent saves share a transaction: the refused one does not take the others down
        good = [_cp(i) for i in range(10, 20)]
        outcome = await asyncio.gather(*(store.save(c) for c in [*good, bad]), return_exceptions=True)
        assert [type(o) for o in outcome[:-1]] == [type(None)] * 10
        assert isinstance(outcome[-1], InvalidCheckpointError)
        assert await store.count() == 11
        assert await store.load(bad.id) is None  # bad.id is fine; its graph name was the problem
        bad.id = "nul\x00id"
        bad.graph_name = "g"
        with pytest.raises(InvalidCheckpointError, match=r"'id'.*U\+0000"):
            await store.save(bad)
        assert await store.load(bad.id) is None  # a lookup by such an id finds nothing, no error
        await store.delete(bad.id)
        assert await store.count() == 11
        assert (await store.query(graph_name="g\x00h")).items == []


async def test_state_filters_work_on_a_table_holding_nul_documents(pg_url: str) -> None:
    rows = [
        _cp(1, s="x\x00y", ok=True),
        _cp(2, s="plain", ok=False, lit="\\u0000"),  # a literal backslash-u0000, not a NUL
        _cp(3, s="zz", ok=True, n=2**70),
    ]
    rows[0].state_snapshot["messages"] = [{"content": "\x00"}]
    async with await open_store(pg_url) as store:
        await store.save_many(rows)

        async def match(condition: str) -> set[int]:
            return {int(i.current_node[4:]) for i in (await store.query(state=condition)).items}

        assert await match("values.ok == true") == {1, 3}
        assert await match("values.ok != true") == {2}
        assert await match('values.s == "x\\u0000y"') == {1}
        assert await match('values.lit == "\\\\u0000"') == {2}
        assert await match('values.s < "y"') == {1, 2}  # 'x\x00y' < 'y'
        assert await match("values.n == 1180591620717411303424") == {3}
        assert await match("values.n > 1180591620717411303423") == {3}
        assert await match("messages[0].content exists") == {1}
        assert await match("messages.0 exists") == set()  # a key step never indexes an array
        assert await match("values.i >= 2") == {2, 3}


# ── migrations on PostgreSQL ──────────────────────────────────────────────────────────────────────


async def test_migrations_upgrade_downgrade_round_trip(pg_empty_url: str) -> None:
    url = pg_empty_url
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == HEAD
    cp = _cp(7)
    async with await open_store(url) as store:
        await store.save(cp)
    for revision in reversed(KNOWN_REVISIONS[:-1]):
        migrate.downgrade(url, revision)
        assert migrate.current(url) == revision
    migrate.upgrade(url)
    async with await open_store(url) as store:
        loaded = await store.load(cp.id)
    assert loaded is not None and loaded.to_json() == cp.to_json()
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    tables = {r[0] for r in _sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {VERSION_TABLE}  # alembic keeps its (empty) version table; ckptdb's are gone
    migrate.upgrade(url)
    assert migrate.current(url) == HEAD


def test_models_and_migrations_do_not_drift_on_postgres(pg_url: str) -> None:
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        options = {"compare_type": True, "version_table": VERSION_TABLE}
        context = MigrationContext.configure(conn, opts=options)
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []
    columns = dict(
        _sql(
            pg_url,
            "SELECT column_name, coalesce(collation_name, data_type) FROM information_schema.columns "
            "WHERE table_name = 'checkpoints'",
        )
    )
    assert columns["state_snapshot"] == columns["path"] == columns["pending_action"] == "json"
    assert columns["id"] == columns["created_at"] == "C"  # bytewise order whatever the locale


async def test_first_open_of_an_empty_database_creates_the_schema(pg_empty_url: str) -> None:
    with pytest.raises(StoreError, match="no ckptdb schema"):
        await open_store(pg_empty_url, migrate=False)
    async with await open_store(pg_empty_url) as store:
        assert await store.list() == []
    assert migrate.current(pg_empty_url) == HEAD


def test_concurrent_db_upgrade_from_several_processes(pg_empty_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ckptdb", "--db", pg_empty_url, "db", "upgrade"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    # Without the lock, two of them would both CREATE TABLE and one would fail. (How many *say*
    # "upgraded" is a separate matter: the CLI reads the revision before taking the lock.)
    assert [r[2] for r in results] == [0, 0, 0, 0], results
    assert all(r[1] == "" for r in results), results
    assert any("upgraded empty" in r[0] for r in results), results
    assert migrate.current(pg_empty_url) == HEAD
    assert _sql(pg_empty_url, f"SELECT count(*) FROM {VERSION_TABLE}") == [(1,)]


def test_upgrade_waits_for_the_migration_advisory_lock(pg_empty_url: str) -> None:
    with psycopg.connect(pg_empty_url) as holder:  # a transaction, like a running migration
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        proc = subprocess.Popen(
            [sys.executable, "-m", "ckptdb", "--db", pg_empty_url, "db", "upgrade"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        waiting: list[tuple[Any, ...]] = []
        while not waiting and time.monotonic() < deadline and proc.poll() is None:
            waiting = _sql(
                pg_empty_url,
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND ((classid::bigint << 32) | objid::bigint) = %s",
                MIGRATION_LOCK_KEY,
            )
            time.sleep(0.05)
        assert waiting, "db upgrade did not wait on the migration lock"
        assert proc.poll() is None
        assert _sql(pg_empty_url, "SELECT to_regclass('checkpoints')")[0][0] is None
        holder.rollback()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert migrate.current(pg_empty_url) == HEAD


# ── concurrency ───────────────────────────────────────────────────────────────────────────────────

_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from ckptdb import Checkpoint, open_store

    async def main(url, tag, per_task):
        async with await open_store(url) as store:
            async def task(t):
                for i in range(per_task):
                    state = {"values": {"i": i, "t": t}}
                    await store.save(Checkpoint.new(f"g{tag}", f"n{t}", state, ["a"], i, "afternode"))
            await asyncio.gather(*(task(t) for t in range(16)))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_16_way_concurrent_saves_from_several_processes(pg_url: str) -> None:
    processes, per_task = 4, 15
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", _WRITER, pg_url, str(p), str(per_task))
        for p in range(processes)
    ]
    assert [await p.wait() for p in procs] == [0] * processes
    async with await open_store(pg_url) as store:
        assert await store.count() == processes * 16 * per_task
        for p in range(processes):
            assert len((await store.query(graph_name=f"g{p}", limit=None)).items) == 16 * per_task


async def test_reads_run_side_by_side_on_the_pool(pg_url: str) -> None:
    async with await open_store(pg_url) as store:
        started = time.perf_counter()
        await asyncio.gather(*(store.backend.fetchall("SELECT pg_sleep(0.3)") for _ in range(4)))
        assert time.perf_counter() - started < 0.9  # four 0.3 s reads at once, not one after another


async def test_a_deadlock_is_retried_as_a_whole_transaction(pg_url: str) -> None:
    _sql(pg_url, "SELECT 1")
    database = urlsplit(pg_url).path.lstrip("/")
    _sql(pg_url, f"ALTER DATABASE \"{database}\" SET deadlock_timeout = '500ms'")  # the store's
    x, y = _cp(1), _cp(2)
    async with await open_store(pg_url) as store:
        await store.save_many([x, y])
        with psycopg.connect(pg_url) as other:  # another writer, taking the same rows the other way
            other.execute("SET deadlock_timeout = '60s'")  # so the store is the one that finds it
            other.execute("UPDATE checkpoints SET current_node = 'other' WHERE id = %s", (y.id,))
            x.current_node = y.current_node = "ours"
            saving = asyncio.ensure_future(store.save_many([x, y]))  # locks x, then waits for y
            await asyncio.sleep(0.1)
            # Now `other` wants x: a deadlock, which the store's session detects (its shorter
            # deadlock_timeout), so PostgreSQL aborts the store's transaction; the backend runs it
            # again, and it goes through once `other` has committed.
            await asyncio.to_thread(
                other.execute, "UPDATE checkpoints SET current_node = 'other' WHERE id = %s", (x.id,)
            )
            other.commit()
            await saving
        loaded = [await store.load(cp.id) for cp in (x, y)]
    assert [cp.current_node for cp in loaded if cp is not None] == ["ours", "ours"]


# ── copy through PostgreSQL ───────────────────────────────────────────────────────────────────────


async def test_copy_sqlite_to_postgres_and_back_keeps_every_fixture_exactly(
    tmp_path: Path, pg_url: str, fixture_dir: Path, manifest: dict[str, Any]
) -> None:
    raw = _fixtures(fixture_dir, manifest)
    first, last = tmp_path / "first.db", tmp_path / "back.db"
    async with await open_store(first) as store:
        await store.save_many(Checkpoint.from_json(data) for data in raw.values())
    there = await copy_checkpoints(first, pg_url)
    assert (there.copied, there.source_after, there.destination_after) == (300, 300, 300)
    assert there.complete
    back = await copy_checkpoints(pg_url, last)
    assert (back.copied, back.destination_after, back.complete) == (300, 300, True)
    again = await copy_checkpoints(first, pg_url)
    assert (again.copied, again.unchanged) == (0, 300)
    async with await open_store(last) as store:
        for entry in manifest["files"]:
            loaded = await store.load(entry["id"])
            assert loaded is not None
            assert canonical_sha256(loaded.to_json()) == entry["sha256_canonical"]
            assert loaded.to_json().encode("utf-8") == raw[entry["id"]]


# ── errors are one line that says what to do ──────────────────────────────────────────────────────


async def test_connection_refused_names_host_and_port(pg_server_url: str) -> None:
    expected = r"127\.0\.0\.1:1 \(connection refused\).*`pg_isready -h 127\.0\.0\.1 -p 1`"
    with pytest.raises(StoreError, match=expected):
        await open_store("postgresql://postgres@127.0.0.1:1/x")


async def test_missing_database_and_unknown_user_are_clear(pg_server_url: str) -> None:
    with pytest.raises(StoreError, match=r"database ckptdb_no_such_db does not exist.*createdb"):
        await open_store(_with_db(pg_server_url, "ckptdb_no_such_db"))
    parts = urlsplit(pg_server_url)
    nobody = urlunsplit(parts._replace(netloc=f"nobody_here:pw@{parts.hostname}:{parts.port}"))
    with pytest.raises(StoreError, match="refused user nobody_here"):
        await open_store(nobody)


def test_cli_errors_are_one_line(pg_server_url: str) -> None:
    missing = _with_db(pg_server_url, "ckptdb_no_such_db")
    proc = subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", missing, "db", "upgrade"], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: database ckptdb_no_such_db does not exist on {urlsplit(missing).hostname}:"
        f"{urlsplit(missing).port}: create it first (`createdb -h {urlsplit(missing).hostname} -p "
        f"{urlsplit(missing).port} ckptdb_no_such_db`); ckptdb creates tables, not databases"
    ]


async def test_password_is_never_shown(pg_server_url: str) -> None:
    parts = urlsplit(pg_server_url)
    url = urlunsplit(parts._replace(netloc=f"someone:s3cret@{parts.hostname}:1", path="/x"))
    with pytest.raises(StoreError) as caught:
        await open_store(url)
    assert "s3cret" not in str(caught.value)


# ── small pieces ──────────────────────────────────────────────────────────────────────────────────


def test_placeholders_become_numbered_outside_quotes() -> None:
    sql = "SELECT '?' , \"a?\" FROM t WHERE a = ? AND b IN (?, ?) AND c ~ '(?<!x)'"
    expected = "SELECT '?' , \"a?\" FROM t WHERE a = $1 AND b IN ($2, $3) AND c ~ '(?<!x)'"
    assert to_dollar_params(sql) == expected


async def test_database_size_is_the_checkpoints_table(pg_url: str) -> None:
    async with await open_store(pg_url) as store:
        size = await store.backend.database_size()
    assert size is not None and size > 0


async def test_summary_view_reads_nul_documents(pg_url: str) -> None:
    cp = _cp(1, s="a\x00b")
    cp.state_snapshot["messages"] = [{"content": "hi"}]
    async with await open_store(pg_url) as store:
        await store.save(cp)
    assert _sql(pg_url, "SELECT message_count FROM checkpoint_summary") == [(1,)]


# ── inspection hooks (ckptdb sql / stats / vacuum) ────────────────────────────────────────────────


async def _readonly(store: Any, sql: str) -> list[tuple[Any, ...]]:
    return [row async for row in store.backend.stream_readonly(sql, batch=2)]


async def test_sql_streams_a_query_and_refuses_anything_else(pg_url: str) -> None:
    async with await open_store(pg_url) as store:
        await store.save_many([_cp(i) for i in range(5)])
        rows = await _readonly(store, "SELECT step_count AS n FROM checkpoints ORDER BY 1;")
        assert rows == [("n",), (0,), (1,), (2,), (3,), (4,)]
        refusals = {  # worded as on SQLite: "refused: `sql` only reads (...) ...: nothing was changed"
            "DELETE FROM checkpoints": "this statement is not a query: nothing was changed",
            "DROP TABLE checkpoints": "this statement is not a query: nothing was changed",
            "COPY checkpoints TO '/tmp/ckptdb-leak'": "this statement is not a query: nothing was changed",
            "COMMIT": "this statement is not a query: nothing was changed",
            "SELECT 1; DELETE FROM checkpoints": "one SQL statement at a time",
            "WITH d AS (DELETE FROM checkpoints RETURNING id) SELECT * FROM d": "not a query: nothing",
        }
        for sql, reason in refusals.items():
            with pytest.raises(CkptdbError, match=reason):
                await _readonly(store, sql)
        with pytest.raises(CkptdbError, match='SQL error: relation "nope" does not exist'):
            await _readonly(store, "SELECT * FROM nope")
        # functions that leave session state behind are refused before the server sees them
        with pytest.raises(CkptdbError, match=r"(set_config|pg_advisory_lock)\(\) is not one of them"):
            await _readonly(store, "SELECT set_config('search_path', 'nowhere', false), pg_advisory_lock(42)")
        assert await store.count() == 5
        assert _sql(pg_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]
        assert not Path("/tmp/ckptdb-leak").exists()


async def test_sizes_and_vacuum(pg_url: str) -> None:
    async with await open_store(pg_url) as store:
        cp = _cp(1, blob="é" * 1000)
        await store.save(cp)
        length = store.backend.byte_length_sql("state_snapshot")
        found = await store.backend.fetchall(f"SELECT {length} FROM checkpoints")
        assert found == [(len(dumps_compact(cp.state_snapshot).encode("utf-8")),)]
        await store.save_many([_cp(i, blob="x" * 5000) for i in range(2, 200)])
        before = await store.backend.database_size()
        await store.clear()
        await store.backend.vacuum()
        after = await store.backend.database_size()
        assert before is not None and after is not None and after < before
        assert await store.backend.free_bytes() is None


async def test_url_spellings_all_reach_the_same_database(pg_url: str) -> None:
    async with await open_store(pg_url) as store:
        await store.save(_cp(1))
    rest = pg_url.split("://", 1)[1]
    for scheme in ("postgres", "postgresql+asyncpg", "postgresql+psycopg"):
        url = f"{scheme}://{rest}"
        assert migrate.current(url) == HEAD
        async with await open_store(url, create=False) as store:
            assert await store.count() == 1


async def test_the_sqlite_options_are_accepted_and_mean_what_they_can(pg_url: str) -> None:
    """Code written against SQLite opens a PostgreSQL URL unchanged."""
    options = {"synchronous": "FULL", "busy_timeout_ms": 1500, "commit_on_loop": False, "read_on_loop": True}
    async with await open_store(pg_url, **options) as store:
        assert await store.backend.fetchall("SHOW lock_timeout") == [("1500ms",)]
        assert await store.backend.fetchall("SHOW synchronous_commit") == [("on",)]
        checkpoint = Checkpoint.new("g", "n", {"v": 1}, [], 0, "beforenode")
        await store.save(checkpoint)
        loaded = await store.load(checkpoint.id)
        assert loaded is not None and loaded.to_json() == checkpoint.to_json()


async def test_concurrent_saves_from_several_stores_never_share_a_save_order(pg_url: str) -> None:
    """Each store has its own pool, so these transactions really overlap on the server. The save
    order comes from a SEQUENCE: read as max(save_seq) + 1, two open transactions would both read
    the same max (READ COMMITTED) and their saves would tie."""
    stores = [await open_store(pg_url) for _ in range(4)]
    try:

        async def saver(store: Any, worker: int) -> None:
            for i in range(40):
                await store.save(_cp(worker * 1000 + i, graph=f"w{worker % 8}"))

        await asyncio.gather(*(saver(stores[w % 4], w) for w in range(16)))
    finally:
        for store in stores:
            await store.close()
    ((rows, distinct, lowest),) = _sql(
        pg_url, "SELECT count(*), count(DISTINCT save_seq), min(save_seq) FROM checkpoints"
    )
    assert (rows, distinct) == (640, 640) and lowest >= 1
