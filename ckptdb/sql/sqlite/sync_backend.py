"""SQLite for the synchronous store: the calling threads commit, a read connection per thread.

No writer thread. Saves go through `LeaderCommit`: the thread that takes the writer connection's
lock commits every save queued so far in one transaction, so a sequential save is one autocommit
statement on the caller's thread (no hand-off: at synchronous=NORMAL a hand-off to a thread costs
more than the commit), and 8 threads at FULL share one fsync per group. Reads run on a connection
of the calling thread's own: in WAL mode a read never waits for the writer or another reader.
The writer connection is the file's in this process (`shared_writer`), shared with every other
store of the process on it, async ones too: their commits take turns on its lock, not through
SQLite's busy handler. With it comes the async backend's WAL policy: the same checkpointer thread
(`Checkpointer`: PASSIVE checkpoints off the commit path, the WAL fsynced within `sync_interval`
at NORMAL), the same pacing (`WalPacer`: the writer finishes a checkpoint itself past
`WAL_LIMIT_PAGES`) and the same refusal to fill the disk while a reader starves checkpoints
(`SharedWriter.room_for`).

The options, their checks, the path checks, how each connection is opened, the migration engine
and the spelling of state conditions are `SqliteBackend`'s, used here through an unconnected
instance (`config`), so nothing of them is written twice.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import suppress
from typing import Any

from ckptdb.errors import StoreError, UnavailableError
from ckptdb.sql.backend import DatabaseTarget, Row, SchemaState
from ckptdb.sql.group_commit import LeaderCommit, Outcomes, SyncRequest
from ckptdb.sql.revision import VERSION_TABLE
from ckptdb.sql.sqlite import shared_writer
from ckptdb.sql.sqlite.backend import SqliteBackend
from ckptdb.sql.sqlite.checkpointer import Checkpointer, WalPacer
from ckptdb.sql.sqlite.connection import (
    commit_requests,
    ensure_wal,
    execute_in_transaction,
    is_busy,
    is_full,
    translate_error,
)
from ckptdb.sql.sqlite.settings import MAX_GROUP_ROWS, RESOURCES
from ckptdb.sql.sqlite.shared_writer import SharedWriter
from ckptdb.sql.sqlite.spelling import STATE_MATCH, SqliteSpelling, state_match
from ckptdb.sql.sync_backend import SyncBackend

ABANDONED: list[object] = []
"""Connections a forked child let go of (`abandon`): kept referenced, so the child never closes
them (their file handles and locks are the parent's business)."""


class SyncSqliteBackend(SqliteSpelling, SyncBackend):
    OPTIONS = SqliteBackend.OPTIONS
    config: SqliteBackend

    def __init__(self, target: DatabaseTarget, **options: Any) -> None:
        self.config = config = SqliteBackend(target, **options)
        self.target = target
        self.max_value_bytes = config.max_value_bytes
        self._where = str(config.path)
        self._shared: SharedWriter | None = None
        self._writer: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._pacer: WalPacer | None = None
        self._saves: LeaderCommit | None = None
        self._readers: dict[int, sqlite3.Connection] = {}
        self._readers_lock = threading.Lock()
        self._readonly = False
        self._open = False
        self._tidy_wal = False

    # -- connections ----------------------------------------------------------------------------

    def connect(self, *, create: bool, readonly: bool = False) -> None:
        config = self.config
        config.check_path(create=create and not readonly, writing=not readonly)
        self._readonly = readonly
        self._open = True
        try:
            if readonly:
                self._tidy_wal = config._wal_tidy_needed()
            else:
                self._shared = shared = config.acquire_writer(create)
                self._writer = writer = shared.conn
                self.max_value_bytes = writer.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
                self._checkpointer = shared.checkpointer
                self._pacer = shared.pacer
                self._saves = LeaderCommit(
                    self._attempt,
                    lambda exc: not is_busy(exc),
                    self._translate_write,
                    committed=self._committed,
                    max_rows=MAX_GROUP_ROWS,
                    lock=shared.lock,
                )
            self._reader()
        except sqlite3.Error as exc:
            error = translate_error(exc, self._where)
            self.close()
            raise error from None
        except OSError as exc:  # no thread or file descriptor left (ulimit -n, -u)
            self.close()
            raise UnavailableError(f"cannot open {self._where}: {exc.strerror or exc}: {RESOURCES}") from None
        except BaseException:
            self.close()
            raise

    def prepare_writes(self) -> None:
        saves, writer = self._writing()
        try:
            with saves.lock:
                self._set_full_busy_timeout()
                ensure_wal(writer, self.config.busy_timeout_ms)
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where) from None

    def _open_reader(self) -> sqlite3.Connection:
        config = self.config
        if self._readonly:
            db = sqlite3.connect(
                config.read_only_uri(), uri=True, isolation_level=None, check_same_thread=False
            )
            db.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
        else:
            db = config._driver_connection("rw")
        db.create_function(STATE_MATCH, 2, state_match, deterministic=True)
        return db

    def _reader(self) -> sqlite3.Connection:
        """The calling thread's read connection, opened on its first read. Connections of threads
        that have ended are closed when a new one opens (a server that starts a thread per
        request does not pile them up)."""
        ident = threading.get_ident()
        db = self._readers.get(ident)
        if db is not None:
            return db
        if not self._open:
            raise StoreError("the store is closed")
        db = self._open_reader()
        with self._readers_lock:
            alive = {thread.ident for thread in threading.enumerate()}
            gone = [key for key in self._readers if key not in alive]
            stale = [self._readers.pop(key) for key in gone]
            self._readers[ident] = db
        for old in stale:
            with suppress(sqlite3.Error):
                old.close()
        return db

    def _writing(self) -> tuple[LeaderCommit, sqlite3.Connection]:
        if not self._open:
            raise StoreError("the store is closed")
        if self._saves is None or self._writer is None:
            raise StoreError(f"{self._where} was opened read-only: open it with connect() to write")
        return self._saves, self._writer

    def close(self) -> None:
        # The writer last, as in SqliteBackend.close: the last store to let go of the shared
        # writer stops its checkpointer, then closes it after the saves in flight.
        self._open = False
        self._checkpointer = None
        with self._readers_lock:
            readers, self._readers = list(self._readers.values()), {}
        for db in readers:
            with suppress(sqlite3.Error):
                db.close()
        shared, self._shared, self._writer = self._shared, None, None
        if shared is not None:
            shared_writer.release(shared)
        if self._tidy_wal:
            self._tidy_wal = False
            self.config._remove_wal_files()

    def abandon(self) -> None:
        self._open = False
        ABANDONED.extend(self._readers.values())
        ABANDONED.extend((self._writer, self._checkpointer, self._shared))
        self._readers = {}
        self._writer = self._checkpointer = self._shared = None  # no checkpointer thread here

    # -- reads ----------------------------------------------------------------------------------

    def schema_state(self) -> SchemaState:
        db = self._reader()
        try:
            names = {
                r[0]
                for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('checkpoints', ?)",
                    (VERSION_TABLE,),
                )
            }
            rows = []
            if VERSION_TABLE in names:
                rows = db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where) from None
        return SchemaState("checkpoints" in names, VERSION_TABLE in names, rows[0][0] if rows else None)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        db = self._readers.get(threading.get_ident()) or self._reader()
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where) from None

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> Iterator[Row]:
        db = self._reader()
        try:
            cursor = db.execute(sql, params)
            try:
                while rows := cursor.fetchmany(batch):
                    yield from rows
            finally:
                with suppress(sqlite3.Error):
                    cursor.close()
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where) from None

    # -- writes ---------------------------------------------------------------------------------

    def _translate_write(self, exc: BaseException) -> BaseException:
        return translate_error(exc, self._where, writing=True) if isinstance(exc, sqlite3.Error) else exc

    def _committed(self, batch: list[SyncRequest], outcomes: Outcomes) -> None:
        """After each group, the writer's lock still held: the WAL policy's bookkeeping."""
        checkpointer, pacer, writer = self._checkpointer, self._pacer, self._writer
        if checkpointer is None or pacer is None or writer is None:
            return
        if outcomes is not None and any(map(is_full, outcomes)):
            checkpointer.poke()  # a checkpoint that can finish now makes room again
        checkpointer.note_commit()
        with suppress(Exception):  # bookkeeping only: SQLite's own auto-checkpoint remains
            if pacer.count([request.rows for request in batch]):
                pacer.finish(writer)

    def _set_full_busy_timeout(self) -> None:
        if self._shared is not None:
            self._shared.set_busy_timeout(self.config.busy_timeout_ms)

    def _attempt(self, batch: list[SyncRequest]) -> BaseException | None:
        """One transaction over a group, on the shared writer (its lock held): at the store's busy
        timeout (an async store's loop commits leave it at 0), unless a starved reader leaves too
        little disk (`SharedWriter.room_for`)."""
        shared = self._shared
        if shared is None:
            return StoreError("the store is closed")
        shared.set_busy_timeout(self.config.busy_timeout_ms)
        return shared.room_for(batch) or commit_requests(shared.conn, batch)

    def save_rows(self, sql: str, rows: Sequence[Row]) -> None:
        saves, _ = self._writing()
        saves.save(sql, rows)

    def save_parts(self, parts: Sequence[tuple[str, Sequence[Row]]]) -> None:
        saves, _ = self._writing()
        (sql, rows), *more = parts
        saves.save(sql, rows, more)

    def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        saves, writer = self._writing()
        with saves.lock:
            try:
                self._set_full_busy_timeout()
                counts = execute_in_transaction(writer, statements)
            except sqlite3.Error as exc:
                raise translate_error(exc, self._where, writing=True) from None
            if self._checkpointer is not None:
                self._checkpointer.note_commit()
        return counts
