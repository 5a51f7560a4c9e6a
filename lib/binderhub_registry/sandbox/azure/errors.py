"""Azure's error bodies, one shape per service, so the SDKs raise their real exception classes.

=========================================  ================================================
behaviour                                  source
=========================================  ================================================
ARM: ``{"error": {"code", "message"}}``;   ARM common error response in
azure-core maps 404 and 409 to             Azure/azure-rest-api-specs
ResourceNotFoundError/ResourceExistsError  (common-types/resource-management/v5/types.json
                                           ErrorResponse); azure-core's error map
Graph: OData ``{"error": {"code",          Microsoft Graph errors doc page
"message", "innerError": {"date",          (learn.microsoft.com/graph/errors); msgraph-sdk
"request-id", "client-request-id"}}}``     raises ODataError from it
Graph 404 ``Request_ResourceNotFound``     same doc page; its message text: assumption
Entra ID token errors: ``error``,          Microsoft identity platform doc page (error
``error_description`` starting             codes, AADSTS); msal and azure-identity read
``AADSTS<code>:``, ``error_codes``,        ``error_description``
``trace_id``, ``correlation_id``
=========================================  ================================================
"""

from __future__ import annotations

import uuid
from typing import Any

from ..app import Response, json_response
from .models import iso, now

__all__ = ["aad_error", "arm_error", "graph_error", "graph_not_found"]


def arm_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """ARM's error body: azure-core maps 404 and 409 to ResourceNotFound/ExistsError."""
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


def graph_error(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> Response:
    """Microsoft Graph's OData error body (msgraph-sdk raises ODataError from it)."""
    inner = {
        "date": iso(now()),
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }
    error: dict[str, Any] = {"code": code, "message": message, "innerError": inner}
    if details:
        error["details"] = details
    return json_response(status, {"error": error})


def aad_error(status: int, error: str, code: int, description: str) -> Response:
    """Entra ID's token endpoint error (msal and azure-identity read ``error_description``)."""
    trace = str(uuid.uuid4())
    return json_response(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace}",
            "error_codes": [code],
            "timestamp": now().strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
        },
    )


def graph_not_found(object_id: str) -> Response:
    """Graph's answer for an object id it does not know (msgraph-sdk raises ODataError)."""
    return graph_error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried "
        "reference-property objects are not present.",
    )
