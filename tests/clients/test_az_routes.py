"""What the Azure CLI asks of the fake beyond the SDKs' calls, checked in ``make test`` too.

The client test (``test_az_cli.py``) runs the real CLI; these call the same
routes directly, in seconds, so a change that breaks them shows without the CLI
installed. Each request is the one azure-cli 2.91 sends (see the fakes' tables).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from binderhub_registry import sandbox
from binderhub_registry.sandbox.azure import ACR_PUSH

from ..helpers import deployer_token

pytestmark = pytest.mark.sandbox


def _get(box: sandbox.Sandbox, path: str, token: str, **params: str) -> requests.Response:
    return requests.get(
        f"{box.url}/azure/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        verify=box.ca_file,
        timeout=30,
    )


def test_metadata_endpoints_anonymous(fresh: sandbox.Sandbox) -> None:
    r = requests.get(
        f"{fresh.url}/azure/management/metadata/endpoints",
        params={"api-version": "2022-09-01"},
        verify=fresh.ca_file,
        timeout=30,
    )
    assert r.status_code == 200
    data: dict[str, Any] = r.json()
    assert data["authentication"]["loginEndpoint"] == f"{fresh.url}/azure/login"
    assert data["authentication"]["audiences"][0] == "https://management.core.windows.net/"
    assert data["resourceManager"] == f"{fresh.url}/azure/management/"
    assert data["microsoftGraphResourceId"] == f"{fresh.url}/azure/graph/"


def test_cli_audiences(fresh: sandbox.Sandbox) -> None:
    """ARM under its classic audience, Graph under the sandbox's own URL; not crosswise."""
    arm = deployer_token(fresh, "https://management.core.windows.net/")
    graph = deployer_token(fresh, f"{fresh.url}/azure/graph/")
    assert _get(fresh, "management/subscriptions", arm, **{"api-version": "2022-12-01"}).ok
    assert _get(fresh, "graph/v1.0/applications", graph).ok
    assert _get(fresh, "graph/v1.0/applications", arm).status_code == 401
    assert _get(fresh, "management/subscriptions", graph, **{"api-version": "x"}).status_code == 401


def test_role_definitions_by_name(fresh: sandbox.Sandbox) -> None:
    sub = fresh.credentials("azure")["subscription_id"]
    arm = deployer_token(fresh, "https://management.azure.com/")
    path = f"management/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions"
    r = _get(
        fresh,
        path,
        arm,
        **{"api-version": "2022-05-01-preview"},
        **{"$filter": "roleName eq 'AcrPush'"},
    )
    assert r.status_code == 200
    found = r.json()["value"]
    assert [d["name"] for d in found] == [ACR_PUSH]
    assert found[0]["properties"]["type"] == "BuiltInRole"
    bad = _get(fresh, path, arm, **{"api-version": "x", "$filter": "startswith(roleName,'Acr')"})
    assert bad.status_code == 400


def test_resource_list_filter(fresh: sandbox.Sandbox) -> None:
    sub = fresh.credentials("azure")["subscription_id"]
    arm = deployer_token(fresh, "https://management.azure.com/")
    wanted = "resourceType eq 'Microsoft.ContainerRegistry/registries'"
    r = _get(
        fresh,
        f"management/subscriptions/{sub}/resources",
        arm,
        **{"api-version": "2024-11-01", "$filter": wanted},
    )
    assert r.status_code == 200 and r.json() == {"value": []}  # someone else's is not listed
    bad = _get(
        fresh,
        f"management/subscriptions/{sub}/resources",
        arm,
        **{"api-version": "x", "$filter": "name eq 'x'"},
    )
    assert bad.status_code == 400


def test_graph_filters_patch_and_get_by_ids(fresh: sandbox.Sandbox) -> None:
    graph = deployer_token(fresh, "https://graph.microsoft.com")
    headers = {"Authorization": f"Bearer {graph}"}
    base = f"{fresh.url}/azure/graph/v1.0"
    app = requests.post(
        f"{base}/applications", json={"displayName": "binderhub-sp"}, headers=headers,
        verify=fresh.ca_file, timeout=30,
    ).json()  # fmt: skip
    sp = requests.post(
        f"{base}/servicePrincipals", json={"appId": app["appId"]}, headers=headers,
        verify=fresh.ca_file, timeout=30,
    ).json()  # fmt: skip
    by_prefix = _get(
        fresh,
        "graph/v1.0/applications",
        graph,
        **{"$filter": "startswith(displayName,'binderhub-s')"},
    )
    assert [a["id"] for a in by_prefix.json()["value"]] == [app["id"]]
    spn = f"servicePrincipalNames/any(c:c eq '{app['appId']}')"
    assert [
        s["id"]
        for s in _get(fresh, "graph/v1.0/servicePrincipals", graph, **{"$filter": spn}).json()[
            "value"
        ]
    ] == [sp["id"]]
    url_name = "servicePrincipalNames/any(c:c eq 'http://binderhub-sp')"
    assert (
        _get(fresh, "graph/v1.0/servicePrincipals", graph, **{"$filter": url_name}).json()["value"]
        == []
    )
    unsupported = _get(
        fresh, "graph/v1.0/applications", graph, **{"$filter": "endswith(displayName,'sp')"}
    )
    assert unsupported.status_code == 400
    patched = requests.patch(
        f"{base}/applications/{app['id']}", json={"displayName": "binderhub-sp2"},
        headers=headers, verify=fresh.ca_file, timeout=30,
    )  # fmt: skip
    assert patched.status_code == 204
    assert (
        _get(fresh, f"graph/v1.0/applications/{app['id']}", graph).json()["displayName"]
        == "binderhub-sp2"
    )
    ids = [sp["id"], "00000000-0000-0000-0000-000000000000"]
    stubs = requests.post(
        f"{base}/directoryObjects/getByIds",
        json={"ids": ids, "types": ["servicePrincipal"]},
        headers=headers,
        verify=fresh.ca_file,
        timeout=30,
    ).json()["value"]
    assert [(s["@odata.type"], s["id"]) for s in stubs] == [
        ("#microsoft.graph.servicePrincipal", sp["id"])
    ]


def test_az_setup_lines(box: sandbox.Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    """``binderhub-registry sandbox az-setup``: lines for ``eval`` that point az at this sandbox,
    keep it off the internet, and never print the deployer's secret."""
    from binderhub_registry.cli import main

    assert main(["sandbox", "az-setup", "--dir", str(box.directory)]) == 0
    out = capsys.readouterr().out
    assert f"export REQUESTS_CA_BUNDLE={box.ca_file}" in out
    assert "export AZURE_CORE_COLLECT_TELEMETRY=0" in out
    assert "core.instance_discovery=false" in out
    assert "/versionCheck.json" in out
    assert f"--endpoint-resource-manager {box.url}/azure/management/" in out
    assert "az login --service-principal" in out
    assert box.credentials("azure")["client_secret"] not in out
    # the secret reaches az on its standard input, never as an argument (``ps`` shows argv):
    # azure-cli reads ``@-`` as standard input (core/commands/__init__.py, 2.91.0)
    login = next(line for line in out.splitlines() if "az login" in line)
    assert login.endswith(
        " | az login --service-principal --username "
        f"{box.credentials('azure')['client_id']} --tenant "
        f"{box.credentials('azure')['tenant_id']} --password=@- --output none"
    )
    assert "$(" not in login and '--password "' not in out
