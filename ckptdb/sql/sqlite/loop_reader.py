"""The read connection of the event loop's own thread: short reads without a thread hop.

A read through aiosqlite's thread pays two thread wake-ups, more than a point load costs SQLite
(see `SqliteBackend.fetch_quick` for the figures). In WAL mode a read never waits for a writer's
lock, so a short read can run right where it is asked, on the loop's thread, as the commits of
`WriterThread._flush` already do. `LoopReader` is a plain sqlite3 connection that only the thread
that opened it uses, and that never makes that thread wait: it gives a read back (None) to the
caller, who then takes the thread, whenever it would wait or run long.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from ckptdb.sql.backend import Row
from ckptdb.sql.sqlite.connection import is_busy, translate_error
from ckptdb.sql.sqlite.spelling import STATE_MATCH, state_match

READ_SECONDS = 0.0005
"""How long a read may hold the loop's thread before it gives up (interrupted, nothing returned,
then run again on the reader's thread): 0.5 ms, below what a commit of 16 saves on the loop
already holds it (0.60-0.86 ms median, 1.2-3.2 ms p99 in three runs of `bench.py core` on
2026-12-04, which prints both beside the reads' own figures). A read that gives up has cost the
loop that much for nothing; only a read that takes longer than that anyway can."""
STEP_BUDGET = 10_000
"""SQLite virtual machine steps after which a read gives up too, whatever the clock says, so a
long read is handed back on any machine (the tests rely on this bound, never on the clock). A
point load takes about 15 steps, a page of 20 infos through an index about 330. Steps are no
measure of time: a page whose filter reads each 2 KB row ran 3 steps per microsecond (12,083
steps, 4.7 ms), and one that calls the state filter's function about 5; so the clock is the bound
that holds in practice."""
PROGRESS_STEPS = 100
"""Steps between two calls of the progress handler that enforces both bounds: a point load mostly
makes none (8.93 us per load without the handler, 9.02 us with it, best of 7 x 500)."""


_MAX_TICKS = STEP_BUDGET // PROGRESS_STEPS

_OPEN: weakref.WeakSet[LoopReader] = weakref.WeakSet()
"""Every LoopReader not yet closed, for `_after_fork`."""


def _after_fork() -> None:
    """In a forked child: the thread that opened a reader keeps its identity there (fork copies the
    calling thread), so without this the child would read through its parent's connection, which
    SQLite forbids across fork. Each reader is dropped unclosed (a close in the child could touch
    the parent's locks and WAL index); reads in the child then take the reader thread's way."""
    for reader in list(_OPEN):
        reader._owner = None
        reader._db = None


os.register_at_fork(after_in_child=_after_fork)


def _interrupted(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_INTERRUPT


class LoopReader:
    """One sqlite3 connection, used only from the thread that opened it (the event loop's).

    `read` returns None, and the caller takes the reader thread instead, when it is called from
    any other thread (a store shared with another loop), when the connection is in use or closed,
    when SQLite answers busy or locked (the busy timeout is 0 here: a WAL reader meets that only
    while another connection recovers the WAL or holds the file in exclusive locking mode, or on a
    file in rollback-journal mode opened read-only while a writer commits; the reader thread then
    waits out the store's busy timeout), and when a read runs past READ_SECONDS or STEP_BUDGET.
    What it cannot bound: SQLite's own brief retries (microsecond sleeps) while another
    connection changes the WAL index under a read that is starting, and the copy of one big value
    (one step; see `SqliteBackend.fetch_quick`).
    """

    def __init__(self, uri: str, where: str, length_limit: int | None) -> None:
        self._where = where
        self._owner: int | None = threading.get_ident()
        self._lock = threading.Lock()  # a close from another thread waits for a read under way
        self._ticks = 0
        self._deadline = 0.0
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout = 0")
            db.execute("PRAGMA query_only = ON")  # reads only: nothing written through this one
            if length_limit is not None:
                db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length_limit)
            db.create_function(STATE_MATCH, 2, state_match, deterministic=True)
            db.set_progress_handler(self._progress, PROGRESS_STEPS)
        except BaseException:
            db.close()
            raise
        self._db: sqlite3.Connection | None = db
        self.reads = 0
        """Reads answered here, on the loop's thread (for tests: which way a read went)."""
        self.handed_back = 0
        """Reads given back to the reader thread: busy, locked or too long (for tests)."""
        _OPEN.add(self)

    def _progress(self) -> int:
        """Non-zero interrupts the statement. SQLite counts steps over every run of a cached
        statement, so the first call of a read comes anywhere in its first PROGRESS_STEPS: a read
        is interrupted after STEP_BUDGET to STEP_BUDGET + PROGRESS_STEPS steps."""
        self._ticks += 1
        return self._ticks > _MAX_TICKS or time.perf_counter() > self._deadline

    def read(self, sql: str, params: Sequence[Any]) -> list[Row] | None:
        """Every row of a read, or None: run it on the reader thread instead (nothing was read)."""
        if threading.get_ident() != self._owner or not self._lock.acquire(blocking=False):
            return None
        try:
            db = self._db
            if db is None:
                return None
            self._ticks = 0
            self._deadline = time.perf_counter() + READ_SECONDS
            try:
                # fetchall runs the statement to its end: the read transaction ends with it.
                rows = db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                if is_busy(exc) or _interrupted(exc):
                    self.handed_back += 1
                    return None
                raise translate_error(exc, self._where) from None
            self.reads += 1
            return rows
        finally:
            self._lock.release()

    def close(self) -> None:
        _OPEN.discard(self)
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            with suppress(sqlite3.Error):
                db.close()
