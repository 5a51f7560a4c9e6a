"""The sandbox itself: admin API, faults, Docker Hub's errors, the live-state realm, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from azure.identity import ClientSecretCredential

from binderhub_registry import sandbox
from binderhub_registry.sandbox import Sandbox, tls
from binderhub_registry.sandbox.app import App, Context

from .helpers import Tenant, make_registry


def hub(box: Sandbox, method: str, path: str, **kw: object) -> requests.Response:
    return requests.request(
        method, f"{box.url}/dockerhub{path}", verify=box.ca_file, timeout=10, **kw
    )  # type: ignore[arg-type]


def sign_in(box: Sandbox) -> dict[str, str]:
    creds = box.credentials("dockerhub")
    r = hub(
        box,
        "POST",
        "/v2/auth/token",
        json={"identifier": creds["username"], "secret": creds["password"]},
    )
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_serves_tls_with_its_own_ca_only(fresh: Sandbox) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(fresh.url + "/_sandbox/state", timeout=5)  # system CAs do not know it
    state = requests.get(
        fresh.url + "/_sandbox/state",
        headers=fresh.admin_headers(),
        verify=fresh.ca_file,
        timeout=5,
    )
    assert state.ok
    assert fresh.url.startswith("https://127.0.0.1:")
    assert all(url.startswith("https://127.0.0.1:") for url in fresh.registries.values())


def test_seeded_state_and_reset(fresh: Sandbox) -> None:
    seeded = fresh.state()
    assert seeded["dockerhub"]["access_tokens"] == []
    assert seeded["dockerhub"]["orgs"]["binderhubdemoorg"] == ["binderhubdemo"]
    hub(
        fresh,
        "POST",
        "/v2/access-tokens",
        headers=sign_in(fresh),
        json={"token_label": "x", "scopes": ["repo:read"]},
    )
    assert len(fresh.state()["dockerhub"]["access_tokens"]) == 1
    fresh.reset()
    assert fresh.state() == seeded
    assert fresh.log() == []


def test_docker_hub_error_shapes(fresh: Sandbox) -> None:
    bad = hub(
        fresh, "POST", "/v2/auth/token", json={"identifier": "binderhubdemo", "secret": "nope"}
    )
    assert bad.status_code == 401 and bad.json()["detail"] == "Incorrect authentication credentials"
    assert hub(fresh, "GET", "/v2/access-tokens").status_code == 401
    auth = sign_in(fresh)
    assert hub(fresh, "GET", "/v2/orgs/nosuchorg/members", headers=auth).status_code == 404
    assert hub(fresh, "GET", "/v2/orgs/someoneelsesorg/members", headers=auth).status_code == 403
    r = hub(
        fresh,
        "POST",
        "/v2/access-tokens",
        headers=auth,
        json={"token_label": "x", "scopes": ["repo:everything"]},
    )
    assert r.status_code == 400 and "invalid scopes" in r.json()["message"]


def test_access_tokens_have_deterministic_ids_and_show_secret_once(fresh: Sandbox) -> None:
    auth = sign_in(fresh)
    made = hub(
        fresh,
        "POST",
        "/v2/access-tokens",
        headers=auth,
        json={"token_label": "a", "scopes": ["repo:write"]},
    )
    assert made.status_code == 201
    assert made.json()["uuid"] == "00000000-0000-4000-8000-000000000001"
    assert made.json()["token"].startswith("dckr_pat_")
    listed = hub(fresh, "GET", "/v2/access-tokens", headers=auth).json()
    assert listed["results"][0]["token"] == ""
    assert (
        hub(fresh, "DELETE", f"/v2/access-tokens/{made.json()['uuid']}", headers=auth).status_code
        == 204
    )


def test_faults_status_retry_after_times_and_drop(fresh: Sandbox) -> None:
    fresh.add_faults(
        {"method": "GET", "path": "/v2/users/", "status": 429, "retry_after": 7, "times": 2}
    )
    for _ in range(2):
        r = hub(fresh, "GET", "/v2/users/binderhubdemo")
        assert (r.status_code, r.headers["Retry-After"]) == (429, "7")
    assert hub(fresh, "GET", "/v2/users/binderhubdemo").status_code == 200
    fresh.add_faults({"method": "*", "path": "/v2/users/", "drop": True})
    with pytest.raises(requests.ConnectionError):
        hub(fresh, "GET", "/v2/users/binderhubdemo")
    assert [e["status"] for e in fresh.log()] == [429, 429, 200, "dropped"]


def test_a_delayed_request_holds_up_no_other(fresh: Sandbox) -> None:
    fresh.add_faults({"method": "GET", "path": "/v2/users/binderhubdemo$", "delay": 3.0})
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(hub, fresh, "GET", "/v2/users/binderhubdemo")
        while any(f["times"] for f in fresh.faults()):
            time.sleep(0.01)  # until the slow one has taken the fault: it is waiting out the delay
        # another request is answered while the delayed one still waits: order, not seconds
        assert hub(fresh, "GET", "/v2/users/someoneelse").status_code == 200
        assert not slow.done()
        assert slow.result().status_code == 200  # a delay alone lets the request through


def test_accepted_connections_send_without_nagle_delay(tmp_path: Path) -> None:
    # without TCP_NODELAY every answer on a kept-alive connection waits ~40 ms for the client's
    # delayed ACK (Nagle's algorithm): each accepted socket must have it set
    context = Context(tmp_path / "app", tls.generate(tmp_path / "app"))
    app = App([], context)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    try:
        asyncio.run_coroutine_threadsafe(app.start(), loop).result(timeout=10)
        session = requests.Session()
        for _ in range(2):  # the second request reuses the kept-alive connection
            answer = session.get(
                app.url + "/nowhere", verify=str(context.material.ca_file), timeout=10
            )
            assert answer.status_code == 404
        transports = list(app._connections.values())
        assert len(transports) == 1
        sock = transports[0].get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        loop.call_soon_threadsafe(loop.stop)


def test_realm_checks_live_state(fresh: Sandbox) -> None:
    creds = fresh.credentials("dockerhub")
    realm = fresh.url + "/dockerhub/token"
    params = {"service": "registry.docker.io", "scope": "repository:binderhubdemo/x:pull,push"}
    ok = requests.get(
        realm,
        params=params,
        auth=(creds["username"], creds["password"]),
        verify=fresh.ca_file,
        timeout=5,
    )
    assert ok.status_code == 200 and ok.json()["token"] == ok.json()["access_token"]
    bad = requests.get(
        realm, params=params, auth=(creds["username"], "wrong"), verify=fresh.ca_file, timeout=5
    )
    assert bad.status_code == 401
    wrong_service = requests.get(
        realm,
        params=params | {"service": "x"},
        auth=(creds["username"], creds["password"]),
        verify=fresh.ca_file,
        timeout=5,
    )
    assert wrong_service.status_code == 400


def test_registry_challenges_with_the_realm(fresh: Sandbox) -> None:
    r = requests.get(fresh.registries["dockerhub"] + "/v2/", verify=fresh.ca_file, timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer realm="{fresh.url}/dockerhub/token",service="registry.docker.io"'
    )


def test_cli_start_prints_exports_status_and_stop(tmp_path: Path) -> None:
    env = os.environ | {"BINDERHUB_REGISTRY_SANDBOX_DIR": str(tmp_path / "sb")}
    cli = [sys.executable, "-m", "binderhub_registry.cli", "sandbox"]
    started = subprocess.run([*cli, "start"], env=env, capture_output=True, text=True, timeout=60)
    try:
        assert started.returncode == 0, started.stderr
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines()
        )
        assert exports["BINDERHUB_REGISTRY_SANDBOX"].startswith("https://127.0.0.1:")
        assert (
            exports["REQUESTS_CA_BUNDLE"]
            == exports["SSL_CERT_FILE"]
            == exports["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"]
        )
        assert exports["GCE_METADATA_HOST"].startswith("127.0.0.1")
        status = subprocess.run(
            [*cli, "status"], env=env, capture_output=True, text=True, timeout=30
        )
        assert status.returncode == 0 and "running" in status.stdout
        again = subprocess.run([*cli, "start"], env=env, capture_output=True, text=True, timeout=60)
        assert again.stdout == started.stdout  # reused, not a second sandbox
    finally:
        subprocess.run([*cli, "stop"], env=env, capture_output=True, timeout=30)
    status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True, timeout=30)
    assert status.returncode == 1 and "not running" in status.stdout
    assert sandbox.running(tmp_path / "sb") is None


def test_credentials_file_is_private(box: Sandbox) -> None:
    assert os.stat(box.credentials_file).st_mode & 0o777 == 0o600
    assert (
        json.loads(Path(box.credentials_file).read_text())["dockerhub"]["username"]
        == "binderhubdemo"
    )


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc; zombies count as gone)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_registries_die_with_a_killed_sandbox(tmp_path: Path) -> None:
    box = sandbox.start(tmp_path / "sb")
    try:
        creds = box.credentials("azure")
        credential = ClientSecretCredential(
            creds["tenant_id"],
            creds["client_id"],
            creds["client_secret"],
            authority=f"{box.url}/azure/login",
            disable_instance_discovery=True,
            connection_verify=box.ca_file,
        )
        started = _children(box.pid)  # the registries of the sandbox's start (Docker Hub, ...)
        make_registry(Tenant(box, creds, credential))  # one more registry, started later
        registries = _children(box.pid)
        assert len(started) >= 1 and len(registries) == len(started) + 1  # + the ACR front's
    finally:
        os.kill(box.pid, signal.SIGKILL)
    deadline = time.monotonic() + 2
    while any(_alive(p) for p in registries) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [p for p in registries if _alive(p)]
