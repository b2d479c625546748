"""PostgreSQL's group commit: a save commits in its caller's own task when nothing is in flight;
saves that come meanwhile queue, and one drain task commits them together once that one is done
(the policy and the request type are `ckptdb.sql.group_commit`'s)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress

from ckptdb.errors import CkptdbError
from ckptdb.sql.group_commit import Part, Row, WriteRequest, commit_isolated_async, settle, statements_of


class CallerGroupCommit:
    """Concurrent saves to one PostgreSQL database, committed together.

    `write_rows(sql, rows)` writes one statement over rows in one transaction; `write_parts(parts)`
    several statements, each over its rows, in one (a batch holding more than one statement)."""

    def __init__(
        self,
        write_rows: Callable[[str, Sequence[Row]], Awaitable[None]],
        write_parts: Callable[[Sequence[Part]], Awaitable[None]],
    ) -> None:
        self._write_rows = write_rows
        self._write_parts = write_parts
        self._queue: list[WriteRequest] = []
        self._drain_task: asyncio.Task[None] | None = None
        self._in_caller: asyncio.Future[None] | None = None  # a save committing in its own task

    async def save(self, sql: str, rows: Sequence[Row], more: Sequence[Part] = ()) -> None:
        if self._in_caller is None and (self._drain_task is None or self._drain_task.done()):
            await self._commit_in_caller(sql, rows, more)
            return
        # A commit is in flight: whoever runs it (the drain task, or the caller's task as it ends)
        # takes this request into the next transaction.
        request = WriteRequest(sql, rows, asyncio.get_running_loop().create_future(), more)
        self._queue.append(request)
        # Awaited directly, not through asyncio.shield (which costs a second future and an extra
        # event-loop turn per save): the commit runs in the drain task whatever happens here, and
        # if this caller is cancelled its future is cancelled, which settle skips (done() checks).
        await request.future

    async def _commit_in_caller(self, sql: str, rows: Sequence[Row], more: Sequence[Part]) -> None:
        """Nothing in flight: commit in the caller's own task, without the drain task's hop (a
        task, a future and two more loop turns: 20-30 us of a sequential save). Saves that come
        meanwhile queue, and the drain task commits them together once this one is done. A
        caller cancelled now cancels its own statement: the save lands whole or not at all, as
        any cancelled database call, and the backend gives that connection back to its pool."""
        self._in_caller = done = asyncio.get_running_loop().create_future()
        try:
            if more:
                await self._write_parts([(sql, rows), *more])
            else:
                await self._write_rows(sql, rows)
        finally:
            self._in_caller = None
            done.set_result(None)
            if self._queue:
                self._drain_task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            outcomes = await commit_isolated_async(
                batch, self._attempt, lambda exc: isinstance(exc, Exception)
            )
            settle(batch, outcomes)
            for error in outcomes or ():
                if error is not None and not isinstance(error, Exception):
                    raise error  # a cancellation: the queued requests have heard of it

    async def _attempt(self, batch: list[WriteRequest]) -> BaseException | None:
        by_sql = statements_of(batch)
        try:
            if len(by_sql) == 1:
                ((sql, rows),) = by_sql.items()
                await self._write_rows(sql, rows)
            else:
                await self._write_parts(list(by_sql.items()))
        except BaseException as exc:
            return exc
        return None

    async def settled(self) -> None:
        """Wait for the saves in flight (a store closing): their callers hear how each ended."""
        if self._in_caller is not None:  # its end starts the drain task for what queued behind it
            await self._in_caller
        if self._drain_task is not None:
            with suppress(CkptdbError):  # each request has heard of its error; closing goes on
                await self._drain_task
