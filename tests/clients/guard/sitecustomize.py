"""Loaded by every Python the client tests start (``PYTHONPATH``): no socket leaves loopback.

A connection to, or a name lookup of, anything but 127.0.0.1, ::1 or localhost
is refused with an OSError and appended to ``$BHR_NET_GUARD_LOG``, which the
test then finds non-empty. The real Azure CLI is code nobody here wrote: this
proves what it reached, at the socket level, without changing it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

_LOG = os.environ.get("BHR_NET_GUARD_LOG", "")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _refuse(what: str) -> OSError:
    if _LOG:
        with open(_LOG, "a") as log:
            log.write(what + "\n")
    return OSError(f"blocked by the client tests' network guard: {what}")


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
        raise _refuse(f"connect {address[0]}:{address[1]}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and name not in _LOOPBACK:
        raise socket.gaierror(socket.EAI_NONAME, str(_refuse(f"resolve {name}")))
    return _getaddrinfo(host, *args, **kwargs)


if _LOG:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = _guarded_getaddrinfo
