"""What both ckptdb savers do, written once: each LangGraph method as `Steps` (a generator of the
statements it needs, `ckptdb.sql.langgraph`), which `AsyncCkptdbSaver` drives with `await` and
`CkptdbSaver` with plain calls. Encoding is `ckptdb.langgraph.codec`'s; only how a statement
reaches the database differs between the two savers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ckptdb.errors import CkptdbError, StoreError
from ckptdb.langgraph import codec
from ckptdb.sql.langgraph import PAGE, LanggraphTables, Row, Steps, missing_reference, version_key

PRUNE_STRATEGIES = ("keep_latest", "delete")


class ListQuery:
    """One `list()` call's filters and where its paging stands (keyset: the last row returned)."""

    __slots__ = ("after", "before", "checkpoint_id", "filter", "ns", "remaining", "thread_id")

    def __init__(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> None:
        configurable = (config or {}).get("configurable", {})
        thread_id, ns = configurable.get("thread_id"), configurable.get("checkpoint_ns")
        self.thread_id = None if thread_id is None else str(thread_id)
        self.ns = None if ns is None else str(ns)
        self.checkpoint_id = get_checkpoint_id(config) if config else None
        self.before = get_checkpoint_id(before) if before else None
        self.filter = dict(filter or {})
        self.remaining = limit
        self.after: Row | None = None

    @property
    def done(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


class SaverSteps:
    """The savers' shared logic, mixed into both (before `BaseCheckpointSaver`): reads `serde`
    on every call, so `with_allowlist()`'s clone decodes with its own serde."""

    serde: SerializerProtocol
    tables: LanggraphTables
    lists: codec.ListVersions

    def get_next_version(self, current: str | None, channel: None) -> str:
        return codec.next_version(current)

    # -- writes -----------------------------------------------------------------------------------

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Steps[RunnableConfig]:
        put = codec.encode_put(self.serde, self.lists, config, checkpoint, metadata, new_versions)
        try:
            yield from self.tables.put_checkpoint(put.checkpoint, put.values, put.items, put.references)
        except StoreError as exc:
            if not missing_reference(exc):
                raise
            # A value this checkpoint would reference went meanwhile (another process deleted or
            # pruned the thread, or the checkpoint this run forks from): the list cache is stale
            # for the thread, and the checkpoint is written whole, as LangGraph's savers write
            # every checkpoint, so it reads back exactly.
            self.lists.forget([put.checkpoint[0]])
            put = codec.encode_put(
                self.serde, self.lists, config, checkpoint, metadata, new_versions, whole=True
            )
            yield from self.tables.put_checkpoint(put.checkpoint, put.values, put.items, put.references)
        for where, version, digests, segments in put.learned:
            self.lists.remember(where, version, digests, segments)
        return put.config

    def _put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> Steps[None]:
        rows, replace = codec.encode_writes(self.serde, config, writes, task_id, task_path)
        yield from self.tables.put_writes(rows, replace=replace)

    # -- reads ------------------------------------------------------------------------------------

    def _tuples(self, rows: Sequence[Row]) -> Steps[list[CheckpointTuple]]:
        """Checkpoint rows as tuples: their values, list items and writes in three queries
        whatever the number of rows (no query per checkpoint)."""
        if not rows:
            return []
        keys = [key for row in rows for key in codec.value_keys(row)]
        values, items = yield from self.tables.values(keys)
        writes = yield from self.tables.writes([(row[0], row[1], row[2]) for row in rows])
        return [codec.decode_tuple(self.serde, row, values, items, writes) for row in rows]

    def _get_tuple(self, config: RunnableConfig) -> Steps[CheckpointTuple | None]:
        configurable = config["configurable"]
        thread_id, ns = str(configurable["thread_id"]), str(configurable.get("checkpoint_ns", ""))
        checkpoint_id = get_checkpoint_id(config)
        row = yield from self.tables.checkpoint(thread_id, ns, checkpoint_id)
        if row is None:
            if checkpoint_id is None:
                # The thread is gone (or new): another process may have deleted it, which this
                # process's list cache cannot know. A graph asks this before it runs a thread, so
                # from here its lists are stored whole, never over a version that went with it.
                self.lists.forget([thread_id])
            return None
        return (yield from self._tuples([row]))[0]

    def _list_page(self, query: ListQuery) -> Steps[list[CheckpointTuple]]:
        """The next page of a `list()`, newest first, `PAGE` checkpoints at most: the savers loop
        over pages and hold nothing (no cursor, no lock) between them."""
        size = PAGE if query.remaining is None else min(PAGE, query.remaining)
        rows = yield from self.tables.list_page(
            thread_id=query.thread_id,
            checkpoint_ns=query.ns,
            checkpoint_id=query.checkpoint_id,
            before=query.before,
            metadata_filter=query.filter,
            after=query.after,
            limit=size,
        )
        found = yield from self._tuples(rows)
        if len(rows) < size:
            query.remaining = 0
        else:
            query.after = rows[-1]
            if query.remaining is not None:
                query.remaining -= len(rows)
        return found

    def _delta_channel_history(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Steps[Mapping[str, DeltaChannelHistory]]:
        """The parent chain in one recursive query, which versions hold values in one more, the
        writes along the chain in a third, and the seeds' values: four queries however long the
        chain (the base class reads every ancestor with its own `get_tuple`)."""
        if not channels:
            return {}
        channels = list(dict.fromkeys(channels))
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = str(configurable.get("checkpoint_ns", ""))
        tables = self.tables
        head = yield from tables.checkpoint(thread_id, ns, get_checkpoint_id(config))
        result: dict[str, DeltaChannelHistory] = {channel: {"writes": []} for channel in channels}
        if head is None:
            return result
        chain = yield from tables.chain(thread_id, ns, head[2])
        stored = yield from tables.stored_versions(thread_id, ns, channels)
        seed_at: dict[str, tuple[int, str]] = {}
        inline_seeds: dict[str, str] = {}  # channel -> the checkpoint whose own blob holds it
        for depth, checkpoint_id, versions_json, inline_json in chain[1:]:
            versions = codec.parse_json(versions_json)
            inline = set(codec.parse_json(inline_json))
            for channel in channels:
                if channel in seed_at:
                    continue
                if channel in inline:
                    seed_at[channel] = (depth, "")
                    inline_seeds[channel] = checkpoint_id
                    continue
                if channel not in versions:
                    continue
                key = version_key(versions[channel])
                if (channel, key) in stored:
                    seed_at[channel] = (depth, key)
            if len(seed_at) == len(channels):
                break
        deepest = max(
            (seed_at[channel][0] if channel in seed_at else len(chain) for channel in channels), default=0
        )
        if deepest >= 1:
            for depth, task_id, channel, kind, data in (
                yield from tables.chain_writes(thread_id, ns, head[2], channels, deepest)
            ):
                if channel in seed_at and depth > seed_at[channel][0]:
                    continue
                write: PendingWrite = (task_id, channel, self.serde.loads_typed((kind, bytes(data))))
                result[channel]["writes"].append(write)
        for channel, checkpoint_id in inline_seeds.items():
            row = yield from tables.checkpoint(thread_id, ns, checkpoint_id)
            if row is not None:
                result[channel]["seed"] = self.serde.loads_typed((row[4], bytes(row[5])))["channel_values"][
                    channel
                ]
        if seed_at:
            seeds = [
                (thread_id, ns, channel, version)
                for channel, (_, version) in seed_at.items()
                if channel not in inline_seeds
            ]
            values, items = yield from tables.values(seeds)
            for seed in seeds:
                found, value = codec.load_value(self.serde, seed, values.get(seed), items)
                if found:
                    result[seed[2]]["seed"] = value
        return result

    # -- deletes, copies, prune -------------------------------------------------------------------

    def _delete_thread(self, thread_id: str) -> Steps[None]:
        yield from self.tables.delete_threads([str(thread_id)])
        self.lists.forget([str(thread_id)])

    def _delete_for_runs(self, run_ids: Sequence[str]) -> Steps[None]:
        if not run_ids:
            return
        threads = yield from self.tables.delete_for_runs([str(run_id) for run_id in run_ids])
        self.lists.forget(threads)
        for thread_id in threads:
            yield from self.tables.collect_garbage(thread_id)

    def _copy_thread(self, source_thread_id: str, target_thread_id: str) -> Steps[None]:
        yield from self.tables.copy_thread(str(source_thread_id), str(target_thread_id))

    def _prune(self, thread_ids: Sequence[str], strategy: str) -> Steps[None]:
        """`keep_latest`: each namespace keeps its newest checkpoint (and the values and list items
        it needs); older checkpoints and their writes go. `delete`: the threads go."""
        if strategy not in PRUNE_STRATEGIES:
            raise CkptdbError(f"unknown prune strategy {strategy!r}: use keep_latest or delete")
        thread_ids = [str(thread_id) for thread_id in dict.fromkeys(thread_ids)]
        if not thread_ids:
            return
        if strategy == "delete":
            yield from self.tables.delete_threads(thread_ids)
            self.lists.forget(thread_ids)
            return
        for thread_id in thread_ids:
            heads = yield from self.tables.heads(thread_id)
            delta = [ns for ns, _, md in heads if "counters_since_delta_snapshot" in codec.parse_json(md)]
            if delta:
                raise NotImplementedError(
                    f"keep_latest cannot prune thread {thread_id!r}: it uses a DeltaChannel, whose "
                    "state is rebuilt from older checkpoints' writes (as LangGraph's PostgreSQL saver)"
                )
            yield from self.tables.delete_before_heads(thread_id, [(ns, head) for ns, head, _ in heads])
            self.lists.forget([thread_id])
            yield from self.tables.collect_garbage(thread_id)
