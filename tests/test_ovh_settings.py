"""OVHcloud: what the registry is like, read before any user call.

Each test failed before the change (the fake made every user an admin,
knew no IAM, OIDC, Harbor version, IP restriction or pending consumer key, and the client
read none of them).
"""

from __future__ import annotations

import json
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import sandbox
from binderhub_registry.errors import AuthenticationFailed, BinderHubRegistryError, CloudError
from binderhub_registry.providers import ovh

from .helpers import full_run, ovh_params, registries, runner, settings, up_to_admin

pytestmark = pytest.mark.sandbox

GIB = 2**30


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """This test's output_dir."""
    return tmp_path / "values"


def current_user(fresh: sandbox.Sandbox, out: Path) -> dict[str, Any]:
    """Harbor's ``GET /users/current`` as the Harbor user the notebook stored."""
    admin = json.loads((out / ovh.ADMIN_FILE).read_text())
    r = requests.get(
        f"{admin['url']}/api/v2.0/users/current",
        auth=(admin["username"], admin["password"]),
        verify=fresh.ca_file,
        timeout=10,
    )
    r.raise_for_status()
    found: dict[str, Any] = r.json()
    return found


def user_calls(fresh: sandbox.Sandbox) -> list[str]:
    """The OVH API calls on a registry's users since the last reset."""
    return [f"{e['method']} {e['path']}" for e in fresh.log() if "/users" in e["path"]]


# --- 1. the API's user is no Harbor admin until setAsAdmin ---------------------------------------
def test_a_user_the_api_makes_is_no_harbor_admin_until_set_as_admin(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    run = runner()
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out))
    run.step("Registry", ovh.ensure_registry, conn)
    run.step("READY", ovh.wait_until_ready, conn)
    assert conn.registry is not None
    base = f"/containerRegistry/{conn.registry['id']}/users"
    made = conn.call("POST", base, login="someone", email="someone@example.org")
    r = requests.get(
        f"https://{conn.host}/api/v2.0/users/current",
        auth=(made["user"], made["password"]),
        verify=fresh.ca_file,
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["sysadmin_flag"] is False
    assert conn.call("PUT", f"{base}/{made['id']}/setAsAdmin") is None
    r = requests.get(
        f"https://{conn.host}/api/v2.0/users/current",
        auth=(made["user"], made["password"]),
        verify=fresh.ca_file,
        timeout=10,
    )
    assert r.json()["sysadmin_flag"] is True


def test_the_notebook_makes_its_harbor_user_an_admin_and_a_rerun_finishes_that(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    assert ("PUT", "/cloud/project/{sn}/containerRegistry/*/users/*/setAsAdmin") in ovh.RIGHTS
    fresh.add_faults({"method": "PUT", "path": "/setAsAdmin$", "status": 500, "times": 99})
    with pytest.raises(BinderHubRegistryError):  # stopped between the creation and setAsAdmin
        up_to_admin(runner(), ovh_params(out))
    assert current_user(fresh, out)["sysadmin_flag"] is False
    fresh.clear_faults()
    run = runner()
    full_run(run, ovh_params(out))  # the rerun makes it an admin, then Harbor lets it make robots
    assert "made a system admin: setAsAdmin" in repr(run.checklist)
    assert current_user(fresh, out)["sysadmin_flag"] is True
    assert registries(fresh)[0]["users"] == [ovh.ADMIN_LOGIN]  # the same user, not a new one
    again = runner()
    up_to_admin(again, ovh_params(out))
    assert "setAsAdmin" not in repr(again.checklist)  # an admin already: nothing to do


# --- 2. OIDC and OVHcloud IAM: stop before any user call -------------------------------------
@pytest.mark.parametrize(
    ("setting", "said"),
    [({"auth_mode": "oidc_auth"}, "OIDC"), ({"iam_enabled": True}, "OVHcloud IAM")],
    ids=["oidc", "iam"],
)
def test_a_rerun_on_an_oidc_or_iam_registry_stops_before_any_user_call(
    fresh: sandbox.Sandbox, out: Path, setting: dict[str, Any], said: str
) -> None:
    up_to_admin(runner(), ovh_params(out))
    user = json.loads((out / ovh.ADMIN_FILE).read_text())
    # turned on after the first run: its Harbor user signs in no more
    settings(fresh, "ovh", **setting)
    before = len(user_calls(fresh))
    with pytest.raises(CloudError) as err:
        up_to_admin(runner(), ovh_params(out))
    message = str(err.value)
    assert said in message and "\n" not in message and "registry_name" in message
    assert len(user_calls(fresh)) == before  # no user listed, deleted or made
    assert json.loads((out / ovh.ADMIN_FILE).read_text()) == user
    assert registries(fresh)[0]["users"] == [ovh.ADMIN_LOGIN]


def test_a_new_registry_with_oidc_gets_no_user(fresh: sandbox.Sandbox, out: Path) -> None:
    settings(fresh, "ovh", auth_mode="oidc_auth")
    with pytest.raises(CloudError, match=r"OIDC \(auth_mode oidc_auth\)"):
        up_to_admin(runner(), ovh_params(out))
    assert user_calls(fresh) == [] and registries(fresh)[0]["users"] == []


# --- 3. Harbor before 2.2 has no v2 robots -------------------------------------------------------
def test_a_harbor_before_2_2_stops_before_any_user_call(fresh: sandbox.Sandbox, out: Path) -> None:
    settings(fresh, "ovh", harbor_version="v2.0.1-6b4b4d6b")  # what OVH ran in 2022
    with pytest.raises(CloudError) as err:
        up_to_admin(runner(), ovh_params(out))
    message = str(err.value)
    assert "v2.0.1-6b4b4d6b" in message and "2.2 or newer" in message and "\n" not in message
    assert user_calls(fresh) == [] and registries(fresh)[0]["users"] == []
    systeminfo = [e for e in fresh.log() if e["path"].endswith("/api/v2.0/systeminfo")]
    assert systeminfo  # read from Harbor itself
    assert registries(fresh)[0]["status"] == "READY"


def test_the_settings_step_shows_version_mode_restrictions_and_storage(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    run = runner()
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out))
    run.step("Registry", ovh.ensure_registry, conn)
    run.step("READY", ovh.wait_until_ready, conn)
    found = run.step("Settings", ovh.read_settings, conn)
    assert found is not None and found.warnings == []
    rows = dict(found.rows())
    assert rows["Harbor"].startswith("v2.") and rows["sign-in"] == "db_auth"
    assert rows["OVHcloud IAM"] == "off" and rows["IPs allowed on the registry"] == "any"
    assert rows["storage"] == "0.0 GiB used of 200 GiB (SMALL) (0%)"
    assert "<table>" in found._repr_html_()


# --- 4. the smaller points -----------------------------------------------------------------
def test_the_harbor_user_is_made_with_an_email(fresh: sandbox.Sandbox, out: Path) -> None:
    conn = up_to_admin(runner(), ovh_params(out, admin_email="registry-admins@example.org"))
    assert conn.registry is not None
    users = conn.call("GET", f"/containerRegistry/{conn.registry['id']}/users")
    assert [(u["user"], u["email"]) for u in users] == [
        (ovh.ADMIN_LOGIN, "registry-admins@example.org")
    ]
    # a parameters cell without one still runs
    assert ovh_params(out).admin_email == ovh.ADMIN_EMAIL
    with pytest.raises(BinderHubRegistryError, match=r"^parameter 'admin_email': "):
        ovh_params(out, admin_email="not an address")


def test_invalid_signature_also_names_a_consumer_key_awaiting_validation(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    settings(fresh, "ovh", consumer_key_pending=True)
    with pytest.raises(AuthenticationFailed) as err:
        runner().step("Sign in", ovh.sign_in, ovh_params(out))
    message = str(err.value)
    assert "waiting for validation" in message and "validationUrl" in message
    assert "application secret" in message and "\n" not in message


def test_ip_restrictions_and_a_nearly_full_plan_are_warned_about(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    settings(
        fresh,
        "ovh",
        ip_restrictions_registry=[{"ipBlock": "203.0.113.0/24", "description": "cluster"}],
        ip_restrictions_management=[{"ipBlock": "0.0.0.0/0", "description": "anyone"}],
        used_bytes=190 * GIB,
    )
    run = runner()
    up_to_admin(run, ovh_params(out))  # warnings, not stops
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out))
    run.step("Registry", ovh.ensure_registry, conn)
    run.step("READY", ovh.wait_until_ready, conn)
    found = run.step("Settings", ovh.read_settings, conn)
    assert found is not None and len(found.warnings) == 2
    restriction, storage = found.warnings
    assert "203.0.113.0/24" in restriction and "cluster's nodes" in restriction
    assert "190 GiB of the plan's 200 GiB" in storage
    assert dict(found.rows())["IPs allowed on Harbor's API"] == "0.0.0.0/0"
    assert "2 warnings" in repr(run.checklist)


def test_a_harbor_the_ip_restrictions_keep_out_is_named_so(
    fresh: sandbox.Sandbox, out: Path
) -> None:
    settings(fresh, "ovh", ip_restrictions_management=[{"ipBlock": "198.51.100.7/32"}])
    # the fake does not enforce restrictions: a refusal stands in for what the real one does
    fresh.add_faults({"method": "GET", "path": "/api/v2.0/systeminfo$", "status": 403})
    with pytest.raises(CloudError) as err:
        up_to_admin(runner(), ovh_params(out))
    message = str(err.value)
    assert "198.51.100.7/32" in message and "this machine's address" in message
    assert "\n" not in message and user_calls(fresh) == []


def test_oauth2_client_credentials_are_accepted(
    no_real_ovh: None, out: Path, monkeypatch: pytest.MonkeyPatch, fresh: sandbox.Sandbox
) -> None:
    monkeypatch.setenv("OVH_CLIENT_ID", "an-id")
    monkeypatch.setenv("OVH_CLIENT_SECRET", "a-secret")
    client, source = ovh._real_client(ovh_params(out, sandbox=False))
    assert client._client_id == "an-id" and "OAuth2" in source  # python-ovh's OAuth2 mode
    assert fresh.log() == []  # nothing was sent: the token is fetched on the first call
    monkeypatch.delenv("OVH_CLIENT_SECRET")
    with pytest.raises(BinderHubRegistryError, match="client secret"):
        ovh._real_client(ovh_params(out, sandbox=False))


def test_ready_is_awaited_as_long_as_terraform_does(
    fresh: sandbox.Sandbox, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ovh.READY_WITHIN == 60 * 60  # Terraform's Create timeout (it was 30 minutes)
    minutes = count()
    monkeypatch.setattr(ovh, "_clock", lambda: next(minutes) * 10 * 60.0, raising=False)
    settings(fresh, "ovh", installing_polls=4, delivering_polls=1)  # 50 minutes before READY
    shown: list[str] = []
    monkeypatch.setattr(ovh, "progress", shown.append)
    run = runner()
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out))
    run.step("Registry", ovh.ensure_registry, conn)
    run.step("READY", ovh.wait_until_ready, conn)
    assert conn.registry is not None and conn.registry["status"] == "READY"
    assert shown[-1].startswith("DELIVERING: waited ") and shown[-1].endswith(
        " min of up to 60 minutes (a new registry usually takes about 3)"
    )
    minutes = count()
    monkeypatch.setattr(ovh, "_clock", lambda: next(minutes) * 20 * 60.0, raising=False)
    settings(fresh, "ovh", installing_polls=10)
    conn = run.step("Sign in", ovh.sign_in, ovh_params(out, registry_name="slow"))
    run.step("Registry", ovh.ensure_registry, conn)
    with pytest.raises(CloudError, match=r"still INSTALLING after \d+ minutes"):
        run.step("READY", ovh.wait_until_ready, conn)
