"""Child process for tests/test_reliability_crash.py: save checkpoints until killed.

    python crash_writer.py --kind sqlite|postgres|files --target PATH|URL --run N
                           --mode single|many|concurrent [--synchronous NORMAL|FULL] [--seed S]

Prints `READY` once the store is open, then one line `<id> <version>` for every checkpoint whose
save()/save_many() has *returned* (one os.write per acknowledgement, so a SIGKILL never leaves half
a line that looks whole). Content is `content.make_checkpoint(id, version)`; ids are new
(`r<run>-...`) or overwrites, with version+1, of rows already in the store (from earlier runs or
this one), so a kill can land in the middle of replacing an acknowledged checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers.content

from ckptdb import CheckpointStore, FileCheckpointStore, open_store
from helpers.content import make_checkpoint, version_of


def ack(pairs: list[tuple[str, int]]) -> None:
    os.write(1, "".join(f"{cid} {version}\n" for cid, version in pairs).encode("utf-8"))


async def open_target(kind: str, target: str, synchronous: str) -> CheckpointStore:
    if kind == "files":
        return FileCheckpointStore(target)
    if kind == "postgres":
        return await open_store(target)
    return await open_store(target, synchronous=synchronous)


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    store = await open_target(args.kind, args.target, args.synchronous)
    # Versions of rows already stored, read back from the store itself (not from what an earlier
    # run acknowledged: an unacknowledged save may have committed a newer version).
    existing = [info.id for info in await store.list()]
    versions: dict[str, int] = {}
    for cid in rng.sample(existing, min(len(existing), 40)):
        loaded = await store.load(cid)
        if loaded is not None:
            versions[cid] = version_of(loaded)
    os.write(1, b"READY\n")

    def next_item(owned: list[str], prefix: str, counter: list[int]) -> tuple[str, int]:
        """A new id, or (one time in four) an overwrite of one of `owned` with version+1."""
        if owned and rng.random() < 0.25:
            cid = rng.choice(owned)
            versions[cid] += 1
            return cid, versions[cid]
        counter[0] += 1
        cid = f"{prefix}-{counter[0]}"
        versions[cid] = 0
        owned.append(cid)
        return cid, 0

    if args.mode == "single":
        owned, counter = list(versions), [0]
        while True:
            cid, version = next_item(owned, f"r{args.run}", counter)
            await store.save(make_checkpoint(cid, version))
            ack([(cid, version)])
    elif args.mode == "many":
        owned, counter = list(versions), [0]
        while True:
            batch: dict[str, int] = {}
            for _ in range(rng.randrange(2, 25)):
                cid, version = next_item(owned, f"r{args.run}", counter)
                batch[cid] = version  # an id twice in one batch: the last version wins
            await store.save_many([make_checkpoint(cid, version) for cid, version in batch.items()])
            ack(list(batch.items()))
    else:  # concurrent: 8 tasks, each with its own ids, so every acknowledgement is unambiguous
        inherited = list(versions)

        async def task(number: int) -> None:
            owned = inherited[number::8]
            counter = [0]
            while True:
                cid, version = next_item(owned, f"r{args.run}-t{number}", counter)
                await store.save(make_checkpoint(cid, version))
                ack([(cid, version)])

        await asyncio.gather(*(task(n) for n in range(8)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("sqlite", "postgres", "files"), required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--mode", choices=("single", "many", "concurrent"), required=True)
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
