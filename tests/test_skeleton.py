"""Every notebook has the same skeleton: the same sections in the same order, small cells.

Intro with prerequisites, parameters, form, check the parameters, the guide's steps, verify,
rotate, clean up, summary, next step: a reader who knows one notebook finds their way in all.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from binderhub_registry import providers

from .conftest import NOTEBOOKS

#: The second-level sections, in order; "steps" stands for one or more "## Step N: ..." sections.
SECTIONS = [
    "## Parameters",
    "## Check the parameters",
    "steps",
    "## Verify, as BinderHub would",
    "## Rotate",
    "## Clean up (optional)",
    "## Storage used",  # against the registry's limit, where its API tells it (issue 22)
    "## Summary",
    "## 2.5 Next step",
]
#: Plumbing a reader would have to decode: the shared steps of the connection replace it.
PLUMBING = ("save_values", "source=", "if token", "if password", "transient=", "if p.teardown")


def _cells(key: str) -> list[nbformat.NotebookNode]:
    path = NOTEBOOKS / f"{providers.get(key).NOTEBOOK}.ipynb"
    cells: list[nbformat.NotebookNode] = nbformat.read(str(path), as_version=4).cells
    return cells


def _section(cell: nbformat.NotebookNode) -> str | None:
    first = cell.source.splitlines()[0] if cell.source else ""
    if cell.cell_type != "markdown" or not first.startswith("## "):
        return None
    # a step the guide lacks, inserted where it belongs, keeps the guide's numbers: "Step 7b"
    # and so does the registry's own cleanup, a step among the steps (issue 22)
    if re.match(r"## Step \d+[a-z]?: \S", first) or first == "## Keep the registry small":
        return "steps"
    return next((s for s in SECTIONS if first.startswith(s)), first)


@pytest.mark.parametrize("key", providers.keys())
def test_sections_in_the_skeletons_order(key: str) -> None:
    cells = _cells(key)
    assert cells[0].cell_type == "markdown" and re.match(
        r"# (2\.\d |Beyond the guide: )", cells[0].source
    )
    assert "Prerequisites" in cells[0].source and "sandbox" in cells[0].source
    found = [s for s in map(_section, cells) if s is not None]
    folded = [s for i, s in enumerate(found) if not (s == "steps" and found[i - 1] == "steps")]
    assert folded == SECTIONS


@pytest.mark.parametrize("key", providers.keys())
def test_cells_call_the_library_without_plumbing(key: str) -> None:
    provider = providers.get(key)
    cells = _cells(key)
    sections = [_section(c) for c in cells]
    code = [c for c in cells if c.cell_type == "code"]
    params = cells[sections.index("## Parameters") + 1]
    assert "parameters" in params.metadata.get("tags", [])
    # every parameter, in the provider's order (keep_replaced has a default: it is still shown)
    assert [line.split(":")[0] for line in params.source.splitlines()] == [
        p.name for p in provider.PARAMETERS
    ]
    form = next(c for c in code if "form(" in c.source)
    assert {"skip-execution", "nbval-skip"} <= set(form.metadata.get("tags", []))
    assert f"form(globals(), {key}.PARAMETERS)" in form.source
    check = cells[sections.index("## Check the parameters") + 1]
    assert f"p = {key}.validate(globals())" in check.source
    assert provider.NOTEBOOK and key in providers.keys()
    steps = "\n".join(c.source for c in code)
    for shared in (".write_values)", ".verify, files)", ".finish_rotation)", ".teardown)"):
        assert shared in steps, shared
    assert cells[sections.index("## Summary") + 1].source.strip() == "run.checklist"
    for cell in code:
        assert not any(p in cell.source for p in PLUMBING), cell.source
        if "parameters" not in cell.metadata.get("tags", []):
            assert len(cell.source.splitlines()) <= 8, cell.source
