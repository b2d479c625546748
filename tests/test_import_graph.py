"""No import circle anywhere in ckptdb, lazy and TYPE_CHECKING imports included.

A circle (the interface importing its own implementations, say) makes the import order decide
what works, and hides which module depends on which; every `import` statement counts, wherever
it stands, because one inside a function closes the circle as soon as that function runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ckptdb"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the ckptdb modules it imports (`from pkg import sub` names the submodule)."""
    files = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as the path around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_ckptdb_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "ckptdb.sql.sqlite.backend" in graph and graph["ckptdb.sql.engines"], "the walk found nothing"
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_sees_a_lazy_import_circle(tmp_path: Path) -> None:
    root = tmp_path / "ckptdb"
    (root / "sql").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sql" / "__init__.py").write_text("")
    (root / "sql" / "backend.py").write_text("def open_backend():\n    from ckptdb.sql.sqlite import X\n")
    (root / "sql" / "sqlite.py").write_text("from ckptdb.sql.backend import open_backend\nX = 1\n")
    assert find_cycle(import_graph(root)) == ["ckptdb.sql.backend", "ckptdb.sql.sqlite", "ckptdb.sql.backend"]


def test_the_interface_names_no_engine() -> None:
    """The engine packages depend on the interface, never the other way round."""
    graph = import_graph()
    engine_modules = {m for m in graph if m.startswith(("ckptdb.sql.sqlite", "ckptdb.sql.postgres"))}
    assert not graph["ckptdb.sql.backend"] & engine_modules
