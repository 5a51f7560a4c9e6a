"""``binderhub-registry prune`` on the fake Docker Hub, with the sandbox clock advanced.

Docker Hub has no retention API: prune reads each tag's ``tag_last_pulled`` /
``tag_last_pushed`` from Hub's API and deletes, with ``--apply`` only, the tags under the image
prefix not pulled for N days (never pulled: by push time).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests
import yaml

from binderhub_registry import InvalidParameter, PermissionDenied, prune, sandbox
from binderhub_registry.cli import main
from binderhub_registry.push import tiny_image
from binderhub_registry.registry_http import OCI_MANIFEST

from .helpers import Run, hub, hub_token, session

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


def push(box: sandbox.Sandbox, name: str, tag: str = "t1") -> None:
    """Push the tiny test image as ``binderhubdemo/<name>:<tag>`` (a build pod's push)."""
    repository = f"{NS}/{name}"
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
