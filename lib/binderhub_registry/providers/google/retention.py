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

import json
from collections.abc import Mapping
from typing import Any

from ...binderhub import RegistryValues, split_image_reference
from ...errors import CloudError
from ...steps import Result
from ...usage import NotRead, Usage, retention_text, sandbox_of
from ..contract import creates
from .errors import _mapped
from .params import MARK, NAME, SCOPES, USERNAME
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
    return size_usage(repo, conn.params.repository_id)


def size_usage(repo: Mapping[str, Any], repository_id: str) -> Usage:
    """A Repository resource's ``sizeBytes``, against no limit."""
    return Usage(
        int(repo.get("sizeBytes") or 0),
        None,
        f"Artifact Registry repository {repository_id} (sizeBytes; no quota: "
        "storage is billed per GiB stored)",
    )


#: gcr.io hosts' repositories: (location, repository id) (transition/setup-gcr-repo).
_GCR = {"gcr.io": ("us", "gcr.io"), "us.gcr.io": ("us", "us.gcr.io")}
_GCR |= {"eu.gcr.io": ("europe", "eu.gcr.io"), "asia.gcr.io": ("asia", "asia.gcr.io")}


def usage_for_values(
    values: RegistryValues,
    env: Mapping[str, str],
    created: Mapping[str, Any],
    ca_file: str | None,
) -> Usage | NotRead | None:
    """The repository's ``sizeBytes`` for ``binderhub-registry verify``, read with BinderHub's
    own key: its Artifact Registry Writer role on the repository holds
    ``artifactregistry.repositories.get`` (Google's IAM roles reference for Artifact
    Registry). Values without a key (keyless) read with Application Default Credentials
    when GOOGLE_APPLICATION_CREDENTIALS is set; the sandbox's with its seeded key."""
    import requests
    from google.auth.transport.requests import AuthorizedSession, Request
    from google.oauth2 import service_account

    host, path = split_image_reference(values.image_prefix)
    name = str(created.get("repository") or "")
    if not name:
        project, _, rest = path.partition("/")
        location, repo_id = _GCR.get(host) or (host.removesuffix("-docker.pkg.dev"), rest)
        name = f"projects/{project}/locations/{location}/repositories/{repo_id.split('/')[0]}"
    box = sandbox_of(values)
    base = (
        f"{box.url}/google/artifactregistry" if box else "https://artifactregistry.googleapis.com"
    )
    credentials: Any
    if values.username == USERNAME:
        info = json.loads(values.password.reveal())
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
    elif box is not None:
        info = box.credentials("google") | {"type": "service_account"}
        info["token_uri"] = f"{box.url}/google/oauth2/token"
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
    elif env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        import google.auth

        credentials, _ = google.auth.default(scopes=SCOPES)
    else:
        return NotRead(
            "these values hold no service account key (keyless)", "GOOGLE_APPLICATION_CREDENTIALS"
        )
    session = requests.Session()
    authed = AuthorizedSession(credentials, auth_request=Request(session))  # type: ignore[no-untyped-call]
    for each in (session, authed):
        each.verify = (box.ca_file if box else ca_file) or True
        # requests lets REQUESTS_CA_BUNDLE override a session's verify: not for the sandbox's
        each.trust_env = box is None
    answer = authed.get(f"{base}/v1/{name}", timeout=30)
    if answer.status_code == 403:
        return NotRead(
            f"the values' account may not read repository {name} (403)",
            "GOOGLE_APPLICATION_CREDENTIALS",
        )
    if answer.status_code >= 400:
        raise CloudError(
            f"repositories.get {name}: {answer.status_code}", status=answer.status_code
        )
    return size_usage(answer.json(), name.rsplit("/", 1)[-1])
