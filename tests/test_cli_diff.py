"""`ckptdb diff A [B]`: the state diff as lines, exact output, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from click.testing import CliRunner
from helpers.web import MESSAGE_2, build_demo

from ckptdb.cli import main


def test_diff_against_the_previous_step_and_against_a_chosen_one(db_target: str) -> None:
    demo = build_demo(db_target)
    runner = CliRunner()
    done = runner.invoke(main, ["--db", db_target, "diff", demo.steps[1]])
    assert done.exit_code == 0, done.output
    assert done.output == (
        f"added    /messages/1: {json.dumps(MESSAGE_2, ensure_ascii=False, separators=(',', ':'))}\n"
        "changed  /values/amount: 42.5 -> 50\n"
        "2 changes\n"
    )
    done = runner.invoke(main, ["--db", db_target, "diff", demo.steps[0], demo.steps[2]])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[1:] == [
        "changed  /values/amount: 42.5 -> 50",
        "added    /values/order: 4411",
        "3 changes",
    ]
    done = runner.invoke(main, ["--db", db_target, "diff", "--json", demo.steps[1], demo.steps[2]])
    assert [json.loads(line) for line in done.output.splitlines()] == [
        {"kind": "added", "path": "/values/order", "before": None, "after": 4411}
    ]
    same = runner.invoke(main, ["--db", db_target, "diff", demo.steps[2], demo.steps[2]])
    assert same.output == "0 changes\n"


def test_diff_errors_are_one_line(db_target: str) -> None:
    demo = build_demo(db_target)
    runner = CliRunner()
    first = runner.invoke(main, ["--db", db_target, "diff", demo.steps[0]])
    assert first.exit_code == 1
    assert first.output == (
        f"Error: checkpoint '{demo.steps[0]}' is the first of its graph: give B to compare\n"
    )
    missing = runner.invoke(main, ["--db", db_target, "diff", "nope", demo.steps[0]])
    assert missing.exit_code == 1 and missing.output.startswith("Error: no checkpoint with id 'nope'")
    assert missing.output.count("\n") == 1
