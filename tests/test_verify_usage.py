"""``binderhub-registry verify`` reports the storage used against the registry's limit (issue 22,
point 2), as the notebooks' storage step does: one row of the report, a warning above 80% (told
on stderr too; the exit code stays 0, as for verify's other warnings), and one "not read" line
naming what to set where the values' credential may not read it and the notebook's admin
credential is not in the environment. Each registry on the sandbox, through the command's own
entry point; the "not read" answers of real mode are asked of each registry's hook directly (they
return before any call).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from binderhub_registry import providers, sandbox
from binderhub_registry.binderhub import RegistryValues
from binderhub_registry.cli import main
from binderhub_registry.errors import CloudError
from binderhub_registry.secrets import Secret
from binderhub_registry.usage import Usage

from .conftest import NOTEBOOKS, InProcessRun, NotebookRun
from .helpers import (
    admin_api,
    full_run,
    harbor_push,
    harbor_steps,
    ovh_params,
    runner,
    settings,
    signed_in,
    whole_run,
)

GIB = 1 << 30


def verify(capsys: pytest.CaptureFixture[str], box: sandbox.Sandbox, out: Path) -> Any:
    """``binderhub-registry verify`` of the values in ``out``: (exit code, stdout, stderr)."""
    files = [str(out / "config.yaml"), str(out / "secret.yaml")]
    code = main(["verify", "--ca-file", box.ca_file, *files])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def storage_line(stdout: str) -> str:
    """The report's storage row (AssertionError when there is none)."""
    rows = [line.strip() for line in stdout.splitlines() if " storage: " in line]
    assert len(rows) == 1, stdout
    return rows[0]


def secrets_of(out: Path, box: sandbox.Sandbox, cloud: str) -> list[str]:
    """The values' passwords and the sandbox account's, none of which may be printed."""
    data = yaml.safe_load((out / "secret.yaml").read_text())
    found = [str(data["registry"]["password"])]
    pull = (data.get("jupyterhub") or {}).get("imagePullSecret") or {}
    found += [str(pull["password"])] if pull.get("password") else []
    seeded = box.credentials(cloud)
    found += [v for k, v in seeded.items() if "secret" in k or "password" in k or "key" in k]
    return [s for s in found if len(s) > 6]


def assert_no_secret(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


# --- the row, shared with the notebooks' step -------------------------------------------------
def test_the_row_is_the_notebooks_storage_step() -> None:
    from binderhub_registry.usage import NotRead, Usage, storage_row

    assert storage_row(Usage(GIB, 200 * GIB, "q")) == ("ok", "1.0 GiB of 200.0 GiB used (0.5%): q")
    status, detail = storage_row(Usage(170 * GIB, 200 * GIB, "q"))
    assert status == "warning" and "above 80%" in detail and "retention_days" in detail
    assert storage_row(NotRead("why", "VAR")) == (
        "skipped",
        "not read: why; set VAR (or run the notebook) to see it",
    )


# --- Harbor -------------------------------------------------------------------------------------
def test_harbor_project_quota_read_as_the_admin(
    fresh: sandbox.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from binderhub_registry.providers import harbor

    api = admin_api(fresh)
    limit = 4096  # a few of the tiny test images
    project = {"project_name": "binderhub", "metadata": {"public": "false"}}
    api.call("POST", "/projects", json=project | {"storage_limit": limit})
    _, files = harbor_steps(tmp_path)
    out = files.config_path.parent
    code, stdout, stderr = verify(capsys, fresh, out)
    assert code == 0, stderr
    summary = api.call("GET", "/projects/binderhub/summary")
    usage = harbor.summary_usage(summary, "binderhub")
    assert usage.limit_bytes == limit and not usage.warning
    assert storage_line(stdout) == f"✓ storage: {usage.text()}"  # the admin's own figures
    assert "warning" not in stderr
    for n in range(40):  # fill it past 80%
        if api.call("GET", "/projects/binderhub/summary")["quota"]["used"]["storage"] > 0.8 * limit:
            break
        harbor_push(api, f"binderhub/binder-fill{n}", "v1")
    code, stdout, stderr = verify(capsys, fresh, out)
    assert code == 0  # a warning, as verify's others: never a failure
    line = storage_line(stdout)
    assert line.startswith("⚠ storage: ") and "above 80%" in line and "retention_days" in line
    assert f"warning: {line.removeprefix('⚠ ')}" in stderr.splitlines()
    assert_no_secret(stdout + stderr, secrets_of(out, fresh, "harbor"))


def test_harbors_robot_may_not_read_the_quota_so_verify_asks_the_admin(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    import requests

    _, files = harbor_steps(tmp_path)
    robot = files.values
    url = f"{robot.registry_url}/api/v2.0/projects/binderhub/summary"
    auth = (robot.username, robot.password.reveal())
    refused = requests.get(url, auth=auth, verify=fresh.ca_file, timeout=10)
    assert refused.status_code == 403  # a private project: no read on the project itself
    api = admin_api(fresh)
    assert "quota" in api.call("GET", "/projects/binderhub/summary")
    api.call("POST", "/projects", json={"project_name": "open", "metadata": {"public": "true"}})
    public = requests.get(
        url.replace("binderhub/summary", "open/summary"),
        auth=auth,
        verify=fresh.ca_file,
        timeout=10,
    )
    assert public.status_code == 200 and "quota" not in public.json()  # public: still no quota


def test_harbor_not_read_without_the_admin() -> None:
    from binderhub_registry.providers import harbor
    from binderhub_registry.usage import NotRead

    values = RegistryValues(
        "harbor.example.org/binderhub/binder-",
        "robot$binderhub+binderhub-builder",
        Secret("not-sent"),
        "https://harbor.example.org",
    )
    found = harbor.usage_for_values(values, {}, {}, None)
    assert isinstance(found, NotRead)
    assert found.text() == (
        "not read: Harbor gives robots no read of their project's quota; set HARBOR_USERNAME "
        "and HARBOR_PASSWORD (a Harbor admin) (or run the notebook) to see it"
    )


# --- Google Artifact Registry -------------------------------------------------------------------
def test_google_repository_size_read_with_binderhubs_own_key(
    fresh: sandbox.Sandbox, run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "values"
    conn = signed_in(run, out)
    whole_run(run, conn)
    code, stdout, stderr = verify(capsys, fresh, out)
    assert code == 0, stderr
    usage = conn.storage_used()  # the notebook's step, as the project's owner
    assert usage is not None and usage.used_bytes > 0
    assert storage_line(stdout) == f"✓ storage: {usage.text()}"
    assert "no limit" in stdout
    assert_no_secret(stdout + stderr, secrets_of(out, fresh, "google"))


def test_google_not_read_without_a_key_or_adc() -> None:
    from binderhub_registry.providers import google
    from binderhub_registry.usage import NotRead

    keyless = RegistryValues("us-central1-docker.pkg.dev/p/r/binder-", "", Secret(""))
    found = google.usage_for_values(keyless, {}, {}, None)
    assert isinstance(found, NotRead) and "GOOGLE_APPLICATION_CREDENTIALS" in found.text()


# --- Azure Container Registry --------------------------------------------------------------------
def test_azure_list_usages_read_as_the_deployer(
    fresh: sandbox.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = InProcessRun(NOTEBOOKS / f"{providers.get('azure').NOTEBOOK}.ipynb", tmp_path)()
    out = tmp_path / "values"
    code, stdout, stderr = verify(capsys, fresh, out)
    assert code == 0, stderr
    usage = ns["az"].storage_used()
    assert usage is not None and usage.limit_bytes == 10 * GIB  # Basic's included storage
    assert storage_line(stdout) == f"✓ storage: {usage.text()}"
    settings(fresh, "azure", registry_used_bytes=9 * GIB)
    code, stdout, stderr = verify(capsys, fresh, out)
    assert code == 0
    line = storage_line(stdout)
    assert line.startswith("⚠ storage: 9.0 GiB of 10.0 GiB used (90.0%)") and "listUsages" in line
    assert "above 80%: beyond it each extra GiB is billed per day" in line  # included storage
    assert "warning: storage: 9.0 GiB" in stderr
    assert_no_secret(stdout + stderr, secrets_of(out, fresh, "azure"))


def test_azure_not_read_without_the_subscription() -> None:
    from binderhub_registry.providers import azure
    from binderhub_registry.usage import NotRead

    values = RegistryValues("example.azurecr.io/binder-", "app-id", Secret("not-sent"))
    found = azure.usage_for_values(values, {}, {}, None)
    assert isinstance(found, NotRead) and "AZURE_SUBSCRIPTION_ID" in found.text()


# --- OVHcloud ------------------------------------------------------------------------------------
def test_ovh_plan_read_with_ovhclouds_keys(
    fresh: sandbox.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = full_run(runner(), ovh_params(tmp_path))
    code, stdout, stderr = verify(capsys, fresh, tmp_path)
    assert code == 0, stderr
    usage = conn.storage_used()
    assert usage is not None and usage.limit_bytes is not None
    assert storage_line(stdout) == f"✓ storage: {usage.text()}"
    settings(fresh, "ovh", used_bytes=170 * GIB)  # SMALL's 200 GB, 85% used
    code, stdout, stderr = verify(capsys, fresh, tmp_path)
    assert code == 0
    line = storage_line(stdout)
    assert line.startswith("⚠ storage: 170.0 GiB of ") and "plan SMALL" in line
    assert_no_secret(stdout + stderr, secrets_of(tmp_path, fresh, "ovh"))


@pytest.mark.usefixtures("no_real_ovh")
def test_ovh_not_read_without_keys_and_project() -> None:
    from binderhub_registry.providers import ovh
    from binderhub_registry.usage import NotRead

    host = "abc123.gra7.container-registry.ovh.net"
    values = RegistryValues(f"{host}/binderhub/binder-", "robot", Secret("not-sent"))
    found = ovh.usage_for_values(values, {}, {}, None)
    assert isinstance(found, NotRead) and "OVH_CLOUD_PROJECT_SERVICE" in found.text()


# --- Amazon ECR: the helper's token is no AWS credential -------------------------------------
def test_ecr_not_read_without_aws_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from binderhub_registry.providers import ecr
    from binderhub_registry.usage import NotRead

    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # nothing probes 169.254.169.254
    host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    values = RegistryValues(f"{host}/binderhub/binder-", "", Secret(""))
    found = ecr.usage_for_values(values, {}, {}, None)
    assert isinstance(found, NotRead)
    assert "DescribeImages needs AWS credentials" in found.text() and "AWS_PROFILE" in found.text()


def _ecr_admin(box: sandbox.Sandbox) -> Any:
    """A boto3 ECR client on the sandbox, as its seeded administrator."""
    import boto3

    key = box.credentials("ecr")
    return boto3.client(
        "ecr",
        region_name="us-east-2",
        endpoint_url=f"{box.url}/ecr/api",
        verify=box.ca_file,
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=key["secret_access_key"],
    )


def _ecr_image(client: Any, repository: str, sizes: list[int]) -> None:
    """An image in ``repository`` (made here), put as a manifest whose layers have ``sizes``
    (PutImage). The test compares with what DescribeImages reports, whatever it counts: ECR
    reports the layers' compressed sizes, moto (which the sandbox runs) the config's."""
    layers = [
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": size,
            "digest": "sha256:" + f"{n:x}{size:x}".rjust(64, "0"),
        }
        for n, size in enumerate(sizes)
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": sum(sizes) // 1000,
            "digest": "sha256:" + "c" * 64,
        },
        "layers": layers,
    }
    client.create_repository(repositoryName=repository)
    client.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag="v1")


def test_ecr_images_under_the_prefix_read_with_the_sandbox_s_aws_key(
    fresh: sandbox.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The helper's token is no AWS credential, so verify signs DescribeImages with boto3's
    chain: on the sandbox, its seeded key (no real variable read), as the notebook does."""
    ns = InProcessRun(NOTEBOOKS / f"{providers.get('ecr').NOTEBOOK}.ipynb", tmp_path)()
    out = tmp_path / "values"
    code, stdout, stderr = verify(capsys, fresh, out)
    assert code == 0, stderr
    usage = ns["conn"].storage_used()  # the notebook's step: verify's test image, pushed
    assert usage is not None and usage.used_bytes > 0 and usage.limit_bytes is None
    line = storage_line(stdout)
    assert line == f"✓ storage: {usage.text()}"
    assert "ECR repositories binderhub/binder-* (billed per GB-month)" in line
    # an image under the prefix counts; those in the account's other repositories do not
    admin = _ecr_admin(fresh)
    sizes = {}
    for name, layers in (
        ("binderhub/binder-more", [3 << 20]),
        ("binderhub/elsewhere", [5 << 20]),
        ("other/binder-x", [7 << 20]),
    ):
        _ecr_image(admin, name, layers)
        (image,) = admin.describe_images(repositoryName=name)["imageDetails"]
        sizes[name] = image["imageSizeInBytes"]
        assert sizes[name] > 0
    code, stdout, stderr = verify(capsys, fresh, out)
    assert code == 0, stderr
    more = Usage(usage.used_bytes + sizes["binderhub/binder-more"], None, usage.source)
    assert storage_line(stdout) == f"✓ storage: {more.text()}"
    seeded = fresh.credentials("ecr")["secret_access_key"]
    token = yaml.safe_load((out / "secret.yaml").read_text())["config"]["ExternalRegistryHelper"]
    assert_no_secret(stdout + stderr, [seeded, token["auth_token"]])


# --- Docker Hub: no usage API ------------------------------------------------------------------
def test_docker_hub_says_its_api_tells_none(
    dockerhub_nb: NotebookRun, fresh: sandbox.Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    dockerhub_nb()
    code, stdout, stderr = verify(capsys, fresh, dockerhub_nb.output_dir)
    assert code == 0, stderr
    assert (
        storage_line(stdout) == "– storage: Docker Hub's API tells no storage used against a limit"
    )


# --- the command's lines when the hook cannot read, or fails ------------------------------------
def test_a_not_read_line_and_a_failed_reading_never_fail_verify(
    fresh: sandbox.Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from binderhub_registry.providers import harbor
    from binderhub_registry.usage import NotRead

    _, files = harbor_steps(tmp_path)
    out = files.config_path.parent
    told = NotRead("Harbor gives robots no read of their project's quota", "HARBOR_USERNAME")
    monkeypatch.setattr(harbor, "usage_for_values", lambda *args: told)
    code, stdout, _ = verify(capsys, fresh, out)
    assert code == 0
    assert storage_line(stdout) == f"– storage: {told.text()}"
    secret = secrets_of(out, fresh, "harbor")[0]

    def failing(*args: Any) -> None:
        raise CloudError(f"503 from the summary, echoing {secret}", status=503)

    monkeypatch.setattr(harbor, "usage_for_values", failing)
    code, stdout, stderr = verify(capsys, fresh, out)
    assert code == 0
    assert storage_line(stdout).startswith("– storage: not read: CloudError: 503 from the summary")
    assert secret not in stdout + stderr


def test_a_throttled_or_failing_reading_is_retried_as_a_step_would_be(
    fresh: sandbox.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = admin_api(fresh)
    api.call("POST", "/projects", json={"project_name": "binderhub", "storage_limit": 4096})
    _, files = harbor_steps(tmp_path)
    out = files.config_path.parent
    summary = {"method": "GET", "path": "/projects/binderhub/summary$"}
    fresh.add_faults(summary | {"status": 429, "retry_after": 0, "times": 1})
    fresh.add_faults(summary | {"status": 503, "times": 1})
    code, stdout, _ = verify(capsys, fresh, out)
    assert code == 0 and storage_line(stdout).startswith("✓ storage: ")
    assert [f["times"] for f in fresh.faults()] == [0, 0]  # both answered, then the reading
    fresh.add_faults(summary | {"status": 503, "times": 99})
    code, stdout, _ = verify(capsys, fresh, out)
    assert code == 0  # a fault that lasts: told in the row, never verify's failure
    assert storage_line(stdout).startswith("– storage: not read: ")
    assert fresh.faults()[-1]["times"] == 99 - 3  # three attempts, no more


def test_the_notebooks_step_words_the_reading_as_verify(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    settings(fresh, "ovh", used_bytes=170 * GIB)
    conn = full_run(runner(), ovh_params(tmp_path))
    step = asyncio.run(conn.report_storage())
    from binderhub_registry.usage import storage_row

    assert (step.status, step.detail) == storage_row(conn.storage_used())
