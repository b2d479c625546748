"""SQLite: WAL, a busy timeout, BEGIN IMMEDIATE for write transactions, group commit.

Three connections. The writer connection belongs to `WriterThread`: every write is one job on its
thread, in order, and saves that queue up while a transaction runs are committed together in the
next one. At synchronous=NORMAL a commit only appends to the WAL (no fsync), and handing it to a
thread costs more than the commit itself (two thread wake-ups, 140-170 us on a VM), so the saves
gathered in one event-loop turn commit right there on the loop's thread instead, when that cannot
wait: the writer thread is idle and no other connection holds the write lock (tried without the
busy timeout; if locked, the thread takes them and waits). The reader (aiosqlite) serves reads, so
they never wait behind writes. The checkpointer (`Checkpointer`, a thread and connection of its
own) copies the WAL back into the database file off the commit path, fsyncs the WAL at most
`sync_interval` after a commit (the power-loss bound at NORMAL), and notices a reader that keeps
checkpoints from finishing; the writer's own auto-checkpoint stays on, at a higher mark, as the
bound on the WAL's length.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import json
import logging
import os
import queue
import re
import sqlite3
import struct
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from contextlib import aclosing, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

import aiosqlite

from ckptdb.errors import CkptdbError, OutcomeUnknownError, StoreError, UnavailableError
from ckptdb.sql import rows as sqlrows
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
from ckptdb.state_filter import PathStep, StateFilter

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SYNCHRONOUS = ("NORMAL", "FULL")

_log = logging.getLogger("ckptdb.sqlite")

SYNC_INTERVAL = 1.0
"""Default `sync_interval` (seconds): at synchronous=NORMAL, every acknowledged save is fsynced
within this long (plus one fsync), as PostgreSQL's `synchronous_commit = off` bounds its loss by
`wal_writer_delay`."""

T = TypeVar("T")

_RESOURCES = "raise the open-file limit (ulimit -n) or close other programs, then retry"

CHECKPOINT_PAGES = 1000
"""About this many WAL pages written (estimated from the rows) wake the checkpointer thread, which runs
`PRAGMA wal_checkpoint(PASSIVE)` on its own connection while the writer keeps committing (SQLite's
default auto-checkpoint mark is the same 1,000 pages, but there it runs inside a commit)."""
WAL_LIMIT_PAGES = 4 * CHECKPOINT_PAGES
"""The bound on the WAL. A checkpoint that runs beside the writer cannot finish while new frames
keep arriving, and SQLite starts the WAL over from its beginning only once every frame is back in
the database; so after about this many pages the writer thread finishes the checkpoint itself,
between two transactions (short: the checkpointer has already copied most frames)."""
WAL_BACKSTOP_PAGES = 4 * WAL_LIMIT_PAGES
"""The writer connection's own `wal_autocheckpoint`, in case the estimate above falls far short (a
huge prune transaction) or the checkpointer cannot open its connection."""
SQLITE_MAX_LENGTH = 1_000_000_000
"""SQLite's default SQLITE_LIMIT_LENGTH: the longest value a row may hold (a store opened with
`max_value_bytes` lowers it on its connections, never raises it)."""
ESTIMATED_PAGES_PER_ROW = 6
"""Pages a saved row dirties besides its own text: the table leaf and five index leaves (the
primary key, two time indexes, two save-order indexes), fewer when rows share a transaction (an
overestimate only makes checkpoints a little more frequent)."""
WAL_SIZE_LIMIT = WAL_LIMIT_PAGES * 4096
"""`PRAGMA journal_size_limit` of the writer and the checkpointer (16 MiB): a WAL that a reader made
grow (a `sqlite3` shell holding `BEGIN; SELECT` for 60 s took it to 3.45 GB, and it stayed at 3.4 GB
after the reader ended) is cut back to this when it starts over; and once a checkpoint finishes
beside an idle writer, a TRUNCATE checkpoint gives all of it back."""
STARVED_RETRY_SECONDS = 1.0
"""While a reader keeps checkpoints from finishing, the checkpointer tries again this often, so the
WAL shrinks soon after the reader ends even if nothing is written any more."""
STARVED_SECOND_LOOK_SECONDS = 0.01
"""How long the writer waits before it looks again at a checkpoint of its own that came short (once
per WAL_LIMIT_PAGES of writes, and only when a checkpoint could not finish)."""
DISK_HEADROOM = 1 << 20
"""Bytes of free disk the writer keeps, beyond what the starved checkpoint will need (see
`WriterThread._room_for`)."""
LOOP_COMMIT_ROWS = 32
"""Saves gathered in one event-loop turn commit on the loop's thread up to this many rows (about a
millisecond of SQLite work); bigger batches, an import's say, go to the writer thread."""
MAX_GROUP_ROWS = 1000
"""At most this many rows of queued saves share one transaction."""


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


def _execute_in_transaction(
    db: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]
) -> list[int]:
    with _immediate_transaction(db):
        return [db.execute(sql, params).rowcount for sql, params in statements]


class _Taken(Exception):
    """Some ids of a batch were stored already: its quick insert is rolled back (never raised out)."""


def _insert_rows(db: sqlite3.Connection, rows: Sequence[Row], resolve: Resolve | None) -> InsertResult:
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
        with _immediate_transaction(db):
            if db.executemany(sqlrows.INSERT_IF_ABSENT, rows).rowcount != len(rows):
                raise _Taken
        return InsertResult(frozenset(row[0] for row in rows))
    except _Taken:
        pass
    ids = [row[0] for row in rows]
    stored: dict[str, Row] = {}
    with _immediate_transaction(db):
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


def _wal_backlog(shm: Path) -> int | None:
    """WAL frames not yet copied into the database file, from the wal-index (the `-shm` file):
    `mxFrame` of its header minus `nBackfill` of its checkpoint info, both in native byte order
    (SQLite's wal.c: two 48-byte copies of WalIndexHdr, then WalCkptInfo). None when the file is
    missing, short, or caught mid-update (the two header copies differ)."""
    try:
        with open(shm, "rb") as f:
            head = f.read(100)
    except OSError:
        return None
    if len(head) < 100 or head[:48] != head[48:96]:
        return None
    max_frame: int = struct.unpack_from("=I", head, 16)[0]
    backfilled: int = struct.unpack_from("=I", head, 96)[0]
    return max(max_frame - backfilled, 0)


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
        return UnavailableError(f"cannot open {where}: too many open files ({text}): {_RESOURCES}")
    if "unable to open" in text:
        return StoreError(f"cannot open {where} ({text}): check that the directory exists and is writable")
    if "disk I/O error" in text:
        return StoreError(
            f"{where}: disk I/O error ({text}): check the disk, and that this is a regular file"
        )
    if "locked" in text or "busy" in text:
        return StoreError(f"{where} stayed locked by another writer past the busy timeout ({text})")
    return StoreError(f"{where}: {text}")


_PLAIN_KEY = re.compile(r'[^"\\\x00-\x1f]*')
"""Keys that JSON text holds as they are, without an escape. SQLite matches a path's key against
the key's text in the document: up to 3.44 the escaped text, as stored, later the decoded one, so
only keys that need no escape mean the same in every version; a path with any other key (a quote,
a backslash, a control character or U+0000) is tested in Python (`state_match`)."""
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
STATE_MATCH = "ckptdb_state_match"
"""The SQL function (on the reader connection) that tests one condition on one state in Python."""


def json_path(path: Sequence[PathStep]) -> str:
    """SQLite's path text for a path of plain keys (`_PLAIN_KEY`) and indexes: `$."values"."a.b"[0]`."""
    out = "$"
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif not _PLAIN_KEY.fullmatch(step):
            raise CkptdbError(f"key {step!r} cannot be spelled in an SQLite JSON path")
        else:
            out += f'."{step}"'
    return out


@functools.lru_cache(maxsize=256)
def _condition_from_text(text: str) -> StateFilter:
    path, op, value = json.loads(text)
    return StateFilter(tuple(path), op, value)


def condition_text(condition: StateFilter) -> str:
    """A condition as the text `state_match` reads (bound as a parameter, never pasted into SQL)."""
    return json.dumps([list(condition.path), condition.op, condition.value], ensure_ascii=False)


def state_match(state_text: object, condition: str) -> int:
    """1 when the stored state passes the condition, by the very test the memory and file stores
    run. For what SQLite's json functions cannot answer exactly: a string holding U+0000 (they cut
    it there), an integer past 64 bits (they read it as a float), a key they cannot spell. A state
    that is not JSON matches nothing. About 13 us a row (257 ms for 20,000 generated checkpoints,
    against 81 ms in SQL), so only the rows that need it come here."""
    if not isinstance(state_text, str):
        return 0
    try:
        state = json.loads(state_text)
    except (ValueError, RecursionError):
        return 0
    return int(_condition_from_text(condition).matches(state))


def _nearest_float(value: int) -> float:
    """The float nearest an integer (infinity past the float range, which every float is below)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


class _Rows:
    """Queued saves: one statement over parameter rows, all or nothing."""

    __slots__ = ("future", "rows", "sql")

    def __init__(self, sql: str, rows: Sequence[Row], future: asyncio.Future[None]) -> None:
        self.sql = sql
        self.rows = rows
        self.future = future


class _Call:
    """Any other work on the writer connection: `work(db)` runs alone, in queue order. `rows`, when
    given, are the rows it writes, counted for the WAL checkpoints like queued saves."""

    __slots__ = ("future", "rows", "work")

    def __init__(
        self,
        work: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any],
        rows: Sequence[Row] = (),
    ) -> None:
        self.work = work
        self.future = future
        self.rows = rows


def _settle_rows(batch: list[_Rows], errors: list[BaseException | None] | None) -> None:
    """On the event loop: every request of a committed (or failed) transaction learns its outcome."""
    if errors is None:
        for request in batch:
            if not request.future.done():  # a caller cancelled meanwhile: nobody is waiting
                request.future.set_result(None)
        return
    for request, error in zip(batch, errors, strict=True):
        if request.future.done():
            continue
        if error is None:
            request.future.set_result(None)
        else:
            request.future.set_exception(error)


def _settle_call(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _deliver(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    with suppress(RuntimeError):  # the loop is closed: nobody is left to tell
        loop.call_soon_threadsafe(callback, *args)


class Checkpointer:
    """A thread with its own connection that runs `PRAGMA wal_checkpoint(PASSIVE)` when poked, and
    that fsyncs the WAL at most `sync_interval` seconds after a commit.

    PASSIVE never waits for readers or the writer and never blocks them; SQLite makes a checkpoint
    safe against a crash at any point (it syncs the WAL before copying and the database after, by
    this connection's `synchronous`, set to the writer's). A failure here only leaves the work to
    the writer's own auto-checkpoint, so errors are kept (`last_error`) and not raised.

    At synchronous=NORMAL a commit is not fsynced, and checkpoints come by WAL pages, never by
    time: a store saving a few checkpoints a second went tens of seconds without one, and a
    simulated power cut lost 78 acknowledged saves per crash point on average. So the first commit
    after a sync (`note_commit`) starts a timer, and when it runs out this thread fsyncs the -wal
    file: every save acknowledged before that fsync starts is on disk when it ends, so the loss
    window of a power cut is `sync_interval` plus one fsync. An fdatasync of the WAL file costs
    what a FULL commit's does (about 0.4 ms on the development disk), once per interval at most,
    where a PASSIVE checkpoint would also copy pages and fsync the database file; and a checkpoint
    starved by a reader fsyncs nothing at all. `sync_interval=None` turns the timer off.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        wal_path: str | None = None,
        sync_interval: float | None = None,
    ) -> None:
        self._connect = connect
        self._wal_path = wal_path
        self._sync_interval = sync_interval if wal_path is not None and sync_interval else None
        self._sync_due: float | None = None  # when the WAL must be fsynced; None: nothing unsynced
        self._retry_due: float | None = None  # when to try a starved checkpoint again
        self._poked = False
        self.starved_since: float | None = None
        """time.time() of the first checkpoint since the last complete one that a reader kept from
        finishing (it needs WAL frames newer than that reader's snapshot), None when not starved."""
        self._warned_bytes = 0
        self._short_of: int | None = None  # frames a checkpoint last stopped at, short of the log
        self.commits = 0
        """Commits this process made (`note_commit`): a checkpoint that ran while it changed raced
        our own writer, and its shortfall says nothing about readers."""
        self._wake = threading.Event()
        self.lock = threading.Lock()
        """Held while a checkpoint runs here: the writer takes it to finish one without racing."""
        self._stopping = False
        self.runs = 0
        self.syncs = 0
        """fsyncs of the WAL made by the timer (for tests and `bench.py core`)."""
        self.last_result: tuple[int, int, int] | None = None
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ckptdb-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._poked = True
        self._wake.set()

    def note_commit(self) -> None:
        """After a commit (on whichever thread made it): start the sync timer unless it runs."""
        self.commits += 1
        if self._sync_interval is not None and self._sync_due is None:
            self._sync_due = time.monotonic() + self._sync_interval
            self._wake.set()

    def record(self, row: Sequence[Any], *, settled: bool = True) -> None:
        """The result row (busy, log, checkpointed) of a PASSIVE checkpoint run here or by the writer.

        checkpointed < log, from a checkpoint that no commit of ours raced (`settled`), twice at
        the same frame: a reader still needs the frames after its snapshot, so the WAL cannot
        start over and grows with every commit. (Beside 16 saving tasks, 1 to 2 checkpoints in 60
        fell a few dozen frames short once, for a commit that had just ended.) Warn (when first
        seen, then once per doubling past WAL_SIZE_LIMIT), and try again every
        STARVED_RETRY_SECONDS. Complete, with the file grown past the limit: give the space back
        with a TRUNCATE checkpoint when the writer is idle.
        """
        result = (int(row[0]), int(row[1]), int(row[2]))
        self.last_result = result
        _busy, log, done = result
        if log > done >= 0:
            if not settled:
                return
            if self.starved_since is None and self._short_of != done:
                # Seen once: a commit that had just ended may still hold its read mark. A reader
                # pins the same frame again on the next try; a writer's race moves on.
                self._short_of = done
                self._retry_soon()
                return
            if self.starved_since is None:
                self.starved_since = time.time()
            size = self.wal_bytes()
            if not self._warned_bytes or size >= max(WAL_SIZE_LIMIT, 2 * self._warned_bytes):
                self._warned_bytes = max(size, 1)
                _log.warning(
                    "checkpoints of %s starved by a reader since %s: the WAL is %.1f MiB and grows until "
                    "that reader's transaction ends (a long query, an idle `BEGIN` in a sqlite3 shell)",
                    self._wal_path,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.starved_since)),
                    size / 2**20,
                )
            self._retry_soon()
            return
        if self.starved_since is not None:
            _log.info("checkpoints of %s finish again (the reader ended)", self._wal_path)
        self.starved_since = None
        self._short_of = None
        self._warned_bytes = 0
        if threading.current_thread() is not self._thread and self.wal_bytes() > WAL_SIZE_LIMIT:
            self._retry_soon(0.0)  # the checkpoint thread truncates it (it does so at once itself)

    def _retry_soon(self, delay: float = STARVED_RETRY_SECONDS) -> None:
        if self._retry_due is None:
            self._retry_due = time.monotonic() + delay
            self._wake.set()

    def wal_bytes(self) -> int:
        if self._wal_path is None:
            return 0
        try:
            return os.path.getsize(self._wal_path)
        except OSError:
            return 0

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            while True:
                dues = [due for due in (self._sync_due, self._retry_due) if due is not None]
                self._wake.wait(max(0.0, min(dues) - time.monotonic()) if dues else None)
                self._wake.clear()
                if self._stopping:
                    if self._sync_due is not None:  # another process may keep the WAL after we close
                        self._sync_due = None
                        self._sync_wal()
                    return
                due = self._sync_due
                if due is not None and time.monotonic() >= due:
                    # Cleared before the fsync starts: a commit made meanwhile starts a new timer.
                    self._sync_due = None
                    self._sync_wal()
                due = self._retry_due
                retry = due is not None and time.monotonic() >= due
                if retry:
                    self._retry_due = None
                if not (self._poked or retry):
                    continue
                self._poked = False
                try:
                    if db is None:
                        db = self._connect()
                    with self.lock:
                        commits = self.commits
                        row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        self.record(row, settled=self.commits == commits)
                        if self.starved_since is None and self.wal_bytes() > WAL_SIZE_LIMIT:
                            self._truncate(db)
                except Exception as exc:  # the writer's auto-checkpoint remains
                    self.last_error = exc
                self.runs += 1
        finally:
            if db is not None:
                with suppress(sqlite3.Error):
                    db.close()

    def _truncate(self, db: sqlite3.Connection) -> None:
        """TRUNCATE takes the write lock: with no busy timeout it only runs when no one writes, and
        a write under way makes it give up at once (tried again later; meanwhile the next WAL
        restart cuts the file to journal_size_limit)."""
        timeout = db.execute("PRAGMA busy_timeout").fetchone()[0]
        db.execute("PRAGMA busy_timeout = 0")
        try:
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            busy = 1
        finally:
            db.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        if busy:
            self._retry_soon()

    def _sync_wal(self) -> None:
        """fdatasync the -wal file through a descriptor of our own (Linux flushes the file, not the
        descriptor). Opened each time: the last connection to close deletes the WAL, and a later
        one makes a new file. No file: nothing is unsynced (that close checkpointed and synced)."""
        assert self._wal_path is not None
        try:
            fd = os.open(self._wal_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._sync_failed(exc)
            return
        try:
            os.fdatasync(fd)
            self.syncs += 1
        except OSError as exc:
            self._sync_failed(exc)
        finally:
            os.close(fd)

    def _sync_failed(self, exc: OSError) -> None:
        self.last_error = exc
        _log.error(
            "could not fsync %s (%s): saves acknowledged in the last %s s may be lost on a power cut; "
            "check the disk",
            self._wal_path,
            exc,
            self._sync_interval,
        )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ask the thread to end and wait for it (a checkpoint under way finishes first)."""
        self._stopping = True
        self._wake.set()
        self._thread.join()


class WriterThread:
    """The writer connection, and the one thread that uses it for everything that may wait.

    Jobs run in the order they were queued. Queued saves (`submit_rows`) that are next to each other
    in the queue are committed in one transaction: while a transaction runs, new saves queue up, and
    the next transaction takes all of them, so concurrent saves share commits without any waiting
    on purpose. Each save's future is settled only after the transaction holding its rows has
    committed; if a shared transaction fails, each request is retried alone, so one bad request
    cannot fail another. Results go back to the event loop with one call per transaction.

    With `commit_on_loop`, saves take a shorter way when nothing makes them wait: those submitted in
    one event-loop turn are gathered and committed together at the end of the turn, on the loop's
    thread (`_flush`), with the busy timeout off. If the thread has a job queued or running (jobs
    keep the order they were asked in), the rows are too many, or another connection holds the
    write lock, they join the thread's queue instead. A WAL checkpoint that the writer must finish
    itself always runs on the thread.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        where: str,
        checkpointer: Checkpointer | None = None,
        *,
        commit_on_loop: bool = False,
        busy_timeout_ms: int = 30_000,
    ) -> None:
        self._conn: sqlite3.Connection = db
        self._where = where
        self._checkpointer = checkpointer
        self._commit_on_loop = commit_on_loop
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._conn_lock = threading.Lock()  # held by whichever thread runs SQL on the connection
        self._gathered: list[_Rows] = []  # saves of this event-loop turn, for _flush
        self._gathered_rows = 0
        self._gather_loop: asyncio.AbstractEventLoop | None = None  # the loop that will run _flush
        self._jobs: queue.SimpleQueue[_Rows | _Call | None] = queue.SimpleQueue()
        self._state_lock = threading.Lock()  # `_closed` and the queue change together
        self._current: Sequence[_Rows | _Call] = ()  # the jobs being run: failed too if the thread dies
        self._failure: StoreError | None = None  # why the thread stopped, for requests that come later
        self.last_error: BaseException | None = None
        """An error of the checkpoint bookkeeping after a commit, or what stopped the thread (kept,
        not raised: the callers waiting on it get a StoreError)."""
        self._room_checked = 0.0  # time.monotonic() of the last checkpoint tried by _room_for
        self._pages = 0  # estimated WAL pages since the checkpointer was last woken
        self._wal_pages = 0  # since the writer last finished a checkpoint itself
        self.finished_checkpoints = 0
        self.transactions = 0
        """Write transactions of saves committed, on the thread or the loop (for tests: group commit)."""
        self.loop_transactions = 0
        """Of those, committed on the event loop's thread."""
        self.rows = 0
        self._unfinished = 0  # jobs queued or running on the thread; saves commit on the loop only at 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ckptdb-sqlite-writer", daemon=True)
        self._thread.start()

    # -- on the event loop -----------------------------------------------------------------------

    def submit_rows(self, sql: str, rows: Sequence[Row]) -> asyncio.Future[None]:
        """Queue rows for the next group commit; the future is done once they are committed."""
        if self._closed:
            raise self._closed_error()
        loop = asyncio.get_running_loop()
        request = _Rows(sql, rows, loop.create_future())
        if self._commit_on_loop and len(rows) <= LOOP_COMMIT_ROWS:
            with self._state_lock:  # a store may be shared by loops on other threads
                if not self._closed and self._gather_loop in (None, loop):
                    if self._gather_loop is None:
                        self._gather_loop = loop
                        loop.call_soon(self._flush, loop)
                    self._gathered.append(request)
                    self._gathered_rows += len(rows)
                    return request.future
        self._hand_over([request])
        return request.future

    def _hand_over(self, requests: Sequence[_Rows | _Call]) -> None:
        """Queue requests for the thread, in order; fail them if it has stopped."""
        with self._state_lock:
            if not self._closed:
                self._put(requests)
                return
        failure = self._closed_error()
        for request in requests:
            if not request.future.done():
                request.future.set_exception(failure)

    def _closed_error(self) -> StoreError:
        """Why nothing more can be written: the thread stopped (and how), or the store was closed."""
        return self._failure or StoreError("the store is closed")

    def _put(self, requests: Sequence[_Rows | _Call]) -> None:
        """With `_state_lock` held. Saves gathered in this turn go first: jobs keep the order in
        which they were asked for (a clear() between saves runs between them)."""
        gathered = self._take_gathered()
        self._unfinished += len(gathered) + len(requests)
        for request in (*gathered, *requests):
            self._jobs.put(request)

    def _take_gathered(self) -> list[_Rows]:
        """With `_state_lock` held."""
        batch, self._gathered, self._gathered_rows, self._gather_loop = self._gathered, [], 0, None
        return batch

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """At the end of the event-loop turn that gathered saves: commit them here if nothing makes
        that wait, else hand them to the thread."""
        with self._state_lock:
            if self._gather_loop is not loop:  # a job took ours; what gathers now is another's
                return
            rows = self._gathered_rows
            batch = self._take_gathered()
        starved = self._checkpointer is not None and self._checkpointer.starved_since is not None
        if (
            rows > LOOP_COMMIT_ROWS
            or self._unfinished
            or starved  # the thread checks for room on the disk first
            or not self._conn_lock.acquire(blocking=False)
        ):
            self._hand_over(batch)  # the thread has work: they go after it
            return
        try:
            locked = batch if self._closed else self._commit_here(batch)
        except Exception as exc:  # a bug, or a connection gone bad: no caller may be left waiting
            locked = []
            error = self._translate(exc)
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(error)
        finally:
            self._conn_lock.release()
        if locked:
            self._hand_over(locked)

    def _commit_here(self, batch: list[_Rows]) -> list[_Rows]:
        """Commit on the calling thread with the busy timeout off, and settle each request; returns
        the requests that found the write lock taken (nothing of them was written)."""
        db = self._conn
        db.execute("PRAGMA busy_timeout = 0")
        try:
            errors = self._commit(batch, translate=False)
        finally:
            db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        if errors is not None and all(error is not None and _is_busy(error) for error in errors):
            return batch
        if errors is not None and self._checkpointer is not None and any(map(_is_full, errors)):
            self._checkpointer.poke()  # a checkpoint that can finish now makes room again
        self.transactions += 1
        self.loop_transactions += 1
        if self._checkpointer is not None:  # before any caller hears of it: the bound counts from here
            self._checkpointer.note_commit()
        locked: list[_Rows] = []
        for index, request in enumerate(batch):
            error = None if errors is None else errors[index]
            if error is not None and _is_busy(error):
                locked.append(request)
                continue
            self.rows += len(request.rows)
            if request.future.done():  # the caller was cancelled: nobody is waiting
                continue
            if error is None:
                request.future.set_result(None)
            else:
                request.future.set_exception(self._translate(error))
        if self._checkpointer is not None:
            try:
                finish = self._count_pages([request.rows for request in batch if request not in locked])
            except Exception as exc:  # bookkeeping only: SQLite's own auto-checkpoint remains
                self.last_error = exc
            else:
                if finish:  # never here: it may wait for the disk
                    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._hand_over([_Call(self._finish_checkpoint, future)])
        return locked

    async def call(self, work: Callable[[sqlite3.Connection], T], rows: Sequence[Row] = ()) -> T:
        """Run `work(db)` on the writer thread, after everything queued before it; `rows` are the
        rows it writes (for the WAL checkpoints' estimate), if any."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._state_lock:
            if self._closed:
                raise self._closed_error()
            self._put([_Call(work, future, rows)])
        return await future

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self.call(lambda db: db.execute(sql, params).fetchall())

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    async def close(self) -> None:
        """Finish every queued job, then close the connection and end the thread."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._state_lock:
            if self._closed:  # closed before, or the thread stopped (and failed what it held)
                stopped = not self._thread.is_alive()
                if stopped:
                    with suppress(sqlite3.Error):
                        self._conn.close()
                return
            self._put([_Call(lambda db: db.close(), future)])
            self._closed = True
            self._jobs.put(None)
        try:
            await future
        finally:
            await asyncio.to_thread(self._thread.join)

    # -- on the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # a bug in here must not leave saves waiting forever
            self.last_error = exc  # every waiting caller gets it as a StoreError
            self._stopped(exc)

    def _stopped(self, exc: BaseException) -> None:
        """The thread is dying: refuse new jobs and fail every job it will never finish."""
        error = StoreError(
            f"the SQLite writer thread stopped ({type(exc).__name__}: {exc}); the saves in flight may "
            "or may not be committed: reopen the store and check"
        )
        with self._state_lock:
            self._failure = error
            self._closed = True
            pending: list[_Rows | _Call] = list(self._current)
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    pending.append(job)
        for job in pending:
            if type(job) is _Call:
                _deliver(job.future.get_loop(), _settle_call, job.future, None, error)
            else:
                assert type(job) is _Rows
                _deliver(job.future.get_loop(), _settle_rows, [job], [error])

    def _serve(self) -> None:
        get, get_nowait = self._jobs.get, self._jobs.get_nowait
        carry: _Rows | _Call | None = None
        while True:
            job = carry if carry is not None else get()
            carry = None
            if job is None:
                return
            if type(job) is _Call:
                self._current = [job]
                try:
                    with self._conn_lock:
                        result, error = job.work(self._conn), None
                except BaseException as exc:  # handed to the caller
                    result, error = None, self._translate(exc)
                finish = False
                if self._checkpointer is not None:  # a delete, a prune, a batch: it may have written
                    self._checkpointer.note_commit()
                if job.rows and error is None and self._checkpointer is not None:
                    try:
                        finish = self._count_pages([job.rows])
                    except Exception as exc:  # bookkeeping only: SQLite's own auto-checkpoint remains
                        self.last_error = exc
                self._finished(1)  # before the answer: the caller's next save may go on the loop
                _deliver(job.future.get_loop(), _settle_call, job.future, result, error)
                self._current = ()
                if finish:
                    with self._conn_lock:
                        self._finish_checkpoint(self._conn)
                continue
            assert type(job) is _Rows
            batch = [job]
            count = len(job.rows)
            while count < MAX_GROUP_ROWS:
                try:
                    following = get_nowait()
                except queue.Empty:
                    break
                if type(following) is not _Rows:
                    carry = following
                    break
                batch.append(following)
                count += len(following.rows)
            self._current = batch
            with self._conn_lock:
                refusal = self._room_for(batch)
                if refusal is None:
                    errors = self._commit(batch)
                    if errors is not None and self._checkpointer is not None and any(map(_is_full, errors)):
                        self._checkpointer.poke()  # a checkpoint that can finish now makes room again
                else:
                    errors = [refusal] * len(batch)
                self.transactions += 1
                self.rows += count
                finish = False
                if self._checkpointer is not None:
                    self._checkpointer.note_commit()
                    try:
                        finish = self._count_pages([request.rows for request in batch])
                    except Exception as exc:  # bookkeeping only: SQLite's own auto-checkpoint remains
                        self.last_error = exc
            self._finished(len(batch))  # before the answer: the callers' next saves may go on the loop
            self._deliver_rows(batch, errors)
            self._current = ()
            if finish:  # the connection's lock keeps saves from the loop out meanwhile
                with self._conn_lock:
                    self._finish_checkpoint(self._conn)

    def _room_for(self, batch: list[_Rows]) -> StoreError | None:
        """While a reader starves checkpoints, refuse a write that would leave too little disk for
        the checkpoint that must run once the reader ends; None: go ahead.

        That checkpoint copies the WAL's pages into the database file, which grows to the size of
        the newest snapshot. With the disk full of WAL, it cannot: on a 24 MiB file system the
        store then failed every write for good, reader gone or not. So the writer keeps that growth
        plus DISK_HEADROOM free, and first tries a checkpoint itself (the reader may have ended)."""
        checkpointer = self._checkpointer
        if checkpointer is None or checkpointer.starved_since is None:
            return None
        db = self._conn
        now = time.monotonic()
        if now - self._room_checked >= 0.2:
            self._room_checked = now
            with suppress(sqlite3.Error), checkpointer.lock:
                checkpointer.record(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
            if checkpointer.starved_since is None:
                return None
        try:
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            growth = max(0, pages * page_size - os.path.getsize(self._where))
            disk = os.statvfs(os.path.dirname(os.path.abspath(self._where)))
        except (sqlite3.Error, OSError):
            return None  # cannot tell: let SQLite try
        free = disk.f_bavail * disk.f_frsize
        rows = sum(len(request.rows) for request in batch)
        size = sum(
            len(value) for request in batch for row in request.rows for value in row if type(value) in _TEXT
        )
        wanted = growth + DISK_HEADROOM + (rows * ESTIMATED_PAGES_PER_ROW + 1) * page_size + 2 * size
        if free >= wanted:
            return None
        since = time.strftime("%H:%M:%S", time.localtime(checkpointer.starved_since))
        return StoreError(
            f"{self._where}: not written: a reader's open transaction has kept checkpoints from finishing "
            f"since {since} (WAL {checkpointer.wal_bytes() / 2**20:.1f} MiB) and {free / 2**20:.1f} MiB of "
            "disk is left, which the checkpoint needs once that reader ends; end the long read (a query, "
            "an idle `BEGIN` in a sqlite3 shell) or free disk space, then save again; nothing of this write "
            "was saved"
        )

    def _finished(self, jobs: int) -> None:
        with self._state_lock:
            self._unfinished -= jobs

    def _count_pages(self, committed: Sequence[Sequence[Row]]) -> bool:
        """Count committed rows' WAL pages: wake the checkpointer now and then, and say when the
        WAL has reached WAL_LIMIT_PAGES and the writer must finish a checkpoint itself."""
        checkpointer = self._checkpointer
        assert checkpointer is not None
        count = size = 0
        for rows in committed:
            count += len(rows)
            for row in rows:
                size += sum(len(value) for value in row if type(value) in _TEXT)
        pages = count * ESTIMATED_PAGES_PER_ROW + size // 4096
        self._pages += pages
        self._wal_pages += pages
        if self._wal_pages >= WAL_LIMIT_PAGES:
            self._pages = self._wal_pages = 0
            return True
        if self._pages >= CHECKPOINT_PAGES:
            self._pages = 0
            checkpointer.poke()
        return False

    def _finish_checkpoint(self, db: sqlite3.Connection) -> None:
        """Nothing is written while this runs, so the checkpoint finishes (unless a reader elsewhere
        still needs old pages, as with any SQLite checkpoint) and the next write starts the WAL
        over. The lock waits for a checkpoint under way beside us. Errors are kept, not raised:
        SQLite's own auto-checkpoint remains."""
        assert self._checkpointer is not None
        try:
            with self._checkpointer.lock:
                row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self._checkpointer.record(row)
                if int(row[1]) > int(row[2]) >= 0 and self._checkpointer.starved_since is None:
                    # Short, with nothing of ours writing: look once more after a moment (a
                    # commit that had just ended lets go of its read mark by then). The checkpoint
                    # thread's own second look can come too late: its tries race our commits, and
                    # beside a reader the WAL took a 24 MiB disk in about a second.
                    time.sleep(STARVED_SECOND_LOOK_SECONDS)
                    self._checkpointer.record(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        except Exception as exc:
            self.last_error = exc
        self.finished_checkpoints += 1

    @staticmethod
    def _deliver_rows(batch: list[_Rows], errors: list[BaseException | None] | None) -> None:
        loop = batch[0].future.get_loop()
        if all(request.future.get_loop() is loop for request in batch):
            _deliver(loop, _settle_rows, batch, errors)
            return
        for index, request in enumerate(batch):  # one store used from several event loops
            error = None if errors is None else errors[index]
            _deliver(request.future.get_loop(), _settle_rows, [request], None if error is None else [error])

    def _translate(self, exc: BaseException) -> BaseException:
        return translate_error(exc, self._where, writing=True) if isinstance(exc, sqlite3.Error) else exc

    def _commit(self, batch: list[_Rows], *, translate: bool = True) -> list[BaseException | None] | None:
        """None when every request committed, else each request's outcome (retried one by one)."""
        db = self._conn
        try:
            if len(batch) == 1 and len(batch[0].rows) == 1:
                # One statement in autocommit mode is its own transaction and takes the write lock
                # when it starts (no read-then-upgrade), so the busy timeout applies.
                db.execute(batch[0].sql, batch[0].rows[0])
            else:
                with _immediate_transaction(db):
                    for request in batch:
                        if len(request.rows) == 1:
                            db.execute(request.sql, request.rows[0])
                        else:
                            db.executemany(request.sql, request.rows)
            return None
        except BaseException as exc:  # not only sqlite3.Error: a row it cannot bind
            if db.in_transaction:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if len(batch) == 1 or _is_busy(exc):  # locked: so would each request be, alone
                return [self._translate(exc) if translate else exc] * len(batch)
        outcomes: list[BaseException | None] = []
        for request in batch:  # isolate: one request's failure must not fail the others
            single = self._commit([request], translate=translate)
            outcomes.append(None if single is None else single[0])
        return outcomes


_TEXT = (str, bytes)  # a row's text values: a huge JSON text comes as bytes (rows.JSON_PARAM)


def _is_full(exc: BaseException | None) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None and isinstance(exc, StoreError):  # already translated
        return "disk or database full" in str(exc)
    return code is not None and code & 0xFF == sqlite3.SQLITE_FULL


def _is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included: another connection has the lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.OperationalError) or code is None:
        return False
    return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


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


class _TidyConnection(sqlite3.Connection):
    """A connection that runs `after_close` once it is closed (the migration engine's read-only
    connections tidy up as the store's reader does: see `SqliteBackend._remove_wal_files`)."""

    after_close: Callable[[], None] | None = None

    def close(self) -> None:
        super().close()
        after, self.after_close = self.after_close, None
        if after is not None:
            after()


class SqliteBackend(Backend):
    OPTIONS = ("synchronous", "busy_timeout_ms", "commit_on_loop", "sync_interval", "max_value_bytes")
    json_bytes = True  # sqlite3 binds bytes without a copy of its own; rows.JSON_PARAM makes them TEXT

    def __init__(
        self,
        target: DatabaseTarget,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 30_000,
        commit_on_loop: bool = True,
        sync_interval: float | None = SYNC_INTERVAL,
        max_value_bytes: int | None = None,
    ) -> None:
        """`commit_on_loop=False` keeps every SQLite write off the event loop's thread, at about
        twice the time per sequential save; at synchronous=FULL (an fsync per commit) it is off.
        `sync_interval` (seconds, at NORMAL): the longest an acknowledged save waits for the fsync
        that makes it survive a power cut (see `Checkpointer`); None or 0 leaves it to checkpoints.
        `max_value_bytes` lowers SQLite's length limit (SQLITE_LIMIT_LENGTH, 1,000,000,000 bytes
        by default, and never raised above it) on ckptdb's connections."""
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
        self._checkpointer: Checkpointer | None = None
        self._tidy_wal = False  # read-only: remove the -wal/-shm that our reading made (see close)

    def _where(self) -> str:
        return str(self.path)

    async def _open(self, *, create: bool) -> aiosqlite.Connection:
        conn = await _connect(sqlite_uri(self.path, mode="rwc" if create else "rw"))
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
            db.execute(f"PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}")
            db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        except BaseException:
            db.close()
            raise
        return db

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
                self._reader = await _connect(self.read_only_uri())
                await self._reader.execute_fetchall(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                await self._reader.create_function(STATE_MATCH, 2, state_match, deterministic=True)
                return
            db = await asyncio.to_thread(self._open_writer, create)
            # What the engine will refuse anyway: a save checks its JSON against it before copying.
            self.max_value_bytes = db.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
            self._checkpointer = Checkpointer(
                self._checkpointer_connection, f"{self.path}-wal", self.sync_interval
            )
            self._writer = WriterThread(
                db,
                self._where(),
                self._checkpointer,
                commit_on_loop=self.commit_on_loop,
                busy_timeout_ms=self.busy_timeout_ms,
            )
            self._reader = await self._open(create=False)
        except sqlite3.Error as exc:
            error = translate_error(exc, self._where())  # before close frees the descriptors
            await self.close()
            raise error from None
        except OSError as exc:  # no thread or file descriptor left (ulimit -n, -u)
            await self.close()
            raise UnavailableError(
                f"cannot open {self._where()}: {exc.strerror or exc}: {_RESOURCES}"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def prepare_writes(self) -> None:
        """WAL, switched on the first time a store opens the file for writing (see `ensure_wal`),
        once its schema is known to be ckptdb's. On the writer connection, which nothing else uses
        yet, under its lock rather than as a job on its thread."""
        writer, _ = self._conns()

        def switch() -> None:
            with writer._conn_lock:
                ensure_wal(writer._conn, self.busy_timeout_ms)

        try:
            await asyncio.to_thread(switch)
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None

    async def close(self) -> None:
        # The checkpointer first: the last connection to close checkpoints and removes the WAL,
        # and that should be the writer or the reader, which know nothing of a checkpoint under way.
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)
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

    def _remove_wal_files(self) -> None:
        """After reading a WAL database that had no `-wal`/`-shm` before: a read-only connection
        creates both and, unable to checkpoint, leaves them behind on close. SQLite deletes them on
        the close of the last connection that may write, so open and close one (it finds the WAL
        empty: nothing is copied into the database file). Another process that opened the file
        meanwhile keeps them: SQLite removes them only when no other connection is left."""
        if not os.path.exists(f"{self.path}-wal"):
            return
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

    def group_writer(self) -> Callable[[str, Sequence[Row]], asyncio.Future[None]] | None:
        if self.readonly:
            return None  # writes reach write_rows, which says the store is read-only
        writer, _ = self._conns()
        return writer.submit_rows

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

    async def write_rows(self, sql: str, rows: Sequence[Row]) -> None:
        writer, _ = self._conns()
        if rows:
            await writer.submit_rows(sql, rows)

    async def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        writer, _ = self._conns()
        # BEGIN IMMEDIATE, the statements, COMMIT (or ROLLBACK) in one trip to the writer thread.
        return await writer.call(lambda db: _execute_in_transaction(db, statements))

    async def insert_rows(self, rows: Sequence[Row], resolve: Resolve | None = None) -> InsertResult:
        writer, _ = self._conns()
        if not rows:
            return InsertResult()
        return await writer.call(lambda db: _insert_rows(db, rows, resolve), rows)

    def state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        """The condition, tested only on rows whose state is valid JSON: SQLite's json functions
        raise "malformed JSON" for the whole statement on one damaged row (a hand edit, a torn
        page), where PostgreSQL's `json` column cannot hold such a row at all. So a damaged row
        matches nothing and the other rows get the answer PostgreSQL gives (CASE, unlike AND,
        is guaranteed not to evaluate its branch). The price: the check parses each state once
        more, 64-88 ms instead of 63-66 ms for one condition over 20,000 generated checkpoints
        (69 MB; best of 15 on the shared 2-core machine)."""
        sql, params = self._valid_state_condition(condition)
        return f"(CASE WHEN json_valid(state_snapshot) THEN {sql} ELSE 0 END)", params

    def _valid_state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        """json_type / json_extract with the path bound; exact where they are, and the rows where
        they are not go to `state_match`, so every answer is the one Python gives:

        - a string condition on a state holding `\\u0000` anywhere (json_extract would cut the
          string at the NUL): in Python;
        - a number: an integer within 64 bits compares exactly with any stored number (SQLite
          compares integers and floats exactly), except -2^63 itself, which an integer below it
          reads as. A float, or an integer beyond 64 bits (bound as the nearest float), cannot be
          compared exactly with an integer beyond 64 bits (read as a float) nor, beyond 64 bits,
          with a float equal to that nearest float: those rows in Python.
        """
        python = f"{STATE_MATCH}(state_snapshot, ?)"
        python_params: list[Any] = [condition_text(condition)]
        if not all(isinstance(step, int) or _PLAIN_KEY.fullmatch(step) for step in condition.path):
            return python, python_params
        path = json_path(condition.path)
        jtype = "json_type(state_snapshot, ?)"
        value = "json_extract(state_snapshot, ?)"
        if condition.op == "exists":
            return f"{jtype} IS NOT NULL", [path]
        kind = condition.kind()
        slow: tuple[str, list[Any]] | None = None
        if kind == "null":
            same: tuple[str, list[Any]] = (f"{jtype} = 'null'", [path])
        elif kind == "bool":
            same = (f"{jtype} = ?", [path, "true" if condition.value else "false"])
        else:
            op = "=" if condition.op in ("==", "!=") else condition.op
            bound = condition.value
            if kind == "string":
                types = "('text')"
                slow = ("instr(state_snapshot, '\\u0000') > 0", [])
            else:
                types = "('integer', 'real')"
                big_int = f"({jtype} = 'integer' AND typeof({value}) = 'real')"
                if isinstance(bound, float):
                    slow = (big_int, [path, path])
                elif not I64_MIN < bound <= I64_MAX:  # -2^63 too: a big negative reads as exactly that
                    bound = _nearest_float(bound)
                    slow = (f"(typeof({value}) = 'real' OR {value} = ?)", [path, path, bound])
            same = (f"({jtype} IN {types} AND {value} {op} ?)", [path, path, bound])
        if condition.op == "!=":
            fast = (f"({jtype} IS NOT NULL AND NOT {same[0]})", [path, *same[1]])
        else:
            fast = same
        if slow is None:
            return fast
        return (
            f"(CASE WHEN {slow[0]} THEN {python} ELSE {fast[0]} END)",
            [*slow[1], *python_params, *fast[1]],
        )

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
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, factory=_TidyConnection)
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

    def byte_length_sql(self, expression: str) -> str:
        # SQLite 3.40 has no octet_length(); length() counts characters of TEXT but bytes of a BLOB.
        return f"length(CAST({expression} AS BLOB))"

    async def stream_readonly(self, sql: str, batch: int = 1000) -> AsyncGenerator[Row, None]:
        """Three locks, each enough on its own for writes: the file opened `mode=ro`, `PRAGMA
        query_only`, and an authorizer that allows only reads (it alone stops ATTACH and VACUUM
        INTO, which create files whatever the first two say, and refuses the functions that reach
        outside the database).

        The query stops as soon as its reader goes away (Ctrl-C cancels the task, or the caller
        closes this generator): a progress handler, which SQLite calls every
        `_PROGRESS_STEPS` virtual machine instructions on the connection's own thread, ends it
        once `stop` is set. Without it the close below would wait behind an endless query (a
        recursive CTE ran on through SIGINTs for 10 minutes)."""
        if not sql.strip(" \t\r\n;"):
            raise CkptdbError("no SQL statement given")
        try:
            conn = await _connect(self.read_only_uri())
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None
        stop = threading.Event()
        try:
            await conn.execute_fetchall(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            await conn.execute_fetchall("PRAGMA query_only = ON")
            await conn.set_authorizer(_read_only_authorizer)
            await conn.set_progress_handler(lambda: 1 if stop.is_set() else 0, _PROGRESS_STEPS)
            cursor = await conn.execute(sql)
            yield tuple(column[0] for column in cursor.description or ())
            while rows := await cursor.fetchmany(batch):
                for row in rows:
                    yield tuple(row)
        except sqlite3.Error as exc:
            raise _read_only_error(exc) from None
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
        return await writer.call(lambda db: _with_big_cache(db, statements))

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

    async def wal_status(self) -> WalStatus:
        """Tries a PASSIVE checkpoint (on the writer thread, in turn): whether it finishes is the one
        way to learn that a reader in some other process holds the WAL. A read-only store must not
        checkpoint (that writes the database file): it reads the WAL's size and, when that is past
        the bound the writers keep, whether the wal-index says frames are still waiting to be copied
        back (`_wal_backlog`): a WAL that stays past its bound with a backlog is a starved one."""
        if self.readonly:
            try:
                size = os.path.getsize(f"{self.path}-wal")
            except OSError:
                return WalStatus(0, False, None)
            backlog = _wal_backlog(Path(f"{self.path}-shm")) if size > WAL_SIZE_LIMIT else None
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
        if await writer.call(lambda db: _vacuum(db, busy)):
            return None
        try:
            return os.path.getsize(f"{self.path}-wal")
        except FileNotFoundError:
            return None


VACUUM_CHECKPOINT_BUSY_MS = 200
"""How long each try of the vacuum's TRUNCATE checkpoint waits for readers. It holds the write lock
while it waits: with the store's busy timeout (30 s) a reader's open transaction kept every other
writer out for 30 s, and their saves failed with "database is locked"."""
VACUUM_CHECKPOINT_TRIES = 5
VACUUM_CHECKPOINT_PAUSE = 0.2
"""Seconds between two tries, with the lock released so other writers go on."""


def _vacuum(db: sqlite3.Connection, busy_timeout_ms: int) -> bool:
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


def _with_big_cache(db: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
    size = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        return _execute_in_transaction(db, statements)
    finally:
        db.execute(f"PRAGMA cache_size = {int(size)}")


# -- read-only SQL for people (`ckptdb sql`) ----------------------------------------------------

_PROGRESS_STEPS = 1000
"""Virtual machine instructions between two looks at the stop flag of `ckptdb sql`: a few
microseconds of work, so an interrupted query ends at once. Measured: a 3,000,000-row recursive
CTE took 804 ms with the handler against 793 ms without (best of 5; 889 ms at every 100 steps)."""

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


# Functions `ckptdb sql` may call on SQLite: SQLite's built-in functions, as of 3.47, that read
# their arguments and nothing else. Not here: load_extension (loads code), fts3_tokenizer (returns,
# or with two arguments installs, a C pointer), sqlite_log (writes to the error log); nor anything a
# newer SQLite adds until it is looked at (an allowlist: a function it does not know is refused).
_SAFE_FUNCTION_NAMES = """
    -> ->> abs acos acosh asin asinh atan atan2 atanh avg ceil ceiling char coalesce concat
    concat_ws cos cosh count cume_dist current_date current_time current_timestamp date datetime
    degrees dense_rank exp first_value floor format glob group_concat hex ifnull iif if instr
    julianday lag last_value lead length like likelihood likely ln log log10 log2 lower ltrim max
    min mod nth_value ntile nullif octet_length percent_rank pi pow power printf quote radians
    random randomblob rank replace round row_number rtrim sign sin sinh soundex sqrt strftime
    string_agg substr substring subtype sum tan tanh time timediff total trim trunc typeof unhex
    unicode unistr unixepoch unlikely upper zeroblob changes last_insert_rowid total_changes
    sqlite_version sqlite_source_id sqlite_compileoption_get sqlite_compileoption_used
    json json_array json_array_length json_error_position json_extract json_group_array
    json_group_object json_insert json_object json_patch json_pretty json_quote json_remove
    json_replace json_set json_type json_valid jsonb jsonb_array jsonb_extract jsonb_group_array
    jsonb_group_object jsonb_insert jsonb_object jsonb_patch jsonb_remove jsonb_replace jsonb_set
    json_each json_tree match bm25 highlight snippet offsets matchinfo
"""
_SAFE_FUNCTIONS = frozenset(_SAFE_FUNCTION_NAMES.split())


def _read_only_authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
) -> int:
    if action == sqlite3.SQLITE_FUNCTION:  # arg2: the function's name
        return sqlite3.SQLITE_OK if (arg2 or "").lower() in _SAFE_FUNCTIONS else sqlite3.SQLITE_DENY
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
    if text.startswith("not authorized to use function: "):
        name = text.removeprefix("not authorized to use function: ")
        return CkptdbError(
            "refused: `sql` calls only functions without side effects (aggregates, text, math, "
            f"date, JSON functions); {name}() is not one of them: nothing was run"
        )
    if any(sign in text for sign in ("authoriz", "readonly", "query_only", "may not be modified")):
        return CkptdbError(
            "refused: `sql` only reads (SELECT, WITH, reporting PRAGMAs such as table_info); this "
            f"statement would write or open another file ({text}): nothing was changed"
        )
    return CkptdbError(f"SQL error: {text}")
