"""What every command holds to: one table of exit statuses (ckptdb.exit_status.ExitStatus): each
status a command's help documents is a row of it, and the CLI code never spells a status as a
number nor leaves through sys.exit; one way to register a command; one short form per option."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import click

import ckptdb.cli
from ckptdb.cli import main
from ckptdb.exit_status import ExitStatus

CLI_DIR = Path(ckptdb.cli.__file__).parent
TABLE_ROW = re.compile(r"^ {2}(\d+) +\S")
INLINE = re.compile(r"\b(\d+) when\b")


def commands(group: click.Group, path: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        full = f"{path} {name}".strip()
        if isinstance(command, click.Group):
            yield from commands(command, full)
        else:
            yield full, command


def documented_statuses(command: click.Command) -> list[int]:
    """The numbers of every `Exit status` table row and sentence in the command's help."""
    found: list[int] = []
    text = "\n".join(part for part in (command.help, command.epilog) if part)
    in_table = False
    for line in text.splitlines():
        if line.lstrip().startswith("Exit status"):
            in_table = True
            continue
        if in_table:
            row = TABLE_ROW.match(line)
            if row:
                found.append(int(row.group(1)))
            elif not line.startswith("     "):  # not a row's continuation: the table ended
                in_table = False
    for sentence in re.findall(r"Exit status[^.]*\.", " ".join(text.split())):
        found += [int(number) for number in INLINE.findall(sentence)]
    return found


def test_every_documented_exit_status_is_a_row_of_the_one_table() -> None:
    table = {int(status) for status in ExitStatus}
    documented = {path: documented_statuses(command) for path, command in commands(main)}
    for path, statuses in documented.items():
        assert set(statuses) <= table, (path, sorted(set(statuses) - table))
    # the commands whose help has a table or a sentence: so the parse above cannot pass by finding nothing
    assert {path for path, statuses in documented.items() if statuses} >= {
        "import",
        "export",
        "copy",
        "db check",
    }
    assert documented["import"] == [0, 1, 2, 3, 4, 130]


def _exits(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("exit", "Exit"):
                yield node


def test_the_cli_code_spells_no_exit_status_as_a_number_and_never_calls_sys_exit() -> None:
    for source in sorted(CLI_DIR.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for call in _exits(tree):
            where = f"{source.name}:{call.lineno}"
            func = call.func
            assert not (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "sys"
            ), f"{where}: sys.exit (use ctx.exit)"
            for arg in call.args:
                assert not isinstance(arg, ast.Constant), (
                    f"{where}: exit status {arg.value!r} (use ExitStatus)"
                )
        for node in ast.walk(tree):  # `exit_code = 2` on an exception class
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "exit_code" for t in node.targets
            ):
                assert not isinstance(node.value, ast.Constant), (
                    f"{source.name}:{node.lineno}: exit_code literal"
                )


def test_every_command_is_registered_the_one_way_and_so_answers_ctrl_c_with_130() -> None:
    """Commands reach `main` only through CkptdbGroup.add_command, which gives each callback (also
    inside `db`) the Ctrl-C handling that exits with ExitStatus.INTERRUPTED."""
    found = dict(commands(main))
    assert {"import", "export", "copy", "list", "sql", "db check", "db current"} <= set(found)
    for path, command in found.items():
        assert getattr(command.callback, "ckptdb_interruptible", False), path


# `prune` has no -n for --dry-run: in `list` and `export` -n is --node, and prune has --graph.
SHORT_FORM_EXCEPTIONS = {"--dry-run"}


def test_an_option_shared_by_commands_has_the_same_short_form_in_each() -> None:
    """`--yes` is `-y` wherever it exists, `--quiet` is `-q`, and so on: a person who learnt one
    command's flag can use it on the next."""
    short_forms: dict[str, dict[str, tuple[str, ...]]] = {}
    for path, command in commands(main):
        for param in command.params:
            if isinstance(param, click.Option):
                shorts = tuple(sorted(opt for opt in param.opts if not opt.startswith("--")))
                for opt in param.opts:
                    if opt.startswith("--"):
                        short_forms.setdefault(opt, {})[path] = shorts
    for opt, by_command in short_forms.items():
        if opt not in SHORT_FORM_EXCEPTIONS:
            assert len(set(by_command.values())) == 1, (opt, by_command)
    assert short_forms["--yes"] == {
        "db downgrade": ("-y",),
        "prune": ("-y",),
        "langgraph prune": ("-y",),
        "langgraph delete": ("-y",),
    }
