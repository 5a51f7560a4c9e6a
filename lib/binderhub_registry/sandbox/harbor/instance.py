"""One fake Harbor: its state, its API and its registry, all on one port of the sandbox app.

:class:`HarborInstance` is what the standalone Harbor backend (``Harbor``, for
the Harbor notebook) holds once, and what the OVH fake makes one of per
managed registry. Its host serves ``/api/v2.0/...``, ``/service/token`` and
``/v2/...`` (a :class:`~..registry_front.RegistryFront` with the API as its
extra routes), so the registry and its API share a host as on a real Harbor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..registry_front import FrontConfig, Grant, RegistryFront
from .api import SERVICE, HarborApi
from .models import HarborState

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
    the owning backend's so its state reads stay consistent).
    """

    def __init__(
        self,
        name: str,
        *,
        admins: Mapping[str, str] | None = None,
        lock: threading.RLock | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.admins = dict(admins or {})
        self.lock = lock or threading.RLock()
        self.clock = clock
        self.live = self._seeded()  # the live state (reset replaces it)
        self.api = HarborApi(lambda: self.live)
        self.front: RegistryFront | None = None

    def _seeded(self) -> HarborState:
        state = HarborState(clock=lambda: self.clock())
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
        self.front = RegistryFront(
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
            ),
        )

    def reset(self) -> None:
        """Back to the seeded state, the registry restarted empty."""
        self.live = self._seeded()
        if self.front is not None:
            self.front.process.stop()
            self.front.process.start_ready()

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

    def add_user(self, username: str, password: str, *, sysadmin: bool = True) -> None:
        """Add (or reset the password of) a local user, as OVH's ``.../users`` call does."""
        with self.lock:
            self.live.add_user(username, password, sysadmin=sysadmin)

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
