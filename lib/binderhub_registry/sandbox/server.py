"""The sandbox process: fake clouds over TLS plus real registries, until SIGTERM.

Run as ``python -m binderhub_registry.sandbox.server DIRECTORY``; the
``binderhub-registry sandbox start`` command does that in the background and
waits for ``DIRECTORY/sandbox.json``, written once every port answers.

The server knows no provider: it builds every backend in :data:`BACKENDS`,
mounts them on one :class:`~.app.App`, attaches them (each starts its own
registries) and, at the end, shuts them down.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from . import tls
from .app import App, BackendFactory, Context
from .azure import AzureCloud
from .dockerhub import DockerHub
from .files import check_private_dir, write_private
from .google import GoogleCloud
from .harbor import Harbor
from .ovh import OvhCloud

__all__ = ["BACKENDS", "serve"]

#: Every provider's backend, in mount order.
BACKENDS: list[BackendFactory] = [
    DockerHub.create,
    AzureCloud.create,
    GoogleCloud.create,
    OvhCloud.create,
    Harbor.create,
]


async def _serve(directory: Path) -> None:
    context = Context(directory, tls.generate(directory))
    app = App([make(context) for make in BACKENDS], context)
    main = await app.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    try:
        # attach in worker threads, all at once: each waits for its own registry processes
        await asyncio.gather(*(asyncio.to_thread(b.attach, app) for b in app.backends))
        registries: dict[str, str] = {}
        for backend in app.backends:
            registries |= backend.registries()
        info = {
            "pid": os.getpid(),
            "url": main.url,
            "ca_file": str(context.material.ca_file),
            "registries": registries,
            "credentials_file": str(directory / "credentials.json"),
        }
        # 0600, through a fresh file renamed into place: a planted link is never followed
        write_private(directory / "sandbox.json", json.dumps(info, indent=2).encode())
        await stopped.wait()
    finally:
        (directory / "sandbox.json").unlink(missing_ok=True)
        await main.aclose()
        for backend in app.backends:
            await asyncio.to_thread(backend.shutdown)


def serve(directory: Path) -> None:
    """Start everything, write sandbox.json, then wait for SIGTERM or SIGINT."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_private_dir(directory)  # the user's own, closed to others (see files.py)
    asyncio.run(_serve(directory))


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
