"""SQLite tuning figures shared by the writer thread, the checkpointer and the backend: each
says what it bounds and why it is that size.
"""

from __future__ import annotations

import logging

SYNCHRONOUS = ("NORMAL", "FULL")

logger = logging.getLogger("ckptdb.sqlite")

SYNC_INTERVAL = 1.0
"""Default `sync_interval` (seconds): at synchronous=NORMAL, every acknowledged save is fsynced
within this long (plus one fsync), as PostgreSQL's `synchronous_commit = off` bounds its loss by
`wal_writer_delay`."""

RESOURCES = "raise the open-file limit (ulimit -n) or close other programs, then retry"

CHECKPOINT_PAGES = 1000
"""About this many WAL pages written (estimated from the rows) wake the checkpointer thread, which runs
`PRAGMA wal_checkpoint(PASSIVE)` on its own connection while the writer keeps committing (SQLite's
default auto-checkpoint mark is the same 1,000 pages, but there it runs inside a commit)."""
WAL_LIMIT_PAGES = 4 * CHECKPOINT_PAGES
"""The bound on the WAL. A checkpoint that runs beside the writer cannot finish while new frames
keep arriving, and SQLite starts the WAL over from its beginning only once every frame is back in
the database; so after about this many pages the writer thread finishes the checkpoint itself,
between two transactions (short: the checkpointer has already copied most frames)."""
WAL_BACKSTOP_PAGES = 4 * WAL_LIMIT_PAGES
"""The writer connection's own `wal_autocheckpoint`, in case the estimate above falls far short (a
huge prune transaction) or the checkpointer cannot open its connection."""
SQLITE_MAX_LENGTH = 1_000_000_000
"""SQLite's default SQLITE_LIMIT_LENGTH: the longest value a row may hold (a store opened with
`max_value_bytes` lowers it on its connections, never raises it)."""
ESTIMATED_PAGES_PER_ROW = 6
"""Pages a saved row dirties besides its own text: the table leaf and five index leaves (the
primary key, two time indexes, two save-order indexes), fewer when rows share a transaction (an
overestimate only makes checkpoints a little more frequent)."""
WAL_SIZE_LIMIT = WAL_LIMIT_PAGES * 4096
"""`PRAGMA journal_size_limit` of the writer and the checkpointer (16 MiB): a WAL that a reader made
grow (a `sqlite3` shell holding `BEGIN; SELECT` for 60 s took it to 3.45 GB, and it stayed at 3.4 GB
after the reader ended) is cut back to this when it starts over; and once a checkpoint finishes
beside an idle writer, a TRUNCATE checkpoint gives all of it back."""
STARVED_RETRY_SECONDS = 1.0
"""While a reader keeps checkpoints from finishing, the checkpointer tries again this often, so the
WAL shrinks soon after the reader ends even if nothing is written any more."""
STARVED_SECOND_LOOK_SECONDS = 0.01
"""How long the writer waits before it looks again at a checkpoint of its own that came short (once
per WAL_LIMIT_PAGES of writes, and only when a checkpoint could not finish)."""
DISK_HEADROOM = 1 << 20
"""Bytes of free disk the writer keeps, beyond what the starved checkpoint will need (see
`SharedWriter.room_for`)."""
LOOP_COMMIT_ROWS = 32
"""Saves gathered in one event-loop turn commit on the loop's thread up to this many rows (about a
millisecond of SQLite work); bigger batches, an import's say, go to the writer thread."""
LOOP_LOCK_WAIT_SECONDS = 0.0005
"""How long the event loop waits for the shared writer connection's lock before it hands a turn's
saves to the writer thread: another store of the process (a synchronous one, at the same
`synchronous`, so NORMAL here) holds it for one commit. Handing over at once sent 55% of an async
saver's commits to its thread (a hand-off costs two thread wake-ups) while a sync saver saved
beside it: 3,300-4,000 puts/s of both; waiting up to 0.5 ms kept 99.5% on the loop, 5,500/s."""
MAX_GROUP_ROWS = 1000
"""At most this many rows of queued saves share one transaction."""
