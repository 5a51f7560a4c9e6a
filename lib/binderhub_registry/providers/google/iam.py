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


def _edit_policy(
    conn: GoogleSession, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]
) -> bool:
    """Read-modify-write the repository's IAM policy; a stale etag (ABORTED) starts over.

    Read and written at version 3 (:data:`POLICY_VERSION`), so every binding comes back whole,
    conditions included, and ``change`` sees (and keeps) the ones it did not make.
    """
    repositories = conn.registry.repositories()
    for _ in range(5):
        with _mapped():
            policy = repositories.getIamPolicy(
                resource=conn.repository_name, options_requestedPolicyVersion=POLICY_VERSION
            ).execute()
        bindings = [
            dict(b) | {"members": list(b.get("members", []))} for b in policy.get("bindings", [])
        ]
        changed = change(bindings)
        if changed is None:
            return False
        # all else in the policy (auditConfigs) as read; a binding left with no member goes
        # (IAM: "Each of the bindings must contain at least one principal", policy.proto)
        new = policy | {"version": POLICY_VERSION, "bindings": [b for b in changed if b["members"]]}
        if policy.get("etag"):
            new["etag"] = policy["etag"]
        try:
            with _mapped():
                repositories.setIamPolicy(
                    resource=conn.repository_name, body={"policy": new}
                ).execute()
            return True
        except CloudError as e:
            if "ABORTED" not in str(e):
                raise
    raise TransientCloudError(f"{NAME}: the repository's policy kept changing", 409)


def _edit_account_policy(
    conn: GoogleSession, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]
) -> bool:
    """Read-modify-write the service account's own IAM policy (gRPC); ABORTED starts over."""
    from google.iam.v1 import (  # type: ignore[import-untyped]
        iam_policy_pb2,
        options_pb2,
        policy_pb2,
    )

    options = options_pb2.GetPolicyOptions(requested_policy_version=POLICY_VERSION)
    for _ in range(5):
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
        changed = change(bindings)
        if changed is None:
            return False
        new = policy_pb2.Policy(
            version=POLICY_VERSION,
            etag=policy.etag,
            bindings=[
                policy_pb2.Binding(role=b["role"], members=b["members"], condition=b["condition"])
                if "condition" in b
                else policy_pb2.Binding(role=b["role"], members=b["members"])
                for b in changed
                if b["members"]
            ],
            audit_configs=policy.audit_configs,
        )
        try:
            with _mapped():
                conn.iam.set_iam_policy(
                    request=iam_policy_pb2.SetIamPolicyRequest(
                        resource=conn.account_name, policy=new
                    )
                )
            return True
        except CloudError as e:
            if "ABORTED" not in str(e) and "concurrent policy changes" not in str(e):
                raise
    raise TransientCloudError(f"{NAME}: the service account's policy kept changing", 409)


def _adding(
    role: str, member: str, record: Callable[[], None]
) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]:
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


def _removing(
    role: str, member: str
) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]:
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
