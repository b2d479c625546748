"""`ckptdb diff A B`: what changed in the state from checkpoint A to checkpoint B, on the terminal
(the web view's diff, ckptdb.diff, as lines)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ckptdb.cli.common import db_url, run

if TYPE_CHECKING:
    from ckptdb.diff import Change

SHORT = 200
"""Characters of a value on a line; `--json` gives them whole."""


@click.command("diff")
@click.argument("before_id", metavar="A")
@click.argument("after_id", metavar="B", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change, values whole.")
def diff_command(before_id: str, after_id: str | None, as_json: bool) -> None:
    """What changed in the state from checkpoint A to checkpoint B: added, removed and changed
    values at JSON-pointer paths, a message appended to a list as one change. Without B, from the
    checkpoint of the same graph before A to A."""

    async def main() -> None:
        from ckptdb import inspect
        from ckptdb.diff import diff, previous_checkpoint
        from ckptdb.inspect import NotFoundError

        async with await inspect.open_existing(db_url(), readonly=True) as store:
            if after_id is None:
                after = await inspect.get_checkpoint(store, before_id)
                found = await previous_checkpoint(store, after)
                if found is None:
                    raise NotFoundError(
                        f"checkpoint {before_id!r} is the first of its graph: give B to compare"
                    )
                before = found
            else:
                before = await inspect.get_checkpoint(store, before_id)
                after = await inspect.get_checkpoint(store, after_id)
        print_changes(diff(before.state_snapshot, after.state_snapshot), as_json)

    run(main())


def _json(value: object) -> str:
    import orjson

    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # an integer beyond 64 bits
        return repr(value)


def print_changes(changes: list[Change], as_json: bool) -> None:
    """One line per change (or one JSON object with `--json`), then the count."""

    from ckptdb.cli.output import one_line

    for change in changes:
        if as_json:
            record = {
                "kind": change.kind,
                "path": change.path,
                "before": change.before,
                "after": change.after,
            }
            click.echo(_json(record))
            continue

        def short(value: object) -> str:
            text = one_line(_json(value))
            return text if len(text) <= SHORT else text[:SHORT] + "…"

        path = one_line(change.path) or "(the whole state)"
        if change.kind == "changed":
            click.echo(f"changed  {path}: {short(change.before)} -> {short(change.after)}")
        elif change.kind == "added":
            click.echo(f"added    {path}: {short(change.after)}")
        else:
            click.echo(f"removed  {path}: {short(change.before)}")
    if not as_json:
        click.echo(f"{len(changes):,} change{'' if len(changes) == 1 else 's'}")
