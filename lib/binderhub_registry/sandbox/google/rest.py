"""Google's REST fakes: the OAuth token endpoint, Service Usage, Artifact Registry.

=============================================  ================================================
behaviour                                      source
=============================================  ================================================
``POST /oauth2/token`` grant ``urn:ietf:       developers.google.com/identity/protocols/oauth2/
params:oauth:grant-type:jwt-bearer``, an       service-account ("Making the access token
RS256 JWT signed by a live key -> access       request"); refusal ``{"error":
token; refusal 400 ``invalid_grant``           "invalid_grant", ...}`` from the same page
error body ``{"error": {"code", "message",     cloud.google.com/apis/design/errors (HTTP
"status", "details"}}``                        mapping); google-api-core reads it
a call to a disabled API (or one just         the body captured in terraform-google-modules/
enabled: ``disabled_after_enable``): 403       terraform-example-foundation#1133 (Help link,
PERMISSION_DENIED "<title> has not been used   ErrorInfo ``SERVICE_DISABLED`` with ``service``
in project <number> before or it is            and ``consumer``); the message as in
disabled. Enable it by visiting ... If you     openshift/installer#2187 (project number)
enabled this API recently, wait a few
minutes ...", ErrorInfo ``SERVICE_DISABLED``
``services:disable`` turns the API off even    serviceusage v1 discovery document:
while repositories use it (the default         DisableServiceRequest.checkIfServiceHasUsage,
``checkIfServiceHasUsage`` is SKIP); with      default SKIP; the refusal's text: assumption
CHECK and repositories: FAILED_PRECONDITION
``locations.list`` of Artifact Registry:       cloud.google.com/artifact-registry/docs/
Google Cloud's regions and the multi-regions   repositories/repo-locations (``gcloud artifacts
us, europe, asia (:data:`LOCATIONS`); another  locations list``); the regions from cloud.google
location: 400 INVALID_ARGUMENT "Request        .com/compute/docs/regions-zones (2025); the
contains an invalid argument."                 refusal as hashicorp/terraform-provider-google
                                               #10184 quotes it (location "eu-west3")
Service Usage ``GET v1/{name=*/*/services/*}`` serviceusage v1 discovery document
and ``POST v1/{name}:enable`` -> Operation;    (vendored in tests/data/google), operation
``GET v1/{name=operations/*}``                 names ``operations/acf.p2-...``
``projects.getProjectSettings`` /              artifactregistry v1 discovery document;
``updateProjectSettings``: gcr.io redirection  state: see :mod:`.models`
Artifact Registry ``repositories`` get,        artifactregistry v1 discovery document;
create (``repositoryId``, returns an           create and delete are long-running
Operation), delete (Operation), list, patch    (``projects/*/locations/*/operations/*``);
(``updateMask``: labels, description,          patch answers the Repository (assumption: no
cleanupPolicies, cleanupPolicyDryRun: see      operation); a map named in the mask is replaced
:mod:`.retention`); get adds ``sizeBytes``;    whole (google.protobuf.FieldMask's rule for
``:getIamPolicy`` / ``:setIamPolicy``          maps); labels: see :mod:`.models`
``repositories.get`` also for a member of      cloud.google.com/iam/docs/roles-permissions/
the repository's own policy with a role        artifactregistry (repositories.get in Reader,
(reader, writer, repoAdmin: BinderHub's        Writer, Repository Administrator); .../
account reads its ``sizeBytes``); other        repositories/list-repos ("view a specific
calls: the project's owners only               repository: Reader on the repository")
stale etag on setIamPolicy: 409 ABORTED        cloud.google.com/iam/docs/policies#etag
"There were concurrent policy changes..."
``getIamPolicy`` reads                         artifactregistry v1 discovery document
``options.requestedPolicyVersion``;            (getIamPolicy's parameters); versions and
conditional bindings: see :mod:`.models`       conditions: see :mod:`.models`
repository ids: lowercase letters, digits,     cloud.google.com/artifact-registry/docs/
hyphens, start with a letter, at most 63;      repositories/create-repos; gcr.io-domain ids
``gcr.io``, ``us.gcr.io``, ``eu.gcr.io``,      from .../transition/setup-gcr-repo
``asia.gcr.io`` only in us/us/europe/asia
=============================================  ================================================
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from ..app import Request, Response, RouteTable, json_response
from .models import Host, Project, Repository, missing_pool, policy_refusal, policy_view
from .retention import check_policies, image_path, size_bytes

__all__ = ["LOCATIONS", "STATUS", "Rest", "google_error", "service_disabled_error"]

#: HTTP status of each canonical code (google.rpc.Code; cloud.google.com/apis/design/errors).
STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
}
GCR_DOMAINS = {"gcr.io": "us", "us.gcr.io": "us", "eu.gcr.io": "europe", "asia.gcr.io": "asia"}
AR = "artifactregistry.googleapis.com"
#: What updateProjectSettings accepts (FINALIZED is deprecated; the copying ones: not modelled).
_REDIRECTION_STATES = ("REDIRECTION_FROM_GCR_IO_DISABLED", "REDIRECTION_FROM_GCR_IO_ENABLED")
_REPOSITORY_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
#: Artifact Registry's locations (``locations.list``): Google Cloud's regions (cloud.google.com/
#: compute/docs/regions-zones, 2025) and the multi-regions (.../repositories/repo-locations).
LOCATIONS = (
    *("us", "europe", "asia"),
    *("africa-south1", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2"),
    *("asia-northeast3", "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2"),
    *("australia-southeast1", "australia-southeast2", "europe-central2", "europe-north1"),
    *("europe-north2", "europe-southwest1", "europe-west1", "europe-west2", "europe-west3"),
    *("europe-west4", "europe-west6", "europe-west8", "europe-west9", "europe-west10"),
    *("europe-west12", "me-central1", "me-central2", "me-west1", "northamerica-northeast1"),
    *("northamerica-northeast2", "northamerica-south1", "southamerica-east1"),
    *("southamerica-west1", "us-central1", "us-east1", "us-east4", "us-east5", "us-south1"),
    *("us-west1", "us-west2", "us-west3", "us-west4"),
)
SERVICE_TITLES = {
    "artifactregistry.googleapis.com": "Artifact Registry API",
    "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "serviceusage.googleapis.com": "Service Usage API",
}


def google_error(code: str, message: str, details: list[dict[str, Any]] | None = None) -> Response:
    """Google's JSON error body for canonical ``code``."""
    status = STATUS.get(code, 500)
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if details:
        error["details"] = details
    return json_response(status, {"error": error})


def service_disabled(project: Project, service: str) -> Response:
    """The 403 of a call to an API that is not enabled (ErrorInfo SERVICE_DISABLED)."""
    message, details = service_disabled_error(project, service)
    return google_error("PERMISSION_DENIED", message, details)


def service_disabled_error(project: Project, service: str) -> tuple[str, list[dict[str, Any]]]:
    """Google's message and details (Help, ErrorInfo) for a call to a disabled ``service``:
    REST sends them as the JSON body, gRPC in its rich status."""
    title = SERVICE_TITLES.get(service, service)
    url = (
        f"https://console.developers.google.com/apis/api/{service}/overview?project="
        f"{project.number}"
    )
    message = (
        f"{title} has not been used in project {project.number} before or it is disabled. "
        f"Enable it by visiting {url} then retry. If you enabled this API recently, wait a few "
        "minutes for the action to propagate to our systems and retry."
    )
    return message, [
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Google developers console API activation", "url": url}],
        },
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "SERVICE_DISABLED",
            "domain": "googleapis.com",
            "metadata": {"service": service, "consumer": f"projects/{project.number}"},
        },
    ]


class Rest:
    """The REST routes of the Google backend, over the cloud's one project."""

    def __init__(self, cloud: Host) -> None:
        self.cloud = cloud

    @property
    def project(self) -> Project:
        """The cloud's live project."""
        return self.cloud.project

    def routes(self) -> RouteTable:
        """(method, pattern, handler), colon verbs before the plain resource paths."""
        su = "/serviceusage/v1/projects/{project}/services/{service}"
        ar = "/artifactregistry/v1/projects/{project}/locations/{location}"
        return [
            ("POST", "/oauth2/token", self.token),
            ("POST", su + ":enable", self.enable),
            ("POST", su + ":disable", self.disable),
            ("GET", su, self.get_service),
            ("GET", "/artifactregistry/v1/projects/{project}/locations", self.list_locations),
            ("GET", "/serviceusage/v1/operations/{op}", self.service_operation),
            ("GET", ar + "/repositories/{repo}:getIamPolicy", self.get_policy),
            ("POST", ar + "/repositories/{repo}:setIamPolicy", self.set_policy),
            ("GET", ar + "/repositories/{repo}", self.get_repository),
            ("DELETE", ar + "/repositories/{repo}", self.delete_repository),
            ("PATCH", ar + "/repositories/{repo}", self.patch_repository),
            ("GET", ar + "/repositories", self.list_repositories),
            ("POST", ar + "/repositories", self.create_repository),
            ("GET", ar + "/operations/{op}", self.repository_operation),
            ("GET", "/artifactregistry/v1/projects/{project}/projectSettings", self.settings),
            ("PATCH", "/artifactregistry/v1/projects/{project}/projectSettings", self.settings),
        ]

    # --- auth ---------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        """The OAuth 2.0 token endpoint for service-account JWT assertions."""
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return json_response(400, {"error": "unsupported_grant_type"})
        email = self._verify_assertion(form.get("assertion", ""))
        if email is None:
            return json_response(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )
        return json_response(
            200,
            {
                "access_token": self.project.issue_token(email),
                "expires_in": 3599,
                "token_type": "Bearer",
            },
        )

    def _verify_assertion(self, assertion: str) -> str | None:
        """The issuer of a JWT signed by one of its live keys (RS256), else None."""
        return self.project.verify_jwt(assertion)

    def caller(self, request: Request) -> str | Response:
        """The signed-in principal, or Google's 401."""
        email = self.project.principal(request.bearer())
        if email is None:
            return google_error(
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        return email

    def _guard(self, request: Request, service: str | None = None) -> Response | None:
        """401 without a token, 404 for another project, 403 when ``service`` is off."""
        who = self.caller(request)
        if isinstance(who, Response):
            return who
        if request.params.get("project") not in (self.project.id, self.project.number):
            return google_error(
                "PERMISSION_DENIED",
                f"Permission denied on resource project {request.params.get('project')}.",
            )
        if f"serviceAccount:{who}" not in self.project.owners:
            return google_error("PERMISSION_DENIED", "The caller does not have permission")
        if service and self.project.refuses(service):
            return service_disabled(self.project, service)
        if "location" in request.params and request.params["location"] not in LOCATIONS:
            return google_error("INVALID_ARGUMENT", "Request contains an invalid argument.")
        return None

    # --- Service Usage --------------------------------------------------------------
    def _service(self, name: str) -> dict[str, Any]:
        state = "ENABLED" if name in self.project.enabled else "DISABLED"
        return {
            "name": f"projects/{self.project.number}/services/{name}",
            "config": {"name": name, "title": SERVICE_TITLES.get(name, name)},
            "state": state,
            "parent": f"projects/{self.project.number}",
        }

    def get_service(self, request: Request) -> Response:
        """``services.get``: the service and its state."""
        refused = self._guard(request)
        if refused:
            return refused
        return json_response(200, self._service(request.params["service"]))

    def enable(self, request: Request) -> Response:
        """``services.enable``: an operation that enables the service when it completes."""
        refused = self._guard(request)
        if refused:
            return refused
        service = request.params["service"]
        if service not in SERVICE_TITLES:
            return google_error("NOT_FOUND", f"Service {service} not found or permission denied.")
        return self._service_change(service, "Enable", self.project.enable)

    def disable(self, request: Request) -> Response:
        """``services.disable``: an operation that turns the service off when it completes."""
        refused = self._guard(request)
        if refused:
            return refused
        service = request.params["service"]
        check = (request.json() or {}).get("checkIfServiceHasUsage")
        if check == "CHECK" and service == AR and self.project.repositories:
            return google_error(
                "FAILED_PRECONDITION",
                f"The service {service} has usage in project {self.project.number}: "
                f"{len(self.project.repositories)} repositories.",
            )
        return self._service_change(service, "Disable", self.project.disable)

    def _service_change(self, service: str, verb: str, finish: Callable[[str], None]) -> Response:
        """The long-running operation of ``services.<verb>``: ``finish(service)`` runs when
        it completes, and its response is ``<verb>ServiceResponse`` with the service."""
        name = f"operations/acf.p2-{self.project.number}-{self.project.next_id(8)}"
        self.project.operations[name] = {
            "polls": int(self.project.settings["operation_polls"]),
            "finish": lambda: finish(service),
            "response": lambda: {
                "@type": f"type.googleapis.com/google.api.serviceusage.v1.{verb}ServiceResponse",
                "service": self._service(service),
            },
            "metadata": {
                "@type": "type.googleapis.com/google.api.serviceusage.v1.OperationMetadata"
            },
        }
        return self._operation(name)

    def service_operation(self, request: Request) -> Response:
        """``operations.get`` of Service Usage."""
        if isinstance(self.caller(request), Response):
            return self.caller(request)  # type: ignore[return-value]
        return self._poll("operations/" + request.params["op"])

    # --- operations -------------------------------------------------------------------
    def _operation(self, name: str) -> Response:
        state = self.project.operations[name]
        body: dict[str, Any] = {"name": name, "metadata": state["metadata"]}
        if state["polls"] <= 0:
            if "done_response" not in state:
                state["finish"]()
                state["done_response"] = state["response"]()
            body |= {"done": True, "response": state["done_response"]}
        return json_response(200, body)

    def _poll(self, name: str) -> Response:
        state = self.project.operations.get(name)
        if state is None:
            return google_error("NOT_FOUND", f"Operation {name} not found.")
        state["polls"] -= 1
        return self._operation(name)

    # --- Artifact Registry --------------------------------------------------------------
    def list_locations(self, request: Request) -> Response:
        """``projects.locations.list``: every location Artifact Registry has (one page)."""
        refused = self._guard(request, AR)
        if refused:
            return refused
        project = request.params["project"]
        return json_response(
            200,
            {
                "locations": [
                    {"name": f"projects/{project}/locations/{loc}", "locationId": loc}
                    for loc in LOCATIONS
                ]
            },
        )

    def _repo_name(self, request: Request, repo: str | None = None) -> str:
        rid = repo or request.params["repo"]
        return (
            f"projects/{self.project.id}/locations/{request.params['location']}/repositories/{rid}"
        )

    def _repo_json(self, repo: Repository, *, size: bool = False) -> dict[str, Any]:
        """The Repository resource; ``size``: with ``sizeBytes`` (read from the registry,
        so only ``repositories.get`` asks for it)."""
        host = self.cloud.registry_host(repo)
        answer: dict[str, Any] = {
            "name": repo.name,
            "format": repo.format,
            "description": repo.description,
            "labels": dict(repo.labels),
            "createTime": repo.created,
            "updateTime": repo.created,
            "mode": "STANDARD_REPOSITORY",
            "registryUri": f"{host}/{repo.project}/{repo.id}" if host else "",
        }
        # proto3 JSON leaves out empty maps, false and zero (retention.py)
        if repo.cleanup_policies:
            answer["cleanupPolicies"] = {k: dict(v) for k, v in repo.cleanup_policies.items()}
        if repo.cleanup_dry_run:
            answer["cleanupPolicyDryRun"] = True
        front = self.cloud.fronts.get(repo.id if "." in repo.id else repo.location)
        stored = size_bytes(front.process, image_path(repo)) if size and front else 0
        if stored:
            answer["sizeBytes"] = str(stored)
        return answer

    def _find(self, request: Request) -> Repository | Response:
        refused = self._guard(request, AR)
        if refused:
            return refused
        repo = self.project.repositories.get(self._repo_name(request))
        if repo is None:
            return google_error("NOT_FOUND", "Requested entity was not found.")
        return repo

    def get_repository(self, request: Request) -> Response:
        """``repositories.get``: for the project's owners, and for any member the repository's
        own policy gives a role (each Artifact Registry role holds repositories.get)."""
        repo = self._member_read(request) or self._find(request)
        if isinstance(repo, Response):
            return repo
        return json_response(200, self._repo_json(repo, size=True))

    def _member_read(self, request: Request) -> Repository | None:
        """The path's repository when the caller holds a role on it there (not an owner)."""
        who = self.project.principal(request.bearer())
        if who is None or request.params.get("project") not in (
            self.project.id,
            self.project.number,
        ):
            return None
        repo = self.project.repositories.get(self._repo_name(request))
        if repo is None or not repo.actions(f"serviceAccount:{who}") or self.project.refuses(AR):
            return None
        return repo

    def list_repositories(self, request: Request) -> Response:
        """``repositories.list`` of one location."""
        refused = self._guard(request, AR)
        if refused:
            return refused
        found = [
            self._repo_json(r)
            for r in self.project.repositories.values()
            if r.location == request.params["location"]
        ]
        return json_response(200, {"repositories": found} if found else {})

    def create_repository(self, request: Request) -> Response:
        """``repositories.create``: an operation; the registry front starts with the repository."""
        refused = self._guard(request, AR)
        if refused:
            return refused
        rid = request.arg("repositoryId")
        location = request.params["location"]
        body = request.json()
        if rid in GCR_DOMAINS:
            if GCR_DOMAINS[rid] != location:
                return google_error(
                    "INVALID_ARGUMENT",
                    f"repository {rid} must be in location {GCR_DOMAINS[rid]}",
                )
        elif not _REPOSITORY_ID.fullmatch(rid):
            return google_error("INVALID_ARGUMENT", f"invalid repository id {rid!r}")
        # the SDKs ask for enums as numbers ($alt=json;enum-encoding=int): DOCKER is 1
        if body.get("format") not in ("DOCKER", 1):
            return google_error("INVALID_ARGUMENT", "only the DOCKER format is modelled")
        labels = _labels(body.get("labels", {}))
        if labels is None:
            return google_error("INVALID_ARGUMENT", "invalid labels")
        policies = body.get("cleanupPolicies", {})
        wrong = check_policies(policies)
        if wrong:
            return google_error("INVALID_ARGUMENT", wrong)
        name = self._repo_name(request, rid)
        if name in self.project.repositories:
            return google_error("ALREADY_EXISTS", f"the repository already exists: {name}")
        repo = Repository(
            self.project.id,
            location,
            rid,
            "DOCKER",
            str(body.get("description", "")),
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            labels=labels,
            cleanup_policies=_with_ids(policies),
            cleanup_dry_run=bool(body.get("cleanupPolicyDryRun", False)),
        )
        try:  # first: a front that fails to start leaves no repository
            self.cloud.ensure_front(repo)
        except Exception as exc:  # a sandbox fault, worded as Google's INTERNAL so it shows
            return json_response(
                500, {"error": {"code": 500, "message": f"sandbox: {exc!r}", "status": "INTERNAL"}}
            )
        self.project.repositories[name] = repo
        return self._lro(location, lambda: None, lambda: self._repo_json(repo), "Repository")

    def delete_repository(self, request: Request) -> Response:
        """``repositories.delete``: gone at once, reported through a done operation."""
        repo = self._find(request)
        if isinstance(repo, Response):
            return repo
        del self.project.repositories[repo.name]
        self.cloud.drop_images(repo)
        return self._lro(repo.location, lambda: None, lambda: {}, "Empty", polls=0)

    def patch_repository(self, request: Request) -> Response:
        """``repositories.patch``: the fields ``updateMask`` names (labels, description, and
        the cleanup policies: a named map field is replaced whole, as FieldMask says)."""
        repo = self._find(request)
        if isinstance(repo, Response):
            return repo
        body = request.json()
        fields = [f for f in str(request.arg("updateMask") or "").split(",") if f]
        if not fields or not set(fields) <= _PATCHABLE:
            return google_error("INVALID_ARGUMENT", f"invalid update mask {fields}")
        if "cleanupPolicies" in fields:
            policies = body.get("cleanupPolicies", {})
            wrong = check_policies(policies)
            if wrong:
                return google_error("INVALID_ARGUMENT", wrong)
            repo.cleanup_policies = _with_ids(policies)
        if "cleanupPolicyDryRun" in fields:
            repo.cleanup_dry_run = bool(body.get("cleanupPolicyDryRun", False))
        if "labels" in fields:
            labels = _labels(body.get("labels", {}))
            if labels is None:
                return google_error("INVALID_ARGUMENT", "invalid labels")
            repo.labels = labels
        if "description" in fields:
            repo.description = str(body.get("description", ""))
        return json_response(200, self._repo_json(repo))

    def _lro(
        self,
        location: str,
        finish: Callable[[], None],
        response: Callable[[], dict[str, Any]],
        kind: str,
        polls: int | None = None,
    ) -> Response:
        name = (
            f"projects/{self.project.id}/locations/{location}/operations/"
            f"{self.project.next_id(8)}-0000-4000-8000-000000000000"
        )
        at = "google.protobuf" if kind == "Empty" else "google.devtools.artifactregistry.v1"
        self.project.operations[name] = {
            "polls": int(self.project.settings["operation_polls"]) if polls is None else polls,
            "finish": finish,
            "response": lambda: {"@type": f"type.googleapis.com/{at}.{kind}"} | response(),
            "metadata": {
                "@type": "type.googleapis.com/google.devtools.artifactregistry.v1.OperationMetadata"
            },
        }
        return self._operation(name)

    def repository_operation(self, request: Request) -> Response:
        """``operations.get`` of Artifact Registry."""
        refused = self._guard(request)
        if refused:
            return refused
        loc = request.params["location"]
        return self._poll(
            f"projects/{self.project.id}/locations/{loc}/operations/{request.params['op']}"
        )

    def settings(self, request: Request) -> Response:
        """``projects.getProjectSettings`` / ``updateProjectSettings``: gcr.io redirection."""
        refused = self._guard(request, "artifactregistry.googleapis.com")
        if refused:
            return refused
        if request.method == "PATCH":
            mask = str(request.arg("updateMask") or "")
            state = request.json().get("legacyRedirectionState")
            if mask != "legacyRedirectionState" or state not in _REDIRECTION_STATES:
                return google_error("INVALID_ARGUMENT", f"invalid project settings update {mask}")
            self.project.redirection = str(state)
        return json_response(
            200,
            {
                "name": f"projects/{self.project.id}/projectSettings",
                "legacyRedirectionState": self.project.redirection,
            },
        )

    def get_policy(self, request: Request) -> Response:
        """``repositories.getIamPolicy``."""
        repo = self._find(request)
        if isinstance(repo, Response):
            return repo
        try:
            requested = int(request.arg("options.requestedPolicyVersion") or 0)
        except ValueError:
            return google_error("INVALID_ARGUMENT", "invalid options.requestedPolicyVersion")
        return json_response(200, _policy(repo, requested))

    def set_policy(self, request: Request) -> Response:
        """``repositories.setIamPolicy``: the etag must be current; members must exist."""
        repo = self._find(request)
        if isinstance(repo, Response):
            return repo
        policy = request.json().get("policy", {})
        etag = policy.get("etag")
        if etag and etag != repo.etag:
            return google_error(
                "ABORTED",
                "There were concurrent policy changes. Please retry the whole read-modify-write "
                "with exponential backoff.",
            )
        bindings = policy.get("bindings", [])
        for binding in bindings:
            for member in binding.get("members", []):
                kind, _, email = member.partition(":")
                account = self.project.accounts.get(email)
                if (
                    kind == "serviceAccount"
                    and email.endswith(f"@{self.project.id}.iam.gserviceaccount.com")
                    and (account is None or account.lagging("member"))
                ):
                    return google_error(
                        "INVALID_ARGUMENT", f"Service account {email} does not exist."
                    )
        refused = missing_pool(
            self.project, [m for b in bindings for m in b.get("members", [])]
        ) or policy_refusal(repo.bindings, int(policy.get("version") or 0), bindings, bool(etag))
        if refused:
            return google_error("INVALID_ARGUMENT", refused)
        repo.bindings = [
            {"role": b["role"], "members": sorted(b.get("members", []))}
            | ({"condition": dict(b["condition"])} if b.get("condition") else {})
            for b in bindings
            if b.get("members")
        ]
        repo.version += 1
        return json_response(200, _policy(repo, int(policy.get("version") or 0)))


_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


#: What repositories.patch's updateMask may name here.
_PATCHABLE = {"labels", "description", "cleanupPolicies", "cleanupPolicyDryRun"}


def _with_ids(policies: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The checked policies, each with its key as its ``id``, as Google answers them."""
    return {key: dict(policy) | {"id": key} for key, policy in policies.items()}


def _labels(value: Any) -> dict[str, str] | None:
    """Labels as Artifact Registry accepts them (Repository.labels), else None."""
    if not isinstance(value, dict) or len(value) > 64:
        return None
    for k, v in value.items():
        if not (isinstance(v, str) and _LABEL_KEY.fullmatch(k) and _LABEL_VALUE.fullmatch(v)):
            return None
    return dict(value)


def _policy(repo: Repository, requested: int) -> dict[str, Any]:
    """The repository's policy as IAM shows it at the ``requested`` version."""
    version, bindings = policy_view(repo.bindings, requested)
    body: dict[str, Any] = {"version": version, "etag": repo.etag}
    if bindings:
        body["bindings"] = bindings
    return body
