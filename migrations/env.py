"""Alembic environment for ckptdb: run programmatically by ckptdb.migrate, on SQLite or PostgreSQL.

The caller hands over an open connection (config.attributes["connection"]) that already holds
the migration lock (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so concurrent
upgrades from several processes run one after the other.
"""

from __future__ import annotations

from alembic import context

from ckptdb.sql.revision import VERSION_TABLE
from ckptdb.sql.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `ckptdb db upgrade` (ckptdb.migrate), not bare alembic")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
    transaction_per_migration=False,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
