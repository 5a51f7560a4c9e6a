r"""Fake Azure Resource Manager: subscriptions, resource groups, registries, role assignments.

The mgmt SDKs' ``base_url`` is ``.../azure/management``; the path is routed by a table
(:attr:`ResourceManager.table`) that reads it as ARM does: case-insensitively, empty
segments dropped, and only after the caller signed in.

==============================================  ===========================================
behaviour                                       source
==============================================  ===========================================
bearer token for https://management.azure.com,  ARM authentication doc page; the 401 body
else 401 InvalidAuthenticationToken with        and header: assumption
``WWW-Authenticate: Bearer authorization_uri``
``api-version`` required, else 400              ARM request doc page (Azure REST API
MissingApiVersionParameter                      reference, "Azure REST API common")
list subscriptions the caller has a role in     Subscriptions_List in azure-rest-api-specs
                                                (resources/subscriptions)
writes need Owner or Contributor at or above    Azure RBAC doc page; 403
the scope, reads any role; role assignment      AuthorizationFailed body: the message Azure
writes need Owner, User Access Administrator    prints, naming the action (quoted in many
or Role Based Access Control Administrator:     issue threads, e.g. Azure/azure-cli issues on
403 AuthorizationFailed naming the action       ``az role assignment create``); the action
(``Microsoft.Authorization/roleAssignments/     names: Azure resource provider operations
write``, ...)                                   doc page
``GET providers/Microsoft.ContainerRegistry``:  Providers_Get in azure-rest-api-specs
ARM's answer, vendored in ``regions`` (its      (resources); the data's sources: ``regions``
``registries`` locations are display names)
a location outside the ``registries`` list:     Azure/acr issue 406 (ARM's answer captured:
400 LocationNotAvailableForResourceType "The    "The provided location 'francecentral' is not
provided location '<as sent>' is not available  available for resource type '...'. List of
for resource type 'Microsoft.ContainerRegistry/ available regions for the resource type is
registries'. List of available regions for the  '...'"); a display name is taken as its name
resource type is '<names>'."                    (``regions.location_name``)
a namespace listed in the                       ``ARMAutoResourceProviderRegistrationPolicy``
``unregistered_providers`` setting: 409         of azure-mgmt-core (reads the code and the
MissingSubscriptionRegistration ("... namespace quoted namespace, POSTs ``providers/{ns}/
'Microsoft.ContainerRegistry'"); ``POST         register``, polls ``GET providers/{ns}`` for
providers/{ns}/register`` -> Registering, the   ``registrationState``); Providers_Register in
next ``GET providers/{ns}`` -> Registered       azure-rest-api-specs (resources); message:
                                                aka.ms/rps-not-found doc page
registry delete: 202 + ``Location`` under its   Registries_Delete (200/202/204, long-running)
``operationStatuses``, polled to 200            and its example RegistryDelete.json in azure-
                                                rest-api-specs 2025-11-01 (vendored in tests/
                                                data/azure)
``properties.roleAssignmentMode`` read on       RegistryProperties in azure-rest-api-specs
create and update, returned on every read;      2025-11-01, example RegistryCreateAbac.json
another value: 400 (code: assumption)           (vendored in tests/data/azure)
a new role assignment takes                     Azure RBAC troubleshooting doc page (changes
``role_propagation_seconds`` (setting) to       "can take up to 10 minutes"); see ``models``
reach the registry
resource groups: lowercase ``resourcegroups``,  DESIGN.md section 4; ResourceGroups_* in
case-insensitive names, 201 create / 200        azure-rest-api-specs (resources) with
(names: ``[-\w._()]``, any Unicode letter or   (the spec's pattern ``^[-\w\._\(\)]+$``;
digit, 1-90, not ending in '.'; URLs in         "Naming rules and restrictions for Azure
``Location``/``Azure-AsyncOperation`` headers   resources": ``Char.IsLetterOrDigit``);
percent-encoded)                                header encoding: RFC 9110 5.5, RFC 3986
update, HEAD 204/404, 409                       examples; LocationNotAvailableForResource-
InvalidResourceGroupLocation, delete 202 +      Group and InvalidResourceGroupName:
``Location`` polled                             assumption (codes Azure answers)
checkNameAvailability: Invalid (5-50 letters    Registries_CheckNameAvailability in
or digits) or AlreadyExists                     azure-rest-api-specs (containerregistry)
                                                and its examples
registry create: 201 + ``Azure-AsyncOperation`` DESIGN.md section 4 (checked with the
+ ``Retry-After: 0``, ``InProgress`` polls      SDK's LRO poller); Registries_Create in
then ``Succeeded``                              azure-rest-api-specs
registry name taken elsewhere: 409              AlreadyInUse message links the
AlreadyInUse                                    checknameavailability doc page
                                                (docs.microsoft.com/en-us/rest/api/
                                                containerregistry/registries/
                                                checknameavailability)
missing registry: 404 ResourceNotFound          ARM doc page aka.ms/ARMResourceNotFoundFix
``loginServer`` is the front's 127.0.0.1:PORT   assumption (loopback stand-in for
                                                ``<name>.azurecr.io``)
role assignment to a new principal: 400         DESIGN.md section 4 (az CLI retries up to 36
PrincipalNotFound until it replicates           times); message links aka.ms/docs-principaltype
the same PUT again: 201 with the same           assumption
assignment; same role+principal+scope under
another name: 409 RoleAssignmentExists;
changing one: 409 RoleAssignmentUpdateNotPer-
mitted
list assignments for a scope (related scopes,   RoleAssignments_ListForScope in
``$filter=principalId eq``)                     azure-rest-api-specs (authorization)
anonymous ``GET metadata/endpoints``: the       ``az cloud register --endpoint-resource-
cloud's endpoints (login, audiences, ARM,       manager`` reads it (azure-cli ``cloud/
Graph, ``suffixes.acrLoginServer``)             custom.py`` ``_populate_from_metadata_
                                                endpoint``, api-version 2022-09-01; fields as
                                                ``core/cloud.py`` ``_arm_to_cli_mapper`` reads
                                                them); Microsoft docs "az cloud register" for
                                                Azure Stack Hub
``GET /subscriptions/{id}/resources`` with      Resources_List in azure-rest-api-specs
``$filter=resourceType eq '...'`` (the          (resources, GenericResourceExpanded); azure-
registries; other filters: 400                  cli ``core/commands/parameters.py``
InvalidFilterInQueryString)                     ``get_resources_in_subscription``, used by
                                                ``az acr show/login/delete`` without ``-g``;
                                                error code: assumption
role assignment ``description`` kept as given,  RoleAssignmentProperties in azure-rest-api-
``createdOn`` shown                             specs (authorization 2022-04-01)
role assignment ``condition`` and               RoleAssignmentProperties in azure-rest-api-
``conditionVersion`` kept and returned; a PUT   specs (authorization 2022-04-01); the update
of the same role and principal updates them     of the condition: assumption
``GET .../Microsoft.ContainerService/           ManagedClusters_Get in azure-rest-api-specs
managedClusters/{name}`` (any api-version, as   (containerservice); the generic read
``ResourceManagementClient.resources.           ``resources.get_by_id``: azure-mgmt-resource;
get_by_id`` sends it): the cluster (see         404 ResourceNotFound as for a registry; only
``models``), else 404 ResourceNotFound          the ``aks_clusters`` setting makes one
ACR Tasks (``.../tasks/{task}``), ``listUsages``  see ``retention``
and the registries' clock
``{scope}/providers/Microsoft.Authorization/    RoleDefinitions_List and RoleDefinitions_Get
roleDefinitions`` with ``$filter=roleName eq``  in azure-rest-api-specs (authorization); the
and ``.../roleDefinitions/{id}``: the built-in  built-in roles doc page; azure-cli ``role/
roles (type BuiltInRole)                        custom.py`` ``_resolve_role_id``
==============================================  ===========================================
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import quote

from ..app import Handler, PathTable, Request, Response, RouteTable, json_response
from .acr import start_front
from .errors import arm_error
from .models import (
    ARM_AUDIENCE,
    ASSIGNERS,
    CLASSIC_ARM_AUDIENCE,
    CONTRIBUTOR,
    DATA_ROLES,
    LOCATIONS,
    OWNER,
    ROLES,
    SEED_SUBSCRIPTION,
    SEED_TENANT,
    SKUS,
    Host,
    Registry,
    ResourceGroup,
    RoleAssignment,
    ServicePrincipal,
    now,
    odata_filter,
    role_id,
)
from .regions import REGISTRY_TYPE, location_name, provider_answer
from .retention import Retention

__all__ = ["ResourceManager"]

#: The methods ARM serves (another one is the backend's 404).
METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE")
_SUB = "/subscriptions/{sub}"
_GROUP = _SUB + "/resourceGroups/{group}"
_REGISTRY = _GROUP + "/providers/Microsoft.ContainerRegistry/registries/{name}"
#: Role assignments and definitions live at any scope (the tenant's root too).
_AUTHORIZATION = "{scope:path}/providers/Microsoft.Authorization"


class ResourceManager:
    """ARM over the cloud's tenant; a registry created here gets its ACR front."""

    def __init__(self, cloud: Host) -> None:
        self.cloud = cloud
        self.retention = Retention(cloud)  # ACR Tasks (acr purge), listUsages, the clock
        checked = self._in_subscription
        # ARM's own table, read by :meth:`arm` once the caller is signed in (ARM's paths
        # are case-insensitive: Starlette's router is not); the first row that takes a
        # request wins, and ``*`` rows answer the methods they do not serve themselves
        self.table = PathTable(
            [
                ("*", _AUTHORIZATION + "/roleAssignments", self._role_assignments),
                ("*", _AUTHORIZATION + "/roleAssignments/{assignment}", self._role_assignments),
                ("*", _AUTHORIZATION + "/roleDefinitions", self._role_definitions),
                ("*", _AUTHORIZATION + "/roleDefinitions/{role}", self._role_definitions),
                ("GET", "/subscriptions", self._list_subscriptions),
                # registration is the one call a namespace not registered yet answers
                ("*", _SUB + "/providers/{namespace}", checked(self._provider, registered=False)),
                (
                    "*",
                    _SUB + "/providers/{namespace}/register",
                    checked(self._provider, registered=False),
                ),
                ("GET", _SUB, checked(self._get_subscription)),
                ("GET", _SUB + "/resources", checked(self._list_resources)),
                ("*", _GROUP, checked(self._resource_group)),
                # a resource group's deletion is complete when polled
                ("GET", _SUB + "/operationresults/{operation}", checked(lambda r: Response(200))),
                (
                    "POST",
                    _SUB + "/providers/Microsoft.ContainerRegistry/checkNameAvailability",
                    checked(self._check_name),
                ),
                ("*", _REGISTRY, checked(self._registry)),
                ("*", _REGISTRY + "/tasks/{task}", checked(self.retention.task)),
                ("GET", _REGISTRY + "/listUsages", checked(self.retention.usages)),
                ("GET", _REGISTRY + "/operationStatuses/{operation}", checked(self._operation)),
                (
                    "GET",
                    _GROUP + "/providers/Microsoft.ContainerService/managedClusters/{name}",
                    checked(self._managed_cluster),
                ),
                ("*", _SUB + "{other:path}", checked(_no_route)),
                ("*", "{other:path}", _no_route),
            ],
            ignore_case=True,
        )

    def routes(self) -> RouteTable:
        """(method, pattern, handler) under the cloud's prefix: all of ARM goes to :meth:`arm`."""
        return [(m, "/management/{rest:path}", self.arm) for m in METHODS]

    def arm(self, request: Request) -> Response:
        """Azure Resource Manager: the caller signs in, then :attr:`table` routes the path."""
        path = _arm_path(request)
        if path.lower() == "/metadata/endpoints":
            return self._metadata(request)  # anonymous: read before any sign-in
        if self._caller(request) is None:
            return arm_error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                {
                    "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/'
                    f'{SEED_TENANT}"'
                },
            )
        if not request.arg("api-version"):
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        handler, params = self.table.find(request.method, path)
        request.params.update(params)
        return handler(request)

    def _caller(self, request: Request) -> ServicePrincipal | None:
        """The service principal the request's ARM token was issued to, or None."""
        app_id = self.cloud.tenant.caller(request.bearer(), ARM_AUDIENCE)
        return None if app_id is None else self.cloud.tenant.principal(app_id)

    def _in_subscription(self, handler: Handler, *, registered: bool = True) -> Handler:
        """``handler`` behind what a call under a subscription passes, in ARM's order: the
        subscription exists, the caller may act at the path's scope, and (``registered``)
        the resource provider the path names is registered in the subscription."""

        def checked(request: Request) -> Response:
            sub = request.params["sub"]
            if sub.lower() not in self.cloud.tenant.subscriptions:
                return arm_error(
                    404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found."
                )
            caller = self._caller(request)
            assert caller is not None  # signed in: see arm
            denied = self._authorize(request, caller, _arm_path(request))
            if denied:
                return denied
            unregistered = self._unregistered(_arm_path(request).lower().split("/")[3:])
            if registered and unregistered:
                return arm_error(
                    409,
                    "MissingSubscriptionRegistration",
                    f"The subscription is not registered to use namespace '{unregistered}'. See "
                    "https://aka.ms/rps-not-found for how to register subscriptions.",
                )
            return handler(request)

        return checked

    def _authorize(
        self,
        request: Request,
        principal: ServicePrincipal,
        scope: str,
        action: str = "",
    ) -> Response | None:
        """Writes need Owner or Contributor at or above the scope (role assignments: an assigner).

        ``action`` is the operation's name for the refusal (default: derived from the path).
        """
        scope_l = scope.lower()
        roles = {
            a.role
            for a in self.cloud.tenant.assignments.values()
            if a.principal_id == principal.id
            and (scope_l == a.scope.lower() or scope_l.startswith(a.scope.lower() + "/"))
        }
        writing = request.method in ("PUT", "DELETE", "PATCH")
        if action.startswith("Microsoft.Authorization/roleAssignments/") and writing:
            needed = set(ASSIGNERS)
        else:
            needed = {OWNER, CONTRIBUTOR} if writing else set(ROLES)
        if roles & needed:
            return None
        action = action or _action(request.method, scope)
        return arm_error(
            403,
            "AuthorizationFailed",
            f"The client '{principal.app_id}' with object id '{principal.id}' does not have "
            f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
            "invalid. If access was recently granted, please refresh your credentials.",
        )

    def _unregistered(self, rest: list[str]) -> str | None:
        """The namespace a call under the subscription uses when it is not registered, else None."""
        wanted = {
            str(n).lower(): str(n) for n in self.cloud.tenant.settings["unregistered_providers"]
        }
        for i, segment in enumerate(rest[:-1]):
            if segment == "providers" and rest[i + 1] in wanted:
                return wanted[rest[i + 1]]
        return None

    def _provider(self, request: Request) -> Response:
        """Providers_Get / Providers_Register: the namespace's registration state."""
        sub, namespace = request.params["sub"].lower(), request.params["namespace"]
        register = _arm_path(request).lower().endswith("/register")
        settings = self.cloud.tenant.settings
        pending = {n.lower() for n in settings["unregistered_providers"]}
        state = "NotRegistered" if namespace.lower() in pending else "Registered"
        if register and request.method == "POST":
            settings["unregistered_providers"] = [
                n for n in settings["unregistered_providers"] if n.lower() != namespace.lower()
            ]
            state = "Registering" if state == "NotRegistered" else state
        elif request.method != "GET" or register:
            return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")
        return json_response(200, provider_answer(sub, namespace, state))

    def _get_subscription(self, request: Request) -> Response:
        return json_response(200, self._subscription(request.params["sub"].lower()))

    def _subscription(self, sub: str) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub}",
            "subscriptionId": sub,
            "tenantId": SEED_TENANT,
            "displayName": self.cloud.tenant.subscriptions[sub],
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "spendingLimit": "Off",
            },
            "authorizationSource": "RoleBased",
        }

    def _list_subscriptions(self, request: Request) -> Response:
        principal = self._caller(request)
        assert principal is not None  # signed in: see arm
        visible = [
            self._subscription(sub)
            for sub in self.cloud.tenant.subscriptions
            if any(
                a.principal_id == principal.id
                and a.scope.lower().startswith(f"/subscriptions/{sub}")
                for a in self.cloud.tenant.assignments.values()
            )
        ]
        return json_response(
            200, {"value": visible, "count": {"type": "Total", "value": len(visible)}}
        )

    def _resource_group(self, request: Request) -> Response:
        sub, name = request.params["sub"].lower(), request.params["group"]
        key = (sub, name.lower())
        group = self.cloud.tenant.groups.get(key)
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
            location = location_name(str(body.get("location", "")))
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
            self.cloud.tenant.groups[key] = group
            return json_response(201, group.public())
        if request.method == "DELETE":
            if group is None:
                return arm_error(
                    404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
                )
            for rname, registry in list(self.cloud.tenant.registries.items()):
                if registry.subscription == sub and registry.resource_group.lower() == name.lower():
                    self._drop_registry(rname)
            prefix = group.id.lower()
            for aid, a in list(self.cloud.tenant.assignments.items()):
                if a.scope.lower() == prefix or a.scope.lower().startswith(prefix + "/"):
                    del self.cloud.tenant.assignments[aid]
            del self.cloud.tenant.groups[key]
            location = (
                f"{self.cloud.base(request)}/management/subscriptions/{sub}/operationresults/"
                f"{self.cloud.tenant.next_id('operation')}?api-version={request.arg('api-version')}"
            )  # no name in it: ASCII as it is
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
        if name.lower() in self.cloud.tenant.registries:
            return json_response(
                200,
                {
                    "nameAvailable": False,
                    "reason": "AlreadyExists",
                    "message": f"The registry {name} is already in use.",
                },
            )
        return json_response(200, {"nameAvailable": True})

    def _registry(self, request: Request) -> Response:
        sub, group_name = request.params["sub"].lower(), request.params["group"]
        name = request.params["name"]
        registry = self.cloud.tenant.registries.get(name.lower())
        mine = (
            registry is not None
            and registry.subscription == sub
            and registry.resource_group.lower() == group_name.lower()
        )
        group = self.cloud.tenant.groups.get((sub, group_name.lower()))
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
        if request.method == "DELETE":  # Registries_Delete: long-running (see the table)
            if not mine or registry is None:
                return Response(204)
            registry_id = registry.id
            self._drop_registry(name.lower())
            operation = "registries-" + self.cloud.tenant.next_id("operation")
            self.cloud.tenant.operations[operation] = "deleted:" + name.lower()
            location = (
                f"{self.cloud.base(request)}/management{_path(registry_id)}/operationStatuses/"
                f"{operation}?api-version={request.arg('api-version')}"
            )
            return Response(202, b"", {"Location": location, "Retry-After": "0"})
        if request.method != "PUT":
            return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")
        if group is None:
            return arm_error(
                404, "ResourceGroupNotFound", f"Resource group '{group_name}' could not be found."
            )
        body = request.json()
        props = body.get("properties") or {}
        sku = str((body.get("sku") or {}).get("name", ""))
        location = location_name(str(body.get("location", "")))
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
                f"The provided location '{body.get('location')}' is not available for resource "
                f"type '{REGISTRY_TYPE}'. List of available regions for the resource type is "
                f"'{','.join(LOCATIONS)}'.",
            )
        if registry is not None and not mine:
            return arm_error(
                409,
                "AlreadyInUse",
                f"The registry DNS name {name.lower()}.azurecr.io is already in use. You can check "
                "if the name is already claimed using following API: https://docs.microsoft.com/"
                "en-us/rest/api/containerregistry/registries/checknameavailability",
            )
        mode = props.get("roleAssignmentMode")
        if mode is not None and mode not in DATA_ROLES:
            return arm_error(
                400,
                "InvalidRoleAssignmentMode",
                f"The role assignment mode '{mode}' is not valid: use one of "
                f"{', '.join(DATA_ROLES)}.",
            )
        if registry is not None:  # an update of ours: synchronous
            registry.sku = sku
            registry.admin_user_enabled = bool(props.get("adminUserEnabled", False))
            registry.tags = dict(body.get("tags") or {})
            registry.role_assignment_mode = mode or registry.role_assignment_mode
            return json_response(200, registry.public())
        registry = Registry(
            sub,
            group.name,
            name,
            location,
            sku,
            bool(props.get("adminUserEnabled", False)),
            dict(body.get("tags") or {}),
            now(),
            polls_left=int(self.cloud.tenant.settings["registry_polls"]),
            role_assignment_mode=str(
                mode or self.cloud.tenant.settings["default_role_assignment_mode"]
            ),
        )
        registry.front = start_front(self.cloud, registry)
        self.cloud.tenant.registries[name.lower()] = registry
        operation = "registries-" + self.cloud.tenant.next_id("operation")
        self.cloud.tenant.operations[operation] = name.lower()
        status_url = (
            f"{self.cloud.base(request)}/management{_path(registry.id)}/operationStatuses/"
            f"{operation}?api-version={request.arg('api-version')}"
        )
        return json_response(
            201, registry.public(), {"Azure-AsyncOperation": status_url, "Retry-After": "0"}
        )

    def _operation(self, request: Request) -> Response:
        operation = request.params["operation"]
        name = self.cloud.tenant.operations.get(operation)
        if name and name.startswith("deleted:"):  # a delete's Location: done at once
            return json_response(
                200,
                {"id": operation, "name": operation, "status": "Succeeded"},
                {"Retry-After": "0"},
            )
        registry = self.cloud.tenant.registries.get(name or "")
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
        registry = self.cloud.tenant.registries.pop(key)
        if registry.front:
            registry.front.stop()
            registry.front = None

    def _managed_cluster(self, request: Request) -> Response:
        """An AKS cluster (``aks_clusters`` setting), as ManagedClusters_Get answers."""
        sub, group_name = request.params["sub"].lower(), request.params["group"]
        name = request.params["name"]
        if (sub, group_name.lower()) not in self.cloud.tenant.groups:
            return arm_error(
                404, "ResourceGroupNotFound", f"Resource group '{group_name}' could not be found."
            )
        cluster = self.cloud.tenant.clusters.get((sub, group_name.lower(), name.lower()))
        if cluster is None:
            return arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource "
                f"group '{group_name}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        return json_response(200, cluster.public())

    def _role_assignments(self, request: Request) -> Response:
        """RoleAssignments_* at ``{scope}`` (the tenant's root when empty)."""
        caller = self._caller(request)
        assert caller is not None  # signed in: see arm
        scope = request.params["scope"] or "/"
        name = request.params.get("assignment", "")
        verb = {"PUT": "write", "DELETE": "delete"}.get(request.method, "read")
        denied = self._authorize(
            request, caller, scope, f"Microsoft.Authorization/roleAssignments/{verb}"
        )
        if denied:
            return denied
        if not name:
            if request.method != "GET":
                return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")
            return self._list_assignments(request, scope)
        key = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}".lower()
        existing = self.cloud.tenant.assignments.get(key)
        if request.method == "GET":
            if existing is None:
                return arm_error(
                    404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found."
                )
            return json_response(200, existing.public())
        if request.method == "DELETE":
            if existing is None:
                return Response(204)
            del self.cloud.tenant.assignments[key]
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
        principal = self.cloud.tenant.principals.get(principal_id)
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
        condition = props.get("condition") or None
        version = props.get("conditionVersion") or ("2.0" if condition else None)
        if existing is not None:
            if existing.role == role and existing.principal_id == principal_id:
                existing.condition, existing.condition_version = condition, version
                return json_response(201, existing.public())
            return arm_error(
                409,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        for other in self.cloud.tenant.assignments.values():
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
            effective=now()
            + dt.timedelta(seconds=float(self.cloud.tenant.settings["role_propagation_seconds"])),
            condition=condition,
            condition_version=version,
            description=props.get("description"),
        )
        self.cloud.tenant.assignments[key] = assignment
        return json_response(201, assignment.public())

    def _list_assignments(self, request: Request, scope: str) -> Response:
        scope_l = scope.lower()
        wanted = odata_filter(request.arg("$filter"))
        found = []
        for a in self.cloud.tenant.assignments.values():
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

    # --- what the az CLI reads besides what the SDK steps use (see the table) ------------
    def _metadata(self, request: Request) -> Response:
        """The sandbox cloud's endpoints, as ``az cloud register`` reads them."""
        if request.method != "GET":
            return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")
        base = self.cloud.base(request)
        return json_response(
            200,
            {
                "name": "BinderHubSandbox",
                "portal": f"{base}/portal",
                "resourceManager": f"{base}/management/",
                "authentication": {
                    "loginEndpoint": f"{base}/login",
                    "audiences": [CLASSIC_ARM_AUDIENCE + "/", ARM_AUDIENCE + "/"],
                    "tenant": "common",
                    "identityProvider": "AAD",
                },
                "microsoftGraphResourceId": f"{base}/graph/",
                "suffixes": {"acrLoginServer": "azurecr.io"},
            },
        )

    def _list_resources(self, request: Request) -> Response:
        """Resources_List: the subscription's registries (the only resources besides groups)."""
        sub = request.params["sub"].lower()
        text = request.arg("$filter")
        wanted = odata_filter(text) if text else None
        if text and (wanted is None or wanted[0] != "resourceType"):
            return arm_error(
                400,
                "InvalidFilterInQueryString",
                f"Invalid $filter '{text}' specified in the query string.",
            )
        registry_type = "Microsoft.ContainerRegistry/registries"
        if wanted and wanted[1].lower() != registry_type.lower():
            return json_response(200, {"value": []})
        found = []
        for registry in self.cloud.tenant.registries.values():
            if registry.subscription != sub:
                continue
            public = registry.public()
            found.append({k: public[k] for k in ("id", "name", "type", "location", "tags", "sku")})
        return json_response(200, {"value": found})

    def _role_definitions(self, request: Request) -> Response:
        """RoleDefinitions_List (``$filter=roleName eq``) and RoleDefinitions_Get: built-ins."""
        if request.method != "GET":
            return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")
        scope = request.params["scope"] or "/"
        sub = scope.split("/")[2] if scope.lower().startswith("/subscriptions/") else ""
        sub = sub or SEED_SUBSCRIPTION

        def public(role: str) -> dict[str, Any]:
            name, _ = ROLES[role]
            return {
                "id": role_id(sub, role),
                "name": role,
                "type": "Microsoft.Authorization/roleDefinitions",
                "properties": {
                    "roleName": name,
                    "type": "BuiltInRole",
                    "description": f"{name} (built-in role)",
                    "assignableScopes": ["/"],
                    "permissions": [],
                },
            }

        wanted_id = request.params.get("role", "").lower()
        if wanted_id:
            if wanted_id not in ROLES:
                return arm_error(
                    404,
                    "RoleDefinitionDoesNotExist",
                    f"The specified role definition with ID '{wanted_id}' does not exist.",
                )
            return json_response(200, public(wanted_id))
        text = request.arg("$filter")
        wanted = odata_filter(text) if text else None
        if text and (wanted is None or wanted[0] not in ("roleName", "type")):
            return arm_error(
                400,
                "InvalidFilterInQueryString",
                f"Invalid $filter '{text}' specified in the query string.",
            )
        found = [
            public(role)
            for role, (name, _) in ROLES.items()
            if wanted is None
            or (wanted[0] == "roleName" and wanted[1].lower() == name.lower())
            or (wanted[0] == "type" and wanted[1] == "BuiltInRole")
        ]
        return json_response(200, {"value": found})


def _arm_path(request: Request) -> str:
    """The path under ``/management`` as ARM reads it: its segments, empty ones dropped."""
    return "/" + "/".join(s for s in request.params["rest"].split("/") if s)


def _no_route(request: Request) -> Response:
    """ARM's answer to a path or method it does not serve."""
    return arm_error(404, "InvalidResourceType", f"No route for {request.method} {request.path}")


def _path(resource_id: str) -> str:
    """A resource id as it goes into a header's URL: percent-encoded UTF-8 (RFC 3986).

    Header values are ASCII (RFC 9110 5.5: other octets are opaque), and ARM allows
    resource group names with any letter (``Char.IsLetterOrDigit``: Microsoft's "Naming rules
    and restrictions for Azure resources", Microsoft.Resources/resourcegroups), so ARM's
    ``Azure-AsyncOperation`` and ``Location`` carry such names percent-encoded; raw, the
    client read another URL and polled a registry that never left Creating (issue 23).
    """
    return quote(resource_id, safe="/()")


def _action(method: str, scope: str) -> str:
    """The operation ARM names in AuthorizationFailed: ``<namespace>/<types>/<verb>``."""
    parts = [p for p in scope.split("/") if p]
    lower = [p.lower() for p in parts]
    verb = {"PUT": "write", "PATCH": "write", "DELETE": "delete", "POST": "action"}.get(
        method, "read"
    )
    if "providers" in lower:
        at = len(lower) - 1 - lower[::-1].index("providers")
        names = parts[at + 1 :]
        kind = "/".join([names[0], *names[1::2]]) if names else "Microsoft.Resources"
    elif "resourcegroups" in lower:
        kind = "Microsoft.Resources/subscriptions/resourceGroups"
    else:
        kind = "Microsoft.Resources/subscriptions"
    return f"{kind}/{verb}"
