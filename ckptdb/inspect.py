"""Inspection and pruning on an SQL store: what the `ckptdb list/show/graphs/stats/pending/rm/prune/sql`
commands do, as library calls.

This module decides what to show and what a prune selects; every statement it needs is run by
the SQL layer (`ckptdb.sql.inspection` for the reads, `ckptdb.sql.maintenance` for prune and
vacuum), which returns typed records. How those stay fast on a million rows is told there.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptdb.errors import CkptdbError, DamagedRowError
from ckptdb.model import Checkpoint, CheckpointInfo, InterruptType, JsonValue, Timestamp
from ckptdb.sql import inspection, maintenance
from ckptdb.sql.inspection import ListRecord, OnDamaged, WalStatus, report_damaged
from ckptdb.sql.maintenance import VacuumResult
from ckptdb.sql.rows import echo_time
from ckptdb.sql.store import SqlCheckpointStore, open_store
from ckptdb.state_filter import lookup, parse_path
from ckptdb.store import CheckpointQuery
from ckptdb.times import parse_age, parse_time

__all__ = [
    "WAITING_TYPES",
    "GraphPrune",
    "GraphStats",
    "GraphSummary",
    "GraphsCache",
    "ListRecord",
    "NotFoundError",
    "OnDamaged",
    "PrunePlan",
    "PruneResult",
    "Stats",
    "VacuumResult",
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


def list_checkpoints(
    store: SqlCheckpointStore, query: CheckpointQuery, *, on_damaged: OnDamaged | None = None
) -> AsyncGenerator[CheckpointInfo, None]:
    """Summaries newest first, streamed from one cursor: memory stays flat for any number of rows.
    A damaged row goes to `on_damaged` (see `OnDamaged`) and is skipped.

    Close it (`contextlib.aclosing`) before the store when you may stop early (`list | head`):
    the cursor is closed with it, not left for the event loop to finalize after the store closed.
    """
    return inspection.stream_infos(store, query, on_damaged=on_damaged)


def list_records(
    store: SqlCheckpointStore, query: CheckpointQuery, *, on_damaged: OnDamaged | None = None
) -> AsyncGenerator[ListRecord, None]:
    """`list_checkpoints` as plain values ready to print (`ListRecord`), about twice as fast per
    row; a damaged row is skipped (see `OnDamaged`), never printed as if it were sound. Close it
    as `list_checkpoints`."""
    return inspection.stream_list_records(store, query, on_damaged=on_damaged)


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

EXACT_SIZE_ROWS = 250_000
"""Up to this many checkpoints `graphs` sums every row's bytes (one scan); above, it estimates."""
SIZE_BUCKETS = 256
"""Time buckets per graph when estimating its size (graphs with fewer rows are summed exactly)."""


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
        self, oldest_text: object, newest_text: object, graph_name: str, interrupt_type: str | None = None
    ) -> tuple[Timestamp | None, Timestamp | None]:
        oldest, newest = _utc_time(oldest_text), _utc_time(newest_text)
        if oldest is None:
            oldest = await self._walk(graph_name, interrupt_type, newest_first=False)
        if newest is None:
            newest = await self._walk(graph_name, interrupt_type, newest_first=True)
        return oldest, newest

    async def _walk(
        self, graph_name: str, interrupt_type: str | None, *, newest_first: bool
    ) -> Timestamp | None:
        walk = inspection.walk_times(self.store, graph_name, interrupt_type, newest_first=newest_first)
        async with aclosing(walk) as rows:
            async for row in rows:
                found = _utc_time(row.created_at)
                if found is not None:
                    return found
                if row.checkpoint_id not in self.reported:
                    self.reported.add(row.checkpoint_id)
                    report_damaged(
                        self.on_damaged,
                        DamagedRowError(row.checkpoint_id, f"created_at {row.created_at!r} is not a time"),
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
    counts = await inspection.graph_counts(store)
    bounds = _Bounds(store, on_damaged)
    times = {
        graph.graph_name: await bounds.resolve(graph.oldest_text, graph.newest_text, graph.graph_name)
        for graph in counts
    }
    total = sum(graph.checkpoints for graph in counts)
    if exact is None:
        sampled_reads = sum(min(graph.checkpoints, SIZE_BUCKETS) for graph in counts)
        # Many small graphs: sampling would read most rows one by one; the scan is cheaper then.
        exact = total <= EXACT_SIZE_ROWS or sampled_reads * 4 > total
    estimated: set[str] = set()
    if exact:
        sizes = await inspection.exact_sizes(store)
    else:
        sizes = {}
        for graph in counts:
            name = graph.graph_name
            oldest, newest = times[name]
            if graph.checkpoints <= SIZE_BUCKETS or oldest is None or newest is None:
                sizes[name] = await inspection.graph_bytes(store, name)
            else:
                sizes[name] = await inspection.estimated_bytes(store, name, oldest, newest, SIZE_BUCKETS)
                estimated.add(name)
    return sorted(
        (
            GraphSummary(
                graph.graph_name,
                graph.checkpoints,
                *times[graph.graph_name],
                sizes.get(graph.graph_name, 0),
                graph.graph_name not in estimated,
            )
            for graph in counts
        ),
        key=lambda summary: summary.graph_name,
    )


class GraphsCache:
    """`graphs()` for a long-lived reader (the web view), recomputed only when the database changed.

    On a million rows `graphs()` takes about 220 ms (the per-graph counts walk every index entry,
    the size estimate reads 256 rows per graph); a page asking again with nothing committed gets
    the same answer for one `change_token` read. Every call re-validates: the engine's token
    changes with any commit, from this process or another, so a save, a delete or a prune shows
    on the very next call, never a stale count. Where the engine has no exact token (PostgreSQL)
    every call reads afresh. The damaged rows the read met are handed to `on_damaged` again on
    every answer, as a fresh read would.
    """

    def __init__(self) -> None:
        self._token: object | None = None
        self._summaries: list[GraphSummary] = []
        self._damaged: list[DamagedRowError] = []

    async def graphs(
        self, store: SqlCheckpointStore, *, on_damaged: OnDamaged | None = None
    ) -> list[GraphSummary]:
        # The token is read before the summary, so a commit landing during the read changes it
        # again and the next call reads afresh.
        token = await inspection.change_token(store)
        if token is None or token != self._token:
            damaged: list[DamagedRowError] = []
            self._token = None
            self._summaries = await graphs(store, on_damaged=damaged.append)
            self._damaged, self._token = damaged, token
        for exc in self._damaged:
            report_damaged(on_damaged, exc)
        return list(self._summaries)


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

    One sequential scan; no time budget here. Damaged times go to `on_damaged`, as in `graphs`,
    and count without a time.
    """
    total = GraphStats("")
    by_graph: dict[str, GraphStats] = {}
    bounds = _Bounds(store, on_damaged)
    for counted in await inspection.type_counts(store):
        kind = _TYPE_NAMES[counted.interrupt_type]  # the table's CHECK constraint admits no other value
        oldest, newest = await bounds.resolve(
            counted.oldest_text, counted.newest_text, counted.graph_name, counted.interrupt_type
        )
        by_graph.setdefault(counted.graph_name, GraphStats(counted.graph_name)).add(
            kind, counted.checkpoints, oldest, newest
        )
        total.add(kind, counted.checkpoints, oldest, newest)
    space = await inspection.database_space(store)
    return Stats(
        store.target.display(),
        space.database_bytes,
        space.free_bytes,
        total,
        [by_graph[name] for name in sorted(by_graph)],
        space.wal,
    )


async def pending(store: SqlCheckpointStore, *, on_damaged: OnDamaged | None = None) -> list[Checkpoint]:
    """The checkpoints waiting for a person: each graph's last saved checkpoint, when its interrupt
    type is toolapproval or userrequest (a graph that moved on past an approval is not waiting).
    Last saved first. A damaged one goes to `on_damaged` and is left out; so does a graph's
    newest row whose `created_at` is damaged (the last row of sound form stands for its graph)."""
    if on_damaged is not None:
        for top in await inspection.damaged_newest(store):
            on_damaged(DamagedRowError(top.checkpoint_id, f"created_at {top.created_at!r} is not a time"))
    return await inspection.last_saved_of_types(store, WAITING_TYPES, on_damaged=on_damaged)


# -- deleting --------------------------------------------------------------------------------------


async def remove(store: SqlCheckpointStore, ids: Sequence[str], *, missing_ok: bool = False) -> int:
    """Delete these checkpoints in one transaction; returns how many existed.

    Unless `missing_ok`, an unknown id deletes nothing and raises NotFoundError, so a typo in a
    list of ids never half-applies.
    """
    unique = list(dict.fromkeys(ids))
    if not missing_ok:
        known = await inspection.existing_ids(store, unique)
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

    def selections(self) -> list[maintenance.PruneSelection]:
        """Each graph's rows to delete, as the SQL layer selects them."""
        return [
            maintenance.PruneSelection(graph.graph_name, graph.keep_from, self.older_than, self.saved_up_to)
            for graph in self.graphs
        ]


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
    saved_up_to = await maintenance.highest_save_seq(store)
    if graph_names:
        counts = []
        for name in dict.fromkeys(graph_names):
            count = await maintenance.graph_checkpoints(store, name)
            if not count:
                raise NotFoundError(
                    f"no graph named {name!r} in {store.target.display()} (`ckptdb graphs` lists them)"
                )
            counts.append((name, count))
    else:
        counts = [(graph.graph_name, graph.checkpoints) for graph in await inspection.graph_counts(store)]
    plans: list[GraphPrune] = []
    for name, count in counts:
        keep_from: tuple[int, str, str] | None = None
        if keep_last is not None and keep_last > 0:
            if count <= keep_last:
                continue
            keep_from = await maintenance.keep_from(store, name, keep_last)
            if keep_from is None:
                continue
        selection = maintenance.PruneSelection(name, keep_from, older_than, saved_up_to)
        found = await maintenance.deletable(store, selection)
        if found.checkpoints:
            plans.append(GraphPrune(name, count, found.checkpoints, found.data_bytes, keep_from))
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
    transaction per window (see `ckptdb.sql.maintenance.delete_in_windows`); rows saved after the
    plan was made are never deleted. `progress` gets the running total after each window.
    """
    deleted = await maintenance.delete_in_windows(store, plan.selections(), window=window, progress=progress)
    space = await maintenance.reclaim(store, vacuum=vacuum)
    return PruneResult(deleted, space.free_bytes, space.size_before, space.size_after, vacuum, space.wal_kept)


async def vacuum(store: SqlCheckpointStore) -> VacuumResult:
    """Give free space back to the operating system, and say whether a reader kept some of it."""
    return await maintenance.vacuum(store)


# -- ad-hoc SQL ------------------------------------------------------------------------------------


def run_sql(store: SqlCheckpointStore, sql: str) -> AsyncGenerator[tuple[Any, ...], None]:
    """A person's read-only query, streamed: first the column names, then the rows. Anything that
    would write is refused by the engine (see Backend.stream_readonly) and changes nothing.
    Close it (`contextlib.aclosing`) when you stop early."""
    return inspection.read_only_query(store, sql)
