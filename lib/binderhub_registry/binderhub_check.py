"""BinderHub's own registry check, as ``binderhub/registry.py`` does it.

:func:`binderhub_settings` resolves ``DockerRegistry`` from the values the way
BinderHub does (explicit ``config.DockerRegistry``, else the build pods' docker
config, with BinderHub's gcr.io and Docker Hub defaults). :func:`get_image_manifest`
is BinderHub's existence check on the path those settings select: ``token_url``
with ``service=container_registry`` appended to its query, or Basic credentials
first and, on a 401, ``WWW-Authenticate`` discovery (a Bearer challenge with
realm, service and scope); same ``Accept`` header (OCI manifest only).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from .binderhub import DOCKER_HUB_AUTH_KEY, RegistryValues
from .errors import VerificationFailed
from .registry_auth import bearer_token
from .registry_http import OCI_MANIFEST, RegistryHTTP, denied, origin, parse_challenge
from .report import VerifyHints
from .secrets import Secret

__all__ = [
    "DEFAULT_REGISTRY_URL",
    "BinderHubRegistrySettings",
    "binderhub_settings",
    "get_image_manifest",
]

#: BinderHub's ``DockerRegistry.url`` when the docker config names Docker Hub's v1 key.
DEFAULT_REGISTRY_URL = "https://registry-1.docker.io"


@dataclass(frozen=True)
class BinderHubRegistrySettings:
    """BinderHub's ``DockerRegistry`` as it resolves from the values and the docker config."""

    url: str
    token_url: str
    username: str
    password: Secret
    not_found_401: bool
    auth_config_url: str


def binderhub_settings(values: RegistryValues) -> BinderHubRegistrySettings:
    """Resolve ``DockerRegistry`` the way BinderHub does, from config.yaml and config.json."""
    auths: dict[str, dict[str, str]] = values.docker_config()["auths"]
    explicit = values.docker_registry
    url = explicit.get("url") or ""
    if not url:
        key = next(iter(auths))
        key = key if "://" in key else "https://" + key
        url = DEFAULT_REGISTRY_URL if key == DOCKER_HUB_AUTH_KEY else key
    host = urlparse(url).hostname or ""
    auth_config_url = explicit.get("auth_config_url") or (
        url
        if url in auths
        else host
        if host in auths
        else DOCKER_HUB_AUTH_KEY
        if ("." + host).endswith((".docker.io", ".docker.com"))
        else url
    )
    if "token_url" in explicit:
        token_url = explicit["token_url"] or ""
    elif ("." + host).endswith(".gcr.io"):
        token_url = f"https://{host}/v2/token?service={host}"
    elif url.endswith(".docker.io"):
        token_url = "https://auth.docker.io/token?service=registry.docker.io"
    else:
        token_url = ""
    user, password = "", ""
    if auth_config_url in auths:
        user, _, password = base64.b64decode(auths[auth_config_url]["auth"]).decode().partition(":")
    return BinderHubRegistrySettings(
        url=url.rstrip("/"),
        token_url=token_url,
        username=explicit.get("username") or user,
        password=Secret(explicit.get("password") or password),
        not_found_401=bool(explicit.get("not_found_401", url.endswith(".docker.io"))),
        auth_config_url=auth_config_url,
    )


def get_image_manifest(
    http: RegistryHTTP,
    settings: BinderHubRegistrySettings,
    image: str,
    tag: str,
    *,
    check: str,
    hints: VerifyHints,
) -> dict[str, Any] | None:
    """BinderHub's ``get_image_manifest``: the manifest, or None for "not built".

    Raises VerificationFailed, naming ``check``, where BinderHub would raise.
    """
    url = f"{settings.url}/v2/{image}/manifests/{tag}"
    headers = {"Accept": OCI_MANIFEST}
    token = ""
    if settings.token_url:
        try:
            token = bearer_token(
                http,
                settings.token_url,
                {"scope": f"repository:{image}:pull", "service": "container_registry"},
                check=check,
                hints=hints,
            )
        except VerificationFailed as failed:
            if "HTTP 400" in failed.diagnosis and _only_the_doubled_service_is_refused(
                http, settings.token_url, image, check, hints
            ):
                # ACR refuses the doubled `service` (jupyterhub/binderhub issue 1620)
                raise VerificationFailed(
                    check,
                    f"token request to {origin(settings.token_url)} answered HTTP 400: "
                    "BinderHub appends "
                    "service=container_registry to token_url's own service, and this registry "
                    "refuses a service sent twice (as ACR does): remove DockerRegistry.token_url "
                    "if the registry accepts Basic credentials (ACR does), else drop its service=",
                ) from None
            raise
        r = http.get(url, headers=headers | {"Authorization": f"Bearer {token}"})
    else:
        r = http.get(url, headers=headers, auth=http.basic)
    if r.status_code == 404:
        return None
    if r.status_code == 401 and token and settings.not_found_401:
        return None
    if r.status_code == 401 and not token and "www-authenticate" in r.headers:
        scheme, params = parse_challenge(r.headers["www-authenticate"])
        if scheme == "basic" and settings.username:
            # Basic was sent and is refused (ACR answers a wrong one with `Basic realm="Azure
            # Container Registry"`): BinderHub stops there ("Only WWW-Authenticate Bearer type
            # supported"), but the cause is the credentials, not a missing token_url
            raise VerificationFailed(
                check,
                f"{origin(url)} refused user {settings.username!r} (HTTP Basic on the manifest "
                f"request, as BinderHub sends it without token_url): the password is wrong, "
                f"revoked or expired; {hints.credentials}",
            )
        if scheme != "bearer" or not {"realm", "service", "scope"} <= params.keys():
            raise VerificationFailed(
                check,
                f"the registry answers a {scheme.title()} challenge without realm, service "
                "and scope, which BinderHub cannot follow: set DockerRegistry.token_url",
            )
        token = bearer_token(
            http,
            params["realm"],
            {"scope": params["scope"], "service": params["service"]},
            check=check,
            hints=hints,
        )
        # BinderHub's discovery path sends no Accept header on this retry
        r = http.get(url, headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 404:
            return None
    if r.status_code == 401:
        raise VerificationFailed(
            check,
            f"the registry refused BinderHub's token for {image}: {hints.pull}, "
            "or DockerRegistry.token_url names another registry's service",
        )
    if r.status_code == 403 and denied(r):  # Artifact Registry: signed in, no permission
        raise VerificationFailed(
            check, f"the registry denied BinderHub's pull of {image} ({denied(r)}): {hints.pull}"
        )
    if r.status_code != 200:
        raise VerificationFailed(check, f"manifest request answered HTTP {r.status_code}")
    try:
        manifest = r.json()
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        raise VerificationFailed(
            check,
            f"the registry answered 200 to the manifest of {image}:{tag} with a body that is not "
            "a manifest: DockerRegistry.url may name something that is not a registry",
        )
    return manifest


def _only_the_doubled_service_is_refused(
    http: RegistryHTTP, token_url: str, image: str, check: str, hints: VerifyHints
) -> bool:
    """True when ``token_url`` works as written, so BinderHub's appended service is the fault.

    A token_url whose own ``service=`` is wrong fails this way too: then the
    request without BinderHub's addition fails as well, and the diagnosis stays
    "check DockerRegistry.token_url".
    """
    if "service=" not in token_url:
        return False
    try:
        bearer_token(
            http, token_url, {"scope": f"repository:{image}:pull"}, check=check, hints=hints
        )
    except VerificationFailed:
        return False
    return True
