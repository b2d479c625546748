"""`CkptdbSaver`: LangGraph's synchronous checkpoint saver on a ckptdb database (SQLite or
PostgreSQL), for `graph.invoke` / `graph.stream`.

Opened like LangGraph's SqliteSaver and PostgresSaver::

    with CkptdbSaver.from_conn_string("checkpoints.db") as saver:
        graph = builder.compile(checkpointer=saver)

It is ckptdb's synchronous store underneath (`ckptdb.connect`): no event loop and no thread of its
own, so it works from any thread, a running event loop's included (Jupyter). One saver serves every
thread of a process: each reads on a connection of its own, and concurrent `put`s are committed
together (group commit), each on the calling thread. The statements and the logic between them are
`ckptdb.langgraph.steps`', the encoding `ckptdb.langgraph.codec`'s, the same as
`AsyncCkptdbSaver`'s, so each saver reads what the other wrote.

Its async methods run the sync ones on a worker thread (`asyncio.to_thread`), so a graph run with
`ainvoke` works and never blocks its loop; LangGraph's SqliteSaver raises NotImplementedError
there instead. For async code `AsyncCkptdbSaver` is the faster choice (no hand-off per call).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ckptdb.langgraph import codec
from ckptdb.langgraph.steps import ListQuery, SaverSteps
from ckptdb.sql.langgraph import LanggraphTables, run_sync
from ckptdb.sql.sync_store import SyncSqlCheckpointStore


class CkptdbSaver(SaverSteps, BaseCheckpointSaver[str]):
    """A LangGraph checkpoint saver on ckptdb's synchronous store (`SyncSqlCheckpointStore`)."""

    def __init__(self, store: SyncSqlCheckpointStore, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.store = store
        self.tables = LanggraphTables(store.backend)
        self.lists = codec.list_versions_for(store.target.url)

    @classmethod
    @contextmanager
    def from_conn_string(
        cls, conn_string: str | Path, *, serde: SerializerProtocol | None = None, **options: Any
    ) -> Iterator[CkptdbSaver]:
        """A saver on a file path or `sqlite:///` / `postgresql://` URL, closed on exit. `options`
        are `ckptdb.connect`'s (`synchronous`, `busy_timeout_ms`, `create`, ...)."""
        store = SyncSqlCheckpointStore.open(conn_string, **options)
        try:
            yield cls(store, serde=serde)
        finally:
            store.close()

    def setup(self) -> None:
        """Nothing to do: the tables come from ckptdb's migrations when the store opens (kept for
        code written against LangGraph's savers, which create theirs here)."""

    # -- the methods, on the calling thread -------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return run_sync(self.store, self._put(config, checkpoint, metadata, new_versions))

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        run_sync(self.store, self._put_writes(config, writes, task_id, task_path))

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return run_sync(self.store, self._get_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Newest first, a page of `PAGE` checkpoints per query; nothing is held between pages (a
        paused iteration blocks no write, as it does with LangGraph's SqliteSaver)."""
        query = ListQuery(config, filter, before, limit)
        while not query.done:
            yield from run_sync(self.store, self._list_page(query))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return run_sync(self.store, self._delta_channel_history(config, channels))

    def delete_thread(self, thread_id: str) -> None:
        run_sync(self.store, self._delete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        run_sync(self.store, self._delete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        run_sync(self.store, self._copy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`keep_latest`: each namespace keeps its newest checkpoint (and the values and list items
        it needs); older checkpoints and their writes go. `delete`: the threads go."""
        run_sync(self.store, self._prune(thread_ids, strategy))

    # -- the async methods: the sync ones on a worker thread --------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """`list`'s pages, each fetched on a worker thread."""
        query = ListQuery(config, filter, before, limit)
        while not query.done:
            for found in await asyncio.to_thread(run_sync, self.store, self._list_page(query)):
                yield found

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await asyncio.to_thread(self.get_delta_channel_history, config=config, channels=channels)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)
