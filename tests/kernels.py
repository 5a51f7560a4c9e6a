"""Kernels for the papermill runs, forked from a warm process instead of started cold.

A notebook run used to pay a kernel's start (Python, ipykernel, IPython, zmq) and the
package's imports (the Azure SDK alone is over a second) before its first cell: 3-5 s
on two busy cores, for each of the suite's ~200 runs. Here each test worker keeps one
*zygote*, a process that has imported all that once and waits; each kernel is a fresh
``fork`` of it, so every run still gets a process of its own (nothing a run leaves in
a module survives into the next), ready in a fraction of a second.

The pieces, all in this file:

- ``serve`` (the zygote): imports, then for each request forks a child that takes the
  requester's stdio, working directory, environment and arguments and runs
  ipykernel's launcher, as ``python -m ipykernel_launcher`` would. It reports the
  child's exit status, and kills a child whose requester went away.
- ``launch`` (the kernel command jupyter_client runs, with ``python -I -S``: no site,
  ~20 ms): sends the request, forwards signals, exits with the kernel's status.
- :class:`ForkKernelManager`: jupyter_client's manager with that command as the
  kernel's argv; papermill takes it as ``kernel_manager_class``.

What a fork cannot give is a module re-read from the environment at import: the
zygote imports with the session's environment (the tests' changes to it come later and
reach each kernel, which reads them when it runs). ipykernel's parent poller is
one such import-time read, set again per kernel. ``BHR_FORK_KERNELS=0`` starts every
kernel cold, as before.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import sys
from typing import Any

#: The modules the zygote imports (what every kernel of the suite loads first).
PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "binderhub_registry")


def _send(sock: socket.socket, data: dict[str, Any], fds: list[int] | None = None) -> None:
    body = json.dumps(data).encode()
    message = struct.pack("!I", len(body)) + body
    if fds:
        sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(message)


def _receive(sock: socket.socket, with_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One message (None at end of stream) and the descriptors sent with it."""
    fds: list[int] = []
    head = b""
    while len(head) < 4:
        space = socket.CMSG_SPACE(with_fds * array.array("i").itemsize) if with_fds else 0
        chunk, ancillary, _, _ = sock.recvmsg(4 - len(head), space)
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(data[: len(data) - (len(data) % got.itemsize)])
                fds += list(got)
        if not chunk:
            return None, fds
        head += chunk
    (size,) = struct.unpack("!I", head)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body), fds


# --- the kernel command (stdlib only: it runs with -I -S) -------------------------------
def launch(path: str, argv: list[str]) -> int:
    """Ask the zygote at ``path`` for a kernel with ``argv``; wait for it; its exit status."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
    _send(sock, request, [0, 1, 2])
    started, _ = _receive(sock)
    if started is None:
        return 1
    pid = int(started["pid"])

    def forward(signum: int, frame: Any) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    ended, _ = _receive(sock)
    return int(ended["status"]) if ended else 1


# --- the zygote ---------------------------------------------------------------------------
def _child(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become ``python -m ipykernel_launcher <argv>``; never returns."""
    status = 1
    try:
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        conn.close()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # read from JPY_PARENT_PID when ipykernel was imported (in the zygote): the kernel
        # exits when its parent (the zygote, which outlives no test worker) is gone
        parent = [f"--IPKernelApp.parent_handle={os.getppid()}"]
        import runpy

        sys.argv = ["ipykernel_launcher", *request["argv"], *parent]
        sys.path.insert(0, os.getcwd())  # as `python -m` does (the launcher takes it out again)
        runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def serve(path: str) -> None:
    """Import, listen at ``path``, fork a kernel per request; exit with the parent."""
    import importlib
    import selectors
    import threading

    parent = os.getppid()
    del sys.path[0]  # this file's directory: a kernel sees what `python -m` gives it
    for name in PRELOAD:
        importlib.import_module(name)
    from binderhub_registry import providers

    for name in providers.keys():
        # a provider that fails to import here fails in its kernel, as before
        with contextlib.suppress(Exception):
            providers.get(name)
    # a fork copies only the calling thread: the imports must not have started any
    assert threading.active_count() == 1, [t.name for t in threading.enumerate()]

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    select = selectors.DefaultSelector()
    select.register(listener, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}  # kernel pid -> its launcher's connection
    print("ready", flush=True)
    while os.getppid() == parent:
        for key, _ in select.select(timeout=0.05):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                request, fds = _receive(conn, with_fds=3)
                if request is None or len(fds) != 3:
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    select.close()
                    listener.close()
                    for other in children.values():
                        other.close()
                    _child(conn, request, fds)
                for fd in fds:
                    os.close(fd)
                _send(conn, {"pid": pid})
                children[pid] = conn
                select.register(conn, selectors.EVENT_READ, pid)
            else:  # a launcher's connection: only its end is expected (it was killed)
                pid = key.data
                select.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
                if pid in children:
                    del children[pid]
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        while True:  # every ended child, those killed above too (no zombie is left)
            try:
                pid, wait = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in children:
                conn = children.pop(pid)
                select.unregister(conn)
                try:
                    _send(conn, {"status": os.waitstatus_to_exitcode(wait)})
                except OSError:
                    pass
                conn.close()
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- the test worker's side -------------------------------------------------------------
class Zygote:
    """The worker's zygote, started on first use; ``None`` kernel argv when unavailable."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: Any = None
        self.path = ""
        self.failed = os.environ.get("BHR_FORK_KERNELS", "1") == "0"

    def socket_path(self) -> str | None:
        """The running zygote's socket (started now if needed); None: start kernels cold."""
        if self.failed:
            return None
        if self.process is not None and self.process.poll() is None:
            return self.path
        import subprocess
        import tempfile

        directory = tempfile.mkdtemp(prefix="bhr-zygote-")
        self.path = os.path.join(directory, "socket")
        # its errors in a file: the worker's stderr is, at this moment, some test's capture
        with open(os.path.join(directory, "zygote.log"), "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "serve", self.path],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        if self.process.stdout.readline().strip() != "ready":
            self.stop()
            self.failed = True  # say so once, then every kernel starts cold
            print("kernel zygote did not start: kernels start cold", file=sys.stderr)
            return None
        return self.path

    def stop(self) -> None:
        """Stop the zygote (its kernels exit with it)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
            shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)


def fork_kernel_manager(zygote: Zygote) -> type:
    """An AsyncKernelManager class whose python3 kernels are forked by ``zygote``."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class ForkKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec | None:
            spec = super().kernel_spec
            path = zygote.socket_path()
            if spec is None or path is None or spec.argv[1:3] != ["-m", "ipykernel_launcher"]:
                return spec
            argv = [sys.executable, "-I", "-S", __file__, "launch", path, *spec.argv[3:]]
            # interrupts as messages: a signal would reach the launcher, not the kernel
            return KernelSpec(**(spec.to_dict() | {"argv": argv, "interrupt_mode": "message"}))

    return ForkKernelManager


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(launch(sys.argv[2], sys.argv[3:]))
