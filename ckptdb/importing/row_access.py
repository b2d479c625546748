"""Every look into a row by the import's stages: its id, its source, its checkpoint, and whether two
rows hold the same checkpoint. Kept here, and only here, so that the row's layout (positions in
`ckptdb.sql.rows`) is spelled in one place of the importer."""

from __future__ import annotations

from typing import Any

from ckptdb.canonical import canonical_digest, canonical_json
from ckptdb.model import Checkpoint
from ckptdb.printable import printable
from ckptdb.sql import rows as sqlrows

_CONTENT = 11
"""The row's columns up to `source`: what a checkpoint holds (the rest records where it came from)."""


def row_id(row: tuple[Any, ...]) -> str:
    return str(row[0])


def source_of(row: tuple[Any, ...]) -> str:
    """Where a stored row came from, as a message says it."""
    return printable(row[_CONTENT]) if row[_CONTENT] else "an earlier save"


def row_checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    return sqlrows.from_row(row[:_CONTENT])


def row_digest(row: tuple[Any, ...]) -> bytes:
    """`canonical_digest` of a row's checkpoint (what a dry run compares)."""
    return canonical_digest(row_checkpoint(row))


def same_content(new: tuple[Any, ...], stored: tuple[Any, ...]) -> bool:
    """Whether two rows hold the same checkpoint: equal columns, or else equal canonical JSON (a
    hand edit may reorder keys inside the state; that changes nothing). A huge JSON text of the
    new row is UTF-8 bytes (`rows.to_row` with `json_bytes`), the stored one a str."""
    if new[:_CONTENT] == stored[:_CONTENT]:
        return True
    if all(
        a == b or (type(a) is bytes and type(b) is str and a == b.encode("utf-8", "surrogatepass"))
        for a, b in zip(new[:_CONTENT], stored[:_CONTENT], strict=True)
    ):
        return True
    return canonical_json(row_checkpoint(new)) == canonical_json(row_checkpoint(stored))
