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
`ckptdb.langgraph.codec`'s and the logic between statements `ckptdb.langgraph.steps`', all
shared with the synchronous `CkptdbSaver`.
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
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ckptdb.langgraph import codec
from ckptdb.langgraph.steps import ListQuery, SaverSteps
from ckptdb.sql.langgraph import LanggraphTables, run
from ckptdb.sql.store import SqlCheckpointStore


def _loop_thread_error(method: str) -> asyncio.InvalidStateError:
    return asyncio.InvalidStateError(
        f"synchronous calls to AsyncCkptdbSaver are only allowed from a thread other than its event "
        f"loop's: use `await saver.a{method}(...)` or `await graph.ainvoke(...)`"
    )


class AsyncCkptdbSaver(SaverSteps, BaseCheckpointSaver[str]):
    """A LangGraph checkpoint saver on a ckptdb store (`ckptdb.sql.store.SqlCheckpointStore`)."""

    def __init__(self, store: SqlCheckpointStore, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.store = store
        self.tables = LanggraphTables(store.backend)
        self.lists = codec.list_versions_for(store.target.url)
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

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await run(self.store, self._put(config, checkpoint, metadata, new_versions))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await run(self.store, self._put_writes(config, writes, task_id, task_path))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await run(self.store, self._get_tuple(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Newest first, a page of `PAGE` checkpoints per query; nothing is held between pages."""
        query = ListQuery(config, filter, before, limit)
        while not query.done:
            for found in await run(self.store, self._list_page(query)):
                yield found

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await run(self.store, self._delta_channel_history(config, channels))

    async def adelete_thread(self, thread_id: str) -> None:
        await run(self.store, self._delete_thread(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await run(self.store, self._delete_for_runs(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await run(self.store, self._copy_thread(source_thread_id, target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`keep_latest`: each namespace keeps its newest checkpoint (and the values and list items
        it needs); older checkpoints and their writes go. `delete`: the threads go."""
        await run(self.store, self._prune(thread_ids, strategy))

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
