"""ckptdb's own LangGraph tables looked at for a person (what `ckptdb langgraph threads|history|show|
diff` print without `--source`), and pruned or deleted (`prune`, `delete`).

Listings read ids, steps and metadata only, never a blob. `show` and `diff` read a checkpoint
through `AsyncCkptdbSaver` with LangGraph's strict serde (`ckptdb.langgraph_decode.strict_serde`:
nothing unpickled or executed; a value it cannot read is shown as `{"$undecoded": ...}`), so what
is shown is what the saver gives LangGraph. A checkpoint's time is its id's: LangGraph's ids are
UUIDv6, which carry the time they were made in (`updated` in a listing is the newest one's).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from ckptdb.diff import Change, diff
from ckptdb.langgraph_source import CheckpointNotFoundError, ThreadSummary, parse_metadata
from ckptdb.model import JsonValue
from ckptdb.sql.langgraph_inspection import InspectionTables
from ckptdb.sql.store import SqlCheckpointStore

__all__ = [
    "HistoryRow",
    "PrunePlan",
    "checkpoint_time",
    "delete_thread",
    "diff_stored",
    "execute_prune",
    "has_threads",
    "history",
    "plan_prune",
    "rebuild_threads",
    "show",
    "thread_pages",
    "threads",
]

_GREGORIAN_TO_UNIX = 0x01B21DD213814000
"""100-ns intervals from the UUID epoch (1582-10-15) to the Unix epoch."""


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def checkpoint_time(checkpoint_id: str) -> str | None:
    """When a LangGraph checkpoint id (a UUIDv6) was made, ISO 8601 in UTC; None for another id.

    The canonical spelling (36 characters, version digit 6) is read by slicing out its 15 time
    digits and formatting with `time.strftime`: 2.1 us, where `uuid.UUID` and `datetime` took
    4.1 us (best of 5, same machine; a listing of 100,000 threads formats one per thread); any
    other spelling goes through `uuid.UUID`."""
    if (
        len(checkpoint_id) == 36
        and checkpoint_id[14] == "6"
        and checkpoint_id[8] == checkpoint_id[13] == checkpoint_id[18] == checkpoint_id[23] == "-"
    ):
        digits = checkpoint_id[0:8] + checkpoint_id[9:13] + checkpoint_id[15:18]
        if _HEX_DIGITS.issuperset(digits):
            return _format_ticks(int(digits, 16))
    try:
        found = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if found.version != 6:
        return None
    value = found.int
    return _format_ticks(((value >> 96) << 28) | (((value >> 80) & 0xFFFF) << 12) | ((value >> 64) & 0x0FFF))


def _format_ticks(ticks: int) -> str:
    millis = (ticks - _GREGORIAN_TO_UNIX) // 10_000
    seconds, fraction = divmod(millis, 1000)
    try:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):  # beyond what the platform's gmtime reaches
        when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=millis)
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{text}.{fraction:03d}Z"


class StoredThread:
    """One thread and namespace of a listing. Its metadata is parsed, and its time read from the
    newest id, when first asked for: listing 100,000 threads builds one small object per row,
    12 to 27 ms over reading the rows (84 to 94 ms at load average 1 to 4 on 2 shared cores),
    where building each row's summary and time up front took 543 ms in one run. A consumer that
    reads them pays that then (the CLI does, for the rows it prints)."""

    __slots__ = ("_row", "_summary")

    def __init__(self, row: Sequence[Any]) -> None:
        self._row = row
        self._summary: ThreadSummary | None = None

    @property
    def summary(self) -> ThreadSummary:
        if self._summary is None:
            thread_id, ns, count, newest, step, metadata = self._row
            self._summary = ThreadSummary(
                thread_id, ns, int(count), newest, None if step is None else int(step), _metadata(metadata)
            )
        return self._summary

    @property
    def updated(self) -> str | None:
        """When the newest checkpoint was made (from its id)."""
        newest = self._row[3]
        return None if newest is None else checkpoint_time(newest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredThread) and (self.summary, self.updated) == (
            other.summary,
            other.updated,
        )

    def __hash__(self) -> int:
        return hash((self.summary.thread_id, self.summary.checkpoint_ns))

    def __repr__(self) -> str:
        return f"StoredThread({self.summary!r}, updated={self.updated!r})"


async def has_threads(store: SqlCheckpointStore) -> bool:
    """Whether the database holds any LangGraph checkpoint (what the web view's menu asks)."""
    return await InspectionTables(store).any_checkpoint()


async def thread_pages(
    store: SqlCheckpointStore, limit: int | None = None, *, after: tuple[str, str] | None = None
) -> AsyncGenerator[list[StoredThread], None]:
    """Every thread and namespace (the first `limit`; those after the `after` thread and
    namespace), by thread id, a page at a time: checkpoints, the newest one's id, step, time and
    metadata, from the langgraph_threads table the checkpoints' triggers keep. Keyset pages of
    1,000 (fewer for a smaller limit): a first page reads only its own rows, whatever the number of
    threads. Pages, not rows: an async generator's step per row was 5 to 10 ms more of listing
    100,000 threads (about 110 ms in all)."""
    page = 1000 if limit is None else min(limit, 1000)
    left = limit
    async with aclosing(InspectionTables(store).thread_pages(page=page, after=after)) as pages:
        async for rows in pages:
            if left is not None:
                rows = rows[:left]
                left -= len(rows)
            yield list(map(StoredThread, rows))
            if left == 0:
                return


async def threads(
    store: SqlCheckpointStore, limit: int | None = None, *, after: tuple[str, str] | None = None
) -> AsyncGenerator[StoredThread, None]:
    """`thread_pages`, one thread at a time."""
    async with aclosing(thread_pages(store, limit, after=after)) as pages:
        async for found in pages:
            for stored in found:
                yield stored


def _metadata(stored: Any) -> JsonValue:
    if stored is None or isinstance(stored, (str, bytes)):
        return parse_metadata(stored)
    value: JsonValue = stored
    return value


@dataclass(frozen=True, slots=True)
class HistoryRow:
    checkpoint_id: str
    parent_checkpoint_id: str | None
    step: int | None
    metadata: JsonValue
    writes: int


async def history(
    store: SqlCheckpointStore,
    thread_id: str,
    checkpoint_ns: str = "",
    *,
    before: str | None = None,
    page: int = 100,
) -> AsyncGenerator[HistoryRow, None]:
    """One thread's checkpoints, newest first (those older than the `before` id; `page` rows per
    query); CheckpointNotFoundError when it has none at all."""
    found = before is not None
    tables = InspectionTables(store)
    async with aclosing(tables.history(thread_id, checkpoint_ns, page=page, before=before)) as rows:
        async for checkpoint_id, parent, step, metadata, writes in rows:
            found = True
            yield HistoryRow(
                checkpoint_id, parent, None if step is None else int(step), _metadata(metadata), int(writes)
            )
    if not found:
        raise _no_thread(thread_id, checkpoint_ns)


def _no_thread(thread_id: str, checkpoint_ns: str) -> CheckpointNotFoundError:
    namespace = f" (namespace {checkpoint_ns!r})" if checkpoint_ns else ""
    return CheckpointNotFoundError(
        f"no thread {thread_id!r}{namespace} in the database: `ckptdb langgraph threads` lists them"
    )


class _ShownSerde:
    """The strict serde, and a value it cannot (or must not) load shown in place, not raised."""

    def __init__(self) -> None:
        from ckptdb.langgraph_decode import strict_serde

        self._serde = strict_serde()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        result: tuple[str, bytes] = self._serde.dumps_typed(obj)
        return result

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        kind, raw = data
        if kind == "pickle":
            return {"$undecoded": {"type": kind, "bytes": len(raw), "error": "pickle is never loaded"}}
        try:
            return self._serde.loads_typed(data)
        except Exception as exc:  # the serde's own failures: one value shown as undecoded
            error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            return {"$undecoded": {"type": kind, "bytes": len(raw), "error": error}}


async def _tuple(
    store: SqlCheckpointStore, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
) -> Any:
    from ckptdb.langgraph import AsyncCkptdbSaver

    saver = AsyncCkptdbSaver(store, serde=_ShownSerde())
    configurable = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    found = await saver.aget_tuple({"configurable": configurable})
    if found is not None:
        return found
    if (
        checkpoint_id is None
        or await saver.aget_tuple({"configurable": {**configurable, "checkpoint_id": None}}) is None
    ):
        raise _no_thread(thread_id, checkpoint_ns)
    raise CheckpointNotFoundError(
        f"no checkpoint {checkpoint_id!r} in thread {thread_id!r}: `ckptdb langgraph history` lists them"
    )


async def show(
    store: SqlCheckpointStore, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
) -> dict[str, JsonValue]:
    """One checkpoint (the newest without an id) as JSON, in `decode_checkpoint`'s layout."""
    from ckptdb.langgraph_decode import jsonable

    found = await _tuple(store, thread_id, checkpoint_ns, checkpoint_id)
    body = {key: value for key, value in found.checkpoint.items() if key != "channel_values"}
    values = found.checkpoint.get("channel_values") or {}
    parent = found.parent_config["configurable"]["checkpoint_id"] if found.parent_config else None
    return {
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": found.config["configurable"]["checkpoint_id"],
        "parent_checkpoint_id": parent,
        "metadata": jsonable(found.metadata),
        "checkpoint": jsonable(body),
        "channel_values": {name: jsonable(values[name]) for name in sorted(values)},
        "pending_writes": [
            {"task_id": task_id, "channel": channel, "value": jsonable(value)}
            for task_id, channel, value in found.pending_writes or []
        ],
    }


async def diff_stored(
    store: SqlCheckpointStore, thread_id: str, before_id: str, after_id: str | None, checkpoint_ns: str = ""
) -> list[Change]:
    """What changed in the channel values from checkpoint A to B (without B: A's parent to A)."""
    first = await show(store, thread_id, checkpoint_ns, before_id)
    if after_id is None:
        parent = first["parent_checkpoint_id"]
        if not isinstance(parent, str):
            raise CheckpointNotFoundError(
                f"checkpoint {before_id!r} is the first of thread {thread_id!r}: give B to compare"
            )
        before, after = await show(store, thread_id, checkpoint_ns, parent), first
    else:
        before, after = first, await show(store, thread_id, checkpoint_ns, after_id)
    return diff(before["channel_values"], after["channel_values"])


@dataclass(frozen=True, slots=True)
class PrunePlan:
    keep_last: int
    checkpoints: int
    threads: list[tuple[str, str, int, int]]
    """(thread_id, namespace, checkpoints, to delete) of each thread and namespace with some to delete."""

    @property
    def delete(self) -> int:
        return sum(t[3] for t in self.threads)


async def plan_prune(store: SqlCheckpointStore, keep_last: int) -> PrunePlan:
    """What keeping the `keep_last` newest checkpoints of each thread and namespace deletes."""
    counts = await InspectionTables(store).counts()
    doomed = [(t, ns, n, n - keep_last) for t, ns, n in counts if n > keep_last]
    return PrunePlan(keep_last, sum(n for _, _, n in counts), doomed)


async def execute_prune(store: SqlCheckpointStore, plan: PrunePlan, progress: Any = None) -> tuple[int, int]:
    """Run the plan, one transaction per thread and namespace (a saver writing meanwhile waits for
    one short delete at most, and what it writes is newer than every cut-off), then the values no
    kept checkpoint needs. Returns (checkpoints deleted, values deleted)."""
    tables = InspectionTables(store)
    deleted = values = 0
    for thread_id, ns, _, _ in plan.threads:
        deleted += await tables.keep_newest(thread_id, ns, plan.keep_last)
        if progress is not None:
            progress(deleted)
    for thread_id in dict.fromkeys(t[0] for t in plan.threads):
        values += await tables.collect_garbage(thread_id)
    return deleted, values


async def delete_thread(store: SqlCheckpointStore, thread_id: str) -> int:
    """Every checkpoint, value and pending write of a thread (all its namespaces), in one transaction."""
    deleted = await InspectionTables(store).delete_thread(thread_id)
    if not deleted:
        raise _no_thread(thread_id, "")
    return deleted


async def rebuild_threads(store: SqlCheckpointStore) -> int:
    """The thread table (what `threads` lists) made again from the checkpoints, in one
    transaction, for when `ckptdb db check` finds it disagrees with them; returns its rows."""
    return await InspectionTables(store).rebuild_threads()


async def open_stored(db: str, *, readonly: bool) -> SqlCheckpointStore:
    """The ckptdb database the commands look at (never created: a missing one is said in one line)."""
    return await SqlCheckpointStore.open(db, create=False, readonly=readonly)
