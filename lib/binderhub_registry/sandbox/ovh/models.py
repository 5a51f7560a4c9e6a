"""The OVHcloud account's state: one Public Cloud project, its plans, registries and users.

Shapes follow OVH's API schema (``cloud.json``, vendored excerpt in
``tests/data/ovh/cloud-containerRegistry.json``, which ``tests/test_ovh_sandbox.py``
checks every answer against); see the table in the package docstring for each
behaviour's source.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..harbor.models import CURRENT_VERSION, DB_AUTH

__all__ = [
    "ACCESS_RULES",
    "DEFAULT_SETTINGS",
    "OTHER_PROJECT",
    "PLANS",
    "REGIONS",
    "SEED_PROJECT",
    "Account",
    "Host",
    "Registry",
    "User",
    "iso",
    "rule_allows",
    "seed_credentials",
]

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "ovh.sandbox.binderhub-registry")
#: The Public Cloud project (``serviceName``) the seeded consumer key may use: 32 hex digits.
SEED_PROJECT = uuid.uuid5(_NAMESPACE, "project").hex
#: A project of the same account the consumer key was not granted (403 NOT_GRANTED_CALL).
OTHER_PROJECT = uuid.uuid5(_NAMESPACE, "other-project").hex

#: The seeded consumer key's rights: exactly what the OVH notebook needs (method, path with
#: ``*`` matching anything, as in OVH's access rules; ``{sn}`` is the seeded project).
ACCESS_RULES: tuple[tuple[str, str], ...] = (
    ("GET", "/cloud/project/{sn}/capabilities/containerRegistry"),
    ("GET", "/cloud/project/{sn}/containerRegistry"),
    ("POST", "/cloud/project/{sn}/containerRegistry"),
    ("GET", "/cloud/project/{sn}/containerRegistry/*"),
    ("POST", "/cloud/project/{sn}/containerRegistry/*/users"),
    ("PUT", "/cloud/project/{sn}/containerRegistry/*/users/*/setAsAdmin"),
    ("DELETE", "/cloud/project/{sn}/containerRegistry/*"),
)

#: Plans: name -> (id, code, imageStorage bytes, parallelRequest, vulnerability scanning).
#: SMALL and MEDIUM as captured in ovh/ovhcloud-cli's tests; LARGE's id is made up and its
#: limits are OVHcloud's product page figures (5 TB, 90 concurrent connections): assumption.
PLANS: dict[str, tuple[str, str, int, int, bool]] = {
    "SMALL": (
        "9f728ba5-998b-4401-ab0f-497cd8bc6a89",
        "registry.s-plan-equivalent.hour.consumption",
        214748364800,
        15,
        False,
    ),
    "MEDIUM": (
        "c5ddc763-be75-48f7-b7ec-e923ca040bee",
        "registry.m-plan-equivalent.hour.consumption",
        644245094400,
        45,
        True,
    ),
    "LARGE": (
        str(uuid.uuid5(_NAMESPACE, "plan-large")),
        "registry.l-plan-equivalent.hour.consumption",
        5497558138880,
        90,
        True,
    ),
}
#: Regions offering the registry (ovhcloud-cli's captures show GRA, DE and EU-WEST-PAR).
REGIONS = ("GRA", "BHS", "DE", "UK", "WAW", "EU-WEST-PAR")

#: ``/_sandbox/ovh/settings``: GET polls of a registry spent in each transitional status, and
#: what every registry of the account is like (a new registry: a current Harbor with local
#: users, no IAM, no IP restriction; the consumer key validated).
DEFAULT_SETTINGS: dict[str, Any] = {
    "installing_polls": 1,  # INSTALLING answers before DELIVERING
    "delivering_polls": 1,  # DELIVERING answers before READY
    "deleting_polls": 1,  # DELETING answers after a DELETE, before 404
    "harbor_clock_offset_days": 0,  # how far the registries' Harbors run ahead (robots expire)
    "harbor_version": CURRENT_VERSION,  # their Harbors' GET /systeminfo harbor_version
    "auth_mode": DB_AUTH,  # "oidc_auth": an OIDC configuration (…/openIdConnect) is set
    "iam_enabled": False,  # OVHcloud IAM turned on (POST …/iam): Harbor's local users are gone
    "ip_restrictions_management": [],  # [{ipBlock, description}] allowed on Harbor's UI and API
    "ip_restrictions_registry": [],  # [{ipBlock, description}] allowed on the registry (docker)
    "used_bytes": 0,  # every registry's ``size``: the storage its images use
    "consumer_key_pending": False,  # the consumer key awaits validation: 400 Invalid signature
}

_PLAN_DATES = ("2019-09-13T15:53:33.599585Z", "2021-03-29T10:09:03.960847Z")


def iso(when: float) -> str:
    """OVH's datetime format (RFC 3339, UTC, microseconds)."""
    micro = int(when * 1_000_000) % 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{micro:06d}Z"


def plan_body(name: str) -> dict[str, Any]:
    """A ``cloud.containerRegistry.Plan``."""
    plan_id, code, storage, parallel, scanning = PLANS[name]
    return {
        "id": plan_id,
        "name": name,
        "code": code,
        "createdAt": _PLAN_DATES[0],
        "updatedAt": _PLAN_DATES[1],
        "registryLimits": {"imageStorage": storage, "parallelRequest": parallel},
        "features": {"vulnerability": scanning},
    }


def seed_credentials() -> dict[str, str]:
    """A new application key, application secret and consumer key (kept in credentials.json)."""
    return {
        "application_key": secrets.token_hex(8),
        "application_secret": secrets.token_hex(16),
        "consumer_key": secrets.token_hex(16),
        "service_name": SEED_PROJECT,
    }


def rule_allows(rules: tuple[tuple[str, str], ...], method: str, path: str) -> bool:
    """Whether an access rule grants ``method path`` (``*`` matches any characters)."""
    import fnmatch  # small, and only needed when a signed call arrives

    return any(m == method and fnmatch.fnmatchcase(path, p.replace("[", "[[]")) for m, p in rules)


@dataclass
class User:
    """A Harbor user made through OVH's API (``cloud.containerRegistry.User``)."""

    id: str
    user: str
    email: str
    password: str
    admin: bool = False  # a Harbor system admin only once setAsAdmin was called

    def public(self) -> dict[str, Any]:
        """As listed: the password is shown only in the creation's answer."""
        return {"id": self.id, "user": self.user, "email": self.email}


@dataclass
class Registry:
    """A managed private registry and where it is in its life."""

    id: str
    name: str
    project: str
    region: str
    plan: str
    created: float
    status: str = "INSTALLING"
    polls: int = 0  # GETs answered in the current transitional status
    url: str = ""
    updated: float = 0.0
    users: dict[str, User] = field(default_factory=dict)
    harbor: Any = None  # the registry's Harbor (API and registry front), once delivered

    def body(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``cloud.containerRegistry.Registry`` (``version`` and ``iamEnabled`` from the
        account's settings)."""
        release = str(settings["harbor_version"]).removeprefix("v").split("-", 1)[0]
        return {
            "id": self.id,
            "name": self.name,
            "projectID": self.project,
            "region": self.region,
            "size": int(settings["used_bytes"]),
            "status": self.status,
            "createdAt": iso(self.created),
            "updatedAt": iso(self.updated or self.created),
            "url": self.url,
            "version": release,
            "iamEnabled": bool(settings["iam_enabled"]),
        }


@dataclass
class Account:
    """The OVHcloud account: its API application, consumer key, projects and registries."""

    application_key: str
    application_secret: str
    consumer_key: str
    projects: tuple[str, ...] = (SEED_PROJECT, OTHER_PROJECT)
    registries: dict[str, Registry] = field(default_factory=dict)
    counter: int = 0
    settings: dict[str, Any] = field(
        default_factory=lambda: {
            k: list(v) if isinstance(v, list) else v for k, v in DEFAULT_SETTINGS.items()
        }
    )

    def rules(self) -> tuple[tuple[str, str], ...]:
        """The consumer key's access rules, for the seeded project."""
        return tuple((m, p.replace("{sn}", SEED_PROJECT)) for m, p in ACCESS_RULES)

    def next_id(self, kind: str) -> str:
        """A deterministic id: the same run from the seed gives the same ids."""
        self.counter += 1
        return str(uuid.uuid5(_NAMESPACE, f"{kind}-{self.counter}"))

    def capabilities(self) -> list[dict[str, Any]]:
        """``cloud.containerRegistry.Capability[]``: every region with every plan."""
        return [{"regionName": r, "plans": [plan_body(n) for n in PLANS]} for r in REGIONS]

    def plan_named(self, plan_id: str) -> str | None:
        """The plan's name for its id."""
        return next((n for n, p in PLANS.items() if p[0] == plan_id), None)


class Host(Protocol):
    """What the API's routes (:mod:`.api`) use of the backend that serves them
    (:class:`.cloud.OvhCloud`), so that they need not import it: the live account (a reset
    replaces it) and the registries' lives, which start and stop their Harbors."""

    account: Account

    def create_registry(self, project: str, name: str, region: str, plan: str) -> Registry:
        """A new registry, INSTALLING."""
        ...

    def advance(self, registry: Registry) -> Registry | None:
        """Count one GET and answer the status it falls in; None once a deleted one is gone."""
        ...

    def start_deleting(self, registry: Registry) -> None:
        """DELETE: the registry answers DELETING for a while, then 404."""
        ...

    def create_user(self, registry: Registry, login: str, email: str) -> User:
        """A new user of the registry's Harbor."""
        ...

    def set_admin(self, registry: Registry, user: User) -> None:
        """Make ``user`` an administrator of the registry's Harbor."""
        ...

    def delete_user(self, registry: Registry, user: User) -> None:
        """Remove ``user`` from the registry and its Harbor."""
        ...
