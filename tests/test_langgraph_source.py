"""Reading LangGraph saver databases: real files and databases written by the official savers
running a real StateGraph (a subgraph, parallel branches, an interrupt() approval, several threads,
pending writes), read back exactly, compared with the savers' own reads, never changed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import PG, PG_SKIP, PG_SKIP_REASON
from helpers import langgraph_graphs as lg

from ckptdb import CkptdbError, SchemaError, StoreError, open_store
from ckptdb.langgraph_decode import decode_checkpoint, diff_checkpoints, strict_serde
from ckptdb.langgraph_source import SourceCheckpoint, open_langgraph_source

pytest.importorskip("langgraph.graph", reason="needs the langgraphtest extra")

ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lg") / "langgraph.sqlite"
    lg.write_sqlite(path)
    return path


@contextmanager
def _pg_database() -> Iterator[str]:
    if PG_SKIP:
        pytest.skip(PG_SKIP_REASON)
    url = PG.acquire(migrated=False, keep=True)
    try:
        yield url
    finally:
        PG.give_back(url, migrated=False)


@pytest.fixture(scope="module")
def postgres_source() -> Iterator[str]:
    with _pg_database() as url:
        lg.write_postgres(url)
        yield url


@pytest.fixture(params=ENGINES)
def source(request: pytest.FixtureRequest) -> str:
    name = "sqlite_source" if request.param == "sqlite" else "postgres_source"
    return str(request.getfixturevalue(name))


async def _records(source: str, page: int = 5) -> list[SourceCheckpoint]:
    async with open_langgraph_source(source) as opened:
        return [record async for record in opened.checkpoints(page=page)]


@contextmanager
def _saver(source: str, tmp_path: Path) -> Iterator[Any]:
    """The official saver reading the same data (SQLite: a copy, since its setup() writes)."""
    if source.startswith("postgresql://"):
        with lg.postgres_saver(source, setup=False) as saver:
            yield saver
        return
    copy = tmp_path / "saver-copy.sqlite"
    shutil.copy(source, copy)
    with lg.sqlite_saver(copy) as saver:
        yield saver


Key = tuple[str, str, str]


def _raw(source: str) -> dict[Key, dict[str, Any]]:
    """What the source holds, read with the plain driver and SQL of the test's own."""
    found: dict[Key, dict[str, Any]] = {}
    if source.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(source) as conn:
            for *key, parent, type_, checkpoint, metadata in conn.execute(
                "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
                "checkpoint::text, metadata::text FROM checkpoints"
            ):
                found[tuple(key)] = {
                    "row": (parent, type_, checkpoint, metadata),
                    "writes": set(),
                    "blobs": set(),
                }
            has_path = conn.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'checkpoint_writes' "
                "AND column_name = 'task_path'"
            ).fetchone()[0]
            path = "task_path" if has_path else "NULL"
            for *key, task_id, idx, channel, type_, data, task_path in conn.execute(
                "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, "
                f"{path} FROM checkpoint_writes"
            ):
                if tuple(key) in found:
                    found[tuple(key)]["writes"].add((task_id, idx, channel, type_, data, task_path))
            blobs = {
                (t, ns, ch, ver): (typ, data)
                for t, ns, ch, ver, typ, data in conn.execute(
                    "SELECT thread_id, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs"
                )
            }
        for (thread, ns, _), entry in found.items():
            versions = json.loads(entry["row"][2])["channel_versions"]
            for channel, version in versions.items():
                if (thread, ns, channel, str(version)) in blobs:
                    typ, data = blobs[(thread, ns, channel, str(version))]
                    entry["blobs"].add((channel, str(version), typ, data))
        return found
    db = sqlite3.connect(f"file:{source}?immutable=1", uri=True)
    try:
        for *key, parent, type_, checkpoint, metadata in db.execute(
            "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
            "metadata FROM checkpoints"
        ):
            found[tuple(key)] = {
                "row": (parent, type_, checkpoint, metadata),
                "writes": set(),
                "blobs": set(),
            }
        columns = {row[1] for row in db.execute("PRAGMA table_info(writes)")}
        path = "task_path" if "task_path" in columns else "NULL"
        for *key, task_id, idx, channel, type_, data, task_path in db.execute(
            f"SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value, {path} "
            "FROM writes"
        ):
            if tuple(key) in found:
                found[tuple(key)]["writes"].add((task_id, idx, channel, type_, data, task_path))
    finally:
        db.close()
    return found


def _as_saver_reads(record: SourceCheckpoint, serde: Any) -> tuple[Any, Any, Any, Any]:
    """(checkpoint, metadata, parent id, pending writes) of a record, decoded as the saver does."""
    if isinstance(record.checkpoint, str):
        checkpoint = json.loads(record.checkpoint)
        checkpoint["channel_values"] = {
            **(checkpoint.get("channel_values") or {}),
            **{b.channel: serde.loads_typed((b.type, b.data)) for b in record.blobs if b.type != "empty"},
        }
    else:
        checkpoint = serde.loads_typed((record.type, record.checkpoint))
    writes = [(w.task_id, w.channel, serde.loads_typed((w.type, w.data))) for w in record.writes]
    return checkpoint, json.loads(record.metadata or "{}"), record.parent_checkpoint_id, writes


def _config(key: Key) -> dict[str, Any]:
    return {"configurable": {"thread_id": key[0], "checkpoint_ns": key[1], "checkpoint_id": key[2]}}


def _check_against_saver(records: list[SourceCheckpoint], saver: Any) -> None:
    listed = {
        (t.config["configurable"]["thread_id"], t.config["configurable"]["checkpoint_ns"], t.checkpoint["id"])
        for t in saver.list(None)
    }
    assert {r.key for r in records} == listed
    for record in records:
        found = saver.get_tuple(_config(record.key))
        checkpoint, metadata, parent, writes = _as_saver_reads(record, saver.serde)
        assert checkpoint == found.checkpoint, record.key
        assert metadata == found.metadata, record.key
        assert parent == (found.parent_config or {}).get("configurable", {}).get("checkpoint_id"), record.key
        assert writes == list(found.pending_writes), record.key  # same values, same order


def _check_exact(records: list[SourceCheckpoint], raw: dict[Key, dict[str, Any]]) -> None:
    assert len(records) == len({r.key for r in records}) == len(raw)
    for record in records:
        entry = raw[record.key]
        assert (record.parent_checkpoint_id, record.type, record.checkpoint, record.metadata) == entry["row"]
        writes = {(w.task_id, w.idx, w.channel, w.type, w.data, w.task_path) for w in record.writes}
        assert len(writes) == len(record.writes)
        assert writes == entry["writes"], record.key
        assert {(b.channel, b.version, b.type, b.data) for b in record.blobs} == entry["blobs"], record.key


@pytest.mark.parametrize("page", [1, 7, 1000])
async def test_every_checkpoint_and_write_comes_back_exactly_and_as_the_saver_reads_it(
    source: str, tmp_path: Path, page: int
) -> None:
    records = await _records(source, page=page)
    assert len(records) > 40
    assert any(r.checkpoint_ns for r in records), "the subgraph's checkpoints are there"
    assert any(w.channel == "__interrupt__" for r in records for w in r.writes)
    assert any(w.channel == "notes" for r in records for w in r.writes), "the finished branch's write"
    assert all(isinstance(w.task_path, str) for r in records for w in r.writes)
    if source.startswith("postgresql://"):
        assert any(r.blobs for r in records)
    _check_exact(records, _raw(source))
    with _saver(source, tmp_path) as saver:
        _check_against_saver(records, saver)


async def test_threads_history_and_one_checkpoint_agree_with_the_saver(source: str, tmp_path: Path) -> None:
    records = await _records(source)
    by_thread: dict[tuple[str, str], list[SourceCheckpoint]] = {}
    for record in records:
        by_thread.setdefault((record.thread_id, record.checkpoint_ns), []).append(record)
    async with open_langgraph_source(source) as opened:
        threads = [t async for t in opened.threads()]
        assert {(t.thread_id, t.checkpoint_ns) for t in threads} == set(by_thread)
        assert {t.thread_id for t in threads} == set(lg.THREADS)
        with _saver(source, tmp_path) as saver:
            for summary in threads:
                ns = summary.checkpoint_ns
                listed = [
                    t.checkpoint["id"]
                    for t in saver.list(
                        {"configurable": {"thread_id": summary.thread_id, "checkpoint_ns": ns}}
                    )
                ]
                history = [r.checkpoint_id async for r in opened.history(summary.thread_id, ns, page=2)]
                assert history == listed
                assert summary.count == len(by_thread[(summary.thread_id, ns)])
                newest = saver.get_tuple(
                    {"configurable": {"thread_id": summary.thread_id, "checkpoint_ns": ns}}
                )
                assert summary.newest_checkpoint_id == newest.checkpoint["id"]
                assert summary.step == newest.metadata["step"]
                assert summary.metadata == newest.metadata
                latest = await opened.checkpoint(summary.thread_id, ns)
                assert latest is not None and latest.checkpoint_id == newest.checkpoint["id"]
                older = [r async for r in opened.history(summary.thread_id, ns, before=listed[0])]
                assert [r.checkpoint_id for r in older] == listed[1:]
        assert await opened.checkpoint("approved", "", "no-such-id") is None
        assert await opened.checkpoint("no-such-thread") is None
        assert await opened.count() == len(records)


def _state_of(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


async def test_reading_changes_nothing_and_leaves_no_wal_files(sqlite_source: Path, tmp_path: Path) -> None:
    copy = tmp_path / "src" / "langgraph.sqlite"
    copy.parent.mkdir()
    shutil.copy(sqlite_source, copy)
    before = _state_of(copy.parent)
    mtime = copy.stat().st_mtime_ns
    async with open_langgraph_source(copy) as opened:
        assert [r async for r in opened.checkpoints()]
        assert [t async for t in opened.threads()]
    assert _state_of(copy.parent) == before  # same bytes, and no -wal or -shm left
    assert copy.stat().st_mtime_ns == mtime


@pytest.mark.postgres
async def test_postgres_source_is_read_in_read_only_sessions(postgres_source: str) -> None:
    async with open_langgraph_source(postgres_source) as opened:
        backend = opened._reader.backend
        [(setting,)] = await backend.fetchall("SHOW default_transaction_read_only")
        assert setting == "on"
        with pytest.raises(CkptdbError, match="read-only"):
            await backend.fetchall("DELETE FROM checkpoints")
    assert len(await _records(postgres_source)) == len(_raw(postgres_source))


async def test_sqlite_schema_before_task_path(sqlite_source: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite"
    lg.sqlite_without_task_path(sqlite_source, old)
    async with open_langgraph_source(old) as opened:
        assert not opened.schema.task_path
        assert opened.schema.describe() == "langgraph-checkpoint-sqlite, writes without task_path"
    records = await _records(str(old))
    assert records and all(w.task_path is None for r in records for w in r.writes)
    _check_exact(records, _raw(str(old)))
    with _saver(str(old), tmp_path) as saver:  # the current saver adds task_path = '' to its copy
        _check_against_saver(records, saver)


@pytest.mark.postgres
async def test_postgres_schemas_of_older_releases() -> None:
    with _pg_database() as url:
        lg.write_postgres(url)
        async with open_langgraph_source(url) as opened:
            assert (opened.schema.migration, opened.schema.task_path) == (9, True)
        lg.postgres_1_0(url)
        async with open_langgraph_source(url) as opened:
            assert opened.schema.describe() == (
                "langgraph-checkpoint-postgres, no checkpoint_migrations, writes without task_path"
            )
        records = await _records(url)
        assert records and all(w.task_path is None for r in records for w in r.writes)
        _check_exact(records, _raw(url))
        with lg.postgres_saver(url) as saver:  # setup() migrates 1.0's tables as the saver would
            _check_against_saver(records, saver)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


async def test_what_is_not_a_langgraph_saver_database_is_refused_in_one_line(
    sqlite_source: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra.sqlite"
    shutil.copy(sqlite_source, extra)
    with sqlite3.connect(extra) as db:
        db.execute("ALTER TABLE writes ADD COLUMN attempt INTEGER")
    db.close()
    ckptdb_file = tmp_path / "ckptdb.db"
    await (await open_store(ckptdb_file)).close()
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, " * 100)
    cases = [
        (extra, SchemaError, "unknown schema: table writes has columns attempt that no langgraph-checkpoint"),
        (ckptdb_file, SchemaError, "not a LangGraph saver database (no checkpoints and writes tables"),
        (empty, SchemaError, "not a LangGraph saver database"),
        (text, StoreError, "is not a usable SQLite database"),
        (tmp_path / "missing.sqlite", StoreError, "no database at"),
    ]
    for path, error, message in cases:
        before = _state_of(tmp_path)
        with pytest.raises(error) as caught:
            async with open_langgraph_source(path):
                pass
        assert message in _one_line(caught), path
        assert _state_of(tmp_path) == before, path  # nothing created, nothing changed


@pytest.mark.postgres
async def test_a_newer_postgres_saver_schema_is_refused_in_one_line() -> None:
    import psycopg

    with _pg_database() as url:
        lg.write_postgres(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO checkpoint_migrations (v) VALUES (10)")
        with pytest.raises(SchemaError) as caught:
            async with open_langgraph_source(url):
                pass
        assert "unknown schema: langgraph-checkpoint-postgres migration 10, newer than the 9" in _one_line(
            caught
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE checkpoint_blobs")
        with pytest.raises(SchemaError) as caught:
            async with open_langgraph_source(url):
                pass
        assert "table checkpoint_blobs has no blob, channel" in _one_line(caught)


# ── decoding ──────────────────────────────────────────────────────────────────────────────────

TRIPPED: list[str] = []


@dataclasses.dataclass
class Tripwire:
    """A value of a type outside LangGraph's safe list: building it is what must never happen."""

    payload: str

    def __post_init__(self) -> None:
        TRIPPED.append(self.payload)


def _trip(what: str) -> None:
    TRIPPED.append(what)


class _Pickled:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_trip, ("unpickled",))


async def test_decoding_uses_the_strict_allowlist_and_never_builds_or_unpickles(
    sqlite_source: Path, tmp_path: Path
) -> None:
    path = tmp_path / "hostile.sqlite"
    shutil.copy(sqlite_source, path)
    with lg.sqlite_saver(path) as saver:
        config = saver.get_tuple({"configurable": {"thread_id": "waiting"}}).config
        saver.put_writes(config, [("notes", Tripwire("built"))], task_id="hostile-task")
        TRIPPED.clear()
        assert saver.get_tuple(config) is not None
        assert TRIPPED == ["built"], "LangGraph's default serde builds it: the check below can fail"
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, "
            "value) VALUES ('waiting', '', ?, 'pickle-task', 0, 'notes', 'pickle', ?)",
            (config["configurable"]["checkpoint_id"], pickle.dumps(_Pickled())),
        )
    db.close()
    assert pickle.loads(pickle.dumps(_Pickled())) is None and TRIPPED == ["built", "unpickled"]
    TRIPPED.clear()
    async with open_langgraph_source(path) as opened:
        record = await opened.checkpoint("waiting", "", config["configurable"]["checkpoint_id"])
    assert record is not None
    decoded = decode_checkpoint(record)
    assert TRIPPED == []
    writes = {w["task_id"]: w for w in decoded["pending_writes"]}
    assert writes["hostile-task"]["value"] == {"payload": "built"}  # the stored arguments, not built
    assert writes["pickle-task"]["value"] == {
        "$undecoded": {
            "type": "pickle",
            "bytes": len(pickle.dumps(_Pickled())),
            "error": "pickle is never loaded",
        }
    }
    json.dumps(decoded)  # JSON-able throughout


async def test_decoded_checkpoint_holds_the_graph_state(source: str) -> None:
    async with open_langgraph_source(source) as opened:
        record = await opened.checkpoint("approved")
    assert record is not None
    decoded = decode_checkpoint(record)
    values = decoded["channel_values"]
    assert values["approved"] is True
    assert values["messages"][-1]["content"] == "sent"
    assert values["messages"][-1]["type"] == "ai"
    assert values["when"] == "2026-12-04T12:00:00+00:00"
    assert decoded["metadata"]["source"] == "loop"
    assert decoded["checkpoint"]["id"] == record.checkpoint_id
    assert "channel_values" not in decoded["checkpoint"]
    json.dumps(decoded)


async def test_diff_between_two_checkpoints_names_paths(source: str) -> None:
    async with open_langgraph_source(source) as opened:
        newest, before = [r async for r in opened.history("approved")][:2]
    old_messages = decode_checkpoint(before)["channel_values"]["messages"]
    changes = diff_checkpoints(before, newest)
    added = [c for c in changes if c.path.startswith("/messages")]
    assert [(c.kind, c.path) for c in added] == [("added", f"/messages/{len(old_messages)}")]
    assert isinstance(added[0].after, dict) and added[0].after["content"] == "sent"
    assert diff_checkpoints(newest, newest) == []


def test_without_langgraph_installed_decoding_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langgraph.checkpoint.serde.jsonplus", None)
    with pytest.raises(CkptdbError) as caught:
        strict_serde()
    assert _one_line(caught) == (
        "decoding LangGraph values needs langgraph-checkpoint: pip install 'ckptdb[langgraph]'"
    )


def test_importing_ckptdb_and_the_source_reader_does_not_import_langgraph() -> None:
    code = (
        "import sys, ckptdb, ckptdb.langgraph_source, ckptdb.langgraph_decode, ckptdb.cli; "
        "print(sorted(m for m in sys.modules if m.startswith(('langgraph', 'langchain'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def test_checkpoints_older_than_format_4_are_read_exactly(tmp_path: Path) -> None:
    """Before checkpoint format 4 (langgraph-checkpoint 1.x) a checkpoint carried its pending
    `Send`s in `pending_sends`, and the parent's writes to the tasks channel held them too."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.types import Send

    path = tmp_path / "v1.sqlite"
    with lg.sqlite_saver(path) as saver:
        parent = {**empty_checkpoint(), "v": 1, "channel_values": {"topic": "cats"}}
        config = saver.put(
            {"configurable": {"thread_id": "old", "checkpoint_ns": ""}},
            parent,
            {"source": "loop", "step": 0, "writes": None},
            {"topic": 1},
        )
        saver.put_writes(config, [("__pregel_tasks", Send("write", {"topic": "cats"}))], task_id="t1")
        child = {
            **empty_checkpoint(),
            "v": 1,
            "channel_values": {"topic": "cats"},
            "pending_sends": [Send("write", {"topic": "cats"})],
        }
        saver.put(config, child, {"source": "loop", "step": 1, "writes": None}, {"topic": 2})
    records = await _records(str(path))
    assert [len(r.writes) for r in records] == [1, 0]
    _check_exact(records, _raw(str(path)))
    with _saver(str(path), tmp_path) as saver:
        _check_against_saver(records, saver)
    decoded = decode_checkpoint(records[1])
    assert decoded["checkpoint"]["v"] == 1
    assert decoded["checkpoint"]["pending_sends"] == [
        {"$type": "Send", "node": "write", "arg": {"topic": "cats"}, "timeout": None}
    ]
    assert decode_checkpoint(records[0])["pending_writes"][0]["channel"] == "__pregel_tasks"


async def test_channel_values_come_out_as_exact_pairs_per_channel_and_version(
    source: str, tmp_path: Path
) -> None:
    from ckptdb.langgraph_values import channel_values

    records = await _records(source)
    with _saver(source, tmp_path) as saver:
        for record in records:
            found = saver.get_tuple(_config(record.key)).checkpoint
            pairs = channel_values(record)
            assert pairs is not None
            if isinstance(record.checkpoint, bytes):
                assert all(
                    p.data is not None and p.data in record.checkpoint for p in pairs
                )  # cut, not re-encoded
                assert {p.channel for p in pairs} == set(found["channel_values"])
            else:
                inline = json.loads(record.checkpoint).get("channel_values") or {}
                assert {p.channel for p in pairs if p.type != "empty"} | set(inline) == set(
                    found["channel_values"]
                )
            for pair in pairs:
                assert pair.version == str(found["channel_versions"][pair.channel]), record.key
                if pair.type != "empty":
                    loaded = saver.serde.loads_typed((pair.type, pair.data))
                    assert loaded == found["channel_values"][pair.channel], (record.key, pair.channel)


def test_channel_values_refuse_broken_msgpack_in_one_line() -> None:
    from ckptdb.langgraph_values import MsgpackFramingError, channel_values

    def record(data: bytes) -> SourceCheckpoint:
        return SourceCheckpoint("t", "", "c", None, "msgpack", data, None, (), ())

    good = b"\x82\xaechannel_values\x81\xa1a\x92\x01\xc4\x02hi\xb0channel_versions\x81\xa1a\xa11"
    [pair] = channel_values(record(good)) or ()
    assert (pair.channel, pair.version, pair.data) == ("a", "1", b"\x92\x01\xc4\x02hi")
    for broken in (good[:-1], good[:20], b"\x81\xaechannel_values\xc1"):
        with pytest.raises(MsgpackFramingError) as caught:
            channel_values(record(broken))
        _one_line(caught)
    assert channel_values(SourceCheckpoint("t", "", "c", None, "json", b"{}", None, (), ())) is None


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_killed_writers_frames_stay_in_the_wal_and_the_file_is_untouched(
    sqlite_source: Path, tmp_path: Path
) -> None:
    """What a killed writer committed is in the -wal only: a reader must read it and leave both
    files as they were (a tidy that checkpointed would write the frames into the database file)."""
    copy = tmp_path / "src" / "langgraph.sqlite"
    copy.parent.mkdir()
    shutil.copy(sqlite_source, copy)
    writer = (
        "import os, signal, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "db.execute(\"INSERT INTO checkpoints SELECT 'from-the-wal', checkpoint_ns, checkpoint_id, "
        "parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints WHERE thread_id = 'approved'\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", writer, str(copy)], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    wal = Path(f"{copy}-wal")
    assert wal.stat().st_size > 0
    database, frames = _hash(copy), _hash(wal)
    for _ in range(2):
        async with open_langgraph_source(copy) as opened:
            assert "from-the-wal" in {t.thread_id async for t in opened.threads()}
        assert (_hash(copy), _hash(wal)) == (database, frames)


async def test_files_a_live_reader_uses_stay_and_go_once_it_is_gone(
    sqlite_source: Path, tmp_path: Path
) -> None:
    """Another process reading the source keeps its -wal and -shm; once it has ended (a read-only
    connection leaves them on close), the next read removes them."""
    copy = tmp_path / "src" / "langgraph.sqlite"
    copy.parent.mkdir()
    shutil.copy(sqlite_source, copy)
    before = _state_of(copy.parent)
    reader = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)\n"
        "print(db.execute('SELECT count(*) FROM checkpoints').fetchone()[0], flush=True)\n"
        "sys.stdin.read()\n"
        "print(db.execute('SELECT count(*) FROM checkpoints').fetchone()[0], flush=True)\n"
    )
    live = subprocess.Popen(
        [sys.executable, "-c", reader, str(copy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout is not None
        count = live.stdout.readline().strip()
        assert int(count) > 0
        names = {p.name for p in copy.parent.iterdir()}
        assert names == {"langgraph.sqlite", "langgraph.sqlite-wal", "langgraph.sqlite-shm"}
        files = {name: (copy.parent / name).stat().st_ino for name in names}
        async with open_langgraph_source(copy) as opened:
            assert [t async for t in opened.threads()]
        # still in use: kept, the very same files (not removed and made again)
        assert {name: (copy.parent / name).stat().st_ino for name in names} == files
        out, _ = live.communicate("", timeout=60)
        assert out.strip() == count  # it read on, undisturbed
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
    assert {p.name for p in copy.parent.iterdir()} == names  # left by the reader's close
    async with open_langgraph_source(copy) as opened:
        assert [t async for t in opened.threads()]
    assert _state_of(copy.parent) == before
