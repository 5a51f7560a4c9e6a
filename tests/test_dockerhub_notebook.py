"""papermill scenarios on notebooks/02-docker-hub.ipynb against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from papermill.exceptions import PapermillExecutionError

from binderhub_registry import sandbox

from .conftest import NotebookRun, assert_fails_before_any_call, outputs_text

pytestmark = pytest.mark.notebook


def tokens(box: sandbox.Sandbox) -> list[dict[str, Any]]:
    return list(box.state()["dockerhub"]["access_tokens"])


def test_default_run_writes_verified_values(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    nb = dockerhub_nb()
    text = outputs_text(nb)
    assert "Access token for BinderHub [created]" in text
    assert "BinderHub finds the pushed image" in text
    config = yaml.safe_load((dockerhub_nb.output_dir / "config.yaml").read_text())["config"]
    host = fresh.registries["dockerhub"].split("://")[1]
    assert config["BinderHub"] == {
        "use_registry": True,
        "image_prefix": f"{host}/binderhubdemo/binder-",
    }
    assert config["DockerRegistry"]["token_url"].endswith(
        "/dockerhub/token?service=registry.docker.io"
    )
    secret = dockerhub_nb.output_dir / "secret.yaml"
    assert secret.stat().st_mode & 0o777 == 0o600
    registry = yaml.safe_load(secret.read_text())["registry"]
    assert registry["username"] == "binderhubdemo"
    assert registry["password"].startswith("dckr_pat_")
    assert [t["scopes"] for t in tokens(fresh)] == [["repo:write"]]


def test_rerun_creates_nothing(dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    dockerhub_nb()
    before = fresh.state()
    password = yaml.safe_load((dockerhub_nb.output_dir / "secret.yaml").read_text())["registry"][
        "password"
    ]
    nb = dockerhub_nb()
    assert fresh.state() == before
    assert "Access token for BinderHub [reused]" in outputs_text(nb)
    again = yaml.safe_load((dockerhub_nb.output_dir / "secret.yaml").read_text())["registry"][
        "password"
    ]
    assert again == password
    posts = [
        e for e in fresh.log() if e["method"] == "POST" and e["path"].endswith("/access-tokens")
    ]
    assert len(posts) == 1  # the first run's only


def test_dry_run_changes_nothing(dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    before = fresh.state()
    nb = dockerhub_nb(dry_run=True)
    text = outputs_text(nb)
    assert "[planned]: would create access token" in text
    assert "Verify with BinderHub's handshake and a push [skipped]" in text
    assert fresh.state() == before
    assert not dockerhub_nb.output_dir.exists() or not any(dockerhub_nb.output_dir.iterdir())
    assert all(e["method"] == "GET" or e["path"].endswith("/auth/token") for e in fresh.log())


def test_organization_member(dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    nb = dockerhub_nb(organization="binderhubdemoorg")
    assert "binderhubdemo is a member of binderhubdemoorg" in outputs_text(nb)
    config = yaml.safe_load((dockerhub_nb.output_dir / "config.yaml").read_text())
    assert "/binderhubdemoorg/binder-" in config["config"]["BinderHub"]["image_prefix"]


@pytest.mark.parametrize(
    ("organization", "expected"),
    [
        ("someoneelsesorg", "is not a member of organization 'someoneelsesorg'"),
        ("nosuchorg", "organization 'nosuchorg' does not exist on Docker Hub"),
    ],
)
def test_organization_refused(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, organization: str, expected: str
) -> None:
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(organization=organization)
    assert err.value.ename == "PermissionDenied"
    assert expected in err.value.evalue
    assert tokens(fresh) == []


BAD_INPUTS = [
    ({"username": ""}, "username", "Docker ID"),
    ({"username": "Binder"}, "username", "lowercase"),
    ({"username": "abc"}, "username", "4 to 30"),
    ({"username": "a" * 31}, "username", "4 to 30"),
    ({"username": "binder demo"}, "username", "lowercase letters or digits"),
    ({"organization": "Org!"}, "organization", "organization name"),
    ({"prefix": "Binder-"}, "prefix", "lowercase"),
    ({"prefix": "team/binder-"}, "prefix", "no '/'"),
    ({"prefix": "-binder"}, "prefix", "must start with"),
    ({"prefix": "b" * 65}, "prefix", "at most 64"),
    ({"prefix": "binder--x"}, "prefix", "single"),
    ({"output_dir": ""}, "output_dir", "directory path"),
    ({"dry_run": "yes"}, "dry_run", "True or False"),
    ({"teardown": 1}, "teardown", "True or False"),
    ({"sandbox": "False"}, "sandbox", "True or False"),
]


@pytest.mark.parametrize(
    ("params", "name", "rule"), BAD_INPUTS, ids=[f"{p}" for p, _, _ in BAD_INPUTS]
)
def test_bad_input_fails_before_any_call(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, params: dict[str, Any], name: str, rule: str
) -> None:
    assert_fails_before_any_call(dockerhub_nb, fresh, params, name, rule)


def test_output_dir_that_is_a_file(dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    target = dockerhub_nb.workdir / "a-file"
    target.write_text("")
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(output_dir=str(target))
    assert err.value.evalue.startswith("parameter 'output_dir': must be a directory path")
    assert fresh.log() == []


@pytest.mark.parametrize(
    "fault",
    [
        {"method": "POST", "path": "/dockerhub/v2/access-tokens$", "status": 429, "retry_after": 1},
        {"method": "GET", "path": "/dockerhub/v2/access-tokens$", "status": 503, "times": 2},
        {"method": "POST", "path": "/dockerhub/v2/auth/token$", "drop": True},
        {"method": "POST", "path": "/dockerhub/v2/access-tokens$", "drop": True, "after": True},
        {"method": "GET", "path": "/dockerhub/token$", "status": 502, "times": 1},
    ],
    ids=["429-retry-after", "503-twice", "reset-before", "reset-after-create", "realm-502"],
)
def test_faults_are_retried_without_duplicates(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, fault: dict[str, Any]
) -> None:
    fresh.add_faults(fault)
    nb = dockerhub_nb()
    assert len(tokens(fresh)) == 1
    assert "BinderHub finds the pushed image" in outputs_text(nb)
    hits = [e for e in fresh.log() if e["status"] in (fault.get("status"), "dropped")]
    assert hits, "the fault was never injected"


def test_crash_half_way_then_rerun(dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    # every attempt creates a token and loses the answer: the run gives up half-way
    fresh.add_faults(
        {"method": "POST", "path": "/access-tokens$", "drop": True, "after": True, "times": 99}
    )
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb()
    assert err.value.ename == "TransientCloudError"
    assert len(tokens(fresh)) == 1  # each retry removed the orphan of the one before
    fresh.clear_faults()
    dockerhub_nb()
    assert len(tokens(fresh)) == 1
    assert tokens(fresh)[0]["uuid"] == dockerhub_nb.record()["created"]["access_token"]["uuid"]


def test_wrong_secret_is_a_clear_authentication_error(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKERHUB_PASSWORD", "not-the-password")
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb()
    assert err.value.ename == "AuthenticationFailed"
    assert "refused user 'binderhubdemo'" in err.value.evalue
    assert "DOCKERHUB_PASSWORD" in err.value.evalue
    assert "not-the-password" not in dockerhub_nb.last_output()
    assert tokens(fresh) == []


def test_real_mode_without_secret_says_how_to_give_one(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    # sandbox=False would reach hub.docker.com; with no secret it must stop before any call
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(sandbox=False)
    assert err.value.ename == "MissingCredentials"
    assert "DOCKERHUB_TOKEN or DOCKERHUB_PASSWORD" in err.value.evalue


def test_teardown_deletes_what_was_created(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    dockerhub_nb()
    assert len(tokens(fresh)) == 1
    nb = dockerhub_nb(teardown=True)
    assert "[deleted]" in outputs_text(nb)
    assert tokens(fresh) == []
    assert not (dockerhub_nb.output_dir / "secret.yaml").exists()
    dockerhub_nb(teardown=True)  # twice is fine: nothing left to delete
    assert tokens(fresh) == []


def test_revoked_token_is_replaced_on_rerun(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    dockerhub_nb()
    first = dockerhub_nb.record()["created"]["access_token"]["uuid"]
    (dockerhub_nb.output_dir / "secret.yaml").unlink()  # the secret is lost
    nb = dockerhub_nb()
    assert "Access token for BinderHub [created]" in outputs_text(nb)
    assert "replacing 1 whose secret was lost" in outputs_text(nb)
    assert [t["uuid"] for t in tokens(fresh)] != [first]
    assert len(tokens(fresh)) == 1
