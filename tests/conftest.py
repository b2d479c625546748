"""Shared test fixtures: the real echo fixtures, the manifest's canonical hash, and the store registry.

Every contract test takes the `store` fixture, which is parametrized over `STORE_FACTORIES`: register a
backend there (name -> async factory taking a fresh directory) and the whole contract suite runs on it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ckptdb import (
    CheckpointStore,
    FileCheckpointStore,
    MemoryCheckpointStore,
    SyncCheckpointStore,
    SyncFileCheckpointStore,
    SyncMemoryCheckpointStore,
    connect,
    open_store,
)

# The 300 files written by echo's real Rust serializers, and their manifest, live in the repository
# (tests/fixtures/README.md says where they came from), so a clone alone runs the whole suite.
FIXTURES_ROOT = Path(__file__).resolve().parent / "fixtures"
FIXTURE_DIR = FIXTURES_ROOT / "echo-0.1"
MANIFEST_PATH = FIXTURES_ROOT / "echo-0.1.MANIFEST.json"


def _require(path: Path) -> Path:
    """The fixtures are part of the test suite: missing means a broken checkout, never 'skip'."""
    if not path.exists():
        raise RuntimeError(f"missing {path}: the fixtures belong to the repository; restore them with git")
    return path


@functools.cache
def load_manifest() -> dict[str, Any]:
    """The parsed fixture manifest (usable at collection time, e.g. for parametrize)."""
    manifest: dict[str, Any] = json.loads(_require(MANIFEST_PATH).read_text(encoding="utf-8"))
    _require(FIXTURE_DIR)
    if len(manifest["files"]) != 300:
        raise RuntimeError(f"{MANIFEST_PATH} lists {len(manifest['files'])} files, expected 300")
    return manifest


def canonical_sha256(data: bytes | str) -> str:
    """The manifest's `sha256_canonical_recipe`, exactly:

    sha256(json.dumps(json.loads(file_bytes.decode("utf-8")), sort_keys=True, ensure_ascii=False,
    separators=(",", ":"), allow_nan=False).encode("utf-8"))
    """
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    canonical = json.dumps(
        json.loads(text), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return _require(FIXTURE_DIR)


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    return load_manifest()


@pytest.fixture(scope="module")
def some_files(
    fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Path:
    """A directory of the first few fixture files: as many as the test module's `SOME` says."""
    directory = tmp_path_factory.mktemp("echo")
    for path in sorted(fixture_dir.glob("*.json"))[: request.module.SOME]:
        shutil.copy(path, directory / path.name)
    return directory


# ── store factory registry ────────────────────────────────────────────────────────────────────────

StoreFactory = Callable[[Path], Awaitable[CheckpointStore]]


async def _memory_store(tmp_path: Path) -> CheckpointStore:
    return MemoryCheckpointStore()


async def _file_store(tmp_path: Path) -> CheckpointStore:
    return FileCheckpointStore(tmp_path / "ckpts")


async def _sqlite_store(tmp_path: Path) -> CheckpointStore:
    return await open_store(tmp_path / "checkpoints.db")  # the defaults: short reads on the loop


async def _sqlite_thread_reads_store(tmp_path: Path) -> CheckpointStore:
    return await open_store(tmp_path / "checkpoints.db", read_on_loop=False)


class AsyncOverSync(CheckpointStore):
    """A synchronous store presented through the async interface, each call on a worker thread
    (`asyncio.to_thread`): the contract suite, written once against `CheckpointStore`, then runs on
    every synchronous store too. For the tests only; the calls land on several threads, as in a
    thread pool, so the per-thread connections are exercised as well."""

    def __init__(self, store: SyncCheckpointStore) -> None:
        self.sync = store

    @property
    def target(self) -> Any:
        return getattr(self.sync, "target", None)

    async def save(self, checkpoint: Any) -> None:
        await asyncio.to_thread(self.sync.save, checkpoint)

    async def save_many(self, checkpoints: Any) -> int:
        return await asyncio.to_thread(self.sync.save_many, checkpoints)

    async def load(self, checkpoint_id: str) -> Any:
        return await asyncio.to_thread(self.sync.load, checkpoint_id)

    async def delete(self, checkpoint_id: str) -> None:
        await asyncio.to_thread(self.sync.delete, checkpoint_id)

    async def clear(self) -> None:
        await asyncio.to_thread(self.sync.clear)

    async def list(self) -> Any:
        return await asyncio.to_thread(self.sync.list)

    async def latest(self, graph_name: str) -> Any:
        return await asyncio.to_thread(self.sync.latest, graph_name)

    async def query(self, query: Any = None, **filters: Any) -> Any:
        return await asyncio.to_thread(self.sync.query, query, **filters)

    async def iter_query(self, query: Any = None, **filters: Any) -> AsyncIterator[Any]:
        iterator = await asyncio.to_thread(lambda: iter(self.sync.iter_query(query, **filters)))
        end = object()
        while (item := await asyncio.to_thread(next, iterator, end)) is not end:
            yield item

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)


def underlying(store: CheckpointStore) -> object:
    """The store a test really runs on: a synchronous one behind `AsyncOverSync`, else itself."""
    return store.sync if isinstance(store, AsyncOverSync) else store


def is_sql_store(store: CheckpointStore) -> bool:
    """An SQL store (SQLite or PostgreSQL), async or synchronous."""
    from ckptdb import SqlCheckpointStore, SyncSqlCheckpointStore

    return isinstance(underlying(store), SqlCheckpointStore | SyncSqlCheckpointStore)


def is_file_store(store: CheckpointStore) -> bool:
    """The echo directory store, async or synchronous."""
    return isinstance(underlying(store), FileCheckpointStore | SyncFileCheckpointStore)


async def _sync_memory_store(tmp_path: Path) -> CheckpointStore:
    return AsyncOverSync(SyncMemoryCheckpointStore())


async def _sync_file_store(tmp_path: Path) -> CheckpointStore:
    return AsyncOverSync(SyncFileCheckpointStore(tmp_path / "ckpts"))


async def _sync_sqlite_store(tmp_path: Path) -> CheckpointStore:
    return AsyncOverSync(await asyncio.to_thread(connect, tmp_path / "checkpoints.db"))


STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": _memory_store,
    "files": _file_store,
    "sqlite": _sqlite_store,
    "sqlite-thread-reads": _sqlite_thread_reads_store,
    "sync-memory": _sync_memory_store,
    "sync-files": _sync_file_store,
    "sync-sqlite": _sync_sqlite_store,
}
"""Backend name -> async factory creating an empty store under the given (fresh) directory."""

STORE_MARKS: dict[str, list[pytest.MarkDecorator]] = {}
"""Optional marks per backend name, e.g. {"postgres": [pytest.mark.postgres]}."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Parametrized at collection time (not at import), so entries registered anywhere before
    # collection are picked up.
    if "store" in metafunc.fixturenames:
        names = list(STORE_FACTORIES)
        metafunc.parametrize(
            "store",
            [pytest.param(name, marks=STORE_MARKS.get(name, ()), id=name) for name in names],
            indirect=True,
        )


@pytest.fixture
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CheckpointStore]:
    """An empty store of one registered backend, created in tmp_path and closed afterwards."""
    factory = STORE_FACTORIES[request.param]
    created = await factory(tmp_path)
    try:
        yield created
    finally:
        await created.close()


# ── PostgreSQL ──────────────────────────────────────────────────────────────────────────────────
# One throwaway server per test session: CKPTDB_TEST_PG_URL when set (CI: scripts/pg_cluster.py run),
# else a cluster started here through scripts/pg_cluster.py and stopped when the session ends.
# Each test gets its own database, recycled between tests (a fresh `public` schema, or a TRUNCATE of
# every table when the schema is exactly the migrated one), so a test costs milliseconds, not a
# CREATE DATABASE.
# Skipped only when CKPTDB_SKIP_POSTGRES=1, and then the terminal summary says so loudly.

import atexit  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

PG_URL_ENV = "CKPTDB_TEST_PG_URL"
PG_SKIP = os.environ.get("CKPTDB_SKIP_POSTGRES") == "1"
PG_SKIP_REASON = "CKPTDB_SKIP_POSTGRES=1: PostgreSQL tests skipped"


class _PgServer:
    """The session's server and its pool of per-test databases."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.url: str | None = None
        self.cluster_dir: Path | None = None
        self.free: dict[bool, list[str]] = {True: [], False: []}  # migrated? -> databases
        self.in_use: list[tuple[str, bool]] = []
        self.created = 0
        self.fingerprint: str | None = None
        self.prefix = "ckptdb_t_" + os.environ.get("PYTEST_XDIST_WORKER", "main")

    def base_url(self) -> str:
        with self.lock:
            if self.url is None:
                env = os.environ.get(PG_URL_ENV)
                if env:
                    self.url = env
                else:
                    cluster = _pg_cluster_module()
                    self.cluster_dir = Path(tempfile.mkdtemp(prefix="ckptdb-pg-"))
                    try:
                        self.url = cluster.start_cluster(self.cluster_dir, fast=True)
                    except cluster.ClusterError as exc:
                        raise RuntimeError(
                            f"cannot start a PostgreSQL 15 cluster for the tests ({exc}); set {PG_URL_ENV} "
                            "to a server you can CREATE DATABASE on, or CKPTDB_SKIP_POSTGRES=1 to skip "
                            "(not recommended)"
                        ) from exc
                    atexit.register(self.stop)
            return self.url

    def stop(self) -> None:
        with self.lock:
            if self.cluster_dir is not None:
                _pg_cluster_module().stop_cluster(self.cluster_dir)
                self.cluster_dir = None

    def url_for(self, database: str) -> str:
        parts = urlsplit(self.base_url())
        return urlunsplit(parts._replace(path="/" + database))

    def acquire(self, *, migrated: bool, keep: bool = False) -> str:
        """A database URL: empty (no ckptdb tables) or migrated to head with no rows. Released when
        the test ends, unless `keep` (then `give_back` returns it to the pool)."""
        import psycopg

        base = self.base_url()
        with self.lock:
            name = self.free[migrated].pop() if self.free[migrated] else None
            if name is None:
                self.created += 1
                name = f"{self.prefix}_{self.created}"
                with psycopg.connect(base, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    admin.execute(f'CREATE DATABASE "{name}"')
            if not keep:
                self.in_use.append((name, migrated))
        url = self.url_for(name)
        self._reset(url, migrated)
        return url

    def _reset(self, url: str, migrated: bool) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if migrated and self.fingerprint is not None and _pg_fingerprint(conn) == self.fingerprint:
                # Every table the migrations made but their version: the LangGraph tables too, so
                # no test sees another's threads.
                tables = conn.execute(
                    "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
                    "WHERE schemaname = 'public' AND tablename <> 'ckptdb_alembic_version'"
                ).fetchone()[0]
                conn.execute(f"TRUNCATE {tables}")
                return
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
            if not migrated:
                return
        from ckptdb import migrate

        migrate.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            self.fingerprint = _pg_fingerprint(conn)

    def give_back(self, url: str, *, migrated: bool) -> None:
        with self.lock:
            self.free[migrated].append(urlsplit(url).path.lstrip("/"))

    def release_all(self) -> None:
        with self.lock:
            for name, migrated in self.in_use:
                self.free[migrated].append(name)
            self.in_use.clear()


def _pg_fingerprint(conn: Any) -> str:
    """Everything in `public` (tables, columns and types, indexes, views, version): equal means the
    schema is exactly what the migrations built, so emptying the table is a full reset."""
    row = conn.execute(
        """
        SELECT md5(coalesce((SELECT string_agg(x, '|' ORDER BY x) FROM (
            SELECT concat_ws(':', c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod),
                             a.attcollation, pg_get_viewdef(c.oid), pg_get_indexdef(c.oid))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = 'public') t(x)), ''))
        """
    ).fetchone()
    if conn.execute("SELECT to_regclass('ckptdb_alembic_version')").fetchone()[0] is None:
        return f"{row[0]}:unversioned"
    versions = conn.execute("SELECT string_agg(version_num, ',') FROM ckptdb_alembic_version").fetchone()
    return f"{row[0]}:{versions[0]}"


def _pg_cluster_module() -> Any:
    path = Path(__file__).resolve().parents[1] / "scripts" / "pg_cluster.py"
    spec = importlib.util.spec_from_file_location("ckptdb_pg_cluster", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PG = _PgServer()


def pg_database_url(*, migrated: bool = True) -> str:
    """A fresh database for the running test (released when it ends); skips when told to."""
    if PG_SKIP:
        pytest.skip(PG_SKIP_REASON)
    return PG.acquire(migrated=migrated)


async def _postgres_store(tmp_path: Path) -> CheckpointStore:
    return await open_store(pg_database_url())


async def _sync_postgres_store(tmp_path: Path) -> CheckpointStore:
    return AsyncOverSync(await asyncio.to_thread(connect, pg_database_url()))


STORE_FACTORIES["postgres"] = _postgres_store
STORE_MARKS["postgres"] = [pytest.mark.postgres]
STORE_FACTORIES["sync-postgres"] = _sync_postgres_store
STORE_MARKS["sync-postgres"] = [pytest.mark.postgres]


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The session's PostgreSQL server (its own maintenance database); skips when told to."""
    if PG_SKIP:
        pytest.skip(PG_SKIP_REASON)
    return PG.base_url()


@pytest.fixture
def pg_url(pg_server_url: str) -> str:
    """A database of its own for this test, migrated to head and empty."""
    return PG.acquire(migrated=True)


@pytest.fixture
def pg_empty_url(pg_server_url: str) -> str:
    """A database of its own for this test with no ckptdb tables at all."""
    return PG.acquire(migrated=False)


@pytest.fixture(autouse=True)
def _pg_release_databases() -> Iterator[None]:
    yield
    PG.release_all()


def _other_engine(item: pytest.Item) -> bool:
    """A test marked `engine(name)` whose `engine` parameter is another engine."""
    wanted = item.get_closest_marker("engine")
    callspec = getattr(item, "callspec", None)
    if wanted is None or callspec is None or "engine" not in callspec.params:
        return False
    return bool(callspec.params["engine"] != wanted.args[0])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `@pytest.mark.engine("sqlite")`: a test (or one parameter of it) meaningful on one engine
    # only, e.g. SQLite-only SQL; it is not collected for the other engine at all.
    other = [item for item in items if _other_engine(item)]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if not _other_engine(item)]
    if PG_SKIP:
        for item in items:
            if item.get_closest_marker("postgres") is not None:
                item.add_marker(pytest.mark.skip(reason=PG_SKIP_REASON))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    PG.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after the short summary, last on screen
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> Iterator[None]:
    yield
    if not PG_SKIP:
        return
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if PG_SKIP_REASON in str(getattr(r, "longrepr", ""))
    ]
    terminalreporter.write_sep("!", "PostgreSQL NOT TESTED", red=True, bold=True)
    terminalreporter.write_line(
        f"CKPTDB_SKIP_POSTGRES=1: {len(skipped)} PostgreSQL tests were skipped; this run says nothing about "
        "the PostgreSQL backend. Unset it (a throwaway server starts by itself) before you trust the result.",
        red=True,
        bold=True,
    )


def postgres_refuses(store: CheckpointStore, checkpoint: Any) -> bool:
    """True when `store` is on PostgreSQL and the checkpoint has U+0000 in a plain text field (id,
    graph_name, current_node): PostgreSQL text cannot hold it, so the backend refuses that save
    with InvalidCheckpointError before writing anything (state and path are JSON: NUL is fine)."""
    target = getattr(store, "target", None)  # an SQL store, async or sync (through AsyncOverSync)
    if target is None or target.kind != "postgresql":
        return False
    fields = (checkpoint.id, checkpoint.graph_name, checkpoint.current_node)
    return any(isinstance(value, str) and "\x00" in value for value in fields)


ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
"""The SQL engines every command suite runs on."""


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The SQL engine, "sqlite" or "postgres". Module-scoped, so module fixtures holding expensive
    data (an imported fixtures database) are built once per engine, and tests run grouped by engine."""
    if request.param == "postgres" and PG_SKIP:
        pytest.skip(PG_SKIP_REASON)
    return str(request.param)


def new_db_target(engine: str, directory: Path, name: str = "checkpoints.db") -> str:
    """One more database without ckptdb tables on this engine: an SQLite path under `directory`
    that does not exist yet, or the URL of an empty PostgreSQL database of this test's own."""
    if engine == "sqlite":
        return str(directory / name)
    return pg_database_url(migrated=False)


@pytest.fixture
def db_target(engine: str, tmp_path: Path) -> str:
    """A database that does not hold ckptdb tables yet, on each SQL engine: an SQLite path that
    does not exist, or the URL of an empty PostgreSQL database. Pass it as `--db` or to
    `open_store`; either creates the schema on first use. For tests of commands (import, export,
    inspection) that must work on both engines."""
    return new_db_target(engine, tmp_path)


@contextlib.contextmanager
def module_db_target(engine: str, directory: Path) -> Iterator[str]:
    """Like `db_target`, for a module-scoped fixture: the PostgreSQL database stays this module's
    (it is not recycled after each test) until the fixture ends."""
    if engine == "sqlite":
        yield str(directory / "checkpoints.db")
        return
    url = PG.acquire(migrated=False, keep=True)
    try:
        yield url
    finally:
        PG.give_back(url, migrated=False)
