"""verify against hostile or broken registries.

Each server here is a small http.server on loopback (plain HTTP, so verify runs with
``insecure=True``), bounded in what it sends and in time, stopping by itself. Each test
failed before the change it covers: a secret echoed in a reason phrase was printed,
Basic credentials went to another origin's upload URL, a server sending a byte at a time
held verification with no end, a huge body was read whole, and a 200 with garbage was
"an unexpected JSONDecodeError (a bug)".
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from binderhub_registry import RegistryValues, Secret, VerificationFailed, cli, verify
from binderhub_registry.binderhub import write_values
from binderhub_registry.errors import CloudError

PASSWORD = "s3cret-Pa55word/with+chars"
BASIC = base64.b64encode(f"u:{PASSWORD}".encode()).decode()

Handler = Callable[[http.server.BaseHTTPRequestHandler], bool]


class Server:
    """A loopback HTTP server whose ``handle`` answers or returns False (then 404)."""

    def __init__(self, handle: Handler) -> None:
        self.seen: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                outer.seen.append((self.command, self.path, self.headers.get("Authorization")))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if not handle(self):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[[Handler], Server]]:
    made: list[Server] = []

    def make(handle: Handler) -> Server:
        made.append(Server(handle))
        return made[-1]

    yield make
    for s in made:
        s.close()


def answer(
    h: http.server.BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    reason: str | None = None,
) -> bool:
    h.send_response(status, reason)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)
    return True


def values(host: str, **docker_registry: str) -> RegistryValues:
    return RegistryValues(
        image_prefix=f"{host}/o/",
        username="u",
        password=Secret(PASSWORD),
        registry_url=f"http://{host}",
        docker_registry={"url": f"http://{host}", **docker_registry},
    )


def test_a_secret_echoed_in_a_reason_phrase_is_redacted(
    servers: Callable[[Handler], Server], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    echo = f"Bad Authorization: Basic {BASIC} for u:{PASSWORD}"
    registry = servers(lambda h: answer(h, 500, reason=echo))
    with pytest.raises(CloudError) as err:
        verify(values(registry.host), insecure=True)
    assert PASSWORD not in str(err.value) and BASIC not in str(err.value)
    assert "<redacted>" in str(err.value)
    files = write_values(tmp_path, values(registry.host), source="test")
    argv = ["verify", str(files.config_path), str(files.secret_path), "--insecure", "-v"]
    cli.main(argv)
    out = capsys.readouterr()
    for text in (out.out, out.err):
        assert PASSWORD not in text and BASIC not in text
        assert base64.b64encode(PASSWORD.encode()).decode().rstrip("=") not in text


def test_credentials_never_go_to_an_upload_url_on_another_origin(
    servers: Callable[[Handler], Server],
) -> None:
    elsewhere = servers(lambda h: answer(h, 201))
    pushed: dict[str, bytes] = {}

    def registry_handle(h: http.server.BaseHTTPRequestHandler) -> bool:
        if h.path == "/v2/":
            return answer(h, 401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if h.command == "POST" and h.path.endswith("/blobs/uploads/"):
            return answer(h, 202, headers={"Location": f"http://{elsewhere.host}/upload/1"})
        if h.command == "PUT" and "/manifests/" in h.path:
            pushed[h.path] = b"{}"
            return answer(h, 201)
        if h.command == "GET" and h.path in pushed:
            manifest = {"layers": [{"digest": "sha256:" + "0" * 64}]}
            return answer(h, 200, json.dumps(manifest).encode())
        return False

    registry = servers(registry_handle)
    report = verify(values(registry.host), insecure=True)
    assert report.consumers()["build pods (push)"] == "ok"
    puts = [auth for method, _, auth in elsewhere.seen if method == "PUT"]
    assert puts and all(auth is None for auth in puts)  # failed before: Basic u:password
    assert any(auth and auth.startswith("Basic ") for _, _, auth in registry.seen)


def test_a_server_sending_a_byte_at_a_time_cannot_hold_verification(
    servers: Callable[[Handler], Server],
) -> None:
    finished = threading.Event()

    def trickle(h: http.server.BaseHTTPRequestHandler) -> bool:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        for _ in range(100):  # bounded: at most 100 bytes, ~50 s, then it stops by itself
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return True
            time.sleep(0.5)
        finished.set()
        return True

    registry = servers(trickle)
    with pytest.raises(VerificationFailed) as err:
        verify(values(registry.host), insecure=True, deadline=1.5)
    assert err.value.check == "time limit" and "--deadline" in err.value.diagnosis
    assert not finished.is_set()  # it gave up while the server was still trickling


def test_a_huge_body_is_not_read_whole(servers: Callable[[Handler], Server]) -> None:
    size = 20 << 20  # bounded: the server sends at most 20 MiB

    def flood(h: http.server.BaseHTTPRequestHandler) -> bool:
        h.send_response(200)
        h.send_header("Content-Length", str(size))
        h.end_headers()
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(size >> 20):
                h.wfile.write(chunk)
        except OSError:
            pass
        return True

    registry = servers(flood)
    with pytest.raises(VerificationFailed) as err:
        verify(values(registry.host), insecure=True)
    assert err.value.check == "registry answer" and "over 8 MiB" in err.value.diagnosis


def test_garbage_in_a_200_is_one_line_and_exit_1(
    servers: Callable[[Handler], Server], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = servers(lambda h: answer(h, 200, b"<html>not a registry</html>"))
    with pytest.raises(VerificationFailed) as err:
        verify(values(registry.host), insecure=True)
    assert "not a manifest" in err.value.diagnosis
    files = write_values(tmp_path, values(registry.host), source="test")
    code = cli.main(["verify", str(files.config_path), str(files.secret_path), "--insecure"])
    err_text = capsys.readouterr().err
    assert code == 1 and "a bug" not in err_text and err_text.count("\n") == 1


@pytest.mark.parametrize("bad", ["0", "-5", "soon", "99999"])
def test_a_bad_deadline_is_refused_before_any_request(
    tmp_path: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_values(tmp_path, values("127.0.0.1:9"), source="test")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", str(files.config_path), str(files.secret_path), "--deadline", bad])
    assert exit_.value.code == 2
    assert "must be a number of seconds from 1 to 3600" in capsys.readouterr().err


@pytest.mark.parametrize("prefix", ["{host}/bh_test/binder-", "{host}/BH/binder-"])
def test_an_image_prefix_binderhub_would_change_fails_before_any_request(
    servers: Callable[[Handler], Server], prefix: str
) -> None:
    """BinderHub pushes to ``image_prefix.replace("_", "-").lower()``: a prefix that
    rule changes verified before, while BinderHub would use another project."""
    registry = servers(lambda h: False)
    bad = values(registry.host)
    bad = RegistryValues(**{**bad.__dict__, "image_prefix": prefix.format(host=registry.host)})
    with pytest.raises(VerificationFailed) as err:
        verify(bad, insecure=True)
    assert err.value.check == "BinderHub's image name"
    assert ("/bh-test/" if "_" in prefix else "/bh/") in err.value.diagnosis
    assert registry.seen == []
