"""A dry run writes nothing, not even the record, on Harbor and OVH's Harbor alike.

A run whose creation answer was lost leaves a pending entry (``harbor_project_pending``,
``harbor_robot_pending``); the next run finds the project or robot and adopts it. A dry run
adopts it in memory only (``Connection.note``), so its plan and its teardown plan name it, and
the record on disk stays as it was: a dry run changes nothing (the contract's promise).

Each robot goes through one table of states (``harbor.ROBOT_STATES``): each state's action
plans its change first, so a dry run stops at the first change it would make; the states that
stop a run stop a real run and a dry run alike, with one line, before any change.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import sandbox
from binderhub_registry.errors import CloudError, PermissionDenied
from binderhub_registry.providers import Record, harbor

from .helpers import HARBOR_DEFAULTS, admin_api, harbor_steps, settings


def run(out: Path, **overrides: Any) -> harbor.HarborConnection:
    """Sign in, then the project and BinderHub's robot, in process."""
    p = harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(out)} | overrides)
    conn = harbor.sign_in(p).value
    harbor.ensure_project(conn)
    harbor.ensure_robot(conn)
    return conn


def test_a_dry_run_adopts_a_lost_answer_in_memory_only(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "values"
    conn = run(out)
    project, robot = conn.params.harbor_project, conn.record.created[harbor.BUILDER.kind]
    record = out / "binderhub-registry.json"
    data = json.loads(record.read_text())
    # what a run whose two creation answers were lost left: pending names, no entries
    data["created"] = {
        "harbor_project_pending": project,
        f"{harbor.BUILDER.kind}_pending": robot["name"],
    }
    record.write_text(json.dumps(data, indent=2))
    before = record.read_bytes()

    planned = run(out, dry_run=True)

    assert record.read_bytes() == before  # nothing written
    created = planned.record.created  # adopted in memory: teardown's plan names them
    assert created["harbor_project"]["name"] == project
    assert created[harbor.BUILDER.kind]["id"] == robot["id"]
    assert "harbor_project_pending" not in created

    again = run(out)  # the real run adopts them on disk
    saved = json.loads(record.read_text())["created"]
    assert saved["harbor_project"]["name"] == project
    assert saved[harbor.BUILDER.kind]["id"] == robot["id"] == again.robot["id"]
    assert not [kind for kind in saved if kind.endswith("_pending")]


# --- each state of a robot plans its own change ------------------------------------------------
BUILDER_ROBOT = "robot$binderhub+binderhub-builder"


def harbor_now(box: sandbox.Sandbox) -> Any:
    """Harbor's projects and robots as the fake holds them."""
    return box.state()["harbor"]


def expired(box: sandbox.Sandbox, root: Path) -> dict[str, Any]:
    """A robot of this deployment made three days ago for one day, the clock now today."""
    settings(box, "harbor", clock_offset_days=-3)
    harbor_steps(root, robot_expiry_days=1)
    settings(box, "harbor", clock_offset_days=0)
    return {"robot_expiry_days": 1}  # the same duration: still expired


def lost_secret(box: sandbox.Sandbox, root: Path) -> dict[str, Any]:
    """A run of this deployment, then its secret.yaml gone."""
    _, files = harbor_steps(root)
    files.secret_path.unlink()
    return {}


def recorded_before_the_marks(box: sandbox.Sandbox, root: Path) -> dict[str, Any]:
    """A run from before the marks: the robot's old description, no creation time recorded."""
    conn, _ = harbor_steps(root)
    api = admin_api(box)
    robot = api.call("GET", f"/robots/{conn.record.created[harbor.BUILDER.kind]['id']}")
    harbor.update_robot(api, robot, description=harbor.BUILDER.legacy_description)
    path = conn.record.path
    data = json.loads(path.read_text())
    data["created"][harbor.BUILDER.kind].pop("creation_time")
    path.write_text(json.dumps(data, indent=2))
    return {}


def nothing(box: sandbox.Sandbox, root: Path) -> dict[str, Any]:
    """A brand-new Harbor: no project, no robot."""
    return {}


def another_duration(box: sandbox.Sandbox, root: Path) -> dict[str, Any]:
    """A run with robots that never expire, then 30 days asked for."""
    harbor_steps(root)
    return {"robot_expiry_days": 30}


def rotating(box: sandbox.Sandbox, root: Path) -> dict[str, Any]:
    """A run, then rotate."""
    harbor_steps(root)
    return {"rotate": True}


@pytest.mark.parametrize(
    ("before", "would"),
    [
        (nothing, f"would create robot account {BUILDER_ROBOT!r} (push, pull; never expires)"),
        (
            recorded_before_the_marks,
            f"would mark robot account {BUILDER_ROBOT!r} as this deployment's (its description)",
        ),
        (
            another_duration,
            f"would make robot account {BUILDER_ROBOT!r} last 30 days from its creation",
        ),
        (expired, f"would replace robot account {BUILDER_ROBOT!r} (expired on "),
        (
            lost_secret,
            f"would refresh the secret of {BUILDER_ROBOT!r} (the stored secret is missing or "
            "refused)",
        ),
        (rotating, f"would refresh the secret of {BUILDER_ROBOT!r} (rotate)"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_robot_state_plans_its_change_and_a_dry_run_changes_nothing(
    fresh: sandbox.Sandbox,
    tmp_path: Path,
    before: Callable[[sandbox.Sandbox, Path], dict[str, Any]],
    would: str,
) -> None:
    """The robot's table of states: each state's action states its change first; a dry run
    stops there (Harbor and the record as they were). A robot recorded before the marks used
    to be reused by a dry run whose real run would rewrite its description."""
    overrides = before(fresh, tmp_path)  # a run's values in tmp_path / "values"
    out = tmp_path / "values"
    record = out / "binderhub-registry.json"
    saved = record.read_bytes() if record.exists() else None
    harbor_before = harbor_now(fresh)

    values = HARBOR_DEFAULTS | {"output_dir": str(out), "dry_run": True} | overrides
    conn = harbor.sign_in(harbor.validate(values)).value
    harbor.ensure_project(conn)
    result = harbor.ensure_robot(conn)

    assert result.status == "planned"
    assert result.detail.startswith(would), result.detail
    assert harbor_now(fresh) == harbor_before
    assert (record.read_bytes() if record.exists() else None) == saved


def test_a_real_run_with_harbor_unreachable_fails_instead_of_saying_planned(
    tmp_path: Path,
) -> None:
    """Only a dry run plans: a real run whose Harbor is not reachable yet (no API) stops with
    one line; it used to answer 'planned' as if it were a dry run."""
    p = harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(tmp_path)})
    conn = harbor.HarborConnection(params=p, record=Record(tmp_path, harbor.KEY), ca_file=None)
    for step in (harbor.ensure_project, harbor.ensure_robot):
        with pytest.raises(CloudError, match="Harbor is not reachable yet"):
            step(conn)
    dry = harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(tmp_path), "dry_run": True})
    conn = harbor.HarborConnection(params=dry, record=Record(tmp_path, harbor.KEY), ca_file=None)
    assert harbor.ensure_project(conn).detail == "would create private project 'binderhub'"


def test_finish_rotation_plans_in_the_contracts_words(tmp_path: Path) -> None:
    """A dry run after a refresh whose verification failed: 'would ...', as every plan says."""
    p = harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(tmp_path), "dry_run": True})
    record = Record(tmp_path, harbor.KEY)
    record.created[harbor.HarborConnection.retiring] = [7]
    conn = harbor.HarborConnection(params=p, record=record, ca_file=None)
    result = asyncio.run(conn.finish_rotation())
    assert result.status == "planned" and result.detail.startswith("would "), result.detail
    assert record.created[harbor.HarborConnection.retiring] == [7]


def test_the_harbor_module_writes_no_dry_run_exit_of_its_own() -> None:
    """A dry run is written once, in the contract: no 'planned' result, no read of dry_run
    and no direct record.set/forget/save in the Harbor module."""
    source = Path(inspect.getfile(harbor)).read_text()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and node.value == "planned":
            found.append(f"line {node.lineno}: 'planned'")
        elif isinstance(node, ast.Attribute) and node.attr == "dry_run":
            found.append(f"line {node.lineno}: .dry_run")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ("set", "forget", "save")
            and ast.unparse(node.value).endswith("record")
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert found == []


# --- the states that stop: one line, nothing changed --------------------------------------------
def test_an_expired_robot_of_someone_else_stops_and_stays(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    settings(fresh, "harbor", clock_offset_days=-3)  # made three days ago, for one day
    api = admin_api(fresh)
    harbor.create_project(api, "binderhub")
    harbor.create_robot(api, "binderhub", "binderhub-builder", 1)
    settings(fresh, "harbor", clock_offset_days=0)
    before = harbor_now(fresh)
    with pytest.raises(PermissionDenied) as err:
        harbor_steps(tmp_path, robot_expiry_days=1)
    message = str(err.value)
    assert "expired on" in message and "this notebook did not create it" in message
    assert "\n" not in message
    assert harbor_now(fresh)["robots"] == before["robots"]


def test_a_robot_without_its_roles_permissions_stops_and_stays(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    api = admin_api(fresh)
    harbor.create_project(api, "binderhub")
    harbor.create_robot(api, "binderhub", "binderhub-builder", -1, ("pull",))
    before = harbor_now(fresh)
    with pytest.raises(PermissionDenied) as err:
        harbor_steps(tmp_path)
    assert f"{BUILDER_ROBOT!r} exists without push and pull on 'binderhub'" in str(err.value)
    assert harbor_now(fresh)["robots"] == before["robots"]


def test_a_change_harbor_does_not_keep_stops_instead_of_looping(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An action that fixes its state and answers nothing sends the robot through the table
    again; a Harbor that ignores the change would loop: the walk is bounded."""
    harbor_steps(tmp_path)
    calls: list[int] = []

    def ignored(api: harbor.HarborAPI, robot: dict[str, Any], days: int) -> dict[str, Any]:
        calls.append(days)
        return robot  # as if Harbor kept the old duration

    monkeypatch.setattr(harbor, "set_robot_expiry", ignored)
    with pytest.raises(CloudError, match="Harbor did not keep the changes made to it"):
        harbor_steps(tmp_path, robot_expiry_days=30)
    assert 1 < len(calls) <= len(harbor.ROBOT_STATES)
