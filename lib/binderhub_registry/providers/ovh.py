"""OVHcloud Managed Private Registry (guide section 2.4): a Harbor that OVHcloud runs.

The guide's steps, done with OVHcloud's API through its official client
(``ovh``, python-ovh): choose a plan for the region, create (or reuse) the
registry, wait until it is READY, and generate the Harbor admin credentials;
then the Harbor part (a private project, a robot account for BinderHub and a
pull-only one for user pods) goes through Harbor's own API with :mod:`.harbor`'s
steps, as that admin
(:class:`OvhConnection` is a :class:`~.harbor.HarborConnection`).

What real OVHcloud does, and what this module does about it (the sandbox's
fake, ``sandbox/ovh``, tables the same behaviours with their sources):

- Every call is signed with the application secret and the consumer key; a
  wrong secret is answered 400 "Invalid signature", which says nothing about
  the secret: the message here does.
- A consumer key carries rights (method + path); :data:`RIGHTS` is the least
  this notebook needs, and a call outside them is 403 NOT_GRANTED_CALL.
- python-ovh never retries: 429, 5xx and timeouts raise, and the step runner
  retries them (:func:`is_transient`), the whole step, which looks up first.
- A consumer key still waiting for validation is answered "Invalid signature" too
  (ovh/php-ovh#62): the message names it.
- A new registry is INSTALLING, then DELIVERING, usually for minutes: polled every
  ``poll_seconds``, with progress, for up to 60 minutes (Terraform's provider's timeout).
- Before any user call, :func:`read_settings` reads the registry: OVHcloud IAM
  (``iamEnabled``) or OIDC (Harbor's ``auth_mode``) leave no password sign-in for the user
  made here, and Harbor before 2.2 has no v2 robots: each stops with one line. IP
  restrictions and storage use are shown, with warnings.
- The Harbor user's password is shown once, in the answer that creates it: it
  goes straight into ``output_dir/harbor-admin.json`` (0600), never to the screen. The
  user is made with an email (Terraform's provider requires one) and is no Harbor admin
  until ``setAsAdmin``, which is called then, and again on a rerun that finds it is not.

Credentials come from python-ovh's own lookup (``OVH_APPLICATION_KEY``,
``OVH_APPLICATION_SECRET``, ``OVH_CONSUMER_KEY``, or ``ovh.conf``; or a service
account's OAuth2 ``OVH_CLIENT_ID`` and ``OVH_CLIENT_SECRET``), never from
parameters. In sandbox mode no real variable or file is read: the sandbox's
seeded keys are used, and ``BINDERHUB_REGISTRY_SANDBOX_OVH_SECRET`` rehearses
another application secret.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from html import escape
from ipaddress import ip_network
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .. import sandbox as sandbox_mod
from ..binderhub import RegistryValues
from ..errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    InvalidParameter,
    MissingCredentials,
    PermissionDenied,
    TransientCloudError,
    error_for_status,
    map_exceptions,
    requests_errors,
    retry_after,
)
from ..params import choice, flag, integer, text
from ..secrets import Secret, write_private_file
from ..steps import Result, progress
from ..usage import NotRead, Usage, sandbox_of
from . import harbor
from .contract import (
    COMMON_PARAMETERS,
    CommonParams,
    Deletion,
    GuideEntry,
    RealExample,
    Record,
    creates,
    if_present,
    instant,
    same_time,
    stops_at_plan,
    validator,
)

__all__ = [
    "ADMIN_FILE",
    "GUIDE",
    "KEY",
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "PROJECT_VARIABLE",
    "REAL_EXAMPLE",
    "RIGHTS",
    "OvhConnection",
    "Params",
    "PlanTable",
    "RegistrySettings",
    "ensure_admin_user",
    "ensure_credential",
    "ensure_pull_credential",
    "ensure_registry",
    "list_plans",
    "plan_usage",
    "read_settings",
    "rights_text",
    "sign_in",
    "usage_for_values",
    "validate",
    "wait_until_ready",
]

KEY = "ovh"
NAME = "OVHcloud"
NOTEBOOK = "04-ovh-container-registry"
#: The environment variables sign-in reads for real (never parameters); shown by the form
SECRET_ENVIRONMENT = (
    ("OVH_APPLICATION_KEY", "with the two below, else ovh.conf"),
    ("OVH_APPLICATION_SECRET", "the application's secret"),
    ("OVH_CONSUMER_KEY", "the consumer key with the rights of step 1"),
)
ENDPOINTS = ("ovh-eu", "ovh-ca", "ovh-us")
#: Where to create an application key and a consumer key with given rights, per endpoint.
CREATE_TOKEN = {
    "ovh-eu": "https://eu.api.ovh.com/createToken/",
    "ovh-ca": "https://ca.api.ovh.com/createToken/",
    "ovh-us": "https://api.us.ovhcloud.com/createToken/",
}
#: The least rights (OVH access rules) the notebook's consumer key needs; ``{sn}``: service_name.
RIGHTS: tuple[tuple[str, str], ...] = (
    ("GET", "/cloud/project/{sn}/capabilities/containerRegistry"),
    ("GET", "/cloud/project/{sn}/containerRegistry"),
    ("POST", "/cloud/project/{sn}/containerRegistry"),
    ("GET", "/cloud/project/{sn}/containerRegistry/*"),
    ("POST", "/cloud/project/{sn}/containerRegistry/*/users"),
    ("PUT", "/cloud/project/{sn}/containerRegistry/*/users/*/setAsAdmin"),
    ("DELETE", "/cloud/project/{sn}/containerRegistry/*"),
)
#: The same calls as OVHcloud IAM actions, for OAuth2 service accounts (the vendored schema's
#: ``iamActions`` of each operation above).
IAM_ACTIONS: tuple[str, ...] = (
    "publicCloudProject:apiovh:capabilities/containerRegistry/get",
    "publicCloudProject:apiovh:containerRegistry/get",
    "publicCloudProject:apiovh:containerRegistry/create",
    "publicCloudProject:apiovh:containerRegistry/plan/get",
    "publicCloudProject:apiovh:containerRegistry/ipRestrictions/management/get",
    "publicCloudProject:apiovh:containerRegistry/ipRestrictions/registry/get",
    "publicCloudProject:apiovh:containerRegistry/users/get",
    "publicCloudProject:apiovh:containerRegistry/users/create",
    "publicCloudProject:apiovh:containerRegistry/users/setAsAdmin",
    "publicCloudProject:apiovh:containerRegistry/users/delete",
    "publicCloudProject:apiovh:containerRegistry/delete",
)
#: The name python-ovh knows the sandbox by (it accepts only endpoint names of its ENDPOINTS).
SANDBOX_ENDPOINT = "binderhub-registry-sandbox"
#: Sandbox only: rehearse another application secret (real variables are never read there).
SANDBOX_SECRET_VARIABLE = "BINDERHUB_REGISTRY_SANDBOX_OVH_SECRET"
#: (connect, read) seconds per call; python-ovh's default is 180 s for each.
TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: How long a new registry may take to become READY: as long as Terraform's provider waits
#: (``resource_cloud_project_containerregistry.go``: Create timeout 60 minutes); it usually
#: takes about 3.
READY_WITHIN = 60 * 60.0
#: How long a deleted registry may answer DELETING (Terraform's provider: 30 minutes).
DELETED_WITHIN = 30 * 60.0
#: The Harbor user this notebook asks OVHcloud for, and where its password goes (0600).
ADMIN_LOGIN = "binderhub-admin"
#: The Harbor user's email when a parameters cell has none (Harbor keeps one per local user).
ADMIN_EMAIL = "binderhub-admin@example.org"
#: Storage use (of the plan's) from which the settings step warns.
STORAGE_WARNING = 0.8
ADMIN_FILE = "harbor-admin.json"
#: Seconds this machine's clock may be ahead of OVHcloud's (a lost creation's registry is one
#: created after the request was recorded, give or take this).
CLOCK_SKEW = 300.0
#: The clock the READY wait reads (tests give it another).
_clock = time.monotonic
#: Statuses from which a registry does not become READY by waiting.
_STUCK = ("ERROR", "SUSPENDED", "SUSPENDING", "DELETING", "DELETED")

#: Harbor's own parameters (project, robot, expiry), with Harbor's rules: one definition.
_HARBOR = {param.name: param for param in harbor.PARAMETERS}


PARAMETERS = (
    choice("endpoint", ENDPOINTS),
    text(
        "service_name",
        r"[0-9a-f]{32}",
        "must be a Public Cloud project id: 32 lowercase hexadecimal digits",
    ),
    text(
        "region",
        r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*",
        "must be a registry region in capitals, e.g. GRA, BHS, DE, EU-WEST-PAR",
        max_length=32,
    ),
    choice("plan", ("SMALL", "MEDIUM", "LARGE")),
    text(
        "registry_name",
        r"[A-Za-z0-9][A-Za-z0-9-]{1,61}[A-Za-z0-9]",
        "must be 3 to 63 letters, digits or hyphens, starting and ending with a letter or digit",
    ),
    _HARBOR["harbor_project"],
    _HARBOR["robot_name"],
    _HARBOR["pull_robot_name"],
    _HARBOR["robot_expiry_days"],
    flag("use_admin_user"),
    # ADMIN_EMAIL when missing: parameters cells and scripts from before it still run
    replace(
        text(
            "admin_email",
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
            "must be an email address (name@domain) for the Harbor user OVHcloud makes",
            max_length=254,
        ),
        default=ADMIN_EMAIL,
        required=False,
    ),
    integer("poll_seconds", 1, 300),
    *COMMON_PARAMETERS,
)


@dataclass(frozen=True)
class Params(CommonParams):
    """Validated parameters of the OVH notebook."""

    REPLACED_STOPS: ClassVar[str] = harbor.Params.REPLACED_STOPS  # its robots are Harbor's

    endpoint: str
    service_name: str
    region: str
    plan: str
    registry_name: str
    harbor_project: str
    robot_name: str
    pull_robot_name: str
    robot_expiry_days: int
    use_admin_user: bool
    poll_seconds: int
    admin_email: str = ADMIN_EMAIL

    @property
    def base(self) -> str:
        """The project's path in OVH's API."""
        return f"/cloud/project/{self.service_name}"


def _rotate_fits(p: Params) -> None:
    """OVH's API cannot change a Harbor user's password, so ``rotate`` works on the robot only."""
    if p.rotate and p.use_admin_user:
        raise InvalidParameter(
            "rotate",
            "works on the robot account: not with use_admin_user = True (OVHcloud's API cannot "
            "change the Harbor user's password; delete it with teardown and run again)",
            True,
        )


validate = validator(Params, PARAMETERS, _rotate_fits, harbor.robots_differ)


def rights_text(service_name: str = "<service_name>") -> str:
    """The consumer key's least rights, as one line (method path, ...)."""
    return ", ".join(f"{m} {p.replace('{sn}', service_name)}" for m, p in RIGHTS)


# --- errors -----------------------------------------------------------------------------
def _message(exc: BaseException) -> str:
    """The API's message alone (python-ovh's str() may add a query id on a second line)."""
    text_ = str(exc.args[0]) if exc.args else type(exc).__name__
    line = " ".join(text_.split())
    return line if len(line) <= 200 else line[:199] + "…"


def _status(exc: Any) -> int:
    response = getattr(exc, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


def _error_code(exc: Any) -> str:
    try:
        return str(exc.response.json().get("errorCode", ""))
    except Exception:
        return ""


def _network(exc: Any) -> BinderHubRegistryError:
    """python-ovh's HTTPError wraps requests' exception: map that one (timeouts are transient)."""
    inner = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(inner, Exception):
        for cls, translate in requests_errors(NAME).items():
            if isinstance(inner, cls):
                return translate(inner)
    return TransientCloudError(f"cannot reach {NAME}'s API ({_message(exc)})")


def _any_status(exc: Any) -> BinderHubRegistryError:
    """Any other answer: by status (429 with Retry-After, 5xx: transient)."""
    response = getattr(exc, "response", None)
    status = _status(exc)
    if not status:
        return CloudError(f"{NAME} failed: {_message(exc)}")
    wait = retry_after(response.headers.get("Retry-After")) if response is not None else None
    return error_for_status(f"{NAME}'s API", status, _message(exc), retry_after=wait)


def _signature(exc: Any) -> BinderHubRegistryError:
    """400: a refused signature is a wrong application secret for the key, or a consumer key
    still waiting for validation (ovh/php-ovh#62)."""
    if _error_code(exc) == "INVALID_SIGNATURE" or _message(exc) == "Invalid signature":
        return AuthenticationFailed(
            f"{NAME} refused the request signature: the application secret does not belong to "
            "the application key (check OVH_APPLICATION_SECRET or ovh.conf's "
            "application_secret), or the consumer key is still waiting for validation (open "
            "the validationUrl it came with and log in), or this machine's clock is wrong"
        )
    return CloudError(f"{NAME}'s API answered 400: {_message(exc)}", 400)


def _errors(
    service_name: str = "<service_name>",
) -> dict[type[Exception], Callable[[Any], BinderHubRegistryError]]:
    from ovh import exceptions as oe  # type: ignore[import-untyped]

    keys = "OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and OVH_CONSUMER_KEY (or ovh.conf)"
    return {
        oe.HTTPError: _network,
        oe.InvalidResponse: lambda e: TransientCloudError(
            f"{NAME} answered something that is not JSON (an error page on the way?)"
        ),
        oe.InvalidKey: lambda e: AuthenticationFailed(
            f"{NAME} does not know the application key: check {keys}"
        ),
        oe.InvalidCredential: lambda e: AuthenticationFailed(
            f"{NAME} refused the consumer key (unknown, expired or never validated): create "
            f"one with the rights {rights_text(service_name)} and set {keys}"
        ),
        oe.NotCredential: lambda e: AuthenticationFailed(f"{NAME} got no consumer key: set {keys}"),
        oe.NotGrantedCall: lambda e: PermissionDenied(
            f"the consumer key may not make this call ({_message(e)}): it needs the rights "
            f"{rights_text(service_name)}"
        ),
        oe.Forbidden: lambda e: PermissionDenied(f"{NAME} refused: {_message(e)}"),
        oe.BadParametersError: _signature,
        oe.ResourceNotFoundError: lambda e: CloudError(f"{NAME}: {_message(e)}", 404),
        oe.ResourceConflictError: lambda e: CloudError(f"{NAME}: {_message(e)}", 409),
        oe.InvalidRegion: lambda e: CloudError(f"python-ovh does not know the endpoint: {e}"),
        oe.InvalidConfiguration: lambda e: MissingCredentials(
            f"{NAME}'s API keys are incomplete", _how_to_create()
        ),
        oe.OAuth2FailureError: lambda e: AuthenticationFailed(
            f"{NAME} refused the OAuth2 client credentials: check OVH_CLIENT_ID and "
            "OVH_CLIENT_SECRET (or ovh.conf's client_id and client_secret)"
        ),
        oe.APIError: _any_status,
    }


@contextmanager
def _mapped(service_name: str = "<service_name>") -> Iterator[None]:
    with map_exceptions(_errors(service_name)):
        yield


def _how_to_create(endpoint: str = "ovh-eu") -> str:
    return (
        f"create an application key and a consumer key at {CREATE_TOKEN[endpoint]} with the "
        f"rights {rights_text()}, then set OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and "
        "OVH_CONSUMER_KEY, or write them in ovh.conf (never as notebook parameters); or set "
        "a service account's OAuth2 OVH_CLIENT_ID and OVH_CLIENT_SECRET"
    )


# --- the plans table ----------------------------------------------------------------------
@dataclass(frozen=True)
class PlanTable:
    """The region's plans: storage, concurrent connections, scanning; the chosen one marked."""

    region: str
    chosen: str
    plans: list[dict[str, Any]]

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(mark, name, storage, parallel requests, vulnerability scanning) per plan."""
        out = []
        for plan in self.plans:
            limits = plan.get("registryLimits", {})
            storage = int(limits.get("imageStorage", 0))
            scanning = "yes" if plan.get("features", {}).get("vulnerability") else "no"
            out.append(
                (
                    "→" if plan.get("name") == self.chosen else "",
                    str(plan.get("name", "")),
                    f"{storage / 2**30:,.0f} GiB",
                    str(limits.get("parallelRequest", "")),
                    scanning,
                )
            )
        return out

    _HEAD = ("", "plan", "storage", "concurrent connections", "vulnerability scanning")

    def __repr__(self) -> str:
        lines = [" | ".join(self._HEAD)] + [" | ".join(r) for r in self.rows()]
        return f"plans in {self.region}:\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        td = '<td style="text-align:left">'
        head = "".join(f'<th style="text-align:left">{escape(h)}</th>' for h in self._HEAD)
        body = "".join(
            "<tr>" + "".join(f"{td}{escape(c)}</td>" for c in row) + "</tr>" for row in self.rows()
        )
        return f"<p>plans in {escape(self.region)}</p><table><tr>{head}</tr>{body}</table>"


# --- the connection ---------------------------------------------------------------------
@dataclass
class OvhConnection(harbor.HarborConnection):
    """A signed python-ovh client on one Public Cloud project, the registry once known, and
    its Harbor (``api``: :class:`~.harbor.HarborAPI` as the admin user, once READY)."""

    NOTEBOOK = NOTEBOOK
    HINTS = harbor.HINTS

    params: Params
    client: Any = None  # ovh.Client
    capabilities: list[dict[str, Any]] = field(default_factory=list)
    poll: float = 2.0  # seconds between registry polls
    registry: dict[str, Any] | None = None  # cloud.containerRegistry.Registry, once found or made
    admin_username: str = ""
    admin: Secret | None = field(default=None, repr=False)  # the Harbor admin's password
    settings: RegistrySettings | None = None  # read before any user call (read_settings)

    def call(self, method: str, path: str, **body: Any) -> Any:
        """One OVH API call under the project (``path`` relative to it), errors mapped."""
        target = self.params.base + path
        with _mapped(self.params.service_name):
            if method == "GET":
                return self.client.get(target)
            if method == "POST":
                return self.client.post(target, **body)
            if method == "PUT":
                return self.client.put(target, **body)
            return self.client.delete(target)

    @property
    def host(self) -> str:
        """The registry's host (Harbor's), from its URL."""
        url = str((self.registry or {}).get("url", ""))
        return url.split("://", 1)[-1].rstrip("/")

    @property
    def admin_file(self) -> Path:
        """Where the Harbor admin's password is kept (0600)."""
        return self.params.output_dir / ADMIN_FILE

    def storage_used(self) -> Usage | None:
        """The registry's ``size`` against its plan's ``registryLimits.imageStorage`` (OVHcloud's
        figures: the plan caps storage, so a full registry refuses pushes)."""
        rid = (self.registry or {}).get("id")
        if not rid or self.client is None:
            return None
        registry = self.call("GET", f"/containerRegistry/{rid}")
        plan = self.call("GET", f"/containerRegistry/{rid}/plan")
        return plan_usage(registry, plan, self.params.plan)

    def harbor(self) -> harbor.HarborAPI:
        """Harbor's API as the admin; in a teardown, from the stored admin file."""
        if self.api is None:
            stored = _read_admin(self)
            if stored and stored.get("url") and stored.get("password"):
                self.api = harbor.HarborAPI(
                    str(stored["url"]),
                    str(stored["username"]),
                    Secret(str(stored["password"])),
                    self.ca_file,
                )
        return super().harbor()

    def values(self) -> RegistryValues | None:
        """BinderHub's values: the Harbor project on the registry's host, as robot or admin."""
        p = self.params
        if not p.use_admin_user:
            return super().values()
        if self.secret is None or self.api is None:
            return None
        return harbor.harbor_values(
            self.api.url, p.harbor_project, p.prefix, self.admin_username, self.secret
        )

    def deletions(self) -> list[Deletion]:
        """Robot and project (Harbor's), the Harbor user, then the registry: only what this
        notebook recorded creating. In a registry it created, the Harbor parts go with it
        when Harbor cannot be reached any more."""
        recorded = self.record.created.get("registry") or {}
        name = recorded.get("name") if isinstance(recorded, dict) else None
        name = name or self.params.registry_name
        return [
            *(Deletion(d.kind, d.label, self._in_harbor(d.action)) for d in super().deletions()),
            Deletion("admin_user", f"Harbor user {ADMIN_LOGIN}", self._delete_admin),
            Deletion("registry", f"registry {name}", self._delete_registry),
        ]

    def _in_harbor(self, action: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(recorded: Any) -> Any:
            return action(recorded) if self._harbor_answers() else None

        return run

    def _harbor_answers(self) -> bool:
        """Whether Harbor's API can be reached as the admin; False when it cannot but the
        registry is this deployment's, so its Harbor parts go with it (else the error)."""
        try:
            self.harbor()
        except CloudError:
            if (self.record.created.get("registry") or {}).get("id"):
                return False
            raise
        return True

    def registries_named(self, name: str) -> list[dict[str, Any]]:
        """The project's registries called ``name`` (OVHcloud does not keep names unique)."""
        return [r for r in self.call("GET", "/containerRegistry") if r.get("name") == name]

    # --- ours only ---------------------------------------------------------------------------
    def live_registry(self, recorded: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded registry as OVHcloud shows it now (None: gone), proven this
        deployment's; else one line naming the recorded and the live one.

        OVHcloud keeps no label or description on a registry (cloud.containerRegistry.Registry:
        id, name, createdAt, ...), so its marks are its id, its name and its ``createdAt``,
        recorded at the creation. A record from before (no ``createdAt``) is accepted when the
        name and id match; a rerun then records ``createdAt``. A creation whose answer was lost
        (no id) counts only a registry of that name created after the request was recorded.
        """
        if not isinstance(recorded, dict):
            raise PermissionDenied(f"'registry' in {self.record.path} is not an object: fix it")
        if not recorded.get("id"):
            return self._pending_registry(recorded)
        live: dict[str, Any] | None = if_present(
            self.call, "GET", f"/containerRegistry/{recorded['id']}"
        )
        if live is None:
            return None
        problem = _registry_mismatch(self, recorded, live)
        if problem:
            raise PermissionDenied(problem)
        return live

    def _pending_registry(self, recorded: dict[str, Any]) -> dict[str, Any] | None:
        name = str(recorded.get("name", ""))
        found = self.registries_named(name)
        if len(found) != 1:
            return None
        requested = instant(recorded.get("requested"))
        made = instant(found[0].get("createdAt"))
        if requested is None or made is None or made < requested - CLOCK_SKEW:
            asked = f", requested {recorded['requested']}" if recorded.get("requested") else ""
            raise PermissionDenied(
                f"registry recorded as {name!r} (being created{asked}) is "
                f"{_registry_text(found[0])} in {NAME}, created before this deployment asked for "
                "one (or at an unknown time): nothing more is deleted; delete it in the Control "
                f"Panel yourself if it is yours, and remove 'registry' from {self.record.path}"
            )
        pending: dict[str, Any] = found[0]
        return pending

    def live_admin(self, user: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded Harbor user as OVHcloud lists it (None: gone), with the recorded id,
        login and registry (OVHcloud keeps no creation time or label on users:
        cloud.containerRegistry.User is id, user, email); else one line naming both."""
        registry = user.get("registry") if isinstance(user, dict) else None
        registry = registry or self._recorded_registry_id()
        if not isinstance(user, dict) or not registry or not user.get("id"):
            return None
        expected = self._recorded_registry_id()
        if expected is None:  # a registry it reused: the one registry_name names
            named = self.registries_named(self.params.registry_name)
            expected = str(named[0]["id"]) if len(named) == 1 else None
        if str(registry) != expected:
            raise PermissionDenied(
                f"Harbor user recorded as {user.get('login')!r} (id {user['id']}) in registry "
                f"{registry} is not in this deployment's registry ({expected or 'none found'}): "
                "nothing more is deleted; delete it yourself if it is yours, and remove "
                f"'admin_user' from {self.record.path}"
            )
        users = if_present(self.call, "GET", f"/containerRegistry/{registry}/users")
        if users is None:
            return None
        found = next((u for u in users if str(u.get("id")) == str(user["id"])), None)
        if found is None:
            return None
        if found.get("user") != user.get("login"):
            raise PermissionDenied(
                f"Harbor user recorded as {user.get('login')!r} (id {user['id']}, registry "
                f"{registry}) is {found.get('user')!r} (id {found.get('id')}) in {NAME}: it is "
                "not this deployment's, so nothing more is deleted; delete it yourself if it is "
                f"yours, and remove 'admin_user' from {self.record.path}"
            )
        user_found: dict[str, Any] = found
        return user_found

    def check_ours(self) -> None:
        """Before teardown deletes anything: the recorded registry and Harbor user are this
        deployment's, then (when Harbor answers) its robots and project
        (:meth:`~.harbor.HarborConnection.check_ours`)."""
        created = self.record.created
        if created.get("registry"):
            self.live_registry(created["registry"])
        if created.get("admin_user"):
            self.live_admin(created["admin_user"])
        if self._harbor_answers():  # else its Harbor parts go with the registry, ours
            super().check_ours()

    # --- deletions ------------------------------------------------------------------------
    def _delete_admin(self, user: dict[str, Any]) -> None:
        live = self.live_admin(user)
        if live is not None:
            registry = user.get("registry") or self._recorded_registry_id()
            if_present(self.call, "DELETE", f"/containerRegistry/{registry}/users/{live['id']}")
        self.admin_file.unlink(missing_ok=True)

    def _recorded_registry_id(self) -> str | None:
        recorded = self.record.created.get("registry") or {}
        found = recorded.get("id") or (self.registry or {}).get("id")
        return str(found) if found else None

    def _delete_registry(self, recorded: dict[str, Any]) -> None:
        live = self.live_registry(recorded)
        if live is None:
            return
        path = f"/containerRegistry/{live['id']}"
        if_present(self.call, "DELETE", path)  # gone already: the wait below sees it at once
        deadline = time.monotonic() + DELETED_WITHIN
        while time.monotonic() < deadline:  # OVH answers DELETING for a while, then 404
            now = if_present(self.call, "GET", path)
            if now is None or now["status"] == "DELETED":
                return
            progress(f"registry {recorded.get('name')}: {now['status']}")
            time.sleep(self.poll)
        raise TransientCloudError(f"{NAME}: the registry is still being deleted")


def _registry_text(registry: dict[str, Any]) -> str:
    return (
        f"{registry.get('name')!r} (id {registry.get('id')}, created "
        f"{registry.get('createdAt') or 'unrecorded'})"
    )


def _registry_mismatch(conn: OvhConnection, recorded: dict[str, Any], live: dict[str, Any]) -> str:
    """Why the live registry is not the one recorded (empty: it is): id, name, createdAt."""
    problems = []
    if str(live.get("id")) != str(recorded.get("id")):
        problems.append("another id")
    if live.get("name") != recorded.get("name"):
        problems.append("another name")
    created = recorded.get("createdAt")
    if created and not same_time(created, live.get("createdAt")):
        problems.append("another creation time")
    if not problems:
        return ""
    return (
        f"registry recorded as {_registry_text(recorded)} is {_registry_text(live)} in {NAME} "
        f"({'; '.join(problems)}): it is not this deployment's, so nothing more is deleted; "
        f"delete it in the Control Panel yourself if it is yours, and remove 'registry' from "
        f"{conn.record.path}"
    )


def _registry_record(registry: dict[str, Any]) -> dict[str, Any]:
    """What the record keeps of a registry: its name, id and OVHcloud's ``createdAt``."""
    return {"name": registry["name"], "id": registry["id"], "createdAt": registry.get("createdAt")}


# --- sign-in ------------------------------------------------------------------------------
def _real_client(p: Params) -> tuple[Any, str]:
    """python-ovh's client with its own credential lookup (environment, then ovh.conf)."""
    import ovh
    from ovh.config import ConfigurationManager  # type: ignore[import-untyped]

    lookup = ConfigurationManager()
    if lookup.get(p.endpoint, "client_id") or lookup.get(p.endpoint, "client_secret"):
        # python-ovh's OAuth2 client credentials flow (a service account; ovh >= 1.2.0)
        pair = [n for n in ("client_id", "client_secret") if not lookup.get(p.endpoint, n)]
        if pair:
            raise MissingCredentials(
                f"no OVHcloud OAuth2 {pair[0].replace('_', ' ')} for {p.endpoint}",
                "set both OVH_CLIENT_ID and OVH_CLIENT_SECRET (or client_id and client_secret "
                "in ovh.conf), and no application key beside them",
            )
        source = "the environment" if os.environ.get("OVH_CLIENT_ID") else "ovh.conf"
        with _mapped():
            client = ovh.Client(endpoint=p.endpoint, timeout=TIMEOUT)
        return client, f"{source} (OAuth2 client credentials)"
    names = ("application_key", "application_secret", "consumer_key")
    missing = [n.replace("_", " ") for n in names if not lookup.get(p.endpoint, n)]
    if missing:
        listed = " and ".join([", ".join(missing[:-1]), missing[-1]] if missing[:-1] else missing)
        raise MissingCredentials(
            f"no OVHcloud {listed} for {p.endpoint}",
            _how_to_create(p.endpoint),
        )
    source = "the environment" if os.environ.get("OVH_APPLICATION_KEY") else "ovh.conf"
    with _mapped():
        return ovh.Client(endpoint=p.endpoint, timeout=TIMEOUT), source


def _sandbox_client(p: Params | None = None) -> tuple[Any, str, str]:
    """A client of the sandbox's OVH API with its seeded keys; (client, CA file, source)."""
    import ovh

    box = sandbox_mod.ensure()
    # python-ovh takes endpoint names only: the sandbox is registered under its own name
    ovh.client.ENDPOINTS[SANDBOX_ENDPOINT] = f"{box.url}/ovh/1.0"
    seeded = box.credentials("ovh")
    secret = os.environ.get(SANDBOX_SECRET_VARIABLE) or seeded["application_secret"]
    source = SANDBOX_SECRET_VARIABLE if os.environ.get(SANDBOX_SECRET_VARIABLE) else "seeded"
    with _mapped():
        client = ovh.Client(
            endpoint=SANDBOX_ENDPOINT,
            application_key=seeded["application_key"],
            application_secret=secret,
            consumer_key=seeded["consumer_key"],
            timeout=TIMEOUT,
        )
    # python-ovh has no CA option: trust the sandbox's CA on its requests session (no proxies)
    client._session.verify = box.ca_file
    client._session.trust_env = False
    return client, box.ca_file, source


def sign_in(p: Params) -> Result[OvhConnection]:
    """Sign OVHcloud API calls (the guide's "log in to the OVH Control Panel").

    Proven with one signed call that the notebook needs anyway: the project's
    registry capabilities (the plans of every region).
    """
    ca_file: str | None = None
    if p.sandbox:
        client, ca_file, source = _sandbox_client(p)
        where = "the sandbox's OVHcloud API"
        how = "its seeded keys" if source == "seeded" else f"the secret from {source}"
    else:
        client, source = _real_client(p)
        where, how = f"OVHcloud ({p.endpoint})", f"the keys from {source}"
    conn = OvhConnection(
        params=p,
        record=Record(p.output_dir, KEY),
        ca_file=ca_file,
        client=client,
        poll=0.002 if p.sandbox else float(p.poll_seconds),
    )
    conn.capabilities = conn.call("GET", "/capabilities/containerRegistry")
    return Result(conn, "done", f"signed in to {where} with {how}, project {p.service_name}")


# --- the guide's steps ----------------------------------------------------------------------
def _plans(conn: OvhConnection) -> list[dict[str, Any]]:
    p = conn.params
    regions = {str(c.get("regionName")): c.get("plans", []) for c in conn.capabilities}
    if p.region not in regions:
        raise CloudError(
            f"parameter 'region': {p.region} offers no managed registry to project "
            f"{p.service_name}; regions that do: {', '.join(sorted(regions)) or 'none'}"
        )
    return list(regions[p.region])


def list_plans(conn: OvhConnection) -> Result[PlanTable]:
    """The region's plans as a table (storage, concurrent connections); the chosen one marked."""
    p = conn.params
    plans = _plans(conn)
    if not any(plan.get("name") == p.plan for plan in plans):
        offered = ", ".join(str(plan.get("name")) for plan in plans)
        raise CloudError(f"parameter 'plan': {p.plan} is not offered in {p.region} ({offered})")
    table = PlanTable(p.region, p.plan, plans)
    return Result(table, "done", f"{len(plans)} plans in {p.region}; {p.plan} chosen")


def _plan_id(conn: OvhConnection) -> str:
    return str(next(x["id"] for x in _plans(conn) if x.get("name") == conn.params.plan))


@creates
def ensure_registry(conn: OvhConnection) -> Result[dict[str, Any] | None]:
    """Reuse the registry named ``registry_name``, else create it (INSTALLING at first).

    The creation is recorded before the call, so a registry whose answer was
    lost is found by name on the rerun and counted as this notebook's.
    """
    p = conn.params
    recorded = conn.record.created.get("registry") or {}
    named = conn.registries_named(p.registry_name)
    if len(named) > 1:
        raise CloudError(
            f"parameter 'registry_name': {len(named)} registries of project {p.service_name} are "
            f"named {p.registry_name!r}; rename one, or choose another name"
        )
    if named:
        found = named[0]
        if found.get("region") and found["region"] != p.region:
            raise CloudError(
                f"parameter 'region': registry {p.registry_name!r} exists in {found['region']}, "
                f"not {p.region}: set region = {found['region']!r} or choose another registry_name"
            )
        conn.registry = found
        ours = False
        if recorded.get("name") == p.registry_name and recorded.get("id") is None:
            conn.live_registry(recorded)  # made by a run whose answer was lost, after asking
            ours = True
            conn.note("registry", _registry_record(found))
        elif recorded.get("name") == p.registry_name and recorded.get("id") == found["id"]:
            problem = _registry_mismatch(conn, recorded, found)
            if problem:
                raise PermissionDenied(problem)
            ours = True
            if not recorded.get("createdAt"):  # recorded before createdAt was: name and id match
                conn.note("registry", _registry_record(found))
        whose = "" if ours else " (not created by this notebook: teardown leaves it)"
        return Result(found, "reused", f"registry {p.registry_name} ({found['status']}){whose}")
    plan_id = _plan_id(conn)
    created: dict[str, Any] = conn.create(
        "registry",
        f"create registry {p.registry_name} ({p.plan}) in {p.region}",
        lambda: conn.call(
            "POST", "/containerRegistry", name=p.registry_name, region=p.region, planID=plan_id
        ),
        # no id until OVHcloud answers: a rerun counts only a registry made after this time
        pending={
            "name": p.registry_name,
            "id": None,
            "requested": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        keep=_registry_record,
    )
    conn.registry = created
    return Result(
        created,
        "created",
        f"registry {p.registry_name} ({p.plan}) in {p.region}: {created.get('status')}",
    )


def wait_until_ready(conn: OvhConnection) -> Result[dict[str, Any] | None]:
    """Poll the registry until READY (INSTALLING and DELIVERING take minutes for real)."""
    p = conn.params
    if conn.registry is None:
        why = "teardown" if p.teardown else "dry run: the registry does not exist yet"
        return Result(None, "skipped", why)
    started = _clock()
    registry, polls = conn.registry, 0
    while registry.get("status") != "READY":
        status = str(registry.get("status"))
        if status in _STUCK:
            raise CloudError(
                f"registry {p.registry_name} is {status}: see the OVHcloud Control Panel"
            )
        waited = _clock() - started
        if waited > READY_WITHIN:
            raise CloudError(
                f"registry {p.registry_name} is still {status} after {waited / 60:.0f} minutes: "
                "rerun later (it is recorded, nothing is created twice)"
            )
        progress(
            f"{status}: waited {_duration(waited)} of up to {READY_WITHIN / 60:.0f} minutes "
            "(a new registry usually takes about 3)"
        )
        if polls:
            time.sleep(conn.poll)
        registry = conn.call("GET", f"/containerRegistry/{registry['id']}")
        polls += 1
    conn.registry = registry
    if not polls:
        return Result(registry, "reused", f"registry {p.registry_name} is READY at {conn.host}")
    return Result(
        registry, "done", f"registry {p.registry_name} READY at {conn.host} after {polls} polls"
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f} min"


# --- the registry's settings, read before any user call -------------------------------------
@dataclass(frozen=True)
class RegistrySettings:
    """What decides whether this notebook can work with the registry, and what to watch."""

    registry: str
    harbor: harbor.SystemInfo
    iam_enabled: bool
    management: list[str]  # IP blocks allowed on Harbor's UI and API (none: any)
    registry_ips: list[str]  # IP blocks allowed on the registry itself (none: any)
    used: int  # bytes
    plan: str
    storage: int  # the plan's bytes
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        """(setting, value) per line of the table."""
        share = f" ({self.used / self.storage:.0%})" if self.storage else ""
        return [
            ("Harbor", harbor.version_text(self.harbor).removeprefix("Harbor ")),
            ("sign-in", self.harbor.auth_mode or "not shown"),
            ("OVHcloud IAM", "on" if self.iam_enabled else "off"),
            ("IPs allowed on Harbor's API", ", ".join(self.management) or "any"),
            ("IPs allowed on the registry", ", ".join(self.registry_ips) or "any"),
            ("storage", f"{_gib(self.used)} used of {_gib(self.storage)} ({self.plan}){share}"),
        ]

    def __repr__(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.rows()] + [f"warning: {w}" for w in self.warnings]
        return f"registry {self.registry}:\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        td = '<td style="text-align:left">'
        body = "".join(f"<tr>{td}{escape(k)}</td>{td}{escape(v)}</td></tr>" for k, v in self.rows())
        notes = "".join(f"<p>warning: {escape(w)}</p>" for w in self.warnings)
        return f"<p>registry {escape(self.registry)}</p><table>{body}</table>{notes}"


def _gib(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB" if size < 100 * 2**30 else f"{size / 2**30:,.0f} GiB"


def _blocks(entries: Any, where: str) -> list[str]:
    if not isinstance(entries, list):
        raise CloudError(f"{NAME} answered {where} with an unexpected body: not a list")
    return [str(e.get("ipBlock", "")) for e in entries if isinstance(e, dict)]


def _lets_in_anything(blocks: list[str]) -> bool:
    """Whether the blocks allow any address (0.0.0.0/0 or ::/0), or there are none."""
    for block in blocks:
        try:
            if ip_network(block, strict=False).prefixlen == 0:
                return True
        except ValueError:
            continue
    return not blocks


def _ready(conn: OvhConnection, would: str) -> dict[str, Any]:
    """The registry, READY; before that (a dry run, which made none) the step stops at ``would``."""
    registry = conn.registry
    if registry is None or registry.get("status") != "READY":
        conn.plan(would)
        status = (registry or {}).get("status", "not made")
        raise RuntimeError(
            f"registry {conn.params.registry_name} is {status}, not READY: run the steps before "
            "this one first (wait_until_ready)"
        )
    return registry


@stops_at_plan
def read_settings(conn: OvhConnection) -> Result[RegistrySettings | None]:
    """Read what decides whether this notebook can work with the registry, before any user
    call: OVHcloud IAM (``iamEnabled``), its Harbor's version and sign-in mode
    (``GET /api/v2.0/systeminfo``, which Harbor answers anyone), the IP restrictions, and the
    storage used of the plan's. Stops with one line on IAM, OIDC or a Harbor before 2.2."""
    p = conn.params
    if p.teardown:
        return Result(None, "skipped", "teardown")
    rid = _ready(conn, "read the registry's settings once READY")["id"]
    registry = conn.call("GET", f"/containerRegistry/{rid}")
    conn.registry = registry
    name = p.registry_name
    if registry.get("iamEnabled"):
        raise CloudError(
            f"registry {name} has OVHcloud IAM turned on: its Harbor then has no local users, "
            "so the Harbor user this notebook makes could not sign in; turn IAM off for this "
            f"registry in the Control Panel (the API: DELETE .../containerRegistry/{rid}/iam), "
            "or choose another registry_name"
        )
    management = _blocks(
        conn.call("GET", f"/containerRegistry/{rid}/ipRestrictions/management"),
        "ipRestrictions/management",
    )
    try:
        info = harbor.system_info(f"https://{conn.host}", conn.ca_file)
    except BinderHubRegistryError as e:
        if _lets_in_anything(management):
            raise
        raise CloudError(
            f"cannot read registry {name}'s Harbor ({e}); its UI and API answer only "
            f"{', '.join(management)} (ipRestrictions/management): this machine's address must "
            "be among them"
        ) from None
    if info.auth_mode == harbor.OIDC_AUTH:
        raise CloudError(
            f"registry {name}'s Harbor signs users in through OIDC (auth_mode {info.auth_mode}): "
            "it then takes a password only from its first admin (user id 1), never from the "
            "Harbor user this notebook makes; remove the registry's OIDC configuration "
            f"(Control Panel, or DELETE .../containerRegistry/{rid}/openIdConnect), or choose "
            "another registry_name"
        )
    harbor.require_version(info, f"registry {name}")
    registry_ips = _blocks(
        conn.call("GET", f"/containerRegistry/{rid}/ipRestrictions/registry"),
        "ipRestrictions/registry",
    )
    plan = conn.call("GET", f"/containerRegistry/{rid}/plan")
    storage = int((plan.get("registryLimits") or {}).get("imageStorage") or 0)
    used = int(registry.get("size") or 0)
    warnings = []
    if not _lets_in_anything(management):
        warnings.append(
            f"Harbor's UI and API answer only {', '.join(management)}: this machine (and "
            "anything running binderhub-registry verify) must reach it from there"
        )
    if not _lets_in_anything(registry_ips):
        warnings.append(
            f"the registry answers only {', '.join(registry_ips)}: the cluster's nodes (build "
            "pods push, kubelets pull, each from the nodes' outgoing address) and this machine "
            "(the verification pushes) must be in them, or every push and pull fails"
        )
    if storage and used >= STORAGE_WARNING * storage:
        warnings.append(
            f"{_gib(used)} of the plan's {_gib(storage)} are used: a full registry refuses "
            "pushes; move to a larger plan, or have Harbor delete old images (retention, "
            "garbage collection)"
        )
    found = RegistrySettings(
        name,
        info,
        False,
        management,
        registry_ips,
        used,
        str(plan.get("name") or p.plan),
        storage,
        warnings,
    )
    conn.settings = found
    detail = f"{harbor.version_text(info)}, local users; {_gib(used)} of {_gib(storage)} used"
    if warnings:
        detail += f"; {len(warnings)} warning{'s' if len(warnings) > 1 else ''} (below)"
    return Result(found, "done", detail)


def _admin_works(conn: OvhConnection, username: str, password: Secret) -> dict[str, Any] | None:
    """Harbor's ``/users/current`` for the stored user, None when Harbor refuses it; when it
    takes it, its API is the connection's."""
    api = harbor.HarborAPI(f"https://{conn.host}", username, password, conn.ca_file)
    try:
        user = api.current_user()
    except AuthenticationFailed:
        return None
    conn.api = api
    return user


def _read_admin(conn: OvhConnection) -> dict[str, Any] | None:
    try:
        data = json.loads(conn.admin_file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@creates
def ensure_admin_user(conn: OvhConnection) -> Result[str | None]:
    """The guide's "generate the Harbor identification details", once.

    OVHcloud shows the password only in the answer that creates the user: it
    goes straight into ``harbor-admin.json`` (0600) and is reused by reruns
    while that user exists. A user this notebook made whose password was lost is
    deleted and made again; a user of that name it did not make is left alone.
    """
    p = conn.params
    registry = _ready(conn, f"create Harbor user {ADMIN_LOGIN} once READY")
    if conn.settings is None:  # IAM, OIDC and the version first: before any user call
        read_settings(conn)
    base = f"/containerRegistry/{registry['id']}/users"
    users = conn.call("GET", base)
    stored = _read_admin(conn)
    live = {str(u.get("id")): u for u in users}
    signed_in = (
        _admin_works(conn, str(stored["username"]), Secret(str(stored["password"])))
        if stored
        and stored.get("registry") == registry["id"]
        and str(stored.get("id")) in live
        and stored.get("password")
        else None
    )
    if stored and signed_in is not None:
        conn.admin_username, conn.admin = str(stored["username"]), Secret(str(stored["password"]))
        made_admin = _ensure_sysadmin(conn, base, str(stored["id"]), signed_in)
        return Result(
            conn.admin_username,
            "reused",
            f"Harbor user {conn.admin_username}{made_admin}, password kept in {conn.admin_file} "
            "(0600)",
        )
    recorded = conn.record.created.get("admin_user") or {}
    existing = next((u for u in users if u.get("user") == ADMIN_LOGIN), None)
    mine = (
        recorded.get("login") == ADMIN_LOGIN
        and recorded.get("registry") == registry["id"]
        and recorded.get("id") in (None, (existing or {}).get("id"))
    )
    if existing is not None and not mine:
        raise PermissionDenied(
            f"registry {p.registry_name} already has a Harbor user {ADMIN_LOGIN!r} that this "
            f"notebook did not create, and its password is not in {conn.admin_file}: delete "
            "that user in the OVHcloud Control Panel, or use another output_dir's record"
        )
    again = " (its password was lost: it is made again)" if existing else ""
    mark = {"login": ADMIN_LOGIN, "id": None, "registry": registry["id"]}
    made = conn.create(
        "admin_user",
        f"create Harbor user {ADMIN_LOGIN}{again}",
        lambda: _new_admin(conn, base, existing),
        pending=mark,
        keep=lambda user: mark | {"id": user["id"]},
    )
    conn.admin_username, conn.admin = str(made["user"]), Secret(str(made["password"]))
    conn.api = harbor.HarborAPI(
        f"https://{conn.host}", conn.admin_username, conn.admin, conn.ca_file
    )
    conn.call("PUT", f"{base}/{made['id']}/setAsAdmin")  # a new user is no Harbor admin
    return Result(
        conn.admin_username,
        "created",
        f"Harbor user {conn.admin_username}, a system admin (setAsAdmin); its password went "
        f"straight to {conn.admin_file} (0600), shown nowhere",
    )


def _new_admin(conn: OvhConnection, base: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    """Ask OVHcloud for the Harbor user (``existing``, ours but its password lost, deleted
    first); its password, shown only in this answer, goes straight into the admin file (0600)."""
    if existing is not None:
        conn.call("DELETE", f"{base}/{existing['id']}")
    made: dict[str, Any] = conn.call("POST", base, login=ADMIN_LOGIN, email=conn.params.admin_email)
    kept = {
        "registry": (conn.registry or {})["id"],
        "url": f"https://{conn.host}",
        "id": made["id"],
        "username": made["user"],
        "password": made["password"],
    }
    write_private_file(conn.admin_file, json.dumps(kept))
    return made


def _ensure_sysadmin(conn: OvhConnection, base: str, user_id: str, current: dict[str, Any]) -> str:
    """Make the stored Harbor user a system admin when Harbor says it is not one
    (``current``: its ``/users/current``; a run stopped between the creation and
    ``setAsAdmin``); '' when it was one already."""
    if current.get("sysadmin_flag"):
        return ""
    conn.plan(
        f"make Harbor user {conn.admin_username} a system admin (setAsAdmin)", conn.admin_username
    )
    conn.call("PUT", f"{base}/{user_id}/setAsAdmin")
    return " (made a system admin: setAsAdmin)"


@creates
def ensure_credential(conn: OvhConnection) -> Result[Secret | None]:
    """BinderHub's credential: the project robot (:func:`~.harbor.ensure_robot`), or with
    ``use_admin_user`` the guide's way, the Harbor admin user itself."""
    p = conn.params
    if not p.use_admin_user:
        return harbor.ensure_robot(conn)
    if conn.admin is None:  # a dry run that made no Harbor user
        conn.plan(f"give BinderHub the Harbor user {ADMIN_LOGIN}")
        raise RuntimeError(
            f"no Harbor user {ADMIN_LOGIN} yet: run the step before this one first "
            "(ensure_admin_user)"
        )
    conn.secret = conn.admin
    return Result(
        conn.secret,
        "reused",
        f"BinderHub pushes as the Harbor user {conn.admin_username} (use_admin_user = True: it "
        "administers the whole Harbor; a project robot can only push and pull)",
    )


@creates
def ensure_pull_credential(conn: OvhConnection) -> Result[Secret | None]:
    """User pods' pull: Harbor's pull-only project robot (:func:`~.harbor.ensure_pull_credential`),
    made with the Harbor user OVHcloud created, as BinderHub's robot is; with ``use_admin_user``
    too (user pods never get that admin)."""
    return harbor.ensure_pull_credential(conn)


def _real_values(params: Any) -> RegistryValues:
    """The values of a real run with ``params`` (the docs' example)."""
    conn = OvhConnection.__new__(OvhConnection)
    conn.params, conn.secret = params, Secret("robot-secret")
    # the URL OVHcloud gives a registry (https://<id>.<region>.container-registry.ovh.net,
    # as terraform-provider-ovh parses it), and its robot as Harbor names it
    url = f"https://registry-id.{params.region.lower()}.container-registry.ovh.net"
    conn.registry = {"url": url}
    conn.api = harbor.HarborAPI(url, ADMIN_LOGIN, Secret("admin-password"))
    conn.robot = {"name": f"robot${params.harbor_project}+{params.robot_name}"}
    conn.admin_username = ADMIN_LOGIN
    values = conn.values()
    assert values is not None
    return values


#: The docs' real-mode example of this notebook's values.
REAL_EXAMPLE = RealExample(
    overrides={"service_name": "0123456789abcdef0123456789abcdef"},
    placeholders={"registry-id": "<REGISTRY_ID>"},
    build=_real_values,
)


#: This registry on the docs' landing page: its row of the guide's table, its item of "Choose your
#: registry" and its column of the registry matrix (docs/_ext/guide.py renders them).
GUIDE = GuideEntry(
    section="2.4",
    title="OVH Managed Private Registry (a Harbor OVHcloud runs)",
    name="OVH Managed Private Registry",
    choose=(
        "if BinderHub runs on OVHcloud: a Harbor that OVHcloud runs for you, paid by the hour."
    ),
    cost="per registry per hour, by plan, no commitment [^ovh-billing]",
    limits=(
        "plans SMALL, MEDIUM, LARGE, each with an image storage and a parallel request limit, "
        "listed by the API per region [^design-ovh]"
    ),
    needs=(
        "an OVH Public Cloud project, and API keys (application key and secret, consumer key) "
        "with the rights the notebook lists"
    ),
    credential=(
        "a Harbor robot account with push and pull on one project (made private when new; "
        "`use_admin_user = True`: the Harbor admin user, as the guide does)"
    ),
    pull_credential="a second robot account, `pull_robot_name`, with pull only on the project",
    rotation=(
        "`rotate = True`: the robot's secret refreshed, then verified; the old one stops working "
        "at once (Harbor keeps one), so it cannot be kept: deploy at once"
    ),
    expires=(
        "the robot, after `robot_expiry_days` (default -1: never; the date is shown): 30-day "
        "robots made by the Terraform provider stopped mybinder.org's OVH builds on 2022-12-16 "
        "([mybinder.org-deploy#2470](https://github.com/jupyterhub/mybinder.org-deploy/pull/2470)"
        ")"
    ),
    notes={
        "ovh-billing": (
            'OVHcloud\'s ["Managed OCI artifact Registry Product Reversibility Policy"]'
            "(https://docs.ovhcloud.com/en/guides/account-and-service-management/reversibility/13-reversibility-oci-registry)"
            ": pay per use, no commitment, billing stops when the registry is deleted."
        ),
        "design-ovh": (
            "OVHcloud's API schema for `/cloud` ([eu.api.ovh.com/console]"
            "(https://eu.api.ovh.com/console/), `containerRegistry` and its `capabilities`), "
            "Harbor's API v2.0 description ([goharbor/harbor `api/v2.0/swagger.yaml`]"
            "(https://github.com/goharbor/harbor/blob/main/api/v2.0/swagger.yaml)) and "
            "mybinder.org's incident of 2022-12-16, when 30-day robot accounts expired "
            "([jupyterhub/mybinder.org-deploy#2470]"
            "(https://github.com/jupyterhub/mybinder.org-deploy/pull/2470)); each sandbox "
            "behaviour names its own source in the fake's module table."
        ),
    },
)


# --- verify's reading of the storage used ------------------------------------------------------
#: The variable naming the Public Cloud project, as OVHcloud's Terraform provider reads it.
PROJECT_VARIABLE = "OVH_CLOUD_PROJECT_SERVICE"


def plan_usage(registry: Mapping[str, Any], plan: Mapping[str, Any], chosen: str = "") -> Usage:
    """The registry's ``size`` against its plan's ``registryLimits.imageStorage``."""
    storage = int((plan.get("registryLimits") or {}).get("imageStorage") or 0)
    name = plan.get("name") or chosen
    return Usage(
        int(registry.get("size") or 0),
        storage or None,
        f"registry {registry.get('name', registry.get('id'))}'s size against plan {name}'s "
        "imageStorage",
    )


def usage_for_values(
    values: RegistryValues,
    env: Mapping[str, str],
    created: Mapping[str, Any],
    ca_file: str | None,
) -> Usage | NotRead | None:
    """The plan's storage for ``binderhub-registry verify``, read with OVHcloud's API keys.

    Not with the values' robot: the registry's size and its plan's limit are OVHcloud's API's
    (``/cloud/project/{sn}/containerRegistry/{id}`` and ``.../plan``), which Harbor's
    credentials do not reach. So: the sandbox's seeded keys, or the notebook's keys from the
    environment or ovh.conf, with the project in OVH_CLOUD_PROJECT_SERVICE. The registry is
    the notebook's record's, else the project's registry whose URL has the values' host.
    """
    from ovh.config import ConfigurationManager

    box = sandbox_of(values)
    if box is not None:
        client = _sandbox_client()[0]
        project = box.credentials("ovh")["service_name"]
    else:
        lookup = ConfigurationManager()
        endpoint = env.get("OVH_ENDPOINT") or lookup.get("default", "endpoint") or "ovh-eu"
        keys = ("application_key", "application_secret", "consumer_key")
        oauth = ("client_id", "client_secret")
        signed = all(lookup.get(endpoint, k) for k in keys) or all(
            lookup.get(endpoint, k) for k in oauth
        )
        project = env.get(PROJECT_VARIABLE, "")
        if not (signed and project):
            return NotRead(
                "the registry's size and plan are OVHcloud API's, which the values' Harbor "
                "robot does not reach",
                f"{PROJECT_VARIABLE} with OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and "
                "OVH_CONSUMER_KEY (or ovh.conf)",
            )
        import ovh

        with _mapped(project):
            client = ovh.Client(endpoint=endpoint, timeout=TIMEOUT)
    base = f"/cloud/project/{project}/containerRegistry"
    with _mapped(project):
        rid = str((created.get("registry") or {}).get("id") or "")
        host = values.image_prefix.split("/", 1)[0]
        if not rid:  # the listing answers the registries themselves
            at = [r for r in client.get(base) if urlsplit(str(r.get("url"))).netloc == host]
            if not at:
                return NotRead(f"project {project} has no registry at {host}", PROJECT_VARIABLE)
            rid = str(at[0]["id"])
        return plan_usage(client.get(f"{base}/{rid}"), client.get(f"{base}/{rid}/plan"))
