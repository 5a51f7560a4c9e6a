"""Fixtures: the session's sandbox, a reset per test, a papermill runner for the notebooks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

from binderhub_registry import sandbox

from .kernels import Zygote, fork_kernel_manager

ROOT = Path(__file__).parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: This worker's kernels are forked from one warm process (tests/kernels.py): the session's
#: environment as the root conftest set it, before any test changes it
_ZYGOTE = Zygote(dict(os.environ))
_KERNEL_MANAGER = fork_kernel_manager(_ZYGOTE)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _ZYGOTE.stop()


@pytest.fixture(scope="session")
def box() -> sandbox.Sandbox:
    """The running sandbox (started once; stopped by the root conftest)."""
    return sandbox.ensure()


@pytest.fixture
def fresh(box: sandbox.Sandbox) -> Iterator[sandbox.Sandbox]:
    """The sandbox reset to its seeded state, with no faults."""
    box.reset()
    yield box
    box.clear_faults()


class NotebookRun:
    """Runs one notebook with papermill in a test's own directory."""

    def __init__(self, path: Path, workdir: Path) -> None:
        self.path = path
        self.workdir = workdir
        self.output_dir = workdir / "values"
        self.runs = 0

    def __call__(self, **parameters: Any) -> nbformat.NotebookNode:
        """Execute with ``parameters`` (output_dir defaults to the test's); return the output."""
        self.runs += 1
        out = self.workdir / f"run{self.runs}.ipynb"
        for attempt in (1, 2):
            try:
                papermill.execute_notebook(
                    str(self.path),
                    str(out),
                    parameters={"output_dir": str(self.output_dir)} | parameters,
                    cwd=str(self.workdir),
                    progress_bar=False,
                    kernel_name="python3",
                    kernel_manager_class=_KERNEL_MANAGER,
                )
                break
            except RuntimeError as e:
                # a kernel that dies before its first reply ran no cell: seen once on a loaded
                # machine (jupyter_client's port choice can race another worker's kernel)
                if attempt == 2 or "Kernel died before replying to kernel_info" not in str(e):
                    raise
        return nbformat.read(str(out), as_version=4)

    def last_output(self) -> str:
        """The text of the last output notebook (everything papermill stored)."""
        return (self.workdir / f"run{self.runs}.ipynb").read_text()

    def record(self) -> dict[str, Any]:
        """What the notebook recorded as created."""
        data: dict[str, Any] = json.loads((self.output_dir / "binderhub-registry.json").read_text())
        return data


@pytest.fixture
def dockerhub_nb(tmp_path: Path, fresh: sandbox.Sandbox) -> NotebookRun:
    """The Docker Hub notebook, against a fresh sandbox, writing into tmp_path."""
    return NotebookRun(NOTEBOOKS / "02-docker-hub.ipynb", tmp_path)


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """Every output of every cell, as one string."""
    parts: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(str(out.get("text", "")))
            parts.extend(str(v) for v in out.get("data", {}).values())
            parts.append(str(out.get("evalue", "")))
    return "\n".join(parts)


def assert_fails_before_any_call(
    run: NotebookRun, box: sandbox.Sandbox, params: dict[str, Any], name: str, rule: str
) -> None:
    """Running with ``params`` stops at validation: one line naming ``name`` and its rule,
    no request to the sandbox, nothing created, and one line in the notebook too."""
    from papermill.exceptions import PapermillExecutionError

    before = box.state()
    with pytest.raises(PapermillExecutionError) as err:
        run(**params)
    assert err.value.ename == "InvalidParameter"
    message = err.value.evalue
    assert "\n" not in message
    assert message.startswith(f"parameter {name!r}: ")
    assert rule in message
    assert box.log() == []  # no cloud call at all
    assert box.state() == before
    assert not (run.output_dir / "secret.yaml").exists()
    out = nbformat.reads(run.last_output(), as_version=4)
    errors = [o for c in out.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].traceback == [errors[0].traceback[0]]
    assert message in errors[0].traceback[0]
