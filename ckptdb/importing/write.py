"""The write stage: a batch's rows in one transaction, and every outcome of the batch made final
from what that transaction did, not from the read that planned it: an id another process wrote in
between is unchanged or a conflict, never imported."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ckptdb.errors import CkptdbError
from ckptdb.importing.candidate import Candidate
from ckptdb.importing.decide import KEPT, REPLACED
from ckptdb.importing.options import OnConflict
from ckptdb.importing.outcomes import ImportReport, Outcome
from ckptdb.importing.parse import invalid_reason
from ckptdb.importing.row_access import row_id, same_content, source_of
from ckptdb.printable import printable
from ckptdb.sql.store import SqlCheckpointStore
from ckptdb.sql.transfer import InsertResult, Resolve, Row, encodes_json_as_bytes


def wants_json_bytes(store: SqlCheckpointStore | None) -> bool:
    """Whether the store takes a huge row's JSON as UTF-8 bytes (see `rows.to_row`): the parse
    then encodes it so."""
    return store is not None and encodes_json_as_bytes(store)


class ConflictStop(CkptdbError):
    """`on_conflict="fail"` inside a batch's transaction: an id absent when the batch was read is
    stored now, with different content. Raised to roll the batch back; never leaves the importer."""

    def __init__(self, checkpoint_id: str, row: Row) -> None:
        super().__init__(f"id {checkpoint_id}: stored meanwhile with different content")
        self.checkpoint_id = checkpoint_id
        self.row = row


class Written(NamedTuple):
    """What a batch write did: the database's result row by row, and refused id -> why."""

    result: InsertResult
    refused: dict[str, str]


class PendingWrite(NamedTuple):
    """A batch whose rows are being written (task None: nothing to write), and its candidates."""

    task: asyncio.Task[Written] | None
    batch: list[Candidate]


class BatchWriter:
    def __init__(
        self, store: SqlCheckpointStore | None, on_conflict: OnConflict, report: ImportReport
    ) -> None:
        self._store = store
        self._on_conflict = on_conflict
        self._report = report

    def _resolver(self, rows: list[Row]) -> Resolve | None:
        """What the batch's transaction does with ids it finds stored (some were absent when the
        batch was read: another process wrote them since): `replace` overwrites those with
        different content, `fail` rolls the batch back at the first such id, `skip` keeps them."""
        on_conflict = self._on_conflict
        if on_conflict == "skip":
            return None

        def resolve(stored: Mapping[str, Row]) -> list[Row]:
            differ = [
                row for row in rows if row_id(row) in stored and not same_content(row, stored[row_id(row)])
            ]
            if differ and on_conflict == "fail":
                raise ConflictStop(row_id(differ[0]), stored[row_id(differ[0])])
            return differ

        return resolve

    def start(self, rows: list[Row], batch: list[Candidate]) -> PendingWrite:
        """Start writing a batch's rows (nothing to write: no task)."""
        task = asyncio.create_task(self._write(rows)) if rows else None
        return PendingWrite(task, batch)

    async def _write(self, rows: list[Row]) -> Written:
        """Write a batch's rows in one transaction; what the database did comes back row by row.
        A row the database cannot hold (PostgreSQL: U+0000 in an id or name) is left out, and the
        refused ones come back (id -> why)."""
        assert self._store is not None
        result, refused = await self._store.insert_rows_refusing(rows, self._resolver(rows))
        return Written(result, {cid: printable(invalid_reason(exc)) for cid, exc in refused.items()})

    async def finish(self, pending: PendingWrite) -> Candidate | None:
        """Wait for a batch's transaction, then make its outcomes final; returns the candidate that
        stops the run if `fail` met a conflict there. The write is shielded: a Ctrl-C must not
        cut the wait short and leave the report saying less than was committed."""
        task, items = pending
        if task is None:
            return None
        try:
            written = await asyncio.shield(task)
        except ConflictStop as stop:
            return _stopped_by(items, stop)
        self._settle(items, written)
        return None

    def _settle(self, items: Sequence[Candidate], written: Written) -> None:
        """Every outcome from what the batch's transaction did. A later file of the batch with the
        same id was judged against the first one's row; where that row did not land, it is judged
        again against what did."""
        result, refused = written
        self._report.written += len(result.inserted) + len(result.replaced)
        landed: set[str] = set()
        for item in items:
            cid = item.checkpoint_id
            if not item.wrote or cid is None:
                continue
            if cid in refused:  # the database cannot hold this one
                item.outcome, item.reason = Outcome.INVALID, refused[cid]
            elif cid in result.inserted:
                item.outcome, item.reason = Outcome.IMPORTED, None
                landed.add(cid)
            elif cid in result.replaced:
                held = f"id {cid} is already stored (from {source_of(result.stored[cid])})"
                item.outcome = Outcome.CONFLICT
                item.reason = printable(f"{held} with different content: {REPLACED}")
                self._report.replaced += 1
                landed.add(cid)
            else:
                _judge(item, result.stored[cid])
        for item in items:
            cid = item.checkpoint_id
            if item.first is None or cid is None or cid in landed or item.row is None:
                continue
            if item.first.outcome is Outcome.INVALID:
                item.outcome = Outcome.INVALID
                item.reason = printable(
                    f"not written: {item.first.path}, the first file with id {cid} in this run, was "
                    "refused; fix that file and import again"
                )
                continue
            row = result.stored[cid]  # the first one was unchanged, or a kept conflict
            if self._on_conflict == "skip" or same_content(item.row, row):
                _judge(item, row)


def _judge(item: Candidate, row: Row) -> None:
    """The outcome of a file whose id the write found stored: unchanged or a kept conflict."""
    assert item.row is not None
    where = source_of(row)
    if same_content(item.row, row):
        item.outcome, item.reason = Outcome.UNCHANGED, printable(f"same checkpoint as {where}")
        return
    held = f"id {item.checkpoint_id} is already stored (from {where})"
    item.outcome, item.reason = Outcome.CONFLICT, printable(f"{held} with different content: {KEPT}")


def _stopped_by(items: Sequence[Candidate], stop: ConflictStop) -> Candidate:
    """`fail` met a conflict inside the batch's transaction, which rolled back: the file it stops at."""
    item = next(item for item in items if item.wrote and item.checkpoint_id == stop.checkpoint_id)
    held = f"id {stop.checkpoint_id} is already stored (from {source_of(stop.row)})"
    item.outcome = Outcome.CONFLICT
    item.reason = printable(
        f"{held} with different content: stopped here (--on-conflict fail); nothing of this batch was written"
    )
    return item
