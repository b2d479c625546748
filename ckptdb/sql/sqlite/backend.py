"""SQLite: WAL, a busy timeout, BEGIN IMMEDIATE for write transactions, group commit.

Four connections. The writer connection is the file's in this process (`shared_writer`: one per
database file, shared with every other store of the process on it, the synchronous ones too), used
under its lock by this store's `WriterThread`: every write is one job on its thread, in order, and
saves that queue up while a transaction runs are committed together in the next one. At
synchronous=NORMAL a commit only appends to the WAL (no fsync), and handing it to a thread costs
more than the commit itself (two thread wake-ups, 140-170 us on a VM), so the saves gathered in one
event-loop turn commit right there on the loop's thread instead, when that cannot wait: the writer
thread is idle and no other connection holds the write lock (tried without the busy timeout; if
locked, the thread takes them and waits). Reads never wait behind writes (WAL): the short ones (a
load, the latest of a graph, a bounded page) run on the loop's thread too, on a connection of its
own (`LoopReader`, see `fetch_quick`), and the reader (aiosqlite) serves the rest, and those the
loop's connection hands back. The checkpointer (`Checkpointer`, a thread and connection of its own)
copies the WAL back into the database file off the commit path, fsyncs the WAL at most
`sync_interval` after a commit (the power-loss bound at NORMAL), and notices a reader that keeps
checkpoints from finishing; the writer's own auto-checkpoint stays on, at a higher mark, as the
bound on the WAL's length.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

from ckptdb.errors import CkptdbError, StoreError, UnavailableError
from ckptdb.sql.backend import (
    Backend,
    DatabaseTarget,
    InsertResult,
    IntegrityCheck,
    Resolve,
    Row,
    SchemaState,
    WalStatus,
    check_bool,
    check_choice,
    check_count,
)
from ckptdb.sql.revision import VERSION_TABLE

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

from ckptdb.sql.sqlite import settings, shared_writer
from ckptdb.sql.sqlite.checkpointer import Checkpointer, wal_backlog
from ckptdb.sql.sqlite.connection import (
    TidyConnection,
    ensure_wal,
    execute_in_transaction,
    insert_rows_once,
    open_connection,
    sqlite_uri,
    translate_error,
    vacuum_database,
    with_big_cache,
)
from ckptdb.sql.sqlite.loop_reader import LoopReader
from ckptdb.sql.sqlite.readonly import PROGRESS_STEPS, read_only_authorizer, read_only_error
from ckptdb.sql.sqlite.settings import (
    RESOURCES,
    SQLITE_MAX_LENGTH,
    SYNC_INTERVAL,
    SYNCHRONOUS,
    WAL_SIZE_LIMIT,
)
from ckptdb.sql.sqlite.spelling import (
    STATE_MATCH,
    SqliteSpelling,
    state_match,
)
from ckptdb.sql.sqlite.writer import WriterThread


class SqliteBackend(SqliteSpelling, Backend):
    OPTIONS = (
        "synchronous",
        "busy_timeout_ms",
        "commit_on_loop",
        "read_on_loop",
        "sync_interval",
        "max_value_bytes",
    )

    def __init__(
        self,
        target: DatabaseTarget,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 30_000,
        commit_on_loop: bool = True,
        read_on_loop: bool = True,
        sync_interval: float | None = SYNC_INTERVAL,
        max_value_bytes: int | None = None,
    ) -> None:
        """`commit_on_loop=False` keeps every SQLite write off the event loop's thread, at about
        twice the time per sequential save; at synchronous=FULL (an fsync per commit) it is off.
        `sync_interval` (seconds, at NORMAL): the longest an acknowledged save waits for the fsync
        that makes it survive a power cut (see `Checkpointer`); None or 0 leaves it to checkpoints.
        `max_value_bytes` lowers SQLite's length limit (SQLITE_LIMIT_LENGTH, 1,000,000,000 bytes
        by default, and never raised above it) on ckptdb's connections.
        `read_on_loop=False` sends every read to the reader's thread, where short ones (a load,
        the latest of a graph, a bounded page) otherwise run on the event loop's, at 2.9-3.8 times
        the rate (see `fetch_quick`)."""
        assert target.path is not None
        if max_value_bytes is not None:
            check_count("max_value_bytes", max_value_bytes, minimum=1)
        self._length_limit = max_value_bytes
        self.max_value_bytes = min(max_value_bytes or SQLITE_MAX_LENGTH, SQLITE_MAX_LENGTH)
        self.target = target
        self.path = target.path
        synchronous = check_choice("synchronous", synchronous, SYNCHRONOUS)
        self.synchronous = synchronous
        self.busy_timeout_ms = check_count("busy_timeout_ms", busy_timeout_ms)
        self.commit_on_loop = check_bool("commit_on_loop", commit_on_loop) and synchronous == "NORMAL"
        self.read_on_loop = check_bool("read_on_loop", read_on_loop)
        self.readonly = False
        if sync_interval is not None and (
            isinstance(sync_interval, bool)
            or not isinstance(sync_interval, int | float)
            or not 0 <= sync_interval <= 3600
        ):
            raise CkptdbError(
                f"sync_interval must be seconds between 0 and 3600 (0 or None: off), got {sync_interval!r}"
            )
        self.sync_interval = float(sync_interval) if sync_interval and synchronous == "NORMAL" else None
        self._writer: WriterThread | None = None
        self._reader: aiosqlite.Connection | None = None
        self._loop_reader: LoopReader | None = None
        self._checkpointer: Checkpointer | None = None
        self._tidy_wal = False  # read-only: remove the -wal/-shm that our reading made (see close)

    def _where(self) -> str:
        return str(self.path)

    async def _open(self, *, create: bool) -> aiosqlite.Connection:
        conn = await open_connection(sqlite_uri(self.path, mode="rwc" if create else "rw"))
        try:
            await conn.execute_fetchall(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            await conn.execute_fetchall(f"PRAGMA synchronous = {self.synchronous}")
            await conn.create_function(STATE_MATCH, 2, state_match, deterministic=True)
        except sqlite3.Error:
            await conn.close()
            raise
        return conn

    def read_only_uri(self) -> str:
        """`mode=ro`, and `immutable=1` only where no process can be writing the file.

        `mode=ro` still takes SQLite's locks, so a writer in another process is seen correctly; but
        on a WAL database it needs a `-shm` it can open, which it cannot create on a read-only file
        system or in a directory it may not write to ("unable to open database file"). There, and
        only there (no writer can run either: it could not create its `-wal`), `immutable=1` reads
        the file without locks or a `-shm`. Where a `-wal` already exists, a writer may be live, so
        plain `mode=ro` (which reads an existing `-wal` and `-shm`) stays.
        """
        directory_writable = os.access(self.path.parent, os.W_OK)
        if not directory_writable and not os.path.exists(f"{self.path}-wal"):
            return sqlite_uri(self.path, mode="ro", immutable="1")
        return sqlite_uri(self.path, mode="ro")

    def _driver_connection(self, mode: str) -> sqlite3.Connection:
        """A plain sqlite3 connection (autocommit, usable from any one thread at a time)."""
        db = sqlite3.connect(
            sqlite_uri(self.path, mode=mode), uri=True, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            if self._length_limit is not None:
                db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self._length_limit)
        except BaseException:
            db.close()
            raise
        return db

    def _checkpointer_connection(self) -> sqlite3.Connection:
        db = self._driver_connection("rw")
        db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        return db

    def _open_writer(self, create: bool) -> sqlite3.Connection:
        """The writer connection; the journal mode is left alone until `prepare_writes`, so opening
        a file whose schema is then refused (another tool's) changes nothing in it."""
        db = self._driver_connection("rwc" if create else "rw")
        try:
            db.execute(f"PRAGMA wal_autocheckpoint = {settings.WAL_BACKSTOP_PAGES}")
            db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        except BaseException:
            db.close()
            raise
        return db

    def acquire_writer(self, create: bool) -> shared_writer.SharedWriter:
        """This process's writer of the file for these settings (`shared_writer`), opened by
        `_open_writer` if there is none yet; `shared_writer.release` it."""
        settings = (self.synchronous, self.busy_timeout_ms, self._length_limit, self.sync_interval)
        return shared_writer.acquire(
            self.path,
            settings,
            lambda: self._open_writer(create),
            self._checkpointer_connection,
            self.sync_interval,
            self.busy_timeout_ms,
        )

    def check_path(self, *, create: bool, writing: bool = False) -> None:
        """Refuse, before SQLite sees it, a path that cannot be a database file: SQLite would open a
        directory or a device and fail later with "disk I/O error", or create the file elsewhere."""
        path = self.path
        if path.is_dir():
            raise StoreError(
                f"{path} is a directory, not an SQLite database file: give a file's path in --db"
            )
        if path.exists() and not path.is_file():
            raise StoreError(
                f"{path} is not a regular file (a device or a pipe?): give an SQLite file's path in --db"
            )
        if not create and not path.exists():
            raise StoreError(f"no database at {path}: check the path or --db (nothing was created)")
        if create and not path.exists() and not path.parent.is_dir():
            raise StoreError(f"cannot create {path}: directory {path.parent} does not exist")
        if writing and not os.access(path.parent, os.W_OK):
            # SQLite writes its -wal (or -journal) next to the file: no write without the directory.
            raise StoreError(
                f"cannot write {path}: its directory is read-only (a read-only file system, or no write "
                "permission): check that the directory exists and is writable; the commands that only "
                "read (list, show, export, db check) still work"
            )

    async def connect(self, *, create: bool, readonly: bool = False) -> None:
        self.check_path(create=create and not readonly, writing=not readonly)
        self.readonly = readonly
        try:
            if readonly:
                # Only the reader: no writer thread, no checkpointer, nothing that could write.
                self._tidy_wal = self._wal_tidy_needed()
                uri = self.read_only_uri()
                self._reader = await open_connection(uri)
                await self._reader.execute_fetchall(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                await self._reader.create_function(STATE_MATCH, 2, state_match, deterministic=True)
                self._open_loop_reader(uri)
                return
            shared = await asyncio.to_thread(self.acquire_writer, create)
            try:
                # What the engine will refuse anyway: a save checks its JSON against it before copying.
                self.max_value_bytes = shared.conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
                self._writer = WriterThread(
                    shared,
                    self._where(),
                    commit_on_loop=self.commit_on_loop,
                    busy_timeout_ms=self.busy_timeout_ms,
                )
            except BaseException:
                await asyncio.to_thread(shared_writer.release, shared)
                raise
            self._checkpointer = shared.checkpointer
            self._reader = await self._open(create=False)
            self._open_loop_reader(sqlite_uri(self.path, mode="rw"))
        except sqlite3.Error as exc:
            error = translate_error(exc, self._where())  # before close frees the descriptors
            await self.close()
            raise error from None
        except OSError as exc:  # no thread or file descriptor left (ulimit -n, -u)
            await self.close()
            raise UnavailableError(
                f"cannot open {self._where()}: {exc.strerror or exc}: {RESOURCES}"
            ) from None
        except BaseException:
            await self.close()
            raise

    def _open_loop_reader(self, uri: str) -> None:
        """On the thread that opens the store (its event loop's): only that thread reads through
        it. Opening reads nothing from the file (SQLite reads at the first statement)."""
        if self.read_on_loop:
            self._loop_reader = LoopReader(uri, self._where(), self._length_limit)

    async def prepare_writes(self) -> None:
        """WAL, switched on the first time a store opens the file for writing (see `ensure_wal`),
        once its schema is known to be ckptdb's. On the writer connection, which nothing else uses
        yet, under its lock rather than as a job on its thread."""
        writer, _ = self._conns()

        def switch() -> None:
            with writer._conn_lock:
                writer._set_busy_timeout(self.busy_timeout_ms)
                ensure_wal(writer._conn, self.busy_timeout_ms)

        try:
            await asyncio.to_thread(switch)
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None

    async def close(self) -> None:
        # The writer last: the last store of the process to let go of the shared writer stops its
        # checkpointer and then closes it (`shared_writer.release`), so the last connection to
        # close, which checkpoints and removes the WAL, knows of no checkpoint under way.
        self._checkpointer = None
        loop_reader, self._loop_reader = self._loop_reader, None
        if loop_reader is not None:  # before the others: never the last connection to the file
            loop_reader.close()
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        if reader is not None:
            with suppress(sqlite3.Error, ValueError):
                await reader.close()
        if writer is not None:
            with suppress(CkptdbError, sqlite3.Error):
                await writer.close()
        if self._tidy_wal:
            self._tidy_wal = False
            await asyncio.to_thread(self._remove_wal_files)

    def _wal_tidy_needed(self) -> bool:
        """Whether reading may leave a `-wal`/`-shm` behind that was not there (see below)."""
        wal_files = any(os.path.exists(f"{self.path}{suffix}") for suffix in ("-wal", "-shm"))
        return not wal_files and os.access(self.path.parent, os.W_OK)

    async def tidy_killed_readers(self) -> None:
        await asyncio.to_thread(self._remove_killed_readers_files)

    def _remove_killed_readers_files(self) -> None:
        """A read-only connection creates a `-wal` (empty: it never writes one) and a `-shm` when
        there were none, and removes them on close (`_remove_wal_files`); a process killed mid-read
        (SIGKILL, the OOM killer, a power cut) leaves them, and every later reader found them there
        and so left them too, forever. Removed here only when the `-wal` is empty or absent (no
        frame in it: a crashed writer's committed frames stay, for SQLite to recover) and the
        directory is writable; the removal is SQLite's own, the close of the last connection, so a
        live process still using them keeps them (its connection holds the database's shared lock
        and SQLite removes nothing then). The database file's bytes are never written: a WAL with
        no frames has nothing to copy into it."""
        wal, shm = f"{self.path}-wal", f"{self.path}-shm"
        try:
            if os.path.getsize(wal) != 0:
                return
        except FileNotFoundError:
            if not os.path.exists(shm):
                return
        except OSError:
            return
        if self.path.is_file() and os.access(self.path.parent, os.W_OK) and os.access(self.path, os.W_OK):
            self._close_last_connection()

    def _remove_wal_files(self) -> None:
        """After reading a WAL database that had no `-wal`/`-shm` before: a read-only connection
        creates both and, unable to checkpoint, leaves them behind on close. SQLite deletes them on
        the close of the last connection that may write, so open and close one (it finds the WAL
        empty: nothing is copied into the database file). Another process that opened the file
        meanwhile keeps them: SQLite removes them only when no other connection is left."""
        if not os.path.exists(f"{self.path}-wal"):
            return
        self._close_last_connection()

    def _close_last_connection(self) -> None:
        """Open and close a connection that may write: SQLite removes the `-wal` and `-shm` when
        it closes the last connection to the database (after copying the WAL's frames, of which
        the callers make sure there are none)."""
        with suppress(sqlite3.Error, OSError):
            db = sqlite3.connect(sqlite_uri(self.path, mode="rw"), uri=True, isolation_level=None)
            try:
                db.execute("PRAGMA busy_timeout = 100")
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            finally:
                db.close()

    def _conns(self) -> tuple[WriterThread, aiosqlite.Connection]:
        if self._reader is None:
            raise StoreError("the store is closed")
        if self._writer is None:
            raise StoreError(f"{self._where()} was opened read-only: open it with open_store() to write")
        return self._writer, self._reader

    def _read_conn(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreError("the store is closed")
        return self._reader

    async def schema_state(self) -> SchemaState:
        reader = self._read_conn()
        try:
            names = {
                r[0]
                for r in await reader.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('checkpoints', ?)",
                    (VERSION_TABLE,),
                )
            }
            rows = []
            if VERSION_TABLE in names:
                rows = list(await reader.execute_fetchall(f"SELECT version_num FROM {VERSION_TABLE}"))
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None
        return SchemaState("checkpoints" in names, VERSION_TABLE in names, rows[0][0] if rows else None)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        reader = self._read_conn()
        try:
            return list(await reader.execute_fetchall(sql, params))  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None

    async def fetch_quick(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """On the event loop's own thread (`LoopReader`) when it can be, else as `fetchall`.

        Why: through aiosqlite a read pays two thread wake-ups, several times what SQLite spends
        on a point load (9.5 us). `bench.py core`, 2026-12-04, 3,000 random 2 KB loads, median of
        3 runs, four sets: 21,702-30,136 loads/s on the loop against 5,781-10,573/s through the
        thread, 2.9-3.8x in each set; against LangGraph's `aget_tuple` 14.5x and 16.7x where it ran
        at 1,500-1,640/s, 7.4x and 6.4x where it ran at 4,060-4,260/s.

        What it costs the loop, timed around each call in the same runs: a 2 KB load holds it
        0.010 ms (p50) and 0.025-0.039 ms (p99) alone, and 0.015 ms / 0.15-0.22 ms while 16 tasks
        save; the commits of those saves on the loop (`WriterThread._flush`, accepted with
        `commit_on_loop`) held it 0.60-0.86 ms (p50) and 1.2-3.2 ms (p99). So short reads run
        here by default. Reads that could run long never get that far: `LoopReader` gives up
        after 0.5 ms or 10,000 SQLite steps (a filtered page that scans, a page of hundreds of
        rows) and the reader thread runs them again; a count, an unbounded query, a stream and
        everything else keep that thread. Rows of any size read here: a big value is one step
        (no bound catches it), but the loop decodes it anyway at twice the read's cost (64 KiB:
        0.018 ms to read, 0.062 ms to decode; 1 MiB: 0.45 and 0.95 ms; 8 MiB: 4.7 and 9.5 ms),
        so moving the read off the loop would save that load at most a third of its stall.
        `read_on_loop=False` sends every read to the thread."""
        here = self._loop_reader
        if here is not None:
            found = here.read(sql, params)
            if found is not None:
                return found
        return await self.fetchall(sql, params)

    async def stream(
        self, sql: str, params: Sequence[Any] = (), batch: int = 1000
    ) -> AsyncGenerator[Row, None]:
        reader = self._read_conn()
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

    def save_rows(self, sql: str, rows: Sequence[Row]) -> asyncio.Future[None]:
        """The writer thread's own group commit; its future is awaited as it is, no coroutine
        around it, on the path of every save."""
        writer, _ = self._conns()  # read-only: StoreError, nothing queued
        return writer.submit_rows(sql, rows)

    def save_parts(self, parts: Sequence[tuple[str, Sequence[Row]]]) -> asyncio.Future[None]:
        writer, _ = self._conns()
        (sql, rows), *more = parts
        return writer.submit_rows(sql, rows, more)

    async def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        writer, _ = self._conns()
        # BEGIN IMMEDIATE, the statements, COMMIT (or ROLLBACK) in one trip to the writer thread.
        return await writer.call(lambda db: execute_in_transaction(db, statements))

    async def insert_rows(self, rows: Sequence[Row], resolve: Resolve | None = None) -> InsertResult:
        writer, _ = self._conns()
        if not rows:
            return InsertResult()
        return await writer.call(lambda db: insert_rows_once(db, rows, resolve), rows)

    def sync_engine(self, *, create: bool = True, readonly: bool = False) -> Engine:
        """The engine opens the file through `sqlite_uri`, never through a SQLAlchemy URL (which
        would decode `%XX` in the path and could meet `?` and `#`), and turns driver errors into
        one-line ckptdb errors. Read-only: `mode=ro`, no journal-mode switch, plain BEGIN."""
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        self.check_path(create=create and not readonly, writing=not readonly)
        uri = self.read_only_uri() if readonly else sqlite_uri(self.path, mode="rwc" if create else "rw")
        busy = int(self.busy_timeout_ms)
        where = self._where()
        tidy = readonly and self._wal_tidy_needed()

        def _creator() -> sqlite3.Connection:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, factory=TidyConnection)
            conn.after_close = self._remove_wal_files if tidy else None
            return conn

        engine = sa.create_engine("sqlite://", creator=_creator, poolclass=NullPool)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below decide how to begin
            dbapi_conn.execute(f"PRAGMA busy_timeout = {busy}")
            if not readonly:
                ensure_wal(dbapi_conn, busy)

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # IMMEDIATE serializes concurrent upgrades; a read-only connection cannot take it.
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        @sa.event.listens_for(engine, "handle_error")
        def _on_error(context: Any) -> CkptdbError | None:
            original = context.original_exception
            return translate_error(original, where) if isinstance(original, sqlite3.Error) else None

        return engine

    async def database_size(self) -> int | None:
        total = 0
        for suffix in ("", "-wal"):
            with suppress(OSError):
                total += os.path.getsize(f"{self.path}{suffix}")
        return total

    # -- inspection --------------------------------------------------------------------------

    async def stream_readonly(self, sql: str, batch: int = 1000) -> AsyncGenerator[Row, None]:
        """Three locks, each enough on its own for writes: the file opened `mode=ro`, `PRAGMA
        query_only`, and an authorizer that allows only reads (it alone stops ATTACH and VACUUM
        INTO, which create files whatever the first two say, and refuses the functions that reach
        outside the database).

        The query stops as soon as its reader goes away (Ctrl-C cancels the task, or the caller
        closes this generator): a progress handler, which SQLite calls every
        `PROGRESS_STEPS` virtual machine instructions on the connection's own thread, ends it
        once `stop` is set. Without it the close below would wait behind an endless query (a
        recursive CTE ran on through SIGINTs for 10 minutes)."""
        if not sql.strip(" \t\r\n;"):
            raise CkptdbError("no SQL statement given")
        try:
            conn = await open_connection(self.read_only_uri())
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None
        stop = threading.Event()
        try:
            await conn.execute_fetchall(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            await conn.execute_fetchall("PRAGMA query_only = ON")
            await conn.set_authorizer(read_only_authorizer)
            await conn.set_progress_handler(lambda: 1 if stop.is_set() else 0, PROGRESS_STEPS)
            cursor = await conn.execute(sql)
            yield tuple(column[0] for column in cursor.description or ())
            while rows := await cursor.fetchmany(batch):
                for row in rows:
                    yield tuple(row)
        except sqlite3.Error as exc:
            raise read_only_error(exc) from None
        finally:
            stop.set()  # a query still running on the connection's thread ends at its next step
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
        return await writer.call(lambda db: with_big_cache(db, statements))

    async def integrity_check(self, *, quick: bool) -> IntegrityCheck:
        pragma = "quick_check" if quick else "integrity_check"
        found: list[str] = []
        try:  # a row at a time: what the check found before it tripped over the damage is kept
            async with aclosing(self.stream(f"PRAGMA {pragma}(100)", batch=1)) as rows:
                async for row in rows:
                    found.append(str(row[0]))
        except StoreError as exc:  # damaged beyond what the check can walk
            found.append(str(exc))
        return IntegrityCheck(
            pragma,
            tuple(line for line in found if line != "ok"),
            remedy="restore a backup (SQLite: `sqlite3 DB .recover` saves what still reads)",
        )

    async def change_token(self) -> tuple[int, int]:
        """`PRAGMA data_version` of the read connection (it changes when any other connection, in
        this process or another, commits) with that connection's own `total_changes()`: together
        they change on every commit that can change what this connection reads. One statement:
        0.1 ms through aiosqlite (measured), where `ckptdb graphs`' reads take about 220 ms on a
        million rows."""
        reader = self._read_conn()
        try:
            found = await reader.execute_fetchall(
                "SELECT (SELECT data_version FROM pragma_data_version), total_changes()"
            )
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None
        version, changes = next(iter(found))
        return int(version), int(changes)

    async def wal_status(self) -> WalStatus:
        """Tries a PASSIVE checkpoint (on the writer thread, in turn): whether it finishes is the one
        way to learn that a reader in some other process holds the WAL. A read-only store must not
        checkpoint (that writes the database file): it reads the WAL's size and, when that is past
        the bound the writers keep, whether the wal-index says frames are still waiting to be copied
        back (`wal_backlog`): a WAL that stays past its bound with a backlog is a starved one."""
        if self.readonly:
            try:
                size = os.path.getsize(f"{self.path}-wal")
            except OSError:
                return WalStatus(0, False, None)
            backlog = wal_backlog(Path(f"{self.path}-shm")) if size > WAL_SIZE_LIMIT else None
            return WalStatus(size, bool(backlog), None)
        writer, _ = self._conns()
        checkpointer = self._checkpointer
        assert checkpointer is not None

        def probe(db: sqlite3.Connection) -> tuple[int, int, int]:
            with checkpointer.lock:
                row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                checkpointer.record(row)
            return int(row[0]), int(row[1]), int(row[2])

        try:
            _busy, log, done = await writer.call(probe)
            blocked = log > done >= 0
            if blocked:  # a reader pins the same frame again; a commit that had just ended does not
                _busy, log, again = await writer.call(probe)
                blocked = log > again >= 0 and again == done
        except CkptdbError:  # a read-only file, say: the size alone
            return WalStatus(checkpointer.wal_bytes(), False, None)
        return WalStatus(checkpointer.wal_bytes(), blocked, checkpointer.starved_since)

    async def vacuum(self) -> int | None:
        writer, _ = self._conns()
        # The rewrite goes through the WAL, which keeps its largest size until truncated.
        busy = int(self.busy_timeout_ms)
        if await writer.call(lambda db: vacuum_database(db, busy)):
            return None
        try:
            return os.path.getsize(f"{self.path}-wal")
        except FileNotFoundError:
            return None
