"""Google's registry challenge and token endpoint as Google answers them.

Google's ``/v2/`` challenge names a realm and no ``service``; a repository path adds
``service="<host>"`` and a scope (apple/container#2274, Seqera Wave's tests, DESIGN.md 9).
Its ``/v2/token`` ignores ``service``: mybinder.org staging ran BinderHub with
``token_url: https://us-central1-docker.pkg.dev/v2/token`` (mybinder.org-deploy 9bd26443), so
Google got only BinderHub's appended ``service=container_registry``, and accepted it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from binderhub_registry import Runner, sandbox
from binderhub_registry.providers import google
from binderhub_registry.registry_http import parse_challenge

from .helpers import GOOGLE_DEFAULTS, up_to_the_key

pytestmark = pytest.mark.sandbox


@pytest.fixture
def values(fresh: sandbox.Sandbox, tmp_path: Path, run: Runner) -> google.RegistryValues:
    """Key-mode values of a fresh run."""
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"))
    conn = run.step("sign in", google.sign_in, p)
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    found = conn.values()
    assert found is not None
    return found


def challenge(box: sandbox.Sandbox, url: str) -> tuple[str, dict[str, str]]:
    r = requests.get(url, verify=box.ca_file, timeout=10)
    assert r.status_code == 401
    return parse_challenge(r.headers["www-authenticate"])


def test_the_ping_challenge_has_no_service_and_a_repository_path_adds_it(
    values: google.RegistryValues, fresh: sandbox.Sandbox
) -> None:
    url = values.registry_url
    scheme, params = challenge(fresh, f"{url}/v2/")
    assert scheme == "bearer" and params == {"realm": f"{url}/v2/token"}
    image = "binderhub-demo/binderhub/binder-x"
    scheme, params = challenge(fresh, f"{url}/v2/{image}/manifests/latest")
    assert params["service"] == "us-central1-docker.pkg.dev"
    assert params["scope"] == f"repository:{image}:pull"


@pytest.mark.parametrize(
    "service",
    [["container_registry"], [], ["us-central1-docker.pkg.dev", "container_registry"], ["x"]],
)
def test_the_token_endpoint_ignores_service(
    values: google.RegistryValues, fresh: sandbox.Sandbox, service: list[str]
) -> None:
    r = requests.get(
        f"{values.registry_url}/v2/token",
        params={"service": service, "scope": "repository:binderhub-demo/binderhub/x:pull"},
        auth=(values.username, values.password.reveal()),
        verify=fresh.ca_file,
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["token"]


def test_token_url_is_the_form_mybinder_org_ran(values: google.RegistryValues) -> None:
    # https://<location>-docker.pkg.dev/v2/token: BinderHub appends its own service
    assert values.docker_registry["token_url"] == f"{values.registry_url}/v2/token"
