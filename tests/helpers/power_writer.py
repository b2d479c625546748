"""Child process for tests/test_durability.py: save checkpoints at an app's pace, then vanish.

    python power_writer.py DB --count N --pause SECONDS [--sync-interval S|off] [--synchronous NORMAL]

Prints `START <monotonic ns>` once the store is open, then `<id> <monotonic ns>` after each
save() has returned (the time it was acknowledged, on the clock the LD_PRELOAD shim stamps its
records with), and ends with os._exit: no close, no final checkpoint, as if the power went.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers.content

from ckptdb import Checkpoint, InterruptType, Timestamp, open_store

BASE_NANOS = 1_793_667_827_000_000_000  # 2026-11-03T01:03:47Z


def make(index: int) -> Checkpoint:
    """Checkpoint number `index`: a function of the index alone, so the test can rebuild it."""
    return Checkpoint(
        id=f"p-{index:05d}",
        graph_name=f"graph-{index % 7}",
        current_node="tool",
        state_snapshot={"messages": [{"role": "user", "content": "x" * (300 + index % 400)}], "i": index},
        path=["start", "plan"],
        step_count=index,
        created_at=Timestamp(BASE_NANOS + index * 1_000_000),
        pending_action=None,
        interrupt_type=InterruptType.AFTER_NODE,
    )


async def run(args: argparse.Namespace) -> None:
    options: dict[str, object] = {"synchronous": args.synchronous}
    if args.sync_interval != "default":
        options["sync_interval"] = None if args.sync_interval == "off" else float(args.sync_interval)
    store = await open_store(args.db, **options)
    os.write(1, f"START {time.monotonic_ns()}\n".encode())
    for index in range(args.count):
        await store.save(make(index))
        os.write(1, f"{make(index).id} {time.monotonic_ns()}\n".encode())
        await asyncio.sleep(args.pause)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--pause", type=float, default=0.01)
    parser.add_argument("--sync-interval", default="default")
    parser.add_argument("--synchronous", default="NORMAL")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
