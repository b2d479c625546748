"""`ckptdb db ...`: schema migrations and the database check."""

from __future__ import annotations

import click

from ckptdb.cli.common import db_url, library_errors
from ckptdb.exit_status import ExitStatus


@click.group()
def db() -> None:
    """Create, migrate or check the database (migrations: Alembic, run from inside ckptdb)."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@library_errors
def upgrade(revision: str) -> None:
    """Create the database if needed and bring its schema up to date."""
    from ckptdb import migrate

    target = migrate.parse_target(db_url())
    before, after = migrate.upgrade(target, revision)
    if before == after:
        click.echo(f"{target.display()}: already at {after}")
    else:
        click.echo(f"{target.display()}: upgraded {before or 'empty'} -> {after}")


@db.command()
@click.argument("revision", default="-1")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before a downgrade that drops tables.")
@library_errors
def downgrade(revision: str, yes: bool) -> None:
    """Step the schema back to REVISION (default: one step; "base" drops every ckptdb table)."""
    from ckptdb import migrate

    target = migrate.parse_target(db_url())
    migrate.require_existing(target)
    migrate.check_target_revision(revision)
    before = migrate.current(target)
    if migrate.drops_data(before, revision) and not yes:
        click.confirm(
            f"Downgrading {target.display()} from {before} to {revision} deletes every checkpoint. Continue?",
            abort=True,
        )
    _, after = migrate.downgrade(target, revision)
    click.echo(f"{target.display()}: downgraded {before} -> {after or 'base'}")


@db.command()
@library_errors
def current() -> None:
    """Show the database's schema revision and whether it is up to date."""
    from ckptdb import migrate

    target = migrate.parse_target(db_url())
    migrate.require_existing(target)
    schema = migrate.schema_state(target)  # read-only: changes nothing in the database
    revision = schema.revision
    head = migrate.head()
    if revision is None and schema.checkpoints_table:
        migrate.check_schema(schema, target.display())  # another tool's table: an error
    if revision == head:
        state = "up to date"
    elif revision is None and schema.version_table:
        state = "the schema was downgraded to base: run `ckptdb db upgrade`"
    elif revision is None:
        state = "not a ckptdb database yet: run `ckptdb db upgrade`"
    elif revision in migrate.KNOWN_REVISIONS:
        state = f"behind {head}: run `ckptdb db upgrade`"
    else:
        state = "unknown to this ckptdb (newer?): upgrade ckptdb"
    click.echo(f"{revision or 'none'} ({state})")


CHECK_HELP = f"""Check the database: the engine's own consistency check, then every row read back.

Lists every checkpoint that cannot be read (a damaged file, or a hand edit in SQL), where
loading or exporting would stop at the first. Exit status {ExitStatus.OK:d} when all is well,
{ExitStatus.PROBLEMS:d} when problems were found, {ExitStatus.ERROR:d} when the check could not run.
"""


@db.command(help=CHECK_HELP)
@click.option("--quick", is_flag=True, help="SQLite: PRAGMA quick_check (skips index contents; faster).")
@click.pass_context
def check(ctx: click.Context, quick: bool) -> None:
    from ckptdb.check import check_database
    from ckptdb.cli.common import run

    report = run(check_database(db_url(), quick=quick))
    click.echo(f"database     {report.database} (schema {report.revision}, up to date)")
    if report.engine_problems:
        for problem in report.engine_problems:
            for line in problem.splitlines():
                click.echo(f"engine       {line}")
    elif report.engine.ran:
        click.echo(f"engine       ok ({report.engine.method})")
    else:
        click.echo(f"engine       {report.engine.method}")
    for row in report.damaged:
        click.echo(f"damaged      {row.checkpoint_id}: {row.reason}")
    if report.damaged_count > len(report.damaged):
        click.echo(f"damaged      ... and {report.damaged_count - len(report.damaged):,} more")
    readable, damaged = report.checkpoints - report.damaged_count, report.damaged_count
    counted = f"{report.checkpoints:,}" + ("" if report.read_all else " read before the damage")
    click.echo(f"checkpoints  {counted}: {readable:,} readable, {damaged:,} damaged")
    for problem in report.langgraph_problems:
        click.echo(f"langgraph    {problem}")
    if report.langgraph_checkpoints or report.langgraph_problem_count:
        click.echo(
            f"langgraph    {report.langgraph_checkpoints:,} checkpoints of LangGraph's saver, "
            f"{report.langgraph_problem_count:,} with missing values"
        )
    for problem in report.thread_problems:
        click.echo(f"langgraph    {problem}")
    if report.thread_problem_count > len(report.thread_problems):
        click.echo(
            f"langgraph    ... and {report.thread_problem_count - len(report.thread_problems):,} more threads"
        )
    warning = None if report.wal is None else report.wal.warning()
    if warning is not None:
        click.echo(f"wal          {warning}")
    if report.engine_problems:
        click.echo(f"the database file is damaged: {report.engine.remedy}", err=True)
    elif report.damaged_count:
        click.echo("damaged rows: delete one (`ckptdb rm ID`), fix it in SQL, or restore a backup", err=True)
    elif report.langgraph_problem_count:
        click.echo(
            "LangGraph checkpoints with missing values: delete their thread, or restore a backup", err=True
        )
    if report.thread_problem_count:
        click.echo(
            "the LangGraph thread table disagrees with the checkpoints: run `ckptdb langgraph "
            "rebuild-threads` (it makes the table again from them)",
            err=True,
        )
    if not report.ok:
        ctx.exit(ExitStatus.PROBLEMS)
