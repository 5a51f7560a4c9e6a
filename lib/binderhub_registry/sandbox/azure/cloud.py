"""The Azure backend: one tenant's state under ``/azure``, served by Entra ID, ARM and Graph.

One backend, so one lock, one state and one reset cover the whole tenant; the
services (``entra``, ``arm``, ``graph``) are routes over the same
:class:`~.models.Tenant`, and ``acr`` starts a registry front per registry.
"""

from __future__ import annotations

from typing import Any

from ..app import Backend, Context, Request
from .arm import ResourceManager
from .entra import EntraID
from .graph import Graph
from .models import (
    OTHER_SUBSCRIPTION,
    ROLES,
    iso,
    seed_credentials,
    seed_tenant,
)

__all__ = ["BACKEND", "AzureCloud"]


class AzureCloud(Backend):
    """Entra ID, ARM and Graph of one sandbox tenant; an ACR front per registry."""

    prefix = "/azure"

    def __init__(self, deployer: dict[str, str]) -> None:
        self.deployer = deployer
        super().__init__()
        arm = ResourceManager(self)
        self.retention = arm.retention
        for service in (EntraID(self), arm, Graph(self)):
            self.add_routes(service.routes())

    @classmethod
    def create(cls, context: Context) -> AzureCloud:
        """The backend, signing the deployer in with its secret from the sandbox's credentials."""
        return cls(context.secret("azure", seed_credentials))

    # --- lifecycle ---------------------------------------------------------------
    def seed(self) -> None:
        """The seeded tenant (see :func:`~.models.seed_tenant`)."""
        self.tenant = seed_tenant(self.deployer["client_secret"])

    def shutdown(self) -> None:
        """Stop every registry front and its docker-registry process."""
        for registry in self.tenant.registries.values():
            if registry.front:
                registry.front.stop()
                registry.front = None

    def clock_ahead(self, days: float) -> dict[str, Any]:
        """Move the registries' clock and run their ACR Tasks' purges (see ``retention``)."""
        return self.retention.clock_ahead(days)

    def registry_now(self) -> float:
        """The registries' clock, in Unix seconds (see ``retention``)."""
        return self.retention.now().timestamp()

    def base(self, request: Request) -> str:
        """This backend's base URL as the client reached it."""
        return f"https://{request.headers.get('host', '127.0.0.1')}{self.prefix}"

    def settings(self) -> dict[str, Any]:
        """``/_sandbox/azure/settings``: the fault knobs (see the module doc)."""
        return self.tenant.settings

    def settings_changed(self) -> None:
        """Apply changed knobs to the tenant's state."""
        self.tenant.apply_settings()

    def state(self) -> dict[str, Any]:
        """Everything a test compares, without secrets (someone else's registry is hidden)."""
        t = self.tenant
        return {
            "subscriptions": sorted(t.subscriptions),
            "resource_groups": sorted(
                (
                    {
                        "subscription": g.subscription,
                        "name": g.name,
                        "location": g.location,
                        "tags": g.tags,
                    }
                    for g in t.groups.values()
                ),
                key=lambda g: (g["subscription"], g["name"].lower()),
            ),
            "registries": [
                {
                    "name": r.name,
                    "subscription": r.subscription,
                    "resource_group": r.resource_group,
                    "sku": r.sku,
                    "admin_user_enabled": r.admin_user_enabled,
                    "provisioning_state": r.provisioning_state,
                    "repositories": r.front.process.repositories() if r.front else {},
                }
                for _, r in sorted(t.registries.items())
                if r.subscription != OTHER_SUBSCRIPTION
            ],
            "role_assignments": sorted(
                (
                    {
                        "name": a.name,
                        "scope": a.scope,
                        "role": ROLES.get(a.role, (a.role, set()))[0],
                        "principal_id": a.principal_id,
                        "principal_type": a.principal_type,
                        "condition": a.condition,
                    }
                    for a in t.assignments.values()
                ),
                key=lambda a: (a["scope"].lower(), a["name"]),
            ),
            "applications": [
                {
                    "id": a.id,
                    "app_id": a.app_id,
                    "display_name": a.display_name,
                    "passwords": [
                        {"key_id": p.key_id, "display_name": p.display_name, "end": iso(p.end)}
                        for p in a.passwords
                    ],
                }
                for a in t.applications.values()
            ],
            "service_principals": [
                {"id": s.id, "app_id": s.app_id, "display_name": s.display_name}
                for s in t.principals.values()
            ],
        }


#: The backend ``server.backends()`` mounts for this provider (``sandbox/<key>/cloud.py``).
BACKEND = AzureCloud
