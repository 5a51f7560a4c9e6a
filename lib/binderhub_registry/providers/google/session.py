"""The signed-in session the guide's steps use, the record's retiring list, and operation polls."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ...errors import CloudError
from ...steps import progress
from ..contract import Connection
from .errors import _mapped
from .params import MARK, METADATA_URL, NAME, Params
from .settling import _Settling


@dataclass
class GoogleSession(Connection):
    """A signed-in Google Cloud session: Service Usage, Artifact Registry and IAM clients, and
    the names of what the steps make. :class:`~.connection.GoogleConnection` adds the shared
    steps; the guide's steps need only this."""

    retiring = "retiring_keys"

    params: Params
    credentials: Any
    usage: Any  # Service Usage v1 (google-api-python-client Resource)
    registry: Any  # Artifact Registry v1 projects.locations (google-api-python-client Resource)
    iam: Any  # IAMClient (gRPC)
    poll: float  # seconds between operation polls
    api_enabled: bool = True  # False in a dry run that would enable the API: nothing to look up
    iam_enabled: bool = True  # False in a dry run that would enable IAM: no account to read
    host: str = ""  # the registry host, once the repository is known
    metadata_url: str = METADATA_URL  # keyless: the metadata server BinderHub's pod asks
    bound: bool = False  # keyless: BinderHub's Kubernetes service account may act as ours
    legacy: bool = False  # the record predates marks (see :func:`_legacy`)
    settling: _Settling = field(default_factory=lambda: _Settling(set(), 0.0, 0.0))
    projects: Any = None  # Artifact Registry v1 projects (project settings: gcr.io redirection)

    def _image_prefix(self) -> str:
        p = self.params
        path = (
            f"{p.project_id}/{p.prefix}"
            if p.gcr_domain
            else f"{p.project_id}/{p.repository}/{p.prefix}"
        )
        return f"{self.host}/{path}"

    # --- names -----------------------------------------------------------------------------
    @property
    def account_name(self) -> str:
        """The service account's resource name."""
        return f"projects/{self.params.project_id}/serviceAccounts/{self.params.email}"

    @property
    def pull_account_name(self) -> str:
        """User pods' service account's resource name."""
        return f"projects/{self.params.project_id}/serviceAccounts/{self.params.pull_email}"

    @property
    def repository_name(self) -> str:
        """The repository's resource name."""
        p = self.params
        return f"projects/{p.project_id}/locations/{p.location}/repositories/{p.repository_id}"


# --- ours only: marks ----------------------------------------------------------------------
def _mark(conn: GoogleSession) -> str:
    return f"{MARK} {conn.record.deployment}"


def _not_ours(what: str, recorded: object, live: object) -> CloudError:
    """The one line a mismatch stops with: nothing further is deleted."""
    return CloudError(
        f"{NAME}: {what} is not this deployment's, so nothing further is deleted: recorded "
        f"{recorded}; live {live}"
    )


# --- replaced credentials (rotation, auth switch) ------------------------------------------
#: A ``retiring_keys`` entry that is not a key id: ``{BOUND: member}``, the Workload Identity
#: member this notebook bound, removed once a key verified (metadata -> key).
BOUND = "workload_identity"
#: record kind: what a real keyless run kept, unverified, and said so; a later run (after the
#: user checked from BinderHub's pod) may remove exactly these.
UNCHECKED = "kept_unverified"


def _retiring(conn: GoogleSession) -> list[Any]:
    return list(conn.record.created.get(conn.retiring, []))


def _retire_later(conn: GoogleSession, entries: list[Any], kind: str) -> None:
    """Move what ``kind`` records into the retiring list: ``finish_rotation`` removes it.

    The list is saved first: a crash before ``kind`` is forgotten leaves it in both, and the
    rerun's move adds nothing twice; never the other way round (forgotten, not retiring: leaked).
    A dry run moves it in memory only (``Connection.note``), so ``finish_rotation`` can say
    what the real run would do.
    """
    conn.retire_later(*entries)
    conn.note(kind, None)


def _keep(conn: GoogleSession, entry: Any, kind: str, value: Any) -> None:
    """Take ``entry`` back out of the retiring list and record it as ``kind`` again: it is in
    use once more (a switch back before ``finish_rotation`` removed it). Recorded first, so a
    crash in between leaves it recorded, never forgotten."""
    conn.note(kind, value)
    conn.unretire(entry)


#: ``retiring_keys`` entries of user pods' side: ``{PULL_KEY: key id}``, a key of the pull
#: account a rotation or a switch of ``pull_access`` replaced; ``{PULL_NODE: member}``, the
#: nodes' service account whose reader binding a switch away from "node" replaced.
PULL_KEY = "pull_key"
PULL_NODE = "pull_node"


def _retiring_keys(retiring: list[Any]) -> list[str]:
    return [str(e) for e in retiring if not isinstance(e, dict)]


def _retiring_of(retiring: list[Any], kind: str) -> list[str]:
    return [str(e[kind]) for e in retiring if isinstance(e, dict) and kind in e]


def _retiring_members(retiring: list[Any]) -> list[str]:
    return [str(e[BOUND]) for e in retiring if isinstance(e, dict) and BOUND in e]


def _wait(conn: GoogleSession, api: Any, operation: dict[str, Any], what: str) -> Any:
    """Poll a long-running operation (``api.operations().get``) until done, with progress.

    An operation answered ``done`` at once (Service Usage's ``noop.DONE_OPERATION``) is not
    polled; a failed one raises its ``error``.
    """
    started = time.monotonic()
    while not operation.get("done"):
        progress(f"{what}: waiting ({time.monotonic() - started:.0f}s)")
        time.sleep(conn.poll)
        with _mapped():
            operation = api.operations().get(name=operation["name"]).execute()
    if "error" in operation:
        error = operation["error"]
        raise CloudError(f"{NAME}: {what} failed: {error.get('message', error)}")
    return operation.get("response")
