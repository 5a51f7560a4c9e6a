"""User pods' pull on notebook 03: a pull-only service principal, AKS nodes, or none."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from papermill.exceptions import PapermillExecutionError

from binderhub_registry import sandbox
from binderhub_registry.providers import azure

from .conftest import NOTEBOOKS, NotebookRun, assert_fails_before_any_call, outputs_text
from .helpers import AZURE_VARIABLES, az, deployer_token, settings

pytestmark = pytest.mark.notebook
STEP = "Pull-only credential for user pods"


@pytest.fixture
def nb(tmp_path: Path, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch) -> NotebookRun:
    """The Azure notebook, against a fresh sandbox, writing into tmp_path, no Azure variables."""
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return NotebookRun(NOTEBOOKS / "03-azure-container-registry.ipynb", tmp_path)


def values(run: NotebookRun) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((run.output_dir / "secret.yaml").read_text())
    return data


def pull_app(box: sandbox.Sandbox) -> dict[str, Any] | None:
    apps = [a for a in az(box)["applications"] if a["display_name"] == "binderhub-sp-pull"]
    assert len(apps) <= 1  # never a duplicate
    return apps[0] if apps else None


def roles(box: sandbox.Sandbox) -> list[tuple[str, str, str | None]]:
    """Every role assignment but the deployer's: (role, principal id, condition)."""
    return sorted(
        (a["role"], a["principal_id"], a["condition"])
        for a in az(box)["role_assignments"]
        if a["role"] != "Owner"
    )


def sp_id(box: sandbox.Sandbox, app_id: str) -> str:
    return next(s["id"] for s in az(box)["service_principals"] if s["app_id"] == app_id)


def granted(box: sandbox.Sandbox, login: str, user: str, password: str, repo: str) -> Any:
    """The ACR token realm's answer for pull and push on ``repo``: the actions, or the status."""
    r = requests.get(
        f"https://{login}/oauth2/token",
        params={"service": login, "scope": f"repository:{repo}:pull,push"},
        auth=(user, password),
        verify=box.ca_file,
        timeout=10,
    )
    if r.status_code != 200:
        return r.status_code
    import jwt  # PyJWT: read the token's claims, as docker-registry does (unverified here)

    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    return [a for entry in claims["access"] for a in entry["actions"]], r.json()["access_token"]


def abac_registry(box: sandbox.Sandbox) -> None:
    """binderhubdemo in binderhub-registry, created without a mode (the setting's: ABAC)."""
    creds = box.credentials("azure")
    base = f"{box.url}/azure/management/subscriptions/{creds['subscription_id']}"
    headers = {"Authorization": f"Bearer {deployer_token(box)}"}
    group = f"{base}/resourcegroups/binderhub-registry?api-version=2025-04-01"
    registry = (
        f"{base}/resourceGroups/binderhub-registry/providers/Microsoft.ContainerRegistry/"
        "registries/binderhubdemo?api-version=2025-11-01"
    )
    for url, body in (
        (group, {"location": "westeurope"}),
        (registry, {"location": "westeurope", "sku": {"name": "Basic"}}),
    ):
        requests.put(
            url, json=body, headers=headers, verify=box.ca_file, timeout=10
        ).raise_for_status()


def test_default_run_writes_a_pull_only_credential(nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    out = nb()
    text = outputs_text(out)
    assert f"{STEP} [created]" in text
    assert "user pods (pull) ok, least privilege ok" in text
    data = values(nb)
    pull, push = data["jupyterhub"]["imagePullSecret"], data["registry"]
    login = push["url"].removeprefix("https://")
    assert pull["create"] is True and pull["registry"] == login
    assert pull["username"] != push["username"] and pull["password"] != push["password"]
    assert pull["password"] not in text  # never shown
    app = pull_app(fresh)
    assert app is not None and app["app_id"] == pull["username"]
    registry = next(r for r in az(fresh)["registries"] if r["name"] == "binderhubdemo")
    assert registry
    # AcrPull on the registry alone for user pods, AcrPush for BinderHub: nothing more
    assert roles(fresh) == sorted(
        [
            ("AcrPull", sp_id(fresh, pull["username"]), None),
            ("AcrPush", sp_id(fresh, push["username"]), None),
        ]
    )
    scopes = {a["scope"] for a in az(fresh)["role_assignments"] if a["role"].startswith("Acr")}
    assert len(scopes) == 1 and scopes.pop().endswith("/registries/binderhubdemo")
    record = nb.record()["created"]
    assert {"pull_application", "pull_service_principal", "pull_password"} <= set(record)
    assert "pending" not in record["pull_role_assignment"]


def test_pull_credential_pulls_and_is_refused_a_push(
    nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    nb.set_up()
    data = values(nb)
    pull, push = data["jupyterhub"]["imagePullSecret"], data["registry"]
    login = pull["registry"]
    repositories = az(fresh)["registries"][0]["repositories"]
    repo = next(iter(repositories))  # the image verification pushed
    actions, token = granted(fresh, login, pull["username"], pull["password"], repo)
    assert actions == ["pull"]  # the realm gives the pull credential no push
    assert granted(fresh, login, push["username"], push["password"], repo)[0] == ["pull", "push"]
    auth = {"Authorization": f"Bearer {token}"}
    tags = requests.get(
        f"https://{login}/v2/{repo}/tags/list", headers=auth, verify=fresh.ca_file, timeout=10
    )
    assert tags.status_code == 200 and tags.json()["tags"]
    upload = requests.post(
        f"https://{login}/v2/{repo}/blobs/uploads/", headers=auth, verify=fresh.ca_file, timeout=10
    )
    # what ACR answers a push without the role (Azure/acr issues 258, 506)
    assert upload.status_code == 401
    assert upload.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert "insufficient_scope" in upload.headers["WWW-Authenticate"]
    basic = requests.post(
        f"https://{login}/v2/{repo}/blobs/uploads/",
        auth=(pull["username"], pull["password"]),
        verify=fresh.ca_file,
        timeout=10,
    )
    assert basic.status_code == 401  # Basic credentials are refused the push too


def test_rerun_creates_nothing(nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    nb.set_up()
    before, first = az(fresh), values(nb)
    out = nb()
    assert f"{STEP} [reused]" in outputs_text(out)
    after = az(fresh)
    for state in (before, after):
        for registry in state["registries"]:
            registry.pop("repositories")  # verification pushes its image again
    assert after == before
    assert values(nb)["jupyterhub"] == first["jupyterhub"]


def test_rotate_keep_replaced_then_a_plain_run_removes_the_old_pull_password(
    nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    nb.set_up()
    old = values(nb)["jupyterhub"]["imagePullSecret"]
    old_key = nb.record()["created"]["pull_password"]["key_id"]
    login = old["registry"]
    nb.set_up(rotate=True, keep_replaced=True)
    new = values(nb)["jupyterhub"]["imagePullSecret"]
    assert new["username"] == old["username"] and new["password"] != old["password"]
    assert f"pull:{old_key}" in nb.record()["created"]["retiring_passwords"]
    # kept: the deployed user pods still pull with the old password until the new one is deployed
    assert granted(fresh, login, old["username"], old["password"], "binderhub/x")[0] == ["pull"]
    app = pull_app(fresh)
    assert app is not None and len(app["passwords"]) == 2
    out = nb()
    assert "Remove the replaced credential [deleted]" in outputs_text(out)
    assert granted(fresh, login, old["username"], old["password"], "binderhub/x") == 401
    assert granted(fresh, login, new["username"], new["password"], "binderhub/x")[0] == ["pull"]
    app = pull_app(fresh)
    assert app is not None and [p["key_id"] for p in app["passwords"]] == [
        nb.record()["created"]["pull_password"]["key_id"]
    ]
    assert "retiring_passwords" not in nb.record()["created"]


def test_dry_run_after_a_run_changes_nothing(nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    nb.set_up()
    before, files, record = az(fresh), values(nb), nb.record()
    out = nb(dry_run=True, rotate=True)
    text = outputs_text(out)
    assert f"{STEP} [planned]" in text and "would add a new password (rotate)" in text
    assert az(fresh) == before and values(nb) == files and nb.record() == record


def test_dry_run_on_a_new_subscription_plans_the_pull_identity(
    nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    before = az(fresh)
    text = outputs_text(nb(dry_run=True))
    assert "would create application and service principal 'binderhub-sp-pull'" in text
    assert az(fresh) == before


def test_teardown_removes_the_pull_identity(nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    seeded = az(fresh)
    nb.set_up(rotate=False)
    nb.set_up(rotate=True, keep_replaced=True)  # a replaced pull password is recorded too
    out = nb(teardown=True)
    text = outputs_text(out)
    assert "user pods' role assignment" in text and "user pods' application" in text
    assert az(fresh) == seeded
    assert nb.record()["created"] == {}


@pytest.mark.parametrize(
    "fault",
    [
        # the pull application's creation answered, then the answer lost (the second POST)
        {"method": "POST", "path": "/graph/v1.0/applications$", "drop": True, "after": True},
        {"method": "PUT", "path": "/roleAssignments/", "drop": True, "after": True},
    ],
    ids=["application", "role assignment"],
)
def test_a_lost_answer_then_a_rerun_leaves_no_duplicate_and_teardown_finds_it(
    nb: NotebookRun, fresh: sandbox.Sandbox, fault: dict[str, Any]
) -> None:
    seeded = az(fresh)
    with pytest.raises(PapermillExecutionError):  # "none" on a private registry: pull fails
        nb(pull_access="none")  # BinderHub's own identity first: the fault hits user pods'
    fresh.add_faults(fault)
    try:
        nb()
    except PapermillExecutionError:
        pass  # stopped or retried: either way the rerun must finish the work
    nb()
    app = pull_app(fresh)
    assert app is not None
    assert [r[0] for r in roles(fresh)] == ["AcrPull", "AcrPush"]
    assert "pending" not in str(nb.record()["created"])
    nb(teardown=True)
    assert az(fresh) == seeded


BAD = [
    ({"pull_access": "nodes"}, "pull_access", "must be one of secret, node, none"),
    ({"pull_access": "node"}, "aks_cluster", 'is needed with pull_access = "node"'),
    ({"aks_cluster": "my-aks"}, "aks_cluster", 'is read only with pull_access = "node"'),
    ({"pull_access": "node", "aks_cluster": "-aks"}, "aks_cluster", "1 to 63 letters"),
    ({"pull_access": "node", "aks_cluster": "a" * 64}, "aks_cluster", "1 to 63 letters"),
]


@pytest.mark.parametrize(("params", "name", "rule"), BAD, ids=[str(b[0])[:40] for b in BAD])
def test_bad_pull_access_fails_before_any_call(
    nb: NotebookRun, fresh: sandbox.Sandbox, params: dict[str, Any], name: str, rule: str
) -> None:
    assert_fails_before_any_call(nb, fresh, params, name, rule)


def test_node_grants_the_aks_kubelet_and_prints_the_check(
    nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    settings(fresh, "azure", aks_clusters=["binderhub-registry/binderaks"])
    seeded = az(fresh)
    kubelet = next(
        s for s in seeded["service_principals"] if s["display_name"] == "binderaks-agentpool"
    )
    out = nb(pull_access="node", aks_cluster="binderaks")
    text = outputs_text(out)
    assert f"{STEP} [created]" in text
    assert "cannot be verified from here" in text
    check = "az aks check-acr --name binderaks --resource-group binderhub-registry"
    assert f"{check} --acr binderhubdemo.azurecr.io" in text
    assert "user pods pull with the nodes' identity" in text
    assert "jupyterhub" not in values(nb)  # no pull secret: the nodes pull
    assert pull_app(fresh) is None
    assert ("AcrPull", kubelet["id"], None) in roles(fresh)
    assert f"{STEP} [reused]" in outputs_text(nb(pull_access="node", aks_cluster="binderaks"))
    nb(teardown=True, pull_access="node", aks_cluster="binderaks")
    assert roles(fresh) == []
    assert [g["name"] for g in az(fresh)["resource_groups"]] == ["binderhub-registry"]  # found


def test_node_without_such_a_cluster_is_one_line(nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    with pytest.raises(PapermillExecutionError) as err:
        nb(pull_access="node", aks_cluster="nosuchaks")  # a new subscription has no cluster
    assert err.value.ename == "CloudError" and "\n" not in err.value.evalue
    assert "no AKS cluster 'nosuchaks' in resource group binderhub-registry" in err.value.evalue


def test_none_makes_nothing_says_acr_is_private_and_fails_the_pull_at_once(
    nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    started = time.monotonic()
    with pytest.raises(PapermillExecutionError) as err:
        nb(pull_access="none")
    assert time.monotonic() - started < 120  # no wait for propagation: a private registry stays so
    assert err.value.ename == "VerificationFailed"
    assert "refused an anonymous pull" in err.value.evalue
    text = nb.last_output()
    assert f"{STEP} [skipped]" in text
    assert "refuses anonymous pulls" in text and "Standard or Premium" in text
    assert "jupyterhub" not in values(nb) and pull_app(fresh) is None
    assert [r[0] for r in roles(fresh)] == ["AcrPush"]


def test_an_abac_registry_gets_repository_reader_on_the_project_alone(
    nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    settings(fresh, "azure", default_role_assignment_mode="AbacRepositoryPermissions")
    abac_registry(fresh)  # made before, by someone else, in ABAC mode (the notebook makes legacy)
    nb.set_up()
    pull = values(nb)["jupyterhub"]["imagePullSecret"]
    readers = [r for r in roles(fresh) if r[0] == "Container Registry Repository Reader"]
    assert len(readers) == 1 and "StringStartsWithIgnoreCase 'binderhub/'" in str(readers[0][2])
    login, user, password = pull["registry"], pull["username"], pull["password"]
    assert granted(fresh, login, user, password, "binderhub/binder-x")[0] == ["pull"]
    assert granted(fresh, login, user, password, "binderhub-other/x")[0] == []  # condition
    assert granted(fresh, login, user, password, "elsewhere/x")[0] == []


def test_the_pull_role_words_match_the_roles() -> None:
    assert azure.ROLE_NAMES[azure.ACR_PULL_ROLE] == "AcrPull"
    assert azure.Params.PULL_NODE.startswith("AcrPull")
