"""ckptdb: checkpoint persistence for agent workflow graphs, echo-compatible, on SQLite or PostgreSQL."""

from ckptdb.errors import CkptdbError, InvalidCheckpointError, InvalidIdError, SchemaError, StoreError
from ckptdb.files import FileCheckpointStore
from ckptdb.memory import MemoryCheckpointStore
from ckptdb.model import Checkpoint, CheckpointInfo, InterruptType, Timestamp
from ckptdb.sql.backend import DatabaseTarget, parse_target
from ckptdb.sql.store import SqlCheckpointStore, open_store
from ckptdb.state_filter import StateFilter
from ckptdb.store import CheckpointPage, CheckpointQuery, CheckpointStore

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
    "SchemaError",
    "SqlCheckpointStore",
    "StateFilter",
    "StoreError",
    "Timestamp",
    "open_store",
    "parse_target",
]
