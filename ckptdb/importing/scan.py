"""The scan stage: which files an import reads, in which order, and how many there are.

The order is fixed (see `ckptdb.importer`): each DIR in turn, its top level first, then its
subdirectories sorted by relative path, names sorted by code point. `scan` walks the tree once:
that walk yields the directory order, each directory's count of reported entries (for progress
and the report's total) and the subdirectories that lead back to an ancestor. `ScanPlan.candidates`
then lists each directory a second time, while the import goes.

Why a directory is listed twice and not kept from the walk: one directory's names are held at a
time, so memory stays flat however big the tree (the names of a 100,000-file directory take about
4 MB packed, and a tree may hold many such). A listing costs little next to reading the files:
13 ms for 20,000 names (getdents, no stat; measured with a warm cache), where importing them takes
2-4 s. `strict`'s validation pass lists them once more. A file added or removed between two
listings can make the count differ from the outcomes by that much.
"""

from __future__ import annotations

import errno
import heapq
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ckptdb.errors import CkptdbError
from ckptdb.importing.candidate import Candidate
from ckptdb.importing.outcomes import Outcome
from ckptdb.printable import printable


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


Loops = dict[str, str]
"""A directory's subdirectories that are not entered because each is one of its own ancestors
(a bind mount of a parent, say): name -> the relative path it was read under ("" for DIR)."""


def _identity(path: str, rel: str) -> dict[tuple[int, int], str]:
    """{(st_dev, st_ino): rel} of a directory; empty if it cannot be read (its listing says why)."""
    try:
        info = os.stat(path)  # DIR itself may be a symlink; below it only real directories come here
    except OSError:
        return {}
    return {(info.st_dev, info.st_ino): rel}


@dataclass(frozen=True, slots=True)
class DirPlan:
    """One directory to import, as the walk found it."""

    root: SourceDir
    relative: str  # "" for DIR itself
    loops: Loops
    reported: int  # entries that get an outcome: its files, then its loops

    @property
    def path(self) -> str:
        return os.path.join(self.root.absolute, self.relative)


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """Every directory of an import in processing order, and how many entries will get an outcome."""

    dirs: list[DirPlan]
    recursive: bool

    @property
    def total(self) -> int:
        return sum(plan.reported for plan in self.dirs)

    def candidates(self) -> Iterator[Candidate]:
        """Every reported entry, in processing order: a directory's files (names sorted), then the
        subdirectories of it that lead back to where the walk came from. Lists each directory
        again (see the module's docstring for why)."""
        recursive = self.recursive
        for plan in self.dirs:
            listing = _list_dir(plan.path)
            special = listing.special
            for name in listing.names():
                item = _make_item(plan.root, plan.relative, name, name in special, recursive)
                if item is not None:
                    yield item
            for name, first in sorted(plan.loops.items()):
                yield _loop_item(plan.root, plan.relative, name, first)


def scan(roots: Sequence[SourceDir], recursive: bool) -> ScanPlan:
    """Walk every DIR once (see `_walk`): the plan the import follows."""
    return ScanPlan([plan for root in roots for plan in _walk(root, recursive)], recursive)


def _walk(root: SourceDir, recursive: bool) -> list[DirPlan]:
    """The directories of one DIR in processing order: "" (the top) first, then sorted by relative
    path; each with the subdirectories it leads back to (see `Loops`), found by (st_dev, st_ino),
    and its count of reported entries, taken from the same listing.

    Symlinked directories are never entered: the Rust store reads one directory, never a tree,
    so nothing of echo's asks for them, and they could lead out of DIR (each is reported, so a
    person can pass its target as a DIR of its own). That leaves only loops of real directories
    (bind mounts): each directory's identity is compared with those of its ancestors."""
    found: dict[str, tuple[Loops, int]] = {}
    stack: list[tuple[str, dict[tuple[int, int], str]]] = [
        ("", _identity(root.absolute, "") if recursive else {})
    ]
    while stack:
        rel, ancestors = stack.pop()
        listing = _list_dir(os.path.join(root.absolute, rel))
        loops: Loops = {}
        found[rel] = (loops, _reported(root, rel, listing, recursive))
        if not recursive:
            break
        for sub in listing.subdirs:
            child = f"{rel}/{sub}" if rel else sub
            here = _identity(os.path.join(root.absolute, child), child)
            looped = next((ancestors[key] for key in here if key in ancestors), None)
            if looped is not None:
                loops[sub] = looped
                continue
            stack.append((child, {**ancestors, **here}))
    order = sorted(found, key=lambda rel: (rel != "", rel))
    return [DirPlan(root, rel, found[rel][0], found[rel][1] + len(found[rel][0])) for rel in order]


def _reported(root: SourceDir, rel_dir: str, listing: _Listing, recursive: bool) -> int:
    """How many of a listing's entries get an outcome (some symlinks are not reported)."""
    dropped = sum(_make_item(root, rel_dir, name, True, recursive) is None for name in listing.special)
    return listing.count() - dropped


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


def _make_item(root: SourceDir, rel_dir: str, name: str, special: bool, recursive: bool) -> Candidate | None:
    relative = f"{rel_dir}/{name}" if rel_dir else name
    full = os.path.join(root.absolute, relative)
    item = Candidate(printable(os.path.join(root.given, relative)), printable(relative), printable(full))
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


def _loop_item(root: SourceDir, rel_dir: str, name: str, first: str) -> Candidate:
    relative = f"{rel_dir}/{name}" if rel_dir else name
    full = os.path.join(root.absolute, relative)
    item = Candidate(printable(os.path.join(root.given, relative)), printable(relative), printable(full))
    shown = printable(os.path.join(root.given, first)) if first else printable(root.given)
    item.outcome = Outcome.SKIPPED
    item.reason = f"directory loop: the same directory as {shown} (a bind mount?): not read again"
    return item


def batches(items: Iterator[Candidate], size: int) -> Iterator[list[Candidate]]:
    batch: list[Candidate] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
