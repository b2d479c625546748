"""created_at_text without a length limit on PostgreSQL.

The column holds the time as echo wrote it when that differs from chrono's UTC spelling, and chrono
keeps every fraction digit it reads (`...:47.123456789999999+05:30` is 41 characters, and nothing
bounds the digits), so PostgreSQL's `varchar(40)` refused checkpoints that SQLite (which does not
enforce declared lengths) and echo itself hold. On PostgreSQL varchar(n) -> text is binary
coercible: the ALTER rewrites no row and the checkpoint_summary view does not read the column.
SQLite: nothing to do, a declared length was never enforced there.

Downgrade puts the limit back and fails, leaving the column as it is, when a stored text is longer.

Revision ID: 0004_created_at_text_unbounded
Revises: 0003_save_order
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0004_created_at_text_unbounded"
down_revision = "0003_save_order"
branch_labels = None
depends_on = None

_UP = {"sqlite": [], "postgresql": ["ALTER TABLE checkpoints ALTER COLUMN created_at_text TYPE text"]}
_DOWN = {
    "sqlite": [],
    "postgresql": ["ALTER TABLE checkpoints ALTER COLUMN created_at_text TYPE varchar(40)"],
}


def _for_dialect(by_dialect: dict[str, list[str]]) -> list[str]:
    """The statements for the engine being migrated; an unknown engine is an error, not a guess."""
    name = op.get_bind().dialect.name
    if name not in by_dialect:
        raise NotImplementedError(f"no created_at_text change for the {name} dialect")
    return by_dialect[name]


def upgrade() -> None:
    for statement in _for_dialect(_UP):
        op.execute(statement)


def downgrade() -> None:
    for statement in _for_dialect(_DOWN):
        op.execute(statement)
