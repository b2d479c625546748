"""Only the SQL layer (ckptdb/sql/, and the Alembic tree in migrations/) spells SQL.

`lint-imports` (contracts in pyproject.toml, run by scripts/test.sh) keeps drivers, SQLAlchemy,
Alembic and the engine modules out of the rest of the package; this keeps SQL text out of it: a
statement written in `ckptdb/inspect.py` would reach the database through a facade the import
contracts allow, so it is the text itself that is looked for. Every string constant of every
module outside ckptdb/sql/ is checked, f-strings by their literal parts (a placeholder counts as
a word), docstrings excepted: they may show a person a query to type.
"""

from __future__ import annotations

import ast
import re
from itertools import pairwise
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ckptdb"
SQL_LAYER = PACKAGE / "sql"

_STATEMENT = re.compile(
    r"""^\s*(?:
        SELECT\b.*\bFROM\b
      | SELECT\s+(?:count|min|max|sum|coalesce)\s*\(
      | INSERT\s+INTO\b
      | UPDATE\s+\w+\s+SET\b
      | DELETE\s+FROM\b
      | WITH\s+(?:RECURSIVE\s+)?\w+(?:\s*\([^)]*\))?\s+AS\b
      | (?:CREATE|DROP|ALTER)\s+(?:TEMP\s+|TEMPORARY\s+|UNIQUE\s+)?(?:TABLE|INDEX|VIEW|TRIGGER|SEQUENCE)\b
      | PRAGMA\s+\w+
    )""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
"""The start of an SQL statement (what a driver would run), not an English sentence that happens
to begin with "select" or "update": each alternative needs the statement's second keyword."""

_BARE = re.compile(r"^\s*(?:VACUUM|ANALYZE|REINDEX|BEGIN|COMMIT|ROLLBACK)\b")
"""A statement of one keyword, in capitals only: in lower case these are command names (`vacuum`)."""

_CLAUSE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+checkpoints\b|\bcheckpoints\s+WHERE\b", re.IGNORECASE)
"""A fragment of a statement on the checkpoint table (`... FROM checkpoints WHERE ...`)."""


def is_sql(text: str) -> bool:
    return bool(_STATEMENT.search(text) or _BARE.search(text) or _CLAUSE.search(text))


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
        # The attribute docstrings of this code base: a string right after an assignment.
        for field in ("body", "orelse"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            for before, after in pairwise(statements):
                if (
                    isinstance(before, ast.Assign | ast.AnnAssign)
                    and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                ):
                    found.add(id(after.value))
    return found


def sql_constants(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant of a module's source that is SQL."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    inside_fstrings: set[int] = set()
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                inside_fstrings.add(id(value))
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                else:
                    parts.append(" x ")
            text = "".join(parts)
            if is_sql(text):
                found.append((node.lineno, text))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
            and id(node) not in inside_fstrings
            and is_sql(node.value)
        ):
            found.append((node.lineno, node.value))
    return sorted(found)


def library_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if SQL_LAYER not in p.parents)


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_sql_outside_the_sql_layer(path: Path) -> None:
    found = sql_constants(path.read_text(encoding="utf-8"))
    where = "; ".join(f"line {line}: {text.strip()[:80]!r}" for line, text in found)
    assert not found, f"{path.relative_to(PACKAGE.parent)} spells SQL; move it into ckptdb/sql/: {where}"


@pytest.mark.parametrize(
    "text",
    [
        "SELECT id FROM checkpoints WHERE id = ?",
        "select count(*) from checkpoints",
        "SELECT coalesce(max(save_seq), 0)",
        "  DELETE FROM checkpoints WHERE graph_name = ?",
        "INSERT INTO checkpoints (id) VALUES (?)",
        "UPDATE checkpoints SET save_seq = 0",
        "WITH RECURSIVE graphs(name) AS (SELECT 1)",
        "PRAGMA journal_mode",
        "VACUUM",
        "CREATE INDEX ix ON checkpoints (id)",
        "graph_name = ? AND created_at < ? FROM checkpoints WHERE",
    ],
)
def test_the_check_knows_sql_when_it_sees_it(text: str) -> None:
    assert is_sql(text)
    assert sql_constants(f"QUERY = {text!r}\n") == [(1, text)]
    assert sql_constants(f"def f(where):\n    return f{(text + ' {where}')!r}\n")


@pytest.mark.parametrize(
    "text",
    [
        "select a graph with --graph",
        "update the schema: run `ckptdb db upgrade`",
        "delete these checkpoints in one transaction",
        "with --dry-run nothing is written",
        "begin",
        "vacuum",
        "no checkpoints for graph 'x' (`ckptdb graphs` lists them)",
    ],
)
def test_the_check_leaves_english_alone(text: str) -> None:
    assert not is_sql(text)


def test_docstrings_may_show_a_query() -> None:
    source = (
        '"""Try `SELECT id FROM checkpoints`."""\n\nLIMIT = 5\n"""`DELETE FROM checkpoints` is not run."""\n'
    )
    assert sql_constants(source) == []


def _contracts() -> list[dict[str, object]]:
    import tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _top_level_modules() -> set[str]:
    """ckptdb's own modules and subpackages, one level down, ckptdb.sql excepted."""
    names = {f"ckptdb.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {f"ckptdb.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    return names - {"ckptdb.sql"}


def test_every_module_outside_the_sql_layer_is_held_to_the_driver_contract() -> None:
    """The forbidden contract lists its source modules one by one, so a new module left off the
    list could import sqlite3 unseen: every module of the package must be on it."""
    [forbidden] = [c for c in _contracts() if c["type"] == "forbidden"]
    sources = set(forbidden["source_modules"])  # type: ignore[call-overload]
    missing = sorted(_top_level_modules() - sources)
    assert not missing, f"add {missing} to source_modules of the forbidden contract in pyproject.toml"


def test_every_module_has_a_place_in_the_layers() -> None:
    """A module in no layer is unconstrained by the layers contract: only the leaf modules that
    import nothing of ckptdb's database side (the model, errors, parsers) may stay out; inside
    ckptdb.sql every module has a layer."""
    [layers] = [c for c in _contracts() if c["type"] == "layers"]
    placed = {name.strip() for layer in layers["layers"] for name in re.split(r"[:|]", str(layer))}  # type: ignore[attr-defined]
    leaves = {
        "ckptdb.__main__",
        "ckptdb.canonical",
        "ckptdb.echo_json",
        "ckptdb.errors",
        "ckptdb.exit_status",
        "ckptdb.files",
        "ckptdb.helper_process",
        "ckptdb.memory",
        "ckptdb.model",
        "ckptdb.printable",
        "ckptdb.state_filter",
        "ckptdb.store",
        "ckptdb.sync_store",
        "ckptdb.times",
    }
    sql_modules = {f"ckptdb.sql.{p.stem}" for p in SQL_LAYER.glob("*.py") if p.stem != "__init__"}
    sql_modules |= {f"ckptdb.sql.{p.parent.name}" for p in SQL_LAYER.glob("*/__init__.py")}
    unplaced = sorted((_top_level_modules() | sql_modules) - placed - leaves)
    assert not unplaced, (
        f"give {unplaced} a layer in pyproject.toml's layers contract (or call it a leaf here)"
    )
