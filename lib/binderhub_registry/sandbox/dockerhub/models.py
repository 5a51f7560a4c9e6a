"""Docker Hub's state: accounts, organizations, access tokens, sessions, and the rules on them.

The sources of each rule are in the package's table (``sandbox/dockerhub/__init__.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ANONYMOUS_PULL_LIMIT",
    "EDITOR_ORG",
    "MEMBER_ORG",
    "OAT_ORG_SCOPES",
    "OAT_REPO_SCOPES",
    "OTHER_ORG",
    "OTHER_USER",
    "PUBLIC_REPOSITORIES",
    "PULL_LIMIT_BODY",
    "PULL_WINDOW",
    "REPOSITORY_CREATE",
    "REPOSITORY_LIST",
    "ROLE_ACTIONS",
    "SCOPE_ACTIONS",
    "SEED_ORG",
    "SEED_USER",
    "SESSION_TTL",
    "SSO_USER",
    "TOTP_DIGITS",
    "TOTP_STEP",
    "TWO_FACTOR_USER",
    "AccessToken",
    "Account",
    "Hub",
    "Org",
    "OrgToken",
    "Session",
    "now",
    "totp",
]

SEED_USER = "binderhubdemo"  # the account the notebooks use in the sandbox
SEED_ORG = "binderhubdemoorg"  # it owns this one (team plan)
EDITOR_ORG = "binderhubeditors"  # it is an editor here (free plan)
MEMBER_ORG = "binderhubmembers"  # a plain member here: may pull, may not create repositories
OTHER_USER = "someoneelse"
OTHER_ORG = "someoneelsesorg"  # an organization it does not belong to
TWO_FACTOR_USER = "binderhub2fa"  # an account with two-factor authentication
SSO_USER = "binderhubsso"  # an account whose organization enforces single sign-on

SESSION_TTL = 600.0  # seconds: "This expires in 10 minutes" (spec)
TOTP_STEP = 30  # seconds a one-time code lives (RFC 6238's default time step)
TOTP_DIGITS = 6  # "the six-digit code" (docker/docs security/2fa)

SCOPE_ACTIONS = {
    "repo:admin": {"pull", "push", "delete"},
    "repo:write": {"pull", "push"},
    "repo:read": {"pull"},
    "repo:public_read": {"pull"},
}
#: An organization access token's repository scopes (TYPE_REPO) and the registry actions
#: each grants: docker/docs content/manuals/security/access-tokens/reference.md ("Repository
#: scopes": Image Push includes Image Pull, Image Delete includes Image Push; the others are
#: Hub API scopes, no registry action).
OAT_REPO_SCOPES: dict[str, set[str]] = {
    "scope-image-pull": {"pull"},
    "scope-image-push": {"pull", "push"},
    "scope-image-delete": {"pull", "push", "delete"},
    **{
        name: set()
        for name in (
            "scope-repository-read",
            "scope-repository-edit",
            "scope-repository-admin",
            "scope-tag-read",
            "scope-tag-admin",
            "scope-webhook-read",
            "scope-webhook-edit",
            "scope-webhook-admin",
            "scope-repo-group-read",
            "scope-repo-group-edit",
            "scope-repo-group-admin",
            "scope-repository-settings-admin",
        )
    },
}
#: Its organization scopes (TYPE_ORG), from the same table ("Organization scopes").
OAT_ORG_SCOPES = frozenset(
    {
        "scope-member-read",
        "scope-member-edit",
        "scope-invite-read",
        "scope-invite-edit",
        "scope-group-read",
        "scope-group-edit",
        "scope-activity-read",
        "scope-siem_credentials-read",
        "scope-ram-read",
        "scope-ram-write",
        "scope-report-read",
        "scope-repository-create",
        "scope-repository-list",
        "scope-registry-usage-read",
    }
)
#: The organization scope that creating a repository takes ("No repository scope grants it").
REPOSITORY_CREATE = "scope-repository-create"
#: The organization scope that lets an OAT list private repositories (reference.md "Listing
#: behavior"); a session's actions carry it, as no registry action does.
REPOSITORY_LIST = "scope-repository-list"
#: The TYPE_REPO path that names every public repository ("Read public repositories").
PUBLIC_REPOSITORIES = "*/*/public"
#: What each organization role may do to its repositories: docker/docs enterprise/security/
#: roles-and-permissions/core-roles.md (members pull; editors "create, edit, and delete
#: repositories" and "Manage tags"; owners all).
ROLE_ACTIONS = {
    "owner": {"pull", "push", "delete"},
    "editor": {"pull", "push", "delete"},
    "member": {"pull"},
}

#: Anonymous pulls per IPv4 address or IPv6 /64 in a window of 6 hours (docker/docs
#: docker-hub/usage/pulls.md).
ANONYMOUS_PULL_LIMIT = 100
PULL_WINDOW = 6 * 3600

#: The registry's answer at the pull limit (docker/docs docker-hub/usage/pulls.md).
PULL_LIMIT_BODY = {
    "errors": [
        {
            "code": "TOOMANYREQUESTS",
            "message": "You have reached your unauthenticated pull rate limit. "
            "https://www.docker.com/increase-rate-limit",
        }
    ]
}


def now() -> str:
    """Now as Hub writes its times: microseconds and Z (spec accessToken's created_at example)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def totp(seed: str, at: float, step: int = TOTP_STEP, digits: int = TOTP_DIGITS) -> str:
    """The RFC 6238 one-time code of the base32 ``seed`` at Unix time ``at``: HMAC-SHA-1 of
    the time step, dynamically truncated as RFC 4226 says (what authenticator apps show)."""
    key = base64.b32decode(seed.upper() + "=" * (-len(seed) % 8))
    mac = hmac.new(key, int(at // step).to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return f"{value % 10**digits:0{digits}d}"


@dataclass
class Account:
    """A Docker ID: its password, and how it signs in."""

    password: str
    totp_seed: str = ""  # two-factor: the authenticator's shared secret (base32)
    sso: bool = False  # single sign-on enforced: the password is refused
    last_step: int = -1  # the time step of the last code accepted: none is taken twice


@dataclass
class Org:
    """An organization: its plan and its members' roles."""

    plan: str  # free, team, business
    roles: dict[str, str]  # username -> owner, editor, member


@dataclass
class AccessToken:
    """A personal access token (``dckr_pat_``)."""

    uuid: str
    user: str
    label: str
    scopes: list[str]
    secret: str
    is_active: bool = True
    created_at: str = ""

    def public(self) -> dict[str, Any]:
        """As the API shows it (the secret only at creation)."""
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
class OrgToken:
    """An organization access token (``dckr_oat_``)."""

    id: str
    org: str
    label: str
    created_by: str
    resources: list[dict[str, Any]]
    secret: str
    is_active: bool = True
    created_at: str = ""

    def public(self) -> dict[str, Any]:
        """As the API shows it."""
        return {
            "id": self.id,
            "label": self.label,
            "created_by": self.created_by,
            "is_active": self.is_active,
            "created_at": self.created_at,
            "expires_at": None,
            "last_used_at": None,
            "resources": self.resources,
        }


@dataclass
class Session:
    """A Hub API bearer token: who, signed in with what, when."""

    user: str
    kind: str  # password, pat, oat
    actions: set[str]
    issued: float


@dataclass
class Hub:
    """The Hub's live state."""

    accounts: dict[str, Account]
    orgs: dict[str, Org]
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    org_tokens: dict[str, OrgToken] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    pending_2fa: dict[str, str] = field(default_factory=dict)  # login_2fa_token -> user
    privacy: dict[str, str] = field(default_factory=dict)  # repository -> public, private
    anonymous_pulls: dict[str, list[float]] = field(default_factory=dict)  # address -> times
    counter: int = 0
    settings: dict[str, Any] = field(
        # default_privacy: namespace -> "public" or "private"; absent: Public, a new account's;
        # anonymous pulls per client address in pull_window seconds (Docker's own figures);
        # oat_new_repositories: "scope" (documented), "never" (stricter), "any" (relaxed);
        # totp_time_offset: seconds added to the clock the one-time codes are checked against
        default_factory=lambda: {
            "session_ttl": SESSION_TTL,
            "default_privacy": {},
            "anonymous_pull_limit": ANONYMOUS_PULL_LIMIT,
            "pull_window": PULL_WINDOW,
            "oat_new_repositories": "scope",
            "totp_time_offset": 0.0,
        }
    )
