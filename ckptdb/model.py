"""The checkpoint model of echo_orchestration 0.1.1 and its exact JSON file codec.

`Checkpoint.from_json` / `Checkpoint.to_json` read and write the echo file format byte for byte
(see FILE_FORMAT.md): nanosecond timestamps, unsigned 64-bit step counts, exact floats, any
Unicode, and unknown top-level fields of newer echo versions kept in `extra`.
"""

from __future__ import annotations

import calendar
import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeAlias

from ckptdb.echo_json import DEPTH_MESSAGE, MAX_DEPTH, check_json_value, loads_strict, write_pretty_value
from ckptdb.errors import InvalidCheckpointError

JsonValue: TypeAlias = Any
"""Any value `json.loads` can return: dict, list, str, int, float, bool or None."""

U64_MAX = 2**64 - 1
_NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The instants a four-digit RFC 3339 year can write: 0001-01-01T00:00:00 .. 9999-12-31T23:59:59.999999999.
MIN_NANOS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1) * 1000
_LAST_MICRO = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
MAX_NANOS = (_LAST_MICRO - _EPOCH) // timedelta(microseconds=1) * 1000 + 999


class InterruptType(StrEnum):
    """Why the graph paused; the values are serde's `rename_all = "lowercase"` spellings."""

    BEFORE_NODE = "beforenode"
    AFTER_NODE = "afternode"
    TOOL_APPROVAL = "toolapproval"
    USER_REQUEST = "userrequest"


_INTERRUPT_VALUES = {t.value: t for t in InterruptType}
_INTERRUPT_HELP = ", ".join(_INTERRUPT_VALUES)


def parse_interrupt_type(value: object, *, source: str | None = None) -> InterruptType:
    """The enum for an exact lowercase spelling; anything else is an InvalidCheckpointError."""
    if isinstance(value, InterruptType):
        return value
    found = _INTERRUPT_VALUES.get(value) if isinstance(value, str) else None
    if found is None:
        raise InvalidCheckpointError(
            f"{value!r} is not one of {_INTERRUPT_HELP} (lowercase, no separator)",
            field="interrupt_type",
            source=source,
        )
    return found


_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})\Z",
    re.ASCII,  # \d would also match non-ASCII digits such as fullwidth ２, which chrono refuses
)


_WALL_EPOCH = datetime(1970, 1, 1)  # naive: its isoformat() has no offset to cut off


def _ymd_hms(seconds: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` for whole seconds since 1970 (isoformat pads the year to 4 digits, which
    strftime's %Y does not do for years < 1000 on glibc; its speed matters on every save)."""
    return (_WALL_EPOCH + timedelta(seconds=seconds)).isoformat()


def _auto_digits(nanos: int) -> int:
    """How many fraction digits chrono's RFC 3339 writer (SecondsFormat::AutoSi) uses."""
    if nanos == 0:
        return 0
    if nanos % 1_000_000 == 0:
        return 3
    if nanos % 1000 == 0:
        return 6
    return 9


@dataclass(frozen=True, slots=True)
class Timestamp:
    """An instant with nanosecond precision, as chrono keeps it (`datetime` stops at microseconds).

    `offset_minutes` is None for a `Z` suffix, else the written offset (newer echo versions write
    `+08:00`); `fraction_digits` is None when the text used chrono's own choice of 0/3/6/9 digits.
    Both only matter for writing the same text back. Ordering compares instants only.
    """

    unix_nanos: int
    offset_minutes: int | None = None
    fraction_digits: int | None = None

    @classmethod
    def now(cls) -> Timestamp:
        return cls(time.time_ns())

    @classmethod
    def from_datetime(cls, value: datetime) -> Timestamp:
        """Refuses naive datetimes: a checkpoint time without a zone is a bug waiting to happen."""
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidCheckpointError(
                "naive datetime (no time zone); pass an aware one, e.g. datetime.now(timezone.utc)",
                field="created_at",
            )
        delta = value - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return cls(micros * 1000)

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Parse RFC 3339 as chrono writes it (`Z` or `±HH:MM`, 0-9 fraction digits)."""
        match = _TS_RE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not an RFC 3339 time like 2026-11-03T09:50:52.350Z")
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        frac, zone = match.group(7), match.group(8)
        try:
            datetime(year, month, day, hour, minute, second)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a valid time: {exc}") from None
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        offset: int | None = None
        if zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            offset = sign * (int(zone[1:3]) * 60 + int(zone[4:6]))
            seconds -= offset * 60
        nanos = int(frac.ljust(9, "0")) if frac else 0
        digits = len(frac) if frac else 0
        return cls(
            seconds * _NS + nanos,
            offset,
            None if digits == _auto_digits(nanos) else digits,
        )

    @classmethod
    def from_utc_text(cls, text: str) -> Timestamp:
        """Inverse of `utc_text` (the database column form)."""
        return cls.parse(text).with_format()

    def with_format(self, offset_minutes: int | None = None, fraction_digits: int | None = None) -> Timestamp:
        return Timestamp(self.unix_nanos, offset_minutes, fraction_digits)

    def _parts(self, offset_minutes: int) -> tuple[str, int]:
        """The wall-clock `YYYY-MM-DDTHH:MM:SS` at this offset, and the nanoseconds past it."""
        seconds, nanos = divmod(self.unix_nanos + offset_minutes * 60 * _NS, _NS)
        return _ymd_hms(seconds), nanos

    def isoformat(self) -> str:
        """The text chrono would write (or the text originally read): `2026-11-03T09:50:52.350Z`."""
        offset = self.offset_minutes or 0
        wall, nanos = self._parts(offset)
        digits = self.fraction_digits if self.fraction_digits is not None else _auto_digits(nanos)
        frac = "." + f"{nanos:09d}"[:digits] if digits else ""
        if self.offset_minutes is None:
            zone = "Z"
        else:
            sign = "-" if offset < 0 else "+"
            zone = f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
        return f"{wall}{frac}{zone}"

    def utc_text(self) -> str:
        """Fixed-width UTC text with 9 digits: readable in SQL, and sorts exactly like the instant."""
        wall, nanos = self._parts(0)
        return f"{wall}.{nanos:09d}Z"

    @property
    def datetime(self) -> datetime:
        """An aware UTC datetime, truncated to microseconds (datetime can hold no more)."""
        return _EPOCH + timedelta(microseconds=self.unix_nanos // 1000)

    def __str__(self) -> str:
        return self.isoformat()

    def __lt__(self, other: Timestamp) -> bool:
        return self.unix_nanos < other.unix_nanos

    def __le__(self, other: Timestamp) -> bool:
        return self.unix_nanos <= other.unix_nanos

    def __gt__(self, other: Timestamp) -> bool:
        return self.unix_nanos > other.unix_nanos

    def __ge__(self, other: Timestamp) -> bool:
        return self.unix_nanos >= other.unix_nanos


def to_timestamp(value: Timestamp | datetime | str, *, field_name: str = "created_at") -> Timestamp:
    """Accept a Timestamp, an aware datetime, or RFC 3339 text."""
    if isinstance(value, Timestamp):
        return value
    if isinstance(value, datetime):
        return Timestamp.from_datetime(value)
    if isinstance(value, str):
        try:
            return Timestamp.parse(value)
        except ValueError as exc:
            raise InvalidCheckpointError(str(exc), field=field_name) from None
    raise InvalidCheckpointError(f"{type(value).__name__} is not a time", field=field_name)


FIELD_ORDER = (
    "id",
    "graph_name",
    "current_node",
    "state_snapshot",
    "path",
    "step_count",
    "created_at",
    "pending_action",
    "interrupt_type",
)
_KNOWN = frozenset(FIELD_ORDER)


@dataclass(slots=True)
class CheckpointInfo:
    """The summary the Rust `list()` returns: everything but the state and the pending action."""

    id: str
    graph_name: str
    current_node: str
    step_count: int
    created_at: Timestamp
    interrupt_type: InterruptType


@dataclass(slots=True)
class Checkpoint:
    """One paused graph: the nine fields of the Rust struct, plus `extra`.

    `extra` holds top-level fields this version does not know (newer echo versions add
    `parent_checkpoint_id`, `tags`, ...): they are written back, after the nine, never dropped.
    """

    id: str
    graph_name: str
    current_node: str
    state_snapshot: JsonValue
    path: list[str]
    step_count: int
    created_at: Timestamp
    pending_action: JsonValue
    interrupt_type: InterruptType
    extra: dict[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.created_at, Timestamp):
            self.created_at = to_timestamp(self.created_at)
        if not isinstance(self.interrupt_type, InterruptType):
            self.interrupt_type = parse_interrupt_type(self.interrupt_type)

    @classmethod
    def new(
        cls,
        graph_name: str,
        current_node: str,
        state_snapshot: JsonValue,
        path: Sequence[str],
        step_count: int,
        interrupt_type: InterruptType | str,
        *,
        pending_action: JsonValue = None,
    ) -> Checkpoint:
        """A fresh checkpoint: a random uuid4 id and the current UTC time, as the Rust `new`."""
        checkpoint = cls(
            id=str(uuid.uuid4()),
            graph_name=graph_name,
            current_node=current_node,
            state_snapshot=state_snapshot,
            path=list(path),
            step_count=step_count,
            created_at=Timestamp.now(),
            pending_action=pending_action,
            interrupt_type=parse_interrupt_type(interrupt_type),
        )
        checkpoint.validate()
        return checkpoint

    def validate(self) -> None:
        """Check the typed fields (not the state: serializing it checks that)."""
        check_fields(self)

    def info(self) -> CheckpointInfo:
        return CheckpointInfo(
            self.id,
            self.graph_name,
            self.current_node,
            self.step_count,
            self.created_at,
            self.interrupt_type,
        )

    @classmethod
    def from_json(cls, data: str | bytes, *, source: str | None = None) -> Checkpoint:
        """Read one echo checkpoint file's content; `source` (a path) goes into error messages."""
        return parse_document(data, source=source)

    @classmethod
    def from_document(cls, document: dict[str, Any], *, source: str | None = None) -> Checkpoint:
        """Build from an already-parsed JSON object (the file's top level)."""
        return _from_document(document, source)

    def to_document(self) -> dict[str, JsonValue]:
        """The JSON object of the file, top-level keys in echo's order, then `extra`."""
        document: dict[str, JsonValue] = {
            "id": self.id,
            "graph_name": self.graph_name,
            "current_node": self.current_node,
            "state_snapshot": self.state_snapshot,
            "path": self.path,
            "step_count": self.step_count,
            "created_at": self.created_at.isoformat(),
            "pending_action": self.pending_action,
            "interrupt_type": self.interrupt_type.value,
        }
        for key, value in self.extra.items():
            if key not in _KNOWN:
                document[key] = value
        return document

    def to_json(self) -> str:
        """The file content `serde_json::to_string_pretty` writes: byte-exact echo format."""
        self.validate()
        out: list[str] = ["{\n"]
        first = True
        for key, value in self.to_document().items():
            if not first:
                out.append(",\n")
            first = False
            out.append("  ")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(": ")
            write_pretty_value(value, "  ", out)
        out.append("\n}")
        text = "".join(out)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidCheckpointError(
                f"contains a lone surrogate ({exc.object[exc.start : exc.end]!r}) that UTF-8 cannot hold",
                source=self.id,
            ) from None
        return text


def check_fields(cp: Checkpoint, source: str | None = None) -> None:
    """Type and range checks for the fields that map to typed columns."""
    for name in ("id", "graph_name", "current_node"):
        if not isinstance(getattr(cp, name), str):
            raise InvalidCheckpointError(
                f"expected a string, got {_json_type(getattr(cp, name))}", field=name, source=source
            )
    if not isinstance(cp.path, list) or not all(isinstance(p, str) for p in cp.path):
        raise InvalidCheckpointError("expected a list of strings", field="path", source=source)
    step = cp.step_count
    if type(step) is not int or not 0 <= step <= U64_MAX:
        raise InvalidCheckpointError(
            f"expected an unsigned integer up to 2^64-1, got {step!r}", field="step_count", source=source
        )
    if not isinstance(cp.created_at, Timestamp):
        raise InvalidCheckpointError("expected a Timestamp", field="created_at", source=source)
    created = cp.created_at
    if not MIN_NANOS <= created.unix_nanos + (created.offset_minutes or 0) * 60 * _NS <= MAX_NANOS:
        raise InvalidCheckpointError(
            f"{created.unix_nanos} ns since 1970 is outside the years 0001-9999 an RFC 3339 time can write",
            field="created_at",
            source=source,
        )
    if not isinstance(cp.interrupt_type, InterruptType):
        parse_interrupt_type(cp.interrupt_type, source=source)
    if not isinstance(cp.extra, dict) or not all(isinstance(key, str) for key in cp.extra):
        raise InvalidCheckpointError(
            "expected a dict of extra top-level fields with string keys", field="extra", source=source
        )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_document(data: str | bytes, *, source: str | None = None) -> Checkpoint:
    """Decode, parse and validate one echo file; every failure is one InvalidCheckpointError."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidCheckpointError(
                f"not UTF-8 (invalid byte 0x{bytes(data)[exc.start]:02x} at offset {exc.start})",
                source=source,
            ) from None
    else:
        text = data
    if not text.strip():
        raise InvalidCheckpointError(
            "empty file (a save cut short before its data reached disk?)", source=source
        )
    try:
        document = loads_strict(text)
    except RecursionError:
        raise InvalidCheckpointError(DEPTH_MESSAGE, source=source) from None
    except json.JSONDecodeError as exc:
        # An unterminated string always runs to the end of the text: a cut mid-string is truncation too.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            line = text.count("\n") + 1
            column = len(text) - text.rfind("\n")
            reason = f"truncated JSON (ends at line {line} column {column} mid-document)"
        else:
            reason = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InvalidCheckpointError(reason, source=source) from None
    except ValueError as exc:
        raise InvalidCheckpointError(f"not valid JSON: {exc}", source=source) from None
    if not isinstance(document, dict):
        raise InvalidCheckpointError(
            f"top level is {_json_type(document)}, not a checkpoint object", source=source
        )
    try:
        check_json_value(document, MAX_DEPTH + 1)  # the state sits one level below the top
    except InvalidCheckpointError as exc:
        raise InvalidCheckpointError(exc.reason, source=source) from None
    # A lone surrogate (a \ud800 escape, or the raw code point in a str argument): serde_json refuses
    # it, and nothing could write it back, since UTF-8 cannot hold it.
    if (isinstance(data, str) and not _utf8_ok(text)) or (
        _SURROGATE_ESCAPE.search(text) is not None and _holds_lone_surrogate(document)
    ):
        raise InvalidCheckpointError(
            "contains a lone surrogate (\\ud800-\\udfff without its pair) that UTF-8 cannot hold",
            source=source,
        )
    return _from_document(document, source)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _utf8_ok(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether any string or key anywhere in a parsed JSON value holds a lone surrogate (iterative:
    the value can be nested as deep as the parser allows)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _utf8_ok(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _from_document(document: dict[str, Any], source: str | None) -> Checkpoint:
    for name in FIELD_ORDER:
        if name not in document and name != "pending_action":
            raise InvalidCheckpointError("missing", field=name, source=source)
    created_raw = document["created_at"]
    if not isinstance(created_raw, str):
        raise InvalidCheckpointError(
            f"expected an RFC 3339 string, got {_json_type(created_raw)}", field="created_at", source=source
        )
    try:
        created_at = Timestamp.parse(created_raw)
    except ValueError as exc:
        raise InvalidCheckpointError(str(exc), field="created_at", source=source) from None
    checkpoint = Checkpoint.__new__(Checkpoint)
    checkpoint.id = document["id"]
    checkpoint.graph_name = document["graph_name"]
    checkpoint.current_node = document["current_node"]
    checkpoint.state_snapshot = document["state_snapshot"]
    checkpoint.path = document["path"]
    checkpoint.step_count = document["step_count"]
    checkpoint.created_at = created_at
    checkpoint.pending_action = document.get("pending_action")
    checkpoint.interrupt_type = parse_interrupt_type(document["interrupt_type"], source=source)
    checkpoint.extra = {k: v for k, v in document.items() if k not in _KNOWN} if len(document) > 8 else {}
    check_fields(checkpoint, source)
    return checkpoint
