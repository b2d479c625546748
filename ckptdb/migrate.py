"""Alembic, run from inside the package: upgrade, downgrade, current, and the head revision.

The script directory ships as `ckptdb.migrations` (the repository's top-level `migrations/`), so
an installed wheel and an editable checkout find it the same way. Each run holds the engine's
migration lock for its whole transaction, so concurrent upgrades are safe.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ckptdb.errors import StoreError
from ckptdb.sql.backend import Backend, DatabaseTarget, open_backend, parse_target
from ckptdb.sql.revision import KNOWN_REVISIONS, VERSION_TABLE

__all__ = ["KNOWN_REVISIONS", "current", "downgrade", "head", "parse_target", "upgrade"]


def script_location() -> str:
    return str(files("ckptdb.migrations"))


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", script_location())
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _backend(target: str | Path | DatabaseTarget) -> Backend:
    if not isinstance(target, DatabaseTarget):
        target = parse_target(target)
    return open_backend(target)


def _revision_of(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _run(backend: Backend, action: str, revision: str) -> tuple[str | None, str | None]:
    """Run one Alembic command; returns the revisions before and after, both read while the
    migration lock is held, so concurrent runs report what each of them actually did."""
    engine = backend.sync_engine()
    try:
        with engine.begin() as connection:
            before = _revision_of(connection)
            config = alembic_config()
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
            return before, _revision_of(connection)
    finally:
        engine.dispose()


def upgrade_backend(backend: Backend, revision: str = "head") -> tuple[str | None, str | None]:
    return _run(backend, "upgrade", revision)


def upgrade(target: str | Path | DatabaseTarget, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to `revision` (default: the newest); creates a new SQLite file.

    Returns (revision before, revision after).
    """
    return upgrade_backend(_backend(target), revision)


def downgrade(target: str | Path | DatabaseTarget, revision: str = "-1") -> tuple[str | None, str | None]:
    """Step the schema back (default: one revision; "base" removes every ckptdb table)."""
    return _run(_backend(target), "downgrade", revision)


def current(target: str | Path | DatabaseTarget) -> str | None:
    """The database's revision, or None for a database ckptdb has not migrated."""
    engine = _backend(target).sync_engine()
    try:
        with engine.connect() as connection:
            return _revision_of(connection)
    finally:
        engine.dispose()


def head() -> str:
    revision = script_directory().get_current_head()
    assert revision is not None
    return revision


def require_existing(target: DatabaseTarget) -> None:
    """Inspection must never create a database file as a side effect."""
    if target.path is not None and not target.path.exists():
        raise StoreError(f"no database at {target.path}: check the path or --db (nothing was created)")


def drops_data(current_revision: str | None, revision: str) -> bool:
    """Whether downgrading to `revision` removes the checkpoints table."""
    if revision == "base":
        return True
    if revision == "-1":
        return current_revision == KNOWN_REVISIONS[0]
    return False
