"""The sandbox: local fakes of the clouds plus real registries, for rehearsing the guide.

``start()`` runs the sandbox in the background (one process per sandbox
directory) and returns a :class:`Sandbox` handle; ``ensure()`` reuses a running
one. The handle gives endpoints, the CA to trust, the seeded credentials, and
the admin API (state, reset, faults, log).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ..errors import SandboxError

__all__ = ["Sandbox", "ensure", "loopback_env", "running", "sandbox_dir", "start", "stop"]

#: Where credential probes go instead of 169.254.169.254: nothing listens on port 9 (discard).
LOOPBACK_ENV = {
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
    "NO_GCE_CHECK": "True",
    "IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token",
    "IMDS_ENDPOINT": "http://127.0.0.1:9",
    "MSI_ENDPOINT": "http://127.0.0.1:9/msi/token",
}


# The server process needs the sandbox's own modules only. Registering the two packages by
# path, without running their __init__ (the notebook API: requests, yaml, ...; ~0.3 s), keeps
# the sandbox's cold start within its 0.5 s budget. ``python -m
# binderhub_registry.sandbox.server DIR`` runs the same server, just slower to start.
_PACKAGES = [
    ("binderhub_registry", str(Path(__file__).parent.parent)),
    ("binderhub_registry.sandbox", str(Path(__file__).parent)),
]
_SERVER_BOOTSTRAP = f"""
import runpy, sys, types
for name, path in {_PACKAGES!r}:
    package = types.ModuleType(name)
    package.__path__ = [path]
    sys.modules[name] = package
runpy.run_module("binderhub_registry.sandbox.server", run_name="__main__", alter_sys=True)
"""


def loopback_env() -> dict[str, str]:
    """Variables that keep the clouds' credential probes (metadata servers) on loopback."""
    return dict(LOOPBACK_ENV)


def sandbox_dir() -> Path:
    """``$BINDERHUB_REGISTRY_SANDBOX_DIR``, else a per-user folder in the temp directory."""
    configured = os.environ.get("BINDERHUB_REGISTRY_SANDBOX_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"binderhub-registry-sandbox-{os.getuid()}"


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox: its endpoints and admin API."""

    directory: Path
    pid: int
    url: str
    ca_file: str
    registries: dict[str, str]
    credentials_file: str

    def credentials(self, name: str) -> dict[str, str]:
        """Seeded account ``name``'s username and password (a sandbox-only secret)."""
        data: dict[str, dict[str, str]] = json.loads(Path(self.credentials_file).read_text())
        return data[name]

    def env(self) -> dict[str, str]:
        """Variables for a shell or kernel that talks to this sandbox."""
        return {
            "BINDERHUB_REGISTRY_SANDBOX": self.url,
            "BINDERHUB_REGISTRY_SANDBOX_DIR": str(self.directory),
            "REQUESTS_CA_BUNDLE": self.ca_file,
            "SSL_CERT_FILE": self.ca_file,
            "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": self.ca_file,
        } | LOOPBACK_ENV

    def _admin(self, method: str, name: str, body: Any = None) -> Any:
        r = requests.request(
            method, f"{self.url}/_sandbox/{name}", json=body, verify=self.ca_file, timeout=30
        )
        r.raise_for_status()
        return r.json()

    def state(self) -> dict[str, Any]:
        """Every provider's resources, without secrets."""
        result: dict[str, Any] = self._admin("GET", "state")
        return result

    def reset(self) -> None:
        """Back to the seeded state: no faults, empty log, empty registries."""
        self._admin("POST", "reset")

    def add_faults(self, *faults: dict[str, Any]) -> None:
        """Inject faults, each ``{"method", "path" (regex), "status", "times", "retry_after",
        "delay", "drop", "after"}``."""
        self._admin("POST", "faults", list(faults))

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._admin("DELETE", "faults")

    def log(self) -> list[dict[str, Any]]:
        """Requests seen since the last reset: method, path, query, status."""
        result: list[dict[str, Any]] = self._admin("GET", "log")
        return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def running(directory: Path | None = None) -> Sandbox | None:
    """The sandbox running for ``directory``, or None."""
    directory = directory or sandbox_dir()
    try:
        info = json.loads((directory / "sandbox.json").read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(info["pid"])):
        return None
    return Sandbox(directory=directory, **info)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start(directory: Path | None = None, timeout: float = 20.0) -> Sandbox:
    """Start the sandbox in the background (or return the running one)."""
    directory = directory or sandbox_dir()
    if not shutil.which("docker-registry") and not Path("/usr/bin/docker-registry").exists():
        raise SandboxError(
            "the sandbox needs Debian's docker-registry: run `sudo apt-get install docker-registry`"
        )
    with _locked(directory):
        found = running(directory)
        if found:
            return found
        (directory / "sandbox.json").unlink(missing_ok=True)
        log = open(directory / "sandbox.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER_BOOTSTRAP, str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=os.environ | LOOPBACK_ENV,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = running(directory)
            if found and found.pid == proc.pid:
                return found
            if proc.poll() is not None:
                raise SandboxError(
                    f"the sandbox exited at start ({proc.returncode}); "
                    f"see {directory / 'sandbox.log'}"
                )
            time.sleep(0.005)
        proc.kill()
        raise SandboxError(
            f"the sandbox did not start in {timeout:.0f}s; see {directory / 'sandbox.log'}"
        )


def ensure(directory: Path | None = None) -> Sandbox:
    """The running sandbox, started first if needed."""
    return running(directory) or start(directory)


def stop(directory: Path | None = None, timeout: float = 10.0) -> bool:
    """Stop the sandbox of ``directory``; False when none was running."""
    directory = directory or sandbox_dir()
    found = running(directory)
    if not found:
        return False
    os.kill(found.pid, 15)
    deadline = time.monotonic() + timeout
    while _alive(found.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if _alive(found.pid):
        os.kill(found.pid, 9)
    (directory / "sandbox.json").unlink(missing_ok=True)
    return True
