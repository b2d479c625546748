"""`ckptdb langgraph ...`: a database written by LangGraph's own savers (an SQLite file of
`langgraph-checkpoint-sqlite`, a `postgresql://` URL of `langgraph-checkpoint-postgres`), looked at
without writing a byte to it: its threads, one thread's history, one checkpoint decoded, and what
changed between two checkpoints. SOURCE is read-only and never the `--db` database. `import`
copies SOURCE into the `--db` database's LangGraph tables, for `ckptdb.langgraph.AsyncCkptdbSaver`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import click

from ckptdb.cli.common import db_url, exit_statuses, run, tolerate_unencodable_output
from ckptdb.cli.options import batch_size_option, quiet_option, report_option
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


SOURCE_OPTION = click.option(
    "--source",
    "-s",
    metavar="SOURCE",
    default=None,
    help="A database of LangGraph's own saver (SQLite file or postgresql:// URL), read-only; "
    "default: ckptdb's LangGraph tables in --db.",
)
STORED_THREAD_COLUMNS = (*THREAD_COLUMNS[:5], Column("updated"), THREAD_COLUMNS[5])


@click.group("langgraph")
def langgraph() -> None:
    """LangGraph checkpoints: ckptdb's own (the --db database, written by ckptdb's saver) or, with
    --source, a database of LangGraph's SQLite or PostgreSQL saver, read-only.

    Any schema the official savers have shipped is read; anything else is refused in one line.
    `show` and `diff` decode values with LangGraph's serde (pip install 'ckptdb[langgraph]'),
    with the strict allowlist: nothing is unpickled or executed. `import` copies a source into
    --db; `prune` and `delete` change --db only, never a source.
    """


@langgraph.command("threads")
@SOURCE_OPTION
@click.option(
    "--limit", "-l", type=click.IntRange(min=1), default=None, help="At most this many, by thread id."
)
@format_option()
def threads(source: str | None, limit: int | None, fmt: str | None) -> None:
    """List the threads (each checkpoint namespace apart): how many checkpoints, the newest one's
    step and id (and, in --db, its time; metadata in JSON and CSV)."""

    async def main() -> None:
        from contextlib import aclosing

        if source is None:
            from ckptdb import langgraph_inspect as li

            store = await li.open_stored(db_url(), readonly=True)
            try:
                async with aclosing(li.thread_pages(store, limit)) as pages:
                    with row_writer(fmt, STORED_THREAD_COLUMNS) as out:
                        async for found in pages:
                            for stored in found:
                                t = stored.summary
                                out.write(
                                    (
                                        t.thread_id,
                                        t.checkpoint_ns,
                                        t.count,
                                        t.step,
                                        t.newest_checkpoint_id,
                                        stored.updated,
                                        t.metadata,
                                    )
                                )
            finally:
                await store.close()
            return

        from ckptdb.langgraph_source import open_langgraph_source

        async with open_langgraph_source(source) as opened, aclosing(opened.threads()) as listed:
            with row_writer(fmt, THREAD_COLUMNS) as out:
                shown = 0
                async for t in listed:
                    if limit is not None and shown >= limit:
                        break
                    shown += 1
                    out.write(
                        (t.thread_id, t.checkpoint_ns, t.count, t.step, t.newest_checkpoint_id, t.metadata)
                    )

    with stdout_guard():
        run(main())


def _history_row(checkpoint_id: str, parent: str | None, metadata: Any, writes: int) -> tuple[Any, ...]:
    fields: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
    step = fields.get("step")
    return (
        checkpoint_id,
        parent,
        step if isinstance(step, int) else None,
        fields.get("source"),
        writes,
        metadata,
    )


@langgraph.command("history")
@click.argument("thread")
@SOURCE_OPTION
@NS_OPTION
@click.option(
    "--limit", "-l", type=click.IntRange(min=1), default=None, help="At most this many, newest first."
)
@format_option()
def history(source: str | None, thread: str, checkpoint_ns: str, limit: int | None, fmt: str | None) -> None:
    """List the checkpoints of THREAD, newest first (LangGraph's own order)."""

    async def main() -> None:
        from contextlib import aclosing

        if source is None:
            from ckptdb import langgraph_inspect as li

            store = await li.open_stored(db_url(), readonly=True)
            try:
                async with aclosing(li.history(store, thread, checkpoint_ns)) as rows:
                    with row_writer(fmt, HISTORY_COLUMNS) as out:
                        shown = 0
                        async for row in rows:
                            if limit is not None and shown >= limit:
                                break
                            out.write(
                                _history_row(
                                    row.checkpoint_id, row.parent_checkpoint_id, row.metadata, row.writes
                                )
                            )
                            shown += 1
            finally:
                await store.close()
            return

        from ckptdb.langgraph_source import open_langgraph_source, parse_metadata

        async with open_langgraph_source(source) as opened:
            await opened.require(thread, checkpoint_ns)
            async with aclosing(opened.history(thread, checkpoint_ns)) as found:
                with row_writer(fmt, HISTORY_COLUMNS) as out:
                    shown = 0
                    async for record in found:
                        if limit is not None and shown >= limit:
                            break
                        out.write(
                            _history_row(
                                record.checkpoint_id,
                                record.parent_checkpoint_id,
                                parse_metadata(record.metadata),
                                len(record.writes),
                            )
                        )
                        shown += 1

    with stdout_guard():
        run(main())


@langgraph.command("show")
@click.argument("thread")
@click.argument("checkpoint_id", metavar="[CHECKPOINT]", required=False)
@SOURCE_OPTION
@NS_OPTION
def show(source: str | None, thread: str, checkpoint_id: str | None, checkpoint_ns: str) -> None:
    """Print one checkpoint of THREAD (the newest without CHECKPOINT) as JSON: metadata, the
    checkpoint's fields, every channel value and the pending writes, decoded."""

    async def main() -> None:
        import orjson

        from ckptdb.langgraph_decode import decode_checkpoint, strict_serde

        serde = strict_serde()  # before opening: a missing extra is said first
        if source is None:
            from ckptdb import langgraph_inspect as li

            store = await li.open_stored(db_url(), readonly=True)
            try:
                shown = await li.show(store, thread, checkpoint_ns, checkpoint_id)
            finally:
                await store.close()
        else:
            from ckptdb.langgraph_source import open_langgraph_source

            async with open_langgraph_source(source) as opened:
                record = await opened.require(thread, checkpoint_ns, checkpoint_id)
            shown = decode_checkpoint(record, serde)
        click.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())

    with stdout_guard():
        run(main())


@langgraph.command("diff")
@click.argument("thread")
@click.argument("before_id", metavar="A")
@click.argument("after_id", metavar="B", required=False)
@SOURCE_OPTION
@NS_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change, values whole.")
def diff(
    source: str | None, thread: str, before_id: str, after_id: str | None, checkpoint_ns: str, as_json: bool
) -> None:
    """What changed in the channel values of THREAD from checkpoint A to checkpoint B, at
    JSON-pointer paths (a message appended is one change). Without B, from A's parent to A."""

    async def main() -> None:
        from ckptdb.cli.diff import print_changes
        from ckptdb.langgraph_decode import diff_checkpoints, strict_serde
        from ckptdb.langgraph_source import CheckpointNotFoundError, open_langgraph_source

        serde = strict_serde()
        if source is None:
            from ckptdb import langgraph_inspect as li

            store = await li.open_stored(db_url(), readonly=True)
            try:
                changes = await li.diff_stored(store, thread, before_id, after_id, checkpoint_ns)
            finally:
                await store.close()
            print_changes(changes, as_json)
            return
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


@langgraph.command("prune")
@click.option(
    "--keep-last",
    type=click.IntRange(min=1),
    metavar="N",
    required=True,
    help="Keep the N newest checkpoints of each thread (and namespace); older ones go.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def prune(keep_last: int, dry_run: bool, yes: bool) -> None:
    """Delete old LangGraph checkpoints of the database: all but the newest N of each thread,
    with their pending writes and the values no kept checkpoint needs.

    Shows what it will delete and asks first (unless --yes); one short transaction per thread.
    """

    async def main() -> None:
        from ckptdb import langgraph_inspect as li

        store = await li.open_stored(db_url(), readonly=False)
        try:
            plan = await li.plan_prune(store, keep_last)
            rows = [(t, ns, n, d, n - d) for t, ns, n, d in plan.threads]
            columns = (
                Column("thread_id"),
                Column("checkpoint_ns"),
                Column("checkpoints", "number"),
                Column("delete", "number"),
                Column("keep", "number"),
            )
            if not plan.delete:
                click.echo(f"nothing to delete ({plan.checkpoints:,} checkpoints considered)")
                return
            with row_writer("table", columns) as out:
                for row in rows:
                    out.write(row)
            count = len({t[0] for t in plan.threads})
            threads_text = f"{count:,} {plural(count, 'thread')}"
            summary = f"{plan.delete:,} of {plan.checkpoints:,} checkpoints in {threads_text}"
            if dry_run:
                click.echo(f"would delete {summary}; nothing was changed (--dry-run)")
                return
            if not yes:
                click.confirm(f"Delete {summary}?", abort=True)
            with Progress.for_command() as bar:
                deleted, values = await li.execute_prune(store, plan, bar.counter("deleting", plan.delete))
        finally:
            await store.close()
        click.echo(
            f"deleted {deleted:,} {plural(deleted, 'checkpoint')} "
            f"and {values:,} unused {plural(values, 'value')}"
        )

    run(main())


@langgraph.command("delete")
@click.argument("thread")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(thread: str, yes: bool) -> None:
    """Delete THREAD from the database: every checkpoint of it (all namespaces), its values and
    pending writes, in one transaction (as the saver's delete_thread)."""

    async def main() -> None:
        from ckptdb import langgraph_inspect as li

        store = await li.open_stored(db_url(), readonly=False)
        try:
            if not yes:
                click.confirm(f"Delete LangGraph thread {thread!r} and every checkpoint of it?", abort=True)
            deleted = await li.delete_thread(store, thread)
        finally:
            await store.close()
        click.echo(f"deleted thread {thread!r}: {deleted:,} {plural(deleted, 'checkpoint')}")

    run(main())


@langgraph.command("rebuild-threads")
def rebuild_threads() -> None:
    """Make the database's LangGraph thread table (what `threads` lists) again from the
    checkpoints, in one transaction: the remedy when `ckptdb db check` says it disagrees with them.
    Stop the processes writing LangGraph checkpoints first (on PostgreSQL a delete or prune
    running meanwhile can leave its thread counted too high; `db check` would say so)."""

    async def main() -> None:
        from ckptdb import langgraph_inspect as li

        store = await li.open_stored(db_url(), readonly=False)
        try:
            count = await li.rebuild_threads(store)
        finally:
            await store.close()
        click.echo(f"rebuilt the thread table: {count:,} {plural(count, 'thread')} and namespaces")

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
@report_option(
    "Write every checkpoint's outcome to this JSON file, at the end (never the database or SOURCE).",
    writable=True,
)
@quiet_option("No progress bar and no per-checkpoint lines; only the summary.")
@click.pass_context
def import_command(
    ctx: click.Context, source: str, dry_run: bool, batch_size: int, report_path: Path | None, quiet: bool
) -> None:
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
            run_langgraph_import(
                db_url(),
                source,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=partial(bar.phase, unit="checkpoints"),
                report_path=report_path,
            )
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
