"""The errors binderhub-registry raises, each one a thing a person can act on.

The hierarchy::

    BinderHubRegistryError          root: catch this to catch them all
    ├── InvalidParameter            a parameter broke its rule (no cloud call was made)
    ├── InvalidValuesFile           a values file cannot be read; names file and line, never content
    ├── MissingCredentials          no secret was found; says where to put one
    ├── AuthenticationFailed        the cloud refused the secret it was given (401)
    ├── PermissionDenied            signed in, but not allowed to do the step (403)
    ├── CloudError                  the cloud answered an error we do not retry (other 4xx, TLS)
    │   └── TransientCloudError     408, 425, 429, 5xx, reset, timeout: the step runner retries it
    ├── VerificationFailed          the BinderHub values do not work; a diagnosis and the report
    └── SandboxError                the local sandbox could not start or be reached

Every message is one line and names what to change. Every error pickles with its
attributes (papermill and nbclient carry errors across processes).

Foreign errors reach this tree through one mapping, used by every provider::

    with map_exceptions(requests_errors("Docker Hub")):
        r = session.get(url)
    if r.status_code >= 400:
        raise error_for_status("Docker Hub", r.status_code, r.reason,
                               retry_after=retry_after(r.headers.get("Retry-After")))

- :func:`retry_after` parses ``Retry-After`` (seconds or an HTTP date);
- :func:`error_for_status` is the one status table (HTTP);
- :func:`grpc_error` is the same table for gRPC status names;
- :func:`map_exceptions` translates foreign exceptions with a table of translators;
- :func:`requests_errors` and :func:`http_error` are translators for requests and for
  SDK errors carrying a status (azure-core's ``HttpResponseError``, requests' ``HTTPError``).
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC
from typing import Any

from .report import VerificationReport

__all__ = [
    "GRPC_HTTP_STATUS",
    "AuthenticationFailed",
    "BinderHubRegistryError",
    "CloudError",
    "InvalidParameter",
    "InvalidValuesFile",
    "MissingCredentials",
    "PermissionDenied",
    "SandboxError",
    "TransientCloudError",
    "Translator",
    "VerificationFailed",
    "error_for_response",
    "error_for_status",
    "grpc_error",
    "http_error",
    "map_exceptions",
    "requests_errors",
    "retry_after",
]


class BinderHubRegistryError(Exception):
    """Root of every error this package raises on purpose."""


class InvalidParameter(BinderHubRegistryError, ValueError):
    """A notebook parameter does not follow its rule; raised before any cloud call."""

    def __init__(self, name: str, rule: str, value: object = None) -> None:
        self.name = name
        self.rule = rule
        self.value = value
        super().__init__(f"parameter {name!r}: {rule} (got {_short_repr(value)})")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.name, self.rule, self.value), self.__dict__


#: Characters of a bad value's repr that a message shows: a message stays one short line.
VALUE_SHOWN = 60


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_SHOWN else text[: VALUE_SHOWN - 1] + "…"


class InvalidValuesFile(BinderHubRegistryError, ValueError):
    """A values file (``config.yaml``, ``secret.yaml``) is missing, malformed or of the wrong shape.

    The message names the file, the line where known, and what to fix; never the
    file's content (a YAML parser would quote the offending line: a secret).
    """

    def __init__(self, path: str, problem: str, line: int | None = None) -> None:
        self.path = path
        self.problem = problem
        self.line = line
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.problem, self.line), self.__dict__


class MissingCredentials(BinderHubRegistryError):
    """No secret was available; the message says which variable to set or how to sign in."""

    def __init__(self, what: str, how: str) -> None:
        self.what = what
        self.how = how
        super().__init__(f"{what}: {how}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.what, self.how), self.__dict__


class AuthenticationFailed(BinderHubRegistryError):
    """The cloud rejected the credentials (wrong password, revoked or expired token)."""


class PermissionDenied(BinderHubRegistryError):
    """Signed in, but the account may not do this (not an org member, missing role)."""


class CloudError(BinderHubRegistryError):
    """The cloud answered with an error that retrying will not fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.status), self.__dict__


class TransientCloudError(CloudError):
    """A fault worth retrying: 408, 425, 429, 5xx, a dropped connection or a timeout."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.status, self.retry_after), self.__dict__


class VerificationFailed(BinderHubRegistryError):
    """The emitted values fail BinderHub's handshake or a push; ``diagnosis`` says what to fix."""

    def __init__(
        self, check: str, diagnosis: str, report: VerificationReport | None = None
    ) -> None:
        self.check = check
        self.diagnosis = diagnosis
        self.report = report  # the checks run so far, the failed one last (set by verify)
        super().__init__(f"{check}: {diagnosis}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.check, self.diagnosis, self.report), self.__dict__


class SandboxError(BinderHubRegistryError):
    """The local sandbox is missing, could not start, or did not answer."""


# --- one mapping from foreign faults to the tree ------------------------------------------

_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?")


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date.

    Never negative (a date in the past is 0.0); None when absent or unparseable,
    so the caller falls back to its own backoff.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's "UTC, source unknown"
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - time.time(), 0.0)


def _line(text: object) -> str:
    """One line of at most 300 characters: cloud messages can be whole HTML pages."""
    line = " ".join(str(text or "").split())
    return line if len(line) <= 300 else line[:299] + "…"


def error_for_status(
    service: str, status: int, message: str, *, retry_after: float | None = None
) -> BinderHubRegistryError:
    """The error for an HTTP error ``status`` from ``service``; the caller raises it.

    401 is :class:`AuthenticationFailed`, 403 :class:`PermissionDenied`, 408, 425,
    429 and 5xx :class:`TransientCloudError` (with ``retry_after``), any other
    status :class:`CloudError`.
    """
    text = f"{service} answered {status}" + (f": {_line(message)}" if message.strip() else "")
    if status == 401:
        return AuthenticationFailed(text)
    if status == 403:
        return PermissionDenied(text)
    if status in (408, 425, 429) or 500 <= status <= 599:
        return TransientCloudError(text, status, retry_after)
    return CloudError(text, status)


def error_for_response(service: str, response: Any, message: str) -> BinderHubRegistryError:
    """:func:`error_for_status` of an HTTP answer (``.status_code``, ``.headers``, as
    requests' ``Response``), with its ``Retry-After``; the caller words ``message``."""
    return error_for_status(
        service,
        int(response.status_code),
        message,
        retry_after=retry_after(response.headers.get("Retry-After")),
    )


#: gRPC status names and their HTTP equivalents (google.rpc.Code's documented mapping).
GRPC_HTTP_STATUS = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}
# Decided by name, not by HTTP equivalent: ABORTED (409) is worth retrying, UNIMPLEMENTED (501)
# and DATA_LOSS (500) are not.
_GRPC_TRANSIENT = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL"}
)


def grpc_error(service: str, code_name: str, message: str) -> BinderHubRegistryError:
    """The error for a gRPC status, by name (``"UNAVAILABLE"`` or ``"StatusCode.UNAVAILABLE"``).

    Needs no grpc import: pass ``exc.code().name`` and ``exc.details()``. The error's
    ``status`` is the HTTP equivalent, so callers can treat both transports alike.
    """
    name = code_name.rpartition(".")[2].upper()
    status = GRPC_HTTP_STATUS.get(name, 500)
    text = f"{service} answered {name}" + (f": {_line(message)}" if message.strip() else "")
    if name == "UNAUTHENTICATED":
        return AuthenticationFailed(text)
    if name == "PERMISSION_DENIED":
        return PermissionDenied(text)
    if name in _GRPC_TRANSIENT:
        return TransientCloudError(text, status)
    return CloudError(text, status)


#: Turns one foreign exception into ours (typed ``Any`` so a translator may take the SDK's class).
Translator = Callable[[Any], BinderHubRegistryError]


@contextlib.contextmanager
def map_exceptions(table: Mapping[type[Exception], Translator]) -> Iterator[None]:
    """Raise ours instead of foreign exceptions listed in ``table`` (also a decorator).

    The first class in ``table`` that the exception is an instance of picks the
    translator, so list subclasses before their bases. Our own errors and
    unlisted ones pass through untouched. The foreign exception is dropped
    (``from None``): its message and traceback may carry URLs, headers or tokens.
    """
    try:
        yield
    except BinderHubRegistryError:
        raise
    except Exception as exc:
        for cls, translate in table.items():
            if isinstance(exc, cls):
                raise translate(exc) from None
        raise


def _headers_of(exc: Exception) -> Any:
    response = getattr(exc, "response", None)
    return getattr(response, "headers", None) or getattr(exc, "response_headers", None) or {}


def http_error(service: str) -> Translator:
    """A translator for exceptions that carry an HTTP status, through :func:`error_for_status`.

    Duck-typed, so it serves azure-core's ``HttpResponseError`` (``.status_code``,
    ``.message``, ``.response.headers``) and requests' ``HTTPError`` (``.response``)
    without importing either.
    """

    def translate(exc: Exception) -> BinderHubRegistryError:
        response = getattr(exc, "response", None)
        status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
        message = getattr(exc, "message", None) or getattr(response, "reason", None) or ""
        headers = _headers_of(exc)
        try:
            wait = retry_after(headers.get("Retry-After") or headers.get("retry-after"))
        except AttributeError:
            wait = None
        if not isinstance(status, int):
            return CloudError(f"{service} failed: {_line(message) or type(exc).__name__}")
        return error_for_status(service, status, str(message), retry_after=wait)

    return translate


_SSL_REASON = re.compile(r"\[SSL: [A-Z_]+\] ([^(')]+)")


def requests_errors(service: str) -> dict[type[Exception], Translator]:
    """The :func:`map_exceptions` table for requests, naming ``service`` in every message.

    Connection faults and timeouts are transient; a failed TLS verification is not
    (retrying cannot fix a certificate), nor is a malformed URL.
    """
    import requests  # here, not at the top: the sandbox server imports this module

    def tls(exc: Exception) -> BinderHubRegistryError:
        found = _SSL_REASON.search(str(exc))
        reason = f" ({found.group(1).strip()})" if found else ""
        return CloudError(
            f"TLS verification of {service} failed{reason}: check the URL names the "
            "service's own host, that the CA is trusted (a private CA needs its bundle, e.g. "
            "the sandbox's ca.crt) and that this machine's clock is right"
        )

    def unreachable(exc: Exception) -> BinderHubRegistryError:
        return TransientCloudError(f"cannot reach {service} ({type(exc).__name__})")

    def refused(exc: Exception) -> BinderHubRegistryError:
        return CloudError(
            f"cannot send a request to {service} ({type(exc).__name__}): check the URL"
        )

    return {
        requests.exceptions.SSLError: tls,  # a ConnectionError: must come first
        requests.ConnectionError: unreachable,
        requests.Timeout: unreachable,
        requests.exceptions.ChunkedEncodingError: unreachable,
        requests.HTTPError: http_error(service),
        requests.RequestException: refused,
    }
