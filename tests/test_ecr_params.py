"""The ECR notebook's parameters: each bad input stops the run with one line naming the
parameter and its rule, before any call (pytest-socket refuses every connection here), and a
missing credential says in one line how to get one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import InvalidParameter, MissingCredentials
from binderhub_registry.providers import ecr

from .helpers import ECR_DEFAULTS

DEFAULTS = ECR_DEFAULTS

BAD = [
    ("aws_region", "us-east-7"),  # no such region
    ("aws_region", "cn-north-1"),  # ECR runs there, but in another partition (hosts, ARNs)
    ("aws_region", "US-EAST-2"),
    ("aws_region", ""),
    ("account_id", "12345678901"),  # 11 digits
    ("account_id", "12345678901a"),
    ("account_id", 123456789012),  # a number loses leading zeros: the id is text
    ("repository_prefix", "BinderHub"),  # ECR names are lowercase
    ("repository_prefix", "binder_hub"),  # BinderHub would push to binder-hub
    ("repository_prefix", "binderhub/"),
    ("repository_prefix", "/binderhub"),
    ("repository_prefix", "binder//hub"),
    ("repository_prefix", "a" * 201),
    ("cluster_name", "-binderhub"),
    ("cluster_name", "my.cluster"),
    ("cluster_name", "c" * 101),
    ("helper_namespace", "BinderHub"),
    ("helper_namespace", "n" * 64),
    ("helper_name", "helper_1"),  # not a service account name
    ("helper_name", "helper-"),
    ("helper_identity", "irsa"),
    ("retention_days", -1),  # the common parameter sets the helper's lifecycle here
    ("retention_days", 3651),
    ("retention_days", "30"),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v!r}"[:40] for n, v in BAD])
def test_a_bad_input_is_one_line_naming_the_parameter_and_its_rule(
    tmp_path: Path, name: str, value: Any
) -> None:
    rule = next(p.rule for p in ecr.PARAMETERS if p.name == name)
    with pytest.raises(InvalidParameter) as err:
        ecr.validate(DEFAULTS | {"output_dir": str(tmp_path / "v"), name: value})
    assert err.value.name == name
    message = str(err.value)
    assert message.startswith(f"parameter {name!r}: ") and rule in message and "\n" not in message


def test_the_defaults_and_every_ecr_region_are_accepted(tmp_path: Path) -> None:
    assert "us-east-2" in ecr.ecr_regions() and "eu-west-1" in ecr.ecr_regions()
    for region in ecr.ecr_regions():
        p = ecr.validate(DEFAULTS | {"output_dir": str(tmp_path / "v"), "aws_region": region})
        assert p.host == f"123456789012.dkr.ecr.{region}.amazonaws.com"
    assert not (tmp_path / "v").exists() or (tmp_path / "v").is_dir()


def test_a_pull_secret_is_accepted_a_cronjob_refreshes_it(tmp_path: Path) -> None:
    p = ecr.validate(DEFAULTS | {"output_dir": str(tmp_path / "v"), "pull_access": "secret"})
    assert p.pull_access == "secret" and p.puller_name == "binderhub-registry-helper-puller"


def test_rotate_with_keep_replaced_is_refused_the_helper_takes_one_token(tmp_path: Path) -> None:
    values = DEFAULTS | {"output_dir": str(tmp_path / "v"), "rotate": True, "keep_replaced": True}
    with pytest.raises(InvalidParameter, match="one auth token") as err:
        ecr.validate(values)
    assert err.value.name == "keep_replaced"


def test_policy_is_scoped_to_the_prefix_and_the_trust_to_one_service_account() -> None:
    policy = ecr.helper_policy("us-east-2", "123456789012", "binderhub")
    scoped, token = policy["Statement"]
    assert scoped["Resource"] == "arn:aws:ecr:us-east-2:123456789012:repository/binderhub/*"
    assert "ecr:GetAuthorizationToken" not in scoped["Action"]
    assert token == {
        "Sid": "RegistryToken",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    }
    issuer = "https://oidc.eks.us-east-2.amazonaws.com/id/EXAMPLE"
    arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-2.amazonaws.com/id/EXAMPLE"
    trust = ecr.trust_policy(arn, issuer, "system:serviceaccount:binderhub:helper")
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Federated": arn}
    assert statement["Condition"]["StringEquals"] == {
        "oidc.eks.us-east-2.amazonaws.com/id/EXAMPLE:sub": "system:serviceaccount:binderhub:helper",
        "oidc.eks.us-east-2.amazonaws.com/id/EXAMPLE:aud": "sts.amazonaws.com",
    }


def test_the_helper_s_policy_grants_only_the_calls_binderhub_s_routes_make() -> None:
    # amazon.go (manics/binderhub-container-registry-helper at d424275): GET /repo/ and POST
    # /repo/ (DescribeRepositories, CreateRepository, PutLifecyclePolicy), GET /image/
    # (DescribeImages), POST /token/ (GetAuthorizationToken); its DELETE /repo/ route alone
    # calls DeleteLifecyclePolicy and DeleteRepository, and BinderHub never sends it
    scoped, token = ecr.helper_policy("us-east-2", "123456789012", "binderhub")["Statement"]
    assert scoped["Action"] == [
        "ecr:DescribeRepositories",
        "ecr:CreateRepository",
        "ecr:PutLifecyclePolicy",
        "ecr:DescribeImages",
        "ecr:BatchCheckLayerAvailability",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]
    assert token["Action"] == "ecr:GetAuthorizationToken"


def test_no_credentials_for_real_is_one_line_on_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # the chain's last probe, off
    p = ecr.validate(DEFAULTS | {"output_dir": str(tmp_path / "v"), "sandbox": False})
    with pytest.raises(MissingCredentials) as err:
        ecr.sign_in(p)
    message = str(err.value)
    assert "aws configure sso" in message and "AWS_ACCESS_KEY_ID" in message
    assert "\n" not in message
