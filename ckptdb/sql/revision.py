"""Which schema revisions this ckptdb knows, without importing Alembic (kept off the hot path).

tests/test_migrations.py checks these against the Alembic tree, so they cannot drift.
"""

VERSION_TABLE = "ckptdb_alembic_version"
KNOWN_REVISIONS = (
    "0001_initial",
    "0002_checkpoint_summary_view",
    "0003_save_order",
    "0004_created_at_text_unbounded",
    "0005_langgraph_saver",
    "0006_langgraph_checkpoints_view",
    "0007_langgraph_threads",
)
HEAD = KNOWN_REVISIONS[-1]
