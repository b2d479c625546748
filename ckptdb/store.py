"""The async store interface every backend implements, and the query type it takes."""

from __future__ import annotations

import base64
import binascii
import builtins
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from ckptdb.errors import CkptdbError
from ckptdb.model import (
    Checkpoint,
    CheckpointInfo,
    InterruptType,
    Timestamp,
    parse_interrupt_type,
)
from ckptdb.state_filter import StateFilter
from ckptdb.times import query_time

DEFAULT_LIMIT = 100
"""Rows in one `query()` page when the caller names no limit. A page, not a cap: `iter_query()`
and `list()` stream every match unless given a limit of their own."""

ITER_PAGE = 1000
"""Rows `iter_query()` fetches per keyset page: memory holds one page, whatever the total."""


@dataclass(frozen=True, slots=True)
class CheckpointQuery:
    """Which checkpoints to list, newest first.

    `since` is inclusive and `until` exclusive. `state` conditions test values inside the state
    snapshot. `cursor` is the `next_cursor` of the previous page; paging is keyset-based
    (created_at, id), so it stays stable while rows are added or removed. `limit` is at most how
    many rows: the page size for `query()`, the total for `iter_query()`; None (the default of
    a query object) means all. Only `store.query(**filters)` without a limit pages by DEFAULT_LIMIT.
    """

    graph_name: str | None = None
    current_node: str | None = None
    interrupt_types: tuple[InterruptType, ...] = ()
    since: Timestamp | None = None
    until: Timestamp | None = None
    state: tuple[StateFilter, ...] = ()
    limit: int | None = None
    cursor: str | None = None

    @classmethod
    def build(
        cls,
        *,
        graph_name: str | None = None,
        current_node: str | None = None,
        interrupt_type: InterruptType | str | Iterable[InterruptType | str] | None = None,
        since: Timestamp | datetime | str | None = None,
        until: Timestamp | datetime | str | None = None,
        state: StateFilter | str | Iterable[StateFilter | str] = (),
        limit: int | None = None,
        cursor: str | None = None,
    ) -> CheckpointQuery:
        """Normalize friendly arguments (strings, datetimes, single values) into a query.

        `since` and `until` take a Timestamp, an aware datetime, or text as `ckptdb list --since`
        does: a date (`2026-11-01`, midnight UTC), a date and time (no zone means UTC) or an age
        before now (`7d`, `24h`)."""
        if interrupt_type is None:
            types: tuple[InterruptType, ...] = ()
        elif isinstance(interrupt_type, str):
            types = (parse_interrupt_type(interrupt_type),)
        else:
            types = tuple(parse_interrupt_type(t) for t in interrupt_type)
        if isinstance(state, (StateFilter, str)):
            state = (state,)
        filters = tuple(s if isinstance(s, StateFilter) else StateFilter.parse(s) for s in state)
        if limit is not None and limit < 0:
            raise CkptdbError(f"limit must be 0 or more, got {limit}")
        if cursor is not None:
            decode_cursor(cursor)
        return cls(
            graph_name,
            current_node,
            types,
            None if since is None else query_time(since, what="since"),
            None if until is None else query_time(until, what="until"),
            filters,
            limit,
            cursor,
        )

    def matches(self, info: CheckpointInfo) -> bool:
        """Whether one summary passes the column filters (not state or cursor); for scan stores."""
        if self.graph_name is not None and info.graph_name != self.graph_name:
            return False
        if self.current_node is not None and info.current_node != self.current_node:
            return False
        if self.interrupt_types and info.interrupt_type not in self.interrupt_types:
            return False
        if self.since is not None and info.created_at < self.since:
            return False
        return self.until is None or info.created_at < self.until


@dataclass(slots=True)
class CheckpointPage:
    """One page of summaries, newest first; `next_cursor` is None on the last page."""

    items: list[CheckpointInfo] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(info: CheckpointInfo) -> str:
    raw = f"{info.created_at.utc_text()}\x1f{info.id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """(utc_text, id) of the last row of the previous page."""
    try:
        utc_text, sep, checkpoint_id = (
            base64.urlsafe_b64decode(cursor.encode("ascii")).decode().partition("\x1f")
        )
        Timestamp.from_utc_text(utc_text)
    except (ValueError, binascii.Error, UnicodeError):
        raise CkptdbError(f"invalid cursor {cursor!r}: pass the next_cursor of a previous page") from None
    if not sep:
        raise CkptdbError(f"invalid cursor {cursor!r}: pass the next_cursor of a previous page")
    return utc_text, checkpoint_id


def newest_first_key(info: CheckpointInfo) -> tuple[int, str]:
    """Sort key for newest-first order (use with reverse=True); ties broken by id, as in SQL."""
    return (info.created_at.unix_nanos, info.id)


class KeysetPages:
    """The pages `iter_query` asks for, written once for the async and the synchronous stores:
    keyset pages of at most ITER_PAGE rows, each after the last row of the one before, until the
    query's own `limit` (if any) is reached or a page says it was the last."""

    __slots__ = ("_query", "_remaining")

    def __init__(self, query: CheckpointQuery) -> None:
        self._remaining = query.limit
        self._query = replace(query, limit=self._size())

    def _size(self) -> int:
        return ITER_PAGE if self._remaining is None else min(self._remaining, ITER_PAGE)

    @property
    def first(self) -> CheckpointQuery | None:
        """The first page's query; None when the query asks for no rows."""
        return None if self._remaining == 0 else self._query

    def after(self, page: CheckpointPage) -> CheckpointQuery | None:
        """The query of the page after `page` (the answer to the last query given), or None."""
        if self._remaining is not None:
            self._remaining -= len(page.items)
        if page.next_cursor is None or not page.items or self._remaining == 0:
            return None
        self._query = replace(self._query, cursor=page.next_cursor, limit=self._size())
        return self._query


class CheckpointStore(ABC):
    """Async checkpoint persistence: the Rust `CheckpointStore` trait plus batch, query and latest.

    Stores are async context managers; leaving the block closes them.
    """

    @abstractmethod
    async def save(self, checkpoint: Checkpoint) -> None:
        """Insert, or replace the checkpoint with the same id. Returns once it is durable."""

    @abstractmethod
    async def load(self, checkpoint_id: str) -> Checkpoint | None:
        """The checkpoint with this id, or None."""

    @abstractmethod
    async def delete(self, checkpoint_id: str) -> None:
        """Remove it; no error when it is absent."""

    @abstractmethod
    async def clear(self) -> None:
        """Remove every checkpoint."""

    async def save_many(self, checkpoints: Iterable[Checkpoint]) -> int:
        """Save several checkpoints; returns how many. Backends make this one transaction."""
        count = 0
        for checkpoint in checkpoints:
            await self.save(checkpoint)
            count += 1
        return count

    async def list(self) -> builtins.list[CheckpointInfo]:
        """Every checkpoint's summary, newest first."""
        return [info async for info in self.iter_query(CheckpointQuery(limit=None))]

    async def latest(self, graph_name: str) -> Checkpoint | None:
        """The newest checkpoint of one graph (what a resume wants)."""
        page = await self.query(CheckpointQuery(graph_name=graph_name, limit=1))
        if not page.items:
            return None
        return await self.load(page.items[0].id)

    @abstractmethod
    async def query(self, query: CheckpointQuery | None = None, **filters: Any) -> CheckpointPage:
        """One page of summaries matching `query` (or `CheckpointQuery.build(**filters)`)."""

    async def iter_query(
        self, query: CheckpointQuery | None = None, **filters: Any
    ) -> AsyncIterator[CheckpointInfo]:
        """Every match, newest first (or the first `limit` of them), fetched in keyset pages of
        ITER_PAGE rows, so memory holds one page and no read stays open between two pages.

        Keyword filters without a `limit` mean every match, not one `query()` page: the page size
        is this method's business."""
        query = resolve_query(query, filters, default_limit=None)
        pages = KeysetPages(query)
        page_query = pages.first
        while page_query is not None:
            page = await self.query(page_query)
            for info in page.items:
                yield info
            page_query = pages.after(page)

    async def close(self) -> None:  # noqa: B027 - a no-op is right for stores that hold nothing open
        """Release connections and files. Safe to call twice."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def resolve_query(
    query: CheckpointQuery | None, filters: dict[str, Any], *, default_limit: int | None = DEFAULT_LIMIT
) -> CheckpointQuery:
    """The query a store method was given, as a query object or as keyword filters; keywords
    without `limit` get `default_limit` (a page for `query()`, None - all - for `iter_query()`)."""
    if query is not None and filters:
        raise TypeError("pass either a CheckpointQuery or keyword filters, not both")
    if query is not None:
        return query
    return CheckpointQuery.build(**{"limit": default_limit, **filters})


def page_from_sorted(infos: Sequence[CheckpointInfo], query: CheckpointQuery) -> CheckpointPage:
    """Cut one page out of summaries already filtered and sorted newest first (scan stores)."""
    start = 0
    if query.cursor is not None:
        utc_text, last_id = decode_cursor(query.cursor)
        key = (Timestamp.from_utc_text(utc_text).unix_nanos, last_id)
        while start < len(infos) and newest_first_key(infos[start]) >= key:
            start += 1
    end = len(infos) if query.limit is None else start + query.limit
    items = list(infos[start:end])
    more = end < len(infos) and bool(items)
    return CheckpointPage(items, encode_cursor(items[-1]) if more else None)
