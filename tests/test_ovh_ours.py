"""OVHcloud deletes only what this deployment made.

OVHcloud keeps no label or description on a registry or a Harbor user (vendored schema
``cloud.containerRegistry.Registry``: id, name, createdAt, ...; ``User``: id, user, email),
so the marks are what it keeps and the record wrote down at the creation: a registry's id,
name and ``createdAt``, a user's id, login and registry. The Harbor inside goes through
Harbor's marks (tests/test_harbor_ours.py). Each test failed before the change.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import sandbox
from binderhub_registry.errors import PermissionDenied
from binderhub_registry.providers import ovh

from .helpers import full_run, ovh_params, registries, runner, up_to_admin

pytestmark = pytest.mark.sandbox


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """This test's output_dir."""
    return tmp_path / "values"


def edit_record(out: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = out / "binderhub-registry.json"
    data = json.loads(path.read_text())
    change(data["created"])
    path.write_text(json.dumps(data, indent=2))


def record(out: Path) -> dict[str, Any]:
    created: dict[str, Any] = json.loads((out / "binderhub-registry.json").read_text())["created"]
    return created


def teardown(out: Path) -> Any:
    conn = runner().step("Sign in", ovh.sign_in, ovh_params(out, teardown=True))
    return asyncio.run(conn.teardown())


def census(box: sandbox.Sandbox) -> list[tuple[str, list[str], list[str]]]:
    """Each registry's name, Harbor users and robots."""
    return [
        (r["name"], sorted(r["users"]), sorted(x["name"] for x in r["harbor"]["robots"]))
        for r in box.state()["ovh"]["registries"]
    ]


def test_the_issues_record_naming_another_registry_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    other = full_run(runner(), ovh_params(tmp_path / "b", registry_name="other"))
    assert other.registry is not None
    mine = tmp_path / "a"
    full_run(runner(), ovh_params(mine))
    before = census(fresh)
    edit_record(mine, lambda c: c["registry"].update(id=other.registry["id"]))  # type: ignore[index]
    with pytest.raises(PermissionDenied) as err:
        teardown(mine)
    message = str(err.value)
    assert "\n" not in message
    assert "registry recorded as 'binderhub'" in message and "is 'other'" in message
    assert census(fresh) == before  # neither registry, nor anything in them


def test_the_marks_are_what_ovhcloud_keeps(fresh: sandbox.Sandbox, out: Path) -> None:
    up_to_admin(runner(), ovh_params(out))
    recorded = record(out)["registry"]
    live = next(r for r in fresh.state()["ovh"]["registries"] if r["name"] == "binderhub")
    assert recorded["createdAt"] and recorded["id"] == live["id"]


def test_a_record_naming_another_harbor_user_deletes_nothing(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    conn = up_to_admin(runner(), ovh_params(out))
    assert conn.registry is not None
    someone = conn.call("POST", f"/containerRegistry/{conn.registry['id']}/users", login="ci")
    before = census(fresh)
    edit_record(out, lambda c: c["admin_user"].update(id=someone["id"]))
    with pytest.raises(PermissionDenied) as err:
        teardown(out)
    assert "\n" not in str(err.value)
    assert "recorded as 'binderhub-admin'" in str(err.value) and "is 'ci'" in str(err.value)
    assert census(fresh) == before


def test_a_record_naming_another_registrys_harbor_user_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    other = up_to_admin(runner(), ovh_params(tmp_path / "b", registry_name="other"))
    mine = tmp_path / "a"
    up_to_admin(runner(), ovh_params(mine))
    before = census(fresh)
    theirs = record(tmp_path / "b")["admin_user"]  # the same login, in the other registry
    edit_record(mine, lambda c: c.update(admin_user=theirs))
    with pytest.raises(PermissionDenied) as err:
        teardown(mine)
    assert "is not in this deployment's registry" in str(err.value)
    assert census(fresh) == before and other.registry is not None


def test_a_lost_creation_does_not_claim_an_older_registry_of_that_name(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    up_to_admin(runner(), ovh_params(tmp_path / "theirs"))  # someone else's 'binderhub'
    mine = tmp_path / "a"
    up_to_admin(runner(), ovh_params(mine, registry_name="mine"))
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    for pending in (
        {"name": "binderhub", "id": None},
        {"name": "binderhub", "id": None, "requested": later},
    ):
        edit_record(mine, lambda c, pending=pending: c.update(registry=pending))  # type: ignore[misc]
        before = census(fresh)
        with pytest.raises(PermissionDenied) as err:
            teardown(mine)
        assert "registry recorded as 'binderhub' (being created" in str(err.value)
        assert census(fresh) == before


def test_a_record_from_before_gets_created_at_on_a_rerun_and_is_torn_down(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    full_run(runner(), ovh_params(out))
    edit_record(out, lambda c: c["registry"].pop("createdAt"))  # as runs before wrote it
    full_run(runner(), ovh_params(out))
    assert record(out)["registry"]["createdAt"]
    edit_record(out, lambda c: c["registry"].pop("createdAt"))
    assert teardown(out).status == "deleted"  # name and id match: its own
    assert registries(fresh) == []
