"""ECR's pull secret for clusters outside EKS (``pull_access = "secret"``), against the ECR
sandbox: the pull-only IAM user ``<helper_name>-puller`` (tagged, its inline policy, its key kept,
rotated, retired and torn down as the helper user's), the registry password minted as it that
verification pulls with, and ``pull-secret-cronjob.yaml``, whose CronJob keeps the Secret user
pods pull with fresh (ECR's passwords last 12 hours).

The backend runs in this process on an app of its own (conftest's ``ecr``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from binderhub_registry import InvalidParameter, PermissionDenied, Runner, cli
from binderhub_registry.binderhub import load_values
from binderhub_registry.providers import ecr
from binderhub_registry.sandbox.app import Fault

from .helpers import ECR_DEFAULTS, ECR_REGION, EcrBox, run_pull_refresh

PULLER = "binderhub-registry-helper-puller"
SECRET_MODE = {"pull_access": "secret", "helper_identity": "user"}


class Notebook:
    """Notebook 06's steps in order, run after run in one output_dir, with a pull secret."""

    def __init__(self, box: EcrBox, out: Path) -> None:
        self.box, self.out = box, out
        self.results: list[str] = []
        self.conn: ecr.EcrConnection | None = None

    def connect(self, **overrides: Any) -> ecr.EcrConnection:
        values = ECR_DEFAULTS | SECRET_MODE | {"output_dir": str(self.out)} | overrides
        p = ecr.validate(values)
        box = self.box
        return ecr.connect(p, box.app.url, box.ca_file, box.admin, box.registry)

    def __call__(self, *, until: str = "", **overrides: Any) -> ecr.EcrConnection:
        conn = self.conn = self.connect(**overrides)
        run = Runner(backoff=0.0)
        steps = [
            ("Sign in to AWS", ecr.who_am_i),
            ("The helper's IAM policy", ecr.ensure_policy),
            ("The helper's identity", ecr.ensure_identity),
            ("The registry helper", ecr.ensure_helper),
            ("User pods' pull", ecr.ensure_pull_credential),
        ]
        for title, step in steps:
            if title == until:
                return conn
            run.step(title, step, conn)
        files = run.step("Write the values", conn.write_values)
        run.step("Verify", conn.verify, files)
        asyncio.run(run.astep("Remove the replaced credential", conn.finish_rotation))
        asyncio.run(run.astep("Delete what this notebook created", conn.teardown))
        self.results = [f"{r.title} [{r.status}]: {r.detail}" for r in run.checklist.rows]
        return conn

    def text(self) -> str:
        return "\n".join(self.results)

    def manifest(self) -> list[dict[str, Any]]:
        return list(yaml.safe_load_all((self.out / ecr.PULL_FILE).read_text()))

    def key_id(self) -> str:
        (secret,) = [d for d in self.manifest() if d["kind"] == "Secret"]
        return str(secret["stringData"]["AWS_ACCESS_KEY_ID"])


@pytest.fixture
def box(ecr: EcrBox) -> EcrBox:
    """The in-process ECR sandbox as a new account has it (conftest's ``ecr``)."""
    return ecr


@pytest.fixture
def nb(box: EcrBox, tmp_path: Path) -> Notebook:
    return Notebook(box, tmp_path / "values")


def state(box: EcrBox) -> dict[str, Any]:
    with box.cloud.lock:
        found: dict[str, Any] = json.loads(json.dumps(box.cloud.state()))
    return {k: found[k] for k in ("roles", "policies", "users", "oidc_providers", "helpers")}


def keys(box: EcrBox, user: str = PULLER) -> list[str]:
    listed = box.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return [k["AccessKeyId"] for k in listed]


def login(box: EcrBox, key: str, secret: str) -> tuple[str, str]:
    """(``AWS``, password) from GetAuthorizationToken signed with ``key``."""
    data = box.client("ecr", key, secret).get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return user, password


def puller_key(nb: Notebook) -> tuple[str, str]:
    (secret,) = [d for d in nb.manifest() if d["kind"] == "Secret"]
    data = secret["stringData"]
    return data["AWS_ACCESS_KEY_ID"], data["AWS_SECRET_ACCESS_KEY"]


# --- a run verifies end to end -----------------------------------------------------------------
def test_a_run_pulls_with_the_pull_only_user_s_token_which_cannot_push(
    nb: Notebook, box: EcrBox
) -> None:
    nb()
    text = nb.text()
    assert "[failed]" not in text, text
    assert f"as IAM user {PULLER!r}: ECR pull on repository/binderhub/* only" in text
    # the shared checks pulled with the token minted as the puller, and it was refused a push
    assert "user pods (pull) ok" in text and "user pods' credential" not in text.split("Verify")[0]
    conn = nb.conn
    assert conn is not None and conn.pull_secret is not None
    assert conn.pull_secret.username == "AWS"
    assert conn.pull_secret.registry == box.registry.removeprefix("https://")
    with box.cloud.lock:
        token = box.cloud.aws.check_token(conn.pull_secret.password.reveal())
    assert token is not None and token.principal_arn.endswith(f":user/{PULLER}")
    # values: user pods reference the CronJob's Secret by name; secret.yaml holds no password
    config = yaml.safe_load((nb.out / "config.yaml").read_text())
    assert config["jupyterhub"] == {"singleuser": {"image": {"pullSecrets": [ecr.PULL_SECRET]}}}
    secret = yaml.safe_load((nb.out / "secret.yaml").read_text())
    assert "jupyterhub" not in secret
    # the pull-only user: tagged with this deployment, its inline policy pull only, on the prefix
    iam = box.client("iam")
    deployment = json.loads((nb.out / "binderhub-registry.json").read_text())["deployment"]
    assert {"Key": ecr.MARK_TAG, "Value": deployment} in iam.list_user_tags(UserName=PULLER)["Tags"]
    policy = iam.get_user_policy(UserName=PULLER, PolicyName=ecr.PULLER_POLICY)["PolicyDocument"]
    assert policy == ecr.puller_policy(ECR_REGION, "123456789012", "binderhub")
    assert iam.list_attached_user_policies(UserName=PULLER)["AttachedPolicies"] == []


def test_the_puller_cannot_push_nor_pull_outside_the_prefix(nb: Notebook, box: EcrBox) -> None:
    nb()
    admin = box.client("ecr")
    admin.create_repository(repositoryName="elsewhere/app")
    _, password = login(box, *puller_key(nb))
    with box.cloud.lock:
        token = box.cloud.aws.check_token(password)
    assert token is not None
    allowed = box.cloud.aws.allowed
    inside = "binderhub/binder-binderhub-registry-check"
    assert allowed(token, inside, ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"])
    for action in ("ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:BatchCheckLayerAvailability"):
        assert not allowed(token, inside, [action])
    assert not allowed(token, "elsewhere/app", ["ecr:BatchGetImage"])
    # and over the registry's HTTP API, as a kubelet asks: a manifest outside the prefix
    import requests

    refused = requests.get(
        f"{box.registry}/v2/elsewhere/app/manifests/latest",
        auth=("AWS", password),
        verify=box.ca_file,
        timeout=30,
    )
    assert refused.status_code == 403 and "not authorized to perform" in refused.text


# --- rerun, dry run, rotate, teardown ---------------------------------------------------------
def test_a_rerun_makes_nothing_new_and_keeps_the_key(nb: Notebook, box: EcrBox) -> None:
    nb()
    before, key = state(box), nb.key_id()
    nb()
    assert "[created]" not in nb.text() and "[failed]" not in nb.text()
    assert state(box) == before and nb.key_id() == key and keys(box) == [key]


def test_a_dry_run_plans_the_pull_only_user_and_changes_nothing(nb: Notebook, box: EcrBox) -> None:
    before = state(box)
    nb(dry_run=True)
    assert f"User pods' pull [planned]: would create IAM user {PULLER!r}" in nb.text()
    assert state(box) == before and not nb.out.joinpath(ecr.PULL_FILE).exists()
    nb()
    before = state(box)
    nb(dry_run=True, rotate=True)  # its key's rotation is planned too
    assert f"would create an access key for IAM user {PULLER!r}" in nb.text()
    assert state(box) == before and len(keys(box)) == 1


def test_rotate_replaces_the_puller_s_key_once_the_new_one_verified(
    nb: Notebook, box: EcrBox
) -> None:
    nb()
    old = nb.key_id()
    nb(rotate=True, keep_replaced=False)
    assert "Remove the replaced credential [deleted]" in nb.text()
    new = nb.key_id()
    assert new != old and keys(box) == [new]
    assert "retiring" not in json.loads((nb.out / "binderhub-registry.json").read_text())["created"]


def test_a_kept_replaced_key_stays_until_a_run_without_keep_replaced(
    nb: Notebook, box: EcrBox
) -> None:
    nb(helper_identity="role")  # the helper's role, whose auth token keep_replaced cannot keep
    old = nb.key_id()
    conn = nb.connect(helper_identity="role", rotate=True)
    run = Runner(backoff=0.0)
    run.step("Sign in to AWS", ecr.who_am_i, conn)
    run.step("User pods' pull", ecr.ensure_pull_credential, conn)
    new = conn.made_keys[PULLER][0]
    assert sorted(keys(box)) == sorted([old, new])
    retiring = json.loads((nb.out / "binderhub-registry.json").read_text())["created"]["retiring"]
    assert retiring == [f"{PULLER}:{old}"]
    conn.retire(retiring)
    assert keys(box) == [new]


def test_teardown_removes_the_puller_and_its_manifest(nb: Notebook, box: EcrBox) -> None:
    before = state(box)
    nb()
    assert PULLER in state(box)["users"]
    nb(teardown=True)
    assert "Delete what this notebook created [deleted]" in nb.text()
    assert "pull-only IAM user" in nb.text()
    assert state(box) == before
    assert not (nb.out / ecr.PULL_FILE).exists() and not (nb.out / "secret.yaml").exists()


def test_a_same_named_user_without_our_tag_is_never_taken_nor_deleted(
    nb: Notebook, box: EcrBox
) -> None:
    box.client("iam").create_user(UserName=PULLER)
    with pytest.raises(PermissionDenied, match=f"IAM user '{PULLER}' exists and lacks the tag"):
        nb(helper_identity="role")
    assert box.client("iam").list_user_policies(UserName=PULLER)["PolicyNames"] == []
    # a record naming it (as if ours) does not make teardown delete it
    box.client("iam").delete_user(UserName=PULLER)
    nb(helper_identity="role")
    box.client("iam").untag_user(UserName=PULLER, TagKeys=[ecr.MARK_TAG])
    with pytest.raises(PermissionDenied, match=f"IAM user {PULLER} is recorded"):
        nb(helper_identity="role", teardown=True)
    assert PULLER in state(box)["users"]


def test_a_new_key_aws_does_not_know_yet_is_retried_and_kept(nb: Notebook, box: EcrBox) -> None:
    conn = nb(until="User pods' pull", helper_identity="role")
    box.app.faults.append(  # IAM's eventual consistency: ECR does not know the new key yet
        Fault.parse(
            {
                "method": "POST",
                "path": "^/ecr/api",
                "status": 400,
                "times": 1,
                "body": {
                    "__type": "UnrecognizedClientException",
                    "message": "The security token included in the request is invalid.",
                },
            }
        )
    )
    run = Runner(backoff=0.0)
    run.step("User pods' pull", ecr.ensure_pull_credential, conn)
    assert run.checklist.rows[-1].status == "created"
    assert run.checklist.rows[-1].attempts == 2 and all(f.times == 0 for f in box.app.faults)
    assert keys(box) == [conn.made_keys[PULLER][0]]  # the retry made no second key


# --- the manifest ------------------------------------------------------------------------------
def test_the_manifest_is_private_holds_the_key_only_and_refreshes_every_6_hours(
    nb: Notebook, box: EcrBox
) -> None:
    conn = nb()
    path = nb.out / ecr.PULL_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert conn.pull_secret is not None
    password = conn.pull_secret.password.reveal()
    assert password not in text and base64.b64encode(password.encode()).decode() not in text
    docs = {d["kind"]: d for d in nb.manifest()}
    assert set(docs) == {"Secret", "ServiceAccount", "Role", "RoleBinding", "CronJob"}
    key_id, secret = puller_key(nb)
    assert key_id.startswith("AKIA") and secret in text  # the key, in the key's Secret only
    assert docs["Secret"]["metadata"]["name"] == "binderhub-ecr-pull-key"
    cron = docs["CronJob"]["spec"]
    assert cron["schedule"] == ecr.PULL_SCHEDULE == "0 */6 * * *"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == ecr.PULL_SECRET
    (login_container,) = pod["initContainers"]
    assert login_container["envFrom"] == [{"secretRef": {"name": "binderhub-ecr-pull-key"}}]
    env = {e["name"]: e["value"] for e in login_container["env"]}
    assert env["REGISTRY"] == box.registry.removeprefix("https://")
    assert env["SECRET_NAME"] == ecr.PULL_SECRET and env["AWS_REGION"] == ECR_REGION
    # least privilege: get and patch on that one Secret; create cannot be limited to a name
    rules = docs["Role"]["rules"]
    assert rules[0]["resourceNames"] == [ecr.PULL_SECRET]
    assert rules[0]["verbs"] == ["get", "patch"] and rules[1]["verbs"] == ["create"]
    assert key_id not in nb.text() and secret not in nb.text()


def test_the_cronjob_s_login_writes_the_secret_kubectl_create_would(
    nb: Notebook, box: EcrBox, tmp_path: Path
) -> None:
    nb()
    found = run_pull_refresh(nb.out / ecr.PULL_FILE, box, tmp_path)
    assert found["kind"] == "Secret" and found["type"] == "kubernetes.io/dockerconfigjson"
    assert found["metadata"] == {"name": ecr.PULL_SECRET, "namespace": "binderhub"}
    config = json.loads(base64.b64decode(found["data"][".dockerconfigjson"]))
    host = box.registry.removeprefix("https://")
    entry = config["auths"][host]
    assert entry["username"] == "AWS"
    assert base64.b64decode(entry["auth"]).decode() == f"AWS:{entry['password']}"
    with box.cloud.lock:
        token = box.cloud.aws.check_token(entry["password"])
    assert token is not None and token.principal_arn.endswith(f":user/{PULLER}")


# --- bad input ---------------------------------------------------------------------------------
def test_a_helper_name_too_long_for_the_puller_is_refused_before_any_call(tmp_path: Path) -> None:
    name = "h" * 58  # a valid helper_name; <name>-puller is 65: over IAM's 64
    values = ECR_DEFAULTS | {"output_dir": str(tmp_path), "helper_name": name}
    assert ecr.validate(values).helper_name == name  # fine while user pods pull as nodes
    with pytest.raises(InvalidParameter) as err:
        ecr.validate(values | {"pull_access": "secret"})
    assert err.value.name == "helper_name" and "\n" not in str(err.value)
    assert "at most 57 characters" in str(err.value)
    assert ecr.validate(values | {"helper_name": "h" * 57, "pull_access": "secret"})


def test_verify_reads_the_values_and_leaves_the_pull_to_the_cluster(
    nb: Notebook, box: EcrBox, capsys: pytest.CaptureFixture[str]
) -> None:
    # the pull secret lives in the cluster (the CronJob's Secret), not in secret.yaml: verify
    # with the two files checks BinderHub's calls and the push, and cannot check the pull
    nb()
    config, secret = str(nb.out / "config.yaml"), str(nb.out / "secret.yaml")
    capsys.readouterr()
    assert cli.main(["verify", "--ca-file", box.ca_file, config, secret]) == 0
    out = capsys.readouterr().out
    assert "ExternalRegistryHelper: found" in out and "user pods (pull): skipped" in out
    # it says what user pods pull with (not "the nodes' identity") and how to check it there
    assert f"user pods pull with Secret {ecr.PULL_SECRET}" in out
    assert "nodes' identity" not in out
    overrides = (
        f'--overrides=\'{{"spec":{{"imagePullSecrets":[{{"name":"{ecr.PULL_SECRET}"}}]}}}}\''
    )
    assert f"{overrides} --command -- true" in out
    values = load_values(config, secret)
    assert values.pull_secret_names == (ecr.PULL_SECRET,) and values.pull_access == "secret"
