"""The decide stage: each parsed file's outcome from what is stored and what this run already
decided, and the rows a batch writes. The write (`ckptdb.importing.write`) then makes the outcomes
of written rows final from what the database did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ckptdb.importing.candidate import Candidate
from ckptdb.importing.options import ImportOptions
from ckptdb.importing.outcomes import Outcome
from ckptdb.importing.row_access import row_digest, same_content, source_of
from ckptdb.printable import printable
from ckptdb.sql.store import SqlCheckpointStore

REPLACED = "replaced by this file (--on-conflict replace)"
KEPT = "kept the stored one (--on-conflict replace overwrites it)"

Content = tuple[Any, ...] | bytes
"""What an id holds: a row, or (dry runs) a canonical digest."""


class Prior(NamedTuple):
    """What an id holds before a file: content (None: nothing), where it came from, and whether
    this run already decided the id (then the first occurrence wins, whatever on_conflict says)."""

    content: Content | None
    where: str
    in_run: bool


class Decision(NamedTuple):
    """A batch decided: the rows to write, and the candidate that stops the run
    (on_conflict="fail") if one does."""

    rows: list[tuple[Any, ...]]
    stop: Candidate | None


@dataclass(slots=True)
class Decider:
    """Decides batch after batch; remembers across batches only what this run decided."""

    store: SqlCheckpointStore | None
    options: ImportOptions
    seen: set[str] = field(default_factory=set)  # on_conflict="replace": ids decided by this run
    dry_seen: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # dry run: id -> (digest, path)

    def _same(self, item: Candidate, prior: Content) -> bool:
        if isinstance(prior, bytes):
            return item.digest == prior
        assert item.row is not None
        if self.options.dry_run:
            return item.digest == row_digest(prior)
        return same_content(item.row, prior)

    def _kept_digest(self, item: Candidate, kept: Content) -> bytes:
        if isinstance(kept, bytes):
            return kept
        if kept is item.row:
            assert item.digest is not None
            return item.digest
        return row_digest(kept)

    def _prior(
        self, cid: str, batch: dict[str, tuple[Content, str]], stored: dict[str, tuple[Any, ...]]
    ) -> Prior:
        if cid in batch:
            return Prior(*batch[cid], True)
        if cid in self.dry_seen:
            return Prior(*self.dry_seen[cid], True)
        existing = stored.get(cid)
        where = source_of(existing) if existing is not None else "an earlier save"
        return Prior(existing, where, cid in self.seen)

    async def decide(self, items: list[Candidate]) -> Decision:
        """Give each parsed candidate its outcome; return the rows to write, and the candidate that
        stops the run (on_conflict="fail") if one does."""
        valid = [item for item in items if item.outcome is None]
        if not valid:
            return Decision([], None)
        options = self.options
        stored: dict[str, tuple[Any, ...]] = {}
        if self.store is not None:
            stored = await self.store.load_rows([item.checkpoint_id for item in valid if item.checkpoint_id])
        batch: dict[str, tuple[Content, str]] = {}  # id -> (content it has now, the file it came from)
        writing: dict[str, Candidate] = {}  # id -> the candidate whose row the batch writes for it
        rows: list[tuple[Any, ...]] = []
        for item in valid:
            cid, row = item.checkpoint_id, item.row
            assert cid is not None and row is not None
            prior, where, in_run = self._prior(cid, batch, stored)
            item.first = writing.get(cid)  # judged against that row, until the write says what landed
            kept: Content
            if prior is None:
                item.outcome = Outcome.IMPORTED
                rows.append(row)
                item.wrote = not options.dry_run
                writing[cid] = item
                kept = row
            elif self._same(item, prior):
                item.outcome, item.reason = Outcome.UNCHANGED, f"same checkpoint as {where}"
                kept = prior
            else:
                item.outcome = Outcome.CONFLICT
                kept = prior
                held = (
                    f"already came from {where} in this run"
                    if in_run
                    else f"is already stored (from {where})"
                )
                if options.on_conflict == "fail":
                    item.reason = printable(
                        f"id {cid} {held} with different content: stopped here (--on-conflict fail); "
                        "nothing of this batch was written"
                    )
                    return Decision(rows, item)
                if in_run:
                    why = "the first one is kept"
                elif options.on_conflict == "replace":
                    why = REPLACED
                    rows.append(row)
                    item.wrote = not options.dry_run
                    writing[cid] = item
                    kept = row
                else:
                    why = KEPT
                item.reason = f"id {cid} {held} with different content: {why}"
            item.reason = None if item.reason is None else printable(item.reason)
            if in_run:
                continue  # the first occurrence decided what the id holds, and where it came from
            if options.dry_run:
                record = (self._kept_digest(item, kept), item.path)
                batch[cid] = self.dry_seen[cid] = record
            else:
                batch[cid] = (kept, item.path)
        if options.on_conflict == "replace" and not options.dry_run:
            self.seen.update(batch)
        return Decision(rows, None)
