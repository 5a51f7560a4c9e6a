"""Fixtures: the session's sandbox, a reset per test, a papermill runner for the notebooks."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from azure.identity import ClientSecretCredential

from binderhub_registry import Runner, outputs, sandbox
from binderhub_registry.providers import google, ovh
from binderhub_registry.sandbox import Sandbox

from .helpers import (
    AZURE_VARIABLES,
    NOTEBOOKS,
    QUICK_WAIT,
    ROOT,
    SPHINX_STRICT,
    EcrBox,
    Tenant,
    ecr_app,
    signed_in,
)
from .kernels import Zygote, fork_kernel_manager

__all__ = ["NOTEBOOKS", "ROOT"]  # test modules import these from here too
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


@pytest.fixture(scope="session")
def docs_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs built as ``make docs`` builds them (-W: any warning fails), once per worker
    for every test that reads the result (the scheduler keeps those on one worker)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("docs-html")
    sphinx = Path(sys.executable).parent / "sphinx-build"
    build = subprocess.run(
        [str(sphinx), *SPHINX_STRICT, str(ROOT / "docs"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    return out


@pytest.fixture
def run() -> Runner:
    """A step runner that does not wait between attempts (its waits are tested in test_units)."""
    return Runner(sleep=lambda seconds: None)


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

    def set_up(self, **parameters: Any) -> dict[str, Any]:
        """Run the same notebook in this process, into the same output_dir: for the runs that
        only make the state a scenario starts from (their outcome is another test's)."""
        return InProcessRun(self.path, self.workdir)(**parameters)

    def last_output(self) -> str:
        """The text of the last output notebook (everything papermill stored)."""
        return (self.workdir / f"run{self.runs}.ipynb").read_text()

    def record(self) -> dict[str, Any]:
        """What the notebook recorded as created."""
        data: dict[str, Any] = json.loads((self.output_dir / "binderhub-registry.json").read_text())
        return data


class InProcessRun:
    """Runs a notebook's code cells in this process: the same cells, step runner and SDK calls
    as a papermill run, without a kernel, papermill or nbformat output.

    For long lists of scenarios (the fault matrix) where a kernel per case would cost more than
    the case: nothing IPython adds is checked here (``short_errors``' one-line output, display),
    so a few of each list run through papermill as well. Parameters are set after the
    parameters cell, as papermill's injected cell does; cells tagged ``skip-execution`` are
    skipped, as nbclient does; top-level ``await`` runs on one event loop per run, as in a
    kernel. A cell's error is raised as is.
    """

    def __init__(self, path: Path, workdir: Path) -> None:
        self.path = path
        self.workdir = workdir
        self.output_dir = workdir / "values"
        self.outputs: list[str] = []  # each cell's last expression, as text (what it displays)

    def __call__(self, **parameters: Any) -> dict[str, Any]:
        """Execute with ``parameters`` (output_dir defaults to the test's); the namespace."""
        nb = nbformat.read(str(self.path), as_version=4)
        parameters = {"output_dir": str(self.output_dir)} | parameters
        namespace: dict[str, Any] = {"__name__": "__main__"}
        self.outputs = []
        self.workdir.mkdir(parents=True, exist_ok=True)
        # what the run prints and logs, kept in a file as papermill keeps a notebook's
        # outputs: the audit scans the tests' files for secrets
        printed = io.StringIO()
        handler = logging.StreamHandler(printed)
        handler.setLevel(logging.WARNING)
        here = os.getcwd()
        locked = set(outputs._held)
        loop = asyncio.new_event_loop()
        try:
            os.chdir(self.workdir)
            logging.getLogger().addHandler(handler)
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                for cell in nb.cells:
                    tags = cell.metadata.get("tags", [])
                    if cell.cell_type != "code" or "skip-execution" in tags:
                        continue
                    value = _run_cell(cell.source, namespace, loop)
                    if value is not None:
                        self.outputs.append(repr(value))
                        print(self.outputs[-1])
                    if "parameters" in tags:
                        namespace.update(parameters)
        finally:
            # output_dir's lock lasts as long as the run's process: release it as a kernel's
            # exit does, so that the next run (papermill's or this process's) may take it
            for directory in set(outputs._held) - locked:
                os.close(outputs._held.pop(directory))
            logging.getLogger().removeHandler(handler)
            os.chdir(here)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            runs = len(list(self.workdir.glob("in-process-run*.txt")))
            (self.workdir / f"in-process-run{runs + 1}.txt").write_text(printed.getvalue())
        return namespace


def _run_cell(source: str, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Any:
    """Run one cell's source; the value of its last line when that is an expression."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    parts: list[tuple[ast.mod, str]] = [(ast.Module(tree.body, type_ignores=[]), "exec")]
    if isinstance(last, ast.Expr):
        parts.append((ast.Expression(last.value), "eval"))
    value = None
    for part, mode in parts:
        code = compile(part, "<cell>", mode, flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        value = eval(code, namespace)  # the repository's own notebook cell
        if code.co_flags & inspect.CO_COROUTINE:
            value = loop.run_until_complete(value)
    return value


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


# --- fixtures several modules use -------------------------------------------------------
@pytest.fixture
def quick_waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Every wait of this process (the step runner's, the SDKs' retries and polls) cut to
    :data:`QUICK_WAIT`; yields the waits asked for."""
    asked: list[float] = []
    real_sleep, real_async_sleep = time.sleep, asyncio.sleep

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        real_sleep(min(seconds, QUICK_WAIT))

    async def async_sleep(seconds: float, result: Any = None) -> Any:
        asked.append(seconds)
        return await real_async_sleep(min(seconds, QUICK_WAIT), result)

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(asyncio, "sleep", async_sleep)
    # the runner's default was bound at import; it awaits asyncio.sleep when it is time.sleep
    assert Runner.__init__.__kwdefaults__ is not None
    monkeypatch.setitem(Runner.__init__.__kwdefaults__, "sleep", sleep)
    yield asked


@pytest.fixture
def no_real_ovh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OVH variable, and a working directory without ovh.conf."""
    for name in list(os.environ):
        if name.startswith("OVH_") or name == ovh.SANDBOX_SECRET_VARIABLE:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def tenant(fresh: Sandbox) -> Iterator[Tenant]:
    """The fresh sandbox's Azure tenant, signed in as the seeded deployer."""
    creds = fresh.credentials("azure")
    credential = ClientSecretCredential(
        creds["tenant_id"],
        creds["client_id"],
        creds["client_secret"],
        authority=f"{fresh.url}/azure/login",
        disable_instance_discovery=True,
        connection_verify=fresh.ca_file,
    )
    yield Tenant(fresh, creds, credential)


@pytest.fixture
def azure_nb(
    tmp_path: Path, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> NotebookRun:
    """The Azure notebook, against a fresh sandbox, writing into tmp_path, no Azure variables."""
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return NotebookRun(NOTEBOOKS / "03-azure-container-registry.ipynb", tmp_path)


@pytest.fixture
def google_overrides() -> dict[str, Any]:
    """Parameters ``conn`` signs in with beyond the notebook's defaults (a module overrides it)."""
    return {}


@pytest.fixture
def conn(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner, google_overrides: dict[str, Any]
) -> google.GoogleConnection:
    """Google: a connection signed in with the notebook's defaults on a fresh sandbox, writing
    into tmp_path (a module may override it, asking for this one by name)."""
    return signed_in(run, tmp_path / "values", **google_overrides)


@pytest.fixture(scope="session")
def ecr_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrBox]:
    """The ECR backend in this worker's process (moto's state is the process's: one box each)."""
    with ecr_app(tmp_path_factory.mktemp("ecr")) as box:
        yield box


@pytest.fixture
def ecr(ecr_box: EcrBox) -> EcrBox:
    """The in-process ECR sandbox as a new account has it (moto emptied, the admin and the EKS
    cluster seeded, settings at their defaults, no faults)."""
    with ecr_box.cloud.lock:
        ecr_box.cloud.reset()
    ecr_box.app.faults.clear()
    return ecr_box
