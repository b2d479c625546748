"""The SQL store's logic that needs no engine and no event loop, written once for the async store
(`ckptdb.sql.store`) and the synchronous one (`ckptdb.sql.sync_store`): which ids may be asked
about, how a query becomes a WHERE clause and a page, how checkpoints become rows, and the open
sequence's decisions (the schema gate; create and migrate on first use).

Each function takes the engine's `Spelling` (state conditions) or its limits as arguments, never a
connection: the two stores differ only in how they run the statements built here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ckptdb.errors import InvalidIdError
from ckptdb.model import Checkpoint, CheckpointInfo
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.backend import STORE_OPTIONS, SchemaState, Spelling, check_bool, check_schema
from ckptdb.store import CheckpointPage, CheckpointQuery, decode_cursor, encode_cursor

DELETE_ONE = "DELETE FROM checkpoints WHERE id = ?"
CLEAR = "DELETE FROM checkpoints"


def check_id(checkpoint_id: object) -> str:
    """An id the database can be asked about: a string that UTF-8 can encode (the driver cannot bind
    a lone surrogate, and no stored id can contain one: saving refuses them)."""
    if not isinstance(checkpoint_id, str):
        raise InvalidIdError(f"checkpoint id must be a string, got {type(checkpoint_id).__name__}")
    if not checkpoint_id.isascii():
        try:
            checkpoint_id.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidIdError(
                f"checkpoint id {checkpoint_id!r} contains a lone surrogate (not valid UTF-8)"
            ) from None
    return checkpoint_id


def open_flags(create: object, migrate: object, readonly: object) -> tuple[bool, bool, bool]:
    """`open`'s own options checked (`STORE_OPTIONS`); `create` is off when `readonly`."""
    flags = [
        check_bool(name, value)
        for name, value in zip(STORE_OPTIONS, (create, migrate, readonly), strict=True)
    ]
    created, migrated, read_only = flags
    return created and not read_only, migrated, read_only


def must_migrate(state: SchemaState, *, create: bool, migrate: bool) -> bool:
    """Whether opening creates the schema: only in a database holding nothing of anyone's yet."""
    return state.empty and create and migrate


def gate(state: SchemaState, where: str) -> None:
    """The schema gate every store passes before its first statement (`check_schema`)."""
    check_schema(state, where)


def save_row(checkpoint: Checkpoint, spelling: Spelling, max_value_bytes: int | None) -> tuple[Any, ...]:
    return sqlrows.to_row(checkpoint, max_value_bytes=max_value_bytes, json_bytes=spelling.json_bytes)


def save_rows(
    checkpoints: Iterable[Checkpoint], spelling: Spelling, max_value_bytes: int | None
) -> list[tuple[Any, ...]]:
    """Every checkpoint validated and encoded before anything is written (save_many is all or
    nothing for bad input)."""
    json_bytes = spelling.json_bytes
    return [sqlrows.to_row(cp, max_value_bytes=max_value_bytes, json_bytes=json_bytes) for cp in checkpoints]


def delete_statements(checkpoint_ids: Sequence[str]) -> list[tuple[str, Sequence[Any]]]:
    return [(DELETE_ONE, (check_id(cid),)) for cid in checkpoint_ids]


def where_clause(spelling: Spelling, query: CheckpointQuery) -> tuple[str, list[Any]]:
    """WHERE text and parameters for a query's filters (cursor included); values always bound."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.graph_name is not None:
        clauses.append("graph_name = ?")
        params.append(query.graph_name)
    if query.current_node is not None:
        clauses.append("current_node = ?")
        params.append(query.current_node)
    if query.interrupt_types:
        clauses.append(f"interrupt_type IN ({', '.join('?' * len(query.interrupt_types))})")
        params.extend(t.value for t in query.interrupt_types)
    if query.since is not None:
        clauses.append("created_at >= ?")
        params.append(query.since.utc_text())
    if query.until is not None:
        clauses.append("created_at < ?")
        params.append(query.until.utc_text())
    for condition in query.state:
        sql, values = spelling.state_condition(condition)
        clauses.append(sql)
        params.extend(values)
    if query.cursor is not None:
        utc_text, last_id = decode_cursor(query.cursor)
        clauses.append("(created_at, id) < (?, ?)")
        params.extend((utc_text, last_id))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def select_infos(spelling: Spelling, query: CheckpointQuery, *, limit: int | None) -> tuple[str, list[Any]]:
    where, params = where_clause(spelling, query)
    sql = f"SELECT {sqlrows.INFO_COLUMNS} FROM checkpoints{where} ORDER BY created_at DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def page_select(spelling: Spelling, query: CheckpointQuery) -> tuple[str, list[Any]]:
    """The statement of one `query()` page: one row more than the page, to know whether another follows."""
    return select_infos(spelling, query, limit=None if query.limit is None else query.limit + 1)


def page_of(rows: Sequence[tuple[Any, ...]], query: CheckpointQuery) -> CheckpointPage:
    """The page that `page_select`'s rows make (with a limit: the extra row says another follows)."""
    if query.limit is None:
        return CheckpointPage([sqlrows.info_from_row(r) for r in rows], None)
    infos: list[CheckpointInfo] = [sqlrows.info_from_row(r) for r in rows[: query.limit]]
    more = len(rows) > query.limit and bool(infos)
    return CheckpointPage(infos, encode_cursor(infos[-1]) if more else None)


def count_select(spelling: Spelling, query: CheckpointQuery | None) -> tuple[str, list[Any]]:
    where, params = where_clause(spelling, query or CheckpointQuery())
    return f"SELECT count(*) FROM checkpoints{where}", params


def loaded(found: Sequence[tuple[Any, ...]]) -> Checkpoint | None:
    """`LOAD`'s or `LATEST`'s rows decoded: the checkpoint, or None."""
    return sqlrows.from_row(found[0]) if found else None
