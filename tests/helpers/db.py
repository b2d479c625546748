"""What a database holds, read the same way on every engine: through ckptdb's own store API
(`open_store(..., create=False)`), never through sqlite3 or psycopg, so a test's assertions on
stored rows are identical on SQLite and PostgreSQL.

Rows are `ckptdb.sql.rows.COLUMNS` tuples (id, graph_name, ..., extra, source; JSON columns as the
text stored), sorted by id in code point order.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ckptdb import Checkpoint, CkptdbError, open_store
from ckptdb.sql.engines import parse_target

Row = tuple[Any, ...]


def is_postgres(target: str | Path) -> bool:
    return parse_target(target).kind == "postgresql"


def display(target: str | Path) -> str:
    """How ckptdb names this database in messages and reports (an absolute path, or the URL)."""
    return parse_target(target).display()


async def stored_rows_async(target: str | Path) -> list[Row]:
    async with await open_store(target, create=False) as store:
        ids = [info.id async for info in store.iter_query(limit=None)]
        found = await store.load_rows(ids)
    return [found[cid] for cid in sorted(found)]


def stored_rows(target: str | Path) -> list[Row]:
    """Every stored row, all columns (`source` last), by id."""
    return asyncio.run(stored_rows_async(target))


def stored_ids(target: str | Path) -> list[str]:
    return [row[0] for row in stored_rows(target)]


def stored(target: str | Path, checkpoint_id: str) -> Checkpoint:
    async def load() -> Checkpoint:
        async with await open_store(target, create=False) as store:
            found = await store.load(checkpoint_id)
            assert found is not None, f"{checkpoint_id!r} is not stored"
            return found

    return asyncio.run(load())


def count_rows(target: str | Path) -> int:
    """Rows stored so far; 0 while the database or its schema does not exist yet (for polling a
    running import from outside)."""

    async def count() -> int:
        async with await open_store(target, create=False) as store:
            return await store.count()

    try:
        return asyncio.run(count())
    except CkptdbError:
        return 0


def fill(target: str | Path, checkpoints: Iterable[Checkpoint]) -> str:
    """Create the database (schema included) holding these checkpoints; returns the target."""

    async def save() -> None:
        async with await open_store(target) as store:
            await store.save_many(checkpoints)

    asyncio.run(save())
    return str(target)


def has_database(target: str | Path) -> bool:
    """Whether anything exists at all: the SQLite file, or any table in the PostgreSQL database.
    (A command that must create nothing leaves an empty PostgreSQL database without tables.)"""
    if not is_postgres(target):
        return Path(target).exists()
    import psycopg

    with psycopg.connect(target) as conn:
        found = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    return bool(found and found[0])


def write_marks(target: str | Path) -> Any:
    """Something that changes with any write, even one rewriting a row with the same values: the
    SQLite file's bytes (and whether a WAL appeared), or each PostgreSQL row version (xmin, ctid:
    an UPDATE or DELETE + INSERT makes new ones) and the schema version."""
    if not is_postgres(target):
        path = Path(target)
        wal = Path(f"{path}-wal")
        return hashlib.sha256(path.read_bytes()).hexdigest(), wal.exists() and wal.stat().st_size > 0
    import psycopg

    with psycopg.connect(target) as conn:
        versions = conn.execute("SELECT xmin::text, ctid::text, id FROM checkpoints ORDER BY id").fetchall()
        schema = conn.execute("SELECT version_num FROM ckptdb_alembic_version").fetchall()
    return versions, schema
