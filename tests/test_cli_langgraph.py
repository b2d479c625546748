"""`ckptdb langgraph threads/history/show/diff`: exact output on a small source written by the
official saver (fixed ids, so every line can be spelled out), on SQLite and PostgreSQL; failures
in one line; the source never written to."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import PG, PG_SKIP, PG_SKIP_REASON
from helpers import langgraph_graphs as lg

from ckptdb.cli import main

pytest.importorskip("langgraph.checkpoint.sqlite", reason="needs the langgraphtest extra")

ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]

ID = "1f0a0000-0000-6000-800{}-000000000000"
TS = "2026-12-04T10:00:0{}+00:00"


def _fill(saver: Any) -> None:
    """Thread t1: three checkpoints (a question, an answer, an approval) and two pending writes on
    the newest; thread t2: one checkpoint."""
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint

    messages: list[Any] = []
    config: dict[str, Any] = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    steps = [
        (HumanMessage(content="refund order 7?", id="m1"), None),
        (AIMessage(content="checking", id="m2"), None),
        (AIMessage(content="refunded", id="m3"), True),
    ]
    for step, (message, approved) in enumerate(steps):
        messages = [*messages, message]
        values: dict[str, Any] = {"messages": messages}
        if approved is not None:
            values["approved"] = approved
        checkpoint = {
            **empty_checkpoint(),
            "id": ID.format(step + 1),
            "ts": TS.format(step + 1),
            "channel_values": values,
            "channel_versions": {name: f"{step + 1:032}.0" for name in values},
        }
        config = saver.put(
            config, checkpoint, {"source": "loop", "step": step}, checkpoint["channel_versions"]
        )
    # task ids in the opposite order of their paths: LangGraph sorts by path first
    saver.put_writes(config, [("notes", "audited"), ("approved", False)], task_id="task-a", task_path="~b")
    saver.put_writes(config, [("notes", "first")], task_id="task-b", task_path="~a")
    other = {**empty_checkpoint(), "id": ID.format(9), "ts": TS.format(9)}
    saver.put(
        {"configurable": {"thread_id": "t2", "checkpoint_ns": ""}}, other, {"source": "input", "step": -1}, {}
    )


@pytest.fixture(scope="module")
def sqlite_small(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("lgcli") / "small.sqlite"
    with lg.sqlite_saver(path) as saver:
        _fill(saver)
    return str(path)


@pytest.fixture(scope="module")
def postgres_small() -> Iterator[str]:
    if PG_SKIP:
        pytest.skip(PG_SKIP_REASON)
    url = PG.acquire(migrated=False, keep=True)
    try:
        with lg.postgres_saver(url) as saver:
            _fill(saver)
        yield url
    finally:
        PG.give_back(url, migrated=False)


@pytest.fixture(params=ENGINES)
def small(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_small" if request.param == "sqlite" else "postgres_small"))


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, ["langgraph", *args], catch_exceptions=False)


def test_threads_table_and_jsonl(small: str) -> None:
    done = _run("threads", "--source", small, "-f", "table")
    assert done.exit_code == 0, done.output
    assert done.output == (
        "thread_id  checkpoint_ns  checkpoints  step  newest_checkpoint_id\n"
        "---------  -------------  -----------  ----  ------------------------------------\n"
        f"t1                                  3     2  {ID.format(3)}\n"
        f"t2                                  1    -1  {ID.format(9)}\n"
    )
    done = _run("threads", "--source", small, "-f", "jsonl")
    assert [json.loads(line) for line in done.output.splitlines()] == [
        {
            "thread_id": "t1",
            "checkpoint_ns": "",
            "checkpoints": 3,
            "step": 2,
            "newest_checkpoint_id": ID.format(3),
            "metadata": {"source": "loop", "step": 2},
        },
        {
            "thread_id": "t2",
            "checkpoint_ns": "",
            "checkpoints": 1,
            "step": -1,
            "newest_checkpoint_id": ID.format(9),
            "metadata": {"source": "input", "step": -1},
        },
    ]


def _metadata_csv(source: str, step: int, name: str = "loop") -> str:
    """The metadata as stored: PostgreSQL's JSONB puts shorter keys first, SQLite keeps the saver's."""
    if source.startswith("postgresql://"):
        return f'"{{""step"":{step},""source"":""{name}""}}"'
    return f'"{{""source"":""{name}"",""step"":{step}}}"'


def test_history_newest_first(small: str) -> None:
    done = _run("history", "--source", small, "t1", "-f", "csv")
    assert done.exit_code == 0, done.output
    assert done.output == (
        "checkpoint_id,parent_checkpoint_id,step,source,writes,metadata\n"
        f"{ID.format(3)},{ID.format(2)},2,loop,3,{_metadata_csv(small, 2)}\n"
        f"{ID.format(2)},{ID.format(1)},1,loop,0,{_metadata_csv(small, 1)}\n"
        f"{ID.format(1)},,0,loop,0,{_metadata_csv(small, 0)}\n"
    )
    done = _run("history", "--source", small, "t1", "--limit", "1", "-f", "csv")
    assert done.output.splitlines()[1:] == [
        f"{ID.format(3)},{ID.format(2)},2,loop,3,{_metadata_csv(small, 2)}"
    ]


def test_show_decodes_the_checkpoint(small: str) -> None:
    done = _run("show", "--source", small, "t1")
    assert done.exit_code == 0, done.output
    shown = json.loads(done.output)
    assert shown == json.loads(_run("show", "--source", small, "t1", ID.format(3)).output)
    human = {"content": "refund order 7?", "type": "human", "id": "m1", "name": None}
    assert {k: shown["channel_values"]["messages"][0][k] for k in human} == human
    assert [m["content"] for m in shown["channel_values"]["messages"]] == [
        "refund order 7?",
        "checking",
        "refunded",
    ]
    assert shown["channel_values"]["approved"] is True
    assert shown["metadata"] == {"source": "loop", "step": 2}
    assert shown["checkpoint"]["id"] == ID.format(3)
    assert shown["checkpoint"]["ts"] == TS.format(3)
    assert shown["parent_checkpoint_id"] == ID.format(2)
    assert shown["pending_writes"] == [  # LangGraph's order: task_path, then task_id, then idx
        {"task_id": "task-b", "task_path": "~a", "idx": 0, "channel": "notes", "value": "first"},
        {"task_id": "task-a", "task_path": "~b", "idx": 0, "channel": "notes", "value": "audited"},
        {"task_id": "task-a", "task_path": "~b", "idx": 1, "channel": "approved", "value": False},
    ]


def test_diff_lines_and_json(small: str) -> None:
    done = _run("diff", "--source", small, "t1", ID.format(2), ID.format(3))
    assert done.exit_code == 0, done.output
    message = (
        '{"content":"refunded","additional_kwargs":{},"response_metadata":{},"type":"ai","name":null,'
        '"id":"m3","tool_calls":[],"invalid_tool_calls":[],"usage_metadata":null}'
    )
    assert done.output == f"added    /approved: true\nadded    /messages/2: {message}\n2 changes\n"
    assert _run("diff", "--source", small, "t1", ID.format(3)).output == done.output  # A's parent to A
    lines = _run("diff", "--source", small, "t1", ID.format(2), ID.format(3), "--json").output.splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["/approved", "/messages/2"]


def test_failures_are_one_line(small: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [
        (
            ("history", "--source", small, "nope"),
            "Error: no thread 'nope' in this source: `ckptdb langgraph threads` lists them",
        ),
        (
            ("show", "--source", small, "t1", "no-such-id"),
            "Error: no checkpoint 'no-such-id' in thread 't1': `ckptdb langgraph history` lists them",
        ),
        (
            ("diff", "--source", small, "t1", ID.format(1)),
            f"Error: checkpoint '{ID.format(1)}' is the first of thread 't1': give B to compare",
        ),
    ]
    for args, line in cases:
        done = CliRunner().invoke(main, ["langgraph", *args])
        assert (done.exit_code, done.output) == (1, line + "\n"), args
    not_langgraph = tmp_path / "ckptdb.db"
    assert CliRunner().invoke(main, ["--db", str(not_langgraph), "db", "upgrade"]).exit_code == 0
    done = CliRunner().invoke(main, ["langgraph", "threads", "--source", str(not_langgraph)])
    assert done.exit_code == 1
    assert done.output.startswith(f"Error: {not_langgraph}: not a LangGraph saver database")
    assert done.output.count("\n") == 1
    monkeypatch.setitem(sys.modules, "langgraph.checkpoint.serde.jsonplus", None)
    done = CliRunner().invoke(main, ["langgraph", "show", "--source", small, "t1"])
    assert (done.exit_code, done.output) == (
        1,
        "Error: decoding LangGraph values needs langgraph-checkpoint: pip install 'ckptdb[langgraph]'\n",
    )


def test_the_commands_never_write_the_source(sqlite_small: str) -> None:
    directory = Path(sqlite_small).parent

    def state() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}

    before = state()
    for args in (
        ("threads", "--source", sqlite_small),
        ("history", "--source", sqlite_small, "t1"),
        ("show", "--source", sqlite_small, "t1"),
        ("diff", "--source", sqlite_small, "t1", ID.format(3)),
    ):
        assert _run(*args).exit_code == 0
    assert state() == before
