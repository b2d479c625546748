"""The SQL of ckptdb's LangGraph savers (`ckptdb.langgraph`), spelled once for every engine and
for both savers.

The savers hand this module rows of plain values (ids, serde (type, bytes) pairs, JSON text) and
get rows back; they never see a driver. `LanggraphTables`' methods are `Steps`: generators that
yield each statement and are sent its result, driven by `run` on the async store and by
`run_sync` on the synchronous one (`ckptdb.connect`), so neither saver writes a query of its own.
Measured, driving a one-statement `Steps` costs 2.0 us over calling the backend directly, about
1% of a flat `put` + `put_writes` (175 us at 5,700/s). Everything
goes through the store's backend: reads through
`fetchall` (a page at a time, so a paused `alist()` holds no cursor and no lock, and a WAL reader
never waits for the writer), a checkpoint with its new values and list items through `save_parts`
(one all-or-nothing request in the next group commit: concurrent `aput`s share a transaction),
pending writes through `save_rows`, deletes and copies through `write` (one transaction each).
The one thing engines spell differently, a metadata filter, is the backend's
`json_member_condition`.

Tables (schema 0005, `ckptdb/sql/schema.py`): `langgraph_checkpoints` (one row per checkpoint:
its serde blob with only its small scalar values, metadata and channel versions as JSON text),
`langgraph_values` (one row per channel and version), `langgraph_items` (the items a list value
added over the version it extends) and `langgraph_writes` (pending writes). `langgraph_threads`
(schema 0007: one row per thread and namespace, what `ckptdb langgraph threads` lists) is kept by
triggers on `langgraph_checkpoints`, so nothing here writes it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from contextlib import aclosing
from typing import Any, NamedTuple, TypeVar

import orjson

from ckptdb.errors import StoreError
from ckptdb.sql.backend import Spelling
from ckptdb.sql.store import SqlCheckpointStore
from ckptdb.sql.sync_store import SyncSqlCheckpointStore

Row = tuple[Any, ...]
Key = tuple[str, str, str, str]
"""(thread_id, checkpoint_ns, channel, version key) of one stored value."""
CheckpointKey = tuple[str, str, str]
"""(thread_id, checkpoint_ns, checkpoint_id)."""

KEYS_PER_QUERY = 200
"""Keys bound per statement (4 parameters each): far below every engine's parameter limit."""
PAGE = 100
"""Checkpoints read per query by `list_page`."""

CHECKPOINT_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata, "
    "channel_versions, inline_channels"
)
"""What `checkpoint rows` hold, in this order."""
UPSERT_CHECKPOINT = (
    "INSERT INTO langgraph_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
    "step, run_id, type, checkpoint, metadata, channel_versions, inline_channels) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
    "parent_checkpoint_id = excluded.parent_checkpoint_id, step = excluded.step, "
    "run_id = excluded.run_id, type = excluded.type, checkpoint = excluded.checkpoint, "
    "metadata = excluded.metadata, channel_versions = excluded.channel_versions, "
    "inline_channels = excluded.inline_channels"
)
"""Re-putting a checkpoint id replaces it, as LangGraph's savers do."""
INSERT_VALUE = (
    "INSERT INTO langgraph_values (thread_id, checkpoint_ns, channel, version, kind, type, value, "
    "base_version, length) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING"
)
"""A channel's version is written once (LangGraph's versions are unique per thread and namespace:
the saver draws each with a random part, so forks never share one); a list's items must never
change under the versions that extend it."""
INSERT_ITEM = (
    "INSERT INTO langgraph_items (thread_id, checkpoint_ns, channel, version, pos, type, value) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (thread_id, checkpoint_ns, channel, version, pos) DO NOTHING"
)
REQUIRE_VALUE = (
    "INSERT INTO langgraph_values (thread_id, checkpoint_ns, channel, version, kind) "
    "SELECT ?, ?, ?, ?, 'missing' WHERE NOT EXISTS (SELECT 1 FROM langgraph_values "
    "WHERE thread_id = ? AND checkpoint_ns = ? AND channel = ? AND version = ?)"
)
"""A put's check, in its own transaction, that a value it references is still stored: when it is
not, the row it inserts breaks the `kind` CHECK constraint and the whole put is rolled back
(`missing_reference`). A run that went on while another process deleted or pruned its thread
(or the checkpoint it forks from) would otherwise commit a checkpoint over a value that is gone:
unreadable. Inserts nothing when the value is there (one index lookup per reference)."""
MISSING_VALUE_MARK = "ck_langgraph_values_kind"
"""The constraint `REQUIRE_VALUE` breaks, named in the engine's error on both engines."""


def missing_reference(exc: BaseException) -> bool:
    """Whether a put failed because a value it references is gone (`REQUIRE_VALUE`)."""
    return isinstance(exc, StoreError) and MISSING_VALUE_MARK in str(exc)


_WRITE_COLUMNS = "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"
UPSERT_WRITES = (
    f"INSERT INTO langgraph_writes ({_WRITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET "
    "task_path = excluded.task_path, channel = excluded.channel, type = excluded.type, value = excluded.value"
)
"""Special writes (errors, interrupts, resumes: negative indexes) replace what the task wrote before."""
INSERT_WRITES = (
    f"INSERT INTO langgraph_writes ({_WRITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING"
)
"""Regular writes keep the first: a task retried after a crash writes the same indexes again."""
WRITE_ORDER = "task_path, task_id, idx"
"""LangGraph's `writes_sort_key`: the order a superstep applies its tasks' writes in."""


T = TypeVar("T")


class Fetch(NamedTuple):
    """A read: its rows are sent back."""

    sql: str
    params: Sequence[Any] = ()


class Write(NamedTuple):
    """Statements in one write transaction: their row counts are sent back."""

    statements: Sequence[tuple[str, Sequence[Any]]]


class Save(NamedTuple):
    """Statements over rows in the next group commit, all or nothing: None is sent back once
    they are committed."""

    parts: Sequence[tuple[str, Sequence[Row]]]


Op = Fetch | Write | Save
Steps = Generator[Op, Any, T]
"""What the saver asks of the database, written once for both savers: a generator that yields
each statement it needs and is sent its result. `run` drives it with `await` on the async store,
`run_sync` with plain calls on the synchronous one, so the SQL and the logic between statements
(paging, the parent chain, what prune keeps) exist once, and neither saver needs the other's
way of waiting (the sync saver runs no event loop; the async one blocks none)."""


async def run(store: SqlCheckpointStore, steps: Steps[T]) -> T:
    """Drive `steps` on the async store's backend."""
    backend = store.backend
    result: Any = None
    failed: StoreError | None = None
    try:
        while True:
            op = steps.send(result) if failed is None else steps.throw(failed)
            failed = None
            if isinstance(op, Save) and store._closed:
                raise StoreError("the saver is closed")
            try:
                if isinstance(op, Fetch):
                    result = await backend.fetchall(op.sql, op.params)
                elif isinstance(op, Save):
                    if len(op.parts) == 1:
                        await backend.save_rows(*op.parts[0])
                    else:
                        await backend.save_parts(op.parts)
                    result = None
                else:
                    result = await backend.write(op.statements)
            except StoreError as exc:  # the steps may answer it (a put whose reference is gone)
                failed = exc
    except StopIteration as done:
        value: T = done.value
        return value


def run_sync(store: SyncSqlCheckpointStore, steps: Steps[T]) -> T:
    """Drive `steps` on the synchronous store's backend, on the calling thread."""
    backend = store.backend
    result: Any = None
    failed: StoreError | None = None
    try:
        while True:
            op = steps.send(result) if failed is None else steps.throw(failed)
            failed = None
            if store._refusal is not None:  # closed, or opened before a fork
                raise StoreError("the saver is closed") if store._closed else store._refusal
            try:
                if isinstance(op, Fetch):
                    result = backend.fetchall(op.sql, op.params)
                elif isinstance(op, Save):
                    if len(op.parts) == 1:
                        backend.save_rows(*op.parts[0])
                    else:
                        backend.save_parts(op.parts)
                    result = None
                else:
                    result = backend.write(op.statements)
            except StoreError as exc:  # the steps may answer it (a put whose reference is gone)
                failed = exc
    except StopIteration as done:
        value: T = done.value
        return value


def _values_tuple(count: int, width: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return "(VALUES " + ", ".join([row] * count) + ")"


def _chunks(items: Sequence[Any], size: int = KEYS_PER_QUERY) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _json_text(value: Any) -> str:
    """A JSON column's value as text, however the driver returned it."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _flat(keys: Sequence[tuple[Any, ...]]) -> list[Any]:
    return [part for key in keys for part in key]


def cut_below(thread_id: str, checkpoint_ns: str, head: str) -> list[tuple[str, Sequence[Any]]]:
    """The statements that delete a namespace's checkpoints older than `head`, with their pending
    writes, and clear `head`'s parent link, which would point at nothing (as LangGraph's PostgreSQL
    saver's prune does); the second one's row count is how many checkpoints went. Values are
    collected apart (`LanggraphTables.collect_garbage`)."""
    key = (thread_id, checkpoint_ns, head)
    return [
        (
            "DELETE FROM langgraph_writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id < ?",
            key,
        ),
        (
            "DELETE FROM langgraph_checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
            "AND checkpoint_id < ?",
            key,
        ),
        (
            "UPDATE langgraph_checkpoints SET parent_checkpoint_id = NULL "
            "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
            key,
        ),
    ]


class LanggraphTables:
    """The saver's statements on its tables, as `Steps` (run them with `run` or `run_sync`: the
    store's backend brings the schema gate, group commit and error translation). `spelling` is
    the backend's, for the one thing engines spell differently (a metadata filter)."""

    def __init__(self, spelling: Spelling) -> None:
        self._spelling = spelling

    # -- writes -----------------------------------------------------------------------------------

    def put_checkpoint(
        self, checkpoint: Row, values: Sequence[Row], items: Sequence[Row], references: Sequence[Row] = ()
    ) -> Steps[None]:
        """The checkpoint row with its new values and list items: one request of the next group
        commit, all or nothing, ending with the check that every value it references but does not
        write is still stored (`REQUIRE_VALUE`: else it fails, `missing_reference`). Values and
        items go before the checkpoint, so a reader never sees a checkpoint whose values are
        missing (they are in the same transaction anyway). The check comes last: on PostgreSQL the
        checkpoint's insert first takes its thread's row lock (the thread table's trigger), which a
        prune's deletes hold (`collect_garbage`), so the check sees what such a prune left."""
        parts: list[tuple[str, Sequence[Row]]] = []
        if values:
            parts.append((INSERT_VALUE, values))
        if items:
            parts.append((INSERT_ITEM, items))
        parts.append((UPSERT_CHECKPOINT, [checkpoint]))
        if references:
            parts.append((REQUIRE_VALUE, [(*key, *key) for key in references]))
        yield Save(parts)

    def put_writes(self, rows: Sequence[Row], *, replace: bool) -> Steps[None]:
        if rows:
            yield Save([(UPSERT_WRITES if replace else INSERT_WRITES, rows)])

    # -- reads ------------------------------------------------------------------------------------

    def checkpoint(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> Steps[Row | None]:
        """One checkpoint row (`CHECKPOINT_COLUMNS`), the newest of the namespace without an id."""
        if checkpoint_id is not None:
            found = yield Fetch(
                f"SELECT {CHECKPOINT_COLUMNS} FROM langgraph_checkpoints "
                "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
                (thread_id, checkpoint_ns, checkpoint_id),
            )
        else:
            found = yield Fetch(
                f"SELECT {CHECKPOINT_COLUMNS} FROM langgraph_checkpoints "
                "WHERE thread_id = ? AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1",
                (thread_id, checkpoint_ns),
            )
        return found[0] if found else None

    def list_page(
        self,
        *,
        thread_id: str | None,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        before: str | None,
        metadata_filter: dict[str, Any],
        after: Row | None,
        limit: int,
    ) -> Steps[list[Row]]:
        """Checkpoint rows newest first (by checkpoint id, then thread and namespace, which keeps
        copies of a thread apart); `after` is the last row of the previous page (keyset paging)."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("thread_id", thread_id),
            ("checkpoint_ns", checkpoint_ns),
            ("checkpoint_id", checkpoint_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            clauses.append("checkpoint_id < ?")
            params.append(before)
        for key, value in metadata_filter.items():
            sql, values = self._spelling.json_member_condition("metadata", key, value)
            clauses.append(sql)
            params.extend(values)
        if after is not None:
            clauses.append("(checkpoint_id, thread_id, checkpoint_ns) < (?, ?, ?)")
            params.extend((after[2], after[0], after[1]))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        params.append(limit)
        rows: list[Row] = yield Fetch(
            f"SELECT {CHECKPOINT_COLUMNS} FROM langgraph_checkpoints{where} "
            "ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC LIMIT ?",
            params,
        )
        return rows

    def values(self, keys: Sequence[Key]) -> Steps[tuple[dict[Key, Row], dict[Key, list[Row]]]]:
        """The value rows (kind, type, value, base_version, length) of these keys, and for each list value
        its items in order ((pos, type, value) rows, its base versions' items first)."""
        found: dict[Key, Row] = {}
        lists: list[Key] = []
        unique = list(dict.fromkeys(keys))
        for chunk in _chunks(unique):
            rows = yield Fetch(
                "SELECT thread_id, checkpoint_ns, channel, version, kind, type, value, base_version, "
                "length FROM langgraph_values WHERE (thread_id, checkpoint_ns, channel, version) IN "
                + _values_tuple(len(chunk), 4),
                _flat(chunk),
            )
            for row in rows:
                key = (row[0], row[1], row[2], row[3])
                found[key] = tuple(row[4:])
                if row[4] == "list":
                    lists.append(key)
        items: dict[Key, list[Row]] = {key: [] for key in lists}
        for chunk in _chunks(lists):
            rows = yield Fetch(
                "WITH RECURSIVE chain(thread_id, checkpoint_ns, channel, head, version, base) AS ("
                "SELECT thread_id, checkpoint_ns, channel, version, version, base_version "
                "FROM langgraph_values WHERE (thread_id, checkpoint_ns, channel, version) IN "
                + _values_tuple(len(chunk), 4)
                + " UNION ALL SELECT v.thread_id, v.checkpoint_ns, v.channel, c.head, v.version, "
                "v.base_version FROM chain c JOIN langgraph_values v ON v.thread_id = c.thread_id "
                "AND v.checkpoint_ns = c.checkpoint_ns AND v.channel = c.channel AND v.version = c.base) "
                "SELECT c.thread_id, c.checkpoint_ns, c.channel, c.head, i.pos, i.type, i.value "
                "FROM chain c JOIN langgraph_items i ON i.thread_id = c.thread_id "
                "AND i.checkpoint_ns = c.checkpoint_ns AND i.channel = c.channel AND i.version = c.version",
                _flat(chunk),
            )
            for row in rows:
                items[(row[0], row[1], row[2], row[3])].append((row[4], row[5], row[6]))
        for segments in items.values():
            # sorted here, not by an ORDER BY: SQLite would copy every blob into a sorter
            # (alist(limit=10) of a 1,000-message chat: 20.8 ms with it)
            segments.sort(key=lambda segment: int(segment[0]))
        return found, items

    def writes(self, keys: Sequence[CheckpointKey]) -> Steps[dict[CheckpointKey, list[Row]]]:
        """Pending writes of these checkpoints, each list in LangGraph's order: (task_id, channel,
        type, value) rows."""
        found: dict[CheckpointKey, list[Row]] = {key: [] for key in keys}
        unique = list(found)
        columns = "thread_id, checkpoint_ns, checkpoint_id, task_id, channel, type, value"
        batches: list[list[Row]] = []
        if len(unique) == 1:
            batches.append(
                (
                    yield Fetch(
                        f"SELECT {columns} FROM langgraph_writes WHERE thread_id = ? AND checkpoint_ns = ? "
                        f"AND checkpoint_id = ? ORDER BY {WRITE_ORDER}",
                        unique[0],
                    )
                )
            )
        else:
            for chunk in _chunks(unique):
                batches.append(
                    (
                        yield Fetch(
                            f"SELECT {columns} FROM langgraph_writes WHERE (thread_id, checkpoint_ns, "
                            f"checkpoint_id) IN {_values_tuple(len(chunk), 3)} ORDER BY {WRITE_ORDER}",
                            _flat(chunk),
                        )
                    )
                )
        for rows in batches:
            for row in rows:
                found[(row[0], row[1], row[2])].append(tuple(row[3:]))
        return found

    def thread_ids(self) -> Steps[list[str]]:
        """Every thread with a checkpoint: a skip scan of the primary key (one seek per thread,
        never a pass over the checkpoints and their blobs), spelled the same on every engine."""
        rows = yield Fetch(
            "WITH RECURSIVE t(id) AS (SELECT min(thread_id) FROM langgraph_checkpoints UNION ALL "
            "SELECT (SELECT min(thread_id) FROM langgraph_checkpoints WHERE thread_id > t.id) FROM t "
            "WHERE t.id IS NOT NULL) SELECT id FROM t WHERE id IS NOT NULL"
        )
        return [row[0] for row in rows]

    # -- the parent chain, for DeltaChannel -------------------------------------------------------

    _CHAIN = (
        "WITH RECURSIVE chain(checkpoint_id, parent_checkpoint_id, depth) AS ("
        "SELECT checkpoint_id, parent_checkpoint_id, 0 FROM langgraph_checkpoints "
        "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? "
        "UNION ALL SELECT c.checkpoint_id, c.parent_checkpoint_id, chain.depth + 1 FROM chain "
        "JOIN langgraph_checkpoints c ON c.thread_id = ? AND c.checkpoint_ns = ? "
        "AND c.checkpoint_id = chain.parent_checkpoint_id) "
    )

    def chain(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> Steps[list[tuple[int, str, str, str]]]:
        """The checkpoint and its ancestors by `parent_checkpoint_id`: (depth, id, channel
        versions JSON, inline channels JSON), the checkpoint itself at depth 0 (one recursive
        query)."""
        rows = yield Fetch(
            self._CHAIN
            + "SELECT chain.depth, chain.checkpoint_id, c.channel_versions, c.inline_channels FROM chain "
            "JOIN langgraph_checkpoints c ON c.thread_id = ? AND c.checkpoint_ns = ? "
            "AND c.checkpoint_id = chain.checkpoint_id ORDER BY chain.depth",
            (thread_id, checkpoint_ns, checkpoint_id, thread_id, checkpoint_ns, thread_id, checkpoint_ns),
        )
        return [(int(r[0]), r[1], _json_text(r[2]), _json_text(r[3])) for r in rows]

    def stored_versions(
        self, thread_id: str, checkpoint_ns: str, channels: Sequence[str]
    ) -> Steps[set[tuple[str, str]]]:
        """(channel, version key) of the values these channels hold (not 'empty'), no blob read."""
        rows = yield Fetch(
            "SELECT channel, version FROM langgraph_values WHERE thread_id = ? AND checkpoint_ns = ? "
            f"AND channel IN ({', '.join('?' * len(channels))}) AND kind <> 'empty'",
            (thread_id, checkpoint_ns, *channels),
        )
        return {(row[0], row[1]) for row in rows}

    def chain_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, channels: Sequence[str], depth: int
    ) -> Steps[list[Row]]:
        """Writes to `channels` stored at the ancestors 1..`depth` up the chain, oldest checkpoint
        first and in LangGraph's order within each: (depth, task_id, channel, type, value)."""
        rows: list[Row] = yield Fetch(
            self._CHAIN + "SELECT chain.depth, w.task_id, w.channel, w.type, w.value FROM chain "
            "JOIN langgraph_writes w ON w.thread_id = ? AND w.checkpoint_ns = ? "
            "AND w.checkpoint_id = chain.checkpoint_id "
            f"WHERE chain.depth BETWEEN 1 AND ? AND w.channel IN ({', '.join('?' * len(channels))}) "
            "ORDER BY chain.depth DESC, w.task_path, w.task_id, w.idx",
            (
                thread_id,
                checkpoint_ns,
                checkpoint_id,
                thread_id,
                checkpoint_ns,
                thread_id,
                checkpoint_ns,
                depth,
                *channels,
            ),
        )
        return rows

    # -- deletes, copies, prune -------------------------------------------------------------------

    def delete_threads(self, thread_ids: Sequence[str]) -> Steps[None]:
        statements: list[tuple[str, Sequence[Any]]] = [
            (f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,))
            for thread_id in dict.fromkeys(thread_ids)
            for table in ("langgraph_writes", "langgraph_checkpoints", "langgraph_items", "langgraph_values")
        ]
        if statements:
            (yield Write(statements))

    def delete_for_runs(self, run_ids: Sequence[str]) -> Steps[list[str]]:
        """Delete the checkpoints these runs wrote, with their pending writes, in one transaction;
        returns the threads they were in (whose unused values `collect_garbage` then removes)."""
        run_ids = list(dict.fromkeys(run_ids))
        threads: set[str] = set()
        for chunk in _chunks(run_ids):
            marks = ", ".join("?" * len(chunk))
            rows = yield Fetch(
                f"SELECT DISTINCT thread_id FROM langgraph_checkpoints WHERE run_id IN ({marks})", chunk
            )
            threads.update(row[0] for row in rows)
            (
                yield Write(
                    [
                        (
                            "DELETE FROM langgraph_writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN "
                            "(SELECT thread_id, checkpoint_ns, checkpoint_id FROM langgraph_checkpoints "
                            f"WHERE run_id IN ({marks}))",
                            chunk,
                        ),
                        (f"DELETE FROM langgraph_checkpoints WHERE run_id IN ({marks})", chunk),
                    ]
                )
            )
        return sorted(threads)

    def copy_thread(self, source: str, target: str) -> Steps[None]:
        """Every row of a thread under another thread id, in one transaction (rows the target
        already holds stay)."""
        tables = {
            "langgraph_checkpoints": (
                "checkpoint_ns, checkpoint_id, parent_checkpoint_id, step, run_id, type, checkpoint, "
                "metadata, channel_versions, inline_channels"
            ),
            "langgraph_values": "checkpoint_ns, channel, version, kind, type, value, base_version, length",
            "langgraph_items": "checkpoint_ns, channel, version, pos, type, value",
            "langgraph_writes": "checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value",
        }
        (
            yield Write(
                [
                    (
                        f"INSERT INTO {table} (thread_id, {columns}) SELECT CAST(? AS VARCHAR), {columns} "
                        f"FROM {table} WHERE thread_id = ? ON CONFLICT DO NOTHING",
                        (target, source),
                    )
                    for table, columns in tables.items()
                ]
            )
        )

    def heads(self, thread_id: str) -> Steps[list[tuple[str, str, str]]]:
        """The newest checkpoint of each namespace of a thread: (namespace, id, metadata JSON)."""
        rows = yield Fetch(
            "SELECT c.checkpoint_ns, c.checkpoint_id, c.metadata FROM langgraph_checkpoints c "
            "JOIN (SELECT checkpoint_ns, max(checkpoint_id) AS head FROM langgraph_checkpoints "
            "WHERE thread_id = ? GROUP BY checkpoint_ns) h ON c.checkpoint_ns = h.checkpoint_ns "
            "AND c.checkpoint_id = h.head WHERE c.thread_id = ?",
            (thread_id, thread_id),
        )
        return [(r[0], r[1], _json_text(r[2])) for r in rows]

    def delete_before_heads(self, thread_id: str, heads: Sequence[tuple[str, str]]) -> Steps[None]:
        """Keep only each namespace's head (and anything newer a run saved meanwhile): older
        checkpoints and their writes go in one transaction, and a head's parent link, which would
        point at nothing, is cleared (as LangGraph's PostgreSQL saver does)."""
        statements = [statement for ns, head in heads for statement in cut_below(thread_id, ns, head)]
        if statements:
            (yield Write(statements))

    def collect_garbage(self, thread_id: str) -> Steps[int]:
        """Delete the values (and list items) of a thread that no remaining checkpoint needs: a
        value is needed when a checkpoint names its version, or a needed list extends it. Reads
        only ids and versions, never a blob; returns how many values it found unneeded.

        The deletes are one transaction, and each deletes only while the thread's checkpoints are
        those it read (their count and newest id, `THREAD_UNCHANGED`): a run that saved a
        checkpoint in between (another process forking from a checkpoint being pruned) may need a
        value read as unneeded, so then nothing goes (the next prune collects it). A put that
        comes after the deletes checks what it references itself (`REQUIRE_VALUE`). On
        PostgreSQL the transaction first locks the thread's rows of `langgraph_threads`, which a
        put's checkpoint insert takes too (its trigger): a put in flight commits before the
        deletes look, and one that comes later checks after they committed."""
        versions = yield Fetch(
            "SELECT checkpoint_ns, channel_versions, checkpoint_id FROM langgraph_checkpoints "
            "WHERE thread_id = ?",
            (thread_id,),
        )
        unchanged = (thread_id, len(versions), thread_id, max((row[2] for row in versions), default=""))
        needed: set[tuple[str, str, str]] = set()
        for ns, text, _ in versions:
            mapping = orjson.loads(text) if isinstance(text, (str, bytes)) else text
            needed.update((ns, channel, version_key(version)) for channel, version in mapping.items())
        stored = yield Fetch(
            "SELECT checkpoint_ns, channel, version, base_version FROM langgraph_values WHERE thread_id = ?",
            (thread_id,),
        )
        base = {(r[0], r[1], r[2]): r[3] for r in stored}
        todo = [key for key in needed if key in base]
        while todo:  # a needed list needs the versions it extends
            ns, channel, version = todo.pop()
            parent = base.get((ns, channel, version))
            if parent is not None and (ns, channel, parent) not in needed:
                needed.add((ns, channel, parent))
                todo.append((ns, channel, parent))
        garbage = [key for key in base if key not in needed]
        statements: list[tuple[str, Sequence[Any]]] = [
            (f"SELECT 1 FROM langgraph_threads WHERE thread_id = ?{self._spelling.row_lock}", (thread_id,))
        ]  # on PostgreSQL a put to the thread waits from here (its checkpoint's trigger takes the row)
        for chunk in _chunks(garbage):
            keys = _values_tuple(len(chunk), 3)
            for table in ("langgraph_items", "langgraph_values"):
                statements.append(
                    (
                        f"DELETE FROM {table} WHERE thread_id = ? AND (checkpoint_ns, channel, version) IN "
                        f"{keys} AND {THREAD_UNCHANGED}",
                        (thread_id, *_flat(chunk), *unchanged),
                    )
                )
        if garbage:
            (yield Write(statements))
        return len(garbage)


THREAD_UNCHANGED = (
    "(SELECT count(*) FROM langgraph_checkpoints WHERE thread_id = ?) = ? AND "
    "(SELECT coalesce(max(checkpoint_id), '') FROM langgraph_checkpoints WHERE thread_id = ?) = ?"
)
"""A thread's checkpoints are as `collect_garbage` read them: the same count and newest id."""


async def check_tables(store: SqlCheckpointStore, max_listed: int = 100) -> tuple[int, int, list[str]]:
    """For `ckptdb db check`: (LangGraph checkpoints, problems, the first `max_listed` problems)
    from ids, versions and positions alone, never a blob: every value a checkpoint names is
    stored, and every list version's segments follow on from each other down its whole chain."""
    backend = store.backend
    values = {
        (r[0], r[1], r[2], r[3]): (r[4], r[5], r[6])
        for r in await backend.fetchall(
            "SELECT thread_id, checkpoint_ns, channel, version, kind, base_version, length "
            "FROM langgraph_values"
        )
    }
    spans = {
        (r[0], r[1], r[2], r[3]): (int(r[4]), int(r[5]), int(r[6]))
        for r in await backend.fetchall(
            "SELECT thread_id, checkpoint_ns, channel, version, count(*), min(pos), max(pos) "
            "FROM langgraph_items GROUP BY thread_id, checkpoint_ns, channel, version"
        )
    }
    sound: dict[Key, bool] = {}

    def whole(key: Key) -> bool:
        """Whether this list version and every version it extends hold their segments: each one
        starts where its base's list ends and this version's list ends at its length."""
        chain: list[Key] = []
        at: Key | None = key
        while at is not None and at not in sound:
            chain.append(at)
            base = values[at][1] if at in values else None
            at = None if base is None else (key[0], key[1], key[2], base)
        ok = True if at is None else sound[at]
        for link in reversed(chain):
            stored = values.get(link)
            if stored is None or stored[0] != "list" or stored[2] is None:
                ok = False
            elif ok:
                base = stored[1]
                before = 0 if base is None else values[(link[0], link[1], link[2], base)][2]
                count, low, _ = spans.get(link, (0, 0, 0))
                if before is None or count > 1:
                    ok = False
                else:
                    ok = (low == before and stored[2] > before) if count else stored[2] == before
            sound[link] = ok
        return sound[key]

    checkpoints = found = 0
    problems: list[str] = []
    select = (
        "SELECT thread_id, checkpoint_ns, checkpoint_id, channel_versions, inline_channels "
        "FROM langgraph_checkpoints"
    )
    async with aclosing(backend.stream(select)) as rows:
        async for thread_id, ns, checkpoint_id, versions, inline in rows:
            checkpoints += 1
            mapping = orjson.loads(versions) if isinstance(versions, (str, bytes)) else versions
            inlined = set(orjson.loads(inline) if isinstance(inline, (str, bytes)) else inline)
            reasons = []
            for channel, version in mapping.items():
                if channel in inlined:
                    continue
                key = (thread_id, ns, channel, version_key(version))
                stored = values.get(key)
                if stored is None:
                    reasons.append(f"channel {channel!r} at version {key[3]!r}: its value is not stored")
                elif stored[0] == "list" and not whole(key):
                    reasons.append(f"channel {channel!r} at version {key[3]!r}: list items are missing")
            if reasons:
                found += 1
                if len(problems) < max_listed:
                    problems.append(
                        f"thread {thread_id!r} namespace {ns!r} checkpoint {checkpoint_id}: "
                        + "; ".join(reasons)
                    )
    return checkpoints, found, problems


def version_key(version: object) -> str:
    """A channel version as the `version` column holds it: LangGraph's versions are str, int or
    float (the exact value stays in the checkpoint's own blob and JSON)."""
    if isinstance(version, str):
        return version
    return repr(version)
