"""Import a database written by LangGraph's official savers into ckptdb's LangGraph tables, so that
`AsyncCkptdbSaver` resumes every thread where the old saver would have.

The source (`ckptdb.langgraph_source`: an SQLite file or a PostgreSQL URL, any schema the savers
shipped) is opened read-only and streamed thread by thread, oldest checkpoint first, a batch at a
time; each batch is one transaction of the target, so memory holds one batch whatever the source's
size, and a kill leaves whole checkpoints only. Every checkpoint gets one outcome, as in the echo
import (`ckptdb.importer`): `imported`, `unchanged` (already there, the same), `conflict` (already
there, different: nothing of it is written) or `invalid` (refused, with the reason). A re-run after
a kill finds the committed batches `unchanged` and imports the rest: the rows it writes are the
ones an uninterrupted run writes, because the encoding is a function of the source's order alone.

Values are copied, never re-encoded: the rows are those `AsyncCkptdbSaver` writes (see
`ckptdb.langgraph.codec`), made from the source's own `(type, bytes)` pairs. From an SQLite source
the channel values are cut out of the msgpack checkpoint by its framing (`ckptdb.langgraph_values`);
the checkpoint's blob is the source's msgpack map with only its small scalar values left in
`channel_values` (spliced, byte for byte); a list value is stored as the saver stores it, segments
of msgpack items cut out of the source's array and a link to the version it extends. From
PostgreSQL the blobs are copied as they are; the JSONB body (ids, versions, primitives) becomes
the checkpoint's blob through the serde, as the saver would encode that checkpoint.

Checkpoints older than format 4: an SQLite source's keep their `pending_sends` in the checkpoint,
which LangGraph itself moves into the tasks channel on load, so they are copied as they are. A
PostgreSQL source's get the tasks channel the PostgreSQL saver builds on every load (the parent's
writes to `__pregel_tasks`, decoded with the strict serde), stored in the checkpoint's blob.
A checkpoint that cannot be copied exactly (the old `json` serde type, broken msgpack, metadata
that is not JSON, a write without a value) is `invalid`, one line each, and the rest go on.

Needs langgraph-checkpoint (the `ckptdb[langgraph]` extra): the target is only read through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from ckptdb.errors import CkptdbError
from ckptdb.exit_status import ExitStatus
from ckptdb.langgraph_source import LangGraphSource, SourceCheckpoint, open_langgraph_source, parse_metadata
from ckptdb.outputs import AtomicTextFile, check_output_file, database_files, same_database
from ckptdb.sql.langgraph import Key, Row, version_key
from ckptdb.sql.langgraph_import import ImportTables
from ckptdb.sql.store import DatabaseTarget, SqlCheckpointStore, parse_target
from ckptdb.sql.transfer import has_schema

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CheckpointOutcome",
    "LanggraphImportReport",
    "Outcome",
    "Status",
    "import_langgraph",
    "run_langgraph_import",
]

DEFAULT_BATCH_SIZE = 100
"""Checkpoints per transaction (and per page read from the source)."""
MAX_PROBLEMS = 100
TASKS = "__pregel_tasks"

ProgressCallback = Callable[[str, int, int], None]


class Outcome(StrEnum):
    """What happened to one checkpoint (the echo import's words)."""

    IMPORTED = "imported"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    INVALID = "invalid"


class Status(StrEnum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CheckpointOutcome:
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    outcome: Outcome
    reason: str | None = None

    def where(self) -> str:
        ns = f" namespace {self.checkpoint_ns!r}" if self.checkpoint_ns else ""
        return f"thread {self.thread_id!r}{ns} checkpoint {self.checkpoint_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "checkpoint_ns": self.checkpoint_ns,
            "checkpoint_id": self.checkpoint_id,
            "outcome": self.outcome.value,
            "reason": self.reason,
        }


@dataclass(slots=True)
class LanggraphImportReport:
    """Counts per outcome and the first `MAX_PROBLEMS` invalid or conflicting checkpoints."""

    source: str = ""
    schema: str = ""
    total: int = 0
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    problems: list[CheckpointOutcome] = field(default_factory=list)
    problems_omitted: int = 0
    status: Status = Status.COMPLETED
    dry_run: bool = False
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def exit_status(self) -> int:
        if self.counts[Outcome.INVALID] or self.counts[Outcome.CONFLICT]:
            return ExitStatus.PROBLEMS
        return ExitStatus.OK

    def add(self, outcome: CheckpointOutcome) -> None:
        self.counts[outcome.outcome] += 1
        if outcome.outcome in (Outcome.INVALID, Outcome.CONFLICT):
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(outcome)
            else:
                self.problems_omitted += 1

    def summary_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "schema": self.schema,
            "status": self.status.value,
            "dry_run": self.dry_run,
            "exit_status": int(self.exit_status),
            "checkpoints": self.total,
            **{outcome.value: count for outcome, count in self.counts.items()},
            "seconds": round(self.elapsed, 3),
        }


class Refused(CkptdbError):
    """One checkpoint that cannot be copied exactly (its outcome is `invalid`)."""


@dataclass(slots=True)
class Encoded:
    """One checkpoint as the rows `AsyncCkptdbSaver` would have written for it."""

    record: SourceCheckpoint
    checkpoint: Row
    values: list[Row]
    items: list[Row]
    writes: list[Row]
    learned: list[tuple[tuple[str, str, str], str, list[bytes], Any]]
    new_keys: list[Key]


class _Encoder:
    """Source checkpoints -> ckptdb rows, in the source's order (the list segments of a version
    depend on the versions stored before it in the thread, as the saver's do)."""

    def __init__(self, source: LangGraphSource) -> None:
        from ckptdb.langgraph import codec
        from ckptdb.langgraph_decode import strict_serde

        self._codec = codec
        self.serde = strict_serde()
        self.source = source
        self.lists = codec.ListVersions()
        self._thread: tuple[str, str] | None = None
        self.stored: set[Key] = set()
        """Value keys of the current thread and namespace already stored (or to be, this batch)."""

    def enter(self, record: SourceCheckpoint) -> None:
        where = (record.thread_id, record.checkpoint_ns)
        if where != self._thread:  # versions are per thread and namespace: memory stays flat
            self._thread = where
            self.stored.clear()
            self.lists.forget()

    async def encode(self, record: SourceCheckpoint, layout: Any = None) -> Encoded:
        from ckptdb import langgraph_values as lv

        metadata = parse_metadata(record.metadata)
        if not isinstance(metadata, dict):
            raise Refused("its metadata is not a JSON object")
        metadata_text = record.metadata.decode() if isinstance(record.metadata, bytes) else record.metadata
        assert metadata_text is not None
        writes = []
        for write in record.writes:
            if write.data is None:
                raise Refused(f"pending write {write.task_id}/{write.idx} has no value")
            writes.append(
                (
                    record.thread_id,
                    record.checkpoint_ns,
                    record.checkpoint_id,
                    write.task_id,
                    write.task_path or "",
                    write.idx,
                    write.channel,
                    write.type,
                    memoryview(write.data),
                )
            )
        rows = _Rows(self, record)
        try:
            if isinstance(record.checkpoint, str):
                kind, blob, versions, inline = await self._from_postgres(record, rows)
            elif record.type == "msgpack":
                kind, blob, versions, inline = self._from_sqlite(record, rows, layout)
            else:
                raise Refused(
                    f"it is stored with serde type {record.type!r} (LangGraph's old format), whose "
                    "values cannot be copied exactly; run it once through LangGraph's current saver"
                )
        except lv.MsgpackFramingError as exc:
            raise Refused(f"its msgpack is broken ({exc})") from None
        step = metadata.get("step")
        run_id = metadata.get("run_id")
        checkpoint = (
            record.thread_id,
            record.checkpoint_ns,
            record.checkpoint_id,
            record.parent_checkpoint_id,
            step if isinstance(step, int) and not isinstance(step, bool) else None,
            run_id if isinstance(run_id, str) else None,
            kind,
            memoryview(blob),
            metadata_text,
            orjson.dumps(versions).decode(),
            json.dumps(sorted(inline)),
        )
        return Encoded(record, checkpoint, rows.values, rows.items, writes, rows.learned, rows.keys)

    def _from_sqlite(
        self, record: SourceCheckpoint, rows: _Rows, layout: Any
    ) -> tuple[str, bytes, dict[str, Any], list[str]]:
        from ckptdb import langgraph_values as lv

        data = record.checkpoint
        assert isinstance(data, bytes)
        if layout is None:
            layout = _layout(record)  # raises what is broken
        versions: dict[str, Any] = dict(layout.versions)
        inline_parts: list[bytes] = []
        inline: list[str] = []
        present: set[str] = set()
        for key, kstart, vstart, vend, offsets in layout.values:
            channel = str(key)
            present.add(channel)
            value = data[vstart:vend]
            # A value without a version (never written by a graph, but a saver keeps it) stays
            # in the checkpoint's blob too: there is no version to store it under.
            if channel not in versions or lv.is_small_scalar(value, self._codec.INLINE_TEXT):
                inline.append(channel)
                inline_parts.append(data[kstart:vend])
            else:
                items = None if offsets is None else [data[i:j] for i, j in itertools.pairwise(offsets)]
                rows.value(channel, versions[channel], "msgpack", value, items)
        for channel, version in versions.items():
            if channel not in present:
                rows.empty(channel, version)
        by_key = {key: (kstart, vstart) for key, kstart, vstart, _ in layout.top}
        parts = [data[kstart:vend] for key, kstart, _, vend in layout.top if key != "channel_values"]
        parts.append(
            data[by_key["channel_values"][0] : by_key["channel_values"][1]]
            if "channel_values" in by_key
            else b"\xaechannel_values"
        )
        parts.append(lv.map_header(len(inline_parts)) + b"".join(inline_parts))
        blob = lv.map_header(len(parts) - 1) + b"".join(parts)
        return "msgpack", blob, versions, inline

    async def _from_postgres(
        self, record: SourceCheckpoint, rows: _Rows
    ) -> tuple[str, bytes, dict[str, Any], list[str]]:
        assert isinstance(record.checkpoint, str)
        body = orjson.loads(record.checkpoint)
        if not isinstance(body, dict):
            raise Refused("its checkpoint is not a JSON object")
        versions: dict[str, Any] = dict(body.get("channel_versions") or {})
        values: dict[str, Any] = dict(body.get("channel_values") or {})
        inline = {channel: value for channel, value in values.items() if self._codec._inline(value)}
        for channel, value in values.items():
            if channel not in inline:  # a long str: JSON in the source, no serde pair to copy
                kind, data = self.serde.dumps_typed(value)
                rows.value(channel, versions.get(channel, ""), kind, data)
        for blob in record.blobs:
            if blob.type == "empty" or blob.data is None:
                rows.empty(blob.channel, blob.version)
            else:
                rows.value(blob.channel, blob.version, blob.type, blob.data)
        named = {b.channel for b in record.blobs} | set(values)
        for channel, version in versions.items():
            if channel not in named:
                rows.empty(channel, version)
        if int(body.get("v", 4)) < 4 and record.parent_checkpoint_id:
            sends = await self._pending_sends(record)
            if sends:
                inline[TASKS] = sends
                versions[TASKS] = max(versions.values()) if versions else self._codec.next_version(None)
                body["channel_versions"] = versions
        stored = {key: value for key, value in body.items() if key != "channel_values"}
        stored["channel_values"] = inline
        kind, data = self.serde.dumps_typed(stored)
        return kind, data, versions, list(inline)

    async def _pending_sends(self, record: SourceCheckpoint) -> list[Any]:
        """What LangGraph's PostgreSQL saver puts in the tasks channel of a checkpoint older than
        format 4: the parent's writes to it, in LangGraph's order, decoded."""
        assert record.parent_checkpoint_id is not None
        parent = await self.source.checkpoint(
            record.thread_id, record.checkpoint_ns, record.parent_checkpoint_id
        )
        if parent is None:
            return []
        sends = []
        for write in parent.writes:
            if write.channel != TASKS:
                continue
            if write.type is None or write.type == "pickle" or write.data is None:
                raise Refused(
                    f"its pending sends (the parent's write {write.task_id}/{write.idx}) cannot be "
                    "decoded safely"
                )
            try:
                sends.append(self.serde.loads_typed((write.type, write.data)))
            except Exception as exc:
                raise Refused(f"its pending sends cannot be decoded: {type(exc).__name__}: {exc}") from None
        return sends


class _Rows:
    """The value and list-segment rows of one checkpoint: only versions not stored before."""

    def __init__(self, encoder: _Encoder, record: SourceCheckpoint) -> None:
        self._encoder = encoder
        self._record = record
        self.values: list[Row] = []
        self.items: list[Row] = []
        self.learned: list[tuple[tuple[str, str, str], str, list[bytes], Any]] = []
        self.keys: list[Key] = []

    def _new(self, channel: str, version: object) -> str | None:
        vkey = version_key(version)
        key = (self._record.thread_id, self._record.checkpoint_ns, channel, vkey)
        if key in self._encoder.stored or key in self.keys:
            return None
        self.keys.append(key)
        return vkey

    def empty(self, channel: str, version: object) -> None:
        vkey = self._new(channel, version)
        if vkey is not None:
            r = self._record
            self.values.append((r.thread_id, r.checkpoint_ns, channel, vkey, "empty", None, None, None, None))

    def value(
        self, channel: str, version: object, kind: str, data: bytes, items: list[bytes] | None = None
    ) -> None:
        """One value row, or a list's rows; `items`: the list's items, when the caller has them."""
        from ckptdb import langgraph_values as lv

        vkey = self._new(channel, version)
        if vkey is None:
            return
        r = self._record
        if items is None and kind == "msgpack":
            items = lv.array_items(data)
        if items is None:
            self.values.append(
                (r.thread_id, r.checkpoint_ns, channel, vkey, "value", kind, memoryview(data), None, None)
            )
            return
        # A list: segments exactly as the saver's `encode_put` makes them (see ckptdb.langgraph.codec),
        # each segment a msgpack array of the source's own item bytes.
        codec = self._encoder._codec
        digests = [codec._digest(("msgpack", item)) for item in items]
        where = (r.thread_id, r.checkpoint_ns, channel)
        base = self._encoder.lists.base_for(where, digests)
        size, segments = (0, ()) if base is None else base
        start = size
        kept = list(segments)
        if len(items) > size:
            while kept and start - kept[-1][1] <= len(items) - start:
                start = kept.pop()[1]
        base_version = kept[-1][0] if kept else None
        self.values.append(
            (r.thread_id, r.checkpoint_ns, channel, vkey, "list", None, None, base_version, len(items))
        )
        if len(items) > start:
            segment = lv.array_header(len(items) - start) + b"".join(items[start:])
            self.items.append(
                (r.thread_id, r.checkpoint_ns, channel, vkey, start, "msgpack", memoryview(segment))
            )
            kept.append((vkey, start))
        self.learned.append((where, vkey, digests, tuple(kept)))


def _same_value(ours: Row, stored: Row) -> bool:
    """A value row we would write (the 9 columns) against a stored one (kind, type, value, base, length)."""
    data = None if ours[6] is None else bytes(ours[6])
    return (ours[4], ours[5], data, ours[7], ours[8]) == stored


def _difference(encoded: Encoded, stored: Row, stored_writes: set[Row]) -> str | None:
    """What differs between a checkpoint we would write and the one stored under its id."""
    ours = encoded.checkpoint
    if stored[0] != ours[3]:
        return "a different parent checkpoint is stored under this id"
    if (stored[1], stored[2]) != (ours[6], bytes(ours[7])):
        return "a different checkpoint is stored under this id"
    if parse_metadata(stored[3]) != parse_metadata(ours[8]):
        return "different metadata is stored under this id"
    if _json(stored[4]) != _json(ours[9]) or sorted(_json(stored[5])) != sorted(_json(ours[10])):
        return "different channel versions are stored under this id"
    mine = {(w[3], w[4], w[5], w[6], w[7], bytes(w[8])) for w in encoded.writes}
    if mine != stored_writes:
        return "different pending writes are stored for it (was the thread resumed in ckptdb?)"
    return None


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


async def import_langgraph(
    store: SqlCheckpointStore | None,
    source: LangGraphSource,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    on_checkpoint: Callable[[CheckpointOutcome], None] | None = None,
) -> LanggraphImportReport:
    """Import every checkpoint of `source` into `store` (None: a dry run without a database);
    each gets one outcome, handed to `on_checkpoint` once its batch committed."""
    started = time.perf_counter()
    encoder = _Encoder(source)
    report = LanggraphImportReport(schema=source.schema.describe(), dry_run=dry_run)
    report.total = await source.count()
    tables = None if store is None else ImportTables(store)
    if progress is not None:
        progress("importing", 0, report.total)
    batch: list[SourceCheckpoint] = []

    async def flush() -> None:
        outcomes = await _import_batch(tables, encoder, batch, dry_run)
        for outcome in outcomes:
            report.add(outcome)
            if on_checkpoint is not None:
                on_checkpoint(outcome)
        batch.clear()
        if progress is not None:
            progress("importing", report.done, report.total)

    try:
        async with contextlib.aclosing(source.checkpoints(page=batch_size)) as records:
            async for record in records:
                batch.append(record)
                if len(batch) >= batch_size:
                    await flush()
        if batch:
            await flush()
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.status = Status.INTERRUPTED
        raise
    except BaseException:
        report.status = Status.FAILED
        raise
    finally:
        report.elapsed = time.perf_counter() - started
    return report


async def _import_batch(
    tables: ImportTables | None, encoder: _Encoder, batch: Sequence[SourceCheckpoint], dry_run: bool
) -> list[CheckpointOutcome]:
    """One batch: what the target holds of it, each checkpoint's outcome in order, then its rows
    in one transaction. Checkpoints are encoded one after the other and a list version is learned
    only from one that is imported or unchanged, so no segment ever extends a version that the
    target does not hold."""
    keys = [record.key for record in batch]
    stored = {} if tables is None else await tables.checkpoints(keys)
    stored_writes = {} if tables is None or not stored else await tables.writes(list(stored))
    layouts = _layouts(batch)
    value_keys = [
        (record.thread_id, record.checkpoint_ns, channel, version_key(version))
        for record, layout in zip(batch, layouts, strict=True)
        for channel, version in _versions(record, layout).items()
    ]
    stored_values = {} if tables is None else await tables.values(value_keys)
    outcomes: list[CheckpointOutcome] = []
    to_write: list[Encoded] = []
    for record, layout in zip(batch, layouts, strict=True):
        encoder.enter(record)
        where = (record.thread_id, record.checkpoint_ns, record.checkpoint_id)
        try:
            encoded = await encoder.encode(record, layout)
        except Refused as exc:
            outcomes.append(CheckpointOutcome(*where, Outcome.INVALID, str(exc)))
            continue
        reason: str | None = None
        clashing = [
            row
            for row in encoded.values
            if (key := row[:4]) in stored_values and not _same_value(row, stored_values[key])
        ]
        if clashing:
            reason = (
                f"channel {clashing[0][2]!r} at version {clashing[0][3]!r} is stored with a different value"
            )
        elif record.key in stored:
            reason = _difference(encoded, stored[record.key], stored_writes.get(record.key, set()))
            if reason is None:
                outcomes.append(CheckpointOutcome(*where, Outcome.UNCHANGED))
                _learn(encoder, encoded)
                continue
        if reason is not None:
            outcomes.append(CheckpointOutcome(*where, Outcome.CONFLICT, reason))
            continue
        outcomes.append(CheckpointOutcome(*where, Outcome.IMPORTED))
        _learn(encoder, encoded)
        to_write.append(encoded)
    if tables is not None and not dry_run and to_write:
        await tables.write(
            [row for e in to_write for row in e.values if row[:4] not in stored_values],
            [row for e in to_write for row in e.items if row[:4] not in stored_values],
            [e.checkpoint for e in to_write],
            [row for e in to_write for row in e.writes],
        )
    return outcomes


def _learn(encoder: _Encoder, encoded: Encoded) -> None:
    encoder.stored.update(encoded.new_keys)
    for where, version, digests, segments in encoded.learned:
        encoder.lists.remember(where, version, digests, segments)


def _layout(record: SourceCheckpoint) -> Any:
    """An SQLite checkpoint's `CheckpointLayout` (None for PostgreSQL's JSONB or another serde
    type); raises MsgpackFramingError for broken msgpack."""
    from ckptdb import langgraph_values as lv

    if isinstance(record.checkpoint, str) or record.type != "msgpack":
        return None
    return lv.checkpoint_layout(record.checkpoint)


def _versions(record: SourceCheckpoint, layout: Any) -> dict[str, Any]:
    """The channel versions a checkpoint names, read without decoding a value (for the lookup of
    what the target holds; a broken checkpoint names none here and is refused by its encoding)."""
    if isinstance(record.checkpoint, str):
        try:
            body = orjson.loads(record.checkpoint)
        except orjson.JSONDecodeError:
            return {}
        return dict(body.get("channel_versions") or {}) if isinstance(body, dict) else {}
    return {} if layout is None else dict(layout.versions)


def _layouts(batch: Sequence[SourceCheckpoint]) -> list[Any]:
    """Each record's layout, worked out once (the lookup and the encoding both need it, and the
    walk is most of an import's time); None where there is none or it is broken (the encoding
    then says why)."""
    from ckptdb import langgraph_values as lv

    found = []
    for record in batch:
        try:
            found.append(_layout(record))
        except lv.MsgpackFramingError:
            found.append(None)
    return found


async def run_langgraph_import(
    db: str | Path | DatabaseTarget,
    source: str | Path | DatabaseTarget,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    on_checkpoint: Callable[[CheckpointOutcome], None] | None = None,
    report_path: str | os.PathLike[str] | None = None,
) -> LanggraphImportReport:
    """The whole `ckptdb langgraph import`: open the source read-only, open (or, unless it is a dry
    run, create) the target, import, close both. `report_path`: every checkpoint's outcome as JSON,
    written as they come (flat memory) and put in place at the end, however the import ends."""
    from ckptdb.langgraph_decode import strict_serde

    strict_serde()  # a missing extra is said before anything is opened
    target = parse_target(db)
    source_target = parse_target(source)
    if same_database(target, source_target) or (
        target.path is None and source_target.path is None and target.display() == source_target.display()
    ):
        raise CkptdbError(
            "SOURCE is the --db database: import from the LangGraph saver's own file or database"
        )
    writer = None
    if report_path is not None:
        check_output_file(
            report_path,
            option="--report",
            databases=[*database_files(target), *database_files(source_target)],
        )
        writer = _ReportFile(report_path, target, source_target)
    report = LanggraphImportReport(dry_run=dry_run)

    def each(outcome: CheckpointOutcome) -> None:
        if writer is not None:
            writer.add(outcome)
        if on_checkpoint is not None:
            on_checkpoint(outcome)

    try:
        async with open_langgraph_source(source_target) as opened, _open_target(target, dry_run) as store:
            report = await import_langgraph(
                store, opened, dry_run=dry_run, batch_size=batch_size, progress=progress, on_checkpoint=each
            )
            report.source = source_target.display()
            return report
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.status = Status.INTERRUPTED
        raise
    except BaseException:
        report.status = Status.FAILED
        raise
    finally:
        if writer is not None:
            writer.close(report)


class _ReportFile:
    """{"report": "ckptdb-langgraph-import", "database", "source", "started_at", "checkpoints":
    [{"thread_id", "checkpoint_ns", "checkpoint_id", "outcome", "reason"}, ...], "summary": {...}},
    under a temp name until `close` renames it onto the path."""

    def __init__(self, path: str | os.PathLike[str], target: DatabaseTarget, source: DatabaseTarget) -> None:
        self._file = AtomicTextFile(path, option="--report")
        self._first = True
        header = {
            "report": "ckptdb-langgraph-import",
            "database": target.display(),
            "source": source.display(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        self._file.write(json.dumps(header, ensure_ascii=False, indent=2)[:-2] + ',\n  "checkpoints": [')

    def add(self, outcome: CheckpointOutcome) -> None:
        self._file.write("\n    " if self._first else ",\n    ")
        self._first = False
        self._file.write(json.dumps(outcome.to_json(), ensure_ascii=False))

    def close(self, report: LanggraphImportReport) -> None:
        summary = json.dumps(report.summary_json(), ensure_ascii=False, indent=2).replace("\n", "\n  ")
        self._file.write(("\n  " if not self._first else "") + '],\n  "summary": ' + summary + "\n}\n")
        self._file.commit()


@contextlib.asynccontextmanager
async def _open_target(target: DatabaseTarget, dry_run: bool) -> AsyncIterator[SqlCheckpointStore | None]:
    """The store to import into; a dry run creates nothing (a missing database is an empty one)."""
    store: SqlCheckpointStore | None
    if dry_run:
        missing = not target.path.exists() if target.path is not None else not await has_schema(target)
        if missing:
            store = None
        else:
            store = await SqlCheckpointStore.open(target, create=False)
    else:
        store = await SqlCheckpointStore.open(target)
    try:
        yield store
    finally:
        if store is not None:
            await store.close()
