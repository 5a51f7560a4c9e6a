"""Fake Microsoft Graph v1.0: applications, their passwords, and service principals.

msgraph-sdk's ``request_adapter.base_url`` is ``.../azure/graph/v1.0``.

==============================================  ===========================================
behaviour                                       source
==============================================  ===========================================
bearer token for https://graph.microsoft.com,   Graph auth doc page; 401 body: assumption
else 401 InvalidAuthenticationToken
only the deployer may write the directory:      Graph permissions doc page
403 Authorization_RequestDenied                 (Application.ReadWrite.All)
create-for-rbac = POST applications, POST       DESIGN.md section 4 (checked with
servicePrincipals {appId}, POST                 msgraph-sdk); Graph API reference pages
applications/{id}/addPassword (``secretText``   (application-post-applications,
shown once)                                     serviceprincipal-post-serviceprincipals,
                                                application-addpassword)
``$filter`` ``displayName eq`` / ``appId eq``   Graph $filter doc page (OData quoting)
(a quote is doubled); others: 400
Request_UnsupportedQuery
duplicate service principal: 409                DESIGN.md section 4 ("400 or 409, handle
Request_MultipleObjectsWithSameKeyValue         both"); 409 chosen here: assumption
appId without application: 400                  assumption (message text)
removePassword of an unknown keyId: 400         application-removepassword reference page;
                                                the text: assumption
deleting an application deletes its service     application-delete reference page
principal
unknown object id: 404 Request_ResourceNotFound Graph errors doc page
a new principal misses role assignments for a   DESIGN.md section 4 (see ``arm``)
while (``principal_not_found`` setting)
==============================================  ===========================================
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import TYPE_CHECKING, Any

from ..app import Handler, Request, Response, json_response
from .errors import graph_error, graph_not_found
from .models import (
    GRAPH_AUDIENCE,
    SEED_CLIENT_ID,
    SEED_TENANT,
    Application,
    Password,
    ServicePrincipal,
    now,
    odata_filter,
    parse_time,
)

if TYPE_CHECKING:
    from .cloud import AzureCloud

__all__ = ["Graph"]


class Graph:
    """Microsoft Graph over the cloud's tenant."""

    def __init__(self, cloud: AzureCloud) -> None:
        self.cloud = cloud

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, pattern, handler) under the cloud's prefix."""
        methods = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE")
        return [(m, "/graph/v1.0/{rest:path}", self.graph) for m in methods]

    def graph(self, request: Request) -> Response:
        """Microsoft Graph v1.0: applications and service principals."""
        caller = self.cloud.tenant.caller(request.bearer(), GRAPH_AUDIENCE)
        if caller is None:
            return graph_error(
                401, "InvalidAuthenticationToken", "Access token validation failure."
            )
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
            wanted = odata_filter(text)
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
        apps = self.cloud.tenant.applications
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
                    self.cloud.tenant.next_id("application"),
                    self.cloud.tenant.next_id("app-id"),
                    name,
                )
                apps[new.id] = new
                return json_response(201, new.public())
            return graph_error(405, "Request_BadRequest", "Unsupported method")
        app = apps.get(rest[0])
        if app is None:
            return graph_not_found(rest[0])
        if len(rest) == 1 and request.method == "GET":
            return json_response(200, app.public())
        if len(rest) == 1 and request.method == "DELETE":
            del apps[app.id]
            # deleting an application deletes its service principal in the home tenant
            for sp in [s for s in self.cloud.tenant.principals.values() if s.app_id == app.app_id]:
                del self.cloud.tenant.principals[sp.id]
            return Response(204)
        if rest[1:] == ["addPassword"] and request.method == "POST":
            cred = request.json().get("passwordCredential") or {}
            start = now()
            end = parse_time(str(cred.get("endDateTime") or "")) or start + dt.timedelta(days=730)
            password = Password(
                self.cloud.tenant.next_id("password"),
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
        sps = self.cloud.tenant.principals
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
                app = self.cloud.tenant.application(app_id)
                if app is None:
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        f"The appId '{app_id}' of the service principal does not reference "
                        "a valid application object.",
                    )
                if self.cloud.tenant.principal(app_id):
                    return graph_error(
                        409,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "Another object with the same value for property "
                        "servicePrincipalNames already exists.",
                    )
                new = ServicePrincipal(
                    self.cloud.tenant.next_id("service-principal"),
                    app_id,
                    app.display_name,
                    int(self.cloud.tenant.settings["principal_not_found"]),
                )
                sps[new.id] = new
                return json_response(201, new.public(SEED_TENANT))
            return graph_error(405, "Request_BadRequest", "Unsupported method")
        sp = sps.get(rest[0])
        if sp is None:
            return graph_not_found(rest[0])
        if len(rest) == 1 and request.method == "GET":
            return json_response(200, sp.public(SEED_TENANT))
        if len(rest) == 1 and request.method == "DELETE":
            del sps[sp.id]
            return Response(204)
        return graph_error(
            400, "BadRequest", f"Unsupported request {request.method} {request.path}"
        )
