"""Fake Docker Hub: the Hub API (``hub.docker.com``) and its registry's token realm.

Status codes and error bodies follow Docker Hub's: 401 with ``detail`` for bad
credentials, 403 for a non-member, 404 for a missing organization. The realm
checks passwords and personal access tokens against live state, grants
repo:write tokens pull and push, repo:read tokens pull only, and, as Docker Hub
does, grants nothing for a repository that does not exist yet, so the registry
answers 401 where another registry would answer 404.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .app import App, Backend, Context, Request, Response, json_response
from .registry import RegistryProcess
from .registry_front import NOBODY, Grant, TokenRealm

__all__ = ["SEED_ORG", "SEED_USER", "DockerHub"]

SEED_USER = "binderhubdemo"  # the account the notebooks use in the sandbox
SEED_ORG = "binderhubdemoorg"  # an organization it belongs to
OTHER_USER = "someoneelse"
OTHER_ORG = "someoneelsesorg"  # an organization it does not belong to

SCOPE_ACTIONS = {
    "repo:admin": {"pull", "push", "delete"},
    "repo:write": {"pull", "push"},
    "repo:read": {"pull"},
    "repo:public_read": {"pull"},
}


@dataclass
class AccessToken:
    uuid: str
    user: str
    label: str
    scopes: list[str]
    secret: str
    is_active: bool = True
    created_at: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "client_id": "HUB",
            "creator_ip": "127.0.0.1",
            "creator_ua": "binderhub-registry",
            "created_at": self.created_at,
            "last_used": None,
            "generated_by": "manual",
            "is_active": self.is_active,
            "token": "",
            "token_label": self.label,
            "scopes": self.scopes,
        }


@dataclass
class Hub:
    passwords: dict[str, str]
    orgs: dict[str, set[str]]
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    sessions: dict[str, tuple[str, set[str] | None]] = field(default_factory=dict)
    counter: int = 0


def _error(status: int, message: str, **extra: Any) -> Response:
    return json_response(status, {"message": message, "errinfo": {}, **extra})


class DockerHub(Backend):
    """Docker Hub's API under ``/dockerhub``; its registry's token realm at ``/dockerhub/token``."""

    prefix = "/dockerhub"
    service = "registry.docker.io"
    issuer = "auth.docker.io"

    def __init__(self, passwords: dict[str, str]) -> None:
        self.seed_passwords = passwords
        self.registry: RegistryProcess | None = None
        self.realm: TokenRealm | None = None
        super().__init__()
        self.route("POST", "/v2/auth/token", self.sign_in)
        self.route("POST", "/v2/users/login", self.legacy_login)
        self.route("GET", "/v2/users/{user}", self.get_user)
        self.route("GET", "/v2/orgs/{org}/members", self.org_members)
        self.route("GET", "/v2/access-tokens", self.list_tokens)
        self.route("POST", "/v2/access-tokens", self.create_token)
        self.route("GET", "/v2/access-tokens/{uuid}", self.get_token)
        self.route("PATCH", "/v2/access-tokens/{uuid}", self.patch_token)
        self.route("DELETE", "/v2/access-tokens/{uuid}", self.delete_token)
        self.route("GET", "/token", self.registry_token)

    @classmethod
    def create(cls, context: Context) -> DockerHub:
        """The backend with the seeded users' passwords from the sandbox's credentials."""
        users = [
            context.secret(
                "dockerhub", lambda: {"username": SEED_USER, "password": secrets.token_urlsafe(18)}
            ),
            context.secret(
                "dockerhub-other",
                lambda: {"username": OTHER_USER, "password": secrets.token_urlsafe(18)},
            ),
        ]
        return cls({u["username"]: u["password"] for u in users})

    # --- lifecycle ---------------------------------------------------------------
    def seed(self) -> None:
        """The seeded users and organizations, no access token."""
        self.hub = Hub(
            passwords=dict(self.seed_passwords),
            orgs={SEED_ORG: {SEED_USER}, OTHER_ORG: {OTHER_USER}},
        )

    def attach(self, app: App) -> None:
        """Start the registry, whose token realm is this backend's ``/token``."""
        self.registry = RegistryProcess(
            "dockerhub",
            app.directory,
            app.material,
            service=self.service,
            realm=f"{app.url}{self.prefix}/token",
            issuer=self.issuer,
        )
        self.realm = TokenRealm(
            services=(self.service,),
            issuer=self.registry.issuer,
            check=self.grant,
            bad_service=lambda s: json_response(400, {"details": f"invalid service {s!r}"}),
            bad_credentials=lambda: json_response(
                401, {"details": "incorrect username or password"}
            ),
            anonymous=NOBODY,
            token_body=lambda token: {
                "token": token,
                "access_token": token,
                "expires_in": 300,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        self.registry.start()
        self.registry.wait_ready()

    def reset(self) -> None:
        """Reseed, and restart the registry empty."""
        self.seed()
        if self.registry:
            self.registry.stop()
            self.registry.start()
            self.registry.wait_ready()

    def shutdown(self) -> None:
        """Stop the registry."""
        if self.registry:
            self.registry.stop()

    def registries(self) -> dict[str, str]:
        """The Hub's registry (clients talk to docker-registry directly)."""
        return {self.registry.name: self.registry.url} if self.registry else {}

    def state(self) -> dict[str, Any]:
        return {
            "users": sorted(self.hub.passwords),
            "orgs": {org: sorted(members) for org, members in sorted(self.hub.orgs.items())},
            "access_tokens": [
                {
                    "uuid": t.uuid,
                    "user": t.user,
                    "label": t.label,
                    "scopes": t.scopes,
                    "is_active": t.is_active,
                }
                for t in self.hub.tokens.values()
            ],
            "repositories": self.registry.repositories() if self.registry else {},
        }

    def not_found(self, request: Request) -> Response:
        return _error(404, "Not Found")

    # --- credentials -------------------------------------------------------------
    def check(self, user: str, secret: str) -> set[str] | None:
        """The actions a user+secret may perform; None if the secret is wrong.

        A password gives every action; an active access token gives its scopes' actions.
        """
        if user in self.hub.passwords and secrets.compare_digest(self.hub.passwords[user], secret):
            return {"pull", "push", "delete", "manage"}
        for token in self.hub.tokens.values():
            if (
                token.user == user
                and token.is_active
                and secrets.compare_digest(token.secret, secret)
            ):
                return set().union(*(SCOPE_ACTIONS.get(s, set()) for s in token.scopes))
        return None

    def session(self, request: Request) -> tuple[str, set[str]] | Response:
        token = request.bearer()
        found = self.hub.sessions.get(token) if token else None
        if not found:
            return json_response(401, {"detail": "Authentication credentials were not provided."})
        user, actions = found
        return user, actions or set()

    def _new_session(self, user: str, actions: set[str]) -> str:
        token = "hub-session-" + secrets.token_urlsafe(24)
        self.hub.sessions[token] = (user, actions)
        return token

    def sign_in(self, request: Request) -> Response:
        body = request.json()
        user, secret = str(body.get("identifier", "")), str(body.get("secret", ""))
        actions = self.check(user, secret)
        if actions is None:
            return json_response(
                401,
                {
                    "detail": "Incorrect authentication credentials",
                    "message": "Incorrect authentication credentials",
                },
            )
        return json_response(200, {"access_token": self._new_session(user, actions)})

    def legacy_login(self, request: Request) -> Response:
        body = request.json()
        actions = self.check(str(body.get("username", "")), str(body.get("password", "")))
        if actions is None:
            return json_response(401, {"detail": "Incorrect authentication credentials"})
        return json_response(200, {"token": self._new_session(str(body["username"]), actions)})

    # --- accounts ----------------------------------------------------------------
    def get_user(self, request: Request) -> Response:
        name = request.params["user"]
        if name not in self.hub.passwords:
            return _error(404, "User not found")
        return json_response(
            200, {"id": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex, "username": name, "type": "User"}
        )

    def org_members(self, request: Request) -> Response:
        found = self.session(request)
        if isinstance(found, Response):
            return found
        user, _ = found
        org = request.params["org"]
        if org not in self.hub.orgs:
            return _error(404, "organization not found")
        members = self.hub.orgs[org]
        if user not in members:
            return json_response(
                403, {"detail": "You do not have permission to perform this action."}
            )
        search = request.arg("search")
        results = [
            {"username": m, "full_name": "", "type": "User"} for m in sorted(members) if search in m
        ]
        return json_response(
            200, {"count": len(results), "next": None, "previous": None, "results": results}
        )

    # --- access tokens -----------------------------------------------------------
    def _own_tokens(self, user: str) -> list[AccessToken]:
        return [t for t in self.hub.tokens.values() if t.user == user]

    def list_tokens(self, request: Request) -> Response:
        found = self.session(request)
        if isinstance(found, Response):
            return found
        user, _ = found
        page = max(int(request.arg("page", "1") or 1), 1)
        size = min(max(int(request.arg("page_size", "10") or 10), 1), 100)
        tokens = self._own_tokens(user)
        chunk = tokens[(page - 1) * size : page * size]
        more = page * size < len(tokens)
        return json_response(
            200,
            {
                "count": len(tokens),
                "next": f"{self.prefix}/v2/access-tokens?page={page + 1}&page_size={size}"
                if more
                else None,
                "previous": None,
                "active_count": sum(t.is_active for t in tokens),
                "results": [t.public() for t in chunk],
            },
        )

    def create_token(self, request: Request) -> Response:
        found = self.session(request)
        if isinstance(found, Response):
            return found
        user, actions = found
        if "manage" not in actions:
            return json_response(
                403,
                {"detail": "access tokens cannot manage access tokens; sign in with the password"},
            )
        body = request.json()
        label, scopes = body.get("token_label"), body.get("scopes")
        if not isinstance(label, str) or not label or len(label) > 100:
            return _error(400, "token_label is required (1 to 100 characters)")
        if (
            not isinstance(scopes, list)
            or not scopes
            or any(s not in SCOPE_ACTIONS for s in scopes)
        ):
            return _error(400, "invalid scopes", valid=sorted(SCOPE_ACTIONS))
        self.hub.counter += 1
        token = AccessToken(
            uuid=str(uuid.UUID(int=self.hub.counter, version=4)),
            user=user,
            label=label,
            scopes=list(scopes),
            secret="dckr_pat_" + secrets.token_urlsafe(27),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        self.hub.tokens[token.uuid] = token
        return json_response(201, token.public() | {"token": token.secret})

    def _find_token(self, request: Request) -> AccessToken | Response:
        found = self.session(request)
        if isinstance(found, Response):
            return found
        user, _ = found
        token = self.hub.tokens.get(request.params["uuid"])
        if token is None or token.user != user:
            return _error(404, "token not found")
        return token

    def get_token(self, request: Request) -> Response:
        token = self._find_token(request)
        return token if isinstance(token, Response) else json_response(200, token.public())

    def patch_token(self, request: Request) -> Response:
        token = self._find_token(request)
        if isinstance(token, Response):
            return token
        body = request.json()
        if "is_active" in body:
            token.is_active = bool(body["is_active"])
        if "token_label" in body:
            token.label = str(body["token_label"])
        return json_response(200, token.public())

    def delete_token(self, request: Request) -> Response:
        token = self._find_token(request)
        if isinstance(token, Response):
            return token
        del self.hub.tokens[token.uuid]
        return Response(204)

    # --- registry token realm ----------------------------------------------------
    def namespaces(self, user: str) -> set[str]:
        return {user} | {org for org, members in self.hub.orgs.items() if user in members}

    def grant(self, user: str, secret: str) -> Grant | None:
        """The realm's credential check: what ``user`` may do with ``secret``, or None."""
        allowed = self.check(user, secret)
        if allowed is None:
            return None
        namespaces = self.namespaces(user)

        def allow(name: str, wanted: set[str]) -> set[str]:
            assert self.registry is not None
            actions = wanted & allowed if name.split("/")[0] in namespaces else set()
            if actions == {"pull"} and not self.registry.tags(name):
                actions = set()  # Docker Hub: no access to a repository that does not exist
            return actions

        return Grant(user, allow)

    def registry_token(self, request: Request) -> Response:
        """The registry's token realm (``GET /dockerhub/token``)."""
        assert self.realm is not None
        return self.realm.answer(request)
