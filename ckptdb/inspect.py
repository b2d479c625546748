"""Inspection and pruning on an SQL store: what the `ckptdb list/show/graphs/stats/pending/rm/prune/sql`
commands do, as library calls.

Everything is engine-neutral SQL with `?` parameters (user text is always bound, never pasted
into SQL); what differs between engines (byte lengths, read-only enforcement, vacuum) comes from
the store's Backend. Reads that can be large stream from one cursor; the summaries (graphs, stats,
pending) aggregate inside the database and return one row per graph.

How the hot paths stay fast on a million rows:
- per-graph walks use a skip scan over the (graph_name, created_at, id) index (a recursive CTE
  that hops from one graph name to the next), so `pending` costs one index probe per graph;
- `graphs` counts through that index, and sums bytes in one sequential scan: the CTE is
  MATERIALIZED so the byte length is computed before the GROUP BY sort (otherwise SQLite sorts
  the whole JSON text) and the table is read in storage order, not by index lookups;
- "newest" in `pending` and prune is the save order (save_seq, then created_at and id; see
  ckptdb.sql.rows.NEXT_SAVE_SEQ), not created_at alone, which is the saving host's clock;
- prune fixes, per graph, the (save_seq, created_at, id) of the oldest checkpoint to keep and the
  highest save_seq stored, then deletes strictly older rows oldest first, in time windows of the
  whole table, each its own transaction, so savers running at the same time wait a fraction of a
  second, not the whole prune, and rows saved meanwhile (a higher save_seq) are never touched.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptdb.errors import CkptdbError, DamagedRowError
from ckptdb.model import Checkpoint, CheckpointInfo, InterruptType, JsonValue, Timestamp
from ckptdb.state_filter import lookup, parse_path
from ckptdb.store import CheckpointQuery
from ckptdb.times import parse_age, parse_time

if TYPE_CHECKING:
    from ckptdb.sql.backend import WalStatus
    from ckptdb.sql.store import SqlCheckpointStore

__all__ = [
    "WAITING_TYPES",
    "GraphPrune",
    "GraphStats",
    "GraphSummary",
    "NotFoundError",
    "OnDamaged",
    "PrunePlan",
    "PruneResult",
    "Stats",
    "build_query",
    "echo_time",
    "execute_prune",
    "field_value",
    "get_checkpoint",
    "graphs",
    "latest_checkpoint",
    "list_checkpoints",
    "list_records",
    "open_existing",
    "parse_age",
    "parse_interrupt_types",
    "parse_time",
    "pending",
    "plan_prune",
    "remove",
    "run_sql",
    "stats",
    "vacuum",
]

NS = 1_000_000_000
WAITING_TYPES = (InterruptType.TOOL_APPROVAL, InterruptType.USER_REQUEST)
"""Interrupt types that wait for a person: a tool call to approve, a pause the user asked for."""

PRUNE_WINDOW = 50_000
"""Rows per prune transaction (about 0.5 s of work on SQLite): big enough that each page is written
once, small enough that agents saving meanwhile wait well under their busy timeout."""


class NotFoundError(CkptdbError):
    """No checkpoint (or graph) by that name."""


async def open_existing(target: str | Path, *, readonly: bool = False) -> SqlCheckpointStore:
    """Open a store for inspection: never creates a missing database (it says it is missing).

    `readonly` (every command that only looks) never migrates or changes the file (no
    journal-mode switch, no writer thread), and works on a read-only file or file system.
    """
    from ckptdb.sql.store import open_store

    return await open_store(target, create=False, readonly=readonly)


# -- parsing what a person types -----------------------------------------------------------------


_TYPE_NAMES = {t.value: t for t in InterruptType}


def parse_interrupt_types(values: Iterable[str]) -> tuple[InterruptType, ...]:
    """Interrupt types as a person types them: `toolapproval`, `ToolApproval` or `tool_approval`."""
    found: list[InterruptType] = []
    for value in values:
        key = re.sub(r"[\s_-]", "", value).lower()
        if key not in _TYPE_NAMES:
            raise CkptdbError(
                f"unknown interrupt type {value!r}: use beforenode, afternode, toolapproval or userrequest"
            )
        if _TYPE_NAMES[key] not in found:
            found.append(_TYPE_NAMES[key])
    return tuple(found)


def build_query(
    *,
    graph: str | None = None,
    node: str | None = None,
    types: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    where: Sequence[str] = (),
    limit: int | None = None,
    now: Timestamp | None = None,
) -> CheckpointQuery:
    """A query from command-line text: times may be relative (`7d`), types loosely spelled."""
    now = now or Timestamp.now()
    if limit is not None and limit >= 2**63 - 1:
        limit = None  # more rows than any database holds (and more than SQL's LIMIT can take): all
    return CheckpointQuery.build(
        graph_name=graph,
        current_node=node,
        interrupt_type=parse_interrupt_types(types) or None,
        since=None if since is None else parse_time(since, what="--since", now=now),
        until=None if until is None else parse_time(until, what="--until", now=now),
        state=tuple(where),
        limit=limit,
    )


# -- reading ---------------------------------------------------------------------------------------


OnDamaged = Callable[[DamagedRowError], None]
"""Gets each damaged row a read meets (a hand edit in SQL, a torn page: see `ckptdb db check`),
which the read then skips; without one, the first damaged row raises DamagedRowError."""


def _damaged_row(on_damaged: OnDamaged | None, exc: DamagedRowError) -> None:
    if on_damaged is None:
        raise exc
    on_damaged(exc)


async def list_checkpoints(
    store: SqlCheckpointStore, query: CheckpointQuery, *, on_damaged: OnDamaged | None = None
) -> AsyncGenerator[CheckpointInfo, None]:
    """Summaries newest first, streamed from one cursor: memory stays flat for any number of rows.

    Close it (`contextlib.aclosing`) before the store when you may stop early (`list | head`):
    the cursor is closed with it, not left for the event loop to finalize after the store closed.
    """
    from ckptdb.sql import rows as sqlrows

    sql, params = store.select_infos(query, limit=query.limit)
    stream = store.backend.stream(sql, params)
    async with aclosing(stream):
        async for row in stream:
            try:
                info = sqlrows.info_from_row(row)
            except DamagedRowError as exc:
                _damaged_row(on_damaged, exc)
                continue
            yield info


ListRecord = tuple[str, str, str, str, int, str]
"""(id, graph_name, current_node, interrupt_type, step_count, created_at as echo wrote it)."""


_UTC_COLUMN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z", re.ASCII)
"""The form of every `created_at` ckptdb writes (fixed width, nine fraction digits)."""


async def list_records(
    store: SqlCheckpointStore, query: CheckpointQuery, *, on_damaged: OnDamaged | None = None
) -> AsyncGenerator[ListRecord, None]:
    """`list_checkpoints` as plain values ready to print, about twice as fast per row: the time
    text is cut from the stored UTC text instead of going through a Timestamp and back.

    A row that does not look as ckptdb writes it (a time of another form, a negative step count,
    anything unusual in the rarely set columns) goes through the full decoding, which names what
    is damaged; a damaged row is skipped (see `OnDamaged`), never printed as if it were sound."""
    from ckptdb.sql import rows as sqlrows

    sql, params = store.select_infos(query, limit=query.limit)
    stream = store.backend.stream(sql, params)
    async with aclosing(stream):
        async for row in stream:
            cid, graph, node, step, created, kind, original, extra = row
            if (
                original is None
                and extra is None
                and isinstance(created, str)
                and _UTC_COLUMN.fullmatch(created)
                and isinstance(step, int)
                and step >= 0
            ):
                yield (cid, graph, node, kind, step, echo_time(created))
                continue
            try:  # the uncommon columns, or a damaged row: decode it the slow, checking way
                info = sqlrows.info_from_row(row)
                if info.step_count < 0:
                    why = f"expected an unsigned integer up to 2^64-1, got {info.step_count}"
                    raise DamagedRowError(cid, f"field 'step_count': {why}")
            except DamagedRowError as exc:
                _damaged_row(on_damaged, exc)
                continue
            text = original if original is not None else echo_time(created)
            yield (cid, graph, node, kind, info.step_count, text)


def echo_time(utc_text: str) -> str:
    """`2026-11-03T09:50:52.350000000Z` -> `2026-11-03T09:50:52.350Z`: chrono's spelling (0, 3, 6
    or 9 fraction digits) of the fixed-width UTC column text; equals Timestamp(...).isoformat()."""
    fraction = utc_text[20:29]
    if fraction == "000000000":
        return utc_text[:19] + "Z"
    if fraction.endswith("000000"):
        return utc_text[:23] + "Z"
    if fraction.endswith("000"):
        return utc_text[:26] + "Z"
    return utc_text


async def get_checkpoint(store: SqlCheckpointStore, checkpoint_id: str) -> Checkpoint:
    checkpoint = await store.load(checkpoint_id)
    if checkpoint is None:
        raise NotFoundError(f"no checkpoint with id {checkpoint_id!r} in {store.target.display()}")
    return checkpoint


async def latest_checkpoint(store: SqlCheckpointStore, graph_name: str) -> Checkpoint:
    checkpoint = await store.latest(graph_name)
    if checkpoint is None:
        raise NotFoundError(
            f"no checkpoints for graph {graph_name!r} in {store.target.display()} "
            "(`ckptdb graphs` lists them)"
        )
    return checkpoint


def field_value(checkpoint: Checkpoint, path_text: str) -> JsonValue:
    """One value of the echo document, by a path like `pending_action.function.name` or `path[0]`.

    A path whose first key is not a top-level field is looked up in `state_snapshot`, as
    `--where` conditions are: `values.approved` means `state_snapshot.values.approved`.
    """
    path = parse_path(path_text)
    document = checkpoint.to_document()
    scope: Any = document
    if path[0] not in document and isinstance(checkpoint.state_snapshot, dict):
        scope = checkpoint.state_snapshot
    found, value = lookup(scope, path)
    if not found:
        raise NotFoundError(
            f"checkpoint {checkpoint.id!r} has no field {path_text!r} "
            f"(top-level fields: {', '.join(document)}; other paths start inside state_snapshot)"
        )
    return value


# -- summaries -------------------------------------------------------------------------------------

# One row per graph name, in a handful of index probes per graph (no scan of the rows).
_GRAPH_WALK = """WITH RECURSIVE graphs(name) AS (
    SELECT min(graph_name) FROM checkpoints
    UNION ALL
    SELECT (SELECT min(graph_name) FROM checkpoints WHERE graph_name > graphs.name)
    FROM graphs WHERE graphs.name IS NOT NULL
)"""

_GRAPH_COUNTS = f"""{_GRAPH_WALK}
SELECT name,
       (SELECT count(*) FROM checkpoints WHERE graph_name = graphs.name),
       (SELECT min(created_at) FROM checkpoints WHERE graph_name = graphs.name),
       (SELECT max(created_at) FROM checkpoints WHERE graph_name = graphs.name)
FROM graphs WHERE name IS NOT NULL"""

EXACT_SIZE_ROWS = 250_000
"""Up to this many checkpoints `graphs` sums every row's bytes (one scan); above, it estimates."""
SIZE_BUCKETS = 256
"""Time buckets per graph when estimating its size (graphs with fewer rows are summed exactly)."""


def _row_bytes(store: SqlCheckpointStore) -> str:
    """SQL for the bytes of a row's JSON as stored: state, path, pending action and extra fields."""
    length = store.backend.byte_length_sql
    return (
        f"{length('state_snapshot')} + {length('path')} + "
        f"coalesce({length('pending_action')}, 0) + coalesce({length('extra')}, 0)"
    )


@dataclass(frozen=True, slots=True)
class GraphSummary:
    """One line of `ckptdb graphs`."""

    graph_name: str
    checkpoints: int
    oldest: Timestamp | None
    """None only when no row of the graph has a readable time (every one damaged)."""
    newest: Timestamp | None
    data_bytes: int
    """Bytes of the graph's checkpoint JSON as stored (before page overhead and indexes)."""
    data_bytes_exact: bool = True
    """False when `data_bytes` is an estimate (see `graphs`)."""


async def _graph_counts(store: SqlCheckpointStore) -> list[tuple[str, int, str, str]]:
    rows = await store.backend.fetchall(_GRAPH_COUNTS)
    return [(str(name), int(count), str(oldest), str(newest)) for name, count, oldest, newest in rows]


def _utc_time(text: object) -> Timestamp | None:
    """A `created_at` column value as a time; None when it is damaged (a hand edit, a torn page)."""
    try:
        return Timestamp.from_utc_text(text)  # type: ignore[arg-type]  # anything may sit in a damaged row
    except (ValueError, TypeError, AttributeError):
        return None


class _Bounds:
    """Oldest and newest times of some rows, read past damaged `created_at` values.

    The summaries take min() and max() of the column from the index; a damaged value sorts among
    them as text ('yesterday' after every real time), so when one of them does not read as a time,
    the rows are walked from that end until one does, and every damaged row met is reported
    once."""

    def __init__(self, store: SqlCheckpointStore, on_damaged: OnDamaged | None) -> None:
        self.store = store
        self.on_damaged = on_damaged
        self.reported: set[str] = set()

    async def resolve(
        self, oldest_text: object, newest_text: object, where: str, params: Sequence[Any]
    ) -> tuple[Timestamp | None, Timestamp | None]:
        oldest, newest = _utc_time(oldest_text), _utc_time(newest_text)
        if oldest is None:
            oldest = await self._walk(where, params, "ASC")
        if newest is None:
            newest = await self._walk(where, params, "DESC")
        return oldest, newest

    async def _walk(self, where: str, params: Sequence[Any], order: str) -> Timestamp | None:
        sql = f"SELECT id, created_at FROM checkpoints WHERE {where} ORDER BY created_at {order}, id {order}"
        async with aclosing(self.store.backend.stream(sql, params, batch=100)) as rows:
            async for checkpoint_id, text in rows:
                found = _utc_time(text)
                if found is not None:
                    return found
                if checkpoint_id not in self.reported:
                    self.reported.add(checkpoint_id)
                    _damaged_row(
                        self.on_damaged,
                        DamagedRowError(checkpoint_id, f"created_at {text!r} is not a time"),
                    )
        return None


async def graphs(
    store: SqlCheckpointStore, *, exact: bool | None = None, on_damaged: OnDamaged | None = None
) -> list[GraphSummary]:
    """Each graph with its number of checkpoints, oldest and newest time and data size, by name.

    Counts and times are exact and come from the index alone. Sizes are exact up to
    EXACT_SIZE_ROWS checkpoints in all (or with `exact=True`): one scan of every row, which on
    SQLite costs about 0.6 s per million rows. Above that a graph's size is estimated: its time
    range is cut into SIZE_BUCKETS buckets, and each bucket counts as its number of rows times the
    size of its first row (a stratified sample: bursts and quiet spells weigh what they hold).
    Cost: one walk of the index plus SIZE_BUCKETS row reads per graph.

    A damaged `created_at` among a graph's oldest or newest rows goes to `on_damaged` (see
    `_Bounds`); the graph's times are then those of its readable rows.
    """
    counts = await _graph_counts(store)
    bounds = _Bounds(store, on_damaged)
    times = {
        name: await bounds.resolve(oldest, newest, "graph_name = ?", [name])
        for name, _, oldest, newest in counts
    }
    total = sum(count for _, count, _, _ in counts)
    if exact is None:
        sampled_reads = sum(min(count, SIZE_BUCKETS) for _, count, _, _ in counts)
        # Many small graphs: sampling would read most rows one by one; the scan is cheaper then.
        exact = total <= EXACT_SIZE_ROWS or sampled_reads * 4 > total
    estimated: set[str] = set()
    if exact:
        sizes = await _exact_sizes(store)
    else:
        sizes = {}
        for name, count, _, _ in counts:
            oldest, newest = times[name]
            if count <= SIZE_BUCKETS or oldest is None or newest is None:
                sizes[name] = await _graph_bytes(store, name)
            else:
                sizes[name] = await _estimated_bytes(store, name, oldest, newest)
                estimated.add(name)
    return sorted(
        (
            GraphSummary(name, count, *times[name], sizes.get(name, 0), name not in estimated)
            for name, count, _, _ in counts
        ),
        key=lambda summary: summary.graph_name,
    )


async def _exact_sizes(store: SqlCheckpointStore) -> dict[str, int]:
    # MATERIALIZED: the byte length is computed while scanning, so the GROUP BY sorts small
    # (name, number) records; flattened, SQLite would carry every row's JSON text into the sort.
    rows = await store.backend.fetchall(
        f"WITH sized AS MATERIALIZED (SELECT graph_name, {_row_bytes(store)} AS data_bytes FROM checkpoints) "
        "SELECT graph_name, sum(data_bytes) FROM sized GROUP BY graph_name"
    )
    return {str(name): int(total) for name, total in rows}


async def _graph_bytes(store: SqlCheckpointStore, graph_name: str) -> int:
    found = await store.backend.fetchall(
        f"SELECT sum({_row_bytes(store)}) FROM checkpoints WHERE graph_name = ?", [graph_name]
    )
    return int(found[0][0] or 0)


async def _estimated_bytes(
    store: SqlCheckpointStore, graph_name: str, oldest: Timestamp, newest: Timestamp
) -> int:
    start = oldest.unix_nanos
    end = newest.unix_nanos + 1
    edges = [Timestamp(start + (end - start) * i // SIZE_BUCKETS).utc_text() for i in range(SIZE_BUCKETS + 1)]
    bounds = sorted(set(pairwise(edges)))  # equal edges when the range is short
    bucket = "graph_name = ? AND created_at >= buckets.lo AND created_at < buckets.hi"
    rows = await store.backend.fetchall(
        f"WITH buckets(lo, hi) AS (VALUES {', '.join(['(?, ?)'] * len(bounds))}) "
        f"SELECT (SELECT count(*) FROM checkpoints WHERE {bucket}), "
        f"(SELECT {_row_bytes(store)} FROM checkpoints WHERE {bucket} ORDER BY created_at, id LIMIT 1) "
        "FROM buckets",
        [value for pair in bounds for value in pair] + [graph_name, graph_name],
    )
    return sum(int(count) * int(size) for count, size in rows if count)


@dataclass(slots=True)
class GraphStats:
    """Counts of one graph (or of all: `Stats.total`) by interrupt type, with its time range."""

    graph_name: str
    checkpoints: int = 0
    by_type: dict[InterruptType, int] = field(default_factory=lambda: dict.fromkeys(InterruptType, 0))
    oldest: Timestamp | None = None
    newest: Timestamp | None = None

    def add(
        self, kind: InterruptType, count: int, oldest: Timestamp | None, newest: Timestamp | None
    ) -> None:
        self.checkpoints += count
        self.by_type[kind] += count
        if oldest is not None:
            self.oldest = oldest if self.oldest is None else min(self.oldest, oldest)
        if newest is not None:
            self.newest = newest if self.newest is None else max(self.newest, newest)


@dataclass(slots=True)
class Stats:
    """Totals for the whole database; `by_graph` is sorted by name, `total` sums every graph."""

    database: str
    database_bytes: int | None
    free_bytes: int | None
    total: GraphStats
    by_graph: list[GraphStats]
    wal: WalStatus | None = None
    """SQLite: the WAL's size, and whether a reader starves its checkpoints."""


async def stats(store: SqlCheckpointStore, *, on_damaged: OnDamaged | None = None) -> Stats:
    """Counts by graph and interrupt type with oldest/newest times, and the database's size.

    One sequential scan (MATERIALIZED, for the same reason as in `graphs`); no time budget here.
    Damaged times go to `on_damaged`, as in `graphs`, and count without a time.
    """
    rows = await store.backend.fetchall(
        "WITH r AS MATERIALIZED (SELECT graph_name, interrupt_type, created_at FROM checkpoints) "
        "SELECT graph_name, interrupt_type, count(*), min(created_at), max(created_at) "
        "FROM r GROUP BY graph_name, interrupt_type"
    )
    total = GraphStats("")
    by_graph: dict[str, GraphStats] = {}
    bounds = _Bounds(store, on_damaged)
    for name, kind_text, count, oldest_text, newest_text in sorted(rows):
        kind = _TYPE_NAMES[kind_text]  # the table's CHECK constraint admits no other value
        oldest, newest = await bounds.resolve(
            oldest_text, newest_text, "graph_name = ? AND interrupt_type = ?", [name, kind_text]
        )
        by_graph.setdefault(name, GraphStats(name)).add(kind, int(count), oldest, newest)
        total.add(kind, int(count), oldest, newest)
    return Stats(
        store.target.display(),
        await store.backend.database_size(),
        await store.backend.free_bytes(),
        total,
        [by_graph[name] for name in sorted(by_graph)],
        await store.backend.wal_status(),
    )


_SOUND_TIME = "length(created_at) = 30 AND created_at LIKE '____-__-__T__:__:__._________Z'"
"""SQL true for a `created_at` of the form ckptdb writes (fixed width, nine fraction digits)."""


async def pending(store: SqlCheckpointStore, *, on_damaged: OnDamaged | None = None) -> list[Checkpoint]:
    """The checkpoints waiting for a person: each graph's last saved checkpoint, when its interrupt
    type is toolapproval or userrequest (a graph that moved on past an approval is not waiting).
    Last saved first. A damaged one goes to `on_damaged` and is left out."""
    from ckptdb.sql import rows as sqlrows

    # rows.COLUMNS without `source` (the last): the order rows.from_row reads.
    columns = ", ".join(f"c.{name}" for name in sqlrows.COLUMNS[:-1])
    # Rows without a save order (imported, hand-made) fall back to created_at, where a damaged
    # time ('yesterday') sorts after every real one as text: it must not stand for its graph's
    # newest checkpoint. The last row of sound form is the graph's state; a damaged one above it
    # is reported (one more index probe per graph).
    rows = await store.backend.fetchall(
        f"""{_GRAPH_WALK}
SELECT {columns} FROM graphs JOIN checkpoints c ON c.id = (
    SELECT id FROM checkpoints WHERE graph_name = graphs.name AND {_SOUND_TIME}
    ORDER BY {sqlrows.ORDER_NEWEST_FIRST} LIMIT 1
)
WHERE c.interrupt_type IN (?, ?)
ORDER BY c.save_seq DESC, c.created_at DESC, c.id DESC""",
        [kind.value for kind in WAITING_TYPES],
    )
    if on_damaged is not None:
        tops = await store.backend.fetchall(
            f"""{_GRAPH_WALK}
SELECT c.id, c.created_at FROM graphs JOIN checkpoints c ON c.id = (
    SELECT id FROM checkpoints WHERE graph_name = graphs.name ORDER BY {sqlrows.ORDER_NEWEST_FIRST} LIMIT 1
)
WHERE NOT ({_SOUND_TIME.replace("created_at", "c.created_at")})"""
        )
        for checkpoint_id, text in tops:
            on_damaged(DamagedRowError(checkpoint_id, f"created_at {text!r} is not a time"))
    found = []
    for row in rows:
        try:
            found.append(sqlrows.from_row(row))
        except DamagedRowError as exc:
            _damaged_row(on_damaged, exc)
    return found


# -- deleting --------------------------------------------------------------------------------------


async def remove(store: SqlCheckpointStore, ids: Sequence[str], *, missing_ok: bool = False) -> int:
    """Delete these checkpoints in one transaction; returns how many existed.

    Unless `missing_ok`, an unknown id deletes nothing and raises NotFoundError, so a typo in a
    list of ids never half-applies.
    """
    unique = list(dict.fromkeys(ids))
    if not missing_ok:
        known: set[str] = set()
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found = await store.backend.fetchall(f"SELECT id FROM checkpoints WHERE id IN ({marks})", chunk)
            known.update(row[0] for row in found)
        missing = [cid for cid in unique if cid not in known]
        if missing:
            shown = ", ".join(repr(cid) for cid in missing[:5]) + (", ..." if len(missing) > 5 else "")
            noun = "id" if len(missing) == 1 else f"{len(missing)} ids"
            raise NotFoundError(f"no checkpoint with {noun} {shown}: nothing was deleted")
    return await store.delete_many(unique)


@dataclass(frozen=True, slots=True)
class GraphPrune:
    """What a prune deletes from one graph."""

    graph_name: str
    checkpoints: int
    delete: int
    delete_bytes: int
    keep_from: tuple[int, str, str] | None
    """(save_seq, created_at UTC text, id) of the oldest checkpoint `keep_last` keeps: only rows
    saved before it go. None when `keep_last` does not limit this graph."""


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """What `execute_prune` will delete; `plan_prune` makes it, a dry run prints it."""

    keep_last: int | None
    older_than: Timestamp | None
    graphs: list[GraphPrune]
    """Only graphs with something to delete, by name."""
    saved_up_to: int
    """The highest save_seq when the plan was made: rows saved after it are never deleted."""
    checkpoints: int
    """Checkpoints in the graphs considered (all graphs, or the ones asked for)."""

    @property
    def delete(self) -> int:
        return sum(graph.delete for graph in self.graphs)

    @property
    def delete_bytes(self) -> int:
        return sum(graph.delete_bytes for graph in self.graphs)


def _prune_where(
    graph_name: str,
    keep_from: tuple[int, str, str] | None,
    older_than: Timestamp | None,
    saved_up_to: int,
    *,
    in_time_window: bool = False,
) -> tuple[str, list[Any]]:
    """The rows of one graph a prune deletes; the same text plans, counts and deletes them.

    `in_time_window`: the statement also bounds created_at to one window, and `+save_seq` keeps
    the save-order index out of it, so the window's range on (graph_name, created_at, id) drives
    the delete; otherwise SQLite picks the save-order index for the save_seq bounds and each
    window's delete walks every deletable row of its graph (a prune of 195,000 of 200,000 rows
    in windows of 50,000: 5.9 s against 3.6 s)."""
    seq = "+save_seq" if in_time_window else "save_seq"
    clauses, params = ["graph_name = ?", f"{seq} <= ?"], [graph_name, saved_up_to]
    if keep_from is not None:
        clauses.append(f"({seq}, created_at, id) < (?, ?, ?)")
        params.extend(keep_from)
    if older_than is not None:
        clauses.append("created_at < ?")
        params.append(older_than.utc_text())
    return " AND ".join(clauses), params


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune did, and the space it left (free inside the file, or given back by vacuum)."""

    deleted: int
    free_bytes: int | None
    """Free space inside the database after the delete (or after the vacuum)."""
    size_before: int | None
    size_after: int | None
    vacuumed: bool
    wal_kept: int | None = None
    """Bytes a reader's open transaction kept in the WAL after the vacuum (SQLite), else None."""


async def plan_prune(
    store: SqlCheckpointStore,
    *,
    keep_last: int | None = None,
    older_than: Timestamp | None = None,
    graph_names: Sequence[str] = (),
) -> PrunePlan:
    """What a prune would delete: rows older than `older_than` (if given) that are not among the
    `keep_last` newest of their graph (if given). Both given: a row must pass both to go."""
    if keep_last is None and older_than is None:
        raise CkptdbError("say what to prune: --keep-last N, --older-than AGE, or both")
    if keep_last is not None and keep_last < 0:
        raise CkptdbError(f"--keep-last must be 0 or more, got {keep_last}")
    from ckptdb.sql import rows as sqlrows

    backend = store.backend
    found = await backend.fetchall("SELECT coalesce(max(save_seq), 0) FROM checkpoints")
    saved_up_to = int(found[0][0])
    if graph_names:
        counts = []
        for name in dict.fromkeys(graph_names):
            found = await backend.fetchall("SELECT count(*) FROM checkpoints WHERE graph_name = ?", [name])
            if not found[0][0]:
                raise NotFoundError(
                    f"no graph named {name!r} in {store.target.display()} (`ckptdb graphs` lists them)"
                )
            counts.append((name, int(found[0][0])))
    else:
        counts = [(name, count) for name, count, _, _ in await _graph_counts(store)]
    plans: list[GraphPrune] = []
    for name, count in counts:
        keep_from: tuple[int, str, str] | None = None
        if keep_last is not None and keep_last > 0:
            if count <= keep_last:
                continue
            found = await backend.fetchall(
                "SELECT save_seq, created_at, id FROM checkpoints WHERE graph_name = ? "
                f"ORDER BY {sqlrows.ORDER_NEWEST_FIRST} LIMIT 1 OFFSET ?",
                [name, keep_last - 1],
            )
            if not found:
                continue
            keep_from = (int(found[0][0]), str(found[0][1]), str(found[0][2]))
        where, params = _prune_where(name, keep_from, older_than, saved_up_to)
        found = await backend.fetchall(
            f"SELECT count(*), sum({_row_bytes(store)}) FROM checkpoints WHERE {where}", params
        )
        delete, delete_bytes = found[0]
        if delete:
            plans.append(GraphPrune(name, count, int(delete), int(delete_bytes or 0), keep_from))
    plans.sort(key=lambda plan: plan.graph_name)
    return PrunePlan(keep_last, older_than, plans, saved_up_to, sum(count for _, count in counts))


async def execute_prune(
    store: SqlCheckpointStore,
    plan: PrunePlan,
    *,
    vacuum: bool = False,
    window: int = PRUNE_WINDOW,
    progress: Callable[[int], None] | None = None,
) -> PruneResult:
    """Delete what the plan selected, then optionally give the space back to the operating system.

    Deletes go oldest first in time windows of about `window` rows of the whole table, one
    transaction per window holding every graph's delete for that window. Rows are stored roughly
    in the order they were saved, so a window's deletes touch neighbouring pages: going graph by
    graph instead would rewrite nearly every page of the table once per graph (measured 4x
    slower on a million rows). `progress` gets the running total after each window.
    """
    backend = store.backend
    deleted = 0
    # The windows stop at the newest time among the rows the plan selected, graph by graph.
    limits = [await _newest_deletable(store, plan, graph) for graph in plan.graphs]
    found = await backend.fetchall("SELECT min(created_at) FROM checkpoints")
    start: str | None = found[0][0] if plan.graphs else None
    while start is not None and start <= max(limits):
        end = await _window_end(store, start, window)
        statements: list[tuple[str, Sequence[Any]]] = []
        for graph, limit in zip(plan.graphs, limits, strict=True):
            if limit < start:
                continue  # this graph has nothing left to delete from here on
            where, params = _prune_where(
                graph.graph_name, graph.keep_from, plan.older_than, plan.saved_up_to, in_time_window=True
            )
            sql = f"DELETE FROM checkpoints WHERE {where} AND created_at >= ?"
            params.append(start)
            if end is not None:
                sql += " AND created_at < ?"
                params.append(end)
            statements.append((sql, params))
        deleted += sum(await backend.write_bulk(statements))
        if progress is not None:
            progress(deleted)
        start = end
    size_before = await backend.database_size()
    kept = await backend.vacuum() if vacuum else None
    return PruneResult(
        deleted, await backend.free_bytes(), size_before, await backend.database_size(), vacuum, kept
    )


async def _newest_deletable(store: SqlCheckpointStore, plan: PrunePlan, graph: GraphPrune) -> str:
    """UTC text no deletable row of this graph is newer than. Not the kept row's time: in save
    order a row saved earlier may carry a later created_at (its host's clock ran fast)."""
    where, params = _prune_where(graph.graph_name, graph.keep_from, plan.older_than, plan.saved_up_to)
    found = await store.backend.fetchall(f"SELECT max(created_at) FROM checkpoints WHERE {where}", params)
    return str(found[0][0]) if found[0][0] is not None else ""


async def _window_end(store: SqlCheckpointStore, start: str, window: int) -> str | None:
    """The created_at about `window` rows after `start` (None: the window runs to the end)."""
    found = await store.backend.fetchall(
        "SELECT created_at FROM checkpoints WHERE created_at >= ? ORDER BY created_at LIMIT 1 OFFSET ?",
        [start, window],
    )
    if not found:
        return None
    if found[0][0] > start:
        return str(found[0][0])
    # More than `window` rows share this instant: the window takes all of them.
    found = await store.backend.fetchall(
        "SELECT min(created_at) FROM checkpoints WHERE created_at > ?", [start]
    )
    return None if found[0][0] is None else str(found[0][0])


@dataclass(frozen=True, slots=True)
class VacuumResult:
    """Sizes on disk in bytes (database and WAL) before and after, and what a reader kept."""

    before: int | None
    after: int | None
    wal_kept: int | None
    """Bytes left in the SQLite WAL because another connection's open read transaction still
    needed them: they are given back once that reader ends. None: everything went back."""


async def vacuum(store: SqlCheckpointStore) -> VacuumResult:
    """Give free space back to the operating system, and say whether a reader kept some of it."""
    before = await store.backend.database_size()
    kept = await store.backend.vacuum()
    return VacuumResult(before, await store.backend.database_size(), kept)


# -- ad-hoc SQL ------------------------------------------------------------------------------------


def run_sql(store: SqlCheckpointStore, sql: str) -> AsyncGenerator[tuple[Any, ...], None]:
    """A person's read-only query, streamed: first the column names, then the rows. Anything that
    would write is refused by the engine (see Backend.stream_readonly) and changes nothing.
    Close it (`contextlib.aclosing`) when you stop early."""
    return store.backend.stream_readonly(sql)
