"""Peak memory of huge states: how much a fresh process grows to save, load, import and export one.

    python scripts/measure_memory.py [--sizes 10,100,300] [--kinds ascii,non-ascii] [--ops ...]
                                     [--target sqlite|postgres URL] [--json OUT]

Each case runs in a process of its own, so that its peak (VmHWM) is that case's alone:
- save / load: a child opens the store, builds the state (`save`: the state counts, as in any
  caller), resets its peak (`/proc/self/clear_refs`) and prints how far VmHWM rose above its
  resident size at that moment;
- sync-save / sync-load: the same through the synchronous store (`ckptdb.connect`);
- import / reimport / export: `ckptdb import` of one echo file holding the state (`reimport`:
  into a database that holds it already; `export`: of the database holding it into an empty
  directory), run as a child; its peak (`ru_maxrss`) less the peak of the same command on a
  small checkpoint.
"Document" is the state's UTF-8 JSON size; the ratio is growth / document. `ascii` is one string
of `A`s, `non-ascii` one of `é` (2 bytes in UTF-8, 1 in a Python str).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent

_CHILD = r"""
import asyncio, json, sys
from ckptdb import Checkpoint, open_store

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no " + field)

def state_of(kind, size):
    char = "A" if kind == "ascii" else "\u00e9"
    return {"values": {"blob": char * (size // len(char.encode()))}}

async def main(op, target, kind, size):
    async with await open_store(target) as store:
        small = Checkpoint("small", "g", "n", {"a": 1}, [], 0, "2026-11-03T09:00:00Z", None, "afternode")
        await store.save(small)
        await store.load("small")
        open("/proc/self/clear_refs", "w").write("5")
        base = status("VmRSS")
        if op == "save":
            state = state_of(kind, size)  # built here, as a caller would: it counts
            cp = Checkpoint("big", "g", "n", state, [], 1, "2026-11-03T09:00:01Z", None, "afternode")
            await store.save(cp)
        else:
            loaded = await store.load("big")
            assert loaded is not None
        grown = status("VmHWM") - base
    print(json.dumps({"grown": grown}))

def main_sync(op, target, kind, size):
    from ckptdb import connect
    with connect(target) as store:
        small = Checkpoint("small", "g", "n", {"a": 1}, [], 0, "2026-11-03T09:00:00Z", None, "afternode")
        store.save(small)
        store.load("small")
        open("/proc/self/clear_refs", "w").write("5")
        base = status("VmRSS")
        if op == "save":
            state = state_of(kind, size)
            cp = Checkpoint("big", "g", "n", state, [], 1, "2026-11-03T09:00:01Z", None, "afternode")
            store.save(cp)
        else:
            assert store.load("big") is not None
        grown = status("VmHWM") - base
    print(json.dumps({"grown": grown}))

op = sys.argv[1]
if op.startswith("sync-"):
    main_sync(op[5:], sys.argv[2], sys.argv[3], int(sys.argv[4]))
else:
    asyncio.run(main(op, sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""

_SEED = r"""
import asyncio, sys
from pathlib import Path
from ckptdb import Checkpoint, open_store

async def main(target, kind, size, echo_dir, cid):
    char = "A" if kind == "ascii" else "\u00e9"
    state = {"values": {"blob": char * (size // len(char.encode()))}} if size else {"a": 1}
    cp = Checkpoint(cid, "g", "n", state, [], 1, "2026-11-03T09:00:01Z", None, "afternode")
    if target != "-":
        async with await open_store(target) as store:
            await store.clear()
            await store.save(cp)
    if echo_dir != "-":
        Path(echo_dir, "big.json").write_text(cp.to_json(), encoding="utf-8")

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]))
"""


def _python() -> str:
    return sys.executable


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO_DIR, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])}...: exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def _cli_peak(args: list[str]) -> int:
    """The peak resident size of one `ckptdb` command, from a wrapper process of its own."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "if done.returncode: sys.exit(f'exit {done.returncode}: {done.stdout} {done.stderr}')\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
    )
    return int(_run([_python(), "-c", wrapper, _python(), "-m", "ckptdb", *args]).strip())


def _document_bytes(kind: str, size: int) -> int:
    char = "A" if kind == "ascii" else "\u00e9"
    blob = char * (size // len(char.encode()))
    return len(json.dumps({"values": {"blob": blob}}, ensure_ascii=False).encode())


def measure(op: str, kind: str, size: int, target: str | None, work: Path) -> int:
    """Growth in bytes of one fresh process doing `op` on a `size`-byte state."""
    db = target or str(work / "m.db")
    if op in ("save", "load", "sync-save", "sync-load"):
        if op.endswith("load"):
            _run([_python(), "-c", _SEED, db, kind, str(size), "-", "big"])
        out = _run([_python(), "-c", _CHILD, op, db, kind, str(size)])
        return int(json.loads(out)["grown"])
    peaks = []
    for seeded in (0, size):  # the command on a small checkpoint, then on the big one
        case = work / f"{op}-{seeded}"
        echo_dir = case / "echo"
        echo_dir.mkdir(parents=True)
        if op in ("import", "reimport"):
            _run([_python(), "-c", _SEED, "-", kind, str(seeded), str(echo_dir), "big"])
            case_db = target or str(case / "i.db")
            if op == "import":  # a database with another, small row
                _run([_python(), "-c", _SEED, case_db, kind, "0", "-", "small"])
            else:  # the same checkpoint stored already: the file is found unchanged
                _run([_python(), "-c", _SEED, case_db, kind, str(seeded), "-", "big"])
            peaks.append(_cli_peak(["--db", case_db, "import", str(echo_dir)]))
        else:
            case_db = target or str(case / "e.db")
            _run([_python(), "-c", _SEED, case_db, kind, str(seeded), "-", "big"])
            peaks.append(_cli_peak(["--db", case_db, "export", str(case / "out")]))
    return peaks[1] - peaks[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="10,100,300", help="state sizes in MB (2^20 bytes), comma-separated"
    )
    parser.add_argument("--kinds", default="ascii,non-ascii")
    parser.add_argument("--ops", default="save,load,sync-save,sync-load,import,reimport,export")
    parser.add_argument(
        "--target", default=None, help="a PostgreSQL URL (default: a new SQLite file per case)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    figures: list[dict[str, Any]] = []
    print(f"{'op':<9} {'kind':<10} {'MB':>5} {'document MB':>12} {'growth MB':>10} {'ratio':>6}")
    for size_mb in (int(s) for s in args.sizes.split(",")):
        for kind in args.kinds.split(","):
            for op in args.ops.split(","):
                size = size_mb * 2**20
                with tempfile.TemporaryDirectory(prefix="ckptdb-mem-") as tmp:
                    grown = measure(op, kind, size, args.target, Path(tmp))
                document = _document_bytes(kind, size)
                ratio = grown / document
                figures.append(
                    {"op": op, "kind": kind, "size_mb": size_mb, "document": document, "grown": grown}
                )
                print(
                    f"{op:<9} {kind:<10} {size_mb:>5} {document / 2**20:>12.1f} {grown / 2**20:>10.0f} "
                    f"{ratio:>6.2f}",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
