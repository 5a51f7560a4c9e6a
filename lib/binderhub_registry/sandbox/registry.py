"""Real registries for the sandbox: Debian's docker-registry (CNCF distribution) with token auth.

Each provider gets its own process with its real ``service`` name; its token
realm is a route of the fake cloud, which checks credentials against live state.

Each process keeps its :class:`TagRecords`: when each tag was pushed and pulled through the
registry's front (docker-registry keeps no such times), which the fakes' retention reads.

Every process dies with the sandbox, even when the sandbox is killed with
SIGKILL: on Linux the child asks for ``PR_SET_PDEATHSIG`` before it execs. That
signal follows the *thread* that forked the child, so every process is forked
by one thread that lives as long as the sandbox, not by a worker thread that
may retire.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

from .files import write_private
from .tls import Material

__all__ = [
    "REGISTRY_BINARY",
    "RegistryProcess",
    "TagRecords",
    "TagTimes",
    "TokenIssuer",
    "free_port",
    "spawn",
]

REGISTRY_BINARY = "docker-registry"


# prctl(2) is looked up here, in the parent: a freshly forked child must not load libraries
_PR_SET_PDEATHSIG = 1
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
# the one long-lived thread that forks every registry process (see the module doc)
_SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="sandbox-spawner")


def _die_with_parent(parent: int) -> Any:
    """A ``preexec_fn``: SIGTERM this child when the sandbox goes, however it goes."""

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the sandbox died before prctl: nobody would signal us
            os._exit(1)

    return preexec


def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` quietly, as a child that dies with this process."""

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(os.getpid()),
        )

    return _SPAWNER.submit(popen).result()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TokenIssuer:
    """Signs registry bearer tokens (ES256, libtrust ``kid``) that docker-registry accepts."""

    def __init__(self, material: Material, issuer: str) -> None:
        self.key = material.token_key_pem
        self.kid = material.token_kid
        self.issuer = issuer

    def issue(self, service: str, subject: str, access: list[dict[str, Any]]) -> str:
        """A JWT for ``subject`` granting ``access`` (type, name, actions) on ``service``."""
        import jwt  # here, not at start: it is not needed before the first token

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})


@dataclass
class TagTimes:
    """One tag's last push and last pull (None: never), in its cloud's clock, and the
    manifest digest the push stored under it."""

    pushed: float
    pulled: float | None = None
    digest: str = ""


class TagRecords:
    """When each (repository, tag) was pushed and pulled through the registry's front.

    The front notes a manifest PUT by tag that docker-registry stored (201) as a push, a
    manifest GET by tag that it answered (200) as a pull, and a manifest DELETE that it
    accepted (202) as the end of that manifest's tags; times are the cloud's clock when
    the answer came. The fakes' own calls go to docker-registry directly, so they are no
    pulls. A registry starts empty and every client push goes through its front, so every
    tag a fake finds has a record. Thread-safe (the front notes from its event loop).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tags: dict[tuple[str, str], TagTimes] = {}
        # (repository, digest) -> its first push: when the image was uploaded
        self._uploads: dict[tuple[str, str], float] = {}

    def pushed(self, repository: str, tag: str, digest: str, when: float) -> None:
        """A push of ``digest`` under ``tag``; an earlier pull of the tag stays its last."""
        with self._lock:
            before = self._tags.get((repository, tag))
            pulled = before.pulled if before is not None else None
            self._tags[(repository, tag)] = TagTimes(when, pulled, digest)
            self._uploads.setdefault((repository, digest), when)

    def pulled(self, repository: str, tag: str, when: float) -> None:
        """A pull of ``tag`` (a tag without a record: nothing to note)."""
        with self._lock:
            found = self._tags.get((repository, tag))
            if found is not None:
                found.pulled = when

    def get(self, repository: str, tag: str) -> TagTimes | None:
        """A copy of the tag's record, or None."""
        with self._lock:
            found = self._tags.get((repository, tag))
            return None if found is None else TagTimes(found.pushed, found.pulled, found.digest)

    def uploaded(self, repository: str, digest: str) -> float | None:
        """When ``digest`` was first pushed to ``repository`` (since it last went), or None."""
        with self._lock:
            return self._uploads.get((repository, digest))

    def manifests(self, repository: str) -> dict[str, float]:
        """Every manifest pushed to ``repository`` and not deleted since, tagged or not (a tag
        pushed again with new content leaves the old one untagged), with its first push."""
        with self._lock:
            return {d: t for (r, d), t in self._uploads.items() if r == repository}

    def restore(
        self, repository: str, digest: str, uploaded: float | None, tags: dict[str, TagTimes]
    ) -> None:
        """A manifest put back after its delete (a fake untagging some of its tags): its first
        push (None: none known) and the times of the tags it keeps, as they were."""
        with self._lock:
            if uploaded is not None:
                self._uploads[(repository, digest)] = uploaded
            for tag, times in tags.items():
                self._tags[(repository, tag)] = TagTimes(times.pushed, times.pulled, digest)

    def all(self) -> dict[tuple[str, str], TagTimes]:
        """Every record, copied."""
        with self._lock:
            return {k: TagTimes(t.pushed, t.pulled, t.digest) for k, t in self._tags.items()}

    def forget(self, repository: str, *, tag: str = "", digest: str = "") -> None:
        """A tag deleted, or a manifest (``digest``) deleted with every tag on it."""
        with self._lock:
            if tag:
                self._tags.pop((repository, tag), None)
            if digest:
                self._uploads.pop((repository, digest), None)
                for key in [k for k, t in self._tags.items() if k[0] == repository]:
                    if self._tags[key].digest == digest:
                        del self._tags[key]

    def age(self, seconds: float) -> None:
        """Every push and pull ``seconds`` earlier: the same as the clock of whoever compares
        moving ahead (a registry whose age comparisons are a client's, on the real clock)."""
        with self._lock:
            for times in self._tags.values():
                times.pushed -= seconds
                if times.pulled is not None:
                    times.pulled -= seconds
            for key in self._uploads:
                self._uploads[key] -= seconds

    def clear(self) -> None:
        """Nothing recorded (the registry restarted empty)."""
        with self._lock:
            self._tags.clear()
            self._uploads.clear()


class RegistryProcess:
    """One docker-registry process on 127.0.0.1 over TLS, storage in memory."""

    def __init__(
        self,
        name: str,
        directory: Path,
        material: Material,
        *,
        service: str,
        realm: str,
        issuer: str,
    ) -> None:
        self.name = name
        self.service = service
        self.issuer = TokenIssuer(material, issuer)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.config_file = directory / f"registry-{name}.yml"
        self.material = material
        self.proc: subprocess.Popen[bytes] | None = None
        self.times = TagRecords()  # pushes and pulls through the front (content's times)
        self._ready = False
        self._ready_lock = threading.RLock()  # one waiter (re)starts; the others find it ready
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "inmemory": {},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"127.0.0.1:{self.port}",
                "secret": secrets.token_hex(16),
                "tls": {"certificate": str(material.cert_file), "key": str(material.key_file)},
            },
            "auth": {
                "token": {
                    "realm": realm,
                    "service": service,
                    "issuer": issuer,
                    "rootcertbundle": str(material.token_cert_file),
                }
            },
        }
        # JSON is YAML; a fresh 0600 file (it holds the http secret), never through a link
        write_private(self.config_file, json.dumps(config).encode())
        self._ssl = ssl.create_default_context(cafile=str(material.ca_file))

    def start(self) -> None:
        """Start the process and return at once; :meth:`ready` waits for its port.

        Nothing waits here: the sandbox answers before its registries do (the cold
        start budget), and the first use of a registry (a proxied call, an admin
        read) waits in :meth:`ready`.
        """
        binary = shutil.which(REGISTRY_BINARY) or "/usr/bin/docker-registry"
        with self._ready_lock:
            self.proc = spawn([binary, "serve", str(self.config_file)])
            self._ready = False

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the port accepts a connection; RuntimeError when the process died."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"docker-registry {self.name} exited ({self.proc.returncode})"
                    ) from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"docker-registry {self.name} did not open its port"
                    ) from None
                time.sleep(0.005)

    def ready(self, attempts: int = 3) -> None:
        """Wait once for the started process's port; a start that died is started again.

        docker-registry was seen aborting at start (exit -6) on a loaded machine, which
        made a reset answer 500: a fresh start succeeds. Cheap once ready (a flag).
        """
        if self._ready:
            return
        with self._ready_lock:
            for attempt in range(attempts):
                if self._ready:
                    return
                if self.proc is None:
                    self.start()
                try:
                    self.wait_ready()
                    self._ready = True
                    return
                except RuntimeError:
                    self.stop()
                    if attempt == attempts - 1:
                        raise

    @property
    def is_ready(self) -> bool:
        """Whether :meth:`ready` has seen the port open since the last start."""
        return self._ready

    def restart(self) -> None:
        """Start again empty (a backend's reset): :meth:`stop`, then :meth:`start`; the
        first use waits for the port (:meth:`ready`), so a reset does not."""
        self.stop()
        self.start()

    def stop(self) -> None:
        """Stop the process (its in-memory content, and so its tags' times, go with it)."""
        self._ready = False
        self.times.clear()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def admin_get(self, path: str, repository: str | None = None) -> tuple[int, Any]:
        """GET ``path`` with the sandbox's own token: catalog, and pull on ``repository``."""
        self.ready()
        access: list[dict[str, Any]] = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
        if repository:
            access.append({"type": "repository", "name": repository, "actions": ["pull"]})
        token = self.issuer.issue(self.service, "sandbox-admin", access)
        req = Request(self.url + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urlopen(req, timeout=5, context=self._ssl) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except OSError as e:
            code = getattr(e, "code", 0)
            return int(code or 0), None

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest with the sandbox's own token, as a cloud's cleanup does
        (docker-registry takes every tag on it along), and forget its tags' times; False when
        docker-registry had no such manifest."""
        self.ready()
        access = [{"type": "repository", "name": repository, "actions": ["pull", "delete"]}]
        token = self.issuer.issue(self.service, "sandbox-admin", access)
        req = Request(
            f"{self.url}/v2/{repository}/manifests/{digest}",
            headers={"Authorization": f"Bearer {token}"},
            method="DELETE",
        )
        try:
            with urlopen(req, timeout=10, context=self._ssl) as resp:
                gone = bool(resp.status == 202)
        except OSError as e:
            if getattr(e, "code", 0) != 404:
                raise
            gone = False
        self.times.forget(repository, digest=digest)
        return gone

    def catalog(self) -> list[str]:
        """Every repository docker-registry lists, tags or none (its manifests all untagged)."""
        status, body = self.admin_get("/v2/_catalog?n=1000")
        return list((body or {}).get("repositories", [])) if status == 200 else []

    def repositories(self) -> dict[str, list[str]]:
        """Every repository with its tags, sorted."""
        out: dict[str, list[str]] = {}
        for repo in self.catalog():
            tags = self.tags(repo)
            if tags:
                out[repo] = tags
        return out

    def tags(self, repository: str) -> list[str]:
        """Tags of ``repository`` (empty when it does not exist)."""
        status, body = self.admin_get(f"/v2/{repository}/tags/list", repository)
        return sorted((body or {}).get("tags") or []) if status == 200 else []
