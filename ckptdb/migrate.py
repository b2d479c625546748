"""Schema migrations as library calls: upgrade, downgrade, current, and the head revision.

The work (Alembic on a SQLAlchemy connection holding the engine's migration lock) is done in the
SQL layer, `ckptdb.sql.migration`, the only place that may talk to the database; this module is
the stable name the CLI, the tests and applications import (`from ckptdb import migrate`).
"""

from __future__ import annotations

# The same names, listed once: in ckptdb.sql.migration's __all__.
from ckptdb.sql.migration import *  # noqa: F403
from ckptdb.sql.migration import __all__ as __all__
