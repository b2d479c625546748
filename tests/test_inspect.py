"""ckptdb.inspect (the library behind list/show/graphs/stats/pending/rm/prune/sql), the
checkpoint_summary view (migration 0002) and the README's sqlite3 queries, on a database built
from the 300 shared echo fixtures; expected values are computed from the fixture files in Python.

Every test that touches a database runs on SQLite and on PostgreSQL (`engine`, `db_target`) with the
same assertions; where an engine must differ (SQLite-only SQL, what PostgreSQL cannot report
cheaply), the test says so on the spot.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import module_db_target, pg_database_url
from helpers.db import fill, is_postgres, write_marks

from ckptdb import Checkpoint, CkptdbError, InterruptType, Timestamp, inspect, open_store
from ckptdb.echo_json import dumps_compact
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.store import SqlCheckpointStore

REPO = Path(__file__).resolve().parents[1]
NS = 1_000_000_000
NOW = Timestamp.parse("2026-11-24T02:01:04Z")
WAITING = ("toolapproval", "userrequest")


# -- data --------------------------------------------------------------------------------------


def key(cp: Checkpoint) -> tuple[int, str]:
    return (cp.created_at.unix_nanos, cp.id)


def newest_first(cps: list[Checkpoint]) -> list[Checkpoint]:
    return sorted(cps, key=key, reverse=True)


def stored_bytes(cp: Checkpoint) -> int:
    """What the database holds for a row's JSON: state, path, pending action, extra."""
    row = sqlrows.to_row(cp)
    return sum(len(value.encode("utf-8")) for value in (row[3], row[4], row[7], row[10]) if value is not None)


async def fill_db(target: str, checkpoints: list[Checkpoint]) -> str:
    async with await open_store(target) as store:
        await store.save_many(checkpoints)
    return target


def make(cid: str, graph: str, nanos: int, kind: str = "afternode", **fields: Any) -> Checkpoint:
    return Checkpoint(
        id=cid,
        graph_name=graph,
        current_node=fields.pop("node", "n"),
        state_snapshot=fields.pop("state", {"current_node": None, "messages": [], "values": {}}),
        path=fields.pop("path", ["start"]),
        step_count=fields.pop("step", 0),
        created_at=Timestamp(nanos),
        pending_action=fields.pop("pending", None),
        interrupt_type=InterruptType(kind),
    )


@pytest.fixture(scope="session")
def fixtures(fixture_dir: Path) -> list[Checkpoint]:
    return [Checkpoint.from_json(p.read_bytes()) for p in sorted(fixture_dir.glob("*.json"))]


def in_time_order(fixtures: list[Checkpoint]) -> list[Checkpoint]:
    """The fixtures saved oldest first, as echo saved them: "newest" in pending and prune is the
    save order, and the expected values below compute it from created_at."""
    return sorted(fixtures, key=lambda cp: (cp.created_at.unix_nanos, cp.id))


@pytest.fixture(scope="module")
def fixture_db_file(
    tmp_path_factory: pytest.TempPathFactory, fixtures: list[Checkpoint], engine: str
) -> Iterator[str]:
    """The fixtures in a database of this engine, built once per module (tests only read it)."""
    with module_db_target(engine, tmp_path_factory.mktemp("inspect")) as target:
        yield fill(target, in_time_order(fixtures))


@pytest.fixture
def fixture_db(fixture_db_file: str, fixtures: list[Checkpoint], tmp_path: Path) -> str:
    """A private copy: tests may delete from it (PostgreSQL: a fresh database filled again)."""
    if is_postgres(fixture_db_file):
        return fill(pg_database_url(), in_time_order(fixtures))
    copy = tmp_path / "fixtures.db"
    shutil.copyfile(fixture_db_file, copy)
    return str(copy)


@pytest.fixture
async def fx_store(fixture_db: str) -> Any:
    """The fixture database, opened (not named `store`: conftest runs those on every backend)."""
    async with await inspect.open_existing(fixture_db) as opened:
        yield opened


# -- parsing what people type --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-03", "2026-11-03T00:00:00Z"),
        ("2026-11-03T14:30:00Z", "2026-11-03T14:30:00Z"),
        ("2026-11-03T14:30:00", "2026-11-03T14:30:00Z"),
        ("2026-11-03 14:30:00", "2026-11-03T14:30:00Z"),
        ("2026-11-03 14:30", "2026-11-03T14:30:00Z"),
        ("2026-11-03T14:30:00+02:00", "2026-11-03T12:30:00Z"),
        ("2026-11-03T14:30:00.123456789Z", "2026-11-03T14:30:00.123456789Z"),
        ("2026-11-03T14:30:00.123456789", "2026-11-03T14:30:00.123456789Z"),
        (" 2026-11-03 ", "2026-11-03T00:00:00Z"),
        ("7d", "2026-11-17T02:01:04Z"),
        ("24h", "2026-11-23T02:01:04Z"),
        ("30m", "2026-11-24T01:31:04Z"),
        ("45s", "2026-11-24T02:00:19Z"),
        ("2w", "2026-11-10T02:01:04Z"),
        ("1d12h", "2026-11-22T14:01:04Z"),
        ("1D 12H", "2026-11-22T14:01:04Z"),
        ("now", "2026-11-24T02:01:04Z"),
    ],
)
def test_parse_time(text: str, expected: str) -> None:
    assert inspect.parse_time(text, now=NOW).isoformat() == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "7 days", "2026-13-01", "2026-11-03T25:00:00Z", "", "7x", "-7d"]
)
def test_parse_time_refuses_with_one_line(text: str) -> None:
    with pytest.raises(CkptdbError) as caught:
        inspect.parse_time(text, what="--since", now=NOW)
    message = str(caught.value)
    assert message.startswith(f"--since: cannot read {text!r} as a time: use a date (2026-11-03)")
    assert "\n" not in message


@pytest.mark.parametrize("text", ["1000000d", "99999999999999999999d", "2026-11-03T00:00:00+00:01x"])
def test_parse_time_out_of_range_or_odd(text: str) -> None:
    with pytest.raises(CkptdbError, match=r"^--until: "):
        inspect.parse_time(text, what="--until", now=NOW)


def test_parse_time_edges() -> None:
    assert inspect.parse_time("0001-01-01", now=NOW).utc_text() == "0001-01-01T00:00:00.000000000Z"
    with pytest.raises(CkptdbError, match=r"^time: '0000-12-31' is outside the years 0001-9999"):
        inspect.parse_time("0000-12-31", now=NOW)


def test_parse_age() -> None:
    assert inspect.parse_age("1d12h") == 36 * 3600 * NS
    assert inspect.parse_age("90m") == 90 * 60 * NS
    with pytest.raises(CkptdbError, match=r"^--older-than: cannot read '30 days' as an age"):
        inspect.parse_age("30 days", what="--older-than")


def test_parse_interrupt_types() -> None:
    assert inspect.parse_interrupt_types(["toolapproval", "ToolApproval", "user_request", "BEFORE-NODE"]) == (
        InterruptType.TOOL_APPROVAL,
        InterruptType.USER_REQUEST,
        InterruptType.BEFORE_NODE,
    )
    with pytest.raises(CkptdbError) as caught:
        inspect.parse_interrupt_types(["approval"])
    assert str(caught.value) == (
        "unknown interrupt type 'approval': use beforenode, afternode, toolapproval or userrequest"
    )


def test_build_query() -> None:
    query = inspect.build_query(
        graph="g",
        node="n",
        types=["toolapproval"],
        since="7d",
        until="2026-11-24",
        where=["values.x == 1"],
        limit=5,
        now=NOW,
    )
    assert (query.graph_name, query.current_node, query.interrupt_types, query.limit) == (
        "g",
        "n",
        (InterruptType.TOOL_APPROVAL,),
        5,
    )
    assert query.since == Timestamp.parse("2026-11-17T02:01:04Z")
    assert query.until == Timestamp.parse("2026-11-24T00:00:00Z")
    assert [str(c) for c in query.state] == ["values.x == 1"]
    assert inspect.build_query(limit=10**20).limit is None
    with pytest.raises(CkptdbError, match=r"^--until: cannot read"):
        inspect.build_query(until="soon")


# -- reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "predicate"),
    [
        ({}, lambda cp: True),
        ({"graph": "pipeline"}, lambda cp: cp.graph_name == "pipeline"),
        ({"node": "deploy"}, lambda cp: cp.current_node == "deploy"),
        ({"types": ["toolapproval", "userrequest"]}, lambda cp: cp.interrupt_type.value in WAITING),
        (
            {"since": "2026-11-10", "until": "2026-11-20T12:00:00Z"},
            lambda cp: (
                Timestamp.parse("2026-11-10T00:00:00Z")
                <= cp.created_at
                < Timestamp.parse("2026-11-20T12:00:00Z")
            ),
        ),
        ({"since": "7d"}, lambda cp: cp.created_at >= Timestamp.parse("2026-11-17T02:01:04Z")),
        (
            {"where": ["values.approved == false"]},
            lambda cp: (
                isinstance(cp.state_snapshot, dict)
                and cp.state_snapshot.get("values", {}).get("approved") is False
            ),
        ),
        (
            {"types": ["toolapproval"], "where": ["values exists"], "since": "2026-11-01"},
            lambda cp: (
                cp.interrupt_type is InterruptType.TOOL_APPROVAL
                and isinstance(cp.state_snapshot, dict)
                and "values" in cp.state_snapshot
                and cp.created_at >= Timestamp.parse("2026-11-01T00:00:00Z")
            ),
        ),
    ],
)
async def test_list_matches_the_fixtures(
    fx_store: SqlCheckpointStore,
    fixtures: list[Checkpoint],
    filters: dict[str, Any],
    predicate: Callable[[Checkpoint], bool],
) -> None:
    query = inspect.build_query(**filters, now=NOW)
    found = [info async for info in inspect.list_checkpoints(fx_store, query)]
    expected = newest_first([cp for cp in fixtures if predicate(cp)])
    assert [info.id for info in found] == [cp.id for cp in expected]
    assert [info.created_at.isoformat() for info in found] == [cp.created_at.isoformat() for cp in expected]
    limited = [
        info
        async for info in inspect.list_checkpoints(fx_store, inspect.build_query(**filters, limit=3, now=NOW))
    ]
    assert [info.id for info in limited] == [cp.id for cp in expected[:3]]


def test_echo_time_is_chrono_spelling(fixtures: list[Checkpoint]) -> None:
    samples = [cp.created_at.with_format() for cp in fixtures]
    samples += [
        Timestamp(n)
        for n in (0, 1, 999, 1000, 1_000_000, 123_000_000, 123_456_000, 1_790_000_000_000_000_001)
    ]
    for ts in samples:
        assert inspect.echo_time(ts.utc_text()) == ts.isoformat()


async def test_list_records_are_list_checkpoints_ready_to_print(
    db_target: str, fixtures: list[Checkpoint]
) -> None:
    extra = [make("huge", "g", 1_790_000_000 * NS, step=2**64 - 1)]
    await fill_db(db_target, fixtures + extra)
    async with await inspect.open_existing(db_target) as store:
        query = inspect.build_query()
        records = [r async for r in inspect.list_records(store, query)]
        infos = [i async for i in inspect.list_checkpoints(store, query)]
    assert records == [
        (i.id, i.graph_name, i.current_node, i.interrupt_type.value, i.step_count, i.created_at.isoformat())
        for i in infos
    ]
    assert ("huge", "g", "n", "afternode", 2**64 - 1, "2026-09-21T14:13:20Z") in records
    assert len(records) == 301


async def test_get_checkpoint_is_the_echo_file(fx_store: SqlCheckpointStore, fixture_dir: Path) -> None:
    for path in sorted(fixture_dir.glob("*.json"))[:25]:
        checkpoint = await inspect.get_checkpoint(fx_store, path.stem)
        assert checkpoint.to_json().encode("utf-8") == path.read_bytes()
    with pytest.raises(inspect.NotFoundError) as caught:
        await inspect.get_checkpoint(fx_store, "nope")
    assert str(caught.value) == f"no checkpoint with id 'nope' in {fx_store.target.display()}"


async def test_latest_checkpoint(fx_store: SqlCheckpointStore, fixtures: list[Checkpoint]) -> None:
    for graph in {cp.graph_name for cp in fixtures}:
        newest = newest_first([cp for cp in fixtures if cp.graph_name == graph])[0]
        assert (await inspect.latest_checkpoint(fx_store, graph)).id == newest.id
    with pytest.raises(
        inspect.NotFoundError, match=r"^no checkpoints for graph 'nope' in .*`ckptdb graphs` lists them"
    ):
        await inspect.latest_checkpoint(fx_store, "nope")


async def test_field_value(fx_store: SqlCheckpointStore) -> None:
    cp = await inspect.get_checkpoint(fx_store, "00cd4345-947d-4ffc-8437-4b5ab42e8f9f")
    assert inspect.field_value(cp, "pending_action.function.name") == "web_search"
    assert inspect.field_value(cp, "path[0]") == "start"
    assert inspect.field_value(cp, "step_count") == 30
    assert inspect.field_value(cp, "created_at") == "2026-11-11T21:19:07.116615071Z"
    assert inspect.field_value(cp, "values.user_query") == 392  # inside the state, as --where paths are
    assert inspect.field_value(cp, "state_snapshot.values.备注") == 596293371333434
    assert inspect.field_value(cp, "state_snapshot.messages[1].tool_calls[0].type") == "function"
    with pytest.raises(
        inspect.NotFoundError, match=r"has no field 'values\.nope' \(top-level fields: id, graph_name"
    ):
        inspect.field_value(cp, "values.nope")
    with pytest.raises(CkptdbError, match="cannot read path"):
        inspect.field_value(cp, "a..b[")


# -- summaries -----------------------------------------------------------------------------------


async def test_graphs_are_exact_on_the_fixtures(
    fx_store: SqlCheckpointStore, fixtures: list[Checkpoint]
) -> None:
    by_graph: dict[str, list[Checkpoint]] = defaultdict(list)
    for cp in fixtures:
        by_graph[cp.graph_name].append(cp)
    found = await inspect.graphs(fx_store)
    assert [g.graph_name for g in found] == sorted(by_graph)
    for summary in found:
        cps = by_graph[summary.graph_name]
        assert summary.checkpoints == len(cps)
        assert summary.newest.unix_nanos == max(cp.created_at.unix_nanos for cp in cps)
        assert summary.oldest.unix_nanos == min(cp.created_at.unix_nanos for cp in cps)
        assert summary.data_bytes == sum(stored_bytes(cp) for cp in cps)
        assert summary.data_bytes_exact
    assert [(g.graph_name, g.data_bytes) for g in await inspect.graphs(fx_store, exact=False)] == [
        (g.graph_name, g.data_bytes) for g in found
    ]  # graphs with fewer rows than SIZE_BUCKETS are summed exactly even when estimating


async def test_graphs_estimate_big_graphs(db_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the exact limit, a big graph's size comes from a time-stratified sample: close to the
    truth even when one burst of large checkpoints sits among many small ones, and flagged."""
    cps = []
    for i in range(3000):
        size = 2000 if 1000 <= i < 1300 else 100 + (i * 37) % 200  # a burst of big states
        cps.append(make(f"b{i:05d}", "big", 1_790_000_000 * NS + i * 60 * NS, state={"x": "y" * size}))
    cps += [make(f"s{i}", "small", 1_790_000_000 * NS + i * NS) for i in range(10)]
    await fill_db(db_target, cps)
    truth = {g: sum(stored_bytes(cp) for cp in cps if cp.graph_name == g) for g in ("big", "small")}
    async with await inspect.open_existing(db_target) as store:
        exact = {g.graph_name: g for g in await inspect.graphs(store)}  # 3010 rows: under the limit
        assert {g: s.data_bytes for g, s in exact.items()} == truth
        monkeypatch.setattr(inspect, "EXACT_SIZE_ROWS", 100)
        estimated = {g.graph_name: g for g in await inspect.graphs(store)}
        assert not estimated["big"].data_bytes_exact and estimated["small"].data_bytes_exact
        assert estimated["small"].data_bytes == truth["small"]
        assert abs(estimated["big"].data_bytes - truth["big"]) / truth["big"] < 0.05
        assert estimated["big"].checkpoints == 3000
        forced = {g.graph_name: g.data_bytes for g in await inspect.graphs(store, exact=True)}
        assert forced == truth


async def test_summaries_read_past_damaged_times(db_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `created_at` that is not a time (a hand edit) sorts among real ones as text: graphs, stats
    and pending give the readable rows' times and report each damaged row once to `on_damaged`
    (without one: DamagedRowError, one line), also when sizes are estimated from the times."""
    from ckptdb.errors import DamagedRowError

    cps = [
        make(f"b{i:03d}", "big", 1_790_000_000 * NS + i * 60 * NS, state={"x": "y" * i}) for i in range(300)
    ]
    cps.append(make("wait", "big", 1_790_000_000 * NS + 300 * 60 * NS, kind="toolapproval"))
    await fill_db(db_target, cps)
    async with await open_store(db_target) as store:
        await store.backend.write(
            [
                ("UPDATE checkpoints SET created_at = ? WHERE id = ?", ["yesterday", "b100"]),
                ("UPDATE checkpoints SET created_at = ? WHERE id = ?", ["", "b200"]),
            ]
        )
    newest, oldest = cps[-1].created_at, cps[0].created_at
    async with await inspect.open_existing(db_target) as store:
        with pytest.raises(DamagedRowError, match=r"checkpoint '(b100|b200)': the stored row is damaged"):
            await inspect.graphs(store)
        for exact_limit, estimated in ((250_000, False), (100, True)):  # sizes summed, then estimated
            monkeypatch.setattr(inspect, "EXACT_SIZE_ROWS", exact_limit)
            monkeypatch.setattr(inspect, "SIZE_BUCKETS", 8)
            seen: list[str] = []
            (big,) = await inspect.graphs(
                store, on_damaged=lambda exc, seen=seen: seen.append(exc.checkpoint_id)
            )
            assert (big.checkpoints, big.oldest, big.newest) == (301, oldest, newest)
            assert (sorted(seen), big.data_bytes_exact) == (["b100", "b200"], not estimated)
        reported = []
        found = await inspect.stats(store, on_damaged=lambda exc: reported.append(exc.checkpoint_id))
        assert (found.total.checkpoints, found.total.oldest, found.total.newest) == (301, oldest, newest)
        assert sorted(reported) == ["b100", "b200"]
        reported = []
        waiting = await inspect.pending(store, on_damaged=lambda exc: reported.append(exc.checkpoint_id))
        assert [cp.id for cp in waiting] == ["wait"] and reported == []  # 'wait' was saved last
    async with await open_store(db_target) as store:  # rows without a save order, as imported ones
        await store.backend.write([("UPDATE checkpoints SET save_seq = 0", [])])
    async with await inspect.open_existing(db_target) as store:
        reported = []
        waiting = await inspect.pending(store, on_damaged=lambda exc: reported.append(exc.checkpoint_id))
        assert [cp.id for cp in waiting] == ["wait"] and reported == ["b100"]  # 'yesterday' sorts last


async def test_stats(
    fx_store: SqlCheckpointStore, fixtures: list[Checkpoint], manifest: dict[str, Any]
) -> None:
    found = await inspect.stats(fx_store)
    by_type = manifest["expected"]["valid_by_interrupt_type_recursive_unique"]
    assert {kind.value: count for kind, count in found.total.by_type.items()} == by_type
    assert found.total.checkpoints == 300
    assert found.total.oldest == min(cp.created_at for cp in fixtures)
    assert found.total.newest == max(cp.created_at for cp in fixtures)
    assert [g.graph_name for g in found.by_graph] == sorted({cp.graph_name for cp in fixtures})
    for g in found.by_graph:
        mine = [cp for cp in fixtures if cp.graph_name == g.graph_name]
        assert g.checkpoints == len(mine)
        assert {k.value: n for k, n in g.by_type.items()} == {
            t.value: sum(cp.interrupt_type is t for cp in mine) for t in InterruptType
        }
        assert g.newest == max(cp.created_at for cp in mine)
    assert found.database == fx_store.target.display()
    assert found.database_bytes is not None and found.database_bytes > 0
    # PostgreSQL cannot say how much of a table is free without scanning it (pgstattuple): None.
    assert found.free_bytes == (None if fx_store.target.kind == "postgresql" else 0)


def expected_pending(fixtures: list[Checkpoint]) -> list[Checkpoint]:
    newest: dict[str, Checkpoint] = {}
    for cp in fixtures:
        if cp.graph_name not in newest or key(cp) > key(newest[cp.graph_name]):
            newest[cp.graph_name] = cp
    return newest_first([cp for cp in newest.values() if cp.interrupt_type.value in WAITING])


async def test_pending(fx_store: SqlCheckpointStore, fixtures: list[Checkpoint]) -> None:
    found = await inspect.pending(fx_store)
    expected = expected_pending(fixtures)
    assert len(expected) > 10
    assert [cp.id for cp in found] == [cp.id for cp in expected]
    assert [cp.pending_action for cp in found] == [cp.pending_action for cp in expected]
    assert [cp.to_json() for cp in found] == [cp.to_json() for cp in expected]


async def test_pending_skips_graphs_that_moved_on(db_target: str) -> None:
    base = 1_790_000_000 * NS
    await fill_db(
        db_target,
        [
            make("a1", "a", base, "toolapproval", pending={"tool": "x"}),
            make("a2", "a", base + NS, "afternode"),  # approved and moved on
            make("b1", "b", base, "userrequest"),
            # Same instant: the later save wins, not the higher id (c moved on, d waits).
            make("c1", "c", base + 5 * NS, "toolapproval", pending={"tool": "y"}),
            make("c0", "c", base + 5 * NS, "afternode"),
            make("d1", "d", base + 5 * NS, "afternode"),
            make("d0", "d", base + 5 * NS, "toolapproval", pending={"tool": "z"}),
        ],
    )
    async with await inspect.open_existing(db_target) as store:
        assert [(cp.id, cp.pending_action) for cp in await inspect.pending(store)] == [
            ("d0", {"tool": "z"}),
            ("b1", None),
        ]


# -- deleting ------------------------------------------------------------------------------------


async def test_remove(fx_store: SqlCheckpointStore) -> None:
    ids = ["00cd4345-947d-4ffc-8437-4b5ab42e8f9f", "014f0f5d-d459-4637-a027-69208158528e"]
    with pytest.raises(inspect.NotFoundError) as caught:
        await inspect.remove(fx_store, [*ids, "nope"])
    assert str(caught.value) == "no checkpoint with id 'nope': nothing was deleted"
    assert await fx_store.count() == 300
    with pytest.raises(
        inspect.NotFoundError, match=r"^no checkpoint with 6 ids 'x0', 'x1', 'x2', 'x3', 'x4', \.\.\."
    ):
        await inspect.remove(fx_store, [f"x{i}" for i in range(6)])
    assert await inspect.remove(fx_store, [*ids, ids[0]]) == 2
    assert await fx_store.count() == 298
    assert await inspect.remove(fx_store, [ids[0], "nope"], missing_ok=True) == 0


def survivors(
    fixtures: list[Checkpoint], keep_last: int | None, cutoff: Timestamp | None, graphs: set[str]
) -> set[str]:
    kept: set[str] = set()
    by_graph: dict[str, list[Checkpoint]] = defaultdict(list)
    for cp in fixtures:
        by_graph[cp.graph_name].append(cp)
    for graph, cps in by_graph.items():
        for rank, cp in enumerate(newest_first(cps)):
            goes = graph in graphs or not graphs
            if keep_last is not None and rank < keep_last:
                goes = False
            if cutoff is not None and cp.created_at >= cutoff:
                goes = False
            if not goes:
                kept.add(cp.id)
    return kept


@pytest.mark.parametrize(
    ("keep_last", "older_than", "graphs", "window"),
    [
        (2, None, (), 50_000),
        (2, None, (), 7),  # many windows
        (None, "2026-11-10", (), 13),
        (1, "2026-11-15T12:00:00Z", (), 50_000),
        (0, None, ("pipeline", "数据分析流程"), 3),
        (3, "2026-11-20", ("pipeline",), 50_000),
    ],
)
async def test_prune(
    fx_store: SqlCheckpointStore,
    fixtures: list[Checkpoint],
    keep_last: int | None,
    older_than: str | None,
    graphs: tuple[str, ...],
    window: int,
) -> None:
    cutoff = None if older_than is None else inspect.parse_time(older_than)
    kept = survivors(fixtures, keep_last, cutoff, set(graphs))
    plan = await inspect.plan_prune(fx_store, keep_last=keep_last, older_than=cutoff, graph_names=graphs)
    going = [cp for cp in fixtures if cp.id not in kept]
    assert plan.delete == len(going) > 0
    assert plan.delete_bytes == sum(stored_bytes(cp) for cp in going)
    assert plan.checkpoints == sum(1 for cp in fixtures if not graphs or cp.graph_name in graphs)
    assert [g.graph_name for g in plan.graphs] == sorted({cp.graph_name for cp in going})
    assert await fx_store.count() == 300  # planning changes nothing
    seen: list[int] = []
    result = await inspect.execute_prune(fx_store, plan, window=window, progress=seen.append)
    assert result.deleted == len(going)
    assert seen and seen[-1] == len(going) and seen == sorted(seen)
    assert {info.id async for info in fx_store.iter_query(limit=None)} == kept
    assert not result.vacuumed
    if fx_store.target.kind == "postgresql":  # free space inside a table: not known cheaply there
        assert result.free_bytes is None
    else:
        assert result.free_bytes is not None and result.free_bytes > 0


async def test_prune_needs_a_rule_and_known_graphs(fx_store: SqlCheckpointStore) -> None:
    with pytest.raises(CkptdbError, match=r"^say what to prune: --keep-last N, --older-than AGE, or both$"):
        await inspect.plan_prune(fx_store)
    with pytest.raises(inspect.NotFoundError, match=r"^no graph named 'nope' in "):
        await inspect.plan_prune(fx_store, keep_last=1, graph_names=["pipeline", "nope"])
    plan = await inspect.plan_prune(fx_store, keep_last=1000)
    assert (plan.delete, plan.graphs, plan.checkpoints) == (0, [], 300)
    assert (await inspect.execute_prune(fx_store, plan)).deleted == 0


async def test_prune_window_of_equal_times_and_later_saves(db_target: str) -> None:
    """Many rows at one instant (more than a window) all go; a row saved after the plan stays."""
    base = 1_790_000_000 * NS
    cps = [make(f"a{i:03d}", "a", base) for i in range(40)] + [
        make(f"b{i:03d}", "b", base + i * NS) for i in range(40)
    ]
    cps.append(make("z", "a", base + 100 * NS))
    await fill_db(db_target, cps)
    async with await inspect.open_existing(db_target) as store:
        plan = await inspect.plan_prune(store, keep_last=1)
        assert plan.delete == 40 + 39
        await store.save(make("late", "a", base + 200 * NS))  # an agent saving meanwhile
        result = await inspect.execute_prune(store, plan, window=5)
        assert result.deleted == 79
        assert sorted([info.id async for info in store.iter_query(limit=None)]) == ["b039", "late", "z"]


async def test_prune_follows_the_save_order_not_the_host_clocks(db_target: str) -> None:
    """A host whose clock ran an hour fast saved step 1; a correct host then saved steps 2 and 3:
    `--keep-last 1` keeps step 3. A row saved after the plan stays even when its time is old."""
    base = 1_790_000_000 * NS
    await fill_db(
        db_target,
        [
            make("step-1", "run", base + 3600 * NS, "toolapproval", pending={"tool": "x"}),
            make("step-2", "run", base + NS),
            make("step-3", "run", base + 2 * NS, "userrequest"),
            make("other", "other", base),
        ],
    )
    async with await inspect.open_existing(db_target) as store:
        assert [cp.id for cp in await inspect.pending(store)] == ["step-3"]
        assert (await inspect.latest_checkpoint(store, "run")).id == "step-3"
        plan = await inspect.plan_prune(store, keep_last=1)
        assert [(g.graph_name, g.delete) for g in plan.graphs] == [("run", 2)]
        assert (await inspect.execute_prune(store, plan, window=1)).deleted == 2
        assert sorted([info.id async for info in store.iter_query(limit=None)]) == ["other", "step-3"]
        plan = await inspect.plan_prune(store, older_than=Timestamp(base + 10 * NS))
        await store.save(make("late-but-skewed", "run", base - 3600 * NS))  # saved after the plan
        assert (await inspect.execute_prune(store, plan)).deleted == 2
        assert [info.id async for info in store.iter_query(limit=None)] == ["late-but-skewed"]


async def test_imported_rows_keep_their_time_order_and_come_before_every_save(db_target: str) -> None:
    """An import (insert-if-absent) records no save order: such rows keep (created_at, id) order
    among themselves in latest, pending and prune, and anything saved later is newer."""
    base = 1_790_000_000 * NS
    imported = [make(f"i{n}", "g", base + n * NS) for n in (3, 1, 4, 2, 0)]
    async with await open_store(db_target) as store:
        await store.save_rows([sqlrows.to_row(cp) for cp in imported], replace=False)
        assert (await inspect.latest_checkpoint(store, "g")).id == "i4"
        plan = await inspect.plan_prune(store, keep_last=2)
        assert (await inspect.execute_prune(store, plan, window=2)).deleted == 3
        assert sorted([info.id async for info in store.iter_query(limit=None)]) == ["i3", "i4"]
        await store.save(make("saved", "g", base - 3600 * NS))
        assert (await inspect.latest_checkpoint(store, "g")).id == "saved"
        plan = await inspect.plan_prune(store, keep_last=1)
        assert (await inspect.execute_prune(store, plan, window=1)).deleted == 2
        assert [info.id async for info in store.iter_query(limit=None)] == ["saved"]


async def test_prune_vacuum_gives_space_back(fixture_db: str) -> None:
    async with await inspect.open_existing(fixture_db) as store:
        plan = await inspect.plan_prune(store, keep_last=0)
        result = await inspect.execute_prune(store, plan, vacuum=True)
        assert result.deleted == 300 and result.vacuumed
        assert result.size_before is not None and result.size_after is not None
        assert result.size_after < result.size_before / 5
        if is_postgres(fixture_db):  # VACUUM FULL rewrote the table; free space is not reported there
            assert result.free_bytes is None
        else:  # and the WAL was truncated
            assert result.free_bytes == 0
            wal = Path(f"{fixture_db}-wal")
            assert not wal.exists() or wal.stat().st_size == 0
        again = await inspect.vacuum(store)
        assert again.before == again.after and again.wal_kept is None


# -- read-only SQL -------------------------------------------------------------------------------


async def sql_rows(store: SqlCheckpointStore, sql: str) -> list[tuple[Any, ...]]:
    return [row async for row in inspect.run_sql(store, sql)]


async def test_run_sql_reads(fx_store: SqlCheckpointStore) -> None:
    rows = await sql_rows(
        fx_store, "SELECT interrupt_type, count(*) AS n FROM checkpoints GROUP BY 1 ORDER BY 1;"
    )
    assert rows == [
        ("interrupt_type", "n"),
        ("afternode", 89),
        ("beforenode", 80),
        ("toolapproval", 80),
        ("userrequest", 51),
    ]
    recursive = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3) SELECT x FROM n -- done"
    )
    assert await sql_rows(fx_store, recursive) == [("x",), (1,), (2,), (3,)]
    assert await sql_rows(fx_store, "SELECT id FROM checkpoints WHERE id = 'nope'") == [("id",)]


async def test_run_sql_reads_the_engines_catalog(fx_store: SqlCheckpointStore) -> None:
    """Each engine's own way to describe a table: reporting PRAGMAs on SQLite, the catalog views
    on PostgreSQL (which has no PRAGMA)."""
    if fx_store.target.kind == "sqlite":
        assert (await sql_rows(fx_store, "PRAGMA table_info(checkpoints)"))[1][:2] == (0, "id")
        names = "SELECT name FROM pragma_table_info('checkpoint_summary') LIMIT 2"
        assert await sql_rows(fx_store, names) == [("name",), ("id",), ("graph_name",)]
        assert await sql_rows(fx_store, "PRAGMA page_size") == [("page_size",), (4096,)]
    else:
        names = (
            "SELECT column_name AS name FROM information_schema.columns "
            "WHERE table_name = 'checkpoint_summary' ORDER BY ordinal_position LIMIT 2"
        )
        assert await sql_rows(fx_store, names) == [("name",), ("id",), ("graph_name",)]
        assert await sql_rows(fx_store, "SHOW block_size") == [("block_size",), ("8192",)]
        plan = await sql_rows(fx_store, "EXPLAIN SELECT * FROM checkpoints WHERE id = 'x'")
        assert plan[0] == ("QUERY PLAN",) and "checkpoints" in plan[1][0]
        with pytest.raises(CkptdbError, match=r'^SQL error: syntax error at or near "PRAGMA"$'):
            await sql_rows(fx_store, "PRAGMA table_info(checkpoints)")


# Writes refused on both engines, then each engine's own ways to try.
WRITES = [
    "DELETE FROM checkpoints",
    "UPDATE checkpoints SET graph_name = 'x'",
    "INSERT INTO checkpoints (id) VALUES ('x') RETURNING id",
    "DROP VIEW checkpoint_summary",
    "CREATE TEMP TABLE t (x int)",
    "CREATE TABLE t (x int)",
    "ALTER TABLE checkpoints ADD COLUMN x int",
    "ANALYZE",
    "SAVEPOINT s",
    "WITH x AS (SELECT 1) DELETE FROM checkpoints",
]
SQLITE_WRITES = [
    "CREATE TABLE t (x)",
    "ALTER TABLE checkpoints ADD COLUMN x",
    "PRAGMA query_only = OFF",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 7",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA optimize",
    "UPDATE sqlite_master SET sql = 'x'",
    "REINDEX",
    "BEGIN IMMEDIATE",
    "REPLACE INTO checkpoints (id) VALUES ('x')",
]
POSTGRES_WRITES = [
    "WITH gone AS (DELETE FROM checkpoints RETURNING id) SELECT count(*) FROM gone",
    "SELECT * FROM checkpoints FOR UPDATE",
    "TRUNCATE checkpoints",
    "VACUUM checkpoints",
    "REINDEX TABLE checkpoints",
    "SET default_transaction_read_only = off",
    "COMMIT",
    "BEGIN",
    "LOCK TABLE checkpoints",
    "DO $$ BEGIN DELETE FROM checkpoints; END $$",
    "CREATE SEQUENCE s",
    "EXPLAIN ANALYZE DELETE FROM checkpoints",
    "MERGE INTO checkpoints c USING (SELECT 'x' AS id) s ON c.id = s.id WHEN MATCHED THEN DELETE",
]


@pytest.mark.parametrize(
    "statement",
    [
        *WRITES,
        *(pytest.param(sql, marks=pytest.mark.engine("sqlite")) for sql in SQLITE_WRITES),
        *(pytest.param(sql, marks=pytest.mark.engine("postgres")) for sql in POSTGRES_WRITES),
    ],
)
async def test_run_sql_refuses_writes(fx_store: SqlCheckpointStore, fixture_db: str, statement: str) -> None:
    before = write_marks(fixture_db)
    with pytest.raises(CkptdbError) as caught:
        await sql_rows(fx_store, statement)
    message = str(caught.value)
    assert message.startswith("refused: `sql` only reads ("), message
    assert message.endswith("nothing was changed") and "\n" not in message
    assert write_marks(fixture_db) == before  # SQLite: the file's bytes; PostgreSQL: row versions
    assert await fx_store.count() == 300


CREATES_A_FILE = {
    "sqlite": ["ATTACH '{path}' AS other", "VACUUM INTO '{path}'"],
    "postgres": ["COPY checkpoints TO '{path}'", "COPY (SELECT 1) TO PROGRAM 'touch {path}'"],
}


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(sql, marks=pytest.mark.engine(engine))
        for engine, statements in CREATES_A_FILE.items()
        for sql in statements
    ],
)
async def test_run_sql_creates_no_file(fx_store: SqlCheckpointStore, tmp_path: Path, statement: str) -> None:
    target = tmp_path / "created.db"
    tmp_path.chmod(0o777)  # the PostgreSQL server runs as another user: it could write here
    with pytest.raises(CkptdbError, match=r"^refused: `sql` only reads \("):
        await sql_rows(fx_store, statement.format(path=target))
    assert not target.exists()


async def test_run_sql_errors(fx_store: SqlCheckpointStore) -> None:
    with pytest.raises(CkptdbError, match=r"^refused: one SQL statement at a time \(nothing was run\)$"):
        await sql_rows(fx_store, "SELECT 1; DELETE FROM checkpoints")
    with pytest.raises(CkptdbError, match=r"^refused: "):  # SQLite's authorizer speaks first: "only reads"
        await sql_rows(fx_store, "DELETE FROM checkpoints; SELECT 1")
    assert await fx_store.count() == 300
    with pytest.raises(CkptdbError, match=r"^no SQL statement given$"):
        await sql_rows(fx_store, " ; ")
    # Mistakes in a query come back as the engine's own error message, after "SQL error: ".
    errors = {
        "sqlite": ('near "SELEC": syntax error', "no such table: nope"),
        "postgresql": ('syntax error at or near "SELEC"', 'relation "nope" does not exist'),
    }[fx_store.target.kind]
    with pytest.raises(CkptdbError) as caught:
        await sql_rows(fx_store, "SELEC 1")
    assert str(caught.value) == f"SQL error: {errors[0]}"
    with pytest.raises(CkptdbError) as caught:
        await sql_rows(fx_store, "SELECT * FROM nope")
    assert str(caught.value) == f"SQL error: {errors[1]}"


async def test_run_sql_sum_of_bigints(fx_store: SqlCheckpointStore) -> None:
    """sum() of a bigint column: an int on SQLite, a numeric (decimal.Decimal) on PostgreSQL; the
    same number (the CLI prints both as a JSON number: test_cli_inspect)."""
    rows = await sql_rows(fx_store, "SELECT sum(step_count) AS s, count(*) AS n FROM checkpoints")
    assert rows[0] == ("s", "n") and rows[1][1] == 300
    assert int(rows[1][0]) == sum(min(cp.step_count, 2**63 - 1) for cp in await _all(fx_store))


async def _all(store: SqlCheckpointStore) -> list[Checkpoint]:
    return [cp async for cp in store.iter_checkpoints()]


# -- the view (migration 0002) -------------------------------------------------------------------


async def test_checkpoint_summary_view(fx_store: SqlCheckpointStore, fixtures: list[Checkpoint]) -> None:
    found = await sql_rows(fx_store, "SELECT * FROM checkpoint_summary")
    names = list(found[0])
    rows = {row[0]: dict(zip(names, row, strict=True)) for row in found[1:]}
    assert names == [
        "id",
        "graph_name",
        "current_node",
        "interrupt_type",
        "step_count",
        "created_at",
        "state_bytes",
        "message_count",
    ]
    assert len(rows) == 300
    for cp in fixtures:
        row = rows[cp.id]
        messages = cp.state_snapshot.get("messages") if isinstance(cp.state_snapshot, dict) else None
        assert row == {
            "id": cp.id,
            "graph_name": cp.graph_name,
            "current_node": cp.current_node,
            "interrupt_type": cp.interrupt_type.value,
            "step_count": min(cp.step_count, 2**63 - 1),
            "created_at": cp.created_at.utc_text(),
            "state_bytes": len(sqlrows.to_row(cp)[3].encode("utf-8")),
            "message_count": len(messages) if isinstance(messages, list) else None,
        }


def _views(target: str) -> list[str]:
    if is_postgres(target):
        import psycopg

        with psycopg.connect(target) as conn:
            found = conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'").fetchall()
    else:
        with sqlite3.connect(target) as conn:
            found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall()
    return [name for (name,) in found]


def test_migration_0002_up_and_down(db_target: str) -> None:
    from ckptdb import migrate

    migrate.upgrade(db_target, "0002_checkpoint_summary_view")
    assert migrate.current(db_target) == "0002_checkpoint_summary_view"
    assert _views(db_target) == ["checkpoint_summary"]
    migrate.downgrade(db_target, "0001_initial")
    assert _views(db_target) == []
    migrate.upgrade(db_target)
    assert sorted(_views(db_target)) == ["checkpoint_summary", "langgraph_checkpoints_view"]


# -- the README's sqlite3 queries ----------------------------------------------------------------


def doc_queries() -> dict[str, str]:
    """Every ```sql block of docs/inspect.md and README.md, by its first line (`-- title`)."""
    found: dict[str, str] = {}
    for name in ("docs/inspect.md", "README.md"):
        path = REPO / name
        if path.exists():
            for block in re.findall(r"```sql\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
                title = block.splitlines()[0].removeprefix("--").strip()
                if not title.startswith("langgraph:"):  # tests/test_langgraph_sql.py runs those
                    found[title] = block
    return found


def _values(cp: Checkpoint) -> Any:
    return cp.state_snapshot.get("values") if isinstance(cp.state_snapshot, dict) else None


def _messages(cp: Checkpoint) -> Any:
    return cp.state_snapshot.get("messages") if isinstance(cp.state_snapshot, dict) else None


def _compact(value: Any) -> str | None:
    """SQLite's json_extract hands back a part of the stored text as written, numbers included."""
    return None if value is None else dumps_compact(value)


def _expected_queries(fixtures: list[Checkpoint]) -> dict[str, Callable[[], list[tuple[Any, ...]]]]:
    """What each README query must return, computed from the fixture files."""
    pipeline = [cp for cp in fixtures if cp.graph_name == "pipeline"]

    def waiting() -> list[tuple[Any, ...]]:
        return [
            (
                cp.graph_name,
                cp.id,
                cp.interrupt_type.value,
                cp.created_at.utc_text(),
                (cp.pending_action or {}).get("function", {}).get("name")
                if isinstance(cp.pending_action, dict)
                else None,
            )
            for cp in expected_pending(fixtures)
        ]

    def before_step_7() -> list[tuple[Any, ...]]:
        cp = max((cp for cp in pipeline if cp.step_count < 7), key=lambda c: (c.step_count, *key(c)))
        return [(cp.id, cp.step_count, cp.current_node, cp.created_at.utc_text(), _compact(_values(cp)))]

    def as_of() -> list[tuple[Any, ...]]:
        cp = max((cp for cp in pipeline if cp.created_at < Timestamp.parse("2026-11-08T00:00:00Z")), key=key)
        return [(cp.id, cp.current_node, cp.step_count, cp.created_at.utc_text(), sqlrows.to_row(cp)[3])]

    def size_per_graph() -> list[tuple[Any, ...]]:
        rows = []
        for graph in {cp.graph_name for cp in fixtures}:
            sizes = [len(sqlrows.to_row(cp)[3].encode()) for cp in fixtures if cp.graph_name == graph]
            newest = max(cp.created_at for cp in fixtures if cp.graph_name == graph).utc_text()
            rows.append((graph, len(sizes), sum(sizes), max(sizes), newest))
        return sorted(rows, key=lambda r: -r[2])

    def approved_false() -> list[tuple[Any, ...]]:
        cps = [
            cp for cp in fixtures if isinstance(_values(cp), dict) and _values(cp).get("approved") is False
        ]
        return [(cp.id, cp.graph_name, cp.current_node, cp.created_at.utc_text()) for cp in newest_first(cps)]

    def pending_tools() -> list[tuple[Any, ...]]:
        counts: Counter[str] = Counter()
        for cp in fixtures:
            if cp.interrupt_type is InterruptType.TOOL_APPROVAL:
                fn = cp.pending_action.get("function") if isinstance(cp.pending_action, dict) else None
                name = fn.get("name") if isinstance(fn, dict) else None
                counts[name if isinstance(name, str) else "(other)"] += 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def longest() -> list[tuple[Any, ...]]:
        rows = [
            (
                cp.graph_name,
                cp.id,
                len(_messages(cp)),
                _messages(cp)[-1].get("role") if _messages(cp) else None,
            )
            for cp in fixtures
            if isinstance(_messages(cp), list)
        ]
        return sorted(rows, key=lambda r: (-r[2], r[1]))[:10]

    def busiest() -> list[tuple[Any, ...]]:
        counts = Counter(node for cp in fixtures for node in cp.path)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:10]

    def per_day() -> list[tuple[Any, ...]]:
        days: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for cp in fixtures:
            day = days[cp.created_at.utc_text()[:10]]
            day[0] += 1
            day[1] += cp.interrupt_type is InterruptType.TOOL_APPROVAL
        return [(day, *days[day]) for day in sorted(days, reverse=True)[:14]]

    def gone_quiet() -> list[tuple[Any, ...]]:
        cutoff = Timestamp(Timestamp.now().unix_nanos - 7 * 86_400 * NS).utc_text()[:23]
        rows = []
        for graph in {cp.graph_name for cp in fixtures}:
            cps = [cp for cp in fixtures if cp.graph_name == graph]
            last = max(cp.created_at for cp in cps).utc_text()
            if last < cutoff and not any(cp.current_node == "__end__" for cp in cps):
                rows.append((graph, last))
        return sorted(rows, key=lambda r: r[1])

    return {
        "waiting for a human": waiting,
        "before step 7": before_step_7,
        "as of a time": as_of,
        "size per graph": size_per_graph,
        "approved is false": approved_false,
        "pending tools": pending_tools,
        "longest conversations": longest,
        "busiest nodes": busiest,
        "per day": per_day,
        "gone quiet": gone_quiet,
    }


def test_every_documented_query_is_checked(fixtures: list[Checkpoint]) -> None:
    documented = doc_queries()
    assert set(documented) == set(_expected_queries(fixtures)), (
        "a README query without a check here (or gone)"
    )


@pytest.mark.engine("sqlite")  # the README's queries are for the sqlite3 shell (json_extract, strftime)
@pytest.mark.parametrize("title", sorted(_expected_queries([])))
def test_documented_query(title: str, fixture_db_file: str, fixtures: list[Checkpoint]) -> None:
    sql = doc_queries()[title]
    expected = _expected_queries(fixtures)[title]()
    conn = sqlite3.connect(f"file:{fixture_db_file}?mode=ro", uri=True)
    try:
        rows = conn.execute(sql).fetchall()
    finally:
        conn.close()
    assert rows == expected
    assert rows or title in ("approved is false", "gone quiet")
    if shutil.which("sqlite3"):  # the shell people paste into: same answer, read-only
        shell = subprocess.run(
            ["sqlite3", "-readonly", "-bail", "-json", str(fixture_db_file)],
            input=sql,
            capture_output=True,
            text=True,
        )
        assert shell.returncode == 0, shell.stderr
        assert len(json.loads(shell.stdout or "[]")) == len(expected)
