"""The standalone Harbor backend of the Harbor notebook: one seeded instance on its own port.

The sources of each behaviour are in the package's table (``sandbox/harbor/__init__.py``).
"""

from __future__ import annotations

import time
from typing import Any

from ..app import App, Backend, Context, Request, Response, json_response
from .instance import HarborInstance
from .models import CURRENT_VERSION, DAY, DB_AUTH, new_secret
from .retention import run_policies

__all__ = ["BACKEND", "DEFAULT_SETTINGS", "SEED_ADMIN", "Harbor"]

#: ``/_sandbox/harbor/settings``: a new Harbor of a current release, local users (db_auth).
DEFAULT_SETTINGS: dict[str, Any] = {
    "clock_offset_days": 0.0,  # how far its clock runs ahead (robots expire)
    "harbor_version": CURRENT_VERSION,  # e.g. "v2.0.1-6b4b4d6b": a Harbor without v2 robots
    "auth_mode": DB_AUTH,  # "oidc_auth": only the first admin signs in with a password
}

#: The seeded system administrator of the standalone Harbor (Harbor's own default name).
SEED_ADMIN = "admin"


class Harbor(Backend):
    """The standalone Harbor of the Harbor notebook: one instance, its own port.

    Its API and registry live on the instance's host (``registries()["harbor"]``);
    the main app only carries ``/_sandbox/harbor/settings``.
    """

    prefix = "/harbor"

    def __init__(self, admin: dict[str, str]) -> None:
        self.seed_admin = admin
        self.offset: dict[str, Any] = dict(DEFAULT_SETTINGS)
        super().__init__()
        self.instance = HarborInstance(
            "harbor",
            admins={admin["username"]: admin["password"]},
            lock=self.lock,
            clock=lambda: time.time() + float(self.offset["clock_offset_days"]) * DAY,
            version=lambda: str(self.offset["harbor_version"]),
            auth_mode=lambda: str(self.offset["auth_mode"]),
        )

    @classmethod
    def create(cls, context: Context) -> Harbor:
        """The backend with the seeded admin's password from the sandbox's credentials."""
        admin = context.secret("harbor", lambda: {"username": SEED_ADMIN, "password": new_secret()})
        return cls(admin)

    def seed(self) -> None:
        """Settings back to their defaults (the instance reseeds itself in :meth:`reset`)."""
        if hasattr(self, "offset"):
            self.offset.clear()
            self.offset.update(DEFAULT_SETTINGS)

    def attach(self, app: App) -> None:
        """Open the instance's port and start its registry."""
        self.instance.start(app)

    def reset(self) -> None:
        """Seeded state, the clock back to now, the registry empty."""
        self.seed()
        self.instance.reset()

    def shutdown(self) -> None:
        """Stop the instance."""
        self.instance.stop()

    def registries(self) -> dict[str, str]:
        """The Harbor's URL (API and registry alike)."""
        return {"harbor": self.instance.url} if self.instance.front else {}

    def settings(self) -> dict[str, Any]:
        """``/_sandbox/harbor/settings``: ``clock_offset_days`` (days the clock runs ahead),
        ``harbor_version`` and ``auth_mode`` (what ``GET /systeminfo`` answers)."""
        return self.offset

    def state(self) -> dict[str, Any]:
        """Users, projects, robots (no secrets) and repositories."""
        return self.instance.state()

    def clock_ahead(self, days: float) -> dict[str, Any]:
        """``POST /_sandbox/clock``: the clock ``days`` ahead (``clock_offset_days``), then one
        run of each project's tag retention policy, as its schedule would have run it."""
        self.offset["clock_offset_days"] = float(self.offset["clock_offset_days"]) + days
        return {"deleted": run_policies(self.instance, days)}

    def not_found(self, request: Request) -> Response:
        return json_response(
            404, {"message": "the sandbox's Harbor lives on its own port: see registries.harbor"}
        )


#: The backend ``server.backends()`` mounts for this provider (``sandbox/<key>/cloud.py``).
BACKEND = Harbor
