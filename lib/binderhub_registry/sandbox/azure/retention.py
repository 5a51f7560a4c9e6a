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
purge ...`` runs acr purge (other commands:     container registry" (learn.microsoft.com,
not run)                                        2026-02-26; "the purge page" below: the
                                                task's YAML); "ACR Tasks YAML reference"
                                                (``cmd`` step)
``--filter '<repo regex>:<tag regex>'``         Azure/acr-cli (cfbb835, 2026-03-12)
(repeatable, ``-f``): split at its one ``:``    ``cmd/repository/image_functions.go``
outside ``(?flags:``, ``[:``, ``[^:`` and       ``GetRepositoryAndTagRegex`` and its cases
before ``]``; none, two or more (so a           in ``cmd/acr/purge_test.go`` ("unable to
``host:port`` in the repository part), or an    correctly parse filter flag"); not at the
empty side: refused                             last ``:``
the repository part matched as ``^<regex>$``    ``CollectTagFilters``
against the catalog (so ``a|b`` anchors only    (``"^"+repoRegex+"$"``),
its ends); several filters on one repository:   ``GetMatchingRepos``; the purge page
their tag parts joined by ``|``                 ("--filter ... a repository name regular
                                                expression")
the tag part searched, unanchored (``v1``       ``purge.go`` ``getTagsToDelete``
matches ``v10``; anchors are the user's)        (``filter.MatchString``); Python ``re`` for
                                                regexp2 in ``RE2`` mode
                                                (``BuildRegexFilter``): assumption, the
                                                same on the expressions used here (POSIX
                                                classes differ)
``--ago``: whole days, then a Go duration       ``purge.go`` ``parseDuration``
(``30d``, ``1d12h``, ``12h``, ``1.5h``;         (``fmt.Sscanf(ago, "%dd%s")``, fallback
``1.5d`` reads as 1 day); days capped at 150    ``%dd``, then ``time.ParseDuration``); the
years; a rest Go refuses (``30``, ``3w``)       purge page (units d, h, m)
fails the run
a tag goes when it matches and its last update  ``getTagsToDelete``
is strictly before the run's time minus         (``lastUpdateTime.Before(timeToCompare)``)
``--ago`` (one updated at the cutoff stays)
``--keep K``: per repository, the K most        ``getTagsToDelete`` (tags listed
recently updated of the tags that would go      ``timedesc``, the first K eligible
stay (recent or unmatched tags do not count);   skipped); the purge page ("latest number of
equal times: by name                            to-be-deleted tags per repository"); equal
                                                times: assumption
``--untagged``: after the tags, every manifest  ``purge.go`` ``purge`` and
of the repository left without a tag (by this   ``purgeDanglingManifests``;
run or before) goes, unless updated after the   ``GetUntaggedManifests`` (a tag left
cutoff (one at the cutoff goes); with           protects;
``--keep``, K or fewer: none go; more: all but  ``lastUpdateTime.After(*deleteCutoff)``
the newest K                                    protects); acr-cli #517, #532; the purge
                                                page ("--untagged honors the --ago duration
                                                filter beginning with acr-cli:0.17")
``--untagged-only``: no tag deleted, the tag    ``purge.go`` (``untaggedOnly``; its flag
part ignored; without ``--filter`` every        help); the purge page
repository, without ``--ago`` every age
``--dry-run``: nothing deleted (the run         ``purge.go`` flag help ("no manifest or tag
reports none); it selects what a run would      will be deleted");
                                                ``GetUntaggedManifests``' dry-run count of
                                                tags to go
refused, nothing deleted: no ``--filter`` or    ``purge.go`` ``RunE`` checks before
no ``--ago`` (without ``--untagged-only``),     authentication; cobra
``--untagged`` with ``--untagged-only``, a      ``MarkFlagsMutuallyExclusive`` and int
``--keep`` not an integer, a regex that does    flags
not compile
not modelled: locked tags and manifests         ``GetUntaggedManifests``, ``purge``: the
(``--include-locked``), an index's children     sandbox has no locks, no indexes and no
and referrers kept, ABAC batches                referrers
a tag's last update: its last manifest PUT      the registry front's record
that docker-registry stored (201), on the       (``registry.TagRecords``) of every push;
registries' clock; a manifest's: its first      that a push of the same digest again
push                                            updates a tag: assumption (ACR's
                                                ``lastUpdateTime`` per tag); a manifest's
                                                time on a push again or an untag:
                                                assumption
untagging: ACR removes the tag and keeps the    the purge page ("deletes only tag
manifest (stored, by digest); the fake deletes  references, not the underlying manifests");
the manifest by digest and puts it back by      docker-registry 2.8 deletes only by digest,
digest and under the tags that stay, with       with every tag: the put back is the fake's
their times                                     own means
``GET .../registries/{name}/listUsages``:       Registries_ListUsages in azure-rest-api-
``Size`` (bytes of the stored blobs, each       specs (example RegistryListUsages.json:
counted once) against the SKU's included        Size, Webhooks, Geo-replications); included
storage (Basic 10 GiB, Standard 100 GiB,        storage: ACR service tiers doc page
Premium 500 GiB); ``Webhooks`` (2/10/500);      ("Azure Container Registry service tiers");
untagged manifests count (still stored)         untagged: the purge page (tags only, "not
                                                the underlying manifests and layer data")
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


# --- acr purge: its flags and selection (Azure/acr-cli cmd/acr/purge.go) ----------------------
class PurgeError(ValueError):
    """What ``acr purge`` refuses before deleting anything (its run fails: nothing deleted)."""


@dataclass(frozen=True)
class PurgeOptions:
    """``acr purge``'s flags, as its cobra command reads them."""

    filters: tuple[str, ...] = ()
    ago: dt.timedelta | None = None
    keep: int = 0
    untagged: bool = False
    untagged_only: bool = False
    dry_run: bool = False


@dataclass
class Contents:
    """One repository as acr purge sees it: each tag's manifest digest and last update, each
    manifest's last update (tagged or not)."""

    tags: dict[str, tuple[str, dt.datetime]] = field(default_factory=dict)
    manifests: dict[str, dt.datetime] = field(default_factory=dict)


@dataclass
class Selection:
    """What one run deletes (or, with ``--dry-run``, would): tags, then untagged manifests."""

    tags: dict[str, list[str]] = field(default_factory=dict)
    manifests: dict[str, list[str]] = field(default_factory=dict)


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_GO_UNITS["h"] = 3600.0
_MAX_DAYS = 150 * 365  # maxAgoDurationYears: the cap, not an error
# a ':' that splits; not one of ``(?i:``, ``[:``/``[^:`` or before ``]`` (GetRepositoryAndTagRegex)
_NOT_SPLIT_BEFORE = re.compile(r"(?:\(\?[imsU-]{0,5}|\[*\^*\[\^*)\Z")


def go_duration(text: str) -> dt.timedelta:
    """Go's ``time.ParseDuration``: ``[-+]`` then decimal numbers each with a unit (ns, us,
    ms, s, m, h; no days); ``0`` alone is allowed."""
    rest, sign = text, 1.0
    if rest[:1] in ("-", "+"):
        sign, rest = (-1.0 if rest[0] == "-" else 1.0), rest[1:]
    if rest == "0":
        return dt.timedelta()
    if not rest:
        raise PurgeError(f'time: invalid duration "{text}"')
    seconds = 0.0
    while rest:
        number = re.match(r"(\d*)(?:\.(\d*))?", rest)
        assert number is not None  # the pattern matches the empty string
        if not (number.group(1) or number.group(2)):
            raise PurgeError(f'time: invalid duration "{text}"')
        rest = rest[number.end() :]
        unit = re.match(r"[^\d.]*", rest)
        assert unit is not None
        if not unit.group():
            raise PurgeError(f'time: missing unit in duration "{text}"')
        if unit.group() not in _GO_UNITS:
            raise PurgeError(f'time: unknown unit "{unit.group()}" in duration "{text}"')
        rest = rest[unit.end() :]
        seconds += float(number.group(0) or 0) * _GO_UNITS[unit.group()]
    return dt.timedelta(seconds=sign * seconds)


def parse_ago(text: str) -> dt.timedelta:
    """acr purge's ``parseDuration``: ``fmt.Sscanf(ago, "%dd%s")`` when the text holds a ``d``
    (whole days, then a Go duration), else a Go duration. So ``30d``, ``1d12h``, ``12h``;
    ``1.5d`` reads as 1 day (``%d`` stops at the ``.``, the fallback ``%dd`` keeps it); days
    beyond 150 years are capped. How far back the cutoff is from the run."""
    days, rest = 0, text
    if "d" in text:
        both = re.match(r"([-+]?\d+)d(\S+)", text)
        if both is not None:
            days, rest = int(both.group(1)), both.group(2)
        else:  # "%dd%s" failed: "%dd" again, keeping whatever %d read
            first = re.match(r"[-+]?\d+", text)
            days, rest = (int(first.group()) if first else 0), ""
        days = min(days, _MAX_DAYS)
    duration = dt.timedelta(days=days)
    if rest:
        duration += go_duration(rest)
    return min(duration, dt.timedelta(days=_MAX_DAYS))


def split_filter(text: str) -> tuple[str, str]:
    """``GetRepositoryAndTagRegex``: ``<repository regex>:<tag regex>`` split at its one ``:``
    outside ``(?flags:``, ``[:``/``[^:`` and ``:]``; none, two or more, or an empty side:
    refused (so a repository part cannot hold a ``host:port``)."""
    splits = [
        i
        for i, c in enumerate(text)
        if c == ":" and not text[i + 1 : i + 2] == "]" and not _NOT_SPLIT_BEFORE.search(text[:i])
    ]
    if len(splits) != 1:
        raise PurgeError("unable to correctly parse filter flag")
    repository, tag = text[: splits[0]], text[splits[0] + 1 :]
    if not repository:
        raise PurgeError("missing repository name/expression")
    if not tag:
        raise PurgeError("missing tag name/expression")
    return repository, tag


def parse_purge(args: list[str]) -> PurgeOptions:
    """The flags of ``acr purge`` (``--filter``/``-f`` repeatable, ``--ago``, ``--keep``,
    ``--untagged``, ``--untagged-only``, ``--dry-run``; others ignored), refused as its RunE
    and cobra refuse them, before any registry call."""
    filters: list[str] = []
    values: dict[str, str] = {}
    flags: set[str] = set()
    i = 0
    while i < len(args):
        name, _, inline = args[i].partition("=")
        if name in ("--filter", "-f", "--ago", "--keep"):
            value = inline if inline else (args[i + 1] if i + 1 < len(args) else "")
            i += 0 if inline else 1
            if name in ("--filter", "-f"):
                filters.append(value)
            else:
                values[name] = value
        elif name in ("--untagged", "--untagged-only", "--dry-run"):
            flags.add(name)
        i += 1
    untagged, only = "--untagged" in flags, "--untagged-only" in flags
    if untagged and only:  # MarkFlagsMutuallyExclusive
        raise PurgeError(
            "if any flags in the group [untagged untagged-only] are set none of the others "
            "can be; [untagged untagged-only] were all set"
        )
    if not only and not filters:
        raise PurgeError("--filter is required when not using --untagged-only")
    if not only and "--ago" not in values:
        raise PurgeError("--ago is required when not using --untagged-only")
    try:
        keep = int(values.get("--keep", "0"))
    except ValueError:
        raise PurgeError(f'invalid argument "{values["--keep"]}" for "--keep" flag') from None
    return PurgeOptions(
        filters=tuple(filters),
        ago=parse_ago(values["--ago"]) if values.get("--ago") else None,
        keep=keep,
        untagged=untagged,
        untagged_only=only,
        dry_run="--dry-run" in flags,
    )


def _compile(expression: str) -> re.Pattern[str]:
    try:
        return re.compile(expression)
    except re.error as e:
        raise PurgeError(f"failed to build Regex {expression} with error: {e}") from None


def select(options: PurgeOptions, when: dt.datetime, registry: dict[str, Contents]) -> Selection:
    """What one ``acr purge`` run at ``when`` deletes, per repository (sources in the table):
    the tags, then with ``--untagged``/``--untagged-only`` the manifests left without a tag."""
    cutoff = when - (options.ago or dt.timedelta())
    tag_filters: dict[str, str] = {}
    if options.untagged_only and not options.filters:
        tag_filters = dict.fromkeys(registry, "")
    for text in options.filters:  # CollectTagFilters
        repository, tag = split_filter(text)
        anchored = _compile("^" + repository + "$")
        for name in registry:
            if anchored.search(name):
                before = tag_filters.get(name)
                tag_filters[name] = tag if before is None else before + "|" + tag
    chosen = Selection()
    for name in sorted(tag_filters):
        contents = registry[name]
        deleted: list[str] = []
        if not options.untagged_only:  # purgeTags
            pattern = _compile(tag_filters[name])
            eligible = sorted(
                (
                    (updated, tag)
                    for tag, (_, updated) in contents.tags.items()
                    if pattern.search(tag) and updated < cutoff
                ),
                key=lambda t: (-t[0].timestamp(), t[1]),
            )
            deleted = [tag for _, tag in eligible[options.keep :]]
            if deleted:
                chosen.tags[name] = deleted
        if options.untagged or options.untagged_only:  # purgeDanglingManifests
            still = {d for tag, (d, _) in contents.tags.items() if tag not in deleted}
            dangling = sorted(
                (
                    (updated, digest)
                    for digest, updated in contents.manifests.items()
                    if digest not in still and not updated > cutoff
                ),
                key=lambda m: (-m[0].timestamp(), m[1]),
            )
            if options.keep > 0:
                dangling = [] if len(dangling) <= options.keep else dangling[options.keep :]
            if dangling:
                chosen.manifests[name] = sorted(d for _, d in dangling)
    return chosen


def purge(task: Task, args: list[str], when: dt.datetime) -> list[str]:
    """One ``acr purge`` run at ``when`` on the task's registry: what it deleted, sorted, tags
    as ``repository:tag`` and manifests as ``repository@digest`` (a refused command, or
    ``--dry-run``: nothing)."""
    front = task.registry.front
    if front is None or not front.process.is_ready:  # never used: nothing was pushed to it
        return []
    process = front.process
    try:
        options = parse_purge(args)
        registry = _contents(process)
        chosen = select(options, when, registry)
    except PurgeError:
        return []  # acr purge prints the error and exits: the run fails, nothing deleted
    if options.dry_run:
        return []
    deleted: list[str] = []
    for repository in sorted(set(chosen.tags) | set(chosen.manifests)):
        untag = chosen.tags.get(repository, [])
        go = set(chosen.manifests.get(repository, []))
        by_digest: dict[str, list[str]] = {}
        for tag, (digest, _) in registry[repository].tags.items():
            by_digest.setdefault(digest, []).append(tag)
        for digest, on_it in sorted(by_digest.items()):
            gone = sorted(set(on_it) & set(untag))
            if not gone:
                continue
            if digest in go and set(on_it) <= set(untag):
                continue  # the manifest goes below, its tags with it
            if _untag(process, repository, digest, [t for t in on_it if t not in gone]):
                deleted += [f"{repository}:{t}" for t in gone]
        for digest in sorted(go):
            tags = sorted(t for t in by_digest.get(digest, []) if t in untag)
            if process.delete_manifest(repository, digest):
                deleted += [f"{repository}:{t}" for t in tags] + [f"{repository}@{digest}"]
    return sorted(deleted)


def _contents(process: Any) -> dict[str, Contents]:
    """Every repository in docker-registry's catalog, as acr purge lists it (each tag's last
    update: its last push through the front; each manifest's: its first push)."""
    records = process.times.all()
    registry: dict[str, Contents] = {}
    for repository in process.catalog():
        contents = Contents()
        for tag in process.tags(repository):
            found = records.get((repository, tag))
            if found is None:  # no push through the front (none in a sandbox that starts empty)
                continue
            digest = found.digest or _digest(process, repository, tag)[0]
            contents.tags[tag] = (digest, dt.datetime.fromtimestamp(found.pushed, dt.UTC))
        for digest, uploaded in process.times.manifests(repository).items():
            contents.manifests[digest] = dt.datetime.fromtimestamp(uploaded, dt.UTC)
        registry[repository] = contents
    return registry


def _untag(process: Any, repository: str, digest: str, keep: list[str]) -> bool:
    """Untag a manifest as ACR does, keeping it and its ``keep`` tags: docker-registry 2.8
    deletes only by digest, with every tag, so the manifest is put back by digest and under
    ``keep``, with their times (see the table)."""
    with _call(process, "GET", f"/v2/{repository}/manifests/{digest}", repository, ["pull"]) as r:
        if r.status != 200:
            return False
        body, media_type = r.read(), r.headers.get("Content-Type", "")
    uploaded = process.times.uploaded(repository, digest)
    kept = {t: process.times.get(repository, t) for t in keep}
    if not process.delete_manifest(repository, digest):
        return False
    for reference in [digest, *keep]:
        _call(
            process,
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            ["pull", "push"],
            body=body,
            content_type=media_type,
        ).close()
    process.times.restore(
        repository,
        digest,
        uploaded,  # none known: not listed, so kept (acr-cli keeps a manifest with no time)
        {t: times for t, times in kept.items() if times is not None},
    )
    return True


# --- the registry process, as the sandbox's own admin -----------------------------------------
def _call(
    process: Any,
    method: str,
    path: str,
    repository: str,
    actions: list[str],
    *,
    body: bytes | None = None,
    content_type: str = "",
) -> Any:
    """``method path`` on docker-registry with the sandbox's own token for ``repository``."""
    process.ready()
    token = process.issuer.issue(
        process.service,
        "sandbox-admin",
        [{"type": "repository", "name": repository, "actions": actions}],
    )
    headers = {"Authorization": f"Bearer {token}", "Accept": _ACCEPT}
    if content_type:
        headers["Content-Type"] = content_type
    request = UrlRequest(process.url + path, data=body, method=method, headers=headers)
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
    """The bytes of the blobs the registry's manifests reference, tagged or not (an untagged
    manifest is still stored: ``--untagged`` frees it), each counted once."""
    if registry.front is None:
        return 0
    process = registry.front.process
    blobs: dict[str, int] = {}
    for repository in process.catalog():  # one left with no tag still stores its manifests
        for reference in [*process.tags(repository), *process.times.manifests(repository)]:
            blobs.update(_digest(process, repository, reference)[1])
    return sum(blobs.values())
