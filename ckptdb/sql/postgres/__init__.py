"""The PostgreSQL engine: a `postgresql://` URL, and the backend that serves it.

This module is what `ckptdb.sql.engines` asks of every engine package (`NAME`, `from_url`,
`backend_class`); it imports no driver (asyncpg, psycopg and pglast load only when a backend
connects), so `ckptdb --help` and SQLite users never pay for them. Beside it, one job per
module: `urls` (DSN and names for messages), `errors` (driver and server errors in one line),
`spelling` (`$n` placeholders, state conditions), `readonly` (`ckptdb sql`'s guards) and
`backend` (`PostgresBackend`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptdb.sql.backend import DatabaseTarget

if TYPE_CHECKING:
    from ckptdb.sql.backend import Backend
    from ckptdb.sql.sync_backend import SyncBackend

NAME = "PostgreSQL"


def from_url(text: str) -> DatabaseTarget:
    """The URL as given: libpq and asyncpg read it (the password stays out of messages)."""
    return DatabaseTarget("postgresql", text)


def backend_class() -> type[Backend]:
    from ckptdb.sql.postgres.backend import PostgresBackend

    return PostgresBackend


def sync_backend_class() -> type[SyncBackend]:
    from ckptdb.sql.postgres.sync_backend import SyncPostgresBackend

    return SyncPostgresBackend
