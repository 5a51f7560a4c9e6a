"""Fake Harbor's tag retention: policies, and a run over when each tag was pushed and pulled.

The sources of each rule are in the package's table (``sandbox/harbor/__init__.py``, the
retention rows). A policy is kept as the ``RetentionPolicy`` the API was given (swagger);
:func:`run_policy` applies it the way Harbor's docs describe ("Create Tag Retention Rules",
goharbor/harbor ``docs/working-with-projects/working-with-images/create-tag-retention-rules.md``):
every rule *retains*, rules combine with OR, a tag in a repository some rule's scope selects
that no rule retains is deleted, and a repository no rule selects is not touched.

A tag's push and pull times are the registry front's record (``process.times``, see
:class:`~..registry.TagRecords`): its last manifest PUT by tag that docker-registry stored, and
its last manifest GET by tag that it answered, on the Harbor's clock, as Harbor's artifact
events set them.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.request import Request as UrlRequest
from urllib.request import urlopen

from ..registry import RegistryProcess, TagTimes


class HarborInstance(Protocol):
    """What a policy run reads of a Harbor (``instance.HarborInstance``), named here so this
    module does not import the one that holds it."""

    live: Any  # its state (``models``): projects, and their ``retention`` records
    front: Any  # its registry front (``front.process``: the docker-registry child), or None
    clock: Callable[[], float]  # its now


__all__ = [
    "TEMPLATES",
    "Retention",
    "TagTimes",
    "apply_policies",
    "doublestar",
    "manifest_bytes",
    "policy_problem",
    "run_policies",
    "run_policy",
    "tag_times",
]

DAY = 86400
#: The rule templates Harbor's retention metadata lists (``GET /retentions/metadatas``;
#: src/pkg/retention/policy/rule: latestps, latestpl, dayspl, daysps, always), with their
#: one parameter's name.
TEMPLATES = {
    "latestPushedK": "latestPushedK",
    "latestPulledN": "latestPulledN",
    "nDaysSinceLastPush": "nDaysSinceLastPush",
    "nDaysSinceLastPull": "nDaysSinceLastPull",
    "always": "",
}
_MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


@dataclass
class Retention:
    """One Harbor's retention state: its policies by id (the tags' times are its registry
    front's record, ``process.times``)."""

    policies: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1
    #: ``/system/gc/schedule``'s ``Schedule`` once set (None: never set, type "None")
    gc_schedule: dict[str, Any] | None = None


def tag_times(process: RegistryProcess) -> dict[tuple[str, str], TagTimes]:
    """Each tag in the registry now, with its push and pull times from the front's record (a
    tag without one, which a sandbox that starts empty cannot have, is left out: untouched)."""
    records = process.times.all()
    return {
        (repository, tag): records[(repository, tag)]
        for repository, tags in process.repositories().items()
        for tag in tags
        if (repository, tag) in records
    }


def doublestar(pattern: str, name: str) -> bool:
    """bmatcuk/doublestar matching, as Harbor's selectors use it: ``**`` crosses ``/``,
    ``*`` and ``?`` do not, ``{a,b}`` alternatives."""
    alternatives = re.fullmatch(r"(.*)\{([^{}]*)\}(.*)", pattern)
    if alternatives:
        head, body, tail = alternatives.groups()
        return any(doublestar(head + part + tail, name) for part in body.split(","))
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, name) is not None


def _selected(selectors: list[dict[str, Any]], name: str, matches: str, excludes: str) -> bool:
    """Whether every selector lets ``name`` through (``matches``: the pattern must match,
    ``excludes``: it must not); a pattern may list several, comma-separated (Harbor's docs)."""
    for selector in selectors:
        patterns = [p.strip() for p in str(selector.get("pattern", "")).split(",") if p.strip()]
        hit = any(doublestar(p, name) for p in patterns)
        decoration = selector.get("decoration")
        if decoration == matches and not hit:
            return False
        if decoration == excludes and hit:
            return False
    return True


def policy_problem(policy: Any) -> str | None:
    """Why Harbor would refuse this ``RetentionPolicy`` (400), or None."""
    if not isinstance(policy, dict):
        return "bad request: the policy is no JSON object"
    rules = policy.get("rules")
    if not isinstance(rules, list) or not rules:
        return "bad request: a policy needs at least one rule"
    if len(rules) > 15:  # Harbor's docs: up to 15 rules per project
        return "bad request: at most 15 rules per policy"
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("template") not in TEMPLATES:
            return f"bad request: unknown rule template {rule.get('template')!r}"
        key = TEMPLATES[str(rule["template"])]
        if key and not isinstance((rule.get("params") or {}).get(key), int):
            return f"bad request: rule {rule['template']} needs params.{key}, an integer"
    scope = policy.get("scope")
    if not isinstance(scope, dict) or scope.get("level") != "project":
        return "bad request: scope.level must be 'project'"
    return None


def _retains(rule: dict[str, Any], tags: list[tuple[str, TagTimes]], now: float) -> set[str]:
    """The tags (of one repository, already through the rule's tag selectors) ``rule`` keeps."""
    template = str(rule.get("template"))
    value = int((rule.get("params") or {}).get(TEMPLATES.get(template, ""), 0) or 0)
    if template == "always":
        return {tag for tag, _ in tags}
    if template == "nDaysSinceLastPush":
        return {tag for tag, t in tags if t.pushed >= now - value * DAY}
    if template == "nDaysSinceLastPull":  # never pulled: nothing to count from (assumption)
        return {tag for tag, t in tags if t.pulled is not None and t.pulled >= now - value * DAY}
    if template == "latestPushedK":
        return {tag for tag, _ in sorted(tags, key=lambda x: -x[1].pushed)[:value]}
    if template == "latestPulledN":  # "the most recently pulled": never pulled ones come last
        ranked = sorted(tags, key=lambda x: -(x[1].pulled or 0.0))
        return {tag for tag, t in ranked[:value] if t.pulled is not None}
    return set()


def run_policy(
    policy: dict[str, Any], project: str, times: dict[tuple[str, str], TagTimes], now: float
) -> list[tuple[str, str]]:
    """The (repository, tag) pairs of ``project`` one run of ``policy`` deletes.

    A repository (its name within the project, as the selectors see it) is in play when
    some enabled rule's ``scope_selectors.repository`` select it; in it, each rule sees
    the tags its ``tag_selectors`` select, and a tag no rule retains is deleted.
    """
    rules = [r for r in policy.get("rules", []) if not r.get("disabled")]
    by_repository: dict[str, list[tuple[str, TagTimes]]] = {}
    for (repository, tag), found in times.items():
        if repository.startswith(project + "/"):
            by_repository.setdefault(repository, []).append((tag, found))
    deleted: list[tuple[str, str]] = []
    for repository, tags in sorted(by_repository.items()):
        name = repository[len(project) + 1 :]
        applying = [
            r
            for r in rules
            if _selected(
                (r.get("scope_selectors") or {}).get("repository", []),
                name,
                "repoMatches",
                "repoExcludes",
            )
        ]
        if not applying:
            continue  # "No action is taken on the nonspecified repositories"
        kept: set[str] = set()
        for rule in applying:
            seen = [
                (tag, t)
                for tag, t in tags
                if _selected(rule.get("tag_selectors") or [], tag, "matches", "excludes")
            ]
            kept |= _retains(rule, seen, now)
        deleted += [(repository, tag) for tag, _ in sorted(tags) if tag not in kept]
    return deleted


def _admin(process: RegistryProcess, repository: str) -> tuple[dict[str, str], ssl.SSLContext]:
    """Headers with the sandbox's own token (pull, delete) on ``repository``; TLS context."""
    token = process.issuer.issue(
        process.service,
        "sandbox-admin",
        [{"type": "repository", "name": repository, "actions": ["pull", "delete"]}],
    )
    context = ssl.create_default_context(cafile=str(process.material.ca_file))
    return {"Authorization": f"Bearer {token}", "Accept": _MANIFEST_TYPES}, context


def _digest(process: RegistryProcess, repository: str, tag: str) -> str:
    headers, context = _admin(process, repository)
    head = UrlRequest(
        f"{process.url}/v2/{repository}/manifests/{tag}", headers=headers, method="HEAD"
    )
    with urlopen(head, timeout=10, context=context) as answer:
        return str(answer.headers["Docker-Content-Digest"])


def manifest_bytes(process: RegistryProcess, repositories: dict[str, list[str]]) -> int:
    """The bytes of the distinct blobs (config and layers) the tags' manifests reference: what
    Harbor's project quota counts as used storage (a blob shared by two images counts once)."""
    context = ssl.create_default_context(cafile=str(process.material.ca_file))
    sizes: dict[str, int] = {}
    for repository, tags in repositories.items():
        token = process.issuer.issue(
            process.service,
            "sandbox-admin",
            [{"type": "repository", "name": repository, "actions": ["pull"]}],
        )
        headers = {"Authorization": f"Bearer {token}", "Accept": _MANIFEST_TYPES}
        for tag in tags:
            get = UrlRequest(f"{process.url}/v2/{repository}/manifests/{tag}", headers=headers)
            with urlopen(get, timeout=10, context=context) as answer:
                manifest = json.loads(answer.read())
            for blob in [manifest.get("config") or {}, *(manifest.get("layers") or [])]:
                if isinstance(blob, dict) and "digest" in blob:
                    sizes[str(blob["digest"])] = int(blob.get("size", 0))
    return sum(sizes.values())


def apply_policies(
    retention: Retention,
    projects: dict[str, int | None],
    process: RegistryProcess | None,
    now: float,
) -> list[str]:
    """Run every bound policy (``projects``: name -> ``retention_id``) once at ``now``, deleting
    what it selects from the registry; the ``<repository>:<tag>`` names deleted."""
    if process is None or not process.is_ready:  # never used: nothing was pushed to it
        return []
    deleted: list[str] = []
    for project, policy_id in sorted(projects.items()):
        policy = retention.policies.get(policy_id or 0)
        if policy is None:
            continue
        times = tag_times(process)
        going = run_policy(policy, project, times, now)
        touched = {repository for repository, _ in going}
        # Harbor deletes artifacts: one that a kept tag names stays, with all its tags (docs)
        digests = {key: _digest(process, *key) for key in times if key[0] in touched}
        kept = {(key[0], d) for key, d in digests.items() if key not in going}
        gone: set[tuple[str, str]] = set()
        for repository, tag in going:
            artifact = (repository, digests[(repository, tag)])
            if artifact in kept:
                continue
            if artifact not in gone:
                # as Harbor deletes an artifact: every tag of it goes with it
                process.delete_manifest(*artifact)
                gone.add(artifact)
            deleted.append(f"{repository}:{tag}")
    return deleted


def run_policies(instance: HarborInstance, days: float) -> list[str]:
    """One run of every policy bound to a project of ``instance`` at its now (``days`` 0:
    the clock did not move, nothing runs)."""
    live = instance.live
    process = instance.front.process if instance.front is not None else None
    if not days:
        return []
    projects = {p.name: p.retention_id for p in live.projects.values()}
    return apply_policies(live.retention, projects, process, instance.clock())
