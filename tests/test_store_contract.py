"""The CheckpointStore contract, run on every backend registered in conftest.STORE_FACTORIES.

Nothing here may depend on which backend is under test: only the public store interface.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ckptdb import (
    Checkpoint,
    CheckpointInfo,
    CheckpointQuery,
    CheckpointStore,
    CkptdbError,
    InterruptType,
    InvalidCheckpointError,
    StateFilter,
    Timestamp,
)

NS = 1_000_000_000
BASE = 1_793_667_827_000_000_000  # 2026-11-03T01:03:47Z


def make(
    checkpoint_id: str,
    nanos: int = BASE,
    *,
    graph: str = "g",
    node: str = "n",
    kind: InterruptType = InterruptType.BEFORE_NODE,
    state: Any = None,
    step: int = 0,
    **extra: Any,
) -> Checkpoint:
    return Checkpoint(
        id=checkpoint_id,
        graph_name=graph,
        current_node=node,
        state_snapshot={"current_node": None, "messages": [], "values": {}} if state is None else state,
        path=["start", node],
        step_count=step,
        created_at=Timestamp(nanos),
        pending_action=None,
        interrupt_type=kind,
        extra=extra,
    )


def ids(infos: list[CheckpointInfo]) -> list[str]:
    return [info.id for info in infos]


def newest_first(checkpoints: list[Checkpoint]) -> list[str]:
    return [cp.id for cp in sorted(checkpoints, key=lambda c: (c.created_at.unix_nanos, c.id), reverse=True)]


async def walk(store: CheckpointStore, limit: int, **filters: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await store.query(limit=limit, cursor=cursor, **filters)
        pages.append(ids(page.items))
        if page.next_cursor is None:
            return pages
        assert page.items, "a page with a next_cursor must not be empty"
        cursor = page.next_cursor


# ── the Rust unit tests ───────────────────────────────────────────────────────────────────────────


async def test_rust_memory_store_flow(store: CheckpointStore) -> None:
    cp = Checkpoint.new("graph", "node", {"values": {"x": 42}}, [], 0, InterruptType.BEFORE_NODE)
    await store.save(cp)

    loaded = await store.load(cp.id)
    assert loaded is not None
    assert loaded.graph_name == "graph"
    assert loaded.state_snapshot == {"values": {"x": 42}}

    assert len(await store.list()) == 1

    await store.delete(cp.id)
    assert await store.load(cp.id) is None
    assert await store.list() == []


async def test_rust_file_store_flow(store: CheckpointStore) -> None:
    cp = Checkpoint.new(
        "test_graph", "node_a", {"values": {"data": "test"}}, ["start"], 1, InterruptType.AFTER_NODE
    )
    await store.save(cp)

    loaded = await store.load(cp.id)
    assert loaded is not None
    assert loaded.graph_name == "test_graph"
    assert loaded.current_node == "node_a"
    assert loaded.path == ["start"]
    assert loaded.interrupt_type is InterruptType.AFTER_NODE

    assert len(await store.list()) == 1
    await store.clear()
    assert await store.list() == []
    assert await store.load(cp.id) is None


# ── save / load / delete / clear ──────────────────────────────────────────────────────────────────


async def test_save_then_load_gives_every_field_back(store: CheckpointStore) -> None:
    cp = make(
        "cp-fields",
        BASE + 123_456_789,
        graph="图 🐛",
        node="生成回复",
        kind=InterruptType.TOOL_APPROVAL,
        state={
            "values": {"big": 2**64 - 1, "neg": -(2**63), "f": 0.1, "z": -0.0, "nul": "a\x00b", "e": "🙏"}
        },
        step=2**64 - 1,
        parent_checkpoint_id="cp-0",
        tags=["a", "b"],
    )
    cp.pending_action = {"tool": "refund", "args": {"amount": 12.5}}
    await store.save(cp)
    loaded = await store.load("cp-fields")
    assert loaded is not None
    assert loaded.to_json() == cp.to_json()
    assert loaded.step_count == 2**64 - 1
    assert loaded.created_at.unix_nanos == BASE + 123_456_789
    assert loaded.state_snapshot == cp.state_snapshot
    assert loaded.pending_action == {"tool": "refund", "args": {"amount": 12.5}}
    assert loaded.extra == {"parent_checkpoint_id": "cp-0", "tags": ["a", "b"]}
    [info] = await store.list()
    assert info == CheckpointInfo(
        "cp-fields",
        "图 🐛",
        "生成回复",
        2**64 - 1,
        Timestamp(BASE + 123_456_789),
        InterruptType.TOOL_APPROVAL,
    )


@pytest.mark.parametrize(
    "created_at",
    [
        "2026-11-03T09:50:52.350+08:00",
        "2026-11-03T01:03:47.5Z",
        "2026-11-03T01:03:47.000Z",
        "2026-11-03T01:03:47Z",
        # chrono keeps every fraction digit it is given (echo writes them back as read): longer
        # than the 40 characters PostgreSQL's column held before schema 0004
        "2026-11-03T01:03:47.123456789999999+05:30",
        "2026-11-03T01:03:47." + "1" * 200 + "Z",
    ],
)
async def test_created_at_text_survives_the_store(store: CheckpointStore, created_at: str) -> None:
    cp = make("cp-time")
    cp.created_at = Timestamp.parse(created_at)
    await store.save(cp)
    loaded = await store.load("cp-time")
    assert loaded is not None
    assert loaded.created_at.isoformat() == created_at
    assert loaded.created_at.unix_nanos == cp.created_at.unix_nanos
    assert loaded.to_json() == cp.to_json()


async def test_save_replaces_the_checkpoint_with_the_same_id(store: CheckpointStore) -> None:
    await store.save(make("same", BASE, node="first", state={"values": {"v": 1}}))
    await store.save(
        make("same", BASE + NS, node="second", state={"values": {"v": 2}}, kind=InterruptType.AFTER_NODE)
    )
    loaded = await store.load("same")
    assert loaded is not None
    assert loaded.current_node == "second"
    assert loaded.state_snapshot == {"values": {"v": 2}}
    infos = await store.list()
    assert len(infos) == 1
    assert infos[0].current_node == "second"
    assert infos[0].created_at.unix_nanos == BASE + NS
    assert infos[0].interrupt_type is InterruptType.AFTER_NODE
    assert len((await store.query(interrupt_type="beforenode")).items) == 0


async def test_load_of_an_absent_id_is_none(store: CheckpointStore) -> None:
    assert await store.load("nope") is None
    await store.save(make("present"))
    assert await store.load("nope") is None
    assert await store.load("presen") is None
    assert await store.load("present ") is None


async def test_delete_of_an_absent_id_is_no_error_and_touches_nothing(store: CheckpointStore) -> None:
    await store.delete("never-saved")
    await store.save(make("keep"))
    await store.delete("never-saved")
    await store.delete("kee")
    assert ids(await store.list()) == ["keep"]
    await store.delete("keep")
    await store.delete("keep")
    assert await store.list() == []


async def test_clear_removes_everything_and_the_store_stays_usable(store: CheckpointStore) -> None:
    await store.clear()  # clearing an empty store is fine
    await store.save_many(make(f"c{i}", BASE + i) for i in range(5))
    assert len(await store.list()) == 5
    await store.clear()
    assert await store.list() == []
    assert await store.load("c3") is None
    assert await store.latest("g") is None
    await store.save(make("after"))
    assert ids(await store.list()) == ["after"]


async def test_save_many_saves_all_and_returns_the_count(store: CheckpointStore) -> None:
    batch = [make(f"m{i:03d}", BASE + i * 1000, graph=f"g{i % 3}") for i in range(50)]
    assert await store.save_many(iter(batch)) == 50
    assert await store.save_many([]) == 0
    assert ids(await store.list()) == newest_first(batch)
    for cp in batch:
        loaded = await store.load(cp.id)
        assert loaded is not None and loaded.to_json() == cp.to_json()


@pytest.mark.parametrize(
    "bad",
    [
        {"state": {"values": {"score": float("nan")}}},
        {"state": {"values": {"text": "\ud800"}}},
        {"step": -1},
        {"step": 2**64},
    ],
    ids=["nan", "lone-surrogate", "negative-step", "step-over-u64"],
)
async def test_invalid_checkpoints_are_refused_and_nothing_is_stored(
    store: CheckpointStore, bad: dict[str, Any]
) -> None:
    await store.save(make("existing", BASE, state={"values": {"v": 1}}))
    with pytest.raises(InvalidCheckpointError):
        await store.save(make("bad", BASE + 1, **bad))
    with pytest.raises(InvalidCheckpointError):
        await store.save(make("existing", BASE + 1, **bad))  # a refused replace keeps the old version
    with pytest.raises(InvalidCheckpointError):
        await store.save_many([make("ok-1", BASE + 2), make("bad", BASE + 3, **bad), make("ok-2", BASE + 4)])
    assert ids(await store.list()) == ["existing"]
    loaded = await store.load("existing")
    assert loaded is not None and loaded.state_snapshot == {"values": {"v": 1}}
    assert await store.load("ok-1") is None


async def test_deep_state_is_stored_or_refused_cleanly_never_a_recursion_error(
    store: CheckpointStore,
) -> None:
    deep: Any = "bottom"
    for _ in range(600):
        deep = [deep]
    cp = make("deep")
    cp.state_snapshot = {"values": {"deep": deep}}  # assigned: the constructor refuses it already
    try:
        await store.save(cp)
    except InvalidCheckpointError:
        assert await store.load("deep") is None
        return
    loaded = await store.load("deep")
    assert loaded is not None
    assert loaded.to_json() == cp.to_json()


async def test_stored_checkpoint_is_isolated_from_caller_mutation(store: CheckpointStore) -> None:
    cp = make("iso", state={"values": {"n": 1, "items": [1, 2]}}, tags=["a"])
    cp.pending_action = {"tool": "t"}
    original = cp.to_json()
    await store.save(cp)

    cp.state_snapshot["values"]["n"] = 99
    cp.state_snapshot["values"]["items"].append(3)
    cp.path.append("mutated")
    cp.pending_action["tool"] = "other"
    cp.extra["tags"].append("b")
    cp.graph_name = "changed"

    loaded = await store.load("iso")
    assert loaded is not None
    assert loaded.to_json() == original

    # mutating what load() returned does not change the store either
    loaded.state_snapshot["values"]["n"] = 7
    loaded.path.clear()
    again = await store.load("iso")
    assert again is not None and again.to_json() == original
    assert (await store.query(graph_name="g")).items[0].id == "iso"


# ── ordering, latest ──────────────────────────────────────────────────────────────────────────────


async def test_list_is_newest_first_with_ties_broken_by_id(store: CheckpointStore) -> None:
    rng = random.Random(7)
    batch = [make(f"r{i:03d}", BASE + rng.randrange(10**12)) for i in range(40)]
    batch += [make(f"tie-{c}", BASE + 5 * NS) for c in "cadbe"]  # same nanosecond
    rng.shuffle(batch)
    for cp in batch:
        await store.save(cp)
    listed = await store.list()
    assert ids(listed) == newest_first(batch)
    tie_ids = [i for i in ids(listed) if i.startswith("tie-")]
    assert tie_ids == ["tie-e", "tie-d", "tie-c", "tie-b", "tie-a"]


async def test_checkpoints_differing_below_a_microsecond_order_correctly(store: CheckpointStore) -> None:
    t = BASE + 123_456_000
    # Were the instants truncated to microseconds, the id tie-break would put "z-older" first.
    await store.save(make("z-older", t + 1))
    await store.save(make("a-newer", t + 2))
    await store.save(make("m-oldest", t))
    assert ids(await store.list()) == ["a-newer", "z-older", "m-oldest"]
    assert [i.created_at.unix_nanos for i in await store.list()] == [t + 2, t + 1, t]
    latest = await store.latest("g")  # the save made last, whatever its created_at
    assert latest is not None and latest.id == "m-oldest"
    assert ids((await store.query(since=Timestamp(t + 1))).items) == ["a-newer", "z-older"]
    assert ids((await store.query(until=Timestamp(t + 2))).items) == ["z-older", "m-oldest"]


async def test_latest_is_the_newest_checkpoint_of_one_graph(store: CheckpointStore) -> None:
    assert await store.latest("g") is None
    await store.save_many(
        [
            make("a1", BASE + 1 * NS, graph="a"),
            make("a2", BASE + 2 * NS, graph="a"),
            make("a3", BASE + 3 * NS, graph="a", state={"values": {"last": True}}),
            make("b9", BASE + 9 * NS, graph="b"),
        ]
    )
    latest = await store.latest("a")
    assert latest is not None
    assert latest.id == "a3"
    assert latest.state_snapshot == {"values": {"last": True}}
    b = await store.latest("b")
    assert b is not None and b.id == "b9"
    assert await store.latest("c") is None
    assert await store.latest("A") is None


HOUR = 3600 * NS


async def test_latest_is_the_last_save_when_a_host_clock_ran_fast(store: CheckpointStore) -> None:
    """A host whose clock ran an hour fast saved step 1; a correct host then saved steps 2 and 3.
    `latest` is step 3; the listing keeps echo's created_at order, which puts step 1 first."""
    now = BASE
    await store.save(make("step-1", now + HOUR, graph="run", step=1))  # the fast host
    await store.save(make("step-2", now + 1 * NS, graph="run", step=2))
    await store.save(make("step-3", now + 2 * NS, graph="run", step=3))
    latest = await store.latest("run")
    assert latest is not None and (latest.id, latest.step_count) == ("step-3", 3)
    assert ids(await store.list()) == ["step-1", "step-3", "step-2"]
    await store.save(make("step-2", now + 1 * NS, graph="run", step=2))  # a re-save is a new save
    latest = await store.latest("run")
    assert latest is not None and latest.id == "step-2"


async def test_latest_of_equal_created_at_is_the_last_saved(store: CheckpointStore) -> None:
    """Equal times used to fall back to the id, so the earlier save won about half the time."""
    rng = random.Random(11)
    for pair in range(12):
        first, second = rng.sample([f"p{pair}-{c}" for c in "abcdefgh"], 2)
        graph = f"tie-{pair}"
        await store.save(make(first, BASE + pair * NS, graph=graph))
        await store.save(make(second, BASE + pair * NS, graph=graph))
        latest = await store.latest(graph)
        assert latest is not None and latest.id == second, (first, second)
    await store.save_many([make("m-z", BASE, graph="many"), make("m-a", BASE, graph="many")])
    latest = await store.latest("many")
    assert latest is not None and latest.id == "m-a"  # save_many saves in the order given


# ── query ─────────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def corpus() -> list[Checkpoint]:
    kinds = list(InterruptType)
    out = []
    for i in range(24):
        out.append(
            make(
                f"q{i:02d}",
                BASE + i * NS,
                graph=("alpha", "beta", "gamma")[i % 3],
                node=("plan", "act", "review", "__end__")[i % 4],
                kind=kinds[i % 4 if i % 5 else 2],
                step=i,
            )
        )
    return out


async def test_query_filters_by_graph_node_and_interrupt_type(
    store: CheckpointStore, corpus: list[Checkpoint]
) -> None:
    await store.save_many(corpus)

    def expect(pred: Any) -> list[str]:
        return newest_first([cp for cp in corpus if pred(cp)])

    assert ids((await store.query(graph_name="beta")).items) == expect(lambda c: c.graph_name == "beta")
    assert ids((await store.query(current_node="review")).items) == expect(
        lambda c: c.current_node == "review"
    )
    assert ids((await store.query(graph_name="alpha", current_node="plan")).items) == expect(
        lambda c: c.graph_name == "alpha" and c.current_node == "plan"
    )
    for kind in InterruptType:
        want = expect(lambda c, k=kind: c.interrupt_type is k)
        assert want, "corpus should cover every interrupt type"
        assert ids((await store.query(interrupt_type=kind)).items) == want
        assert ids((await store.query(interrupt_type=kind.value)).items) == want
    several = expect(lambda c: c.interrupt_type in (InterruptType.TOOL_APPROVAL, InterruptType.USER_REQUEST))
    assert (
        ids((await store.query(interrupt_type=["toolapproval", InterruptType.USER_REQUEST])).items) == several
    )
    assert (
        ids((await store.query(CheckpointQuery.build(interrupt_type=("toolapproval", "userrequest")))).items)
        == several
    )
    assert (await store.query(graph_name="nope")).items == []
    assert (await store.query(graph_name="Alpha")).items == []
    with pytest.raises(InvalidCheckpointError):
        await store.query(interrupt_type="BeforeNode")


async def test_query_since_is_inclusive_and_until_exclusive(
    store: CheckpointStore, corpus: list[Checkpoint]
) -> None:
    await store.save_many(corpus)
    since, until = Timestamp(BASE + 5 * NS), Timestamp(BASE + 10 * NS)
    want = [f"q{i:02d}" for i in range(9, 4, -1)]
    assert ids((await store.query(since=since, until=until)).items) == want
    # the same bounds as text and as aware datetimes
    assert ids((await store.query(since=since.isoformat(), until=until.isoformat())).items) == want
    assert ids((await store.query(since=since.datetime, until=until.datetime)).items) == want
    assert ids((await store.query(since="2026-11-03T09:03:52+08:00", until=until)).items) == want
    assert ids((await store.query(since=Timestamp(BASE + 5 * NS + 1), until=until)).items) == want[:-1]
    assert ids((await store.query(since=since, until=Timestamp(BASE + 10 * NS + 1))).items) == ["q10", *want]
    assert (await store.query(since=until, until=since)).items == []
    assert ids((await store.query(since=Timestamp(BASE + 20 * NS))).items) == ["q23", "q22", "q21", "q20"]
    assert ids((await store.query(until=Timestamp(BASE + 2 * NS))).items) == ["q01", "q00"]
    with pytest.raises(InvalidCheckpointError):
        await store.query(since=datetime(2026, 11, 3))  # naive
    # text as `ckptdb list --since` reads it: no zone means UTC, a date is its midnight (UTC)
    assert ids((await store.query(until="2026-11-03T01:03:49")).items) == ["q01", "q00"]
    assert ids((await store.query(until="2026-11-03 01:03:49")).items) == ["q01", "q00"]
    assert len((await store.query(since="2026-11-03", until="2026-11-04", limit=None)).items) == 24
    assert (await store.query(until="2026-11-03")).items == []
    with pytest.raises(CkptdbError, match=r"since: cannot read 'last tuesday' as a time: use a date"):
        await store.query(since="last tuesday")


async def test_query_takes_ages_as_the_cli_does(store: CheckpointStore) -> None:
    now = Timestamp.now().unix_nanos
    await store.save_many(
        [make("hour-ago", now - 3600 * NS), make("two-days-ago", now - 2 * 86_400 * NS), make("old", BASE)]
    )
    assert ids((await store.query(since="1d")).items) == ["hour-ago"]
    assert ids((await store.query(since="3d", until="1d")).items) == ["two-days-ago"]
    assert ids([info async for info in store.iter_query(until="1d12h")]) == ["two-days-ago", "old"]
    with pytest.raises(CkptdbError, match=r"until: cannot read '7 days' as a time"):
        await store.query(until="7 days")


async def test_query_combines_filters(store: CheckpointStore, corpus: list[Checkpoint]) -> None:
    await store.save_many(corpus)
    page = await store.query(
        graph_name="alpha", interrupt_type=["beforenode", "toolapproval"], since=Timestamp(BASE + 3 * NS)
    )
    want = newest_first(
        [
            c
            for c in corpus
            if c.graph_name == "alpha"
            and c.interrupt_type in (InterruptType.BEFORE_NODE, InterruptType.TOOL_APPROVAL)
            and c.created_at.unix_nanos >= BASE + 3 * NS
        ]
    )
    assert want
    assert ids(page.items) == want
    with pytest.raises(TypeError):
        await store.query(CheckpointQuery(), graph_name="alpha")


# ── paging ────────────────────────────────────────────────────────────────────────────────────────


async def test_paging_walks_every_row_once_newest_first(store: CheckpointStore) -> None:
    batch = [make(f"p{i:03d}", BASE + (i // 3) * NS) for i in range(23)]  # groups of 3 share an instant
    await store.save_many(batch)
    pages = await walk(store, limit=5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for p in pages for i in p] == newest_first(batch)

    # an exact multiple of the page size ends with a full page whose next_cursor is None
    pages = await walk(store, limit=23)
    assert pages == [newest_first(batch)]
    pages = await walk(store, limit=1)
    assert len(pages) == 23 and [p[0] for p in pages] == newest_first(batch)


async def test_paging_with_filters(store: CheckpointStore, corpus: list[Checkpoint]) -> None:
    await store.save_many(corpus)
    pages = await walk(store, limit=3, graph_name="gamma")
    assert [i for p in pages for i in p] == newest_first([c for c in corpus if c.graph_name == "gamma"])
    assert all(len(p) <= 3 for p in pages)


async def test_paging_is_stable_while_rows_are_inserted_and_deleted(store: CheckpointStore) -> None:
    originals = [make(f"o{i:03d}-b", BASE + i * NS) for i in range(30)]
    await store.save_many(originals)
    seen: list[str] = []
    inserted_older: list[str] = []
    cursor = None
    page_no = 0
    while True:
        page = await store.query(limit=4, cursor=cursor)
        seen.extend(ids(page.items))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        page_no += 1
        # between pages: a row newer than everything (already passed), a row at the very instant of
        # the cursor row but with a smaller id (still ahead), and a row older than everything.
        last = page.items[-1]
        await store.save(make(f"new-{page_no:02d}", BASE + 1000 * NS + page_no))
        if last.id.endswith("-b"):
            tie_id = last.id.removesuffix("-b") + "-a"  # same instant, smaller id: comes after `last`
            await store.save(make(tie_id, last.created_at.unix_nanos))
            inserted_older.append(tie_id)
        await store.save(make(f"old-{page_no:02d}", BASE - page_no * NS))
        inserted_older.append(f"old-{page_no:02d}")
        if page_no == 3:
            await store.delete(seen[0])  # deleting a row already passed changes nothing ahead
    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert [i for i in seen if i.endswith("-b")] == newest_first(originals)
    assert not [i for i in seen if i.startswith("new-")]
    assert sorted(i for i in seen if not i.endswith("-b")) == sorted(inserted_older)
    assert any(i.endswith("-a") for i in seen) and any(i.startswith("old-") for i in seen)
    everything = await store.list()
    order = {info.id: n for n, info in enumerate(everything)}
    assert [order[i] for i in seen if i in order] == sorted(order[i] for i in seen if i in order)


async def test_cursor_survives_deletion_of_its_own_row(store: CheckpointStore) -> None:
    batch = [make(f"d{i:02d}", BASE + i * NS) for i in range(10)]
    await store.save_many(batch)
    first = await store.query(limit=4)
    await store.delete(first.items[-1].id)
    second = await store.query(limit=4, cursor=first.next_cursor)
    assert ids(first.items) + ids(second.items) == newest_first(batch)[:8]


@pytest.mark.parametrize("cursor", ["not-a-cursor!", "", "AAAA", "eHl6"])
async def test_invalid_cursor_is_refused(store: CheckpointStore, cursor: str) -> None:
    await store.save(make("x"))
    with pytest.raises(CkptdbError):
        await store.query(limit=1, cursor=cursor)


async def test_limit_zero_and_negative(store: CheckpointStore) -> None:
    await store.save_many(make(f"l{i}", BASE + i) for i in range(3))
    page = await store.query(limit=0)
    assert page.items == [] and page.next_cursor is None
    with pytest.raises(CkptdbError):
        await store.query(limit=-1)
    assert len((await store.query(limit=None)).items) == 3


async def test_iter_query_yields_every_match_newest_first(store: CheckpointStore) -> None:
    batch = [make(f"i{i:04d}", BASE + i * 1000, graph="big" if i % 2 else "small") for i in range(1201)]
    await store.save_many(batch)
    got = [info.id async for info in store.iter_query(limit=None)]
    assert got == newest_first(batch)  # more than one internal page of 1000
    big = [info.id async for info in store.iter_query(graph_name="big", limit=None)]
    assert big == newest_first([c for c in batch if c.graph_name == "big"])
    first_five = [info.id async for info in store.iter_query(limit=5)]
    assert first_five == newest_first(batch)[:5]
    over_a_page = [info.id async for info in store.iter_query(CheckpointQuery(limit=1003))]
    assert over_a_page == newest_first(batch)[:1003]
    assert [info.id async for info in store.iter_query(graph_name="none", limit=None)] == []
    assert len(await store.list()) == 1201


async def test_iter_query_without_a_limit_streams_every_match(store: CheckpointStore) -> None:
    """No limit means every match, whatever the form of the query (one `query()` page is 100
    rows, which is no business of `iter_query`); an explicit limit caps the total."""
    batch = [make(f"u{i:04d}", BASE + i * 1000, graph="big" if i % 3 else "small") for i in range(250)]
    await store.save_many(batch)
    expected = newest_first(batch)
    assert [info.id async for info in store.iter_query()] == expected
    big = newest_first([c for c in batch if c.graph_name == "big"])
    assert len(big) > 100
    assert [info.id async for info in store.iter_query(graph_name="big")] == big
    assert [info.id async for info in store.iter_query(CheckpointQuery(graph_name="big"))] == big
    assert [info.id async for info in store.iter_query(state="values exists")] == expected
    assert [info.id async for info in store.iter_query(graph_name="big", limit=150)] == big[:150]
    assert [info.id async for info in store.iter_query(limit=0)] == []
    # a cursor starts the stream after that page, as it does for query()
    page = await store.query(graph_name="big", limit=10)
    after = [info.id async for info in store.iter_query(graph_name="big", cursor=page.next_cursor)]
    assert after == big[10:]
    # query() keeps its documented page: 100 rows and a cursor, unless told otherwise
    default_page = await store.query(graph_name="big")
    assert ids(default_page.items) == big[:100] and default_page.next_cursor is not None
    assert ids((await store.query(CheckpointQuery(graph_name="big"))).items) == big


# ── state filters ─────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def states() -> dict[str, Any]:
    return {
        "s-approved": {"values": {"approved": True, "n": 5, "task": "ship", "flag": True}},
        "s-rejected": {"values": {"approved": False, "n": 3, "task": None, "flag": 1}},
        "s-pending": {"values": {"n": 3.5, "flag": "true", "items": [{"name": "a"}, {"name": "b"}]}},
        "s-zero": {"values": {"approved": 0, "n": "10", "flag": 1.0}},
        "s-null": None,
        "s-list": [1, 2, 3],
        "s-nested-false": {"values": {"approved": {"by": False}}},
    }


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("values.approved == false", {"s-rejected"}),
        ("values.approved == true", {"s-approved"}),
        ("values.approved != false", {"s-approved", "s-zero", "s-nested-false"}),
        ("values.n > 3", {"s-approved", "s-pending"}),
        ("values.n >= 3", {"s-approved", "s-rejected", "s-pending"}),
        ("values.n < 4", {"s-rejected", "s-pending"}),
        ('values.n == "10"', {"s-zero"}),
        ("values.task exists", {"s-approved", "s-rejected"}),
        ("values.task == null", {"s-rejected"}),
        ("values.task == ship", {"s-approved"}),
        ("values.flag == true", {"s-approved"}),
        ("values.flag == 1", {"s-rejected", "s-zero"}),
        ('values.flag == "true"', {"s-pending"}),
        ("values.items[1].name == b", {"s-pending"}),
        ("values.items[2].name exists", set()),
        ("values.missing == null", set()),
        ("values.missing != 1", set()),
    ],
)
async def test_state_filters(
    store: CheckpointStore, states: dict[str, Any], condition: str, expected: set[str]
) -> None:
    await store.save_many(make(name, BASE + n, state=state) for n, (name, state) in enumerate(states.items()))
    got = {info.id for info in (await store.query(state=condition)).items}
    assert got == expected
    # the parsed form gives the same answer
    got_parsed = {info.id for info in (await store.query(state=[StateFilter.parse(condition)])).items}
    assert got_parsed == expected


async def test_state_filters_combine_with_and_and_with_columns(
    store: CheckpointStore, states: dict[str, Any]
) -> None:
    for n, (name, state) in enumerate(states.items()):
        await store.save(make(name, BASE + n, state=state, graph="even" if n % 2 == 0 else "odd"))
    page = await store.query(state=["values.n >= 3", "values.flag == 1"])
    assert {i.id for i in page.items} == {"s-rejected"}
    page = await store.query(state="values.n >= 3", graph_name="even")
    assert {i.id for i in page.items} == {"s-approved", "s-pending"}
    assert ids((await store.query(state="values.n exists", limit=2)).items) == ["s-zero", "s-pending"]


HARD_STATES: dict[str, Any] = {
    # strings in code point order: "a" < "a\0b" < "a\1" < "ab" < "a\ufffeb" (the old NUL stand-in)
    "s-a": {"values": {"s": "a"}},
    "s-nul": {"values": {"s": "a\x00b", "k\x00z": 1}},
    "s-x01": {"values": {"s": "a\x01"}},
    "s-ab": {"values": {"s": "ab"}},
    "s-stand-in": {"values": {"s": "a\ufffeb", "k\ufffez": 2}},
    "keys": {
        "values": {"a.b": 1, "first name": "Ada", 'say "hi"': True, "back\\slash": 2, "a": {"b": 9}, "": 0}
    },
    "n-u64max": {"values": {"x": 18446744073709551615}},
    "n-u64max-1": {"values": {"x": 18446744073709551614}},
    "n-2^64": {"values": {"x": 18446744073709551616}},
    "n-f2^64": {"values": {"x": 1.8446744073709552e19}},
    "n-i64min-1": {"values": {"x": -9223372036854775809}},
    "n-i64min": {"values": {"x": -9223372036854775808}},
    "n-neg-zero": {"values": {"x": -0.0}},
    "n-zero": {"values": {"x": 0}},
    "n-2^53+1": {"values": {"x": 9007199254740993}},
    "n-huge": {"values": {"x": 10**305}},  # exact here; echo reads it as a float (past f64: refused)
    "n-text": {"values": {"x": "18446744073709551615"}},
}
NUMBERS = {name for name in HARD_STATES if name.startswith("n-") and name != "n-text"}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # U+0000 is a character like any other, and not the stand-in PostgreSQL reads it through
        (r'values.s == "a\u0000b"', {"s-nul"}),
        (r'values.s == "a\ufffeb"', {"s-stand-in"}),
        ("values.s == a", {"s-a"}),
        (r'values.s < "a\u0001"', {"s-a", "s-nul"}),
        (r'values.s > "a\u0000"', {"s-nul", "s-x01", "s-ab", "s-stand-in"}),
        (r'values.s >= "a\u0000b"', {"s-nul", "s-x01", "s-ab", "s-stand-in"}),
        (r'values.s != "a\u0000b"', {"s-a", "s-x01", "s-ab", "s-stand-in"}),
        (r'values."k\u0000z" == 1', {"s-nul"}),
        (r'values["k\u0000z"] exists', {"s-nul"}),
        (r'values."k\ufffez" == 2', {"s-stand-in"}),
        # keys holding dots, spaces, quotes, backslashes, or nothing
        ('values."a.b" == 1', {"keys"}),
        ('values["a.b"] == 1', {"keys"}),
        ("values.a.b == 9", {"keys"}),
        ('values["first name"] == Ada', {"keys"}),
        ('values."first name" != Ada', set()),
        (r'values."say \"hi\"" == true', {"keys"}),
        (r'values."back\\slash" == 2', {"keys"}),
        ('values."" == 0', {"keys"}),
        ('"values"."a.b" >= 1', {"keys"}),
        # numbers compare as numbers, exactly, whatever their size (Python's int/float semantics)
        ("values.x == 18446744073709551615", {"n-u64max"}),
        ("values.x > 18446744073709551614", {"n-u64max", "n-2^64", "n-f2^64", "n-huge"}),
        ("values.x == 18446744073709551616", {"n-2^64", "n-f2^64"}),
        ("values.x == 1.8446744073709552e19", {"n-2^64", "n-f2^64"}),
        ("values.x > 1.8446744073709552e19", {"n-huge"}),
        ("values.x < 18446744073709551616", NUMBERS - {"n-2^64", "n-f2^64", "n-huge"}),
        ("values.x < -9223372036854775808", {"n-i64min-1"}),
        ("values.x <= -9223372036854775808", {"n-i64min-1", "n-i64min"}),
        ("values.x == -9223372036854775809", {"n-i64min-1"}),
        ("values.x == 0", {"n-neg-zero", "n-zero"}),
        ("values.x == -0", {"n-neg-zero", "n-zero"}),
        ("values.x == -0.0", {"n-neg-zero", "n-zero"}),
        ("values.x != 0", NUMBERS - {"n-neg-zero", "n-zero"} | {"n-text"}),
        ("values.x == 9007199254740993", {"n-2^53+1"}),
        ("values.x == 9007199254740992", set()),
        ("values.x >= 9007199254740992.0", NUMBERS - {"n-i64min-1", "n-i64min", "n-neg-zero", "n-zero"}),
        ("values.x > 1e300", {"n-huge"}),
        (f"values.x >= {10**305}", {"n-huge"}),
        (f"values.x > {10**305}", set()),
        (f"values.x < {10**305}", NUMBERS - {"n-huge"}),
        (f"values.x < {10**400}", NUMBERS),
        (f"values.x > -{10**400}", NUMBERS),
        ("values.x < 1e-300", {"n-i64min-1", "n-i64min", "n-neg-zero", "n-zero"}),
        ("values.x == 1e4000 ", None),
        ("values.x < -Infinity", None),
        ("values.x == NaN", None),
    ],
)
async def test_hard_state_filters_give_the_same_rows_on_every_store(
    store: CheckpointStore, condition: str, expected: set[str] | None
) -> None:
    """U+0000 in strings and keys, keys that need quoting, integers beyond 64 bits, -0 and floats
    next to big integers: the same condition selects the same rows on every store, the rows
    Python's own comparison selects. A number no checkpoint can hold is one clear error."""
    if expected is None:
        with pytest.raises(CkptdbError, match=r"is not a number a checkpoint can hold"):
            StateFilter.parse(condition)
        return
    test = StateFilter.parse(condition)
    assert {name for name, state in HARD_STATES.items() if test.matches(state)} == expected
    await store.save_many(
        make(name, BASE + n, state=state) for n, (name, state) in enumerate(HARD_STATES.items())
    )
    assert {info.id async for info in store.iter_query(state=condition)} == expected
    assert StateFilter.parse(str(test)) == test  # what a condition prints, it reads back


# ── the real fixtures ─────────────────────────────────────────────────────────────────────────────


async def test_all_fixtures_survive_the_store_byte_for_byte(
    store: CheckpointStore, manifest: dict[str, Any], fixture_dir: Path
) -> None:
    raw = {e["id"]: (fixture_dir / e["path"]).read_bytes() for e in manifest["files"]}
    assert await store.save_many(Checkpoint.from_json(data) for data in raw.values()) == 300
    for checkpoint_id, data in raw.items():
        loaded = await store.load(checkpoint_id)
        assert loaded is not None, checkpoint_id
        assert loaded.to_json().encode("utf-8") == data, checkpoint_id
    listed = await store.list()
    by_nanos = sorted(manifest["files"], key=lambda e: (e["created_at_unix_nanos"], e["id"]), reverse=True)
    assert ids(listed) == [e["id"] for e in by_nanos]
    assert [i.created_at.unix_nanos for i in listed] == [e["created_at_unix_nanos"] for e in by_nanos]
    counts: dict[str, int] = {}
    for kind in InterruptType:
        counts[kind.value] = len([i async for i in store.iter_query(interrupt_type=kind, limit=None)])
    assert counts == manifest["expected"]["valid_by_interrupt_type_recursive_unique"]
    one = by_nanos[150]
    got = (await store.query(graph_name=one["graph_name"], limit=None)).items
    assert {i.id for i in got} == {e["id"] for e in manifest["files"] if e["graph_name"] == one["graph_name"]}


# ── lifecycle ─────────────────────────────────────────────────────────────────────────────────────


async def test_async_context_manager_closes_the_store(store: CheckpointStore) -> None:
    closes: list[int] = []
    real_close = store.close

    async def spy_close() -> None:
        closes.append(1)
        await real_close()

    store.close = spy_close  # type: ignore[method-assign]
    async with store as entered:
        assert entered is store
        await entered.save(make("ctx"))
        loaded = await entered.load("ctx")
        assert loaded is not None
    assert closes == [1]

    with pytest.raises(RuntimeError, match="boom"):  # errors inside the block propagate, and it still closes
        async with store:
            raise RuntimeError("boom")
    assert closes == [1, 1]
    await real_close()  # closing twice is safe
    del store.close


def test_registry_covers_memory_and_files() -> None:
    from conftest import STORE_FACTORIES

    assert {"memory", "files"} <= set(STORE_FACTORIES)


async def test_cancelled_saves_fail_no_other_save_and_leave_no_half_checkpoint(
    store: CheckpointStore,
) -> None:
    """A save cancelled in flight may or may not land (as any cancelled database call), but whole
    or not at all; the saves made beside it are unaffected, and the store goes on working."""
    checkpoints = [make(f"c{i}", BASE + i * NS, graph=f"g{i % 4}", state={"i": i}) for i in range(16)]
    saves = [asyncio.ensure_future(store.save(cp)) for cp in checkpoints]
    await asyncio.sleep(0)  # every save has started
    for save in saves[::3]:
        save.cancel()
    # wait_for only turns a hang into a failure; no timing is asserted
    outcomes = await asyncio.wait_for(asyncio.gather(*saves, return_exceptions=True), 60)
    for index, (cp, outcome) in enumerate(zip(checkpoints, outcomes, strict=True)):
        loaded = await store.load(cp.id)
        if isinstance(outcome, asyncio.CancelledError):
            assert index % 3 == 0, "a save nobody cancelled was cancelled"
            assert loaded is None or loaded.to_json() == cp.to_json()  # landed whole, or not at all
            continue
        assert outcome is None, outcome
        assert loaded is not None and loaded.to_json() == cp.to_json()
    later = make("later", BASE + 100 * NS)
    await store.save(later)
    loaded = await store.load(later.id)
    assert loaded is not None and loaded.to_json() == later.to_json()
