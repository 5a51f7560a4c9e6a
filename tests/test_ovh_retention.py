"""OVHcloud keeps the registry small with its Harbor's own tag retention policy (set through
Harbor's API as the notebook's Harbor user), and tells the storage used against the plan's.

The fake's OVH registries are fake Harbors (``sandbox/harbor``), so the policy runs on the
sandbox's clock (``POST /_sandbox/clock``) exactly as on the Harbor backend.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from binderhub_registry import sandbox
from binderhub_registry.providers import harbor

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
