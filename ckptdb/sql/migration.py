"""Alembic, run from inside the package: upgrade, downgrade, current, and the head revision.

It lives in the SQL layer because it is the part of ckptdb that talks to the database through
SQLAlchemy and Alembic; `ckptdb.migrate` is its public face for the CLI and for applications.
The script directory ships as `ckptdb.migrations` (the repository's top-level `migrations/`), so
an installed wheel and an editable checkout find it the same way. Each run holds the engine's
migration lock for its whole transaction, so concurrent upgrades are safe.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from ckptdb.errors import SchemaError, StoreError
from ckptdb.sql.backend import Backend, DatabaseTarget, SchemaState, check_schema
from ckptdb.sql.engines import open_backend, parse_target
from ckptdb.sql.revision import KNOWN_REVISIONS, VERSION_TABLE

__all__ = [
    "KNOWN_REVISIONS",
    "SchemaState",
    "check_schema",
    "check_target_revision",
    "current",
    "downgrade",
    "drops_data",
    "head",
    "parse_target",
    "require_existing",
    "schema_state",
    "script_directory",
    "script_location",
    "upgrade",
    "upgrade_backend",
]


def script_location() -> str:
    return str(files("ckptdb.migrations"))


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", script_location())
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _backend(target: str | Path | DatabaseTarget) -> Backend:
    return open_backend(parse_target(target))


def _revision_of(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


_RELATIVE = re.compile(r"[+-]\d+|(head|heads|base|\w+)[+-]\d+")


def check_target_revision(revision: object) -> str:
    """Refuse a revision that names nothing in this ckptdb before the database is touched (Alembic
    would fail inside the transaction, after a new SQLite file was already created)."""
    known = ", ".join(KNOWN_REVISIONS)
    if not isinstance(revision, str) or not revision.strip():
        raise SchemaError(f"a revision must be a non-empty string: use head, base, -1 or one of {known}")
    if revision in ("head", "heads", "base") or _RELATIVE.fullmatch(revision):
        return revision
    try:
        found = script_directory().get_revisions(revision)
    except (CommandError, RevisionError):
        found = ()
    if not found:
        raise SchemaError(
            f"unknown revision {revision!r}: use head, base, a step such as -1, or one of {known}"
        )
    return revision


def schema_state(target: str | Path | DatabaseTarget) -> SchemaState:
    """What the database holds of ckptdb's schema, read on a read-only connection: nothing is
    created, locked for writing, migrated or switched (a missing SQLite file is refused)."""
    return _read_state(_backend(target))


def _read_state(backend: Backend) -> SchemaState:
    engine = backend.sync_engine(create=False, readonly=True)
    try:
        with engine.connect() as connection:
            found = sa.inspect(connection)
            has_checkpoints = found.has_table("checkpoints")
            has_versions = found.has_table(VERSION_TABLE)
            revision = _revision_of(connection) if has_versions else None
            return SchemaState(has_checkpoints, has_versions, revision)
    finally:
        engine.dispose()


def _refuse_foreign(state: SchemaState, where: str, action: str) -> None:
    """Before a migration writes anything: a table that is not ckptdb's, or a revision that only a
    newer ckptdb knows (Alembic cannot go anywhere from there), stops it with a one-line answer."""
    if state.revision is None and state.checkpoints_table:
        check_schema(state, where)  # raises: another tool's checkpoints table
    if state.revision is not None and state.revision not in KNOWN_REVISIONS:
        raise SchemaError(
            f"{where} has schema {state.revision}, which this ckptdb does not know (written by a newer "
            f"ckptdb?): nothing was changed; {action} it with that ckptdb, or upgrade this one "
            "(pip install -U ckptdb)"
        )


def _run(backend: Backend, action: str, revision: str) -> tuple[str | None, str | None]:
    """Run one Alembic command; returns the revisions before and after, both read while the
    migration lock is held, so concurrent runs report what each of them actually did."""
    engine = backend.sync_engine(create=action == "upgrade")
    try:
        with engine.begin() as connection:
            before = _revision_of(connection)
            config = alembic_config()
            config.attributes["connection"] = connection
            try:
                getattr(command, action)(config, revision)
            except (CommandError, RevisionError) as exc:  # rolled back with the transaction
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise SchemaError(
                    f"cannot {action} {backend.target.display()} to {revision!r} from {before or 'base'} "
                    f"({reason}): nothing was changed"
                ) from None
            return before, _revision_of(connection)
    finally:
        engine.dispose()


def upgrade_backend(backend: Backend, revision: str = "head") -> tuple[str | None, str | None]:
    return _run(backend, "upgrade", revision)


def upgrade(target: str | Path | DatabaseTarget, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to `revision` (default: the newest); creates a new SQLite file.

    Returns (revision before, revision after). Refused before anything is written: an unknown
    `revision`, a path that is not a database file, another tool's `checkpoints` table, a
    schema from a newer ckptdb.
    """
    revision = check_target_revision(revision)
    target = parse_target(target)
    backend = open_backend(target)
    if target.path is None or target.path.exists():
        _refuse_foreign(_read_state(backend), target.display(), "upgrade")
    return upgrade_backend(backend, revision)


def downgrade(target: str | Path | DatabaseTarget, revision: str = "-1") -> tuple[str | None, str | None]:
    """Step the schema back (default: one revision; "base" removes every ckptdb table)."""
    revision = check_target_revision(revision)
    target = parse_target(target)
    backend = open_backend(target)
    _refuse_foreign(_read_state(backend), target.display(), "downgrade")
    return _run(backend, "downgrade", revision)


def current(target: str | Path | DatabaseTarget) -> str | None:
    """The database's revision, or None for a database ckptdb has not migrated (read-only)."""
    return schema_state(target).revision


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
