"""The Google REST fakes against Google's own API descriptions (discovery documents).

The documents are vendored, trimmed, under tests/data/google/ from google-api-python-client's
``discovery_cache`` (data only; see each file's ``_source``). Every route the fake serves must be
a method of the API with the same HTTP method and path, every field the fake reads must exist in
the request schema, and every field it answers must exist in the response schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import Runner, sandbox
from binderhub_registry.providers import google
from binderhub_registry.sandbox.google.cloud import GoogleCloud
from binderhub_registry.sandbox.google.rest import Rest

from .helpers import DOCS, problems

#: Fields the fake reads from request bodies: (api, request schema, dotted path).
READS = [
    ("artifactregistry", "Repository", "format"),
    ("artifactregistry", "Repository", "description"),
    ("artifactregistry", "Repository", "labels"),
    ("artifactregistry", "SetIamPolicyRequest", "policy"),
    ("artifactregistry", "Policy", "etag"),
    ("artifactregistry", "Policy", "bindings"),
    ("artifactregistry", "Binding", "role"),
    ("artifactregistry", "Binding", "members"),
]


def _flat_regex(flat_path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", flat_path)
    return re.compile("".join("[^/:]+" if p.startswith("{") else re.escape(p) for p in parts))


def _sample(pattern: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", pattern)


def test_every_rest_route_is_a_method_of_the_api() -> None:
    cloud = GoogleCloud.__new__(GoogleCloud)  # routes only: no state, no listeners
    routes = [(m, p) for m, p, _ in Rest(cloud).routes() if p != "/oauth2/token"]
    assert routes
    for method, pattern in routes:
        api, _, rest = pattern.lstrip("/").partition("/")
        matches = [
            m
            for m in DOCS[api]["methods"].values()
            if m["httpMethod"] == method and _flat_regex(m["flatPath"]).fullmatch(_sample(rest))
        ]
        assert len(matches) == 1, (method, pattern)


@pytest.mark.parametrize(("api", "schema", "field"), READS)
def test_fields_the_fake_reads_are_in_the_request_schemas(
    api: str, schema: str, field: str
) -> None:
    assert field in DOCS[api]["schemas"][schema]["properties"]


@pytest.mark.sandbox
def test_answers_fit_the_response_schemas(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    p = google.validate(
        {"prefix": "binder-", "dry_run": False, "teardown": False, "rotate": False},
        project_id="binderhub-demo",
        location="us-central1",
        repository="binderhub",
        service_account="binderhub-builder",
        gcr_domain=False,
        auth="key",
        k8s_namespace="binderhub",
        sandbox=True,
        output_dir=str(tmp_path),
    )
    conn = Runner().step("sign in", google.sign_in, p)
    http = requests.Session()
    http.verify = fresh.ca_file
    http.trust_env = False  # the CA above, not a REQUESTS_CA_BUNDLE from the environment
    http.headers["Authorization"] = f"Bearer {conn.credentials.token}"
    base = f"{fresh.url}/google"
    su = DOCS["serviceusage"]["methods"]
    ar = DOCS["artifactregistry"]["methods"]
    service = f"{base}/serviceusage/v1/projects/binderhub-demo/services/{google.SERVICE}"
    repos = f"{base}/artifactregistry/v1/projects/binderhub-demo/locations/us-central1/repositories"

    def check(api: str, method: dict[str, Any], answer: requests.Response) -> Any:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert problems(api, body, method["response"]) == []
        return body

    check("serviceusage", su["serviceusage.services.get"], http.get(service))
    op = check("serviceusage", su["serviceusage.services.enable"], http.post(service + ":enable"))
    done = check(
        "serviceusage",
        su["serviceusage.operations.get"],
        http.get(f"{base}/serviceusage/v1/{op['name']}"),
    )
    assert done["done"] is True
    assert (
        problems(
            "serviceusage", done["response"]["service"], {"$ref": "GoogleApiServiceusageV1Service"}
        )
        == []
    )
    op = check(
        "artifactregistry",
        ar["artifactregistry.projects.locations.repositories.create"],
        http.post(repos, params={"repositoryId": "binderhub"}, json={"format": "DOCKER"}),
    )
    done = check(
        "artifactregistry",
        ar["artifactregistry.projects.locations.operations.get"],
        http.get(f"{base}/artifactregistry/v1/{op['name']}"),
    )
    repo = {k: v for k, v in done["response"].items() if k != "@type"}
    assert problems("artifactregistry", repo, {"$ref": "Repository"}) == []
    check(
        "artifactregistry",
        ar["artifactregistry.projects.locations.repositories.get"],
        http.get(repos + "/binderhub"),
    )
    check(
        "artifactregistry",
        ar["artifactregistry.projects.locations.repositories.list"],
        http.get(repos),
    )
    policy = check(
        "artifactregistry",
        ar["artifactregistry.projects.locations.repositories.getIamPolicy"],
        http.get(repos + "/binderhub:getIamPolicy"),
    )
    policy["bindings"] = [{"role": google.ROLE, "members": ["user:someone@example.com"]}]
    check(
        "artifactregistry",
        ar["artifactregistry.projects.locations.repositories.setIamPolicy"],
        http.post(repos + "/binderhub:setIamPolicy", json={"policy": policy}),
    )
    check(
        "artifactregistry",
        ar["artifactregistry.projects.locations.repositories.delete"],
        http.delete(repos + "/binderhub"),
    )
