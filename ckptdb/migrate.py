"""Schema migrations as library calls: upgrade, downgrade, current, and the head revision.

The work (Alembic on a SQLAlchemy connection holding the engine's migration lock) is done in the
SQL layer, `ckptdb.sql.migration`, the only place that may talk to the database; this module is
the stable name the CLI, the tests and applications import (`from ckptdb import migrate`).
"""

from __future__ import annotations

from ckptdb.sql.migration import (
    KNOWN_REVISIONS,
    SchemaState,
    check_schema,
    check_target_revision,
    current,
    downgrade,
    drops_data,
    head,
    parse_target,
    require_existing,
    schema_state,
    script_directory,
    script_location,
    upgrade,
)

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
]
