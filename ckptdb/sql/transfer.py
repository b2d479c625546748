"""Whole rows moving into a database: stored rows undecoded for `ckptdb copy`, and what an
import needs to write encoded rows (`rows.to_row`) and learn what the database did with them.

A copy moves rows as they are stored (JSON text, UTC text, `source`), never re-encoded, so the
rows here are `rows.COLUMNS` tuples as the driver returns them; `rows.same_content` compares
them and `rows.content` cuts one to what `rows.from_row` decodes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any

from ckptdb.sql import rows as sqlrows
from ckptdb.sql.backend import DatabaseTarget, InsertResult, Resolve, Row
from ckptdb.sql.engines import open_backend
from ckptdb.sql.store import SqlCheckpointStore

__all__ = [
    "InsertResult",
    "Resolve",
    "Row",
    "encodes_json_as_bytes",
    "has_schema",
    "rows_in_save_order",
    "stored_rows",
]

_IN_SAVE_ORDER = f"SELECT {sqlrows.SELECT_ALL} FROM checkpoints ORDER BY {', '.join(sqlrows.ORDER_KEY)}"


async def rows_in_save_order(
    store: SqlCheckpointStore, *, batch: int
) -> AsyncGenerator[tuple[Any, ...], None]:
    """Every row (`rows.COLUMNS`), oldest save first, streamed from one cursor `batch` rows at a
    time (the end of ix_checkpoints_save_seq_created_at_id: no sort), so the destination, which
    draws its own save order as it writes, keeps the rows' relative order."""
    async with aclosing(store.backend.stream(_IN_SAVE_ORDER, (), batch=batch)) as found:
        async for row in found:
            yield row


async def stored_rows(store: SqlCheckpointStore, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """The rows (`rows.COLUMNS`) stored under these ids, by id; absent ids are left out."""
    return await store.load_rows(ids)


def encodes_json_as_bytes(store: SqlCheckpointStore) -> bool:
    """What `rows.to_row(..., json_bytes=)` takes for this store: whether its driver binds a huge
    JSON text as UTF-8 bytes (SQLite), which spares a copy of every large state."""
    return store.backend.json_bytes


async def has_schema(target: DatabaseTarget) -> bool:
    """Whether the database holds any ckptdb table yet, asked on a connection of its own that
    creates nothing (a dry-run import into a PostgreSQL database not yet migrated)."""
    backend = open_backend(target)
    await backend.connect(create=False)
    try:
        has_tables, revision = await backend.schema_revision()
    finally:
        await backend.close()
    return has_tables or revision is not None
