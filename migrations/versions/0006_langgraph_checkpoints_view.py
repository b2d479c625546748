"""The langgraph_checkpoints_view view: one readable row per LangGraph checkpoint for people at an
SQL shell (`ckptdb sql`, the sqlite3 prompt, psql), as checkpoint_summary is for echo checkpoints.

Columns: thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, step, source (metadata's
`source`: input, loop, update, fork), run_id, created_at (when the checkpoint was made: LangGraph's
checkpoint ids are UUIDv6, whose first 15 hex digits after the version are 100-ns ticks since
1582-10-15; ISO 8601 UTC with milliseconds, NULL for an id that is not a UUIDv6), pending_writes
(how many) and metadata (the JSON text). A view stores nothing: no write pays for it, and it
cannot drift from the table.

Revision ID: 0006_langgraph_checkpoints_view
Revises: 0005_langgraph_saver
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0006_langgraph_checkpoints_view"
down_revision = "0005_langgraph_saver"
branch_labels = None
depends_on = None

_TICKS_HEX = (
    "substr(c.checkpoint_id, 1, 8) || substr(c.checkpoint_id, 10, 4) || substr(c.checkpoint_id, 16, 3)"
)
_UNIX_TICKS = 122192928000000000
"""100-ns ticks from the UUID epoch (1582-10-15) to the Unix epoch."""


def _sqlite_ticks() -> str:
    """The 15 hex digits as an integer: SQLite has no hex-to-integer function, so digit by digit."""
    digits = "lower(" + _TICKS_HEX + ")"
    terms = [
        f"(instr('0123456789abcdef', substr({digits}, {k}, 1)) - 1) * {16 ** (15 - k)}" for k in range(1, 16)
    ]
    return " + ".join(terms)


_WRITES = (
    "(SELECT count(*) FROM langgraph_writes w WHERE w.thread_id = c.thread_id "
    "AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id)"
)
_IS_UUID6 = "length(c.checkpoint_id) = 36 AND substr(c.checkpoint_id, 15, 1) = '6'"

_VIEW = {
    "sqlite": f"""
CREATE VIEW langgraph_checkpoints_view AS
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.step,
       json_extract(c.metadata, '$.source') AS source, c.run_id,
       CASE WHEN {_IS_UUID6} THEN strftime('%Y-%m-%dT%H:%M:%fZ',
            (({_sqlite_ticks()}) - {_UNIX_TICKS}) / 10000 / 1000.0, 'unixepoch') END AS created_at,
       {_WRITES} AS pending_writes,
       c.metadata
FROM langgraph_checkpoints AS c
""",
    "postgresql": f"""
CREATE VIEW langgraph_checkpoints_view AS
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.step,
       c.metadata ->> 'source' AS source, c.run_id,
       CASE WHEN {_IS_UUID6} THEN to_char(
            to_timestamp(((('x' || lpad({_TICKS_HEX}, 16, '0'))::bit(64)::bigint - {_UNIX_TICKS}) / 10000)
                         / 1000.0) AT TIME ZONE 'UTC',
            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END AS created_at,
       {_WRITES} AS pending_writes,
       c.metadata::text AS metadata
FROM langgraph_checkpoints AS c
""",
}


def upgrade() -> None:
    name = op.get_bind().dialect.name
    if name not in _VIEW:
        raise NotImplementedError(f"no langgraph_checkpoints_view for the {name} dialect")
    op.execute(_VIEW[name].strip())


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS langgraph_checkpoints_view")
