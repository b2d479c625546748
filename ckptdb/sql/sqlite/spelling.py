"""SQLite's spelling of a state condition: JSON paths its functions read the same in every
version, and `state_match`, the Python test for what they cannot answer exactly.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

from ckptdb.errors import CkptdbError
from ckptdb.sql.backend import Spelling
from ckptdb.state_filter import PathStep, StateFilter

_PLAIN_KEY = re.compile(r'[^"\\\x00-\x1f]*')
"""Keys that JSON text holds as they are, without an escape. SQLite matches a path's key against
the key's text in the document: up to 3.44 the escaped text, as stored, later the decoded one, so
only keys that need no escape mean the same in every version; a path with any other key (a quote,
a backslash, a control character or U+0000) is tested in Python (`state_match`)."""
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
STATE_MATCH = "ckptdb_state_match"
"""The SQL function (on the reader connection) that tests one condition on one state in Python."""


def json_path(path: Sequence[PathStep]) -> str:
    """SQLite's path text for a path of plain keys (`_PLAIN_KEY`) and indexes: `$."values"."a.b"[0]`."""
    out = "$"
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif not _PLAIN_KEY.fullmatch(step):
            raise CkptdbError(f"key {step!r} cannot be spelled in an SQLite JSON path")
        else:
            out += f'."{step}"'
    return out


@functools.lru_cache(maxsize=256)
def _condition_from_text(text: str) -> StateFilter:
    path, op, value = json.loads(text)
    return StateFilter(tuple(path), op, value)


def condition_text(condition: StateFilter) -> str:
    """A condition as the text `state_match` reads (bound as a parameter, never pasted into SQL)."""
    return json.dumps([list(condition.path), condition.op, condition.value], ensure_ascii=False)


def state_match(state_text: object, condition: str) -> int:
    """1 when the stored state passes the condition, by the very test the memory and file stores
    run. For what SQLite's json functions cannot answer exactly: a string holding U+0000 (they cut
    it there), an integer past 64 bits (they read it as a float), a key they cannot spell. A state
    that is not JSON matches nothing. About 13 us a row (257 ms for 20,000 generated checkpoints,
    against 81 ms in SQL), so only the rows that need it come here."""
    if not isinstance(state_text, str):
        return 0
    try:
        state = json.loads(state_text)
    except (ValueError, RecursionError):
        return 0
    return int(_condition_from_text(condition).matches(state))


def _nearest_float(value: int) -> float:
    """The float nearest an integer (infinity past the float range, which every float is below)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


class SqliteSpelling(Spelling):
    """SQLite's side of `Spelling`; it needs no connection, so it is a class of its own that
    `SqliteBackend` takes in."""

    json_bytes = True  # sqlite3 binds bytes without a copy of its own; rows.JSON_PARAM makes them TEXT

    def state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        """The condition, tested only on rows whose state is valid JSON: SQLite's json functions
        raise "malformed JSON" for the whole statement on one damaged row (a hand edit, a torn
        page), where PostgreSQL's `json` column cannot hold such a row at all. So a damaged row
        matches nothing and the other rows get the answer PostgreSQL gives (CASE, unlike AND,
        is guaranteed not to evaluate its branch). The price: the check parses each state once
        more, 64-88 ms instead of 63-66 ms for one condition over 20,000 generated checkpoints
        (69 MB; best of 15 on the shared 2-core machine)."""
        sql, params = self._valid_state_condition(condition)
        return f"(CASE WHEN json_valid(state_snapshot) THEN {sql} ELSE 0 END)", params

    def _valid_state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        """json_type / json_extract with the path bound; exact where they are, and the rows where
        they are not go to `state_match`, so every answer is the one Python gives:

        - a string condition on a state holding `\\u0000` anywhere (json_extract would cut the
          string at the NUL): in Python;
        - a number: an integer within 64 bits compares exactly with any stored number (SQLite
          compares integers and floats exactly), except -2^63 itself, which an integer below it
          reads as. A float, or an integer beyond 64 bits (bound as the nearest float), cannot be
          compared exactly with an integer beyond 64 bits (read as a float) nor, beyond 64 bits,
          with a float equal to that nearest float: those rows in Python.
        """
        python = f"{STATE_MATCH}(state_snapshot, ?)"
        python_params: list[Any] = [condition_text(condition)]
        if not all(isinstance(step, int) or _PLAIN_KEY.fullmatch(step) for step in condition.path):
            return python, python_params
        path = json_path(condition.path)
        jtype = "json_type(state_snapshot, ?)"
        value = "json_extract(state_snapshot, ?)"
        if condition.op == "exists":
            return f"{jtype} IS NOT NULL", [path]
        kind = condition.kind()
        slow: tuple[str, list[Any]] | None = None
        if kind == "null":
            same: tuple[str, list[Any]] = (f"{jtype} = 'null'", [path])
        elif kind == "bool":
            same = (f"{jtype} = ?", [path, "true" if condition.value else "false"])
        else:
            op = "=" if condition.op in ("==", "!=") else condition.op
            bound = condition.value
            if kind == "string":
                types = "('text')"
                slow = ("instr(state_snapshot, '\\u0000') > 0", [])
            else:
                types = "('integer', 'real')"
                big_int = f"({jtype} = 'integer' AND typeof({value}) = 'real')"
                if isinstance(bound, float):
                    slow = (big_int, [path, path])
                elif not I64_MIN < bound <= I64_MAX:  # -2^63 too: a big negative reads as exactly that
                    bound = _nearest_float(bound)
                    slow = (f"(typeof({value}) = 'real' OR {value} = ?)", [path, path, bound])
            same = (f"({jtype} IN {types} AND {value} {op} ?)", [path, path, bound])
        if condition.op == "!=":
            fast = (f"({jtype} IS NOT NULL AND NOT {same[0]})", [path, *same[1]])
        else:
            fast = same
        if slow is None:
            return fast
        return (
            f"(CASE WHEN {slow[0]} THEN {python} ELSE {fast[0]} END)",
            [*slow[1], *python_params, *fast[1]],
        )

    def byte_length_sql(self, expression: str) -> str:
        # SQLite 3.40 has no octet_length(); length() counts characters of TEXT but bytes of a BLOB.
        return f"length(CAST({expression} AS BLOB))"

    def json_member_condition(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        """By json_each, whose `key` column takes any member name as it is (a JSON path would need
        quoting rules for `"` and `.`); the member's JSON type is compared too, so "1" is not 1."""
        member = f"EXISTS (SELECT 1 FROM json_each({column}) AS m WHERE m.key = ? AND "
        if value is None:
            return member + "m.type = 'null')", [key]
        if isinstance(value, bool):
            return member + "m.type = ?)", [key, "true" if value else "false"]
        if isinstance(value, int):
            return member + "m.type = 'integer' AND m.value = ?)", [key, value]
        if isinstance(value, float):
            return member + "m.type IN ('integer', 'real') AND m.value = ?)", [key, value]
        if isinstance(value, str):
            return member + "m.type = 'text' AND m.value = ?)", [key, value]
        return member + "m.type IN ('object', 'array') AND json(m.value) = json(?))", [key, json.dumps(value)]
