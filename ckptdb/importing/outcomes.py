"""What an import found: each file's outcome, the run's status, and their tally (`ImportReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ckptdb.exit_status import ExitStatus

MAX_PROBLEMS = 100
"""Invalid and conflicting files kept in `ImportReport.problems`; a report file lists them all."""

EXIT_OK = ExitStatus.OK
EXIT_PROBLEMS = ExitStatus.PROBLEMS
"""Some files were invalid or in conflict; every other valid file was imported."""
EXIT_STOPPED = ExitStatus.STOPPED
"""Stopped before writing: `strict` found invalid files (nothing written), or `on_conflict="fail"`
met a conflict (earlier batches stay committed; nothing of the conflicting batch was written)."""


class Outcome(StrEnum):
    """What happened to one file."""

    IMPORTED = "imported"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    INVALID = "invalid"
    SKIPPED = "skipped"


class Status(StrEnum):
    COMPLETED = "completed"
    STRICT_FAILED = "strict-failed"
    STOPPED_ON_CONFLICT = "stopped-on-conflict"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """One file's outcome. `path` is DIR as given joined with `relative` ("/"-separated)."""

    path: str
    relative: str
    outcome: Outcome
    checkpoint_id: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "relative": self.relative,
            "outcome": self.outcome.value,
            "id": self.checkpoint_id,
            "reason": self.reason,
        }


@dataclass(slots=True)
class ImportReport:
    """Counts per outcome and the first `MAX_PROBLEMS` invalid or conflicting files."""

    total: int = 0
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    problems: list[FileOutcome] = field(default_factory=list)
    problems_omitted: int = 0
    written: int = 0
    replaced: int = 0
    status: Status = Status.COMPLETED
    dry_run: bool = False
    stopped_at: FileOutcome | None = None
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def not_processed(self) -> int:
        """Files given no outcome: after a stop or an interruption."""
        return max(0, self.total - self.done)

    @property
    def exit_status(self) -> int:
        if self.status in (Status.STRICT_FAILED, Status.STOPPED_ON_CONFLICT):
            return EXIT_STOPPED
        if self.counts[Outcome.INVALID] or self.counts[Outcome.CONFLICT]:
            return EXIT_PROBLEMS
        return EXIT_OK

    def add(self, outcome: FileOutcome) -> None:
        self.counts[outcome.outcome] += 1
        if outcome.outcome in (Outcome.INVALID, Outcome.CONFLICT):
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(outcome)
            else:
                self.problems_omitted += 1

    def summary_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "dry_run": self.dry_run,
            "exit_status": self.exit_status,
            "files": self.total,
            **{outcome.value: count for outcome, count in self.counts.items()},
            "not_processed": self.not_processed,
            "rows_written": self.written,
            "rows_replaced": self.replaced,
            "stopped_at": None if self.stopped_at is None else self.stopped_at.path,
            "seconds": round(self.elapsed, 3),
        }
