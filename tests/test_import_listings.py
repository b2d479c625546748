"""How often an import lists each directory of a real tree: once to plan and count (the walk that
orders the directories also counts their entries), once while importing, and once more for
`strict`'s validation pass. Counted by wrapping `os.scandir` around a real import."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ckptdb import open_store
from ckptdb.importer import ImportOptions, Outcome, import_directories

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import gen_echo  # noqa: E402

DIRS = ("", "a", "a/deep", "b")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for seed, rel in enumerate(DIRS):
        gen_echo.generate(root / rel, 5, seed=seed, state_bytes=100)
    return root


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch, tree: Path) -> Iterator[Counter[str]]:
    """Directory (relative to the tree) -> how many times it was listed."""
    counted: Counter[str] = Counter()
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        text = os.fspath(path)
        if os.path.realpath(text).startswith(str(tree.resolve())):
            rel = os.path.relpath(text, tree)
            counted["" if rel == "." else rel] += 1
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    yield counted


def _progress(phase: str, done: int, total: int) -> None:
    """A progress callback: with one, `strict` also counts for its validation pass."""


async def test_a_recursive_import_lists_each_directory_twice(
    tmp_path: Path, tree: Path, listings: Counter[str]
) -> None:
    async with await open_store(str(tmp_path / "c.db")) as store:
        options = ImportOptions(recursive=True)
        report = await import_directories(store, [tree], options, progress_callback=_progress)
    assert report.counts[Outcome.IMPORTED] == 5 * len(DIRS)
    assert listings == dict.fromkeys(DIRS, 2)


async def test_strict_lists_each_directory_once_more(
    tmp_path: Path, tree: Path, listings: Counter[str]
) -> None:
    async with await open_store(str(tmp_path / "c.db")) as store:
        options = ImportOptions(recursive=True, strict=True)
        report = await import_directories(store, [tree], options, progress_callback=_progress)
    assert report.counts[Outcome.IMPORTED] == 5 * len(DIRS)
    assert listings == dict.fromkeys(DIRS, 3)


async def test_a_flat_import_lists_its_directory_twice(tree: Path, listings: Counter[str]) -> None:
    options = ImportOptions(dry_run=True)
    report = await import_directories(None, [tree], options, progress_callback=_progress)
    assert report.counts[Outcome.IMPORTED] == 5
    assert listings == {"": 2}
