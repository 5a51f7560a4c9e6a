"""Google Artifact Registry (guide section 2.1; Container Registry was shut down on 2025-03-18).

The guide's steps stay recognisable (a service account, a role, a JSON key), done the way that
works today: Artifact Registry enabled through Service Usage, a Docker-format repository, a
service account made with the IAM admin API (gRPC, google-cloud-iam), the writer role on the
repository alone, and one JSON key that BinderHub pushes with as ``_json_key``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import sandbox as sandbox_mod
from ..binderhub import RegistryValues
from ..errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    InvalidParameter,
    MissingCredentials,
    PermissionDenied,
    TransientCloudError,
    error_for_status,
    grpc_error,
    map_exceptions,
)
from ..params import flag, text
from ..secrets import Secret
from ..steps import Result, progress
from ..verify import VerifyHints
from .contract import (
    COMMON_PARAMETERS,
    CommonParams,
    Connection,
    Deletion,
    Record,
    check_parameters,
    creates,
)

__all__ = [
    "KEY",
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "GoogleConnection",
    "Params",
    "enable_api",
    "ensure_key",
    "ensure_repository",
    "ensure_service_account",
    "grant_writer",
    "sign_in",
    "validate",
]

KEY = "google"
NAME = "Google Artifact Registry"
NOTEBOOK = "01-google-artifact-registry"
SERVICE = "artifactregistry.googleapis.com"
ROLE = "roles/artifactregistry.writer"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
USERNAME = "_json_key"
#: gcr.io-domain repositories: the repository id (and host) for each multi-region.
GCR_HOSTS = {"us": "gcr.io", "europe": "eu.gcr.io", "asia": "asia.gcr.io"}
_SIGN_IN_HOW = (
    "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file"
)
T = TypeVar("T")

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
    text(
        "service_account",
        r"[a-z][a-z0-9-]{4,28}[a-z0-9]",
        "must be a service account id: 6 to 30 lowercase letters, digits or hyphens, starting "
        "with a letter and ending with a letter or digit",
    ),
    flag("gcr_domain"),
    *COMMON_PARAMETERS,
)


@dataclass(frozen=True)
class Params(CommonParams):
    """Validated parameters of the Google notebook."""

    project_id: str
    location: str
    repository: str
    service_account: str
    gcr_domain: bool

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


def validate(values: dict[str, Any] | None = None, /, **overrides: Any) -> Params:
    """Check every parameter (no network); raise InvalidParameter for the first bad one.

    ``values`` is typically the notebook's ``globals()``; keywords override it.
    """
    p = check_parameters(Params, PARAMETERS, values, overrides)
    if p.gcr_domain and p.location not in GCR_HOSTS:
        raise InvalidParameter(
            "location", "must be us, europe or asia with gcr_domain = True", p.location
        )
    return p


# --- errors -----------------------------------------------------------------------------
def _google_error(exc: Any) -> BinderHubRegistryError:
    """google-api-core's exception (gRPC or REST) as ours, by its canonical status name."""
    message = str(getattr(exc, "message", "") or type(exc).__name__)
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


def _errors() -> dict[type[Exception], Callable[[Any], BinderHubRegistryError]]:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    return {
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
    )
    retiring = "retiring_keys"

    params: Params
    credentials: Any
    usage: Any  # ServiceUsageClient (REST)
    registry: Any  # ArtifactRegistryClient (REST)
    iam: Any  # IAMClient (gRPC)
    poll: float  # seconds between operation polls
    api_enabled: bool = True  # False in a dry run that would enable the API: nothing to look up
    host: str = ""  # the registry host, once the repository is known

    def values(self) -> RegistryValues | None:
        """BinderHub's values: the repository's host, ``_json_key`` and the key JSON."""
        p, key = self.params, self.secret
        if key is None or not self.host:
            return None
        url = f"https://{self.host}"
        token_url = f"{url}/v2/token"
        if self.ca_file:  # the sandbox front checks the first service (the real one ignores it)
            service = GCR_HOSTS[p.location] if p.gcr_domain else f"{p.location}-docker.pkg.dev"
            token_url += f"?service={service}"
        path = (
            f"{p.project_id}/{p.prefix}"
            if p.gcr_domain
            else (f"{p.project_id}/{p.repository}/{p.prefix}")
        )
        return RegistryValues(
            image_prefix=f"{self.host}/{path}",
            username=USERNAME,
            password=key,
            registry_url=url,
            docker_registry={"url": url, "token_url": token_url},
        )

    def deletions(self) -> list[Deletion]:
        """Keys, the binding, the service account, the repository, the API: only ours."""
        p = self.params
        return [
            Deletion(self.retiring, "the replaced keys", self.retire),
            Deletion("key", "the service account key", lambda key: self._delete_key(key)),
            Deletion("binding", f"{ROLE} for {p.email}", lambda _: self._remove_binding()),
            Deletion("service_account", f"service account {p.email}", self._delete_account),
            Deletion("repository", f"repository {p.repository_id}", self._delete_repository),
            Deletion("api", f"the {SERVICE} API", self._disable_api),
        ]

    def retire(self, retiring: list[Any]) -> None:
        """Delete the keys a rotation replaced."""
        for key in retiring:
            self._delete_key(key)

    # --- names and deletions ------------------------------------------------------------
    @property
    def account_name(self) -> str:
        """The service account's resource name."""
        return f"projects/{self.params.project_id}/serviceAccounts/{self.params.email}"

    @property
    def repository_name(self) -> str:
        """The repository's resource name."""
        p = self.params
        return f"projects/{p.project_id}/locations/{p.location}/repositories/{p.repository_id}"

    def _delete_key(self, key_id: str) -> None:
        try:
            with _mapped():
                self.iam.delete_service_account_key(name=f"{self.account_name}/keys/{key_id}")
        except CloudError as e:
            if e.status != 404:
                raise

    def _delete_account(self, _: Any) -> None:
        with _mapped():
            self.iam.delete_service_account(name=self.account_name)

    def _delete_repository(self, _: Any) -> None:
        with _mapped():
            self.registry.delete_repository(name=self.repository_name).result(timeout=300)

    def _disable_api(self, _: Any) -> None:
        with _mapped():
            name = f"projects/{self.params.project_id}/services/{SERVICE}"
            self.usage.disable_service(request={"name": name}).result(timeout=300)

    def _remove_binding(self) -> None:
        def without(bindings: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            changed = False
            for b in bindings:
                if b["role"] == ROLE and self.params.member in b["members"]:
                    b["members"].remove(self.params.member)
                    changed = True
            return bindings if changed else None

        try:
            _edit_policy(self, without)
        except CloudError as e:
            if e.status != 404:
                raise


# --- sign-in ------------------------------------------------------------------------------
def _trusting(session: Any, ca_file: str | None) -> None:
    """Make an SDK's requests session trust the sandbox's CA (and no proxy)."""
    if ca_file:
        session.verify = ca_file
        session.trust_env = False


def _rest_client(cls: Any, credentials: Any, endpoint: str | None, ca_file: str | None) -> Any:
    options = {"api_endpoint": endpoint} if endpoint else None
    client = cls(credentials=credentials, transport="rest", client_options=options)
    transport = client._transport  # the SDK has no option for a CA bundle: set it on its session
    _trusting(transport._session, ca_file)
    if ca_file and hasattr(transport, "operations_client"):
        _trusting(transport.operations_client._transport._session, ca_file)
    return client


def sign_in(p: Params) -> Result[GoogleConnection]:
    """Sign in (the guide's ``gcloud auth login``) and build the three API clients.

    Real Google Cloud: ``google.auth.default()`` (application default credentials).
    Sandbox: its seeded deployer key file, with real service-account credentials.
    """
    import google.auth
    import grpc  # type: ignore[import-untyped]
    import requests
    from google.auth.transport.grpc import secure_authorized_channel
    from google.auth.transport.requests import Request
    from google.cloud import artifactregistry_v1, iam_admin_v1, service_usage_v1
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
        with _mapped():
            credentials, _ = google.auth.default(scopes=SCOPES)
        source = "application default credentials"
    request = Request(session)
    with _mapped():
        credentials.refresh(request)
    who = getattr(credentials, "service_account_email", None) or "your account"
    usage = _rest_client(
        service_usage_v1.ServiceUsageClient,
        credentials,
        f"{base}/serviceusage" if base else None,
        ca_file,
    )
    registry = _rest_client(
        artifactregistry_v1.ArtifactRegistryClient,
        credentials,
        f"{base}/artifactregistry" if base else None,
        ca_file,
    )
    if p.sandbox:
        target = box.registries["google-iam"].removeprefix("https://")
        with open(box.ca_file, "rb") as f:
            roots = grpc.ssl_channel_credentials(f.read())
        channel = secure_authorized_channel(  # type: ignore[no-untyped-call]
            credentials, request, target, ssl_credentials=roots
        )
        iam = iam_admin_v1.IAMClient(transport=IAMGrpcTransport(channel=channel))
    else:
        iam = iam_admin_v1.IAMClient(credentials=credentials)
    conn = GoogleConnection(
        params=p,
        record=Record(p.output_dir, KEY),
        ca_file=ca_file,
        credentials=credentials,
        usage=usage,
        registry=registry,
        iam=iam,
        poll=0.05 if p.sandbox else 2.0,
    )
    where = "the sandbox" if p.sandbox else "Google Cloud"
    return Result(conn, "done", f"signed in to {where} as {who} with {source}")


# --- the guide's steps -------------------------------------------------------------------------
def _wait(conn: GoogleConnection, operation: Any, what: str) -> Any:
    """Wait for a long-running operation, reporting progress."""
    started = time.monotonic()
    with _mapped():
        while not operation.done():
            progress(f"{what}: waiting ({time.monotonic() - started:.0f}s)")
            time.sleep(conn.poll)
        return operation.result()


@creates
def enable_api(conn: GoogleConnection) -> Result[None]:
    """Enable the Artifact Registry API through Service Usage (a no-op when it is on)."""
    p = conn.params
    name = f"projects/{p.project_id}/services/{SERVICE}"
    with _mapped():
        state = conn.usage.get_service(request={"name": name}).state.name
    if state == "ENABLED":
        return Result(None, "reused", f"{SERVICE} is enabled")
    if p.dry_run:
        conn.api_enabled = False
        return Result(None, "planned", f"would enable {SERVICE}")
    with _mapped():
        operation = conn.usage.enable_service(request={"name": name})
    conn.record.set("api", SERVICE)
    _wait(conn, operation, f"enabling {SERVICE}")
    return Result(None, "created", f"enabled {SERVICE}")


def _find_repository(conn: GoogleConnection) -> Any | None:
    try:
        with _mapped():
            return conn.registry.get_repository(name=conn.repository_name)
    except CloudError as e:
        if e.status == 404:
            return None
        raise


def _host_of(conn: GoogleConnection, repo: Any) -> str:
    p = conn.params
    if repo is not None and repo.registry_uri and p.sandbox:
        return str(repo.registry_uri).split("/", 1)[0]  # the sandbox front stands in
    return GCR_HOSTS[p.location] if p.gcr_domain else f"{p.location}-docker.pkg.dev"


@creates
def ensure_repository(conn: GoogleConnection) -> Result[str | None]:
    """Create or reuse the Docker-format repository; its host is where images go."""
    from google.cloud import artifactregistry_v1

    p = conn.params
    repo = _find_repository(conn) if conn.api_enabled else None
    if repo is not None:
        if repo.format_.name != "DOCKER":
            raise CloudError(f"repository {p.repository_id} exists but is not Docker-format")
        conn.host = _host_of(conn, repo)
        return Result(conn.host, "reused", f"repository {conn.repository_name}")
    if p.dry_run:
        return Result(None, "planned", f"would create Docker repository {conn.repository_name}")
    parent = f"projects/{p.project_id}/locations/{p.location}"
    wanted = artifactregistry_v1.Repository(
        format_=artifactregistry_v1.Repository.Format.DOCKER,
        description="Images built by BinderHub",
    )
    try:
        with _mapped():
            operation = conn.registry.create_repository(
                parent=parent, repository=wanted, repository_id=p.repository_id
            )
    except CloudError as e:
        if e.status != 409:  # created by an earlier attempt whose answer was lost
            raise
    else:
        conn.record.set("repository", conn.repository_name)
        _wait(conn, operation, "creating the repository")
    repo = _find_repository(conn)
    conn.host = _host_of(conn, repo)
    return Result(conn.host, "created", f"Docker repository {conn.repository_name}")


def _get_account(conn: GoogleConnection) -> Any | None:
    try:
        with _mapped():
            return conn.iam.get_service_account(name=conn.account_name)
    except CloudError as e:
        if e.status == 404:
            return None
        raise


@creates
def ensure_service_account(conn: GoogleConnection) -> Result[str | None]:
    """Create or reuse BinderHub's service account (IAM admin API over gRPC)."""
    from google.cloud.iam_admin_v1 import types

    p = conn.params
    if _get_account(conn) is not None:
        return Result(p.email, "reused", f"service account {p.email}")
    if p.dry_run:
        return Result(None, "planned", f"would create service account {p.email}")
    account = types.ServiceAccount(
        display_name="BinderHub image pusher",
        description=f"Pushes BinderHub's images to {conn.repository_name}",
    )
    try:
        with _mapped():
            conn.iam.create_service_account(
                name=f"projects/{p.project_id}",
                account_id=p.service_account,
                service_account=account,
            )
    except CloudError as e:
        if e.status != 409:  # ALREADY_EXISTS: an earlier attempt made it
            raise
    else:
        conn.record.set("service_account", p.email)
    # a new account is not readable everywhere at once: wait until it is
    for attempt in range(60):
        if _get_account(conn) is not None:
            break
        progress(f"waiting for the new service account to be visible ({attempt + 1})")
        time.sleep(conn.poll)
    return Result(p.email, "created", f"service account {p.email}")


def _edit_policy(
    conn: GoogleConnection, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]
) -> bool:
    """Read-modify-write the repository's IAM policy; a stale etag (ABORTED) starts over."""
    from google.iam.v1 import iam_policy_pb2, policy_pb2  # type: ignore[import-untyped]

    for _ in range(5):
        with _mapped():
            policy = conn.registry.get_iam_policy(
                request=iam_policy_pb2.GetIamPolicyRequest(resource=conn.repository_name)
            )
        bindings = [{"role": b.role, "members": list(b.members)} for b in policy.bindings]
        changed = change(bindings)
        if changed is None:
            return False
        new = policy_pb2.Policy(
            version=policy.version,
            etag=policy.etag,
            bindings=[policy_pb2.Binding(role=b["role"], members=b["members"]) for b in changed],
        )
        try:
            with _mapped():
                conn.registry.set_iam_policy(
                    request=iam_policy_pb2.SetIamPolicyRequest(
                        resource=conn.repository_name, policy=new
                    )
                )
            return True
        except CloudError as e:
            if "ABORTED" not in str(e):
                raise
    raise TransientCloudError(f"{NAME}: the repository's policy kept changing", 409)


@creates
def grant_writer(conn: GoogleConnection) -> Result[None]:
    """Grant the writer role on the repository alone (least privilege), once."""
    p = conn.params
    if p.dry_run:
        return Result(None, "planned", f"would grant {ROLE} on the repository to {p.email}")

    def add(bindings: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        for b in bindings:
            if b["role"] == ROLE:
                if p.member in b["members"]:
                    return None
                b["members"].append(p.member)
                return bindings
        return [*bindings, {"role": ROLE, "members": [p.member]}]

    if not _edit_policy(conn, add):
        return Result(None, "reused", f"{p.email} has {ROLE} on the repository")
    conn.record.set("binding", ROLE)
    return Result(None, "created", f"{ROLE} on the repository for {p.email}")


def _user_keys(conn: GoogleConnection) -> list[str]:
    from google.cloud.iam_admin_v1 import types

    with _mapped():
        found = conn.iam.list_service_account_keys(
            name=conn.account_name,
            key_types=[types.ListServiceAccountKeysRequest.KeyType.USER_MANAGED],
        )
    return [k.name.rpartition("/")[2] for k in found.keys]


def _stored_key_id(conn: GoogleConnection) -> str | None:
    stored = conn.stored_password(USERNAME)
    if stored is None:
        return None
    try:
        info = json.loads(stored.reveal())
    except ValueError:
        return None
    if not isinstance(info, dict) or info.get("client_email") != conn.params.email:
        return None
    return str(info.get("private_key_id", "")) or None


@creates
def ensure_key(conn: GoogleConnection) -> Result[Secret | None]:
    """Reuse the stored JSON key while it is live; else create one (at most one of ours).

    Keys this notebook created whose JSON was lost are deleted first, so keys never
    pile up against Google's limit of 10. With ``rotate`` a new key is made; the old
    one is deleted by ``finish_rotation`` once the new one verifies.
    """
    p = conn.params
    live = [] if p.dry_run and _get_account(conn) is None else _user_keys(conn)
    stored_id = _stored_key_id(conn)
    working = stored_id if stored_id in live else None
    if working and not p.rotate:
        conn.secret = conn.stored_password(USERNAME)
        return Result(conn.secret, "reused", f"the stored JSON key of {p.email} is live")
    retiring = list(conn.record.created.get(conn.retiring, []))
    if working:
        retiring.append(working)
    ours = conn.record.created.get("service_account") == p.email
    recorded = conn.record.created.get("key")
    stale = [k for k in live if k not in retiring and (ours or k == recorded)]
    if p.dry_run:
        what = "rotate: would create a new" if working else "would create a"
        return Result(None, "planned", f"{what} JSON key for {p.email}")
    for key_id in stale:
        conn._delete_key(key_id)
    conn.record.set(conn.retiring, retiring)
    try:
        with _mapped():
            created = conn.iam.create_service_account_key(name=conn.account_name)
    except CloudError as e:
        if "Key creation is not allowed" in str(e):
            raise PermissionDenied(
                "the organization policy iam.disableServiceAccountKeyCreation forbids keys "
                "(enforced by default since 2024): use keyless access (Workload Identity) or "
                "ask an organization policy administrator for an exception"
            ) from None
        if "Precondition" in str(e) and len(live) - len(stale) >= 10:
            raise PermissionDenied(
                f"{p.email} already holds 10 keys, Google's limit: delete unused ones "
                "(gcloud iam service-accounts keys list/delete) and rerun"
            ) from None
        raise
    key_id = created.name.rpartition("/")[2]
    conn.record.set("key", key_id)
    conn.secret = Secret(bytes(created.private_key_data).decode())
    detail = f"a JSON key for {p.email}"
    if stale:
        detail += f", replacing {len(stale)} whose JSON was lost"
    if working:
        detail += "; the old key is deleted once this one verifies"
    return Result(conn.secret, "created", detail)
