"""Every Python example in the README runs as pasted: each ```python block is run as a real script,
in a fresh directory, by the interpreter the tests run on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """(line number, code) of each fenced block tagged python."""
    found = []
    for match in re.finditer(r"^```python\n(.*?)^```$", markdown, re.MULTILINE | re.DOTALL):
        found.append((markdown.count("\n", 0, match.start()) + 1, match.group(1)))
    return found


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_examples() -> None:
    assert BLOCKS, "README.md has no ```python block: the extractor no longer finds them"


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_python_example_runs(tmp_path: Path, line: int, code: str) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"README.md:{line} fails when pasted:\n{done.stderr}"
