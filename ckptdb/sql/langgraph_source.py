"""Reading a database that LangGraph's official savers wrote (`langgraph-checkpoint-sqlite`,
`langgraph-checkpoint-postgres`), without changing a byte of it, and without LangGraph installed.

The source is opened through the engine map like any `--db`, read-only (SQLite: `mode=ro`, or
`immutable=1` where no writer can exist, and any `-wal`/`-shm` our reading made removed again;
PostgreSQL: every session `default_transaction_read_only`), and its schema is read from the
catalog before any row: the saver's tables with exactly the columns one of its releases created
(with or without `task_path`; PostgreSQL's `checkpoint_migrations` no further than the newest
migration known here), or one line saying why not.

Rows come back as stored: the `(type, bytes)` pairs, the checkpoint (SQLite: the serde's bytes,
channel values inside; PostgreSQL: the JSONB text, with the other values as `checkpoint_blobs`
rows) and the metadata (JSON bytes on SQLite, JSONB text on PostgreSQL), never decoded or
re-encoded. Checkpoints stream in keyset pages of `PAGE` (the primary key's order, one index range
per page), each page's writes (and blobs) fetched by one range query over the same key, so memory
holds one page whatever the source's size. A page's writes are put in LangGraph's order
(`writes_sort_key`: task_path, task_id, idx) here in Python, which compares code points as LangGraph
does, where PostgreSQL's ORDER BY would follow the database's collation.

The engine packages say only what differs (`ckptdb.sql.sqlite.langgraph_source`,
`ckptdb.sql.postgres.langgraph_source`: the catalog query, table and column names, the blob
query); every statement here is engine-neutral with `?` parameters.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ckptdb.errors import SchemaError
from ckptdb.sql.backend import Backend, DatabaseTarget, Row
from ckptdb.sql.engines import engine_part, open_backend, parse_target

__all__ = [
    "PAGE",
    "ChannelBlob",
    "LangGraphReader",
    "SourceCheckpoint",
    "SourceSchema",
    "SourceWrite",
    "ThreadRow",
]

PAGE = 100
"""Checkpoints per keyset page: the most the reader holds at once (with their writes and blobs)."""

_KEY = "thread_id, checkpoint_ns, checkpoint_id"
_COLUMNS = f"{_KEY}, parent_checkpoint_id, type, checkpoint, metadata"
_FIRST_PAGE = f"SELECT {_COLUMNS} FROM checkpoints ORDER BY {_KEY} LIMIT ?"
_NEXT_PAGE = f"SELECT {_COLUMNS} FROM checkpoints WHERE ({_KEY}) > (?, ?, ?) ORDER BY {_KEY} LIMIT ?"
_NEWEST = (
    f"SELECT {_COLUMNS} FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
    "ORDER BY checkpoint_id DESC LIMIT ?"
)
_OLDER = (
    f"SELECT {_COLUMNS} FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id < ? "
    "ORDER BY checkpoint_id DESC LIMIT ?"
)
_ONE = f"SELECT {_COLUMNS} FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
_THREADS = (
    "SELECT t.thread_id, t.checkpoint_ns, t.n, t.newest, c.metadata FROM ("
    "SELECT thread_id, checkpoint_ns, count(*) AS n, max(checkpoint_id) AS newest "
    "FROM checkpoints GROUP BY thread_id, checkpoint_ns) AS t "
    "JOIN checkpoints AS c ON c.thread_id = t.thread_id AND c.checkpoint_ns = t.checkpoint_ns "
    "AND c.checkpoint_id = t.newest ORDER BY t.thread_id, t.checkpoint_ns"
)
_COUNTS = "SELECT count(*) FROM checkpoints"


@dataclass(frozen=True, slots=True)
class SourceSchema:
    """Which saver wrote the source, and which of its schemas it has."""

    saver: str
    """`langgraph-checkpoint-sqlite` or `langgraph-checkpoint-postgres`."""
    task_path: bool
    """Whether the writes table has `task_path` (SQLite saver 3.1, PostgreSQL migration 9)."""
    blobs: bool
    """Whether channel values live in a blob table (PostgreSQL) rather than in the checkpoint."""
    migration: int | None = None
    """PostgreSQL: the newest row of `checkpoint_migrations` (None: the table is absent, as 1.0
    created none). SQLite: always None, the saver records no version."""

    def describe(self) -> str:
        parts = [self.saver]
        if self.blobs:
            parts.append(
                "no checkpoint_migrations" if self.migration is None else f"migration {self.migration}"
            )
        parts.append("writes with task_path" if self.task_path else "writes without task_path")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class ChannelBlob:
    """One `checkpoint_blobs` row a checkpoint's `channel_versions` names (PostgreSQL)."""

    channel: str
    version: str
    type: str
    data: bytes | None
    """None where the saver stored no value (type `empty`)."""


@dataclass(frozen=True, slots=True)
class SourceWrite:
    """One pending write, as stored."""

    task_id: str
    idx: int
    channel: str
    type: str | None
    data: bytes | None
    task_path: str | None
    """None when the source's schema has no `task_path` column (LangGraph reads it as '')."""


@dataclass(frozen=True, slots=True)
class SourceCheckpoint:
    """One checkpoint exactly as the source holds it, with its blobs and pending writes."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str | None
    """The serde's type of `checkpoint` (SQLite: `msgpack`, `json`...; PostgreSQL: unused, NULL)."""
    checkpoint: bytes | str
    """SQLite: the serde's bytes; PostgreSQL: the JSONB text (the primitive channel values inline)."""
    metadata: bytes | str | None
    """JSON as stored: bytes on SQLite, the JSONB text on PostgreSQL."""
    blobs: tuple[ChannelBlob, ...]
    """PostgreSQL: the channel values in `checkpoint_blobs`, in `channel_versions`' order as the
    database returns it; SQLite: () (the values are inside `checkpoint`)."""
    writes: tuple[SourceWrite, ...]
    """In LangGraph's order: task_path, task_id, idx."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.thread_id, self.checkpoint_ns, self.checkpoint_id)


@dataclass(frozen=True, slots=True)
class ThreadRow:
    """One (thread, namespace) of the source: how many checkpoints, and its newest one's metadata."""

    thread_id: str
    checkpoint_ns: str
    count: int
    newest_checkpoint_id: str
    metadata: bytes | str | None


def _refuse(where: str, why: str) -> SchemaError:
    return SchemaError(f"{where}: {why}: nothing was read or changed")


def detect_schema(
    where: str, dialect: ModuleType, columns: Sequence[Row], migration: int | None
) -> SourceSchema:
    """The saver schema the catalog rows (table, column) show, or SchemaError in one line."""
    tables: dict[str, set[str]] = {}
    for table, column in columns:
        tables.setdefault(str(table), set()).add(str(column))
    saver: str = dialect.SAVER
    writes_table: str = dialect.WRITES_TABLE
    if "checkpoints" not in tables or writes_table not in tables:
        raise _refuse(
            where,
            f"not a LangGraph saver database (no checkpoints and {writes_table} tables as {saver} "
            "creates them); give the file or database the saver wrote",
        )
    expected: frozenset[str] = dialect.CHECKPOINT_COLUMNS
    if tables["checkpoints"] != expected:
        raise _refuse(where, _unknown("checkpoints", tables["checkpoints"], expected, saver))
    write_columns: frozenset[str] = dialect.WRITE_COLUMNS
    found = tables[writes_table]
    if found not in (write_columns, write_columns | {"task_path"}):
        raise _refuse(where, _unknown(writes_table, found, write_columns | {"task_path"}, saver))
    blob_columns: frozenset[str] | None = dialect.BLOB_COLUMNS
    if blob_columns is not None and frozenset(tables.get("checkpoint_blobs", ())) != blob_columns:
        raise _refuse(
            where, _unknown("checkpoint_blobs", tables.get("checkpoint_blobs", set()), blob_columns, saver)
        )
    newest: int | None = dialect.NEWEST_MIGRATION
    if migration is not None and newest is not None and migration > newest:
        raise _refuse(
            where,
            f"unknown schema: {saver} migration {migration}, newer than the {newest} this ckptdb "
            "knows; upgrade ckptdb (pip install -U ckptdb)",
        )
    return SourceSchema(saver, "task_path" in found, blob_columns is not None, migration)


def _unknown(table: str, found: set[str], expected: frozenset[str], saver: str) -> str:
    extra = sorted(found - expected)
    missing = sorted(expected - found)
    said = "; ".join(
        part
        for part in (
            f"columns {', '.join(extra)} that no {saver} release created" if extra else "",
            f"no {', '.join(missing)}" if missing else "",
        )
        if part
    )
    return f"unknown schema: table {table} has {said} (not a LangGraph saver database, or a newer saver's)"


class LangGraphReader:
    """One read-only connection set to a LangGraph saver database; `open` it, `close` it."""

    def __init__(self, backend: Backend, dialect: ModuleType, schema: SourceSchema) -> None:
        self.backend = backend
        self.schema = schema
        self._blobs_sql: str | None = dialect.BLOBS_SQL
        task_path = "task_path" if schema.task_path else "NULL"
        self._writes_sql = (
            f"SELECT {_KEY}, task_id, idx, channel, type, {dialect.WRITE_VALUE}, {task_path} "
            f"FROM {dialect.WRITES_TABLE} WHERE ({_KEY}) >= (?, ?, ?) AND ({_KEY}) <= (?, ?, ?)"
        )

    @classmethod
    async def open(cls, source: str | Path | DatabaseTarget) -> LangGraphReader:
        target = parse_target(source)
        dialect = engine_part(target.kind, "langgraph_source")
        backend = open_backend(target)
        await backend.tidy_killed_readers()  # an earlier reader's files, left by a kill
        await backend.connect(create=False, readonly=True)
        try:
            columns = await backend.fetchall(dialect.COLUMNS_SQL)
            migration = None
            if dialect.MIGRATION_SQL is not None and any(r[0] == "checkpoint_migrations" for r in columns):
                [(migration,)] = await backend.fetchall(dialect.MIGRATION_SQL)
            schema = detect_schema(target.display(), dialect, columns, migration)
        except BaseException:
            await backend.close()
            raise
        return cls(backend, dialect, schema)

    async def close(self) -> None:
        await self.backend.close()

    async def count(self) -> int:
        """How many checkpoints the source holds."""
        [(found,)] = await self.backend.fetchall(_COUNTS)
        return int(found)

    async def threads(self, *, batch: int = 1000) -> AsyncGenerator[ThreadRow, None]:
        """Every (thread, namespace), in the database's order of thread_id, streamed from one cursor."""
        async with aclosing(self.backend.stream(_THREADS, (), batch=batch)) as rows:
            async for thread_id, ns, count, newest, metadata in rows:
                yield ThreadRow(thread_id, ns, int(count), newest, metadata)

    async def checkpoints(self, *, page: int = PAGE) -> AsyncGenerator[SourceCheckpoint, None]:
        """Every checkpoint, by (thread_id, checkpoint_ns, checkpoint_id), `page` at a time."""
        rows = await self.backend.fetchall(_FIRST_PAGE, (page,))
        while rows:
            for record in await self._complete(rows, rows[0][:3], rows[-1][:3]):
                yield record
            if len(rows) < page:
                return
            rows = await self.backend.fetchall(_NEXT_PAGE, (*rows[-1][:3], page))

    async def history(
        self, thread_id: str, checkpoint_ns: str = "", *, before: str | None = None, page: int = PAGE
    ) -> AsyncGenerator[SourceCheckpoint, None]:
        """One thread's checkpoints newest first (LangGraph's `list` order), from `before` on."""
        while True:
            if before is None:
                rows = await self.backend.fetchall(_NEWEST, (thread_id, checkpoint_ns, page))
            else:
                rows = await self.backend.fetchall(_OLDER, (thread_id, checkpoint_ns, before, page))
            if not rows:
                return
            for record in await self._complete(rows, rows[-1][:3], rows[0][:3]):
                yield record
            if len(rows) < page:
                return
            before = rows[-1][2]

    async def checkpoint(
        self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> SourceCheckpoint | None:
        """One checkpoint (the newest of the thread when no id is given), or None."""
        if checkpoint_id is None:
            rows = await self.backend.fetchall(_NEWEST, (thread_id, checkpoint_ns, 1))
        else:
            rows = await self.backend.fetchall(_ONE, (thread_id, checkpoint_ns, checkpoint_id))
        if not rows:
            return None
        [record] = await self._complete(rows, rows[0][:3], rows[0][:3])
        return record

    async def _complete(
        self, rows: Sequence[Row], low: Sequence[Any], high: Sequence[Any]
    ) -> list[SourceCheckpoint]:
        """The page's checkpoints with their writes and blobs, each fetched by one range query
        between the page's lowest and highest key (in the database's own order of keys)."""
        bounds = (*low, *high)
        writes: dict[tuple[str, str, str], list[SourceWrite]] = {}
        for thread_id, ns, cid, task_id, idx, channel, type_, data, task_path in await self.backend.fetchall(
            self._writes_sql, bounds
        ):
            writes.setdefault((thread_id, ns, cid), []).append(
                SourceWrite(task_id, int(idx), channel, type_, _bytes(data), task_path)
            )
        blobs: dict[tuple[str, str, str], list[ChannelBlob]] = {}
        if self._blobs_sql is not None:
            for thread_id, ns, cid, channel, version, type_, data in await self.backend.fetchall(
                self._blobs_sql, bounds
            ):
                blobs.setdefault((thread_id, ns, cid), []).append(
                    ChannelBlob(channel, version, type_, _bytes(data))
                )
        records = []
        for thread_id, ns, cid, parent, type_, checkpoint, metadata in rows:
            key = (thread_id, ns, cid)
            own = writes.get(key, [])
            own.sort(key=lambda w: (w.task_path or "", w.task_id, w.idx))
            records.append(
                SourceCheckpoint(
                    thread_id,
                    ns,
                    cid,
                    parent,
                    type_,
                    _bytes(checkpoint),
                    _bytes(metadata),
                    tuple(blobs.get(key, ())),
                    tuple(own),
                )
            )
        return records


def _bytes(value: Any) -> Any:
    """bytes for what a driver returns as a buffer (memoryview, bytearray); anything else as it is."""
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value
