"""SQLite: WAL, a busy timeout, BEGIN IMMEDIATE for write transactions, group commit.

Three connections. The writer connection belongs to `WriterThread`: every write is one job on its
thread, in order, and saves that queue up while a transaction runs are committed together in the
next one. At synchronous=NORMAL a commit only appends to the WAL (no fsync), and handing it to a
thread costs more than the commit itself (two thread wake-ups, 140-170 us on a VM), so the saves
gathered in one event-loop turn commit right there on the loop's thread instead, when that cannot
wait: the writer thread is idle and no other connection holds the write lock (tried without the
busy timeout; if locked, the thread takes them and waits). The reader (aiosqlite) serves reads, so
they never wait behind writes. The checkpointer (`Checkpointer`, a thread and connection of its
own) copies the WAL back into the database file off the commit path; the writer's own
auto-checkpoint stays on, at a higher mark, as the bound on the WAL's length.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from contextlib import aclosing, contextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import aiosqlite

from ckptdb.errors import CkptdbError, StoreError
from ckptdb.sql.backend import Backend, DatabaseTarget, IntegrityCheck, Row
from ckptdb.sql.revision import VERSION_TABLE
from ckptdb.state_filter import PathStep, StateFilter

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SYNCHRONOUS = ("NORMAL", "FULL")

T = TypeVar("T")

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
ESTIMATED_PAGES_PER_ROW = 6
"""Pages a saved row dirties besides its own text: the table leaf and five index leaves (the
primary key, two time indexes, two save-order indexes), fewer when rows share a transaction (an
overestimate only makes checkpoints a little more frequent)."""
LOOP_COMMIT_ROWS = 32
"""Saves gathered in one event-loop turn commit on the loop's thread up to this many rows (about a
millisecond of SQLite work); bigger batches, an import's say, go to the writer thread."""
MAX_GROUP_ROWS = 1000
"""At most this many rows of queued saves share one transaction."""


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


class _Rows:
    """Queued saves: one statement over parameter rows, all or nothing."""

    __slots__ = ("future", "rows", "sql")

    def __init__(self, sql: str, rows: Sequence[Row], future: asyncio.Future[None]) -> None:
        self.sql = sql
        self.rows = rows
        self.future = future


class _Call:
    """Any other work on the writer connection: `work(db)` runs alone, in queue order."""

    __slots__ = ("future", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]) -> None:
        self.work = work
        self.future = future


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
    """A thread with its own connection that runs `PRAGMA wal_checkpoint(PASSIVE)` when poked.

    PASSIVE never waits for readers or the writer and never blocks them; SQLite makes a checkpoint
    safe against a crash at any point (it syncs the WAL before copying and the database after, by
    this connection's `synchronous`, set to the writer's). A failure here only leaves the work to
    the writer's own auto-checkpoint, so errors are kept (`last_error`) and not raised.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._wake = threading.Event()
        self.lock = threading.Lock()
        """Held while a checkpoint runs here: the writer takes it to finish one without racing."""
        self._stopping = False
        self.runs = 0
        self.last_result: tuple[int, int, int] | None = None
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ckptdb-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    if db is None:
                        db = self._connect()
                    with self.lock:
                        row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.last_result = (int(row[0]), int(row[1]), int(row[2]))
                except Exception as exc:  # the writer's auto-checkpoint remains
                    self.last_error = exc
                self.runs += 1
        finally:
            if db is not None:
                with suppress(sqlite3.Error):
                    db.close()

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
        if rows > LOOP_COMMIT_ROWS or self._unfinished or not self._conn_lock.acquire(blocking=False):
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
        self.transactions += 1
        self.loop_transactions += 1
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
                finish = self._count_pages([request for request in batch if request not in locked])
            except Exception as exc:  # bookkeeping only: SQLite's own auto-checkpoint remains
                self.last_error = exc
            else:
                if finish:  # never here: it may wait for the disk
                    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._hand_over([_Call(self._finish_checkpoint, future)])
        return locked

    async def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(db)` on the writer thread, after everything queued before it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._state_lock:
            if self._closed:
                raise self._closed_error()
            self._put([_Call(work, future)])
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
                self._finished(1)  # before the answer: the caller's next save may go on the loop
                _deliver(job.future.get_loop(), _settle_call, job.future, result, error)
                self._current = ()
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
                errors = self._commit(batch)
                self.transactions += 1
                self.rows += count
                finish = False
                if self._checkpointer is not None:
                    try:
                        finish = self._count_pages(batch)
                    except Exception as exc:  # bookkeeping only: SQLite's own auto-checkpoint remains
                        self.last_error = exc
            self._finished(len(batch))  # before the answer: the callers' next saves may go on the loop
            self._deliver_rows(batch, errors)
            self._current = ()
            if finish:  # the connection's lock keeps saves from the loop out meanwhile
                with self._conn_lock:
                    self._finish_checkpoint(self._conn)

    def _finished(self, jobs: int) -> None:
        with self._state_lock:
            self._unfinished -= jobs

    def _count_pages(self, batch: list[_Rows]) -> bool:
        """Count committed rows' WAL pages: wake the checkpointer now and then, and say when the
        WAL has reached WAL_LIMIT_PAGES and the writer must finish a checkpoint itself."""
        checkpointer = self._checkpointer
        assert checkpointer is not None
        count = size = 0
        for request in batch:
            count += len(request.rows)
            for row in request.rows:
                size += sum(len(value) for value in row if type(value) is str)
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
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
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
        return translate_error(exc, self._where) if isinstance(exc, sqlite3.Error) else exc

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


class SqliteBackend(Backend):
    def __init__(
        self,
        target: DatabaseTarget,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 30_000,
        commit_on_loop: bool = True,
        max_value_bytes: int | None = None,
    ) -> None:
        """`commit_on_loop=False` keeps every SQLite write off the event loop's thread, at about
        twice the time per sequential save; at synchronous=FULL (an fsync per commit) it is off.
        `max_value_bytes` lowers SQLite's length limit (SQLITE_LIMIT_LENGTH, 1,000,000,000 bytes
        by default, and never raised above it) on ckptdb's connections."""
        assert target.path is not None
        if max_value_bytes is not None and max_value_bytes < 1:
            raise CkptdbError(f"max_value_bytes must be at least 1, got {max_value_bytes}")
        self._length_limit = max_value_bytes
        self.target = target
        self.path = target.path
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS:
            raise CkptdbError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.commit_on_loop = bool(commit_on_loop) and synchronous == "NORMAL"
        self._writer: WriterThread | None = None
        self._reader: aiosqlite.Connection | None = None
        self._checkpointer: Checkpointer | None = None

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

    def _driver_connection(self, mode: str) -> sqlite3.Connection:
        """A plain sqlite3 connection (autocommit, usable from any one thread at a time)."""
        db = sqlite3.connect(
            f"file:{quote(str(self.path))}?mode={mode}",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
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

    def _open_writer(self, create: bool) -> sqlite3.Connection:
        db = self._driver_connection("rwc" if create else "rw")
        try:
            ensure_wal(db, self.busy_timeout_ms)
            db.execute(f"PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}")
        except BaseException:
            db.close()
            raise
        return db

    async def connect(self, *, create: bool) -> None:
        if not create and not self.path.exists():
            raise StoreError(f"no database at {self.path}: check the path or --db (nothing was created)")
        if create and not self.path.parent.is_dir():
            raise StoreError(f"cannot create {self.path}: directory {self.path.parent} does not exist")
        try:
            db = await asyncio.to_thread(self._open_writer, create)
            # What the engine will refuse anyway: a save checks its JSON against it before copying.
            self.max_value_bytes = db.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
            self._checkpointer = Checkpointer(lambda: self._driver_connection("rw"))
            self._writer = WriterThread(
                db,
                self._where(),
                self._checkpointer,
                commit_on_loop=self.commit_on_loop,
                busy_timeout_ms=self.busy_timeout_ms,
            )
            self._reader = await self._open(create=False)
        except sqlite3.Error as exc:
            await self.close()
            raise translate_error(exc, self._where()) from None
        except BaseException:
            await self.close()
            raise

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

    def _conns(self) -> tuple[WriterThread, aiosqlite.Connection]:
        if self._writer is None or self._reader is None:
            raise StoreError("the store is closed")
        return self._writer, self._reader

    def group_writer(self) -> Callable[[str, Sequence[Row]], asyncio.Future[None]] | None:
        writer, _ = self._conns()
        return writer.submit_rows

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

    async def write_rows(self, sql: str, rows: Sequence[Row]) -> None:
        writer, _ = self._conns()
        if rows:
            await writer.submit_rows(sql, rows)

    async def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        writer, _ = self._conns()
        # BEGIN IMMEDIATE, the statements, COMMIT (or ROLLBACK) in one trip to the writer thread.
        return await writer.call(lambda db: _execute_in_transaction(db, statements))

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
            ensure_wal(dbapi_conn, busy)

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

    async def vacuum(self) -> None:
        writer, _ = self._conns()
        # The rewrite goes through the WAL, which keeps its largest size until truncated.
        await writer.call(_vacuum)


def _vacuum(db: sqlite3.Connection) -> None:
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


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
