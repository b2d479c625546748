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


# The decode's fast paths (orjson, the C date parser) must read exactly what the precise ones read.
_JSON_TEXTS = [
    '{"a":1,"b":[true,false,null],"c":"x"}',
    "18446744073709551615",  # u64's largest: orjson keeps it an int
    "18446744073709551616",  # past 64 bits: orjson would make it a float
    "-9223372036854775809",
    "[-9999999999999999999, 1]",  # 19 digits, below i64
    '{"big":123456789012345678901234567890}',
    '{"text":"order 12345678901234567890 shipped","n":1}',  # a long digit run inside a string
    "0.1",
    "-0",
    "-0.0",
    "1e400",  # json.loads: inf; orjson refuses
    "NaN",
    '{"x":Infinity}',
    '"\\ud800"',  # a lone surrogate escape: orjson refuses
    '{"a":1,"b":2,"a":3}',  # repeated key: the last value, at the first key's place
    "[" * 300 + "]" * 300,  # past orjson's nesting limit
    " [1, 2] ",
]


@pytest.mark.parametrize("text", _JSON_TEXTS, ids=range(len(_JSON_TEXTS)))
def test_loads_trusted_reads_what_json_loads_reads(text: str) -> None:
    import json
    import math

    from ckptdb.echo_json import loads_trusted

    def shape(value: object) -> object:  # types kept, NaN comparable, key order kept
        if isinstance(value, dict):
            return ("dict", [(k, shape(v)) for k, v in value.items()])
        if isinstance(value, list):
            return ("list", [shape(v) for v in value])
        if isinstance(value, float) and math.isnan(value):
            return ("nan",)
        return (type(value).__name__, repr(value))

    assert shape(loads_trusted(text)) == shape(json.loads(text))


def test_loads_trusted_refuses_what_json_loads_refuses() -> None:
    import json

    from ckptdb.echo_json import loads_trusted

    for bad in ("{", '{"a":}', "[1,]", ""):
        with pytest.raises(json.JSONDecodeError):
            loads_trusted(bad)
    with pytest.raises(TypeError):
        loads_trusted(5)  # type: ignore[arg-type]  # a hand-edited column may hold anything


_UTC_TEXTS = [
    "2026-12-04T19:58:07.354026510Z",
    "0001-01-01T00:00:00.000000000Z",
    "9999-12-31T23:59:59.999999999Z",
    "0000-01-01T00:00:00.000000000Z",  # year 0: chrono's, not datetime's
    "2016-12-31T23:59:60.000000000Z",  # a leap second
    "2026-02-30T00:00:00.000000000Z",  # no such date
    "2026-12-04T19:58:07.3540265_0Z",  # int() would take the underscore
    "2026-12-04T19:58:07.35402651Z",  # 8 digits
    "2026-12-04 19:58:07.354026510Z",
    "2026-12-04T19:58:07.354026510z",
    "\uff12026-12-04T19:58:07.354026510Z",  # a fullwidth digit
    "2026-12-04T19:58:07.354026510Z\n",
    "2026-12-04T19:58:07.354026510+01:00",
]


@pytest.mark.parametrize("text", _UTC_TEXTS, ids=range(len(_UTC_TEXTS)))
def test_from_utc_text_reads_what_the_full_parser_reads(text: str) -> None:
    from ckptdb import Timestamp

    def read(parse: object) -> object:
        try:
            found = parse(text)  # type: ignore[operator]
        except ValueError as exc:
            return ("refused", str(exc))
        return (found.unix_nanos, found.offset_minutes, found.fraction_digits, found.text)

    assert read(Timestamp.from_utc_text) == read(lambda t: Timestamp.parse(t).with_format())
