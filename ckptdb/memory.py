"""A store in a dict: for tests and short-lived runs (nothing survives the process)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from ckptdb.model import Checkpoint
from ckptdb.store import (
    CheckpointPage,
    CheckpointQuery,
    CheckpointStore,
    newest_first_key,
    page_from_sorted,
    resolve_query,
)
from ckptdb.sync_store import SyncCheckpointStore


def _copy(checkpoint: Checkpoint) -> Checkpoint:
    """An independent copy through the echo codec: refuses what the echo format cannot hold, as the
    other stores do, and gives back exactly what a file store would (copy.deepcopy would also hit
    Python's recursion limit on deep states at about half the depth the codec accepts)."""
    return Checkpoint.from_json(checkpoint.to_json())


class SyncMemoryCheckpointStore(SyncCheckpointStore):
    """Keeps private copies, so a caller mutating its checkpoint later does not change what is stored.

    Like the SQL stores, it counts saves: `latest` is the checkpoint saved last (a re-save counts
    as a new save), whatever its created_at says; `list`/`query` keep echo's created_at order.
    One lock guards the dict, so threads may share the store (copies are made outside it).
    """

    def __init__(self) -> None:
        self._checkpoints: dict[str, Checkpoint] = {}
        self._save_seq: dict[str, int] = {}
        self._saves = 0
        self._lock = threading.Lock()

    def _put(self, batch: list[Checkpoint]) -> None:
        with self._lock:
            for checkpoint in batch:
                self._saves += 1
                self._checkpoints[checkpoint.id] = checkpoint
                self._save_seq[checkpoint.id] = self._saves

    def save(self, checkpoint: Checkpoint) -> None:
        self._put([_copy(checkpoint)])

    def save_many(self, checkpoints: Iterable[Checkpoint]) -> int:
        batch = [_copy(checkpoint) for checkpoint in checkpoints]
        self._put(batch)
        return len(batch)

    def latest(self, graph_name: str) -> Checkpoint | None:
        with self._lock:
            saved = [cid for cid, cp in self._checkpoints.items() if cp.graph_name == graph_name]
            if not saved:
                return None
            found = self._checkpoints[max(saved, key=self._save_seq.__getitem__)]
        return _copy(found)

    def load(self, checkpoint_id: str) -> Checkpoint | None:
        found = self._checkpoints.get(checkpoint_id)
        return _copy(found) if found is not None else None

    def delete(self, checkpoint_id: str) -> None:
        with self._lock:
            self._checkpoints.pop(checkpoint_id, None)
            self._save_seq.pop(checkpoint_id, None)

    def clear(self) -> None:
        with self._lock:
            self._checkpoints.clear()
            self._save_seq.clear()

    def query(self, query: CheckpointQuery | None = None, **filters: Any) -> CheckpointPage:
        query = resolve_query(query, filters)
        with self._lock:
            stored = list(self._checkpoints.values())
        matching = [
            cp.info()
            for cp in stored
            if query.matches(cp.info()) and all(f.matches(cp.state_snapshot) for f in query.state)
        ]
        matching.sort(key=newest_first_key, reverse=True)
        return page_from_sorted(matching, query)


class MemoryCheckpointStore(CheckpointStore):
    """`SyncMemoryCheckpointStore` behind the async interface: every call is a dict operation, so
    it runs right on the loop (no thread hop)."""

    def __init__(self) -> None:
        self._store = SyncMemoryCheckpointStore()

    async def save(self, checkpoint: Checkpoint) -> None:
        self._store.save(checkpoint)

    async def save_many(self, checkpoints: Iterable[Checkpoint]) -> int:
        return self._store.save_many(checkpoints)

    async def latest(self, graph_name: str) -> Checkpoint | None:
        return self._store.latest(graph_name)

    async def load(self, checkpoint_id: str) -> Checkpoint | None:
        return self._store.load(checkpoint_id)

    async def delete(self, checkpoint_id: str) -> None:
        self._store.delete(checkpoint_id)

    async def clear(self) -> None:
        self._store.clear()

    async def query(self, query: CheckpointQuery | None = None, **filters: Any) -> CheckpointPage:
        return self._store.query(query, **filters)
