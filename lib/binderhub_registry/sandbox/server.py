"""The sandbox process: fake clouds over TLS plus real registries, until SIGTERM.

Run as ``python -m binderhub_registry.sandbox.server DIRECTORY``; the
``binderhub-registry sandbox start`` command does that in the background and
waits for ``DIRECTORY/sandbox.json``, written once every port answers.

The server knows no provider: it builds the backend of every registered provider
(:func:`backends`), mounts them on one :class:`~.app.App`, attaches them (each
starts its own registries) and, at the end, shuts them down.

The start-up order keeps the cold start within its 0.5 s: the certificates are
made in a child process (:func:`.tls.start_making`) while this one imports the
web stack and the backends (~0.3 s), so ``cryptography``'s import runs on the
other core; docker-registry children are waited for at their first use, and the
proxy's HTTP client is imported once ``sandbox.json`` is written.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import sys
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from . import tls
from .files import check_private_dir, write_private

if TYPE_CHECKING:
    from .app import BackendFactory

__all__ = ["backends", "serve"]


def registered() -> list[str]:
    """The keys of :data:`binderhub_registry.providers.PROVIDERS`, in its order, read from its
    source: this process runs without the packages' ``__init__`` (:mod:`.bootstrap`), and
    importing the providers would load the notebook API (~0.4 s, most of the cold start's
    budget). Being a process of its own, the server only ever sees the providers registered
    there."""
    source = Path(__file__).parent.parent / "providers" / "__init__.py"
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "PROVIDERS" for t in targets):
                assert node.value is not None
                return list(ast.literal_eval(node.value))
    raise LookupError(f"no PROVIDERS dict in {source}")


def backends(keys: list[str] | None = None) -> list[BackendFactory]:
    """The backend of each provider in ``keys`` (default: every registered one, in order): the
    ``BACKEND`` of ``sandbox/<key>/cloud.py``, imported here, after the certificate maker has
    started (see the module doc). A provider without one stops the start."""
    return [
        import_module(f"{__package__}.{key}.cloud").BACKEND.create
        for key in (registered() if keys is None else keys)
    ]


async def _serve(directory: Path, factories: list[BackendFactory], material: tls.Material) -> None:
    from . import registry_front
    from .app import App, Context

    context = Context(directory, material)
    app = App([make(context) for make in factories], context)
    main = await app.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    try:
        # attach in worker threads, all at once (an attach may block on its own listeners)
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
        registry_front.warm_up()  # after the start, not during it
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
    making = tls.start_making(directory)  # on the other core, while backends() imports
    factories = backends()
    asyncio.run(_serve(directory, factories, tls.finish_making(making, directory)))


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
