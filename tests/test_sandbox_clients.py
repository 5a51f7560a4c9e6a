"""Real clients nobody here wrote, against every sandbox registry.

skopeo (containers/image, as a build pod's ``docker push`` finds credentials by
host) pushes an OCI layout with the chart's ``config.json`` as its authfile,
through the Docker Hub registry and through an ACR front. It converts the layer
to zstd on the way, so the layer's size is unknown when the upload starts and Go's
HTTP client sends the PATCH body chunked (``Transfer-Encoding: chunked``), as a
build pod's push of a freshly compressed layer does; a front must stream that
to docker-registry intact (an ``http.server`` front lost it: "digest invalid").
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry.sandbox import Sandbox, tls
from binderhub_registry.sandbox.app import App, Context
from binderhub_registry.sandbox.registry_front import FrontConfig, Grant, RegistryFront

from .helpers import Tenant, assign_push, make_principal, make_registry, settings
from .skopeo import CONVERTED, needs_skopeo, skopeo_push


def push(ca_file: str, work: Path, host: str, user: str, password: str, image: str) -> Any:
    """skopeo's push to ``host/image`` with these credentials, through the chart's config.json."""
    registry = {"url": f"https://{host}", "username": user, "password": password}
    return skopeo_push(ca_file, work, registry, f"{host}/{image}")


@needs_skopeo
def test_skopeo_pushes_to_the_docker_hub_registry(fresh: Sandbox, tmp_path: Path) -> None:
    creds = fresh.credentials("dockerhub")
    host = fresh.registries["dockerhub"].removeprefix("https://")
    image = f"{creds['username']}/skopeo-check:v1"
    pushed = push(fresh.ca_file, tmp_path, host, creds["username"], creds["password"], image)
    assert pushed.returncode == 0, pushed.stderr
    assert CONVERTED in pushed.stderr
    repositories = fresh.state()["dockerhub"]["repositories"]
    assert repositories[f"{creds['username']}/skopeo-check"] == ["v1"]


@needs_skopeo
def test_skopeo_pushes_in_chunks_through_an_acr_front(
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    settings(tenant.box, "azure", principal_not_found=0)
    registry = make_registry(tenant)
    app, sp, secret = asyncio.run(make_principal(tenant))
    assign_push(tenant, registry.id, sp.id, "4c01c3c7-2dce-5fbe-a30f-0e74eda8695a")
    host = registry.properties.login_server
    pushed = push(tenant.box.ca_file, tmp_path, host, app.app_id, secret, "binderhub/x:tag")
    assert pushed.returncode == 0, pushed.stderr
    assert CONVERTED in pushed.stderr  # so the layer's PATCH was chunked
    state = tenant.box.state()["azure"]["registries"]
    assert state[0]["repositories"] == {"binderhub/x": ["tag"]}
    # the same push with a wrong password is refused at the front
    work = tmp_path / "wrong"
    work.mkdir()
    refused = push(tenant.box.ca_file, work, host, app.app_id, "wrong", "binderhub/y:tag")
    assert refused.returncode != 0 and "401" in refused.stderr


@pytest.fixture
def harbor_like(tmp_path: Path) -> Iterator[RegistryFront]:
    """A Harbor-like front made of configuration and a checker alone, on an app in this process."""
    context = Context(tmp_path / "app", tls.generate(tmp_path / "app"))
    app = App([], context)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(app.start(), loop).result(timeout=10)
    robots = {"robot$binderhub+ci": "s3cret"}

    def check(user: str, password: str) -> Grant | None:
        if robots.get(user) != password:
            return None
        return Grant(
            user,
            lambda repo, wanted: (
                wanted & {"pull", "push"} if repo.startswith("binderhub/") else set()
            ),
        )

    front = RegistryFront(
        app,
        FrontConfig(
            name="harbor",
            service="harbor-registry",
            issuer="harbor-token-issuer",
            realm_path="/service/token",
            check=check,
            lock=threading.RLock(),
            basic_ping=False,  # docker-registry's own Bearer challenge, realm on the front
            token_body=lambda token: {"token": token},
        ),
    )
    try:
        yield front
    finally:
        front.stop()
        loop.call_soon_threadsafe(loop.stop)


@needs_skopeo
def test_a_harbor_like_front_is_configuration_only(
    harbor_like: RegistryFront, tmp_path: Path
) -> None:
    ca_file = str(harbor_like.process.material.ca_file)
    host = harbor_like.host
    ok = push(ca_file, tmp_path, host, "robot$binderhub+ci", "s3cret", "binderhub/x:v1")
    assert ok.returncode == 0, ok.stderr
    assert CONVERTED in ok.stderr
    assert harbor_like.process.tags("binderhub/x") == ["v1"]
    outside = push(ca_file, tmp_path, host, "robot$binderhub+ci", "s3cret", "other/x:v1")
    assert outside.returncode != 0  # the token carries nothing outside the project
