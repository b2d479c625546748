"""The driver connection: naming a file exactly, write transactions, turning driver errors into
one line, VACUUM and WAL truncation.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiosqlite

from ckptdb.errors import CkptdbError, OutcomeUnknownError, StoreError, UnavailableError
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.backend import (
    InsertResult,
    Resolve,
    Row,
)
from ckptdb.sql.group_commit import Queued
from ckptdb.sql.sqlite.settings import RESOURCES


def sqlite_uri(path: Path, **params: str) -> str:
    """The `file:` URI that names exactly `path`, whatever its characters.

    SQLite's URI parser ends the name at `?` and `#` and decodes `%XX`, so a path pasted into a URI
    opens another file (`a#b.db` opens `a`, `x?c.db` opens `x`, `%41.db` opens `A.db`). Every byte
    except letters, digits, `-._~` and `/` is percent-encoded (the name's bytes as the file system
    has them, so non-UTF-8 names survive too), and the authority is left empty (`file://` then the
    absolute path), so a path that starts with `//` is not read as a host.
    """
    name = quote(os.fsencode(path), safe="/")
    return f"file://{name}" + (f"?{urlencode(params)}" if params else "")


def ensure_wal(db: sqlite3.Connection, busy_timeout_ms: float) -> None:
    """Switch a database to WAL (once, when it is created), waiting for other connections.

    Changing the journal mode needs the database to itself, and SQLite answers "database is
    locked" at once when another connection has it open (a `ckptdb list` polling a database that
    an import is creating): the busy handler is not consulted for this. So retry, with a short
    backoff, for as long as the busy timeout would have waited.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[None]:
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


def commit_requests(db: sqlite3.Connection, batch: Sequence[Queued]) -> BaseException | None:
    """One transaction over queued saves (`ckptdb.sql.group_commit`) on the writer connection; its
    error (rolled back), or None once committed. Written once for the writer thread, the event
    loop's commits and the synchronous store's leader."""
    try:
        if len(batch) == 1 and len(batch[0].rows) == 1 and not batch[0].more:
            # One statement in autocommit mode is its own transaction and takes the write lock
            # when it starts (no read-then-upgrade), so the busy timeout applies.
            db.execute(batch[0].sql, batch[0].rows[0])
        else:
            with immediate_transaction(db):
                for request in batch:
                    if len(request.rows) == 1:
                        db.execute(request.sql, request.rows[0])
                    else:
                        db.executemany(request.sql, request.rows)
                    for sql, rows in request.more:
                        db.executemany(sql, rows)
        return None
    except BaseException as exc:  # not only sqlite3.Error: a row it cannot bind
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        return exc


def execute_in_transaction(
    db: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]
) -> list[int]:
    with immediate_transaction(db):
        return [db.execute(sql, params).rowcount for sql, params in statements]


class _Taken(Exception):
    """Some ids of a batch were stored already: its quick insert is rolled back (never raised out)."""


def insert_rows_once(db: sqlite3.Connection, rows: Sequence[Row], resolve: Resolve | None) -> InsertResult:
    """`Backend.insert_rows` on the writer connection. BEGIN IMMEDIATE holds the database's write
    lock to the end, so what a transaction reads no other writer can change before it commits.

    The usual batch (every id new) costs what a plain insert does: one executemany, whose row
    count says whether every row went in. Only when some did not (an id another process wrote
    first, or one already stored) is that transaction rolled back, and a second one reads the
    stored rows and inserts the absent ones. sqlite3's executemany cannot return rows, RETURNING
    row by row would cost an execute per row on every batch, and a savepoint to undo just the
    insert costs more than the rare second transaction: SQLite copies each page that existed when
    the savepoint opened to a sub-journal before changing it (measured: 20,000 rows in 1,000-row
    batches, 8 interleaved runs on a busy machine, median 1.64 s with the savepoint against
    1.49 s without)."""
    try:
        with immediate_transaction(db):
            if db.executemany(sqlrows.INSERT_IF_ABSENT, rows).rowcount != len(rows):
                raise _Taken
        return InsertResult(frozenset(row[0] for row in rows))
    except _Taken:
        pass
    ids = [row[0] for row in rows]
    stored: dict[str, Row] = {}
    with immediate_transaction(db):
        for start in range(0, len(ids), sqlrows.IDS_PER_QUERY):
            chunk = ids[start : start + sqlrows.IDS_PER_QUERY]
            for found in db.execute(sqlrows.select_by_ids(len(chunk)), chunk):
                stored[found[0]] = tuple(found)
        absent = [row for row in rows if row[0] not in stored]
        db.executemany(sqlrows.INSERT_IF_ABSENT, absent)  # the lock is ours: each of them goes in
        over = list(resolve(stored)) if resolve is not None and stored else []
        if over:
            db.executemany(sqlrows.UPSERT, over)
    return InsertResult(frozenset(row[0] for row in absent), stored, frozenset(row[0] for row in over))


def translate_error(exc: sqlite3.Error, where: str, *, writing: bool = False) -> CkptdbError:
    """Turn the driver's error into one line that says what to do.

    `writing`: the error came from a write on the writer connection. An I/O error there (SQLITE_IOERR,
    any extended code: a failed fsync of the WAL at FULL, a failed write) leaves its outcome
    unknown: the frames may be in the WAL with their commit mark, and the next open replays them
    (a save whose fdatasync failed with EIO was there after a restart in 5 of 5 trials).
    """
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if writing and code is not None and code & 0xFF == sqlite3.SQLITE_IOERR:
        return OutcomeUnknownError(
            f"{where}: I/O error while writing ({text}): this write may or may not be on disk: load what "
            "it saved (or deleted) to find out before retrying, and check the disk (`ckptdb db check`)"
        )
    if "not a database" in text or "malformed" in text:
        return StoreError(
            f"{where} is not a usable SQLite database ({text}): check the path, or restore a backup"
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(f"{where} is read-only ({text}): check the file's and its directory's permissions")
    if "full" in text:
        return StoreError(f"{where}: disk or database full ({text}); nothing of this write was saved")
    if "unable to open" in text and _out_of_descriptors():
        return UnavailableError(f"cannot open {where}: too many open files ({text}): {RESOURCES}")
    if "unable to open" in text:
        return StoreError(f"cannot open {where} ({text}): check that the directory exists and is writable")
    if "disk I/O error" in text:
        return StoreError(
            f"{where}: disk I/O error ({text}): check the disk, and that this is a regular file"
        )
    if "locked" in text or "busy" in text:
        return StoreError(f"{where} stayed locked by another writer past the busy timeout ({text})")
    return StoreError(f"{where}: {text}")


TEXT_AFFINITY = (str, bytes)  # a row's text values: a huge JSON text comes as bytes (rows.JSON_PARAM)


def is_full(exc: BaseException | None) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None and isinstance(exc, StoreError):  # already translated
        return "disk or database full" in str(exc)
    return code is not None and code & 0xFF == sqlite3.SQLITE_FULL


def is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included: another connection has the lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.OperationalError) or code is None:
        return False
    return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


async def open_connection(uri: str) -> aiosqlite.Connection:
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


def _out_of_descriptors() -> bool:
    """Whether "unable to open database file" was the process's file-descriptor limit, not the
    path (SQLite reports both the same way): can this process open the three files a WAL
    database needs (the file, its -wal and -shm) right now? Asked before the failed open's other
    connections are closed, so the answer is about the state the open met."""
    opened: list[int] = []
    try:
        for _ in range(3):
            opened.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    finally:
        for fd in opened:
            os.close(fd)
    return False


class TidyConnection(sqlite3.Connection):
    """A connection that runs `after_close` once it is closed (the migration engine's read-only
    connections tidy up as the store's reader does: see `SqliteBackend._remove_wal_files`)."""

    after_close: Callable[[], None] | None = None

    def close(self) -> None:
        super().close()
        after, self.after_close = self.after_close, None
        if after is not None:
            after()


VACUUM_CHECKPOINT_BUSY_MS = 200
"""How long each try of the vacuum's TRUNCATE checkpoint waits for readers. It holds the write lock
while it waits: with the store's busy timeout (30 s) a reader's open transaction kept every other
writer out for 30 s, and their saves failed with "database is locked"."""
VACUUM_CHECKPOINT_TRIES = 5
VACUUM_CHECKPOINT_PAUSE = 0.2
"""Seconds between two tries, with the lock released so other writers go on."""


def vacuum_database(db: sqlite3.Connection, busy_timeout_ms: int) -> bool:
    """VACUUM, then give the WAL back; False when a reader kept it from being truncated."""
    db.execute("VACUUM")
    return truncate_wal(db, busy_timeout_ms)


def truncate_wal(db: sqlite3.Connection, busy_timeout_ms: int, tries: int = VACUUM_CHECKPOINT_TRIES) -> bool:
    """`PRAGMA wal_checkpoint(TRUNCATE)`: copy the whole WAL into the database and cut the file
    to 0 bytes; True when that happened. It needs every reader to have moved past the WAL's end:
    its result row (busy, log, checkpointed) says busy=1 when one had not, which a caller must
    not take for success. Short waits with the lock released in between, then a PASSIVE
    checkpoint copies what the readers allow."""
    db.execute(f"PRAGMA busy_timeout = {VACUUM_CHECKPOINT_BUSY_MS}")
    try:
        for attempt in range(tries):
            if attempt:
                time.sleep(VACUUM_CHECKPOINT_PAUSE)
            busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return False
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")


BULK_CACHE_KIB = 65_536


def with_big_cache(db: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
    size = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        return execute_in_transaction(db, statements)
    finally:
        db.execute(f"PRAGMA cache_size = {int(size)}")


# -- read-only SQL for people (`ckptdb sql`) ----------------------------------------------------
