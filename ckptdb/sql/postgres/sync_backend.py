"""PostgreSQL for the synchronous store, through psycopg 3: a writer connection for the group
commit, and a read connection per calling thread.

Saves go through `LeaderCommit`: the thread that holds the writer connection commits every save
queued so far, one row as one autocommit statement (one round trip), several as one transaction;
reads run on a connection of the calling thread's own, so they never wait behind a write or
another thread's read. psycopg_pool is not used: a pool would add an acquire and a release to
every call, and per-thread connections need none (a thread that ends gives its connection back
when the next one opens). The statements are the async backend's exactly (`postgres_sql`: `$n`
placeholders, which psycopg's raw cursors take as they are; the save order from the SEQUENCE),
with the same U+0000 checks, the same deadlock retries and the same error translation; the
options and their checks are `PostgresBackend`'s, through an unconnected instance (`config`).

A huge JSON text reaches psycopg as the UTF-8 bytes orjson wrote (`json_bytes`, `_Utf8Json`),
sent in binary format, which for `json` is the text itself: psycopg hands those bytes to libpq
as they are. Given the str, psycopg encodes it to UTF-8 first, one more copy of the text beside
the str and libpq's. Measured in a fresh process, a 64 MiB state, growth / document: save 4.00x
ASCII, 4.05x non-ASCII with the str; 3.00x and 2.54x with the bytes (the state, the bytes and
libpq's message buffer). A small save keeps the str and its path (only rows holding bytes are
looked at again).
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from ckptdb.errors import CkptdbError, StoreError
from ckptdb.sql.backend import DatabaseTarget, Row, SchemaState
from ckptdb.sql.group_commit import LeaderCommit, SyncRequest, statements_of
from ckptdb.sql.postgres.backend import (
    DEADLOCK_RETRIES,
    PostgresBackend,
    _is_retryable,
    _limited_to,
    check_storable,
    lookup_params,
    prepare_statements,
)
from ckptdb.sql.postgres.errors import translate_error, translate_write_error
from ckptdb.sql.postgres.spelling import PostgresSpelling, postgres_sql
from ckptdb.sql.revision import VERSION_TABLE
from ckptdb.sql.sync_backend import SyncBackend

T = TypeVar("T")

ABANDONED: list[object] = []
"""Connections a forked child let go of (`abandon`), kept referenced so the child never closes
them: closing would send the server a Terminate on the parent's socket."""


class _Utf8Json:
    """A JSON column's text as its UTF-8 bytes, for `_json_bytes_dumper` (a class of its own, so
    that no other bytes parameter, a LangGraph blob say, is sent as JSON)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


@functools.cache
def _json_bytes_dumper() -> type[Any]:
    """psycopg's dumper for `_Utf8Json`: the bytes as they are, in binary format, typed `json`
    (whose binary form is its text). Built on first use: psycopg is an optional dependency."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class Utf8JsonDumper(Dumper):
        format = Format.BINARY
        oid = JSON_OID

        def dump(self, obj: Any) -> bytes:
            data: bytes = obj.data
            return data

    return Utf8JsonDumper


JSON_OID = 114
"""PostgreSQL's oid of `json` (pg_type), fixed since 9.2."""


def _wrap_json_bytes(rows: Sequence[Row]) -> Sequence[Row]:
    """Rows whose huge JSON text is bytes (`rows.to_row` with `json_bytes`) with that text wrapped
    for `_json_bytes_dumper`; rows without bytes (every small save) are returned as they are."""
    if not any(type(value) is bytes for row in rows for value in row):
        return rows
    return [tuple(_Utf8Json(v) if type(v) is bytes else v for v in row) for row in rows]


class SyncPostgresBackend(PostgresSpelling, SyncBackend):
    OPTIONS = PostgresBackend.OPTIONS
    config: PostgresBackend
    json_bytes = True  # psycopg sends them as they are: `_Utf8Json`

    def __init__(self, target: DatabaseTarget, **options: Any) -> None:
        self.config = config = PostgresBackend(target, **options)
        self.target = target
        self.max_value_bytes = config.max_value_bytes
        self._readonly = False
        self._open = False
        self._writer: Any = None
        self._readers: dict[int, Any] = {}
        self._readers_lock = threading.Lock()
        self._saves = LeaderCommit(self._attempt, lambda exc: isinstance(exc, Exception), self._translate)

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise StoreError("PostgreSQL support needs psycopg: pip install 'ckptdb[postgres]'") from None
        settings = dict(self.config.server_settings)
        if self.config.command_timeout is not None:
            settings["statement_timeout"] = str(int(self.config.command_timeout * 1000))
        options = " ".join(f"-c {key}={value}" for key, value in settings.items())
        from psycopg.types.string import TextLoader

        try:
            conn = psycopg.connect(
                self.config.dsn, autocommit=True, options=options, cursor_factory=psycopg.RawCursor
            )
        except Exception as exc:
            raise translate_error(exc, self.target) from None
        conn.server_cursor_factory = psycopg.RawServerCursor
        # JSON columns come back as their text, as asyncpg gives them: the row codec parses them
        # (`rows.from_row`), exactly as it does on every engine.
        conn.adapters.register_loader("json", TextLoader)
        conn.adapters.register_dumper(_Utf8Json, _json_bytes_dumper())
        return conn

    def connect(self, *, create: bool, readonly: bool = False) -> None:
        """PostgreSQL databases are never created here (`create` is about tables). Read-only: every
        session starts with `default_transaction_read_only`, so the server refuses any write."""
        self._readonly = readonly
        if readonly:
            self.config.server_settings["default_transaction_read_only"] = "on"
        self._open = True
        try:
            self._reader()
        except BaseException:
            self.close()
            raise

    def _reader(self) -> Any:
        ident = threading.get_ident()
        conn = self._readers.get(ident)
        if conn is not None and not conn.closed:
            return conn
        if not self._open:
            raise StoreError("the store is closed")
        conn = self._connect()
        with self._readers_lock:
            alive = {thread.ident for thread in threading.enumerate()}
            stale = [self._readers.pop(key) for key in list(self._readers) if key not in alive]
            old = self._readers.get(ident)
            if old is not None:
                stale.append(old)
            self._readers[ident] = conn
        for gone in stale:
            with suppress(Exception):
                gone.close()
        return conn

    def close(self) -> None:
        self._open = False
        with self._readers_lock:
            readers, self._readers = list(self._readers.values()), {}
        for conn in readers:
            with suppress(Exception):
                conn.close()
        with self._saves.lock:  # after the saves in flight
            writer, self._writer = self._writer, None
            if writer is not None:
                with suppress(Exception):
                    writer.close()

    def abandon(self) -> None:
        self._open = False
        ABANDONED.extend(self._readers.values())
        ABANDONED.append(self._writer)
        self._readers = {}
        self._writer = None

    # -- reads ----------------------------------------------------------------------------------

    def schema_state(self) -> SchemaState:
        found = self.fetchall(
            "SELECT to_regclass('checkpoints') IS NOT NULL, to_regclass(?) IS NOT NULL", (VERSION_TABLE,)
        )
        has_checkpoints, has_versions = bool(found[0][0]), bool(found[0][1])
        revision = None
        if has_versions:
            rows = self.fetchall(f"SELECT version_num FROM {VERSION_TABLE} LIMIT 1")
            revision = rows[0][0] if rows else None
        return SchemaState(has_checkpoints, has_versions, revision)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        conn = self._reader()
        try:
            rows: list[Row] = conn.execute(postgres_sql(sql), lookup_params(params)).fetchall()
        except Exception as exc:
            raise translate_error(exc, self.target) from None
        return rows

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> Iterator[Row]:
        """A server-side cursor inside a read-only transaction, `batch` rows per round trip; a read
        whose own LIMIT fits in one batch is one plain fetch (as in `PostgresBackend.stream`)."""
        params = lookup_params(params)
        if _limited_to(sql, params, batch):
            yield from self.fetchall(sql, params)
            return
        conn = self._reader()
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                with conn.cursor(name="ckptdb_stream") as cursor:
                    cursor.itersize = batch
                    cursor.execute(postgres_sql(sql), params)
                    while rows := cursor.fetchmany(batch):
                        yield from rows
        except CkptdbError:
            raise
        except Exception as exc:
            raise translate_error(exc, self.target) from None

    # -- writes ---------------------------------------------------------------------------------

    def _writable(self) -> None:
        if not self._open:
            raise StoreError("the store is closed")
        if self._readonly:
            raise StoreError(f"{self.target.display()} was opened read-only: open it with connect() to write")

    def _translate(self, exc: BaseException) -> BaseException:
        return translate_write_error(exc, self.target) if isinstance(exc, Exception) else exc

    def _on_writer(self, work: Callable[[Any], T]) -> T:
        """`work(conn)` on the writer connection (with the saves' lock held), again after a
        deadlock or serialization failure; a broken connection is replaced on the next write."""
        for tries in range(DEADLOCK_RETRIES + 1):
            if self._writer is None or self._writer.closed:
                self._writer = self._connect()
            try:
                return work(self._writer)
            except Exception as exc:
                if self._writer.broken:
                    with suppress(Exception):
                        self._writer.close()
                    self._writer = None
                if _is_retryable(exc) and tries < DEADLOCK_RETRIES:
                    time.sleep(random.uniform(0.001, 0.02) * (tries + 1))
                    continue
                raise
        raise AssertionError("unreachable")

    def _attempt(self, batch: list[SyncRequest]) -> BaseException | None:
        """One group: one row is one autocommit statement; more, one transaction."""
        by_sql = statements_of(batch)
        try:
            prepared = [
                (postgres_sql(sql), check_storable(_wrap_json_bytes(rows))) for sql, rows in by_sql.items()
            ]

            def work(conn: Any) -> None:
                if len(prepared) == 1 and len(prepared[0][1]) == 1:
                    conn.execute(prepared[0][0], prepared[0][1][0])
                    return
                with conn.transaction(), conn.cursor() as cursor:
                    for text, rows in prepared:
                        cursor.executemany(text, rows)

            self._on_writer(work)
        except BaseException as exc:
            return exc
        return None

    def save_rows(self, sql: str, rows: Sequence[Row]) -> None:
        self._writable()
        self._saves.save(sql, rows)

    def save_parts(self, parts: Sequence[tuple[str, Sequence[Row]]]) -> None:
        self._writable()
        (sql, rows), *more = parts
        self._saves.save(sql, rows, more)

    def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        self._writable()
        prepared = prepare_statements(statements)

        def work(conn: Any) -> list[int]:
            with conn.transaction():
                return [conn.execute(text, params).rowcount for text, params in prepared]

        with self._saves.lock:
            try:
                return self._on_writer(work)
            except Exception as exc:
                raise translate_write_error(exc, self.target) from None
