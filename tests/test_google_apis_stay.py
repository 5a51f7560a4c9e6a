"""Teardown never disables an API.

Disabling Artifact Registry skips Service Usage's usage check by default
(``checkIfServiceHasUsage``: SKIP, serviceusage v1 discovery document), so repositories others
made in the project would stop working. The fake models others' repositories (any caller can
make one, in any location) and a disabled API that takes them down.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import Runner, sandbox
from binderhub_registry.providers import google

from .helpers import GOOGLE_DEFAULTS, up_to_the_key

pytestmark = pytest.mark.sandbox

AR = "/google/artifactregistry/v1/projects/binderhub-demo/locations"


def signed_in(run: Runner, tmp_path: Path, **overrides: Any) -> google.GoogleConnection:
    """A connection on the (fresh) sandbox, writing into tmp_path/values."""
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), **overrides)
    return run.step("sign in", google.sign_in, p)


def call(box: sandbox.Sandbox, token: str, method: str, path: str, **kw: Any) -> Any:
    """One REST call to the fake, as another team's tooling would make it."""
    return requests.request(
        method,
        f"{box.url}{path}",
        headers={"Authorization": f"Bearer {token}"},
        verify=box.ca_file,
        timeout=10,
        **kw,
    )


def others_repository(box: sandbox.Sandbox, token: str) -> str:
    """Another team's repository, made after the notebook ran, in another location: its
    registry host (the front standing in for europe-west1-docker.pkg.dev)."""
    r = call(
        box,
        token,
        "POST",
        f"{AR}/europe-west1/repositories",
        params={"repositoryId": "team-images"},
        json={"format": "DOCKER"},
    )
    assert r.status_code == 200, r.text
    repo = call(box, token, "GET", f"{AR}/europe-west1/repositories/team-images").json()
    return str(repo["registryUri"]).split("/")[0]


def registry_login(box: sandbox.Sandbox, host: str, token: str) -> int:
    """The status of a pull token request for the other team's images (docker login's)."""
    r = requests.get(
        f"https://{host}/v2/token",
        params={
            "service": "europe-west1-docker.pkg.dev",
            "scope": "repository:binderhub-demo/team-images/app:pull",
        },
        auth=("oauth2accesstoken", token),
        verify=box.ca_file,
        timeout=10,
    )
    return r.status_code


def test_teardown_never_disables_an_api_and_others_repositories_keep_working(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = signed_in(run, tmp_path)
    up_to_the_key(run, conn)  # it enabled Artifact Registry and IAM (recorded)
    token = str(conn.credentials.token)
    host = others_repository(fresh, token)
    assert registry_login(fresh, host, token) == 200
    down = signed_in(run, tmp_path, teardown=True)
    asyncio.run(run.astep("teardown", down.teardown))
    row = run.checklist.rows[-1]
    assert row.status == "deleted"
    assert "artifactregistry.googleapis.com, iam.googleapis.com stay enabled (never disabled" in (
        row.detail
    )
    assert not any(e["path"].endswith(":disable") for e in fresh.log())
    assert set(google.SERVICES) <= set(fresh.state()["google"]["services"])
    assert call(fresh, token, "GET", f"{AR}/europe-west1/repositories/team-images").ok
    assert registry_login(fresh, host, token) == 200  # their images still answer
    assert "api" not in google.Record(tmp_path / "values", google.KEY).created


def test_a_disable_skips_the_usage_check_by_default_as_service_usage_does(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """Why: the fake's Service Usage takes a repository-using API down unless told to CHECK."""
    conn = signed_in(run, tmp_path)
    run.step("api", google.enable_api, conn)
    token = str(conn.credentials.token)
    host = others_repository(fresh, token)
    service = "/google/serviceusage/v1/projects/123456789012/services/" + google.SERVICE
    refused = call(
        fresh, token, "POST", service + ":disable", json={"checkIfServiceHasUsage": "CHECK"}
    )
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "FAILED_PRECONDITION"
    done = call(fresh, token, "POST", service + ":disable", json={}).json()
    while not done.get("done"):
        done = call(fresh, token, "GET", "/google/serviceusage/v1/" + done["name"]).json()
    assert google.SERVICE not in fresh.state()["google"]["services"]
    gone = call(fresh, token, "GET", f"{AR}/europe-west1/repositories/team-images")
    assert gone.status_code == 403 and "SERVICE_DISABLED" in gone.text
    assert registry_login(fresh, host, token) == 401
