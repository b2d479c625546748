"""The `langgraph_checkpoints_view` view (migration 0006) and every README `-- langgraph:` query,
run through `ckptdb sql` on both engines against a real graph's database imported into ckptdb;
what each must return is computed here from what LangGraph's own saver reads of the source."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import new_db_target
from helpers import langgraph_graphs as lg

pytest.importorskip("langgraph.graph", reason="needs the langgraphtest extra")

from ckptdb.cli import main
from ckptdb.langgraph import AsyncCkptdbSaver
from ckptdb.langgraph_import import run_langgraph_import
from ckptdb.langgraph_inspect import checkpoint_time

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_queries() -> dict[str, str]:
    found = {}
    for block in re.findall(r"```sql\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        title = block.splitlines()[0].removeprefix("--").strip()
        if title.startswith("langgraph:"):
            found[title.removeprefix("langgraph:").strip()] = block
    return found


@pytest.fixture(scope="module")
def imported(engine: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Any]]:
    """(the ckptdb database, every source checkpoint as SqliteSaver reads it)."""
    directory = tmp_path_factory.mktemp("lgsql")
    source = directory / "langgraph.sqlite"
    lg.write_sqlite(source)
    target = new_db_target(engine, directory)
    assert asyncio.run(run_langgraph_import(target, source)).exit_status == 0
    copy = directory / "copy.sqlite"
    shutil.copy(source, copy)
    with lg.sqlite_saver(copy) as saver:
        tuples = list(saver.list(None))
    return target, tuples


def _sql(db: str, query: str) -> list[tuple[Any, ...]]:
    done = CliRunner().invoke(main, ["--db", db, "sql", "-f", "jsonl", "--", query])
    assert done.exit_code == 0, done.output
    return [tuple(json.loads(line).values()) for line in done.output.splitlines()]


def _key(t: Any) -> tuple[str, str, str]:
    c = t.config["configurable"]
    return (c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"])


async def _value_bytes(db: str) -> dict[str, int]:
    sizes: dict[str, int] = defaultdict(int)
    async with AsyncCkptdbSaver.from_conn_string(db) as saver:
        for table in ("langgraph_values", "langgraph_items"):
            for thread_id, value in await saver.store.backend.fetchall(
                f"SELECT thread_id, value FROM {table}"
            ):
                sizes[thread_id] += 0 if value is None else len(bytes(value))
    return sizes


def _expected(db: str, tuples: list[Any]) -> dict[str, Callable[[], list[tuple[Any, ...]]]]:
    root = [t for t in tuples if _key(t)[1] == ""]

    def waiting() -> list[tuple[Any, ...]]:
        newest: dict[str, Any] = {}
        for t in root:
            if _key(t)[0] not in newest or _key(t)[2] > _key(newest[_key(t)[0]])[2]:
                newest[_key(t)[0]] = t
        rows = [
            (thread, _key(t)[2], t.metadata["step"], checkpoint_time(_key(t)[2]))
            for thread, t in newest.items()
            if any(channel == "__interrupt__" for _, channel, _ in t.pending_writes)
        ]
        return sorted(sorted(rows, key=lambda r: r[0]), key=lambda r: r[3] or "", reverse=True)

    def history() -> list[tuple[Any, ...]]:
        rows = [
            (
                "",
                _key(t)[2],
                t.metadata["step"],
                t.metadata["source"],
                checkpoint_time(_key(t)[2]),
                len(t.pending_writes),
            )
            for t in root
            if _key(t)[0] == "long"
        ]
        return sorted(rows, key=lambda r: r[1], reverse=True)[:20]

    def size() -> list[tuple[Any, ...]]:
        counts: dict[str, int] = defaultdict(int)
        for t in tuples:
            counts[_key(t)[0]] += 1
        sizes = asyncio.run(_value_bytes(db))
        rows = [(thread, n, sizes[thread]) for thread, n in counts.items()]
        return sorted(sorted(rows, key=lambda r: r[0]), key=lambda r: -r[2])

    def per_day() -> list[tuple[Any, ...]]:
        days: dict[str, list[Any]] = defaultdict(lambda: [0, set()])
        for t in tuples:
            day = days[(checkpoint_time(_key(t)[2]) or "")[:10]]
            day[0] += 1
            day[1].add(_key(t)[0])
        return [(day, n, len(threads)) for day, (n, threads) in sorted(days.items(), reverse=True)][:14]

    def inputs() -> list[tuple[Any, ...]]:
        rows = [
            (_key(t)[0], _key(t)[2], checkpoint_time(_key(t)[2]))
            for t in root
            if t.metadata["source"] == "input"
        ]
        return sorted(sorted(rows, key=lambda r: r[0]), key=lambda r: r[2] or "", reverse=True)

    return {
        "waiting for a human": waiting,
        "history of a thread": history,
        "size per thread": size,
        "per day": per_day,
        "inputs": inputs,
    }


def test_every_readme_query_is_checked(imported: tuple[str, list[Any]]) -> None:
    assert set(readme_queries()) == set(_expected(*imported))


@pytest.mark.parametrize("title", sorted(readme_queries()))
def test_readme_query(title: str, imported: tuple[str, list[Any]]) -> None:
    db, tuples = imported
    rows = _sql(db, readme_queries()[title])
    assert rows == _expected(db, tuples)[title]()
    assert rows


def test_the_view_has_a_row_per_checkpoint_with_its_time(imported: tuple[str, list[Any]]) -> None:
    db, tuples = imported
    rows = _sql(
        db,
        "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, step, source, created_at, "
        "pending_writes, metadata FROM langgraph_checkpoints_view",
    )
    by_key = {row[:3]: row for row in rows}
    assert len(by_key) == len(rows) == len(tuples)
    for t in tuples:
        row = by_key[_key(t)]
        parent = t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None
        assert row[3:6] == (parent, t.metadata["step"], t.metadata["source"])
        assert row[6] == checkpoint_time(_key(t)[2])
        made = dt.datetime.fromisoformat(t.checkpoint["ts"])
        assert abs(dt.datetime.fromisoformat(row[6]) - made) < dt.timedelta(seconds=1)
        assert row[7] == len(t.pending_writes) and json.loads(row[8]) == t.metadata
