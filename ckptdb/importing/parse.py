"""The parse stage: read each candidate file, check it and encode its row; in the helper process for
big imports (see `ckptdb.helper_process.helper_pool`), so parsing uses the second CPU instead of
fighting the database thread for the GIL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NamedTuple

from ckptdb.canonical import canonical_digest
from ckptdb.errors import InvalidCheckpointError
from ckptdb.importing.candidate import Candidate
from ckptdb.importing.outcomes import Outcome
from ckptdb.model import Checkpoint
from ckptdb.printable import printable
from ckptdb.sql import rows as sqlrows


def invalid_reason(exc: InvalidCheckpointError) -> str:
    return f"field '{exc.field}': {exc.reason}" if exc.field else exc.reason


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


class ParsedFile(NamedTuple):
    """One file read: its id, row and (dry runs) canonical digest, or why it is invalid."""

    checkpoint_id: str | None
    row: tuple[Any, ...] | None
    digest: bytes | None
    invalid: str | None


def _invalid(reason: str) -> ParsedFile:
    return ParsedFile(None, None, None, reason)


def parse_file(read_from: str, source: str, want_digest: bool, json_bytes: bool = False) -> ParsedFile:
    """Read, parse and encode one candidate file (runs in the parser process for big imports).
    `json_bytes`: see `rows.to_row` (a huge file's row then holds its JSON once, as bytes)."""
    try:
        data = _read_file(read_from)
    except OSError as exc:
        return _invalid(f"cannot read: {exc.strerror or exc}")
    try:
        checkpoint = Checkpoint.from_json(data)
        row = sqlrows.to_row(checkpoint, source, json_bytes=json_bytes)
    except InvalidCheckpointError as exc:
        return _invalid(printable(invalid_reason(exc)))
    except (ValueError, TypeError, RecursionError) as exc:  # one odd file must not stop 100,000
        return _invalid(printable(f"not a readable checkpoint ({type(exc).__name__}: {exc})"))
    return ParsedFile(checkpoint.id, row, canonical_digest(checkpoint) if want_digest else None, None)


class ParseJob(NamedTuple):
    """A file to parse: the file to read, and the source its row records."""

    read_from: str
    source: str


def parse_files(jobs: Sequence[ParseJob], want_digest: bool, json_bytes: bool = False) -> list[ParsedFile]:
    """`parse_file` for each job; the unit of work sent to the parser process."""
    return [parse_file(read_from, source, want_digest, json_bytes) for read_from, source in jobs]


def _jobs(batch: Sequence[Candidate]) -> list[ParseJob]:
    return [ParseJob(item.read_from, item.source) for item in batch if item.read_from is not None]


def _apply(batch: Sequence[Candidate], parsed: Sequence[ParsedFile]) -> None:
    """Give the batch's candidates what the parser found (in the order `_jobs` listed them)."""
    results = iter(parsed)
    for item in batch:
        if item.read_from is None:
            continue
        item.checkpoint_id, item.row, item.digest, invalid = next(results)
        if invalid is not None:
            item.outcome, item.reason = Outcome.INVALID, invalid


class Parsing(NamedTuple):
    """A batch handed to the parser: its candidates, and the helper's job (None: parse it here)."""

    batch: list[Candidate]
    job: asyncio.Future[list[ParsedFile]] | None


class Parser:
    """Parses batches in the helper process when there is one, else here. A helper that cannot
    start (an unguarded main script under `spawn`?) is dropped and the work stays here."""

    def __init__(self, pool: ProcessPoolExecutor | None, want_digest: bool, json_bytes: bool) -> None:
        self._pool = pool
        self._want_digest = want_digest
        self._json_bytes = json_bytes

    def submit(self, batch: list[Candidate]) -> Parsing:
        """Start parsing a batch in the helper (the caller keeps two ahead to keep it busy)."""
        job = None
        if self._pool is not None:
            try:
                loop = asyncio.get_running_loop()
                job = loop.run_in_executor(
                    self._pool, parse_files, _jobs(batch), self._want_digest, self._json_bytes
                )
            except BrokenProcessPool:
                self._drop()
        return Parsing(batch, job)

    async def parsed(self, parsing: Parsing) -> list[Candidate]:
        """The batch, each candidate given what its file holds (or why it is invalid)."""
        batch, job = parsing
        results: list[ParsedFile] | None = None
        if job is not None:
            try:
                results = await job
            except BrokenProcessPool:
                self._drop()
        if results is None:
            results = parse_files(_jobs(batch), self._want_digest, self._json_bytes)
        _apply(batch, results)
        return batch

    def _drop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
