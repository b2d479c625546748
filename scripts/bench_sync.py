"""Scenario `sync`: ckptdb's synchronous store (`ckptdb.connect`) beside LangGraph's synchronous
`SqliteSaver`, same payload as `core` (~2 KB of state), same WAL mode and `PRAGMA synchronous`.

1. sequential saves at NORMAL   `store.save`  vs `SqliteSaver.put`               (ops/s, >= 0.9x)
   and vs a bare stdlib sqlite3 upsert of the same, pre-encoded row into the same table and
   indexes (`rows.UPSERT` on one autocommit connection): the physical limit  (ops/s, >= 0.8x)
2. 8 threads saving at FULL     `store.save`  vs `SqliteSaver.put` from 8 threads (ops/s, >= 4x)
3. load by id                   `store.load`  vs `SqliteSaver.get_tuple` with id  (ops/s, >= 1.2x)

Each figure is the median of `--sync-repeats` runs, each in fresh database files; within a run the
sides take turns in blocks (alternating who goes first), so load from elsewhere on the machine hits
all of them alike. Checkpoint objects (and the bare side's encoded rows) are built before the
clock starts.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import Result
from bench_core import BLOCK, TASKS, PeerPut, Workload, block_order
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver

import ckptdb
from ckptdb.sql import rows as sqlrows

SCENARIO = "sync"
THREADS = 8
SIZES = {"n": (3000, 600), "loads": (3000, 600), "threads_n": (4000, 800)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scenario sync (ckptdb.connect vs langgraph SqliteSaver)")
    group.add_argument("--sync-n", type=int, metavar="N", help="sequential saves per run")
    group.add_argument("--sync-loads", type=int, metavar="N", help="loads per run")
    group.add_argument("--sync-threads-n", type=int, metavar="N", help="saves per run from 8 threads")
    group.add_argument("--sync-repeats", type=int, default=3, metavar="K", help="runs per figure (median)")
    group.add_argument("--sync-tmpdir", type=Path, metavar="DIR", help="where the databases go")


def _size(args: argparse.Namespace, name: str) -> int:
    given = getattr(args, f"sync_{name}", None)
    return given if given else SIZES[name][1 if getattr(args, "quick", False) else 0]


def open_peer(path: Path, level: str) -> tuple[sqlite3.Connection, SqliteSaver]:
    conn = sqlite3.connect(path, check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    conn.execute(f"PRAGMA synchronous = {level}")
    return conn, saver


def check_pragmas(conn: sqlite3.Connection, level: str, who: str) -> None:
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    if (mode.lower(), sync) != ("wal", {"NORMAL": 1, "FULL": 2}[level]):
        raise RuntimeError(f"{who} runs with {mode}, synchronous={sync}; expected WAL + {level}")


def open_ours(path: Path, level: str) -> ckptdb.SyncSqlCheckpointStore:
    store = ckptdb.connect(path, synchronous=level)
    writer = store.backend._writer  # type: ignore[attr-defined]
    check_pragmas(writer, level, "ckptdb's writer")
    return store


def open_bare(path: Path, level: str) -> sqlite3.Connection:
    """A database with ckptdb's schema (table and indexes), written by a plain autocommit connection."""
    ckptdb.connect(path).close()
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA synchronous = {level}")
    check_pragmas(conn, level, "the bare connection")
    return conn


def put(saver: SqliteSaver, item: PeerPut) -> None:
    saver.put(item.config, item.checkpoint, item.metadata, item.new_versions)


def _median_ratio(ours: list[float], peer: list[float]) -> str:
    runs = ", ".join(f"{o:,.0f}/{p:,.0f}" for o, p in zip(ours, peer, strict=True))
    return f"runs (ckptdb/peer ops/s): {runs}"


def bench_sequential(args: argparse.Namespace) -> tuple[list[float], list[float], list[float]]:
    n = _size(args, "n")
    rates: dict[str, list[float]] = {"ours": [], "peer": [], "bare": []}
    for _ in range(args.sync_repeats):
        work = Workload.build(1, n, "seq")
        ours_cps = work.ours[0]
        peer_puts = work.peer[0]
        bare_rows = [sqlrows.to_row(cp) for cp in Workload.build(1, n, "bare").ours[0]]
        with tempfile.TemporaryDirectory(prefix="ckptdb-bench-", dir=args.sync_tmpdir) as tmp:
            store = open_ours(Path(tmp) / "ours.db", "NORMAL")
            conn, saver = open_peer(Path(tmp) / "peer.db", "NORMAL")
            bare = open_bare(Path(tmp) / "bare.db", "NORMAL")
            spent = dict.fromkeys(rates, 0.0)
            try:
                for block, first in enumerate(range(0, n, BLOCK)):
                    sides = [*block_order(block), "bare"] if block % 2 else ["bare", *block_order(block)]
                    for side in sides:
                        start = time.perf_counter()
                        if side == "ours":
                            for cp in ours_cps[first : first + BLOCK]:
                                store.save(cp)
                        elif side == "peer":
                            for item in peer_puts[first : first + BLOCK]:
                                put(saver, item)
                        else:
                            for row in bare_rows[first : first + BLOCK]:
                                bare.execute(sqlrows.UPSERT, row)
                        spent[side] += time.perf_counter() - start
                assert store.count() == n
            finally:
                store.close()
                conn.close()
                bare.close()
        for side in rates:
            rates[side].append(n / spent[side])
    return rates["ours"], rates["peer"], rates["bare"]


def _in_threads(chunks: Sequence[Sequence[Any]], save: Callable[[Any], None]) -> float:
    errors: list[BaseException] = []

    def worker(chunk: Sequence[Any]) -> None:
        try:
            for item in chunk:
                save(item)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent = time.perf_counter() - start
    if errors:
        raise errors[0]
    return spent


def bench_threads(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    n = _size(args, "threads_n")
    ours_rates: list[float] = []
    peer_rates: list[float] = []
    for repeat in range(args.sync_repeats):
        work = Workload.build(THREADS, n, "thr")
        with tempfile.TemporaryDirectory(prefix="ckptdb-bench-", dir=args.sync_tmpdir) as tmp:
            store = open_ours(Path(tmp) / "ours.db", "FULL")
            conn, saver = open_peer(Path(tmp) / "peer.db", "FULL")
            try:
                spent = {}
                for side in ("ours", "peer") if repeat % 2 == 0 else ("peer", "ours"):
                    if side == "ours":
                        spent[side] = _in_threads(work.ours, store.save)
                    else:
                        spent[side] = _in_threads(work.peer, lambda item, peer=saver: put(peer, item))
                assert store.count() == n
            finally:
                store.close()
                conn.close()
        ours_rates.append(n / spent["ours"])
        peer_rates.append(n / spent["peer"])
    return ours_rates, peer_rates


def bench_loads(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    n = _size(args, "loads")
    work = Workload.build(TASKS, n, "load")
    ours_ids = [cp.id for chunk in work.ours for cp in chunk]
    peer_configs = [
        RunnableConfig(
            configurable={
                "thread_id": f"load-{t:02d}",
                "checkpoint_ns": "",
                "checkpoint_id": p.checkpoint["id"],
            }
        )
        for t, chunk in enumerate(work.peer)
        for p in chunk
    ]
    ours_rates: list[float] = []
    peer_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ckptdb-bench-", dir=args.sync_tmpdir) as tmp:
        store = open_ours(Path(tmp) / "ours.db", "NORMAL")
        conn, saver = open_peer(Path(tmp) / "peer.db", "NORMAL")
        try:
            store.save_many(cp for chunk in work.ours for cp in chunk)
            for chunk in work.peer:
                for item in chunk:
                    put(saver, item)
            first = work.ours[0][0]
            loaded = store.load(first.id)
            assert loaded is not None and loaded.state_snapshot == first.state_snapshot
            got = saver.get_tuple(peer_configs[0])
            assert (
                got is not None
                and got.checkpoint["channel_values"] == work.peer[0][0].checkpoint["channel_values"]
            )
            for _ in range(args.sync_repeats):
                spent = {"ours": 0.0, "peer": 0.0}
                for block, start_at in enumerate(range(0, len(ours_ids), BLOCK)):
                    for side in block_order(block):
                        start = time.perf_counter()
                        if side == "ours":
                            for cid in ours_ids[start_at : start_at + BLOCK]:
                                if store.load(cid) is None:
                                    raise RuntimeError(f"ckptdb lost {cid}")
                        else:
                            for config in peer_configs[start_at : start_at + BLOCK]:
                                if saver.get_tuple(config) is None:
                                    raise RuntimeError(f"peer lost {config}")
                        spent[side] += time.perf_counter() - start
                ours_rates.append(len(ours_ids) / spent["ours"])
                peer_rates.append(len(ours_ids) / spent["peer"])
        finally:
            store.close()
            conn.close()
    return ours_rates, peer_rates


def run(args: argparse.Namespace) -> list[Result]:
    if not getattr(args, "sync_repeats", None):
        args.sync_repeats = 3
    results: list[Result] = []
    ours, peer, bare = bench_sequential(args)
    median = statistics.median
    results.append(
        Result(
            SCENARIO,
            "sequential save, NORMAL vs SqliteSaver.put",
            median(ours),
            median(peer),
            "ops/s",
            target_ratio=0.9,
            note=_median_ratio(ours, peer),
        )
    )
    results.append(
        Result(
            SCENARIO,
            "sequential save, NORMAL vs bare sqlite3 upsert",
            median(ours),
            median(bare),
            "ops/s",
            target_ratio=0.8,
            note=_median_ratio(ours, bare),
        )
    )
    ours, peer = bench_threads(args)
    results.append(
        Result(
            SCENARIO,
            f"{THREADS} threads saving, FULL vs SqliteSaver.put",
            median(ours),
            median(peer),
            "ops/s",
            target_ratio=4.0,
            note=_median_ratio(ours, peer),
        )
    )
    ours, peer = bench_loads(args)
    results.append(
        Result(
            SCENARIO,
            "load by id vs SqliteSaver.get_tuple",
            median(ours),
            median(peer),
            "ops/s",
            target_ratio=1.2,
            note=_median_ratio(ours, peer),
        )
    )
    return results
