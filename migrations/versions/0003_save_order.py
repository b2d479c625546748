"""The save order: a `save_seq` column that every save sets from a per-database counter.

`created_at` is the saving host's clock: a host running an hour fast made its old checkpoint the
"latest" and let `prune --keep-last` delete the newer ones saved after it, and two saves at the
same instant fell back to id order. "Latest", prune and pending now order by (save_seq,
created_at, id); see ckptdb.sql.rows.NEXT_SAVE_SEQ.

Existing rows get 0, "saved before ckptdb recorded an order": they keep among themselves the
(created_at, id) order ckptdb called newest before this revision, and every save from now on
comes after them. Adding a column with a constant default rewrites no row on either engine. On
PostgreSQL the counter is the sequence `checkpoints_save_seq`, owned by the column.

Downgrade drops the indexes, the column and the sequence; every other column is untouched.

Revision ID: 0003_save_order
Revises: 0002_checkpoint_summary_view
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0003_save_order"
down_revision = "0002_checkpoint_summary_view"
branch_labels = None
depends_on = None


# The counter: SQLite reads max(save_seq) + 1 inside its write transaction; PostgreSQL has a
# sequence (concurrent transactions there would read the same max).
_COUNTER_UP = {
    "sqlite": [],
    "postgresql": ["CREATE SEQUENCE checkpoints_save_seq AS BIGINT OWNED BY checkpoints.save_seq"],
}
_COUNTER_DOWN = {"sqlite": [], "postgresql": ["DROP SEQUENCE IF EXISTS checkpoints_save_seq"]}


def _for_dialect(by_dialect: dict[str, list[str]]) -> list[str]:
    """The statements for the engine being migrated; an unknown engine is an error, not a guess."""
    name = op.get_bind().dialect.name
    if name not in by_dialect:
        raise NotImplementedError(f"no save order counter for the {name} dialect")
    return by_dialect[name]


def upgrade() -> None:
    # Plain ALTER TABLE, not batch mode: SQLite adds a column with a constant default in place,
    # where a batch rebuild would copy the table (and have to drop the checkpoint_summary view).
    op.execute("ALTER TABLE checkpoints ADD COLUMN save_seq BIGINT NOT NULL DEFAULT 0")
    for statement in _for_dialect(_COUNTER_UP):
        op.execute(statement)
    op.create_index("ix_checkpoints_save_seq_created_at_id", "checkpoints", ["save_seq", "created_at", "id"])
    op.create_index(
        "ix_checkpoints_graph_name_save_seq_created_at_id",
        "checkpoints",
        ["graph_name", "save_seq", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_checkpoints_graph_name_save_seq_created_at_id", table_name="checkpoints")
    op.drop_index("ix_checkpoints_save_seq_created_at_id", table_name="checkpoints")
    # SQLite 3.35+ drops a column in place (no index or view uses it any more).
    op.execute("ALTER TABLE checkpoints DROP COLUMN save_seq")
    for statement in _for_dialect(_COUNTER_DOWN):  # OWNED BY: already gone with its column
        op.execute(statement)
