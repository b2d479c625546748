"""The row layout named in ckptdb.sql.rows: positions come from column names, and "the same
checkpoint" (what an import and a copy call unchanged) is decided there, once; and what
ckptdb.sql.transfer gives an importer besides."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptdb import Checkpoint, InterruptType, migrate, open_store, parse_target
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.transfer import encodes_json_as_bytes, has_schema

CHECKPOINT = Checkpoint.new(
    graph_name="support_bot",
    current_node="send_refund",
    state_snapshot={"messages": [], "values": {"order": 4411}},
    path=["start"],
    step_count=2,
    interrupt_type=InterruptType.TOOL_APPROVAL,
    pending_action={"tool": "refund"},
)


def a_row(source: str | None = "/in/a.json") -> tuple[object, ...]:
    return sqlrows.to_row(CHECKPOINT, source)


def test_the_layout_is_the_checkpoint_then_source() -> None:
    row = a_row()
    assert len(row) == len(sqlrows.COLUMNS)
    assert (*sqlrows.CONTENT_COLUMNS, "source") == sqlrows.COLUMNS
    assert row[sqlrows.ID] == sqlrows.from_row(sqlrows.content(row)).id
    assert sqlrows.source_of(row) == "/in/a.json"
    assert len(sqlrows.content(row)) == len(sqlrows.CONTENT_COLUMNS)


def test_same_content_ignores_only_where_a_row_came_from() -> None:
    row = a_row()
    assert sqlrows.same_content(row, a_row(source="/elsewhere/b.json"))
    assert sqlrows.same_content(row, a_row(source=None))


@pytest.mark.parametrize("column", [c for c in sqlrows.CONTENT_COLUMNS if c != "id"])
def test_same_content_sees_every_other_column(column: str) -> None:
    row = a_row()
    changed = list(row)
    changed[sqlrows.COLUMNS.index(column)] = "something else"
    assert not sqlrows.same_content(row, tuple(changed))
    assert not sqlrows.same_content(tuple(changed), row)


def test_a_huge_json_text_as_bytes_is_the_same_as_its_stored_str() -> None:
    row = a_row()
    state = sqlrows.COLUMNS.index("state_snapshot")
    as_bytes = list(row)
    as_bytes[state] = row[state].encode("utf-8")  # type: ignore[union-attr]
    assert sqlrows.same_content(tuple(as_bytes), row)


@pytest.mark.postgres
async def test_has_schema_tells_a_migrated_database_from_an_empty_one(pg_empty_url: str) -> None:
    """What a dry-run import asks before opening a PostgreSQL database (connecting creates nothing)."""
    target = parse_target(pg_empty_url)
    assert not await has_schema(target)
    migrate.upgrade(pg_empty_url)
    assert await has_schema(target)


async def test_a_sqlite_store_binds_huge_json_as_bytes(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "a.db") as store:
        assert encodes_json_as_bytes(store)
