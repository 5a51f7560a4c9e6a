"""The AWS control plane of the ECR sandbox: moto's IAM, STS and ECR backends, in this process.

moto (``moto.core.request.Request`` and each service's response class) answers the calls;
:class:`Aws` only routes them there and fixes, with the evidence in the package's table, where
moto differs from AWS in a way the notebook or the helper depends on:

- IAM is enforced on every call (moto's ``INITIAL_NO_AUTH_ACTION_COUNT`` = 0), and ECR calls
  are evaluated against the repository's ARN (moto checks ``*``, so a policy scoped to
  ``repository/<prefix>/*`` would allow nothing);
- ``AssumeRoleWithWebIdentity`` checks the web identity token against the account's OIDC
  providers and the role's trust policy (moto checks neither), and a role younger than
  ``role_propagation_seconds`` is refused as a not yet propagated one;
- ``GetAuthorizationToken`` answers a password the registry front checks, valid 12 hours on
  the sandbox's clock, for the front's URL (moto: ``<account>-auth-token``, expired in 2015);
- ``throttle`` answers the next calls of an operation with AWS's throttling error;
- DescribeImages sizes an image by its layers (:func:`image_size`; moto: its config's size).

moto keeps its state in module globals: one sandbox process holds one AWS.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from ..app import Request, Response

__all__ = [
    "ACCOUNT_ID",
    "ADMIN_USER",
    "QUERY_FAULTS",
    "SERVICES",
    "TOKEN_HOURS",
    "AuthToken",
    "Aws",
    "WebIdentityIssuer",
    "aws_json_error",
    "image_size",
    "query_fault",
    "repository_arn",
]

#: The sandbox's account: AWS's documented example account id, fixed so stored outputs agree.
ACCOUNT_ID = "123456789012"
#: The seeded administrator (the identity the guide has you sign in as).
ADMIN_USER = "sandbox-admin"
#: An ECR authorization token's lifetime (GetAuthorizationToken: "valid for 12 hours").
TOKEN_HOURS = 12
#: The services served, by the path segment after ``/ecr`` -> moto's service name.
SERVICES = {"api": "ecr", "iam": "iam", "sts": "sts", "eks": "eks"}
#: The JSON protocol's content type (ECR: ``jsonVersion`` 1.1 in botocore's service model).
AMZ_JSON = "application/x-amz-json-1.1"
# the ECR actions whose IAM resource is a repository (the rest are evaluated against "*")
# a service's path segment under /ecr, by moto's service name
_SEGMENT = {"ecr": "api", "iam": "iam", "sts": "sts", "eks": "eks"}
# an ECR registry's host in moto's answers (repositoryUri), the sandbox's front in the layer's
_REGISTRY_HOST = re.compile(rb"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com")


def repository_arn(region: str, account: str, name: str) -> str:
    """A repository's ARN: ``arn:aws:ecr:<region>:<account>:repository/<name>``."""
    return f"arn:aws:ecr:{region}:{account}:repository/{name}"


def aws_json_error(status: int, code: str, message: str) -> Response:
    """An error of AWS's JSON protocol (``__type`` and ``message``), as botocore parses it."""
    body = {"__type": code, "message": message}
    return Response(status, json.dumps(body).encode(), {"Content-Type": AMZ_JSON})


def aws_query_error(status: int, code: str, message: str, kind: str = "Sender") -> Response:
    """An error of AWS's query protocol (IAM, STS): ``ErrorResponse`` XML."""
    body = (
        "<ErrorResponse><Error>"
        f"<Type>{kind}</Type><Code>{code}</Code><Message>{_xml(message)}</Message>"
        f"</Error><RequestId>{secrets.token_hex(16)}</RequestId></ErrorResponse>"
    )
    return Response(status, body.encode(), {"Content-Type": "text/xml"})


#: An injected fault's error in the query protocol (IAM, STS), by status: AWS's "Common Errors"
#: (InternalFailure 500, ServiceUnavailable 503, "errors common to ... all AWS services"; Receiver:
#: the server's fault); a 429 as IAM's and STS's throttling code on the wire (``Throttling``,
#: botocore's ``retries/standard.py`` throttled codes). Other statuses: none (the sandbox's JSON).
QUERY_FAULTS = {
    429: ("Throttling", "Rate exceeded", "Sender"),
    500: (
        "InternalFailure",
        "The request processing has failed because of an unknown error, exception or failure.",
        "Receiver",
    ),
    503: (
        "ServiceUnavailable",
        "The request has failed due to a temporary failure of the server.",
        "Receiver",
    ),
}


def query_fault(status: int) -> Response | None:
    """IAM's or STS's ``ErrorResponse`` for an injected fault of ``status`` (see
    :data:`QUERY_FAULTS`); None for a status without one."""
    if status not in QUERY_FAULTS:
        return None
    code, message, kind = QUERY_FAULTS[status]
    return aws_query_error(status, code, message, kind)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class AuthToken:
    """A registry password GetAuthorizationToken handed out: who, and until when."""

    principal_arn: str
    access_key_id: str  # the caller's key: its policies decide, at each registry call
    session_token: str  # a role session's (IRSA), "" for an IAM user's key
    account: str
    region: str
    expires_at: float


class WebIdentityIssuer:
    """A cluster's service-account token issuer (EKS's OIDC issuer, for IRSA).

    Tokens are RS256 JWTs with ``iss`` the cluster's issuer URL, ``aud`` ``sts.amazonaws.com``
    and ``sub`` ``system:serviceaccount:<namespace>:<name>``, as EKS's pod identity webhook
    projects them.
    """

    def __init__(self, key_pem: bytes) -> None:
        self._key = key_pem

    def token(self, issuer: str, namespace: str, account: str, now: float) -> str:
        """A projected service account token (24 h, EKS's default expirationSeconds 86400)."""
        import jwt  # here: the sandbox's start does not need it

        claims = {
            "iss": issuer,
            "aud": ["sts.amazonaws.com"],
            "sub": f"system:serviceaccount:{namespace}:{account}",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + 86400,
        }
        return jwt.encode(claims, self._key, algorithm="RS256")


class Aws:
    """moto's IAM, STS and ECR behind ``/ecr/<api|iam|sts>/``, and the layer's fixes."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        settings: Callable[[], dict[str, Any]],
        registry_url: Callable[[], str],
        admin: dict[str, str],
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.registry_url = registry_url
        self.admin = admin
        self.tokens: dict[str, AuthToken] = {}  # registry password -> what it stands for
        self.role_created: dict[str, float] = {}  # role ARN -> when (wall clock) it was seen
        self._moto_lock = threading.Lock()  # moto's backends are not made for concurrent calls
        self._loaded = False

    # --- moto -------------------------------------------------------------------------------
    def load(self) -> None:
        """Import moto (about a second: at the first AWS call, never at the sandbox's start),
        enforce IAM, and seed the account."""
        if self._loaded:
            return
        from moto import settings

        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # IAM checked on every call, as AWS does
        self._loaded = True
        self.reset()

    def reset(self) -> None:
        """A new account: moto's backends emptied, then the seeded administrator."""
        self.tokens.clear()
        self.role_created.clear()
        if not self._loaded:
            return
        from moto.backends import get_backend

        # each service's own backends only: BackendDict.reset (a classmethod) empties every
        # service moto has loaded, EC2 too, which EKS's node groups then rebuild (~0.3 s)
        for service in ("ecr", "iam", "sts", "eks"):
            backends = get_backend(service)
            for account in backends.values():
                account.reset()
            backends.clear()
        iam = self.iam_backend()
        for policy in _aws_managed_policies():
            iam.managed_policies[policy.arn] = policy
        iam.create_user(region_name="us-east-1", user_name=ADMIN_USER, path="/", tags=[])
        iam.attach_user_policy(_MANAGED + "AdministratorAccess", ADMIN_USER)
        key = iam.create_access_key(ADMIN_USER, prefix="AKIA")
        # the seeded key is the sandbox's own (credentials.json), stable across resets
        del iam.access_keys[key.physical_resource_id]
        key.access_key_id = self.admin["access_key_id"]
        key.secret_access_key = self.admin["secret_access_key"]
        iam.access_keys[key.physical_resource_id] = key
        for name, cluster in self.settings()["eks_clusters"].items():
            self._seed_cluster(name, cluster)

    def _seed_cluster(self, name: str, cluster: dict[str, Any]) -> None:
        """The EKS cluster BinderHub runs on, as the EKS guide makes one: its cluster role, a
        managed node group whose node role has the worker, CNI and ECR read-only policies, and
        its OIDC issuer (not yet an IAM OIDC provider: associating one is a step of IRSA)."""
        from moto.eks.models import eks_backends

        iam = self.iam_backend()
        roles = {
            f"{name}-cluster": ("eks.amazonaws.com", ["AmazonEKSClusterPolicy"]),
            f"{name}-node": ("ec2.amazonaws.com", NODE_POLICIES),
        }
        for role_name, (service, policies) in roles.items():
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": service},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            iam.create_role(
                role_name=role_name,
                assume_role_policy_document=json.dumps(trust),
                path="/",
                permissions_boundary=None,
                description="",
                tags=[],
                max_session_duration="3600",
            )
            for policy in policies:
                iam.attach_role_policy(_MANAGED + policy, role_name)
        # moto's objects made directly: its create_cluster and create_nodegroup check the role
        # ARNs against botocore's partition list, loading endpoints.json at each call (~0.4 s
        # per reset, at every test's reset once ECR is registered)
        from moto.eks.models import Cluster, Nodegroup

        eks = eks_backends[ACCOUNT_ID][cluster["region"]]
        common = {
            "account_id": ACCOUNT_ID,
            "region_name": cluster["region"],
            "aws_partition": "aws",
        }
        subnets = ["subnet-0a1b2c3d4e5f60718"]
        made = Cluster(
            name=name,
            role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{name}-cluster",
            resources_vpc_config={"subnetIds": subnets, "securityGroupIds": []},
            **common,
        )
        made.identity = {"oidc": {"issuer": cluster["oidc_issuer"]}}
        eks.clusters[name] = made
        eks.cluster_count += 1
        made.nodegroups["default"] = Nodegroup(
            cluster_name=name,
            node_role=f"arn:aws:iam::{ACCOUNT_ID}:role/{name}-node",
            nodegroup_name="default",
            subnets=subnets,
            **common,
        )
        made.nodegroup_count += 1

    def iam_backend(self) -> Any:
        """moto's IAM backend of the sandbox's account."""
        from moto.iam.models import iam_backends

        return iam_backends[ACCOUNT_ID]["aws"]

    def ecr_backend(self, region: str) -> Any:
        """moto's ECR backend of the sandbox's account in ``region``."""
        from moto.ecr.models import ecr_backends

        return ecr_backends[ACCOUNT_ID][region]

    # --- the endpoint -------------------------------------------------------------------------
    def handle(self, service: str, request: Request, host: str) -> Response:
        """One AWS call to ``/ecr/<service>/``: the layer's checks, then moto's answer."""
        self.load()
        name = SERVICES[service]
        operation = _operation(name, request)
        throttled = self._throttled(name, operation)
        if throttled is not None:
            return throttled
        if name == "sts" and operation == "AssumeRoleWithWebIdentity":
            refused = self._web_identity_refusal(request)
            if refused is not None:
                return refused
        answer = self._moto(name, request, host)
        if name == "ecr" and answer.status == 403 and b"AccessDenied" in answer.body:
            return self._ecr_access_denied(request, operation, answer)
        if name in ("ecr", "eks") and answer.body.lstrip().startswith(b"<"):
            return _json_auth_error(answer, rest=name == "eks")
        if name == "ecr" and operation == "GetAuthorizationToken" and answer.status == 200:
            return self._authorization_token(request, answer)
        if name == "ecr" and operation == "DescribeImages" and answer.status == 200:
            answer = self._image_sizes(request, answer)
        if name == "ecr" and answer.status == 200:  # repositoryUri: the sandbox's registry host
            front = self.registry_url().removeprefix("https://").encode()
            answer.body = _REGISTRY_HOST.sub(front, answer.body)
        if name == "iam" and operation == "CreateRole" and answer.status == 200:
            found = re.search(rb"<Arn>([^<]+)</Arn>", answer.body)
            if found:
                self.role_created[found.group(1).decode()] = time.time()
        return answer

    def _moto(self, name: str, request: Request, host: str) -> Response:
        from moto.core.request import Request as MotoRequest
        from werkzeug.exceptions import HTTPException

        # EKS is routed by path (restJson): moto sees the path without the sandbox's prefix,
        # and checks the signature over the path as signed
        prefix = f"/ecr/{_SEGMENT[name]}" if name == "eks" else ""
        url = f"https://{host}{request.path.removeprefix(prefix)}"
        query = "&".join(f"{k}={v}" for k, vs in request.query.items() for v in vs)
        if query:
            url += "?" + query
        headers = dict(request.headers)
        headers["host"] = host
        moto_request = MotoRequest.from_primitives(request.method, url, headers, request.body)
        handler = _RESPONSES[name]()
        handler.signed_prefix = prefix
        with self._moto_lock:
            try:
                status, out, body = handler._dispatch(moto_request)
            except HTTPException as e:
                status, out, body = e.code, dict(e.get_headers()), e.get_body()
        data = body.encode() if isinstance(body, str) else bytes(body or b"")
        kept = {str(k): str(v) for k, v in dict(out).items() if str(k).lower() != "status"}
        return Response(int(status), data, kept)

    # --- the layer's fixes ----------------------------------------------------------------------
    def _throttled(self, service: str, operation: str) -> Response | None:
        """The ``throttle`` setting: ``{operation: n}`` refuses its next n calls."""
        throttle: dict[str, int] = self.settings()["throttle"]
        left = int(throttle.get(operation, 0))
        if left <= 0:
            return None
        throttle[operation] = left - 1
        if service == "ecr":
            return aws_json_error(400, "ThrottlingException", "Rate exceeded")
        return aws_query_error(400, "Throttling", "Rate exceeded")

    def _web_identity_refusal(self, request: Request) -> Response | None:
        """STS's checks of AssumeRoleWithWebIdentity that moto does not make."""
        import jwt

        form = {k: v[0] for k, v in parse_qs(request.body.decode("latin-1")).items()}
        token, role_arn = form.get("WebIdentityToken", ""), form.get("RoleArn", "")
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return aws_query_error(
                400,
                "InvalidIdentityToken",
                "Couldn't retrieve verification key from your identity provider",
            )
        issuer = str(claims.get("iss", ""))
        provider_host = issuer.removeprefix("https://")
        provider_arn = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{provider_host}"
        provider = self.iam_backend().open_id_providers.get(provider_arn)
        if provider is None:
            return aws_query_error(
                400,
                "InvalidIdentityToken",
                f"No OpenIDConnect provider found in your account for {issuer}",
            )
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not set(audiences) & set(provider.client_id_list):
            return aws_query_error(400, "InvalidIdentityToken", "Incorrect token audience")
        denied = aws_query_error(
            403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"
        )
        role = next((r for r in self.iam_backend().roles.values() if r.arn == role_arn), None)
        if role is None or not _trusts(
            role.assume_role_policy_document, provider_arn, provider_host, claims
        ):
            return denied
        wait = float(self.settings()["role_propagation_seconds"])
        created = self.role_created.get(role_arn)
        if wait and created is not None and time.time() - created < wait:
            return denied  # a new role, not yet visible to STS in every region
        return None

    def _image_sizes(self, request: Request, answer: Response) -> Response:
        """DescribeImages' ``imageSizeInBytes`` as ECR reports it (:func:`image_size` of each
        image's manifest; moto answers its config's size)."""
        try:
            body = json.loads(answer.body)
        except ValueError:
            return answer
        backend = self.ecr_backend(_credential_scope(request)[2])
        with self._moto_lock:
            for detail in body.get("imageDetails", []):
                repository = backend.repositories.get(detail.get("repositoryName"))
                images = repository.images if repository is not None else []
                manifests = {i.image_digest: i.image_manifest for i in images}
                size = image_size(manifests.get(detail.get("imageDigest"), ""), manifests)
                detail.pop("imageSizeInBytes", None)
                if size is not None:
                    detail["imageSizeInBytes"] = size
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        return Response(answer.status, json.dumps(body).encode(), headers)

    def _ecr_access_denied(self, request: Request, operation: str, answer: Response) -> Response:
        """moto's AccessDenied of an ECR call, in ECR's JSON error (AccessDeniedException)."""
        found = re.search(rb"User: (\S+) is not authorized to perform: (\S+?)<", answer.body)
        who = found.group(1).decode() if found else "unknown"
        return aws_json_error(
            400,
            "AccessDeniedException",
            f"User: {who} is not authorized to perform: ecr:{operation} on resource: "
            f"{_ecr_resource(request)} because no identity-based policy allows the "
            f"ecr:{operation} action",
        )

    def _authorization_token(self, request: Request, answer: Response) -> Response:
        """ECR's answer: a long opaque password for ``AWS``, 12 hours, for the front's URL."""
        body = json.loads(answer.body)
        scope = _credential_scope(request)
        access_key, region = scope[0], scope[2]
        principal = self._principal_of(access_key)
        expires = self.clock() + TOKEN_HOURS * 3600
        for entry in body.get("authorizationData", []):
            # ECR's password is a base64 blob of ~2 kB (an encrypted payload): opaque to clients
            password = base64.b64encode(
                json.dumps({"payload": secrets.token_urlsafe(1024), "version": "2"}).encode()
            ).decode()
            session = request.headers.get("x-amz-security-token", "")
            self.tokens[password] = AuthToken(
                principal, access_key, session, ACCOUNT_ID, region, expires
            )
            entry["authorizationToken"] = base64.b64encode(f"AWS:{password}".encode()).decode()
            entry["expiresAt"] = expires
            entry["proxyEndpoint"] = self.registry_url()
        return Response(200, json.dumps(body).encode(), answer.headers)

    def _principal_of(self, access_key: str) -> str:
        from moto.iam.models import get_account_id_from

        iam = self.iam_backend()
        key = iam.access_keys.get(access_key)
        if key is not None and key.user_name:
            return f"arn:aws:iam::{get_account_id_from(access_key)}:user/{key.user_name}"
        from moto.sts.models import sts_backends

        for role in sts_backends[ACCOUNT_ID]["aws"].assumed_roles:
            if role.access_key_id == access_key:
                return str(role.arn)
        return f"arn:aws:iam::{ACCOUNT_ID}:unknown"

    # --- what the registry front asks ---------------------------------------------------------
    def check_token(self, password: str) -> AuthToken | None:
        """The token behind a registry password, or None when ECR does not know it."""
        return self.tokens.get(password)

    def allowed(self, token: AuthToken, repository: str, actions: list[str]) -> bool:
        """Whether the token's identity may do every ECR ``action`` on ``repository`` now."""
        from moto.iam.access_control import IAMPolicy, PermissionResult, create_access_key

        try:
            headers = {"X-Amz-Security-Token": token.session_token} if token.session_token else {}
            key = create_access_key(
                account_id=token.account,
                partition="aws",
                access_key_id=token.access_key_id,
                headers=headers,
            )
        except Exception:  # a deleted user's or an expired role session's key
            return False
        policies = key.collect_policies()
        resource = repository_arn(token.region, token.account, repository)
        for action in actions:
            permitted = False
            for policy in policies:
                result = IAMPolicy(policy).is_action_permitted(action, resource)
                if result == PermissionResult.DENIED:
                    return False
                permitted = permitted or result == PermissionResult.PERMITTED
            if not permitted:
                return False
        return True

    def repository_exists(self, region: str, name: str) -> bool:
        """Whether ECR has repository ``name`` in ``region``."""
        self.load()
        return name in self.ecr_backend(region).repositories

    def record_push(
        self,
        region: str,
        name: str,
        tag: str,
        manifest: bytes,
        media_type: str,
        digest: str = "",
        pushed: float | None = None,
    ) -> None:
        """A manifest the registry accepted under a tag, as ECR's DescribeImages then shows it:
        with the registry's ``digest`` (moto would derive its own from the layers) and the push
        time of the front's record (``pushed``, on ECR's clock; moto stamps the wall clock).

        The same manifest pushed again under the same tag is no change: the registry answers
        201 as before (only the PutImage API call says ImageAlreadyExistsException). A push by
        digest records nothing here (untagged images: not modelled, assumption).
        """
        from moto.ecr.exceptions import ImageAlreadyExistsException

        if tag.startswith("sha256:"):
            return
        backend = self.ecr_backend(region)
        with self._moto_lock:
            if name in backend.repositories:
                text = manifest.decode()
                known = any(i.image_manifest == text for i in backend.repositories[name].images)
                try:
                    image = backend.put_image(name, text, tag, media_type or None, digest or None)
                except ImageAlreadyExistsException:
                    return
                if pushed is not None and not known:  # a new image: pushed now
                    image.image_pushed_at = int(pushed)

    def images(self, region: str, name: str) -> list[Any]:
        """moto's images of repository ``name`` (a copy of the list)."""
        with self._moto_lock:
            repository = self.ecr_backend(region).repositories.get(name)
            return list(repository.images) if repository is not None else []

    def delete_image(self, region: str, name: str, digest: str) -> list[str]:
        """Delete an image (every tag on it) from ECR's records; its tags."""
        with self._moto_lock:
            repository = self.ecr_backend(region).repositories.get(name)
            if repository is None:
                return []
            found = [i for i in repository.images if i.image_digest == digest]
            tags = sorted(t for i in found for t in i.image_tags)
            repository.images = [i for i in repository.images if i.image_digest != digest]
            return tags


#: The AWS managed policies a new account sees that this guide names (moto's copy of AWS's
#: documents; all ~1,600 cost 0.3 s at every reset).
MANAGED_POLICIES = (
    "AdministratorAccess",
    "AmazonEKSClusterPolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEC2ContainerRegistryPowerUser",
    "AmazonEC2ContainerRegistryFullAccess",
    "AmazonEKSWorkerNodePolicy",
)
_MANAGED_DATA: dict[str, Any] = {}
_MANAGED = "arn:aws:iam::aws:policy/"
#: A managed node group's node role (EKS guide, "Amazon EKS node IAM role").
NODE_POLICIES = [
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
]


def image_size(manifest: str, manifests: dict[str, str]) -> int | None:
    """ECR's ``imageSizeInBytes`` of ``manifest``: its layers' sizes as pushed (compressed),
    summed; of a manifest list or index, the largest of its manifests ECR has a record of
    (``manifests``: digest -> manifest); None for anything else (ECR API, ImageDetail)."""
    try:
        parsed = json.loads(manifest)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    layers = parsed.get("layers")
    if isinstance(layers, list):
        sized = [layer.get("size") for layer in layers if isinstance(layer, dict)]
        return sum(size for size in sized if isinstance(size, int))
    listed = parsed.get("manifests")
    if not isinstance(listed, list):
        return None
    sizes = [
        image_size(manifests[entry["digest"]], {})  # an index's entries are images
        for entry in listed
        if isinstance(entry, dict) and entry.get("digest") in manifests
    ]
    known = [size for size in sizes if size is not None]
    return max(known) if known else None


def _aws_managed_policies() -> list[Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy

    if not _MANAGED_DATA:
        data = json.loads(aws_managed_policies_data)
        _MANAGED_DATA.update({k: v for k, v in data.items() if k in MANAGED_POLICIES})
    return [
        AWSManagedPolicy.from_data(name, ACCOUNT_ID, "us-east-1", d)
        for name, d in _MANAGED_DATA.items()
    ]


# moto's signature errors are the query protocol's; a JSON-protocol service answers these
_JSON_AUTH_ERRORS = {
    "InvalidClientTokenId": "UnrecognizedClientException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
}


def _json_auth_error(answer: Response, *, rest: bool = False) -> Response:
    """moto's XML authentication error of an ECR (JSON) or EKS (restJson) call, in the
    protocol's own error: ``__type`` in the body, or restJson's ``x-amzn-ErrorType`` header."""
    code = re.search(rb"<Code>([^<]+)</Code>", answer.body)
    message = re.search(rb"<Message>([^<]*)</Message>", answer.body)
    found = code.group(1).decode() if code else "UnrecognizedClientException"
    text = message.group(1).decode() if message else ""
    if not rest:
        return aws_json_error(400, _JSON_AUTH_ERRORS.get(found, found), text)
    kind = {"AccessDenied": "AccessDeniedException"}.get(found, _JSON_AUTH_ERRORS.get(found, found))
    status = 403 if kind in ("AccessDeniedException", "InvalidSignatureException") else 400
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": kind}
    return Response(status, json.dumps({"message": text}).encode(), headers)


def _operation(service: str, request: Request) -> str:
    """The call's operation: ``X-Amz-Target``'s (JSON protocol) or the ``Action`` (query)."""
    target = request.headers.get("x-amz-target", "")
    if target:
        return target.rpartition(".")[2]
    if service != "ecr":
        form = parse_qs(request.body.decode("latin-1"))
        return (form.get("Action") or request.query.get("Action") or [""])[0]
    return ""


def _credential_scope(request: Request) -> list[str]:
    """SigV4's ``Credential=<key>/<date>/<region>/<service>/aws4_request``, split."""
    found = re.search(r"Credential=([^,\s]+)", request.headers.get("authorization", ""))
    parts = found.group(1).split("/") if found else []
    return parts if len(parts) == 5 else ["", "", "us-east-1", "", ""]


def _ecr_resource(request: Request) -> str:
    """The IAM resource of an ECR call: its repository's ARN, else ``*``."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        return "*"
    name = body.get("repositoryName")
    names = body.get("repositoryNames")
    if not name and isinstance(names, list) and len(names) == 1:
        name = names[0]  # DescribeRepositories of one (of several: "*", assumption)
    if not name:
        return "*"
    region = _credential_scope(request)[2]
    account = str(body.get("registryId") or ACCOUNT_ID)
    return repository_arn(region, account, str(name))


def _trusts(document: str, provider_arn: str, provider_host: str, claims: dict[str, Any]) -> bool:
    """Whether a role's trust policy lets the token's subject assume it (Allow statements with
    ``Federated`` = the provider and ``StringEquals``/``StringLike`` on ``<host>:sub``/``:aud``)."""
    try:
        policy = json.loads(document)
    except ValueError:
        return False
    statements = policy.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    audiences = claims.get("aud")
    values = {
        f"{provider_host}:sub": [str(claims.get("sub", ""))],
        f"{provider_host}:aud": audiences if isinstance(audiences, list) else [str(audiences)],
    }
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        federated = (statement.get("Principal") or {}).get("Federated", [])
        federated = federated if isinstance(federated, list) else [federated]
        if "sts:AssumeRoleWithWebIdentity" not in actions or provider_arn not in federated:
            continue
        if _conditions_hold(statement.get("Condition") or {}, values):
            return True
    return False


def _conditions_hold(conditions: dict[str, Any], values: dict[str, list[str]]) -> bool:
    for operator, tests in conditions.items():
        if operator not in ("StringEquals", "StringLike"):
            return False  # an operator this layer does not evaluate: not trusted (assumption)
        for key, wanted in tests.items():
            wanted = wanted if isinstance(wanted, list) else [wanted]
            have = values.get(key)
            if have is None:
                return False
            if operator == "StringEquals":
                ok = any(h == w for h in have for w in wanted)
            else:
                ok = any(
                    re.fullmatch(re.escape(w).replace(r"\*", ".*"), h) for h in have for w in wanted
                )
            if not ok:
                return False
    return True


def _responses() -> dict[str, Any]:
    from moto.ecr.responses import ECRResponse
    from moto.eks.responses import EKSResponse
    from moto.iam.responses import IamResponse
    from moto.sts.responses import TokenResponse

    class EcrResponse(ECRResponse):
        """ECR's calls evaluated against the repository's ARN, as IAM does (moto: ``*``)."""

        def _determine_resource(self) -> str:
            return _ecr_resource(self.normalized_request_for_resource())

        def normalized_request_for_resource(self) -> Request:
            headers = {str(k).lower(): str(v) for k, v in self.headers.items()}
            return Request("POST", "/", {}, headers, self.raw_body or b"")

    class EksResponse(EKSResponse):
        """Routed by the path without the sandbox's prefix; authenticated on the path signed."""

        signed_prefix = ""

        def _authenticate_and_authorize_normal_action(self, resource: str = "*") -> None:
            # moto signs a bodiless call's "data" (for a GET: its headers, in setup_class)
            path, data = self.raw_path, self.data
            self.raw_path = self.signed_prefix + path
            if not self.raw_body:
                self.data = {}
            try:
                super()._authenticate_and_authorize_normal_action(resource)
            finally:
                self.raw_path, self.data = path, data

    class StsResponse(TokenResponse):
        """AssumeRoleWithWebIdentity is unsigned (the token is the credential): moto's
        enforcement would look for a signature."""

        def _authenticate_and_authorize_normal_action(self, resource: str = "*") -> None:
            if "AssumeRoleWithWebIdentity" in self.querystring.get("Action", []):
                return
            super()._authenticate_and_authorize_normal_action(resource)

    return {"ecr": EcrResponse, "iam": IamResponse, "sts": StsResponse, "eks": EksResponse}


class _LazyResponses(dict[str, Any]):
    def __missing__(self, name: str) -> Any:
        self.update(_responses())
        return self[name]


_RESPONSES: dict[str, Any] = _LazyResponses()


def now_iso(seconds: float) -> str:
    """RFC 3339 of a sandbox-clock time (Go's ``time.Time`` in JSON)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
