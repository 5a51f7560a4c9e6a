"""The brand-new project: a fake project starts where a new one
starts (Google's default services only: IAM off), answers a disabled or just-enabled API as
Google does (403 PERMISSION_DENIED, ErrorInfo SERVICE_DISABLED), and the notebook enables
every API it calls, waiting out only that 403, and only for an API Service Usage says is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import Runner, sandbox
from binderhub_registry.providers import google
from binderhub_registry.providers.google.settling import _Settling
from binderhub_registry.sandbox.google.models import DEFAULT_SERVICES

from .conftest import NOTEBOOKS, NotebookRun, outputs_text
from .helpers import GOOGLE_DEFAULTS, grpc_calls, settings

pytestmark = pytest.mark.sandbox


def signed_in(run: Runner, tmp_path: Path, **overrides: Any) -> google.GoogleConnection:
    """A connection on the (fresh) sandbox, writing into tmp_path/values."""
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), **overrides)
    return run.step("sign in", google.sign_in, p)


def deployer_token(conn: google.GoogleConnection) -> str:
    """An access token of the seeded deployer (the notebook's own credentials)."""
    return str(conn.credentials.token)


# --- point 1: only Google's default services -------------------------------------------------
def test_a_new_project_has_only_googles_default_services(fresh: sandbox.Sandbox) -> None:
    services = set(fresh.state()["google"]["services"])
    assert services == DEFAULT_SERVICES
    assert "serviceusage.googleapis.com" in services  # it enables the others
    assert not services & set(google.SERVICES)


def test_iam_off_answers_403_service_disabled_through_the_real_client(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """google-cloud-iam's own client raises its PermissionDenied, with the ErrorInfo."""
    from google.api_core import exceptions
    from google.cloud.iam_admin_v1 import types

    conn = signed_in(run, tmp_path)
    with pytest.raises(exceptions.PermissionDenied) as err:  # the client's own, unmapped
        conn.iam.create_service_account(
            request=types.CreateServiceAccountRequest(
                name="projects/binderhub-demo", account_id="someone-else"
            )
        )
    assert err.value.reason == "SERVICE_DISABLED"
    assert err.value.metadata == {
        "service": "iam.googleapis.com",
        "consumer": "projects/123456789012",
    }
    assert "has not been used in project 123456789012 before or it is disabled" in str(err.value)
    assert "If you enabled this API recently, wait a few minutes" in str(err.value)


def test_a_disabled_api_answers_googles_rest_body(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = signed_in(run, tmp_path)
    r = requests.get(
        f"{fresh.url}/google/artifactregistry/v1/projects/binderhub-demo/locations/"
        "us-central1/repositories/binderhub",
        headers={"Authorization": f"Bearer {deployer_token(conn)}"},
        verify=fresh.ca_file,
        timeout=10,
    )
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    types = [d["@type"] for d in error["details"]]
    assert types == [
        "type.googleapis.com/google.rpc.Help",
        "type.googleapis.com/google.rpc.ErrorInfo",
    ]
    info = error["details"][1]
    assert info["reason"] == "SERVICE_DISABLED" and info["domain"] == "googleapis.com"
    assert info["metadata"]["service"] == google.SERVICE


def test_the_iam_step_says_the_api_is_off_when_nothing_enabled_it(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """Without the enable step, one line, and no waiting: nobody enabled it."""
    conn = signed_in(run, tmp_path)
    with pytest.raises(google.ServiceDisabled, match="IAM\\) API has not been used") as err:
        run.step("account", google.ensure_service_account, conn)
    assert err.value.service == google.IAM_SERVICE
    assert grpc_calls(fresh, "GetServiceAccount") == ["grpc PERMISSION_DENIED"]  # once


def test_the_notebook_enables_every_api_it_calls(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = signed_in(run, tmp_path)
    run.step("api", google.enable_api, conn)
    row = run.checklist.rows[-1]
    assert row.status == "created"
    assert row.detail == "enabled artifactregistry.googleapis.com, iam.googleapis.com"
    assert set(google.SERVICES) <= set(fresh.state()["google"]["services"])
    assert google.Record(conn.params.output_dir, google.KEY).created["api"] == list(google.SERVICES)
    run.step("account", google.ensure_service_account, conn)  # IAM answers now


def test_a_dry_run_enables_nothing_and_reads_no_account(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = signed_in(run, tmp_path, dry_run=True)
    run.step("api", google.enable_api, conn)
    assert run.checklist.rows[-1].detail == (
        "would enable artifactregistry.googleapis.com, iam.googleapis.com"
    )
    run.step("account", google.ensure_service_account, conn)
    assert run.checklist.rows[-1].status == "planned"
    assert grpc_calls(fresh, "GetServiceAccount") == []  # IAM is off: nothing to read
    assert set(fresh.state()["google"]["services"]) == DEFAULT_SERVICES


# --- point 3: an API just enabled --------------------------------------------------------------
def test_a_just_enabled_api_is_waited_for(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    settings(fresh, "google", disabled_after_enable=3)
    conn = signed_in(run, tmp_path)
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    assert all(row.attempts == 1 for row in run.checklist.rows)  # waited in the step
    gets = grpc_calls(fresh, "GetServiceAccount")
    assert gets[:3] == ["grpc PERMISSION_DENIED"] * 3
    waits = {k: v for k, v in conn.settling.notes.items() if "SERVICE_DISABLED" in k}
    assert waits == {
        f"{service} was just enabled: Google answers SERVICE_DISABLED until the change "
        "reaches all its servers (its message says to wait a few minutes)": 3
        for service in google.SERVICES
    }


def test_only_service_disabled_of_an_api_that_is_on_is_waited_for() -> None:
    settling = _Settling({"projects/p1", "projects/123"}, 0.0, 0.0)
    settling.enabled.add("iam.googleapis.com")
    assert settling.why(
        "PERMISSION_DENIED", "SERVICE_DISABLED", "iam.googleapis.com", "projects/123", ""
    )
    # an API nobody enabled, another project's (gcloud's own: a quota project problem), or
    # another 403: at once
    assert not settling.why(
        "PERMISSION_DENIED", "SERVICE_DISABLED", "compute.googleapis.com", "projects/123", ""
    )
    assert not settling.why(
        "PERMISSION_DENIED", "SERVICE_DISABLED", "iam.googleapis.com", "projects/764086051850", ""
    )
    assert not settling.why("PERMISSION_DENIED", "IAM_PERMISSION_DENIED", "", "", "")


# --- a brand-new project, end to end -------------------------------------------------------------
def test_a_brand_new_project_runs_to_the_end_with_no_manual_step(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """Default services only, and Google's eventual consistency on everywhere the evidence
    shows it: the notebook, as stored, completes and verifies."""
    settings(
        fresh,
        "google",
        disabled_after_enable=2,
        not_found_after_create=2,
        operation_polls=2,
        new_account_answers={
            "read": ["PERMISSION_DENIED", "OK", "NOT_FOUND"],
            "keys": ["NOT_FOUND", "PERMISSION_DENIED"],
            "policy": ["NOT_FOUND"],
            "member": ["INVALID_ARGUMENT"],
        },
    )
    nb = NotebookRun(NOTEBOOKS / "01-google-artifact-registry.ipynb", tmp_path)
    text = outputs_text(nb())
    assert "enabled artifactregistry.googleapis.com, iam.googleapis.com" in text
    assert "Verify the image check, push and pull [done]" in text
    assert "failed" not in text.split("Summary")[-1]
    statuses = [e["status"] for e in fresh.log()]
    assert "grpc PERMISSION_DENIED" in statuses and 403 in statuses  # it was consistent late
