"""Fake Harbor's tag retention: policies, and a run over when each tag was pushed and pulled.

The sources of each rule are in the package's table (``sandbox/harbor/__init__.py``, the
retention rows). A policy is kept as the ``RetentionPolicy`` the API was given (swagger);
:func:`run_policy` applies it the way Harbor's docs describe ("Create Tag Retention Rules",
goharbor/harbor ``docs/working-with-projects/working-with-images/create-tag-retention-rules.md``)
and its source does (goharbor/harbor ``src/pkg/retention``: ``launcher.go`` gives each
repository the rules whose scope selectors select it; ``policy/alg/or/processor.go`` runs each
rule's tag selectors, then its evaluator, and ORs what they retain; ``dep/client.go`` makes one
candidate per *artifact*, with its tags and the latest push and pull of it and its tags): every
rule *retains*, an artifact in a repository some rule selects that no rule retains is deleted
with all its tags, and a repository no rule selects is not touched.

Not modelled: the ``latestActiveK`` and ``lastXDays`` evaluators, which Harbor's rule index
registers (``policy/rule/index/index.go``) but its API does not list
(``GET /retentions/metadatas``, ``server/v2.0/handler/retention.go``): the fake refuses them
(400, an assumption); the evaluators' parameter bounds (``Valid``: below 0, too large);
untagged artifacts (the registry front records tags only, so the ``untagged`` extra has
nothing to select); label selectors.

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
    "Candidate",
    "Retention",
    "TagTimes",
    "apply_policies",
    "candidates",
    "doublestar",
    "manifest_bytes",
    "policy_problem",
    "run_policies",
    "run_policy",
    "tag_times",
]

DAY = 86400
#: The rule templates Harbor's retention metadata lists (``GET /retentions/metadatas``,
#: ``server/v2.0/handler/retention.go``; evaluators in src/pkg/retention/policy/rule: latestps,
#: latestpl, daysps, dayspl, always), with their one parameter's name.
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
    """bmatcuk/doublestar v1.3.4's ``Match``, the version Harbor's selectors use (src/go.mod;
    src/lib/selector/selectors/doublestar/selector.go). The name is split at ``/``; a pattern
    component that is exactly ``**`` matches any number of components (at least one when it
    ends the pattern); anywhere else ``*`` and ``**`` alike match within one component, so
    ``binder-**`` does not match ``binder-a/b`` (``doMatching``/``matchComponent``). ``?``, a
    ``[class]`` (``^`` negates), ``{a,b}`` alternatives and ``\\`` escapes as documented
    (README "Patterns"). An empty pattern matches everything (the selector's ``match``)."""
    if not pattern:
        return True
    names = name.split("/")
    return any(_components(p.split("/"), names) for p in _alternatives(pattern))


def _alternatives(pattern: str) -> list[str]:
    """``pattern`` with each ``{a,b}`` (innermost first) written out, one pattern per choice
    (an alternative holding a ``/`` crosses components: an assumption)."""
    found = re.search(r"(?<!\\)\{([^{}]*)\}", pattern)
    if found is None:
        return [pattern]
    head, tail = pattern[: found.start()], pattern[found.end() :]
    return [
        expanded
        for part in re.split(r"(?<!\\),", found.group(1))
        for expanded in _alternatives(head + part + tail)
    ]


def _components(patterns: list[str], names: list[str]) -> bool:
    """Path components against pattern components; ``**`` alone spans components."""
    if not patterns:
        return not names
    head, rest = patterns[0], patterns[1:]
    if head == "**":
        if not rest:
            return bool(names)
        return any(_components(rest, names[i:]) for i in range(len(names)))
    return bool(names) and _component(head, names[0]) and _components(rest, names[1:])


def _component(pattern: str, name: str) -> bool:
    """One path component against one pattern component (no ``/`` in either)."""
    regex = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
        elif char == "*":
            regex += "[^/]*"
            while i < len(pattern) and pattern[i] == "*":
                i += 1
        elif char == "?":
            regex += "[^/]"
            i += 1
        elif char == "[" and _class_end(pattern, i + 1) > 0:
            end = _class_end(pattern, i + 1)
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            regex += "[" + ("^" if negate else "") + _class(body[1:] if negate else body) + "]"
            i = end + 1
        else:
            regex += re.escape(char)
            i += 1
    return re.fullmatch(regex, name) is not None


def _class_end(pattern: str, start: int) -> int:
    """Where the ``[class]`` whose body starts at ``start`` closes (an unescaped ``]``), or -1
    (a bad pattern, which makes Harbor's run fail: the fake takes the ``[`` literally)."""
    i = start
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
        elif pattern[i] == "]":
            return i if i > start else -1
        else:
            i += 1
    return -1


def _class(body: str) -> str:
    """A class's body as a regex's: ``\\`` takes the next character as it is, ``-`` a range."""
    out = ""
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out += re.escape(body[i + 1])
            i += 2
        else:
            out += "-" if body[i] == "-" else re.escape(body[i])
            i += 1
    return out


def _selected(
    selectors: list[dict[str, Any]], names: list[str], matches: str, excludes: str
) -> bool:
    """Whether every selector lets a candidate with ``names`` (a repository's name, or an
    artifact's tags) through: ``matches`` when one of them matches the pattern, ``excludes``
    when one of them does not (selector.go ``tagSelectMatch``/``tagSelectExclude``; for a
    repository, one name). The pattern is matched as given: the API does not split it at
    commas; Harbor's portal wraps a comma list in braces before sending it
    (``add-rule.component.ts``)."""
    for selector in selectors:
        pattern = str(selector.get("pattern") or "")
        hits = [doublestar(pattern, name) for name in names]
        decoration = selector.get("decoration")
        if decoration == matches and not any(hits):
            return False
        if decoration == excludes and all(hits):
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


@dataclass(frozen=True)
class Candidate:
    """One artifact of a repository, as Harbor's retention sees it (``dep/client.go``
    ``GetCandidates``): its tags, and the latest push and pull of it and its tags (never
    pulled: Harbor's zero time, before any other)."""

    digest: str
    tags: tuple[str, ...]
    pushed: float
    pulled: float | None


def candidates(tags: list[tuple[str, TagTimes]]) -> list[Candidate]:
    """The artifacts behind one repository's tags: tags with one digest are one artifact (a
    tag recorded without its digest is an artifact of its own)."""
    by_digest: dict[str, list[tuple[str, TagTimes]]] = {}
    for tag, found in sorted(tags):
        by_digest.setdefault(found.digest or f"tag:{tag}", []).append((tag, found))
    made = []
    for digest, group in by_digest.items():
        pulls = [t.pulled for _, t in group if t.pulled is not None]
        made.append(
            Candidate(
                digest,
                tuple(tag for tag, _ in group),
                max(t.pushed for _, t in group),
                max(pulls) if pulls else None,
            )
        )
    return made


def _pull_time(candidate: Candidate) -> float:
    return candidate.pulled if candidate.pulled is not None else float("-inf")


def _retains(rule: dict[str, Any], seen: list[Candidate], now: float) -> list[Candidate]:
    """The candidates (of one repository, already through the rule's tag selectors) that
    ``rule``'s evaluator retains (src/pkg/retention/policy/rule/<template>/evaluator.go)."""
    template = str(rule.get("template"))
    value = int((rule.get("params") or {}).get(TEMPLATES.get(template, ""), 0) or 0)
    if template == "always":  # always: every candidate
        return list(seen)
    if template == "nDaysSinceLastPush":  # daysps: PushedTime >= now - n*24h
        return [c for c in seen if c.pushed >= now - value * DAY]
    if template == "nDaysSinceLastPull":  # dayspl: PulledTime >= now - n*24h; never: zero time
        return [c for c in seen if _pull_time(c) >= now - value * DAY]
    # latestps / latestpl: sort by PushedTime / PulledTime, newest first, keep the first k / n
    # (never pulled last, yet kept while n reaches them); Go's sort.Slice leaves ties in no
    # set order: the fake keeps the first in tag order (assumption)
    if template == "latestPushedK":
        return sorted(seen, key=lambda c: -c.pushed)[:value]
    if template == "latestPulledN":
        return sorted(seen, key=lambda c: -_pull_time(c))[:value]
    return []


def run_policy(
    policy: dict[str, Any], project: str, times: dict[tuple[str, str], TagTimes], now: float
) -> list[tuple[str, str]]:
    """The (repository, tag) pairs of ``project`` one run of ``policy`` deletes.

    A repository (its name within the project, as the selectors see it) is in play when
    some enabled rule's ``scope_selectors.repository`` select it; in it, each such rule sees
    the artifacts its ``tag_selectors`` select, and an artifact no rule retains is deleted
    with every tag it has.
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
                [name],
                "repoMatches",
                "repoExcludes",
            )
        ]
        if not applying:
            continue  # "No action is taken on the nonspecified repositories"
        artifacts = candidates(tags)
        kept: set[str] = set()
        for rule in applying:
            seen = [
                c
                for c in artifacts
                if _selected(rule.get("tag_selectors") or [], list(c.tags), "matches", "excludes")
            ]
            kept |= {c.digest for c in _retains(rule, seen, now)}
        going = {tag for c in artifacts if c.digest not in kept for tag in c.tags}
        deleted += [(repository, tag) for tag, _ in sorted(tags) if tag in going]
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
        # run_policy deletes whole artifacts by the recorded digests; the live ones decide,
        # so an artifact a kept tag names stays, with all its tags, whatever the record
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
