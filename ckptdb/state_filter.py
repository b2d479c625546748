"""Conditions on values inside a state snapshot, e.g. `values.approved == false`.

A condition is data (a path, an operator, a JSON value), never SQL text: backends turn it into
bound parameters, and scan stores evaluate it in Python with the same semantics: a missing path
never matches, and values of different JSON types are never equal (`true` is not `1`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ckptdb.errors import CkptdbError

OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "exists")
_COND_RE = re.compile(
    r"^\s*(?P<path>[^\s=!<>]+)\s*(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>.+?)|\s+(?P<word>exists))\s*$"
)
_STEP_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

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
        """Parse `PATH OP VALUE` or `PATH exists`; VALUE is JSON, or a bare word taken as a string."""
        match = _COND_RE.match(text)
        if match is None:
            raise CkptdbError(
                f"cannot read state condition {text!r}; write PATH OP VALUE, "
                "e.g. 'values.approved == false' or 'values.task exists'"
            )
        path = parse_path(match.group("path"))
        if match.group("word"):
            return cls(path, "exists")
        raw = match.group("value")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        return cls(path, match.group("op"), value)

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


def parse_path(text: str) -> tuple[PathStep, ...]:
    """`values.items[0].name` -> ('values', 'items', 0, 'name')."""
    steps: list[PathStep] = []
    pos = 0
    text = text.removeprefix("$.")
    while pos < len(text):
        if text[pos] == "." and steps:
            pos += 1
        match = _STEP_RE.match(text, pos)
        if match is None:
            raise CkptdbError(f"cannot read path {text!r}; write keys with dots and indexes as [0]")
        key, index = match.groups()
        steps.append(int(index) if index is not None else key)
        pos = match.end()
    if not steps:
        raise CkptdbError("a state condition needs a path, e.g. values.approved")
    return tuple(steps)


def format_path(path: tuple[PathStep, ...]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
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
