"""The synchronous store interface: `CheckpointStore`'s methods without `await`, for code that is
not async (a Flask or Django view, a CLI script, a notebook, a thread pool).

The query type, its paging and the page helpers are `ckptdb.store`'s: one meaning of a query for
both interfaces. A synchronous store never runs an event loop of its own (no `asyncio.run`), so it
works where a loop is already running (Jupyter, a sync library called from async code).
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Self

from ckptdb.model import Checkpoint, CheckpointInfo
from ckptdb.store import CheckpointPage, CheckpointQuery, KeysetPages, resolve_query

__all__ = ["SyncCheckpointStore"]


class SyncCheckpointStore(ABC):
    """Synchronous checkpoint persistence: the same contract as `CheckpointStore`, each call
    returning its result instead of an awaitable. Stores are context managers; leaving the block
    closes them."""

    @abstractmethod
    def save(self, checkpoint: Checkpoint) -> None:
        """Insert, or replace the checkpoint with the same id. Returns once it is durable."""

    @abstractmethod
    def load(self, checkpoint_id: str) -> Checkpoint | None:
        """The checkpoint with this id, or None."""

    @abstractmethod
    def delete(self, checkpoint_id: str) -> None:
        """Remove it; no error when it is absent."""

    @abstractmethod
    def clear(self) -> None:
        """Remove every checkpoint."""

    def save_many(self, checkpoints: Iterable[Checkpoint]) -> int:
        """Save several checkpoints; returns how many. Backends make this one transaction."""
        count = 0
        for checkpoint in checkpoints:
            self.save(checkpoint)
            count += 1
        return count

    def list(self) -> builtins.list[CheckpointInfo]:
        """Every checkpoint's summary, newest first."""
        return builtins.list(self.iter_query(CheckpointQuery(limit=None)))

    def latest(self, graph_name: str) -> Checkpoint | None:
        """The newest checkpoint of one graph (what a resume wants)."""
        page = self.query(CheckpointQuery(graph_name=graph_name, limit=1))
        if not page.items:
            return None
        return self.load(page.items[0].id)

    @abstractmethod
    def query(self, query: CheckpointQuery | None = None, **filters: Any) -> CheckpointPage:
        """One page of summaries matching `query` (or `CheckpointQuery.build(**filters)`)."""

    def count(self, query: CheckpointQuery | None = None) -> int:
        """How many checkpoints match (every one without a query)."""
        return sum(1 for _ in self.iter_query(query or CheckpointQuery(limit=None)))

    def iter_query(self, query: CheckpointQuery | None = None, **filters: Any) -> Iterator[CheckpointInfo]:
        """Every match, newest first (or the first `limit` of them), fetched in keyset pages of
        ITER_PAGE rows, so memory holds one page and no read stays open between two pages.
        Keyword filters without a `limit` mean every match, as in `CheckpointStore.iter_query`."""
        query = resolve_query(query, filters, default_limit=None)
        pages = KeysetPages(query)
        page_query = pages.first
        while page_query is not None:
            page = self.query(page_query)
            yield from page.items
            page_query = pages.after(page)

    def close(self) -> None:  # noqa: B027 - a no-op is right for stores that hold nothing open
        """Release connections and files. Safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
