"""Child process for tests/test_durability.py: saves while the disk's fsync fails, then dies.

    python eio_writer.py DB FLAG

Run with tests/helpers/iotrace.c preloaded and IOTRACE_EIO_FLAG=FLAG. Saves `before` at
synchronous=FULL, creates FLAG (from then on every fsync/fdatasync of the database or its WAL
fails with EIO), tries `save(victim)` and `save_many([many-1, many-2])`, and prints one JSON line
per attempt: {"call", "error" (class name or null), "message"}. Then os._exit, as a process that
dies on a failing disk: no close, no checkpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers.power_writer

from ckptdb import open_store
from helpers.power_writer import make


async def run(db: str, flag: Path) -> None:
    store = await open_store(db, synchronous="FULL")
    await store.save(make(0))
    flag.touch()
    attempts = {"save": lambda: store.save(make(1)), "save_many": lambda: store.save_many([make(2), make(3)])}
    for name, call in attempts.items():
        try:
            await call()
            outcome = {"call": name, "error": None, "message": ""}
        except Exception as exc:
            outcome = {"call": name, "error": type(exc).__name__, "message": str(exc)}
        os.write(1, (json.dumps(outcome) + "\n").encode())
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], Path(sys.argv[2])))
