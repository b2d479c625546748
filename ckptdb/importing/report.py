"""The report stage: outcomes made final, in processing order, to the report's tally, the caller's
`on_file`, the progress callback and (for the CLI) the JSON report file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ckptdb.importing.candidate import Candidate
from ckptdb.importing.options import ImportOptions, ProgressCallback
from ckptdb.importing.outcomes import FileOutcome, ImportReport
from ckptdb.importing.scan import SourceDir
from ckptdb.outputs import AtomicTextFile, check_output_file, database_files
from ckptdb.printable import printable
from ckptdb.sql.store import parse_target


class Reporter:
    """Hands final outcomes on, batch by batch, once their batch committed."""

    def __init__(
        self,
        report: ImportReport,
        on_file: Callable[[FileOutcome], None] | None,
        progress: ProgressCallback | None,
    ) -> None:
        self.report = report
        self._on_file = on_file
        self._progress = progress

    def start(self) -> None:
        if self._progress is not None:
            self._progress("importing", 0, self.report.total)

    def emit(self, items: Sequence[Candidate]) -> FileOutcome | None:
        """Make the candidates' outcomes final (their batch committed); returns the last one."""
        outcome = None
        for item in items:
            outcome = item.final()
            self.report.add(outcome)
            if self._on_file is not None:
                self._on_file(outcome)
        if self._progress is not None:
            self._progress("importing", self.report.done, self.report.total)
        return outcome


class ReportWriter:
    """Writes the JSON report as outcomes arrive (so memory stays flat), then the summary.

    Layout: {"report": "ckptdb-import", "database", "dirs", "options", "started_at",
    "files": [{"path", "relative", "outcome", "id", "reason"}, ...], "summary": {...}}.
    The file is written under a temp name and renamed onto `path` by `close` (see
    `ckptdb.outputs.AtomicTextFile`): what `path` named stays untouched until the import ends.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.path = Path(path)
        self._file = AtomicTextFile(path, option="--report")
        self._first = True
        head = json.dumps(header, ensure_ascii=False, indent=2)[:-2]  # drop the closing "\n}"
        self._file.write(head + ',\n  "files": [')

    def add(self, outcome: FileOutcome) -> None:
        self._file.write("\n    " if self._first else ",\n    ")
        self._first = False
        self._file.write(json.dumps(outcome.to_json(), ensure_ascii=False))

    def close(self, report: ImportReport) -> None:
        summary = json.dumps(report.summary_json(), ensure_ascii=False, indent=2).replace("\n", "\n  ")
        self._file.write(("\n  " if not self._first else "") + '],\n  "summary": ' + summary + "\n}\n")
        self._file.commit()


def open_report_file(
    path: str | os.PathLike[str], db: str, roots: Sequence[SourceDir], options: ImportOptions
) -> ReportWriter:
    """Check where the report goes (never onto the database or into a DIR read), and start it."""
    check_output_file(
        path,
        option="--report",
        databases=database_files(db),
        source_dirs=[root.given for root in roots],
        recursive=options.recursive,
    )
    header = {
        "report": "ckptdb-import",
        "database": parse_target(db).display(),
        "dirs": [printable(root.given) for root in roots],
        "options": options.to_json(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    return ReportWriter(path, header)
