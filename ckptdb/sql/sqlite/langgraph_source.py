"""What a LangGraph SQLite saver database looks like, as `langgraph-checkpoint-sqlite` created it.

Every release from 1.0 to 3.1 created the same two tables (`checkpoints`, `writes`); 3.1 added
`writes.task_path` (an `ALTER TABLE` on first use). Channel values live inside the checkpoint
blob, so there is no blob table to read. The SQL that reads them is engine-neutral and lives in
`ckptdb.sql.langgraph_source`; only the catalog and the names differ per engine.
"""

from __future__ import annotations

SAVER = "langgraph-checkpoint-sqlite"

COLUMNS_SQL = (
    "SELECT m.name, p.name FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p "
    "WHERE m.type = 'table' AND m.name IN ('checkpoints', 'writes')"
)
"""(table, column) of the saver's tables, whatever else the file holds."""

MIGRATION_SQL: str | None = None
"""The SQLite saver keeps no record of its schema version: the columns are the version."""

CHECKPOINT_COLUMNS = frozenset(
    ("thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "type", "checkpoint", "metadata")
)
WRITES_TABLE = "writes"
WRITE_VALUE = "value"
WRITE_COLUMNS = frozenset(
    ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "type", WRITE_VALUE)
)
BLOB_COLUMNS: frozenset[str] | None = None
"""No `checkpoint_blobs` table: the values are inside the checkpoint."""

BLOBS_SQL: str | None = None

NEWEST_MIGRATION: int | None = None
