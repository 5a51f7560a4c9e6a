"""The registry pieces every sandbox backend shares: one restart, one refusal hook, one record
of pushes and pulls.

A backend's reset restarts its docker-registry empty with ``RegistryProcess.restart`` (the
first use waits for the port); a cloud's own refusal of a registry call is its front's
``RegistryFront.refusal``, which the shared proxy calls in a worker thread holding the
cloud's lock, before docker-registry sees the call; every push and pull a client makes through
a front is dated on the cloud's clock in ``process.times``, which the fakes' retention reads.
"""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from starlette.requests import Request as HttpRequest

from binderhub_registry import sandbox
from binderhub_registry.push import tiny_image
from binderhub_registry.sandbox import tls
from binderhub_registry.sandbox.app import App, Context, Response
from binderhub_registry.sandbox.registry import RegistryProcess
from binderhub_registry.sandbox.registry_front import (
    FrontConfig,
    Grant,
    RegistryFront,
    registry_error,
)

from .helpers import EcrBox

SANDBOX = Path(__file__).parents[1] / "lib" / "binderhub_registry" / "sandbox"


class _Front(RegistryFront):
    """A front that refuses calls carrying ``X-Refuse``, noting how it was called."""

    seen: list[dict[str, Any]]

    def refusal(self, http: HttpRequest) -> Response | None:
        lock = self.config.lock
        other = threading.Thread(target=lambda: seen.update(free=lock.acquire(blocking=False)))
        seen: dict[str, Any] = {"rest": http.path_params.get("rest")}
        other.start()
        other.join()
        if seen["free"]:
            lock.release()
        seen["thread"] = threading.current_thread().name
        self.seen.append(seen)
        if "x-refuse" in http.headers:
            return registry_error(418, "DENIED", "refused by the cloud")
        return None


#: The fixture's cloud clock (a test moves it).
CLOCK = [1000.0]
OCI = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def front(tmp_path: Path) -> Iterator[_Front]:
    """A front on an app in this process; ``u``/``p`` may do anything."""
    tmp_path.chmod(0o700)
    context = Context(tmp_path, tls.generate(tmp_path))
    app = App([], context)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="loop", daemon=True).start()
    asyncio.run_coroutine_threadsafe(app.start(), loop).result(timeout=10)
    config = FrontConfig(
        name="hooks",
        service="hooks",
        issuer="hooks",
        realm_path="/token",
        check=lambda user, password: (
            Grant(user, lambda name, wanted: wanted) if (user, password) == ("u", "p") else None
        ),
        lock=threading.RLock(),
        clock=lambda: CLOCK[0],
    )
    CLOCK[0] = 1000.0
    made = _Front(app, config)
    made.seen = []
    try:
        yield made
    finally:
        made.stop()
        loop.call_soon_threadsafe(loop.stop)


def test_a_front_s_refusal_answers_before_docker_registry_under_the_cloud_s_lock(
    front: _Front,
) -> None:
    ca = str(front.process.material.ca_file)
    url = f"https://{front.host}/v2/team/app/manifests/latest"
    refused = requests.get(url, auth=("u", "p"), headers={"X-Refuse": "1"}, verify=ca, timeout=30)
    assert refused.status_code == 418
    assert refused.json()["errors"][0]["message"] == "refused by the cloud"
    (seen,) = front.seen
    assert seen["rest"] == "team/app/manifests/latest"
    assert seen["free"] is False  # the cloud's lock was held
    assert seen["thread"] != "loop"  # a worker thread, never the event loop
    passed = requests.get(url, auth=("u", "p"), verify=ca, timeout=30)
    assert passed.status_code == 404  # docker-registry's own answer: no such manifest
    assert passed.json()["errors"][0]["code"] in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def _push(front: _Front, repository: str, tag: str, *, layer_missing: bool = False) -> Any:
    """A one-blob image pushed through the front as ``u``; the manifest PUT's answer."""
    ca, url = str(front.process.material.ca_file), f"https://{front.host}/v2/{repository}"
    config = json.dumps({"os": "linux", "x": f"{repository}:{tag}", "gone": layer_missing})
    config = config.encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    if not layer_missing:
        started = requests.post(f"{url}/blobs/uploads/", auth=("u", "p"), verify=ca, timeout=30)
        location = started.headers["Location"]
        location = location if location.startswith("http") else f"https://{front.host}{location}"
        sep = "&" if "?" in location else "?"
        done = requests.put(
            f"{location}{sep}digest={digest}", data=config, auth=("u", "p"), verify=ca, timeout=30
        )
        assert done.status_code == 201, done.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest,
            "size": len(config),
        },
        "layers": [],
    }
    return requests.put(
        f"{url}/manifests/{tag}",
        data=json.dumps(manifest),
        headers={"Content-Type": OCI},
        auth=("u", "p"),
        verify=ca,
        timeout=30,
    )


def test_the_front_dates_what_docker_registry_stores_and_serves_on_the_cloud_s_clock(
    front: _Front,
) -> None:
    ca, url = str(front.process.material.ca_file), f"https://{front.host}/v2/team/app"
    times = front.process.times
    stored = _push(front, "team/app", "v1")
    assert stored.status_code == 201
    ((key, found),) = times.all().items()
    assert key == ("team/app", "v1") and found.pushed == 1000.0 and found.pulled is None
    assert found.digest == stored.headers["Docker-Content-Digest"]
    assert times.uploaded("team/app", found.digest) == 1000.0
    CLOCK[0] = 2000.0
    # what docker-registry refuses, or a HEAD, or a read by digest, or the fake's own read: none
    assert _push(front, "team/app", "v1", layer_missing=True).status_code == 400

    def get(path: str, method: str = "GET") -> int:
        answer = requests.request(
            method, url + path, auth=("u", "p"), headers={"Accept": OCI}, verify=ca, timeout=30
        )
        return answer.status_code

    assert get("/manifests/v2") == 404
    assert get("/manifests/v1", "HEAD") == 200
    assert get(f"/manifests/{found.digest}") == 200
    process = front.process  # the fakes read docker-registry directly, with their own token
    own = process.issuer.issue(
        process.service,
        "sandbox-admin",
        [{"type": "repository", "name": "team/app", "actions": ["pull"]}],
    )
    direct = requests.get(
        f"{process.url}/v2/team/app/manifests/v1",
        headers={"Authorization": f"Bearer {own}", "Accept": OCI},
        verify=ca,
        timeout=30,
    )
    assert direct.status_code == 200
    assert times.get("team/app", "v1") == found
    assert get("/manifests/v1") == 200  # a client's pull
    now = times.get("team/app", "v1")
    assert now is not None and now.pulled == 2000.0 and now.pushed == 1000.0
    CLOCK[0] = 3000.0
    assert _push(front, "team/app", "v1").status_code == 201  # the same image pushed again
    again = times.get("team/app", "v1")
    assert again is not None and (again.pushed, again.pulled) == (3000.0, 2000.0)
    assert times.uploaded("team/app", found.digest) == 1000.0  # the image: uploaded once
    deleted = requests.delete(
        f"{url}/manifests/{found.digest}", auth=("u", "p"), verify=ca, timeout=30
    )
    assert deleted.status_code == 202
    assert times.all() == {} and times.uploaded("team/app", found.digest) is None
    assert _push(front, "team/app", "v1").status_code == 201
    assert times.uploaded("team/app", found.digest) == 3000.0  # pushed anew: uploaded anew
    front.process.restart()
    assert times.all() == {}  # the content went, its times with it


def test_restart_starts_a_new_empty_process_and_the_first_use_waits(front: _Front) -> None:
    process = front.process
    process.ready()
    before = process.proc
    process.restart()
    assert process.proc is not None and process.proc is not before
    assert before is not None and before.poll() is not None  # the old one (its content) is gone
    assert process.repositories() == {}  # the first use waits for the new one's port
    assert process.is_ready


def test_the_ecr_reset_restarts_its_registry_through_the_one_helper(
    ecr: EcrBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    restarted: list[RegistryProcess] = []
    monkeypatch.setattr(RegistryProcess, "restart", lambda self: restarted.append(self))
    with ecr.cloud.lock:
        ecr.cloud.reset()
    assert restarted == [ecr.cloud.front.process]


def test_no_backend_restarts_or_refuses_on_its_own() -> None:
    """The repeats this file's hooks replaced stay gone: no backend stops its docker-registry
    but through the front, and no front overrides ``proxy`` to refuse before it."""
    for module in sorted(SANDBOX.rglob("*.py")):
        if module.name in ("registry.py", "registry_front.py"):
            continue
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "stop":
                inner = node.value
                assert not (isinstance(inner, ast.Attribute) and inner.attr == "process"), (
                    f"{module.relative_to(SANDBOX)}:{node.lineno}: use process.restart()"
                )
            if isinstance(node, ast.AsyncFunctionDef) and node.name == "proxy":
                names = {getattr(n, "attr", getattr(n, "id", "")) for n in ast.walk(node)}
                assert not any("refus" in name for name in names), (
                    f"{module.relative_to(SANDBOX)}:{node.lineno}: refuse in refusal(), "
                    "which RegistryFront.proxy calls"
                )


def _hub_registry_call(
    box: sandbox.Sandbox, method: str, repository: str, path: str, **kw: Any
) -> requests.Response:
    """A registry call to the Hub's front with a realm token for pull and push, as the seeded
    account (what ``docker login`` then a push gets)."""
    creds = box.credentials("dockerhub")
    token = requests.get(
        f"{box.url}/dockerhub/token",
        params={"service": "registry.docker.io", "scope": f"repository:{repository}:pull,push"},
        auth=(creds["username"], creds["password"]),
        verify=box.ca_file,
        timeout=10,
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"} | kw.pop("headers", {})
    url = f"{box.registries['dockerhub']}/v2/{repository}/{path}"
    return requests.request(method, url, headers=headers, verify=box.ca_file, timeout=10, **kw)


def test_docker_hub_s_tag_records_are_the_front_s(fresh: sandbox.Sandbox) -> None:
    """A manifest PUT docker-registry refuses (a config blob it lacks) is no push: the tag's
    ``tag_last_pushed`` stays 20 days ago on Hub's API, as the one push that happened."""
    repository = "binderhubdemo/binder-dated"
    layer, config, manifest = tiny_image()
    for blob in (layer, config):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        started = _hub_registry_call(fresh, "POST", repository, "blobs/uploads/")
        location = started.headers["Location"]
        if not location.startswith("http"):
            location = fresh.registries["dockerhub"] + location
        sep = "&" if "?" in location else "?"
        done = requests.put(
            f"{location}{sep}digest={digest}",
            data=blob,
            headers={"Authorization": started.request.headers["Authorization"]},
            verify=fresh.ca_file,
            timeout=10,
        )
        assert done.status_code == 201, done.text
    oci = {"Content-Type": OCI}
    stored = _hub_registry_call(
        fresh, "PUT", repository, "manifests/t1", data=manifest, headers=oci
    )
    assert stored.status_code == 201, stored.text
    fresh.advance_clock(20)
    broken = json.loads(manifest)
    broken["config"]["digest"] = "sha256:" + "0" * 64
    refused = _hub_registry_call(
        fresh, "PUT", repository, "manifests/t1", data=json.dumps(broken), headers=oci
    )
    assert refused.status_code == 400, refused.text  # MANIFEST_BLOB_UNKNOWN
    creds = fresh.credentials("dockerhub")
    signed_in = requests.post(
        f"{fresh.url}/dockerhub/v2/auth/token",
        json={"identifier": creds["username"], "secret": creds["password"]},
        verify=fresh.ca_file,
        timeout=10,
    ).json()["access_token"]
    listed = requests.get(
        f"{fresh.url}/dockerhub/v2/namespaces/binderhubdemo/repositories/binder-dated/tags",
        headers={"Authorization": f"Bearer {signed_in}"},
        verify=fresh.ca_file,
        timeout=10,
    )
    (tag,) = listed.json()["results"]
    pushed = dt.datetime.fromisoformat(tag["tag_last_pushed"].replace("Z", "+00:00"))
    age = dt.datetime.now(dt.UTC) - pushed
    assert dt.timedelta(days=19) < age < dt.timedelta(days=21)
    assert tag["tag_last_pulled"] is None
