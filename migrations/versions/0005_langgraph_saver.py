"""The LangGraph checkpoint saver's tables (`ckptdb.langgraph`), beside ckptdb's own.

Four tables, all named `langgraph_*` (LangGraph's own savers use `checkpoints`, `writes` and
`checkpoint_*`): checkpoints (metadata as JSON text, step and run as columns, the checkpoint without
its channel values as the saver's serde wrote it), values per channel and version, the items of
list values (a growing chat history stores each message once), and pending writes. Nothing in
ckptdb's `checkpoints` table changes. See ckptdb/sql/schema.py for the column choices (and why
three of the tables are WITHOUT ROWID on SQLite).

Downgrade drops the four tables (and whatever LangGraph stored in them).

Revision ID: 0005_langgraph_saver
Revises: 0004_created_at_text_unbounded
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_langgraph_saver"
down_revision = "0004_created_at_text_unbounded"
branch_labels = None
depends_on = None

JsonText = sa.Text().with_variant(postgresql.JSON(none_as_null=True), "postgresql")
BytewiseText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "langgraph_checkpoints",
        sa.Column("thread_id", BytewiseText, nullable=False),
        sa.Column("checkpoint_ns", BytewiseText, nullable=False),
        sa.Column("checkpoint_id", BytewiseText, nullable=False),
        sa.Column("parent_checkpoint_id", sa.Text(), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
        sa.Column("metadata", JsonText, nullable=False),
        sa.Column("channel_versions", JsonText, nullable=False),
        sa.Column("inline_channels", JsonText, nullable=False),
        sa.PrimaryKeyConstraint(
            "thread_id", "checkpoint_ns", "checkpoint_id", name="pk_langgraph_checkpoints"
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_langgraph_checkpoints_checkpoint_id", "langgraph_checkpoints", ["checkpoint_id"])
    op.create_index("ix_langgraph_checkpoints_run_id", "langgraph_checkpoints", ["run_id"])
    op.create_table(
        "langgraph_values",
        sa.Column("thread_id", BytewiseText, nullable=False),
        sa.Column("checkpoint_ns", BytewiseText, nullable=False),
        sa.Column("channel", BytewiseText, nullable=False),
        sa.Column("version", BytewiseText, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("base_version", sa.Text(), nullable=True),
        sa.Column("length", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint(
            "thread_id", "checkpoint_ns", "channel", "version", name="pk_langgraph_values"
        ),
        sa.CheckConstraint("kind IN ('value', 'empty', 'list')", name=op.f("ck_langgraph_values_kind")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "langgraph_items",
        sa.Column("thread_id", BytewiseText, nullable=False),
        sa.Column("checkpoint_ns", BytewiseText, nullable=False),
        sa.Column("channel", BytewiseText, nullable=False),
        sa.Column("version", BytewiseText, nullable=False),
        sa.Column("pos", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(
            "thread_id", "checkpoint_ns", "channel", "version", "pos", name="pk_langgraph_items"
        ),
    )
    op.create_table(
        "langgraph_writes",
        sa.Column("thread_id", BytewiseText, nullable=False),
        sa.Column("checkpoint_ns", BytewiseText, nullable=False),
        sa.Column("checkpoint_id", BytewiseText, nullable=False),
        sa.Column("task_id", BytewiseText, nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("task_path", BytewiseText, nullable=False, server_default=sa.text("''")),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(
            "thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", name="pk_langgraph_writes"
        ),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("langgraph_writes")
    op.drop_table("langgraph_items")
    op.drop_table("langgraph_values")
    op.drop_index("ix_langgraph_checkpoints_run_id", table_name="langgraph_checkpoints")
    op.drop_index("ix_langgraph_checkpoints_checkpoint_id", table_name="langgraph_checkpoints")
    op.drop_table("langgraph_checkpoints")
