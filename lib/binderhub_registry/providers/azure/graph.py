"""The Microsoft Graph requests the steps and teardown share: applications and service
principals found by name, their passwords, and the wait while a new application replicates.

Each takes a :class:`Session` (an ``AzureConnection``: its Graph client, and how long a
replication wait starts), so this module reads no connection of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import tenacity

from ...steps import progress
from .errors import graph_if_present, not_replicated
from .graph_sdk import GraphObject, GraphPage, query, quoted, send

if TYPE_CHECKING:
    from msgraph.generated.models.password_credential import PasswordCredential
    from msgraph.graph_service_client import GraphServiceClient


class Session(Protocol):
    """What the Graph requests read of a connection."""

    replication_wait: float  # the first wait while a new application replicates
    new_application: bool  # made in this run: Graph may not know it everywhere yet

    def graph(self) -> GraphServiceClient:
        """The Graph client of the running event loop."""
        ...


async def application(conn: Session, object_id: str) -> GraphObject | None:
    """``GET /applications/{id}`` (None: no such application)."""
    item = conn.graph().applications.by_application_id(object_id)
    return await graph_if_present(send, item, item.to_get_request_information(), GraphObject)


async def service_principal_by_id(conn: Session, object_id: str) -> GraphObject | None:
    """``GET /servicePrincipals/{id}`` (None: no such service principal)."""
    item = conn.graph().service_principals.by_service_principal_id(object_id)
    return await graph_if_present(send, item, item.to_get_request_information(), GraphObject)


async def _listed(builder: Any, query_class: str, odata_filter: str) -> list[GraphObject]:
    """``GET`` the collection ``builder`` names with ``$filter=<odata_filter>``: its first page."""
    parameters = getattr(type(builder), query_class)
    info = builder.to_get_request_information(query(parameters, filter=odata_filter))
    page = await send(builder, info, GraphPage)
    return list(page.value or []) if page else []


async def applications(conn: Session, name: str) -> list[GraphObject]:
    """``GET /applications?$filter=displayName eq '<name>'``."""
    return await _listed(
        conn.graph().applications,
        "ApplicationsRequestBuilderGetQueryParameters",
        f"displayName eq {quoted(name)}",
    )


async def service_principal(conn: Session, app_id: str) -> GraphObject | None:
    """``GET /servicePrincipals?$filter=appId eq '<app_id>'``: the first, if any."""
    found = await _listed(
        conn.graph().service_principals,
        "ServicePrincipalsRequestBuilderGetQueryParameters",
        f"appId eq {quoted(app_id)}",
    )
    return found[0] if found else None


async def while_replicating(conn: Session, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call()``, retrying while Graph has not replicated a new application yet.

    Up to 36 attempts, as the az CLI's ``create_service_principal_for_rbac``
    (which waits 5 s each); here the waits grow from ``replication_wait``.
    """
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(36),
        wait=tenacity.wait_exponential(multiplier=conn.replication_wait, max=10),
        retry=tenacity.retry_if_exception(not_replicated),
        before_sleep=lambda state: progress(
            f"the new application is replicating in Microsoft Graph: {what} "
            f"(attempt {state.attempt_number + 1})"
        ),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


async def passwords(conn: Session, app_object_id: str) -> list[PasswordCredential]:
    """The application's passwords (``GET /applications/{id}``)."""
    item = conn.graph().applications.by_application_id(app_object_id)

    def get() -> Awaitable[GraphObject | None]:
        return send(item, item.to_get_request_information(), GraphObject)

    if conn.new_application:  # made moments ago: Graph may answer 404 for a while
        app = await while_replicating(conn, "reading its passwords waits", get)
    else:
        app = await get()
    return list(app.password_credentials or []) if app else []


async def remove_passwords(conn: Session, app_object_id: str, key_ids: list[str]) -> int:
    """Remove the application's passwords ``key_ids`` that it still has; how many went."""
    from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (  # noqa: E501
        RemovePasswordPostRequestBody,
    )

    if not key_ids:
        return 0
    present = {str(c.key_id) for c in await passwords(conn, app_object_id)}
    removed = 0
    for key_id in key_ids:
        if key_id in present:  # removing an absent one is an error in Graph
            body = RemovePasswordPostRequestBody(key_id=uuid.UUID(key_id))
            item = conn.graph().applications.by_application_id(app_object_id)
            await item.remove_password.post(body)
            removed += 1
    return removed
