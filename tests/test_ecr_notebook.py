"""The ECR notebook's steps beyond the contract, against the ECR sandbox (moto's IAM, STS and
ECR, the registry front, the helper's API): a run, a rerun that changes nothing, a dry run,
rotation, teardown of what this deployment made only, the helper's least privilege, and the
faults the issue names (throttling, a role not usable yet, a 12-hour token expiring mid-run,
a repository gone before the push).

The backend runs in this process on an app of its own (conftest's ``ecr``): each test starts
from a new account, without the sandbox server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from binderhub_registry import PermissionDenied, Runner, VerificationFailed, cli
from binderhub_registry.binderhub import HelperValues, load_values
from binderhub_registry.errors import InvalidValuesFile
from binderhub_registry.providers import ecr
from binderhub_registry.sandbox.app import Fault
from binderhub_registry.usage import Usage

from .helpers import ECR_DEFAULTS, EcrBox
from .skopeo import needs_skopeo, skopeo_push

REGION = "us-east-2"
DEFAULTS = ECR_DEFAULTS


@pytest.fixture
def box(ecr: EcrBox) -> EcrBox:
    """The in-process ECR sandbox as a new account has it (conftest's ``ecr``)."""
    return ecr


def state(box: EcrBox) -> dict[str, Any]:
    """The backend's state, as the sandbox's ``/_sandbox/state`` answers it."""
    with box.cloud.lock:
        found: dict[str, Any] = json.loads(json.dumps(box.cloud.state()))
    return found


class Notebook:
    """The notebook's steps in order, run after run in one output_dir."""

    def __init__(self, box: EcrBox, out: Path) -> None:
        self.box, self.out = box, out
        self.results: list[str] = []
        self.run = Runner(backoff=0.0)

    def connect(self, **overrides: Any) -> ecr.EcrConnection:
        p = ecr.validate(DEFAULTS | {"output_dir": str(self.out)} | overrides)
        box = self.box
        registry = box.cloud.registries()["ecr"]
        return ecr.connect(p, box.app.url, box.ca_file, box.admin, registry)

    def __call__(self, runner: Runner | None = None, **overrides: Any) -> ecr.EcrConnection:
        conn = self.connect(**overrides)
        run = self.run = runner or Runner(backoff=0.0)
        run.step("Sign in to AWS", ecr.who_am_i, conn)
        run.step("The helper's IAM policy", ecr.ensure_policy, conn)
        run.step("The helper's identity", ecr.ensure_identity, conn)
        run.step("The registry helper", ecr.ensure_helper, conn)
        run.step("User pods' pull", ecr.ensure_pull_credential, conn)
        files = run.step("Write the values", conn.write_values)
        run.step("Verify", conn.verify, files)
        asyncio.run(run.astep("Remove the replaced credential", conn.finish_rotation))
        asyncio.run(run.astep("Delete what this notebook created", conn.teardown))
        asyncio.run(run.astep("Storage used", conn.report_storage))
        self.results = [f"{r.title} [{r.status}]: {r.detail}" for r in run.checklist.rows]
        return conn

    def text(self) -> str:
        return "\n".join(self.results)

    def attempts(self, title: str) -> int:
        """How many attempts the last run's step ``title`` took."""
        (row,) = (r for r in self.run.checklist.rows if r.title == title)
        return row.attempts

    def file(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = yaml.safe_load((self.out / name).read_text())
        return found


@pytest.fixture
def nb(box: EcrBox, tmp_path: Path) -> Notebook:
    return Notebook(box, tmp_path / "values")


def made(box: EcrBox) -> dict[str, Any]:
    """What the notebook makes in IAM and the helper's deployments (repositories left out:
    the helper makes them, for BinderHub's images)."""
    found = state(box)
    return {k: found[k] for k in ("roles", "policies", "users", "oidc_providers", "helpers")}


# --- a run, a rerun, a dry run ----------------------------------------------------------------
def test_a_run_makes_the_helper_s_identity_and_values_that_verify(
    nb: Notebook, box: EcrBox
) -> None:
    nb()
    assert "[failed]" not in nb.text()
    assert "Verify [done]" in nb.text() and "build pods (push) ok" in nb.text()
    config = nb.file("config.yaml")["config"]
    registry = box.cloud.registries()["ecr"].removeprefix("https://")
    assert config["BinderHub"]["image_prefix"] == f"{registry}/binderhub/binder-"
    assert config["BinderHub"]["registry_class"] == "binderhub.registry.ExternalRegistryHelper"
    assert config["ExternalRegistryHelper"]["service_url"].endswith(
        "/ecr/helpers/binderhub-container-registry-helper"
    )
    secret = nb.file("secret.yaml")
    token = secret["config"]["ExternalRegistryHelper"]["auth_token"]
    assert len(token) >= 40 and secret["registry"]["password"] == ""
    helper = nb.file("registry-helper.yaml")
    assert helper["auth_token"] == token
    assert helper["serviceAccount"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/binderhub-registry-helper"
    }
    assert {"name": "AWS_ECR_EXPIRES_AFTER_PUSH_DAYS", "value": "30"} in helper["extraEnv"]
    for name in ("secret.yaml", "registry-helper.yaml"):
        assert (nb.out / name).stat().st_mode & 0o777 == 0o600
    assert token not in nb.text() + (nb.out / "binderhub-registry.json").read_text()
    # the helper put the lifecycle policy on the repository verification made
    repository = state(box)["repositories"][f"{REGION}/binderhub/binder-binderhub-registry-check"]
    assert repository["lifecycle_policy"]["rules"][0]["selection"]["countNumber"] == 30
    # every IAM resource carries this deployment's tag
    deployment = json.loads((nb.out / "binderhub-registry.json").read_text())["deployment"]
    tags = box.client("iam").list_role_tags(RoleName="binderhub-registry-helper")["Tags"]
    assert {"Key": ecr.MARK_TAG, "Value": deployment} in tags


REPOSITORY = f"{REGION}/binderhub/binder-binderhub-registry-check"


def test_retention_days_is_the_lifecycle_the_helper_puts_on_repositories_it_creates(
    nb: Notebook, box: EcrBox
) -> None:
    nb(retention_days=7)
    assert "images not pushed for 7 days are deleted" in nb.text()
    env = nb.file("registry-helper.yaml")["extraEnv"]
    assert {"name": "AWS_ECR_EXPIRES_AFTER_PUSH_DAYS", "value": "7"} in env
    # the deployed helper's environment (the sandbox's PUT /ecr/helpers/<release> body)
    assert [h["expires_after_push_days"] for h in state(box)["helpers"]] == ["7"]
    (rule,) = state(box)["repositories"][REPOSITORY]["lifecycle_policy"]["rules"]
    assert rule["selection"]["countType"] == "sinceImagePushed"
    assert rule["selection"]["countNumber"] == 7 and rule["action"] == {"type": "expire"}


def test_retention_days_0_gives_repositories_no_lifecycle_policy(nb: Notebook, box: EcrBox) -> None:
    nb(retention_days=0)
    assert "retention_days = 0: every image is kept" in nb.text()
    env = nb.file("registry-helper.yaml")["extraEnv"]
    assert all(e["name"] != "AWS_ECR_EXPIRES_AFTER_PUSH_DAYS" for e in env)
    assert [h["expires_after_push_days"] for h in state(box)["helpers"]] == [""]
    assert state(box)["repositories"][REPOSITORY]["lifecycle_policy"] is None


def test_a_rerun_with_other_retention_days_redeploys_the_helper(nb: Notebook, box: EcrBox) -> None:
    nb()
    nb(retention_days=14)
    assert "[failed]" not in nb.text()
    assert [h["expires_after_push_days"] for h in state(box)["helpers"]] == ["14"]
    env = nb.file("registry-helper.yaml")["extraEnv"]
    assert {"name": "AWS_ECR_EXPIRES_AFTER_PUSH_DAYS", "value": "14"} in env


def test_storage_used_sums_the_images_under_the_prefix(nb: Notebook, box: EcrBox) -> None:
    nb()
    images = box.client("ecr").describe_images(
        repositoryName="binderhub/binder-binderhub-registry-check"
    )["imageDetails"]
    used = sum(i["imageSizeInBytes"] for i in images)
    assert used > 0
    source = "ECR repositories binderhub/binder-* (billed per GB-month)"
    assert f"Storage used [done]: {Usage(used, None, source).text()}" in nb.results


def test_a_rerun_changes_nothing_and_reuses_the_token(nb: Notebook, box: EcrBox) -> None:
    nb()
    token = nb.file("secret.yaml")["config"]["ExternalRegistryHelper"]["auth_token"]
    before = made(box)
    nb()
    assert made(box) == before
    assert "[created]" not in nb.text() and "[failed]" not in nb.text()
    assert nb.file("secret.yaml")["config"]["ExternalRegistryHelper"]["auth_token"] == token


def test_a_dry_run_changes_nothing(nb: Notebook, box: EcrBox) -> None:
    before = made(box)
    nb(dry_run=True)
    assert "[planned]" in nb.text() and "[failed]" not in nb.text()
    assert made(box) == before and not nb.out.joinpath("secret.yaml").exists()
    # it shows the lifecycle policy the helper would put on each repository it creates
    (row,) = (r for r in nb.results if r.startswith("The registry helper [planned]"))
    assert "AWS_ECR_EXPIRES_AFTER_PUSH_DAYS=30" in row
    assert "expiring any image 30 days after its push (sinceImagePushed, countNumber 30)" in row


def test_a_dry_run_with_retention_days_0_says_everything_is_kept(nb: Notebook) -> None:
    nb(dry_run=True, retention_days=0)
    (row,) = (r for r in nb.results if r.startswith("The registry helper [planned]"))
    assert "retention_days = 0: no AWS_ECR_EXPIRES_AFTER_PUSH_DAYS" in row
    assert "ECR keeps everything" in row


def test_the_stated_lifecycle_policy_is_the_one_the_helper_puts(nb: Notebook, box: EcrBox) -> None:
    nb(retention_days=9)
    put = state(box)["repositories"][REPOSITORY]["lifecycle_policy"]
    assert ecr.lifecycle_policy(9) == put and ecr.lifecycle_policy(0) is None


def test_an_account_id_other_than_the_caller_s_stops_before_any_change(
    nb: Notebook, box: EcrBox
) -> None:
    before = state(box)
    with pytest.raises(PermissionDenied) as err:
        nb(account_id="210987654321")
    message = str(err.value)
    assert "\n" not in message and "not account_id 210987654321" in message
    assert "account 123456789012" in message and "set account_id = '123456789012'" in message
    assert state(box) == before and not nb.out.joinpath("binderhub-registry.json").exists()


def test_a_dry_run_with_the_helper_s_user_changes_nothing(nb: Notebook, box: EcrBox) -> None:
    # the user (and so its key) is only planned: the helper's deploy is planned without one
    before = made(box)
    nb(dry_run=True, helper_identity="user")
    assert "[planned]" in nb.text() and "[failed]" not in nb.text()
    assert made(box) == before and not nb.out.joinpath("secret.yaml").exists()


# --- the helper's least privilege --------------------------------------------------------------
def test_the_helper_can_make_repositories_under_the_prefix_only(nb: Notebook, box: EcrBox) -> None:
    conn = nb()
    token = nb.file("secret.yaml")["config"]["ExternalRegistryHelper"]["auth_token"]
    helper = ecr.HelperAPI(conn.service_url, ecr.Secret(token), box.ca_file)
    assert helper.get_image_manifest("binderhub/binder-new", "v1") is None  # made
    with pytest.raises(VerificationFailed, match=r"AccessDenied|not authorized"):
        helper.get_image_manifest("elsewhere/binder-new", "v1")


# --- rotation and teardown ----------------------------------------------------------------------
def test_the_user_s_key_rotates_and_the_old_one_goes_once_the_new_verified(
    nb: Notebook, box: EcrBox
) -> None:
    nb(helper_identity="user")
    env = {e["name"]: e["value"] for e in nb.file("registry-helper.yaml")["extraEnv"]}
    old = env["AWS_ACCESS_KEY_ID"]
    nb(helper_identity="user", rotate=True)
    assert "Remove the replaced credential [deleted]" in nb.text()
    env = {e["name"]: e["value"] for e in nb.file("registry-helper.yaml")["extraEnv"]}
    keys = box.client("iam").list_access_keys(UserName="binderhub-registry-helper")[
        "AccessKeyMetadata"
    ]
    assert [k["AccessKeyId"] for k in keys] == [env["AWS_ACCESS_KEY_ID"]] != [old]


def test_teardown_removes_what_this_deployment_made(nb: Notebook, box: EcrBox) -> None:
    before = made(box)
    nb()
    repositories = state(box)["repositories"]
    assert repositories[REPOSITORY]["lifecycle_policy"] is not None
    images = box.client("ecr").describe_images(repositoryName=REPOSITORY.partition("/")[2])
    nb(teardown=True)
    assert "Delete what this notebook created [deleted]" in nb.text()
    assert made(box) == before
    assert not (nb.out / "secret.yaml").exists() and not (nb.out / "registry-helper.yaml").exists()
    # the helper's repositories hold BinderHub's images: they stay, images and lifecycle too
    assert state(box)["repositories"] == repositories
    left = box.client("ecr").describe_images(repositoryName=REPOSITORY.partition("/")[2])
    assert left["imageDetails"] == images["imageDetails"]
    (row,) = (r for r in nb.results if r.startswith("Delete what this notebook created"))
    assert "the ECR repositories under binderhub/ stay, with BinderHub's images" in row
    assert "aws ecr delete-repository --repository-name binderhub/<name>" in row


def _provider(box: EcrBox) -> str:
    (found,) = box.client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"]
    return str(found["Arn"])


def test_teardown_keeps_an_oidc_provider_without_our_tag(nb: Notebook, box: EcrBox) -> None:
    nb()
    arn = _provider(box)
    iam = box.client("iam")  # someone took the provider over: its mark is gone, the record stays
    iam.untag_open_id_connect_provider(OpenIDConnectProviderArn=arn, TagKeys=[ecr.MARK_TAG])
    nb(teardown=True)
    assert _provider(box) == arn  # kept
    assert "binderhub-registry-helper" not in state(box)["roles"]  # the rest went
    (row,) = (r for r in nb.results if r.startswith("Delete what this notebook created"))
    assert "[deleted]" in row and ", IAM OIDC provider," not in row
    assert f"the record of IAM OIDC provider {arn} (the provider stays: it lacks the tag" in row
    assert "it is not this deployment's" in row


def test_teardown_keeps_an_oidc_provider_another_role_trusts_and_says_so(
    nb: Notebook, box: EcrBox
) -> None:
    nb()
    arn = _provider(box)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
            }
        ],
    }
    box.client("iam").create_role(
        RoleName="someone-else", AssumeRolePolicyDocument=json.dumps(trust)
    )
    nb(dry_run=True, teardown=True)  # the plan says it too
    (planned,) = (r for r in nb.results if r.startswith("Delete what this notebook created"))
    assert "[planned]" in planned and "role someone-else trusts it" in planned
    nb(teardown=True)
    assert _provider(box) == arn
    (row,) = (r for r in nb.results if r.startswith("Delete what this notebook created"))
    assert "[deleted]" in row and ", IAM OIDC provider," not in row
    assert "the provider stays: role someone-else trusts it" in row
    assert f"aws iam delete-open-id-connect-provider --open-id-connect-provider-arn {arn}" in row


def test_a_same_named_role_without_our_tag_is_never_taken(nb: Notebook, box: EcrBox) -> None:
    box.client("iam").create_role(
        RoleName="binderhub-registry-helper", AssumeRolePolicyDocument="{}"
    )
    with pytest.raises(PermissionDenied, match="not this deployment's"):
        nb()
    assert state(box)["helpers"] == []


# --- faults -------------------------------------------------------------------------------------
def test_throttling_is_retried_by_the_runner(nb: Notebook, box: EcrBox) -> None:
    box.cloud.offset["throttle"] = {"CreatePolicy": 2, "CreateRole": 1}
    nb()
    assert "[failed]" not in nb.text() and "policies" in made(box)
    assert made(box)["policies"] == ["binderhub-registry-helper"]


def test_a_role_that_propagates_late_is_waited_for_without_duplicates(
    nb: Notebook, box: EcrBox
) -> None:
    # the sandbox's own propagation delay: STS refuses the new role until it is 10 s old; the
    # runner's sleeps are the time that passes (no real wait)
    box.cloud.offset["role_propagation_seconds"] = 10.0
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        if sum(waited) >= 10.0:
            box.cloud.offset["role_propagation_seconds"] = 0.0  # it has propagated

    nb(Runner(backoff=1.0, sleep=sleep))
    assert "[failed]" not in nb.text() and nb.attempts("Verify") > 1
    found = made(box)
    assert found["roles"].count("binderhub-registry-helper") == 1
    assert found["policies"] == ["binderhub-registry-helper"] and len(found["helpers"]) == 1
    assert len(found["oidc_providers"]) == 1
    assert list(state(box)["repositories"]) == [REPOSITORY]


def test_ecr_s_throttling_exception_is_retried_by_the_runner(nb: Notebook, box: EcrBox) -> None:
    # ECR's own throttling (400 ThrottlingException, JSON), on the notebook's ECR call: the
    # pull-only user's GetAuthorizationToken in "User pods' pull"
    box.cloud.offset["throttle"] = {"GetAuthorizationToken": 2}
    nb(pull_access="secret")
    assert "[failed]" not in nb.text() and nb.attempts("User pods' pull") >= 2
    keys = box.client("iam").list_access_keys(UserName="binderhub-registry-helper-puller")
    assert len(keys["AccessKeyMetadata"]) == 1  # the retried step reused its key
    assert box.cloud.offset["throttle"] == {"GetAuthorizationToken": 0}


def test_a_role_not_usable_yet_is_waited_for(nb: Notebook, box: EcrBox) -> None:
    box.app.faults.append(  # IAM's eventual consistency, as the helper reports its STS refusal
        Fault.parse(
            {
                "method": "POST",
                "path": "/ecr/helpers/.*/repo/",
                "status": 500,
                "times": 2,
                "body": '{"error": "operation error STS: AssumeRoleWithWebIdentity, api error '
                'AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity"}',
            }
        )
    )
    nb()
    assert "[failed]" not in nb.text()


@needs_skopeo
def test_a_push_token_that_expired_mid_run_is_refused_and_a_fresh_one_works(
    nb: Notebook, box: EcrBox, tmp_path: Path
) -> None:
    conn = nb()
    token = nb.file("secret.yaml")["config"]["ExternalRegistryHelper"]["auth_token"]
    helper = ecr.HelperAPI(conn.service_url, ecr.Secret(token), box.ca_file)
    image = "binderhub/binder-late"
    assert helper.get_image_manifest(image, "v1") is None
    creds = helper.get_credentials(image, "v1")
    assert creds is not None
    box.cloud.offset["clock_offset_hours"] = 12.5  # a build that outlived ECR's 12 hours
    registry = {"url": creds["registry"], "username": "AWS", "password": creds["password"]}
    host = creds["registry"].removeprefix("https://")
    late = skopeo_push(box.ca_file, tmp_path, registry, f"{host}/{image}:v1")
    assert late.returncode != 0 and "expired" in late.stderr
    fresh = helper.get_credentials(image, "v1")  # BinderHub asks anew for each build
    assert fresh is not None
    registry["password"] = fresh["password"]
    assert skopeo_push(box.ca_file, tmp_path, registry, f"{host}/{image}:v1").returncode == 0


def test_a_repository_gone_before_the_push_is_named(
    nb: Notebook, box: EcrBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = nb()
    values = conn.values()
    assert isinstance(values, ecr.HelperValues)
    real = ecr.HelperAPI.get_credentials

    def deleted_meanwhile(helper: ecr.HelperAPI, image: str, tag: str) -> Any:
        # someone deletes the repository between BinderHub's check and the build's push
        box.client("ecr").delete_repository(repositoryName=image, force=True)
        return real(helper, image, tag)

    monkeypatch.setattr(ecr.HelperAPI, "get_credentials", deleted_meanwhile)
    with pytest.raises(VerificationFailed) as err:
        ecr.verify_with_helper(values, box.ca_file, ecr.HINTS)
    assert err.value.check == "push a test image"
    assert "binderhub/binder-binderhub-registry-check does not exist" in str(err.value)
    assert "RepositoryNotFoundException" in str(err.value)


def test_a_rotated_auth_token_stops_the_old_one(nb: Notebook, box: EcrBox) -> None:
    conn = nb()
    old = nb.file("secret.yaml")["config"]["ExternalRegistryHelper"]["auth_token"]
    nb(rotate=True)
    assert "Remove the replaced credential [deleted]" in nb.text()
    new = nb.file("secret.yaml")["config"]["ExternalRegistryHelper"]["auth_token"]
    assert new != old and nb.file("registry-helper.yaml")["auth_token"] == new
    with pytest.raises(VerificationFailed, match="refused BinderHub's auth token"):
        ecr.HelperAPI(conn.service_url, ecr.Secret(old), box.ca_file).get_image_manifest("x/y", "1")
    assert "retiring" not in json.loads((nb.out / "binderhub-registry.json").read_text())["created"]


def test_a_node_role_without_ecr_pull_is_named_with_its_fix(nb: Notebook, box: EcrBox) -> None:
    box.client("iam").detach_role_policy(
        RoleName="binderhub-node",
        PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    )
    with pytest.raises(
        PermissionDenied, match="attach-role-policy --role-name binderhub-node"
    ) as err:
        nb()
    # the other way that pulls from ECR: a pull secret ("none" cannot: ECR is private)
    assert 'or rerun with pull_access = "secret"' in str(err.value)
    assert '"none"' not in str(err.value)


def test_unreadable_5xx_and_a_busy_helper_are_retried(nb: Notebook, box: EcrBox) -> None:
    box.app.faults += [  # a proxy's page botocore cannot parse, then the helper's 429
        Fault.parse({"method": "POST", "path": "^/ecr/iam", "status": 502, "times": 2}),
        Fault.parse({"method": "GET", "path": "^/ecr/helpers/.*/repo/", "status": 429, "times": 1}),
    ]
    nb()
    assert "[failed]" not in nb.text() and all(f.times == 0 for f in box.app.faults)


# --- the values read back, and `binderhub-registry verify` on them ---------------------------
def test_the_written_values_load_back_and_verify_checks_them(
    nb: Notebook, box: EcrBox, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = nb()
    written = conn.values()
    config, secret = nb.out / "config.yaml", nb.out / "secret.yaml"
    # registry.* holds no credential behind ExternalRegistryHelper: read as such, not refused
    values = load_values(config, secret)
    assert isinstance(values, HelperValues) and isinstance(written, HelperValues)
    assert values.config() == written.config()
    assert values.secret(reveal=True) == written.secret(reveal=True)
    capsys.readouterr()
    # BinderHub's calls to the helper, then the push and pull with the helper's token
    assert cli.main(["verify", "--ca-file", box.ca_file, str(config), str(secret)]) == 0
    out = capsys.readouterr().out
    assert "ExternalRegistryHelper: found" in out
    assert written.auth_token.reveal() not in out


def test_verify_names_a_helper_inside_the_cluster_and_takes_its_forwarded_url(
    nb: Notebook, box: EcrBox, capsys: pytest.CaptureFixture[str]
) -> None:
    nb()
    config, secret = nb.out / "config.yaml", str(nb.out / "secret.yaml")
    found = yaml.safe_load(config.read_text())
    reachable = found["config"]["ExternalRegistryHelper"]["service_url"]
    # as a real run writes it: the helper's Service, which resolves inside the cluster only
    found["config"]["ExternalRegistryHelper"]["service_url"] = (
        "http://binderhub-container-registry-helper.binderhub.svc:8080"
    )
    config.write_text(yaml.safe_dump(found))
    before = state(box)
    capsys.readouterr()
    code = cli.main(["verify", "--ca-file", box.ca_file, str(config), secret])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "service_url names a Service inside the cluster" in err
    assert "--helper-url" in err and "build pod's log" in err
    assert state(box) == before  # nothing asked
    # the next step's way: the helper's port forwarded, its URL here given
    code = cli.main(
        ["verify", "--ca-file", box.ca_file, str(config), secret, "--helper-url", reachable]
    )
    assert code == 0, capsys.readouterr().err
    assert "ExternalRegistryHelper: found" in capsys.readouterr().out
    bad = cli.main(["verify", str(config), secret, "--helper-url", "ftp://127.0.0.1:8080"])
    assert bad == 2 and "parameter '--helper-url'" in capsys.readouterr().err


def test_helper_values_without_the_helper_s_token_are_refused(nb: Notebook) -> None:
    nb()
    secret = nb.out / "secret.yaml"
    found = yaml.safe_load(secret.read_text())
    del found["config"]
    secret.write_text(yaml.safe_dump(found))
    with pytest.raises(InvalidValuesFile, match=r"config is missing"):
        load_values(nb.out / "config.yaml", secret)


# --- the notebook's text ------------------------------------------------------------------------
NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "06-amazon-ecr.ipynb"


def _sections() -> dict[str, str]:
    """Notebook 06's markdown by its ``## `` heading, in order."""
    found = json.loads(NOTEBOOK.read_text())
    texts = ["".join(c["source"]) for c in found["cells"] if c["cell_type"] == "markdown"]
    return {t.splitlines()[0]: t for t in texts if t.startswith("## ")}


def test_the_notebook_says_how_the_registry_is_kept_small_before_verify() -> None:
    sections = _sections()
    headings = list(sections)
    # the heading notebooks 01-05 use, before Verify as there
    assert headings.index("## Keep the registry small") < headings.index(
        "## Verify, as BinderHub would"
    )
    keep = " ".join(sections["## Keep the registry small"].split())
    for said in (
        "sinceImagePushed",
        "AWS_ECR_EXPIRES_AFTER_PUSH_DAYS",
        "sinceImagePulled",
        "AWS_ECR_EXPIRES_AFTER_PULL_DAYS",  # the helper's commented-out setting
        "`REPLICATION`, `PULL_THROUGH_CACHE` and `CREATE_ON_PUSH`",
        "API_CreateRepositoryCreationTemplate.html",
        "`CREATE_ON_PUSH` never fires",
    ):
        assert said in keep, said
    # moved, not copied: step 4 points to it
    step4 = sections["## Step 4: the registry helper"]
    assert "sinceImagePulled" not in step4 and "Keep the registry small" in step4
    # the policy text says why the helper may not delete
    step2 = " ".join(sections["## Step 2: the helper's IAM policy"].split())
    assert "Not `DeleteRepository` nor `DeleteLifecyclePolicy`" in step2
