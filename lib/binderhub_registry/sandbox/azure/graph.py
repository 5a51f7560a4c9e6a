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
a new application is not there yet for          az CLI ``create_service_principal_for_rbac``
``application_not_found`` attempts (setting):   retries both (36 x 5 s); the body with
POST servicePrincipals with its appId: 400      ``details[].code`` NoBackingApplicationObject,
Request_BadRequest "The appId '...' of the      target appId: as captured in third-party
service principal does not reference a valid    recorded tests of Graph clients; issue 7 of
application object." (details code              this project quotes the same
NoBackingApplicationObject); GET
/applications/{id}: 404 Request_ResourceNotFound
addPassword longer than ``max_password_days``   Microsoft Entra app management policies doc
(setting; 0: no policy): 400                    page (passwordLifetime restriction); the
CredentialInvalidLifetimeAsPerAppPolicy         message "Credential lifetime exceeds the max
"Credential lifetime exceeds the max value      value allowed as per assigned policy" as
allowed as per assigned policy '<id>'."         users quote it (az ad sp create-for-rbac and
                                                az ad app credential reset reports); status
                                                400: assumption
a token for the sandbox's own Graph URL is      the az CLI asks for
accepted (see ``entra``)                        ``<microsoft_graph_resource_id>/.default``
``$filter`` clauses joined by ``and``:          Graph $filter doc page (query-filter:
``startswith(displayName,'x')``,                ``startswith``, lambda ``any`` on collections);
``servicePrincipalNames/any(c:c eq 'x')``,      the clauses azure-cli sends (``role/custom.py``
``identifierUris/any(s:s eq 'x')``; string      ``list_service_principals``,
comparisons exact                               ``_resolve_service_principal``,
                                                ``_resolve_application``); exactness:
                                                assumption
a service principal's                           servicePrincipal resource page
``servicePrincipalNames`` is its appId (no      (servicePrincipalNames); applications made
identifier URI: ``az ad sp show --id            by ``create-for-rbac`` since the CLI moved to
http://<name>`` finds nothing)                  Graph get none (azure-cli 2.37 release notes)
``PATCH /applications/{id}``: 204, fields       application-update reference page;
replaced (``create-for-rbac`` rerun)            azure-cli ``create_application``
applications keep ``notes`` (a string) and      application resource page (properties
``tags`` (strings) given at creation or by      ``notes``, ``tags``; ``createdDateTime``
PATCH, and show ``createdDateTime``; service     read-only); servicePrincipal resource page
principals keep ``notes`` and ``tags`` given    (``notes``, ``tags``); application-update
at creation                                     reference page (PATCH of both)
``POST /directoryObjects/getByIds`` {ids,       directoryobject-getbyids reference page;
types}: the objects found, with                 azure-cli ``_get_object_stubs``
``@odata.type``
==============================================  ===========================================
"""

from __future__ import annotations

import datetime as dt
import re
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
    make_id,
    now,
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
        if parts == ["directoryObjects", "getByIds"] and request.method == "POST":
            return self._get_by_ids(request)
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
            clauses = _filter_clauses(text)
            if clauses is None or any(c[0] == "eq" and c[1] not in fields for c in clauses):
                return graph_error(
                    400,
                    "Request_UnsupportedQuery",
                    f"Unsupported or invalid query filter clause specified for property '{text}'.",
                )
            items = [i for i in items if all(_matches(i, c, fields) for c in clauses)]
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
                body = request.json()
                new = Application(
                    self.cloud.tenant.next_id("application"),
                    self.cloud.tenant.next_id("app-id"),
                    name,
                    not_found_left=int(self.cloud.tenant.settings["application_not_found"]),
                    notes=_notes(body),
                    tags=_tags(body),
                )
                apps[new.id] = new
                return json_response(201, new.public())
            return graph_error(405, "Request_BadRequest", "Unsupported method")
        app = apps.get(rest[0])
        if app is None:
            return graph_not_found(rest[0])
        if len(rest) == 1 and request.method == "GET":
            if app.not_found_left > 0:  # created moments ago: not replicated yet
                app.not_found_left -= 1
                return graph_not_found(rest[0])
            return json_response(200, app.public())
        if len(rest) == 1 and request.method == "PATCH":
            body = request.json()
            if "notes" in body:
                app.notes = _notes(body)
            if "tags" in body:
                app.tags = _tags(body)
            name = body.get("displayName")
            if name is not None:
                if not name or len(str(name)) > 120:
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        "Invalid value specified for property 'displayName' of resource "
                        "'Application'.",
                    )
                app.display_name = str(name)
            return Response(204)
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
            limit = int(self.cloud.tenant.settings["max_password_days"])
            if limit and end - start > dt.timedelta(days=limit, minutes=5):
                return graph_error(
                    400,
                    "CredentialInvalidLifetimeAsPerAppPolicy",
                    "Credential lifetime exceeds the max value allowed as per assigned policy "
                    f"'{make_id('app-management-policy', 1)}'.",
                )
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
                if app is not None and app.not_found_left > 0:
                    app.not_found_left -= 1  # created moments ago: not replicated yet
                    app = None
                if app is None:
                    message = (
                        f"The appId '{app_id}' of the service principal does not reference "
                        "a valid application object."
                    )
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        message,
                        details=[
                            {
                                "code": "NoBackingApplicationObject",
                                "message": message,
                                "target": "appId",
                            }
                        ],
                    )
                if self.cloud.tenant.principal(app_id):
                    return graph_error(
                        409,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "Another object with the same value for property "
                        "servicePrincipalNames already exists.",
                    )
                body = request.json()
                new = ServicePrincipal(
                    self.cloud.tenant.next_id("service-principal"),
                    app_id,
                    app.display_name,
                    int(self.cloud.tenant.settings["principal_not_found"]),
                    notes=_notes(body),
                    tags=_tags(body),
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

    def _get_by_ids(self, request: Request) -> Response:
        """``POST /directoryObjects/getByIds``: the applications and principals with those ids."""
        body = request.json()
        ids = [str(i) for i in body.get("ids") or []]
        types = {str(t).lower() for t in body.get("types") or []}
        tenant = self.cloud.tenant
        found: list[dict[str, Any]] = []
        for object_id in ids:
            sp = tenant.principals.get(object_id)
            app = tenant.applications.get(object_id)
            if sp is not None and (not types or "serviceprincipal" in types):
                found.append(
                    {"@odata.type": "#microsoft.graph.servicePrincipal"} | sp.public(SEED_TENANT)
                )
            elif app is not None and (not types or "application" in types):
                found.append({"@odata.type": "#microsoft.graph.application"} | app.public())
        return json_response(
            200,
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
                "value": found,
            },
        )


def _notes(body: dict[str, Any]) -> str | None:
    notes = body.get("notes")
    return str(notes) if notes is not None else None


def _tags(body: dict[str, Any]) -> list[str]:
    return [str(t) for t in body.get("tags") or []]


_QUOTED = r"'((?:[^']|'')*)'"
_CLAUSES = {
    "eq": re.compile(rf"(\w+)\s+eq\s+{_QUOTED}"),
    "startswith": re.compile(rf"startswith\(\s*(\w+)\s*,\s*{_QUOTED}\s*\)"),
    "any": re.compile(rf"(\w+)/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+{_QUOTED}\s*\)"),
}


def _filter_clauses(text: str) -> list[tuple[str, str, str]] | None:
    """A ``$filter`` as (operator, property, value) clauses joined by ``and``; None if other."""
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip()):
        for op, pattern in _CLAUSES.items():
            m = pattern.fullmatch(part.strip())
            if m is None:
                continue
            if op == "any":
                if m.group(2) != m.group(3):  # the lambda's variable must be the one compared
                    return None
                clauses.append((op, m.group(1), m.group(4).replace("''", "'")))
            else:
                clauses.append((op, m.group(1), m.group(2).replace("''", "'")))
            break
        else:
            return None
    return clauses


def _matches(item: Any, clause: tuple[str, str, str], fields: dict[str, str]) -> bool:
    """Whether a directory object passes one clause (see the module's table)."""
    op, prop, value = clause
    if op == "eq":
        return bool(getattr(item, fields[prop]) == value)
    if op == "startswith":
        return prop == "displayName" and str(item.display_name).startswith(value)
    if prop == "servicePrincipalNames":
        return isinstance(item, ServicePrincipal) and value == item.app_id
    return False  # identifierUris: none are set here
