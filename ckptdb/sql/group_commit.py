"""Group commit, written once for every engine: the request a save queues, how a transaction's
outcome reaches each request, and how a failing batch is isolated.

Saves that arrive while a transaction is being written queue up, and the next transaction takes
all of them; every save returns only once the transaction holding its rows has committed. If a
shared transaction fails, each request is retried alone, so one bad request cannot fail another.
Where and when a batch commits is each engine's own fast path (SQLite: on the event loop when
nothing can make it wait, else on its writer thread; PostgreSQL: in the caller's task when nothing
is in flight; the synchronous stores: `LeaderCommit`, in the saving threads themselves); `isolated`
is the one policy all of them drive, synchronously on a thread or on the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Protocol, TypeVar

Row = tuple[Any, ...]
MAX_GATHER_SECONDS = 0.005
"""The longest a leader waits for the other savers' requests (`LeaderCommit._gather`)."""
GATHER_FRACTION = 0.5
"""How long a leader waits for them at most, as a fraction of its last commit's time."""
Outcomes = list[BaseException | None] | None
"""None: every request committed; else each request's error (None for those that committed)."""


Part = tuple[str, Sequence[Row]]
"""One statement and the parameter rows it runs over."""


class Outcome(Protocol):
    """What a request's outcome is told through: an asyncio future, or a `Settled` of a thread."""

    def done(self) -> bool: ...

    def set_result(self, result: None, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class Queued(Protocol):
    """A queued save as the commit and the policy see it: one statement over rows (and, in `more`,
    further statements in the same transaction), and its outcome."""

    @property
    def sql(self) -> str: ...

    @property
    def rows(self) -> Sequence[Row]: ...

    @property
    def more(self) -> Sequence[Part]: ...

    @property
    def future(self) -> Outcome: ...


Q = TypeVar("Q", bound=Queued)


class WriteRequest:
    """Queued saves: one statement over parameter rows (and, in `more`, further statements over
    theirs), all or nothing; `future` is done once they are committed (or failed)."""

    __slots__ = ("future", "more", "rows", "sql")

    def __init__(
        self, sql: str, rows: Sequence[Row], future: asyncio.Future[None], more: Sequence[Part] = ()
    ) -> None:
        self.sql = sql
        self.rows = rows
        self.future = future
        self.more = more
        """Statements after the first, in the same transaction: a LangGraph checkpoint is its row,
        its new values and their items, which commit together or not at all."""

    def parts(self) -> list[Part]:
        """Every statement of the request, in order."""
        return [(self.sql, self.rows), *self.more]


def statements_of(batch: Sequence[Queued]) -> dict[str, list[Row]]:
    """Every statement a batch runs, with the rows of one statement text together, in the order
    first seen: PostgreSQL then sends each statement once (one executemany) for the whole group."""
    by_sql: dict[str, list[Row]] = {}
    for request in batch:
        by_sql.setdefault(request.sql, []).extend(request.rows)
        for sql, rows in request.more:
            by_sql.setdefault(sql, []).extend(rows)
    return by_sql


def settle(batch: Sequence[Queued], errors: Outcomes) -> None:
    """On the event loop (or the committing thread): every request of a committed (or failed)
    transaction learns its outcome."""
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


Attempts = Generator[list[Q], BaseException | None, Outcomes]


def isolated(batch: list[Q], worth_retrying_alone: Callable[[BaseException], bool]) -> Attempts[Q]:
    """The batches to try, in order: the whole batch first; if it fails with an error worth
    retrying alone (not a lock every request would meet alone too, not a cancellation), each
    request alone. The driver sends each attempt's error (None: committed)."""
    error = yield batch
    if error is None:
        return None
    if len(batch) == 1 or not worth_retrying_alone(error):
        return [error] * len(batch)
    outcomes: list[BaseException | None] = []
    for request in batch:
        outcomes.append((yield [request]))
    return outcomes


def commit_isolated(
    batch: list[Q],
    attempt: Callable[[list[Q]], BaseException | None],
    worth_retrying_alone: Callable[[BaseException], bool],
) -> Outcomes:
    """`isolated`, each attempt a blocking call (a writer thread's). The first attempt, which
    nearly always commits, is made before the policy's generator exists: a sequential save pays
    for no generator and no StopIteration."""
    first = attempt(batch)
    if first is None:
        return None
    attempts = isolated(batch, worth_retrying_alone)
    try:
        next(attempts)
        tried = attempts.send(first)
        while True:
            tried = attempts.send(attempt(tried))
    except StopIteration as done:
        result: Outcomes = done.value
        return result


async def commit_isolated_async(
    batch: list[Q],
    attempt: Callable[[list[Q]], Awaitable[BaseException | None]],
    worth_retrying_alone: Callable[[BaseException], bool],
) -> Outcomes:
    """`isolated`, each attempt awaited on the event loop (the first, as in `commit_isolated`,
    before the generator exists)."""
    first = await attempt(batch)
    if first is None:
        return None
    attempts = isolated(batch, worth_retrying_alone)
    try:
        next(attempts)
        tried = attempts.send(first)
        while True:
            tried = attempts.send(await attempt(tried))
    except StopIteration as done:
        result: Outcomes = done.value
        return result


class Settled:
    """A synchronous save's outcome, set by whichever thread commits it (an `Outcome`): a flag, an
    error, and `wake`, a lock held from the start that setting the outcome releases, so the saving
    thread sleeps on a lock of its own (no Condition per save, as a concurrent.futures.Future has)."""

    __slots__ = ("error", "finished", "wake")

    def __init__(self) -> None:
        self.finished = False
        self.error: BaseException | None = None
        self.wake = threading.Lock()
        self.wake.acquire()

    def done(self) -> bool:
        return self.finished

    def set_result(self, result: None, /) -> None:
        self.finished = True
        if self.wake.locked():
            self.wake.release()

    def set_exception(self, exception: BaseException, /) -> None:
        self.error = exception
        self.set_result(None)


class SyncRequest:
    """A synchronous save waiting for `LeaderCommit`: one statement over rows (and, in `more`,
    further statements in the same transaction), and its `Settled`."""

    __slots__ = ("future", "more", "rows", "sql")

    def __init__(self, sql: str, rows: Sequence[Row], more: Sequence[Part] = ()) -> None:
        self.sql = sql
        self.rows = rows
        self.more = more
        self.future = Settled()


class LeaderCommit:
    """Group commit for the synchronous stores, with no writer thread: one of the saving threads
    at a time is the leader, and commits every save queued so far in one transaction, on its own
    thread (leader/follower, as PostgreSQL's and InnoDB's group commits do).

    A save queues its request; with no leader, its thread leads. Otherwise it sleeps on its own
    lock (`Settled.wake`) until a leader has committed it, or hands it the lead: a leader whose own
    save is done passes the lead to the oldest request still queued, then returns. A sequential
    save is one transaction on the caller's thread and no hand-off (a hand-off to a writer thread
    costs two wake-ups, 140-170 us on a VM: more than a commit at NORMAL); 8 threads at FULL share
    one fsync per group (a leader first waits, up to half a commit, for the threads that saved
    lately: `_gather`), and the followers of a group wake each on its own lock, not one after
    the other through the writer's lock (a convoy that held the next commit back by one
    context switch per follower). Every save returns only once its own transaction committed, and
    a failed group is retried request by request (`isolated`), so one bad save fails no other.

    `attempt(batch)` runs one transaction on the engine's writer connection and returns its error
    (rolled back) or None; `translate` turns an engine error into the one a caller gets;
    `committed(batch, outcomes)` runs after each group, `lock` still held (WAL bookkeeping).
    """

    def __init__(
        self,
        attempt: Callable[[list[SyncRequest]], BaseException | None],
        worth_retrying_alone: Callable[[BaseException], bool],
        translate: Callable[[BaseException], BaseException],
        *,
        committed: Callable[[list[SyncRequest], Outcomes], None] | None = None,
        max_rows: int = 1000,
        lock: threading.Lock | None = None,
    ) -> None:
        self.lock = threading.Lock() if lock is None else lock
        """Held by whichever thread uses the writer connection (a leader, `write`, `close`): the
        connection's own lock when others share it (`lock`)."""
        self._attempt = attempt
        self._worth = worth_retrying_alone
        self._translate = translate
        self._committed = committed
        self._max_rows = max_rows
        self._queue_lock = threading.Lock()
        self._queue: list[SyncRequest] = []
        self._leading = False
        self._savers = 1
        """How many requests the last group settled plus those queued behind it: the threads
        saving lately, which the next leader waits for (`_gather`)."""
        self._commit_seconds = 0.0
        self._gate: threading.Lock | None = None
        self.transactions = 0
        """Groups committed (for tests: concurrent saves share transactions)."""
        self.rows = 0

    def save(self, sql: str, rows: Sequence[Row], more: Sequence[Part] = ()) -> None:
        """Commit `rows` (one statement, and `more` statements after it, all or nothing), together
        with whatever else is queued; returns once they are committed, else raises their
        (translated) error."""
        request = SyncRequest(sql, rows, more)
        outcome = request.future
        with self._queue_lock:
            queue = self._queue
            queue.append(request)
            following = self._leading
            self._leading = True
            gate = self._gate
            if gate is not None and len(queue) >= self._savers:
                self._gate = None
                gate.release()  # the leader's group is complete
        if following:
            outcome.wake.acquire()  # committed by a leader, or made the leader
        if not outcome.finished:
            self._lead_until(outcome)
        if outcome.error is not None:
            raise outcome.error

    def _lead_until(self, outcome: Settled) -> None:
        successor: SyncRequest | None = None
        try:
            while not outcome.finished:
                self._lead()
        finally:
            with self._queue_lock:
                if self._queue:
                    successor = self._queue[0]  # the lead passes on: `_leading` stays True
                else:
                    self._leading = False
            if successor is not None:
                successor.future.wake.release()

    def _gather(self) -> None:
        """Before a group: wait, up to half a commit, until as many requests are queued as
        threads saved lately. Without it 8 threads at FULL settle into two alternating groups of
        about 4 (those queued during one group's fsync form the next group, while the first
        group's threads are still encoding their next rows), 4.4 rows a transaction; waiting a
        fraction of an fsync for the other half makes one group of 8. A lone saver never waits
        (`_savers` is 1), and a thread that stops saving costs one wait, after which the
        estimate drops to the group that gathered."""
        with self._queue_lock:
            wanted = self._savers
            if wanted <= 1 or len(self._queue) >= wanted:
                return
            self._gate = gate = threading.Lock()
            gate.acquire()
        gate.acquire(timeout=self._commit_seconds * GATHER_FRACTION)
        with self._queue_lock:
            self._gate = None

    def _take(self) -> list[SyncRequest]:
        with self._queue_lock:
            queue = self._queue
            count = 0
            for end, request in enumerate(queue):
                count += len(request.rows)
                if count >= self._max_rows:
                    batch, self._queue = queue[: end + 1], queue[end + 1 :]
                    return batch
            self._queue = []
            return queue

    def _lead(self) -> None:
        """Commit the queue's head (at most `max_rows` rows) and settle it. Only taking the batch,
        the transaction and the bookkeeping that needs the connection hold `lock` (the batch is
        taken once it is held, so what queued while another store of the process held the
        connection joins it); the gathering before and the settling after do not, so a store
        sharing the connection (an async one committing on its event loop) waits for a commit,
        not for this thread's Python work around it."""
        self._gather()
        with self.lock:
            batch = self._take()
            try:
                started = time.perf_counter()
                outcomes = commit_isolated(batch, self._attempt, self._worth)
                self._commit_seconds = min(time.perf_counter() - started, MAX_GATHER_SECONDS * 2)
                if outcomes is not None:
                    outcomes = [None if error is None else self._translate(error) for error in outcomes]
                self.transactions += 1
                self.rows += sum(len(request.rows) for request in batch)
                if self._committed is not None:
                    self._committed(batch, outcomes)
            except BaseException as exc:  # a bug, or a connection gone bad: no saver may be left waiting
                settle(batch, [exc] * len(batch))
                raise
        with self._queue_lock:
            self._savers = len(batch) + len(self._queue)
        settle(batch, outcomes)
