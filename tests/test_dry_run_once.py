"""A dry run is written once: in the contract (``Connection.plan``, ``create``, ``note``), not in
each provider's steps.

Read with ``ast`` from every provider module (packages included): no provider writes its own
``planned`` result, records around ``note`` (a dry run must not write the record), or tests a
status for "absent is fine" (``if_present``). A provider reads ``dry_run`` only where a dry run
goes on differently without stopping, and says why on that line.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from binderhub_registry import providers

FOLDER = Path(inspect.getfile(providers)).parent
#: the contract itself, and the registry of providers
SHARED = {FOLDER / "__init__.py", FOLDER / "contract.py"}
SOURCES = sorted(p for p in FOLDER.rglob("*.py") if p not in SHARED)


def _name(path: Path) -> str:
    return str(path.relative_to(FOLDER))


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_no_provider_writes_a_planned_result(path: Path) -> None:
    """``Result(..., "planned", ...)`` is the contract's (``steps.Planned.result``)."""
    tree = ast.parse(path.read_text())
    found = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value == "planned"
    ]
    assert not found, f"{_name(path)}:{found}: a planned result of its own: use conn.plan(...)"


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_no_provider_writes_the_record_itself(path: Path) -> None:
    """``record.set``/``forget``/``save`` write even in a dry run; ``conn.note`` does not."""
    tree = ast.parse(path.read_text())
    found = [
        f"{node.lineno}: {ast.unparse(node.func)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("set", "forget", "save")
        and ast.unparse(node.func.value).endswith("record")
    ]
    assert not found, f"{_name(path)}: records outside conn.note: {found}"


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_every_dry_run_read_and_404_test_says_why(path: Path) -> None:
    """A ``dry_run`` read (a dry run that goes on differently) or a status test for 404 (where
    ``if_present`` does not fit) carries a comment saying why, on its line or the two above."""
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    unexplained = []
    for node in ast.walk(tree):
        read = isinstance(node, ast.Attribute) and node.attr == "dry_run"
        status = (
            isinstance(node, ast.Compare)
            and any(isinstance(c, ast.Constant) and c.value == 404 for c in node.comparators)
            and ast.unparse(node.left).endswith("status")
        )
        if not (read or status):
            continue
        near = lines[max(node.lineno - 3, 0) : node.lineno]
        if not any("#" in line for line in near):
            unexplained.append(f"{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, f"{_name(path)}: {unexplained}"
