"""`ckptdb copy --from URL --to URL`: move every checkpoint between databases (SQLite <-> PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ckptdb.cli.common import exit_statuses, run, tolerate_unencodable_output
from ckptdb.cli.options import batch_size_option, on_conflict_option, quiet_option, report_option
from ckptdb.cli.progress import Progress
from ckptdb.exit_status import ExitStatus

if TYPE_CHECKING:
    from ckptdb.copy import CopyReport


COPY_HELP = """Copy every checkpoint from one database to another, e.g. an SQLite file to PostgreSQL.

Streams in batches (one transaction each), so memory stays flat and an interrupted copy can
simply be run again: rows already there with the same content are left alone. Both sides are
counted at the end.

""" + exit_statuses(
    "Exit status (the same table as import's):",
    {
        ExitStatus.OK: "every source row is in the destination as it is in the source",
        ExitStatus.ERROR: "error (a database unusable, ...): nothing of the failing batch was written",
        ExitStatus.USAGE: "usage: a bad option, or --report naming one of the databases' files",
        ExitStatus.PROBLEMS: "some rows were in conflict (kept, or replaced: the report names them), were\n"
        "damaged in the source or refused by the destination, or the counts differ",
        ExitStatus.STOPPED: "stopped: --on-conflict fail met a conflict (earlier batches stay committed)",
        ExitStatus.INTERRUPTED: "interrupted: the batches copied so far stay; run the same command again",
    },
)


@click.command("copy", help=COPY_HELP)
@click.option("--from", "source", required=True, metavar="PATH|URL", help="Database to read (must exist).")
@click.option(
    "--to",
    "destination",
    required=True,
    metavar="PATH|URL",
    help="Database to write (an SQLite file is created; a PostgreSQL database must exist).",
)
@on_conflict_option(
    "Same id, different content: keep the destination's row (and report it), take the source's, "
    "or stop before writing that batch."
)
@batch_size_option(default=500, most=20_000, help="Rows per transaction.")
@report_option("Also write the outcome as JSON to this file, at the end (never either database).")
@quiet_option("No progress bar and no summary (errors still print).")
@click.pass_context
def copy(
    ctx: click.Context,
    source: str,
    destination: str,
    on_conflict: str,
    batch_size: int,
    report_path: Path | None,
    quiet: bool,
) -> None:
    from ckptdb.copy import CopyConflictError, copy_checkpoints
    from ckptdb.outputs import check_output_file, database_files

    tolerate_unencodable_output()

    async def job() -> CopyReport:
        if report_path is not None:  # before anything is opened: a refusal touches nothing
            databases = [*database_files(source), *database_files(destination)]
            check_output_file(report_path, option="--report", databases=databases)
        try:
            report = await copy_checkpoints(
                source,
                destination,
                on_conflict=on_conflict,  # type: ignore[arg-type]
                batch_size=batch_size,
                progress=progress.advance,
                total=progress.total,
            )
        except CopyConflictError as exc:
            _write_report(report_path, exc.report)
            raise
        _write_report(report_path, report)
        return report

    with Progress.for_command(quiet) as progress:
        report = run(job())
    if not quiet:
        click.echo(report.summary())
    if report.exit_status:
        if quiet:
            click.echo(report.summary(), err=True)
        ctx.exit(report.exit_status)


def _write_report(path: Path | None, report: CopyReport) -> None:
    """The report, written whole at the end (temp file, fsync, rename)."""
    from ckptdb.outputs import write_text_atomic

    if path is not None:
        write_text_atomic(path, json.dumps(report.to_json(), indent=2) + "\n", option="--report")
