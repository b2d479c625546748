"""The one progress display (ckptdb/cli/progress.py), fed by copy and prune: drawn on a terminal's
stderr, absent when stderr is a pipe. Real processes on a real pseudo-terminal (import's and
export's bar is covered in test_import.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from helpers.terminal import run_on_terminal

from ckptdb.cli import main

SOME = 30


def _ckptdb(*args: str) -> list[str]:
    return [sys.executable, "-m", "ckptdb", *args]


def _imported(db: Path, some_files: Path) -> None:
    result = CliRunner().invoke(main, ["--db", str(db), "import", "-q", str(some_files)])
    assert result.exit_code == 0, result.output


def test_copy_draws_its_bar_on_a_terminal_and_not_when_quiet(tmp_path: Path, some_files: Path) -> None:
    source = tmp_path / "from.db"
    _imported(source, some_files)
    status, text = run_on_terminal(_ckptdb("copy", "--from", str(source), "--to", str(tmp_path / "a.db")))
    assert status == 0, text
    assert "copying" in text and f"{SOME}/{SOME}" in text, text
    status, text = run_on_terminal(
        _ckptdb("copy", "--from", str(source), "--to", str(tmp_path / "b.db"), "--quiet")
    )
    assert status == 0 and "copying" not in text, text


def test_prune_counts_its_deletes_on_a_terminal_and_ends_the_line(tmp_path: Path, some_files: Path) -> None:
    db = tmp_path / "p.db"
    _imported(db, some_files)
    status, text = run_on_terminal(_ckptdb("--db", str(db), "prune", "--keep-last", "0", "--yes"))
    assert status == 0, text
    counted = text.split("deleting: ")[-1]
    assert counted.startswith(f"{SOME} / {SOME}\r\n"), text  # the last count, then its own line
    assert f"deleted {SOME} checkpoints" in text
    piped = subprocess.run(
        _ckptdb("--db", str(tmp_path / "p.db"), "prune", "--keep-last", "0", "--yes"),
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 0 and "deleting" not in piped.stderr, piped
