"""Child process for tests/test_durability.py: save checkpoints until told to stop.

    python steady_saver.py DB NAME STOP_FILE

Opens the store, prints `READY`, then saves `NAME-<i>` (content from helpers.power_writer) one at a
time, with a short pause, until STOP_FILE exists, and prints one JSON line: {"saves", "errors"}
(each error as `Type: message`). Exit status 1 when any save failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers.power_writer

from ckptdb import open_store
from helpers.power_writer import make


async def run(db: str, name: str, stop: Path) -> int:
    saves, errors = 0, []
    async with await open_store(db) as store:
        os.write(1, b"READY\n")
        while not stop.exists():
            checkpoint = dataclasses.replace(make(saves), id=f"{name}-{saves}")
            try:
                await store.save(checkpoint)
                saves += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                saves += 1
            await asyncio.sleep(0.005)
    os.write(1, (json.dumps({"saves": saves, "errors": errors}) + "\n").encode())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv[1], sys.argv[2], Path(sys.argv[3]))))
