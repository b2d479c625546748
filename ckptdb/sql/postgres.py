"""PostgreSQL through asyncpg: a connection pool, one transaction per write, cursors for long reads.

No lock serializes operations inside a process (reads run side by side on pooled connections, and
the store's group commit already batches concurrent saves into one transaction); several processes
write to the same database at once, and PostgreSQL's row locks do the rest. A deadlock between two
batches (two processes upserting overlapping ids in different orders) is retried, because the
transaction that PostgreSQL aborted wrote nothing.

The store writes SQL once with `?` placeholders; here each text is rewritten to `$1, $2, ...` once
and cached (and the next save order is drawn from the `checkpoints_save_seq` sequence). asyncpg
prepares each text once per connection (its statement cache).

What PostgreSQL cannot hold, and what this backend does about it:
- U+0000 inside `text`: every checkpoint row is checked before its transaction starts, and one
  with a NUL in id, graph_name or current_node refuses with a clear error (JSON columns, path
  included, hold NUL as the escape `\\u0000`, which the `json` type keeps exactly). A lookup by such
  a value finds nothing, as it must: it is bound as NULL.
- `json` functions (json_extract_path & co.) fail on a whole document as soon as any string in it
  holds `\\u0000`. State conditions therefore read such documents through a copy in which that
  escape is `\\ufffe` (a Unicode noncharacter): filters work on every row, and a filter value's NUL
  is mapped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ckptdb.errors import CkptdbError, InvalidCheckpointError, StoreError
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.backend import Backend, DatabaseTarget, IntegrityCheck, Row
from ckptdb.sql.revision import VERSION_TABLE
from ckptdb.state_filter import PathStep, StateFilter

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import Engine

T = TypeVar("T")

MIGRATION_LOCK_KEY = int.from_bytes(b"ckptdbmg", "big")
"""pg_advisory_xact_lock key every migration transaction takes first (shows in pg_locks)."""

NUL_STAND_IN = "\ufffe"
"""What U+0000 reads as inside state conditions (PostgreSQL's json functions cannot return NUL)."""

MAX_FIELD_BYTES = 2**30 - 1 - 4
"""The most a `json` (or `text`) value holds: any PostgreSQL field is at most 1 GB, a varlena of
2^30 - 1 bytes with its 4-byte header (`jsonb` would stop near 256 MB; ckptdb stores `json`)."""

DEADLOCK_RETRIES = 5
_RETRY_STATES = ("40P01", "40001")  # deadlock_detected, serialization_failure: nothing was written

# State documents for json functions: as stored, unless the text holds an unescaped `\u0000`
# (an odd number of backslashes before `u0000`), which is rewritten to `\ufffe` for the query only.
_NUL_ESCAPE_RE = r"(?<!\\)((?:\\\\)*)\\u0000"
_STATE_DOC = (
    "(CASE WHEN strpos(state_snapshot::text, '\\u0000') = 0 THEN state_snapshot "
    f"ELSE regexp_replace(state_snapshot::text, '{_NUL_ESCAPE_RE}', '\\1\\\\ufffe', 'g')::json END)"
)
_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")


@functools.lru_cache(maxsize=2048)
def to_dollar_params(sql: str) -> str:
    """`?` -> `$1, $2, ...`, outside quoted strings and identifiers; cached per SQL text."""
    out: list[str] = []
    number = 0
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            number += 1
            out.append(f"${number}")
            continue
        out.append(char)
    return "".join(out)


@functools.lru_cache(maxsize=2048)
def postgres_sql(sql: str) -> str:
    """The store's SQL text for asyncpg: `$n` parameters, and the next save order drawn from the
    `checkpoints_save_seq` SEQUENCE where rows.py reads SQLite's max(save_seq) + 1 (under READ
    COMMITTED, concurrent transactions would read the same max). Cached per SQL text."""
    return to_dollar_params(sql.replace(sqlrows.NEXT_SAVE_SEQ, "nextval('checkpoints_save_seq')"))


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes only postgresql:// and postgres://, not SQLAlchemy's postgresql+driver://."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def server_address(url: str) -> str:
    """host:port for messages (libpq's defaults when the URL leaves them out)."""
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return f"{parts.hostname or 'localhost'}:{port}"


def _names(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.username or "(default user)", parts.path.lstrip("/") or "(default database)")


def translate_error(exc: BaseException, target: DatabaseTarget) -> CkptdbError:
    """One line that says what went wrong and what to do; for asyncpg and psycopg errors alike."""
    if isinstance(exc, CkptdbError):
        return exc
    where = target.display()
    address = server_address(target.url)
    host, port = address.rsplit(":", 1)
    user, database = _names(target.url)
    state = getattr(exc, "sqlstate", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = str(exc).lower()
    if isinstance(exc, ConnectionRefusedError) or "connection refused" in lowered:
        return StoreError(
            f"cannot connect to PostgreSQL at {address} (connection refused): is the server running and "
            f"listening there? check with `pg_isready -h {host} -p {port}`"
        )
    if isinstance(exc, socket.gaierror) or "could not translate host name" in lowered:
        return StoreError(f"cannot resolve the PostgreSQL host in {where} ({text}): check the host name")
    if isinstance(exc, TimeoutError) or "timeout expired" in lowered:
        return StoreError(
            f"timed out connecting to PostgreSQL at {address}: check the host, port and firewall"
        )
    refused = ("password authentication failed", "no password", "no pg_hba.conf entry")
    unknown_role = 'role "' in lowered and "does not exist" in lowered
    if state in ("28P01", "28000") or unknown_role or any(word in lowered for word in refused):
        return StoreError(
            f"PostgreSQL at {address} refused user {user} ({text}): check the user and password in the URL, "
            "PGPASSWORD or ~/.pgpass, and pg_hba.conf"
        )
    if state == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return StoreError(
            f"database {database} does not exist on {address}: create it first "
            f"(`createdb -h {host} -p {port} {database}`); ckptdb creates tables, not databases"
        )
    if state == "53100":
        return StoreError(
            f"{where}: the PostgreSQL server's disk is full ({text}); nothing of this write was saved"
        )
    if state == "53300":
        return StoreError(
            f"PostgreSQL at {address} has no free connection slots ({text}): lower pool_max_size or raise "
            "max_connections"
        )
    if state == "57P03":
        return StoreError(f"PostgreSQL at {address} is starting up or shutting down ({text}): retry shortly")
    if state == "25006":
        return StoreError(f"{where} is read-only ({text}): a standby? connect to the primary")
    if state == "42501":
        return StoreError(f"{where}: permission denied ({text}): grant the user rights on ckptdb's tables")
    if state == "42P01":
        return StoreError(f"{where} has no ckptdb tables ({text}): run `ckptdb --db {where} db upgrade`")
    if state in ("55P03", "57014"):
        return StoreError(f"{where}: gave up waiting ({text}); nothing of this write was saved")
    if state == "54000" and "index row" in lowered:
        return InvalidCheckpointError(
            f"an id or graph_name is too long for PostgreSQL's indexes ({text}); nothing was written"
        )
    if state == "22P02" and "type json" in lowered:  # a damaged source row, moved as stored (copy)
        return InvalidCheckpointError(
            f"a JSON column's text is not valid JSON ({text}); nothing was written: "
            "`ckptdb db check` on the source lists such rows"
        )
    if state == "54001":
        return InvalidCheckpointError(f"JSON nested too deeply for PostgreSQL ({text}); nothing was written")
    lost = type(exc).__name__ in ("ConnectionDoesNotExistError", "ConnectionResetError")
    if state in ("57P01", "57P02") or lost:
        return StoreError(
            f"lost the connection to PostgreSQL at {address} ({text}): retry; was the server restarted?"
        )
    if isinstance(exc, OSError):
        return StoreError(f"cannot reach PostgreSQL at {address} ({text})")
    return StoreError(f"{where}: {text}")


async def _keep_session(conn: Any) -> None:
    """Pool reset hook: nothing beyond asyncpg's own rollback of an open transaction.

    asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`
    on every release, a second round trip per load or save; ckptdb runs only its own statements on
    pooled connections, which leave no session state behind.
    """


def _nul_error(row: Sequence[Any], index: int) -> InvalidCheckpointError:
    full_row = len(row) == len(sqlrows.COLUMNS)
    field = sqlrows.COLUMNS[index] if full_row else None
    source = row[0] if full_row and isinstance(row[0], str) else None
    return InvalidCheckpointError(
        "contains U+0000 (NUL), which PostgreSQL text cannot store (JSON state can, text fields cannot); "
        "nothing was written",
        field=field,
        source=repr(source) if source is not None else None,
    )


def check_storable(rows: Sequence[Sequence[Any]]) -> None:
    """Refuse before any transaction starts: PostgreSQL rejects U+0000 in every text value.

    JSON columns are escaped text (`\\u0000`), so a raw NUL can only sit in a plain text field.
    """
    for row in rows:
        for index, value in enumerate(row):
            if isinstance(value, str) and "\x00" in value:
                raise _nul_error(row, index)


def lookup_params(params: Sequence[Any]) -> Sequence[Any]:
    """Parameters of a lookup (a WHERE, a DELETE), with any text holding U+0000 bound as NULL.

    No stored text can hold U+0000, so such a value equals nothing; NULL equals nothing too (and
    `IN (..., NULL)` still matches the other values). So `load` of such an id finds nothing, a
    delete deletes nothing and a count counts nothing, as on every other store.
    """
    if not any(isinstance(value, str) and "\x00" in value for value in params):
        return params
    return [None if isinstance(value, str) and "\x00" in value else value for value in params]


_WRITES_ROWS = ("INSERT", "UPDATE")


def _limited_to(sql: str, params: Sequence[Any], batch: int) -> bool:
    """Whether a statement ends in `LIMIT ?` bound to at most `batch` rows."""
    if not params or not sql.rstrip().upper().endswith("LIMIT ?"):
        return False
    limit = params[-1]
    return isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit <= batch


def _path_text(step: PathStep) -> str:
    return str(step) if isinstance(step, int) else step.replace("\x00", NUL_STAND_IN)


def _status_count(status: str) -> int:
    """Row count from a command tag: 'DELETE 3' -> 3, 'INSERT 0 1' -> 1."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _is_retryable(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in _RETRY_STATES


class PostgresBackend(Backend):
    """One asyncpg pool per store.

    Options: `pool_min_size` / `pool_max_size` (connections, default 1 and 10), `command_timeout`
    (seconds per statement, default none), `statement_cache_size` (0 behind pgbouncer in transaction
    mode). The SQLite options are accepted for portability: `synchronous="FULL"` sets
    `synchronous_commit = on` (the server default anyway), `busy_timeout_ms` sets `lock_timeout`,
    and `commit_on_loop` changes nothing (asyncpg awaits the server: no commit runs on the loop).
    """

    def __init__(
        self,
        target: DatabaseTarget,
        *,
        pool_min_size: int = 1,
        pool_max_size: int = 10,
        command_timeout: float | None = None,
        statement_cache_size: int = 100,
        synchronous: str | None = None,
        busy_timeout_ms: int | None = None,
        commit_on_loop: bool | None = None,
        max_value_bytes: int | None = None,
    ) -> None:
        del commit_on_loop  # nothing to choose here: see the class docstring
        if max_value_bytes is not None and max_value_bytes < 1:
            raise CkptdbError(f"max_value_bytes must be at least 1, got {max_value_bytes}")
        self.max_value_bytes = min(max_value_bytes or MAX_FIELD_BYTES, MAX_FIELD_BYTES)
        self.target = target
        self.dsn = asyncpg_dsn(target.url)
        if pool_max_size < 1 or pool_min_size < 0 or pool_min_size > pool_max_size:
            raise CkptdbError(f"bad pool sizes: min {pool_min_size}, max {pool_max_size}")
        self.pool_min_size = pool_min_size
        self.pool_max_size = pool_max_size
        self.command_timeout = command_timeout
        self.statement_cache_size = statement_cache_size
        self.server_settings = {"application_name": "ckptdb"}
        if synchronous is not None:
            if synchronous.upper() not in ("NORMAL", "FULL"):
                raise CkptdbError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
            if synchronous.upper() == "FULL":
                self.server_settings["synchronous_commit"] = "on"
        if busy_timeout_ms is not None:
            self.server_settings["lock_timeout"] = str(int(busy_timeout_ms))
        self._pool: asyncpg.Pool | None = None
        # The group commit's usual connection, kept out of the pool so a save skips the acquire
        # and release; whoever finds it busy takes a pooled one, so nothing ever waits for it.
        self._writer: Any = None
        self._writer_busy = False

    # -- connections ----------------------------------------------------------------------------

    async def connect(self, *, create: bool) -> None:
        """Open the pool. PostgreSQL databases are never created here (`create` is about tables)."""
        try:
            import asyncpg
        except ImportError:
            raise StoreError("PostgreSQL support needs asyncpg: pip install 'ckptdb[postgres]'") from None
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.pool_min_size,
                max_size=self.pool_max_size,
                command_timeout=self.command_timeout,
                statement_cache_size=self.statement_cache_size,
                server_settings=self.server_settings,
                reset=_keep_session,
            )
        except Exception as exc:
            raise translate_error(exc, self.target) from None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                await pool.release(writer)
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except Exception:  # timed out (a stream left open) or the server went away: drop the sockets
            pool.terminate()

    def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("the store is closed")
        return self._pool

    # -- reads ----------------------------------------------------------------------------------

    async def schema_revision(self) -> tuple[bool, str | None]:
        pool = self._get_pool()
        try:
            found = await pool.fetchrow(
                "SELECT to_regclass('checkpoints') IS NOT NULL, to_regclass($1) IS NOT NULL", VERSION_TABLE
            )
            assert found is not None
            has_checkpoints, has_versions = bool(found[0]), bool(found[1])
            if not has_versions:
                return has_checkpoints, None
            revision = await pool.fetchval(f"SELECT version_num FROM {VERSION_TABLE} LIMIT 1")
        except Exception as exc:
            raise translate_error(exc, self.target) from None
        return True, revision

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        pool = self._get_pool()
        try:
            records = await pool.fetch(postgres_sql(sql), *lookup_params(params))
        except Exception as exc:
            raise translate_error(exc, self.target) from None
        return [tuple(record) for record in records]

    async def stream(
        self, sql: str, params: Sequence[Any] = (), batch: int = 1000
    ) -> AsyncGenerator[Row, None]:
        """A server-side cursor inside a read-only transaction, `batch` rows per round trip; a read
        whose own LIMIT fits in one batch (newest 20, say) is one plain fetch, one round trip
        instead of four (BEGIN, the cursor, its fetch, COMMIT)."""
        pool = self._get_pool()
        text = postgres_sql(sql)
        params = lookup_params(params)
        if _limited_to(sql, params, batch):
            for row in await self.fetchall(sql, params):
                yield row
            return
        try:
            async with pool.acquire() as conn, conn.transaction(readonly=True):
                async for record in conn.cursor(text, *params, prefetch=batch):
                    yield tuple(record)
        except CkptdbError:
            raise
        except Exception as exc:
            raise translate_error(exc, self.target) from None

    # -- writes ---------------------------------------------------------------------------------

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run one whole transaction, again after a deadlock or serialization failure."""
        for tries in range(DEADLOCK_RETRIES + 1):
            try:
                return await attempt()
            except Exception as exc:
                if _is_retryable(exc) and tries < DEADLOCK_RETRIES:
                    await asyncio.sleep(random.uniform(0.001, 0.02) * (tries + 1))
                    continue
                raise translate_error(exc, self.target) from None
        raise AssertionError("unreachable")

    async def _on_writer(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """`work(conn)` on the kept writer connection when it is free, else on a pooled one."""
        pool = self._get_pool()
        if self._writer_busy:
            async with pool.acquire() as conn:
                return await work(conn)
        self._writer_busy = True
        try:
            if self._writer is not None and self._writer.is_closed():
                stale, self._writer = self._writer, None
                with contextlib.suppress(Exception):
                    await pool.release(stale)
            if self._writer is None:
                self._writer = await pool.acquire()
            return await work(self._writer)
        except BaseException:
            writer, self._writer = self._writer, None  # whatever state it is in, the pool sorts out
            if writer is not None:
                with contextlib.suppress(Exception):
                    await pool.release(writer)
            raise
        finally:
            self._writer_busy = False

    async def write_rows(self, sql: str, rows: Sequence[Row]) -> None:
        """One row: one autocommit statement (one round trip). More: executemany in a transaction."""
        check_storable(rows)
        text = postgres_sql(sql)

        async def work(conn: Any) -> None:
            if len(rows) == 1:
                await conn.execute(text, *rows[0])
                return
            async with conn.transaction():
                await conn.executemany(text, rows)

        async def attempt() -> None:
            await self._on_writer(work)

        await self._retrying(attempt)

    async def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        pool = self._get_pool()
        prepared: list[tuple[str, Sequence[Any]]] = []
        for sql, params in statements:
            if sql.lstrip()[:6].upper() in _WRITES_ROWS:
                check_storable([params])
            else:
                params = lookup_params(params)
            prepared.append((postgres_sql(sql), params))

        async def attempt() -> list[int]:
            counts: list[int] = []
            async with pool.acquire() as conn, conn.transaction():
                for sql, params in prepared:
                    counts.append(_status_count(await conn.execute(sql, *params)))
            return counts

        return await self._retrying(attempt)

    # -- SQL spellings --------------------------------------------------------------------------

    def state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        """json_extract_path on the `json` column, values bound; types compared as in Python.

        A path step that is an array index must meet an array, a key an object (json_extract_path
        alone would take key "0" as index 0), so such steps get a type check on their parent.
        """
        steps = [_path_text(step) for step in condition.path]
        node = f"json_extract_path({_STATE_DOC}, VARIADIC ?::text[])"
        guards: list[str] = []
        guard_params: list[Any] = []
        for index, step in enumerate(condition.path):
            if isinstance(step, int) or _INT_TEXT.match(step):
                parent = "array" if isinstance(step, int) else "object"
                if index == 0:
                    guards.append(f"json_typeof({_STATE_DOC}) = '{parent}'")
                else:
                    guards.append(f"json_typeof({node}) = '{parent}'")
                    guard_params.append(steps[:index])
        jtype = f"json_typeof({node})"
        if condition.op == "exists":
            test, params = f"{node} IS NOT NULL", [steps]
        else:
            kind = condition.kind()
            if kind == "null":
                same: tuple[str, list[Any]] = (f"{jtype} = 'null'", [steps])
            elif kind == "bool":
                word = "true" if condition.value else "false"
                same = (f"({jtype} = 'boolean' AND {node}::text = ?)", [steps, steps, word])
            else:
                text = f"json_extract_path_text({_STATE_DOC}, VARIADIC ?::text[])"
                op = "=" if condition.op in ("==", "!=") else condition.op
                if kind == "number":
                    compared = f"({text})::numeric {op} ?::text::numeric"
                    value: Any = _numeric_text(condition.value)
                    jkind = "number"
                else:
                    compared = f'{text} COLLATE "C" {op} ?'
                    value = str(condition.value).replace("\x00", NUL_STAND_IN)
                    jkind = "string"
                same = (
                    f"(CASE WHEN {jtype} = '{jkind}' THEN {compared} ELSE false END)",
                    [steps, steps, value],
                )
            if condition.op == "!=":
                test, params = f"({node} IS NOT NULL AND NOT {same[0]})", [steps, *same[1]]
            else:
                test, params = same
        if guards:
            return f"({' AND '.join(guards)} AND {test})", [*guard_params, *params]
        return test, params

    def sync_engine(self) -> Engine:
        """psycopg 3 (sync) for Alembic; each transaction takes the migration advisory lock first."""
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError(
                "migrations on PostgreSQL need psycopg: pip install 'ckptdb[postgres]'"
            ) from None
        url = make_url(asyncpg_dsn(self.target.url)).set(drivername="postgresql+psycopg")
        engine = sa.create_engine(
            url, poolclass=NullPool, connect_args={"application_name": "ckptdb-migrate"}
        )
        target = self.target

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")

        @sa.event.listens_for(engine, "handle_error")
        def _on_error(context: Any) -> CkptdbError:
            return translate_error(context.original_exception, target)

        return engine

    async def database_size(self) -> int | None:
        """Bytes of ckptdb's table with its indexes and TOAST (not the whole shared database)."""
        found = await self.fetchall("SELECT pg_total_relation_size(to_regclass('checkpoints'))")
        return None if not found or found[0][0] is None else int(found[0][0])

    # -- inspection -----------------------------------------------------------------------------

    def byte_length_sql(self, expression: str) -> str:
        return f"octet_length(({expression})::text)"

    async def stream_readonly(self, sql: str, batch: int = 1000) -> AsyncGenerator[Row, None]:
        """The statement becomes a cursor (`DECLARE ... CURSOR FOR`, which the server accepts only
        for a query, and never with a data-modifying WITH) in a READ ONLY transaction that is rolled
        back at the end (undoing even a set_config); sent with the extended protocol, which refuses
        a second statement. SHOW and EXPLAIN, which report but cannot be a cursor, run as they are
        in the same read-only transaction; any other statement is refused before it runs. Server
        functions with side effects (pg_terminate_backend, lo_export) are up to the role's
        privileges: point `ckptdb sql` at a read-only role for untrusted use.
        """
        text = sql.strip().rstrip(";").rstrip()
        if not text:
            raise CkptdbError("no SQL statement given")
        import asyncpg

        self._get_pool()  # the store must be open
        try:
            # Its own connection, closed at the end: a person's SQL never runs on a pooled one (whose
            # session state, advisory locks included, the pool does not reset between uses).
            conn = await asyncpg.connect(
                self.dsn, server_settings={**self.server_settings, "application_name": "ckptdb-sql"}
            )
        except Exception as exc:
            raise translate_error(exc, self.target) from None
        try:
            transaction = conn.transaction(readonly=True)
            await transaction.start()
            reporting = None
            try:
                await conn.fetch(_DECLARE + text)
            except Exception as exc:
                if getattr(exc, "sqlstate", None) != "42601" or "multiple commands" in str(exc):
                    raise
                # The cursor takes only a query. Another statement, or no SQL at all? Parsing the
                # text alone tells (a Parse message runs nothing), in a new read-only transaction.
                await transaction.rollback()
                transaction = conn.transaction(readonly=True)
                await transaction.start()
                try:
                    reporting = await conn.prepare(text)
                except Exception as parse_exc:
                    if getattr(parse_exc, "sqlstate", None) == "42601":
                        raise parse_exc from None  # a syntax error (or several statements)
                if reporting is None or text.split(None, 1)[0].upper() not in _REPORTING:
                    raise _refused(None) from None
            if reporting is not None:  # SHOW, EXPLAIN: rows from a statement that is not a query
                yield tuple(attribute.name for attribute in reporting.get_attributes())
                for record in await reporting.fetch():
                    yield tuple(record)
                return
            fetch = await conn.prepare(f"FETCH FORWARD {int(batch)} FROM ckptdb_sql")
            yield tuple(attribute.name for attribute in fetch.get_attributes())
            while records := await fetch.fetch():
                for record in records:
                    yield tuple(record)
        except CkptdbError:
            raise
        except Exception as exc:
            raise _read_only_error(exc, self.target, text) from None
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)  # ends the transaction: a rollback

    async def free_bytes(self) -> int | None:
        """None: PostgreSQL cannot say cheaply (pgstattuple scans the table and is an extension)."""
        return None

    async def integrity_check(self, *, quick: bool) -> IntegrityCheck:
        """None runs: the server keeps its own files consistent (WAL; page checksums when enabled),
        and deeper checks are the amcheck extension's, run by the server's operator."""
        return IntegrityCheck(
            "no client-side check on this engine (PostgreSQL: the amcheck extension)", ran=False
        )

    async def vacuum(self) -> None:
        """VACUUM FULL rewrites the table and hands the space back; it locks the table for the
        whole rewrite, so it gives up after `lock_timeout` (5 s) instead of queueing behind long
        transactions and stalling every writer behind it."""
        pool = self._get_pool()
        try:
            async with pool.acquire() as conn:
                await conn.execute("SET lock_timeout = '5s'")
                try:
                    await conn.execute("VACUUM (FULL, ANALYZE) checkpoints")
                finally:
                    await conn.execute("RESET lock_timeout")
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == "55P03":
                raise StoreError(
                    f"{self.target.display()}: VACUUM FULL could not lock the checkpoints table within "
                    "5 s (busy): retry when it is quieter; plain VACUUM (autovacuum) already makes the "
                    "space reusable"
                ) from None
            raise translate_error(exc, self.target) from None


_DECLARE = "DECLARE ckptdb_sql NO SCROLL CURSOR FOR "
_REPORTING = ("SHOW", "EXPLAIN")
"""Statements that only report (like SQLite's reporting PRAGMAs) but cannot be a cursor; they run in
the same read-only transaction, which refuses what EXPLAIN ANALYZE of a write would do."""


def _refused(server_message: str | None) -> CkptdbError:
    """The same wording as on SQLite: `sql` only reads, and nothing was changed."""
    why = "is not a query" if server_message is None else f"would write ({server_message})"
    return CkptdbError(
        "refused: `sql` only reads (one SELECT, WITH, VALUES or TABLE query, or SHOW or EXPLAIN); "
        f"this statement {why}: nothing was changed"
    )


def _read_only_error(exc: BaseException, target: DatabaseTarget, text: str) -> CkptdbError:
    state = getattr(exc, "sqlstate", None)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "multiple commands" in message:
        return CkptdbError("refused: one SQL statement at a time (nothing was run)")
    if state == "25006" or (state == "0A000" and "data-modifying" in message):
        return _refused(message)
    if state is not None and state.startswith(("42", "22", "0A", "2B", "3F")):
        return CkptdbError(f"SQL error: {message}")
    return translate_error(exc, target)


def _numeric_text(value: Any) -> str:
    """A filter number as text for `::numeric` (exact for big integers; floats by shortest repr)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CkptdbError(f"expected a number, got {value!r}")
    return repr(value)
