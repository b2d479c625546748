"""Opening databases: the exact file a path names, refusals before anything is touched, read-only
commands that leave the file as it was, and API misuse answered with ckptdb errors.

Every CLI call here runs with `catch_exceptions=False`: a traceback fails the test.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from conftest import pg_database_url

from ckptdb import (
    CkptdbError,
    FileCheckpointStore,
    SchemaError,
    StoreError,
    migrate,
    open_store,
)
from ckptdb.cli import main
from ckptdb.copy import copy_checkpoints
from ckptdb.sql.revision import HEAD, VERSION_TABLE

SOME = 5  # fixture files per test database: enough to see every row come through


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def files_in(directory: Path) -> dict[str, tuple[str, int]]:
    """Every entry of a directory: name -> (sha256, mtime_ns), or ("dir", 0)."""
    found: dict[str, tuple[str, int]] = {}
    for entry in sorted(directory.iterdir()):
        if entry.is_dir():
            found[entry.name] = ("dir", 0)
        else:
            found[entry.name] = (hashlib.sha256(entry.read_bytes()).hexdigest(), entry.stat().st_mtime_ns)
    return found


def _one_id(directory: Path) -> str:
    return sorted(directory.glob("*.json"))[0].stem


# ── 1. a path names that file, on every code path ───────────────────────────────────────────────────

AWKWARD_NAMES = [
    "a#c.db",
    "my?x.db",
    "p%41.db",
    "x%3F.db",
    "sp ace.db",
    "résumé ü.db",
    "-lead.db",
    "file:x.db",
    "q?mode=ro#frag.db",
]


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_every_code_path_opens_the_exact_file_a_path_names(
    tmp_path: Path, some_files: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    db = work / name
    # migrations (Alembic), then the store (import), then the inspection commands, then sql, copy
    assert cli(f"--db={name}", "db", "upgrade") == (0, f"{db}: upgraded empty -> {HEAD}\n")
    code, out = cli(f"--db={name}", "import", "-q", str(some_files))
    assert code == 0 and f"{SOME} imported" in out, out
    assert cli(f"--db={name}", "db", "current") == (0, f"{HEAD} (up to date)\n")
    code, out = cli(f"--db={name}", "list", "--format", "jsonl")
    assert code == 0 and len(out.splitlines()) == SOME, out
    code, out = cli(f"--db={name}", "sql", "select count(*) as n from checkpoints", "--format", "jsonl")
    assert (code, out) == (0, f'{{"n": {SOME}}}\n')
    code, out = cli(f"--db={name}", "db", "check")
    assert code == 0, out
    copied = f"copy {name}"
    code, out = cli("copy", "--from", name, "--to", copied, "-q")
    assert code == 0, out
    assert sorted(os.listdir(work)) == sorted([name, copied]), os.listdir(work)  # nothing stray
    for path in (db, work / copied):
        with closing(sqlite3.connect(path)) as conn:  # a plain file name: no URI parsing
            assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == SOME
    # The same file through the library, and as a sqlite:/// URL with the name percent-encoded.
    assert migrate.current(db) == HEAD
    url = "sqlite:///" + quote(str(db))

    async def through_api() -> None:
        async with await open_store(url, create=False) as store:
            assert await store.count() == SOME
            assert store.target.path == db

    asyncio.run(through_api())
    assert sorted(os.listdir(work)) == sorted([name, copied])


async def test_copy_between_awkward_names_through_the_library(tmp_path: Path, some_files: Path) -> None:
    source, destination = tmp_path / "s#1.db", tmp_path / "d?2.db"
    _ckptdb_db(source, some_files)
    report = await copy_checkpoints(source, destination)
    assert report.copied == SOME
    assert sorted(os.listdir(tmp_path)) == ["d?2.db", "s#1.db"]


def test_a_sqlite_url_with_options_is_refused_not_dropped(tmp_path: Path) -> None:
    code, out = cli("--db", f"sqlite:///{tmp_path}/x.db?mode=ro", "list")
    assert code == 1 and out.startswith("Error: ") and "percent-encode" in out, out
    assert list(tmp_path.iterdir()) == []


# ── 2. and 3. what is not this ckptdb's schema: one line, nothing modified ───────────────────────────

LANGGRAPH_SCHEMA = (
    "CREATE TABLE checkpoints (thread_id TEXT, checkpoint_ns TEXT, checkpoint_id TEXT, "
    "parent_checkpoint_id TEXT, type TEXT, checkpoint BLOB, metadata BLOB, "
    "PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id))"
)


def _langgraph(path: Path, _some_files: Path | None = None) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(LANGGRAPH_SCHEMA)
        conn.execute("INSERT INTO checkpoints VALUES ('t', '', 'c1', NULL, 'msgpack', x'00', x'00')")
    conn.close()


def _ckptdb_db(path: Path, some_files: Path) -> None:
    """Import the files; in a thread of its own, so async tests can call it too (the CLI runs its
    own event loop)."""
    with ThreadPoolExecutor(1) as pool:
        code, out = pool.submit(cli, "--db", str(path), "import", "-q", str(some_files)).result()
    assert code == 0, out


def _newer(path: Path, some_files: Path) -> None:
    _ckptdb_db(path, some_files)
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = '0099_from_the_future'")
    conn.close()


def _downgraded(path: Path, some_files: Path) -> None:
    _ckptdb_db(path, some_files)
    assert cli("--db", str(path), "db", "downgrade", "--yes", "base")[0] == 0


def _every_command(db: str, tmp: Path, ids: str) -> list[list[str]]:
    return [
        ["db", "upgrade"],
        ["db", "upgrade", "--revision", "0001_initial"],
        ["db", "downgrade", "--yes"],
        ["db", "downgrade", "--yes", "base"],
        ["db", "current"],
        ["db", "check"],
        ["list"],
        ["show", ids],
        ["latest", "some_graph"],
        ["graphs"],
        ["stats"],
        ["pending"],
        ["sql", "select 1"],
        ["export", str(tmp / "exported")],
        ["import", "-q", str(tmp / "echo")],
        ["rm", ids],
        ["prune", "--keep-last", "1", "--yes"],
        ["vacuum"],
        ["copy", "--from", db, "--to", str(tmp / "copy.db"), "-q"],
    ]


def _run_everything(db: Path, tmp: Path, some_files: Path) -> Iterator[tuple[list[str], int, str]]:
    """Each command's outcome, one at a time (the caller may act between two commands)."""
    shutil.copytree(some_files, tmp / "echo")
    for args in _every_command(str(db), tmp, _one_id(some_files)):
        full = args if args[0] == "copy" else ["--db", str(db), *args]
        code, out = cli(*full)
        yield args, code, out


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_langgraph, "has a checkpoints table that ckptdb's migrations did not create"),
        (_newer, "0099_from_the_future, which this ckptdb does not know"),
    ],
    ids=["langgraph-table", "newer-schema"],
)
def test_a_database_that_is_not_this_ckptdbs_gets_one_line_from_every_command_and_is_untouched(
    tmp_path: Path, some_files: Path, make: object, expected: str
) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    db = db_dir / "other.db"
    make(db, some_files)  # type: ignore[operator]
    before = files_in(db_dir)
    for args, code, out in _run_everything(db, tmp_path, some_files):
        if args == ["db", "current"] and make is _newer:
            assert (code, out) == (
                0,
                "0099_from_the_future (unknown to this ckptdb (newer?): upgrade ckptdb)\n",
            )
            continue
        assert code == 1, (args, out)
        assert len(out.splitlines()) == 1 and out.startswith("Error: ") and expected in out, (args, out)
        assert files_in(db_dir) == before, args
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "exported").exists()


def test_after_downgrade_to_base_every_command_says_so(tmp_path: Path, some_files: Path) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    db = db_dir / "down.db"
    _downgraded(db, some_files)
    for args, code, out in _run_everything(db, tmp_path, some_files):
        assert "did not create" not in out, (args, out)
        if args in (["db", "upgrade"], ["db", "upgrade", "--revision", "0001_initial"]):
            assert code == 0 and "upgraded empty -> " in out, (args, out)
            assert cli("--db", str(db), "db", "downgrade", "--yes", "base")[0] == 0
        elif args == ["db", "current"]:
            assert (code, out) == (0, "none (the schema was downgraded to base: run `ckptdb db upgrade`)\n")
        elif args == ["db", "downgrade", "--yes"]:
            assert code == 1 and "Relative revision -1" in out and len(out.splitlines()) == 1, out
        elif args == ["db", "downgrade", "--yes", "base"]:
            assert code == 0, out  # already there: nothing to do
        else:
            assert code == 1 and len(out.splitlines()) == 1, (args, out)
            assert "the schema was downgraded to base; run `ckptdb --db" in out, (args, out)


@pytest.mark.parametrize("kind", ["directory", "dev-null"])
def test_a_path_that_is_not_a_file_gets_one_line_from_every_command(
    tmp_path: Path, some_files: Path, kind: str
) -> None:
    if kind == "directory":
        db = tmp_path / "a-directory"
        db.mkdir()
        (db / "keep.txt").write_text("x")
        expected = "is a directory, not an SQLite database file"
    else:
        db = Path("/dev/null")
        expected = "/dev/null is not a regular file"
    for args, code, out in _run_everything(db, tmp_path, some_files):
        assert code == 1, (args, out)
        assert len(out.splitlines()) == 1 and expected in out, (args, out)
    if kind == "directory":
        assert os.listdir(db) == ["keep.txt"]
    assert Path("/dev/null").is_char_device()


def test_an_unknown_revision_is_refused_before_a_file_is_created(tmp_path: Path, some_files: Path) -> None:
    missing = tmp_path / "new.db"
    code, out = cli("--db", str(missing), "db", "upgrade", "--revision", "bogus")
    assert code == 1 and out.startswith("Error: unknown revision 'bogus'") and len(out.splitlines()) == 1
    assert not missing.exists()
    existing = tmp_path / "has.db"
    _ckptdb_db(existing, some_files)
    before = files_in(tmp_path)
    for args in (["db", "upgrade", "--revision", "bogus"], ["db", "downgrade", "--yes", "bogus"]):
        code, out = cli("--db", str(existing), *args)
        assert code == 1 and out.startswith("Error: unknown revision 'bogus'"), out
    assert files_in(tmp_path) == before
    with pytest.raises(SchemaError, match="unknown revision"):
        migrate.upgrade(missing, "bogus")
    assert not missing.exists()


async def test_the_library_refuses_the_same_way(tmp_path: Path, some_files: Path) -> None:
    lang = tmp_path / "lang.db"
    _langgraph(lang)
    before = files_in(tmp_path)
    with pytest.raises(StoreError, match="did not create"):
        await open_store(lang)
    with pytest.raises(StoreError, match="did not create"):
        migrate.upgrade(lang)
    with pytest.raises(StoreError, match="did not create"):
        migrate.downgrade(lang, "base")
    assert files_in(tmp_path) == before


# ── 4. read-only commands change nothing ────────────────────────────────────────────────────────────

READ_ONLY = [
    ["list"],
    ["show", "ID"],
    ["latest", "GRAPH"],
    ["graphs"],
    ["stats"],
    ["pending"],
    ["sql", "select count(*) from checkpoints"],
    ["export", "OUT"],
    ["db", "check"],
    ["db", "current"],
]


def _read_only_args(args: list[str], some_files: Path, out_dir: Path) -> list[str]:
    first = sorted(some_files.glob("*.json"))[0]
    graph = __import__("json").loads(first.read_bytes())["graph_name"]
    return [
        {"ID": first.stem, "GRAPH": graph, "OUT": str(out_dir / "exported")}.get(arg, arg) for arg in args
    ]


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_read_only_commands_leave_the_database_file_as_it_was(
    tmp_path: Path, some_files: Path, journal: str
) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    db = db_dir / "r.db"
    _ckptdb_db(db, some_files)
    with sqlite3.connect(db) as conn:  # the mode a copied or older file may be in
        assert conn.execute(f"PRAGMA journal_mode = {journal}").fetchone()[0] == journal
    conn.close()
    before = files_in(db_dir)
    assert list(before) == ["r.db"]
    for args in READ_ONLY:
        code, out = cli("--db", str(db), *_read_only_args(args, some_files, tmp_path))
        assert code == 0, (args, out)
        assert files_in(db_dir) == before, args  # no journal switch, no -wal/-shm, no new file
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == journal


async def test_a_read_only_store_starts_no_threads_and_refuses_writes(
    tmp_path: Path, some_files: Path
) -> None:
    db = tmp_path / "r.db"
    _ckptdb_db(db, some_files)
    before = {thread.name for thread in threading.enumerate()}
    store = await open_store(db, readonly=True)
    try:
        started = {thread.name for thread in threading.enumerate()} - before
        assert not any(name.startswith("ckptdb-sqlite") for name in started), started
        assert await store.count() == SOME
        with pytest.raises(StoreError, match="opened read-only"):
            await store.delete(_one_id(some_files))
        with pytest.raises(StoreError, match="opened read-only"):
            await store.clear()
    finally:
        await store.close()
    assert await _count(db) == SOME


async def _count(db: Path) -> int:
    async with await open_store(db, readonly=True) as store:
        return await store.count()


@pytest.mark.postgres
async def test_a_read_only_postgres_store_refuses_writes() -> None:
    url = pg_database_url()
    async with await open_store(url) as store:
        assert await store.count() == 0
    async with await open_store(url, readonly=True) as store:
        assert await store.count() == 0
        with pytest.raises(StoreError, match="opened read-only"):
            await store.clear()


def _mount_read_only_tmpfs(directory: Path) -> bool:
    directory.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(directory)], capture_output=True
    )
    return made.returncode == 0


@pytest.fixture
def read_only_mount(tmp_path: Path, some_files: Path) -> Iterator[Path]:
    """A real read-only file system (a small tmpfs remounted ro) holding a WAL and a DELETE-journal
    database, made while it was writable."""
    mount = tmp_path / "ro"
    if not _mount_read_only_tmpfs(mount):
        pytest.skip(
            "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): no read-only file system to test"
        )
    try:
        _ckptdb_db(mount / "wal.db", some_files)
        _ckptdb_db(mount / "delete.db", some_files)
        with sqlite3.connect(mount / "delete.db") as conn:
            conn.execute("PRAGMA journal_mode = delete")
        conn.close()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("name", ["wal.db", "delete.db"])
def test_read_only_commands_work_on_a_read_only_file_system(
    read_only_mount: Path, tmp_path: Path, some_files: Path, name: str
) -> None:
    db = read_only_mount / name
    before = files_in(read_only_mount)
    for args in READ_ONLY:
        # A real process: what a person runs, with nothing of this test's state around it.
        done = subprocess.run(
            [sys.executable, "-m", "ckptdb", "--db", str(db), *_read_only_args(args, some_files, tmp_path)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (args, done.stderr)
    assert files_in(read_only_mount) == before
    done = subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", str(db), "rm", _one_id(some_files)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stdout == "", done
    assert done.stderr.startswith("Error: cannot write") and "directory is read-only" in done.stderr, (
        done.stderr
    )
    assert len(done.stderr.splitlines()) == 1


def test_read_only_commands_work_for_a_user_who_may_not_write_the_directory(
    tmp_path: Path, some_files: Path
) -> None:
    """chmod 555 means nothing to root: the commands run without the capabilities that let root
    pass permission checks (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so the
    directory's mode binds them as it binds any user, while they can still read a checkout that
    only root may read (a clone in a 0700 temporary directory, as CI makes)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command without root's permission override")
    shared = Path("/tmp") / f"ckptdb-ro-{os.getpid()}-{tmp_path.name}"
    shared.mkdir(mode=0o755)
    try:
        db = shared / "mine.db"
        _ckptdb_db(db, some_files)
        db.chmod(0o644)
        shared.chmod(0o555)
        before = files_in(shared)
        out_dir = shared.parent / f"{shared.name}-out"
        out_dir.mkdir(mode=0o777)
        out_dir.chmod(0o777)
        for args in READ_ONLY:
            done = subprocess.run(
                [
                    "setpriv",
                    "--inh-caps=-dac_override,-dac_read_search",
                    "--bounding-set=-dac_override,-dac_read_search",
                    sys.executable,
                    "-m",
                    "ckptdb",
                    "--db",
                    str(db),
                    *_read_only_args(args, some_files, out_dir),
                ],
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, (args, done.stderr)
        assert files_in(shared) == before
    finally:
        shared.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(shared.parent / f"{shared.name}-out", ignore_errors=True)


# ── 6. API misuse: ckptdb errors with a remedy, never bare Python errors ─────────────────────────────


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"busy_timeout": 5}, "unknown option 'busy_timeout' for a SQLite store: the options are"),
        ({"pool_max_size": 5}, "unknown option 'pool_max_size' for a SQLite store"),
        ({"busy_timeout_ms": -1}, "busy_timeout_ms must be a whole number of at least 0, got -1"),
        ({"busy_timeout_ms": "5000"}, "busy_timeout_ms must be a whole number"),
        ({"busy_timeout_ms": 1.5}, "busy_timeout_ms must be a whole number"),
        ({"synchronous": "bogus"}, "synchronous must be NORMAL or FULL, got 'bogus'"),
        ({"synchronous": 2}, "synchronous must be NORMAL or FULL, got 2"),
        ({"commit_on_loop": "no"}, "commit_on_loop must be True or False"),
        ({"create": "yes"}, "create must be True or False"),
        ({"readonly": 1}, "readonly must be True or False"),
    ],
)
async def test_bad_open_store_options_are_ckptdb_errors(
    tmp_path: Path, options: dict[str, object], expected: str
) -> None:
    with pytest.raises(CkptdbError) as caught:
        await open_store(tmp_path / "x.db", **options)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("mysql://u@h/db", "unsupported database URL"),
        ("redis://localhost", "unsupported database URL"),
        (42, "database target must be a path or URL string, got int"),
        (":memory:", "in-memory SQLite database cannot be shared"),
        ("sqlite://relative.db", "three slashes before a relative path"),
    ],
)
async def test_bad_targets_are_ckptdb_errors(target: object, expected: str) -> None:
    with pytest.raises(CkptdbError, match=expected):
        await open_store(target)  # type: ignore[arg-type]


@pytest.mark.postgres
async def test_bad_postgres_options_are_ckptdb_errors() -> None:
    url = pg_database_url()
    for options, expected in (
        ({"synchronous": "bogus"}, "synchronous must be NORMAL or FULL"),
        ({"busy_timeout_ms": -5}, "busy_timeout_ms must be a whole number of at least 0"),
        ({"pool_max_size": "10"}, "pool_max_size must be a whole number of at least 1"),
        ({"command_timeout": -1}, "command_timeout must be a number of seconds above 0"),
        ({"nonsense": 1}, "unknown option 'nonsense' for a PostgreSQL store"),
    ):
        with pytest.raises(CkptdbError, match=expected):
            await open_store(url, **options)


def test_file_store_on_a_regular_file_is_refused(tmp_path: Path) -> None:
    regular = tmp_path / "checkpoints.db"
    regular.write_bytes(b"not a directory")
    with pytest.raises(
        StoreError, match="is a file, not a directory: FileCheckpointStore takes the directory"
    ):
        FileCheckpointStore(regular)
    with pytest.raises(CkptdbError, match="FileCheckpointStore takes a directory path, got 3"):
        FileCheckpointStore(3)  # type: ignore[arg-type]
    with pytest.raises(CkptdbError, match="fsync must be True or False"):
        FileCheckpointStore(tmp_path / "d", fsync="yes")  # type: ignore[arg-type]
    assert regular.read_bytes() == b"not a directory"


# A real `ckptdb` process that records the name of every thread it starts, printed at exit: the
# writer and the WAL checkpointer are threads of their own, so a read-write open shows up here.
_THREAD_RECORDER = """
import atexit, sys, threading
started = []
_start = threading.Thread.start
def start(self):
    started.append(self.name)
    _start(self)
threading.Thread.start = start
atexit.register(lambda: print("threads:" + ",".join(started), file=sys.stderr))
from ckptdb.cli import main
main(sys.argv[1:], prog_name="ckptdb")
"""
STORE_THREADS = ("ckptdb-sqlite-writer", "ckptdb-sqlite-checkpoint")


def test_read_only_commands_start_no_writer_or_checkpointer_and_write_no_wal(
    tmp_path: Path, some_files: Path
) -> None:
    """Each read-only command, in its own process, on a WAL database: neither store thread starts,
    and the file and its directory stay byte for byte and mtime for mtime as they were (no -wal
    written, no -shm made). `rm` is the control: it opens read-write and starts both."""
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    db = db_dir / "r.db"
    _ckptdb_db(db, some_files)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    before = files_in(db_dir)

    def threads_of(*args: str) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-c", _THREAD_RECORDER, "--db", str(db), *args], capture_output=True, text=True
        )
        assert done.returncode == 0, (args, done.stderr)
        line = done.stderr.splitlines()[-1]
        assert line.startswith("threads:"), done.stderr
        return set(line.removeprefix("threads:").split(","))

    for args in READ_ONLY:
        started = threads_of(*_read_only_args(args, some_files, tmp_path))
        assert not started & set(STORE_THREADS), (args, started)
        assert files_in(db_dir) == before, args
    assert set(STORE_THREADS) <= threads_of("rm", _one_id(some_files))
