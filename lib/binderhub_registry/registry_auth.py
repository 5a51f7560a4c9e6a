"""A registry's token service as a verification meets it: tokens, and what a refusal means.

The transport (:mod:`.registry_http`) carries requests and hands back answers; what a
token service's 401, 403 or other answer means for the check that asked is said here,
once, in the provider's words (:class:`~.report.VerifyHints`). BinderHub's check
(:mod:`.binderhub_check`) and the push (:mod:`.push`, and the pull through it) get their
tokens from :func:`bearer_token`; :mod:`.verify` asks :func:`login_refused` whether a
failed check's cause is the credentials themselves. So one verification goes down
through these floors and comes back once.
"""

from __future__ import annotations

from .errors import CloudError, VerificationFailed
from .registry_http import RegistryHTTP, denied, origin, parse_challenge, url_concat
from .report import VerifyHints

__all__ = ["bearer_token", "login_refused"]


def bearer_token(
    http: RegistryHTTP, realm: str, args: dict[str, str], *, check: str, hints: VerifyHints
) -> str:
    """A bearer token from ``realm`` with ``http``'s Basic credentials; diagnoses name ``check``.

    ``realm`` is refused before anything is sent unless https (or ``insecure``), and is
    added to ``http.realms`` (the token services this verification used).
    """
    http.require_https(realm, check, "the token service")
    http.realms.append(realm)
    # no username: an anonymous client (a kubelet without a pull secret) sends no Basic
    r = http.get(url_concat(realm, args), auth=http.basic if http.username else None)
    if r.status_code == 401:
        raise VerificationFailed(
            check,
            f"{origin(realm)} refused user {http.username!r}: the password or access "
            f"token is wrong, revoked or expired; {hints.credentials}",
        )
    if r.status_code == 403 and denied(r):  # signed in, without the permission
        scope = args.get("scope", "")
        needs = hints.push if "push" in scope.rpartition(":")[2] else hints.pull
        raise VerificationFailed(
            check,
            f"{origin(realm)} accepted user {http.username!r} but denied {scope or 'a token'}"
            f" (denied: {denied(r)}): {needs}",
        )
    if r.status_code != 200:
        raise VerificationFailed(
            check,
            f"token request to {origin(realm)} answered HTTP {r.status_code}: "
            "check DockerRegistry.token_url points at the registry's token endpoint",
        )
    try:
        body = r.json()
        return str(body.get("token") or body["access_token"])
    except (ValueError, KeyError, AttributeError):
        raise VerificationFailed(
            check, f"{origin(realm)} did not return a token: check DockerRegistry.token_url"
        ) from None


def login_refused(http: RegistryHTTP, registry_url: str) -> bool:
    """Whether the registry refuses ``http``'s credentials themselves, as ``docker login`` sees it.

    docker login asks ``/v2/`` for its challenge, then the token service for a token
    without any scope: a token service answers 401 when the credentials are invalid
    (docker/distribution docs/spec/auth/jwt.md), while with a scope some (Harbor:
    src/core/service/token/creator.go) take refused credentials as anonymous and give a
    token without the actions, so the refusal comes later and reads as a missing right.
    False when the credentials are accepted or the answer says nothing (no challenge,
    a fault, another status): the caller's diagnosis then stands.
    """
    try:
        r = http.get(f"{registry_url}/v2/")  # no credentials: the registry's challenge
        if r.status_code != 401:
            return False
        scheme, params = parse_challenge(r.headers.get("www-authenticate", ""))
        if scheme == "basic":
            return http.get(f"{registry_url}/v2/", auth=http.basic).status_code == 401
        if scheme != "bearer" or not params.get("realm"):
            return False
        http.require_https(params["realm"], "login", "the token service")
        args = {"account": http.username}  # docker login's, with the challenge's service
        if params.get("service"):
            args["service"] = params["service"]
        return http.get(url_concat(params["realm"], args), auth=http.basic).status_code == 401
    except (CloudError, VerificationFailed):
        return False
