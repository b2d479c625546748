"""Where a command may write its own files (`--report FILE`, `export DIR`), and writing them safely.

An output path is checked before any work starts, because a report opened for writing used to
empty whatever it named first: the database (`import --report app.db` left a 0-byte database and
exit status 0), the source of a copy, or a checkpoint file the import was about to read. A path
can name one file in many spellings (relative, `..`, a symlink, a hard link, a bind mount), so two
paths are the same file when their resolved paths are equal OR their (st_dev, st_ino) are.

Reports are written to a temp file beside their final name, fsynced and renamed at the end, so
a crash or a refusal never leaves a truncated report, and an existing file is replaced whole or
not at all.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ckptdb.errors import CkptdbError
from ckptdb.files import fsync_directory
from ckptdb.sql.backend import DatabaseTarget
from ckptdb.sql.engines import parse_target

SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")
"""An SQLite database is its file plus these (WAL mode, shared memory, a rollback journal)."""

EXPORT_TEMP = re.compile(r"^\.ckptdb-export-(?P<pid>[0-9]+)-[0-9a-f]{8}\.json\.tmp$")
"""The names of `ckptdb export`'s temp files: hidden, and ending `.json.tmp` so that echo, the
file store and `ckptdb import` ignore one left by a kill. Only names of this exact form are ever
removed, and only when the process named in them is gone (see `stale_export_temps`)."""


class OutputPathError(CkptdbError):
    """An output path that would overwrite the database, a source, or something else it must not
    touch. A usage error: nothing was read or written."""

    exit_status = 2


@dataclass(frozen=True, slots=True)
class _Identity:
    resolved: Path
    inode: tuple[int, int] | None  # (st_dev, st_ino) when the path exists


def _identity(path: str | os.PathLike[str]) -> _Identity:
    resolved = Path(os.path.realpath(os.path.abspath(os.fspath(path))))
    try:
        info = os.stat(resolved)
    except OSError:
        return _Identity(resolved, None)
    return _Identity(resolved, (info.st_dev, info.st_ino))


def _same(a: _Identity, b: _Identity) -> bool:
    return a.resolved == b.resolved or (a.inode is not None and a.inode == b.inode)


def database_files(target: str | Path | DatabaseTarget) -> list[Path]:
    """The files a database consists of (none for PostgreSQL: the server keeps them)."""
    parsed = target if isinstance(target, DatabaseTarget) else parse_target(target)
    if parsed.path is None:
        return []
    return [Path(f"{parsed.path}{suffix}") for suffix in SQLITE_COMPANIONS]


def same_database(a: str | Path | DatabaseTarget, b: str | Path | DatabaseTarget) -> bool:
    """Whether two SQLite targets share a file under different names (a symlink, a hard link, or
    one naming the other's `-wal`): a copy between them would read and write one database."""
    files_a = [_identity(path) for path in database_files(a)]
    return any(_same(x, _identity(path)) for path in database_files(b) for x in files_a)


def _shown(path: str | os.PathLike[str]) -> str:
    """A path as a message may print it: undecodable name bytes spelled as backslash escapes."""
    text = os.fspath(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _files_under(directory: Path, recursive: bool) -> Iterator[tuple[int, int]]:
    """(st_dev, st_ino) of every regular file an import of `directory` could read."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    yield from _files_under(Path(entry.path), recursive)
                continue
            info = entry.stat(follow_symlinks=True)
        except OSError:
            continue
        yield (info.st_dev, info.st_ino)


def check_output_file(
    path: str | os.PathLike[str],
    *,
    option: str,
    databases: Iterable[Path] = (),
    source_dirs: Iterable[str | os.PathLike[str]] = (),
    recursive: bool = False,
) -> None:
    """Refuse an output file that is one of the database files, lies in a directory being read,
    or is (by any name) a file being read. Raises `OutputPathError`; touches nothing."""
    out = _identity(path)
    shown = _shown(path)
    if out.resolved.is_dir():
        raise OutputPathError(f"{option} {shown} is a directory: name a file to write")
    for database in databases:
        if _same(out, _identity(database)):
            raise OutputPathError(
                f"{option} {shown} is the database file {_shown(database)}: writing it would destroy the "
                f"database; name another file"
            )
    parent = out.resolved.parent
    for source in source_dirs:
        root = _identity(source)
        inside = _is_within(parent, root.resolved) if recursive else parent == root.resolved
        if inside or _same(_identity(parent), root):
            raise OutputPathError(
                f"{option} {shown} is inside {_shown(source)}, a directory being read (a source is never "
                "modified): name a file outside it"
            )
        if out.inode is not None and out.inode in set(_files_under(root.resolved, recursive)):
            raise OutputPathError(
                f"{option} {shown} is a file in {_shown(source)} under another name (a link): writing it "
                "would change a source file; name another file"
            )


def check_export_directory(directory: str | os.PathLike[str], *, databases: Iterable[Path] = ()) -> None:
    """Where `ckptdb export` may write: a new or empty directory, or an echo checkpoint directory
    (nothing in it but `*.json` and `*.json.tmp` files, and subdirectories). Refused: an empty
    path (it used to mean the current directory), a file system root, a directory holding the
    database, and one holding anything else (a home directory, a source tree): an export there
    would scatter thousands of files among someone's own."""
    text = os.fspath(directory)
    if not text.strip():
        raise OutputPathError("export: the directory is an empty path: name the directory to write to")
    shown = _shown(text)
    target = _identity(text)
    if target.resolved == Path(target.resolved.anchor):
        raise OutputPathError(f"export: {shown} is a file system root: name a directory of its own")
    for database in databases:
        if _same(_identity(database.parent), target) and os.path.lexists(database):
            raise OutputPathError(
                f"export: {shown} holds the database {_shown(database)}: export into another directory"
            )
    try:
        entries = list(os.scandir(target.resolved))
    except (FileNotFoundError, NotADirectoryError):
        return  # created later, or refused there as "not a directory"
    except OSError:
        return  # unreadable: the write says why, in one line
    for entry in sorted(entries, key=lambda e: e.name):
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            continue
        if entry.name.endswith((".json", ".json.tmp")) and not entry.name.startswith("."):
            continue
        if EXPORT_TEMP.match(entry.name):
            continue
        raise OutputPathError(
            f"export: {shown} holds {_shown(entry.name)}, which is not an echo checkpoint file: export into "
            "a new or empty directory, or an echo checkpoint directory (only *.json files)"
        )


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, another user's
    return True


def export_temp_name() -> str:
    """A temp file name for one export file, proving it ckptdb export's and naming its process."""
    return f".ckptdb-export-{os.getpid()}-{secrets.token_hex(4)}.json.tmp"


def stale_export_temps(directory: Path) -> list[Path]:
    """Temp files left in `directory` by an export that was killed: names of `EXPORT_TEMP`'s form
    whose process no longer runs. A user's file, echo's `{id}.json.tmp` leftovers, and the temp
    files of an export still running (into the same directory) never match."""
    found: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return found
    for entry in entries:
        match = EXPORT_TEMP.match(entry.name)
        if match is None or _alive(int(match["pid"])):
            continue
        with suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                found.append(Path(entry.path))
    return found


class AtomicTextFile:
    """A text file written under a temp name beside `path`, and renamed onto `path` (after an
    fsync) only by `commit()`: until then whatever `path` names is untouched, and `discard()`
    (or a crash) leaves it as it was."""

    def __init__(self, path: str | os.PathLike[str], *, option: str) -> None:
        self.path = Path(path)
        self.option = option
        self.tmp = self.path.parent / f".{self.path.name}.ckptdb-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        self._remove_stale()
        try:
            self.file: IO[str] = open(  # noqa: SIM115 (closed by commit or discard)
                self.tmp, "x", encoding="utf-8", errors="backslashreplace"
            )
        except OSError as exc:
            raise CkptdbError(self._cannot(exc)) from None

    def _remove_stale(self) -> None:
        """Remove this file's temp files left by a killed run (same name, a process that is gone)."""
        pattern = re.compile(rf"^\.{re.escape(self.path.name)}\.ckptdb-(?P<pid>[0-9]+)-[0-9a-f]{{8}}\.tmp$")
        try:
            entries = list(os.scandir(self.path.parent))
        except OSError:
            return
        for entry in entries:
            match = pattern.match(entry.name)
            if match is not None and not _alive(int(match["pid"])):
                with suppress(OSError):
                    os.unlink(entry.path)

    def _cannot(self, exc: OSError) -> str:
        return f"cannot write {self.option} {_shown(self.path)}: {exc.strerror or exc}"

    def write(self, text: str) -> None:
        try:
            self.file.write(text)
        except OSError as exc:
            self.discard()
            raise CkptdbError(self._cannot(exc)) from None

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise CkptdbError(self._cannot(exc)) from None
        with suppress(OSError):
            fsync_directory(self.path.parent)

    def discard(self) -> None:
        with suppress(OSError):
            self.file.close()
        with suppress(OSError):
            self.tmp.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str, *, option: str) -> None:
    """Write a whole text file atomically (see `AtomicTextFile`)."""
    out = AtomicTextFile(path, option=option)
    out.write(text)
    out.commit()
