"""The helper process of a big import (it parses) or export (it writes): when to start one, how, and
how it ends with its owner."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # killed but not yet reaped by its parent: a zombie is as good as gone
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _exit_with(pid: int) -> None:
    while _alive(pid):
        time.sleep(0.25)
    os._exit(0)


def init_helper_process(owner_pid: int) -> None:
    """Set up a helper process (the import's parser, the export's writer). Ctrl-C is the owner's
    to handle (it stops its helpers cleanly). And a helper must not outlive its owner: if the owner
    is killed, a pool worker would wait for work forever (it holds its own queue's write end),
    keeping its forkserver alive."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(owner_pid,), daemon=True, name="ckptdb-watch").start()


PARALLEL_MIN_FILES = 2000
"""Below this many files a helper process costs more to start than it saves."""


def _ready() -> int:
    return os.getpid()


def helper_pool(total: int, enabled: bool) -> ProcessPoolExecutor | None:
    """One helper process, started now, when there are two CPUs to share and enough files to pay
    for it; None otherwise (the work then stays in this process).

    Why a process and not a thread: the import's parsing (and the export's encoding) is pure
    Python, and the database thread, or the file-writing threads, release and retake the GIL around
    every row or system call; next to a busy thread each retake waits, and threaded pipelines
    measured no faster than no overlap at all.

    On Linux the helper is forked: it shares this process's pages, and unlike `forkserver` or
    `spawn` it never re-runs the main module (an unguarded script would run its own top level again
    in the child). Call this before opening a store where possible, while the process has no other
    threads; the child only parses or writes files, never touches inherited database handles, and
    ends with `os._exit`. Elsewhere `spawn` is used (and a script must guard its entry point).
    """
    if not enabled or total < PARALLEL_MIN_FILES or (os.cpu_count() or 1) < 2:
        return None
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(1, context, initializer=init_helper_process, initargs=(os.getpid(),))
    pool.submit(_ready).result()  # fork now, not later from a thread-laden moment
    return pool
