"""Google Artifact Registry (guide section 2.1; Container Registry was shut down on 2025-03-18).

The guide's steps stay recognisable (a service account, a role, a JSON key), done the way that
works today: Artifact Registry enabled through Service Usage, a Docker-format repository, a
service account made with the IAM admin API (gRPC, google-cloud-iam), the writer role on the
repository alone, and one JSON key that BinderHub pushes with as ``_json_key``.

Service Usage and Artifact Registry are called through google-api-python-client, built from
the discovery documents it ships (``static_discovery=True``: no download), which imports in a
fraction of the time of their generated clients (google-cloud-artifact-registry alone is 1.6 MB
of Python and pulls aiohttp in); IAM stays on google-cloud-iam's gRPC client.

Keyless (``auth = "metadata"``): no key is made. BinderHub's own image check uses
``binderhub.registry.GoogleArtifactRegistry`` (jupyterhub/binderhub ``binderhub/registry.py``
lines 344-370 at b9fad99), selected by ``config.BinderHub.registry_class`` (the ``registry_class``
trait, ``binderhub/app.py`` line 337): its ``token_url`` defaults to the GKE metadata server's
``.../service-accounts/default/token``, fetched with ``Metadata-Flavor: Google``, and the
``access_token`` it answers goes as a Bearer on the manifest request (``get_image_manifest``,
lines 272-333). ``DockerRegistry.url`` must be set: its default comes from the build docker
config's first key (lines 35-52). BinderHub's pod runs as the Kubernetes service account
``binderhub`` (helm chart ``templates/deployment.yaml`` line 49, ``templates/rbac.yaml``), which
Workload Identity lets act as the Google service account once that account's policy grants it
``roles/iam.workloadIdentityUser`` (done here) and the Kubernetes account carries the
``iam.gke.io/gcp-service-account`` annotation (``kubectl``; the chart has no value for it).
Build pods are another matter: ``GoogleArtifactRegistry`` has no ``get_credentials``
(``registry.py`` lines 335-341), so they push with the chart's docker config
(``binderhub/build.py`` lines 480-491); see the notebook's keyless section.

Switching ``auth`` on the same ``output_dir`` leaves nothing behind, through the rotation
mechanism (the ``retiring_keys`` record, emptied by ``finish_rotation`` once the new values
verified, so its ``keep_replaced`` applies too): key to metadata retires the keys this notebook
made (``ensure_key``), and ``secret.yaml``, which holds one, goes when that key is deleted (a
switch back before then reuses it); metadata to key retires the Workload Identity member this
notebook bound (``bind_workload_identity``), removed as ``gcloud iam service-accounts
remove-iam-policy-binding`` does (an etag-checked read-modify-write of the account's policy:
cloud.google.com/iam/docs/policies#etag). Switching back before they were removed takes them
out of the list again. Keyless for real, nothing can be verified from outside the cluster: what
a switch retired is removed only by a run after the one that said it was kept (``UNCHECKED``
in the record), so each removal follows a run that told the user to check BinderHub's pod.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from .. import sandbox as sandbox_mod
from ..binderhub import (
    PullSecret,
    RegistryValues,
    auth_key_host,
    chart_docker_config,
    next_commands,
    read_values_file,
    split_image_reference,
    values_header,
)
from ..errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    InvalidParameter,
    MissingCredentials,
    PermissionDenied,
    TransientCloudError,
    VerificationFailed,
    error_for_status,
    grpc_error,
    map_exceptions,
)
from ..outputs import write_file
from ..params import choice, flag, text
from ..pull import PULL_CHECK, PUSH_REFUSED_CHECK, pull_image, push_refused
from ..push import PUSH_CHECK, delete_tag, push_auth, push_image
from ..registry_http import RegistryHTTP, denied
from ..secrets import Secret, write_private_file
from ..steps import Result, progress
from ..verify import CHECK_IMAGE, NODE_PULL_COMMAND, VerificationReport, VerifyHints
from .contract import (
    COMMON_PARAMETERS,
    CommonParams,
    Connection,
    Deletion,
    RealExample,
    Record,
    creates,
    validator,
)

__all__ = [
    "BINDERHUB_IMAGE_TOOLS",
    "BOUND",
    "KEY",
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "REAL_EXAMPLE",
    "GoogleConnection",
    "KeylessFiles",
    "KeylessValues",
    "Params",
    "annotate_command",
    "bind_workload_identity",
    "enable_api",
    "ensure_key",
    "ensure_pull_credential",
    "ensure_repository",
    "ensure_service_account",
    "grant_writer",
    "keyless_check_command",
    "sign_in",
    "validate",
    "verify_keyless",
]

KEY = "google"
NAME = "Google Artifact Registry"
NOTEBOOK = "01-google-artifact-registry"
#: The environment variables sign-in reads for real (never parameters); shown by the form
SECRET_ENVIRONMENT = (
    ("GOOGLE_APPLICATION_CREDENTIALS", "a service account key file, else gcloud's login"),
)
SERVICE = "artifactregistry.googleapis.com"
IAM_SERVICE = "iam.googleapis.com"
#: Every API the notebook calls that a new project has off (Service Usage is among Google's
#: default services: cloud.google.com/service-usage/docs/enabled-service).
SERVICES = (SERVICE, IAM_SERVICE)
#: The project gcloud's own OAuth client belongs to: user credentials without a quota project
#: are billed to it, where Service Usage is off (hashicorp/terraform-provider-google#1538).
GCLOUD_PROJECT_NUMBER = "764086051850"
_QUOTA_FIX = (
    "user credentials (gcloud auth application-default login) need a quota project for "
    "Service Usage: run `gcloud auth application-default set-quota-project {project}` (or set "
    "GOOGLE_CLOUD_QUOTA_PROJECT), then rerun"
)
ROLE = "roles/artifactregistry.writer"
#: User pods' role on the repository: pull only (Artifact Registry's access-control page).
PULL_ROLE = "roles/artifactregistry.reader"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
USERNAME = "_json_key"
#: Keyless: BinderHub's registry class, and the token URL it defaults to (binderhub/registry.py).
KEYLESS_CLASS = "binderhub.registry.GoogleArtifactRegistry"
METADATA_URL = "http://metadata.google.internal"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
#: The Kubernetes service account BinderHub's pod runs as (helm chart, templates/deployment.yaml).
BINDERHUB_KSA = "binderhub"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
#: gcr.io-domain repositories: the repository id (and host) for each multi-region.
GCR_HOSTS = {"us": "gcr.io", "europe": "eu.gcr.io", "asia": "asia.gcr.io"}
_SIGN_IN_HOW = (
    "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file"
)
T = TypeVar("T")
#: IAM's rule for a service account id (cloud.google.com/iam/docs/service-accounts-create).
ACCOUNT_ID = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
#: What every resource this notebook creates carries, with the deployment id
#: (``Record.deployment``): a service account's ``description``, a repository's label
#: ``binderhub-registry: <id>`` and its ``description``. Both fields are kept by the services
#: (iam.v1 ServiceAccount.description, 256 bytes; artifactregistry.v1 Repository.labels).
MARK = "binderhub-registry"
_MARKS = re.compile(r"\bbinderhub-registry ([0-9a-f]{8})\b")
#: ``service_account = ""``: this deployment's own account, named from its id (18 characters,
#: its ``-pull`` twin 23: both inside IAM's 6-30).
OWN_ACCOUNT = "binderhub-{deployment}"
#: The default before each deployment had its own account: records written then keep it.
LEGACY_ACCOUNT = "binderhub-builder"
#: record kind: the email of the service account this deployment uses (found or created).
ACCOUNT = "account"

PARAMETERS = (
    text(
        "project_id",
        r"[a-z][a-z0-9-]{4,28}[a-z0-9]",
        "must be a Google Cloud project id: 6 to 30 lowercase letters, digits or hyphens, "
        "starting with a letter and not ending with a hyphen",
    ),
    text(
        "location",
        r"us|europe|asia|[a-z]+-[a-z]+[0-9]{1,2}",
        "must be an Artifact Registry region (e.g. us-central1) or multi-region (us, europe, asia)",
    ),
    text(
        "repository",
        r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?",
        "must be an Artifact Registry repository id: lowercase letters, digits and hyphens, "
        "starting with a letter, at most 63",
    ),
    # "": this deployment's own account, binderhub-<deployment id> (:func:`_account_for`)
    _replace(
        text(
            "service_account",
            ACCOUNT_ID,
            "must be a service account id: 6 to 30 lowercase letters, digits or hyphens, "
            "starting with a letter and ending with a letter or digit",
            optional=True,
        ),
        default="",
        required=False,
    ),
    flag("gcr_domain"),
    choice("auth", ("key", "metadata")),
    text(
        "k8s_namespace",
        r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
        "must be a Kubernetes namespace: at most 63 lowercase letters, digits or hyphens, "
        "starting and ending with a letter or digit",
    ),
    # keyless: the project of the GKE cluster BinderHub runs on, whose Workload Identity pool
    # (<cluster_project>.svc.id.goog) its pod is a member of; "": project_id
    _replace(
        text(
            "cluster_project",
            r"[a-z][a-z0-9-]{4,28}[a-z0-9]",
            "must be the Google Cloud project id of BinderHub's GKE cluster (6 to 30 lowercase "
            'letters, digits or hyphens), or "" for project_id',
            optional=True,
        ),
        default="",
        required=False,
    ),
    # "" when missing: only pull_access = "node" needs it (cells from before it still run)
    _replace(
        text(
            "node_service_account",
            r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
            r"|[0-9]{1,19}-compute@developer\.gserviceaccount\.com",
            "must be the email of the GKE nodes' service account (<id>@<project>.iam."
            "gserviceaccount.com, or <project number>-compute@developer.gserviceaccount.com)",
            optional=True,
        ),
        default="",
        required=False,
    ),
    *COMMON_PARAMETERS,
)


@dataclass(frozen=True)
class Params(CommonParams):
    """Validated parameters of the Google notebook."""

    PULL_NODE = (
        f"{PULL_ROLE} on the repository for the GKE nodes' service account (node_service_account)"
    )

    project_id: str
    location: str
    repository: str
    service_account: str  # "" until sign_in names this deployment's own account
    gcr_domain: bool
    auth: str  # "key": a JSON key; "metadata": keyless, tokens from the GKE metadata server
    k8s_namespace: str  # where BinderHub runs (its pod's Kubernetes service account, keyless)
    cluster_project: str  # keyless: the GKE cluster's project ("": project_id)
    node_service_account: str  # pull_access = "node": the GKE nodes' service account's email

    @property
    def keyless(self) -> bool:
        """True with ``auth = "metadata"``: no key, Workload Identity instead."""
        return self.auth == "metadata"

    @property
    def pool(self) -> str:
        """The Workload Identity pool of BinderHub's cluster: its project's ``.svc.id.goog``."""
        return f"{self.cluster_project or self.project_id}.svc.id.goog"

    @property
    def workload_member(self) -> str:
        """BinderHub's Kubernetes service account as an IAM member (Workload Identity)."""
        return f"serviceAccount:{self.pool}[{self.k8s_namespace}/{BINDERHUB_KSA}]"

    @property
    def repository_id(self) -> str:
        """The repository's id: ``gcr.io`` and its siblings for gcr.io-domain repositories."""
        return GCR_HOSTS[self.location] if self.gcr_domain else self.repository

    @property
    def email(self) -> str:
        """The service account's email."""
        return f"{self.service_account}@{self.project_id}.iam.gserviceaccount.com"

    @property
    def member(self) -> str:
        """The service account as an IAM policy member."""
        return f"serviceAccount:{self.email}"

    @property
    def pull_account(self) -> str:
        """User pods' service account id: ``<service_account>-pull``, cut to IAM's 30.

        Derived, not a parameter: it follows the pusher's name (one account pair per
        notebook, found again by every rerun), and the parameters stay the guide's.
        """
        return f"{self.service_account[:25].rstrip('-')}-pull"

    @property
    def pull_email(self) -> str:
        """User pods' service account's email."""
        return f"{self.pull_account}@{self.project_id}.iam.gserviceaccount.com"

    @property
    def pull_member(self) -> str:
        """User pods' service account as an IAM policy member."""
        return f"serviceAccount:{self.pull_email}"

    @property
    def node_member(self) -> str:
        """The GKE nodes' service account as an IAM policy member."""
        return f"serviceAccount:{self.node_service_account}"


def _location_and_auth_fit(p: Params) -> None:
    """gcr.io host names exist in three multi-regions only; keyless has no key to rotate."""
    if p.gcr_domain and p.location not in GCR_HOSTS:
        raise InvalidParameter(
            "location", "must be us, europe or asia with gcr_domain = True", p.location
        )
    if p.keyless and p.rotate and p.pull_access != "secret":
        raise InvalidParameter("rotate", 'has no key to rotate with auth = "metadata"', True)
    if p.pull_access == "node" and not p.node_service_account:
        raise InvalidParameter(
            "node_service_account",
            "must be the GKE nodes' service account's email with pull_access = \"node\"",
            "",
        )
    if p.service_account and p.pull_account == p.service_account:
        raise InvalidParameter(
            "service_account",
            "must not be 30 characters ending in -pull: user pods' account (<id>-pull, cut to "
            "30) would be the same",
            p.service_account,
        )


validate = validator(Params, PARAMETERS, _location_and_auth_fit)


# --- errors -----------------------------------------------------------------------------
class ServiceDisabled(PermissionDenied):
    """403 SERVICE_DISABLED: ``service`` is off for ``consumer`` (``projects/<number or id>``),
    or was enabled so recently that Google has not caught up (ErrorInfo, google.rpc)."""

    def __init__(self, message: str, service: str, consumer: str) -> None:
        self.service = service
        self.consumer = consumer
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.service, self.consumer), self.__dict__


def _disabled(message: str, reason: object, metadata: object) -> BinderHubRegistryError | None:
    """Ours for a SERVICE_DISABLED or quota-project 403 (ErrorInfo ``reason``, ``metadata``)."""
    items = getattr(metadata, "items", None)  # a dict (REST), or a protobuf map (gRPC)
    info: dict[str, Any] = dict(items()) if callable(items) else {}
    consumer = str(info.get("consumer", ""))
    if "requires a quota project" in message or consumer.endswith(f"/{GCLOUD_PROJECT_NUMBER}"):
        # google-auth-library-python#1459's text; or billed to gcloud's own project
        return PermissionDenied(f"{NAME}: {_QUOTA_FIX.format(project='<project_id>')}")
    if "does not have required permission to use project" in message:
        # a quota project the caller may not use (google-github-actions/auth#250)
        return PermissionDenied(
            f"{NAME}: the quota project must be one you may use (roles/serviceusage."
            "serviceUsageConsumer there): run `gcloud auth application-default "
            "set-quota-project <project_id>` with this notebook's project_id, then rerun"
        )
    if reason != "SERVICE_DISABLED":
        return None
    text = f"{NAME} answered PERMISSION_DENIED: {' '.join(message.split())[:300]}"
    return ServiceDisabled(text, str(info.get("service", "")), consumer)


def _error_info(details: Any) -> tuple[object, object]:
    """(reason, metadata) of the ErrorInfo among a REST error body's ``details``."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("rpc.ErrorInfo"):
            return detail.get("reason"), detail.get("metadata")
    return None, None


def _google_error(exc: Any) -> BinderHubRegistryError:
    """google-api-core's exception (gRPC or REST) as ours, by its canonical status name."""
    message = str(getattr(exc, "message", "") or type(exc).__name__)
    if int(getattr(exc, "code", 0) or 0) == 403:  # api-core reads ErrorInfo from both
        disabled = _disabled(message, getattr(exc, "reason", None), getattr(exc, "metadata", None))
        if disabled is not None:
            return disabled
    # a PreconditionFailure names the constraint (the org policy on keys: legacy or managed)
    violated = [
        str(getattr(v, "type", ""))
        for d in getattr(exc, "details", None) or []
        for v in getattr(d, "violations", [])
    ]
    if any(violated):
        message += f" [{', '.join(v for v in violated if v)}]"
    code = getattr(exc, "grpc_status_code", None)
    name = getattr(code, "name", None)
    if name is None:  # REST: api-core picks the class by HTTP status; the body names it
        try:
            name = exc.response.json()["error"]["status"]
        except Exception:
            name = None
    if name is None:
        return error_for_status(NAME, int(getattr(exc, "code", 500) or 500), message)
    return grpc_error(NAME, str(name), message)


def _http_error(exc: Any) -> BinderHubRegistryError:
    """google-api-python-client's HttpError as ours: Google's error body names the status."""
    status = int(getattr(exc.resp, "status", 500) or 500)
    try:
        error = json.loads(exc.content)["error"]
        message, name = str(error.get("message", "")), error.get("status")
    except (ValueError, KeyError, TypeError):
        message, name, error = str(getattr(exc, "reason", "") or ""), None, {}
    if status == 403:
        disabled = _disabled(message, *_error_info(error.get("details")))
        if disabled is not None:
            return disabled
    if name is None or status == 429 or status >= 500:  # keep Retry-After for the runner
        retry_after = exc.resp.get("retry-after") if hasattr(exc.resp, "get") else None
        try:
            seconds = float(retry_after) if retry_after is not None else None
        except ValueError:
            seconds = None
        return error_for_status(NAME, status, message, retry_after=seconds)
    return grpc_error(NAME, str(name), message)


def _errors() -> dict[type[Exception], Callable[[Any], BinderHubRegistryError]]:
    import ssl
    from http.client import HTTPException

    import httplib2  # type: ignore[import-untyped]
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc
    from googleapiclient import errors as hexc  # type: ignore[import-untyped]

    def unreachable(e: Any) -> BinderHubRegistryError:
        return TransientCloudError(f"{NAME} unreachable ({type(e).__name__})")

    return {
        hexc.HttpError: _http_error,
        ssl.SSLError: lambda e: CloudError(f"{NAME}: TLS failed ({str(e)[:200]})"),
        httplib2.HttpLib2Error: unreachable,
        HTTPException: unreachable,
        ConnectionError: unreachable,
        TimeoutError: unreachable,
        gexc.RetryError: lambda e: TransientCloudError(f"{NAME}: retries ran out ({e})"),
        gexc.GoogleAPICallError: _google_error,
        aexc.RefreshError: lambda e: AuthenticationFailed(
            f"Google refused the credentials: {str(e).splitlines()[0][:200]}"
        ),
        aexc.TransportError: lambda e: TransientCloudError(f"{NAME} unreachable"),
        aexc.DefaultCredentialsError: lambda e: MissingCredentials(
            "no Google credentials found", _SIGN_IN_HOW
        ),
    }


@contextmanager
def _mapped() -> Iterator[None]:
    with map_exceptions(_errors()):
        yield


# --- ours only: marks ----------------------------------------------------------------------
#: The service accounts' descriptions, before `` (binderhub-registry <id>)``: records from
#: before marks made them with these texts exactly (see :func:`_account_is_ours`).
PUSHER_TEXT = "Pushes BinderHub's images to {repository}"
PULLER_TEXT = "User pods pull BinderHub's images from {repository}"
#: The repository's description before its label (records from before marks).
REPOSITORY_TEXT = "Images built by BinderHub"


def _mark(conn: GoogleConnection) -> str:
    return f"{MARK} {conn.record.deployment}"


def _not_ours(what: str, recorded: object, live: object) -> CloudError:
    """The one line a mismatch stops with: nothing further is deleted."""
    return CloudError(
        f"{NAME}: {what} is not this deployment's, so nothing further is deleted: recorded "
        f"{recorded}; live {live}"
    )


def _account_is_ours(conn: GoogleConnection, account: Any, text: str) -> bool:
    """The live account carries this deployment's mark in its description; or, for a record
    from before marks, the exact text this notebook gave it then (no mark at all)."""
    marks = _MARKS.findall(account.description)
    if marks:
        return bool(marks == [conn.record.deployment])
    old = text.format(repository=conn.repository_name)
    return conn.legacy and account.description == old


def _own_named(conn: GoogleConnection, email: str) -> bool:
    """``email`` is this deployment's own account (``binderhub-<id>``) or its ``-pull`` twin:
    no other deployment uses that name by default (:func:`_account_for` refuses it)."""
    own = OWN_ACCOUNT.format(deployment=conn.record.deployment)
    return email.partition("@")[0] in (own, f"{own}-pull")


def _checked_account(conn: GoogleConnection, name: str, email: str, kind: str, text: str) -> Any:
    """The live account recorded as ``kind``, proven ours (None: gone); else the one line."""
    recorded = conn.record.created.get(kind)
    if recorded != email:
        raise _not_ours(f"service account {email}", f"{kind} = {recorded}", email)
    account = _get_account(conn, name)
    if account is None or _account_is_ours(conn, account, text):
        return account
    raise _not_ours(
        f"service account {email}",
        f"{email} described with '{_mark(conn)}'",
        f"{account.email} described {account.description!r}",
    )


def _marked_account(conn: GoogleConnection, account: Any, kind: str, text: str) -> str:
    """A found account: record it when it carries our mark (made, then a crash before the
    record); add the mark to one a record from before marks lists (PatchServiceAccount may
    change the description). Words for the step's message, or ""."""
    from google.cloud.iam_admin_v1 import types
    from google.protobuf import field_mask_pb2  # type: ignore[import-untyped]

    p, email = conn.params, account.email
    marks = _MARKS.findall(account.description)
    if marks == [conn.record.deployment]:
        if conn.record.created.get(kind) != email and not p.dry_run:
            conn.record.set(kind, email)
        return ""
    if marks or conn.record.created.get(kind) != email:
        return ""  # not ours: reused, never deleted
    if not _account_is_ours(conn, account, text):
        return ""  # recorded, unmarked and not our old text: teardown will refuse it
    if p.dry_run:
        return f"; would add '{_mark(conn)}' to its description"
    marked = f"{account.description} ({_mark(conn)})"
    with _mapped():
        conn.iam.patch_service_account(
            request=types.PatchServiceAccountRequest(
                service_account=types.ServiceAccount(name=account.name, description=marked),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            )
        )
    return f"; marked '{_mark(conn)}' (made before marks)"


def _create_account(
    conn: GoogleConnection, account_id: str, name: str, kind: str, display: str, text: str
) -> None:
    """Create a service account with our mark, recorded first: an answer lost after it was
    made leaves it recorded; ALREADY_EXISTS keeps the record only when it carries our mark."""
    from google.cloud.iam_admin_v1 import types

    p = conn.params
    email = f"{account_id}@{p.project_id}.iam.gserviceaccount.com"
    conn.record.set(kind, email)
    account = types.ServiceAccount(
        display_name=display,
        description=f"{text.format(repository=conn.repository_name)} ({_mark(conn)})",
    )
    try:
        with _mapped():
            conn.iam.create_service_account(
                name=f"projects/{p.project_id}", account_id=account_id, service_account=account
            )
    except CloudError as e:
        if e.status != 409:  # ALREADY_EXISTS: an earlier attempt, or someone else, made it
            conn.record.forget(kind)
            raise
    conn.settling.accounts.add(email)  # its calls may fail for a while: waited out
    _wait_visible(conn, name)
    live = _get_account(conn, name)
    if live is not None and _MARKS.findall(live.description) != [conn.record.deployment]:
        conn.record.forget(kind)  # someone else's, made in between: reused, never deleted


# --- replaced credentials (rotation, auth switch) ------------------------------------------
#: A ``retiring_keys`` entry that is not a key id: ``{BOUND: member}``, the Workload Identity
#: member this notebook bound, removed once a key verified (metadata -> key).
BOUND = "workload_identity"
#: record kind: what a real keyless run kept, unverified, and said so; a later run (after the
#: user checked from BinderHub's pod) may remove exactly these.
UNCHECKED = "kept_unverified"


def _retiring(conn: GoogleConnection) -> list[Any]:
    return list(conn.record.created.get(conn.retiring, []))


def _retire_later(conn: GoogleConnection, entries: list[Any], kind: str) -> None:
    """Move what ``kind`` records into the retiring list: ``finish_rotation`` removes it.

    The list is saved first: a crash before ``kind`` is forgotten leaves it in both, and the
    rerun's move adds nothing twice; never the other way round (forgotten, not retiring: leaked).
    A dry run moves it in memory only (``Connection.note``), so ``finish_rotation`` can say
    what the real run would do.
    """
    conn.retire_later(*entries)
    conn.note(kind, None)


def _keep(conn: GoogleConnection, entry: Any, kind: str, value: Any) -> None:
    """Take ``entry`` back out of the retiring list and record it as ``kind`` again: it is in
    use once more (a switch back before ``finish_rotation`` removed it). Recorded first, so a
    crash in between leaves it recorded, never forgotten."""
    conn.note(kind, value)
    conn.unretire(entry)


#: ``retiring_keys`` entries of user pods' side: ``{PULL_KEY: key id}``, a key of the pull
#: account a rotation or a switch of ``pull_access`` replaced; ``{PULL_NODE: member}``, the
#: nodes' service account whose reader binding a switch away from "node" replaced.
PULL_KEY = "pull_key"
PULL_NODE = "pull_node"


def _retiring_keys(retiring: list[Any]) -> list[str]:
    return [str(e) for e in retiring if not isinstance(e, dict)]


def _retiring_of(retiring: list[Any], kind: str) -> list[str]:
    return [str(e[kind]) for e in retiring if isinstance(e, dict) and kind in e]


def _retiring_members(retiring: list[Any]) -> list[str]:
    return [str(e[BOUND]) for e in retiring if isinstance(e, dict) and BOUND in e]


# --- keyless values ------------------------------------------------------------------------
def _keyless_header(out: Path) -> str:
    """The values files' opening comment: the core's (source, then the helm commands with the
    files' real paths), and that BinderHub has no key."""
    return values_header(NOTEBOOK, out / "config.yaml", out / "secret.yaml") + (
        "# auth = metadata: BinderHub has no key; secret.yaml: user pods' pull key, when written\n"
    )


@dataclass(frozen=True)
class KeylessValues:
    """BinderHub's values for ``GoogleArtifactRegistry``: ``config.yaml`` only, no secret."""

    image_prefix: str
    url: str  # DockerRegistry.url: the registry, https://<host>
    token_url: str  # the metadata server's token URL

    def config(self) -> dict[str, Any]:
        """The ``config.yaml`` values."""
        return {
            "config": {
                "BinderHub": {
                    "use_registry": True,
                    "image_prefix": self.image_prefix,
                    "registry_class": KEYLESS_CLASS,
                },
                "DockerRegistry": {"url": self.url, "token_url": self.token_url},
            }
        }


@dataclass(frozen=True)
class KeylessFiles:
    """Where the keyless ``config.yaml`` was written, with its display."""

    config_path: Path
    values: KeylessValues
    pull: PullSecret | None = None  # user pods' key, in secret.yaml (pull_access = "secret")

    def _text(self) -> str:
        import yaml

        body = yaml.safe_dump(self.values.config(), sort_keys=False)
        if self.pull is None:
            return f"# {self.config_path}\n{body}\n# no secret.yaml: no key (auth = metadata)"
        secret = yaml.safe_dump(
            {"jupyterhub": {"imagePullSecret": self.pull.values()}}, sort_keys=False
        )
        return (
            f"# {self.config_path}\n{body}\n# {self.config_path.parent / 'secret.yaml'} (mode "
            f"0600): user pods' pull key alone (BinderHub has no key: auth = metadata)\n{secret}"
        )

    def __repr__(self) -> str:
        return self._text()

    def _repr_markdown_(self) -> str:
        return f"```yaml\n{self._text()}\n```"

    def next_step(self) -> str:
        """The helm commands that install BinderHub with these files, then ``verify``'s."""
        return next_commands(self.config_path, self.config_path.parent / "secret.yaml")


def _stored_section(out: Path, key: str) -> dict[str, Any] | None:
    """``secret.yaml``'s top-level ``key`` (``registry``, ``jupyterhub``), or None."""
    try:
        section = read_values_file(out / "secret.yaml").get(key)
    except (OSError, BinderHubRegistryError, AttributeError):
        return None
    return section if isinstance(section, dict) and section else None


def _write_secret(
    out: Path,
    registry: dict[str, Any] | None,
    pull: PullSecret | None,
    jupyterhub: dict[str, Any] | None = None,
) -> None:
    """Keyless ``secret.yaml`` (0600): an earlier key's ``registry``, if it must stay, and
    user pods' ``jupyterhub.imagePullSecret``; removed when it would hold neither."""
    import yaml

    values: dict[str, Any] = {}
    if registry is not None:
        values["registry"] = registry
    if pull is not None:
        jupyterhub = {"imagePullSecret": pull.values(reveal=True)}
    if jupyterhub is not None:
        values["jupyterhub"] = jupyterhub
    if not values:
        return  # nothing to hold (an earlier file stays as finish_rotation leaves it)
    text = _keyless_header(out) + yaml.safe_dump(values, sort_keys=False)
    write_private_file(out / "secret.yaml", text)


# --- the connection ---------------------------------------------------------------------
@dataclass
class GoogleConnection(Connection):
    """A signed-in Google Cloud session: Service Usage, Artifact Registry and IAM clients."""

    NOTEBOOK = NOTEBOOK
    HINTS = VerifyHints(
        credentials="the key was deleted or its service account is gone: rerun this notebook",
        push=(
            f"the service account needs {ROLE} on the repository (rerun this notebook), and the "
            "repository must exist"
        ),
        pull=f"the account needs {PULL_ROLE} on the repository (rerun this notebook)",
    )
    retiring = "retiring_keys"

    params: Params
    credentials: Any
    usage: Any  # Service Usage v1 (google-api-python-client Resource)
    registry: Any  # Artifact Registry v1 projects.locations (google-api-python-client Resource)
    iam: Any  # IAMClient (gRPC)
    poll: float  # seconds between operation polls
    api_enabled: bool = True  # False in a dry run that would enable the API: nothing to look up
    iam_enabled: bool = True  # False in a dry run that would enable IAM: no account to read
    host: str = ""  # the registry host, once the repository is known
    metadata_url: str = METADATA_URL  # keyless: the metadata server BinderHub's pod asks
    bound: bool = False  # keyless: BinderHub's Kubernetes service account may act as ours
    legacy: bool = False  # the record predates marks (see :func:`_legacy`)
    settling: _Settling = field(default_factory=lambda: _Settling(set(), 0.0, 0.0))
    projects: Any = None  # Artifact Registry v1 projects (project settings: gcr.io redirection)

    def _image_prefix(self) -> str:
        p = self.params
        path = (
            f"{p.project_id}/{p.prefix}"
            if p.gcr_domain
            else f"{p.project_id}/{p.repository}/{p.prefix}"
        )
        return f"{self.host}/{path}"

    def keyless_values(self) -> KeylessValues | None:
        """BinderHub's keyless values, once the repository is known and the binding made."""
        if not self.host or not self.bound:
            return None
        return KeylessValues(
            image_prefix=self._image_prefix(),
            url=f"https://{self.host}",
            token_url=self.metadata_url + TOKEN_PATH,
        )

    # Overrides Connection.write_values: keyless values are config.yaml alone (no credential
    # for RegistryValues to hold), and an earlier key's registry.* stays in secret.yaml.
    def write_values(self) -> Result[Any]:
        """Key: ``config.yaml`` and ``secret.yaml``; keyless: ``config.yaml`` alone."""
        if not self.params.keyless:
            return super().write_values()
        p, out = self.params, self.params.output_dir
        values = self.keyless_values()
        if values is None or p.dry_run:
            return Result(None, "skipped", "nothing to write (dry run or teardown)")
        pull = self.pull_secret if p.pull_access == "secret" else None
        if p.pull_access == "secret" and pull is None:
            raise RuntimeError("pull_access is 'secret' but no pull credential was made (a bug)")
        import yaml

        out.mkdir(parents=True, exist_ok=True)
        path = out / "config.yaml"
        # beside it, then renamed over it, as the core writes config.yaml (a link is replaced)
        write_file(
            path,
            _keyless_header(path.parent) + yaml.safe_dump(values.config(), sort_keys=False),
            mode=0o644,
        )
        earlier = _stored_section(out, "registry")
        _write_secret(out, earlier, pull)
        detail = f"{path} (BinderHub: no key)"
        if pull is not None:
            detail += "; secret.yaml (0600): user pods' pull key"
        # an earlier key run's registry.* stays until finish_rotation deletes its key: build
        # pods that cannot push keylessly still need it, and a switch back reuses it
        if earlier is not None:
            detail += "; secret.yaml (an earlier key) stays until that key is removed"
        return Result(KeylessFiles(path, values, pull), "done", detail)

    # Overrides Connection.verify: keyless values are checked through the metadata server
    # (verify_keyless), which answers only inside the cluster or the sandbox.
    def verify(self, files: Any) -> Result[VerificationReport | None]:
        """Key: verify the files as usual; keyless: :func:`verify_keyless` in the sandbox."""
        if not self.params.keyless:
            return super().verify(files)
        if files is None:
            return Result(None, "skipped", "no values were written")
        if not self.params.sandbox:
            return Result(
                None,
                "skipped",
                "the metadata server answers only inside the cluster: check from BinderHub's "
                f"pod, with the tools its image has: {keyless_check_command(self.params)}",
            )
        report = verify_keyless(
            files.values,
            self.ca_file,
            self.HINTS,
            files.pull,
            registry=_stored_section(self.params.output_dir, "registry"),
            stand_in=("oauth2accesstoken", self._deployer_token()),
            account=self.params.email,
            fix=f"run {annotate_command(self.params)}",
        )
        push = next(c for c in report.checks if c.name == PUSH_CHECK)
        pushes = (
            f"build pods' push is {NOT_COVERED} (the written values give them no credential)"
            if push.status == "skipped"
            else f"build pods push to {report.image} with an earlier key, {NOT_COVERED}"
        )
        return Result(report, "done", f"BinderHub's keyless check works; {pushes}")

    def _deployer_token(self) -> Secret:
        """A fresh access token of the signed-in deployer (sandbox: the seeded Owner)."""
        import requests
        from google.auth.transport.requests import Request

        session = requests.Session()
        _trusting(session, self.ca_file)
        with _mapped():
            self.credentials.refresh(Request(session))
        return Secret(str(self.credentials.token))

    def values_to_deploy(self) -> str:
        """Keyless values are ``config.yaml`` alone; with a key, ``secret.yaml`` holds it."""
        return "config.yaml" if self.params.keyless else "secret.yaml"

    # Overrides Connection.finish_rotation: keyless for real, nothing here verified the new
    # values, so replaced keys are kept once and told of; then the secret.yaml holding one goes.
    async def finish_rotation(self) -> Result[None]:
        """Remove what a rotation or an auth switch replaced, once the new values verified.

        Keyless for real, nothing verified here: a run that finds anything retiring it has not
        yet told of keeps it all and says so (recorded as ``UNCHECKED``); a later run removes
        it. Once the keys are gone, so is the ``secret.yaml`` that held one.
        """
        p, retiring = self.params, _retiring(self)
        told = self.record.created.get(UNCHECKED, [])
        unverifiable = p.keyless and not p.sandbox and not p.teardown
        # anything retired since the last "kept" line (a new switch, another k8s_namespace)
        # is kept this run and told; only what an earlier run told of is removed
        if unverifiable and not p.keep_replaced and [e for e in retiring if e not in told]:
            if p.dry_run:
                return Result(None, "planned", f"would keep {len(retiring)} replaced credential(s)")
            self.record.set(UNCHECKED, retiring)
            return Result(
                None,
                "done",
                f"kept {len(retiring)} replaced credential(s): keyless access can be checked "
                "only from BinderHub's pod; deploy config.yaml, check it (see the verify step) "
                "and that build pods push without the key (step 7), then rerun to remove them",
            )
        result = await super().finish_rotation()
        gone = result.status == "deleted" or not retiring
        if gone and UNCHECKED in self.record.created and not p.dry_run:
            self.record.forget(UNCHECKED)
        if result.status == "deleted" and p.keyless:  # its key was deleted: nothing may deploy it
            out = p.output_dir
            # user pods' key stays while it is theirs
            pull = _stored_section(out, "jupyterhub") if p.pull_access == "secret" else None
            if pull is None:
                (out / "secret.yaml").unlink(missing_ok=True)
            else:
                _write_secret(out, None, None, pull)
        return result

    def values(self) -> RegistryValues | None:
        """BinderHub's values: the repository's host, ``_json_key`` and the key JSON."""
        p, key = self.params, self.secret
        if key is None or not self.host:
            return None
        url = f"https://{self.host}"
        # pkg.dev: the form mybinder.org staging ran on Artifact Registry (mybinder.org-deploy
        # 9bd26443), so Google gets only BinderHub's appended service=container_registry, which
        # it ignores; gcr.io hosts: BinderHub's own default for them (registry.py,
        # _default_token_url). token_url stays: BinderHub's challenge-following path wants a
        # quoted service in the challenge, which gcr.io hosts send unquoted (DESIGN.md 9)
        token_url = f"{url}/v2/token"
        if p.gcr_domain:
            token_url += f"?service={_google_host(p)}"
        return RegistryValues(
            image_prefix=self._image_prefix(),
            username=USERNAME,
            password=key,
            registry_url=url,
            docker_registry={"url": url, "token_url": token_url},
        )

    def deletions(self) -> list[Deletion]:
        """Keys, the bindings, the service accounts, the repository: only ours. Never an API
        (see :meth:`teardown`)."""
        p = self.params
        return [
            Deletion(self.retiring, "the replaced keys and bindings", self.retire),
            Deletion(
                PULL_KEY,
                "user pods' service account key",
                lambda key: self._delete_key(key, self.pull_account_name),
            ),
            Deletion("key", "the service account key", lambda key: self._delete_key(key)),
            Deletion(
                BOUND,
                f"{WORKLOAD_IDENTITY_USER} on {p.email} for BinderHub's Kubernetes account",
                lambda member: self._unbind_workload_identity(str(member)),
            ),
            Deletion(
                PULL_NODE,
                f"{PULL_ROLE} for the nodes' service account",
                lambda member: self._remove_binding(PULL_ROLE, str(member)),
            ),
            Deletion(
                "pull_binding",
                f"{PULL_ROLE} for {p.pull_email}",
                lambda v: self._unbind("pull_binding", v),
            ),
            Deletion(
                "binding",
                f"{ROLE} for {p.email}",
                lambda v: self._unbind("binding", v),
            ),
            Deletion(
                "pull_service_account",
                f"service account {p.pull_email}",
                lambda _: self._delete_account(None, pull=True),
            ),
            Deletion("service_account", f"service account {p.email}", self._delete_account),
            Deletion("repository", f"repository {p.repository_id}", self._delete_repository),
        ]

    def retire(self, retiring: list[Any]) -> None:
        """Delete the keys a rotation or a switch to keyless replaced, and remove the Workload
        Identity members a switch to a key replaced (each only as recorded; gone is fine);
        user pods' side likewise: replaced pull keys, and the nodes' reader binding."""
        for member in _retiring_members(retiring):
            self._unbind_workload_identity(member)
        for key in _retiring_keys(retiring):
            self._delete_key(key)
        for key in _retiring_of(retiring, PULL_KEY):
            self._delete_key(key, self.pull_account_name)
        for member in _retiring_of(retiring, PULL_NODE):
            self._remove_binding(PULL_ROLE, member)

    # --- names and deletions ------------------------------------------------------------
    @property
    def account_name(self) -> str:
        """The service account's resource name."""
        return f"projects/{self.params.project_id}/serviceAccounts/{self.params.email}"

    @property
    def pull_account_name(self) -> str:
        """User pods' service account's resource name."""
        return f"projects/{self.params.project_id}/serviceAccounts/{self.params.pull_email}"

    @property
    def repository_name(self) -> str:
        """The repository's resource name."""
        p = self.params
        return f"projects/{p.project_id}/locations/{p.location}/repositories/{p.repository_id}"

    def _delete_key(self, key_id: str, account: str | None = None) -> None:
        """Delete a key of ``account`` (a resource name; BinderHub's when None)."""
        try:
            with _mapped():
                self.iam.delete_service_account_key(
                    name=f"{account or self.account_name}/keys/{key_id}"
                )
        except CloudError as e:
            if e.status != 404:
                raise

    def _bound(self, kind: str, recorded: Any) -> str:
        """The member whose role ``kind`` records: this deployment's account, as recorded
        (records from before name the role: then the account in use); else the one line."""
        p = self.params
        member = p.pull_member if kind == "pull_binding" else p.member
        if recorded in (member, PULL_ROLE if kind == "pull_binding" else ROLE):
            return member
        raise _not_ours(f"the {kind} member", recorded, member)

    def _unbind(self, kind: str, recorded: Any) -> None:
        """Remove the recorded member's role, unless another deployment still uses its
        account (:meth:`_shared`)."""
        p, member = self.params, self._bound(kind, recorded)
        pull = kind == "pull_binding"
        name, email = (
            (self.pull_account_name, p.pull_email) if pull else (self.account_name, p.email)
        )
        if not self._shared(name, email):
            self._remove_binding(PULL_ROLE if pull else ROLE, member)

    def _checked_accounts(self) -> list[tuple[str, str]]:
        """The recorded accounts, each proven ours (or gone): (its name, its email)."""
        p, found = self.params, []
        for kind, name, email, words in (
            ("pull_service_account", self.pull_account_name, p.pull_email, PULLER_TEXT),
            ("service_account", self.account_name, p.email, PUSHER_TEXT),
        ):
            if self.record.created.get(kind) and _checked_account(self, name, email, kind, words):
                found.append((name, email))
        return found

    def _checked_repository(self) -> dict[str, Any] | None:
        """The recorded repository, proven ours (None: gone); else the one line."""
        recorded = self.record.created.get("repository")
        if recorded != self.repository_name:
            raise _not_ours("the repository", recorded, self.repository_name)
        repo = _find_repository(self)
        if repo is None or _repository_is_ours(self, repo):
            return repo
        live = (repo.get("labels") or {}).get(MARK)
        raise _not_ours(
            f"repository {self.repository_name}",
            f"label {MARK}: {self.record.deployment}",
            f"label {MARK}: {live}" if live else f"no {MARK} label",
        )

    # Overrides Connection.teardown: it leaves the project's APIs enabled (other users may need
    # them) and says so, and forgets the account name once nothing it named is left.
    async def teardown(self) -> Result[None]:
        """Check first that every recorded account and the repository are this deployment's
        (their marks, their recorded names: :func:`_checked_account`), then delete as the
        core does: a mismatch stops with one line before anything is deleted."""
        created = self.record.created
        if self.params.teardown and not self.params.dry_run:
            for kind in ("binding", "pull_binding"):
                if created.get(kind):
                    self._bound(kind, created[kind])
            self._checked_accounts()
            if created.get("repository"):
                self._checked_repository()
        result = await super().teardown()
        if result.status == "deleted":
            self.record.forget(ACCOUNT)  # nothing is left that it named
        apis = created.get("api")
        if not apis or not self.params.teardown:
            return result
        # an API is the project's, not this deployment's: disabling Artifact Registry skips
        # Service Usage's usage check by default (checkIfServiceHasUsage: SKIP, serviceusage
        # v1 discovery document), so every repository made since, by anyone, would stop
        stays = (
            f"{', '.join([apis] if isinstance(apis, str) else apis)} stay enabled (never "
            "disabled: other repositories and service accounts in the project may use them)"
        )
        if not self.params.dry_run:
            self.record.forget("api")
        if result.status == "skipped":
            return Result(None, "skipped", f"nothing to delete; {stays}")
        return _replace(result, detail=f"{result.detail}; {stays}")

    def _delete_account(self, _: Any, pull: bool = False) -> None:
        p = self.params
        kind, name, email, text = (
            ("pull_service_account", self.pull_account_name, p.pull_email, PULLER_TEXT)
            if pull
            else ("service_account", self.account_name, p.email, PUSHER_TEXT)
        )
        if _checked_account(self, name, email, kind, text) is None:
            return  # gone already
        if self._shared(name, email):
            return
        with _mapped():
            self.iam.delete_service_account(name=name)

    def _shared(self, name: str, email: str) -> bool:
        """A named account (not this deployment's own) that still holds keys once the ones
        this deployment recorded are deleted: another deployment pushes with it, so it stays,
        with its role on the repository (teardown deletes the keys before these)."""
        if _own_named(self, email):
            return False
        try:
            others = _user_keys(self, name)
        except CloudError as e:
            if e.status == 404:
                return False
            raise
        if others:
            progress(f"{email} stays: {len(others)} key(s) this deployment did not make use it")
        return bool(others)

    def _delete_repository(self, _: Any) -> None:
        if self._checked_repository() is None:
            return  # gone already
        with _mapped():
            operation = self.registry.repositories().delete(name=self.repository_name).execute()
        _wait(self, self.registry, operation, "deleting the repository")

    def _unbind_workload_identity(self, member: str) -> None:
        """Remove ``member`` (the one recorded) from workloadIdentityUser; other members stay."""

        def without(bindings: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            changed = False
            for b in bindings:
                if _unconditional(b, WORKLOAD_IDENTITY_USER) and member in b["members"]:
                    b["members"].remove(member)
                    changed = True
            return bindings if changed else None

        try:
            _edit_account_policy(self, without)
        except CloudError as e:
            if e.status != 404:
                raise

    def _remove_binding(self, role: str = ROLE, member: str | None = None) -> None:
        """Remove ``member`` (BinderHub's account when None) from ``role`` on the repository."""
        member = member or self.params.member

        def without(bindings: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            changed = False
            for b in bindings:
                if _unconditional(b, role) and member in b["members"]:
                    b["members"].remove(member)
                    changed = True
            return bindings if changed else None

        try:
            _edit_policy(self, without)
        except CloudError as e:
            if e.status != 404:
                raise


# --- Google's eventual consistency -----------------------------------------------------------
_ACCOUNT_IN_NAME = re.compile(r"/serviceAccounts/([^/]+)")
#: A new service account's answers while it is not visible everywhere (DESIGN.md 9; terraform-
#: provider-google#10227: 403 on a read; magic-modules#8815 retries it).
_LAGGING = ("NOT_FOUND", "PERMISSION_DENIED", "INVALID_ARGUMENT")
#: An INVALID_ARGUMENT that is no lag: the member's Workload Identity pool has no GKE cluster
#: (terraform-google-kubernetes-engine#916); waiting does not make one.
_NOT_LAG = "Identity Pool does not exist"


@dataclass
class _Settling:
    """Retries, in the transports, exactly the answers Google says to wait out.

    - 403 SERVICE_DISABLED for an API Service Usage says is on in this project (this run
      enabled it, or found it on): "If you enabled this API recently, wait a few minutes for
      the action to propagate to our systems and retry" (the error's own text; Terraform's
      guide, "Newly activated service errors"), for up to ``api_deadline`` seconds;
    - NOT_FOUND, PERMISSION_DENIED or INVALID_ARGUMENT on a service account this run created
      (read, key list or create, its policy, a repository policy naming it), for up to
      ``account_deadline`` seconds, as Terraform retries them (terraform-provider-google#10227,
      PR #15677 / magic-modules#8815; DESIGN.md 9: ~90 s, as Google's samples).

    Anything else passes through at once: a disabled API nobody enabled, a refusal on an
    account made earlier, another project's answer. Each wait is shown as the running step's
    progress and kept in ``notes`` (what was waited for, and how often).
    """

    consumers: set[str]  # projects/<id> (and projects/<number>, once Service Usage named it)
    first_wait: float
    max_wait: float
    api_deadline: float = 300.0
    account_deadline: float = 120.0
    enabled: set[str] = field(default_factory=set)  # APIs Service Usage says are on
    accounts: set[str] = field(default_factory=set)  # emails of accounts this run created
    paused: bool = False  # while a caller counts the answers itself (:func:`_wait_visible`)
    notes: dict[str, int] = field(default_factory=dict)  # why -> retries

    def why(self, code: str, reason: str, service: str, consumer: str, account: str) -> str:
        """The wait worth doing for a failed call, or ""."""
        if self.paused:
            return ""
        if reason == "SERVICE_DISABLED" and service in self.enabled and consumer in self.consumers:
            return (
                f"{service} was just enabled: Google answers SERVICE_DISABLED until the change "
                "reaches all its servers (its message says to wait a few minutes)"
            )
        if account in self.accounts and code in _LAGGING:
            return f"the new service account {account} is not visible everywhere yet ({code})"
        return ""

    def retry(self, call: Callable[[], T], failure: Callable[[T], str]) -> T:
        """``call()`` until ``failure`` of its outcome is "" or the deadline passes."""
        started, attempt = time.monotonic(), 0
        while True:
            outcome = call()
            why = failure(outcome)
            if not why:
                return outcome
            waited = time.monotonic() - started
            deadline = self.api_deadline if "SERVICE_DISABLED" in why else self.account_deadline
            if waited >= deadline:
                return outcome  # the caller raises the answer as it is
            attempt += 1
            self.notes[why] = self.notes.get(why, 0) + 1
            progress(f"{why}: waiting ({waited:.0f}s, attempt {attempt + 1})")
            time.sleep(min(self.first_wait * 2 ** min(attempt - 1, 16), self.max_wait))

    def rest_failure(self, status: int, content: bytes, body: Any) -> str:
        """:meth:`why` for a REST answer (Google's JSON error body)."""
        if status not in (400, 403, 404):
            return ""
        try:
            error = json.loads(content)["error"]
        except (ValueError, KeyError, TypeError):
            return ""
        if _NOT_LAG in str(error.get("message", "")):
            return ""
        reason, metadata = _error_info(error.get("details"))
        info = metadata if isinstance(metadata, dict) else {}
        named = re.findall(r"serviceAccount:([^\"\s,]+)", body if isinstance(body, str) else "")
        account = next((a for a in named if a in self.accounts), "")
        return self.why(
            str(error.get("status", "")),
            str(reason or ""),
            str(info.get("service", "")),
            str(info.get("consumer", "")),
            account,
        )

    def grpc_failure(self, call: Any, request: Any) -> str:
        """:meth:`why` for a gRPC outcome (ErrorInfo from the rich status)."""
        code = call.code() if callable(getattr(call, "code", None)) else None
        if code is None or code.name == "OK":
            return ""
        if callable(getattr(call, "details", None)) and _NOT_LAG in str(call.details() or ""):
            return ""
        reason = service = consumer = ""
        for key, value in call.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                reason, service, consumer = _grpc_error_info(value)
        name = str(getattr(request, "name", "") or getattr(request, "resource", "") or "")
        found = _ACCOUNT_IN_NAME.search(name)
        return self.why(code.name, reason, service, consumer, found.group(1) if found else "")


def _grpc_error_info(status: bytes) -> tuple[str, str, str]:
    """(reason, service, consumer) of the ErrorInfo in a ``grpc-status-details-bin`` value."""
    from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

    try:
        for detail in status_pb2.Status.FromString(status).details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                meta = dict(info.metadata)
                return info.reason, meta.get("service", ""), meta.get("consumer", "")
    except Exception:  # a malformed trailer: no reason to wait
        pass
    return "", "", ""


class _SettlingHttp:
    """An httplib2-like ``Http`` for google-api-python-client that retries as
    :class:`_Settling` says (everything else is the wrapped ``AuthorizedHttp``'s)."""

    def __init__(self, http: Any, settling: _Settling) -> None:
        self._http = http
        self._settling = settling

    def request(self, uri: str, method: str = "GET", body: Any = None, **kwargs: Any) -> Any:
        """``Http.request``, retried while Google settles."""
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return self._settling.retry(
            lambda: self._http.request(uri, method, body=body, **kwargs),
            lambda answer: self._settling.rest_failure(int(answer[0].status), answer[1], text),
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._http, name)


def _settling_interceptor(settling: _Settling) -> Any:
    """A gRPC client interceptor that retries IAM calls as :class:`_Settling` says."""
    import grpc  # type: ignore[import-untyped]

    class Interceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return settling.retry(
                lambda: continuation(details, request),
                lambda call: settling.grpc_failure(call, request),
            )

    return Interceptor()


# --- sign-in ------------------------------------------------------------------------------
def _trusting(session: Any, ca_file: str | None) -> None:
    """Make an SDK's requests session trust the sandbox's CA (and no proxy)."""
    if ca_file:
        session.verify = ca_file
        session.trust_env = False


def _rest_client(
    api: str,
    credentials: Any,
    endpoint: str | None,
    ca_file: str | None,
    settling: _Settling | None = None,
) -> Any:
    """A google-api-python-client service from its shipped discovery document (no download);
    its HTTP retries what ``settling`` says to wait out."""
    import google_auth_httplib2  # type: ignore[import-untyped]
    import httplib2
    from googleapiclient.discovery import build  # type: ignore[import-untyped]

    # the sandbox's CA, and no proxy from the environment (requests' trust_env=False)
    plain = (
        httplib2.Http(ca_certs=ca_file, proxy_info=None, timeout=60)
        if ca_file
        else httplib2.Http(timeout=60)
    )
    http: Any = google_auth_httplib2.AuthorizedHttp(credentials, http=plain)
    if settling is not None:
        http = _SettlingHttp(http, settling)
    options = {"api_endpoint": endpoint + "/"} if endpoint else None
    return build(
        api,
        "v1",
        http=http,
        client_options=options,
        static_discovery=True,
        cache_discovery=False,
    )


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
    import grpc
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


# --- the guide's steps -------------------------------------------------------------------------
def _wait(conn: GoogleConnection, api: Any, operation: dict[str, Any], what: str) -> Any:
    """Poll a long-running operation (``api.operations().get``) until done, with progress.

    An operation answered ``done`` at once (Service Usage's ``noop.DONE_OPERATION``) is not
    polled; a failed one raises its ``error``.
    """
    started = time.monotonic()
    while not operation.get("done"):
        progress(f"{what}: waiting ({time.monotonic() - started:.0f}s)")
        time.sleep(conn.poll)
        with _mapped():
            operation = api.operations().get(name=operation["name"]).execute()
    if "error" in operation:
        error = operation["error"]
        raise CloudError(f"{NAME}: {what} failed: {error.get('message', error)}")
    return operation.get("response")


@creates
def enable_api(conn: GoogleConnection) -> Result[None]:
    """Enable every API the notebook calls that a new project has off (:data:`SERVICES`:
    Artifact Registry and IAM) through Service Usage, each a no-op when it is on.

    A new project has only Google's default services on (cloud.google.com/service-usage/docs/
    enabled-service), and IAM is not among them. What this run enables is recorded, never
    disabled (see :meth:`GoogleConnection.teardown`). Google may answer 403 SERVICE_DISABLED
    for a few minutes after an enable: the calls that follow wait it out (:class:`_Settling`).
    """
    p = conn.params
    found, enabled, planned = [], [], []
    for service in SERVICES:
        name = f"projects/{p.project_id}/services/{service}"
        with _mapped():
            answer = conn.usage.services().get(name=name).execute()
        # Service Usage names the project by number: the consumer its 403s name
        number = str(answer.get("parent", "")).partition("/")[2]
        if number:
            conn.settling.consumers.add(f"projects/{number}")
        if answer.get("state") == "ENABLED":
            conn.settling.enabled.add(service)
            found.append(service)
            continue
        if p.dry_run:
            planned.append(service)
            conn.api_enabled = conn.api_enabled and service != SERVICE
            conn.iam_enabled = conn.iam_enabled and service != IAM_SERVICE
            continue
        with _mapped():
            operation = conn.usage.services().enable(name=name, body={}).execute()
        recorded = conn.record.created.get("api")
        apis = [recorded] if isinstance(recorded, str) else list(recorded or [])
        conn.record.set("api", [*apis, service] if service not in apis else apis)
        _wait(conn, conn.usage, operation, f"enabling {service}")
        conn.settling.enabled.add(service)
        enabled.append(service)
    on = f"; {', '.join(found)} {'was' if len(found) == 1 else 'were'} on" if found else ""
    if planned:
        return Result(None, "planned", f"would enable {', '.join(planned)}{on}")
    if enabled:
        return Result(None, "created", f"enabled {', '.join(enabled)}{on}")
    return Result(None, "reused", f"{' and '.join(found)} are enabled")


def _check_location(conn: GoogleConnection) -> None:
    """``location`` must be one of Artifact Registry's (``locations.list``), checked before
    the repository is looked up or made; a real location is never guessed from a list here."""
    p = conn.params
    with _mapped():
        answer = conn.registry.list(name=f"projects/{p.project_id}").execute()
    locations = sorted(str(loc.get("locationId", "")) for loc in answer.get("locations", []))
    if locations and p.location not in locations:
        near = [loc for loc in locations if loc.split("-")[0] == p.location.split("-")[0]]
        raise InvalidParameter(
            "location",
            "must be one of Artifact Registry's locations (gcloud artifacts locations list)"
            + (f", e.g. {', '.join(near[:6])}" if near else ""),
            p.location,
        )


def _find_repository(conn: GoogleConnection) -> Any | None:
    try:
        with _mapped():
            return conn.registry.repositories().get(name=conn.repository_name).execute()
    except CloudError as e:
        if e.status == 404:
            return None
        raise


def _google_host(p: Params) -> str:
    """The repository's host on Google: ``<location>-docker.pkg.dev``, or its gcr.io host."""
    return GCR_HOSTS[p.location] if p.gcr_domain else f"{p.location}-docker.pkg.dev"


def _host_of(conn: GoogleConnection, repo: Any) -> str:
    p = conn.params
    if repo is not None and repo.get("registryUri") and p.sandbox:
        return str(repo["registryUri"]).split("/", 1)[0]  # the sandbox front stands in
    return _google_host(p)


@creates
def ensure_repository(conn: GoogleConnection) -> Result[str | None]:
    """Create or reuse the Docker-format repository; its host is where images go.

    A new repository carries this deployment's mark: the label ``binderhub-registry: <id>``
    (and the id in its description), which teardown checks before deleting it.
    """
    p = conn.params
    if conn.api_enabled:
        _check_location(conn)
    gcr = _gcr_redirection(conn) if p.gcr_domain else ""
    repo = _find_repository(conn) if conn.api_enabled else None
    if repo is not None:
        if repo.get("format") != "DOCKER":
            raise CloudError(f"repository {p.repository_id} exists but is not Docker-format")
        conn.host = _host_of(conn, repo)
        marked = _marked_repository(conn, repo)
        return Result(conn.host, "reused", f"repository {conn.repository_name}{marked}{gcr}")
    if p.dry_run:
        # with the API still off, locations.list cannot answer: the real run checks first
        unchecked = "" if conn.api_enabled else f" (location {p.location} checked once enabled)"
        return Result(
            None,
            "planned",
            f"would create Docker repository {conn.repository_name}{unchecked}{gcr}",
        )
    parent = f"projects/{p.project_id}/locations/{p.location}"
    wanted = {
        "format": "DOCKER",
        "description": f"{REPOSITORY_TEXT} ({_mark(conn)})",
        "labels": {MARK: conn.record.deployment},
    }
    conn.record.set("repository", conn.repository_name)  # first: a lost answer leaves it ours
    try:
        with _mapped():
            operation = (
                conn.registry.repositories()
                .create(parent=parent, repositoryId=p.repository_id, body=wanted)
                .execute()
            )
    except CloudError as e:
        if e.status != 409:  # created by an earlier attempt whose answer was lost, or another
            conn.record.forget("repository")
            raise
    else:
        _wait(conn, conn.registry, operation, "creating the repository")
    repo = _find_repository(conn)
    if repo is None or (repo.get("labels") or {}).get(MARK) != conn.record.deployment:
        conn.record.forget("repository")  # someone else's, made in between: never deleted
    conn.host = _host_of(conn, repo)
    return Result(conn.host, "created", f"Docker repository {conn.repository_name}{gcr}")


#: legacyRedirectionState values under which gcr.io host names reach Artifact Registry
#: (artifactregistry v1 ProjectSettings; the copying ones copy only while Container Registry
#: still serves, which it stopped doing on 2025-03-18).
REDIRECTED = (
    "REDIRECTION_FROM_GCR_IO_ENABLED",
    "REDIRECTION_FROM_GCR_IO_FINALIZED",
    "REDIRECTION_FROM_GCR_IO_ENABLED_AND_COPYING",
)
#: What becomes of images Container Registry held (setup-gcr-repo: copying is separate).
_NOT_COPIED = (
    "images Container Registry held are not copied into this repository, so BinderHub finds "
    "none of them and rebuilds each repository on its next launch"
)


def _gcr_redirection(conn: GoogleConnection) -> str:
    """``gcr_domain``: gcr.io names reach this repository only with the project's redirection
    on (``projects.getProjectSettings``, ``legacyRedirectionState``). Words for the step when
    it is on; off, one line saying how to turn it on (not done here: it moves all of the
    project's gcr.io traffic to Artifact Registry, not just BinderHub's). A dry run only says."""
    p = conn.params
    if not conn.api_enabled:  # a dry run before the API is on: nothing to read
        return f"; gcr.io redirection not read yet (the API is off); {_NOT_COPIED}"
    with _mapped():
        settings = conn.projects.getProjectSettings(
            name=f"projects/{p.project_id}/projectSettings"
        ).execute()
    state = str(settings.get("legacyRedirectionState") or "REDIRECTION_STATE_UNSPECIFIED")
    host = GCR_HOSTS[p.location]
    if state in REDIRECTED:
        on = f"gcr.io redirection is on ({state}): {host}/{p.project_id}/... reaches it"
        return f"; {on}; {_NOT_COPIED}"
    off = (
        f"gcr_domain: redirection from gcr.io is off in project {p.project_id} ({state}), so "
        f"{host}/{p.project_id}/... names would not reach this repository: turn it on with "
        f"`gcloud artifacts settings enable-upgrade-redirection --project={p.project_id}` "
        "(it sends all of the project's gcr.io traffic to Artifact Registry), then rerun; "
        f"{_NOT_COPIED}"
    )
    if p.dry_run:
        return f"; would stop: {off}"
    raise CloudError(f"{NAME}: {off}")


def _marked_repository(conn: GoogleConnection, repo: dict[str, Any]) -> str:
    """A found repository: record it when it carries our label (made, then a crash before
    the record); label one a record from before marks lists with its old description
    (``repositories.patch``, ``updateMask=labels``). Words for the step, or ""."""
    p, labels = conn.params, dict(repo.get("labels") or {})
    if labels.get(MARK) == conn.record.deployment:
        if conn.record.created.get("repository") != conn.repository_name and not p.dry_run:
            conn.record.set("repository", conn.repository_name)
        return ""
    recorded = conn.record.created.get("repository") == conn.repository_name
    if not recorded or not _repository_is_ours(conn, repo):
        return ""
    if p.dry_run:
        return f"; would label it {MARK}: {conn.record.deployment}"
    body = {"labels": labels | {MARK: conn.record.deployment}}
    with _mapped():
        conn.registry.repositories().patch(
            name=conn.repository_name, updateMask="labels", body=body
        ).execute()
    return f"; labelled {MARK}: {conn.record.deployment} (made before marks)"


def _repository_is_ours(conn: GoogleConnection, repo: dict[str, Any]) -> bool:
    """Its label names this deployment; or, for a record from before marks, it has no such
    label and the exact description this notebook gave it then."""
    label = (repo.get("labels") or {}).get(MARK)
    if label is not None:
        return bool(label == conn.record.deployment)
    return conn.legacy and repo.get("description") == REPOSITORY_TEXT


def _get_account(conn: GoogleConnection, name: str | None = None) -> Any | None:
    """The service account ``name`` (BinderHub's when None), or None when there is none
    (or, in a dry run, when the IAM API is still off)."""
    if not conn.iam_enabled:
        return None
    try:
        with _mapped():
            return conn.iam.get_service_account(name=name or conn.account_name)
    except CloudError as e:
        if e.status == 404:
            return None
        raise


@creates
def ensure_service_account(conn: GoogleConnection) -> Result[str | None]:
    """Create or reuse BinderHub's service account (IAM admin API over gRPC).

    A new account's description carries this deployment's mark (``binderhub-registry <id>``),
    which teardown checks before deleting it.
    """
    p = conn.params
    if not p.dry_run:
        conn.note(ACCOUNT, p.email)
    found = _get_account(conn)
    if found is not None:
        marked = _marked_account(conn, found, "service_account", PUSHER_TEXT)
        return Result(p.email, "reused", f"service account {p.email}{marked}")
    if p.dry_run:
        return Result(None, "planned", f"would create service account {p.email}")
    _create_account(
        conn,
        p.service_account,
        conn.account_name,
        "service_account",
        "BinderHub image pusher",
        PUSHER_TEXT,
    )
    return Result(p.email, "created", f"service account {p.email} (marked '{_mark(conn)}')")


def _wait_visible(conn: GoogleConnection, name: str) -> None:
    """A new account is not readable everywhere at once: wait for three good reads in a row.

    Right after creation a read may answer 404 or 403 (terraform-provider-google#10227), and a
    good read may be followed by a bad one: Terraform waits for three consecutive good reads
    (GoogleCloudPlatform/magic-modules#14447). Past the deadline, one line says to rerun.
    """
    settling, email = conn.settling, name.rpartition("/")[2]
    started, good, misses = time.monotonic(), 0, 0
    settling.paused = True  # these reads count their own answers
    try:
        while good < 3:
            try:
                found = _get_account(conn, name) is not None
            except PermissionDenied:  # 403 "Permission iam.serviceAccounts.get is required"
                found = False
            if found:
                good += 1
                continue
            good, misses = 0, misses + 1
            waited = time.monotonic() - started
            if waited >= settling.account_deadline:
                raise TransientCloudError(
                    f"{NAME}: the new service account {email} was still not readable "
                    f"everywhere after {waited:.0f}s: rerun this notebook (it reuses the account)"
                )
            why = f"the new service account {email} is not readable everywhere yet"
            settling.notes[why] = settling.notes.get(why, 0) + 1
            progress(f"{why}: waiting for three good reads in a row ({waited:.0f}s)")
            time.sleep(min(settling.first_wait * 2 ** min(misses - 1, 16), settling.max_wait))
    finally:
        settling.paused = False


#: IAM policies are read and written at version 3: a lower read shows someone's conditional
#: binding as ``<role>_withcond_<hash>`` without its condition, and writing that back is
#: refused or loses the condition (cloud.google.com/iam/docs/troubleshooting-withcond;
#: Policy.version: "Operations affecting conditional role bindings must specify version 3").
POLICY_VERSION = 3


def _unconditional(binding: dict[str, Any], role: str) -> bool:
    """``binding`` grants ``role`` with no condition: the only kind this notebook makes; a
    conditional one is someone else's and stays as it is."""
    return binding["role"] == role and not binding.get("condition")


def _edit_policy(
    conn: GoogleConnection, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]
) -> bool:
    """Read-modify-write the repository's IAM policy; a stale etag (ABORTED) starts over.

    Read and written at version 3 (:data:`POLICY_VERSION`), so every binding comes back whole,
    conditions included, and ``change`` sees (and keeps) the ones it did not make.
    """
    repositories = conn.registry.repositories()
    for _ in range(5):
        with _mapped():
            policy = repositories.getIamPolicy(
                resource=conn.repository_name, options_requestedPolicyVersion=POLICY_VERSION
            ).execute()
        bindings = [
            dict(b) | {"members": list(b.get("members", []))} for b in policy.get("bindings", [])
        ]
        changed = change(bindings)
        if changed is None:
            return False
        # all else in the policy (auditConfigs) as read; a binding left with no member goes
        # (IAM: "Each of the bindings must contain at least one principal", policy.proto)
        new = policy | {"version": POLICY_VERSION, "bindings": [b for b in changed if b["members"]]}
        if policy.get("etag"):
            new["etag"] = policy["etag"]
        try:
            with _mapped():
                repositories.setIamPolicy(
                    resource=conn.repository_name, body={"policy": new}
                ).execute()
            return True
        except CloudError as e:
            if "ABORTED" not in str(e):
                raise
    raise TransientCloudError(f"{NAME}: the repository's policy kept changing", 409)


def _edit_account_policy(
    conn: GoogleConnection, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]
) -> bool:
    """Read-modify-write the service account's own IAM policy (gRPC); ABORTED starts over."""
    from google.iam.v1 import (  # type: ignore[import-untyped]
        iam_policy_pb2,
        options_pb2,
        policy_pb2,
    )

    options = options_pb2.GetPolicyOptions(requested_policy_version=POLICY_VERSION)
    for _ in range(5):
        with _mapped():
            policy = conn.iam.get_iam_policy(
                request=iam_policy_pb2.GetIamPolicyRequest(
                    resource=conn.account_name, options=options
                )
            )
        bindings = [
            {"role": b.role, "members": list(b.members)}
            | ({"condition": b.condition} if b.HasField("condition") else {})
            for b in policy.bindings
        ]
        changed = change(bindings)
        if changed is None:
            return False
        new = policy_pb2.Policy(
            version=POLICY_VERSION,
            etag=policy.etag,
            bindings=[
                policy_pb2.Binding(role=b["role"], members=b["members"], condition=b["condition"])
                if "condition" in b
                else policy_pb2.Binding(role=b["role"], members=b["members"])
                for b in changed
                if b["members"]
            ],
            audit_configs=policy.audit_configs,
        )
        try:
            with _mapped():
                conn.iam.set_iam_policy(
                    request=iam_policy_pb2.SetIamPolicyRequest(
                        resource=conn.account_name, policy=new
                    )
                )
            return True
        except CloudError as e:
            if "ABORTED" not in str(e) and "concurrent policy changes" not in str(e):
                raise
    raise TransientCloudError(f"{NAME}: the service account's policy kept changing", 409)


def _adding(
    role: str, member: str, record: Callable[[], None]
) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]:
    """The policy change that grants ``role`` to ``member`` (None: it has it already).

    ``record`` runs just before the write: after a crash or a lost answer the rerun finds the
    member present, and unrecorded it would pass for found and never be removed. A write that
    failed leaves it recorded but absent, which removal treats as done.
    """

    def add(bindings: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        for b in bindings:
            if _unconditional(b, role):
                if member in b["members"]:
                    return None
                b["members"].append(member)
                break
        else:
            bindings = [*bindings, {"role": role, "members": [member]}]
        record()
        return bindings

    return add


def _annotate_sandbox_pod(conn: GoogleConnection) -> None:
    """Sandbox: what ``kubectl annotate serviceaccount`` does, on the fake cluster's pod."""
    import requests

    box = sandbox_mod.ensure()
    pod = {
        "namespace": conn.params.k8s_namespace,
        "service_account": BINDERHUB_KSA,
        "annotation": conn.params.email,
        "project": conn.params.pool.partition(".")[0],
    }
    r = requests.post(
        f"{box.url}/_sandbox/google/settings",
        json={"metadata_pod": pod},
        headers=box.admin_headers(),
        verify=box.ca_file,
        timeout=10,
    )
    r.raise_for_status()


#: The programs in BinderHub's image (jupyterhub/binderhub helm-chart/images/binderhub/
#: Dockerfile at b9fad99: python:3.13-slim-bookworm plus git, libcurl4 and tini): no curl.
BINDERHUB_IMAGE_TOOLS = frozenset({"python", "python3", "pip", "git", "tini"})
#: What :func:`keyless_check_command` runs in BinderHub's pod: the account the metadata server
#: gives it, then a token's lifetime (never the token), as ``GoogleArtifactRegistry`` asks.
_CHECK_CODE = (
    "import json,urllib.request as u;h={{'Metadata-Flavor':'Google'}};"
    "b='{base}/computeMetadata/v1/instance/service-accounts/default/';"
    "print('account:',u.urlopen(u.Request(b+'email',headers=h)).read().decode());"
    "t=json.load(u.urlopen(u.Request(b+'token',headers=h)));"
    "print('token: yes, expires in',t['expires_in'],'s')"
)


def keyless_check_command(p: Params, metadata_url: str = METADATA_URL) -> str:
    """The ``kubectl exec`` line that asks the metadata server from BinderHub's pod as
    BinderHub does, with ``python -c`` (its image has no curl: :data:`BINDERHUB_IMAGE_TOOLS`)."""
    code = _CHECK_CODE.format(base=metadata_url)
    return f'kubectl exec --namespace {p.k8s_namespace} deploy/binder -- python -c "{code}"'


def annotate_command(p: Params) -> str:
    """The ``kubectl`` line that lets BinderHub's pod act as the service account."""
    return (
        f"kubectl annotate serviceaccount {BINDERHUB_KSA} --namespace {p.k8s_namespace} "
        f"iam.gke.io/gcp-service-account={p.email} --overwrite"
    )


@creates
def bind_workload_identity(conn: GoogleConnection) -> Result[None]:
    """Keyless: let BinderHub's Kubernetes service account act as ours (Workload Identity).

    Grants ``roles/iam.workloadIdentityUser`` on the service account to
    ``serviceAccount:<project>.svc.id.goog[<namespace>/binderhub]``, as
    ``gcloud iam service-accounts add-iam-policy-binding`` does (GKE's Workload Identity
    how-to). The ``iam.gke.io/gcp-service-account`` annotation is a Kubernetes change:
    done on the sandbox's fake pod, printed as a ``kubectl`` line for a real cluster.
    The member is recorded just before the policy write (:func:`_adding`). With ``auth =
    "key"`` the member this notebook recorded is retired instead (:func:`_unbind_later`),
    and a member of another ``k8s_namespace`` recorded earlier is retired once the new one
    is bound.
    """
    p = conn.params
    if not p.keyless:
        return _unbind_later(conn)
    entry = {BOUND: p.workload_member}
    recorded = conn.record.created.get(BOUND)
    if p.dry_run:
        old = (
            f"; would remove {recorded} once this verifies"
            if recorded not in (None, p.workload_member)
            else ""
        )
        if old:
            _retire_later(conn, [{BOUND: recorded}], BOUND)  # in memory: for finish's message
        return Result(
            None,
            "planned",
            f"would grant {WORKLOAD_IDENTITY_USER} on {p.email} to {p.workload_member}{old}",
        )
    if recorded and recorded != p.workload_member:  # k8s_namespace changed: the old one goes
        _retire_later(conn, [{BOUND: recorded}], BOUND)
    if entry in _retiring(conn):  # back to keyless before the switch to a key finished
        _keep(conn, entry, BOUND, p.workload_member)

    record = partial(conn.record.set, BOUND, p.workload_member)
    try:
        created = _edit_account_policy(
            conn, _adding(WORKLOAD_IDENTITY_USER, p.workload_member, record)
        )
    except CloudError as e:
        if "Identity Pool does not exist" not in str(e):
            raise
        conn.record.forget(BOUND)  # refused: nothing was bound
        raise CloudError(_NO_POOL.format(pool=p.pool, project=p.pool.partition(".")[0])) from None
    conn.bound = True
    if p.sandbox:
        _annotate_sandbox_pod(conn)
        then = "the sandbox's BinderHub pod annotated as kubectl would"
    else:
        # the chart makes that Kubernetes service account (with rbac.enabled, its default)
        then = f"after helm upgrade --install (2.5), run: {annotate_command(p)}"
    what = f"{p.workload_member} may act as {p.email}"
    if recorded and recorded != p.workload_member:
        what += f" ({recorded}, which this notebook bound, is removed once this verifies)"
    return Result(None, "created" if created else "reused", f"{what}; {then}")


#: IAM refused the member: its pool exists only once a GKE cluster with Workload Identity runs
#: in that project (terraform-google-modules/terraform-google-kubernetes-engine#916).
_NO_POOL = (
    f"{NAME}: the Workload Identity pool {{pool}} does not exist: it exists once a GKE cluster "
    "with Workload Identity runs in project {project} (gcloud container clusters update "
    "<cluster> --workload-pool={pool}); if BinderHub's cluster is in another project, set "
    "cluster_project to that project"
)


def _unbind_later(conn: GoogleConnection) -> Result[None]:
    """``auth = key``: the member this notebook bound (an earlier keyless run) is removed by
    ``finish_rotation`` once the key verified; until then the deployed keyless BinderHub works."""
    p = conn.params
    recorded = conn.record.created.get(BOUND)
    pending = [m for m in _retiring_members(_retiring(conn)) if m != recorded]
    if not recorded and not pending:
        return Result(None, "skipped", "auth = key: BinderHub pushes with a JSON key")
    member = str(recorded or pending[0])
    what = f"{WORKLOAD_IDENTITY_USER} for {member}, which this notebook granted on {p.email},"
    if p.dry_run:
        return Result(None, "planned", f"auth = key: would remove {what} once the key verifies")
    if recorded:
        _retire_later(conn, [{BOUND: recorded}], BOUND)
    namespace = member.partition("[")[2].partition("/")[0]
    unannotate = (
        f"kubectl annotate serviceaccount {BINDERHUB_KSA} --namespace {namespace} "
        "iam.gke.io/gcp-service-account-"
    )
    return Result(
        None,
        "updated" if recorded else "done",
        f"auth = key: {what} is removed once the key verifies; once the new values are "
        f"deployed: {unannotate}",
    )


@creates
def grant_writer(conn: GoogleConnection) -> Result[None]:
    """Grant the writer role on the repository alone (least privilege), once."""
    p = conn.params
    if p.dry_run:
        return Result(None, "planned", f"would grant {ROLE} on the repository to {p.email}")

    # the member is recorded: teardown removes exactly it
    if not _edit_policy(
        conn, _adding(ROLE, p.member, partial(conn.record.set, "binding", p.member))
    ):
        return Result(None, "reused", f"{p.email} has {ROLE} on the repository")
    return Result(None, "created", f"{ROLE} on the repository for {p.email}")


def _user_keys(conn: GoogleConnection, name: str | None = None) -> list[str]:
    """The user-managed key ids of the account ``name`` (BinderHub's when None)."""
    from google.cloud.iam_admin_v1 import types

    with _mapped():
        found = conn.iam.list_service_account_keys(
            name=name or conn.account_name,
            key_types=[types.ListServiceAccountKeysRequest.KeyType.USER_MANAGED],
        )
    return [k.name.rpartition("/")[2] for k in found.keys]


def _key_id(stored: Secret | None, email: str) -> str | None:
    """The key id of a stored key file JSON, when it is a key of ``email``."""
    if stored is None:
        return None
    try:
        info = json.loads(stored.reveal())
    except ValueError:
        return None
    if not isinstance(info, dict) or info.get("client_email") != email:
        return None
    return str(info.get("private_key_id", "")) or None


def _stored_key_id(conn: GoogleConnection) -> str | None:
    return _key_id(conn.stored_password(USERNAME), conn.params.email)


@dataclass(frozen=True)
class _KeyOwner:
    """Whose JSON key :func:`_ensure_json_key` keeps: BinderHub's account or user pods'."""

    email: str
    name: str  # the account's resource name
    kind: str  # the record kind of its key
    account_kind: str  # the record kind of the account, when this notebook created it
    stored: Secret | None  # the key JSON in secret.yaml
    entry: Callable[[str], Any]  # a key id as a retiring entry
    ids: Callable[[list[Any]], list[str]]  # the key ids of its retiring entries

    def retiring(self, conn: GoogleConnection) -> list[str]:
        """The ids of this account's keys in the retiring list."""
        return self.ids(_retiring(conn))


@creates
def ensure_key(conn: GoogleConnection) -> Result[Secret | None]:
    """Reuse the stored JSON key while it is live; else create one (at most one of ours).

    Keys this notebook created whose JSON was lost are deleted first, so keys never
    pile up against Google's limit of 10. With ``rotate`` a new key is made; the old
    one is deleted by ``finish_rotation`` once the new one verifies. With ``auth =
    "metadata"`` no key is made and the keys this notebook made are retired the same way
    (:func:`_retire_keys_for_keyless`); a stored key still retiring (a switch or rotation
    undone before ``finish_rotation``) is taken back.
    """
    p = conn.params
    if p.keyless:
        return _retire_keys_for_keyless(conn)
    owner = _KeyOwner(
        p.email,
        conn.account_name,
        "key",
        "service_account",
        conn.stored_password(USERNAME),
        str,
        _retiring_keys,
    )
    result = _ensure_json_key(conn, owner)
    conn.secret = result.value
    return result


#: The organization policy constraints that forbid service account keys: the managed one,
#: enforced by default on organizations created since 2024-05-03 (hashicorp-education/learn-
#: terraform-google-workspace#9), and the legacy boolean one (google/create-service-account#21).
KEY_POLICIES = (
    "iam.managed.disableServiceAccountKeyCreation",
    "iam.disableServiceAccountKeyCreation",
)


def _key_policy_refusal(error: str, project: str) -> str:
    """The one line for FAILED_PRECONDITION "Key creation is not allowed": the constraint the
    refusal names (its PreconditionFailure), else both, and what to do."""
    named = [c for c in KEY_POLICIES if f"constraints/{c}" in error]
    which = named[0] if named else f"{KEY_POLICIES[0]} (or the legacy {KEY_POLICIES[1]})"
    shown = named[0] if named else KEY_POLICIES[0]
    return (
        f"the organization policy {which} forbids service account keys (enforced by default "
        "for organizations created since 2024-05-03): ask an organization policy administrator "
        f"to exempt project {project} (gcloud org-policies describe {shown} --project={project} "
        'shows it); auth = "metadata" (keyless) covers BinderHub\'s image check, but build '
        "pods still need a way to push (step 7)"
    )


def _all_keys_ours(conn: GoogleConnection, email: str, name: str, kind: str) -> bool:
    """Every user-managed key of the account is this deployment's: the account is its own
    (named from its id, recorded as created, carrying its mark). Keys have no description or
    label (iam.v1 ServiceAccountKey), so on any other account, a name given and perhaps
    shared, only the key ids this deployment recorded are its own."""
    if not _own_named(conn, email) or conn.record.created.get(kind) != email:
        return False
    account = _get_account(conn, name)
    return account is not None and _MARKS.findall(account.description) == [conn.record.deployment]


def _ensure_json_key(conn: GoogleConnection, owner: _KeyOwner) -> Result[Secret | None]:
    """Reuse ``owner``'s stored JSON key while it is live; else create one (at most one of
    ours): BinderHub's key and user pods' pull key alike.

    Keys this deployment created whose JSON was lost are deleted first (every key of its own
    marked account, :func:`_all_keys_ours`; on another account only the recorded key id),
    so keys never pile up against Google's limit of 10.
    With ``rotate`` a new key is made and the old one goes to the retiring list
    (``finish_rotation`` deletes it once the new one verifies); a stored key found there (a
    rotation or switch undone before then) is taken back.
    """
    p = conn.params
    email = owner.email
    live = (
        [] if p.dry_run and _get_account(conn, owner.name) is None else _user_keys(conn, owner.name)
    )
    stored_id = _key_id(owner.stored, email)
    working = stored_id if stored_id in live else None
    retiring = _retiring(conn)
    replaced = owner.retiring(conn)
    recorded = conn.record.created.get(owner.kind)
    if working and not p.rotate:
        if working in replaced:
            # a switch (to keyless, or of pull_access) or a rotation stopped before
            # finish_rotation, now undone: the stored key is in use again; a later key of ours
            # whose JSON never reached secret.yaml goes, as below
            kept = "would be kept" if p.dry_run else "kept"
            if not p.dry_run:
                if recorded and recorded != working and recorded not in replaced:
                    conn._delete_key(str(recorded), owner.name)
                _keep(conn, owner.entry(working), owner.kind, working)
            return Result(
                owner.stored, "reused", f"the stored JSON key of {email} is live and {kept}"
            )
        return Result(owner.stored, "reused", f"the stored JSON key of {email} is live")
    if working and working not in replaced:
        retiring.append(owner.entry(working))
        replaced.append(working)
    # a key this deployment did not make is never "lost": on an account others may use too,
    # only the key id it recorded is (issue 23: a shared account's other keys are theirs)
    ours = _all_keys_ours(conn, email, owner.name, owner.account_kind)
    stale = [k for k in live if k not in replaced and (ours or k == recorded)]
    if p.dry_run:
        what = "rotate: would create a new" if working else "would create a"
        return Result(None, "planned", f"{what} JSON key for {email}")
    for key_id in stale:
        conn._delete_key(key_id, owner.name)
    conn.record.set(conn.retiring, retiring)
    try:
        with _mapped():
            created = conn.iam.create_service_account_key(name=owner.name)
    except CloudError as e:
        if "Key creation is not allowed" in str(e):
            raise PermissionDenied(_key_policy_refusal(str(e), p.project_id)) from None
        if "Precondition" in str(e) and len(live) - len(stale) >= 10:
            in_use = [k for k in replaced if k in live]
            if in_use:  # deleting by hand could remove the key the deployed BinderHub uses
                raise PermissionDenied(
                    f"{email} already holds 10 keys, Google's limit, {len(in_use)} of them kept "
                    "by keep_replaced: deploy the newest secret.yaml, then rerun without rotate "
                    "and keep_replaced to remove them"
                ) from None
            raise PermissionDenied(
                f"{email} already holds 10 keys, Google's limit: delete unused ones "
                "(gcloud iam service-accounts keys list/delete) and rerun"
            ) from None
        raise
    key_id = created.name.rpartition("/")[2]
    conn.record.set(owner.kind, key_id)
    secret = Secret(bytes(created.private_key_data).decode())
    detail = f"a JSON key for {email}"
    if stale:
        detail += f", replacing {len(stale)} whose JSON was lost"
    if working:
        detail += "; the old key is deleted once this one verifies"
    return Result(secret, "created", detail)


def _retire_keys_for_keyless(conn: GoogleConnection) -> Result[Secret | None]:
    """``auth = metadata``: no key is made, and the keys this notebook made are retired.

    Ours, as in key mode: the recorded key and, on this deployment's own marked account
    (:func:`_all_keys_ours`), every user-managed key (those whose JSON was lost); keys it did
    not record on any other account are never touched. They stay live until the keyless
    values verified: ``finish_rotation`` deletes them then (or a later run, with
    ``keep_replaced``).
    """
    p = conn.params
    recorded = conn.record.created.get("key")
    ours: list[str] = [str(recorded)] if recorded else []
    if _all_keys_ours(conn, p.email, conn.account_name, "service_account"):
        ours += [k for k in _user_keys(conn) if k not in ours]
    retiring = _retiring(conn)
    new = [k for k in ours if k not in retiring]
    pending = _retiring_keys(retiring)
    if not new and not pending:
        return Result(
            None, "skipped", "auth = metadata: no key, tokens come from the metadata server"
        )
    count = len(new) + len(pending)
    keys = "the key this notebook made" if count == 1 else f"the {count} keys this notebook made"
    _retire_later(conn, new, "key")  # a dry run: in memory only
    if p.dry_run:
        return Result(
            None,
            "planned",
            f"auth = metadata: no key; {keys} would be removed once keyless verification passes",
        )
    return Result(
        None,
        "updated" if new else "done",
        f"auth = metadata: no key; {keys} is removed once keyless verification passes"
        if count == 1
        else f"auth = metadata: no key; {keys} are removed once keyless verification passes",
    )


# --- user pods' pull (pull_access) --------------------------------------------------------
@creates
def ensure_pull_credential(conn: GoogleConnection) -> Result[PullSecret | None]:
    """How user pods (the kubelet) pull: ``pull_access``.

    - ``"secret"``: a second service account, ``<service_account>-pull``
      (:attr:`Params.pull_account`), with :data:`PULL_ROLE` on the repository alone and one
      JSON key, written as ``jupyterhub.imagePullSecret`` (``_json_key``); kept, rotated
      and removed as BinderHub's key is.
    - ``"node"``: :data:`PULL_ROLE` on the repository for ``node_service_account``, the GKE
      nodes' service account (the kubelet pulls from Artifact Registry as the node).
    - ``"none"``: nothing; the repository must be public (not done here: see the message).

    Each records what it creates before creating it; a switch of ``pull_access`` moves what
    the previous value made (the pull key, the nodes' binding) to the retiring list, removed
    once the new values verified (``keep_replaced`` keeps it), as a rotation does.
    """
    p = conn.params
    retired = _retire_other_pull(conn, p.pull_access)
    if p.pull_access == "none":
        return _pull_none(conn, retired)
    if p.pull_access == "node":
        return _pull_node(conn, retired)
    return _pull_secret(conn, retired)


def _retire_other_pull(conn: GoogleConnection, keep: str) -> str:
    """Retire what another ``pull_access`` made (recorded only); its words, or ""."""
    p, said = conn.params, []
    key = conn.record.created.get(PULL_KEY)
    if keep != "secret" and key:
        _retire_later(conn, [{PULL_KEY: key}], PULL_KEY)  # a dry run: in memory only
        said.append(f"the pull key of {p.pull_email}")
    node = conn.record.created.get(PULL_NODE)
    if keep != "node" and node:
        _retire_later(conn, [{PULL_NODE: node}], PULL_NODE)
        said.append(f"{PULL_ROLE} for {str(node).partition(':')[2]}")
    if not said:
        return ""
    when = "would be removed" if p.dry_run else "is removed"
    return f"; {' and '.join(said)} {when} once these values verify"


def _pull_none(conn: GoogleConnection, retired: str) -> Result[PullSecret | None]:
    p = conn.params
    limits = (
        "pull_access = none: no credential for user pods, who pull anonymously: that works only "
        "from a public repository, and Artifact Registry repositories are private until "
        f"allUsers holds {PULL_ROLE} (gcloud artifacts repositories add-iam-policy-binding "
        f"{p.repository_id} --location={p.location} --project={p.project_id} --member=allUsers "
        f"--role={PULL_ROLE}), which this notebook does not grant: anyone could then pull "
        "every image, the project pays their egress, and an organization's domain restricted "
        "sharing policy (iam.allowedPolicyMemberDomains) refuses allUsers"
    )
    status = ("planned" if p.dry_run else "updated") if retired else "skipped"
    return Result(None, status, limits + retired)


def _node_check(conn: GoogleConnection) -> str:
    """The commands that check the nodes' pull on the cluster (nothing here can)."""
    p = conn.params
    name, tag = CHECK_IMAGE
    image = f"{conn._image_prefix()}{name}:{tag}" if conn.host else f"<image_prefix>{name}:{tag}"
    return (
        f"gcloud artifacts repositories get-iam-policy {p.repository_id} "
        f"--location={p.location} --project={p.project_id}; once verification pushed the "
        f"check image: {NODE_PULL_COMMAND.format(image=image)} (ErrImagePull or "
        "ImagePullBackOff: the nodes cannot pull; a failed start of the program-less image "
        "means they can)"
    )


def _pull_node(conn: GoogleConnection, retired: str) -> Result[PullSecret | None]:
    """:data:`PULL_ROLE` on the repository for the nodes' account (recorded before the write)."""
    p = conn.params
    member, email = p.node_member, p.node_service_account
    recorded = conn.record.created.get(PULL_NODE)
    if recorded and recorded != member:  # another node account: the old one goes
        _retire_later(conn, [{PULL_NODE: recorded}], PULL_NODE)
        retired += f"; {PULL_ROLE} for {str(recorded).partition(':')[2]} " + (
            "would be removed" if p.dry_run else "is removed"
        )
    unverified = (
        "the binding is modelled by the sandbox, but a node's pull cannot be verified from here"
        if p.sandbox
        else "a node's pull cannot be verified from here"
    )
    if p.dry_run or not conn.host:
        return Result(
            None,
            "planned",
            f"would grant {PULL_ROLE} on the repository to {email}{retired}",
        )
    if {PULL_NODE: member} in _retiring(conn):  # back to "node" before the switch finished
        _keep(conn, {PULL_NODE: member}, PULL_NODE, member)
    record = partial(conn.record.set, PULL_NODE, member)
    created = _edit_policy(conn, _adding(PULL_ROLE, member, record))
    what = (
        f"{PULL_ROLE} on the repository for {email}"
        if created
        else (f"{email} has {PULL_ROLE} on the repository")
    )
    return Result(
        None,
        "created" if created else "reused",
        f"{what}; {unverified}: check it on the cluster: {_node_check(conn)}{retired}",
    )


def _pull_secret(conn: GoogleConnection, retired: str) -> Result[PullSecret | None]:
    """User pods' own account, its reader binding, and its JSON key (each recorded first)."""
    p = conn.params
    email, name = p.pull_email, conn.pull_account_name
    done: list[str] = []
    live = _get_account(conn, name)
    found = live is not None
    marked = _marked_account(conn, live, "pull_service_account", PULLER_TEXT) if live else ""
    if not found and not p.dry_run:
        # marked, and recorded first: an answer lost after the account was made leaves it ours
        _create_account(
            conn,
            p.pull_account,
            name,
            "pull_service_account",
            "BinderHub image puller",
            PULLER_TEXT,
        )
        done.append(f"service account {email}")
    if p.dry_run and (not found or not conn.host):
        plan = f"would create service account {email}, " if not found else ""
        return Result(
            None,
            "planned",
            f"{plan}would grant it {PULL_ROLE} on the repository and would create a JSON key "
            f"for user pods{retired}",
        )
    granted = (
        _edit_policy(
            conn,
            _adding(
                PULL_ROLE, p.pull_member, partial(conn.record.set, "pull_binding", p.pull_member)
            ),
        )
        if not p.dry_run
        else p.pull_member not in _members(conn, PULL_ROLE)
    )
    if granted:
        done.append(("would grant " if p.dry_run else "") + f"{PULL_ROLE} on the repository")
    owner = _KeyOwner(
        email,
        name,
        PULL_KEY,
        "pull_service_account",
        conn.stored_pull_password(USERNAME),
        lambda key: {PULL_KEY: key},
        partial(_retiring_of, kind=PULL_KEY),
    )
    key = _ensure_json_key(conn, owner)
    if key.value is not None:
        conn.pull_secret = PullSecret(conn.host, USERNAME, key.value)
    status = (
        key.status
        if not done or key.status == "planned"
        else ("planned" if p.dry_run else "created")
    )
    detail = "; ".join([*done, key.detail]) + " (user pods pull with it: reader only)"
    return Result(conn.pull_secret, status, detail + marked + retired)


def _members(conn: GoogleConnection, role: str) -> list[str]:
    """The members holding ``role`` on the repository."""
    with _mapped():
        policy = (
            conn.registry.repositories()
            .getIamPolicy(
                resource=conn.repository_name, options_requestedPolicyVersion=POLICY_VERSION
            )
            .execute()
        )
    return [
        m
        for b in policy.get("bindings", [])
        if _unconditional(b, role)
        for m in b.get("members", [])
    ]


# --- keyless verification -------------------------------------------------------------------
def _metadata_token(token_url: str, check: str, account: str = "", fix: str = "") -> Secret:
    """The access token, asked as ``GoogleArtifactRegistry._get_token`` does; with
    ``account``, the metadata server must say the token is that account's (``.../email``):
    a pod whose Kubernetes service account lacks the annotation gets a token too, for its own
    federated identity (or, on a node pool without Workload Identity, the node's account)."""
    import requests

    if urlparse(token_url).hostname not in ("127.0.0.1", "::1"):  # never a real metadata server
        raise VerificationFailed(check, f"{token_url} is not the sandbox's metadata server")
    session = requests.Session()
    session.trust_env = False
    r = session.get(token_url, headers={"Metadata-Flavor": "Google"}, timeout=10)
    if r.status_code != 200:
        first = r.text.strip().splitlines()[0][:200] if r.text.strip() else ""
        raise VerificationFailed(
            check,
            f"the metadata server refused a token (HTTP {r.status_code}: {first}): BinderHub's "
            f"Kubernetes service account needs {WORKLOAD_IDENTITY_USER} on the Google service "
            "account and the iam.gke.io/gcp-service-account annotation: rerun this notebook",
        )
    try:
        token = Secret(str(r.json()["access_token"]))
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed(check, "the metadata server answered no access_token") from None
    if account:
        email_url = token_url.rpartition("/token")[0] + "/email"
        who = session.get(email_url, headers={"Metadata-Flavor": "Google"}, timeout=10)
        got = who.text.strip()[:200] if who.status_code == 200 else f"HTTP {who.status_code}"
        if got != account:
            raise VerificationFailed(
                check,
                f"the metadata server gives BinderHub's pod a token for {got}, not {account}: "
                "its Kubernetes service account lacks the iam.gke.io/gcp-service-account "
                "annotation, or its node pool runs without Workload Identity (GKE_METADATA)"
                + (f"; {fix}" if fix else ""),
            )
    return token


def _keyless_manifest(
    http: RegistryHTTP, url: str, token: Secret, image: str, tag: str, check: str
) -> bool:
    """``get_image_manifest`` with ``GoogleArtifactRegistry``'s token: True when found."""
    r = http.get(
        f"{url}/v2/{image}/manifests/{tag}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json",
            "Authorization": f"Bearer {token.reveal()}",
        },
    )
    if r.status_code == 404:
        return False
    if r.status_code == 200:
        return True
    words = f" (denied: {denied(r)})" if r.status_code == 403 and denied(r) else ""
    raise VerificationFailed(
        check,
        f"the registry answered HTTP {r.status_code} to the metadata server's token{words}: the "
        f"service account needs {ROLE} (or reader) on the repository",
    )


#: The report's line for build pods under keyless values (the push they cannot do).
NOT_COVERED = "not covered by keyless"
#: The check that puts the test image in place when build pods cannot (sandbox only).
SEED_CHECK = "stand-in push of the test image"


def _build_pod_push(
    values: KeylessValues,
    registry: dict[str, Any] | None,
    ca_bundle: str | None,
    image: str,
    tag: str,
    hints: VerifyHints,
    report: VerificationReport,
) -> tuple[RegistryHTTP, str] | None:
    """Push as a build pod would, with the docker config the chart renders from the written
    values (``registry.*`` of secret.yaml, absent keyless: the chart's Docker Hub default).

    (the client and digest) when that pushes; None, with the push reported
    :data:`NOT_COVERED`, when it cannot: ``GoogleArtifactRegistry`` has no ``get_credentials``
    (binderhub/registry.py), so build pods get no metadata token.
    """
    host = urlparse(values.url).netloc
    auths = chart_docker_config(registry or {})["auths"]
    key = next((k for k in auths if auth_key_host(k) == host), None)
    user, _, password = (
        base64.b64decode(auths[key]["auth"]).decode().partition(":") if key else ("", "", "")
    )
    rendered = ", ".join(auths)
    http = RegistryHTTP(user, Secret(password), ca_bundle)
    what = "an earlier key in secret.yaml (registry.*)" if key else f"none for {host}"
    report.add(
        "build pods' docker config",
        f"the chart renders credentials for {rendered}: {what}",
        "ok" if key else "skipped",
    )
    try:
        auth = push_auth(http, values.url, image, "pull,push", check="push token", hints=hints)
        digest = push_image(http, values.url, image, tag, auth, hints=hints)
    except VerificationFailed:
        report.add(
            PUSH_CHECK,
            f"{NOT_COVERED}: build pods push with that docker config, and {host} refused "
            "their push; GoogleArtifactRegistry gives them no token: they need a way to push "
            "of their own (step 7), or auth = key",
            "skipped",
        )
        return None
    report.add(
        PUSH_CHECK,
        f"pushed with {what}, not keylessly: once that key is removed build pods cannot push "
        f"({NOT_COVERED})",
    )
    return http, digest


def verify_keyless(
    values: KeylessValues,
    ca_bundle: str | None,
    hints: VerifyHints,
    pull: PullSecret | None = None,
    *,
    registry: dict[str, Any] | None = None,
    stand_in: tuple[str, Secret] | None = None,
    account: str = "",
    fix: str = "",
) -> VerificationReport:
    """Do what BinderHub's ``GoogleArtifactRegistry`` does, then push as a build pod would.

    1. the token from ``token_url`` with ``Metadata-Flavor: Google``, and the manifest
       request with it as a Bearer (binderhub/registry.py): expect "not built";
    2. a push with what the chart renders from the written values (``registry``: secret.yaml's
       ``registry`` section, None keyless): no credential for the registry, so the push is
       refused and reported :data:`NOT_COVERED`, not failed; ``stand_in`` credentials (the
       deployer's, ``oauth2accesstoken``) then push the test image, so that the rest can be
       checked;
    3. the check again: expect "found"; then delete the test tag where allowed;
    4. with user pods' ``pull`` key: pull the image as a kubelet does, and see it refused a
       push (:mod:`..pull`).

    ``account``: the Google service account the pod must act as (checked first, ``fix`` says
    how). Only against the sandbox: a token URL off loopback is refused before any request.
    """
    host, image = split_image_reference(values.image_prefix + CHECK_IMAGE[0])
    tag = CHECK_IMAGE[1]
    report = VerificationReport(image=f"{host}/{image}:{tag}")
    check = "BinderHub's image check (GoogleArtifactRegistry)"
    try:
        token = _metadata_token(values.token_url, check, account, fix)
        checker = RegistryHTTP("oauth2accesstoken", token, ca_bundle)
        if _keyless_manifest(checker, values.url, token, image, tag, check):
            detail = "a previous check image is present"
        else:
            detail = "not built yet, as expected"
        report.add(check, f"metadata server token as Bearer: {detail}")
        pushed = _build_pod_push(values, registry, ca_bundle, image, tag, hints, report)
        if pushed is None:
            if stand_in is None:
                return report
            check = SEED_CHECK
            http = RegistryHTTP(stand_in[0], stand_in[1], ca_bundle)
            auth = push_auth(http, values.url, image, "pull,push", check=check, hints=hints)
            digest = push_image(http, values.url, image, tag, auth, hints=hints)
            report.add(
                check,
                "pushed with the deployer's credentials in a build pod's place, so BinderHub's "
                "check and user pods' pull can be verified",
            )
        else:
            http, digest = pushed
        check = "BinderHub finds the pushed image"
        if not _keyless_manifest(checker, values.url, token, image, tag, check):
            raise VerificationFailed(check, "pushed, but BinderHub's keyless check does not see it")
        report.add(check, "found, so launches will reuse built images")
        if pull is not None:
            puller = RegistryHTTP(pull.username, pull.password, ca_bundle)
            pulled = pull_image(puller, values.url, image, tag, hints=hints)
            report.add(PULL_CHECK, f"{pulled} with jupyterhub.imagePullSecret ({pull.username})")
            check = PUSH_REFUSED_CHECK
            if not push_refused(puller, values.url, image, hints=hints):
                raise VerificationFailed(check, "user pods' key may push: it must be reader only")
            report.add(check, "user pods' credential may pull but is refused a push")
        deleted, detail = delete_tag(http, values.url, image, digest, hints=hints)
        report.add("delete the test tag", detail, "ok" if deleted else "skipped")
    except VerificationFailed as failed:
        report.add(failed.check, failed.diagnosis, "failed")
        failed.report = report
        raise
    return report


def _real_values(params: Any) -> RegistryValues:
    """The values of a real run with ``params`` (the docs' example)."""
    conn = GoogleConnection.__new__(GoogleConnection)
    conn.params, conn.secret, conn.ca_file = params, Secret("key-json"), None
    conn.host = _host_of(conn, None)  # the provider's own rule for the real host
    values = conn.values()
    assert values is not None
    return values


#: The docs' real-mode example of this notebook's values.
REAL_EXAMPLE = RealExample(
    overrides={"project_id": "your-project-id"},
    placeholders={"your-project-id": "<PROJECT_ID>"},
    build=_real_values,
)
