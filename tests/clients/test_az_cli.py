"""The guide's own ``az`` commands (section 2.3) pass on the sandbox, as written.

A fidelity test by a client nobody here wrote: the real Azure CLI (pinned,
in its own virtual environment, installed by ``make test-clients``) signs in,
creates the resource group and registry, exchanges a token at the registry,
creates the service principal with AcrPush, and tears it all down, against
the fake Entra ID, ARM, Graph and ACR. Nothing leaves loopback: the run is in a
network namespace with only loopback where the machine allows it, and a
socket-level guard in every Python the CLI starts records any attempt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from binderhub_registry.sandbox.azure.az_cli import AZ_CLI_VERSION

from .az_guide import ROOT
from .conftest import AZ_ENV

pytestmark = pytest.mark.clients
Guide = dict[str, Any]  # what az_guide.run_guide returned, as JSON


def _in_own_network() -> list[str]:
    """``unshare -n`` with loopback up, where this machine allows it (root); else nothing."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return []
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return (
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
        if (probe.returncode == 0)
        else []
    )


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Guide:
    """The guide's commands run once (about a minute: one LRO waits the CLI's 30 s)."""
    az = os.environ[AZ_ENV]
    out = tmp_path_factory.mktemp("az") / "guide.json"
    wrapper = _in_own_network()
    done = subprocess.run(
        [*wrapper, sys.executable, "-m", "tests.clients.az_guide", az, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: Guide = json.loads(out.read_text())
    result["isolated"] = bool(wrapper)
    print(f"network namespace of its own: {result['isolated']}")
    for step in result["steps"]:
        print(
            f"{step['section']:<24} rc={step['rc']} {step['seconds']:6.2f}s "
            f"{step['requests']:3d} requests"
        )
    return result


def _step(guide: Guide, section: str) -> Guide:
    step: Guide = next(s for s in guide["steps"] if s["section"] == section)
    return step


def test_pinned_cli(guide: Guide) -> None:
    assert guide["az_version"] == AZ_CLI_VERSION


@pytest.mark.parametrize(
    "section",
    [
        "set-up",
        "2.3 step 2",
        "2.3 step 2 list",
        "2.3 step 3",
        "2.3 step 4 check-name",
        "2.3 step 4",
        "2.3 step 5",
        "2.3 step 6",
        "2.3 step 7",
    ],
)
def test_guide_command_passes(guide: Guide, section: str) -> None:
    step = _step(guide, section)
    assert step["rc"] == 0, f"{step['argv']}: {step['stderr'][-2000:]}"
    assert step["requests"] > 0 or section == "2.3 step 2"  # account set is local


def test_what_the_commands_printed(guide: Guide) -> None:
    assert "BinderHub sandbox subscription" in _step(guide, "2.3 step 2 list")["stdout"]
    assert "binderhub-registry" in _step(guide, "2.3 step 3")["stdout"]
    assert "True" in _step(guide, "2.3 step 4 check-name")["stdout"]
    assert "binderhubdemo" in _step(guide, "2.3 step 4")["stdout"]
    acr_id = _step(guide, "2.3 step 6")["stdout"].strip()
    assert acr_id.endswith("/providers/Microsoft.ContainerRegistry/registries/binderhubdemo")
    made = json.loads(_step(guide, "2.3 step 7")["stdout"])
    assert made["displayName"] == "binderhub-sp" and made["password"] == "<secret>"


def test_acr_login_exposes_a_token(guide: Guide) -> None:
    """``az acr login --expose-token``: the registry's Bearer challenge, then Entra ID's token for
    ACR exchanged at ``/oauth2/exchange`` (docker is absent: the token is printed instead)."""
    token = json.loads(_step(guide, "2.3 step 5")["stdout"])
    assert token["accessToken"] == "<secret>" and token["loginServer"].startswith("127.0.0.1:")


def test_second_recipe_fails_as_on_azure(guide: Guide) -> None:
    """``az ad sp show --id http://<SP_NAME>``: create-for-rbac sets no identifier URI since
    the CLI moved to Microsoft Graph, so the second line finds nothing (exit 3)."""
    step = _step(guide, "2.3 second recipe")
    assert step["rc"] == 3, step["stderr"]
    assert "Service principal 'http://binderhub-sp' doesn't exist" in step["stderr"]


def test_rerun_of_create_for_rbac_patches_the_application(guide: Guide) -> None:
    """The second recipe's create-for-rbac reuses the application (PATCH) and its principal,
    replaces the password, and finds the role assignment already there (409)."""
    calls = [(e["method"], e["path"].rsplit("/v1.0/", 1)[-1], e["status"]) for e in guide["log"]]
    assert any(m == "PATCH" and p.startswith("applications/") and s == 204 for m, p, s in calls)
    assert sum(1 for m, p, s in calls if m == "POST" and p == "applications") == 1
    assert any(m == "PUT" and "roleAssignments" in p and s == 409 for m, p, s in calls)


@pytest.mark.parametrize(
    "section", ["teardown acr", "teardown sp", "teardown app", "teardown group"]
)
def test_teardown_command_passes(guide: Guide, section: str) -> None:
    step = _step(guide, section)
    assert step["rc"] == 0, f"{step['argv']}: {step['stderr'][-2000:]}"


def test_teardown_leaves_the_seeded_tenant(guide: Guide) -> None:
    state = guide["state_after"]
    assert state["registries"] == [] and state["resource_groups"] == []
    assert [a["display_name"] for a in state["applications"]] == ["binderhub-registry-deployer"]
    assert len(state["service_principals"]) == 1
    assert {a["role"] for a in state["role_assignments"]} == {"Owner"}


def test_nothing_left_loopback(guide: Guide) -> None:
    assert guide["refused"] == []
    # every command that talks to Azure reached the sandbox, and nothing but the sandbox
    assert all(s["requests"] > 0 for s in guide["steps"] if s["section"].startswith("teardown"))
    prefixes = ("/azure/", "/v2/", "/oauth2/")
    assert all(e["path"].startswith(prefixes) for e in guide["log"]), guide["log"]


def test_no_secret_in_any_output(guide: Guide) -> None:
    """The deployer's secret, the token and the passwords were printed by the CLI; the
    recorded outputs hold none of them (the driver replaced each with ``<secret>``)."""
    text = json.dumps(guide["steps"])
    assert "<secret>" in text
