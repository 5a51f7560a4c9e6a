"""Artifact Registry's cleanup policies on the fake's clock, and a repository's ``sizeBytes``.

The sandbox's images live in real docker-registry processes (one per location, see
:mod:`.cloud`); a *version* here is one manifest (its digest) of one package (the image path
after the repository), with the tags that point at it, as Artifact Registry's versions and
tags are. Deleting a version deletes its manifest in docker-registry, which takes its tags.

=============================================  ================================================
behaviour                                      source
=============================================  ================================================
``Repository.cleanupPolicies``: a map of id    artifactregistry v1 discovery document
to CleanupPolicy (``id``, ``action`` DELETE    (vendored: tests/data/google), schemas
or KEEP, ``condition`` or                      Repository, CleanupPolicy, CleanupPolicyCondition,
``mostRecentVersions``); the condition:        CleanupPolicyMostRecentVersions
``tagState`` (TAGGED, UNTAGGED, ANY),
``tagPrefixes``, ``versionNamePrefixes``,
``packageNamePrefixes``, ``olderThan``,
``newerThan`` (google-duration)
durations are JSON google-duration,            the discovery document's ``format:
``"<seconds>s"`` (e.g. ``"2592000s"``: 30      google-duration``; the Terraform provider's
days); anything else: 400 INVALID_ARGUMENT     ``older_than = "2592000s"`` examples
                                               (google_artifact_registry_repository); the
                                               refusal's text: assumption
at most 10 policies on a repository; more:     cloud.google.com/artifact-registry/docs/
400 INVALID_ARGUMENT                           repositories/cleanup-policy ("a maximum of 10
                                               cleanup policies"); the text: assumption
a version matching a DELETE policy is          .../cleanup-policy-overview: "If an artifact
deleted unless a KEEP policy matches it too    version matches criteria in both a delete policy
(KEEP wins); a KEEP ``mostRecentVersions``     and a keep policy, Artifact Registry applies the
keeps the ``keepCount`` newest versions of     keep policy"; "Keep most recent versions"
each package it names                          (per package: assumption from its example)
the age is the time since the version was      .../cleanup-policy (``olderThan``: "the time
uploaded (no pull time: Artifact Registry      since the artifact version was uploaded"); no
keeps none a policy can read)                  pull-time condition exists in the schema
``cleanupPolicyDryRun`` true: the policies     Repository.cleanupPolicyDryRun; .../cleanup-
run but delete nothing (the real one logs      policy ("dry run": results in Cloud Audit
what they would delete; here: the clock's      Logs); the answer's ``would_delete``: sandbox
answer lists it as ``would_delete``)
the policies run in a background job           .../cleanup-policy ("Changes take effect
"within approximately one day": the fake       within approximately one day"); running
runs them once each time the sandbox clock     them at the end of the moved interval:
moves (``POST /_sandbox/clock``)               assumption
a version's upload time: its digest's first   the registry front's record (``registry.
manifest PUT that docker-registry stored       TagRecords``) of every push, on the project's
(201) in that image, on the project's clock    clock; a version deleted and pushed again is
                                               uploaded anew
``sizeBytes``: the repository's stored bytes   Repository.sizeBytes ("the size, in bytes, of
(each blob and manifest once), a string        all artifact storage in this repository",
(int64); omitted while 0                       int64 as a JSON string); omitted zero: proto3
                                               JSON; deduplication by digest: assumption
=============================================  ================================================
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from ..registry import RegistryProcess

__all__ = [
    "MAX_POLICIES",
    "Version",
    "check_policies",
    "clock_ahead",
    "image_path",
    "present",
    "run_policies",
    "selected",
    "size_bytes",
    "versions",
]

#: Cleanup policies a repository may have (cleanup-policy page).
MAX_POLICIES = 10
_DURATION = re.compile(r"\d+(\.\d{1,9})?s")
_TAG_STATES = ("TAGGED", "UNTAGGED", "ANY")
_CONDITION = {
    "tagState",
    "tagPrefixes",
    "versionNamePrefixes",
    "packageNamePrefixes",
    "olderThan",
    "newerThan",
}
_MANIFESTS = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


def _seconds(duration: str) -> float:
    return float(duration[:-1])


def check_policies(value: Any) -> str | None:
    """What is wrong with a ``cleanupPolicies`` map (the INVALID_ARGUMENT text), or None."""
    if not isinstance(value, dict):
        return "cleanupPolicies must be a map of id to CleanupPolicy"
    if len(value) > MAX_POLICIES:
        return f"a repository can have at most {MAX_POLICIES} cleanup policies"
    for key, policy in value.items():
        if not isinstance(policy, dict):
            return f"cleanup policy {key!r} must be an object"
        if policy.get("id", key) != key:
            return f"cleanup policy id {policy.get('id')!r} does not match its key {key!r}"
        if policy.get("action") not in ("DELETE", "KEEP"):
            return f"cleanup policy {key!r}: action must be DELETE or KEEP"
        condition, recent = policy.get("condition"), policy.get("mostRecentVersions")
        if (condition is None) == (recent is None):
            return f"cleanup policy {key!r}: exactly one of condition, mostRecentVersions"
        if recent is not None and policy["action"] != "KEEP":
            return f"cleanup policy {key!r}: mostRecentVersions is for KEEP policies"
        if condition is not None:
            if not isinstance(condition, dict) or not set(condition) <= _CONDITION:
                return f"cleanup policy {key!r}: unknown condition fields"
            if condition.get("tagState", "ANY") not in _TAG_STATES:
                return f"cleanup policy {key!r}: tagState must be one of {', '.join(_TAG_STATES)}"
            for name in ("olderThan", "newerThan"):
                if name in condition and not _DURATION.fullmatch(str(condition[name])):
                    return f"cleanup policy {key!r}: {name} must be a duration like '2592000s'"
    return None


@dataclass
class Version:
    """One version: a manifest of one package, its tags and its upload time (fake clock)."""

    package: str
    image: str  # the image path in docker-registry (<project>/<repository>/<package>)
    digest: str
    tags: list[str]
    uploaded: float
    kept_by: list[str] = field(default_factory=list)


def _condition_matches(condition: dict[str, Any], version: Version, now: float) -> bool:
    state = condition.get("tagState", "ANY")
    if (state == "TAGGED" and not version.tags) or (state == "UNTAGGED" and version.tags):
        return False
    prefixes = condition.get("packageNamePrefixes") or []
    if prefixes and not any(version.package.startswith(p) for p in prefixes):
        return False
    tags = condition.get("tagPrefixes") or []
    if tags and not any(t.startswith(p) for t in version.tags for p in tags):
        return False
    names = condition.get("versionNamePrefixes") or []
    if names and not any(version.digest.startswith(p) for p in names):
        return False
    age = now - version.uploaded
    if "olderThan" in condition and not age > _seconds(condition["olderThan"]):
        return False
    return not ("newerThan" in condition and not age < _seconds(condition["newerThan"]))


def selected(policies: dict[str, Any], versions: list[Version], now: float) -> list[Version]:
    """The versions the policies delete at ``now``: a DELETE matches, and no KEEP does."""
    kept: set[int] = set()
    for policy in policies.values():
        if policy.get("action") != "KEEP":
            continue
        recent = policy.get("mostRecentVersions")
        if recent is None:
            kept |= {id(v) for v in versions if _condition_matches(policy["condition"], v, now)}
            continue
        prefixes = recent.get("packageNamePrefixes") or []
        packages: dict[str, list[Version]] = {}
        for v in versions:
            if not prefixes or any(v.package.startswith(p) for p in prefixes):
                packages.setdefault(v.package, []).append(v)
        for group in packages.values():
            group.sort(key=lambda v: v.uploaded, reverse=True)
            kept |= {id(v) for v in group[: int(recent.get("keepCount") or 0)]}
    return [
        v
        for v in versions
        if id(v) not in kept
        and any(
            p.get("action") == "DELETE" and _condition_matches(p.get("condition") or {}, v, now)
            for p in policies.values()
        )
    ]


def _headers(process: RegistryProcess, image: str, actions: list[str]) -> dict[str, str]:
    """The sandbox's own token for ``actions`` on ``image`` (as Artifact Registry's service
    agent deletes: it needs no user's credentials)."""
    access = [{"type": "repository", "name": image, "actions": actions}]
    token = process.issuer.issue(process.service, "sandbox-admin", access)
    return {"Authorization": f"Bearer {token}", "Accept": _MANIFESTS}


def _call(process: RegistryProcess, method: str, path: str, image: str) -> tuple[Any, bytes]:
    """One call to docker-registry: (its headers, its body); a 404 is ``(None, b"")``."""
    context = ssl.create_default_context(cafile=str(process.material.ca_file))
    actions = ["pull", "delete"] if method == "DELETE" else ["pull"]
    request = Request(
        f"{process.url}/v2/{image}/{path}", headers=_headers(process, image, actions), method=method
    )
    try:
        with urlopen(request, timeout=10, context=context) as answer:
            return answer.headers, answer.read()
    except HTTPError as e:
        if e.code == 404:  # gone meanwhile (another tag of the same manifest took it)
            return None, b""
        raise


def _images(process: RegistryProcess, path: str) -> dict[str, list[str]]:
    """The images under ``path`` (``<project>/<repository>/``) with their tags."""
    if not process.is_ready:  # never used: nothing was pushed to it
        return {}
    return {k: v for k, v in process.repositories().items() if k.startswith(path)}


def versions(process: RegistryProcess, path: str) -> list[Version]:
    """The repository's versions (its images under ``path``), each with its upload time from
    the front's record (a version without one, which a sandbox that starts empty cannot have,
    is left out: untouched)."""
    found: dict[tuple[str, str], Version] = {}
    for image, tags in sorted(_images(process, path).items()):
        for tag in tags:
            headers, _ = _call(process, "HEAD", f"manifests/{tag}", image)
            if headers is None:
                continue
            key = (image, headers["Docker-Content-Digest"])
            uploaded = process.times.uploaded(*key)
            if uploaded is None:
                continue
            if key not in found:
                found[key] = Version(image[len(path) :], image, key[1], [], uploaded)
            found[key].tags.append(tag)
    return list(found.values())


def run_policies(
    process: RegistryProcess,
    path: str,
    policies: dict[str, Any],
    dry_run: bool,
    now: float,
) -> list[str]:
    """Delete (unless ``dry_run``) what the policies select at ``now``; ``image:tag`` each."""
    chosen = selected(policies, versions(process, path), now)
    for version in chosen if not dry_run else []:
        process.delete_manifest(version.image, version.digest)  # its tags go with it
    return sorted(f"{v.image}:{t}" for v in chosen for t in v.tags)


def size_bytes(process: RegistryProcess, path: str) -> int:
    """The bytes stored under ``path``: every manifest and the blobs it names, each once."""
    sizes: dict[str, int] = {}
    for image, tags in _images(process, path).items():
        for tag in tags:
            headers, body = _call(process, "GET", f"manifests/{tag}", image)
            if headers is None:
                continue
            sizes[headers["Docker-Content-Digest"]] = len(body)
            manifest = json.loads(body)
            for blob in [manifest.get("config") or {}, *(manifest.get("layers") or [])]:
                if blob.get("digest"):
                    sizes[blob["digest"]] = int(blob.get("size") or 0)
    return sum(sizes.values())


def image_path(repo: Any) -> str:
    """Where a repository's images are in its front's docker-registry: ``<project>/<id>/``,
    or ``<project>/`` for a gcr.io-domain repository (the only ids with a dot)."""
    return f"{repo.project}/" if "." in repo.id else f"{repo.project}/{repo.id}/"


def present(clock: float) -> float:
    """The fake's present: the wall clock plus what ``POST /_sandbox/clock`` added."""
    return time.time() + clock


def clock_ahead(cloud: Any, days: float) -> dict[str, Any]:
    """Move the project's clock ``days`` ahead, then run every repository's cleanup
    policies once (their daily job): what they deleted, and what a repository in dry-run
    mode would have deleted. ``cloud`` is the backend (:class:`~.cloud.GoogleCloud`)."""
    project = cloud.project
    seen: list[tuple[Any, RegistryProcess, str]] = []
    for repo in project.repositories.values():
        front = cloud.fronts.get(cloud._front_key(repo))
        if front is not None:
            seen.append((repo, front.process, image_path(repo)))
    project.clock += days * 86400
    now = present(project.clock)
    deleted: list[str] = []
    would: list[str] = []
    for repo, process, path in seen:
        if not repo.cleanup_policies:
            continue
        found = run_policies(process, path, repo.cleanup_policies, repo.cleanup_dry_run, now)
        (would if repo.cleanup_dry_run else deleted).extend(found)
    answer: dict[str, Any] = {"deleted": deleted}
    if would:
        answer["would_delete"] = would
    return answer
