"""`ckptdb copy`: every checkpoint from one database to another, either engine, idempotent, conflicts
reported and never silently overwritten, refused rows named, counts checked on both sides."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import pg_database_url

from ckptdb import Checkpoint, CkptdbError, StoreError, Timestamp, open_store
from ckptdb.cli import main
from ckptdb.copy import CopyConflictError, copy_checkpoints
from ckptdb.sql import rows as sqlrows

PAIRS = [
    pytest.param("sqlite", "sqlite", id="sqlite-sqlite"),
    pytest.param("sqlite", "postgres", id="sqlite-postgres", marks=pytest.mark.postgres),
    pytest.param("postgres", "sqlite", id="postgres-sqlite", marks=pytest.mark.postgres),
    pytest.param("postgres", "postgres", id="postgres-postgres", marks=pytest.mark.postgres),
]


def _target(kind: str, tmp_path: Path, name: str) -> str:
    return pg_database_url() if kind == "postgres" else str(tmp_path / f"{name}.db")


def _cp(i: int, **values: Any) -> Checkpoint:
    state = {"messages": [{"role": "user", "content": f"m{i}\x00"}], "values": {"i": i, **values}}
    return Checkpoint.new("g", f"n{i}", state, ["a", "b"], 2**64 - 1 if i % 7 == 0 else i, "toolapproval")


async def _fill(target: str, checkpoints: list[Checkpoint]) -> None:
    async with await open_store(target) as store:
        await store.save_many(checkpoints)


async def _dump(target: str) -> dict[str, str]:
    async with await open_store(target, create=False) as store:
        return {cp.id: cp.to_json() async for cp in store.iter_checkpoints()}


@pytest.mark.parametrize(("src_kind", "dst_kind"), PAIRS)
async def test_copy_moves_everything_and_a_rerun_copies_nothing(
    tmp_path: Path, src_kind: str, dst_kind: str
) -> None:
    src, dst = _target(src_kind, tmp_path, "src"), _target(dst_kind, tmp_path, "dst")
    checkpoints = [_cp(i) for i in range(40)]
    await _fill(src, checkpoints)
    totals: list[int] = []
    steps: list[int] = []
    report = await copy_checkpoints(src, dst, batch_size=7, total=totals.append, progress=steps.append)
    outcome = (report.read, report.copied, report.unchanged, report.conflicts, report.refused)
    assert outcome == (40, 40, 0, 0, 0)
    assert (report.source_after, report.destination_before, report.destination_after) == (40, 0, 40)
    assert report.complete and report.counts_match
    assert totals == [40] and sum(steps) == 40 and max(steps) == 7
    assert await _dump(dst) == {cp.id: cp.to_json() for cp in checkpoints}

    again = await copy_checkpoints(src, dst)
    assert (again.copied, again.unchanged, again.destination_after, again.complete) == (0, 40, 40, True)


async def _save_order(target: str, graph: str) -> list[str]:
    """The graph's ids from the last saved back, as `latest` and `prune --keep-last` see them."""
    async with await open_store(target, create=False) as store:
        found = await store.backend.fetchall(
            f"SELECT id FROM checkpoints WHERE graph_name = ? ORDER BY {sqlrows.ORDER_NEWEST_FIRST}", [graph]
        )
    return [row[0] for row in found]


@pytest.mark.parametrize(("src_kind", "dst_kind"), PAIRS)
async def test_copy_keeps_the_relative_save_order(tmp_path: Path, src_kind: str, dst_kind: str) -> None:
    """Saved out of time order (a host clock ran fast, equal instants, a re-save), the copies keep
    the source's save order in the destination, after the rows it already had."""
    src, dst = _target(src_kind, tmp_path, "src"), _target(dst_kind, tmp_path, "dst")
    base = Timestamp.parse("2026-11-03T09:00:00Z").unix_nanos
    saves = [("s1", 3600), ("s2", 1), ("s3", 2), ("t-b", 5), ("t-a", 5), ("s0", 0), ("s2", 1)]

    def make(cid: str, seconds: int) -> Checkpoint:
        return Checkpoint(
            cid, "run", "n", {}, [], 0, Timestamp(base + seconds * 10**9), None, "afternode", {}
        )

    async with await open_store(src) as store:
        for cid, seconds in saves:
            await store.save(make(cid, seconds))
    async with await open_store(dst) as store:
        await store.save(make("already-there", 7200))
    expected = ["s2", "s0", "t-a", "t-b", "s3", "s1"]
    assert await _save_order(src, "run") == expected
    await copy_checkpoints(src, dst, batch_size=4)
    assert await _save_order(dst, "run") == [*expected, "already-there"]
    async with await open_store(dst, create=False) as store:
        latest = await store.latest("run")
    assert latest is not None and latest.id == "s2"


async def test_conflicts_are_kept_and_reported_by_default(tmp_path: Path) -> None:
    src, dst = str(tmp_path / "src.db"), str(tmp_path / "dst.db")
    shared = [_cp(i) for i in range(5)]
    await _fill(src, [*shared, _cp(99)])
    changed = Checkpoint.from_json(shared[0].to_json())
    changed.state_snapshot["values"]["i"] = "edited in the destination"
    await _fill(dst, [changed, *shared[1:]])

    report = await copy_checkpoints(src, dst)
    assert (report.copied, report.unchanged, report.conflicts) == (1, 4, 1)
    assert report.conflict_ids == [changed.id]
    assert not report.complete  # the destination does not hold the source's version of one row
    assert "--on-conflict replace" in report.summary()
    assert (await _dump(dst))[changed.id] == changed.to_json()  # not overwritten

    replaced = await copy_checkpoints(src, dst, on_conflict="replace")
    assert (replaced.copied, replaced.replaced, replaced.unchanged, replaced.complete) == (0, 1, 5, True)
    assert (await _dump(dst))[changed.id] == shared[0].to_json()


async def test_on_conflict_fail_stops_before_writing_that_batch(tmp_path: Path) -> None:
    src, dst = str(tmp_path / "src.db"), str(tmp_path / "dst.db")
    rows = [_cp(i) for i in range(6)]
    await _fill(src, rows)
    changed = Checkpoint.from_json(rows[0].to_json())
    changed.graph_name = "other"
    await _fill(dst, [changed])
    with pytest.raises(CopyConflictError, match=rf"{changed.id}.*--on-conflict skip"):
        await copy_checkpoints(src, dst, on_conflict="fail", batch_size=100)
    assert set(await _dump(dst)) == {changed.id}  # nothing of the batch was written


@pytest.mark.postgres
async def test_rows_postgres_cannot_hold_are_refused_by_name_and_the_rest_copied(tmp_path: Path) -> None:
    src = str(tmp_path / "src.db")
    odd = _cp(1)
    odd.id = "nul\x00id"
    await _fill(src, [odd, *[_cp(i) for i in range(2, 12)]])
    dst = pg_database_url()
    report = await copy_checkpoints(src, dst, batch_size=4)
    assert (report.read, report.copied, report.refused) == (11, 10, 1)
    assert report.refused_ids[0][0] == odd.id and "U+0000" in report.refused_ids[0][1]
    assert not report.complete
    again = await copy_checkpoints(src, dst, batch_size=4)
    assert (again.copied, again.unchanged, again.refused) == (0, 10, 1)


@pytest.mark.postgres
async def test_a_damaged_source_row_is_reported_by_name_and_the_rest_copied(tmp_path: Path) -> None:
    """A hand-broken JSON text in an SQLite source is found before it reaches PostgreSQL (as
    `db check` finds it): that row alone is reported as damaged, the copy goes on."""
    src = str(tmp_path / "src.db")
    checkpoints = [_cp(i) for i in range(1, 11)]
    await _fill(src, checkpoints)
    with sqlite3.connect(src) as conn:
        conn.execute("UPDATE checkpoints SET state_snapshot = '{broken' WHERE id = ?", (checkpoints[4].id,))
    report = await copy_checkpoints(src, pg_database_url(), batch_size=4)
    assert (report.read, report.copied, report.refused, report.damaged) == (10, 9, 0, 1)
    assert report.damaged_ids[0][0] == checkpoints[4].id
    assert not report.complete


async def test_an_interrupted_copy_leaves_whole_batches_and_a_rerun_finishes(tmp_path: Path) -> None:
    src, dst = str(tmp_path / "src.db"), str(tmp_path / "dst.db")
    rows = [_cp(i) for i in range(30)]
    await _fill(src, rows)
    done: list[int] = []

    def stop_after_two(count: int) -> None:
        done.append(count)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await copy_checkpoints(src, dst, batch_size=8, progress=stop_after_two)
    assert len(await _dump(dst)) == 16
    report = await copy_checkpoints(src, dst, batch_size=8)
    assert (report.copied, report.unchanged, report.complete) == (14, 16, True)
    assert await _dump(dst) == {cp.id: cp.to_json() for cp in rows}


async def test_missing_source_is_never_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database at"):
        await copy_checkpoints(tmp_path / "missing.db", tmp_path / "dst.db")
    assert not (tmp_path / "missing.db").exists()


async def test_same_database_is_refused(tmp_path: Path) -> None:
    await _fill(str(tmp_path / "a.db"), [_cp(1)])
    with pytest.raises(CkptdbError, match="same database"):
        await copy_checkpoints(tmp_path / "a.db", f"sqlite:///{tmp_path / 'a.db'}")


# ── the command ───────────────────────────────────────────────────────────────────────────────────


def test_cli_copy_summary_report_and_exit_status(tmp_path: Path) -> None:
    src, dst = str(tmp_path / "src.db"), str(tmp_path / "dst.db")
    rows = [_cp(i) for i in range(12)]
    asyncio.run(_fill(src, rows))
    runner = CliRunner()
    out = runner.invoke(main, ["copy", "--from", src, "--to", dst, "--report", str(tmp_path / "r.json")])
    assert out.exit_code == 0, out.output
    assert "12 copied" in out.output and "count check" in out.output and "OK" in out.output
    assert "copying" not in out.output  # no progress bar when not on a terminal
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["copied"], report["source_count"], report["destination_count_after"]) == (12, 12, 12)

    with sqlite3.connect(dst) as conn:  # make one row differ
        conn.execute("UPDATE checkpoints SET current_node = 'elsewhere' WHERE id = ?", (rows[3].id,))
    out = runner.invoke(main, ["copy", "--from", src, "--to", dst])
    assert out.exit_code == 3, out.output
    assert rows[3].id in out.output and "1 conflicts" in out.output
    quiet = runner.invoke(main, ["copy", "--from", src, "--to", dst, "--quiet"])
    assert quiet.exit_code == 3 and rows[3].id in quiet.output  # printed even when quiet (stderr)
    out = runner.invoke(main, ["copy", "--from", src, "--to", dst, "--on-conflict", "fail"])
    assert out.exit_code == 4 and out.output.startswith("Error: ") and len(out.output.splitlines()) == 1
    out = runner.invoke(main, ["copy", "--from", src, "--to", dst, "--on-conflict", "replace", "-q"])
    assert out.exit_code == 3 and "1 replaced, 1 conflicts" in out.output  # as import counts them
    out = runner.invoke(main, ["copy", "--from", src, "--to", dst, "-q"])
    assert (out.exit_code, out.output) == (0, "")
    assert asyncio.run(_dump(dst)) == {cp.id: cp.to_json() for cp in rows}


def test_cli_copy_errors_are_one_line(tmp_path: Path) -> None:
    args = ["copy", "--from", str(tmp_path / "nope.db"), "--to", str(tmp_path / "d.db")]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 1
    assert out.output.strip().splitlines() == [
        f"Error: no database at {tmp_path / 'nope.db'}: check the path or --db (nothing was created)"
    ]
