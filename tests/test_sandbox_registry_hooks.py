"""The registry pieces every sandbox backend shares: one restart, one refusal hook.

A backend's reset restarts its docker-registry empty with ``RegistryProcess.restart`` (the
first use waits for the port); a cloud's own refusal of a registry call is its front's
``RegistryFront.refusal``, which the shared proxy calls in a worker thread holding the
cloud's lock, before docker-registry sees the call.
"""

from __future__ import annotations

import ast
import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from starlette.requests import Request as HttpRequest

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
    )
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
