"""One process writing LangGraph checkpoints through AsyncCkptdbSaver while others write too, for
the thread table's counts: then a line "ok".

    python lg_threads_worker.py DB put THREAD STEPS   # STEPS checkpoints, every third re-put once
    python lg_threads_worker.py DB prune THREAD ROUNDS  # aprune(keep_latest) ROUNDS times
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from typing import Any

from langgraph.checkpoint.base.id import uuid6

from ckptdb.langgraph import AsyncCkptdbSaver


def checkpoint(step: int, version: str) -> Any:
    return {
        "v": 4,
        "id": str(uuid6(clock_seq=step)),
        "ts": datetime.now(UTC).isoformat(),
        "channel_values": {"count": step},
        "channel_versions": {"count": version},
        "versions_seen": {},
        "updated_channels": ["count"],
    }


async def main() -> None:
    db, mode, thread, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    async with AsyncCkptdbSaver.from_conn_string(db, busy_timeout_ms=60_000) as saver:
        config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        version = None
        for step in range(rounds):
            if mode == "prune":
                await saver.aprune([thread], strategy="keep_latest")
                await asyncio.sleep(0.005)
                continue
            version = saver.get_next_version(version, None)
            cp = checkpoint(step, version)
            metadata = {"source": "loop", "step": step, "writer": os.getpid()}
            parent = config
            config = await saver.aput(parent, cp, metadata, {"count": version})
            if step % 3 == 0:  # the same id again: replaced, never counted twice
                await saver.aput(parent, cp, {**metadata, "again": True}, {"count": version})
    print("ok", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
