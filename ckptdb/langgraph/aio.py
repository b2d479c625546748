"""`AsyncCkptdbSaver`: LangGraph's async checkpoint saver on a ckptdb database (SQLite or PostgreSQL).

Opened like LangGraph's own savers::

    async with AsyncCkptdbSaver.from_conn_string("checkpoints.db") as saver:
        graph = builder.compile(checkpointer=saver)

It is ckptdb's store underneath: the same opening (a new database is created and migrated, one of
another schema refused with what to run), the same group commit (concurrent `aput`s of one process
share a transaction; on SQLite, WAL and a busy timeout, so several processes share a file without
"database is locked"), the same one-line errors. Reads take a page at a time and hold nothing
between pages: a paused `alist()` blocks no write (LangGraph's AsyncSqliteSaver holds its
connection's lock for the whole iteration). The SQL is `ckptdb.sql.langgraph`'s, the encoding
`ckptdb.langgraph.codec`'s, both shared with a synchronous saver.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ckptdb.errors import CkptdbError
from ckptdb.langgraph import codec
from ckptdb.sql.langgraph import PAGE, LanggraphTables, Row, version_key
from ckptdb.sql.store import SqlCheckpointStore

PRUNE_STRATEGIES = ("keep_latest", "delete")


def _loop_thread_error(method: str) -> asyncio.InvalidStateError:
    return asyncio.InvalidStateError(
        f"synchronous calls to AsyncCkptdbSaver are only allowed from a thread other than its event "
        f"loop's: use `await saver.a{method}(...)` or `await graph.ainvoke(...)`"
    )


class AsyncCkptdbSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpoint saver on a ckptdb store (`ckptdb.sql.store.SqlCheckpointStore`)."""

    def __init__(self, store: SqlCheckpointStore, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.store = store
        self.tables = LanggraphTables(store)
        self.lists = codec.ListVersions()
        self.loop = asyncio.get_running_loop()

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls, conn_string: str | Path, *, serde: SerializerProtocol | None = None, **options: Any
    ) -> AsyncIterator[AsyncCkptdbSaver]:
        """A saver on a file path or `sqlite:///` / `postgresql://` URL, closed on exit. `options`
        are `ckptdb.open_store`'s (`synchronous`, `busy_timeout_ms`, `create`, ...)."""
        store = await SqlCheckpointStore.open(conn_string, **options)
        try:
            yield cls(store, serde=serde)
        finally:
            await store.close()

    async def setup(self) -> None:
        """Nothing to do: the tables come from ckptdb's migrations when the store opens (kept for
        code written against LangGraph's savers, which create theirs here)."""

    def get_next_version(self, current: str | None, channel: None) -> str:
        return codec.next_version(current)

    # -- writes -----------------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        put = codec.encode_put(self.serde, self.lists, config, checkpoint, metadata, new_versions)
        await self.tables.put_checkpoint(put.checkpoint, put.values, put.items)
        for where, version, digests, segments in put.learned:
            self.lists.remember(where, version, digests, segments)
        return put.config

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        rows, replace = codec.encode_writes(self.serde, config, writes, task_id, task_path)
        await self.tables.put_writes(rows, replace=replace)

    # -- reads ------------------------------------------------------------------------------------

    async def _tuples(self, rows: Sequence[Row]) -> list[CheckpointTuple]:
        """Checkpoint rows as tuples: their values, list items and writes in three queries
        whatever the number of rows (no query per checkpoint)."""
        if not rows:
            return []
        keys = [key for row in rows for key in codec.value_keys(row)]
        values, items = await self.tables.values(keys)
        writes = await self.tables.writes([(row[0], row[1], row[2]) for row in rows])
        return [codec.decode_tuple(self.serde, row, values, items, writes) for row in rows]

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id, ns = str(configurable["thread_id"]), str(configurable.get("checkpoint_ns", ""))
        row = await self.tables.checkpoint(thread_id, ns, get_checkpoint_id(config))
        if row is None:
            return None
        return (await self._tuples([row]))[0]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Newest first, a page of `PAGE` checkpoints per query; nothing is held between pages."""
        configurable = (config or {}).get("configurable", {})
        thread_id = configurable.get("thread_id")
        ns = configurable.get("checkpoint_ns")
        remaining = limit
        after: Row | None = None
        while remaining is None or remaining > 0:
            size = PAGE if remaining is None else min(PAGE, remaining)
            rows = await self.tables.list_page(
                thread_id=None if thread_id is None else str(thread_id),
                checkpoint_ns=None if ns is None else str(ns),
                checkpoint_id=get_checkpoint_id(config) if config else None,
                before=get_checkpoint_id(before) if before else None,
                metadata_filter=dict(filter or {}),
                after=after,
                limit=size,
            )
            for found in await self._tuples(rows):
                yield found
            if len(rows) < size:
                return
            after = rows[-1]
            if remaining is not None:
                remaining -= len(rows)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """The parent chain in one recursive query, which versions hold values in one more, the
        writes along the chain in a third, and the seeds' values: four queries however long the
        chain (the base class reads every ancestor with its own `get_tuple`)."""
        if not channels:
            return {}
        channels = list(dict.fromkeys(channels))
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = str(configurable.get("checkpoint_ns", ""))
        head = await self.tables.checkpoint(thread_id, ns, get_checkpoint_id(config))
        result: dict[str, DeltaChannelHistory] = {channel: {"writes": []} for channel in channels}
        if head is None:
            return result
        chain = await self.tables.chain(thread_id, ns, head[2])
        stored = await self.tables.stored_versions(thread_id, ns, channels)
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
            for depth, task_id, channel, kind, data in await self.tables.chain_writes(
                thread_id, ns, head[2], channels, deepest
            ):
                if channel in seed_at and depth > seed_at[channel][0]:
                    continue
                write: PendingWrite = (task_id, channel, self.serde.loads_typed((kind, bytes(data))))
                result[channel]["writes"].append(write)
        for channel, checkpoint_id in inline_seeds.items():
            row = await self.tables.checkpoint(thread_id, ns, checkpoint_id)
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
            values, items = await self.tables.values(seeds)
            for seed in seeds:
                found, value = codec.load_value(self.serde, seed, values.get(seed), items)
                if found:
                    result[seed[2]]["seed"] = value
        return result

    # -- deletes, copies, prune -------------------------------------------------------------------

    async def adelete_thread(self, thread_id: str) -> None:
        await self.tables.delete_threads([str(thread_id)])
        self.lists.forget([str(thread_id)])

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return
        threads = await self.tables.delete_for_runs([str(run_id) for run_id in run_ids])
        self.lists.forget(threads)
        for thread_id in threads:
            await self.tables.collect_garbage(thread_id)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self.tables.copy_thread(str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`keep_latest`: each namespace keeps its newest checkpoint (and the values and list items
        it needs); older checkpoints and their writes go. `delete`: the threads go."""
        if strategy not in PRUNE_STRATEGIES:
            raise CkptdbError(f"unknown prune strategy {strategy!r}: use keep_latest or delete")
        thread_ids = [str(thread_id) for thread_id in dict.fromkeys(thread_ids)]
        if not thread_ids:
            return
        if strategy == "delete":
            await self.tables.delete_threads(thread_ids)
            self.lists.forget(thread_ids)
            return
        for thread_id in thread_ids:
            heads = await self.tables.heads(thread_id)
            delta = [ns for ns, _, md in heads if "counters_since_delta_snapshot" in codec.parse_json(md)]
            if delta:
                raise NotImplementedError(
                    f"keep_latest cannot prune thread {thread_id!r}: it uses a DeltaChannel, whose "
                    "state is rebuilt from older checkpoints' writes (as LangGraph's PostgreSQL saver)"
                )
            await self.tables.delete_before_heads(thread_id, [(ns, head) for ns, head, _ in heads])
            self.lists.forget([thread_id])
            await self.tables.collect_garbage(thread_id)

    # -- the synchronous methods: from other threads only, as LangGraph's AsyncSqliteSaver ----------

    def _run(self, method: str, coroutine: Any) -> Any:
        try:
            if asyncio.get_running_loop() is self.loop:
                coroutine.close()
                raise _loop_thread_error(method)
        except RuntimeError:
            pass
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        result: CheckpointTuple | None = self._run("get_tuple", self.aget_tuple(config))
        return result

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        found = self.alist(config, filter=filter, before=before, limit=limit)
        while True:
            try:
                yield self._run("list", anext(found))
            except StopAsyncIteration:
                return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        result: RunnableConfig = self._run("put", self.aput(config, checkpoint, metadata, new_versions))
        return result

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self._run("put_writes", self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._run("delete_thread", self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._run("delete_for_runs", self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._run("copy_thread", self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._run("prune", self.aprune(thread_ids, strategy=strategy))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        result: Mapping[str, DeltaChannelHistory] = self._run(
            "get_delta_channel_history", self.aget_delta_channel_history(config=config, channels=channels)
        )
        return result
