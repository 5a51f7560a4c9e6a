"""Artifact Registry keeps the registry small: the notebook sets a DELETE cleanup policy on the
repository (``packageNamePrefixes: [prefix]``, ``olderThan: retention_days``), and the fake runs
it on a clock the test moves (``POST /_sandbox/clock``).

Shown with the clock advanced: an image under the prefix uploaded too long ago goes; one
uploaded recently stays (Artifact Registry counts from the upload: it has no pull time); an
image outside the prefix stays; a KEEP policy wins over a DELETE one; Google's own dry run
(``cleanupPolicyDryRun``) deletes nothing. A dry run shows the policy and changes nothing, a
rerun changes nothing, teardown removes only this deployment's policy. Driven in-process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import Runner, sandbox
from binderhub_registry.providers import google
from binderhub_registry.push import push_auth, push_image
from binderhub_registry.registry_http import RegistryHTTP
from binderhub_registry.sandbox.google.retention import Version, check_policies, selected
from binderhub_registry.verify import VerifyHints

from .helpers import signed_in, whole_run

pytestmark = pytest.mark.sandbox

DAY = 86400


def deployed(run: Runner, out: Path, **overrides: Any) -> google.GoogleConnection:
    """The notebook's steps, the cleanup policy among them."""
    conn = signed_in(run, out, **overrides)
    whole_run(run, conn)
    run.step("cleanup policy", google.ensure_cleanup_policy, conn)
    return conn


def push(box: sandbox.Sandbox, conn: google.GoogleConnection, package: str) -> str:
    """Push the tiny image as ``<package>:v1`` with BinderHub's key; its image path."""
    assert conn.secret is not None
    http = RegistryHTTP("_json_key", conn.secret, box.ca_file)
    p, url = conn.params, f"https://{conn.host}"
    image = f"{p.project_id}/{p.repository}/{package}"
    auth = push_auth(http, url, image, "pull,push", check="push", hints=VerifyHints())
    push_image(http, url, image, "v1", auth, hints=VerifyHints())
    return image


def images(box: sandbox.Sandbox) -> dict[str, list[str]]:
    """Every image of every repository, with its tags."""
    found: dict[str, list[str]] = {}
    for registry in box.state()["google"]["registries"]:
        found |= registry["repositories"]
    return found


def repository(box: sandbox.Sandbox, conn: google.GoogleConnection) -> dict[str, Any]:
    """The repository as Artifact Registry answers it."""
    answer: dict[str, Any] = conn.registry.repositories().get(name=conn.repository_name).execute()
    return answer


def row(run: Runner, title: str) -> tuple[str, str]:
    found = [r for r in run.checklist.rows if r.title == title][-1]
    return found.status, found.detail


def test_an_old_image_under_the_prefix_goes_a_recent_one_and_others_stay(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = deployed(run, tmp_path / "values")
    prefix = conn.params.prefix
    status, detail = row(run, "cleanup policy")
    assert status == "created"
    assert detail.startswith("cleanupPolicyDryRun is off")  # Google's own dry run, first
    live = repository(fresh, conn)["cleanupPolicies"][google.policy_id(conn)]
    assert live["action"] == "DELETE"
    assert live["condition"] == {
        "tagState": "ANY",
        "packageNamePrefixes": [prefix],
        "olderThan": f"{30 * DAY}s",
    }
    old = push(fresh, conn, f"{prefix}old")
    outside = push(fresh, conn, "base-image")
    assert fresh.advance_clock(20)["google"] == {"deleted": []}
    new = push(fresh, conn, f"{prefix}new")
    deleted = fresh.advance_clock(15)["google"]["deleted"]
    under = f"{conn.params.project_id}/{conn.params.repository}/{prefix}"
    assert f"{old}:v1" in deleted  # verify's test image, as old, goes too
    assert all(d.startswith(under) for d in deleted)
    left = images(fresh)
    assert old not in left
    assert left[new] == ["v1"] and left[outside] == ["v1"]  # recent; outside the prefix


def test_a_dry_run_shows_the_policy_and_changes_nothing(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    out = tmp_path / "values"
    planned = Runner(sleep=lambda seconds: None)
    first = signed_in(planned, out, dry_run=True)
    whole_run(planned, first)
    planned.step("cleanup policy", google.ensure_cleanup_policy, first)
    status, detail = row(planned, "cleanup policy")
    assert status == "planned" and "on the new repository" in detail
    assert "not pushed for 30 days" in detail
    conn = signed_in(run, out)
    whole_run(run, conn)  # the repository, without the policy
    before = fresh.state()["google"]
    dry = Runner(sleep=lambda seconds: None)
    again = signed_in(dry, out, dry_run=True, retention_days=7)
    dry.step("cleanup policy", google.ensure_cleanup_policy, again)
    status, detail = row(dry, "cleanup policy")
    assert status == "planned"
    assert f"set cleanup policy {google.policy_id(again)}" in detail
    assert f"starting {conn.params.prefix!r} uploaded more than 7d ago" in detail
    assert "cleanupPolicyDryRun is off" in detail
    assert fresh.state()["google"] == before
    assert "cleanupPolicies" not in repository(fresh, conn)


def test_a_rerun_changes_nothing_and_a_new_retention_updates_it(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    out = tmp_path / "values"
    conn = deployed(run, out)
    patches = [e for e in fresh.log() if e["method"] == "PATCH"]
    rerun = Runner(sleep=lambda seconds: None)
    deployed(rerun, out)
    assert row(rerun, "cleanup policy")[0] == "reused"
    assert [e for e in fresh.log() if e["method"] == "PATCH"] == patches
    changed = Runner(sleep=lambda seconds: None)
    deployed(changed, out, retention_days=7)
    assert row(changed, "cleanup policy")[0] == "updated"
    live = repository(fresh, conn)["cleanupPolicies"][google.policy_id(conn)]
    assert live["condition"]["olderThan"] == f"{7 * DAY}s"
    kept = Runner(sleep=lambda seconds: None)
    deployed(kept, out, retention_days=0)  # 0: every image is kept
    assert row(kept, "cleanup policy")[0] == "deleted"
    assert "cleanupPolicies" not in repository(fresh, conn)
    assert google.CLEANUP_POLICY not in google.Record(out, "google").created


def test_teardown_removes_only_this_deployments_policy(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """Two deployments on one repository: the second's teardown leaves the repository (not
    its own) and the first's policy."""
    first = deployed(run, tmp_path / "a", service_account="")
    second = deployed(run, tmp_path / "b", service_account="", retention_days=7)
    ids = {google.policy_id(first), google.policy_id(second)}
    assert set(repository(fresh, first)["cleanupPolicies"]) == ids
    down = Runner(sleep=lambda seconds: None)
    conn = signed_in(down, tmp_path / "b", service_account="", teardown=True)
    asyncio.run(down.astep("teardown", conn.teardown))
    assert row(down, "teardown")[0] == "deleted"
    assert set(repository(fresh, first)["cleanupPolicies"]) == {google.policy_id(first)}


def test_googles_own_dry_run_deletes_nothing_and_is_said_first(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = deployed(run, tmp_path / "values")
    conn.registry.repositories().patch(
        name=conn.repository_name,
        updateMask="cleanupPolicyDryRun",
        body={"cleanupPolicyDryRun": True},
    ).execute()
    old = push(fresh, conn, f"{conn.params.prefix}old")
    ran = fresh.advance_clock(31)["google"]
    assert ran["deleted"] == [] and f"{old}:v1" in ran["would_delete"]
    assert images(fresh)[old] == ["v1"]
    rerun = Runner(sleep=lambda seconds: None)
    deployed(rerun, tmp_path / "values")
    status, detail = row(rerun, "cleanup policy")
    assert status == "reused" and detail.startswith("cleanupPolicyDryRun is ON")
    assert repository(fresh, conn)["cleanupPolicyDryRun"] is True  # left as found


def test_storage_used_is_the_repositorys_size(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = deployed(run, tmp_path / "values")
    push(fresh, conn, f"{conn.params.prefix}sized")
    result = asyncio.run(conn.report_storage())
    assert result.status == "done"
    assert result.value is not None and result.value.used_bytes > 0
    assert result.value.limit_bytes is None and "no limit" in result.detail


def version(package: str, age_days: float, tags: list[str], now: float) -> Version:
    return Version(package, f"p/r/{package}", f"sha256:{package}", tags, now - age_days * DAY)


def test_keep_wins_over_delete_and_most_recent_versions_are_kept() -> None:
    now = 1_000_000_000.0
    delete = {
        "id": "old",
        "action": "DELETE",
        "condition": {"tagState": "ANY", "olderThan": f"{DAY}s"},
    }
    keep = {"id": "keep", "action": "KEEP", "condition": {"tagPrefixes": ["release"]}}
    recent = {"id": "recent", "action": "KEEP", "mostRecentVersions": {"keepCount": 1}}
    a = version("a", 5, ["release-1"], now)
    b = version("b", 5, ["v1"], now)
    c = version("c", 0.5, ["v1"], now)
    assert selected({"old": delete, "keep": keep}, [a, b, c], now) == [b]
    b2 = version("b", 3, ["v2"], now)
    b2.digest = "sha256:b2"
    assert selected({"old": delete, "recent": recent}, [b, b2], now) == [b]


@pytest.mark.parametrize(
    ("policies", "words"),
    [
        ({"x": {"action": "DELETE", "condition": {"olderThan": "30d"}}}, "duration"),
        ({"x": {"action": "PURGE", "condition": {}}}, "DELETE or KEEP"),
        ({f"p{i}": {"action": "KEEP", "condition": {}} for i in range(11)}, "at most 10"),
    ],
)
def test_policies_are_checked_as_the_api_does(policies: dict[str, Any], words: str) -> None:
    wrong = check_policies(policies)
    assert wrong is not None and words in wrong
