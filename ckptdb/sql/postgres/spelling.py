"""PostgreSQL's spelling of the store's SQL: `$n` placeholders, the save sequence, state conditions
over documents that may hold U+0000.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from decimal import Decimal
from typing import Any

from ckptdb.sql import rows as sqlrows
from ckptdb.sql.backend import Spelling
from ckptdb.state_filter import PathStep, StateFilter

# State documents for json functions: as stored, unless the text holds an escaped U+0000 or U+0001
# (`\u000` then a digit, after an odd number of backslashes), which are rewritten as `nul_free`
# maps them, U+0001 first, for the query only.
_ESCAPE_RE = r"(?<!\\)((?:\\\\)*)\\u000"
_STATE_DOC = (
    "(CASE WHEN strpos(state_snapshot::text, '\\u000') = 0 THEN state_snapshot ELSE regexp_replace("
    f"regexp_replace(state_snapshot::text, '{_ESCAPE_RE}1', '\\1\\\\u0001\\\\u0002', 'g'), "
    f"'{_ESCAPE_RE}0', '\\1\\\\u0001\\\\u0001', 'g')::json END)"
)
_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")


@functools.lru_cache(maxsize=2048)
def to_dollar_params(sql: str) -> str:
    """`?` -> `$1, $2, ...`, outside quoted strings and identifiers; cached per SQL text. A JSON
    column's `CAST(? AS TEXT)` (rows.JSON_PARAM, for SQLite's sake) becomes a plain parameter:
    the column is `json` here, and asyncpg sends its str as the text it is."""
    sql = sql.replace(sqlrows.JSON_PARAM, "?")
    out: list[str] = []
    number = 0
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            number += 1
            out.append(f"${number}")
            continue
        out.append(char)
    return "".join(out)


@functools.lru_cache(maxsize=2048)
def postgres_sql(sql: str) -> str:
    """The store's SQL text for asyncpg: `$n` parameters, and the next save order drawn from the
    `checkpoints_save_seq` SEQUENCE where rows.py reads SQLite's max(save_seq) + 1 (under READ
    COMMITTED, concurrent transactions would read the same max). Cached per SQL text."""
    return to_dollar_params(sql.replace(sqlrows.NEXT_SAVE_SEQ, "nextval('checkpoints_save_seq')"))


UTF8_JSON_PARAM = "CAST(convert_from(CAST(? AS bytea), 'UTF8') AS json)"
"""A JSON column's parameter given as its UTF-8 bytes: sent as `bytea`, made `json` by the server."""


@functools.lru_cache(maxsize=256)
def postgres_utf8_sql(sql: str) -> str:
    """`postgres_sql` for rows whose JSON columns are UTF-8 bytes (`rows.to_row` with
    `json_bytes`): each `rows.JSON_PARAM` becomes UTF8_JSON_PARAM. asyncpg copies bytes into its
    message as they are, where a str of non-ASCII text is read through its UTF-8 form, which
    CPython then keeps inside the str: a copy of the whole text more (see `PostgresBackend`)."""
    return postgres_sql(sql.replace(sqlrows.JSON_PARAM, UTF8_JSON_PARAM))


def nul_free(text: str) -> str:
    """Text without U+0000 that keeps distinct strings distinct and in the same (code point) order:
    a prefix-free code in which U+0000 -> U+0001 U+0001, U+0001 -> U+0001 U+0002, the rest as is.
    State conditions compare strings in this spelling, the documents' (`_STATE_DOC`) and theirs."""
    if "\x00" not in text and "\x01" not in text:
        return text
    return text.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")


def _path_text(step: PathStep) -> str:
    return str(step) if isinstance(step, int) else nul_free(step)


_COMPARE = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _number_comparison(text: str, op: str, value: int | float, steps: list[str]) -> tuple[str, list[Any]]:
    """SQL comparing the stored number whose JSON text `text` reads with `value` exactly, as Python
    compares an int or float with an int or float, and its parameters.

    A stored integer (no `.`, `e` or `E` in its text) is `numeric`: exact at any size, against
    the exact decimal value of `value` (Decimal(0.1) is 0.1000000000000000055..., the float itself,
    not its shortest spelling). A stored float is the float its text denotes (`float8`, correctly
    rounded), against a float `value` as it is; against an integer, through the float nearest it:
    a float other than that one compares with the integer as with it, and the one equal to it
    compares as that float's own integer value does (computed here)."""
    exact = str(value) if isinstance(value, int) else format(Decimal(value), "f")
    as_int = f"({text})::numeric {op} ?::text::numeric"
    if isinstance(value, float):
        as_float, float_params = f"({text})::float8 {op} ?::text::float8", [steps, repr(value)]
    else:
        try:
            nearest = float(value)
            on_tie = "true" if _COMPARE[op](int(nearest), value) else "false"
        except OverflowError:  # beyond every float: no stored float equals it
            nearest, on_tie = (float("inf") if value > 0 else float("-inf")), "false"
        stored = f"({text})::float8"
        as_float = (
            f"(CASE WHEN {stored} = ?::text::float8 THEN {on_tie} ELSE {stored} {op} ?::text::float8 END)"
        )
        float_params = [steps, repr(nearest), steps, repr(nearest)]
    return (
        f"(CASE WHEN ({text}) ~ '[.eE]' THEN {as_float} ELSE {as_int} END)",
        [steps, *float_params, steps, exact],
    )


class PostgresSpelling(Spelling):
    """PostgreSQL's side of `Spelling`; it needs no connection, so it is a class of its own that
    `PostgresBackend` takes in."""

    row_lock = " FOR UPDATE"

    def state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        """json_extract_path on the `json` column, values bound; types compared as in Python.

        A path step that is an array index must meet an array, a key an object (json_extract_path
        alone would take key "0" as index 0), so such steps get a type check on their parent.
        """
        steps = [_path_text(step) for step in condition.path]
        node = f"json_extract_path({_STATE_DOC}, VARIADIC ?::text[])"
        guards: list[str] = []
        guard_params: list[Any] = []
        for index, step in enumerate(condition.path):
            if isinstance(step, int) or _INT_TEXT.match(step):
                parent = "array" if isinstance(step, int) else "object"
                if index == 0:
                    guards.append(f"json_typeof({_STATE_DOC}) = '{parent}'")
                else:
                    guards.append(f"json_typeof({node}) = '{parent}'")
                    guard_params.append(steps[:index])
        jtype = f"json_typeof({node})"
        if condition.op == "exists":
            test, params = f"{node} IS NOT NULL", [steps]
        else:
            kind = condition.kind()
            if kind == "null":
                same: tuple[str, list[Any]] = (f"{jtype} = 'null'", [steps])
            elif kind == "bool":
                word = "true" if condition.value else "false"
                same = (f"({jtype} = 'boolean' AND {node}::text = ?)", [steps, steps, word])
            else:
                text = f"json_extract_path_text({_STATE_DOC}, VARIADIC ?::text[])"
                op = "=" if condition.op in ("==", "!=") else condition.op
                if kind == "number":
                    compared, values = _number_comparison(text, op, condition.value, steps)
                    jkind = "number"
                else:
                    compared = f'{text} COLLATE "C" {op} ?'
                    values = [steps, nul_free(str(condition.value))]
                    jkind = "string"
                same = (
                    f"(CASE WHEN {jtype} = '{jkind}' THEN {compared} ELSE false END)",
                    [steps, *values],
                )
            if condition.op == "!=":
                test, params = f"({node} IS NOT NULL AND NOT {same[0]})", [steps, *same[1]]
            else:
                test, params = same
        if guards:
            return f"({' AND '.join(guards)} AND {test})", [*guard_params, *params]
        return test, params

    def byte_length_sql(self, expression: str) -> str:
        return f"octet_length(({expression})::text)"

    def json_member_condition(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        """jsonb equality: numbers by value, objects whatever their key order (as LangGraph's
        PostgreSQL saver's `@>` compares them)."""
        return f"(({column})::jsonb -> ?::text) = ?::jsonb", [key, json.dumps(value)]
