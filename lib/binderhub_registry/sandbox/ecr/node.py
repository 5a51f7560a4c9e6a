"""The node's pull: what the kubelet of an EKS node gets from ``ecr-credential-provider``.

On EKS, user pods' images are pulled by the kubelet, with credentials its image credential
provider plugin hands it (kubernetes/cloud-provider-aws ``cmd/ecr-credential-provider/main.go``:
``GetAuthorizationToken`` with ``RegistryIds`` the image host's account, region from the host,
the SDK's default credentials, so the node's instance profile, i.e. its node role; the token is
split into ``AWS`` and a password and cached for half its life; an error fails the plugin and
the kubelet pulls without credentials). :func:`node_credentials` does that call as the node
role, through the same layer and moto as any boto3 call, so IAM decides: a node role without
``ecr:GetAuthorizationToken`` gets ECR's ``AccessDeniedException``.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from ..app import Request, Response, json_response
from .models import ACCOUNT_ID, Aws

__all__ = ["node_credentials"]

#: How long an instance profile's role credentials last (IMDS hands out role sessions of about
#: six hours and renews them before they end: assumption; nothing here outlives a test).
_SESSION_SECONDS = 6 * 3600


def node_credentials(aws: Aws, request: Request, host: str, registry: str, now: float) -> Response:
    """``/_sandbox/ecr/node-token?cluster=<name>[&nodegroup=default][&region=<r>]``.

    200: the plugin's ``CredentialProviderResponse`` for ``registry`` (``https://host:port``);
    400: ECR's refusal of ``GetAuthorizationToken`` to the node role (``code``, ``message``);
    404: no such cluster or node group (one line naming the parameter).
    """
    aws.load()
    cluster_name = request.arg("cluster")
    nodegroup = request.arg("nodegroup", "default")
    if not cluster_name:
        return json_response(400, {"message": "cluster: the EKS cluster's name is required"})
    found = _node_role(aws, cluster_name, nodegroup)
    if isinstance(found, str):
        return json_response(404, {"message": found})
    role_arn, cluster_region = found
    region = request.arg("region", cluster_region)
    session = _instance_profile_session(role_arn, region)
    answer = aws.handle("api", _signed_token_request(session, region, host), host)
    body = json.loads(answer.body or b"{}")
    if answer.status != 200:
        code = str(body.get("__type", "")).rpartition("#")[2]
        return json_response(answer.status, {"code": code, "message": body.get("message", "")})
    data = body["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    half = max(int((float(data["expiresAt"]) - now) / 2), 0)  # the plugin's getCacheDuration
    return json_response(
        200,
        {
            "kind": "CredentialProviderResponse",
            "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
            "cacheKeyType": "Registry",
            "cacheDuration": f"{half}s",
            "auth": {
                registry.removeprefix("https://"): {"username": username, "password": password}
            },
            "principal": session["arn"],  # the sandbox's addition: whose token this is
        },
    )


def _node_role(aws: Aws, cluster: str, nodegroup: str) -> tuple[str, str] | str:
    """(node role ARN, region) of the node group in moto's EKS, or why there is none."""
    from moto.eks.models import eks_backends

    for region, backend in eks_backends[ACCOUNT_ID].items():
        found = backend.clusters.get(cluster)
        if found is None:
            continue
        group = found.nodegroups.get(nodegroup)
        if group is None:
            return f"nodegroup: cluster {cluster!r} has no node group {nodegroup!r}"
        return str(group.node_role), str(region)
    return f"cluster: no EKS cluster {cluster!r} in the account"


def _instance_profile_session(role_arn: str, region: str) -> dict[str, str]:
    """The node role's session as an EC2 instance gets it from IMDS (session name: the
    instance id, as CloudTrail shows ``assumed-role/<role>/i-...``)."""
    from moto.sts.models import sts_backends

    instance = "i-" + secrets.token_hex(9)[:17]
    role = sts_backends[ACCOUNT_ID]["aws"].assume_role(
        region_name=region,
        role_session_name=instance,
        role_arn=role_arn,
        policy="",
        duration=_SESSION_SECONDS,
        external_id="",
    )
    return {
        "key": role.access_key_id,
        "secret": role.secret_access_key,
        "token": role.session_token,
        "arn": str(role.arn),
    }


def _signed_token_request(session: dict[str, str], region: str, host: str) -> Request:
    """``GetAuthorizationToken(registryIds=[account])`` signed (SigV4) with the session's keys,
    as the plugin's SDK sends it to ``/ecr/api/``."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps({"registryIds": [ACCOUNT_ID]}).encode()
    signed = AWSRequest(
        method="POST",
        url=f"https://{host}/ecr/api/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
        },
    )
    credentials = Credentials(session["key"], session["secret"], session["token"])
    SigV4Auth(credentials, "ecr", region).add_auth(signed)
    headers: dict[str, Any] = {k.lower(): v for k, v in signed.headers.items()}
    headers["host"] = host
    return Request("POST", "/ecr/api/", {}, headers, body)
