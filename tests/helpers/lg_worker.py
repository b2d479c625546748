"""One process writing a LangGraph thread through AsyncCkptdbSaver (CkptdbSaver, its sync methods,
when CKPTDB_LG_SAVER=sync): `steps` checkpoints, each adding a message to a growing list and a
pending write, then a line "ok <steps>" (or the error).

    python lg_worker.py DB THREAD STEPS [BUSY_TIMEOUT_MS]
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from langgraph.checkpoint.base.id import uuid6

from ckptdb.langgraph import AsyncCkptdbSaver, CkptdbSaver


def checkpoint(step: int, messages: list[str], version: str) -> Any:
    return {
        "v": 4,
        "id": str(uuid6(clock_seq=step)),
        "ts": datetime.now(UTC).isoformat(),
        "channel_values": {"messages": messages},
        "channel_versions": {"messages": version},
        "versions_seen": {},
        "updated_channels": ["messages"],
    }


def sync_main() -> None:
    db, thread, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    options: dict[str, Any] = {}
    if len(sys.argv) > 4:
        options["busy_timeout_ms"] = int(sys.argv[4])
    with CkptdbSaver.from_conn_string(db, **options) as saver:
        config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        messages: list[str] = []
        version = None
        for step in range(steps):
            messages = [*messages, f"{thread} message {step}"]
            version = saver.get_next_version(version, None)
            config = saver.put(
                config,
                checkpoint(step, messages, version),
                {"source": "loop", "step": step},
                {"messages": version},
            )
            saver.put_writes(config, [("messages", f"next {step}")], str(uuid.uuid4()))
    print("ok", steps, flush=True)


async def main() -> None:
    db, thread, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    options: dict[str, Any] = {}
    if len(sys.argv) > 4:
        options["busy_timeout_ms"] = int(sys.argv[4])
    async with AsyncCkptdbSaver.from_conn_string(db, **options) as saver:
        config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        messages: list[str] = []
        version = None
        for step in range(steps):
            messages = [*messages, f"{thread} message {step}"]
            version = saver.get_next_version(version, None)
            checkpoint: Any = {
                "v": 4,
                "id": str(uuid6(clock_seq=step)),
                "ts": datetime.now(UTC).isoformat(),
                "channel_values": {"messages": messages},
                "channel_versions": {"messages": version},
                "versions_seen": {},
                "updated_channels": ["messages"],
            }
            config = await saver.aput(
                config, checkpoint, {"source": "loop", "step": step}, {"messages": version}
            )
            await saver.aput_writes(config, [("messages", f"next {step}")], str(uuid.uuid4()))
    print("ok", steps, flush=True)


if __name__ == "__main__":
    if os.environ.get("CKPTDB_LG_SAVER") == "sync":
        sync_main()
    else:
        asyncio.run(main())
