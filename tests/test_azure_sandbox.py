"""The fake Azure: Entra ID, ARM, Graph and the ACR-like registry, driven by the real SDKs.

Each test talks to the session's sandbox through the official clients pointed
at it by endpoint only, so the SDKs raise what they would raise against Azure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import warnings
from typing import Any

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.mgmt.containerregistry.models import Registry, Sku

with warnings.catch_warnings():  # msgraph-sdk and kiota warn about their own deprecated classes
    warnings.simplefilter("ignore", DeprecationWarning)
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (  # noqa: E501
        RemovePasswordPostRequestBody,
    )
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.service_principal import ServicePrincipal

from binderhub_registry.sandbox.azure import TAKEN_REGISTRY

from .helpers import GRAPH_SCOPE, Tenant, assign_push, make_principal, make_registry, settings


# --- seed, reset, admin ---------------------------------------------------------------
def test_seeded_tenant_has_one_subscription_and_a_deployer(tenant: Tenant) -> None:
    state = tenant.box.state()["azure"]
    assert state["subscriptions"] == [tenant.sub]
    assert [a["app_id"] for a in state["applications"]] == [tenant.creds["client_id"]]
    assert [a["role"] for a in state["role_assignments"]] == ["Owner"]
    assert state["role_assignments"][0]["scope"] == f"/subscriptions/{tenant.sub}"
    assert state["registries"] == [] and state["resource_groups"] == []
    assert tenant.creds["client_secret"] not in json.dumps(tenant.box.state())
    assert settings(tenant.box, "azure") == {
        "principal_not_found": 1,
        "application_not_found": 0,
        "role_propagation_seconds": 0,
        "default_role_assignment_mode": "LegacyRegistryPermissions",
        "max_password_days": 0,
        "unregistered_providers": [],
        "registry_polls": 1,
        "extra_subscription": False,
        "aks_clusters": [],  # a new subscription has no AKS cluster
        "registry_used_bytes": 0,  # listUsages' Size: the stored blobs'
    }


def test_reset_brings_back_the_seed_and_stops_registries(tenant: Tenant) -> None:
    seeded = tenant.box.state()
    registry = make_registry(tenant)
    port = int(registry.properties.login_server.rsplit(":", 1)[1])
    settings(tenant.box, "azure", registry_polls=5)
    assert tenant.box.state() != seeded
    tenant.box.reset()
    assert tenant.box.state() == seeded
    assert settings(tenant.box, "azure")["registry_polls"] == 1
    with pytest.raises(OSError):  # the registry's front is gone with it
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_admin_settings_are_checked_and_not_logged(tenant: Tenant) -> None:
    r = requests.post(
        f"{tenant.box.url}/_sandbox/azure/settings",
        json={"no_such_knob": 1},
        headers=tenant.box.admin_headers(),
        verify=tenant.box.ca_file,
        timeout=10,
    )
    assert r.status_code == 400 and "no_such_knob" in r.json()["message"]
    settings(tenant.box, "azure", principal_not_found=2)
    assert tenant.box.log() == []


# --- Entra ID ---------------------------------------------------------------------------
def test_entra_id_issues_tokens_to_the_right_secret_only(tenant: Tenant) -> None:
    token = tenant.credential.get_token("https://management.azure.com/.default").token
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["tid"] == tenant.creds["tenant_id"]
    assert claims["appid"] == tenant.creds["client_id"]
    wrong = tenant.credential_for(tenant.creds["client_id"], "not-the-secret")
    with pytest.raises(ClientAuthenticationError) as err:
        wrong.get_token("https://management.azure.com/.default")
    assert "AADSTS7000215" in str(err.value)
    unknown = tenant.credential_for("00000000-0000-0000-0000-000000000001", "x")
    with pytest.raises(ClientAuthenticationError) as err:
        unknown.get_token("https://management.azure.com/.default")
    assert "AADSTS700016" in str(err.value)


def test_unknown_tenant_fails_discovery(tenant: Tenant) -> None:
    r = requests.get(
        f"{tenant.box.url}/azure/login/not-a-tenant/v2.0/.well-known/openid-configuration",
        verify=tenant.box.ca_file,
        timeout=10,
    )
    assert r.status_code == 400
    assert r.json()["error_description"].startswith("AADSTS90002:")


# --- ARM ---------------------------------------------------------------------------------
def test_arm_wants_a_management_token_and_an_api_version(tenant: Tenant) -> None:
    url = f"{tenant.box.url}/azure/management/subscriptions"
    r = requests.get(url, params={"api-version": "2022-12-01"}, verify=tenant.box.ca_file)
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    graph_token = tenant.credential.get_token(GRAPH_SCOPE).token  # right issuer, wrong audience
    r = requests.get(
        url,
        params={"api-version": "2022-12-01"},
        headers={"Authorization": f"Bearer {graph_token}"},
        verify=tenant.box.ca_file,
    )
    assert r.status_code == 401
    arm_token = tenant.credential.get_token("https://management.azure.com/.default").token
    r = requests.get(
        url, headers={"Authorization": f"Bearer {arm_token}"}, verify=tenant.box.ca_file
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"


def test_resource_groups_raise_what_azure_raises(tenant: Tenant) -> None:
    groups = tenant.resources().resource_groups
    assert groups.check_existence("rg1") is False
    with pytest.raises(ResourceNotFoundError) as err:
        groups.get("rg1")
    assert err.value.error is not None and err.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(HttpResponseError) as bad:
        groups.create_or_update("rg1", {"location": "atlantis"})
    assert bad.value.error is not None
    assert bad.value.error.code == "LocationNotAvailableForResourceGroup"
    created = groups.create_or_update("RG1", {"location": "westeurope"})
    assert created.id == f"/subscriptions/{tenant.sub}/resourceGroups/RG1"
    assert groups.check_existence("rg1") is True  # names are case-insensitive
    groups.begin_delete("rg1").result()
    assert groups.check_existence("rg1") is False


def test_registry_creation_is_a_long_running_operation(tenant: Tenant) -> None:
    settings(tenant.box, "azure", registry_polls=3)
    registry = make_registry(tenant)
    assert registry.properties.provisioning_state == "Succeeded"
    assert registry.properties.admin_user_enabled is False
    assert registry.properties.login_server.startswith("127.0.0.1:")
    log = tenant.box.log()
    put = next(e for e in log if e["method"] == "PUT" and "/registries/" in e["path"])
    assert put["status"] == 201
    polls = [e for e in log if "/operationStatuses/" in e["path"]]
    assert len(polls) == 4  # three InProgress, then Succeeded
    state = tenant.box.state()["azure"]["registries"]
    assert [(r["name"], r["provisioning_state"]) for r in state] == [("sandboxacr01", "Succeeded")]


def test_registry_names_are_global(tenant: Tenant) -> None:
    check = tenant.acr().registries.check_name_availability
    kind = "Microsoft.ContainerRegistry/registries"
    taken = check({"name": TAKEN_REGISTRY, "type": kind})
    assert taken.name_available is False and taken.reason == "AlreadyExists"
    assert check({"name": "freshname01", "type": kind}).name_available is True
    invalid = check({"name": "no-dashes", "type": kind})
    assert invalid.name_available is False and invalid.reason == "Invalid"
    tenant.resources().resource_groups.create_or_update("rg1", {"location": "westeurope"})
    with pytest.raises(ResourceExistsError) as err:
        tenant.acr().registries.begin_create(
            "rg1", TAKEN_REGISTRY, Registry(location="westeurope", sku=Sku(name="Basic"))
        )
    assert err.value.error is not None and err.value.error.code == "AlreadyInUse"
    with pytest.raises(ResourceNotFoundError):
        tenant.acr().registries.get("rg1", TAKEN_REGISTRY)  # someone else's: not visible


def test_role_assignments_wait_for_new_principals(tenant: Tenant) -> None:
    settings(tenant.box, "azure", principal_not_found=2)
    registry = make_registry(tenant)
    _, sp, _ = asyncio.run(make_principal(tenant))
    name = "4c01c3c7-2dce-5fbe-a30f-0e74eda8695a"
    for _ in range(2):
        with pytest.raises(HttpResponseError) as err:
            assign_push(tenant, registry.id, sp.id, name)
        assert err.value.status_code == 400
        assert err.value.error is not None and err.value.error.code == "PrincipalNotFound"
    created = assign_push(tenant, registry.id, sp.id, name)
    assert created.scope == registry.id and created.principal_type == "ServicePrincipal"
    assert assign_push(tenant, registry.id, sp.id, name).id == created.id  # same PUT: same one
    with pytest.raises(ResourceExistsError) as dup:
        assign_push(tenant, registry.id, sp.id, "5d12d4d8-3edf-4fcf-b41f-1f85fe9b97a6")
    assert dup.value.error is not None and dup.value.error.code == "RoleAssignmentExists"
    listed = list(
        tenant.authorization().role_assignments.list_for_scope(
            registry.id, filter=f"principalId eq '{sp.id}'"
        )
    )
    assert [a.id for a in listed] == [created.id]


# --- Microsoft Graph -----------------------------------------------------------------------
def test_graph_applications_principals_and_passwords(tenant: Tenant) -> None:
    async def scenario() -> None:
        graph = tenant.graph()
        app, sp, secret = await make_principal(tenant, "it's-quoted")
        found = await graph.applications.get(
            request_configuration=_filter_config(
                graph.applications, "displayName eq 'it''s-quoted'"
            )
        )
        assert found is not None and [a.id for a in found.value or []] == [app.id]
        with pytest.raises(ODataError) as dup:
            await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))
        assert dup.value.response_status_code == 409
        assert dup.value.error is not None
        assert dup.value.error.code == "Request_MultipleObjectsWithSameKeyValue"
        with pytest.raises(ODataError) as missing:
            await graph.applications.by_application_id("no-such-id").get()
        assert missing.value.response_status_code == 404
        assert missing.value.error is not None
        assert missing.value.error.code == "Request_ResourceNotFound"
        # the new principal signs in with its password, until the password is removed
        tenant.credential_for(app.app_id, secret).get_token(GRAPH_SCOPE)
        current = await graph.applications.by_application_id(app.id).get()
        assert current is not None and current.password_credentials
        key_id = current.password_credentials[0].key_id
        body = RemovePasswordPostRequestBody(key_id=key_id)
        await graph.applications.by_application_id(app.id).remove_password.post(body)
        with pytest.raises(ClientAuthenticationError):
            tenant.credential_for(app.app_id, secret).get_token(GRAPH_SCOPE)
        # deleting the application takes its service principal with it
        await graph.applications.by_application_id(app.id).delete()
        state = tenant.box.state()["azure"]
        assert sp.id not in [s["id"] for s in state["service_principals"]]

    asyncio.run(scenario())


def _filter_config(builder: Any, text: str) -> Any:
    params = builder.ApplicationsRequestBuilderGetQueryParameters(filter=text)
    return RequestConfiguration(query_parameters=params)


def test_graph_refuses_principals_without_directory_rights(tenant: Tenant) -> None:
    app, _, secret = asyncio.run(make_principal(tenant))
    token = tenant.credential_for(app.app_id, secret).get_token(GRAPH_SCOPE).token
    r = requests.get(
        f"{tenant.box.url}/azure/graph/v1.0/applications",
        headers={"Authorization": f"Bearer {token}"},
        verify=tenant.box.ca_file,
        timeout=10,
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "Authorization_RequestDenied"


# --- the ACR-like registry -------------------------------------------------------------------
def test_acr_front_authenticates_against_live_state(tenant: Tenant) -> None:
    settings(tenant.box, "azure", principal_not_found=0)
    registry = make_registry(tenant)
    login = registry.properties.login_server
    app, sp, secret = asyncio.run(make_principal(tenant))
    base = f"https://{login}"
    verify = tenant.box.ca_file

    # ACR's challenges (Azure/acr docs/AAD-OAuth.md, issues 207 and 651; jib issue 2784)
    ping = requests.get(f"{base}/v2/", verify=verify, timeout=10)
    assert ping.status_code == 401
    service = f"{registry.name.lower()}.azurecr.io"
    assert ping.headers["WWW-Authenticate"] == (
        f'Bearer realm="{base}/oauth2/token",service="{service}"'
    )
    manifest = requests.get(f"{base}/v2/binderhub/x/manifests/latest", verify=verify, timeout=10)
    assert manifest.status_code == 401
    assert manifest.headers["WWW-Authenticate"] == (
        f'Bearer realm="{base}/oauth2/token",service="{service}",'
        'scope="repository:binderhub/x:pull"'
    )
    for url in (f"{base}/v2/", f"{base}/v2/binderhub/x/manifests/latest"):
        wrong = requests.get(url, auth=(app.app_id, "wrong"), verify=verify, timeout=10)
        assert wrong.status_code == 401
        assert wrong.headers["WWW-Authenticate"] == 'Basic realm="Azure Container Registry"'
    assert requests.get(f"{base}/v2/", auth=(app.app_id, secret), verify=verify).ok

    def token(*query: tuple[str, str], password: str = secret) -> requests.Response:
        return requests.get(
            f"{base}/oauth2/token",
            params=list(query),
            auth=(app.app_id, password),
            verify=verify,
            timeout=10,
        )

    scope = ("scope", "repository:binderhub/x:pull,push,delete")
    # no role yet: a token, but for nothing
    no_role = token(("service", login), scope)
    assert no_role.ok and _access(no_role) == [[]]
    assign_push(tenant, registry.id, sp.id, "4c01c3c7-2dce-5fbe-a30f-0e74eda8695a")
    assert _access(token(("service", login), scope)) == [["pull", "push"]]  # AcrPush: no delete
    # BinderHub's token_url path sends `service` twice: ACR answers 400 (binderhub issue 1620)
    doubled = token(("service", login), scope, ("service", "container_registry"))
    assert doubled.status_code == 400
    assert token(("service", f"{registry.name}.azurecr.io"), scope).ok
    assert token(("service", "container_registry"), scope).status_code == 400
    assert token(("service", login), scope, password="wrong").status_code == 401


def _access(response: requests.Response) -> list[list[str]]:
    payload = response.json()["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return [a["actions"] for a in claims["access"]]
