"""Keeping the registry small: a cleanup policy on the repository, and its size.

Artifact Registry deletes versions by the repository's **cleanup policies**
(``Repository.cleanupPolicies``, artifactregistry v1; cloud.google.com/artifact-registry/docs/
repositories/cleanup-policy): this notebook sets one DELETE policy, id
``binderhub-registry-<deployment id>`` (the mark: Google keeps the id), with the condition
``tagState: ANY``, ``packageNamePrefixes: [<prefix>]`` and ``olderThan: <days>d`` (sent as
google-duration seconds, ``"2592000s"``, as the API's JSON form; gcloud's policy files write
``"30d"``). Only packages (images) under ``prefix`` are selected, so other images in the
repository stay, and any KEEP policy wins over it (cleanup-policy-overview).

Artifact Registry keeps no pull time a policy can read: ``olderThan`` counts from the
version's **upload**, so the rule is "not pushed for N days" (an image launched every day but
built 31 days ago goes, and BinderHub rebuilds it on its next launch).

Google's own dry run (``cleanupPolicyDryRun``): with it on, the policies only log what they
would delete. The notebook's ``dry_run`` changes nothing at all, this flag included; a real
run leaves the flag as it finds it and says which it is, first. To preview on Google's side,
``gcloud artifacts repositories set-cleanup-policies <repository> --location=<location>
--policy=<file> --dry-run`` (``--no-dry-run`` to delete again).

The policy is changed by a read-modify-write of the whole map (``repositories.patch``,
``updateMask=cleanupPolicies``), so other policies on the repository stay; teardown removes
only this deployment's id. ``retention_days = 0`` removes it (keep everything).
"""

from __future__ import annotations

from typing import Any

from ...errors import CloudError
from ...steps import Result
from ...usage import Usage, retention_text
from ..contract import creates
from .errors import _mapped
from .params import MARK, NAME
from .repository import _find_repository
from .session import GoogleSession, _not_ours

__all__ = [
    "CLEANUP_POLICY",
    "MAX_POLICIES",
    "delete_cleanup_policy",
    "ensure_cleanup_policy",
    "policy_id",
    "repository_size",
    "wanted_policy",
]

#: The record's kind for the policy this deployment set.
CLEANUP_POLICY = "cleanup_policy"
#: Cleanup policies a repository may have (cleanup-policy: "a maximum of 10").
MAX_POLICIES = 10
_DAY = 86400


def policy_id(conn: GoogleSession) -> str:
    """This deployment's policy id: ``binderhub-registry-<deployment id>``."""
    return f"{MARK}-{conn.record.deployment}"


def wanted_policy(conn: GoogleSession) -> dict[str, Any]:
    """The DELETE policy for ``retention_days`` on packages under ``prefix``."""
    p = conn.params
    return {
        "id": policy_id(conn),
        "action": "DELETE",
        "condition": {
            "tagState": "ANY",
            "packageNamePrefixes": [p.prefix],
            "olderThan": f"{p.retention_days * _DAY}s",
        },
    }


def _same(live: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """The live policy does what ``wanted`` says (the answer may order or spell it its way)."""
    if live is None or live.get("action") != wanted["action"]:
        return False
    have, want = live.get("condition") or {}, wanted["condition"]
    return (
        have.get("tagState") == want["tagState"]
        and list(have.get("packageNamePrefixes") or []) == want["packageNamePrefixes"]
        and str(have.get("olderThan", "")).rstrip("s").split(".")[0]
        == want["olderThan"].rstrip("s")
        and not ({"tagPrefixes", "versionNamePrefixes", "newerThan"} & set(have))
    )


def _text(conn: GoogleSession) -> str:
    p = conn.params
    return (
        f"DELETE any version of images starting {p.prefix!r} uploaded more than "
        f"{p.retention_days}d ago ({retention_text(p.retention_days, 'pushed')})"
    )


def _dry_run_words(repo: dict[str, Any]) -> str:
    """Google's own dry-run flag, in words: said first in the step's line."""
    if repo.get("cleanupPolicyDryRun"):
        return (
            "cleanupPolicyDryRun is ON: Google only logs what the policies would delete (turn "
            "it off with gcloud artifacts repositories set-cleanup-policies ... --no-dry-run)"
        )
    return "cleanupPolicyDryRun is off: the policies delete"


def _patch(conn: GoogleSession, policies: dict[str, Any]) -> None:
    """Write the whole map (``updateMask=cleanupPolicies`` replaces it)."""
    with _mapped():
        conn.registry.repositories().patch(
            name=conn.repository_name,
            updateMask="cleanupPolicies",
            body={"cleanupPolicies": policies},
        ).execute()


@creates
def ensure_cleanup_policy(conn: GoogleSession) -> Result[dict[str, Any] | None]:
    """Set (or update) this deployment's DELETE policy on the repository; with
    ``retention_days = 0``, remove it. A rerun with the same policy changes nothing."""
    p, pid = conn.params, policy_id(conn)
    repo = _find_repository(conn) if conn.api_enabled else None
    if repo is None:
        if p.retention_days == 0:
            return Result(None, "skipped", retention_text(0))
        # a dry run that plans the repository: the real run sets the policy on the new one
        conn.plan(f"set cleanup policy {pid} on the new repository: {_text(conn)}")
        raise CloudError(f"{NAME}: repository {conn.repository_name} not found: rerun step 3")
    policies = dict(repo.get("cleanupPolicies") or {})
    live, flag = policies.get(pid), _dry_run_words(repo)
    if p.retention_days == 0:
        if live is None:
            return Result(None, "skipped", f"{retention_text(0)}; no cleanup policy set")
        conn.plan(f"remove cleanup policy {pid} ({retention_text(0)})")
        policies.pop(pid)
        _patch(conn, policies)
        conn.note(CLEANUP_POLICY, None)
        return Result(None, "deleted", f"cleanup policy {pid} removed: {retention_text(0)}")
    wanted = wanted_policy(conn)
    if _same(live, wanted):
        if conn.record.created.get(CLEANUP_POLICY) != pid:  # set, then a crash before the record
            conn.note(CLEANUP_POLICY, pid)
        return Result(wanted, "reused", f"{flag}; policy {pid}: {_text(conn)}")
    if live is None and len(policies) >= MAX_POLICIES:
        raise CloudError(
            f"{NAME}: repository {conn.repository_name} has {len(policies)} cleanup policies, "
            f"the most Artifact Registry allows: remove one, or set retention_days = 0"
        )
    verb = "update" if live else "set"
    conn.create(
        CLEANUP_POLICY,
        f"{verb} cleanup policy {pid} on {conn.repository_name}: {_text(conn)} ({flag})",
        lambda: _patch(conn, policies | {pid: wanted}),
        pending=pid,  # first: a lost answer leaves it ours
        keep=lambda _: pid,
    )
    status = "updated" if live else "created"
    return Result(wanted, status, f"{flag}; policy {pid}: {_text(conn)}")


def delete_cleanup_policy(conn: GoogleSession, recorded: Any) -> None:
    """Teardown: remove this deployment's policy (its id, as recorded) from the repository,
    leaving every other policy; gone already (the policy or the repository) is fine."""
    pid = policy_id(conn)
    if recorded != pid:
        raise _not_ours("the cleanup policy", recorded, pid)
    repo = _find_repository(conn)
    policies = dict((repo or {}).get("cleanupPolicies") or {})
    if pid not in policies:
        return
    policies.pop(pid)
    _patch(conn, policies)


def repository_size(conn: GoogleSession) -> Usage | None:
    """The repository's ``sizeBytes`` (no quota: Artifact Registry bills storage per GiB)."""
    if not conn.api_enabled:
        return None
    repo = _find_repository(conn)
    if repo is None:
        return None
    return Usage(
        int(repo.get("sizeBytes") or 0),
        None,
        f"Artifact Registry repository {conn.params.repository_id} (sizeBytes; no quota: "
        "storage is billed per GiB stored)",
    )
