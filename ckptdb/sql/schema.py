"""The table definition (SQLModel over SQLAlchemy): the one source the migrations are checked against.

Only migrations and tests import this module; the store's hot path writes SQL text directly,
because the ORM costs several times the per-row work of the driver itself.

Column choices, all for "lossless and readable in plain SQL" on SQLite and PostgreSQL alike:
- state_snapshot / path / pending_action / extra: JSON text. On SQLite a declared type of JSON
  would get NUMERIC affinity and turn a bare-number snapshot like 18446744073709551616 into a
  lossy REAL, so it is TEXT there (json_extract works on TEXT); on PostgreSQL it is `json`,
  which keeps the text exactly (key order, duplicates, \\u0000 escapes), unlike `jsonb`.
- created_at: fixed-width UTC text with nine fraction digits ("2026-11-03T09:50:52.350000000Z"):
  readable, and its text order is the exact instant order, to the nanosecond.
- created_at_text: the time as originally written when that differs from chrono's UTC spelling
  (a "+08:00" offset, unusual fraction digits); NULL otherwise.
- step_count: BIGINT; a value above 2^63-1 (legal in echo, a Rust usize) is stored as 2^63-1 and
  its exact value kept in `extra` under "step_count".
- extra: top-level fields of newer echo versions, as a JSON object; NULL when there are none.
- source: where an imported row came from (a file path), for audits.
- save_seq: the save order (see rows.NEXT_SAVE_SEQ): a per-database counter that each save sets
  above every stored row, what "latest", prune and pending trust where created_at is only the
  saving host's clock. 0 (the default) for rows whose save order nobody recorded (imported echo
  files, rows from before schema 0003, hand inserts): they sort before every counted save, by
  (created_at, id) among themselves. (graph_name, save_seq, created_at, id) answers "latest of a
  graph" from the index; (save_seq, created_at, id) the next value (its end) and a copy's order.
  On PostgreSQL the counter is the SEQUENCE checkpoints_save_seq.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

INTERRUPT_TYPES = ("beforenode", "afternode", "toolapproval", "userrequest")

JsonText = sa.Text().with_variant(postgresql.JSON(none_as_null=True), "postgresql")
# Ordering columns compare bytewise (code point order, as in SQLite and Python) whatever the
# PostgreSQL database's locale: keyset paging and ties broken by id must agree across engines.
BytewiseText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
BytewiseString30 = sa.String(30).with_variant(postgresql.VARCHAR(30, collation="C"), "postgresql")
# Unbounded: chrono keeps every fraction digit it reads. SQLite never enforced the varchar(40) its
# tables were created with, so they keep that declaration (changing it would rebuild the table);
# PostgreSQL's column became text in schema 0004.
TimeText = sa.String(40).with_variant(postgresql.TEXT(), "postgresql")

metadata = SQLModel.metadata
metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "checkpoints"
    __table_args__ = (
        sa.CheckConstraint(
            "interrupt_type IN ('beforenode', 'afternode', 'toolapproval', 'userrequest')",
            name="interrupt_type",
        ),
        sa.Index(None, "graph_name", "created_at", "id"),
        sa.Index(None, "created_at", "id"),
        sa.Index(None, "save_seq", "created_at", "id"),
        sa.Index(None, "graph_name", "save_seq", "created_at", "id"),
    )

    id: str = Field(sa_column=sa.Column(BytewiseText, primary_key=True))
    graph_name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    current_node: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    state_snapshot: str = Field(sa_column=sa.Column(JsonText, nullable=False))
    path: str = Field(sa_column=sa.Column(JsonText, nullable=False))
    step_count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    created_at: str = Field(sa_column=sa.Column(BytewiseString30, nullable=False))
    pending_action: str | None = Field(default=None, sa_column=sa.Column(JsonText, nullable=True))
    interrupt_type: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    created_at_text: str | None = Field(default=None, sa_column=sa.Column(TimeText, nullable=True))
    extra: str | None = Field(default=None, sa_column=sa.Column(JsonText, nullable=True))
    source: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    save_seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, server_default=sa.text("0")))


# LangGraph's checkpoint saver (`ckptdb.langgraph`), on the same database. Named `langgraph_*`: the
# LangGraph savers' own tables are `checkpoints`, `writes` and `checkpoint_*`. What the saver
# stores is the saver's serde output, (type, bytes), never re-encoded; what SQL needs to read
# (ids, step, run, metadata, channel versions) sits beside it in plain columns and JSON text.
# The layout is not quadratic in a conversation's length: a value is stored once per channel and
# version (only `new_versions` are written), and a list value that extends one stored before (a
# chat history) stores only a segment of it (a serde blob of a slice of the list), with a link to
# the version holding the segment before (see ckptdb.langgraph.codec).
# On SQLite the checkpoints, values and writes are WITHOUT ROWID tables, clustered on their
# primary key: an insert then writes one B-tree instead of the table and its key's index (raw
# sqlite3, a flat `aput` + `aput_writes` at NORMAL: 2,700/s with rowids, 4,800/s without). List
# segments, which can be large, stay in a rowid table (SQLite's advice for rows over ~1/20 page).
LargeBlob = sa.LargeBinary()

langgraph_checkpoints = sa.Table(
    "langgraph_checkpoints",
    metadata,
    sa.Column("thread_id", BytewiseText, nullable=False),
    sa.Column("checkpoint_ns", BytewiseText, nullable=False),
    sa.Column("checkpoint_id", BytewiseText, nullable=False),
    sa.Column("parent_checkpoint_id", sa.Text, nullable=True),
    sa.Column("step", sa.BigInteger, nullable=True),
    sa.Column("run_id", sa.Text, nullable=True),
    sa.Column("type", sa.Text, nullable=True),
    sa.Column("checkpoint", LargeBlob, nullable=False),
    sa.Column("metadata", JsonText, nullable=False),
    sa.Column("channel_versions", JsonText, nullable=False),
    sa.Column("inline_channels", JsonText, nullable=False),
    sa.PrimaryKeyConstraint("thread_id", "checkpoint_ns", "checkpoint_id"),
    # Listing across threads (newest first) and delete_for_runs without a scan; listing threads
    # reads the primary key's leading column.
    sa.Index(None, "checkpoint_id"),
    sa.Index(None, "run_id"),
    sqlite_with_rowid=False,
)
"""One row per checkpoint: the checkpoint (serde) with only its small scalar channel values, which
`inline_channels` names (a JSON array); metadata and channel versions as JSON."""

langgraph_values = sa.Table(
    "langgraph_values",
    metadata,
    sa.Column("thread_id", BytewiseText, nullable=False),
    sa.Column("checkpoint_ns", BytewiseText, nullable=False),
    sa.Column("channel", BytewiseText, nullable=False),
    sa.Column("version", BytewiseText, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("type", sa.Text, nullable=True),
    sa.Column("value", LargeBlob, nullable=True),
    sa.Column("base_version", sa.Text, nullable=True),
    sa.Column("length", sa.BigInteger, nullable=True),
    sa.PrimaryKeyConstraint("thread_id", "checkpoint_ns", "channel", "version"),
    sa.CheckConstraint("kind IN ('value', 'empty', 'list')", name="kind"),
    sqlite_with_rowid=False,
)
"""One row per channel and version. kind 'value': the serde pair; 'empty': no value; 'list': a
list of `length` items: the segments of `base_version` (NULL: none) and of its bases, then this
version's own segment in langgraph_items, if any; a read that finds fewer says so instead of
returning a shorter list."""

langgraph_items = sa.Table(
    "langgraph_items",
    metadata,
    sa.Column("thread_id", BytewiseText, nullable=False),
    sa.Column("checkpoint_ns", BytewiseText, nullable=False),
    sa.Column("channel", BytewiseText, nullable=False),
    sa.Column("version", BytewiseText, nullable=False),
    sa.Column("pos", sa.BigInteger, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("value", LargeBlob, nullable=False),
    sa.PrimaryKeyConstraint("thread_id", "checkpoint_ns", "channel", "version", "pos"),
)
"""A list version's segment: a serde pair of the slice of the list that starts at `pos`."""

langgraph_writes = sa.Table(
    "langgraph_writes",
    metadata,
    sa.Column("thread_id", BytewiseText, nullable=False),
    sa.Column("checkpoint_ns", BytewiseText, nullable=False),
    sa.Column("checkpoint_id", BytewiseText, nullable=False),
    sa.Column("task_id", BytewiseText, nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("task_path", BytewiseText, nullable=False, server_default=sa.text("''")),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=True),
    sa.Column("value", LargeBlob, nullable=False),
    sa.PrimaryKeyConstraint("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
    sqlite_with_rowid=False,
)
"""Pending writes of a checkpoint's next step, as `put_writes` received them."""

langgraph_threads = sa.Table(
    "langgraph_threads",
    metadata,
    sa.Column("thread_id", BytewiseText, nullable=False),
    sa.Column("checkpoint_ns", BytewiseText, nullable=False),
    sa.Column("checkpoints", sa.BigInteger, nullable=False),
    sa.Column("newest_checkpoint_id", BytewiseText, nullable=True),
    sa.Column("step", sa.BigInteger, nullable=True),
    sa.Column("metadata", JsonText, nullable=True),
    sa.PrimaryKeyConstraint("thread_id", "checkpoint_ns"),
    sqlite_with_rowid=False,
)
"""One row per thread and namespace with a checkpoint: how many, and the newest one's id, step and
metadata (what `ckptdb langgraph threads` lists), kept by triggers on langgraph_checkpoints
(migration 0007). The newest's columns are NULL only inside a statement that deletes a thread's
last checkpoints, whose row then goes too."""
