"""The checkpoint model and its byte-exact echo codec (serde_json::to_string_pretty, chrono RFC 3339)."""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import math
import struct
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_DIR, canonical_sha256, load_manifest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptdb import Checkpoint, CheckpointInfo, InterruptType, InvalidCheckpointError, Timestamp, model

NS = 1_000_000_000

# ── helpers ───────────────────────────────────────────────────────────────────────────────────────


def echo_text(
    *,
    id: str = '"cp-1"',
    graph_name: str = '"g"',
    current_node: str = '"n"',
    state: str = "{}",
    path: str = "[]",
    step_count: str = "0",
    created_at: str = '"2026-11-03T01:03:47Z"',
    pending_action: str = "null",
    interrupt_type: str = '"beforenode"',
    extra: tuple[tuple[str, str], ...] = (),
) -> str:
    """A checkpoint file as serde_json's pretty printer lays it out; values are raw JSON text
    (multi-line values already indented for nesting level 1)."""
    fields = [
        ("id", id),
        ("graph_name", graph_name),
        ("current_node", current_node),
        ("state_snapshot", state),
        ("path", path),
        ("step_count", step_count),
        ("created_at", created_at),
        ("pending_action", pending_action),
        ("interrupt_type", interrupt_type),
        *extra,
    ]
    return "{\n" + ",\n".join(f'  "{key}": {value}' for key, value in fields) + "\n}"


def state_with(value_text: str) -> str:
    """`{"x": value}` at nesting level 1, as serde pretty-prints it."""
    return '{\n    "x": ' + value_text + "\n  }"


def utc_nanos(y: int, mo: int, d: int, h: int, mi: int, s: int, frac_nanos: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * NS + frac_nanos


def sample(**overrides: Any) -> Checkpoint:
    fields: dict[str, Any] = {
        "id": "cp-1",
        "graph_name": "g",
        "current_node": "n",
        "state_snapshot": {},
        "path": [],
        "step_count": 0,
        "created_at": Timestamp(utc_nanos(2026, 11, 3, 1, 3, 47)),
        "pending_action": None,
        "interrupt_type": InterruptType.BEFORE_NODE,
    }
    fields.update(overrides)
    return Checkpoint(**fields)


# ── the 300 real fixtures ─────────────────────────────────────────────────────────────────────────

MANIFEST_FILES = load_manifest()["files"]


def test_canonical_sha256_follows_the_recipe() -> None:
    # Keys sorted at every level, compact separators, raw non-ASCII, floats by repr, ints exact.
    expected = '{"a":[1.0,"é",18446744073709551615],"b":{"c":null,"d":true}}'
    data = '{"b": {"d": true, "c": null}, "a": [1.0, "\\u00e9", 18446744073709551615]}'
    digest = hashlib.sha256(expected.encode("utf-8")).hexdigest()
    assert canonical_sha256(data) == digest
    assert canonical_sha256(data.encode("utf-8")) == digest


@pytest.mark.parametrize("entry", MANIFEST_FILES, ids=[f["path"][:13] for f in MANIFEST_FILES])
def test_fixture_round_trips_byte_exact(entry: dict[str, Any]) -> None:
    raw = (FIXTURE_DIR / entry["path"]).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == entry["sha256_raw"], "fixture file changed"

    cp = Checkpoint.from_json(raw, source=entry["path"])
    written = cp.to_json()
    assert written.encode("utf-8") == raw
    assert canonical_sha256(raw) == entry["sha256_canonical"]
    assert canonical_sha256(written) == entry["sha256_canonical"]

    assert cp.id == entry["id"]
    assert cp.created_at.unix_nanos == entry["created_at_unix_nanos"]
    assert cp.created_at.isoformat() == entry["created_at"]
    assert cp.graph_name == entry["graph_name"]
    assert cp.current_node == entry["current_node"]
    assert cp.step_count == entry["step_count"]
    assert cp.interrupt_type == InterruptType(entry["interrupt_type"])
    assert len(cp.path) == entry["path_len"]
    assert (cp.pending_action is None) == entry["pending_action_is_null"]
    assert cp.extra == {}
    # str input reads the same as bytes input
    assert Checkpoint.from_json(raw.decode("utf-8")).to_json() == written


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def test_fixture_set_matches_manifest_totals(manifest: dict[str, Any], fixture_dir: Path) -> None:
    expected = manifest["expected"]
    by_type: dict[str, int] = {}
    by_digits: dict[str, int] = {}
    nul_files = set()
    for entry in manifest["files"]:
        cp = Checkpoint.from_json((fixture_dir / entry["path"]).read_bytes())
        by_type[cp.interrupt_type.value] = by_type.get(cp.interrupt_type.value, 0) + 1
        frac = cp.created_at.isoformat()[19:-1]
        digits = str(len(frac) - 1 if frac else 0)
        by_digits[digits] = by_digits.get(digits, 0) + 1
        if _has_nul(cp.state_snapshot) or _has_nul(cp.pending_action):
            assert "\\u0000" in cp.to_json()
            nul_files.add(entry["path"])
    assert by_type == expected["valid_by_interrupt_type_recursive_unique"]
    assert by_digits == expected["created_at_fraction_digits_recursive_unique"]
    # U+0000 inside a string survives the codec (written back as the escape \u0000, read as a real NUL)
    assert nul_files == {e["path"] for e in manifest["files"] if e["contains_nul_char"]}
    assert nul_files


# ── created_at ────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("2026-11-03T01:03:47Z", utc_nanos(2026, 11, 3, 1, 3, 47)),
        ("2026-11-03T09:50:52.350Z", utc_nanos(2026, 11, 3, 9, 50, 52, 350_000_000)),
        ("2026-11-16T11:28:27.718770Z", utc_nanos(2026, 11, 16, 11, 28, 27, 718_770_000)),
        ("2026-11-12T19:54:22.121790252Z", utc_nanos(2026, 11, 12, 19, 54, 22, 121_790_252)),
        ("2026-11-03T09:50:52.350+08:00", utc_nanos(2026, 11, 3, 1, 50, 52, 350_000_000)),
        ("2026-11-03T09:50:52+08:00", utc_nanos(2026, 11, 3, 1, 50, 52)),
        ("2026-11-03T01:03:47.000000001-05:30", utc_nanos(2026, 11, 3, 6, 33, 47, 1)),
        ("2026-11-03T01:03:47.5Z", utc_nanos(2026, 11, 3, 1, 3, 47, 500_000_000)),
        ("2026-11-03T01:03:47.1200Z", utc_nanos(2026, 11, 3, 1, 3, 47, 120_000_000)),
        ("2026-11-03T01:03:47.000Z", utc_nanos(2026, 11, 3, 1, 3, 47)),
        ("2026-11-03T01:03:47.718770000Z", utc_nanos(2026, 11, 3, 1, 3, 47, 718_770_000)),
        ("1969-12-31T23:59:59.999999999Z", -1),
        ("0999-01-01T00:00:00Z", utc_nanos(999, 1, 1, 0, 0, 0)),
    ],
)
def test_created_at_round_trips_to_the_same_text(text: str, nanos: int) -> None:
    source = echo_text(created_at=json.dumps(text))
    cp = Checkpoint.from_json(source)
    assert cp.created_at.unix_nanos == nanos
    assert cp.created_at.isoformat() == text
    assert cp.to_json() == source


@pytest.mark.parametrize(
    ("frac_nanos", "suffix"),
    [
        (0, ""),
        (350_000_000, ".350"),
        (718_770_000, ".718770"),
        (121_790_252, ".121790252"),
        (1, ".000000001"),
    ],
)
def test_timestamp_writes_chrono_fraction_digits(frac_nanos: int, suffix: str) -> None:
    ts = Timestamp(utc_nanos(2026, 11, 3, 1, 3, 47, frac_nanos))
    assert ts.isoformat() == f"2026-11-03T01:03:47{suffix}Z"
    assert Timestamp.parse(ts.isoformat()) == ts


def test_timestamp_keeps_nanoseconds_that_datetime_cannot() -> None:
    base = utc_nanos(2026, 11, 3, 1, 3, 47, 123_456_000)
    a, b = Timestamp(base + 1), Timestamp(base + 2)
    assert a < b and b > a and a <= b and not b <= a
    assert a.datetime == b.datetime  # datetime drops the nanoseconds...
    assert a.utc_text() < b.utc_text()  # ...the database text form does not
    assert a.utc_text() == "2026-11-03T01:03:47.123456001Z"
    assert Timestamp.from_utc_text(a.utc_text()).unix_nanos == a.unix_nanos


def test_same_instant_in_two_zones_compares_equal_as_instants() -> None:
    z = Checkpoint.from_json(echo_text(created_at='"2026-11-03T01:50:52.350Z"')).created_at
    cn = Checkpoint.from_json(echo_text(created_at='"2026-11-03T09:50:52.350+08:00"')).created_at
    assert z.unix_nanos == cn.unix_nanos
    assert not z < cn and not cn < z
    assert cn.offset_minutes == 480
    assert z.utc_text() == cn.utc_text()


def test_timestamp_from_datetime() -> None:
    aware = datetime(2026, 11, 3, 9, 50, 52, 718770, tzinfo=timezone(timedelta(hours=8)))
    ts = Timestamp.from_datetime(aware)
    assert ts.unix_nanos == utc_nanos(2026, 11, 3, 1, 50, 52, 718_770_000)
    assert ts.isoformat() == "2026-11-03T01:50:52.718770Z"
    assert ts.datetime == aware
    with pytest.raises(InvalidCheckpointError) as info:
        Timestamp.from_datetime(datetime(2026, 11, 3, 9, 50, 52))
    assert info.value.field == "created_at"
    assert "naive" in str(info.value)


def test_checkpoint_constructor_refuses_naive_datetime() -> None:
    with pytest.raises(InvalidCheckpointError):
        sample(created_at=datetime(2026, 11, 3))
    assert sample(created_at=datetime(2026, 11, 3, tzinfo=UTC)).created_at.unix_nanos == utc_nanos(
        2026, 11, 3, 0, 0, 0
    )
    assert sample(created_at="2026-11-03T00:00:00.5Z").created_at.unix_nanos == utc_nanos(
        2026, 11, 3, 0, 0, 0, 500_000_000
    )


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-03T01:03:47",  # no zone
        "2026-11-03T24:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-03T01:03:47.Z",
        "２０２６-11-03T01:03:47Z",  # fullwidth digits: not what chrono accepts
        "2026-11-03t01:03:47Z",  # chrono takes `T` or a space only (test_rust_agreement.py has the rest)
        "2026-11-03T01:03:47+24:00",
        "",
    ],
)
def test_bad_created_at_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.from_json(echo_text(created_at=json.dumps(text)), source="dir/x.json")
    assert info.value.field == "created_at"
    assert "dir/x.json" in str(info.value) and "created_at" in str(info.value)


def test_created_at_must_be_a_string() -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.from_json(echo_text(created_at="1793667827"), source="x.json")
    assert info.value.field == "created_at"


# ── step_count ────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("value", [0, 1, 2**63, 2**64 - 1])
def test_step_count_round_trips_u64(value: int) -> None:
    source = echo_text(step_count=str(value))
    cp = Checkpoint.from_json(source)
    assert cp.step_count == value and type(cp.step_count) is int
    assert cp.to_json() == source


@pytest.mark.parametrize("text", [str(2**64), "-1", "1.0", "true", '"3"', "null", "[]", "1e3"])
def test_step_count_outside_u64_is_refused(text: str) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.from_json(echo_text(step_count=text), source="s.json")
    assert info.value.field == "step_count"
    assert "step_count" in str(info.value) and "s.json" in str(info.value)


@pytest.mark.parametrize("value", [2**64, -1, 1.0, True, "3", None])
def test_step_count_checked_when_writing(value: Any) -> None:
    cp = sample()
    cp.step_count = value  # the constructor refuses it already (test_constructors_check_every_field)
    with pytest.raises(InvalidCheckpointError) as info:
        cp.to_json()
    assert info.value.field == "step_count"


# ── numbers inside the state ──────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("value", "spelling"),
    [
        (0.1, "0.1"),
        (1e16, "1e16"),
        (1e15, "1000000000000000.0"),
        (1e17, "1e17"),
        (1e-7, "1e-7"),
        (1e-5, "0.00001"),
        (1.5e-5, "0.000015"),
        (0.0001, "0.0001"),
        (123.456, "123.456"),
        (1.0, "1.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (-2.5, "-2.5"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e308"),
        (1.2345678901234568e17, "1.2345678901234568e17"),
        (1e21, "1e21"),
        (-1.5e-10, "-1.5e-10"),
    ],
)
def test_floats_round_trip_and_are_spelled_like_ryu(value: float, spelling: str) -> None:
    source = echo_text(state=state_with(spelling))
    cp = Checkpoint.from_json(source)
    parsed = cp.state_snapshot["x"]
    assert type(parsed) is float
    assert struct.pack("<d", parsed) == struct.pack("<d", value)  # bit-exact, -0.0 included
    assert cp.to_json() == source
    # the same value built in Python is written the same way
    assert sample(state_snapshot={"x": value}).to_json() == source


@pytest.mark.parametrize(
    ("text", "spelling"), [("1e+16", "1e16"), ("1E16", "1e16"), ("10e-8", "1e-7"), ("1.50", "1.5")]
)
def test_float_input_spellings_are_normalized_like_serde(text: str, spelling: str) -> None:
    assert Checkpoint.from_json(echo_text(state=state_with(text))).to_json() == echo_text(
        state=state_with(spelling)
    )


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_round_trips_exactly(value: float) -> None:
    text = sample(state_snapshot={"x": value}).to_json()
    back = Checkpoint.from_json(text).state_snapshot["x"]
    assert struct.pack("<d", back) == struct.pack("<d", value)
    assert Checkpoint.from_json(text).to_json() == text


@pytest.mark.parametrize("value", [0, -1, 2**63 - 1, -(2**63), 2**64 - 1])
def test_integers_in_state_stay_exact(value: int) -> None:
    source = echo_text(state=state_with(str(value)))
    cp = Checkpoint.from_json(source)
    assert cp.state_snapshot["x"] == value and type(cp.state_snapshot["x"]) is int
    assert cp.to_json() == source


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.from_json(echo_text(state=state_with(text)), source="f.json")
    assert "f.json" in str(info.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused_when_writing(value: float) -> None:
    with pytest.raises(InvalidCheckpointError):
        sample(state_snapshot={"values": {"score": value}}).to_json()
    with pytest.raises(InvalidCheckpointError):
        sample(pending_action=[value]).to_json()


# ── strings ───────────────────────────────────────────────────────────────────────────────────────


def test_strings_with_nul_controls_emoji_and_cjk_round_trip() -> None:
    value = '"a\\u0000b\\u0001\\u001f\\t\\n\\r\\b\\f\\"\\\\ é 生成回复 🐛🙏 \u007f \u2028"'
    source = echo_text(state=state_with(value), graph_name='"图 🐛"')
    cp = Checkpoint.from_json(source)
    assert cp.state_snapshot["x"] == 'a\x00b\x01\x1f\t\n\r\b\f"\\ é 生成回复 🐛🙏 \x7f \u2028'
    assert cp.graph_name == "图 🐛"
    assert cp.to_json() == source
    assert cp.to_json().encode("utf-8") == source.encode("utf-8")


def test_escaped_input_is_written_raw_like_serde() -> None:
    cp = Checkpoint.from_json(echo_text(state=state_with('"\\u00e9\\ud83d\\udc1b\\/"')))
    assert cp.state_snapshot["x"] == "é🐛/"
    assert cp.to_json() == echo_text(state=state_with('"é🐛/"'))


def test_lone_surrogate_read_from_an_escape_is_refused_on_write() -> None:
    try:
        cp = Checkpoint.from_json(echo_text(state=state_with('"\\ud800"')), source="s.json")
    except InvalidCheckpointError:
        return  # refusing at read time is fine too (serde_json does)
    with pytest.raises(InvalidCheckpointError):
        cp.to_json()


@pytest.mark.parametrize(
    "overrides",
    [
        {"state_snapshot": {"x": "\ud800"}},
        {"state_snapshot": {"\udfff": 1}},
        {"id": "cp-\ud800"},
        {"graph_name": "\udc00"},
        {"path": ["ok", "\ud800"]},
        {"pending_action": {"tool": "a\ud83d"}},
        {"extra": {"tags": ["\ud800"]}},
    ],
)
def test_lone_surrogates_are_refused_not_unicode_encode_error(overrides: dict[str, Any]) -> None:
    cp = sample()
    for name, value in overrides.items():  # assigned later: the constructor refuses them already
        setattr(cp, name, value)
    with pytest.raises(InvalidCheckpointError):
        cp.to_json()


# ── key order, unknown fields, pending_action ─────────────────────────────────────────────────────


def test_nested_keys_are_sorted_by_code_point_top_level_keys_are_not() -> None:
    cp = sample(
        state_snapshot={"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": 2}, "é": 0, "🐛": 0, "\uff61": 0, "Z": 0}
    )
    text = cp.to_json()
    doc_keys = list(json.loads(text))
    assert doc_keys == [
        "id",
        "graph_name",
        "current_node",
        "state_snapshot",
        "path",
        "step_count",
        "created_at",
        "pending_action",
        "interrupt_type",
    ]
    state_keys = list(json.loads(text)["state_snapshot"])
    assert state_keys == ["Z", "a", "b", "é", "\uff61", "🐛"]
    assert list(json.loads(text)["state_snapshot"]["a"]["d"][0]) == ["y", "z"]


def test_unknown_top_level_fields_are_kept_and_written_after_the_nine() -> None:
    source = echo_text(
        extra=(
            ("parent_checkpoint_id", '"cp-0"'),
            ("tags", '[\n    "a",\n    "b"\n  ]'),
            ("branch", '{\n    "depth": 2,\n    "name": "main"\n  }'),
        )
    )
    cp = Checkpoint.from_json(source)
    assert cp.extra == {
        "parent_checkpoint_id": "cp-0",
        "tags": ["a", "b"],
        "branch": {"depth": 2, "name": "main"},
    }
    assert cp.to_json() == source


def test_unknown_fields_in_the_middle_move_after_the_nine() -> None:
    doc = json.loads(echo_text())
    reordered = {"tags": ["x"], **doc}
    cp = Checkpoint.from_json(json.dumps(reordered))
    assert cp.extra == {"tags": ["x"]}
    assert cp.to_json() == echo_text(extra=(("tags", '[\n    "x"\n  ]'),))


def test_constructed_extra_fields_are_written_after_the_nine() -> None:
    text = sample(extra={"parent_checkpoint_id": None, "label": "v2"}).to_json()
    assert list(json.loads(text))[9:] == ["parent_checkpoint_id", "label"]
    assert text.endswith(
        '"interrupt_type": "beforenode",\n  "parent_checkpoint_id": null,\n  "label": "v2"\n}'
    )


def test_missing_pending_action_reads_as_null_like_serde_option() -> None:
    doc = json.loads(echo_text())
    del doc["pending_action"]
    cp = Checkpoint.from_json(json.dumps(doc))
    assert cp.pending_action is None
    assert cp.to_json() == echo_text()


def test_pending_action_and_state_may_be_any_json_value() -> None:
    pending = (
        '{\n    "args": {\n      "amount": 12.5,\n      "to": "acct-1"\n    },\n    "tool": "refund"\n  }'
    )
    for state in ("null", '"text"', "[]", "{}", "42", "false"):
        source = echo_text(state=state, pending_action=pending, interrupt_type='"toolapproval"')
        cp = Checkpoint.from_json(source)
        assert cp.interrupt_type is InterruptType.TOOL_APPROVAL
        assert cp.pending_action == {"args": {"amount": 12.5, "to": "acct-1"}, "tool": "refund"}
        assert cp.to_json() == source


@pytest.mark.parametrize("kind", list(InterruptType))
def test_interrupt_types_use_serde_lowercase_names(kind: InterruptType) -> None:
    source = echo_text(interrupt_type=json.dumps(kind.value))
    assert Checkpoint.from_json(source).interrupt_type is kind
    assert kind.value == kind.name.replace("_", "").lower()
    assert sample(interrupt_type=kind).to_json() == source


@pytest.mark.parametrize(
    "value", ['"BeforeNode"', '"before_node"', '"BEFORENODE"', '"beforeNode"', "0", "null", '""']
)
def test_other_interrupt_spellings_are_refused(value: str) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.from_json(echo_text(interrupt_type=value), source="i.json")
    assert info.value.field == "interrupt_type"


# ── invalid documents ─────────────────────────────────────────────────────────────────────────────

_VALID = echo_text().encode("utf-8")


def _without(key: str) -> bytes:
    doc = json.loads(_VALID)
    del doc[key]
    return json.dumps(doc).encode("utf-8")


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        pytest.param(_VALID.replace(b'"g"', b'"\xff\xfe"'), None, "UTF-8", id="not-utf8"),
        pytest.param(b"\xef\xbb\xbf" + _VALID, None, "JSON", id="utf8-bom"),
        pytest.param(b"", None, "empty", id="empty"),
        pytest.param(b"  \n", None, "empty", id="whitespace-only"),
        pytest.param(_VALID[: len(_VALID) // 2], None, "truncated", id="truncated"),
        pytest.param(_VALID + b"{", None, "JSON", id="trailing-garbage"),
        pytest.param(b"[" + _VALID + b"]", None, "array", id="top-level-array"),
        pytest.param(b'"just a string"', None, "string", id="top-level-string"),
        pytest.param(b"null", None, "null", id="top-level-null"),
        pytest.param(_without("id"), "id", "missing", id="missing-id"),
        pytest.param(_without("created_at"), "created_at", "missing", id="missing-created_at"),
        pytest.param(_without("state_snapshot"), "state_snapshot", "missing", id="missing-state"),
        pytest.param(_without("interrupt_type"), "interrupt_type", "missing", id="missing-interrupt"),
        pytest.param(
            _VALID.replace(b'"beforenode"', b'"BeforeNode"'), "interrupt_type", "BeforeNode", id="wrong-case"
        ),
        pytest.param(
            _VALID.replace(b'"step_count": 0', b'"step_count": "3"'), "step_count", "'3'", id="str-step"
        ),
        pytest.param(
            _VALID.replace(b"47Z", b"47"), "created_at", "2026-11-03T01:03:47", id="created_at-without-zone"
        ),
        pytest.param(_VALID.replace(b'"id": "cp-1"', b'"id": 7'), "id", "string", id="numeric-id"),
        pytest.param(
            _VALID.replace(b'"path": []', b'"path": ["a", 1]'), "path", "list", id="path-not-strings"
        ),
        pytest.param(
            _VALID.replace(b'"graph_name": "g"', b'"graph_name": null'), "graph_name", "null", id="null-graph"
        ),
    ],
)
def test_invalid_documents_name_the_source_and_field(data: bytes, field: str | None, words: str) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.from_json(data, source="/data/ckpts/broken.json")
    message = str(info.value)
    assert message.startswith("/data/ckpts/broken.json: ")
    assert info.value.source == "/data/ckpts/broken.json"
    assert info.value.field == field
    if field is not None:
        assert f"'{field}'" in message
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize("where", ["top", "state"])
def test_very_deep_nesting_is_refused_cleanly(where: str) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    data = deep if where == "top" else echo_text(state=deep)
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.from_json(data, source="deep.json")
    assert "deep.json" in str(info.value)


def test_deep_python_state_is_refused_cleanly_on_write() -> None:
    state: Any = []
    for _ in range(10_000):
        state = [state]
    with pytest.raises(InvalidCheckpointError):
        sample(state_snapshot=state).to_json()


@pytest.mark.parametrize(
    "state",
    [
        {1: "int key"},
        {"a": 1, 2: "mixed keys"},
        {"x": object()},
        {"x": {1, 2}},
        {"x": b"bytes"},
    ],
    ids=["int-key", "mixed-keys", "object", "set", "bytes"],
)
def test_non_json_python_values_are_refused_with_invalid_checkpoint(state: Any) -> None:
    with pytest.raises(InvalidCheckpointError):
        sample(state_snapshot=state).to_json()


# ── Checkpoint.new (port of the Rust unit tests) ──────────────────────────────────────────────────


def test_checkpoint_create() -> None:
    state = {"values": {"test_key": "test_value"}}
    before = time.time_ns()
    cp = Checkpoint.new("test_graph", "node1", state, ["start", "node1"], 2, InterruptType.BEFORE_NODE)
    after = time.time_ns()

    assert cp.id
    parsed = uuid.UUID(cp.id)
    assert parsed.version == 4 and str(parsed) == cp.id
    assert cp.graph_name == "test_graph"
    assert cp.current_node == "node1"
    assert len(cp.path) == 2
    assert cp.step_count == 2
    assert cp.interrupt_type is InterruptType.BEFORE_NODE
    assert cp.pending_action is None
    assert cp.extra == {}
    # a sanity bound on "now", not a timing assertion
    assert before - 5 * NS <= cp.created_at.unix_nanos <= after + 5 * NS
    assert cp.created_at.offset_minutes is None
    assert cp.created_at.isoformat().endswith("Z")


def test_checkpoint_restore_state() -> None:
    # The Rust test restores a SharedState from the snapshot; here the snapshot is plain JSON.
    cp = Checkpoint.new("test", "node", {"values": {"key": "value"}}, [], 0, "userrequest")
    restored = Checkpoint.from_json(cp.to_json())
    assert restored.state_snapshot["values"]["key"] == "value"
    assert restored.interrupt_type is InterruptType.USER_REQUEST
    assert restored.id == cp.id and restored.created_at.unix_nanos == cp.created_at.unix_nanos
    assert restored.to_json() == cp.to_json()


def test_new_checkpoints_get_distinct_ids_and_copy_the_path() -> None:
    path = ["start"]
    a = Checkpoint.new("g", "n", {}, path, 1, InterruptType.AFTER_NODE)
    b = Checkpoint.new("g", "n", {}, path, 1, InterruptType.AFTER_NODE)
    assert a.id != b.id
    path.append("later")
    assert a.path == ["start"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("g", "n", {}, [], -1, "beforenode"), "step_count"),
        (("g", "n", {}, [], 0, "BeforeNode"), "interrupt_type"),
        (("g", "n", {}, [1], 0, "beforenode"), "path"),
        ((None, "n", {}, [], 0, "beforenode"), "graph_name"),
    ],
)
def test_new_validates_its_arguments(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.new(*args)
    assert info.value.field == field


def test_info_summarizes_the_checkpoint() -> None:
    cp = sample(step_count=2**64 - 1, interrupt_type=InterruptType.TOOL_APPROVAL)
    assert cp.info() == CheckpointInfo(
        "cp-1", "g", "n", 2**64 - 1, Timestamp(utc_nanos(2026, 11, 3, 1, 3, 47)), InterruptType.TOOL_APPROVAL
    )


def test_every_truncation_of_a_real_file_is_reported_as_truncated(fixture_dir: Path) -> None:
    raw = (fixture_dir / MANIFEST_FILES[0]["path"]).read_bytes()
    text = raw.decode("utf-8")
    for cut in range(1, len(text), 7):  # every 7th cut: mid-key, mid-string, mid-number, between fields
        with pytest.raises(InvalidCheckpointError) as info:
            Checkpoint.from_json(text[:cut].encode("utf-8"), source="cut.json")
        assert str(info.value).startswith("cut.json: truncated JSON"), (cut, str(info.value))


@pytest.mark.parametrize("extra", [{1: "x"}, {None: 2}, {("a",): 3}], ids=["int", "none", "tuple"])
def test_extra_fields_need_string_keys(extra: dict[Any, Any]) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        sample(extra=extra).to_json()
    assert info.value.field == "extra"


# ── every public constructor checks its arguments ─────────────────────────────────────────────────

GOOD_NEW: dict[str, Any] = {
    "graph_name": "g",
    "current_node": "n",
    "state_snapshot": {"x": 1},
    "path": ["start"],
    "step_count": 1,
    "interrupt_type": "beforenode",
}


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"path": "start"}, "path", "did you mean ['start']?"),
        ({"path": b"start"}, "path", "list of node names"),
        ({"path": {"start": 1}}, "path", "list of node names"),
        ({"path": ["a", 3]}, "path", "entry 1 is the number 3"),
        ({"path": None}, "path", "list of node names"),
        ({"step_count": True}, "step_count", "unsigned integer"),
        ({"step_count": 1.0}, "step_count", "unsigned integer"),
        ({"step_count": -1}, "step_count", "unsigned integer"),
        ({"step_count": 2**64}, "step_count", "unsigned integer"),
        ({"step_count": "3"}, "step_count", "unsigned integer"),
        ({"graph_name": 7}, "graph_name", "expected a string"),
        ({"current_node": None}, "current_node", "expected a string"),
        ({"interrupt_type": "BeforeNode"}, "interrupt_type", "is not one of"),
        ({"interrupt_type": 1}, "interrupt_type", "is not one of"),
        ({"state_snapshot": {1, 2}}, "state_snapshot", "set is not a JSON value"),
        ({"state_snapshot": {"t": datetime.now(UTC)}}, "state_snapshot", "datetime is not a JSON value"),
        ({"state_snapshot": {1: "one"}}, "state_snapshot", "is not a string"),
        ({"state_snapshot": [math.nan]}, "state_snapshot", "NaN"),
        ({"state_snapshot": 10**400}, "state_snapshot", "out of range for echo"),
        ({"pending_action": b"raw"}, "pending_action", "bytes is not a JSON value"),
    ],
    ids=repr,
)
def test_new_checks_every_argument_where_it_enters(overrides: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.new(**{**GOOD_NEW, **overrides})
    assert info.value.field == field
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_new_takes_a_tuple_path_and_the_enum_or_its_string() -> None:
    cp = Checkpoint.new(**{**GOOD_NEW, "path": ("a", "b"), "interrupt_type": InterruptType.TOOL_APPROVAL})
    assert cp.path == ["a", "b"] and cp.interrupt_type is InterruptType.TOOL_APPROVAL
    assert Checkpoint.new(**GOOD_NEW).interrupt_type is InterruptType.BEFORE_NODE


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"path": "start"}, "path"),
        ({"path": ("a",)}, "path"),
        ({"step_count": False}, "step_count"),
        ({"id": 5}, "id"),
        ({"created_at": 1793667827}, "created_at"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"created_at": datetime(2026, 1, 1)}, "created_at"),
        ({"created_at": Timestamp(0, 24 * 60)}, "created_at"),
        ({"created_at": Timestamp(0, None, 12)}, "created_at"),
        ({"created_at": Timestamp(0, None, 0, "2026-11-23T10:00:00Z")}, "created_at"),
        ({"interrupt_type": "tool_approval"}, "interrupt_type"),
        ({"state_snapshot": object()}, "state_snapshot"),
        ({"extra": {"tags": {1, 2}}}, "tags"),
        ({"extra": ["tags"]}, "extra"),
    ],
    ids=repr,
)
def test_the_dataclass_constructor_checks_its_fields_too(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        sample(**overrides)
    assert info.value.field == field


def test_timestamp_takes_text_echo_reads_and_keeps_it() -> None:
    cp = sample(created_at="2026-11-23 18:00:00+08:00")
    assert cp.created_at.isoformat() == "2026-11-23 18:00:00+08:00"
    assert cp.created_at.rust_text() == "2026-11-23T10:00:00Z"
    assert cp.created_at == Timestamp.parse("2026-11-23 18:00:00+08:00")


# ── from_json is given the wrong kind of thing ────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            Path("checkpoints/a.json"),
            "not a path: Checkpoint.from_json(Path('checkpoints/a.json').read_bytes())",
        ),
        (io.StringIO("{}"), "not an open file: Checkpoint.from_json(f.read())"),
        ({"id": "x"}, "Checkpoint.from_document(obj)"),
        (None, "takes JSON text (str) or bytes, got NoneType"),
        (42, "got int"),
        (["{}"], "got list"),
    ],
    ids=repr,
)
def test_from_json_with_the_wrong_type_says_what_to_pass(data: Any, words: str) -> None:
    with pytest.raises(InvalidCheckpointError) as info:
        Checkpoint.from_json(data, source="arg")
    assert words in str(info.value)
    assert str(info.value).startswith("arg: ") and "\n" not in str(info.value)


def test_from_json_takes_bytearray_and_memoryview_as_bytes(fixture_dir: Path) -> None:
    raw = next(iter(sorted(fixture_dir.glob("*.json")))).read_bytes()
    assert Checkpoint.from_json(bytearray(raw)).to_json().encode() == raw
    assert Checkpoint.from_json(memoryview(raw)).to_json().encode() == raw


@pytest.mark.parametrize("document", [None, "{}", ["id"], 3], ids=repr)
def test_from_document_refuses_what_is_not_a_dict(document: Any) -> None:
    with pytest.raises(InvalidCheckpointError, match="takes a dict"):
        Checkpoint.from_document(document)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, 9999),
    st.integers(1, 13),
    st.integers(1, 31),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 60),
    st.none() | st.text("0123456789", min_size=1, max_size=9),
    st.sampled_from(["Z", "+00:00", "-00:00", "+08:00", "-05:30", "+23:59", "+24:00", "-12:60"]),
)
def test_the_fast_path_for_echo_spellings_agrees_with_the_full_chrono_parser(
    year: int, month: int, day: int, hour: int, minute: int, second: int, frac: str | None, zone: str
) -> None:
    fraction = "." + frac if frac else ""
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"
    try:
        full: Timestamp | str = Timestamp(*model._parse_chrono(text)[:2])
    except ValueError:
        full = "refused"
    try:
        parsed = Timestamp.parse(text)
    except ValueError:
        assert full == "refused", text
        return
    assert not isinstance(full, str), text
    assert (parsed.unix_nanos, parsed.offset_minutes) == (full.unix_nanos, full.offset_minutes), text
    assert parsed.isoformat() == text
