"""The synchronous engine interface: what `SyncSqlCheckpointStore` asks of an engine, without an
event loop. The SQL it runs, the row codec, the spelling of state conditions, the schema gate and
error translation are the async layer's (`ckptdb.sql.rows`, `ckptdb.sql.store_core`, each engine's
`Spelling` and `translate_error`); only how statements reach the driver differs.

Thread-safe by contract: one backend serves every thread of a process. Reads go to a connection
of the calling thread's own, so they never wait behind a write; concurrent saves are
group-committed (`ckptdb.sql.group_commit.LeaderCommit`); nothing serializes everything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from ckptdb.sql.backend import Backend, DatabaseTarget, Row, SchemaState, Spelling


class SyncBackend(Spelling, ABC):
    """One database, for the synchronous store: connections per thread for reads, one writer."""

    target: DatabaseTarget
    max_value_bytes: int | None = None
    OPTIONS: tuple[str, ...] = ()
    """The keyword options it takes: its async backend's (`connect(..., **options)`)."""
    config: Backend
    """The engine's async backend, never connected: its validated options, and the synchronous
    SQLAlchemy engine the migrations run on (`Maintenance.sync_engine`)."""

    def __init__(self, target: DatabaseTarget, **options: Any) -> None:
        """Built from its target and options, not yet connected."""
        self.target = target

    @abstractmethod
    def connect(self, *, create: bool, readonly: bool = False) -> None:
        """Open what the first calls need; `create=False` refuses a missing database; `readonly`
        opens for reading only (every write raises StoreError)."""

    def prepare_writes(self) -> None:
        """Settings a writable database needs once its schema is known to be ckptdb's."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection this backend opened, on whichever thread. Safe to call twice."""

    @abstractmethod
    def abandon(self) -> None:
        """In a forked child: let go of every connection without touching it (closing the parent's
        socket or file handles from here would disturb the parent's sessions and locks)."""

    @abstractmethod
    def schema_state(self) -> SchemaState: ...

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a read on the calling thread's read connection."""

    @abstractmethod
    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> Iterator[Row]:
        """Rows of a read, a batch at a time."""

    @abstractmethod
    def save_rows(self, sql: str, rows: Sequence[Row]) -> None:
        """One statement over (non-empty) rows in the next group commit; returns once committed."""

    @abstractmethod
    def save_parts(self, parts: Sequence[tuple[str, Sequence[Row]]]) -> None:
        """`save_rows` for several statements (a non-empty list, each over its rows), committed
        together or not at all in the next group commit (a LangGraph checkpoint with its values)."""

    @abstractmethod
    def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Several statements in one write transaction; returns each one's row count."""
