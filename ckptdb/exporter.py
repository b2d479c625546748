"""Export checkpoints from a SQL store to an echo directory: one `{id}.json` per checkpoint, byte for
byte what the Rust `FileCheckpointStore` writes, so echo (and `FileCheckpointStore`) reads it back.

Every file is written atomically and durably: its content reaches the disk under a temp name,
and only then is it renamed to `{id}.json`; the directory is fsynced once per batch, after which
the batch's files are reported. On Linux a batch's temp files are made durable by one syncfs(2)
call (one journal commit for the whole batch: fsyncing each file would cap the export at about
1,200 files/s on an ordinary disk, however many threads did it); elsewhere, or with
`fsync_each_file`, each file is written, fsynced and renamed on its own in a pool of
threads, so that many fsyncs share each journal commit.

This process reads and encodes; for big exports a helper process writes (`helper_process.helper_pool`),
so the encoding and the file system's waits overlap without fighting over one GIL.

Existing files are never overwritten with different content unless asked (`overwrite`): a file
holding the same checkpoint is left as it is and counted "unchanged".

Temp files are named `.ckptdb-export-{pid}-{random}.json.tmp` (`ckptdb.outputs.EXPORT_TEMP`): a
kill leaves complete ones behind (3,755 across 11 killed runs before this), so each export first
removes those whose process is gone, and only those: never a user's file or echo's own
`{id}.json.tmp`, never a running export's. Where an export may write at all is
`ckptdb.outputs.check_export_directory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from ckptdb.canonical import canonical_json
from ckptdb.errors import CkptdbError, DamagedRowError, InvalidIdError, StoreError
from ckptdb.files import check_file_id, fsync_directory
from ckptdb.helper_process import helper_pool
from ckptdb.model import Checkpoint
from ckptdb.outputs import check_export_directory, database_files, export_temp_name, stale_export_temps
from ckptdb.printable import printable
from ckptdb.sql.store import SqlCheckpointStore
from ckptdb.store import CheckpointQuery

DEFAULT_BATCH_SIZE = 500
DEFAULT_WRITE_THREADS = 8
MAX_PROBLEMS = 100

EXIT_OK = 0
EXIT_PROBLEMS = 3
"""Some checkpoints were not written: a different file was in the way, or the id cannot be a file name."""

ProgressCallback = Callable[[str, int, int], None]
"""Called as ("exporting", checkpoints done, checkpoints in total)."""


class ExportOutcome(StrEnum):
    EXPORTED = "exported"
    OVERWRITTEN = "overwritten"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class ExportOptions:
    overwrite: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    write_threads: int = DEFAULT_WRITE_THREADS
    fsync_each_file: bool = False
    """fsync every file on its own, even where one file-system sync per batch is available."""
    parallel: bool = True
    """Write big exports from a helper process (see `helper_process.helper_pool`)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise CkptdbError(f"batch size must be 1 or more, got {self.batch_size}")
        if self.write_threads < 1:
            raise CkptdbError(f"write threads must be 1 or more, got {self.write_threads}")


@dataclass(frozen=True, slots=True)
class ExportedFile:
    checkpoint_id: str
    path: str | None  # None when the id cannot be a file name
    outcome: ExportOutcome
    reason: str | None = None


@dataclass(slots=True)
class ExportReport:
    total: int = 0
    counts: dict[ExportOutcome, int] = field(default_factory=lambda: dict.fromkeys(ExportOutcome, 0))
    problems: list[ExportedFile] = field(default_factory=list)
    problems_omitted: int = 0
    interrupted: bool = False
    elapsed: float = 0.0
    stale_temps_removed: int = 0
    """Temp files of earlier, killed exports removed from the directory first."""

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def exit_status(self) -> int:
        not_written = self.counts[ExportOutcome.CONFLICT] + self.counts[ExportOutcome.SKIPPED]
        return EXIT_PROBLEMS if not_written else EXIT_OK

    def add(self, result: ExportedFile) -> None:
        self.counts[result.outcome] += 1
        if result.outcome in (ExportOutcome.CONFLICT, ExportOutcome.SKIPPED):
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(result)
            else:
                self.problems_omitted += 1


def _same_checkpoint(existing: bytes, checkpoint_json: str) -> bool:
    """Whether an existing file holds this checkpoint, in whatever layout (manifest canonical form)."""
    try:
        found = Checkpoint.from_json(existing)
        return canonical_json(found) == checkpoint_json
    except (ValueError, TypeError, RecursionError):
        return False


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return cast(Callable[[int], int], function)


_SYNCFS = _load_syncfs()


def sync_filesystem(directory: Path) -> bool:
    """Make everything written on `directory`'s file system durable in one call (Linux syncfs(2)).

    For a batch of new files that is one journal commit and one disk cache flush, where an fsync
    per file costs one each (measured: about 1,200 files/s at most, however many threads call
    it). False when the call is not available here: the caller then fsyncs each file.
    """
    if _SYNCFS is None:
        return False
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if _SYNCFS(fd) != 0:
            code = ctypes.get_errno()
            if code in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
                return False
            raise StoreError(
                f"cannot sync the files written in {printable(str(directory))}: {os.strerror(code)}"
            )
    finally:
        os.close(fd)
    return True


def _write_temp(directory: Path, name: str, data: bytes) -> Path:
    """`name` written to a fresh temp file beside it (not yet durable, not yet renamed)."""
    tmp = directory / export_temp_name()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {printable(str(directory / name))}: {exc.strerror or exc}") from None
    return tmp


@dataclass(slots=True)
class _Staged:
    result: ExportedFile
    tmp: Path | None = None  # written, waiting for the batch's sync and rename
    target: Path | None = None


_Encoded = tuple[str, str, bytes]
"""A checkpoint ready to write: (id, file name, file content)."""


_NOT_A_FILE = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}


def _stage(directory: Path, item: _Encoded, overwrite: bool, fsync_each: bool) -> _Staged:
    """Decide one file and write it: all the way (temp file, fsync, rename) with
    `fsync_each`, else to a temp file that the batch makes durable and renames."""
    checkpoint_id, name, data = item
    target = directory / name
    shown = printable(str(target))
    existing: bytes | None
    try:
        # O_NONBLOCK: a FIFO of that name would block a plain open forever (no writer comes).
        with open(os.open(target, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            kind = _NOT_A_FILE.get(stat.S_IFMT(os.fstat(handle.fileno()).st_mode))
            if kind is not None:
                reason = f"{kind} of that name is in the way: left as it is"
                return _Staged(ExportedFile(checkpoint_id, shown, ExportOutcome.CONFLICT, reason))
            existing = handle.read()
    except FileNotFoundError:
        existing = None
    except IsADirectoryError:  # open() refuses a directory's descriptor itself
        reason = "a directory of that name is in the way: left as it is"
        return _Staged(ExportedFile(checkpoint_id, shown, ExportOutcome.CONFLICT, reason))
    except OSError as exc:
        reason = f"cannot read the existing file ({exc.strerror or exc}): left as it is"
        return _Staged(ExportedFile(checkpoint_id, shown, ExportOutcome.CONFLICT, reason))
    outcome = ExportOutcome.EXPORTED
    if existing is not None:
        if existing == data:
            return _Staged(ExportedFile(checkpoint_id, shown, ExportOutcome.UNCHANGED))
        canonical = canonical_json(Checkpoint.from_json(data))
        if _same_checkpoint(existing, canonical):
            reason = "holds the same checkpoint in another layout: left as it is"
            return _Staged(ExportedFile(checkpoint_id, shown, ExportOutcome.UNCHANGED, reason))
        if not overwrite:
            reason = "exists with different content: left as it is (--overwrite replaces it)"
            return _Staged(ExportedFile(checkpoint_id, shown, ExportOutcome.CONFLICT, reason))
        outcome = ExportOutcome.OVERWRITTEN
    if fsync_each:
        tmp = _write_temp(directory, name, data)
        try:
            _fsync_file(tmp)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {shown}: {exc.strerror or exc}") from None
        return _Staged(ExportedFile(checkpoint_id, shown, outcome))
    return _Staged(ExportedFile(checkpoint_id, shown, outcome), _write_temp(directory, name, data), target)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_batch(
    directory: Path, items: Sequence[_Encoded], overwrite: bool, fsync_each: bool, threads: int
) -> list[ExportedFile]:
    """Write a batch, atomically and durably, then fsync the directory once (runs in the export's
    helper process, or a thread for small exports).

    Either every file is fsynced on its own by a pool of threads, so that their waits overlap
    (`fsync_each`), or the batch's temp files are written one after the other (threads only
    contend for the directory's lock there: measured twice as slow), made durable together
    (`sync_filesystem`), and only then renamed into place. In both cases a name never points at
    content that is not on disk.
    """
    if not fsync_each:
        return _write_batch(directory, items, overwrite, False, None)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ckptdb-write") as pool:
        return _write_batch(directory, items, overwrite, True, pool)


def _write_batch(
    directory: Path,
    items: Sequence[_Encoded],
    overwrite: bool,
    fsync_each: bool,
    pool: ThreadPoolExecutor | None,
) -> list[ExportedFile]:
    staged: list[_Staged] = []
    try:
        if pool is None:
            for item in items:
                staged.append(_stage(directory, item, overwrite, fsync_each))
        else:
            futures = [pool.submit(_stage, directory, item, overwrite, fsync_each) for item in items]
            failure: BaseException | None = None
            for future in futures:  # collect every success first, so that a failure cleans them all up
                try:
                    staged.append(future.result())
                except BaseException as exc:
                    failure = failure or exc
            if failure is not None:
                raise failure
        if not fsync_each:
            temps = [entry for entry in staged if entry.tmp is not None]
            if temps and not sync_filesystem(directory):
                for entry in temps:
                    assert entry.tmp is not None
                    _fsync_file(entry.tmp)
            for entry in temps:
                assert entry.tmp is not None and entry.target is not None
                try:
                    os.replace(entry.tmp, entry.target)
                except OSError as exc:
                    raise StoreError(
                        f"cannot write {printable(str(entry.target))}: {exc.strerror or exc}"
                    ) from None
                entry.tmp = None
    except BaseException:
        for entry in staged:  # leave no temp file behind a failed batch
            if entry.tmp is not None:
                entry.tmp.unlink(missing_ok=True)
        raise
    results = [entry.result for entry in staged]
    if any(r.outcome in (ExportOutcome.EXPORTED, ExportOutcome.OVERWRITTEN) for r in results):
        fsync_directory(directory)
    return results


def _prepare_directory(given: str | os.PathLike[str], store: SqlCheckpointStore) -> tuple[Path, int]:
    """Check where the export goes (`outputs.check_export_directory`), create it, and remove the
    temp files of killed exports; returns the directory and how many temp files went."""
    check_export_directory(given, databases=database_files(store.target))
    directory = Path(given)
    shown = printable(str(directory))
    try:
        if directory.exists() and not directory.is_dir():
            raise CkptdbError(f"{shown} exists and is not a directory: pass a directory")
        directory.mkdir(parents=True, exist_ok=True)
        stale = stale_export_temps(directory)
        for path in stale:
            path.unlink(missing_ok=True)
        if stale:
            fsync_directory(directory)
    except OSError as exc:
        raise CkptdbError(f"cannot write into {shown}: {exc.strerror or exc}") from None
    return directory, len(stale)


async def export_checkpoints(
    store: SqlCheckpointStore,
    directory: str | os.PathLike[str],
    query: CheckpointQuery | None = None,
    options: ExportOptions | None = None,
    progress_callback: ProgressCallback | None = None,
    on_file: Callable[[ExportedFile], None] | None = None,
) -> ExportReport:
    """Write every checkpoint matching `query` (all of them by default) to `directory` as `{id}.json`.

    The query's `limit` is ignored unless set explicitly; `on_file` gets each result once its
    batch is durable.
    """
    options = options or ExportOptions()
    query = query or CheckpointQuery(limit=None)
    total = await store.count(query)
    helper = helper_pool(total, options.parallel)
    try:
        return await _export(store, directory, query, options, progress_callback, on_file, total, helper)
    finally:
        if helper is not None:
            helper.shutdown(wait=True, cancel_futures=True)


async def _export(
    store: SqlCheckpointStore,
    given: str | os.PathLike[str],
    query: CheckpointQuery,
    options: ExportOptions,
    progress_callback: ProgressCallback | None,
    on_file: Callable[[ExportedFile], None] | None,
    total: int,
    helper: ProcessPoolExecutor | None,
) -> ExportReport:
    target, stale = _prepare_directory(given, store)
    report = ExportReport(total=total, stale_temps_removed=stale)
    started = time.perf_counter()
    if progress_callback is not None:
        progress_callback("exporting", 0, report.total)
    fsync_each = options.fsync_each_file or _SYNCFS is None
    loop = asyncio.get_running_loop()
    local = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ckptdb-export")
    pending: tuple[asyncio.Future[list[ExportedFile]], list[_Encoded]] | None = None

    def emit(results: Sequence[ExportedFile]) -> None:
        if not results:
            return
        for result in results:
            report.add(result)
            if on_file is not None:
                on_file(result)
        if progress_callback is not None:
            progress_callback("exporting", report.done, report.total)

    def drop_helper() -> None:
        """The helper process could not start (an unguarded main script?): write from here."""
        nonlocal helper
        if helper is not None:
            helper.shutdown(wait=False, cancel_futures=True)
        helper = None

    def write(items: list[_Encoded]) -> asyncio.Future[list[ExportedFile]]:
        args = (target, items, options.overwrite, fsync_each, options.write_threads)
        if helper is not None:
            try:
                return loop.run_in_executor(helper, write_batch, *args)
            except BrokenProcessPool:
                drop_helper()
        return loop.run_in_executor(local, write_batch, *args)

    async def finish() -> None:
        """Wait for the batch being written (shielded: a Ctrl-C waits for it), then report it."""
        nonlocal pending
        assert pending is not None
        job, items = pending
        try:
            results = await asyncio.shield(job)
        except BrokenProcessPool:
            drop_helper()
            results = await asyncio.shield(write(items))
        pending = None
        emit(results)

    async def flush(batch: list[Checkpoint]) -> None:
        nonlocal pending
        items: list[_Encoded] = []
        unsafe: list[ExportedFile] = []
        for checkpoint in batch:  # encode here while the previous batch is being written
            try:
                name = check_file_id(checkpoint.id) + ".json"
            except InvalidIdError as exc:
                unsafe.append(ExportedFile(checkpoint.id, None, ExportOutcome.SKIPPED, printable(str(exc))))
                continue
            items.append((checkpoint.id, name, checkpoint.to_json_bytes()))
        if pending is not None:
            await finish()
        emit(unsafe)
        pending = (write(items), items)

    try:
        batch: list[Checkpoint] = []
        damaged: list[ExportedFile] = []

        def skip_damaged(exc: DamagedRowError) -> None:
            reason = printable(f"damaged row, not exported ({exc.reason}): `ckptdb db check` lists every one")
            damaged.append(ExportedFile(str(exc.checkpoint_id), None, ExportOutcome.SKIPPED, reason))

        async for checkpoint in store.iter_checkpoints(query, on_damaged=skip_damaged):
            if damaged:
                emit(damaged)
                damaged.clear()
            batch.append(checkpoint)
            if len(batch) >= options.batch_size:
                await flush(batch)
                batch = []
        if batch:
            await flush(batch)
        if pending is not None:
            await finish()
        emit(damaged)
    except asyncio.CancelledError:
        report.interrupted = True
        if pending is not None:  # finish the batch being written: its files are then durable
            with contextlib.suppress(Exception):
                await finish()
        raise
    finally:
        local.shutdown(wait=True)
        report.elapsed = time.perf_counter() - started
    return report


async def run_export(
    db: str,
    directory: str | os.PathLike[str],
    query: CheckpointQuery | None = None,
    options: ExportOptions | None = None,
    *,
    progress_callback: ProgressCallback | None = None,
) -> ExportReport:
    """The whole `ckptdb export`: open the existing database (never create one), export, close.

    The matches are counted on a connection closed again before the helper process is forked, so
    the fork happens while this process runs no database threads (see `helper_process.helper_pool`).
    """
    options = options or ExportOptions()
    query = query or CheckpointQuery(limit=None)
    store = await SqlCheckpointStore.open(db, readonly=True)
    try:
        total = await store.count(query)
    finally:
        await store.close()
    helper = helper_pool(total, options.parallel)
    try:
        store = await SqlCheckpointStore.open(db, readonly=True)
        try:
            return await _export(store, directory, query, options, progress_callback, None, total, helper)
        finally:
            await store.close()
    finally:
        if helper is not None:
            helper.shutdown(wait=True, cancel_futures=True)


def report_json(report: ExportReport) -> dict[str, Any]:
    return {
        "checkpoints": report.total,
        **{outcome.value: count for outcome, count in report.counts.items()},
        "interrupted": report.interrupted,
        "stale_temps_removed": report.stale_temps_removed,
        "seconds": round(report.elapsed, 3),
    }
