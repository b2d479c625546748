"""The langgraph_threads table: one row per LangGraph thread and namespace holding what
`ckptdb langgraph threads` lists (checkpoints, the newest one's id, step and metadata), so a
listing of 100,000 threads reads 100,000 small rows instead of grouping 300,000 checkpoints and
reading each newest one's metadata past its blob (1,354 ms before).

Triggers on langgraph_checkpoints keep it exact whatever writes there: the savers' put (a re-put of
an id replaces the newest one's step and metadata, it is not counted twice), delete_thread, prune,
copy_thread, delete_for_runs, the CLI's prune and delete, the import, and a hand-written statement
at an SQL shell (a TRUNCATE on PostgreSQL too). They run inside the writing statement's own
transaction, so a rolled-back write leaves no count behind, and on PostgreSQL the thread's row
lock orders concurrent writers to one thread (the delete path locks the row first, then looks for
the new newest checkpoint in a fresh snapshot). SQLite has no procedural trigger language: its
four triggers spell the same steps.

Triggers, not statements added to the saver's transactions: raw sqlite3 (WAL, 20,000 flat rows in
one transaction, median of 7) spent 9.2 us per checkpoint insert, 19.0 us with the trigger and
17.9 us with the same upsert sent as a second statement, so the trigger costs what the statement
would, and also covers every writer the saver does not see (the import, copies, SQL). In
`scripts/bench.py langgraph`, flat-state `aput` + `aput_writes` against AsyncSqliteSaver, run
back to back: 4,551/s (4.34x) without the table, 5,225/s (3.64x) with it (the peer's figure moved
more than ckptdb's between the runs: noise of a shared machine).

Upgrade creates the table and the triggers, then fills the table from the checkpoints already
stored; downgrade drops the triggers and the table (the checkpoints stay as they are).

Revision ID: 0007_langgraph_threads
Revises: 0006_langgraph_checkpoints_view
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_langgraph_threads"
down_revision = "0006_langgraph_checkpoints_view"
branch_labels = None
depends_on = None

JsonText = sa.Text().with_variant(postgresql.JSON(none_as_null=True), "postgresql")
BytewiseText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

_COLUMNS = "thread_id, checkpoint_ns, checkpoints, newest_checkpoint_id, step, metadata"
_KEY_OLD = "thread_id = OLD.thread_id AND checkpoint_ns = OLD.checkpoint_ns"
_NEWEST_OF_OLD = (
    "(SELECT c.checkpoint_id, c.step, c.metadata FROM langgraph_checkpoints c "
    "WHERE c.thread_id = OLD.thread_id AND c.checkpoint_ns = OLD.checkpoint_ns "
    "ORDER BY c.checkpoint_id DESC LIMIT 1)"
)
_COUNT_NEW = (
    f"INSERT INTO langgraph_threads ({_COLUMNS}) "
    "VALUES (NEW.thread_id, NEW.checkpoint_ns, 1, NEW.checkpoint_id, NEW.step, NEW.metadata) "
    "ON CONFLICT (thread_id, checkpoint_ns) DO UPDATE SET checkpoints = langgraph_threads.checkpoints + 1, "
    "newest_checkpoint_id = CASE WHEN langgraph_threads.newest_checkpoint_id IS NULL "
    "OR excluded.newest_checkpoint_id > langgraph_threads.newest_checkpoint_id "
    "THEN excluded.newest_checkpoint_id ELSE langgraph_threads.newest_checkpoint_id END, "
    "step = CASE WHEN langgraph_threads.newest_checkpoint_id IS NULL "
    "OR excluded.newest_checkpoint_id > langgraph_threads.newest_checkpoint_id "
    "THEN excluded.step ELSE langgraph_threads.step END, "
    "metadata = CASE WHEN langgraph_threads.newest_checkpoint_id IS NULL "
    "OR excluded.newest_checkpoint_id > langgraph_threads.newest_checkpoint_id "
    "THEN excluded.metadata ELSE langgraph_threads.metadata END"
)
"""A checkpoint added: its thread counts one more, and it is the newest when its id is above the
newest's (LangGraph's ids are UUIDv6, time ordered; the columns compare bytewise on both engines,
SET expressions all see the row as it was)."""
_REFRESH_NEW = (
    "UPDATE langgraph_threads SET step = NEW.step, metadata = NEW.metadata "
    "WHERE thread_id = NEW.thread_id AND checkpoint_ns = NEW.checkpoint_ns "
    "AND newest_checkpoint_id = NEW.checkpoint_id"
)
"""A checkpoint replaced under its own id (a re-put): nothing is counted; the newest's step and
metadata are the new ones."""
_SQLITE_UNCOUNT_OLD = (
    f"UPDATE langgraph_threads SET checkpoints = checkpoints - 1 WHERE {_KEY_OLD}; "
    f"DELETE FROM langgraph_threads WHERE {_KEY_OLD} AND checkpoints <= 0; "
    f"UPDATE langgraph_threads SET (newest_checkpoint_id, step, metadata) = {_NEWEST_OF_OLD} "
    f"WHERE {_KEY_OLD} AND newest_checkpoint_id = OLD.checkpoint_id;"
)
"""A checkpoint gone: one fewer, the thread's row goes with its last checkpoint, and when the newest
went the next one down takes its place (a multi-row delete may pick a row it deletes next; that
row's own trigger then picks again, so the statement ends right)."""

_SAME_KEY = (
    "NEW.thread_id = OLD.thread_id AND NEW.checkpoint_ns = OLD.checkpoint_ns "
    "AND NEW.checkpoint_id = OLD.checkpoint_id"
)

_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER langgraph_threads_insert AFTER INSERT ON langgraph_checkpoints BEGIN {_COUNT_NEW}; END",
    "CREATE TRIGGER langgraph_threads_replace AFTER UPDATE OF step, metadata ON langgraph_checkpoints "
    f"WHEN {_SAME_KEY} BEGIN {_REFRESH_NEW}; END",
    "CREATE TRIGGER langgraph_threads_move AFTER UPDATE OF thread_id, checkpoint_ns, checkpoint_id "
    f"ON langgraph_checkpoints WHEN NOT ({_SAME_KEY}) BEGIN {_SQLITE_UNCOUNT_OLD} {_COUNT_NEW}; END",
    "CREATE TRIGGER langgraph_threads_delete AFTER DELETE ON langgraph_checkpoints "
    f"BEGIN {_SQLITE_UNCOUNT_OLD} END",
)
_SQLITE_DROPS = tuple(
    f"DROP TRIGGER IF EXISTS {name}"
    for name in (
        "langgraph_threads_insert",
        "langgraph_threads_replace",
        "langgraph_threads_move",
        "langgraph_threads_delete",
    )
)

_POSTGRES_FUNCTION = f"""
CREATE FUNCTION langgraph_threads_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    remaining bigint;
    head text;
BEGIN
    IF TG_OP = 'UPDATE' AND {_SAME_KEY} THEN
        {_REFRESH_NEW};
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        -- the row lock first: a concurrent writer to this thread waits from here on, and the
        -- newest is looked for below in a snapshot taken after it committed
        UPDATE langgraph_threads SET checkpoints = checkpoints - 1 WHERE {_KEY_OLD}
            RETURNING checkpoints, newest_checkpoint_id INTO remaining, head;
        IF remaining <= 0 THEN
            DELETE FROM langgraph_threads WHERE {_KEY_OLD};
        ELSIF head = OLD.checkpoint_id THEN
            UPDATE langgraph_threads SET (newest_checkpoint_id, step, metadata) = {_NEWEST_OF_OLD}
                WHERE {_KEY_OLD};
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_COUNT_NEW};
    END IF;
    RETURN NULL;
END
$$
"""
_POSTGRES_TRIGGER = (
    "CREATE TRIGGER langgraph_threads_track AFTER INSERT OR DELETE OR UPDATE OF thread_id, checkpoint_ns, "
    "checkpoint_id, step, metadata ON langgraph_checkpoints FOR EACH ROW "
    "EXECUTE FUNCTION langgraph_threads_track()"
)

_POSTGRES_TRUNCATE = (
    "CREATE FUNCTION langgraph_threads_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN DELETE FROM langgraph_threads; RETURN NULL; END $$",
    "CREATE TRIGGER langgraph_threads_truncate AFTER TRUNCATE ON langgraph_checkpoints "
    "FOR EACH STATEMENT EXECUTE FUNCTION langgraph_threads_truncate()",
)
"""TRUNCATE fires no row trigger: the threads go with their checkpoints. (SQLite has no TRUNCATE;
its DELETE without WHERE runs the row triggers.)"""

_BACKFILL = (
    f"INSERT INTO langgraph_threads ({_COLUMNS}) "
    "SELECT t.thread_id, t.checkpoint_ns, t.n, t.newest, c.step, c.metadata FROM ("
    "SELECT thread_id, checkpoint_ns, count(*) AS n, max(checkpoint_id) AS newest FROM langgraph_checkpoints "
    "GROUP BY thread_id, checkpoint_ns) t JOIN langgraph_checkpoints c ON c.thread_id = t.thread_id "
    "AND c.checkpoint_ns = t.checkpoint_ns AND c.checkpoint_id = t.newest"
)


def upgrade() -> None:
    name = op.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no langgraph_threads triggers for the {name} dialect")
    op.create_table(
        "langgraph_threads",
        sa.Column("thread_id", BytewiseText, nullable=False),
        sa.Column("checkpoint_ns", BytewiseText, nullable=False),
        sa.Column("checkpoints", sa.BigInteger(), nullable=False),
        sa.Column("newest_checkpoint_id", BytewiseText, nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=True),
        sa.Column("metadata", JsonText, nullable=True),
        sa.PrimaryKeyConstraint("thread_id", "checkpoint_ns", name="pk_langgraph_threads"),
        sqlite_with_rowid=False,
    )
    if name == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.execute(_POSTGRES_FUNCTION.strip())
        op.execute(_POSTGRES_TRIGGER)
        for statement in _POSTGRES_TRUNCATE:
            op.execute(statement)
    op.execute(_BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_DROPS:
            op.execute(statement)
    else:
        for name in ("langgraph_threads_track", "langgraph_threads_truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON langgraph_checkpoints")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("langgraph_threads")
