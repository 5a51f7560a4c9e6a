"""Docker Hub: BinderHub pushes with an access token, never the account's password.

What real Docker Hub does, and what this module does about it (the sandbox's
fake, ``sandbox/dockerhub``, lists the same behaviours with their sources):

- A password sign-in (``POST /v2/auth/token``) opens a session that may create
  personal access tokens (PATs); the session lasts 10 minutes, so a paused run
  signs in again when Hub says it expired.
- Two-factor accounts: the password alone is answered 401 with a
  ``login_2fa_token``; ``/v2/users/2fa-login`` with the code (``DOCKERHUB_OTP``
  or a hidden prompt) opens the session. The codes are TOTP (RFC 6238): each
  lives 30 seconds and is taken once, so a renewal never resends one: it asks
  for a fresh code, or, headless, stops with one line; the sign-in says before
  anything starts that a token is the way for a headless or long run.
  Single-sign-on accounts cannot use a password: they bring a PAT.
- A session opened with a PAT (or an organization access token, OAT) is refused
  on token management, so a token the user brings (``DOCKERHUB_TOKEN``, or any
  ``dckr_pat_``/``dckr_oat_`` secret) becomes BinderHub's credential as it is:
  nothing is created, and verification proves it can push.
- BinderHub creates a repository for every repository it builds, which an
  organization's plain members may not do: the role must be editor or owner.
  An organization access token's repository access covers existing
  repositories, and creating one takes the organization scope
  ``scope-repository-create``; no public source shows a push creating one with
  it, so the notebook calls that path unproven and offers the account's token.
- Each deployment (one ``output_dir``) labels its token with its own id and
  deletes only tokens it recorded, so staging and production sharing an
  account never revoke each other's token. A token is recorded as pending (its
  label) before the call that makes it, so one whose answer was lost is found by
  that label: the next creation deletes it (nobody holds its secret), as teardown does.
- User pods (the kubelet) pull with a second token, ``repo:read`` ("Repo
  Read-only": pull, never push), made by the same password session and written
  as ``jupyterhub.imagePullSecret``. A token cannot make tokens, so a run with
  a brought token reuses the read-only token a password run stored, or uses one
  the user brings as ``DOCKERHUB_PULL_TOKEN`` (a PAT with Repo Read-only, or an
  OAT with Image Pull on the organization's repositories).
- Docker Hub has no retention API: ``binderhub-registry prune`` deletes old tags, run by a
  CronJob the notebook writes. Deleting takes a third token, ``repo:admin`` ("Read, Write,
  Delete"; Hub refuses BinderHub's ``repo:write`` one a delete with 403 "access denied:
  insufficient scope"), labelled as the push token with `` prune``, written only in the
  CronJob's Secret manifest (``prune-secret.yaml``, 0600), never in BinderHub's values.
- ``pull_access = "none"``: nothing is made; the repositories must be public
  (a push creates them with the namespace's "Default repository privacy",
  Public on a new account), and anonymous pulls are limited per IP address.

In sandbox mode no real credential is read: the seeded account's password is
used, or ``BINDERHUB_REGISTRY_SANDBOX_DOCKERHUB_SECRET`` (and ``..._OTP``) to
rehearse another secret.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from .. import sandbox as sandbox_mod
from ..binderhub import DOCKER_HUB_AUTH_KEY, PullSecret, RegistryValues, ValuesFiles
from ..errors import (
    AuthenticationFailed,
    InvalidParameter,
    MissingCredentials,
    PermissionDenied,
    error_for_response,
    map_exceptions,
    requests_errors,
)
from ..params import text
from ..secrets import Secret, read_secret, write_private_file
from ..steps import Result
from ..usage import retention_text
from ..verify import VerifyHints
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
    same_time,
    validator,
)

__all__ = [
    "GUIDE",
    "KEY",
    "LABEL_LIMIT",
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "REAL_EXAMPLE",
    "HubConnection",
    "Params",
    "check_organization_role",
    "ensure_access_token",
    "ensure_prune_token",
    "ensure_pull_credential",
    "oat_new_repositories",
    "prune_cronjob",
    "prune_secret_manifest",
    "sign_in",
    "token_advice",
    "validate",
    "write_prune_job",
]

KEY = "dockerhub"
NAME = "Docker Hub"
NOTEBOOK = "02-docker-hub"
#: The environment variables sign-in reads for real (never parameters); shown by the form
SECRET_ENVIRONMENT = (
    ("DOCKERHUB_TOKEN", "a personal access token (or DOCKERHUB_PASSWORD), else a prompt"),
    ("DOCKERHUB_OTP", "the two-factor code, when the account has two-factor sign-in"),
    ("DOCKERHUB_PULL_TOKEN", "user pods' read-only token, when signing in with a token"),
)
HUB_API = "https://hub.docker.com"
REGISTRY = "https://registry-1.docker.io"
TOKEN_URL = "https://auth.docker.io/token?service=registry.docker.io"
SECRET_VARIABLES = ("DOCKERHUB_TOKEN", "DOCKERHUB_PASSWORD")
TOKEN_VARIABLE = "DOCKERHUB_TOKEN"  # always a token the user brings (PAT or OAT)
# a read-only token the user brings for user pods, when no password session can make one
PULL_TOKEN_VARIABLE = "DOCKERHUB_PULL_TOKEN"
OTP_VARIABLE = "DOCKERHUB_OTP"
SESSION_MINUTES = 10  # a Hub session's life: "This expires in 10 minutes" (AuthCreateTokenResponse)
# sandbox only: real variables are never read there, so a rehearsal cannot send a real secret
SANDBOX_SECRET_VARIABLE = "BINDERHUB_REGISTRY_SANDBOX_DOCKERHUB_SECRET"
SANDBOX_OTP_VARIABLE = "BINDERHUB_REGISTRY_SANDBOX_DOCKERHUB_OTP"
SANDBOX_PULL_TOKEN_VARIABLE = "BINDERHUB_REGISTRY_SANDBOX_DOCKERHUB_PULL_TOKEN"
LABEL_LIMIT = 100  # Docker Hub's token_label maxLength (OpenAPI createAccessTokenRequest)
DEPLOYMENT_ID_LENGTH = 8  # hex digits of the deployment id in the label
#: The record kind of a token made but not yet written to secret.yaml (see ensure_access_token).
PENDING = "pending_token"
#: The same for user pods' read-only token (see ensure_pull_credential).
PULL_PENDING = "pending_pull_token"
PULL_LABEL_SUFFIX = " pull"  # the read-only token's label: the push token's and this
PRUNE_LABEL_SUFFIX = " prune"  # the prune job's token's label: the push token's and this
#: The record kind of the prune token made but not yet written to its Secret manifest.
PRUNE_PENDING = "pending_prune_token"
#: Docker's "Docker Hub pull usage and limits" (docs.docker.com/docker-hub/usage/pulls/).
PULL_LIMITS = (
    "anonymous pulls are limited to 100 per 6 hours per IPv4 address or IPv6 /64 subnet "
    "(a Personal account's pulls to 200; Pro, Team and Business are unlimited), and every "
    "user pod's pull on a node counts against that node's address"
)

_DOCKER_ID = r"[a-z0-9]{4,30}"
PARAMETERS = (
    text("username", _DOCKER_ID, "must be a Docker ID: 4 to 30 lowercase letters or digits"),
    text(
        "organization",
        _DOCKER_ID,
        "must be a Docker Hub organization name: 4 to 30 lowercase letters or digits",
        optional=True,
    ),
    *COMMON_PARAMETERS,
)


@dataclass(frozen=True)
class Params(CommonParams):
    """Validated parameters of the Docker Hub notebook."""

    username: str
    organization: str

    @property
    def namespace(self) -> str:
        """Where images go: the organization, else the user's own namespace."""
        return self.organization or self.username

    @property
    def token_label(self) -> str:
        """The start of BinderHub's token labels here; each deployment appends its own id."""
        return f"BinderHub push {self.namespace}/{self.prefix}*"

    def deployment_label(self, deployment: str) -> str:
        """The label of one deployment's token: :attr:`token_label` and the deployment's id."""
        return f"{self.token_label} #{deployment}"

    def pull_label(self, deployment: str) -> str:
        """The label of one deployment's read-only token (user pods): its push token's label
        and a suffix, so neither is ever taken for the other."""
        return self.deployment_label(deployment) + PULL_LABEL_SUFFIX

    def prune_label(self, deployment: str) -> str:
        """The label of one deployment's prune token (the CronJob's): its push token's label
        and a suffix."""
        return self.deployment_label(deployment) + PRUNE_LABEL_SUFFIX


def _label_fits(p: Params) -> None:
    """The tokens' labels (namespace, prefix and a deployment id) must fit Docker Hub's
    100 characters."""
    longest = p.prune_label("0" * DEPLOYMENT_ID_LENGTH)
    if len(longest) > LABEL_LIMIT:
        raise InvalidParameter(
            "prefix",
            f"makes the access token's label {longest!r} {len(longest)} characters, over Docker "
            f"Hub's {LABEL_LIMIT}: shorten prefix",
            p.prefix,
        )


validate = validator(Params, PARAMETERS, _label_fits)


class _Hub:
    """Docker Hub's API over requests, with errors mapped to the package's error tree.

    ``renew`` signs in again (a session lasts 10 minutes): a 401 on a signed-in
    call renews the session once and repeats the call.
    """

    def __init__(self, base: str, ca_file: str | None) -> None:
        self.base = base.rstrip("/")
        self.http = requests.Session()
        if ca_file:  # the sandbox: trust its CA, ignore proxies
            self.http.verify = ca_file
            self.http.trust_env = False
        self.http.headers["User-Agent"] = "binderhub-registry"
        self.renew: Callable[[], str] | None = None

    def send(self, method: str, path: str, **kw: Any) -> requests.Response:
        """The raw answer (transport errors mapped)."""
        with map_exceptions(requests_errors(NAME)):
            return self.http.request(method, self.base + path, timeout=30, **kw)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON answer; an error status raises the mapped error."""
        r = self.send(method, path, **kw)
        if r.status_code == 401 and self.renew and "Authorization" in self.http.headers:
            self.authorize(self.renew())  # the session expired: sign in again, once
            r = self.send(method, path, **kw)
        if r.status_code >= 400:
            raise _error(r, method, path)
        return r.json() if r.content else None

    def authorize(self, session: str) -> None:
        """Use ``session`` as the bearer of the following calls."""
        self.http.headers["Authorization"] = f"Bearer {session}"


def _error(r: requests.Response, method: str, path: str) -> Exception:
    """The package's error for an error answer (401: AuthenticationFailed, 429/5xx: transient)."""
    return error_for_response(NAME, r, f"{_message(r)} ({method} {path})")


def _message(r: requests.Response) -> str:
    try:
        body = r.json()
        return str(body.get("detail") or body.get("message") or r.reason)
    except (ValueError, AttributeError):
        return str(r.reason)


@dataclass
class HubConnection(Connection):
    """A signed-in Docker Hub session and where BinderHub's registry lives.

    ``kind`` is how the user signed in: ``password`` (tokens can be made), or
    ``pat``/``oat`` (a token brought by the user, which becomes BinderHub's).
    """

    NOTEBOOK = NOTEBOOK
    HINTS = VerifyHints(
        credentials="create a new access token (rerun this notebook) and rewrite secret.yaml",
        push=(
            "the access token needs the repo:write scope (Read & Write), and to push to an "
            "organization the account must be its editor or owner: members cannot create "
            "repositories, and BinderHub creates one for every repository it builds; an "
            "organization access token needs Image Push (scope-image-push) on <org>/* and, to "
            "create a repository, the organization scope Repository Create "
            "(scope-repository-create), which no public source shows a push using"
        ),
    )
    retiring = "retiring_tokens"

    params: Params
    hub: _Hub
    registry_url: str | None  # None: Docker Hub itself
    token_url: str
    kind: str = "password"
    brought: Secret | None = field(default=None, repr=False)  # the PAT or OAT the user brought

    @property
    def push_username(self) -> str:
        """The username BinderHub pushes as: the organization for an OAT, else the user."""
        return self.params.organization if self.kind == "oat" else self.params.username

    def __post_init__(self) -> None:
        # records from before Record.deployment kept the id among what was created; Record
        # read it from there, and it is saved at the record's top level alone (one id)
        self.note("deployment", None)

    @property
    def deployment(self) -> str:
        """This deployment's id: the record's (:attr:`Record.deployment`), the one every
        label this deployment gives its tokens carries."""
        return self.record.deployment

    @property
    def token_label(self) -> str:
        """The label of this deployment's access token."""
        return self.params.deployment_label(self.deployment)

    def values(self) -> RegistryValues | None:
        """BinderHub's values for this namespace, pushing with the access token."""
        p, token = self.params, self.secret
        if token is None:
            return None
        image_prefix = f"{p.namespace}/{p.prefix}"
        registry: dict[str, Any] = {"url": REGISTRY, "token_url": TOKEN_URL}
        if self.registry_url:  # the sandbox: its registry stands in for registry-1.docker.io
            image_prefix = f"{self.registry_url.split('://', 1)[1]}/{image_prefix}"
            registry = {
                "url": self.registry_url,
                "token_url": self.token_url,
                "not_found_401": True,
            }
        return RegistryValues(
            image_prefix=image_prefix,
            username=self.push_username,
            password=token,
            registry_url=self.registry_url,
            docker_registry=registry,
        )

    def deletions(self) -> list[Deletion]:
        """The access tokens, push and read-only (and any a rotation left), the only things
        this notebook creates."""
        created = self.record.created

        def token(kind: str, label: str) -> Deletion:
            return Deletion(kind, label, lambda entry: self._delete_token(kind, entry))

        pull = created.get(PULL.recorded, {}).get("label", self.pull_label)
        push = created.get(PUSH.recorded, {}).get("label", self.token_label)
        prune = created.get(PRUNE.recorded, {}).get("label", self.prune_label)
        return [
            Deletion(self.retiring, "the replaced access tokens", self.retire),
            token(PENDING, "the access token of a stopped rotation"),
            token(PULL_PENDING, "the read-only token of a stopped rotation"),
            token(PULL.recorded, f"read-only token {pull!r}"),
            token(PUSH.recorded, f"access token {push!r}"),
            token(PRUNE.pending, "the prune token of a stopped run"),
            token(PRUNE.recorded, f"prune token {prune!r}"),
            Deletion(PRUNE_SECRET, "the prune token's Secret manifest", _remove_prune_job),
            Deletion(PRUNE_JOB, "the prune CronJob's manifest", _remove_prune_job),
        ]

    def recorded_tokens(self) -> list[tuple[str, dict[str, Any]]]:
        """Every token the record names by uuid, as (record kind, what it recorded): what a run
        may delete (a creation whose answer was lost has no uuid: it is found by its label)."""
        created = self.record.created
        found = [(kind, created[kind]) for kind in TOKEN_KINDS if _uuid(created.get(kind))]
        return found + [(self.retiring, {"uuid": u}) for u in created.get(self.retiring, [])]

    def live_token(self, kind: str, recorded: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded token as Docker Hub shows it now (None: gone), proven this
        deployment's (:func:`_not_ours`); a token that is not raises one line naming both."""
        uuid = str(recorded.get("uuid", ""))
        live: dict[str, Any] | None = if_present(self.hub.call, "GET", f"/v2/access-tokens/{uuid}")
        if live is None:
            return None
        problem = _not_ours(self, kind, recorded, live)
        if problem:
            raise PermissionDenied(problem)
        return live

    def check_ours(self) -> None:
        """Before deleting anything: every token the record names is gone or this
        deployment's, or one line names the recorded and the live one and nothing is deleted."""
        for kind, recorded in self.recorded_tokens():
            self.live_token(kind, recorded)

    @property
    def pull_label(self) -> str:
        """The label of this deployment's read-only token (user pods)."""
        return self.params.pull_label(self.deployment)

    @property
    def prune_label(self) -> str:
        """The label of this deployment's prune token (the CronJob's, Read, Write, Delete)."""
        return self.params.prune_label(self.deployment)

    # Overrides Connection.write_values: a token becomes the recorded one only once secret.yaml
    # holds it (a rerun reuses the recorded token while the stored secret works).
    def write_values(self) -> Result[ValuesFiles | None]:
        """Write the values; then the tokens they hold become the recorded ones.

        Only then: a rerun reuses a recorded token while the stored secret works, so it
        must be the token secret.yaml holds (see :func:`ensure_access_token`).
        """
        result = super().write_values()
        if result.value is not None:
            pull = self.pull_secret if self.params.pull_access == "secret" else None
            _promote(self, PUSH, self.secret)
            _promote(self, PULL, pull.password if pull else None)
        return result

    # Overrides Connection.finish_rotation: a brought token's session may not delete tokens
    # (Docker Hub answers 403), so what is retiring waits for a run signed in with the password.
    async def finish_rotation(self) -> Result[None]:
        """As the contract's, but only when signed in with the password: Docker Hub lets no
        token's session manage tokens (403), so a run with a brought token leaves what is
        retiring recorded for a later password run (or teardown) to remove."""
        retiring = self.record.created.get(self.retiring)
        if self.kind != "password" and retiring and not self.params.teardown:
            return Result(
                None,
                "skipped",
                f"{len(retiring)} replaced access token(s) stay recorded: a token's session may "
                "not delete tokens; a run signed in with the password removes them",
            )
        return await super().finish_rotation()

    def retire(self, retiring: list[Any]) -> None:
        """Delete the access tokens a rotation (or a lost secret) replaced: each one proven
        this deployment's first, so a foreign one deletes none."""
        entries = [{"uuid": uuid} for uuid in retiring]
        for entry in entries:
            self.live_token(self.retiring, entry)
        for entry in entries:
            self._delete_token(self.retiring, entry)

    def _delete_token(self, kind: str, recorded: dict[str, Any]) -> None:
        """Delete a recorded token, once Docker Hub shows it is this deployment's; one asked
        for whose answer was lost (no uuid): those with its label that no record names."""
        if not _uuid(recorded):
            named = {entry["uuid"] for _, entry in self.recorded_tokens()}
            for token in _tokens(self):
                if token.get("token_label") == recorded.get("label") and token["uuid"] not in named:
                    self._delete_token(kind, token)
            return
        if self.live_token(kind, recorded) is not None:  # already gone is what we wanted
            if_present(self.hub.call, "DELETE", f"/v2/access-tokens/{recorded['uuid']}")


def _token_kind(secret: Secret, source: str) -> str:
    """``pat``, ``oat`` or ``password``: Docker's tokens say what they are in their prefix."""
    value = secret.reveal()
    if value.startswith("dckr_oat_"):
        return "oat"
    if value.startswith("dckr_pat_") or source == TOKEN_VARIABLE:
        return "pat"
    return "password"


def token_advice(p: Params) -> str:
    """The one line a two-factor sign-in prints before anything starts: a session lasts 10
    minutes and each renewal takes a fresh one-time code, so a token is the way for a run
    that is headless or longer than a session."""
    variable = SANDBOX_SECRET_VARIABLE if p.sandbox else TOKEN_VARIABLE
    return (
        f"a two-factor session lasts {SESSION_MINUTES} minutes and Docker Hub takes each "
        "one-time code once, so renewing it needs a fresh code from you: for a headless run, "
        "or one longer than that, a token is the way, a personal access token (an "
        f"organization access token for an organization) in {variable}"
    )


def _digest_code(code: Secret) -> str:
    return hashlib.sha256(code.reveal().encode()).hexdigest()


@dataclass
class _SignIn:
    """How this run signs in, again when Docker Hub says the session expired (10 minutes).

    A one-time code is never sent twice (Docker Hub's codes are TOTP, RFC 6238: each lives
    30 seconds and is taken once): a renewal asks for a fresh one, from the variable if it
    now holds a new code, else at a hidden prompt; a headless run, which cannot ask, stops
    with one line saying a token is the way.
    """

    hub: _Hub
    p: Params
    identifier: str
    secret: Secret = field(repr=False)
    source: str
    two_factor: bool = False  # the account asked for a second factor
    sent: set[str] = field(default_factory=set)  # digests of the codes sent (never the codes)

    def open(self, renewal: bool = False) -> str:
        """A Hub session (bearer); two-factor handled here."""
        hub, identifier, secret = self.hub, self.identifier, self.secret
        answer = hub.send(
            "POST", "/v2/auth/token", json={"identifier": identifier, "secret": secret.reveal()}
        )
        if answer.ok:
            return str(answer.json()["access_token"])
        if answer.status_code != 401:
            raise _error(answer, "POST", "/v2/auth/token")  # 429 and 5xx: retried by the runner
        pending = _pending_2fa(answer)
        if pending is None and _token_kind(secret, self.source) == "password":
            # two-factor accounts are told so by the (deprecated) login route, whatever this says
            login = hub.send(
                "POST",
                "/v2/users/login",
                json={"username": identifier, "password": secret.reveal()},
            )
            pending = _pending_2fa(login)
        if pending is not None:
            self.two_factor = True
            code = self._code(renewal)
            self.sent.add(_digest_code(code))
            done = hub.send(
                "POST",
                "/v2/users/2fa-login",
                json={"login_2fa_token": pending, "code": code.reveal()},
            )
            if not done.ok:
                raise AuthenticationFailed(
                    f"Docker Hub refused the two-factor code for {identifier!r}: codes live 30 "
                    "seconds and each is taken once, so use a fresh one, or bring a personal "
                    f"access token as {TOKEN_VARIABLE}"
                )
            return str(done.json()["token"])
        variable = (
            SANDBOX_SECRET_VARIABLE if self.p.sandbox else "DOCKERHUB_TOKEN or DOCKERHUB_PASSWORD"
        )
        raise AuthenticationFailed(
            f"Docker Hub refused user {identifier!r} with the secret from {self.source}: check "
            f"{variable} (accounts with single sign-on need a personal access token)"
        )

    def _code(self, renewal: bool) -> Secret:
        """The two-factor code: the variable's, else a hidden prompt; never one sent before."""
        variable = SANDBOX_OTP_VARIABLE if self.p.sandbox else OTP_VARIABLE
        brought = os.environ.get(variable, "")
        if brought and _digest_code(Secret(brought)) not in self.sent:
            return Secret(brought)
        if not renewal:
            return read_secret(
                (variable,),
                f"Docker Hub two-factor code for {self.identifier} (or bring a personal access "
                f"token as {SANDBOX_SECRET_VARIABLE if self.p.sandbox else TOKEN_VARIABLE})",
            )
        what = (
            f"a fresh Docker Hub two-factor code for {self.identifier} (the "
            f"{SESSION_MINUTES}-minute session expired and the code it was opened with is spent)"
        )
        try:
            typed = getpass.getpass(f"{what}: ")
        except Exception:  # headless kernels have no stdin: StdinNotImplementedError, EOFError
            typed = ""
        if not typed:
            raise MissingCredentials(
                what, "a headless run cannot ask for one: " + token_advice(self.p)
            )
        code = Secret(typed)
        if _digest_code(code) in self.sent:
            raise AuthenticationFailed(
                f"that two-factor code for {self.identifier!r} was sent already and Docker Hub "
                "takes each code once: rerun this cell with the next code your app shows"
            )
        return code


def _pending_2fa(answer: requests.Response) -> str | None:
    if answer.status_code != 401:
        return None
    try:
        token = answer.json().get("login_2fa_token")
    except (ValueError, AttributeError):
        return None
    return str(token) if token else None


def _secret_for(p: Params, seeded: dict[str, str]) -> tuple[Secret, str]:
    """The secret and where it came from; in the sandbox never a real variable."""
    if p.sandbox:
        if os.environ.get(SANDBOX_SECRET_VARIABLE):
            return Secret(os.environ[SANDBOX_SECRET_VARIABLE]), SANDBOX_SECRET_VARIABLE
        if seeded.get("username") == p.username:
            return Secret(seeded["password"]), "the sandbox's seeded password"
        what = f"sandbox secret for {p.username}"
        return read_secret((SANDBOX_SECRET_VARIABLE,), what), "the prompt"
    secret = read_secret(
        SECRET_VARIABLES,
        f"Docker Hub password or personal access token for {p.username}",
    )
    return secret, next((v for v in SECRET_VARIABLES if os.environ.get(v)), "the prompt")


def sign_in(p: Params) -> Result[HubConnection]:
    """Sign in to Docker Hub (or the sandbox's): password (2FA too) or a token brought as is."""
    if p.sandbox:
        box = sandbox_mod.ensure()
        api, ca_file = box.url + "/dockerhub", box.ca_file
        registry_url: str | None = box.registries["dockerhub"]
        token_url = f"{box.url}/dockerhub/token?service=registry.docker.io"
        seeded = box.credentials("dockerhub")
    else:
        api, ca_file, registry_url, token_url, seeded = HUB_API, None, None, TOKEN_URL, {}
    secret, source = _secret_for(p, seeded)
    kind = _token_kind(secret, source)
    if kind == "oat" and not p.organization:
        raise InvalidParameter(
            "organization",
            "must name the organization of the organization access token you brought",
            "",
        )
    identifier = p.organization if kind == "oat" else p.username
    hub = _Hub(api, ca_file)
    signing = _SignIn(hub, p, identifier, secret, source)
    hub.authorize(signing.open())
    hub.renew = lambda: signing.open(renewal=True)
    conn = HubConnection(
        params=p,
        record=Record(p.output_dir, KEY),
        ca_file=ca_file,
        hub=hub,
        registry_url=registry_url,
        token_url=token_url,
        kind=kind,
        brought=None if kind == "password" else secret,
    )
    where = "the sandbox" if p.sandbox else "hub.docker.com"
    what = {"password": source, "pat": "a personal access token", "oat": "an organization token"}
    detail = f"signed in to {where} as {identifier} with {what[kind]}"
    if kind != "password":
        detail += f" from {source}"
    if signing.two_factor:
        detail += " and a two-factor code; " + token_advice(p)
    return Result(conn, "done", detail)


def check_organization_role(conn: HubConnection) -> Result[None]:
    """When pushing to an organization, check the user may create repositories in it.

    BinderHub pushes a new repository for every repository it builds: that takes
    the editor or owner role; a plain member may not create repositories.
    """
    p = conn.params
    org = p.organization
    if not org:
        return Result(None, "skipped", f"no organization: images go to {p.username}/")
    if conn.kind == "oat":
        return Result(None, "skipped", oat_new_repositories(org))
    if conn.kind != "password":
        return Result(
            None,
            "skipped",
            "Docker Hub shows no roles to a personal access token's session: verify's push "
            f"checks the token may push to {org}/, and only an Editor's or Owner's may create "
            "the new repositories BinderHub pushes",
        )

    def members(**extra: str) -> set[str]:
        found = conn.hub.call(
            "GET", f"/v2/orgs/{org}/members", params={"search": p.username} | extra
        )
        return {m.get("username") for m in found.get("results", [])}

    try:
        listed = if_present(members)
    except PermissionDenied:  # a non-member may not list them
        listed = set()
    if listed is None:
        raise PermissionDenied(
            f"organization {org!r} does not exist on Docker Hub: create it on "
            "hub.docker.com (organizations cannot be created by API) or leave "
            "organization empty"
        )
    if p.username not in listed:
        raise PermissionDenied(
            f"{p.username} is not a member of organization {org!r}: ask an owner to add it "
            "with the Editor role, or leave organization empty"
        )
    if p.username in members(role="owner"):
        return Result(
            None,
            "done",
            f"{p.username} is an owner of {org}: it may create repositories, and this run's "
            "personal access token is the proven way (that an organization access token's push "
            "creates them is unproven: see the notebook)",
        )
    if p.username in members(role="editor"):
        return Result(
            None, "done", f"{p.username} is an editor of {org}: it may create repositories"
        )
    raise PermissionDenied(
        f"{p.username} is a plain member of {org!r} and members cannot create repositories, "
        f"which BinderHub does for every repository it builds: ask an owner of {org} for the "
        "Editor role"
    )


def oat_new_repositories(org: str) -> str:
    """What is known of an organization access token and the new repositories BinderHub
    pushes, in one line (the evidence: the fake's table, ``sandbox/dockerhub``)."""
    return (
        "BinderHub pushes a new repository for every repository it builds, and Docker documents "
        f"that an organization access token's repository access ({org}/* included) covers "
        "existing repositories and that creating one takes the organization scope Repository "
        "Create (scope-repository-create); no public source shows a push creating a repository "
        "with one, so this is unproven: verify's push proves only the check repository, and "
        f"the proven way is an account's token, the password or a personal access token of an "
        f"Editor or Owner of {org}"
    )


def _tokens(conn: HubConnection) -> list[dict[str, Any]]:
    tokens: list[dict[str, Any]] = []
    page = 1
    while True:
        body = conn.hub.call("GET", "/v2/access-tokens", params={"page": page, "page_size": 100})
        tokens += body.get("results", [])
        if not body.get("next"):
            return tokens
        page += 1


def _still_works(conn: HubConnection, secret: Secret, identifier: str = "") -> bool:
    """Whether Docker Hub accepts ``secret`` (401: no; an outage raises, to be retried)."""
    answer = _Hub(conn.hub.base, conn.ca_file).send(
        "POST",
        "/v2/auth/token",
        json={"identifier": identifier or conn.params.username, "secret": secret.reveal()},
    )
    if answer.status_code == 401:
        return False
    if not answer.ok:
        raise _error(answer, "POST", "/v2/auth/token")
    return True


def _digest(token: Secret) -> str:
    """A digest of ``token`` (never the token): tells a rerun whether secret.yaml holds it."""
    return hashlib.sha256(token.reveal().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Slot:
    """One of the two tokens this notebook makes: where the record keeps it, its scope."""

    recorded: str  # the record kind of the token secret.yaml holds
    pending: str  # the record kind of one made but not yet written
    scope: str  # Docker Hub's scope: repo:write pushes (and pulls), repo:read only pulls
    what: str  # in messages


PUSH = _Slot("access_token", PENDING, "repo:write", "access token")
PULL = _Slot("pull_token", PULL_PENDING, "repo:read", "read-only token")
#: The prune CronJob's token: repo:admin is "Read, Write, Delete", the only personal access token
#: permission that deletes (docker/docs access-tokens/reference.md; the scope strings: the API
#: description's createAccessTokenRequest); written only in its Secret manifest.
PRUNE = _Slot("prune_token", PRUNE_PENDING, "repo:admin", "prune token")
#: The record kinds holding one token each (the retiring list holds uuids).
TOKEN_KINDS = (
    PUSH.recorded,
    PUSH.pending,
    PULL.recorded,
    PULL.pending,
    PRUNE.recorded,
    PRUNE.pending,
)


def _uuid(entry: Any) -> str | None:
    """The uuid of a recorded token; None for a pending mark whose answer was lost."""
    return str(entry["uuid"]) if isinstance(entry, dict) and entry.get("uuid") else None


def _recorded(token: dict[str, Any]) -> dict[str, Any]:
    """What the record keeps of a token: its uuid, label and Docker Hub's creation time."""
    kept = {"uuid": token["uuid"], "label": token["label"]}
    if token.get("created_at"):
        kept["created_at"] = token["created_at"]
    return kept


def _not_ours(
    conn: HubConnection, kind: str, recorded: dict[str, Any], live: dict[str, Any]
) -> str:
    """Why the live token is not the one this deployment recorded (empty: it is).

    The mark is the label, which Docker Hub keeps (``token_label``, the API description's
    accessToken; tests/data/dockerhub/hub-api.yaml): this deployment's labels end in
    ``#<deployment id>`` (push), ``#<deployment id> pull`` (read-only) or
    ``#<deployment id> prune`` (the prune job's). Where the record
    kept a label and a creation time, the live ones must be those too. A token labelled
    before deployment ids (issue 8) carries no mark: it is never deleted.
    """
    label = str(live.get("token_label") or "")
    problems = []
    if not _marked(conn.deployment).fullmatch(label):
        problems.append(f"its label lacks this deployment's id #{conn.deployment}")
    if recorded.get("label") and label != recorded["label"]:
        problems.append("another label")
    created = recorded.get("created_at")
    if created and not same_time(created, live.get("created_at")):
        problems.append("another creation time")
    if not problems:
        return ""
    was = f"{recorded['label']!r}" if recorded.get("label") else "(no label recorded)"
    return (
        f"{kind} {recorded.get('uuid')} is recorded as {was} (created "
        f"{created or 'unrecorded'}) but Docker Hub labels it {label!r} (created "
        f"{live.get('created_at') or 'unknown'}): {'; '.join(problems)}, so "
        "it is not this deployment's and nothing is deleted; revoke it on hub.docker.com "
        f"yourself if it is yours, and remove it from {conn.record.path}"
    )


def _marked(deployment: str) -> re.Pattern[str]:
    """The labels this deployment gives its tokens (:meth:`Params.deployment_label`)."""
    return re.compile(
        rf"BinderHub push \S+ #{re.escape(deployment)}"
        rf"(?:{re.escape(PULL_LABEL_SUFFIX)}|{re.escape(PRUNE_LABEL_SUFFIX)})?"
    )


def _promote(conn: HubConnection, slot: _Slot, written: Secret | None) -> None:
    """After secret.yaml was written: its pending token, if it holds it, is the recorded one.

    Only when secret.yaml holds the pending token itself: a brought token written instead
    leaves it pending (a later password run settles it, teardown deletes it).
    """
    pending = conn.record.created.get(slot.pending)
    if pending and written is not None and _digest(written) == pending.get("digest"):
        conn.note(slot.recorded, _recorded(pending))
        conn.note(slot.pending, None)  # after: a crash in between leaves it recorded


def _settle_pending(conn: HubConnection, stored: Secret | None, slot: _Slot = PUSH) -> None:
    """Settle the token a stopped rotation made and recorded as pending.

    Written to secret.yaml (its digest matches the stored secret's; the run stopped before
    the write step recorded it): it is the recorded token now. Never written: nobody holds
    its secret, so it is retired, and the recorded token, which secret.yaml still holds, is
    reused and kept. Each change is recorded before the pending one is forgotten, so no
    token this notebook made is ever forgotten before it is deleted. One whose answer was
    lost (no uuid) stays pending: the next creation deletes it by its label, as teardown does.
    """
    pending = conn.record.created.get(slot.pending) or {}
    uuid = _uuid(pending)
    if uuid is None:
        return
    if stored is not None and _digest(stored) == pending.get("digest"):
        conn.note(slot.recorded, _recorded(pending))
    else:
        conn.retire_later(uuid)
    conn.note(slot.pending, None)


def _use_brought_token(conn: HubConnection) -> Result[Secret | None]:
    """A token the user brought is BinderHub's credential as it is; nothing is created."""
    p = conn.params
    what = "personal" if conn.kind == "pat" else "organization"
    if p.rotate:
        raise PermissionDenied(
            f"rotate needs a password sign-in: Docker Hub does not let a {what} access token "
            "manage tokens; create a new one on hub.docker.com and rerun with it"
        )
    conn.plan(f"give BinderHub your {what} access token as it is")
    conn.secret = conn.brought
    return Result(
        conn.secret,
        "reused",
        f"your {what} access token is BinderHub's credential as it is: nothing is created "
        "(Docker Hub does not let a token's session make tokens); verify checks it can push",
    )


def _ensure_token(
    conn: HubConnection, slot: _Slot, label: str, stored: Secret | None
) -> Result[Secret | None]:
    """Reuse the recorded ``slot`` token while ``stored`` (its secret in secret.yaml) works;
    else create one with ``label``. The machinery both tokens share (see
    :func:`ensure_access_token`); returns the secret to write (a dry run stops at its plan)."""
    p = conn.params
    tokens = _tokens(conn)
    live = {t["uuid"]: t for t in tokens}
    for kind, entry in conn.recorded_tokens():  # before any change: only ours is deleted
        if entry.get("uuid") in live:
            problem = _not_ours(conn, kind, entry, live[entry["uuid"]])
            if problem:
                raise PermissionDenied(problem)
    _settle_pending(conn, stored, slot)
    recorded = conn.record.created.get(slot.recorded, {}).get("uuid")
    retiring = list(conn.record.created.get(conn.retiring, []))
    current = next((t for t in tokens if t["uuid"] == recorded), None)
    works = bool(
        current
        and current.get("is_active")
        and slot.scope in current.get("scopes", [])
        and stored
        and _still_works(conn, stored)
    )
    if works and not p.rotate:
        # a rotation stopped before its new token was written: this one is in use still
        conn.unretire(recorded)
        entry = conn.record.created[slot.recorded]
        if current and current.get("created_at") and not entry.get("created_at"):
            # recorded before creation times were kept, and proven ours above: keep Hub's
            conn.note(slot.recorded, entry | {"created_at": current["created_at"]})
        return Result(
            stored, "reused", f"{slot.what} {label!r} ({slot.scope}), stored secret still works"
        )
    lost = [  # made by this deployment, answer lost before it was recorded: nobody has its secret
        t["uuid"]
        for t in tokens
        if t.get("token_label") == label and t["uuid"] != recorded and t["uuid"] not in retiring
    ]
    if current:  # deleted once the new one is written and verified (a dry run counts it too)
        conn.retire_later(current["uuid"])
    what = "rotate: create a new" if works else "create"
    extra = f", after deleting {len(lost)} never delivered" if lost else ""

    def make() -> dict[str, Any]:
        for uuid in lost:
            conn._delete_token("a token whose creation answer was lost", live[uuid])
        made: dict[str, Any] = conn.hub.call(
            "POST", "/v2/access-tokens", json={"token_label": label, "scopes": [slot.scope]}
        )
        return made

    # pending until secret.yaml holds it (_promote); marked before the call with its label,
    # which carries the deployment id: a lost answer is found by it (``lost`` above)
    created = conn.create(
        slot.pending,
        f"{what} {slot.what} {label!r} with {slot.scope}{extra}",
        make,
        pending={"label": label},
        keep=lambda made: (
            _recorded(made | {"label": label}) | {"digest": _digest(Secret(made["token"]))}
        ),
    )
    secret = Secret(created["token"])
    detail = f"{slot.what} {label!r} with {slot.scope}"
    if current and not works:
        detail += ", replacing 1 whose secret was lost (deleted once this one verifies)"
    elif works:
        detail += "; the old token is deleted once this one verifies"
    return Result(secret, "created", detail)


@creates
def ensure_access_token(conn: HubConnection) -> Result[Secret | None]:
    """Reuse this deployment's access token while the stored secret works; else create one.

    The token has ``repo:write`` and this deployment's label (see
    :meth:`HubConnection.token_label`). Only tokens this deployment made are
    touched: one with its label whose creation answer was lost (never seen by
    anyone) is deleted at once; the recorded one, whose secret may still be
    deployed, is deleted only after the new one is written and verified (by
    ``finish_rotation``), as is the old one with ``rotate``. Tokens of other
    deployments, even with the same namespace and prefix, are left alone.

    A new token is recorded as pending (with a digest of its secret) and becomes the
    recorded one once secret.yaml holds it (``write_values``): Docker Hub accepts any
    active token, so the recorded token must be the stored one for "the stored secret
    still works" to mean "the recorded token is BinderHub's". A dry run changes the record
    in memory only, so its last step says what the real run would remove.
    """
    if conn.kind != "password":
        return _use_brought_token(conn)
    p = conn.params
    result = _ensure_token(conn, PUSH, conn.token_label, conn.stored_password(p.username))
    conn.secret = result.value
    return result


def _pull_secret(conn: HubConnection, username: str, password: Secret) -> PullSecret:
    """User pods' credential, keyed as containerd looks it up: Docker Hub's v1 key (z2jh's
    default), or in the sandbox its registry's host:port, as in image_prefix."""
    key = conn.registry_url.split("://", 1)[1] if conn.registry_url else DOCKER_HUB_AUTH_KEY
    return PullSecret(registry=key, username=username, password=password)


def _pull_without_password(conn: HubConnection) -> Result[PullSecret | None]:
    """Signed in with a token, which cannot make tokens: reuse the read-only token a password
    run stored, else the one the user brings; else say what to do, in one line."""
    p = conn.params
    stored = conn.stored_pull_password(p.username)
    if conn.record.created.get(PULL.recorded) and stored and _still_works(conn, stored):
        conn.pull_secret = _pull_secret(conn, p.username, stored)
        label = conn.record.created[PULL.recorded].get("label", conn.pull_label)
        return Result(
            conn.pull_secret, "reused", f"read-only token {label!r}, stored secret still works"
        )
    variable = SANDBOX_PULL_TOKEN_VARIABLE if p.sandbox else PULL_TOKEN_VARIABLE
    brought = os.environ.get(variable)
    if not brought:
        org = p.organization or "<organization>"
        password = "" if p.sandbox else " (DOCKERHUB_PASSWORD)"
        raise PermissionDenied(
            "user pods need a read-only token and Docker Hub lets no token's session make "
            f"one: rerun once signed in with the password{password}, or bring a personal "
            "access token with Repo Read-only (or an organization "
            f"access token with Image Pull on {org}'s repositories) as {variable}, or set "
            'pull_access = "none" if the repositories are public'
        )
    secret = Secret(brought)
    username = p.organization if secret.reveal().startswith("dckr_oat_") else p.username
    if not username:
        raise InvalidParameter(
            "organization",
            f"must name the organization of the organization access token in {variable}",
            "",
        )
    if not _still_works(conn, secret, username):
        raise AuthenticationFailed(
            f"Docker Hub refused the read-only token in {variable} for {username!r}: check it"
        )
    conn.plan(f"give user pods the read-only token in {variable}")
    conn.pull_secret = _pull_secret(conn, username, secret)
    return Result(
        conn.pull_secret,
        "reused",
        f"the token in {variable} is user pods' credential as it is (verify shows whether it "
        "is refused a push, as a read-only one is)",
    )


@creates
def ensure_pull_credential(conn: HubConnection) -> Result[PullSecret | None]:
    """User pods' pull-only credential: a ``repo:read`` personal access token.

    Docker Hub's "Repo Read-only" permission views and pulls, never pushes (Docker's
    "Access token reference"). The same password session that makes the push token makes
    it, labelled as the push token with a ``pull`` suffix, and it goes through the same
    machinery (:func:`_ensure_token`): reused while the stored pull password works, recorded
    as pending until secret.yaml holds it, replaced with ``rotate`` (the old one retiring
    with the push token's), deleted by teardown. ``pull_access = "node"`` never gets here
    (Docker Hub has no node identity: refused before any call); ``"none"`` makes nothing.
    """
    p = conn.params
    if p.pull_access == "none":
        # a read-only token an earlier run made is no longer written: it retires, so
        # finish_rotation deletes it once these values verify (teardown would too)
        for kind in (PULL.pending, PULL.recorded):
            uuid = _uuid(conn.record.created.get(kind))
            if uuid:  # one whose answer was lost stays pending: teardown finds it by label
                conn.retire_later(uuid)
                conn.note(kind, None)
        return Result(
            None,
            "skipped",
            "pull_access = none: no credential for user pods, so the repositories must be "
            "public (a push creates them with the namespace's Default repository privacy, "
            "Public unless changed in its Docker Hub settings), and " + PULL_LIMITS,
        )
    if conn.kind != "password":
        return _pull_without_password(conn)
    stored = conn.stored_pull_password(p.username)
    result = _ensure_token(conn, PULL, conn.pull_label, stored)
    assert result.value is not None  # a dry run stopped at its plan
    conn.pull_secret = _pull_secret(conn, p.username, result.value)
    return Result(conn.pull_secret, result.status, result.detail)


def _real_values(params: Any) -> RegistryValues:
    """The values of a real run with ``params`` (the docs' example): Docker Hub itself."""
    # values() reads only the parameters and what the steps found: no session is opened
    conn = HubConnection.__new__(HubConnection)
    conn.params, conn.secret = params, Secret("access-token")
    conn.registry_url, conn.token_url = None, TOKEN_URL
    values = conn.values()
    assert values is not None
    return values


#: The docs' real-mode example of this notebook's values.
REAL_EXAMPLE = RealExample(
    overrides={"username": "yourdockerid", "organization": "yourorg"},
    placeholders={"yourdockerid": "<DOCKER_ID>", "yourorg": "<ORGANIZATION>"},
    build=_real_values,
)


#: This registry on the docs' landing page: its row of the guide's table, its item of "Choose your
#: registry" and its column of the registry matrix (docs/_ext/guide.py renders them).
GUIDE = GuideEntry(
    section="2.2",
    title="Docker Hub",
    name="Docker Hub",
    choose=(
        "if your images may be public and you want the least set-up: a Docker ID is all it "
        "takes, no cloud account; mind its pull limits, which BinderHub's image check at every "
        "launch counts against."
    ),
    cost="free for public images; paid plans per seat [^hub-usage]",
    limits=(
        "pulls: 200 per 6 hours for a Personal account, 100 per 6 hours per IPv4 address or IPv6 "
        '/64 anonymously (user pods pull anonymously with `pull_access = "none"`), none on '
        "paid plans; 1 private repository on Personal [^hub-usage]"
    ),
    needs="a Docker ID (accounts and organizations cannot be made by API)",
    credential=(
        "an access token with `repo:write`, never the account password (a personal access token "
        "you bring is used as is; an organization access token too, though its push to new "
        "repositories is unproven)"
    ),
    pull_credential=(
        "a second access token, `repo:read` only (a brought token: `DOCKERHUB_PULL_TOKEN`)"
    ),
    rotation=(
        "`rotate = True`: a new token, verified, then the old one deleted; with `keep_replaced = "
        "True` the old one is kept until a run without it, after you deploy"
    ),
    expires="nothing unless you give the token an expiry on Docker Hub [^hub-pat]",
    notes={
        "hub-usage": (
            'Docker\'s ["Docker Hub pull usage and limits"]'
            "(https://docs.docker.com/docker-hub/usage/pulls/) as of docker/docs commit [000a96d]"
            "(https://github.com/docker/docs/commit/000a96d): per 6 hours. The hourly limits (10 "
            "anonymously, 100 for Personal) of docker/docs pull request [22134]"
            "(https://github.com/docker/docs/pull/22134) were announced for 2025 and later "
            "replaced by these."
        ),
        "hub-pat": (
            'Docker\'s ["Personal access tokens"]'
            "(https://docs.docker.com/security/for-developers/access-tokens/): an expiration "
            "date is optional."
        ),
    },
)


# --- keeping the registry small: Hub has no retention API ------------------------------------
#: The record kind of the prune CronJob manifest the notebook wrote (its path).
PRUNE_JOB = "prune_job"
PRUNE_JOB_FILE = "prune-cronjob.yaml"
#: The record kind of the prune token's Secret manifest (its path), and the file: the only
#: place the prune token's secret is written (0600), never config.yaml or secret.yaml.
PRUNE_SECRET = "prune_secret"
PRUNE_SECRET_FILE = "prune-secret.yaml"
PRUNE_SECRET_NAME = "binderhub-registry-prune"  # the Kubernetes Secret the CronJob reads


#: Once a day, at an hour nobody else picked (a CronJob's schedule, cron syntax).
DEFAULT_SCHEDULE = "23 4 * * *"
#: The repository (pyproject's [project.urls] Repository) and the git ref the job installs.
REPOSITORY = "https://github.com/binderhub-registry/binderhub-registry"
PRUNE_REF = "main"
#: What the job installs. Not on PyPI yet (README "Not released yet"), so the repository at a git
#: ref, as GitHub's source archive of it: pip builds it with setuptools and needs no git, which
#: the python image lacks (a ``git+https`` requirement would fail there). ``main`` until a
#: release exists; then pin ``binderhub-registry==<version>``.
PRUNE_PACKAGE = f"binderhub-registry @ {REPOSITORY}/archive/refs/heads/{PRUNE_REF}.tar.gz"


def prune_cronjob(
    namespace: str,
    name_prefix: str,
    days: int,
    *,
    username: str,
    secret_name: str = PRUNE_SECRET_NAME,
    schedule: str = DEFAULT_SCHEDULE,
    image: str = "python:3.12-slim",
    package: str = PRUNE_PACKAGE,
) -> dict[str, Any]:
    """A Kubernetes CronJob running ``binderhub-registry prune --apply`` (``prune.py``) on
    ``schedule``, the token from the Secret ``secret_name`` (key ``token``) as
    ``$DOCKERHUB_TOKEN``.

    The notebook writes that Secret (``prune-secret.yaml``, :func:`prune_secret_manifest`);
    by hand, ``kubectl create secret generic <secret_name> --from-literal=token=...``.
    ``concurrencyPolicy: Forbid`` keeps two runs from deleting at once."""
    command = (
        f"pip install --quiet '{package}' && binderhub-registry prune "
        f"--image-prefix {namespace}/{name_prefix} --days {days} --username {username} --apply"
    )
    token = {"secretKeyRef": {"name": secret_name, "key": "token"}}
    container = {
        "name": "prune",
        "image": image,
        "command": ["sh", "-c", command],
        "env": [{"name": TOKEN_VARIABLE, "valueFrom": token}],
    }
    job = {
        "backoffLimit": 2,
        "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "binderhub-registry-prune"},
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 1,
            "jobTemplate": {"spec": job},
        },
    }


def prune_secret_manifest(token: Secret, name: str = PRUNE_SECRET_NAME) -> str:
    """The Kubernetes Secret the CronJob reads its token from (``stringData.token``), as YAML:
    the one place the prune token's secret is written."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {"token": token.reveal()},
    }
    return yaml.safe_dump(secret, sort_keys=False)


def stored_prune_token(p: Params) -> Secret | None:
    """The token in ``output_dir/prune-secret.yaml`` (None: absent or not a Secret we wrote)."""
    try:
        found = yaml.safe_load((Path(p.output_dir) / PRUNE_SECRET_FILE).read_text())
        token = found["stringData"]["token"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None  # never echo the content
    return Secret(token) if isinstance(token, str) and token else None


def _prune_manifest(p: Params) -> str:
    job = prune_cronjob(p.namespace, p.prefix, p.retention_days, username=p.username)
    return yaml.safe_dump(job, sort_keys=False)


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _remove_prune_job(path: Any) -> None:
    """Teardown: remove a manifest this notebook wrote (what ``kubectl apply`` made of it is
    the cluster's: ``kubectl delete cronjob,secret binderhub-registry-prune``)."""
    Path(str(path)).unlink(missing_ok=True)


def _drop_prune_token(conn: HubConnection) -> Result[Secret | None]:
    """``retention_days = 0``: no job, so no prune token. A password session deletes the
    recorded one (proven this deployment's) and its Secret manifest now; a token's session may
    not delete tokens, so it retires for a password run (or teardown) to delete."""
    created = conn.record.created
    kinds = [k for k in (PRUNE.recorded, PRUNE.pending) if created.get(k)]
    if not kinds and not created.get(PRUNE_SECRET):
        return Result(None, "skipped", retention_text(0) + ": no prune token")
    labels = ", ".join(repr(created[k].get("label", conn.prune_label)) for k in kinds)
    conn.plan(f"delete prune token {labels or '(none left)'} and {PRUNE_SECRET_FILE}")
    for kind in kinds:
        if conn.kind == "password":
            conn._delete_token(kind, created[kind])
        elif _uuid(created[kind]):  # one whose answer was lost stays pending: found by label
            conn.retire_later(_uuid(created[kind]))
            continue
        conn.note(kind, None)
    secret_file = created.get(PRUNE_SECRET)
    if secret_file:
        Path(str(secret_file)).unlink(missing_ok=True)
        conn.note(PRUNE_SECRET, None)
    if not labels:
        return Result(None, "deleted", f"{retention_text(0)}: removed {secret_file}")
    how = "deleted" if conn.kind == "password" else "retired (a password run deletes it)"
    return Result(None, "deleted", f"{retention_text(0)}: prune token {labels} {how}")


@creates
def ensure_prune_token(conn: HubConnection) -> Result[Secret | None]:
    """The prune job's own token: ``repo:admin`` (Read, Write, Delete), written only in
    ``prune-secret.yaml`` (a Kubernetes Secret manifest, 0600) for the CronJob.

    BinderHub's token is ``repo:write`` and Docker Hub refuses it a tag delete (403
    "access denied: insufficient scope"), so the job needs its own; it is never in
    ``config.yaml`` or ``secret.yaml`` (BinderHub needs no delete right). It goes through the
    same machinery as the other two (:func:`_ensure_token`): labelled with this deployment's
    push label and `` prune``, marked pending before the call that makes it, reused while the
    stored secret works, replaced with ``rotate`` (the old one retiring with the others),
    deleted by teardown, and deleted when ``retention_days`` is 0.

    A session opened with a brought token may not make tokens: the step then says which token
    to put in the Secret by hand. Decided for organization access tokens: the job uses a
    personal access token of an owner or editor (a password run makes it), never an OAT:
    "organization access tokens only work with the namespace-scoped routes"
    (access-tokens/reference.md), and the one tag delete route a public source shows
    (hub-tool's ``DELETE /v2/repositories/...``) is not one (``prune`` refuses an OAT).
    """
    p = conn.params
    if p.retention_days == 0:
        return _drop_prune_token(conn)
    if conn.kind != "password":
        stored = stored_prune_token(p)
        recorded = conn.record.created.get(PRUNE.recorded)
        if recorded and stored and _still_works(conn, stored):
            return Result(
                stored, "reused", f"prune token {recorded.get('label')!r}, stored secret works"
            )
        return Result(
            None,
            "skipped",
            "a token's session may not make tokens: rerun signed in with the password to make "
            "the prune token, or create a personal access token with Read, Write, Delete on "
            f"hub.docker.com and put it in the Secret: kubectl create secret generic "
            f"{PRUNE_SECRET_NAME} --from-literal=token=... (not an organization access "
            "token: Docker Hub takes those on namespace-scoped routes only, and the tag "
            "delete prune uses is not one)",
        )
    result = _ensure_token(conn, PRUNE, conn.prune_label, stored_prune_token(p))
    secret = result.value
    assert secret is not None  # a dry run stopped at its plan
    path = Path(p.output_dir) / PRUNE_SECRET_FILE
    if result.status != "reused" or stored_prune_token(p) != secret:
        write_private_file(path, prune_secret_manifest(secret))
    conn.note(PRUNE_SECRET, str(path))
    _promote(conn, PRUNE, secret)  # the Secret manifest holds it: it is the recorded one
    detail = result.detail
    if result.status != "reused":
        detail += f"; written only in {path} (0600)"
    return Result(secret, result.status, detail)


@creates
def write_prune_job(conn: HubConnection) -> Result[str | None]:
    """Docker Hub has no retention policy and no API to set one: write a Kubernetes CronJob
    (``prune-cronjob.yaml`` in ``output_dir``) that runs ``binderhub-registry prune --apply``
    daily, deleting tags under the prefix not pulled for ``retention_days`` (never pulled: by
    push), with the prune token's Secret (``prune-secret.yaml``, :func:`ensure_prune_token`),
    and say how to run it by hand first. A rerun with the same file changes nothing."""
    p = conn.params
    if p.retention_days == 0:
        job = conn.record.created.get(PRUNE_JOB)
        if job and Path(str(job)).is_file():
            conn.plan(f"remove {job}: {retention_text(0)}")
            _remove_prune_job(job)
            conn.note(PRUNE_JOB, None)
            return Result(None, "deleted", f"{retention_text(0)}: removed {job}")
        return Result(None, "skipped", retention_text(0) + ": no prune job")
    rule = (
        f"{retention_text(p.retention_days)} from {p.namespace}/{p.prefix}* by "
        "binderhub-registry prune (Hub keeps each tag's last pull; no retention API)"
    )
    path = Path(p.output_dir) / PRUNE_JOB_FILE
    secret = conn.record.created.get(PRUNE_SECRET)
    apply = f"kubectl apply -f {secret} -f {path}" if secret else f"kubectl apply -f {path}"
    manifest = _prune_manifest(p)
    if path.is_file() and path.read_text() == manifest:
        conn.note(PRUNE_JOB, str(path))  # a rerun: the same job, nothing changes
        return Result(str(path), "done", f"{rule}; {path} unchanged ({apply})")
    conn.create(
        PRUNE_JOB,
        f"write {path}, a daily CronJob: {rule}",
        lambda: _write(path, manifest),
    )
    token = f"<the token in {secret}>" if secret else "<token with Read, Write, Delete>"
    command = (
        f"DOCKERHUB_TOKEN={token} binderhub-registry prune "
        f"--image-prefix {p.namespace}/{p.prefix} --days {p.retention_days} "
        f"--username {p.username}"
    )
    return Result(
        str(path),
        "done",
        f"{rule}; wrote {path}. Try it: {command} (shows, deletes nothing; --apply deletes); "
        f"then {apply}",
    )
