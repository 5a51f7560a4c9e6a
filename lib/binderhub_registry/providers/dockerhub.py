"""Docker Hub (guide section 2.2): an access token with repo:write for BinderHub.

Docker Hub has no official Python SDK; its HTTP API (``hub.docker.com/v2``) is
used with requests. Accounts and organizations cannot be created by API, so
they are checked, not created.
"""

from __future__ import annotations

import email.utils
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from .. import sandbox as sandbox_mod
from ..binderhub import RegistryValues
from ..errors import (
    AuthenticationFailed,
    CloudError,
    PermissionDenied,
    TransientCloudError,
)
from ..params import directory, flag, image_name_prefix, text
from ..params import validate as check_all
from ..secrets import Secret, read_secret
from ..steps import Result
from . import Record

__all__ = [
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "Connection",
    "Params",
    "check_membership",
    "ensure_access_token",
    "registry_values",
    "sign_in",
    "teardown",
    "validate",
]

NAME = "Docker Hub"
NOTEBOOK = "02-docker-hub"
HUB_API = "https://hub.docker.com"
REGISTRY = "https://registry-1.docker.io"
TOKEN_URL = "https://auth.docker.io/token?service=registry.docker.io"
SECRET_VARIABLES = ("DOCKERHUB_TOKEN", "DOCKERHUB_PASSWORD")

_DOCKER_ID = r"[a-z0-9]{4,30}"
PARAMETERS = (
    text("username", _DOCKER_ID, "must be a Docker ID: 4 to 30 lowercase letters or digits"),
    text(
        "organization",
        _DOCKER_ID,
        "must be a Docker Hub organization name: 4 to 30 lowercase letters or digits",
        optional=True,
    ),
    image_name_prefix("prefix"),
    directory("output_dir"),
    flag("dry_run"),
    flag("teardown"),
    flag("sandbox"),
)


@dataclass(frozen=True)
class Params:
    """Validated parameters of the Docker Hub notebook."""

    username: str
    organization: str
    prefix: str
    output_dir: Path
    dry_run: bool
    teardown: bool
    sandbox: bool

    @property
    def namespace(self) -> str:
        """Where images go: the organization, else the user's own namespace."""
        return self.organization or self.username

    @property
    def token_label(self) -> str:
        """The label that identifies BinderHub's access token on the account."""
        return f"BinderHub push {self.namespace}/{self.prefix}*"


def validate(**values: Any) -> Params:
    """Check every parameter (no network); raise InvalidParameter for the first bad one."""
    checked = check_all(PARAMETERS, values)
    return Params(**(checked | {"output_dir": Path(checked["output_dir"])}))


class _Hub:
    """Docker Hub's API over requests, with errors mapped to the package's error tree."""

    def __init__(self, base: str, ca_file: str | None) -> None:
        self.base = base.rstrip("/")
        self.http = requests.Session()
        if ca_file:  # the sandbox: trust its CA, ignore proxies
            self.http.verify = ca_file
            self.http.trust_env = False
        self.http.headers["User-Agent"] = "binderhub-registry"

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, self.base + path, timeout=30, **kw)
        except requests.RequestException as e:
            raise TransientCloudError(
                f"Docker Hub: {type(e).__name__} on {method} {path}"
            ) from None
        if r.status_code == 429 or r.status_code >= 500:
            raise TransientCloudError(
                f"Docker Hub answered {r.status_code} to {method} {path}",
                r.status_code,
                _retry_after(r.headers.get("Retry-After")),
            )
        if r.status_code >= 400:
            try:
                body = r.json()
                message = body.get("detail") or body.get("message") or r.reason
            except ValueError:
                message = r.reason
            if r.status_code == 401:
                raise AuthenticationFailed(f"Docker Hub: {message}")
            if r.status_code == 403:
                raise PermissionDenied(f"Docker Hub: {message}")
            raise CloudError(
                f"Docker Hub answered {r.status_code} to {method} {path}: {message}", r.status_code
            )
        return r.json() if r.content else None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(when.timestamp() - time.time(), 0.0)


@dataclass
class Connection:
    """A signed-in Docker Hub session and where BinderHub's registry lives."""

    params: Params
    hub: _Hub
    registry_url: str | None  # None: Docker Hub itself
    token_url: str
    ca_file: str | None
    record: Record


def sign_in(p: Params) -> Result[Connection]:
    """Sign in to Docker Hub (or the sandbox's) with the secret from the environment or a prompt."""
    if p.sandbox:
        box = sandbox_mod.ensure()
        api, ca_file = box.url + "/dockerhub", box.ca_file
        registry_url: str | None = box.registries["dockerhub"]
        token_url = f"{box.url}/dockerhub/token?service=registry.docker.io"
        seeded = box.credentials("dockerhub")
    else:
        api, ca_file, registry_url, token_url, seeded = HUB_API, None, None, TOKEN_URL, {}
    if any(_env(v) for v in SECRET_VARIABLES) or seeded.get("username") != p.username:
        secret = read_secret(
            SECRET_VARIABLES, f"Docker Hub password or access token for {p.username}"
        )
        source = next((v for v in SECRET_VARIABLES if _env(v)), "the prompt")
    else:
        secret, source = Secret(seeded["password"]), "the sandbox's seeded password"
    hub = _Hub(api, ca_file)
    try:
        session = hub.call(
            "POST", "/v2/auth/token", json={"identifier": p.username, "secret": secret.reveal()}
        )
    except AuthenticationFailed:
        raise AuthenticationFailed(
            f"Docker Hub refused user {p.username!r} with the secret from {source}: check "
            "DOCKERHUB_TOKEN or DOCKERHUB_PASSWORD"
        ) from None
    hub.http.headers["Authorization"] = f"Bearer {session['access_token']}"
    where = "the sandbox" if p.sandbox else "hub.docker.com"
    conn = Connection(p, hub, registry_url, token_url, ca_file, Record(p.output_dir, "dockerhub"))
    return Result(conn, "done", f"signed in to {where} as {p.username} with {source}")


def _env(name: str) -> str:
    return os.environ.get(name, "")


def check_membership(conn: Connection) -> Result[None]:
    """When pushing to an organization, check the user belongs to it."""
    p = conn.params
    if not p.organization:
        return Result(None, "skipped", f"no organization: images go to {p.username}/")
    try:
        found = conn.hub.call(
            "GET", f"/v2/orgs/{p.organization}/members", params={"search": p.username}
        )
    except PermissionDenied:
        found = {"results": []}
    except CloudError as e:
        if e.status == 404:
            raise PermissionDenied(
                f"organization {p.organization!r} does not exist on Docker Hub: create it on "
                "hub.docker.com (organizations cannot be created by API) or leave "
                "organization empty"
            ) from None
        raise
    if p.username not in {m.get("username") for m in found.get("results", [])}:
        raise PermissionDenied(
            f"{p.username} is not a member of organization {p.organization!r}: ask an owner to add "
            "it to a team with write access, or leave organization empty"
        )
    return Result(None, "done", f"{p.username} is a member of {p.organization}")


def _tokens(conn: Connection) -> list[dict[str, Any]]:
    tokens: list[dict[str, Any]] = []
    page = 1
    while True:
        body = conn.hub.call("GET", "/v2/access-tokens", params={"page": page, "page_size": 100})
        tokens += body.get("results", [])
        if not body.get("next"):
            return tokens
        page += 1


def _stored_password(p: Params) -> Secret | None:
    try:
        data = yaml.safe_load((p.output_dir / "secret.yaml").read_text()) or {}
        password = data["registry"]["password"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return Secret(password) if isinstance(password, str) and password else None


def _still_works(conn: Connection, secret: Secret) -> bool:
    try:
        _Hub(conn.hub.base, conn.ca_file).call(
            "POST",
            "/v2/auth/token",
            json={"identifier": conn.params.username, "secret": secret.reveal()},
        )
    except AuthenticationFailed:
        return False
    return True


def ensure_access_token(conn: Connection) -> Result[Secret | None]:
    """Reuse BinderHub's access token while the stored secret works; else create one (repo:write).

    Tokens with this notebook's label whose secret is not stored (a crash after
    creation, a deleted output_dir) are deleted first, so reruns never pile up tokens.
    """
    p = conn.params
    label = p.token_label
    if p.teardown:
        return Result(None, "skipped", "teardown requested: nothing is created")
    mine = [t for t in _tokens(conn) if t.get("token_label") == label]
    recorded = conn.record.created.get("access_token", {}).get("uuid")
    stored = _stored_password(p)
    for token in mine:
        usable = token.get("is_active") and "repo:write" in token.get("scopes", [])
        if token["uuid"] == recorded and usable and stored and _still_works(conn, stored):
            return Result(
                stored, "reused", f"access token {label!r} (repo:write), stored secret still works"
            )
    stale = [t["uuid"] for t in mine]
    if p.dry_run:
        extra = f", after deleting {len(stale)} stale one(s)" if stale else ""
        return Result(
            None, "planned", f"would create access token {label!r} with repo:write{extra}"
        )
    for uuid in stale:
        conn.hub.call("DELETE", f"/v2/access-tokens/{uuid}")
    created = conn.hub.call(
        "POST", "/v2/access-tokens", json={"token_label": label, "scopes": ["repo:write"]}
    )
    conn.record.set("access_token", {"uuid": created["uuid"], "label": label})
    replaced = f", replacing {len(stale)} whose secret was lost" if stale else ""
    return Result(
        Secret(created["token"]), "created", f"access token {label!r} with repo:write{replaced}"
    )


def registry_values(conn: Connection, token: Secret) -> RegistryValues:
    """BinderHub's values for this namespace, pushing with ``token``."""
    p = conn.params
    if conn.registry_url:  # the sandbox: its registry stands in for registry-1.docker.io
        host = conn.registry_url.split("://", 1)[1]
        return RegistryValues(
            image_prefix=f"{host}/{p.namespace}/{p.prefix}",
            username=p.username,
            password=token,
            registry_url=conn.registry_url,
            docker_registry={
                "url": conn.registry_url,
                "token_url": conn.token_url,
                "not_found_401": True,
            },
        )
    return RegistryValues(
        image_prefix=f"{p.namespace}/{p.prefix}",
        username=p.username,
        password=token,
        docker_registry={"url": REGISTRY, "token_url": TOKEN_URL},
    )


def teardown(conn: Connection) -> Result[None]:
    """Delete the access token this notebook created, and the secret.yaml that held it."""
    p = conn.params
    recorded = conn.record.created.get("access_token")
    if not recorded:
        return Result(None, "skipped", "nothing recorded as created by this notebook")
    if p.dry_run:
        return Result(None, "planned", f"would delete access token {recorded['label']!r}")
    try:
        conn.hub.call("DELETE", f"/v2/access-tokens/{recorded['uuid']}")
    except CloudError as e:
        if e.status != 404:
            raise
    conn.record.forget("access_token")
    (p.output_dir / "secret.yaml").unlink(missing_ok=True)
    return Result(None, "deleted", f"access token {recorded['label']!r}; secret.yaml removed")
