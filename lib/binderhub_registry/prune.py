"""``binderhub-registry prune``: delete BinderHub's Docker Hub tags nobody pulled for N days.

Docker Hub has no retention policy and no API to set one, so a BinderHub's images pile up
there. Hub's API does keep, for each tag, when it was last pulled and pushed
(``tag_last_pulled``, ``tag_last_pushed`` in ``GET /v2/namespaces/{namespace}/repositories/
{repository}/tags``, docs.docker.com/reference/api/hub/latest), and it deletes one tag with
``DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/`` (docker/hub-tool's
RemoveTag). This module:

- lists the namespace's repositories (``GET /v2/namespaces/{namespace}/repositories``, List
  repositories; the older ``GET /v2/repositories/{namespace}/`` is deprecated since the Hub
  API changelog of 2025-06-27) and keeps only those under the image prefix's name
  (``binder-`` in ``docker.io/<namespace>/binder-``);
- selects the tags not pulled for ``days`` days, a never-pulled tag by its push time, and
  keeps a tag Hub gives no time for (nothing says it is old);
- shows what it would delete, and deletes only with ``apply``.

The secret, a personal access token with Read, Write, Delete (``repo:admin``: the only
permission that deletes; Hub answers a Read & Write token's delete 403 "access denied:
insufficient scope"), comes from an environment variable, never an argument, so a Kubernetes
CronJob takes it from a Secret (:func:`cronjob_manifest`; the Docker Hub notebook makes the
token and writes that Secret, ``prune-secret.yaml``). An organization access token is refused
before any call: "organization access tokens only work with the namespace-scoped routes"
(docs.docker.com/security/access-tokens/reference/), and the one tag delete route a public
source shows (hub-tool's) is not one; no public source shows a namespace-scoped one.

Hub's pull time is any pull's: a scanner or a mirror that pulls a tag keeps it young. "Now"
is this machine's clock.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlparse

from .errors import InvalidParameter, MissingCredentials, PermissionDenied
from .providers.dockerhub import DEFAULT_SCHEDULE, HUB_API, TOKEN_VARIABLE, _Hub, prune_cronjob

__all__ = [
    "DEFAULT_SCHEDULE",
    "PrunePlan",
    "TagAge",
    "cronjob_manifest",
    "prune",
    "select",
    "split_prefix",
]

PAGE_SIZE = 100  # the tags listing's maximum page size (spec: "Max of 100")
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*[._-]?")
_NAMESPACE = re.compile(r"[a-z0-9]{2,255}")


@dataclass(frozen=True)
class TagAge:
    """One tag and the times Hub gives for it."""

    repository: str  # namespace/name
    tag: str
    last_pulled: datetime | None
    last_pushed: datetime | None

    @property
    def seen(self) -> datetime | None:
        """When it was last used: its last pull, else (never pulled) its push."""
        return self.last_pulled or self.last_pushed

    def text(self, now: datetime) -> str:
        """``repo:tag (pulled 40 days ago)``."""
        if self.seen is None:
            return f"{self.repository}:{self.tag} (Hub gives no time: kept)"
        how = "pulled" if self.last_pulled else "pushed, never pulled,"
        return f"{self.repository}:{self.tag} ({how} {(now - self.seen).days} days ago)"


@dataclass
class PrunePlan:
    """What prune selected, and what it deleted."""

    namespace: str
    name_prefix: str
    days: int
    now: datetime
    delete: list[TagAge] = field(default_factory=list)
    keep: list[TagAge] = field(default_factory=list)
    deleted: list[TagAge] = field(default_factory=list)
    applied: bool = False

    def text(self) -> str:
        """The report: the rule, then each tag it deletes (or would delete)."""
        rule = (
            f"tags in {self.namespace}/{self.name_prefix}* not pulled (never pulled: not "
            f"pushed) for {self.days} days"
        )
        if self.days == 0:
            return f"retention_days is 0: every tag is kept ({self.namespace}/{self.name_prefix}*)"
        verb = "deleted" if self.applied else "would delete"
        lines = [f"{rule}: {verb} {len(self.delete)}, kept {len(self.keep)}"]
        lines += [f"  {verb}: {t.text(self.now)}" for t in self.delete]
        if not self.applied and self.delete:
            lines.append("  nothing was deleted: run again with --apply to delete these")
        return "\n".join(lines)


def split_prefix(image_prefix: str) -> tuple[str, str]:
    """(namespace, repository name prefix) of a Docker Hub image prefix; InvalidParameter when
    it names no namespace (``docker.io/binderhubdemo/binder-`` -> binderhubdemo, binder-)."""
    parts = image_prefix.split("/")
    if len(parts) == 3 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # a registry host (docker.io, registry-1.docker.io, the sandbox's)
    rule = "must be <registry>/<namespace>/<name prefix> or <namespace>/<name prefix>"
    if len(parts) != 2 or not _NAMESPACE.fullmatch(parts[0]):
        raise InvalidParameter("image_prefix", rule, image_prefix)
    if parts[1] and not _NAME.fullmatch(parts[1]):
        raise InvalidParameter("image_prefix", rule, image_prefix)
    return parts[0], parts[1]


def check_days(days: int) -> int:
    """``days`` if it is 0 (keep everything) to 3650, else InvalidParameter."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
        raise InvalidParameter("days", "must be a whole number of days, 0 to 3650", days)
    return days


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def select(tags: list[TagAge], days: int, now: datetime) -> tuple[list[TagAge], list[TagAge]]:
    """(delete, keep): a tag goes when its last pull (never pulled: its push) is more than
    ``days`` days before ``now``; with no time at all it stays; ``days`` 0 keeps all."""
    delete: list[TagAge] = []
    keep: list[TagAge] = []
    for t in tags:
        old = days > 0 and t.seen is not None and now - t.seen > timedelta(days=days)
        (delete if old else keep).append(t)
    return delete, keep


def _pages(hub: _Hub, path: str) -> list[dict[str, Any]]:
    """Every result of a paginated Hub listing (``next`` is a full URL or a path)."""
    results: list[dict[str, Any]] = []
    url: str | None = f"{path}?page=1&page_size={PAGE_SIZE}"
    while url:
        body = hub.call("GET", url)
        results += body.get("results") or []
        following = body.get("next")
        if following:
            parsed = urlparse(str(following))
            url = parsed.path[len(urlparse(hub.base).path) :] + "?" + parsed.query
        else:
            url = None
    return results


def _secret(variable: str) -> str:
    secret = os.environ.get(variable, "")
    if not secret:
        raise MissingCredentials(
            f"the Docker Hub token (${variable})",
            f"set {variable} to a personal access token with Read, Write, Delete (the "
            "notebook's prune-secret.yaml holds one); it is never an argument",
        )
    return secret


def prune(
    image_prefix: str,
    days: int,
    *,
    username: str,
    apply: bool = False,
    token_variable: str = TOKEN_VARIABLE,
    hub_url: str = HUB_API,
    ca_file: str | None = None,
    now: datetime | None = None,
) -> PrunePlan:
    """Select (and with ``apply`` delete) the tags under ``image_prefix`` not pulled for
    ``days`` days. ``username``: the token's Docker ID (an organization access token's
    organization); the token itself is read from ``$token_variable``."""
    namespace, name_prefix = split_prefix(image_prefix)
    check_days(days)
    if not username:
        raise InvalidParameter("username", "is required: the token's Docker ID or organization")
    plan = PrunePlan(namespace, name_prefix, days, now or datetime.now(UTC))
    if days == 0:
        return plan
    secret = _secret(token_variable)
    if secret.startswith("dckr_oat_"):
        raise PermissionDenied(
            f"${token_variable} holds an organization access token, which Docker Hub takes on "
            "namespace-scoped routes only, and prune's tag delete (hub-tool's route) is not "
            "one: use a personal access token with Read, Write, Delete of an owner or editor"
        )
    hub = _Hub(hub_url, ca_file)

    def sign_in() -> str:
        body = hub.call("POST", "/v2/auth/token", json={"identifier": username, "secret": secret})
        return str(body["access_token"])

    hub.renew = sign_in
    hub.authorize(sign_in())
    tags: list[TagAge] = []
    for repo in _pages(hub, f"/v2/namespaces/{quote(namespace)}/repositories"):
        name = str(repo.get("name", ""))
        if not name.startswith(name_prefix):
            continue  # not BinderHub's: never touched
        path = f"/v2/namespaces/{quote(namespace)}/repositories/{quote(name)}/tags"
        tags += [
            TagAge(
                f"{namespace}/{name}",
                str(t["name"]),
                _when(t.get("tag_last_pulled")),
                _when(t.get("tag_last_pushed")),
            )
            for t in _pages(hub, path)
        ]
    plan.delete, plan.keep = select(tags, days, plan.now)
    if apply:
        for t in plan.delete:
            repository = t.repository.split("/", 1)[1]
            path = f"/v2/repositories/{quote(namespace)}/{quote(repository)}/tags/{quote(t.tag)}/"
            try:
                hub.call("DELETE", path)
            except PermissionDenied as e:  # Hub: 403 "access denied: insufficient scope"
                raise PermissionDenied(
                    f"Docker Hub refused to delete {t.repository}:{t.tag} ({e}): the token in "
                    f"${token_variable} may not delete; it needs Read, Write, Delete (the "
                    "notebook's prune token, prune-secret.yaml; BinderHub's is Read & Write)"
                ) from None
            plan.deleted.append(t)
        plan.applied = True
    return plan


def cronjob_manifest(
    image_prefix: str,
    days: int,
    *,
    username: str,
    schedule: str = DEFAULT_SCHEDULE,
) -> dict[str, Any]:
    """A Kubernetes CronJob running ``binderhub-registry prune --apply`` on ``schedule``
    (:func:`~.providers.dockerhub.prune_cronjob`), the token from a Secret."""
    namespace, name_prefix = split_prefix(image_prefix)
    check_days(days)
    return prune_cronjob(namespace, name_prefix, days, username=username, schedule=schedule)
