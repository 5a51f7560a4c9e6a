"""The Google backend: one project under ``/google``, IAM admin over gRPC, registry fronts.

One backend, so one lock, one state and one reset cover the project. REST routes
(:mod:`.rest`) and the gRPC IAM service (:mod:`.iam`) work on the same
:class:`~.models.Project`; each Artifact Registry location (and each gcr.io-domain
repository) gets an Artifact-Registry-like front (:func:`front_config`).

Registry front (``registry_front.FrontConfig``):

=============================================  ================================================
behaviour                                      source
=============================================  ================================================
host ``<location>-docker.pkg.dev`` (the        cloud.google.com/artifact-registry/docs/docker/
front's port stands in), images                names; gcr.io-domain hosts from .../transition/
``<host>/<project>/<repository>/<image>``      gcr-repositories
``/v2/`` answers a Bearer challenge with       Google's answers captured in apple/container
realm ``https://<host>/v2/token`` and no       issue 2274 and in Seqera Wave's registry tests
``service``; a repository path adds            (DESIGN.md section 9): ``/v2/`` has realm only,
``service="<host>"`` and its ``scope``         a repository path adds service and scope
``/v2/token`` ignores ``service``: any value,  mybinder.org staging ran BinderHub with
repeated or none, gets a token                 ``token_url: https://us-central1-docker.pkg.dev/
                                               v2/token`` (mybinder.org-deploy 9bd26443), so
                                               Google got only BinderHub's appended
                                               ``service=container_registry`` and accepted it
Basic ``_json_key`` + key JSON,                cloud.google.com/artifact-registry/docs/docker/
``_json_key_base64`` + base64 key JSON,        authentication (JSON key file, access token)
``oauth2accesstoken`` + an access token
an access token as ``Authorization: Bearer``   cloud.google.com/artifact-registry/docs/
on the data plane (BinderHub's keyless         reference/docker-api (``curl -H "Authorization:
``GoogleArtifactRegistry`` sends it so):       Bearer $(gcloud auth print-access-token)"``);
checked as ``oauth2accesstoken``               binderhub/registry.py get_image_manifest
credentials checked against live state: a      assumption, as the real service behaves per the
deleted key or account gets 401; rights from   IAM docs: keys are verified at each token
the repository's IAM policy (reader pull,      exchange; roles from cloud.google.com/
writer pull+push, repoAdmin/admin all) or      artifact-registry/docs/access-control
project Owner; a new repository has no
bindings (private)
the Artifact Registry API disabled (a          assumption: the data plane follows the API's
teardown that turned it off): every login is   state, as every call of the API does
refused (401), so its repositories stop
a signed-in caller whose role lacks the        the message as docker prints it:
action: 403 ``DENIED`` ``Permission            GoogleCloudPlatform/cymbal-superstore PR 4
"artifactregistry.repositories.                (upload), googleapis/python-run issue 54
uploadArtifacts" denied on resource            (download); DENIED is 403: distribution's
"projects/../repositories/.." (or it may not   ``registry/api/errcode/register.go``
exist)`` (pull: ``downloadArtifacts``)
a signed-in caller asking ``/v2/token`` for a  DESIGN.md section 9 (a missing repository fails
scope it has none of (no role, or no such      at the token endpoint with DENIED "... (or it
repository): the same 403 ``DENIED`` there,    may not exist)", 403); docker prints it as
not a token for nothing and a later 401        ``denied: Permission ...`` (googleapis/python-
                                               run issue 54)
=============================================  ================================================

``/_sandbox/google/settings``: GET, or POST any of :data:`~.models.DEFAULT_SETTINGS`.
The fake GKE metadata server (:mod:`.metadata`) listens on loopback; its URL is in the
backend's state (``metadata_server``).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request as HttpRequest
from starlette.responses import Response as HttpResponse

from ..app import App, Backend, Context, Response
from ..registry import free_port
from ..registry_front import (
    METHOD_ACTIONS,
    FrontConfig,
    Grant,
    RegistryFront,
    granted_actions,
    registry_error,
)
from . import retention
from .metadata import MetadataServer
from .models import (
    ROLE_ACTIONS,
    Project,
    Repository,
    seed_credentials,
    seed_project,
)
from .rest import GCR_DOMAINS, Rest

if TYPE_CHECKING:
    from .iam import IamServer

__all__ = ["BACKEND", "GoogleCloud"]


class GoogleCloud(Backend):
    """Fake Google Cloud: OAuth, Service Usage, Artifact Registry (REST), IAM admin (gRPC)."""

    prefix = "/google"

    def __init__(self, deployer: dict[str, str], deployer_public: str | None = None) -> None:
        self.deployer = deployer
        self.deployer_public = deployer_public
        self.app: App | None = None
        self.iam: IamServer | None = None
        self.iam_port = 0
        self._iam_thread: threading.Thread | None = None
        self.fronts: dict[str, RegistryFront] = {}
        self.metadata: MetadataServer | None = None
        super().__init__()
        self.add_routes(Rest(self).routes())

    @classmethod
    def create(cls, context: Context) -> GoogleCloud:
        """The backend, with the deployer's key from the sandbox's credentials (made from
        the sandbox's spare RSA pair in a new sandbox directory)."""
        pair = (
            context.material.service_key_pem.decode(),
            context.material.service_public_pem.decode(),
        )
        deployer = context.secret("google", lambda: seed_credentials(pair))
        return cls(deployer, pair[1] if deployer.get("private_key") == pair[0] else None)

    # --- lifecycle ---------------------------------------------------------------
    def seed(self) -> None:
        """The seeded project (see :func:`~.models.seed_project`)."""
        self.project: Project = seed_project(self.deployer, self.deployer_public)

    def attach(self, app: App) -> None:
        """Start the gRPC IAM service in the background, on a port chosen now.

        Importing grpcio and google-cloud-iam takes the better part of a second, more than
        the sandbox's whole start budget: the port goes into sandbox.json at once and the
        server comes up once that file is written (a client arriving first gets UNAVAILABLE,
        which the SDK and the notebook's runner retry). Without the google extra: no IAM.
        """
        self.app = app
        self.metadata = MetadataServer(self)
        self.iam_port = free_port()
        self._iam_thread = threading.Thread(target=self._start_iam, daemon=True)
        self._iam_thread.start()

    def _start_iam(self) -> None:
        assert self.app is not None
        # after sandbox.json is written: the import would otherwise hold up the start (the GIL)
        ready = self.app.directory / "sandbox.json"
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            from .iam import IamServer
        except ImportError:  # grpcio or google-cloud-iam missing
            return
        material = self.app.material
        self.iam = IamServer(
            self, material.cert_file.read_bytes(), material.key_file.read_bytes(), self.iam_port
        )

    def reset(self) -> None:
        """Stop the registry fronts, then reseed the project."""
        self._stop_fronts()
        self.seed()

    def shutdown(self) -> None:
        """Stop the fronts and the gRPC server."""
        self._stop_fronts()
        if self._iam_thread is not None:
            self._iam_thread.join(timeout=10)
        if self.iam is not None:
            self.iam.stop()
        if self.metadata is not None:
            self.metadata.stop()

    def _stop_fronts(self) -> None:
        for front in self.fronts.values():
            front.stop()
        self.fronts.clear()

    def registries(self) -> dict[str, str]:
        """The gRPC IAM endpoint (a URL, for sandbox.json)."""
        return {"google-iam": f"https://127.0.0.1:{self.iam_port}"} if self.iam_port else {}

    @property
    def token_uri(self) -> str:
        """The OAuth token endpoint key files name."""
        assert self.app is not None, "attach() first"
        return f"{self.app.url}{self.prefix}/oauth2/token"

    # --- gRPC faults and log ------------------------------------------------------
    def grpc_fault(self, method: str) -> dict[str, Any] | None:
        """The first pending gRPC fault for ``method``, used up by one."""
        for fault in self.project.settings["grpc_faults"]:
            if fault.get("method") in (method, "*") and fault.get("times", 1) > 0:
                fault["times"] = fault.get("times", 1) - 1
                return dict(fault)
        return None

    def log_grpc(self, method: str, code: str) -> None:
        """Log a gRPC call in the app's request log (status ``grpc <CODE>``, never 2xx)."""
        if self.app is not None:
            self.app.record("POST", f"/google.iam.admin.v1.IAM/{method}", "", f"grpc {code}")

    # --- registry fronts ------------------------------------------------------------
    def _front_key(self, repo: Repository) -> str:
        return repo.id if repo.id in GCR_DOMAINS else repo.location

    def registry_host(self, repo: Repository) -> str | None:
        """The host of ``repo``'s front (None before it starts)."""
        front = self.fronts.get(self._front_key(repo))
        return front.host if front else None

    def ensure_front(self, repo: Repository) -> None:
        """Start the front serving ``repo``'s location (or gcr.io domain) if not running."""
        key = self._front_key(repo)
        if key in self.fronts:
            return
        assert self.app is not None, "attach() first"
        service = key if key in GCR_DOMAINS else f"{key}-docker.pkg.dev"
        self.fronts[key] = _ArtifactRegistryFront(
            self,
            key,
            self.app,
            FrontConfig(
                name=f"gar-{key.replace('.', '-')}",
                service=service,
                issuer="Artifact Registry",
                realm_path="/v2/token",
                check=lambda user, password: self._check(key, user, password),
                lock=self.lock,
                basic_ping=False,
                any_service=True,
                ping_service=False,
                denied=lambda repository, wanted: self._denied(key, repository, wanted),
                clock=lambda: retention.present(self.project.clock),  # uploads, on its clock
                unauthorized="Unauthenticated request.",  # text: assumption
                token_body=lambda token: {
                    "token": token,
                    "access_token": token,
                    "expires_in": 3600,
                },
            ),
        )

    def _denied(self, key: str, repository: str, wanted: set[str]) -> Response:
        """Artifact Registry's 403 DENIED for a signed-in caller granted nothing it asked."""
        action = "pull" if "pull" in wanted else "push"
        return registry_error(
            403,
            "DENIED",
            f'Permission "{_PERMISSIONS[action]}" denied on resource '
            f'"{self.resource_of(key, repository)}" (or it may not exist)',
        )

    def resource_of(self, key: str, repository: str) -> str:
        """The repository's resource name for an image path ``<project>/<repo>/<image>`` on
        the front ``key`` (a location, or a gcr.io domain whose paths are ``<project>/<image>``)."""
        project, _, rest = repository.partition("/")
        if key in GCR_DOMAINS:
            found = next((r for r in self.project.repositories.values() if r.id == key), None)
            location, repo_id = (found.location if found else "us"), key
        else:
            location, repo_id = key, rest.partition("/")[0]
        return f"projects/{project}/locations/{location}/repositories/{repo_id}"

    def drop_images(self, repo: Repository) -> None:
        """Nothing to free: a deleted repository's images are unreachable through the front."""

    def _who(self, user: str, password: str) -> str | None:
        if user == "oauth2accesstoken":
            return self.project.tokens.get(password)
        try:
            text = base64.b64decode(password).decode() if user == "_json_key_base64" else password
            info = json.loads(text) if user in ("_json_key", "_json_key_base64") else None
        except ValueError:
            return None
        account = self.project.check_key_file(info)
        return account.email if account else None

    def _check(self, key: str, user: str, password: str) -> Grant | None:
        if "artifactregistry.googleapis.com" not in self.project.enabled:
            return None  # the API is off: no repository of the project answers
        email = self._who(user, password)
        if email is None:
            return None
        # a Kubernetes service account's federated principal is its own member (keyless pods)
        member = email if email.startswith("principal://") else f"serviceAccount:{email}"

        def allow(repository: str, wanted: set[str]) -> set[str]:
            project, _, rest = repository.partition("/")
            # gcr.io-domain hosts have one repository: paths are <project>/<image>
            repo_id = key if key in GCR_DOMAINS else rest.partition("/")[0]
            found = next(
                (
                    r
                    for r in self.project.repositories.values()
                    if r.project == project and r.id == repo_id and self._front_key(r) == key
                ),
                None,
            )
            if found is None or project != self.project.id:
                return set()
            if member in self.project.owners:
                return wanted & ROLE_ACTIONS["roles/owner"]
            return wanted & found.actions(member)

        return Grant(email, allow)

    # --- admin and state -------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """``/_sandbox/google/settings``: the knobs of :data:`~.models.DEFAULT_SETTINGS`."""
        return self.project.settings

    def clock_ahead(self, days: float) -> dict[str, Any]:
        """``POST /_sandbox/clock``: the project's clock moves, then each repository's cleanup
        policies run once, as their daily job (:func:`.retention.clock_ahead`)."""
        return retention.clock_ahead(self, days)

    def state(self) -> dict[str, Any]:
        """Everything a test compares, without secrets."""
        p = self.project
        images = {k: f.process.repositories() for k, f in self.fronts.items()}
        return {
            "metadata_server": self.metadata.url if self.metadata else None,
            "services": sorted(p.enabled),
            "service_accounts": [
                {
                    "email": a.email,
                    "display_name": a.display_name,
                    "description": a.description,
                    "keys": sorted(a.keys),
                    "bindings": a.bindings,
                }
                for _, a in sorted(p.accounts.items())
            ],
            "registries": [
                {
                    "name": r.name,
                    "format": r.format,
                    "labels": r.labels,
                    "bindings": r.bindings,
                    "repositories": {
                        image: tags
                        for image, tags in images.get(self._front_key(r), {}).items()
                        if image.startswith(
                            f"{r.project}/" if r.id in GCR_DOMAINS else f"{r.project}/{r.id}/"
                        )
                    },
                }
                for _, r in sorted(p.repositories.items())
            ],
        }


#: The permission each registry action needs, as Artifact Registry names it in its refusals.
_PERMISSIONS = {
    "pull": "artifactregistry.repositories.downloadArtifacts",
    "push": "artifactregistry.repositories.uploadArtifacts",
}


class _ArtifactRegistryFront(RegistryFront):
    """The shared front, plus Artifact Registry's Bearer access tokens on the data plane,
    and its own refusal of a signed-in caller whose role lacks the action.

    A Bearer that is not a JWT of the front's realm is a Google access token: it is
    checked as the Basic ``oauth2accesstoken`` credentials it stands for.

    A signed-in caller (Basic, or a realm token with a subject) whose token lacks the action
    a call needs (push: POST/PUT/PATCH; pull: GET/HEAD of a manifest or blob) gets 403
    ``DENIED`` "Permission \"artifactregistry.repositories.uploadArtifacts\" denied on
    resource \"projects/<p>/locations/<l>/repositories/<r>\" (or it may not exist)" (pull:
    ``downloadArtifacts``), where docker-registry would answer 401 ``insufficient_scope``.
    Sources: the message as docker prints it (``denied: Permission
    "artifactregistry.repositories.uploadArtifacts" denied on resource "projects/
    MY_PROJECT_ID/locations/us-central1/repositories/cymbal-superstore" (or it may not
    exist)``, GoogleCloudPlatform/cymbal-superstore pull request 4; the downloadArtifacts
    one: googleapis/python-run issue 54); ``DENIED`` is 403 in distribution's error codes
    (``registry/api/errcode/register.go``, ``ErrorCodeDenied``). Anonymous callers keep
    docker-registry's 401 challenge (assumption: not modelled).
    """

    def __init__(self, cloud: GoogleCloud, key: str, app: App, config: FrontConfig) -> None:
        self.cloud = cloud
        self.key = key  # the location, or the gcr.io domain
        super().__init__(app, config)

    async def proxy(self, http: HttpRequest) -> HttpResponse:
        """Turn an access-token Bearer into ``oauth2accesstoken`` Basic, refuse what the
        caller's role does not allow as Artifact Registry does, then proxy."""
        authorization = http.headers.get("authorization", "")
        token = authorization[7:].strip()
        if authorization[:7].lower() == "bearer " and token and token.count(".") != 2:
            basic = base64.b64encode(f"oauth2accesstoken:{token}".encode()).decode()
            authorization = f"Basic {basic}"
            headers = [(k, v) for k, v in http.scope["headers"] if k.lower() != b"authorization"]
            headers.append((b"authorization", authorization.encode()))
            http = HttpRequest({**http.scope, "headers": headers}, http.receive)
        return await super().proxy(http)  # then refusal() sees it as Basic

    def refusal(self, http: HttpRequest) -> Response | None:
        """Artifact Registry's 403 when a signed-in caller lacks the call's action, else None
        (the front calls this in a worker thread holding the cloud's lock: a key file's check
        reads its RSA key)."""
        method, rest = http.method, str(http.path_params.get("rest", ""))
        authorization = http.headers.get("authorization", "")
        action = METHOD_ACTIONS.get(method)
        if action is None or not re.search(r"/(manifests|blobs)/", rest):
            return None  # DELETE: docker-registry's own answer
        repository = re.sub(r"/(manifests|blobs)/.*$", "", rest)
        # None: wrong credentials (the front's 401), a token not ours, or anonymous
        allowed = granted_actions(
            authorization, repository, action, self.config.check, anonymous_tokens=False
        )
        if allowed is None:
            return None
        if action in allowed:
            return None
        return registry_error(
            403,
            "DENIED",
            f'Permission "{_PERMISSIONS[action]}" denied on resource '
            f'"{self._resource(repository)}" (or it may not exist)',
        )

    def _resource(self, repository: str) -> str:
        """The repository's resource name for an image path ``<project>/<repo>/<image>``."""
        return self.cloud.resource_of(self.key, repository)


#: The backend ``server.backends()`` mounts for this provider (``sandbox/<key>/cloud.py``).
BACKEND = GoogleCloud
