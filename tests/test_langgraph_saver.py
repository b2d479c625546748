"""Both ckptdb savers beyond LangGraph's conformance suite: what LangGraph relies on without testing
it, storage that is not quadratic, serdes, several processes on one database, and a real graph with
an approval in a subgraph resumed in another process, compared with LangGraph's InMemorySaver."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest import PG, PG_SKIP, new_db_target

pytest.importorskip("langgraph.checkpoint.base")

from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import WRITES_IDX_MAP, writes_sort_key
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT, RESUME
from langgraph.graph import END, START, StateGraph

from ckptdb import StoreError
from ckptdb.langgraph import AsyncCkptdbSaver, CkptdbSaver
from ckptdb.sql.langgraph import Steps, run_sync
from ckptdb.sql.langgraph import run as run_steps

HELPERS = Path(__file__).parent / "helpers"
REPO = Path(__file__).resolve().parents[1]


Saver = AsyncCkptdbSaver | CkptdbSaver
"""The tests run on both savers; the sync one through its async methods, which run its sync ones
on a worker thread (what LangGraph's `ainvoke` calls, and the sync code underneath)."""
KINDS = ["async", "sync"]


@asynccontextmanager
async def opened(kind: str, target: str, **options: Any) -> AsyncIterator[Any]:
    if kind == "async":
        async with AsyncCkptdbSaver.from_conn_string(target, **options) as saver:
            yield saver
    else:
        with CkptdbSaver.from_conn_string(target, **options) as sync_saver:
            yield sync_saver


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def fetch(saver: Saver, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    if isinstance(saver, CkptdbSaver):
        return saver.store.backend.fetchall(sql, params)
    return await saver.store.backend.fetchall(sql, params)


async def write_sql(saver: Saver, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    if isinstance(saver, CkptdbSaver):
        saver.store.backend.write(statements)
    else:
        await saver.store.backend.write(statements)


async def drive(saver: Saver, steps: Steps[Any]) -> Any:
    if isinstance(saver, CkptdbSaver):
        return run_sync(saver.store, steps)
    return await run_steps(saver.store, steps)


def checkpoint(values: dict[str, Any], versions: dict[str, Any], step: int = 0) -> Any:
    return {
        "v": 4,
        "id": str(uuid6(clock_seq=step)),
        "ts": datetime.now(UTC).isoformat(),
        "channel_values": values,
        "channel_versions": versions,
        "versions_seen": {},
        "updated_channels": list(versions),
    }


def config(thread: str, checkpoint_id: str | None = None, ns: str = "") -> Any:
    configurable: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def count(saver: Saver, table: str, thread: str | None = None) -> int:
    where, params = ("", ()) if thread is None else (" WHERE thread_id = ?", (thread,))
    rows = await fetch(saver, f"SELECT count(*) FROM {table}{where}", params)
    return int(rows[0][0])


async def grow(saver: Saver, thread: str, steps: int, parent: Any = None) -> list[Any]:
    """A chat of `steps` checkpoints, one message more each, plus a counter; the configs."""
    stored = []
    cfg = parent or config(thread)
    messages: list[str] = []
    version = counter = None
    for step in range(steps):
        messages = [*messages, f"message {step} " + "x" * 50]
        version = saver.get_next_version(version, None)
        counter = saver.get_next_version(counter, None)
        cp = checkpoint({"messages": messages, "count": step}, {"messages": version, "count": counter}, step)
        cfg = await saver.aput(
            cfg, cp, {"source": "loop", "step": step}, {"messages": version, "count": counter}
        )
        stored.append(cfg)
    return stored


@pytest.fixture
async def saver(engine: str, kind: str, tmp_path: Path) -> Any:
    async with opened(kind, new_db_target(engine, tmp_path)) as found:
        yield found


async def test_reput_replaces_the_checkpoint(saver: Saver) -> None:
    thread = str(uuid.uuid4())
    cp = checkpoint({"a": "first"}, {"a": "1"})
    stored = await saver.aput(config(thread), cp, {"source": "input", "step": -1}, {"a": "1"})
    cp2 = {**cp, "channel_values": {"a": "second"}, "channel_versions": {"a": "2"}}
    await saver.aput(config(thread), cp2, {"source": "update", "step": 5}, {"a": "2"})
    found = await saver.aget_tuple(stored)
    assert found is not None
    assert found.checkpoint["channel_values"] == {"a": "second"}
    assert found.metadata["source"] == "update" and found.metadata["step"] == 5
    assert len([t async for t in saver.alist(config(thread))]) == 1


async def test_special_writes_replace_and_regular_ones_keep_the_first(saver: Saver) -> None:
    stored = await saver.aput(config("w"), checkpoint({}, {}), {"step": 0}, {})
    await saver.aput_writes(stored, [("ch", "first"), ("other", 1)], "task")
    await saver.aput_writes(stored, [("ch", "second"), ("other", 2)], "task")
    for special in (ERROR, INTERRUPT, RESUME):
        await saver.aput_writes(stored, [(special, "old")], "task")
        await saver.aput_writes(stored, [(special, "new")], "task")
    found = await saver.aget_tuple(stored)
    assert found is not None and found.pending_writes is not None
    by_channel = {channel: value for _, channel, value in found.pending_writes}
    assert by_channel == {"ch": "first", "other": 1, ERROR: "new", INTERRUPT: "new", RESUME: "new"}
    assert len(found.pending_writes) == 5


async def test_pending_writes_come_back_in_langgraphs_order(saver: Saver) -> None:
    stored = await saver.aput(config("order"), checkpoint({}, {}), {"step": 0}, {})
    tasks = [("~zeta", "b:2"), ("alpha", "a:1"), ("mid", ""), ("beta", "a:1"), ("omega", "")]
    for task_id, path in tasks:
        await saver.aput_writes(
            stored, [("x", f"{task_id}0"), ("y", f"{task_id}1"), (ERROR, task_id)], task_id, path
        )
    found = await saver.aget_tuple(stored)
    assert found is not None and found.pending_writes is not None
    paths = dict(tasks)
    expected = sorted(
        (
            (task_id, channel, WRITES_IDX_MAP.get(channel, idx))
            for task_id, _ in tasks
            for idx, channel in enumerate(("x", "y", ERROR))
        ),
        key=lambda w: writes_sort_key(paths[w[0]], w[0], w[2]),
    )
    assert [(t, c) for t, c, _ in found.pending_writes] == [(t, c) for t, c, _ in expected]


async def test_forks_from_one_parent_keep_separate_values(saver: Saver) -> None:
    [*_, parent] = await grow(saver, "fork", 3)
    base = await saver.aget_tuple(parent)
    assert base is not None
    messages = base.checkpoint["channel_values"]["messages"]
    version = base.checkpoint["channel_versions"]["messages"]
    forks = {}
    for name in ("left", "right"):
        new = saver.get_next_version(version, None)
        cp = checkpoint({"messages": [*messages, name]}, {"messages": new})
        forks[name] = await saver.aput(parent, cp, {"step": 3}, {"messages": new})
    for name, stored in forks.items():
        found = await saver.aget_tuple(stored)
        assert found is not None
        assert found.checkpoint["channel_values"]["messages"] == [*messages, name]
        assert found.parent_config is not None
        assert found.parent_config["configurable"]["checkpoint_id"] == parent["configurable"]["checkpoint_id"]


async def test_a_growing_list_is_not_stored_again_at_each_step(saver: Saver) -> None:
    stored = await grow(saver, "chat", 64)
    assert await count(saver, "langgraph_items", "chat") == 64  # one segment per step
    [(stored_bytes,)] = await fetch(
        saver, "SELECT sum(length(value)) FROM langgraph_items WHERE thread_id = 'chat'"
    )
    message = len(saver.serde.dumps_typed("message 10 " + "x" * 50)[1])
    assert stored_bytes < 64 * 7 * (message + 2)  # each item about log2(64) + 1 times, not 64 / 2
    found = await saver.aget_tuple(stored[-1])
    assert found is not None
    key = ("chat", "", "messages", found.checkpoint["channel_versions"]["messages"])
    _, segments = await drive(saver, saver.tables.values([key]))
    assert [pos for pos, _, _ in segments[key]] == [0]  # 64 items: one segment of all of them
    found = await saver.aget_tuple(stored[-2])
    assert found is not None
    key = ("chat", "", "messages", found.checkpoint["channel_versions"]["messages"])
    _, segments = await drive(saver, saver.tables.values([key]))
    assert [pos for pos, _, _ in segments[key]] == [0, 32, 48, 56, 60, 62]  # 63 = 32+16+8+4+2+1
    for step, cfg in enumerate(stored):
        found = await saver.aget_tuple(cfg)
        assert found is not None
        assert found.checkpoint["channel_values"]["messages"] == [
            f"message {i} " + "x" * 50 for i in range(step + 1)
        ]
        assert found.checkpoint["channel_values"]["count"] == step


async def test_a_new_process_extends_a_list_without_its_cache(engine: str, kind: str, tmp_path: Path) -> None:
    """Another saver (as another process would) has no cache: it stores the list whole once, then
    extends its own versions; every checkpoint still reads back exactly."""
    target = new_db_target(engine, tmp_path)
    async with opened(kind, target) as first:
        [*_, last] = await grow(first, "t", 5)
    del first  # the savers of one database in one process share a cache: none is left open here
    gc.collect()
    async with opened(kind, target) as second:
        assert not second.lists._recent
        base = await second.aget_tuple(last)
        assert base is not None
        messages, version = (
            base.checkpoint["channel_values"]["messages"],
            base.checkpoint["channel_versions"]["messages"],
        )
        cfg = last
        for step in range(3):
            messages = [*messages, f"later {step}"]
            version = second.get_next_version(version, None)
            cfg = await second.aput(
                cfg, checkpoint({"messages": messages}, {"messages": version}), {}, {"messages": version}
            )
            found = await second.aget_tuple(cfg)
            assert found is not None and found.checkpoint["channel_values"]["messages"] == messages
        assert await count(second, "langgraph_items", "t") == 5 + 1 + 1 + 1  # a segment per version


async def test_prune_keeps_every_value_the_kept_checkpoints_need(saver: Saver) -> None:
    stored = await grow(saver, "p", 6)
    await grow(saver, "other", 2)
    await saver.aput_writes(stored[-1], [("messages", "pending")], "task")
    await saver.aprune(["p"], strategy="keep_latest")
    found = [t async for t in saver.alist(config("p"))]
    assert [t.config for t in found] == [stored[-1]]
    assert found[0].checkpoint["channel_values"]["messages"] == [f"message {i} " + "x" * 50 for i in range(6)]
    assert found[0].pending_writes == [("task", "messages", "pending")]
    assert found[0].parent_config is None
    # the old list versions went (the counter is a scalar: in the checkpoint's own blob); the kept
    # list's segments stay: 6 items are a segment of 4 (stored by step 3) and one of 2 (step 5)
    assert await count(saver, "langgraph_values", "p") == 2
    assert await count(saver, "langgraph_items", "p") == 2
    assert len([t async for t in saver.alist(config("other"))]) == 2


async def test_delete_for_runs_leaves_no_unused_values(saver: Saver) -> None:
    cfg = await saver.aput(
        config("r"), checkpoint({"a": {"x": 1}}, {"a": "1"}), {"run_id": "run-1"}, {"a": "1"}
    )
    await saver.aput(
        cfg,
        checkpoint({"a": {"y": 2}, "b": {"z": 3}}, {"a": "2", "b": "1"}),
        {"run_id": "run-2"},
        {"a": "2", "b": "1"},
    )
    await saver.adelete_for_runs(["run-2"])
    assert [t.metadata["run_id"] async for t in saver.alist(None)] == ["run-1"]
    assert await count(saver, "langgraph_values", "r") == 1


async def test_list_across_threads_and_namespaces(saver: Saver) -> None:
    await grow(saver, "one", 3)
    await grow(saver, "two", 2)
    await saver.aput(config("one", ns="child:1"), checkpoint({}, {}), {"step": 0, "source": "loop"}, {})
    everything = [t async for t in saver.alist(None)]
    assert len(everything) == 6
    ids = [t.checkpoint["id"] for t in everything]
    assert ids == sorted(ids, reverse=True)
    assert len([t async for t in saver.alist({"configurable": {"thread_id": "one"}})]) == 4
    assert len([t async for t in saver.alist(config("one"))]) == 3
    assert len([t async for t in saver.alist(None, filter={"step": 1})]) == 2
    assert len([t async for t in saver.alist(None, limit=4)]) == 4
    assert await drive(saver, saver.tables.thread_ids()) == ["one", "two"]


async def test_list_pages_through_more_than_a_page(saver: Saver) -> None:
    stored = await grow(saver, "long", 230)
    found = [t.config async for t in saver.alist(config("long"))]
    assert found == stored[::-1]
    assert [t.config async for t in saver.alist(config("long"), limit=150)] == stored[::-1][:150]


async def test_a_paused_alist_never_blocks_a_write(saver: Saver) -> None:
    await grow(saver, "paused", 250)
    listing = saver.alist(None)
    first = await anext(listing)
    assert first is not None
    # while the listing is paused mid-way: a write in this process, and in another process
    await asyncio.wait_for(grow(saver, "meanwhile", 2), timeout=60)
    target = saver.store.target
    db = str(target.path) if target.path is not None else target.url
    done = subprocess.run(
        [sys.executable, str(HELPERS / "lg_worker.py"), db, "elsewhere", "3", "2000"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.stdout.strip() == "ok 3", done.stderr
    rest = [t async for t in listing]
    assert len(rest) >= 249
    await listing.aclose()


async def test_several_processes_on_one_database_never_fail(engine: str, tmp_path: Path) -> None:
    """Four processes at once, two on each saver."""
    target = new_db_target(engine, tmp_path)
    async with AsyncCkptdbSaver.from_conn_string(target):
        pass  # created and migrated once, so the workers only write
    workers = [
        subprocess.Popen(
            [sys.executable, str(HELPERS / "lg_worker.py"), target, f"worker-{n}", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "CKPTDB_LG_SAVER": KINDS[n % 2]},
        )
        for n in range(4)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for (out, err), worker in zip(outputs, workers, strict=True):
        assert worker.returncode == 0 and out.strip() == "ok 60", err
        assert "locked" not in err
    async with AsyncCkptdbSaver.from_conn_string(target) as saver:
        for n in range(4):
            found = [t async for t in saver.alist(config(f"worker-{n}"))]
            assert len(found) == 60
            assert found[0].checkpoint["channel_values"]["messages"][-1] == f"worker-{n} message 59"
            assert found[0].pending_writes is not None and len(found[0].pending_writes) == 1


class XorCipher:
    """A stand-in cipher (not encryption): enough to show the saver stores what the serde wrote."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        return "xor", bytes(b ^ 0x5A for b in plaintext)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        assert ciphername == "xor"
        return bytes(b ^ 0x5A for b in ciphertext)


async def test_an_encrypted_serde_stores_only_ciphertext(engine: str, kind: str, tmp_path: Path) -> None:
    serde = EncryptedSerializer(XorCipher(), JsonPlusSerializer())
    async with opened(kind, new_db_target(engine, tmp_path), serde=serde) as saver:
        stored = await grow(saver, "secret", 5)
        await saver.aput_writes(stored[-1], [("messages", "secret write")], "task")
        found = await saver.aget_tuple(stored[-1])
        assert found is not None
        assert found.checkpoint["channel_values"]["messages"][-1].startswith("message 4")
        assert found.pending_writes == [("task", "messages", "secret write")]
        assert await count(saver, "langgraph_items", "secret") == 5  # still stored once with a cipher
        types = await fetch(saver, "SELECT DISTINCT type FROM langgraph_items")
        assert all(row[0].endswith("+xor") for row in types)
        blobs = await fetch(saver, "SELECT value FROM langgraph_items")
        assert not any(b"message" in bytes(row[0]) for row in blobs)


async def test_serde_pairs_reach_the_serde_unchanged(saver: Saver) -> None:
    """Exact (type, bytes) both ways: what `loads_typed` gets is what `dumps_typed` gave."""
    seen: list[tuple[str, bytes]] = []
    inner = saver.serde

    class Recording:
        def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
            pair = inner.dumps_typed(obj)
            seen.append(pair)
            return pair

        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            assert type(data[1]) is bytes
            assert data in seen
            return inner.loads_typed(data)

    saver.serde = Recording()  # type: ignore[assignment]
    stored = await grow(saver, "exact", 3)
    await saver.aput_writes(stored[-1], [("c", {"nested": [1, 2.5, None]})], "t")
    found = await saver.aget_tuple(stored[-1])
    assert found is not None and found.pending_writes == [("t", "c", {"nested": [1, 2.5, None]})]


async def test_with_allowlist_and_strict_msgpack_are_the_serdes(engine: str, tmp_path: Path) -> None:
    code = f"""
import asyncio, dataclasses
from ckptdb.langgraph import AsyncCkptdbSaver

@dataclasses.dataclass
class Secret:
    text: str

async def main():
    async with AsyncCkptdbSaver.from_conn_string({new_db_target(engine, tmp_path)!r}) as saver:
        cfg = {{"configurable": {{"thread_id": "s", "checkpoint_ns": ""}}}}
        cp = {{"v": 4, "id": "1", "ts": "", "channel_values": {{"x": Secret("a")}},
              "channel_versions": {{"x": "1"}}, "versions_seen": {{}}, "updated_channels": None}}
        cfg = await saver.aput(cfg, cp, {{}}, {{"x": "1"}})
        strict = (await saver.aget_tuple(cfg)).checkpoint["channel_values"]["x"]
        allowed = saver.with_allowlist([("__main__", "Secret")])
        assert allowed is not saver and allowed.store is saver.store
        loose = (await allowed.aget_tuple(cfg)).checkpoint["channel_values"]["x"]
        print(type(strict).__name__, type(loose).__name__)

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "LANGGRAPH_STRICT_MSGPACK": "true"},
    )
    assert done.returncode == 0, done.stderr
    strict, allowed = done.stdout.split()
    assert strict != "Secret"  # blocked by strict msgpack
    assert allowed == "Secret"


async def test_sync_methods_refuse_the_loop_thread_and_work_from_others(engine: str, tmp_path: Path) -> None:
    async with AsyncCkptdbSaver.from_conn_string(new_db_target(engine, tmp_path)) as saver:
        await _refuse_the_loop_thread(saver)


async def _refuse_the_loop_thread(saver: AsyncCkptdbSaver) -> None:
    stored = await saver.aput(config("sync"), checkpoint({"a": 1}, {"a": "1"}), {"step": 0}, {"a": "1"})
    with pytest.raises(asyncio.InvalidStateError, match="aget_tuple"):
        saver.get_tuple(stored)
    found: list[Any] = []
    worker = threading.Thread(target=lambda: found.append(saver.get_tuple(stored)))
    worker.start()
    while worker.is_alive():
        await asyncio.sleep(0.01)
    worker.join()
    assert found[0].checkpoint["channel_values"] == {"a": 1}


async def test_damaged_list_chain_is_reported_not_shortened(saver: Saver) -> None:
    stored = await grow(saver, "broken", 3)
    await write_sql(saver, [("DELETE FROM langgraph_items WHERE thread_id = ? AND pos = 0", ("broken",))])
    with pytest.raises(StoreError, match="damaged"):
        await saver.aget_tuple(stored[-1])


async def test_delta_channel_history_matches_the_base_class(saver: Saver) -> None:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    stored = await grow(saver, "delta", 4)
    # writes at each checkpoint, and a channel whose values are "empty" until the last ones
    for n, cfg in enumerate(stored):
        await saver.aput_writes(cfg, [("messages", f"w{n}"), ("count", n)], f"task{n}", "p")
    for cfg in stored:
        for channels in (["messages"], ["count", "messages"], ["missing"]):
            ours = await saver.aget_delta_channel_history(config=cfg, channels=channels)
            theirs = await BaseCheckpointSaver.aget_delta_channel_history(
                saver, config=cfg, channels=channels
            )
            assert ours == theirs


def _run_graph(db: str, thread: str, phase: str, saver: str = "async") -> Any:
    args = [sys.executable, str(HELPERS / "lg_graph.py"), db, thread, phase]
    if saver != "async":
        args.append(saver)
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("first", KINDS)
def test_a_graph_interrupted_in_a_subgraph_resumes_in_a_new_process(
    engine: str, first: str, tmp_path: Path
) -> None:
    """Run until the approval on one saver, resume in a new process on the other (the sync one
    with `invoke`, the async one with `ainvoke`): what LangGraph returned, the final state and
    the state history equal InMemorySaver's, also when read again by the first saver."""
    target = new_db_target(engine, tmp_path)
    second = KINDS[1 - KINDS.index(first)]
    reference = _run_graph(target, "ref", "both", "memory")
    started = _run_graph(target, "t", "start", first)
    resumed = _run_graph(target, "t", "resume", second)
    assert started[0] + resumed[0] == reference[0]
    assert resumed[1] == reference[1]
    assert resumed[2] == reference[2]
    assert started[0][0]["__interrupt__"] == [{"interrupt": {"tool": "refund", "amount": 42, "asked": 2}}]
    reread = _run_graph(target, "t", "state", first)
    assert reread[1:] == reference[1:]


async def test_db_check_covers_the_langgraph_tables(engine: str, kind: str, tmp_path: Path) -> None:
    from ckptdb.check import check_database

    target = new_db_target(engine, tmp_path)
    async with opened(kind, target) as saver:
        await grow(saver, "sound", 4)
        [*_, last] = await grow(saver, "hurt", 4)
        report = await check_database(target)
        assert report.ok and report.langgraph_checkpoints == 8 and report.langgraph_problems == []
        # the segments that start the lists go (as a hand-made DELETE would do)
        await write_sql(saver, [("DELETE FROM langgraph_items WHERE thread_id = ? AND pos = 0", ("hurt",))])
    report = await check_database(target)
    assert not report.ok
    assert report.langgraph_problem_count == 4  # every checkpoint of the thread: all lists start at 0
    assert all("missing" in problem for problem in report.langgraph_problems)
    assert all("'hurt'" in problem for problem in report.langgraph_problems)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ckptdb"), "--db", target, "db", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 3  # ExitStatus.PROBLEMS
    assert "langgraph    8 checkpoints of LangGraph's saver, 4 with missing values" in done.stdout
    assert last["configurable"]["checkpoint_id"] in done.stdout


def _append(state: Any, writes: Any) -> list[str]:
    return [*(state or []), *(item for write in writes for item in write)]


class DeltaState(TypedDict):
    log: Annotated[list[str], DeltaChannel(_append, snapshot_frequency=3)]


async def test_a_delta_channel_graph_matches_in_memory_saver(engine: str, kind: str, tmp_path: Path) -> None:
    """A DeltaChannel keeps only a snapshot every few updates and rebuilds the rest from the writes
    along the parent chain (`aget_delta_channel_history`): states and history equal InMemorySaver's,
    also read by the other saver, which did not write them. The sync saver runs the graph with
    `invoke`, on this test's running event loop's thread."""

    def step(state: DeltaState) -> dict[str, Any]:
        return {"log": [f"entry {len(state['log'])}"]}

    def build(checkpointer: Any) -> Any:
        graph = StateGraph(DeltaState)
        graph.add_node("step", step)
        graph.add_edge(START, "step")
        graph.add_edge("step", END)
        return graph.compile(checkpointer=checkpointer)

    cfg: Any = {"configurable": {"thread_id": "delta"}}

    async def run(checkpointer: Any, invocations: int) -> tuple[Any, list[Any]]:
        graph = build(checkpointer)
        if isinstance(checkpointer, CkptdbSaver):
            for n in range(invocations):
                graph.invoke({"log": [f"input {n}"]}, cfg)
            return graph.get_state(cfg).values, [s.values for s in graph.get_state_history(cfg)]
        for n in range(invocations):
            await graph.ainvoke({"log": [f"input {n}"]}, cfg)
        return (await graph.aget_state(cfg)).values, [s.values async for s in graph.aget_state_history(cfg)]

    reference = await run(InMemorySaver(), 7)
    target = new_db_target(engine, tmp_path)
    async with opened(kind, target) as saver:
        assert await run(saver, 7) == reference
        metadata = [t.metadata async for t in saver.alist(cfg)]
        assert any("counters_since_delta_snapshot" in md for md in metadata)
    async with opened(KINDS[1 - KINDS.index(kind)], target) as saver:
        assert await run(saver, 0) == reference


async def test_small_scalars_stay_in_the_checkpoint_and_the_rest_in_values(saver: Saver) -> None:
    long_text = "t" * 300
    values = {"n": 1, "f": 2.5, "b": True, "none": None, "s": "short", "long": long_text, "d": {"k": [1]}}
    versions = {channel: "1" for channel in values}
    stored = await saver.aput(config("inline"), checkpoint(values, versions), {}, versions)
    found = await saver.aget_tuple(stored)
    assert found is not None and found.checkpoint["channel_values"] == values
    rows = await fetch(
        saver, "SELECT channel FROM langgraph_values WHERE thread_id = 'inline' ORDER BY channel"
    )
    assert [row[0] for row in rows] == ["d", "long"]
    # the next checkpoint changes only `n`: the other scalars come along in its blob, the rest
    # from their stored versions
    changed = {**values, "n": 2}
    stored = await saver.aput(stored, checkpoint(changed, {**versions, "n": "2"}), {}, {"n": "2"})
    found = await saver.aget_tuple(stored)
    assert found is not None and found.checkpoint["channel_values"] == changed


async def test_the_sync_saver_works_on_a_running_loops_thread(engine: str, tmp_path: Path) -> None:
    """Its sync methods called straight from a coroutine (Jupyter, a sync callback inside an async
    server): no event loop of its own, so nothing to refuse; the loop's other tasks keep running."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    with CkptdbSaver.from_conn_string(new_db_target(engine, tmp_path)) as saver:
        stored = saver.put(config("loop"), checkpoint({"a": {"k": 1}}, {"a": "1"}), {"step": 0}, {"a": "1"})
        saver.put_writes(stored, [("a", "w")], "task")
        found = saver.get_tuple(stored)
        assert found is not None and found.checkpoint["channel_values"] == {"a": {"k": 1}}
        assert found.pending_writes == [("task", "a", "w")]
        assert [t.config for t in saver.list(config("loop"))] == [stored]
        assert await saver.aget_tuple(stored) == found  # and its async twin, on a worker thread
    assert ticks > 0
    ticker.cancel()


def test_threads_share_one_sync_saver(engine: str, tmp_path: Path) -> None:
    """8 threads put and read their own threads through one saver at once: their puts share
    transactions (group commit), and every checkpoint reads back whole from every thread."""
    with CkptdbSaver.from_conn_string(new_db_target(engine, tmp_path)) as saver:
        errors: list[BaseException] = []
        stored: dict[str, list[Any]] = {}
        start = threading.Barrier(8)

        def work(n: int) -> None:
            try:
                start.wait()
                cfg = config(f"thread-{n}")
                stored[f"thread-{n}"] = configs = []
                messages: list[str] = []
                version = None
                for step in range(40):
                    messages = [*messages, f"{n}:{step}"]
                    version = saver.get_next_version(version, None)
                    cfg = saver.put(
                        cfg,
                        checkpoint({"messages": messages}, {"messages": version}, step),
                        {},
                        {"messages": version},
                    )
                    saver.put_writes(cfg, [("messages", f"w{step}")], f"task-{step}")
                    configs.append(cfg)
                    other = saver.get_tuple(config(f"thread-{(n + 1) % 8}"))
                    assert other is None or other.checkpoint["channel_values"]["messages"][0].endswith(":0")
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []
        for thread, configs in stored.items():
            n = thread.split("-")[1]
            listed = list(saver.list(config(thread)))
            assert [t.config for t in listed] == configs[::-1]
            for step, found in enumerate(reversed(listed)):
                assert found.checkpoint["channel_values"]["messages"] == [f"{n}:{i}" for i in range(step + 1)]
                assert found.pending_writes == [(f"task-{step}", "messages", f"w{step}")]
        assert saver.store.backend.fetchall("SELECT count(*) FROM langgraph_checkpoints")[0][0] == 320


async def test_each_saver_reads_what_the_other_wrote(engine: str, tmp_path: Path) -> None:
    """Both savers open on one database in one process, taking turns on one thread's growing list,
    writes, a namespace, a copy and a prune: each sees exactly what the other wrote."""
    target = new_db_target(engine, tmp_path)
    async with AsyncCkptdbSaver.from_conn_string(target) as aio:
        with CkptdbSaver.from_conn_string(target) as sync:
            cfg: Any = config("shared")
            messages: list[str] = []
            version = None
            stored = []
            for step in range(10):
                messages = [*messages, f"m{step}"]
                version = aio.get_next_version(version, None)
                cp = checkpoint({"messages": messages, "n": step}, {"messages": version, "n": version}, step)
                if step % 2:
                    cfg = sync.put(cfg, cp, {"step": step}, {"messages": version, "n": version})
                    await aio.aput_writes(cfg, [("messages", f"by async {step}")], "t")
                else:
                    cfg = await aio.aput(cfg, cp, {"step": step}, {"messages": version, "n": version})
                    sync.put_writes(cfg, [("messages", f"by sync {step}")], "t")
                stored.append(cfg)
            for step, cfg in enumerate(stored):
                by_sync, by_async = sync.get_tuple(cfg), await aio.aget_tuple(cfg)
                assert by_sync == by_async
                assert by_sync is not None
                assert by_sync.checkpoint["channel_values"] == {"messages": messages[: step + 1], "n": step}
                assert by_sync.pending_writes == [
                    ("t", "messages", f"by {'async' if step % 2 else 'sync'} {step}")
                ]
            assert [t.config for t in sync.list(None)] == [t.config async for t in aio.alist(None)]
            sync.copy_thread("shared", "copy")
            assert [t.checkpoint async for t in aio.alist(config("copy"))] == [
                t.checkpoint for t in sync.list(config("shared"))
            ]
            await aio.aprune(["shared"])
            [kept] = list(sync.list(config("shared")))
            assert kept.checkpoint["channel_values"]["messages"] == messages
            sync.delete_thread("copy")
            assert await aio.aget_tuple(config("copy")) is None


@pytest.mark.parametrize("deleter", ["delete_thread", "prune"])
async def test_a_thread_one_saver_deleted_is_rewritten_whole_by_the_other(
    engine: str, deleter: str, tmp_path: Path
) -> None:
    """The savers of one database in one process share their cache of recent list versions: once
    one saver deletes a thread, the other must not extend a list version that went with it (it
    would store no items over a base that is gone)."""
    target = new_db_target(engine, tmp_path)
    async with AsyncCkptdbSaver.from_conn_string(target) as aio:
        with CkptdbSaver.from_conn_string(target) as sync:
            await grow(sync, "again", 3)
            if deleter == "delete_thread":
                await aio.adelete_thread("again")
            else:
                await aio.aprune(["again"], strategy="delete")
            stored = await grow(sync, "again", 3)
            for step, cfg in enumerate(stored):
                for saver in (sync, aio):
                    found = await saver.aget_tuple(cfg)
                    assert found is not None
                    assert found.checkpoint["channel_values"]["messages"] == [
                        f"message {i} " + "x" * 50 for i in range(step + 1)
                    ]


async def test_a_thread_another_process_deleted_is_rewritten_whole(
    engine: str, kind: str, tmp_path: Path
) -> None:
    """Another process (here `ckptdb langgraph delete`) cannot tell this process's cache of recent
    list versions that a thread went. A graph that runs the thread again asks for its latest
    checkpoint first: finding none, the saver forgets the thread, and the new chat's lists are
    stored whole instead of extending a version that is gone (its checkpoints would not read back)."""
    target = new_db_target(engine, tmp_path)
    async with opened(kind, target) as saver:
        await grow(saver, "again", 3)
        subprocess.run(
            [sys.executable, "-m", "ckptdb", "--db", str(target), "langgraph", "delete", "again", "-y"],
            check=True,
            capture_output=True,
        )
        assert await saver.aget_tuple(config("again")) is None
        stored = await grow(saver, "again", 3)
        for step, cfg in enumerate(stored):
            found = await saver.aget_tuple(cfg)
            assert found is not None
            assert found.checkpoint["channel_values"]["messages"] == [
                f"message {i} " + "x" * 50 for i in range(step + 1)
            ]


async def test_a_closed_saver_refuses_in_one_line(engine: str, kind: str, tmp_path: Path) -> None:
    async with opened(kind, new_db_target(engine, tmp_path)) as saver:
        stored = await saver.aput(config("c"), checkpoint({"a": 1}, {"a": "1"}), {}, {"a": "1"})
    with pytest.raises(StoreError, match="closed"):
        await saver.aput(stored, checkpoint({"a": 2}, {"a": "2"}), {}, {"a": "2"})
    with pytest.raises(StoreError, match="closed"):
        await saver.aget_tuple(stored)


@pytest.mark.postgres
@pytest.mark.skipif(PG_SKIP, reason="CKPTDB_SKIP_POSTGRES=1")
async def test_a_recycled_test_database_holds_no_threads_of_an_earlier_test() -> None:
    """The test suite's PostgreSQL databases are recycled by emptying their tables: every table
    of the migrations, the LangGraph ones too, or one test sees another's threads."""
    url = PG.acquire(migrated=True, keep=True)
    async with AsyncCkptdbSaver.from_conn_string(url) as saver:
        await saver.aput(config("left-behind"), checkpoint({"a": 1}, {"a": "1"}), {}, {"a": "1"})
    PG.give_back(url, migrated=True)
    again = PG.acquire(migrated=True, keep=True)
    try:
        assert again == url
        async with AsyncCkptdbSaver.from_conn_string(again) as saver:
            assert [found async for found in saver.alist(None)] == []
    finally:
        PG.give_back(again, migrated=True)
