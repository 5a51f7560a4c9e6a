"""papermill scenarios on notebooks/02-docker-hub.ipynb against the sandbox."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from papermill.exceptions import PapermillExecutionError

from binderhub_registry import sandbox
from binderhub_registry.providers.dockerhub import SANDBOX_OTP_VARIABLE as SANDBOX_OTP
from binderhub_registry.providers.dockerhub import SANDBOX_PULL_TOKEN_VARIABLE as SANDBOX_PULL
from binderhub_registry.providers.dockerhub import SANDBOX_SECRET_VARIABLE as SANDBOX_SECRET
from binderhub_registry.sandbox.dockerhub import PULL_LIMIT_BODY, totp

from .conftest import NOTEBOOKS, NotebookRun, assert_fails_before_any_call, outputs_text
from .helpers import _hub_token, make_token, tokens

pytestmark = pytest.mark.notebook


def pushing(box: sandbox.Sandbox) -> list[dict[str, Any]]:
    """BinderHub's tokens (``repo:write``), not user pods' read-only ones."""
    return [t for t in tokens(box) if "repo:write" in t["scopes"]]


#: What a run leaves: BinderHub's token, user pods' read-only token and the prune job's token
#: (Read, Write, Delete), one each.
ONE_EACH = [["repo:admin"], ["repo:read"], ["repo:write"]]


def scopes(box: sandbox.Sandbox) -> list[list[str]]:
    return sorted(t["scopes"] for t in tokens(box))


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
    assert scopes(fresh) == ONE_EACH


def test_rerun_creates_nothing(dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    dockerhub_nb.set_up()
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
    assert len(posts) == 3  # the first run's only: BinderHub's, user pods' and the prune job's


def test_dry_run_changes_nothing(dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    before = fresh.state()
    nb = dockerhub_nb(dry_run=True)
    text = outputs_text(nb)
    assert "[planned]: would create access token" in text
    assert "Verify the image check, push and pull [skipped]" in text
    assert fresh.state() == before
    assert not dockerhub_nb.output_dir.exists() or not any(dockerhub_nb.output_dir.iterdir())
    assert all(e["method"] == "GET" or e["path"].endswith("/auth/token") for e in fresh.log())


@pytest.mark.parametrize(
    ("organization", "role"), [("binderhubdemoorg", "an owner"), ("binderhubeditors", "an editor")]
)
def test_organization_editor_or_owner_pushes(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, organization: str, role: str
) -> None:
    nb = dockerhub_nb(organization=organization)
    assert f"binderhubdemo is {role} of {organization}" in outputs_text(nb)
    config = yaml.safe_load((dockerhub_nb.output_dir / "config.yaml").read_text())
    assert f"/{organization}/binder-" in config["config"]["BinderHub"]["image_prefix"]
    assert "BinderHub finds the pushed image" in outputs_text(nb)


def test_owner_is_told_the_organization_access_token_path_is_unproven(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    # no public source shows an organization access token's push creating a repository
    text = outputs_text(dockerhub_nb(organization="binderhubdemoorg"))
    assert "personal access token is the proven way" in text
    assert "organization access token's push creates them is unproven" in text


@pytest.mark.parametrize(
    ("organization", "expected"),
    [
        ("someoneelsesorg", "is not a member of organization 'someoneelsesorg'"),
        ("nosuchorg", "organization 'nosuchorg' does not exist on Docker Hub"),
        # a plain member may not create repositories, which BinderHub does at every new build
        ("binderhubmembers", "ask an owner of binderhubmembers for the Editor role"),
    ],
)
def test_organization_refused(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, organization: str, expected: str
) -> None:
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(organization=organization)
    assert err.value.ename == "PermissionDenied"
    assert expected in err.value.evalue
    assert "\n" not in err.value.evalue
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
    ({"prefix": "binder_"}, "prefix", "no '_'"),  # BinderHub would push to binder-...
    ({"prefix": "binder_x-"}, "prefix", "turns '_' into '-'"),
    ({"organization": "a" * 30, "prefix": "b" * 60}, "prefix", "over Docker Hub's 100"),
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
    assert scopes(fresh) == ONE_EACH
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
    assert scopes(fresh) == ONE_EACH
    assert pushing(fresh)[0]["uuid"] == dockerhub_nb.record()["created"]["access_token"]["uuid"]


def test_wrong_secret_is_a_clear_authentication_error(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SANDBOX_SECRET, "not-the-password")
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb()
    assert err.value.ename == "AuthenticationFailed"
    assert "refused user 'binderhubdemo'" in err.value.evalue
    assert SANDBOX_SECRET in err.value.evalue
    assert "not-the-password" not in dockerhub_nb.last_output()
    assert tokens(fresh) == []


def test_sandbox_never_reads_real_credentials(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a developer's real secrets in the shell must not be sent to the sandbox
    monkeypatch.setenv("DOCKERHUB_PASSWORD", "real-password-never-sent")
    monkeypatch.setenv("DOCKERHUB_TOKEN", "dckr_pat_real-token-never-sent")
    monkeypatch.setenv("DOCKERHUB_OTP", "123456")
    nb = dockerhub_nb()
    assert "with the sandbox's seeded password" in outputs_text(nb)
    assert "BinderHub finds the pushed image" in outputs_text(nb)


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
    dockerhub_nb.set_up()
    assert scopes(fresh) == ONE_EACH
    nb = dockerhub_nb(teardown=True)
    assert "[deleted]" in outputs_text(nb)
    assert tokens(fresh) == []
    assert not (dockerhub_nb.output_dir / "secret.yaml").exists()
    dockerhub_nb(teardown=True)  # twice is fine: nothing left to delete
    assert tokens(fresh) == []


def test_revoked_token_is_replaced_on_rerun(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    dockerhub_nb.set_up()
    first = dockerhub_nb.record()["created"]["access_token"]["uuid"]
    (dockerhub_nb.output_dir / "secret.yaml").unlink()  # the secret is lost
    nb = dockerhub_nb()
    assert "Access token for BinderHub [created]" in outputs_text(nb)
    assert "replacing 1 whose secret was lost" in outputs_text(nb)
    assert [t["uuid"] for t in pushing(fresh)] != [first]
    assert scopes(fresh) == ONE_EACH


def test_new_secret_is_written_and_verified_before_the_old_token_goes(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    # the old token's secret may still be deployed: it goes only once the new one works
    dockerhub_nb.set_up()
    first = dockerhub_nb.record()["created"]["access_token"]["uuid"]
    (dockerhub_nb.output_dir / "secret.yaml").unlink()
    dockerhub_nb()
    log = fresh.log()
    deleted = max(i for i, e in enumerate(log) if e["path"].endswith(f"/access-tokens/{first}"))
    created = max(
        i
        for i, e in enumerate(log)
        if e["method"] == "POST" and e["path"].endswith("/access-tokens")
    )
    pushed = max(
        i for i, e in enumerate(log) if e["method"] == "PUT" and "/manifests/" in e["path"]
    )
    assert created < pushed < deleted


def test_deployments_sharing_an_account_keep_their_own_tokens(
    tmp_path: Path, fresh: sandbox.Sandbox
) -> None:
    staging = NotebookRun(NOTEBOOKS / "02-docker-hub.ipynb", tmp_path / "staging")
    production = NotebookRun(NOTEBOOKS / "02-docker-hub.ipynb", tmp_path / "production")
    for run in (staging, production):
        run.workdir.mkdir()
    staging()
    staging_secret = yaml.safe_load((staging.output_dir / "secret.yaml").read_text())
    production()  # same account, namespace and prefix, another output_dir
    labels = sorted(t["label"] for t in pushing(fresh))
    assert len(labels) == 2 and labels[0] != labels[1]
    assert all(label.startswith("BinderHub push binderhubdemo/binder-* #") for label in labels)
    assert all(len(label) <= 100 for label in labels)
    # staging's token survived production's run, and still works: a rerun reuses it
    assert "Access token for BinderHub [reused]" in outputs_text(staging())
    assert yaml.safe_load((staging.output_dir / "secret.yaml").read_text()) == staging_secret
    production(teardown=True)
    assert [t["label"] for t in pushing(fresh)] == [
        staging.record()["created"]["access_token"]["label"]
    ]
    assert len(tokens(fresh)) == 3  # and staging's read-only and prune tokens


def test_personal_access_token_becomes_the_credential_and_nothing_is_created(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    pat = make_token(fresh, ["repo:write"])
    monkeypatch.setenv(SANDBOX_PULL, make_token(fresh, ["repo:read"]))  # a token makes none
    before = tokens(fresh)
    monkeypatch.setenv(SANDBOX_SECRET, pat)
    made_by_the_test = len(fresh.log())
    nb = dockerhub_nb()
    text = outputs_text(nb)
    assert "with a personal access token from " + SANDBOX_SECRET in text
    assert "your personal access token is BinderHub's credential as it is" in text
    assert "BinderHub finds the pushed image" in text
    assert tokens(fresh) == before  # nothing created, nothing deleted
    secret = yaml.safe_load((dockerhub_nb.output_dir / "secret.yaml").read_text())["registry"]
    assert (secret["username"], secret["password"]) == ("binderhubdemo", pat)
    assert pat not in dockerhub_nb.last_output()
    # the notebook never asked Hub to manage tokens with the PAT's session
    run = fresh.log()[made_by_the_test:]
    assert not [e for e in run if e["path"].startswith("/dockerhub/v2/access-tokens")]


def test_personal_access_token_without_write_fails_verification(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SANDBOX_SECRET, make_token(fresh, ["repo:read"]))
    monkeypatch.setenv(SANDBOX_PULL, make_token(fresh, ["repo:read"]))
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb()
    assert err.value.ename == "VerificationFailed"
    assert "repo:write" in dockerhub_nb.last_output()


def test_personal_access_token_cannot_rotate(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SANDBOX_SECRET, make_token(fresh, ["repo:write"]))
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(rotate=True)
    assert err.value.ename == "PermissionDenied"
    assert "rotate needs a password sign-in" in err.value.evalue


def test_two_factor_account_signs_in_with_the_code(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = fresh.credentials("dockerhub-totp")
    monkeypatch.setenv(SANDBOX_SECRET, creds["password"])
    monkeypatch.setenv(SANDBOX_OTP, totp(creds["totp_seed"], time.time()))  # as the app shows
    nb = dockerhub_nb(username=creds["username"])
    text = outputs_text(nb)
    assert "BinderHub finds the pushed image" in text
    assert "a token is the way" in text  # said at sign-in, before anything is made
    second = [e for e in fresh.log() if e["path"] == "/dockerhub/v2/users/2fa-login"]
    assert [e["status"] for e in second] == [200]
    assert tokens(fresh)[0]["user"] == creds["username"]


def test_two_factor_account_without_a_code_stops_with_one_line(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = fresh.credentials("dockerhub-totp")
    monkeypatch.setenv(SANDBOX_SECRET, creds["password"])
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(username=creds["username"])  # headless: no prompt, no code
    assert err.value.ename == "MissingCredentials"
    assert "two-factor code" in err.value.evalue and SANDBOX_OTP in err.value.evalue
    assert "\n" not in err.value.evalue
    stale = totp(creds["totp_seed"], time.time() - 300)  # a code from ten steps ago
    monkeypatch.setenv(SANDBOX_OTP, stale)
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(username=creds["username"])
    assert err.value.ename == "AuthenticationFailed"
    assert "refused the two-factor code" in err.value.evalue
    assert tokens(fresh) == []


def test_single_sign_on_account_is_told_to_bring_a_token(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = fresh.credentials("dockerhub-sso")
    monkeypatch.setenv(SANDBOX_SECRET, creds["password"])
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(username=creds["username"])
    assert err.value.ename == "AuthenticationFailed"
    assert "single sign-on need a personal access token" in err.value.evalue


def test_registry_pull_limit_is_retried(dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    # Docker Hub counts manifest GETs (BinderHub's check) as pulls; past the limit: 429
    fresh.add_faults(
        {
            "method": "GET",
            "path": "^/v2/.*/manifests/",
            "status": 429,
            "retry_after": 1,
            "body": PULL_LIMIT_BODY,
        }
    )
    nb = dockerhub_nb()
    assert "BinderHub finds the pushed image" in outputs_text(nb)
    assert [e for e in fresh.log() if e["status"] == 429 and "/manifests/" in e["path"]]


def make_org_token(
    box: sandbox.Sandbox, org: str, scope: str = "scope-image-push", *, create: bool = False
) -> str:
    """An organization access token with ``scope`` on ``org/*`` (and, with ``create``, the
    organization scope Repository Create), made by its owner."""
    resources = [{"type": "TYPE_REPO", "path": f"{org}/*", "scopes": [scope]}]
    if create:
        resources.append({"type": "TYPE_ORG", "path": org, "scopes": ["scope-repository-create"]})
    body = {"label": "BinderHub", "resources": resources}
    return _hub_token(box, "dockerhub", f"orgs/{org}/access-tokens", body)


def test_organization_access_token_pushes_as_the_organization(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    oat = make_org_token(fresh, "binderhubdemoorg", create=True)  # verify's push creates one
    monkeypatch.setenv(SANDBOX_SECRET, oat)
    monkeypatch.setenv(SANDBOX_PULL, make_org_token(fresh, "binderhubdemoorg", "scope-image-pull"))
    nb = dockerhub_nb(organization="binderhubdemoorg")
    text = outputs_text(nb)
    assert "your organization access token is BinderHub's credential as it is" in text
    assert "so this is unproven" in text  # the one line of step 2
    assert "BinderHub finds the pushed image" in text
    secret = yaml.safe_load((dockerhub_nb.output_dir / "secret.yaml").read_text())["registry"]
    assert (secret["username"], secret["password"]) == ("binderhubdemoorg", oat)
    assert tokens(fresh) == []  # no personal access token made
    monkeypatch.setenv(SANDBOX_SECRET, oat)
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(organization="")  # an OAT signs in as its organization
    assert err.value.ename == "InvalidParameter" and "organization" in err.value.evalue


def test_organization_access_token_without_repository_create_fails_verification(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Image Push on org/* covers existing repositories; verify's push makes a new one
    monkeypatch.setenv(SANDBOX_SECRET, make_org_token(fresh, "binderhubdemoorg"))
    monkeypatch.setenv(SANDBOX_PULL, make_org_token(fresh, "binderhubdemoorg", "scope-image-pull"))
    with pytest.raises(PapermillExecutionError) as err:
        dockerhub_nb(organization="binderhubdemoorg")
    assert err.value.ename == "VerificationFailed"
    out = dockerhub_nb.last_output()
    assert "so this is unproven" in out and "scope-repository-create" in out
    assert fresh.state()["dockerhub"]["repositories"] == {}
