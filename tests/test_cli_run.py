"""Headless runs: ``binderhub-registry run`` refuses a parameter the
notebook does not have, tells a failure in a line or two, and lists the environment variables;
a plain ``papermill -p`` with a typo is refused by the notebook itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from binderhub_registry import cli, params, providers
from binderhub_registry.params import UnknownParameter, injected_names
from binderhub_registry.sandbox import Sandbox

from .conftest import NOTEBOOKS

CLI = [sys.executable, "-m", "binderhub_registry.cli"]
HARBOR = NOTEBOOKS / "05-harbor.ipynb"
PAPERMILL = Path(sys.executable).parent / "papermill"


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | (env or {}),
        cwd=cwd,
    )


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process, for what ends before any kernel starts."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_run_refuses_a_name_the_notebook_lacks_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _main(
        capsys,
        "run",
        str(HARBOR),
        "-p",
        "robot_nam",
        "ux-robot",
        "-p",
        "output_dir",
        str(tmp_path / "v"),
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        "error: parameter 'robot_nam': is not a parameter of this notebook: "
        "did you mean 'robot_name'?\n"
    )
    assert not (tmp_path / "v").exists()  # refused before any kernel, any file


def test_run_never_prints_the_value_of_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    # a secret passed as a parameter by mistake must not reach the terminal
    out = _main(capsys, "run", str(HARBOR), "-p", "harbor_password", "Hunter2-Secret")
    assert out.returncode == 2
    assert "Hunter2" not in out.stdout + out.stderr
    assert out.stderr.startswith("error: parameter 'harbor_password': is not a parameter")
    assert len(out.stderr.splitlines()) == 1


def test_run_refuses_a_value_that_breaks_its_rule_before_any_kernel(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _main(capsys, "run", str(HARBOR), "-p", "robot_expiry_days", "99999")
    assert out.returncode == 2
    assert out.stderr == (
        "error: parameter 'robot_expiry_days': must be -1 (never expires) or a whole number "
        "of days from 1 to 3650 (got 99999)\n"
    )


def test_run_tells_the_notebooks_own_parameter_error_in_one_line(tmp_path: Path) -> None:
    # rotate with teardown is judged by the notebook's check cell, in the kernel
    out = _cli(
        "run", str(HARBOR), "-p", "rotate", "True", "-p", "teardown", "True",
        "-p", "output_dir", str(tmp_path / "v"),
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr == (
        "error: parameter 'rotate': cannot be combined with teardown = True (got True)\n"
    )
    assert out.stdout == ""


def test_run_names_the_failed_step_and_the_executed_notebook(
    tmp_path: Path, fresh: Sandbox
) -> None:
    from binderhub_registry.providers import harbor

    values = tmp_path / "values"
    out = _cli(
        "run", str(HARBOR), "-p", "output_dir", str(values),
        env={harbor.SANDBOX_PASSWORD_VARIABLE: "not-the-password"},
    )  # fmt: skip
    assert out.returncode == 1
    first, second = out.stderr.splitlines()  # no papermill or click traceback, no kernel noise
    assert first.startswith("error: Step 1: sign in to Harbor: AuthenticationFailed: Harbor at ")
    assert "refused user 'admin'" in first
    assert second == f"the executed notebook, with every output: {values / HARBOR.name}"
    executed = nbformat.read(str(values / HARBOR.name), as_version=4)
    assert any(
        o.get("ename") == "AuthenticationFailed"
        for c in executed.cells
        for o in c.get("outputs", [])
    )


def test_run_succeeds_with_known_parameters(tmp_path: Path, fresh: Sandbox) -> None:
    values = tmp_path / "values"
    out = _cli("run", str(HARBOR), "-p", "output_dir", str(values), "-r", "robot_name", "ux-robot")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"done: the executed notebook is {values / HARBOR.name}\n"
    assert "ux-robot" in (values / "secret.yaml").read_text()


def test_plain_papermill_with_a_typo_is_refused_by_the_notebook(
    tmp_path: Path, fresh: Sandbox
) -> None:
    executed = tmp_path / "out.ipynb"
    out = subprocess.run(
        [str(PAPERMILL), str(HARBOR), str(executed), "-p", "robot_nam", "ux-robot",
         "-p", "output_dir", str(tmp_path / "values"), "--no-progress-bar"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode != 0  # papermill itself only warns "Passed unknown parameter"
    nb = nbformat.read(str(executed), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1
    assert errors[0].ename == "UnknownParameter"
    assert errors[0].evalue == (
        "parameter 'robot_nam': is not a parameter of this notebook (papermill -p injected "
        "it): did you mean 'robot_name'?"
    )
    assert fresh.log() == []  # refused before any call
    assert not (tmp_path / "values" / "secret.yaml").exists()


def test_injected_names_are_read_from_the_kernels_input_history() -> None:
    history = ["", "x: int = 1  # a parameter", "# Parameters\nuser_name = 'foo'\nx = 2\n", "check"]
    assert injected_names({"_ih": history}) == ["user_name", "x"]
    assert injected_names({"In": history[:2]}) is None  # papermill injected nothing
    assert injected_names({}) is None  # not IPython
    spec = (params.integer("x", 0, 9),)
    with pytest.raises(UnknownParameter) as err:
        params.refuse_unknown_injected(spec, {"_ih": history})
    assert str(err.value) == (
        "parameter 'user_name': is not a parameter of this notebook (papermill -p injected it): "
        "it takes x"
    )
    params.refuse_unknown_injected(spec, {"_ih": ["# Parameters\nx = 3\n"]})  # known: fine


@pytest.mark.parametrize("key", providers.keys())
def test_every_parameters_cell_name_is_a_rule_of_its_provider(key: str) -> None:
    """The notebook refuses injected names outside its provider's rules: none of its own may be."""
    provider = providers.get(key)
    nb = nbformat.read(str(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert params.assigned_names(cell.source) == [p.name for p in provider.PARAMETERS]


@pytest.mark.parametrize("key", providers.keys())
def test_params_and_help_notebook_list_the_environment_variables(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = providers.get(key)
    notebook = NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb"
    listing = _main(capsys, "params", str(notebook))
    assert listing.returncode == 0, listing.stderr
    assert _main(capsys, "run", str(notebook), "--help-notebook").stdout == listing.stdout
    lines = listing.stdout.splitlines()
    start = lines.index(
        "Environment variables read against the real cloud, never in the sandbox (secrets are "
        "never parameters):"
    )
    variables = getattr(provider, "SECRET_ENVIRONMENT", ())
    assert variables  # every registry signs in with something
    assert [line.split()[0] for line in lines[start + 1 :]] == [name for name, _ in variables]
    for name in (p.name for p in provider.PARAMETERS):  # each parameter with its rule
        entry = lines.index(next(line for line in lines if line.startswith(f"  {name} (default")))
        assert lines[entry + 1].startswith("      rule: must ")
