"""The fake-cloud server: one HTTPS app mounting every provider's backend.

Backends (one module per provider, moto-style) hold their state, routes and
real error bodies. The app adds what knows no provider: the admin endpoints
under ``/_sandbox/`` (state, reset, faults, log) and fault injection, which
runs before any backend sees a request.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["App", "Backend", "Request", "Response", "json_response"]


@dataclass
class Request:
    """An incoming request, parsed."""

    method: str
    path: str
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
        header = self.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        return user, password

    def bearer(self) -> str:
        """The token of an ``Authorization: Bearer`` header, or ''."""
        header = self.headers.get("authorization", "")
        return header[7:] if header.lower().startswith("bearer ") else ""


@dataclass
class Response:
    """What a route returns."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    data = b"" if body is None else json.dumps(body).encode()
    return Response(status, data, {"Content-Type": "application/json"} | (headers or {}))


Route = tuple[str, "re.Pattern[str]", Callable[[Request], Response]]


class Backend:
    """Base of a provider backend: mounted under ``prefix``, with state and routes."""

    prefix = ""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.routes: list[Route] = []

    def route(self, method: str, pattern: str, handler: Callable[[Request], Response]) -> None:
        """Add a route; ``{name}`` in ``pattern`` matches one path segment into ``params``."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self.routes.append((method, re.compile(f"^{self.prefix}{regex}/?$", re.I), handler))

    def reset(self) -> None:
        """Return to the seeded state."""

    def state(self) -> dict[str, Any]:
        """The resources, as JSON-able data without any secret."""
        return {}

    def not_found(self, request: Request) -> Response:
        """The provider's answer to an unknown path."""
        return json_response(404, {"message": f"no route for {request.method} {request.path}"})

    def admin(self, request: Request, name: str) -> Response:
        """``/_sandbox/<prefix>/<name>``: the backend's own admin knobs (none by default)."""
        return json_response(404, {"message": "unknown sandbox endpoint"})


@dataclass
class Fault:
    """An injected fault for requests matching ``method`` and the ``path`` regex."""

    method: str
    path: str
    status: int = 503
    times: int = 1
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False  # close the connection without answering
    after: bool = False  # with drop: handle the request first, then drop (the answer is lost)
    body: Any = None

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and self.method in ("*", method)
            and re.search(self.path, path) is not None
        )


class App:
    """Dispatches to backends, applies faults, serves ``/_sandbox/*``, keeps a request log."""

    def __init__(self, backends: list[Backend], on_reset: Callable[[], None] | None = None) -> None:
        self.backends = backends
        self.on_reset = on_reset
        self.faults: list[Fault] = []
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    # --- admin -----------------------------------------------------------------
    def admin(self, request: Request) -> Response:
        name = request.path[len("/_sandbox/") :].strip("/")
        if name == "state" and request.method == "GET":
            return json_response(200, {b.prefix.strip("/"): b.state() for b in self.backends})
        if name == "reset" and request.method == "POST":
            self.reset()
            return json_response(200, {"reset": True})
        if name == "faults" and request.method == "POST":
            spec = request.json()
            specs = spec if isinstance(spec, list) else [spec]
            with self.lock:
                self.faults += [Fault(**s) for s in specs]
            return json_response(201, {"faults": len(self.faults)})
        if name == "faults" and request.method == "DELETE":
            with self.lock:
                self.faults.clear()
            return json_response(200, {"faults": 0})
        if name == "faults" and request.method == "GET":
            with self.lock:
                return json_response(200, [f.__dict__ for f in self.faults])
        if name == "log" and request.method == "GET":
            with self.lock:
                return json_response(200, list(self.log))
        for backend in self.backends:  # a backend's own knobs, e.g. /_sandbox/azure/settings
            own = backend.prefix.strip("/")
            if own and name.startswith(own + "/"):
                with backend.lock:
                    return backend.admin(request, name[len(own) + 1 :])
        return json_response(404, {"message": "unknown sandbox endpoint"})

    def reset(self) -> None:
        """Clear faults and log, reseed every backend, restart registries."""
        with self.lock:
            self.faults.clear()
            self.log.clear()
        for backend in self.backends:
            with backend.lock:
                backend.reset()
        if self.on_reset:
            self.on_reset()

    # --- dispatch --------------------------------------------------------------
    def fault_for(self, request: Request) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(request.method, request.path):
                    fault.times -= 1
                    return fault
        return None

    def dispatch(self, request: Request) -> Response:
        for backend in self.backends:
            if not request.path.lower().startswith(backend.prefix.lower() + "/"):
                continue
            for method, regex, handler in backend.routes:
                match = regex.match(request.path)
                if match and method == request.method:
                    request.params = match.groupdict()
                    with backend.lock:
                        return handler(request)
            return backend.not_found(request)
        return json_response(404, {"message": "no such service in the sandbox"})

    def record(self, request: Request, status: int | str) -> None:
        query = "&".join(f"{k}={v}" for k, vs in request.query.items() for v in vs)
        entry = {"method": request.method, "path": request.path, "query": query, "status": status}
        with self.lock:
            self.log.append(entry)
            del self.log[:-5000]

    def serve(self, port: int, cert_file: str, key_file: str) -> ThreadingHTTPServer:
        """Start serving HTTPS on 127.0.0.1:``port`` in a daemon thread."""
        app = self
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without TCP_NODELAY, keep-alive
            # clients wait ~40 ms for the delayed ACK at every response
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # the app keeps its own log, without secrets

            def handle_one(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                if request.path.startswith("/_sandbox/"):
                    self.send(app.admin(request))
                    return
                fault = app.fault_for(request)
                if fault:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.drop:
                        if fault.after:
                            app.dispatch(request)
                        app.record(request, "dropped")
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(fault.retry_after)
                    body_json = fault.body or {"message": f"injected fault {fault.status}"}
                    response = json_response(fault.status, body_json, headers)
                else:
                    try:
                        response = app.dispatch(request)
                    except Exception as exc:  # a bug in a fake must show, not hang the client
                        response = json_response(500, {"message": f"sandbox error: {exc!r}"})
                app.record(request, response.status)
                self.send(response)

            def send(self, response: Response) -> None:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_one  # noqa: N815

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self) -> tuple[socket.socket, Any]:
                sock, addr = self.socket.accept()
                # the handshake happens in the handler's thread, not in accept()
                return context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                ), addr

        server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True, name="sandbox-https").start()
        return server
