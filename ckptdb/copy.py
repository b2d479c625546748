"""Copy every checkpoint from one database to another (SQLite or PostgreSQL, either way round).

Rows move as stored (JSON text, UTC text, the `source` column), never re-encoded. Each is first
checked the way `ckptdb db check` checks it (`check.damage`: it decodes as a valid echo
checkpoint): a row damaged in the source (a step_count or created_at edited into text, broken
JSON) is reported by id and left out, instead of aborting the copy on PostgreSQL (whose typed
columns refuse it) or being carried over unnoticed into another SQLite file. The check costs
22 us of CPU per row (measured on 20,000 generated rows of about 3.4 KB: 0.44 s), against 1.3-4 s
for the whole SQLite-to-SQLite copy of those rows on this shared machine. The source is read
through one streaming cursor; each batch is compared with what the destination already holds
under the same ids, so a re-run copies nothing new and a row that differs is never overwritten
unless asked:

- new: written (INSERT ... ON CONFLICT DO NOTHING, so a concurrent writer is never clobbered);
- unchanged: the destination already has the same content (the `source` column is ignored);
- conflict: same id, different content; `skip` keeps the destination's row and reports it,
  `replace` writes the source's, `fail` stops before writing that batch;
- refused: the destination engine cannot hold the row (U+0000 in an id on PostgreSQL, say);
- damaged: the source row cannot be read back as a checkpoint: not copied.

Each batch is one transaction, so an interrupted copy leaves whole batches behind and running it
again finishes the job. At the end both sides are counted.

The save order (`save_seq`, what "latest", prune and pending follow) is the destination's own:
rows are read in the source's save order and each written row draws the destination's next
number, so the copied rows keep their relative order, after whatever the destination held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ckptdb.check import damage
from ckptdb.errors import CkptdbError, InvalidCheckpointError
from ckptdb.exit_status import ExitStatus
from ckptdb.outputs import OutputPathError, same_database
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.backend import DatabaseTarget
from ckptdb.sql.engines import parse_target
from ckptdb.sql.store import SqlCheckpointStore

OnConflict = Literal["skip", "replace", "fail"]
ON_CONFLICT: tuple[OnConflict, ...] = ("skip", "replace", "fail")
DEFAULT_BATCH = 500
MAX_LISTED = 20  # ids kept per outcome in the report; the counts are always complete

_ALL_COLUMNS = ", ".join(sqlrows.COLUMNS)
_COMPARED = len(sqlrows.COLUMNS) - 1  # every column but `source` (where an import came from)


class CopyConflictError(CkptdbError):
    """`on_conflict="fail"` met a checkpoint that differs between the two databases; `report` is
    what was done before (earlier batches stay committed)."""

    exit_status = ExitStatus.STOPPED

    def __init__(self, message: str, report: CopyReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(slots=True)
class CopyReport:
    """What happened to every source row, and both sides' counts at the end."""

    source: str
    destination: str
    on_conflict: str
    read: int = 0
    copied: int = 0
    unchanged: int = 0
    replaced: int = 0
    conflicts: int = 0
    refused: int = 0
    damaged: int = 0
    conflict_ids: list[str] = field(default_factory=list)
    refused_ids: list[tuple[str, str]] = field(default_factory=list)
    damaged_ids: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False
    """`on_conflict="fail"` met a conflict: the rows after it were not read."""
    source_before: int = 0
    source_after: int = 0
    destination_before: int = 0
    destination_after: int = 0

    @property
    def counts_match(self) -> bool:
        """The final count check: the source was read whole, and the destination gained exactly
        the rows reported as copied (false if another process wrote to either side meanwhile)."""
        return (
            self.source_after == self.read and self.destination_after == self.destination_before + self.copied
        )

    @property
    def complete(self) -> bool:
        """Every source row is now in the destination with the same content."""
        settled = self.conflicts == 0 or self.on_conflict == "replace"
        return self.counts_match and self.refused == 0 and self.damaged == 0 and settled and not self.stopped

    @property
    def exit_status(self) -> int:
        """The exit status `ckptdb copy` ends with: the same table as `ckptdb import`'s, for the same
        outcomes (`ckptdb.exit_status.ExitStatus`). Conflicts count even when replaced, as an
        import's do: the report names them, so a person can look."""
        if self.stopped:
            return ExitStatus.STOPPED
        if self.conflicts or self.refused or self.damaged or not self.counts_match:
            return ExitStatus.PROBLEMS
        return ExitStatus.OK

    def summary(self) -> str:
        lines = [
            f"read {self.read} from {self.source}: {self.copied} copied, {self.unchanged} unchanged, "
            f"{self.replaced} replaced, {self.conflicts} conflicts"
            + (" (kept as in the destination)" if self.conflicts and self.on_conflict != "replace" else "")
            + f", {self.refused} refused, {self.damaged} damaged",
            f"count check: source {self.source_after} rows (read {self.read}); destination {self.destination}"
            f" {self.destination_before} -> {self.destination_after} (+{self.copied} expected): "
            + ("OK" if self.counts_match else "MISMATCH (was another process writing to either database?)"),
        ]
        if self.conflicts and self.on_conflict != "replace":
            unlisted = self.conflicts - len(self.conflict_ids)
            more = f" and {unlisted} more" if unlisted > 0 else ""
            lines.append(
                f"conflicts (same id, different content; rerun with --on-conflict replace to take the "
                f"source's): {', '.join(self.conflict_ids)}{more}"
            )
        for checkpoint_id, reason in self.refused_ids:
            lines.append(f"refused {checkpoint_id!r}: {reason}")
        if self.refused > len(self.refused_ids):
            lines.append(f"... and {self.refused - len(self.refused_ids)} more refused")
        for checkpoint_id, reason in self.damaged_ids:
            lines.append(f"damaged {checkpoint_id!r}, not copied: {reason}")
        if self.damaged > len(self.damaged_ids):
            lines.append(f"... and {self.damaged - len(self.damaged_ids)} more damaged")
        if self.damaged:
            lines.append("damaged rows: `ckptdb db check` on the source lists them; fix or delete them there")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "on_conflict": self.on_conflict,
            "read": self.read,
            "copied": self.copied,
            "unchanged": self.unchanged,
            "replaced": self.replaced,
            "conflicts": self.conflicts,
            "refused": self.refused,
            "conflict_ids": self.conflict_ids,
            "refused_ids": [list(item) for item in self.refused_ids],
            "damaged": self.damaged,
            "damaged_ids": [list(item) for item in self.damaged_ids],
            "stopped": self.stopped,
            "exit_status": self.exit_status,
            "source_count": self.source_after,
            "destination_count_before": self.destination_before,
            "destination_count_after": self.destination_after,
            "counts_match": self.counts_match,
        }


async def copy_checkpoints(
    source: str | Path | DatabaseTarget,
    destination: str | Path | DatabaseTarget,
    *,
    on_conflict: OnConflict = "skip",
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> CopyReport:
    """Open both databases (the source must exist; the destination is created and migrated like
    `open_store` does) and copy. `total(n)` is called once with the source's row count, then
    `progress(k)` after each batch with the rows it handled."""
    src_target = source if isinstance(source, DatabaseTarget) else parse_target(source)
    dst_target = destination if isinstance(destination, DatabaseTarget) else parse_target(destination)
    if src_target.url == dst_target.url or same_database(src_target, dst_target):
        raise OutputPathError(
            f"source and destination are the same database ({src_target.display()} and "
            f"{dst_target.display()}): name another destination"
        )
    src = await SqlCheckpointStore.open(src_target, create=False)
    try:
        dst = await SqlCheckpointStore.open(dst_target)
        try:
            return await copy_between(
                src, dst, on_conflict=on_conflict, batch_size=batch_size, progress=progress, total=total
            )
        finally:
            await dst.close()
    finally:
        await src.close()


async def copy_between(
    src: SqlCheckpointStore,
    dst: SqlCheckpointStore,
    *,
    on_conflict: OnConflict = "skip",
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> CopyReport:
    """Copy between two open stores; see the module docstring for what happens to each row."""
    if on_conflict not in ON_CONFLICT:
        raise CkptdbError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}")
    if batch_size < 1:
        raise CkptdbError(f"batch size must be at least 1, got {batch_size}")
    report = CopyReport(src.target.display(), dst.target.display(), on_conflict)
    report.source_before = await src.count()
    report.destination_before = await dst.count()
    if total is not None:
        total(report.source_before)
    batch: list[tuple[Any, ...]] = []
    source_rows = f"SELECT {_ALL_COLUMNS} FROM checkpoints ORDER BY {', '.join(sqlrows.ORDER_KEY)}"
    async for row in src.backend.stream(source_rows, (), batch=batch_size):
        batch.append(row)
        if len(batch) >= batch_size:
            await _copy_batch(dst, batch, report)
            if progress is not None:
                progress(len(batch))
            batch = []
    if batch:
        await _copy_batch(dst, batch, report)
        if progress is not None:
            progress(len(batch))
    report.source_after = await src.count()
    report.destination_after = await dst.count()
    return report


async def _existing(dst: SqlCheckpointStore, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    marks = ", ".join("?" * len(ids))
    found = await dst.backend.fetchall(f"SELECT {_ALL_COLUMNS} FROM checkpoints WHERE id IN ({marks})", ids)
    return {row[0]: row for row in found}


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return tuple(a[:_COMPARED]) == tuple(b[:_COMPARED])


def _sound(batch: list[tuple[Any, ...]], report: CopyReport) -> list[tuple[Any, ...]]:
    """The rows that read back as checkpoints; the others are reported as damaged."""
    sound: list[tuple[Any, ...]] = []
    for row in batch:
        reason = damage(row[:-1])  # every column but `source`, as `db check` reads them
        if reason is None:
            sound.append(row)
            continue
        report.damaged += 1
        if len(report.damaged_ids) < MAX_LISTED:
            report.damaged_ids.append((str(row[0]), reason))
    return sound


async def _copy_batch(dst: SqlCheckpointStore, batch: list[tuple[Any, ...]], report: CopyReport) -> None:
    report.read += len(batch)
    batch = _sound(batch, report)
    if not batch:
        return
    existing = await _existing(dst, [row[0] for row in batch])
    new: list[tuple[Any, ...]] = []
    different: list[tuple[Any, ...]] = []
    for row in batch:
        stored = existing.get(row[0])
        if stored is None:
            new.append(row)
        elif _same(row, stored):
            report.unchanged += 1
        else:
            different.append(row)
    if different and report.on_conflict == "fail":
        ids = ", ".join(repr(row[0]) for row in different[:5])
        report.stopped = True
        _note_conflicts(report, different)
        raise CopyConflictError(
            f"{len(different)} checkpoint(s) differ between the databases (ids {ids}); stopped before "
            f"writing this batch, {report.copied} copied before it: rerun with --on-conflict skip to keep "
            "the destination's rows or replace to take the source's (the rerun skips what is copied)",
            report,
        )
    if different and report.on_conflict == "skip":
        _note_conflicts(report, different)
        different = []
    report.copied += await _write(dst, new, replace=False, report=report)
    replaced = await _write(dst, different, replace=True, report=report)
    report.replaced += replaced
    report.conflicts += replaced if report.on_conflict == "replace" else 0


def _note_conflicts(report: CopyReport, rows: list[tuple[Any, ...]]) -> None:
    report.conflicts += len(rows)
    room = MAX_LISTED - len(report.conflict_ids)
    report.conflict_ids.extend(str(row[0]) for row in rows[: max(room, 0)])


async def _write(
    dst: SqlCheckpointStore, rows: list[tuple[Any, ...]], *, replace: bool, report: CopyReport
) -> int:
    """Write rows in one transaction; a row the destination refuses is reported by id, not fatal."""
    refused = await dst.save_rows_refusing(rows, replace=replace, in_save_order=True)
    for checkpoint_id, exc in refused.items():
        _refuse(report, checkpoint_id, exc)
    return len(rows) - len(refused)


def _refuse(report: CopyReport, checkpoint_id: str, exc: InvalidCheckpointError) -> None:
    report.refused += 1
    if len(report.refused_ids) < MAX_LISTED:
        report.refused_ids.append((str(checkpoint_id), exc.reason))
