"""OVHcloud keeps the registry small with its Harbor's own tag retention policy (set through
Harbor's API as the notebook's Harbor user), and tells the storage used against the plan's.

The fake's OVH registries are fake Harbors (``sandbox/harbor``), so the policy runs on the
sandbox's clock (``POST /_sandbox/clock``) exactly as on the Harbor backend.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from binderhub_registry import sandbox
from binderhub_registry.providers import harbor, ovh
from binderhub_registry.secrets import Secret

from .conftest import ROOT
from .helpers import full_run, harbor_pull, harbor_push, ovh_params, runner, settings

GIB = 1 << 30


def test_the_default_run_sets_the_policy_on_the_registrys_harbor(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    conn = full_run(runner(), ovh_params(tmp_path))
    result = harbor.ensure_retention(conn)
    assert result.status == "created" and "binder-**" in result.detail
    api = conn.harbor()
    harbor_push(api, "binderhub/binder-old", "a1")
    harbor_push(api, "binderhub/binder-used", "b1")
    harbor_push(api, "binderhub/elsewhere", "c1")
    assert fresh.advance_clock(20)["ovh"] == {"deleted": []}
    harbor_pull(api, "binderhub/binder-used", "b1")
    ran = fresh.advance_clock(15)["ovh"]  # verify's check image is under the prefix too
    assert ran == {
        "deleted": ["binderhub/binder-binderhub-registry-check:verify", "binderhub/binder-old:a1"]
    }
    again = harbor.ensure_retention(full_run(runner(), ovh_params(tmp_path)))
    assert again.status == "reused"  # a rerun changes nothing


def test_a_dry_run_shows_the_policy_and_teardown_removes_it(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    conn = full_run(runner(), ovh_params(tmp_path))
    dry = full_run(runner(), ovh_params(tmp_path, dry_run=True))
    planned = harbor.ensure_retention(dry)
    assert planned.status == "planned" and "not pulled for 30 days" in planned.detail
    project = harbor.find_project(conn.harbor(), "binderhub")
    assert project is not None and "retention_id" not in project["metadata"]
    assert harbor.ensure_retention(conn).status == "created"
    down = full_run(runner(), ovh_params(tmp_path, teardown=True))
    assert asyncio.run(down.teardown()).status == "deleted"
    assert fresh.state()["ovh"]["registries"] == []


def test_storage_used_is_the_registry_size_against_the_plan(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    settings(fresh, "ovh", used_bytes=170 * GIB)
    conn = full_run(runner(), ovh_params(tmp_path))
    result = asyncio.run(conn.report_storage())
    assert result.status == "warning"  # SMALL's 200 GB, 85% used
    assert result.detail.startswith("170.0 GiB of ")
    assert "plan SMALL" in result.detail


def another_admin(conn: ovh.OvhConnection, login: str) -> harbor.HarborAPI:
    """A second system admin of the registry's Harbor, made through OVHcloud's API (users,
    then ``setAsAdmin``), to look at it after the notebook's own user is gone."""
    assert conn.registry is not None and conn.api is not None
    base = f"/containerRegistry/{conn.registry['id']}/users"
    user = conn.call("POST", base, login=login, email=f"{login}@example.org")
    conn.call("PUT", f"{base}/{user['id']}/setAsAdmin")
    return harbor.HarborAPI(conn.api.url, login, Secret(user["password"]), conn.ca_file)


def test_the_harbor_user_schedules_garbage_collection_and_teardown_cancels_only_its_own(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """The notebook's Harbor user is a system admin of the registry's Harbor (``setAsAdmin``),
    so it sets mybinder.org's weekly schedule; in a registry it did not create, teardown
    cancels that schedule and leaves the registry."""
    theirs = runner()  # someone else's registry, READY: the notebook reuses it
    other = theirs.step("Sign in", ovh.sign_in, ovh_params(tmp_path / "theirs"))
    theirs.step("Registry", ovh.ensure_registry, other)
    theirs.step("READY", ovh.wait_until_ready, other)
    out = tmp_path / "ours"
    conn = full_run(runner(), ovh_params(out))
    looker = another_admin(conn, "looker")
    dry = full_run(runner(), ovh_params(out, dry_run=True))
    planned = harbor.ensure_gc_schedule(dry)
    assert planned.status == "planned" and harbor.GC_CRON in planned.detail
    assert looker.call("GET", "/system/gc/schedule")["schedule"]["type"] == "None"
    made = harbor.ensure_gc_schedule(conn)
    assert made.status == "created" and "weekly" in made.detail
    schedule = looker.call("GET", "/system/gc/schedule")
    assert schedule["schedule"] == {"type": "Custom", "cron": harbor.GC_CRON}
    assert json.loads(schedule["job_parameters"])["delete_untagged"] is True  # GCHistory
    rerun = harbor.ensure_gc_schedule(full_run(runner(), ovh_params(out)))
    assert rerun.status == "reused" and "set by this notebook" in rerun.detail
    assert looker.call("GET", "/system/gc/schedule") == schedule  # a rerun changes nothing
    down = runner().step("Sign in", ovh.sign_in, ovh_params(out, teardown=True))
    assert "garbage collection schedule" in asyncio.run(down.teardown()).detail
    assert [r["name"] for r in fresh.state()["ovh"]["registries"]] == ["binderhub"]
    assert looker.call("GET", "/system/gc/schedule")["schedule"]["type"] == "None"


def test_a_garbage_collection_schedule_someone_else_set_is_kept(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    conn = full_run(runner(), ovh_params(tmp_path))
    theirs = {"schedule": {"type": "Daily", "cron": "0 0 3 * * *"}, "parameters": {}}
    conn.harbor().call("POST", "/system/gc/schedule", json=theirs)
    kept = harbor.ensure_gc_schedule(conn)
    assert kept.status == "reused" and "already set" in kept.detail
    assert "harbor_gc" not in conn.record.created


def test_the_notebook_names_the_ovhcloud_pages_checked_for_garbage_collection() -> None:
    """Whether OVHcloud runs Harbor's garbage collection on a managed registry is documented
    nowhere we looked: the notebook says so and names the pages, so a reader can check again."""
    notebook = json.loads((ROOT / "notebooks" / "04-ovh-container-registry.ipynb").read_text())
    text = next(
        "".join(c["source"])
        for c in notebook["cells"]
        if c["cell_type"] == "markdown" and "## Keep the registry small" in "".join(c["source"])
    )
    assert "No OVHcloud\ndocument we checked says" in text
    for title in (
        "Managed Private Registry - Responsibility model",
        "FAQ Managed Private Registry (Harbor)",
        "Managing users and projects",
    ):
        assert f"[{title}](https://" in text
