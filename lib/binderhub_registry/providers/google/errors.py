"""Google's SDK errors as ours: google-api-core's (gRPC and REST), google-api-python-client's
HttpError, google-auth's, and the 403s that say an API is off or a quota project is missing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ...errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    MissingCredentials,
    PermissionDenied,
    TransientCloudError,
    error_for_status,
    grpc_error,
    map_exceptions,
)
from ..contract import if_present
from .params import _QUOTA_FIX, _SIGN_IN_HOW, GCLOUD_PROJECT_NUMBER, NAME

T = TypeVar("T")


# --- errors -----------------------------------------------------------------------------
class ServiceDisabled(PermissionDenied):
    """403 SERVICE_DISABLED: ``service`` is off for ``consumer`` (``projects/<number or id>``),
    or was enabled so recently that Google has not caught up (ErrorInfo, google.rpc)."""

    def __init__(self, message: str, service: str, consumer: str) -> None:
        self.service = service
        self.consumer = consumer
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.service, self.consumer), self.__dict__


def _disabled(message: str, reason: object, metadata: object) -> BinderHubRegistryError | None:
    """Ours for a SERVICE_DISABLED or quota-project 403 (ErrorInfo ``reason``, ``metadata``)."""
    items = getattr(metadata, "items", None)  # a dict (REST), or a protobuf map (gRPC)
    info: dict[str, Any] = dict(items()) if callable(items) else {}
    consumer = str(info.get("consumer", ""))
    if "requires a quota project" in message or consumer.endswith(f"/{GCLOUD_PROJECT_NUMBER}"):
        # google-auth-library-python#1459's text; or billed to gcloud's own project
        return PermissionDenied(f"{NAME}: {_QUOTA_FIX.format(project='<project_id>')}")
    if "does not have required permission to use project" in message:
        # a quota project the caller may not use (google-github-actions/auth#250)
        return PermissionDenied(
            f"{NAME}: the quota project must be one you may use (roles/serviceusage."
            "serviceUsageConsumer there): run `gcloud auth application-default "
            "set-quota-project <project_id>` with this notebook's project_id, then rerun"
        )
    if reason != "SERVICE_DISABLED":
        return None
    text = f"{NAME} answered PERMISSION_DENIED: {' '.join(message.split())[:300]}"
    return ServiceDisabled(text, str(info.get("service", "")), consumer)


def _error_info(details: Any) -> tuple[object, object]:
    """(reason, metadata) of the ErrorInfo among a REST error body's ``details``."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("rpc.ErrorInfo"):
            return detail.get("reason"), detail.get("metadata")
    return None, None


def _google_error(exc: Any) -> BinderHubRegistryError:
    """google-api-core's exception (gRPC or REST) as ours, by its canonical status name."""
    message = str(getattr(exc, "message", "") or type(exc).__name__)
    if int(getattr(exc, "code", 0) or 0) == 403:  # api-core reads ErrorInfo from both
        disabled = _disabled(message, getattr(exc, "reason", None), getattr(exc, "metadata", None))
        if disabled is not None:
            return disabled
    # a PreconditionFailure names the constraint (the org policy on keys: legacy or managed)
    violated = [
        str(getattr(v, "type", ""))
        for d in getattr(exc, "details", None) or []
        for v in getattr(d, "violations", [])
    ]
    if any(violated):
        message += f" [{', '.join(v for v in violated if v)}]"
    code = getattr(exc, "grpc_status_code", None)
    name = getattr(code, "name", None)
    if name is None:  # REST: api-core picks the class by HTTP status; the body names it
        try:
            name = exc.response.json()["error"]["status"]
        except Exception:
            name = None
    if name is None:
        return error_for_status(NAME, int(getattr(exc, "code", 500) or 500), message)
    return grpc_error(NAME, str(name), message)


def _http_error(exc: Any) -> BinderHubRegistryError:
    """google-api-python-client's HttpError as ours: Google's error body names the status."""
    status = int(getattr(exc.resp, "status", 500) or 500)
    try:
        error = json.loads(exc.content)["error"]
        message, name = str(error.get("message", "")), error.get("status")
    except (ValueError, KeyError, TypeError):
        message, name, error = str(getattr(exc, "reason", "") or ""), None, {}
    if status == 403:
        disabled = _disabled(message, *_error_info(error.get("details")))
        if disabled is not None:
            return disabled
    if name is None or status == 429 or status >= 500:  # keep Retry-After for the runner
        retry_after = exc.resp.get("retry-after") if hasattr(exc.resp, "get") else None
        try:
            seconds = float(retry_after) if retry_after is not None else None
        except ValueError:
            seconds = None
        return error_for_status(NAME, status, message, retry_after=seconds)
    return grpc_error(NAME, str(name), message)


def _errors() -> dict[type[Exception], Callable[[Any], BinderHubRegistryError]]:
    import ssl
    from http.client import HTTPException

    import httplib2  # type: ignore[import-untyped]
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc
    from googleapiclient import errors as hexc  # type: ignore[import-untyped]

    def unreachable(e: Any) -> BinderHubRegistryError:
        return TransientCloudError(f"{NAME} unreachable ({type(e).__name__})")

    return {
        hexc.HttpError: _http_error,
        ssl.SSLError: lambda e: CloudError(f"{NAME}: TLS failed ({str(e)[:200]})"),
        httplib2.HttpLib2Error: unreachable,
        HTTPException: unreachable,
        ConnectionError: unreachable,
        TimeoutError: unreachable,
        gexc.RetryError: lambda e: TransientCloudError(f"{NAME}: retries ran out ({e})"),
        gexc.GoogleAPICallError: _google_error,
        aexc.RefreshError: lambda e: AuthenticationFailed(
            f"Google refused the credentials: {str(e).splitlines()[0][:200]}"
        ),
        aexc.TransportError: lambda e: TransientCloudError(f"{NAME} unreachable"),
        aexc.DefaultCredentialsError: lambda e: MissingCredentials(
            "no Google credentials found", _SIGN_IN_HOW
        ),
    }


@contextmanager
def _mapped() -> Iterator[None]:
    with map_exceptions(_errors()):
        yield


def _if_present(call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``call(*args, **kwargs)`` (a Google SDK call), or None when Google answers 404: its
    error is translated first (:func:`_mapped`), so that :func:`~..contract.if_present` sees
    ours, whichever SDK (gRPC, REST) raised it."""

    def mapped() -> T:
        with _mapped():
            return call(*args, **kwargs)

    return if_present(mapped)
