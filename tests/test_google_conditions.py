"""IAM policy edits keep conditional bindings (read and written at policy version 3).

Policies are read and written at version 3; a binding this notebook did not make, conditional
or not, comes back unchanged. The fake answers as IAM does
(cloud.google.com/iam/docs/troubleshooting-withcond; Policy.version in google/iam/v1/policy.proto):
a version 1 read of a conditional policy shows ``<role>_withcond_<hash>`` without the
condition, and a version 1 write over it is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.iam.v1 import iam_policy_pb2, options_pb2, policy_pb2
from google.type import expr_pb2

from binderhub_registry import Runner, sandbox
from binderhub_registry.providers import google
from binderhub_registry.providers.google.iam import _edit_account_policy, _revoke

from .helpers import (
    CONDITION,
    KEYLESS,
    THEIRS,
    repository_policy,
    set_theirs,
    settings,
    up_to_the_key,
)

pytestmark = pytest.mark.sandbox


def without_ours(bindings: list[dict[str, Any]], member: str) -> list[dict[str, Any]]:
    kept = [b | {"members": [m for m in b["members"] if m != member]} for b in bindings]
    return sorted((b for b in kept if b["members"]), key=lambda b: (b["role"], "condition" in b))


@pytest.fixture
def conn(conn: google.GoogleConnection, run: Runner) -> google.GoogleConnection:
    """conftest's connection, up to the service account."""
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    return conn


def test_a_version_1_read_shows_withcond_roles_without_conditions(
    conn: google.GoogleConnection,
) -> None:
    set_theirs(conn)
    old = repository_policy(conn, 1)
    assert old["version"] == 1
    roles = sorted(b["role"] for b in old["bindings"])
    assert roles[0] == google.PULL_ROLE and all("condition" not in b for b in old["bindings"])
    assert [r.rpartition("_withcond_")[0] for r in roles[1:]] == sorted(
        [google.PULL_ROLE, google.ROLE]
    )
    assert all(len(r.rpartition("_withcond_")[2]) == 20 for r in roles[1:])
    # writing that back at version 1 is refused: the conditions would be lost
    body = {"policy": {"version": 1, "etag": old["etag"], "bindings": old["bindings"]}}
    with pytest.raises(Exception, match="cannot be less than the existing policy version"):
        conn.registry.repositories().setIamPolicy(
            resource=conn.repository_name, body=body
        ).execute()


def test_the_writer_grant_and_its_removal_keep_every_conditional_binding(
    conn: google.GoogleConnection, run: Runner, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    set_theirs(conn)
    run.step("role", google.grant_writer, conn)
    policy = repository_policy(conn, 3)
    assert policy["version"] == 3
    ours = [b for b in policy["bindings"] if conn.params.member in b["members"]]
    assert ours == [{"role": google.ROLE, "members": [conn.params.member]}]  # unconditional
    assert without_ours(policy["bindings"], conn.params.member) == without_ours(THEIRS, "")
    _revoke(conn, google.ROLE, conn.params.member)
    after = repository_policy(conn, 3)
    assert without_ours(after["bindings"], "") == without_ours(THEIRS, "")


def test_the_pull_grants_keep_every_conditional_binding(
    conn: google.GoogleConnection, run: Runner, tmp_path: Path
) -> None:
    set_theirs(conn)
    run.step("role", google.grant_writer, conn)
    run.step("key", google.ensure_key, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    policy = repository_policy(conn, 3)
    readers = [b for b in policy["bindings"] if conn.params.pull_member in b["members"]]
    assert readers == [
        {
            "role": google.PULL_ROLE,
            "members": sorted(["user:kim@example.com", conn.params.pull_member]),
        }
    ]
    assert sum(1 for b in policy["bindings"] if b.get("condition") == CONDITION) == 2


def account_policy(conn: google.GoogleConnection, version: int) -> Any:
    return conn.iam.get_iam_policy(
        request=iam_policy_pb2.GetIamPolicyRequest(
            resource=conn.account_name,
            options=options_pb2.GetPolicyOptions(requested_policy_version=version),
        )
    )


def test_the_workload_identity_binding_keeps_the_accounts_conditional_bindings(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    settings(fresh, "google", workload_identity_pools=["binderhub-demo"])
    p = google.validate(KEYLESS, output_dir=str(tmp_path / "values"))
    conn = run.step("sign in", google.sign_in, p)
    up_to_the_key(run, conn)
    theirs = policy_pb2.Binding(
        role="roles/iam.serviceAccountTokenCreator",
        members=["user:dana@example.com"],
        condition=expr_pb2.Expr(**CONDITION),
    )
    current = account_policy(conn, 3)
    conn.iam.set_iam_policy(
        request=iam_policy_pb2.SetIamPolicyRequest(
            resource=conn.account_name,
            policy=policy_pb2.Policy(version=3, etag=current.etag, bindings=[theirs]),
        )
    )
    run.step("workload identity", google.bind_workload_identity, conn)
    after = account_policy(conn, 3)
    assert after.version == 3
    assert theirs in after.bindings
    ours = [b for b in after.bindings if p.workload_member in b.members]
    assert [(b.role, b.HasField("condition")) for b in ours] == [
        (google.WORKLOAD_IDENTITY_USER, False)
    ]
    _revoke(conn, google.WORKLOAD_IDENTITY_USER, p.workload_member, _edit_account_policy)
    assert list(account_policy(conn, 3).bindings) == [theirs]
    # a version 1 read shows it as a _withcond_ role
    (old,) = account_policy(conn, 1).bindings
    assert old.role.startswith("roles/iam.serviceAccountTokenCreator_withcond_")
    assert not old.HasField("condition")
