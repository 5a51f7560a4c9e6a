"""Harbor keeps the registry small: the notebook's tag retention policy on the project, and the
fake's runs of it on the sandbox's clock (``POST /_sandbox/clock``).

The policy retains, in repositories ``<prefix>**``, tags pulled or pushed within
``retention_days`` days; Harbor deletes every other tag of those repositories at its weekly run
and touches no other repository (Harbor's docs, "Create Tag Retention Rules"). Images are
pushed and pulled as the seeded admin, each with its own content (one artifact per tag).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import requests

from binderhub_registry import sandbox
from binderhub_registry.providers import harbor
from binderhub_registry.sandbox.harbor.retention import TagTimes, doublestar, run_policy
from binderhub_registry.secrets import Secret

from .helpers import (
    HARBOR_DEFAULTS,
    admin_api,
    full_run,
    harbor_pull,
    harbor_push,
    harbor_steps,
    ovh_params,
    runner,
)

PROJECT = "binderhub"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def tags(box: sandbox.Sandbox) -> dict[str, list[str]]:
    found: dict[str, list[str]] = box.state()["harbor"]["repositories"]
    return found


def bound_policy(box: sandbox.Sandbox, project: str = PROJECT) -> dict[str, Any] | None:
    """The policy the project's metadata names, as Harbor answers it (None: none bound)."""
    api = admin_api(box)
    found = harbor.find_project(api, project)
    assert found is not None
    policy_id = found["metadata"].get("retention_id")
    if not policy_id:
        return None
    answer: dict[str, Any] = api.call("GET", f"/retentions/{policy_id}")
    return answer


def test_the_default_run_sets_the_policy_and_old_images_go(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    conn, _ = harbor_steps(tmp_path)
    result = harbor.ensure_retention(conn)
    assert result.status == "created"
    assert "binder-**" in result.detail and "not pulled for 30 days" in result.detail
    policy = bound_policy(fresh)
    assert policy is not None and policy["scope"] == {
        "level": "project",
        "ref": conn.project["project_id"],  # type: ignore[index]
    }
    assert [r["template"] for r in policy["rules"]] == ["nDaysSinceLastPull", "nDaysSinceLastPush"]
    assert policy["trigger"]["settings"]["cron"] == harbor.RETENTION_CRON
    harbor_push(fresh, f"{PROJECT}/binder-old", "a1")
    harbor_push(fresh, f"{PROJECT}/binder-used", "b1")
    harbor_push(fresh, f"{PROJECT}/other-image", "c1")  # outside the prefix
    harbor_push(fresh, "library/binder-elsewhere", "d1")  # another project
    assert fresh.advance_clock(20)["harbor"] == {"deleted": []}  # all pushed within 30 days
    harbor_pull(fresh, f"{PROJECT}/binder-used", "b1")
    ran = fresh.advance_clock(15)  # 35 days since the pushes, 15 since the pull
    assert ran["harbor"] == {"deleted": [f"{PROJECT}/binder-old:a1"]}
    assert tags(fresh) == {
        f"{PROJECT}/binder-used": ["b1"],
        f"{PROJECT}/other-image": ["c1"],
        "library/binder-elsewhere": ["d1"],
    }
    assert fresh.advance_clock(31)["harbor"] == {"deleted": [f"{PROJECT}/binder-used:b1"]}
    assert f"{PROJECT}/other-image" in tags(fresh)


def test_only_a_push_or_pull_docker_registry_carried_out_dates_a_tag(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """The registry front's record: an anonymous GET docker-registry refuses (401) is no
    pull, a manifest PUT it refuses (400, a layer it does not have) is no push."""
    conn, _ = harbor_steps(tmp_path)
    assert harbor.ensure_retention(conn).status == "created"
    harbor_push(fresh, f"{PROJECT}/binder-old", "a1")
    assert fresh.advance_clock(20)["harbor"] == {"deleted": []}
    url = f"{fresh.registries['harbor']}/v2/{PROJECT}/binder-old/manifests/a1"
    anonymous = requests.get(url, verify=fresh.ca_file, timeout=30)
    assert anonymous.status_code == 401
    missing = "sha256:" + "0" * 64
    broken = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing},
        "layers": [],
    }
    creds = fresh.credentials("harbor")
    refused = requests.put(
        url,
        json=broken,
        headers={"Content-Type": OCI_MANIFEST},
        auth=(creds["username"], creds["password"]),
        verify=fresh.ca_file,
        timeout=30,
    )
    assert refused.status_code == 400, refused.text
    # 35 days since the one push that happened, never pulled
    assert fresh.advance_clock(15)["harbor"] == {"deleted": [f"{PROJECT}/binder-old:a1"]}


def test_a_dry_run_shows_the_policy_and_changes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    values = HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values"), "dry_run": True}
    conn = harbor.sign_in(harbor.validate(values)).value
    harbor.ensure_project(conn)
    planned = harbor.ensure_retention(conn)  # the project does not exist yet
    assert planned.status == "planned"
    assert planned.detail.startswith("would set a tag retention policy: in repositories binder-**")
    harbor_steps(tmp_path)  # now it exists, without a policy
    conn = harbor.sign_in(harbor.validate(values)).value
    harbor.ensure_project(conn)
    planned = harbor.ensure_retention(conn)
    assert planned.status == "planned" and "not pulled for 30 days" in planned.detail
    assert bound_policy(fresh) is None
    real = harbor.sign_in(harbor.validate(values | {"dry_run": False})).value
    assert "harbor_retention" not in real.record.created  # nothing recorded either


def test_a_rerun_changes_nothing_and_other_days_update_it(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    conn, _ = harbor_steps(tmp_path)
    assert harbor.ensure_retention(conn).status == "created"
    first = bound_policy(fresh)
    again, _ = harbor_steps(tmp_path)
    rerun = harbor.ensure_retention(again)
    assert rerun.status == "reused" and "this notebook's" in rerun.detail
    assert bound_policy(fresh) == first
    week, _ = harbor_steps(tmp_path, retention_days=7)
    changed = harbor.ensure_retention(week)
    assert changed.status == "updated" and "not pulled for 7 days" in changed.detail
    policy = bound_policy(fresh)
    assert policy is not None and policy["id"] == first["id"]  # type: ignore[index]
    assert [r["params"] for r in policy["rules"]] == [
        {"nDaysSinceLastPull": 7},
        {"nDaysSinceLastPush": 7},
    ]
    values = HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values"), "retention_days": 0}
    planned = harbor.sign_in(harbor.validate(values | {"dry_run": True})).value
    harbor.ensure_project(planned)
    assert harbor.ensure_retention(planned).status == "planned"  # a dry run shows the removal
    assert bound_policy(fresh) is not None
    none, _ = harbor_steps(tmp_path, retention_days=0)
    removed = harbor.ensure_retention(none)
    assert removed.status == "deleted" and "this notebook's policy removed" in removed.detail
    assert bound_policy(fresh) is None  # keep everything: the policy this notebook set goes
    assert harbor.ensure_retention(none).status == "skipped"  # and a rerun has nothing to do


def test_teardown_removes_only_the_policy_this_notebook_set(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    api = admin_api(fresh)
    harbor.create_project(api, "theirs")
    harbor.create_project(api, "shared")
    theirs = harbor.find_project(api, "theirs")
    assert theirs is not None
    foreign = harbor.retention_policy(int(theirs["project_id"]), "", 3)
    api.call("POST", "/retentions", json=foreign)
    # a project someone else made and gave a policy: the notebook leaves it as it is
    conn, _ = harbor_steps(tmp_path / "a", harbor_project="theirs")
    kept = harbor.ensure_retention(conn)
    assert kept.status == "skipped" and "did not set" in kept.detail
    # a project someone else made without one: the notebook's policy, removed at teardown
    conn, _ = harbor_steps(tmp_path / "b", harbor_project="shared")
    assert harbor.ensure_retention(conn).status == "created"
    harbor_push(fresh, "shared/binder-x", "t1")
    for out, project in ((tmp_path / "a", "theirs"), (tmp_path / "b", "shared")):
        values = HARBOR_DEFAULTS | {
            "output_dir": str(out / "values"),
            "harbor_project": project,
            "teardown": True,
        }
        down = harbor.sign_in(harbor.validate(values)).value
        assert asyncio.run(down.teardown()).status == "deleted"
    assert bound_policy(fresh, "shared") is None
    assert bound_policy(fresh, "theirs") is not None
    assert tags(fresh) == {"shared/binder-x": ["t1"]}  # teardown deletes no image it did not make


def test_the_fake_applies_harbors_rule_semantics() -> None:
    day = 86400.0
    now = 100 * day
    times = {
        ("p/binder-a", "old"): TagTimes(now - 40 * day),
        ("p/binder-a", "pulled"): TagTimes(now - 40 * day, now - 2 * day),
        ("p/binder-a", "new"): TagTimes(now - 1 * day),
        ("p/other", "old"): TagTimes(now - 90 * day),
        ("q/binder-a", "old"): TagTimes(now - 90 * day),
    }
    policy = harbor.retention_policy(1, "binder-", 30)
    assert run_policy(policy, "p", times, now) == [("p/binder-a", "old")]
    # "retain the most recently pulled" (latestPulledN): the one pulled; never-pulled go
    latest = {
        "rules": [
            {**policy["rules"][0], "template": "latestPulledN", "params": {"latestPulledN": 1}}
        ]
    }
    assert run_policy(latest, "p", times, now) == [("p/binder-a", "new"), ("p/binder-a", "old")]
    assert doublestar("binder-**", "binder-a/b") and not doublestar("binder-*", "binder-a/b")


def test_a_system_admin_schedules_garbage_collection_once(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    api = admin_api(fresh)
    values = HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values"), "dry_run": True}
    dry = harbor.sign_in(harbor.validate(values)).value
    planned = harbor.ensure_gc_schedule(dry)
    assert planned.status == "planned" and harbor.GC_CRON in planned.detail
    assert api.call("GET", "/system/gc/schedule")["schedule"]["type"] == "None"
    conn, _ = harbor_steps(tmp_path)
    made = harbor.ensure_gc_schedule(conn)
    assert made.status == "created"
    assert api.call("GET", "/system/gc/schedule")["schedule"]["cron"] == harbor.GC_CRON
    again, _ = harbor_steps(tmp_path)
    rerun = harbor.ensure_gc_schedule(again)
    assert rerun.status == "reused" and "set by this notebook" in rerun.detail
    down = harbor.sign_in(harbor.validate(values | {"dry_run": False, "teardown": True})).value
    asyncio.run(down.teardown())
    assert api.call("GET", "/system/gc/schedule")["schedule"]["type"] == "None"


def test_someone_elses_garbage_collection_schedule_is_kept(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    api = admin_api(fresh)
    theirs = {"schedule": {"type": "Daily", "cron": "0 0 3 * * *"}, "parameters": {}}
    api.call("POST", "/system/gc/schedule", json=theirs)
    conn, _ = harbor_steps(tmp_path)
    kept = harbor.ensure_gc_schedule(conn)
    assert kept.status == "reused" and "already set" in kept.detail
    values = HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values"), "teardown": True}
    asyncio.run(harbor.sign_in(harbor.validate(values)).value.teardown())
    assert api.call("GET", "/system/gc/schedule")["schedule"]["cron"] == "0 0 3 * * *"


def test_a_credential_that_is_no_system_admin_leaves_garbage_collection_to_one(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """Only a system admin may set ``/system/gc/schedule`` (swagger; Harbor's docs, "Garbage
    Collection": "an account that has Harbor system administrator privileges"). The standalone
    fake seeds only its admin; OVHcloud's API makes a Harbor user that is no system admin
    until ``setAsAdmin``, on the same fake Harbor, so the credential comes from there."""
    conn = full_run(runner(), ovh_params(tmp_path))
    assert conn.registry is not None and conn.api is not None
    admin = conn.api
    someone = conn.call(
        "POST", f"/containerRegistry/{conn.registry['id']}/users", login="ci", email="ci@x.org"
    )
    conn.api = harbor.HarborAPI(admin.url, "ci", Secret(someone["password"]), fresh.ca_file)
    assert conn.api.current_user()["sysadmin_flag"] is False
    before = len(fresh.log())
    result = harbor.ensure_gc_schedule(conn)
    assert result.status == "skipped"
    assert result.detail.startswith("ci is no Harbor system administrator")
    assert "Administration > Clean Up" in result.detail and harbor.GC_CRON in result.detail
    asked = [e["path"] for e in fresh.log()[before:]]
    assert asked == ["/api/v2.0/users/current"]  # who it is; the schedule is not even read
    assert admin.call("GET", "/system/gc/schedule")["schedule"]["type"] == "None"
    assert "harbor_gc" not in conn.record.created  # nothing for teardown to cancel
