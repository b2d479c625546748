"""What every command shares: the --db target, running the async library, turning errors into
one line and an exit status, and what Ctrl-C does (the same for every command)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import IO, Any, ParamSpec, TypeVar

import click

from ckptdb.exit_status import ExitStatus

DEFAULT_DB = "checkpoints.db"

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(slots=True)
class CliContext:
    db_url: str


def exit_statuses(heading: str, meanings: Mapping[ExitStatus, str]) -> str:
    """The `Exit status` block of a command's help: each number comes from the one table
    (`ckptdb.exit_status.ExitStatus`), each meaning is the command's own; a meaning's further lines
    are indented under its first."""
    lines = ["\b", heading]
    for status, meaning in meanings.items():
        first, *more = meaning.splitlines()
        lines.append(f"  {int(status):<2} {first}")
        lines += [f"     {line}" for line in more]
    return "\n".join(lines) + "\n"


def db_url() -> str:
    """The --db value of the running command."""
    ctx = click.get_current_context().find_object(CliContext)
    return ctx.db_url if ctx is not None else DEFAULT_DB


class CommandError(click.ClickException):
    """`Error: <one line>` on stderr, exit status 1."""

    exit_code = ExitStatus.ERROR


class RefusedUsage(CommandError):
    """`Error: <one line>`, exit status 2: an argument that would make the command destroy an
    input (an output path naming the database or a source); nothing was touched."""

    exit_code = ExitStatus.USAGE


class Stopped(CommandError):
    """`Error: <one line>`, exit status 4: stopped on purpose before writing (`--on-conflict fail`)."""

    exit_code = ExitStatus.STOPPED


_BY_STATUS: dict[int, type[CommandError]] = {
    ExitStatus.USAGE: RefusedUsage,
    ExitStatus.STOPPED: Stopped,
}


def command_error(exc: Exception) -> CommandError:
    """The one translation of a ckptdb error into what the command prints and returns: the
    message, and the exit status the error carries (`CkptdbError.exit_status`)."""
    from ckptdb.cli.output import one_line  # user text in a message shows escaped, as in a table

    status = int(getattr(exc, "exit_status", ExitStatus.ERROR))
    return _BY_STATUS.get(status, CommandError)(one_line(str(exc)))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run library code; its errors become `Error: <one line>` with the error's exit status (1, or
    2 for an output path that would overwrite an input)."""
    from ckptdb.errors import CkptdbError

    try:
        return asyncio.run(coro)
    except CkptdbError as exc:
        raise command_error(exc) from None
    except OSError as exc:
        raise _out_of_resources(exc) from None


def warn_damaged(exc: Exception) -> None:
    """A damaged row a read command skips: one warning line on stderr, and the command goes on."""
    click.echo(f"warning: {exc}", err=True)


_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN)


def _out_of_resources(exc: OSError) -> BaseException:
    """The process ran out of file descriptors, memory or threads anywhere (a module import, a
    thread start, a socket): one line, for every command, instead of a traceback."""
    if exc.errno not in _RESOURCE_ERRNOS:
        return exc
    return click.ClickException(
        f"out of system resources ({exc.strerror}): raise the limit (ulimit -n for open files) or "
        "stop other programs, then run the command again"
    )


def library_errors(func: Callable[P, T]) -> Callable[P, T]:
    """For sync commands: turn ckptdb errors into click errors (one line, no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        from ckptdb.errors import CkptdbError

        try:
            return func(*args, **kwargs)
        except CkptdbError as exc:
            raise command_error(exc) from None
        except OSError as exc:
            raise _out_of_resources(exc) from None

    return wrapper


# ── Ctrl-C and the output's encoding: one behaviour for every command ────────────────────────────

INTERRUPT_NOTES = {
    "import": "the batches committed so far are kept; run the same command again",
    "export": "the files written so far are complete; run the same command again",
    "copy": "the batches copied so far are kept; run the same command again to finish",
    "prune": "the batches deleted so far stay deleted, the rest is untouched; run the same command again",
    "vacuum": "the database is as it was (a vacuum is all or nothing); run it again",
    "rm": "one transaction: every given checkpoint is deleted or none is; run it again with --missing-ok",
    "db upgrade": "the database stays at the last migration that finished; run it again",
    "db check": "nothing was changed (a check only reads); run it again",
}
"""What an interrupted command kept, and how to resume: `interrupted: <note>`, exit status 130."""

READ_ONLY_NOTE = "nothing was changed; run the command again"


class Interrupted(click.ClickException):
    """Ctrl-C: one line on stderr, exit status 130 (128 + SIGINT, what a shell reports)."""

    exit_code = ExitStatus.INTERRUPTED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"interrupted: {self.message}", err=True)


def _interrupted(exc: BaseException) -> bool:
    """A Ctrl-C, whether raised as such or turned by a click prompt into `Abort` (a declined
    question or an empty stdin also raise `Abort`: those stay click's `Aborted!`)."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    return isinstance(exc, click.exceptions.Abort) and isinstance(exc.__context__, KeyboardInterrupt)


def _interruptible(callback: Callable[..., Any], note: str) -> Callable[..., Any]:
    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except (KeyboardInterrupt, click.exceptions.Abort) as exc:
            if _interrupted(exc):
                raise Interrupted(note) from None
            raise

    wrapper.ckptdb_interruptible = True  # type: ignore[attr-defined]
    return wrapper


def _unencodable(exc: UnicodeEncodeError) -> CommandError:
    encoding = getattr(sys.stdout, "encoding", None) or exc.encoding
    return CommandError(
        f"the output holds characters that stdout's encoding ({encoding}) cannot write: run with "
        "PYTHONIOENCODING=utf-8 or a UTF-8 locale (LC_ALL=C.UTF-8)"
    )


class CkptdbGroup(click.Group):
    """The `ckptdb` group: every command added to it (and to its subgroups) gets the same Ctrl-C
    behaviour, `interrupted: <what was kept, how to resume>` and exit status 130, instead of
    click's `Aborted!` and 1; and output the terminal's encoding cannot write is one error line."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        self._make_interruptible(cmd, name or cmd.name or "")
        super().add_command(cmd, name)

    def _make_interruptible(self, cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for sub_name, sub in cmd.commands.items():
                self._make_interruptible(sub, f"{path} {sub_name}")
        if cmd.callback is not None and not getattr(cmd.callback, "ckptdb_interruptible", False):
            cmd.callback = _interruptible(cmd.callback, INTERRUPT_NOTES.get(path, READ_ONLY_NOTE))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.exceptions.Abort) as exc:
            if _interrupted(exc):  # outside any command's own work (parsing, start-up)
                raise Interrupted(READ_ONLY_NOTE) from None
            raise
        except UnicodeEncodeError as exc:
            raise _unencodable(exc) from None


def tolerate_unencodable_output() -> None:
    """For commands whose stdout is lines for a person (import, export, copy): a character the
    stream's encoding cannot write (a non-ASCII graph name or path under LC_ALL=C) is written as a
    backslash escape, so the command ends with its real exit status instead of dying mid-report."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        encoding = (getattr(stream, "encoding", "") or "").lower()
        if reconfigure is not None and encoding not in ("utf-8", "utf8"):
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")
