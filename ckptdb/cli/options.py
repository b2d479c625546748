"""The options several commands share, each spelled once: the checkpoint filters of `list` and
`export`, and --on-conflict, --batch-size, --report and --quiet of `import`, `export` and `copy`.
The help text of --batch-size, --report and --quiet says what the unit or the silence means for
that command, so each command passes its own; the name, the short form and the type are here.
(`--format/-f` is `format_option` in cli/output.py, next to the formats it offers.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

ON_CONFLICT = ("skip", "replace", "fail")


def on_conflict_option(help: str) -> Callable[[F], F]:
    """--on-conflict skip|replace|fail (default skip): what to do with the same id holding
    different content."""
    return click.option(
        "--on-conflict", type=click.Choice(ON_CONFLICT), default="skip", show_default=True, help=help
    )


def batch_size_option(*, default: int, most: int, help: str) -> Callable[[F], F]:
    """--batch-size N, from 1 to `most`."""
    return click.option(
        "--batch-size", type=click.IntRange(1, most), default=default, show_default=True, help=help
    )


def report_option(help: str, *, writable: bool = False) -> Callable[[F], F]:
    """--report FILE (the `report_path` parameter, a Path): the outcome as JSON, written at the end.
    `writable` has click refuse an existing file it may not write (import's report is written in
    place; copy's replaces the file by a rename, which needs only the directory)."""
    kind = click.Path(dir_okay=False, writable=writable, path_type=Path)
    return click.option("--report", "report_path", type=kind, help=help)


def quiet_option(help: str) -> Callable[[F], F]:
    """-q/--quiet: no progress bar (and less output; the help says what stays)."""
    return click.option("-q", "--quiet", is_flag=True, help=help)


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
            "exists' (operators == != < <= > >=; repeat: all must hold). Quote keys holding dots, "
            "spaces or operators as JSON strings: 'values.\"a.b\" == 1', 'values[\"first name\"] exists'.",
        ),
    )
    for option in reversed(options):
        func = option(func)
    return func
