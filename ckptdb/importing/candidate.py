"""`Candidate`: one directory entry on its way through the import's stages. The scan makes it, the
parse fills in its id and row, the decision and the write give it its outcome, the report emits it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckptdb.importing.outcomes import FileOutcome, Outcome


@dataclass(slots=True)
class Candidate:
    """One file on its way through a batch."""

    path: str  # shown to people: DIR as given + relative
    relative: str
    source: str  # absolute path, kept in the row's `source` column
    read_from: str | None = None  # the file to read; None once decided without reading
    outcome: Outcome | None = None
    reason: str | None = None
    checkpoint_id: str | None = None
    row: tuple[Any, ...] | None = None
    digest: bytes | None = None  # canonical content digest, dry runs only
    wrote: bool = False  # its row is in the batch's write
    first: Candidate | None = None  # the candidate of this batch whose row for the same id is in the write

    def final(self) -> FileOutcome:
        """Its outcome as reported (once decided)."""
        assert self.outcome is not None
        return FileOutcome(self.path, self.relative, self.outcome, self.checkpoint_id, self.reason)
