"""IAM policies (version 3), read-modify-written with their etag: the repository's and a
service account's own; the writer role on the repository."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import CloudError, TransientCloudError
from ...steps import Result
from ..contract import creates, if_present
from .errors import _mapped
from .params import NAME, ROLE
from .session import GoogleSession

#: IAM policies are read and written at version 3: a lower read shows someone's conditional
#: binding as ``<role>_withcond_<hash>`` without its condition, and writing that back is
#: refused or loses the condition (cloud.google.com/iam/docs/troubleshooting-withcond;
#: Policy.version: "Operations affecting conditional role bindings must specify version 3").
POLICY_VERSION = 3


def _unconditional(binding: dict[str, Any], role: str) -> bool:
    """``binding`` grants ``role`` with no condition: the only kind this notebook makes; a
    conditional one is someone else's and stays as it is."""
    return binding["role"] == role and not binding.get("condition")


#: A policy change: the bindings as read -> the bindings to write, or None (nothing to change).
Change = Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]
#: A refused write that a fresh read may fix: the etag was stale (IAM's ABORTED; the IAM admin
#: API's "There were concurrent policy changes").
_CONFLICTS = ("ABORTED", "concurrent policy changes")


def _read_modify_write(
    read: Callable[[], tuple[Any, list[dict[str, Any]]]],
    write: Callable[[Any, list[dict[str, Any]]], None],
    change: Change,
    what: str,
) -> bool:
    """``read()`` a policy and its bindings, ``change`` them, ``write`` them back with the
    etag read; a stale etag starts over (five times at most). False: nothing to change.

    A binding left with no member is not written back (IAM: "Each of the bindings must contain
    at least one principal", policy.proto).
    """
    for _ in range(5):
        policy, bindings = read()
        changed = change(bindings)
        if changed is None:
            return False
        try:
            write(policy, [b for b in changed if b["members"]])
            return True
        except CloudError as e:
            if not any(conflict in str(e) for conflict in _CONFLICTS):
                raise
    raise TransientCloudError(f"{NAME}: {what} kept changing", 409)


def _edit_policy(conn: GoogleSession, change: Change) -> bool:
    """Read-modify-write the repository's IAM policy (:func:`_read_modify_write`).

    Read and written at version 3 (:data:`POLICY_VERSION`), so every binding comes back whole,
    conditions included, and ``change`` sees (and keeps) the ones it did not make.
    """
    repositories = conn.registry.repositories()

    def read() -> tuple[Any, list[dict[str, Any]]]:
        with _mapped():
            policy = repositories.getIamPolicy(
                resource=conn.repository_name, options_requestedPolicyVersion=POLICY_VERSION
            ).execute()
        members = [
            dict(b) | {"members": list(b.get("members", []))} for b in policy.get("bindings", [])
        ]
        return policy, members

    def write(policy: Any, bindings: list[dict[str, Any]]) -> None:
        # all else in the policy (auditConfigs) as read
        new = policy | {"version": POLICY_VERSION, "bindings": bindings}
        if policy.get("etag"):
            new["etag"] = policy["etag"]
        with _mapped():
            repositories.setIamPolicy(resource=conn.repository_name, body={"policy": new}).execute()

    return _read_modify_write(read, write, change, "the repository's policy")


def _edit_account_policy(conn: GoogleSession, change: Change) -> bool:
    """Read-modify-write the service account's own IAM policy (gRPC), as :func:`_edit_policy`."""
    from google.iam.v1 import (  # type: ignore[import-untyped]
        iam_policy_pb2,
        options_pb2,
        policy_pb2,
    )

    options = options_pb2.GetPolicyOptions(requested_policy_version=POLICY_VERSION)

    def read() -> tuple[Any, list[dict[str, Any]]]:
        with _mapped():
            policy = conn.iam.get_iam_policy(
                request=iam_policy_pb2.GetIamPolicyRequest(
                    resource=conn.account_name, options=options
                )
            )
        bindings = [
            {"role": b.role, "members": list(b.members)}
            | ({"condition": b.condition} if b.HasField("condition") else {})
            for b in policy.bindings
        ]
        return policy, bindings

    def write(policy: Any, bindings: list[dict[str, Any]]) -> None:
        new = policy_pb2.Policy(
            version=POLICY_VERSION,
            etag=policy.etag,
            bindings=[policy_pb2.Binding(**b) for b in bindings],
            audit_configs=policy.audit_configs,
        )
        request = iam_policy_pb2.SetIamPolicyRequest(resource=conn.account_name, policy=new)
        with _mapped():
            conn.iam.set_iam_policy(request=request)

    return _read_modify_write(read, write, change, "the service account's policy")


def _adding(role: str, member: str, record: Callable[[], None]) -> Change:
    """The policy change that grants ``role`` to ``member`` (None: it has it already).

    ``record`` runs just before the write: after a crash or a lost answer the rerun finds the
    member present, and unrecorded it would pass for found and never be removed. A write that
    failed leaves it recorded but absent, which removal treats as done.
    """

    def add(bindings: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        for b in bindings:
            if _unconditional(b, role):
                if member in b["members"]:
                    return None
                b["members"].append(member)
                break
        else:
            bindings = [*bindings, {"role": role, "members": [member]}]
        record()
        return bindings

    return add


def _removing(role: str, member: str) -> Change:
    """The policy change that takes ``member`` out of ``role`` (None: it is not there);
    other members, and conditional bindings, stay."""

    def remove(bindings: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        changed = False
        for b in bindings:
            if _unconditional(b, role) and member in b["members"]:
                b["members"].remove(member)
                changed = True
        return bindings if changed else None

    return remove


def _revoke(
    conn: GoogleSession, role: str, member: str, edit: Callable[..., bool] = _edit_policy
) -> None:
    """Take ``member`` out of ``role`` on the repository (or through ``edit``: the service
    account's policy); gone (the repository, the account) is fine."""
    if_present(edit, conn, _removing(role, member))


def _grant(
    conn: GoogleSession,
    role: str,
    member: str,
    kind: str,
    would: str,
    edit: Callable[..., bool] = _edit_policy,
) -> bool:
    """Grant ``role`` to ``member`` on the repository (or through ``edit``: the service
    account's policy), once: the change is planned, then recorded as ``kind`` just before the
    write (:func:`_adding`). False: the member had it already."""

    def record() -> None:
        conn.plan(would)
        conn.note(kind, member)

    return edit(conn, _adding(role, member, record))


@creates
def grant_writer(conn: GoogleSession) -> Result[None]:
    """Grant the writer role on the repository alone (least privilege), once; the member is
    recorded, so teardown removes exactly it."""
    p = conn.params
    would = f"grant {ROLE} on the repository to {p.email}"
    if not conn.host:  # the repository is only planned (a dry run): no policy to read
        conn.plan(would)
    if not _grant(conn, ROLE, p.member, "binding", would):
        return Result(None, "reused", f"{p.email} has {ROLE} on the repository")
    return Result(None, "created", f"{ROLE} on the repository for {p.email}")


def _members(conn: GoogleSession, role: str) -> list[str]:
    """The members holding ``role`` on the repository."""
    with _mapped():
        policy = (
            conn.registry.repositories()
            .getIamPolicy(
                resource=conn.repository_name, options_requestedPolicyVersion=POLICY_VERSION
            )
            .execute()
        )
    return [
        m
        for b in policy.get("bindings", [])
        if _unconditional(b, role)
        for m in b.get("members", [])
    ]
