"""The real engines behind BinderHub's three consumers, run here as root on private sockets.

- dockerd: the host and dind builders push through it (repo2docker drives it with docker-py),
  with the ``config.json`` the chart renders from ``registry.*``;
- podman: the pink builder pushes with it, the same file as ``--authfile``;
- containerd (``ctr``): the kubelet pulls user pods' images with it, with only what the
  pod's ``imagePullSecrets`` hold (``jupyterhub.imagePullSecret``).

Debian 12's ``docker.io`` and ``podman`` (``make system-deps``; docker.io brings containerd and
runc). One dockerd per test worker, started as DESIGN section 11 says: no iptables, no bridge,
vfs, its data, exec root, pid file and daemon.json in a private temporary directory; its managed
containerd's socket lies under the exec root. Images come from ``docker import`` / ``podman
import`` of a tar made here: nothing is pulled from outside.

What dockerd writes outside its directories, and is removed again when this session made it:
``/etc/docker/key.json`` (20.10's trust key, no flag moves it) and ``/run/docker/plugins``. The
sandbox CA goes to ``/etc/docker/certs.d/<host:port>/ca.crt``, the only place dockerd reads a
registry's CA; exactly the files and directories added there are removed. dockerd does not
check it here, though: it always counts 127.0.0.0/8 among its insecure registries (``docker
info``: InsecureRegistryCIDRs), so it skips TLS verification for the sandbox's loopback
registries. podman (``--cert-dir``) and containerd (``hosts.toml``'s ``ca``) do verify it.

Without root or the binaries the engine tests skip, saying why; in CI (``CI=true``) they fail:
the engines are required there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CTR_NAMESPACE",
    "Engines",
    "HostFiles",
    "engine_problem",
    "engines_or_skip",
    "hosts_dir",
    "start_engines",
    "tiny_tar",
]

#: The Debian package of each binary, for the skip reason.
PACKAGES = {"dockerd": "docker.io", "docker": "docker.io", "ctr": "docker.io", "podman": "podman"}
#: The kubelet's containerd namespace (the CRI plugin's): what a node's pull lands in.
CTR_NAMESPACE = "k8s.io"
#: How long one engine command may take (vfs copies whole layers; the images here are tiny).
TIMEOUT = 120


def _binary(name: str) -> str | None:
    # Debian's client first: another docker CLI on PATH (e.g. /usr/local/bin) is not what
    # CI installs
    for directory in ("/usr/bin", "/usr/sbin"):
        path = Path(directory) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which(name)


def engine_problem() -> str | None:
    """Why the real engines cannot run here, or None."""
    if os.geteuid() != 0:
        return "the real engines need root (dockerd as CI runs it): run the suite as root"
    missing = [name for name in PACKAGES if _binary(name) is None]
    if missing:
        packages = " ".join(sorted({PACKAGES[m] for m in missing}))
        return f"{', '.join(missing)} not installed: apt-get install {packages} (make system-deps)"
    return None


def engines_or_skip() -> None:
    """Skip with the reason when the engines cannot run; in CI (``CI=true``), fail instead."""
    problem = engine_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI requires the real engines: {problem}", pytrace=False)
    pytest.skip(problem)


def tiny_tar(content: str) -> bytes:
    """A one-file root filesystem holding ``content``: an image's whole content, kilobytes
    for vfs to copy (different content, different layer digest)."""
    data = f"binderhub-registry engine check: {content}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("engine-check.txt")
        info.size = len(data)
        info.mode = 0o644
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def hosts_dir(directory: Path, host: str, ca_file: str) -> Path:
    """containerd's ``--hosts-dir``: ``<host>/hosts.toml`` naming the registry and its CA
    (without it ctr speaks plain HTTP to a loopback host).

    The CA is the server's own: a ``[host."https://..."]`` entry is a mirror, tried before
    the server, which is tried after it without the mirror's CA (each refusal followed by an
    x509 error). containerd 1.6 wants a ``host`` table all the same ("invalid `host` tree"):
    an empty one.
    """
    (directory / host).mkdir(parents=True, exist_ok=True)
    (directory / host / "hosts.toml").write_text(
        f'server = "https://{host}"\nca = {json.dumps(ca_file)}\n\n[host]\n'
    )
    return directory


#: What dockerd makes outside its directories (20.10's trust key: no flag moves it; the
#: plugins directory), and the directory of registry CAs this module adds to. Workers share them.
SHARED_HOST_PATHS = (
    Path("/etc/docker/key.json"),
    Path("/run/docker"),
    Path("/run/docker/plugins"),
    Path("/etc/docker/certs.d"),
)
#: Which test processes use the shared host paths, and which of those paths they made (JSON).
SHARED_STATE = Path(tempfile.gettempdir()) / "bhr-engines-host-paths.json"


@contextlib.contextmanager
def _shared_state() -> Iterator[dict[str, Any]]:
    """The shared state, under an exclusive lock, written back at the end."""
    import fcntl

    # root writes it in a world-writable directory: never through a link, only root's file
    fd = os.open(SHARED_STATE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise RuntimeError(f"refusing {SHARED_STATE}: not this user's own file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.read(fd, 1 << 16)
        try:
            state = json.loads(raw) if raw else {}
        except ValueError:
            state = {}
        state.setdefault("pids", [])
        state.setdefault("made", [])
        yield state
        data = json.dumps(state).encode()
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, data)
    finally:
        os.close(fd)  # releases the lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class HostFiles:
    """Paths outside the engines' private directories. This process's own files (a registry's
    CA) are removed at the end; the paths dockerd shares between workers
    (:data:`SHARED_HOST_PATHS`) are removed by the last process using them, and only those
    that none was there before the first one started. A path that was there before is left
    alone; a directory is removed only when empty."""

    made: list[Path] = field(default_factory=list)

    def join(self) -> None:
        """Count this process among the users of the shared paths (before dockerd starts)."""
        with _shared_state() as state:
            state["pids"] = [p for p in state["pids"] if _alive(p)]
            if not state["pids"]:  # the first user: what is missing now is ours to remove
                state["made"] = [str(p) for p in SHARED_HOST_PATHS if not p.exists()]
            state["pids"].append(os.getpid())

    def leave(self) -> None:
        """This process no longer uses them (after its dockerd stopped); the last one removes
        what the first one found missing."""
        with _shared_state() as state:
            state["pids"] = [p for p in state["pids"] if _alive(p) and p != os.getpid()]
            if not state["pids"]:
                _remove([Path(p) for p in sorted(state["made"], key=len, reverse=True)])
                state["made"] = []

    def write(self, path: Path, data: bytes) -> None:
        """Write ``path`` (never over an existing file), making its missing parents below
        the shared directories; removed by :meth:`remove`."""
        missing = []
        parent = path.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another worker's, the same moment
                directory.mkdir(mode=0o755)
                if directory not in SHARED_HOST_PATHS:
                    self.made.append(directory)
        with open(path, "xb") as f:
            f.write(data)
        self.made.append(path)

    def remove(self) -> None:
        """Remove this process's own paths, newest first."""
        _remove(list(reversed(self.made)))
        self.made.clear()


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only when empty
            else:
                path.unlink()


@dataclass
class Engines:
    """A running dockerd (with its containerd) and a podman store, all in ``root``."""

    root: Path
    process: subprocess.Popen[bytes]
    host_files: HostFiles
    docker_bin: str
    podman_bin: str
    ctr_bin: str
    runroot: Path  # podman's, under 50 characters (podman refuses a longer one)
    trusted: set[str] = field(default_factory=set)

    @property
    def docker_socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "exec" / "containerd" / "containerd.sock"

    @property
    def log(self) -> str:
        """dockerd's log so far (its last lines, for a failure message)."""
        text = (self.root / "dockerd.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-30:])

    def _run(
        self, argv: list[str], *, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            timeout=TIMEOUT,
            env=self._env(),
        )
        return subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )

    def _env(self) -> dict[str, str]:
        # nothing from the developer's docker or containers configuration
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGISTRY_"))}
        env["DOCKER_HOST"] = f"unix://{self.docker_socket}"
        env["CONTAINERS_CONF"] = str(self.root / "containers.conf")
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.root / "registries.conf")
        env["CONTAINERS_STORAGE_CONF"] = str(self.root / "storage.conf")
        env["HOME"] = str(self.root / "home")
        return env

    def docker(
        self, config_dir: Path, *args: str, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker --config <config_dir> <args>`` against this dockerd."""
        return self._run([self.docker_bin, "--config", str(config_dir), *args], stdin=stdin)

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``podman <args>`` with this session's store (vfs), no events, nothing of the host's."""
        return self._run(
            [
                self.podman_bin,
                "--root",
                str(self.root / "podman"),
                "--runroot",
                str(self.runroot),
                "--tmpdir",
                str(self.runroot / "tmp"),
                "--storage-driver",
                "vfs",
                "--events-backend",
                "none",
                "--cgroup-manager",
                "cgroupfs",
                *args,
            ]
        )

    def trust(self, host: str, ca_file: str) -> None:
        """The registry CA where dockerd reads it: ``/etc/docker/certs.d/<host>/ca.crt``."""
        if host in self.trusted:
            return
        target = Path("/etc/docker/certs.d") / host / "ca.crt"
        if target.exists():
            # someone else's file (or another worker's for the same port: not possible, each
            # worker's sandbox has its own ports): never overwritten
            if target.read_bytes() != Path(ca_file).read_bytes():
                raise RuntimeError(f"{target} exists with another CA: remove it or free the port")
        else:
            self.host_files.write(target, Path(ca_file).read_bytes())
        self.trusted.add(host)

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ctr <args>`` against this dockerd's containerd, in the kubelet's namespace."""
        return self._run(
            [
                self.ctr_bin,
                "--address",
                str(self.containerd_socket),
                "--namespace",
                CTR_NAMESPACE,
                *args,
            ]
        )

    def ctr_pull(
        self, hosts: Path, ref: str, credential: tuple[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``ctr images pull`` as a kubelet: into the kubelet's namespace, the registry's CA
        from ``hosts``; ``credential`` (username, password) as an image pull secret gives it.

        ctr takes a password only in ``--user u:p`` (where any process can read it from
        /proc) or from its prompt, which wants a terminal: it gets a pseudo-terminal here, and
        the password is typed there. The output is ctr's, never the password (echo is off).
        """
        argv = [
            self.ctr_bin,
            "--address",
            str(self.containerd_socket),
            "--namespace",
            CTR_NAMESPACE,
            "images",
            "pull",
            "--hosts-dir",
            str(hosts),
        ]
        if credential is None:
            return self._run([*argv, ref])
        username, password = credential
        if "\n" in password:
            # a terminal line ends at a newline, and a service-account key file (Google's
            # _json_key) is JSON over many lines: typed as the same JSON on one line; the
            # registry parses it (the kubelet sends the Secret's bytes, whitespace and all)
            password = json.dumps(json.loads(password), separators=(",", ":"))
        return _run_with_prompt([*argv, "--user", username, ref], password, self._env())

    def stop(self) -> None:
        """Stop dockerd (it stops its containerd), remove what it made outside its root."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
        finally:
            self.host_files.remove()
            self.host_files.leave()
            shutil.rmtree(self.runroot, ignore_errors=True)
            shutil.rmtree(self.root, ignore_errors=True)


def _run_with_prompt(
    argv: list[str], answer: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` on a pseudo-terminal; type ``answer`` at its prompt; its output."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            argv,
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # the terminal becomes its controlling one
        )
    finally:
        os.close(follower)
    try:
        # ctr prints "Password: " to stdout, then reads the terminal with echo off
        os.write(leader, answer.encode() + b"\n")
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    finally:
        # drain what the terminal holds (nothing is echoed), then close it
        with contextlib.suppress(OSError):
            while select.select([leader], [], [], 0)[0] and os.read(leader, 4096):
                pass
        os.close(leader)
    return subprocess.CompletedProcess(
        argv, process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


def start_engines(timeout: float = 60.0) -> Engines:
    """Start dockerd (and so containerd) on private sockets; a podman store beside it."""
    root = Path(tempfile.mkdtemp(prefix="bhr-engines-"))
    runroot = Path(tempfile.mkdtemp(prefix="bhr-pr-", dir="/tmp"))
    assert len(str(runroot)) < 50  # podman refuses a longer runroot
    (runroot / "tmp").mkdir()
    (root / "home").mkdir()
    for name in ("containers.conf", "registries.conf"):
        (root / name).write_text("")
    # podman's storage (its flags say the same; the file must name both roots)
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{runroot}"\ngraphroot = "{root / "podman"}"\n'
    )
    # an empty daemon.json: nothing from /etc/docker/daemon.json
    (root / "daemon.json").write_text("{}\n")
    host_files = HostFiles()
    host_files.join()
    dockerd = _binary("dockerd")
    assert dockerd is not None
    argv = [
        dockerd,
        "--config-file", str(root / "daemon.json"),
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--bridge=none",
        "--storage-driver=vfs",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "docker.pid"),
        "-H", f"unix://{root / 'docker.sock'}",
    ]  # fmt: skip
    with open(root / "dockerd.log", "wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a test's Ctrl-C reaches it through stop() only
        )
    bins: dict[str, Any] = {n: _binary(n) for n in ("docker", "podman", "ctr")}
    engines = Engines(
        root=root,
        process=process,
        host_files=host_files,
        docker_bin=bins["docker"],
        podman_bin=bins["podman"],
        ctr_bin=bins["ctr"],
        runroot=runroot,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"dockerd exited at start ({process.returncode}):\n{engines.log}"
                )
            if engines.docker_socket.exists() and engines.containerd_socket.exists():
                ping = engines.docker(root / "home", "version", "--format", "{{.Server.Version}}")
                if ping.returncode == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd was not ready in {timeout:.0f}s:\n{engines.log}")
            time.sleep(0.1)
    except BaseException:
        engines.stop()
        raise
    return engines
