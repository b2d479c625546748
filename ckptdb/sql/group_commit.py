"""Group commit, written once for every engine: the request a save queues, how a transaction's
outcome reaches each request, and how a failing batch is isolated.

Saves that arrive while a transaction is being written queue up, and the next transaction takes
all of them; every save returns only once the transaction holding its rows has committed. If a
shared transaction fails, each request is retried alone, so one bad request cannot fail another.
Where and when a batch commits is each engine's own fast path (SQLite: on the event loop when
nothing can make it wait, else on its writer thread; PostgreSQL: in the caller's task when nothing
is in flight); `isolated` is the one policy both drive, synchronously on a thread or on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any

Row = tuple[Any, ...]
Outcomes = list[BaseException | None] | None
"""None: every request committed; else each request's error (None for those that committed)."""


Part = tuple[str, Sequence[Row]]
"""One statement and the parameter rows it runs over."""


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


def settle(batch: Sequence[WriteRequest], errors: Outcomes) -> None:
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


Attempts = Generator[list[WriteRequest], BaseException | None, Outcomes]


def isolated(batch: list[WriteRequest], worth_retrying_alone: Callable[[BaseException], bool]) -> Attempts:
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
    batch: list[WriteRequest],
    attempt: Callable[[list[WriteRequest]], BaseException | None],
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
    batch: list[WriteRequest],
    attempt: Callable[[list[WriteRequest]], Awaitable[BaseException | None]],
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
