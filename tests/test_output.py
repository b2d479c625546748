"""The CLI's row writers on their own (ckptdb.cli.output): CSV quoting of every special character,
distinct column names in every format, and table cells that show what a terminal would hide or
reorder, measured in the columns a terminal draws.

The same writers through `ckptdb sql` on SQLite and PostgreSQL: tests/test_sql_command.py.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import pytest

from ckptdb.cli.output import Column, display_width, escape, row_writer, unique_names


def written(fmt: str, names: Sequence[str], rows: Sequence[Sequence[Any]], kind: str = "auto") -> str:
    out = io.StringIO()
    with row_writer(fmt, [Column(name, kind) for name in names], out) as writer:
        for row in rows:
            writer.write(row)
    return out.getvalue()


# -- CSV -------------------------------------------------------------------------------------------

SPECIAL = {
    "lone CR": "a\rb",
    "lone LF": "a\nb",
    "CRLF": "a\r\nb",
    "quote": 'say "hi"',
    "separator": "a,b",
    "leading space": " a",
    "trailing space": "a ",
    "leading tab": "\ta",
    "NUL": "a\x00b",
    "other C0": "a\x1bb",
    "DEL": "a\x7fb",
    "only a quote": '"',
    "empty string": "",
}


@pytest.mark.parametrize("value", SPECIAL.values(), ids=SPECIAL.keys())
def test_csv_quotes_every_special_character_and_reads_back(value: str) -> None:
    text = written("csv", ["v", "w"], [[value, "x"]])
    header, line = text.split("\n", 1)
    assert header == "v,w"
    assert line.startswith('"') and line.endswith('",x\n'), line
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["v", "w"], [value, "x"]]


def test_csv_keeps_plain_fields_bare_and_null_apart_from_the_empty_string() -> None:
    text = written("csv", ["a", "b", "c", "d"], [["plain", None, "", 12]])
    assert text == 'a,b,c,d\nplain,,"",12\n'


def test_csv_header_is_quoted_like_any_field() -> None:
    assert written("csv", ["a,b", "c\rd"], []) == '"a,b","c\rd"\n'


# -- repeated column names -------------------------------------------------------------------------


def test_unique_names() -> None:
    assert unique_names(["id", "id", "id"]) == ["id", "id_2", "id_3"]
    assert unique_names(["id", "id_2", "id"]) == ["id", "id_2", "id_3"]  # a taken suffix is skipped
    assert unique_names(["?column?", "?column?"]) == ["?column?", "?column?_2"]
    assert unique_names(["a", "b"]) == ["a", "b"]


def test_repeated_names_lose_no_value_in_any_format() -> None:
    names, row = ["id", "id", "n"], ["a-1", "b-1", 3]
    assert written("jsonl", names, [row]) == '{"id": "a-1", "id_2": "b-1", "n": 3}\n'
    assert json.loads(written("json", names, [row])) == [{"id": "a-1", "id_2": "b-1", "n": 3}]
    assert written("csv", names, [row]) == "id,id_2,n\na-1,b-1,3\n"
    assert written("table", names, [row]).splitlines()[0] == "id   id_2  n"


# -- table cells -----------------------------------------------------------------------------------

HIDDEN = {
    "C1 NEL": ("a\x85b", "a\\x85b"),
    "C1 CSI": ("a\x9b31mb", "a\\x9b31mb"),
    "ESC": ("\x1b[2J", "\\x1b[2J"),
    "DEL": ("a\x7f", "a\\x7f"),
    "line separator": ("a\u2028b", "a\\u2028b"),
    "paragraph separator": ("a\u2029b", "a\\u2029b"),
    "RLO": ("txt.\u202eexe", "txt.\\u202eexe"),
    "LRE, PDF": ("\u202aa\u202c", "\\u202aa\\u202c"),
    "isolates": ("\u2066a\u2069\u2067\u2068", "\\u2066a\\u2069\\u2067\\u2068"),
    "LRM, RLM": ("a\u200eb\u200f", "a\\u200eb\\u200f"),
    "Arabic letter mark": ("a\u061c", "a\\u061c"),
    "zero-width space": ("a\u200bb", "a\\u200bb"),
    "BOM": ("\ufeffa", "\\ufeffa"),
    "soft hyphen": ("a\u00adb", "a\\xadb"),
    "word joiner": ("a\u2060b", "a\\u2060b"),
    "tag characters": ("ok\U000e0041", "ok\\U000e0041"),
    "ZWJ between ASCII letters": ("gr\u200daph", "gr\\u200daph"),
    "ZWJ at an end": ("\u200d日", "\\u200d日"),
    "lone surrogate": ("a\ud800", "a\\ud800"),
}


@pytest.mark.parametrize(("value", "shown"), HIDDEN.values(), ids=HIDDEN.keys())
def test_table_escapes_what_a_terminal_would_hide_or_reorder(value: str, shown: str) -> None:
    assert escape(value) == shown
    assert written("table", ["v"], [[value]]) == f"v\n{'-' * display_width(shown)}\n{shown}\n"


WIDTHS = {
    "ASCII": ("abc", 3),
    "CJK": ("数据流程", 8),
    "fullwidth": ("ＡＢ", 4),
    "combining acute": ("e\u0301te\u0301", 3),
    "Hangul jamo": ("\u1100\u1161\u11a8", 2),
    "emoji": ("🙂", 2),
    "emoji ZWJ family": ("👨\u200d👩\u200d👧", 2),
    "ZWJ profession": ("👩\u200d🔬x", 3),
    "flag": ("🇫🇷", 2),
    "VS16 heart": ("❤\ufe0f", 2),
    "skin tone": ("👍🏽", 2),
    "ZWNJ in Persian": ("می\u200cخواهم", 7),
}


@pytest.mark.parametrize(("value", "width"), WIDTHS.values(), ids=WIDTHS.keys())
def test_table_measures_cells_as_a_terminal_draws_them(value: str, width: int) -> None:
    assert escape(value) == value  # nothing here is hidden: joiners inside emoji and scripts stay
    assert display_width(value) == width
    lines = written("table", ["v", "next"], [[value, "|"], ["x" * width, "|"]]).splitlines()
    # Both rows put the second column at the same terminal column.
    assert display_width(lines[2]) == display_width(lines[3]) == width + 2 + 1
    assert lines[2] == value + "  |"


def test_table_cuts_long_cells_between_graphemes() -> None:
    family = "👨\u200d👩\u200d👧"
    cell = written("table", ["v"], [[family * 40]]).splitlines()[2]
    assert cell == family * 29 + "…"  # 58 columns of families, then the ellipsis: never half of one
    accents = written("table", ["v"], [["e\u0301" * 80]]).splitlines()[2]
    assert accents == "e\u0301" * 59 + "…"
    assert display_width(accents) == 60
