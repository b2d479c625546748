"""asyncpg's and the server's errors, each turned into one line that says what to do."""

from __future__ import annotations

import socket

from ckptdb.errors import (
    CkptdbError,
    InvalidCheckpointError,
    OutcomeUnknownError,
    StoreError,
    UnavailableError,
)
from ckptdb.sql.backend import (
    DatabaseTarget,
)
from ckptdb.sql.postgres.urls import database_and_user, server_address

_CLIENT_STATE_SIGNS = (
    "another operation is in progress",
    "cannot switch to state",
    "connection is closed",
    "connection was closed",
    "underlying connection is closed",
    "pool is closing",
)
"""What asyncpg's client-side errors (InterfaceError, InternalClientError) say when the real cause
was a connection that died under an operation: its protocol state machine is left mid-operation,
and whatever touches the connection next (the transaction's exit, the pool's reset) fails with one
of these instead of the server's reason."""


def _lost_connection(exc: BaseException) -> bool:
    if type(exc).__name__ in ("ConnectionDoesNotExistError", "ConnectionResetError", "BrokenPipeError"):
        return True
    if type(exc).__name__ in ("InterfaceError", "InternalClientError"):
        return any(sign in str(exc) for sign in _CLIENT_STATE_SIGNS)
    return getattr(exc, "sqlstate", None) in ("57P01", "57P02", "57P03", "08006", "08003")


def translate_error(exc: BaseException, target: DatabaseTarget) -> CkptdbError:
    """One line that says what went wrong and what to do; for asyncpg and psycopg errors alike."""
    if isinstance(exc, CkptdbError):
        return exc
    # The server's reason (a terminated session, a lost socket) came first; asyncpg's complaint
    # about the connection's state after it says nothing a person can act on.
    cause = exc.__context__
    client_side = type(exc).__name__ in ("InterfaceError", "InternalClientError")
    if client_side and cause is not None and (_lost_connection(cause) or isinstance(cause, OSError)):
        exc = cause
    where = target.display()
    address = server_address(target.url)
    host, port = address.rsplit(":", 1)
    user, database = database_and_user(target.url)
    state = getattr(exc, "sqlstate", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = str(exc).lower()
    if isinstance(exc, ConnectionRefusedError) or "connection refused" in lowered:
        return UnavailableError(
            f"cannot connect to PostgreSQL at {address} (connection refused): is the server running and "
            f"listening there? check with `pg_isready -h {host} -p {port}`"
        )
    if isinstance(exc, socket.gaierror) or "could not translate host name" in lowered:
        return UnavailableError(
            f"cannot resolve the PostgreSQL host in {where} ({text}): check the host name"
        )
    if isinstance(exc, TimeoutError) or "timeout expired" in lowered:
        return UnavailableError(
            f"timed out connecting to PostgreSQL at {address}: check the host, port and firewall"
        )
    refused = ("password authentication failed", "no password", "no pg_hba.conf entry")
    unknown_role = 'role "' in lowered and "does not exist" in lowered
    if state in ("28P01", "28000") or unknown_role or any(word in lowered for word in refused):
        return StoreError(
            f"PostgreSQL at {address} refused user {user} ({text}): check the user and password in the URL, "
            "PGPASSWORD or ~/.pgpass, and pg_hba.conf"
        )
    if state == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return StoreError(
            f"database {database} does not exist on {address}: create it first "
            f"(`createdb -h {host} -p {port} {database}`); ckptdb creates tables, not databases"
        )
    if state == "53100":
        return StoreError(
            f"{where}: the PostgreSQL server's disk is full ({text}); nothing of this write was saved"
        )
    if state == "53300":
        return UnavailableError(
            f"PostgreSQL at {address} has no free connection slots ({text}): lower pool_max_size or raise "
            "max_connections"
        )
    if state == "57P03":
        return UnavailableError(
            f"PostgreSQL at {address} is starting up or shutting down ({text}): retry shortly"
        )
    if state == "25006":
        return StoreError(f"{where} is read-only ({text}): a standby? connect to the primary")
    if state == "42501":
        return StoreError(f"{where}: permission denied ({text}): grant the user rights on ckptdb's tables")
    if state == "42P01":
        return StoreError(f"{where} has no ckptdb tables ({text}): run `ckptdb --db {where} db upgrade`")
    if state in ("55P03", "57014"):
        return StoreError(f"{where}: gave up waiting ({text}); nothing of this write was saved")
    if state == "54000" and "index row" in lowered:
        return InvalidCheckpointError(
            f"an id or graph_name is too long for PostgreSQL's indexes ({text}); nothing was written"
        )
    if state == "22P02" and "type json" in lowered:  # a damaged source row, moved as stored (copy)
        return InvalidCheckpointError(
            f"a JSON column's text is not valid JSON ({text}); nothing was written: "
            "`ckptdb db check` on the source lists such rows"
        )
    if state == "54001":
        return InvalidCheckpointError(f"JSON nested too deeply for PostgreSQL ({text}); nothing was written")
    if _lost_connection(exc):
        client_side = type(exc).__name__ in ("InterfaceError", "InternalClientError")
        # asyncpg's state-machine wording ("cannot switch to state 12") helps nobody
        why = " in the middle of an operation" if client_side else f" ({text})"
        return UnavailableError(
            f"lost the connection to PostgreSQL at {address}{why}: was "
            f"the server stopped or restarted? check with `pg_isready -h {host} -p {port}` and retry "
            "(an unfinished transaction was rolled back)"
        )
    if isinstance(exc, OSError):
        return UnavailableError(f"cannot reach PostgreSQL at {address} ({text}): check the server and retry")
    return StoreError(f"{where}: {text}")


_LOST_CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03"})


def _connection_lost(exc: BaseException) -> bool:
    """The server went away or cut us off (terminated, shut down, a reset socket): from the client
    no one can tell whether a COMMIT sent just before had been carried out."""
    state = getattr(exc, "sqlstate", None)
    if state in _LOST_CONNECTION_STATES or (isinstance(state, str) and state.startswith("08")):
        return True
    name = type(exc).__name__
    if name in ("ConnectionDoesNotExistError", "ConnectionResetError", "ConnectionFailureError"):
        return True
    if name == "InterfaceError" and "connection is closed" in str(exc):
        return True
    never_sent = (ConnectionRefusedError, socket.gaierror, TimeoutError)  # no connection: nothing was sent
    return isinstance(exc, OSError) and not isinstance(exc, never_sent)


def translate_write_error(exc: BaseException, target: DatabaseTarget) -> CkptdbError:
    """As `translate_error`, for a failed write: a connection lost during it leaves its outcome
    unknown (a backend terminated while its COMMIT waited for a synchronous standby had already
    committed locally), so say so rather than "retry"."""
    if isinstance(exc, CkptdbError) or not _connection_lost(exc):
        return translate_error(exc, target)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return OutcomeUnknownError(
        f"lost the connection to PostgreSQL at {server_address(target.url)} during a write ({text}): it "
        "may or may not be committed: load what it saved (or deleted) to find out before retrying"
    )
