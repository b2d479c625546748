"""Availability: when the database cannot be reached or used, every command says so in one line
(what happened, what to do) with exit status 1, never a traceback or a driver's internals.

Real processes throughout: a lowered file-descriptor limit (RLIMIT_NOFILE, what `ulimit -n` sets),
and a PostgreSQL cluster of this module's own (scripts/pg_cluster.py) that is stopped, killed
with SIGKILL under a running query, asked on a wrong port, and set to require a password.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import PG_SKIP, PG_SKIP_REASON, _pg_cluster_module

SOME = 5


def ckptdb(*args: str, nofile: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return subprocess.run(
        [sys.executable, "-m", "ckptdb", *args],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        close_fds=True,
        timeout=300,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "state 12" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.fixture(scope="module")
def some_files(fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("echo")
    for path in sorted(fixture_dir.glob("*.json"))[:SOME]:
        shutil.copy(path, directory / path.name)
    return directory


# ── a low file-descriptor limit ─────────────────────────────────────────────────────────────────────


def _commands(db: Path, some_files: Path) -> list[list[str]]:
    return [
        ["--db", str(db), "list"],
        ["--db", str(db), "stats"],
        ["--db", str(db), "db", "check"],
        ["--db", str(db), "db", "upgrade"],
        ["--db", str(db), "rm", "--missing-ok", "no-such-id"],
        ["--db", str(db.with_name("fresh.db")), "import", "-q", str(some_files)],
    ]


def test_every_limit_on_open_files_gives_success_or_one_line(tmp_path: Path, some_files: Path) -> None:
    """From a limit too low for the interpreter's own imports up to enough for everything: each
    command either works or fails in one line that names the limit; none prints a traceback."""
    db = tmp_path / "fd.db"
    assert ckptdb("--db", str(db), "import", "-q", str(some_files)).returncode == 0
    failures = 0
    for nofile in (6, 8, 10, 12, 16):
        for args in _commands(db, some_files):
            done = ckptdb(*args, nofile=nofile)
            if done.returncode == 0:
                continue
            failures += 1
            assert_one_line(done)
            assert "open files" in done.stderr.lower(), (nofile, args, done.stderr)
        (tmp_path / "fresh.db").unlink(missing_ok=True)
    assert failures > 0  # the range reaches limits that do fail
    assert ckptdb("--db", str(db), "list", nofile=64).returncode == 0


# ── PostgreSQL outages, on a cluster of this module's own ───────────────────────────────────────────


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.module = _pg_cluster_module()
        self.url = self.module.start_cluster(root, fast=True)
        self.data = root / "data"

    def pg_ctl(self, *args: str) -> None:
        pg_ctl = str(self.module.PG_BIN / "pg_ctl")
        command = self.module._as_pg_user([pg_ctl, *args, "-D", str(self.data), "-w"])
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            self.pg_ctl("start", "-l", str(self.root / "postgres.log"))

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(statement)
            return list(cursor.fetchall()) if cursor.description else []


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if PG_SKIP:
        pytest.skip(PG_SKIP_REASON)
    root = Path(tempfile.mkdtemp(prefix="ckptdb-outage-"))
    made = Cluster(root)
    try:
        yield made
    finally:
        made.module.stop_cluster(root)


@pytest.fixture
def running(cluster: Cluster, some_files: Path) -> Cluster:
    """The cluster up, with ckptdb's schema and a few checkpoints."""
    cluster.start()
    done = ckptdb("--db", cluster.url, "import", "-q", str(some_files))
    assert done.returncode == 0, done.stderr
    return cluster


def _every_command(url: str, tmp_path: Path, some_files: Path) -> list[list[str]]:
    return [
        ["--db", url, "list"],
        ["--db", url, "db", "current"],
        ["--db", url, "db", "upgrade"],
        ["--db", url, "db", "check"],
        ["--db", url, "stats"],
        ["--db", url, "sql", "select 1"],
        ["--db", url, "export", str(tmp_path / "out")],
        ["--db", url, "import", "-q", str(some_files)],
        ["--db", url, "rm", "--missing-ok", "x"],
        ["copy", "--from", url, "--to", str(tmp_path / "copy.db"), "-q"],
    ]


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def test_wrong_port(running: Cluster, tmp_path: Path, some_files: Path) -> None:
    parts = urlsplit(running.url)
    with socket_that_refuses() as port:
        wrong = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
        for args in _every_command(wrong, tmp_path, some_files):
            assert_one_line(ckptdb(*args), f"127.0.0.1:{port} (connection refused)", "pg_isready")


class socket_that_refuses:
    """A port nothing listens on: bound, never listened, closed at the end."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *_: object) -> None:
        self.sock.close()


def test_server_stopped(running: Cluster, tmp_path: Path, some_files: Path) -> None:
    running.stop()
    try:
        for args in _every_command(running.url, tmp_path, some_files):
            assert_one_line(ckptdb(*args), "connection refused", "is the server running")
    finally:
        running.start()


def _wait_for_query(cluster: Cluster, condition: str, command: subprocess.Popen[str]) -> int:
    """The pid of the active backend that meets `condition` (polled; no timing)."""
    for _ in range(6000):
        if command.poll() is not None:
            raise AssertionError(f"the command ended before its query ran: {command.communicate()}")
        rows = cluster.sql(
            f"SELECT pid FROM pg_stat_activity WHERE state = 'active' AND {condition} "
            "AND pid <> pg_backend_pid()"
        )
        if rows:
            return int(rows[0][0])  # type: ignore[call-overload]
        time.sleep(0.01)
    raise AssertionError(f"no backend with {condition}")


@pytest.mark.parametrize("how", ["terminated", "server-killed"])
def test_connection_lost_mid_query(running: Cluster, how: str) -> None:
    """`sql`, `list` (a streaming cursor in a read-only transaction, where asyncpg's complaint
    about the dead connection used to replace the server's reason) and `db check` (which took the
    lost connection for a damaged database, exit 3) lose their session mid-query."""
    for args, marker in (
        # pg_sleep is refused by `sql` (a side effect on the server): a long join of two small
        # series keeps the query busy in bounded memory instead.
        (
            ["sql", "select count(*) from generate_series(1, 100000) a, generate_series(1, 100000) b"],
            "application_name = 'ckptdb-sql'",
        ),
        (["list"], "application_name = 'ckptdb' AND wait_event_type = 'Lock'"),
        (["db", "check"], "application_name = 'ckptdb' AND wait_event_type = 'Lock'"),
    ):
        if args[0] != "sql":
            # A read that is still running when the session goes: it waits for another session's lock.
            locker = subprocess.Popen(
                [sys.executable, "-c", _HOLD_LOCK, running.url], stdout=subprocess.PIPE, text=True
            )
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        command = subprocess.Popen(
            [sys.executable, "-m", "ckptdb", "--db", running.url, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            pid = _wait_for_query(running, marker, command)
            if how == "terminated":
                running.sql(f"SELECT pg_terminate_backend({pid})")
            else:
                # The whole server dies: a backend busy computing notices a dead postmaster only
                # when it next waits, so it goes down with it here, as in a machine's crash.
                os.kill(running.postmaster_pid(), signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
            stdout, stderr = command.communicate(timeout=120)
        finally:
            if args[0] != "sql":
                locker.kill()
                locker.wait()
            if command.poll() is None:
                command.kill()
            if how == "server-killed":
                _restart_after_kill(running)
        done = subprocess.CompletedProcess(command.args, command.returncode, stdout, stderr)
        assert_one_line(done, "lost the connection to PostgreSQL", "pg_isready")


_HOLD_LOCK = """
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE")
    print("locked", flush=True)
    __import__("time").sleep(3600)
"""


def _restart_after_kill(cluster: Cluster) -> None:
    """After SIGKILL of the postmaster its children may linger a moment; pg_ctl start -w waits for
    recovery. A stale postmaster.pid is left, which pg_ctl handles."""
    for _ in range(600):
        try:
            cluster.pg_ctl("start", "-l", str(cluster.root / "postgres.log"))
            return
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    raise AssertionError("the cluster did not start again")


def test_authentication_failure(running: Cluster, tmp_path: Path, some_files: Path) -> None:
    hba = running.data / "pg_hba.conf"
    original = hba.read_text()
    running.sql("CREATE ROLE ckptdb_pw LOGIN PASSWORD 'right'")
    try:
        rules = (
            "local all all trust",
            "host all postgres 127.0.0.1/32 trust",
            "host all all 0.0.0.0/0 scram-sha-256",
        )
        hba.write_text("\n".join(rules) + "\n")
        running.pg_ctl("reload")
        parts = urlsplit(running.url)
        wrong = urlunsplit(parts._replace(netloc=f"ckptdb_pw:wrong@127.0.0.1:{parts.port}"))
        for args in _every_command(wrong, tmp_path, some_files):
            done = ckptdb(*args)
            assert_one_line(done, "refused user ckptdb_pw", "password")
            assert "wrong" not in done.stderr  # the password never shows
    finally:
        hba.write_text(original)
        running.pg_ctl("reload")
        running.sql("DROP ROLE ckptdb_pw")
