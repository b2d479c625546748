"""Processes a test started, and the helpers they started in turn (Linux /proc)."""

from __future__ import annotations

import time
from pathlib import Path


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc: parent ids)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _state_and_parent(int(entry.name))) is not None:
            parents[int(entry.name)] = found[1]
    below: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - below
        below |= frontier
    return below


def alive(pid: int) -> bool:
    """Running (a zombie is not: it does nothing more, whoever reaps it)."""
    found = _state_and_parent(pid)
    return found is not None and found[0] != "Z"


def wait_gone(pids: set[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of `pids` runs; returns the ones still running after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return sorted(pid for pid in pids if alive(pid))
