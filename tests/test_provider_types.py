"""The contract is checked statically: mypy holds every registered provider module to
:class:`~binderhub_registry.providers.contract.Provider`.

``providers.get`` can only cast what it imports, so the check is a ``TYPE_CHECKING`` block in
``providers/__init__.py`` assigning each module to a ``Provider`` variable. These tests read
that block (``ast``; mypy itself runs in ``make lint``) and say it covers every registered key.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from binderhub_registry import providers


def _checked_block() -> ast.If:
    """The ``if TYPE_CHECKING:`` block of ``providers/__init__.py``."""
    tree = ast.parse(inspect.getsource(providers))
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return node
    raise AssertionError("providers/__init__.py has no `if TYPE_CHECKING:` block")


def _checked_modules() -> dict[str, str]:
    """Each module the block assigns to a ``Provider`` variable: its name -> the module path
    it was imported as."""
    block = _checked_block()
    imported = {
        alias.asname or alias.name: f"binderhub_registry.providers.{alias.name}"
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None
        for alias in node.names
    }
    checked: dict[str, str] = {}
    for node in block.body:
        if (
            isinstance(node, ast.AnnAssign)
            and ast.unparse(node.annotation) == "Provider"
            and isinstance(node.value, ast.Name)
        ):
            checked[node.value.id] = imported[node.value.id]
    return checked


def test_every_registered_provider_is_checked_against_the_contract() -> None:
    """A module in PROVIDERS that mypy never compares with Provider could drift unseen."""
    checked = _checked_modules()
    assert sorted(checked.values()) == sorted(providers.PROVIDERS.values())


def test_the_check_imports_nothing_at_run_time() -> None:
    """The block only runs under mypy: importing ``providers`` loads no provider's SDKs."""
    assert all(not hasattr(providers, f"_{key}") for key in providers.keys())


#: The steps every notebook calls on its connection, written once in the contract.
SHARED_STEPS = ("write_values", "verify", "finish_rotation", "teardown")


def test_every_override_of_a_shared_step_says_why_where_it_stands() -> None:
    """A provider redefining a shared step writes its reason right above it, as
    ``# Overrides Connection.<step>: <why>``; one without a reason should go."""
    folder = Path(inspect.getfile(providers)).parent
    missing = []
    for path in sorted(folder.rglob("*.py")):  # a provider package's modules too
        if path.name in ("__init__.py", "contract.py"):
            continue
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            # a connection class: Connection's subclasses, as their bases name them
            if not isinstance(node, ast.ClassDef) or not any(
                ast.unparse(base).endswith("Connection") for base in node.bases
            ):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    item.name in SHARED_STEPS
                ):
                    first = min([item.lineno, *(d.lineno for d in item.decorator_list)])
                    above = [line.strip() for line in lines[: first - 1]]
                    comment = []
                    while above and above[-1].startswith("#"):
                        comment.insert(0, above.pop())
                    if not comment or not comment[0].startswith(
                        f"# Overrides Connection.{item.name}: "
                    ):
                        missing.append(f"{path.name}:{item.lineno} {node.name}.{item.name}")
    assert not missing, missing
