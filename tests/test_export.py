"""`ckptdb export`, and the lossless round trip files -> database -> files, on the shared fixtures
(written by the real Rust serializers) and on hand-built edge cases. Every test that reads or writes a
database runs on SQLite and on PostgreSQL (`engine`, `db_target`); where PostgreSQL must differ (it
cannot store U+0000 in a text field) the test says so."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import canonical_sha256, module_db_target, pg_database_url
from helpers.db import display, fill, has_database, is_postgres
from helpers.processes import descendants, wait_gone

from ckptdb import Checkpoint, FileCheckpointStore, InterruptType, StoreError, Timestamp, open_store
from ckptdb import exporter as exporter_module
from ckptdb.cli import main
from ckptdb.exporter import ExportOptions, ExportOutcome, export_checkpoints

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import gen_echo

TIME = re.compile(r"\(\d+\.\d s\)")


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def out(result: Result) -> str:
    return TIME.sub("(T s)", result.stdout)


@pytest.fixture(scope="module")
def fixtures_db(tmp_path_factory: pytest.TempPathFactory, fixture_dir: Path, engine: str) -> Iterator[str]:
    """The 300 shared fixtures imported once per engine (tests only read it)."""
    with module_db_target(engine, tmp_path_factory.mktemp("db")) as db:
        result = cli("--db", db, "import", str(fixture_dir))
        assert result.exit_code == 0, result.output
        yield db


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


# ── the round trip ────────────────────────────────────────────────────────────────────────────────


def test_all_300_fixtures_round_trip_byte_for_byte(
    tmp_path: Path, fixtures_db: str, fixture_dir: Path, manifest: dict[str, Any]
) -> None:
    result = cli("--db", fixtures_db, "export", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert (
        out(result)
        == "300 checkpoints: 300 exported, 0 overwritten, 0 unchanged, 0 conflict, 0 skipped (T s)\n"
    )
    assert result.stderr == ""  # no progress bar when not a terminal
    assert names(tmp_path / "out") == {entry["path"] for entry in manifest["files"]}
    for entry in manifest["files"]:
        exported = (tmp_path / "out" / entry["path"]).read_bytes()
        assert canonical_sha256(exported) == entry["sha256_canonical"], entry["path"]
        assert exported == (fixture_dir / entry["path"]).read_bytes(), entry["path"]


def test_exported_directory_reads_back_with_the_file_store(tmp_path: Path, fixtures_db: str) -> None:
    assert cli("--db", fixtures_db, "export", str(tmp_path / "out")).exit_code == 0

    async def check() -> None:
        files = FileCheckpointStore(tmp_path / "out")
        async with await open_store(fixtures_db) as db:
            listed = await files.list()
            assert len(listed) == 300
            assert [info.id for info in listed] == [info.id async for info in db.iter_query(limit=None)]
            for info in listed:
                from_files, from_db = await files.load(info.id), await db.load(info.id)
                assert from_files is not None and from_db is not None
                assert from_files.to_json() == from_db.to_json()

    asyncio.run(check())


def _edge_cases() -> dict[str, Checkpoint]:
    def make(cid: str, **changes: Any) -> Checkpoint:
        checkpoint = Checkpoint(
            id=cid,
            graph_name="edge",
            current_node="n",
            state_snapshot={"messages": [], "values": {"x": 1}},
            path=["a", "n"],
            step_count=2,
            created_at=Timestamp.parse("2026-11-03T09:50:52.350Z"),
            pending_action=None,
            interrupt_type=InterruptType.AFTER_NODE,
        )
        for key, value in changes.items():
            setattr(checkpoint, key, value)
        return checkpoint

    return {
        "newer-version": make(
            "edge-newer",
            created_at=Timestamp.parse("2026-11-03T17:50:52.123456789+08:00"),
            extra={"parent_checkpoint_id": "edge-u64", "label": "before deploy 🚀", "tags": ["prod", "审批"]},
        ),
        "u64": make("edge-u64", step_count=2**64 - 1, state_snapshot={"big": 2**64 - 1, "neg": -(2**63)}),
        "nul": make(
            "edge-nul",
            graph_name="g\u0000raph",
            state_snapshot={"raw": "a\u0000b\u0001", "k\u0000ey": [None, True]},
            pending_action={"tool": "x\u0000y"},
            interrupt_type=InterruptType.TOOL_APPROVAL,
        ),
        "floats": make(
            "edge-floats",
            state_snapshot={"f": [1e16, 1.5e-7, 0.1, 0.30000000000000004, -0.0, 6.02214076e23, 123456789.0]},
        ),
        "times-0": make("edge-t0", created_at=Timestamp.parse("2026-11-03T01:03:47Z")),
        "times-6": make("edge-t6", created_at=Timestamp.parse("2026-11-16T11:28:27.718770Z")),
        "times-odd-digits": make("edge-todd", created_at=Timestamp.parse("2026-11-16T11:28:27.120000Z")),
        "null-state": make("edge-null", state_snapshot=None, path=[]),
        "unicode": make("édge-ユニコード-🙂", state_snapshot={"text": "日本語 👩‍👩‍👧 \u2028"}),
    }


def test_edge_cases_round_trip_byte_for_byte(tmp_path: Path, db_target: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name, checkpoint in _edge_cases().items():
        (source / f"{name}.json").write_bytes(checkpoint.to_json().encode("utf-8"))
    imported = cli("--db", db_target, "import", str(source))
    edges = _edge_cases()
    if is_postgres(db_target):  # PostgreSQL text cannot hold U+0000: the NUL graph name is refused
        assert imported.exit_code == 3, imported.output
        assert (
            out(imported)
            .splitlines()[0]
            .startswith(f"invalid   {source}/nul.json: field 'graph_name': contains U+0000 (NUL)")
        )
        del edges["nul"]
    else:
        assert imported.exit_code == 0, imported.output
    exported = cli("--db", db_target, "export", str(tmp_path / "out"))
    assert exported.exit_code == 0
    assert names(tmp_path / "out") == {f"{checkpoint.id}.json" for checkpoint in edges.values()}
    for name, checkpoint in edges.items():
        original = (source / f"{name}.json").read_bytes()
        written = (tmp_path / "out" / f"{checkpoint.id}.json").read_bytes()
        assert written == original, name
        assert canonical_sha256(written) == canonical_sha256(original), name


@pytest.mark.postgres
def test_round_trip_through_postgresql_refusing_only_what_it_cannot_hold(
    tmp_path: Path, fixture_dir: Path
) -> None:
    """PostgreSQL text cannot hold U+0000: the one file with a NUL in its graph name is refused (its
    batch's other rows are still written), everything else comes back byte for byte."""
    url = pg_database_url()
    edges = tmp_path / "edges"
    edges.mkdir()
    for name, checkpoint in _edge_cases().items():
        (edges / f"{name}.json").write_bytes(checkpoint.to_json().encode("utf-8"))
    result = cli("--db", url, "import", str(fixture_dir), str(edges), "--report", str(tmp_path / "r.json"))
    assert result.exit_code == 3
    files = json.loads((tmp_path / "r.json").read_text())["files"]
    refused = [entry for entry in files if entry["outcome"] != "imported"]
    assert [(entry["relative"], entry["outcome"]) for entry in refused] == [("nul.json", "invalid")]
    assert refused[0]["reason"].startswith("field 'graph_name': contains U+0000 (NUL)")
    assert (
        out(result).splitlines()[-1]
        == "309 files: 308 imported, 0 unchanged, 0 conflict, 1 invalid, 0 skipped (T s)"
    )
    exported = cli("--db", url, "export", str(tmp_path / "out"))
    assert exported.exit_code == 0
    originals = {p.name: p.read_bytes() for p in fixture_dir.iterdir()}
    originals |= {
        f"{cp.id}.json": cp.to_json().encode("utf-8") for name, cp in _edge_cases().items() if name != "nul"
    }
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == originals


# ── filters ───────────────────────────────────────────────────────────────────────────────────────


def _expected(manifest: dict[str, Any], keep: Callable[[dict[str, Any]], bool]) -> set[str]:
    return {f"{entry['id']}.json" for entry in manifest["files"] if keep(entry)}


def test_filters_select_what_the_query_selects(
    tmp_path: Path, fixtures_db: str, manifest: dict[str, Any]
) -> None:
    files = manifest["files"]
    graph = max({e["graph_name"] for e in files}, key=lambda g: sum(e["graph_name"] == g for e in files))
    node = max({e["current_node"] for e in files}, key=lambda n: sum(e["current_node"] == n for e in files))
    times = sorted(files, key=lambda e: e["created_at_unix_nanos"])
    since, until = times[100], times[200]
    lo, hi = since["created_at_unix_nanos"], until["created_at_unix_nanos"]
    types = ("toolapproval", "userrequest")
    cases: list[tuple[list[str], Callable[[dict[str, Any]], bool]]] = [
        (["--graph", graph], lambda e: e["graph_name"] == graph),
        (["--node", node], lambda e: e["current_node"] == node),
        (["--type", types[0], "--type", types[1]], lambda e: e["interrupt_type"] in types),
        (
            ["--since", since["created_at"], "--until", until["created_at"]],
            lambda e: lo <= e["created_at_unix_nanos"] < hi,
        ),
        (
            ["--graph", graph, "--type", "afternode"],
            lambda e: e["graph_name"] == graph and e["interrupt_type"] == "afternode",
        ),
    ]
    for index, (flags, keep) in enumerate(cases):
        target = tmp_path / f"out{index}"
        result = cli("--db", fixtures_db, "export", str(target), *flags)
        assert result.exit_code == 0, flags
        expected = _expected(manifest, keep)
        assert expected, f"{flags} selects nothing: a useless test case"
        assert names(target) == expected, flags
    assert (
        len(_expected(manifest, lambda e: since["created_at_unix_nanos"] <= e["created_at_unix_nanos"]))
        == 200
    )


def test_bad_filter_values_are_one_line_errors(tmp_path: Path, fixtures_db: str) -> None:
    bad_time = cli("--db", fixtures_db, "export", str(tmp_path / "o"), "--since", "yesterday")
    assert bad_time.exit_code == 1
    assert bad_time.stderr.startswith("Error: --since: cannot read 'yesterday' as a time: use a date")
    bad_type = cli("--db", fixtures_db, "export", str(tmp_path / "o"), "--type", "Before")
    assert bad_type.exit_code == 1
    assert bad_type.stderr == (
        "Error: unknown interrupt type 'Before': use beforenode, afternode, toolapproval or userrequest\n"
    )
    assert not (tmp_path / "o").exists()


# ── existing files, unsafe ids, durability ────────────────────────────────────────────────────────


def test_existing_files_unchanged_conflict_and_overwrite(tmp_path: Path, fixtures_db: str) -> None:
    target = tmp_path / "out"
    assert cli("--db", fixtures_db, "export", str(target)).exit_code == 0
    files = sorted(target.iterdir())
    edited, relaid, kept = files[0], files[1], files[2]
    original_edited = edited.read_bytes()
    edited.write_bytes(original_edited.replace(b'"step_count": ', b'"step_count": 1'))
    relaid.write_text(
        json.dumps(json.loads(relaid.read_bytes()), ensure_ascii=False)
    )  # same content, compact
    relaid_bytes, kept_mtime = relaid.read_bytes(), kept.stat().st_mtime_ns

    again = cli("--db", fixtures_db, "export", str(target))
    assert again.exit_code == 3
    assert out(again) == (
        f"conflict  {edited}: exists with different content: left as it is (--overwrite replaces it)\n"
        "300 checkpoints: 0 exported, 0 overwritten, 299 unchanged, 1 conflict, 0 skipped (T s)\n"
    )
    assert edited.read_bytes() != original_edited
    assert relaid.read_bytes() == relaid_bytes  # same checkpoint in another layout: left alone
    assert kept.stat().st_mtime_ns == kept_mtime  # identical files are not rewritten

    forced = cli("--db", fixtures_db, "export", str(target), "--overwrite")
    assert forced.exit_code == 0
    assert (
        out(forced)
        == "300 checkpoints: 0 exported, 1 overwritten, 299 unchanged, 0 conflict, 0 skipped (T s)\n"
    )
    assert edited.read_bytes() == original_edited
    assert not [p for p in target.iterdir() if ".tmp" in p.name]


def test_ids_unsafe_as_file_names_are_reported_not_written(tmp_path: Path, db_target: str) -> None:
    ok = next(iter(_edge_cases().values()))
    # PostgreSQL cannot store an id holding U+0000 at all (saving it is refused): one case fewer there.
    ids = ["../escape", "a/b", "nul\u0000id", "tab\tid"]
    if is_postgres(db_target):
        ids.remove("nul\u0000id")
    unsafe = [Checkpoint.from_json(ok.to_json()) for _ in ids]
    for checkpoint, cid in zip(unsafe, ids, strict=True):
        checkpoint.id = cid
    fill(db_target, [ok, *unsafe])
    result = cli("--db", db_target, "export", str(tmp_path / "out"))
    assert result.exit_code == 3
    lines = out(result).splitlines()
    unusable = "it cannot be used as a file name"
    separator, control = "contains a path separator", "contains NUL or a control character"
    expected = {
        "../escape": f"skipped   id '../escape': checkpoint id '../escape' {separator}: {unusable}",
        "a/b": f"skipped   id 'a/b': checkpoint id 'a/b' {separator}: {unusable}",
        "nul\u0000id": f"skipped   id 'nul\\x00id': checkpoint id 'nul\\x00id' {control}: {unusable}",
        "tab\tid": f"skipped   id 'tab\\tid': checkpoint id 'tab\\tid' {control}: {unusable}",
    }
    assert sorted(lines[:-1]) == sorted(expected[cid] for cid in ids)
    assert lines[-1] == (
        f"{len(ids) + 1} checkpoints: 1 exported, 0 overwritten, 0 unchanged, 0 conflict, "
        f"{len(ids)} skipped (T s)"
    )
    assert names(tmp_path / "out") == {f"{ok.id}.json"}
    database_file = [] if is_postgres(db_target) else ["checkpoints.db"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [*database_file, "out"]


@pytest.mark.parametrize("mode", ["syncfs", "fsync-each-file", "syncfs-unavailable"])
async def test_durable_before_renamed_and_the_directory_synced_once_per_batch(
    tmp_path: Path, fixtures_db: str, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    if mode != "fsync-each-file" and exporter_module._SYNCFS is None:
        pytest.skip("no syncfs(2) here: every file is fsynced on its own")
    events: list[str] = []
    real_fsync, real_replace, real_sync_fs = os.fsync, os.replace, exporter_module.sync_filesystem

    def sync_fs(directory: Path) -> bool:
        events.append("syncfs")
        return real_sync_fs(directory) if mode == "syncfs" else False

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def rename(src: Any, dst: Any) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(exporter_module, "sync_filesystem", sync_fs)
    monkeypatch.setattr(exporter_module, "fsync_directory", lambda d: events.append("dirsync"))
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", rename)
    progress: list[tuple[str, int, int]] = []
    options = ExportOptions(batch_size=128, fsync_each_file=mode == "fsync-each-file")
    async with await open_store(fixtures_db) as store:
        report = await export_checkpoints(
            store, tmp_path / "out", options=options, progress_callback=lambda *a: progress.append(a)
        )
    assert report.counts[ExportOutcome.EXPORTED] == 300
    assert progress == [("exporting", n, 300) for n in (0, 128, 256, 300)]
    assert events.count("dirsync") == 3 and events.count("rename") == 300
    if mode == "syncfs":  # per batch: one sync, then the renames, then one directory sync
        assert events == (["syncfs"] + ["rename"] * 128 + ["dirsync"]) * 2 + ["syncfs"] + ["rename"] * 44 + [
            "dirsync"
        ]
    elif mode == "syncfs-unavailable":  # the batch's files are fsynced one by one before any rename
        assert events.count("syncfs") == 3 and events.count("fsync") == 300
        first_batch = events[: events.index("dirsync")]
        assert first_batch == ["syncfs"] + ["fsync"] * 128 + ["rename"] * 128
    else:  # write_file_atomic, file by file in a pool of threads (each fsyncs before it renames)
        assert "syncfs" not in events and events.count("fsync") == 300
    assert len(names(tmp_path / "out")) == 300
    assert not [name for name in names(tmp_path / "out") if not name.endswith(".json")]


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Iterator[str]:
    """4,000 small generated checkpoints in a database: an export of it can be caught half-way."""
    root = tmp_path_factory.mktemp("big")
    gen_echo.generate(root / "ckpts", 4000, seed=11, state_bytes=200)
    with module_db_target(engine, root) as db:
        assert cli("--db", db, "import", str(root / "ckpts")).exit_code == 0
        yield db


def test_killed_export_leaves_only_complete_files_and_a_rerun_finishes(tmp_path: Path, big_db: str) -> None:
    target = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "ckptdb",
        "--db",
        big_db,
        "export",
        str(target),
        "--batch-size",
        "10",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if target.is_dir() and sum(1 for _ in os.scandir(target)) >= 300:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the export finished before it could be killed"
        helpers = descendants(proc.pid)  # the writer process: it must stop with the export
        proc.kill()
    finally:
        proc.wait()
    assert helpers, "a 4,000-checkpoint export should write in a helper process"
    assert not wait_gone(helpers), "helpers outlived the export"
    written = [p for p in target.iterdir() if p.name.endswith(".json")]
    leftovers = [p for p in target.iterdir() if not p.name.endswith(".json")]
    assert 0 < len(written) < 4000
    assert all(p.name.endswith(".json.tmp") for p in leftovers) and len(leftovers) <= 10
    for path in written:  # no final name ever points at a partial file
        assert Checkpoint.from_json(path.read_bytes()).id + ".json" == path.name
    rerun = cli("--db", big_db, "export", str(target))
    assert rerun.exit_code == 0
    done = len(written)
    counts = f"{4000 - done} exported, 0 overwritten, {done} unchanged, 0 conflict, 0 skipped"
    assert out(rerun) == f"4000 checkpoints: {counts} (T s)\n"
    assert len([p for p in target.iterdir() if p.name.endswith(".json")]) == 4000


def test_a_failed_write_renames_nothing_of_its_batch_and_leaves_no_temp_file(
    tmp_path: Path, fixtures_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if exporter_module._SYNCFS is None:
        pytest.skip("no syncfs(2) here: files are written one by one with write_file_atomic")
    real_write_temp = exporter_module._write_temp
    calls = 0

    def disk_full_at_the_50th(directory: Path, name: str, data: bytes) -> Path:
        nonlocal calls
        calls += 1
        if calls == 50:
            raise StoreError(f"cannot write {directory / name}: No space left on device")
        return real_write_temp(directory, name, data)

    monkeypatch.setattr(exporter_module, "_write_temp", disk_full_at_the_50th)
    result = cli("--db", fixtures_db, "export", str(tmp_path / "out"), "--batch-size", "100")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot write {tmp_path}/out/")
    assert result.stderr.endswith(": No space left on device\n")
    assert names(tmp_path / "out") == set()  # the first batch failed as a whole: nothing renamed, no temp


def test_missing_database_is_an_error_and_is_not_created(tmp_path: Path, db_target: str) -> None:
    result = cli("--db", db_target, "export", str(tmp_path / "out"))
    assert result.exit_code == 1
    if is_postgres(db_target):  # the database exists (ckptdb never creates one), its schema does not
        assert result.stderr == (
            f"Error: {db_target} has no ckptdb schema: run `ckptdb --db {db_target} db upgrade`\n"
        )
    else:
        assert result.stderr == (
            f"Error: no database at {display(db_target)}: check the path or --db (nothing was created)\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not has_database(db_target)


def test_target_that_is_a_file_is_refused(tmp_path: Path, fixtures_db: str) -> None:
    (tmp_path / "f").write_text("not a directory")
    result = cli("--db", fixtures_db, "export", str(tmp_path / "f"))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path}/f exists and is not a directory: pass a directory\n"


def test_a_fifo_or_a_directory_in_the_way_is_a_conflict_never_a_hang(
    tmp_path: Path, fixtures_db: str
) -> None:
    """Export reads an existing `{id}.json` to compare it: a FIFO of that name blocked that read
    forever (no writer comes). Each thing that is not a file is reported and left as it is, even
    with --overwrite. A real process, so a hang is caught by its timeout instead of stalling the run."""
    target = tmp_path / "out"
    assert cli("--db", fixtures_db, "export", str(target)).exit_code == 0
    fifo, directory = sorted(target.iterdir())[:2]
    fifo.unlink()
    os.mkfifo(fifo)
    directory.unlink()
    directory.mkdir()
    for extra in ([], ["--overwrite"]):
        done = subprocess.run(
            [sys.executable, "-m", "ckptdb", "--db", fixtures_db, "export", str(target), *extra],
            capture_output=True,
            text=True,
            timeout=120,  # a hang guard, not a measurement
        )
        assert done.returncode == 3, done.stderr
        assert f"conflict  {fifo}: a FIFO of that name is in the way: left as it is\n" in done.stdout
        assert (
            f"conflict  {directory}: a directory of that name is in the way: left as it is\n" in done.stdout
        )
        assert "0 exported, 0 overwritten, 298 unchanged, 2 conflict" in done.stdout
    assert fifo.is_fifo() and directory.is_dir()
