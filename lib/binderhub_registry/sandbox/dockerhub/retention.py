"""Docker Hub's tag records: when each tag was last pushed and pulled, the Hub API routes that
list repositories and tags and delete a tag, and the sandbox clock.

Docker Hub has no retention policy and no API to set one: what keeps a namespace small is a
client that reads each tag's ``tag_last_pulled`` / ``tag_last_pushed`` and deletes tags
(``binderhub-registry prune``). The sources (the package's table repeats them):

==========================================  ==============================================
behaviour                                   source
==========================================  ==============================================
``GET /v2/namespaces/{ns}/repositories/     spec (the ``repositories`` tag: List
{repo}/tags``: ``count``, ``next``,         repository tags, ``page``, ``page_size``
``previous``, ``results`` (page_size        "Defaults to 10. Max of 100"; responses
default 10, at most 100); each tag with     list_tags, the ``tag`` schema);
``name``, ``tag_last_pulled`` (null when    docker/hub-tool pkg/hub/tags.go (the fields
never pulled), ``tag_last_pushed``,         ``tag_last_pulled``, ``tag_last_pushed``,
``last_updated``, ``tag_status``,           ``tag_status``); the spec's example image
``digest``, ``full_size``                   ``"last_pulled": null``
a pull is a manifest GET by tag the         docker/docs docker-hub/usage/pulls.md ("a pull
registry answered (200; a HEAD is not); a   is a manifest GET", HEAD not counted). The
push is a manifest PUT it stored (201)      record is the registry front's, as for every
                                            fake (``registry.TagRecords``). That a pull by
                                            digest updates no tag's record: assumption
``GET /v2/namespaces/{ns}/repositories``    docs.docker.com/reference/api/hub/latest/
(List repositories; prune's) and the        operations/listNamespaceRepositories (an OAT
deprecated ``GET /v2/repositories/{ns}/``:  without ``scope-repository-list`` sees public
the namespace's repositories, paginated     ones only, silently); the Hub API changelog
(``name``, ``namespace``, ``is_private``,   2025-06-27 (the legacy route deprecated);
``last_updated``); a caller outside the     docker/hub-tool pkg/hub/repositories.go (the
namespace sees its public ones only, an     fields); the legacy route's OAT refusal:
OAT private ones only with Repository       docker/docs access-tokens/reference.md
List; the legacy route refuses every OAT    ("Unsupported legacy endpoints"). The
(:data:`OAT_LEGACY_REFUSED`)                visibility rule otherwise: assumption
``DELETE /v2/repositories/{ns}/{repo}/      docker/hub-tool pkg/hub/tags.go (DeleteTagURL,
tags/{tag}/``: 204; the tag goes, other     RemoveTag). The 204, the 403 for a role
tags of the same image stay; a plain        without delete (a member) and the 404's
member: 403; unknown: 404                   wording: assumption; editors delete
                                            (core-roles.md: "Manage tags")
a session whose token may not delete (a     a captured answer: fletchto99/nicotine-plus-
``repo:write`` PAT, an OAT without Image    docker pull request 80 (a Read/Write token's
Delete): 403 ``{"message": "access          tag delete, a real run; a Read, Write, Delete
denied: insufficient scope", "errinfo":     token deletes); docker/docs access-tokens/
{}}`` (:data:`INSUFFICIENT_SCOPE`)          reference.md (only Read, Write, Delete
                                            deletes); the body's other keys: assumption
an OAT on the tag delete: 403, as the       access-tokens/reference.md ("Organization
legacy listing (OATs use namespace-scoped   access tokens only work with the namespace-
routes)                                     scoped routes"); this route among them:
                                            assumption (the page names three GETs)
the clock: ``POST /_sandbox/clock``         a sandbox knob (no Hub counterpart): moving
{"advance_days": N} makes every recorded    the clock ahead is the same as every event so
push and pull N days older; Hub deletes     far having happened N days earlier; Docker Hub
nothing by itself                           runs no cleanup (no retention API: issue 22)
==========================================  ==============================================

docker-registry 2.8 deletes manifests by digest only, which takes every tag of that image:
:func:`delete_tag` puts the manifest back under the image's other tags, so the registry
ends as Hub's tag delete leaves it.
"""

from __future__ import annotations

import ssl
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import Request as UrlRequest
from urllib.request import urlopen

from ..app import Request, Response, json_response
from .models import REPOSITORY_LIST, ROLE_ACTIONS, Hub, Session

if TYPE_CHECKING:
    from ..registry import RegistryProcess, TagRecords


class DockerHub(Protocol):
    """What these routes use of the backend (``cloud.DockerHub``), named here so this module
    does not import the one that mounts it."""

    hub: Hub
    front: Any  # its registry front (``front.process``: the docker-registry child)
    prefix: str

    def session(self, request: Request, *, manage: bool = True) -> Session | Response:
        """The caller's live session, or the refusal to answer."""
        ...


__all__ = [
    "DAY",
    "INSUFFICIENT_SCOPE",
    "OAT_LEGACY_REFUSED",
    "advance",
    "delete_tag",
    "hub_time",
    "routes",
]

DAY = 86400.0
#: Hub's answer (403) to a tag delete by a session whose token may not delete (a ``repo:write``
#: token: Read & Write), captured in a real run: fletchto99/nicotine-plus-docker pull request 80
#: ("Docker Hub returns `access denied: insufficient scope`" to a Read/Write token's DELETE of
#: ``/v2/repositories/{ns}/{repo}/tags/{tag}/``; a Read, Write, Delete token deletes). The
#: ``{"message", "errinfo"}`` shape is Hub's current error body (docker/hub-feedback#2438).
INSUFFICIENT_SCOPE = {"message": "access denied: insufficient scope", "errinfo": {}}
#: Hub's answer to an organization access token on a legacy route (``GET /v2/repositories/
#: {namespace}``): docker/docs access-tokens/reference.md, "Unsupported legacy endpoints" (403
#: "token issued from organization access token is not allowed", whatever its scopes).
OAT_LEGACY_REFUSED = {
    "message": "token issued from organization access token is not allowed",
    "errinfo": {},
}
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def hub_time(at: float | None) -> str | None:
    """A Unix time as Hub writes it (microseconds and Z), None as null."""
    if at is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e6):06d}Z"


def advance(records: TagRecords, days: float) -> None:
    """The clock ``days`` ahead: every recorded push and pull that much older (clients such as
    ``prune`` compare Hub's times with their own clock, so the records move, not Hub's now)."""
    records.age(days * DAY)


# --- docker-registry as the sandbox's own client -----------------------------------------
def _call(
    process: RegistryProcess,
    method: str,
    repository: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    process.ready()
    access = [{"type": "repository", "name": repository, "actions": ["pull", "push", "delete"]}]
    token = process.issuer.issue(process.service, "sandbox-admin", access)
    request = UrlRequest(
        f"{process.url}/v2/{repository}/{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}"} | (headers or {}),
    )
    context = ssl.create_default_context(cafile=str(process.material.ca_file))
    try:
        with urlopen(request, timeout=10, context=context) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except HTTPError as e:
        return e.code, {}, b""


def _manifest(process: RegistryProcess, repository: str, reference: str) -> tuple[str, str, bytes]:
    """(digest, media type, body) of ``repository:reference``; digest "" when absent."""
    status, headers, body = _call(
        process,
        "GET",
        repository,
        f"manifests/{reference}",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )
    if status != 200:
        return "", "", b""
    return headers.get("docker-content-digest", ""), headers.get("content-type", ""), body


def delete_tag(process: RegistryProcess, repository: str, tag: str) -> bool:
    """Delete ``repository:tag`` only (False: no such tag): delete its manifest by digest, then
    put it back under the image's other tags (docker-registry 2.8 deletes by digest)."""
    digest, media_type, body = _manifest(process, repository, tag)
    if not digest:
        return False
    siblings = [
        t
        for t in process.tags(repository)
        if t != tag and _manifest(process, repository, t)[0] == digest
    ]
    status, _, _ = _call(process, "DELETE", repository, f"manifests/{digest}")
    if status not in (200, 202):
        raise RuntimeError(f"docker-registry answered {status} to deleting {repository}:{tag}")
    for other in siblings:
        _call(
            process,
            "PUT",
            repository,
            f"manifests/{quote(other)}",
            headers={"Content-Type": media_type},
            data=body,
        )
    return True


# --- the Hub API routes ------------------------------------------------------------------
class _NoRecord:
    """A tag's times where the front has no record: null, as Hub writes a missing time."""

    pushed: float | None = None
    pulled: float | None = None


_NO_RECORD = _NoRecord()


def _error(status: int, message: str) -> Response:
    return json_response(status, {"message": message, "errinfo": {}})


def _page(request: Request, results: list[dict[str, Any]], path: str) -> Response:
    page = max(int(request.arg("page", "1") or 1), 1)
    size = min(max(int(request.arg("page_size", "10") or 10), 1), 100)
    chunk = results[(page - 1) * size : page * size]
    more = page * size < len(results)
    return json_response(
        200,
        {
            "count": len(results),
            "next": f"{path}?page={page + 1}&page_size={size}" if more else None,
            "previous": f"{path}?page={page - 1}&page_size={size}" if page > 1 else None,
            "results": chunk,
        },
    )


def _member(hub: DockerHub, found: Session, namespace: str) -> set[str]:
    """What the session's user may do in ``namespace``: its own, or its organization role's."""
    if found.user == namespace:
        return {"pull", "push", "delete"}
    org = hub.hub.orgs.get(namespace)
    role = org.roles.get(found.user) if org else None
    return set(ROLE_ACTIONS.get(role or "", set()))


class _Routes:
    """The handlers, bound to the backend."""

    def __init__(self, hub: DockerHub) -> None:
        self.hub = hub

    def _session(self, request: Request) -> Session | Response:
        return self.hub.session(request, manage=False)

    def _process(self) -> RegistryProcess:
        assert self.hub.front is not None
        process: RegistryProcess = self.hub.front.process
        return process

    def list_repositories(self, request: Request) -> Response:
        """``GET /v2/namespaces/{namespace}/repositories`` (List repositories)."""
        namespace = request.params["namespace"]
        return self._repositories(request, f"/v2/namespaces/{namespace}/repositories")

    def list_repositories_legacy(self, request: Request) -> Response:
        """``GET /v2/repositories/{namespace}/``: deprecated, refuses every OAT."""
        return self._repositories(request, f"/v2/repositories/{request.params['namespace']}/")

    def _repositories(self, request: Request, path: str) -> Response:
        found = self._session(request)
        if isinstance(found, Response):
            return found
        legacy = path.startswith("/v2/repositories/")
        if found.kind == "oat" and legacy:  # a legacy route: refuses every OAT
            return json_response(403, OAT_LEGACY_REFUSED)
        namespace = request.params["namespace"]
        if found.kind == "oat":  # private ones only with Repository List, silently
            member = found.user == namespace and REPOSITORY_LIST in found.actions
        else:
            member = bool(_member(self.hub, found, namespace))
        records = self._process().times.all()
        results = []
        for name in sorted(self._process().repositories()):
            owner, _, short = name.partition("/")
            private = self.hub.hub.privacy.get(name) == "private"
            if owner != namespace or (private and not member):
                continue
            pushed = [t.pushed for (r, _), t in records.items() if r == name]
            results.append(
                {
                    "name": short,
                    "namespace": namespace,
                    "repository_type": "image",
                    "is_private": private,
                    "last_updated": hub_time(max(pushed, default=None)),
                }
            )
        return _page(request, results, self.hub.prefix + path)

    def list_tags(self, request: Request) -> Response:
        """``GET /v2/namespaces/{namespace}/repositories/{repository}/tags``."""
        found = self._session(request)
        if isinstance(found, Response):
            return found
        name = f"{request.params['namespace']}/{request.params['repository']}"
        tags = self._process().tags(name)
        private = self.hub.hub.privacy.get(name) == "private"
        if not tags or (private and not _member(self.hub, found, request.params["namespace"])):
            return _error(404, "object not found")
        results = []
        for tag in sorted(tags):
            # the front's record (a tag without one, none in a sandbox that starts empty: null)
            times = self._process().times.get(name, tag) or _NO_RECORD
            results.append(
                {
                    "name": tag,
                    "tag_status": "active",
                    "tag_last_pulled": hub_time(times.pulled),
                    "tag_last_pushed": hub_time(times.pushed),
                    "last_updated": hub_time(times.pushed),
                    "v2": True,
                    "content_type": "image",
                }
            )
        return _page(
            request,
            results,
            f"{self.hub.prefix}/v2/namespaces/{request.params['namespace']}/repositories/"
            f"{request.params['repository']}/tags",
        )

    def delete_tag(self, request: Request) -> Response:
        """``DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/``."""
        found = self._session(request)
        if isinstance(found, Response):
            return found
        namespace = request.params["namespace"]
        name = f"{namespace}/{request.params['repository']}"
        allowed = (
            found.actions
            if found.kind == "oat"
            else found.actions & _member(self.hub, found, namespace)
        )
        if found.kind == "oat":  # a legacy route: OATs work with namespace-scoped ones only
            return json_response(403, OAT_LEGACY_REFUSED)
        if "delete" not in found.actions:  # the token's scope: repo:write, Image Push
            return json_response(403, INSUFFICIENT_SCOPE)
        if "delete" not in allowed:  # the account's role in the organization (a member)
            return json_response(
                403, {"detail": "You do not have permission to perform this action."}
            )
        tag = request.params["tag"]
        if not delete_tag(self._process(), name, tag):
            return _error(404, "tag not found")
        self._process().times.forget(name, tag=tag)
        return Response(204)


def routes(hub: DockerHub) -> list[tuple[str, str, Any]]:
    """The route table rows the backend adds (see :meth:`DockerHub.__init__`)."""
    handlers = _Routes(hub)
    return [
        ("GET", "/v2/namespaces/{namespace}/repositories", handlers.list_repositories),
        ("GET", "/v2/repositories/{namespace}", handlers.list_repositories_legacy),
        ("GET", "/v2/namespaces/{namespace}/repositories/{repository}/tags", handlers.list_tags),
        ("DELETE", "/v2/repositories/{namespace}/{repository}/tags/{tag}", handlers.delete_tag),
    ]
