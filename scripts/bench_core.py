"""Scenario `core`: ckptdb's SQLite store beside langgraph's AsyncSqliteSaver, same payload, same pragmas.

1. sequential saves            `store.save`           vs `saver.aput`                (ops/s, >= 1.5x)
2. 16 concurrent tasks saving  `store.save` x gather  vs `saver.aput` x gather       (ops/s, >= 5x)
3. load by id                  `store.load`           vs `saver.aget_tuple` with id  (ops/s, >= 10x),
   and with `read_on_loop=False` (>= 3x); then how long a read on the loop's thread holds the
   loop, beside how long a commit on the loop already does (same timer, same run), and for big rows
4. newest 20 of one graph in a 1,000,000-row database: `store.query(graph_name=G, limit=20)`
   (median ms, <= 1 ms), with the EXPLAIN QUERY PLAN of the SQL the store runs; the peer's
   `alist` (newest 20 of one thread) on a same-size database is shown for information only.

Both stores get the same ~2 KB state (messages + values; langgraph keeps it in channel_values),
run in WAL mode at the same `PRAGMA synchronous` (checked on the live connections), each timed
run in fresh database files. Checkpoint objects are built before the clock starts, so the
figures are the stores' own cost (encoding, SQL, thread hops, commits). Within a run the two
stores take turns in blocks of BLOCK operations (alternating who goes first), so load from other
processes hits both alike; figures are the median of `--core-repeats` runs, and each row's note
keeps every run with its own ratio. Ratios move with the machine: the peer makes 3 thread hops
per put and 6 per get against ckptdb's 1, so a busy machine (slow hops) favours ckptdb.

The big databases are built once with stdlib sqlite3 (ckptdb's schema from `open_store`, rows
from `ckptdb.sql.rows.to_row`) and cached under bench-data/, keyed by row count and schema head.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from bench import REPO_DIR, Result
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    CheckpointMetadata,
    empty_checkpoint,
)
from langgraph.checkpoint.base import (
    Checkpoint as PeerCheckpoint,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from ckptdb import Checkpoint, CheckpointQuery, InterruptType, SqlCheckpointStore, Timestamp, open_store
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.revision import HEAD
from ckptdb.sql.sqlite.backend import SqliteBackend
from ckptdb.sql.sqlite.writer import WriterThread

SCENARIO = "core"
TASKS = 16
GRAPHS = 50
NODES = ("planner", "agent", "tools", "review")
SEED = 20_240_601

# (full, --quick) defaults
SIZES = {
    "n": (3000, 480),
    "loads": (3000, 480),
    "rows": (1_000_000, 100_000),
    "query_runs": (2000, 500),
    "peer_list_runs": (300, 100),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scenario core (ckptdb vs langgraph AsyncSqliteSaver)")
    group.add_argument(
        "--synchronous",
        action="append",
        type=str.upper,
        choices=("NORMAL", "FULL"),
        metavar="LEVEL",
        help="PRAGMA synchronous for both stores: NORMAL (default) or FULL; repeat to run both",
    )
    group.add_argument(
        "--core-sync-interval",
        metavar="SECONDS",
        help="ckptdb's sync_interval at NORMAL (default: the store's, 1 s; 'off' leaves the WAL's fsyncs "
        "to checkpoints): how long an acknowledged save may wait for the fsync that survives a power cut",
    )
    group.add_argument(
        "--core-n", type=int, metavar="N", help="saves per timed run (default 3000; quick 480)"
    )
    group.add_argument(
        "--core-loads", type=int, metavar="N", help="loads per timed run (default 3000; quick 480)"
    )
    group.add_argument(
        "--core-rows",
        type=int,
        metavar="N",
        help="rows in the query database (default 1,000,000; quick 100,000)",
    )
    group.add_argument(
        "--core-repeats", type=int, default=3, metavar="K", help="timed runs per figure (median)"
    )
    group.add_argument("--core-query-runs", type=int, metavar="N", help="timed queries on the big database")
    group.add_argument(
        "--core-no-peer-list", action="store_true", help="skip the peer's alist on a big database"
    )
    group.add_argument(
        "--core-data-dir",
        type=Path,
        default=REPO_DIR / "bench-data",
        metavar="DIR",
        help="cache for the big databases (default: bench-data/, gitignored)",
    )
    group.add_argument(
        "--core-tmpdir",
        type=Path,
        metavar="DIR",
        help="where the fresh per-run databases go (default: $TMPDIR)",
    )


@dataclass(frozen=True, slots=True)
class Config:
    levels: tuple[str, ...]
    n: int
    loads: int
    rows: int
    repeats: int
    query_runs: int
    peer_list_runs: int
    peer_list: bool
    data_dir: Path
    tmpdir: Path | None
    store_options: dict[str, float | None]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        pick = 1 if args.quick else 0

        def size(name: str, given: int | None) -> int:
            return given if given is not None else SIZES[name][pick]

        n = size("n", args.core_n)
        if n < TASKS:
            raise ValueError(f"--core-n must be at least {TASKS}, got {n}")
        return cls(
            levels=tuple(dict.fromkeys(args.synchronous or ["NORMAL"])),
            n=n,
            loads=size("loads", args.core_loads),
            rows=size("rows", args.core_rows),
            repeats=max(1, args.core_repeats),
            query_runs=size("query_runs", args.core_query_runs),
            peer_list_runs=SIZES["peer_list_runs"][pick],
            peer_list=not args.core_no_peer_list,
            data_dir=args.core_data_dir,
            tmpdir=args.core_tmpdir,
            store_options=_sync_option(args.core_sync_interval),
        )


def _sync_option(text: str | None) -> dict[str, float | None]:
    if text is None:
        return {}
    return {"sync_interval": None if text.lower() == "off" else float(text)}


def log(message: str) -> None:
    print(f"   {message}", flush=True)


# -- payloads -------------------------------------------------------------------------------------

_TEXT = (
    "The quarterly report shows revenue up 12% on last year, driven by the enterprise tier; churn in "
    "the self-serve plan rose slightly. Next: reconcile the EMEA figures and draft the board summary."
)


def make_state(step: int, graph: str) -> dict[str, Any]:
    """About 2 KB of compact JSON: a short chat history plus the graph's working values."""
    return {
        "messages": [
            {
                "id": f"{graph}-m{step}-0",
                "role": "user",
                "content": f"Step {step}: summarize the Q3 numbers.",
            },
            {
                "id": f"{graph}-m{step}-1",
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": f"call-{step}", "name": "search_docs", "args": {"query": "Q3 revenue", "k": 5}}
                ],
            },
            {"id": f"{graph}-m{step}-2", "role": "tool", "tool_call_id": f"call-{step}", "content": _TEXT},
            {"id": f"{graph}-m{step}-3", "role": "assistant", "content": _TEXT},
            {
                "id": f"{graph}-m{step}-4",
                "role": "user",
                "content": "Good. Now draft the board summary: 5 bullets.",
            },
            {"id": f"{graph}-m{step}-5", "role": "assistant", "content": _TEXT[:150]},
        ],
        "values": {
            "step": step,
            "plan": ["search", "summarize", "review", "send"],
            "documents": [
                {
                    "doc_id": f"doc-{step}-{k}",
                    "title": f"Q3 finance pack part {k}",
                    "score": round(0.91 - k / 17, 4),
                }
                for k in range(7)
            ],
            "budget": {"tokens_used": 1834 + step, "tokens_max": 32000, "cost_usd": 0.0417},
            "approved": False,
            "reviewer": None,
            "tags": ["finance", "quarterly", "draft"],
            "notes": _TEXT,
        },
    }


def small_state(step: int) -> dict[str, Any]:
    """About 200 B, for the big query database."""
    return {
        "messages": [
            {"role": "user", "content": f"step {step}: check the status of order {step * 7919 % 100000}"}
        ],
        "values": {"step": step, "ok": step % 3 != 0, "score": (step % 100) / 100},
    }


@dataclass(slots=True)
class PeerPut:
    config: RunnableConfig
    checkpoint: PeerCheckpoint
    metadata: CheckpointMetadata
    new_versions: ChannelVersions


def peer_checkpoint(state: dict[str, Any], step: int) -> PeerCheckpoint:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": state["messages"], "values": state["values"]}
    checkpoint["channel_versions"] = {"messages": step + 1, "values": step + 1}
    checkpoint["versions_seen"] = {"agent": {"messages": step}}
    checkpoint["updated_channels"] = ["messages", "values"]
    return checkpoint


@dataclass(slots=True)
class Workload:
    """The same checkpoints for both stores, one list per task (each task its own graph/thread)."""

    ours: list[list[Checkpoint]]
    peer: list[list[PeerPut]]

    @classmethod
    def build(cls, tasks: int, total: int, prefix: str) -> Workload:
        """`total` checkpoints split as evenly as possible over `tasks` graphs.

        They are made step by step across the graphs, the order in which the tasks will save
        them, so created_at rises in save order as in a live app (which saves a checkpoint right
        after making it). Made graph by graph instead, 16 concurrent saves would land at 16 far
        apart places in the created_at index, which no real workload does.
        """
        graphs = [f"{prefix}-{task:02d}" for task in range(tasks)]
        ours: list[list[Checkpoint]] = [[] for _ in graphs]
        peer: list[list[PeerPut]] = [[] for _ in graphs]
        parents: list[str | None] = [None for _ in graphs]
        for step in range(-(-total // tasks)):
            for task, graph in enumerate(graphs):
                if step >= total // tasks + (task < total % tasks):
                    continue
                state = make_state(step, graph)
                ours[task].append(
                    Checkpoint.new(
                        graph,
                        NODES[step % 4],
                        state,
                        ["__start__", *NODES[: step % 4 + 1]],
                        step,
                        "afternode",
                    )
                )
                checkpoint = peer_checkpoint(state, step)
                configurable: dict[str, Any] = {"thread_id": graph, "checkpoint_ns": ""}
                if parents[task] is not None:
                    configurable["checkpoint_id"] = parents[task]
                peer[task].append(
                    PeerPut(
                        RunnableConfig(configurable=configurable),
                        checkpoint,
                        CheckpointMetadata(source="loop", step=step, parents={}),
                        {"messages": step + 1, "values": step + 1},
                    )
                )
                parents[task] = checkpoint["id"]
        return cls(ours, peer)

    @property
    def count(self) -> int:
        return sum(len(chunk) for chunk in self.ours)


# -- opening both stores identically --------------------------------------------------------------


async def pragmas(conn: aiosqlite.Connection | WriterThread) -> tuple[str, int]:
    """journal_mode and synchronous of a live connection: the peer's, or ckptdb's writer thread."""
    mode = next(iter(await conn.execute_fetchall("PRAGMA journal_mode")))[0]
    sync = next(iter(await conn.execute_fetchall("PRAGMA synchronous")))[0]
    return str(mode).lower(), int(sync)


SYNC_CODES = {"NORMAL": 1, "FULL": 2}


async def open_ours(path: Path, level: str, options: dict[str, float | None]) -> SqlCheckpointStore:
    store = await open_store(path, synchronous=level, **options)
    backend = store.backend
    assert isinstance(backend, SqliteBackend) and backend._writer is not None
    found = await pragmas(backend._writer)
    if found != ("wal", SYNC_CODES[level]):
        raise RuntimeError(f"ckptdb writer runs with {found}, expected WAL + synchronous={level}")
    return store


async def open_peer(path: Path, level: str) -> tuple[aiosqlite.Connection, AsyncSqliteSaver]:
    conn = await aiosqlite.connect(path)
    await conn.execute_fetchall("PRAGMA busy_timeout = 30000")  # as ckptdb (it never waits here anyway)
    await conn.execute_fetchall("PRAGMA journal_mode = WAL")
    await conn.execute_fetchall(f"PRAGMA synchronous = {level}")
    saver = AsyncSqliteSaver(conn)
    await saver.setup()
    found = await pragmas(conn)
    if found != ("wal", SYNC_CODES[level]):
        await conn.close()
        raise RuntimeError(f"peer connection runs with {found}, expected WAL + synchronous={level}")
    return conn, saver


def peer_saver(saver: AsyncSqliteSaver) -> Callable[[PeerPut], Awaitable[Any]]:
    async def put(item: PeerPut) -> None:
        await saver.aput(item.config, item.checkpoint, item.metadata, item.new_versions)

    return put


async def count_rows(conn: aiosqlite.Connection) -> int:
    return int(next(iter(await conn.execute_fetchall("SELECT count(*) FROM checkpoints")))[0])


# -- 1 and 2: saves -------------------------------------------------------------------------------


async def gather_chunks(chunks: Sequence[Sequence[Any]], save: Callable[[Any], Awaitable[Any]]) -> None:
    async def worker(chunk: Sequence[Any]) -> None:
        for item in chunk:
            await save(item)

    if len(chunks) == 1:
        await worker(chunks[0])
    else:
        await asyncio.gather(*(worker(chunk) for chunk in chunks))


BLOCK = 384
"""Operations per timed block: the two stores take turns block by block (first one, then the other,
alternating), so a burst of load from elsewhere on the machine hits both alike."""


def block_order(block: int) -> tuple[str, str]:
    return ("ours", "peer") if block % 2 == 0 else ("peer", "ours")


async def bench_saves(cfg: Config, level: str, tasks: int) -> tuple[list[float], list[float]]:
    """Ops/s of each store per repeat: fresh database files, warm-up, then interleaved timed blocks."""
    warm_total = max(2 * tasks, min(100, cfg.n // 10))
    per_block = max(1, BLOCK // tasks)
    ours_rates: list[float] = []
    peer_rates: list[float] = []
    for rep in range(cfg.repeats):
        # Fresh checkpoints (fresh ids) per run, built before the clock starts.
        warm = Workload.build(tasks, warm_total, f"warm{rep}")
        work = Workload.build(tasks, cfg.n, f"g{rep}")
        with tempfile.TemporaryDirectory(prefix="ckptdb-bench-", dir=cfg.tmpdir) as tmp:
            store = await open_ours(Path(tmp) / "ours.db", level, cfg.store_options)
            conn, saver = await open_peer(Path(tmp) / "peer.db", level)
            put = peer_saver(saver)
            try:
                await gather_chunks(warm.ours, store.save)
                await gather_chunks(warm.peer, put)
                spent = {"ours": 0.0, "peer": 0.0}
                longest = max(len(chunk) for chunk in work.ours)
                for block, first in enumerate(range(0, longest, per_block)):
                    for side in block_order(block):
                        if side == "ours":
                            chunks: list[list[Any]] = [c[first : first + per_block] for c in work.ours]
                            save: Callable[[Any], Awaitable[Any]] = store.save
                        else:
                            chunks = [c[first : first + per_block] for c in work.peer]
                            save = put
                        start = time.perf_counter()
                        await gather_chunks(chunks, save)
                        spent[side] += time.perf_counter() - start
                expected = warm.count + work.count
                stored = (await store.count(CheckpointQuery(limit=None)), await count_rows(conn))
                if stored != (expected, expected):
                    raise RuntimeError(f"stored {stored} rows (ckptdb, peer), expected {expected} each")
            finally:
                await store.close()
                await conn.close()
        ours_rates.append(work.count / spent["ours"])
        peer_rates.append(work.count / spent["peer"])
    return ours_rates, peer_rates


async def loop_turns(chunks: Sequence[Sequence[Any]], save: Callable[[Any], Awaitable[Any]]) -> list[float]:
    """Seconds between successive turns of the event loop while the chunks are saved: how long any
    other task of the application would wait for its turn. ckptdb commits on the loop's thread,
    so its turns are longer; the peer hands every statement to a thread instead."""
    gaps: list[float] = []
    saving = True

    async def ticker() -> None:
        last = time.perf_counter()
        while saving:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        await gather_chunks(chunks, save)
    finally:
        saving = False
        await ticking
    return gaps


async def bench_loop_turns(cfg: Config, level: str) -> tuple[list[float], list[float]]:
    """Loop-turn lengths of each store while TASKS tasks save (untimed as throughput: the ticker
    task changes how the loop runs)."""
    work = Workload.build(TASKS, cfg.n, "turns")
    with tempfile.TemporaryDirectory(prefix="ckptdb-bench-", dir=cfg.tmpdir) as tmp:
        store = await open_ours(Path(tmp) / "ours.db", level, cfg.store_options)
        try:
            ours = await loop_turns(work.ours, store.save)
        finally:
            await store.close()
        conn, saver = await open_peer(Path(tmp) / "peer.db", level)
        try:
            peer = await loop_turns(work.peer, peer_saver(saver))
        finally:
            await conn.close()
    return ours, peer


# -- 3: loads -------------------------------------------------------------------------------------


async def bench_loads(cfg: Config, level: str) -> dict[str, list[float]]:
    """Ops/s per repeat of ckptdb (reads on the loop's thread, the default), ckptdb with
    `read_on_loop=False` (every read through aiosqlite's thread) and the peer: random ids over one
    populated database each, the three taking turns block by block."""
    work = Workload.build(TASKS, cfg.n, "load")
    ours_ids = [cp.id for chunk in work.ours for cp in chunk]
    peer_configs = [
        RunnableConfig(
            configurable={
                "thread_id": f"load-{task:02d}",
                "checkpoint_ns": "",
                "checkpoint_id": p.checkpoint["id"],
            }
        )
        for task, chunk in enumerate(work.peer)
        for p in chunk
    ]
    rng = random.Random(SEED)
    rates: dict[str, list[float]] = {side: [] for side in LOAD_SIDES}
    with tempfile.TemporaryDirectory(prefix="ckptdb-bench-", dir=cfg.tmpdir) as tmp:
        store = await open_ours(Path(tmp) / "ours.db", level, cfg.store_options)
        hopping = await open_ours(Path(tmp) / "hop.db", level, {**cfg.store_options, "read_on_loop": False})
        conn, saver = await open_peer(Path(tmp) / "peer.db", level)
        try:
            for each in (store, hopping):
                await each.save_many(cp for chunk in work.ours for cp in chunk)
            for chunk in work.peer:
                for p in chunk:
                    await saver.aput(p.config, p.checkpoint, p.metadata, p.new_versions)

            # Both return what was saved (checked once, outside the clock).
            first_ours = work.ours[0][0]
            for each in (store, hopping):
                loaded = await each.load(first_ours.id)
                assert loaded is not None and loaded.state_snapshot == first_ours.state_snapshot
            got = await saver.aget_tuple(peer_configs[0])
            assert (
                got is not None
                and got.checkpoint["channel_values"] == work.peer[0][0].checkpoint["channel_values"]
            )

            for index in rng.sample(range(len(ours_ids)), min(100, len(ours_ids))):  # warm-up
                await store.load(ours_ids[index])
                await hopping.load(ours_ids[index])
                await saver.aget_tuple(peer_configs[index])

            for _ in range(cfg.repeats):
                picks = [rng.randrange(len(ours_ids)) for _ in range(cfg.loads)]
                spent = dict.fromkeys(LOAD_SIDES, 0.0)
                for block, first in enumerate(range(0, len(picks), BLOCK)):
                    chosen = picks[first : first + BLOCK]
                    turn = block % len(LOAD_SIDES)
                    for side in (*LOAD_SIDES[turn:], *LOAD_SIDES[:turn]):
                        if side != "peer":
                            loader = store if side == "ours" else hopping
                            ids = [ours_ids[i] for i in chosen]
                            start = time.perf_counter()
                            for cid in ids:
                                if await loader.load(cid) is None:
                                    raise RuntimeError(f"ckptdb lost {cid}")
                        else:
                            configs = [peer_configs[i] for i in chosen]
                            start = time.perf_counter()
                            for config in configs:
                                if await saver.aget_tuple(config) is None:
                                    raise RuntimeError(f"peer lost {config}")
                        spent[side] += time.perf_counter() - start
                for side in LOAD_SIDES:
                    rates[side].append(len(picks) / spent[side])
            ours_backend, hop_backend = store.backend, hopping.backend
            assert isinstance(ours_backend, SqliteBackend) and isinstance(hop_backend, SqliteBackend)
            loop_reader = ours_backend._loop_reader
            if loop_reader is None or loop_reader.handed_back or hop_backend._loop_reader is not None:
                raise RuntimeError("the loads did not go the way each store was opened for")
        finally:
            await store.close()
            await hopping.close()
            await conn.close()
    return rates


LOAD_SIDES = ("ours", "hop", "peer")
"""ckptdb reading on the loop's thread, ckptdb with read_on_loop=False, the peer."""


# -- 3b: what reads on the loop's thread cost the loop ----------------------------------------------


def timed(calls: list[float], function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, recording how long each call keeps its thread (seconds)."""

    def wrapper(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            calls.append(time.perf_counter() - start)

    return wrapper


def big_state(size: int) -> dict[str, Any]:
    """About `size` bytes of JSON: a chat history of 1 KB messages."""
    return {"messages": [{"role": "assistant", "content": "x" * 1000} for _ in range(max(1, size // 1030))]}


@dataclass(slots=True)
class Stalls:
    """Seconds the event loop's thread was held, per call: each group measured by the same timer
    around the synchronous call that runs on the loop."""

    reads: list[float]
    reads_beside_saves: list[float]
    commits: list[float]
    big: dict[int, list[float]]
    """Row size (bytes of JSON) -> on-loop read of one such row."""
    big_decode: dict[int, list[float]]
    """Row size -> `rows.from_row` of it: what the loop pays for such a load whichever thread read it."""


STALL_SIZES = (65_536, 1_048_576, 8_388_608)


async def bench_stalls(cfg: Config, level: str) -> Stalls:
    """How long a read on the loop's thread holds the loop (`LoopReader.read`, timed call by call),
    for 2 KB rows alone and while TASKS tasks save, beside what a commit on the loop already holds
    it (`WriterThread._flush`, timed the same way, in the same run); and for big rows."""
    work = Workload.build(TASKS, cfg.n, "stall")
    saving = Workload.build(TASKS, cfg.n, "stall-saves")
    ids = [cp.id for chunk in work.ours for cp in chunk]
    rng = random.Random(SEED)
    reads: list[float] = []
    commits: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ckptdb-bench-", dir=cfg.tmpdir) as tmp:
        store = await open_ours(Path(tmp) / "stall.db", level, cfg.store_options)
        try:
            await store.save_many(cp for chunk in work.ours for cp in chunk)
            backend = store.backend
            assert isinstance(backend, SqliteBackend)
            loop_reader, writer = backend._loop_reader, backend._writer
            assert loop_reader is not None and writer is not None
            for cid in rng.sample(ids, min(100, len(ids))):  # warm-up
                await store.load(cid)
            loop_reader.read = timed(reads, loop_reader.read)  # type: ignore[method-assign]
            for _ in range(cfg.loads):
                await store.load(ids[rng.randrange(len(ids))])
            alone, reads[:] = list(reads), []

            writer._flush = timed(commits, writer._flush)  # type: ignore[method-assign]
            done = False

            async def reader() -> None:
                while not done:
                    await store.load(ids[rng.randrange(len(ids))])
                    await asyncio.sleep(0)  # a reader among other tasks: one load per turn

            reading = asyncio.create_task(reader())
            try:
                await gather_chunks(saving.ours, store.save)
            finally:
                done = True
                await reading
            beside, commits_seen = list(reads), list(commits)

            big: dict[int, list[float]] = {}
            decode: dict[int, list[float]] = {}
            for size in STALL_SIZES:
                checkpoints = [
                    Checkpoint.new("big", "agent", big_state(size), ["agent"], k, "afternode")
                    for k in range(5)
                ]
                await store.save_many(checkpoints)
                reads[:] = []
                decode[size] = []
                for _ in range(4):
                    for checkpoint in checkpoints:
                        found = await store.backend.fetch_quick(sqlrows.LOAD, (checkpoint.id,))
                        start = time.perf_counter()
                        sqlrows.from_row(found[0])
                        decode[size].append(time.perf_counter() - start)
                big[size] = list(reads)
        finally:
            await store.close()
    return Stalls(alone, beside, commits_seen, big, decode)


def _ms(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1e3


def _stall_text(values: list[float]) -> str:
    if not values:  # at FULL no commit runs on the loop
        return "none on the loop"
    return (
        f"p50 {_ms(values, 0.5):.3f}, p99 {_ms(values, 0.99):.3f}, max {max(values) * 1e3:.3f} ms "
        f"over {len(values):,}"
    )


def _stall_results(level: str, stalls: Stalls) -> list[Result]:
    log(f"loop held per read on the loop, 2 KB rows alone [{level}]: {_stall_text(stalls.reads)}")
    log(
        f"loop held per read on the loop, beside {TASKS} tasks saving [{level}]: "
        f"{_stall_text(stalls.reads_beside_saves)}"
    )
    log(f"loop held per commit on the loop (accepted), same run [{level}]: {_stall_text(stalls.commits)}")
    results = [
        Result(
            SCENARIO,
            f"loop held per read vs per commit, p99 [{level}]",
            _ms(stalls.reads_beside_saves, 0.99),
            _ms(stalls.commits, 0.99),
            "ms",
            higher_is_better=False,
            note=f"how long one call keeps the event loop's thread, timed around it (LoopReader.read, "
            f"WriterThread._flush) while one task loads and {TASKS} tasks save: reads "
            f"{_stall_text(stalls.reads_beside_saves)}; commits {_stall_text(stalls.commits)} (the peer "
            f"column: the stall commit_on_loop already accepts); reads alone {_stall_text(stalls.reads)}",
        )
    ]
    for size in STALL_SIZES:
        log(
            f"row of {size / 2**20:g} MiB [{level}]: read on the loop {_stall_text(stalls.big[size])}; "
            f"decoding it (on the loop whichever thread reads) {_stall_text(stalls.big_decode[size])}"
        )
        results.append(
            Result(
                SCENARIO,
                f"loop held per read of a {size / 2**20:g} MiB row vs its decoding, p50 [{level}]",
                _ms(stalls.big[size], 0.5),
                _ms(stalls.big_decode[size], 0.5),
                "ms",
                higher_is_better=False,
                note=f"read on the loop {_stall_text(stalls.big[size])}; rows.from_row of it, which "
                f"runs on the loop whichever thread reads, {_stall_text(stalls.big_decode[size])}",
            )
        )
    return results


# -- 4: newest 20 of one graph in a big database ----------------------------------------------------

_BASE_NS = Timestamp.parse("2025-01-01T00:00:00Z").unix_nanos
_BATCH = 50_000


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _bulk_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a cache we can rebuild: speed over durability here
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB of page cache: index inserts stay in memory
    return conn


def _finish_bulk(conn: sqlite3.Connection, building: Path, final: Path) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    os.replace(building, final)


async def ensure_ours_big(cfg: Config) -> Path:
    path = cfg.data_dir / f"ckptdb-{cfg.rows}-{HEAD}.db"
    if path.exists():
        log(f"reusing {path.relative_to(REPO_DIR) if path.is_relative_to(REPO_DIR) else path}")
        return path
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    building = path.with_name(path.name + ".building")
    _remove_db(building)
    log(f"building {path.name}: {cfg.rows:,} rows over {GRAPHS} graphs (cached for later runs)...")
    started = time.perf_counter()
    store = await open_store(building)  # ckptdb's own schema, migrations and all
    await store.close()
    graphs = [f"graph-{k:02d}" for k in range(GRAPHS)]
    types = list(InterruptType)
    conn = _bulk_connection(building)
    try:
        for first in range(0, cfg.rows, _BATCH):
            batch = []
            for i in range(first, min(first + _BATCH, cfg.rows)):
                step = i // GRAPHS
                checkpoint = Checkpoint(
                    id=str(uuid.uuid4()),
                    graph_name=graphs[i % GRAPHS],
                    current_node=NODES[step % 4],
                    state_snapshot=small_state(step),
                    path=["__start__", NODES[step % 4]],
                    step_count=step,
                    created_at=Timestamp(_BASE_NS + i * 1_000_000),  # 1 ms apart, all distinct
                    pending_action=None,
                    interrupt_type=types[i % 4],
                )
                batch.append(sqlrows.to_row(checkpoint))
            conn.execute("BEGIN")
            conn.executemany(sqlrows.INSERT_IF_ABSENT, batch)
            conn.execute("COMMIT")
    except BaseException:
        conn.close()
        _remove_db(building)
        raise
    _finish_bulk(conn, building, path)
    log(f"built in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 1e6:,.0f} MB)")
    return path


async def ensure_peer_big(cfg: Config) -> Path:
    path = cfg.data_dir / f"peer-{cfg.rows}.db"
    if path.exists():
        log(f"reusing {path.relative_to(REPO_DIR) if path.is_relative_to(REPO_DIR) else path}")
        return path
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    building = path.with_name(path.name + ".building")
    _remove_db(building)
    log(f"building {path.name}: {cfg.rows:,} peer rows over {GRAPHS} threads (cached for later runs)...")
    started = time.perf_counter()
    conn_async = await aiosqlite.connect(building)
    await AsyncSqliteSaver(conn_async).setup()  # the peer's own schema
    await conn_async.close()
    serde = JsonPlusSerializer()
    parents: list[str | None] = [None] * GRAPHS
    conn = _bulk_connection(building)
    try:
        for first in range(0, cfg.rows, _BATCH):
            batch = []
            for i in range(first, min(first + _BATCH, cfg.rows)):
                step = i // GRAPHS
                thread = i % GRAPHS
                checkpoint = peer_checkpoint(small_state(step), step)  # uuid6 ids: time-ordered
                kind, blob = serde.dumps_typed(checkpoint)
                metadata = json.dumps({"source": "loop", "step": step, "parents": {}}).encode()
                batch.append(
                    (f"graph-{thread:02d}", "", checkpoint["id"], parents[thread], kind, blob, metadata)
                )
                parents[thread] = checkpoint["id"]
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
                "type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
            conn.execute("COMMIT")
    except BaseException:
        conn.close()
        _remove_db(building)
        raise
    _finish_bulk(conn, building, path)
    log(f"built in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 1e6:,.0f} MB)")
    return path


@dataclass(slots=True)
class QueryFigures:
    median_ms: float
    p95_ms: float
    plan: list[str]
    plan_bad: list[str]


async def bench_query_ours(cfg: Config, path: Path) -> QueryFigures:
    store = await open_store(path, create=False)
    graphs = [f"graph-{k:02d}" for k in range(GRAPHS)]
    try:
        # The SQL `query(graph_name=G, limit=20)` runs: select_infos with one extra row (to know
        # whether there is a next page), exactly as SqlCheckpointStore.query builds it.
        sql, params = store.select_infos(CheckpointQuery.build(graph_name=graphs[7], limit=20), limit=21)
        plan = [str(row[3]) for row in await store.backend.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)]
        # Bad: a full scan (of the table or of a whole index) or a sort step for ORDER BY.
        plan_bad = [line for line in plan if line.startswith("SCAN") or "TEMP B-TREE" in line]
        if not any("USING INDEX" in line or "USING COVERING INDEX" in line for line in plan):
            plan_bad.append("(no index used)")
        log(f"SQL: {sql}   params={params}")
        for line in plan:
            log(f"EXPLAIN QUERY PLAN: {line}")

        for graph in graphs * 4:  # warm-up: every graph's newest pages in cache
            await store.query(graph_name=graph, limit=20)
        times: list[float] = []
        for run in range(cfg.query_runs):
            graph = graphs[run % GRAPHS]
            start = time.perf_counter()
            page = await store.query(graph_name=graph, limit=20)
            times.append(time.perf_counter() - start)
            if len(page.items) != 20 or page.items[0].graph_name != graph:
                raise RuntimeError(f"query for {graph} returned {len(page.items)} rows")
    finally:
        await store.close()
    times.sort()
    return QueryFigures(statistics.median(times) * 1e3, times[int(len(times) * 0.95)] * 1e3, plan, plan_bad)


async def bench_list_peer(cfg: Config, path: Path) -> float:
    conn = await aiosqlite.connect(path)
    try:
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        threads = [f"graph-{k:02d}" for k in range(GRAPHS)]

        async def newest(thread: str) -> int:
            config = RunnableConfig(configurable={"thread_id": thread, "checkpoint_ns": ""})
            return len([t async for t in saver.alist(config, limit=20)])

        for thread in threads:
            await newest(thread)
        times: list[float] = []
        for run in range(cfg.peer_list_runs):
            start = time.perf_counter()
            got = await newest(threads[run % GRAPHS])
            times.append(time.perf_counter() - start)
            if got != 20:
                raise RuntimeError(f"peer alist returned {got} rows")
    finally:
        await conn.close()
    return statistics.median(times) * 1e3


# -- the scenario ---------------------------------------------------------------------------------


def _spread(values: list[float]) -> str:
    return "/".join(f"{v:,.0f}" for v in values)


def _throughput(
    metric: str, ours_all: list[float], peer_all: list[float], target: float, detail: str
) -> Result:
    """Median ops/s of each side; the note keeps every run and each run's own ratio."""
    ratios = "/".join(f"{o / p:.2f}x" for o, p in zip(ours_all, peer_all, strict=True))
    log(f"{metric}: ckptdb {_spread(ours_all)} ops/s, peer {_spread(peer_all)} ops/s, ratios {ratios}")
    return Result(
        SCENARIO,
        metric,
        statistics.median(ours_all),
        statistics.median(peer_all),
        "ops/s",
        target_ratio=target,
        note=f"{metric}: {detail}, median of {len(ours_all)} runs; runs ckptdb {_spread(ours_all)}, "
        f"peer {_spread(peer_all)} ops/s; per-run ratios {ratios}",
    )


def _loop_turns_result(level: str, ours: list[float], peer: list[float]) -> Result:
    def ms(gaps: list[float], q: float) -> float:
        return sorted(gaps)[min(len(gaps) - 1, int(q * len(gaps)))] * 1e3

    def spread(gaps: list[float]) -> str:
        return f"median {ms(gaps, 0.5):.2f}, p99 {ms(gaps, 0.99):.2f}, max {max(gaps) * 1e3:.2f} ms"

    log(f"loop turns while {TASKS} tasks save [{level}]: ckptdb {spread(ours)}; peer {spread(peer)}")
    return Result(
        SCENARIO,
        f"loop turn p99, {TASKS} tasks saving [{level}]",
        ms(ours, 0.99),
        ms(peer, 0.99),
        "ms",
        higher_is_better=False,
        note=f"time between two turns of the event loop (how long any other task waits) while {TASKS} "
        f"tasks save; ckptdb {spread(ours)} over {len(ours):,} turns; peer {spread(peer)} over "
        f"{len(peer):,}. Information: ckptdb commits on the loop's thread (commit_on_loop=False moves "
        "that to its writer thread)",
    )


async def run_async(cfg: Config) -> list[Result]:
    results: list[Result] = []
    sample = make_state(0, "g")
    log(
        f"state: {len(json.dumps(sample, separators=(',', ':')))} B of JSON per checkpoint; "
        f"peer blob {len(JsonPlusSerializer().dumps_typed(peer_checkpoint(sample, 0))[1])} B (msgpack)"
    )
    for level in cfg.levels:
        log(f"synchronous={level} (both stores, WAL; checked on the live connections)")
        if level == "NORMAL":
            log(f"ckptdb sync_interval: {cfg.store_options.get('sync_interval', 'default (1 s)')}")
        for tasks, metric, target in ((1, "save sequential", 1.5), (TASKS, f"save {TASKS} tasks", 5.0)):
            ours_all, peer_all = await bench_saves(cfg, level, tasks)
            detail = f"{cfg.n} saves in fresh files, blocks of {max(1, BLOCK // tasks) * tasks} alternating"
            results.append(_throughput(f"{metric} [{level}]", ours_all, peer_all, target, detail))
        rates = await bench_loads(cfg, level)
        detail = f"{cfg.loads} random ids over {cfg.n} rows, blocks of {BLOCK} taking turns"
        results.append(_throughput(f"load by id [{level}]", rates["ours"], rates["peer"], 10.0, detail))
        results.append(
            _throughput(
                f"load by id, read_on_loop=False [{level}]",
                rates["hop"],
                rates["peer"],
                3.0,
                detail + "; every read through aiosqlite's thread",
            )
        )
        results.extend(_stall_results(level, await bench_stalls(cfg, level)))
        results.append(_loop_turns_result(level, *await bench_loop_turns(cfg, level)))

    figures = await bench_query_ours(cfg, await ensure_ours_big(cfg))
    peer_ms: float | None = None
    if cfg.peer_list:
        peer_ms = await bench_list_peer(cfg, await ensure_peer_big(cfg))
    rows = f"{cfg.rows / 1e6:g}M" if cfg.rows >= 1_000_000 else f"{cfg.rows // 1000}k"
    plan_text = " | ".join(figures.plan)
    results.append(
        Result(
            SCENARIO,
            f"newest 20 of a graph, {rows} rows",
            figures.median_ms,
            None,
            "ms",
            max_value=1.0,
            higher_is_better=False,
            note=f"query(graph_name=G, limit=20): median of {cfg.query_runs} over {GRAPHS} graphs, "
            f"p95 {figures.p95_ms:.3f} ms; plan: {plan_text}",
        )
    )
    results.append(
        Result(
            SCENARIO,
            "query plan: full scans + sorts",
            float(len(figures.plan_bad)),
            None,
            "steps",
            max_value=0,
            higher_is_better=False,
            note="EXPLAIN QUERY PLAN steps that are a full SCAN or a TEMP B-TREE FOR ORDER BY (want none)"
            + (f": {'; '.join(figures.plan_bad)}" if figures.plan_bad else ""),
        )
    )
    if peer_ms is not None:
        results.append(
            Result(
                SCENARIO,
                f"peer alist newest 20 of a thread, {rows} rows",
                figures.median_ms,
                peer_ms,
                "ms",
                higher_is_better=False,
                note="not the same query, information only: the peer has no graph index; alist lists one "
                "thread (its primary key) and returns full deserialized checkpoints plus a pending-writes "
                "lookup per row; ckptdb's column is its graph query above",
            )
        )
    return results


def run(args: argparse.Namespace) -> list[Result]:
    return asyncio.run(run_async(Config.from_args(args)))
