"""Azure's errors as the package's: Azure Resource Manager's and Entra ID's (azure-core), and
Microsoft Graph's (msgraph-sdk, httpx), each one line saying what to do.

:func:`arm_step` and :func:`graph_step` wrap a step in the translation; :func:`arm_if_present`
and :func:`graph_if_present` are :func:`~..contract.if_present` for calls whose SDK raises its
own not-found class (azure-core's ``ResourceNotFoundError``, msgraph-sdk's ``ODataError``):
translated first, a 404 is then the package's, which ``if_present`` takes as absent.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from functools import wraps
from typing import Any, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from ...errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    TransientCloudError,
    Translator,
    error_for_status,
    map_exceptions,
    retry_after,
)
from ...steps import Result, progress
from ..contract import if_present, if_present_async
from .graph_sdk import require_graph_sdk

T = TypeVar("T")
R = TypeVar("R")


def one_line(text: object) -> str:
    """``text`` with its line breaks and runs of spaces as single spaces."""
    return " ".join(str(text or "").split())


def _azure_message(exc: HttpResponseError) -> tuple[str, str]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or exc.reason or "error"
    message = getattr(error, "message", None) or exc.message
    return str(code), one_line(str(message).split("\nCode:")[0])


_WHO_ARM = (
    "the signed-in identity needs Owner (or Contributor plus User Access Administrator) on "
    "the subscription or the resource group"
)
_WHO_GRAPH = (
    "creating applications needs the Application Developer role (a person) or "
    "Application.ReadWrite.OwnedBy (a service principal) in Microsoft Entra ID"
)


_WHO_ASSIGNS = (
    "only Owner, User Access Administrator or RBAC Administrator may assign roles: ask one "
    "for such a role, or to rerun this notebook"
)


def _client_of(message: str) -> str:
    """``"The client 'x' "`` from an AuthorizationFailed message, or nothing."""
    client = re.search(r"The client '([^']+)'", message)
    return f"the signed-in identity {client.group(1)} " if client else ""


def from_arm(exc: Exception) -> BinderHubRegistryError:
    """An ARM error (``HttpResponseError``) as the package's: its code and message in one line,
    and for a 403 who may do what was refused."""
    assert isinstance(exc, HttpResponseError)
    code, message = _azure_message(exc)
    if exc.status_code == 403:
        assigning = "Microsoft.Authorization/roleAssignments/write" in message
        # Azure's text names the client, the action and the scope: keep the action and the
        # scope's last part, so what to do still fits in the one line
        refused = re.search(r"perform action '([^']+)' over scope '([^']+)'", message)
        if refused:
            where = "/".join(refused.group(2).rstrip("/").split("/")[-2:])
            message = f"{_client_of(message)}may not do {refused.group(1)} on {where}"
        message += ": " + (_WHO_ASSIGNS if assigning else _WHO_ARM)
    elif code == "MissingSubscriptionRegistration":
        namespace = message.split("'")[1] if message.count("'") >= 2 else "the namespace"
        message += f": register it once with `az provider register --namespace {namespace}`"
    headers = getattr(exc.response, "headers", None) or {}
    return error_for_status(
        "Azure",
        exc.status_code or 0,
        f"({code}) {message}",
        retry_after=retry_after(headers.get("Retry-After")),
    )


def from_graph(exc: Exception) -> BinderHubRegistryError:
    """A Microsoft Graph error (``ODataError``) as the package's, saying what to do."""
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    assert isinstance(exc, ODataError)
    code = (exc.error.code if exc.error else None) or "error"
    message = one_line((exc.error.message if exc.error else None) or exc.message)
    status = exc.response_status_code or 0
    if status == 403:
        message += ": " + _WHO_GRAPH
    elif code == "CredentialInvalidLifetimeAsPerAppPolicy":
        message = (
            "the tenant's app management policy refuses a password valid that long: set "
            "secret_expiry_days to at most the policy's limit (ask your Microsoft Entra ID "
            "administrator for it) and rerun"
        )
    headers = exc.response_headers or {}
    return error_for_status(
        "Microsoft Graph",
        status,
        f"({code}) {message}",
        retry_after=retry_after(headers.get("Retry-After") or headers.get("retry-after")),
    )


#: Azure Resource Manager's and Entra ID's errors (azure-core), mapped to the package's (first
#: matching class wins); :func:`graph_errors` adds Microsoft Graph's.
AZURE_ERRORS: dict[type[Exception], Translator] = {
    ClientAuthenticationError: lambda e: AuthenticationFailed(
        f"Azure refused the credential: {one_line(getattr(e, 'message', e))}"
    ),
    HttpResponseError: from_arm,
    ServiceRequestError: lambda e: TransientCloudError(
        f"cannot reach Azure: {one_line(getattr(e, 'message', e))}"
    ),
    ServiceResponseError: lambda e: TransientCloudError(
        f"cannot reach Azure: {one_line(getattr(e, 'message', e))}"
    ),
}


class _RegistrationProgress(logging.Handler):
    """azure-mgmt-core's resource provider registration, shown as the step's progress.

    On a fresh subscription ARM answers 409 MissingSubscriptionRegistration;
    azure-mgmt-core then registers the namespace itself and polls every 10 s,
    saying so only in a log warning: relay it, so the wait is visible.
    """

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "not registered" in text:
            text += " (a fresh subscription: Azure takes a minute or two)"
        progress(one_line(text))


@contextlib.contextmanager
def registration_progress() -> Iterator[None]:
    """Within: azure-mgmt-core's resource provider registration shown as the step's progress."""
    logger = logging.getLogger("azure.mgmt.core.policies._base")
    handler = _RegistrationProgress(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def arm_step(fn: Callable[..., Result[T]]) -> Callable[..., Result[T]]:
    """A step whose SDK errors become the package's (one line, saying what to do)."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Result[T]:
        with map_exceptions(AZURE_ERRORS), registration_progress():
            return fn(*args, **kwargs)

    return run


def graph_step(fn: Callable[..., Awaitable[Result[T]]]) -> Callable[..., Awaitable[Result[T]]]:
    """:func:`arm_step` for the coroutine (Microsoft Graph) steps."""

    @wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Result[T]:
        with map_exceptions(graph_errors()):
            return await fn(*args, **kwargs)

    return run


_GRAPH_ERRORS: dict[type[Exception], Translator] = {}


def graph_errors() -> dict[type[Exception], Translator]:
    """:data:`AZURE_ERRORS` and Microsoft Graph's (msgraph-sdk's and httpx's), loading them."""
    if not _GRAPH_ERRORS:
        require_graph_sdk()
        import httpx
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        _GRAPH_ERRORS.update(AZURE_ERRORS)
        _GRAPH_ERRORS[ODataError] = from_graph
        _GRAPH_ERRORS[httpx.TransportError] = lambda e: TransientCloudError(
            f"cannot reach Microsoft Graph ({type(e).__name__})"
        )
    return _GRAPH_ERRORS


def not_replicated(exc: BaseException) -> bool:
    """Graph's answers while a new application replicates (the az CLI retries both).

    POST servicePrincipals: 400 NoBackingApplicationObject ("... does not
    reference a valid application object"); GET of the application: 404.
    """
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    if not isinstance(exc, ODataError) or exc.error is None:
        return False
    codes = {exc.error.code, *(d.code for d in exc.error.details or [])}
    text = str(exc.error.message or "")
    return (
        "NoBackingApplicationObject" in codes
        or "does not reference a valid application object" in text
        or (exc.response_status_code == 404 and "Request_ResourceNotFound" in codes)
    )


def is_principal_not_found(exc: BaseException) -> bool:
    """ARM's answer while a new service principal replicates (``PrincipalNotFound``)."""
    error = getattr(exc, "error", None)
    return isinstance(exc, HttpResponseError) and getattr(error, "code", "") == "PrincipalNotFound"


def arm_if_present(call: Callable[..., R], *args: Any, **kwargs: Any) -> R | None:
    """:func:`~..contract.if_present` for an ARM call: None when ARM answers 404."""

    def translated() -> R:
        with map_exceptions(AZURE_ERRORS):
            return call(*args, **kwargs)

    return if_present(translated)


async def graph_if_present(
    call: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any
) -> R | None:
    """:func:`~..contract.if_present_async` for a Graph call: None when Graph answers 404."""

    async def translated() -> R:
        with map_exceptions(graph_errors()):
            return await call(*args, **kwargs)

    return await if_present_async(translated)
