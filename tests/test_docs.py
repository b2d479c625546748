"""Every `ckptdb` command has help text and a README entry.

The command tree is walked from the click group itself (`db` subcommands and whatever commands
are registered later included), so a new command without documentation fails here. A README
entry is the command in a markdown heading, or in code (a fenced block line or an inline code
span), spelled `ckptdb [--db X] <command path>`: `ckptdb db upgrade`, `` `ckptdb prune ...` ``.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from ckptdb.cli import main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
INSPECTION_COMMANDS = ("list", "show", "latest", "graphs", "stats", "pending", "rm", "prune", "vacuum", "sql")


def walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """(path, command) for every command under `group`, groups included, depth first."""
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name in sorted(group.commands):
        command = group.commands[name]
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found.extend(walk(command, (*prefix, name)))
    return found


COMMANDS = walk(main)
COMMAND_IDS = [" ".join(path) for path, _ in COMMANDS]


def documented_text(markdown: str) -> str:
    """The parts of a markdown file that count as documenting a command: headings, fenced code
    lines and inline code spans, one per line."""
    parts: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.lstrip().startswith("#"):
            parts.append(line)
        else:
            parts.extend(re.findall(r"`+([^`]+)`+", line))
    return "\n".join(parts)


def mentions(text: str, path: tuple[str, ...]) -> bool:
    words = r"\s+".join(re.escape(word) for word in path)
    return re.search(rf"\bckptdb(?:\s+--db[=\s]\S+)?\s+{words}(?![\w-])", text) is not None


def test_the_walk_finds_the_known_commands() -> None:
    names = set(COMMAND_IDS)
    assert {"db", "db upgrade", "db downgrade", "db current", "db check", *INSPECTION_COMMANDS} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=COMMAND_IDS)
def test_command_has_help(path: tuple[str, ...], command: click.Command) -> None:
    text = (command.help or command.short_help or "").strip()
    assert text, f"`ckptdb {' '.join(path)}` has no help text: give its function a docstring"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=COMMAND_IDS)
def test_command_is_in_the_readme(path: tuple[str, ...], command: click.Command) -> None:
    readme = README.read_text(encoding="utf-8") if README.exists() else ""
    assert mentions(documented_text(readme), path), (
        f"README.md does not document `ckptdb {' '.join(path)}`: add a heading or a code line with it"
    )


@pytest.mark.parametrize("name", INSPECTION_COMMANDS)
def test_inspection_section_documents_each_command(name: str) -> None:
    """The README's inspection section has a heading for each of these commands."""
    headings = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert any(mentions(line, (name,)) for line in headings), f"README.md has no heading for ckptdb {name}"


def test_the_matcher() -> None:
    text = documented_text(
        "# Title\n### ckptdb list\nrun `ckptdb --db x.db prune --dry-run` first\n"
        "plain ckptdb graphs does not count\n```sh\nckptdb db upgrade\n```\n"
    )
    assert mentions(text, ("list",)) and mentions(text, ("prune",)) and mentions(text, ("db", "upgrade"))
    assert (
        mentions(text, ("db",)) and not mentions(text, ("graphs",)) and not mentions(text, ("db", "current"))
    )
    assert not mentions("ckptdb listing", ("list",))
