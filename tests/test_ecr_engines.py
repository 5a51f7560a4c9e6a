"""The real engines BinderHub uses, on the ECR sandbox's registry: dockerd logs in with ``AWS``
and a GetAuthorizationToken password and pushes (as build pods do with the helper's token),
is refused a repository ECR does not have in ECR's words, and containerd pulls as a kubelet
with a read-only identity's token, as an EKS node's kubelet with the token its
ecr-credential-provider gets as the node role (refused when that role lacks ECR's read-only policy),
and with the Secret the notebook's pull-secret CronJob writes (``pull_access = "secret"``).
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from binderhub_registry import Runner
from binderhub_registry.providers import ecr as provider

from .engines import Engines, engines_or_skip, hosts_dir, start_engines, tiny_tar
from .helpers import ECR_DEFAULTS, EcrBox, node_pull_credential, run_pull_refresh


@pytest.fixture(scope="module")
def engines() -> Iterator[Engines]:
    """dockerd (with its containerd), for this module."""
    engines_or_skip()
    running = start_engines()
    yield running
    running.stop()


def login(box: EcrBox, key: str = "", secret: str = "") -> tuple[str, str]:
    """(``AWS``, password) from GetAuthorizationToken, as the admin or ``key``."""
    data = box.client("ecr", key, secret).get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return username, password


def test_dockerd_pushes_and_containerd_pulls_as_ecr_lets_them(
    ecr: EcrBox, engines: Engines
) -> None:
    ecr.client("ecr").create_repository(repositoryName="binderhub/eng")
    host = ecr.registry.removeprefix("https://")
    engines.trust(host, ecr.ca_file)
    config = Path(tempfile.mkdtemp())
    user, password = login(ecr)
    signed_in = engines.docker(
        config, "login", "-u", user, "--password-stdin", host, stdin=password.encode()
    )
    assert signed_in.returncode == 0, signed_in.stderr
    image = f"{host}/binderhub/eng:v1"
    assert engines.docker(config, "import", "-", image, stdin=tiny_tar("ecr")).returncode == 0
    pushed = engines.docker(config, "push", image)
    assert pushed.returncode == 0, pushed.stderr + engines.log
    tags = ecr.client("ecr").describe_images(repositoryName="binderhub/eng")["imageDetails"]
    assert [t["imageTags"] for t in tags] == [["v1"]]

    missing = f"{host}/binderhub/none:v1"
    assert engines.docker(config, "tag", image, missing).returncode == 0
    refused = engines.docker(config, "push", missing)
    assert refused.returncode != 0
    assert (
        "name unknown: The repository with name 'binderhub/none' does not exist in the registry "
        f"with id '{ecr.admin['account_id']}'"
    ) in refused.stderr

    iam = ecr.client("iam")  # a user pod's identity: ECR's read-only managed policy
    iam.create_user(UserName="puller")
    iam.attach_user_policy(
        UserName="puller", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
    )
    key = iam.create_access_key(UserName="puller")["AccessKey"]
    hosts = hosts_dir(Path(tempfile.mkdtemp()), host, ecr.ca_file)
    pulled = engines.ctr_pull(hosts, image, login(ecr, key["AccessKeyId"], key["SecretAccessKey"]))
    assert pulled.returncode == 0, pulled.stderr


def test_containerd_pulls_with_the_node_role_s_token_as_an_eks_kubelet(
    ecr: EcrBox, engines: Engines, tmp_path: Path
) -> None:
    ecr.client("ecr").create_repository(repositoryName="binderhub/node")
    host = ecr.registry.removeprefix("https://")
    engines.trust(host, ecr.ca_file)
    config = tmp_path / "docker"
    config.mkdir()
    user, password = login(ecr)
    signed_in = engines.docker(
        config, "login", "-u", user, "--password-stdin", host, stdin=password.encode()
    )
    assert signed_in.returncode == 0, signed_in.stderr
    image = f"{host}/binderhub/node:v1"
    assert engines.docker(config, "import", "-", image, stdin=tiny_tar("node")).returncode == 0
    pushed = engines.docker(config, "push", image)
    assert pushed.returncode == 0, pushed.stderr + engines.log
    hosts = hosts_dir(tmp_path / "hosts", host, ecr.ca_file)

    node = node_pull_credential(ecr)  # the seeded node role: AmazonEC2ContainerRegistryReadOnly
    assert node is not None
    pulled = engines.ctr_pull(hosts, image, node)
    assert pulled.returncode == 0, pulled.stderr

    # without the policy the plugin gets no token, and the kubelet pulls without credentials
    ecr.client("iam").detach_role_policy(
        RoleName="binderhub-node",
        PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    )
    assert node_pull_credential(ecr) is None
    refused = engines.ctr_pull(hosts, image)
    assert refused.returncode != 0
    assert "401 Unauthorized" in refused.stderr, refused.stderr


def test_containerd_pulls_with_the_secret_the_pull_secret_cronjob_writes(
    ecr: EcrBox, engines: Engines, tmp_path: Path
) -> None:
    # pull_access = "secret": the notebook's pull-only user and its CronJob manifest
    values = ECR_DEFAULTS | {"output_dir": str(tmp_path / "values"), "pull_access": "secret"}
    p = provider.validate(values)
    conn = provider.connect(p, ecr.url, ecr.ca_file, ecr.admin, ecr.registry)
    run = Runner(backoff=0.0)
    run.step("Sign in to AWS", provider.who_am_i, conn)
    for title, step in (
        ("The helper's IAM policy", provider.ensure_policy),
        ("The helper's identity", provider.ensure_identity),
        ("The registry helper", provider.ensure_helper),
        ("User pods' pull", provider.ensure_pull_credential),
    ):
        run.step(title, step, conn)
    run.step("Write the values", conn.write_values)

    ecr.client("ecr").create_repository(repositoryName="binderhub/cron")
    host = ecr.registry.removeprefix("https://")
    engines.trust(host, ecr.ca_file)
    config = tmp_path / "docker"
    config.mkdir()
    user, password = login(ecr)
    signed_in = engines.docker(
        config, "login", "-u", user, "--password-stdin", host, stdin=password.encode()
    )
    assert signed_in.returncode == 0, signed_in.stderr
    image = f"{host}/binderhub/cron:v1"
    assert engines.docker(config, "import", "-", image, stdin=tiny_tar("cron")).returncode == 0
    pushed = engines.docker(config, "push", image)
    assert pushed.returncode == 0, pushed.stderr + engines.log

    # the CronJob's run: the Secret user pods reference, as the kubelet reads it
    written = run_pull_refresh(tmp_path / "values" / provider.PULL_FILE, ecr, tmp_path)
    docker_config = json.loads(base64.b64decode(written["data"][".dockerconfigjson"]))
    entry = docker_config["auths"][host]
    hosts = hosts_dir(tmp_path / "hosts", host, ecr.ca_file)
    pulled = engines.ctr_pull(hosts, image, (entry["username"], entry["password"]))
    assert pulled.returncode == 0, pulled.stderr
