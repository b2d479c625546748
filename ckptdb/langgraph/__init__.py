"""ckptdb as a LangGraph checkpoint saver (`pip install 'ckptdb[langgraph]'`).

`AsyncCkptdbSaver.from_conn_string("checkpoints.db")` (or a `postgresql://` URL) stores LangGraph's
checkpoints in ckptdb's `langgraph_*` tables, beside ckptdb's own: see `ckptdb.langgraph.aio`.
`CkptdbSaver.from_conn_string(...)`, a plain context manager, is its synchronous twin on the same
tables (`ckptdb.langgraph.sync`).
"""

from __future__ import annotations

try:
    import langgraph.checkpoint.base  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is missing
    from ckptdb.errors import CkptdbError

    raise CkptdbError("ckptdb.langgraph needs langgraph-checkpoint: pip install 'ckptdb[langgraph]'") from exc

from ckptdb.langgraph.aio import AsyncCkptdbSaver
from ckptdb.langgraph.sync import CkptdbSaver

__all__ = ["AsyncCkptdbSaver", "CkptdbSaver"]
