"""Scenario `lgsource`: reading a LangGraph SQLite saver file from end to end, ckptdb's source
reader (bytes as stored, keyset pages) beside the saver's own `SqliteSaver.list(None)` (which
decodes every checkpoint), at two sizes, so a peak memory that grows with the file shows.

The files are written by the official `SqliteSaver.put` (T threads of K checkpoints, each holding
a chat of growing messages of about `--lgsource-kb` KiB in all, two pending writes each) and cached
under `bench-data/`. Each read runs in a child process of its own: wall time and the child's peak
RSS (its VmHWM), medians of `--lgsource-runs` alternate runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import Result

REPO_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_DIR / "bench-data"
DATA_VERSION = 1

READ_CKPTDB = """
import asyncio, sys
from ckptdb.langgraph_source import open_langgraph_source
async def main():
    n = 0
    async with open_langgraph_source(sys.argv[1]) as source:
        async for record in source.checkpoints():
            n += 1 + len(record.writes)
    print(n)
asyncio.run(main())
print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
"""

READ_SAVER = """
import sqlite3, sys
from langgraph.checkpoint.sqlite import SqliteSaver
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, check_same_thread=False)
saver = SqliteSaver(conn)
saver.is_setup = True  # its setup() would write to the file
print(sum(1 + len(t.pending_writes) for t in saver.list(None)))
print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("lgsource scenario")
    group.add_argument("--lgsource-n", type=int, default=None, help="checkpoints, small file (default 2,000)")
    group.add_argument("--lgsource-kb", type=int, default=40, help="KiB of messages per checkpoint (40)")
    group.add_argument("--lgsource-runs", type=int, default=None, help="runs per side (default 3)")


def build(n: int, kib: int) -> Path:
    path = DATA_DIR / f"lgsource-v{DATA_VERSION}-{n}-{kib}.sqlite"
    if path.exists():
        return path
    import sqlite3

    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.sqlite import SqliteSaver

    DATA_DIR.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    per_thread = 20
    conn = sqlite3.connect(partial, check_same_thread=False)
    saver = SqliteSaver(conn)
    line = "x" * 200
    for thread in range(n // per_thread):
        config = {"configurable": {"thread_id": f"thread-{thread:06}", "checkpoint_ns": ""}}
        for step in range(per_thread):
            size = kib * 1024 * (step + 1) // per_thread
            messages = [{"role": "user", "content": line} for _ in range(max(1, size // 230))]
            checkpoint = {**empty_checkpoint(), "channel_values": {"messages": messages, "step": step}}
            config = saver.put(config, checkpoint, {"source": "loop", "step": step}, {"messages": step + 1})
            saver.put_writes(config, [("messages", messages[-1]), ("step", step + 1)], task_id=f"t{step}")
    conn.close()
    partial.rename(path)
    return path


def measure(code: str, path: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one read in a child process. The peak is the child's own
    VmHWM (its memory since exec): wait4's ru_maxrss would also count the pages this (big) parent
    had when it forked the child."""
    started = time.perf_counter()
    command = [sys.executable, "-c", code, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_DIR)
    if done.returncode != 0:
        raise RuntimeError(f"reading {path} failed: {done.stderr.strip()}")
    return time.perf_counter() - started, int(done.stdout.split()[-1]) / 1024


def run(args: argparse.Namespace) -> list[Result]:
    quick = bool(getattr(args, "quick", False))
    n = args.lgsource_n or (400 if quick else 2_000)
    runs = args.lgsource_runs or (1 if quick else 3)
    results: list[Result] = []
    for count in (n, 4 * n):
        path = build(count, args.lgsource_kb)
        mib = path.stat().st_size / 2**20
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(measure(READ_CKPTDB, path))
            theirs.append(measure(READ_SAVER, path))
        med = statistics.median
        label = f"{count:,} checkpoints, {mib:,.0f} MiB"
        results.append(
            Result(
                "lgsource",
                f"read all ({label})",
                count / med(s for s, _ in ours),
                count / med(s for s, _ in theirs),
                "ckpt/s",
                note="bytes as stored vs SqliteSaver.list(None) decoding",
            )
        )
        results.append(
            Result(
                "lgsource",
                f"peak RSS ({label})",
                med(m for _, m in ours),
                med(m for _, m in theirs),
                "MB",
                higher_is_better=False,
            )
        )
    return results
