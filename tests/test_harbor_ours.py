"""Harbor deletes and changes only what this deployment made, and trusts nothing Harbor echoes back.

The mark: each robot's description carries ``binderhub-registry <deployment id>`` (Harbor keeps
a robot's ``description``: swagger RobotCreate and Robot; the fake keeps it as Harbor does), and
the record keeps each robot's and the project's id, name and Harbor's ``creation_time``. A
project has no free-form field (swagger ProjectReq, ProjectMetadata), so its id, name and
creation time are its marks. Each test failed before the change.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from binderhub_registry import Runner, sandbox
from binderhub_registry.errors import CloudError, PermissionDenied
from binderhub_registry.providers import contract, harbor
from binderhub_registry.secrets import Secret

from .helpers import HARBOR_DEFAULTS, admin_api, harbor_steps


def record_path(root: Path) -> Path:
    return root / "values" / "binderhub-registry.json"


def edit_record(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit the record as a careless copy or a hostile edit would."""
    path = record_path(root)
    data = json.loads(path.read_text())
    change(data["created"])
    path.write_text(json.dumps(data, indent=2))


def teardown(root: Path) -> Any:
    p = harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(root / "values"), "teardown": True})
    return asyncio.run(harbor.sign_in(p).value.teardown())


def live(box: sandbox.Sandbox) -> dict[str, Any]:
    """Harbor's projects and robots as names."""
    state = box.state()["harbor"]
    return {
        "projects": sorted(p["name"] for p in state["projects"]),
        "robots": sorted(r["name"] for r in state["robots"]),
    }


def two_deployments(root: Path) -> tuple[harbor.HarborConnection, harbor.HarborConnection]:
    """This deployment (project binderhub, in root/a) and another one (project other)."""
    other, _ = harbor_steps(root / "b", harbor_project="other")
    ours, _ = harbor_steps(root / "a")
    return ours, other


def one_line_naming_both(err: pytest.ExceptionInfo[PermissionDenied], *names: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for name in names:
        assert name in message, (name, message)


# --- records naming what is not ours --------------------------------------------------------------
def test_the_issues_record_another_robot_and_library_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    _, other = two_deployments(tmp_path)
    assert other.robot is not None
    before = live(fresh)

    def hostile(created: dict[str, Any]) -> None:
        created["harbor_robot"]["id"] = other.robot["id"]  # type: ignore[index]
        created["harbor_project"]["name"] = "library"  # the seeded public project

    edit_record(tmp_path / "a", hostile)
    with pytest.raises(PermissionDenied) as err:
        teardown(tmp_path / "a")
    one_line_naming_both(
        err, "recorded as 'robot$binderhub+binderhub-builder'", "is 'robot$other+binderhub-builder'"
    )
    assert live(fresh) == before  # nothing deleted: not the other robot, not library, not ours


def test_a_record_naming_library_as_its_project_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    two_deployments(tmp_path)
    before = live(fresh)
    edit_record(tmp_path / "a", lambda c: c["harbor_project"].update(name="library"))
    with pytest.raises(PermissionDenied) as err:
        teardown(tmp_path / "a")
    one_line_naming_both(err, "project recorded as 'library'", "is 'binderhub'", "another name")
    assert live(fresh) == before  # checked before anything: its own robots stay too


def test_a_record_naming_another_deployments_pull_robot_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    _, other = two_deployments(tmp_path)
    assert other.pull_robot is not None
    before = live(fresh)
    edit_record(
        tmp_path / "a",
        lambda c: c["harbor_pull_robot"].update(
            id=other.pull_robot["id"],  # type: ignore[index]
            name=other.pull_robot["name"],  # type: ignore[index]
        ),
    )
    with pytest.raises(PermissionDenied) as err:
        teardown(tmp_path / "a")
    one_line_naming_both(err, "pull robot account recorded as", "lacks 'binderhub-registry ")
    assert live(fresh) == before


def test_a_forged_project_id_name_and_no_creation_time_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    two_deployments(tmp_path)
    before = live(fresh)
    library = harbor.find_project(admin_api(fresh), "library")
    assert library is not None
    edit_record(
        tmp_path / "a",
        lambda c: c.update(harbor_project={"name": "library", "id": library["project_id"]}),
    )
    with pytest.raises(PermissionDenied) as err:
        teardown(tmp_path / "a")
    one_line_naming_both(err, "project recorded as 'library'", "no robot of this deployment")
    assert live(fresh) == before


def test_a_robot_whose_mark_is_not_ours_is_not_refreshed_when_its_secret_is_lost(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    conn, files = harbor_steps(tmp_path)
    assert conn.robot is not None
    api = admin_api(fresh)
    robot = api.call("GET", f"/robots/{conn.robot['id']}")
    harbor.update_robot(api, robot, description="the CI's robot: do not touch")
    secret = files.values.password
    files.secret_path.unlink()
    with pytest.raises(PermissionDenied) as err:
        harbor_steps(tmp_path)
    one_line_naming_both(err, "robot account recorded as", "the CI's robot")
    assert harbor.robot_works(api, str(conn.robot["name"]), secret)  # its user still pushes


def test_the_marks_are_what_harbor_keeps(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    harbor_steps(tmp_path)
    data = json.loads(record_path(tmp_path).read_text())
    mark = f"binderhub-registry {data['deployment']}"
    api = admin_api(fresh)
    for kind in ("harbor_robot", "harbor_pull_robot"):
        recorded = data["created"][kind]
        robot = api.call("GET", f"/robots/{recorded['id']}")
        assert mark in robot["description"]
        assert robot["creation_time"] == recorded["creation_time"]
    project = api.call("GET", f"/projects/{data['created']['harbor_project']['id']}")
    assert project["creation_time"] == data["created"]["harbor_project"]["creation_time"]


# --- records written before the marks --------------------------------------------------------
def make_legacy(box: sandbox.Sandbox, root: Path) -> None:
    """What a run before this change left: old descriptions, no creation times."""
    api = admin_api(box)
    created = json.loads(record_path(root).read_text())["created"]
    for role in (harbor.BUILDER, harbor.PULLER):
        robot = api.call("GET", f"/robots/{created[role.kind]['id']}")
        harbor.update_robot(api, robot, description=role.legacy_description)

    def strip(c: dict[str, Any]) -> None:
        for kind in ("harbor_robot", "harbor_pull_robot", "harbor_project"):
            c[kind].pop("creation_time")

    edit_record(root, strip)


def test_a_record_from_before_is_marked_on_a_rerun_and_torn_down(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    seeded = live(fresh)
    harbor_steps(tmp_path)
    make_legacy(fresh, tmp_path)
    # the rerun proves the robots by name, id and old description; marks them
    harbor_steps(tmp_path)
    data = json.loads(record_path(tmp_path).read_text())
    api = admin_api(fresh)
    for kind in ("harbor_robot", "harbor_pull_robot", "harbor_project"):
        assert data["created"][kind]["creation_time"], kind
    robot = api.call("GET", f"/robots/{data['created']['harbor_robot']['id']}")
    assert f"binderhub-registry {data['deployment']}" in robot["description"]
    make_legacy(fresh, tmp_path)
    assert teardown(tmp_path).status == "deleted"  # its robots prove the project
    assert live(fresh) == seeded


# --- a Harbor that echoes secrets ----------------------------------------------------------
def answer(status: int, body: Any, reason: str = "Bad Request") -> requests.Response:
    r = requests.Response()
    r.status_code, r.reason = status, reason
    r._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    r.headers["Content-Type"] = "application/json"
    return r


def fake(
    monkeypatch: pytest.MonkeyPatch,
    api: harbor.HarborAPI,
    when: Callable[[str, str], bool],
    reply: requests.Response,
) -> None:
    """Harbor answers ``reply`` to the calls ``when`` picks; the rest go to the sandbox."""
    real = api.http.request

    def request(method: str, url: str, **kw: Any) -> requests.Response:
        return reply if when(method, url) else real(method, url, **kw)

    monkeypatch.setattr(api.http, "request", request)


def forms(secret: str, username: str) -> list[str]:
    return [
        secret,
        quote(secret, safe=""),
        base64.b64encode(f"{username}:{secret}".encode()).decode(),
        base64.b64encode(secret.encode()).decode(),
    ]


def test_an_error_body_echoing_the_admin_password_shows_none_of_it(
    box: sandbox.Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    creds = box.credentials("harbor")
    password, user = creds["password"], creds["username"]
    echoed = " ".join(forms(password, user))
    run = Runner(sleep=lambda s: None)
    p = harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values")})
    conn = run.step("Sign in", harbor.sign_in, p)
    assert conn.api is not None
    fake(
        monkeypatch,
        conn.api,
        lambda m, url: "/projects/" in url,
        answer(400, {"errors": [{"code": "BAD_REQUEST", "message": f"bad login {echoed}"}]}),
    )
    with pytest.raises(CloudError) as err:
        run.step("Project", harbor.ensure_project, conn)
    out = capsys.readouterr()
    seen = "\n".join(
        [str(err.value), out.out, out.err, str(run.checklist), run.checklist._repr_html_()]
    )
    assert "bad login" in str(err.value) and "\n" not in str(err.value)
    for form in forms(password, user):
        assert form not in seen


def test_an_error_echoing_a_robot_secret_or_the_password_in_its_reason_shows_none_of_it(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, files = harbor_steps(tmp_path)
    assert conn.api is not None and conn.robot is not None and conn.pull_secret is not None
    robot, pull = files.values.password.reveal(), conn.pull_secret.password.reveal()
    creds = fresh.credentials("harbor")
    echoed = " ".join(forms(robot, str(conn.robot["name"])) + forms(pull, "x"))
    reason = f"Conflict {quote(creds['password'], safe='')}"
    fake(
        monkeypatch,
        conn.api,
        lambda m, url: "/robots" in url,
        answer(409, f"<html>{echoed}</html>", reason=reason),
    )
    with pytest.raises(CloudError) as err:
        harbor.find_robot(conn.api, conn.project or {}, "x")
    for form in [*forms(robot, "x"), *forms(pull, "x"), quote(creds["password"], safe="")]:
        assert form not in str(err.value)
    assert "Conflict" in str(err.value)


# --- a 2xx with an unexpected body ---------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body", "said"),
    [
        ("POST", "/robots", {"id": 7}, "no name, secret, expires_at"),
        ("GET", "/projects/binderhub", "<html>welcome</html>", "it is not JSON"),
        ("GET", "/robots", {"robots": []}, "not a list of objects"),
    ],
    ids=["robot without secret", "project as HTML", "robots not a list"],
)
def test_an_unexpected_2xx_body_is_one_line_naming_the_call(
    fresh: sandbox.Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    body: Any,
    said: str,
) -> None:
    run = Runner(sleep=lambda s: None)
    p = harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values")})
    conn = run.step("Sign in", harbor.sign_in, p)
    assert conn.api is not None
    fake(
        monkeypatch,
        conn.api,
        lambda m, url: m == method and url.split("?")[0].endswith(path),
        answer(201 if method == "POST" else 200, body, "OK"),
    )
    with pytest.raises(CloudError) as err:
        run.step("Project", harbor.ensure_project, conn)
        run.step("Robot", harbor.ensure_robot, conn)
    message = str(err.value)
    assert "\n" not in message
    assert f"Harbor answered {method} /api/v2.0{path} with an unexpected body: {said}" in message


def test_the_password_is_never_in_a_robot_check_reason(
    box: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = box.credentials("harbor")
    api = harbor.HarborAPI(
        box.registries["harbor"], creds["username"], Secret(creds["password"]), box.ca_file
    )
    reply = answer(418, "", reason=f"teapot {creds['password']}")
    monkeypatch.setattr(requests.Session, "get", lambda self, url, **kw: reply)
    with pytest.raises(CloudError) as err:
        harbor.robot_works(api, "robot$x+y", Secret("robot-secret-1234"))
    assert creds["password"] not in str(err.value) and "teapot" in str(err.value)


def test_creation_times_compare_to_the_second_in_the_contract() -> None:
    """Harbor's ours checks compare creation times with the contract's ``same_time`` (one
    comparison for every provider, where Harbor and Docker Hub each had one)."""
    assert contract.same_time("2026-12-07T04:00:00.123Z", "2026-12-07T04:00:00.9+00:00")
    assert not contract.same_time("2026-12-07T04:00:00Z", "2026-12-07T04:00:02Z")
    assert contract.same_time("not a time", "not a time")
    assert not contract.same_time("2026-12-07T04:00:00Z", None)
    assert contract.instant("2026-12-07T04:00:00Z") == 1796616000.0
    assert contract.instant("") is None and contract.instant(7) is None
    assert not hasattr(harbor, "_same_time")  # Harbor's own copy went
