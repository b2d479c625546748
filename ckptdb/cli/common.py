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
    from ckptdb.cli.output import one_line
    from ckptdb.errors import CkptdbError

    try:
        return asyncio.run(coro)
    except CkptdbError as exc:
        raise click.ClickException(one_line(str(exc))) from None


def library_errors(func: Callable[P, T]) -> Callable[P, T]:
    """For sync commands: turn ckptdb errors into click errors (one line, no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        from ckptdb.cli.output import one_line
        from ckptdb.errors import CkptdbError

        try:
            return func(*args, **kwargs)
        except CkptdbError as exc:
            raise click.ClickException(one_line(str(exc))) from None

    return wrapper


TIME_FORMS = (
    "a date (2026-11-03), a date and time (2026-11-03T14:30:00Z; no zone means UTC) or an age (7d, 24h, 30m)"
)


def filter_options(func: Callable[P, T]) -> Callable[P, T]:
    """The checkpoint filters that `list` and `export` share (`ckptdb.inspect.build_query` reads
    them): --graph, --node, --type, --since, --until, --where."""
    options = (
        click.option("--graph", "-g", metavar="NAME", help="Only checkpoints of this graph."),
        click.option(
            "--node", "-n", metavar="NODE", help="Only checkpoints whose next node (current_node) is NODE."
        ),
        click.option(
            "--type",
            "-t",
            "types",
            multiple=True,
            metavar="TYPE",
            help="Only this interrupt type: beforenode, afternode, toolapproval or userrequest "
            "(repeat for any of several).",
        ),
        click.option("--since", metavar="TIME", help=f"Created at or after TIME: {TIME_FORMS}."),
        click.option("--until", metavar="TIME", help="Created before TIME (same forms as --since)."),
        click.option(
            "--where",
            "-w",
            "conditions",
            multiple=True,
            metavar="COND",
            help="A condition on the state snapshot, e.g. 'values.approved == false' or 'values.task "
            "exists' (operators == != < <= > >=; repeat: all must hold).",
        ),
    )
    for option in reversed(options):
        func = option(func)
    return func
