"""Signing in to Azure: which credential (the sandbox's seeded one, a device code, or
DefaultAzureCredential: ``az login``, the environment, a managed identity), proven with a token
for Azure Resource Manager, and kept (:class:`KeptTokens`) so each token is asked for once.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    ClientSecretCredential,
    CredentialUnavailableError,
    DefaultAzureCredential,
    DeviceCodeCredential,
)

from ... import sandbox as sandbox_mod
from ...errors import AuthenticationFailed, MissingCredentials, SandboxError
from ...secrets import Secret
from .errors import one_line
from .params import ARM_SCOPE, SANDBOX_SECRET_VARIABLE, Params


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT access token, unverified (only to say who signed in)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _attempts(message: str) -> str:
    """DefaultAzureCredential's multi-line report as one line: each credential, first sentence."""
    tried = []
    for line in message.splitlines():
        if line.startswith("\t") and ":" in line:
            name, _, why = line.strip().partition(":")
            tried.append(f"{name} ({one_line(why).split('. ')[0].rstrip('.')})")
    return "; ".join(tried) or one_line(message)


_SIGN_IN_HOW = (
    "run `az login` and rerun, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, "
    "or run where a managed identity is assigned; or set device_code = True to sign in with a "
    "code in a browser"
)


class KeptTokens:
    """A credential that keeps the tokens it got until five minutes before they expire.

    Every ARM client's authentication policy asks the credential for its own
    token, and msgraph-sdk's (kiota's) asks at every request. MSAL-based
    credentials answer from their cache; ``az login``'s (AzureCliCredential,
    which DefaultAzureCredential picks after ``az login``) caches nothing and
    runs ``az account get-access-token`` each time, about a second: a dozen
    times in a run. A request with ``claims`` (a Continuous Access Evaluation
    challenge) or other options always goes to the credential.
    """

    def __init__(self, credential: TokenCredential) -> None:
        self.credential = credential
        self._tokens: dict[tuple[Any, ...], AccessToken] = {}

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """The kept token for these scopes, tenant and CAE choice, else the credential's."""
        if claims or kwargs:
            return self.credential.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )
        key = (scopes, tenant_id, enable_cae)
        token = self._tokens.get(key)
        if token is None or token.expires_on - 300 < time.time():
            token = self._tokens[key] = self.credential.get_token(
                *scopes, tenant_id=tenant_id, enable_cae=enable_cae
            )
        return token


def _sandbox_credential(p: Params) -> tuple[TokenCredential, dict[str, str], str]:
    """The sandbox's seeded deployer (its client secret, or the sandbox-only override), and
    the sandbox's endpoints."""
    box = sandbox_mod.ensure()
    try:
        seeded = box.credentials("azure")
    except KeyError:
        raise SandboxError(
            f"the sandbox running in {box.directory} has no Azure yet (it predates it): "
            "restart it with `binderhub-registry sandbox stop`, then rerun"
        ) from None
    secret, source = seeded["client_secret"], "the sandbox's seeded secret"
    # never a real credential in sandbox mode: only this sandbox-only variable overrides the
    # seeded secret (how a wrong secret is rehearsed); AZURE_CLIENT_SECRET is not read
    if os.environ.get(SANDBOX_SECRET_VARIABLE):
        secret, source = os.environ[SANDBOX_SECRET_VARIABLE], SANDBOX_SECRET_VARIABLE
    credential = ClientSecretCredential(
        seeded["tenant_id"],
        seeded["client_id"],
        secret,
        authority=f"{box.url}/azure/login",
        disable_instance_discovery=True,
        connection_verify=box.ca_file,
    )
    endpoints = {
        "arm": f"{box.url}/azure/management",
        "graph": f"{box.url}/azure/graph/v1.0",
        "authority": f"{box.url}/azure/login",
        "ca_file": box.ca_file,
    }
    return credential, endpoints, source


@dataclass(frozen=True)
class SignedIn:
    """A credential that got a token for Azure Resource Manager, and who it is."""

    credential: TokenCredential
    tenant_id: str
    who: str  # the user's name, or the service principal's appId
    kind: str  # "user" or "service principal"
    source: str  # where the credential came from, in words
    endpoints: dict[str, str] = field(default_factory=dict)  # the sandbox's; empty: Azure's


def signed_in(p: Params) -> SignedIn:
    """The credential ``p`` asks for, proven with a token for ARM; one line when none works."""
    source: str
    endpoints: dict[str, str] = {}
    credential: TokenCredential
    if p.sandbox:
        credential, endpoints, source = _sandbox_credential(p)
        if p.device_code:  # the sandbox has no browser sign-in to rehearse
            source += " (device_code applies to real Azure only)"
    elif p.device_code:
        tenant = os.environ.get("AZURE_TENANT_ID") or "organizations"
        credential = DeviceCodeCredential(tenant_id=tenant, timeout=600)
        source = "a device code"
    else:
        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        source = "DefaultAzureCredential"
    credential = KeptTokens(credential)
    try:
        token = credential.get_token(ARM_SCOPE)
    except CredentialUnavailableError as e:
        raise MissingCredentials(
            f"no Azure sign-in worked (tried {_attempts(e.message)})", _SIGN_IN_HOW
        ) from None
    except ClientAuthenticationError as e:
        message = one_line(e.message)
        if p.sandbox or "AADSTS" in message:  # a credential was there, and was refused
            raise AuthenticationFailed(
                f"Microsoft Entra ID refused the sign-in with {source}: "
                f"{message.split('Trace ID')[0].strip()}"
            ) from None
        raise MissingCredentials(
            f"no Azure sign-in worked (tried {_attempts(e.message)})", _SIGN_IN_HOW
        ) from None
    claims = _claims(token.token)
    tenant_id = str(claims.get("tid", ""))
    who = str(
        claims.get("upn") or claims.get("unique_name") or claims.get("appid") or "an identity"
    )
    kind = "service principal" if "appid" in claims and "upn" not in claims else "user"
    return SignedIn(credential, tenant_id, who, kind, source, endpoints)


def secret_works(
    authority: str | None, ca_file: str | None, tenant_id: str, app_id: str, secret: Secret
) -> bool:
    """True when Entra ID issues ``app_id`` a token for ``secret`` (client-credentials sign-in)."""
    kwargs: dict[str, Any] = {}
    if authority:
        kwargs = {"authority": authority, "disable_instance_discovery": True}
    if ca_file:
        kwargs["connection_verify"] = ca_file
    try:
        ClientSecretCredential(tenant_id, app_id, secret.reveal(), **kwargs).get_token(ARM_SCOPE)
    except ClientAuthenticationError:
        return False
    return True
