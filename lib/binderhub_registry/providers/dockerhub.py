from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import requests

from .. import sandbox as sandbox_mod
from ..binderhub import RegistryValues
from ..errors import (
    AuthenticationFailed,
    CloudError,
    PermissionDenied,
    error_for_status,
    map_exceptions,
    requests_errors,
    retry_after,
)
from ..params import text
from ..secrets import Secret, read_secret
from ..steps import Result
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
    "HubConnection",
    "Params",
    "check_membership",
    "ensure_access_token",
    "sign_in",
    "validate",
]

KEY = "dockerhub"
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
    *COMMON_PARAMETERS,
)


@dataclass(frozen=True)
class Params(CommonParams):
    """Validated parameters of the Docker Hub notebook."""

    username: str
    organization: str

    @property
    def namespace(self) -> str:
        """Where images go: the organization, else the user's own namespace."""
        return self.organization or self.username

    @property
    def token_label(self) -> str:
        """The label that identifies BinderHub's access token on the account."""
        return f"BinderHub push {self.namespace}/{self.prefix}*"


def validate(values: dict[str, Any] | None = None, /, **overrides: Any) -> Params:
    """Check every parameter (no network); raise InvalidParameter for the first bad one.

    ``values`` is typically the notebook's ``globals()``; keywords override it.
    """
    return check_parameters(Params, PARAMETERS, values, overrides)


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
        with map_exceptions(requests_errors(NAME)):
            r = self.http.request(method, self.base + path, timeout=30, **kw)
        if r.status_code >= 400:
            try:
                body = r.json()
                message = body.get("detail") or body.get("message") or r.reason
            except ValueError:
                message = r.reason
            raise error_for_status(
                NAME,
                r.status_code,
                f"{message} ({method} {path})",
                retry_after=retry_after(r.headers.get("Retry-After")),
            )
        return r.json() if r.content else None


@dataclass
class HubConnection(Connection):
    """A signed-in Docker Hub session and where BinderHub's registry lives."""

    NOTEBOOK = NOTEBOOK
    HINTS = VerifyHints(
        credentials="create a new access token (rerun this notebook) and rewrite secret.yaml",
        push=(
            "the access token needs the repo:write scope, and to push to an organization the "
            "account must be in a team with write access to its repositories"
        ),
    )
    retiring = "retiring_tokens"

    params: Params
    hub: _Hub
    registry_url: str | None  # None: Docker Hub itself
    token_url: str

    def values(self) -> RegistryValues | None:
        """BinderHub's values for this namespace, pushing with the access token."""
        p, token = self.params, self.secret
        if token is None:
            return None
        if self.registry_url:  # the sandbox: its registry stands in for registry-1.docker.io
            host = self.registry_url.split("://", 1)[1]
            return RegistryValues(
                image_prefix=f"{host}/{p.namespace}/{p.prefix}",
                username=p.username,
                password=token,
                registry_url=self.registry_url,
                docker_registry={
                    "url": self.registry_url,
                    "token_url": self.token_url,
                    "not_found_401": True,
                },
            )
        return RegistryValues(
            image_prefix=f"{p.namespace}/{p.prefix}",
            username=p.username,
            password=token,
            docker_registry={"url": REGISTRY, "token_url": TOKEN_URL},
        )

    def deletions(self) -> list[Deletion]:
        """The access token (and any a rotation left), the only things this notebook creates."""
        return [
            Deletion("retiring_tokens", "the replaced access tokens", self.retire),
            Deletion(
                "access_token",
                f"access token {self.params.token_label!r}",
                lambda token: self._delete_token(token["uuid"]),
            ),
        ]

    def retire(self, retiring: list[Any]) -> None:
        """Delete the access tokens a rotation replaced."""
        for uuid in retiring:
            self._delete_token(uuid)

    def _delete_token(self, uuid: str) -> None:
        try:
            self.hub.call("DELETE", f"/v2/access-tokens/{uuid}")
        except CloudError as e:
            if e.status != 404:  # already gone is what we wanted
                raise


def sign_in(p: Params) -> Result[HubConnection]:
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
    conn = HubConnection(
        params=p,
        record=Record(p.output_dir, KEY),
        ca_file=ca_file,
        hub=hub,
        registry_url=registry_url,
        token_url=token_url,
    )
    return Result(conn, "done", f"signed in to {where} as {p.username} with {source}")


def _env(name: str) -> str:
    return os.environ.get(name, "")


def check_membership(conn: HubConnection) -> Result[None]:
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


def _tokens(conn: HubConnection) -> list[dict[str, Any]]:
    tokens: list[dict[str, Any]] = []
    page = 1
    while True:
        body = conn.hub.call("GET", "/v2/access-tokens", params={"page": page, "page_size": 100})
        tokens += body.get("results", [])
        if not body.get("next"):
            return tokens
        page += 1


def _still_works(conn: HubConnection, secret: Secret) -> bool:
    try:
        _Hub(conn.hub.base, conn.ca_file).call(
            "POST",
            "/v2/auth/token",
            json={"identifier": conn.params.username, "secret": secret.reveal()},
        )
    except AuthenticationFailed:
        return False
    return True


@creates
def ensure_access_token(conn: HubConnection) -> Result[Secret | None]:
    """Reuse BinderHub's access token while the stored secret works; else create one (repo:write).

    Tokens with this notebook's label whose secret is not stored (a crash after
    creation, a deleted output_dir) are deleted first, so reruns never pile up
    tokens. With ``rotate`` a new token is made even when the stored one works;
    the old one is deleted by ``finish_rotation`` once the new one verifies.
    """
    p = conn.params
    label = p.token_label
    mine = [t for t in _tokens(conn) if t.get("token_label") == label]
    recorded = conn.record.created.get("access_token", {}).get("uuid")
    retiring = list(conn.record.created.get(conn.retiring, []))
    stored = conn.stored_password(p.username)
    working = next(
        (
            t
            for t in mine
            if t["uuid"] == recorded
            and t.get("is_active")
            and "repo:write" in t.get("scopes", [])
            and stored
            and _still_works(conn, stored)
        ),
        None,
    )
    if working and not p.rotate:
        conn.secret = stored
        return Result(
            stored, "reused", f"access token {label!r} (repo:write), stored secret still works"
        )
    if working:
        retiring.append(working["uuid"])  # rotate: deleted only after the new one verifies
    stale = [t["uuid"] for t in mine if t["uuid"] not in retiring]
    if p.dry_run:
        what = "rotate: would create a new" if working else "would create"
        extra = f", after deleting {len(stale)} stale one(s)" if stale else ""
        return Result(None, "planned", f"{what} access token {label!r} with repo:write{extra}")
    for uuid in stale:
        conn.hub.call("DELETE", f"/v2/access-tokens/{uuid}")
    conn.record.set(conn.retiring, retiring)
    created = conn.hub.call(
        "POST", "/v2/access-tokens", json={"token_label": label, "scopes": ["repo:write"]}
    )
    conn.record.set("access_token", {"uuid": created["uuid"], "label": label})
    conn.secret = Secret(created["token"])
    detail = f"access token {label!r} with repo:write"
    if stale:
        detail += f", replacing {len(stale)} whose secret was lost"
    if working:
        detail += "; the old token is deleted once this one verifies"
    return Result(conn.secret, "created", detail)
