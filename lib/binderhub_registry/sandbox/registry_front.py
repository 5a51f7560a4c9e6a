"""Registry fronts: a cloud's registry auth in front of a real docker-registry process.

What every sandbox registry shares, so a cloud only configures it:

- :func:`parse_scopes`: the one reading of ``scope=repository:<name>:<actions>``
  (the argument repeats, one scope each; other resource types are skipped);
- :class:`Grant` and :data:`Checker`: the cloud's answer to Basic credentials,
  checked against its live state, and what they may do on a repository;
- :class:`TokenRealm`: the token endpoint (first ``service`` argument checked,
  Basic credentials checked, a token minted by :class:`~.registry.TokenIssuer`),
  worded by the cloud that mounts it;
- :class:`RegistryFront`: a listener of the app on its own port (so faults and
  the request log cover it), serving the realm at its path, the ``/v2/`` ping,
  and a streaming proxy to its docker-registry child (request and response
  bodies are streamed, chunked uploads included);
- the one record of pushes and pulls: the proxy notes each manifest PUT by tag
  docker-registry stored, GET by tag it answered, and DELETE it accepted, on the
  cloud's clock (``FrontConfig.clock``), in its process's
  :class:`~.registry.TagRecords` (``process.times``), which every fake's retention
  reads (docker-registry keeps no push or pull times).

Configurations (:class:`FrontConfig`):

=====================  =====================  ==============  =============================
registry               service                realm path      ``/v2/`` and Basic auth
=====================  =====================  ==============  =============================
ACR (``azure.acr``)    ``<name>.azurecr.io``  /oauth2/token   docker-registry's Bearer
                                                              challenge; Basic accepted on
                                                              every call, a wrong one gets
                                                              ``basic_refusal``; a repeated
                                                              ``service``: 400
Harbor (``harbor``)    ``harbor-registry``    /service/token  docker-registry's Bearer
                                                              challenge (``basic_ping=False``)
Artifact Registry      ``<region>-docker.     /v2/token       as Harbor, but ``/v2/``'s
(``google.cloud``)     pkg.dev``                              challenge names no service and
                       (any ``service``                       the realm ignores ``service``;
                       accepted)                              an access token accepted as
                                                              Bearer (keyless)
ECR (``ecr.cloud``)    ``ecr.amazonaws.com``  / (none: ECR    Basic challenge ``realm="https:
                                              has no token    //<host>/",service=...``;
                                              endpoint)       ``AWS`` and a live token on every
                                                              call, checked before
                                                              docker-registry (401, 403
                                                              DENIED, 404 NAME_UNKNOWN); a
                                                              stored manifest recorded in ECR
=====================  =====================  ==============  =============================

Docker Hub's front serves no realm of its own: its realm, a route of the Hub API, is a
:class:`TokenRealm` too (``realm_url``).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import re
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import Response as HttpResponse
from starlette.responses import StreamingResponse
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from .app import (
    ALL_METHODS,
    App,
    Listener,
    Request,
    Response,
    basic_auth,
    call_sync,
    json_response,
    read_request,
    to_http,
)
from .registry import RegistryProcess, TokenIssuer

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ACTIONS",
    "METHOD_ACTIONS",
    "Checker",
    "FrontConfig",
    "Grant",
    "RegistryFront",
    "TokenRealm",
    "granted_actions",
    "parse_scopes",
    "registry_error",
    "warm_up",
]

#: Every action a registry token can carry on a repository.
ACTIONS = frozenset({"pull", "push", "delete"})
# headers that belong to one hop, or that the front sets itself
_REQUEST_DROP = {"connection", "keep-alive", "transfer-encoding", "host", "authorization"}
_RESPONSE_DROP = {"connection", "keep-alive", "transfer-encoding"}


def parse_scopes(values: list[str]) -> list[tuple[str, set[str]]]:
    """``repository:<name>:<actions>`` scopes as (name, wanted actions), in order.

    The name may contain ``:`` (a registry host with a port), so the actions
    are what follows the last one; scopes of other types are skipped.
    """
    found = []
    for scope in values:
        kind, _, rest = scope.partition(":")
        name, _, wanted = rest.rpartition(":")
        if kind == "repository" and name:
            found.append((name, set(wanted.split(","))))
    return found


@dataclass(frozen=True)
class Grant:
    """Who signed in, and what they may do: ``allow(repository, wanted)`` -> granted actions."""

    subject: str
    allow: Callable[[str, set[str]], set[str]]


#: (username, password) -> the grant, or None when the credentials are wrong now.
Checker = Callable[[str, str], Grant | None]

#: What an anonymous caller gets where anonymous tokens are issued: nothing.
NOBODY = Grant("", lambda repository, wanted: set())


#: The action a registry call needs, by method (distribution's API; Harbor's v2auth alike).
METHOD_ACTIONS = {"POST": "push", "PATCH": "push", "PUT": "push", "GET": "pull", "HEAD": "pull"}


def granted_actions(
    authorization: str,
    repository: str,
    action: str,
    check: Checker,
    *,
    anonymous_tokens: bool = True,
) -> set[str] | None:
    """What the caller behind ``authorization`` may do on ``repository``, as a cloud's front
    tells before docker-registry does: Basic credentials through the cloud's live ``check``,
    a Bearer token by the access its claims carry (read unverified: docker-registry verifies
    it; this only words a refusal the cloud's own way). None when the front has nothing to
    say: no or wrong credentials, a token not of this realm, or (``anonymous_tokens`` False)
    a token without a subject.
    """
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "basic":
        creds = basic_auth(authorization)
        grant = check(*creds) if creds else None
        return None if grant is None else grant.allow(repository, {action})
    if scheme.lower() != "bearer":
        return None
    claims = token_claims(credential.strip())
    if claims is None or (not anonymous_tokens and not claims.get("sub")):
        return None
    return {
        str(a)
        for entry in claims.get("access") or []
        if isinstance(entry, dict) and entry.get("name") == repository
        for a in entry.get("actions") or []
    }


def token_claims(token: str) -> dict[str, Any] | None:
    """A JWT's payload, unverified (docker-registry verifies it; this only words a refusal)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def registry_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The registry API's error body (distribution's ``{"errors": [...]}``)."""
    return json_response(
        status, {"errors": [{"code": code, "message": message, "detail": None}]}, headers
    )


@dataclass(frozen=True)
class TokenRealm:
    """A registry's token endpoint: ``GET <realm>?service=...&scope=...`` with Basic auth.

    ``services`` are the accepted values of the *first* ``service`` argument
    (tokens are for ``services[0]``); the other fields word the cloud's answers.
    """

    services: tuple[str, ...]
    issuer: TokenIssuer
    check: Checker
    bad_service: Callable[[str], Response]
    bad_credentials: Callable[[], Response]
    anonymous: Grant | Callable[[], Response]  # a refusal where anonymous pull is off
    token_body: Callable[[str], dict[str, Any]]
    single_service: bool = False  # a repeated ``service`` is refused (ACR), not first-wins
    any_service: bool = False  # ``service`` is not checked at all (Artifact Registry)
    # signed in, but granted nothing of a repository's scope: this answer instead of a token
    # for nothing (Artifact Registry's 403 DENIED); None: the token, with no actions
    denied: Callable[[str, set[str]], Response] | None = None

    def answer(self, request: Request) -> Response:
        """The realm's answer (call it under the cloud's lock: it reads live state)."""
        # the first `service` counts: BinderHub appends service=container_registry to token_url's
        service = request.arg("service")
        if self.single_service and len(request.query.get("service", [])) > 1:
            return self.bad_service(",".join(request.query["service"]))
        if service not in self.services and not self.any_service:
            return self.bad_service(service)
        creds = request.basic_auth()
        if creds is None:
            if not isinstance(self.anonymous, Grant):
                return self.anonymous()
            grant = self.anonymous
        else:
            checked = self.check(*creds)
            if checked is None:
                return self.bad_credentials()
            grant = checked
        access = [
            {"type": "repository", "name": name, "actions": sorted(grant.allow(name, wanted))}
            for name, wanted in parse_scopes(request.query.get("scope", []))
        ]
        if creds is not None and self.denied is not None:
            for entry, (name, wanted) in zip(
                access, parse_scopes(request.query.get("scope", [])), strict=True
            ):
                if not entry["actions"]:
                    return self.denied(str(name), wanted)
        token = self.issuer.issue(self.services[0], grant.subject, access)
        return json_response(200, self.token_body(token))


@dataclass(frozen=True)
class FrontConfig:
    """What makes a front one cloud's registry (see the table in the module doc)."""

    name: str  # the docker-registry process's name (its config file is registry-<name>.yml)
    service: str  # the token audience docker-registry checks
    issuer: str  # the tokens' ``iss``
    realm_path: str  # the token endpoint on the front, e.g. /oauth2/token
    check: Checker
    lock: threading.RLock  # the cloud's: checks read its live state under it
    basic_ping: bool = True  # the front answers /v2/ with a Basic challenge (ACR)
    host_is_service: bool = False  # the realm also accepts the login server as service (ACR)
    unauthorized: str = "authentication required"  # message of a 401
    anonymous: str | None = None  # refusal message for anonymous tokens; None: token for nothing
    token_body: Callable[[str], dict[str, Any]] = lambda token: {"access_token": token}
    # the realm of the Basic challenge answering wrong Basic credentials (ACR); None: the front's
    basic_refusal: str | None = None
    single_service: bool = False  # the realm refuses a repeated ``service`` with 400 (ACR)
    # the cloud's own endpoints on the front, (method, path, handler), ahead of the realm's GET
    # (ACR: POST /oauth2/exchange and POST /oauth2/token, for `az acr login`)
    extra: tuple[tuple[str, str, Callable[[RegistryFront, Request], Response]], ...] = ()
    realm_url: str = ""  # the challenge's realm when served elsewhere (Docker Hub's auth.docker.io)
    basic_data_plane: bool = True  # Basic credentials accepted on /v2/ calls; False: dropped
    any_service: bool = False  # the realm ignores ``service`` (Artifact Registry)
    ping_service: bool = True  # the ``/v2/`` challenge names the service; False: realm only
    denied: Callable[[str, set[str]], Response] | None = None  # see TokenRealm.denied
    # the cloud's now (its sandbox clock, with what POST /_sandbox/clock added): pushes and
    # pulls are dated by it; read under ``lock``
    clock: Callable[[], float] = time.time


#: A manifest call's path after ``/v2/``: the repository, and the tag or digest.
_MANIFEST = re.compile(r"(.+)/manifests/([^/]+)")
#: The answers that store, serve or delete a manifest (distribution's API).
_NOTED = {("PUT", 201), ("GET", 200), ("DELETE", 202)}


class RegistryFront:
    """One registry's data endpoint: a listener of ``app``, auth, and a docker-registry child."""

    def __init__(self, app: App, config: FrontConfig) -> None:
        # the proxy's client (httpx: ~0.25 s to import) is made at the first proxied call, in
        # the background; the server imports httpx once it is ready (warm_up), off its cold start
        self._ca_file = str(app.material.ca_file)
        self._client_made: Future[httpx.AsyncClient] | None = None
        self._client_lock = threading.Lock()
        self.config = config
        self.listener: Listener = app.listen(self.router())
        self.host = self.listener.host
        self.process = RegistryProcess(
            config.name,
            app.directory,
            app.material,
            service=config.service,
            realm=config.realm_url or f"https://{self.host}{config.realm_path}",
            issuer=config.issuer,
        )
        services = (config.service, self.host) if config.host_is_service else (config.service,)
        self.realm = TokenRealm(
            services=services,
            issuer=self.process.issuer,
            check=config.check,
            bad_service=lambda s: registry_error(
                400, "UNSUPPORTED", f"service {s!r} is not {config.service}"
            ),
            bad_credentials=lambda: registry_error(
                401, "UNAUTHORIZED", config.unauthorized, self.challenge()
            ),
            anonymous=NOBODY
            if config.anonymous is None
            else lambda: registry_error(
                401, "UNAUTHORIZED", str(config.anonymous), self.challenge()
            ),
            token_body=config.token_body,
            single_service=config.single_service,
            any_service=config.any_service,
            denied=config.denied,
        )
        self.process.start()  # not waited for: the first proxied call waits (cold start)
        self._stopped = False

    def stop(self) -> None:
        """Close the listener and stop docker-registry (its content goes with it)."""
        if self._stopped:
            return
        self._stopped = True
        self.listener.close()
        self.process.stop()
        self.process.config_file.unlink(missing_ok=True)

        if self._client_made is None:
            return

        async def close_client() -> None:
            await (await self._client()).aclose()

        self.listener.run(close_client())

    async def _client(self) -> httpx.AsyncClient:
        """The proxy's HTTP client, made in the background at the first call."""
        with self._client_lock:
            if self._client_made is None:
                self._client_made = _BACKGROUND.submit(_proxy_client, self._ca_file)
        return await asyncio.wrap_future(self._client_made)

    def challenge(self) -> dict[str, str]:
        """The ``WWW-Authenticate`` header of the front's own 401s."""
        if self.config.basic_refusal is not None:
            return {"WWW-Authenticate": f'Basic realm="{self.config.basic_refusal}"'}
        scheme = "Basic" if self.config.basic_ping else "Bearer"
        realm = f"https://{self.host}{self.config.realm_path}"
        return {"WWW-Authenticate": f'{scheme} realm="{realm}",service="{self.config.service}"'}

    # --- routes ------------------------------------------------------------------
    def router(self) -> Router:
        """``/v2/`` ping, the realm, and the proxy; anything else is a registry 404."""

        async def proxied(http: HttpRequest) -> HttpResponse:
            if http.method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
                return to_http(self.not_found())
            try:
                return await self.proxy(http)
            except Exception as exc:  # a bug or a dead child must show, not hang the client
                return to_http(json_response(500, {"message": f"sandbox error: {exc!r}"}))

        async def ping(http: HttpRequest) -> HttpResponse:
            if not self.config.basic_ping:  # docker-registry's own Bearer challenge
                answer = await proxied(http)
                challenge = answer.headers.get("www-authenticate")
                if challenge and not self.config.ping_service:  # realm only (Google's /v2/)
                    answer.headers["www-authenticate"] = _without_service(challenge)
                return answer
            if http.method != "GET":
                return to_http(self.not_found())
            request = await read_request(http)
            return await call_sync(self.config.lock, lambda: self._ping(request))

        async def realm(http: HttpRequest) -> HttpResponse:
            if http.method != "GET":
                return to_http(self.not_found())
            request = await read_request(http)
            return await call_sync(self.config.lock, lambda: self.realm.answer(request))

        async def default(scope: Scope, receive: Receive, send: Send) -> None:
            await to_http(self.not_found())(scope, receive, send)

        def extra(handler: Callable[[RegistryFront, Request], Response]) -> Any:
            async def endpoint(http: HttpRequest) -> HttpResponse:
                request = await read_request(http)
                return await call_sync(self.config.lock, lambda: handler(self, request))

            return endpoint

        # a route whose method differs only half-matches: the realm's GET still wins below
        routes: list[BaseRoute] = [
            Route(path, extra(handler), methods=[method])
            for method, path, handler in self.config.extra
        ]
        routes += [
            Route("/v2", ping, methods=ALL_METHODS),
            Route("/v2/", ping, methods=ALL_METHODS),
            Route(self.config.realm_path, realm, methods=ALL_METHODS),
            Route(self.config.realm_path + "/", realm, methods=ALL_METHODS),
            Route("/v2/{rest:path}", proxied, methods=ALL_METHODS),
        ]
        return Router(routes, redirect_slashes=False, default=default)

    def not_found(self) -> Response:
        """A registry API 404."""
        return registry_error(404, "NOT_FOUND", "not found")

    def _ping(self, request: Request) -> Response:
        """``/v2/``: a Basic challenge, or 200 with good credentials."""
        creds = request.basic_auth()
        if creds is None or self.config.check(*creds) is None:
            return self.realm.bad_credentials()
        return json_response(200, {})

    def _bearer(self, creds: tuple[str, str], rest: str) -> str | Response:
        """A token for the repository in ``rest`` with all the credentials allow, or a 401."""
        grant = self.config.check(*creds)
        if grant is None:
            return self.realm.bad_credentials()
        repository = re.sub(r"/(manifests|blobs|tags)/.*$", "", rest)
        actions = sorted(grant.allow(repository, set(ACTIONS)))
        access = [{"type": "repository", "name": repository, "actions": actions}]
        return self.process.issuer.issue(self.config.service, grant.subject, access)

    def refusal(self, http: HttpRequest) -> Response | None:
        """The cloud's own refusal of a registry call before docker-registry sees it (its
        wording of a missing permission, a rate limit...), or None to let it through.

        A cloud's front overrides this; :meth:`proxy` calls it in a worker thread holding the
        cloud's lock (``config.lock``), so it may read live state and block. Only the
        request's method, path parameters (``rest``), headers and client are read.
        """
        return None

    async def proxy(self, http: HttpRequest) -> HttpResponse:
        """The cloud's :meth:`refusal`; else check Basic auth here, then stream the call to
        docker-registry and its answer back.

        Basic credentials become a token for the repository; a Bearer token
        goes on unchanged, and so does a call without credentials (docker-registry
        then answers its Bearer challenge, whose realm is this front's).
        """
        if type(self).refusal is not RegistryFront.refusal:  # none here: no thread hop

            def refusal() -> Response | None:
                with self.config.lock:
                    return self.refusal(http)

            refused = await run_in_threadpool(refusal)
            if refused is not None:
                return to_http(refused)
        headers = {k: v for k, v in http.headers.items() if k.lower() not in _REQUEST_DROP}
        headers["Host"] = self.host  # docker-registry builds Location URLs from it
        authorization = http.headers.get("authorization", "")
        creds = basic_auth(authorization) if self.config.basic_data_plane else None
        if creds is not None:
            rest = str(http.path_params.get("rest", ""))

            def bearer() -> str | Response:
                with self.config.lock:
                    return self._bearer(creds, rest)

            token = await run_in_threadpool(bearer)
            if isinstance(token, Response):
                return to_http(token)
            headers["Authorization"] = f"Bearer {token}"
        elif authorization.lower().startswith("bearer "):
            headers["Authorization"] = authorization
        scope = http.scope
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        has_body = "content-length" in http.headers or "transfer-encoding" in http.headers
        if not self.process.is_ready:  # the first call after a (re)start waits, off the loop
            await run_in_threadpool(self.process.ready)
        client = await self._client()
        upstream = client.build_request(
            http.method,
            self.process.url + target,
            headers=headers,
            content=_chunks(http) if has_body else None,
        )
        answer = await client.send(upstream, stream=True)
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _RESPONSE_DROP}
        if (http.method, answer.status_code) in _NOTED:
            manifest = _MANIFEST.fullmatch(str(http.path_params.get("rest", "")))
            if manifest is not None:
                repository, reference = manifest.group(1), manifest.group(2)
                digest = answer.headers.get("docker-content-digest", "")
                try:
                    await run_in_threadpool(self._note, http.method, repository, reference, digest)
                except BaseException:  # the answer is not relayed: release its connection
                    await answer.aclose()
                    raise
        return StreamingResponse(_relay(answer), answer.status_code, out)

    def _note(self, method: str, repository: str, reference: str, digest: str) -> None:
        """Record a manifest call docker-registry carried out (see the module doc): a push
        or a pull by tag, or a deletion; by digest, a push or pull names no tag (the tags
        on that digest keep their times: assumption)."""
        times = self.process.times
        by_digest = ":" in reference  # a tag has no colon; a digest is <algorithm>:<hex>
        with self.config.lock:
            now = self.config.clock()
        if method == "DELETE":
            times.forget(repository, **({"digest": reference} if by_digest else {"tag": reference}))
        elif by_digest:
            return
        elif method == "PUT":
            times.pushed(repository, reference, digest, now)
        else:
            times.pulled(repository, reference, now)


def _without_service(challenge: str) -> str:
    """A ``WWW-Authenticate`` challenge without its ``service`` parameter."""
    return re.sub(r',\s*service="[^"]*"|\bservice="[^"]*",\s*', "", challenge)


#: Makes the fronts' proxy clients, away from the event loop.
_BACKGROUND = ThreadPoolExecutor(1, thread_name_prefix="sandbox-front-client")


def warm_up() -> None:
    """Import the proxy's HTTP client in the background, so the first proxied call finds it.

    The server calls this once it has written ``sandbox.json``: the import (~0.25 s of CPU)
    would otherwise compete with the start-up for the interpreter lock.
    """
    _BACKGROUND.submit(importlib.import_module, "httpx")


def _proxy_client(ca_file: str) -> httpx.AsyncClient:
    """An HTTP client for a front's docker-registry child, trusting only the sandbox's CA."""
    import httpx  # here: no registry front exists at import time

    context = ssl.create_default_context(cafile=ca_file)
    return httpx.AsyncClient(verify=context, timeout=60.0, trust_env=False)


async def _chunks(http: HttpRequest) -> AsyncIterator[bytes]:
    """The request body as it arrives (chunked or not), without empty chunks."""
    async for chunk in http.stream():
        if chunk:
            yield chunk


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it arrives; the upstream connection is released however it ends."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()
