"""OVHcloud's steps plan, then apply (``Connection.plan``, ``create``, ``note``).

A step that would change something says so as its plan, and a dry run stops there: making
the stored Harbor user a system admin (``setAsAdmin``) is a change, so a dry run that finds
it is not one plans it instead of reporting the user "reused". A real run never reports a
plan: a step run before the registry is READY says which step comes first. Each test failed
before the change (the first reported ``reused``, the second ``planned`` in a real run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import sandbox
from binderhub_registry.errors import BinderHubRegistryError
from binderhub_registry.providers import ovh

from .helpers import ovh_params, runner, up_to_admin

pytestmark = pytest.mark.sandbox


def sysadmin(box: sandbox.Sandbox, out: Path) -> bool:
    """Whether Harbor says the stored Harbor user is a system admin."""
    admin = json.loads((out / ovh.ADMIN_FILE).read_text())
    r = requests.get(
        f"{admin['url']}/api/v2.0/users/current",
        auth=(admin["username"], admin["password"]),
        verify=box.ca_file,
        timeout=10,
    )
    r.raise_for_status()
    found: dict[str, Any] = r.json()
    return bool(found["sysadmin_flag"])


def test_a_dry_run_plans_set_as_admin_and_changes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "values"
    fresh.add_faults({"method": "PUT", "path": "/setAsAdmin$", "status": 500, "times": 99})
    with pytest.raises(BinderHubRegistryError):  # stopped between the creation and setAsAdmin
        up_to_admin(runner(), ovh_params(out))
    fresh.clear_faults()
    record = (out / ovh.Record.FILE).read_text()
    calls = len(fresh.log())
    run = runner()
    conn = up_to_admin(run, ovh_params(out, dry_run=True))
    row = run.checklist.rows[-1]
    assert (row.status, row.detail) == (
        "planned",
        f"would make Harbor user {ovh.ADMIN_LOGIN} a system admin (setAsAdmin)",
    )
    assert conn.admin_username == ovh.ADMIN_LOGIN  # later steps of the dry run read it
    assert not sysadmin(fresh, out)
    assert (out / ovh.Record.FILE).read_text() == record
    assert [e["method"] for e in fresh.log()[calls:] if e["method"] != "GET"] == []


def test_a_real_run_never_reports_a_plan(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    conn = ovh.sign_in(ovh_params(tmp_path / "values")).value
    with pytest.raises(RuntimeError, match="is not made, not READY: run the steps before"):
        ovh.read_settings(conn)
    with pytest.raises(RuntimeError, match="not READY: run the steps before"):
        ovh.ensure_admin_user(conn)
    dry = ovh.sign_in(ovh_params(tmp_path / "dry", dry_run=True)).value
    planned = ovh.read_settings(dry)
    assert (planned.status, planned.detail) == (
        "planned",
        "would read the registry's settings once READY",
    )
