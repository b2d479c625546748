"""ckptdb's LangGraph saver (AsyncCkptdbSaver) beside LangGraph's AsyncSqliteSaver, both at
synchronous=NORMAL on a fresh SQLite file in one run.

    python scripts/bench.py langgraph [--quick] [--langgraph-steps N] [--langgraph-ops N]

- growing chat: every step appends one 500-byte message to `messages` (what `add_messages` does),
  STEPS steps: database size (the peer stores the whole list again at every step), and every
  message must read back from the last checkpoint;
- flat state, on a fresh file for each side: sequential `aput` + `aput_writes` of a small state
  (a counter and a few scalars), then 8 threads (tasks) doing the same at once;
- `aget_tuple` (latest) and `alist(limit=10)` with and without `checkpoint_ns` on the chat thread:
  p50, printed beside the peer's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import Result

SCENARIO = "langgraph"
MESSAGE = "m" * 480


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("langgraph scenario")
    group.add_argument(
        "--langgraph-steps", type=int, default=None, help="chat steps (default 1,000; --quick 200)"
    )
    group.add_argument(
        "--langgraph-ops", type=int, default=None, help="flat puts (default 3,000; --quick 600)"
    )


def _checkpoint(values: dict[str, Any], versions: dict[str, Any], step: int) -> Any:
    from langgraph.checkpoint.base.id import uuid6

    return {
        "v": 4,
        "id": str(uuid6(clock_seq=step)),
        "ts": datetime.now(UTC).isoformat(),
        "channel_values": values,
        "channel_versions": versions,
        "versions_seen": {"agent": dict(versions)},
        "updated_channels": list(versions),
    }


def _size(path: Path) -> int:
    return sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))


async def _chat(saver: Any, steps: int) -> tuple[list[Any], float]:
    """The growing chat; the configs and seconds per step."""
    cfg: Any = {"configurable": {"thread_id": "chat", "checkpoint_ns": ""}}
    messages: list[str] = []
    version = None
    stored = []
    started = time.perf_counter()
    for step in range(steps):
        messages = [*messages, f"{step:06d} {MESSAGE}"]
        version = saver.get_next_version(version, None)
        cp = _checkpoint({"messages": messages}, {"messages": version}, step)
        cfg = await saver.aput(cfg, cp, {"source": "loop", "step": step}, {"messages": version})
        await saver.aput_writes(cfg, [("messages", [f"{step:06d} {MESSAGE}"])], str(uuid.uuid4()))
        stored.append(cfg)
    return stored, (time.perf_counter() - started) / steps


async def _flat(saver: Any, thread: str, ops: int) -> None:
    cfg: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    version = None
    for step in range(ops):
        version = saver.get_next_version(version, None)
        values = {"count": step, "user": "ada", "mode": "review", "score": step * 0.5}
        cp = _checkpoint(values, {"count": version, "score": version}, step)
        cfg = await saver.aput(
            cfg, cp, {"source": "loop", "step": step}, {"count": version, "score": version}
        )
        await saver.aput_writes(cfg, [("count", step + 1)], f"task-{step}")


async def _p50_ms(call: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _open(kind: str, path: Path) -> Any:
    if kind == "ckptdb":
        from ckptdb.langgraph import AsyncCkptdbSaver

        return AsyncCkptdbSaver.from_conn_string(path, synchronous="NORMAL")
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    return AsyncSqliteSaver.from_conn_string(str(path))


async def _normal(kind: str, saver: Any) -> None:
    if kind == "peer":
        await saver.setup()
        await saver.conn.execute("PRAGMA synchronous = NORMAL")


async def _measure(kind: str, directory: Path, steps: int, ops: int) -> dict[str, float]:
    path = directory / f"{kind}.db"
    figures: dict[str, float] = {}
    async with _open(kind, path) as saver:
        await _normal(kind, saver)
        stored, per_step = await _chat(saver, steps)
        figures["chat_ms_per_step"] = per_step * 1000
    figures["size_mb"] = _size(path) / 1e6  # closed: the WAL is back in the file
    async with _open(kind, path) as saver:
        await _normal(kind, saver)
        last = await saver.aget_tuple(stored[-1])
        expected = [f"{step:06d} {MESSAGE}" for step in range(steps)]
        if last.checkpoint["channel_values"]["messages"] != expected:
            raise AssertionError(f"{kind}: the chat's messages did not read back")
        middle = await saver.aget_tuple(stored[steps // 2])
        if middle.checkpoint["channel_values"]["messages"] != expected[: steps // 2 + 1]:
            raise AssertionError(f"{kind}: a middle checkpoint's messages did not read back")
        latest = {"configurable": {"thread_id": "chat", "checkpoint_ns": ""}}
        runs = 15

        async def get() -> None:
            await saver.aget_tuple(latest)

        async def listed(cfg: Any) -> None:
            assert len([t async for t in saver.alist(cfg, limit=10)]) == 10

        figures["get_ms"] = await _p50_ms(get, runs)
        figures["list_ms"] = await _p50_ms(lambda: listed(latest), runs)
        figures["list_no_ns_ms"] = await _p50_ms(
            lambda: listed({"configurable": {"thread_id": "chat"}}), runs
        )
    async with _open(kind, directory / f"{kind}-flat.db") as saver:  # a fresh file for both sides
        await _normal(kind, saver)
        await _flat(saver, "warm-up", 100)
        started = time.perf_counter()
        await _flat(saver, "flat", ops)
        figures["flat_ops"] = ops / (time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(*(_flat(saver, f"flat-{n}", ops // 8) for n in range(8)))
        figures["flat8_ops"] = (ops // 8) * 8 / (time.perf_counter() - started)
    return figures


def run(args: argparse.Namespace) -> list[Result]:
    try:
        import langgraph.checkpoint.sqlite.aio  # noqa: F401
    except ImportError:
        print("langgraph: skipped (pip install -e '.[langgraphtest]')", file=sys.stderr)
        return []
    quick = bool(getattr(args, "quick", False))
    steps = args.langgraph_steps or (200 if quick else 1000)
    ops = args.langgraph_ops or (600 if quick else 3000)
    with tempfile.TemporaryDirectory(prefix="ckptdb-bench-langgraph-") as tmp:
        ours = asyncio.run(_measure("ckptdb", Path(tmp), steps, ops))
        peer = asyncio.run(_measure("peer", Path(tmp), steps, ops))
    peer_name = "AsyncSqliteSaver"
    return [
        Result(
            SCENARIO,
            f"growing chat, {steps:,} steps: database size",
            ours["size_mb"],
            peer["size_mb"],
            "MB",
            target_ratio=10,
            higher_is_better=False,
            note=f"peer: {peer_name}; every message read back from the last and a middle checkpoint",
        ),
        Result(
            SCENARIO,
            "growing chat: aput + aput_writes per step",
            ours["chat_ms_per_step"],
            peer["chat_ms_per_step"],
            "ms",
            higher_is_better=False,
        ),
        Result(
            SCENARIO,
            "flat state: sequential aput + aput_writes",
            ours["flat_ops"],
            peer["flat_ops"],
            "ops/s",
            2,
        ),
        Result(SCENARIO, "flat state: 8 tasks at once", ours["flat8_ops"], peer["flat8_ops"], "ops/s", 3),
        Result(
            SCENARIO,
            "aget_tuple (latest of the chat), p50",
            ours["get_ms"],
            peer["get_ms"],
            "ms",
            higher_is_better=False,
        ),
        Result(
            SCENARIO,
            "alist(limit=10) with checkpoint_ns, p50",
            ours["list_ms"],
            peer["list_ms"],
            "ms",
            higher_is_better=False,
        ),
        Result(
            SCENARIO,
            "alist(limit=10) without checkpoint_ns, p50",
            ours["list_no_ns_ms"],
            peer["list_no_ns_ms"],
            "ms",
            higher_is_better=False,
        ),
    ]
