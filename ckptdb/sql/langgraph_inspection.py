"""The SQL of looking at ckptdb's own LangGraph tables (`ckptdb.langgraph_inspect`): thread listing,
one thread's history, and prune / delete, spelled once for every engine.

Nothing here reads a blob: listings come from ids, steps and metadata (JSON text), a prune from
ids alone; what a checkpoint's values are is the saver's business (`ckptdb.langgraph`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ckptdb.sql.langgraph import LanggraphTables, Row, cut_below, run
from ckptdb.sql.store import SqlCheckpointStore

__all__ = ["InspectionTables"]


def _thread_page(where: str) -> str:
    return (
        "SELECT t.thread_id, t.checkpoint_ns, t.n, t.newest, c.step, c.metadata FROM ("
        "SELECT thread_id, checkpoint_ns, count(*) AS n, max(checkpoint_id) AS newest "
        f"FROM langgraph_checkpoints {where} "
        "GROUP BY thread_id, checkpoint_ns ORDER BY thread_id, checkpoint_ns LIMIT ?) t "
        "JOIN langgraph_checkpoints c ON c.thread_id = t.thread_id AND c.checkpoint_ns = t.checkpoint_ns "
        "AND c.checkpoint_id = t.newest ORDER BY t.thread_id, t.checkpoint_ns"
    )


_FIRST_THREADS = _thread_page("")
_NEXT_THREADS = _thread_page("WHERE (thread_id, checkpoint_ns) > (?, ?)")
"""A page of threads (after a thread and namespace): the grouping walks the primary key in order
and stops at the page's end, so the first page of a listing reads only its own threads' rows."""
_HISTORY = (
    "SELECT c.checkpoint_id, c.parent_checkpoint_id, c.step, c.metadata, (SELECT count(*) FROM "
    "langgraph_writes w WHERE w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns "
    "AND w.checkpoint_id = c.checkpoint_id) FROM langgraph_checkpoints c "
    "WHERE c.thread_id = ? AND c.checkpoint_ns = ? AND c.checkpoint_id < ? "
    "ORDER BY c.checkpoint_id DESC LIMIT ?"
)
_ANY_CHECKPOINT = "SELECT 1 FROM langgraph_checkpoints LIMIT 1"
_ABOVE_EVERY_ID = "\U0010ffff"
"""Above every checkpoint id in code point order (the columns compare bytewise on both engines)."""


class InspectionTables:
    def __init__(self, store: SqlCheckpointStore) -> None:
        self._store = store
        self._backend = store.backend
        self._tables = LanggraphTables(store.backend)

    async def any_checkpoint(self) -> bool:
        """Whether the tables hold a checkpoint at all (one primary-key probe)."""
        return bool(await self._backend.fetchall(_ANY_CHECKPOINT, ()))

    async def threads(
        self, *, page: int = 1000, after: tuple[str, str] | None = None
    ) -> AsyncGenerator[Row, None]:
        """(thread_id, namespace, checkpoints, newest id, its step, its metadata JSON), by thread
        (those after the `after` thread and namespace), a keyset page per query (nothing is held
        between pages)."""
        if after is None:
            rows = await self._backend.fetchall(_FIRST_THREADS, (page,))
        else:
            rows = await self._backend.fetchall(_NEXT_THREADS, (*after, page))
        while True:
            for row in rows:
                yield row
            if len(rows) < page:
                return
            rows = await self._backend.fetchall(_NEXT_THREADS, (rows[-1][0], rows[-1][1], page))

    async def history(
        self, thread_id: str, checkpoint_ns: str, *, page: int = 100, before: str | None = None
    ) -> AsyncGenerator[Row, None]:
        """(id, parent id, step, metadata JSON, pending writes), newest first (those older than
        the `before` id), a page per query."""
        if before is None:
            before = _ABOVE_EVERY_ID
        while True:
            rows = await self._backend.fetchall(_HISTORY, (thread_id, checkpoint_ns, before, page))
            for row in rows:
                yield row
            if len(rows) < page:
                return
            before = rows[-1][0]

    async def counts(self) -> list[tuple[str, str, int]]:
        """(thread_id, namespace, checkpoints) of every thread and namespace."""
        rows = await self._backend.fetchall(
            "SELECT thread_id, checkpoint_ns, count(*) FROM langgraph_checkpoints "
            "GROUP BY thread_id, checkpoint_ns ORDER BY thread_id, checkpoint_ns"
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    async def keep_newest(self, thread_id: str, checkpoint_ns: str, keep: int) -> int:
        """Delete all but the `keep` newest checkpoints of one thread and namespace, with their
        pending writes, in one transaction; the oldest kept one's parent link, which would point at
        nothing, is cleared (as LangGraph's PostgreSQL saver's prune does). Returns how many went."""
        rows = await self._backend.fetchall(
            "SELECT checkpoint_id FROM langgraph_checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
            "ORDER BY checkpoint_id DESC LIMIT 1 OFFSET ?",
            (thread_id, checkpoint_ns, keep - 1),
        )
        if not rows:
            return 0
        counts = await self._backend.write(cut_below(thread_id, checkpoint_ns, rows[0][0]))
        return int(counts[1])

    async def collect_garbage(self, thread_id: str) -> int:
        """The values no remaining checkpoint of the thread needs (see `LanggraphTables`)."""
        return await run(self._store, self._tables.collect_garbage(thread_id))

    async def delete_thread(self, thread_id: str) -> int:
        """Every row of a thread, in one transaction; returns how many checkpoints it had."""
        [(count,)] = await self._backend.fetchall(
            "SELECT count(*) FROM langgraph_checkpoints WHERE thread_id = ?", (thread_id,)
        )
        if count:
            await run(self._store, self._tables.delete_threads([thread_id]))
        return int(count)
