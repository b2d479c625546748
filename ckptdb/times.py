"""Times as a person writes them, for every query: a date, a date and time, or an age before now.

One parser for the library and the CLI alike, so `store.query(since="2026-11-01")`,
`store.query(since="7d")` and `ckptdb list --since 7d` mean the same instant.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ckptdb.errors import CkptdbError
from ckptdb.model import Timestamp, to_timestamp

__all__ = ["parse_age", "parse_time", "query_time"]

NS = 1_000_000_000

_AGE_PART = re.compile(r"(\d+)\s*([wdhms])", re.ASCII | re.IGNORECASE)
_AGE = re.compile(r"\s*(?:\d+\s*[wdhms]\s*)+", re.ASCII | re.IGNORECASE)
_UNIT_NS = {"w": 7 * 86_400 * NS, "d": 86_400 * NS, "h": 3_600 * NS, "m": 60 * NS, "s": NS}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NAIVE_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?", re.ASCII)
_TIME_HELP = (
    "use a date (2026-11-03), a date and time (2026-11-03T14:30:00Z; without a zone it is UTC) "
    "or an age (7d, 24h, 30m, 45s, 2w, 1d12h)"
)


def parse_age(text: str, *, what: str = "age") -> int:
    """`7d`, `24h`, `30m` (minutes), `45s`, `2w`, or combined `1d12h`: nanoseconds."""
    if _AGE.fullmatch(text) is None:
        raise CkptdbError(f"{what}: cannot read {text!r} as an age: use 7d, 24h, 30m, 45s, 2w or 1d12h")
    return sum(int(n) * _UNIT_NS[unit.lower()] for n, unit in _AGE_PART.findall(text))


_FIRST = Timestamp.parse("0001-01-01T00:00:00Z").unix_nanos
_LAST = Timestamp.parse("9999-12-31T23:59:59.999999999Z").unix_nanos


def parse_time(text: str, *, what: str = "time", now: Timestamp | None = None) -> Timestamp:
    """An instant from an ISO date or date-time (UTC when no zone is given) or an age before now."""
    found = _parse_time(text, what, now)
    if not _FIRST <= found.unix_nanos <= _LAST:
        raise CkptdbError(f"{what}: {text!r} is outside the years 0001-9999 that checkpoint times can hold")
    return found


def _parse_time(text: str, what: str, now: Timestamp | None) -> Timestamp:
    stripped = text.strip()
    if stripped.lower() == "now":
        return now or Timestamp.now()
    if _AGE.fullmatch(stripped):
        return Timestamp((now or Timestamp.now()).unix_nanos - parse_age(stripped, what=what))
    candidate = stripped.replace(" ", "T", 1) if _DATE.match(stripped) else stripped
    if _DATE.fullmatch(candidate):
        candidate += "T00:00:00Z"
    elif _NAIVE_RFC3339.fullmatch(candidate):
        candidate += "Z"
    try:
        return Timestamp.parse(candidate).with_format()
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(candidate)  # the forms RFC 3339 refuses: 14:30, +0200, ...
    except ValueError:
        raise CkptdbError(f"{what}: cannot read {text!r} as a time: {_TIME_HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Timestamp.from_datetime(moment)


def query_time(value: Timestamp | datetime | str, *, what: str) -> Timestamp:
    """A query bound (`since`, `until`) from a Timestamp, an aware datetime, or text `parse_time`
    reads (the forms `ckptdb list --since` takes)."""
    if isinstance(value, str):
        return parse_time(value, what=what)
    return to_timestamp(value, field_name=what)
