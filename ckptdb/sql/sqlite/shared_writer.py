"""One writer connection per SQLite database file per process, shared by every store opened on it.

SQLite lets one connection write at a time. Two stores of one process on one file (an
`AsyncCkptdbSaver` for the graphs run with `ainvoke` and a `CkptdbSaver` for those run with
`invoke`, or an async store and `ckptdb.connect`) each with its own writer connection met only
through SQLite's lock, whose busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries: with an
async and a sync saver putting at once, 1 put in 100 waited 3.5-4 ms and the slowest 54-105 ms, for
commits that take 0.1 ms. Sharing the connection makes them take turns on a `threading.Lock`
instead, which hands over the moment it is free (measured by `scripts/bench.py langgraph`, "async
and sync savers in one process"). The WAL bookkeeping (`Checkpointer`, `WalPacer`) goes with the
connection, so it counts every commit the process makes.

Stores share a writer only when they would open the same connection: the same file (device and
inode, so a file replaced under an open store is not written through the old one's connection) and
the same connection settings (`synchronous`, `busy_timeout_ms`, the length limit,
`sync_interval`); stores opened with other settings keep a writer of their own, as before. The last
store to let go closes it. A forked child forgets every writer of its parent without closing it
(the parent's file handles and locks are the parent's business) and opens its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path

from ckptdb.errors import StoreError
from ckptdb.sql.group_commit import Queued
from ckptdb.sql.sqlite.checkpointer import Checkpointer, WalPacer
from ckptdb.sql.sqlite.connection import TEXT_AFFINITY
from ckptdb.sql.sqlite.settings import DISK_HEADROOM, ESTIMATED_PAGES_PER_ROW

Settings = tuple[object, ...]
"""What a writer connection is opened with (`SqliteBackend.acquire_writer`: synchronous, busy timeout, length
limit, sync interval)."""
Key = tuple[int, int, Settings]
"""The file (device, inode) and the connection's settings."""


class SharedWriter:
    """The writer connection of one database file in this process, its lock, and its WAL
    bookkeeping. `lock` is held by whichever thread runs SQL on `conn` (a writer thread, a saving
    thread leading a group commit, the event loop committing a turn's saves)."""

    def __init__(
        self, key: Key, where: str, conn: sqlite3.Connection, checkpointer: Checkpointer, busy_timeout_ms: int
    ) -> None:
        self.key = key
        self.where = where
        self.conn = conn
        self._busy_timeout_ms = busy_timeout_ms  # what the connection has now
        self.lock = threading.Lock()
        self.checkpointer = checkpointer
        self.pacer = WalPacer(checkpointer)
        self.users = 1
        self._room_checked = 0.0  # time.monotonic() of the last checkpoint tried by room_for

    def set_busy_timeout(self, ms: int) -> None:
        """With `lock` held: the connection's busy timeout, set only when it changes. The event
        loop commits with it at 0 and the threads with the store's, and a sequential save used to
        set it twice around each commit: two statements of the three a loop commit ran (about 8%
        of a flat LangGraph `aput` + `aput_writes`)."""
        if ms != self._busy_timeout_ms:
            self.conn.execute(f"PRAGMA busy_timeout = {int(ms)}")
            self._busy_timeout_ms = ms

    def room_for(self, batch: Sequence[Queued]) -> StoreError | None:
        """With `lock` held, before a group of saves: while a reader starves checkpoints, refuse a
        write that would leave too little disk for the checkpoint that must run once the reader
        ends; None: go ahead.

        That checkpoint copies the WAL's pages into the database file, which grows to the size of
        the newest snapshot. With the disk full of WAL, it cannot: on a 24 MiB file system the
        store then failed every write for good, reader gone or not. So the writer keeps that growth
        plus DISK_HEADROOM free, and first tries a checkpoint itself (the reader may have ended)."""
        checkpointer = self.checkpointer
        if checkpointer.starved_since is None:
            return None
        db = self.conn
        now = time.monotonic()
        if now - self._room_checked >= 0.2:
            self._room_checked = now
            with suppress(sqlite3.Error), checkpointer.lock:
                checkpointer.record(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
            if checkpointer.starved_since is None:
                return None
        try:
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            growth = max(0, pages * page_size - os.path.getsize(self.where))
            disk = os.statvfs(os.path.dirname(os.path.abspath(self.where)))
        except (sqlite3.Error, OSError):
            return None  # cannot tell: let SQLite try
        free = disk.f_bavail * disk.f_frsize
        written = [rows for request in batch for rows in (request.rows, *(part for _, part in request.more))]
        rows = sum(map(len, written))
        size = sum(
            len(value) for part in written for row in part for value in row if type(value) in TEXT_AFFINITY
        )
        wanted = growth + DISK_HEADROOM + (rows * ESTIMATED_PAGES_PER_ROW + 1) * page_size + 2 * size
        if free >= wanted:
            return None
        since = time.strftime("%H:%M:%S", time.localtime(checkpointer.starved_since))
        return StoreError(
            f"{self.where}: not written: a reader's open transaction has kept checkpoints from finishing "
            f"since {since} (WAL {checkpointer.wal_bytes() / 2**20:.1f} MiB) and {free / 2**20:.1f} MiB of "
            "disk is left, which the checkpoint needs once that reader ends; end the long read (a query, "
            "an idle `BEGIN` in a sqlite3 shell) or free disk space, then save again; nothing of this write "
            "was saved"
        )


_writers: dict[Key, SharedWriter] = {}
_registry = threading.Lock()  # `_writers` and every writer's `users`
_forgotten: list[SharedWriter] = []
"""Writers a forked child let go of: kept referenced, so the child never closes them."""


def acquire(
    path: Path,
    settings: Settings,
    open_writer: Callable[[], sqlite3.Connection],
    open_checkpointer: Callable[[], sqlite3.Connection],
    sync_interval: float | None,
    busy_timeout_ms: int,
) -> SharedWriter:
    """The writer of `path` opened with `settings`: the one this process has open, or a new one
    (its connection from `open_writer()`, its checkpointer's from `open_checkpointer`); `release`
    it when done."""
    with _registry:
        if os.path.exists(path):
            stat = os.stat(path)
            shared = _writers.get((stat.st_dev, stat.st_ino, settings))
            if shared is not None:
                shared.users += 1
                return shared
        conn = open_writer()
        try:
            stat = os.stat(path)  # the file exists now
            checkpointer = Checkpointer(open_checkpointer, f"{path}-wal", sync_interval)
        except BaseException:
            conn.close()
            raise
        shared = SharedWriter(
            (stat.st_dev, stat.st_ino, settings), str(path), conn, checkpointer, busy_timeout_ms
        )
        _writers[shared.key] = shared
        return shared


def release(shared: SharedWriter) -> None:
    """One store is done with `shared`; the last one stops its checkpointer and closes its
    connection, after the work in flight (`lock`). The checkpointer first: the last connection to
    close checkpoints and removes the WAL, and that should be one that knows of no checkpoint
    under way."""
    with _registry:
        shared.users -= 1
        if shared.users > 0:
            return
        if _writers.get(shared.key) is shared:
            del _writers[shared.key]
    shared.checkpointer.stop()
    with shared.lock, suppress(sqlite3.Error):
        shared.conn.close()


def _forget_in_child() -> None:
    global _registry
    _registry = threading.Lock()  # another thread may have held it at the fork
    _forgotten.extend(_writers.values())
    _writers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
