"""Amazon ECR: BinderHub's ``ExternalRegistryHelper`` and the registry helper it calls.

ECR does not fit BinderHub's static ``registry.*`` values: a push needs its repository made
first, and ECR's registry passwords (``GetAuthorizationToken``) last 12 hours. BinderHub's
answer (jupyterhub/binderhub PR #1637, with repo2docker PR #1245) is
``binderhub.registry.ExternalRegistryHelper``: it asks a helper service whether an image exists
(``GET /repo/<name>``, ``POST /repo/<name>`` to create its repository, ``GET /image/<name>:<tag>``)
and, before each build, for push credentials (``POST /token/<name>:<tag>``), which it hands to
the build instead of the chart's docker config. The reference helper is
github.com/manics/binderhub-container-registry-helper (``amazon/amazon.go``); mybinder.org's
curvenote member runs it on EKS (jupyterhub/mybinder.org-deploy ``config/curvenote.yaml``).

This module makes what the helper needs, with least privilege, and the values of both:

- an IAM policy: the helper's ECR calls on the routes BinderHub uses (amazon.go:
  DescribeRepositories, CreateRepository, PutLifecyclePolicy, DescribeImages; not its DELETE
  route's DeleteRepository and DeleteLifecyclePolicy, which BinderHub never calls) and the pushes
  and pulls of the build pods it hands tokens to, on ``repository/<repository_prefix>/*`` only,
  and ``ecr:GetAuthorizationToken`` (whose resource can only be ``*``);
- the helper's identity: a role that trusts the EKS cluster's OIDC provider for the helper's
  service account only (IRSA, ``helper_identity = "role"``), or an IAM user with an access key
  for clusters outside EKS (``"user"``), its key rotated as the other notebooks rotate theirs;
- the lifecycle: the helper puts a policy expiring images ``retention_days`` after their push
  (ECR's lifecycle rules count from the push: ``sinceImagePushed``; 0: no policy) on each
  repository it creates (amazon.go ``setRepositoryPolicy``, its
  ``AWS_ECR_EXPIRES_AFTER_PUSH_DAYS``);
- BinderHub's auth token for the helper (``config.ExternalRegistryHelper.auth_token``), the
  helper's own Helm values beside BinderHub's, and ``image_prefix``
  ``<account>.dkr.ecr.<region>.amazonaws.com/<repository_prefix>/<prefix>``;
- user pods' pull: the nodes' IAM role (``pull_access = "node"``), or, for clusters outside EKS
  (``"secret"``), a pull-only IAM user ``<helper_name>-puller`` whose key a CronJob uses every
  6 hours to refresh a ``kubernetes.io/dockerconfigjson`` Secret (ECR's passwords last 12 hours)
  that user pods reference by name (``pull-secret-cronjob.yaml``, 0600).

Every IAM resource it makes carries the tag ``binderhub-registry-deployment=<deployment id>``:
IAM keeps tags, so "ours" is what the service says, not only what the record says.
Credentials come from boto3's default chain for real (never parameters); in the sandbox from
the sandbox's seeded administrator only, with the instance metadata probe off.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlparse

import requests

from .. import sandbox as sandbox_mod
from ..binderhub import (
    HELPER_CLASS,
    HelperValues,
    PullSecret,
    RegistryValues,
    ValuesFiles,
    helm_commands,
    split_image_reference,
)
from ..errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    InvalidParameter,
    MissingCredentials,
    PermissionDenied,
    TransientCloudError,
    VerificationFailed,
    error_for_status,
    map_exceptions,
    requests_errors,
    retry_after,
)
from ..params import Parameter, choice, text
from ..registry_http import secret_forms
from ..report import VerificationReport
from ..secrets import Secret, redact, write_private_file
from ..steps import Result
from ..usage import Usage, retention_text
from ..verify import CHECK_IMAGE, VerifyHints
from .contract import (
    COMMON_PARAMETERS,
    CommonParams,
    Connection,
    Deletion,
    GuideEntry,
    RealExample,
    Record,
    creates,
    if_present,
    validator,
)

__all__ = [
    "GUIDE",
    "HELPER_CLASS",
    "HINTS",
    "KEY",
    "MARK_TAG",
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "PULL_FILE",
    "PULL_SCHEDULE",
    "PULL_SCRIPT",
    "PULL_SECRET",
    "REAL_EXAMPLE",
    "EcrConnection",
    "EcrValues",
    "HelperValues",
    "IamUser",
    "Params",
    "connect",
    "ecr_regions",
    "ensure_helper",
    "ensure_identity",
    "ensure_policy",
    "ensure_pull_credential",
    "helper_policy",
    "lifecycle_policy",
    "lifecycle_text",
    "pull_manifest",
    "puller_policy",
    "sign_in",
    "trust_policy",
    "validate",
]

KEY = "ecr"
NAME = "Amazon ECR"
NOTEBOOK = "06-amazon-ecr"
#: The helper's chart, and its release name: the chart's fullname is then the release name
#: (helm-chart/templates/_helpers.tpl), so the Service is ``binderhub-container-registry-helper``,
#: BinderHub's default ``service_url`` host.
HELPER_CHART = "binderhub-container-registry-helper"
HELPER_PORT = 8080  # helm-chart/values.yaml ``service.port``
#: What a rotation records as retiring for BinderHub's replaced auth token (never the token).
OLD_TOKEN = "helper-auth-token"
#: The tag every IAM resource this notebook makes carries, valued with the deployment id.
MARK_TAG = "binderhub-registry-deployment"
#: The environment variables sign-in reads for real (boto3's chain reads more: profiles, SSO)
SECRET_ENVIRONMENT = (
    ("AWS_PROFILE", "a profile of ~/.aws/config (aws configure sso), or"),
    ("AWS_ACCESS_KEY_ID", "an access key, with AWS_SECRET_ACCESS_KEY"),
)
#: How to get credentials, in the one line a missing one prints.
GET_CREDENTIALS = (
    "run `aws configure sso` (then `aws sso login`) and set AWS_PROFILE to that profile, or set "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (never as parameters)"
)
#: Where a sandbox run's AWS calls go, by service (``/ecr/<path>`` on the sandbox's URL).
SANDBOX_PATHS = {"ecr": "api", "iam": "iam", "sts": "sts", "eks": "eks"}
#: The audience EKS's pod identity webhook projects into service-account tokens for IRSA.
IRSA_AUDIENCE = "sts.amazonaws.com"
#: The role annotation EKS's pod identity webhook reads on a service account.
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
#: Managed policy EKS managed node groups' node role gets (EKS user guide, "Amazon EKS node
#: IAM role"): ECR pulls for the kubelet.
NODE_PULL_POLICY = "AmazonEC2ContainerRegistryReadOnly"
#: ``pull_access = "secret"``: the pull-only IAM user is ``<helper_name>`` with this suffix, and
#: its inline policy's name (inline: it lives and goes with the user, IAM guide "Managed policies
#: and inline policies": a strict one-to-one relationship between a policy and an identity).
PULLER_SUFFIX = "-puller"
PULLER_POLICY = "binderhub-ecr-pull"
#: IAM user names hold at most 64 characters (IAM API, ``CreateUser`` ``UserName``).
IAM_USER_NAME_MAX = 64


@cache
def ecr_regions() -> tuple[str, ...]:
    """The commercial AWS regions where ECR runs, from botocore's endpoint data
    (``botocore/data/endpoints.json``, the partition ``aws``): the SDK's own list, no call."""
    import botocore.session

    session = botocore.session.get_session()
    return tuple(session.get_available_regions("ecr", partition_name="aws"))


def _region(name: str) -> Parameter:
    def check(value: Any) -> bool:
        return isinstance(value, str) and value in ecr_regions()

    rule = (
        "must be a commercial AWS region where ECR runs, e.g. us-east-2 (botocore's endpoint "
        "list; China and GovCloud have other hosts and ARNs)"
    )
    return Parameter(name, rule, "choice", check, ecr_regions())


#: An ECR repository name (botocore's ECR model, shape ``RepositoryName``), without '_': BinderHub
#: turns '_' into '-' in image names (binderhub/builder.py), so it would push elsewhere.
REPOSITORY_PREFIX = r"[a-z0-9]+(?:[.-][a-z0-9]+)*(?:/[a-z0-9]+(?:[.-][a-z0-9]+)*)*"
#: A Kubernetes DNS label (namespace; the helper's service account name, which also names
#: its IAM role, user and policy: IAM's ``[\w+=,.@-]+``, up to 64, holds it).
DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"

PARAMETERS = (
    _region("aws_region"),
    text(
        "account_id",
        r"[0-9]{12}",
        "must be your AWS account id: 12 digits (`aws sts get-caller-identity` shows it)",
        max_length=12,
    ),
    text(
        "repository_prefix",
        REPOSITORY_PREFIX,
        "must be an ECR repository namespace: lowercase letters and digits, with single '.' or "
        "'-' between them and '/' between parts, at most 200 characters (no '_': BinderHub turns "
        "'_' into '-' in image names)",
        max_length=200,
    ),
    text(
        "cluster_name",
        r"[0-9A-Za-z][A-Za-z0-9_-]*",
        "must be an EKS cluster name: a letter or digit, then letters, digits, '-' and '_', "
        "at most 100 characters",
        max_length=100,
    ),
    text(
        "helper_namespace",
        DNS_LABEL,
        "must be a Kubernetes namespace: lowercase letters, digits and '-', starting and ending "
        "with a letter or digit, at most 63 characters",
        max_length=63,
    ),
    text(
        "helper_name",
        DNS_LABEL,
        "must be a Kubernetes service account name that is also an IAM name: lowercase letters, "
        "digits and '-', starting and ending with a letter or digit, at most 63 characters",
        max_length=63,
    ),
    choice("helper_identity", ("role", "user")),
    *COMMON_PARAMETERS,
)


@dataclass(frozen=True)
class Params(CommonParams):
    """Validated parameters of the ECR notebook."""

    PULL_NODE: ClassVar[str] = (
        f"the nodes' IAM role pulls: EKS managed node groups have {NODE_PULL_POLICY} on it"
    )
    REPLACED_STOPS: ClassVar[str] = (
        "the registry helper takes one auth token (BINDERHUB_AUTH_TOKEN), so BinderHub's old one "
        "stops when the helper restarts with the new one"
    )

    aws_region: str
    account_id: str
    repository_prefix: str
    cluster_name: str
    helper_namespace: str
    helper_name: str
    helper_identity: str

    @property
    def host(self) -> str:
        """ECR's registry host for real: ``<account>.dkr.ecr.<region>.amazonaws.com``."""
        return f"{self.account_id}.dkr.ecr.{self.aws_region}.amazonaws.com"

    @property
    def service_account(self) -> str:
        """``system:serviceaccount:<namespace>:<name>``: the token subject IRSA trusts."""
        return f"system:serviceaccount:{self.helper_namespace}:{self.helper_name}"

    @property
    def puller_name(self) -> str:
        """The pull-only IAM user of ``pull_access = "secret"``: ``<helper_name>-puller``."""
        return self.helper_name + PULLER_SUFFIX


def puller_name_fits(p: Params) -> None:
    """With ``pull_access = "secret"`` the pull-only user ``<helper_name>-puller`` must be a
    valid IAM user name (64 characters at most), checked before any call."""
    longest = IAM_USER_NAME_MAX - len(PULLER_SUFFIX)
    if p.pull_access == "secret" and len(p.helper_name) > longest:
        raise InvalidParameter(
            "helper_name",
            f'must be at most {longest} characters with pull_access = "secret": the pull-only '
            f"IAM user is <helper_name>{PULLER_SUFFIX}, and IAM user names hold at most "
            f"{IAM_USER_NAME_MAX}",
            p.helper_name,
        )


validate = validator(Params, PARAMETERS, puller_name_fits)


# --- policies --------------------------------------------------------------------------------
#: The helper's ECR calls on the routes BinderHub calls (manics/binderhub-container-registry-
#: helper at d424275, amazon/amazon.go): ``GET /repo/`` DescribeRepositories, ``POST /repo/``
#: CreateRepository then ``setRepositoryPolicy``'s PutLifecyclePolicy (with expiry 0 it returns
#: before any call), ``GET /image/`` DescribeImages. Not DeleteRepository nor
#: DeleteLifecyclePolicy: only its ``DELETE /repo/`` route calls them (``DeleteRepository`` and
#: ``deleteRepositoryPolicy``; common/registry.go ``ServeHTTP``), and BinderHub's
#: ExternalRegistryHelper never sends a DELETE (binderhub/registry.py at b9fad99). Then the
#: registry actions of a push and a pull with the token it hands out (ECR user guide, "Pushing an
#: image": the IAM permissions a push needs; "Private repository policies": those a pull needs).
HELPER_ACTIONS = (
    "ecr:DescribeRepositories",
    "ecr:CreateRepository",
    "ecr:PutLifecyclePolicy",
    "ecr:DescribeImages",
)
PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)
PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")


def helper_policy(region: str, account: str, repository_prefix: str) -> dict[str, Any]:
    """The helper's least privilege: its calls, pushes and pulls on the prefix's repositories,
    and an authorization token (``ecr:GetAuthorizationToken`` takes no resource but ``*``)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "BinderHubRepositories",
                "Effect": "Allow",
                "Action": list(HELPER_ACTIONS + PUSH_ACTIONS + PULL_ACTIONS),
                "Resource": f"arn:aws:ecr:{region}:{account}:repository/{repository_prefix}/*",
            },
            {
                "Sid": "RegistryToken",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
        ],
    }


def puller_policy(region: str, account: str, repository_prefix: str) -> dict[str, Any]:
    """User pods' pull-only identity: ``ecr:GetAuthorizationToken`` (only ``*``), and the two
    pull actions on the prefix's repositories. AWS's ``AmazonEC2ContainerRegistryPullOnly``
    (2024) has the same three on ``*`` plus ``ecr:BatchImportUpstreamImage``, which only a
    pull-through cache uses; the helper's repositories are none."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PullBinderHubImages",
                "Effect": "Allow",
                "Action": list(PULL_ACTIONS),
                "Resource": f"arn:aws:ecr:{region}:{account}:repository/{repository_prefix}/*",
            },
            {
                "Sid": "RegistryToken",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
        ],
    }


def trust_policy(provider_arn: str, issuer: str, service_account: str) -> dict[str, Any]:
    """IRSA's trust: the cluster's OIDC provider, for the helper's service account only (EKS user
    guide, "Assign IAM roles to Kubernetes service accounts": ``:sub`` and ``:aud`` conditions)."""
    host_path = issuer.removeprefix("https://")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{host_path}:sub": service_account,
                        f"{host_path}:aud": IRSA_AUDIENCE,
                    }
                },
            }
        ],
    }


# --- AWS errors -----------------------------------------------------------------------------
#: Error codes of throttling: botocore's (``retries/standard.py`` ``_THROTTLED_ERROR_CODES``)
#: that IAM, STS, ECR and EKS send, without ``LimitExceededException``: ECR's quota, no fault.
THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
#: Codes meaning "absent", whatever status the service sends them with (ECR sends 400).
NOT_FOUND = frozenset(
    {
        "NoSuchEntity",
        "RepositoryNotFoundException",
        "ResourceNotFoundException",
        "LifecyclePolicyNotFoundException",
    }
)
ALREADY = frozenset({"EntityAlreadyExists", "RepositoryAlreadyExistsException"})
REFUSED_KEY = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
    }
)


def aws_error(exc: Any) -> BinderHubRegistryError:
    """Ours for botocore's ``ClientError``: by AWS's error code first, then the HTTP status."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or code
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
    operation = getattr(exc, "operation_name", "")
    text = f"{code}: {message} ({operation})" if operation else f"{code}: {message}"
    if code in THROTTLED:
        return TransientCloudError(f"{NAME} answered {status}: {text}", 429)
    if code in NOT_FOUND:
        return CloudError(f"{NAME} answered {status}: {text}", 404)
    if code in ALREADY:
        return CloudError(f"{NAME} answered {status}: {text}", 409)
    if code in REFUSED_KEY:
        return AuthenticationFailed(f"AWS refused the credentials ({text}): {GET_CREDENTIALS}")
    if code.startswith("AccessDenied") or code == "UnauthorizedOperation":
        return PermissionDenied(f"{NAME} answered {status}: {text}")
    return error_for_status(NAME, status, text)


def aws_errors() -> dict[type[Exception], Callable[[Any], BinderHubRegistryError]]:
    """The :func:`map_exceptions` table for botocore: AWS's answers, missing credentials, and
    transport faults (transient, except a certificate: retrying cannot fix one)."""
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    def missing(exc: Exception) -> BinderHubRegistryError:
        return MissingCredentials("no AWS credentials found", GET_CREDENTIALS)

    def tls(exc: Exception) -> BinderHubRegistryError:
        return CloudError(f"TLS verification of {NAME} failed: check the CA and the clock")

    def unreachable(exc: Exception) -> BinderHubRegistryError:
        return TransientCloudError(f"cannot reach {NAME} ({type(exc).__name__})")

    def unreadable(exc: Exception) -> BinderHubRegistryError:
        # an answer botocore cannot parse (a proxy's or load balancer's page on a 5xx)
        return TransientCloudError(f"{NAME} answered what botocore cannot read; retrying")

    def profile(exc: Exception) -> BinderHubRegistryError:
        return MissingCredentials(f"AWS: {exc}", GET_CREDENTIALS)

    return {
        bx.ClientError: aws_error,
        bx.NoCredentialsError: missing,
        bx.PartialCredentialsError: missing,
        bx.ProfileNotFound: profile,
        bx.TokenRetrievalError: profile,
        bx.SSOTokenLoadError: profile,
        bx.SSLError: tls,
        bx.EndpointConnectionError: unreachable,
        bx.ConnectionClosedError: unreachable,
        bx.ReadTimeoutError: unreachable,
        bx.ConnectTimeoutError: unreachable,
        ResponseParserError: unreadable,
    }


@contextmanager
def _aws() -> Iterator[None]:
    with map_exceptions(aws_errors()):
        yield


# --- the helper's values ----------------------------------------------------------------------
#: The helper chart's repository and version (the helper's README; helm-chart/Chart.yaml 0.2.4,
#: the version mybinder.org-deploy PR #2814 runs).
HELPER_REPOSITORY = "https://www.manicstreetpreacher.co.uk/binderhub-container-registry-helper/"
HELPER_VERSION = "0.2.4"
#: The helper's lifecycle setting: images expire this many days after their push (amazon.go).
EXPIRES_ENV = "AWS_ECR_EXPIRES_AFTER_PUSH_DAYS"


def lifecycle_policy(days: int) -> dict[str, Any] | None:
    """The lifecycle policy the helper puts on each repository it creates with ``days`` as its
    ``AWS_ECR_EXPIRES_AFTER_PUSH_DAYS`` (amazon.go ``lifecyclePolicy(1000, "sinceImagePushed",
    days)``): any image expires ``days`` after its push. 0: none (``setRepositoryPolicy`` returns
    before any call)."""
    if not days:
        return None
    rule = {
        "rulePriority": 1000,
        "description": f"Delete images sinceImagePushed {days} days",
        "selection": {
            "tagStatus": "any",
            "countType": "sinceImagePushed",
            "countNumber": days,
            "countUnit": "days",
        },
        "action": {"type": "expire"},
    }
    return {"rules": [rule]}


def lifecycle_text(days: int) -> str:
    """The helper's lifecycle in words, as a dry run states what it would set."""
    if not days:
        return (
            f"retention_days = 0: no {EXPIRES_ENV}, so the helper puts no lifecycle policy on "
            "the repositories it creates and ECR keeps everything"
        )
    return (
        f"{EXPIRES_ENV}={days}: the helper puts a lifecycle policy on each repository it "
        f"creates, expiring any image {days} day{'s' if days != 1 else ''} after its push "
        f"(sinceImagePushed, countNumber {days})"
    )


def helper_values(p: Params, token: Secret, role_arn: str, key: tuple[str, Secret] | None) -> str:
    """The helper chart's values (helm-chart/values.yaml): the Amazon command, BinderHub's token
    (the chart's Secret holds it), the service account IRSA annotates (role) or the user's key,
    the region, and the lifecycle the helper puts on each repository it makes."""
    import yaml

    env = [{"name": "AWS_REGION", "value": p.aws_region}]
    if p.retention_days:  # 0: the helper puts no lifecycle policy (amazon.go setRepositoryPolicy)
        env.append({"name": EXPIRES_ENV, "value": str(p.retention_days)})
    account: dict[str, Any] = {"create": True, "name": p.helper_name}
    if key is not None:
        env.append({"name": "AWS_ACCESS_KEY_ID", "value": key[0]})
        env.append({"name": "AWS_SECRET_ACCESS_KEY", "value": key[1].reveal()})
    else:
        account["annotations"] = {ROLE_ANNOTATION: role_arn}
    values = {
        "cloud_provider": "amazon",
        "auth_token": token.reveal(),
        "serviceAccount": account,
        "extraEnv": env,
    }
    return yaml.safe_dump(values, sort_keys=False)


def helper_commands(p: Params, path: Path) -> str:
    """Install (or upgrade) the helper's chart with its values file, in ``helper_namespace``."""
    return (
        f"helm repo add {HELPER_CHART} {HELPER_REPOSITORY}\n"
        f"helm upgrade --install {HELPER_CHART} {HELPER_CHART}/{HELPER_CHART} \\\n"
        f"  --version={HELPER_VERSION} --namespace={p.helper_namespace} --create-namespace \\\n"
        f"  -f {path}\n"
    )


# --- user pods' pull secret outside EKS (pull_access = "secret") ----------------------------
#: The Secret user pods pull with, which the CronJob keeps fresh: not Zero to JupyterHub's
#: ``imagePullSecret``, whose Secret Helm renders from secret.yaml and would put back, with a
#: password older than 12 hours, at every ``helm upgrade`` (Helm 3 patches live objects to the
#: chart's: "Improved Upgrade Strategy: 3-way Strategic Merge Patches"). Z2JH adds the names in
#: ``singleuser.image.pullSecrets`` to ``KubeSpawner.image_pull_secrets``
#: (``jupyterhub_config.py``: "Combine imagePullSecret.create (single), imagePullSecrets (list),
#: and singleuser.image.pullSecrets (list)").
PULL_SECRET = "binderhub-ecr-pull"
#: The Secret holding the pull-only user's access key, which the CronJob's pod reads.
PULL_KEY_SECRET = "binderhub-ecr-pull-key"
PULL_FILE = "pull-secret-cronjob.yaml"
#: Every 6 hours: a password lasts 12 (ECR API, GetAuthorizationToken), so one failed run
#: still leaves a valid one.
PULL_SCHEDULE = "0 */6 * * *"
#: The CronJob's two images, pinned: AWS's own CLI image (ECR Public) and Kubernetes' kubectl
#: image, which is distroless: no shell (``exec: "/bin/sh": stat /bin/sh: no such file``,
#: zebernst/homelab#1094, devantler-tech/platform#2384), so the pod splits the usual one-liner
#: in two containers.
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.26"
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.32.0"
#: The usual refresh, as guides give it in a CronJob every 6 hours (oneuptime.com "ECR token
#: refresh" for Flux; kamranonline.uk "Automating AWS ECR Credential Refresh"): kubectl has no
#: stdin flag for the password, only ``--docker-password`` or ``--from-file=.dockerconfigjson=``
#: (kubectl reference, "kubectl create secret docker-registry"). By hand it is this, which the
#: CronJob's two containers do.
REFRESH_COMMAND = (
    "kubectl create secret docker-registry {name} -n {namespace} --docker-server={host} "
    '--docker-username=AWS --docker-password="$(aws ecr get-login-password --region {region})" '
    "--dry-run=client -o yaml | kubectl apply -f -"
)
#: The init container's script: the Secret ``kubectl create secret docker-registry
#: --dry-run=client -o yaml`` prints (``.dockerconfigjson`` with username, password and
#: ``auth``), written to a memory volume for the kubectl container to apply.
PULL_SCRIPT = r"""set -eu
umask 077
password=$(aws ecr get-login-password --region "$AWS_REGION")
auth=$(printf 'AWS:%s' "$password" | base64 | tr -d '\n')
config=$(printf '{"auths":{"%s":{"username":"AWS","password":"%s","auth":"%s"}}}' \
  "$REGISTRY" "$password" "$auth" | base64 | tr -d '\n')
printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' \
  "$SECRET_NAME" "$NAMESPACE" > "$WORK/secret.yaml"
printf 'type: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: %s\n' \
  "$config" >> "$WORK/secret.yaml"
"""


def pull_manifest(p: Params, host: str, key: tuple[str, Secret]) -> str:
    """``pull-secret-cronjob.yaml``: the pull-only user's key in a Secret, and a CronJob that
    every 6 hours mints a registry password as that user (``aws ecr get-login-password``) and
    applies it as the ``kubernetes.io/dockerconfigjson`` Secret user pods pull with; its service
    account may read and patch that one Secret, and create Secrets (RBAC cannot limit ``create``
    to a name: Kubernetes' RBAC docs, "Referring to resources"). No registry password is in it."""
    import yaml

    ns = p.helper_namespace
    meta = {"name": PULL_SECRET, "namespace": ns}
    volume = {"name": "work", "mountPath": "/run/ecr"}
    env = {"AWS_REGION": p.aws_region, "REGISTRY": host, "SECRET_NAME": PULL_SECRET}
    env |= {"WORK": volume["mountPath"]}
    login = {
        "name": "login",
        "image": AWS_CLI_IMAGE,
        "command": ["/bin/sh", "-c", PULL_SCRIPT],
        "env": [{"name": k, "value": v} for k, v in env.items()]
        + [{"name": "NAMESPACE", "value": ns}],
        "envFrom": [{"secretRef": {"name": PULL_KEY_SECRET}}],
        "volumeMounts": [volume],
    }
    apply = {
        "name": "apply",
        "image": KUBECTL_IMAGE,
        "command": ["/bin/kubectl", "apply", "-f", "/run/ecr/secret.yaml"],
        "volumeMounts": [volume],
    }
    pod = {
        "serviceAccountName": PULL_SECRET,
        "restartPolicy": "OnFailure",
        "volumes": [{"name": "work", "emptyDir": {"medium": "Memory"}}],  # never on disk
        "initContainers": [login],
        "containers": [apply],
    }
    secrets_rule = {"apiGroups": [""], "resources": ["secrets"]}
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": PULL_KEY_SECRET, "namespace": ns},
            "type": "Opaque",
            "stringData": {"AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1].reveal()},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                secrets_rule | {"resourceNames": [PULL_SECRET], "verbs": ["get", "patch"]},
                secrets_rule | {"verbs": ["create"]},  # the first run's; no name possible
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": PULL_SECRET,
            },
            "subjects": [{"kind": "ServiceAccount", "name": PULL_SECRET, "namespace": ns}],
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta,
            "spec": {
                "schedule": PULL_SCHEDULE,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"backoffLimit": 3, "template": {"spec": pod}}},
            },
        },
    ]
    header = (
        f"# User pods' ECR pull secret, written by binderhub-registry ({NOTEBOOK}). Mode 0600:\n"
        f"# it holds the pull-only IAM user {p.puller_name}'s access key, never a password.\n"
        + "".join(f"# {line}\n" for line in pull_commands(p, Path(PULL_FILE)).splitlines())
    )
    return header + yaml.safe_dump_all(documents, sort_keys=False)


def pull_commands(p: Params, path: Path) -> str:
    """Apply the manifest in BinderHub's namespace, then run its job once now (the Secret must
    exist before the first user pod)."""
    ns = p.helper_namespace
    return (
        f"kubectl apply -f {path}   # in {ns}: BinderHub's user pods must run there\n"
        f"kubectl create job -n {ns} --from=cronjob/{PULL_SECRET} {PULL_SECRET}-first\n"
    )


def _stored_pull_key(out: Path) -> tuple[str, Secret] | None:
    """The pull-only user's key as ``pull-secret-cronjob.yaml``'s Secret holds it."""
    import yaml

    try:
        text = (out / PULL_FILE).read_text()
        documents = list(yaml.safe_load_all(text))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # absent or broken: a new key is made (never echo its content)
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "Secret":
            data = doc.get("stringData") or {}
            key_id, secret = data.get("AWS_ACCESS_KEY_ID"), data.get("AWS_SECRET_ACCESS_KEY")
            if isinstance(key_id, str) and isinstance(secret, str) and key_id and secret:
                return key_id, Secret(secret)
    return None


@dataclass(frozen=True)
class EcrValues(HelperValues):
    """The helper's values; with a pull secret the CronJob keeps fresh, ``config.yaml`` names it
    in ``jupyterhub.singleuser.image.pullSecrets`` and ``secret.yaml`` holds no pull password
    (``pull`` is the token verification pulls with, minted as the same pull-only user)."""

    pull_secret_name: str = ""

    def config(self) -> dict[str, Any]:
        """``config.yaml``, with the pull secret's name when user pods pull with one."""
        config = super().config()
        if self.pull_secret_name:
            image = {"image": {"pullSecrets": [self.pull_secret_name]}}
            config["jupyterhub"] = {"singleuser": image}
        return config

    def secret(self, *, reveal: bool = False) -> dict[str, Any]:
        """``secret.yaml``: no ``jupyterhub.imagePullSecret`` (its Secret would be Helm's)."""
        values = super().secret(reveal=reveal)
        if self.pull_secret_name:
            values.pop("jupyterhub", None)
        return values


@dataclass(frozen=True, repr=False)  # ValuesFiles' redacted display
class EcrFiles(ValuesFiles):
    """BinderHub's values files and the helper's, with the commands that apply both."""

    helper_path: Path = Path()
    params: Params | None = None
    pull_path: Path | None = None  # the pull secret's CronJob (pull_access "secret")

    def _text(self) -> str:
        text = super()._text() + f"\n# {self.helper_path} (mode 0600): the registry helper's values"
        if self.pull_path is not None:
            text += (
                f"\n# {self.pull_path} (mode 0600): the pull-only user's key and the CronJob "
                f"refreshing Secret {PULL_SECRET} every 6 hours"
            )
        return text

    def next_step(self) -> str:
        """The helper's chart first (BinderHub calls it), then BinderHub's, then ``verify``
        through a port-forward (the helper answers inside the cluster only), then a build."""
        assert self.params is not None
        namespace = self.params.helper_namespace
        pull = pull_commands(self.params, self.pull_path) if self.pull_path else ""
        return (
            helper_commands(self.params, self.helper_path)
            + pull
            + helm_commands(self.config_path, self.secret_path)
            + "# check them: the helper answers inside the cluster, so forward its port first\n"
            + f"kubectl port-forward -n {namespace} svc/{HELPER_CHART} {HELPER_PORT} &\n"
            + f"binderhub-registry verify {self.config_path} {self.secret_path} "
            + f"--helper-url http://127.0.0.1:{HELPER_PORT}\n"
            + "# then launch a repository: its build pod's log ends with the push\n"
        )


# --- the connection --------------------------------------------------------------------------
HINTS = VerifyHints(
    credentials=(
        "the helper's token expired (ECR tokens last 12 hours: the helper hands a fresh one per "
        "build) or its identity lost the policy: rerun this notebook"
    ),
    push=(
        "the helper's identity needs the push actions on repository/<repository_prefix>/* (the "
        "policy this notebook makes), and the repository must exist (the helper makes it)"
    ),
    pull="the identity needs ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on the repository",
)


@dataclass
class EcrConnection(Connection):
    """A signed-in AWS session (IAM, STS, ECR, EKS clients) and what the steps found or made.

    Record kinds: ``iam_policy`` ({name, arn}), ``oidc_provider`` ({arn}, only when this
    notebook made it), ``iam_role`` / ``iam_user`` ({name, arn}), ``access_key`` ({id}, the
    user's), ``puller_user`` / ``puller_key`` (the pull-only user and its key), ``helper``
    ({release}: the sandbox's stand-in of the helper's Helm release), the files holding secrets
    (``helper_values``, ``pull_manifest``), and ``retiring`` (access keys a rotation replaced:
    the helper user's by id, the pull-only user's as ``<user>:<id>``).
    """

    NOTEBOOK: ClassVar[str] = NOTEBOOK
    HINTS: ClassVar[VerifyHints] = HINTS

    params: Params
    clients: dict[str, Any]
    identity: dict[str, str]  # sts:GetCallerIdentity's Account, Arn, UserId
    sandbox_url: str = ""  # the sandbox's URL (its helper stand-in lives there)
    registry: str = ""  # the registry's URL: https://<account>.dkr.ecr.<region>.amazonaws.com
    policy_arn: str = ""
    role_arn: str = ""
    issuer: str = ""  # the EKS cluster's OIDC issuer URL
    access_key: tuple[str, Secret] | None = None  # the helper user's key (helper_identity "user")
    puller_key: tuple[str, Secret] | None = None  # the pull-only user's (pull_access "secret")
    #: Keys made in this run, by user: a retried step reuses its key rather than making another
    made_keys: dict[str, tuple[str, Secret, str]] = field(default_factory=dict)
    #: Teardown: why the recorded OIDC provider stays ("" when it goes), read before the plan
    oidc_kept: str = field(default="", init=False, repr=False)
    auth_token: Secret | None = None  # BinderHub's token for the helper
    service_url: str = ""  # where BinderHub reaches the helper

    def call(self, service: str, operation: str, **kwargs: Any) -> Any:
        """``<service>.<operation>(**kwargs)`` with AWS's errors mapped to ours."""
        with _aws():
            return getattr(self.clients[service], operation)(**kwargs)

    @property
    def tags(self) -> list[dict[str, str]]:
        """The mark every IAM resource this deployment makes carries."""
        return [{"Key": MARK_TAG, "Value": self.record.deployment}]

    def ours(self, tags: list[dict[str, str]] | None) -> bool:
        """Whether IAM's tags say a resource is this deployment's."""
        return any(
            t.get("Key") == MARK_TAG and t.get("Value") == self.record.deployment
            for t in tags or []
        )

    def values(self) -> RegistryValues | None:
        """BinderHub's values once the helper's identity and token are known."""
        if self.auth_token is None or not self.service_url:
            return None
        p = self.params
        host = urlparse(self.registry).netloc
        return EcrValues(
            image_prefix=f"{host}/{p.repository_prefix}/{p.prefix}",
            username="",
            password=Secret(""),
            registry_url=f"https://{host}",
            service_url=self.service_url,
            auth_token=self.auth_token,
            pull_secret_name=PULL_SECRET if p.pull_access == "secret" else "",
        )

    # Overrides Connection.write_values: the helper's own Helm values (BinderHub's token, and the
    # role annotation or the user's key) are written beside BinderHub's, 0600.
    def write_values(self) -> Result[ValuesFiles | None]:
        """``config.yaml`` and ``secret.yaml``, then ``registry-helper.yaml`` (0600)."""
        written = super().write_values()
        files = written.value
        if files is None or self.auth_token is None:
            return written
        path = self.params.output_dir / HELPER_FILE
        text = helper_values(self.params, self.auth_token, self.role_arn, self.access_key)
        header = (
            f"# The registry helper's Helm values, written by binderhub-registry ({NOTEBOOK}).\n"
        )
        write_private_file(
            path,
            header
            + "# "
            + helper_commands(self.params, path).replace("\n", "\n# ").rstrip("# ")
            + text,
        )
        self.note("helper_values", HELPER_FILE)  # teardown removes it: it holds secrets
        detail = f"{written.detail}; {path} (0600): the helper's values"
        if self.params.pull_access == "secret":  # the CronJob's Secret, not imagePullSecret's
            detail = detail.replace(
                "jupyterhub.imagePullSecret",
                f"Secret {PULL_SECRET} (jupyterhub.singleuser.image.pullSecrets)",
            )
        pull_path = None
        if self.params.pull_access == "secret":
            assert self.puller_key is not None  # ensure_pull_credential made or found it
            pull_path = self.params.output_dir / PULL_FILE
            host = urlparse(self.registry).netloc
            write_private_file(pull_path, pull_manifest(self.params, host, self.puller_key))
            self.note("pull_manifest", PULL_FILE)  # teardown removes it: it holds the key
            detail += f"; {pull_path} (0600): the CronJob refreshing Secret {PULL_SECRET}"
        both = EcrFiles(
            files.config_path, files.secret_path, files.values, path, self.params, pull_path
        )
        return Result(both, written.status, detail)

    # Overrides Connection.verify: BinderHub's ExternalRegistryHelper asks the helper, not the
    # registry, and build pods push with the helper's short-lived token, not with registry.*.
    def verify(self, files: ValuesFiles | None) -> Result[VerificationReport | None]:
        """BinderHub's calls to the helper around the shared checks: the image check (which
        makes the repository), the push token, then the shared push and pull with that token,
        then the image check again."""
        if files is None:
            return Result(None, "skipped", "no values were written")
        values = files.values
        if not isinstance(values, HelperValues):
            raise TypeError("ECR's values are HelperValues (a bug)")
        if not self.params.sandbox:
            return Result(
                None,
                "skipped",
                "the helper answers inside the cluster only: install both charts (next step), "
                "then launch a repository and watch its build pod's log end with the push",
            )
        report = verify_with_helper(values, self.ca_file, self.HINTS)
        summary = ", ".join(f"{who} {status}" for who, status in report.consumers().items())
        return Result(report, "done", f"{report.image}: {summary}")

    def storage_used(self) -> Usage | None:
        """DescribeImages' ``imageSizeInBytes`` summed over the repositories under
        ``<repository_prefix>/<prefix>``; no limit: ECR bills storage per GB-month as it grows."""
        scope = f"{self.params.repository_prefix}/{self.params.prefix}"
        total = 0
        for repository in self._pages("describe_repositories", "repositories", {}):
            name = repository["repositoryName"]
            if not name.startswith(scope):
                continue
            for image in self._pages("describe_images", "imageDetails", {"repositoryName": name}):
                total += int(image.get("imageSizeInBytes") or 0)
        return Usage(total, None, f"ECR repositories {scope}* (billed per GB-month)")

    def _pages(self, operation: str, key: str, kwargs: dict[str, Any]) -> Iterator[Any]:
        """Every item of a paginated ECR answer (``nextToken``)."""
        token: str | None = None
        while True:
            page = self.call("ecr", operation, **kwargs, **({"nextToken": token} if token else {}))
            yield from page.get(key, [])
            token = page.get("nextToken")
            if not token:
                return

    # Overrides Connection.teardown: the repositories the helper made hold BinderHub's images,
    # not this notebook's to delete, and stay; the result says so, and how to remove one.
    async def teardown(self) -> Result[None]:
        """Delete as the core does (:meth:`check_ours` first), then say that the repositories
        under ``<repository_prefix>/`` stay, with their images and lifecycle policies."""
        self.oidc_kept = ""
        result = await super().teardown()
        if result.status != "deleted":
            return result
        p = self.params
        stays = (
            f"the ECR repositories under {p.repository_prefix}/ stay, with BinderHub's images and "
            "the helper's lifecycle policies (the helper made them, not this notebook); remove "
            "one with aws ecr delete-repository --repository-name "
            f"{p.repository_prefix}/<name> --region {p.aws_region} --force"
        )
        return Result(None, result.status, f"{result.detail}; {stays}")

    def deletions(self) -> list[Deletion]:
        """The helper first (it uses the identity), then the identity, the policy, the OIDC
        provider (only while it carries this deployment's tag and no other role trusts it)."""
        oidc = "IAM OIDC provider"
        recorded = self.record.created.get("oidc_provider") if self.params.teardown else None
        if recorded:  # read before the plan, so the plan and the result say what happens
            self.oidc_kept = self._oidc_keep_reason(str(recorded["arn"]))
            if self.oidc_kept:
                oidc = f"the record of IAM OIDC provider {recorded['arn']} ({self.oidc_kept})"
        return [
            Deletion("helper", "the registry helper (sandbox)", self._delete_helper),
            Deletion("access_key", "the helper user's access key", self._delete_key),
            Deletion("iam_user", "IAM user", self._delete_user),
            Deletion("puller_key", "the pull-only user's access key", self._delete_puller_key),
            Deletion("puller_user", "pull-only IAM user", self._delete_user),
            Deletion("iam_role", "IAM role", self._delete_role),
            Deletion("iam_policy", "IAM policy", self._delete_policy),
            Deletion("oidc_provider", oidc, self._delete_oidc_provider),
            Deletion("helper_values", HELPER_FILE, self._delete_helper_values),
            Deletion("pull_manifest", PULL_FILE, self._delete_pull_manifest),
        ]

    def _delete_helper_values(self, recorded: str) -> None:
        (self.params.output_dir / HELPER_FILE).unlink(missing_ok=True)

    def _delete_pull_manifest(self, recorded: str) -> None:
        (self.params.output_dir / PULL_FILE).unlink(missing_ok=True)

    def retire(self, retiring: list[Any]) -> None:
        """Delete the access keys a rotation replaced (the helper user's by id, the pull-only
        user's as ``<user>:<id>``); a replaced auth token needs nothing more: the helper,
        deployed with the new one, takes no other."""
        for entry in retiring:
            if entry == OLD_TOKEN:
                continue
            user, _, key_id = str(entry).rpartition(":")
            if_present(
                self.call,
                "iam",
                "delete_access_key",
                UserName=user or self.params.helper_name,
                AccessKeyId=key_id,
            )

    def check_ours(self) -> None:
        """Before teardown: each recorded IAM resource still carries this deployment's tag."""
        created = self.record.created
        checks: list[tuple[str, Callable[[], Any]]] = []
        if created.get("iam_policy"):
            arn = created["iam_policy"]["arn"]
            checks.append((f"IAM policy {arn}", lambda: self._policy_tags(arn)))
        if created.get("iam_role"):
            name = created["iam_role"]["name"]
            checks.append((f"IAM role {name}", lambda: self._role_tags(name)))
        for user in (created[k]["name"] for k in ("iam_user", "puller_user") if created.get(k)):
            checks.append((f"IAM user {user}", partial(self._user_tags, user)))
        for what, read in checks:
            tags = read()
            if tags is not None and not self.ours(tags):
                raise PermissionDenied(
                    f"{what} is recorded in {self.record.path} but lacks the tag "
                    f"{MARK_TAG}={self.record.deployment}: it is not this deployment's, so "
                    "nothing is deleted; delete it yourself if it is yours, and remove its entry"
                )

    def _policy_tags(self, arn: str) -> list[dict[str, str]] | None:
        found = if_present(self.call, "iam", "list_policy_tags", PolicyArn=arn)
        return None if found is None else list(found.get("Tags", []))

    def _role_tags(self, name: str) -> list[dict[str, str]] | None:
        found = if_present(self.call, "iam", "list_role_tags", RoleName=name)
        return None if found is None else list(found.get("Tags", []))

    def _user_tags(self, name: str) -> list[dict[str, str]] | None:
        found = if_present(self.call, "iam", "list_user_tags", UserName=name)
        return None if found is None else list(found.get("Tags", []))

    def _oidc_provider_tags(self, arn: str) -> list[dict[str, str]] | None:
        found = if_present(
            self.call, "iam", "list_open_id_connect_provider_tags", OpenIDConnectProviderArn=arn
        )
        return None if found is None else list(found.get("Tags", []))

    # --- deletions ------------------------------------------------------------------------
    def _delete_helper(self, recorded: dict[str, Any]) -> None:
        if self.sandbox_url:
            _helper_request(self, "DELETE", str(recorded["release"]), ok=(200, 404))

    def _delete_key(self, recorded: dict[str, Any], user: str = "") -> None:
        if_present(
            self.call,
            "iam",
            "delete_access_key",
            UserName=user or self.params.helper_name,
            AccessKeyId=recorded["id"],
        )

    def _delete_puller_key(self, recorded: dict[str, Any]) -> None:
        self._delete_key(recorded, self.params.puller_name)

    def _delete_user(self, recorded: dict[str, Any]) -> None:
        """An IAM user of this deployment (the helper's or the pull-only one): its keys, this
        deployment's policy or the pull-only inline one (IAM deletes neither user with them:
        DeleteConflict), then the user."""
        name = recorded["name"]
        for key in (if_present(self.call, "iam", "list_access_keys", UserName=name) or {}).get(
            "AccessKeyMetadata", []
        ):
            self.call("iam", "delete_access_key", UserName=name, AccessKeyId=key["AccessKeyId"])
        self._detach("user", name)
        if_present(self.call, "iam", "delete_user_policy", UserName=name, PolicyName=PULLER_POLICY)
        if_present(self.call, "iam", "delete_user", UserName=name)

    def _delete_role(self, recorded: dict[str, Any]) -> None:
        self._detach("role", recorded["name"])
        if_present(self.call, "iam", "delete_role", RoleName=recorded["name"])

    def _detach(self, kind: str, name: str) -> None:
        """Detach this deployment's policy from the role or user (IAM deletes neither while a
        policy is attached: DeleteConflict)."""
        arn = (self.record.created.get("iam_policy") or {}).get("arn") or self.policy_arn
        if not arn:
            return
        key = "RoleName" if kind == "role" else "UserName"
        if_present(self.call, "iam", f"detach_{kind}_policy", **{key: name, "PolicyArn": arn})

    def _delete_policy(self, recorded: dict[str, Any]) -> None:
        arn = recorded["arn"]
        versions = if_present(self.call, "iam", "list_policy_versions", PolicyArn=arn)
        for version in (versions or {}).get("Versions", []):
            if not version.get("IsDefaultVersion"):  # IAM deletes a policy without them only
                self.call(
                    "iam", "delete_policy_version", PolicyArn=arn, VersionId=version["VersionId"]
                )
        if_present(self.call, "iam", "delete_policy", PolicyArn=arn)

    def _delete_oidc_provider(self, recorded: dict[str, Any]) -> None:
        arn = str(recorded["arn"])
        if self.oidc_kept or self._oidc_keep_reason(arn):  # read again: just before deleting
            return
        if_present(
            self.call, "iam", "delete_open_id_connect_provider", OpenIDConnectProviderArn=arn
        )

    def _oidc_keep_reason(self, arn: str) -> str:
        """Why the recorded OIDC provider must stay ("" when it may go): it lacks this
        deployment's tag (IAM keeps the provider's tags: the mark, not the record, says whose
        it is), or a role other than the helper's trusts it (IRSA would break for that role)."""
        tags = self._oidc_provider_tags(arn)
        if tags is None:
            return ""  # gone already: nothing to keep
        if not self.ours(tags):
            return (
                f"the provider stays: it lacks the tag {MARK_TAG}={self.record.deployment}, so "
                "it is not this deployment's"
            )
        others = [r for r in self._trusting(arn) if r != self.params.helper_name]
        if others:
            return (
                f"the provider stays: role {', '.join(others)} trusts it; delete it once none "
                f"does: aws iam delete-open-id-connect-provider --open-id-connect-provider-arn "
                f"{arn}"
            )
        return ""

    def _trusting(self, provider_arn: str) -> list[str]:
        """The roles whose trust names ``provider_arn``."""
        names = []
        for page in self.clients["iam"].get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                if provider_arn in json.dumps(role.get("AssumeRolePolicyDocument", {})):
                    names.append(role["RoleName"])
        return names


# --- verification, as BinderHub does it -------------------------------------------------------
#: The checks the shared verification runs that BinderHub's base class would do against the
#: registry; with ExternalRegistryHelper they are the registry's own view (ECR's API, Basic
#: with the helper's token), so they are named as such.
REGISTRY_VIEW = {
    "BinderHub's image check": ("ECR's manifest check (Basic, the helper's token)", ""),
    "BinderHub finds the pushed image": ("ECR serves the pushed image", ""),
    "push token": ("ECR takes the helper's token", "Basic on each call, as ECR takes it"),
}


def _view(report: VerificationReport, checks: list[Any]) -> None:
    """Add the shared checks to ``report`` under the names of the registry's own view."""
    for check in checks:
        name, detail = REGISTRY_VIEW.get(check.name, (check.name, ""))
        report.add(name, detail or check.detail, check.status)


class HelperAPI:
    """BinderHub's calls to the helper, as ``ExternalRegistryHelper`` makes them
    (binderhub/registry.py, PR #1637): ``Authorization: Bearer <auth_token>`` on each,
    404 read as "absent", any other error raised."""

    def __init__(self, service_url: str, token: Secret, ca_file: str | None) -> None:
        self.url = service_url.rstrip("/")
        self.token = token
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = ca_file or True

    def request(self, method: str, path: str) -> Any:
        """The JSON answer, or None on 404."""
        with map_exceptions(requests_errors("the registry helper")):
            r = self.http.request(
                method,
                self.url + path,
                headers={"Authorization": f"Bearer {self.token.reveal()}"},
                data=b"" if method == "POST" else None,
                timeout=60,
            )
        if r.status_code == 404:
            return None
        if r.status_code >= 400:
            said = redact(r.text[:300], secret_forms(self.token))
            if r.status_code == 403:
                raise VerificationFailed(
                    "BinderHub's image check",
                    f"the helper refused BinderHub's auth token ({method} {path}): deploy the "
                    "helper's values and BinderHub's secret.yaml from the same run",
                )
            if "AssumeRoleWithWebIdentity" in said:
                # IAM is eventually consistent: a new role is not assumable everywhere at once
                raise TransientCloudError(f"the helper's role is not usable yet: {said}", 503)
            if "AccessDenied" in said:  # AWS refused the helper's identity: no retry fixes it
                raise VerificationFailed(
                    "BinderHub's image check", f"the helper answered {r.status_code}: {said}"
                )
            wait = retry_after(r.headers.get("Retry-After"))
            raise error_for_status("the registry helper", r.status_code, said, retry_after=wait)
        return r.json() if r.content else None

    def get_image_manifest(self, image: str, tag: str) -> Any:
        """``GET /repo/<image>``; absent: ``POST /repo/<image>`` (the helper makes it) and None;
        else ``GET /image/<image>:<tag>`` (None when absent)."""
        if self.request("GET", f"/repo/{image}") is None:
            self.request("POST", f"/repo/{image}")
            return None
        return self.request("GET", f"/image/{image}:{tag}")

    def get_credentials(self, image: str, tag: str) -> dict[str, str] | None:
        """``POST /token/<image>:<tag>``: ``username``, ``password`` and ``registry``."""
        found = self.request("POST", f"/token/{image}:{tag}")
        if not isinstance(found, dict):
            return None
        return {k: str(v) for k, v in found.items() if k in ("username", "password", "registry")}


def verify_with_helper(
    values: HelperValues, ca_file: str | None, hints: VerifyHints
) -> VerificationReport:
    """BinderHub's helper calls, and the shared push and pull with the helper's token."""
    from ..verify import verify

    host, image = split_image_reference(values.image_prefix + CHECK_IMAGE[0])
    tag = CHECK_IMAGE[1]
    helper = HelperAPI(values.service_url, values.auth_token, ca_file)
    report = VerificationReport(image=f"{host}/{image}:{tag}")
    try:
        found = helper.get_image_manifest(image, tag)
        report.add(
            "BinderHub's image check",
            "ExternalRegistryHelper: "
            + ("a previous check image is present" if found else "not built yet; repository made"),
        )
        creds = helper.get_credentials(image, tag)
        if not creds or not creds.get("password"):
            raise VerificationFailed("push token", "the helper gave no push credentials")
        token = Secret(creds["password"])
        registry = urlparse(creds.get("registry", "")).netloc or creds.get("registry", "")
        if registry != host:
            raise VerificationFailed(
                "push token",
                f"the helper's token is for {registry}, image_prefix names {host}: set the "
                "helper's AWS_REGION (and AWS_REGISTRY_ID) to the registry of image_prefix",
            )
        report.add("push token", f"the helper's token for {registry} (user {creds['username']})")
        pushing = RegistryValues(
            image_prefix=values.image_prefix,
            username=creds.get("username", ""),
            password=token,
            registry_url=f"https://{host}",
            pull=values.pull,  # user pods' (pull_access "secret"): minted as the pull-only user
            pull_access=values.pull_access,
            pull_secret_names=values.pull_secret_names,
        )
        try:
            shared = verify(pushing, ca_bundle=ca_file, hints=hints)
        except VerificationFailed as failed:
            checks = failed.report.checks if failed.report else []
            _view(report, checks[:-1])
            diagnosis = failed.diagnosis
            if " 404 " in diagnosis and helper.request("GET", f"/repo/{image}") is None:
                diagnosis = (
                    f"repository {image} does not exist (ECR refuses a push to a missing "
                    "repository: NAME_UNKNOWN, RepositoryNotFoundException): it was deleted after "
                    "BinderHub's image check made it; the next launch's check makes it again"
                )
            report.add(failed.check, diagnosis, "failed")
            raise VerificationFailed(failed.check, diagnosis, report) from None
        _view(report, shared.checks)
        if helper.get_image_manifest(image, tag) is None:
            raise VerificationFailed(
                "BinderHub finds the pushed image",
                "the push succeeded but the helper's GET /image/ says absent: BinderHub would "
                "rebuild at every launch; check the helper's AWS_REGION and AWS_REGISTRY_ID",
            )
        report.add(
            "BinderHub finds the pushed image",
            "ExternalRegistryHelper: found (ECR's DescribeImages), so launches reuse it",
        )
    except VerificationFailed as failed:
        if failed.report is not report:  # raised here, not by the shared checks above
            report.add(failed.check, failed.diagnosis, "failed")
        raise VerificationFailed(failed.check, failed.diagnosis, report) from None
    return report


# --- sign-in -----------------------------------------------------------------------------------
def _client_config() -> Any:
    """No SDK retries (the step runner retries, with its backoff, once per fault)."""
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 1}, user_agent_extra=KEY)


def _sandbox_session(p: Params, key_id: str, secret: Secret) -> Any:
    """A boto3 session with this key and nothing else: no real profile or credential file is
    read, and the instance metadata probe is off."""
    import boto3
    import botocore.session

    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # nothing probes 169.254.169.254
    core = botocore.session.Session()
    core.set_config_variable("config_file", os.devnull)  # no real profile is read
    core.set_config_variable("credentials_file", os.devnull)
    core.set_config_variable("profile", None)
    return boto3.Session(
        aws_access_key_id=key_id,
        aws_secret_access_key=secret.reveal(),
        region_name=p.aws_region,
        botocore_session=core,
    )


def ecr_client_as(conn: EcrConnection, key: tuple[str, Secret]) -> Any:
    """An ECR client signing with ``key`` alone (the pull-only user's), in the run's region:
    against the sandbox, or AWS's regional endpoint for real."""
    import boto3

    p = conn.params
    config = _client_config()
    if conn.sandbox_url:
        session = _sandbox_session(p, key[0], key[1])
        return session.client(
            "ecr", endpoint_url=f"{conn.sandbox_url}/ecr/api", verify=conn.ca_file, config=config
        )
    session = boto3.Session(
        aws_access_key_id=key[0], aws_secret_access_key=key[1].reveal(), region_name=p.aws_region
    )
    return session.client("ecr", config=config)


def connect(
    p: Params,
    sandbox_url: str = "",
    ca_file: str | None = None,
    key: dict[str, str] | None = None,
    registry: str = "",
) -> EcrConnection:
    """Clients for IAM, STS, ECR and EKS: for real from boto3's default chain, else against
    the sandbox at ``sandbox_url`` with its CA, ``key`` and ECR ``registry`` (never the chain:
    no real credential or profile is read, and the instance metadata probe is off)."""
    import boto3

    config = _client_config()
    if sandbox_url:
        assert key is not None
        session = _sandbox_session(p, key["access_key_id"], Secret(key["secret_access_key"]))
        clients = {
            service: session.client(
                service,
                endpoint_url=f"{sandbox_url}/ecr/{path}",
                verify=ca_file,
                config=config,
            )
            for service, path in SANDBOX_PATHS.items()
        }
    else:
        with _aws():
            session = boto3.Session(region_name=p.aws_region)
            if session.get_credentials() is None:
                raise MissingCredentials("no AWS credentials found", GET_CREDENTIALS)
        clients = {s: session.client(s, config=config) for s in SANDBOX_PATHS}
    conn = EcrConnection(
        params=p,
        record=Record(p.output_dir, KEY),
        ca_file=ca_file,
        clients=clients,
        identity={},
        sandbox_url=sandbox_url,
        registry=registry or f"https://{p.host}",
    )
    return conn


def sign_in(p: Params) -> Result[EcrConnection]:
    """Sign in (boto3's default chain, or the sandbox's administrator) and name whose identity
    it is (``sts:GetCallerIdentity``, which needs no permission), before any change."""
    if p.sandbox:
        box = sandbox_mod.ensure()
        registry = box.registries.get(KEY, "")
        if not registry:
            raise CloudError("the sandbox serves no ECR registry: is its ecr backend mounted?")
        conn = connect(p, box.url, box.ca_file, box.credentials(KEY), registry)
    else:
        conn = connect(p)
    return who_am_i(conn)


def who_am_i(conn: EcrConnection) -> Result[EcrConnection]:
    """``sts:GetCallerIdentity``: the identity and account the run acts as; an account other
    than ``account_id`` stops the run before any change."""
    p = conn.params
    found = conn.call("sts", "get_caller_identity")
    conn.identity = {k: str(found.get(k, "")) for k in ("Account", "Arn", "UserId")}
    account = conn.identity["Account"]
    if account != p.account_id:
        raise PermissionDenied(
            f"signed in as {conn.identity['Arn']} in account {account}, not account_id "
            f"{p.account_id}: set account_id = {account!r}, or sign in to {p.account_id}"
        )
    where = "the sandbox's AWS" if p.sandbox else f"AWS ({p.aws_region})"
    return Result(conn, "done", f"signed in to {where} as {conn.identity['Arn']}")


# --- the steps ----------------------------------------------------------------------------------
@creates
def ensure_policy(conn: EcrConnection) -> Result[str | None]:
    """The helper's IAM policy, ``helper_name``: made, reused, or brought to the least privilege
    this notebook states (a new default version; IAM keeps five, the oldest goes)."""
    p = conn.params
    arn = f"arn:aws:iam::{p.account_id}:policy/{p.helper_name}"
    document = helper_policy(p.aws_region, p.account_id, p.repository_prefix)
    scope = f"repository/{p.repository_prefix}/*"
    found = if_present(conn.call, "iam", "get_policy", PolicyArn=arn)
    if found is None:
        conn.create(
            "iam_policy",
            f"create IAM policy {p.helper_name!r} (ECR on {scope}, and a registry token)",
            lambda: conn.call(
                "iam",
                "create_policy",
                PolicyName=p.helper_name,
                PolicyDocument=json.dumps(document),
                Description=f"BinderHub's registry helper: ECR on {scope}",
                Tags=conn.tags,
            ),
            keep=lambda made: {"name": p.helper_name, "arn": made["Policy"]["Arn"]},
        )
        conn.policy_arn = arn
        return Result(arn, "created", f"IAM policy {p.helper_name!r}: ECR on {scope} only")
    policy = found["Policy"]
    if not conn.ours(policy.get("Tags") or conn._policy_tags(arn)):
        raise PermissionDenied(
            f"IAM policy {p.helper_name!r} exists and lacks the tag {MARK_TAG}="
            f"{conn.record.deployment}: it is not this deployment's; choose another helper_name"
        )
    conn.note("iam_policy", {"name": p.helper_name, "arn": arn})  # a lost answer's, too
    conn.policy_arn = arn
    version = conn.call(
        "iam", "get_policy_version", PolicyArn=arn, VersionId=policy["DefaultVersionId"]
    )["PolicyVersion"]
    current = version["Document"]
    if isinstance(current, str):
        current = json.loads(unquote(current))
    if current == document:
        return Result(arn, "reused", f"IAM policy {p.helper_name!r}: ECR on {scope} only")
    conn.plan(f"update IAM policy {p.helper_name!r} to ECR on {scope} only")
    versions = conn.call("iam", "list_policy_versions", PolicyArn=arn)["Versions"]
    old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
    if len(versions) >= 5 and old:  # IAM keeps five versions
        conn.call("iam", "delete_policy_version", PolicyArn=arn, VersionId=old[0]["VersionId"])
    conn.call(
        "iam",
        "create_policy_version",
        PolicyArn=arn,
        PolicyDocument=json.dumps(document),
        SetAsDefault=True,
    )
    return Result(arn, "updated", f"IAM policy {p.helper_name!r}: now ECR on {scope} only")


def cluster_issuer(conn: EcrConnection) -> str:
    """The EKS cluster's OIDC issuer (``eks:DescribeCluster``: ``identity.oidc.issuer``)."""
    p = conn.params
    found = conn.call("eks", "describe_cluster", name=p.cluster_name)
    issuer = str(found["cluster"].get("identity", {}).get("oidc", {}).get("issuer", ""))
    if not issuer.startswith("https://"):
        raise CloudError(
            f"EKS cluster {p.cluster_name!r} has no OIDC issuer: IRSA needs one (EKS clusters "
            'from 1.13 have it); or rerun with helper_identity = "user"'
        )
    return issuer


def _ensure_oidc_provider(conn: EcrConnection, issuer: str) -> tuple[str, str]:
    """The account's IAM OIDC provider for the cluster's issuer: reused, or made (tagged, and
    recorded: teardown deletes it only when no other role trusts it). ``(arn, what happened)``."""
    p = conn.params
    host_path = issuer.removeprefix("https://")
    arn = f"arn:aws:iam::{p.account_id}:oidc-provider/{host_path}"
    found = if_present(
        conn.call, "iam", "get_open_id_connect_provider", OpenIDConnectProviderArn=arn
    )
    if found is not None:
        if conn.ours(found.get("Tags")):
            conn.note("oidc_provider", {"arn": arn})
        return arn, "the cluster's OIDC provider"
    conn.create(
        "oidc_provider",
        f"create the IAM OIDC provider of EKS cluster {p.cluster_name!r} ({issuer})",
        lambda: conn.call(
            "iam",
            "create_open_id_connect_provider",
            Url=issuer,
            ClientIDList=[IRSA_AUDIENCE],
            Tags=conn.tags,
        ),
        keep=lambda made: {"arn": made["OpenIDConnectProviderArn"]},
    )
    return arn, "a new OIDC provider for the cluster"


@creates
def ensure_identity(conn: EcrConnection) -> Result[str | None]:
    """The helper's identity, with the policy attached: an IRSA role trusting the cluster's OIDC
    provider for the helper's service account only (``"role"``), or an IAM user (``"user"``)."""
    if conn.params.helper_identity == "user":
        return _ensure_user(conn)
    return _ensure_role(conn)


def _ensure_role(conn: EcrConnection) -> Result[str | None]:
    p = conn.params
    conn.issuer = cluster_issuer(conn)
    provider_arn, provider = _ensure_oidc_provider(conn, conn.issuer)
    trust = trust_policy(provider_arn, conn.issuer, p.service_account)
    arn = f"arn:aws:iam::{p.account_id}:role/{p.helper_name}"
    found = if_present(conn.call, "iam", "get_role", RoleName=p.helper_name)
    status = "reused"
    if found is None:
        conn.create(
            "iam_role",
            f"create IAM role {p.helper_name!r} for {p.service_account} (IRSA)",
            lambda: conn.call(
                "iam",
                "create_role",
                RoleName=p.helper_name,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description="BinderHub's registry helper (IRSA)",
                Tags=conn.tags,
            ),
            keep=lambda made: {"name": p.helper_name, "arn": made["Role"]["Arn"]},
        )
        status = "created"
    else:
        role = found["Role"]
        if not conn.ours(role.get("Tags") or conn._role_tags(p.helper_name)):
            raise PermissionDenied(
                f"IAM role {p.helper_name!r} exists and lacks the tag {MARK_TAG}="
                f"{conn.record.deployment}: it is not this deployment's; choose another helper_name"
            )
        conn.note("iam_role", {"name": p.helper_name, "arn": arn})
        current = role.get("AssumeRolePolicyDocument")
        if isinstance(current, str):
            current = json.loads(unquote(current))
        if current != trust:
            conn.plan(f"trust {p.service_account} only in IAM role {p.helper_name!r}")
            conn.call(
                "iam",
                "update_assume_role_policy",
                RoleName=p.helper_name,
                PolicyDocument=json.dumps(trust),
            )
            status = "updated"
    status = _attach(conn, "role", p.helper_name, status)
    conn.role_arn = arn
    return Result(
        arn,
        status,
        f"IAM role {p.helper_name!r} for {p.service_account} only, through {provider}; "
        f"policy {p.helper_name!r} attached",
    )


def _attach(conn: EcrConnection, kind: str, name: str, status: str) -> str:
    """Attach the helper's policy to the role or user, unless it is (``status`` then stays)."""
    key = "RoleName" if kind == "role" else "UserName"
    arn = conn.policy_arn or f"arn:aws:iam::{conn.params.account_id}:policy/{name}"
    attached = conn.call("iam", f"list_attached_{kind}_policies", **{key: name})
    if any(a["PolicyArn"] == arn for a in attached["AttachedPolicies"]):
        return status
    conn.plan(f"attach policy {name!r} to IAM {kind} {name!r}")
    conn.call("iam", f"attach_{kind}_policy", **{key: name, "PolicyArn": arn})
    return "created" if status == "created" else "updated"


@dataclass(frozen=True)
class IamUser:
    """An IAM user this notebook makes, with an access key it stores in a 0600 file: the
    helper's (``helper_identity = "user"``) or user pods' pull-only one (``pull_access =
    "secret"``). Both are made, marked, rotated, retired and torn down the same way."""

    name: str
    purpose: str  # whom it is for, in messages
    kind: str  # its record kind
    key_kind: str  # its key's record kind
    stored: Callable[[Path], tuple[str, Secret] | None]  # its key as the file holds it
    helper: bool  # the helper's: retiring entries are bare key ids (records before the puller)

    def entry(self, key_id: str) -> str:
        """Its key in the retiring list."""
        return key_id if self.helper else f"{self.name}:{key_id}"

    def retiring(self, entries: list[Any]) -> set[str]:
        """The ids of its keys among the retiring ``entries``."""
        found = (str(e).rpartition(":") for e in entries)
        return {key for owner, _, key in found if owner == ("" if self.helper else self.name)}


def helper_user(p: Params) -> IamUser:
    """The registry helper's IAM user (clusters outside EKS); its key in the helper's values."""
    return IamUser(
        p.helper_name, "the registry helper", "iam_user", "access_key", _stored_key, helper=True
    )


def puller_user(p: Params) -> IamUser:
    """User pods' pull-only IAM user; its key in ``pull-secret-cronjob.yaml``."""
    return IamUser(
        p.puller_name,
        "user pods' pulls (pull only)",
        "puller_user",
        "puller_key",
        _stored_pull_key,
        helper=False,
    )


def _ensure_user(conn: EcrConnection) -> Result[str | None]:
    p = conn.params
    arn, status, key_status = _ensure_iam_user(
        conn, helper_user(p), lambda status: _attach(conn, "user", p.helper_name, status)
    )
    conn.access_key = conn.made_keys[p.helper_name][:2]
    return Result(
        arn,
        status if key_status == "reused" else {"rotated": "updated"}.get(key_status, key_status),
        f"IAM user {p.helper_name!r}, policy {p.helper_name!r} attached; access key {key_status}",
    )


def _ensure_iam_user(
    conn: EcrConnection, user: IamUser, grant: Callable[[str], str]
) -> tuple[str, str, str]:
    """The user (made, or found with this deployment's tag), ``grant(status)`` giving it its
    permissions, and its key: ``(arn, status, key status)``."""
    p = conn.params
    arn = f"arn:aws:iam::{p.account_id}:user/{user.name}"
    found = if_present(conn.call, "iam", "get_user", UserName=user.name)
    status = "reused"
    if found is None:
        conn.create(
            user.kind,
            f"create IAM user {user.name!r} for {user.purpose}",
            lambda: conn.call("iam", "create_user", UserName=user.name, Tags=conn.tags),
            keep=lambda made: {"name": user.name, "arn": made["User"]["Arn"]},
        )
        status = "created"
    else:
        if not conn.ours(found["User"].get("Tags") or conn._user_tags(user.name)):
            raise PermissionDenied(
                f"IAM user {user.name!r} exists and lacks the tag {MARK_TAG}="
                f"{conn.record.deployment}: it is not this deployment's; choose another helper_name"
            )
        conn.note(user.kind, {"name": user.name, "arn": arn})
    status = grant(status)
    return arn, status, _ensure_key(conn, user)


def _ensure_key(conn: EcrConnection, user: IamUser) -> str:
    """The user's access key: the stored one while IAM lists it (and no ``rotate``), else a new
    one. A rotated key is retired, and works until ``finish_rotation`` deletes it (IAM allows two
    keys per user); a key whose secret is lost is deleted when it would make a third. A key
    made earlier in this run (a step the runner retries) is kept: its file is not written yet."""
    p = conn.params
    stored = user.stored(p.output_dir)
    listed = conn.call("iam", "list_access_keys", UserName=user.name)["AccessKeyMetadata"]
    ids = [str(k["AccessKeyId"]) for k in listed]
    made_now = conn.made_keys.get(user.name)
    if made_now is not None and made_now[0] in ids:
        return made_now[2]
    if stored is not None and stored[0] in ids and not p.rotate:
        conn.made_keys[user.name] = (*stored, "reused")
        conn.unretire(user.entry(stored[0]))
        return "reused"
    if stored is not None and stored[0] in ids:
        conn.retire_later(user.entry(stored[0]))
    keep = {stored[0]} if stored is not None else set()
    keep |= user.retiring(list(conn.record.created.get(conn.retiring, [])))
    lost = [i for i in ids if i not in keep]
    if len(ids) >= 2:  # IAM's limit: two keys per user
        if not lost:
            raise PermissionDenied(
                f"IAM user {user.name!r} has two access keys in use (one replaced and kept): "
                "deploy the new values, then rerun without keep_replaced to remove it first"
            )
        conn.plan(f"delete access key {lost[0]} of {user.name!r} (its secret is not stored)")
        conn.call("iam", "delete_access_key", UserName=user.name, AccessKeyId=lost[0])
    made = conn.create(
        user.key_kind,
        f"create an access key for IAM user {user.name!r}",
        lambda: conn.call("iam", "create_access_key", UserName=user.name)["AccessKey"],
        keep=lambda made: {"id": made["AccessKeyId"]},
    )
    status = "created" if stored is None else "rotated"
    conn.made_keys[user.name] = (
        str(made["AccessKeyId"]),
        Secret(str(made["SecretAccessKey"])),
        status,
    )
    return status


def _stored_key(out: Path) -> tuple[str, Secret] | None:
    """The helper user's access key as the helper's values file holds it."""
    env = _stored_helper_env(out)
    key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key_id or not secret:
        return None
    return key_id, Secret(secret)


HELPER_FILE = "registry-helper.yaml"


def _stored_helper_values(out: Path) -> dict[str, Any]:
    from ..binderhub import read_values_file

    try:
        found = read_values_file(out / HELPER_FILE)
    except (OSError, BinderHubRegistryError):
        return {}
    return found if isinstance(found, dict) else {}


def _stored_helper_env(out: Path) -> dict[str, str]:
    env = _stored_helper_values(out).get("extraEnv") or []
    return {
        str(e.get("name")): str(e.get("value"))
        for e in env
        if isinstance(e, dict) and isinstance(e.get("value"), str)
    }


@creates
def ensure_helper(conn: EcrConnection) -> Result[str | None]:
    """BinderHub's auth token for the helper (the stored one, a new one with ``rotate``) and where
    BinderHub reaches the helper. In the sandbox the helper is deployed to its stand-in, as
    ``helm upgrade --install`` of its chart would; for real, the next step installs the chart."""
    p = conn.params
    stored = _stored_token(p.output_dir)
    fresh = stored is None or p.rotate
    token = Secret(secrets.token_urlsafe(32)) if fresh or stored is None else stored
    what = "a new auth token" if fresh else "the stored auth token"
    if stored is not None and fresh:  # a rotation: the helper takes one token, the new one
        conn.retire_later(OLD_TOKEN)
    elif not fresh:
        conn.unretire(OLD_TOKEN)  # a rotation that stopped before its values: the stored one
    if p.sandbox:
        release = HELPER_CHART
        conn.service_url = f"{conn.sandbox_url}/ecr/helpers/{release}"
        env = _sandbox_env(conn, token)
        days = env.get(EXPIRES_ENV, "")  # another retention_days: redeploy, as helm upgrade would
        if (
            fresh
            or _stored_helper_env(p.output_dir).get(EXPIRES_ENV, "") != days
            or not _helper_answers(conn, token)
        ):  # else deployed with this token and lifecycle already
            conn.create(
                "helper",
                f"deploy the registry helper (release {release!r}) in the sandbox, with "
                + lifecycle_text(p.retention_days),
                lambda: _helper_request(conn, "PUT", release, json=env),
                pending={"release": release, "pending": True},
                keep=lambda made: {"release": release},
            )
        detail = f"the registry helper runs in the sandbox (release {release!r}), with {what}"
    else:
        if fresh:
            conn.plan(
                "make BinderHub's auth token for the registry helper, whose values set "
                + lifecycle_text(p.retention_days)
            )
        conn.service_url = f"http://{HELPER_CHART}.{p.helper_namespace}.svc:{HELPER_PORT}"
        detail = f"BinderHub reaches the helper at {conn.service_url} with {what}"
    conn.auth_token = conn.secret = token  # BinderHub's one credential: the helper's auth token
    detail += f"; {retention_text(p.retention_days, 'pushed')}"
    if p.retention_days:
        detail += " (the helper's lifecycle policy on each repository it creates)"
    return Result(conn.service_url, "created" if fresh else "reused", detail)


def _helper_answers(conn: EcrConnection, token: Secret) -> bool:
    """Whether the helper is deployed and takes ``token`` (its ``/health`` needs none; a
    repository lookup does: 403 without it, 200 or 404 with it)."""
    name = f"{conn.params.repository_prefix}/{conn.params.prefix}{CHECK_IMAGE[0]}"
    with map_exceptions(requests_errors("the sandbox's registry helper")):
        r = requests.get(
            f"{conn.service_url}/repo/{name}",
            headers={"Authorization": f"Bearer {token.reveal()}"},
            verify=conn.ca_file,
            timeout=30,
        )
    return r.status_code in (200, 404) and r.headers.get("content-type", "").startswith(
        "application/json"
    )


def _sandbox_env(conn: EcrConnection, token: Secret) -> dict[str, str]:
    """The helper pod's environment as its chart (and IRSA's webhook) give it."""
    p = conn.params
    env = {
        "BINDERHUB_AUTH_TOKEN": token.reveal(),
        "AWS_REGION": p.aws_region,
        "RETURN_ERROR_DETAILS": "true",
    }
    if p.retention_days:
        env[EXPIRES_ENV] = str(p.retention_days)
    if p.helper_identity == "role":
        env |= {
            "AWS_ROLE_ARN": conn.role_arn,
            "service_account": f"{p.helper_namespace}:{p.helper_name}",
            "cluster": p.cluster_name,
        }
    else:
        # no key yet when a dry run planned the user: the deploy is then planned, never sent
        key_id, secret = conn.access_key or ("", Secret(""))
        env |= {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret.reveal()}
    return env


def _helper_request(
    conn: EcrConnection, method: str, release: str, *, ok: tuple[int, ...] = (200, 201), **kw: Any
) -> Any:
    """A call to the sandbox's helper stand-in (deploy, read, uninstall)."""
    url = f"{conn.sandbox_url}/ecr/helpers/{quote(release, safe='')}"
    with map_exceptions(requests_errors("the sandbox's registry helper")):
        r = requests.request(method, url, verify=conn.ca_file, timeout=30, **kw)
    if r.status_code not in ok:
        raise error_for_status("the sandbox's registry helper", r.status_code, r.text[:200])
    return r.json() if r.status_code < 300 and r.content else None


def _stored_token(out: Path) -> Secret | None:
    from ..binderhub import read_values_file

    try:
        found = read_values_file(out / "secret.yaml")
        token = found["config"]["ExternalRegistryHelper"]["auth_token"]
    except (OSError, BinderHubRegistryError, KeyError, TypeError):
        return None
    return Secret(token) if isinstance(token, str) and token else None


#: The AWS managed policies that let a node's kubelet pull from ECR (EKS user guide, "Amazon EKS
#: node IAM role"; ``AmazonEC2ContainerRegistryPullOnly`` is the pull-only one AWS added in 2024).
NODE_PULL_POLICIES = (NODE_PULL_POLICY, "AmazonEC2ContainerRegistryPullOnly")


@creates
def ensure_pull_credential(conn: EcrConnection) -> Result[None]:
    """User pods pull with the nodes' IAM role (``pull_access = "node"``): each EKS managed
    node group's role is checked for ECR pull (``AmazonEC2ContainerRegistryReadOnly``, which
    EKS's node role guide gives it); ``"none"`` is said to fail (ECR repositories are private);
    ``"secret"``: a pull-only IAM user, whose key refreshes a pull secret (``_ensure_puller``)."""
    p = conn.params
    if p.pull_access == "secret":
        return _ensure_puller(conn)
    if p.pull_access == "none":
        return Result(
            None,
            "skipped",
            'pull_access = "none": ECR repositories are private, so user pods cannot pull '
            "anonymously (only ECR Public serves anonymous pulls)",
        )
    if p.helper_identity == "user":  # a cluster outside EKS: its nodes' identity is not here
        return Result(
            None,
            "done",
            "user pods pull with the nodes' identity: outside EKS the nodes need an IAM identity "
            f"with {NODE_PULL_POLICY} (an EC2 instance profile); check yours",
        )
    groups = conn.call("eks", "list_nodegroups", clusterName=p.cluster_name)["nodegroups"]
    if not groups:
        return Result(
            None,
            "done",
            f"EKS cluster {p.cluster_name!r} has no managed node group: give your nodes' IAM "
            f"role {NODE_PULL_POLICY}",
        )
    roles = []
    for group in groups:
        found = conn.call(
            "eks", "describe_nodegroup", clusterName=p.cluster_name, nodegroupName=group
        )
        role = str(found["nodegroup"]["nodeRole"]).rpartition("/")[2]
        attached = conn.call("iam", "list_attached_role_policies", RoleName=role)
        names = {a["PolicyName"] for a in attached["AttachedPolicies"]}
        if not names & set(NODE_PULL_POLICIES):
            raise PermissionDenied(
                f"node group {group!r}'s role {role!r} has neither "
                f"{' nor '.join(NODE_PULL_POLICIES)}: its nodes could not pull BinderHub's "
                "images; attach one (aws iam "
                f"attach-role-policy --role-name {role} --policy-arn "
                f"arn:aws:iam::aws:policy/{NODE_PULL_POLICY}), or rerun with "
                'pull_access = "secret" (a pull secret a CronJob refreshes)'
            )
        roles.append(f"{group} ({role})")
    return Result(
        None,
        "done",
        f"user pods pull with the nodes' IAM role: node group {', '.join(roles)} has ECR pull "
        f"({NODE_PULL_POLICY}, as EKS's node role guide gives it)",
    )


def _ensure_puller(conn: EcrConnection) -> Result[None]:
    """``pull_access = "secret"``: the pull-only IAM user ``<helper_name>-puller`` (tagged; its
    inline policy :func:`puller_policy`; its key kept and rotated as the helper user's), and a
    registry password minted as it, which verification pulls with as a user pod's kubelet would
    with the Secret the CronJob refreshes (the same user, the same key)."""
    p = conn.params
    user = puller_user(p)
    _, status, key_status = _ensure_iam_user(conn, user, lambda s: _grant_pull(conn, s))
    conn.puller_key = conn.made_keys[user.name][:2]
    conn.pull_secret = _pull_token(conn, conn.puller_key, key_status)
    scope = f"repository/{p.repository_prefix}/*"
    if key_status != "reused":
        status = (
            {"rotated": "updated"}.get(key_status, key_status) if status == "reused" else status
        )
    return Result(
        None,
        status,
        f"user pods pull with Secret {PULL_SECRET}, which a CronJob refreshes every 6 hours "
        f"(ECR passwords last 12) as IAM user {user.name!r}: ECR pull on {scope} only; "
        f"access key {key_status}",
    )


def _grant_pull(conn: EcrConnection, status: str) -> str:
    """The pull-only user's inline policy, put when missing or different."""
    p = conn.params
    document = puller_policy(p.aws_region, p.account_id, p.repository_prefix)
    found = if_present(
        conn.call, "iam", "get_user_policy", UserName=p.puller_name, PolicyName=PULLER_POLICY
    )
    current = found["PolicyDocument"] if found else None
    if isinstance(current, str):
        current = json.loads(unquote(current))
    if current == document:
        return status
    scope = f"repository/{p.repository_prefix}/*"
    conn.plan(f"give IAM user {p.puller_name!r} ECR pull on {scope} only ({PULLER_POLICY!r})")
    conn.call(
        "iam",
        "put_user_policy",
        UserName=p.puller_name,
        PolicyName=PULLER_POLICY,
        PolicyDocument=json.dumps(document),
    )
    return "created" if status == "created" else "updated"


def _pull_token(conn: EcrConnection, key: tuple[str, Secret], key_status: str) -> PullSecret:
    """``GetAuthorizationToken`` signed with the pull-only user's key, as the CronJob's
    ``aws ecr get-login-password`` is: ``AWS`` and a 12-hour password for the registry host."""
    try:
        with _aws():
            data = ecr_client_as(conn, key).get_authorization_token()["authorizationData"][0]
    except AuthenticationFailed:
        if key_status == "reused":
            raise
        # a key made seconds ago: IAM is eventually consistent ("Changes that I make are not
        # always immediately visible", IAM guide), so the runner retries; the key is kept
        raise TransientCloudError(
            f"AWS does not know the new access key of {conn.params.puller_name!r} yet "
            "(IAM is eventually consistent); retrying"
        ) from None
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return PullSecret(urlparse(conn.registry).netloc, username, Secret(password))


def _real_values(params: Any) -> RegistryValues:
    """The values of a real run with ``params`` (the docs' example), the token redacted."""
    return HelperValues(
        image_prefix=f"{params.host}/{params.repository_prefix}/{params.prefix}",
        username="",
        password=Secret(""),
        registry_url=f"https://{params.host}",
        service_url=f"http://{HELPER_CHART}.{params.helper_namespace}.svc:{HELPER_PORT}",
        auth_token=Secret("helper-auth-token"),
    )


#: The docs' real-mode example of this notebook's values.
REAL_EXAMPLE = RealExample(
    overrides={},
    placeholders={"123456789012": "<ACCOUNT_ID>"},
    build=_real_values,
)


#: This registry on the docs' landing page: its row of the guide's table, its item of "Choose your
#: registry" and its column of the registry matrix (docs/_ext/guide.py renders them).
GUIDE = GuideEntry(
    section="Beyond the guide",
    title="Amazon ECR, through BinderHub's registry helper",
    name="Amazon ECR",
    choose=(
        "if BinderHub runs on AWS (EKS): BinderHub asks a small helper service, which makes each "
        "repository and hands every build a 12-hour push token."
    ),
    cost="per GB-month stored, plus data transferred out of the region [^ecr-pricing]",
    limits=(
        "a push needs its repository first (the helper makes one per image name); 100,000 images "
        "per repository by default [^ecr-quotas]"
    ),
    needs=(
        "an AWS account, an EKS cluster (or any cluster, with an IAM user's key), and the "
        "registry helper's Helm chart"
    ),
    credential=(
        "an IAM role the helper's service account assumes (IRSA), or an IAM user's access key, "
        "with ECR on `<repository_prefix>/*` only; BinderHub holds only the helper's auth token"
    ),
    pull_credential=(
        "a pull-only IAM user whose key a CronJob uses every 6 hours to refresh the pull secret, "
        'since ECR passwords last 12 hours; `"node"` (its default): the nodes\' IAM role, '
        "AmazonEC2ContainerRegistryReadOnly on EKS node groups [^ecr-node-role]"
    ),
    rotation="a new helper auth token (and access key); the old key is deleted once the new verify",
    expires="each push token after 12 hours [^ecr-token]; the helper hands a fresh one per build",
    notes={
        "ecr-pricing": 'Amazon\'s ["Amazon ECR pricing"](https://aws.amazon.com/ecr/pricing/).',
        "ecr-quotas": (
            'Amazon\'s ["Amazon ECR service quotas"]'
            "(https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html)."
        ),
        "ecr-node-role": (
            'Amazon\'s ["Amazon EKS node IAM role"]'
            "(https://docs.aws.amazon.com/eks/latest/userguide/create-node-role.html)."
        ),
        "ecr-token": (
            'Amazon\'s ["GetAuthorizationToken"](https://docs.aws.amazon.com/AmazonECR/latest/'
            "APIReference/API_GetAuthorizationToken.html): valid for 12 hours."
        ),
    },
)


def usage_for_values(values: RegistryValues, env: Any, created: Any, ca_file: str | None) -> Any:
    """ECR's storage for ``binderhub-registry verify`` (a ``Usage``, or a ``NotRead``): the
    DescribeImages sizes under the values' repositories, signed with AWS credentials (boto3's
    default chain; the sandbox's seeded administrator there). Not with the helper's token:
    GetAuthorizationToken's is for the registry (docker login) alone; ECR's API takes only
    SigV4-signed calls."""
    import boto3
    import botocore.session

    from ..usage import NotRead, sandbox_of

    host, scope = split_image_reference(values.image_prefix)
    parts = host.split(".")  # <account>.dkr.ecr.<region>.amazonaws.com
    region = parts[3] if ".dkr.ecr." in host else env.get("AWS_REGION") or "us-east-1"
    box = sandbox_of(values)
    if box is not None:  # the seeded key alone: no real profile, no metadata probe
        # The sandbox's registry serves every region on one loopback host, so its name tells
        # none: the region is the one the values' helper works in (its AWS_REGION).
        release = str(getattr(values, "service_url", "")).rstrip("/").rsplit("/", 1)[-1]
        helpers = box.state().get(KEY, {}).get("helpers", [])
        region = next(
            (str(h["region"]) for h in helpers if h.get("name") == release and h.get("region")),
            region,
        )
        key = box.credentials(KEY)
        core = botocore.session.Session()
        for name, value in (("config_file", os.devnull), ("credentials_file", os.devnull)):
            core.set_config_variable(name, value)
        session = boto3.Session(
            aws_access_key_id=key["access_key_id"],
            aws_secret_access_key=key["secret_access_key"],
            region_name=region,
            botocore_session=core,
        )
        client = session.client(
            "ecr", endpoint_url=f"{box.url}/ecr/api", verify=box.ca_file, config=_client_config()
        )
    else:
        session = boto3.Session(region_name=region)
        if session.get_credentials() is None:
            return NotRead(
                "the helper's token reaches the registry only; DescribeImages needs AWS "
                "credentials",
                "AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )
        client = session.client("ecr", config=_client_config())
    total = 0
    with _aws():
        for page in client.get_paginator("describe_repositories").paginate():
            for repository in page.get("repositories", []):
                name = repository["repositoryName"]
                if not name.startswith(scope):
                    continue
                images = client.get_paginator("describe_images").paginate(repositoryName=name)
                total += sum(
                    int(i.get("imageSizeInBytes") or 0) for p in images for i in p["imageDetails"]
                )
    return Usage(total, None, f"ECR repositories {scope}* (billed per GB-month)")
