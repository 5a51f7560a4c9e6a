"""The provider contract: one suite, run over every registered provider's notebook.

A provider gets these by registering (``providers.PROVIDERS``): a run writes values that follow
the chart's rules and that a client nobody here wrote (skopeo) can push with; a rerun creates
nothing; a dry run changes nothing; every parameter's rule is checked before any cloud call; a
run that crashes half-way completes on the next run without duplicates; rotation leaves one
working credential; teardown removes everything the notebook created; no secret is printed.
Provider-specific behaviour is tested beside this: the provider's steps beyond the contract in
``test_<provider>_notebook.py`` (one topic of them in ``test_<provider>_<topic>.py``), its sandbox
fake against the cloud's own API description in ``test_<provider>_sandbox.py``. What the test
modules share is in ``helpers.py`` and ``conftest.py`` (``test_suite_layout.py`` checks both).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from papermill.exceptions import PapermillExecutionError

from binderhub_registry import InvalidParameter, providers, sandbox
from binderhub_registry.binderhub import auth_key_host, chart_docker_config, image_host
from binderhub_registry.params import Parameter
from binderhub_registry.providers import COMMON_PARAMETERS, Provider

from .conftest import NOTEBOOKS, NotebookRun, assert_fails_before_any_call, outputs_text
from .helpers import HELPER_CLASS, census, creating_calls, credential, helper_push_registry
from .skopeo import CONVERTED, skopeo_push

pytestmark = pytest.mark.notebook

KEYS = providers.keys()


@pytest.fixture(params=KEYS)
def provider(request: pytest.FixtureRequest) -> Provider:
    """Each registered provider in turn."""
    return providers.get(request.param)


@pytest.fixture
def nb(provider: Provider, tmp_path: Path, fresh: sandbox.Sandbox) -> NotebookRun:
    """The provider's notebook against a fresh sandbox, writing into tmp_path."""
    return NotebookRun(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb", tmp_path)


# --- helpers -------------------------------------------------------------------------------


def values_of(run: NotebookRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """config.yaml and secret.yaml as written."""
    config = yaml.safe_load((run.output_dir / "config.yaml").read_text())
    secret = yaml.safe_load((run.output_dir / "secret.yaml").read_text())
    return config, secret


def bad_value(param: Parameter) -> Any:
    """A value that breaks ``param``'s rule, whatever the rule is."""
    return {
        "flag": "yes",
        "integer": -(10**9),
        "choice": "not-one-of-them",
        "directory": "",
    }.get(param.kind, "Not A Valid Value!")


# --- the contract --------------------------------------------------------------------------
def test_parameters_end_with_the_common_ones(provider: Provider) -> None:
    names = [p.name for p in provider.PARAMETERS]
    assert names[-len(COMMON_PARAMETERS) :] == [p.name for p in COMMON_PARAMETERS]
    assert len(set(names)) == len(names)
    assert provider.KEY in KEYS and provider.NAME


def test_every_parameter_rule_is_checked_before_any_call(
    provider: Provider, tmp_path: Path
) -> None:
    nb = nbformat.read(str(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defaults: dict[str, Any] = {}
    exec(cell.source, defaults)
    defaults["output_dir"] = str(tmp_path / "values")
    assert provider.validate(defaults) is not None  # the notebook's defaults are valid
    for param in provider.PARAMETERS:
        with pytest.raises(InvalidParameter) as err:
            provider.validate(defaults, **{param.name: bad_value(param)})
        assert err.value.name == param.name
        message = str(err.value)
        assert message.startswith(f"parameter {param.name!r}: ") and "\n" not in message
        assert param.rule in message
    with pytest.raises(InvalidParameter, match="rotate"):
        provider.validate(defaults, rotate=True, teardown=True)


def test_bad_input_stops_the_notebook_before_any_call(
    provider: Provider, nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    first = provider.PARAMETERS[0]
    assert_fails_before_any_call(nb, fresh, {first.name: bad_value(first)}, first.name, first.rule)


def test_a_run_writes_values_that_work_and_a_rerun_creates_nothing(
    provider: Provider, nb: NotebookRun, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    first = nb()
    assert "[failed]" not in outputs_text(first)
    config, secret = values_of(nb)
    password = credential(secret)
    # a registry behind BinderHub's ExternalRegistryHelper (ECR) has no static push credential:
    # BinderHub holds the helper's token, and each build pushes with the helper's short-lived one
    helper = config["config"]["BinderHub"].get("registry_class") == HELPER_CLASS

    # the chart's rules: BinderHub settings at the top of config; registry takes three keys
    assert set(config) == {"config"} and config["config"]["BinderHub"]["use_registry"] is True
    sections = {"BinderHub", "DockerRegistry"} | ({"ExternalRegistryHelper"} if helper else set())
    assert set(config["config"]) <= sections
    assert set(secret["registry"]) <= {"url", "username", "password"}
    registry = helper_push_registry(config, secret, fresh.ca_file) if helper else secret["registry"]
    assert registry["username"]  # explicit: the chart's default is "<token>"
    key = next(iter(chart_docker_config(registry)["auths"]))
    assert auth_key_host(key) == image_host(config["config"]["BinderHub"]["image_prefix"])
    assert (nb.output_dir / "secret.yaml").stat().st_mode & 0o777 == 0o600

    # secret hygiene: not in any output, in no encoding, nor in the record
    text = nb.last_output() + (nb.output_dir / "binderhub-registry.json").read_text()
    for form in (password, base64.b64encode(password.encode()).decode(), json.dumps(password)):
        assert form.strip('"') not in text

    # a client nobody here wrote pushes with the chart's docker config, its layer chunked
    prefix = config["config"]["BinderHub"]["image_prefix"]
    pushed = skopeo_push(fresh.ca_file, tmp_path, registry, f"{prefix}skopeo:1")
    assert pushed.returncode == 0, pushed.stderr
    assert CONVERTED in pushed.stderr

    before = fresh.state()
    second = nb()
    assert fresh.state() == before
    assert credential(values_of(nb)[1]) == password
    assert "[created]" not in outputs_text(second)


def test_dry_run_changes_nothing(nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    before = fresh.state()
    out = nb(dry_run=True)
    assert "[planned]" in outputs_text(out)
    assert fresh.state() == before
    assert not (nb.output_dir / "secret.yaml").exists()


def test_a_dry_run_after_a_run_rewrites_no_file(nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    # the stored credential is reused in a dry run too: its values must not be written again
    # (a full disk mid-write, or previewed parameters, would change the deployed secret.yaml)
    nb.set_up()
    files = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in nb.output_dir.iterdir()}
    before = fresh.state()
    nb(dry_run=True)
    after = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in nb.output_dir.iterdir()}
    assert after == files
    assert fresh.state() == before


def test_crash_half_way_then_rerun_leaves_no_duplicates(
    nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    nb.set_up()
    clean = census(fresh.state())
    calls = creating_calls(fresh)
    assert calls, "the notebook created nothing in the fake cloud"
    at = (len(calls) - 1) // 2
    fresh.reset()
    shutil.rmtree(nb.output_dir)

    def fault(call: dict[str, Any], **how: Any) -> dict[str, Any]:
        return {"method": call["method"], "path": "^" + re.escape(call["path"]) + "$"} | how

    if at + 1 < len(calls):  # the middle call's answer is lost, then the run dies at the next
        # (by an answer no retry fixes: a 500 would first wait out an SDK's own retries under
        # each of the runner's; giving up on retried faults is test_faults.py's)
        fresh.add_faults(
            fault(calls[at], drop=True, after=True, times=1),
            fault(calls[at + 1], status=403, times=99),
        )
    else:  # every attempt at the only call is carried out and its answer lost
        fresh.add_faults(fault(calls[at], drop=True, after=True, times=99))
    with pytest.raises(PapermillExecutionError):
        nb()
    fresh.clear_faults()
    nb()
    assert census(fresh.state()) == clean


def test_rotate_leaves_one_working_credential(nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    nb.set_up()
    clean = census(fresh.state())
    old = credential(values_of(nb)[1])
    out = nb(rotate=True)
    text = outputs_text(out)
    assert "Remove the replaced credential [deleted]" in text
    assert credential(values_of(nb)[1]) != old
    assert census(fresh.state()) == clean  # the old credential is gone, nothing else changed


def test_teardown_removes_what_the_notebook_created(
    provider: Provider, nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    seeded = fresh.state()
    nb.set_up()
    out = nb(teardown=True)
    assert "Delete what this notebook created [deleted]" in outputs_text(out)
    after = fresh.state()
    for state in (seeded, after):  # images pushed by verification are not the notebook's
        for backend in state.values():
            if isinstance(backend, dict):
                backend.pop("repositories", None)
                backend.pop("privacy", None)  # Docker Hub: the pushed repositories' privacy
                for registry in backend.get("registries", []):
                    if isinstance(registry, dict):
                        registry.pop("repositories", None)
    if provider.NOTEBOOK.startswith("01-"):  # Google: the APIs it enabled stay on
        from binderhub_registry.providers import google

        apis = set(seeded["google"]["services"]) | set(google.SERVICES)
        seeded["google"]["services"] = sorted(apis)
    assert census(after) == census(seeded)
    assert not (nb.output_dir / "secret.yaml").exists()
    again = nb(teardown=True)
    assert "nothing recorded as created by this notebook" in outputs_text(again)


# --- a registry whose default pull is not its only one -----------------------------------------
def test_ecr_with_a_pull_secret_keeps_the_contract(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    """ECR's notebook defaults to the nodes' pull; with ``pull_access = "secret"`` (outside EKS)
    the same contract: values that verify (the pull with the secret included), the chart's
    rules, no secret printed, a rerun that makes nothing, rotation to one working credential,
    and teardown of everything."""
    nb = NotebookRun(NOTEBOOKS / f"{providers.get('ecr').NOTEBOOK}.ipynb", tmp_path)
    params = {"pull_access": "secret", "helper_identity": "user"}
    seeded = fresh.state()
    text = outputs_text(nb(**params))
    assert "[failed]" not in text and "user pods (pull) ok, least privilege ok" in text
    config, secret = values_of(nb)
    # user pods pull with the Secret the CronJob refreshes, named in config.yaml; secret.yaml
    # holds no 12-hour password (Zero to JupyterHub's imagePullSecret would be Helm's Secret)
    assert set(config) == {"config", "jupyterhub"} and "jupyterhub" not in secret
    assert config["jupyterhub"] == {
        "singleuser": {"image": {"pullSecrets": ["binderhub-ecr-pull"]}}
    }
    manifest = nb.output_dir / "pull-secret-cronjob.yaml"
    assert manifest.stat().st_mode & 0o777 == 0o600
    (key,) = [d for d in yaml.safe_load_all(manifest.read_text()) if d["kind"] == "Secret"]
    puller = key["stringData"]["AWS_SECRET_ACCESS_KEY"]
    text = nb.last_output() + (nb.output_dir / "binderhub-registry.json").read_text()
    for form in (puller, base64.b64encode(puller.encode()).decode(), json.dumps(puller)):
        assert form.strip('"') not in text

    before = fresh.state()
    assert "[created]" not in outputs_text(nb(**params)) and fresh.state() == before
    clean = census(before)
    rotated = outputs_text(nb(rotate=True, **params))
    assert "Remove the replaced credential [deleted]" in rotated
    assert census(fresh.state()) == clean
    assert "Delete what this notebook created [deleted]" in outputs_text(
        nb(teardown=True, **params)
    )
    after = fresh.state()
    for state in (seeded, after):  # images pushed by verification are not the notebook's
        state["ecr"].pop("repositories", None)
    assert census(after) == census(seeded) and not manifest.exists()
