"""The WAL checkpointer: a thread with its own connection that copies the WAL back into the
database off the commit path, fsyncs it, and notices a reader starving it.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from ckptdb.sql.sqlite import settings
from ckptdb.sql.sqlite.connection import is_busy
from ckptdb.sql.sqlite.settings import STARVED_RETRY_SECONDS, WAL_SIZE_LIMIT, logger


def wal_backlog(shm: Path) -> int | None:
    """WAL frames not yet copied into the database file, from the wal-index (the `-shm` file):
    `mxFrame` of its header minus `nBackfill` of its checkpoint info, both in native byte order
    (SQLite's wal.c: two 48-byte copies of WalIndexHdr, then WalCkptInfo). None when the file is
    missing, short, or caught mid-update (the two header copies differ)."""
    try:
        with open(shm, "rb") as f:
            head = f.read(100)
    except OSError:
        return None
    if len(head) < 100 or head[:48] != head[48:96]:
        return None
    max_frame: int = struct.unpack_from("=I", head, 16)[0]
    backfilled: int = struct.unpack_from("=I", head, 96)[0]
    return max(max_frame - backfilled, 0)


class Checkpointer:
    """A thread with its own connection that runs `PRAGMA wal_checkpoint(PASSIVE)` when poked, and
    that fsyncs the WAL at most `sync_interval` seconds after a commit.

    PASSIVE never waits for readers or the writer and never blocks them; SQLite makes a checkpoint
    safe against a crash at any point (it syncs the WAL before copying and the database after, by
    this connection's `synchronous`, set to the writer's). A failure here only leaves the work to
    the writer's own auto-checkpoint, so errors are kept (`last_error`) and not raised.

    At synchronous=NORMAL a commit is not fsynced, and checkpoints come by WAL pages, never by
    time: a store saving a few checkpoints a second went tens of seconds without one, and a
    simulated power cut lost 78 acknowledged saves per crash point on average. So the first commit
    after a sync (`note_commit`) starts a timer, and when it runs out this thread fsyncs the -wal
    file: every save acknowledged before that fsync starts is on disk when it ends, so the loss
    window of a power cut is `sync_interval` plus one fsync. An fdatasync of the WAL file costs
    what a FULL commit's does (about 0.4 ms on the development disk), once per interval at most,
    where a PASSIVE checkpoint would also copy pages and fsync the database file; and a checkpoint
    starved by a reader fsyncs nothing at all. `sync_interval=None` turns the timer off.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        wal_path: str | None = None,
        sync_interval: float | None = None,
    ) -> None:
        self._connect = connect
        self._wal_path = wal_path
        self._sync_interval = sync_interval if wal_path is not None and sync_interval else None
        self._sync_due: float | None = None  # when the WAL must be fsynced; None: nothing unsynced
        self._retry_due: float | None = None  # when to try a starved checkpoint again
        self._poked = False
        self.starved_since: float | None = None
        """time.time() of the first checkpoint since the last complete one that a reader kept from
        finishing (it needs WAL frames newer than that reader's snapshot), None when not starved."""
        self._warned_bytes = 0
        self._short_of: int | None = None  # frames a checkpoint last stopped at, short of the log
        self.commits = 0
        """Commits this process made (`note_commit`): a checkpoint that ran while it changed raced
        our own writer, and its shortfall says nothing about readers."""
        self._wake = threading.Event()
        self.lock = threading.Lock()
        """Held while a checkpoint runs here: the writer takes it to finish one without racing."""
        self._stopping = False
        self.runs = 0
        self.syncs = 0
        """fsyncs of the WAL made by the timer (for tests and `bench.py core`)."""
        self.last_result: tuple[int, int, int] | None = None
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ckptdb-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._poked = True
        self._wake.set()

    def note_commit(self) -> None:
        """After a commit (on whichever thread made it): start the sync timer unless it runs."""
        self.commits += 1
        if self._sync_interval is not None and self._sync_due is None:
            self._sync_due = time.monotonic() + self._sync_interval
            self._wake.set()

    def record(self, row: Sequence[Any], *, settled: bool = True) -> None:
        """The result row (busy, log, checkpointed) of a PASSIVE checkpoint run here or by the writer.

        checkpointed < log, from a checkpoint that no commit of ours raced (`settled`), twice at
        the same frame: a reader still needs the frames after its snapshot, so the WAL cannot
        start over and grows with every commit. (Beside 16 saving tasks, 1 to 2 checkpoints in 60
        fell a few dozen frames short once, for a commit that had just ended.) Warn (when first
        seen, then once per doubling past WAL_SIZE_LIMIT), and try again every
        STARVED_RETRY_SECONDS. Complete, with the file grown past the limit: give the space back
        with a TRUNCATE checkpoint when the writer is idle.
        """
        result = (int(row[0]), int(row[1]), int(row[2]))
        self.last_result = result
        _busy, log, done = result
        if log > done >= 0:
            if not settled:
                return
            if self.starved_since is None and self._short_of != done:
                # Seen once: a commit that had just ended may still hold its read mark. A reader
                # pins the same frame again on the next try; a writer's race moves on.
                self._short_of = done
                self._retry_soon()
                return
            if self.starved_since is None:
                self.starved_since = time.time()
            size = self.wal_bytes()
            if not self._warned_bytes or size >= max(WAL_SIZE_LIMIT, 2 * self._warned_bytes):
                self._warned_bytes = max(size, 1)
                logger.warning(
                    "checkpoints of %s starved by a reader since %s: the WAL is %.1f MiB and grows until "
                    "that reader's transaction ends (a long query, an idle `BEGIN` in a sqlite3 shell)",
                    self._wal_path,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.starved_since)),
                    size / 2**20,
                )
            self._retry_soon()
            return
        if self.starved_since is not None:
            logger.info("checkpoints of %s finish again (the reader ended)", self._wal_path)
        self.starved_since = None
        self._short_of = None
        self._warned_bytes = 0
        if threading.current_thread() is not self._thread and self.wal_bytes() > WAL_SIZE_LIMIT:
            self._retry_soon(0.0)  # the checkpoint thread truncates it (it does so at once itself)

    def _retry_soon(self, delay: float = STARVED_RETRY_SECONDS) -> None:
        if self._retry_due is None:
            self._retry_due = time.monotonic() + delay
            self._wake.set()

    def wal_bytes(self) -> int:
        if self._wal_path is None:
            return 0
        try:
            return os.path.getsize(self._wal_path)
        except OSError:
            return 0

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            while True:
                dues = [due for due in (self._sync_due, self._retry_due) if due is not None]
                self._wake.wait(max(0.0, min(dues) - time.monotonic()) if dues else None)
                self._wake.clear()
                if self._stopping:
                    if self._sync_due is not None:  # another process may keep the WAL after we close
                        self._sync_due = None
                        self._sync_wal()
                    return
                due = self._sync_due
                if due is not None and time.monotonic() >= due:
                    # Cleared before the fsync starts: a commit made meanwhile starts a new timer.
                    self._sync_due = None
                    self._sync_wal()
                due = self._retry_due
                retry = due is not None and time.monotonic() >= due
                if retry:
                    self._retry_due = None
                if not (self._poked or retry):
                    continue
                self._poked = False
                try:
                    if db is None:
                        db = self._connect()
                    with self.lock:
                        commits = self.commits
                        row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        self.record(row, settled=self.commits == commits)
                        if self.starved_since is None and self.wal_bytes() > WAL_SIZE_LIMIT:
                            self._truncate(db)
                except Exception as exc:  # the writer's auto-checkpoint remains
                    self.last_error = exc
                self.runs += 1
        finally:
            if db is not None:
                with suppress(sqlite3.Error):
                    db.close()

    def _truncate(self, db: sqlite3.Connection) -> None:
        """TRUNCATE takes the write lock: with no busy timeout it only runs when no one writes, and
        a write under way makes it give up at once (tried again later; meanwhile the next WAL
        restart cuts the file to journal_size_limit)."""
        timeout = db.execute("PRAGMA busy_timeout").fetchone()[0]
        db.execute("PRAGMA busy_timeout = 0")
        try:
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            busy = 1
        finally:
            db.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        if busy:
            self._retry_soon()

    def _sync_wal(self) -> None:
        """fdatasync the -wal file through a descriptor of our own (Linux flushes the file, not the
        descriptor). Opened each time: the last connection to close deletes the WAL, and a later
        one makes a new file. No file: nothing is unsynced (that close checkpointed and synced)."""
        assert self._wal_path is not None
        try:
            fd = os.open(self._wal_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._sync_failed(exc)
            return
        try:
            os.fdatasync(fd)
            self.syncs += 1
        except OSError as exc:
            self._sync_failed(exc)
        finally:
            os.close(fd)

    def _sync_failed(self, exc: OSError) -> None:
        self.last_error = exc
        logger.error(
            "could not fsync %s (%s): saves acknowledged in the last %s s may be lost on a power cut; "
            "check the disk",
            self._wal_path,
            exc,
            self._sync_interval,
        )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ask the thread to end and wait for it (a checkpoint under way finishes first)."""
        self._stopping = True
        self._wake.set()
        self._thread.join()


class WalPacer:
    """The writer's side of the WAL policy, for whichever thread commits (the writer thread, the
    event loop, or a synchronous store's saving threads): count the WAL pages committed rows
    wrote, wake the checkpointer now and then, and say when the WAL has reached
    `settings.WAL_LIMIT_PAGES` and the writer must finish a checkpoint itself (`finish`)."""

    def __init__(self, checkpointer: Checkpointer) -> None:
        self.checkpointer = checkpointer
        self._pages = 0  # estimated WAL pages since the checkpointer was last woken
        self._wal_pages = 0  # since the writer last finished a checkpoint itself
        self.finished = 0

    def count(self, committed: Sequence[Sequence[Any]]) -> bool:
        """Count committed rows' pages; True when the writer must now `finish` a checkpoint."""
        count = size = 0
        for rows in committed:
            count += len(rows)
            for row in rows:
                size += sum(len(value) for value in row if type(value) in (str, bytes))
        pages = count * settings.ESTIMATED_PAGES_PER_ROW + size // 4096
        self._pages += pages
        self._wal_pages += pages
        if self._wal_pages >= settings.WAL_LIMIT_PAGES:
            self._pages = self._wal_pages = 0
            return True
        if self._pages >= settings.CHECKPOINT_PAGES:
            self._pages = 0
            self.checkpointer.poke()
        return False

    def finish(self, db: sqlite3.Connection) -> BaseException | None:
        """On the writer connection, between two transactions: nothing is written while this runs,
        so the checkpoint finishes (unless a reader elsewhere still needs old pages, as with any
        SQLite checkpoint) and the next write starts the WAL over. The lock waits for a checkpoint
        under way beside us. An error is returned, not raised: SQLite's own auto-checkpoint remains."""
        checkpointer = self.checkpointer
        error: BaseException | None = None
        try:
            with checkpointer.lock:
                row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                checkpointer.record(row)
                if int(row[1]) > int(row[2]) >= 0 and checkpointer.starved_since is None:
                    # Short, with nothing of ours writing: look once more after a moment (a
                    # commit that had just ended lets go of its read mark by then). The checkpoint
                    # thread's own second look can come too late: its tries race our commits, and
                    # beside a reader the WAL took a 24 MiB disk in about a second.
                    time.sleep(settings.STARVED_SECOND_LOOK_SECONDS)
                    checkpointer.record(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        except Exception as exc:
            error = exc
        self.finished += 1
        return error
