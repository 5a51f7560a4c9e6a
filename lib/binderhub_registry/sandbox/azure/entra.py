"""Fake Entra ID: the authority ``ClientSecretCredential(authority=.../azure/login)`` signs in with.

=========================================  ================================================
behaviour                                  source
=========================================  ================================================
``/{tenant}/v2.0/.well-known/openid-       DESIGN.md section 4 (checked: a real
configuration`` then ``/{tenant}/oauth2/   ClientSecretCredential with this authority and
v2.0/token``, client credentials grant     ``disable_instance_discovery=True`` works); the
                                           OpenID discovery doc page for the fields
unknown tenant: 400 AADSTS90002            Microsoft identity platform error codes
                                           (AADSTS90002 invalid_tenant)
unknown client id: 400 unauthorized_client Microsoft identity platform error codes
AADSTS700016                               (AADSTS700016)
application without a service principal:   Microsoft identity platform error codes
401 invalid_client AADSTS7000229           (AADSTS7000229)
wrong or expired secret: 401               Microsoft identity platform error codes
invalid_client AADSTS7000215               (AADSTS7000215)
grant other than client_credentials:       Microsoft identity platform error codes
400 AADSTS70003                            (AADSTS70003)
scope ``<resource>/.default`` for ARM or   client credentials flow doc page; other
Graph only, else AADSTS500011              resources: AADSTS500011 (error codes page)
ARM also under its classic audience        ARM's metadata endpoint lists both audiences
``https://management.core.windows.net/``   (``authentication.audiences``); the az CLI asks
(the az CLI asks for it)                   for the first (azure-cli ``core/cloud.py``
                                           ``active_directory_resource_id``)
Graph also under the sandbox's own Graph   the az CLI asks for
URL, ``<sandbox>/azure/graph/`` (what      ``<microsoft_graph_resource_id>/.default`` and
``metadata/endpoints`` advertises)         calls that same URL (azure-cli
                                           ``role/_msgrpah/_graph_client.py``)
ACR's audience                             azure-cli ``acr/_docker_utils.py``
``https://containerregistry.azure.net``    (``_resolve_acr_scope``); Azure/acr
(``az acr login``'s exchange)              ``docs/AAD-OAuth.md``
the token: a JWT with aud, iss             access token claims doc page; signature
(sts.windows.net), appid, oid, tid         ``alg: none``: assumption (no client checks it)
``expires_in`` 3599                        assumption
=========================================  ================================================
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

from ..app import Request, Response, RouteTable, json_response
from .errors import aad_error
from .models import (
    ACR_AUDIENCE,
    ARM_AUDIENCE,
    CLASSIC_ARM_AUDIENCE,
    GRAPH_AUDIENCE,
    SEED_TENANT,
    Host,
)

__all__ = ["EntraID"]


class EntraID:
    """The tenant's sign-in: OpenID configuration and the token endpoint."""

    def __init__(self, cloud: Host) -> None:
        self.cloud = cloud

    def routes(self) -> RouteTable:
        """(method, pattern, handler) under the cloud's prefix."""
        return [
            ("GET", "/login/{tenant}/v2.0/.well-known/openid-configuration", self.openid),
            ("POST", "/login/{tenant}/oauth2/v2.0/token", self.token),
        ]

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
        login = f"{self.cloud.base(request)}/login/{tenant}"
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

    def services(self, request: Request) -> dict[str, str]:
        """Audience a token may be asked for -> the service that accepts it (see the table)."""
        return {
            ARM_AUDIENCE: ARM_AUDIENCE,
            CLASSIC_ARM_AUDIENCE: ARM_AUDIENCE,
            GRAPH_AUDIENCE: GRAPH_AUDIENCE,
            f"{self.cloud.base(request)}/graph": GRAPH_AUDIENCE,
            ACR_AUDIENCE: ACR_AUDIENCE,
        }

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
        if not self.cloud.tenant.application(client_id):
            return aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{SEED_TENANT}'. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant.",
            )
        if not self.cloud.tenant.principal(client_id):
            return aad_error(
                401,
                "invalid_client",
                7000229,
                f"The client application {client_id} is missing service principal in the tenant "
                f"{SEED_TENANT}.",
            )
        if not self.cloud.tenant.check_secret(client_id, secret):
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
        service = self.services(request).get(audience)
        if service is None:
            return aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {audience} was not found in the tenant.",
            )
        principal = self.cloud.tenant.principal(client_id)
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
        self.cloud.tenant.tokens[token] = (client_id, service)
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            },
        )
