"""The ACR-like registry front: ACR's data-plane auth, as a configuration of the shared front.

Every registry created through ARM gets a real docker-registry process (service
``<name>.azurecr.io``) behind a :class:`~..registry_front.RegistryFront` on its
own TLS port, which is the registry's ``loginServer``.

==============================================  ===========================================
behaviour                                       source
==============================================  ===========================================
unauthenticated ``/v2/``: 401 ``Bearer         Azure/acr docs/AAD-OAuth.md ("A bearer token
realm="https://<login server>/oauth2/token",    authentication challenge is expected,
service="<login server>"``                      specifying realm and service"); Azure/acr
                                                issue 207 (the header captured)
unauthenticated repository endpoint: the same   GoogleContainerTools/jib issue 2784 (ACR's
plus ``scope="repository:<name>:pull"``         header on a manifest GET, captured);
(docker-registry's own challenge, whose realm   Azure/acr docs/AAD-OAuth.md (scope on
is the front's)                                 ``/v2/_catalog``)
wrong Basic credentials: 401 ``Basic            Azure/acr issue 651 (captured with curl on
realm="Azure Container Registry"``              ``/v2/``); harness/harness-core PR 43385
                                                (the same on a repository endpoint)
Basic auth (appId and password) accepted on     Azure/acr docs/AAD-OAuth.md ("Catalog listing
every data-plane call, checked against live     using SP/Admin with Basic Auth"); jib issue
Graph state and role assignments                2784 ("as long as you provide a working
                                                username and password pair, ACR accepts basic
                                                auth anyway")
valid Basic credentials whose roles do not      Azure/acr issues 258 and 506 ("unauthorized:
allow the call: 401 with the endpoint's Bearer  authentication required, visit https://aka.ms/
challenge (``error="insufficient_scope"``)      acr/authorization"); the challenge:
                                                assumption (docker-registry's answer)
token realm ``GET /oauth2/token`` with          Azure/acr docs/AAD-OAuth.md; answer carries
``service`` and ``scope``, Basic auth ->        ``access_token`` only
``{"access_token"}``
``service`` named twice (BinderHub's            jupyterhub/binderhub issue 1620 (HTTP 400
``token_url`` path appends                      reproduced by its reporter with ``service=
``service=container_registry``): 400            <acr>.azurecr.io`` in token_url); the body:
                                                assumption
``service`` the login server (the front's       AAD-OAuth.md; ``<name>.azurecr.io`` too:
``127.0.0.1:PORT``) or ``<name>.azurecr.io``;   assumption (loopback stand-in); the 400 body:
another: 400                                    assumption
401 message "authentication required, visit     ACR's answer as quoted by aka.ms/acr/
https://aka.ms/acr/authorization ..."           authorization (doc page)
anonymous token request: 401 "anonymous pull    ACR anonymous pull doc page
is not enabled"                                 (anonymousPullEnabled); text: assumption
granted actions: AcrPush pull+push, AcrPull     ACR roles doc page (container-registry-
pull, AcrDelete delete, Owner/Contributor all   roles); in ABAC mode, and conditions
(per repository, read when the call is made)    limiting a role to repositories, see
                                                ``models``
a push with a pull-only credential (AcrPull,    Azure/acr issues 258 and 506, azure-
Repository Reader, or a condition leaving the   pipelines-tasks issue 19224 (``docker push``
repository out): its token carries ``pull``     with a role that cannot push: "unauthorized:
only and docker-registry answers the upload     authentication required, visit https://aka.
401 ``UNAUTHORIZED`` "authentication required"  ms/acr/authorization"); the troubleshooting
with ``error="insufficient_scope"``; Basic      doc page "authentication required" (the
credentials get the same 401                    same text for a pull without the role)
error bodies ``{"errors": [{code, message,      OCI distribution-spec error codes
detail}]}``
``POST /oauth2/exchange`` (form:                Azure/acr docs/AAD-OAuth.md ("exchange AAD
``grant_type=access_token``, ``service``,       token for ACR refresh token"); azure-cli
``tenant``, ``access_token`` for                ``acr/_docker_utils.py``
https://containerregistry.azure.net) ->         ``_get_aad_token_after_challenge`` (what
``{"refresh_token"}``; a bad token: 401         ``az acr login --expose-token`` sends); the
                                                refresh token is opaque here: assumption (ACR's
                                                is a JWT)
``POST /oauth2/token`` (form:                   Azure/acr docs/AAD-OAuth.md ("exchange ACR
``grant_type=refresh_token`` with               refresh token for ACR access token"); azure-
``refresh_token``, or ``password`` with         cli ``_get_token_with_username_and_password``
``username``/``password``; ``service``,         (grant_type password); the access token
``scope``) -> ``{"access_token"}``              carries what the caller's roles allow
==============================================  ===========================================
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs

from ..app import Request, Response, json_response
from ..registry_front import FrontConfig, Grant, RegistryFront, parse_scopes, registry_error
from .models import ACR_AUDIENCE, Host, Registry

__all__ = ["start_front"]

_AUTH_REQUIRED = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)


def start_front(cloud: Host, registry: Registry) -> RegistryFront:
    """Start ``registry``'s front and docker-registry (from a handler holding the cloud's lock)."""
    assert cloud.app is not None, "attach() first"

    def check(app_id: str, secret: str) -> Grant | None:
        principal = cloud.tenant.check_secret(app_id, secret)
        if principal is None:
            return None
        return _grant(cloud, principal.id, principal.app_id, registry)

    refresh_audience = f"acr-refresh:{registry.name.lower()}"  # where refresh tokens are kept

    def grant_for(principal_app_id: str) -> Grant | None:
        principal = cloud.tenant.principal(principal_app_id)
        if principal is None:
            return None
        return _grant(cloud, principal.id, principal.app_id, registry)

    def exchange(front: RegistryFront, request: Request) -> Response:
        form = _form(request)
        if form.get("grant_type") != "access_token":
            return _oauth_error(400, "unsupported_grant_type", form.get("grant_type", ""))
        if form.get("service") not in front.realm.services:
            return front.realm.bad_service(form.get("service", ""))
        app_id = cloud.tenant.caller(form.get("access_token", ""), ACR_AUDIENCE)
        if app_id is None or grant_for(app_id) is None:
            return front.realm.bad_credentials()
        refresh = secrets.token_urlsafe(32)
        cloud.tenant.tokens[refresh] = (app_id, refresh_audience)
        return json_response(200, {"refresh_token": refresh})

    def token(front: RegistryFront, request: Request) -> Response:
        form = _form(request)
        grant: Grant | None = None
        if form.get("grant_type") == "refresh_token":
            app_id = cloud.tenant.caller(form.get("refresh_token", ""), refresh_audience)
            grant = grant_for(app_id) if app_id else None
        elif form.get("grant_type") == "password":
            grant = check(form.get("username", ""), form.get("password", ""))
        else:
            return _oauth_error(400, "unsupported_grant_type", form.get("grant_type", ""))
        if form.get("service") not in front.realm.services:
            return front.realm.bad_service(form.get("service", ""))
        if grant is None:
            return front.realm.bad_credentials()
        access = [
            {"type": "repository", "name": name, "actions": sorted(grant.allow(name, wanted))}
            for name, wanted in parse_scopes(form.get("scope", "").split())
        ]
        issued = front.process.issuer.issue(front.config.service, grant.subject, access)
        return json_response(200, {"access_token": issued})

    return RegistryFront(
        cloud.app,
        FrontConfig(
            name=f"acr-{registry.name.lower()}",
            service=f"{registry.name.lower()}.azurecr.io",
            issuer="Azure Container Registry",
            realm_path="/oauth2/token",
            check=check,
            lock=cloud.lock,
            basic_ping=False,  # docker-registry's Bearer challenge is ACR's (see the table)
            host_is_service=True,
            basic_refusal="Azure Container Registry",
            single_service=True,
            unauthorized=_AUTH_REQUIRED,
            anonymous="anonymous pull is not enabled on this registry",
            token_body=lambda token: {"access_token": token},
            clock=cloud.registry_now,  # tags' last update, on the registries' clock
            extra=(
                ("POST", "/oauth2/exchange", exchange),
                ("POST", "/oauth2/token", token),
            ),
        ),
    )


def _grant(cloud: Host, principal_id: str, app_id: str, registry: Registry) -> Grant:
    """What the principal's roles allow, per repository (an ABAC condition may name some),
    read from the live role assignments when asked (under the cloud's lock)."""
    return Grant(
        app_id,
        lambda repository, wanted: (
            wanted & cloud.tenant.registry_actions(principal_id, registry, repository)
        ),
    )


def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, first value of each field."""
    return {k: v[0] for k, v in parse_qs(request.body.decode(errors="replace")).items()}


def _oauth_error(status: int, code: str, grant_type: str) -> Response:
    """The token endpoints' refusal of a grant they do not serve (text: assumption)."""
    return registry_error(status, "UNSUPPORTED", f"{code}: grant_type {grant_type!r}")
