"""The reads behind the inspection commands (`list`, `graphs`, `stats`, `pending`, `rm`, `sql`):
every statement they run, returning typed records, so that `ckptdb.inspect` decides what to show
and never spells SQL or touches the engine.

Everything is engine-neutral SQL with `?` parameters (user text is always bound, never pasted
into SQL); what differs between engines (byte lengths, read-only enforcement, sizes) comes from
the store's Backend. Reads that can be large stream from one cursor; the summaries aggregate
inside the database and return one row per graph.

How the hot paths stay fast on a million rows:
- per-graph walks use a skip scan over the (graph_name, created_at, id) index (a recursive CTE
  that hops from one graph name to the next), so `pending` costs one index probe per graph;
- `graphs` counts through that index, and sums bytes in one sequential scan: the CTE is
  MATERIALIZED so the byte length is computed before the GROUP BY sort (otherwise SQLite sorts
  the whole JSON text) and the table is read in storage order, not by index lookups;
- "newest" in `pending` is the save order (save_seq, then created_at and id; see
  ckptdb.sql.rows.NEXT_SAVE_SEQ), not created_at alone, which is the saving host's clock.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from itertools import pairwise
from typing import Any, NamedTuple

from ckptdb.errors import DamagedRowError
from ckptdb.model import Checkpoint, CheckpointInfo, InterruptType, Timestamp
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.backend import IntegrityCheck, WalStatus
from ckptdb.sql.store import SqlCheckpointStore
from ckptdb.store import CheckpointQuery

__all__ = [
    "DatabaseSpace",
    "GraphCount",
    "IntegrityCheck",
    "ListRecord",
    "OnDamaged",
    "StoredTime",
    "TypeCount",
    "WalStatus",
    "change_token",
    "damaged_newest",
    "database_space",
    "estimated_bytes",
    "exact_sizes",
    "existing_ids",
    "graph_bytes",
    "graph_counts",
    "last_saved_of_types",
    "read_only_query",
    "report_damaged",
    "row_bytes_sql",
    "stream_infos",
    "stream_list_records",
    "type_counts",
    "wal_status",
    "walk_times",
]

OnDamaged = Callable[[DamagedRowError], None]
"""Gets each damaged row a read meets (a hand edit in SQL, a torn page: see `ckptdb db check`),
which the read then skips; without one, the first damaged row raises DamagedRowError."""


def report_damaged(on_damaged: OnDamaged | None, exc: DamagedRowError) -> None:
    """Hand a damaged row to `on_damaged`, or raise it when there is none."""
    if on_damaged is None:
        raise exc
    on_damaged(exc)


# -- listing ---------------------------------------------------------------------------------------


async def stream_infos(
    store: SqlCheckpointStore, query: CheckpointQuery, *, on_damaged: OnDamaged | None = None
) -> AsyncGenerator[CheckpointInfo, None]:
    """Summaries newest first, streamed from one cursor: memory stays flat for any number of rows."""
    sql, params = store.select_infos(query, limit=query.limit)
    stream = store.backend.stream(sql, params)
    async with aclosing(stream):
        async for row in stream:
            try:
                info = sqlrows.info_from_row(row)
            except DamagedRowError as exc:
                report_damaged(on_damaged, exc)
                continue
            yield info


ListRecord = tuple[str, str, str, str, int, str]
"""(id, graph_name, current_node, interrupt_type, step_count, created_at as echo wrote it)."""


_UTC_COLUMN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z", re.ASCII)
"""The form of every `created_at` ckptdb writes (fixed width, nine fraction digits)."""


async def stream_list_records(
    store: SqlCheckpointStore, query: CheckpointQuery, *, on_damaged: OnDamaged | None = None
) -> AsyncGenerator[ListRecord, None]:
    """`stream_infos` as plain values ready to print, about twice as fast per row: the time text is
    cut from the stored UTC text (`rows.echo_time`) instead of going through a Timestamp and back.

    A row that does not look as ckptdb writes it (a time of another form, a negative step count,
    anything unusual in the rarely set columns) goes through the full decoding, which names what
    is damaged; a damaged row is skipped (see `OnDamaged`), never printed as if it were sound."""
    sql, params = store.select_infos(query, limit=query.limit)
    stream = store.backend.stream(sql, params)
    echo_time = sqlrows.echo_time
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
                report_damaged(on_damaged, exc)
                continue
            text = original if original is not None else echo_time(created)
            yield (cid, graph, node, kind, info.step_count, text)


async def existing_ids(store: SqlCheckpointStore, ids: Sequence[str]) -> set[str]:
    """Which of these ids are stored, a few queries for many ids."""
    known: set[str] = set()
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), sqlrows.IDS_PER_QUERY):
        chunk = unique[start : start + sqlrows.IDS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        found = await store.backend.fetchall(f"SELECT id FROM checkpoints WHERE id IN ({marks})", chunk)
        known.update(row[0] for row in found)
    return known


# -- per-graph summaries ---------------------------------------------------------------------------

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


class GraphCount(NamedTuple):
    """One graph's number of checkpoints and its min() and max() `created_at` as stored (text,
    which a damaged row may have made anything: see `walk_times`)."""

    graph_name: str
    checkpoints: int
    oldest_text: str
    newest_text: str


async def graph_counts(store: SqlCheckpointStore) -> list[GraphCount]:
    """Every graph, from the index alone (a skip scan: a few probes per graph)."""
    rows = await store.backend.fetchall(_GRAPH_COUNTS)
    return [
        GraphCount(str(name), int(count), str(oldest), str(newest)) for name, count, oldest, newest in rows
    ]


async def change_token(store: SqlCheckpointStore) -> object | None:
    """Equal between two calls only if nothing was committed in between (see
    Backend.change_token); None when the engine cannot tell, and nothing read may be cached."""
    return await store.backend.change_token()


class StoredTime(NamedTuple):
    """A row's id and its `created_at` column value as stored (anything, in a damaged row)."""

    checkpoint_id: str
    created_at: object


async def walk_times(
    store: SqlCheckpointStore, graph_name: str, interrupt_type: str | None = None, *, newest_first: bool
) -> AsyncGenerator[StoredTime, None]:
    """The rows of one graph (and interrupt type) by `created_at` from one end, streamed a hundred
    at a time: a caller looking for the first readable time past damaged ones stops early."""
    where, params = "graph_name = ?", [graph_name]
    if interrupt_type is not None:
        where, params = "graph_name = ? AND interrupt_type = ?", [graph_name, interrupt_type]
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT id, created_at FROM checkpoints WHERE {where} ORDER BY created_at {order}, id {order}"
    async with aclosing(store.backend.stream(sql, params, batch=100)) as rows:
        async for checkpoint_id, text in rows:
            yield StoredTime(checkpoint_id, text)


def row_bytes_sql(store: SqlCheckpointStore) -> str:
    """SQL for the bytes of a row's JSON as stored: state, path, pending action and extra fields."""
    length = store.backend.byte_length_sql
    return (
        f"{length('state_snapshot')} + {length('path')} + "
        f"coalesce({length('pending_action')}, 0) + coalesce({length('extra')}, 0)"
    )


async def exact_sizes(store: SqlCheckpointStore) -> dict[str, int]:
    """Bytes of every graph's JSON, summed in one sequential scan."""
    # MATERIALIZED: the byte length is computed while scanning, so the GROUP BY sorts small
    # (name, number) records; flattened, SQLite would carry every row's JSON text into the sort.
    rows = await store.backend.fetchall(
        f"WITH sized AS MATERIALIZED (SELECT graph_name, {row_bytes_sql(store)} AS data_bytes "
        "FROM checkpoints) "
        "SELECT graph_name, sum(data_bytes) FROM sized GROUP BY graph_name"
    )
    return {str(name): int(total) for name, total in rows}


async def graph_bytes(store: SqlCheckpointStore, graph_name: str) -> int:
    """Bytes of one graph's JSON, summed exactly."""
    found = await store.backend.fetchall(
        f"SELECT sum({row_bytes_sql(store)}) FROM checkpoints WHERE graph_name = ?", [graph_name]
    )
    return int(found[0][0] or 0)


async def estimated_bytes(
    store: SqlCheckpointStore, graph_name: str, oldest: Timestamp, newest: Timestamp, buckets: int
) -> int:
    """Bytes of one graph's JSON, estimated: its time range cut into `buckets` buckets, each
    counted as its number of rows times the size of its first row (a stratified sample)."""
    start = oldest.unix_nanos
    end = newest.unix_nanos + 1
    edges = [Timestamp(start + (end - start) * i // buckets).utc_text() for i in range(buckets + 1)]
    bounds = sorted(set(pairwise(edges)))  # equal edges when the range is short
    bucket = "graph_name = ? AND created_at >= buckets.lo AND created_at < buckets.hi"
    rows = await store.backend.fetchall(
        f"WITH buckets(lo, hi) AS (VALUES {', '.join(['(?, ?)'] * len(bounds))}) "
        f"SELECT (SELECT count(*) FROM checkpoints WHERE {bucket}), "
        f"(SELECT {row_bytes_sql(store)} FROM checkpoints WHERE {bucket} ORDER BY created_at, id LIMIT 1) "
        "FROM buckets",
        [value for pair in bounds for value in pair] + [graph_name, graph_name],
    )
    return sum(int(count) * int(size) for count, size in rows if count)


class TypeCount(NamedTuple):
    """The checkpoints of one graph with one interrupt type, and their min() and max() `created_at`
    as stored (text, possibly damaged)."""

    graph_name: str
    interrupt_type: str
    checkpoints: int
    oldest_text: object
    newest_text: object


async def type_counts(store: SqlCheckpointStore) -> list[TypeCount]:
    """Counts by graph and interrupt type, by graph name then type: one sequential scan
    (MATERIALIZED, for the same reason as in `exact_sizes`)."""
    rows = await store.backend.fetchall(
        "WITH r AS MATERIALIZED (SELECT graph_name, interrupt_type, created_at FROM checkpoints) "
        "SELECT graph_name, interrupt_type, count(*), min(created_at), max(created_at) "
        "FROM r GROUP BY graph_name, interrupt_type"
    )
    return [
        TypeCount(name, kind, int(count), oldest, newest)
        for name, kind, count, oldest, newest in sorted(rows)
    ]


class DatabaseSpace(NamedTuple):
    """The database's size on disk and the free space inside it (None: the engine cannot say),
    and the SQLite WAL's state (None on PostgreSQL)."""

    database_bytes: int | None
    free_bytes: int | None
    wal: WalStatus | None


async def database_space(store: SqlCheckpointStore) -> DatabaseSpace:
    backend = store.backend
    return DatabaseSpace(
        await backend.database_size(), await backend.free_bytes(), await backend.wal_status()
    )


async def wal_status(store: SqlCheckpointStore) -> WalStatus | None:
    """SQLite: the WAL, and whether a reader starves its checkpoints; None on PostgreSQL."""
    return await store.backend.wal_status()


# -- the last checkpoint of each graph -------------------------------------------------------------

_SOUND_TIME = "length(created_at) = 30 AND created_at LIKE '____-__-__T__:__:__._________Z'"
"""SQL true for a `created_at` of the form ckptdb writes (fixed width, nine fraction digits)."""


async def last_saved_of_types(
    store: SqlCheckpointStore, kinds: Sequence[InterruptType], *, on_damaged: OnDamaged | None = None
) -> list[Checkpoint]:
    """Each graph's last saved checkpoint, when its interrupt type is one of `kinds`; last saved
    first. A damaged one goes to `on_damaged` and is left out."""
    columns = ", ".join(f"c.{name}" for name in sqlrows.CONTENT_COLUMNS)
    # Rows without a save order (imported, hand-made) fall back to created_at, where a damaged
    # time ('yesterday') sorts after every real one as text: it must not stand for its graph's
    # newest checkpoint. The last row of sound form is the graph's state.
    rows = await store.backend.fetchall(
        f"""{_GRAPH_WALK}
SELECT {columns} FROM graphs JOIN checkpoints c ON c.id = (
    SELECT id FROM checkpoints WHERE graph_name = graphs.name AND {_SOUND_TIME}
    ORDER BY {sqlrows.ORDER_NEWEST_FIRST} LIMIT 1
)
WHERE c.interrupt_type IN ({", ".join("?" * len(kinds))})
ORDER BY c.save_seq DESC, c.created_at DESC, c.id DESC""",
        [kind.value for kind in kinds],
    )
    found = []
    for row in rows:
        try:
            found.append(sqlrows.from_row(row))
        except DamagedRowError as exc:
            report_damaged(on_damaged, exc)
    return found


async def damaged_newest(store: SqlCheckpointStore) -> list[StoredTime]:
    """The graphs whose newest row in save order has a damaged `created_at` (one more index probe
    per graph): `last_saved_of_types` passed over it, and a person should hear of it."""
    rows = await store.backend.fetchall(
        f"""{_GRAPH_WALK}
SELECT c.id, c.created_at FROM graphs JOIN checkpoints c ON c.id = (
    SELECT id FROM checkpoints WHERE graph_name = graphs.name ORDER BY {sqlrows.ORDER_NEWEST_FIRST} LIMIT 1
)
WHERE NOT ({_SOUND_TIME.replace("created_at", "c.created_at")})"""
    )
    return [StoredTime(checkpoint_id, text) for checkpoint_id, text in rows]


# -- ad-hoc SQL ------------------------------------------------------------------------------------


def read_only_query(store: SqlCheckpointStore, sql: str) -> AsyncGenerator[tuple[Any, ...], None]:
    """A person's query, streamed: first the column names, then the rows. Anything that would
    write is refused by the engine (see Backend.stream_readonly) and changes nothing."""
    return store.backend.stream_readonly(sql)
