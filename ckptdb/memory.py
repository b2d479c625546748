"""A store in a dict: for tests and short-lived runs (nothing survives the process)."""

from __future__ import annotations

import copy
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


class MemoryCheckpointStore(CheckpointStore):
    """Keeps deep copies, so a caller mutating its checkpoint later does not change what is stored."""

    def __init__(self) -> None:
        self._checkpoints: dict[str, Checkpoint] = {}

    async def save(self, checkpoint: Checkpoint) -> None:
        checkpoint.validate()
        checkpoint.to_json()  # refuse what the echo format cannot hold, as the other stores do
        self._checkpoints[checkpoint.id] = copy.deepcopy(checkpoint)

    async def save_many(self, checkpoints: Iterable[Checkpoint]) -> int:
        batch = list(checkpoints)
        for checkpoint in batch:
            checkpoint.validate()
            checkpoint.to_json()
        for checkpoint in batch:
            self._checkpoints[checkpoint.id] = copy.deepcopy(checkpoint)
        return len(batch)

    async def load(self, checkpoint_id: str) -> Checkpoint | None:
        found = self._checkpoints.get(checkpoint_id)
        return copy.deepcopy(found) if found is not None else None

    async def delete(self, checkpoint_id: str) -> None:
        self._checkpoints.pop(checkpoint_id, None)

    async def clear(self) -> None:
        self._checkpoints.clear()

    async def query(self, query: CheckpointQuery | None = None, **filters: Any) -> CheckpointPage:
        query = resolve_query(query, filters)
        matching = [
            cp.info()
            for cp in self._checkpoints.values()
            if query.matches(cp.info()) and all(f.matches(cp.state_snapshot) for f in query.state)
        ]
        matching.sort(key=newest_first_key, reverse=True)
        return page_from_sorted(matching, query)
