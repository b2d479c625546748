"""The benchmark entry point: runs scenario modules and prints one table of results against targets.

    python scripts/bench.py [SCENARIO ...] [--quick] [--json OUT] [scenario flags]

A scenario is a module `scripts/bench_<name>.py` beside this file exposing

    run(args: argparse.Namespace) -> list[Result]          (or an awaitable of one)

and optionally `add_arguments(parser: argparse.ArgumentParser) -> None` to register its own flags
(in its own `parser.add_argument_group(...)`, prefixed with the scenario name, e.g. `--core-n`, so
scenarios never collide; all modules' flags are accepted whichever scenarios run). Scenario modules
import the shared types with `from bench import Result`. With no SCENARIO, every available module
runs; a requested name whose module is missing (or fails to import) is skipped with a note.

Benchmarks report, they do not gate: the exit status is 0 whatever PASS/FAIL says. It is 1 only
when a scenario crashed (a broken benchmark is not a result), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import platform
import sqlite3
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# Scenario modules do `from bench import Result`: when this file runs as __main__, make that import
# return this very module instead of loading a second copy (with a second, different Result class).
sys.modules.setdefault("bench", sys.modules[__name__])

SCRIPTS_DIR = Path(__file__).resolve().parent
REPO_DIR = SCRIPTS_DIR.parent
PREFIX = "bench_"

KNOWN_SCENARIOS = ("core", "import", "inspect", "postgres", "web")
"""Scenario names with a reserved place, in the order they run; others follow alphabetically."""


@dataclass(frozen=True, slots=True)
class Result:
    """One measured figure, ckptdb beside the peer (if any), judged against a target (if any).

    `target_ratio`: ckptdb must be at least this many times better than the peer ("better" is
    higher when `higher_is_better`, e.g. ops/s, else lower, e.g. ms). `max_value`: ckptdb's own
    value must not exceed this (an absolute budget, e.g. 1.0 ms). Both may be set; neither means
    the row is informational.
    """

    scenario: str
    metric: str
    ckptdb: float
    peer: float | None
    unit: str
    target_ratio: float | None = None
    max_value: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better ckptdb is than the peer (> 1 means ckptdb wins), or None."""
        if self.peer is None or self.peer <= 0 or self.ckptdb <= 0:
            return None
        return self.ckptdb / self.peer if self.higher_is_better else self.peer / self.ckptdb

    @property
    def passed(self) -> bool | None:
        """True/False against the targets, None when there is no target."""
        if self.target_ratio is None and self.max_value is None:
            return None
        ok = True
        if self.target_ratio is not None:
            ratio = self.ratio
            ok = ratio is not None and ratio >= self.target_ratio
        if self.max_value is not None:
            ok = ok and self.ckptdb <= self.max_value
        return ok

    @property
    def target_text(self) -> str:
        parts = []
        if self.target_ratio is not None:
            parts.append(f">= {self.target_ratio:g}x")
        if self.max_value is not None:
            parts.append(f"<= {self.max_value:g} {self.unit}")
        return ", ".join(parts) or "-"

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "ckptdb": self.ckptdb,
            "peer": self.peer,
            "unit": self.unit,
            "target_ratio": self.target_ratio,
            "max_value": self.max_value,
            "higher_is_better": self.higher_is_better,
            "ratio": self.ratio,
            "passed": self.passed,
            "note": self.note,
        }


def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def render_table(results: list[Result]) -> str:
    header = ("scenario", "metric", "ckptdb", "peer", "unit", "ratio", "target", "status")
    rows: list[tuple[str, ...]] = [header]
    notes: list[str] = []
    for result in results:
        status = {None: "info", True: "PASS", False: "FAIL"}[result.passed]
        metric = result.metric
        if result.note:
            notes.append(result.note)
            metric += f" [{len(notes)}]"
        ratio = result.ratio
        rows.append(
            (
                result.scenario,
                metric,
                format_value(result.ckptdb),
                format_value(result.peer),
                result.unit,
                "-" if ratio is None else f"{ratio:.2f}x",
                result.target_text,
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = {2, 3, 5}
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(f"  [{i}] {note}" for i, note in enumerate(notes, 1))
    return "\n".join(lines)


def available_scenarios() -> list[str]:
    found = {p.stem[len(PREFIX) :] for p in SCRIPTS_DIR.glob(f"{PREFIX}*.py")}
    known = [name for name in KNOWN_SCENARIOS if name in found]
    return known + sorted(found - set(KNOWN_SCENARIOS))


def load_scenarios(names: list[str]) -> tuple[dict[str, ModuleType], list[str]]:
    """Import each scenario module; returns (loaded modules by name, skip notes)."""
    if str(SCRIPTS_DIR) not in sys.path:
        sys.path.insert(0, str(SCRIPTS_DIR))
    modules: dict[str, ModuleType] = {}
    skipped: list[str] = []
    for name in names:
        if not (SCRIPTS_DIR / f"{PREFIX}{name}.py").exists():
            reserved = " (reserved, not written yet)" if name in KNOWN_SCENARIOS else ""
            skipped.append(f"{name}: no module scripts/{PREFIX}{name}.py{reserved}; skipped")
            continue
        try:
            module = importlib.import_module(f"{PREFIX}{name}")
        except Exception as exc:  # an optional dependency missing, say: skip, do not stop the others
            skipped.append(f"{name}: import failed ({type(exc).__name__}: {exc}); skipped")
            continue
        if not callable(getattr(module, "run", None)):
            skipped.append(f"{name}: scripts/{PREFIX}{name}.py has no run(args); skipped")
            continue
        modules[name] = module
    return modules, skipped


def build_parser(modules: dict[str, ModuleType], available: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description="ckptdb benchmarks: each scenario beside its peer, with ratios and targets.",
        epilog=f"available scenarios: {', '.join(available) or 'none'}",
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help="scenarios to run (default: all available)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures to quote")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON to OUT")
    for module in modules.values():
        add_arguments = getattr(module, "add_arguments", None)
        if callable(add_arguments):
            add_arguments(parser)
    return parser


def run_scenario(module: ModuleType, args: argparse.Namespace) -> list[Result]:
    outcome = module.run(args)
    if inspect.isawaitable(outcome):
        outcome = asyncio.run(_await(outcome))
    results = list(outcome)
    for result in results:
        if not isinstance(result, Result):
            raise TypeError(f"run() returned {type(result).__name__}, not bench.Result")
    return results


async def _await(awaitable: Any) -> Any:
    return await awaitable


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    available = available_scenarios()
    # Flags are registered by the modules themselves, so import them all before parsing; which of
    # them run is decided after. The positional names are peeked at only to report missing ones.
    modules, import_notes = load_scenarios(available)
    args = build_parser(modules, available).parse_args(argv)
    requested: list[str] = args.scenarios or available
    skipped = [note for note in import_notes if note.split(":", 1)[0] in requested]
    skipped.extend(load_scenarios([n for n in dict.fromkeys(requested) if n not in available])[1])

    results: list[Result] = []
    crashed: list[str] = []
    load_before = os.getloadavg()[0]  # figures taken on a busy machine say so
    started = time.perf_counter()
    for name in dict.fromkeys(requested):
        module = modules.get(name)
        if module is None:
            continue
        print(f"== {name} ==", flush=True)
        scenario_start = time.perf_counter()
        try:
            found = run_scenario(module, args)
        except KeyboardInterrupt:
            raise
        except Exception:
            traceback.print_exc()
            crashed.append(name)
            continue
        results.extend(found)
        print(f"   ({name}: {time.perf_counter() - scenario_start:.1f} s)", flush=True)

    print()
    print(render_table(results) if results else "no results")
    for note in skipped:
        print(f"note: {note}")
    for name in crashed:
        print(f"error: scenario {name} crashed (traceback above)")
    passed = sum(r.passed is True for r in results)
    failed = sum(r.passed is False for r in results)
    info = len(results) - passed - failed
    load_after = os.getloadavg()[0]
    print(
        f"{passed} PASS, {failed} FAIL, {info} info in {time.perf_counter() - started:.1f} s "
        f"(load average {load_before:.2f} -> {load_after:.2f} on {os.cpu_count()} CPUs)"
    )

    if args.json is not None:
        payload = {
            "argv": argv,
            "quick": args.quick,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": [load_before, load_after],
            "results": [r.to_json() for r in results],
            "skipped": skipped,
            "crashed": crashed,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
