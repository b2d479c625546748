"""The `ckptdb` command: thin click commands over the library.

Command modules import the library inside their functions, so `ckptdb --help` and quick
read-only commands do not pay for SQLAlchemy or Alembic at start-up.
"""

from __future__ import annotations

import logging

import click

from ckptdb.cli.common import DEFAULT_DB, CkptdbGroup, CliContext
from ckptdb.cli.copy import copy as copy_command
from ckptdb.cli.db import db
from ckptdb.cli.diff import diff_command
from ckptdb.cli.inspect import COMMANDS as INSPECTION_COMMANDS
from ckptdb.cli.langgraph import langgraph
from ckptdb.cli.serve import serve
from ckptdb.cli.transfer import export_command, import_command


@click.group(
    cls=CkptdbGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--db",
    "db_url",
    envvar="CKPTDB_URL",
    default=DEFAULT_DB,
    show_default=True,
    metavar="PATH|URL",
    help="Database: an SQLite file path, sqlite:///path.db, or postgresql://... (env: CKPTDB_URL).",
)
@click.version_option(package_name="ckptdb")
@click.pass_context
def main(ctx: click.Context, db_url: str) -> None:
    """Checkpoint persistence for agent workflow graphs, in SQLite or PostgreSQL.

    Moves echo JSON-file checkpoint directories into a database, inspects and prunes them,
    and leaves them queryable with plain SQL.
    """
    ctx.obj = CliContext(db_url)
    # asyncpg's pool logs its own retries (a traceback through logging's last-resort handler) when
    # the server goes away; the command's one-line error already says what happened.
    logging.getLogger("asyncpg").addHandler(logging.NullHandler())


for command in (
    db,
    import_command,
    export_command,
    *INSPECTION_COMMANDS,
    copy_command,
    serve,
    diff_command,
    langgraph,
):
    main.add_command(command)
