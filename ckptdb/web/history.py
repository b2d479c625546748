"""The checkpoint before another one of the same graph: what the checkpoint page diffs against.

The library has no call for it, and none is needed: it is the next row of a keyset page that
starts after the given checkpoint, in the order `ckptdb list` shows a graph (created_at, then id,
newest first), so it costs one index probe whatever the graph's size.
"""

from __future__ import annotations

from ckptdb.model import Checkpoint, CheckpointInfo
from ckptdb.store import CheckpointQuery, CheckpointStore, encode_cursor


async def previous_checkpoint(
    store: CheckpointStore, checkpoint: Checkpoint | CheckpointInfo
) -> Checkpoint | None:
    """The checkpoint of the same graph listed right after `checkpoint` (one step older), or None."""
    info = checkpoint.info() if isinstance(checkpoint, Checkpoint) else checkpoint
    page = await store.query(CheckpointQuery(graph_name=info.graph_name, cursor=encode_cursor(info), limit=1))
    if not page.items:
        return None
    return await store.load(page.items[0].id)
