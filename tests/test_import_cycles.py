"""No import cycle between mlgate's modules.

The graph is read from the source with ast, not by importing it: an edge is an import that
runs when the module is imported (module body, class bodies, top-level if/try/with blocks),
not one inside a function or under `if TYPE_CHECKING:`. `from mlgate.x import y` points at
the submodule mlgate.x.y when y is one, else at mlgate.x. A package's parents, which Python
initialises first, are not edges: a package importing its own submodules is the registry
pattern, not a cycle.

The imports under `if TYPE_CHECKING:` do not run, but a type checker follows them, and a cycle
there (scanners/interface <-> scanners/osv, issue 13) still ties two modules into one: the
second test counts them too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of `package` under `root`, by dotted name (a package is its __init__)."""
    modules: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_imports(
    body: list[ast.stmt], type_checking: bool
) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements executed when a module (or class) body runs, and with
    `type_checking` those under `if TYPE_CHECKING:` too."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue  # runs when called, not when imported
        elif isinstance(node, ast.If):
            if type_checking or not _is_type_checking(node.test):
                yield from _module_imports(node.body, type_checking)
            yield from _module_imports(node.orelse, type_checking)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_imports(block, type_checking)
            for handler in node.handlers:
                yield from _module_imports(handler.body, type_checking)
        elif isinstance(node, (ast.With, ast.ClassDef, ast.For, ast.While)):
            yield from _module_imports(node.body, type_checking)
            if isinstance(node, (ast.For, ast.While)):
                yield from _module_imports(node.orelse, type_checking)


def _absolute(name: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module a (possibly relative) `from ... import` names."""
    if node.level == 0:
        return node.module or ""
    base = name.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path, package: str, type_checking: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of the same package its import runs."""
    modules = module_files(root, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _module_imports(tree.body, type_checking):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = _absolute(name, node, path.name == "__init__.py")
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    for alias in node.names
                ]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (first module repeated at the end) for each strongly connected group of
    modules (Tarjan), in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(_cycle_through(graph, group) for group in groups)


def _cycle_through(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """The shortest way from the group's first module back to itself, within the group."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if succ not in came_from:
                    came_from[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")  # Tarjan said there is one


def _shown(found: list[list[str]]) -> str:
    return "\n".join("  " + " -> ".join(cycle) for cycle in found)


def test_mlgate_has_no_import_cycle() -> None:
    found = cycles(import_graph(SRC, "mlgate"))
    assert not found, "import cycles in src/mlgate:\n" + _shown(found)


def test_mlgate_has_no_import_cycle_even_under_type_checking() -> None:
    found = cycles(import_graph(SRC, "mlgate", type_checking=True))
    assert not found, (
        "import cycles in src/mlgate, counting `if TYPE_CHECKING:` imports:\n" + _shown(found)
    )


# The checker itself, on small packages written for the purpose.


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_finds_a_cycle_through_a_submodule_named_in_from_import(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",
            "pkg/a.py": "from pkg import b\nA = 1\n",
            "pkg/b.py": "import pkg.c\n",
            "pkg/c.py": "from pkg.a import A\n",
        },
    )
    assert cycles(import_graph(root, "pkg")) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_finds_a_cycle_of_relative_imports_and_names_each_group_once(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from .x import X\n",
            "pkg/sub/x.py": "from . import y\nX = 1\n",
            "pkg/sub/y.py": "try:\n    from ..z import Z\nexcept ImportError:\n    pass\n",
            "pkg/z.py": "class K:\n    from pkg.sub.x import X\nZ = 1\n",
            "pkg/p.py": "from pkg.q import Q\nP = 1\n",
            "pkg/q.py": "if True:\n    from pkg.p import P\nQ = 1\n",
        },
    )
    assert cycles(import_graph(root, "pkg")) == [
        ["pkg.p", "pkg.q", "pkg.p"],
        ["pkg.sub.x", "pkg.sub.y", "pkg.z", "pkg.sub.x"],
    ]


@pytest.mark.parametrize(
    "deferred",
    [
        "def f() -> None:\n    from pkg.a import A\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n",
        "import typing\nif typing.TYPE_CHECKING:\n    from pkg.a import A\n",
        "class K:\n    def m(self) -> None:\n        import pkg.a\n",
    ],
)
def test_imports_that_do_not_run_at_import_time_are_not_edges(
    tmp_path: Path, deferred: str
) -> None:
    root = _package(
        tmp_path,
        {"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import B\nA = 1\n", "pkg/b.py": deferred},
    )
    assert import_graph(root, "pkg")["pkg.b"] == set()
    assert cycles(import_graph(root, "pkg")) == []


def test_a_package_importing_its_submodules_is_not_a_cycle(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\nfrom pkg.b import B\n",
            "pkg/a.py": "from pkg.b import B\nA = 1\n",
            "pkg/b.py": "import json\nB = 1\n",
        },
    )
    assert import_graph(root, "pkg") == {
        "pkg": {"pkg.a", "pkg.b"},
        "pkg.a": {"pkg.b"},
        "pkg.b": set(),
    }
    assert cycles(import_graph(root, "pkg")) == []


def test_a_cycle_under_type_checking_counts_only_when_asked(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
            "pkg/b.py": "from pkg.a import A\nB = 1\n",
        },
    )
    assert cycles(import_graph(root, "pkg")) == []
    assert cycles(import_graph(root, "pkg", type_checking=True)) == [["pkg.a", "pkg.b", "pkg.a"]]
