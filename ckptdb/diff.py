"""What changed between two checkpoints' states: added, removed and changed values at JSON-pointer
paths (RFC 6901), each with its value before and after.

Why not a plain walk of the top-level keys (what the one terminal tool for LangGraph checkpoints
does): the state of an agent is mostly a `messages` list that grows by one message per step, and a
person wants to read "message 7 was added", not "messages changed" followed by the whole list. So
lists are compared by their common head and tail first: a message appended, prepended or
inserted is one `added` change at its index; what differs between the head and the tail is
compared position by position, and only the surplus is added or removed.

Paths into a list name the index in the document where the value lives: an `added` value's index
in `after`, a `removed` value's index in `before`, a `changed` value's index in both (head and
paired middle keep their positions). One list never holds both additions and removals.

Values are compared as JSON, not as Python: `true` is not `1`, `1` is not `1.0`, `-0.0` is not `0.0`
(echo writes each spelling back as it was), so a change of type or spelling is a change.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ckptdb.model import Checkpoint, JsonValue
from ckptdb.store import CheckpointQuery, CheckpointStore, encode_cursor

__all__ = ["Change", "ChangeKind", "diff", "json_equal", "pointer", "pointer_tokens", "previous_checkpoint"]

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: `path` is a JSON pointer (`""` is the whole document, `/messages/3`)."""

    kind: ChangeKind
    path: str
    before: JsonValue = None
    """The old value (None for `added`)."""
    after: JsonValue = None
    """The new value (None for `removed`)."""


def pointer(tokens: tuple[str | int, ...]) -> str:
    """The RFC 6901 pointer of a path: `~` is written `~0` and `/` is written `~1` inside a token."""
    return "".join("/" + str(token).replace("~", "~0").replace("/", "~1") for token in tokens)


def pointer_tokens(text: str) -> list[str]:
    """The tokens of an RFC 6901 pointer, unescaped (the inverse of `pointer`, indexes as text)."""
    if text == "":
        return []
    if not text.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/', got {text!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in text[1:].split("/")]


def _kind(value: JsonValue) -> type:
    # bool before int: in Python True == 1, in JSON they are different values.
    return bool if isinstance(value, bool) else type(value)


def json_equal(a: JsonValue, b: JsonValue) -> bool:
    """Equality of two JSON values as documents: types must match (`true` is not `1`, `1` is not
    `1.0`), and `-0.0` differs from `0.0` (echo spells them differently)."""
    if _kind(a) is not _kind(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(key in b and json_equal(value, b[key]) for key, value in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


def diff(before: JsonValue, after: JsonValue) -> list[Change]:
    """Every difference from `before` to `after`, in document order (dict keys as `after` lists
    them, then the keys only `before` had)."""
    return list(_walk(before, after, ()))


def _walk(before: JsonValue, after: JsonValue, path: tuple[str | int, ...]) -> Iterator[Change]:
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in after.items():
            if key in before:
                yield from _walk(before[key], value, (*path, key))
            else:
                yield Change("added", pointer((*path, key)), None, value)
        for key, value in before.items():
            if key not in after:
                yield Change("removed", pointer((*path, key)), value, None)
        return
    if isinstance(before, list) and isinstance(after, list):
        yield from _walk_lists(before, after, path)
        return
    if not json_equal(before, after):
        yield Change("changed", pointer(path), before, after)


def _walk_lists(
    before: list[JsonValue], after: list[JsonValue], path: tuple[str | int, ...]
) -> Iterator[Change]:
    shortest = min(len(before), len(after))
    head = 0
    while head < shortest and json_equal(before[head], after[head]):
        head += 1
    tail = 0
    while tail < shortest - head and json_equal(before[-1 - tail], after[-1 - tail]):
        tail += 1
    old = before[head : len(before) - tail]
    new = after[head : len(after) - tail]
    paired = min(len(old), len(new))
    for offset in range(paired):
        yield from _walk(old[offset], new[offset], (*path, head + offset))
    for offset in range(paired, len(new)):
        yield Change("added", pointer((*path, head + offset)), None, new[offset])
    for offset in range(paired, len(old)):
        yield Change("removed", pointer((*path, head + offset)), old[offset], None)


async def previous_checkpoint(store: CheckpointStore, checkpoint: Checkpoint) -> Checkpoint | None:
    """The checkpoint of the same graph listed right after `checkpoint` (one step older), or None:
    what a diff compares with by default.

    The library has no call for it and needs none: it is the first row of a keyset page that
    starts after the given checkpoint, in the order `ckptdb list` shows a graph (created_at, then
    id, newest first), so it costs one index probe whatever the graph's size."""
    query = CheckpointQuery(
        graph_name=checkpoint.graph_name, cursor=encode_cursor(checkpoint.info()), limit=1
    )
    page = await store.query(query)
    if not page.items:
        return None
    return await store.load(page.items[0].id)
