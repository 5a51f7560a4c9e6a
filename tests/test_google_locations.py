"""A location Artifact Registry does not have is refused before anything is
made there. The notebook asks ``locations.list``; the fake's list is Google's regions and
multi-regions, and it refuses another location as Artifact Registry does (400
INVALID_ARGUMENT "Request contains an invalid argument.", hashicorp/terraform-provider-google
#10184).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from binderhub_registry import InvalidParameter, Runner, sandbox
from binderhub_registry.providers import google
from binderhub_registry.sandbox.google.rest import LOCATIONS

from .helpers import DOCS, GOOGLE_DEFAULTS, problems

pytestmark = pytest.mark.sandbox


def test_an_unknown_location_is_one_line_before_the_repository(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path), location="us-central9")
    conn = run.step("sign in", google.sign_in, p)
    run.step("api", google.enable_api, conn)
    with pytest.raises(InvalidParameter) as err:
        run.step("repository", google.ensure_repository, conn)
    assert err.value.name == "location"
    assert str(err.value).startswith("parameter 'location': must be one of Artifact Registry's")
    assert "us-central1" in str(err.value)  # the nearest ones are named
    assert "\n" not in str(err.value)
    assert [e["method"] for e in fresh.log() if "/repositories" in e["path"]] == []
    assert fresh.state()["google"]["registries"] == []


def test_every_known_location_passes(fresh: sandbox.Sandbox, run: Runner, tmp_path: Path) -> None:
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path), location="europe-west4")
    conn = run.step("sign in", google.sign_in, p)
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    assert {"us", "europe", "asia", "us-central1", "europe-west4"} <= set(LOCATIONS)


def test_the_fake_refuses_an_unknown_location_as_artifact_registry_does(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = run.step(
        "sign in", google.sign_in, google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path))
    )
    run.step("api", google.enable_api, conn)
    r = requests.post(
        f"{fresh.url}/google/artifactregistry/v1/projects/binderhub-demo/locations/eu-west3/"
        "repositories",
        params={"repositoryId": "binderhub"},
        json={"format": "DOCKER"},
        headers={"Authorization": f"Bearer {conn.credentials.token}"},
        verify=fresh.ca_file,
        timeout=10,
    )
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": 400,
        "message": "Request contains an invalid argument.",
        "status": "INVALID_ARGUMENT",
    }


def test_locations_list_answers_as_its_discovery_document_describes(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = run.step(
        "sign in", google.sign_in, google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path))
    )
    run.step("api", google.enable_api, conn)
    r = requests.get(
        f"{fresh.url}/google/artifactregistry/v1/projects/binderhub-demo/locations",
        headers={"Authorization": f"Bearer {conn.credentials.token}"},
        verify=fresh.ca_file,
        timeout=10,
    )
    assert r.status_code == 200
    method = DOCS["artifactregistry"]["methods"]["artifactregistry.projects.locations.list"]
    assert problems("artifactregistry", r.json(), method["response"]) == []
    assert [loc["locationId"] for loc in r.json()["locations"]] == list(LOCATIONS)
