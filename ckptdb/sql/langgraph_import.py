"""The SQL of importing a LangGraph saver database into ckptdb's LangGraph tables
(`ckptdb.langgraph_import`), spelled once for every engine.

Reads are by key, a few hundred keys a statement, only for the checkpoints of the batch at hand:
what the target already holds of them, so the import can say "unchanged" or "conflict" instead of
writing. A batch's rows (values, list segments, checkpoints, pending writes) are one request of the
store's group commit: all of the batch or none of it, so a kill leaves whole checkpoints only.
Nothing here ever replaces a row: every insert is `ON CONFLICT DO NOTHING` (the import writes only
checkpoints it found absent; one that a saver wrote meanwhile stays as that saver wrote it).
"""

from __future__ import annotations

from collections.abc import Sequence

from ckptdb.sql.langgraph import (
    INSERT_ITEM,
    INSERT_VALUE,
    INSERT_WRITES,
    CheckpointKey,
    Key,
    Row,
    _chunks,
    _flat,
    _values_tuple,
)
from ckptdb.sql.store import SqlCheckpointStore

__all__ = ["ImportTables"]

INSERT_CHECKPOINT = (
    "INSERT INTO langgraph_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
    "step, run_id, type, checkpoint, metadata, channel_versions, inline_channels) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO NOTHING"
)


class ImportTables:
    """What an import reads from and writes to one opened ckptdb store."""

    def __init__(self, store: SqlCheckpointStore) -> None:
        self._backend = store.backend

    async def checkpoints(self, keys: Sequence[CheckpointKey]) -> dict[CheckpointKey, Row]:
        """The stored checkpoints among these keys: (parent, type, checkpoint, metadata, channel
        versions, inline channels), the checkpoint as bytes."""
        found: dict[CheckpointKey, Row] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            rows = await self._backend.fetchall(
                "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
                "metadata, channel_versions, inline_channels FROM langgraph_checkpoints "
                "WHERE (thread_id, checkpoint_ns, checkpoint_id) IN " + _values_tuple(len(chunk), 3),
                _flat(chunk),
            )
            for row in rows:
                found[(row[0], row[1], row[2])] = (row[3], row[4], bytes(row[5]), *row[6:])
        return found

    async def writes(self, keys: Sequence[CheckpointKey]) -> dict[CheckpointKey, set[Row]]:
        """The stored pending writes of these checkpoints: (task_id, task_path, idx, channel,
        type, value bytes) sets."""
        found: dict[CheckpointKey, set[Row]] = {key: set() for key in keys}
        for chunk in _chunks(list(found)):
            rows = await self._backend.fetchall(
                "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, "
                "value FROM langgraph_writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN "
                + _values_tuple(len(chunk), 3),
                _flat(chunk),
            )
            for row in rows:
                found[(row[0], row[1], row[2])].add(
                    (row[3], row[4], int(row[5]), row[6], row[7], bytes(row[8]))
                )
        return found

    async def values(self, keys: Sequence[Key]) -> dict[Key, Row]:
        """The stored value rows among these keys: (kind, type, value bytes or None, base
        version, length)."""
        found: dict[Key, Row] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            rows = await self._backend.fetchall(
                "SELECT thread_id, checkpoint_ns, channel, version, kind, type, value, base_version, "
                "length FROM langgraph_values WHERE (thread_id, checkpoint_ns, channel, version) IN "
                + _values_tuple(len(chunk), 4),
                _flat(chunk),
            )
            for row in rows:
                value = None if row[6] is None else bytes(row[6])
                length = None if row[8] is None else int(row[8])
                found[(row[0], row[1], row[2], row[3])] = (row[4], row[5], value, row[7], length)
        return found

    async def write(
        self, values: Sequence[Row], items: Sequence[Row], checkpoints: Sequence[Row], writes: Sequence[Row]
    ) -> None:
        """One batch, all or nothing, in the next group commit (values before the checkpoints
        naming them, though one transaction makes the order invisible anyway)."""
        parts: list[tuple[str, Sequence[Row]]] = [
            (sql, rows)
            for sql, rows in (
                (INSERT_VALUE, values),
                (INSERT_ITEM, items),
                (INSERT_CHECKPOINT, checkpoints),
                (INSERT_WRITES, writes),
            )
            if rows
        ]
        if parts:
            await self._backend.save_parts(parts)
