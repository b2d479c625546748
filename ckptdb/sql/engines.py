"""Which engine serves a `--db` value: the one place a URL scheme is mapped to an engine package.

A third engine is one new package under `ckptdb/sql/` (a module with `NAME`, `from_url` and
`backend_class`, see `EnginePackage`) and one line in `ENGINES`. A plain file path is SQLite's
(`file_target`). The package is imported only
when a target names it, and it imports its driver only when its backend is built, so
`ckptdb --help` and SQLite users never import asyncpg.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast

from ckptdb.errors import CkptdbError
from ckptdb.sql.backend import STORE_OPTIONS, Backend, DatabaseTarget
from ckptdb.sql.sqlite import from_path as file_target
from ckptdb.sql.sync_backend import SyncBackend

ENGINES: dict[str, str] = {
    "sqlite": "ckptdb.sql.sqlite",
    "postgresql": "ckptdb.sql.postgres",
}
"""URL scheme (also `DatabaseTarget.kind`) -> engine package. `scheme+driver://` (SQLAlchemy's
spelling) reaches the same package."""

ALIASES: dict[str, str] = {"sqlite3": "sqlite", "postgres": "postgresql"}
"""Other spellings of a scheme, taken without a `+driver`."""


class EnginePackage(Protocol):
    """What every engine package offers, without importing its driver."""

    NAME: str

    def from_url(self, text: str) -> DatabaseTarget: ...

    def backend_class(self) -> type[Backend]: ...

    def sync_backend_class(self) -> type[SyncBackend]: ...


def engine_package(kind: str) -> EnginePackage:
    return cast(EnginePackage, importlib.import_module(ENGINES[kind]))


def engine_part(kind: str, part: str) -> ModuleType:
    """One module of an engine package (`langgraph_source`: how another tool's tables look on
    that engine), imported when first asked for."""
    return importlib.import_module(f"{ENGINES[kind]}.{part}")


def _kind(scheme: str) -> str | None:
    if scheme in ENGINES:
        return scheme
    if scheme in ALIASES:
        return ALIASES[scheme]
    base = scheme.split("+", 1)[0]
    return base if "+" in scheme and base in ENGINES else None


def parse_target(target: str | Path | DatabaseTarget) -> DatabaseTarget:
    """`./checkpoints.db`, `sqlite:///abs.db`, `sqlite:///rel.db`, or `postgresql://...`.

    Only a text with `scheme://` is a URL; anything else is a file path taken as it is (`#`, `?`,
    `%`, spaces, a leading `-`, a `file:` prefix are all part of the name), and from here on the
    path travels as a Path, never pasted into another URL (see
    `ckptdb.sql.sqlite.connection.sqlite_uri`).
    """
    if isinstance(target, DatabaseTarget):
        return target
    if not isinstance(target, (str, Path)):
        raise CkptdbError(
            f"database target must be a path or URL string, got {type(target).__name__}: "
            "pass 'checkpoints.db', 'sqlite:///path.db' or 'postgresql://...'"
        )
    text = str(target)
    scheme = text.split("://", 1)[0].lower() if "://" in text and not isinstance(target, Path) else ""
    if scheme and not all(c.isalnum() or c in "+-." for c in scheme):
        scheme = ""  # `dir/x://y` is a path whose name holds "://"
    if not scheme:
        return file_target(text)
    kind = _kind(scheme)
    if kind is None:
        raise CkptdbError(
            f"unsupported database URL {text!r}: use a file path, sqlite:///path.db or postgresql://..."
        )
    return engine_package(kind).from_url(text)


def _check_options(engine: EnginePackage, taken: tuple[str, ...], options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(taken))
    if unknown:
        known = ", ".join(sorted({*taken, *STORE_OPTIONS}))
        raise CkptdbError(f"unknown option {unknown[0]!r} for a {engine.NAME} store: the options are {known}")


def open_backend(target: DatabaseTarget, **options: Any) -> Backend:
    """The (not yet connected) backend for a target; drivers are imported only when used. An
    option the backend does not take is refused by name, with the ones it does."""
    engine = engine_package(target.kind)
    backend = engine.backend_class()
    _check_options(engine, backend.OPTIONS, options)
    return backend(target, **options)


def open_sync_backend(target: DatabaseTarget, **options: Any) -> SyncBackend:
    """`open_backend` for the synchronous store: the same options, refused the same way."""
    engine = engine_package(target.kind)
    backend = engine.sync_backend_class()
    _check_options(engine, backend.OPTIONS, options)
    return backend(target, **options)
