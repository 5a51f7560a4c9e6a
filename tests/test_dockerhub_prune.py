"""``binderhub-registry prune`` on the fake Docker Hub, with the sandbox clock advanced.

Docker Hub has no retention API: prune reads each tag's ``tag_last_pulled`` /
``tag_last_pushed`` from Hub's API and deletes, with ``--apply`` only, the tags under the image
prefix not pulled for N days (never pulled: by push time).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tomllib
from pathlib import Path

import pytest
import requests
import yaml

from binderhub_registry import InvalidParameter, PermissionDenied, prune, sandbox
from binderhub_registry.cli import main
from binderhub_registry.providers import dockerhub
from binderhub_registry.push import tiny_image
from binderhub_registry.registry_http import OCI_MANIFEST

from .conftest import ROOT
from .helpers import Run, _hub_token, hub, hub_token, make_token, session, settings, tokens

NS = "binderhubdemo"
OLD, RECENT, NEW, OUTSIDE = "binder-old", "binder-recent", "binder-new", "other-app"


def registry_token(box: sandbox.Sandbox, repository: str, actions: str) -> dict[str, str]:
    """A registry bearer for ``repository`` as the seeded account (what docker login gets)."""
    creds = box.credentials("dockerhub")
    r = requests.get(
        f"{box.url}/dockerhub/token",
        params={"service": "registry.docker.io", "scope": f"repository:{repository}:{actions}"},
        auth=(creds["username"], creds["password"]),
        verify=box.ca_file,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def push(box: sandbox.Sandbox, name: str, tag: str = "t1", namespace: str = NS) -> None:
    """Push the tiny test image as ``<namespace>/<name>:<tag>`` (a build pod's push)."""
    repository = f"{namespace}/{name}"
    auth = registry_token(box, repository, "pull,push")
    base = f"{box.registries['dockerhub']}/v2/{repository}"
    layer, config, manifest = tiny_image()
    for blob in (layer, config):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        r = requests.post(f"{base}/blobs/uploads/", headers=auth, verify=box.ca_file, timeout=10)
        assert r.status_code == 202, r.text
        location = r.headers["Location"]
        location = (
            location if location.startswith("http") else box.registries["dockerhub"] + location
        )
        sep = "&" if "?" in location else "?"
        r = requests.put(
            f"{location}{sep}digest={digest}",
            data=blob,
            headers=auth | {"Content-Type": "application/octet-stream"},
            verify=box.ca_file,
            timeout=10,
        )
        assert r.status_code == 201, r.text
    r = requests.put(
        f"{base}/manifests/{tag}",
        data=manifest,
        headers=auth | {"Content-Type": OCI_MANIFEST},
        verify=box.ca_file,
        timeout=10,
    )
    assert r.status_code == 201, r.text


def pull(box: sandbox.Sandbox, name: str, tag: str = "t1") -> None:
    """A user pod's pull: the manifest GET Hub counts."""
    repository = f"{NS}/{name}"
    r = requests.get(
        f"{box.registries['dockerhub']}/v2/{repository}/manifests/{tag}",
        headers=registry_token(box, repository, "pull") | {"Accept": OCI_MANIFEST},
        verify=box.ca_file,
        timeout=10,
    )
    assert r.status_code == 200, r.text


def repositories(box: sandbox.Sandbox) -> dict[str, list[str]]:
    return dict(box.state()["dockerhub"]["repositories"])


def run(box: sandbox.Sandbox, days: int = 30, **kw: object) -> prune.PrunePlan:
    return prune.prune(
        f"{box.registries['dockerhub'].split('://')[1]}/{NS}/binder-",
        days,
        username=NS,
        hub_url=f"{box.url}/dockerhub",
        ca_file=box.ca_file,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def aged(fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch) -> sandbox.Sandbox:
    """Four images 40 days on: binder-old never pulled, binder-recent pulled today,
    other-app (outside the prefix) never pulled, binder-new pushed today; the token (Read,
    Write, Delete) in $DOCKERHUB_TOKEN."""
    for name in (OLD, RECENT, OUTSIDE):
        push(fresh, name)
    pull(fresh, RECENT)
    assert fresh.advance_clock(40)["dockerhub"] == {"deleted": []}  # Hub deletes nothing itself
    pull(fresh, RECENT)
    push(fresh, NEW)
    monkeypatch.setenv("DOCKERHUB_TOKEN", hub_token(fresh, ["repo:admin"]))
    return fresh


def names(tags: list[prune.TagAge]) -> list[str]:
    return sorted(f"{t.repository}:{t.tag}" for t in tags)


def test_hub_lists_each_tags_last_pull_and_push_as_its_api_does(aged: sandbox.Sandbox) -> None:
    r = hub(aged, "GET", f"/v2/namespaces/{NS}/repositories/{OLD}/tags", headers=session(aged))
    assert r.status_code == 200, r.text
    (tag,) = r.json()["results"]
    assert tag["name"] == "t1" and tag["tag_last_pulled"] is None  # never pulled: null
    assert tag["tag_last_pushed"].endswith("Z")
    recent = hub(
        aged, "GET", f"/v2/namespaces/{NS}/repositories/{RECENT}/tags", headers=session(aged)
    ).json()["results"][0]
    assert recent["tag_last_pulled"] > recent["tag_last_pushed"]  # pulled after the clock moved


def test_a_dry_run_shows_the_old_tag_under_the_prefix_and_deletes_nothing(
    aged: sandbox.Sandbox,
) -> None:
    before = repositories(aged)
    plan = run(aged)
    assert names(plan.delete) == [f"{NS}/{OLD}:t1"]
    assert names(plan.keep) == [f"{NS}/{NEW}:t1", f"{NS}/{RECENT}:t1"]  # other-app: not listed
    assert not plan.applied and not plan.deleted
    text = plan.text()
    assert f"would delete: {NS}/{OLD}:t1 (pushed, never pulled, 40 days ago)" in text
    assert "--apply" in text
    assert repositories(aged) == before


def test_apply_deletes_the_old_tag_only_and_a_rerun_deletes_nothing(
    aged: sandbox.Sandbox,
) -> None:
    plan = run(aged, apply=True)
    assert names(plan.deleted) == [f"{NS}/{OLD}:t1"]
    left = repositories(aged)
    assert f"{NS}/{OLD}" not in left
    assert {f"{NS}/{RECENT}", f"{NS}/{NEW}", f"{NS}/{OUTSIDE}"} <= set(left)  # outside: untouched
    again = run(aged, apply=True)
    assert again.deleted == [] and repositories(aged) == left


def test_zero_days_keeps_everything(aged: sandbox.Sandbox) -> None:
    plan = run(aged, days=0, apply=True)
    assert plan.deleted == [] and "every tag is kept" in plan.text()


def test_deleting_one_tag_keeps_the_same_images_other_tags(aged: sandbox.Sandbox) -> None:
    push(aged, OLD, "t2")  # the same image (the test image is deterministic), pushed today
    plan = run(aged, apply=True)
    assert names(plan.deleted) == [f"{NS}/{OLD}:t1"]
    assert repositories(aged)[f"{NS}/{OLD}"] == ["t2"]  # as Hub's tag delete leaves it


def test_a_token_that_may_not_delete_is_refused_and_nothing_goes(
    aged: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKERHUB_TOKEN", hub_token(aged, ["repo:write"]))
    before = repositories(aged)
    with pytest.raises(PermissionDenied):
        run(aged, apply=True)
    assert repositories(aged) == before


def test_the_cli_reads_the_token_from_the_environment_and_deletes_only_with_apply(
    aged: sandbox.Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "prune",
        "--image-prefix",
        f"docker.io/{NS}/binder-",
        "--username",
        NS,
        "--days",
        "30",
        "--hub-url",
        f"{aged.url}/dockerhub",
        "--ca-file",
        aged.ca_file,
    ]
    assert main(argv) == 0
    assert f"would delete: {NS}/{OLD}:t1" in capsys.readouterr().out
    assert f"{NS}/{OLD}" in repositories(aged)
    assert main([*argv, "--apply"]) == 0
    assert f"deleted: {NS}/{OLD}:t1" in capsys.readouterr().out
    assert f"{NS}/{OLD}" not in repositories(aged)


def test_the_cli_without_the_token_variable_says_which_in_one_line(
    fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DOCKERHUB_TOKEN", raising=False)
    argv = ["prune", "--image-prefix", f"{NS}/binder-", "--username", NS, "--hub-url", fresh.url]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "DOCKERHUB_TOKEN" in err


@pytest.mark.parametrize("prefix", ["binder-", "docker.io/BinderHub/binder-", "a/b/c/d"])
def test_a_bad_image_prefix_is_refused_before_any_call(prefix: str) -> None:
    with pytest.raises(InvalidParameter, match="image_prefix"):
        prune.prune(prefix, 30, username=NS, hub_url="https://127.0.0.1:9")


def test_the_cronjob_takes_the_token_from_a_secret_and_applies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["prune", "--image-prefix", f"docker.io/{NS}/binder-", "--username", NS, "--cronjob"]
    assert main([*argv, "--days", "14"]) == 0
    job = yaml.safe_load(capsys.readouterr().out)
    assert job["kind"] == "CronJob" and job["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {
            "name": "DOCKERHUB_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "binderhub-registry-prune", "key": "token"}},
        }
    ]
    command = container["command"][-1]
    assert "--apply" in command and "--days 14" in command and f"{NS}/binder-" in command
    # not on PyPI yet: the repository's address (pyproject's) at a git ref, as a source archive
    # pip builds without git (the python image has none: a git+https requirement fails there)
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    archive = f"{repository['Repository']}/archive/refs/heads/main.tar.gz"
    assert f"pip install --quiet 'binderhub-registry @ {archive}'" in command
    assert "git+" not in command


# --- the notebook's step: the CronJob manifest ------------------------------------------------
@pytest.fixture
def job(tmp_path: Path, fresh: sandbox.Sandbox) -> Run:
    return Run(tmp_path)


@pytest.mark.notebook
def test_the_notebook_writes_the_prune_job_once_and_teardown_removes_it(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    manifest = job.output_dir / "prune-cronjob.yaml"
    out = job(dry_run=True, retention_days=14)
    assert "would write" in out and "images not pulled for 14 days are deleted" in out
    assert not manifest.exists()  # a dry run shows the policy and writes nothing
    out = job(retention_days=14)
    assert "Prune job for old images" in out and "--days 14" in out
    written = yaml.safe_load(manifest.read_text())
    (container,) = written["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert (
        f"--image-prefix {NS}/binder- --days 14 --username {NS} --apply" in container["command"][-1]
    )
    assert "unchanged" in job(retention_days=14)  # a rerun changes nothing
    job(teardown=True)
    assert not manifest.exists()


@pytest.mark.notebook
def test_retention_days_zero_writes_no_prune_job(job: Run, fresh: sandbox.Sandbox) -> None:
    out = job(retention_days=0)
    assert "retention_days = 0: every image is kept: no prune job" in out
    assert not (job.output_dir / "prune-cronjob.yaml").exists()


def test_the_cli_retries_hubs_transient_answers(
    aged: sandbox.Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINDERHUB_REGISTRY_RETRY_BACKOFF", "0")
    aged.add_faults(
        {"method": "GET", "path": f"^/dockerhub/v2/namespaces/{NS}/repositories/", "status": 503},
        {
            "method": "DELETE",
            "path": "^/dockerhub/v2/repositories/",
            "status": 429,
            "retry_after": 0,
        },
    )
    argv = ["prune", "--image-prefix", f"docker.io/{NS}/binder-", "--username", NS, "--apply"]
    assert main([*argv, "--hub-url", f"{aged.url}/dockerhub", "--ca-file", aged.ca_file]) == 0
    assert f"deleted: {NS}/{OLD}:t1" in capsys.readouterr().out
    assert f"{NS}/{OLD}" not in repositories(aged)
    assert [f["times"] for f in aged.faults()] == [0, 0]  # both were met, and retried past


# --- the notebook's prune token: Read, Write, Delete, only in prune-secret.yaml ------------------
PRUNE_STEP = "Prune token (Read, Write, Delete)"


def prune_token(job: Run) -> str:
    """The token the notebook wrote into the CronJob's Secret manifest."""
    manifest = yaml.safe_load((job.output_dir / "prune-secret.yaml").read_text())
    return str(manifest["stringData"]["token"])


def aged_images(box: sandbox.Sandbox) -> None:
    """binder-old never pulled, binder-recent pulled today, other-app outside the prefix, 40
    days on (the sandbox clock)."""
    for name in (OLD, RECENT, OUTSIDE):
        push(box, name)
    box.advance_clock(40)
    pull(box, RECENT)


@pytest.mark.notebook
def test_the_notebooks_prune_token_deletes_old_tags_with_apply(
    job: Run, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = job()
    assert f"{PRUNE_STEP} [created]" in out
    secret = job.output_dir / "prune-secret.yaml"
    assert secret.stat().st_mode & 0o777 == 0o600
    manifest = yaml.safe_load(secret.read_text())
    cronjob = yaml.safe_load((job.output_dir / "prune-cronjob.yaml").read_text())
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    ref = container["env"][0]["valueFrom"]["secretKeyRef"]
    assert manifest["kind"] == "Secret" and manifest["metadata"]["name"] == ref["name"]
    assert ref["key"] in manifest["stringData"]  # the CronJob reads what the Secret holds
    assert f"kubectl apply -f {secret}" in out
    aged_images(fresh)
    monkeypatch.setenv("DOCKERHUB_TOKEN", prune_token(job))  # as the CronJob's env sets it
    plan = run(fresh, apply=True)
    assert f"{NS}/{OLD}:t1" in names(plan.deleted)
    assert f"{NS}/{RECENT}:t1" in names(plan.keep)
    left = repositories(fresh)
    assert f"{NS}/{OLD}" not in left and {f"{NS}/{RECENT}", f"{NS}/{OUTSIDE}"} <= set(left)


@pytest.mark.notebook
def test_binderhubs_own_token_is_refused_a_tag_delete_as_hub_refuses_it(
    job: Run, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    job()
    aged_images(fresh)
    binderhub = job.secret()["registry"]["password"]  # repo:write: Read & Write
    refused = hub(
        fresh,
        "DELETE",
        f"/v2/repositories/{NS}/{OLD}/tags/t1/",
        headers=session(fresh, secret=binderhub),
    )
    assert refused.status_code == 403
    assert refused.json()["message"] == "access denied: insufficient scope"  # Hub's, captured
    monkeypatch.setenv("DOCKERHUB_TOKEN", binderhub)
    before = repositories(fresh)
    with pytest.raises(PermissionDenied, match=r"may not delete; it needs Read, Write, Delete"):
        run(fresh, apply=True)
    assert repositories(fresh) == before


@pytest.mark.notebook
def test_the_prune_token_is_written_only_in_its_secret_manifest(
    job: Run, fresh: sandbox.Sandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    out = job()
    token = prune_token(job)
    assert token.startswith("dckr_pat_")
    assert token not in out
    for path in job.output_dir.rglob("*"):
        if path.is_file() and path.name != "prune-secret.yaml":
            assert token not in path.read_text(errors="replace"), path
    assert token not in json.dumps(job.secret())  # BinderHub's values hold no right to delete
    captured = capfd.readouterr()
    assert token not in captured.out + captured.err
    assert token not in json.dumps(fresh.log())


@pytest.mark.notebook
def test_a_dry_run_plans_the_prune_token_and_a_rerun_reuses_it(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    before = fresh.state()
    out = job(dry_run=True)
    assert "would create prune token 'BinderHub push binderhubdemo/binder-* #" in out
    assert "prune' with repo:admin" in out
    assert fresh.state() == before and not (job.output_dir / "prune-secret.yaml").exists()
    job()
    token, before = prune_token(job), fresh.state()
    assert f"{PRUNE_STEP} [reused]" in job()
    assert prune_token(job) == token and fresh.state() == before


@pytest.mark.notebook
def test_rotate_replaces_the_prune_token_and_deletes_the_old_one_once_verified(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    job()
    old, old_uuid = prune_token(job), job.record()["prune_token"]["uuid"]
    out = job(rotate=True)
    assert "rotate: create a new prune token" not in out  # a real run: created, not planned
    assert f"{PRUNE_STEP} [created]" in out
    new = prune_token(job)
    assert new != old
    live = {t["uuid"]: t for t in tokens(fresh)}
    assert old_uuid not in live  # removed with the other replaced tokens, after verify
    assert live[job.record()["prune_token"]["uuid"]]["scopes"] == ["repo:admin"]
    signed_in = hub(fresh, "POST", "/v2/auth/token", json={"identifier": NS, "secret": old})
    assert signed_in.status_code == 401


@pytest.mark.notebook
def test_teardown_deletes_the_prune_token_and_its_secret_manifest(
    job: Run, fresh: sandbox.Sandbox
) -> None:
    job()
    label = job.record()["prune_token"]["label"]
    assert label.endswith(" prune")
    out = job(teardown=True)
    assert f"prune token {label!r}" in out and "the prune token's Secret manifest" in out
    assert tokens(fresh) == []
    assert not (job.output_dir / "prune-secret.yaml").exists()


@pytest.mark.notebook
def test_teardown_leaves_another_deployments_prune_token(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    for name in ("staging", "production"):
        (tmp_path / name).mkdir()
    staging, production = Run(tmp_path / "staging"), Run(tmp_path / "production")
    staging()
    production()
    production(teardown=True)
    (left,) = [t for t in tokens(fresh) if t["scopes"] == ["repo:admin"]]
    assert left["uuid"] == staging.record()["prune_token"]["uuid"]


@pytest.mark.notebook
def test_retention_days_zero_deletes_the_prune_token(job: Run, fresh: sandbox.Sandbox) -> None:
    job()
    out = job(retention_days=0)
    assert "prune token 'BinderHub push" in out and "deleted" in out
    assert sorted(t["scopes"] for t in tokens(fresh)) == [["repo:read"], ["repo:write"]]
    assert not (job.output_dir / "prune-secret.yaml").exists()
    assert not (job.output_dir / "prune-cronjob.yaml").exists()
    assert "prune_token" not in job.record()


@pytest.mark.notebook
def test_a_brought_token_makes_no_prune_token_and_says_what_to_do(
    job: Run, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(dockerhub.SANDBOX_SECRET_VARIABLE, make_token(fresh, ["repo:write"]))
    before = tokens(fresh)
    out = job(pull_access="none")
    assert f"{PRUNE_STEP} [skipped]" in out
    assert "Read, Write, Delete" in out and "kubectl create secret generic" in out
    assert tokens(fresh) == before and not (job.output_dir / "prune-secret.yaml").exists()


def org_token(box: sandbox.Sandbox, *org_scopes: str) -> str:
    """An organization access token of binderhubdemoorg (the seeded account owns it, on a Team
    plan) with Image Delete and Tag Admin on its repositories, and ``org_scopes``."""
    resources: list[dict[str, object]] = [
        {"type": "TYPE_REPO", "path": f"{ORG}/*", "scopes": ["scope-image-delete"]},
        {"type": "TYPE_REPO", "path": f"{ORG}/*", "scopes": ["scope-tag-admin"]},
    ]
    if org_scopes:
        resources.append({"type": "TYPE_ORG", "path": ORG, "scopes": list(org_scopes)})
    body = {"label": "p", "resources": resources}
    return _hub_token(box, "dockerhub", f"orgs/{ORG}/access-tokens", body)


ORG = "binderhubdemoorg"


def oat_session(box: sandbox.Sandbox, secret: str) -> dict[str, str]:
    """A Hub API session opened with an organization access token (identifier: the org)."""
    r = hub(box, "POST", "/v2/auth/token", json={"identifier": ORG, "secret": secret})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_prune_refuses_an_organization_access_token_before_any_call(
    fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKERHUB_TOKEN", org_token(fresh, "scope-repository-list"))
    calls = len(fresh.log())
    with pytest.raises(PermissionDenied, match="namespace-scoped routes only") as err:
        prune.prune(
            f"{ORG}/binder-",
            30,
            username=ORG,
            hub_url=f"{fresh.url}/dockerhub",
            ca_file=fresh.ca_file,
        )
    assert "\n" not in str(err.value) and "dckr_oat_" not in str(err.value)
    assert len(fresh.log()) == calls


def test_hub_lists_repositories_on_the_namespace_route_and_the_legacy_one_refuses_oats(
    fresh: sandbox.Sandbox,
) -> None:
    push(fresh, OLD, namespace=ORG)
    settings(fresh, "dockerhub", default_privacy={ORG: "private"})
    push(fresh, NEW, namespace=ORG)  # private: the namespace's default now

    def listed(secret: str, path: str) -> requests.Response:
        return hub(fresh, "GET", path, headers=oat_session(fresh, secret))

    plain, listing = org_token(fresh), org_token(fresh, "scope-repository-list")
    legacy = listed(listing, f"/v2/repositories/{ORG}/")
    assert legacy.status_code == 403
    assert legacy.json()["message"] == "token issued from organization access token is not allowed"

    def names(r: requests.Response) -> list[str]:
        return sorted(x["name"] for x in r.json()["results"])

    assert names(listed(listing, f"/v2/namespaces/{ORG}/repositories")) == [NEW, OLD]
    assert names(listed(plain, f"/v2/namespaces/{ORG}/repositories")) == [OLD]  # public only
    refused = hub(
        fresh,
        "DELETE",
        f"/v2/repositories/{ORG}/{OLD}/tags/t1/",
        headers=oat_session(fresh, listing),
    )
    assert refused.status_code == 403 and f"{ORG}/{OLD}" in repositories(fresh)


def test_prune_lists_with_the_documented_route_not_the_deprecated_one(
    aged: sandbox.Sandbox,
) -> None:
    run(aged)
    paths = [e["path"] for e in aged.log() if e["method"] == "GET"]
    assert f"/dockerhub/v2/namespaces/{NS}/repositories" in paths
    assert not [p for p in paths if p.startswith(f"/dockerhub/v2/repositories/{NS}")]


@pytest.mark.notebook
def test_git_ignores_the_prune_secret_also_in_an_output_dir_from_before(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    job = Run(tmp_path)
    job.output_dir.mkdir(parents=True, exist_ok=True)
    before = "secret.yaml\nbinderhub-registry.json\n"  # a .gitignore written before this file
    (job.output_dir / ".gitignore").write_text(before)
    job()
    assert (job.output_dir / "prune-secret.yaml").is_file()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    status = subprocess.run(
        ["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "prune-cronjob.yaml" in status and "prune-secret.yaml" not in status
    assert (job.output_dir / ".gitignore").read_text().startswith(before)


@pytest.mark.notebook
def test_an_editors_prune_token_deletes_in_the_organization(
    job: Run, fresh: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editors "delete repositories" and "Manage tags" (Docker's core roles), so the prune
    token the notebook makes for an editor deletes the organization's old tags."""
    org = "binderhubeditors"  # the seeded account is an editor there
    job(organization=org)
    push(fresh, OLD, namespace=org)
    fresh.advance_clock(40)
    monkeypatch.setenv("DOCKERHUB_TOKEN", prune_token(job))
    plan = prune.prune(
        f"{org}/binder-",
        30,
        username=NS,
        apply=True,
        hub_url=f"{fresh.url}/dockerhub",
        ca_file=fresh.ca_file,
    )
    assert f"{org}/{OLD}:t1" in names(plan.deleted)
    assert f"{org}/{OLD}" not in repositories(fresh)
