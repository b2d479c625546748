"""SQLite through aiosqlite: WAL, a busy timeout, BEGIN IMMEDIATE for write transactions.

Two connections: one writer (autocommit mode, so a single upsert is one statement and one round
trip, and multi-row writes take the write lock up front with BEGIN IMMEDIATE, which is what keeps
"database is locked" away under contention) and one reader, so reads never wait behind writes.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from ckptdb.errors import CkptdbError, StoreError
from ckptdb.sql.backend import Backend, DatabaseTarget, Row
from ckptdb.sql.revision import VERSION_TABLE
from ckptdb.state_filter import PathStep, StateFilter

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SYNCHRONOUS = ("NORMAL", "FULL")


def translate_error(exc: sqlite3.Error, where: str) -> CkptdbError:
    """Turn the driver's error into one line that says what to do."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return StoreError(f"{where} is not a usable SQLite database ({text}): check the path, or restore a backup")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"{where} is read-only ({text}): check the file's and its directory's permissions")
    if "full" in text:
        return StoreError(f"{where}: disk or database full ({text}); nothing of this write was saved")
    if "unable to open" in text:
        return StoreError(f"cannot open {where} ({text}): check that the directory exists and is writable")
    if "locked" in text or "busy" in text:
        return StoreError(f"{where} stayed locked by another writer past the busy timeout ({text})")
    return StoreError(f"{where}: {text}")


def json_path(path: Sequence[PathStep]) -> str:
    out = "$"
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif '"' in step:
            raise CkptdbError(f"state paths cannot contain a double quote: {step!r}")
        else:
            out += f'."{step}"'
    return out


class SqliteBackend(Backend):
    def __init__(
        self, target: DatabaseTarget, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 30_000
    ) -> None:
        assert target.path is not None
        self.target = target
        self.path = target.path
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS:
            raise CkptdbError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    def _where(self) -> str:
        return str(self.path)

    async def _open(self, *, create: bool) -> aiosqlite.Connection:
        mode = "rwc" if create else "rw"
        conn = await aiosqlite.connect(
            f"file:{self.path}?mode={mode}", uri=True, isolation_level=None, check_same_thread=False
        )
        try:
            await conn.execute_fetchall(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            await conn.execute_fetchall(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error:
            await conn.close()
            raise
        return conn

    async def connect(self, *, create: bool) -> None:
        if not create and not self.path.exists():
            raise StoreError(f"no database at {self.path}: check the path or --db (nothing was created)")
        if create and not self.path.parent.is_dir():
            raise StoreError(f"cannot create {self.path}: directory {self.path.parent} does not exist")
        try:
            self._writer = await self._open(create=create)
            mode = await self._writer.execute_fetchall("PRAGMA journal_mode")
            if next(iter(mode))[0].lower() != "wal":
                await self._writer.execute_fetchall("PRAGMA journal_mode = WAL")
            self._reader = await self._open(create=False)
        except sqlite3.Error as exc:
            await self.close()
            raise translate_error(exc, self._where()) from None

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                try:
                    await conn.close()
                except (sqlite3.Error, ValueError):
                    pass
        self._reader = self._writer = None

    def _conns(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        if self._writer is None or self._reader is None:
            raise StoreError("the store is closed")
        return self._writer, self._reader

    async def schema_revision(self) -> tuple[bool, str | None]:
        _, reader = self._conns()
        try:
            names = {
                r[0]
                for r in await reader.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('checkpoints', ?)",
                    (VERSION_TABLE,),
                )
            }
            if VERSION_TABLE not in names:
                return bool(names), None
            rows = list(await reader.execute_fetchall(f"SELECT version_num FROM {VERSION_TABLE}"))
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None
        return True, (rows[0][0] if rows else None)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        _, reader = self._conns()
        try:
            return list(await reader.execute_fetchall(sql, params))  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None

    async def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> AsyncIterator[Row]:
        _, reader = self._conns()
        try:
            cursor = await reader.execute(sql, params)  # type: ignore[arg-type]
            try:
                while rows := await cursor.fetchmany(batch):
                    for row in rows:
                        yield tuple(row)
            finally:
                await cursor.close()
        except sqlite3.Error as exc:
            raise translate_error(exc, self._where()) from None

    async def _rollback(self, writer: aiosqlite.Connection) -> None:
        if writer.in_transaction:
            try:
                await writer.execute_fetchall("ROLLBACK")
            except sqlite3.Error:
                pass

    async def write_rows(self, sql: str, rows: Sequence[Row]) -> None:
        writer, _ = self._conns()
        try:
            if len(rows) == 1:
                # One statement in autocommit mode is its own transaction and takes the write
                # lock when it starts (no read-then-upgrade), so the busy timeout applies.
                await writer.execute_fetchall(sql, rows[0])
                return
            await writer.execute_fetchall("BEGIN IMMEDIATE")
            await writer.executemany(sql, rows)
            await writer.execute_fetchall("COMMIT")
        except sqlite3.Error as exc:
            await self._rollback(writer)
            raise translate_error(exc, self._where()) from None

    async def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        writer, _ = self._conns()
        counts = []
        try:
            await writer.execute_fetchall("BEGIN IMMEDIATE")
            for sql, params in statements:
                cursor = await writer.execute(sql, params)  # type: ignore[arg-type]
                counts.append(cursor.rowcount)
                await cursor.close()
            await writer.execute_fetchall("COMMIT")
        except sqlite3.Error as exc:
            await self._rollback(writer)
            raise translate_error(exc, self._where()) from None
        return counts

    def state_condition(self, condition: StateFilter) -> tuple[str, list[Any]]:
        path = json_path(condition.path)
        jtype = "json_type(state_snapshot, ?)"
        value = "json_extract(state_snapshot, ?)"
        if condition.op == "exists":
            return f"{jtype} IS NOT NULL", [path]
        kind = condition.kind()
        if kind == "null":
            same: tuple[str, list[Any]] = (f"{jtype} = 'null'", [path])
        elif kind == "bool":
            same = (f"{jtype} = ?", [path, "true" if condition.value else "false"])
        else:
            types = "('integer', 'real')" if kind == "number" else "('text')"
            op = "=" if condition.op in ("==", "!=") else condition.op
            same = (f"({jtype} IN {types} AND {value} {op} ?)", [path, path, condition.value])
        if condition.op == "!=":
            return f"({jtype} IS NOT NULL AND NOT {same[0]})", [path, *same[1]]
        return same

    def sync_engine(self) -> Engine:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        engine = sa.create_engine(self.target.url, poolclass=NullPool)
        busy = int(self.busy_timeout_ms)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below decide how to begin
            dbapi_conn.execute(f"PRAGMA busy_timeout = {busy}")
            dbapi_conn.execute("PRAGMA journal_mode = WAL")

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # serializes concurrent upgrades

        return engine

    async def database_size(self) -> int | None:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                pass
        return total
