"""The Docker-format repository: location checked, made with this deployment's label, gcr.io
redirection read."""

from __future__ import annotations

from typing import Any

from ...errors import CloudError, InvalidParameter
from ...steps import Result
from ..contract import creates
from .errors import _if_present, _mapped
from .params import GCR_HOSTS, MARK, NAME, Params
from .session import GoogleSession, _mark, _wait

#: The repository's description before its label (records from before marks).
REPOSITORY_TEXT = "Images built by BinderHub"


def _check_location(conn: GoogleSession) -> None:
    """``location`` must be one of Artifact Registry's (``locations.list``), checked before
    the repository is looked up or made; a real location is never guessed from a list here."""
    p = conn.params
    with _mapped():
        answer = conn.registry.list(name=f"projects/{p.project_id}").execute()
    locations = sorted(str(loc.get("locationId", "")) for loc in answer.get("locations", []))
    if locations and p.location not in locations:
        near = [loc for loc in locations if loc.split("-")[0] == p.location.split("-")[0]]
        raise InvalidParameter(
            "location",
            "must be one of Artifact Registry's locations (gcloud artifacts locations list)"
            + (f", e.g. {', '.join(near[:6])}" if near else ""),
            p.location,
        )


def _find_repository(conn: GoogleSession) -> Any | None:
    """The repository as Artifact Registry describes it, or None when there is none."""
    return _if_present(conn.registry.repositories().get(name=conn.repository_name).execute)


def _google_host(p: Params) -> str:
    """The repository's host on Google: ``<location>-docker.pkg.dev``, or its gcr.io host."""
    return GCR_HOSTS[p.location] if p.gcr_domain else f"{p.location}-docker.pkg.dev"


def _host_of(conn: GoogleSession, repo: Any) -> str:
    p = conn.params
    if repo is not None and repo.get("registryUri") and p.sandbox:
        return str(repo["registryUri"]).split("/", 1)[0]  # the sandbox front stands in
    return _google_host(p)


@creates
def ensure_repository(conn: GoogleSession) -> Result[str | None]:
    """Create or reuse the Docker-format repository; its host is where images go.

    A new repository carries this deployment's mark: the label ``binderhub-registry: <id>``
    (and the id in its description), which teardown checks before deleting it.
    """
    p = conn.params
    if conn.api_enabled:
        _check_location(conn)
    gcr = _gcr_redirection(conn) if p.gcr_domain else ""
    repo = _find_repository(conn) if conn.api_enabled else None
    if repo is not None:
        if repo.get("format") != "DOCKER":
            raise CloudError(f"repository {p.repository_id} exists but is not Docker-format")
        conn.host = _host_of(conn, repo)
        marked = _marked_repository(conn, repo)
        return Result(conn.host, "reused", f"repository {conn.repository_name}{marked}{gcr}")
    # with the API still off (a dry run that plans to enable it), the real run checks first
    unchecked = "" if conn.api_enabled else f" (location {p.location} checked once enabled)"
    wanted = {
        "format": "DOCKER",
        "description": f"{REPOSITORY_TEXT} ({_mark(conn)})",
        "labels": {MARK: conn.record.deployment},
    }

    def make() -> Any:
        """Create it; ALREADY_EXISTS is an earlier attempt whose answer was lost, or another's
        (then found, but not recorded: never deleted)."""
        try:
            with _mapped():
                operation = (
                    conn.registry.repositories()
                    .create(parent=parent, repositoryId=p.repository_id, body=wanted)
                    .execute()
                )
        except CloudError as e:
            if e.status != 409:
                conn.note("repository", None)
                raise
        else:
            _wait(conn, conn.registry, operation, "creating the repository")
        return _find_repository(conn)

    parent = f"projects/{p.project_id}/locations/{p.location}"
    repo = conn.create(
        "repository",
        f"create Docker repository {conn.repository_name}{unchecked}{gcr}",
        make,
        pending=conn.repository_name,  # first: a lost answer leaves it ours
        keep=lambda made: conn.repository_name if _labelled_ours(conn, made) else None,
    )
    conn.host = _host_of(conn, repo)
    return Result(conn.host, "created", f"Docker repository {conn.repository_name}{gcr}")


def _labelled_ours(conn: GoogleSession, repo: dict[str, Any] | None) -> bool:
    """The repository carries this deployment's label."""
    return repo is not None and (repo.get("labels") or {}).get(MARK) == conn.record.deployment


#: legacyRedirectionState values under which gcr.io host names reach Artifact Registry
#: (artifactregistry v1 ProjectSettings; the copying ones copy only while Container Registry
#: still serves, which it stopped doing on 2025-03-18).
REDIRECTED = (
    "REDIRECTION_FROM_GCR_IO_ENABLED",
    "REDIRECTION_FROM_GCR_IO_FINALIZED",
    "REDIRECTION_FROM_GCR_IO_ENABLED_AND_COPYING",
)
#: What becomes of images Container Registry held (setup-gcr-repo: copying is separate).
_NOT_COPIED = (
    "images Container Registry held are not copied into this repository, so BinderHub finds "
    "none of them and rebuilds each repository on its next launch"
)


def _gcr_redirection(conn: GoogleSession) -> str:
    """``gcr_domain``: gcr.io names reach this repository only with the project's redirection
    on (``projects.getProjectSettings``, ``legacyRedirectionState``). Words for the step when
    it is on; off, one line saying how to turn it on (not done here: it moves all of the
    project's gcr.io traffic to Artifact Registry, not just BinderHub's): a dry run plans to
    stop there."""
    p = conn.params
    if not conn.api_enabled:  # a dry run before the API is on: nothing to read
        return f"; gcr.io redirection not read yet (the API is off); {_NOT_COPIED}"
    with _mapped():
        settings = conn.projects.getProjectSettings(
            name=f"projects/{p.project_id}/projectSettings"
        ).execute()
    state = str(settings.get("legacyRedirectionState") or "REDIRECTION_STATE_UNSPECIFIED")
    host = GCR_HOSTS[p.location]
    if state in REDIRECTED:
        on = f"gcr.io redirection is on ({state}): {host}/{p.project_id}/... reaches it"
        return f"; {on}; {_NOT_COPIED}"
    off = (
        f"gcr_domain: redirection from gcr.io is off in project {p.project_id} ({state}), so "
        f"{host}/{p.project_id}/... names would not reach this repository: turn it on with "
        f"`gcloud artifacts settings enable-upgrade-redirection --project={p.project_id}` "
        "(it sends all of the project's gcr.io traffic to Artifact Registry), then rerun; "
        f"{_NOT_COPIED}"
    )
    conn.plan(f"stop: {off}")
    raise CloudError(f"{NAME}: {off}")


def _marked_repository(conn: GoogleSession, repo: dict[str, Any]) -> str:
    """A found repository: record it when it carries our label (made, then a crash before
    the record); label one a record from before marks lists with its old description
    (``repositories.patch``, ``updateMask=labels``). Words for the step, or ""."""
    labels = dict(repo.get("labels") or {})
    if labels.get(MARK) == conn.record.deployment:
        if conn.record.created.get("repository") != conn.repository_name:
            conn.note("repository", conn.repository_name)
        return ""
    recorded = conn.record.created.get("repository") == conn.repository_name
    if not recorded or not _repository_is_ours(conn, repo):
        return ""
    conn.plan(f"label repository {conn.repository_name} {MARK}: {conn.record.deployment}")
    body = {"labels": labels | {MARK: conn.record.deployment}}
    with _mapped():
        conn.registry.repositories().patch(
            name=conn.repository_name, updateMask="labels", body=body
        ).execute()
    return f"; labelled {MARK}: {conn.record.deployment} (made before marks)"


def _repository_is_ours(conn: GoogleSession, repo: dict[str, Any]) -> bool:
    """Its label names this deployment; or, for a record from before marks, it has no such
    label and the exact description this notebook gave it then."""
    label = (repo.get("labels") or {}).get(MARK)
    if label is not None:
        return bool(label == conn.record.deployment)
    return conn.legacy and repo.get("description") == REPOSITORY_TEXT
