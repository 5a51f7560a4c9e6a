"""The fake-cloud server: one App, its TLS listeners, and the backend lifecycle.

Backends (one module or package per provider, moto-style) hold their state,
routes and real error bodies, and follow one lifecycle (:class:`Backend`):
``seed`` builds the seeded state, ``attach(app)`` starts what serves it
(registries, extra listeners), ``reset`` goes back to the seed, ``state``
shows it, ``shutdown`` stops what ``attach`` started.

The :class:`App` owns what knows no provider: the admin endpoints under
``/_sandbox/`` (state, reset, faults, log), the fault list and the request
log. Every admin request must carry the sandbox's admin token (header
:data:`ADMIN_HEADER`; random, kept in the 0600 ``credentials.json``): faults can
make the fake clouds answer anything, so only the sandbox's owner may set them.
A fault spec is checked whole before it is added (:meth:`Fault.parse`): a bad
one is answered 400 with the reason and changes nothing. Every listener it
opens (the main one, and each registry front's own port) runs behind the same
fault-and-log middleware, so faults and the log cover every port by
construction.

HTTP is Starlette routing on uvicorn's HTTP/1.1 protocol (keep-alive, chunked
request bodies), over TLS with the sandbox's certificate, in one asyncio loop.
Backend handlers are synchronous: they run in worker threads under the
backend's lock, never on the loop, so a handler may block (on a
docker-registry child, or on :meth:`App.listen`) without stalling other requests.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hmac
import json
import re
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import Response as HttpResponse
from starlette.routing import BaseRoute, Mount, Route, Router, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from .files import read_private, write_private
from .tls import Material

__all__ = [
    "ADMIN_HEADER",
    "ALL_METHODS",
    "App",
    "Backend",
    "BackendFactory",
    "Context",
    "Fault",
    "FaultSpecError",
    "Handler",
    "Listener",
    "PathTable",
    "Request",
    "Response",
    "RouteTable",
    "basic_auth",
    "call_sync",
    "json_response",
    "read_request",
    "to_http",
]

T = TypeVar("T")
H = TypeVar("H")
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: The header that carries the admin token on every ``/_sandbox/`` request.
ADMIN_HEADER = "X-Sandbox-Token"


@dataclass
class Request:
    """An incoming request, parsed, for a synchronous handler."""

    method: str
    path: str  # as sent (not percent-decoded), without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern

    def json(self) -> Any:
        """The body as JSON ({} when empty or invalid)."""
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return {}

    def arg(self, name: str, default: str = "") -> str:
        """The first value of a query argument (as Go's ``Query().Get`` does)."""
        return self.query.get(name, [default])[0]

    def basic_auth(self) -> tuple[str, str] | None:
        """(user, password) from an ``Authorization: Basic`` header."""
        return basic_auth(self.headers.get("authorization", ""))

    def bearer(self) -> str:
        """The token of an ``Authorization: Bearer`` header, or ''."""
        header = self.headers.get("authorization", "")
        return header[7:] if header.lower().startswith("bearer ") else ""


def basic_auth(header: str) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization`` header's value, if it is Basic."""
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


@dataclass
class Response:
    """What a synchronous handler returns."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    data = b"" if body is None else json.dumps(body).encode()
    return Response(status, data, {"Content-Type": "application/json"} | (headers or {}))


Handler = Callable[[Request], Response]
#: A backend's routes: (method, pattern, handler) rows, ``pattern`` Starlette's (``{name}`` one
#: segment, ``{rest:path}`` any), as :meth:`Backend.add_routes` and :class:`PathTable` take them.
RouteTable = Sequence[tuple[str, str, Handler]]


class PathTable(Generic[H]):
    """A route table read inside one handler, for an API that Starlette's router cannot
    route as the provider does: ARM's paths are case-insensitive, and ARM and Graph check
    the caller before they look at the path (an unknown path without a token is a 401).

    Rows are (method, pattern, handler) as in a :data:`RouteTable`; method ``*`` takes any
    method (the handler answers the ones it does not serve). The first row that takes the
    request wins, so a catch-all row (``{rest:path}``) goes last.
    """

    def __init__(self, rows: Sequence[tuple[str, str, H]], *, ignore_case: bool = False) -> None:
        flags = re.IGNORECASE if ignore_case else 0
        self.rows = [
            (method, re.compile(compile_path(pattern)[0].pattern, flags), handler)
            for method, pattern, handler in rows
        ]

    def find(self, method: str, path: str) -> tuple[H, dict[str, str]]:
        """The handler of the first row taking ``method`` and ``path``, and the path's
        parameters as sent (case kept); LookupError when no row does."""
        for wanted, pattern, handler in self.rows:
            match = pattern.match(path)
            if match and wanted in ("*", method):
                return handler, match.groupdict()
        raise LookupError(f"no route for {method} {path}")


async def read_request(http: HttpRequest) -> Request:
    """The whole request (body included) as a :class:`Request`."""
    scope = http.scope
    raw = scope.get("raw_path") or scope["path"].encode()
    return Request(
        method=scope["method"],
        path=raw.decode("latin-1"),
        query=parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True),
        headers={k.lower(): v for k, v in http.headers.items()},
        body=await http.body(),
        params={k: str(v) for k, v in http.path_params.items()},
    )


def to_http(response: Response) -> HttpResponse:
    """A Starlette response for a handler's :class:`Response`."""
    return HttpResponse(response.body, response.status, response.headers)


async def call_sync(lock: threading.RLock | None, fn: Callable[[], Response]) -> HttpResponse:
    """Run ``fn`` in a worker thread (under ``lock``); a bug shows as a 500, never a hang."""

    def locked() -> Response:
        if lock is None:
            return fn()
        with lock:
            return fn()

    try:
        return to_http(await run_in_threadpool(locked))
    except Exception as exc:
        return to_http(json_response(500, {"message": f"sandbox error: {exc!r}"}))


@dataclass(frozen=True)
class Context:
    """What a backend factory gets: the sandbox directory, TLS material, seeded secrets."""

    directory: Path
    material: Material

    def secret(self, name: str, make: Callable[[], dict[str, str]]) -> dict[str, str]:
        """Seeded account ``name``'s secret: made once per directory, kept across restarts.

        Secrets live in ``credentials.json`` (0600); a file from an older version
        gains the accounts it lacks, and existing ones are kept.
        """
        path = self.directory / "credentials.json"
        with _SECRETS_LOCK:
            try:  # the user's own 0600 file, never through a link
                data: dict[str, dict[str, str]] = json.loads(read_private(path))
            except FileNotFoundError:
                data = {}
            if name not in data:
                data[name] = make()
                write_private(path, json.dumps(data).encode())
            return data[name]


_SECRETS_LOCK = threading.Lock()


class Backend:
    """Base of a provider backend: its lifecycle, its routes under ``prefix``, its lock.

    A subclass builds its state in :meth:`seed` (called once by ``__init__`` and
    again by :meth:`reset`), adds routes with :meth:`route` or :meth:`add_routes`, and overrides the
    hooks it needs. Handlers run in worker threads holding :attr:`lock`.
    """

    prefix = ""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.app: App | None = None  # set by attach: what is made later listens on it
        self._routes: dict[str, dict[str, Handler]] = {}
        self.seed()

    @classmethod
    def create(cls, context: Context) -> Backend:
        """The backend, with what it takes from the sandbox's context (its seeded secrets):
        the factory :func:`.server.backends` takes from each ``sandbox/<key>/cloud.py``."""
        raise NotImplementedError(f"{cls.__name__}.create")

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Add a route; ``pattern`` is Starlette's (``{name}``, ``{rest:path}``).

        A trailing slash is optional; a known path with an unknown method goes
        to :meth:`not_found`, as it does on the providers' APIs.
        """
        self._routes.setdefault(pattern, {})[method] = handler

    def add_routes(self, table: RouteTable) -> None:
        """Add every row of a route table (see :meth:`route`)."""
        for method, pattern, handler in table:
            self.route(method, pattern, handler)

    def seed(self) -> None:
        """Build the seeded state (no processes: :meth:`attach` starts those)."""

    def attach(self, app: App) -> None:
        """Remember ``app`` (registries made later open their listeners on it); a backend
        that serves something from the start extends this. Runs in a worker thread."""
        self.app = app

    def reset(self) -> None:
        """Return to the seeded state: :meth:`shutdown`, then :meth:`seed` (the app holds
        :attr:`lock`); a backend whose :meth:`attach` starts what must outlive a reset
        overrides this."""
        self.shutdown()
        self.seed()

    def state(self) -> dict[str, Any]:
        """The resources, as JSON-able data without any secret."""
        return {}

    def shutdown(self) -> None:
        """Stop what :meth:`attach` started (sandbox exit)."""

    def registries(self) -> dict[str, str]:
        """Registries that live as long as the sandbox, name to URL (``sandbox.json``)."""
        return {}

    def not_found(self, request: Request) -> Response:
        """The provider's answer to an unknown path."""
        return json_response(404, {"message": f"no route for {request.method} {request.path}"})

    def fault_answer(self, path: str, status: int) -> Response | None:
        """The provider's own answer to an injected fault of ``status`` on ``path`` (relative
        to :attr:`prefix`) whose spec gives no ``body``: its error in the protocol of the API
        at ``path``, so SDKs raise their real error for it; None: the sandbox's JSON
        ``{"message": "injected fault <status>"}``. Called on the event loop: no blocking."""
        return None

    def settings(self) -> dict[str, Any] | None:
        """The backend's live settings (its slow or faulty parts), or None when it has none."""
        return None

    def settings_changed(self) -> None:
        """Called after ``/_sandbox/<prefix>/settings`` changed :meth:`settings`."""

    def clock_ahead(self, days: float) -> dict[str, Any]:
        """``POST /_sandbox/clock``: move this backend's clock ``days`` ahead, then run its
        registry's cleanup policies as the service would have meanwhile; return what they
        deleted (e.g. ``{"deleted": ["binder-x:tag"]}``). The default: no clock, nothing runs."""
        return {}

    def admin(self, request: Request, name: str) -> Response:
        """``/_sandbox/<prefix>/settings``: GET the settings, or POST some of them.

        Unknown names are refused with 400, so a typo in a test does not pass unnoticed.
        """
        settings = self.settings()
        if name != "settings" or settings is None:
            return json_response(404, {"message": "unknown sandbox endpoint"})
        if request.method == "POST":
            body = request.json()
            if not isinstance(body, dict):
                return json_response(400, {"message": "settings must be a JSON object"})
            unknown = set(body) - set(settings)
            if unknown:
                return json_response(400, {"message": f"unknown settings {sorted(unknown)}"})
            settings.update(body)
            self.settings_changed()
        return json_response(200, settings)

    def router(self) -> Router:
        """The backend's routes as a Starlette router (relative to ``prefix``)."""
        routes: list[BaseRoute] = []
        for pattern, handlers in self._routes.items():
            endpoint = self._endpoint(handlers)
            routes.append(Route(pattern, endpoint, methods=ALL_METHODS))
            if not pattern.endswith((":path}", "/")):
                routes.append(Route(pattern + "/", endpoint, methods=ALL_METHODS))

        async def default(scope: Scope, receive: Receive, send: Send) -> None:
            request = await read_request(HttpRequest(scope, receive))
            response = await call_sync(self.lock, lambda: self.not_found(request))
            await response(scope, receive, send)

        return Router(routes, redirect_slashes=False, default=default)

    def _endpoint(self, handlers: dict[str, Handler]) -> Callable[[HttpRequest], Awaitable[Any]]:
        async def endpoint(http: HttpRequest) -> HttpResponse:
            request = await read_request(http)
            handler = handlers.get(request.method, self.not_found)
            return await call_sync(self.lock, lambda: handler(request))

        return endpoint


#: Builds a backend from the sandbox's context (a :meth:`Backend.create`); ``server.backends()``
#: lists one per registered provider.
BackendFactory = Callable[[Context], Backend]


class FaultSpecError(ValueError):
    """A fault spec the admin API refuses (answered 400 with this message)."""


#: What a fault spec may hold, and the JSON types each key takes.
FAULT_KEYS = ("method", "path", "status", "times", "retry_after", "delay", "drop", "after", "body")


def _number(spec: dict[str, Any], key: str, low: float, high: float, *, whole: bool) -> Any:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise FaultSpecError(f"{key} must be a {'whole ' if whole else ''}number, not {value!r}")
    if not low <= value <= high:
        raise FaultSpecError(f"{key} must be from {low:g} to {high:g}, not {value!r}")
    return value


@dataclass
class Fault:
    """An injected fault for requests matching ``method`` and the ``path`` regex.

    What it does, in order: wait ``delay`` seconds (other requests go on); then
    ``drop`` the connection (``after``: once the request was handled, so its
    answer is lost), or answer ``status`` with ``body`` (as JSON) and ``Retry-After``
    (without ``body``: the error of the API the path is under, when its backend words one,
    :meth:`Backend.fault_answer`; else ``{"message": "injected fault <status>"}``); with
    neither, a delayed request goes through to the backend, and a fault with no delay
    answers 503.
    """

    method: str
    path: str
    status: int | None = None
    times: int = 1
    retry_after: float | str | None = None  # seconds, or an HTTP date (RFC 9110 10.2.3)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering
    after: bool = False  # with drop: handle the request first, then drop (the answer is lost)
    body: Any = None
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, spec: Any) -> Fault:
        """A fault from a JSON spec; FaultSpecError says what is wrong with it."""
        if not isinstance(spec, dict):
            raise FaultSpecError(f"a fault is a JSON object, not {type(spec).__name__}")
        unknown = sorted(str(k) for k in spec if k not in FAULT_KEYS)
        if unknown:
            raise FaultSpecError(
                f"unknown key {', '.join(map(repr, unknown))}; known: {', '.join(FAULT_KEYS)}"
            )
        for key in ("method", "path"):
            if not isinstance(spec.get(key), str):
                raise FaultSpecError(f"{key} is required, as a string")
        method = spec["method"].upper()
        if method not in (*ALL_METHODS, "*"):
            raise FaultSpecError(f"method must be one of {', '.join(ALL_METHODS)} or '*'")
        if len(spec["path"]) > 1000:
            raise FaultSpecError("path must be a regex of at most 1000 characters")
        try:
            pattern = re.compile(spec["path"])
        except re.error as e:
            raise FaultSpecError(f"path is not a valid regex: {e}") from None
        fault = cls(method, spec["path"], _pattern=pattern, body=spec.get("body"))
        if "status" in spec:
            fault.status = _number(spec, "status", 100, 599, whole=True)
        if "times" in spec:
            fault.times = _number(spec, "times", 1, 1_000_000, whole=True)
        if "delay" in spec:
            fault.delay = _number(spec, "delay", 0, 300, whole=False)
        for key in ("drop", "after"):
            if not isinstance(spec.get(key, False), bool):
                raise FaultSpecError(f"{key} must be true or false, not {spec[key]!r}")
            setattr(fault, key, spec.get(key, False))
        retry_after = spec.get("retry_after")
        if isinstance(retry_after, str):
            if not retry_after.isdigit() and email.utils.parsedate_tz(retry_after) is None:
                raise FaultSpecError("retry_after must be seconds or an HTTP date")
            fault.retry_after = retry_after
        elif retry_after is not None:
            fault.retry_after = _number(spec, "retry_after", 0, 86400, whole=False)
        if fault.after and not fault.drop:
            raise FaultSpecError("after needs drop (it loses the answer of a handled request)")
        if fault.drop and (fault.status is not None or "body" in spec or "retry_after" in spec):
            raise FaultSpecError("drop sends no answer: no status, body or retry_after with it")
        return fault

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request (and has times left)."""
        if self._pattern is None:
            self._pattern = re.compile(self.path)
        wanted = self.method in ("*", method)
        return self.times > 0 and wanted and self._pattern.search(path) is not None

    def spec(self) -> dict[str, Any]:
        """The fault as a JSON spec (with the times it has left)."""
        return {k: getattr(self, k) for k in FAULT_KEYS}

    def answers(self) -> bool:
        """Whether the fault answers in place of the backend (else, after a delay, it passes)."""
        return self.status is not None or not self.delay

    def headers(self) -> dict[str, str]:
        """``Retry-After``, when set: whole seconds as an integer, else as given."""
        value = self.retry_after
        if value is None:
            return {}
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return {"Retry-After": str(value)}


@dataclass
class Listener:
    """One TLS port of the app: ``host`` is ``127.0.0.1:PORT``."""

    port: int
    server: asyncio.base_events.Server
    state: ServerState
    loop: asyncio.AbstractEventLoop

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://{self.host}"

    async def aclose(self) -> None:
        """Stop accepting; close idle connections now, busy ones once they have answered.

        It does not wait for the busy ones: one may be waiting for the lock that
        the caller (a reset) holds.
        """
        self.server.close()
        for connection in list(self.state.connections):
            connection.shutdown()

    def close(self) -> None:
        """:meth:`aclose` from a worker thread."""
        self.run(self.aclose())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the listener's loop from a worker thread, and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)


# an open connection's transport, by (server address, client address) as in the ASGI scope
Connections = dict[tuple[Any, Any], asyncio.Transport]


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, remembering its transport so a fault can drop it."""

    open_transports: Connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.open_transports[(self.server, self.client)] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.open_transports.pop((self.server, self.client), None)
        super().connection_lost(exc)


class App:
    """Owns faults and the request log, serves ``/_sandbox/*``, opens every listener."""

    def __init__(self, backends: list[Backend], context: Context) -> None:
        self.backends = backends
        self.directory = context.directory
        self.material = context.material
        self.faults: list[Fault] = []
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.main: Listener | None = None
        self._connections: Connections = {}
        self.admin_token = context.secret(
            "sandbox", lambda: {"admin_token": secrets.token_urlsafe(32)}
        )["admin_token"]

    @property
    def url(self) -> str:
        """The main listener's base URL (the fake clouds)."""
        assert self.main is not None, "start() first"
        return self.main.url

    # --- listeners ---------------------------------------------------------------
    async def start(self) -> Listener:
        """Open the main listener: every backend under its prefix, and ``/_sandbox/``."""
        self.loop = asyncio.get_running_loop()
        routes: list[BaseRoute] = [Route("/_sandbox/{name:path}", self._admin, methods=ALL_METHODS)]
        routes += [Mount(b.prefix, app=b.router()) for b in self.backends]

        async def no_service(scope: Scope, receive: Receive, send: Send) -> None:
            response = to_http(json_response(404, {"message": "no such service in the sandbox"}))
            await response(scope, receive, send)

        main = Router(routes, redirect_slashes=False, default=no_service)
        self.main = await self.open(main, fault_answer=self._fault_answer)
        return self.main

    async def open(
        self, asgi: ASGIApp, fault_answer: Callable[[str, int], Response | None] | None = None
    ) -> Listener:
        """Serve ``asgi`` over TLS on a new port of 127.0.0.1, behind faults and the log;
        ``fault_answer(path, status)``: the answer to a fault without a body (None: JSON)."""
        loop = asyncio.get_running_loop()
        config = Config(
            self._middleware(asgi, fault_answer),
            ssl_certfile=str(self.material.cert_file),
            ssl_keyfile=str(self.material.key_file),
            http="h11",
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            # clients keep idle connections for long (pauses between notebook cells): a short
            # timeout would race their next request on a connection the server is closing
            timeout_keep_alive=300,
        )
        config.load()
        state = ServerState()

        def protocol() -> asyncio.Protocol:
            made = _Protocol(config, state, {}, loop)
            made.open_transports = self._connections
            return made

        # proto IPPROTO_TCP, not 0: only then does asyncio set TCP_NODELAY on accepted sockets;
        # without it a keep-alive client waits ~40 ms for the delayed ACK at every response
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        server = await loop.create_server(protocol, sock=sock, ssl=config.ssl, backlog=128)
        return Listener(sock.getsockname()[1], server, state, loop)

    def listen(self, asgi: ASGIApp) -> Listener:
        """:meth:`open` from a worker thread (a handler or ``attach``), never the loop's."""
        assert self.loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(self.open(asgi), self.loop).result(timeout=10)

    # --- faults and log ----------------------------------------------------------
    def _fault_answer(self, path: str, status: int) -> Response | None:
        """The answer of the backend whose routes ``path`` is under (the main listener's)."""
        for backend in self.backends:
            prefix = backend.prefix
            if prefix and (path == prefix or path.startswith(prefix + "/")):
                return backend.fault_answer(path[len(prefix) :], status)
        return None

    def _middleware(
        self, inner: ASGIApp, fault_answer: Callable[[str, int], Response | None] | None
    ) -> ASGIApp:
        async def faulted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            method = scope["method"]
            path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
            query = scope["query_string"].decode("latin-1")
            if path.startswith("/_sandbox/"):  # admin: neither faulted nor logged
                await inner(scope, receive, send)
                return

            async def logged(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self.record(method, path, query, message["status"])
                await send(message)

            fault = self.fault_for(method, path)
            if fault is None:
                await inner(scope, receive, logged)
                return
            if fault.delay:
                await asyncio.sleep(fault.delay)  # other requests go on meanwhile
            if fault.drop:
                if fault.after:
                    await inner(scope, receive, _discard)
                self.record(method, path, query, "dropped")
                transport = self._connections.get((scope.get("server"), scope.get("client")))
                if transport is not None:
                    transport.abort()
                return
            if not fault.answers():  # a delay alone: the request goes through, late
                await inner(scope, receive, logged)
                return
            status = fault.status or 503
            answer = None
            if fault.body is None and fault_answer is not None:
                answer = fault_answer(path, status)
            if answer is None:
                answer = json_response(
                    status, fault.body or {"message": f"injected fault {status}"}
                )
            answer.headers.update(fault.headers())
            await to_http(answer)(scope, receive, logged)

        return faulted

    def fault_for(self, method: str, path: str) -> Fault | None:
        """The first matching fault, used up by one (None when no fault applies)."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def record(self, method: str, path: str, query: str, status: int | str) -> None:
        """Append a request to the log (the last 5000 are kept)."""
        # the log shows the query decoded, one name=value per value
        parsed = parse_qs(query, keep_blank_values=True)
        shown = "&".join(f"{k}={v}" for k, vs in parsed.items() for v in vs)
        entry = {"method": method, "path": path, "query": shown, "status": status}
        with self.lock:
            self.log.append(entry)
            del self.log[:-5000]

    # --- admin -----------------------------------------------------------------
    async def _admin(self, http: HttpRequest) -> HttpResponse:
        request = await read_request(http)
        token = request.headers.get(ADMIN_HEADER.lower(), "")
        if not hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return to_http(
                json_response(
                    401,
                    {
                        "message": f"the sandbox admin API needs the {ADMIN_HEADER} header "
                        "(the admin_token of the sandbox's credentials.json)"
                    },
                )
            )
        return await call_sync(None, lambda: self.admin(request))

    def admin(self, request: Request) -> Response:
        """``/_sandbox/{state,reset,faults,log,clock}`` and each backend's own knobs."""
        name = request.path[len("/_sandbox/") :].strip("/")
        if name == "state" and request.method == "GET":
            state = {}
            for b in self.backends:
                with b.lock:
                    state[b.prefix.strip("/")] = b.state()
            return json_response(200, state)
        if name == "reset" and request.method == "POST":
            self.reset()
            return json_response(200, {"reset": True})
        if name == "faults" and request.method == "POST":
            try:
                spec = json.loads(request.body)
                specs = spec if isinstance(spec, list) else [spec]
                faults = [Fault.parse(s) for s in specs]  # all checked before any is added
            except (ValueError, RecursionError) as e:
                reason = e if isinstance(e, FaultSpecError) else "the body is not JSON"
                return json_response(400, {"message": f"bad fault spec: {reason}"})
            with self.lock:
                self.faults += faults
                return json_response(201, {"faults": len(self.faults)})
        if name == "faults" and request.method == "DELETE":
            with self.lock:
                self.faults.clear()
            return json_response(200, {"faults": 0})
        if name == "faults" and request.method == "GET":
            with self.lock:
                return json_response(200, [f.spec() for f in self.faults])
        if name == "log" and request.method == "GET":
            with self.lock:
                return json_response(200, list(self.log))
        if name == "clock" and request.method == "POST":
            body = request.json()
            days = body.get("advance_days") if isinstance(body, dict) else None
            if not isinstance(days, int | float) or isinstance(days, bool) or days < 0:
                return json_response(400, {"message": "advance_days: a number of days >= 0"})
            ran = {}
            for backend in self.backends:  # each clock, then its cleanup policies
                with backend.lock:
                    ran[backend.prefix.strip("/")] = backend.clock_ahead(float(days))
            return json_response(200, ran)
        for backend in self.backends:  # a backend's own knobs, e.g. /_sandbox/azure/settings
            own = backend.prefix.strip("/")
            if own and name.startswith(own + "/"):
                with backend.lock:
                    return backend.admin(request, name[len(own) + 1 :])
        return json_response(404, {"message": "unknown sandbox endpoint"})

    def reset(self) -> None:
        """Clear faults and log, and reset every backend (registries restart empty)."""
        with self.lock:
            self.faults.clear()
            self.log.clear()
        for backend in self.backends:
            with backend.lock:
                backend.reset()


async def _discard(message: Message) -> None:
    """A ``send`` that loses the answer (a fault that drops after handling)."""
