"""The sandbox: local fakes of the clouds plus real registries, for rehearsing the guide.

``start()`` runs the sandbox in the background (one process per sandbox
directory) and returns a :class:`Sandbox` handle; ``ensure()`` reuses a running
one. The handle gives endpoints, the CA to trust, the seeded credentials, and
the admin API (state, reset, faults, log).

On a shared machine the sandbox directory is the user's own: a per-user place
that is not world-writable (``$XDG_RUNTIME_DIR``, else the user's cache
directory), made 0700; a directory that belongs to someone else or is open to
group or others is refused with one line, whoever gave it. Its files are opened
without following links (:mod:`.files`); ``sandbox.json`` is read only from the
user's own file, only its port numbers are taken from it (the CA and the
credentials are always this directory's), and its pid is signalled only when
``/proc`` shows it is this directory's sandbox server, run by the user. The
admin API wants the per-sandbox token from the 0600 ``credentials.json``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ..errors import SandboxError
from .bootstrap import python_argv
from .files import append_fd, check_private_dir, lock_fd, read_private

#: The header carrying the admin token on every ``/_sandbox/`` request (see ``app.ADMIN_HEADER``).
ADMIN_HEADER = "X-Sandbox-Token"
#: The module the sandbox's server process runs: /proc/<pid>/cmdline must name it.
SERVER_MODULE = "binderhub_registry.sandbox.server"
_LOOPBACK_URL = re.compile(r"https://(127\.0\.0\.1|\[::1\]):[0-9]{1,5}")

__all__ = [
    "ADMIN_HEADER",
    "Sandbox",
    "ensure",
    "loopback_env",
    "running",
    "sandbox_dir",
    "start",
    "stop",
]

#: Where credential probes go instead of 169.254.169.254: nothing listens on port 9 (discard).
LOOPBACK_ENV = {
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
    "NO_GCE_CHECK": "True",
    "IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token",
    "IMDS_ENDPOINT": "http://127.0.0.1:9",
    "MSI_ENDPOINT": "http://127.0.0.1:9/msi/token",
    # botocore's last credential source, the EC2 instance metadata (utils.IMDSFetcher): off,
    # and pointed at loopback should anything read the endpoint regardless
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9",
}


def loopback_env() -> dict[str, str]:
    """Variables that keep the clouds' credential probes (metadata servers) on loopback."""
    return dict(LOOPBACK_ENV)


def sandbox_dir() -> Path:
    """``$BINDERHUB_REGISTRY_SANDBOX_DIR``, else a per-user place no other user can write:
    ``$XDG_RUNTIME_DIR/binderhub-registry-sandbox`` when that directory is the user's own,
    else ``~/.cache/binderhub-registry/sandbox`` (``$XDG_CACHE_HOME`` when set)."""
    configured = os.environ.get("BINDERHUB_REGISTRY_SANDBOX_DIR")
    if configured:
        return Path(configured).expanduser().absolute()
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        try:
            check_private_dir(Path(runtime))
            return Path(runtime) / "binderhub-registry-sandbox"
        except OSError:  # missing, or not private: the cache directory instead
            pass
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "binderhub-registry" / "sandbox"


def _private_dir(directory: Path | None, *, create: bool) -> Path:
    """``directory`` (default :func:`sandbox_dir`), absolute, made 0700 if ``create``; a
    directory another user owns or could write is refused with one line."""
    directory = (directory or sandbox_dir()).absolute()
    if create:
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise SandboxError(
                f"cannot make the sandbox directory {directory}: {e.strerror or e}"
            ) from None
    try:
        check_private_dir(directory)
    except FileNotFoundError:
        if create:
            raise SandboxError(f"the sandbox directory {directory} vanished") from None
    except OSError as e:
        raise SandboxError(
            f"refusing the sandbox directory: {e}; remove it, or set "
            "BINDERHUB_REGISTRY_SANDBOX_DIR to a directory of yours with mode 0700"
        ) from None
    return directory


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
        try:
            data: dict[str, dict[str, str]] = json.loads(read_private(Path(self.credentials_file)))
        except (OSError, ValueError) as e:
            raise SandboxError(f"cannot read the sandbox's credentials: {e}") from None
        return data[name]

    def admin_headers(self) -> dict[str, str]:
        """The header every ``/_sandbox/`` request needs: this sandbox's admin token."""
        return {ADMIN_HEADER: self.credentials("sandbox")["admin_token"]}

    def env(self) -> dict[str, str]:
        """Variables for a shell or kernel that talks to this sandbox."""
        return {
            "BINDERHUB_REGISTRY_SANDBOX": self.url,
            "BINDERHUB_REGISTRY_SANDBOX_DIR": str(self.directory),
            "REQUESTS_CA_BUNDLE": self.ca_file,
            "SSL_CERT_FILE": self.ca_file,
            "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": self.ca_file,
            "AWS_CA_BUNDLE": self.ca_file,  # botocore reads no REQUESTS_CA_BUNDLE
        } | LOOPBACK_ENV

    def _admin(self, method: str, name: str, body: Any = None) -> Any:
        r = requests.request(
            method,
            f"{self.url}/_sandbox/{name}",
            json=body,
            headers=self.admin_headers(),
            verify=self.ca_file,
            timeout=30,
        )
        if not r.ok:  # with the sandbox's reason (a 500 carries the backend's exception)
            raise requests.HTTPError(
                f"{r.status_code} from /_sandbox/{name}: {r.text[:500]}", response=r
            )
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
        "delay", "drop", "after", "body"}`` (``app.Fault``); a bad spec raises HTTPError (400)."""
        self._admin("POST", "faults", list(faults))

    def faults(self) -> list[dict[str, Any]]:
        """Pending faults as specs, each with the ``times`` it has left."""
        result: list[dict[str, Any]] = self._admin("GET", "faults")
        return result

    def advance_clock(self, days: float) -> dict[str, Any]:
        """Move every backend's clock ``days`` ahead and run the registries' cleanup policies
        (what each deleted, by backend)."""
        answer: dict[str, Any] = self._admin("POST", "clock", {"advance_days": days})
        return answer

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


def _is_sandbox_process(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is the user's own sandbox server for ``directory`` (and alive)."""
    if pid <= 1 or not _alive(pid):
        return False
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self/cmdline").exists():  # no procfs (not Linux): owner via kill only
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    try:
        owner = os.stat(proc).st_uid
        argv = (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return False
    return (
        owner == os.getuid()
        and argv[-1] == os.fsencode(directory)
        and any(SERVER_MODULE.encode() in arg for arg in argv[:-1])
    )


def _read_info(directory: Path) -> dict[str, Any] | None:
    """``sandbox.json``'s pid, url and registries when the file is the user's own and each
    value has the expected form (loopback HTTPS); None otherwise."""
    try:
        info = json.loads(read_private(directory / "sandbox.json", private=False, limit=1 << 16))
        pid, url, registries = info["pid"], info["url"], info["registries"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(registries, dict):
        return None
    urls = [url, *registries.values()]
    if not all(isinstance(u, str) and _LOOPBACK_URL.fullmatch(u) for u in urls):
        return None
    return {"pid": pid, "url": url, "registries": registries}


def running(directory: Path | None = None) -> Sandbox | None:
    """The sandbox running for ``directory``, or None; SandboxError for a directory another
    user owns or could write."""
    directory = _private_dir(directory, create=False)
    info = _read_info(directory)
    if info is None or not _is_sandbox_process(info["pid"], directory):
        return None
    # the CA and the credentials are this directory's, whatever sandbox.json says
    return Sandbox(
        directory=directory,
        ca_file=str(directory / "ca.crt"),
        credentials_file=str(directory / "credentials.json"),
        **info,
    )


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    try:
        fd = lock_fd(directory / "lock")
    except OSError as e:
        raise SandboxError(f"refusing the sandbox's lock file: {e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def start(directory: Path | None = None, timeout: float = 20.0) -> Sandbox:
    """Start the sandbox in the background (or return the running one)."""
    if not shutil.which("docker-registry") and not Path("/usr/bin/docker-registry").exists():
        raise SandboxError(
            "the sandbox needs Debian's docker-registry: run `sudo apt-get install docker-registry`"
        )
    directory = _private_dir(directory, create=True)
    with _locked(directory):
        found = running(directory)
        if found:
            return found
        (directory / "sandbox.json").unlink(missing_ok=True)
        try:
            log = append_fd(directory / "sandbox.log")
        except OSError as e:
            raise SandboxError(f"refusing the sandbox's log file: {e}") from None
        try:
            proc = subprocess.Popen(
                python_argv(SERVER_MODULE, str(directory)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=os.environ | LOOPBACK_ENV,
            )
        finally:
            os.close(log)
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
    """Stop the sandbox of ``directory``; False when none was running.

    Only a process that ``/proc`` shows to be this directory's sandbox server, run by
    the user, is signalled: a pid planted in ``sandbox.json`` is left alone.
    """
    found = running(directory)
    if not found:
        return False
    os.kill(found.pid, 15)
    deadline = time.monotonic() + timeout
    while _is_sandbox_process(found.pid, found.directory) and time.monotonic() < deadline:
        time.sleep(0.01)
    if _is_sandbox_process(found.pid, found.directory):
        os.kill(found.pid, 9)
    (found.directory / "sandbox.json").unlink(missing_ok=True)
    return True
