"""Property-based tests (issue #6, part 4), with hypothesis.

1. Any checkpoint with arbitrary JSON state round-trips *exactly* (same echo JSON text: same keys,
   float bits incl. -0.0, bool vs int, big and negative ints, nanoseconds and offsets) through
   every store in `conftest.STORE_FACTORIES` and through the echo JSON format, or is refused with
   a ckptdb error. Refusal is allowed only for a reason the test knows in advance (a "poison":
   lone surrogate, NaN, a non-JSON object, an int too long to print, a non-string key, an id the
   file store cannot use as a name); anything else must round-trip. A refused save writes nothing.
2. Arbitrary bytes (and arbitrary text, mutated valid documents, documents with wrong field types)
   fed to `Checkpoint.from_json` raise nothing but InvalidCheckpointError; whatever it accepts
   serializes and re-parses to the same checkpoint.
"""

from __future__ import annotations

import enum
import json
import math
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import is_file_store, is_sql_store
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ckptdb import (
    Checkpoint,
    CheckpointStore,
    CkptdbError,
    InterruptType,
    InvalidCheckpointError,
    InvalidIdError,
    Timestamp,
)
from ckptdb.model import CHRONO_MAX_NANOS, CHRONO_MIN_NANOS, FIELD_ORDER, MAX_NANOS, MIN_NANOS, U64_MAX

STORE_EXAMPLES = 100
CODEC_EXAMPLES = 300
BYTES_EXAMPLES = 500
DAY_NS = 86_400 * 10**9

store_settings = settings(
    max_examples=STORE_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
codec_settings = settings(
    max_examples=CODEC_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ── strategies ────────────────────────────────────────────────────────────────────────────────────

# Any code point but lone surrogates (those are a poison below): U+0000, controls, U+2028, emoji...
clean_chars = st.characters(exclude_categories=["Cs"]) | st.sampled_from(
    ["\x00", "\u2028", "🚀", "é", '"', "\\"]
)
clean_text = st.text(clean_chars, max_size=12)

EDGE_INTS = [
    0,
    -1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    10**40,
    -(10**40),
]
EDGE_FLOATS = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e16, 1e15, 1e-5,
               1e-7, 0.1, 123456789012345680.0, 9007199254740993.0]  # fmt: skip
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(EDGE_INTS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(EDGE_FLOATS)
    | clean_text
)


def wrap(value: Any, levels: list[bool]) -> Any:
    for as_list in levels:
        value = [value] if as_list else {"k": value}
    return value


json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(clean_text, children, max_size=4),
    max_leaves=24,
)
# Deep nesting: up to about 100 levels plus what json_values nests (what echo reads is 126 levels).
deep_values = st.builds(wrap, json_values, st.lists(st.booleans(), max_size=100))
any_json = json_values | deep_values | st.sampled_from([{}, [], "", {"": {}}, [[]], {"a": []}])


def needed_digits(nanos: int) -> int:
    fraction = nanos % 10**9
    return 0 if fraction == 0 else len(f"{fraction:09d}".rstrip("0"))


@st.composite
def timestamps(draw: st.DrawFn) -> Timestamp:
    nanos = draw(
        st.integers(MIN_NANOS + DAY_NS, MAX_NANOS - DAY_NS)
        | st.sampled_from([0, 1, -1, 1_793_667_827_350_000_000, 1_793_667_827_121_790_252])
    )
    offset = draw(st.none() | st.integers(-1439, 1439))
    digits = draw(st.none() | st.integers(needed_digits(nanos), 9))
    return Timestamp(nanos, offset, digits)


KNOWN = set(FIELD_ORDER)


@st.composite
def checkpoints(draw: st.DrawFn) -> Checkpoint:
    return Checkpoint(
        id=draw(clean_text | st.uuids().map(str)),
        graph_name=draw(clean_text),
        current_node=draw(clean_text),
        state_snapshot=draw(any_json),
        path=draw(st.lists(clean_text, max_size=5)),
        step_count=draw(st.integers(0, U64_MAX) | st.sampled_from([0, 2**63 - 1, 2**63, U64_MAX])),
        created_at=draw(timestamps()),
        pending_action=draw(st.none() | any_json),
        interrupt_type=draw(st.sampled_from(list(InterruptType))),
        extra=draw(st.dictionaries(clean_text.filter(lambda k: k not in KNOWN), any_json, max_size=3)),
    )


class Opaque:
    """Not a JSON value."""


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: int


POISONS = {
    "lone surrogate in a state string": lambda cp: setattr(cp, "state_snapshot", {"t": "a\ud800b"}),
    "lone surrogate in a state key": lambda cp: setattr(cp, "state_snapshot", {"\udfff": 1}),
    "lone surrogate in graph_name": lambda cp: setattr(cp, "graph_name", "g\udc80"),
    "lone surrogate in the id": lambda cp: setattr(cp, "id", "id-\ud83d"),
    "lone surrogate in path": lambda cp: setattr(cp, "path", ["ok", "\udc00"]),
    "lone surrogate in an extra field": lambda cp: setattr(cp, "extra", {"label": "\ud800"}),
    "NaN": lambda cp: setattr(cp, "state_snapshot", {"x": [math.nan]}),
    "infinity": lambda cp: setattr(cp, "pending_action", -math.inf),
    "a set in the state": lambda cp: setattr(cp, "state_snapshot", {"s": {1, 2}}),
    "bytes in the state": lambda cp: setattr(cp, "state_snapshot", [b"raw"]),
    "an object in the state": lambda cp: setattr(cp, "state_snapshot", {"o": Opaque()}),
    # orjson, which writes most column text, would turn these into strings or numbers silently.
    "a datetime in the state": lambda cp: setattr(cp, "state_snapshot", {"at": datetime.now(UTC)}),
    "a UUID in the state": lambda cp: setattr(cp, "state_snapshot", [uuid.uuid4()]),
    "an Enum member in the state": lambda cp: setattr(cp, "state_snapshot", {"kind": Colour.RED}),
    "a dataclass in the state": lambda cp: setattr(cp, "state_snapshot", {"at": Point(1, 2)}),
    "an int too long to print": lambda cp: setattr(
        cp, "state_snapshot", 10 ** (sys.get_int_max_str_digits() + 1)
    ),
    "step_count above 2^64-1": lambda cp: setattr(cp, "step_count", U64_MAX + 1),
    "negative step_count": lambda cp: setattr(cp, "step_count", -1),
    # chrono's range; years 0 and 10000 are echo's (the SQL stores' narrower range is tested below)
    "a time before chrono's year -262144": lambda cp: setattr(
        cp, "created_at", Timestamp(CHRONO_MIN_NANOS - 1)
    ),
    "a time after chrono's year 262143": lambda cp: setattr(
        cp, "created_at", Timestamp(CHRONO_MAX_NANOS + 1)
    ),
    "an offset of 24 hours": lambda cp: setattr(cp, "created_at", Timestamp(0, 1440)),
    "a time text that is not the instant": lambda cp: setattr(
        cp, "created_at", Timestamp(0, None, 0, "2026-11-23 10:00:00Z")
    ),
    "nesting past what echo reads": lambda cp: setattr(cp, "state_snapshot", wrap(1, [True] * 127)),
    "an int past f64 (echo refuses it)": lambda cp: setattr(cp, "pending_action", [10**400]),
    "a time far out of range": lambda cp: setattr(cp, "created_at", Timestamp(10**30)),
    "a non-string path entry": lambda cp: setattr(cp, "path", ["a", 3]),
}


@dataclass
class Case:
    checkpoint: Checkpoint
    poison: str | None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    checkpoint = draw(checkpoints())
    # One example in five carries exactly one thing that must be refused.
    poison = draw(st.none() | st.none() | st.none() | st.none() | st.sampled_from(sorted(POISONS)))
    if poison is not None:
        POISONS[poison](checkpoint)
    return Case(checkpoint, poison)


def file_name_problem(checkpoint_id: str) -> bool:
    """The spec of a usable file name, written independently of ckptdb.files.check_file_id."""
    return (
        not checkpoint_id
        or "/" in checkpoint_id
        or "\\" in checkpoint_id
        or ".." in checkpoint_id
        or any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in checkpoint_id)
        or (len(checkpoint_id) > 1 and checkpoint_id[1] == ":")
        or len(checkpoint_id.encode("utf-8", "surrogatepass")) > 240
    )


def backend_refusal(store: CheckpointStore, checkpoint: Checkpoint) -> str | None:
    """A refusal one backend documents for an otherwise valid checkpoint (allowed, not required):
    PostgreSQL `text` cannot hold U+0000, so a NUL in id, graph_name, current_node (or path) may be
    refused there; in JSON columns it is kept as the escape \\u0000."""
    if is_sql_store(store) and store.target.kind == "postgresql":
        texts = [checkpoint.id, checkpoint.graph_name, checkpoint.current_node, *checkpoint.path]
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            return "U+0000"
    return None


def exact_text(checkpoint: Checkpoint) -> str:
    """The exact identity of a checkpoint: its echo JSON (every field, float bits, key sets)."""
    return checkpoint.to_json()


# ── 1. round trips ────────────────────────────────────────────────────────────────────────────────


@codec_settings
@given(cases())
def test_echo_json_round_trip_is_exact_or_refused(case: Case) -> None:
    checkpoint = case.checkpoint
    try:
        text = checkpoint.to_json()
    except CkptdbError as exc:
        assert case.poison is not None, f"refused a valid checkpoint: {exc}"
        assert isinstance(exc, InvalidCheckpointError)
        return
    assert case.poison is None, f"accepted a checkpoint with {case.poison}"
    back = Checkpoint.from_json(text.encode("utf-8"))
    assert back.to_json() == text
    assert back.created_at.unix_nanos == checkpoint.created_at.unix_nanos
    assert back.step_count == checkpoint.step_count
    assert Checkpoint.from_json(text).to_json() == text  # str input too


@store_settings
@given(case=cases())
async def test_every_store_round_trips_exactly_or_refuses(store: CheckpointStore, case: Case) -> None:
    checkpoint = case.checkpoint
    files = is_file_store(store)
    bad_name = files and isinstance(checkpoint.id, str) and file_name_problem(checkpoint.id)
    loadable_id = not bad_name and not any(0xD800 <= ord(c) <= 0xDFFF for c in checkpoint.id)
    before = await store.load(checkpoint.id) if loadable_id else None
    before_text = exact_text(before) if before is not None else None
    backend_says_no = backend_refusal(store, checkpoint)
    if case.poison is None and bad_name:
        event("refused: id not a file name")
    else:
        event(
            f"poison: {case.poison}"
            if case.poison
            else f"backend refusal: {backend_says_no}"
            if backend_says_no
            else "valid"
        )
    try:
        await store.save(checkpoint)
    except CkptdbError as exc:
        allowed = case.poison is not None or bad_name or backend_says_no is not None
        assert allowed, f"refused a valid checkpoint: {type(exc).__name__}: {exc}"
        if bad_name and case.poison is None:
            assert isinstance(exc, InvalidIdError), exc
        if backend_says_no and case.poison is None and not bad_name:
            assert isinstance(exc, InvalidCheckpointError) and backend_says_no in str(exc), exc
        if loadable_id:  # the refused save wrote nothing: what was there is still there
            after = await store.load(checkpoint.id)
            assert (exact_text(after) if after is not None else None) == before_text
        return
    assert case.poison is None, f"stored a checkpoint with {case.poison}"
    assert not bad_name, f"the file store accepted the id {checkpoint.id!r}"
    loaded = await store.load(checkpoint.id)
    assert loaded is not None
    assert exact_text(loaded) == exact_text(checkpoint)
    assert loaded.created_at.unix_nanos == checkpoint.created_at.unix_nanos
    infos = [info for info in (await store.query(graph_name=checkpoint.graph_name, limit=None)).items]
    info = next(i for i in infos if i.id == checkpoint.id)
    assert (info.graph_name, info.current_node, info.step_count, info.interrupt_type) == (
        checkpoint.graph_name,
        checkpoint.current_node,
        checkpoint.step_count,
        checkpoint.interrupt_type,
    )
    assert info.created_at.unix_nanos == checkpoint.created_at.unix_nanos


@store_settings
@given(batch=st.lists(cases(), min_size=1, max_size=5))
async def test_save_many_is_all_or_nothing_for_invalid_input(
    store: CheckpointStore, batch: list[Case]
) -> None:
    files = is_file_store(store)
    checkpoints_ = [case.checkpoint for case in batch]
    doomed = any(case.poison is not None for case in batch) or (
        files and any(file_name_problem(cp.id) for cp in checkpoints_)
    )
    backend_may_refuse = any(backend_refusal(store, cp) for cp in checkpoints_)
    await store.clear()
    try:
        count = await store.save_many(checkpoints_)
    except CkptdbError as exc:
        assert doomed or backend_may_refuse, f"refused a valid batch: {type(exc).__name__}: {exc}"
        assert await store.list() == []  # nothing of the batch was written
        return
    assert not doomed, "stored a batch holding a checkpoint that must be refused"
    assert count == len(checkpoints_)
    last = {cp.id: cp for cp in checkpoints_}  # an id twice in one batch: the last one wins
    assert sorted(i.id for i in await store.list()) == sorted(last)
    for checkpoint_id, checkpoint in last.items():
        loaded = await store.load(checkpoint_id)
        assert loaded is not None and exact_text(loaded) == exact_text(checkpoint)


# ── 2. from_json on anything ──────────────────────────────────────────────────────────────────────

VALID_DOC = json.loads(Checkpoint.new("g", "n", {"values": {"x": 1}}, ["a"], 3, "afternode").to_json())


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    """A valid echo file (from a random checkpoint) with random bytes inserted, deleted or replaced."""
    try:
        data = bytearray(draw(checkpoints()).to_json().encode("utf-8"))
    except InvalidCheckpointError:
        data = bytearray(json.dumps(VALID_DOC).encode())
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        byte = draw(st.integers(0, 255) | st.sampled_from(list(b'{}[]",:\\0-eE.+u')))
        if action == "insert":
            data.insert(position, byte)
        elif action == "truncate":
            del data[position:]
        elif position < len(data):
            if action == "delete":
                del data[position]
            else:
                data[position] = byte
    return bytes(data)


field_values = st.one_of(
    any_json.map(lambda value: value),  # map: keep the specials below at half of all draws
    st.sampled_from([
        "2026-11-03T09:50:52.350Z", "2026-11-03T09:50:52+08:00", "2026-13-03T00:00:00Z",
        "0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
        "BeforeNode", "beforenode", "toolapproval",
        U64_MAX, U64_MAX + 1, -1, 1.0, True, "\ud800",
    ]),
)  # fmt: skip


@st.composite
def field_mixes(draw: st.DrawFn) -> bytes:
    """Documents with the nine keys (some missing or extra) holding values of any type."""
    document = dict(VALID_DOC)
    for key in draw(st.lists(st.sampled_from([*FIELD_ORDER, "parent_checkpoint_id", "tags"]), max_size=4)):
        if draw(st.booleans()):
            document[key] = draw(field_values)
        else:
            document.pop(key, None)
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


def check_from_json(data: bytes | str) -> None:
    try:
        checkpoint = Checkpoint.from_json(data, source="fuzz.json")
    except InvalidCheckpointError as exc:
        assert str(exc).startswith("fuzz.json: "), exc  # the message names the file
        event("refused")
        return
    event("accepted")
    # Accepted: then it is a valid checkpoint, which serializes and re-parses to itself.
    checkpoint.validate()
    text = checkpoint.to_json()
    again = Checkpoint.from_json(text)
    assert again.to_json() == text
    assert again.created_at.unix_nanos == checkpoint.created_at.unix_nanos


@settings(max_examples=BYTES_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600) | mutated_documents() | field_mixes())
def test_from_json_on_arbitrary_bytes(data: bytes) -> None:
    check_from_json(data)


@settings(max_examples=BYTES_EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(st.characters(exclude_categories=[]), max_size=200)
    | field_mixes().map(lambda b: b.decode("utf-8", "surrogatepass"))
)
def test_from_json_on_arbitrary_text(data: str) -> None:
    check_from_json(data)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param('"\\ud800"', id="escaped-lone-high-surrogate"),
        pytest.param('"\\udc00 tail"', id="escaped-lone-low-surrogate"),
        pytest.param('{"\\ud800": 1}', id="escaped-lone-surrogate-key"),
    ],
)
def test_from_json_refuses_escaped_lone_surrogates(document: str) -> None:
    """serde_json refuses a \\u escape of a lone surrogate; so must ckptdb, rather than accept a
    checkpoint it then cannot write anywhere."""
    text = json.dumps({**VALID_DOC, "state_snapshot": "PLACEHOLDER"}).replace('"PLACEHOLDER"', document)
    with pytest.raises(InvalidCheckpointError, match="surrogate"):
        Checkpoint.from_json(text.encode())
    paired = json.dumps({**VALID_DOC, "state_snapshot": "PLACEHOLDER"}).replace(
        '"PLACEHOLDER"', '"\\ud83d\\ude80"'
    )
    assert Checkpoint.from_json(paired.encode()).state_snapshot == "🚀"


@pytest.mark.parametrize("state", [{1: "one"}, {"a": {None: 1}}, [{True: 0}], {1.5: "x"}], ids=repr)
async def test_non_string_keys_are_refused_by_every_store(store: CheckpointStore, state: Any) -> None:
    """JSON keys are strings. A dict with an int/float/bool/None key is not a JSON object: storing
    it as {"1": ...} would hand back different data from what was saved."""
    checkpoint = Checkpoint.new("g", "n", None, [], 0, "beforenode")
    checkpoint.state_snapshot = state  # Checkpoint.new refuses it already (test_model.py)
    try:
        await store.save(checkpoint)
    except InvalidCheckpointError as exc:
        assert "is not a string" in str(exc) or "keys" in str(exc), exc
        assert await store.load(checkpoint.id) is None
        return
    pytest.fail(f"stored {state!r}, which has a non-string key")


@pytest.mark.parametrize("poison", sorted(POISONS))
async def test_every_poison_is_refused_by_every_store_and_the_codec(
    store: CheckpointStore, poison: str
) -> None:
    """The random tests meet each poison only now and then; this meets each one every run."""
    kept = Checkpoint.new("g", "n", {"kept": True}, [], 0, "beforenode")
    await store.save(kept)
    checkpoint = Checkpoint.new("g", "n", {"fine": 1}, ["a"], 1, "afternode")
    POISONS[poison](checkpoint)
    with pytest.raises(InvalidCheckpointError):
        checkpoint.to_json()
    with pytest.raises(CkptdbError):
        await store.save(checkpoint)
    with pytest.raises(CkptdbError):
        await store.save_many([Checkpoint.new("g", "n", None, [], 0, "beforenode"), checkpoint])
    assert [info.id for info in await store.list()] == [kept.id]
    loaded = await store.load(kept.id)
    assert loaded is not None and loaded.to_json() == kept.to_json()


@pytest.mark.parametrize(
    "text", ["0000-12-31T23:59:59.999999999Z", "+10000-01-01T00:00:00Z", "-0001-06-01T12:00:00Z"]
)
async def test_years_echo_reads_outside_0001_9999(store: CheckpointStore, text: str) -> None:
    """echo (chrono) reads and writes years 0, 10000 and below 0, so the codec and the file and
    memory stores keep them; the SQL stores' fixed-width UTC column holds 0001-9999 only and
    refuses the rest with one line, writing nothing (README, Known gaps)."""
    checkpoint = Checkpoint.from_json(json.dumps({**VALID_DOC, "created_at": text}))
    assert json.loads(checkpoint.to_json())["created_at"] == text
    if is_sql_store(store):
        with pytest.raises(InvalidCheckpointError, match="outside the years 0001-9999"):
            await store.save(checkpoint)
        assert await store.load(checkpoint.id) is None
        return
    await store.save(checkpoint)
    loaded = await store.load(checkpoint.id)
    assert loaded is not None and loaded.to_json() == checkpoint.to_json()


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23 10:00:00z",
        "2026-11-23T10:00:00-00:00",
        "2026-11-23T10:00:00.123456789123Z",
        "2026-12-31T23:59:60.5Z",
        "2026-11-23T10:00:00UTC",
        "2026-1-3T1:2:3+0800",
    ],
)
async def test_every_store_keeps_created_at_as_echo_wrote_it(store: CheckpointStore, text: str) -> None:
    """The spellings chrono reads beyond RFC 3339 come back from every store exactly as written."""
    checkpoint = Checkpoint.from_json(json.dumps({**VALID_DOC, "created_at": text}))
    await store.save(checkpoint)
    loaded = await store.load(checkpoint.id)
    assert loaded is not None
    assert loaded.created_at.isoformat() == text
    assert loaded.to_json() == checkpoint.to_json()
    info = next(i for i in await store.list() if i.id == checkpoint.id)
    assert info.created_at.isoformat() == text


async def test_a_hand_made_timestamp_text_is_kept_by_every_store(store: CheckpointStore) -> None:
    """Timestamp(nanos, text=...) without fraction_digits: the spelling still survives a SQL row."""
    text = "2026-11-23 10:00:00.5z"
    checkpoint = Checkpoint.new("g", "n", None, [], 0, "beforenode")
    checkpoint.created_at = Timestamp(Timestamp.parse(text).unix_nanos, text=text)
    await store.save(checkpoint)
    loaded = await store.load(checkpoint.id)
    assert loaded is not None and loaded.created_at.isoformat() == text
