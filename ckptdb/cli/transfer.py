"""`ckptdb import` and `ckptdb export`: move echo checkpoint directories into the database and back.

Thin: the work is in `ckptdb.importer` and `ckptdb.exporter`; these commands turn options into a
call, draw the progress bar, and print the outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from ckptdb.cli.common import db_url, exit_statuses, run, tolerate_unencodable_output
from ckptdb.cli.options import (
    batch_size_option,
    filter_options,
    on_conflict_option,
    quiet_option,
    report_option,
)
from ckptdb.cli.output import plural
from ckptdb.cli.progress import Progress
from ckptdb.exit_status import ExitStatus

if TYPE_CHECKING:
    from ckptdb.exporter import ExportReport
    from ckptdb.importer import ImportReport

PROBLEM_LINES = 20
QUIET_HELP = "No progress bar and no per-file lines; only the summary."

IMPORT_EPILOG = exit_statuses(
    "Exit status (the same table as copy's):",
    {
        ExitStatus.OK: "every file was imported, unchanged, or skipped (*.json.tmp, not .json)",
        ExitStatus.ERROR: "error (no such directory, database unusable, ...): nothing more was done",
        ExitStatus.USAGE: "usage: a bad option, or --report naming the database or a source file",
        ExitStatus.PROBLEMS: "some files were invalid or in conflict; all other valid files were imported",
        ExitStatus.STOPPED: "stopped: --strict found invalid files (nothing written), or --on-conflict fail\n"
        "met a conflict (earlier batches stay committed)",
        ExitStatus.INTERRUPTED: "interrupted: the batches committed so far stay; run the same command again",
    },
)

EXPORT_EPILOG = exit_statuses(
    "Exit status:",
    {
        ExitStatus.OK: "every matching checkpoint was written (or an identical file was already there)",
        ExitStatus.ERROR: "error: nothing more was done",
        ExitStatus.USAGE: "usage: DIR is empty, a file system root, holds the database or files that\n"
        "are not echo checkpoints",
        ExitStatus.PROBLEMS: "some checkpoints were not written: a different file is in the way (use\n"
        "--overwrite), or the id cannot be a file name",
        ExitStatus.INTERRUPTED: "interrupted: the files written so far are complete; run it again to finish",
    },
)


def _counts(counts: dict[Any, int]) -> str:
    return ", ".join(f"{count} {outcome.value}" for outcome, count in counts.items())


def _print_problems(lines: list[tuple[str, str, str | None]], omitted: int) -> None:
    for kind, where, reason in lines[:PROBLEM_LINES]:
        click.echo(f"{kind:<9} {where}: {reason}")
    more = len(lines) - PROBLEM_LINES + omitted
    if more > 0:
        click.echo(f"... and {more} more (--report FILE lists every file)")


def _print_import(report: ImportReport, quiet: bool) -> None:
    from ckptdb.importer import Status

    if not quiet:
        problems = [(p.outcome.value, p.path, p.reason) for p in report.problems]
        _print_problems(problems, report.problems_omitted)
    prefix = "dry run, nothing written: " if report.dry_run else ""
    if report.status is Status.STRICT_FAILED:
        prefix = "--strict: invalid files found, nothing written; an import would give: "
    total = f"{report.total} {plural(report.total, 'file')}"
    click.echo(f"{prefix}{total}: {_counts(report.counts)} ({report.elapsed:.1f} s)")
    if report.status is Status.STOPPED_ON_CONFLICT and report.stopped_at is not None:
        click.echo(
            f"stopped at {report.stopped_at.path} (--on-conflict fail): earlier batches are committed, "
            f"{report.not_processed} files not processed; resolve the conflict or choose skip/replace"
        )


@click.command("import", epilog=IMPORT_EPILOG)
@click.argument("dirs", nargs=-1, required=True, metavar="DIR [DIR...]")
@click.option(
    "-r", "--recursive", is_flag=True, help="Also read subdirectories (symlinks are never followed)."
)
@click.option("-n", "--dry-run", is_flag=True, help="Write nothing; report what would happen.")
@click.option("--strict", is_flag=True, help="Validate every file first; write nothing if any is invalid.")
@on_conflict_option("Same id already stored with different content: keep it, replace it, or stop.")
@batch_size_option(
    default=1000,
    most=100_000,
    help="Files per transaction (a kill loses at most one batch; re-run to finish).",
)
@report_option(
    "Write every file's outcome to this JSON file, at the end (never the database or a source).",
    writable=True,
)
@quiet_option(QUIET_HELP)
@click.pass_context
def import_command(
    ctx: click.Context,
    dirs: tuple[str, ...],
    recursive: bool,
    dry_run: bool,
    strict: bool,
    on_conflict: str,
    batch_size: int,
    report_path: Path | None,
    quiet: bool,
) -> None:
    """Import echo checkpoint files (*.json) from each DIR into the database.

    Keys on the id inside each file and records each row's source path. Safe to re-run: files
    already imported are "unchanged", so an interrupted import is finished by running it again.
    """
    from ckptdb.importer import ImportOptions, OnConflict, run_import

    tolerate_unencodable_output()
    mode = cast(OnConflict, on_conflict)  # click.Choice allowed only these
    options = ImportOptions(
        recursive=recursive, dry_run=dry_run, strict=strict, on_conflict=mode, batch_size=batch_size
    )
    with Progress.for_command(quiet) as bar:
        progress = bar.phase
        job = run_import(db_url(), dirs, options, progress_callback=progress, report_path=report_path)
        report = run(job)
    _print_import(report, quiet)
    ctx.exit(report.exit_status)


def _print_export(report: ExportReport, quiet: bool) -> None:
    if not quiet:
        problems = [(p.outcome.value, p.path or f"id {p.checkpoint_id!r}", p.reason) for p in report.problems]
        _print_problems(problems, report.problems_omitted)
    total = f"{report.total} {plural(report.total, 'checkpoint')}"
    click.echo(f"{total}: {_counts(report.counts)} ({report.elapsed:.1f} s)")


@click.command("export", epilog=EXPORT_EPILOG)
@click.argument("directory", metavar="DIR")
@filter_options
@click.option("--overwrite", is_flag=True, help="Replace existing files whose content differs.")
@batch_size_option(default=500, most=100_000, help="Files per directory fsync.")
@quiet_option(QUIET_HELP)
@click.pass_context
def export_command(
    ctx: click.Context,
    directory: str,
    graph: str | None,
    node: str | None,
    types: tuple[str, ...],
    since: str | None,
    until: str | None,
    conditions: tuple[str, ...],
    overwrite: bool,
    batch_size: int,
    quiet: bool,
) -> None:
    """Write checkpoints to DIR as echo files {id}.json (atomic and fsynced), newest first.

    The Rust FileCheckpointStore and ckptdb's FileCheckpointStore read them back. Existing
    files holding the same checkpoint are left alone and counted "unchanged".
    """
    from ckptdb.exporter import ExportOptions, run_export
    from ckptdb.inspect import build_query

    async def export() -> ExportReport:
        query = build_query(graph=graph, node=node, types=types, since=since, until=until, where=conditions)
        return await run_export(
            db_url(), directory, query, ExportOptions(overwrite, batch_size), progress_callback=progress
        )

    tolerate_unencodable_output()
    with Progress.for_command(quiet) as bar:
        progress = bar.phase
        report = run(export())
    _print_export(report, quiet)
    ctx.exit(report.exit_status)
