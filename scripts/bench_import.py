"""Benchmark scenario: `ckptdb import` and `ckptdb export` against plain stdlib baselines, and the
import's peak memory at two directory sizes.

    python scripts/bench.py import [--quick] [--import-n N] [--import-small N] [--import-repeat R]

- import rate: `ckptdb import DIR` of N generated echo files (default 100,000, ~470 MB, from
  scripts/gen_echo.py, cached under bench-data/) into a fresh database path (so the schema
  migration is part of the timing, as for a user), against a baseline doing stdlib `json.loads` +
  stdlib `sqlite3` `executemany` in 1,000-row transactions into the same schema (created untimed).
  Target: >= 0.6x the baseline's files/s.
- peak memory of the import at the small size (default 10,000) and at N: each import runs in a
  fresh child of a small wrapper process that reports `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`
  (the largest single process; no other run's peak can leak in) and, because big imports parse in
  a helper process that `ru_maxrss` does not add in, the peak sum of PSS over the whole process
  tree, sampled every 0.25 s. Targets: < 150 MB each, the N run's RSS within 20% of the small one.
- export rate: `ckptdb export` of the imported N rows (atomic, fsynced files) against stdlib
  `sqlite3` select + `json.dumps(indent=2)` + plain write (no fsync). Target: >= 0.6x.

Every figure is the wall time of a separate process, so interpreter start-up is included on both
sides (negligible at 100,000 files; it dominates `--quick`, whose figures are a smoke test). With
`--import-repeat R` each pair runs R times, interleaved, and the best of each side is kept: on a
shared machine the best run is the one least disturbed by neighbours, for either side alike.

Run as a script with `baseline-import DIR DB` or `baseline-export DB OUT` it is the baseline itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent
REPO_DIR = SCRIPTS_DIR.parent
DEFAULT_DATA = REPO_DIR / "bench-data"
QUICK_N, QUICK_SMALL = 2_000, 200

RSS_WRAPPER = """
import json, resource, subprocess, sys, tempfile, time
from pathlib import Path

def tree_pss_kb(root):
    # Sum of PSS (shared pages split between their users) over `root` and its descendants.
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total

started = time.perf_counter()
with tempfile.TemporaryFile("w+") as errors:
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=errors, text=True)
    peak_pss = 0
    while proc.poll() is None:
        peak_pss = max(peak_pss, tree_pss_kb(proc.pid))
        time.sleep(0.25)
    errors.seek(0)
    stderr = errors.read()
print(json.dumps({"status": proc.returncode, "seconds": time.perf_counter() - started,
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "tree_pss_kb": peak_pss, "stderr": stderr[-2000:]}))
"""
"""Runs a command and reports its wall time, `ru_maxrss` of its largest process (RUSAGE_CHILDREN:
this wrapper runs nothing else), and the peak sum of PSS over its process tree, sampled every
0.25 s (the import parses in a helper process, which `ru_maxrss` alone would not add up)."""


# ── the baselines (run as child processes) ───────────────────────────────────────────────────────

BASELINE_INSERT = (
    "INSERT INTO checkpoints (id, graph_name, current_node, state_snapshot, path, step_count, created_at, "
    "pending_action, interrupt_type, created_at_text, extra, source) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def baseline_import(directory: Path, db: Path) -> int:
    """stdlib json + sqlite3 executemany, 1,000 rows per transaction, same pragmas as ckptdb."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    batch: list[tuple[object, ...]] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(BASELINE_INSERT, batch)
        conn.execute("COMMIT")
        batch.clear()

    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        with open(path, "rb") as handle:
            doc = json.loads(handle.read())
        pending = doc["pending_action"]
        batch.append(
            (
                doc["id"],
                doc["graph_name"],
                doc["current_node"],
                json.dumps(doc["state_snapshot"]),
                json.dumps(doc["path"]),
                doc["step_count"],
                doc["created_at"],
                None if pending is None else json.dumps(pending),
                doc["interrupt_type"],
                None,
                None,
                path,
            )
        )
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    conn.close()
    return 0


def baseline_export(db: Path, out: Path) -> int:
    """stdlib sqlite3 select + json.dumps(indent=2) + a plain write per file (no fsync, no rename)."""
    out.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    cursor = conn.execute(
        "SELECT id, graph_name, current_node, state_snapshot, path, step_count, created_at, pending_action, "
        "interrupt_type FROM checkpoints ORDER BY created_at DESC, id DESC"
    )
    for row in cursor:
        doc = {
            "id": row[0],
            "graph_name": row[1],
            "current_node": row[2],
            "state_snapshot": json.loads(row[3]),
            "path": json.loads(row[4]),
            "step_count": row[5],
            "created_at": row[6],
            "pending_action": None if row[7] is None else json.loads(row[7]),
            "interrupt_type": row[8],
        }
        with open(out / f"{row[0]}.json", "w", encoding="utf-8") as handle:
            handle.write(json.dumps(doc, indent=2, ensure_ascii=False))
    conn.close()
    return 0


# ── measuring ────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    max_rss_mb: float  # the largest single process
    tree_pss_mb: float  # the whole process tree, shared pages counted once


def measure(command: list[str]) -> Run:
    """Run `command` in a fresh child of a wrapper process: wall time and that child's peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *command],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_DIR,
    )
    found = json.loads(done.stdout)
    if found["status"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {found['status']}: {found['stderr']}")
    return Run(found["seconds"], found["max_rss_kb"] / 1024, found["tree_pss_kb"] / 1024)


def dataset(data_dir: Path, count: int) -> Path:
    """N generated files, cached: generated once per size (under a temporary name, then renamed, so
    two benchmark runs at once cannot see a half-written set) and reused while its marker exists."""
    directory = data_dir / f"echo-{count}-seed0"
    marker = data_dir / f"echo-{count}-seed0.complete"
    if marker.exists() and directory.is_dir():
        return directory
    building = Path(tempfile.mkdtemp(prefix=f".echo-{count}-", dir=data_dir))
    print(f"   generating {count:,} echo files in {directory} (once; cached) ...", flush=True)
    try:
        subprocess.run(
            [
                sys.executable,
                str(SCRIPTS_DIR / "gen_echo.py"),
                str(building),
                "--count",
                str(count),
                "--seed",
                "0",
            ],
            check=True,
        )
        if not marker.exists():
            shutil.rmtree(directory, ignore_errors=True)
            os.rename(building, directory)
            marker.write_text(f"{count}\n")
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return directory


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def ckptdb_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ckptdb", *args]


def empty_schema(db: Path) -> None:
    remove_db(db)
    subprocess.run(ckptdb_command("--db", str(db), "db", "upgrade"), check=True, capture_output=True)


def warm_cache(directory: Path) -> None:
    """Read every file once, untimed: otherwise whichever side runs first pays the disk reads and
    the other gets the page cache it filled."""
    with os.scandir(directory) as entries:
        for entry in entries:
            with open(entry.path, "rb") as handle:
                handle.read()


def import_runs(directory: Path, work: Path, tag: str, baseline_first: bool = False) -> tuple[Run, Run, Path]:
    """(ckptdb, baseline) imports of `directory`; returns the ckptdb database for the export runs.
    `baseline_first` swaps the order (rounds alternate it, so neither side always goes first)."""
    ours, theirs = work / f"ckptdb-{tag}.db", work / f"baseline-{tag}.db"
    remove_db(ours)
    empty_schema(theirs)

    def run_ours() -> Run:
        return measure(ckptdb_command("--db", str(ours), "import", str(directory), "--quiet"))

    def run_theirs() -> Run:
        return measure([sys.executable, __file__, "baseline-import", str(directory), str(theirs)])

    if baseline_first:
        theirs_run = run_theirs()
        ours_run = run_ours()
    else:
        ours_run = run_ours()
        theirs_run = run_theirs()
    remove_db(theirs)
    return ours_run, theirs_run, ours


def export_runs(db: Path, work: Path) -> tuple[Run, Run]:
    ours_dir, theirs_dir = work / "export-ckptdb", work / "export-baseline"
    shutil.rmtree(ours_dir, ignore_errors=True)
    shutil.rmtree(theirs_dir, ignore_errors=True)
    try:
        ours = measure(ckptdb_command("--db", str(db), "export", str(ours_dir), "--quiet"))
        theirs = measure([sys.executable, __file__, "baseline-export", str(db), str(theirs_dir)])
    finally:
        shutil.rmtree(ours_dir, ignore_errors=True)
        shutil.rmtree(theirs_dir, ignore_errors=True)
    return ours, theirs


# ── the scenario ─────────────────────────────────────────────────────────────────────────────────


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("import scenario")
    group.add_argument("--import-n", type=int, default=None, metavar="N", help="files to import (100,000)")
    group.add_argument(
        "--import-small", type=int, default=None, metavar="N", help="small size for RSS (10,000)"
    )
    group.add_argument(
        "--import-repeat", type=int, default=None, metavar="R", help="runs per side, best kept (2)"
    )
    group.add_argument("--import-data", type=Path, default=DEFAULT_DATA, metavar="DIR", help="dataset cache")


def run(args: argparse.Namespace) -> list[object]:
    from bench import Result

    quick = bool(getattr(args, "quick", False))
    n = args.import_n or (QUICK_N if quick else 100_000)
    small = args.import_small or (QUICK_SMALL if quick else 10_000)
    repeat = args.import_repeat or (1 if quick else 2)
    data_dir: Path = args.import_data
    data_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="import-work-", dir=data_dir))  # private: runs may overlap
    big_dir, small_dir = dataset(data_dir, n), dataset(data_dir, small)

    imports: list[tuple[Run, Run]] = []
    exports: list[tuple[Run, Run]] = []
    smalls: list[tuple[Run, Run]] = []
    try:
        warm_cache(big_dir)
        warm_cache(small_dir)
        for round_ in range(1, repeat + 1):
            ours, theirs, db = import_runs(big_dir, work, "big", baseline_first=round_ % 2 == 1)
            print(
                f"   round {round_}: import {n:,}: ckptdb {n / ours.seconds:,.0f} files/s "
                f"(RSS {ours.max_rss_mb:.0f} MB, tree PSS {ours.tree_pss_mb:.0f} MB), "
                f"baseline {n / theirs.seconds:,.0f} files/s",
                flush=True,
            )
            imports.append((ours, theirs))
            exported = export_runs(db, work)
            print(
                f"   round {round_}: export {n:,}: ckptdb {n / exported[0].seconds:,.0f} files/s, "
                f"baseline {n / exported[1].seconds:,.0f} files/s",
                flush=True,
            )
            exports.append(exported)
            remove_db(db)
            small_ours, small_theirs, small_db = import_runs(small_dir, work, "small")
            remove_db(small_db)
            smalls.append((small_ours, small_theirs))
            print(
                f"   round {round_}: import {small:,}: ckptdb peak RSS {small_ours.max_rss_mb:.0f} MB, "
                f"tree PSS {small_ours.tree_pss_mb:.0f} MB",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    best_ours = min(r[0].seconds for r in imports)
    best_theirs = min(r[1].seconds for r in imports)
    rss_big = max(r[0].max_rss_mb for r in imports)
    rss_small = max(r[0].max_rss_mb for r in smalls)
    # --quick is a smoke run: start-up dominates tiny sizes, so its figures get no targets.
    ratio = None if quick else 0.6
    growth = None if quick else 1.2
    note = "quick: tiny sizes, start-up dominates; not figures to quote" if quick else ""
    return [
        Result(
            "import", f"import {n:,} files", n / best_ours, n / best_theirs, "files/s",
            target_ratio=ratio, note=note or f"best of {repeat}; peer: stdlib json + sqlite3 executemany",
        ),
        Result(
            "import", f"peak RSS, {small:,} files", rss_small, max(r[1].max_rss_mb for r in smalls), "MB",
            max_value=150, higher_is_better=False,
        ),
        Result(
            "import", f"peak RSS, {n:,} files", rss_big, max(r[1].max_rss_mb for r in imports), "MB",
            max_value=150, higher_is_better=False,
        ),
        Result(
            "import", f"peak PSS of the process tree, {small:,} files", max(r[0].tree_pss_mb for r in smalls),
            max(r[1].tree_pss_mb for r in smalls), "MB", max_value=150, higher_is_better=False,
            note="the importer and its helper (parser) process, pages they share counted once",
        ),
        Result(
            "import", f"peak PSS of the process tree, {n:,} files", max(r[0].tree_pss_mb for r in imports),
            max(r[1].tree_pss_mb for r in imports), "MB", max_value=150, higher_is_better=False,
        ),
        Result(
            "import", f"peak RSS growth {small:,} -> {n:,}", rss_big / rss_small, None, "x",
            max_value=growth, higher_is_better=False, note="the bigger run's peak RSS over the smaller one's",
        ),
        Result(
            "export", f"export {n:,} checkpoints", n / min(r[0].seconds for r in exports),
            n / min(r[1].seconds for r in exports), "files/s", target_ratio=ratio,
            note="ckptdb: atomic + fsynced files; peer: json.dumps(indent=2) + plain write, no fsync",
        ),
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "baseline-import":
        return baseline_import(Path(argv[1]), Path(argv[2]))
    if len(argv) == 3 and argv[0] == "baseline-export":
        return baseline_export(Path(argv[1]), Path(argv[2]))
    print(
        "usage: bench_import.py baseline-import DIR DB | baseline-export DB OUT (or run via scripts/bench.py)"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
