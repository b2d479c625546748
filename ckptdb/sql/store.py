"""The SQL store: one row per checkpoint, group commit for concurrent saves, keyset paging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

from ckptdb.errors import CkptdbError, DamagedRowError, InvalidCheckpointError, StoreError
from ckptdb.model import Checkpoint
from ckptdb.sql import rows as sqlrows
from ckptdb.sql import store_core
from ckptdb.sql.backend import (
    Backend,
    DatabaseTarget,
    InsertResult,
    IntegrityCheck,
    Resolve,
)
from ckptdb.sql.engines import open_backend, parse_target
from ckptdb.store import (
    CheckpointPage,
    CheckpointQuery,
    CheckpointStore,
    resolve_query,
)

__all__ = ["DatabaseTarget", "SqlCheckpointStore", "open_store", "parse_target"]
"""`DatabaseTarget` and `parse_target` are re-exported: the SQL layer's facade for the library."""


class SqlCheckpointStore(CheckpointStore):
    """Checkpoints as rows in SQLite (default) or PostgreSQL.

    Concurrent `save` calls are committed together (group commit, `ckptdb.sql.group_commit`):
    while one transaction is being written, new saves queue up, and the next transaction takes all
    of them. Every save still returns only after the transaction holding its row has committed. If
    a shared transaction fails, each request is retried on its own, so one bad request cannot fail
    another.

    Open it with `await SqlCheckpointStore.open(target)` or `ckptdb.open_store(target)`.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._closed = False

    @property
    def target(self) -> DatabaseTarget:
        return self._backend.target

    @property
    def backend(self) -> Backend:
        return self._backend

    @classmethod
    async def open(
        cls,
        target: str | Path | DatabaseTarget,
        *,
        create: bool = True,
        migrate: bool = True,
        readonly: bool = False,
        **options: Any,
    ) -> SqlCheckpointStore:
        """Connect and check the schema. A new database is created and migrated to the newest
        schema when `create` (so the embedded default needs no set-up step); an existing one
        that is behind or ahead, or not ckptdb's, is refused with a message saying what to run,
        before anything in it is changed.

        `readonly=True` (what the inspection commands use) never creates, migrates or changes
        anything, works on a read-only file or file system, and refuses writes (StoreError);
        on SQLite it opens one reading connection and starts no threads.
        """
        create, migrate, readonly = store_core.open_flags(create, migrate, readonly)
        target = parse_target(target)
        backend = open_backend(target, **options)
        await backend.connect(create=create, readonly=readonly)
        try:
            state = await backend.schema_state()
            if store_core.must_migrate(state, create=create, migrate=migrate):
                from ckptdb.sql import migration

                await asyncio.to_thread(migration.upgrade_backend, backend)
                state = await backend.schema_state()
            store_core.gate(state, target.display())
            if not readonly:
                await backend.prepare_writes()
        except BaseException:
            await backend.close()
            raise
        return cls(backend)

    # -- writes -------------------------------------------------------------------------------

    async def _submit(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        if not rows:
            return
        await self._backend.save_rows(sql, rows)

    async def save(self, checkpoint: Checkpoint) -> None:
        row = store_core.save_row(checkpoint, self._backend, self._backend.max_value_bytes)
        await self._submit(sqlrows.UPSERT, [row])

    async def save_many(self, checkpoints: Iterable[Checkpoint]) -> int:
        """All or nothing: every checkpoint is validated first, then one transaction writes them."""
        rows = store_core.save_rows(checkpoints, self._backend, self._backend.max_value_bytes)
        await self._submit(sqlrows.UPSERT, rows)
        return len(rows)

    async def save_rows(
        self, rows: Sequence[tuple[Any, ...]], *, replace: bool = True, in_save_order: bool = False
    ) -> None:
        """Write pre-encoded rows (see `ckptdb.sql.rows.to_row`) in one transaction; for importers.

        A replaced row is a re-save and takes the next save order. A new row written with
        `replace=False` gets save order 0, "not recorded" (an imported echo file), unless
        `in_save_order` (a copy): then rows take the next numbers in the order given."""
        if replace:
            sql = sqlrows.UPSERT
        else:
            sql = sqlrows.COPY_IF_ABSENT if in_save_order else sqlrows.INSERT_IF_ABSENT
        await self._submit(sql, list(rows))

    async def save_rows_refusing(
        self, rows: Sequence[tuple[Any, ...]], *, replace: bool = True, in_save_order: bool = False
    ) -> dict[str, InvalidCheckpointError]:
        """`save_rows`, except that a row this database cannot hold (PostgreSQL: U+0000 in an id,
        invalid JSON text from a damaged source) is left out instead of failing its batch: the
        batch is then written row by row, and the refused rows come back (id -> why). For the
        importer and `copy`, which report such rows and go on."""
        if not rows:
            return {}
        try:
            await self.save_rows(rows, replace=replace, in_save_order=in_save_order)
            return {}
        except InvalidCheckpointError as exc:
            if len(rows) == 1:
                return {rows[0][0]: exc}
        refused: dict[str, InvalidCheckpointError] = {}
        for row in rows:
            try:
                await self.save_rows([row], replace=replace, in_save_order=in_save_order)
            except InvalidCheckpointError as exc:
                refused[row[0]] = exc
        return refused

    async def insert_rows_refusing(
        self, rows: Sequence[tuple[Any, ...]], resolve: Resolve | None = None
    ) -> tuple[InsertResult, dict[str, InvalidCheckpointError]]:
        """Insert pre-encoded rows whose id is absent, in one transaction, and say row by row what
        the database did (`Backend.insert_rows`: `resolve` picks the stored rows to overwrite).
        For the importer, which reports each file's outcome: concurrent imports of the same ids
        each learn which rows they wrote. A row this database cannot hold is left out as in
        `save_rows_refusing` (the batch is then written row by row) and comes back refused."""
        if self._closed:
            raise StoreError("the store is closed")
        rows = list(rows)
        if len({row[0] for row in rows}) != len(rows):
            raise CkptdbError("insert_rows_refusing takes each id at most once")
        if not rows:
            return InsertResult(), {}
        try:
            return await self._backend.insert_rows(rows, resolve), {}
        except InvalidCheckpointError as exc:
            if len(rows) == 1:
                return InsertResult(), {rows[0][0]: exc}
        results: list[InsertResult] = []
        refused: dict[str, InvalidCheckpointError] = {}
        for row in rows:
            try:
                results.append(await self._backend.insert_rows([row], resolve))
            except InvalidCheckpointError as exc:
                refused[row[0]] = exc
        return InsertResult.merged(results), refused

    async def delete(self, checkpoint_id: str) -> None:
        await self.delete_many([checkpoint_id])

    async def delete_many(self, checkpoint_ids: Sequence[str]) -> int:
        """Delete these ids in one transaction; returns how many rows existed."""
        if not checkpoint_ids:
            return 0
        return sum(await self._backend.write(store_core.delete_statements(checkpoint_ids)))

    async def clear(self) -> None:
        await self._backend.write([(store_core.CLEAR, ())])

    # -- reads --------------------------------------------------------------------------------

    async def load(self, checkpoint_id: str) -> Checkpoint | None:
        found = await self._backend.fetch_quick(sqlrows.LOAD, (store_core.check_id(checkpoint_id),))
        return store_core.loaded(found)

    async def load_rows(self, checkpoint_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """Stored rows by id, all `rows.COLUMNS` (`source` last), a few queries for many ids: lets an
        importer compare a batch of files with what is stored without one round trip per file."""
        found: dict[str, tuple[Any, ...]] = {}
        unique = list(dict.fromkeys(store_core.check_id(cid) for cid in checkpoint_ids))
        for start in range(0, len(unique), sqlrows.IDS_PER_QUERY):
            chunk = unique[start : start + sqlrows.IDS_PER_QUERY]
            for row in await self._backend.fetchall(sqlrows.select_by_ids(len(chunk)), chunk):
                found[row[0]] = tuple(row)
        return found

    async def latest(self, graph_name: str) -> Checkpoint | None:
        """The checkpoint of this graph saved last (the highest save_seq), whatever its created_at
        says: a resume must not start from an old checkpoint whose host clock ran fast."""
        found = await self._backend.fetch_quick(sqlrows.LATEST, (graph_name,))
        return store_core.loaded(found)

    def where_clause(self, query: CheckpointQuery) -> tuple[str, list[Any]]:
        """WHERE text and parameters for a query's filters (`store_core.where_clause`)."""
        return store_core.where_clause(self._backend, query)

    def select_infos(self, query: CheckpointQuery, *, limit: int | None) -> tuple[str, list[Any]]:
        return store_core.select_infos(self._backend, query, limit=limit)

    async def query(self, query: CheckpointQuery | None = None, **filters: Any) -> CheckpointPage:
        query = resolve_query(query, filters)
        sql, params = store_core.page_select(self._backend, query)
        if query.limit is None:
            return CheckpointPage([sqlrows.info_from_row(r) async for r in self._backend.stream(sql, params)])
        return store_core.page_of(await self._backend.fetch_quick(sql, params), query)

    async def iter_checkpoints(
        self,
        query: CheckpointQuery | None = None,
        on_damaged: Callable[[DamagedRowError], None] | None = None,
    ) -> AsyncIterator[Checkpoint]:
        """Full checkpoints matching a query, newest first, streamed (for export and copy).

        A row that cannot be read back raises DamagedRowError, unless `on_damaged` is given: it
        then gets the error and the stream goes on with the next row (export reports and skips)."""
        where, params = self.where_clause(query or CheckpointQuery(limit=None))
        sql = f"SELECT {sqlrows.SELECT_CONTENT} FROM checkpoints{where} ORDER BY created_at DESC, id DESC"
        if query is not None and query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        async with aclosing(self._backend.stream(sql, params)) as rows:
            async for row in rows:
                try:
                    checkpoint = sqlrows.from_row(row)
                except DamagedRowError as exc:
                    if on_damaged is None:
                        raise
                    on_damaged(exc)
                    continue
                yield checkpoint

    async def integrity_check(self, *, quick: bool = False) -> IntegrityCheck:
        """The engine's own consistency check of the database (for `ckptdb db check`)."""
        return await self._backend.integrity_check(quick=quick)

    def stream_rows(self) -> AsyncGenerator[tuple[Any, ...], None]:
        """Every stored row undecoded (`rows.from_row` decodes one), by id, streamed: a check can
        then report each damaged row and go on, where `iter_checkpoints` stops at the first."""
        return self._backend.stream(f"SELECT {sqlrows.SELECT_CONTENT} FROM checkpoints ORDER BY id")

    async def count(self, query: CheckpointQuery | None = None) -> int:
        found = await self._backend.fetchall(*store_core.count_select(self._backend, query))
        return int(found[0][0])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._backend.close()  # after the saves in flight: each caller hears how its ended


async def open_store(target: str | Path | None = None, **options: Any) -> SqlCheckpointStore:
    """Open the store for a path or URL (default `./checkpoints.db`), creating SQLite files as needed.

    Options: `create=False` refuses to create a missing database; `readonly=True` only reads
    (creates, migrates and changes nothing, and works on read-only files); `synchronous="FULL"` (SQLite)
    makes each commit survive power loss, not only a process crash; `commit_on_loop=False`
    (SQLite) keeps every write off the event loop's thread, at about half the sequential save rate;
    `read_on_loop=False` (SQLite) keeps every read off it too, at a third to a quarter of the load rate;
    `busy_timeout_ms` (SQLite, default 30,000) is how long a write waits for another process;
    `sync_interval` (SQLite at NORMAL, seconds, default 1.0) bounds how long an acknowledged save
    can wait for the fsync that makes it survive a power cut (None: only checkpoints fsync).
    `max_value_bytes` lowers the longest JSON value a save accepts (default: the engine's limit).
    """
    return await SqlCheckpointStore.open(target if target is not None else "checkpoints.db", **options)
