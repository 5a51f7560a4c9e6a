"""Verification against the sandbox's real registry (docker-registry, Docker Hub's token auth)."""

from __future__ import annotations

import email.utils
import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from binderhub_registry import (
    RegistryValues,
    Secret,
    TransientCloudError,
    VerificationFailed,
    VerificationReport,
    VerifyHints,
    verify,
)
from binderhub_registry.binderhub import image_host, split_image_reference
from binderhub_registry.registry_auth import bearer_token
from binderhub_registry.registry_http import RegistryHTTP
from binderhub_registry.sandbox import Sandbox
from binderhub_registry.verify import CHECK_IMAGE, _split_image

from .helpers import hub_session, hub_token, values_for
from .skopeo import needs_skopeo, skopeo_push


def test_good_values_pass_every_check(fresh: Sandbox) -> None:
    report = verify(values_for(fresh, hub_token(fresh, ["repo:write"])), ca_bundle=fresh.ca_file)
    assert report.ok
    names = [c.name for c in report.checks]
    assert names == [
        "build pods' docker config",
        "BinderHub's image check",
        "push token",
        "push a test image",
        "BinderHub finds the pushed image",
        "user pods' pull",
        "least privilege",
        "delete the test tag",
    ]
    assert "not built yet" in report.checks[1].detail
    # no pull secret: Hub's repositories are public by default, so the anonymous pull works;
    # repo:write cannot delete on Hub: the tag stays, which is no failure
    assert [c.status for c in report.checks] == ["ok"] * 6 + ["skipped"] * 2
    assert "may not delete tags" in report.checks[-1].detail
    assert "  – delete the test tag: these credentials may not delete" in str(report)
    assert '<td style="text-align:left">–</td>' in report._repr_html_()
    repo = f"binderhubdemo/binder-{CHECK_IMAGE[0]}"
    assert fresh.state()["dockerhub"]["repositories"] == {repo: [CHECK_IMAGE[1]]}


def test_admin_scope_deletes_the_test_tag(fresh: Sandbox) -> None:
    report = verify(values_for(fresh, hub_token(fresh, ["repo:admin"])), ca_bundle=fresh.ca_file)
    assert (report.checks[-1].status, report.checks[-1].detail) == ("ok", "deleted")
    assert fresh.state()["dockerhub"]["repositories"] == {}


def test_wrong_password_is_diagnosed(fresh: Sandbox) -> None:
    with pytest.raises(VerificationFailed) as err:
        verify(values_for(fresh, "dckr_pat_wrong"), ca_bundle=fresh.ca_file)
    assert err.value.check == "BinderHub's image check"
    assert "refused user 'binderhubdemo'" in err.value.diagnosis
    assert "wrong, revoked or expired" in err.value.diagnosis


def test_revoked_token_can_no_longer_push(fresh: Sandbox) -> None:
    token = hub_token(fresh, ["repo:write"])
    values = values_for(fresh, token)
    assert verify(values, ca_bundle=fresh.ca_file).ok
    api, auth = fresh.url + "/dockerhub/v2", hub_session(fresh)
    listed = requests.get(f"{api}/access-tokens", headers=auth, verify=fresh.ca_file, timeout=10)
    for t in listed.json()["results"]:
        requests.delete(
            f"{api}/access-tokens/{t['uuid']}", headers=auth, verify=fresh.ca_file, timeout=10
        )
    with pytest.raises(VerificationFailed, match="refused user"):
        verify(values, ca_bundle=fresh.ca_file)


def test_host_mismatch_is_diagnosed(fresh: Sandbox) -> None:
    values = values_for(fresh, hub_token(fresh, ["repo:write"]), registry_url="https://127.0.0.1:1")
    seen = len(fresh.log())
    with pytest.raises(VerificationFailed) as err:
        verify(values, ca_bundle=fresh.ca_file)
    assert err.value.check == "build pods' docker config"
    assert "differs from the image_prefix host" in err.value.diagnosis
    assert len(fresh.log()) == seen  # caught before any request


def test_token_without_push_is_diagnosed(fresh: Sandbox) -> None:
    with pytest.raises(VerificationFailed) as err:
        verify(values_for(fresh, hub_token(fresh, ["repo:read"])), ca_bundle=fresh.ca_file)
    assert err.value.check == "push a test image"
    assert "no push permission" in err.value.diagnosis and "repo:write" in err.value.diagnosis


def test_namespace_of_another_organization_is_diagnosed(fresh: Sandbox) -> None:
    values = values_for(fresh, hub_token(fresh, ["repo:write"]), namespace="someoneelsesorg")
    with pytest.raises(VerificationFailed, match="no push permission on someoneelsesorg/"):
        verify(values, ca_bundle=fresh.ca_file)


def test_wrong_token_url_is_diagnosed(fresh: Sandbox) -> None:
    values = values_for(fresh, hub_token(fresh, ["repo:write"]))
    wrong = values.docker_registry | {
        "token_url": f"{fresh.url}/dockerhub/token?service=wrong.example"
    }
    with pytest.raises(VerificationFailed) as err:
        verify(
            values_for(fresh, values.password.reveal(), docker_registry=wrong),
            ca_bundle=fresh.ca_file,
        )
    assert "check DockerRegistry.token_url" in err.value.diagnosis


def test_missing_token_url_without_not_found_401_is_diagnosed(fresh: Sandbox) -> None:
    # BinderHub's discovery path: Docker Hub-style 401 for a missing repository is an error there
    values = values_for(fresh, hub_token(fresh, ["repo:write"]))
    bare = {"url": values.docker_registry["url"]}
    with pytest.raises(VerificationFailed) as err:
        verify(
            values_for(fresh, values.password.reveal(), docker_registry=bare),
            ca_bundle=fresh.ca_file,
        )
    assert err.value.check == "BinderHub's image check"
    assert "token_url" in err.value.diagnosis


def test_keep_leaves_the_tag_and_says_so(fresh: Sandbox) -> None:
    values = values_for(fresh, hub_token(fresh, ["repo:admin"]))
    report = verify(values, ca_bundle=fresh.ca_file, cleanup=False)
    assert report.ok
    assert (report.checks[-1].status, report.checks[-1].detail) == ("skipped", "kept, as asked")
    assert fresh.state()["dockerhub"]["repositories"] != {}


def test_report_fails_only_on_a_failed_check() -> None:
    report = VerificationReport("r.example/p/x:t")
    report.add("one", "fine")
    report.add("two", "left in place", "skipped")
    assert report.ok and str(report).splitlines()[1:3] == [
        "  ✓ one: fine",
        "  – two: left in place",
    ]
    report.add("three", "broken", "failed")
    assert not report.ok and "  ✗ three: broken" in str(report)
    with pytest.raises(ValueError, match="not one of ok, skipped, failed"):
        report.add("four", "?", "maybe")


def test_failure_carries_the_report_so_far(fresh: Sandbox) -> None:
    with pytest.raises(VerificationFailed) as err:
        verify(values_for(fresh, hub_token(fresh, ["repo:read"])), ca_bundle=fresh.ca_file)
    report = err.value.report
    assert report is not None and not report.ok
    assert [c.status for c in report.checks] == ["ok", "ok", "ok", "failed"]
    assert report.checks[-1].name == err.value.check == "push a test image"
    assert report.checks[-1].detail == err.value.diagnosis


def test_provider_hints_word_the_diagnoses(fresh: Sandbox) -> None:
    hints = VerifyHints(
        credentials="reset the service principal's password and rewrite secret.yaml",
        push="the service principal needs AcrPush on the registry",
    )
    with pytest.raises(VerificationFailed) as err:
        verify(
            values_for(fresh, hub_token(fresh, ["repo:read"])), ca_bundle=fresh.ca_file, hints=hints
        )
    assert err.value.diagnosis.endswith(": the service principal needs AcrPush on the registry")
    assert "repo:write" not in err.value.diagnosis
    with pytest.raises(VerificationFailed) as err:
        verify(values_for(fresh, "dckr_pat_wrong"), ca_bundle=fresh.ca_file, hints=hints)
    assert err.value.diagnosis.endswith(
        "; reset the service principal's password and rewrite secret.yaml"
    )


@pytest.fixture
def busy_registry() -> Iterator[str]:
    """A loopback registry answering every request 503 with an HTTP-date Retry-After."""

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.send_header("Retry-After", email.utils.formatdate(time.time() + 30, usegmt=True))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_date_retry_after_reaches_the_step_runner(busy_registry: str) -> None:
    values = RegistryValues(
        image_prefix=f"{busy_registry}/org/binder-",
        username="u",
        password=Secret("p"),
        registry_url=f"http://{busy_registry}",
    )
    with pytest.raises(TransientCloudError) as err:
        verify(values, insecure=True)
    assert err.value.status == 503
    assert err.value.retry_after is not None and 20 <= err.value.retry_after <= 31
    assert str(err.value).startswith(f"http://{busy_registry} answered 503")


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """A plain-HTTP registry whose challenge realm names another host (localhost)."""

    requests: ClassVar[list[tuple[str, str, bool]]] = []  # (method, path, Authorization sent)
    realm = ""
    pushed: ClassVar[dict[str, bytes]] = {}

    def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization", "")
        FakeRegistry.requests.append((self.command, self.path, bool(auth)))
        path = self.path.split("?")[0]
        if path == "/token":
            self._answer(200, b'{"token": "t"}')
        elif not auth.startswith("Bearer "):
            scope = 'scope="repository:o/x:pull",' if "/manifests/" in path else ""
            challenge = f'Bearer realm="{self.realm}",{scope}service="fake"'
            self._answer(401, WWW_Authenticate=challenge)
        elif self.command == "HEAD":
            self._answer(404)
        elif self.command == "POST":
            self._answer(202, Location="/upload/1")
        elif self.command == "PUT" and "/manifests/" in path:
            FakeRegistry.pushed[path] = body
            self._answer(201)
        elif self.command == "PUT":
            self._answer(201)
        elif self.command == "GET" and path in FakeRegistry.pushed:
            self._answer(200, FakeRegistry.pushed[path])
        else:
            self._answer(404)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 (http.server's names)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def plain_registry() -> Iterator[str]:
    """``host:port`` of a FakeRegistry on loopback, its realm at http://localhost."""
    FakeRegistry.requests, FakeRegistry.pushed = [], {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    FakeRegistry.realm = f"http://localhost:{server.server_address[1]}/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _plain(host: str, **docker_registry: str) -> RegistryValues:
    return RegistryValues(
        image_prefix=f"{host}/o/",
        username="u",
        password=Secret("p"),
        registry_url=f"http://{host}",
        docker_registry=docker_registry,
    )


def test_plain_http_is_refused_before_any_request(plain_registry: str) -> None:
    for values in (
        _plain(plain_registry),
        _plain(plain_registry, url=f"http://{plain_registry}"),
        _plain(plain_registry, token_url=f"http://{plain_registry}/token"),
    ):
        with pytest.raises(VerificationFailed) as err:
            verify(values)
        assert "plain HTTP" in err.value.diagnosis and "--insecure" in err.value.diagnosis
        assert err.value.report is not None and not err.value.report.ok
    assert FakeRegistry.requests == []


def test_plain_http_realm_is_refused_before_credentials(plain_registry: str) -> None:
    http_client = RegistryHTTP("u", Secret("p"))
    with pytest.raises(VerificationFailed, match="plain HTTP"):
        bearer_token(http_client, FakeRegistry.realm, {}, check="push token", hints=VerifyHints())
    with pytest.raises(VerificationFailed, match="plain HTTP"):
        http_client.get(f"http://{plain_registry}/v2/")
    assert FakeRegistry.requests == []


def test_insecure_allows_plain_http_and_a_foreign_realm_is_reported(plain_registry: str) -> None:
    report = verify(_plain(plain_registry), insecure=True)
    assert report.ok, str(report)
    details = {c.name: c.detail for c in report.checks}
    for name in ("BinderHub's image check", "push token"):
        assert "at localhost, another host than the registry's 127.0.0.1" in details[name]
    assert any(method == "PUT" for method, _, _ in FakeRegistry.requests)


def test_unreachable_registry_is_transient_and_tls_failure_is_not(fresh: Sandbox) -> None:
    with pytest.raises(TransientCloudError, match=r"cannot reach https://127.0.0.1:1 \("):
        RegistryHTTP("u", Secret("p")).get("https://127.0.0.1:1/v2/")
    registry = fresh.registries["dockerhub"]
    with pytest.raises(Exception) as err:  # the sandbox's CA is not trusted without ca_bundle
        RegistryHTTP("u", Secret("p")).get(f"{registry}/v2/")
    assert type(err.value).__name__ == "CloudError"
    assert "TLS verification of" in str(err.value)


@pytest.mark.parametrize(
    "prefix",
    [
        "org/binder-",
        "binder-",
        "localhost/binder-",
        "localhost:5000/p/binder-",
        "127.0.0.1:5000/org/binder-",
        "myacr.azurecr.io/project/binder-",
        "europe-docker.pkg.dev/proj/repo/binder-",
        "docker.io/org/binder-",
    ],
)
def test_verify_and_the_values_share_one_host_rule(prefix: str) -> None:
    host, path = split_image_reference(prefix + "x")
    assert image_host(prefix) == host
    assert _split_image(prefix, "x", "t") == (path, "t")
    assert (host + "/" + path).endswith(prefix + "x")


def _skopeo_push(
    box: Sandbox, values: RegistryValues, tmp_path: Path, repo: str
) -> subprocess.CompletedProcess[str]:
    """Push like a build pod: skopeo finds credentials in the chart's config.json by host."""
    host = box.registries["dockerhub"].split("://")[1]
    registry = values.secret(reveal=True)["registry"]
    return skopeo_push(box.ca_file, tmp_path, registry, f"{host}/{repo}:skopeo")


skopeo = needs_skopeo


@skopeo
def test_chart_config_lets_an_independent_client_push(fresh: Sandbox, tmp_path: Path) -> None:
    values = values_for(fresh, hub_token(fresh, ["repo:write"]))
    result = _skopeo_push(fresh, values, tmp_path, "binderhubdemo/binder-from-skopeo")
    assert result.returncode == 0, result.stderr
    assert fresh.state()["dockerhub"]["repositories"]["binderhubdemo/binder-from-skopeo"] == [
        "skopeo"
    ]


@skopeo
def test_independent_client_refuses_bad_values(fresh: Sandbox, tmp_path: Path) -> None:
    wrong = _skopeo_push(
        fresh, values_for(fresh, "dckr_pat_wrong"), tmp_path, "binderhubdemo/binder-x"
    )
    assert wrong.returncode != 0
    other = _skopeo_push(
        fresh,
        values_for(fresh, hub_token(fresh, ["repo:write"])),
        tmp_path,
        "someoneelsesorg/binder-x",
    )
    assert other.returncode != 0
    assert fresh.state()["dockerhub"]["repositories"] == {}
