"""Conditions on values inside a state snapshot, e.g. `values.approved == false`.

A condition is data (a path, an operator, a JSON value), never SQL text: backends turn it into
bound parameters, and scan stores evaluate it in Python with the same semantics: a missing path
never matches, and values of different JSON types are never equal (`true` is not `1`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ckptdb.errors import CkptdbError

OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "exists")
_OP_RE = re.compile(r"\s*(==|!=|<=|>=|<|>)\s*")
_EXISTS_RE = re.compile(r"\s+exists\s*$")
_BARE_KEY = re.compile(r'[^.\[\]"\s=!<>\x00-\x1f\x7f]+')
"""A key written without quotes inside a condition: anything but `.`, `[`, `]`, `"`, spaces,
control characters and operator characters. Any other key is written as a JSON string:
`values."a.b"`, `values["a b"]`."""
_BARE_FIELD_KEY = re.compile(r'[^.\[\]"\x00-\x1f\x7f]+')
"""The same for a path alone (`ckptdb show --field`), where nothing follows it: spaces may stay."""
_INDEX = re.compile(r"\[(\d+)\]")
_JSON_STRING = json.JSONDecoder()
PATH_HELP = (
    'keys with dots, indexes as [0]; quote other keys as JSON strings: values."a.b", values["first name"]'
)

PathStep = str | int


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "container"


@dataclass(frozen=True, slots=True)
class StateFilter:
    """`path` steps are object keys (str) or array indexes (int), from the snapshot's root."""

    path: tuple[PathStep, ...]
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise CkptdbError(f"unknown operator {self.op!r}; use one of {', '.join(OPERATORS)}")
        if not self.path:
            raise CkptdbError("a state condition needs a path, e.g. values.approved")
        if self.op in ("<", "<=", ">", ">=") and _kind(self.value) not in ("number", "string"):
            raise CkptdbError(f"{self.op} compares numbers or strings, not {json.dumps(self.value)}")
        if _kind(self.value) == "container":
            raise CkptdbError("compare with a scalar (string, number, true, false, null)")

    @classmethod
    def parse(cls, text: str) -> StateFilter:
        """Parse `PATH OP VALUE` or `PATH exists`; VALUE is JSON, or a bare word taken as a string.

        PATH is keys joined by dots and array indexes in brackets (`messages[0].role`); a key that
        holds a dot, a space, a quote or an operator is written as a JSON string, after a dot or
        in brackets, as in jq: `values."a.b"`, `values["first name"]`, `values."say \\"hi\\""`.
        """
        stripped = text.strip()
        if not stripped:
            raise CkptdbError(f"cannot read state condition {text!r}; write PATH OP VALUE, {_EXAMPLES}")
        path, end = _parse_path_at(stripped, 0, _BARE_KEY)
        rest = stripped[end:]
        if _EXISTS_RE.fullmatch(rest):
            return cls(path, "exists")
        match = _OP_RE.match(rest)
        if match is None or not rest[match.end() :].strip():
            raise CkptdbError(f"cannot read state condition {text!r}; write PATH OP VALUE, {_EXAMPLES}")
        raw = rest[match.end() :].strip()
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, float) and not math.isfinite(value):
            raise CkptdbError(
                f"state condition {text!r}: {raw} is not a number a checkpoint can hold "
                "(64-bit floats end near 1.8e308; integers of any size are fine)"
            )
        return cls(path, match.group(1), value)

    def matches(self, state: Any) -> bool:
        found, value = lookup(state, self.path)
        if not found:
            return False
        if self.op == "exists":
            return True
        same_kind = _kind(value) == _kind(self.value)
        if self.op == "==":
            return same_kind and value == self.value
        if self.op == "!=":
            return not (same_kind and value == self.value)
        if not same_kind:
            return False
        if self.op == "<":
            return bool(value < self.value)
        if self.op == "<=":
            return bool(value <= self.value)
        if self.op == ">":
            return bool(value > self.value)
        return bool(value >= self.value)

    def kind(self) -> str:
        """The JSON kind of the compared value: null, bool, number or string."""
        return _kind(self.value)

    def __str__(self) -> str:
        path = format_path(self.path)
        return f"{path} exists" if self.op == "exists" else f"{path} {self.op} {json.dumps(self.value)}"


_EXAMPLES = "e.g. 'values.approved == false' or 'values.task exists'"


def parse_path(text: str) -> tuple[PathStep, ...]:
    """`values.items[0].name` -> ('values', 'items', 0, 'name'); `values."a.b"` -> ('values', 'a.b')."""
    path, end = _parse_path_at(text, 0, _BARE_FIELD_KEY)
    if end != len(text):
        raise CkptdbError(f"cannot read path {text!r} after {text[:end]!r}; {PATH_HELP}")
    return path


def _parse_path_at(text: str, pos: int, bare: re.Pattern[str]) -> tuple[tuple[PathStep, ...], int]:
    """The path that starts at `pos`, and where it ends."""
    steps: list[PathStep] = []
    if text.startswith("$.", pos):
        pos += 2
    while pos < len(text):
        if text[pos] == "[":
            index = _INDEX.match(text, pos)
            if index is not None:
                steps.append(int(index.group(1)))
                pos = index.end()
                continue
            key, pos = _quoted_key(text, pos + 1)
            if not text.startswith("]", pos):
                raise CkptdbError(
                    f"cannot read path {text!r}: a bracket holds an index or a quoted key; {PATH_HELP}"
                )
            steps.append(key)
            pos += 1
            continue
        if steps:
            if text[pos] != ".":
                break  # the path ends here (an operator, a space)
            pos += 1
        if text.startswith('"', pos):
            key, pos = _quoted_key(text, pos)
            steps.append(key)
            continue
        match = bare.match(text, pos)
        if match is None:
            raise CkptdbError(f"cannot read path {text!r}: {PATH_HELP}")
        steps.append(match.group())
        pos = match.end()
    if not steps:
        raise CkptdbError("a state condition needs a path, e.g. values.approved")
    return tuple(steps), pos


def _quoted_key(text: str, pos: int) -> tuple[str, int]:
    """A key written as a JSON string at `pos` (escapes as in JSON: `\\"`, `\\\\`, `\\u0000`)."""
    try:
        key, end = _JSON_STRING.raw_decode(text, pos)
    except ValueError:
        raise CkptdbError(f"cannot read path {text!r}: a quoted key is a JSON string; {PATH_HELP}") from None
    if not isinstance(key, str):
        raise CkptdbError(f"cannot read path {text!r}: a quoted key is a JSON string; {PATH_HELP}")
    return key, end


def format_path(path: tuple[PathStep, ...]) -> str:
    """The text `StateFilter.parse` reads back as this path (keys quoted where they must be)."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
            continue
        key = step if _BARE_KEY.fullmatch(step) else json.dumps(step, ensure_ascii=False)
        out += f".{key}" if out else key
    return out


def lookup(value: Any, path: tuple[PathStep, ...]) -> tuple[bool, Any]:
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return False, None
        elif not isinstance(value, dict) or step not in value:
            return False, None
        value = value[step]
    return True, value
