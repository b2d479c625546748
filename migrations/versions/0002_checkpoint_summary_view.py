"""The checkpoint_summary view: one readable row per checkpoint for people at an SQL shell.

Columns: id, graph_name, current_node, interrupt_type, step_count, created_at (fixed-width UTC
text, sorts like the instant), state_bytes (UTF-8 bytes of the stored state JSON) and
message_count (length of state_snapshot.messages; NULL when the state has no messages array).

A view stores nothing, so it costs no write time and cannot drift from the table. A later
migration that rebuilds `checkpoints` (SQLite batch mode copies and renames the table) must drop
this view first and create it again after, or SQLite refuses the rename.

Revision ID: 0002_checkpoint_summary_view
Revises: 0001_initial
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0002_checkpoint_summary_view"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

_COMMON = "id, graph_name, current_node, interrupt_type, step_count, created_at"

# Per engine because byte length and JSON access are spelled differently: SQLite 3.40 has no
# octet_length() and its json_array_length() returns 0 (not an error) for a non-array, while
# PostgreSQL's raises on a non-array, so both guard on the JSON type and agree on NULL.
_VIEW = {
    "sqlite": f"""
CREATE VIEW checkpoint_summary AS
SELECT {_COMMON},
       length(CAST(state_snapshot AS BLOB)) AS state_bytes,
       CASE WHEN json_type(state_snapshot, '$.messages') = 'array'
            THEN json_array_length(state_snapshot, '$.messages') END AS message_count
FROM checkpoints
""",
    # PostgreSQL's json operators cannot return U+0000 and fail on a document holding an unescaped
    # \u0000 (legal in echo states), so such a document is read with \ufffe in its place, as the
    # PostgreSQL backend's state filters do; state_bytes is measured on the stored text.
    "postgresql": r"""
CREATE VIEW checkpoint_summary AS
SELECT c.id, c.graph_name, c.current_node, c.interrupt_type, c.step_count, c.created_at,
       octet_length(c.state_snapshot::text) AS state_bytes,
       CASE WHEN json_typeof(d.doc -> 'messages') = 'array'
            THEN json_array_length(d.doc -> 'messages') END AS message_count
FROM checkpoints AS c,
     LATERAL (SELECT CASE WHEN strpos(c.state_snapshot::text, '\u0000') = 0 THEN c.state_snapshot
                          ELSE regexp_replace(c.state_snapshot::text, '(?<!\\)((?:\\\\)*)\\u0000',
                                              '\1\\ufffe', 'g')::json
                     END AS doc) AS d
""",
}


def _for_dialect(by_dialect: dict[str, str]) -> str:
    """The SQL text for the engine being migrated; an unknown engine is an error, not a guess."""
    name = op.get_bind().dialect.name
    if name not in by_dialect:
        raise NotImplementedError(f"no checkpoint_summary view for the {name} dialect")
    return by_dialect[name]


def upgrade() -> None:
    op.execute(_for_dialect(_VIEW).strip())


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS checkpoint_summary")
