"""`ckptdb list/show/latest/graphs/stats/pending/rm/prune/vacuum/sql`: finding, reading and pruning
checkpoints. Thin: each command parses its options, calls ckptdb.inspect, and writes the result.

The library is imported inside the commands, so `ckptdb list` starts without SQLAlchemy or Alembic.
None of these commands creates a database: a missing one is an error that says so.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import click

from ckptdb.cli.common import db_url, run, warn_damaged
from ckptdb.cli.options import filter_options
from ckptdb.cli.output import (
    Column,
    Estimate,
    format_option,
    human_bytes,
    plural,
    resolve_format,
    row_writer,
    stdout_guard,
    write_rows,
)
from ckptdb.cli.progress import Progress
from ckptdb.exit_status import ExitStatus

if TYPE_CHECKING:
    from ckptdb.inspect import PrunePlan, Stats
    from ckptdb.model import Checkpoint

LIST_COLUMNS = (
    Column("id"),
    Column("graph_name"),
    Column("current_node"),
    Column("interrupt_type"),
    Column("step_count", "number"),
    Column("created_at"),
)
GRAPH_COLUMNS = (
    Column("graph_name"),
    Column("checkpoints", "number"),
    Column("newest"),
    Column("bytes", "bytes"),
    Column("bytes_estimated", in_table=False),
)
PENDING_COLUMNS = (
    Column("graph_name"),
    Column("id"),
    Column("interrupt_type"),
    Column("current_node"),
    Column("step_count", "number"),
    Column("created_at"),
    Column("pending_action", "json"),
)
TYPE_NAMES = ("beforenode", "afternode", "toolapproval", "userrequest")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {plural(count, noun)}"


# -- list ----------------------------------------------------------------------------------------


@click.command("list")
@filter_options
@click.option(
    "--limit",
    "-l",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="At most N checkpoints (default: all).",
)
@format_option()
def list_command(
    graph: str | None,
    node: str | None,
    types: tuple[str, ...],
    since: str | None,
    until: str | None,
    conditions: tuple[str, ...],
    limit: int | None,
    fmt: str | None,
) -> None:
    """List checkpoints, newest first, filtered by graph, node, type, time and state values.

    Streams: any number of rows in constant memory.
    """

    async def main() -> None:
        from ckptdb import inspect

        query = inspect.build_query(
            graph=graph, node=node, types=types, since=since, until=until, where=conditions, limit=limit
        )
        async with (
            await inspect.open_existing(db_url(), readonly=True) as store,
            aclosing(inspect.list_records(store, query, on_damaged=warn_damaged)) as records,
        ):
            with row_writer(fmt, LIST_COLUMNS) as out:
                async for record in records:
                    out.write(record)

    with stdout_guard():
        run(main())


# -- show / latest -------------------------------------------------------------------------------

FIELD_HELP = (
    "Print only this value: a path like pending_action.function.name, path[0], or one inside the "
    "state (values.approved). Strings print raw, anything else as JSON."
)


def _print_checkpoint(checkpoint: Checkpoint, field: str | None) -> None:
    from ckptdb import inspect
    from ckptdb.echo_json import write_pretty_value

    if field is None:
        # Redirected, this is byte for byte the echo file (which has no final newline); on a
        # terminal a newline keeps the prompt off the closing brace.
        click.echo(checkpoint.to_json(), nl=sys.stdout.isatty())
        return
    value = inspect.field_value(checkpoint, field)
    if isinstance(value, str):
        click.echo(value)
        return
    out: list[str] = []
    write_pretty_value(value, "", out)
    click.echo("".join(out))


@click.command()
@click.argument("checkpoint_id", metavar="ID")
@click.option("--field", "field", metavar="PATH", help=FIELD_HELP)
def show(checkpoint_id: str, field: str | None) -> None:
    """Print checkpoint ID as its echo JSON file (byte for byte what echo would write)."""

    async def main() -> None:
        from ckptdb import inspect

        async with await inspect.open_existing(db_url(), readonly=True) as store:
            _print_checkpoint(await inspect.get_checkpoint(store, checkpoint_id), field)

    run(main())


@click.command()
@click.argument("graph")
@click.option("--field", "field", metavar="PATH", help=FIELD_HELP)
def latest(graph: str, field: str | None) -> None:
    """Print the newest checkpoint of GRAPH (the one a resume starts from) as echo JSON."""

    async def main() -> None:
        from ckptdb import inspect

        async with await inspect.open_existing(db_url(), readonly=True) as store:
            _print_checkpoint(await inspect.latest_checkpoint(store, graph), field)

    run(main())


# -- graphs / stats / pending --------------------------------------------------------------------


@click.command()
@click.option(
    "--exact", is_flag=True, help="Sum every checkpoint's bytes even on a big database (reads every row)."
)
@format_option()
def graphs(exact: bool, fmt: str | None) -> None:
    """List graphs: how many checkpoints each has, the newest one's time, and the bytes of its JSON.

    Above 250,000 checkpoints the sizes of big graphs are estimated from a sample spread over
    their time range (shown as ~ in the table, bytes_estimated in JSON); --exact reads every row.
    """

    async def main() -> None:
        from ckptdb import inspect

        async with await inspect.open_existing(db_url(), readonly=True) as store:
            found = await inspect.graphs(store, exact=exact or None, on_damaged=warn_damaged)
        rows = [
            (
                g.graph_name,
                g.checkpoints,
                None if g.newest is None else g.newest.isoformat(),
                g.data_bytes if g.data_bytes_exact else Estimate(g.data_bytes),
                not g.data_bytes_exact,
            )
            for g in found
        ]
        with stdout_guard():
            write_rows(fmt, GRAPH_COLUMNS, rows)

    run(main())


def _stats_document(found: Stats) -> dict[str, Any]:
    def times(g: Any) -> dict[str, Any]:
        return {
            "oldest": None if g.oldest is None else g.oldest.isoformat(),
            "newest": None if g.newest is None else g.newest.isoformat(),
        }

    wal = found.wal
    return {
        "database": found.database,
        "database_bytes": found.database_bytes,
        "free_bytes": found.free_bytes,
        "wal": None if wal is None else {"bytes": wal.wal_bytes, "checkpoints_starved": wal.blocked},
        "checkpoints": found.total.checkpoints,
        "graphs": len(found.by_graph),
        **times(found.total),
        "by_interrupt_type": {kind.value: count for kind, count in found.total.by_type.items()},
        "by_graph": [
            {
                "graph_name": g.graph_name,
                "checkpoints": g.checkpoints,
                **{kind.value: count for kind, count in g.by_type.items()},
                **times(g),
            }
            for g in found.by_graph
        ],
    }


def _print_stats_table(found: Stats) -> None:
    total = found.total
    size = "unknown" if found.database_bytes is None else human_bytes(found.database_bytes)
    if found.free_bytes:
        size += f" ({human_bytes(found.free_bytes)} free inside it: `ckptdb vacuum` gives that back)"
    click.echo(f"database     {found.database}")
    click.echo(f"size         {size}")
    warning = None if found.wal is None else found.wal.warning()
    if warning is not None:  # only then: a healthy WAL is part of the size above
        click.echo(f"wal          {warning}")
    click.echo(f"checkpoints  {total.checkpoints:,} in {_plural(len(found.by_graph), 'graph')}")
    click.echo(f"oldest       {'-' if total.oldest is None else total.oldest.isoformat()}")
    click.echo(f"newest       {'-' if total.newest is None else total.newest.isoformat()}")
    if not found.by_graph:
        return
    click.echo()
    columns = [Column("graph_name"), Column("checkpoints", "number")]
    columns += [Column(name, "number") for name in TYPE_NAMES] + [Column("newest")]
    rows: list[Sequence[Any]] = [
        (g.graph_name, g.checkpoints, *g.by_type.values(), g.newest.isoformat() if g.newest else None)
        for g in [*found.by_graph, total]
    ]
    rows[-1] = ("(all graphs)", *rows[-1][1:])
    write_rows("table", columns, rows)


@click.command()
@format_option("table", "json")
def stats(fmt: str | None) -> None:
    """Totals: checkpoints by graph and interrupt type, oldest and newest, database size."""

    async def main() -> None:
        import json

        from ckptdb import inspect

        async with await inspect.open_existing(db_url(), readonly=True) as store:
            found = await inspect.stats(store, on_damaged=warn_damaged)
        with stdout_guard():
            if resolve_format(fmt, sys.stdout, ("table", "json")) == "json":
                click.echo(json.dumps(_stats_document(found), indent=2, ensure_ascii=False))
            else:
                _print_stats_table(found)

    run(main())


@click.command()
@format_option()
def pending(fmt: str | None) -> None:
    """Checkpoints waiting for a person: each graph's newest checkpoint when it is a toolapproval or a
    userrequest, with the pending action. Newest first."""

    async def main() -> None:
        from ckptdb import inspect

        async with await inspect.open_existing(db_url(), readonly=True) as store:
            found = await inspect.pending(store, on_damaged=warn_damaged)
        rows = [
            (
                cp.graph_name,
                cp.id,
                cp.interrupt_type.value,
                cp.current_node,
                cp.step_count,
                cp.created_at.isoformat(),
                cp.pending_action,
            )
            for cp in found
        ]
        with stdout_guard():
            write_rows(fmt, PENDING_COLUMNS, rows)

    run(main())


# -- rm / prune / vacuum ---------------------------------------------------------------------------


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--missing-ok", is_flag=True, help="Delete the ids that exist; no error for the others.")
def rm(ids: tuple[str, ...], missing_ok: bool) -> None:
    """Delete checkpoints by id, in one transaction. An unknown id deletes nothing (see --missing-ok)."""

    async def main() -> None:
        from ckptdb import inspect

        async with await inspect.open_existing(db_url()) as store:
            deleted = await inspect.remove(store, ids, missing_ok=missing_ok)
        click.echo(f"deleted {_plural(deleted, 'checkpoint')}")

    run(main())


def _print_plan(plan: PrunePlan) -> None:
    columns = (
        Column("graph_name"),
        Column("checkpoints", "number"),
        Column("delete", "number"),
        Column("keep", "number"),
        Column("bytes", "bytes"),
    )
    rows = [
        (g.graph_name, g.checkpoints, g.delete, g.checkpoints - g.delete, g.delete_bytes) for g in plan.graphs
    ]
    if rows:
        write_rows("table", columns, rows)


@click.command()
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    metavar="N",
    help="Keep the N newest checkpoints of each graph; older ones go.",
)
@click.option(
    "--older-than",
    metavar="AGE",
    help="Delete checkpoints older than AGE (30d, 12h) or created before a date (2026-11-01). "
    "With --keep-last, a checkpoint goes only if both say so.",
)
@click.option(
    "--graph", "-g", "graph_names", multiple=True, metavar="NAME", help="Only this graph (repeatable)."
)
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--vacuum",
    "then_vacuum",
    is_flag=True,
    help="Afterwards give the freed space back to the operating system (see `ckptdb vacuum`).",
)
def prune(
    keep_last: int | None,
    older_than: str | None,
    graph_names: tuple[str, ...],
    dry_run: bool,
    yes: bool,
    then_vacuum: bool,
) -> None:
    """Delete old checkpoints: all but the newest N of each graph, and/or those older than AGE.

    Shows what it will delete and asks first (unless --yes). Deletes in short transactions, so
    agents saving checkpoints meanwhile are not held up, and what they save is newer than every
    cut-off. SQLite reuses the freed pages for new checkpoints; the file shrinks only with
    --vacuum (or `ckptdb vacuum`).
    """

    async def main() -> None:
        from ckptdb import inspect

        cutoff = None if older_than is None else inspect.parse_time(older_than, what="--older-than")
        async with await inspect.open_existing(db_url()) as store:
            plan = await inspect.plan_prune(
                store, keep_last=keep_last, older_than=cutoff, graph_names=graph_names
            )
            _print_plan(plan)
            if plan.delete == 0:
                click.echo(f"nothing to delete ({plan.checkpoints:,} checkpoints considered)")
                if not then_vacuum or dry_run:
                    return
            else:
                graphs_text = _plural(len(plan.graphs), "graph")
                summary = (
                    f"{plan.delete:,} of {plan.checkpoints:,} checkpoints in {graphs_text} "
                    f"({human_bytes(plan.delete_bytes)} of checkpoint JSON)"
                )
                if dry_run:
                    click.echo(f"would delete {summary}; nothing was changed (--dry-run)")
                    return
                if not yes:
                    click.confirm(f"Delete {summary}?", abort=True)
            with Progress.for_command() as bar:
                result = await inspect.execute_prune(
                    store, plan, vacuum=then_vacuum, progress=bar.counter("deleting", plan.delete)
                )
        if plan.delete:
            click.echo(f"deleted {_plural(result.deleted, 'checkpoint')}")
        if result.vacuumed:
            sizes = f"{_size(result.size_before)} -> {_size(result.size_after)}"
            click.echo(f"vacuumed: {sizes} on disk{_wal_kept(result.wal_kept)}")
            if result.wal_kept is not None:
                click.get_current_context().exit(ExitStatus.PROBLEMS)
        elif result.free_bytes:
            click.echo(
                f"{human_bytes(result.free_bytes)} inside the database is now free and is reused by new "
                "checkpoints; `ckptdb vacuum` gives it back to the operating system"
            )

    run(main())


def _size(size: int | None) -> str:
    return "?" if size is None else human_bytes(size)


@click.command()
def vacuum() -> None:
    """Give the space freed by deletes back to the operating system (SQLite VACUUM).

    Rewrites the whole database: it needs about its size in free disk, and writers wait until it
    is done. Without it nothing is lost: SQLite reuses free pages for new checkpoints.
    """

    async def main() -> None:
        from ckptdb import inspect

        async with await inspect.open_existing(db_url()) as store:
            done = await inspect.vacuum(store)
        click.echo(f"vacuumed: {_size(done.before)} -> {_size(done.after)} on disk{_wal_kept(done.wal_kept)}")
        if done.wal_kept is not None:
            click.get_current_context().exit(ExitStatus.PROBLEMS)

    run(main())


def _wal_kept(size: int | None) -> str:
    if size is None:
        return ""
    return (
        f", but another connection's open read transaction kept the WAL at {human_bytes(size)}: it "
        "shrinks once that reader ends (run `ckptdb vacuum` again then)"
    )


# -- sql -------------------------------------------------------------------------------------------


@click.command()
@click.argument("query", metavar="SQL")
@format_option()
@click.pass_context
def sql(ctx: click.Context, query: str, fmt: str | None) -> None:
    """Run one read-only SQL query and print its rows, e.g.
    ckptdb sql "SELECT graph_name, count(*) FROM checkpoint_summary GROUP BY 1".

    The database enforces read-only (on SQLite: a read-only connection, query_only and an
    authorizer): INSERT, UPDATE, DELETE, DDL, ATTACH, writing PRAGMAs and several statements
    are refused and change nothing. Only functions without side effects may be called
    (aggregates, text, math, time, JSON); others (pg_terminate_backend, pg_read_file,
    load_extension...) are refused before the query runs. Ctrl-C stops a running query.
    """

    async def main() -> None:
        from ckptdb import inspect

        async with (
            await inspect.open_existing(db_url(), readonly=True) as store,
            aclosing(inspect.run_sql(store, query)) as rows,
        ):
            header = await anext(rows)
            if not header:
                return
            with row_writer(fmt, [Column(str(name), "auto") for name in header]) as out:
                async for row in rows:
                    out.write(row)

    try:
        with stdout_guard():
            run(main())
    except KeyboardInterrupt:
        # Ctrl-C cancelled the query (stopped on SQLite, cancelled by the server on PostgreSQL)
        # before the database connection was closed.
        click.echo("interrupted: the query was stopped; nothing was changed", err=True)
        ctx.exit(ExitStatus.INTERRUPTED)


COMMANDS = (list_command, show, latest, graphs, stats, pending, rm, prune, vacuum, sql)
