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
path segments matched as written (case-         assumption (the reference pages write them
sensitive): ``/Applications`` is 400            so, and msgraph-sdk and azure-cli send
``BadRequest`` as an unknown segment            that case)
==============================================  ===========================================
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..app import Handler, PathTable, Request, Response, RouteTable, json_response
from .arm import METHODS
from .errors import graph_error, graph_not_found
from .models import (
    GRAPH_AUDIENCE,
    SEED_CLIENT_ID,
    SEED_TENANT,
    Application,
    Host,
    Password,
    ServicePrincipal,
    make_id,
    now,
    parse_time,
)

__all__ = ["Graph"]

T = TypeVar("T")


class Graph:
    """Microsoft Graph over the cloud's tenant."""

    def __init__(self, cloud: Host) -> None:
        self.cloud = cloud
        app = functools.partial(_existing, lambda: self.cloud.tenant.applications)
        sp = functools.partial(_existing, lambda: self.cloud.tenant.principals)
        # Graph's own table, read by :meth:`graph` once the caller is signed in (an unknown
        # path without a token is a 401 too); the first row that takes a request wins
        self.table = PathTable(
            [
                ("POST", "/directoryObjects/getByIds", self._get_by_ids),
                ("GET", "/applications", self._list_applications),
                ("POST", "/applications", self._create_application),
                ("*", "/applications", _unsupported_method),
                ("GET", "/applications/{id}", app(self._get_application)),
                ("PATCH", "/applications/{id}", app(self._patch_application)),
                ("DELETE", "/applications/{id}", app(self._delete_application)),
                ("POST", "/applications/{id}/addPassword", app(self._add_password)),
                ("POST", "/applications/{id}/removePassword", app(self._remove_password)),
                ("*", "/applications/{id}{other:path}", app(_unsupported_request)),
                ("GET", "/servicePrincipals", self._list_principals),
                ("POST", "/servicePrincipals", self._create_principal),
                ("*", "/servicePrincipals", _unsupported_method),
                ("GET", "/servicePrincipals/{id}", sp(self._get_principal)),
                ("DELETE", "/servicePrincipals/{id}", sp(self._delete_principal)),
                ("*", "/servicePrincipals/{id}{other:path}", sp(_unsupported_request)),
                ("*", "{other:path}", _no_resource),
            ]
        )

    def routes(self) -> RouteTable:
        """(method, pattern, handler) under the prefix: all of Graph goes to :meth:`graph`."""
        return [(m, "/graph/v1.0/{rest:path}", self.graph) for m in METHODS]

    def graph(self, request: Request) -> Response:
        """Microsoft Graph v1.0: the caller signs in, then :attr:`table` routes the path."""
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
        path = "/" + "/".join(s for s in request.params["rest"].split("/") if s)
        handler, params = self.table.find(request.method, path)
        request.params.update(params)
        return handler(request)

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

    # --- applications ------------------------------------------------------------------
    def _list_applications(self, request: Request) -> Response:
        return self._listing(
            request,
            list(self.cloud.tenant.applications.values()),
            "applications",
            {"displayName": "display_name", "appId": "app_id"},
        )

    def _create_application(self, request: Request) -> Response:
        body = request.json()
        name = str(body.get("displayName") or "")
        if not name or len(name) > 120:
            return _invalid_display_name()
        new = Application(
            self.cloud.tenant.next_id("application"),
            self.cloud.tenant.next_id("app-id"),
            name,
            not_found_left=int(self.cloud.tenant.settings["application_not_found"]),
            notes=_notes(body),
            tags=_tags(body),
        )
        self.cloud.tenant.applications[new.id] = new
        return json_response(201, new.public())

    def _get_application(self, request: Request, app: Application) -> Response:
        if app.not_found_left > 0:  # created moments ago: not replicated yet
            app.not_found_left -= 1
            return graph_not_found(app.id)
        return json_response(200, app.public())

    def _patch_application(self, request: Request, app: Application) -> Response:
        body = request.json()
        if "notes" in body:
            app.notes = _notes(body)
        if "tags" in body:
            app.tags = _tags(body)
        name = body.get("displayName")
        if name is not None:
            if not name or len(str(name)) > 120:
                return _invalid_display_name()
            app.display_name = str(name)
        return Response(204)

    def _delete_application(self, request: Request, app: Application) -> Response:
        del self.cloud.tenant.applications[app.id]
        # deleting an application deletes its service principal in the home tenant
        for sp in [s for s in self.cloud.tenant.principals.values() if s.app_id == app.app_id]:
            del self.cloud.tenant.principals[sp.id]
        return Response(204)

    def _add_password(self, request: Request, app: Application) -> Response:
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

    def _remove_password(self, request: Request, app: Application) -> Response:
        key_id = str(request.json().get("keyId") or "")
        if not any(p.key_id == key_id for p in app.passwords):
            return graph_error(
                400,
                "Request_BadRequest",
                f"No password credential found with keyId '{key_id}'.",
            )
        app.passwords = [p for p in app.passwords if p.key_id != key_id]
        return Response(204)

    # --- service principals ------------------------------------------------------------
    def _list_principals(self, request: Request) -> Response:
        return self._listing(
            request,
            list(self.cloud.tenant.principals.values()),
            "servicePrincipals",
            {"appId": "app_id", "displayName": "display_name"},
        )

    def _create_principal(self, request: Request) -> Response:
        body = request.json()
        app_id = str(body.get("appId") or "")
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
                    {"code": "NoBackingApplicationObject", "message": message, "target": "appId"}
                ],
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
            notes=_notes(body),
            tags=_tags(body),
        )
        self.cloud.tenant.principals[new.id] = new
        return json_response(201, new.public(SEED_TENANT))

    def _get_principal(self, request: Request, sp: ServicePrincipal) -> Response:
        return json_response(200, sp.public(SEED_TENANT))

    def _delete_principal(self, request: Request, sp: ServicePrincipal) -> Response:
        del self.cloud.tenant.principals[sp.id]
        return Response(204)

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


def _existing(
    objects: Callable[[], Mapping[str, T]], handler: Callable[[Request, T], Response]
) -> Handler:
    """``handler`` given the directory object ``{id}`` of ``objects``; 404 when there is none."""

    def found(request: Request) -> Response:
        wanted = objects().get(request.params["id"])
        return graph_not_found(request.params["id"]) if wanted is None else handler(request, wanted)

    return found


def _unsupported_method(request: Request) -> Response:
    return graph_error(405, "Request_BadRequest", "Unsupported method")


def _unsupported_request(request: Request, _: object) -> Response:
    return graph_error(400, "BadRequest", f"Unsupported request {request.method} {request.path}")


def _no_resource(request: Request) -> Response:
    """Graph's answer to a path outside the resources it serves here."""
    first = request.params["other"].strip("/").split("/")[0]
    return graph_error(400, "BadRequest", f"Resource not found for the segment '{first}'.")


def _invalid_display_name() -> Response:
    return graph_error(
        400,
        "Request_BadRequest",
        "Invalid value specified for property 'displayName' of resource 'Application'.",
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
