"""The ACR-like registry front: ACR's data-plane auth, as a configuration of the shared front.

Every registry created through ARM gets a real docker-registry process (service
``<name>.azurecr.io``) behind a :class:`~..registry_front.RegistryFront` on its
own TLS port, which is the registry's ``loginServer``.

==============================================  ===========================================
behaviour                                       source
==============================================  ===========================================
``/v2/`` answers 401 with a Basic challenge     Azure/acr docs/AAD-OAuth.md (DESIGN.md
(``realm`` the token endpoint, ``service``)     section 2)
Basic auth (appId and password) accepted on     Azure/acr docs/AAD-OAuth.md; BinderHub
every data-plane call, checked against live     relies on it without ``token_url``
Graph state and role assignments                (DESIGN.md section 2)
token realm ``GET /oauth2/token`` with          Azure/acr docs/AAD-OAuth.md; answer carries
``service`` and ``scope``, Basic auth ->        ``access_token`` only
``{"access_token"}``
the first ``service`` is read, the login        assumption, kept as it was: DESIGN.md
server is accepted too; another: 400            section 2 says ACR answers 400 to a doubled
                                                ``service`` (jupyterhub/binderhub#1620);
                                                correcting it is another issue
401 message "authentication required, visit     ACR's answer as quoted by aka.ms/acr/
https://aka.ms/acr/authorization ..."           authorization (doc page)
anonymous token request: 401 "anonymous pull    ACR anonymous pull doc page
is not enabled"                                 (anonymousPullEnabled); text: assumption
granted actions: AcrPush pull+push, AcrPull     ACR roles doc page (container-registry-
pull, AcrDelete delete, Owner/Contributor all   roles)
error bodies ``{"errors": [{code, message,      OCI distribution-spec error codes
detail}]}``
==============================================  ===========================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry_front import FrontConfig, Grant, RegistryFront
from .models import Registry

if TYPE_CHECKING:
    from .cloud import AzureCloud

__all__ = ["start_front"]

_AUTH_REQUIRED = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)


def start_front(cloud: AzureCloud, registry: Registry) -> RegistryFront:
    """Start ``registry``'s front and docker-registry (from a handler holding the cloud's lock)."""
    assert cloud.app is not None, "attach() first"

    def check(app_id: str, secret: str) -> Grant | None:
        principal = cloud.tenant.check_secret(app_id, secret)
        if principal is None:
            return None
        allowed = cloud.tenant.registry_actions(principal.id, registry)
        return Grant(principal.app_id, lambda repository, wanted: wanted & allowed)

    return RegistryFront(
        cloud.app,
        FrontConfig(
            name=f"acr-{registry.name.lower()}",
            service=f"{registry.name.lower()}.azurecr.io",
            issuer="Azure Container Registry",
            realm_path="/oauth2/token",
            check=check,
            lock=cloud.lock,
            basic_ping=True,
            host_is_service=True,
            unauthorized=_AUTH_REQUIRED,
            anonymous="anonymous pull is not enabled on this registry",
            token_body=lambda token: {"access_token": token},
        ),
    )
