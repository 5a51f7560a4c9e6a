"""Azure as it really is: the fake against its evidence, and the provider.

Each test names the evidence the fake follows (the sources are tabled in the
``sandbox/azure`` modules); the vendored API examples are in ``tests/data/azure``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import Registry, RegistryProperties, Sku

with warnings.catch_warnings():  # msgraph-sdk warns about its own deprecated classes
    warnings.simplefilter("ignore", DeprecationWarning)
    from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
        AddPasswordPostRequestBody,
    )
    from msgraph.generated.models.application import Application
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.password_credential import PasswordCredential
    from msgraph.generated.models.service_principal import ServicePrincipal

from binderhub_registry import Secret, VerificationFailed
from binderhub_registry.binderhub import RegistryValues
from binderhub_registry.providers import azure
from binderhub_registry.providers.azure import auth, connection, errors
from binderhub_registry.sandbox.azure import ACR_PUSH, SEED_CLIENT_ID
from binderhub_registry.sandbox.azure.models import CONTRIBUTOR, REPOSITORY_WRITER
from binderhub_registry.verify import verify

from .helpers import (
    AZURE_DEFAULTS,
    Tenant,
    assign_push,
    make_principal,
    make_registry,
    settings,
)

DATA = Path(__file__).parent / "data" / "azure"
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
]


def example(name: str) -> dict[str, Any]:
    """A vendored azure-rest-api-specs example."""
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def assign(t: Tenant, scope: str, sp_id: str, role: str, name: str) -> Any:
    definition = f"/subscriptions/{t.sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    params = RoleAssignmentCreateParameters(
        role_definition_id=definition, principal_id=sp_id, principal_type="ServicePrincipal"
    )
    return t.authorization().role_assignments.create(scope, name, params)


def granted(t: Tenant, login: str, user: str, password: str) -> list[str]:
    """What the registry's token endpoint grants these credentials on one repository."""
    r = requests.get(
        f"https://{login}/oauth2/token",
        params=[("service", login), ("scope", "repository:binderhub/x:pull,push")],
        auth=(user, password),
        verify=t.box.ca_file,
        timeout=10,
    )
    r.raise_for_status()
    payload = r.json()["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    actions: list[str] = claims["access"][0]["actions"]
    return actions


def acr_values(login: str, app_id: str, secret: str, **docker_registry: str) -> RegistryValues:
    """What the provider emits (no token_url), or with ``docker_registry`` overridden."""
    return RegistryValues(
        image_prefix=f"{login}/binderhub/binder-",
        username=app_id,
        password=Secret(secret),
        registry_url=f"https://{login}",
        docker_registry={"url": f"https://{login}"} | docker_registry,
    )


@pytest.fixture
def pusher(tenant: Tenant) -> tuple[Any, Any, Any, str]:
    """A registry and a service principal with AcrPush on it: (registry, app, sp, secret)."""
    settings(tenant.box, "azure", principal_not_found=0)
    registry = make_registry(tenant)
    app, sp, secret = asyncio.run(make_principal(tenant))
    assign_push(tenant, registry.id, sp.id, "4c01c3c7-2dce-5fbe-a30f-0e74eda8695a")
    return registry, app, sp, secret


# --- the values BinderHub can use, and ACR's challenges --------------------------------
def test_values_without_token_url_verify_with_basic_then_bearer(
    tenant: Tenant,
    pusher: tuple[Any, Any, Any, str],
) -> None:
    registry, app, _, secret = pusher
    login = registry.properties.login_server
    before = len(tenant.box.log())
    report = verify(acr_values(login, app.app_id, secret), ca_bundle=tenant.box.ca_file)
    assert report.ok
    checks = {c.name: c.detail for c in report.checks}
    assert checks["BinderHub's image check"].startswith("via Basic credentials (no token_url)")
    assert checks["BinderHub finds the pushed image"].startswith("found")
    log = tenant.box.log()[before:]
    # BinderHub's check: Basic straight on the manifest (no token request before it)
    first = next(e for e in log if "/manifests/" in e["path"])
    assert first["method"] == "GET" and first["status"] == 404
    # the push: docker's Bearer path, from the /v2/ challenge to the realm
    assert any(e["path"] == "/v2/" and e["status"] == 401 for e in log)
    assert any(e["path"] == "/oauth2/token" and e["status"] == 200 for e in log)


def test_the_old_token_url_gets_400_from_acr(
    tenant: Tenant,
    pusher: tuple[Any, Any, Any, str],
) -> None:
    """binderhub issue 1620: BinderHub appends service=container_registry; ACR answers 400."""
    registry, app, _, secret = pusher
    login = registry.properties.login_server
    old = acr_values(
        login, app.app_id, secret, token_url=f"https://{login}/oauth2/token?service={login}"
    )
    with pytest.raises(VerificationFailed) as err:
        verify(old, ca_bundle=tenant.box.ca_file)
    assert err.value.check == "BinderHub's image check"
    assert "answered HTTP 400" in err.value.diagnosis
    assert "remove DockerRegistry.token_url" in err.value.diagnosis


def test_a_wrong_password_is_named_not_a_missing_token_url(
    tenant: Tenant,
    pusher: tuple[Any, Any, Any, str],
) -> None:
    """ACR answers a wrong Basic password with `Basic realm="Azure Container Registry"`."""
    registry, app, _, _ = pusher
    login = registry.properties.login_server
    with pytest.raises(VerificationFailed) as err:
        verify(acr_values(login, app.app_id, "wrong"), ca_bundle=tenant.box.ca_file)
    assert f"refused user {app.app_id!r}" in err.value.diagnosis
    assert "token_url" in err.value.diagnosis and "set DockerRegistry.token_url" not in (
        err.value.diagnosis
    )


def test_without_a_role_binderhub_follows_the_bearer_challenge(tenant: Tenant) -> None:
    """Valid Basic credentials without pull: 401 with a Bearer challenge (realm, service, scope)."""
    settings(tenant.box, "azure", principal_not_found=0)
    registry = make_registry(tenant)
    app, _, secret = asyncio.run(make_principal(tenant))
    login = registry.properties.login_server
    before = len(tenant.box.log())
    with pytest.raises(VerificationFailed) as err:
        verify(
            acr_values(login, app.app_id, secret),
            ca_bundle=tenant.box.ca_file,
            hints=azure.AzureConnection.HINTS,
        )
    assert err.value.check == "BinderHub's image check"
    assert "AcrPush" in err.value.diagnosis
    # BinderHub's discovery path: Basic (401), the realm with the challenge's scope, then Bearer
    paths = [(e["path"], e["status"]) for e in tenant.box.log()[before:]]
    manifest = "/v2/binderhub/binder-binderhub-registry-check/manifests/verify"
    assert paths[:3] == [(manifest, 401), ("/oauth2/token", 200), (manifest, 401)]


# --- Graph replication after an application is created ----------------------------------------
def test_graph_new_application_replicates(tenant: Tenant) -> None:
    settings(tenant.box, "azure", application_not_found=2)

    async def scenario() -> None:
        graph = tenant.graph()
        app = await graph.applications.post(Application(display_name="replicating"))
        with pytest.raises(ODataError) as err:
            await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))
        assert err.value.response_status_code == 400
        assert err.value.error.code == "Request_BadRequest"
        assert [d.code for d in err.value.error.details] == ["NoBackingApplicationObject"]
        assert "does not reference a valid application object" in err.value.error.message
        assert errors.not_replicated(err.value)
        with pytest.raises(ODataError) as missing:
            await graph.applications.by_application_id(app.id).get()
        assert missing.value.response_status_code == 404 and errors.not_replicated(missing.value)
        assert await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))

    asyncio.run(scenario())


# --- role assignment mode ------------------------------------------------------------------------
def test_abac_registry_ignores_acr_push_and_honours_repository_writer(
    tenant: Tenant,
) -> None:
    settings(tenant.box, "azure", principal_not_found=0)
    tenant.resources().resource_groups.create_or_update("rg1", {"location": "westeurope"})
    created = (
        tenant.acr()
        .registries.begin_create(
            "rg1",
            "abacregistry1",
            Registry(
                location="westeurope",
                sku=Sku(name="Standard"),
                properties=RegistryProperties(role_assignment_mode="AbacRepositoryPermissions"),
            ),
        )
        .result()
    )
    assert created.properties.role_assignment_mode == "AbacRepositoryPermissions"
    assert connection.registry_info(created).push_role == azure.REPOSITORY_WRITER_ROLE
    login = created.properties.login_server
    app, sp, secret = asyncio.run(make_principal(tenant))
    assign(tenant, created.id, sp.id, ACR_PUSH, "00000000-0000-4000-8000-000000000001")
    assert granted(tenant, login, app.app_id, secret) == []  # AcrPush: not honoured
    assign(tenant, created.id, sp.id, REPOSITORY_WRITER, "00000000-0000-4000-8000-000000000002")
    assert granted(tenant, login, app.app_id, secret) == ["pull", "push"]
    # a registry created without the property: legacy (today's default), AcrPush works
    legacy = make_registry(tenant, "legacyregistry1")
    assert legacy.properties.role_assignment_mode == "LegacyRegistryPermissions"
    assert connection.registry_info(legacy).push_role == azure.ACR_PUSH_ROLE


def test_registry_body_matches_the_spec_example(tenant: Tenant) -> None:
    """Registries_Create (RegistryCreateAbac.json, api-version 2025-11-01): keys and mode."""
    spec = example("RegistryCreateAbac.json")
    tenant.resources().resource_groups.create_or_update("myResourceGroup", {"location": "westus"})
    token = tenant.credential.get_token("https://management.azure.com/.default").token
    p = spec["parameters"]
    url = (
        f"{tenant.box.url}/azure/management/subscriptions/{tenant.sub}/resourceGroups/"
        f"{p['resourceGroupName']}/providers/Microsoft.ContainerRegistry/registries/"
        f"{p['registryName']}?api-version={p['api-version']}"
    )
    r = requests.put(
        url,
        json=p["registry"],
        headers={"Authorization": f"Bearer {token}"},
        verify=tenant.box.ca_file,
        timeout=30,
    )
    assert str(r.status_code) in spec["responses"]
    expected = spec["responses"][str(r.status_code)]["body"]
    body = r.json()
    assert set(body) == set(expected)
    assert set(body["properties"]) <= set(expected["properties"])  # nothing the API lacks
    for key in ("roleAssignmentMode", "provisioningState", "loginServer", "adminUserEnabled"):
        assert key in body["properties"]
    assert body["properties"]["roleAssignmentMode"] == "AbacRepositoryPermissions"
    assert body["sku"] == expected["sku"] and body["type"] == expected["type"]


# --- propagation ---------------------------------------------------------------------------------
def test_a_new_role_takes_effect_after_the_propagation_delay(tenant: Tenant) -> None:
    settings(tenant.box, "azure", principal_not_found=0, role_propagation_seconds=1.5)
    registry = make_registry(tenant)
    app, sp, secret = asyncio.run(make_principal(tenant))
    assign_push(tenant, registry.id, sp.id, "4c01c3c7-2dce-5fbe-a30f-0e74eda8695a")
    login = registry.properties.login_server
    assert granted(tenant, login, app.app_id, secret) == []
    time.sleep(1.6)
    assert granted(tenant, login, app.app_id, secret) == ["pull", "push"]


# --- subscription registration, who may assign roles, password policy, delete as LRO ----------
def test_missing_subscription_registration_is_registered_and_shown(
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """azure-mgmt-core registers the namespace after a 409 and polls; the provider shows it."""
    import azure.mgmt.core.policies._base as base

    monkeypatch.setattr(base.time, "sleep", lambda seconds: None)  # it waits 10 s per poll
    shown: list[str] = []
    monkeypatch.setattr(errors, "progress", shown.append)
    settings(tenant.box, "azure", unregistered_providers=["Microsoft.ContainerRegistry"])
    tenant.resources().resource_groups.create_or_update("rg1", {"location": "westeurope"})
    before = len(tenant.box.log())
    with errors.registration_progress():
        found = tenant.acr().registries.check_name_availability(
            {"name": "freshsubscription1", "type": "Microsoft.ContainerRegistry/registries"}
        )
    assert found.name_available
    log = [(e["method"], e["path"], e["status"]) for e in tenant.box.log()[before:]]
    assert log[0][2] == 409
    assert log[1][0] == "POST" and log[1][1].endswith(
        "/providers/Microsoft.ContainerRegistry/register"
    )
    assert log[-1][2] == 200
    assert shown and "Microsoft.ContainerRegistry" in shown[0] and "not registered" in shown[0]
    assert settings(tenant.box, "azure")["unregistered_providers"] == []


def test_only_assigners_may_write_role_assignments(tenant: Tenant) -> None:
    """A Contributor may create a registry but not assign roles; the refusal names the action."""
    settings(tenant.box, "azure", principal_not_found=0)
    registry = make_registry(tenant)
    app, sp, secret = asyncio.run(make_principal(tenant, "contributor-sp"))
    assign(
        tenant,
        f"/subscriptions/{tenant.sub}",
        sp.id,
        CONTRIBUTOR,
        "00000000-0000-4000-8000-0000000000c0",
    )
    contributor = ClientSecretCredential(
        tenant.creds["tenant_id"],
        app.app_id,
        secret,
        authority=f"{tenant.box.url}/azure/login",
        disable_instance_discovery=True,
        connection_verify=tenant.box.ca_file,
    )
    client = AuthorizationManagementClient(contributor, tenant.sub, **tenant.kwargs())
    params = RoleAssignmentCreateParameters(
        role_definition_id=f"/subscriptions/{tenant.sub}/providers/Microsoft.Authorization/"
        f"roleDefinitions/{ACR_PUSH}",
        principal_id=sp.id,
        principal_type="ServicePrincipal",
    )
    with pytest.raises(HttpResponseError) as err:
        client.role_assignments.create(registry.id, "00000000-0000-4000-8000-0000000000c1", params)
    assert err.value.status_code == 403
    assert "perform action 'Microsoft.Authorization/roleAssignments/write'" in str(err.value)
    mapped = errors.from_arm(err.value)
    assert "may not do Microsoft.Authorization/roleAssignments/write on registries/" in str(mapped)
    assert str(mapped).endswith("or to rerun this notebook") and "\n" not in str(mapped)
    # what a Contributor may do: write the registry
    acr = ContainerRegistryManagementClient(contributor, tenant.sub, **tenant.kwargs())
    assert acr.registries.get("rg1", registry.name).name == registry.name


def test_a_password_longer_than_the_tenant_policy_is_refused(tenant: Tenant) -> None:
    settings(tenant.box, "azure", max_password_days=90)

    async def scenario() -> ODataError:
        graph = tenant.graph()
        app = await graph.applications.post(Application(display_name="policy"))
        item = graph.applications.by_application_id(app.id)
        end = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
        body = AddPasswordPostRequestBody(password_credential=PasswordCredential(end_date_time=end))
        with pytest.raises(ODataError) as err:
            await item.add_password.post(body)
        ok = AddPasswordPostRequestBody(
            password_credential=PasswordCredential(end_date_time=end - dt.timedelta(days=300))
        )
        assert (await item.add_password.post(ok)).secret_text
        return err.value

    refused = asyncio.run(scenario())
    assert refused.error.code == "CredentialInvalidLifetimeAsPerAppPolicy"
    assert "Credential lifetime exceeds the max value allowed" in refused.error.message
    mapped = str(errors.from_graph(refused))
    assert "secret_expiry_days" in mapped and "\n" not in mapped


def test_registry_delete_is_a_long_running_operation(tenant: Tenant) -> None:
    """Registries_Delete (RegistryDelete.json): 202 + Location under operationStatuses, polled."""
    spec = example("RegistryDelete.json")
    registry = make_registry(tenant)
    before = len(tenant.box.log())
    tenant.acr().registries.begin_delete("rg1", registry.name).result()
    log = tenant.box.log()[before:]
    delete = next(e for e in log if e["method"] == "DELETE")
    assert str(delete["status"]) in spec["responses"] and delete["status"] == 202
    expected = spec["responses"]["202"]["headers"]["Location"].split("/registries/myRegistry")[1]
    poll = next(e for e in log if e["method"] == "GET" and "/operationStatuses/" in e["path"])
    assert (
        poll["path"]
        .split(f"/registries/{registry.name}")[1]
        .startswith(expected.split("registries-")[0])
    )
    assert poll["status"] == 200
    assert tenant.box.state()["azure"]["registries"] == []


def test_sandbox_mode_never_reads_real_credentials(
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """AZURE_CLIENT_SECRET is ignored in sandbox mode; only the sandbox-only variable counts."""
    monkeypatch.setenv("AZURE_CLIENT_ID", SEED_CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "a-real-looking-secret")
    monkeypatch.delenv(azure.SANDBOX_SECRET_VARIABLE, raising=False)
    p = azure.validate(AZURE_DEFAULTS, output_dir=str(tmp_path / "values"), sandbox=True)
    _, _, source = auth._sandbox_credential(p)
    assert source == "the sandbox's seeded secret"
    monkeypatch.setenv(azure.SANDBOX_SECRET_VARIABLE, "rehearsing-a-wrong-secret")
    _, _, source = auth._sandbox_credential(p)
    assert source == azure.SANDBOX_SECRET_VARIABLE


def test_regions_known_to_the_sdk_are_accepted_and_unknown_ones_refused(
    tenant: Tenant,
) -> None:
    """Azure.Core's public region names are accepted; a misspelt one is refused as ARM does."""
    groups = tenant.resources().resource_groups
    assert groups.create_or_update("rg-ncus", {"location": "northcentralus"}).location == (
        "northcentralus"
    )
    with pytest.raises(HttpResponseError) as err:
        groups.create_or_update("rg-typo", {"location": "westeuropa"})
    assert err.value.error is not None
    assert err.value.error.code == "LocationNotAvailableForResourceGroup"
    assert "westeurope" in str(err.value)  # ARM lists the available regions
