"""Rows out of the CLI: one `--format` option shared by every listing command, and writers that
stream (a million rows never sit in memory; a table buffers only its first rows to size columns).

Formats:
- table: aligned columns for people; long cells are cut at 60 columns with `…`, invisible and
  reordering characters shown escaped (see `escape`), sizes in KiB/MiB, numbers right-aligned,
  widths measured as a terminal draws them (wcwidth). The default on a terminal.
- jsonl: one JSON object per line, values exact. The default when output is not a terminal
  (a pipe or a file): it streams, and `jq`, `grep` and `head` all handle it line by line.
- json: one JSON array of objects.
- csv: a header line, then RFC 4180 rows (JSON values as compact JSON text), lines ending in LF.

Column names that repeat (`SELECT a.id, b.id ...` in `ckptdb sql`) become `id`, `id_2`, ... in
every format, so a JSON object never drops a value under a name it already has.

Only click, the standard library and wcwidth (imported on the first non-ASCII cell) are imported
here: this module is on the path of every listing command, which people run all day.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import click

from ckptdb.exit_status import ExitStatus

FORMATS = ("table", "json", "jsonl", "csv")
MAX_CELL = 60
"""Widest table cell, in terminal columns; longer values end in `…` (other formats keep all)."""
LAYOUT_ROWS = 1000
"""Rows a table reads before fixing its column widths; later rows stream with those widths."""

F = TypeVar("F", bound=Callable[..., Any])


def format_option(*formats: str) -> Callable[[F], F]:
    """The `--format/-f` option: `table` on a terminal, `jsonl` otherwise, unless given."""
    choices = formats or FORMATS
    return click.option(
        "--format",
        "-f",
        "fmt",
        type=click.Choice(choices),
        default=None,
        help="Output format. Default: table on a terminal, "
        + ("jsonl" if "jsonl" in choices else choices[-1])
        + " when piped or redirected.",
    )


def resolve_format(fmt: str | None, stream: IO[str], formats: Sequence[str] = FORMATS) -> str:
    if fmt is not None:
        return fmt
    if _isatty(stream):
        return "table"
    return "jsonl" if "jsonl" in formats else formats[-1]


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class Column:
    """`kind`: text, number, bytes (a size: KiB/MiB in tables, a plain integer elsewhere), json (a
    parsed JSON value: compact text in tables and CSV, itself in JSON), or auto (ad-hoc SQL).
    `in_table=False`: a detail for scripts (JSON, CSV) that a table shows another way."""

    name: str
    kind: str = "text"
    in_table: bool = True


class Estimate(int):
    """A number known only approximately: tables write `~` before it, other formats the number."""


def unique_names(names: Sequence[str]) -> list[str]:
    """Column names made distinct: a repeat of `id` becomes `id_2`, then `id_3`, skipping any
    name the row already has, so every value keeps a name of its own in a JSON object."""
    taken = set(names)
    seen: set[str] = set()
    out = []
    for name in names:
        if name in seen:
            number = 2
            while f"{name}_{number}" in taken:
                number += 1
            name = f"{name}_{number}"
            taken.add(name)
        seen.add(name)
        out.append(name)
    return out


# -- cell text ---------------------------------------------------------------------------------

_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: part of emoji sequences and of several scripts
# Categories a terminal does not show as themselves: controls (C0, DEL, C1), format characters
# (bidi overrides and isolates, zero-width spaces, soft hyphen, tag characters), line and paragraph
# separators, and lone surrogates (which cannot even be written as UTF-8).
_HIDDEN_CATEGORIES = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))


def _escaped_char(char: str) -> str:
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    """`text` with every character that a terminal would not show as itself spelled as a Python
    escape (`\\n`, `\\x85`, `\\u202e`): C0 and C1 controls, DEL, U+2028/U+2029, bidi controls
    (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C) and other format characters, so a value
    can neither move the cursor, end a line, nor make the text after it read reversed. ZWJ and ZWNJ
    stay when they join two non-ASCII characters (an emoji family, Persian or Indic text) and are
    escaped elsewhere (`gr\\u200daph`), where they only hide a difference."""
    if text.isascii() and text.isprintable():
        return text
    import unicodedata

    out = []
    last = len(text) - 1
    for index, char in enumerate(text):
        if char.isprintable() or unicodedata.category(char) not in _HIDDEN_CATEGORIES:
            out.append(char)  # other spaces, private use, unassigned: drawn as a space or a box
        elif char in _JOINERS and 0 < index < last and _joins(text[index - 1], text[index + 1]):
            out.append(char)
        else:
            out.append(_escaped_char(char))
    return "".join(out)


def _joins(before: str, after: str) -> bool:
    return not before.isascii() and not after.isascii() and before.isprintable() and after.isprintable()


def one_line(text: str) -> str:
    """A message that echoes what a person typed or a file held, as one safe line: the same
    escapes as a table cell (a newline in the text becomes `\\n`)."""
    return escape(text)


def human_bytes(size: int) -> str:
    """1536 -> '1.5 KiB': binary units, so nobody wonders which kilo."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text(value: Any, kind: str) -> str:
    """A value as text for table and CSV cells."""
    if value is None:
        return ""
    if kind == "json":
        return compact_json(value)
    if kind == "bytes" and isinstance(value, int):
        return ("~" if isinstance(value, Estimate) else "") + human_bytes(value)
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


_JSON_NATIVE = (str, int, float, bool, list, dict, type(None))


def _json_value(value: Any, kind: str) -> Any:
    """A value of an ad-hoc query for JSON: BLOBs as base64 (as sqlite-utils does), NaN as null.

    PostgreSQL also returns types JSON has no spelling for: `numeric` (what sum(bigint) gives) as
    a number (an integer when it is one), times as ISO 8601 text, anything else (uuid, interval,
    inet, ...) as its text."""
    if isinstance(value, _JSON_NATIVE):
        if isinstance(value, float) and not math.isfinite(value):
            return None  # JSON has no NaN or infinity
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return {"$base64": True, "encoded": base64.b64encode(bytes(value)).decode("ascii")}
    import datetime
    import decimal

    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json_value(item, kind) for item in value]
    return str(value)


def _is_number(value: Any) -> bool:
    """int, float, or a PostgreSQL `numeric` (decimal.Decimal), and not a bool."""
    if isinstance(value, (int, float)):
        return not isinstance(value, bool)
    return type(value).__name__ == "Decimal"


def display_width(text: str) -> int:
    """Terminal columns of escaped text, as wcwidth measures them: East Asian wide characters and
    emoji take two, an emoji ZWJ sequence or a flag two in all, combining marks and joiners none."""
    if text.isascii():
        return len(text)
    import wcwidth

    width = int(wcwidth.wcswidth(text))
    if width < 0:  # a control character wcwidth cannot measure (escape() leaves none)
        return sum(max(0, int(wcwidth.wcwidth(char))) for char in text)
    return width


def _fit(text: str, limit: int) -> str:
    """Escape what a terminal would not show (see `escape`) and cut to `limit` columns with an
    ellipsis, between user-perceived characters (never inside an emoji sequence or before a
    combining mark)."""
    clipped = len(text) > 4 * limit  # a cell can be a many-megabyte state: look at its start only
    text = escape(text[: 4 * limit])
    if not clipped and display_width(text) <= limit:
        return text
    import wcwidth

    out, width = [], 0
    for grapheme in wcwidth.iter_graphemes(text):
        w = display_width(grapheme)
        if width + w > limit - 1:
            break
        out.append(grapheme)
        width += w
    return "".join(out) + "…"


# -- writers -----------------------------------------------------------------------------------


class RowWriter:
    """Write rows (sequences of values in column order); `close()` finishes the document."""

    def __init__(self, columns: Sequence[Column], stream: IO[str]) -> None:
        self.columns = list(columns)
        self.names = unique_names([column.name for column in self.columns])
        self.stream = stream

    def write(self, row: Sequence[Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the document (closing bracket, buffered table rows)."""


_encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: json.dumps(...) builds one a call


class JsonLinesWriter(RowWriter):
    def __init__(self, columns: Sequence[Column], stream: IO[str]) -> None:
        super().__init__(columns, stream)
        # Only ad-hoc SQL can return a BLOB or a NaN; typed columns go to the encoder as they are.
        self.convert = any(c.kind == "auto" for c in self.columns)

    def record(self, row: Sequence[Any]) -> str:
        if self.convert:
            row = [_json_value(v, c.kind) for c, v in zip(self.columns, row, strict=True)]
        return _encode(dict(zip(self.names, row, strict=True)))

    def write(self, row: Sequence[Any]) -> None:
        self.stream.write(self.record(row) + "\n")


class JsonWriter(JsonLinesWriter):
    def __init__(self, columns: Sequence[Column], stream: IO[str]) -> None:
        super().__init__(columns, stream)
        self.count = 0

    def write(self, row: Sequence[Any]) -> None:
        self.stream.write(("[\n" if self.count == 0 else ",\n") + self.record(row))
        self.count += 1

    def close(self) -> None:
        self.stream.write("[]\n" if self.count == 0 else "\n]\n")


# A field is quoted when it holds a separator, a quote, CR or LF (RFC 4180), any other control
# character (NUL included: kept as it is, inside quotes), or a space at either end (which some
# readers trim). An empty string is quoted too, so that it differs from NULL (an empty field).
_CSV_QUOTE = re.compile(r'[,"\x00-\x1f\x7f]|^\s|\s$')


def csv_field(value: str | None) -> str:
    """One RFC 4180 field: quoted (quotes doubled) when it must be; NULL is an empty field."""
    if value is None:
        return ""
    if value == "" or _CSV_QUOTE.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


class CsvWriter(RowWriter):
    """Written by hand rather than with the csv module, whose writer leaves a lone CR unquoted when
    lines end in LF and spells an empty string as it spells NULL."""

    def __init__(self, columns: Sequence[Column], stream: IO[str]) -> None:
        super().__init__(columns, stream)
        self._line(self.names)

    def _line(self, fields: Sequence[str | None]) -> None:
        self.stream.write(",".join(csv_field(field) for field in fields) + "\n")

    def write(self, row: Sequence[Any]) -> None:
        self._line(  # numbers as they are: no thousands separators, no KiB
            [
                None
                if v is None
                else str(int(v))
                if c.kind in ("bytes", "number") and isinstance(v, int)
                else _text(v, c.kind)
                for c, v in zip(self.columns, row, strict=True)
            ]
        )


class TableWriter(RowWriter):
    """Aligned columns. Widths come from the header and the first LAYOUT_ROWS rows; a later, longer
    cell pushes its row out of line rather than losing characters."""

    def __init__(self, columns: Sequence[Column], stream: IO[str]) -> None:
        self.shown = [index for index, column in enumerate(columns) if column.in_table]
        super().__init__([columns[index] for index in self.shown], stream)
        self.pending: list[list[str]] = []
        self.numeric = [c.kind in ("number", "bytes") for c in self.columns]
        self.auto = [c.kind == "auto" for c in self.columns]
        self.widths: list[int] | None = None

    def write(self, row: Sequence[Any]) -> None:
        if len(self.shown) != len(row):
            row = [row[index] for index in self.shown]
        cells = [_fit(_text(v, c.kind), MAX_CELL) for c, v in zip(self.columns, row, strict=True)]
        if self.widths is not None:
            self._emit(cells)
            return
        for index, value in enumerate(row):
            if self.auto[index] and value is not None and not _is_number(value):
                self.auto[index] = False  # a text value: this column is not numeric
        self.pending.append(cells)
        if len(self.pending) >= LAYOUT_ROWS:
            self._layout()

    def _layout(self) -> None:
        for index, auto in enumerate(self.auto):
            if auto and self.pending:
                self.numeric[index] = True
        header = [_fit(name, MAX_CELL) for name in self.names]
        self.widths = [display_width(cell) for cell in header]
        for cells in self.pending:
            self.widths = [max(w, display_width(cell)) for w, cell in zip(self.widths, cells, strict=True)]
        self._emit(header, header=True)
        self.stream.write("  ".join("-" * w for w in self.widths) + "\n")
        for cells in self.pending:
            self._emit(cells)
        self.pending = []

    def _emit(self, cells: Sequence[str], *, header: bool = False) -> None:
        assert self.widths is not None
        out = []
        for index, (cell, width) in enumerate(zip(cells, self.widths, strict=True)):
            pad = " " * max(0, width - display_width(cell))
            out.append(pad + cell if self.numeric[index] and not header else cell + pad)
        self.stream.write("  ".join(out).rstrip() + "\n")

    def close(self) -> None:
        if self.widths is None and self.columns:
            self._layout()


_WRITERS: dict[str, type[RowWriter]] = {
    "table": TableWriter,
    "json": JsonWriter,
    "jsonl": JsonLinesWriter,
    "csv": CsvWriter,
}


@contextmanager
def row_writer(
    fmt: str | None, columns: Sequence[Column], stream: IO[str] | None = None
) -> Iterator[RowWriter]:
    """A writer for `--format` (resolved for the stream), closed at the end of the block."""
    out = stream if stream is not None else sys.stdout
    writer = _WRITERS[resolve_format(fmt, out)](columns, out)
    yield writer
    writer.close()


def write_rows(fmt: str | None, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
    """Write an in-memory list of rows (the summaries: one row per graph)."""
    with row_writer(fmt, columns) as writer:
        for row in rows:
            writer.write(row)


@contextmanager
def stdout_guard() -> Iterator[None]:
    """Stop quietly when the reader goes away (`ckptdb list | head`), as Unix tools do: no
    traceback, exit status 0, and no second error when Python flushes stdout at exit."""
    try:
        yield
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):
            pass  # not a real file (a test runner's buffer): nothing will flush into a closed pipe
        raise click.exceptions.Exit(ExitStatus.OK) from None


def plural(count: int, noun: str) -> str:
    """`noun` as English counts it: 1 file, 2 files."""
    return noun if count == 1 else f"{noun}s"
