"""The contract is checked statically: mypy holds every registered provider module to
:class:`~binderhub_registry.providers.contract.Provider`.

``providers.get`` can only cast what it imports, so the check is a ``TYPE_CHECKING`` block in
``providers/__init__.py`` assigning each module to a ``Provider`` variable. These tests read
that block (``ast``; mypy itself runs in ``make lint``) and say it covers every registered key.
"""

from __future__ import annotations

import ast
import inspect

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
