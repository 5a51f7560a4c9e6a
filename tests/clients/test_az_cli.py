"""The guide's own ``az`` commands (section 2.3) pass on the sandbox, as written, and what
they make works: or, where the registry is in ABAC mode, visibly does not.

A fidelity test by a client nobody here wrote: the real Azure CLI (pinned,
in its own virtual environment, installed by ``make test-clients``) signs in,
creates the resource group and registry, exchanges a token at the registry,
creates the service principal with AcrPush, and tears it all down, against
the fake Entra ID, ARM, Graph and ACR. Step 7's result is then checked as
Azure shows it (``az role assignment list``: the role, its scope) and used as
BinderHub uses it (skopeo pushes with the appId and password it printed).

The guide runs twice, at once, each on a sandbox of its own: as Azure makes
registries today (legacy mode), and where a registry made without a mode is in
ABAC mode, which Microsoft says "will become the default role assignment
permissions mode" (learn.microsoft.com, "Azure ABAC repository permissions in
Azure Container Registry"; "Legacy ACR roles such as AcrPull, AcrPush, and
AcrDelete are not honored in ABAC-enabled registries"). There step 7 succeeds,
lists AcrPush, and pushes nothing; notebook 03 run on the same registry grants
Container Registry Repository Writer, and the same credentials push.

Nothing leaves loopback: each run is in a network namespace with only loopback
where the machine allows it, and a socket-level guard in every Python the CLI
starts records any attempt.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry.sandbox.azure import ACR_PUSH
from binderhub_registry.sandbox.azure.az_cli import AZ_CLI_VERSION

from .az_guide import ROOT
from .conftest import AZ_ENV

#: the first test waits for both runs: about a minute and a half alone, much longer on a loaded
#: machine (every az start is a few seconds of CPU)
pytestmark = [pytest.mark.clients, pytest.mark.timeout(1200)]
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


def _start(az: str, out: Path, *world: str) -> tuple[subprocess.Popen[bytes], Path, bool]:
    """``az_guide`` in the background, its output in files (two runs at once: no pipe fills)."""
    wrapper = _in_own_network()
    with out.with_suffix(".log").open("wb") as log:
        process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "tests.clients.az_guide", az, str(out), *world],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, out, bool(wrapper)


def _finish(started: tuple[subprocess.Popen[bytes], Path, bool]) -> Guide:
    process, out, isolated = started
    process.wait(timeout=1100)
    assert process.returncode == 0, out.with_suffix(".log").read_text()[-3000:]
    result: Guide = json.loads(out.read_text())
    result["isolated"] = isolated
    print(f"{result['world']}: network namespace of its own: {isolated}")
    for step in result["steps"]:
        print(
            f"{step['section']:<24} rc={step['rc']} {step['seconds']:6.2f}s "
            f"{step['requests']:3d} requests"
        )
    return result


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Guide]:
    """The guide run in both worlds at once, each on its own sandbox (about a minute and a
    half: each ``az acr create`` waits the CLI's 30 s poll)."""
    az = os.environ[AZ_ENV]
    out = tmp_path_factory.mktemp("az")
    runs = {
        "legacy": _start(az, out / "legacy.json"),
        "abac": _start(az, out / "abac.json", "abac"),
    }
    try:
        return {world: _finish(run) for world, run in runs.items()}
    finally:
        for process, _, _ in runs.values():
            if process.poll() is None:  # one failed or timed out: stop the other
                process.send_signal(signal.SIGINT)  # KeyboardInterrupt: it stops its sandbox
                process.wait(timeout=60)


@pytest.fixture(scope="module")
def guide(worlds: dict[str, Guide]) -> Guide:
    """The guide where registries are made as Azure makes them today (legacy mode)."""
    return worlds["legacy"]


@pytest.fixture(scope="module")
def abac(worlds: dict[str, Guide]) -> Guide:
    """The guide, then notebook 03, where a registry made without a mode is in ABAC mode."""
    return worlds["abac"]


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
        "check step 7 role",
        "check step 7 push",
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


def test_az_makes_the_purge_task_the_notebook_makes(guide: Guide) -> None:
    """``az acr task create --cmd "acr purge ..." --schedule --context /dev/null`` (Microsoft's
    purge page) succeeds on the fake, with the YAML, timer and platform the notebook sends."""
    import base64

    from binderhub_registry.providers.azure import retention

    step = _step(guide, "check purge task")
    assert step["rc"] == 0, f"{step['argv']}: {step['stderr'][-2000:]}"
    printed = json.loads(step["stdout"])
    made = printed.get("properties", printed)  # the SDK's model prints ARM's wire format
    assert "step" in made, sorted(printed)
    command = retention.purge_command("binderhub", "binder-", 30)
    ours = retention.task_body(command)
    content = made["step"]["encodedTaskContent"]
    assert (
        base64.b64decode(content).decode()
        == base64.b64decode(ours["step"]["encodedTaskContent"]).decode()
    )
    assert made["trigger"]["timerTriggers"] == ours["trigger"]["timerTriggers"]
    assert made["platform"]["os"].lower() == "linux" and made["agentConfiguration"]["cpu"] == 2
    assert made["timeout"] == ours["timeout"]
    assert any(e["method"] == "PUT" and "/tasks/" in e["path"] for e in guide["log"])


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


# --- what step 7 made: the role and its scope, and credentials that push ----------------
def _assignments(step: Guide) -> list[Guide]:
    assert step["rc"] == 0, step["stderr"][-2000:]
    found: list[Guide] = json.loads(step["stdout"])
    return found


def test_step_7_grants_acr_push_on_the_registry_alone(guide: Guide) -> None:
    """``az role assignment list --assignee <appId> --scope <registry>``: one assignment,
    AcrPush, for the service principal, whose scope is the registry itself."""
    (assignment,) = _assignments(_step(guide, "check step 7 role"))
    assert assignment["roleDefinitionName"] == "AcrPush"
    assert assignment["roleDefinitionId"].endswith(f"/roleDefinitions/{ACR_PUSH}")
    assert assignment["scope"] == guide["acr_id"]
    assert assignment["principalType"] == "ServicePrincipal"
    assert assignment["principalName"] == guide["app_id"]


def test_step_7_credentials_push(guide: Guide) -> None:
    """skopeo pushes with the appId and password step 7 printed: the registry's token endpoint
    gives them push, and the manifest lands."""
    step = _step(guide, "check step 7 push")
    assert step["rc"] == 0, step["stderr"][-2000:]
    assert "Writing manifest to image destination" in step["stdout"]
    pushed = [
        e
        for e in guide["log"]
        if e["method"] == "PUT" and e["path"] == "/v2/binderhub/guide-check/manifests/step7"
    ]
    assert [e["status"] for e in pushed] == [201]


def test_scope_still_works_as_an_abbreviation(guide: Guide) -> None:
    """The guide's ``--scope`` (the flag is ``--scopes``) still works on az 2.91: azure-cli
    leaves argparse's prefix matching on, so the role lands on the registry, with no warning."""
    step = _step(guide, "2.3 step 7")
    assert "--scope" in step["argv"] and "--scopes" not in step["argv"]
    assert step["rc"] == 0 and "scope" not in step["stderr"].lower()
    (assignment,) = _assignments(_step(guide, "check step 7 role"))
    assert assignment["scope"] == guide["acr_id"]


# --- the same guide where registries are made in ABAC mode ---------------------------------
@pytest.mark.parametrize(
    "section",
    [
        "set-up",
        "2.3 step 2",
        "2.3 step 3",
        "2.3 step 4",
        "check step 4 mode",
        "2.3 step 5",
        "2.3 step 6",
        "2.3 step 7",
        "check step 7 role",
    ],
)
def test_abac_guide_command_passes(abac: Guide, section: str) -> None:
    step = _step(abac, section)
    assert step["rc"] == 0, f"{step['argv']}: {step['stderr'][-2000:]}"


def test_abac_registry_made_as_written(abac: Guide) -> None:
    """``az acr create`` as the guide writes it sends no mode: the registry is in ABAC mode."""
    assert "--role-assignment-mode" not in _step(abac, "2.3 step 4")["argv"]
    assert _step(abac, "check step 4 mode")["stdout"].strip() == "AbacRepositoryPermissions"


def test_abac_acr_push_silently_grants_nothing(abac: Guide) -> None:
    """Step 7 succeeds without a word, Azure lists AcrPush on the registry, and the
    credentials it printed cannot push: AcrPush is not honoured in ABAC mode."""
    created = _step(abac, "2.3 step 7")
    assert created["rc"] == 0 and created["stderr"] == ""
    (assignment,) = _assignments(_step(abac, "check step 7 role"))
    assert assignment["roleDefinitionName"] == "AcrPush"
    assert assignment["scope"] == abac["acr_id"]
    push = _step(abac, "check step 7 push")
    assert push["rc"] != 0
    assert "401" in push["stderr"] and "denied" in push["stderr"]
    assert not any(
        e["path"] == "/v2/binderhub/guide-check/manifests/step7" and e["status"] == 201
        for e in abac["log"]
    )


def test_abac_notebook_grants_the_role_that_pushes(abac: Guide) -> None:
    """Notebook 03 on the guide's registry and service principal: it sees ABAC mode, grants
    Container Registry Repository Writer, verifies a push; then step 7's own appId and
    password push too."""
    notebook = abac["notebook"]
    assert notebook["error"] == "", notebook["error"]
    text = notebook["text"]
    assert "ABAC mode: AcrPush is not honoured here" in text
    assert "Container Registry Repository Writer on registry binderhubdemo only" in text
    assert "build pods (push) ok" in text
    roles = {
        (a["roleDefinitionName"], a["scope"])
        for a in _assignments(_step(abac, "check notebook role"))
    }
    assert roles == {
        ("AcrPush", abac["acr_id"]),
        ("Container Registry Repository Writer", abac["acr_id"]),
    }
    push = _step(abac, "check notebook push")
    assert push["rc"] == 0, push["stderr"][-2000:]
    assert "Writing manifest to image destination" in push["stdout"]


def test_abac_run_stayed_on_loopback_and_printed_no_secret(abac: Guide) -> None:
    assert abac["refused"] == []
    prefixes = ("/azure/", "/v2/", "/oauth2/")
    assert all(e["path"].startswith(prefixes) for e in abac["log"]), abac["log"]
    assert "<secret>" in json.dumps(abac["steps"])
