"""One fake Harbor: its state, its API and its registry, all on one port of the sandbox app.

:class:`HarborInstance` is what the standalone Harbor backend (``Harbor``, for
the Harbor notebook) holds once, and what the OVH fake makes one of per
managed registry. Its host serves ``/api/v2.0/...``, ``/service/token`` and
``/v2/...`` (a :class:`~..registry_front.RegistryFront` with the API as its
extra routes), so the registry and its API share a host as on a real Harbor.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request as HttpRequest

from ..app import Response
from ..registry_front import METHOD_ACTIONS, FrontConfig, Grant, RegistryFront, granted_actions
from .api import SERVICE, HarborApi, harbor_error
from .models import CURRENT_VERSION, DB_AUTH, HarborState

if TYPE_CHECKING:
    from ..app import App

__all__ = ["ISSUER", "HarborInstance"]

#: The ``iss`` of Harbor's registry tokens (its registry config's ``issuer``).
ISSUER = "harbor-token-issuer"


class HarborInstance:
    """One Harbor: live state, API and registry; :meth:`start` opens its port.

    ``admins`` (username -> password) are seeded system administrators;
    ``clock`` is the instance's now, in Unix seconds (tests move it forward to
    expire robots); ``lock`` is the one its handlers and checks run under (pass
    the owning backend's so its state reads stay consistent). ``version`` and ``auth_mode``
    are what ``GET /systeminfo`` answers (sandbox settings); with ``reserved_admin`` the
    Harbor's first user (id 1, the one admin OIDC mode still takes a password from) is its
    operator's, not shown (OVHcloud runs the Harbor: assumption).
    """

    def __init__(
        self,
        name: str,
        *,
        admins: Mapping[str, str] | None = None,
        lock: threading.RLock | None = None,
        clock: Callable[[], float] = time.time,
        version: Callable[[], str] = lambda: CURRENT_VERSION,
        auth_mode: Callable[[], str] = lambda: DB_AUTH,
        reserved_admin: bool = False,
    ) -> None:
        self.name = name
        self.admins = dict(admins or {})
        self.version = version
        self.auth_mode = auth_mode
        self.reserved_admin = reserved_admin
        self.lock = lock or threading.RLock()
        self.clock = clock
        self.live = self._seeded()  # the live state (reset replaces it)
        self.api = HarborApi(lambda: self.live, self.system_info)
        self.front: RegistryFront | None = None

    def _seeded(self) -> HarborState:
        state = HarborState(clock=lambda: self.clock(), auth_mode=lambda: self.auth_mode())
        if self.reserved_admin:
            state.new_id("user")
        owner = None
        for username, password in self.admins.items():
            made = state.add_user(username, password, sysadmin=True)
            owner = owner or made
        if owner is not None:  # every Harbor starts with the public project 'library'
            state.add_project("library", owner, public=True)
        return state

    # --- lifecycle ------------------------------------------------------------------------
    def start(self, app: App) -> None:
        """Open the instance's port and start its docker-registry (from a worker thread)."""
        if self.front is not None:
            return
        self.front = _HarborFront(
            self,
            app,
            FrontConfig(
                name=self.name,
                service=SERVICE,
                issuer=ISSUER,
                realm_path="/service/token",
                check=self.grant,
                lock=self.lock,
                basic_ping=False,  # /v2/ is docker-registry's Bearer challenge, realm here
                basic_refusal="harbor",  # wrong Basic credentials: Basic realm="harbor"
                extra=self.api.routes(),
                clock=lambda: self.clock(),  # pushes and pulls dated on the Harbor's clock
            ),
        )

    def reset(self) -> None:
        """Back to the seeded state, the registry restarted empty."""
        self.live = self._seeded()
        if self.front is not None:
            self.front.process.restart()

    def stop(self) -> None:
        """Close the port and stop docker-registry (its content goes with it)."""
        if self.front is not None:
            self.front.stop()
            self.front = None

    # --- what others read -----------------------------------------------------------------
    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the host of the API and the registry alike."""
        assert self.front is not None, "start() first"
        return self.front.host

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``: what ``harbor_url`` is in the sandbox."""
        return f"https://{self.host}"

    def system_info(self) -> tuple[str, str]:
        """(``harbor_version``, ``auth_mode``), as ``GET /systeminfo`` answers them."""
        return self.version(), self.auth_mode()

    def add_user(
        self, username: str, password: str, *, sysadmin: bool = True, email: str = ""
    ) -> None:
        """Add (or reset the password of) a local user, as OVH's ``.../users`` call does."""
        with self.lock:
            self.live.add_user(username, password, sysadmin=sysadmin, email=email)

    def set_admin(self, username: str) -> None:
        """Give a local user the system admin role (OVH's ``.../setAsAdmin``)."""
        with self.lock:
            user = self.live.users.get(username)
            if user is not None:
                user.sysadmin = True

    def grant(self, username: str, password: str) -> Grant | None:
        """The registry's credential check against live state (None: Harbor refuses them)."""
        who = self.live.principal(username, password)
        if who is None:
            return None
        return Grant(username, lambda repository, wanted: self.live.allow(who, repository, wanted))

    def repositories(self) -> dict[str, list[str]]:
        """Every repository with its tags (none before :meth:`start`)."""
        return self.front.process.repositories() if self.front else {}

    def state(self) -> dict[str, Any]:
        """Users, projects, robots and repositories as JSON-able data, without any secret."""
        state = self.live
        return {
            "users": sorted(state.users),
            "projects": [{"name": p.name, "public": p.public} for p in state.projects.values()],
            "robots": [
                {
                    "name": r.full_name,
                    "duration": r.duration,
                    "expires_at": r.expires_at,
                    "actions": sorted(r.actions()),
                    "disabled": r.disabled,
                }
                for r in state.robots.values()
            ],
            "repositories": self.repositories(),
        }


#: The action Harbor's v2auth middleware checks for each method (v2auth/access.go getAction).


class _HarborFront(RegistryFront):
    """The shared front, plus Harbor's own refusal (core's v2auth middleware) of a caller
    that sent credentials but may not do what the call needs.

    goharbor/harbor ``src/server/middleware/v2auth``: ``access.go`` maps POST, PATCH, PUT
    to push and GET, HEAD to pull on the repository of a manifest, blob or tag call;
    ``auth.go`` answers a security context (a robot's Basic credentials, or a token of
    Harbor's realm with its ``access``) that cannot do it with 401 ``UNAUTHORIZED``
    "unauthorized to access repository: <repository>, action: <action>" and, since the
    request carried an ``Authorization`` header, ``WWW-Authenticate: Basic realm="harbor"``
    and ``Docker-Distribution-Api-Version: registry/2.0``. So a pull-only robot's push stops
    there, before docker-registry. Calls without credentials keep docker-registry's Bearer
    challenge (v2auth's own names the same realm and service); a Bearer that is not one of
    this realm's tokens goes on to docker-registry, which refuses it (assumption: Harbor
    would treat it as anonymous, with the same 401).
    """

    def __init__(self, instance: HarborInstance, app: App, config: FrontConfig) -> None:
        self.instance = instance
        super().__init__(app, config)

    def refusal(self, http: HttpRequest) -> Response | None:
        """Refuse as v2auth does (the front calls this under the instance's lock)."""
        method, rest = http.method, str(http.path_params.get("rest", ""))
        authorization = http.headers.get("authorization", "")
        action = METHOD_ACTIONS.get(method)
        found = re.match(r"(.+?)/(?:manifests|blobs|tags)/", rest)
        if action is None or found is None or not authorization:
            return None
        repository = found.group(1)
        # wrong Basic credentials: None, the front's Basic realm="harbor" 401
        allowed = granted_actions(authorization, repository, action, self.instance.grant)
        if allowed is None:
            return None
        if action in allowed:
            return None
        return harbor_error(
            401,
            "UNAUTHORIZED",
            f"unauthorized to access repository: {repository}, action: {action}",
            **{
                "WWW-Authenticate": 'Basic realm="harbor"',
                "Docker-Distribution-Api-Version": "registry/2.0",
            },
        )
