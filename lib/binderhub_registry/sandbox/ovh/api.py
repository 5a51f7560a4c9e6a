"""OVHcloud's API under ``/ovh/1.0``: request signatures, OVH's error bodies, the registry routes.

python-ovh is pointed here by registering ``<sandbox>/ovh/1.0`` as an endpoint
(see ``providers/ovh.py``); every signed call is checked as OVH checks it. The
table of behaviours and sources is in the package docstring.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from ..app import Handler, Request, Response, RouteTable, json_response
from .models import REGIONS, Host, Registry, User, iso, plan_body, rule_allows

__all__ = ["Api", "auth_error", "client_error"]


def client_error(status: int, cls: str, message: str) -> Response:
    """A business error: ``{"class": "Client::...", "message"}`` (python-ovh maps the status)."""
    return json_response(status, {"class": cls, "message": message})


def auth_error(status: int, code: str, message: str, cls: str = "Client::Forbidden") -> Response:
    """An authentication error with ``errorCode``, which python-ovh turns into its classes."""
    http = {400: "400 Bad Request", 403: "403 Forbidden"}[status]
    return json_response(
        status, {"class": cls, "errorCode": code, "httpCode": http, "message": message}
    )


def _not_found(what: str) -> Response:
    return client_error(404, "Client::NotFound", what)


class Api:
    """The routes of OVH's API that the OVH notebook uses, over the account's state."""

    def __init__(self, cloud: Host) -> None:
        self.cloud = cloud

    def routes(self) -> RouteTable:
        """(method, pattern, handler) relative to the backend's prefix."""
        base = "/1.0/cloud/project/{sn}"
        registry = base + "/containerRegistry/{rid}"
        return [
            ("GET", "/1.0/auth/time", self.time),
            ("GET", base + "/capabilities/containerRegistry", self.signed(self.capabilities)),
            ("GET", base + "/containerRegistry", self.signed(self.list_registries)),
            ("POST", base + "/containerRegistry", self.signed(self.create_registry)),
            ("GET", registry, self.signed(self.get_registry)),
            ("DELETE", registry, self.signed(self.delete_registry)),
            ("GET", registry + "/plan", self.signed(self.get_plan)),
            (
                "GET",
                registry + "/ipRestrictions/management",
                self.signed(self.ip_restrictions("management")),
            ),
            (
                "GET",
                registry + "/ipRestrictions/registry",
                self.signed(self.ip_restrictions("registry")),
            ),
            ("GET", registry + "/users", self.signed(self.list_users)),
            ("POST", registry + "/users", self.signed(self.create_user)),
            ("GET", registry + "/users/{uid}", self.signed(self.get_user)),
            ("DELETE", registry + "/users/{uid}", self.signed(self.delete_user)),
            ("PUT", registry + "/users/{uid}/setAsAdmin", self.signed(self.set_as_admin)),
        ]

    # --- authentication ------------------------------------------------------------
    def time(self, request: Request) -> Response:
        """``GET /auth/time``: unsigned, a bare integer (seconds since the epoch)."""
        return json_response(200, int(time.time()))

    def signed(self, handler: Handler) -> Handler:
        """``handler`` behind OVH's checks: application key, consumer key, signature, rights."""

        def checked(request: Request) -> Response:
            refusal = self.check(request)
            return refusal if refusal is not None else handler(request)

        return checked

    def check(self, request: Request) -> Response | None:
        """Why OVH would refuse this call, or None when it is signed and granted."""
        account = self.cloud.account
        headers = request.headers
        app_key = headers.get("x-ovh-application", "")
        if not hmac.compare_digest(app_key.encode(), account.application_key.encode()):
            return auth_error(403, "INVALID_KEY", "Invalid application key")
        consumer = headers.get("x-ovh-consumer", "")
        if not consumer:
            return auth_error(403, "NOT_CREDENTIAL", "You must login first")
        if not hmac.compare_digest(consumer.encode(), account.consumer_key.encode()):
            return auth_error(403, "INVALID_CREDENTIAL", "This credential is not valid")
        stamp = headers.get("x-ovh-timestamp", "")
        signature = headers.get("x-ovh-signature", "")
        expected = (
            "$1$"
            + hashlib.sha1(
                "+".join(
                    [
                        account.application_secret,
                        consumer,
                        request.method.upper(),
                        self.full_url(request),
                        request.body.decode("utf-8", "replace"),
                        stamp,
                    ]
                ).encode()
            ).hexdigest()
        )
        if (
            not stamp.isdigit()
            or not hmac.compare_digest(signature.encode(), expected.encode())
            or account.settings["consumer_key_pending"]
        ):
            # a consumer key still awaiting validation is refused so too (ovh/php-ovh#62)
            return auth_error(400, "INVALID_SIGNATURE", "Invalid signature", "Client::BadRequest")
        path = self.api_path(request)
        if not rule_allows(account.rules(), request.method, path):
            return auth_error(403, "NOT_GRANTED_CALL", "This call has not been granted")
        if request.params.get("sn") not in account.projects:
            return _not_found("This service does not exist")
        return None

    def api_path(self, request: Request) -> str:
        """The path below ``/1.0``, as access rules name it."""
        path = request.path
        marker = "/1.0/"
        return path[path.index(marker) + len(marker) - 1 :] if marker in path else path

    def full_url(self, request: Request) -> str:
        """The URL python-ovh signed: endpoint + path (+ the query as it was sent)."""
        url = f"https://{request.headers.get('host', '')}{request.path}"
        pairs = [(k, v) for k, values in request.query.items() for v in values]
        return url + ("?" + urlencode(pairs) if pairs else "")

    # --- registries -------------------------------------------------------------
    def capabilities(self, request: Request) -> Response:
        """Plans per region."""
        return json_response(200, self.cloud.account.capabilities())

    def _registries(self, request: Request) -> list[Registry]:
        sn = request.params["sn"]
        return [r for r in self.cloud.account.registries.values() if r.project == sn]

    def list_registries(self, request: Request) -> Response:
        """Every registry of the project, as it is now (a listing does not advance a status)."""
        return json_response(
            200, [r.body(self.cloud.account.settings) for r in self._registries(request)]
        )

    def create_registry(self, request: Request) -> Response:
        """``{name, region, planID?}`` -> the new registry, INSTALLING."""
        body = request.json()
        if not isinstance(body, dict):
            return client_error(400, "Client::BadRequest", "Invalid JSON body")
        name, region, plan_id = body.get("name"), body.get("region"), body.get("planID")
        for field_name, value in (("name", name), ("region", region)):
            if not isinstance(value, str) or not value:
                return client_error(
                    400, "Client::BadRequest", f"[{field_name}] Property is mandatory"
                )
        if region not in REGIONS:
            return client_error(400, "Client::BadRequest", f"region {region} is not available")
        plan = "SMALL" if plan_id is None else self.cloud.account.plan_named(str(plan_id))
        if plan is None:
            return client_error(400, "Client::BadRequest", f"plan {plan_id} does not exist")
        registry = self.cloud.create_registry(request.params["sn"], str(name), str(region), plan)
        return json_response(200, registry.body(self.cloud.account.settings))

    def _registry(self, request: Request) -> Registry | Response:
        found = self.cloud.account.registries.get(request.params["rid"])
        if found is None or found.project != request.params["sn"]:
            return _not_found(f"Registry {request.params['rid']} not found")
        return found

    def get_registry(self, request: Request) -> Response:
        """The registry; each GET moves a transitional status along (see settings)."""
        found = self._registry(request)
        if isinstance(found, Response):
            return found
        if self.cloud.advance(found) is None:
            return _not_found(f"Registry {request.params['rid']} not found")
        return json_response(200, found.body(self.cloud.account.settings))

    def delete_registry(self, request: Request) -> Response:
        """Start deleting: DELETING for some GETs, then gone (404)."""
        found = self._registry(request)
        if isinstance(found, Response):
            return found
        self.cloud.start_deleting(found)
        return Response(204)

    def get_plan(self, request: Request) -> Response:
        """The registry's plan."""
        found = self._registry(request)
        return found if isinstance(found, Response) else json_response(200, plan_body(found.plan))

    def ip_restrictions(self, which: str) -> Handler:
        """``GET .../ipRestrictions/{management,registry}``: the IP blocks allowed (none: all)."""

        def handler(request: Request) -> Response:
            found = self._registry(request)
            if isinstance(found, Response):
                return found
            now = iso(found.created)
            blocks = self.cloud.account.settings[f"ip_restrictions_{which}"]
            return json_response(
                200,
                [
                    {
                        "ipBlock": str(b.get("ipBlock", "")),
                        "description": str(b.get("description", "")),
                        "createdAt": now,
                        "updatedAt": now,
                    }
                    for b in blocks
                ],
            )

        return handler

    # --- Harbor users -------------------------------------------------------------------
    def list_users(self, request: Request) -> Response:
        """The registry's users, without passwords."""
        found = self._registry(request)
        if isinstance(found, Response):
            return found
        return json_response(200, [u.public() for u in found.users.values()])

    def create_user(self, request: Request) -> Response:
        """``{login?, email?}`` -> ``{id, user, email, password}``: the password, this once."""
        found = self._registry(request)
        if isinstance(found, Response):
            return found
        if found.status != "READY":
            return client_error(400, "Client::BadRequest", f"registry is {found.status}, not READY")
        body = request.json()
        body = body if isinstance(body, dict) else {}
        login = body.get("login") or f"user-{len(found.users) + 1}"
        if not isinstance(login, str):
            return client_error(400, "Client::BadRequest", "[login] must be a string")
        if any(u.user == login for u in found.users.values()):
            return client_error(409, "Client::Conflict", f"user {login} already exists")
        email = body.get("email") or ""  # without one: kept empty (what OVH does: unknown)
        if not isinstance(email, str):
            return client_error(400, "Client::BadRequest", "[email] must be a string")
        user = self.cloud.create_user(found, login, email)
        return json_response(200, user.public() | {"password": user.password})

    def _user(self, request: Request) -> tuple[Registry, User] | Response:
        found = self._registry(request)
        if isinstance(found, Response):
            return found
        user = found.users.get(request.params["uid"])
        if user is None:
            return _not_found(f"User {request.params['uid']} not found")
        return found, user

    def get_user(self, request: Request) -> Response:
        """One user, without its password."""
        found = self._user(request)
        return found if isinstance(found, Response) else json_response(200, found[1].public())

    def set_as_admin(self, request: Request) -> Response:
        """``PUT .../users/{id}/setAsAdmin``: the user becomes a Harbor system admin (void)."""
        found = self._user(request)
        if isinstance(found, Response):
            return found
        self.cloud.set_admin(*found)
        # void: 200 with a JSON null (assumption; python-ovh decodes any answer but a 204)
        return Response(200, b"null", {"Content-Type": "application/json"})

    def delete_user(self, request: Request) -> Response:
        """Delete a user (in Harbor too)."""
        found = self._user(request)
        if isinstance(found, Response):
            return found
        self.cloud.delete_user(*found)
        return Response(204)
