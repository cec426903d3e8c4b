"""No import cycles inside JuQueue: a cycle makes import order matter and hides which module depends on which.

Every import counts, also those under `if TYPE_CHECKING:` and inside functions: a cycle that only
a type checker or a late call closes still ties the modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Where each installed package's source lives (pyproject's package-dir: workers/ installs as juqueue.workers).
ROOTS = {"juqueue": REPO / "juqueue", "juqueue.workers": REPO / "workers"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package (a package is its __init__)."""
    found: dict[str, Path] = {}
    for package, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name an ImportFrom names (relative imports resolved against the importer)."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported module of the package: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                # `import a.b.c` where only a.b is ours (or c is a name): the longest prefix that is a module.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Closed paths of module names, one per import that leads back into the current import chain
    (a depth-first search's back edges): none exactly when the graph has no cycle."""
    cycles: list[list[str]] = []
    done: set[str] = set()
    chain: list[str] = []

    def visit(module: str) -> None:  # recursive: the package has a few hundred modules at most
        chain.append(module)
        for imported in sorted(graph[module]):
            if imported in chain:
                cycles.append(chain[chain.index(imported):] + [imported])
            elif imported not in done:
                visit(imported)
        chain.pop()
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module)
    return cycles


def describe(graph: dict[str, dict[str, int]], modules: dict[str, Path], cycle: list[str]) -> str:
    steps = [f"{a} ({modules[a].relative_to(REPO)}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(steps + [cycle[-1]])


def test_a_cycle_closed_only_by_type_checking_and_function_imports_is_found(tmp_path: Path) -> None:
    # A guard for the walker itself: if it missed the imports the rule is about, no cycle could fail.
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "__init__.py").write_text("")
    (tmp_path / "p" / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.b import B\n")
    (tmp_path / "p" / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "p" / "c.py").write_text("import p.a\nfrom .a import name_not_module\n")
    modules = {"p": tmp_path / "p" / "__init__.py", **{f"p.{m}": tmp_path / "p" / f"{m}.py" for m in "abc"}}
    graph = import_graph(modules)
    assert graph == {"p": {}, "p.a": {"p.b": 3}, "p.b": {"p.c": 2}, "p.c": {"p.a": 1}}
    assert find_cycles(graph) == [["p.a", "p.b", "p.c", "p.a"]]


def test_the_package_graph_is_read() -> None:
    modules = module_files()
    graph = import_graph(modules)
    assert "juqueue.workers.runtime" in modules and "juqueue.cli" in modules
    assert any("juqueue.workers.runtime" in edges for edges in graph.values()), "imports of juqueue.workers not seen"
    assert sum(len(edges) for edges in graph.values()) > len(modules), "too few imports seen"


def test_no_import_cycles() -> None:
    modules = module_files()
    graph = import_graph(modules)
    cycles = [describe(graph, modules, c) for c in find_cycles(graph)]
    assert not cycles, "import cycles (module (file:line of the import) -> ...):\n" + "\n".join(cycles)
