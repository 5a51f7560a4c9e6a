"""The fake Docker Hub as corrected: each behaviour its module docstring lists with a source."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from binderhub_registry import sandbox
from binderhub_registry.providers import dockerhub
from binderhub_registry.sandbox.dockerhub import PULL_LIMIT_BODY, totp

from .helpers import hub, realm, session


def pat(box: sandbox.Sandbox, scopes: list[str]) -> str:
    made = hub(
        box,
        "POST",
        "/v2/access-tokens",
        headers=session(box),
        json={"token_label": "mine", "scopes": scopes},
    )
    return str(made.json()["token"])


def test_pat_session_is_refused_on_management_routes(fresh: sandbox.Sandbox) -> None:
    auth = session(fresh, secret=pat(fresh, ["repo:write"]))  # a PAT opens a session...
    for method, path in [
        ("GET", "/v2/access-tokens"),
        ("POST", "/v2/access-tokens"),
        ("GET", "/v2/orgs/binderhubdemoorg/members"),
        ("POST", "/v2/orgs/binderhubdemoorg/access-tokens"),
    ]:
        r = hub(fresh, method, path, headers=auth, json={})
        # ...that Hub refuses there (docker/hub-feedback#2478, #2438)
        assert r.status_code == 403, (method, path)
        assert r.json() == {
            "message": "token issued from personal access token is not allowed",
            "errinfo": {},
        }


def test_two_factor_sign_in(fresh: sandbox.Sandbox) -> None:
    creds = fresh.credentials("dockerhub-totp")
    password = {"username": creds["username"], "password": creds["password"]}
    first = hub(fresh, "POST", "/v2/users/login", json=password)
    assert first.status_code == 401 and first.json()["login_2fa_token"]
    same = hub(
        fresh,
        "POST",
        "/v2/auth/token",
        json={"identifier": creds["username"], "secret": creds["password"]},
    )
    assert same.status_code == 401
    wrong = hub(
        fresh,
        "POST",
        "/v2/users/2fa-login",
        json={"login_2fa_token": first.json()["login_2fa_token"], "code": "nope"},
    )
    assert wrong.status_code == 401
    ok = hub(
        fresh,
        "POST",
        "/v2/users/2fa-login",
        json={
            "login_2fa_token": first.json()["login_2fa_token"],
            "code": totp(creds["totp_seed"], time.time()),  # as the authenticator app shows it
        },
    )
    assert ok.status_code == 200
    listed = hub(
        fresh, "GET", "/v2/access-tokens", headers={"Authorization": f"Bearer {ok.json()['token']}"}
    )
    assert listed.status_code == 200


def test_single_sign_on_refuses_the_password(fresh: sandbox.Sandbox) -> None:
    creds = fresh.credentials("dockerhub-sso")
    r = hub(
        fresh,
        "POST",
        "/v2/auth/token",
        json={"identifier": creds["username"], "secret": creds["password"]},
    )
    assert r.status_code == 401 and "single sign-on" in r.json()["detail"]


def test_sessions_expire(fresh: sandbox.Sandbox) -> None:
    assert fresh._admin("GET", "dockerhub/settings")["session_ttl"] == 600  # 10 minutes (spec)
    fresh._admin("POST", "dockerhub/settings", {"session_ttl": 0.3})
    auth = session(fresh)
    assert hub(fresh, "GET", "/v2/access-tokens", headers=auth).status_code == 200
    time.sleep(0.4)
    assert hub(fresh, "GET", "/v2/access-tokens", headers=auth).status_code == 401
    fresh.reset()
    assert fresh._admin("GET", "dockerhub/settings")["session_ttl"] == 600


def test_provider_signs_in_again_when_the_session_expires(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    p = dockerhub.validate(
        username="binderhubdemo",
        organization="",
        prefix="binder-",
        output_dir=str(tmp_path),
        dry_run=False,
        teardown=False,
        rotate=False,
        sandbox=True,
    )
    conn = dockerhub.sign_in(p).value
    assert conn is not None
    fresh._admin("POST", "dockerhub/settings", {"session_ttl": 0.3})
    time.sleep(0.4)  # an interactive pause longer than the session
    result = dockerhub.ensure_access_token(conn)
    assert result.status == "created"
    statuses = [(e["path"], e["status"]) for e in fresh.log()]
    assert ("/dockerhub/v2/access-tokens", 401) in statuses  # expired, then signed in again
    assert [s for path, s in statuses if path == "/dockerhub/v2/auth/token"].count(200) >= 2


def test_roles_filter_and_grants(fresh: sandbox.Sandbox) -> None:
    auth = session(fresh)
    for org, role in [
        ("binderhubdemoorg", "owner"),
        ("binderhubeditors", "editor"),
        ("binderhubmembers", "member"),
    ]:
        listed = hub(
            fresh,
            "GET",
            f"/v2/orgs/{org}/members",
            headers=auth,
            params={"search": "binderhubdemo", "role": role},
        ).json()
        assert [m["username"] for m in listed["results"]] == ["binderhubdemo"], org
        assert listed["results"][0]["role"] == ("Owner" if role == "owner" else "Member")
    creds = fresh.credentials("dockerhub")
    user, password = creds["username"], creds["password"]
    assert sorted(realm(fresh, user, password, "binderhubeditors/new")) == ["pull", "push"]
    # a plain member may not create a repository (and there is none to pull yet)
    assert realm(fresh, user, password, "binderhubmembers/new") == []


def test_organization_access_tokens_need_an_owner_and_a_team_plan(fresh: sandbox.Sandbox) -> None:
    auth = session(fresh)
    body = {
        "label": "BinderHub",
        "resources": [
            {"type": "TYPE_REPO", "path": "binderhubdemoorg/*", "scopes": ["scope-image-push"]},
            {"type": "TYPE_ORG", "path": "binderhubdemoorg", "scopes": ["scope-repository-create"]},
        ],
    }
    made = hub(fresh, "POST", "/v2/orgs/binderhubdemoorg/access-tokens", headers=auth, json=body)
    assert made.status_code == 201 and made.json()["token"].startswith("dckr_oat_")
    # the organization signs in with it, and pushes within its resources only (a new
    # repository with Repository Create: tests/test_dockerhub_oat.py)
    oat = made.json()["token"]
    assert sorted(realm(fresh, "binderhubdemoorg", oat, "binderhubdemoorg/x")) == ["pull", "push"]
    assert realm(fresh, "binderhubdemoorg", oat, "binderhubdemo/x") == []
    editor = hub(fresh, "POST", "/v2/orgs/binderhubeditors/access-tokens", headers=auth, json=body)
    assert editor.status_code == 403  # not an owner there
    assert fresh.state()["dockerhub"]["org_plans"]["binderhubdemoorg"] == "team"


def test_registry_answers_429_on_a_pull_limit_fault_and_head_is_not_a_pull(
    fresh: sandbox.Sandbox,
) -> None:
    registry = fresh.registries["dockerhub"]
    fresh.add_faults(
        {"method": "GET", "path": "^/v2/.*/manifests/", "status": 429, "body": PULL_LIMIT_BODY}
    )
    head = requests.head(
        f"{registry}/v2/binderhubdemo/x/manifests/1", verify=fresh.ca_file, timeout=5
    )
    assert head.status_code == 401  # not counted: the fault waits for a GET
    got = requests.get(
        f"{registry}/v2/binderhubdemo/x/manifests/1", verify=fresh.ca_file, timeout=5
    )
    assert got.status_code == 429
    assert got.json()["errors"][0]["code"] == "TOOMANYREQUESTS"


def test_registry_refuses_basic_credentials_on_its_data_plane(fresh: sandbox.Sandbox) -> None:
    creds = fresh.credentials("dockerhub")
    r = requests.get(
        f"{fresh.registries['dockerhub']}/v2/binderhubdemo/x/manifests/1",
        auth=(creds["username"], creds["password"]),
        verify=fresh.ca_file,
        timeout=5,
    )
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith(f'Bearer realm="{fresh.url}/dockerhub/token"')
