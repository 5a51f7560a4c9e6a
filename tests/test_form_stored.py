"""The stored notebooks are the refresh tool's output, never a JupyterLab save (which keeps a
session's widgets and outputs).

They are the docs' source and nbval's reference. Saving one from JupyterLab after using it
overwrites both with a session's outputs: the form's widget (the refresh tool skips the form
cell), execution counts out of order, widget state. This test refuses such a notebook and
says how to put it right; the notebooks' own form cell says to keep one's own copy.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from .conftest import ROOT
from .helpers import WIDGET, not_refreshed

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
FIX = (
    "restore it (git checkout -- <notebook>) or re-execute it with "
    "tests/tools/refresh_notebooks.py; keep your own runs in a copy (File > Save Notebook As…)"
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_stored_notebook_is_the_refresh_tools_output(path: Path) -> None:
    problems = not_refreshed(nbformat.read(path, as_version=4))
    assert not problems, f"{path.name}: " + "; ".join(problems) + f": {FIX}"


def test_a_notebook_saved_after_using_the_form_is_refused() -> None:
    """What JupyterLab saves after parameters, form and Run All (the browser test saves one)."""
    nb = nbformat.read(ROOT / "notebooks" / "05-harbor.ipynb", as_version=4)
    form = next(c for c in nb.cells if "skip-execution" in c.metadata.get("tags", []))
    code = [c for c in nb.cells if c.cell_type == "code"]
    for count, cell in enumerate(code, 1):  # Run All counts the form cell too
        cell.execution_count = count
    form.outputs = [
        nbformat.v4.new_output("display_data", data={WIDGET: {"model_id": "x"}, "text/plain": ""})
    ]
    problems = not_refreshed(nb)
    assert any("the form" in p for p in problems) and any("holds a widget" in p for p in problems)
    assert any("not one run from the top" in p for p in problems)


def test_the_form_says_to_keep_a_copy_on_a_stored_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before anyone saves: the form on a stored notebook says how to keep a run."""
    from binderhub_registry.forms import form
    from binderhub_registry.providers import harbor

    monkeypatch.setenv("JPY_SESSION_NAME", str(ROOT / "notebooks" / "05-harbor.ipynb"))
    note = form({}, harbor.PARAMETERS).children[0]
    assert "bhr-stored-note" in note._dom_classes and "Save Notebook As" in note.value
    copy = tmp_path / "notebooks" / "05-harbor.ipynb"  # a copy elsewhere: no warning
    monkeypatch.setenv("JPY_SESSION_NAME", str(copy))
    assert form({}, harbor.PARAMETERS).children[0].value == ""
