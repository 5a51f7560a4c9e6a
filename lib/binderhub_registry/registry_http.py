"""The HTTP transport to a registry: one session, faults mapped, challenges parsed, tokens fetched.

Used by BinderHub's check (:mod:`.binderhub_check`) and by the push (:mod:`.push`)
with the values' own credentials. Faults worth retrying (resets, timeouts, 408,
425, 429, 5xx) raise :class:`~.errors.TransientCloudError` for the step runner;
every other answer goes back to the caller, which knows what a 401 or 404 means
at its step.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import requests

from .errors import (
    TransientCloudError,
    VerificationFailed,
    error_for_status,
    map_exceptions,
    requests_errors,
    retry_after,
)
from .secrets import Secret

if TYPE_CHECKING:
    from .verify import VerifyHints

__all__ = [
    "OCI_MANIFEST",
    "TIMEOUT",
    "RegistryHTTP",
    "origin",
    "parse_challenge",
    "plain_http_refusal",
    "url_concat",
]

#: The only manifest type BinderHub's check accepts, and the one the push sends.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: Seconds per request.
TIMEOUT = 15.0


def url_concat(url: str, args: dict[str, str]) -> str:
    """Append query arguments keeping existing ones, as tornado's url_concat does."""
    parts = urlparse(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(args.items())
    return urlunparse(parts._replace(query=urlencode(query)))


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """A ``WWW-Authenticate`` header as (lower-case scheme, its quoted parameters)."""
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: what messages name (never a path or query)."""
    p = urlparse(url)
    return f"{p.scheme}://{p.netloc}"


def plain_http_refusal(what: str, url: str) -> str:
    """The diagnosis when ``what`` (a setting, a realm) names a plain-HTTP ``url``."""
    return (
        f"{what} {origin(url)} is plain HTTP: the password would cross the network in clear "
        "text, and docker refuses such a registry unless it is listed as insecure; use "
        "https, or allow it with --insecure (insecure=True) on a network you trust"
    )


class RegistryHTTP:
    """Requests to one registry and its token service, with the values' username and password.

    Only https unless ``insecure``: a plain-HTTP request raises VerificationFailed
    before anything is sent. ``realms`` lists every token service used, in order.
    """

    def __init__(
        self,
        username: str,
        password: Secret,
        ca_bundle: str | None = None,
        *,
        insecure: bool = False,
    ) -> None:
        self.username = username
        self.password = password
        self.insecure = insecure
        self.realms: list[str] = []
        self.session = requests.Session()
        self.session.verify = ca_bundle or True
        self.session.trust_env = False  # proxies and netrc must not change what is verified

    def require_https(self, url: str, check: str, what: str = "the URL") -> None:
        """Raise VerificationFailed naming ``check`` when ``url`` is not https (unless insecure)."""
        scheme = urlparse(url).scheme.lower()
        if scheme == "https" or (scheme == "http" and self.insecure):
            return
        if scheme == "http":
            raise VerificationFailed(check, plain_http_refusal(what, url))
        raise VerificationFailed(check, f"{what} {origin(url)} is not an https:// URL")

    @property
    def basic(self) -> tuple[str, str]:
        """HTTP Basic credentials for ``requests``' ``auth=``."""
        return self.username, self.password.reveal()

    def send(self, method: str, url: str, **kw: Any) -> requests.Response:
        """One request; faults worth retrying raise TransientCloudError, other answers return."""
        self.require_https(url, "HTTPS only", "a request to")  # a Location header may say http
        service = origin(url)
        with map_exceptions(requests_errors(service)):
            r = self.session.request(method, url, timeout=TIMEOUT, **kw)
        if r.status_code >= 400:
            error = error_for_status(
                service,
                r.status_code,
                f"{r.reason} to {method}",
                retry_after=retry_after(r.headers.get("Retry-After")),
            )
            if isinstance(error, TransientCloudError):
                raise error
        return r

    def get(self, url: str, **kw: Any) -> requests.Response:
        """:meth:`send` a GET."""
        return self.send("GET", url, **kw)

    def token(self, realm: str, args: dict[str, str], check: str, hints: VerifyHints) -> str:
        """A bearer token from ``realm`` with Basic credentials; diagnoses name ``check``."""
        self.require_https(realm, check, "the token service")
        self.realms.append(realm)
        # no username: an anonymous client (a kubelet without a pull secret) sends no Basic
        r = self.get(url_concat(realm, args), auth=self.basic if self.username else None)
        if r.status_code == 401:
            raise VerificationFailed(
                check,
                f"{origin(realm)} refused user {self.username!r}: the password or access "
                f"token is wrong, revoked or expired; {hints.credentials}",
            )
        if r.status_code != 200:
            raise VerificationFailed(
                check,
                f"token request to {origin(realm)} answered HTTP {r.status_code}: "
                "check DockerRegistry.token_url points at the registry's token endpoint",
            )
        try:
            body = r.json()
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise VerificationFailed(
                check, f"{origin(realm)} did not return a token: check DockerRegistry.token_url"
            ) from None
