"""Import echo checkpoint directories into a SQL store, losing nothing and claiming nothing false.

Every file found gets exactly one `Outcome`, keyed on the id inside the file, in a fixed order:
each DIR in turn, its top level first, then its subdirectories sorted by relative path, names
sorted by code point. So "the first occurrence of an id wins" means the same thing on every run,
and an interrupted import resumed with the same command ends exactly where an uninterrupted one
would have: committed batches are found "unchanged", the rest is imported.

Rows are written a batch per transaction while the next batches are read and parsed: for big
imports in a helper process (`helper_pool`), so parsing uses the second CPU instead of fighting
the database thread for the GIL. Memory stays flat: a few batches in flight, one directory's
sorted names packed into a few strings, nothing per file kept across batches except the ids seen
with `on_conflict="replace"` (to keep the first occurrence) and content digests in a dry run
(where the database cannot remember what this run would have written).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import heapq
import json
import multiprocessing
import os
import signal
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from ckptdb.errors import CkptdbError, InvalidCheckpointError
from ckptdb.exit_status import ExitStatus
from ckptdb.model import Checkpoint
from ckptdb.outputs import AtomicTextFile, check_output_file, database_files
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.backend import DatabaseTarget, InsertResult, Resolve, Row
from ckptdb.sql.engines import open_backend, parse_target
from ckptdb.sql.store import SqlCheckpointStore

OnConflict = Literal["skip", "replace", "fail"]
ON_CONFLICT_CHOICES: tuple[OnConflict, ...] = ("skip", "replace", "fail")
DEFAULT_BATCH_SIZE = 1000
MAX_PROBLEMS = 100
"""Invalid and conflicting files kept in `ImportReport.problems`; a report file lists them all."""

EXIT_OK = ExitStatus.OK
EXIT_PROBLEMS = ExitStatus.PROBLEMS
"""Some files were invalid or in conflict; every other valid file was imported."""
EXIT_STOPPED = ExitStatus.STOPPED
"""Stopped before writing: `strict` found invalid files (nothing written), or `on_conflict="fail"`
met a conflict (earlier batches stay committed; nothing of the conflicting batch was written)."""

ProgressCallback = Callable[[str, int, int], None]
"""Called as (phase, files done, files in total); phase is "validating" or "importing"."""


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
class ImportOptions:
    recursive: bool = False
    dry_run: bool = False
    strict: bool = False
    on_conflict: OnConflict = "skip"
    batch_size: int = DEFAULT_BATCH_SIZE
    parallel: bool = True
    """Parse big imports in a helper process (see `helper_pool`; forked on Linux, spawned elsewhere,
    where a script must then guard its entry point with `if __name__ == "__main__":`)."""

    def __post_init__(self) -> None:
        if self.on_conflict not in ON_CONFLICT_CHOICES:
            choices = ", ".join(ON_CONFLICT_CHOICES)
            raise CkptdbError(f"on_conflict must be one of {choices}, got {self.on_conflict!r}")
        if self.batch_size < 1:
            raise CkptdbError(f"batch size must be 1 or more, got {self.batch_size}")

    def to_json(self) -> dict[str, Any]:
        return {
            "recursive": self.recursive,
            "dry_run": self.dry_run,
            "strict": self.strict,
            "on_conflict": self.on_conflict,
            "batch_size": self.batch_size,
        }


def printable(text: str) -> str:
    """Text safe to print or write as UTF-8: undecodable file-name bytes (surrogate-escaped by `os`)
    and lone surrogates are spelled as backslash escapes instead of failing later."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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


# ── finding the files ─────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class SourceDir:
    """One DIR argument: as given (for messages), absolute (for `source`), resolved (for symlinks)."""

    given: str
    absolute: str
    real: str

    def contains(self, real_path: str) -> bool:
        return real_path == self.real or real_path.startswith(self.real.rstrip(os.sep) + os.sep)


def resolve_dirs(dirs: Sequence[str | os.PathLike[str]], *, recursive: bool) -> list[SourceDir]:
    """Check the DIR arguments: existing directories, none given twice, and (with `recursive`)
    none inside another one, whose files would be read twice."""
    if not dirs:
        raise CkptdbError("no directory given: pass at least one DIR")
    found: list[SourceDir] = []
    for given in dirs:
        text = os.fspath(given)
        if not os.path.isdir(text):
            what = "does not exist" if not os.path.lexists(text) else "is not a directory"
            raise CkptdbError(f"{printable(text)} {what}: pass a directory of echo checkpoint files")
        source = SourceDir(text, os.path.abspath(text), os.path.realpath(text))
        for other in found:
            if other.real == source.real:
                raise CkptdbError(
                    f"{printable(other.given)} and {printable(text)} are the same directory: pass it once"
                )
            for inner, outer in ((source, other), (other, source)):
                if recursive and outer.contains(inner.real):
                    raise CkptdbError(
                        f"{printable(inner.given)} is inside {printable(outer.given)}: with --recursive its "
                        "files would be read twice; pass only the outer one"
                    )
        found.append(source)
    return found


_CHUNK = 4096


def _unpack(packed: str) -> Iterator[str]:
    start, end = 0, len(packed)
    while start < end:
        stop = packed.find("\0", start)
        if stop < 0:
            stop = end
        yield packed[start:stop]
        start = stop + 1


@dataclass(slots=True)
class _Listing:
    """One directory's entry names, sorted. Held as sorted chunks packed into strings (no file name
    holds NUL) and merged on the fly: a few bytes per name instead of a str object each, and never
    more than one chunk of name objects alive, so 100,000 names cost about 4 MB, not 14."""

    chunks: list[str]
    special: set[str]  # names that are not plain regular files (symlinks, FIFOs, ...)
    subdirs: list[str]

    def names(self) -> Iterator[str]:
        if len(self.chunks) == 1:
            return _unpack(self.chunks[0])
        return heapq.merge(*(_unpack(chunk) for chunk in self.chunks))

    def count(self) -> int:
        return sum(chunk.count("\0") + 1 for chunk in self.chunks)


def _list_dir(path: str) -> _Listing:
    chunks: list[str] = []
    names: list[str] = []
    special: set[str] = set()
    subdirs: list[str] = []
    try:
        with os.scandir(path) as entries:
            for entry in entries:  # d_type: no stat per entry
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                    continue
                names.append(entry.name)
                if not entry.is_file(follow_symlinks=False):
                    special.add(entry.name)
                if len(names) >= _CHUNK:
                    names.sort()
                    chunks.append("\0".join(names))
                    names = []
    except OSError as exc:
        raise CkptdbError(f"cannot list {printable(path)}: {exc.strerror or exc}") from None
    if names:
        names.sort()
        chunks.append("\0".join(names))
    subdirs.sort()
    return _Listing(chunks, special, subdirs)


_Loops = dict[str, str]
"""A directory's subdirectories that are not entered because each is one of its own ancestors
(a bind mount of a parent, say): name -> the relative path it was read under ("" for DIR)."""


def _dir_order(root: SourceDir, recursive: bool) -> list[tuple[str, _Loops]]:
    """Relative directories in processing order: "" (the top) first, then sorted by relative path;
    each with the subdirectories it leads back to (see `_Loops`), found by (st_dev, st_ino).

    Symlinked directories are never entered: the Rust store reads one directory, never a tree,
    so nothing of echo's asks for them, and they could lead out of DIR (each is reported, so a
    person can pass its target as a DIR of its own). That leaves only loops of real directories
    (bind mounts): each directory's identity is compared with those of its ancestors."""
    if not recursive:
        return [("", {})]
    found: dict[str, _Loops] = {"": {}}
    stack: list[tuple[str, dict[tuple[int, int], str]]] = [("", _identity(root.absolute, ""))]
    while stack:
        rel, ancestors = stack.pop()
        for sub in _list_dir(os.path.join(root.absolute, rel)).subdirs:
            child = f"{rel}/{sub}" if rel else sub
            here = _identity(os.path.join(root.absolute, child), child)
            looped = next((ancestors[key] for key in here if key in ancestors), None)
            if looped is not None:
                found[rel][sub] = looped
                continue
            found[child] = {}
            stack.append((child, {**ancestors, **here}))
    return [(rel, found[rel]) for rel in sorted(found, key=lambda rel: (rel != "", rel))]


def _identity(path: str, rel: str) -> dict[tuple[int, int], str]:
    """{(st_dev, st_ino): rel} of a directory; empty if it cannot be read (its listing says why)."""
    try:
        info = os.stat(path)  # DIR itself may be a symlink; below it only real directories come here
    except OSError:
        return {}
    return {(info.st_dev, info.st_ino): rel}


@dataclass(slots=True)
class _Item:
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
    first: _Item | None = None  # the item of this batch whose row for the same id is in the write


_TMP_REASON = "leftover temp file of an interrupted save: never read"
_NOT_JSON_REASON = "not a .json file"


def _special_kind(path: str, name: str, recursive: bool) -> tuple[Outcome | None, str | None]:
    """For an entry that is not a plain file: (outcome, reason) when decided without reading,
    (None, file to read) for a symlink to a regular file, (None, None) when not reported.

    A symlinked `*.json` file is read wherever it points, as the Rust store's `list()` reads it
    (`read_to_string` follows links). What that read would skip in silence is reported here: a
    dangling link or a loop (invalid), a link to a directory or to something that is not a
    regular file (skipped). Without `recursive` a link to a directory is reported only when its
    name makes it a candidate (`*.json`); otherwise it is a directory in all but name."""
    if os.path.islink(path):
        target = printable(os.path.realpath(path))
        try:
            info: os.stat_result | None = os.stat(path)  # through the link, as the Rust read goes
            failure: OSError | None = None
        except OSError as exc:
            info, failure = None, exc
        if info is not None and stat.S_ISDIR(info.st_mode):
            if recursive:
                return Outcome.SKIPPED, (
                    f"symlink to the directory {target}: not followed (--recursive reads real "
                    "subdirectories only; pass that directory as a DIR of its own to read it)"
                )
            if not name.endswith(".json"):
                return None, None
            return Outcome.SKIPPED, f"symlink to the directory {target}: not a checkpoint file"
        if name.endswith(".json.tmp"):
            return Outcome.SKIPPED, _TMP_REASON
        if not name.endswith(".json"):
            return Outcome.SKIPPED, _NOT_JSON_REASON
        if failure is not None:
            return Outcome.INVALID, _broken_link(target, failure)
        assert info is not None
        if not stat.S_ISREG(info.st_mode):
            return Outcome.SKIPPED, "symlink to something that is not a regular file: never read"
        return None, path
    if name.endswith(".json.tmp"):
        return Outcome.SKIPPED, _TMP_REASON
    if not name.endswith(".json"):
        return Outcome.SKIPPED, _NOT_JSON_REASON
    return Outcome.SKIPPED, "not a regular file (a FIFO, socket or device is never read)"


def _broken_link(target: str, failure: OSError) -> str:
    if failure.errno == errno.ELOOP:
        return "symlink loop: the link leads back to itself and never reaches a file"
    if failure.errno in (errno.ENOENT, errno.ENOTDIR):
        return f"broken symlink: its target {target} does not exist"
    return f"cannot follow the symlink to {target}: {failure.strerror or failure}"


def _make_item(root: SourceDir, rel_dir: str, name: str, special: bool, recursive: bool) -> _Item | None:
    relative = f"{rel_dir}/{name}" if rel_dir else name
    full = os.path.join(root.absolute, relative)
    item = _Item(printable(os.path.join(root.given, relative)), printable(relative), printable(full))
    if special:
        outcome, detail = _special_kind(full, name, recursive)
        if outcome is None and detail is None:
            return None
        if outcome is None:
            item.read_from = detail
        else:
            item.outcome, item.reason = outcome, detail
    elif name.endswith(".json.tmp"):
        item.outcome, item.reason = Outcome.SKIPPED, _TMP_REASON
    elif not name.endswith(".json"):
        item.outcome, item.reason = Outcome.SKIPPED, _NOT_JSON_REASON
    else:
        item.read_from = full
    return item


def _loop_item(root: SourceDir, rel_dir: str, name: str, first: str) -> _Item:
    relative = f"{rel_dir}/{name}" if rel_dir else name
    full = os.path.join(root.absolute, relative)
    item = _Item(printable(os.path.join(root.given, relative)), printable(relative), printable(full))
    shown = printable(os.path.join(root.given, first)) if first else printable(root.given)
    item.outcome = Outcome.SKIPPED
    item.reason = f"directory loop: the same directory as {shown} (a bind mount?): not read again"
    return item


def _listings(
    roots: Sequence[SourceDir], recursive: bool
) -> Iterator[tuple[SourceDir, str, _Listing, _Loops]]:
    """Each directory's listing, in processing order.

    Every pass over the files (the count for progress and the report's total, `strict`'s
    validation, the import) lists the directories again instead of keeping the listings: one
    directory's names are held at a time, so memory stays flat however big the tree (the names
    of a 100,000-file directory take about 4 MB packed, and a tree may hold many such). A listing
    costs little next to reading the files: 13 ms for 20,000 names (getdents, no stat; measured
    with a warm cache), where importing them takes 2-4 s. A file added or removed between two
    passes can make the count differ from the outcomes by that much."""
    for root in roots:
        for rel_dir, loops in _dir_order(root, recursive):
            yield root, rel_dir, _list_dir(os.path.join(root.absolute, rel_dir)), loops


def count_files(roots: Sequence[SourceDir], recursive: bool) -> int:
    """How many entries will get an outcome (for progress and ETA)."""
    total = 0
    for root, rel_dir, listing, loops in _listings(roots, recursive):
        total += listing.count() + len(loops)
        for name in listing.special:
            if _make_item(root, rel_dir, name, True, recursive) is None:
                total -= 1
    return total


def _iter_items(roots: Sequence[SourceDir], recursive: bool) -> Iterator[_Item]:
    """Every reported entry, in processing order: a directory's files (names sorted), then the
    subdirectories of it that lead back to where the walk came from."""
    for root, rel_dir, listing, loops in _listings(roots, recursive):
        special = listing.special
        for name in listing.names():
            item = _make_item(root, rel_dir, name, name in special, recursive)
            if item is not None:
                yield item
        for name, first in sorted(loops.items()):
            yield _loop_item(root, rel_dir, name, first)


def _batches(items: Iterator[_Item], size: int) -> Iterator[list[_Item]]:
    batch: list[_Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# ── reading and comparing ─────────────────────────────────────────────────────────────────────────


def _reason(exc: InvalidCheckpointError) -> str:
    return f"field '{exc.field}': {exc.reason}" if exc.field else exc.reason


def canonical_json(checkpoint: Checkpoint) -> str:
    """The fixtures manifest's canonical form (keys sorted at every level, compact, raw UTF-8):
    equal checkpoints give equal text, whatever the file's layout or key order."""
    return json.dumps(
        checkpoint.to_document(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def _digest(checkpoint: Checkpoint) -> bytes:
    text = canonical_json(checkpoint).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=16).digest()


def same_content(new: tuple[Any, ...], stored: tuple[Any, ...]) -> bool:
    """Whether two rows hold the same checkpoint: equal columns, or else equal canonical JSON (a
    hand edit may reorder keys inside the state; that changes nothing). A huge JSON text of the
    new row is UTF-8 bytes (`rows.to_row` with `json_bytes`), the stored one a str."""
    if new[:11] == stored[:11]:
        return True
    if all(
        a == b or (type(a) is bytes and type(b) is str and a == b.encode("utf-8", "surrogatepass"))
        for a, b in zip(new[:11], stored[:11], strict=True)
    ):
        return True
    return canonical_json(sqlrows.from_row(new[:11])) == canonical_json(sqlrows.from_row(stored[:11]))


def _read_file(path: str) -> bytes:
    """The whole file, with three system calls for a typical one (about half of `open().read()`)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)  # one byte more than expected: a file that grew shows it
        if len(data) == size:
            return data
        chunks = [data]  # grew, shrank, or a short read (one read stops near 2 GiB): read to the end
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


_Parsed = tuple[str | None, tuple[Any, ...] | None, bytes | None, str | None]
"""One file read: (id, row, canonical digest or None, None), or (None, None, None, why it is invalid)."""


def parse_file(read_from: str, source: str, want_digest: bool, json_bytes: bool = False) -> _Parsed:
    """Read, parse and encode one candidate file (runs in the parser process for big imports).
    `json_bytes`: see `rows.to_row` (a huge file's row then holds its JSON once, as bytes)."""
    try:
        data = _read_file(read_from)
    except OSError as exc:
        return None, None, None, f"cannot read: {exc.strerror or exc}"
    try:
        checkpoint = Checkpoint.from_json(data)
        row = sqlrows.to_row(checkpoint, source, json_bytes=json_bytes)
    except InvalidCheckpointError as exc:
        return None, None, None, printable(_reason(exc))
    except (ValueError, TypeError, RecursionError) as exc:  # one odd file must not stop 100,000
        return None, None, None, printable(f"not a readable checkpoint ({type(exc).__name__}: {exc})")
    return checkpoint.id, row, _digest(checkpoint) if want_digest else None, None


def parse_files(
    jobs: Sequence[tuple[str, str]], want_digest: bool, json_bytes: bool = False
) -> list[_Parsed]:
    """`parse_file` for each (file to read, source); the unit of work sent to the parser process."""
    return [parse_file(read_from, source, want_digest, json_bytes) for read_from, source in jobs]


def _jobs(batch: Sequence[_Item]) -> list[tuple[str, str]]:
    return [(item.read_from, item.source) for item in batch if item.read_from is not None]


def _apply(batch: Sequence[_Item], parsed: Sequence[_Parsed]) -> None:
    """Give the batch's candidates what the parser found (in the order `_jobs` listed them)."""
    results = iter(parsed)
    for item in batch:
        if item.read_from is None:
            continue
        item.checkpoint_id, item.row, item.digest, invalid = next(results)
        if invalid is not None:
            item.outcome, item.reason = Outcome.INVALID, invalid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # killed but not yet reaped by its parent: a zombie is as good as gone
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _exit_with(pid: int) -> None:
    while _alive(pid):
        time.sleep(0.25)
    os._exit(0)


def init_helper_process(owner_pid: int) -> None:
    """Set up a helper process (the import's parser, the export's writer). Ctrl-C is the owner's
    to handle (it stops its helpers cleanly). And a helper must not outlive its owner: if the owner
    is killed, a pool worker would wait for work forever (it holds its own queue's write end),
    keeping its forkserver alive."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(owner_pid,), daemon=True, name="ckptdb-watch").start()


PARALLEL_MIN_FILES = 2000
"""Below this many files a helper process costs more to start than it saves."""


def _ready() -> int:
    return os.getpid()


def helper_pool(total: int, enabled: bool) -> ProcessPoolExecutor | None:
    """One helper process, started now, when there are two CPUs to share and enough files to pay
    for it; None otherwise (the work then stays in this process).

    Why a process and not a thread: the import's parsing (and the export's encoding) is pure
    Python, and the database thread, or the file-writing threads, release and retake the GIL around
    every row or system call; next to a busy thread each retake waits, and threaded pipelines
    measured no faster than no overlap at all.

    On Linux the helper is forked: it shares this process's pages, and unlike `forkserver` or
    `spawn` it never re-runs the main module (an unguarded script would run its own top level again
    in the child). Call this before opening a store where possible, while the process has no other
    threads; the child only parses or writes files, never touches inherited database handles, and
    ends with `os._exit`. Elsewhere `spawn` is used (and a script must guard its entry point).
    """
    if not enabled or total < PARALLEL_MIN_FILES or (os.cpu_count() or 1) < 2:
        return None
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(1, context, initializer=init_helper_process, initargs=(os.getpid(),))
    pool.submit(_ready).result()  # fork now, not later from a thread-laden moment
    return pool


# ── the import ────────────────────────────────────────────────────────────────────────────────────

_REPLACED = "replaced by this file (--on-conflict replace)"
_KEPT = "kept the stored one (--on-conflict replace overwrites it)"


def _source_of(row: Row) -> str:
    return printable(row[11]) if row[11] else "an earlier save"


class _ConflictStop(CkptdbError):
    """`on_conflict="fail"` inside a batch's transaction: an id absent when the batch was read is
    stored now, with different content. Raised to roll the batch back; never leaves the importer."""

    def __init__(self, checkpoint_id: str, row: Row) -> None:
        super().__init__(f"id {checkpoint_id}: stored meanwhile with different content")
        self.checkpoint_id = checkpoint_id
        self.row = row


_Content = tuple[Any, ...] | bytes  # a row, or (dry runs) a canonical digest
_Prior = tuple[_Content | None, str, bool]


@dataclass(slots=True)
class _Importer:
    store: SqlCheckpointStore | None
    options: ImportOptions
    report: ImportReport
    on_file: Callable[[FileOutcome], None] | None
    progress: ProgressCallback | None
    helper: ProcessPoolExecutor | None = None  # parses batches when given (see `helper_pool`)
    seen: set[str] = field(default_factory=set)  # on_conflict="replace": ids decided by this run
    dry_seen: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # dry run: id -> (digest, path)

    def emit(self, items: Sequence[_Item]) -> FileOutcome | None:
        """Make the items' outcomes final (their batch committed); returns the last one."""
        outcome = None
        for item in items:
            assert item.outcome is not None
            outcome = FileOutcome(item.path, item.relative, item.outcome, item.checkpoint_id, item.reason)
            self.report.add(outcome)
            if self.on_file is not None:
                self.on_file(outcome)
        if self.progress is not None:
            self.progress("importing", self.report.done, self.report.total)
        return outcome

    def _same(self, item: _Item, prior: _Content) -> bool:
        if isinstance(prior, bytes):
            return item.digest == prior
        assert item.row is not None
        if self.options.dry_run:
            return item.digest == _digest(sqlrows.from_row(prior[:11]))
        return same_content(item.row, prior)

    def _kept_digest(self, item: _Item, kept: _Content) -> bytes:
        if isinstance(kept, bytes):
            return kept
        if kept is item.row:
            assert item.digest is not None
            return item.digest
        return _digest(sqlrows.from_row(kept[:11]))

    def _prior(
        self, cid: str, batch: dict[str, tuple[_Content, str]], stored: dict[str, tuple[Any, ...]]
    ) -> _Prior:
        """What the id holds before this item: (content or None, where it came from, whether this run
        already decided the id: then the first occurrence wins, whatever on_conflict says)."""
        if cid in batch:
            return (*batch[cid], True)
        if cid in self.dry_seen:
            return (*self.dry_seen[cid], True)
        existing = stored.get(cid)
        where = printable(existing[11]) if existing is not None and existing[11] else "an earlier save"
        return existing, where, cid in self.seen

    async def decide(self, items: list[_Item]) -> tuple[list[tuple[Any, ...]], _Item | None]:
        """Give each parsed item its outcome; return the rows to write, and the item that stops
        the run (on_conflict="fail") if one does."""
        valid = [item for item in items if item.outcome is None]
        if not valid:
            return [], None
        options = self.options
        stored: dict[str, tuple[Any, ...]] = {}
        if self.store is not None:
            stored = await self.store.load_rows([item.checkpoint_id for item in valid if item.checkpoint_id])
        batch: dict[str, tuple[_Content, str]] = {}  # id -> (content it has now, the file it came from)
        writing: dict[str, _Item] = {}  # id -> the item whose row the batch writes for it
        rows: list[tuple[Any, ...]] = []
        for item in valid:
            cid, row = item.checkpoint_id, item.row
            assert cid is not None and row is not None
            prior, where, in_run = self._prior(cid, batch, stored)
            item.first = writing.get(cid)  # judged against that row, until the write says what landed
            kept: _Content
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
                    return rows, item
                if in_run:
                    why = "the first one is kept"
                elif options.on_conflict == "replace":
                    why = _REPLACED
                    rows.append(row)
                    item.wrote = not options.dry_run
                    writing[cid] = item
                    kept = row
                else:
                    why = _KEPT
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
        return rows, None

    def _resolver(self, rows: list[Row]) -> Resolve | None:
        """What the batch's transaction does with ids it finds stored (some were absent when the
        batch was read: another process wrote them since): `replace` overwrites those with
        different content, `fail` rolls the batch back at the first such id, `skip` keeps them."""
        on_conflict = self.options.on_conflict
        if on_conflict == "skip":
            return None

        def resolve(stored: Mapping[str, Row]) -> list[Row]:
            differ = [row for row in rows if row[0] in stored and not same_content(row, stored[row[0]])]
            if differ and on_conflict == "fail":
                raise _ConflictStop(differ[0][0], stored[differ[0][0]])
            return differ

        return resolve

    async def _write(self, rows: list[Row]) -> _Written:
        """Write a batch's rows in one transaction; what the database did comes back row by row.
        A row the database cannot hold (PostgreSQL: U+0000 in an id or name) is left out, and the
        refused ones come back (id -> why)."""
        assert self.store is not None
        result, refused = await self.store.insert_rows_refusing(rows, self._resolver(rows))
        return result, {cid: printable(_reason(exc)) for cid, exc in refused.items()}

    def _judge(self, item: _Item, row: Row) -> None:
        """The outcome of a file whose id the write found stored: unchanged or a kept conflict."""
        assert item.row is not None
        where = _source_of(row)
        if same_content(item.row, row):
            item.outcome, item.reason = Outcome.UNCHANGED, printable(f"same checkpoint as {where}")
            return
        held = f"id {item.checkpoint_id} is already stored (from {where})"
        item.outcome, item.reason = Outcome.CONFLICT, printable(f"{held} with different content: {_KEPT}")

    def _settle(self, items: Sequence[_Item], result: InsertResult, refused: dict[str, str]) -> None:
        """Every outcome from what the batch's transaction did, not from the read that planned it:
        an id that another process wrote in between is unchanged or a conflict, never imported.
        A later file of the batch with the same id was judged against the first one's row; where
        that row did not land, it is judged again against what did."""
        self.report.written += len(result.inserted) + len(result.replaced)
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
                held = f"id {cid} is already stored (from {_source_of(result.stored[cid])})"
                item.outcome = Outcome.CONFLICT
                item.reason = printable(f"{held} with different content: {_REPLACED}")
                self.report.replaced += 1
                landed.add(cid)
            else:
                self._judge(item, result.stored[cid])
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
            if self.options.on_conflict == "skip" or same_content(item.row, row):
                self._judge(item, row)

    def _stopped_by(self, items: Sequence[_Item], stop: _ConflictStop) -> _Item:
        """`fail` met a conflict inside the batch's transaction, which rolled back: the file it stops at."""
        item = next(item for item in items if item.wrote and item.checkpoint_id == stop.checkpoint_id)
        held = f"id {stop.checkpoint_id} is already stored (from {_source_of(stop.row)})"
        item.outcome = Outcome.CONFLICT
        item.reason = printable(
            f"{held} with different content: stopped here (--on-conflict fail); "
            "nothing of this batch was written"
        )
        return item

    async def _finish(self, pending: _Pending) -> _Item | None:
        """Wait for a batch's transaction, then make its outcomes final; returns the item that
        stops the run if `fail` met a conflict there. The write is shielded: a Ctrl-C must not
        cut the wait short and leave the report saying less than was committed."""
        task, items = pending
        if task is not None:
            try:
                result, refused = await asyncio.shield(task)
            except _ConflictStop as stop:
                return self._stopped_by(items, stop)
            self._settle(items, result, refused)
        self.emit(items)
        return None

    def _stop(self, item: _Item) -> None:
        self.report.status = Status.STOPPED_ON_CONFLICT
        self.report.stopped_at = self.emit([item])

    async def run(self, roots: Sequence[SourceDir]) -> None:
        options, report = self.options, self.report
        want_digest = options.dry_run
        json_bytes = self.store is not None and self.store.backend.json_bytes
        pending: _Pending | None = None
        if self.progress is not None:
            self.progress("importing", 0, report.total)
        pool = self.helper
        loop = asyncio.get_running_loop()
        parsing: deque[tuple[list[_Item], asyncio.Future[list[_Parsed]] | None]] = deque()
        batches = _batches(_iter_items(roots, options.recursive), options.batch_size)

        def submit() -> None:
            """Queue the next batch for the parser process (two ahead keep it busy)."""
            nonlocal pool
            batch = next(batches, None)
            if batch is None:
                return
            job = None
            if pool is not None:
                try:
                    job = loop.run_in_executor(pool, parse_files, _jobs(batch), want_digest, json_bytes)
                except BrokenProcessPool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = None
            parsing.append((batch, job))

        async def parsed(batch: list[_Item], job: asyncio.Future[list[_Parsed]] | None) -> list[_Parsed]:
            nonlocal pool
            if job is not None:
                try:
                    return await job
                except BrokenProcessPool:  # the process could not start (an unguarded main script?)
                    if pool is not None:
                        pool.shutdown(wait=False, cancel_futures=True)
                    pool = None
            return parse_files(_jobs(batch), want_digest, json_bytes)

        try:
            submit()
            submit()
            while parsing:
                batch, job = parsing.popleft()
                _apply(batch, await parsed(batch, job))
                submit()
                if pending is not None:
                    # The previous batch must be committed before looking ids up: it may hold some.
                    stop = await self._finish(pending)
                    pending = None
                    if stop is not None:
                        self._stop(stop)
                        return
                rows, stop = await self.decide(batch)
                if stop is not None:
                    self._stop(stop)
                    return
                task = None
                if rows and not options.dry_run:
                    task = asyncio.create_task(self._write(rows))
                pending = (task, batch)  # before the next await: a Ctrl-C there must find the write
                if task is not None:
                    await asyncio.sleep(0)  # let it hand the transaction to the database thread
            if pending is not None:
                stop = await self._finish(pending)
                pending = None
                if stop is not None:
                    self._stop(stop)
        except asyncio.CancelledError:
            # Ctrl-C: let the batch being committed finish, so that the report tells the truth.
            report.status = Status.INTERRUPTED
            if pending is not None:
                with contextlib.suppress(Exception):  # rolled back: the re-run imports those files
                    await self._finish(pending)
            raise


_Written = tuple[InsertResult, dict[str, str]]
"""What a batch write did: (the database's result row by row, refused id -> why)."""
_Pending = tuple["asyncio.Task[_Written] | None", list[_Item]]
"""A batch whose rows are being written: (the write, its items)."""


async def _validate(
    roots: Sequence[SourceDir], options: ImportOptions, progress: ProgressCallback | None
) -> int:
    """The first pass of `strict`: parse every candidate, write nothing; returns how many are invalid."""
    total = count_files(roots, options.recursive) if progress is not None else 0
    invalid = done = 0
    for item in _iter_items(roots, options.recursive):
        if item.read_from is not None:
            invalid += parse_file(item.read_from, item.source, False)[3] is not None
        invalid += item.outcome is Outcome.INVALID
        done += 1
        if done % options.batch_size == 0:
            if progress is not None:
                progress("validating", done, total)
            await asyncio.sleep(0)  # let a Ctrl-C in
    if progress is not None:
        progress("validating", done, total)
    return invalid


async def _strict_options(
    roots: Sequence[SourceDir], options: ImportOptions, progress_callback: ProgressCallback | None
) -> ImportOptions:
    """`strict`'s first pass: with any invalid file, the import becomes a dry run (writes nothing)."""
    if options.strict and not options.dry_run and await _validate(roots, options, progress_callback):
        return replace(options, dry_run=True)
    return options


async def _import_roots(
    store: SqlCheckpointStore | None,
    roots: Sequence[SourceDir],
    options: ImportOptions,
    progress_callback: ProgressCallback | None,
    on_file: Callable[[FileOutcome], None] | None,
    report: ImportReport,
    started: float,
    helper: ProcessPoolExecutor | None,
) -> ImportReport:
    try:
        if store is None and not options.dry_run:
            raise CkptdbError("no store to import into (only a dry run can work without a database)")
        if not report.total:
            report.total = count_files(roots, options.recursive)
        importer = _Importer(store, options, report, on_file, progress_callback, helper)
        await importer.run(roots)
    finally:
        report.elapsed = time.perf_counter() - started
    if (
        options.strict
        and options.dry_run
        and report.counts[Outcome.INVALID]
        and report.status is Status.COMPLETED
    ):
        report.status = Status.STRICT_FAILED
    return report


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
    started = time.perf_counter()
    options = options or ImportOptions()
    roots = resolve_dirs(dirs, recursive=options.recursive)
    report = ImportReport(dry_run=options.dry_run)
    options = await _strict_options(roots, options, progress_callback)
    report.total = count_files(roots, options.recursive)
    helper = helper_pool(report.total, options.parallel)
    try:
        return await _import_roots(store, roots, options, progress_callback, on_file, report, started, helper)
    finally:
        if helper is not None:
            helper.shutdown(wait=True, cancel_futures=True)


# ── the report file, and the whole job for the CLI ───────────────────────────────────────────────


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


async def _open_store(db: str, *, dry_run: bool) -> SqlCheckpointStore | None:
    """The store to import into; for a dry run never create anything, and a missing SQLite file
    (or a PostgreSQL database without ckptdb's tables: PostgreSQL databases are never created, only
    their schema) is simply an empty database."""
    if dry_run:
        target = parse_target(db)
        if target.path is not None and not target.path.exists():
            return None
        if target.path is None and not await _has_schema(target):
            return None
        return await SqlCheckpointStore.open(target, create=False)
    return await SqlCheckpointStore.open(db)


async def _has_schema(target: DatabaseTarget) -> bool:
    """Whether the database holds any ckptdb table yet (connecting creates nothing)."""
    backend = open_backend(target)
    await backend.connect(create=False)
    try:
        has_tables, revision = await backend.schema_revision()
    finally:
        await backend.close()
    return has_tables or revision is not None


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
    started = time.perf_counter()
    options = options or ImportOptions()
    roots = resolve_dirs(dirs, recursive=options.recursive)
    report = ImportReport(dry_run=options.dry_run)
    writer: ReportWriter | None = None
    if report_path is not None:
        check_output_file(
            report_path,
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
        writer = ReportWriter(report_path, header)
    try:
        # Validate before opening: a failed strict run must not even create the database.
        options = await _strict_options(roots, options, progress_callback)
        report.total = count_files(roots, options.recursive)
        helper = helper_pool(report.total, options.parallel)  # before the store starts its threads
        try:
            store = await _open_store(db, dry_run=options.dry_run)
            on_file = None if writer is None else writer.add
            try:
                await _import_roots(
                    store, roots, options, progress_callback, on_file, report, started, helper
                )
            finally:
                if store is not None:
                    await store.close()
        finally:
            if helper is not None:
                helper.shutdown(wait=True, cancel_futures=True)
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
