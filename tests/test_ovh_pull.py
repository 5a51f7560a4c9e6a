"""User pods' pull on OVHcloud's Managed Private Registry: Harbor's pull-only project robot,
made through Harbor's API as the Harbor user OVHcloud created, as BinderHub's robot is.

In process against the sandbox (python-ovh signing real requests to the fake OVH API, one fake
Harbor per registry): the default run writes the pull robot to ``jupyterhub.imagePullSecret``;
it pulls and is refused a push; rerun, rotate, dry run, teardown and a crash half-way treat it
as the builder robot; ``use_admin_user`` still gives user pods the pull robot; bad inputs stop
before any call.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import yaml

from binderhub_registry import InvalidParameter, sandbox
from binderhub_registry.errors import VerificationFailed
from binderhub_registry.providers import harbor, ovh
from binderhub_registry.secrets import Secret

from .helpers import OVH_DEFAULTS, full_run, registries, runner, up_to_admin

pytestmark = pytest.mark.sandbox

BUILDER = "robot$binderhub+binderhub-builder"
PULLER = "robot$binderhub+binderhub-puller"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "values"


def params(out: Path, **overrides: Any) -> ovh.Params:
    return ovh.validate(OVH_DEFAULTS | {"output_dir": str(out)}, **overrides)


def secret_yaml(out: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((out / "secret.yaml").read_text())
    return loaded


def robots(box: sandbox.Sandbox) -> dict[str, list[str]]:
    """The registry's Harbor robots: name -> repository actions."""
    return {r["name"]: r["actions"] for r in registries(box)[0]["harbor"]["robots"]}


def record(out: Path) -> dict[str, Any]:
    created: dict[str, Any] = json.loads((out / "binderhub-registry.json").read_text())["created"]
    return created


def test_the_default_run_makes_a_pull_robot_as_the_ovh_harbor_user(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    assert ovh.validate(OVH_DEFAULTS | {"output_dir": str(out)}).pull_access == "secret"
    run = runner()
    conn = full_run(run, params(out))
    assert "Pull-only credential for user pods [created]" in repr(run.checklist)
    assert robots(fresh) == {BUILDER: ["pull", "push"], PULLER: ["pull"]}
    pull = secret_yaml(out)["jupyterhub"]["imagePullSecret"]
    assert pull["create"] is True and pull["registry"] == conn.host
    assert pull["username"] == PULLER
    # made through Harbor's API by the Harbor user OVHcloud created, as the builder robot is
    assert conn.api is not None and conn.pull_robot is not None
    me = conn.api.current_user()
    assert me["username"] == ovh.ADMIN_LOGIN
    made = conn.api.call("GET", f"/robots/{conn.pull_robot['id']}")
    assert made["creator_ref"] == me["user_id"]
    assert record(out)["harbor_pull_robot"]["name"] == PULLER
    # it pulls, and its push is refused as Harbor's v2auth middleware refuses it
    url = f"https://{conn.host}"
    token = requests.get(
        f"{url}/service/token",
        params={"service": "harbor-registry", "scope": "repository:binderhub/x:pull,push"},
        auth=(pull["username"], pull["password"]),
        verify=fresh.ca_file,
        timeout=10,
    ).json()["token"]
    access = jwt.decode(token, options={"verify_signature": False})["access"]
    assert access == [{"type": "repository", "name": "binderhub/x", "actions": ["pull"]}]
    push = requests.post(
        f"{url}/v2/binderhub/x/blobs/uploads/",
        auth=(pull["username"], pull["password"]),
        verify=fresh.ca_file,
        timeout=10,
    )
    assert push.status_code == 401 and push.headers["WWW-Authenticate"] == 'Basic realm="harbor"'
    assert push.json()["errors"][0]["message"].endswith("action: push")


def test_a_rerun_creates_nothing_rotate_refreshes_both_and_teardown_deletes_them(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    full_run(runner(), params(out))
    first = secret_yaml(out)
    again = runner()
    full_run(again, params(out))
    assert "[created]" not in repr(again.checklist) and "[updated]" not in repr(again.checklist)
    assert secret_yaml(out) == first
    rotated = runner()
    conn = full_run(rotated, params(out, rotate=True))
    assert "Pull-only credential for user pods [updated]" in repr(rotated.checklist)
    new = secret_yaml(out)
    old_pull = first["jupyterhub"]["imagePullSecret"]["password"]
    assert new["jupyterhub"]["imagePullSecret"]["password"] != old_pull
    assert conn.api is not None
    assert not harbor.robot_works(conn.api, PULLER, Secret(old_pull))
    assert len(record(out)["harbor_refreshed"]) == 2
    finished = asyncio.run(conn.finish_rotation())
    assert "both robots' old secrets stopped working" in finished.detail
    assert sorted(robots(fresh)) == [BUILDER, PULLER]
    down = runner().step("Sign in", ovh.sign_in, params(out, teardown=True))
    result = asyncio.run(down.teardown())
    assert result.detail.startswith(f"pull robot account {PULLER!r}, robot account {BUILDER!r}")
    assert registries(fresh) == [] and record(out) == {}


def test_a_dry_run_plans_the_pull_robot_and_creates_nothing(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    p = params(out, dry_run=True)
    conn = ovh.sign_in(p).value
    planned = ovh.ensure_pull_credential(conn)  # no registry yet: Harbor is not reachable
    assert planned.status == "planned"
    assert planned.detail == f"would create pull robot account {PULLER!r} (pull; never expires)"
    assert registries(fresh) == []


def test_a_crash_between_create_and_record_leaves_no_duplicate(
    fresh: sandbox.Sandbox, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = harbor.create_robot

    def lost_answer(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise requests.ConnectionError("the answer was lost")

    run = runner()
    conn = up_to_admin(run, params(out))
    run.step("Harbor project", harbor.ensure_project, conn)
    run.step("BinderHub's credential", ovh.ensure_credential, conn)
    monkeypatch.setattr(harbor, "create_robot", lost_answer)
    with pytest.raises(requests.ConnectionError):
        ovh.ensure_pull_credential(conn)
    monkeypatch.setattr(harbor, "create_robot", real)
    full_run(runner(), params(out))
    assert sorted(robots(fresh)) == [BUILDER, PULLER]
    assert "harbor_pull_robot_pending" not in record(out)
    asyncio.run(runner().step("Sign in", ovh.sign_in, params(out, teardown=True)).teardown())
    assert registries(fresh) == []


def test_use_admin_user_still_gives_user_pods_the_pull_robot(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    full_run(runner(), params(out, use_admin_user=True))
    secret = secret_yaml(out)
    assert secret["registry"]["username"] == ovh.ADMIN_LOGIN
    assert secret["jupyterhub"]["imagePullSecret"]["username"] == PULLER
    assert robots(fresh) == {PULLER: ["pull"]}


def test_pull_access_none_makes_no_pull_robot_and_verify_shows_the_private_project(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    run = runner()
    conn = up_to_admin(run, params(out, pull_access="none"))
    run.step("Harbor project", harbor.ensure_project, conn)
    run.step("BinderHub's credential", ovh.ensure_credential, conn)
    run.step("Pull-only credential for user pods", ovh.ensure_pull_credential, conn)
    assert "project 'binderhub' is PRIVATE" in repr(run.checklist)
    files = run.step("Write values", conn.write_values)
    assert robots(fresh) == {BUILDER: ["pull", "push"]}
    assert "jupyterhub" not in secret_yaml(out)
    with pytest.raises(VerificationFailed) as err:  # private: the anonymous pull is refused
        conn.verify(files)
    assert "anonymous pull" in str(err.value)


BAD = [
    ("pull_access", "node", "node identity"),
    ("pull_access", "anonymous", "must be one of"),
    ("pull_robot_name", "binderhub-builder", "must differ from robot_name"),
    ("pull_robot_name", "user+puller", "Harbor robot name"),
]


@pytest.mark.parametrize(("name", "value", "rule"), BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_a_bad_pull_parameter_is_one_line_before_any_call(
    box: sandbox.Sandbox, out: Path, name: str, value: str, rule: str
) -> None:
    calls = len(box.log())
    with pytest.raises(InvalidParameter) as err:
        params(out, **{name: value})
    message = str(err.value)
    assert err.value.name == name and message.startswith(f"parameter {name!r}: ")
    assert rule in message and "\n" not in message
    assert len(box.log()) == calls and not out.exists()
