"""FileCheckpointStore specifics: the echo directory layout, Rust-compatible listing, safe ids, fsync."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from ckptdb import (
    Checkpoint,
    FileCheckpointStore,
    InterruptType,
    InvalidCheckpointError,
    InvalidIdError,
    Timestamp,
)

BASE = 1_793_667_827_000_000_000


def make(checkpoint_id: str, nanos: int = BASE, **overrides: Any) -> Checkpoint:
    fields: dict[str, Any] = {
        "id": checkpoint_id,
        "graph_name": "g",
        "current_node": "n",
        "state_snapshot": {"values": {"x": 1, "text": "é 🐛"}},
        "path": ["start"],
        "step_count": 1,
        "created_at": Timestamp(nanos),
        "pending_action": None,
        "interrupt_type": InterruptType.AFTER_NODE,
    }
    fields.update(overrides)
    return Checkpoint(**fields)


def tree(root: Path) -> dict[str, str]:
    """Every entry under root (recursive) -> content hash ('dir' for directories)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# ── layout ────────────────────────────────────────────────────────────────────────────────────────


async def test_file_is_named_by_id_and_holds_exactly_to_json(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "ckpts"  # created on first save
    store = FileCheckpointStore(directory)
    cp = make("5f0c6d2e-0000-4000-8000-000000000001", extra={"tags": ["x"]})
    await store.save(cp)
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["5f0c6d2e-0000-4000-8000-000000000001.json"]
    data = (directory / files[0]).read_bytes()
    assert data == cp.to_json().encode("utf-8")
    assert not data.endswith(b"\n")
    assert data.startswith(b'{\n  "id": "5f0c6d2e-0000-4000-8000-000000000001",\n  "graph_name"')


async def test_no_tmp_files_are_left_behind(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    await store.save(make("one"))
    await store.save(make("one", BASE + 1))  # replace
    await store.save_many([make(f"many-{i}", BASE + i) for i in range(5)])
    with pytest.raises(InvalidCheckpointError):
        await store.save(make("bad", state_snapshot={"x": float("nan")}))
    with pytest.raises(InvalidCheckpointError):
        await store.save_many([make("ok"), make("bad2", state_snapshot="\ud800")])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["one.json"] + [f"many-{i}.json" for i in range(5)])
    assert not list(tmp_path.glob("*.tmp"))


async def test_unsynced_mode_also_leaves_no_tmp(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path, fsync=False)
    cp = make("fast")
    await store.save(cp)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.json"]
    assert (tmp_path / "fast.json").read_bytes() == cp.to_json().encode("utf-8")


@pytest.mark.parametrize("fsync", [True, False])
@pytest.mark.parametrize("longest_id", ["i" * 240, "检" * 80], ids=["ascii", "cjk"])
async def test_the_longest_allowed_id_saves_in_both_modes(
    tmp_path: Path, fsync: bool, longest_id: str
) -> None:
    """240 bytes is the id limit; the temp file beside it must fit the file system's 255 bytes too."""
    store = FileCheckpointStore(tmp_path, fsync=fsync)
    await store.save(make(longest_id))
    await store.save(make(longest_id, BASE + 1))  # a replace goes through a temp file again
    assert [p.name for p in tmp_path.iterdir()] == [f"{longest_id}.json"]
    loaded = await store.load(longest_id)
    assert loaded is not None and loaded.created_at == Timestamp(BASE + 1)


async def test_concurrent_unsynced_saves_of_one_id_each_land_whole(tmp_path: Path) -> None:
    """Without fsync the temp file is still unique per write: two saves of one id at once never
    rename each other's temp file away (one used to fail with a raw FileNotFoundError)."""
    store = FileCheckpointStore(tmp_path, fsync=False)
    big = {"blob": "x" * 2_000_000}
    for round_ in range(5):
        await asyncio.gather(*(store.save(make("same", BASE + i, state_snapshot=big)) for i in range(4)))
        assert [p.name for p in tmp_path.iterdir()] == ["same.json"], round_
    loaded = await store.load("same")
    assert loaded is not None and loaded.state_snapshot == big


async def test_non_ascii_id_is_a_utf8_file_name(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    await store.save(make("检查点-🐛"))
    assert (tmp_path / "检查点-🐛.json").is_file()
    loaded = await store.load("检查点-🐛")
    assert loaded is not None and loaded.id == "检查点-🐛"


async def test_export_of_every_fixture_is_byte_identical_to_the_rust_file(
    tmp_path: Path, fixture_dir: Path, manifest: dict[str, Any]
) -> None:
    store = FileCheckpointStore(tmp_path / "export")
    await store.save_many(
        Checkpoint.from_json((fixture_dir / e["path"]).read_bytes()) for e in manifest["files"]
    )
    for entry in manifest["files"]:
        written = (tmp_path / "export" / f"{entry['id']}.json").read_bytes()
        assert hashlib.sha256(written).hexdigest() == entry["sha256_raw"], entry["path"]
    assert len(list((tmp_path / "export").iterdir())) == 300


async def test_data_persists_for_a_second_store_on_the_same_directory(tmp_path: Path) -> None:
    async with FileCheckpointStore(tmp_path) as first:
        await first.save(make("kept", BASE + 5))
        await first.save(make("gone", BASE + 9))
        await first.delete("gone")
    async with FileCheckpointStore(tmp_path) as second:
        assert [i.id for i in await second.list()] == ["kept"]
        loaded = await second.load("kept")
        assert loaded is not None and loaded.created_at.unix_nanos == BASE + 5


# ── reading a real echo directory ─────────────────────────────────────────────────────────────────


async def test_reads_the_shared_fixture_directory_as_is(fixture_dir: Path, manifest: dict[str, Any]) -> None:
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in fixture_dir.iterdir()}
    store = FileCheckpointStore(fixture_dir)  # read-only use: never save/delete/clear here
    infos = await store.list()
    assert len(infos) == manifest["expected"]["rust_FileCheckpointStore_list_count"] == 300
    assert {i.id for i in infos} == {e["id"] for e in manifest["files"]}
    nanos = [i.created_at.unix_nanos for i in infos]
    assert nanos == sorted(nanos, reverse=True)
    entry = manifest["files"][42]
    loaded = await store.load(entry["id"])
    assert loaded is not None
    assert loaded.to_json().encode("utf-8") == (fixture_dir / entry["path"]).read_bytes()
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in fixture_dir.iterdir()} == before


@pytest.fixture
def messy_dir(tmp_path: Path, fixture_dir: Path, manifest: dict[str, Any]) -> Path:
    """The fixtures plus what real echo directories also contain (FILE_FORMAT.md)."""
    directory = tmp_path / "messy"
    shutil.copytree(fixture_dir, directory)
    first = manifest["files"][0]
    first_id: str = first["id"]
    sample: bytes = (fixture_dir / first["path"]).read_bytes()

    def with_id(new_id: str) -> bytes:
        return sample.replace(f'"id": "{first_id}"'.encode(), f'"id": "{new_id}"'.encode(), 1)

    (directory / "empty.json").write_bytes(b"")
    (directory / "truncated.json").write_bytes(sample[: len(sample) // 2])
    (directory / "not-a-checkpoint.json").write_bytes(b'{"hello": "world"}')
    (directory / "wrong-case.json").write_bytes(
        sample.replace(b'"interrupt_type": "', b'"interrupt_type": "X')
    )
    (directory / "latin1.json").write_bytes(sample.replace(b'"graph_name": "', b'"graph_name": "\xe9'))
    (directory / "array.json").write_bytes(b"[]")
    (directory / "abandoned.json.tmp").write_bytes(with_id("in-a-tmp"))
    (directory / "cut.json.tmp").write_bytes(sample[:100])
    (directory / "notes.txt").write_bytes(with_id("in-notes-txt"))
    (directory / "archive").mkdir()
    (directory / "archive" / "old.json").write_bytes(with_id("in-archive"))
    (directory / "folder.json").mkdir()
    (directory / "renamed.json").write_bytes(
        with_id("renamed-copy")
    )  # valid: file name need not equal the id
    return directory


async def test_list_skips_what_the_rust_store_skips(messy_dir: Path, manifest: dict[str, Any]) -> None:
    store = FileCheckpointStore(messy_dir)
    infos = await store.list()
    got = {i.id for i in infos}
    assert len(infos) == 301
    assert got == {e["id"] for e in manifest["files"]} | {"renamed-copy"}
    assert not got & {"in-a-tmp", "in-notes-txt", "in-archive"}  # *.json.tmp, notes.txt, archive/
    assert len((await store.query(limit=None)).items) == 301


async def test_load_of_a_broken_file_names_the_file(messy_dir: Path) -> None:
    store = FileCheckpointStore(messy_dir)
    for name in ("empty", "truncated", "not-a-checkpoint", "wrong-case", "latin1", "array"):
        with pytest.raises(InvalidCheckpointError) as info:
            await store.load(name)
        assert str(messy_dir / f"{name}.json") in str(info.value)


async def test_clear_removes_only_top_level_json_files(messy_dir: Path) -> None:
    store = FileCheckpointStore(messy_dir)
    await store.clear()
    assert await store.list() == []
    left = sorted(p.name for p in messy_dir.iterdir())
    assert left == ["abandoned.json.tmp", "archive", "cut.json.tmp", "folder.json", "notes.txt"]
    assert (messy_dir / "archive" / "old.json").is_file()


async def test_a_stale_tmp_from_a_crash_does_not_block_saving(tmp_path: Path) -> None:
    (tmp_path / "cp.json.tmp").write_bytes(b'{"id": "cp", "trunc')
    store = FileCheckpointStore(tmp_path)
    await store.save(make("cp"))
    loaded = await store.load("cp")
    assert loaded is not None and loaded.id == "cp"
    assert [i.id for i in await store.list()] == ["cp"]


# ── hostile ids ───────────────────────────────────────────────────────────────────────────────────

HOSTILE_IDS = ["", "../x", "a/b", "a\\b", "..", "x\x00y", "x\ny", "/etc/passwd", "C:evil", "i" * 300]


@pytest.mark.parametrize("bad_id", HOSTILE_IDS, ids=[repr(i)[:20] for i in HOSTILE_IDS])
async def test_hostile_ids_are_refused_with_nothing_written(tmp_path: Path, bad_id: str) -> None:
    directory = tmp_path / "root" / "ckpts"
    store = FileCheckpointStore(directory)
    await store.save(make("good"))
    (tmp_path / "x.json").write_bytes(b"bystander")  # what '../x' would clobber
    before = tree(tmp_path)

    with pytest.raises(InvalidIdError):
        await store.save(make(bad_id))
    with pytest.raises(InvalidIdError):
        await store.save_many([make("fine"), make(bad_id)])
    with pytest.raises(InvalidIdError):
        await store.load(bad_id)
    with pytest.raises(InvalidIdError):
        await store.delete(bad_id)

    assert tree(tmp_path) == before
    assert [i.id for i in await store.list()] == ["good"]
    assert not Path("/etc/passwd.json").exists()


def test_hostile_id_errors_say_why(tmp_path: Path) -> None:
    from ckptdb.files import check_file_id

    assert check_file_id("5f0c6d2e-0000-4000-8000-000000000001") == "5f0c6d2e-0000-4000-8000-000000000001"
    assert check_file_id("run-42.step-7") == "run-42.step-7"
    for bad_id, words in [
        ("", "empty"),
        ("a/b", "separator"),
        ("..", ".."),
        ("x\x00y", "control"),
        ("i" * 300, "longer"),
    ]:
        with pytest.raises(InvalidIdError, match=words):
            check_file_id(bad_id)


# ── durability ────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def fsync_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record every os.fsync as (kind, inode), then really fsync (we cannot pull the power)."""
    calls: list[tuple[str, int]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        st = os.fstat(fd)
        calls.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return calls


async def test_save_fsyncs_the_file_then_the_directory(
    tmp_path: Path, fsync_calls: list[tuple[str, int]]
) -> None:
    store = FileCheckpointStore(tmp_path)
    await store.save(make("durable"))
    file_inode = (tmp_path / "durable.json").stat().st_ino
    dir_inode = tmp_path.stat().st_ino
    assert ("file", file_inode) in fsync_calls  # the data reached disk before the rename...
    assert ("dir", dir_inode) in fsync_calls  # ...and the rename itself was made durable
    last_dir_sync = max(n for n, call in enumerate(fsync_calls) if call == ("dir", dir_inode))
    assert fsync_calls.index(("file", file_inode)) < last_dir_sync


async def test_save_many_fsyncs_every_file_and_the_directory_last(
    tmp_path: Path, fsync_calls: list[tuple[str, int]]
) -> None:
    store = FileCheckpointStore(tmp_path)
    await store.save_many([make(f"b{i}") for i in range(3)])
    inodes = {(tmp_path / f"b{i}.json").stat().st_ino for i in range(3)}
    assert {ino for kind, ino in fsync_calls if kind == "file"} == inodes
    assert fsync_calls[-1] == ("dir", tmp_path.stat().st_ino)


async def test_delete_and_clear_fsync_the_directory(
    tmp_path: Path, fsync_calls: list[tuple[str, int]]
) -> None:
    store = FileCheckpointStore(tmp_path)
    await store.save_many([make("d1"), make("d2")])
    fsync_calls.clear()
    await store.delete("d1")
    assert fsync_calls == [("dir", tmp_path.stat().st_ino)]
    fsync_calls.clear()
    await store.delete("d1")  # absent: nothing to make durable
    assert fsync_calls == []
    await store.clear()
    assert fsync_calls == [("dir", tmp_path.stat().st_ino)]
    assert not list(tmp_path.iterdir())


async def test_fsync_false_skips_fsync(tmp_path: Path, fsync_calls: list[tuple[str, int]]) -> None:
    store = FileCheckpointStore(tmp_path, fsync=False)
    await store.save(make("quick"))
    await store.delete("quick")
    assert fsync_calls == []
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fsync", [True, False])
async def test_file_mtimes_follow_the_save_order(tmp_path: Path, fsync: bool) -> None:
    """The save order of the file store is its files' mtimes: strictly increasing in save order,
    also for quick saves, whose kernel timestamps tie (with the kernel's own mtimes, 110 distinct
    for these 150 saves on Linux 6.18); a re-save moves its file to the end."""
    store = FileCheckpointStore(tmp_path, fsync=fsync)
    order = [f"c{i:03d}" for i in range(150)]
    for cid in order[:100]:
        await store.save(make(cid))
    await store.save_many(make(cid) for cid in order[100:])
    await store.save(make("c000"))
    order = [*order[1:], "c000"]
    by_mtime = sorted(order, key=lambda cid: (tmp_path / f"{cid}.json").stat().st_mtime_ns)
    assert by_mtime == order
    assert len({(tmp_path / f"{cid}.json").stat().st_mtime_ns for cid in order}) == len(order)
    latest = await store.latest("g")
    assert latest is not None and latest.id == "c000"
