"""Child process for tests/test_reliability_concurrency.py: one writer or the reader.

    python concurrent_worker.py writer --db PATH --worker K --count N --tasks T --ready FILE --go FILE
    python concurrent_worker.py reader --db PATH --ready FILE --go FILE --stop FILE

Each opens the store (creating it if needed), touches its `--ready` file, then waits for the
`--go` file, so every process starts at once. A writer saves N checkpoints
(`w<K>-<i>`, content from `helpers.content`) from T concurrent tasks, one save() call each; the
reader lists and loads in a loop until the `--stop` file appears, checking every checkpoint it
loads. Each prints one JSON line: counts and every error (type and message); exit status 1 when
there was any error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers.content

from ckptdb import open_store
from helpers.content import check_intact, make_checkpoint


async def wait_for(path: Path) -> None:
    while not path.exists():
        await asyncio.sleep(0.002)


async def writer(args: argparse.Namespace) -> dict[str, Any]:
    store = await open_store(args.db)  # synchronous NORMAL, the default
    synchronous = None
    if store.target.kind == "sqlite":  # 1 = NORMAL, 2 = FULL
        rows = await store.backend._writer.execute_fetchall("PRAGMA synchronous")  # type: ignore[attr-defined]
        synchronous = next(iter(rows))[0]
    errors: list[str] = []
    saved = 0
    Path(args.ready).touch()
    await wait_for(Path(args.go))
    started = time.monotonic()

    async def task(number: int) -> None:
        nonlocal saved
        for i in range(number, args.count, args.tasks):
            cid = f"w{args.worker}-{i}"
            try:
                await store.save(make_checkpoint(cid, 0))
                saved += 1
            except Exception as exc:
                errors.append(f"save {cid}: {type(exc).__name__}: {exc}")

    await asyncio.gather(*(task(n) for n in range(args.tasks)))
    seconds = time.monotonic() - started
    await store.close()
    return {
        "role": "writer",
        "worker": args.worker,
        "saved": saved,
        "seconds": seconds,
        "synchronous": synchronous,
        "errors": errors,
    }


async def reader(args: argparse.Namespace) -> dict[str, Any]:
    store = await open_store(args.db)
    rng = random.Random(0)
    errors: list[str] = []
    lists = loads = 0
    previous = 0
    max_seen = 0
    stop = Path(args.stop)
    Path(args.ready).touch()
    await wait_for(Path(args.go))
    while True:
        last_round = stop.exists()  # one more full round after the writers are done
        try:
            infos = await store.list()
            lists += 1
            if len(infos) < previous:
                errors.append(f"list shrank from {previous} to {len(infos)} rows")
            previous = len(infos)
            max_seen = max(max_seen, len(infos))
            sample = infos if last_round else rng.sample(infos, min(len(infos), 50))
            for info in sample:
                problem = check_intact(await store.load(info.id), info.id)
                loads += 1
                if problem:
                    errors.append(problem)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        if last_round:
            break
    await store.close()
    return {"role": "reader", "lists": lists, "loads": loads, "rows_seen": max_seen, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("writer", "reader"))
    parser.add_argument("--db", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--go", required=True)
    parser.add_argument("--stop")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=1)
    args = parser.parse_args()
    result = asyncio.run(writer(args) if args.role == "writer" else reader(args))
    print(json.dumps(result), flush=True)
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
