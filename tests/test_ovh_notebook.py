"""OVHcloud beyond the contract: bad inputs, faults, signatures, credentials, teardown, secrets.

The provider's steps are driven in-process against the sandbox (python-ovh signing real
requests to the fake); each test says what it shows.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from binderhub_registry import InvalidParameter, sandbox
from binderhub_registry.errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    MissingCredentials,
    VerificationFailed,
)
from binderhub_registry.providers import ovh
from binderhub_registry.sandbox.ovh import SEED_PROJECT

from .helpers import full_run, ovh_params, registries, runner, settings, up_to_admin

pytestmark = pytest.mark.sandbox


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """This test's output_dir."""
    return tmp_path / "values"


# --- 1. parameters: one line naming the parameter, before any call --------------------------
BAD_INPUTS = [
    ("endpoint", "ovh-fr"),
    ("endpoint", "https://eu.api.ovh.com/1.0"),
    ("service_name", "my-project"),
    ("service_name", SEED_PROJECT.upper()),
    ("service_name", SEED_PROJECT[:-1]),
    ("region", "gra"),
    ("region", ""),
    ("plan", "small"),
    ("plan", "XL"),
    ("registry_name", "r"),
    ("registry_name", "-binderhub"),
    ("registry_name", "binder hub"),
    ("harbor_project", "BinderHub"),
    ("harbor_project", "binder__hub"),
    ("harbor_project", "bh_test"),  # BinderHub would push to bh-test
    ("harbor_project", "binder/hub"),
    ("robot_name", "Builder"),
    ("robot_name", "b" * 201),
    ("robot_expiry_days", 0),
    ("robot_expiry_days", 3651),
    ("robot_expiry_days", -2),
    ("robot_expiry_days", True),
    ("robot_expiry_days", "30"),
    ("use_admin_user", "yes"),
    ("poll_seconds", 0),
    ("poll_seconds", 301),
    ("prefix", "Binder_"),
]


@pytest.mark.parametrize(("name", "value"), BAD_INPUTS, ids=[f"{n}={v!r}" for n, v in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_parameter_and_nothing_is_created(
    fresh: sandbox.Sandbox, out: Path, name: str, value: Any
) -> None:
    rule = next(p.rule for p in ovh.PARAMETERS if p.name == name)
    with pytest.raises(InvalidParameter) as err:
        ovh_params(out, **{name: value})
    message = str(err.value)
    assert err.value.name == name and "\n" not in message
    assert message.startswith(f"parameter {name!r}: ") and rule in message
    assert fresh.log() == [] and registries(fresh) == []
    assert not (out / "secret.yaml").exists()


def test_rotate_with_teardown_is_refused(out: Path) -> None:
    with pytest.raises(InvalidParameter, match="rotate"):
        ovh_params(out, rotate=True, teardown=True)


def test_a_region_or_plan_ovh_does_not_offer_stops_with_one_line(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    run = runner()
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out, region="MARS"))
    with pytest.raises(CloudError) as err:
        run.step("Plans", ovh.list_plans, conn)
    assert str(err.value).startswith("parameter 'region': MARS offers no managed registry")
    assert "GRA" in str(err.value) and "\n" not in str(err.value)
    assert registries(fresh) == []


# --- 2. credentials: from python-ovh's lookup; missing: how to create them, with the rights -----
def test_missing_credentials_say_how_to_create_them_with_the_least_rights(
    no_real_ovh: None, out: Path, fresh: sandbox.Sandbox
) -> None:
    with pytest.raises(MissingCredentials) as err:
        ovh.sign_in(ovh_params(out, sandbox=False, endpoint="ovh-ca"))
    message = str(err.value)
    assert "\n" not in message
    assert "https://ca.api.ovh.com/createToken/" in message
    assert "OVH_APPLICATION_KEY" in message and "ovh.conf" in message
    assert ovh.rights_text() in message
    assert fresh.log() == []  # nothing was sent anywhere


def test_credentials_are_found_by_python_ovhs_own_lookup(
    no_real_ovh: None, out: Path, monkeypatch: pytest.MonkeyPatch, fresh: sandbox.Sandbox
) -> None:
    # only the consumer key is named missing: python-ovh's lookup found the other two
    monkeypatch.setenv("OVH_APPLICATION_KEY", "a")
    monkeypatch.setenv("OVH_APPLICATION_SECRET", "b")
    with pytest.raises(MissingCredentials, match=r"^no OVHcloud consumer key for ovh-eu: "):
        ovh.sign_in(ovh_params(out, sandbox=False))
    assert fresh.log() == []


# --- 3-5. plans, the registry, READY, the Harbor admin: a run and a rerun ------------------------
def test_a_run_creates_the_registry_and_admin_and_a_rerun_creates_nothing(
    fresh: sandbox.Sandbox, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings(fresh, "ovh", installing_polls=2, delivering_polls=2)
    run = runner()
    conn = up_to_admin(run, ovh_params(out))
    text = repr(run.checklist)
    assert "Registry [created]" in text and "after 5 polls" in text
    assert "Harbor admin [created]" in text
    assert conn.registry is not None and conn.registry["status"] == "READY"
    admin = json.loads((out / ovh.ADMIN_FILE).read_text())
    assert (out / ovh.ADMIN_FILE).stat().st_mode & 0o777 == 0o600
    before = fresh.state()
    again = runner()
    up_to_admin(again, ovh_params(out))
    assert fresh.state() == before
    assert "[created]" not in repr(again.checklist)
    assert conn.admin is not None and conn.admin.reveal() == admin["password"]
    # the password is in the 0600 file only: not printed, not in the record, not in the log
    shown = capsys.readouterr().out + repr(run.checklist) + repr(again.checklist)
    shown += (out / "binderhub-registry.json").read_text() + json.dumps(fresh.log())
    shown += json.dumps(fresh.state())
    assert admin["password"] not in shown


def test_the_plans_table_shows_storage_and_connections(fresh: sandbox.Sandbox, out: Path) -> None:
    run = runner()
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out, plan="MEDIUM"))
    table = run.step("Plans", ovh.list_plans, conn)
    rows = {r[1]: r for r in table.rows()}
    assert rows["MEDIUM"][0] == "→" and rows["SMALL"][0] == ""
    assert rows["SMALL"][2] == "200 GiB" and rows["SMALL"][3] == "15"
    assert rows["MEDIUM"][2] == "600 GiB" and rows["MEDIUM"][3] == "45"
    assert "<table>" in table._repr_html_() and "concurrent connections" in repr(table)


def test_dry_run_creates_nothing(fresh: sandbox.Sandbox, out: Path) -> None:
    run = runner()
    up_to_admin(run, ovh_params(out, dry_run=True))
    text = repr(run.checklist)
    assert "Registry [planned]" in text and "Harbor admin [planned]" in text
    assert registries(fresh) == []


def test_a_lost_admin_password_makes_the_user_again(fresh: sandbox.Sandbox, out: Path) -> None:
    up_to_admin(runner(), ovh_params(out))
    first = json.loads((out / ovh.ADMIN_FILE).read_text())
    (out / ovh.ADMIN_FILE).unlink()
    run = runner()
    up_to_admin(run, ovh_params(out))
    second = json.loads((out / ovh.ADMIN_FILE).read_text())
    assert second["password"] != first["password"]
    assert registries(fresh)[0]["users"] == [ovh.ADMIN_LOGIN]


def test_a_user_of_that_name_this_notebook_did_not_make_is_left_alone(
    fresh: sandbox.Sandbox, out: Path, tmp_path: Path
) -> None:
    up_to_admin(runner(), ovh_params(out))
    other = tmp_path / "other"  # another output_dir: no record, no password file
    with pytest.raises(BinderHubRegistryError, match="did not create"):
        up_to_admin(runner(), ovh_params(other))
    assert registries(fresh)[0]["users"] == [ovh.ADMIN_LOGIN]


# --- faults: python-ovh never retries, the step runner does ----------------------------------
def test_503_twice_and_429_are_retried_without_duplicates(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    fresh.add_faults(
        {"method": "POST", "path": "/containerRegistry$", "status": 503, "times": 2},
        {"method": "GET", "path": "/users$", "status": 429, "retry_after": 0},
    )
    run = runner()
    up_to_admin(run, ovh_params(out))
    text = repr(run.checklist)
    assert "Registry [created]" in text and "(after 3 attempts)" in text
    assert "Harbor admin [created]" in text and "(after 2 attempts)" in text
    assert len(registries(fresh)) == 1 and registries(fresh)[0]["users"] == [ovh.ADMIN_LOGIN]


def test_a_slow_answer_past_the_client_timeout_is_retried(
    fresh: sandbox.Sandbox, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ovh, "TIMEOUT", (5.0, 0.5))
    fresh.add_faults({"method": "GET", "path": "/containerRegistry$", "delay": 1.5})
    run = runner()
    up_to_admin(run, ovh_params(out))
    text = repr(run.checklist)
    assert "Registry [created]" in text and "(after 2 attempts)" in text
    assert len(registries(fresh)) == 1


def test_a_lost_creation_answer_is_found_by_name_and_counted_as_ours(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    fresh.add_faults({"method": "POST", "path": "/containerRegistry$", "drop": True, "after": True})
    run = runner()
    conn = up_to_admin(run, ovh_params(out))
    assert len(registries(fresh)) == 1
    assert conn.record.created["registry"]["id"] == registries(fresh)[0]["id"]


# --- a wrong application secret; the signature on every call ------------------------------------
def test_a_wrong_application_secret_is_a_clear_signature_error(
    fresh: sandbox.Sandbox, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ovh.SANDBOX_SECRET_VARIABLE, "not-the-application-secret")
    with pytest.raises(AuthenticationFailed) as err:
        runner().step("Sign in", ovh.sign_in, ovh_params(out))
    message = str(err.value)
    assert "signature" in message and "application secret" in message and "\n" not in message
    assert "not-the-application-secret" not in message
    assert [e["status"] for e in fresh.log()] == [200, 400]  # /auth/time, then refused once
    assert registries(fresh) == []


def test_every_call_is_signed_and_only_auth_time_is_not(fresh: sandbox.Sandbox, out: Path) -> None:
    up_to_admin(runner(), ovh_params(out))
    calls = [e for e in fresh.log() if e["path"].startswith("/ovh/")]
    assert calls[0]["path"] == "/ovh/1.0/auth/time"
    assert len(calls) > 6 and all(e["status"] in (200, 204) for e in calls)


# --- teardown: only what was created ------------------------------------------------------------
def test_teardown_deletes_the_user_and_registry_it_created_and_nothing_else(
    fresh: sandbox.Sandbox, out: Path, tmp_path: Path
) -> None:
    up_to_admin(runner(), ovh_params(out, registry_name="theirs"))  # someone else's registry
    shutil_free = tmp_path / "mine"
    up_to_admin(runner(), ovh_params(shutil_free))
    theirs = [r for r in registries(fresh) if r["name"] == "theirs"]
    run = runner()
    conn = run.step("Sign in", ovh.sign_in, ovh_params(shutil_free, teardown=True))
    assert run.step("Registry", ovh.ensure_registry, conn) is None  # creates nothing
    result = asyncio.run(conn.teardown())
    assert result.status == "deleted" and "registry binderhub" in result.detail
    assert registries(fresh) == theirs
    assert not (shutil_free / ovh.ADMIN_FILE).exists()
    again = asyncio.run(conn.teardown())
    assert again.detail == "nothing recorded as created by this notebook"


def test_in_a_registry_it_did_not_create_teardown_deletes_only_its_harbor_user(
    fresh: sandbox.Sandbox, out: Path, tmp_path: Path
) -> None:
    run = runner()  # someone else's registry, READY, without a Harbor user
    conn = run.step("Sign in", ovh.sign_in, ovh_params(tmp_path / "first"))
    run.step("Registry", ovh.ensure_registry, conn)
    run.step("READY", ovh.wait_until_ready, conn)
    up_to_admin(runner(), ovh_params(out))  # reuses it, makes its own Harbor user
    assert registries(fresh)[0]["users"] == [ovh.ADMIN_LOGIN]
    conn = runner().step("Sign in", ovh.sign_in, ovh_params(out, teardown=True))
    result = asyncio.run(conn.teardown())
    assert "Harbor user" in result.detail and "registry" not in result.detail
    assert [(r["name"], r["users"]) for r in registries(fresh)] == [("binderhub", [])]


def test_reusing_a_registry_it_did_not_create_leaves_it_at_teardown(
    fresh: sandbox.Sandbox, out: Path, tmp_path: Path
) -> None:
    up_to_admin(runner(), ovh_params(tmp_path / "first"))
    run = runner()
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out))
    run.step("Registry", ovh.ensure_registry, conn)
    assert "not created by this notebook" in repr(run.checklist)
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out, teardown=True))
    asyncio.run(conn.teardown())
    assert len(registries(fresh)) == 1


# --- 6-8. the Harbor part: project, robot, values, verification ----------------------------------


def test_binderhub_gets_a_project_robot_and_the_values_verify(
    fresh: sandbox.Sandbox, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = full_run(runner(), ovh_params(out, robot_expiry_days=30))
    config = yaml.safe_load((out / "config.yaml").read_text())["config"]
    secret = yaml.safe_load((out / "secret.yaml").read_text())["registry"]
    host = conn.host
    assert config["BinderHub"]["image_prefix"] == f"{host}/binderhub/binder-"
    assert config["DockerRegistry"] == {
        "url": f"https://{host}",
        "token_url": f"https://{host}/service/token?service=harbor-registry",
    }
    assert secret["username"] == "robot$binderhub+binderhub-builder"
    robots = registries(fresh)[0]["harbor"]["robots"]
    assert [(r["name"], r["duration"], r["actions"]) for r in robots] == [
        ("robot$binderhub+binderhub-builder", 30, ["pull", "push"]),
        ("robot$binderhub+binderhub-puller", 30, ["pull"]),
    ]
    # BinderHub appends service=container_registry: Harbor reads the first, so this works ...
    token = requests.get(
        config["DockerRegistry"]["token_url"] + "&service=container_registry",
        params={"scope": "repository:binderhub/binder-x:pull"},
        auth=(secret["username"], secret["password"]),
        verify=fresh.ca_file,
        timeout=10,
    )
    assert token.status_code == 200 and token.json()["token"]
    # ... and without the service in token_url, the appended one alone is refused
    alone = requests.get(
        f"https://{host}/service/token?service=container_registry",
        auth=(secret["username"], secret["password"]),
        verify=fresh.ca_file,
        timeout=10,
    )
    assert alone.status_code == 400
    # neither the robot's secret nor the admin's password was shown or recorded
    admin = json.loads((out / ovh.ADMIN_FILE).read_text())["password"]
    shown = capsys.readouterr().out + (out / "binderhub-registry.json").read_text()
    shown += json.dumps(fresh.log()) + json.dumps(fresh.state())
    assert secret["password"] not in shown and admin not in shown
    assert "expires on" in shown  # the robot's expiry date is shown


def test_a_rerun_creates_nothing_and_teardown_leaves_nothing(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    full_run(runner(), ovh_params(out))
    before = fresh.state()
    again = runner()
    full_run(again, ovh_params(out))
    assert "[created]" not in repr(again.checklist)
    census = json.loads(json.dumps(fresh.state()))
    for state in (before, census):  # the verification's test image is not the notebook's
        for registry in state["ovh"]["registries"]:
            registry["harbor"].pop("repositories")
    assert census["ovh"] == before["ovh"]
    run = runner()
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out, teardown=True))
    result = asyncio.run(conn.teardown())
    assert result.status == "deleted"
    for what in ("robot account", "project 'binderhub'", "Harbor user", "registry binderhub"):
        assert what in result.detail
    assert registries(fresh) == []
    assert not (out / "secret.yaml").exists() and not (out / ovh.ADMIN_FILE).exists()


def test_use_admin_user_gives_binderhub_the_guides_harbor_user(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    full_run(runner(), ovh_params(out, use_admin_user=True))
    secret = yaml.safe_load((out / "secret.yaml").read_text())["registry"]
    assert secret["username"] == ovh.ADMIN_LOGIN
    robots = registries(fresh)[0]["harbor"]["robots"]  # user pods never get the admin
    assert [r["name"] for r in robots] == ["robot$binderhub+binderhub-puller"]
    with pytest.raises(InvalidParameter, match=r"^parameter 'rotate': works on the robot"):
        ovh_params(out, use_admin_user=True, rotate=True)


def test_verify_names_a_robot_whose_expiry_passed_and_a_rerun_replaces_it(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    # the robot is made two days ago, for one day
    settings(fresh, "ovh", harbor_clock_offset_days=-2)
    conn = full_run(runner(), ovh_params(out, robot_expiry_days=1))
    settings(fresh, "ovh", harbor_clock_offset_days=0)  # now it has expired
    files = conn.write_values().value
    with pytest.raises(VerificationFailed) as err:
        runner().step("Verify", conn.verify, files)
    assert "expired on" in str(err.value) and "robot_expiry_days" in str(err.value)
    run = runner()
    full_run(run, ovh_params(out, robot_expiry_days=1))  # this notebook's expired robot: replaced
    assert "BinderHub's credential [created]" in repr(run.checklist)
    assert [r["name"] for r in registries(fresh)[0]["harbor"]["robots"]] == [
        "robot$binderhub+binderhub-builder",
        "robot$binderhub+binderhub-puller",
    ]
