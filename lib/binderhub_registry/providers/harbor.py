"""Harbor: a private project, a robot that pushes and one that pulls, for any Harbor.

mybinder.org's federation members run their own Harbor (and OVH's Managed
Private Registry is one): BinderHub pushes as a project-scoped robot account
with push and pull, never as the admin, and user pods (the kubelet) pull as a
second robot with pull only, as mybinder.org's Terraform makes them
(jupyterhub/mybinder.org-deploy ``terraform/modules/harbor/main.tf``: ``builder``
and ``user-puller``). Both go through one code path (:class:`RobotRole`).
Harbor has no node identity, so ``pull_access = "node"`` is refused; with
``"none"`` no pull robot is made, and only a public project lets user pods pull.
What real Harbor does, and what this
module does about it (the sandbox's fake, ``sandbox/harbor/``, lists the same
behaviours with their sources):

- The API (``/api/v2.0``) takes Basic auth of a user; the admin's credentials
  come from ``HARBOR_USERNAME`` and ``HARBOR_PASSWORD`` (or a hidden prompt for
  the password), never from parameters.
- Harbor answers API calls with a ``sid`` session cookie; a client that sends it
  back must send ``X-Harbor-CSRF-Token`` on writes, else 403 "CSRF token
  invalid". :class:`HarborAPI` keeps no cookies, so that never happens.
- ``POST /projects`` answers 201 with an empty body and a ``Location``: the
  project is looked up afterwards; a taken name is 409.
- A robot's secret is shown once, at creation (``POST /robots``) or at a
  refresh (``PATCH /robots/{id}`` with ``{}``); the refresh kills the old
  secret at once. Robots expire after ``duration`` days (-1: never): on
  2022-12-16 mybinder.org's builds broke when its robots reached their 30 days,
  so the expiry is chosen explicitly and shown, and verify names an expired robot.
- The token service (``/service/token``) reads the first ``service`` query
  value, so the ``service=container_registry`` BinderHub appends to ``token_url``
  is harmless when ``token_url`` carries ``?service=harbor-registry`` itself.
- Images pile up (BinderHub deletes none): :func:`ensure_retention` binds a tag retention
  policy to the project (``POST /retentions``; the project's metadata ``retention_id`` names
  it, one per project) whose rules retain, in repositories ``<prefix>**`` only, tags pulled or
  pushed within ``retention_days`` days, weekly, as mybinder.org's Terraform does; and
  :func:`ensure_gc_schedule` schedules Harbor-wide garbage collection, which only a system
  admin may, so deleted tags free their storage. Usage: the project's quota (``/summary``).

The pieces the OVH notebook reuses: :class:`HarborAPI`, the low-level calls
(:func:`find_project`, :func:`create_project`, :func:`find_robot`,
:func:`create_robot`, :func:`refresh_robot_secret`, :func:`delete_robot`,
:func:`delete_project`, :func:`robot_works`, :func:`harbor_values`), and the
steps :func:`ensure_project`, :func:`ensure_robot` and :func:`ensure_pull_credential`
on a :class:`HarborConnection` (subclass it; set ``api`` once Harbor is reachable).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from http.cookiejar import DefaultCookiePolicy
from typing import Any, ClassVar, NoReturn, Protocol, TypeVar
from urllib.parse import quote, urlparse

import requests

from .. import sandbox as sandbox_mod
from ..binderhub import PullSecret, RegistryValues, split_image_reference
from ..errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    InvalidParameter,
    MissingCredentials,
    PermissionDenied,
    error_for_response,
    error_for_status,
    map_exceptions,
    requests_errors,
)
from ..params import Parameter, text
from ..registry_http import secret_forms
from ..secrets import Secret, read_secret, redact
from ..steps import Result
from ..usage import NotRead, Usage, retention_text, sandbox_of
from ..verify import VerifyHints
from .contract import (
    COMMON_PARAMETERS,
    CommonParams,
    Connection,
    Deletion,
    GuideEntry,
    RealExample,
    Record,
    creates,
    if_present,
    same_time,
    stops_at_plan,
    validator,
)

__all__ = [
    "BUILDER",
    "GUIDE",
    "HINTS",
    "KEY",
    "MIN_VERSION",
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "PULLER",
    "REAL_EXAMPLE",
    "ROBOT_STATES",
    "TOKEN_SERVICE",
    "HarborAPI",
    "HarborConnection",
    "HarborParams",
    "Params",
    "RobotRole",
    "SystemInfo",
    "create_project",
    "create_robot",
    "delete_project",
    "delete_robot",
    "ensure_gc_schedule",
    "ensure_project",
    "ensure_pull_credential",
    "ensure_pull_robot",
    "ensure_retention",
    "ensure_robot",
    "expiry_text",
    "find_project",
    "find_robot",
    "harbor_values",
    "refresh_robot_secret",
    "require_version",
    "retention_policy",
    "robot_expiry_days",
    "robot_works",
    "robots_differ",
    "set_robot_expiry",
    "sign_in",
    "summary_usage",
    "system_info",
    "usage_for_values",
    "validate",
    "version_text",
]

KEY = "harbor"
NAME = "Harbor"
NOTEBOOK = "05-harbor"
#: The environment variables sign-in reads for real (never parameters); shown by the form
SECRET_ENVIRONMENT = (
    ("HARBOR_USERNAME", "a Harbor user with the system admin role"),
    ("HARBOR_PASSWORD", "its password, else a hidden prompt"),
)
#: The service name of Harbor's token service (src/core/service/token/creator.go).
TOKEN_SERVICE = "harbor-registry"
USERNAME_VARIABLE = "HARBOR_USERNAME"
PASSWORD_VARIABLE = "HARBOR_PASSWORD"
# sandbox only: real variables are never read there, so a rehearsal cannot send a real secret
SANDBOX_PASSWORD_VARIABLE = "BINDERHUB_REGISTRY_SANDBOX_HARBOR_PASSWORD"
DAY = 86400
MAX_EXPIRY_DAYS = 3650
#: The pull robot's name when a parameters cell has none (mybinder.org's: ``<member>-user-puller``).
PULL_ROBOT_NAME = "binderhub-puller"

#: Harbor's rule for project and robot names (project manager.go, robot handler's validateName).
HARBOR_NAME = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
#: The project names BinderHub can use: Harbor's rule without '_'. BinderHub builds each image
#: name as ``(image_prefix + slug + ":" + ref).replace("_", "-").lower()`` (binderhub/builder.py),
#: so a project ``bh_test`` would be pushed to as ``bh-test``, a project the values do not name.
BINDERHUB_PROJECT = r"[a-z0-9]+(?:[.-][a-z0-9]+)*"
#: What marks a robot as one of this deployment's, in its description (Harbor keeps a robot's
#: ``description``: swagger RobotCreate and Robot; handler/robot.go stores and lists it).
MARK = "binderhub-registry"
T = TypeVar("T")
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"


def robot_expiry_days(name: str) -> Parameter:
    """Days until a robot expires: -1 (never) or 1 to 3650 (0, Harbor's 'omitted', is refused)."""

    def check(value: Any) -> bool:
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        return value == -1 or 1 <= value <= MAX_EXPIRY_DAYS

    rule = f"must be -1 (never expires) or a whole number of days from 1 to {MAX_EXPIRY_DAYS}"
    return Parameter(name, rule, "integer", check)


PARAMETERS = (
    text(
        "harbor_url",
        rf"https://{_HOST}(?::[0-9]{{1,5}})?/?",
        "must be your Harbor's https:// URL, host and optional port only (no path), "
        "e.g. https://harbor.example.org",
    ),
    text(
        "harbor_project",
        BINDERHUB_PROJECT,
        "must be a Harbor project name BinderHub can use: lowercase letters and digits, with "
        "single '.' or '-' between them, at most 255 characters (no '_': BinderHub turns '_' "
        "into '-' in image names, so it would push to another project)",
    ),
    text(
        "robot_name",
        HARBOR_NAME,
        "must be a Harbor robot name: lowercase letters and digits, with single '.', '_' or "
        "'-' between them (Harbor adds robot$<project>+ in front)",
        max_length=200,
    ),
    # "binderhub-puller" when missing: parameters cells and scripts from before it still run
    replace(
        text(
            "pull_robot_name",
            HARBOR_NAME,
            "must be a Harbor robot name: lowercase letters and digits, with single '.', '_' "
            "or '-' between them (Harbor adds robot$<project>+ in front)",
            max_length=200,
        ),
        default=PULL_ROBOT_NAME,
        required=False,
    ),
    robot_expiry_days("robot_expiry_days"),
    *COMMON_PARAMETERS,
)


@dataclass(frozen=True)
class Params(CommonParams):
    """Validated parameters of the Harbor notebook."""

    REPLACED_STOPS: ClassVar[str] = (
        "Harbor keeps one secret per robot, so the refresh stops the old one at once"
    )

    harbor_url: str
    harbor_project: str
    robot_name: str
    pull_robot_name: str
    robot_expiry_days: int


class HarborParams(Protocol):
    """What the Harbor steps read from a notebook's parameters (OVH's have them too).

    Only what they read: the contract's shared steps read the rest as ``CommonParams``, and a
    dry run is the contract's business (:meth:`~.contract.Connection.plan`), not a step's.
    """

    @property
    def harbor_project(self) -> str: ...
    @property
    def robot_name(self) -> str: ...
    @property
    def pull_robot_name(self) -> str: ...
    @property
    def robot_expiry_days(self) -> int: ...
    @property
    def prefix(self) -> str: ...
    @property
    def pull_access(self) -> str: ...
    @property
    def retention_days(self) -> int: ...
    @property
    def rotate(self) -> bool: ...


def robots_differ(p: HarborParams) -> None:
    """The builder and user pods' robot are two robots: one name cannot serve both."""
    if p.pull_robot_name == p.robot_name:
        raise InvalidParameter(
            "pull_robot_name",
            f"must differ from robot_name ({p.robot_name!r}): user pods' robot pulls only, "
            "BinderHub's pushes",
            p.pull_robot_name,
        )


validate = validator(Params, PARAMETERS, robots_differ)


# --- Harbor's API ---------------------------------------------------------------------------
class HarborAPI:
    """Harbor's REST API v2.0 over requests, as one user, with errors mapped.

    ``url`` is the Harbor's base URL (``https://host[:port]``); ``ca_file`` a CA to
    trust (the sandbox's), None for the system's. The session keeps no cookie:
    Harbor's ``sid`` sent back would make every write need a CSRF token.

    ``secrets`` are the secrets in use (the user's password, then each robot secret this
    session made or read): every message built from Harbor's answer is redacted of them
    (:meth:`hide`), so an error body that echoes one never reaches the screen.
    """

    def __init__(
        self, url: str, username: str, password: Secret, ca_file: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.host = urlparse(self.url).netloc
        self.username = username
        self.ca_file = ca_file
        self.http = _session(ca_file)
        self.http.auth = (username, password.reveal())
        self.secrets: list[Secret] = [password]

    def keep_hidden(self, *secrets: Secret) -> None:
        """Add secrets in use (robot secrets) to those every message is redacted of."""
        self.secrets += [s for s in secrets if s not in self.secrets]

    def hide(self, text: str) -> str:
        """``text`` (from Harbor's answer) without any secret in use: plain, URL-encoded or
        base64 (:func:`~binderhub_registry.secrets.redact` finds base64 forms itself)."""
        redacted: str = redact(text, secret_forms(*self.secrets))
        return redacted

    def send(self, method: str, path: str, **kw: Any) -> requests.Response:
        """The raw answer to ``/api/v2.0<path>`` (transport errors mapped)."""
        with map_exceptions(requests_errors(NAME)):
            return self.http.request(method, f"{self.url}/api/v2.0{path}", timeout=30, **kw)

    def call(self, method: str, path: str, *, expect: Expect = None, **kw: Any) -> Any:
        """The JSON answer (None when empty); an error status raises the mapped error.

        ``expect`` is what a 2xx answer must be: ``list`` (a JSON array of objects), or the
        keys of a JSON object; anything else is one line naming the call, never a KeyError.
        """
        r = self.send(method, path, **kw)
        if r.status_code >= 400:
            raise _error(r, method, path, self)
        return _answer(r, method, path, expect)

    def current_user(self) -> dict[str, Any]:
        """``GET /users/current``; a refusal says which variables to check."""
        r = self.send("GET", "/users/current")
        if r.status_code == 401:
            raise AuthenticationFailed(
                f"Harbor at {self.url} refused user {self.username!r}: check {USERNAME_VARIABLE} "
                f"and {PASSWORD_VARIABLE} (a user with the system admin role; a robot account "
                "cannot manage robots)"
            )
        if r.status_code >= 400:
            raise _error(r, "GET", "/users/current", self)
        found: dict[str, Any] = _answer(r, "GET", "/users/current", ())
        return found


#: What a 2xx answer must be (:meth:`HarborAPI.call`): ``list``, an object's keys, or anything.
Expect = type[list[Any]] | tuple[str, ...] | None


def _answer(r: requests.Response, method: str, path: str, expect: Expect) -> Any:
    """The JSON of a 2xx answer, as ``expect`` says it must be; else one line naming the call."""
    call = f"{method} /api/v2.0{path}"
    unexpected = f"{NAME} answered {call} with an unexpected body"
    if not r.content:
        if expect is None:
            return None
        raise CloudError(f"{unexpected}: it is empty")
    try:
        found = r.json()
    except ValueError:
        raise CloudError(f"{unexpected}: it is not JSON") from None
    if expect is list:
        if not isinstance(found, list) or not all(isinstance(x, dict) for x in found):
            raise CloudError(f"{unexpected}: not a list of objects")
    elif isinstance(expect, tuple):
        if not isinstance(found, dict):
            raise CloudError(f"{unexpected}: not an object")
        missing = [k for k in expect if k not in found]
        if missing:
            raise CloudError(f"{unexpected}: no {', '.join(missing)}")
    return found


def _session(ca_file: str | None) -> requests.Session:
    http = requests.Session()
    http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # keep no cookie at all
    if ca_file:  # the sandbox: trust its CA, ignore proxies
        http.verify = ca_file
        http.trust_env = False
    http.headers["User-Agent"] = "binderhub-registry"
    return http


def _error(r: requests.Response, method: str, path: str, api: HarborAPI) -> BinderHubRegistryError:
    """The package's error for a Harbor error answer (``{"errors": [{code, message}]}``),
    redacted of every secret ``api`` has in use."""
    return error_for_response(NAME, r, f"{_message(r, api)} ({method} /api/v2.0{path})")


def _message(r: requests.Response, api: HarborAPI) -> str:
    """Harbor's words for an error answer (or its reason phrase), without any secret in use:
    a Harbor, or a proxy in front of it, may echo the request's credentials."""
    try:
        first = r.json()["errors"][0]
        said = f"{first.get('code', '')} {first.get('message', '')}".strip()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        said = str(r.reason)
    return api.hide(said)


def find_project(api: HarborAPI, name: str) -> dict[str, Any] | None:
    """The project named ``name``, or None."""
    found: dict[str, Any] | None = if_present(
        api.call,
        "GET",
        f"/projects/{quote(name, safe='')}",
        headers={"X-Is-Resource-Name": "true"},
        expect=("project_id", "name"),
    )
    return found


def create_project(api: HarborAPI, name: str) -> dict[str, Any]:
    """Create private project ``name`` (201, empty body), then read it back.

    A 409 (someone made it meanwhile) raises CloudError with status 409.
    """
    api.call("POST", "/projects", json={"project_name": name, "metadata": {"public": "false"}})
    found = find_project(api, name)
    if found is None:
        raise CloudError(f"Harbor created project {name!r} but does not show it", 404)
    return found


def delete_project(api: HarborAPI, name: str) -> int:
    """Delete project ``name`` and its repositories (Harbor deletes only empty projects).

    Returns how many repositories went with it; a project already gone is no error.
    """
    project = quote(name, safe="")
    deleted = 0
    while True:  # a page at a time: each deletion shrinks the listing
        repositories = if_present(
            api.call,
            "GET",
            f"/projects/{project}/repositories",
            params={"page_size": 100},
            expect=list,
        )
        if repositories is None:  # the project is gone
            return deleted
        if not repositories:
            break
        for repository in repositories:
            if not repository.get("name"):
                raise CloudError(
                    f"{NAME} answered GET /api/v2.0/projects/{project}/repositories with an "
                    "unexpected body: a repository without a name"
                )
            short = quote(quote(str(repository["name"]).removeprefix(name + "/"), safe=""))
            if_present(api.call, "DELETE", f"/projects/{project}/repositories/{short}")
            deleted += 1
    if_present(api.call, "DELETE", f"/projects/{project}", headers={"X-Is-Resource-Name": "true"})
    return deleted


def robot_permissions(
    project: str, actions: tuple[str, ...] = ("push", "pull")
) -> list[dict[str, Any]]:
    """``actions`` on the repositories of ``project``: push and pull for BinderHub, pull
    alone for user pods."""
    return [
        {
            "kind": "project",
            "namespace": project,
            "access": [{"resource": "repository", "action": action} for action in actions],
        }
    ]


def find_robot(api: HarborAPI, project: dict[str, Any], robot_name: str) -> dict[str, Any] | None:
    """The project robot called ``robot_name`` in ``project`` (as ``find_project`` gives it)."""
    suffix = f"{project['name']}+{robot_name}"  # robot$<project>+<name>, whatever the prefix
    page = 1
    while True:
        robots = api.call(
            "GET",
            "/robots",
            params={
                "q": f"Level=project,ProjectID={project['project_id']}",
                "page": page,
                "page_size": 100,
            },
            expect=list,
        )
        for robot in robots or []:
            if str(robot.get("name", "")).endswith(suffix):
                if "id" not in robot:
                    raise CloudError(
                        f"{NAME} answered GET /api/v2.0/robots with an unexpected body: "
                        "a robot without an id"
                    )
                found: dict[str, Any] = robot
                return found
        if len(robots or []) < 100:
            return None
        page += 1


def create_robot(
    api: HarborAPI,
    project: str,
    robot_name: str,
    expiry_days: int,
    actions: tuple[str, ...] = ("push", "pull"),
    description: str = "BinderHub pushes images with this robot (binderhub-registry)",
) -> tuple[dict[str, Any], Secret]:
    """Create a project robot with ``actions`` (default push and pull); its details and its
    secret (shown once)."""
    created = api.call(
        "POST",
        "/robots",
        json={
            "name": robot_name,
            "description": description,
            "level": "project",
            "duration": expiry_days,
            "disable": False,
            "permissions": robot_permissions(project, actions),
        },
        expect=("id", "name", "secret", "expires_at"),
    )
    secret = Secret(str(created.pop("secret")))
    api.keep_hidden(secret)
    return created, secret


def set_robot_expiry(api: HarborAPI, robot: dict[str, Any], expiry_days: int) -> dict[str, Any]:
    """Give ``robot`` (as :func:`find_robot` shows it) a new duration; the robot as it is now.

    Harbor counts the days from the robot's creation (-1: never), and its secret
    stays the same: a robot that expired works again with -1, nothing to redeploy.
    """
    return update_robot(api, robot, duration=expiry_days)


def update_robot(api: HarborAPI, robot: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``PUT /robots/{id}`` with ``robot`` (as Harbor shows it) and ``changes`` (``duration``,
    ``description``); the robot as it is now. Its secret stays."""
    keep = ("name", "description", "level", "disable", "permissions", "duration")
    body = {k: robot[k] for k in keep if k in robot} | changes
    api.call("PUT", f"/robots/{int(robot['id'])}", json=body)
    updated: dict[str, Any] = api.call("GET", f"/robots/{int(robot['id'])}", expect=("id", "name"))
    return updated


def refresh_robot_secret(api: HarborAPI, robot_id: int) -> Secret:
    """A new secret for robot ``robot_id`` (``PATCH /robots/{id}`` with ``{}``).

    Harbor keeps one secret per robot: the old one stops working at once.
    """
    answer = api.call("PATCH", f"/robots/{robot_id}", json={}, expect=("secret",))
    secret = Secret(str(answer["secret"]))
    api.keep_hidden(secret)
    return secret


def delete_robot(api: HarborAPI, robot_id: int) -> None:
    """Delete robot ``robot_id``; one already gone is no error."""
    if_present(api.call, "DELETE", f"/robots/{robot_id}")


def robot_works(api: HarborAPI, username: str, secret: Secret) -> bool:
    """Whether Harbor's registry accepts these credentials (``GET /v2/`` with Basic).

    Harbor answers a wrong, deleted, disabled or expired robot with 401; an
    outage raises, to be retried.
    """
    http = _session(api.ca_file)
    with map_exceptions(requests_errors(NAME)):
        r = http.get(f"{api.url}/v2/", auth=(username, secret.reveal()), timeout=30)
    if r.status_code == 401:
        return False
    if r.status_code >= 400:
        api.keep_hidden(secret)
        reason = api.hide(str(r.reason))
        raise error_for_status(NAME, r.status_code, f"GET /v2/ answered {reason}")
    return True


def expiry_text(expires_at: int) -> str:
    """``never expires`` or ``expires on <date> UTC`` (``expired on`` when past)."""
    if expires_at == -1:
        return "never expires"
    when = time.strftime("%Y-%m-%d", time.gmtime(expires_at)) + " (UTC)"
    return f"expired on {when}" if _expired(expires_at) else f"expires on {when}"


def _days(days: int) -> str:
    return "forever (never expires)" if days == -1 else f"{days} days from its creation"


def _expired(expires_at: int) -> bool:
    return expires_at != -1 and expires_at <= time.time()


def harbor_values(
    harbor_url: str, project: str, prefix: str, username: str, password: Secret
) -> RegistryValues:
    """BinderHub's values for pushing to ``project`` of the Harbor at ``harbor_url``.

    ``token_url`` names the service itself: BinderHub appends
    ``service=container_registry`` and Harbor reads the first value.
    """
    url = harbor_url.rstrip("/")
    host = urlparse(url).netloc
    return RegistryValues(
        image_prefix=f"{host}/{project}/{prefix}",
        username=username,
        password=password,
        registry_url=url,
        docker_registry={
            "url": url,
            "token_url": f"{url}/service/token?service={TOKEN_SERVICE}",
        },
    )


# --- the Harbor's version and sign-in mode ---------------------------------------------------
#: The oldest Harbor with project robots that carry permissions (the v2 ``/robots`` API): 2.2.
MIN_VERSION = (2, 2)
#: Harbor's auth mode when users sign in through an OIDC provider (src/common/const.go).
OIDC_AUTH = "oidc_auth"


@dataclass(frozen=True)
class SystemInfo:
    """What ``GET /api/v2.0/systeminfo`` tells anyone: the version and how users sign in."""

    version: str  # as Harbor says it, e.g. "v2.12.2-73072d0d"
    auth_mode: str  # "db_auth", "ldap_auth", "oidc_auth", ...

    @property
    def release(self) -> tuple[int, int] | None:
        """(major, minor), or None when the version is not ``[v]X.Y...``."""
        found = re.match(r"v?(\d+)\.(\d+)", self.version)
        return (int(found.group(1)), int(found.group(2))) if found else None

    def __str__(self) -> str:
        version = self.version or "(version not shown)"
        return f"Harbor {version}, {self.auth_mode or 'auth mode not shown'}"


def system_info(url: str, ca_file: str | None = None) -> SystemInfo:
    """``GET /api/v2.0/systeminfo`` without credentials: Harbor answers ``harbor_version`` and
    ``auth_mode`` to anonymous callers (src/server/v2.0/handler/systeminfo.go), so this is
    read before any password is sent."""
    http = _session(ca_file)
    with map_exceptions(requests_errors(NAME)):
        r = http.get(f"{url.rstrip('/')}/api/v2.0/systeminfo", timeout=30)
    if r.status_code == 404:
        raise CloudError(
            f"{url} has no Harbor API v2.0 (GET /api/v2.0/systeminfo: 404): this needs Harbor "
            f"{MIN_VERSION[0]}.{MIN_VERSION[1]} or newer; check the URL, or upgrade Harbor",
            404,
        )
    if r.status_code >= 400:
        raise error_for_status(NAME, r.status_code, f"GET /api/v2.0/systeminfo answered {r.reason}")
    try:
        found = r.json()
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise CloudError(
            f"{NAME} answered GET /api/v2.0/systeminfo with an unexpected body: not an object"
        )
    return SystemInfo(str(found.get("harbor_version") or ""), str(found.get("auth_mode") or ""))


def require_version(info: SystemInfo, where: str) -> None:
    """Stop on a Harbor older than 2.2: its robots have no permissions (no v2 ``/robots``)."""
    release = info.release
    if release is not None and release < MIN_VERSION:
        minimum = f"{MIN_VERSION[0]}.{MIN_VERSION[1]}"
        raise CloudError(
            f"{where} runs Harbor {info.version}: project robots with permissions (the "
            f"/api/v2.0/robots API this uses) came with Harbor {minimum}; upgrade it to "
            f"{minimum} or newer first"
        )


def version_text(info: SystemInfo) -> str:
    """``Harbor v2.12.2-...`` for a result line (an unreadable version says so)."""
    if info.release is None:
        minimum = f"{MIN_VERSION[0]}.{MIN_VERSION[1]}"
        return f"Harbor version not shown ({info.version!r}): assumed {minimum} or newer"
    return f"Harbor {info.version}"


# --- the connection and its steps --------------------------------------------------------
HINTS = VerifyHints(
    credentials=(
        "refresh the robot account's secret (rerun with rotate = True) and deploy the new "
        "secret.yaml; a robot that expired must be replaced (rerun this notebook)"
    ),
    push=(
        "the robot account needs push and pull on the project's repositories (Harbor: "
        "Robot Accounts, permissions Push Repository and Pull Repository), and the project "
        "in image_prefix must exist: Harbor grants nothing on a missing project"
    ),
    pull=(
        "Harbor gave a token without pull: the robot account (BinderHub's, or user pods' pull "
        "robot) lacks pull on the project, or it expired, was disabled or deleted (Harbor then "
        "treats it as anonymous)"
    ),
)


@dataclass
class HarborConnection(Connection):
    """A signed-in Harbor admin session, and the project and robot the steps found or made.

    ``api`` is None until Harbor is reachable (the OVH notebook sets it once its
    registry is ready). Record kinds: ``harbor_project``, ``harbor_robot`` and
    ``harbor_pull_robot`` (created by the notebook), ``harbor_*_pending`` (a creation
    whose answer may have been lost), ``harbor_refreshed`` (the ids of a rotation's
    refreshed robots).
    """

    NOTEBOOK: ClassVar[str] = NOTEBOOK
    HINTS: ClassVar[VerifyHints] = HINTS
    retiring: ClassVar[str] = "harbor_refreshed"

    params: HarborParams  # type: ignore[assignment]  # a Protocol: OVH's Params have these too
    api: HarborAPI | None = None
    project: dict[str, Any] | None = field(default=None)  # as Harbor shows it
    #: projects a robot proven this deployment's lives in (:meth:`check_ours`)
    proven_projects: set[str] = field(default_factory=set)
    robot: dict[str, Any] | None = field(default=None)  # as Harbor shows it (no secret)
    pull_robot: dict[str, Any] | None = field(default=None)  # user pods' robot, likewise

    def harbor(self) -> HarborAPI:
        """The API, or a one-line error when Harbor is not reachable yet."""
        if self.api is None:
            raise CloudError("Harbor is not reachable yet: its registry must exist first")
        return self.api

    @property
    def mark(self) -> str:
        """What this deployment writes into its robots' descriptions (Harbor keeps them)."""
        return f"{MARK} {self.record.deployment}"

    def live_robot(self, role: RobotRole, recorded: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded robot as Harbor shows it now (None: gone), proven this deployment's;
        a robot that is not raises one line naming both."""
        robot_id = _recorded_id(recorded, repr(role.kind), self.record)
        return self._proven(
            f"/robots/{robot_id}",
            ("id", "name"),
            lambda live: _robot_mismatch(self, role, recorded, live),
        )

    def robots_in(self, project: str) -> bool:
        """Whether a recorded robot, proven this deployment's, lives in ``project``: what
        proves a project recorded before creation times were kept."""
        for role in (BUILDER, PULLER):
            recorded = self.record.created.get(role.kind)
            if recorded:
                live = self.live_robot(role, recorded)
                if live is not None and project in _robot_projects(live):
                    return True
        return False

    def live_project(self, recorded: dict[str, Any], proven: bool) -> dict[str, Any] | None:
        """The recorded project as Harbor shows it now (None: gone), proven this deployment's
        (``proven``: a robot of this deployment lives in it); else one line naming both."""
        project_id = _recorded_id(recorded, "'harbor_project'", self.record)
        return self._proven(
            f"/projects/{project_id}",
            ("project_id", "name"),
            lambda live: _project_mismatch(self, recorded, live, proven),
        )

    def _proven(
        self,
        path: str,
        expect: tuple[str, ...],
        mismatch: Callable[[dict[str, Any]], str | None],
    ) -> dict[str, Any] | None:
        """The resource at ``path`` as Harbor shows it now (None: gone); ``mismatch`` says
        why it is not this deployment's (one line naming both), which raises."""
        live: dict[str, Any] | None = if_present(self.harbor().call, "GET", path, expect=expect)
        if live is None:
            return None
        problem = mismatch(live)
        if problem:
            raise PermissionDenied(problem)
        return live

    def check_ours(self) -> None:
        """Before teardown deletes anything: each recorded robot and the recorded project are
        this deployment's (marked, same name, id and creation time), or one line names the
        recorded and the live one and nothing is deleted."""
        created = self.record.created
        self.proven_projects = set()
        for role in (PULLER, BUILDER):
            if created.get(role.kind):
                live = self.live_robot(role, created[role.kind])
                if live is not None:
                    self.proven_projects |= _robot_projects(live)
        recorded = created.get("harbor_project")
        if recorded:
            name = str(recorded.get("name", "")) if isinstance(recorded, dict) else ""
            self.live_project(recorded, name in self.proven_projects)

    def _delete_robot(self, role: RobotRole, recorded: dict[str, Any]) -> None:
        if self.live_robot(role, recorded) is not None:
            delete_robot(self.harbor(), int(recorded["id"]))

    def _delete_project(self, recorded: dict[str, Any]) -> None:
        name = str(recorded.get("name", ""))
        if self.live_project(recorded, name in self.proven_projects) is not None:
            delete_project(self.harbor(), name)

    def _delete_retention(self, recorded: dict[str, Any]) -> None:
        """Delete the recorded policy while its project still names it (``retention_id``): a
        policy someone put in its place since is not this notebook's."""
        name = str(recorded.get("project") or recorded.get("pending") or "")
        project = find_project(self.harbor(), name) if name else None
        live_id = str(((project or {}).get("metadata") or {}).get("retention_id") or "")
        if live_id and recorded.get("id") == int(live_id):
            if_present(self.harbor().call, "DELETE", f"/retentions/{live_id}")

    def _delete_gc(self, recorded: dict[str, Any]) -> None:
        """Cancel the garbage collection schedule while it is still the one this notebook set
        (same cron); one changed since is someone else's."""
        found = if_present(self.harbor().call, "GET", "/system/gc/schedule") or {}
        if (found.get("schedule") or {}).get("cron") == recorded.get("cron"):
            self.harbor().call("PUT", "/system/gc/schedule", json={"schedule": {"type": "None"}})

    def storage_used(self) -> Usage | None:
        """The project's quota (``GET /projects/{id}/summary``): storage used, against its hard
        limit (-1: none set)."""
        if self.api is None or self.project is None:
            return None
        summary = self.api.call("GET", f"/projects/{int(self.project['project_id'])}/summary")
        return summary_usage(summary, str(self.project["name"]))

    def values(self) -> RegistryValues | None:
        """BinderHub's values: the robot pushing to ``<host>/<project>/<prefix>``."""
        if self.secret is None or self.robot is None or self.api is None:
            return None
        p = self.params
        return harbor_values(
            self.api.url, p.harbor_project, p.prefix, str(self.robot["name"]), self.secret
        )

    def deletions(self) -> list[Deletion]:
        """The retention policy, the robots, then the project with its repositories (only
        what was recorded)."""
        created = self.record.created
        project = created.get("harbor_project", {}).get("name", "")
        return [
            Deletion("harbor_gc", "garbage collection schedule", self._delete_gc),
            Deletion(
                "harbor_retention",
                f"tag retention policy on project "
                f"{(created.get('harbor_retention') or {}).get('project', '')!r}",
                self._delete_retention,
            ),
            *(
                Deletion(
                    role.kind,
                    f"{role.label} {created.get(role.kind, {}).get('name', '')!r}",
                    partial(self._delete_robot, role),
                )
                for role in (PULLER, BUILDER)
            ),
            Deletion(
                "harbor_project",
                f"project {project!r} with its repositories",
                self._delete_project,
            ),
        ]

    def retire(self, retiring: list[Any]) -> None:
        """Nothing left to remove: a refresh replaced each robot's only secret."""

    # Overrides Connection.finish_rotation: Harbor keeps one secret per robot, so nothing is left
    # to remove or keep (keep_replaced cannot apply); it says whose old secrets stopped.
    @stops_at_plan
    async def finish_rotation(self) -> Result[None]:
        """After verification: the refreshed robots' old secrets are gone already (Harbor
        keeps one per robot)."""
        refreshed = self.record.created.get(self.retiring)
        if not refreshed:
            return Result(None, "skipped", "no replaced credential to remove")
        self.plan("report the refreshed robots' old secrets gone: they stopped at the refresh")
        self.note(self.retiring, None)
        if len(refreshed) == 1:
            detail = "the robot's old secret stopped working at the refresh"
        else:  # BinderHub's and user pods' robots: deployed pushes and pulls fail until then
            detail = "both robots' old secrets stopped working at the refresh"
        return Result(
            None,
            "deleted",
            f"{detail} (Harbor keeps one secret per robot); the new "
            f"{'one' if len(refreshed) == 1 else 'ones'} verified: deploy the new secret.yaml now",
        )

    def diagnose(self) -> str | None:
        """Why a robot (BinderHub's, then user pods') fails, from Harbor's own view, or None."""
        for robot, role in ((self.robot, BUILDER), (self.pull_robot, PULLER)):
            found = self._diagnose(robot or self.record.created.get(role.kind), role)
            if found:
                return found
        return None

    def _diagnose(self, recorded: dict[str, Any] | None, role: RobotRole) -> str | None:
        if self.api is None or not recorded:
            return None
        name = str(recorded.get("name", ""))
        try:
            robot = self.api.call("GET", f"/robots/{int(recorded['id'])}")
        except CloudError as e:  # not if_present: a 404 is the diagnosis, and no other error
            # may hide the verification's own failure
            if e.status == 404:
                return (
                    f"{role.label} {name!r} no longer exists in Harbor: rerun this notebook "
                    "to make a new one and deploy the new secret.yaml"
                )
            return None
        if _expired(int(robot.get("expires_at", -1))):
            return (
                f"{role.label} {name!r} {expiry_text(int(robot['expires_at']))}: Harbor "
                f"treats an expired robot as anonymous, so its tokens carry no {role.actions[0]} "
                "(mybinder.org's "
                "builds broke so on 2022-12-16); rerun this notebook with robot_expiry_days = -1: "
                "the robot it created then never expires and this secret.yaml works again"
            )
        if robot.get("disable"):
            return f"{role.label} {name!r} is disabled in Harbor: enable it (Robot Accounts)"
        return None


def _sandbox_credentials(box: sandbox_mod.Sandbox) -> tuple[str, Secret, str]:
    seeded = box.credentials("harbor")
    if os.environ.get(SANDBOX_PASSWORD_VARIABLE):
        return seeded["username"], Secret(os.environ[SANDBOX_PASSWORD_VARIABLE]), "rehearsal"
    return seeded["username"], Secret(seeded["password"]), "the sandbox's seeded admin"


def sign_in(p: Params) -> Result[HarborConnection]:
    """Sign in to Harbor (or the sandbox's) as an admin from the environment."""
    if p.sandbox:
        box = sandbox_mod.ensure()
        url, ca_file = box.registries["harbor"], box.ca_file
        username, password, source = _sandbox_credentials(box)
    else:
        url, ca_file = p.harbor_url.rstrip("/"), None
        username = os.environ.get(USERNAME_VARIABLE, "")
        if not username:
            raise MissingCredentials(
                "Harbor admin credentials",
                f"set {USERNAME_VARIABLE} and {PASSWORD_VARIABLE} in the environment (a Harbor "
                "user with the system admin role; never as notebook parameters)",
            )
        password = read_secret((PASSWORD_VARIABLE,), f"Harbor password for {username}")
        source = PASSWORD_VARIABLE if os.environ.get(PASSWORD_VARIABLE) else "the prompt"
    info = system_info(url, ca_file)  # before the password goes anywhere
    require_version(info, url)
    api = HarborAPI(url, username, password, ca_file)
    try:
        user = api.current_user()
    except AuthenticationFailed:
        if info.auth_mode != OIDC_AUTH:
            raise
        raise AuthenticationFailed(
            f"Harbor at {url} signs users in through OIDC (auth_mode {OIDC_AUTH}): it takes a "
            "password only from its first admin, 'admin' (user id 1): set "
            f"{USERNAME_VARIABLE}=admin and {PASSWORD_VARIABLE} to that admin's password"
        ) from None
    conn = HarborConnection(params=p, record=Record(p.output_dir, KEY), ca_file=ca_file, api=api)
    where = f"the sandbox's Harbor at {url}" if p.sandbox else url
    role = (
        "system admin"
        if user.get("sysadmin_flag")
        else "not a system admin: it must be an admin of project "
        f"{p.harbor_project!r}, which must exist"
    )
    return Result(
        conn,
        "done",
        f"signed in to {where} ({version_text(info)}) as {username} ({role}) with {source}",
    )


def _project_record(project: dict[str, Any]) -> dict[str, Any]:
    """What the record keeps of a project: its name, id and Harbor's creation time."""
    return {
        "name": project["name"],
        "id": project["project_id"],
        "creation_time": project.get("creation_time"),
    }


def _adopt(conn: HarborConnection, kind: str, value: dict[str, Any]) -> None:
    """Record ``value`` as ``kind``, made by this deployment, and drop its pending mark."""
    conn.note(kind, value)
    conn.note(f"{kind}_pending", None)


def _make_recorded(
    conn: HarborConnection,
    kind: str,
    make: Callable[[], T],
    *,
    pending: str,
    keep: Callable[[T], dict[str, Any]],
) -> T:
    """After the plan: ``make()``, with ``pending`` recorded meanwhile as ``<kind>_pending``,
    then ``keep(made)`` as ``kind``.

    :meth:`~.contract.Connection.create` keeps its pending mark under ``kind`` itself; here
    ``kind`` only ever holds a made thing with an id (teardown and the ours checks read it,
    and records written before the contract had ``create`` keep the two kinds apart).
    """
    conn.note(f"{kind}_pending", pending)
    made = make()
    _adopt(conn, kind, keep(made))
    return made


def _find_project(conn: HarborConnection) -> tuple[dict[str, Any] | None, bool]:
    """The project named ``harbor_project`` (None: none, or Harbor not reachable yet) and
    whether it is this deployment's: recorded, or made by a run whose answer was lost."""
    name = conn.params.harbor_project
    found = find_project(conn.api, name) if conn.api is not None else None
    if found is None:
        return None, False
    created = conn.record.created
    if created.get("harbor_project_pending") == name:
        _adopt(conn, "harbor_project", _project_record(found))
        return found, True
    recorded = created.get("harbor_project") or {}
    if recorded.get("name") != name:
        return found, False
    problem = _project_mismatch(conn, recorded, found, proven=True)
    if problem:  # the record names it, Harbor shows another project of that name
        raise PermissionDenied(problem)
    if recorded.get("creation_time"):
        return found, True
    ours = conn.robots_in(found["name"])  # recorded before creation times: its robots prove it
    if ours:
        conn.note("harbor_project", _project_record(found))
    return found, ours


@creates
def ensure_project(conn: HarborConnection) -> Result[dict[str, Any] | None]:
    """Reuse the project named ``harbor_project``, or create it private.

    A project whose creation answer was lost (recorded as pending) is recognised
    as this notebook's on the next attempt, so teardown still deletes it.
    """
    name = conn.params.harbor_project
    found, ours = _find_project(conn)
    if found is None:
        conn.plan(f"create private project {name!r}")
        api = conn.harbor()  # a real run whose Harbor is not reachable stops here
        try:
            made = _make_recorded(
                conn,
                "harbor_project",
                partial(create_project, api, name),
                pending=name,
                keep=_project_record,
            )
        except CloudError as e:
            if e.status != 409:
                raise
            conn.note("harbor_project_pending", None)  # someone else's, made meanwhile
            return ensure_project(conn)
        conn.project = made
        return Result(made, "created", f"private project {name!r} (id {made['project_id']})")
    conn.project = found
    public = found.get("metadata", {}).get("public") == "true"
    who = "created by this notebook" if ours else "found"
    how = (
        "PUBLIC: anyone can pull its images; make it private in Harbor if they are not "
        "meant for everyone"
        if public
        else "private"
    )
    return Result(found, "reused", f"project {name!r} ({who}), {how}")


# --- keeping the registry small: a tag retention policy on the project -------------------------
#: When the policy runs: mybinder.org's schedule, Saturdays 07:00 (Harbor's cron has seconds;
#: jupyterhub/mybinder.org-deploy terraform/modules/harbor/main.tf ``harbor_retention_policy``).
RETENTION_CRON = "0 0 7 * * 6"


def retention_rule(template: str, days: int, prefix: str) -> dict[str, Any]:
    """One retain rule (swagger ``RetentionRule``): tags of repositories ``<prefix>**``
    (doublestar, the name within the project) that ``template`` keeps for ``days``."""
    return {
        "disabled": False,
        "action": "retain",
        "template": template,
        "params": {template: days},
        "tag_selectors": [
            {
                "kind": "doublestar",
                "decoration": "matches",
                "pattern": "**",
                "extras": '{"untagged":false}',
            }
        ],
        "scope_selectors": {
            "repository": [
                {"kind": "doublestar", "decoration": "repoMatches", "pattern": f"{prefix}**"}
            ]
        },
    }


def retention_policy(project_id: int, prefix: str, days: int) -> dict[str, Any]:
    """The project's policy (swagger ``RetentionPolicy``): in repositories ``<prefix>**``,
    retain tags pulled within ``days`` days OR pushed within ``days`` days (rules combine with
    OR), so everything else there goes at the weekly run; other repositories are not touched.

    The push rule keeps a new image that nobody pulled yet for ``days`` days, as mybinder.org's
    second rule (``n_days_since_last_push``) does.
    """
    return {
        "algorithm": "or",
        "rules": [
            retention_rule("nDaysSinceLastPull", days, prefix),
            retention_rule("nDaysSinceLastPush", days, prefix),
        ],
        "trigger": {"kind": "Schedule", "settings": {"cron": RETENTION_CRON}, "references": {}},
        "scope": {"level": "project", "ref": project_id},
    }


def _policy_shape(policy: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What decides a policy's effect: each enabled rule's template, days and selectors, and
    the schedule (ids and Harbor's own additions ignored)."""
    rules = sorted(
        (
            str(r.get("template")),
            json.dumps(r.get("params") or {}, sort_keys=True),
            json.dumps(
                [
                    (s.get("decoration"), s.get("pattern"))
                    for s in (r.get("scope_selectors") or {}).get("repository", [])
                ]
            ),
            json.dumps(
                [(s.get("decoration"), s.get("pattern")) for s in r.get("tag_selectors") or []]
            ),
        )
        for r in policy.get("rules") or []
        if isinstance(r, dict) and not r.get("disabled") and r.get("action", "retain") == "retain"
    )
    cron = ((policy.get("trigger") or {}).get("settings") or {}).get("cron")
    return [*rules, ("cron", cron)]


def retention_summary(policy: dict[str, Any]) -> str:
    """A policy in a few words: its rules (template, days, repositories) and schedule."""
    parts = []
    for r in policy.get("rules") or []:
        if not isinstance(r, dict) or r.get("disabled"):
            continue
        repos = ",".join(
            str(s.get("pattern")) for s in (r.get("scope_selectors") or {}).get("repository", [])
        )
        params = ",".join(f"{v}" for v in (r.get("params") or {}).values())
        parts.append(f"{r.get('template')}({params}) on {repos or '**'}")
    cron = ((policy.get("trigger") or {}).get("settings") or {}).get("cron") or "no schedule"
    return f"{'; '.join(parts) or 'no rules'} (cron {cron})"


def _retention_text(p: HarborParams, days: int) -> str:
    return (
        f"in repositories {p.prefix}** of project {p.harbor_project!r}, "
        f"{retention_text(days)} (retain tags pulled or pushed within {days} days), "
        f"weekly (cron {RETENTION_CRON!r}, Saturdays 07:00); other repositories untouched"
    )


def _project_now(conn: HarborConnection) -> dict[str, Any] | None:
    """The project as Harbor shows it now (its metadata's ``retention_id`` may have changed)."""
    if conn.project is None or conn.api is None:
        return None
    found: dict[str, Any] | None = if_present(
        conn.api.call,
        "GET",
        f"/projects/{int(conn.project['project_id'])}",
        expect=("project_id", "name"),
    )
    return found


def _retention_record(policy_id: int, project: dict[str, Any], days: int) -> dict[str, Any]:
    return {
        "id": policy_id,
        "project": project["name"],
        "project_id": project["project_id"],
        "days": days,
    }


def _create_retention(api: HarborAPI, wanted: dict[str, Any]) -> int:
    """``POST /retentions`` (201, empty body, ``Location`` ending in the new id)."""
    r = api.send("POST", "/retentions", json=wanted)
    if r.status_code >= 400:
        raise _error(r, "POST", "/retentions", api)
    found = re.search(r"/retentions/(\d+)$", r.headers.get("Location", ""))
    if found is None:
        raise CloudError("Harbor created the retention policy but named no id (Location)")
    return int(found.group(1))


@creates
def ensure_retention(conn: HarborConnection) -> Result[dict[str, Any] | None]:
    """A tag retention policy on the project (``retention_days``; 0: none), this notebook's.

    The project holds one policy (its metadata's ``retention_id``). None: this one is set.
    This notebook's (recorded id): kept, or updated to other ``retention_days``. Anyone
    else's: left as it is, and shown.
    """
    p = conn.params
    days = p.retention_days
    if days == 0:
        recorded = conn.record.created.get("harbor_retention") or {}
        if not recorded.get("id"):
            return Result(None, "skipped", f"{retention_text(0)}: no retention policy is set")
        # asked to keep everything: the policy this notebook set earlier goes (as at teardown)
        conn.plan(f"remove tag retention policy {recorded['id']}, which this notebook set")
        conn._delete_retention(recorded)
        conn.note("harbor_retention", None)
        return Result(None, "deleted", f"{retention_text(0)}: this notebook's policy removed")
    text = _retention_text(p, days)
    project = _project_now(conn)
    if project is None:  # a dry run before the project exists
        conn.plan(f"set a tag retention policy: {text}")
        raise CloudError(f"project {p.harbor_project!r} is not in Harbor: run the project step")
    wanted = retention_policy(int(project["project_id"]), p.prefix, days)
    recorded = conn.record.created.get("harbor_retention") or {}
    live_id = str((project.get("metadata") or {}).get("retention_id") or "")
    if not live_id.isdigit():
        conn.plan(f"set a tag retention policy: {text}")
        conn.note("harbor_retention", {"pending": project["name"]})
        policy_id = _create_retention(conn.harbor(), wanted)
        conn.note("harbor_retention", _retention_record(policy_id, project, days))
        return Result(wanted, "created", f"tag retention policy {policy_id}: {text}")
    live = conn.harbor().call("GET", f"/retentions/{live_id}", expect=("rules",))
    ours = recorded.get("id") == int(live_id) or (
        recorded.get("pending") == project["name"] and _policy_shape(live) == _policy_shape(wanted)
    )
    if not ours:
        return Result(
            live,
            "skipped",
            f"project {p.harbor_project!r} has a tag retention policy this notebook did not set "
            f"(id {live_id}: {retention_summary(live)}); it is left as it is: Harbor keeps one "
            f"policy per project, so add the rules for {p.prefix}** to it in Harbor (Policy > "
            "Tag Retention)",
        )
    if recorded.get("id") != int(live_id):  # made by a run whose answer was lost
        conn.note("harbor_retention", _retention_record(int(live_id), project, days))
    if _policy_shape(live) == _policy_shape(wanted):
        return Result(live, "reused", f"tag retention policy {live_id} (this notebook's): {text}")
    conn.plan(f"change tag retention policy {live_id} ({retention_summary(live)}) to: {text}")
    conn.harbor().call("PUT", f"/retentions/{live_id}", json={**wanted, "id": int(live_id)})
    conn.note("harbor_retention", _retention_record(int(live_id), project, days))
    return Result(wanted, "updated", f"tag retention policy {live_id}: {text}")


#: When garbage collection runs: mybinder.org's, Sundays 07:00, a day after the retention run
#: (terraform/modules/harbor/main.tf ``harbor_garbage_collection``, ``delete_untagged = true``).
GC_CRON = "0 0 7 * * 0"


def _gc_text(schedule: dict[str, Any]) -> str:
    return f"{schedule.get('type')} (cron {schedule.get('cron') or 'none'!r})"


@creates
def ensure_gc_schedule(conn: HarborConnection) -> Result[dict[str, Any] | None]:
    """Harbor's garbage collection schedule (Harbor-wide; only a system admin may set it): one
    already set is kept and shown; none, with ``retention_days`` > 0, is set weekly."""
    if conn.params.retention_days == 0:
        return Result(None, "skipped", f"{retention_text(0)}: no garbage collection is set")
    wanted = f"schedule Harbor's garbage collection weekly (cron {GC_CRON!r}, delete_untagged)"
    if conn.api is None:  # a dry run before Harbor is reachable (OVH)
        conn.plan(wanted)
        raise CloudError("Harbor is not reachable yet")
    if not conn.api.current_user().get("sysadmin_flag"):
        return Result(
            None,
            "skipped",
            f"{conn.api.username} is no Harbor system administrator, and only one can schedule "
            "garbage collection: ask yours to set it weekly (Administration > Clean Up, or "
            f"POST /api/v2.0/system/gc/schedule with cron {GC_CRON!r}), so deleted tags free "
            "their storage",
        )
    found = conn.api.call("GET", "/system/gc/schedule") or {}
    schedule = found.get("schedule") or {}
    if schedule.get("type") not in (None, "", "None"):
        ours = (conn.record.created.get("harbor_gc") or {}).get("cron") == schedule.get("cron")
        who = "set by this notebook" if ours else "already set"
        return Result(found, "reused", f"garbage collection {who}: {_gc_text(schedule)}")
    conn.plan(wanted)
    body = {
        "schedule": {"type": "Custom", "cron": GC_CRON},
        "parameters": {"delete_untagged": True, "workers": 1},
    }
    conn.api.call("POST", "/system/gc/schedule", json=body)
    conn.note("harbor_gc", {"cron": GC_CRON})
    return Result(body, "created", f"garbage collection weekly: cron {GC_CRON!r}, delete_untagged")


# --- ours only: what proves a robot or project is this deployment's ----------------------------
def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _robot_record(robot: dict[str, Any]) -> dict[str, Any]:
    """What the record keeps of a robot: its id, name and Harbor's creation time."""
    return {"id": robot["id"], "name": robot["name"], "creation_time": robot.get("creation_time")}


def _identity_text(thing: dict[str, Any], id_key: str = "id") -> str:
    """A robot or project as a message names it: name, id (under ``id_key``), creation time."""
    created = thing.get("creation_time") or "unrecorded"
    return f"{_short(thing.get('name'))!r} (id {_short(thing.get(id_key), 20)}, created {created})"


def _identity_problems(
    recorded: dict[str, Any], live: dict[str, Any], live_id_key: str
) -> list[str]:
    """How the live resource differs from the recorded id, name and creation time."""
    problems = []
    if live.get(live_id_key) != recorded.get("id"):
        problems.append("another id")
    if str(live.get("name")) != str(recorded.get("name")):
        problems.append("another name")
    created = recorded.get("creation_time")
    if created and not same_time(created, live.get("creation_time")):
        problems.append("another creation time")
    return problems


def _robot_mismatch(
    conn: HarborConnection, role: RobotRole, recorded: dict[str, Any], live: dict[str, Any]
) -> str:
    """Why the live robot is not the one this deployment recorded (empty: it is).

    Its mark is this deployment's id in the description, and its name, id and creation
    time are the recorded ones. A robot recorded before the marks (no creation time in the
    record) is accepted with the description those runs wrote; a rerun then adds the mark.
    """
    problems = _identity_problems(recorded, live, "id")
    created = recorded.get("creation_time")
    description = str(live.get("description") or "")
    legacy = not created and description == role.legacy_description
    if conn.mark not in description and not legacy:
        problems.append(f"its description {_short(description)!r} lacks {conn.mark!r}")
    if not problems:
        return ""
    return (
        f"{role.label} recorded as {_identity_text(recorded)} is {_identity_text(live)} in Harbor "
        f"({'; '.join(problems)}): it is not this deployment's, so nothing more is changed or "
        f"deleted; delete it in Harbor yourself if it is yours, and remove {role.kind!r} from "
        f"{conn.record.path}"
    )


def _project_mismatch(
    conn: HarborConnection, recorded: dict[str, Any], live: dict[str, Any], proven: bool
) -> str:
    """Why the live project is not the one this deployment recorded (empty: it is).

    Harbor keeps no free-form description on a project (swagger ProjectReq, ProjectMetadata:
    a fixed set of keys), so its marks are what Harbor keeps and the record wrote down at the
    creation: its id, name and creation time. A project recorded before creation times were
    kept is accepted only when ``proven``: a robot with this deployment's mark lives in it.
    """
    problems = _identity_problems(recorded, live, "project_id")
    created = recorded.get("creation_time")
    if not created and not proven:
        problems.append(
            "recorded without its creation time, and no robot of this deployment is left in "
            "it to prove it is this deployment's"
        )
    if not problems:
        return ""
    return (
        f"project recorded as {_identity_text(recorded)} is "
        f"{_identity_text(live, 'project_id')} in Harbor ({'; '.join(problems)}): nothing more "
        "is deleted; delete it in Harbor yourself if it is yours, and remove 'harbor_project' "
        f"from {conn.record.path}"
    )


def _recorded_id(recorded: Any, what: str, record: Record) -> int:
    found = recorded.get("id") if isinstance(recorded, dict) else None
    if not isinstance(found, int) or isinstance(found, bool):
        raise PermissionDenied(
            f"{what} in {record.path} has no numeric id ({_short(found, 20)!r}): nothing more "
            "is deleted; fix or remove that entry"
        )
    return found


def _robot_projects(robot: dict[str, Any]) -> set[str]:
    """The projects a robot's permissions name (a project robot has one)."""
    return {
        str(perm.get("namespace"))
        for perm in robot.get("permissions") or []
        if isinstance(perm, dict) and perm.get("kind") == "project"
    }


def _repository_actions(robot: dict[str, Any], project: str) -> set[str]:
    return {
        str(a.get("action"))
        for perm in robot.get("permissions") or []
        if perm.get("namespace") == project
        for a in perm.get("access") or []
        if a.get("resource") == "repository"
    }


def _permission_problem(role: RobotRole, robot: dict[str, Any], project: str) -> str:
    """Why ``robot`` does not fit ``role`` (empty: it does): the builder needs push and pull;
    user pods' robot needs pull and must not push (least privilege)."""
    actions = _repository_actions(robot, project)
    if "*" in actions:
        actions |= {"push", "pull"}
    if not set(role.actions) <= actions:
        return f"exists without {' and '.join(role.actions)} on {project!r}"
    if role.pull_only and "push" in actions:
        return f"can push to {project!r}, and user pods' robot must only pull"
    return ""


@dataclass(frozen=True)
class RobotRole:
    """One of the project's two robots: what it may do, and what names it.

    mybinder.org's Terraform makes the same two per federation member
    (jupyterhub/mybinder.org-deploy ``terraform/modules/harbor/main.tf``: ``builder`` with
    push and pull, ``user-puller`` with pull only). Both last ``robot_expiry_days``.
    """

    kind: str  # record kind of the robot this notebook made; ``<kind>_pending`` while made
    param: str  # the parameter naming it
    actions: tuple[str, ...]  # its repository actions
    label: str  # "robot account" / "pull robot account", in messages
    what: str  # what Harbor shows beside it, before the mark

    def description(self, mark: str) -> str:
        """Its description in Harbor, with this deployment's ``mark``."""
        return f"{self.what} ({mark})"

    @property
    def legacy_description(self) -> str:
        """Its description as runs before the marks wrote it (no deployment id)."""
        return f"{self.what} ({MARK})"

    @property
    def pull_only(self) -> bool:
        """User pods' robot: it must not push."""
        return "push" not in self.actions

    def name(self, p: HarborParams) -> str:
        """The robot's name (without ``robot$<project>+``), from its parameter."""
        return str(getattr(p, self.param))


BUILDER = RobotRole(
    "harbor_robot",
    "robot_name",
    ("push", "pull"),
    "robot account",
    "BinderHub pushes images with this robot",
)
PULLER = RobotRole(
    "harbor_pull_robot",
    "pull_robot_name",
    ("pull",),
    "pull robot account",
    "User pods pull BinderHub's images with this robot",
)


def _use(conn: HarborConnection, role: RobotRole, robot: dict[str, Any], secret: Secret) -> None:
    """Keep the robot and its secret where the values read them."""
    if role.pull_only:
        conn.pull_robot = robot
        conn.pull_secret = PullSecret(conn.harbor().host, str(robot["name"]), secret)
    else:
        conn.robot, conn.secret = robot, secret


def _project(conn: HarborConnection) -> dict[str, Any]:
    """The project the project step found or made (a real run has one before its robots)."""
    if conn.project is None:
        raise CloudError(
            f"project {conn.params.harbor_project!r} was neither found nor made: the project "
            "step comes before the robots"
        )
    return conn.project


# --- the robots: a table of states, each with the action that plans, then applies --------------
@dataclass
class _Robot:
    """One robot of ``role`` as a step sees it: Harbor's view (``live``) and whose it is."""

    conn: HarborConnection
    role: RobotRole
    live: dict[str, Any] | None = None  # as Harbor shows it (no secret); None: none of the name
    ours: bool = False  # this deployment made it (recorded, or its lost answer adopted)
    changed: str = ""  # what an earlier action changed, for the result

    @property
    def days(self) -> int:
        """``robot_expiry_days``."""
        return self.conn.params.robot_expiry_days

    @property
    def wanted(self) -> str:
        """Its name as Harbor makes it: ``robot$<project>+<name>``."""
        p = self.conn.params
        return f"robot${p.harbor_project}+{self.role.name(p)}"

    @property
    def found(self) -> dict[str, Any]:
        """``live``, for the actions of states that follow "none in Harbor"."""
        if self.live is None:
            raise RuntimeError(f"{self.wanted!r} acted on as found while none is (a bug)")
        return self.live

    @property
    def name(self) -> str:
        """Its name as Harbor shows it."""
        return str(self.found["name"])

    @property
    def expires_at(self) -> int:
        """When it expires (seconds since the epoch; -1: never)."""
        return int(self.found.get("expires_at", -1))

    @property
    def expired(self) -> bool:
        """Past its expiry: Harbor treats it as anonymous."""
        return _expired(self.expires_at)

    @property
    def unmarked(self) -> bool:
        """Ours, without this deployment's mark (recorded before the marks)."""
        return self.ours and self.conn.mark not in str(self.found.get("description") or "")

    @property
    def other_duration(self) -> bool:
        """Ours, lasting another number of days than asked."""
        return self.ours and self.found.get("duration") != self.days

    @property
    def permission_problem(self) -> str:
        """Why its permissions do not fit its role (empty: they do)."""
        return _permission_problem(self.role, self.found, _project(self.conn)["name"])

    @cached_property
    def stored(self) -> Secret | None:
        """The secret ``secret.yaml`` holds for it, in its role's place."""
        conn = self.conn
        if self.role.pull_only:
            stored = conn.stored_pull_password(self.name)
        else:
            stored = conn.stored_password(self.name)
        if stored is not None:
            conn.harbor().keep_hidden(stored)
        return stored

    @cached_property
    def works(self) -> bool:
        """Harbor's registry accepts the stored secret."""
        return self.stored is not None and robot_works(self.conn.harbor(), self.name, self.stored)


def _look_up(conn: HarborConnection, role: RobotRole) -> _Robot:
    """The robot ``role``'s parameter names, and whether it is this deployment's: recorded
    (and proven: :func:`_robot_mismatch`), or made by a run whose answer was lost."""
    robot = _Robot(conn, role)
    if conn.api is None or conn.project is None:  # Harbor or the project is not there yet
        return robot
    robot.live = live = find_robot(conn.api, conn.project, role.name(conn.params))
    if live is None:
        return robot
    recorded = conn.record.created.get(role.kind) or {}
    if recorded.get("id") == live["id"]:
        problem = _robot_mismatch(conn, role, recorded, live)
        if problem:  # the record names it, Harbor says it is another deployment's
            raise PermissionDenied(problem)
        robot.ours = True
    elif conn.record.created.get(f"{role.kind}_pending") == robot.wanted and conn.mark in str(
        live.get("description") or ""
    ):
        _adopt(conn, role.kind, _robot_record(live))  # made by a run whose answer was lost
        robot.ours = True
    return robot


def _create_robot(r: _Robot) -> Result[Secret | None]:
    """None in Harbor: create it (project level, its role's actions, ``robot_expiry_days``)."""
    conn, role = r.conn, r.role
    lasts = "never expires" if r.days == -1 else f"expires {r.days} days after creation"
    conn.plan(f"create {role.label} {r.wanted!r} ({', '.join(role.actions)}; {lasts})")
    api, project = conn.harbor(), _project(conn)["name"]
    name, description = role.name(conn.params), role.description(conn.mark)
    created, secret = _make_recorded(
        conn,
        role.kind,
        lambda: create_robot(api, project, name, r.days, role.actions, description),
        pending=r.wanted,
        keep=lambda made: _robot_record(made[0]),
    )
    _use(conn, role, created, secret)
    only = " only" if role.pull_only else ""
    return Result(
        secret,
        "created",
        f"{role.label} {created['name']!r} with {' and '.join(role.actions)}{only} on "
        f"{project!r}; {expiry_text(int(created['expires_at']))}; its secret goes to "
        "secret.yaml only",
    )


def _mark(r: _Robot) -> None:
    """Ours, recorded before the marks: write this deployment's mark into its description."""
    r.conn.plan(f"mark {r.role.label} {r.wanted!r} as this deployment's (its description)")
    r.live = update_robot(r.conn.harbor(), r.found, description=r.role.description(r.conn.mark))
    r.conn.note(r.role.kind, _robot_record(r.live))


def _set_duration(r: _Robot) -> None:
    """Ours, another duration: set ``robot_expiry_days`` (Harbor counts from the robot's
    creation; its secret stays, so -1 revives an expired robot and nothing is redeployed)."""
    r.conn.plan(f"make {r.role.label} {r.wanted!r} last {_days(r.days)}")
    r.live = set_robot_expiry(r.conn.harbor(), r.found, r.days)
    r.changed = f"now lasts {_days(r.days)}; "


def _refuse_expired(r: _Robot) -> NoReturn:
    """Expired, and someone else's: never deleted."""
    raise PermissionDenied(
        f"{r.role.label} {r.name!r} {expiry_text(r.expires_at)} and this notebook did not "
        f"create it: delete it in Harbor (Robot Accounts) or choose another {r.role.param}"
    )


def _replace(r: _Robot) -> None:
    """Ours, still expired: delete it (then it is none in Harbor, and is created)."""
    r.conn.plan(f"replace {r.role.label} {r.wanted!r} ({expiry_text(r.expires_at)})")
    delete_robot(r.conn.harbor(), int(r.found["id"]))
    r.conn.note(r.role.kind, None)
    r.live, r.ours = None, False


def _refuse_permissions(r: _Robot) -> NoReturn:
    """Its permissions do not fit its role: the admin fixes them, or another name is chosen."""
    give = "pull alone" if r.role.pull_only else "both"
    raise PermissionDenied(
        f"{r.role.label} {r.name!r} {r.permission_problem}: give it {give} in Harbor (Robot "
        f"Accounts), or choose another {r.role.param}"
    )


def _reuse(r: _Robot) -> Result[Secret | None]:
    """The stored secret works, and no rotation: keep it."""
    assert r.stored is not None  # works
    _use(r.conn, r.role, r.found, r.stored)
    who = "created by this notebook" if r.ours else "found"
    return Result(
        r.stored,
        "updated" if r.changed else "reused",
        f"{r.role.label} {r.name!r} ({who}), stored secret works; {r.changed}"
        f"{expiry_text(r.expires_at)}",
    )


def _refuse_refresh(r: _Robot) -> NoReturn:
    """Someone else's, without a working stored secret: a refresh would break its user."""
    raise PermissionDenied(
        f"{r.role.label} {r.name!r} exists, this notebook did not create it and has no working "
        f"secret for it: a refresh would break whoever uses it; choose another {r.role.param}, "
        "or delete it in Harbor"
    )


def _refresh(r: _Robot) -> Result[Secret | None]:
    """Ours, with its secret lost or refused, or ``rotate``: a new secret (Harbor keeps one per
    robot, so the old one stops at once)."""
    why = "rotate" if r.works else "the stored secret is missing or refused"
    r.conn.plan(f"refresh the secret of {r.name!r} ({why})")
    secret = refresh_robot_secret(r.conn.harbor(), int(r.found["id"]))
    _use(r.conn, r.role, r.found, secret)
    if r.works:  # a rotation: finish_rotation reports the old secret gone (once the new verifies)
        r.conn.retire_later(r.found["id"])
    return Result(
        secret,
        "updated",
        f"{r.role.label} {r.name!r}: new secret ({why}; the old one stopped working now); "
        f"{expiry_text(r.expires_at)}",
    )


#: A robot's states, in order (the first that applies) -> the action. An action plans its change
#: first (a dry run stops there); one that answers None changed the robot, and the table is read
#: again; the others answer the step or stop it with one line.
ROBOT_STATES: tuple[
    tuple[str, Callable[[_Robot], bool], Callable[[_Robot], Result[Secret | None] | None]], ...
] = (
    ("none in Harbor", lambda r: r.live is None, _create_robot),
    ("ours, recorded before the marks", lambda r: r.unmarked, _mark),
    ("ours, another duration", lambda r: r.other_duration, _set_duration),
    ("expired, someone else's", lambda r: r.expired and not r.ours, _refuse_expired),
    ("expired, ours", lambda r: r.expired, _replace),
    ("permissions unfit for its role", lambda r: bool(r.permission_problem), _refuse_permissions),
    ("stored secret works, no rotate", lambda r: r.works and not r.conn.params.rotate, _reuse),
    ("someone else's, no working secret", lambda r: not r.ours and not r.works, _refuse_refresh),
    ("ours: secret lost or refused, or rotate", lambda r: True, _refresh),
)


def _ensure(conn: HarborConnection, role: RobotRole) -> Result[Secret | None]:
    """The one code path of both robots: look it up, then act on its state
    (:data:`ROBOT_STATES`) until an action answers."""
    robot = _look_up(conn, role)
    for _pass in ROBOT_STATES:  # each action answering None fixes its own state: bounded
        act = next(action for _state, applies, action in ROBOT_STATES if applies(robot))
        result = act(robot)
        if result is not None:
            return result
    raise CloudError(f"{role.label} {robot.wanted!r}: Harbor did not keep the changes made to it")


@creates
def ensure_robot(conn: HarborConnection) -> Result[Secret | None]:
    """BinderHub's robot (push and pull): reuse it while the stored secret works; else make,
    repair or refresh it, as :data:`ROBOT_STATES` says for each state.

    - none: create it (project level, its actions, ``robot_expiry_days``);
    - this notebook's, from before the marks: mark it (its description);
    - this notebook's, with another duration: set ``robot_expiry_days`` (Harbor counts
      from the robot's creation; its secret stays, so -1 revives an expired robot);
    - this notebook's, still expired: delete it and create it again;
    - this notebook's, secret lost or refused, or ``rotate``: refresh its secret;
    - someone else's, expired or without a working stored secret: stop (a refresh would
      break whoever uses it).
    The secret goes to ``secret.yaml`` (0600) only, never to the screen. User pods' robot
    (:func:`ensure_pull_robot`) goes through the same code.
    """
    return _ensure(conn, BUILDER)


@creates
def ensure_pull_robot(conn: HarborConnection) -> Result[Secret | None]:
    """User pods' robot, ``pull_robot_name``, with pull only: as :func:`ensure_robot` does;
    its secret goes to ``secret.yaml``'s ``jupyterhub.imagePullSecret`` only."""
    return _ensure(conn, PULLER)


@creates
def ensure_pull_credential(conn: HarborConnection) -> Result[Secret | None]:
    """How user pods pull (``pull_access``): a pull-only robot (``"secret"``), or nothing
    (``"none"``: only a public project lets them pull, and then anyone can).

    ``"node"`` is refused by the parameters' check: Harbor knows no node identity.
    """
    p = conn.params
    if p.pull_access == "secret":
        return ensure_pull_robot(conn)
    if p.pull_access != "none":  # the contract refused it before any call (PULL_NODE is "")
        raise InvalidParameter("pull_access", "Harbor knows no node identity", p.pull_access)
    if conn.project is None:
        public = f"project {p.harbor_project!r} must be public for user pods to pull"
    elif conn.project.get("metadata", {}).get("public") == "true":
        public = f"project {p.harbor_project!r} is public"
    else:
        public = (
            f"project {p.harbor_project!r} is PRIVATE, so user pods cannot pull: make it "
            'public in Harbor (Projects, Configuration) or rerun with pull_access = "secret"'
        )
    left = conn.record.created.get(PULLER.kind, {}).get("name")
    kept = f"; {left!r} from an earlier run stays until teardown" if left else ""
    return Result(
        None,
        "skipped",
        f'no pull robot (pull_access = "none"): {public}; Harbor then serves its images to '
        f"anyone who reaches it, without a login{kept}",
    )


def _real_values(params: Any) -> RegistryValues:
    """The values of a real run with ``params`` (the docs' example)."""
    # a project robot's name as Harbor makes it (robot$<project>+<name>), the secret redacted
    robot = f"robot${params.harbor_project}+{params.robot_name}"
    return harbor_values(
        params.harbor_url, params.harbor_project, params.prefix, robot, Secret("robot-secret")
    )


#: The docs' real-mode example of this notebook's values.
REAL_EXAMPLE = RealExample(
    overrides={"harbor_url": "https://harbor.example.org"},
    placeholders={"harbor.example.org": "<HARBOR_HOST>"},
    build=_real_values,
)


#: This registry on the docs' landing page: its row of the guide's table, its item of "Choose your
#: registry" and its column of the registry matrix (docs/_ext/guide.py renders them).
GUIDE = GuideEntry(
    section="Beyond the guide",
    title="a Harbor you run (mybinder.org's federation members do)",
    name="A Harbor you run",
    choose=(
        "if you already run one, as mybinder.org's federation members do, or want the images on "
        "your own storage."
    ),
    cost="your Harbor's storage; nothing else",
    limits="those of your Harbor; robot accounts with permissions need Harbor 2.2 or newer",
    needs="a Harbor reachable over HTTPS, and a user with its system admin role",
    credential=(
        "a robot account with push and pull on one project (made private when new), never the admin"
    ),
    pull_credential="as OVH",
    rotation="as OVH",
    expires="as OVH",
)


# --- verify's reading of the storage used ------------------------------------------------------
def summary_usage(summary: Any, name: str) -> Usage:
    """The project summary's ``quota``: storage used against its hard limit (-1: none set)."""
    quota = (summary or {}).get("quota") or {}
    used = int((quota.get("used") or {}).get("storage", 0))
    hard = int((quota.get("hard") or {}).get("storage", -1))
    if hard > 0:
        return Usage(used, hard, f"Harbor project {name!r} quota")
    return Usage(used, None, f"Harbor project {name!r}, no quota set (storage_limit -1)")


def usage_for_values(
    values: RegistryValues,
    env: Mapping[str, str],
    created: Mapping[str, Any],
    ca_file: str | None,
) -> Usage | NotRead | None:
    """The project's quota for ``binderhub-registry verify``, read as the notebook's admin.

    Not with the values' robot: a robot may do only what its permissions list
    (src/common/security/robot/context.go), and ``GET /projects/{p}/summary`` needs read on
    the project itself, its quota only read on ``quota`` too (src/server/v2.0/handler/
    project.go, GetProjectSummary), where the notebook's robots hold ``repository`` push and
    pull. So: the sandbox's seeded admin, or HARBOR_USERNAME and HARBOR_PASSWORD.
    """
    project = str((created.get("harbor_project") or {}).get("name") or "")
    project = project or split_image_reference(values.image_prefix)[1].split("/", 1)[0]
    url = (values.registry_url or str(values.docker_registry.get("url") or "")).rstrip("/")
    box = sandbox_of(values)
    if box is not None:
        seeded = box.credentials("harbor")
        username, password, ca_file = seeded["username"], seeded["password"], box.ca_file
    else:
        username = env.get(USERNAME_VARIABLE, "")
        password = env.get(PASSWORD_VARIABLE, "")
        if not (username and password):
            return NotRead(
                "Harbor gives robots no read of their project's quota",
                f"{USERNAME_VARIABLE} and {PASSWORD_VARIABLE} (a Harbor admin)",
            )
    api = HarborAPI(url, username, Secret(password), ca_file)
    return summary_usage(api.call("GET", f"/projects/{project}/summary"), project)
