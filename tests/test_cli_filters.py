"""`list` and `export` take the same filters (one shared set of options, one query builder): for
the same arguments they must select exactly the same checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ckptdb.cli import main

FILTERS = [
    ["--graph", "translation_pipeline"],
    ["-g", "translation_pipeline", "-t", "ToolApproval", "-t", "user_request"],
    ["--since", "2026-11-03", "--until", "2026-11-20T00:00:00Z"],
    ["--since", "36500d"],  # an age: everything of the last hundred years
    ["--where", "values.final_answer exists"],
    ["-w", "values.approved exists", "--type", "afternode"],
]


@pytest.fixture(scope="module")
def fixtures_db(tmp_path_factory: pytest.TempPathFactory, fixture_dir: Path) -> Path:
    db = tmp_path_factory.mktemp("filters") / "fixtures.db"
    result = CliRunner().invoke(main, ["--db", str(db), "import", str(fixture_dir)])
    assert result.exit_code == 0, result.output
    return db


@pytest.mark.parametrize("filters", FILTERS, ids=" ".join)
def test_list_and_export_select_the_same_checkpoints(
    tmp_path: Path, fixtures_db: Path, filters: list[str]
) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["--db", str(fixtures_db), "list", "--format", "jsonl", *filters])
    assert listed.exit_code == 0, listed.output
    ids = {json.loads(line)["id"] for line in listed.output.splitlines()}
    assert ids and (len(ids) < 300) != (filters == ["--since", "36500d"])  # each filter does filter
    exported = runner.invoke(
        main, ["--db", str(fixtures_db), "export", "-q", str(tmp_path / "out"), *filters]
    )
    assert exported.exit_code == 0, exported.output
    assert {path.name.removesuffix(".json") for path in (tmp_path / "out").iterdir()} == ids


WHERE_CONDITIONS = [
    "values.approved == false",
    "values.approved != false",
    "values.final_answer exists",
    "messages[0].role == user",
    "values.model > 2",
    "values.tool_results <= 0.7413588010123587",
]


def _truth(fixture_dir: Path, condition: str) -> set[str]:
    """What a condition selects among the fixtures, by the Python semantics every store shares."""
    from ckptdb import Checkpoint, StateFilter

    test = StateFilter.parse(condition)
    found = set()
    for path in fixture_dir.glob("*.json"):
        checkpoint = Checkpoint.from_json(path.read_bytes())
        if test.matches(checkpoint.state_snapshot):
            found.add(checkpoint.id)
    return found


def test_a_damaged_state_does_not_break_where_over_the_other_rows(
    engine: str, db_target: str, fixture_dir: Path
) -> None:
    """SQLite's json functions fail the whole statement on one malformed document; a damaged row
    (here a state cut short, as a hand edit or a torn page leaves it) must match nothing and leave
    every other row's answer as PostgreSQL gives it (where such a row cannot exist)."""
    runner = CliRunner()
    assert runner.invoke(main, ["--db", db_target, "import", "-q", str(fixture_dir)]).exit_code == 0
    if engine == "sqlite":
        import sqlite3

        with sqlite3.connect(db_target) as db:
            db.execute(
                "INSERT INTO checkpoints (id, graph_name, current_node, state_snapshot, path, step_count, "
                "created_at, pending_action, interrupt_type, created_at_text, extra, source) "
                "SELECT 'damaged-json', graph_name, current_node, "
                '\'{"values": {"approved": fals\', path, step_count, created_at, pending_action, '
                "interrupt_type, created_at_text, extra, source FROM checkpoints LIMIT 1"
            )
    for condition in WHERE_CONDITIONS:
        listed = runner.invoke(main, ["--db", db_target, "list", "-f", "jsonl", "--where", condition])
        assert listed.exit_code == 0, (condition, listed.output)
        got = {json.loads(line)["id"] for line in listed.stdout.splitlines()}
        assert got == _truth(fixture_dir, condition), condition
    assert all(_truth(fixture_dir, condition) for condition in WHERE_CONDITIONS)  # each one selects


def test_where_on_quoted_keys_nul_and_big_integers_from_the_command_line(engine: str, db_target: str) -> None:
    """The conditions from the bug reports, as typed: no traceback, the same rows on both engines."""
    from helpers.db import fill

    from ckptdb import Checkpoint, InterruptType

    states = {
        "big": {"values": {"x": 18446744073709551615, "a.b": 1}},
        "small": {"values": {"x": 18446744073709551614, "first name": "Ada"}},
        "nul": {"values": {"s": "a\x00b"}},
        "stand-in": {"values": {"s": "a\ufffeb"}},
    }
    made = [Checkpoint.new("g", "n", state, [], 0, InterruptType.BEFORE_NODE) for state in states.values()]
    fill(db_target, [dataclasses.replace(cp, id=name) for cp, name in zip(made, states, strict=True)])
    runner = CliRunner()
    for condition, expected in [
        ("values.x == 18446744073709551615", {"big"}),
        ("values.x >= 18446744073709551614", {"big", "small"}),
        ('values."a.b" == 1', {"big"}),
        ('values["first name"] == Ada', {"small"}),
        (r'values.s == "a\u0000b"', {"nul"}),
        (r'values.s == "a\ufffeb"', {"stand-in"}),
    ]:
        listed = runner.invoke(main, ["--db", db_target, "list", "-f", "jsonl", "--where", condition])
        assert listed.exit_code == 0, (condition, listed.output)
        assert {json.loads(line)["id"] for line in listed.stdout.splitlines()} == expected, condition
    refused = runner.invoke(main, ["--db", db_target, "list", "--where", "values.x == 1e400"])
    assert refused.exit_code == 1 and refused.exception is not None and refused.stdout == ""
    assert refused.stderr == (
        "Error: state condition 'values.x == 1e400': 1e400 is not a number a checkpoint can hold "
        "(64-bit floats end near 1.8e308; integers of any size are fine)\n"
    )
