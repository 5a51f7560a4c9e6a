"""User pods' pull on Docker Hub: a read-only token (``repo:read``) as imagePullSecret.

The notebook's own cells run in process (:class:`~.conftest.InProcessRun`) against the
sandbox; one papermill run shows the refusal of ``pull_access = "node"`` as one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from binderhub_registry import InvalidParameter, PermissionDenied, providers, sandbox
from binderhub_registry.providers import dockerhub
from binderhub_registry.providers.dockerhub import SANDBOX_PULL_TOKEN_VARIABLE
from binderhub_registry.providers.dockerhub import SANDBOX_SECRET_VARIABLE as SANDBOX_SECRET
from binderhub_registry.sandbox.dockerhub import SEED_USER

from .conftest import NotebookRun, assert_fails_before_any_call
from .helpers import (
    Crash,
    Run,
    defaults,
    hub,
    hub_token,
    make_token,
    realm,
    session,
    settings,
    stopped_recording,
    stopped_writing_values,
    tokens,
    values_for,
)

pytestmark = pytest.mark.notebook


@pytest.fixture
def job(tmp_path: Path, fresh: sandbox.Sandbox) -> Run:
    return Run(tmp_path)


def scopes(box: sandbox.Sandbox) -> list[list[str]]:
    return sorted(t["scopes"] for t in tokens(box))


def anonymous(box: sandbox.Sandbox, repository: str) -> list[str]:
    """The actions the realm grants an anonymous caller on ``repository``."""
    import jwt

    r = requests.get(
        f"{box.url}/dockerhub/token",
        params={"service": "registry.docker.io", "scope": f"repository:{repository}:pull,push"},
        verify=box.ca_file,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["token"], options={"verify_signature": False})
    return list(claims["access"][0]["actions"])


def pushed(box: sandbox.Sandbox) -> str:
    """The repository verify pushed to."""
    (repository,) = box.state()["dockerhub"]["repositories"]
    return str(repository)


# --- the default run ------------------------------------------------------------------------
def test_default_run_writes_a_read_only_token_for_user_pods(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    out = job()
    assert "Pull-only credential for user pods [created]" in out
    assert "user pods (pull) ok, least privilege ok" in out
    pull = job.pull()
    host = fresh.registries["dockerhub"].split("://")[1]
    assert pull["create"] is True and pull["registry"] == host  # as in image_prefix
    assert pull["username"] == SEED_USER and pull["password"].startswith("dckr_pat_")
    assert pull["password"] != job.secret()["registry"]["password"]
    assert pull["password"] not in out
    assert scopes(fresh) == [["repo:admin"], ["repo:read"], ["repo:write"]]  # and prune's
    labels = {t["scopes"][0]: t["label"] for t in tokens(fresh)}
    assert labels["repo:read"] == labels["repo:write"] + " pull"
    assert labels["repo:admin"] == labels["repo:write"] + " prune"
    record = job.record()
    assert record["pull_token"]["label"] == labels["repo:read"]
    assert "pending_pull_token" not in record  # promoted: secret.yaml holds it


def test_the_read_only_token_pulls_a_private_repository_and_is_refused_a_push(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    settings(fresh, "dockerhub", default_privacy={SEED_USER: "private"})
    assert "least privilege ok" in job()
    repository = pushed(fresh)
    assert fresh.state()["dockerhub"]["privacy"][repository] == "private"
    pull = job.pull()
    assert realm(fresh, pull["username"], pull["password"], repository) == ["pull"]
    assert anonymous(fresh, repository) == []  # private: the credential is what pulls
    push = job.secret()["registry"]
    assert sorted(realm(fresh, push["username"], push["password"], repository)) == [
        "pull",
        "push",
    ]


def test_a_new_accounts_repositories_are_public_and_pull_anonymously(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    """A brand-new account's Default repository privacy is Public: what its push creates,
    anyone pulls; nobody pushes anonymously."""
    job()
    repository = pushed(fresh)
    assert fresh.state()["dockerhub"]["privacy"][repository] == "public"
    assert anonymous(fresh, repository) == ["pull"]
    assert anonymous(fresh, "binderhubdemo/never-pushed") == []


# --- reruns, rotation, dry run, teardown ---------------------------------------------------
def test_a_rerun_creates_nothing(job: Run, fresh: sandbox.Sandbox) -> None:
    job()
    before, pull = fresh.state(), job.pull()
    out = job()
    assert "Pull-only credential for user pods [reused]" in out
    assert fresh.state() == before and job.pull() == pull


def test_rotate_with_keep_replaced_keeps_both_old_tokens_until_a_plain_run(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    job()
    old = {t["uuid"] for t in tokens(fresh)}
    old_pull = job.pull()["password"]
    out = job(rotate=True, keep_replaced=True)
    assert "kept 3 replaced credential(s)" in out  # push, read-only and prune
    assert job.pull()["password"] != old_pull
    assert len(tokens(fresh)) == 6 and old < {t["uuid"] for t in tokens(fresh)}
    out = job()
    assert "removed 3 replaced credential(s)" in out
    assert not old & {t["uuid"] for t in tokens(fresh)}
    assert scopes(fresh) == [["repo:admin"], ["repo:read"], ["repo:write"]]


def test_a_dry_run_says_it_would_make_the_read_only_token_and_changes_nothing(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    before = fresh.state()
    out = job(dry_run=True)
    assert "would create read-only token" in out and "with repo:read" in out
    assert fresh.state() == before
    job()
    before = fresh.state()
    out = job(dry_run=True, rotate=True)
    assert "would rotate: create a new read-only token" in out
    assert "would remove 3 replaced credential(s)" in out  # push, read-only and prune
    assert fresh.state() == before


def test_teardown_deletes_the_read_only_token_too(job: Run, fresh: sandbox.Sandbox) -> None:
    job()
    out = job(teardown=True)
    assert "read-only token 'BinderHub push binderhubdemo/binder-* #" in out
    assert tokens(fresh) == []
    assert [k for k, v in job.record().items() if v and k != "deployment"] == []


def test_a_stop_between_creating_and_recording_leaves_no_duplicate(
    job: Run, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-only token was made but its answer never recorded (a crash): the rerun finds
    it by this deployment's label, deletes it (nobody holds its secret) and makes one."""
    with stopped_recording(monkeypatch, "pending_pull_token", skip=1), pytest.raises(Crash):
        job()
    assert scopes(fresh) == [["repo:read"], ["repo:write"]]  # made, not recorded
    job()
    assert scopes(fresh) == [["repo:admin"], ["repo:read"], ["repo:write"]]  # and the prune token
    assert job.record()["pull_token"]["uuid"] in {t["uuid"] for t in tokens(fresh)}


def test_a_stop_before_writing_then_teardown_deletes_the_pending_read_only_token(
    job: Run, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with stopped_writing_values(monkeypatch), pytest.raises(OSError):
        job()
    assert "pending_pull_token" in job.record()
    out = job(teardown=True)
    assert "the read-only token of a stopped rotation" in out
    assert tokens(fresh) == []


# --- pull_access ---------------------------------------------------------------------------
def test_pull_access_node_is_refused_in_one_line_before_any_call(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    assert_fails_before_any_call(
        dockerhub_nb, fresh, {"pull_access": "node"}, "pull_access", "knows no node identity"
    )


@pytest.mark.parametrize("value", ["Secret", "public", ""])
def test_a_bad_pull_access_is_refused_before_any_call(
    value: str, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    values = defaults(providers.get("dockerhub"), tmp_path) | {"pull_access": value}
    with pytest.raises(InvalidParameter) as err:
        dockerhub.validate(values)
    assert str(err.value).startswith("parameter 'pull_access': ")
    assert "\n" not in str(err.value)
    assert fresh.log() == []


def test_pull_access_none_makes_nothing_says_the_limits_and_retires_an_earlier_token(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    job()
    out = job(pull_access="none")
    assert "Pull-only credential for user pods [skipped]" in out
    assert "repositories must be public" in out
    assert "100 per 6 hours per IPv4 address or IPv6 /64 subnet" in out
    assert "jupyterhub" not in job.secret()
    assert "removed 1 replaced credential(s)" in out  # the read-only token no longer written
    assert scopes(fresh) == [["repo:admin"], ["repo:write"]]  # the prune job's stays
    assert "pull_token" not in job.record()


# --- a brought token cannot make tokens ------------------------------------------------------
@pytest.fixture
def brought(fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(SANDBOX_SECRET, make_token(fresh, ["repo:write"]))
    yield


def test_a_brought_token_alone_says_what_to_do_in_one_line(
    job: Run, fresh: sandbox.Sandbox, brought: None
) -> None:
    before = tokens(fresh)
    with pytest.raises(PermissionDenied) as err:
        job()
    message = str(err.value)
    assert "\n" not in message
    assert "rerun once signed in with the password" in message
    assert SANDBOX_PULL_TOKEN_VARIABLE in message and 'pull_access = "none"' in message
    assert tokens(fresh) == before


def test_a_brought_token_reuses_the_read_only_token_a_password_run_stored(
    job: Run, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    job()
    pull = job.pull()
    monkeypatch.setenv(SANDBOX_SECRET, make_token(fresh, ["repo:write"]))
    before = tokens(fresh)
    out = job()
    assert "Pull-only credential for user pods [reused]" in out
    assert job.pull() == pull and tokens(fresh) == before


def test_a_brought_read_only_token_becomes_user_pods_credential(
    job: Run, fresh: sandbox.Sandbox, brought: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_only = make_token(fresh, ["repo:read"])
    monkeypatch.setenv(SANDBOX_PULL_TOKEN_VARIABLE, read_only)
    out = job()
    assert f"the token in {SANDBOX_PULL_TOKEN_VARIABLE} is user pods' credential" in out
    assert "least privilege ok" in out
    assert job.pull()["password"] == read_only and read_only not in out


def test_a_wrong_brought_read_only_token_is_refused_in_one_line(
    job: Run, fresh: sandbox.Sandbox, brought: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SANDBOX_PULL_TOKEN_VARIABLE, "dckr_pat_not-a-token")
    with pytest.raises(dockerhub.AuthenticationFailed) as err:
        job()
    assert "\n" not in str(err.value) and "not-a-token" not in str(err.value)


# --- the fake -----------------------------------------------------------------------------------
def test_only_public_repositories_pull_with_repo_public_read(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    """Repo Public Read-only pulls public repositories; Repo Read-only private ones too."""
    settings(fresh, "dockerhub", default_privacy={SEED_USER: "private"})
    job()
    repository = pushed(fresh)
    public_read = make_token(fresh, ["repo:public_read"])
    assert realm(fresh, SEED_USER, public_read, repository) == []
    assert realm(fresh, SEED_USER, make_token(fresh, ["repo:read"]), repository) == ["pull"]
    # a later repository is public: the setting is read
    settings(fresh, "dockerhub", default_privacy={})
    assert fresh.state()["dockerhub"]["privacy"][repository] == "private"  # at its creation


def test_an_organization_access_tokens_session_may_not_make_tokens(
    fresh: sandbox.Sandbox,
) -> None:
    body = {
        "label": "pull",
        "resources": [
            {"type": "TYPE_REPO", "path": "binderhubdemoorg/*", "scopes": ["scope-image-pull"]}
        ],
    }
    made = hub(
        fresh, "POST", "/v2/orgs/binderhubdemoorg/access-tokens", headers=session(fresh), json=body
    )
    assert made.status_code == 201
    oat = made.json()["token"]
    assert realm(fresh, "binderhubdemoorg", oat, "binderhubdemoorg/x") == []  # no such repo
    signed = hub(
        fresh, "POST", "/v2/auth/token", json={"identifier": "binderhubdemoorg", "secret": oat}
    )
    auth = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    again = hub(fresh, "POST", "/v2/orgs/binderhubdemoorg/access-tokens", headers=auth, json=body)
    assert again.status_code == 403
    assert again.json()["message"] == "token issued from organization access token is not allowed"


# --- the anonymous pull limit (docker/docs docker-hub/usage/pulls.md) -------------------------
def test_anonymous_pulls_past_the_limit_get_docker_hubs_429(fresh: sandbox.Sandbox) -> None:
    """Manifest GETs with an anonymous token count per client address; HEADs and signed-in
    pulls do not; past the limit the registry answers 429 TOOMANYREQUESTS, as Docker Hub."""
    import requests

    from binderhub_registry import verify

    # no pull secret: verify's user pods' pull is anonymous, and counts (the repository is public)
    assert verify(values_for(fresh, hub_token(fresh, ["repo:write"])), ca_bundle=fresh.ca_file).ok
    settings(fresh, "dockerhub", anonymous_pull_limit=3)
    registry = fresh.registries["dockerhub"]
    name = "binderhubdemo/binder-binderhub-registry-check"
    token = requests.get(
        f"{fresh.url}/dockerhub/token",
        params={"service": "registry.docker.io", "scope": f"repository:{name}:pull"},
        verify=fresh.ca_file,
        timeout=10,
    ).json()["token"]
    manifest = f"{registry}/v2/{name}/manifests/verify"
    accept = "application/vnd.oci.image.manifest.v1+json"
    headers = {"Authorization": f"Bearer {token}", "Accept": accept}

    def get(method: str = "GET") -> requests.Response:
        return requests.request(method, manifest, headers=headers, verify=fresh.ca_file, timeout=10)

    assert get("HEAD").status_code == 200  # a HEAD is not a pull
    assert [get().status_code for _ in range(2)] == [200, 200]
    refused = get()
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert refused.headers["ratelimit-limit"] == "3;w=21600"
    # signed in, the same client still pulls (Personal accounts have their own limit)
    signed_in = requests.get(
        f"{fresh.url}/dockerhub/token",
        params={"service": "registry.docker.io", "scope": f"repository:{name}:pull"},
        auth=("binderhubdemo", hub_token(fresh, ["repo:read"])),
        verify=fresh.ca_file,
        timeout=10,
    ).json()["token"]
    pulled = requests.get(
        manifest,
        headers={"Authorization": f"Bearer {signed_in}", "Accept": accept},
        verify=fresh.ca_file,
        timeout=10,
    )
    assert pulled.status_code == 200
    fresh.reset()  # a reset starts a new window
    settings(fresh, "dockerhub", anonymous_pull_limit=2)
    assert get().status_code in (401, 404)  # the registry is empty again: no limit answer


def test_a_new_sandbox_limits_anonymous_pulls_as_docker_hub_does(fresh: sandbox.Sandbox) -> None:
    r = requests.get(
        f"{fresh.url}/_sandbox/dockerhub/settings",
        headers=fresh.admin_headers(),
        verify=fresh.ca_file,
        timeout=10,
    )
    assert (r.json()["anonymous_pull_limit"], r.json()["pull_window"]) == (100, 21600)
