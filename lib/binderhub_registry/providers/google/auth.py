"""Sign-in: which credentials, whose, with a quota project, and the three API clients."""

from __future__ import annotations

import json
import re
from dataclasses import replace as _replace
from typing import Any

from ... import sandbox as sandbox_mod
from ...errors import InvalidParameter, MissingCredentials
from ...steps import Result
from ..contract import Record
from .connection import GoogleConnection
from .errors import _mapped
from .keyless import _stored_section
from .params import (
    _QUOTA_FIX,
    ACCOUNT,
    ACCOUNT_ID,
    KEY,
    LEGACY_ACCOUNT,
    OWN_ACCOUNT,
    SCOPES,
    Params,
)
from .settling import _rest_client, _Settling, _settling_interceptor, _trusting


def _legacy(record: Record) -> bool:
    """True for a record written before resources carried this deployment's mark (it has
    no top-level ``deployment``): what it lists may be accepted by name and old text."""
    try:
        data = json.loads(record.path.read_text())
    except (OSError, ValueError):
        return False  # none yet (a broken one was refused before sign-in)
    return isinstance(data, dict) and "deployment" not in data


def _account_for(p: Params, record: Record, legacy: bool) -> str:
    """The service account id this deployment uses.

    An explicit ``service_account`` is used as given (several deployments may share it: their
    keys are then told apart by the key ids each recorded), except another deployment's own
    name. ``""``: the account this ``output_dir`` already uses (recorded, or the account of
    the key in secret.yaml: records from before), else ``binderhub-builder`` for a record
    from before this default (what it made is there), else this deployment's own
    ``binderhub-<deployment id>``.
    """
    own = OWN_ACCOUNT.format(deployment=record.deployment)
    if p.service_account:
        if re.fullmatch(OWN_ACCOUNT.format(deployment="[0-9a-f]{8}"), p.service_account) and (
            p.service_account != own
        ):
            raise InvalidParameter(
                "service_account",
                f"names another deployment's own account (this one's is {own}): leave it empty "
                "for this deployment's own, or name a shared one",
                p.service_account,
            )
        return p.service_account
    suffix = f"@{p.project_id}.iam.gserviceaccount.com"
    stored = _stored_section(p.output_dir, "registry") or {}
    try:
        key_email = json.loads(str(stored.get("password", ""))).get("client_email")
    except (ValueError, AttributeError):
        key_email = None
    for email in (record.created.get(ACCOUNT), record.created.get("service_account"), key_email):
        if isinstance(email, str) and email.endswith(suffix):
            found = email.removesuffix(suffix)
            if re.fullmatch(ACCOUNT_ID, found):
                return found
    return LEGACY_ACCOUNT if legacy and record.created else own


def _credential_file() -> str:
    """Where ``google.auth.default()`` will look first, told before it looks (no network)."""
    import os

    from google.auth import _cloud_sdk, environment_vars

    explicit = os.environ.get(environment_vars.CREDENTIALS)
    if explicit:
        return f"the file GOOGLE_APPLICATION_CREDENTIALS names ({explicit})"
    path = _cloud_sdk.get_application_default_credentials_path()  # type: ignore[no-untyped-call]
    if os.path.exists(path):
        return f"gcloud's application default credentials ({path})"
    # google/auth/_default.py: with no file, _get_gce_credentials pings the metadata server
    return (
        "no credentials file, so google-auth asks the GCE metadata server: on a Compute "
        "Engine VM or a GKE node that is the VM's own service account"
    )


def _credential_source(credentials: Any) -> str:
    """What kind of credential google-auth found, and whose it is where that is known offline."""
    kind = type(credentials).__module__ + "." + type(credentials).__name__
    if kind == "google.oauth2.service_account.Credentials":
        return f"the service account key of {credentials.service_account_email}"
    if kind == "google.oauth2.credentials.Credentials":
        account = getattr(credentials, "account", "") or "the account gcloud signed in"
        return f"user credentials of {account}"
    if kind == "google.auth.compute_engine.credentials.Credentials":
        return "the GCE metadata server's credentials: this VM's service account"
    if kind == "google.auth.impersonated_credentials.Credentials":
        return f"credentials impersonating {getattr(credentials, 'service_account_email', '?')}"
    if kind.startswith("google.auth.external_account") or "identity_pool" in kind:
        return "workload identity federation credentials (an external account)"
    return f"credentials of type {type(credentials).__name__}"


def _with_quota_project(credentials: Any, p: Params) -> Any:
    """User credentials need a quota project for Service Usage: without one their calls are
    billed to gcloud's own project and refused (403; terraform-provider-google#1538, google-
    auth-library-python#1459). ``GOOGLE_CLOUD_QUOTA_PROJECT`` sets one; else one line."""
    import os

    from google.oauth2 import credentials as user_credentials

    if not isinstance(credentials, user_credentials.Credentials) or credentials.quota_project_id:
        return credentials
    quota = os.environ.get("GOOGLE_CLOUD_QUOTA_PROJECT", "").strip()
    if quota:
        return credentials.with_quota_project(quota)
    raise MissingCredentials(
        "application default credentials without a quota project",
        _QUOTA_FIX.format(project=p.project_id),
    )


def sign_in(p: Params) -> Result[GoogleConnection]:
    """Sign in (the guide's ``gcloud auth login``) and build the three API clients.

    Real Google Cloud: ``google.auth.default()`` (application default credentials); which
    credential it found and whose it is are told before any call that uses it (with no file,
    google-auth asks the GCE metadata server: on a VM, the VM's own service account). User
    credentials without a quota project are refused in one line (:func:`_with_quota_project`).
    Sandbox: its seeded deployer key file, with real service-account credentials; nothing
    is asked of anything beyond loopback.
    """
    import google.auth
    import grpc  # type: ignore[import-untyped]
    import requests
    from google.auth.transport.grpc import secure_authorized_channel
    from google.auth.transport.requests import Request
    from google.cloud import iam_admin_v1
    from google.cloud.iam_admin_v1.services.iam.transports import IAMGrpcTransport
    from google.oauth2 import service_account

    session = requests.Session()
    ca_file: str | None = None
    base: str | None = None
    if p.sandbox:
        box = sandbox_mod.ensure()
        ca_file, base = box.ca_file, f"{box.url}/google"
        _trusting(session, ca_file)
        info = box.credentials("google") | {
            "type": "service_account",
            "token_uri": f"{base}/oauth2/token",
        }
        credentials: Any = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
        source = "the sandbox's seeded key file"
    else:
        # said before any call, shown even when the step is quick (progress shows only slow ones)
        print(f"Google credentials: {_credential_file()}", flush=True)
        with _mapped():
            credentials, _ = google.auth.default(scopes=SCOPES)
        source = _credential_source(credentials)
        print(f"Google credentials: found {source}", flush=True)
        credentials = _with_quota_project(credentials, p)
    request = Request(session)
    with _mapped():
        credentials.refresh(request)
    who = (
        getattr(credentials, "service_account_email", None)
        or getattr(credentials, "account", None)
        or "your account"
    )
    if who != "default" and "metadata server" in source:
        source += f" ({who})"
    # the sandbox answers at once: its waits need no pause (Google's take seconds to minutes)
    settling = (
        _Settling({f"projects/{p.project_id}"}, 0.002, 0.05, 10.0, 10.0)
        if p.sandbox
        else _Settling({f"projects/{p.project_id}"}, 1.0, 10.0)
    )
    usage = _rest_client(
        "serviceusage", credentials, f"{base}/serviceusage" if base else None, ca_file, settling
    )
    projects = _rest_client(
        "artifactregistry",
        credentials,
        f"{base}/artifactregistry" if base else None,
        ca_file,
        settling,
    ).projects()
    registry = projects.locations()
    if p.sandbox:
        target = box.registries["google-iam"].removeprefix("https://")
        with open(box.ca_file, "rb") as f:
            roots = grpc.ssl_channel_credentials(f.read())
        channel = secure_authorized_channel(  # type: ignore[no-untyped-call]
            credentials, request, target, ssl_credentials=roots
        )
    else:
        channel = IAMGrpcTransport.create_channel("iam.googleapis.com:443", credentials=credentials)
    channel = grpc.intercept_channel(channel, _settling_interceptor(settling))
    iam = iam_admin_v1.IAMClient(transport=IAMGrpcTransport(channel=channel))
    record = Record(p.output_dir, KEY)
    legacy = _legacy(record)
    p = _replace(p, service_account=_account_for(p, record, legacy))
    record.created[ACCOUNT] = p.email  # in memory: saved with the first thing recorded
    conn = GoogleConnection(
        params=p,
        record=record,
        legacy=legacy,
        ca_file=ca_file,
        credentials=credentials,
        usage=usage,
        registry=registry,
        projects=projects,
        iam=iam,
        # the sandbox answers at once: its polls need no pause (Google's take seconds)
        poll=0.002 if p.sandbox else 2.0,
        settling=settling,
    )
    if p.sandbox and p.keyless:  # the fake GKE metadata server, on loopback
        conn.metadata_url = str(box.state()["google"]["metadata_server"])
    where = "the sandbox" if p.sandbox else "Google Cloud"
    return Result(conn, "done", f"signed in to {where} as {who} with {source}")
