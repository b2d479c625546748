"""The echo directory format itself: one `{id}.json` per checkpoint, as the Rust store keeps them.

Differences from the original, on purpose: every write is fsynced (file, then directory) so a
power loss cannot leave an empty or truncated file behind a completed save, and ids are checked
before they become paths (`../x` would escape the directory in the original).

Save order: the echo format has no place for one, so a file's modification time is it. Each
save stamps its file with `time.time_ns()`, strictly above the previous stamp of this process
(the kernel's own mtime is coarser: 150 quick saves got 110 distinct mtimes on Linux 6.18, and
before 6.13 it has the resolution of a clock tick), and `latest` takes the highest (mtime_ns,
then id). It is the saving
host's clock like created_at, but read when the file is written, not when the checkpoint was
made, and a re-save counts; a directory copied without keeping mtimes (`cp` without `-p`)
loses it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from ckptdb.errors import CkptdbError, InvalidCheckpointError, InvalidIdError, StoreError
from ckptdb.model import Checkpoint, CheckpointInfo
from ckptdb.store import (
    CheckpointPage,
    CheckpointQuery,
    CheckpointStore,
    newest_first_key,
    page_from_sorted,
    resolve_query,
)
from ckptdb.sync_store import SyncCheckpointStore

_MAX_NAME_BYTES = 240  # file systems stop at 255 bytes: room for ".json" (temp names are cut to fit)


def check_file_id(checkpoint_id: object) -> str:
    """Return the id if it is safe as a file name, else raise InvalidIdError saying why."""
    if not isinstance(checkpoint_id, str):
        raise InvalidIdError(f"checkpoint id must be a string, got {type(checkpoint_id).__name__}")
    problem = None
    if not checkpoint_id:
        problem = "is empty"
    elif "/" in checkpoint_id or "\\" in checkpoint_id:
        problem = "contains a path separator"
    elif ".." in checkpoint_id:
        problem = "contains '..'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in checkpoint_id):
        problem = "contains NUL or a control character"
    elif any("\ud800" <= c <= "\udfff" for c in checkpoint_id):
        # Not UTF-8: as a path it would fail to encode, or (U+DC80..U+DCFF, surrogateescape) name
        # some other file whose name is not UTF-8.
        problem = "contains a lone surrogate (not valid UTF-8)"
    elif os.path.isabs(checkpoint_id) or (len(checkpoint_id) > 1 and checkpoint_id[1] == ":"):
        problem = "is an absolute path"
    elif len(checkpoint_id.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        problem = f"is longer than {_MAX_NAME_BYTES} bytes"
    if problem:
        raise InvalidIdError(f"checkpoint id {checkpoint_id!r} {problem}: it cannot be used as a file name")
    return checkpoint_id


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_stamp_lock = threading.Lock()
_last_stamp = 0


def save_stamp() -> int:
    """A modification time in ns for the file a save writes: now, but strictly above the last one
    this process handed out, so the files' mtimes give the order of the saves."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


_NAME_MAX = 255
"""Bytes in one file name on every file system echo directories live on (ext4, xfs, btrfs, APFS)."""


def temp_name(name: str) -> str:
    """A fresh temp file name beside `name`: its start (cut at a character so the whole fits
    _NAME_MAX bytes even for the longest allowed id), a random part (concurrent writes of one id
    never share a temp file) and `.json.tmp`, which no listing reads as a checkpoint."""
    suffix = f".{secrets.token_hex(4)}.json.tmp"
    stem = (name[:-5] if name.endswith(".json") else name).encode("utf-8", "surrogatepass")
    return stem[: _NAME_MAX - len(suffix)].decode("utf-8", "ignore") + suffix


def write_file_atomic(
    directory: Path,
    name: str,
    data: bytes,
    *,
    sync_dir: bool = True,
    mtime_ns: int | None = None,
    fsync: bool = True,
) -> Path:
    """Write `directory/name` all-or-nothing: temp file, fsync, rename, fsync the directory.
    `mtime_ns` is set on the file before its fsync. `fsync=False` keeps the temp file and the
    rename (readers never see half a file) and skips both fsyncs."""
    target = directory / name
    tmp = directory / temp_name(name)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from None
    if sync_dir and fsync:
        fsync_directory(directory)
    return target


class SyncFileCheckpointStore(SyncCheckpointStore):
    """Reads and writes an echo checkpoint directory, so an app can keep its files while migrating.

    Every write is its own file, renamed into place: threads may share the store."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        """`directory` may not exist yet (the first save creates it); anything else there that is
        not a directory is refused now, rather than at the first save or, for reads, never (a
        listing of a file would simply be empty)."""
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise CkptdbError(
                f"FileCheckpointStore takes a directory path, got {directory!r}: pass the echo checkpoint "
                "directory, e.g. FileCheckpointStore('checkpoints')"
            )
        if not isinstance(fsync, bool):
            raise CkptdbError(f"fsync must be True or False, got {fsync!r}")
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise StoreError(
                f"{self.directory} is a file, not a directory: FileCheckpointStore takes the directory "
                "that holds the {id}.json files (for a database file use open_store)"
            )
        self._fsync = fsync

    def _path(self, checkpoint_id: str) -> Path:
        return self.directory / f"{check_file_id(checkpoint_id)}.json"

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create checkpoint directory {self.directory}: {exc.strerror}") from None

    def _write(self, checkpoint_id: str, data: bytes, sync_dir: bool) -> None:
        name = f"{checkpoint_id}.json"
        write_file_atomic(
            self.directory, name, data, sync_dir=sync_dir, mtime_ns=save_stamp(), fsync=self._fsync
        )

    def _save_sync(self, checkpoints: list[Checkpoint]) -> None:
        # Serialize the whole batch before writing anything, so an invalid checkpoint in a batch
        # leaves no file behind (save_many is all-or-nothing for invalid input).
        payloads = []
        for checkpoint in checkpoints:
            checkpoint.validate()
            self._path(checkpoint.id)
            payloads.append((checkpoint.id, checkpoint.to_json_bytes()))
        self._ensure_dir()
        for checkpoint_id, data in payloads:
            self._write(checkpoint_id, data, sync_dir=False)
        if self._fsync and payloads:
            fsync_directory(self.directory)

    def save(self, checkpoint: Checkpoint) -> None:
        self._save_sync([checkpoint])

    def save_many(self, checkpoints: Iterable[Checkpoint]) -> int:
        batch = list(checkpoints)
        self._save_sync(batch)
        return len(batch)

    def _load_sync(self, checkpoint_id: str) -> Checkpoint | None:
        path = self._path(checkpoint_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        return Checkpoint.from_json(data, source=str(path))

    def load(self, checkpoint_id: str) -> Checkpoint | None:
        return self._load_sync(checkpoint_id)

    def _delete_sync(self, checkpoint_id: str) -> None:
        path = self._path(checkpoint_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        if self._fsync:
            fsync_directory(self.directory)

    def delete(self, checkpoint_id: str) -> None:
        self._delete_sync(checkpoint_id)

    def _json_files(self) -> list[Path]:
        try:
            return [p for p in self.directory.iterdir() if p.name.endswith(".json") and p.is_file()]
        except FileNotFoundError:
            return []

    def _clear_sync(self) -> None:
        for path in self._json_files():
            path.unlink(missing_ok=True)
        if self._fsync and self.directory.exists():
            fsync_directory(self.directory)

    def clear(self) -> None:
        self._clear_sync()

    def _scan(self) -> Iterator[Checkpoint]:
        """Every parseable top-level `*.json`, skipping the rest, as the Rust `list()` does; one at
        a time, so a query holds the summaries of its matches, not every checkpoint."""
        for path in self._json_files():
            try:
                yield Checkpoint.from_json(path.read_bytes(), source=str(path))
            except (InvalidCheckpointError, OSError):
                continue

    def _latest_sync(self, graph_name: str) -> Checkpoint | None:
        best: tuple[int, str] | None = None
        found: Checkpoint | None = None
        for path in self._json_files():
            try:
                data = path.read_bytes()
                saved = os.stat(path).st_mtime_ns
                checkpoint = Checkpoint.from_json(data, source=str(path))
            except (InvalidCheckpointError, OSError):
                continue
            if checkpoint.graph_name == graph_name and (best is None or (saved, checkpoint.id) > best):
                best, found = (saved, checkpoint.id), checkpoint
        return found

    def latest(self, graph_name: str) -> Checkpoint | None:
        """The checkpoint of this graph saved last: the highest file mtime (see the module docstring)."""
        return self._latest_sync(graph_name)

    def _matches_sync(self, query: CheckpointQuery) -> list[CheckpointInfo]:
        infos = [
            cp.info()
            for cp in self._scan()
            if query.matches(cp.info()) and all(f.matches(cp.state_snapshot) for f in query.state)
        ]
        infos.sort(key=newest_first_key, reverse=True)
        return infos

    def _query_sync(self, query: CheckpointQuery) -> CheckpointPage:
        return page_from_sorted(self._matches_sync(query), query)

    def query(self, query: CheckpointQuery | None = None, **filters: Any) -> CheckpointPage:
        return self._query_sync(resolve_query(query, filters))

    def iter_query(self, query: CheckpointQuery | None = None, **filters: Any) -> Iterator[CheckpointInfo]:
        """One scan of the directory, not one per page (every page of the generic version reads
        every file again): the matches' summaries, cut by the query's cursor and limit."""
        yield from self._query_sync(resolve_query(query, filters, default_limit=None)).items


class FileCheckpointStore(CheckpointStore):
    """`SyncFileCheckpointStore` behind the async interface: each call runs on a worker thread
    (`asyncio.to_thread`), since file writes and fsyncs block."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self._store = SyncFileCheckpointStore(directory, fsync=fsync)
        self.directory = self._store.directory

    async def save(self, checkpoint: Checkpoint) -> None:
        await asyncio.to_thread(self._store.save, checkpoint)

    async def save_many(self, checkpoints: Iterable[Checkpoint]) -> int:
        return await asyncio.to_thread(self._store.save_many, list(checkpoints))

    async def load(self, checkpoint_id: str) -> Checkpoint | None:
        return await asyncio.to_thread(self._store.load, checkpoint_id)

    async def delete(self, checkpoint_id: str) -> None:
        await asyncio.to_thread(self._store.delete, checkpoint_id)

    async def clear(self) -> None:
        await asyncio.to_thread(self._store.clear)

    async def latest(self, graph_name: str) -> Checkpoint | None:
        """The checkpoint of this graph saved last: the highest file mtime (see the module docstring)."""
        return await asyncio.to_thread(self._store.latest, graph_name)

    async def query(self, query: CheckpointQuery | None = None, **filters: Any) -> CheckpointPage:
        return await asyncio.to_thread(self._store.query, query, **filters)

    async def iter_query(
        self, query: CheckpointQuery | None = None, **filters: Any
    ) -> AsyncIterator[CheckpointInfo]:
        """One scan of the directory, on a worker thread (see `SyncFileCheckpointStore.iter_query`)."""
        query = resolve_query(query, filters, default_limit=None)
        page = await asyncio.to_thread(self._store._query_sync, query)
        for info in page.items:
            yield info
