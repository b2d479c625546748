"""inspect.GraphsCache, the graphs page's summary: a read-only store keeps it across requests and
re-validates it on every call, so what ANOTHER process commits (a save, a delete, a prune) shows on
the very next call. Runs on SQLite (cached behind `PRAGMA data_version`) and PostgreSQL (no exact
token there: every call reads afresh)."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from urllib.parse import unquote_plus

from helpers.db import is_postgres
from helpers.web import serving

from ckptdb import Checkpoint, InterruptType, Timestamp, inspect, open_store
from ckptdb.sql import inspection

NS = 1_000_000_000
BASE = 1_790_000_000 * NS


def make(cid: str, graph: str, nanos: int) -> Checkpoint:
    return Checkpoint(
        id=cid,
        graph_name=graph,
        current_node="n",
        state_snapshot={"current_node": None, "messages": [], "values": {}},
        path=["start"],
        step_count=0,
        created_at=Timestamp(nanos),
        pending_action=None,
        interrupt_type=InterruptType.AFTER_NODE,
    )


def ckptdb(db: str, *args: str) -> None:
    """A command in a process of its own: another connection, another process."""
    done = subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", db, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


SAVE_ONE = """
import asyncio, sys
from ckptdb import Checkpoint, InterruptType, Timestamp, open_store
async def main():
    async with await open_store(sys.argv[1]) as store:
        await store.save(Checkpoint(id="late", graph_name=sys.argv[2], current_node="n",
            state_snapshot={"current_node": None, "messages": [], "values": {}}, path=["start"],
            step_count=0, created_at=Timestamp(int(sys.argv[3])), pending_action=None,
            interrupt_type=InterruptType.AFTER_NODE))
asyncio.run(main())
"""


def counts(summaries: list[inspect.GraphSummary]) -> dict[str, int]:
    return {summary.graph_name: summary.checkpoints for summary in summaries}


async def test_another_process_save_delete_and_prune_show_on_the_next_call(db_target: str) -> None:
    async with await open_store(db_target) as store:
        await store.save_many([make(f"a{i}", "alpha", BASE + i * NS) for i in range(5)])
        await store.save_many([make(f"b{i}", "beta", BASE + i * NS) for i in range(3)])
    async with await inspect.open_existing(db_target) as reader:
        cache = inspect.GraphsCache()
        assert counts(await cache.graphs(reader)) == {"alpha": 5, "beta": 3}
        assert counts(await cache.graphs(reader)) == {"alpha": 5, "beta": 3}  # nothing changed

        done = subprocess.run(
            [sys.executable, "-c", SAVE_ONE, db_target, "gamma", str(BASE + 100 * NS)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert counts(await cache.graphs(reader)) == {"alpha": 5, "beta": 3, "gamma": 1}

        ckptdb(db_target, "rm", "b0")
        assert counts(await cache.graphs(reader)) == {"alpha": 5, "beta": 2, "gamma": 1}

        ckptdb(db_target, "prune", "--keep-last", "2", "--yes")
        after = await cache.graphs(reader)
        assert counts(after) == {"alpha": 2, "beta": 2, "gamma": 1}
        assert after == await inspect.graphs(reader)  # the same summary a fresh read gives


async def test_the_token_is_exact_on_sqlite_and_absent_on_postgresql(db_target: str) -> None:
    """Unchanged while nothing commits, changed by another process's commit; None on PostgreSQL,
    which has no cheap exact token (so nothing is cached there)."""
    async with await open_store(db_target) as store:
        await store.save(make("a0", "alpha", BASE))
    async with await inspect.open_existing(db_target) as reader:
        first = await inspection.change_token(reader)
        if is_postgres(db_target):
            assert first is None
            return
        assert first is not None and await inspection.change_token(reader) == first
        ckptdb(db_target, "rm", "a0")
        assert await inspection.change_token(reader) != first


def served_counts(base: str) -> dict[str, int]:
    """The graphs page's (graph, checkpoints) cells, read from a real `ckptdb serve`."""
    with urllib.request.urlopen(base + "/", timeout=30) as response:
        body = response.read().decode()
    rows = re.findall(r'graph=([^"&]+)"[^<]*>[^<]*</a></td>\s*<td class="n">([\d,]+)</td>', body)
    return {unquote_plus(name): int(count.replace(",", "")) for name, count in rows}


def test_the_served_graphs_page_shows_another_process_commits_on_the_next_request(db_target: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SAVE_ONE, db_target, "alpha", str(BASE)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    with serving(db_target) as base:
        assert served_counts(base) == {"alpha": 1}
        assert served_counts(base) == {"alpha": 1}
        ckptdb(db_target, "rm", "late")
        assert served_counts(base) == {}
