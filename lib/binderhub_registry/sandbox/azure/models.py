"""The state of the fake Azure tenant: ids, built-in roles, resources, and the queries on them.

One :class:`Tenant` holds everything a reset brings back; Entra ID, ARM, Graph
and the ACR fronts read and change it under the cloud's lock.

=================================================  =========================================
behaviour                                          source
=================================================  =========================================
ids are uuid5 of counters: a reset replays them    assumption (the sandbox's determinism)
built-in role ids (Owner, Contributor, AcrPush,    Azure built-in roles doc page
AcrPull, AcrDelete), the same in every tenant      (learn.microsoft.com/azure/role-based-
                                                   access-control/built-in-roles); AcrPush's
                                                   checked (DESIGN.md section 4)
what each role allows on registry data             same doc page (AcrPush: pull and push;
                                                   AcrPull: pull; AcrDelete: delete)
registry names are global across Azure             ACR checkNameAvailability in
(``TAKEN_REGISTRY`` is someone else's)             Azure/azure-rest-api-specs
                                                   (containerregistry), doc page
resource group names are case-insensitive          DESIGN.md section 4 (the SDK sends
                                                   lowercase ``resourcegroups``)
a password is valid between its start and end      Graph passwordCredential resource
                                                   (startDateTime, endDateTime)
a new service principal is missing from role       DESIGN.md section 4 (az CLI retries
assignments for a while (``not_found_left``)       PrincipalNotFound up to 36 times)
role assignments at a parent scope apply below     Azure RBAC doc page (scope inheritance)
the location list: the ``registries`` locations    ``regions`` (vendored, with its sources):
of ARM's answer for Microsoft.ContainerRegistry    ARM's own list for the type; the resource
(``regions``); resource groups take the same list  group's use of it: assumption (ARM checks a
                                                   group against the subscription's regions,
                                                   ``GET .../locations``, a superset)
a registry's ``roleAssignmentMode``:               ACR REST API 2025-11-01 (RegistryProperties
``LegacyRegistryPermissions`` (default when         in azure-rest-api-specs containerregistry;
omitted, see ``default_role_assignment_mode``) or  azure-mgmt-containerregistry 15's
``AbacRepositoryPermissions``                      RoleAssignmentMode); the default: doc page
                                                   "ABAC repository permissions" (ABAC "will
                                                   become the default")
ABAC mode: AcrPull, AcrPush, AcrDelete grant       same doc page ("Legacy ACR roles such as
nothing; Container Registry Repository Reader      AcrPull, AcrPush, and AcrDelete are not
(pull) and Writer (pull, push) do; Owner and       honored in ABAC-enabled registries"); the
Contributor grant no data access there             role ids: built-in roles doc page; Owner/
                                                   Contributor there, and the Repository roles
                                                   granting nothing in legacy mode: assumption
writing role assignments needs Owner, User Access  Azure RBAC doc page "Assign Azure roles"
Administrator or Role Based Access Control         (prerequisites:
Administrator                                      Microsoft.Authorization/roleAssignments/write)
a new role assignment takes effect after           Azure RBAC troubleshooting doc page ("up to
``role_propagation_seconds`` (setting, default 0)  10 minutes"); the setting: the sandbox's
a new application is missing from Graph for        az CLI ``create_service_principal_for_rbac``
``application_not_found`` attempts (setting,       retries it (36 x 5 s); see ``graph``
default 0)
a role assignment's ``condition`` (ABAC mode):     doc page "ABAC repository permissions"
the actions its ``!(ActionMatches{...})`` name      (learn.microsoft.com/azure/container-
(content/metadata read -> pull, write -> push,     registry/container-registry-rbac-abac-
content/delete -> delete) apply only to            repository-permissions: the condition
repositories its ``@Request[...repositories:       scoping to a repository prefix, and "a
name] StringStartsWith[IgnoreCase]`` or            condition only constrains the actions it
``StringEquals[IgnoreCase] '<name>'`` matches;     names"); a condition of another shape
the role's other actions stay registry-wide        grants nothing here: assumption (fail
                                                   closed, as this sandbox cannot read it)
an AKS cluster (``Microsoft.ContainerService/      ManagedClusters_Get in azure-rest-api-
managedClusters``) with a kubelet managed          specs (containerservice, aks stable
identity: ``identityProfile.kubeletidentity``      2024-05-01, ``identityProfile`` of
``{resourceId, clientId, objectId}``; only         UserAssignedIdentity); azure-cli ``acs/
those named by the ``aks_clusters`` setting        managed_cluster_decorator.py`` reads
(``["<resource group>/<name>", ...]``, default     ``identity_profile["kubeletidentity"].
none: a new subscription has no cluster); its      object_id`` for ``--attach-acr``; the
group is made if missing                           group: assumption
=================================================  =========================================
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .regions import REGISTRY_LOCATIONS

if TYPE_CHECKING:
    import threading

    from ..app import App, Request
    from ..registry_front import RegistryFront

__all__ = [
    "ACR_AUDIENCE",
    "ACR_DELETE",
    "ACR_PULL",
    "ACR_PUSH",
    "ARM_AUDIENCE",
    "ASSIGNERS",
    "CLASSIC_ARM_AUDIENCE",
    "CONTRIBUTOR",
    "DATA_ROLES",
    "DEFAULT_SETTINGS",
    "DEPLOYER_SP_OBJECT",
    "EXTRA_SUBSCRIPTION",
    "GRAPH_AUDIENCE",
    "LOCATIONS",
    "OTHER_SUBSCRIPTION",
    "OWNER",
    "RBAC_ADMIN",
    "REPOSITORY_READER",
    "REPOSITORY_WRITER",
    "ROLES",
    "SEED_CLIENT_ID",
    "SEED_SUBSCRIPTION",
    "SEED_TENANT",
    "SKUS",
    "TAKEN_REGISTRY",
    "USER_ACCESS_ADMIN",
    "Application",
    "Host",
    "ManagedCluster",
    "Password",
    "Registry",
    "ResourceGroup",
    "RoleAssignment",
    "ServicePrincipal",
    "Tenant",
    "iso",
    "make_id",
    "now",
    "odata_filter",
    "parse_time",
    "role_id",
    "seed_credentials",
    "seed_tenant",
]

_NS = uuid.UUID("6f1d4c52-8a7e-4f0b-9a35-2f7d7b1c0a11")  # this sandbox's uuid5 namespace


def make_id(kind: str, n: int | str) -> str:
    """A deterministic id: uuid5 of ``kind-n`` in this sandbox's namespace."""
    return str(uuid.uuid5(_NS, f"{kind}-{n}"))


SEED_TENANT = make_id("tenant", 1)
SEED_SUBSCRIPTION = make_id("subscription", 1)
OTHER_SUBSCRIPTION = make_id("subscription", "other")  # someone else's: not visible to the deployer
EXTRA_SUBSCRIPTION = make_id("subscription", 2)  # shown only with the extra_subscription setting
SEED_CLIENT_ID = make_id("app-id", "deployer")
DEPLOYER_APP_OBJECT = make_id("application", "deployer")
DEPLOYER_SP_OBJECT = make_id("service-principal", "deployer")
#: A registry name someone else's subscription holds (names are global across Azure).
TAKEN_REGISTRY = "binderhub"

# Built-in role definition ids (the same in every tenant) and what each allows on a registry.
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
ACR_PUSH = "8311e382-0749-4cb8-b61a-304f252e45ec"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ACR_DELETE = "c2f4ef07-c644-48eb-af81-4b1b4947fb11"
REPOSITORY_READER = "b93aa761-3e63-49ed-ac28-beffa264f7ac"  # Container Registry Repository Reader
REPOSITORY_WRITER = "2a1e307c-b015-4ebd-883e-5b7698a07328"  # Container Registry Repository Writer
USER_ACCESS_ADMIN = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
RBAC_ADMIN = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"  # Role Based Access Control Administrator
ROLES = {
    OWNER: ("Owner", {"pull", "push", "delete"}),
    CONTRIBUTOR: ("Contributor", {"pull", "push", "delete"}),
    ACR_PUSH: ("AcrPush", {"pull", "push"}),
    ACR_PULL: ("AcrPull", {"pull"}),
    ACR_DELETE: ("AcrDelete", {"delete"}),
    REPOSITORY_READER: ("Container Registry Repository Reader", {"pull"}),
    REPOSITORY_WRITER: ("Container Registry Repository Writer", {"pull", "push"}),
    USER_ACCESS_ADMIN: ("User Access Administrator", set()),
    RBAC_ADMIN: ("Role Based Access Control Administrator", set()),
}
#: The roles that grant registry data access in each role assignment mode (see the table).
DATA_ROLES = {
    "LegacyRegistryPermissions": {OWNER, CONTRIBUTOR, ACR_PUSH, ACR_PULL, ACR_DELETE},
    "AbacRepositoryPermissions": {REPOSITORY_READER, REPOSITORY_WRITER},
}
#: The roles that may write role assignments.
ASSIGNERS = {OWNER, USER_ACCESS_ADMIN, RBAC_ADMIN}
#: The regions a registry (and here a resource group) may be created in: ARM's names.
LOCATIONS = REGISTRY_LOCATIONS
SKUS = ("Basic", "Standard", "Premium")
ARM_AUDIENCE = "https://management.azure.com"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
#: ARM's other audience, the first of ``metadata/endpoints``' list: the az CLI asks for it.
CLASSIC_ARM_AUDIENCE = "https://management.core.windows.net"
#: The audience of the Entra ID token ``az acr login`` exchanges at the registry.
ACR_AUDIENCE = "https://containerregistry.azure.net"
DEFAULT_SETTINGS: dict[str, Any] = {
    "principal_not_found": 1,
    "application_not_found": 0,
    "role_propagation_seconds": 0,
    "default_role_assignment_mode": "LegacyRegistryPermissions",
    "max_password_days": 0,
    "unregistered_providers": [],
    "registry_polls": 1,
    "extra_subscription": False,
    "aks_clusters": [],
    # listUsages' Size in bytes instead of the stored blobs' (0: those): a registry near full
    "registry_used_bytes": 0,
}


def seed_credentials() -> dict[str, str]:
    """The deployer service principal's sign-in, for the sandbox's ``credentials.json``."""
    return {
        "tenant_id": SEED_TENANT,
        "client_id": SEED_CLIENT_ID,
        "client_secret": secrets.token_urlsafe(30),
        "subscription_id": SEED_SUBSCRIPTION,
    }


def now() -> dt.datetime:
    """The current time, UTC."""
    return dt.datetime.now(dt.UTC)


def iso(when: dt.datetime) -> str:
    """Azure's timestamp format (seconds, ``Z``)."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime | None:
    """An ISO 8601 time (naive means UTC), or None."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def odata_filter(text: str) -> tuple[str, str] | None:
    """``name eq 'value'`` (OData escapes a quote as two) as (name, value)."""
    m = re.fullmatch(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", text)
    return (m.group(1), m.group(2).replace("''", "'")) if m else None


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
            "endDateTime": iso(self.end),
            "hint": self.secret[:3],
            "keyId": self.key_id,
            "secretText": self.secret if with_secret else None,
            "startDateTime": iso(self.start),
        }


@dataclass
class Application:
    """An app registration: its object id, appId (the client id) and passwords."""

    id: str
    app_id: str
    display_name: str
    passwords: list[Password] = field(default_factory=list)
    not_found_left: int = 0  # Graph does not know it yet (replication) for this many attempts
    notes: str | None = None  # kept as given (application resource: notes, up to 1024)
    tags: list[str] = field(default_factory=list)  # application resource: tags (strings)
    created: dt.datetime = field(default_factory=lambda: now())  # createdDateTime, read-only

    def public(self) -> dict[str, Any]:
        """The resource as the API returns it."""
        return {
            "id": self.id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "createdDateTime": iso(self.created),
            "notes": self.notes,
            "tags": list(self.tags),
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
    kind: str = "Application"  # Graph's servicePrincipalType (an AKS kubelet's: ManagedIdentity)
    notes: str | None = None  # servicePrincipal resource: notes, kept as given
    tags: list[str] = field(default_factory=list)  # servicePrincipal resource: tags

    def public(self, tenant: str) -> dict[str, Any]:
        """The resource as the API returns it."""
        return {
            "id": self.id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "notes": self.notes,
            "tags": list(self.tags),
            "accountEnabled": True,
            "appOwnerOrganizationId": tenant,
            "servicePrincipalType": self.kind,
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
    front: RegistryFront | None = None
    role_assignment_mode: str = "LegacyRegistryPermissions"

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
                "creationDate": iso(self.created),
                "provisioningState": self.provisioning_state,
                "adminUserEnabled": self.admin_user_enabled,
                "publicNetworkAccess": "Enabled",
                "zoneRedundancy": "Disabled",
                "anonymousPullEnabled": False,
                "dataEndpointEnabled": False,
                "roleAssignmentMode": self.role_assignment_mode,
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
    effective: dt.datetime | None = None  # a new role reaches the registry then (propagation)
    condition: str | None = None  # an ABAC condition (ABAC mode: limits it to repositories)
    condition_version: str | None = None
    description: str | None = None  # RoleAssignmentProperties.description, kept as given
    created: dt.datetime = field(default_factory=lambda: now())  # createdOn, read-only

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
                "condition": self.condition,
                "conditionVersion": self.condition_version,
                "description": self.description,
                "createdOn": iso(self.created),
            },
        }

    def allows(self, actions: set[str], repository: str | None) -> set[str]:
        """What of ``actions`` (the role's) this assignment grants on ``repository``.

        Without a condition, all of them. With one, the actions it names apply only to the
        repositories its name predicates match (``None``: no repository, as the catalog);
        the others stay registry-wide (see the table).
        """
        if not self.condition:
            return actions
        named = {
            _DATA_ACTIONS[a.lower()]
            for a in _ACTION_MATCHES.findall(self.condition)
            if a.lower() in _DATA_ACTIONS
        }
        predicates = _NAME_PREDICATE.findall(self.condition)
        if not named or not predicates:
            return set()  # a condition this sandbox cannot read grants nothing (fail closed)
        return actions - named | (
            actions & named if repository and _matches(predicates, repository) else set()
        )


# ACR's repository data actions (doc page "ABAC repository permissions"), as registry actions
_DATA_ACTIONS = {
    "content/read": "pull",
    "metadata/read": "pull",
    "content/write": "push",
    "metadata/write": "push",
    "content/delete": "delete",
}
_ACTION_MATCHES = re.compile(
    r"ActionMatches\{'Microsoft\.ContainerRegistry/registries/repositories/(\w+/\w+)'\}", re.I
)
_NAME_PREDICATE = re.compile(
    r"@(?:Request|Resource)\[Microsoft\.ContainerRegistry/registries/repositories:name\]\s+"
    r"(StringStartsWith|StringEquals)(IgnoreCase)?\s+'((?:[^']|'')*)'",
    re.I,
)


def _matches(predicates: list[tuple[str, str, str]], repository: str) -> bool:
    """True when any ``(operator, IgnoreCase, value)`` predicate holds for ``repository``."""
    for operator, ignore_case, quoted in predicates:
        value, name = quoted.replace("''", "'"), repository
        if ignore_case:
            value, name = value.lower(), name.lower()
        if name.startswith(value) if operator.lower() == "stringstartswith" else name == value:
            return True
    return False


@dataclass
class ManagedCluster:
    """An AKS cluster, as far as ``--attach-acr`` reads it: its kubelet managed identity."""

    subscription: str
    resource_group: str
    name: str
    location: str
    kubelet: ServicePrincipal  # the kubelet identity's service principal (objectId: its id)

    @property
    def id(self) -> str:
        """The Azure resource id."""
        return (
            f"/subscriptions/{self.subscription}/resourcegroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerService/managedClusters/{self.name}"
        )

    def public(self) -> dict[str, Any]:
        """The resource as ManagedClusters_Get returns it (the fields read; see the table)."""
        node_group = f"MC_{self.resource_group}_{self.name}_{self.location}"
        identity_id = (
            f"/subscriptions/{self.subscription}/resourcegroups/{node_group}/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{self.name}-agentpool"
        )
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "location": self.location,
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "provisioningState": "Succeeded",
                "nodeResourceGroup": node_group,
                "servicePrincipalProfile": {"clientId": "msi"},
                "identityProfile": {
                    "kubeletidentity": {
                        "resourceId": identity_id,
                        "clientId": self.kubelet.app_id,
                        "objectId": self.kubelet.id,
                    }
                },
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
    clusters: dict[tuple[str, str, str], ManagedCluster] = field(
        default_factory=dict
    )  # (sub, lower group, lower name)
    counters: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))

    def next_id(self, kind: str) -> str:
        """The next id of ``kind``: a uuid5 of a counter, the same after every reset."""
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return make_id(kind, self.counters[kind])

    # --- queries shared by the services ---------------------------------------------
    def application(self, app_id: str) -> Application | None:
        """The application whose appId (client id) is ``app_id``."""
        return next((a for a in self.applications.values() if a.app_id == app_id), None)

    def principal(self, app_id: str) -> ServicePrincipal | None:
        """The service principal of the application ``app_id``."""
        return next((s for s in self.principals.values() if s.app_id == app_id), None)

    def check_secret(self, app_id: str, secret: str) -> ServicePrincipal | None:
        """The service principal ``app_id`` signs in as with ``secret`` now, or None."""
        app = self.application(app_id)
        principal = self.principal(app_id)
        if not app or not principal or not secret:
            return None
        when = now()
        for password in app.passwords:
            if password.start <= when < password.end and secrets.compare_digest(
                password.secret, secret
            ):
                return principal
        return None

    def registry_actions(
        self, principal_id: str, registry: Registry, repository: str | None = None
    ) -> set[str]:
        """What the principal's role assignments at or above the registry allow on its data.

        Only the roles honoured in the registry's role assignment mode count, and
        only once they have propagated; an ABAC condition limits its assignment to the
        repositories it names (see the table).
        """
        allowed: set[str] = set()
        rid = registry.id.lower()
        honoured = DATA_ROLES.get(registry.role_assignment_mode, set())
        when = now()
        for a in self.assignments.values():
            scope = a.scope.lower()
            if a.principal_id != principal_id or a.role not in honoured:
                continue
            if a.effective is not None and when < a.effective:
                continue
            if rid == scope or rid.startswith(scope + "/"):
                allowed |= a.allows(set(ROLES.get(a.role, ("", set()))[1]), repository)
        return allowed

    def caller(self, token: str, audience: str) -> str | None:
        """The appId a bearer token was issued to for ``audience``, or None."""
        found = self.tokens.get(token)
        return found[0] if found and found[1] == audience else None

    def apply_settings(self) -> None:
        """Make the settings true of the state (``extra_subscription`` adds a subscription,
        ``aks_clusters`` the clusters it names)."""
        for entry in self.settings["aks_clusters"]:
            self._add_cluster(str(entry))
        if self.settings["extra_subscription"] and EXTRA_SUBSCRIPTION not in self.subscriptions:
            self.subscriptions[EXTRA_SUBSCRIPTION] = "BinderHub sandbox second subscription"
            owner = RoleAssignment(
                make_id("role-assignment", "deployer-extra"),
                f"/subscriptions/{EXTRA_SUBSCRIPTION}",
                role_id(EXTRA_SUBSCRIPTION, OWNER),
                DEPLOYER_SP_OBJECT,
                "ServicePrincipal",
            )
            self.assignments[owner.id.lower()] = owner

    def _add_cluster(self, entry: str) -> None:
        """An AKS cluster ``<group>/<name>`` in the seeded subscription, with its kubelet
        identity's service principal (the group is made if missing)."""
        group, _, name = entry.partition("/")
        key = (SEED_SUBSCRIPTION, group.lower(), name.lower())
        if not group or not name or key in self.clusters:
            return
        found = self.groups.get((SEED_SUBSCRIPTION, group.lower()))
        if found is None:
            found = self.groups[(SEED_SUBSCRIPTION, group.lower())] = ResourceGroup(
                SEED_SUBSCRIPTION, group, "westeurope", {}
            )
        kubelet = ServicePrincipal(
            self.next_id("service-principal"),
            self.next_id("app-id"),
            f"{name}-agentpool",
            kind="ManagedIdentity",
        )
        self.principals[kubelet.id] = kubelet
        self.clusters[key] = ManagedCluster(
            SEED_SUBSCRIPTION, found.name, name, found.location, kubelet
        )


def role_id(subscription: str, role: str) -> str:
    """A built-in role definition's resource id in ``subscription``."""
    return f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def seed_tenant(deployer_secret: str) -> Tenant:
    """The seeded tenant: one subscription, the deployer (Owner), someone else's registry."""
    # fixed dates: the seeded state is the same at every reset
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    deployer_password = Password(
        key_id=make_id("password", "deployer"),
        display_name="sandbox deployer",
        secret=deployer_secret,
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
        make_id("role-assignment", "deployer"),
        f"/subscriptions/{SEED_SUBSCRIPTION}",
        role_id(SEED_SUBSCRIPTION, OWNER),
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


class Host(Protocol):
    """What Entra ID, ARM, Graph and the ACR fronts use of the backend that serves them
    (:class:`.cloud.AzureCloud`), so that they need not import it: the live tenant (a reset
    replaces it), the lock their handlers hold, the app new fronts listen on, the base URL."""

    tenant: Tenant
    lock: threading.RLock
    app: App | None

    def base(self, request: Request) -> str:
        """The backend's base URL as the client reached it."""
        ...

    def registry_now(self) -> float:
        """The registries' clock (Unix seconds): what dates their tags' pushes and pulls."""
        ...
