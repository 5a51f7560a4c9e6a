"""The test suite's own shape: what test modules share lives in ``helpers.py`` (functions,
constants) and ``conftest.py`` (fixtures), never in another test module; each provider's tests
are named after it first, so that they sort together."""

from __future__ import annotations

import ast
from pathlib import Path

from binderhub_registry import providers

from .helpers import ROOT

TESTS = ROOT / "tests"


def imported_test_modules(path: Path) -> list[str]:
    """The test modules (``test_*``) that ``path`` imports, at any depth of its code."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                names = [node.module]
            if node.level:  # from . import test_x
                names += [alias.name for alias in node.names]
        found += [n for n in names if n.rpartition(".")[2].startswith("test_")]
    return found


def test_no_test_module_imports_another() -> None:
    offenders = {
        str(path.relative_to(ROOT)): imported
        for path in sorted(TESTS.rglob("*.py"))
        if "data" not in path.relative_to(TESTS).parts and (imported := imported_test_modules(path))
    }
    assert offenders == {}, "move what they share into tests/helpers.py or tests/conftest.py"


def test_the_import_check_sees_every_form(tmp_path: Path) -> None:
    source = tmp_path / "test_x.py"
    source.write_text(
        "from .test_a import x\nfrom . import test_b\nimport tests.test_c\n"
        "def f():\n    from ..test_d import y\nfrom .helpers import z\nimport pytest\n"
    )
    assert imported_test_modules(source) == ["test_a", "test_b", "tests.test_c", "test_d"]


def test_each_providers_test_files_start_with_its_name() -> None:
    keys = providers.keys()
    misnamed = []
    for path in sorted(TESTS.glob("test_*.py")):
        words = path.stem.removeprefix("test_").split("_")
        if len(words) == 1 and words[0] in keys:  # test_harbor.py: its notebook or its fake?
            misnamed.append(path.name)
        elif any(word in keys for word in words[1:]):  # test_pull_ovh.py
            misnamed.append(path.name)
    assert misnamed == [], "name them test_<provider>_notebook.py, test_<provider>_<topic>.py"
