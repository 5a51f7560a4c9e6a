"""The registry helper BinderHub's ``ExternalRegistryHelper`` calls, served from its source.

manics/binderhub-container-registry-helper (Go; commit d424275, chart 0.2.4's API) cannot run
here (no Go toolchain, no Go module proxy), so the sandbox serves its HTTP API from its source,
each answer as ``common/registry.go`` and ``amazon/amazon.go`` give it, and it calls ECR with the
AWS SDK as the real one does: boto3 over HTTPS to the sandbox's moto, as the IAM identity its pod
would have (an IRSA role through ``AssumeRoleWithWebIdentity``, or an IAM user's keys). So the
policy the notebook writes really limits what it can do.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..app import Request, Response, json_response
from .models import WebIdentityIssuer, now_iso

__all__ = ["HELPER_SETTINGS", "Helper", "HelperError", "lifecycle_policy"]

#: The helper pod's environment the deploy call takes (the chart's and IRSA's variables), and
#: the sandbox's own two: ``service_account`` (``<namespace>:<name>``, whose token IRSA projects)
#: and ``cluster`` (the EKS cluster the pod runs on, for its OIDC issuer).
HELPER_SETTINGS = (
    "BINDERHUB_AUTH_TOKEN",
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGISTRY_ID",
    "AWS_ECR_EXPIRES_AFTER_PUSH_DAYS",
    "RETURN_ERROR_DETAILS",
    "service_account",
    "cluster",
)
_NULL = b"null\n"  # common.NotFound's body


class HelperError(Exception):
    """An AWS SDK error as aws-sdk-go-v2 prints it: ``operation error <Service>: <Op>, https
    response error StatusCode: <n>, RequestID: <id>, <error>``, where the error is ``<Code>:
    <message>`` for one the service's model declares and ``api error <Code>: <message>`` for any
    other (smithy-go's OperationError, ResponseError, GenericAPIError; captured in
    crossplane/crossplane#5578 and namespacelabs/foundation#801)."""

    def __init__(
        self,
        operation: str,
        status: int,
        code: str,
        message: str,
        *,
        service: str = "ECR",
        request_id: str = "",
        modeled: bool = False,
    ) -> None:
        error = f"{code}: {message}" if modeled else f"api error {code}: {message}"
        super().__init__(
            f"operation error {service}: {operation}, https response error StatusCode: "
            f"{status}, RequestID: {request_id}, {error}"
        )
        self.code = code


def lifecycle_policy(days: int) -> str:
    """amazon.go's policy: expire any image ``days`` after its push (rule priority 1000)."""
    rule = {
        "rulePriority": 1000,
        "description": f"Delete images sinceImagePushed {days} days",
        "selection": {
            "tagStatus": "any",
            "countType": "sinceImagePushed",
            "countNumber": days,
            "countUnit": "days",
        },
        "action": {"type": "expire"},
    }
    return json.dumps({"rules": [rule]}, separators=(",", ":"))


@dataclass
class Helper:
    """One deployed helper (a Helm release): its environment, its AWS session, its answers."""

    name: str
    env: dict[str, str]
    endpoint: str  # the sandbox's ECR endpoint (real life: the region's)
    ca_file: str
    issuers: Callable[[], dict[str, dict[str, str]]]  # the EKS clusters' settings
    web_identity: WebIdentityIssuer
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _expires: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def public(self) -> dict[str, Any]:
        """The release as ``state`` shows it (no secrets)."""
        return {
            "name": self.name,
            "region": self.env.get("AWS_REGION", ""),
            "role_arn": self.env.get("AWS_ROLE_ARN", ""),
            "service_account": self.env.get("service_account", ""),
            "expires_after_push_days": self.env.get("AWS_ECR_EXPIRES_AFTER_PUSH_DAYS", ""),
        }

    # --- the pod's AWS session (amazon.Setup) ---------------------------------------------------
    def _ecr(self) -> Any:
        """The ECR client of the pod's identity; raises HelperError as Setup's failure would."""
        with self._lock:
            if "ecr" in self._clients and time.time() < self._expires:
                return self._clients["ecr"]
            import boto3
            from botocore.exceptions import ClientError

            region = self.env.get("AWS_REGION", "")
            session_args: dict[str, Any] = {"region_name": region}
            common = {"verify": self.ca_file, "config": _go_sdk_retries()}
            try:
                if self.env.get("AWS_ROLE_ARN"):
                    credentials = self._assume_role(region)
                    session_args |= credentials
                    self._expires = time.time() + 3000  # the SDK refreshes before the hour
                else:
                    session_args |= {
                        "aws_access_key_id": self.env.get("AWS_ACCESS_KEY_ID", ""),
                        "aws_secret_access_key": self.env.get("AWS_SECRET_ACCESS_KEY", ""),
                    }
                    self._expires = float("inf")
                session = boto3.session.Session(**session_args)
                sts = session.client("sts", **(common | {"endpoint_url": self._url("sts")}))
                sts.get_caller_identity()  # Setup logs the identity, and stops without one
            except ClientError as e:
                self._clients.clear()
                raise _sdk_error("STS", e, _sts_model()) from None
            self._clients["ecr"] = session.client(
                "ecr", **(common | {"endpoint_url": self._url("api")})
            )
            return self._clients["ecr"]

    def _assume_role(self, region: str) -> dict[str, str]:
        """IRSA: the projected service-account token exchanged at STS for the role's keys."""
        import boto3

        cluster = self.issuers().get(self.env.get("cluster", ""))
        if cluster is None:
            raise HelperError(
                "AssumeRoleWithWebIdentity",
                400,
                "InvalidIdentityToken",
                f"the pod runs on no known EKS cluster ({self.env.get('cluster', '')!r})",
            )
        namespace, _, account = self.env.get("service_account", ":").partition(":")
        token = self.web_identity.token(cluster["oidc_issuer"], namespace, account, time.time())
        sts = boto3.session.Session(region_name=region).client(
            "sts",
            endpoint_url=self._url("sts"),
            verify=self.ca_file,
            aws_access_key_id="",  # unsigned: the web identity token is the credential
            aws_secret_access_key="",
            config=_unsigned(),
        )
        answer = sts.assume_role_with_web_identity(
            RoleArn=self.env["AWS_ROLE_ARN"],
            RoleSessionName=f"botocore-session-{int(time.time())}",
            WebIdentityToken=token,
        )
        creds = answer["Credentials"]
        return {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }

    def _url(self, service: str) -> str:
        return self.endpoint.rsplit("/", 1)[0] + "/" + service

    # --- the HTTP API (common.RegistryServer) ---------------------------------------------------
    def answer(self, request: Request, path: str) -> Response:
        """One call to the helper: auth, then the route's handler (``registry.go``)."""
        if request.method == "GET" and path == "/health":
            return json_response(200, {"version": "0.2.4"})
        if path.startswith(("/repos/", "/repo/", "/image/", "/token/")):
            token = self.env.get("BINDERHUB_AUTH_TOKEN", "")
            header = request.headers.get("authorization", "")
            if token and not (header.startswith("Bearer ") and header[7:] == token):
                return Response(403, b'{"error": "not authorised"}\n', _JSON)
        route = _route(request.method, path)
        if route is None:
            return Response(404, _NULL, _JSON)
        handler, name = route
        try:
            return handler(self, name)
        except HelperError as e:
            return self.internal_error(str(e))

    def internal_error(self, message: str) -> Response:
        """common.InternalServerError: details only with RETURN_ERROR_DETAILS (the chart's
        default ``return_error_details: True``)."""
        details = self.env.get("RETURN_ERROR_DETAILS", "true").lower() in ("true", "1", "yes")
        body = json.dumps({"error": message}) if details else '{"error": "internal server error"}'
        return Response(500, body.encode() + b"\n", _JSON)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        ecr = self._ecr()
        if self.env.get("AWS_REGISTRY_ID") and operation != "get_authorization_token":
            kwargs["registryId"] = self.env["AWS_REGISTRY_ID"]
        try:
            result: dict[str, Any] = getattr(ecr, operation)(**kwargs)
        except ClientError as e:
            raise _sdk_error("ECR", e, ecr) from None
        return result

    def list_repositories(self, name: str) -> Response:
        """``GET /repos/``: DescribeRepositories, the list as JSON."""
        found = self._call("describe_repositories")["repositories"]
        return _go_json(200, found)

    def _repository(self, name: str) -> dict[str, Any] | None:
        try:
            found = self._call("describe_repositories", repositoryNames=[name])
        except HelperError as e:
            if e.code == "RepositoryNotFoundException":
                return None
            raise
        repositories: list[dict[str, Any]] = found["repositories"]
        return repositories[0]

    def get_repository(self, name: str) -> Response:
        """``GET /repo/<name>``: 200 and the repository, or 404 ``null``."""
        repository = self._repository(name)
        return Response(404, _NULL, _JSON) if repository is None else _go_json(200, repository)

    def create_repository(self, name: str) -> Response:
        """``POST /repo/<name>``: CreateRepository (an existing one is fine), then the
        lifecycle policy when ``AWS_ECR_EXPIRES_AFTER_PUSH_DAYS`` is set."""
        try:
            repository = self._call("create_repository", repositoryName=name)["repository"]
        except HelperError as e:
            if e.code != "RepositoryAlreadyExistsException":
                raise
            repository = self._repository(name)
            if repository is None:
                return self.internal_error(str(e))
        days = int(self.env.get("AWS_ECR_EXPIRES_AFTER_PUSH_DAYS") or 0)
        if days > 0:
            self._call(
                "put_lifecycle_policy",
                repositoryName=name,
                lifecyclePolicyText=lifecycle_policy(days),
            )
        return _go_json(200, repository)

    def delete_repository(self, name: str) -> Response:
        """``DELETE /repo/<name>``: its lifecycle policy, then the repository (absent is fine)."""
        for operation in ("delete_lifecycle_policy", "delete_repository"):
            try:
                self._call(operation, repositoryName=name)
            except HelperError as e:
                if e.code not in (
                    "RepositoryNotFoundException",
                    "LifecyclePolicyNotFoundException",
                ):
                    raise
        return Response(200, b"", _JSON)

    def get_image(self, name: str) -> Response:
        """``GET /image/<name>:<tag>``: DescribeImages; 404 ``null`` when the image or its
        repository is missing."""
        repository, tag = name, "latest"
        if ":" in name:
            repository, _, tag = name.rpartition(":")
        if not tag:
            return self.internal_error(f"Invalid tag in path: /image/{name}")
        try:
            found = self._call(
                "describe_images", repositoryName=repository, imageIds=[{"imageTag": tag}]
            )
        except HelperError as e:
            if e.code in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return Response(404, _NULL, _JSON)
            raise
        return _go_json(200, found["imageDetails"][0])

    def get_token(self, name: str) -> Response:
        """``POST /token/...``: GetAuthorizationToken, split into username and password."""
        data = self._call("get_authorization_token")["authorizationData"]
        if len(data) != 1:
            return self.internal_error(f"expected 1 token, got {len(data)}")
        import base64

        username, _, password = (
            base64.b64decode(data[0]["authorizationToken"]).decode().partition(":")
        )
        expires = data[0]["expiresAt"]
        return json_response(
            200,
            {
                "username": username,
                "password": password,
                "registry": data[0]["proxyEndpoint"],
                "expires": now_iso(
                    expires.timestamp() if isinstance(expires, datetime) else expires
                ),
            },
        )


_JSON = {"Content-Type": "application/json"}
_ROUTES: list[tuple[str, re.Pattern[str], Callable[[Helper, str], Response]]] = [
    ("GET", re.compile(r"^/repos/$"), Helper.list_repositories),
    ("GET", re.compile(r"^/repo/(\S+)$"), Helper.get_repository),
    ("GET", re.compile(r"^/image/(\S+)$"), Helper.get_image),
    ("POST", re.compile(r"^/repo/(\S+)$"), Helper.create_repository),
    ("DELETE", re.compile(r"^/repo/(\S+)$"), Helper.delete_repository),
    ("POST", re.compile(r"^/token(/\S*)?$"), Helper.get_token),
]


def _route(method: str, path: str) -> tuple[Callable[[Helper, str], Response], str] | None:
    """registry.go's ServeHTTP: the first matching (method, path regexp)."""
    for wanted, pattern, handler in _ROUTES:
        found = pattern.match(path)
        if method == wanted and found:
            return handler, found.group(1) or ""
    return None


def _sdk_error(service: str, error: Any, client: Any = None) -> HelperError:
    """botocore's ClientError as the Go SDK's error (``client``: whose model declares errors)."""
    info = error.response.get("Error", {})
    metadata = error.response.get("ResponseMetadata", {})
    code = str(info.get("Code", ""))
    declared = {shape.name for shape in client.meta.service_model.error_shapes} if client else set()
    return HelperError(
        error.operation_name,
        int(metadata.get("HTTPStatusCode", 0)),
        code,
        str(info.get("Message", "")),
        service=service,
        request_id=str(metadata.get("RequestId", "")),
        modeled=code in declared or f"{code}Exception" in declared,
    )


def _sts_model() -> Any:
    """An STS client, for its model's declared errors (no call is made with it)."""
    import boto3

    return boto3.session.Session(region_name="us-east-1").client(
        "sts", endpoint_url="https://127.0.0.1:9", config=_unsigned()
    )


def _go_sdk_retries() -> Any:
    """aws-sdk-go-v2's default retryer: standard mode, 3 attempts (``retry.DefaultMaxAttempts``),
    throttling and 5xx retried; botocore's standard mode is the same algorithm."""
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": 3})


def _unsigned() -> Any:
    from botocore import UNSIGNED
    from botocore.config import Config

    return Config(signature_version=UNSIGNED)


def _go_json(status: int, value: Any) -> Response:
    """``json.Marshal`` of an aws-sdk-go-v2 struct: no json tags, so Go's field names
    (the API member names capitalised); times as RFC 3339."""
    return Response(status, json.dumps(_go_names(value)).encode(), _JSON)


def _go_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: _go_names(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_names(v) for v in value]
    if isinstance(value, datetime):
        return now_iso(value.timestamp())
    return value
