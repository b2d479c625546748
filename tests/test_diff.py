"""ckptdb.diff: JSON-pointer changes between two states, checked by example and by property.

The properties: a value against itself has no change; applying the changes to `before` gives
exactly `after` (so nothing is missed and nothing is invented); one message appended, prepended
or inserted anywhere in a list is one `added` change at its index.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptdb.diff import Change, diff, json_equal, pointer, pointer_tokens

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
keys = st.text(alphabet=st.sampled_from("ab/~0 é"), max_size=3)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


def _apply(before: Any, changes: list[Change]) -> Any:
    """Apply changes as the module documents them: removals at `before` indexes (highest first),
    additions at `after` indexes (lowest first), changes in place."""
    doc = {"root": copy.deepcopy(before)}

    def parent(path: str) -> tuple[Any, Any]:
        tokens = ["root", *pointer_tokens(path)]
        node: Any = doc
        for token in tokens[:-1]:
            node = node[int(token)] if isinstance(node, list) else node[token]
        last: Any = tokens[-1]
        return node, int(last) if isinstance(node, list) else last

    def index_key(change: Change) -> list[Any]:
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in pointer_tokens(change.path)]

    for change in changes:
        if change.kind == "changed":
            node, key = parent(change.path)
            node[key] = copy.deepcopy(change.after)
    removals = sorted((c for c in changes if c.kind == "removed"), key=index_key, reverse=True)
    for change in removals:
        node, key = parent(change.path)
        del node[key]
    for change in (c for c in changes if c.kind == "added"):
        node, key = parent(change.path)
        if isinstance(node, list):
            node.insert(key, copy.deepcopy(change.after))
        else:
            node[key] = copy.deepcopy(change.after)
    return doc["root"]


@settings(max_examples=400, deadline=None)
@given(json_values, json_values)
def test_applying_the_changes_to_before_gives_after(before: Any, after: Any) -> None:
    changes = diff(before, after)
    assert json_equal(_apply(before, changes), after)
    assert (changes == []) == json_equal(before, after)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_a_value_against_itself_has_no_change(value: Any) -> None:
    assert diff(value, copy.deepcopy(value)) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=8), json_values, st.data())
def test_one_message_added_anywhere_is_one_change(messages: list[Any], new: Any, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(messages)))
    grown = [*messages[:at], new, *messages[at:]]
    changes = diff({"messages": messages}, {"messages": grown})
    assert len(changes) == 1
    (change,) = changes
    assert change.kind == "added"
    assert json_equal(change.after, new)
    # The index may be any place where inserting `new` gives the same list (a run of equal items).
    index = int(pointer_tokens(change.path)[1])
    assert json_equal([*messages[:index], new, *messages[index:]], grown)


def test_a_message_appended_is_one_added_change_not_a_new_list() -> None:
    before = {"messages": [{"role": "user", "content": "hi"}], "values": {"n": 1}}
    after = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "ai", "content": "hello"}],
        "values": {"n": 1},
    }
    assert diff(before, after) == [Change("added", "/messages/1", None, {"role": "ai", "content": "hello"})]
    # The same message said twice: the second one is the one appended, at the end.
    hi = {"role": "user", "content": "hi"}
    assert diff({"messages": [hi]}, {"messages": [hi, hi]}) == [Change("added", "/messages/1", None, hi)]


def test_added_removed_and_changed_carry_before_and_after() -> None:
    before = {"values": {"approved": False, "amount": 42, "note": "x"}, "gone": [1]}
    after = {"values": {"approved": True, "amount": 42, "owner": "ana"}}
    assert diff(before, after) == [
        Change("changed", "/values/approved", False, True),
        Change("added", "/values/owner", None, "ana"),
        Change("removed", "/values/note", "x", None),
        Change("removed", "/gone", [1], None),
    ]


def test_a_list_item_edited_in_place_is_a_change_inside_it() -> None:
    before = {"messages": [{"content": "a"}, {"content": "b"}, {"content": "c"}]}
    after = {"messages": [{"content": "a"}, {"content": "B"}, {"content": "c"}]}
    assert diff(before, after) == [Change("changed", "/messages/1/content", "b", "B")]


def test_items_removed_from_the_middle_are_named_at_their_old_index() -> None:
    assert diff([1, 2, 3, 4, 5], [1, 5]) == [
        Change("removed", "/1", 2),
        Change("removed", "/2", 3),
        Change("removed", "/3", 4),
    ]


def test_json_types_are_not_python_types() -> None:
    assert diff({"a": True}, {"a": 1}) == [Change("changed", "/a", True, 1)]
    assert diff({"a": 1}, {"a": 1.0}) == [Change("changed", "/a", 1, 1.0)]
    assert diff([0.0], [-0.0]) == [Change("changed", "/0", 0.0, -0.0)]
    assert diff({"a": None}, {}) == [Change("removed", "/a", None, None)]
    assert diff({"a": []}, {"a": {}}) == [Change("changed", "/a", [], {})]
    assert diff(1, "1") == [Change("changed", "", 1, "1")]
    assert not json_equal(math.inf, -math.inf)


def test_pointers_escape_tilde_and_slash_and_read_back() -> None:
    assert pointer(("a/b", "m~n", 3, "")) == "/a~1b/m~0n/3/"
    assert pointer_tokens("/a~1b/m~0n/3/") == ["a/b", "m~n", "3", ""]
    assert pointer_tokens("/~01") == ["~1"]
    assert diff({"a/b": {"~": 1}}, {"a/b": {"~": 2}}) == [Change("changed", "/a~1b/~0", 1, 2)]
    assert pointer(()) == "" and pointer_tokens("") == []


def test_a_big_state_with_one_message_appended_diffs_to_one_change() -> None:
    messages = [{"role": "user", "content": "m" * 100, "i": i} for i in range(10_000)]
    before = {"messages": messages, "values": {"k": list(range(1000))}}
    after = {"messages": [*messages, {"role": "ai", "content": "new"}], "values": {"k": list(range(1000))}}
    assert diff(before, after) == [Change("added", "/messages/10000", None, {"role": "ai", "content": "new"})]
