"""``gcr_domain``: gcr.io names need the project's redirection on (then Artifact Registry serves
gcr.io).

Artifact Registry's ``projects.getProjectSettings`` answers ``legacyRedirectionState``
(artifactregistry v1); gcr.io host names reach the project's ``gcr.io`` repositories only while
it is on. Images Container Registry held are not copied, so BinderHub would rebuild them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import Runner, sandbox
from binderhub_registry.errors import CloudError
from binderhub_registry.providers import google

from .helpers import DOCS, GOOGLE_DEFAULTS, ON, problems, redirect, set_theirs

pytestmark = pytest.mark.sandbox


@pytest.fixture
def google_overrides() -> dict[str, Any]:
    """conftest's ``conn`` signs in with gcr.io names (their multi-region)."""
    return {"gcr_domain": True, "location": "europe"}


@pytest.fixture
def conn(conn: google.GoogleConnection, run: Runner) -> google.GoogleConnection:
    """conftest's connection, its API enabled."""
    run.step("api", google.enable_api, conn)
    return conn


def test_a_new_project_has_redirection_off_and_the_step_says_how_to_turn_it_on(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    settings = conn.projects.getProjectSettings(
        name="projects/binderhub-demo/projectSettings"
    ).execute()
    assert settings == {
        "name": "projects/binderhub-demo/projectSettings",
        "legacyRedirectionState": "REDIRECTION_FROM_GCR_IO_DISABLED",
    }
    with pytest.raises(CloudError) as err:
        run.step("repository", google.ensure_repository, conn)
    message = str(err.value)
    assert "redirection from gcr.io is off" in message and "\n" not in message
    assert "gcloud artifacts settings enable-upgrade-redirection --project=binderhub-demo" in (
        message
    )
    assert "not copied" in message and "rebuilds" in message
    assert fresh.state()["google"]["registries"] == []  # stopped before creating anything


def test_with_redirection_on_the_step_says_old_images_are_not_copied(
    conn: google.GoogleConnection, run: Runner
) -> None:
    redirect(conn)
    host = run.step("repository", google.ensure_repository, conn)
    assert host
    detail = run.checklist.rows[-1].detail
    assert f"gcr.io redirection is on ({ON}): eu.gcr.io/binderhub-demo/... reaches it" in detail
    assert "not copied into this repository" in detail and "rebuilds" in detail


def test_a_dry_run_says_it_would_stop(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner, conn: google.GoogleConnection
) -> None:
    p = google.validate(
        GOOGLE_DEFAULTS,
        output_dir=str(tmp_path / "dry"),
        gcr_domain=True,
        location="europe",
        dry_run=True,
    )
    dry = run.step("sign in", google.sign_in, p)
    run.step("api", google.enable_api, dry)
    run.step("repository", google.ensure_repository, dry)
    status, detail = run.checklist.rows[-1].status, run.checklist.rows[-1].detail
    assert status == "planned"
    assert "would stop: gcr_domain: redirection from gcr.io is off" in detail


def test_only_the_two_settable_states_are_accepted(conn: google.GoogleConnection) -> None:
    from googleapiclient.errors import HttpError

    with pytest.raises(HttpError) as err:
        redirect(conn, "REDIRECTION_FROM_GCR_IO_FINALIZED")
    assert err.value.resp.status == 400


def test_the_settings_and_a_conditional_policy_fit_the_response_schemas(
    conn: google.GoogleConnection,
) -> None:
    ar = DOCS["artifactregistry"]["methods"]
    name = "projects/binderhub-demo/projectSettings"
    method = ar["artifactregistry.projects.getProjectSettings"]
    assert (
        problems(
            "artifactregistry",
            conn.projects.getProjectSettings(name=name).execute(),
            method["response"],
        )
        == []
    )
    redirect(conn)
    run = Runner()
    run.step("repository", google.ensure_repository, conn)
    set_theirs(conn)
    policy = (
        conn.registry.repositories()
        .getIamPolicy(resource=conn.repository_name, options_requestedPolicyVersion=3)
        .execute()
    )
    assert any("condition" in b for b in policy["bindings"])
    method = ar["artifactregistry.projects.locations.repositories.getIamPolicy"]
    assert problems("artifactregistry", policy, method["response"]) == []
