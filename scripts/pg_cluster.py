#!/usr/bin/env python3
"""Start and stop a throwaway PostgreSQL 15 cluster for ckptdb tests and benchmarks.

Usage:
    python scripts/pg_cluster.py start --dir DIR [--fast]   # prints the URL, writes DIR/url.txt
    python scripts/pg_cluster.py stop --dir DIR             # stops the server, removes DIR
    python scripts/pg_cluster.py run [--dir DIR] [--fast] -- CMD [ARGS...]

`run` starts a cluster, runs CMD with CKPTDB_TEST_PG_URL set, always stops the cluster
afterwards and exits with CMD's exit status.  The functions `start_cluster` and
`stop_cluster` can be imported by a pytest fixture.

Stdlib only, so it works before any project dependency is installed.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Server binaries plus the client tools we call; all come with the postgresql-15 package.
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres", "pg_isready", "createdb")
PG_USER = "postgres"
DB_NAME = "ckptdb_test"
URL_ENV = "CKPTDB_TEST_PG_URL"

# Layout inside DIR.  The marker is how `stop` knows DIR is ours and safe to delete.
MARKER = ".ckptdb-pg-cluster"
DATA_SUBDIR = "data"
SOCKET_SUBDIR = "socket"
LOG_FILE = "postgres.log"
URL_FILE = "url.txt"

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
# Unix socket paths are limited to 107 bytes (sun_path) on Linux.
MAX_SOCKET_PATH = 107


class ClusterError(Exception):
    """A failure we report as a single line on stderr instead of a traceback."""


def _last_line(text: str) -> str:
    """Return the last non-empty line of tool output, the one that usually says what failed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _run(
    cmd: Sequence[str],
    what: str,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    start_new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command with captured output so only our URL ever reaches stdout."""
    try:
        proc = subprocess.run(
            list(cmd),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            env=env,
            start_new_session=start_new_session,
        )
    except OSError as exc:
        raise ClusterError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        raise ClusterError(f"{what} failed (exit {proc.returncode}): {_last_line(proc.stderr)}")
    return proc


def _is_root() -> bool:
    """PostgreSQL refuses to run as root, so as root we switch to the postgres user."""
    return os.geteuid() == 0


def _as_pg_user(cmd: Sequence[str]) -> list[str]:
    """Wrap a command so it runs as the postgres OS user (or unchanged when not root)."""
    if not _is_root():
        return list(cmd)
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", PG_USER, "--", *cmd]
    su = shutil.which("su")
    if su:
        # -s: the system user may have a nologin shell.
        return [su, "-s", "/bin/sh", PG_USER, "-c", shlex.join(cmd)]
    raise ClusterError("neither runuser nor su found; cannot drop root privileges for postgres")


def _pg(name: str) -> str:
    """Path of a PostgreSQL 15 binary; /usr/local/bin may hold symlinks or wrappers, skip it."""
    return str(PG_BIN / name)


def ensure_binaries() -> None:
    """Install postgresql-15 via apt only when its binaries are missing (apt is slow)."""
    missing = [b for b in REQUIRED_BINARIES if not (PG_BIN / b).is_file()]
    if not missing:
        return
    if not _is_root():
        raise ClusterError(f"missing {', '.join(missing)} in {PG_BIN} and not root to install")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], "apt-get update", env=env)
    _run(["apt-get", "install", "-y", "-qq", "postgresql-15"], "apt-get install", env=env)
    missing = [b for b in REQUIRED_BINARIES if not (PG_BIN / b).is_file()]
    if missing:
        raise ClusterError(f"still missing after install: {', '.join(missing)} in {PG_BIN}")


def ensure_pg_user() -> pwd.struct_passwd:
    """Return the postgres OS user, creating it if needed (only relevant when root)."""
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        pass
    _run(["useradd", "--system", "--user-group", "--no-create-home", PG_USER], "useradd")
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError as exc:
        raise ClusterError(f"user {PG_USER!r} still missing after useradd") from exc


def _free_port() -> int:
    """Ask the kernel for a free loopback port; a small race remains, so start() retries."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _locale_args() -> list[str]:
    """Use C.UTF-8 when the system has it, else fall back to --no-locale (plain C)."""
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    names = {line.strip().lower().replace("-", "") for line in out.splitlines()}
    return ["--locale=C.UTF-8"] if "c.utf8" in names else ["--no-locale"]


def _conf_quote(value: str) -> str:
    """Quote a string for postgresql.conf."""
    return "'" + value.replace("'", "''") + "'"


def _url(port: int) -> str:
    return f"postgresql://{PG_USER}@127.0.0.1:{port}/{DB_NAME}"


def _read_log(log: Path, offset: int = 0) -> str:
    """Server log text written since `offset` (empty if there is no log yet)."""
    try:
        with log.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _log_size(log: Path) -> int:
    try:
        return log.stat().st_size
    except OSError:
        return 0


def _log_hint(text: str) -> str:
    """The line of a server log that explains a failure: the last FATAL/PANIC, else the end."""
    for line in reversed(text.splitlines()):
        if "FATAL:" in line or "PANIC:" in line:
            return line.strip()
    return _last_line(text)


def _write_conf(data: Path, socket_dir: Path, port: int, fast: bool) -> None:
    """Append our settings; later lines in postgresql.conf override earlier ones."""
    lines = [
        "",
        "# --- added by scripts/pg_cluster.py ---",
        "listen_addresses = '127.0.0.1'",
        f"port = {port}",
        f"unix_socket_directories = {_conf_quote(str(socket_dir))}",
        "max_connections = 200",
    ]
    if fast:
        # Only for test runs: benchmarks must measure real durability costs.
        lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
    with (data / "postgresql.conf").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def _set_port(data: Path, port: int) -> None:
    """Re-point the cluster at a new port after losing the race for the previous one."""
    with (data / "postgresql.conf").open("a", encoding="utf-8") as fh:
        fh.write(f"port = {port}\n")


def _prepare_dir(root: Path) -> None:
    """Create DIR (or accept an empty one) and hand it to the postgres user."""
    if root.exists():
        if not root.is_dir():
            raise ClusterError(f"{root} exists and is not a directory")
        if any(root.iterdir()):
            if (root / MARKER).exists():
                raise ClusterError(f"{root} already holds a cluster; run 'stop --dir {root}' first")
            raise ClusterError(f"{root} is not empty; refusing to use it")
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).touch()
    (root / SOCKET_SUBDIR).mkdir(mode=0o700)
    if _is_root():
        user = ensure_pg_user()
        for path in (root, root / SOCKET_SUBDIR):
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o700)
        probe = subprocess.run(
            _as_pg_user(["test", "-w", str(root), "-a", "-x", str(root)]),
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            raise ClusterError(
                f"user {PG_USER} cannot reach {root} (a parent directory is not searchable);"
                " use a directory under /tmp"
            )


def _wait_ready(port: int, log: Path) -> None:
    """pg_ctl -w already waited; confirm the TCP listener too before handing out the URL."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        proc = subprocess.run(
            [_pg("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER],
            capture_output=True,
            check=False,
        )
        if proc.returncode == 0:
            return
        if time.monotonic() > deadline:
            hint = _log_hint(_read_log(log))
            raise ClusterError(f"server on port {port} not ready: {hint} (see {log})")
        time.sleep(0.1)


def _pg_ctl_start(data: Path, log: Path) -> None:
    """Start the postmaster in its own session so a Ctrl-C aimed at us does not kill it."""
    cmd = [_pg("pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w"]
    _run(
        _as_pg_user([*cmd, "-t", str(START_TIMEOUT_S)]),
        "pg_ctl start",
        cwd=data.parent,
        start_new_session=True,
    )


def start_cluster(dir: str | os.PathLike[str], fast: bool = False) -> str:
    """Create and start a fresh cluster in `dir`; return its URL (also written to url.txt).

    `dir` must not exist or be empty.  On failure the server is stopped but `dir` is kept
    so its postgres.log can be inspected; call stop_cluster(dir) to clean up.
    """
    root = Path(dir).absolute()
    data = root / DATA_SUBDIR
    socket_dir = root / SOCKET_SUBDIR
    log = root / LOG_FILE
    sock_len = len(str(socket_dir / ".s.PGSQL.65535").encode())
    if sock_len > MAX_SOCKET_PATH:
        raise ClusterError(f"{root} is too long for a unix socket path ({sock_len} > 107 bytes)")
    ensure_binaries()
    _prepare_dir(root)

    # --no-sync only skips initdb's final flush: harmless for a throwaway cluster, and it
    # does not change how the running server syncs (which is what benchmarks measure).
    initdb = [_pg("initdb"), "-D", str(data), "--auth=trust", "-U", PG_USER]
    initdb += ["--encoding=UTF8", *_locale_args(), "--no-sync"]
    _run(_as_pg_user(initdb), "initdb", cwd=root)

    port = _free_port()
    _write_conf(data, socket_dir, port, fast)
    attempts = 3
    for attempt in range(attempts):
        offset = _log_size(log)
        try:
            _pg_ctl_start(data, log)
            break
        except ClusterError as exc:
            text = _read_log(log, offset)
            _stop_server(data)
            if attempt + 1 < attempts and "could not bind" in text:
                # Someone grabbed the port between _free_port() and the postmaster's bind.
                port = _free_port()
                _set_port(data, port)
                continue
            raise ClusterError(f"{exc}; log: {_log_hint(text)} (see {log})") from exc

    try:
        _wait_ready(port, log)
        _run(
            [_pg("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, DB_NAME],
            "createdb",
        )
    except ClusterError:
        _stop_server(data)
        raise
    url = _url(port)
    (root / URL_FILE).write_text(url + "\n", encoding="utf-8")
    return url


def _stop_server(data: Path) -> None:
    """Stop the postmaster if one is running on `data`; no-op otherwise."""
    if not (data / "postmaster.pid").exists():
        return
    stop = [_pg("pg_ctl"), "stop", "-D", str(data), "-w", "-t", str(STOP_TIMEOUT_S)]
    try:
        _run(_as_pg_user([*stop, "-m", "fast"]), "pg_ctl stop")
    except ClusterError:
        # A stale postmaster.pid makes pg_ctl fail although nothing runs: that's fine.
        status = subprocess.run(
            _as_pg_user([_pg("pg_ctl"), "status", "-D", str(data)]),
            capture_output=True,
            check=False,
        )
        if status.returncode != 0:  # 3 = not running
            return
        _run(_as_pg_user([*stop, "-m", "immediate"]), "pg_ctl stop -m immediate")


def stop_cluster(dir: str | os.PathLike[str]) -> None:
    """Stop the cluster in `dir` and delete `dir`; does nothing if it is already gone.

    Only directories created by start_cluster (they carry a marker file) are deleted, so a
    mistyped --dir cannot wipe unrelated data.
    """
    root = Path(dir).absolute()
    if not root.exists():
        return
    if not (root / MARKER).exists():
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
            return
        raise ClusterError(f"{root} was not created by pg_cluster.py; refusing to delete it")
    if (PG_BIN / "pg_ctl").is_file():
        _stop_server(root / DATA_SUBDIR)
    try:
        shutil.rmtree(root)
    except OSError as exc:
        raise ClusterError(f"could not remove {root}: {exc}") from exc


def _exit_status(returncode: int) -> int:
    """Map a child killed by signal N to 128+N, as shells do."""
    return 128 - returncode if returncode < 0 else returncode


def _owned_or_absent(root: Path) -> bool:
    """True if stop_cluster may clean up `root` (ours, empty or gone), not someone's data."""
    if not root.exists():
        return True
    return root.is_dir() and ((root / MARKER).exists() or not any(root.iterdir()))


def run_with_cluster(dir: str | os.PathLike[str] | None, fast: bool, cmd: Sequence[str]) -> int:
    """Run `cmd` against a fresh cluster, always tearing it down; return cmd's exit status."""
    root = Path(dir) if dir else Path(tempfile.mkdtemp(prefix="ckptdb-pg-"))
    child: subprocess.Popen[bytes] | None = None
    cleanup = _owned_or_absent(root)  # never delete a foreign dir start_cluster refused

    def forward(signum: int, _frame: FrameType | None) -> None:
        # SIGTERM/SIGHUP (e.g. a CI timeout) go to the child so it can exit and we still
        # reach the cleanup below; before the child exists they abort the start.
        if child is not None and child.poll() is None:
            child.send_signal(signum)
        else:
            raise KeyboardInterrupt

    def ignore_sigint(_signum: int, _frame: FrameType | None) -> None:
        # Ctrl-C already reached the child (same process group); like a shell, we wait
        # for it to finish instead of dying before cleanup.
        pass

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    ok = False
    try:
        url = start_cluster(root, fast)
        signal.signal(signal.SIGINT, ignore_sigint)
        try:
            child = subprocess.Popen(list(cmd), env={**os.environ, URL_ENV: url})
        except OSError as exc:
            raise ClusterError(f"cannot run {cmd[0]!r}: {exc}") from exc
        status = _exit_status(child.wait())
        ok = True
        return status
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup must not be interrupted
        try:
            if cleanup:
                stop_cluster(root)
        except ClusterError as exc:
            if ok:
                raise
            # Don't mask the original error; still say what was left behind.
            print(f"pg_cluster: warning: cleanup failed: {exc}", file=sys.stderr)
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)


def _parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split off everything after the first `--` as the command for `run`."""
    argv = list(argv)
    cmd: list[str] = []
    if "--" in argv:
        idx = argv.index("--")
        argv, cmd = argv[:idx], argv[idx + 1 :]
    parser = argparse.ArgumentParser(
        prog="pg_cluster.py", description="Throwaway PostgreSQL 15 cluster for ckptdb tests."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p_start = sub.add_parser("start", help="start a cluster and print its URL")
    p_start.add_argument("--dir", required=True, help="directory to create (must be empty)")
    p_start.add_argument("--fast", action="store_true", help="fsync/synchronous_commit/full_page_writes off")
    p_stop = sub.add_parser("stop", help="stop the cluster and remove its directory")
    p_stop.add_argument("--dir", required=True)
    p_run = sub.add_parser(
        "run",
        usage="pg_cluster.py run [--dir DIR] [--fast] -- CMD [ARGS...]",
        help=f"start, run CMD with {URL_ENV} set, always stop; exits with CMD's status",
    )
    p_run.add_argument("--dir", help="directory to use (default: a new temp directory)")
    p_run.add_argument("--fast", action="store_true", help="as for start")
    args = parser.parse_args(argv)
    if args.action == "run" and not cmd:
        parser.error("run needs a command after --")
    if args.action != "run" and cmd:
        parser.error(f"{args.action} takes no command")
    return args, cmd


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit status."""
    args, cmd = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.action == "start":
            print(start_cluster(args.dir, args.fast), flush=True)
            return 0
        if args.action == "stop":
            stop_cluster(args.dir)
            return 0
        return run_with_cluster(args.dir, args.fast, cmd)
    except ClusterError as exc:
        print(f"pg_cluster: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pg_cluster: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
