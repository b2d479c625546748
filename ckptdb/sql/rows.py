"""Checkpoint <-> table row, and the SQL text of the hot path (written once, for every engine).

The row layout is named here, once: `COLUMNS` is the order of a row tuple (what `to_row` makes,
`select_by_ids` and `Backend.insert_rows` return), `CONTENT_COLUMNS` the part that is the
checkpoint (every column but `source`, the order `from_row` reads and `SELECT_CONTENT` selects),
`content(row)` cuts a full row to it and `same_content(a, b)` is what "the same checkpoint" means
when an import or a copy compares a row with the one stored. Nothing outside this module counts
positions.

Rows stay plain tuples, as the drivers return them, and the names above are resolved to positions
once, at import: a NamedTuple would name the fields too, but costs a construction on every row
of the hot path (`Row._make(t)`: 0.20 us per row against 0.02 us for keeping the driver's tuple,
timeit over 200,000 rows on the shared 2-core machine), which is paid again on every streamed
row of `list`, `export` and `copy` for no gain over named positions.

Adding a column touches only:
- the schema: `ckptdb/sql/schema.py` (`CheckpointRow`);
- a migration: a new revision in `migrations/versions/` (and `ckptdb/sql/revision.py`'s list);
- the row codec: this module (`COLUMNS` or `CONTENT_COLUMNS`, `to_row`, `_from_row`, and
  `JSON_COLUMNS` for a JSON column);
- the model: `ckptdb/model.py` (the `Checkpoint` field, and `FIELD_ORDER` for an echo field).
Every other statement that needs whole rows spells them from these names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ckptdb.echo_json import BYTES_FROM, JsonTooLargeError, dumps_column, loads_trusted
from ckptdb.errors import DamagedRowError, InvalidCheckpointError
from ckptdb.model import (
    FIELD_ORDER,
    MAX_NANOS,
    MIN_NANOS,
    Checkpoint,
    CheckpointInfo,
    InterruptType,
    Timestamp,
    check_fields,
)

I64_MAX = 2**63 - 1

# The echo fields in file order, then what the typed columns cannot hold; then where a row came from.
CONTENT_COLUMNS = (*FIELD_ORDER, "created_at_text", "extra")
"""The columns that are the checkpoint, in the order `from_row` reads them."""
COLUMNS = (*CONTENT_COLUMNS, "source")
"""A whole row tuple: the checkpoint's columns, then `source` (the file an import read it from)."""
SELECT_CONTENT = ", ".join(CONTENT_COLUMNS)
SELECT_ALL = ", ".join(COLUMNS)
ID = COLUMNS.index("id")
SOURCE = COLUMNS.index("source")
_CONTENT_WIDTH = len(CONTENT_COLUMNS)
JSON_COLUMNS = frozenset(("state_snapshot", "path", "pending_action", "extra"))
JSON_PARAM = "CAST(? AS TEXT)"
"""A JSON column's parameter: its value is a str or, when huge, its UTF-8 bytes (`to_row`), which
sqlite3 binds as they are (no str of the text, no UTF-8 copy of that str) but as a BLOB; the cast
makes it TEXT again in place, so the column holds TEXT that json_extract reads. On a str it does
nothing. The PostgreSQL backend spells it as a plain parameter (its JSON columns are `json`)."""
_PARAMS = ", ".join(JSON_PARAM if c in JSON_COLUMNS else "?" for c in COLUMNS)

# The save order. `save_seq` is a per-database counter that a save (insert or re-save) sets
# above every row already stored; "latest", prune's "keep the last N" and `pending` follow
# ORDER_KEY, not created_at, which is the saving host's clock (one running an hour fast made its
# old checkpoint "latest", and equal times fell back to the id). 0 means "saved where ckptdb kept
# no order": rows from before schema 0003, files imported from echo (INSERT_IF_ABSENT leaves the
# column to its default) and rows inserted by hand; those come before every counted save and
# keep among themselves the (created_at, id) order that echo lists them in.
# NEXT_SAVE_SEQ is read inside the write transaction (SQLite's write lock makes it safe across
# processes) from the end of ix_checkpoints_save_seq_created_at_id: one index probe. The
# PostgreSQL backend replaces exactly this text with a SEQUENCE's nextval (under READ COMMITTED
# concurrent transactions would read the same max). save_seq is not in a row tuple (COLUMNS):
# a copy's destination draws its own numbers, in the order the rows are written.
NEXT_SAVE_SEQ = "coalesce((SELECT max(save_seq) FROM checkpoints), 0) + 1"
ORDER_KEY = ("save_seq", "created_at", "id")
ORDER_NEWEST_FIRST = "save_seq DESC, created_at DESC, id DESC"
UPSERT = (
    f"INSERT INTO checkpoints ({', '.join(COLUMNS)}, save_seq) "
    f"VALUES ({_PARAMS}, {NEXT_SAVE_SEQ}) "
    f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in (*COLUMNS[1:], 'save_seq'))}"
)
INSERT_IF_ABSENT = (
    f"INSERT INTO checkpoints ({', '.join(COLUMNS)}) VALUES ({_PARAMS}) ON CONFLICT (id) DO NOTHING"
)
"""For imports: a new row gets save_seq 0 (the column default), an echo file carries no save order."""
COPY_IF_ABSENT = (
    f"INSERT INTO checkpoints ({', '.join(COLUMNS)}, save_seq) "
    f"VALUES ({_PARAMS}, {NEXT_SAVE_SEQ}) ON CONFLICT (id) DO NOTHING"
)
"""For copies: a new row draws the next save order, so rows written in the source's order keep it."""
LOAD = f"SELECT {SELECT_CONTENT} FROM checkpoints WHERE id = ?"
LATEST = (
    f"SELECT {SELECT_CONTENT} FROM checkpoints WHERE graph_name = ? ORDER BY {ORDER_NEWEST_FIRST} LIMIT 1"
)
"""The last checkpoint saved in one graph: the end of ix_checkpoints_graph_name_save_seq_created_at_id."""


IDS_PER_QUERY = 500
"""Ids looked up per `select_by_ids` statement: far below every engine's bound-parameter limit."""


def select_by_ids(count: int) -> str:
    """Every column (`source` last) of the rows whose id is one of `count` bound ids."""
    return f"SELECT {SELECT_ALL} FROM checkpoints WHERE id IN ({', '.join('?' * count)})"


def content(row: Sequence[Any]) -> tuple[Any, ...]:
    """A whole row (`COLUMNS`) cut to the checkpoint's columns (`CONTENT_COLUMNS`): what
    `from_row` decodes and `same_content` compares."""
    return tuple(row[:_CONTENT_WIDTH])


def source_of(row: Sequence[Any]) -> Any:
    """A whole row's `source` column: the file an import read it from, or None."""
    return row[SOURCE]


def same_content(new: Sequence[Any], stored: Sequence[Any]) -> bool:
    """Whether two whole rows hold the same checkpoint, as stored: every column but `source`
    equal (where a row came from is not part of it). A huge JSON text of a row made by `to_row`
    with `json_bytes` is its UTF-8 bytes, a stored one a str: those compare by their bytes."""
    a, b = content(new), content(stored)
    if a == b:
        return True
    return all(
        x == y or (type(x) is bytes and type(y) is str and x == y.encode("utf-8", "surrogatepass"))
        for x, y in zip(a, b, strict=True)
    )


INFO_COLUMNS = (
    "id, graph_name, current_node, step_count, created_at, interrupt_type, created_at_text, "
    f"CASE WHEN step_count = {I64_MAX} THEN extra END"
)

_INTERRUPT = {t.value: t for t in InterruptType}


def _json(
    value: Any, field: str, max_bytes: int | None, checkpoint_id: object, bytes_from: int | None
) -> str | bytes:
    try:
        return dumps_column(value, max_bytes, bytes_from=bytes_from)
    except JsonTooLargeError as exc:
        raise InvalidCheckpointError(
            f"{exc.reason} in this database: nothing was written; keep large data outside the "
            "checkpoint (a file or an object store) and save its path",
            field=field,
            source=checkpoint_id if isinstance(checkpoint_id, str) else None,
        ) from None


def to_row(
    checkpoint: Checkpoint,
    source: str | None = None,
    *,
    max_value_bytes: int | None = None,
    json_bytes: bool = False,
) -> tuple[Any, ...]:
    """Validate and encode; raises InvalidCheckpointError before anything reaches the database.

    `max_value_bytes` (the store's `Backend.max_value_bytes`): a JSON column's text longer than
    this is refused as soon as it is encoded, before the copies that would follow. `json_bytes`
    (`Backend.json_bytes`): a JSON text of `BYTES_FROM` bytes or more stays UTF-8 bytes (see
    JSON_PARAM), so that a huge state is not held as bytes, str and the str's UTF-8 at once."""
    bytes_from = BYTES_FROM if json_bytes else None
    check_fields(checkpoint)
    extra: dict[str, Any] | None = dict(checkpoint.extra) if checkpoint.extra else None
    step = checkpoint.step_count
    if step > I64_MAX:
        extra = {**(extra or {}), "step_count": step}
        step = I64_MAX
    created = checkpoint.created_at
    if not MIN_NANOS <= created.unix_nanos <= MAX_NANOS:
        raise InvalidCheckpointError(
            f"{created.isoformat()} is outside the years 0001-9999 in UTC, which the created_at column holds",
            field="created_at",
            source=checkpoint.id,
        )
    custom_text = (created.offset_minutes, created.fraction_digits) != (None, None)
    original = created.isoformat() if custom_text else None
    row = (
        checkpoint.id,
        checkpoint.graph_name,
        checkpoint.current_node,
        _json(checkpoint.state_snapshot, "state_snapshot", max_value_bytes, checkpoint.id, bytes_from),
        _json(checkpoint.path, "path", max_value_bytes, checkpoint.id, bytes_from),
        step,
        created.utc_text(),
        None
        if checkpoint.pending_action is None
        else _json(checkpoint.pending_action, "pending_action", max_value_bytes, checkpoint.id, bytes_from),
        checkpoint.interrupt_type.value,
        original,
        None if extra is None else _json(extra, "extra", max_value_bytes, checkpoint.id, bytes_from),
        source,
    )
    for value in row:
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidCheckpointError(
                    f"contains a lone surrogate ({exc.object[exc.start : exc.end]!r}) that UTF-8 cannot hold",
                    source=checkpoint.id if isinstance(checkpoint.id, str) else None,
                ) from None
    return row


def echo_time(utc_text: str) -> str:
    """`2026-11-03T09:50:52.350000000Z` -> `2026-11-03T09:50:52.350Z`: chrono's spelling (0, 3, 6
    or 9 fraction digits) of the fixed-width UTC column text; equals Timestamp(...).isoformat()."""
    fraction = utc_text[20:29]
    if fraction == "000000000":
        return utc_text[:19] + "Z"
    if fraction.endswith("000000"):
        return utc_text[:23] + "Z"
    if fraction.endswith("000"):
        return utc_text[:26] + "Z"
    return utc_text


def _timestamp(utc_text: str, original: str | None) -> Timestamp:
    return Timestamp.parse(original) if original is not None else Timestamp.from_utc_text(utc_text)


def _damaged(row: tuple[Any, ...], exc: Exception) -> DamagedRowError:
    """A row the database returned but ckptdb did not write that way: a damaged file (SQLite keeps
    no page checksums, so a file cut short inside a page reads back zero-filled) or a hand edit."""
    reason = str(exc) if isinstance(exc, InvalidCheckpointError) else f"{type(exc).__name__}: {exc}"
    return DamagedRowError(row[0] if row else None, reason)


def from_row(row: tuple[Any, ...]) -> Checkpoint:
    """Decode a stored row; one that decodes to something echo cannot hold (a hand edit such as a
    negative step_count) is damaged too, so that no caller gets a checkpoint it cannot write out."""
    try:
        checkpoint = _from_row(row)
        check_fields(checkpoint)
        return checkpoint
    except (KeyError, ValueError, TypeError, AttributeError) as exc:  # InvalidCheckpointError included
        raise _damaged(row, exc) from None


def _from_row(row: tuple[Any, ...]) -> Checkpoint:
    cid, graph, node, state, path, step, created, pending, itype, original, extra_text = row
    extra = loads_trusted(extra_text) if extra_text is not None else {}
    if step == I64_MAX and "step_count" in extra:
        step = extra.pop("step_count")
    checkpoint = Checkpoint.__new__(Checkpoint)
    checkpoint.id = cid
    checkpoint.graph_name = graph
    checkpoint.current_node = node
    checkpoint.state_snapshot = loads_trusted(state)
    checkpoint.path = loads_trusted(path)
    checkpoint.step_count = step
    checkpoint.created_at = _timestamp(created, original)
    checkpoint.pending_action = None if pending is None else loads_trusted(pending)
    checkpoint.interrupt_type = _INTERRUPT[itype]
    checkpoint.extra = extra
    return checkpoint


def info_from_row(row: tuple[Any, ...]) -> CheckpointInfo:
    try:
        cid, graph, node, step, created, itype, original, extra_text = row
        if extra_text is not None:
            step = loads_trusted(extra_text).get("step_count", step)
        return CheckpointInfo(cid, graph, node, step, _timestamp(created, original), _INTERRUPT[itype])
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise _damaged(row, exc) from None
