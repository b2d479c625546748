"""`ckptdb db ...`: schema migrations."""

from __future__ import annotations

import click

from ckptdb.cli.common import db_url, library_errors


@click.group()
def db() -> None:
    """Create or migrate the database schema (Alembic, run from inside ckptdb)."""


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
@click.option("--yes", is_flag=True, help="Do not ask before a downgrade that drops tables.")
@library_errors
def downgrade(revision: str, yes: bool) -> None:
    """Step the schema back to REVISION (default: one step; "base" drops every ckptdb table)."""
    from ckptdb import migrate

    target = migrate.parse_target(db_url())
    migrate.require_existing(target)
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
    revision = migrate.current(target)
    head = migrate.head()
    if revision == head:
        state = "up to date"
    elif revision is None:
        state = "not a ckptdb database yet: run `ckptdb db upgrade`"
    elif revision in migrate.KNOWN_REVISIONS:
        state = f"behind {head}: run `ckptdb db upgrade`"
    else:
        state = "unknown to this ckptdb (newer?): upgrade ckptdb"
    click.echo(f"{revision or 'none'} ({state})")
