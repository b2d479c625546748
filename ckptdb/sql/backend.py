"""What differs between database engines, behind one interface: connecting, transactions, errors,
SQL spellings. The store above it writes one set of SQL (with `?` placeholders) for all engines.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ckptdb.errors import CkptdbError, SchemaError
from ckptdb.sql.revision import HEAD, KNOWN_REVISIONS
from ckptdb.state_filter import StateFilter

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A parsed `--db` value: a plain path or sqlite URL, or a postgresql URL."""

    kind: str  # "sqlite" or "postgresql"
    url: str  # as given (postgresql) or normalized sqlite:///abs/path
    path: Path | None = None

    def display(self) -> str:
        """For messages: the path, or the URL without its password."""
        if self.path is not None:
            return str(self.path)
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.url


def parse_target(target: str | Path) -> DatabaseTarget:
    """`./checkpoints.db`, `sqlite:///abs.db`, `sqlite:///rel.db`, or `postgresql://...`."""
    text = str(target)
    scheme = text.split(":", 1)[0].lower() if "://" in text else ""
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return DatabaseTarget("postgresql", text)
    if scheme.startswith("sqlite"):
        path_text = unquote(text.split("://", 1)[1].split("?", 1)[0])
        if path_text.startswith("/"):
            path_text = path_text[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        text = path_text
    elif scheme:
        raise CkptdbError(
            f"unsupported database URL {text!r}: use a file path, sqlite:///path.db or postgresql://..."
        )
    if text in ("", ":memory:"):
        raise CkptdbError("an in-memory SQLite database cannot be shared; use MemoryCheckpointStore")
    path = Path(text).expanduser().absolute()
    return DatabaseTarget("sqlite", f"sqlite:///{path}", path)


def check_revision(revision: str | None, where: str) -> None:
    """The schema gate: refuse a database whose schema is not exactly this ckptdb's head."""
    if revision == HEAD:
        return
    if revision in KNOWN_REVISIONS:
        raise SchemaError(
            f"the database {where} has schema {revision}, older than this ckptdb's {HEAD}: "
            f"run `ckptdb --db {where} db upgrade` (back it up first)"
        )
    raise SchemaError(
        f"the database {where} has schema {revision}, which this ckptdb does not know "
        "(written by a newer ckptdb?): upgrade ckptdb (pip install -U ckptdb)"
    )


@dataclass(frozen=True, slots=True)
class IntegrityCheck:
    """What the engine's own consistency check found, in words for `ckptdb db check`."""

    method: str
    """What ran (`integrity_check`), or, when `ran` is False, why nothing could."""
    problems: tuple[str, ...] = ()
    ran: bool = True
    remedy: str = "restore a backup"
    """What to do about the problems."""


class Backend(ABC):
    """One connection set to one database; each method is one round trip where the engine allows."""

    target: DatabaseTarget
    max_value_bytes: int | None = None
    """The longest text one column value may hold here (None: no check before the engine's own):
    saves refuse a longer JSON value as soon as it is encoded, with one line, nothing written."""

    @abstractmethod
    async def connect(self, *, create: bool) -> None:
        """Open connections; `create=False` refuses to create a missing database."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_revision(self) -> tuple[bool, str | None]:
        """(has any ckptdb table, revision in the version table or None)."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a read on the read connection."""

    @abstractmethod
    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> AsyncGenerator[Row, None]:
        """Rows of a read, a batch at a time, so a million rows never sit in memory at once."""

    @abstractmethod
    async def write_rows(self, sql: str, rows: Sequence[Row]) -> None:
        """One statement over many parameter rows, in one write transaction."""

    @abstractmethod
    async def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Several statements in one write transaction; returns each one's row count."""

    @abstractmethod
    def state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        """SQL (with `?`) testing one state condition on `state_snapshot`, and its parameters."""

    @abstractmethod
    def sync_engine(self) -> Engine:
        """A synchronous SQLAlchemy engine whose transactions take the migration lock."""

    @abstractmethod
    async def database_size(self) -> int | None:
        """Bytes on disk, when the engine can say."""

    # -- inspection (ckptdb.inspect) -----------------------------------------------------------

    @abstractmethod
    def byte_length_sql(self, expression: str) -> str:
        """SQL for the UTF-8 byte length of a text or JSON expression (NULL stays NULL), for sizes."""

    @abstractmethod
    def stream_readonly(self, sql: str, batch: int = 1000) -> AsyncGenerator[Row, None]:
        """Run one statement a person typed where it cannot change anything, and stream its result:
        the first item is the tuple of column names, then the rows, a batch at a time.

        The engine itself must enforce it (a read-only connection or transaction), not a look at
        the text; several statements, and anything that would write, create or attach a file,
        raise CkptdbError (one line) and change nothing.
        """

    @abstractmethod
    async def free_bytes(self) -> int | None:
        """Bytes inside the database that deleted rows left free: reused by new rows, given back
        to the operating system only by `vacuum()`. None when the engine cannot say cheaply."""

    @abstractmethod
    async def vacuum(self) -> None:
        """Give the space freed by deletes back (SQLite: VACUUM and truncate the WAL)."""

    def group_writer(self) -> Callable[[str, Sequence[Row]], Awaitable[None]] | None:
        """For a backend that commits concurrent row writes together itself (SQLite: its writer
        thread), the function that queues rows and returns what to await for their commit; None
        (the default): the store groups them and calls `write_rows`."""
        return None

    @abstractmethod
    async def integrity_check(self, *, quick: bool) -> IntegrityCheck:
        """The engine's own consistency check of the database; `quick` skips the slow parts
        (SQLite: index contents)."""

    async def write_bulk(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """`write()` for a transaction that touches many pages (a prune window); engines that need
        different settings for it (SQLite: a bigger page cache) override this."""
        return await self.write(statements)


def open_backend(target: DatabaseTarget, **options: Any) -> Backend:
    """The (not yet connected) backend for a target; drivers are imported only when used."""
    if target.kind == "sqlite":
        from ckptdb.sql.sqlite import SqliteBackend

        return SqliteBackend(target, **options)
    from ckptdb.sql.postgres import PostgresBackend

    return PostgresBackend(target, **options)
