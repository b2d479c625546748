"""The writer connection's thread: every write in order, concurrent saves committed together."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from ckptdb.errors import StoreError
from ckptdb.sql.backend import Row
from ckptdb.sql.group_commit import Part, WriteRequest, commit_isolated, settle
from ckptdb.sql.sqlite import settings, shared_writer
from ckptdb.sql.sqlite.checkpointer import Checkpointer, WalPacer
from ckptdb.sql.sqlite.connection import (
    commit_requests,
    is_busy,
    is_full,
    translate_error,
)
from ckptdb.sql.sqlite.settings import (
    MAX_GROUP_ROWS,
)
from ckptdb.sql.sqlite.shared_writer import SharedWriter

T = TypeVar("T")


def _worth_retrying_alone(exc: BaseException) -> bool:
    return not is_busy(exc)


class _Call:
    """Any other work on the writer connection: `work(db)` runs alone, in queue order. `rows`, when
    given, are the rows it writes, counted for the WAL checkpoints like queued saves."""

    __slots__ = ("future", "rows", "work", "writes")

    def __init__(
        self,
        work: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any],
        rows: Sequence[Row] = (),
        *,
        writes: bool = True,
    ) -> None:
        self.work = work
        self.future = future
        self.rows = rows
        self.writes = writes
        """Whether it may write (False: `close`'s place in the queue, which starts no WAL sync)."""


def _written_rows(requests: Iterable[WriteRequest]) -> list[Sequence[Row]]:
    """The rows of every statement of the requests, for the WAL's page estimate."""
    return [rows for request in requests for _, rows in request.parts()]


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
        shared: SharedWriter,
        where: str,
        *,
        commit_on_loop: bool = False,
        busy_timeout_ms: int = 30_000,
    ) -> None:
        self._shared: SharedWriter | None = shared  # None once let go of (`_let_go`)
        self._conn: sqlite3.Connection = shared.conn
        self._where = where
        self._checkpointer: Checkpointer | None = shared.checkpointer
        self._commit_on_loop = commit_on_loop
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._conn_lock = shared.lock  # held by whichever thread runs SQL on the connection
        self._set_busy_timeout = shared.set_busy_timeout  # with the lock held
        self._gathered: list[WriteRequest] = []  # saves of this event-loop turn, for _flush
        self._gathered_rows = 0
        self._gather_loop: asyncio.AbstractEventLoop | None = None  # the loop that will run _flush
        self._jobs: queue.SimpleQueue[WriteRequest | _Call | None] = queue.SimpleQueue()
        self._state_lock = threading.Lock()  # `_closed` and the queue change together
        self._current: Sequence[
            WriteRequest | _Call
        ] = ()  # the jobs being run: failed too if the thread dies
        self._failure: StoreError | None = None  # why the thread stopped, for requests that come later
        self.last_error: BaseException | None = None
        """An error of the checkpoint bookkeeping after a commit, or what stopped the thread (kept,
        not raised: the callers waiting on it get a StoreError)."""
        self._pacer: WalPacer | None = shared.pacer
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

    def submit_rows(self, sql: str, rows: Sequence[Row], more: Sequence[Part] = ()) -> asyncio.Future[None]:
        """Queue rows for the next group commit; the future is done once they are committed.
        `more`: further statements over their rows, committed in the same transaction."""
        if self._closed:
            raise self._closed_error()
        loop = asyncio.get_running_loop()
        request = WriteRequest(sql, rows, loop.create_future(), more)
        if self._commit_on_loop and len(rows) <= settings.LOOP_COMMIT_ROWS:
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

    def _hand_over(self, requests: Sequence[WriteRequest | _Call]) -> None:
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

    def _put(self, requests: Sequence[WriteRequest | _Call]) -> None:
        """With `_state_lock` held. Saves gathered in this turn go first: jobs keep the order in
        which they were asked for (a clear() between saves runs between them)."""
        gathered = self._take_gathered()
        self._unfinished += len(gathered) + len(requests)
        for request in (*gathered, *requests):
            self._jobs.put(request)

    def _take_gathered(self) -> list[WriteRequest]:
        """With `_state_lock` held."""
        batch, self._gathered, self._gathered_rows, self._gather_loop = self._gathered, [], 0, None
        return batch

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """At the end of the event-loop turn that gathered saves: commit them here if nothing makes
        that wait (another store of the process holding the shared connection is waited for up to
        `LOOP_LOCK_WAIT_SECONDS`, one of its commits), else hand them to the thread."""
        with self._state_lock:
            if self._gather_loop is not loop:  # a job took ours; what gathers now is another's
                return
            rows = self._gathered_rows
            batch = self._take_gathered()
        starved = self._checkpointer is not None and self._checkpointer.starved_since is not None
        if (
            rows > settings.LOOP_COMMIT_ROWS
            or self._unfinished
            or starved  # the thread checks for room on the disk first
            or not self._conn_lock.acquire(timeout=settings.LOOP_LOCK_WAIT_SECONDS)
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

    def _commit_here(self, batch: list[WriteRequest]) -> list[WriteRequest]:
        """Commit on the calling thread with the busy timeout off, and settle each request; returns
        the requests that found the write lock taken (nothing of them was written)."""
        self._set_busy_timeout(0)  # left so: the thread sets its own before its next job
        errors = self._commit(batch, translate=False)
        if errors is not None and all(error is not None and is_busy(error) for error in errors):
            return batch
        if errors is not None and self._checkpointer is not None and any(map(is_full, errors)):
            self._checkpointer.poke()  # a checkpoint that can finish now makes room again
        self.transactions += 1
        self.loop_transactions += 1
        if self._checkpointer is not None:  # before any caller hears of it: the bound counts from here
            self._checkpointer.note_commit()
        locked: list[WriteRequest] = []
        for index, request in enumerate(batch):
            error = None if errors is None else errors[index]
            if error is not None and is_busy(error):
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
                written = _written_rows(request for request in batch if request not in locked)
                finish = self._count_pages(written)
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
        """Finish every queued job, end the thread, then let go of the shared connection (the
        last store of the process to let go closes it)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._state_lock:
            closed = self._closed  # closed before, or the thread stopped (and failed what it held)
            if not closed:
                self._put([_Call(lambda db: None, future, writes=False)])  # after every job queued before
                self._closed = True
                self._jobs.put(None)
        if closed:
            if not self._thread.is_alive():
                await asyncio.to_thread(self._let_go)
            return
        try:
            await future
        finally:
            await asyncio.to_thread(self._thread.join)
            await asyncio.to_thread(self._let_go)

    def _let_go(self) -> None:
        """Once: this writer no longer uses the shared connection (`shared_writer.release`)."""
        with self._state_lock:
            shared, self._shared = self._shared, None
        if shared is not None:
            shared_writer.release(shared)

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
            pending: list[WriteRequest | _Call] = list(self._current)
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
                assert type(job) is WriteRequest
                _deliver(job.future.get_loop(), settle, [job], [error])

    def _serve(self) -> None:
        get, get_nowait = self._jobs.get, self._jobs.get_nowait
        carry: WriteRequest | _Call | None = None
        while True:
            job = carry if carry is not None else get()
            carry = None
            if job is None:
                return
            if type(job) is _Call:
                self._current = [job]
                try:
                    with self._conn_lock:
                        self._set_busy_timeout(self._busy_timeout_ms)
                        result, error = job.work(self._conn), None
                except BaseException as exc:  # handed to the caller
                    result, error = None, self._translate(exc)
                finish = False
                if job.writes and self._checkpointer is not None:  # a delete, a prune: it may have written
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
            assert type(job) is WriteRequest
            batch = [job]
            count = len(job.rows)
            while count < MAX_GROUP_ROWS:
                try:
                    following = get_nowait()
                except queue.Empty:
                    break
                if type(following) is not WriteRequest:
                    carry = following
                    break
                batch.append(following)
                count += len(following.rows)
            self._current = batch
            with self._conn_lock:
                self._set_busy_timeout(self._busy_timeout_ms)
                refusal = self._shared_room_for(batch)
                if refusal is None:
                    errors = self._commit(batch)
                    if errors is not None and self._checkpointer is not None and any(map(is_full, errors)):
                        self._checkpointer.poke()  # a checkpoint that can finish now makes room again
                else:
                    errors = [refusal] * len(batch)
                self.transactions += 1
                self.rows += count
                finish = False
                if self._checkpointer is not None:
                    self._checkpointer.note_commit()
                    try:
                        finish = self._count_pages(_written_rows(batch))
                    except Exception as exc:  # bookkeeping only: SQLite's own auto-checkpoint remains
                        self.last_error = exc
            self._finished(len(batch))  # before the answer: the callers' next saves may go on the loop
            self._deliver_rows(batch, errors)
            self._current = ()
            if finish:  # the connection's lock keeps saves from the loop out meanwhile
                with self._conn_lock:
                    self._finish_checkpoint(self._conn)

    def _shared_room_for(self, batch: list[WriteRequest]) -> StoreError | None:
        shared = self._shared
        return None if shared is None else shared.room_for(batch)

    def _finished(self, jobs: int) -> None:
        with self._state_lock:
            self._unfinished -= jobs

    def _count_pages(self, committed: Sequence[Sequence[Row]]) -> bool:
        """Count committed rows' WAL pages (`WalPacer.count`)."""
        assert self._pacer is not None
        return self._pacer.count(committed)

    def _finish_checkpoint(self, db: sqlite3.Connection) -> None:
        """Finish a checkpoint between two transactions (`WalPacer.finish`)."""
        assert self._pacer is not None
        error = self._pacer.finish(db)
        if error is not None:
            self.last_error = error

    @property
    def finished_checkpoints(self) -> int:
        return 0 if self._pacer is None else self._pacer.finished

    @staticmethod
    def _deliver_rows(batch: list[WriteRequest], errors: list[BaseException | None] | None) -> None:
        loop = batch[0].future.get_loop()
        if all(request.future.get_loop() is loop for request in batch):
            _deliver(loop, settle, batch, errors)
            return
        for index, request in enumerate(batch):  # one store used from several event loops
            error = None if errors is None else errors[index]
            _deliver(request.future.get_loop(), settle, [request], None if error is None else [error])

    def _translate(self, exc: BaseException) -> BaseException:
        return translate_error(exc, self._where, writing=True) if isinstance(exc, sqlite3.Error) else exc

    def _commit(
        self, batch: list[WriteRequest], *, translate: bool = True
    ) -> list[BaseException | None] | None:
        """None when every request committed, else each request's outcome (`commit_isolated`: a
        lock is not retried request by request, since each would meet it alone too)."""
        outcomes = commit_isolated(batch, self._attempt, _worth_retrying_alone)
        if outcomes is None or not translate:
            return outcomes
        return [None if error is None else self._translate(error) for error in outcomes]

    def _attempt(self, batch: list[WriteRequest]) -> BaseException | None:
        """One transaction over the batch; its error (rolled back), or None once committed."""
        return commit_requests(self._conn, batch)
