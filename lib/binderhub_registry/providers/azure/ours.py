"""This deployment's marks on what it makes in Azure, read back: which application or service
principal carries whose mark, and the one line a mismatch stops teardown with (see :data:`MARK
<.params.MARK>` for where each mark is written)."""

from __future__ import annotations

import re
from typing import Any

from ...errors import CloudError
from .graph_sdk import GraphObject
from .params import MARK, Identity


def mark_of(obj: GraphObject) -> str | None:
    """The ``binderhub-registry <id>`` an application or service principal carries (its
    ``notes``, else a tag), or None: made before marks, or not by this project."""
    for value in (obj.notes, *(obj.tags or [])):
        if value and re.fullmatch(rf"{MARK} [0-9a-f]{{8}}", value):
            return value
    return None


def live_app(app: GraphObject) -> str:
    """A live application, in words, for :func:`not_ours`'s line."""
    return (
        f"application {app.display_name!r} (id {app.id}, appId {app.app_id}, created "
        f"{app.created}, {mark_of(app) or 'no ' + MARK + ' mark'})"
    )


def app_record(app: GraphObject, who: Identity) -> dict[str, Any]:
    """What is recorded of an application: its ids, name and creation time (Graph's)."""
    return {
        "id": app.id,
        "app_id": app.app_id,
        "display_name": who.name,
        "created": app.created,
    }


def not_ours(what: str, recorded: object, live: object) -> CloudError:
    """The one line a mismatch stops with: nothing (further) is deleted."""
    return CloudError(
        f"Azure: {what} is not this deployment's, so nothing is deleted: recorded {recorded}; "
        f"live {live}"
    )


def app_problem(mark: str, who: Identity, recorded: dict[str, Any], app: Any) -> str:
    """Why the live application is not the recorded one of this deployment ("" when it is).

    Its id, appId and display name must be the recorded ones and ``who.name``; its mark
    ``mark``, this deployment's; its createdDateTime the recorded one when recorded. A record
    from before marks (no creation time recorded) accepts an application with no mark at all
    whose ids and name match: a rerun marks it (``steps._mark_legacy_application``).
    """
    found = mark_of(app)
    same = (
        app.id == recorded.get("id")
        and app.app_id == recorded.get("app_id")
        and app.display_name == recorded.get("display_name") == who.name
    )
    if not same:
        return "another application"
    if found is None and not recorded.get("created"):
        return ""  # a record from before marks: the ids and the name are what it proves
    if found != mark:
        return "another deployment's mark" if found else "no mark"
    if recorded.get("created") and app.created != recorded["created"]:
        return "another creation time"
    return ""
