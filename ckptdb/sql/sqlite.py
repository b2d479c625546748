"""SQLite through aiosqlite: WAL, a busy timeout, BEGIN IMMEDIATE for write transactions.

Two connections: one writer (autocommit mode, so a single upsert is one statement and one round
trip, and multi-row writes take the write lock up front with BEGIN IMMEDIATE, which is what keeps
"database is locked" away under contention) and one reader, so reads never wait behind writes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

import aiosqlite

from ckptdb.errors import CkptdbError, StoreError
from ckptdb.sql.backend import Backend, DatabaseTarget, Row
from ckptdb.sql.revision import VERSION_TABLE
from ckptdb.state_filter import PathStep, StateFilter

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SYNCHRONOUS = ("NORMAL", "FULL")

T = TypeVar("T")


async def on_connection_thread(conn: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work(db)` on the connection's own worker thread, queued in order with its other calls.

    A whole write transaction then costs one round trip to that thread (each is a thread hop and an
    event-loop wake-up, tens of microseconds) instead of one per statement, and nothing else can run
    on the connection between its statements. aiosqlite has no public hook for this: `_execute` is
    the method every public call goes through (same shape from aiosqlite 0.17 to 0.22).
    """
    execute: Callable[..., Awaitable[Any]] = conn._execute
    return cast(T, await execute(lambda: work(conn._conn)))


@contextmanager
def _immediate_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT on the driver connection; any failure (not only sqlite3.Error: a
    parameter the driver cannot bind, say) rolls back before it propagates, so it never leaves the
    transaction open for the next write."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _executemany_in_transaction(db: sqlite3.Connection, sql: str, rows: Sequence[Row]) -> None:
    with _immediate_transaction(db):
        db.executemany(sql, rows)


def _execute_in_transaction(
    db: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]
) -> list[int]:
    with _immediate_transaction(db):
        return [db.execute(sql, params).rowcount for sql, params in statements]


def translate_error(exc: sqlite3.Error, where: str) -> CkptdbError:
    """Turn the driver's error into one line that says what to do."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return StoreError(
            f"{where} is not a usable SQLite database ({text}): check the path, or restore a backup"
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(f"{where} is read-only ({text}): check the file's and its directory's permissions")
    if "full" in text:
        return StoreError(f"{where}: disk or database full ({text}); nothing of this write was saved")
    if "unable to open" in text:
        return StoreError(f"cannot open {where} ({text}): check that the directory exists and is writable")
    if "locked" in text or "busy" in text:
        return StoreError(f"{where} stayed locked by another writer past the busy timeout ({text})")
    return StoreError(f"{where}: {text}")


def json_path(path: Sequence[PathStep]) -> str:
    out = "$"
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif '"' in step:
            raise CkptdbError(f"state paths cannot contain a double quote: {step!r}")
        else:
            out += f'."{step}"'
    return out


async def _connect(uri: str) -> aiosqlite.Connection:
    """An autocommit aiosqlite connection whose worker thread cannot keep the process alive.

    aiosqlite's thread is not a daemon, so a store the application forgot to close would hang
    interpreter exit. Committed data is already in the WAL, and an open transaction rolls back,
    so ending the thread with the process loses nothing that was acknowledged.
    """
    conn = aiosqlite.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    thread = getattr(conn, "_thread", None)
    if thread is not None and not thread.is_alive():
        thread.daemon = True
    return await conn


class SqliteBackend(Backend):
    def __init__(
        self, target: DatabaseTarget, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 30_000
    ) -> None:
        assert target.path is not None
        self.target = target
        self.path = target.path
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS:
            raise CkptdbError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # One transaction at a time on the writer: the group-commit drain, delete_many and clear
        # run as separate coroutines, and without this a save could land inside (and be rolled
        # back with) another coroutine's transaction after being acknowledged.
        self._write_lock = asyncio.Lock()

    def _where(self) -> str:
        return str(self.path)

    async def _open(self, *, create: bool) -> aiosqlite.Connection:
        mode = "rwc" if create else "rw"
        conn = await _connect(f"file:{self.path}?mode={mode}")
        try:
            await conn.execute_fetchall(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            await conn.execute_fetchall(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error:
            await conn.close()
            raise
        return conn

    async def connect(self, *, create: bool) -> None:
        if not create and not self.path.exists():
            raise StoreError(f"no database at {self.path}: check the path or --db (nothing was created)")
        if create and not self.path.parent.is_dir():
            raise StoreError(f"cannot create {self.path}: directory {self.path.parent} does not exist")
        try:
            self._writer = await self._open(create=create)
            mode = await self._writer.execute_fetchall("PRAGMA journal_mode")
            if next(iter(mode))[0].lower() != "wal":
                await self._writer.execute_fetchall("PRAGMA journal_mode = WAL")
            self._reader = await self._open(create=False)
        except sqlite3.Error as exc:
            await self.close()
            raise translate_error(exc, self._where()) from None

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                with suppress(sqlite3.Error, ValueError):
                    await conn.close()
        self._reader = self._writer = None

    def _conns(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        if self._writer is None or self._reader is None:
            raise StoreError("the store is closed")
        return self._writer, self._reader

    async def schema_revision(self) -> tuple[bool, str | None]:
        _, reader = self._conns()
        try:
            names = {
                r[0]
                for r in await reader.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('checkpoints', ?)",
                    (VERSION_TABLE,),
                )
            }
            if VERSION_TABLE not in names:
                return bool(names), None
            rows = list(await reader.execute_fetchall(f"SELECT version_num FROM {VERSION_TABLE}"))
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None
        return True, (rows[0][0] if rows else None)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        _, reader = self._conns()
        try:
            return list(await reader.execute_fetchall(sql, params))  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None

    async def stream(
        self, sql: str, params: Sequence[Any] = (), batch: int = 1000
    ) -> AsyncGenerator[Row, None]:
        _, reader = self._conns()
        try:
            cursor = await reader.execute(sql, params)
            try:
                while rows := await cursor.fetchmany(batch):
                    for row in rows:
                        yield tuple(row)
            finally:
                # A caller that stops iterating early may finish us after closing the store.
                with suppress(sqlite3.Error, ValueError):
                    await cursor.close()
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None

    async def _rollback(self, writer: aiosqlite.Connection) -> None:
        if writer.in_transaction:
            with suppress(sqlite3.Error):
                await writer.execute_fetchall("ROLLBACK")

    async def write_rows(self, sql: str, rows: Sequence[Row]) -> None:
        writer, _ = self._conns()
        async with self._write_lock:
            try:
                if len(rows) == 1:
                    # One statement in autocommit mode is its own transaction and takes the write
                    # lock when it starts (no read-then-upgrade), so the busy timeout applies.
                    await writer.execute_fetchall(sql, rows[0])
                    return
                # BEGIN IMMEDIATE, executemany, COMMIT (or ROLLBACK) in one trip to the writer thread.
                await on_connection_thread(writer, lambda db: _executemany_in_transaction(db, sql, rows))
            except sqlite3.Error as exc:
                await self._rollback(writer)
                raise translate_error(exc, self._where()) from None
            except BaseException:
                # Not only sqlite3.Error: a parameter the driver cannot bind (a lone surrogate in a
                # raw importer row) or a cancellation must not leave the transaction open, or every
                # later autocommit save would run inside it and never commit.
                await self._rollback(writer)
                raise

    async def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        writer, _ = self._conns()
        async with self._write_lock:
            try:
                # The whole transaction in one trip to the writer thread (see write_rows).
                counts = await on_connection_thread(
                    writer, lambda db: _execute_in_transaction(db, statements)
                )
            except sqlite3.Error as exc:
                await self._rollback(writer)
                raise translate_error(exc, self._where()) from None
            except BaseException:
                await self._rollback(writer)
                raise
        return counts

    def state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        path = json_path(condition.path)
        jtype = "json_type(state_snapshot, ?)"
        value = "json_extract(state_snapshot, ?)"
        if condition.op == "exists":
            return f"{jtype} IS NOT NULL", [path]
        kind = condition.kind()
        if kind == "null":
            same: tuple[str, list[Any]] = (f"{jtype} = 'null'", [path])
        elif kind == "bool":
            same = (f"{jtype} = ?", [path, "true" if condition.value else "false"])
        else:
            types = "('integer', 'real')" if kind == "number" else "('text')"
            op = "=" if condition.op in ("==", "!=") else condition.op
            same = (f"({jtype} IN {types} AND {value} {op} ?)", [path, path, condition.value])
        if condition.op == "!=":
            return f"({jtype} IS NOT NULL AND NOT {same[0]})", [path, *same[1]]
        return same

    def sync_engine(self) -> Engine:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        engine = sa.create_engine(self.target.url, poolclass=NullPool)
        busy = int(self.busy_timeout_ms)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below decide how to begin
            dbapi_conn.execute(f"PRAGMA busy_timeout = {busy}")
            dbapi_conn.execute("PRAGMA journal_mode = WAL")

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # serializes concurrent upgrades

        return engine

    async def database_size(self) -> int | None:
        total = 0
        for suffix in ("", "-wal"):
            with suppress(OSError):
                total += os.path.getsize(f"{self.path}{suffix}")
        return total

    # -- inspection --------------------------------------------------------------------------

    def byte_length_sql(self, expression: str) -> str:
        # SQLite 3.40 has no octet_length(); length() counts characters of TEXT but bytes of a BLOB.
        return f"length(CAST({expression} AS BLOB))"

    async def stream_readonly(self, sql: str, batch: int = 1000) -> AsyncGenerator[Row, None]:
        """Three locks, each enough on its own for writes: the file opened `mode=ro`, `PRAGMA
        query_only`, and an authorizer that allows only reads (it alone stops ATTACH and VACUUM
        INTO, which create files whatever the first two say)."""
        if not sql.strip(" \t\r\n;"):
            raise CkptdbError("no SQL statement given")
        try:
            uri = f"file:{quote(str(self.path))}?mode=ro"
            conn = await _connect(uri)
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None
        try:
            await conn.execute_fetchall(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            await conn.execute_fetchall("PRAGMA query_only = ON")
            await conn.set_authorizer(_read_only_authorizer)
            cursor = await conn.execute(sql)
            yield tuple(column[0] for column in cursor.description or ())
            while rows := await cursor.fetchmany(batch):
                for row in rows:
                    yield tuple(row)
        except sqlite3.Error as exc:
            raise _read_only_error(exc) from None
        finally:
            with suppress(sqlite3.Error, ValueError):
                await conn.close()

    async def free_bytes(self) -> int | None:
        free_pages = (await self.fetchall("PRAGMA freelist_count"))[0][0]
        page_size = (await self.fetchall("PRAGMA page_size"))[0][0]
        return int(free_pages) * int(page_size)

    async def write_bulk(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """With the default 2 MiB page cache, a transaction deleting tens of thousands of rows spills
        dirty pages to the WAL again and again (3-4x the time, mostly system time); a 64 MiB cache
        for that one transaction writes each page once. The cache shrinks back afterwards."""
        writer, _ = self._conns()
        async with self._write_lock:
            try:
                return await on_connection_thread(writer, lambda db: _with_big_cache(db, statements))
            except sqlite3.Error as exc:
                await self._rollback(writer)
                raise translate_error(exc, self._where()) from None
            except BaseException:
                await self._rollback(writer)
                raise

    async def vacuum(self) -> None:
        writer, _ = self._conns()
        async with self._write_lock:
            try:
                await writer.execute_fetchall("VACUUM")
                # The rewrite went through the WAL, which keeps its largest size until truncated.
                await writer.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise translate_error(exc, self._where()) from None


BULK_CACHE_KIB = 65_536


def _with_big_cache(db: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
    size = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        return _execute_in_transaction(db, statements)
    finally:
        db.execute(f"PRAGMA cache_size = {int(size)}")


# -- read-only SQL for people (`ckptdb sql`) ----------------------------------------------------

_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
# Pragmas that only report, allowed without an argument (with one, most of them would set).
_REPORTING_PRAGMAS = frozenset(
    (
        "application_id",
        "auto_vacuum",
        "busy_timeout",
        "cache_size",
        "collation_list",
        "compile_options",
        "data_version",
        "database_list",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "integrity_check",
        "journal_mode",
        "max_page_count",
        "mmap_size",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "query_only",
        "quick_check",
        "schema_version",
        "synchronous",
        "table_list",
        "user_version",
        "wal_autocheckpoint",
    )
)
# Pragmas whose argument names what to report on (a table, an index, a schema, a row limit).
_LOOKUP_PRAGMAS = frozenset(
    (
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    )
)


def _read_only_authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
) -> int:
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in _LOOKUP_PRAGMAS or (arg2 is None and name in _REPORTING_PRAGMAS):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
        # Table-valued pragmas (SELECT * FROM pragma_table_info('checkpoints')) ask this while
        # compiling and never run it; a real UPDATE of the schema table still meets query_only,
        # the read-only file and SQLite's own writable_schema=OFF.
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _read_only_error(exc: sqlite3.Error) -> CkptdbError:
    text = str(exc)
    if "one statement at a time" in text:
        return CkptdbError("refused: one SQL statement at a time (nothing was run)")
    if any(sign in text for sign in ("authoriz", "readonly", "query_only", "may not be modified")):
        return CkptdbError(
            "refused: `sql` only reads (SELECT, WITH, reporting PRAGMAs such as table_info); this "
            f"statement would write or open another file ({text}): nothing was changed"
        )
    return CkptdbError(f"SQL error: {text}")
