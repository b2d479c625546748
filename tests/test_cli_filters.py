"""`list` and `export` take the same filters (one shared set of options, one query builder): for
the same arguments they must select exactly the same checkpoints."""

from __future__ import annotations

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
