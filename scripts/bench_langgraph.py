"""ckptdb's LangGraph saver (AsyncCkptdbSaver) beside LangGraph's AsyncSqliteSaver, both at
synchronous=NORMAL on a fresh SQLite file in one run.

    python scripts/bench.py langgraph [--quick] [--langgraph-steps N] [--langgraph-ops N]

- growing chat: every step appends one 500-byte message to `messages` (what `add_messages` does),
  STEPS steps: database size (the peer stores the whole list again at every step), and every
  message must read back from the last checkpoint;
- flat state, on a fresh file for each side: sequential `aput` + `aput_writes` of a small state
  (a counter and a few scalars), then 8 threads (tasks) doing the same at once;
- `aget_tuple` (latest) and `alist(limit=10)` with and without `checkpoint_ns` on the chat thread:
  p50, printed beside the peer's;
- the synchronous savers, CkptdbSaver beside LangGraph's SqliteSaver: the flat state's `put` +
  `put_writes`, sequential and from 8 threads at once;
- the async saver on the loop and the sync saver on a thread putting at once on one file, one
  process: puts per second of both and the slowest put, beside AsyncSqliteSaver + SqliteSaver,
  and beside ckptdb's savers each on a writer connection of its own (what they shared before);
  medians of 3 rounds taken in turns;
- a real graph of GRAPH supersteps (one node looping on itself, appending a 100-byte message and
  counting): time per superstep with `ainvoke` on InMemorySaver, AsyncSqliteSaver and
  AsyncCkptdbSaver, and with `invoke` on InMemorySaver, SqliteSaver and CkptdbSaver.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict

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
    group.add_argument(
        "--langgraph-graph-steps",
        type=int,
        default=None,
        help="supersteps of the real graph (default 1,000; --quick 200)",
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


def _flat_sync(saver: Any, thread: str, ops: int) -> None:
    cfg: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    version = None
    for step in range(ops):
        version = saver.get_next_version(version, None)
        values = {"count": step, "user": "ada", "mode": "review", "score": step * 0.5}
        cp = _checkpoint(values, {"count": version, "score": version}, step)
        cfg = saver.put(cfg, cp, {"source": "loop", "step": step}, {"count": version, "score": version})
        saver.put_writes(cfg, [("count", step + 1)], f"task-{step}")


def _open_sync(kind: str, path: Path) -> Any:
    if kind == "ckptdb":
        from ckptdb.langgraph import CkptdbSaver

        return CkptdbSaver.from_conn_string(path, synchronous="NORMAL")
    from langgraph.checkpoint.sqlite import SqliteSaver

    return SqliteSaver.from_conn_string(str(path))


def _normal_sync(kind: str, saver: Any) -> None:
    if kind == "peer":
        saver.setup()
        saver.conn.execute("PRAGMA synchronous = NORMAL")


def _measure_sync(kind: str, directory: Path, ops: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with _open_sync(kind, directory / f"{kind}-sync-flat.db") as saver:
        _normal_sync(kind, saver)
        _flat_sync(saver, "warm-up", 100)
        started = time.perf_counter()
        _flat_sync(saver, "flat", ops)
        figures["flat_ops"] = ops / (time.perf_counter() - started)
        threads = [threading.Thread(target=_flat_sync, args=(saver, f"flat-{n}", ops // 8)) for n in range(8)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        figures["flat8_ops"] = (ops // 8) * 8 / (time.perf_counter() - started)
    return figures


def _open_pair(kind: str, path: Path, shared: bool = True) -> tuple[Any, Any]:
    """An async and a sync saver on one file. `shared=False`: ckptdb's sync saver opened with
    another busy timeout, which keeps a writer connection of its own (what both had before they
    shared one)."""
    if kind == "ckptdb":
        from ckptdb.langgraph import AsyncCkptdbSaver, CkptdbSaver

        sync_options = {} if shared else {"busy_timeout_ms": 30_001}
        return (
            AsyncCkptdbSaver.from_conn_string(path, synchronous="NORMAL"),
            CkptdbSaver.from_conn_string(path, synchronous="NORMAL", **sync_options),
        )
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    return AsyncSqliteSaver.from_conn_string(str(path)), SqliteSaver.from_conn_string(str(path))


def _timed_flat_sync(saver: Any, thread: str, ops: int, latencies: list[float]) -> None:
    cfg: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    version = None
    for step in range(ops):
        version = saver.get_next_version(version, None)
        cp = _checkpoint({"count": step, "user": "ada"}, {"count": version}, step)
        started = time.perf_counter()
        cfg = saver.put(cfg, cp, {"source": "loop", "step": step}, {"count": version})
        saver.put_writes(cfg, [("count", step + 1)], f"task-{step}")
        latencies.append(time.perf_counter() - started)


async def _timed_flat(saver: Any, thread: str, ops: int, latencies: list[float]) -> None:
    cfg: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    version = None
    for step in range(ops):
        version = saver.get_next_version(version, None)
        cp = _checkpoint({"count": step, "user": "ada"}, {"count": version}, step)
        started = time.perf_counter()
        cfg = await saver.aput(cfg, cp, {"source": "loop", "step": step}, {"count": version})
        await saver.aput_writes(cfg, [("count", step + 1)], f"task-{step}")
        latencies.append(time.perf_counter() - started)


def _mixed_rounds(directory: Path, ops: int, rounds: int = 3) -> dict[str, dict[str, float]]:
    """`_mixed` for ckptdb (shared writer), ckptdb with a writer each, and the peer, in turns,
    `rounds` times: the median of each figure (one round of each swung 2x on a loaded machine)."""
    kinds = {"shared": ("ckptdb", True), "apart": ("ckptdb", False), "peer": ("peer", True)}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in kinds}
    for round_ in range(rounds):
        for name, (kind, shared) in kinds.items():
            runs[name].append(asyncio.run(_mixed(kind, directory, ops, shared, round_)))
    return {
        name: {figure: statistics.median(run[figure] for run in found) for figure in found[0]}
        for name, found in runs.items()
    }


async def _mixed(
    kind: str, directory: Path, ops: int, shared: bool = True, round_: int = 0
) -> dict[str, float]:
    """The async saver putting on the loop while the sync saver puts from a thread, one file:
    puts (aput/put + its writes) per second of both, and the slowest put in ms."""
    path = directory / f"{kind}-mixed-{shared}-{round_}.db"
    opened_async, opened_sync = _open_pair(kind, path, shared)
    latencies: list[float] = []
    async with opened_async as aio:
        await _normal(kind, aio)
        with opened_sync as sync:
            _normal_sync(kind, sync)
            await _timed_flat(aio, "warm-up", 50, [])
            _timed_flat_sync(sync, "warm-up-sync", 50, [])
            thread = threading.Thread(target=_timed_flat_sync, args=(sync, "sync", ops, latencies))
            started = time.perf_counter()
            thread.start()
            await _timed_flat(aio, "async", ops, latencies)
            await asyncio.to_thread(thread.join)
            elapsed = time.perf_counter() - started
    return {"ops": 2 * ops / elapsed, "max_ms": max(latencies) * 1000}


class GraphState(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int


def _graph(checkpointer: Any, supersteps: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    def step(state: GraphState) -> dict[str, Any]:
        return {"messages": [f"{state['count']:06d} " + "m" * 93], "count": state["count"] + 1}

    graph = StateGraph(GraphState)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", lambda state: END if state["count"] >= supersteps else "step")
    return graph.compile(checkpointer=checkpointer)


def _graph_config(supersteps: int) -> Any:
    return {"configurable": {"thread_id": "graph"}, "recursion_limit": supersteps + 10}


async def _graph_async(kind: str, directory: Path, supersteps: int) -> float:
    """ms per superstep of one `ainvoke` running `supersteps` supersteps."""
    from langgraph.checkpoint.memory import InMemorySaver

    async def timed(checkpointer: Any) -> float:
        graph = _graph(checkpointer, supersteps)
        started = time.perf_counter()
        final = await graph.ainvoke({"messages": [], "count": 0}, _graph_config(supersteps))
        elapsed = time.perf_counter() - started
        if final["count"] != supersteps or len(final["messages"]) != supersteps:
            raise AssertionError(f"{kind}: the graph did not run {supersteps} supersteps")
        return elapsed * 1000 / supersteps

    if kind == "memory":
        return await timed(InMemorySaver())
    async with _open(kind, directory / f"{kind}-graph.db") as saver:
        await _normal(kind, saver)
        return await timed(saver)


def _graph_sync(kind: str, directory: Path, supersteps: int) -> float:
    """ms per superstep of one `invoke` running `supersteps` supersteps."""
    from langgraph.checkpoint.memory import InMemorySaver

    def timed(checkpointer: Any) -> float:
        graph = _graph(checkpointer, supersteps)
        started = time.perf_counter()
        final = graph.invoke({"messages": [], "count": 0}, _graph_config(supersteps))
        elapsed = time.perf_counter() - started
        if final["count"] != supersteps or len(final["messages"]) != supersteps:
            raise AssertionError(f"{kind}: the graph did not run {supersteps} supersteps")
        return elapsed * 1000 / supersteps

    if kind == "memory":
        return timed(InMemorySaver())
    with _open_sync(kind, directory / f"{kind}-sync-graph.db") as saver:
        _normal_sync(kind, saver)
        return timed(saver)


def run(args: argparse.Namespace) -> list[Result]:
    try:
        import langgraph.checkpoint.sqlite.aio  # noqa: F401
    except ImportError:
        print("langgraph: skipped (pip install -e '.[langgraphtest]')", file=sys.stderr)
        return []
    quick = bool(getattr(args, "quick", False))
    steps = args.langgraph_steps or (200 if quick else 1000)
    ops = args.langgraph_ops or (600 if quick else 3000)
    supersteps = getattr(args, "langgraph_graph_steps", None) or (200 if quick else 1000)
    with tempfile.TemporaryDirectory(prefix="ckptdb-bench-langgraph-") as tmp:
        ours = asyncio.run(_measure("ckptdb", Path(tmp), steps, ops))
        peer = asyncio.run(_measure("peer", Path(tmp), steps, ops))
        ours_sync = _measure_sync("ckptdb", Path(tmp), ops)
        peer_sync = _measure_sync("peer", Path(tmp), ops)
        graph = {
            kind: asyncio.run(_graph_async(kind, Path(tmp), supersteps))
            for kind in ("memory", "ckptdb", "peer")
        }
        graph_sync = {kind: _graph_sync(kind, Path(tmp), supersteps) for kind in ("memory", "ckptdb", "peer")}
        mixed_runs = _mixed_rounds(Path(tmp), ops)
        mixed, mixed_apart, mixed_peer = mixed_runs["shared"], mixed_runs["apart"], mixed_runs["peer"]
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
        Result(
            SCENARIO,
            "sync saver, flat state: sequential put + put_writes",
            ours_sync["flat_ops"],
            peer_sync["flat_ops"],
            "ops/s",
            note="CkptdbSaver; peer: SqliteSaver",
        ),
        Result(
            SCENARIO,
            "sync saver, flat state: 8 threads at once",
            ours_sync["flat8_ops"],
            peer_sync["flat8_ops"],
            "ops/s",
        ),
        Result(
            SCENARIO,
            "async + sync saver in one process, one file: puts/s of both",
            mixed["ops"],
            mixed_peer["ops"],
            "ops/s",
            note=f"AsyncSqliteSaver + SqliteSaver; ckptdb with a writer each: {mixed_apart['ops']:,.0f}/s",
        ),
        Result(
            SCENARIO,
            "async + sync saver in one process: slowest put",
            mixed["max_ms"],
            mixed_peer["max_ms"],
            "ms",
            higher_is_better=False,
            note=f"ckptdb with a writer each: {mixed_apart['max_ms']:.1f} ms",
        ),
        Result(
            SCENARIO,
            f"real graph, {supersteps:,} supersteps (ainvoke): per superstep",
            graph["ckptdb"],
            graph["peer"],
            "ms",
            higher_is_better=False,
            note=f"AsyncCkptdbSaver; peer: {peer_name}; InMemorySaver {graph['memory']:.3f} ms",
        ),
        Result(
            SCENARIO,
            f"real graph, {supersteps:,} supersteps (invoke): per superstep",
            graph_sync["ckptdb"],
            graph_sync["peer"],
            "ms",
            higher_is_better=False,
            note=f"CkptdbSaver; peer: SqliteSaver; InMemorySaver {graph_sync['memory']:.3f} ms",
        ),
    ]
