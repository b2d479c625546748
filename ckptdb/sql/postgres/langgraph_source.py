"""What a LangGraph PostgreSQL saver database looks like, as `langgraph-checkpoint-postgres`
created it.

1.0 created `checkpoints`, `checkpoint_blobs` and `checkpoint_writes` without a version table;
from 2.0 on, `checkpoint_migrations` holds one row per migration run (0 to 4 in 2.0, 0 to 9 in
3.x, where 9 added `checkpoint_writes.task_path`). The checkpoint is JSONB holding the
primitive channel values inline; the others are rows of `checkpoint_blobs`, one per channel and
version, which `BLOBS_SQL` finds as the saver's own SELECT does (the checkpoint's
`channel_versions` joined to the blobs).
"""

from __future__ import annotations

SAVER = "langgraph-checkpoint-postgres"

COLUMNS_SQL = (
    "SELECT table_name::text, column_name::text FROM information_schema.columns "
    "WHERE table_schema = current_schema() "
    "AND table_name IN ('checkpoints', 'checkpoint_writes', 'checkpoint_blobs', 'checkpoint_migrations')"
)

MIGRATION_SQL: str | None = "SELECT max(v) FROM checkpoint_migrations"

NEWEST_MIGRATION: int | None = 9
"""The last entry of MIGRATIONS in langgraph-checkpoint-postgres 3.2 (`task_path`): a database
migrated further was written by a saver whose schema this reader has not seen."""

TASK_PATH_MIGRATION = 9

CHECKPOINT_COLUMNS = frozenset(
    ("thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "type", "checkpoint", "metadata")
)
WRITES_TABLE = "checkpoint_writes"
WRITE_VALUE = "blob"
WRITE_COLUMNS = frozenset(
    ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "type", WRITE_VALUE)
)
BLOB_COLUMNS: frozenset[str] | None = frozenset(
    ("thread_id", "checkpoint_ns", "channel", "version", "type", "blob")
)

BLOBS_SQL: str | None = (
    "SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, b.channel, b.version, b.type, b.blob "
    "FROM checkpoints AS c "
    "CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v(channel, version) "
    "JOIN checkpoint_blobs AS b ON b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns "
    "AND b.channel = v.channel AND b.version = v.version "
    "WHERE (c.thread_id, c.checkpoint_ns, c.checkpoint_id) >= (?, ?, ?) "
    "AND (c.thread_id, c.checkpoint_ns, c.checkpoint_id) <= (?, ?, ?)"
)
"""The blobs of the checkpoints between two keys (a page), each with its checkpoint's key."""
