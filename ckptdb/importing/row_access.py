"""What the import's stages read from a stored row: its id, its source, its checkpoint, and whether
two rows hold the same checkpoint. The layout itself is named in `ckptdb.sql.rows`; this adds only
the import's own reading of it (a message's wording, a digest, a canonical-JSON fallback)."""

from __future__ import annotations

from typing import Any

from ckptdb.canonical import canonical_digest, canonical_json
from ckptdb.model import Checkpoint
from ckptdb.printable import printable
from ckptdb.sql import rows as sqlrows


def row_id(row: tuple[Any, ...]) -> str:
    return str(row[sqlrows.ID])


def source_of(row: tuple[Any, ...]) -> str:
    """Where a stored row came from, as a message says it."""
    source = sqlrows.source_of(row)
    return printable(source) if source else "an earlier save"


def row_checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    return sqlrows.from_row(sqlrows.content(row))


def row_digest(row: tuple[Any, ...]) -> bytes:
    """`canonical_digest` of a row's checkpoint (what a dry run compares)."""
    return canonical_digest(row_checkpoint(row))


def same_content(new: tuple[Any, ...], stored: tuple[Any, ...]) -> bool:
    """Whether two rows hold the same checkpoint: the same stored content (`rows.same_content`),
    or else equal canonical JSON (a hand edit may reorder keys inside the state; that changes
    nothing)."""
    if sqlrows.same_content(new, stored):
        return True
    return canonical_json(row_checkpoint(new)) == canonical_json(row_checkpoint(stored))
