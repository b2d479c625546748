"""The SQL of looking at ckptdb's own LangGraph tables (`ckptdb.langgraph_inspect`): thread listing,
one thread's history, and prune / delete, spelled once for every engine.

Nothing here reads a blob: listings come from ids, steps and metadata (JSON text), a prune from
ids alone; what a checkpoint's values are is the saver's business (`ckptdb.langgraph`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ckptdb.sql.langgraph import LanggraphTables, Row, cut_below, run
from ckptdb.sql.store import SqlCheckpointStore

__all__ = ["InspectionTables", "check_threads", "rebuild_threads"]


def _thread_page(where: str) -> str:
    return (
        "SELECT thread_id, checkpoint_ns, checkpoints, newest_checkpoint_id, step, metadata "
        f"FROM langgraph_threads {where} ORDER BY thread_id, checkpoint_ns LIMIT ?"
    )


_FIRST_THREADS = _thread_page("")
_NEXT_THREADS = _thread_page("WHERE (thread_id, checkpoint_ns) > (?, ?)")
"""A page of threads (after a thread and namespace) from langgraph_threads, the table the
checkpoints' triggers keep (migration 0007): one small row per thread, read in key order. Grouping
the checkpoints instead listed 100,000 threads (300,000 checkpoints) in 1,354 ms: it read every
newest checkpoint's metadata, which sits past its blob on an overflow page."""
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

    async def thread_pages(
        self, *, page: int = 1000, after: tuple[str, str] | None = None
    ) -> AsyncGenerator[list[Row], None]:
        """Pages of (thread_id, namespace, checkpoints, newest id, its step, its metadata JSON), by
        thread (those after the `after` thread and namespace), a keyset page per query (nothing is
        held between pages; a page, not a row, per yield: a listing of 100,000 threads pays one
        generator step per 1,000)."""
        if after is None:
            rows = await self._backend.fetchall(_FIRST_THREADS, (page,))
        else:
            rows = await self._backend.fetchall(_NEXT_THREADS, (*after, page))
        while True:
            if rows:
                yield rows
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
        """(thread_id, namespace, checkpoints) of every thread and namespace, from the checkpoints
        themselves, not the thread table: what prune and delete decide on must not depend on a
        table that `db check` may find damaged."""
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

    async def rebuild_threads(self) -> int:
        return await rebuild_threads(self._store)

    async def delete_thread(self, thread_id: str) -> int:
        """Every row of a thread, in one transaction; returns how many checkpoints it had."""
        [(count,)] = await self._backend.fetchall(
            "SELECT count(*) FROM langgraph_checkpoints WHERE thread_id = ?", (thread_id,)
        )
        if count:
            await run(self._store, self._tables.delete_threads([thread_id]))
        return int(count)


_STEP_NONE = -(2**63)
_THREAD_MISMATCHES = (
    "SELECT a.thread_id, a.checkpoint_ns, t.checkpoints, a.n, t.newest_checkpoint_id, a.newest "
    "FROM (SELECT thread_id, checkpoint_ns, count(*) AS n, max(checkpoint_id) AS newest "
    "FROM langgraph_checkpoints GROUP BY thread_id, checkpoint_ns) a "
    "JOIN langgraph_checkpoints c ON c.thread_id = a.thread_id AND c.checkpoint_ns = a.checkpoint_ns "
    "AND c.checkpoint_id = a.newest "
    "LEFT JOIN langgraph_threads t ON t.thread_id = a.thread_id AND t.checkpoint_ns = a.checkpoint_ns "
    "WHERE t.thread_id IS NULL OR t.newest_checkpoint_id IS NULL OR t.checkpoints <> a.n "
    "OR t.newest_checkpoint_id <> a.newest "
    f"OR coalesce(t.step, {_STEP_NONE}) <> coalesce(c.step, {_STEP_NONE}) "
    "OR coalesce(CAST(t.metadata AS TEXT), '') <> CAST(c.metadata AS TEXT) "
    "ORDER BY a.thread_id, a.checkpoint_ns"
)
"""Threads whose row in langgraph_threads is missing or says other than their checkpoints."""
_THREADS_WITHOUT_CHECKPOINTS = (
    "SELECT t.thread_id, t.checkpoint_ns, t.checkpoints FROM langgraph_threads t WHERE NOT EXISTS "
    "(SELECT 1 FROM langgraph_checkpoints c WHERE c.thread_id = t.thread_id "
    "AND c.checkpoint_ns = t.checkpoint_ns) ORDER BY t.thread_id, t.checkpoint_ns"
)
REBUILD_THREADS = (
    ("DELETE FROM langgraph_threads", ()),
    (
        "INSERT INTO langgraph_threads (thread_id, checkpoint_ns, checkpoints, newest_checkpoint_id, "
        "step, metadata) SELECT t.thread_id, t.checkpoint_ns, t.n, t.newest, c.step, c.metadata FROM ("
        "SELECT thread_id, checkpoint_ns, count(*) AS n, max(checkpoint_id) AS newest "
        "FROM langgraph_checkpoints GROUP BY thread_id, checkpoint_ns) t JOIN langgraph_checkpoints c "
        "ON c.thread_id = t.thread_id AND c.checkpoint_ns = t.checkpoint_ns AND c.checkpoint_id = t.newest",
        (),
    ),
)
"""The thread table made again from the checkpoints, in one transaction (as migration 0007 fills it)."""


async def check_threads(store: SqlCheckpointStore, max_listed: int = 100) -> tuple[int, list[str]]:
    """(how many threads' rows in langgraph_threads disagree with their checkpoints, the first
    `max_listed` as one line each): from ids, steps and metadata, never a blob."""
    backend = store.backend
    problems: list[str] = []
    found = 0
    for thread_id, ns, counted, stored, newest_said, newest in await backend.fetchall(_THREAD_MISMATCHES):
        found += 1
        if len(problems) < max_listed:
            where = f"thread {thread_id!r} namespace {ns!r}"
            if counted is None:
                problems.append(f"{where}: {int(stored):,} checkpoints, not in the thread table")
            elif int(counted) != int(stored):
                problems.append(
                    f"{where}: {int(counted):,} checkpoints in the thread table, {int(stored):,} stored"
                )
            elif newest_said != newest:
                problems.append(
                    f"{where}: the thread table's newest checkpoint is {newest_said}, not {newest}"
                )
            else:
                problems.append(
                    f"{where}: the thread table's step or metadata is not the newest checkpoint's"
                )
    for thread_id, ns, counted in await backend.fetchall(_THREADS_WITHOUT_CHECKPOINTS):
        found += 1
        if len(problems) < max_listed:
            where = f"thread {thread_id!r} namespace {ns!r}"
            problems.append(f"{where}: {int(counted):,} checkpoints in the thread table, none stored")
    return found, problems


async def rebuild_threads(store: SqlCheckpointStore) -> int:
    """Make langgraph_threads again from the checkpoints, in one transaction; returns its rows."""
    await store.backend.write(REBUILD_THREADS)
    [(count,)] = await store.backend.fetchall("SELECT count(*) FROM langgraph_threads")
    return int(count)
