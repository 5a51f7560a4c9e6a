"""The Azure fake's ARM and Graph route tables, called in-process (no sandbox, no SDK).

ARM reads its paths case-insensitively and checks the caller (401) and the ``api-version``
(400) before the path; under a subscription the subscription (404), the caller's role at
the path's scope (403) and the provider's registration (409) come before the resource,
unknown paths included. Graph checks the caller (401, 403) before the path; an unknown
object id is a 404 whatever follows it. The SDK-level tests (``test_azure_sandbox``,
``clients/test_az_routes``, the az CLI's ``make test-clients``) cover the served answers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from binderhub_registry.sandbox.app import Request, Response
from binderhub_registry.sandbox.azure.arm import ResourceManager
from binderhub_registry.sandbox.azure.cloud import AzureCloud
from binderhub_registry.sandbox.azure.graph import Graph
from binderhub_registry.sandbox.azure.models import (
    ARM_AUDIENCE,
    GRAPH_AUDIENCE,
    SEED_CLIENT_ID,
    SEED_SUBSCRIPTION,
    seed_credentials,
)

SUB = SEED_SUBSCRIPTION


@pytest.fixture
def cloud() -> AzureCloud:
    """The seeded tenant, with a deployer token for ARM (``arm``) and Graph (``graph``)."""
    made = AzureCloud(seed_credentials())
    made.tenant.tokens["arm"] = (SEED_CLIENT_ID, ARM_AUDIENCE)
    made.tenant.tokens["graph"] = (SEED_CLIENT_ID, GRAPH_AUDIENCE)
    return made


def call(
    handler: Any, method: str, rest: str, token: str = "", body: Any = None, **query: str
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of one request to ARM's or Graph's handler (``rest``: the path
    below ``/management`` or ``/graph/v1.0``)."""
    request = Request(
        method,
        f"/azure/x/{rest}",
        {k: [v] for k, v in query.items()},
        {"authorization": f"Bearer {token}", "host": "127.0.0.1:1"} if token else {},
        json.dumps(body).encode() if body is not None else b"",
        params={"rest": rest},
    )
    answer: Response = handler(request)
    return answer.status, json.loads(answer.body or b"{}")


def arm(cloud: AzureCloud, method: str, rest: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    """ARM, signed in, with an api-version unless told otherwise."""
    query = {"api-version": "2023-01-01"} | kw.pop("query", {})
    return call(ResourceManager(cloud).arm, method, rest, kw.pop("token", "arm"), **kw, **query)


def code(answer: tuple[int, dict[str, Any]]) -> tuple[int, str]:
    """(status, ARM's or Graph's error code)."""
    return answer[0], answer[1].get("error", {}).get("code", "")


def test_arm_table_reads_paths_in_any_case_and_keeps_names_as_sent(cloud: AzureCloud) -> None:
    table = ResourceManager(cloud).table
    group = f"/SUBSCRIPTIONS/{SUB}/resourcegroups/My-RG"
    path = group + "/providers/MICROSOFT.CONTAINERREGISTRY/Registries/MyReg01"
    _, params = table.find("PUT", path)
    assert params == {"sub": SUB, "group": "My-RG", "name": "MyReg01"}
    _, params = table.find("GET", "/providers/Microsoft.Authorization/roleDefinitions/x")
    assert params == {"scope": "", "role": "x"}


def test_arm_resource_group_in_any_case(cloud: AzureCloud) -> None:
    made = arm(
        cloud, "PUT", f"subscriptions/{SUB}/resourcegroups/My-RG", body={"location": "westeurope"}
    )
    assert made[0] == 201
    again = arm(cloud, "GET", f"SUBSCRIPTIONS/{SUB}/ResourceGroups/my-rg/")
    assert again == (200, made[1])


def test_arm_checks_the_caller_then_the_version_before_the_path(cloud: AzureCloud) -> None:
    assert code(arm(cloud, "GET", "no/such/path", token="")) == (401, "InvalidAuthenticationToken")
    assert code(arm(cloud, "GET", "no/such/path", query={"api-version": ""})) == (
        400,
        "MissingApiVersionParameter",
    )
    assert code(arm(cloud, "GET", "no/such/path")) == (404, "InvalidResourceType")
    assert code(arm(cloud, "POST", "subscriptions")) == (404, "InvalidResourceType")
    # the metadata endpoint is the one anonymous path
    assert arm(cloud, "GET", "metadata/endpoints", token="")[0] == 200


def test_arm_subscription_checks_come_before_the_resource(cloud: AzureCloud) -> None:
    assert code(arm(cloud, "GET", "subscriptions/nope/resourcegroups/rg")) == (
        404,
        "SubscriptionNotFound",
    )
    assert code(arm(cloud, "GET", f"subscriptions/{SUB}/no/such/thing")) == (
        404,
        "InvalidResourceType",
    )
    # checkNameAvailability is a POST; another method is no route
    check = f"subscriptions/{SUB}/providers/Microsoft.ContainerRegistry/checkNameAvailability"
    assert code(arm(cloud, "GET", check)) == (404, "InvalidResourceType")
    assert arm(cloud, "POST", check, body={"name": "x", "type": "nope"})[0] == 400


def test_arm_unregistered_provider_answers_409_but_registers(cloud: AzureCloud) -> None:
    cloud.tenant.settings["unregistered_providers"] = ["Microsoft.ContainerRegistry"]
    registry = f"subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ContainerRegistry"
    assert code(arm(cloud, "GET", registry + "/registries/abcde")) == (
        409,
        "MissingSubscriptionRegistration",
    )
    assert code(arm(cloud, "GET", registry + "/unknownThing")) == (
        409,
        "MissingSubscriptionRegistration",
    )
    provider = f"subscriptions/{SUB}/providers/microsoft.containerregistry"
    assert arm(cloud, "GET", provider)[1]["registrationState"] == "NotRegistered"
    assert code(arm(cloud, "PUT", provider)) == (405, "MethodNotAllowed")
    assert arm(cloud, "POST", provider + "/register")[1]["registrationState"] == "Registering"
    assert arm(cloud, "GET", provider)[1]["registrationState"] == "Registered"


def test_arm_role_assignments_at_any_scope(cloud: AzureCloud) -> None:
    assignments = "providers/Microsoft.Authorization/roleAssignments"
    # the deployer has no role at the tenant's root: the path is read, the caller refused
    assert code(arm(cloud, "GET", assignments)) == (403, "AuthorizationFailed")
    assert arm(cloud, "GET", f"subscriptions/{SUB}/{assignments}")[0] == 200
    assert code(arm(cloud, "POST", f"subscriptions/{SUB}/{assignments}")) == (
        405,
        "MethodNotAllowed",
    )
    scope = f"subscriptions/{SUB}/resourceGroups/nowhere"
    missing = arm(cloud, "GET", f"{scope}/PROVIDERS/microsoft.authorization/roleassignments/r1")
    assert code(missing) == (404, "RoleAssignmentNotFound")
    defined = arm(
        cloud, "GET", f"subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions"
    )
    assert defined[0] == 200 and defined[1]["value"]


def graph(cloud: AzureCloud, method: str, rest: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    """Graph, signed in as the deployer unless told otherwise."""
    return call(Graph(cloud).graph, method, rest, kw.pop("token", "graph"), **kw)


def test_graph_checks_the_caller_before_the_path(cloud: AzureCloud) -> None:
    assert code(graph(cloud, "GET", "no/such", token="")) == (401, "InvalidAuthenticationToken")
    cloud.tenant.tokens["other"] = ("someone-else", GRAPH_AUDIENCE)
    assert code(graph(cloud, "GET", "no/such", token="other")) == (
        403,
        "Authorization_RequestDenied",
    )
    status, body = graph(cloud, "GET", "no/such")
    assert (status, body["error"]["message"]) == (400, "Resource not found for the segment 'no'.")
    assert code(graph(cloud, "GET", "directoryObjects/getByIds")) == (400, "BadRequest")


def test_graph_objects_by_id(cloud: AzureCloud) -> None:
    assert code(graph(cloud, "PUT", "applications")) == (405, "Request_BadRequest")
    made = graph(cloud, "POST", "applications/", body={"displayName": "x"})
    assert made[0] == 201
    app_id = made[1]["id"]
    assert graph(cloud, "GET", f"applications/{app_id}")[0] == 200
    assert code(graph(cloud, "PUT", f"applications/{app_id}")) == (400, "BadRequest")
    assert code(graph(cloud, "POST", f"applications/{app_id}/nothing")) == (400, "BadRequest")
    for method, rest in [("PUT", "nope"), ("POST", "nope/addPassword"), ("GET", "nope/a/b")]:
        assert code(graph(cloud, method, f"applications/{rest}")) == (
            404,
            "Request_ResourceNotFound",
        )
    assert code(graph(cloud, "GET", "servicePrincipals/nope/x")) == (
        404,
        "Request_ResourceNotFound",
    )
    assert code(graph(cloud, "PATCH", "servicePrincipals")) == (405, "Request_BadRequest")
    # the table is case-sensitive, as the fake always was (an assumption: Graph is not)
    assert code(graph(cloud, "GET", "Applications")) == (400, "BadRequest")
    listed = graph(cloud, "GET", "applications", **{"$filter": "displayName eq 'x'"})
    assert [a["id"] for a in listed[1]["value"]] == [app_id]
