"""The Docker Hub backend: the Hub API's routes, its registry's token realm, the registry front.

The sources of each behaviour are in the package's table (``sandbox/dockerhub/__init__.py``).
"""

from __future__ import annotations

import base64
import fnmatch
import secrets
import time
import uuid
from typing import Any

from starlette.requests import Request as HttpRequest

from ..app import App, Backend, Context, Request, Response, json_response
from ..registry_front import FrontConfig, Grant, RegistryFront, TokenRealm, token_claims
from . import retention
from .models import (
    EDITOR_ORG,
    MEMBER_ORG,
    OAT_ORG_SCOPES,
    OAT_REPO_SCOPES,
    OTHER_ORG,
    OTHER_USER,
    PUBLIC_REPOSITORIES,
    PULL_LIMIT_BODY,
    REPOSITORY_CREATE,
    REPOSITORY_LIST,
    ROLE_ACTIONS,
    SCOPE_ACTIONS,
    SEED_ORG,
    SEED_USER,
    SSO_USER,
    TOTP_STEP,
    TWO_FACTOR_USER,
    AccessToken,
    Account,
    Hub,
    Org,
    OrgToken,
    Session,
    now,
    totp,
)

__all__ = ["BACKEND", "DockerHub"]

_PAT_REFUSED = {"message": "token issued from personal access token is not allowed", "errinfo": {}}
_OAT_REFUSED = {
    "message": "token issued from organization access token is not allowed",
    "errinfo": {},
}
_BAD_CREDENTIALS = {
    "detail": "Incorrect authentication credentials",
    "message": "Incorrect authentication credentials",
}


def _error(status: int, message: str, **extra: Any) -> Response:
    return json_response(status, {"message": message, "errinfo": {}, **extra})


def _invalid(name: str, message: str, **extra: Any) -> Response:
    """A 400 for a bad field: the spec's ValueError (``text``, ``fields``) and ``message``."""
    return _error(400, message, text=message, fields={name: [message]}, **extra)


class DockerHub(Backend):
    """Docker Hub's API under ``/dockerhub``; its registry's token realm at ``/dockerhub/token``."""

    prefix = "/dockerhub"
    service = "registry.docker.io"
    issuer = "auth.docker.io"

    def __init__(self, users: dict[str, dict[str, str]]) -> None:
        self.seed_users = users
        self.front: RegistryFront | None = None
        self.realm: TokenRealm | None = None
        super().__init__()
        self.add_routes(
            [
                ("POST", "/v2/auth/token", self.sign_in),
                ("POST", "/v2/users/login", self.legacy_login),
                ("POST", "/v2/users/2fa-login", self.second_factor),
                ("GET", "/v2/users/{user}", self.get_user),
                ("GET", "/v2/orgs/{org}/members", self.org_members),
                ("GET", "/v2/orgs/{org}/access-tokens", self.list_org_tokens),
                ("POST", "/v2/orgs/{org}/access-tokens", self.create_org_token),
                ("DELETE", "/v2/orgs/{org}/access-tokens/{id}", self.delete_org_token),
                ("GET", "/v2/access-tokens", self.list_tokens),
                ("POST", "/v2/access-tokens", self.create_token),
                ("GET", "/v2/access-tokens/{uuid}", self.get_token),
                ("PATCH", "/v2/access-tokens/{uuid}", self.patch_token),
                ("DELETE", "/v2/access-tokens/{uuid}", self.delete_token),
                ("GET", "/token", self.registry_token),
                *retention.routes(self),  # repositories, tags and their times, tag delete
            ]
        )

    @classmethod
    def create(cls, context: Context) -> DockerHub:
        """The backend with the seeded users' secrets from the sandbox's credentials."""

        def account(name: str, username: str, **extra: str) -> tuple[str, dict[str, str]]:
            made = context.secret(
                name,
                lambda: {"username": username, "password": secrets.token_urlsafe(18)} | extra,
            )
            return made["username"], made

        users = dict(
            [
                account("dockerhub", SEED_USER),
                account("dockerhub-other", OTHER_USER),
                # the authenticator's seed, for tests to compute codes as an app does
                account(
                    "dockerhub-totp",
                    TWO_FACTOR_USER,
                    totp_seed=base64.b32encode(secrets.token_bytes(20)).decode(),
                ),
                account("dockerhub-sso", SSO_USER),
            ]
        )
        return cls(users)

    # --- lifecycle ---------------------------------------------------------------
    def seed(self) -> None:
        """The seeded users and organizations, no access token, default settings."""
        accounts = {
            name: Account(u["password"], totp_seed=u.get("totp_seed", ""), sso=name == SSO_USER)
            for name, u in self.seed_users.items()
        }
        self.hub = Hub(
            accounts=accounts,
            orgs={
                SEED_ORG: Org("team", {SEED_USER: "owner"}),
                EDITOR_ORG: Org("free", {OTHER_USER: "owner", SEED_USER: "editor"}),
                MEMBER_ORG: Org("free", {OTHER_USER: "owner", SEED_USER: "member"}),
                OTHER_ORG: Org("free", {OTHER_USER: "owner"}),
            },
        )

    def attach(self, app: App) -> None:
        """Start the registry behind a front whose challenge names this backend's ``/token``."""
        self.front = _HubFront(
            self,
            app,
            FrontConfig(
                name="dockerhub",
                service=self.service,
                issuer=self.issuer,
                realm_path="/token",
                check=self.grant,
                lock=self.lock,
                basic_ping=False,
                realm_url=f"{app.url}{self.prefix}/token",
                basic_data_plane=False,
            ),
        )
        self.realm = TokenRealm(
            services=(self.service,),
            issuer=self.front.process.issuer,
            check=self.grant,
            bad_service=lambda s: json_response(400, {"details": f"invalid service {s!r}"}),
            bad_credentials=lambda: json_response(
                401, {"details": "incorrect username or password"}
            ),
            anonymous=Grant("", lambda name, wanted: wanted & self._public_pull(name)),
            token_body=lambda token: {
                "token": token,
                "access_token": token,
                "expires_in": 300,
                "issued_at": now(),
            },
        )

    def anonymous_pull(self, address: str) -> Response | None:
        """Count an anonymous pull from ``address``; Docker Hub's 429 past the limit, else None."""
        with self.lock:
            limit = int(self.hub.settings["anonymous_pull_limit"])
            window = float(self.hub.settings["pull_window"])
            now = time.monotonic()
            recent = [t for t in self.hub.anonymous_pulls.get(address, []) if now - t < window]
            if len(recent) >= limit:
                self.hub.anonymous_pulls[address] = recent
                return json_response(
                    429,
                    PULL_LIMIT_BODY,
                    {
                        "ratelimit-limit": f"{limit};w={int(window)}",
                        "ratelimit-remaining": f"0;w={int(window)}",
                    },
                )
            self.hub.anonymous_pulls[address] = [*recent, now]
            return None

    def reset(self) -> None:
        """Reseed, and restart the registry empty."""
        self.seed()
        if self.front:
            self.front.process.restart()

    def clock_ahead(self, days: float) -> dict[str, Any]:
        """Every tag's recorded push and pull ``days`` older; Hub deletes nothing itself."""
        if self.front is not None:
            retention.advance(self.front.process.times, days)
        return {"deleted": []}

    def shutdown(self) -> None:
        """Stop the registry and its front."""
        if self.front:
            self.front.stop()

    def registries(self) -> dict[str, str]:
        """The Hub's registry: its front's URL."""
        return {"dockerhub": self.front.listener.url} if self.front else {}

    def settings(self) -> dict[str, Any]:
        """``/_sandbox/dockerhub/settings``: ``{"session_ttl": seconds, "default_privacy":
        {namespace: "public" or "private"}, "anonymous_pull_limit", "pull_window",
        "oat_new_repositories": "scope" | "never" | "any", "totp_time_offset": seconds}``."""
        return self.hub.settings

    def state(self) -> dict[str, Any]:
        """Users, organizations (members, roles, plans), tokens and repositories; no secret."""
        return {
            "users": sorted(self.hub.accounts),
            "orgs": {org: sorted(o.roles) for org, o in sorted(self.hub.orgs.items())},
            "org_roles": {org: dict(o.roles) for org, o in sorted(self.hub.orgs.items())},
            "org_plans": {org: o.plan for org, o in sorted(self.hub.orgs.items())},
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
            "org_access_tokens": [
                {"id": t.id, "org": t.org, "label": t.label, "resources": t.resources}
                for t in self.hub.org_tokens.values()
            ],
            "repositories": self.front.process.repositories() if self.front else {},
            "privacy": dict(self.hub.privacy),
        }

    def not_found(self, request: Request) -> Response:
        return _error(404, "Not Found")

    # --- credentials -------------------------------------------------------------
    def check(self, user: str, secret: str) -> tuple[str, set[str]] | None:
        """(kind, actions) for a user and a secret; None if the secret is wrong.

        A password gives every action (``manage`` included), a personal access
        token its scopes' actions, an organization access token (user: the
        organization) the actions of its resources.
        """
        account = self.hub.accounts.get(user)
        if account and secrets.compare_digest(account.password, secret):
            return "password", {"pull", "push", "delete", "manage"}
        for token in self.hub.tokens.values():
            if (
                token.user == user
                and token.is_active
                and secrets.compare_digest(token.secret, secret)
            ):
                return "pat", set().union(*(SCOPE_ACTIONS.get(s, set()) for s in token.scopes))
        for oat in self.hub.org_tokens.values():
            if oat.org == user and oat.is_active and secrets.compare_digest(oat.secret, secret):
                scopes = [s for r in oat.resources for s in r.get("scopes", [])]
                actions = set().union(*(OAT_REPO_SCOPES.get(s, set()) for s in scopes))
                listing = {REPOSITORY_LIST} & {  # Repository List: private repositories too
                    s for r in oat.resources if r.get("type") == "TYPE_ORG" for s in r["scopes"]
                }
                return "oat", actions | listing
        return None

    def _new_session(self, user: str, kind: str, actions: set[str]) -> str:
        token = "hub-session-" + secrets.token_urlsafe(24)
        self.hub.sessions[token] = Session(user, kind, actions, time.monotonic())
        return token

    def session(self, request: Request, *, manage: bool = True) -> Session | Response:
        """The caller's live session; ``manage``: a route a PAT session may not use."""
        token = request.bearer()
        found = self.hub.sessions.get(token) if token else None
        if found is None:
            return json_response(401, {"detail": "Authentication credentials were not provided."})
        if time.monotonic() - found.issued > self.hub.settings["session_ttl"]:
            del self.hub.sessions[token]
            return json_response(401, {"detail": "Token is expired"})  # wording: assumption
        if manage and found.kind == "pat":
            return json_response(403, _PAT_REFUSED)
        return found

    def _password_refusal(self, user: str, secret: str) -> Response | None:
        """Why a correct password alone opens no session (2FA, SSO), or None."""
        account = self.hub.accounts.get(user)
        if not account or not secrets.compare_digest(account.password, secret):
            return None
        if account.sso:
            return json_response(
                401,
                {
                    "detail": "single sign-on is enforced: use a personal access token",
                    "message": "single sign-on is enforced: use a personal access token",
                },
            )
        if account.totp_seed:
            pending = "login-2fa-" + secrets.token_urlsafe(18)
            self.hub.pending_2fa[pending] = user
            return json_response(
                401,
                {
                    "detail": "Require secondary authentication on MFA enabled account",
                    "login_2fa_token": pending,
                },
            )
        return None

    def _open(self, user: str, secret: str, field_name: str) -> Response:
        refusal = self._password_refusal(user, secret)
        if refusal is not None:
            return refusal
        found = self.check(user, secret)
        if found is None:
            return json_response(401, _BAD_CREDENTIALS)
        kind, actions = found
        return json_response(200, {field_name: self._new_session(user, kind, actions)})

    def sign_in(self, request: Request) -> Response:
        """``POST /v2/auth/token``."""
        body = request.json()
        return self._open(
            str(body.get("identifier", "")), str(body.get("secret", "")), "access_token"
        )

    def legacy_login(self, request: Request) -> Response:
        """``POST /v2/users/login`` (deprecated; the first half of the two-factor flow)."""
        body = request.json()
        return self._open(str(body.get("username", "")), str(body.get("password", "")), "token")

    def second_factor(self, request: Request) -> Response:
        """``POST /v2/users/2fa-login``: the pending token and the code."""
        body = request.json()
        user = self.hub.pending_2fa.get(str(body.get("login_2fa_token", "")))
        account = self.hub.accounts.get(user or "")
        if not user or not account or not self._fresh_code(account, str(body.get("code", ""))):
            return json_response(401, {"detail": "Incorrect authentication credentials"})
        del self.hub.pending_2fa[str(body["login_2fa_token"])]
        actions = {"pull", "push", "delete", "manage"}
        return json_response(200, {"token": self._new_session(user, "password", actions)})

    def _fresh_code(self, account: Account, code: str) -> bool:
        """Whether ``code`` is the account's one-time code now (or one step ago, for a code
        typed as it changed: RFC 6238 section 5.2), and not taken before: a step whose code
        was accepted, and every earlier one, is refused from then on (RFC 6238 section 5.2:
        a verifier must not accept the same code twice)."""
        now = time.time() + float(self.hub.settings["totp_time_offset"])
        step = int(now // TOTP_STEP)
        for candidate in (step, step - 1):
            expected = totp(account.totp_seed, candidate * TOTP_STEP)
            if candidate > account.last_step and secrets.compare_digest(expected, code):
                account.last_step = candidate
                return True
        return False

    # --- accounts and organizations ------------------------------------------------
    def get_user(self, request: Request) -> Response:
        name = request.params["user"]
        if name not in self.hub.accounts:
            return _error(404, "User not found")
        return json_response(
            200, {"id": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex, "username": name, "type": "User"}
        )

    def _org_for(self, request: Request, *, owner: bool = False) -> tuple[Session, Org] | Response:
        """The caller's session and the organization; ``owner``: organization access token
        management, which an owner's password session may do and no token's session."""
        found = self.session(request)
        if isinstance(found, Response):
            return found
        if owner and found.kind == "oat":
            return json_response(403, _OAT_REFUSED)
        name = request.params["org"]
        org = self.hub.orgs.get(name)
        if org is None:
            return _error(404, "organization not found")
        role = "owner" if found.kind == "oat" and found.user == name else org.roles.get(found.user)
        if role is None or (owner and role != "owner"):
            return json_response(
                403, {"detail": "You do not have permission to perform this action."}
            )
        return found, org

    def org_members(self, request: Request) -> Response:
        found = self._org_for(request)
        if isinstance(found, Response):
            return found
        _, org = found
        search, role = request.arg("search"), request.arg("role")
        results = [
            {
                "id": uuid.uuid5(uuid.NAMESPACE_DNS, m).hex,
                "username": m,
                "full_name": "",
                "type": "User",
                "role": "Owner" if r == "owner" else "Member",
                "groups": ["owners"] if r == "owner" else [],
            }
            for m, r in sorted(org.roles.items())
            if search in m and role in ("", r)
        ]
        return json_response(
            200, {"count": len(results), "next": None, "previous": None, "results": results}
        )

    # --- personal access tokens ----------------------------------------------------
    def _own_tokens(self, user: str) -> list[AccessToken]:
        return [t for t in self.hub.tokens.values() if t.user == user]

    def list_tokens(self, request: Request) -> Response:
        found = self.session(request)
        if isinstance(found, Response):
            return found
        page = max(int(request.arg("page", "1") or 1), 1)
        size = min(max(int(request.arg("page_size", "10") or 10), 1), 100)
        tokens = self._own_tokens(found.user)
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
        if "manage" not in found.actions:
            return json_response(403, _PAT_REFUSED)
        body = request.json()
        label, scopes = body.get("token_label"), body.get("scopes")
        if not isinstance(label, str) or not label or len(label) > 100:
            return _invalid("token_label", "token_label is required (1 to 100 characters)")
        if (
            not isinstance(scopes, list)
            or not scopes
            or any(s not in SCOPE_ACTIONS for s in scopes)
        ):
            return _invalid("scopes", "invalid scopes", valid=sorted(SCOPE_ACTIONS))
        self.hub.counter += 1
        token = AccessToken(
            uuid=str(uuid.UUID(int=self.hub.counter, version=4)),
            user=found.user,
            label=label,
            scopes=list(scopes),
            secret="dckr_pat_" + secrets.token_urlsafe(27),
            created_at=now(),
        )
        self.hub.tokens[token.uuid] = token
        return json_response(201, token.public() | {"token": token.secret})

    def _find_token(self, request: Request) -> AccessToken | Response:
        found = self.session(request)
        if isinstance(found, Response):
            return found
        token = self.hub.tokens.get(request.params["uuid"])
        if token is None or token.user != found.user:
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

    # --- organization access tokens -------------------------------------------------
    def list_org_tokens(self, request: Request) -> Response:
        found = self._org_for(request, owner=True)
        if isinstance(found, Response):
            return found
        tokens = [t for t in self.hub.org_tokens.values() if t.org == request.params["org"]]
        return json_response(
            200,
            {
                "total": len(tokens),
                "next": None,
                "previous": None,
                "results": [t.public() for t in tokens],
            },
        )

    def create_org_token(self, request: Request) -> Response:
        found = self._org_for(request, owner=True)
        if isinstance(found, Response):
            return found
        session, org = found
        if org.plan not in ("team", "business"):  # the refusal's wording: assumption
            return _error(403, "organization access tokens need a Team or Business plan")
        body = request.json()
        label, resources = body.get("label"), body.get("resources")
        if not isinstance(label, str) or not label or not isinstance(resources, list):
            return _error(400, "label and resources are required")
        problem = self._resources_problem(request.params["org"], resources)
        if problem:
            return _invalid("resources", problem)
        self.hub.counter += 1
        token = OrgToken(
            id=str(uuid.UUID(int=self.hub.counter, version=4)),
            org=request.params["org"],
            label=label,
            created_by=session.user,
            resources=resources,
            secret="dckr_oat_" + secrets.token_urlsafe(21),
            created_at=now(),
        )
        self.hub.org_tokens[token.id] = token
        return json_response(201, token.public() | {"token": token.secret})

    def _resources_problem(self, org: str, resources: list[Any]) -> str:
        """Why an organization access token's ``resources`` are refused ("" if they are not).

        The current description's orgAccessTokenResource (docs.docker.com/reference/api/hub/
        latest/schemas/orgAccessTokenResource): type, path and scopes required, at least one
        resource; a TYPE_REPO path "must be an existing repository name", glob patterns
        allowed (``org/*``), ``*/*/public`` for every public repository. The scope names:
        docker/docs access-tokens/reference.md. A TYPE_ORG path naming its organization, and
        every wording here: assumption.
        """
        if not resources:
            return "resources must name at least one resource"
        assert self.front is not None
        for r in resources:
            kind = r.get("type") if isinstance(r, dict) else None
            path = str(r.get("path", "")) if isinstance(r, dict) else ""
            scopes = r.get("scopes") if isinstance(r, dict) else None
            if not isinstance(scopes, list) or not scopes:
                return f"resource {path!r} needs scopes"
            if kind == "TYPE_ORG":
                unknown = sorted(set(map(str, scopes)) - OAT_ORG_SCOPES)
                if path != org:
                    return f"an organization resource's path must be {org!r}, not {path!r}"
            elif kind == "TYPE_REPO":
                unknown = sorted(set(map(str, scopes)) - set(OAT_REPO_SCOPES))
                glob = any(c in path for c in "*?[")
                if path != PUBLIC_REPOSITORIES and not path.startswith(org + "/"):
                    return f"repository {path!r} is not in organization {org!r}"
                if not glob and not self.front.process.tags(path):
                    return f"repository {path!r} must be an existing repository name"
            else:
                return f"resource type {kind!r} must be TYPE_REPO or TYPE_ORG"
            if unknown:
                return f"invalid scopes {unknown} for a {kind} resource"
        return ""

    def delete_org_token(self, request: Request) -> Response:
        found = self._org_for(request, owner=True)
        if isinstance(found, Response):
            return found
        token = self.hub.org_tokens.get(request.params["id"])
        if token is None or token.org != request.params["org"]:
            return _error(404, "access token not found")
        del self.hub.org_tokens[token.id]
        return Response(204)

    # --- registry token realm ----------------------------------------------------
    def grant(self, user: str, secret: str) -> Grant | None:
        """The realm's credential check: what ``user`` may do with ``secret``, or None.

        On the user's own namespace: what the secret allows. On an organization's:
        what the secret allows within the member's role (a member pulls, editors and
        owners push); an organization access token, within its resources.
        """
        found = self.check(user, secret)
        if found is None:
            return None
        kind, allowed = found
        scopes = next(
            (t.scopes for t in self.hub.tokens.values() if t.user == user and t.secret == secret),
            [],
        )

        def role_actions(namespace: str) -> set[str]:
            if namespace == user:
                return {"pull", "push", "delete"}
            org = self.hub.orgs.get(namespace)
            role = org.roles.get(user) if org else None
            return ROLE_ACTIONS.get(role or "", set())

        def oat_actions(name: str, exists: bool) -> set[str]:
            oat = next(
                t for t in self.hub.org_tokens.values() if t.org == user and t.secret == secret
            )
            actions: set[str] = set()
            for r in oat.resources:
                path, named = str(r.get("path", "")), r.get("scopes", [])
                if r.get("type") != "TYPE_REPO":
                    continue
                if path == PUBLIC_REPOSITORIES:  # every public repository: read only
                    granted = set().union(*(OAT_REPO_SCOPES.get(s, set()) for s in named))
                    actions |= granted & self._public_pull(name)
                elif fnmatch.fnmatchcase(name, path):
                    actions |= set().union(*(OAT_REPO_SCOPES.get(s, set()) for s in named))
            if not exists and "push" in actions and not self._oat_creates(oat):
                actions.discard("push")  # the repository does not exist: see _oat_creates
            return actions

        def allow(name: str, wanted: set[str]) -> set[str]:
            assert self.front is not None
            exists = bool(self.front.process.tags(name))
            if kind == "oat":
                scope = oat_actions(name, exists)
            else:
                scope = role_actions(name.split("/")[0])
            if "repo:public_read" in scopes:  # Repo Public Read-only: public repositories
                scope = set()
            actions = wanted & allowed & scope
            if actions == {"pull"} and not exists:
                actions = set()  # Docker Hub: no access to a repository that does not exist
            if "push" in actions and not exists:  # the push creates it: the default privacy
                self.hub.privacy.setdefault(name, self._default_privacy(name))
            if kind == "oat":  # an OAT reads other public repositories only if told to
                return actions
            return actions | (wanted & allowed & self._public_pull(name))

        return Grant(user, allow)

    def _oat_creates(self, oat: OrgToken) -> bool:
        """Whether ``oat``'s push may create a repository (``settings["oat_new_repositories"]``).

        "scope", the default, is Docker's documented rule: a repository resource names
        existing repositories (orgAccessTokenResource), and "creating a repository requires
        the organization-level Repository Create scope. No repository scope grants it"
        (docker/docs access-tokens/reference.md): so only with ``scope-repository-create``.
        That a registry push counts as that creation is not shown by any public source
        (assumption). "never": the stricter reading, no push creates one. "any": a named
        relaxation, the old fake's, where Image Push on ``org/*`` creates repositories.
        """
        rule = str(self.hub.settings["oat_new_repositories"])
        if rule == "any":
            return True
        if rule == "never":
            return False
        return any(
            r.get("type") == "TYPE_ORG" and REPOSITORY_CREATE in r.get("scopes", [])
            for r in oat.resources
        )

    def _default_privacy(self, name: str) -> str:
        """The privacy a push gives a new repository: its namespace's default (Public)."""
        return str(self.hub.settings["default_privacy"].get(name.split("/")[0], "public"))

    def _public_pull(self, name: str) -> set[str]:
        """``{"pull"}`` when ``name`` exists and is public (anyone pulls it), else nothing."""
        assert self.front is not None
        privacy = self.hub.privacy.get(name) or self._default_privacy(name)
        return {"pull"} if privacy == "public" and self.front.process.tags(name) else set()

    def registry_token(self, request: Request) -> Response:
        """The registry's token realm (``GET /dockerhub/token``)."""
        assert self.realm is not None
        return self.realm.answer(request)


class _HubFront(RegistryFront):
    """The shared front, plus Docker Hub's limit on anonymous pulls (see the table above):
    a manifest GET with an anonymous token counts against the client's address."""

    def __init__(self, hub: DockerHub, app: App, config: FrontConfig) -> None:
        self.hub = hub
        super().__init__(app, config)

    def refusal(self, http: HttpRequest) -> Response | None:
        """Count an anonymous manifest GET: Docker Hub's 429 past the limit; else let the call
        through (the shared front records the tag's push or pull, for Hub's tag records)."""
        rest = str(http.path_params.get("rest", ""))
        if http.method == "GET" and "/manifests/" in rest and _anonymous(http):
            refused = self.hub.anonymous_pull(http.client.host if http.client else "")
            if refused is not None:
                return refused
        return None


def _anonymous(http: HttpRequest) -> bool:
    """True for a request with a token the realm gave an anonymous caller (no subject)."""
    scheme, _, token = http.headers.get("authorization", "").partition(" ")
    claims = token_claims(token.strip()) if scheme.lower() == "bearer" else None
    return claims is not None and not claims.get("sub")


#: The backend ``server.backends()`` mounts for this provider (``sandbox/<key>/cloud.py``).
BACKEND = DockerHub
