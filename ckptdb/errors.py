"""The exceptions ckptdb raises: one base class, so callers can catch everything ckptdb means to say."""

from __future__ import annotations


class CkptdbError(Exception):
    """Base of every error ckptdb raises on purpose; its message is one line meant for a person."""

    exit_status: int = 1
    """The command's exit status when this error stops it (`ckptdb.exit_status.ExitStatus`)."""


class InvalidCheckpointError(CkptdbError, ValueError):
    """A document or value that is not a valid echo checkpoint.

    The message names the file (when known) and the field, and says what is wrong.
    """

    def __init__(self, reason: str, *, field: str | None = None, source: str | None = None):
        self.reason = reason
        self.field = field
        self.source = source
        where = f"field '{field}': " if field else ""
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{where}{reason}")


class InvalidIdError(CkptdbError, ValueError):
    """An id that cannot be used as a file name safely (path separators, '..', control characters)."""


class SchemaError(CkptdbError):
    """The database schema is not the one this ckptdb expects (behind, ahead, or not ckptdb's)."""


class StoreError(CkptdbError):
    """The database could not do what was asked (not a database, read-only, disk full, missing)."""


class OutcomeUnknownError(StoreError):
    """A write that failed during or after its commit (an I/O error syncing the disk, a connection
    lost while the server committed): it may or may not be stored, so read it back to find out
    before you write it again or give up on it."""


class UnavailableError(StoreError):
    """The database could not be reached or used just now, through no fault of its contents: the
    server is down, restarting or refusing connections, the connection was lost mid-operation, or
    this process ran out of file descriptors. Retrying later may succeed; nothing is damaged."""


class DamagedRowError(StoreError):
    """A stored row ckptdb did not write that way (a damaged file, or a hand edit in SQL): it
    cannot be read back as a checkpoint. `ckptdb db check` lists every such row."""

    def __init__(self, checkpoint_id: object, reason: str):
        self.checkpoint_id = checkpoint_id
        self.reason = reason
        super().__init__(
            f"checkpoint {checkpoint_id!r}: the stored row is damaged ({reason}); "
            "`ckptdb db check` lists every damaged row; fix or delete it, or restore a backup"
        )
