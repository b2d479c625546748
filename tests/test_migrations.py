"""Migrations: the tree matches the models, round-trips, gates old and new schemas, ships in the wheel."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import pg_database_url

from ckptdb import Checkpoint, CheckpointStore, SchemaError, StoreError, Timestamp, migrate, open_store
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.revision import HEAD, KNOWN_REVISIONS, VERSION_TABLE
from ckptdb.sql.schema import metadata

REPO = Path(__file__).resolve().parents[1]


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}


def test_revision_constants_match_the_alembic_tree() -> None:
    script = migrate.script_directory()
    history = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert tuple(history) == KNOWN_REVISIONS
    assert script.get_heads() == [HEAD]
    assert migrate.head() == HEAD


def test_models_and_migrations_do_not_drift(tmp_path: Path) -> None:
    db = tmp_path / "drift.db"
    migrate.upgrade(db)
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def _named_objects(url: str) -> dict[str, object]:
    """The names of the checkpoints table's keys, checks and indexes, as the database reports them."""
    engine = sa.create_engine(url)
    try:
        found = sa.inspect(engine)
        return {
            "primary key": found.get_pk_constraint("checkpoints")["name"],
            "checks": sorted(str(c["name"]) for c in found.get_check_constraints("checkpoints")),
            "indexes": sorted(str(i["name"]) for i in found.get_indexes("checkpoints")),
        }
    finally:
        engine.dispose()


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrations_name_every_constraint_and_index_as_the_models_do(tmp_path: Path, engine: str) -> None:
    """Autogenerate does not compare constraint names: a migration once named the check
    `ck_checkpoints_ck_checkpoints_interrupt_type` (the naming convention applied twice)."""
    if engine == "sqlite":
        migrated, modelled = (f"sqlite:///{tmp_path / name}" for name in ("migrated.db", "modelled.db"))
    else:
        migrated, modelled = (
            pg_database_url(migrated=False).replace("postgresql://", "postgresql+psycopg://", 1) for _ in "ab"
        )
    migrate.upgrade(migrated)
    creator = sa.create_engine(modelled)
    metadata.create_all(creator, tables=[metadata.tables["checkpoints"]])
    creator.dispose()
    assert (
        _named_objects(migrated)
        == _named_objects(modelled)
        == {
            "primary key": "pk_checkpoints",
            "checks": ["ck_checkpoints_interrupt_type"],
            "indexes": [
                "ix_checkpoints_created_at_id",
                "ix_checkpoints_graph_name_created_at_id",
                "ix_checkpoints_graph_name_save_seq_created_at_id",
                "ix_checkpoints_save_seq_created_at_id",
            ],
        }
    )


async def test_upgrade_downgrade_round_trip_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "rt.db"
    migrate.upgrade(db)
    assert migrate.current(db) == HEAD
    cp = Checkpoint.new("g", "n", {"values": {"k": 1}}, ["a"], 1, "beforenode")
    async with await open_store(db) as store:
        await store.save(cp)
    # every step down and back up, ending at head, with the row intact where the table survives
    for revision in reversed(KNOWN_REVISIONS[:-1]):
        migrate.downgrade(db, revision)
        assert migrate.current(db) == revision
        assert "checkpoints" in _tables(db)
    migrate.upgrade(db)
    async with await open_store(db) as store:
        loaded = await store.load(cp.id)
    assert loaded is not None and loaded.to_json() == cp.to_json()
    migrate.downgrade(db, "base")
    assert migrate.current(db) is None
    assert "checkpoints" not in _tables(db)
    migrate.upgrade(db)
    assert migrate.current(db) == HEAD
    assert {"checkpoints", VERSION_TABLE} <= _tables(db)


async def _latest_id(store: CheckpointStore, graph: str) -> str | None:
    latest = await store.latest(graph)
    return None if latest is None else latest.id


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_save_order_migration_up_and_down_with_data(tmp_path: Path, engine: str) -> None:
    """0003 adds the save order: rows already stored keep the (created_at, id) order they had, and
    every save after the upgrade is later than all of them, whatever its clock says; down and up
    again keeps every row exactly."""
    db = str(tmp_path / "order.db") if engine == "sqlite" else pg_database_url(migrated=False)
    migrate.upgrade(db, "0002_checkpoint_summary_view")
    base = 1_793_667_827_000_000_000

    def make(cid: str, graph: str, seconds: int) -> Checkpoint:
        return Checkpoint(
            cid, graph, "n", {"v": cid}, [], 0, Timestamp(base + seconds * 10**9), None, "afternode"
        )

    old = [make("a-new", "a", 30), make("a-old", "a", 10), make("b-tie-2", "b", 5), make("b-tie-1", "b", 5)]
    url = f"sqlite:///{db}" if engine == "sqlite" else db.replace("postgresql://", "postgresql+psycopg://", 1)
    sql_engine = sa.create_engine(url)
    columns = ", ".join(sqlrows.COLUMNS)
    marks = ", ".join(f":c{i}" for i in range(len(sqlrows.COLUMNS)))
    with sql_engine.begin() as conn:  # the rows as ckptdb wrote them at 0002: no save_seq column
        for cp in old:
            values = {f"c{i}": v for i, v in enumerate(sqlrows.to_row(cp))}
            conn.execute(sa.text(f"INSERT INTO checkpoints ({columns}) VALUES ({marks})"), values)
    migrate.upgrade(db)
    async with await open_store(db) as store:
        assert await _latest_id(store, "a") == "a-new"
        assert await _latest_id(store, "b") == "b-tie-2"
        await store.save(make("a-skewed", "a", -3600))  # a host clock an hour slow, saved after
        assert await _latest_id(store, "a") == "a-skewed"
    with sql_engine.connect() as conn:
        order = conn.execute(
            sa.text("SELECT id, save_seq FROM checkpoints ORDER BY save_seq, created_at, id")
        )
        assert [tuple(r) for r in order] == [
            ("b-tie-1", 0),
            ("b-tie-2", 0),
            ("a-old", 0),
            ("a-new", 0),
            ("a-skewed", 1),
        ]
    migrate.downgrade(db, "0002_checkpoint_summary_view")
    with sql_engine.connect() as conn:
        names = [c["name"] for c in sa.inspect(conn).get_columns("checkpoints")]
        indexes = sorted(str(i["name"]) for i in sa.inspect(conn).get_indexes("checkpoints"))
    assert "save_seq" not in names
    assert indexes == ["ix_checkpoints_created_at_id", "ix_checkpoints_graph_name_created_at_id"]
    migrate.upgrade(db)
    async with await open_store(db) as store:
        kept = {cp.id: cp.to_json() async for cp in store.iter_checkpoints()}
        assert await _latest_id(store, "a") == "a-new"  # order of 0002 again
        await store.save(make("later", "b", 0))
        assert await _latest_id(store, "b") == "later"  # the counter restarts fine
    assert kept == {cp.id: cp.to_json() for cp in [*old, make("a-skewed", "a", -3600)]}
    sql_engine.dispose()


async def test_new_file_is_created_at_head_on_first_open(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    async with await open_store(db) as store:
        assert await store.list() == []
    assert migrate.current(db) == HEAD
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_schema_behind_is_refused_with_upgrade_hint(tmp_path: Path) -> None:
    if len(KNOWN_REVISIONS) < 2:
        pytest.skip("only one schema revision exists")
    db = tmp_path / "old.db"
    migrate.upgrade(db, KNOWN_REVISIONS[-2])
    with pytest.raises(SchemaError, match=r"run `ckptdb --db .* db upgrade`"):
        await open_store(db)
    migrate.upgrade(db)
    async with await open_store(db) as store:
        assert await store.list() == []


async def test_schema_from_newer_ckptdb_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    migrate.upgrade(db)
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999_from_the_future'")
    with pytest.raises(SchemaError, match="upgrade ckptdb"):
        await open_store(db)


async def test_checkpoints_table_without_version_table_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "foreign.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE checkpoints (id TEXT PRIMARY KEY, blob BLOB)")
        conn.execute("INSERT INTO checkpoints VALUES ('x', x'00')")
    with pytest.raises(StoreError, match="did not create"):
        await open_store(db)
    with sqlite3.connect(db) as conn:  # untouched
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 1


async def test_read_only_open_never_creates_a_file(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    with pytest.raises(StoreError, match="no database at"):
        await open_store(db, create=False)
    assert not db.exists()


def test_concurrent_upgrades_from_several_processes(tmp_path: Path) -> None:
    db = tmp_path / "race.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ckptdb", "--db", str(db), "db", "upgrade"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    assert [r[2] for r in results] == [0, 0, 0, 0], results
    outputs = sorted(r[0].strip().split(": ", 1)[1] for r in results)
    assert outputs.count(f"already at {HEAD}") == 3, outputs
    assert migrate.current(db) == HEAD


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_finds_its_migrations(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("ckptdb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ckptdb/migrations/env.py" in names
    assert any(n.startswith("ckptdb/migrations/versions/0001_initial") for n in names)
    assert "ckptdb/py.typed" in names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ckptdb, ckptdb.migrate as m; print(ckptdb.__file__); print(m.script_location())",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    package_file, location = probe.stdout.split()
    assert package_file.startswith(str(target)) and location.startswith(str(target))
    done = subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", "w.db", "db", "upgrade"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"upgraded empty -> {HEAD}")


@pytest.mark.postgres
async def test_unbounded_time_text_migration_on_postgres(tmp_path: Path) -> None:
    """0004 lifts PostgreSQL's 40-character limit on created_at_text (chrono keeps every fraction
    digit it reads, as echo does); a downgrade that cannot put the limit back fails and loses nothing."""
    db = pg_database_url(migrated=False)
    migrate.upgrade(db, "0003_save_order")
    url = db.replace("postgresql://", "postgresql+psycopg://", 1)
    sql_engine = sa.create_engine(url)

    def time_text_type() -> str:
        with sql_engine.connect() as conn:
            [column] = [
                c for c in sa.inspect(conn).get_columns("checkpoints") if c["name"] == "created_at_text"
            ]
        return str(column["type"])

    assert time_text_type() == "VARCHAR(40)"
    migrate.upgrade(db)
    assert time_text_type() == "TEXT"
    long_time = "2026-11-03T01:03:47." + "9" * 60 + "+05:30"
    cp = Checkpoint("long-time", "g", "n", {}, [], 0, Timestamp.parse(long_time), None, "afternode")
    async with await open_store(db) as store:
        await store.save(cp)
    with pytest.raises(StoreError, match="value too long"):
        migrate.downgrade(db, "0003_save_order")
    sql_engine.dispose()
    assert time_text_type() == "TEXT"
    async with await open_store(db) as store:
        loaded = await store.load("long-time")
    assert loaded is not None and loaded.created_at.isoformat() == long_time
