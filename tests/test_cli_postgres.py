"""The CLI end to end on a real PostgreSQL server: import, inspect, export, prune, sql.

The command suites (test_import, test_export, test_inspect, test_cli_inspect) run each test on
SQLite and on PostgreSQL; this walks the commands one after the other over one PostgreSQL
database, as an operator would, checking results against the shared fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import canonical_sha256

from ckptdb import Checkpoint
from ckptdb.cli import main

pytestmark = pytest.mark.postgres


def _run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_import_inspect_export_prune_on_postgres(
    pg_url: str, fixture_dir: Path, manifest: dict, tmp_path: Path
) -> None:
    code, out = _run(pg_url, "import", str(fixture_dir), "--quiet")
    assert code == 0, out
    assert out.splitlines()[-1].startswith("300 files: 300 imported, 0 unchanged")
    code, out = _run(pg_url, "import", str(fixture_dir), "--quiet")
    assert code == 0 and "0 imported, 300 unchanged" in out, out

    by_id = {f["id"]: f for f in manifest["files"]}
    code, out = _run(pg_url, "list", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 300
    expected = sorted(manifest["files"], key=lambda f: (f["created_at_unix_nanos"], f["id"]), reverse=True)
    assert [r["id"] for r in rows] == [f["id"] for f in expected]  # newest first, to the nanosecond
    assert all(r["created_at"] == by_id[r["id"]]["created_at"] for r in rows)

    some = manifest["files"][0]
    code, out = _run(pg_url, "show", some["id"])
    assert code == 0 and canonical_sha256(out.encode()) == some["sha256_canonical"]

    graph = some["graph_name"]
    newest = max(
        (f for f in manifest["files"] if f["graph_name"] == graph), key=lambda f: f["created_at_unix_nanos"]
    )
    code, out = _run(pg_url, "latest", graph)
    assert code == 0 and json.loads(out)["id"] == newest["id"]

    code, out = _run(pg_url, "graphs", "--format", "json")
    counts = {g["graph_name"]: g["checkpoints"] for g in json.loads(out)}
    assert code == 0 and sum(counts.values()) == 300
    assert counts[graph] == sum(1 for f in manifest["files"] if f["graph_name"] == graph)

    code, out = _run(pg_url, "stats", "--format", "json")
    stats = json.loads(out)
    assert code == 0 and stats["checkpoints"] == 300
    assert stats["by_interrupt_type"] == manifest["expected"]["valid_by_interrupt_type_recursive_unique"]

    code, out = _run(pg_url, "pending", "--format", "jsonl")
    assert code == 0
    assert all(
        json.loads(line)["interrupt_type"] in ("toolapproval", "userrequest") for line in out.splitlines()
    )

    code, out = _run(
        pg_url, "list", "--where", "values exists", "--type", "toolapproval", "--format", "jsonl"
    )
    assert code == 0 and 0 < len(out.splitlines()) <= 80

    code, out = _run(pg_url, "sql", "SELECT count(*) AS n FROM checkpoints", "--format", "json")
    assert code == 0 and json.loads(out) == [{"n": 300}]
    code, out = _run(pg_url, "sql", "DELETE FROM checkpoints")
    assert code == 1 and out.startswith("Error:"), out

    exported = tmp_path / "out"
    code, out = _run(pg_url, "export", str(exported), "--quiet")
    assert code == 0, out
    for f in manifest["files"]:
        data = (exported / f"{f['id']}.json").read_bytes()
        assert canonical_sha256(data) == f["sha256_canonical"], f["path"]
        assert Checkpoint.from_json(data).id == f["id"]

    code, out = _run(pg_url, "prune", "--keep-last", "1", "--yes")
    assert code == 0, out
    code, out = _run(pg_url, "stats", "--format", "json")
    assert json.loads(out)["checkpoints"] == len(counts)
    code, out = _run(pg_url, "rm", newest["id"])
    assert code == 0, out
    code, out = _run(pg_url, "show", newest["id"])
    assert code == 1 and "Error:" in out
