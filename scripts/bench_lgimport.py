"""Scenario `lgimport`: `ckptdb langgraph import` of a LangGraph SQLite saver file made by a real
graph, at two sizes (about 42 MiB and 1 GB by default: rate, peak memory, the imported
database's size beside the source's), and
`ckptdb langgraph threads` on a ckptdb database of 100,000 threads (target: under 100 ms).

The source files are written by a real `StateGraph` on the official `SqliteSaver`: T threads of
`--lgimport-turns` turns, each turn one `invoke` whose node appends a 500-byte message to a chat
(`messages` with LangGraph's `add_messages`-style reducer) and counts turns, so every checkpoint
holds the whole growing chat as the saver stores it. Cached under `bench-data/`. Each import runs
in a child process into a fresh SQLite file: wall time (process start included) and the child's
peak RSS (VmHWM), medians of `--lgimport-runs` runs. The thread listing is timed in-process (the
library call the command makes, `thread_pages`, every page and row object built; the rows' metadata
and time are decoded when asked for, which printing them does), median of 5, on a database of 100,000
threads written through `AsyncCkptdbSaver` (cached too).
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from bench import Result

REPO_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_DIR / "bench-data"
DATA_VERSION = 1

IMPORT = """
import asyncio, sys
from ckptdb.langgraph_import import run_langgraph_import
report = asyncio.run(run_langgraph_import(sys.argv[2], sys.argv[1]))
assert report.exit_status == 0, report.summary_json()
print(report.total)
print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
"""


class State(TypedDict, total=False):
    messages: Annotated[list[Any], operator.add]
    turns: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("lgimport scenario")
    group.add_argument("--lgimport-threads", type=int, default=None, help="threads, small file (default 20)")
    group.add_argument(
        "--lgimport-big-threads",
        type=int,
        default=None,
        help="threads, big file (default 480: about 1 GB at 50 turns; 4x the small one with --quick)",
    )
    group.add_argument("--lgimport-turns", type=int, default=50, help="turns per thread (50)")
    group.add_argument("--lgimport-runs", type=int, default=None, help="runs per size (default 3)")
    group.add_argument(
        "--lgimport-listed", type=int, default=100_000, help="threads for the listing (100,000)"
    )
    group.add_argument(
        "--lgimport-listing-only", action="store_true", help="only the thread listing, no import"
    )


def build_source(threads: int, turns: int) -> Path:
    path = DATA_DIR / f"lgimport-v{DATA_VERSION}-{threads}-{turns}.sqlite"
    if path.exists():
        return path
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph

    def chat(state: State) -> State:
        turn = state.get("turns", 0) + 1
        return {"messages": [{"role": "ai", "content": f"turn {turn} " + "x" * 490}], "turns": turn}

    builder = StateGraph(State)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    builder.add_edge("chat", END)
    DATA_DIR.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    conn = sqlite3.connect(partial, check_same_thread=False)
    graph = builder.compile(checkpointer=SqliteSaver(conn))
    for thread in range(threads):
        config = {"configurable": {"thread_id": f"thread-{thread:06}"}}
        for _ in range(turns):
            graph.invoke({"messages": []}, config)
    conn.close()
    partial.rename(path)
    return path


def measure(source: Path, target: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, checkpoints) of one import in a child process."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", IMPORT, str(source), str(target)], capture_output=True, text=True, cwd=REPO_DIR
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {source} failed: {done.stderr.strip()}")
    total, peak = done.stdout.split()[-2:]
    return time.perf_counter() - started, int(peak) / 1024, int(total)


async def build_listed(count: int) -> Path:
    """A ckptdb database of `count` threads, three checkpoints each, written by AsyncCkptdbSaver."""
    path = DATA_DIR / f"lgimport-threads-v{DATA_VERSION}-{count}.db"
    if path.exists():
        # A file cached by an older ckptdb gets its thread table filled, in a child process: the
        # listing is timed in a process that never ran Alembic, as `ckptdb langgraph threads`.
        upgrade = "import sys; from ckptdb import migrate; migrate.upgrade(sys.argv[1])"
        subprocess.run([sys.executable, "-c", upgrade, str(path)], check=True, cwd=REPO_DIR)
        return path
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    from ckptdb.langgraph import AsyncCkptdbSaver

    DATA_DIR.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    async with AsyncCkptdbSaver.from_conn_string(partial, synchronous="NORMAL") as saver:

        async def thread(n: int) -> None:
            config = {"configurable": {"thread_id": f"thread-{n:07}", "checkpoint_ns": ""}}
            for step in range(3):
                checkpoint = {
                    **empty_checkpoint(),
                    "id": str(uuid6(clock_seq=step)),
                    "channel_values": {"turns": step},
                    "channel_versions": {"turns": step + 1},
                }
                config = await saver.aput(
                    config, checkpoint, {"source": "loop", "step": step, "user": "u"}, {"turns": step + 1}
                )

        for start in range(0, count, 500):
            await asyncio.gather(*(thread(n) for n in range(start, min(count, start + 500))))
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    partial.rename(path)
    return path


async def time_listing(path: Path, limit: int | None) -> tuple[float, int]:
    """Median wall time of 5 listings (every row streamed through the library), and the rows."""
    from contextlib import aclosing

    from ckptdb import langgraph_inspect as li

    store = await li.open_stored(str(path), readonly=True)
    try:
        times = []
        found = 0
        for _ in range(5):
            started = time.perf_counter()
            found = 0
            async with aclosing(li.thread_pages(store, limit)) as pages:
                async for rows in pages:
                    found += len(rows)
            times.append(time.perf_counter() - started)
    finally:
        await store.close()
    return statistics.median(times), found


def run(args: argparse.Namespace) -> list[Result]:
    quick = bool(getattr(args, "quick", False))
    threads = args.lgimport_threads or (5 if quick else 20)
    runs = args.lgimport_runs or (1 if quick else 3)
    results: list[Result] = []
    big = args.lgimport_big_threads or (4 * threads if quick else 480)
    for count in () if args.lgimport_listing_only else (threads, big):
        source = build_source(count, args.lgimport_turns)
        target = DATA_DIR / "lgimport-target.db"
        measured = [measure(source, target) for _ in range(runs)]
        seconds = statistics.median(s for s, _, _ in measured)
        peak = statistics.median(m for _, m, _ in measured)
        checkpoints = measured[0][2]
        mib = source.stat().st_size / 2**20
        label = f"{checkpoints:,} checkpoints, {mib:,.0f} MiB"
        results.append(
            Result(
                "lgimport",
                f"import rate ({label})",
                checkpoints / seconds,
                None,
                "ckpt/s",
                note="process start included",
            )
        )
        results.append(
            Result("lgimport", f"import peak RSS ({label})", peak, None, "MB", higher_is_better=False)
        )
        results.append(
            Result(
                "lgimport",
                f"imported size ({label})",
                target.stat().st_size / 2**20,
                mib,
                "MiB",
                higher_is_better=False,
                note="ckptdb file beside the source file",
            )
        )
    listed = asyncio.run(build_listed(args.lgimport_listed if not quick else 10_000))
    for limit in (100, None):
        seconds, found = asyncio.run(time_listing(listed, limit))
        total = asyncio.run(time_listing(listed, None))[1] if limit is not None else found
        what = f"first {found:,} of {total:,} threads" if limit is not None else f"all {found:,} threads"
        results.append(
            Result(
                "lgimport",
                f"langgraph threads, {what}",
                seconds * 1000,
                None,
                "ms",
                higher_is_better=False,
                max_value=100.0,
                note="library call, rows streamed, median of 5",
            )
        )
    return results
