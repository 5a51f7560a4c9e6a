"""User pods' pull on Harbor: a second project robot with pull only.

In process against the sandbox's Harbor: the default run writes the pull robot's secret to
``jupyterhub.imagePullSecret``; that robot pulls through Harbor's token realm and is refused a
push as Harbor's v2auth middleware refuses it; reruns, rotate, keep_replaced, dry_run, teardown
and a crash half-way treat it as they treat the builder robot; bad inputs stop before any call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import yaml

from binderhub_registry import InvalidParameter, sandbox
from binderhub_registry.binderhub import ValuesFiles
from binderhub_registry.errors import PermissionDenied
from binderhub_registry.providers import harbor
from binderhub_registry.push import push_auth, push_image
from binderhub_registry.registry_http import RegistryHTTP
from binderhub_registry.secrets import Secret
from binderhub_registry.verify import VerifyHints

from .helpers import HARBOR_DEFAULTS, admin_api

BUILDER = "robot$binderhub+binderhub-builder"
PULLER = "robot$binderhub+binderhub-puller"


def params(tmp_path: Path, **overrides: Any) -> harbor.Params:
    return harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values")} | overrides)


def steps(tmp_path: Path, **overrides: Any) -> tuple[harbor.HarborConnection, dict[str, Any]]:
    """The notebook's steps up to the values, in process; the conn and each step's result."""
    conn = harbor.sign_in(params(tmp_path, **overrides)).value
    results = {
        "project": harbor.ensure_project(conn),
        "robot": harbor.ensure_robot(conn),
        "pull": harbor.ensure_pull_credential(conn),
    }
    results["files"] = conn.write_values()
    return conn, results


def secret_yaml(tmp_path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((tmp_path / "values" / "secret.yaml").read_text())
    return loaded


def pull_values(tmp_path: Path) -> dict[str, Any]:
    found: dict[str, Any] = secret_yaml(tmp_path)["jupyterhub"]["imagePullSecret"]
    return found


def robots(box: sandbox.Sandbox) -> dict[str, list[str]]:
    """Harbor's robots: name -> repository actions."""
    return {r["name"]: r["actions"] for r in box.state()["harbor"]["robots"]}


def record(tmp_path: Path) -> dict[str, Any]:
    created: dict[str, Any] = json.loads(
        (tmp_path / "values" / "binderhub-registry.json").read_text()
    )["created"]
    return created


# --- the default run ------------------------------------------------------------------------
def test_the_default_run_writes_a_pull_only_robot_for_user_pods(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    assert HARBOR_DEFAULTS["pull_access"] == "secret"
    assert HARBOR_DEFAULTS["pull_robot_name"] == "binderhub-puller"
    conn, results = steps(tmp_path)
    assert results["pull"].status == "created"
    assert f"pull robot account {PULLER!r} with pull only on 'binderhub'" in results["pull"].detail
    # mybinder.org's pair: builder with push and pull, user-puller with pull alone
    assert robots(fresh) == {BUILDER: ["pull", "push"], PULLER: ["pull"]}
    pull = pull_values(tmp_path)
    host = fresh.registries["harbor"].removeprefix("https://")
    assert pull["create"] is True and pull["registry"] == host and pull["username"] == PULLER
    assert pull["password"] != secret_yaml(tmp_path)["registry"]["password"]
    assert harbor.robot_works(admin_api(fresh), PULLER, Secret(pull["password"]))
    assert record(tmp_path)["harbor_pull_robot"]["name"] == PULLER
    assert pull["password"] not in results["pull"].detail
    files = results["files"].value
    assert isinstance(files, ValuesFiles)
    assert conn.verify(files).status == "done"


def image_pushed(box: sandbox.Sandbox, tmp_path: Path) -> str:
    """A tiny image pushed by the builder robot; its repository."""
    secret = secret_yaml(tmp_path)["registry"]
    http = RegistryHTTP(BUILDER, Secret(secret["password"]), box.ca_file)
    url, image = box.registries["harbor"], "binderhub/binder-pulled"
    auth = push_auth(http, url, image, "pull,push", check="push", hints=VerifyHints())
    push_image(http, url, image, "v1", auth, hints=VerifyHints())
    return image


def test_the_pull_robot_pulls_through_the_realm_and_is_refused_a_push(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """As a kubelet does: challenge, token, manifest, a layer; then a push, refused."""
    steps(tmp_path)
    image = image_pushed(fresh, tmp_path)
    pull = pull_values(tmp_path)
    url, http = fresh.registries["harbor"], requests.Session()
    http.verify, http.trust_env = fresh.ca_file, False
    challenge = http.get(f"{url}/v2/").headers["WWW-Authenticate"]
    assert challenge == f'Bearer realm="{url}/service/token",service="harbor-registry"'
    # the realm grants the pull robot pull alone, whatever it asks for
    answer = http.get(
        f"{url}/service/token",
        params={"service": "harbor-registry", "scope": f"repository:{image}:pull,push"},
        auth=(pull["username"], pull["password"]),
    )
    assert answer.status_code == 200
    token = answer.json()["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == PULLER
    assert claims["access"] == [{"type": "repository", "name": image, "actions": ["pull"]}]
    bearer = {"Authorization": f"Bearer {token}"}
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    manifest = http.get(f"{url}/v2/{image}/manifests/v1", headers=bearer | accept)
    assert manifest.status_code == 200
    digest = manifest.json()["layers"][0]["digest"]
    layer = http.get(f"{url}/v2/{image}/blobs/{digest}", headers=bearer)
    assert layer.status_code == 200
    assert "sha256:" + hashlib.sha256(layer.content).hexdigest() == digest
    # a push, with that token or with Basic credentials: Harbor's v2auth middleware answers
    # 401 UNAUTHORIZED before docker-registry (src/server/middleware/v2auth/auth.go)
    basic = (pull["username"], pull["password"])
    for kw in ({"headers": bearer}, {"auth": basic}):
        refused = http.post(f"{url}/v2/{image}/blobs/uploads/", **kw)  # type: ignore[arg-type]
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="harbor"'
        error = refused.json()["errors"][0]
        assert error == {
            "code": "UNAUTHORIZED",
            "message": f"unauthorized to access repository: {image}, action: push",
        }
    # the private project gives an anonymous caller nothing (projects are private by default)
    anonymous = http.get(
        f"{url}/service/token",
        params={"service": "harbor-registry", "scope": f"repository:{image}:pull"},
    )
    assert jwt.decode(anonymous.json()["token"], options={"verify_signature": False})["access"] == [
        {"type": "repository", "name": image, "actions": []}
    ]
    assert [p["public"] for p in fresh.state()["harbor"]["projects"]] == [True, False]


# --- reruns, rotation, dry run, teardown ------------------------------------------------------
def test_a_rerun_creates_nothing_and_reuses_the_stored_pull_secret(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    steps(tmp_path)
    first, state = pull_values(tmp_path), fresh.state()["harbor"]
    calls = len(fresh.log())
    _, results = steps(tmp_path)
    assert results["pull"].status == "reused" and "stored secret works" in results["pull"].detail
    assert pull_values(tmp_path) == first and fresh.state()["harbor"] == state
    writes = [c for c in fresh.log()[calls:] if c["method"] in ("POST", "PUT", "PATCH", "DELETE")]
    assert writes == []


def test_a_lost_pull_secret_is_refreshed_not_duplicated(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    steps(tmp_path)
    old = pull_values(tmp_path)["password"]
    (tmp_path / "values" / "secret.yaml").unlink()
    _, results = steps(tmp_path)
    assert results["pull"].status == "updated" and "missing or refused" in results["pull"].detail
    new = pull_values(tmp_path)["password"]
    api = admin_api(fresh)
    assert not harbor.robot_works(api, PULLER, Secret(old))
    assert harbor.robot_works(api, PULLER, Secret(new))
    assert sorted(robots(fresh)) == [BUILDER, PULLER]


def test_rotate_refreshes_both_robots_and_keep_replaced_is_refused(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    steps(tmp_path)
    before = secret_yaml(tmp_path)
    conn, results = steps(tmp_path, rotate=True)
    assert results["pull"].status == "updated" and "(rotate;" in results["pull"].detail
    after = secret_yaml(tmp_path)
    old, new = before["jupyterhub"]["imagePullSecret"], after["jupyterhub"]["imagePullSecret"]
    assert old["password"] != new["password"]
    assert before["registry"]["password"] != after["registry"]["password"]
    api = admin_api(fresh)
    assert not harbor.robot_works(api, PULLER, Secret(old["password"]))  # one secret per robot
    assert harbor.robot_works(api, PULLER, Secret(new["password"]))
    assert conn.robot is not None and conn.pull_robot is not None
    ids = [conn.robot["id"], conn.pull_robot["id"]]
    assert sorted(record(tmp_path)["harbor_refreshed"]) == sorted(ids)
    finished = asyncio.run(conn.finish_rotation())
    assert finished.status == "deleted" and "both robots' old secrets" in finished.detail
    assert "harbor_refreshed" not in record(tmp_path)
    with pytest.raises(InvalidParameter) as err:
        params(tmp_path, rotate=True, keep_replaced=True)
    assert err.value.name == "keep_replaced" and "one secret per robot" in str(err.value)


def test_a_dry_run_says_what_it_would_do_and_creates_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    seeded = fresh.state()["harbor"]
    _, results = steps(tmp_path, dry_run=True)
    assert results["pull"].status == "planned"
    assert results["pull"].detail == (
        f"would create pull robot account {PULLER!r} (pull; never expires)"
    )
    assert fresh.state()["harbor"] == seeded
    steps(tmp_path)
    _, results = steps(tmp_path, dry_run=True, rotate=True)
    assert results["pull"].detail == f"would refresh the secret of {PULLER!r} (rotate)"
    assert "harbor_refreshed" not in record(tmp_path)


def test_teardown_deletes_the_pull_robot_before_the_project(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    seeded = fresh.state()["harbor"]
    steps(tmp_path)
    down = harbor.sign_in(params(tmp_path, teardown=True)).value
    assert harbor.ensure_pull_credential(down).status == "skipped"  # creates nothing
    planned = asyncio.run(
        harbor.sign_in(params(tmp_path, teardown=True, dry_run=True)).value.teardown()
    )
    assert planned.detail.startswith(f"would delete pull robot account {PULLER!r}, robot account")
    result = asyncio.run(down.teardown())
    assert result.detail.startswith(
        f"pull robot account {PULLER!r}, robot account {BUILDER!r}, project 'binderhub'"
    )
    assert fresh.state()["harbor"] == seeded and record(tmp_path) == {}


def test_a_crash_between_create_and_record_leaves_no_duplicate(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = harbor.create_robot

    def lost_answer(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise requests.ConnectionError("the answer was lost")

    conn = harbor.sign_in(params(tmp_path)).value
    harbor.ensure_project(conn)
    harbor.ensure_robot(conn)
    monkeypatch.setattr(harbor, "create_robot", lost_answer)
    with pytest.raises(requests.ConnectionError):
        harbor.ensure_pull_credential(conn)
    assert record(tmp_path)["harbor_pull_robot_pending"] == PULLER
    monkeypatch.setattr(harbor, "create_robot", real)
    _, results = steps(tmp_path)
    assert results["pull"].status == "updated"  # ours: its secret refreshed, not a second robot
    assert sorted(robots(fresh)) == [BUILDER, PULLER]
    assert "harbor_pull_robot_pending" not in record(tmp_path)
    assert record(tmp_path)["harbor_pull_robot"]["name"] == PULLER
    down = harbor.sign_in(params(tmp_path, teardown=True)).value
    asyncio.run(down.teardown())
    assert robots(fresh) == {}


# --- pull robots that are not this notebook's, and pull_access ------------------------------
def test_a_pull_robot_that_can_push_is_refused(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    api = admin_api(fresh)
    harbor.create_project(api, "binderhub")
    harbor.create_robot(api, "binderhub", "binderhub-puller", -1)  # push and pull
    with pytest.raises(PermissionDenied) as err:
        steps(tmp_path)
    message = str(err.value)
    assert "can push to 'binderhub', and user pods' robot must only pull" in message
    assert "pull_robot_name" in message and "\n" not in message


def test_pull_access_none_makes_no_robot_and_says_the_project_is_private(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    _, results = steps(tmp_path, pull_access="none")
    detail = results["pull"].detail
    assert results["pull"].status == "skipped"
    assert "project 'binderhub' is PRIVATE, so user pods cannot pull" in detail
    assert "Harbor then serves its images to anyone" in detail
    assert robots(fresh) == {BUILDER: ["pull", "push"]}
    assert "jupyterhub" not in secret_yaml(tmp_path)
    # a project someone made public: the step says so
    admin_api(fresh).call(
        "POST", "/projects", json={"project_name": "open", "metadata": {"public": "true"}}
    )
    _, results = steps(tmp_path, pull_access="none", harbor_project="open")
    assert (
        "project 'open' is public; Harbor then serves its images to anyone"
        in results["pull"].detail
    )


BAD = [
    ("pull_access", "node", "node identity"),
    ("pull_access", "public", "must be one of"),
    ("pull_robot_name", "binderhub-builder", "must differ from robot_name"),
    ("pull_robot_name", "Puller", "Harbor robot name"),
    ("pull_robot_name", "p" * 201, "Harbor robot name"),  # 200 at most, as robot_name
]


@pytest.mark.parametrize(("name", "value", "rule"), BAD, ids=[f"{n}={v[:20]!r}" for n, v, _ in BAD])
def test_a_bad_pull_parameter_is_one_line_before_any_call(
    name: str, value: str, rule: str, box: sandbox.Sandbox, tmp_path: Path
) -> None:
    calls = len(box.log())
    with pytest.raises(InvalidParameter) as err:
        params(tmp_path, **{name: value})
    message = str(err.value)
    assert err.value.name == name and message.startswith(f"parameter {name!r}: ")
    assert rule in message and "\n" not in message
    assert len(box.log()) == calls and not (tmp_path / "values").exists()


def test_verify_names_a_pull_robot_deleted_in_harbor(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    from binderhub_registry.errors import VerificationFailed

    conn, results = steps(tmp_path)
    assert conn.pull_robot is not None
    harbor.delete_robot(admin_api(fresh), int(conn.pull_robot["id"]))
    with pytest.raises(VerificationFailed) as err:
        conn.verify(results["files"].value)
    assert err.value.diagnosis == (
        f"pull robot account {PULLER!r} no longer exists in Harbor: rerun this notebook to make "
        "a new one and deploy the new secret.yaml"
    )
    assert "\n" not in str(err.value)
