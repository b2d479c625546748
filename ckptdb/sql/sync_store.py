"""The synchronous SQL store and its entry point, `ckptdb.connect` (as sqlite3 and psycopg name
theirs): the async store's methods without `await`, on SQLite or PostgreSQL.

Everything but how statements reach the driver is shared with `SqlCheckpointStore`: the SQL and
the row codec (`ckptdb.sql.rows`), query building, id checks and the open sequence's schema gate
(`ckptdb.sql.store_core`), the engines' spellings and error translation. Thread-safe: one store
serves every thread of a WSGI server (see `ckptdb.sql.sync_backend`). It never runs an event loop,
so it works inside a running one (Jupyter).

Fork-safe: a store opened before `os.fork()` (gunicorn `--preload`, multiprocessing's fork start
method) is abandoned in the child: its connections are let go of untouched (the parent's sessions,
locks and files stay the parent's), and every call there raises a one-line StoreError saying to
open a store in the child.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ckptdb.errors import StoreError
from ckptdb.model import Checkpoint, CheckpointInfo
from ckptdb.sql import rows as sqlrows
from ckptdb.sql import store_core
from ckptdb.sql.backend import DatabaseTarget, Row
from ckptdb.sql.engines import open_backend, open_sync_backend, parse_target
from ckptdb.sql.sync_backend import SyncBackend
from ckptdb.store import CheckpointPage, CheckpointQuery, resolve_query
from ckptdb.sync_store import SyncCheckpointStore

__all__ = ["SyncSqlCheckpointStore", "connect"]

_OPEN_STORES: weakref.WeakSet[SyncSqlCheckpointStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_OPEN_STORES):
        store._abandon()
    _OPEN_STORES.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class SyncSqlCheckpointStore(SyncCheckpointStore):
    """Checkpoints as rows in SQLite (default) or PostgreSQL, for synchronous code.

    Concurrent saves from several threads are committed together (group commit): each returns
    only once the transaction holding its row has committed, and a failed group is retried save by
    save, so one bad save fails no other. Reads use a connection of the calling thread's own and
    never wait behind a write.

    Open it with `ckptdb.connect(target)` (or `SyncSqlCheckpointStore.open`).
    """

    def __init__(self, backend: SyncBackend) -> None:
        self._backend = backend
        self._refusal: StoreError | None = None
        self._closed = False
        _OPEN_STORES.add(self)

    @property
    def target(self) -> DatabaseTarget:
        return self._backend.target

    @property
    def backend(self) -> SyncBackend:
        return self._backend

    @classmethod
    def open(
        cls,
        target: str | Path | DatabaseTarget,
        *,
        create: bool = True,
        migrate: bool = True,
        readonly: bool = False,
        **options: Any,
    ) -> SyncSqlCheckpointStore:
        """Connect and check the schema, as `SqlCheckpointStore.open` does: a new database is
        created and migrated when `create`; one that is behind, ahead or not ckptdb's is refused,
        with what to run, before anything in it changes. `readonly=True` changes nothing."""
        create, migrate, readonly = store_core.open_flags(create, migrate, readonly)
        target = parse_target(target)
        backend = open_sync_backend(target, **options)
        backend.connect(create=create, readonly=readonly)
        try:
            state = backend.schema_state()
            if store_core.must_migrate(state, create=create, migrate=migrate):
                from ckptdb.sql import migration

                migration.upgrade_backend(open_backend(target, **options))
                state = backend.schema_state()
            store_core.gate(state, target.display())
            if not readonly:
                backend.prepare_writes()
        except BaseException:
            backend.close()
            raise
        return cls(backend)

    def _usable(self) -> SyncBackend:
        if self._refusal is not None:
            raise self._refusal
        return self._backend

    def _abandon(self) -> None:
        """In a forked child: refuse every call from now on, and let go of the connections
        without touching them."""
        self._refusal = StoreError(
            f"this store of {self.target.display()} was opened in process {os.getppid()}, before a fork: "
            "open a new store in this process (ckptdb.connect) and use that one"
        )
        self._backend.abandon()

    # -- writes -------------------------------------------------------------------------------

    def save(self, checkpoint: Checkpoint) -> None:
        backend = self._usable()
        backend.save_rows(sqlrows.UPSERT, [store_core.save_row(checkpoint, backend, backend.max_value_bytes)])

    def save_many(self, checkpoints: Iterable[Checkpoint]) -> int:
        """All or nothing: every checkpoint is validated first, then one transaction writes them."""
        backend = self._usable()
        rows = store_core.save_rows(checkpoints, backend, backend.max_value_bytes)
        if rows:
            backend.save_rows(sqlrows.UPSERT, rows)
        return len(rows)

    def save_rows(self, rows: Sequence[Row]) -> None:
        """Write pre-encoded rows (`ckptdb.sql.rows.to_row`) in one transaction, replacing."""
        if rows:
            self._usable().save_rows(sqlrows.UPSERT, list(rows))

    def delete(self, checkpoint_id: str) -> None:
        self.delete_many([checkpoint_id])

    def delete_many(self, checkpoint_ids: Sequence[str]) -> int:
        """Delete these ids in one transaction; returns how many rows existed."""
        backend = self._usable()
        if not checkpoint_ids:
            return 0
        return sum(backend.write(store_core.delete_statements(checkpoint_ids)))

    def clear(self) -> None:
        self._usable().write([(store_core.CLEAR, ())])

    # -- reads --------------------------------------------------------------------------------

    def load(self, checkpoint_id: str) -> Checkpoint | None:
        backend = self._usable()
        return store_core.loaded(backend.fetchall(sqlrows.LOAD, (store_core.check_id(checkpoint_id),)))

    def latest(self, graph_name: str) -> Checkpoint | None:
        """The checkpoint of this graph saved last (the highest save order), as on the async store."""
        return store_core.loaded(self._usable().fetchall(sqlrows.LATEST, (graph_name,)))

    def query(self, query: CheckpointQuery | None = None, **filters: Any) -> CheckpointPage:
        backend = self._usable()
        query = resolve_query(query, filters)
        sql, params = store_core.page_select(backend, query)
        if query.limit is None:
            return CheckpointPage([sqlrows.info_from_row(r) for r in backend.stream(sql, params)])
        return store_core.page_of(backend.fetchall(sql, params), query)

    def iter_query(self, query: CheckpointQuery | None = None, **filters: Any) -> Iterator[CheckpointInfo]:
        self._usable()
        return super().iter_query(query, **filters)

    def count(self, query: CheckpointQuery | None = None) -> int:
        backend = self._usable()
        return int(backend.fetchall(*store_core.count_select(backend, query))[0][0])

    def close(self) -> None:
        """Close every connection (after the saves in flight). Safe to call twice; in a forked
        child it touches nothing."""
        if self._refusal is not None:
            return
        self._refusal = StoreError("the store is closed")
        self._closed = True
        _OPEN_STORES.discard(self)
        self._backend.close()


def connect(target: str | Path | DatabaseTarget | None = None, **options: Any) -> SyncSqlCheckpointStore:
    """Open the synchronous store for a path or URL (default `./checkpoints.db`): `open_store`'s
    twin for code that is not async, taking the same options (`create`, `migrate`, `readonly`,
    `synchronous`, `busy_timeout_ms`, `sync_interval`, `max_value_bytes`, and PostgreSQL's).

        with ckptdb.connect("checkpoints.db") as store:
            store.save(checkpoint)
    """
    return SyncSqlCheckpointStore.open(target if target is not None else "checkpoints.db", **options)
