"""`ckptdb langgraph threads|history|show|diff` without `--source` (ckptdb's own LangGraph tables in
--db), and `prune` / `delete` there, on both engines: a real graph's database imported into ckptdb
shows what `--source` shows of the original, and prune / delete leave every kept checkpoint whole."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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


@pytest.fixture
def imported(engine: str, tmp_path: Path) -> tuple[str, str]:
    """(the LangGraph SQLite source, the --db it was imported into)."""
    source = tmp_path / "langgraph.sqlite"
    lg.write_sqlite(source)
    target = new_db_target(engine, tmp_path)
    report = asyncio.run(run_langgraph_import(target, source))
    assert report.exit_status == 0
    return str(source), target


def _run(db: str, *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(main, ["--db", db, "langgraph", *args], input=input)


def _jsonl(done: Any) -> list[Any]:
    assert done.exit_code == 0, done.output
    return [json.loads(line) for line in done.output.splitlines()]


def test_threads_and_history_show_what_the_source_shows(imported: tuple[str, str]) -> None:
    source, db = imported
    ours = _jsonl(_run(db, "threads", "-f", "jsonl"))
    theirs = _jsonl(_run(db, "threads", "--source", source, "-f", "jsonl"))
    for row in ours:
        updated = dt.datetime.fromisoformat(row.pop("updated"))
        assert abs(updated - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=10)
    assert ours == theirs and len(ours) > len(lg.THREADS)  # the subgraph's namespaces too
    for thread in lg.THREADS:
        assert _jsonl(_run(db, "history", thread, "-f", "jsonl")) == _jsonl(
            _run(db, "history", thread, "--source", source, "-f", "jsonl")
        )
    table = _run(db, "threads", "-f", "table")
    assert table.output.splitlines()[0].split() == [
        "thread_id",
        "checkpoint_ns",
        "checkpoints",
        "step",
        "newest_checkpoint_id",
        "updated",
    ]


def test_show_and_diff_decode_as_from_the_source(imported: tuple[str, str]) -> None:
    source, db = imported
    for thread in lg.THREADS:
        ours = json.loads(_run(db, "show", thread).output)
        theirs = json.loads(_run(db, "show", thread, "--source", source).output)
        for key in ("checkpoint_id", "parent_checkpoint_id", "metadata", "channel_values"):
            assert ours[key] == theirs[key], (thread, key)
        assert [(w["task_id"], w["channel"], w["value"]) for w in ours["pending_writes"]] == [
            (w["task_id"], w["channel"], w["value"]) for w in theirs["pending_writes"]
        ]
        newest = ours["checkpoint_id"]
        assert (
            _run(db, "diff", thread, newest).output
            == _run(db, "diff", thread, newest, "--source", source).output
        )
    assert "added    /messages/" in _run(db, "diff", "long", ours["checkpoint_id"]).output


def test_failures_are_one_line(imported: tuple[str, str], tmp_path: Path) -> None:
    _, db = imported
    for args, line in (
        (
            ("history", "nope"),
            "Error: no thread 'nope' in the database: `ckptdb langgraph threads` lists them",
        ),
        (
            ("show", "long", "no-such-id"),
            "Error: no checkpoint 'no-such-id' in thread 'long': `ckptdb langgraph history` lists them",
        ),
        (
            ("delete", "nope", "-y"),
            "Error: no thread 'nope' in the database: `ckptdb langgraph threads` lists them",
        ),
    ):
        done = _run(db, *args)
        assert (done.exit_code, done.output) == (1, line + "\n"), args
    missing = tmp_path / "missing.db"
    done = _run(str(missing), "threads")
    assert done.exit_code == 1 and done.output.count("\n") == 1 and not missing.exists()


async def _tuples(db: str) -> dict[Any, Any]:
    async with AsyncCkptdbSaver.from_conn_string(db) as saver:
        return {
            (
                t.config["configurable"]["thread_id"],
                t.config["configurable"]["checkpoint_ns"],
                t.checkpoint["id"],
            ): (
                t.checkpoint,
                t.metadata,
                t.pending_writes,
            )
            async for t in saver.alist(None)
        }


def _check(db: str) -> Any:
    return CliRunner().invoke(main, ["--db", db, "db", "check"])


def test_prune_keeps_the_newest_of_each_thread_whole(imported: tuple[str, str]) -> None:
    _, db = imported
    before = asyncio.run(_tuples(db))
    dry = _run(db, "prune", "--keep-last", "2", "--dry-run")
    assert dry.exit_code == 0 and "nothing was changed (--dry-run)" in dry.output
    assert asyncio.run(_tuples(db)) == before
    assert _run(db, "prune", "--keep-last", "2", input="n\n").exit_code == 1  # asked, refused
    assert asyncio.run(_tuples(db)) == before
    done = _run(db, "prune", "--keep-last", "2", "-y")
    assert done.exit_code == 0, done.output
    after = asyncio.run(_tuples(db))
    per_thread: dict[tuple[str, str], list[str]] = {}
    for key in before:
        per_thread.setdefault(key[:2], []).append(key[2])
    kept = {(*where, cid) for where, ids in per_thread.items() for cid in sorted(ids)[-2:]}
    assert set(after) == kept and len(kept) < len(before)
    assert all(after[key][:2] == before[key][:2] for key in kept)  # every kept value still reads back
    assert "deleted " in done.output and " unused value" in done.output
    check = _check(db)
    assert check.exit_code == 0 and "0 with missing values" in check.output
    again = _run(db, "prune", "--keep-last", "2", "-y")
    assert again.output.startswith("nothing to delete")


def test_delete_removes_one_thread_and_nothing_else(imported: tuple[str, str]) -> None:
    _, db = imported
    before = asyncio.run(_tuples(db))
    assert _run(db, "delete", "long", input="n\n").exit_code == 1
    done = _run(db, "delete", "long", "-y")
    assert done.exit_code == 0 and done.output.startswith("deleted thread 'long': ")
    after = asyncio.run(_tuples(db))
    assert after == {key: value for key, value in before.items() if key[0] != "long"}
    assert _check(db).exit_code == 0


def test_thread_listing_pages_and_limits_agree_with_one_pass(imported: tuple[str, str]) -> None:
    from contextlib import aclosing

    from ckptdb.langgraph_inspect import open_stored
    from ckptdb.sql.langgraph_inspection import InspectionTables

    _, db = imported

    async def listed(page: int) -> list[Any]:
        store = await open_stored(db, readonly=True)
        try:
            async with aclosing(InspectionTables(store).thread_pages(page=page)) as pages:
                return [tuple(row) async for rows in pages for row in rows]
        finally:
            await store.close()

    whole = asyncio.run(listed(10_000))
    assert len(whole) > 5 and asyncio.run(listed(2)) == whole and asyncio.run(listed(1)) == whole
    everything = _jsonl(_run(db, "threads", "-f", "jsonl"))
    assert _jsonl(_run(db, "threads", "--limit", "3", "-f", "jsonl")) == everything[:3]
    assert [(r["thread_id"], r["checkpoint_ns"]) for r in everything] == [(r[0], r[1]) for r in whole]
