"""Every notebook says how the registry it sets up is kept small (issue 22: "the docs have a
'Keeping the registry small' section per registry"; the rendered docs are the notebooks)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from binderhub_registry import providers

from .conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
HEADING = "## Keep the registry small"


def test_every_registered_provider_has_its_notebook() -> None:
    stems = {p.stem for p in NOTEBOOKS}
    assert {providers.get(key).NOTEBOOK for key in providers.keys()} <= stems


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_a_keep_the_registry_small_section(notebook: Path) -> None:
    nb = nbformat.read(str(notebook), as_version=4)
    headings = [
        line.strip()
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("## ")
    ]
    assert HEADING in headings, f"{notebook.name} has no {HEADING!r} section: {headings}"
    section = next(
        cell.source
        for cell in nb.cells
        if cell.cell_type == "markdown" and HEADING in cell.source.splitlines()
    )
    assert "retention_days" in section  # says what the common parameter sets there
