"""The HTTP transport to a registry: one session, faults mapped, challenges parsed.

Used by BinderHub's check (:mod:`.binderhub_check`), the push (:mod:`.push`), the
pull (:mod:`.pull`) and the token service's client (:mod:`.registry_auth`) with the
values' own credentials. Faults worth retrying (resets, timeouts, 408, 425, 429, 5xx)
raise :class:`~.errors.TransientCloudError` for the step runner; every other answer goes
back to the caller, which knows what a 401 or 404 means at its step: this module words
no diagnosis of an answer (it knows nothing of checks or a provider's hints), only its
own refusals (plain HTTP, the deadline, an oversized body).

A hostile or broken registry cannot hold verification or fill memory: every
request of one verification shares one :class:`Deadline` (a server that sends a
byte every few seconds never trips a per-read timeout), and no body is read past
:data:`MAX_BODY`. Credentials go only to the registry's own origin (``home``), as
docker sends them: a ``Location`` on another origin gets none. Messages built from
a server's answer are redacted of every secret in use (plain, base64, URL-encoded).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlparse, urlunparse

import requests

from .errors import (
    TransientCloudError,
    VerificationFailed,
    error_for_status,
    map_exceptions,
    requests_errors,
    retry_after,
)
from .secrets import Secret, redact

__all__ = [
    "DEADLINE",
    "MAX_BODY",
    "OCI_MANIFEST",
    "TIMEOUT",
    "Deadline",
    "RegistryHTTP",
    "denied",
    "origin",
    "parse_challenge",
    "plain_http_refusal",
    "secret_forms",
    "url_concat",
]

#: The only manifest type BinderHub's check accepts, and the one the push sends.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: Seconds per read (connect, then each read of an answer).
TIMEOUT = 15.0
#: Seconds a whole verification may take, unless told otherwise (``--deadline``).
DEADLINE = 180.0
#: Largest body read from a registry or token service: tokens and manifests are a few KiB,
#: the check image's layer a few hundred bytes.
MAX_BODY = 8 << 20


#: Shorter secrets are not looked for in messages: replacing every "p" of a message hides
#: nothing a reader could not guess, and makes the message unreadable.
MIN_REDACTED = 4


def secret_forms(*secrets: Secret) -> list[str]:
    """Each secret as a server could echo it: plain and URL-encoded (:func:`~.secrets.redact`
    finds base64 forms, docker's ``user:password`` included, by itself)."""
    return [
        form
        for text in (s.reveal() for s in secrets)
        if len(text) >= MIN_REDACTED
        for form in dict.fromkeys((text, quote(text, safe=""), quote_plus(text)))
    ]


class Deadline:
    """The time left for one verification, shared by every request it makes."""

    def __init__(self, seconds: float = DEADLINE) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left (0 when past)."""
        return max(0.0, self.end - time.monotonic())

    def expired(self, service: str) -> VerificationFailed:
        """The failure when the time is up while talking to ``service``."""
        return VerificationFailed(
            "time limit",
            f"verification took over {self.seconds:g} s: {service} answered too slowly or not "
            "at all; check the registry's health, or allow more time with --deadline",
        )


def url_concat(url: str, args: dict[str, str]) -> str:
    """Append query arguments keeping existing ones, as tornado's url_concat does."""
    parts = urlparse(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(args.items())
    return urlunparse(parts._replace(query=urlencode(query)))


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """A ``WWW-Authenticate`` header as (lower-case scheme, its quoted parameters)."""
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def denied(r: requests.Response) -> str:
    """The message of a registry's ``DENIED`` error body (distribution's ``{"errors": [...]}``,
    which docker prints as ``denied: <message>``), cut to 300 characters; "" when it is not."""
    try:
        errors = r.json()["errors"]
        found = next(e for e in errors if e.get("code") == "DENIED")
        return str(found.get("message") or "DENIED")[:300]
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
        return ""


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
    before anything is sent. ``realms`` lists every token service used, in order
    (:func:`~.registry_auth.bearer_token` notes each).
    """

    def __init__(
        self,
        username: str,
        password: Secret,
        ca_bundle: str | None = None,
        *,
        insecure: bool = False,
        home: str | None = None,
        deadline: Deadline | None = None,
        secrets: tuple[Secret, ...] = (),
    ) -> None:
        self.username = username
        self.password = password
        self.insecure = insecure
        self.home = origin(home) if home else None  # the registry: the only origin given auth
        self.deadline = deadline or Deadline()
        self.realms: list[str] = []
        self.secrets = secret_forms(password, *secrets)
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

    def redact(self, text: str) -> str:
        """``text`` without any secret in use, in any form a server could echo it."""
        cleaned: str = redact(text, self.secrets)
        return cleaned

    def send(self, method: str, url: str, **kw: Any) -> requests.Response:
        """One request; faults worth retrying raise TransientCloudError, other answers return.

        Runs within the shared deadline (the request runs in a daemon thread that is given
        up when the time is up), reads at most :data:`MAX_BODY`, and sends an
        ``Authorization`` header only to the registry's own origin.
        """
        self.require_https(url, "HTTPS only", "a request to")  # a Location header may say http
        service = origin(url)
        if self.home and service != self.home:  # as docker: no registry credentials elsewhere
            # (a token realm's Basic credentials travel as ``auth=``: the challenge named it)
            headers = kw.get("headers") or {}
            kw = kw | {
                "headers": {k: v for k, v in headers.items() if k.lower() != "authorization"}
            }
        left = self.deadline.left()
        if left <= 0:
            raise self.deadline.expired(service)
        answer: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                answer["response"] = self._request(method, url, service, kw)
            except BaseException as e:  # handed to the caller's thread
                answer["error"] = e
            finally:
                done.set()

        threading.Thread(target=run, name="registry-request", daemon=True).start()
        if not done.wait(left):
            raise self.deadline.expired(service)
        if "error" in answer:
            raise answer["error"]
        r: requests.Response = answer["response"]
        if r.status_code >= 400:
            error = error_for_status(
                service,
                r.status_code,
                self.redact(f"{r.reason} to {method}"),
                retry_after=retry_after(r.headers.get("Retry-After")),
            )
            if isinstance(error, TransientCloudError):
                raise error
        return r

    def _request(
        self, method: str, url: str, service: str, kw: dict[str, Any]
    ) -> requests.Response:
        """The answer with its body read, at most :data:`MAX_BODY` bytes of it."""
        with map_exceptions(requests_errors(service)):
            r = self.session.request(method, url, timeout=TIMEOUT, stream=True, **kw)
            body = bytearray()
            try:
                for chunk in r.iter_content(1 << 16):
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise VerificationFailed(
                            "registry answer",
                            f"{service} answered {method} with a body over "
                            f"{MAX_BODY >> 20} MiB: not a registry's answer",
                        )
            finally:
                r.close()
        # the body as read, for .content and .json(): requests' own place for it
        r._content = bytes(body)
        r._content_consumed = True  # type: ignore[attr-defined]
        return r

    def get(self, url: str, **kw: Any) -> requests.Response:
        """:meth:`send` a GET."""
        return self.send("GET", url, **kw)
