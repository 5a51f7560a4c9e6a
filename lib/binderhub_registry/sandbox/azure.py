"""Fake Azure: Entra ID sign-in, ARM, Microsoft Graph, and ACR-like registries.

One backend under ``/azure``, so one lock, one state and one reset cover the
whole tenant; the official SDKs are pointed at it by endpoint only:

==========================  ===============================================================
``/azure/login``            Entra ID authority (``ClientSecretCredential(authority=...)``):
                            ``/{tenant}/v2.0/.well-known/openid-configuration`` and
                            ``/{tenant}/oauth2/v2.0/token`` (client credentials)
``/azure/management``       ARM (``base_url=`` of the mgmt clients): subscriptions, resource
                            groups (the SDK sends lowercase ``resourcegroups``), Microsoft.
                            ContainerRegistry (checkNameAvailability, registries with the
                            201 + ``Azure-AsyncOperation`` shape), Microsoft.Authorization
                            role assignments at any scope
``/azure/graph/v1.0``       Microsoft Graph (``request_adapter.base_url``): applications
                            (``$filter`` on displayName or appId), addPassword,
                            removePassword, servicePrincipals
``/_sandbox/azure/settings`` admin (not logged, not faulted): GET, or POST a JSON object with
                            any of ``principal_not_found`` (role assignment attempts a new
                            service principal fails with PrincipalNotFound, default 1),
                            ``registry_polls`` (``InProgress`` answers before a new registry
                            is Succeeded, default 1), ``extra_subscription`` (a second
                            subscription the deployer owns, default False)
==========================  ===============================================================

Errors carry Azure's real bodies (ARM ``{"error": {"code", "message"}}``, Graph
OData errors, Entra ID ``AADSTS`` errors), so the SDKs raise ResourceExistsError,
ResourceNotFoundError, HttpResponseError, ClientAuthenticationError and ODataError
as they would against Azure.

Every registry created through ARM gets a real docker-registry process (service
``<name>.azurecr.io``) behind an ACR-like front on its own TLS port, which is the
registry's ``loginServer``. Like ACR the front answers ``/v2/`` with a Basic
challenge, accepts Basic auth (appId and password, checked against live Graph
state and the role assignments) on every call, and serves the token realm
``/oauth2/token``. Ids come from counters (uuid5), so two runs from the seeded
state give the same ids.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from .app import App, Backend, Request, Response, json_response
from .registry import RegistryProcess
from .tls import Material

__all__ = [
    "ACR_PULL",
    "ACR_PUSH",
    "OWNER",
    "SEED_CLIENT_ID",
    "SEED_SUBSCRIPTION",
    "SEED_TENANT",
    "TAKEN_REGISTRY",
    "AzureCloud",
    "seed_credentials",
]

_NS = uuid.UUID("6f1d4c52-8a7e-4f0b-9a35-2f7d7b1c0a11")  # this sandbox's uuid5 namespace


def _id(kind: str, n: int | str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}-{n}"))


SEED_TENANT = _id("tenant", 1)
SEED_SUBSCRIPTION = _id("subscription", 1)
OTHER_SUBSCRIPTION = _id("subscription", "other")  # someone else's: not visible to the deployer
EXTRA_SUBSCRIPTION = _id("subscription", 2)  # shown only with the extra_subscription setting
SEED_CLIENT_ID = _id("app-id", "deployer")
DEPLOYER_APP_OBJECT = _id("application", "deployer")
DEPLOYER_SP_OBJECT = _id("service-principal", "deployer")
#: A registry name someone else's subscription holds (names are global across Azure).
TAKEN_REGISTRY = "binderhub"

# Built-in role definition ids (the same in every tenant) and what each allows on a registry.
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
ACR_PUSH = "8311e382-0749-4cb8-b61a-304f252e45ec"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ACR_DELETE = "c2f4ef07-c644-48eb-af81-4b1b4947fb11"
ROLES = {
    OWNER: ("Owner", {"pull", "push", "delete"}),
    CONTRIBUTOR: ("Contributor", {"pull", "push", "delete"}),
    ACR_PUSH: ("AcrPush", {"pull", "push"}),
    ACR_PULL: ("AcrPull", {"pull"}),
    ACR_DELETE: ("AcrDelete", {"delete"}),
}
LOCATIONS = (
    "australiaeast brazilsouth canadacentral centralindia centralus eastasia eastus eastus2 "
    "francecentral germanywestcentral japaneast koreacentral northeurope norwayeast "
    "southafricanorth southcentralus southeastasia swedencentral switzerlandnorth uaenorth "
    "uksouth westeurope westus westus2 westus3"
).split()
SKUS = ("Basic", "Standard", "Premium")
ARM_AUDIENCE = "https://management.azure.com"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
DEFAULT_SETTINGS: dict[str, Any] = {
    "principal_not_found": 1,
    "registry_polls": 1,
    "extra_subscription": False,
}


def seed_credentials() -> dict[str, str]:
    """The deployer service principal's sign-in, for the sandbox's ``credentials.json``."""
    return {
        "tenant_id": SEED_TENANT,
        "client_id": SEED_CLIENT_ID,
        "client_secret": secrets.token_urlsafe(30),
        "subscription_id": SEED_SUBSCRIPTION,
    }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _odata_filter(text: str) -> tuple[str, str] | None:
    """``name eq 'value'`` (OData escapes a quote as two) as (name, value)."""
    m = re.fullmatch(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", text)
    return (m.group(1), m.group(2).replace("''", "'")) if m else None


# --- state -----------------------------------------------------------------------
@dataclass
class Password:
    """A password credential of an application (Graph's passwordCredential)."""

    key_id: str
    display_name: str
    secret: str
    start: dt.datetime
    end: dt.datetime

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        """Graph's JSON; ``secretText`` only in addPassword's answer."""
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": _iso(self.end),
            "hint": self.secret[:3],
            "keyId": self.key_id,
            "secretText": self.secret if with_secret else None,
            "startDateTime": _iso(self.start),
        }


@dataclass
class Application:
    """An app registration: its object id, appId (the client id) and passwords."""

    id: str
    app_id: str
    display_name: str
    passwords: list[Password] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """The resource as the API returns it."""
        return {
            "id": self.id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "signInAudience": "AzureADMyOrg",
            "identifierUris": [],
            "passwordCredentials": [p.public() for p in self.passwords],
            "keyCredentials": [],
        }


@dataclass
class ServicePrincipal:
    """An application's identity in the tenant: what roles are assigned to."""

    id: str
    app_id: str
    display_name: str
    not_found_left: int = 0  # role assignments answer PrincipalNotFound until it replicates

    def public(self, tenant: str) -> dict[str, Any]:
        """The resource as the API returns it."""
        return {
            "id": self.id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "accountEnabled": True,
            "appOwnerOrganizationId": tenant,
            "servicePrincipalType": "Application",
            "servicePrincipalNames": [self.app_id],
        }


@dataclass
class ResourceGroup:
    """A resource group (names are case-insensitive within a subscription)."""

    subscription: str
    name: str
    location: str
    tags: dict[str, str]

    @property
    def id(self) -> str:
        """The Azure resource id."""
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.name}"

    def public(self) -> dict[str, Any]:
        """The resource as the API returns it."""
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.location,
            "tags": self.tags,
            "properties": {"provisioningState": "Succeeded"},
        }


@dataclass
class Registry:
    """A container registry; its front serves the data endpoint once created."""

    subscription: str
    resource_group: str
    name: str
    location: str
    sku: str
    admin_user_enabled: bool
    tags: dict[str, str]
    created: dt.datetime
    provisioning_state: str = "Creating"
    polls_left: int = 0
    front: AcrFront | None = None

    @property
    def id(self) -> str:
        """The Azure resource id."""
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerRegistry/registries/{self.name}"
        )

    @property
    def login_server(self) -> str:
        """The front's ``127.0.0.1:PORT``: the loopback stand-in for ``<name>.azurecr.io``."""
        return self.front.host if self.front else f"{self.name.lower()}.azurecr.io"

    def public(self) -> dict[str, Any]:
        """The resource as the API returns it."""
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.ContainerRegistry/registries",
            "location": self.location,
            "tags": self.tags,
            "sku": {"name": self.sku, "tier": self.sku},
            "properties": {
                "loginServer": self.login_server,
                "creationDate": _iso(self.created),
                "provisioningState": self.provisioning_state,
                "adminUserEnabled": self.admin_user_enabled,
                "publicNetworkAccess": "Enabled",
                "zoneRedundancy": "Disabled",
                "anonymousPullEnabled": False,
                "dataEndpointEnabled": False,
            },
        }


@dataclass
class RoleAssignment:
    """A role granted to a principal at a scope (a resource id, or any of its parents)."""

    name: str
    scope: str
    role_definition_id: str
    principal_id: str
    principal_type: str

    @property
    def id(self) -> str:
        """The Azure resource id."""
        return f"{self.scope}/providers/Microsoft.Authorization/roleAssignments/{self.name}"

    @property
    def role(self) -> str:
        """The role definition's GUID, lowercase."""
        return self.role_definition_id.rsplit("/", 1)[-1].lower()

    def public(self) -> dict[str, Any]:
        """The resource as the API returns it."""
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
            },
        }


@dataclass
class Tenant:
    """Everything one reset brings back: directory, subscriptions, resources, settings."""

    subscriptions: dict[str, str]  # id -> display name
    applications: dict[str, Application]
    principals: dict[str, ServicePrincipal]
    groups: dict[tuple[str, str], ResourceGroup] = field(default_factory=dict)  # (sub, lower name)
    registries: dict[str, Registry] = field(default_factory=dict)  # lower name: names are global
    assignments: dict[str, RoleAssignment] = field(default_factory=dict)  # lower id
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (appId, audience)
    operations: dict[str, str] = field(default_factory=dict)  # async operation id -> registry
    counters: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))

    def next_id(self, kind: str) -> str:
        """The next id of ``kind``: a uuid5 of a counter, the same after every reset."""
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return _id(kind, self.counters[kind])


# --- errors ------------------------------------------------------------------------
def arm_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """ARM's error body: azure-core maps 404 and 409 to ResourceNotFound/ExistsError."""
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


def graph_error(status: int, code: str, message: str) -> Response:
    """Microsoft Graph's OData error body (msgraph-sdk raises ODataError from it)."""
    inner = {
        "date": _iso(_now()),
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }
    return json_response(status, {"error": {"code": code, "message": message, "innerError": inner}})


def aad_error(status: int, error: str, code: int, description: str) -> Response:
    """Entra ID's token endpoint error (msal and azure-identity read ``error_description``)."""
    trace = str(uuid.uuid4())
    return json_response(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace}",
            "error_codes": [code],
            "timestamp": _now().strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
        },
    )


# --- the cloud ------------------------------------------------------------------------
class AzureCloud(Backend):
    """Entra ID, ARM and Graph of one sandbox tenant; starts an ACR front per registry."""

    prefix = "/azure"

    def __init__(self, directory: Path, material: Material, deployer: dict[str, str]) -> None:
        super().__init__()
        self.directory = directory
        self.material = material
        self.deployer = deployer
        self.app: App | None = None  # the main app: fronts share its log and faults
        self.tenant = self._seed()
        self.route("GET", r"/login/{tenant}/v2\.0/\.well-known/openid-configuration", self.openid)
        self.route("POST", r"/login/{tenant}/oauth2/v2\.0/token", self.token)
        for method in ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"):
            self.route(method, r"/management/(?P<rest>.*)", self.arm)
            self.route(method, r"/graph/v1\.0/(?P<rest>.*)", self.graph)

    def attach(self, app: App) -> None:
        """Remember the main app, whose request log and faults the registry fronts share."""
        self.app = app

    # --- seed, reset, admin -----------------------------------------------------------
    def _seed(self) -> Tenant:
        # fixed dates: the seeded state is the same at every reset
        start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        deployer_password = Password(
            key_id=_id("password", "deployer"),
            display_name="sandbox deployer",
            secret=self.deployer["client_secret"],
            start=start,
            end=dt.datetime(2099, 1, 1, tzinfo=dt.UTC),
        )
        tenant = Tenant(
            subscriptions={SEED_SUBSCRIPTION: "BinderHub sandbox subscription"},
            applications={
                DEPLOYER_APP_OBJECT: Application(
                    DEPLOYER_APP_OBJECT,
                    SEED_CLIENT_ID,
                    "binderhub-registry-deployer",
                    [deployer_password],
                )
            },
            principals={
                DEPLOYER_SP_OBJECT: ServicePrincipal(
                    DEPLOYER_SP_OBJECT, SEED_CLIENT_ID, "binderhub-registry-deployer"
                )
            },
        )
        owner = RoleAssignment(
            _id("role-assignment", "deployer"),
            f"/subscriptions/{SEED_SUBSCRIPTION}",
            self._role_id(SEED_SUBSCRIPTION, OWNER),
            DEPLOYER_SP_OBJECT,
            "ServicePrincipal",
        )
        tenant.assignments[owner.id.lower()] = owner
        # someone else's registry: its name is taken, nothing of it is visible
        tenant.registries[TAKEN_REGISTRY] = Registry(
            OTHER_SUBSCRIPTION,
            "their-group",
            TAKEN_REGISTRY,
            "eastus",
            "Standard",
            False,
            {},
            start,
            "Succeeded",
        )
        return tenant

    @staticmethod
    def _role_id(subscription: str, role: str) -> str:
        return (
            f"/subscriptions/{subscription}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role}"
        )

    def reset(self) -> None:
        """Stop every registry front, then reseed the tenant."""
        self.close()
        self.tenant = self._seed()

    def close(self) -> None:
        """Stop every registry front and its docker-registry process (sandbox shutdown)."""
        for registry in self.tenant.registries.values():
            if registry.front:
                registry.front.stop()
                registry.front = None

    def admin(self, request: Request, name: str) -> Response:
        """``/_sandbox/azure/settings``: read or change the fault knobs (see the module doc)."""
        if name != "settings":
            return json_response(404, {"message": "unknown azure sandbox endpoint"})
        if request.method == "POST":
            body = request.json()
            unknown = set(body) - set(DEFAULT_SETTINGS)
            if unknown:
                return json_response(400, {"message": f"unknown settings {sorted(unknown)}"})
            self.tenant.settings.update(body)
            self._apply_settings()
        return json_response(200, self.tenant.settings)

    def _apply_settings(self) -> None:
        subs = self.tenant.subscriptions
        if self.tenant.settings["extra_subscription"] and EXTRA_SUBSCRIPTION not in subs:
            subs[EXTRA_SUBSCRIPTION] = "BinderHub sandbox second subscription"
            owner = RoleAssignment(
                _id("role-assignment", "deployer-extra"),
                f"/subscriptions/{EXTRA_SUBSCRIPTION}",
                self._role_id(EXTRA_SUBSCRIPTION, OWNER),
                DEPLOYER_SP_OBJECT,
                "ServicePrincipal",
            )
            self.tenant.assignments[owner.id.lower()] = owner

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
                        {"key_id": p.key_id, "display_name": p.display_name, "end": _iso(p.end)}
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

    # --- credentials ------------------------------------------------------------------
    def _application(self, app_id: str) -> Application | None:
        return next((a for a in self.tenant.applications.values() if a.app_id == app_id), None)

    def _principal(self, app_id: str) -> ServicePrincipal | None:
        return next((s for s in self.tenant.principals.values() if s.app_id == app_id), None)

    def check_secret(self, app_id: str, secret: str) -> ServicePrincipal | None:
        """The service principal ``app_id`` signs in as with ``secret`` now, or None."""
        app = self._application(app_id)
        principal = self._principal(app_id)
        if not app or not principal or not secret:
            return None
        now = _now()
        for password in app.passwords:
            if password.start <= now < password.end and secrets.compare_digest(
                password.secret, secret
            ):
                return principal
        return None

    def registry_actions(self, principal_id: str, registry: Registry) -> set[str]:
        """What the principal's role assignments at or above the registry allow on its data."""
        allowed: set[str] = set()
        rid = registry.id.lower()
        for a in self.tenant.assignments.values():
            scope = a.scope.lower()
            if a.principal_id == principal_id and (rid == scope or rid.startswith(scope + "/")):
                allowed |= ROLES.get(a.role, ("", set()))[1]
        return allowed

    def _caller(self, request: Request, audience: str) -> str | Response:
        """The appId behind the request's bearer token for ``audience``, or the error to answer."""
        found = self.tenant.tokens.get(request.bearer())
        if not found or found[1] != audience:
            if request.path.lower().startswith("/azure/graph/"):
                return graph_error(
                    401, "InvalidAuthenticationToken", "Access token validation failure."
                )
            return arm_error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                {
                    "WWW-Authenticate": f'Bearer authorization_uri="https://login.microsoftonline.com/{SEED_TENANT}"'
                },
            )
        return found[0]

    # --- Entra ID -----------------------------------------------------------------------
    def _base(self, request: Request) -> str:
        return f"https://{request.headers.get('host', '127.0.0.1')}{self.prefix}"

    def openid(self, request: Request) -> Response:
        """The tenant's OpenID configuration, which msal reads to find the token endpoint."""
        tenant = request.params["tenant"]
        if tenant.lower() not in (SEED_TENANT, "organizations", "common"):
            return aad_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
            )
        login = f"{self._base(request)}/login/{tenant}"
        return json_response(
            200,
            {
                "token_endpoint": f"{login}/oauth2/v2.0/token",
                "authorization_endpoint": f"{login}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{login}/oauth2/v2.0/devicecode",
                "issuer": f"https://login.microsoftonline.com/{SEED_TENANT}/v2.0",
                "jwks_uri": f"{login}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "tenant_region_scope": "EU",
            },
        )

    def token(self, request: Request) -> Response:
        """Client-credentials grant: a token for ARM or Graph, to a live, unexpired password."""
        form = {k: v[0] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
        tenant = request.params["tenant"]
        if tenant.lower() != SEED_TENANT:
            return aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return aad_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = form.get("client_id", "")
        basic = request.basic_auth()
        secret = form.get("client_secret") or (basic[1] if basic else "")
        if not self._application(client_id):
            return aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{SEED_TENANT}'. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant.",
            )
        if not self._principal(client_id):
            return aad_error(
                401,
                "invalid_client",
                7000229,
                f"The client application {client_id} is missing service principal in the tenant "
                f"{SEED_TENANT}.",
            )
        if not self.check_secret(client_id, secret):
            return aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        scope = form.get("scope", "").split()
        audience = scope[0].removesuffix("/.default").rstrip("/") if scope else ""
        if audience not in (ARM_AUDIENCE, GRAPH_AUDIENCE):
            return aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {audience} was not found in the tenant.",
            )
        principal = self._principal(client_id)
        assert principal is not None
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{SEED_TENANT}/",
            "appid": client_id,
            "oid": principal.id,
            "tid": SEED_TENANT,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": secrets.token_hex(8),
        }

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

        token = f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}.{secrets.token_urlsafe(16)}"
        self.tenant.tokens[token] = (client_id, audience)
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            },
        )

    # --- ARM ----------------------------------------------------------------------------
    def arm(self, request: Request) -> Response:
        """Azure Resource Manager: parses the path as ARM does, segment by segment."""
        caller = self._caller(request, ARM_AUDIENCE)
        if isinstance(caller, Response):
            return caller
        if not request.arg("api-version"):
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        principal = self._principal(caller)
        assert principal is not None
        segments = [s for s in request.params["rest"].split("/") if s]
        lower = [s.lower() for s in segments]
        if "microsoft.authorization" in lower:
            return self._role_assignments(request, principal, segments, lower)
        if lower == ["subscriptions"] and request.method == "GET":
            return self._list_subscriptions(principal)
        if len(lower) < 2 or lower[0] != "subscriptions":
            return arm_error(
                404, "InvalidResourceType", f"No route for {request.method} {request.path}"
            )
        sub = lower[1]
        if sub not in self.tenant.subscriptions:
            return arm_error(
                404, "SubscriptionNotFound", f"The subscription '{segments[1]}' could not be found."
            )
        rest, orig = lower[2:], segments[2:]
        denied = self._authorize(request, principal, "/" + "/".join(segments))
        if denied:
            return denied
        if rest == [] and request.method == "GET":
            return json_response(200, self._subscription(sub))
        if len(rest) == 2 and rest[0] == "resourcegroups":
            return self._resource_group(request, sub, orig[1])
        if len(rest) == 2 and rest[0] == "operationresults" and request.method == "GET":
            return Response(200)  # resource group deletion is complete when polled
        if rest == ["providers", "microsoft.containerregistry", "checknameavailability"]:
            if request.method == "POST":
                return self._check_name(request)
        if (
            len(rest) >= 6
            and rest[0] == "resourcegroups"
            and rest[2:5]
            == [
                "providers",
                "microsoft.containerregistry",
                "registries",
            ]
        ):
            group, name = orig[1], orig[5]
            if len(rest) == 6:
                return self._registry(request, sub, group, name)
            if len(rest) == 8 and rest[6] == "operationstatuses" and request.method == "GET":
                return self._operation(orig[7])
        return arm_error(
            404, "InvalidResourceType", f"No route for {request.method} {request.path}"
        )

    def _authorize(
        self, request: Request, principal: ServicePrincipal, scope: str
    ) -> Response | None:
        """Writes need Owner or Contributor at or above the scope; reads any role there."""
        scope_l = scope.lower()
        roles = {
            a.role
            for a in self.tenant.assignments.values()
            if a.principal_id == principal.id
            and (scope_l == a.scope.lower() or scope_l.startswith(a.scope.lower() + "/"))
        }
        needed = (
            {OWNER, CONTRIBUTOR} if request.method in ("PUT", "DELETE", "PATCH") else set(ROLES)
        )
        if roles & needed:
            return None
        return arm_error(
            403,
            "AuthorizationFailed",
            f"The client '{principal.app_id}' with object id '{principal.id}' does not have "
            f"authorization to perform action over scope '{scope}' or the scope is invalid. If "
            "access was recently granted, please refresh your credentials.",
        )

    def _subscription(self, sub: str) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub}",
            "subscriptionId": sub,
            "tenantId": SEED_TENANT,
            "displayName": self.tenant.subscriptions[sub],
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "spendingLimit": "Off",
            },
            "authorizationSource": "RoleBased",
        }

    def _list_subscriptions(self, principal: ServicePrincipal) -> Response:
        visible = [
            self._subscription(sub)
            for sub in self.tenant.subscriptions
            if any(
                a.principal_id == principal.id
                and a.scope.lower().startswith(f"/subscriptions/{sub}")
                for a in self.tenant.assignments.values()
            )
        ]
        return json_response(
            200, {"value": visible, "count": {"type": "Total", "value": len(visible)}}
        )

    def _resource_group(self, request: Request, sub: str, name: str) -> Response:
        key = (sub, name.lower())
        group = self.tenant.groups.get(key)
        if request.method in ("GET", "HEAD"):
            if group is None:
                if request.method == "HEAD":
                    return Response(404)
                return arm_error(
                    404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
                )
            return Response(204) if request.method == "HEAD" else json_response(200, group.public())
        if request.method == "PUT":
            body = request.json()
            location = str(body.get("location", "")).lower().replace(" ", "")
            if location not in LOCATIONS:
                return arm_error(
                    400,
                    "LocationNotAvailableForResourceGroup",
                    f"The provided location '{body.get('location')}' is not available for resource "
                    f"group. List of available regions is '{','.join(LOCATIONS)}'.",
                )
            if not re.fullmatch(r"[\w.()-]{0,89}[\w()-]", name):
                return arm_error(
                    400, "InvalidResourceGroupName", f"Invalid resource group name '{name}'."
                )
            if group is not None:
                if group.location != location:
                    return arm_error(
                        409,
                        "InvalidResourceGroupLocation",
                        f"Invalid resource group location '{location}'. The Resource group already "
                        f"exists in location '{group.location}'.",
                    )
                group.tags = dict(body.get("tags") or {})
                return json_response(200, group.public())
            group = ResourceGroup(sub, name, location, dict(body.get("tags") or {}))
            self.tenant.groups[key] = group
            return json_response(201, group.public())
        if request.method == "DELETE":
            if group is None:
                return arm_error(
                    404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
                )
            for rname, registry in list(self.tenant.registries.items()):
                if registry.subscription == sub and registry.resource_group.lower() == name.lower():
                    self._drop_registry(rname)
            prefix = group.id.lower()
            for aid, a in list(self.tenant.assignments.items()):
                if a.scope.lower() == prefix or a.scope.lower().startswith(prefix + "/"):
                    del self.tenant.assignments[aid]
            del self.tenant.groups[key]
            location = (
                f"{self._base(request)}/management/subscriptions/{sub}/operationresults/"
                f"{self.tenant.next_id('operation')}?api-version={request.arg('api-version')}"
            )
            return Response(202, b"", {"Location": location, "Retry-After": "0"})
        return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")

    def _check_name(self, request: Request) -> Response:
        body = request.json()
        name = str(body.get("name", ""))
        if body.get("type") != "Microsoft.ContainerRegistry/registries":
            return arm_error(
                400, "InvalidRequestContent", "type must be Microsoft.ContainerRegistry/registries"
            )
        if not re.fullmatch(r"[A-Za-z0-9]{5,50}", name):
            return json_response(
                200,
                {
                    "nameAvailable": False,
                    "reason": "Invalid",
                    "message": "Registry names may contain only alpha numeric characters and "
                    "must be between 5 and 50 characters",
                },
            )
        if name.lower() in self.tenant.registries:
            return json_response(
                200,
                {
                    "nameAvailable": False,
                    "reason": "AlreadyExists",
                    "message": f"The registry {name} is already in use.",
                },
            )
        return json_response(200, {"nameAvailable": True})

    def _registry(self, request: Request, sub: str, group_name: str, name: str) -> Response:
        registry = self.tenant.registries.get(name.lower())
        mine = (
            registry is not None
            and registry.subscription == sub
            and registry.resource_group.lower() == group_name.lower()
        )
        group = self.tenant.groups.get((sub, group_name.lower()))
        if request.method == "GET":
            if group is None:
                return arm_error(
                    404,
                    "ResourceGroupNotFound",
                    f"Resource group '{group_name}' could not be found.",
                )
            if not mine or registry is None:
                return arm_error(
                    404,
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.ContainerRegistry/registries/{name}' under resource "
                    f"group '{group_name}' was not found. For more details please go to "
                    "https://aka.ms/ARMResourceNotFoundFix",
                )
            return json_response(200, registry.public())
        if request.method == "DELETE":
            if not mine:
                return Response(204)
            self._drop_registry(name.lower())
            return Response(200)
        if request.method != "PUT":
            return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")
        if group is None:
            return arm_error(
                404, "ResourceGroupNotFound", f"Resource group '{group_name}' could not be found."
            )
        body = request.json()
        props = body.get("properties") or {}
        sku = str((body.get("sku") or {}).get("name", ""))
        location = str(body.get("location", "")).lower().replace(" ", "")
        if not re.fullmatch(r"[A-Za-z0-9]{5,50}", name):
            return arm_error(
                400,
                "InvalidResourceName",
                f"Resource name {name} is invalid. The name can contain only alphanumeric "
                "characters and must be between 5 and 50 characters.",
            )
        if sku not in SKUS:
            return arm_error(
                400, "InvalidSku", f"The sku '{sku}' is not valid: use Basic, Standard or Premium."
            )
        if location not in LOCATIONS:
            return arm_error(
                400,
                "LocationNotAvailableForResourceType",
                f"The provided location '{location}' is not available for resource type "
                "'Microsoft.ContainerRegistry/registries'.",
            )
        if registry is not None and not mine:
            return arm_error(
                409,
                "AlreadyInUse",
                f"The registry DNS name {name.lower()}.azurecr.io is already in use. You can check "
                "if the name is already claimed using following API: https://docs.microsoft.com/"
                "en-us/rest/api/containerregistry/registries/checknameavailability",
            )
        if registry is not None:  # an update of ours: synchronous
            registry.sku = sku
            registry.admin_user_enabled = bool(props.get("adminUserEnabled", False))
            registry.tags = dict(body.get("tags") or {})
            return json_response(200, registry.public())
        registry = Registry(
            sub,
            group.name,
            name,
            location,
            sku,
            bool(props.get("adminUserEnabled", False)),
            dict(body.get("tags") or {}),
            _now(),
            polls_left=int(self.tenant.settings["registry_polls"]),
        )
        registry.front = AcrFront(self, registry)
        self.tenant.registries[name.lower()] = registry
        operation = "registries-" + self.tenant.next_id("operation")
        self.tenant.operations[operation] = name.lower()
        status_url = (
            f"{self._base(request)}/management{registry.id}/operationStatuses/{operation}"
            f"?api-version={request.arg('api-version')}"
        )
        return json_response(
            201, registry.public(), {"Azure-AsyncOperation": status_url, "Retry-After": "0"}
        )

    def _operation(self, operation: str) -> Response:
        name = self.tenant.operations.get(operation)
        registry = self.tenant.registries.get(name or "")
        if registry is None:
            return arm_error(404, "OperationNotFound", f"Operation '{operation}' was not found.")
        if registry.polls_left > 0:
            registry.polls_left -= 1
            status = "InProgress"
        else:
            registry.provisioning_state = status = "Succeeded"
        return json_response(
            200, {"id": operation, "name": operation, "status": status}, {"Retry-After": "0"}
        )

    def _drop_registry(self, key: str) -> None:
        registry = self.tenant.registries.pop(key)
        if registry.front:
            registry.front.stop()
            registry.front = None

    def _role_assignments(
        self, request: Request, caller: ServicePrincipal, segments: list[str], lower: list[str]
    ) -> Response:
        at = max(i for i, s in enumerate(lower) if s == "microsoft.authorization")
        if at < 1 or lower[at - 1] != "providers" or lower[at + 1 : at + 2] != ["roleassignments"]:
            return arm_error(
                404, "InvalidResourceType", f"No route for {request.method} {request.path}"
            )
        scope = "/" + "/".join(segments[: at - 1])
        name = segments[at + 2] if len(segments) > at + 2 else ""
        denied = self._authorize(request, caller, scope)
        if denied:
            return denied
        if not name:
            if request.method != "GET":
                return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")
            return self._list_assignments(request, scope)
        key = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}".lower()
        existing = self.tenant.assignments.get(key)
        if request.method == "GET":
            if existing is None:
                return arm_error(
                    404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found."
                )
            return json_response(200, existing.public())
        if request.method == "DELETE":
            if existing is None:
                return Response(204)
            del self.tenant.assignments[key]
            return json_response(200, existing.public())
        if request.method != "PUT":
            return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")
        props = request.json().get("properties") or {}
        role_id = str(props.get("roleDefinitionId", ""))
        principal_id = str(props.get("principalId", ""))
        role = role_id.rsplit("/", 1)[-1].lower()
        if role not in ROLES:
            return arm_error(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{role}' does not exist.",
            )
        principal = self.tenant.principals.get(principal_id)
        if principal is None or principal.not_found_left > 0:
            if principal is not None:
                principal.not_found_left -= 1  # it replicates a little more at every attempt
            return arm_error(
                400,
                "PrincipalNotFound",
                f"Principal {principal_id.replace('-', '')} does not exist in the directory "
                f"{SEED_TENANT}. Check that you have the correct principal ID. If you are creating "
                "this principal and then immediately assigning a role, this error might be related "
                "to a replication delay. In this case, set the role assignment principalType "
                "property to a value, such as ServicePrincipal, User, or Group.  See "
                "https://aka.ms/docs-principaltype",
            )
        if existing is not None:
            if existing.role == role and existing.principal_id == principal_id:
                return json_response(201, existing.public())
            return arm_error(
                409,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        for other in self.tenant.assignments.values():
            if (
                other.scope.lower() == scope.lower()
                and other.role == role
                and other.principal_id == principal_id
            ):
                return arm_error(
                    409,
                    "RoleAssignmentExists",
                    f"The role assignment already exists. The ID of the existing role assignment "
                    f"is {other.name.replace('-', '')}.",
                )
        assignment = RoleAssignment(
            name,
            scope,
            role_id,
            principal_id,
            str(props.get("principalType") or "ServicePrincipal"),
        )
        self.tenant.assignments[key] = assignment
        return json_response(201, assignment.public())

    def _list_assignments(self, request: Request, scope: str) -> Response:
        scope_l = scope.lower()
        wanted = _odata_filter(request.arg("$filter"))
        found = []
        for a in self.tenant.assignments.values():
            a_scope = a.scope.lower()
            related = (
                scope_l == a_scope
                or scope_l.startswith(a_scope + "/")
                or a_scope.startswith(scope_l + "/")
            )
            if not related:
                continue
            if wanted and wanted[0] == "principalId" and a.principal_id != wanted[1]:
                continue
            found.append(a.public())
        return json_response(200, {"value": found})

    # --- Microsoft Graph ------------------------------------------------------------------
    def graph(self, request: Request) -> Response:
        """Microsoft Graph v1.0: applications and service principals."""
        caller = self._caller(request, GRAPH_AUDIENCE)
        if isinstance(caller, Response):
            return caller
        if caller != SEED_CLIENT_ID:
            # only the deployer holds Application.ReadWrite.All in this tenant
            return graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        parts = [s for s in request.params["rest"].split("/") if s]
        if not parts or parts[0] not in ("applications", "servicePrincipals"):
            return graph_error(
                400,
                "BadRequest",
                f"Resource not found for the segment '{parts[0] if parts else ''}'.",
            )
        if parts[0] == "applications":
            return self._applications(request, parts[1:])
        return self._service_principals(request, parts[1:])

    def _listing(
        self, request: Request, items: list[Any], kind: str, fields: dict[str, str]
    ) -> Response:
        text = request.arg("$filter")
        if text:
            wanted = _odata_filter(text)
            if not wanted or wanted[0] not in fields:
                return graph_error(
                    400,
                    "Request_UnsupportedQuery",
                    f"Unsupported or invalid query filter clause specified for property '{text}'.",
                )
            items = [i for i in items if getattr(i, fields[wanted[0]]) == wanted[1]]
        value = [
            i.public(SEED_TENANT) if kind == "servicePrincipals" else i.public() for i in items
        ]
        return json_response(
            200,
            {
                "@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#{kind}",
                "value": value,
            },
        )

    def _applications(self, request: Request, rest: list[str]) -> Response:
        apps = self.tenant.applications
        if not rest:
            if request.method == "GET":
                return self._listing(
                    request,
                    list(apps.values()),
                    "applications",
                    {"displayName": "display_name", "appId": "app_id"},
                )
            if request.method == "POST":
                name = str(request.json().get("displayName") or "")
                if not name or len(name) > 120:
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        "Invalid value specified for property 'displayName' of resource "
                        "'Application'.",
                    )
                new = Application(
                    self.tenant.next_id("application"), self.tenant.next_id("app-id"), name
                )
                apps[new.id] = new
                return json_response(201, new.public())
            return graph_error(405, "Request_BadRequest", "Unsupported method")
        app = apps.get(rest[0])
        if app is None:
            return _graph_not_found(rest[0])
        if len(rest) == 1 and request.method == "GET":
            return json_response(200, app.public())
        if len(rest) == 1 and request.method == "DELETE":
            del apps[app.id]
            # deleting an application deletes its service principal in the home tenant
            for sp in [s for s in self.tenant.principals.values() if s.app_id == app.app_id]:
                del self.tenant.principals[sp.id]
            return Response(204)
        if rest[1:] == ["addPassword"] and request.method == "POST":
            cred = request.json().get("passwordCredential") or {}
            start = _now()
            end = _parse_time(str(cred.get("endDateTime") or "")) or start + dt.timedelta(days=730)
            password = Password(
                self.tenant.next_id("password"),
                str(cred.get("displayName") or ""),
                secrets.token_urlsafe(30),
                start,
                end,
            )
            app.passwords.append(password)
            return json_response(200, password.public(with_secret=True))
        if rest[1:] == ["removePassword"] and request.method == "POST":
            key_id = str(request.json().get("keyId") or "")
            if not any(p.key_id == key_id for p in app.passwords):
                return graph_error(
                    400,
                    "Request_BadRequest",
                    f"No password credential found with keyId '{key_id}'.",
                )
            app.passwords = [p for p in app.passwords if p.key_id != key_id]
            return Response(204)
        return graph_error(
            400, "BadRequest", f"Unsupported request {request.method} {request.path}"
        )

    def _service_principals(self, request: Request, rest: list[str]) -> Response:
        sps = self.tenant.principals
        if not rest:
            if request.method == "GET":
                return self._listing(
                    request,
                    list(sps.values()),
                    "servicePrincipals",
                    {"appId": "app_id", "displayName": "display_name"},
                )
            if request.method == "POST":
                app_id = str(request.json().get("appId") or "")
                app = self._application(app_id)
                if app is None:
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        f"The appId '{app_id}' of the service principal does not reference "
                        "a valid application object.",
                    )
                if self._principal(app_id):
                    return graph_error(
                        409,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "Another object with the same value for property "
                        "servicePrincipalNames already exists.",
                    )
                new = ServicePrincipal(
                    self.tenant.next_id("service-principal"),
                    app_id,
                    app.display_name,
                    int(self.tenant.settings["principal_not_found"]),
                )
                sps[new.id] = new
                return json_response(201, new.public(SEED_TENANT))
            return graph_error(405, "Request_BadRequest", "Unsupported method")
        sp = sps.get(rest[0])
        if sp is None:
            return _graph_not_found(rest[0])
        if len(rest) == 1 and request.method == "GET":
            return json_response(200, sp.public(SEED_TENANT))
        if len(rest) == 1 and request.method == "DELETE":
            del sps[sp.id]
            return Response(204)
        return graph_error(
            400, "BadRequest", f"Unsupported request {request.method} {request.path}"
        )


def _graph_not_found(object_id: str) -> Response:
    """Graph's answer for an object id it does not know (msgraph-sdk raises ODataError)."""
    return graph_error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried "
        "reference-property objects are not present.",
    )


# --- the ACR-like registry front -------------------------------------------------------------
_AUTH_REQUIRED = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "authorization",
}


def _acr_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(
        status, {"errors": [{"code": code, "message": message, "detail": None}]}, headers
    )


class AcrFront(Backend):
    """One registry's data endpoint: ACR's auth in front of a real docker-registry process.

    ``/v2/`` answers a Basic challenge; calls with Basic auth (appId and password)
    are checked against live Graph state and role assignments, then passed on
    with a token minted for the repository; calls with a Bearer token or none go
    to docker-registry unchanged (it answers a Bearer challenge with scope, whose
    realm is this front's ``/oauth2/token``).
    """

    prefix = ""

    def __init__(self, cloud: AzureCloud, registry: Registry) -> None:
        super().__init__()
        self.cloud = cloud
        self.registry = registry
        self.service = f"{registry.name.lower()}.azurecr.io"
        self.app = App([self])
        if cloud.app is not None:  # one request log and one fault list for the whole sandbox
            self.app.log, self.app.faults, self.app.lock = (
                cloud.app.log,
                cloud.app.faults,
                cloud.app.lock,
            )
        material = cloud.material
        self.server: ThreadingHTTPServer = self.app.serve(
            0, str(material.cert_file), str(material.key_file)
        )
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.process = RegistryProcess(
            f"acr-{registry.name.lower()}",
            cloud.directory,
            material,
            service=self.service,
            realm=f"https://{self.host}/oauth2/token",
            issuer="Azure Container Registry",
        )
        self.process.start()
        self.process.wait_ready()
        self._ssl = ssl.create_default_context(cafile=str(material.ca_file))
        self._stop = threading.Event()
        self.route("GET", "/v2", self.ping)
        self.route("GET", "/oauth2/token", self.token)
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            self.route(method, "/v2/(?P<rest>.+)", self.proxy)

    def stop(self) -> None:
        """Stop answering, and stop the registry process (its content goes with it)."""
        if not self._stop.is_set():
            self._stop.set()
            self.server.shutdown()
            self.server.server_close()
            self.process.stop()
            self.process.config_file.unlink(missing_ok=True)

    def not_found(self, request: Request) -> Response:
        """A registry API 404."""
        return _acr_error(404, "NOT_FOUND", "not found")

    def _challenge(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": f'Basic realm="https://{self.host}/oauth2/token",service="{self.service}"'
        }

    def _principal(self, request: Request) -> ServicePrincipal | Response | None:
        """The service principal of a Basic header (None without one); an error if it is wrong."""
        creds = request.basic_auth()
        if creds is None:
            return None
        with self.cloud.lock:
            principal = self.cloud.check_secret(*creds)
        if principal is None:
            return _acr_error(
                401,
                "UNAUTHORIZED",
                _AUTH_REQUIRED,
                self._challenge(),
            )
        return principal

    def _allowed(self, principal: ServicePrincipal) -> set[str]:
        with self.cloud.lock:
            return self.cloud.registry_actions(principal.id, self.registry)

    def ping(self, request: Request) -> Response:
        """``/v2/``: a Basic challenge, or 200 with good credentials."""
        principal = self._principal(request)
        if isinstance(principal, Response):
            return principal
        if principal is None:
            return _acr_error(
                401,
                "UNAUTHORIZED",
                _AUTH_REQUIRED,
                self._challenge(),
            )
        return json_response(200, {})

    def token(self, request: Request) -> Response:
        """The token realm: Basic appId and password in, a scoped registry token out."""
        # the first `service` counts: BinderHub appends service=container_registry to token_url's
        service = request.arg("service")
        if service not in (self.service, self.host):
            return _acr_error(400, "UNSUPPORTED", f"service {service!r} is not {self.service}")
        principal = self._principal(request)
        if isinstance(principal, Response):
            return principal
        if principal is None:
            return _acr_error(
                401,
                "UNAUTHORIZED",
                "anonymous pull is not enabled on this registry",
                self._challenge(),
            )
        allowed = self._allowed(principal)
        access = []
        for scope in request.query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, wanted = rest.rpartition(":")
            if kind == "repository" and name:
                actions = sorted(set(wanted.split(",")) & allowed)
                access.append({"type": "repository", "name": name, "actions": actions})
        token = self.process.issuer.issue(self.service, principal.app_id, access)
        return json_response(200, {"access_token": token})

    def proxy(self, request: Request) -> Response:
        """Any other ``/v2/`` call: Basic auth is checked here, then it goes to docker-registry."""
        headers = {k: v for k, v in request.headers.items() if k not in _HOP_HEADERS}
        headers["Host"] = self.host  # docker-registry builds Location URLs from it
        principal = self._principal(request)
        if isinstance(principal, Response):
            return principal
        if principal is not None:
            repository = re.sub(r"/(manifests|blobs|tags)/.*$", "", request.params["rest"])
            access = [
                {
                    "type": "repository",
                    "name": repository,
                    "actions": sorted(self._allowed(principal)),
                }
            ]
            token = self.process.issuer.issue(self.service, principal.app_id, access)
            headers["Authorization"] = f"Bearer {token}"
        elif request.bearer():
            headers["Authorization"] = request.headers["authorization"]
        path = request.path + ("?" + urlencode(request.query, doseq=True) if request.query else "")
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.process.port, context=self._ssl, timeout=30
        )
        try:
            conn.request(request.method, path, body=request.body or None, headers=headers)
            upstream = conn.getresponse()
            body = upstream.read()
            out = {k: v for k, v in upstream.getheaders() if k.lower() not in _HOP_HEADERS}
            return Response(upstream.status, body, out)
        finally:
            conn.close()
