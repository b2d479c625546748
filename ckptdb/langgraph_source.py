"""A LangGraph saver database as a source: what the inspection commands and the import read.

`open_langgraph_source(path_or_url)` opens a file or database written by `langgraph-checkpoint-sqlite`
or `langgraph-checkpoint-postgres` (any schema those have shipped) read-only, and refuses anything
else with one line. Everything it returns is the source's bytes as stored (see
`ckptdb.sql.langgraph_source`); nothing here needs LangGraph installed. Decoding values for a
person is `ckptdb.langgraph_decode`'s business.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from ckptdb.errors import CkptdbError
from ckptdb.model import JsonValue
from ckptdb.sql.langgraph_source import (
    PAGE,
    ChannelBlob,
    LangGraphReader,
    SourceCheckpoint,
    SourceSchema,
    SourceWrite,
)
from ckptdb.sql.store import DatabaseTarget

__all__ = [
    "ChannelBlob",
    "CheckpointNotFoundError",
    "LangGraphSource",
    "SourceCheckpoint",
    "SourceSchema",
    "SourceWrite",
    "ThreadSummary",
    "open_langgraph_source",
    "parse_metadata",
]


class CheckpointNotFoundError(CkptdbError):
    """No such thread, or no such checkpoint in it."""


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """One thread (and checkpoint namespace) of a LangGraph source, for a listing."""

    thread_id: str
    checkpoint_ns: str
    count: int
    newest_checkpoint_id: str
    step: int | None
    """The newest checkpoint's `metadata.step` (None when it has none)."""
    metadata: JsonValue
    """The newest checkpoint's metadata, parsed (None when it is absent or not JSON)."""


def parse_metadata(stored: bytes | str | None) -> JsonValue:
    """Metadata as the savers store it (JSON bytes or JSONB text), parsed; None if it is not JSON."""
    if stored is None:
        return None
    try:
        value: JsonValue = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return None
    return value


def _step(metadata: JsonValue) -> int | None:
    step = metadata.get("step") if isinstance(metadata, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


class LangGraphSource:
    """The reads of one open source; see `open_langgraph_source`."""

    def __init__(self, reader: LangGraphReader) -> None:
        self._reader = reader

    @property
    def schema(self) -> SourceSchema:
        return self._reader.schema

    async def count(self) -> int:
        return await self._reader.count()

    async def threads(self) -> AsyncGenerator[ThreadSummary, None]:
        async with aclosing(self._reader.threads()) as rows:
            async for row in rows:
                metadata = parse_metadata(row.metadata)
                yield ThreadSummary(
                    row.thread_id,
                    row.checkpoint_ns,
                    row.count,
                    row.newest_checkpoint_id,
                    _step(metadata),
                    metadata,
                )

    def checkpoints(self, *, page: int = PAGE) -> AsyncGenerator[SourceCheckpoint, None]:
        """Every checkpoint with its writes (and blobs), thread by thread, oldest id first."""
        return self._reader.checkpoints(page=page)

    def history(
        self, thread_id: str, checkpoint_ns: str = "", *, before: str | None = None, page: int = PAGE
    ) -> AsyncGenerator[SourceCheckpoint, None]:
        """One thread's checkpoints, newest first."""
        return self._reader.history(thread_id, checkpoint_ns, before=before, page=page)

    async def checkpoint(
        self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> SourceCheckpoint | None:
        return await self._reader.checkpoint(thread_id, checkpoint_ns, checkpoint_id)

    async def require(
        self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> SourceCheckpoint:
        """`checkpoint`, or CheckpointNotFoundError saying what is missing and how to list what is there."""
        found = await self._reader.checkpoint(thread_id, checkpoint_ns, checkpoint_id)
        if found is not None:
            return found
        namespace = f" (namespace {checkpoint_ns!r})" if checkpoint_ns else ""
        if checkpoint_id is None or await self._reader.checkpoint(thread_id, checkpoint_ns) is None:
            raise CheckpointNotFoundError(
                f"no thread {thread_id!r}{namespace} in this source: `ckptdb langgraph threads` lists them"
            )
        raise CheckpointNotFoundError(
            f"no checkpoint {checkpoint_id!r} in thread {thread_id!r}{namespace}: "
            "`ckptdb langgraph history` lists them"
        )


@asynccontextmanager
async def open_langgraph_source(source: str | Path | DatabaseTarget) -> AsyncIterator[LangGraphSource]:
    """A LangGraph SQLite file or PostgreSQL URL, opened read-only and closed on exit."""
    reader = await LangGraphReader.open(source)
    try:
        yield LangGraphSource(reader)
    finally:
        await reader.close()
