"""ckptdb: checkpoint persistence for agent workflow graphs, echo-compatible, on SQLite or PostgreSQL.

The public names below load on first use (PEP 562), so `import ckptdb.cli` and a quick
`ckptdb list` do not pay for modules they never touch (the file store, the memory store).
`from ckptdb import open_store` works as before.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ckptdb.errors import (
        CkptdbError,
        InvalidCheckpointError,
        InvalidIdError,
        OutcomeUnknownError,
        SchemaError,
        StoreError,
        UnavailableError,
    )
    from ckptdb.files import FileCheckpointStore, SyncFileCheckpointStore
    from ckptdb.langgraph_import import import_langgraph, run_langgraph_import
    from ckptdb.langgraph_source import open_langgraph_source
    from ckptdb.memory import MemoryCheckpointStore, SyncMemoryCheckpointStore
    from ckptdb.model import Checkpoint, CheckpointInfo, InterruptType, Timestamp
    from ckptdb.sql.store import DatabaseTarget, SqlCheckpointStore, open_store, parse_target
    from ckptdb.sql.sync_store import SyncSqlCheckpointStore, connect
    from ckptdb.state_filter import StateFilter
    from ckptdb.store import CheckpointPage, CheckpointQuery, CheckpointStore
    from ckptdb.sync_store import SyncCheckpointStore

_HOME = {
    "CkptdbError": "ckptdb.errors",
    "InvalidCheckpointError": "ckptdb.errors",
    "InvalidIdError": "ckptdb.errors",
    "OutcomeUnknownError": "ckptdb.errors",
    "SchemaError": "ckptdb.errors",
    "StoreError": "ckptdb.errors",
    "UnavailableError": "ckptdb.errors",
    "FileCheckpointStore": "ckptdb.files",
    "import_langgraph": "ckptdb.langgraph_import",
    "run_langgraph_import": "ckptdb.langgraph_import",
    "open_langgraph_source": "ckptdb.langgraph_source",
    "MemoryCheckpointStore": "ckptdb.memory",
    "SyncFileCheckpointStore": "ckptdb.files",
    "SyncMemoryCheckpointStore": "ckptdb.memory",
    "SyncSqlCheckpointStore": "ckptdb.sql.sync_store",
    "SyncCheckpointStore": "ckptdb.sync_store",
    "connect": "ckptdb.sql.sync_store",
    "Checkpoint": "ckptdb.model",
    "CheckpointInfo": "ckptdb.model",
    "InterruptType": "ckptdb.model",
    "Timestamp": "ckptdb.model",
    "DatabaseTarget": "ckptdb.sql.store",
    "parse_target": "ckptdb.sql.store",
    "SqlCheckpointStore": "ckptdb.sql.store",
    "open_store": "ckptdb.sql.store",
    "StateFilter": "ckptdb.state_filter",
    "CheckpointPage": "ckptdb.store",
    "CheckpointQuery": "ckptdb.store",
    "CheckpointStore": "ckptdb.store",
}

__all__ = [
    "Checkpoint",
    "CheckpointInfo",
    "CheckpointPage",
    "CheckpointQuery",
    "CheckpointStore",
    "CkptdbError",
    "DatabaseTarget",
    "FileCheckpointStore",
    "InterruptType",
    "InvalidCheckpointError",
    "InvalidIdError",
    "MemoryCheckpointStore",
    "OutcomeUnknownError",
    "SchemaError",
    "SqlCheckpointStore",
    "StateFilter",
    "StoreError",
    "SyncCheckpointStore",
    "SyncFileCheckpointStore",
    "SyncMemoryCheckpointStore",
    "SyncSqlCheckpointStore",
    "Timestamp",
    "UnavailableError",
    "connect",
    "import_langgraph",
    "open_langgraph_source",
    "open_store",
    "parse_target",
    "run_langgraph_import",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        # AttributeError (not ImportError): `from ckptdb import migrate` then imports the submodule.
        raise AttributeError(f"module 'ckptdb' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
