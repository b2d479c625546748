"""`ckptdb import` on real files: the shared fixtures, make_bad_dir's damaged directories, generated
directories, and real subprocesses killed or interrupted in the middle and then resumed. Every test
runs on SQLite and on PostgreSQL (`db_target`) and reads what was stored through the store API
(helpers.db), so the assertions are the same on both."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import new_db_target
from helpers.db import (
    count_rows,
    display,
    has_database,
    is_postgres,
    stored,
    stored_ids,
    stored_rows_async,
    write_marks,
)
from helpers.db import stored_rows as rows
from helpers.processes import descendants, wait_gone
from helpers.terminal import run_on_terminal

from ckptdb import Checkpoint, open_store
from ckptdb import importer as importer_module
from ckptdb.cli import main
from ckptdb.importer import FileOutcome, ImportOptions, Outcome, import_directories

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import gen_echo  # noqa: E402
from make_bad_dir import expected_for, make_bad_dir  # noqa: E402

TIME = re.compile(r"\(\d+\.\d s\)")


# ── helpers ───────────────────────────────────────────────────────────────────────────────────────


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def out(result: Result) -> str:
    """stdout with the elapsed time normalized."""
    return TIME.sub("(T s)", result.stdout)


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """Content and mtime of every file below `directory` (to prove sources are never touched)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(directory))] = (file_sha(path), path.stat().st_mtime_ns)
    return found


def outcomes(report_path: Path) -> dict[str, str]:
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return {entry["relative"]: entry["outcome"] for entry in report["files"]}


def write_cp(directory: Path, name: str, checkpoint: Checkpoint) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(checkpoint.to_json().encode("utf-8"))
    return path


def fresh(seed: int | str, **changes: Any) -> Checkpoint:
    checkpoint = gen_echo.build_checkpoint(gen_echo.make_rng(seed), state_bytes=300)
    for key, value in changes.items():
        setattr(checkpoint, key, value)
    return checkpoint


@pytest.fixture
def bad(tmp_path: Path, fixture_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """make_bad_dir at tmp_path/bad (valid checkpoints copied from the fixtures); cwd is tmp_path."""
    monkeypatch.chdir(tmp_path)
    return make_bad_dir(tmp_path / "bad", fixture_dir)


# ── outcomes ──────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("recursive", [False, True], ids=["top-level", "recursive"])
def test_every_file_gets_make_bad_dirs_expected_outcome(
    tmp_path: Path, bad: dict[str, str], recursive: bool, db_target: str
) -> None:
    before = snapshot(tmp_path / "bad")
    flags = ["--recursive"] if recursive else []
    result = cli("--db", db_target, "import", "bad", *flags, "--report", "r.json")
    expected = expected_for(bad, recursive=recursive)
    assert outcomes(tmp_path / "r.json") == expected
    assert list(outcomes(tmp_path / "r.json")) == list(expected)  # processing order too
    assert result.exit_code == 3
    assert snapshot(tmp_path / "bad") == before  # sources never modified
    stored = set(stored_ids(db_target))
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    imported = {entry["id"] for entry in report["files"] if entry["outcome"] == "imported"}
    assert stored == imported


def test_exact_output_and_reasons(tmp_path: Path, bad: dict[str, str], db_target: str) -> None:
    result = cli("--db", db_target, "import", "bad", "--report", "r.json")
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    reasons = {entry["relative"]: entry["reason"] for entry in report["files"]}
    assert reasons["empty.json"] == "empty file (a save cut short before its data reached disk?)"
    assert reasons["missing-id.json"] == "field 'id': missing"
    assert reasons["top-level-array.json"] == "top level is an array, not a checkpoint object"
    assert reasons["not-utf8.json"].startswith("not UTF-8 (invalid byte 0xe9 at offset ")
    assert reasons["truncated.json"].startswith("truncated JSON (ends at line ")
    assert reasons["wrong-enum-case.json"].startswith("field 'interrupt_type': 'BeforeNode' is not one of")
    assert reasons["negative-step-count.json"].startswith("field 'step_count': expected an unsigned integer")
    tmp = [name for name in reasons if name.endswith(".json.tmp")]
    assert [reasons[name] for name in tmp] == ["leftover temp file of an interrupted save: never read"] * 2
    assert reasons["notes.txt"] == "not a .json file"
    invalid = [name for name, outcome in bad.items() if outcome == "invalid"]
    lines = [f"invalid   bad/{name}: {reasons[name]}" for name in invalid]
    assert out(result) == "\n".join(
        [*lines, "15 files: 4 imported, 1 unchanged, 0 conflict, 7 invalid, 3 skipped (T s)", ""]
    )
    assert result.stderr == ""  # no progress bar when the output is not a terminal
    assert result.exit_code == 3


def test_report_json_content(tmp_path: Path, bad: dict[str, str], db_target: str) -> None:
    db = db_target if is_postgres(db_target) else os.path.relpath(db_target)  # cwd is tmp_path
    cli("--db", db, "import", "-r", "bad", "--report", "r.json", "--batch-size", "4")
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["report"] == "ckptdb-import"
    assert report["database"] == display(db_target)  # an SQLite path as an absolute path
    assert report["dirs"] == ["bad"]
    assert report["options"] == {
        "recursive": True,
        "dry_run": False,
        "strict": False,
        "on_conflict": "skip",
        "batch_size": 4,
    }
    assert len(report["files"]) == len(bad) == 18
    assert all(set(entry) == {"path", "relative", "outcome", "id", "reason"} for entry in report["files"])
    assert all(entry["path"] == f"bad/{entry['relative']}" for entry in report["files"])
    by_path = {entry["relative"]: entry for entry in report["files"]}
    assert by_path["renamed.json"]["id"] == by_path[next(iter(bad))]["id"]
    conflict = by_path["archive/conflict.json"]
    assert conflict["reason"].startswith(f"id {conflict['id']} ")
    assert "different content" in conflict["reason"]
    summary = report["summary"]
    assert {k: summary[k] for k in ("imported", "unchanged", "conflict", "invalid", "skipped")} == {
        "imported": 5,
        "unchanged": 2,
        "conflict": 1,
        "invalid": 7,
        "skipped": 3,
    }
    assert summary["status"] == "completed"
    assert summary["exit_status"] == 3
    assert summary["files"] == 18
    assert summary["rows_written"] == 5
    assert summary["not_processed"] == 0


def test_rows_keep_their_source_and_lose_nothing(tmp_path: Path, bad: dict[str, str], db_target: str) -> None:
    cli("--db", db_target, "import", "-r", "bad")
    sources = {row[0]: row[-1] for row in rows(db_target)}
    first_of: dict[str, str] = {}
    for rel, outcome in bad.items():
        if outcome == "imported":
            checkpoint = Checkpoint.from_json((tmp_path / "bad" / rel).read_bytes())
            first_of[checkpoint.id] = rel
    assert sources == {cid: str(tmp_path / "bad" / rel) for cid, rel in first_of.items()}

    async def check() -> None:
        async with await open_store(db_target) as store:
            for cid, rel in first_of.items():
                loaded = await store.load(cid)
                assert loaded is not None
                assert loaded.to_json().encode() == (tmp_path / "bad" / rel).read_bytes()

    asyncio.run(check())


def test_rerun_imports_nothing_new(tmp_path: Path, bad: dict[str, str], db_target: str) -> None:
    first = cli("--db", db_target, "import", "-r", "bad")
    before = write_marks(db_target), rows(db_target)
    again = cli("--db", db_target, "import", "-r", "bad", "--report", "r.json")
    assert (write_marks(db_target), rows(db_target)) == before  # not even rewritten with equal values
    assert (
        out(first).splitlines()[-1]
        == "18 files: 5 imported, 2 unchanged, 1 conflict, 7 invalid, 3 skipped (T s)"
    )
    assert (
        out(again).splitlines()[-1]
        == "18 files: 0 imported, 7 unchanged, 1 conflict, 7 invalid, 3 skipped (T s)"
    )
    got = outcomes(tmp_path / "r.json")
    assert {rel for rel, outcome in got.items() if outcome == "unchanged"} == {
        rel for rel, outcome in bad.items() if outcome in ("imported", "unchanged")
    }


def test_clean_directory_exits_zero(fixture_dir: Path, db_target: str) -> None:
    result = cli("--db", db_target, "import", str(fixture_dir))
    assert out(result) == "300 files: 300 imported, 0 unchanged, 0 conflict, 0 invalid, 0 skipped (T s)\n"
    assert result.exit_code == 0
    assert len(rows(db_target)) == 300


# ── duplicates and conflicts ──────────────────────────────────────────────────────────────────────


def test_duplicates_across_subdirectories_and_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_target: str
) -> None:
    monkeypatch.chdir(tmp_path)
    x = fresh("x")
    edited = fresh("x", step_count=x.step_count + 1)
    # Order: top level first, then subdirectories by relative path ("a-b" < "a/b": '-' < '/').
    write_cp(tmp_path / "one" / "a" / "b", "z-first-in-a-b.json", edited)
    write_cp(tmp_path / "one" / "a-b", "copy.json", x)
    write_cp(tmp_path / "one", "zz-top.json", x)
    write_cp(tmp_path / "one" / "a", "same.json", x)
    write_cp(tmp_path / "two", "x.json", x)
    write_cp(tmp_path / "two", "y.json", edited)
    result = cli("--db", db_target, "import", "-r", "one", "two", "--report", "r.json", "--batch-size", "2")
    assert outcomes(tmp_path / "r.json") == {
        "zz-top.json": "imported",
        "a/same.json": "unchanged",
        "a-b/copy.json": "unchanged",
        "a/b/z-first-in-a-b.json": "conflict",
        "x.json": "unchanged",
        "y.json": "conflict",
    }
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert [entry["path"] for entry in report["files"]] == [
        "one/zz-top.json",
        "one/a/same.json",
        "one/a-b/copy.json",
        "one/a/b/z-first-in-a-b.json",
        "two/x.json",
        "two/y.json",
    ]
    assert result.exit_code == 3
    (row,) = rows(db_target)
    assert row[-1] == str(tmp_path / "one" / "zz-top.json")


@pytest.mark.parametrize("batch_size", ["1", "1000"])
def test_later_copies_are_compared_with_and_name_the_first_occurrence(
    tmp_path: Path, batch_size: str, db_target: str
) -> None:
    x = fresh("x")
    write_cp(tmp_path / "d", "a.json", x)
    write_cp(tmp_path / "d", "b.json", x)
    write_cp(tmp_path / "d", "c.json", fresh("x", step_count=x.step_count + 5))
    report_path = tmp_path / "r.json"
    cli(
        "--db",
        db_target,
        "import",
        str(tmp_path / "d"),
        "--batch-size",
        batch_size,
        "--report",
        str(report_path),
    )
    files = json.loads(report_path.read_text())["files"]
    assert [(e["outcome"], e["reason"]) for e in files] == [
        ("imported", None),
        ("unchanged", f"same checkpoint as {tmp_path}/d/a.json"),
        (
            "conflict",
            f"id {x.id} already came from {tmp_path}/d/a.json in this run with different content: "
            "the first one is kept"
            if batch_size == "1000"
            else f"id {x.id} is already stored (from {tmp_path}/d/a.json) with different content: "
            "kept the stored one (--on-conflict replace overwrites it)",
        ),
    ]


def test_same_directory_twice_or_nested_is_refused(tmp_path: Path, db_target: str) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    twice = cli("--db", db_target, "import", str(tmp_path / "d"), str(tmp_path / "d"))
    assert twice.exit_code == 1
    assert "are the same directory: pass it once" in twice.stderr
    nested = cli("--db", db_target, "import", "-r", str(tmp_path / "d"), str(tmp_path / "d/sub"))
    assert nested.exit_code == 1
    assert "is inside" in nested.stderr and "pass only the outer one" in nested.stderr
    assert not has_database(db_target)


def _conflict_setup(tmp_path: Path, db: str) -> tuple[Checkpoint, Checkpoint, Checkpoint]:
    """db holds X (v1); dir `new` has a.json = Y (new), b.json = X v2 (different), c.json = Z (new)."""
    x1 = fresh("x")
    x2 = fresh("x", state_snapshot={"edited": True})
    y, z = fresh("y"), fresh("z")
    write_cp(tmp_path / "old", "x.json", x1)
    assert cli("--db", db, "import", str(tmp_path / "old")).exit_code == 0
    write_cp(tmp_path / "new", "a.json", y)
    write_cp(tmp_path / "new", "b.json", x2)
    write_cp(tmp_path / "new", "c.json", z)
    return x1, x2, y


def test_on_conflict_skip_keeps_the_stored_row(tmp_path: Path, db_target: str) -> None:
    x1, _, _ = _conflict_setup(tmp_path, db_target)
    result = cli("--db", db_target, "import", str(tmp_path / "new"))
    assert result.exit_code == 3
    assert out(result) == (
        f"conflict  {tmp_path}/new/b.json: id {x1.id} is already stored (from {tmp_path}/old/x.json) with "
        "different content: kept the stored one (--on-conflict replace overwrites it)\n"
        "3 files: 2 imported, 0 unchanged, 1 conflict, 0 invalid, 0 skipped (T s)\n"
    )
    assert stored(db_target, x1.id).to_json() == x1.to_json()
    assert len(rows(db_target)) == 3


def test_on_conflict_replace_overwrites_and_records_the_new_source(tmp_path: Path, db_target: str) -> None:
    x1, x2, _ = _conflict_setup(tmp_path, db_target)
    result = cli("--db", db_target, "import", str(tmp_path / "new"), "--on-conflict", "replace")
    assert result.exit_code == 3  # a conflict was found, even if resolved as asked
    assert "replaced by this file" in result.stdout
    assert stored(db_target, x1.id).to_json() == x2.to_json()
    source = {row[0]: row[-1] for row in rows(db_target)}[x1.id]
    assert source == str(tmp_path / "new" / "b.json")
    again = cli("--db", db_target, "import", str(tmp_path / "new"), "--on-conflict", "replace")
    assert again.exit_code == 0
    assert out(again) == "3 files: 0 imported, 3 unchanged, 0 conflict, 0 invalid, 0 skipped (T s)\n"


@pytest.mark.parametrize("batch_size", ["1", "1000"])
def test_on_conflict_fail_stops_before_writing_that_batch(
    tmp_path: Path, batch_size: str, db_target: str
) -> None:
    x1, _, y = _conflict_setup(tmp_path, db_target)
    before = rows(db_target)
    db = db_target
    result = cli(
        "--db", db, "import", str(tmp_path / "new"), "--on-conflict", "fail", "--batch-size", batch_size
    )
    assert result.exit_code == 4
    lines = out(result).splitlines()
    assert lines[0].startswith(f"conflict  {tmp_path}/new/b.json: id {x1.id} is already stored")
    assert lines[0].endswith("stopped here (--on-conflict fail); nothing of this batch was written")
    after = rows(db_target)
    if batch_size == "1":  # a.json's batch committed before the conflict
        assert lines[1] == "3 files: 1 imported, 0 unchanged, 1 conflict, 0 invalid, 0 skipped (T s)"
        assert [row[0] for row in after] == sorted([x1.id, y.id])
    else:  # all three in one batch: nothing written
        assert lines[1] == "3 files: 0 imported, 0 unchanged, 1 conflict, 0 invalid, 0 skipped (T s)"
        assert after == before
    assert lines[2].startswith(f"stopped at {tmp_path}/new/b.json (--on-conflict fail)")
    assert "files not processed" in lines[2]


@pytest.mark.parametrize("batch_size", ["1", "1000"])
def test_replace_never_lets_a_later_copy_in_the_same_run_win(
    tmp_path: Path, batch_size: str, db_target: str
) -> None:
    x1, x2 = fresh("x"), fresh("x", state_snapshot={"v": 2})
    x3 = fresh("x", state_snapshot={"v": 3})
    write_cp(tmp_path / "old", "x.json", x1)
    cli("--db", db_target, "import", str(tmp_path / "old"))
    write_cp(tmp_path / "new", "a.json", x2)
    write_cp(tmp_path / "new", "b.json", x3)
    result = cli(
        "--db", db_target, "import", str(tmp_path / "new"),
        "--on-conflict", "replace", "--batch-size", batch_size, "--report", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert outcomes(tmp_path / "r.json") == {"a.json": "conflict", "b.json": "conflict"}
    assert "the first one is kept" in result.stdout
    assert stored(db_target, x1.id).to_json() == x2.to_json()


# ── strict, dry run: the database is left untouched ───────────────────────────────────────────────


def test_strict_with_invalid_files_writes_nothing_not_even_a_database(
    tmp_path: Path, bad: dict[str, str], db_target: str
) -> None:
    result = cli("--db", db_target, "import", "bad", "--strict", "--report", "r.json")
    assert result.exit_code == 4
    assert out(result).splitlines()[-1] == (
        "--strict: invalid files found, nothing written; an import would give: "
        "15 files: 4 imported, 1 unchanged, 0 conflict, 7 invalid, 3 skipped (T s)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "r.json"]
    assert not has_database(db_target)  # not even the schema
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["status"] == "strict-failed"


def test_strict_and_dry_run_leave_an_existing_database_byte_for_byte(
    tmp_path: Path, bad: dict[str, str], db_target: str
) -> None:
    cli("--db", db_target, "import", "bad")
    (tmp_path / "bad" / "extra.json").write_bytes(fresh("extra").to_json().encode())
    before_rows, before_marks = rows(db_target), write_marks(db_target)
    strict = cli("--db", db_target, "import", "bad", "--strict")
    assert strict.exit_code == 4
    dry = cli("--db", db_target, "import", "-r", "bad", "--dry-run", "--report", "dry.json")
    assert dry.exit_code == 3
    assert out(dry).splitlines()[-1] == (
        "dry run, nothing written: 19 files: 2 imported, 6 unchanged, 1 conflict, 7 invalid, 3 skipped (T s)"
    )
    assert rows(db_target) == before_rows
    assert write_marks(db_target) == before_marks  # SQLite: the file's bytes; PostgreSQL: row versions
    # What the dry run predicted is exactly what the real run then does.
    cli("--db", db_target, "import", "-r", "bad", "--report", "real.json")
    assert outcomes(tmp_path / "dry.json") == outcomes(tmp_path / "real.json")


def test_dry_run_on_a_fresh_path_creates_nothing(tmp_path: Path, bad: dict[str, str], db_target: str) -> None:
    result = cli("--db", db_target, "import", "-r", "bad", "--dry-run", "--report", "dry.json")
    assert result.exit_code == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "dry.json"]
    assert not has_database(db_target)
    assert outcomes(tmp_path / "dry.json") == bad  # same outcomes as a real import into an empty database


def test_strict_with_only_valid_files_imports(fixture_dir: Path, db_target: str) -> None:
    result = cli("--db", db_target, "import", str(fixture_dir), "--strict")
    assert result.exit_code == 0
    assert len(rows(db_target)) == 300


# ── file system corner cases ──────────────────────────────────────────────────────────────────────


def test_symlinks_are_read_as_the_rust_store_reads_them_and_none_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_target: str
) -> None:
    """The Rust `list()` reads every `*.json` entry through its links (`read_to_string`), wherever
    they point; what it would skip in silence (a dangling link, a loop, a link to a directory or
    a FIFO) gets an outcome here. --recursive never follows a directory link, so a link back up
    the tree ends nothing and loops nowhere."""
    monkeypatch.chdir(tmp_path)
    inside, outside, deep = fresh("inside"), fresh("outside"), fresh("deep")
    d = tmp_path / "d"
    write_cp(d, "inside.json", inside)
    elsewhere = write_cp(tmp_path / "elsewhere", "outside.json", outside)
    write_cp(d / "sub", "deep.json", deep)
    (d / "rel-link.json").symlink_to("inside.json")  # relative, inside d: a second copy of inside
    (d / "abs-link.json").symlink_to(elsewhere)  # absolute, outside d
    (d / "rel-out.json").symlink_to("../elsewhere/outside.json")  # relative, the same file again
    (d / "broken.json").symlink_to(tmp_path / "nowhere.json")
    (d / "loop-a.json").symlink_to("loop-b.json")
    (d / "loop-b.json").symlink_to("loop-a.json")
    (d / "self.json").symlink_to("self.json")
    (d / "dir-link.json").symlink_to(tmp_path / "elsewhere")
    (d / "linked-dir").symlink_to(tmp_path / "elsewhere")
    (d / "sub" / "up").symlink_to("..")  # a loop, were it followed
    os.mkfifo(tmp_path / "elsewhere" / "fifo")
    (d / "fifo-link.json").symlink_to(tmp_path / "elsewhere" / "fifo")
    os.mkfifo(d / "fifo.json")
    before = {**snapshot(d), **snapshot(tmp_path / "elsewhere")}
    result = cli("--db", db_target, "import", "-r", "d", "--report", "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    got = {entry["relative"]: (entry["outcome"], entry["reason"]) for entry in report["files"]}
    not_followed = "not followed (--recursive reads real subdirectories only; pass that directory as a DIR"
    loop = "symlink loop: the link leads back to itself and never reaches a file"
    assert got == {
        "abs-link.json": ("imported", None),
        "broken.json": ("invalid", f"broken symlink: its target {tmp_path}/nowhere.json does not exist"),
        "dir-link.json": (
            "skipped",
            f"symlink to the directory {tmp_path}/elsewhere: {not_followed} of its own to read it)",
        ),
        "fifo-link.json": ("skipped", "symlink to something that is not a regular file: never read"),
        "fifo.json": ("skipped", "not a regular file (a FIFO, socket or device is never read)"),
        "inside.json": ("imported", None),
        "linked-dir": (
            "skipped",
            f"symlink to the directory {tmp_path}/elsewhere: {not_followed} of its own to read it)",
        ),
        "loop-a.json": ("invalid", loop),
        "loop-b.json": ("invalid", loop),
        "rel-link.json": ("unchanged", "same checkpoint as d/inside.json"),
        "rel-out.json": ("unchanged", "same checkpoint as d/abs-link.json"),
        "self.json": ("invalid", loop),
        "sub/deep.json": ("imported", None),
        "sub/up": ("skipped", f"symlink to the directory {d}: {not_followed} of its own to read it)"),
    }
    assert list(got) == sorted(got)  # processing order: names sorted, subdirectories after
    assert result.exit_code == 3
    assert stored_ids(db_target) == sorted([inside.id, outside.id, deep.id])
    assert stored(db_target, outside.id) == outside
    sources = {row[0]: row[-1] for row in rows(db_target)}
    assert sources[outside.id] == f"{d}/abs-link.json"  # where it was found, not where it points
    assert {**snapshot(d), **snapshot(tmp_path / "elsewhere")} == before  # nothing touched
    dry = cli("--db", db_target, "import", "-r", "d", "--dry-run", "--report", "dry.json")
    assert dry.exit_code == 3
    top = cli("--db", db_target, "import", "d", "--report", "top.json")
    top_outcomes = outcomes(tmp_path / "top.json")
    assert "linked-dir" not in top_outcomes  # a directory in all but name: not looked into
    assert top_outcomes["dir-link.json"] == "skipped"  # named like a checkpoint: said why not
    assert top_outcomes["abs-link.json"] == top_outcomes["inside.json"] == "unchanged"
    assert top.exit_code == 3


def test_a_directory_loop_under_recursive_is_reported_and_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_target: str
) -> None:
    """A loop of real directories (a bind mount of a parent inside it) is found by (st_dev, st_ino):
    entered once, reported, never walked forever."""
    monkeypatch.chdir(tmp_path)
    top = fresh("loop-top")
    write_cp(tmp_path / "d", "top.json", top)
    mount_point = tmp_path / "d" / "a" / "again"
    mount_point.mkdir(parents=True)
    try:
        made = subprocess.run(
            ["mount", "--bind", str(tmp_path / "d"), str(mount_point)], capture_output=True, text=True
        )
    except OSError as exc:  # no mount(8) on this machine
        pytest.skip(f"cannot make a bind mount here: {exc}")
    if made.returncode != 0:
        pytest.skip(f"cannot make a bind mount here (needs root): {made.stderr.strip()}")
    try:
        result = cli("--db", db_target, "import", "-r", "d", "--report", "r.json")
        dry = cli("--db", db_target, "import", "-r", "d", "--dry-run", "-q")
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    report = json.loads((tmp_path / "r.json").read_text())
    got = {entry["relative"]: (entry["outcome"], entry["reason"]) for entry in report["files"]}
    assert got == {
        "top.json": ("imported", None),
        "a/again": ("skipped", "directory loop: the same directory as d (a bind mount?): not read again"),
    }
    assert report["summary"]["files"] == 2
    assert result.exit_code == 0 and dry.exit_code == 0
    assert stored_ids(db_target) == [top.id]


def test_export_replaces_a_symlink_in_its_way_and_never_writes_through_it(
    tmp_path: Path, db_target: str
) -> None:
    """A `{id}.json` symlink in the export directory (to someone else's file, or dangling) is
    replaced by the exported file: the rename swaps the link itself, the file it points to is
    never opened for writing."""
    first, second, same = fresh("export-1"), fresh("export-2"), fresh("export-same")
    source = tmp_path / "src"
    for checkpoint in (first, second, same):
        write_cp(source, f"{checkpoint.id}.json", checkpoint)
    assert cli("--db", db_target, "import", str(source)).exit_code == 0
    theirs = write_cp(tmp_path / "theirs", "precious.json", fresh("someone-else"))
    precious = theirs.read_bytes()
    copy_of_same = write_cp(tmp_path / "theirs", "same.json", same)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / f"{first.id}.json").symlink_to(theirs)
    (out_dir / f"{second.id}.json").symlink_to(tmp_path / "theirs" / "gone.json")
    (out_dir / f"{same.id}.json").symlink_to(copy_of_same)
    refused = cli("--db", db_target, "export", str(out_dir))
    assert refused.exit_code == 3  # a different file is in the way: left as it is
    assert theirs.read_bytes() == precious and (out_dir / f"{first.id}.json").is_symlink()
    assert (out_dir / f"{same.id}.json").is_symlink()  # it already reads as this checkpoint
    assert not (out_dir / f"{second.id}.json").is_symlink()  # the dangling link was replaced
    result = cli("--db", db_target, "export", str(out_dir), "--overwrite")
    assert result.exit_code == 0
    assert theirs.read_bytes() == precious  # never written through the link
    assert not (tmp_path / "theirs" / "gone.json").exists()
    for checkpoint in (first, second):
        exported = out_dir / f"{checkpoint.id}.json"
        assert not exported.is_symlink() and exported.is_file()
        assert Checkpoint.from_json(exported.read_bytes()) == checkpoint
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{c.id}.json" for c in (first, second, same))


def test_a_second_file_of_an_id_is_judged_by_what_the_first_one_left_stored(
    tmp_path: Path, db_target: str
) -> None:
    """Two files with one id in one batch: the second is judged against the first one's row, and
    again against the database once the write says what landed. PostgreSQL refuses the first
    (U+0000 in a text field): the second, the same checkpoint, must not claim to be stored."""
    nul = fresh("nul-twice", graph_name="graph\x00name")
    write_cp(tmp_path / "d", "a.json", nul)
    write_cp(tmp_path / "d", "b.json", nul)
    result = cli("--db", db_target, "import", str(tmp_path / "d"), "--report", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    got = {entry["relative"]: (entry["outcome"], entry["reason"]) for entry in report["files"]}
    if is_postgres(db_target):
        assert got["a.json"][0] == "invalid" and "U+0000" in got["a.json"][1]
        assert got["b.json"] == (
            "invalid",
            f"not written: {tmp_path}/d/a.json, the first file with id {nul.id} in this run, was refused; "
            "fix that file and import again",
        )
        assert stored_ids(db_target) == []
        assert result.exit_code == 3
    else:
        assert got == {
            "a.json": ("imported", None),
            "b.json": ("unchanged", f"same checkpoint as {tmp_path}/d/a.json"),
        }
        assert stored(db_target, nul.id) == nul
        assert result.exit_code == 0


def test_undecodable_file_names_are_reported_readably(tmp_path: Path, db_target: str) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    checkpoint = fresh("latin1-name")
    name = os.fsdecode(b"caf\xe9.json")
    (directory / name).write_bytes(checkpoint.to_json().encode())
    result = cli("--db", db_target, "import", str(directory), "--report", str(tmp_path / "r.json"))
    assert result.exit_code == 0
    assert outcomes(tmp_path / "r.json") == {"caf\\xe9.json": "imported"}
    assert rows(db_target)[0][-1] == f"{directory}/caf\\xe9.json"


def test_missing_directory_is_one_line_error(tmp_path: Path, db_target: str) -> None:
    result = cli("--db", db_target, "import", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert (
        result.stderr == f"Error: {tmp_path}/nope does not exist: pass a directory of echo checkpoint files\n"
    )
    assert not has_database(db_target)


# ── the library API ───────────────────────────────────────────────────────────────────────────────


async def test_library_import_reports_progress_and_each_outcome_in_order(
    fixture_dir: Path, db_target: str
) -> None:
    calls: list[tuple[str, int, int]] = []
    seen: list[FileOutcome] = []
    async with await open_store(db_target) as store:
        report = await import_directories(
            store, [fixture_dir], ImportOptions(batch_size=128), lambda *a: calls.append(a), seen.append
        )
        assert await store.count() == 300
    assert report.counts[Outcome.IMPORTED] == 300 and report.exit_status == 0
    assert calls == [
        ("importing", 0, 300),
        ("importing", 128, 300),
        ("importing", 256, 300),
        ("importing", 300, 300),
    ]
    assert [o.relative for o in seen] == sorted(p.name for p in fixture_dir.iterdir())


# ── real processes: the command as users run it, killed, interrupted, on a terminal ───────────────


def _ckptdb(*args: str) -> list[str]:
    return [sys.executable, "-m", "ckptdb", *args]


def _wait_for_rows(db: str, proc: subprocess.Popen[Any], at_least: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the import ended (status {proc.returncode}) before it could be stopped")
        found = count_rows(db) if is_postgres(db) or Path(db).exists() else 0
        if found >= at_least:
            return found
        time.sleep(0.005)
    raise AssertionError("no rows appeared")


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,000 small generated checkpoints: enough for an import to be caught in the middle."""
    directory = tmp_path_factory.mktemp("big") / "ckpts"
    gen_echo.generate(directory, 4000, seed=7, state_bytes=200)
    return directory


async def test_parsing_in_a_helper_process_changes_nothing(
    tmp_path: Path, big_dir: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """4,000 files take the helper-process path (`parallel`); the result must be the in-process one."""
    pools: list[object] = []
    real_pool = importer_module.helper_pool
    monkeypatch.setattr(importer_module, "helper_pool", lambda *a: pools.append(real_pool(*a)) or pools[-1])
    results = []
    for parallel in (True, False):
        seen: list[FileOutcome] = []
        db = new_db_target(engine, tmp_path, f"{parallel}.db")
        async with await open_store(db) as store:
            options = ImportOptions(batch_size=300, parallel=parallel)
            report = await import_directories(store, [big_dir], options, on_file=seen.append)
        results.append((report.counts, seen, await stored_rows_async(db)))
    assert results[0] == results[1]
    assert results[0][0][Outcome.IMPORTED] == 4000
    assert pools[0] is not None and pools[1] is None  # the helper really parsed the first run


def test_subprocess_import_prints_the_summary(fixture_dir: Path, db_target: str) -> None:
    done = subprocess.run(
        _ckptdb("--db", db_target, "import", str(fixture_dir)), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert TIME.sub("(T s)", done.stdout) == (
        "300 files: 300 imported, 0 unchanged, 0 conflict, 0 invalid, 0 skipped (T s)\n"
    )
    assert done.stderr == ""  # stderr is a pipe, not a terminal: no progress bar


def test_killed_import_resumes_to_exactly_the_uninterrupted_rows(
    tmp_path: Path, big_dir: Path, db_target: str, engine: str
) -> None:
    db = db_target
    proc = subprocess.Popen(
        _ckptdb("--db", db, "import", str(big_dir), "--batch-size", "5", "-q"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_rows(db, proc, 200)
        helpers = descendants(proc.pid)  # the parser process (and its forkserver)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert helpers, "a 4,000-file import should parse in a helper process"
    assert not wait_gone(helpers), "helpers outlived the import"
    committed = count_rows(db)
    assert 0 < committed < 4000, "killed too late to prove anything: make the directory bigger"
    assert committed % 5 == 0  # batches commit whole
    resumed = cli("--db", db, "import", str(big_dir))
    counts = f"{4000 - committed} imported, {committed} unchanged, 0 conflict, 0 invalid, 0 skipped"
    assert out(resumed) == f"4000 files: {counts} (T s)\n"
    straight = new_db_target(engine, tmp_path, "straight.db")
    cli("--db", straight, "import", str(big_dir))
    assert rows(db) == rows(straight)
    if engine == "sqlite":  # the file itself; a PostgreSQL server rolls a dead client's transaction back
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.close()


def test_ctrl_c_finishes_the_batch_reports_the_truth_and_resumes(
    tmp_path: Path, big_dir: Path, db_target: str
) -> None:
    db, report_path = db_target, tmp_path / "r.json"
    proc = subprocess.Popen(
        _ckptdb("--db", db, "import", str(big_dir), "--batch-size", "2", "--report", str(report_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A runner started in the background of a non-interactive shell has SIGINT ignored, and
        # children inherit that: give the import the disposition a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_for_rows(db, proc, 50)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert stderr == "interrupted: the batches committed so far are kept; run the same command again\n"
    report = json.loads(report_path.read_text())  # complete, valid JSON
    assert report["summary"]["status"] == "interrupted"
    found = set(stored_ids(db))
    assert 0 < len(found) < 4000
    assert {e["id"] for e in report["files"] if e["outcome"] == "imported"} == found  # tells the truth
    assert report["summary"]["not_processed"] == 4000 - len(found)
    resumed = cli("--db", db, "import", str(big_dir))
    assert resumed.exit_code == 0
    assert len(rows(db)) == 4000


def test_progress_bar_on_a_terminal_only(
    tmp_path: Path, fixture_dir: Path, db_target: str, engine: str
) -> None:
    status, text = run_on_terminal(
        _ckptdb("--db", db_target, "import", str(fixture_dir), "--batch-size", "50")
    )
    assert status == 0
    assert "Importing" in text and "files/s" in text and "300/300" in text
    assert "300 files: 300 imported" in text
    quiet = new_db_target(engine, tmp_path, "q.db")
    status, text = run_on_terminal(_ckptdb("--db", quiet, "import", str(fixture_dir), "-q"))
    assert status == 0
    assert (
        TIME.sub("(T s)", text)
        == "300 files: 300 imported, 0 unchanged, 0 conflict, 0 invalid, 0 skipped (T s)\r\n"
    )
