"""Which credential google-auth found (said before any call
that uses it), user credentials without a quota project (one line, before any call, and the
403 if it comes anyway), and the managed key-creation constraint.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import MissingCredentials, PermissionDenied, Runner, sandbox
from binderhub_registry.providers import google
from binderhub_registry.providers.google.auth import (
    _credential_file,
    _credential_source,
    _with_quota_project,
)
from binderhub_registry.providers.google.errors import _http_error

from .helpers import GOOGLE_DEFAULTS, loopback_connections, settings, up_to_the_key

USER_ADC = {
    "type": "authorized_user",
    "client_id": "764086051850-example.apps.googleusercontent.com",
    "client_secret": "not-a-secret",
    "refresh_token": "1//not-a-token",
    "account": "someone@example.org",
}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test: these checks come before any call."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a connection was attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def adc_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Path:
    """User credentials as `gcloud auth application-default login` writes them."""
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(USER_ADC | extra))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT", raising=False)
    return path


# --- the quota project ------------------------------------------------------------------------
def test_user_credentials_without_a_quota_project_are_one_line_before_any_call(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    adc = adc_file(tmp_path, monkeypatch)
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), sandbox=False)
    with pytest.raises(MissingCredentials) as err:
        google.sign_in(p)
    # where it looked and what it found, whose, before any call
    assert capsys.readouterr().out.splitlines() == [
        f"Google credentials: the file GOOGLE_APPLICATION_CREDENTIALS names ({adc})",
        "Google credentials: found user credentials of someone@example.org",
    ]
    message = str(err.value)
    assert "\n" not in message
    assert "gcloud auth application-default set-quota-project binderhub-demo" in message
    assert "refresh_token" not in message and "not-a-token" not in message


def test_a_quota_project_in_the_file_or_the_environment_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    from google import auth as google_auth

    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), sandbox=False)
    adc_file(tmp_path, monkeypatch, quota_project_id="binderhub-demo")
    credentials, _ = google_auth.default()
    assert _with_quota_project(credentials, p).quota_project_id == "binderhub-demo"
    adc_file(tmp_path, monkeypatch)
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "billing-project")
    credentials, _ = google_auth.default()
    assert _with_quota_project(credentials, p).quota_project_id == "billing-project"


@pytest.mark.parametrize(
    "body",
    [
        # google-auth-library-python#1459 (the text for another API)
        {
            "error": {
                "code": 403,
                "message": "Your application is authenticating by using local Application "
                "Default Credentials. The serviceusage.googleapis.com API requires a quota "
                "project, which is not set by default. To learn how to set your quota project, "
                "see https://cloud.google.com/docs/authentication/adc-troubleshooting/user-creds .",
                "status": "PERMISSION_DENIED",
            }
        },
        # terraform-provider-google#1538: billed to gcloud's own project, where it is off
        {
            "error": {
                "code": 403,
                "message": "Service Usage API has not been used in project 764086051850 before "
                "or it is disabled.",
                "status": "PERMISSION_DENIED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "SERVICE_DISABLED",
                        "domain": "googleapis.com",
                        "metadata": {
                            "service": "serviceusage.googleapis.com",
                            "consumer": "projects/764086051850",
                        },
                    }
                ],
            }
        },
        # google-github-actions/auth#250: a quota project the caller may not use
        {
            "error": {
                "code": 403,
                "message": "Caller does not have required permission to use project xxx-yyy. "
                "Grant the caller the roles/serviceusage.serviceUsageConsumer role, or a custom "
                "role with the serviceusage.services.use permission, by visiting https://console"
                ".developers.google.com/iam-admin/iam/project?project=xxx-yyy and then retry. "
                "Propagation of the new permission may take a few minutes.",
                "status": "PERMISSION_DENIED",
            }
        },
    ],
)
def test_the_quota_project_403_says_how_to_fix_it(body: dict[str, Any]) -> None:
    """Each 403 a missing or wrong quota project brings: one line with the command."""
    import httplib2
    from googleapiclient.errors import HttpError

    error = _http_error(HttpError(httplib2.Response({"status": 403}), json.dumps(body).encode()))
    assert type(error) is PermissionDenied
    assert "gcloud auth application-default set-quota-project" in str(error)


# --- which credential, before any call ----------------------------------------------------------
def test_where_google_auth_looks_is_said_before_it_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    said = _credential_file()
    assert "GCE metadata server" in said and "VM's own service account" in said
    (tmp_path / "gcloud").mkdir()
    (tmp_path / "gcloud" / "application_default_credentials.json").write_text("{}")
    assert _credential_file().startswith("gcloud's application default credentials")
    adc = adc_file(tmp_path, monkeypatch)
    assert _credential_file() == f"the file GOOGLE_APPLICATION_CREDENTIALS names ({adc})"


def test_whose_credential_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    from google import auth as google_auth
    from google.auth import compute_engine

    adc_file(tmp_path, monkeypatch, quota_project_id="binderhub-demo")
    credentials, _ = google_auth.default()
    assert _credential_source(credentials) == "user credentials of someone@example.org"
    vm = _credential_source(compute_engine.Credentials())
    assert vm == "the GCE metadata server's credentials: this VM's service account"


@pytest.mark.sandbox
def test_the_sandbox_sign_in_names_its_key_and_never_asks_google_auth(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    """The sandbox keeps to loopback: no application default credentials are looked for."""
    from google import auth as google_auth

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the sandbox looked for application default credentials")

    monkeypatch.setattr(google_auth, "default", refuse)
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"))
    run.step("sign in", google.sign_in, p)
    assert run.checklist.rows[-1].detail.endswith("with the sandbox's seeded key file")


# --- the managed key-creation constraint ---------------------------------------------------------
@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("policy", "named"),
    [
        ("managed", "iam.managed.disableServiceAccountKeyCreation"),
        (True, "iam.disableServiceAccountKeyCreation"),
    ],
)
def test_the_key_policy_names_the_constraint_that_refused(
    policy: Any, named: str, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"))
    conn = run.step("sign in", google.sign_in, p)
    up_to_the_key(run, conn)
    settings(fresh, "google", key_creation_disabled=policy)
    with pytest.raises(PermissionDenied) as err:
        run.step("key", google.ensure_key, conn)
    message = str(err.value)
    assert f"the organization policy {named} forbids service account keys" in message
    assert f"gcloud org-policies describe {named} --project=binderhub-demo" in message
    assert 'auth = "metadata"' in message and "\n" not in message


@pytest.mark.sandbox
def test_a_real_mode_sign_in_builds_its_clients_with_no_call_beyond_loopback(
    fresh: sandbox.Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """sandbox = False with a key file whose token_uri is the sandbox's: the token is the only
    call, and the clients (REST and the intercepted gRPC channel to iam.googleapis.com) are
    built without connecting anywhere else."""
    loopback_connections(monkeypatch)
    key = fresh.credentials("google") | {
        "type": "service_account",
        "token_uri": f"{fresh.url}/google/oauth2/token",
    }
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fresh.ca_file)
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), sandbox=False)
    result = google.sign_in(p)
    email = key["client_email"]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"Google credentials: found the service account key of {email}"
    )
    assert result.detail == (
        f"signed in to Google Cloud as {email} with the service account key of {email}"
    )
    assert [e["path"] for e in fresh.log()] == ["/google/oauth2/token"]
