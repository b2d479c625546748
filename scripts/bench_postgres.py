"""Scenario `postgres`: ckptdb's PostgreSQL backend beside langgraph's AsyncPostgresSaver, same server.

1. sequential saves            `store.save`              vs `saver.aput`                (ops/s, >= 1.5x)
2. 16 concurrent tasks saving  `store.save` x gather     vs `saver.aput` x gather       (ops/s, >= 1.5x)
3. load by id                  `store.load`              vs `saver.aget_tuple` with id  (ops/s, >= 1.5x)
4. newest 20 of one graph      `store.iter_checkpoints`  vs `saver.alist(limit=20)`     (lists/s, >= 1.5x)
   (full checkpoints on both sides; ckptdb's summaries-only `store.query(limit=20)` is shown too)

Both run against one durable server started here with scripts/pg_cluster.py (not --fast: fsync and
synchronous_commit on, as in production), or the server given by --postgres-url; each side gets its
own fresh database per run, created from the same template. The payload is bench_core's (~2 KB of
messages + values; langgraph keeps it in channel_values, i.e. in its blobs table). Each side uses
its recommended production set-up: ckptdb's `open_store(url)` (an asyncpg pool), the peer on a
psycopg AsyncConnectionPool (autocommit, prepare_threshold=0, dict_row, as its docs say).
The two take turns in blocks (alternating who goes first) so load from elsewhere hits both alike;
figures are the median of --postgres-repeats runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pg_cluster
import psycopg
from bench import Result
from bench_core import TASKS, PeerPut, Workload, block_order, gather_chunks
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ckptdb import CheckpointQuery, SqlCheckpointStore, open_store

SCENARIO = "postgres"
TARGET = 1.5
BLOCK = 192
SEED = 20_241_124

SIZES = {"n": (2000, 320), "loads": (3000, 480), "lists": (1000, 200)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scenario postgres (ckptdb vs langgraph AsyncPostgresSaver)")
    group.add_argument(
        "--postgres-url",
        metavar="URL",
        help="an existing server to use (a role that may CREATE DATABASE); default: start a durable "
        "throwaway PostgreSQL 15 cluster with scripts/pg_cluster.py",
    )
    group.add_argument("--postgres-n", type=int, metavar="N", help="saves per timed run (default 2000)")
    group.add_argument("--postgres-loads", type=int, metavar="N", help="loads per run (default 3000)")
    group.add_argument("--postgres-lists", type=int, metavar="N", help="lists per run (default 1000)")
    group.add_argument("--postgres-repeats", type=int, default=3, metavar="K", help="timed runs (median)")


@dataclass(frozen=True, slots=True)
class Config:
    url: str | None
    n: int
    loads: int
    lists: int
    repeats: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        pick = 1 if args.quick else 0

        def size(name: str, given: int | None) -> int:
            return given if given is not None else SIZES[name][pick]

        n = size("n", getattr(args, "postgres_n", None))
        if n < TASKS:
            raise ValueError(f"--postgres-n must be at least {TASKS}, got {n}")
        return cls(
            getattr(args, "postgres_url", None),
            n,
            size("loads", getattr(args, "postgres_loads", None)),
            size("lists", getattr(args, "postgres_lists", None)),
            max(1, getattr(args, "postgres_repeats", 3)),
        )


def log(message: str) -> None:
    print(f"   {message}", flush=True)


# -- the server and its databases -----------------------------------------------------------------


class Server:
    """Hands out fresh databases on one server and drops them afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.created: list[str] = []

    def _with_db(self, name: str) -> str:
        return urlunsplit(urlsplit(self.url)._replace(path="/" + name))

    def fresh(self, label: str) -> str:
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self._with_db(name)

    def drop_all(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()

    def settings(self) -> str:
        with psycopg.connect(self.url, autocommit=True) as conn:
            found = [
                conn.execute(f"SHOW {name}").fetchone()
                for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes")
            ]
        version, fsync, sync_commit, fpw = (row[0] if row else "?" for row in found)
        return (
            f"PostgreSQL {version}, fsync={fsync}, synchronous_commit={sync_commit}, full_page_writes={fpw}"
        )


async def open_ours(url: str) -> SqlCheckpointStore:
    return await open_store(url)


async def open_peer(url: str) -> tuple[AsyncConnectionPool[Any], AsyncPostgresSaver]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=10,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open()
    saver = AsyncPostgresSaver(pool)
    await saver.setup()
    return pool, saver


def peer_put(saver: AsyncPostgresSaver) -> Callable[[PeerPut], Awaitable[Any]]:
    async def put(item: PeerPut) -> None:
        await saver.aput(item.config, item.checkpoint, item.metadata, item.new_versions)

    return put


# -- 1 and 2: saves -------------------------------------------------------------------------------


FLOOR_SHARE = 4
"""Per block of saves, 1/FLOOR_SHARE as many bare durable commits, timed alongside (the floor)."""


async def bench_saves(
    server: Server, cfg: Config, tasks: int
) -> tuple[list[float], list[float], list[float]]:
    """Ops/s of each store per run, and of a bare durable commit (one-row INSERT, autocommit) timed
    in the same blocks: no store can save sequentially faster than that floor."""
    per_block = max(1, BLOCK // tasks)
    ours_rates: list[float] = []
    peer_rates: list[float] = []
    floor_rates: list[float] = []
    for rep in range(cfg.repeats):
        warm = Workload.build(tasks, max(2 * tasks, 64), f"warm{rep}")
        work = Workload.build(tasks, cfg.n, f"g{rep}")
        ours_url = server.fresh("ours")
        store = await open_ours(ours_url)
        pool, saver = await open_peer(server.fresh("peer"))
        floor_conn = await asyncpg.connect(ours_url)
        put = peer_put(saver)
        try:
            await floor_conn.execute("CREATE TABLE bench_floor (x int)")
            await gather_chunks(warm.ours, store.save)
            await gather_chunks(warm.peer, put)
            spent = {"ours": 0.0, "peer": 0.0, "floor": 0.0}
            floor_count = 0
            longest = max(len(chunk) for chunk in work.ours)
            for block, first in enumerate(range(0, longest, per_block)):
                for side in block_order(block + rep):
                    source = work.ours if side == "ours" else work.peer
                    chunks: list[list[Any]] = [c[first : first + per_block] for c in source]
                    save: Callable[[Any], Awaitable[Any]] = store.save if side == "ours" else put
                    start = time.perf_counter()
                    await gather_chunks(chunks, save)
                    spent[side] += time.perf_counter() - start
                start = time.perf_counter()
                for _ in range(max(1, per_block // FLOOR_SHARE)):
                    await floor_conn.execute("INSERT INTO bench_floor VALUES (1)")
                    floor_count += 1
                spent["floor"] += time.perf_counter() - start
            expected = warm.count + work.count
            if await store.count(CheckpointQuery(limit=None)) != expected:
                raise RuntimeError("ckptdb lost saves")
            async with pool.connection() as conn:
                row = await (await conn.execute("SELECT count(*) AS n FROM checkpoints")).fetchone()
            if row is None or row["n"] != expected:
                raise RuntimeError(f"peer stored {row}, expected {expected}")
        finally:
            await floor_conn.close()
            await store.close()
            await pool.close()
            server.drop_all()
        ours_rates.append(work.count / spent["ours"])
        peer_rates.append(work.count / spent["peer"])
        floor_rates.append(floor_count / spent["floor"])
    return ours_rates, peer_rates, floor_rates


# -- 3 and 4: reads -------------------------------------------------------------------------------


@dataclass(slots=True)
class ReadRates:
    load: tuple[list[float], list[float]]
    full_list: tuple[list[float], list[float]]
    summary_list: list[float]


async def bench_reads(server: Server, cfg: Config) -> ReadRates:
    """One populated database per side: 16 graphs/threads of n/16 checkpoints each."""
    work = Workload.build(TASKS, cfg.n, "read")
    ours_ids = [cp.id for chunk in work.ours for cp in chunk]
    peer_configs = [
        RunnableConfig(
            configurable={
                "thread_id": p.config["configurable"]["thread_id"],
                "checkpoint_ns": "",
                "checkpoint_id": p.checkpoint["id"],
            }
        )
        for chunk in work.peer
        for p in chunk
    ]
    graphs = [f"read-{task:02d}" for task in range(TASKS)]
    rng = random.Random(SEED)
    rates = ReadRates(([], []), ([], []), [])
    store = await open_ours(server.fresh("ours"))
    pool, saver = await open_peer(server.fresh("peer"))
    try:
        await store.save_many(cp for chunk in work.ours for cp in chunk)
        for chunk in work.peer:
            for p in chunk:
                await saver.aput(p.config, p.checkpoint, p.metadata, p.new_versions)
        async with pool.connection() as conn:
            await conn.execute("ANALYZE")
        await store.backend.fetchall("ANALYZE")

        # Both return what was saved, and both lists are the newest 20 (checked outside the clock).
        loaded = await store.load(work.ours[0][0].id)
        assert loaded is not None and loaded.state_snapshot == work.ours[0][0].state_snapshot
        got = await saver.aget_tuple(peer_configs[0])
        first_peer = work.peer[0][0].checkpoint
        assert got is not None and got.checkpoint["channel_values"] == first_peer["channel_values"]
        newest = CheckpointQuery(graph_name=graphs[0], limit=20)
        ours_list = [cp.id async for cp in store.iter_checkpoints(newest)]
        peer_list = [t.checkpoint["id"] async for t in saver.alist(_thread(graphs[0]), limit=20)]
        assert ours_list == [cp.id for cp in reversed(work.ours[0][-20:])]
        assert peer_list == [p.checkpoint["id"] for p in reversed(work.peer[0][-20:])]

        async def ours_load(i: int) -> None:
            if await store.load(ours_ids[i]) is None:
                raise RuntimeError("ckptdb lost a checkpoint")

        async def peer_load(i: int) -> None:
            if await saver.aget_tuple(peer_configs[i]) is None:
                raise RuntimeError("peer lost a checkpoint")

        async def ours_full_list(g: int) -> None:
            query = CheckpointQuery(graph_name=graphs[g], limit=20)
            if len([cp async for cp in store.iter_checkpoints(query)]) != 20:
                raise RuntimeError("ckptdb list short")

        async def peer_full_list(g: int) -> None:
            if len([t async for t in saver.alist(_thread(graphs[g]), limit=20)]) != 20:
                raise RuntimeError("peer list short")

        async def ours_summaries(g: int) -> None:
            if len((await store.query(graph_name=graphs[g], limit=20)).items) != 20:
                raise RuntimeError("ckptdb query short")

        for i in rng.sample(range(len(ours_ids)), min(100, len(ours_ids))):  # warm-up
            await ours_load(i)
            await peer_load(i)
        for g in range(TASKS):
            await ours_full_list(g)
            await peer_full_list(g)
            await ours_summaries(g)

        for rep in range(cfg.repeats):
            picks = [rng.randrange(len(ours_ids)) for _ in range(cfg.loads)]
            ours, peer = await _interleaved(picks, ours_load, peer_load, rep)
            rates.load[0].append(ours)
            rates.load[1].append(peer)
            lists = [rng.randrange(TASKS) for _ in range(cfg.lists)]
            ours, peer = await _interleaved(lists, ours_full_list, peer_full_list, rep)
            rates.full_list[0].append(ours)
            rates.full_list[1].append(peer)
            start = time.perf_counter()
            for g in lists:
                await ours_summaries(g)
            rates.summary_list.append(len(lists) / (time.perf_counter() - start))
    finally:
        await store.close()
        await pool.close()
        server.drop_all()
    return rates


def _thread(graph: str) -> RunnableConfig:
    return RunnableConfig(configurable={"thread_id": graph, "checkpoint_ns": ""})


async def _interleaved(
    picks: list[int], ours: Callable[[int], Awaitable[None]], peer: Callable[[int], Awaitable[None]], rep: int
) -> tuple[float, float]:
    spent = {"ours": 0.0, "peer": 0.0}
    for block, first in enumerate(range(0, len(picks), BLOCK)):
        chosen = picks[first : first + BLOCK]
        for side in block_order(block + rep):
            run = ours if side == "ours" else peer
            start = time.perf_counter()
            for pick in chosen:
                await run(pick)
            spent[side] += time.perf_counter() - start
    return len(picks) / spent["ours"], len(picks) / spent["peer"]


# -- the scenario ---------------------------------------------------------------------------------


def _runs(ours: list[float], peer: list[float]) -> str:
    pairs = zip(ours, peer, strict=True)
    return "runs (ckptdb/peer): " + ", ".join(f"{o:,.0f}/{p:,.0f} ({o / p:.2f}x)" for o, p in pairs)


async def _run(cfg: Config, url: str) -> list[Result]:
    server = Server(url)
    settings = server.settings()
    log(settings)
    results: list[Result] = []

    def add(metric: str, pair: tuple[list[float], list[float]], unit: str, note: str = "") -> None:
        ours, peer = statistics.median(pair[0]), statistics.median(pair[1])
        log(f"{metric}: ckptdb {ours:,.0f} {unit}, peer {peer:,.0f} {unit} ({ours / peer:.2f}x)")
        results.append(
            Result(SCENARIO, metric, ours, peer, unit, target_ratio=TARGET, note=f"{note}{_runs(*pair)}")
        )

    log(f"sequential saves: {cfg.n} x {cfg.repeats} runs")
    ours, peer, floor = await bench_saves(server, cfg, 1)
    # With the floor's time per commit F: a store with no cost of its own at all would reach
    # peer_time / F times the peer; this is the ceiling of the ratio on this disk, in this run.
    ceilings = [f / p for f, p in zip(floor, peer, strict=True)]
    add(
        "sequential save",
        (ours, peer),
        "ops/s",
        f"{settings}; best possible ratio on this disk (bare commit vs peer) per run: "
        + ", ".join(f"{c:.2f}x" for c in ceilings)
        + "; ",
    )
    results.append(
        Result(
            SCENARIO,
            "bare durable commit (floor)",
            statistics.median(floor),
            None,
            "ops/s",
            note="one-row INSERT in autocommit, timed in the same blocks as the sequential saves: each "
            "save of either store waits for one such WAL flush; runs: "
            + ", ".join(f"{f:,.0f}" for f in floor),
        )
    )
    log(f"{TASKS}-way concurrent saves: {cfg.n} x {cfg.repeats} runs")
    ours, peer, _ = await bench_saves(server, cfg, TASKS)
    note = "one store / one saver per process, 16 tasks; "
    add(f"{TASKS}-way concurrent save", (ours, peer), "ops/s", note)
    log(f"reads: {cfg.loads} loads and {cfg.lists} lists x {cfg.repeats} runs")
    reads = await bench_reads(server, cfg)
    add("load by id", reads.load, "ops/s")
    add(
        "newest 20 of a graph (full checkpoints)",
        reads.full_list,
        "lists/s",
        "ckptdb iter_checkpoints(limit=20) vs alist(limit=20), both decode every checkpoint; ",
    )
    summaries = statistics.median(reads.summary_list)
    results.append(
        Result(
            SCENARIO,
            "newest 20 of a graph (summaries)",
            summaries,
            statistics.median(reads.full_list[1]),
            "lists/s",
            note="ckptdb query(limit=20) returns CheckpointInfo only; the peer has no summaries-only list "
            "(its figure is alist's, for scale)",
        )
    )
    return results


async def run(args: argparse.Namespace) -> list[Result]:
    cfg = Config.from_args(args)
    if cfg.url is not None:
        return await _run(cfg, cfg.url)
    root = Path(tempfile.mkdtemp(prefix="ckptdb-bench-pg-"))
    log(f"starting a durable PostgreSQL 15 cluster in {root} (scripts/pg_cluster.py, not --fast)")
    try:
        url = pg_cluster.start_cluster(root, fast=False)
        return await _run(cfg, url)
    finally:
        pg_cluster.stop_cluster(root)
