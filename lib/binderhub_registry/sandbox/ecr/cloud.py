"""The Amazon ECR backend: moto's IAM, STS and ECR, ECR's registry front, and the registry helper.

The sources of each behaviour are in the package's table (``sandbox/ecr/__init__.py``).
"""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import Response as HttpResponse
from starlette.routing import Mount, Route, Router

from ..app import (
    ALL_METHODS,
    App,
    Backend,
    Context,
    Request,
    Response,
    json_response,
    read_request,
    to_http,
)
from ..registry_front import FrontConfig, Grant, RegistryFront, registry_error
from . import lifecycle
from .api import HELPER_SETTINGS, Helper
from .models import (
    ACCOUNT_ID,
    ADMIN_USER,
    SERVICES,
    AuthToken,
    Aws,
    WebIdentityIssuer,
    query_fault,
    repository_arn,
)
from .node import node_credentials

__all__ = ["BACKEND", "DEFAULT_SETTINGS", "SEED_CLUSTER", "EcrCloud", "seed_credentials"]

#: The EKS cluster BinderHub runs on (a prerequisite, as Google's seeded project is): its OIDC
#: issuer has the form EKS gives it; the id is the one of AWS's IRSA examples.
SEED_CLUSTER = {
    "binderhub": {
        "region": "us-east-2",
        "oidc_issuer": "https://oidc.eks.us-east-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
    }
}

#: ``/_sandbox/ecr/settings``: a new account, its clock now, nothing slow or throttled.
DEFAULT_SETTINGS: dict[str, Any] = {
    "clock_offset_hours": 0.0,  # how far ECR's clock runs ahead (authorization tokens: 12 h)
    "role_propagation_seconds": 0.0,  # a role younger than this is refused by STS
    "throttle": {},  # {"<Operation>": n}: its next n calls answer AWS's throttling error
    "eks_clusters": SEED_CLUSTER,  # name -> {"region", "oidc_issuer"}
}

# ECR's IAM actions for a registry call (ECR user guide, "Pushing an image": the policy actions)
_PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
_PUSH = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
]


def seed_credentials() -> dict[str, str]:
    """The seeded administrator's access key (AKIA + 16, secret 40: IAM's formats)."""
    upper = string.ascii_uppercase + string.digits
    return {
        "access_key_id": "AKIA" + "".join(secrets.choice(upper) for _ in range(16)),
        "secret_access_key": secrets.token_urlsafe(30)[:40],
        "account_id": ACCOUNT_ID,
        "user": ADMIN_USER,
    }


class EcrCloud(Backend):
    """``/ecr/{api,iam,sts}`` (moto), ``/ecr/helpers/<release>`` (the helper), and ECR's
    registry on its own port (``registries()["ecr"]``)."""

    prefix = "/ecr"

    def __init__(
        self, admin: dict[str, str], web_identity: WebIdentityIssuer, ca_file: str
    ) -> None:
        self.offset: dict[str, Any] = json.loads(json.dumps(DEFAULT_SETTINGS))
        self.admin_credentials = admin
        self.web_identity = web_identity
        self.ca_file = ca_file
        self.front: EcrFront | None = None
        self.helpers: dict[str, Helper] = {}
        self._helpers_lock = threading.Lock()
        self.aws = Aws(
            clock=self.clock,
            settings=lambda: self.offset,
            registry_url=lambda: self.front.url if self.front else "",
            admin=admin,
        )
        super().__init__()
        for service in SERVICES:
            for method in ("POST", "GET", "DELETE"):
                self.route(method, f"/{service}", self._aws_handler(service))
                self.route(method, f"/{service}/{{rest:path}}", self._aws_handler(service))

    @classmethod
    def create(cls, context: Context) -> EcrCloud:
        """The backend with the seeded administrator's key from the sandbox's credentials."""
        admin = context.secret("ecr", seed_credentials)
        material = context.material
        return cls(admin, WebIdentityIssuer(material.service_key_pem), str(material.ca_file))

    def clock(self) -> float:
        """ECR's clock: now, plus ``clock_offset_hours``."""
        return time.time() + float(self.offset["clock_offset_hours"]) * 3600

    def _aws_handler(self, service: str) -> Callable[[Request], Response]:
        return lambda request: self._aws(service, request)

    def _aws(self, service: str, request: Request) -> Response:
        assert self.app is not None
        return self.aws.handle(service, request, self.app.url.removeprefix("https://"))

    def fault_answer(self, path: str, status: int) -> Response | None:
        """IAM and STS speak the query protocol: a fault there answers their XML error, which
        botocore parses into a ``ClientError`` (a JSON body is its ``ResponseParserError``)."""
        if path.split("/")[1:2] in (["iam"], ["sts"]):
            return query_fault(status)
        return None

    # --- lifecycle ----------------------------------------------------------------------------
    def attach(self, app: App) -> None:
        """Open ECR's registry port and start its docker-registry."""
        super().attach(app)
        self.front = EcrFront(
            self,
            app,
            FrontConfig(
                name="ecr",
                service="ecr.amazonaws.com",
                issuer="ECR",
                realm_path="/",  # ECR has no token endpoint: its challenge is Basic
                check=self.grant,
                lock=self.lock,
                basic_ping=True,
                unauthorized="Not Authorized",
                clock=self.clock,  # pushes dated on ECR's clock (imagePushedAt, lifecycle)
            ),
        )

    def reset(self) -> None:
        """A new account, the clock back to now, no helper, the registry empty."""
        self.offset.clear()
        self.offset.update(json.loads(json.dumps(DEFAULT_SETTINGS)))
        self.aws.reset()
        with self._helpers_lock:
            self.helpers.clear()
        if self.front is not None:
            self.front.process.restart()

    def shutdown(self) -> None:
        """Stop the registry."""
        if self.front is not None:
            self.front.stop()
            self.front = None

    def clock_ahead(self, days: float) -> dict[str, Any]:
        """``POST /_sandbox/clock``: ECR's clock ``days`` ahead (``clock_offset_hours``: tokens
        handed out before expire too), then one evaluation of every repository's lifecycle
        policy at the new now, as ECR's evaluator would have run meanwhile (real ECR expires
        within 24 hours of an image meeting the criteria; here at once). An expired image goes
        from ECR's records and from the registry (a pull then fails): ``<region>/<name>:<tag>``
        each, in ``deleted``."""
        self.offset["clock_offset_hours"] = float(self.offset["clock_offset_hours"]) + days * 24
        if not self.aws._loaded:  # moto never loaded: no repository exists
            return {"deleted": []}
        from moto.ecr.models import ecr_backends

        now = self.clock()
        deleted: list[str] = []
        for region, backend in sorted(ecr_backends[ACCOUNT_ID].items()):
            for name, repository in sorted(backend.repositories.items()):
                if not repository.lifecycle_policy:
                    continue
                images = [
                    lifecycle.Image(i.image_digest, tuple(i.image_tags), float(i.image_pushed_at))
                    for i in self.aws.images(region, name)
                ]
                for digest in lifecycle.expired(repository.lifecycle_policy, images, now):
                    tags = self.aws.delete_image(region, name, digest)
                    if self.front is not None:
                        self.front.process.delete_manifest(name, digest)
                    deleted += [f"{region}/{name}:{tag}" for tag in tags]
        return {"deleted": deleted}

    def registries(self) -> dict[str, str]:
        """ECR's registry (real life: ``<account>.dkr.ecr.<region>.amazonaws.com``)."""
        return {"ecr": self.front.url} if self.front else {}

    def settings(self) -> dict[str, Any]:
        """``clock_offset_hours``, ``role_propagation_seconds``, ``throttle``, ``eks_clusters``."""
        return self.offset

    def admin(self, request: Request, name: str) -> Response:
        """``settings``, and ``node-token``: what a node's kubelet gets from
        ecr-credential-provider (``node.py``), minted as the node role."""
        if name == "node-token" and request.method == "GET" and self.app and self.front:
            host = self.app.url.removeprefix("https://")
            return node_credentials(self.aws, request, host, self.front.url, self.clock())
        return super().admin(request, name)

    def state(self) -> dict[str, Any]:
        """Repositories (their lifecycle policies and tags: a push shows there too), IAM roles,
        customer policies, users and OIDC providers, and the helpers installed: no secrets."""
        found: dict[str, Any] = {"helpers": [h.public() for h in self.helpers.values()]}
        if not self.aws._loaded:  # moto not imported yet: the seeded account, as it will load
            roles = [f"{c}-{r}" for c in self.offset["eks_clusters"] for r in ("cluster", "node")]
            return found | {
                "repositories": {},
                "roles": sorted(roles),
                "policies": [],
                "users": [ADMIN_USER],
                "oidc_providers": [],
            }
        from moto.ecr.models import ecr_backends

        repositories: dict[str, Any] = {}
        for region, backend in ecr_backends[ACCOUNT_ID].items():
            for name, repo in backend.repositories.items():
                repositories[f"{region}/{name}"] = {
                    "lifecycle_policy": json.loads(repo.lifecycle_policy)
                    if repo.lifecycle_policy
                    else None,
                    "images": sorted(t for i in repo.images for t in (i.image_tags or [])),
                }
        iam = self.aws.iam_backend()
        return found | {
            "repositories": repositories,
            "roles": sorted(r.name for r in iam.roles.values()),
            "policies": sorted(
                p.name for p in iam.managed_policies.values() if ":aws:policy" not in p.arn
            ),
            "users": sorted(iam.users),
            "oidc_providers": sorted(iam.open_id_providers),
        }

    # --- the registry's credential check -------------------------------------------------------
    def grant(self, username: str, password: str) -> Grant | None:
        """``AWS`` and a password GetAuthorizationToken gave, not expired (else None)."""
        token = self.aws.check_token(password) if username == "AWS" else None
        if token is None or token.expires_at <= self.clock():
            return None
        return Grant(
            token.principal_arn, lambda repository, wanted: self._allow(token, repository, wanted)
        )

    def _allow(self, token: AuthToken, repository: str, wanted: set[str]) -> set[str]:
        if not self.aws.repository_exists(token.region, repository):
            return set()
        granted = set()
        if "pull" in wanted and self.aws.allowed(token, repository, _PULL):
            granted.add("pull")
        if "push" in wanted and self.aws.allowed(token, repository, _PUSH + _PULL):
            granted.add("push")
        return granted

    # --- the helper's routes (not under the backend's lock: the helper calls /ecr/api) ---------
    def router(self) -> Router:
        """The AWS routes, and ``/helpers/<release>/...`` for the registry helper."""
        inner = super().router()

        async def helper(http: HttpRequest) -> HttpResponse:
            request = await read_request(http)
            release = str(http.path_params["release"])
            rest = "/" + str(http.path_params.get("rest", ""))
            answer = await run_in_threadpool(self.helper_call, request, release, rest)
            return to_http(answer)

        routes = [
            Route("/helpers/{release}", helper, methods=ALL_METHODS),
            Route("/helpers/{release}/{rest:path}", helper, methods=ALL_METHODS),
            Mount("", app=inner),
        ]
        return Router(routes, redirect_slashes=False)

    def helper_call(self, request: Request, release: str, rest: str) -> Response:
        """Deploy (``PUT``), uninstall (``DELETE``) a release, or call its API."""
        try:
            if rest == "/":
                return self._release(request, release)
            with self._helpers_lock:
                helper = self.helpers.get(release)
            if helper is None:  # no such Service in the cluster: nothing answers (assumption)
                return json_response(503, {"message": f"no registry helper release {release!r}"})
            return helper.answer(request, rest)
        except Exception as exc:  # a bug must show, not hang the client
            return json_response(500, {"message": f"sandbox error: {exc!r}"})

    def _release(self, request: Request, release: str) -> Response:
        if request.method == "DELETE":
            with self._helpers_lock:
                gone = self.helpers.pop(release, None)
            return json_response(200 if gone else 404, {"deleted": release} if gone else None)
        if request.method == "GET":
            with self._helpers_lock:
                found = self.helpers.get(release)
            return json_response(200, found.public()) if found else json_response(404, None)
        if request.method != "PUT":
            return json_response(405, {"message": "PUT (install), GET or DELETE"})
        env = request.json()
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            return json_response(
                400, {"message": "the helper's environment: a JSON object of strings"}
            )
        unknown = sorted(set(env) - set(HELPER_SETTINGS))
        if unknown:
            return json_response(
                400, {"message": f"unknown settings {unknown}; known: {list(HELPER_SETTINGS)}"}
            )
        if "BINDERHUB_AUTH_TOKEN" not in env:  # common.getAuthToken: the pod stops without it
            return json_response(
                400,
                {
                    "message": "BINDERHUB_AUTH_TOKEN not found, set it to a secret token "
                    "or '' to disable authentication"
                },
            )
        if not env.get("AWS_REGION"):
            return json_response(400, {"message": "AWS_REGION is required"})
        if not env.get("AWS_ROLE_ARN") and not env.get("AWS_ACCESS_KEY_ID"):
            return json_response(
                400, {"message": "AWS_ROLE_ARN (IRSA) or AWS_ACCESS_KEY_ID is required"}
            )
        assert self.app is not None
        made = Helper(
            name=release,
            env=dict(env),
            endpoint=self.app.url + "/ecr/api",
            ca_file=self.ca_file,
            issuers=lambda: self.offset["eks_clusters"],
            web_identity=self.web_identity,
        )
        with self._helpers_lock:
            existed = release in self.helpers
            self.helpers[release] = made
        return json_response(200 if existed else 201, made.public())


class EcrFront(RegistryFront):
    """The shared front, with ECR's own answers before docker-registry's.

    Every call needs ``AWS`` and a live token (Basic, on each call: ECR has no token
    endpoint): none or a wrong one is 401 with ECR's Basic challenge, an expired one 403
    DENIED; a repository ECR does not have is 404 NAME_UNKNOWN; an identity whose policies
    do not allow the call's ECR actions on the repository is 403 DENIED. A manifest the
    registry accepts becomes an image ECR's DescribeImages shows.
    """

    def __init__(self, cloud: EcrCloud, app: App, config: FrontConfig) -> None:
        self.cloud = cloud
        super().__init__(app, config)

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://{self.host}"

    def challenge(self) -> dict[str, str]:
        """ECR's: ``Basic realm="https://<host>/",service="ecr.amazonaws.com"``."""
        return {
            "WWW-Authenticate": f'Basic realm="https://{self.host}/",service="ecr.amazonaws.com"'
        }

    def refusal(self, http: HttpRequest) -> Response | None:
        """ECR's refusals (see the class doc), before docker-registry."""
        rest = str(http.path_params.get("rest", ""))
        return self._refusal(http.method, rest, http.headers.get("authorization", ""))

    async def proxy(self, http: HttpRequest) -> HttpResponse:
        """ECR's refusals, then docker-registry; a stored manifest is recorded in ECR."""
        rest = str(http.path_params.get("rest", ""))
        authorization = http.headers.get("authorization", "")
        manifest = re.fullmatch(r"(.+)/manifests/([^/]+)", rest)
        body = await http.body() if manifest and http.method == "PUT" else b""
        answer = await super().proxy(http)
        if manifest and http.method == "PUT" and answer.status_code == 201:
            region = self._region(authorization)
            name, reference = manifest.group(1), manifest.group(2)
            media_type = http.headers.get("content-type", "")
            digest = answer.headers.get("docker-content-digest", "")
            found = self.process.times.get(name, reference)  # the front's record of this push
            await run_in_threadpool(
                self.cloud.aws.record_push,
                region,
                name,
                reference,
                body,
                media_type,
                digest,
                found.pushed if found is not None else None,
            )
        return answer

    def _ping(self, request: Request) -> Response:
        """``/v2/``: as any call, ECR's answers to the credentials, else 200."""
        refused = self._refusal("GET", "", request.headers.get("authorization", ""))
        return refused if refused is not None else json_response(200, {})

    def _region(self, authorization: str) -> str:
        from ..app import basic_auth

        creds = basic_auth(authorization)
        token = self.cloud.aws.check_token(creds[1]) if creds else None
        return token.region if token else "us-east-1"

    def _refusal(self, method: str, rest: str, authorization: str) -> Response | None:
        from ..app import basic_auth

        with self.cloud.lock:
            creds = basic_auth(authorization)
            if creds is None:  # no credentials (or not Basic): ECR's challenge
                return registry_error(401, "UNAUTHORIZED", "Not Authorized", self.challenge())
            token = self.cloud.aws.check_token(creds[1]) if creds[0] == "AWS" else None
            if token is None:  # credentials that are no token of this registry: a bad request
                return registry_error(400, "UNSUPPORTED", "Bad Request")
            if token.expires_at <= self.cloud.clock():
                return registry_error(
                    403,
                    "DENIED",
                    "Your authorization token has expired. Reauthenticate and try again.",
                )
            found = re.match(r"(.+?)/(?:manifests|blobs|tags)/", rest)
            if found is None:
                return None
            repository = found.group(1)
            if not self.cloud.aws.repository_exists(token.region, repository):
                return registry_error(
                    404,
                    "NAME_UNKNOWN",
                    f"The repository with name '{repository}' does not exist in the registry "
                    f"with id '{token.account}'",
                )
            push = method in ("POST", "PUT", "PATCH")
            actions = _PUSH if push else _PULL
            if not self.cloud.aws.allowed(token, repository, actions):
                action = "ecr:InitiateLayerUpload" if push else "ecr:BatchGetImage"
                return registry_error(
                    403,
                    "DENIED",
                    f"User: {token.principal_arn} is not authorized to perform: {action} on "
                    f"resource: {repository_arn(token.region, token.account, repository)} "
                    f"because no identity-based policy allows the {action} action",
                )
            return None


#: The backend ``server.backends()`` mounts for this provider (``sandbox/<key>/cloud.py``).
BACKEND = EcrCloud
