"""What differs between database engines, behind small interfaces that name no engine. The store
above them writes one set of SQL (with `?` placeholders) for all engines.

Cut by what varies, as Prefect's server database layer is (a few interfaces of about six methods,
one implementation each per engine): `Session` (open, close, which schema is there), `Queries`
(run the store's SQL: reads, streams, write transactions), `Spelling` (what plain SQL cannot say
alike everywhere: state conditions, byte lengths, how JSON is bound; it needs no connection, so
each engine implements it as a class of its own, `SqliteSpelling` / `PostgresSpelling`) and
`Maintenance` (sizes, free space, vacuum, the WAL, integrity checks, the synchronous engine Alembic
runs on). `Backend` is all four on one object: the callers hold one backend per database and use
these names on it. Which engine serves a URL is `ckptdb.sql.engines`' business, never this module's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ckptdb.errors import CkptdbError, SchemaError, StoreError
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
class SchemaState:
    """What a database holds of ckptdb's schema, read without changing anything."""

    checkpoints_table: bool
    version_table: bool
    revision: str | None

    @property
    def empty(self) -> bool:
        """Nothing of ckptdb's (or anyone's `checkpoints`) yet: safe to create the schema in."""
        return not self.checkpoints_table and not self.version_table


def check_schema(state: SchemaState, where: str) -> None:
    """Refuse, with what to do, any schema but this ckptdb's head."""
    if state.revision is None:
        if state.checkpoints_table:
            raise StoreError(
                f"{where} has a checkpoints table that ckptdb's migrations did not create (another "
                "tool's, such as LangGraph's SQLite saver?): nothing was changed; point --db at a database "
                "of ckptdb's own"
            )
        if state.version_table:
            raise StoreError(
                f"{where} has no ckptdb tables: the schema was downgraded to base; run "
                f"`ckptdb --db {where} db upgrade`"
            )
        raise StoreError(f"{where} has no ckptdb schema: run `ckptdb --db {where} db upgrade`")
    check_revision(state.revision, where)


@dataclass(frozen=True, slots=True)
class InsertResult:
    """What one `Backend.insert_rows` transaction did, row by row, as the database decided it: an
    importer counts these, never its own guess from an earlier read (another process may have
    written the same ids in between)."""

    inserted: frozenset[str] = frozenset()
    """Ids whose row this transaction inserted (they were absent)."""
    stored: Mapping[str, Row] = field(default_factory=dict)
    """The other ids: the row each one held when this transaction wrote (`rows.COLUMNS`)."""
    replaced: frozenset[str] = frozenset()
    """Of those, the ids whose row this transaction overwrote (what `resolve` returned)."""

    @staticmethod
    def merged(results: Iterable[InsertResult]) -> InsertResult:
        inserted: set[str] = set()
        stored: dict[str, Row] = {}
        replaced: set[str] = set()
        for result in results:
            inserted |= result.inserted
            stored.update(result.stored)
            replaced |= result.replaced
        return InsertResult(frozenset(inserted), stored, frozenset(replaced))


Resolve = Callable[[Mapping[str, Row]], Sequence[Row]]
"""Given the rows already stored for some of the ids being inserted, the rows to write over them
(a subset of the rows being inserted). Called inside the write transaction, with those ids locked
against other writers; it may raise to roll the whole transaction back."""


@dataclass(frozen=True, slots=True)
class IntegrityCheck:
    """What the engine's own consistency check found, in words for `ckptdb db check`."""

    method: str
    """What ran (`integrity_check`), or, when `ran` is False, why nothing could."""
    problems: tuple[str, ...] = ()
    ran: bool = True
    remedy: str = "restore a backup"
    """What to do about the problems."""


@dataclass(frozen=True, slots=True)
class WalStatus:
    """The SQLite write-ahead log, for `ckptdb stats` and `ckptdb db check`."""

    wal_bytes: int
    blocked: bool
    """A checkpoint tried just now could not finish: another connection's open read transaction
    still needs the WAL, which then grows with every write until that transaction ends."""
    starved_since: float | None = None
    """time.time() since when this process has seen checkpoints starved (None: not starved)."""

    def warning(self) -> str | None:
        if not self.blocked:
            return None
        return (
            f"checkpoints starved by a reader: the WAL is {self.wal_bytes / 2**20:.1f} MiB and grows until "
            "another connection's open read transaction ends (a long query, an idle `BEGIN` in a sqlite3 "
            "shell); end it and the WAL shrinks back"
        )


class Session(ABC):
    """Opening and closing the connections, and what schema they find."""

    @abstractmethod
    async def connect(self, *, create: bool, readonly: bool = False) -> None:
        """Open connections; `create=False` refuses to create a missing database. `readonly`
        opens for reading only: nothing in the database (or next to it) is created or changed,
        and every write raises StoreError."""

    async def tidy_killed_readers(self) -> None:  # noqa: B027  (a hook: most engines need nothing)
        """Before a read-only `connect` to a database ckptdb only ever reads (a LangGraph
        saver's): remove what a read-only connection of an earlier process killed mid-read left
        beside it, when nothing holds data and no live process uses it. Changes nothing in the
        database itself."""

    async def prepare_writes(self) -> None:  # noqa: B027  (a hook: most engines need nothing)
        """Settings a writable database needs before the first write, applied once its schema is
        known to be ckptdb's (SQLite: WAL); nothing by default."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_state(self) -> SchemaState:
        """Which of ckptdb's tables exist, and the revision in the version table (None if none)."""

    async def schema_revision(self) -> tuple[bool, str | None]:
        """(has any ckptdb table, revision in the version table or None)."""
        state = await self.schema_state()
        return not state.empty, state.revision


class Queries(ABC):
    """Running the store's SQL (`?` placeholders): reads, streamed reads, write transactions."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a read on the read connection."""

    async def fetch_quick(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """`fetchall` for a read the caller knows is short: a point load by key, or a bounded page
        through an index. An engine may run it where it is asked, without handing it to a
        thread (SQLite, see its backend); by default it is `fetchall`."""
        return await self.fetchall(sql, params)

    @abstractmethod
    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> AsyncGenerator[Row, None]:
        """Rows of a read, a batch at a time, so a million rows never sit in memory at once."""

    @abstractmethod
    def stream_readonly(self, sql: str, batch: int = 1000) -> AsyncGenerator[Row, None]:
        """Run one statement a person typed where it cannot change anything, and stream its result:
        the first item is the tuple of column names, then the rows, a batch at a time.

        The engine itself must enforce it (a read-only connection or transaction), not a look at
        the text; several statements, and anything that would write, create or attach a file,
        raise CkptdbError (one line) and change nothing.
        """

    @abstractmethod
    def save_rows(self, sql: str, rows: Sequence[Row]) -> Awaitable[None]:
        """Queue one statement over (non-empty) rows for the next group commit
        (`ckptdb.sql.group_commit`): concurrent saves share a transaction, each all or nothing;
        what it returns is done once the rows are committed."""

    @abstractmethod
    def save_parts(self, parts: Sequence[tuple[str, Sequence[Row]]]) -> Awaitable[None]:
        """`save_rows` for several statements (a non-empty list, each over its rows), committed
        together or not at all in the next group commit."""

    @abstractmethod
    async def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Several statements in one write transaction; returns each one's row count."""

    async def write_bulk(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """`write()` for a transaction that touches many pages (a prune window); engines that need
        different settings for it (SQLite: a bigger page cache) override this."""
        return await self.write(statements)

    @abstractmethod
    async def insert_rows(self, rows: Sequence[Row], resolve: Resolve | None = None) -> InsertResult:
        """In one write transaction: insert every row whose id is absent, read what the others hold
        and (with `resolve`) overwrite those it returns; each id at most once in `rows`.

        The result is what the database did, row by row, whatever other processes write to the
        same ids at the same time: the truth an importer reports, where comparing with an earlier
        read (and counting an insert-if-absent as an insert) would claim rows another process
        wrote."""


class Spelling(ABC):
    """How this engine spells what plain SQL cannot say the same everywhere; needs no connection."""

    json_bytes: bool = False
    """Whether the driver takes a huge JSON text as its UTF-8 bytes (`rows.JSON_PARAM`) without
    another copy: saves then hand it over as orjson wrote it (`rows.to_row`)."""

    row_lock: str = ""
    """What ends a SELECT inside a write transaction to lock the rows it reads until the commit:
    nothing where write transactions already run one at a time (SQLite)."""

    @abstractmethod
    def state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        """SQL (with `?`) testing one state condition on `state_snapshot`, and its parameters."""

    @abstractmethod
    def byte_length_sql(self, expression: str) -> str:
        """SQL for the UTF-8 byte length of a text or JSON expression (NULL stays NULL), for sizes."""

    @abstractmethod
    def json_member_condition(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        """SQL (with `?`) testing that the JSON object in `column` has member `key` equal to the
        JSON value `value` (None: a JSON null), and its parameters: LangGraph's metadata filters."""


class Maintenance(ABC):
    """What `ckptdb stats`, `db check`, `db vacuum` and the migrations ask of the engine."""

    @abstractmethod
    async def database_size(self) -> int | None:
        """Bytes on disk, when the engine can say."""

    @abstractmethod
    async def free_bytes(self) -> int | None:
        """Bytes inside the database that deleted rows left free: reused by new rows, given back
        to the operating system only by `vacuum()`. None when the engine cannot say cheaply."""

    @abstractmethod
    async def vacuum(self) -> int | None:
        """Give the space freed by deletes back (SQLite: VACUUM and truncate the WAL). Returns the
        bytes a reader's open transaction kept in the WAL (SQLite), None when all went back."""

    async def wal_status(self) -> WalStatus | None:
        """The write-ahead log's size and whether a reader starves its checkpoints; None on an
        engine whose log the server keeps (PostgreSQL)."""
        return None

    async def change_token(self) -> object | None:
        """A value equal between two calls only if no commit (by any connection or process) came
        in between, read in one cheap round trip; None when the engine cannot say that exactly
        (then a caller must not cache what it read)."""
        return None

    @abstractmethod
    async def integrity_check(self, *, quick: bool) -> IntegrityCheck:
        """The engine's own consistency check of the database; `quick` skips the slow parts
        (SQLite: index contents)."""

    @abstractmethod
    def sync_engine(self, *, create: bool = True, readonly: bool = False) -> Engine:
        """A synchronous SQLAlchemy engine whose transactions take the migration lock; `readonly`
        reads the schema without changing anything (no lock, no settings written)."""


class Backend(Session, Queries, Spelling, Maintenance):
    """One connection set to one database: every part an engine implements, on one object (the
    callers outside `ckptdb.sql` use these names). Each method is one round trip where the
    engine allows."""

    target: DatabaseTarget
    max_value_bytes: int | None = None
    """The longest text one column value may hold here (None: no check before the engine's own):
    saves refuse a longer JSON value as soon as it is encoded, with one line, nothing written."""

    OPTIONS: tuple[str, ...] = ()
    """The keyword options the backend takes (`open_store(..., **options)`)."""

    def __init__(self, target: DatabaseTarget, **options: Any) -> None:
        """Built from its target and the `OPTIONS` given, not yet connected (each engine checks its
        options' values itself)."""
        self.target = target


STORE_OPTIONS = ("create", "migrate", "readonly")
"""`open_store`'s own options, besides the backend's."""


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise CkptdbError(f"{name} must be True or False, got {value!r}")
    return value


def check_count(name: str, value: object, *, minimum: int = 0) -> int:
    """A whole number of at least `minimum` (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CkptdbError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """One of `choices`, in any letter case; returned upper-case."""
    if not isinstance(value, str) or value.upper() not in choices:
        listed = " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)
        raise CkptdbError(f"{name} must be {listed}, got {value!r}")
    return value.upper()
