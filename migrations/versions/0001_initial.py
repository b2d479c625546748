"""The checkpoints table: one row per checkpoint, state as JSON text, indexed by graph and time.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

JsonText = sa.Text().with_variant(postgresql.JSON(none_as_null=True), "postgresql")
BytewiseText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
BytewiseString30 = sa.String(30).with_variant(postgresql.VARCHAR(30, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("id", BytewiseText, nullable=False),
        sa.Column("graph_name", sa.Text(), nullable=False),
        sa.Column("current_node", sa.Text(), nullable=False),
        sa.Column("state_snapshot", JsonText, nullable=False),
        sa.Column("path", JsonText, nullable=False),
        sa.Column("step_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", BytewiseString30, nullable=False),
        sa.Column("pending_action", JsonText, nullable=True),
        sa.Column("interrupt_type", sa.String(16), nullable=False),
        sa.Column("created_at_text", sa.String(40), nullable=True),
        sa.Column("extra", JsonText, nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_checkpoints"),
        sa.CheckConstraint(
            "interrupt_type IN ('beforenode', 'afternode', 'toolapproval', 'userrequest')",
            name=op.f("ck_checkpoints_interrupt_type"),  # op.f: already named, no convention on top
        ),
    )
    op.create_index(
        "ix_checkpoints_graph_name_created_at_id", "checkpoints", ["graph_name", "created_at", "id"]
    )
    op.create_index("ix_checkpoints_created_at_id", "checkpoints", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_checkpoints_created_at_id", table_name="checkpoints")
    op.drop_index("ix_checkpoints_graph_name_created_at_id", table_name="checkpoints")
    op.drop_table("checkpoints")
