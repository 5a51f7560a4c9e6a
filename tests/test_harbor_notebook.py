"""The Harbor provider, in process, against the sandbox's Harbor (the contract suite runs its
notebook): bad inputs, an expired robot diagnosed by verify, teardown leaving nothing, the
robot's secret in secret.yaml only, BinderHub's appended ``service``, robots that are not
this notebook's left alone, a lost secret refreshed, missing admin credentials.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import InvalidParameter, sandbox
from binderhub_registry.errors import MissingCredentials, PermissionDenied, VerificationFailed
from binderhub_registry.providers import harbor
from binderhub_registry.registry_http import url_concat
from binderhub_registry.verify import verify

from .helpers import HARBOR_DEFAULTS, admin_api, harbor_steps, settings

# --- bad inputs -----------------------------------------------------------------------------
BAD_INPUTS = [
    ("harbor_url", "http://harbor.example.org", "https://"),
    ("harbor_url", "harbor.example.org", "https://"),
    ("harbor_url", "https://harbor.example.org/api/v2.0", "no path"),
    ("harbor_url", "https://harbor example.org", "https://"),
    ("harbor_project", "BinderHub", "lowercase letters and digits"),
    ("harbor_project", "binder--hub", "single '.' or '-'"),
    ("harbor_project", "-binderhub", "single '.' or '-'"),
    # BinderHub turns '_' into '-' in image names: it would push to project bh-test, not ours
    ("harbor_project", "bh_test", "no '_': BinderHub turns '_' into '-'"),
    ("harbor_project", "", "Harbor project name"),
    ("robot_name", "ci+builder", "Harbor robot name"),
    ("robot_name", "robot$ci", "Harbor robot name"),
    ("robot_expiry_days", 0, "-1 (never expires)"),
    ("robot_expiry_days", 3651, "from 1 to 3650"),
    ("robot_expiry_days", -2, "-1 (never expires)"),
    ("robot_expiry_days", "30", "whole number of days"),
    ("robot_expiry_days", True, "whole number of days"),
    ("prefix", "Binder_", "no '_'"),
]


@pytest.mark.parametrize(
    ("name", "value", "rule"), BAD_INPUTS, ids=[f"{n}={v!r}" for n, v, _ in BAD_INPUTS]
)
def test_bad_input_is_one_line_naming_the_parameter_and_creates_nothing(
    name: str, value: Any, rule: str, box: sandbox.Sandbox, tmp_path: Path
) -> None:
    calls = len(box.log())
    output_dir = tmp_path / "values"
    with pytest.raises(InvalidParameter) as err:
        harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(output_dir)}, **{name: value})
    message = str(err.value)
    assert err.value.name == name and "\n" not in message
    assert message.startswith(f"parameter {name!r}: ") and rule in message
    assert not output_dir.exists() and len(box.log()) == calls  # nothing made, nothing sent


def test_missing_admin_credentials_say_how_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARBOR_USERNAME", raising=False)
    monkeypatch.delenv("HARBOR_PASSWORD", raising=False)
    p = harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "v"), "sandbox": False})
    with pytest.raises(MissingCredentials) as err:
        harbor.sign_in(p)  # before any request (pytest-socket would refuse one to example.org)
    assert "HARBOR_USERNAME and HARBOR_PASSWORD" in str(err.value)
    assert "\n" not in str(err.value)


def test_defaults_make_a_robot_that_never_expires() -> None:
    assert HARBOR_DEFAULTS["robot_expiry_days"] == -1
    assert harbor.expiry_text(-1) == "never expires"


# --- verify -----------------------------------------------------------------------------------
def test_a_robot_whose_expiry_passed_is_diagnosed_by_verify(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    settings(fresh, "harbor", clock_offset_days=-2)  # made two days ago, for one day
    conn, files = harbor_steps(tmp_path, robot_expiry_days=1)
    assert conn.verify(files).status == "done"
    # Harbor's clock today: the robot expired yesterday
    settings(fresh, "harbor", clock_offset_days=0)
    with pytest.raises(VerificationFailed) as err:
        conn.verify(files)
    diagnosis = err.value.diagnosis
    assert "robot account 'robot$binderhub+binderhub-builder' expired on" in diagnosis
    assert "robot_expiry_days = -1" in diagnosis and "\n" not in str(err.value)
    assert err.value.report is not None and err.value.report.checks[-1].detail == diagnosis
    # the fix it names: a rerun with -1 makes the robot never expire, the same secret works again
    secret = files.values.password
    conn, files = harbor_steps(tmp_path, robot_expiry_days=-1)
    robots = fresh.state()["harbor"]["robots"]
    assert [(r["name"], r["expires_at"]) for r in robots] == [
        ("robot$binderhub+binderhub-builder", -1),
        ("robot$binderhub+binderhub-puller", -1),
    ]
    assert files.values.password == secret  # nothing to redeploy
    assert conn.verify(files).status == "done"


def test_an_expired_robot_with_a_finite_expiry_is_replaced(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    settings(fresh, "harbor", clock_offset_days=-3)  # made three days ago, for one day
    harbor_steps(tmp_path, robot_expiry_days=1)
    settings(fresh, "harbor", clock_offset_days=0)
    conn, files = harbor_steps(tmp_path, robot_expiry_days=2)  # still past: a new robot, 2 days
    robots = fresh.state()["harbor"]["robots"]
    assert len(robots) == 2 and [r["duration"] for r in robots] == [2, 2]
    assert conn.verify(files).status == "done"


def test_binderhubs_appended_service_is_harmless_and_needed_in_token_url(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    _, files = harbor_steps(tmp_path)
    token_url = files.values.docker_registry["token_url"]
    assert token_url.endswith("/service/token?service=harbor-registry")
    user, password = files.values.username, files.values.password.reveal()
    # BinderHub's own request: its service=container_registry after token_url's
    scope = "repository:binderhub/binder-x:pull"
    url = url_concat(token_url, {"scope": scope, "service": "container_registry"})
    assert url.index("service=harbor-registry") < url.index("service=container_registry")
    answer = requests.get(url, auth=(user, password), verify=fresh.ca_file, timeout=10)
    assert answer.status_code == 200 and answer.json()["token"]
    # without ?service= in token_url, BinderHub's value is the first: Harbor answers 400
    values = files.values
    values.docker_registry["token_url"] = token_url.split("?")[0]
    with pytest.raises(VerificationFailed) as err:
        verify(values, ca_bundle=fresh.ca_file, hints=harbor.HINTS)
    assert "token_url" in err.value.diagnosis


# --- what the notebook touches ------------------------------------------------------------------
def test_teardown_leaves_nothing(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    import asyncio

    seeded = fresh.state()["harbor"]
    conn, files = harbor_steps(tmp_path)
    conn.verify(files)  # pushes a check image into the project
    assert fresh.state()["harbor"]["repositories"]
    down = harbor.sign_in(
        harbor.validate(
            HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values"), "teardown": True}
        )
    ).value
    result = asyncio.run(down.teardown())
    assert result.status == "deleted"
    assert "project 'binderhub' with its repositories" in result.detail
    assert fresh.state()["harbor"] == seeded  # no project, robot or repository left
    record = json.loads((tmp_path / "values" / "binderhub-registry.json").read_text())
    assert record["created"] == {}
    assert not (tmp_path / "values" / "secret.yaml").exists()


def test_the_robot_secret_is_in_secret_yaml_only(
    fresh: sandbox.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from binderhub_registry import Runner

    run = Runner()
    values = HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values")}
    secrets: list[str] = []
    for rotate in (False, True):  # creation, then a refresh
        p = harbor.validate(values, rotate=rotate)
        conn = run.step("Sign in", harbor.sign_in, p)
        run.step("Project", harbor.ensure_project, conn)
        secret = run.step("Robot", harbor.ensure_robot, conn)
        pull = run.step("Pull robot", harbor.ensure_pull_credential, conn)
        files = run.step("Write", conn.write_values)
        print(run.step("Verify", conn.verify, files), repr(secret), repr(pull), conn, files)
        secrets += [secret.reveal(), pull.reveal()]
    assert secrets[0] != secrets[2]
    secret_file = tmp_path / "values" / "secret.yaml"
    assert secrets[2] in secret_file.read_text() and secret_file.stat().st_mode & 0o777 == 0o600
    out = capsys.readouterr()
    seen = "\n".join(
        [
            out.out,
            out.err,
            str(run.checklist),
            run.checklist._repr_html_(),
            (tmp_path / "values" / "config.yaml").read_text(),
            (tmp_path / "values" / "binderhub-registry.json").read_text(),
            json.dumps(fresh.log()),
            json.dumps(fresh.state()),
            (fresh.directory / "sandbox.log").read_text(errors="replace"),
        ]
    )
    for secret in secrets:
        for form in (secret, base64.b64encode(f":{secret}".encode()).decode()[4:]):
            assert form not in seen


def test_a_robot_this_notebook_did_not_make_is_never_refreshed(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    api = admin_api(fresh)
    project = harbor.create_project(api, "binderhub")
    robot, secret = harbor.create_robot(api, "binderhub", "binderhub-builder", -1)
    with pytest.raises(PermissionDenied) as err:
        harbor_steps(tmp_path)
    assert "this notebook did not create it" in str(err.value) and "\n" not in str(err.value)
    assert harbor.robot_works(api, robot["name"], secret)  # its user still pushes
    assert harbor.find_robot(api, project, "binderhub-builder") is not None


def test_a_lost_secret_is_refreshed_not_duplicated(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    _, files = harbor_steps(tmp_path)
    old = files.values.password
    files.secret_path.unlink()
    again, files = harbor_steps(tmp_path)
    assert files.values.password != old
    api = admin_api(fresh)
    name = str(again.robot["name"]) if again.robot else ""
    assert not harbor.robot_works(api, name, old)
    assert harbor.robot_works(api, name, files.values.password)
    assert len(fresh.state()["harbor"]["robots"]) == 2


def test_teardown_leaves_a_project_it_found(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    import asyncio

    harbor.create_project(admin_api(fresh), "binderhub")  # someone else's project
    harbor_steps(tmp_path)
    down = harbor.sign_in(
        harbor.validate(
            HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values"), "teardown": True}
        )
    ).value
    result = asyncio.run(down.teardown())
    assert result.detail.startswith(
        "pull robot account 'robot$binderhub+binderhub-puller', "
        "robot account 'robot$binderhub+binderhub-builder';"
    )
    state = fresh.state()["harbor"]
    assert [p["name"] for p in state["projects"]] == ["library", "binderhub"]
    assert state["robots"] == []


def test_the_verify_command_words_a_harbor_refusal_in_harbors_terms(
    fresh: sandbox.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from binderhub_registry import cli

    settings(fresh, "harbor", clock_offset_days=-2)  # made two days ago, for one day
    _, files = harbor_steps(tmp_path, robot_expiry_days=1)
    settings(fresh, "harbor", clock_offset_days=0)  # expired yesterday
    config, secret = files.config_path, files.secret_path
    code = cli.main(["verify", "--ca-file", fresh.ca_file, str(config), str(secret)])
    err = capsys.readouterr().err
    # the command has no admin credentials to read the robot's expiry: Harbor's hints say
    # what such a refusal usually means, not the generic "lacks pull"
    assert code == 1 and err.count("\n") == 1
    assert "expired, was disabled or deleted" in err, err
