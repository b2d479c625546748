"""The checkpoint model of echo_orchestration 0.1.1 and its exact JSON file codec.

`Checkpoint.from_json` / `Checkpoint.to_json` read and write the echo file format byte for byte
(see FILE_FORMAT.md): nanosecond timestamps, unsigned 64-bit step counts, exact floats, any
Unicode, and unknown top-level fields of newer echo versions kept in `extra`. A file is valid
exactly when echo's `serde_json::from_str::<Checkpoint>` loads it: times as chrono 0.4.23 parses
them (a port of its parser, keeping each spelling), numbers, repeated fields and nesting as
serde_json 1.0.87 reads them (tests/test_rust_agreement.py runs the real crates on one corpus).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import PurePath
from typing import Any, TypeAlias

from ckptdb.echo_json import (
    DEPTH_MESSAGE,
    MAX_DEPTH,
    check_json_value,
    check_value,
    loads_document,
    write_pretty_value,
)
from ckptdb.errors import InvalidCheckpointError

JsonValue: TypeAlias = Any
"""Any value `json.loads` can return: dict, list, str, int, float, bool or None."""

U64_MAX = 2**64 - 1
_NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The instants a four-digit RFC 3339 year can write: 0001-01-01T00:00:00 .. 9999-12-31T23:59:59.999999999:
# what the SQL stores' fixed-width `created_at` column holds (echo itself reads a wider range,
# CHRONO_MIN_NANOS..CHRONO_MAX_NANOS below, which the codec and the file and memory stores take).
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


# chrono 0.4.23's range for NaiveDate years (internals::MIN_YEAR / MAX_YEAR: i32 >> 13).
CHRONO_MIN_YEAR = -262_144
CHRONO_MAX_YEAR = 262_143
_DAY_NS = 86_400 * _NS

# Rust's char::is_whitespace (the Unicode White_Space property), which chrono's parser skips
# (`trim_left`) before every number, around separators and before and after the offset. Python's
# str.isspace() differs: it also takes U+001C..U+001F, which chrono refuses.
_RUST_WS = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date, for any year (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


# The instants chrono's DateTime can hold: -262144-01-01T00:00:00 .. +262143-12-31T23:59:59.999999999.
CHRONO_MIN_NANOS = _days_from_civil(CHRONO_MIN_YEAR, 1, 1) * _DAY_NS
CHRONO_MAX_NANOS = _days_from_civil(CHRONO_MAX_YEAR + 1, 1, 1) * _DAY_NS - 1


class _Refused(ValueError):
    """chrono's parser refused the text: not its syntax."""


class _OutOfRange(_Refused):
    """chrono's syntax, but no such time (the reason goes into the one-line message)."""


class _ChronoText:
    """A port of chrono 0.4.23's `impl FromStr for DateTime<FixedOffset>` (format/parse.rs), which
    `DateTime<Utc>`'s Deserialize uses: DATE_ITEMS, then a `T` or a space, then TIME_ITEMS, with
    scan::number, scan::nanosecond and scan::timezone_offset_zulu(colon_or_space) as written there.
    Much looser than RFC 3339: whitespace before numbers and around the offset, 1-digit fields, a
    signed year of any length, a lowercase `z` or `UTC`, `+0800`, any number of fraction digits
    (past the ninth ignored), and second 60 (a leap second)."""

    __slots__ = ("i", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def trim(self) -> None:
        text, i = self.text, self.i
        while i < len(text) and text[i] in _RUST_WS:
            i += 1
        self.i = i

    def number(self, most: int) -> int:
        """scan::number(s, 1, most): ASCII digits only, at least one, at most `most`."""
        text, i = self.text, self.i
        end = i
        while end < len(text) and end - i < most and "0" <= text[end] <= "9":
            end += 1
        if end == i:
            raise _Refused("a number is missing")
        value = int(text[i:end])
        if value > 2**63 - 1:
            raise _OutOfRange("a number is out of range")
        self.i = end
        return value

    def numeric(self, most: int) -> int:
        self.trim()
        return self.number(most)

    def literal(self, char: str) -> None:
        if not self.text.startswith(char, self.i):
            raise _Refused(f"expected {char!r}")
        self.i += 1

    def year(self) -> int:
        self.trim()
        sign = self.text[self.i : self.i + 1]
        if sign in ("-", "+"):
            self.i += 1
            value = self.number(2**62)
            return -value if sign == "-" else value
        return self.number(4)

    def fraction(self) -> tuple[int, int]:
        """`.` then scan::nanosecond: 1-9 digits count, more are skipped. (nanos, digits written)."""
        self.i += 1
        start = self.i
        value = self.number(9)
        digits = self.i - start
        text, i = self.text, self.i
        while i < len(text) and "0" <= text[i] <= "9":
            i += 1
        self.i = i
        return value * 10 ** (9 - digits), i - start

    def offset(self) -> int | None:
        """scan::timezone_offset_zulu with colon_or_space, in seconds east of UTC; None for the
        forms that name UTC itself (`Z`, `z`, `UTC` in any case)."""
        text, i = self.text, self.i
        head = text[i : i + 1]
        if head in ("z", "Z"):
            self.i += 1
            return None
        if head in ("u", "U"):
            if text[i + 1 : i + 3].lower() != "tc":
                raise _Refused("expected Z, UTC or an offset like +08:00")
            self.i += 3
            return None
        if head not in ("+", "-"):
            raise _Refused("expected Z, UTC or an offset like +08:00")
        hours = text[i + 1 : i + 3]
        if len(hours) < 2 or not ("0" <= hours[0] <= "9" and "0" <= hours[1] <= "9"):
            raise _Refused("the offset needs two hour digits")
        i += 3
        while i < len(text) and (text[i] == ":" or text[i] in _RUST_WS):
            i += 1
        minutes = text[i : i + 2]
        if len(minutes) < 2 or not ("0" <= minutes[0] <= "5" and "0" <= minutes[1] <= "9"):
            raise _OutOfRange("the offset needs two minute digits, 00-59")
        self.i = i + 2
        seconds = int(hours) * 3600 + int(minutes) * 60
        return -seconds if head == "-" else seconds


def _parse_chrono(text: str) -> tuple[int, int | None, int]:
    """(unix nanoseconds, offset in minutes or None for UTC named as such, fraction digits as
    written) for exactly the text
    chrono's `DateTime<Utc>` deserializer accepts; _Refused otherwise. A leap second (second 60)
    counts as the second after 59, as chrono's timestamp_nanos does (its nanoseconds >= 1e9)."""
    scan = _ChronoText(text)
    year = scan.year()
    scan.trim()
    scan.literal("-")
    month = scan.numeric(2)
    scan.trim()
    scan.literal("-")
    day = scan.numeric(2)
    if scan.i == len(text):
        raise _Refused("the time of day is missing")
    if text[scan.i] not in ("T", " "):
        raise _Refused("expected 'T' or a space between the date and the time")
    scan.i += 1
    hour = scan.numeric(2)
    scan.trim()
    scan.literal(":")
    minute = scan.numeric(2)
    scan.trim()
    scan.literal(":")
    second = scan.numeric(2)
    nanos, digits = scan.fraction() if text.startswith(".", scan.i) else (0, 0)
    scan.trim()
    zone = scan.offset()
    offset = zone or 0
    scan.trim()
    if scan.i != len(text):
        raise _Refused(f"unexpected {text[scan.i : scan.i + 10]!r} after the time")
    if not CHRONO_MIN_YEAR <= year <= CHRONO_MAX_YEAR:
        raise _OutOfRange(f"year {year} is outside chrono's range {CHRONO_MIN_YEAR}..{CHRONO_MAX_YEAR}")
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise _OutOfRange("no such date")
    if hour > 23 or minute > 59 or second > 60:
        raise _OutOfRange("no such time of day")
    if not -86_400 < offset < 86_400:
        raise _OutOfRange("the offset must be less than 24 hours")
    local = (_days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second) * _NS + nanos
    utc = local - offset * _NS
    last = CHRONO_MAX_NANOS + (_NS if second == 60 else 0)  # a leap second's nanoseconds run past 1e9
    if not (CHRONO_MIN_NANOS <= local <= last and CHRONO_MIN_NANOS <= utc <= last):
        raise _OutOfRange("outside the range of times chrono can hold")
    return utc, None if zone is None else offset // 60, digits


def _ymd_hms(seconds: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` for whole seconds since 1970, the year as chrono's NaiveDate Debug
    writes it: four digits for 0..=9999, else a sign and at least four digits (`+10000`, `-0001`)."""
    if _MIN_FAST <= seconds <= _MAX_FAST:  # isoformat is the fast path; its speed matters on every save
        return (_WALL_EPOCH + timedelta(seconds=seconds)).isoformat()
    days, rest = divmod(seconds, 86_400)
    year, month, day = _civil_from_days(days)
    year_text = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return f"{year_text}-{month:02d}-{day:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"


_WALL_EPOCH = datetime(1970, 1, 1)  # naive: its isoformat() has no offset to cut off
_MIN_FAST = _days_from_civil(1, 1, 1) * 86_400
_MAX_FAST = _days_from_civil(10_000, 1, 1) * 86_400 - 1


def _auto_digits(nanos: int) -> int:
    """How many fraction digits chrono's RFC 3339 writer (SecondsFormat::AutoSi) uses."""
    if nanos == 0:
        return 0
    if nanos % 1_000_000 == 0:
        return 3
    if nanos % 1000 == 0:
        return 6
    return 9


def _render(unix_nanos: int, offset_minutes: int | None, fraction_digits: int | None) -> str:
    offset = offset_minutes or 0
    seconds, nanos = divmod(unix_nanos + offset * 60 * _NS, _NS)
    digits = fraction_digits if fraction_digits is not None else _auto_digits(nanos)
    frac = "." + f"{nanos:09d}"[:digits] if digits else ""
    if offset_minutes is None:
        zone = "Z"
    else:
        sign = "-" if offset < 0 else "+"
        zone = f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return f"{_ymd_hms(seconds)}{frac}{zone}"


@dataclass(frozen=True, slots=True)
class Timestamp:
    """An instant with nanosecond precision, as chrono keeps it (`datetime` stops at microseconds).

    `offset_minutes` is None for a `Z` suffix, else the written offset (newer echo versions write
    `+08:00`); `fraction_digits` is None when the text used chrono's own choice of 0/3/6/9 digits.
    `text` is the exact text read when no combination of those writes it back (`z`, a space for
    `T`, `-00:00`, more than 9 fraction digits, a leap second `:60`, ...); `fraction_digits` is
    then never None, so that a store that keeps non-default spellings keeps this one too. All
    three only matter for writing the same text back. Ordering compares instants only.
    """

    unix_nanos: int
    offset_minutes: int | None = None
    fraction_digits: int | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.text is not None and self.fraction_digits is None:  # a Timestamp(..., text=...) made by hand
            try:
                digits = Timestamp.parse(self.text).fraction_digits
            except ValueError:
                return  # check_fields refuses it, naming the field
            if digits is not None:
                object.__setattr__(self, "fraction_digits", digits)

    @classmethod
    def now(cls) -> Timestamp:
        return cls(time.time_ns())

    @classmethod
    def from_datetime(cls, value: datetime) -> Timestamp:
        """Refuses naive datetimes: a checkpoint time without a zone is a bug waiting to happen."""
        if not isinstance(value, datetime):
            raise InvalidCheckpointError(
                f"expected a datetime, got {type(value).__name__}", field="created_at"
            )
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
        """Parse a time exactly as echo (chrono's `DateTime<Utc>` deserializer) does, keeping the
        spelling: `isoformat()` gives `text` back. ValueError when chrono would refuse it."""
        if not isinstance(text, str):
            raise ValueError(f"expected RFC 3339 text, got {type(text).__name__}")
        # echo's own spelling first: about 3 us, as before the chrono port, where the full parser
        # takes 8-9 us (measured 3 times each; import parses one time per file)
        fast = _ECHO_TIME.match(text)
        if fast is not None:
            found = _echo_time(fast)
            if found is not None:
                return cls(*found)
        try:
            utc, offset, digits = _parse_chrono(text)
        except _OutOfRange as exc:
            raise ValueError(f"{text!r} is not a valid time: {exc}") from None
        except _Refused:
            raise ValueError(f"{text!r} is not an RFC 3339 time like 2026-11-03T09:50:52.350Z") from None
        auto = digits == _auto_digits(utc % _NS)
        plain = cls(utc, offset, None if auto else digits)
        if plain.isoformat() == text:
            return plain
        return cls(utc, offset, digits, text)

    @classmethod
    def from_utc_text(cls, text: str) -> Timestamp:
        """Inverse of `utc_text` (the database column form).

        Every load reads one, so the form `utc_text` writes takes a path of its own: one regex
        match and the stdlib's C date parser, 1.9 us against 3.5 us through `parse` (timeit,
        shared 2-core machine). Anything else (a leap second, year 0, a hand edit) is `parse`'s."""
        if type(text) is str and _UTC_TEXT.match(text) is not None:
            try:
                wall = datetime.fromisoformat(text[:19]) - _WALL_EPOCH
            except ValueError:
                pass
            else:
                return cls((wall.days * 86_400 + wall.seconds) * _NS + int(text[20:29]))
        return cls.parse(text).with_format()

    def with_format(self, offset_minutes: int | None = None, fraction_digits: int | None = None) -> Timestamp:
        return Timestamp(self.unix_nanos, offset_minutes, fraction_digits)

    def _parts(self, offset_minutes: int) -> tuple[str, int]:
        """The wall-clock `YYYY-MM-DDTHH:MM:SS` at this offset, and the nanoseconds past it."""
        seconds, nanos = divmod(self.unix_nanos + offset_minutes * 60 * _NS, _NS)
        return _ymd_hms(seconds), nanos

    def isoformat(self) -> str:
        """The text as read (or as chrono would write it): `2026-11-03T09:50:52.350Z`."""
        if self.text is not None:
            return self.text
        return _render(self.unix_nanos, self.offset_minutes, self.fraction_digits)

    def rust_text(self) -> str:
        """What echo writes for this time after reading it: chrono's `DateTime<Utc>` always
        writes UTC with `Z` and its own 0/3/6/9 fraction digits (`-00:00`, `+08:00`, `z`, ...
        all come back that way from a Rust save), a leap second as `:60`."""
        if self.text is not None and _is_leap(self.text):
            wall, nanos = Timestamp(self.unix_nanos - _NS)._parts(0)
            digits = _auto_digits(nanos)
            frac = "." + f"{nanos:09d}"[:digits] if digits else ""
            return f"{wall[:-2]}60{frac}Z"
        return _render(self.unix_nanos, None, None)

    def utc_text(self) -> str:
        """Fixed-width UTC text with 9 digits: readable in SQL, and sorts exactly like the instant."""
        wall, nanos = self._parts(0)
        return f"{wall}.{nanos:09d}Z"

    @property
    def datetime(self) -> datetime:
        """An aware UTC datetime, truncated to microseconds (datetime can hold no more)."""
        try:
            return _EPOCH + timedelta(microseconds=self.unix_nanos // 1000)
        except OverflowError:
            raise InvalidCheckpointError(
                f"{self.isoformat()} is outside the years 1-9999 a Python datetime can hold",
                field="created_at",
            ) from None

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


# The spellings echo writes (chrono's RFC 3339 with 0-9 fraction digits, `Z` or `+08:00`): a
# subset of what _parse_chrono reads, which a regular expression matches much faster.
_UTC_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z\Z", re.ASCII)
"""`utc_text`'s form: ASCII digits only (int() would also take `_`, spaces and other scripts' digits)."""
_ECHO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))\Z",
    re.ASCII,  # \d would also match non-ASCII digits such as fullwidth ２, which chrono refuses
)


def _echo_time(match: re.Match[str]) -> tuple[int, int | None, int | None] | None:
    """Timestamp fields for a match of _ECHO_TIME whose text the renderer writes back as is, or
    None to leave the text to the full parser (a leap second, `-00:00`, an invalid date...)."""
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    y, mo, d, h, mi, sec = int(year), int(month), int(day), int(hour), int(minute), int(second)
    if not (1 <= mo <= 12 and 1 <= d <= _days_in_month(y, mo) and h <= 23 and mi <= 59 and sec <= 59):
        return None
    offset: int | None = None
    if zulu is None:
        offset = int(off_h) * 60 + int(off_m)
        if off_h > "23" or off_m > "59" or (sign == "-" and offset == 0):
            return None
        offset = -offset if sign == "-" else offset
    nanos = int(frac.ljust(9, "0")) if frac else 0
    digits = len(frac) if frac else 0
    utc = (_days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - (offset or 0) * 60) * _NS + nanos
    return utc, offset, None if digits == _auto_digits(nanos) else digits


def _is_leap(text: str) -> bool:
    try:
        scan = _ChronoText(text)
        scan.year()
        for _ in range(2):
            scan.trim()
            scan.literal("-")
            scan.numeric(2)
        scan.i += 1
        scan.numeric(2)
        scan.trim()
        scan.literal(":")
        scan.numeric(2)
        scan.trim()
        scan.literal(":")
        return scan.numeric(2) == 60
    except _Refused:
        return False


def to_timestamp(value: Timestamp | datetime | str, *, field_name: str = "created_at") -> Timestamp:
    """Accept a Timestamp, an aware datetime, or time text as echo reads it (see Timestamp.parse)."""
    if isinstance(value, Timestamp):
        return value
    if isinstance(value, datetime):
        return Timestamp.from_datetime(value)
    if isinstance(value, str):
        try:
            return Timestamp.parse(value)
        except ValueError as exc:
            raise InvalidCheckpointError(str(exc), field=field_name) from None
    raise InvalidCheckpointError(
        f"expected a Timestamp, an aware datetime or RFC 3339 text, got {type(value).__name__}",
        field=field_name,
    )


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
        """Check every field where it enters: a wrong type is refused here, with the field's name,
        not later inside a store or as data echo cannot read. (A field assigned after construction
        is checked when it is written: `to_json`, `save`.)"""
        if not isinstance(self.created_at, Timestamp):
            self.created_at = to_timestamp(self.created_at)
        if not isinstance(self.interrupt_type, InterruptType):
            self.interrupt_type = parse_interrupt_type(self.interrupt_type)
        check_fields(self)
        for name in ("state_snapshot", "pending_action"):
            _check_json_field(getattr(self, name), name)
        for key, value in self.extra.items():
            _check_json_field(value, key)

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
        """A fresh checkpoint: a random uuid4 id and the current UTC time, as the Rust `new`.

        `path` is a list (or tuple) of node names; a bare string is refused rather than split
        into letters. Every argument is checked here (see `__post_init__`)."""
        if isinstance(path, (str, bytes, bytearray)) or not isinstance(path, (list, tuple)):
            raise InvalidCheckpointError(
                f"expected a list of node names, got {_json_type(path)}"
                + (f" (did you mean [{path!r}]?)" if isinstance(path, str) else ""),
                field="path",
            )
        return cls(
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
        """Read one echo checkpoint file's content (str or bytes); `source` (a path) goes into error
        messages. It takes content, never a path, so that a path-like string cannot be mistaken
        for JSON or the other way round: `Checkpoint.from_json(path.read_bytes(), source=str(path))`.
        Anything else raises InvalidCheckpointError saying so."""
        return parse_document(data, source=source)

    @classmethod
    def from_document(cls, document: dict[str, Any], *, source: str | None = None) -> Checkpoint:
        """Build from an already-parsed JSON object (the file's top level)."""
        if not isinstance(document, dict):
            raise InvalidCheckpointError(
                f"Checkpoint.from_document takes a dict (a parsed file), got {type(document).__name__}",
                source=source,
            )
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
        text = self._pretty()
        if not text.isascii():
            self._utf8(text)  # a lone surrogate is refused; the bytes are not kept
        return text

    def to_json_bytes(self) -> bytes:
        """`to_json` as the file's UTF-8 bytes. For writers: the text's pieces are gone before it
        is encoded, and the encoding is the surrogate check, so a huge state is held as the
        state, its text and its bytes at most (`to_json().encode()` held the pieces, the text, a
        check's copy and then the bytes: 4x the file beside the state)."""
        return self._utf8(self._pretty())

    def _pretty(self) -> str:
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
        return "".join(out)

    def _utf8(self, text: str) -> bytes:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidCheckpointError(
                f"contains a lone surrogate ({exc.object[exc.start : exc.end]!r}) that UTF-8 cannot hold",
                source=self.id,
            ) from None


def _check_json_field(value: JsonValue, name: str) -> None:
    try:
        check_value(value)
    except InvalidCheckpointError as exc:
        raise InvalidCheckpointError(exc.reason, field=name) from None


def check_fields(cp: Checkpoint, source: str | None = None) -> None:
    """Type and range checks for the fields that map to typed columns."""
    for name in ("id", "graph_name", "current_node"):
        if not isinstance(getattr(cp, name), str):
            raise InvalidCheckpointError(
                f"expected a string, got {_json_type(getattr(cp, name))}", field=name, source=source
            )
    if not isinstance(cp.path, list) or not all(isinstance(p, str) for p in cp.path):
        raise InvalidCheckpointError(_path_problem(cp.path), field="path", source=source)
    step = cp.step_count
    if type(step) is not int or not 0 <= step <= U64_MAX:
        raise InvalidCheckpointError(
            f"expected an unsigned integer up to 2^64-1, got {step!r}", field="step_count", source=source
        )
    if not isinstance(cp.created_at, Timestamp):
        raise InvalidCheckpointError(
            f"expected a Timestamp, got {type(cp.created_at).__name__}", field="created_at", source=source
        )
    _check_timestamp(cp.created_at, source)
    if not isinstance(cp.interrupt_type, InterruptType):
        parse_interrupt_type(cp.interrupt_type, source=source)
    if not isinstance(cp.extra, dict) or not all(isinstance(key, str) for key in cp.extra):
        raise InvalidCheckpointError(
            "expected a dict of extra top-level fields with string keys", field="extra", source=source
        )


def _check_timestamp(created: Timestamp, source: str | None) -> None:
    """What echo can read back: an instant chrono can hold, written at its offset in chrono's range."""
    if type(created.unix_nanos) is not int:
        raise InvalidCheckpointError(
            f"expected integer nanoseconds, got {_json_type(created.unix_nanos)}",
            field="created_at",
            source=source,
        )
    if created.text is not None:
        try:
            again = Timestamp.parse(created.text)
        except ValueError as exc:
            raise InvalidCheckpointError(str(exc), field="created_at", source=source) from None
        if again.unix_nanos != created.unix_nanos:
            raise InvalidCheckpointError(
                f"text {created.text!r} is not the instant {created.unix_nanos} ns since 1970",
                field="created_at",
                source=source,
            )
        return
    offset, digits = created.offset_minutes, created.fraction_digits
    if offset is not None and (type(offset) is not int or not -1440 < offset < 1440):
        raise InvalidCheckpointError(
            f"offset {offset!r} is not a whole number of minutes under 24 hours",
            field="created_at",
            source=source,
        )
    if digits is not None and (type(digits) is not int or not 0 <= digits <= 9):
        raise InvalidCheckpointError(
            f"fraction_digits {digits!r} is not 0-9", field="created_at", source=source
        )
    wall = created.unix_nanos + (offset or 0) * 60 * _NS
    if not (
        CHRONO_MIN_NANOS <= created.unix_nanos <= CHRONO_MAX_NANOS
        and CHRONO_MIN_NANOS <= wall <= CHRONO_MAX_NANOS
    ):
        raise InvalidCheckpointError(
            f"{created.unix_nanos} ns since 1970 is outside the years {CHRONO_MIN_YEAR}..{CHRONO_MAX_YEAR} "
            "that echo (chrono) can hold",
            field="created_at",
            source=source,
        )


def _path_problem(path: object) -> str:
    if not isinstance(path, list):
        return f"expected a list of strings, got {_json_type(path)}"
    index, entry = next((i, p) for i, p in enumerate(path) if not isinstance(p, str))
    return f"expected a list of strings, entry {index} is {_json_type(entry)}"


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
    """Decode, parse and validate one echo file; every failure is one InvalidCheckpointError.

    A file is valid exactly when echo's `serde_json::from_str::<Checkpoint>` loads it
    (tests/test_rust_agreement.py runs both on the same corpus)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidCheckpointError(
                f"not UTF-8 (invalid byte 0x{bytes(data)[exc.start]:02x} at offset {exc.start})",
                source=source,
            ) from None
    elif isinstance(data, str):
        text = data
    else:
        raise InvalidCheckpointError(_from_json_hint(data), source=source)
    if not text.strip():
        raise InvalidCheckpointError(
            "empty file (a save cut short before its data reached disk?)", source=source
        )
    try:
        document, repeated = loads_document(text)
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
    # serde refuses a repeated struct field; repeated unknown ones it skips, as often as they come.
    for name in repeated:
        if name in _KNOWN:
            raise InvalidCheckpointError(
                "appears more than once (echo refuses a repeated field)", field=name, source=source
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


def _from_json_hint(data: object) -> str:
    """The one-line remedy for a wrong argument type to from_json (a path is the usual mistake)."""
    if isinstance(data, PurePath):
        return (
            f"Checkpoint.from_json takes the file's content, not a path: "
            f"Checkpoint.from_json(Path({str(data)!r}).read_bytes())"
        )
    if hasattr(data, "read"):
        return (
            "Checkpoint.from_json takes the file's content, not an open file: Checkpoint.from_json(f.read())"
        )
    if isinstance(data, dict):
        return "Checkpoint.from_json takes JSON text or bytes; for a dict use Checkpoint.from_document(obj)"
    return f"Checkpoint.from_json takes JSON text (str) or bytes, got {type(data).__name__}"


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


_SURROGATE = re.compile("[\ud800-\udfff]")
"""Any surrogate code point: in a Python str it is always a lone one (a pair is one code point)."""


def _utf8_ok(text: str) -> bool:
    """Whether UTF-8 can hold the text; searched in place, since encoding a huge state's string
    just to ask doubled the peak memory of a refused save."""
    return text.isascii() or _SURROGATE.search(text) is None


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
