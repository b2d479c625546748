"""What every command shares: the --db target, running the async library, turning errors into
one line and an exit status."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import click

DEFAULT_DB = "checkpoints.db"

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(slots=True)
class CliContext:
    db_url: str


def db_url() -> str:
    """The --db value of the running command."""
    ctx = click.get_current_context().find_object(CliContext)
    return ctx.db_url if ctx is not None else DEFAULT_DB


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run library code; its errors become `Error: <one line>` with exit status 1."""
    from ckptdb.errors import CkptdbError

    try:
        return asyncio.run(coro)
    except CkptdbError as exc:
        raise click.ClickException(str(exc)) from None


def library_errors(func: Callable[P, T]) -> Callable[P, T]:
    """For sync commands: turn ckptdb errors into click errors (one line, no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        from ckptdb.errors import CkptdbError

        try:
            return func(*args, **kwargs)
        except CkptdbError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper
