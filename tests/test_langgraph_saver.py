"""AsyncCkptdbSaver beyond LangGraph's conformance suite: what LangGraph relies on without testing
it, storage that is not quadratic, serdes, several processes on one database, and a real graph with
an approval in a subgraph resumed in another process, compared with LangGraph's InMemorySaver."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest import new_db_target

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
from ckptdb.langgraph import AsyncCkptdbSaver
from ckptdb.sql.langgraph import run

HELPERS = Path(__file__).parent / "helpers"
REPO = Path(__file__).resolve().parents[1]


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


async def count(saver: AsyncCkptdbSaver, table: str, thread: str | None = None) -> int:
    where, params = ("", ()) if thread is None else (" WHERE thread_id = ?", (thread,))
    rows = await saver.store.backend.fetchall(f"SELECT count(*) FROM {table}{where}", params)
    return int(rows[0][0])


async def grow(saver: AsyncCkptdbSaver, thread: str, steps: int, parent: Any = None) -> list[Any]:
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
async def saver(engine: str, tmp_path: Path) -> Any:
    async with AsyncCkptdbSaver.from_conn_string(new_db_target(engine, tmp_path)) as opened:
        yield opened


async def test_reput_replaces_the_checkpoint(saver: AsyncCkptdbSaver) -> None:
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


async def test_special_writes_replace_and_regular_ones_keep_the_first(saver: AsyncCkptdbSaver) -> None:
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


async def test_pending_writes_come_back_in_langgraphs_order(saver: AsyncCkptdbSaver) -> None:
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


async def test_forks_from_one_parent_keep_separate_values(saver: AsyncCkptdbSaver) -> None:
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


async def test_a_growing_list_is_not_stored_again_at_each_step(saver: AsyncCkptdbSaver) -> None:
    stored = await grow(saver, "chat", 64)
    assert await count(saver, "langgraph_items", "chat") == 64  # one segment per step
    [(stored_bytes,)] = await saver.store.backend.fetchall(
        "SELECT sum(length(value)) FROM langgraph_items WHERE thread_id = 'chat'"
    )
    message = len(saver.serde.dumps_typed("message 10 " + "x" * 50)[1])
    assert stored_bytes < 64 * 7 * (message + 2)  # each item about log2(64) + 1 times, not 64 / 2
    found = await saver.aget_tuple(stored[-1])
    assert found is not None
    key = ("chat", "", "messages", found.checkpoint["channel_versions"]["messages"])
    _, segments = await run(saver.store, saver.tables.values([key]))
    assert [pos for pos, _, _ in segments[key]] == [0]  # 64 items: one segment of all of them
    found = await saver.aget_tuple(stored[-2])
    assert found is not None
    key = ("chat", "", "messages", found.checkpoint["channel_versions"]["messages"])
    _, segments = await run(saver.store, saver.tables.values([key]))
    assert [pos for pos, _, _ in segments[key]] == [0, 32, 48, 56, 60, 62]  # 63 = 32+16+8+4+2+1
    for step, cfg in enumerate(stored):
        found = await saver.aget_tuple(cfg)
        assert found is not None
        assert found.checkpoint["channel_values"]["messages"] == [
            f"message {i} " + "x" * 50 for i in range(step + 1)
        ]
        assert found.checkpoint["channel_values"]["count"] == step


async def test_a_new_process_extends_a_list_without_its_cache(engine: str, tmp_path: Path) -> None:
    """Another saver (as another process would) has no cache: it stores the list whole once, then
    extends its own versions; every checkpoint still reads back exactly."""
    target = new_db_target(engine, tmp_path)
    async with AsyncCkptdbSaver.from_conn_string(target) as first:
        [*_, last] = await grow(first, "t", 5)
    async with AsyncCkptdbSaver.from_conn_string(target) as second:
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


async def test_prune_keeps_every_value_the_kept_checkpoints_need(saver: AsyncCkptdbSaver) -> None:
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


async def test_delete_for_runs_leaves_no_unused_values(saver: AsyncCkptdbSaver) -> None:
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


async def test_list_across_threads_and_namespaces(saver: AsyncCkptdbSaver) -> None:
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
    assert await run(saver.store, saver.tables.thread_ids()) == ["one", "two"]


async def test_list_pages_through_more_than_a_page(saver: AsyncCkptdbSaver) -> None:
    stored = await grow(saver, "long", 230)
    found = [t.config async for t in saver.alist(config("long"))]
    assert found == stored[::-1]
    assert [t.config async for t in saver.alist(config("long"), limit=150)] == stored[::-1][:150]


async def test_a_paused_alist_never_blocks_a_write(saver: AsyncCkptdbSaver) -> None:
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


async def test_an_encrypted_serde_stores_only_ciphertext(engine: str, tmp_path: Path) -> None:
    serde = EncryptedSerializer(XorCipher(), JsonPlusSerializer())
    async with AsyncCkptdbSaver.from_conn_string(new_db_target(engine, tmp_path), serde=serde) as saver:
        stored = await grow(saver, "secret", 5)
        await saver.aput_writes(stored[-1], [("messages", "secret write")], "task")
        found = await saver.aget_tuple(stored[-1])
        assert found is not None
        assert found.checkpoint["channel_values"]["messages"][-1].startswith("message 4")
        assert found.pending_writes == [("task", "messages", "secret write")]
        assert await count(saver, "langgraph_items", "secret") == 5  # still stored once with a cipher
        types = await saver.store.backend.fetchall("SELECT DISTINCT type FROM langgraph_items")
        assert all(row[0].endswith("+xor") for row in types)
        blobs = await saver.store.backend.fetchall("SELECT value FROM langgraph_items")
        assert not any(b"message" in bytes(row[0]) for row in blobs)


async def test_serde_pairs_reach_the_serde_unchanged(saver: AsyncCkptdbSaver) -> None:
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
from ckptdb.sql.langgraph import run

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


async def test_sync_methods_refuse_the_loop_thread_and_work_from_others(saver: AsyncCkptdbSaver) -> None:
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


async def test_damaged_list_chain_is_reported_not_shortened(saver: AsyncCkptdbSaver) -> None:
    stored = await grow(saver, "broken", 3)
    await saver.store.backend.write(
        [("DELETE FROM langgraph_items WHERE thread_id = ? AND pos = 0", ("broken",))]
    )
    with pytest.raises(StoreError, match="damaged"):
        await saver.aget_tuple(stored[-1])


async def test_delta_channel_history_matches_the_base_class(saver: AsyncCkptdbSaver) -> None:
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


def _run_graph(db: str, thread: str, phase: str, memory: bool = False) -> Any:
    args = [sys.executable, str(HELPERS / "lg_graph.py"), db, thread, phase]
    if memory:
        args.append("memory")
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_graph_interrupted_in_a_subgraph_resumes_in_a_new_process(engine: str, tmp_path: Path) -> None:
    target = new_db_target(engine, tmp_path)
    reference = _run_graph(target, "ref", "both", memory=True)
    started = _run_graph(target, "t", "start")
    resumed = _run_graph(target, "t", "resume")
    assert started[0] + resumed[0] == reference[0]
    assert resumed[1] == reference[1]
    assert resumed[2] == reference[2]
    assert started[0][0]["__interrupt__"] == [{"interrupt": {"tool": "refund", "amount": 42, "asked": 2}}]


async def test_db_check_covers_the_langgraph_tables(engine: str, tmp_path: Path) -> None:
    from ckptdb.check import check_database

    target = new_db_target(engine, tmp_path)
    async with AsyncCkptdbSaver.from_conn_string(target) as saver:
        await grow(saver, "sound", 4)
        [*_, last] = await grow(saver, "hurt", 4)
        report = await check_database(target)
        assert report.ok and report.langgraph_checkpoints == 8 and report.langgraph_problems == []
        # the segments that start the lists go (as a hand-made DELETE would do)
        await saver.store.backend.write(
            [("DELETE FROM langgraph_items WHERE thread_id = ? AND pos = 0", ("hurt",))]
        )
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


async def test_a_delta_channel_graph_matches_in_memory_saver(engine: str, tmp_path: Path) -> None:
    """A DeltaChannel keeps only a snapshot every few updates and rebuilds the rest from the writes
    along the parent chain (`aget_delta_channel_history`): states and history equal InMemorySaver's,
    also read by a second saver that did not write them."""

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
        for n in range(invocations):
            await graph.ainvoke({"log": [f"input {n}"]}, cfg)
        return (await graph.aget_state(cfg)).values, [s.values async for s in graph.aget_state_history(cfg)]

    reference = await run(InMemorySaver(), 7)
    target = new_db_target(engine, tmp_path)
    async with AsyncCkptdbSaver.from_conn_string(target) as saver:
        assert await run(saver, 7) == reference
        metadata = [t.metadata async for t in saver.alist(cfg)]
        assert any("counters_since_delta_snapshot" in md for md in metadata)
    async with AsyncCkptdbSaver.from_conn_string(target) as saver:
        assert await run(saver, 0) == reference


async def test_small_scalars_stay_in_the_checkpoint_and_the_rest_in_values(saver: AsyncCkptdbSaver) -> None:
    long_text = "t" * 300
    values = {"n": 1, "f": 2.5, "b": True, "none": None, "s": "short", "long": long_text, "d": {"k": [1]}}
    versions = {channel: "1" for channel in values}
    stored = await saver.aput(config("inline"), checkpoint(values, versions), {}, versions)
    found = await saver.aget_tuple(stored)
    assert found is not None and found.checkpoint["channel_values"] == values
    rows = await saver.store.backend.fetchall(
        "SELECT channel FROM langgraph_values WHERE thread_id = 'inline' ORDER BY channel"
    )
    assert [row[0] for row in rows] == ["d", "long"]
    # the next checkpoint changes only `n`: the other scalars come along in its blob, the rest
    # from their stored versions
    changed = {**values, "n": 2}
    stored = await saver.aput(stored, checkpoint(changed, {**versions, "n": "2"}), {}, {"n": "2"})
    found = await saver.aget_tuple(stored)
    assert found is not None and found.checkpoint["channel_values"] == changed
