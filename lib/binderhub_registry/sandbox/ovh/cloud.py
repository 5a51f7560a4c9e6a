"""The OVH backend: one account under ``/ovh``, its registries' lives, and their Harbors.

One backend, so one lock, one state and one reset cover the account. A registry
moves INSTALLING -> DELIVERING -> READY as it is polled (``/_sandbox/ovh/settings``
says how many GETs each status lasts); once delivered it gets its own Harbor
(:meth:`OvhCloud.deliver`), whose URL becomes the registry's ``url``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from ..app import Backend, Context
from ..harbor.models import OIDC_AUTH
from .api import Api
from .models import Account, Registry, User, seed_credentials

__all__ = ["BACKEND", "OvhCloud"]


class OvhCloud(Backend):
    """OVHcloud's API for one account: Public Cloud projects and managed private registries."""

    prefix = "/ovh"

    def __init__(self, credentials: dict[str, str]) -> None:
        self.credentials = credentials
        super().__init__()
        self.add_routes(Api(self).routes())

    @classmethod
    def create(cls, context: Context) -> OvhCloud:
        """The backend, with the API keys from the sandbox's credentials."""
        return cls(context.secret("ovh", seed_credentials))

    # --- lifecycle ---------------------------------------------------------------
    def seed(self) -> None:
        """The seeded account: one application, one consumer key, no registry."""
        c = self.credentials
        self.account = Account(c["application_key"], c["application_secret"], c["consumer_key"])

    def shutdown(self) -> None:
        """Stop every registry's Harbor."""
        for registry in self.account.registries.values():
            self.undeliver(registry)

    def settings(self) -> dict[str, Any]:
        """``/_sandbox/ovh/settings``: polls spent in each transitional status, and what the
        account's registries are like (Harbor version and auth mode, IAM, IP restrictions,
        storage used, a consumer key awaiting validation)."""
        return self.account.settings

    def state(self) -> dict[str, Any]:
        """Registries and their users, without passwords."""
        return {
            "registries": [
                {
                    "id": r.id,
                    "name": r.name,
                    "project": r.project,
                    "region": r.region,
                    "plan": r.plan,
                    "status": r.status,
                    "users": sorted(u.user for u in r.users.values()),
                    "harbor": r.harbor.state() if r.harbor is not None else None,
                }
                for r in self.account.registries.values()
            ]
        }

    # --- registries ------------------------------------------------------------------
    def create_registry(self, project: str, name: str, region: str, plan: str) -> Registry:
        """A new registry, INSTALLING (names need not be unique on OVH: assumption)."""
        registry = Registry(
            id=self.account.next_id("registry"),
            name=name,
            project=project,
            region=region,
            plan=plan,
            created=time.time(),
        )
        self.account.registries[registry.id] = registry
        return registry

    def advance(self, registry: Registry) -> Registry | None:
        """Count one GET and answer the status it falls in; None once a deleted one is gone.

        From creation, the first ``installing_polls`` GETs answer INSTALLING, the next
        ``delivering_polls`` DELIVERING, then READY; after a DELETE, ``deleting_polls``
        GETs answer DELETING, then the registry is gone.
        """
        settings = self.account.settings
        if registry.status == "READY":
            return registry
        registry.polls += 1
        if registry.status == "DELETING":
            if registry.polls > settings["deleting_polls"]:
                self.undeliver(registry)
                self.account.registries.pop(registry.id, None)
                return None
            return registry
        installing = settings["installing_polls"]
        if registry.polls <= installing:
            registry.status = "INSTALLING"
        elif registry.polls <= installing + settings["delivering_polls"]:
            registry.status = "DELIVERING"
        else:
            registry.status, registry.updated = "READY", time.time()
            self.deliver(registry)
        return registry

    def start_deleting(self, registry: Registry) -> None:
        """DELETE: the registry answers DELETING for ``deleting_polls`` GETs, then 404."""
        registry.status, registry.polls, registry.updated = "DELETING", 0, time.time()

    def deliver(self, registry: Registry) -> None:
        """The registry is READY: its own Harbor starts, whose URL is the registry's ``url``.

        Without an app (the fake called in-process by tests) only a URL is made up.
        """
        if self.app is None:
            made_up = f"https://{registry.id[:8]}.{registry.region.lower()}.invalid"
            registry.url = registry.url or made_up
            return
        from ..harbor import HarborInstance  # here: the sandbox's start does not wait for it

        if registry.harbor is None:
            settings = self.account.settings
            instance = HarborInstance(
                f"ovh-{registry.id[:8]}",
                lock=self.lock,
                clock=self._harbor_clock,
                version=lambda: str(settings["harbor_version"]),
                # IAM signs Harbor users in through OVHcloud's identity (as OIDC: assumption)
                auth_mode=lambda: OIDC_AUTH if settings["iam_enabled"] else settings["auth_mode"],
                reserved_admin=True,  # Harbor's first admin is OVHcloud's: assumption
            )
            for user in registry.users.values():
                instance.add_user(user.user, user.password, sysadmin=user.admin, email=user.email)
            instance.start(self.app)
            registry.harbor = instance
        registry.url = registry.harbor.url

    def clock_ahead(self, days: float) -> dict[str, Any]:
        """``POST /_sandbox/clock``: the Harbors' clock ``days`` ahead, then one run of each
        registry's tag retention policies (its Harbor's, as on the Harbor backend)."""
        from ..harbor.retention import run_policies

        harbors = [r.harbor for r in self.account.registries.values() if r.harbor is not None]
        settings = self.account.settings
        settings["harbor_clock_offset_days"] = float(settings["harbor_clock_offset_days"]) + days
        return {"deleted": [d for instance in harbors for d in run_policies(instance, days)]}

    def _harbor_clock(self) -> float:
        """The Harbors' now: ``harbor_clock_offset_days`` ahead of this machine's."""
        return time.time() + float(self.account.settings["harbor_clock_offset_days"]) * 86400.0

    def undeliver(self, registry: Registry) -> None:
        """Stop the registry's Harbor, if it has one."""
        if registry.harbor is not None:
            registry.harbor.stop()
            registry.harbor = None

    # --- users -------------------------------------------------------------------------
    def create_user(self, registry: Registry, login: str, email: str) -> User:
        """A Harbor user of the registry's Harbor, not a system admin until ``setAsAdmin``.

        Source: OVH's API (vendored schema) has ``PUT .../users/{userID}/setAsAdmin``, "Set
        the user as Admin", so a user the API makes is not one by itself. The only evidence
        of an admin at creation is the Control Panel's own flow (ovh/manager
        ``pci-private-registry``, ``postRegistryCredentials``), which may call more: the
        fake follows the schema (issue 19, point 1).
        """
        user = User(
            id=str(self.account.counter + 1),
            user=login,
            email=email,
            password=secrets.token_urlsafe(18),
        )
        self.account.counter += 1
        registry.users[user.id] = user
        if registry.harbor is not None:
            registry.harbor.add_user(login, user.password, sysadmin=False, email=email)
        return user

    def set_admin(self, registry: Registry, user: User) -> None:
        """``setAsAdmin``: the user becomes a system admin of the registry's Harbor."""
        user.admin = True
        if registry.harbor is not None:
            registry.harbor.set_admin(user.user)

    def delete_user(self, registry: Registry, user: User) -> None:
        """Remove a user, from the registry's Harbor too."""
        registry.users.pop(user.id, None)
        if registry.harbor is not None:
            registry.harbor.live.users.pop(user.user, None)


#: The backend ``server.backends()`` mounts for this provider (``sandbox/<key>/cloud.py``).
BACKEND = OvhCloud
