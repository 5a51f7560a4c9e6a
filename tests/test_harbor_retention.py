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
from binderhub_registry.sandbox.harbor.retention import (
    TEMPLATES,
    TagTimes,
    doublestar,
    policy_problem,
    run_policy,
)
from binderhub_registry.secrets import Secret

from .helpers import (
    HARBOR_DEFAULTS,
    admin_api,
    harbor_pull,
    harbor_push,
    harbor_steps,
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


DAY = 86400.0
NOW = 100 * DAY


def rule(template: str, value: int | None = None, **selectors: Any) -> dict[str, Any]:
    """One retain rule as the API takes it (swagger ``RetentionRule``): ``repo`` and ``tags``
    are (decoration, pattern) pairs; by default every repository and every tag."""
    repo = selectors.get("repo", [("repoMatches", "**")])
    tags = selectors.get("tags", [("matches", "**")])
    return {
        "action": "retain",
        "template": template,
        "params": {} if value is None else {template: value},
        "tag_selectors": [{"kind": "doublestar", "decoration": d, "pattern": p} for d, p in tags],
        "scope_selectors": {
            "repository": [{"kind": "doublestar", "decoration": d, "pattern": p} for d, p in repo]
        },
    }


def deleted(*rules: dict[str, Any], times: dict[tuple[str, str], TagTimes]) -> list[str]:
    """What one run of a policy of ``rules`` deletes in project ``p``, as ``repo:tag``."""
    gone = run_policy({"rules": list(rules)}, "p", times, NOW)
    return [f"{repository[2:]}:{tag}" for repository, tag in gone]


def tag(pushed_days_ago: float, pulled_days_ago: float | None = None, digest: str = "") -> TagTimes:
    pulled = None if pulled_days_ago is None else NOW - pulled_days_ago * DAY
    return TagTimes(NOW - pushed_days_ago * DAY, pulled, digest)


#: one repository, one artifact per tag: pushed 1, 5, 9 days ago; b pulled 2 days ago,
#: c pulled 8 days ago, a never pulled
THREE = {("p/r", "a"): tag(1), ("p/r", "b"): tag(5, 2), ("p/r", "c"): tag(9, 8)}


def test_each_template_retains_what_harbors_evaluator_does() -> None:
    """src/pkg/retention/policy/rule/<template>/evaluator.go at goharbor/harbor c50c7dd."""
    assert deleted(rule("always"), times=THREE) == []
    # daysps / dayspl: pushed (pulled) at or after now - n days; never pulled: zero time
    assert deleted(rule("nDaysSinceLastPush", 5), times=THREE) == ["r:c"]
    assert deleted(rule("nDaysSinceLastPull", 8), times=THREE) == ["r:a"]
    assert deleted(rule("nDaysSinceLastPull", 3), times=THREE) == ["r:a", "r:c"]
    # latestps: the k most recently pushed
    assert deleted(rule("latestPushedK", 2), times=THREE) == ["r:c"]
    assert deleted(rule("latestPushedK", 0), times=THREE) == ["r:a", "r:b", "r:c"]
    # latestpl: the n most recently pulled; a never-pulled one ranks last, yet it is kept
    # while n reaches it (Harbor keeps the first n of the sorted list)
    assert deleted(rule("latestPulledN", 1), times=THREE) == ["r:a", "r:c"]
    assert deleted(rule("latestPulledN", 3), times=THREE) == []
    # rules combine with OR: pulled within 3 days, or one of the 1 most recently pushed
    assert deleted(rule("nDaysSinceLastPull", 3), rule("latestPushedK", 1), times=THREE) == ["r:c"]


def test_a_candidate_is_an_artifact_with_all_its_tags() -> None:
    """dep/client.go GetCandidates: one candidate per artifact, its times the latest of its
    tags'; a retained artifact keeps every tag, a deleted one loses every tag."""
    times = {
        ("p/r", "v1"): tag(9, None, "sha256:1"),
        ("p/r", "latest"): tag(9, 1, "sha256:1"),  # the same artifact, pulled yesterday
        ("p/r", "v0"): tag(20, None, "sha256:0"),
        ("p/r", "old"): tag(30, None, "sha256:0"),
    }
    assert deleted(rule("nDaysSinceLastPull", 7), times=times) == ["r:old", "r:v0"]
    # latestPushedK counts artifacts, not tags: two tags of one image are one
    assert deleted(rule("latestPushedK", 1), times=times) == ["r:old", "r:v0"]
    # a tag selector selects the artifact when one of its tags matches
    assert deleted(rule("always", tags=[("matches", "latest")]), times=times) == ["r:old", "r:v0"]


def test_the_scope_and_tag_selectors_filter_as_harbors_doublestar_selector() -> None:
    """src/lib/selector/selectors/doublestar/selector.go and launcher.go: a repository no rule
    selects is untouched; in one a rule selects, the artifacts its tag selectors pass."""
    times = {
        ("p/binder-a", "t"): tag(40),
        ("p/binder-b", "t"): tag(40),
        ("p/binder-a/nested", "t"): tag(40),
        ("p/other", "t"): tag(40),
    }
    recent = ("nDaysSinceLastPush", 30)
    # repoMatches: binder-** is binder-* in one path component (doublestar v1.3.4)
    matched = rule(*recent, repo=[("repoMatches", "binder-**")])
    assert deleted(matched, times=times) == ["binder-a:t", "binder-b:t"]
    assert deleted(rule(*recent, repo=[("repoMatches", "**")]), times=times) == [
        "binder-a:t",
        "binder-a/nested:t",
        "binder-b:t",
        "other:t",
    ]
    # repoExcludes: every repository but those the pattern matches
    excluded = rule(*recent, repo=[("repoExcludes", "binder-*")])
    assert deleted(excluded, times=times) == ["binder-a/nested:t", "other:t"]
    # several selectors: all must pass; braces give alternatives, a bare comma is a character
    both = rule(*recent, repo=[("repoMatches", "binder-*"), ("repoExcludes", "binder-b")])
    assert deleted(both, times=times) == ["binder-a:t"]
    braces = rule(*recent, repo=[("repoMatches", "{other,binder-b}")])
    assert deleted(braces, times=times) == ["binder-b:t", "other:t"]
    assert deleted(rule(*recent, repo=[("repoMatches", "other,binder-b")]), times=times) == []
    # tag selectors: a tag `matches` takes part; one `excludes` selects keeps nothing of its own
    tags = {("p/r", "v1"): tag(40), ("p/r", "dev-1"): tag(40), ("p/r", "dev-2"): tag(1)}
    assert deleted(rule("always", tags=[("matches", "v*")]), times=tags) == ["r:dev-1", "r:dev-2"]
    assert deleted(rule("always", tags=[("excludes", "dev-*")]), times=tags) == [
        "r:dev-1",
        "r:dev-2",
    ]
    assert deleted(rule("nDaysSinceLastPush", 7, tags=[("excludes", "v*")]), times=tags) == [
        "r:dev-1",
        "r:v1",
    ]
    # an empty pattern matches everything (the selector's match)
    assert deleted(rule("always", tags=[("matches", "")]), times=tags) == []


def test_doublestar_matches_as_harbors_version_does() -> None:
    """bmatcuk/doublestar v1.3.4 (Harbor's src/go.mod): ``**`` crosses ``/`` only as a whole
    path component; elsewhere it is ``*``."""
    assert doublestar("binder-**", "binder-a") and not doublestar("binder-**", "binder-a/b")
    assert not doublestar("binder-*", "binder-a/b")
    assert doublestar("binder/**", "binder/a/b") and not doublestar("binder/**", "binder")
    assert doublestar("**/x", "x") and doublestar("**/x", "a/b/x") and doublestar("a/**/b", "a/b")
    assert (
        doublestar("{a,b}-?", "b-1") and doublestar("[^x]*", "ya") and not doublestar("[^x]*", "xa")
    )
    assert doublestar("v\\*", "v*") and not doublestar("v\\*", "v1")
    assert doublestar("", "any/thing")


def test_templates_harbor_does_not_list_are_refused() -> None:
    """latestActiveK and lastXDays exist in Harbor's rule index but not in the metadata its
    API lists: the fake does not model them (a 400, an assumption)."""
    for template in ("latestActiveK", "lastXDays"):
        policy = {"rules": [rule(template, 3)], "scope": {"level": "project", "ref": 1}}
        assert policy_problem(policy) == f"bad request: unknown rule template {template!r}"
    assert sorted(TEMPLATES) == [
        "always",
        "latestPulledN",
        "latestPushedK",
        "nDaysSinceLastPull",
        "nDaysSinceLastPush",
    ]


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
    Collection": "an account that has Harbor system administrator privileges"). The credential
    is a local user the standalone Harbor's admin makes with ``POST /users`` (createUser: a new
    user is no system admin)."""
    conn, _ = harbor_steps(tmp_path)
    admin = admin_api(fresh)
    user = {"username": "ci", "email": "ci@example.org", "realname": "CI", "password": "Ci-user-1"}
    admin.call("POST", "/users", json=user)
    conn.api = harbor.HarborAPI(admin.url, "ci", Secret(user["password"]), fresh.ca_file)
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
