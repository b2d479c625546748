"""A run that goes on while another process deletes or prunes under it: every checkpoint it saves
still reads back exactly (both savers, both engines). Another process is played here by SQL that
this process's cache of list versions cannot hear of, and by a prune's steps driven by hand with a
put let in between its reads and its deletes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import new_db_target

pytest.importorskip("langgraph.checkpoint.base")

from test_langgraph_saver import (
    KINDS,
    Saver,
    checkpoint,
    config,
    count,
    drive,
    fetch,
    opened,
    write_sql,
)

from ckptdb.sql.langgraph import Fetch, Write

PROFILE = {"name": "ada", "notes": "n" * 400}  # not a small scalar: stored as a value of its own


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def saver(engine: str, kind: str, tmp_path: Path) -> Any:
    async with opened(kind, new_db_target(engine, tmp_path)) as found:
        yield found


async def chat(saver: Saver, thread: str, steps: int, start: Any = None, first: int = 0) -> list[Any]:
    """Steps of a chat whose `messages` grow by one each step while `profile` stays as it was
    (its version unchanged after the first step); the configs."""
    cfg = start or config(thread)
    stored = []
    for step in range(first, first + steps):
        messages = [f"message {i}" for i in range(step + 1)]
        versions = {"messages": f"{step + 1:032}.0", "profile": f"{1:032}.0"}
        new = {"messages": versions["messages"]}
        if step == 0:
            new["profile"] = versions["profile"]
        cp = checkpoint({"messages": messages, "profile": PROFILE}, versions, step)
        cfg = await saver.aput(cfg, cp, {"step": step}, new)
        stored.append(cfg)
    return stored


async def assert_reads_back(saver: Saver, cfg: Any, step: int) -> None:
    found = await saver.aget_tuple(cfg)
    assert found is not None
    assert found.checkpoint["channel_values"] == {
        "messages": [f"message {i}" for i in range(step + 1)],
        "profile": PROFILE,
    }


async def test_a_run_going_on_after_its_thread_was_deleted_elsewhere_saves_whole(saver: Saver) -> None:
    """Another process deletes the thread while a run is between two supersteps. The run's next
    put references the profile's version and extends the list version of its parent, both gone:
    it is refused in its transaction and written again whole, so it reads back, as the peers'
    whole-checkpoint savers' would. Before, it committed over the missing values and its
    `get_tuple` failed ("damaged")."""
    stored = await chat(saver, "t", 3)
    await write_sql(
        saver,
        [
            (f"DELETE FROM {table} WHERE thread_id = ?", ("t",))
            for table in ("langgraph_writes", "langgraph_checkpoints", "langgraph_items", "langgraph_values")
        ],
    )
    more = await chat(saver, "t", 2, start=stored[-1], first=3)
    await assert_reads_back(saver, more[0], 3)
    await assert_reads_back(saver, more[1], 4)
    assert await count(saver, "langgraph_checkpoints", "t") == 2


async def test_a_put_between_a_prunes_reads_and_its_deletes_keeps_its_values(saver: Saver) -> None:
    """A prune decides from one read which values no kept checkpoint needs, and deletes them
    after. A run in another process that forks from a checkpoint being pruned saves in between:
    its checkpoint names the profile version and a list version that only pruned checkpoints
    named. The deletes see the thread changed and delete nothing; the fork reads back."""
    stored = await chat(saver, "p", 4)
    forked_from = stored[1]
    await write_sql(
        saver,
        [
            (
                "UPDATE langgraph_checkpoints SET channel_versions = ? "
                "WHERE thread_id = ? AND checkpoint_id = ?",
                (
                    json.dumps({"messages": f"{4:032}.0", "profile": f"{2:032}.0"}),
                    "p",
                    stored[-1]["configurable"]["checkpoint_id"],
                ),
            ),
            (
                "INSERT INTO langgraph_values (thread_id, checkpoint_ns, channel, version, kind, type, "
                "value) SELECT thread_id, checkpoint_ns, channel, ?, kind, type, value "
                "FROM langgraph_values WHERE thread_id = ? AND channel = 'profile'",
                (f"{2:032}.0", "p"),
            ),
        ],
    )  # the head names a profile version of its own: the first one is needed by pruned ones only
    heads = [(ns, head) for ns, head, _ in await drive_all(saver, saver.tables.heads("p"))]
    await drive_all(saver, saver.tables.delete_before_heads("p", heads))
    steps = saver.tables.collect_garbage("p")
    op, result, fork = next(steps), None, None
    while True:
        if isinstance(op, Write):
            fork = await chat(saver, "p", 1, start=forked_from, first=2)  # saves between read and delete
            result = await run_write(saver, op)
        elif isinstance(op, Fetch):
            result = await fetch(saver, op.sql, op.params)
        try:
            op = steps.send(result)
        except StopIteration:
            break
    assert fork is not None, "the prune found nothing to delete: the test would test nothing"
    await assert_reads_back(saver, fork[0], 2)


async def drive_all(saver: Saver, steps: Any) -> Any:
    return await drive(saver, steps)


async def run_write(saver: Saver, op: Write) -> Any:
    from ckptdb.langgraph import CkptdbSaver

    if isinstance(saver, CkptdbSaver):
        return saver.store.backend.write(op.statements)
    return await saver.store.backend.write(op.statements)
