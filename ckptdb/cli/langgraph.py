"""`ckptdb langgraph ...`: a database written by LangGraph's own savers (an SQLite file of
`langgraph-checkpoint-sqlite`, a `postgresql://` URL of `langgraph-checkpoint-postgres`), looked at
without writing a byte to it: its threads, one thread's history, one checkpoint decoded, and what
changed between two checkpoints. SOURCE is read-only and never the `--db` database. `import`
copies SOURCE into the `--db` database's LangGraph tables, for `ckptdb.langgraph.AsyncCkptdbSaver`.
"""

from __future__ import annotations

from typing import Any

import click

from ckptdb.cli.common import db_url, exit_statuses, run, tolerate_unencodable_output
from ckptdb.cli.options import batch_size_option, quiet_option
from ckptdb.cli.output import Column, format_option, plural, row_writer, stdout_guard
from ckptdb.cli.progress import Progress
from ckptdb.exit_status import ExitStatus

NS_OPTION = click.option(
    "--ns",
    "checkpoint_ns",
    default="",
    metavar="NS",
    help="The checkpoint namespace (a subgraph's, as `threads` lists it); default: the root graph's.",
)

THREAD_COLUMNS = (
    Column("thread_id"),
    Column("checkpoint_ns"),
    Column("checkpoints", "number"),
    Column("step", "number"),
    Column("newest_checkpoint_id"),
    Column("metadata", "json", in_table=False),
)
HISTORY_COLUMNS = (
    Column("checkpoint_id"),
    Column("parent_checkpoint_id"),
    Column("step", "number"),
    Column("source"),
    Column("writes", "number"),
    Column("metadata", "json", in_table=False),
)


@click.group("langgraph")
def langgraph() -> None:
    """Look at a LangGraph saver database (SQLite file or postgresql:// URL), read-only.

    Any schema the official savers have shipped is read; anything else is refused in one line.
    `show` and `diff` decode values with LangGraph's serde (pip install 'ckptdb[langgraph]'),
    with the strict allowlist: nothing is unpickled or executed.
    """


@langgraph.command("threads")
@click.argument("source")
@format_option()
def threads(source: str, fmt: str | None) -> None:
    """List the threads of SOURCE (each checkpoint namespace apart): how many checkpoints, the
    newest one's step and id (metadata in JSON and CSV)."""

    async def main() -> None:
        from contextlib import aclosing

        from ckptdb.langgraph_source import open_langgraph_source

        async with open_langgraph_source(source) as opened, aclosing(opened.threads()) as found:
            with row_writer(fmt, THREAD_COLUMNS) as out:
                async for t in found:
                    out.write(
                        (t.thread_id, t.checkpoint_ns, t.count, t.step, t.newest_checkpoint_id, t.metadata)
                    )

    with stdout_guard():
        run(main())


@langgraph.command("history")
@click.argument("source")
@click.argument("thread")
@NS_OPTION
@click.option(
    "--limit", "-l", type=click.IntRange(min=1), default=None, help="At most this many, newest first."
)
@format_option()
def history(source: str, thread: str, checkpoint_ns: str, limit: int | None, fmt: str | None) -> None:
    """List the checkpoints of THREAD in SOURCE, newest first (LangGraph's own order)."""

    async def main() -> None:
        from contextlib import aclosing

        from ckptdb.langgraph_source import open_langgraph_source, parse_metadata

        async with open_langgraph_source(source) as opened:
            await opened.require(thread, checkpoint_ns)
            async with aclosing(opened.history(thread, checkpoint_ns)) as found:
                with row_writer(fmt, HISTORY_COLUMNS) as out:
                    shown = 0
                    async for record in found:
                        if limit is not None and shown >= limit:
                            break
                        metadata = parse_metadata(record.metadata)
                        fields: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
                        step = fields.get("step")
                        out.write(
                            (
                                record.checkpoint_id,
                                record.parent_checkpoint_id,
                                step if isinstance(step, int) else None,
                                fields.get("source"),
                                len(record.writes),
                                metadata,
                            )
                        )
                        shown += 1

    with stdout_guard():
        run(main())


@langgraph.command("show")
@click.argument("source")
@click.argument("thread")
@click.argument("checkpoint_id", metavar="[CHECKPOINT]", required=False)
@NS_OPTION
def show(source: str, thread: str, checkpoint_id: str | None, checkpoint_ns: str) -> None:
    """Print one checkpoint of THREAD (the newest without CHECKPOINT) as JSON: metadata, the
    checkpoint's fields, every channel value and the pending writes, decoded."""

    async def main() -> None:
        import orjson

        from ckptdb.langgraph_decode import decode_checkpoint, strict_serde
        from ckptdb.langgraph_source import open_langgraph_source

        serde = strict_serde()  # before opening: a missing extra is said first
        async with open_langgraph_source(source) as opened:
            record = await opened.require(thread, checkpoint_ns, checkpoint_id)
        text = orjson.dumps(decode_checkpoint(record, serde), option=orjson.OPT_INDENT_2).decode()
        click.echo(text)

    with stdout_guard():
        run(main())


@langgraph.command("diff")
@click.argument("source")
@click.argument("thread")
@click.argument("before_id", metavar="A")
@click.argument("after_id", metavar="B", required=False)
@NS_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change, values whole.")
def diff(
    source: str, thread: str, before_id: str, after_id: str | None, checkpoint_ns: str, as_json: bool
) -> None:
    """What changed in the channel values of THREAD from checkpoint A to checkpoint B, at
    JSON-pointer paths (a message appended is one change). Without B, from A's parent to A."""

    async def main() -> None:
        from ckptdb.cli.diff import print_changes
        from ckptdb.langgraph_decode import diff_checkpoints, strict_serde
        from ckptdb.langgraph_source import CheckpointNotFoundError, open_langgraph_source

        serde = strict_serde()
        async with open_langgraph_source(source) as opened:
            first = await opened.require(thread, checkpoint_ns, before_id)
            if after_id is None:
                if first.parent_checkpoint_id is None:
                    raise CheckpointNotFoundError(
                        f"checkpoint {before_id!r} is the first of thread {thread!r}: give B to compare"
                    )
                before, after = await opened.require(thread, checkpoint_ns, first.parent_checkpoint_id), first
            else:
                before, after = first, await opened.require(thread, checkpoint_ns, after_id)
        print_changes(diff_checkpoints(before, after, serde), as_json)

    with stdout_guard():
        run(main())


PROBLEM_LINES = 20
IMPORT_EPILOG = exit_statuses(
    "Exit status:",
    {
        ExitStatus.OK: "every checkpoint was imported or unchanged",
        ExitStatus.ERROR: "error (SOURCE not a LangGraph saver database, --db unusable, ...): nothing more\n"
        "was done; the batches committed so far stay",
        ExitStatus.PROBLEMS: "some checkpoints were invalid or in conflict; every other one was imported",
        ExitStatus.INTERRUPTED: "interrupted: the batches committed so far stay; run the same command again",
    },
)


@langgraph.command("import", epilog=IMPORT_EPILOG)
@click.argument("source")
@click.option("-n", "--dry-run", is_flag=True, help="Write nothing; report what would happen.")
@batch_size_option(
    default=100,
    most=100_000,
    help="Checkpoints per transaction (a kill loses at most one batch; re-run to finish).",
)
@quiet_option("No progress bar and no per-checkpoint lines; only the summary.")
@click.pass_context
def import_command(ctx: click.Context, source: str, dry_run: bool, batch_size: int, quiet: bool) -> None:
    """Import SOURCE (written by LangGraph's SQLite or PostgreSQL saver) into the database, for
    ckptdb's LangGraph saver (AsyncCkptdbSaver, CkptdbSaver) to resume every thread.

    SOURCE is never changed. Values are copied as stored, never re-encoded. Safe to re-run:
    checkpoints already imported are "unchanged", so an interrupted import is finished by running
    it again. Needs pip install 'ckptdb[langgraph]'.
    """
    from ckptdb.langgraph_import import run_langgraph_import

    tolerate_unencodable_output()
    with Progress.for_command(quiet) as bar:
        report = run(
            run_langgraph_import(db_url(), source, dry_run=dry_run, batch_size=batch_size, progress=bar.phase)
        )
    if not quiet:
        for problem in report.problems[:PROBLEM_LINES]:
            click.echo(f"{problem.outcome.value:<9} {problem.where()}: {problem.reason}")
        more = len(report.problems) - PROBLEM_LINES + report.problems_omitted
        if more > 0:
            click.echo(f"... and {more} more")
    prefix = "dry run, nothing written: " if report.dry_run else ""
    counts = ", ".join(f"{count} {outcome.value}" for outcome, count in report.counts.items())
    total = f"{report.total} {plural(report.total, 'checkpoint')}"
    click.echo(f"{prefix}{total} from {report.source} ({report.schema}): {counts} ({report.elapsed:.1f} s)")
    ctx.exit(report.exit_status)
