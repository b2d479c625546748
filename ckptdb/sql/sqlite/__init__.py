"""The SQLite engine: a file path or `sqlite://` URL, and the backend that serves it.

This module is what `ckptdb.sql.engines` asks of every engine package (`NAME`, `from_url`,
`backend_class`); it imports no driver, so parsing a `--db` value costs nothing. The backend and
its parts live beside it, one job per module: `connection` (driver connection, transactions,
errors), `writer` (the writer thread and group commit), `loop_reader` (short reads on the event
loop's thread), `checkpointer` (the WAL checkpointer thread), `spelling` (state conditions in
SQL), `readonly` (`ckptdb sql`'s authorizer), `settings` (the tuning figures they share) and
`backend` (`SqliteBackend`, which puts them together).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ckptdb.errors import CkptdbError
from ckptdb.sql.backend import DatabaseTarget

if TYPE_CHECKING:
    from ckptdb.sql.backend import Backend
    from ckptdb.sql.sync_backend import SyncBackend

NAME = "SQLite"


def from_path(text: str) -> DatabaseTarget:
    """A file path taken as it is; from here on it travels as a Path, never pasted into another
    URL (see `ckptdb.sql.sqlite.connection.sqlite_uri`)."""
    if text in ("", ":memory:"):
        raise CkptdbError("an in-memory SQLite database cannot be shared; use MemoryCheckpointStore")
    if "\x00" in text:
        raise CkptdbError(f"database path {text!r} contains NUL: no file can have that name")
    path = Path(text).expanduser().absolute()
    return DatabaseTarget("sqlite", f"sqlite:///{path}", path)


def from_url(text: str) -> DatabaseTarget:
    """`sqlite:///rel.db` or `sqlite:////abs.db`: the path is percent-decoded once, and a `?query`
    is refused rather than silently dropped."""
    rest = text.split("://", 1)[1]
    if "?" in rest:
        raise CkptdbError(
            f"{text!r}: sqlite URLs take no ?options here; write the path alone "
            "(percent-encode a '?' in the name as %3F) or give the plain file path"
        )
    path_text = unquote(rest)
    if path_text.startswith("/"):
        path_text = path_text[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    elif path_text:
        raise CkptdbError(
            f"{text!r}: a sqlite URL has three slashes before a relative path (sqlite:///rel.db) "
            "and four before an absolute one (sqlite:////abs/path.db)"
        )
    return from_path(path_text)


def backend_class() -> type[Backend]:
    from ckptdb.sql.sqlite.backend import SqliteBackend

    return SqliteBackend


def sync_backend_class() -> type[SyncBackend]:
    from ckptdb.sql.sqlite.sync_backend import SyncSqliteBackend

    return SyncSqliteBackend
