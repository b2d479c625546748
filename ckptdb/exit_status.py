"""The exit statuses of every ckptdb command: one table, so `import`, `copy` and `export` mean the
same thing by the same number, and a script can test for it."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    """Everything asked for was done (or was already there, the same)."""
    ERROR = 1
    """An error stopped the command (an unusable database, a missing directory...): the line says what."""
    USAGE = 2
    """A mistyped option or argument, or an output path that would overwrite an input: nothing touched."""
    PROBLEMS = 3
    """It ran to the end, but some items were not moved as they are: invalid or damaged, in conflict
    (kept, or replaced: the report names them), refused by the destination, or counts that differ;
    `db check` found damage; `vacuum` rewrote the file but a reader kept the WAL from shrinking."""
    STOPPED = 4
    """Stopped on purpose before writing: `--strict` found invalid input, or `--on-conflict fail` met
    a conflict (earlier batches stay committed)."""
    INTERRUPTED = 130
    """Ctrl-C (SIGINT): what was committed stays; the line says what, and how to resume."""
