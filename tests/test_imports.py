"""The lib's modules import one another without a circle, ``TYPE_CHECKING`` imports included.

A circle means some type lives one floor too high: its users must reach up for it, and
the reader can no longer read the package bottom-up. The graph is built from the source
with ``ast`` alone (nothing is imported), counting every ``import`` and ``from`` wherever
it stands: at the top, under ``if TYPE_CHECKING:``, or inside a function.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import binderhub_registry

PACKAGE = "binderhub_registry"
ROOT = Path(binderhub_registry.__file__).parent


def module_files() -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The package's modules that module ``name`` (at ``path``) imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from a import b` needs module a.b when b is one, else a itself; a's own
            # __init__ counts too, unless a encloses the importer (then it already runs)
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
            if not f"{name}.".startswith(f"{source}."):
                targets.append(source)
        else:
            continue
        for target in targets:
            if target in modules and target != name:
                yield target


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module name -> the package's modules it imports."""
    modules = module_files()
    return {name: set(imported(name, path, modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of names (first == last), or None (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "binderhub_registry.verify" in graph[PACKAGE]  # `from .verify import ...`
    # `from . import sandbox` inside a function, in the verification's sandbox certificate check
    assert "binderhub_registry.sandbox" in graph["binderhub_registry.verify"]


def test_cycle_finder_reports_the_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    """None at all, the sandbox's backends included: a backend's routes take what they use
    of its facade (``cloud.py``) as the ``Host`` protocol of its ``models``, never the facade."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_private_alias_kept_only_to_be_imported() -> None:
    """A name imported under a private alias is used where it is imported: callers import a
    name from the module where it lives, not through a private re-export."""
    unused = []
    for name, path in module_files().items():
        tree = ast.parse(path.read_text(), str(path))
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                unused += [
                    f"{name}: {alias.name} as {alias.asname}"
                    for alias in node.names
                    if alias.asname and alias.asname.startswith("_") and alias.asname not in used
                ]
    assert not unused, f"private aliases nothing uses: {unused}"


def test_module_references_in_docstrings_exist() -> None:
    """Every :mod:`.name` a docstring cites is a module of the package (none went stale)."""
    modules = module_files()
    stale = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for ref in re.findall(r":mod:`~?([.\w]+)`", path.read_text()):
            if ref.startswith("."):
                dots = len(ref) - len(ref.lstrip("."))
                base = package.split(".")
                target = ".".join([*base[: len(base) - (dots - 1)], ref[dots:]])
            else:
                target = ref
            if target not in modules:
                stale.append(f"{name}: :mod:`{ref}`")
    assert not stale, f"docstrings cite modules that do not exist: {stale}"
