"""Where commands write, and how they fail: an output path never destroys an input (the database,
a source, a file being read, by whatever name), reports are written whole at the end, `export`
refuses directories it has no business in, unwritable places and unencodable output are one
line, killed exports leave no temp files for good, Ctrl-C is one behaviour for every command,
`copy` shares `import`'s exit statuses, and a damaged source row is one outcome of a copy."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import module_db_target, pg_database_url
from helpers.db import count_rows, fill, is_postgres

from ckptdb import Checkpoint, Timestamp
from ckptdb.cli import main
from ckptdb.outputs import EXPORT_TEMP

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import gen_echo


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def ckptdb(*args: str) -> list[str]:
    return [sys.executable, "-m", "ckptdb", *args]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` (names relative) and its content hash."""
    return {str(p.relative_to(directory)): digest(p) for p in sorted(directory.rglob("*")) if p.is_file()}


def _cp(i: int, graph: str = "g") -> Checkpoint:
    checkpoint = Checkpoint.new(graph, f"n{i}", {"values": {"i": i}}, ["a"], i, "toolapproval")
    checkpoint.id = f"00000000-0000-4000-8000-{i:012d}"
    checkpoint.created_at = Timestamp.parse(f"2026-11-{1 + i % 28:02d}T10:00:00.{i:09d}Z")
    return checkpoint


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """tmp/app.db (3 checkpoints), tmp/src/ (2 echo files and sub/ with one more), cwd = tmp."""
    fill(str(tmp_path / "app.db"), [_cp(i) for i in range(3)])
    (tmp_path / "src" / "sub").mkdir(parents=True)
    for i, where in ((10, "src"), (11, "src"), (12, "src/sub")):
        (tmp_path / where / f"{_cp(i).id}.json").write_text(_cp(i).to_json())
    return tmp_path


def refused(result: Result, expected: str) -> None:
    """A refusal: one line, usage exit status, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], result.output


# ── 1. an output path never destroys an input ────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "spelling",
    [
        "app.db",
        "./src/../app.db",
        "{tmp}/app.db",
        "link-to-db",
        "hard-link-to-db",
        "app.db-wal",
        "app.db-shm",
    ],
)
@pytest.mark.parametrize("db_form", ["app.db", "sqlite:///app.db"])
def test_import_report_naming_the_database_is_refused_and_touches_nothing(
    world: Path, monkeypatch: pytest.MonkeyPatch, spelling: str, db_form: str
) -> None:
    monkeypatch.chdir(world)
    os.symlink("app.db", "link-to-db")
    os.link("app.db", "hard-link-to-db")
    before = snapshot(world)
    result = cli("--db", db_form, "import", "--report", spelling.format(tmp=world), "src")
    refused(result, "is the database file")
    assert snapshot(world) == before  # the database, its links, the sources: byte for byte
    assert count_rows(str(world / "app.db")) == 3


@pytest.mark.parametrize(
    ("report", "recursive", "expected"),
    [
        ("src/new-report.json", False, "a directory being read"),
        ("src/sub/new-report.json", True, "a directory being read"),
        ("src/../src/x.json", False, "a directory being read"),
        ("link-to-src/x.json", False, "a directory being read"),
        ("hard-link-to-source.json", False, "under another name (a link)"),
        ("symlink-to-source.json", False, "a directory being read"),
    ],
)
def test_import_report_inside_a_source_or_linked_to_a_source_file_is_refused(
    world: Path, monkeypatch: pytest.MonkeyPatch, report: str, recursive: bool, expected: str
) -> None:
    monkeypatch.chdir(world)
    source_file = next((world / "src").glob("*.json"))
    os.symlink("src", "link-to-src")
    os.link(source_file, "hard-link-to-source.json")
    os.symlink(source_file, "symlink-to-source.json")
    before = snapshot(world)
    result = cli("--db", "app.db", "import", *(["-r"] if recursive else []), "--report", report, "src")
    refused(result, expected)
    assert snapshot(world) == before
    assert count_rows(str(world / "app.db")) == 3


def test_import_report_outside_the_sources_is_written_whole(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subdirectory an import does not read is fine; an existing report is replaced whole."""
    monkeypatch.chdir(world)
    (world / "old.json").write_text("keep me until the end")
    assert cli("--db", "app.db", "import", "--report", "src/sub/r.json", "src").exit_code == 0
    assert cli("--db", "app.db", "import", "--report", "old.json", "src").exit_code == 0
    assert json.loads((world / "old.json").read_text())["summary"]["unchanged"] == 2
    assert not [p for p in world.iterdir() if p.name.startswith(".")]  # no temp file left


@pytest.fixture
def copy_source(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In `world`: the database as a.db, with a symlink and a hard link to it."""
    monkeypatch.chdir(world)
    os.rename("app.db", "a.db")
    os.symlink("a.db", "link-to-a")
    os.link("a.db", "hard-link-to-a")


@pytest.mark.parametrize("spelling", ["a.db", "./a.db", "b.db", "b.db-wal", "link-to-a", "hard-link-to-a"])
def test_copy_report_naming_either_database_is_refused_and_creates_nothing(
    world: Path, copy_source: None, spelling: str
) -> None:
    before = snapshot(world)
    result = cli("copy", "--from", "a.db", "--to", "b.db", "--report", spelling)
    refused(result, "is the database file")
    assert snapshot(world) == before
    assert not (world / "b.db").exists()  # not even created


@pytest.mark.parametrize("destination", ["./a.db", "link-to-a", "hard-link-to-a", "a.db-wal", "a.db-shm"])
def test_copy_into_the_source_under_another_name_is_refused(
    world: Path, copy_source: None, destination: str
) -> None:
    before = snapshot(world)
    refused(cli("copy", "--from", "a.db", "--to", destination), "the same database")
    assert snapshot(world) == before and not (world / "a.db-wal").exists()


def test_killed_import_leaves_an_existing_report_as_it_was(tmp_path: Path) -> None:
    """The report is written under a temp name and renamed at the end: a SIGKILL in the middle
    leaves the old report whole (it used to be truncated at the start)."""
    source = tmp_path / "ckpts"
    gen_echo.generate(source, 3000, seed=5, state_bytes=200)
    report, db = tmp_path / "report.json", str(tmp_path / "app.db")
    report.write_text('{"previous": true}\n')
    proc = subprocess.Popen(
        ckptdb("--db", db, "import", str(source), "--batch-size", "5", "-q", "--report", str(report)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: count_rows(db) >= 100 if Path(db).exists() else False, proc)
        proc.kill()
    finally:
        proc.wait()
    assert report.read_text() == '{"previous": true}\n'
    temps = [p for p in tmp_path.iterdir() if p.name.startswith(".report.json.ckptdb-")]
    assert len(temps) == 1  # the killed run's; the next run removes it
    assert cli("--db", db, "import", str(source), "--report", str(report)).exit_code == 0
    assert json.loads(report.read_text())["summary"]["files"] == 3000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.json.ckptdb-")]


# ── 2. where export may write ────────────────────────────────────────────────────────────────────


def test_export_refuses_an_empty_path_a_root_a_foreign_directory_and_the_databases_own(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(world)
    before = snapshot(world)
    refused(cli("--db", "app.db", "export", ""), "empty path")
    refused(cli("--db", "app.db", "export", "/"), "file system root")
    refused(cli("--db", "app.db", "export", "/../"), "file system root")
    refused(cli("--db", "app.db", "export", "."), "holds the database")
    (world / "home").mkdir()
    (world / "home" / ".bashrc").write_text("x")
    refused(cli("--db", "app.db", "export", "home"), "holds .bashrc, which is not an echo checkpoint file")
    (world / "notes").mkdir()
    (world / "notes" / "todo.txt").write_text("x")
    refused(cli("--db", "app.db", "export", "notes"), "holds todo.txt")
    assert snapshot(world) == {
        **before,
        "home/.bashrc": digest(world / "home/.bashrc"),
        "notes/todo.txt": digest(world / "notes/todo.txt"),
    }


def test_export_writes_into_a_new_an_empty_or_an_echo_directory(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(world)
    (world / "empty").mkdir()
    assert cli("--db", "app.db", "export", "empty").exit_code == 0
    assert cli("--db", "app.db", "export", "new/deeper").exit_code == 0
    (world / "src" / "abc.json.tmp").write_text("echo's own leftover")
    assert cli("--db", "app.db", "export", "src").exit_code == 0  # *.json, *.json.tmp, a subdirectory
    assert len(list((world / "src").glob("*.json"))) == 5
    assert (world / "src" / "abc.json.tmp").read_text() == "echo's own leftover"


# ── 3. unwritable places and unencodable output: one line ────────────────────────────────────────


def test_export_into_unreachable_places_is_one_line(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world)
    (world / "a-file").write_text("x")
    for target, why in (
        ("a-file/sub", "Not a directory"),
        ("n" * 300, "File name too long"),
        ("n" * 300 + "/x", "File name too long"),
    ):
        result = cli("--db", "app.db", "export", target)
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ") and why in result.output


def test_export_onto_a_full_disk_is_one_line_and_leaves_only_whole_files(tmp_path: Path, big_db: str) -> None:
    from test_hostile_input import small_tmpfs

    with small_tmpfs(tmp_path / "small") as small:
        result = subprocess.run(
            ckptdb("--db", big_db, "export", str(small / "out"), "--batch-size", "50"),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("Error: cannot ") and "No space left on device" in result.stderr
        names = [p.name for p in (small / "out").iterdir()]
        assert names and all(name.endswith(".json") for name in names)  # no temp file left behind
        for path in (small / "out").iterdir():
            assert Checkpoint.from_json(path.read_bytes()).id + ".json" == path.name


def _latin1(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    return subprocess.run(ckptdb(*args), capture_output=True, text=True, encoding="latin-1", env=env, cwd=cwd)


def test_output_the_terminal_cannot_encode_is_escaped_or_one_line(tmp_path: Path) -> None:
    """A real process whose stdout is Latin-1 (click itself repairs a plain ASCII stdout, not
    this): import, export and copy print what they can and escape the rest, ending with their own
    exit status; any other command says in one line what to set."""
    fill(str(tmp_path / "app.db"), [_cp(1, graph="résumé ✓")])
    source = tmp_path / "✓ checkpoints"
    source.mkdir()
    (source / "bad.json").write_text("{")
    imported = _latin1("--db", "app.db", "import", str(source), cwd=tmp_path)
    assert imported.returncode == 3 and "Traceback" not in imported.stderr, imported.stderr
    assert "invalid   " + str(source).replace("✓", "\\u2713") + "/bad.json" in imported.stdout
    out = tmp_path / "out ✓"
    out.mkdir()
    (out / f"{_cp(1, graph='résumé ✓').id}.json").write_text(_cp(2).to_json())
    exported = _latin1("--db", "app.db", "export", str(out), cwd=tmp_path)
    assert exported.returncode == 3 and "Traceback" not in exported.stderr, exported.stderr
    assert "conflict  " + str(out).replace("✓", "\\u2713") in exported.stdout
    listed = _latin1("--db", "app.db", "list", "-f", "jsonl", cwd=tmp_path)
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert listed.stderr.splitlines()[-1].startswith(
        "Error: the output holds characters that stdout's encoding"
    )
    assert len(listed.stderr.splitlines()) == 1


# ── 4. a killed export leaves no temp files for good ─────────────────────────────────────────────


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """4,000 small checkpoints on SQLite: enough for a command to be caught in the middle."""
    root = tmp_path_factory.mktemp("big")
    gen_echo.generate(root / "ckpts", 4000, seed=11, state_bytes=200)
    with module_db_target("sqlite", root) as db:
        assert cli("--db", db, "import", str(root / "ckpts")).exit_code == 0
        yield db


def _wait_for(condition: Any, proc: subprocess.Popen[Any]) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the command ended (status {proc.returncode}) before it could be stopped")
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError("the command never got far enough")


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_a_rerun_removes_the_temp_files_of_a_killed_export_and_only_those(
    tmp_path: Path, big_db: str
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    users = {
        "notes.json.tmp": "a user's file",
        "abc.json.tmp": "echo's own leftover",
        f".ckptdb-export-{os.getpid()}-0123abcd.json.tmp": "a running export's (this process is alive)",
        f"ckptdb-export-{_dead_pid()}-0123abcd.json.tmp": "not the pattern (not hidden)",
    }
    for name, text in users.items():
        (target / name).write_text(text)
    planted = target / f".ckptdb-export-{_dead_pid()}-feedbeef.json.tmp"
    planted.write_text("left by an export killed earlier")
    proc = subprocess.Popen(
        ckptdb("--db", big_db, "export", str(target), "--batch-size", "10"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: sum(1 for _ in os.scandir(target)) >= 300, proc)
        proc.kill()
    finally:
        proc.wait()
    assert not planted.exists()  # the killed export already removed the earlier one
    rerun = cli("--db", big_db, "export", str(target))
    assert rerun.exit_code == 0, rerun.output
    assert len(list(target.glob("*.json"))) == 4000
    left = {p.name: p.read_text() for p in target.iterdir() if not p.name.endswith(".json")}
    assert left == users  # every temp file of ours gone; everything else as it was
    assert not [name for name in left if EXPORT_TEMP.match(name) and str(os.getpid()) not in name]


# ── 5. Ctrl-C: one behaviour for every command; one table of exit statuses ───────────────────────


def _interrupt(args: list[str], ready: Any, **popen: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A runner started in the background of a non-interactive shell has SIGINT ignored, and
        # children inherit that: give the command the disposition a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **popen,
    )
    try:
        ready(proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def _opened(proc: subprocess.Popen[Any], path: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{proc.pid}/fd").iterdir())
    except OSError:
        return False


def _copy_of(db: str, tmp_path: Path) -> str:
    copy = tmp_path / "work.db"
    with contextlib.closing(sqlite3.connect(db)) as src, contextlib.closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    return str(copy)


def test_ctrl_c_is_130_and_one_line_for_every_command(tmp_path: Path, big_db: str) -> None:
    db = _copy_of(big_db, tmp_path)
    note = "interrupted: {}\n"

    out = tmp_path / "out"
    done = _interrupt(
        ckptdb("--db", db, "export", str(out), "--batch-size", "10"),
        lambda p: _wait_for(lambda: out.is_dir() and sum(1 for _ in os.scandir(out)) >= 100, p),
    )
    assert (done.returncode, done.stderr) == (
        130,
        note.format("the files written so far are complete; run the same command again"),
    )

    dst = tmp_path / "dst.db"
    done = _interrupt(
        ckptdb("copy", "--from", db, "--to", str(dst), "--batch-size", "5"),
        lambda p: _wait_for(lambda: dst.exists() and count_rows(str(dst)) >= 50, p),
    )
    assert (done.returncode, done.stderr) == (
        130,
        note.format("the batches copied so far are kept; run the same command again to finish"),
    )
    assert 0 < count_rows(str(dst)) < 4000
    finished = cli("copy", "--from", db, "--to", str(dst), "-q")
    assert (finished.exit_code, count_rows(str(dst))) == (0, 4000)

    # At the confirmation prompt: click turns Ctrl-C there into "Aborted!" and 1 by itself.
    shown: list[bytes] = []

    def at_prompt(proc: subprocess.Popen[Any]) -> bool:
        shown.append(os.read(proc.stdout.fileno(), 65536))  # type: ignore[union-attr]
        return b"? [y/N]" in b"".join(shown)

    done = _interrupt(
        ckptdb("--db", db, "prune", "--keep-last", "1"),
        lambda p: _wait_for(lambda: at_prompt(p), p),
        stdin=subprocess.PIPE,
    )
    assert done.returncode == 130
    assert done.stderr.endswith(
        note.format(
            "the batches deleted so far stay deleted, the rest is untouched; run the same command again"
        )
    )
    assert "Aborted!" not in done.stderr and "Traceback" not in done.stderr
    assert count_rows(db) == 4000

    # Waiting for another process's write lock.
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        done = _interrupt(ckptdb("--db", db, "vacuum"), lambda p: _wait_for(lambda: _opened(p, Path(db)), p))
        assert (done.returncode, done.stderr) == (
            130,
            note.format("the database is as it was (a vacuum is all or nothing); run it again"),
        )
    assert count_rows(db) == 4000


def test_copy_and_import_share_one_table_of_exit_statuses(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same outcome, the same status: a conflict kept (3), a conflict replaced (3: the report
    names it), `--on-conflict fail` (4)."""
    monkeypatch.chdir(world)
    changed = _cp(0)
    changed.current_node = "elsewhere"
    (world / "conflict").mkdir()
    (world / "conflict" / "c.json").write_text(changed.to_json())
    fill("changed.db", [changed, _cp(1)])
    statuses = []
    for mode in ("skip", "replace", "fail"):
        fill(f"import-{mode}.db", [_cp(0)])
        imported = cli("--db", f"import-{mode}.db", "import", "--on-conflict", mode, "conflict")
        fill(f"copy-{mode}.db", [_cp(0)])
        copied = cli("copy", "--from", "changed.db", "--to", f"copy-{mode}.db", "--on-conflict", mode)
        statuses.append((mode, imported.exit_code, copied.exit_code))
    assert statuses == [("skip", 3, 3), ("replace", 3, 3), ("fail", 4, 4)]


# ── 6. a damaged source row is an outcome of a copy ──────────────────────────────────────────────


DAMAGE = {
    "step_count": "UPDATE checkpoints SET step_count = 'seven' WHERE id = ?",
    "created_at": "UPDATE checkpoints SET created_at = 'yesterday-ish' WHERE id = ?",
    "state_snapshot": "UPDATE checkpoints SET state_snapshot = '{broken' WHERE id = ?",
    "interrupt_type": "UPDATE checkpoints SET interrupt_type = 'BeforeNode' WHERE id = ?",
}


@pytest.mark.parametrize(
    "dst_kind",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    ids=["to-sqlite", "to-postgres"],
)
def test_copy_reports_each_damaged_row_and_copies_the_rest(tmp_path: Path, dst_kind: str) -> None:
    src = str(tmp_path / "src.db")
    checkpoints = [_cp(i) for i in range(12)]
    fill(src, checkpoints)
    damaged = {checkpoints[i].id: column for i, column in zip((1, 4, 7, 9), DAMAGE, strict=True)}
    with sqlite3.connect(src) as conn:
        for checkpoint_id, column in damaged.items():
            try:
                conn.execute(DAMAGE[column], (checkpoint_id,))
            except sqlite3.IntegrityError:  # a CHECK constraint: damage it past the constraint
                conn.execute("PRAGMA ignore_check_constraints = ON")
                conn.execute(DAMAGE[column], (checkpoint_id,))
    dst = pg_database_url() if dst_kind == "postgres" else str(tmp_path / "dst.db")
    report_path = tmp_path / "r.json"
    result = cli("copy", "--from", src, "--to", dst, "--batch-size", "5", "--report", str(report_path))
    assert result.exit_code == 3, result.output
    assert "8 copied, 0 unchanged, 0 replaced, 0 conflicts, 0 refused, 4 damaged" in result.output
    for checkpoint_id in damaged:
        assert f"damaged {checkpoint_id!r}, not copied: " in result.output
    assert "Traceback" not in result.output
    report = json.loads(report_path.read_text())
    assert {row[0] for row in report["damaged_ids"]} == set(damaged)
    assert (report["damaged"], report["copied"], report["exit_status"]) == (4, 8, 3)
    assert count_rows(dst) == 8
    again = cli("copy", "--from", src, "--to", dst, "--batch-size", "5")
    assert again.exit_code == 3 and "0 copied, 8 unchanged" in again.output and "4 damaged" in again.output
    assert is_postgres(dst) == (dst_kind == "postgres")
