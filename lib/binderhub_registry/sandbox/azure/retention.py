r"""ACR Tasks running ``acr purge``, the registry's usage, and the registries' clock.

==============================================  ===========================================
behaviour                                       source
==============================================  ===========================================
``PUT/GET/DELETE .../registries/{name}/tasks/   Tasks_Create / Tasks_Get / Tasks_Delete in
{task}`` (any api-version: az 2.91 and the      azure-rest-api-specs (containerregistry
notebook send ``2025-03-01-preview``): 200      Tasks); azure-cli 2.91 ``acr/task.py`` calls
created or updated, with ``provisioningState    the synchronous ``TasksOperations.create``
Succeeded``, 404 ResourceNotFound, a delete     of azure-mgmt-containerregistrytasks 1.0.0b1
of none 204                                     and prints the Task only on a 200 (its
                                                ``local_fix``): a 201 would print the raw
                                                pipeline response, so Azure answers 200;
                                                delete answers: assumption
task names: 5-50 of ``[A-Za-z0-9_-]``, else     Tasks REST reference (``taskName`` pattern
400 InvalidResourceName                         ``^[A-Za-z0-9-_]*$``, 5-50); body: assumption
a task lives and dies with its registry         ARM child resources (a registry's deletion
                                                removes its tasks)
a timer trigger ``M H * * *`` runs the task     Tasks REST reference (``TimerTrigger``,
each day at H:M UTC of the sandbox's clock;     cron ``schedule``); "Run an ACR task on a
another schedule: once at the end of each       defined schedule" (cron in UTC); other
advance (assumption)                            schedules: assumption
an ``EncodedTask`` step's YAML ``cmd: acr       "Automatically purge images from an Azure
purge ...`` runs acr purge (other commands:     container registry" (the task's YAML);
not run)                                        "ACR Tasks YAML reference" (``cmd`` step)
``--filter '<repo regex>:<tag regex>'``         acr purge docs ("--filter: a repository and
(repeatable): the repository part anchored      a regular expression to filter tag names");
(``^...$``), the tag part searched              Azure/acr-cli ``CollectTagFilters``
(unanchored), split at the last ``:``           (``"^"+repoRegex+"$"``), tag filters matched
                                                with ``MatchString``; Python ``re`` for
                                                .NET-style regexp2: assumption (the same on
                                                the expressions used here)
``--ago <N>d`` (Go duration with ``d``): tags   acr purge docs ("--ago: a Go-style duration
whose last update is older than now - N         ... images last updated before"); ACR keeps
are deleted                                     ``lastUpdateTime`` per tag, not a pull time
``--keep K``: the K most recently updated       acr purge docs ("--keep: number of latest
matching tags stay                              to-be-deleted tags to keep")
``--untagged``: the manifests left untagged     acr purge docs ("--untagged: delete
go too; ``--dry-run``: nothing is deleted       manifests that are not tagged"); ``--dry-
                                                run``: the same page
a tag's last update: its last manifest PUT     the registry front's record (``registry.
that docker-registry stored (201), on the       TagRecords``) of every push, on the
registries' clock                               registries' clock; that a push of the same
                                                digest again updates it: assumption (ACR's
                                                ``lastUpdateTime`` per tag)
deleting a tag: its manifest, by digest, once   assumption: docker-registry 2.8 deletes by
every tag on it is selected (docker-registry    digest only, with every tag on it; ACR
deletes a manifest's tags with it); a digest    untags one tag and ``--untagged`` then
another tag keeps stays, with both tags         deletes the manifest
``GET .../registries/{name}/listUsages``:       Registries_ListUsages in azure-rest-api-
``Size`` (bytes of the stored blobs, each       specs (example RegistryListUsages.json:
counted once) against the SKU's included        Size, Webhooks, Geo-replications); included
storage (Basic 10 GiB, Standard 100 GiB,        storage: ACR service tiers doc page
Premium 500 GiB); ``Webhooks`` (2/10/500)       ("Azure Container Registry service tiers")
on a registry in ABAC mode, a task without an   azure-cli 2.91 ``acr/task.py``
identity deletes nothing (its runs are not      ``acr_task_create``'s warning ("does not
run here)                                       have data plane permissions to the source
                                                registry ... to perform image push, pull,
                                                or delete"); what such a run prints:
                                                assumption (not modelled)
the clock: only the registries' (tag times,     assumption: Entra ID's password expiry and
task schedules) moves                           ARM's timestamps keep the real time
==============================================  ===========================================
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request as UrlRequest
from urllib.request import urlopen

from ..app import Request, Response, json_response
from .errors import arm_error
from .models import Host, Registry, iso

__all__ = ["Retention"]

GIB = 1024**3
#: The storage each SKU includes (ACR service tiers doc page).
INCLUDED = {"Basic": 10 * GIB, "Standard": 100 * GIB, "Premium": 500 * GIB}
#: Webhooks per SKU (the same page).
WEBHOOKS = {"Basic": 2, "Standard": 10, "Premium": 500}
_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_DAILY = re.compile(r"(\d{1,2}) (\d{1,2}) \* \* \*")


@dataclass
class Task:
    """A task as PUT, on the registry object it belongs to."""

    registry: Registry
    name: str
    location: str
    tags: dict[str, str]
    properties: dict[str, Any]
    created: dt.datetime
    identity: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The resource as Tasks_Get answers it."""
        return {
            "id": f"{self.registry.id}/tasks/{self.name}",
            "name": self.name,
            "type": "Microsoft.ContainerRegistry/registries/tasks",
            "location": self.location,
            "tags": self.tags,
            "properties": self.properties
            | {"provisioningState": "Succeeded", "creationDate": iso(self.created)},
        }


@dataclass
class _State:
    """One tenant's registry clock and tasks (a reset: a new one); the tags' last update times
    are each registry front's record (``front.process.times``)."""

    offset: dt.timedelta = dt.timedelta()
    tasks: dict[tuple[str, str], Task] = field(default_factory=dict)


class Retention:
    """The routes and the clock over the cloud's live tenant (see the module's table)."""

    def __init__(self, cloud: Host) -> None:
        self.cloud = cloud
        self._for: object = None
        self._state = _State()

    @property
    def state(self) -> _State:
        """This tenant's state; a reset (a new tenant) starts a new one."""
        if self._for is not self.cloud.tenant:
            self._for, self._state = self.cloud.tenant, _State()
        return self._state

    def now(self) -> dt.datetime:
        """The registries' clock."""
        return dt.datetime.now(dt.UTC) + self.state.offset

    def _registry(self, request: Request) -> Registry | None:
        sub, group = request.params["sub"].lower(), request.params["group"].lower()
        registry = self.cloud.tenant.registries.get(request.params["name"].lower())
        if registry is None or registry.subscription != sub:
            return None
        return registry if registry.resource_group.lower() == group else None

    def _live(self, key: tuple[str, str]) -> Task | None:
        task = self.state.tasks.get(key)
        if task is None or self.cloud.tenant.registries.get(key[0]) is not task.registry:
            self.state.tasks.pop(key, None)  # its registry is gone (or made anew)
            return None
        return task

    # --- ARM --------------------------------------------------------------------------
    def task(self, request: Request) -> Response:
        """Tasks_Create / Tasks_Get / Tasks_Delete."""
        registry = self._registry(request)
        name = request.params["task"]
        if registry is None:
            return arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ContainerRegistry/registries/{request.params['name']}' "
                f"under resource group '{request.params['group']}' was not found. For more "
                "details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        key = (registry.name.lower(), name.lower())
        task = self._live(key)
        if request.method == "GET":
            if task is None:
                return arm_error(
                    404,
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.ContainerRegistry/registries/{registry.name}/tasks/"
                    f"{name}' under resource group '{request.params['group']}' was not found. "
                    "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                )
            return json_response(200, task.public())
        if request.method == "DELETE":
            if task is None:
                return Response(204)
            del self.state.tasks[key]
            return Response(200)
        if request.method != "PUT":
            return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here")
        if not re.fullmatch(r"[A-Za-z0-9_-]{5,50}", name):
            return arm_error(
                400, "InvalidResourceName", f"Resource name {name} is invalid for a task."
            )
        body = request.json() or {}
        properties = {
            k: v for k, v in (body.get("properties") or {}).items() if k != "provisioningState"
        }
        tags = dict(body.get("tags") or {})
        identity = dict(body.get("identity") or {})
        if task is not None:
            task.properties, task.tags, task.identity = properties, tags, identity
            return json_response(200, task.public())
        task = Task(
            registry,
            name,
            str(body.get("location") or registry.location),
            tags,
            properties,
            dt.datetime.now(dt.UTC),
            identity,
        )
        self.state.tasks[key] = task
        return json_response(200, task.public())  # 200, not 201: see the table

    def usages(self, request: Request) -> Response:
        """Registries_ListUsages: Size against the SKU's included storage, and Webhooks."""
        registry = self._registry(request)
        if registry is None:
            return arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ContainerRegistry/registries/{request.params['name']}' "
                f"under resource group '{request.params['group']}' was not found. For more "
                "details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        size = self.cloud.tenant.settings.get("registry_used_bytes") or _stored_bytes(registry)
        return json_response(
            200,
            {
                "value": [
                    {
                        "name": "Size",
                        "limit": INCLUDED.get(registry.sku, INCLUDED["Basic"]),
                        "currentValue": int(size),
                        "unit": "Bytes",
                    },
                    {
                        "name": "Webhooks",
                        "limit": WEBHOOKS.get(registry.sku, 2),
                        "currentValue": 0,
                        "unit": "Count",
                    },
                ]
            },
        )

    # --- the clock ----------------------------------------------------------------------
    def clock_ahead(self, days: float) -> dict[str, Any]:
        """Move the clock, then run each task at each of its scheduled times meanwhile; what
        was deleted, as ``registry/repository:tag``."""
        state = self.state
        start = self.now()
        state.offset += dt.timedelta(days=days)
        end = self.now()
        deleted: list[str] = []
        for key in sorted(state.tasks):
            task = self._live(key)
            if task is None or task.properties.get("status", "Enabled") != "Enabled":
                continue
            command = _purge_command(task.properties)
            if command is None or (
                task.registry.role_assignment_mode == "AbacRepositoryPermissions"
                and not task.identity
            ):
                continue  # nothing to run, or (ABAC) no permission to delete: see the table
            for when in _runs(task.properties, start, end):
                deleted += [f"{task.registry.name}/{d}" for d in purge(task, command, when)]
        return {"now": iso(end), "deleted": deleted}


def _purge_command(properties: dict[str, Any]) -> list[str] | None:
    """The ``acr purge`` arguments of an EncodedTask's YAML ``cmd`` step, if it has one."""
    import base64

    step = properties.get("step") or {}
    if step.get("type") != "EncodedTask":
        return None
    try:
        text = base64.b64decode(str(step.get("encodedTaskContent") or "")).decode()
    except ValueError:
        return None
    found = re.search(r"^\s*-\s*cmd:\s*(.+)$", text, re.MULTILINE)
    words = shlex.split(found.group(1)) if found else []
    return words[2:] if words[:2] == ["acr", "purge"] else None


def _runs(properties: dict[str, Any], start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The task's scheduled times in (start, end]: daily ``M H * * *``; else ``end`` once."""
    times: list[dt.datetime] = []
    timers = (properties.get("trigger") or {}).get("timerTriggers") or []
    for timer in timers:
        if timer.get("status", "Enabled") != "Enabled":
            continue
        daily = _DAILY.fullmatch(str(timer.get("schedule", "")).strip())
        if daily is None:
            times.append(end)
            continue
        minute, hour = int(daily.group(1)), int(daily.group(2))
        when = start.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if when <= start:
            when += dt.timedelta(days=1)
        while when <= end:
            times.append(when)
            when += dt.timedelta(days=1)
    return sorted(set(times))


def _duration(text: str) -> dt.timedelta:
    """A Go-style duration with days (``30d``, ``1d12h``)."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    total = dt.timedelta()
    for amount, unit in _DURATION.findall(text):
        total += dt.timedelta(**{units[unit]: float(amount)})
    return total


def purge(task: Task, args: list[str], when: dt.datetime) -> list[str]:
    """One ``acr purge`` run at ``when``: what it deleted (``repository:tag``)."""
    filters: list[tuple[str, str]] = []
    ago, keep, dry = dt.timedelta(), 0, False
    i = 0
    while i < len(args):
        arg, value = args[i], args[i + 1] if i + 1 < len(args) else ""
        if arg == "--filter":
            repo, _, tag = value.rpartition(":")
            filters.append((repo, tag))
            i += 1
        elif arg == "--ago":
            ago = _duration(value)
            i += 1
        elif arg == "--keep":
            keep = int(value)
            i += 1
        elif arg == "--dry-run":
            dry = True
        i += 1
    front = task.registry.front
    if front is None or not filters:
        return []
    process = front.process
    if not process.is_ready:  # never used: nothing was pushed to it
        return []
    records = process.times.all()
    selected: dict[str, list[str]] = {}
    for repository, tags in process.repositories().items():
        patterns = [t for r, t in filters if re.fullmatch(r, repository)]
        if not patterns:
            continue
        tag_filter = re.compile("|".join(patterns))
        old = []
        for tag in tags:
            found = records.get((repository, tag))
            if found is None:  # no push through the front (none in a sandbox that starts empty)
                continue
            updated = dt.datetime.fromtimestamp(found.pushed, dt.UTC)
            if tag_filter.search(tag) and updated < when - ago:
                old.append((updated, tag))
        old.sort(reverse=True)  # the most recently updated first: --keep keeps those
        if old[keep:]:
            selected[repository] = [tag for _, tag in old[keep:]]
    deleted: list[str] = []
    for repository, tags in sorted(selected.items()):
        by_digest: dict[str, list[str]] = {}
        for tag in process.tags(repository):
            by_digest.setdefault(_digest(process, repository, tag)[0], []).append(tag)
        for digest, on_it in by_digest.items():
            if not digest or not set(on_it) <= set(tags):
                continue  # another tag keeps it (see the table)
            if not dry and process.delete_manifest(repository, digest):  # its tags too
                deleted += [f"{repository}:{tag}" for tag in sorted(on_it)]
    return deleted


# --- the registry process, as the sandbox's own admin -----------------------------------------
def _call(process: Any, method: str, path: str, repository: str, actions: list[str]) -> Any:
    """``method path`` on docker-registry with the sandbox's own token for ``repository``."""
    process.ready()
    token = process.issuer.issue(
        process.service,
        "sandbox-admin",
        [{"type": "repository", "name": repository, "actions": actions}],
    )
    request = UrlRequest(
        process.url + path,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Accept": _ACCEPT},
    )
    context = ssl.create_default_context(cafile=str(process.material.ca_file))
    try:
        return urlopen(request, timeout=5, context=context)
    except HTTPError as e:
        return e


def _digest(process: Any, repository: str, tag: str) -> tuple[str, dict[str, int]]:
    """The manifest digest under ``tag`` and its blobs' sizes by digest (none: unknown)."""
    with _call(process, "GET", f"/v2/{repository}/manifests/{tag}", repository, ["pull"]) as r:
        if r.status != 200:
            return "", {}
        body = json.loads(r.read() or b"{}")
        digest = r.headers.get("Docker-Content-Digest", "")
    blobs = [body.get("config") or {}, *(body.get("layers") or [])]
    return digest, {str(b.get("digest")): int(b.get("size") or 0) for b in blobs}


def _stored_bytes(registry: Registry) -> int:
    """The bytes of the blobs the registry's manifests reference, each counted once."""
    if registry.front is None:
        return 0
    process = registry.front.process
    blobs: dict[str, int] = {}
    for repository, tags in process.repositories().items():
        for tag in tags:
            blobs.update(_digest(process, repository, tag)[1])
    return sum(blobs.values())
