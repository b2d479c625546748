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
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptdb.errors import CkptdbError
from ckptdb.model import Checkpoint, CheckpointInfo, InterruptType, JsonValue, Timestamp
from ckptdb.state_filter import lookup, parse_path
from ckptdb.store import CheckpointQuery

if TYPE_CHECKING:
    from ckptdb.sql.store import SqlCheckpointStore

__all__ = [
    "WAITING_TYPES",
    "GraphPrune",
    "GraphStats",
    "GraphSummary",
    "NotFoundError",
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


async def open_existing(target: str | Path) -> SqlCheckpointStore:
    """Open a store for inspection: never creates a missing database (it says it is missing)."""
    from ckptdb.sql.store import open_store

    return await open_store(target, create=False)


# -- parsing what a person types -----------------------------------------------------------------

_AGE_PART = re.compile(r"(\d+)\s*([wdhms])", re.ASCII | re.IGNORECASE)
_AGE = re.compile(r"\s*(?:\d+\s*[wdhms]\s*)+", re.ASCII | re.IGNORECASE)
_UNIT_NS = {"w": 7 * 86_400 * NS, "d": 86_400 * NS, "h": 3_600 * NS, "m": 60 * NS, "s": NS}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NAIVE_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?", re.ASCII)
_TIME_HELP = (
    "use a date (2026-11-03), a date and time (2026-11-03T14:30:00Z; without a zone it is UTC) "
    "or an age (7d, 24h, 30m, 45s, 2w, 1d12h)"
)


def parse_age(text: str, *, what: str = "age") -> int:
    """`7d`, `24h`, `30m` (minutes), `45s`, `2w`, or combined `1d12h`: nanoseconds."""
    if _AGE.fullmatch(text) is None:
        raise CkptdbError(f"{what}: cannot read {text!r} as an age: use 7d, 24h, 30m, 45s, 2w or 1d12h")
    return sum(int(n) * _UNIT_NS[unit.lower()] for n, unit in _AGE_PART.findall(text))


_FIRST = Timestamp.parse("0001-01-01T00:00:00Z").unix_nanos
_LAST = Timestamp.parse("9999-12-31T23:59:59.999999999Z").unix_nanos


def parse_time(text: str, *, what: str = "time", now: Timestamp | None = None) -> Timestamp:
    """An instant from an ISO date or date-time (UTC when no zone is given) or an age before now."""
    found = _parse_time(text, what, now)
    if not _FIRST <= found.unix_nanos <= _LAST:
        raise CkptdbError(f"{what}: {text!r} is outside the years 0001-9999 that checkpoint times can hold")
    return found


def _parse_time(text: str, what: str, now: Timestamp | None) -> Timestamp:
    stripped = text.strip()
    if stripped.lower() == "now":
        return now or Timestamp.now()
    if _AGE.fullmatch(stripped):
        return Timestamp((now or Timestamp.now()).unix_nanos - parse_age(stripped, what=what))
    candidate = stripped.replace(" ", "T", 1) if _DATE.match(stripped) else stripped
    if _DATE.fullmatch(candidate):
        candidate += "T00:00:00Z"
    elif _NAIVE_RFC3339.fullmatch(candidate):
        candidate += "Z"
    try:
        return Timestamp.parse(candidate).with_format()
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(candidate)  # the forms RFC 3339 refuses: 14:30, +0200, ...
    except ValueError:
        raise CkptdbError(f"{what}: cannot read {text!r} as a time: {_TIME_HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Timestamp.from_datetime(moment)


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


async def list_checkpoints(
    store: SqlCheckpointStore, query: CheckpointQuery
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
            yield sqlrows.info_from_row(row)


ListRecord = tuple[str, str, str, str, int, str]
"""(id, graph_name, current_node, interrupt_type, step_count, created_at as echo wrote it)."""


async def list_records(store: SqlCheckpointStore, query: CheckpointQuery) -> AsyncGenerator[ListRecord, None]:
    """`list_checkpoints` as plain values ready to print, about twice as fast per row: the time
    text is cut from the stored UTC text instead of going through a Timestamp and back."""
    sql, params = store.select_infos(query, limit=query.limit)
    stream = store.backend.stream(sql, params)
    async with aclosing(stream):
        async for cid, graph, node, step, created, kind, original, extra in stream:
            if extra is not None:  # a step_count above 2^63-1 lives in `extra`
                from ckptdb.echo_json import loads_trusted

                step = loads_trusted(extra).get("step_count", step)
            yield (cid, graph, node, kind, step, original if original is not None else echo_time(created))


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
    oldest: Timestamp
    newest: Timestamp
    data_bytes: int
    """Bytes of the graph's checkpoint JSON as stored (before page overhead and indexes)."""
    data_bytes_exact: bool = True
    """False when `data_bytes` is an estimate (see `graphs`)."""


async def _graph_counts(store: SqlCheckpointStore) -> list[tuple[str, int, str, str]]:
    rows = await store.backend.fetchall(_GRAPH_COUNTS)
    return [(str(name), int(count), str(oldest), str(newest)) for name, count, oldest, newest in rows]


async def graphs(store: SqlCheckpointStore, *, exact: bool | None = None) -> list[GraphSummary]:
    """Each graph with its number of checkpoints, oldest and newest time and data size, by name.

    Counts and times are exact and come from the index alone. Sizes are exact up to
    EXACT_SIZE_ROWS checkpoints in all (or with `exact=True`): one scan of every row, which on
    SQLite costs about 0.6 s per million rows. Above that a graph's size is estimated: its time
    range is cut into SIZE_BUCKETS buckets, and each bucket counts as its number of rows times the
    size of its first row (a stratified sample: bursts and quiet spells weigh what they hold).
    Cost: one walk of the index plus SIZE_BUCKETS row reads per graph.
    """
    counts = await _graph_counts(store)
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
        for name, count, oldest, newest in counts:
            if count <= SIZE_BUCKETS:
                sizes[name] = await _graph_bytes(store, name)
            else:
                sizes[name] = await _estimated_bytes(store, name, oldest, newest)
                estimated.add(name)
    return sorted(
        (
            GraphSummary(
                name,
                count,
                Timestamp.from_utc_text(oldest),
                Timestamp.from_utc_text(newest),
                sizes.get(name, 0),
                name not in estimated,
            )
            for name, count, oldest, newest in counts
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


async def _estimated_bytes(store: SqlCheckpointStore, graph_name: str, oldest: str, newest: str) -> int:
    start = Timestamp.from_utc_text(oldest).unix_nanos
    end = Timestamp.from_utc_text(newest).unix_nanos + 1
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

    def add(self, kind: InterruptType, count: int, oldest: Timestamp, newest: Timestamp) -> None:
        self.checkpoints += count
        self.by_type[kind] += count
        self.oldest = oldest if self.oldest is None else min(self.oldest, oldest)
        self.newest = newest if self.newest is None else max(self.newest, newest)


@dataclass(slots=True)
class Stats:
    """Totals for the whole database; `by_graph` is sorted by name, `total` sums every graph."""

    database: str
    database_bytes: int | None
    free_bytes: int | None
    total: GraphStats
    by_graph: list[GraphStats]


async def stats(store: SqlCheckpointStore) -> Stats:
    """Counts by graph and interrupt type with oldest/newest times, and the database's size.

    One sequential scan (MATERIALIZED, for the same reason as in `graphs`); no time budget here.
    """
    rows = await store.backend.fetchall(
        "WITH r AS MATERIALIZED (SELECT graph_name, interrupt_type, created_at FROM checkpoints) "
        "SELECT graph_name, interrupt_type, count(*), min(created_at), max(created_at) "
        "FROM r GROUP BY graph_name, interrupt_type"
    )
    total = GraphStats("")
    by_graph: dict[str, GraphStats] = {}
    for name, kind_text, count, oldest_text, newest_text in rows:
        kind = _TYPE_NAMES[kind_text]
        oldest, newest = Timestamp.from_utc_text(oldest_text), Timestamp.from_utc_text(newest_text)
        by_graph.setdefault(name, GraphStats(name)).add(kind, int(count), oldest, newest)
        total.add(kind, int(count), oldest, newest)
    return Stats(
        store.target.display(),
        await store.backend.database_size(),
        await store.backend.free_bytes(),
        total,
        [by_graph[name] for name in sorted(by_graph)],
    )


async def pending(store: SqlCheckpointStore) -> list[Checkpoint]:
    """The checkpoints waiting for a person: each graph's last saved checkpoint, when its interrupt
    type is toolapproval or userrequest (a graph that moved on past an approval is not waiting).
    Last saved first."""
    from ckptdb.sql import rows as sqlrows

    # rows.COLUMNS without `source` (the last): the order rows.from_row reads.
    columns = ", ".join(f"c.{name}" for name in sqlrows.COLUMNS[:-1])
    rows = await store.backend.fetchall(
        f"""{_GRAPH_WALK}
SELECT {columns} FROM graphs JOIN checkpoints c ON c.id = (
    SELECT id FROM checkpoints WHERE graph_name = graphs.name ORDER BY {sqlrows.ORDER_NEWEST_FIRST} LIMIT 1
)
WHERE c.interrupt_type IN (?, ?)
ORDER BY c.save_seq DESC, c.created_at DESC, c.id DESC""",
        [kind.value for kind in WAITING_TYPES],
    )
    return [sqlrows.from_row(row) for row in rows]


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
    if vacuum:
        await backend.vacuum()
    return PruneResult(
        deleted, await backend.free_bytes(), size_before, await backend.database_size(), vacuum
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


async def vacuum(store: SqlCheckpointStore) -> tuple[int | None, int | None]:
    """Give free space back to the operating system; (size before, size after) in bytes."""
    before = await store.backend.database_size()
    await store.backend.vacuum()
    return before, await store.backend.database_size()


# -- ad-hoc SQL ------------------------------------------------------------------------------------


def run_sql(store: SqlCheckpointStore, sql: str) -> AsyncGenerator[tuple[Any, ...], None]:
    """A person's read-only query, streamed: first the column names, then the rows. Anything that
    would write is refused by the engine (see Backend.stream_readonly) and changes nothing.
    Close it (`contextlib.aclosing`) when you stop early."""
    return store.backend.stream_readonly(sql)
