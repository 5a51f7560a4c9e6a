"""ECR's pull-secret CronJob, run with the real AWS CLI: the script notebook 06 writes into
``pull-secret-cronjob.yaml`` (``pull_access = "secret"``) calls ``aws ecr get-login-password``
as the pull-only user, and the Secret it writes is one user pods can pull with.

``make test`` runs the same script with a stand-in making the CLI's call with botocore
(``tests/test_ecr_pull_secret.py``); here the CLI nobody here wrote makes it: its own
credential chain, its own endpoint setting (``AWS_ENDPOINT_URL_ECR``), its own output. AWS CLI
v1 comes from PyPI (v2 does not), pinned in its own venv by ``make test-clients``
(``tests/clients/aws-cli.txt``). The script's image (``public.ecr.aws/aws-cli/aws-cli``) carries
v2; ``get-login-password`` is the same command in both (AWS CLI v1 and v2 command references).

Nothing leaves loopback: every Python the CLI starts loads ``guard/sitecustomize.py``, which
refuses and records any other connection.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from binderhub_registry import Runner
from binderhub_registry.providers import ecr as provider

from ..helpers import ECR_DEFAULTS, EcrBox, run_pull_refresh

pytestmark = pytest.mark.clients

GUARD = Path(__file__).parent / "guard"


@pytest.fixture
def box(ecr: EcrBox) -> EcrBox:
    """The in-process ECR sandbox as a new account has it (conftest's ``ecr``)."""
    return ecr


def test_the_real_aws_cli_writes_a_pull_secret_for_the_pull_only_user(
    box: EcrBox, tmp_path: Path
) -> None:
    cli = os.environ["BHR_AWS_CLI"]
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("aws-cli/1.")  # the pinned CLI itself, not a stand-in
    out = tmp_path / "values"
    values = ECR_DEFAULTS | {
        "pull_access": "secret",
        "helper_identity": "user",
        "output_dir": str(out),
    }
    conn = provider.connect(
        provider.validate(values), box.app.url, box.ca_file, box.admin, box.registry
    )
    run = Runner(backoff=0.0)
    for step in (
        provider.who_am_i,
        provider.ensure_policy,
        provider.ensure_identity,
        provider.ensure_helper,
        provider.ensure_pull_credential,
    ):
        run.step(step.__name__, step, conn)
    run.step("write", conn.write_values)

    refused = tmp_path / "refused.txt"  # the guard appends what it refused
    refused.touch()
    found = run_pull_refresh(
        out / provider.PULL_FILE,
        box,
        tmp_path,
        aws=cli,
        env={"PYTHONPATH": str(GUARD), "BHR_NET_GUARD_LOG": str(refused)},
    )

    assert refused.read_text() == ""  # the CLI reached nothing beyond loopback
    config = json.loads(base64.b64decode(found["data"][".dockerconfigjson"]))
    entry = config["auths"][box.registry.removeprefix("https://")]
    assert entry["username"] == "AWS"
    with box.cloud.lock:
        token = box.cloud.aws.check_token(entry["password"])
    # minted as the pull-only user, whose key is the only one in the CronJob's Secret
    assert token is not None and token.principal_arn.endswith(
        ":user/binderhub-registry-helper-puller"
    )
    with box.cloud.lock:
        repository = f"{ECR_DEFAULTS['repository_prefix']}/binder-x"
        assert box.cloud.aws.allowed(
            token, repository, ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
        )
        assert not box.cloud.aws.allowed(token, repository, ["ecr:PutImage"])
