"""PostgreSQL through asyncpg: a connection pool, one transaction per write, cursors for long reads.

No lock serializes operations inside a process (reads run side by side on pooled connections, and
its group commit (`group_commit`) already batches concurrent saves into one transaction); several processes
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
  holds `\\u0000`. State conditions therefore read such documents through a copy in which every
  string is spelled without NUL by a code that keeps strings apart and in order: U+0001 becomes
  U+0001 U+0002 and U+0000 becomes U+0001 U+0001 (both escapes rewritten in the JSON text), and
  the filter's keys and string value are mapped the same way (`nul_free`). A stand-in character
  instead would make a NUL equal to that character, and sort it where it does not belong.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ckptdb.errors import (
    CkptdbError,
    InvalidCheckpointError,
    StoreError,
)
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.backend import (
    Backend,
    DatabaseTarget,
    InsertResult,
    IntegrityCheck,
    Resolve,
    Row,
    SchemaState,
    check_bool,
    check_choice,
    check_count,
)
from ckptdb.sql.revision import VERSION_TABLE

if TYPE_CHECKING:
    import asyncpg
    from sqlalchemy.engine import Engine

from ckptdb.sql.postgres.errors import translate_error, translate_write_error
from ckptdb.sql.postgres.group_commit import CallerGroupCommit
from ckptdb.sql.postgres.readonly import (
    CURSOR_PREFIX,
    REPORTING,
    check_read_only_sql,
    read_only_error,
    refusal,
    session_guards,
)
from ckptdb.sql.postgres.spelling import (
    PostgresSpelling,
    postgres_sql,
    postgres_utf8_sql,
)
from ckptdb.sql.postgres.urls import asyncpg_dsn

T = TypeVar("T")

MIGRATION_LOCK_KEY = int.from_bytes(b"ckptdbmg", "big")
"""pg_advisory_xact_lock key every migration transaction takes first (shows in pg_locks)."""

MAX_FIELD_BYTES = 2**30 - 1 - 4
"""The most a `json` (or `text`) value holds: any PostgreSQL field is at most 1 GB, a varlena of
2^30 - 1 bytes with its 4-byte header (`jsonb` would stop near 256 MB; ckptdb stores `json`)."""

DEADLOCK_RETRIES = 5
_RETRY_STATES = ("40P01", "40001")  # deadlock_detected, serialization_failure: nothing was written


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


def check_storable(rows: Sequence[Row]) -> Sequence[Row]:
    """Refuse before any transaction starts: PostgreSQL rejects U+0000 in every text value.
    Returns the rows as a str takes them: a JSON text given as UTF-8 bytes (`rows.to_row` with
    `json_bytes`) as a str (saves and imports keep such bytes: `storable_statements`).

    JSON columns are escaped text (`\\u0000`), so a raw NUL can only sit in a plain text field.
    """
    if any(type(value) is bytes for row in rows for value in row):
        rows = [tuple(v.decode() if type(v) is bytes else v for v in row) for row in rows]
    _refuse_nul(rows)
    return rows


def _refuse_nul(rows: Sequence[Row]) -> None:
    for row in rows:
        for index, value in enumerate(row):
            if isinstance(value, str) and "\x00" in value:
                raise _nul_error(row, index)


_JSON_AT = frozenset(i for i, c in enumerate(sqlrows.COLUMNS) if c in sqlrows.JSON_COLUMNS)


def _has_bytes(row: Row) -> bool:
    return any(type(value) is bytes for value in row)


def _utf8_json(row: Row) -> Row:
    """A whole row with every JSON column as UTF-8 bytes (a huge one is already)."""
    return tuple(v.encode() if type(v) is str and i in _JSON_AT else v for i, v in enumerate(row))


def storable_statements(sql: str, rows: Sequence[Row]) -> list[tuple[str, Sequence[Row]]]:
    """`check_storable` for the rows of one save statement, as the statements asyncpg runs, in
    the rows' order: a row holding a huge JSON text as bytes (`rows.to_row` with `json_bytes`)
    keeps it so, its other JSON columns encoded too, under `postgres_utf8_sql`; every other row
    (every small save: one look at its values) is as before, under `postgres_sql`."""
    if not any(_has_bytes(row) for row in rows):
        _refuse_nul(rows)
        return [(postgres_sql(sql), rows)]
    if sqlrows.JSON_PARAM not in sql:
        return [(postgres_sql(sql), check_storable(rows))]
    statements: list[tuple[str, list[Row]]] = []
    for row in rows:
        utf8 = len(row) == len(sqlrows.COLUMNS) and _has_bytes(row)
        text = postgres_utf8_sql(sql) if utf8 else postgres_sql(sql)
        row = _utf8_json(row) if utf8 else check_storable([row])[0]
        if statements and statements[-1][0] == text:
            statements[-1][1].append(row)
        else:
            statements.append((text, [row]))
    for _, part in statements:
        _refuse_nul(part)
    return list(statements)


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


def prepare_statements(statements: Sequence[tuple[str, Sequence[Any]]]) -> list[tuple[str, Sequence[Any]]]:
    """The statements of a `write()` as PostgreSQL runs them, for both drivers: `$n` placeholders,
    and parameters checked before any transaction starts (a row written: no U+0000 in its text; a
    lookup: such a text bound as NULL, which matches nothing, as on every store)."""
    prepared: list[tuple[str, Sequence[Any]]] = []
    for sql, params in statements:
        if sql.lstrip()[:6].upper() in _WRITES_ROWS:
            params = check_storable([tuple(params)])[0]
        else:
            params = lookup_params(params)
        prepared.append((postgres_sql(sql), params))
    return prepared


_ARRAY_TYPES = {name: "json" for name in ("state_snapshot", "path", "pending_action", "extra")}
_ARRAY_TYPES["step_count"] = "bigint"  # the others are text
_INSERT_ABSENT_RETURNING = (
    f"INSERT INTO checkpoints ({', '.join(sqlrows.COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${n}::{_ARRAY_TYPES.get(c, 'text')}[]" for n, c in enumerate(sqlrows.COLUMNS, 1))
    + ") ON CONFLICT (id) DO NOTHING RETURNING id"
)
"""A batch as one statement, a parameter array per column, returning the ids it inserted
(executemany returns nothing)."""
_INSERT_ABSENT_RETURNING_UTF8 = (
    f"INSERT INTO checkpoints ({', '.join(sqlrows.COLUMNS)}) SELECT "
    + ", ".join(
        f"convert_from({c}, 'UTF8')::json" if c in sqlrows.JSON_COLUMNS else c for c in sqlrows.COLUMNS
    )
    + " FROM unnest("
    + ", ".join(
        f"${n}::{'bytea' if c in sqlrows.JSON_COLUMNS else _ARRAY_TYPES.get(c, 'text')}[]"
        for n, c in enumerate(sqlrows.COLUMNS, 1)
    )
    + f") AS batch ({', '.join(sqlrows.COLUMNS)}) ON CONFLICT (id) DO NOTHING RETURNING id"
)
"""The same for a batch holding a huge JSON text as bytes: every JSON column as UTF-8 bytes."""
_LOCK_STORED = (
    f"SELECT {', '.join(sqlrows.COLUMNS)} FROM checkpoints WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)
INSERT_ROUNDS = 5
"""`insert_rows` tries this often to insert an id that is found taken but then deleted before its
row could be locked (another process deleting what a third one had just written)."""


def _limited_to(sql: str, params: Sequence[Any], batch: int) -> bool:
    """Whether a statement ends in `LIMIT ?` bound to at most `batch` rows."""
    if not params or not sql.rstrip().upper().endswith("LIMIT ?"):
        return False
    limit = params[-1]
    return isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit <= batch


async def _run(conn: Any, statements: Sequence[tuple[str, Sequence[Row]]]) -> None:
    """Each statement over its rows, in order, inside the caller's transaction."""
    for text, rows in statements:
        if len(rows) == 1:
            await conn.execute(text, *rows[0])
        else:
            await conn.executemany(text, rows)


def _status_count(status: str) -> int:
    """Row count from a command tag: 'DELETE 3' -> 3, 'INSERT 0 1' -> 1."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _is_retryable(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in _RETRY_STATES


class PostgresBackend(PostgresSpelling, Backend):
    """One asyncpg pool per store.

    Options: `pool_min_size` / `pool_max_size` (connections, default 1 and 10), `command_timeout`
    (seconds per statement, default none), `statement_cache_size` (0 behind pgbouncer in transaction
    mode). The SQLite options are accepted for portability: `synchronous="FULL"` sets
    `synchronous_commit = on` (the server default anyway), `busy_timeout_ms` sets `lock_timeout`,
    and `commit_on_loop`, `read_on_loop` and `sync_interval` change nothing (asyncpg awaits the
    server: no commit or read runs on the loop; the server's own `synchronous_commit` decides when
    the WAL is flushed).

    A huge JSON text (`json_bytes`) reaches asyncpg as the UTF-8 bytes orjson wrote, sent as
    `bytea` and made `json` by the server (`postgres_utf8_sql`): a str of non-ASCII text would
    be read through its UTF-8 form, which CPython keeps inside the str. Measured in a fresh
    process, 64 MiB, growth / document, str -> bytes: save of non-ASCII text 4.98x -> 4.47x,
    import 4.48x -> 3.98x, re-import of an unchanged ASCII file 4.00x -> 3.00x, but of a
    non-ASCII one 3.05x -> 3.50x (the row's bytes are bigger than a 1-byte-per-character str
    while the stored row is read back); a save of ASCII text 4.93x either way, as asyncpg's bind
    data, its Bind message and asyncio's send buffer each copy the text (README, Known gaps).
    A small save keeps the str (its rows are looked at once for bytes, as before).
    """

    json_bytes = True

    OPTIONS = (
        "pool_min_size",
        "pool_max_size",
        "command_timeout",
        "statement_cache_size",
        "synchronous",
        "busy_timeout_ms",
        "commit_on_loop",
        "read_on_loop",
        "sync_interval",
        "max_value_bytes",
    )

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
        read_on_loop: bool | None = None,
        sync_interval: float | None = None,
        max_value_bytes: int | None = None,
    ) -> None:
        del sync_interval  # nothing to choose here: see the class docstring
        if commit_on_loop is not None:
            check_bool("commit_on_loop", commit_on_loop)  # nothing to choose here: see above
        if read_on_loop is not None:
            check_bool("read_on_loop", read_on_loop)
        if max_value_bytes is not None:
            check_count("max_value_bytes", max_value_bytes, minimum=1)
        self.max_value_bytes = min(max_value_bytes or MAX_FIELD_BYTES, MAX_FIELD_BYTES)
        self.target = target
        self.dsn = asyncpg_dsn(target.url)
        check_count("pool_min_size", pool_min_size)
        check_count("pool_max_size", pool_max_size, minimum=1)
        if pool_min_size > pool_max_size:
            raise CkptdbError(f"bad pool sizes: min {pool_min_size}, max {pool_max_size}")
        number = isinstance(command_timeout, (int, float)) and not isinstance(command_timeout, bool)
        if command_timeout is not None and (not number or command_timeout <= 0):
            raise CkptdbError(
                f"command_timeout must be a number of seconds above 0, or None; got {command_timeout!r}"
            )
        self.pool_min_size = pool_min_size
        self.pool_max_size = pool_max_size
        self.command_timeout = command_timeout
        self.statement_cache_size = check_count("statement_cache_size", statement_cache_size)
        self.server_settings = {"application_name": "ckptdb"}
        if synchronous is not None and check_choice("synchronous", synchronous, ("NORMAL", "FULL")) == "FULL":
            self.server_settings["synchronous_commit"] = "on"
        if busy_timeout_ms is not None:
            self.server_settings["lock_timeout"] = str(check_count("busy_timeout_ms", busy_timeout_ms))
        self.readonly = False
        self._pool: asyncpg.Pool | None = None
        # The group commit's usual connection, kept out of the pool so a save skips the acquire
        # and release; whoever finds it busy takes a pooled one, so nothing ever waits for it.
        self._writer: Any = None
        self._writer_busy = False
        self._saves = CallerGroupCommit(self._write_rows, self._write_parts)

    # -- connections ----------------------------------------------------------------------------

    async def connect(self, *, create: bool, readonly: bool = False) -> None:
        """Open the pool. PostgreSQL databases are never created here (`create` is about tables).
        Read-only: every session starts with `default_transaction_read_only`, so the server itself
        refuses any write."""
        try:
            import asyncpg
        except ImportError:
            raise StoreError("PostgreSQL support needs asyncpg: pip install 'ckptdb[postgres]'") from None
        self.readonly = readonly
        if readonly:
            self.server_settings["default_transaction_read_only"] = "on"
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

    def save_rows(self, sql: str, rows: Sequence[Row]) -> Awaitable[None]:
        return self._saves.save(sql, rows)

    def save_parts(self, parts: Sequence[tuple[str, Sequence[Row]]]) -> Awaitable[None]:
        (sql, rows), *more = parts
        return self._saves.save(sql, rows, more)

    async def close(self) -> None:
        await self._saves.settled()
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

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError(
                f"{self.target.display()} was opened read-only: open it with open_store() to write"
            )

    # -- reads ----------------------------------------------------------------------------------

    async def schema_state(self) -> SchemaState:
        pool = self._get_pool()
        try:
            found = await pool.fetchrow(
                "SELECT to_regclass('checkpoints') IS NOT NULL, to_regclass($1) IS NOT NULL", VERSION_TABLE
            )
            assert found is not None
            has_checkpoints, has_versions = bool(found[0]), bool(found[1])
            revision = None
            if has_versions:
                revision = await pool.fetchval(f"SELECT version_num FROM {VERSION_TABLE} LIMIT 1")
        except Exception as exc:
            raise translate_error(exc, self.target) from None
        return SchemaState(has_checkpoints, has_versions, revision)

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
                raise translate_write_error(exc, self.target) from None
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

    async def _write_rows(self, sql: str, rows: Sequence[Row]) -> None:
        """One row: one autocommit statement (one round trip). More: executemany in a transaction."""
        self._writable()
        statements = storable_statements(sql, rows)

        async def work(conn: Any) -> None:
            if len(statements) == 1 and len(statements[0][1]) == 1:
                text, (row,) = statements[0]
                await conn.execute(text, *row)
                return
            async with conn.transaction():
                await _run(conn, statements)

        async def attempt() -> None:
            await self._on_writer(work)

        await self._retrying(attempt)

    async def _write_parts(self, parts: Sequence[tuple[str, Sequence[Row]]]) -> None:
        """Several statements, each over its rows (executemany), in one transaction."""
        self._writable()
        prepared = [statement for sql, rows in parts if rows for statement in storable_statements(sql, rows)]

        async def work(conn: Any) -> None:
            async with conn.transaction():
                await _run(conn, prepared)

        async def attempt() -> None:
            await self._on_writer(work)

        await self._retrying(attempt)

    async def insert_rows(self, rows: Sequence[Row], resolve: Resolve | None = None) -> InsertResult:
        """The batch goes in as one INSERT ... ON CONFLICT DO NOTHING RETURNING id; the ids it did not
        insert are then read with FOR UPDATE, which waits for a writer still holding them and
        keeps them as read until the commit. Rows are sent in id order, so two imports of
        overlapping ids lock them in the same order instead of deadlocking (and a deadlock all
        the same is retried, as every write is)."""
        if not rows:
            return InsertResult()
        if any(_has_bytes(row) for row in rows):  # a huge JSON text as bytes: the batch's JSON so
            rows = [_utf8_json(row) for row in rows]
            _refuse_nul(rows)
            insert_absent = _INSERT_ABSENT_RETURNING_UTF8
        else:
            rows = check_storable(rows)
            insert_absent = _INSERT_ABSENT_RETURNING
        ordered = sorted(rows, key=lambda row: row[0])

        async def work(conn: Any) -> InsertResult:
            inserted: set[str] = set()
            stored: dict[str, Row] = {}
            pending = ordered
            async with conn.transaction():
                for _ in range(INSERT_ROUNDS):
                    columns = [list(column) for column in zip(*pending, strict=True)]
                    inserted.update(record[0] for record in await conn.fetch(insert_absent, *columns))
                    taken = [row[0] for row in pending if row[0] not in inserted]
                    if taken:
                        for record in await conn.fetch(_LOCK_STORED, taken):
                            stored[record[0]] = tuple(record)
                    pending = [row for row in pending if row[0] not in inserted and row[0] not in stored]
                    if not pending:
                        break
                else:
                    raise StoreError(
                        f"{self.target.display()}: rows kept being written and deleted by others while "
                        "this batch was inserted; nothing of it was written: run the same command again"
                    )
                over = list(resolve(stored)) if resolve is not None and stored else []
                if over:  # a replaced row draws its save order from the SEQUENCE
                    await _run(conn, storable_statements(sqlrows.UPSERT, over))
            return InsertResult(frozenset(inserted), stored, frozenset(row[0] for row in over))

        async def attempt() -> InsertResult:
            return await self._on_writer(work)

        return await self._retrying(attempt)

    async def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        pool = self._get_pool()
        self._writable()
        prepared = prepare_statements(statements)

        async def attempt() -> list[int]:
            counts: list[int] = []
            async with pool.acquire() as conn, conn.transaction():
                for sql, params in prepared:
                    counts.append(_status_count(await conn.execute(sql, *params)))
            return counts

        return await self._retrying(attempt)

    # -- SQL spellings --------------------------------------------------------------------------

    def sync_engine(self, *, create: bool = True, readonly: bool = False) -> Engine:
        """psycopg 3 (sync) for Alembic; each transaction takes the migration advisory lock first
        (read-only: a read-only session instead, which takes no lock)."""
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
        del create  # databases are never created, only their tables
        connect_args: dict[str, Any] = {"application_name": "ckptdb-migrate"}
        if readonly:
            connect_args["options"] = "-c default_transaction_read_only=on"
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
        target = self.target

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            if not readonly:
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

    async def stream_readonly(self, sql: str, batch: int = 1000) -> AsyncGenerator[Row, None]:
        """The statement becomes a cursor (`DECLARE ... CURSOR FOR`, which the server accepts only
        for a query, and never with a data-modifying WITH) in a READ ONLY transaction that is rolled
        back at the end (undoing even a set_config); sent with the extended protocol, which refuses
        a second statement. SHOW and EXPLAIN, which report but cannot be a cursor, run as they are
        in the same read-only transaction; any other statement is refused before it runs.

        A READ ONLY transaction does not stop a function with side effects (pg_terminate_backend,
        pg_reload_conf, pg_switch_wal, pg_read_file, set_config, pg_advisory_lock, pg_sleep...), so
        before anything is sent PostgreSQL's own parser (pglast, libpg_query) reads the text and
        every function it calls must be one of `_SAFE_FUNCTIONS` (pure: aggregates, window, text,
        math, time, JSON, array functions), unqualified or in pg_catalog; anything else is refused
        by name. The transaction also puts pg_catalog first in its search_path, so an unqualified
        name finds the built-in function and no look-alike another schema might hold.
        """
        text = sql.strip().rstrip(";").rstrip()
        if not text:
            raise CkptdbError("no SQL statement given")
        check_read_only_sql(text)
        import asyncpg

        self._get_pool()  # the store must be open
        try:
            # Its own connection, closed at the end: a person's SQL never runs on a pooled one (whose
            # session state, advisory locks included, the pool does not reset between uses).
            # standard_conforming_strings on, as pglast reads the text: with it off (a server or
            # database default), 'a\' would end a string for pglast but not for the server, and
            # code pglast took for the inside of a later string would run unchecked.
            settings = {"application_name": "ckptdb-sql", "standard_conforming_strings": "on"}
            conn = await asyncpg.connect(self.dsn, server_settings={**self.server_settings, **settings})
        except Exception as exc:
            raise translate_error(exc, self.target) from None
        try:
            transaction = conn.transaction(readonly=True)
            await transaction.start()
            await conn.execute(session_guards(conn))
            reporting = None
            try:
                await conn.fetch(CURSOR_PREFIX + text)
            except Exception as exc:
                if getattr(exc, "sqlstate", None) != "42601" or "multiple commands" in str(exc):
                    raise
                # The cursor takes only a query. Another statement, or no SQL at all? Parsing the
                # text alone tells (a Parse message runs nothing), in a new read-only transaction.
                await transaction.rollback()
                transaction = conn.transaction(readonly=True)
                await transaction.start()
                await conn.execute(session_guards(conn))
                try:
                    reporting = await conn.prepare(text)
                except Exception as parse_exc:
                    if getattr(parse_exc, "sqlstate", None) == "42601":
                        raise parse_exc from None  # a syntax error (or several statements)
                if reporting is None or text.split(None, 1)[0].upper() not in REPORTING:
                    raise refusal(None) from None
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
            raise read_only_error(exc, self.target, text) from None
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

    async def vacuum(self) -> int | None:
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
            return None  # no WAL of ours to report: the server recycles its own
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == "55P03":
                raise StoreError(
                    f"{self.target.display()}: VACUUM FULL could not lock the checkpoints table within "
                    "5 s (busy): retry when it is quieter; plain VACUUM (autovacuum) already makes the "
                    "space reusable"
                ) from None
            raise translate_error(exc, self.target) from None
