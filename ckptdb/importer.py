"""Import echo checkpoint directories into a SQL store, losing nothing and claiming nothing false.

Every file found gets exactly one `Outcome`, keyed on the id inside the file, in a fixed order:
each DIR in turn, its top level first, then its subdirectories sorted by relative path, names
sorted by code point. So "the first occurrence of an id wins" means the same thing on every run,
and an interrupted import resumed with the same command ends exactly where an uninterrupted one
would have: committed batches are found "unchanged", the rest is imported.

Rows are written a batch per transaction while the next batches are read and parsed: for big
imports in a helper process (`ckptdb.helper_process.helper_pool`), so parsing uses the second
CPU instead of fighting the database thread for the GIL. Memory stays flat: a few batches in
flight, one directory's sorted names packed into a few strings, nothing per file kept across
batches except the ids seen with `on_conflict="replace"` (to keep the first occurrence) and
content digests in a dry run (where the database cannot remember what this run would have
written).

The work is done in stages, one module each in `ckptdb.importing`: `scan` (which files, in which
order, how many), `parse` (read, check, encode), `decide` (each file's outcome from what is stored),
`write` (a batch per transaction, outcomes made final from what it did) and `report` (outcomes
handed on in order). This module is their one orchestration, driven by both entry points:
`import_directories` (a store the caller opened) and `run_import` (the CLI's whole job).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from ckptdb.canonical import canonical_json
from ckptdb.errors import CkptdbError
from ckptdb.helper_process import PARALLEL_MIN_FILES, helper_pool, init_helper_process
from ckptdb.importing.candidate import Candidate
from ckptdb.importing.decide import Decider
from ckptdb.importing.options import (
    DEFAULT_BATCH_SIZE,
    ON_CONFLICT_CHOICES,
    ImportOptions,
    OnConflict,
    ProgressCallback,
)
from ckptdb.importing.outcomes import (
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_STOPPED,
    MAX_PROBLEMS,
    FileOutcome,
    ImportReport,
    Outcome,
    Status,
)
from ckptdb.importing.parse import ParsedFile, Parser, Parsing, parse_file, parse_files
from ckptdb.importing.report import Reporter, ReportWriter, open_report_file
from ckptdb.importing.row_access import same_content
from ckptdb.importing.scan import ScanPlan, SourceDir, batches, resolve_dirs, scan
from ckptdb.importing.write import BatchWriter, PendingWrite, wants_json_bytes
from ckptdb.printable import printable
from ckptdb.sql.store import SqlCheckpointStore, parse_target
from ckptdb.sql.transfer import has_schema

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_STOPPED",
    "MAX_PROBLEMS",
    "ON_CONFLICT_CHOICES",
    "PARALLEL_MIN_FILES",
    "FileOutcome",
    "ImportOptions",
    "ImportReport",
    "OnConflict",
    "Outcome",
    "ParsedFile",
    "ProgressCallback",
    "ReportWriter",
    "SourceDir",
    "Status",
    "canonical_json",
    "helper_pool",
    "import_directories",
    "init_helper_process",
    "parse_file",
    "parse_files",
    "printable",
    "resolve_dirs",
    "run_import",
    "same_content",
]

StoreOpener = Callable[[bool], contextlib.AbstractAsyncContextManager[SqlCheckpointStore | None]]
"""Given whether the run is dry, the store to import into, for the length of the import."""


async def import_directories(
    store: SqlCheckpointStore | None,
    dirs: Sequence[str | os.PathLike[str]],
    options: ImportOptions | None = None,
    progress_callback: ProgressCallback | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> ImportReport:
    """Import echo checkpoint files from `dirs` into `store`; every file gets one outcome.

    `store` may be None for a dry run against a database that does not exist yet. `on_file` gets
    each outcome as soon as it is final (after its batch committed), in processing order.
    """

    @contextlib.asynccontextmanager
    async def given(dry_run: bool) -> AsyncIterator[SqlCheckpointStore | None]:
        yield store

    return await _orchestrate(dirs, options, progress_callback, given, on_file=on_file)


async def run_import(
    db: str,
    dirs: Sequence[str | os.PathLike[str]],
    options: ImportOptions | None = None,
    *,
    progress_callback: ProgressCallback | None = None,
    report_path: str | os.PathLike[str] | None = None,
) -> ImportReport:
    """The whole `ckptdb import`: check the directories, open (or, unless nothing will be written,
    create) the database, import, write the report file, close."""

    @contextlib.asynccontextmanager
    async def opened(dry_run: bool) -> AsyncIterator[SqlCheckpointStore | None]:
        store = await _open_store(db, dry_run=dry_run)
        try:
            yield store
        finally:
            if store is not None:
                await store.close()

    def report_file(roots: Sequence[SourceDir], options: ImportOptions) -> ReportWriter | None:
        return None if report_path is None else open_report_file(report_path, db, roots, options)

    return await _orchestrate(dirs, options, progress_callback, opened, report_file=report_file)


async def _orchestrate(
    dirs: Sequence[str | os.PathLike[str]],
    options: ImportOptions | None,
    progress: ProgressCallback | None,
    stores: StoreOpener,
    *,
    on_file: Callable[[FileOutcome], None] | None = None,
    report_file: Callable[[Sequence[SourceDir], ImportOptions], ReportWriter | None] | None = None,
) -> ImportReport:
    """The one import: check the DIRs, start the report file, scan, validate (`strict`), start the
    helper process, open the store, run the batches; the report file tells how it ended, however
    it ends."""
    started = time.perf_counter()
    options = options or ImportOptions()
    roots = resolve_dirs(dirs, recursive=options.recursive)
    report = ImportReport(dry_run=options.dry_run)
    writer = None if report_file is None else report_file(roots, options)
    if writer is not None:
        on_file = writer.add
    try:
        plan = scan(roots, options.recursive)
        # Validate before opening: a failed strict run must not even create the database.
        options = await _strict_options(plan, options, progress)
        report.total = plan.total
        helper = helper_pool(report.total, options.parallel)  # before the store starts its threads
        try:
            async with stores(options.dry_run) as store:
                try:
                    if store is None and not options.dry_run:
                        raise CkptdbError(
                            "no store to import into (only a dry run can work without a database)"
                        )
                    await _run_batches(plan, store, options, Reporter(report, on_file, progress), helper)
                finally:
                    report.elapsed = time.perf_counter() - started
        finally:
            if helper is not None:
                helper.shutdown(wait=True, cancel_futures=True)
        if (
            options.strict
            and options.dry_run
            and report.counts[Outcome.INVALID]
            and report.status is Status.COMPLETED
        ):
            report.status = Status.STRICT_FAILED
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.status = Status.INTERRUPTED
        raise
    except BaseException:
        if report.status is Status.COMPLETED:
            report.status = Status.FAILED
        raise
    finally:
        if writer is not None:
            writer.close(report)
    return report


async def _run_batches(
    plan: ScanPlan,
    store: SqlCheckpointStore | None,
    options: ImportOptions,
    reporter: Reporter,
    helper: ProcessPoolExecutor | None,
) -> None:
    """Batch after batch through parse, decide, write and report. Two batches are parsing ahead
    (keeps the helper busy) while one is being written; a batch's ids are looked up only once the
    previous batch committed, since it may hold some of them."""
    report = reporter.report
    parser = Parser(helper, options.dry_run, wants_json_bytes(store))
    decider = Decider(store, options)
    writer = BatchWriter(store, options.on_conflict, report)
    reporter.start()
    parsing: deque[Parsing] = deque()
    to_parse = batches(plan.candidates(), options.batch_size)
    pending: PendingWrite | None = None

    def parse_next() -> None:
        batch = next(to_parse, None)
        if batch is not None:
            parsing.append(parser.submit(batch))

    def stop_at(candidate: Candidate) -> None:
        report.status = Status.STOPPED_ON_CONFLICT
        report.stopped_at = reporter.emit([candidate])

    async def finish(pending: PendingWrite) -> Candidate | None:
        stop = await writer.finish(pending)
        if stop is None:
            reporter.emit(pending.batch)
        return stop

    try:
        parse_next()
        parse_next()
        while parsing:
            batch = await parser.parsed(parsing.popleft())
            parse_next()
            if pending is not None:
                stop = await finish(pending)
                pending = None
                if stop is not None:
                    stop_at(stop)
                    return
            decision = await decider.decide(batch)
            if decision.stop is not None:
                stop_at(decision.stop)
                return
            # Set before the next await: a Ctrl-C there must find the write.
            pending = writer.start([] if options.dry_run else decision.rows, batch)
            if pending.task is not None:
                await asyncio.sleep(0)  # let it hand the transaction to the database thread
        if pending is not None:
            stop = await finish(pending)
            pending = None
            if stop is not None:
                stop_at(stop)
    except asyncio.CancelledError:
        # Ctrl-C: let the batch being committed finish, so that the report tells the truth.
        report.status = Status.INTERRUPTED
        if pending is not None:
            with contextlib.suppress(Exception):  # rolled back: the re-run imports those files
                await finish(pending)
        raise


async def _validate(plan: ScanPlan, options: ImportOptions, progress: ProgressCallback | None) -> int:
    """The first pass of `strict`: parse every candidate, write nothing; returns how many are invalid."""
    invalid = done = 0
    for item in plan.candidates():
        if item.read_from is not None:
            invalid += parse_file(item.read_from, item.source, False).invalid is not None
        invalid += item.outcome is Outcome.INVALID
        done += 1
        if done % options.batch_size == 0:
            if progress is not None:
                progress("validating", done, plan.total)
            await asyncio.sleep(0)  # let a Ctrl-C in
    if progress is not None:
        progress("validating", done, plan.total)
    return invalid


async def _strict_options(
    plan: ScanPlan, options: ImportOptions, progress: ProgressCallback | None
) -> ImportOptions:
    """`strict`'s first pass: with any invalid file, the import becomes a dry run (writes nothing)."""
    if options.strict and not options.dry_run and await _validate(plan, options, progress):
        return replace(options, dry_run=True)
    return options


async def _open_store(db: str, *, dry_run: bool) -> SqlCheckpointStore | None:
    """The store to import into; for a dry run never create anything, and a missing SQLite file
    (or a PostgreSQL database without ckptdb's tables: PostgreSQL databases are never created, only
    their schema) is simply an empty database."""
    if dry_run:
        target = parse_target(db)
        if target.path is not None and not target.path.exists():
            return None
        if target.path is None and not await has_schema(target):
            return None
        return await SqlCheckpointStore.open(target, create=False)
    return await SqlCheckpointStore.open(db)
