"""Enabling the APIs the notebook calls (Service Usage)."""

from __future__ import annotations

from ...steps import Result
from ..contract import creates
from .errors import _mapped
from .params import IAM_SERVICE, SERVICE, SERVICES, Params
from .session import GoogleSession, _wait


@creates
def enable_api(conn: GoogleSession) -> Result[None]:
    """Enable every API the notebook calls that a new project has off (:data:`SERVICES`:
    Artifact Registry and IAM) through Service Usage, each a no-op when it is on.

    A new project has only Google's default services on (cloud.google.com/service-usage/docs/
    enabled-service), and IAM is not among them. What this run enables is recorded, never
    disabled (see :meth:`~.connection.GoogleConnection.teardown`). Google may answer 403
    SERVICE_DISABLED for a few minutes after an enable: the calls that follow wait it out
    (:class:`~.settling._Settling`).
    """
    p = conn.params
    found, off = [], []
    for service in SERVICES:
        with _mapped():
            answer = conn.usage.services().get(name=_service_name(p, service)).execute()
        # Service Usage names the project by number: the consumer its 403s name
        number = str(answer.get("parent", "")).partition("/")[2]
        if number:
            conn.settling.consumers.add(f"projects/{number}")
        if answer.get("state") == "ENABLED":
            conn.settling.enabled.add(service)
            found.append(service)
        else:
            off.append(service)
    on = f"; {', '.join(found)} {'was' if len(found) == 1 else 'were'} on" if found else ""
    if not off:
        return Result(None, "reused", f"{' and '.join(found)} are enabled")
    # what later steps of a dry run may read: nothing behind an API that is still off
    conn.api_enabled, conn.iam_enabled = SERVICE not in off, IAM_SERVICE not in off
    conn.plan(f"enable {', '.join(off)}{on}")
    for service in off:
        with _mapped():
            operation = conn.usage.services().enable(name=_service_name(p, service), body={})
            operation = operation.execute()
        recorded = conn.record.created.get("api")
        apis = [recorded] if isinstance(recorded, str) else list(recorded or [])
        conn.note("api", [*apis, service] if service not in apis else apis)
        _wait(conn, conn.usage, operation, f"enabling {service}")
        conn.settling.enabled.add(service)
    conn.api_enabled = conn.iam_enabled = True
    return Result(None, "created", f"enabled {', '.join(off)}{on}")


def _service_name(p: Params, service: str) -> str:
    return f"projects/{p.project_id}/services/{service}"
