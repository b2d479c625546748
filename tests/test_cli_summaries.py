"""The one-line summaries of import and export read as English for one item too."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from ckptdb.cli import main


def test_one_file_and_one_checkpoint_are_singular(tmp_path: Path, fixture_dir: Path) -> None:
    source = tmp_path / "one"
    source.mkdir()
    shutil.copy(sorted(fixture_dir.glob("*.json"))[0], source)
    db = str(tmp_path / "c.db")
    runner = CliRunner()
    imported = runner.invoke(main, ["--db", db, "import", str(source)])
    assert re.sub(r"\(\d+\.\d s\)", "(T s)", imported.output) == (
        "1 file: 1 imported, 0 unchanged, 0 conflict, 0 invalid, 0 skipped (T s)\n"
    )
    exported = runner.invoke(main, ["--db", db, "export", "-q", str(tmp_path / "out")])
    assert re.sub(r"\(\d+\.\d s\)", "(T s)", exported.output) == (
        "1 checkpoint: 1 exported, 0 overwritten, 0 unchanged, 0 conflict, 0 skipped (T s)\n"
    )
