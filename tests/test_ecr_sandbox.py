"""The ECR sandbox against its evidence: boto3 (the official SDK) on moto's IAM, STS and ECR
through the sandbox's layer, skopeo (a client nobody here wrote) on ECR's registry front.

The backend runs in this process on an app of its own (``ecr_box``): it does not need the
provider to be registered, and its settings are set directly.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from binderhub_registry.sandbox.ecr.models import ACCOUNT_ID, TOKEN_HOURS

from .helpers import ECR_REGION as REGION
from .helpers import EcrBox, node_pull_credential, node_token
from .skopeo import needs_skopeo, skopeo_push

PREFIX_POLICY = {  # the helper's least privilege: repositories under binderhub/, and a token
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:CreateRepository",
                "ecr:DescribeRepositories",
                "ecr:DescribeImages",
                "ecr:PutLifecyclePolicy",
                "ecr:BatchCheckLayerAvailability",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/binderhub/*",
        },
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
    ],
}


def scoped_user(box: EcrBox, policy: dict[str, Any] = PREFIX_POLICY) -> tuple[str, str]:
    """An IAM user with only ``policy`` (inline), and its access key."""
    iam = box.client("iam")
    iam.create_user(UserName="helper")
    iam.put_user_policy(UserName="helper", PolicyName="helper", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="helper")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def registry_login(box: EcrBox, key: str = "", secret: str = "") -> dict[str, str]:
    """secret.yaml's ``registry`` from GetAuthorizationToken (user ``AWS``)."""
    data = box.client("ecr", key, secret).get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return {"url": data["proxyEndpoint"], "username": username, "password": password}


def registry_get(box: EcrBox, login: dict[str, str], path: str) -> requests.Response:
    """A registry GET with the login's Basic credentials (as docker sends ECR's)."""
    return requests.get(
        box.registry + path,
        auth=(login["username"], login["password"]),
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        verify=box.ca_file,
        timeout=10,
    )


# --- the control plane -------------------------------------------------------------------------
def test_a_new_account_has_its_admin_and_nothing_else(ecr: EcrBox) -> None:
    identity = ecr.client("sts").get_caller_identity()
    assert identity["Account"] == ACCOUNT_ID
    assert identity["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/sandbox-admin"
    assert ecr.client("ecr").describe_repositories()["repositories"] == []
    iam = ecr.client("iam")
    # the EKS cluster BinderHub runs on is there (a prerequisite), with its own two roles
    roles = sorted(r["RoleName"] for r in iam.list_roles()["Roles"])
    assert roles == ["binderhub-cluster", "binderhub-node"]
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []


def test_iam_is_enforced_and_a_prefix_policy_scopes_ecr(ecr: EcrBox) -> None:
    key, secret = scoped_user(ecr)
    scoped = ecr.client("ecr", key, secret)
    made = scoped.create_repository(repositoryName="binderhub/binder-x")["repository"]
    # the repository's URI names the sandbox's registry (real life: <acct>.dkr.ecr.<region>...)
    assert made["repositoryUri"] == ecr.registry.removeprefix("https://") + "/binderhub/binder-x"
    with pytest.raises(ClientError) as denied:
        scoped.create_repository(repositoryName="other/x")
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert error["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT_ID}:user/helper is not authorized to perform: "
        f"ecr:CreateRepository on resource: arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/other/x "
        "because no identity-based policy allows the ecr:CreateRepository action"
    )
    with pytest.raises(ClientError) as unknown:
        ecr.client("ecr", key, "wrong-secret").describe_repositories()
    assert unknown.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as no_such_key:
        ecr.client("ecr", "AKIAAAAAAAAAAAAAAAAA", "x").describe_repositories()
    assert no_such_key.value.response["Error"] == {
        "Code": "UnrecognizedClientException",
        "Message": "The security token included in the request is invalid.",
    }


def test_throttling_is_answered_as_aws_does_and_botocore_retries(ecr: EcrBox) -> None:
    ecr.cloud.offset["throttle"] = {"CreateRepository": 2}
    once = ecr.client("ecr", retries={"total_max_attempts": 1, "mode": "standard"})
    with pytest.raises(ClientError) as throttled:
        once.create_repository(repositoryName="binderhub/a")
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    answer = ecr.client("ecr").create_repository(repositoryName="binderhub/a")  # botocore retries
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert ecr.cloud.offset["throttle"] == {"CreateRepository": 0}


def test_a_fault_with_aws_s_throttling_body_is_retried_too(ecr: EcrBox) -> None:
    body = {"__type": "ThrottlingException", "message": "Rate exceeded"}
    assert (
        ecr.admin_post(
            "faults", [{"method": "POST", "path": "^/ecr/api", "status": 400, "body": body}]
        ).status_code
        == 201
    )
    answer = ecr.client("ecr").describe_repositories()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1


def test_iam_throttling_uses_the_query_protocol_s_code(ecr: EcrBox) -> None:
    ecr.cloud.offset["throttle"] = {"CreateRole": 1}
    with pytest.raises(ClientError) as throttled:
        ecr.client("iam", retries={"total_max_attempts": 1, "mode": "standard"}).create_role(
            RoleName="r", AssumeRolePolicyDocument="{}"
        )
    assert throttled.value.response["Error"]["Code"] == "Throttling"


def test_authorization_token_is_aws_and_an_opaque_password_for_12_hours(ecr: EcrBox) -> None:
    before = ecr.cloud.clock()
    data = ecr.client("ecr").get_authorization_token()["authorizationData"]
    assert len(data) == 1
    username, _, password = base64.b64decode(data[0]["authorizationToken"]).decode().partition(":")
    assert username == "AWS"
    assert len(password) > 1000  # ECR's is a ~2 kB base64 blob, nothing a client can read
    assert data[0]["proxyEndpoint"] == ecr.registry
    hours = (data[0]["expiresAt"].timestamp() - before) / 3600
    assert TOKEN_HOURS - 0.1 < hours <= TOKEN_HOURS + 0.1


# --- the data plane ------------------------------------------------------------------------------
def test_registry_challenges_as_ecr_does(ecr: EcrBox) -> None:
    answer = requests.get(ecr.registry + "/v2/", verify=ecr.ca_file, timeout=10)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == (
        f'Basic realm="{ecr.registry}/",service="ecr.amazonaws.com"'
    )
    login = registry_login(ecr)
    ok = requests.get(
        ecr.registry + "/v2/",
        auth=(login["username"], login["password"]),
        verify=ecr.ca_file,
        timeout=10,
    )
    assert ok.status_code == 200
    wrong = requests.get(
        ecr.registry + "/v2/", auth=("AWS", "not-a-token"), verify=ecr.ca_file, timeout=10
    )
    assert wrong.status_code == 400  # `docker login` "failed with status: 400 Bad Request"


def test_a_missing_repository_is_name_unknown(ecr: EcrBox) -> None:
    login = registry_login(ecr)
    answer = requests.get(
        ecr.registry + "/v2/binderhub/none/manifests/latest",
        auth=(login["username"], login["password"]),
        verify=ecr.ca_file,
        timeout=10,
    )
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert answer.json()["errors"][0]["message"] == (
        "The repository with name 'binderhub/none' does not exist in the registry "
        f"with id '{ACCOUNT_ID}'"
    )


@needs_skopeo
def test_push_needs_the_repository_then_shows_in_describe_images(
    ecr: EcrBox, tmp_path: Path
) -> None:
    login = registry_login(ecr)
    host = ecr.registry.removeprefix("https://")
    refused = skopeo_push(ecr.ca_file, tmp_path / "a", login, f"{host}/binderhub/img:v1")
    assert refused.returncode != 0
    assert "The repository with name 'binderhub/img' does not exist" in refused.stderr
    ecr.client("ecr").create_repository(repositoryName="binderhub/img")
    pushed = skopeo_push(ecr.ca_file, tmp_path / "a", login, f"{host}/binderhub/img:v1")
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    images = ecr.client("ecr").describe_images(repositoryName="binderhub/img")["imageDetails"]
    assert [i["imageTags"] for i in images] == [["v1"]]
    again = skopeo_push(ecr.ca_file, tmp_path / "a", login, f"{host}/binderhub/img:v1")
    assert again.returncode == 0, again.stderr[-2000:]  # the same image again: no change, no error
    assert ecr.cloud.state()["repositories"][f"{REGION}/binderhub/img"]["images"] == ["v1"]


@needs_skopeo
def test_a_token_expires_after_12_hours_on_the_sandbox_clock(ecr: EcrBox, tmp_path: Path) -> None:
    ecr.client("ecr").create_repository(repositoryName="binderhub/img")
    login = registry_login(ecr)
    host = ecr.registry.removeprefix("https://")
    ecr.cloud.offset["clock_offset_hours"] = TOKEN_HOURS + 0.01
    expired = skopeo_push(ecr.ca_file, tmp_path / "a", login, f"{host}/binderhub/img:v1")
    assert expired.returncode != 0
    assert "403 (Forbidden)" in expired.stderr  # skopeo's HEAD: no body to show
    answer = registry_get(ecr, login, "/v2/binderhub/img/manifests/v1")
    assert answer.status_code == 403
    assert answer.json()["errors"][0] == {
        "code": "DENIED",
        "message": "Your authorization token has expired. Reauthenticate and try again.",
        "detail": None,
    }
    fresh = registry_login(ecr)  # a new token, from the new clock
    assert (
        skopeo_push(ecr.ca_file, tmp_path / "a", fresh, f"{host}/binderhub/img:v1").returncode == 0
    )


@needs_skopeo
def test_the_token_s_identity_must_be_allowed_the_push(ecr: EcrBox, tmp_path: Path) -> None:
    key, secret = scoped_user(ecr)
    ecr.client("ecr").create_repository(repositoryName="other/img")
    login = registry_login(ecr, key, secret)
    host = ecr.registry.removeprefix("https://")
    denied = skopeo_push(ecr.ca_file, tmp_path / "a", login, f"{host}/other/img:v1")
    assert denied.returncode != 0
    assert "403 (Forbidden)" in denied.stderr
    answer = registry_get(ecr, login, "/v2/other/img/manifests/v1")
    assert answer.json()["errors"][0]["message"] == (
        f"User: arn:aws:iam::{ACCOUNT_ID}:user/helper is not authorized to perform: "
        f"ecr:BatchGetImage on resource: arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/other/img "
        "because no identity-based policy allows the ecr:BatchGetImage action"
    )
    ecr.client("ecr", key, secret).create_repository(repositoryName="binderhub/img")
    ok = skopeo_push(ecr.ca_file, tmp_path / "a", login, f"{host}/binderhub/img:v1")
    assert ok.returncode == 0, ok.stderr[-2000:]


# --- the registry helper, through BinderHub's client -------------------------------------------
class ExternalRegistryHelper:
    """BinderHub's ``binderhub.registry.ExternalRegistryHelper`` (jupyterhub/binderhub, PR #1637;
    ``binderhub/registry.py`` at b9fad99), its calls and answers as there: tornado's client, every
    call with ``Authorization: Bearer <auth_token>``; ``get_image_manifest``: ``GET /repo/<image>``,
    on 404 ``POST /repo/<image>`` (empty body) and None, else ``GET /image/<image>:<tag>`` (404:
    None); ``get_credentials``: ``POST /token/<image>:<tag>`` (404: None), keeping ``username``,
    ``password`` and ``registry``. Written here from that source (no BinderHub release on PyPI
    has it: the last is 0.1.0, of 2018)."""

    def __init__(self, service_url: str, auth_token: str) -> None:
        self.service_url = service_url
        self.auth_token = auth_token

    async def _request(self, endpoint: str, **kwargs: Any) -> Any:
        from tornado import httpclient

        client = httpclient.AsyncHTTPClient()
        headers = {"Authorization": f"Bearer {self.auth_token}"}
        answer = await client.fetch(f"{self.service_url}{endpoint}", headers=headers, **kwargs)
        return json.loads(answer.body.decode("utf-8"))

    async def get_image_manifest(self, image: str, tag: str) -> Any:
        from tornado import httpclient

        try:
            repository = await self._request(f"/repo/{image}")
        except httpclient.HTTPError as e:
            if e.code != 404:
                raise
            repository = None
        if not repository:
            await self._request(f"/repo/{image}", method="POST", body="")
            return None
        try:
            return await self._request(f"/image/{image}:{tag}")
        except httpclient.HTTPError as e:
            if e.code == 404:
                return None
            raise

    async def get_credentials(self, image: str, tag: str) -> dict[str, str] | None:
        from tornado import httpclient

        try:
            answer = await self._request(f"/token/{image}:{tag}", method="POST", body="")
        except httpclient.HTTPError as e:
            if e.code == 404:
                return None
            raise
        return {k: v for k, v in answer.items() if k in ("username", "password", "registry")}


def binderhub(box: EcrBox, release: str, token: str) -> ExternalRegistryHelper:
    """BinderHub's client of the helper ``release``; tornado trusts the sandbox's CA."""
    from tornado.httpclient import AsyncHTTPClient

    AsyncHTTPClient.configure(None, defaults={"ca_certs": box.ca_file})
    return ExternalRegistryHelper(f"{box.url}/ecr/helpers/{release}", token)


CLUSTER_ISSUER = "https://oidc.eks.us-east-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


def irsa_role(box: EcrBox, subject: str = "system:serviceaccount:binderhub:registry-helper") -> str:
    """What the notebook makes for IRSA: the cluster's OIDC provider, the helper's policy, and a
    role trusting the provider for ``subject`` only; the role's ARN."""
    iam = box.client("iam")
    provider = iam.create_open_id_connect_provider(
        Url=CLUSTER_ISSUER, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9" * 40]
    )["OpenIDConnectProviderArn"]
    host = CLUSTER_ISSUER.removeprefix("https://")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{host}:sub": subject, f"{host}:aud": "sts.amazonaws.com"}
                },
            }
        ],
    }
    role = iam.create_role(RoleName="registry-helper", AssumeRolePolicyDocument=json.dumps(trust))
    policy = iam.create_policy(
        PolicyName="registry-helper", PolicyDocument=json.dumps(PREFIX_POLICY)
    )
    iam.attach_role_policy(RoleName="registry-helper", PolicyArn=policy["Policy"]["Arn"])
    return str(role["Role"]["Arn"])


def deploy(box: EcrBox, release: str = "helper", **env: str) -> requests.Response:
    """``helm install`` of the helper chart, in the sandbox: its pod's environment."""
    settings = {
        "BINDERHUB_AUTH_TOKEN": "helper-token",
        "AWS_REGION": REGION,
        "service_account": "binderhub:registry-helper",
        "cluster": "binderhub",
    } | env
    return requests.put(
        f"{box.url}/ecr/helpers/{release}", json=settings, verify=box.ca_file, timeout=10
    )


@needs_skopeo
def test_binderhub_s_client_creates_gets_credentials_pushes_and_finds(
    ecr: EcrBox, tmp_path: Path
) -> None:
    role = irsa_role(ecr)
    assert deploy(ecr, AWS_ROLE_ARN=role, AWS_ECR_EXPIRES_AFTER_PUSH_DAYS="7").status_code == 201
    hub = binderhub(ecr, "helper", "helper-token")
    image = "binderhub/binder-abc"
    assert asyncio.run(hub.get_image_manifest(image, "t1")) is None  # and the repository is made
    repositories = ecr.client("ecr").describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repositories] == [image]
    policy = ecr.client("ecr").get_lifecycle_policy(repositoryName=image)["lifecyclePolicyText"]
    assert json.loads(policy)["rules"][0]["selection"] == {
        "tagStatus": "any",
        "countType": "sinceImagePushed",
        "countNumber": 7,
        "countUnit": "days",
    }
    credentials = asyncio.run(hub.get_credentials(image, "t1"))
    assert credentials is not None and credentials["username"] == "AWS"
    assert credentials["registry"] == ecr.registry
    registry = {"url": credentials["registry"]} | credentials
    host = ecr.registry.removeprefix("https://")
    pushed = skopeo_push(ecr.ca_file, tmp_path / "a", registry, f"{host}/{image}:t1")
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    found = asyncio.run(hub.get_image_manifest(image, "t1"))
    assert found["ImageTags"] == ["t1"] and found["RepositoryName"] == image
    assert asyncio.run(hub.get_image_manifest(image, "t2")) is None


def test_the_helper_s_own_answers(ecr: EcrBox) -> None:
    role = irsa_role(ecr)
    deploy(ecr, AWS_ROLE_ARN=role)
    base = f"{ecr.url}/ecr/helpers/helper"

    def call(method: str, path: str, token: str = "helper-token") -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return requests.request(
            method, base + path, headers=headers, verify=ecr.ca_file, timeout=30
        )

    refused = call("GET", "/repo/binderhub/x", token="wrong")
    assert (refused.status_code, refused.json()) == (403, {"error": "not authorised"})
    assert call("GET", "/health", token="").status_code == 200
    missing = call("GET", "/repo/binderhub/x")
    assert (missing.status_code, missing.text) == (404, "null\n")
    made = call("POST", "/repo/binderhub/x")
    assert made.status_code == 200 and made.json()["RepositoryName"] == "binderhub/x"
    assert call("POST", "/repo/binderhub/x").status_code == 200  # an existing one is fine
    outside = call("POST", "/repo/other/x")  # the role's policy: binderhub/* only
    assert outside.status_code == 500
    assert "AccessDeniedException" in outside.json()["error"]
    assert call("GET", "/image/binderhub/x:latest").status_code == 404
    # BinderHub never deletes: a least-privilege role may not, and the helper says so
    not_allowed = call("DELETE", "/repo/binderhub/x")
    assert not_allowed.status_code == 500
    assert "ecr:DeleteLifecyclePolicy" in not_allowed.json()["error"]
    assert call("GET", "/nothing").status_code == 404


def test_irsa_needs_the_provider_and_the_service_account_the_role_trusts(ecr: EcrBox) -> None:
    role = irsa_role(ecr, subject="system:serviceaccount:binderhub:someone-else")
    deploy(ecr, AWS_ROLE_ARN=role)
    hub = binderhub(ecr, "helper", "helper-token")
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as failed:
        asyncio.run(hub.get_image_manifest("binderhub/x", "t"))
    assert failed.value.code == 500
    assert b"Not authorized to perform sts:AssumeRoleWithWebIdentity" in failed.value.response.body


def test_a_role_not_propagated_yet_is_refused_until_it_is(ecr: EcrBox) -> None:
    ecr.cloud.offset["role_propagation_seconds"] = 3600.0
    role = irsa_role(ecr)
    deploy(ecr, AWS_ROLE_ARN=role)
    hub = binderhub(ecr, "helper", "helper-token")
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as failed:
        asyncio.run(hub.get_image_manifest("binderhub/x", "t"))
    assert b"AccessDenied" in failed.value.response.body
    ecr.cloud.offset["role_propagation_seconds"] = 0.0  # it has propagated
    assert asyncio.run(hub.get_image_manifest("binderhub/x", "t")) is None


def test_the_eks_cluster_s_oidc_issuer_and_node_role_are_there(ecr: EcrBox) -> None:
    eks = ecr.client("eks")
    cluster = eks.describe_cluster(name="binderhub")["cluster"]
    assert cluster["identity"]["oidc"]["issuer"] == CLUSTER_ISSUER
    nodegroup = eks.describe_nodegroup(clusterName="binderhub", nodegroupName="default")
    node_role = nodegroup["nodegroup"]["nodeRole"].rpartition("/")[2]
    attached = ecr.client("iam").list_attached_role_policies(RoleName=node_role)
    names = {p["PolicyName"] for p in attached["AttachedPolicies"]}
    assert "AmazonEC2ContainerRegistryReadOnly" in names  # EKS nodes pull from ECR by themselves
    with pytest.raises(ClientError) as missing:
        eks.describe_cluster(name="nosuch")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    key, secret = scoped_user(ecr)  # no eks:DescribeCluster in its policy
    with pytest.raises(ClientError) as denied:
        ecr.client("eks", key, secret).describe_cluster(name="binderhub")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_helper_outside_eks_uses_an_iam_user_s_keys(ecr: EcrBox) -> None:
    key, secret = scoped_user(ecr)
    assert (
        deploy(
            ecr, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, service_account=""
        ).status_code
        == 201
    )
    hub = binderhub(ecr, "helper", "helper-token")
    assert asyncio.run(hub.get_image_manifest("binderhub/x", "t")) is None
    credentials = asyncio.run(hub.get_credentials("binderhub/x", "t"))
    assert credentials is not None and credentials["username"] == "AWS"
    token = ecr.cloud.aws.check_token(credentials["password"])
    assert token is not None and token.principal_arn.endswith(":user/helper")


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"BINDERHUB_AUTH_TOKEN": None}, "BINDERHUB_AUTH_TOKEN not found"),
        ({"AWS_REGION": ""}, "AWS_REGION is required"),
        ({}, "AWS_ROLE_ARN (IRSA) or AWS_ACCESS_KEY_ID is required"),
        ({"AWS_ROLE_ARN": "r", "EXTRA": "x"}, "unknown settings ['EXTRA']"),
    ],
)
def test_a_helper_deploy_without_what_its_pod_needs_is_refused(
    ecr: EcrBox, env: dict[str, Any], reason: str
) -> None:
    settings = {
        "BINDERHUB_AUTH_TOKEN": "t",
        "AWS_REGION": REGION,
        "service_account": "binderhub:registry-helper",
    }
    settings = {k: v for k, v in (settings | env).items() if v is not None}
    answer = requests.put(f"{ecr.url}/ecr/helpers/h", json=settings, verify=ecr.ca_file, timeout=10)
    assert answer.status_code == 400
    assert reason in answer.json()["message"]
    missing = requests.get(f"{ecr.url}/ecr/helpers/h/health", verify=ecr.ca_file, timeout=10)
    assert missing.status_code == 503  # nothing was installed


@needs_skopeo
def test_a_read_only_identity_pulls_and_cannot_push(ecr: EcrBox, tmp_path: Path) -> None:
    ecr.client("ecr").create_repository(repositoryName="binderhub/img")
    host = ecr.registry.removeprefix("https://")
    pushed = skopeo_push(
        ecr.ca_file, tmp_path / "a", registry_login(ecr), f"{host}/binderhub/img:v1"
    )
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    iam = ecr.client("iam")
    iam.create_user(UserName="puller")
    iam.attach_user_policy(
        UserName="puller", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
    )
    key = iam.create_access_key(UserName="puller")["AccessKey"]
    login = registry_login(ecr, key["AccessKeyId"], key["SecretAccessKey"])
    pulled = registry_get(ecr, login, "/v2/binderhub/img/manifests/v1")
    assert pulled.status_code == 200
    refused = skopeo_push(ecr.ca_file, tmp_path / "b", login, f"{host}/binderhub/img:v2")
    assert refused.returncode != 0
    assert "403" in refused.stderr or "denied" in refused.stderr.lower()


def test_the_helper_retries_throttling_as_the_go_sdk_does(ecr: EcrBox) -> None:
    deploy(ecr, AWS_ROLE_ARN=irsa_role(ecr))
    hub = binderhub(ecr, "helper", "helper-token")
    ecr.cloud.offset["throttle"] = {"CreateRepository": 2}  # 3 attempts: the third one passes
    assert asyncio.run(hub.get_image_manifest("binderhub/a", "t")) is None
    assert ecr.cloud.offset["throttle"] == {"CreateRepository": 0}
    ecr.cloud.offset["throttle"] = {"CreateRepository": 3}  # all three throttled: BinderHub sees it
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as failed:
        asyncio.run(hub.get_image_manifest("binderhub/b", "t"))
    assert failed.value.code == 500
    assert b"ThrottlingException" in failed.value.response.body


def test_a_helper_without_the_cluster_s_oidc_provider_says_what_sts_says(ecr: EcrBox) -> None:
    iam = ecr.client("iam")
    trust = {  # trusts a provider the account does not have yet
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {
                    "Federated": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/"
                    + CLUSTER_ISSUER.removeprefix("https://")
                },
                "Action": "sts:AssumeRoleWithWebIdentity",
            }
        ],
    }
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    deploy(ecr, AWS_ROLE_ARN=role["Arn"])
    answer = requests.get(
        f"{ecr.url}/ecr/helpers/helper/repo/binderhub/x",
        headers={"Authorization": "Bearer helper-token"},
        verify=ecr.ca_file,
        timeout=30,
    )
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error.startswith(
        "operation error STS: AssumeRoleWithWebIdentity, https response error StatusCode: 400, "
    )
    said = "No OpenIDConnect provider found in your account for"
    assert error.endswith(f"InvalidIdentityToken: {said} {CLUSTER_ISSUER}")


# --- the node's pull: the kubelet's ecr-credential-provider, as the node role -------------------
NODE_ROLE = "binderhub-node"
READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"


def test_a_node_gets_the_kubelet_s_token_as_its_node_role_and_pulls(ecr: EcrBox) -> None:
    ecr.client("ecr").create_repository(repositoryName="binderhub/img")
    answer = node_token(ecr)
    assert answer.status_code == 200, answer.text
    response = answer.json()
    assert response["kind"] == "CredentialProviderResponse"
    assert response["cacheKeyType"] == "Registry"
    assert response["cacheDuration"] in (f"{TOKEN_HOURS * 1800}s", f"{TOKEN_HOURS * 1800 - 1}s")
    assert response["principal"].startswith(
        f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{NODE_ROLE}/i-"
    )
    (host,) = response["auth"]
    assert host == ecr.registry.removeprefix("https://")
    username, password = node_pull_credential(ecr) or ("", "")
    login = {"username": username, "password": password}
    assert username == "AWS"
    # read-only: the pull reaches the registry (no such tag yet), a push is refused
    assert registry_get(ecr, login, "/v2/binderhub/img/manifests/v1").status_code == 404
    push = requests.post(
        ecr.registry + "/v2/binderhub/img/blobs/uploads/",
        auth=(username, password),
        verify=ecr.ca_file,
        timeout=10,
    )
    assert push.status_code == 403
    assert f"assumed-role/{NODE_ROLE}/i-" in push.json()["errors"][0]["message"]


def test_a_node_role_without_ecr_s_read_only_policy_gets_no_token(ecr: EcrBox) -> None:
    ecr.client("iam").detach_role_policy(RoleName=NODE_ROLE, PolicyArn=READ_ONLY)
    answer = node_token(ecr)
    assert answer.status_code == 400
    assert answer.json()["code"] == "AccessDeniedException"
    assert answer.json()["message"].startswith(f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/")
    assert "not authorized to perform: ecr:GetAuthorizationToken" in answer.json()["message"]
    assert node_pull_credential(ecr) is None


def test_a_node_role_that_may_only_get_a_token_cannot_pull(ecr: EcrBox) -> None:
    ecr.client("ecr").create_repository(repositoryName="binderhub/img")
    iam = ecr.client("iam")
    iam.detach_role_policy(RoleName=NODE_ROLE, PolicyArn=READ_ONLY)
    only_token = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}],
    }
    iam.put_role_policy(
        RoleName=NODE_ROLE, PolicyName="token", PolicyDocument=json.dumps(only_token)
    )
    username, password = node_pull_credential(ecr) or ("", "")
    pulled = registry_get(
        ecr, {"username": username, "password": password}, "/v2/binderhub/img/manifests/v1"
    )
    assert pulled.status_code == 403
    assert pulled.json()["errors"][0]["code"] == "DENIED"
    assert "not authorized to perform: ecr:BatchGetImage" in pulled.json()["errors"][0]["message"]


def boto3_client_in(box: EcrBox, region: str) -> Any:
    """An ECR client as the admin in another region."""
    import boto3

    return boto3.client(
        "ecr",
        region_name=region,
        endpoint_url=f"{box.url}/ecr/api",
        verify=box.ca_file,
        aws_access_key_id=box.admin["access_key_id"],
        aws_secret_access_key=box.admin["secret_access_key"],
    )


def test_a_node_token_is_for_a_region_s_registry_of_a_cluster_and_node_group_that_exist(
    ecr: EcrBox,
) -> None:
    assert node_token(ecr, cluster="").status_code == 400
    missing = node_token(ecr, cluster="other")
    assert missing.status_code == 404
    assert missing.json()["message"] == "cluster: no EKS cluster 'other' in the account"
    elsewhere = boto3_client_in(ecr, "eu-west-1")
    elsewhere.create_repository(repositoryName="binderhub/img")
    username, password = node_pull_credential(ecr, region="eu-west-1") or ("", "")
    login = {"username": username, "password": password}
    assert registry_get(ecr, login, "/v2/binderhub/img/manifests/v1").status_code == 404
    assert (
        registry_get(ecr, login, "/v2/binderhub/img/manifests/v1").json()["errors"][0]["code"]
        == "MANIFEST_UNKNOWN"
    )  # the region's repository is found: only the tag is missing
    group = node_token(ecr, nodegroup="gpu")
    assert group.status_code == 404
    assert group.json()["message"].startswith("nodegroup: ")


def test_the_state_before_moto_loads_is_the_seeded_account_it_loads(ecr: EcrBox) -> None:
    loaded = ecr.state()
    ecr.cloud.aws._loaded = False  # as in a sandbox process that made no AWS call yet
    try:
        unloaded = ecr.state()
    finally:
        ecr.cloud.aws._loaded = True
    assert unloaded == loaded
    assert "binderhub-node" in loaded["roles"]
