"""The sandbox process: fake clouds over TLS plus real registries, until SIGTERM.

Run as ``python -m binderhub_registry.sandbox.server DIRECTORY``; the
``binderhub-registry sandbox start`` command does that in the background and
waits for ``DIRECTORY/sandbox.json``, written once every port answers.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

from . import tls
from .app import App
from .azure import AzureCloud, seed_credentials
from .dockerhub import OTHER_USER, SEED_USER, DockerHub
from .registry import RegistryProcess

__all__ = ["serve"]


def _credentials(directory: Path) -> dict[str, dict[str, str]]:
    """Seed accounts' secrets: made once per sandbox directory, kept across restarts (0600).

    A file from an older version gains the accounts it lacks; existing ones are kept.
    """
    path = directory / "credentials.json"
    data: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}
    seeds = {
        "dockerhub": lambda: {"username": SEED_USER, "password": secrets.token_urlsafe(18)},
        "dockerhub-other": lambda: {"username": OTHER_USER, "password": secrets.token_urlsafe(18)},
        # Azure: the deploying service principal (tenant, client id, secret, subscription)
        "azure": seed_credentials,
    }
    missing = {name: make() for name, make in seeds.items() if name not in data}
    if missing:
        data |= missing
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
    return data


def serve(directory: Path) -> None:
    """Start everything, write sandbox.json, then wait for SIGTERM or SIGINT."""
    directory.mkdir(parents=True, exist_ok=True)
    material = tls.generate(directory)
    creds = _credentials(directory)
    hub = DockerHub(
        {
            creds["dockerhub"]["username"]: creds["dockerhub"]["password"],
            creds["dockerhub-other"]["username"]: creds["dockerhub-other"]["password"],
        }
    )
    registries: list[RegistryProcess] = []

    def restart_registries() -> None:
        for registry in registries:
            registry.stop()
        for registry in registries:
            registry.start()
        for registry in registries:
            registry.wait_ready()

    # Azure starts a registry (and its ACR-like front) per registry created through ARM
    azure = AzureCloud(directory, material, creds["azure"])
    app = App([hub, azure], on_reset=restart_registries)
    azure.attach(app)
    server = app.serve(0, str(material.cert_file), str(material.key_file))
    url = f"https://127.0.0.1:{server.server_address[1]}"
    hub.registry = RegistryProcess(
        "dockerhub",
        directory,
        material,
        service=hub.service,
        realm=f"{url}/dockerhub/token",
        issuer=hub.issuer,
    )
    registries.append(hub.registry)
    for registry in registries:
        registry.start()

    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        for registry in registries:
            registry.wait_ready()
        info = {
            "pid": os.getpid(),
            "url": url,
            "ca_file": str(material.ca_file),
            "registries": {r.name: r.url for r in registries},
            "credentials_file": str(directory / "credentials.json"),
        }
        tmp = directory / "sandbox.json.tmp"
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(directory / "sandbox.json")
        stopped.wait()
    finally:
        (directory / "sandbox.json").unlink(missing_ok=True)
        server.shutdown()
        for registry in registries:
            registry.stop()
        azure.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
