"""papermill scenarios on notebooks/03-azure-container-registry.ipynb against the sandbox."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import types
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from papermill.exceptions import PapermillExecutionError

from binderhub_registry import (
    InvalidParameter,
    MissingCredentials,
    Runner,
    Secret,
    TransientCloudError,
    ValuesFiles,
    VerificationFailed,
    load_values,
    sandbox,
)
from binderhub_registry.providers import azure
from binderhub_registry.providers.azure import auth
from binderhub_registry.sandbox.azure import TAKEN_REGISTRY

from .conftest import NOTEBOOKS, NotebookRun, assert_fails_before_any_call, outputs_text
from .helpers import (
    AZURE_DEFAULTS,
    AZURE_VARIABLES,
    az,
    deployer_token,
    loopback_connections,
    settings,
)

pytestmark = pytest.mark.notebook


def created(box: sandbox.Sandbox) -> dict[str, list[Any]]:
    """What exists beyond the seed: resource groups, registries, BinderHub's app, SP, passwords."""
    state = az(box)
    deployer = box.credentials("azure")["client_id"]
    apps = [a for a in state["applications"] if a["app_id"] != deployer]
    return {
        "resource_groups": [g["name"] for g in state["resource_groups"]],
        "registries": [r["name"] for r in state["registries"]],
        "applications": [a["display_name"] for a in apps],
        "service_principals": [
            s["display_name"] for s in state["service_principals"] if s["app_id"] != deployer
        ],
        "passwords": [p["key_id"] for a in apps for p in a["passwords"]],
        "role_assignments": [
            (a["role"], a["principal_type"])
            for a in state["role_assignments"]
            if a["role"] != "Owner"
        ],
    }


ONE_OF_EACH = {  # BinderHub's identity, and user pods' pull-only one (tests/test_azure_pull.py)
    "resource_groups": ["binderhub-registry"],
    "registries": ["binderhubdemo"],
    "applications": ["binderhub-sp", "binderhub-sp-pull"],
    "service_principals": ["binderhub-sp", "binderhub-sp-pull"],
    "role_assignments": [("AcrPull", "ServicePrincipal"), ("AcrPush", "ServicePrincipal")],
}


def assert_one_of_each(box: sandbox.Sandbox, *, pull: bool = True) -> None:
    """One of each; ``pull=False``: the push side's steps alone ran (no user pods' identity)."""
    found = created(box)
    assert len(found.pop("passwords")) == (2 if pull else 1)
    expected = (
        ONE_OF_EACH
        if pull
        else {
            k: [x for x in v if "pull" not in str(x) and "AcrPull" not in str(x)]
            for k, v in ONE_OF_EACH.items()
        }
    )
    assert {k: sorted(v) for k, v in found.items()} == expected


def secret(run: NotebookRun) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((run.output_dir / "secret.yaml").read_text())["registry"]
    return data


def token_status(box: sandbox.Sandbox, login: str, user: str, password: str) -> int:
    """The ACR token endpoint's answer to these credentials, with BinderHub's doubled service."""
    r = requests.get(
        f"https://{login}/oauth2/token",
        params=[("service", login), ("scope", "repository:binderhub/x:pull,push")],
        auth=(user, password),
        verify=box.ca_file,
        timeout=10,
    )
    return r.status_code


def test_default_run_writes_verified_values(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    nb = azure_nb()
    text = outputs_text(nb)
    for row in (
        "Resource group [created]",
        "Container registry [created]",
        "Application and service principal [created]",
        "Password for BinderHub [created]",
        "AcrPush on the registry [created]",
    ):
        assert row in text
    assert "BinderHub finds the pushed image" in text
    assert_one_of_each(fresh)
    state = az(fresh)
    registry = state["registries"][0]
    assert registry["admin_user_enabled"] is False
    assert registry["repositories"] == {"binderhub/binder-binderhub-registry-check": ["verify"]}
    assignment = next(a for a in state["role_assignments"] if a["role"] == "AcrPush")
    assert assignment["scope"].endswith("/registries/binderhubdemo")  # the registry alone
    config = yaml.safe_load((azure_nb.output_dir / "config.yaml").read_text())["config"]
    prefix = config["BinderHub"]["image_prefix"]
    login = prefix.split("/")[0]
    assert prefix == f"{login}/binderhub/binder-"
    # no token_url: BinderHub would send `service` twice, which ACR refuses (binderhub#1620)
    assert config["DockerRegistry"] == {"url": f"https://{login}"}
    registry_values = secret(azure_nb)
    assert registry_values["url"] == f"https://{login}"
    app = next(a for a in state["applications"] if a["display_name"] == "binderhub-sp")
    assert registry_values["username"] == app["app_id"]
    assert (azure_nb.output_dir / "secret.yaml").stat().st_mode & 0o777 == 0o600
    record = azure_nb.record()
    assert record["provider"] == "azure"
    assert set(record["created"]) >= {
        "resource_group",
        "registry",
        "application",
        "service_principal",
        "password",
        "role_assignment",
    }


def test_rerun_creates_nothing(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    azure_nb()
    before = fresh.state()
    password = secret(azure_nb)["password"]
    first_log = len(fresh.log())
    nb = azure_nb()
    assert fresh.state() == before
    text = outputs_text(nb)
    for row in ("Resource group", "Container registry", "Application and service principal"):
        assert f"{row} [reused]" in text
    assert "Password for BinderHub [reused]" in text
    assert "AcrPush on the registry [reused]" in text
    assert secret(azure_nb)["password"] == password
    writes = [
        e
        for e in fresh.log()[first_log:]
        if e["path"].startswith("/azure/")  # the registry's own log lines are the push
        and (
            e["method"] in ("PUT", "DELETE", "PATCH")
            or (e["method"] == "POST" and "/graph/" in e["path"])
        )
    ]
    assert writes == []


def test_dry_run_changes_nothing(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    before = fresh.state()
    nb = azure_nb(dry_run=True)
    text = outputs_text(nb)
    assert "Resource group [planned]: would create resource group binderhub-registry" in text
    assert "Container registry [planned]: would create registry binderhubdemo (Basic)" in text
    assert "[planned]: would create application and service principal 'binderhub-sp'" in text
    assert "Password for BinderHub [planned]" in text
    assert "AcrPush on the registry [planned]" in text
    assert "Verify the image check, push and pull [skipped]" in text
    assert fresh.state() == before
    assert not azure_nb.output_dir.exists() or not any(azure_nb.output_dir.iterdir())
    for entry in fresh.log():  # reads, sign-in, and the read-only name check only
        assert entry["method"] in ("GET", "HEAD") or entry["path"].endswith(
            ("/oauth2/v2.0/token", "/checkNameAvailability")
        ), entry


BAD_INPUTS = [
    ({"acr_name": ""}, "acr_name", "5 to 50 letters or digits"),
    ({"acr_name": "acr1"}, "acr_name", "5 to 50"),
    ({"acr_name": "binder-hub"}, "acr_name", "letters or digits"),
    ({"resource_group": ""}, "resource_group", "1 to 90"),
    ({"resource_group": "group."}, "resource_group", "not ending in '.'"),
    ({"location": "West Europe"}, "location", "region name"),
    ({"sku": "Free"}, "sku", "one of Basic, Standard, Premium"),
    ({"sp_name": "it's"}, "sp_name", "letters, digits"),
    ({"project": "Binder"}, "project", "lowercase"),
    ({"prefix": "Binder-"}, "prefix", "lowercase"),
    ({"subscription_id": "my-subscription"}, "subscription_id", "GUID"),
    ({"secret_expiry_days": 0}, "secret_expiry_days", "from 1 to 730"),
    ({"propagation_minutes": 61}, "propagation_minutes", "from 0 to 60"),
    ({"output_dir": ""}, "output_dir", "directory path"),
    ({"rotate": True, "teardown": True}, "rotate", "cannot be combined with teardown"),
]
#: More broken rules, checked in-process (the notebook runs above prove the wiring).
MORE_BAD_INPUTS = [
    ({"acr_name": "a" * 51}, "acr_name", "5 to 50"),
    ({"resource_group": "a/b"}, "resource_group", "letters, digits"),
    ({"resource_group": "g" * 91}, "resource_group", "1 to 90"),
    ({"location": "west-europe"}, "location", "region name"),
    ({"sku": "basic"}, "sku", "one of Basic"),
    ({"sp_name": ""}, "sp_name", "1 to 120"),
    ({"sp_name": "-sp"}, "sp_name", "starting with a letter or digit"),
    ({"project": "a/b"}, "project", "no '/'"),
    ({"project": "a" * 65}, "project", "at most 64"),
    ({"project": "bh_test"}, "project", "no '_'"),  # BinderHub would use bh-test
    ({"prefix": "team/binder-"}, "prefix", "no '/'"),
    ({"secret_expiry_days": 731}, "secret_expiry_days", "from 1 to 730"),
    ({"secret_expiry_days": "365"}, "secret_expiry_days", "whole number"),
    ({"secret_expiry_days": True}, "secret_expiry_days", "whole number"),
    ({"propagation_minutes": -1}, "propagation_minutes", "from 0 to 60"),
    ({"propagation_minutes": 1.5}, "propagation_minutes", "whole number"),
    ({"device_code": "no"}, "device_code", "True or False"),
    ({"dry_run": 1}, "dry_run", "True or False"),
    ({"sandbox": "False"}, "sandbox", "True or False"),
]


@pytest.mark.parametrize(
    ("params", "name", "rule"),
    BAD_INPUTS + MORE_BAD_INPUTS,
    ids=[f"{p}"[:40] for p, _, _ in BAD_INPUTS + MORE_BAD_INPUTS],
)
def test_validate_names_the_parameter_and_its_rule(
    params: dict[str, Any], name: str, rule: str
) -> None:
    with pytest.raises(InvalidParameter) as err:
        azure.validate(**(AZURE_DEFAULTS | params))
    assert err.value.name == name
    assert rule in str(err.value) and "\n" not in str(err.value)


def test_defaults_match_the_notebook_and_validate() -> None:
    # AZURE_DEFAULTS is the notebook's parameters cell: it has every parameter, in order
    assert [p.name for p in azure.PARAMETERS] == list(AZURE_DEFAULTS)
    checked = azure.validate(**(AZURE_DEFAULTS | {"dry_run": True}))  # a dry run makes no directory
    assert checked.output_dir == Path("build/03-azure-container-registry")


@pytest.mark.parametrize(
    ("params", "name", "rule"), BAD_INPUTS, ids=[f"{p}"[:40] for p, _, _ in BAD_INPUTS]
)
def test_bad_input_fails_before_any_call(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox, params: dict[str, Any], name: str, rule: str
) -> None:
    assert_fails_before_any_call(azure_nb, fresh, params, name, rule)


@pytest.mark.parametrize(
    "fault",
    [
        {"method": "PUT", "path": "(?i)/resourcegroups/[^/]+$", "status": 429, "retry_after": 1},
        {"method": "GET", "path": "/registries/binderhubdemo$", "status": 503, "times": 2},
        {"method": "POST", "path": "/graph/v1.0/servicePrincipals$", "drop": True, "after": True},
        {"method": "POST", "path": "/addPassword$", "drop": True, "after": True},
        {"method": "GET", "path": "^/oauth2/token$", "status": 502},
    ],
    ids=["429-retry-after", "503-twice", "sp-answer-lost", "password-answer-lost", "realm-502"],
)
def test_faults_are_retried_without_duplicates(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox, fault: dict[str, Any]
) -> None:
    fresh.add_faults(fault)
    nb = azure_nb()
    assert "BinderHub finds the pushed image" in outputs_text(nb)
    hits = [e for e in fresh.log() if e["status"] in (fault.get("status"), "dropped")]
    assert hits, "the fault was never injected"
    if fault["path"] == "/addPassword$":  # the lost password was removed, the new one kept
        assert_one_of_each(fresh)
        assert "removed 1 whose secret was lost" in outputs_text(nb)
    else:
        assert_one_of_each(fresh)


@pytest.mark.parametrize(
    ("method", "path", "step"),
    [
        ("PUT", "(?i)/resourcegroups/[^/]+$", "resource group"),  # ARM: azure-core's RetryPolicy
        ("POST", "/graph/v1.0/applications$", "principal"),  # Graph: kiota's RetryHandler
    ],
)
def test_a_fault_that_lasts_is_retried_by_the_step_runner_alone(
    fresh: sandbox.Sandbox,
    tmp_path: Path,
    quick_waits: list[float],
    method: str,
    path: str,
    step: str,
) -> None:
    """One retrier: the step runner's. azure-core's RetryPolicy and kiota's RetryHandler would
    each retry a 503 three times before the runner retried the step: 4 requests per attempt."""
    import asyncio

    p = azure.validate(AZURE_DEFAULTS, output_dir=str(tmp_path / "values"), sandbox=True)
    run = Runner(attempts=3)
    fresh.add_faults({"method": method, "path": path, "status": 503, "times": 99})

    async def steps() -> None:
        conn = run.step("sign in", azure.sign_in, p)
        run.step("subscription", azure.select_subscription, conn)
        run.step("resource group", azure.ensure_resource_group, conn)
        run.step("registry", azure.ensure_registry, conn)
        await run.astep("principal", azure.ensure_service_principal, conn)

    with pytest.raises(TransientCloudError, match="503"):
        asyncio.run(steps())
    assert run.checklist.rows[-1].title == step
    hits = [e for e in fresh.log() if e["method"] == method and e["status"] == 503]
    assert len(hits) == 3  # one request per attempt of the runner's


def test_new_principal_not_found_three_times(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    settings(fresh, "azure", principal_not_found=3)
    nb = azure_nb()
    assert "after 4 attempts: the new service principal was replicating" in outputs_text(nb)
    assert_one_of_each(fresh)
    puts = [e for e in fresh.log() if e["method"] == "PUT" and "roleAssignments" in e["path"]]
    assert [e["status"] for e in puts] == [400, 400, 400, 201] * 2  # BinderHub's, user pods'


def test_registry_creation_polled_until_ready(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    settings(fresh, "azure", registry_polls=4)
    nb = azure_nb()
    assert "Container registry [created]" in outputs_text(nb)
    polls = [e for e in fresh.log() if "/operationStatuses/" in e["path"]]
    assert len(polls) == 5  # four InProgress, then Succeeded
    assert az(fresh)["registries"][0]["provisioning_state"] == "Succeeded"


def test_crash_after_service_principal_then_rerun(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    denied = {
        "error": {
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
        }
    }
    fresh.add_faults({"method": "POST", "path": "/addPassword$", "status": 403, "body": denied})
    with pytest.raises(PapermillExecutionError) as err:
        azure_nb()
    assert err.value.ename == "PermissionDenied"
    assert "Application Developer" in err.value.evalue  # says who may do it
    half = created(fresh)
    assert half["service_principals"] == ["binderhub-sp"] and half["passwords"] == []
    assert half["role_assignments"] == []
    assert set(azure_nb.record()["created"]) >= {"application", "service_principal"}
    nb = azure_nb()
    assert "Application and service principal [reused]" in outputs_text(nb)
    assert_one_of_each(fresh)  # no second application, principal or role


def test_registry_name_taken_by_another_subscription(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    before = fresh.state()
    with pytest.raises(PapermillExecutionError) as err:
        azure_nb(acr_name=TAKEN_REGISTRY)
    assert err.value.ename == "CloudError"
    assert f"registry name {TAKEN_REGISTRY!r} is taken" in err.value.evalue
    assert "choose another acr_name" in err.value.evalue
    assert fresh.state() == before  # checked before the resource group was created


def test_several_subscriptions_listed_then_chosen(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    settings(fresh, "azure", extra_subscription=True)
    seeded = fresh.credentials("azure")["subscription_id"]
    with pytest.raises(PapermillExecutionError) as err:
        azure_nb(dry_run=True)
    assert err.value.ename == "InvalidParameter"
    assert err.value.evalue.startswith("parameter 'subscription_id': is needed")
    assert seeded in err.value.evalue and "second subscription" in err.value.evalue
    nb = azure_nb(dry_run=True, subscription_id=seeded)
    assert f"({seeded}), as given" in outputs_text(nb)


def test_rotate_replaces_the_password(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    azure_nb()
    old = secret(azure_nb)
    old_key = azure_nb.record()["created"]["password"]["key_id"]
    login = old["url"].removeprefix("https://")
    nb = azure_nb(rotate=True)
    text = outputs_text(nb)
    assert "Password for BinderHub [created]" in text
    assert "the old password is removed once this one verifies" in text
    assert "Remove the replaced credential [deleted]" in text
    new = secret(azure_nb)
    assert new["username"] == old["username"] and new["password"] != old["password"]
    record = azure_nb.record()["created"]
    assert sorted(created(fresh)["passwords"]) == sorted(
        [record["password"]["key_id"], record["pull_password"]["key_id"]]
    )
    assert old_key not in created(fresh)["passwords"]
    assert token_status(fresh, login, new["username"], new["password"]) == 200
    assert token_status(fresh, login, old["username"], old["password"]) == 401  # cannot push


def test_teardown_leaves_nothing_behind(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    seeded = fresh.state()
    azure_nb()
    login = secret(azure_nb)["url"].removeprefix("https://")
    nb = azure_nb(teardown=True)
    text = outputs_text(nb)
    assert "Delete what this notebook created [deleted]" in text
    assert "Resource group [skipped]" in text
    assert fresh.state() == seeded
    assert not (azure_nb.output_dir / "secret.yaml").exists()
    host, port = login.split(":")
    with pytest.raises(OSError):  # the registry is gone, its endpoint too
        socket.create_connection((host, int(port)), timeout=1).close()
    nb = azure_nb(teardown=True)  # twice is fine: nothing left to delete
    assert "nothing recorded as created by this notebook" in outputs_text(nb)
    assert fresh.state() == seeded


def test_teardown_keeps_what_it_found(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    creds = fresh.credentials("azure")
    token = deployer_token(fresh)
    requests.put(
        f"{fresh.url}/azure/management/subscriptions/{creds['subscription_id']}"
        "/resourcegroups/existing-group",
        params={"api-version": "2025-04-01"},
        json={"location": "northeurope"},
        headers={"Authorization": f"Bearer {token}"},
        verify=fresh.ca_file,
        timeout=10,
    ).raise_for_status()
    nb = azure_nb(resource_group="existing-group")
    assert "Resource group [reused]: resource group existing-group in northeurope" in outputs_text(
        nb
    )
    azure_nb(resource_group="existing-group", teardown=True)
    left = created(fresh)
    assert left["resource_groups"] == ["existing-group"]  # found, so kept
    assert left["registries"] == [] and left["applications"] == []
    assert left["role_assignments"] == []


def test_no_secret_in_outputs_logs_or_files(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    azure_nb()
    issued = secret(azure_nb)["password"]
    seeded = fresh.credentials("azure")["client_secret"]
    places = {
        "papermill output notebook": azure_nb.last_output(),
        "sandbox request log": json.dumps(fresh.log()),
        "sandbox state": json.dumps(fresh.state()),
        "sandbox process log": (fresh.directory / "sandbox.log").read_text(),
        "config.yaml": (azure_nb.output_dir / "config.yaml").read_text(),
        "record": (azure_nb.output_dir / "binderhub-registry.json").read_text(),
        "stored notebook": (NOTEBOOKS / "03-azure-container-registry.ipynb").read_text(),
    }
    for where, text in places.items():
        for value in (issued, seeded):
            assert value not in text, f"a secret leaked into the {where}"
    assert issued in (azure_nb.output_dir / "secret.yaml").read_text()
    assert (azure_nb.output_dir / "secret.yaml").stat().st_mode & 0o777 == 0o600


def test_wrong_secret_is_a_clear_authentication_error(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sandbox never reads AZURE_CLIENT_SECRET (a real one must not reach it): a wrong
    # secret is rehearsed with the sandbox-only variable
    monkeypatch.setenv("AZURE_CLIENT_ID", fresh.credentials("azure")["client_id"])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "a-real-looking-secret")
    monkeypatch.setenv(azure.SANDBOX_SECRET_VARIABLE, "not-the-secret")
    with pytest.raises(PapermillExecutionError) as err:
        azure_nb()
    assert err.value.ename == "AuthenticationFailed"
    assert f"with {azure.SANDBOX_SECRET_VARIABLE}" in err.value.evalue
    assert "AADSTS7000215" in err.value.evalue
    assert "not-the-secret" not in azure_nb.last_output()
    assert created(fresh)["applications"] == []


def test_real_mode_without_credentials_fails_at_sign_in(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    # the kernel inherits the loopback variables: the managed identity probe goes to 127.0.0.1:9
    assert os.environ["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:")
    started = time.monotonic()
    with pytest.raises(PapermillExecutionError) as err:
        azure_nb(sandbox=False)
    assert time.monotonic() - started < 60
    assert err.value.ename == "MissingCredentials"
    message = err.value.evalue
    assert "\n" not in message
    assert message.startswith("no Azure sign-in worked (tried ")
    assert "run `az login`" in message and "device_code = True" in message
    assert "127.0.0.1" in message  # where the managed identity probe went
    assert fresh.log() == []  # nothing reached the sandbox either


def test_credential_probes_stay_on_loopback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In-process: every connection DefaultAzureCredential opens is to loopback, never IMDS."""
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no az, azd or pwsh to spawn: quick and offline
    seen = loopback_connections(monkeypatch)
    p = azure.validate(AZURE_DEFAULTS, output_dir=str(tmp_path / "values"), sandbox=False)
    started = time.monotonic()
    with pytest.raises(MissingCredentials):
        azure.sign_in(p)
    assert time.monotonic() - started < 30
    assert seen, "the managed identity credential should have probed its (loopback) endpoint"
    hosts = {address[0] for address in seen}
    assert hosts <= {"127.0.0.1", "::1"}, hosts
    assert "169.254.169.254" not in hosts


def test_fresh_credentials_get_time_to_propagate(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    """On Azure a just-made password may fail at first: verification retries, then reports."""
    azure_nb()
    values = load_values(azure_nb.output_dir / "config.yaml", azure_nb.output_dir / "secret.yaml")
    wrong = dataclasses.replace(values, password=Secret("not-propagated-yet"))
    files = ValuesFiles(
        azure_nb.output_dir / "config.yaml", azure_nb.output_dir / "secret.yaml", wrong
    )
    conn = types.SimpleNamespace(
        fresh=True,
        params=types.SimpleNamespace(propagation_minutes=0.01),
        propagation=0.6,
        propagation_poll=0.1,
        ca_file=fresh.ca_file,
        HINTS=azure.AzureConnection.HINTS,
    )
    before = len(fresh.log())
    with pytest.raises(VerificationFailed) as err:
        azure.AzureConnection.verify(conn, files)  # type: ignore[arg-type]
    assert "refused user" in err.value.diagnosis
    assert "may still be propagating" in err.value.diagnosis
    assert "rerun this notebook later" in err.value.diagnosis
    refused = [e for e in fresh.log()[before:] if "/manifests/" in e["path"] and e["status"] == 401]
    assert len(refused) > 1  # tried again while it might still be propagating
    conn.fresh = False  # nothing new: one attempt, as verify_step
    before = len(fresh.log())
    with pytest.raises(VerificationFailed):
        azure.AzureConnection.verify(conn, files)  # type: ignore[arg-type]
    assert len([e for e in fresh.log()[before:] if e["status"] == 401]) == 1


def test_a_slow_role_is_waited_for_with_progress(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    """A new role applies late (Azure: up to 10 minutes); a new application replicates late."""
    settings(fresh, "azure", role_propagation_seconds=2, application_not_found=2)
    nb = azure_nb()
    text = outputs_text(nb)
    assert "BinderHub finds the pushed image" in text
    assert_one_of_each(fresh)
    posts = [e for e in fresh.log() if e["method"] == "POST" and e["path"].endswith("Principals")]
    assert [e["status"] for e in posts] == [400, 400, 201] * 2  # NoBackingApplicationObject twice
    manifests = [e for e in fresh.log() if "/manifests/" in e["path"] and e["status"] == 401]
    assert manifests  # refused while the role propagated, then verified


def test_giving_up_on_propagation_says_rerun(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    settings(fresh, "azure", role_propagation_seconds=600)
    with pytest.raises(PapermillExecutionError) as err:
        azure_nb(propagation_minutes=0)
    assert err.value.ename == "VerificationFailed"
    assert "may still be propagating" in err.value.evalue
    assert "rerun this notebook later" in err.value.evalue
    assert "password is wrong" not in err.value.evalue


def test_an_abac_registry_gets_the_role_that_works_there(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    """A reused registry in ABAC mode: AcrPush would grant nothing, Repository Writer pushes."""
    settings(fresh, "azure", default_role_assignment_mode="AbacRepositoryPermissions")
    # made before, by someone else, in ABAC mode
    creds = fresh.credentials("azure")
    token = deployer_token(fresh)
    base = f"{fresh.url}/azure/management/subscriptions/{creds['subscription_id']}"
    headers = {"Authorization": f"Bearer {token}"}
    group = f"{base}/resourcegroups/binderhub-registry?api-version=2025-04-01"
    requests.put(
        group, json={"location": "westeurope"}, headers=headers, verify=fresh.ca_file, timeout=10
    ).raise_for_status()
    registry = (
        f"{base}/resourceGroups/binderhub-registry/providers/Microsoft.ContainerRegistry/"
        "registries/binderhubdemo?api-version=2025-11-01"
    )
    requests.put(
        registry,
        json={"location": "westeurope", "sku": {"name": "Basic"}},
        headers=headers,
        verify=fresh.ca_file,
        timeout=10,
    ).raise_for_status()
    nb = azure_nb()
    text = outputs_text(nb)
    assert "ABAC mode" in text and "BinderHub finds the pushed image" in text
    roles = [a["role"] for a in az(fresh)["role_assignments"] if a["role"] != "Owner"]
    assert sorted(roles) == [
        "Container Registry Repository Reader",  # user pods' (tests/test_azure_pull.py)
        "Container Registry Repository Writer",
    ]


# --- speed: what a run loads, asks for and sends ---------------------------
STEPS_IN_A_PROCESS = """
import asyncio, sys
from binderhub_registry import Runner
from binderhub_registry.providers import azure
from binderhub_registry.providers.azure import auth

asked = []
seeded = auth._sandbox_credential


class Counting:
    def __init__(self, credential):
        self.credential = credential

    def get_token(self, *scopes, **kwargs):
        asked.append(scopes)
        return self.credential.get_token(*scopes, **kwargs)


def counted(p):
    credential, endpoints, source = seeded(p)
    return Counting(credential), endpoints, source


auth._sandbox_credential = counted
p = azure.validate(AZURE_DEFAULTS, output_dir=sys.argv[1])
run = Runner()


async def steps():
    conn = run.step("sign in", azure.sign_in, p)
    for step in (azure.select_subscription, azure.ensure_resource_group, azure.ensure_registry):
        run.step(step.__name__, step, conn)
    await run.astep("principal", azure.ensure_service_principal, conn)
    await run.astep("password", azure.ensure_password, conn)
    run.step("role", azure.ensure_role_assignment, conn)


asyncio.run(steps())
models = [m for m in sys.modules if m.startswith("msgraph.generated.models.")]
print(len(models), sorted(set(asked)), len(asked), sep="|")
"""


def test_a_run_loads_few_graph_models_and_asks_for_two_tokens(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """msgraph-sdk's Application would load ~1,200 generated modules on first use (1.1-1.7 s):
    Graph's answers are read into a small model instead. And each token is asked for once:
    with ``az login`` every ask runs ``az account get-access-token``."""
    import subprocess
    import sys

    script = f"AZURE_DEFAULTS = {AZURE_DEFAULTS!r}\n{STEPS_IN_A_PROCESS}"
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "values")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    models, scopes, asks = done.stdout.strip().splitlines()[-1].split("|")
    assert int(models) < 50  # the request bodies' models and their bases, not ~1,200
    assert scopes == str(sorted({(azure.ARM_SCOPE,), (azure.GRAPH_SCOPE,)}))
    assert int(asks) == 2  # once each, not once per ARM client and per Graph request
    assert_one_of_each(fresh, pull=False)


def test_kept_tokens_are_asked_for_again_near_expiry_and_for_claims() -> None:
    from azure.core.credentials import AccessToken

    asked: list[dict[str, Any]] = []
    lifetime = [3600]

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            asked.append(kwargs)
            return AccessToken(f"token{len(asked)}", int(time.time()) + lifetime[0])

    kept = auth.KeptTokens(Credential())  # type: ignore[arg-type]
    assert kept.get_token(azure.ARM_SCOPE).token == "token1"
    assert kept.get_token(azure.ARM_SCOPE).token == "token1"
    assert kept.get_token(azure.GRAPH_SCOPE, enable_cae=True).token == "token2"
    assert kept.get_token(azure.GRAPH_SCOPE).token == "token3"  # CAE or not: two tokens
    assert kept.get_token(azure.ARM_SCOPE, claims='{"access_token": {}}').token == "token4"
    assert asked[-1]["claims"] == '{"access_token": {}}'  # a CAE challenge: always asked
    assert kept.get_token(azure.ARM_SCOPE).token == "token1"
    lifetime[0] = 60  # a token within five minutes of its expiry is renewed
    assert kept.get_token(azure.ARM_SCOPE, tenant_id="other").token == "token5"
    assert kept.get_token(azure.ARM_SCOPE, tenant_id="other").token == "token6"
    assert len(asked) == 6


def test_a_run_checks_the_name_once_and_reads_the_passwords_once(
    azure_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    azure_nb()
    log = fresh.log()
    assert len([e for e in log if e["path"].endswith("/checkNameAvailability")]) == 1
    reads = [e for e in log if e["method"] == "GET" and "/graph/v1.0/applications/" in e["path"]]
    assert len(reads) == 2  # before adding each password (BinderHub's, user pods'), then none
    polls = [e for e in log if "/operationStatuses/" in e["path"]]
    assert len(polls) == 2  # InProgress, then Succeeded: no seconds waited in the sandbox
