"""Files of the sandbox directory, opened so that a planted link or a foreign file is refused.

The directory must be the user's own and closed to group and others
(:func:`check_private_dir`); inside it, no name is followed if it is a symbolic
link (``O_NOFOLLOW``), new files are made with ``O_EXCL`` and mode 0600 unless
told otherwise, and files read back must be regular files of the user that no
one else can write. This module imports nothing of the package: the sandbox
server uses it too, and it starts without the package's ``__init__``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "UnsafePath",
    "append_fd",
    "check_private_dir",
    "lock_fd",
    "read_private",
    "write_private",
]

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path in the sandbox directory that is not the user's own regular file or directory."""


def check_private_dir(directory: Path) -> os.stat_result:
    """``directory``'s own status (a link is not followed) when it is the user's, mode 0700.

    Raises FileNotFoundError when it is missing, UnsafePath with the reason otherwise.
    """
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(f"{directory} is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{directory} is not a directory")
    if info.st_uid != os.getuid():
        raise UnsafePath(f"{directory} belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o077:
        raise UnsafePath(
            f"{directory} is open to other users (mode {stat.S_IMODE(info.st_mode):04o})"
        )
    return info


def _check_own_file(fd: int, path: Path, *, private: bool) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePath(f"{path} is not a regular file")
    if info.st_uid != os.getuid():
        raise UnsafePath(f"{path} belongs to another user (uid {info.st_uid})")
    if info.st_mode & (0o077 if private else 0o022):
        raise UnsafePath(f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):04o})")


def _open_own(path: Path, flags: int, *, private: bool) -> int:
    # O_NONBLOCK: a planted FIFO must not hang the open; regular files ignore it
    fd = os.open(path, flags | _NOFOLLOW | os.O_NONBLOCK, 0o600)
    try:
        _check_own_file(fd, path, private=private)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_fd(path: Path) -> int:
    """A descriptor of the lock file ``path`` (made 0600 if missing, never truncated)."""
    return _open_own(path, os.O_RDWR | os.O_CREAT, private=True)


def append_fd(path: Path) -> int:
    """A descriptor appending to the log file ``path`` (made 0600 if missing)."""
    return _open_own(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, private=True)


def read_private(path: Path, *, private: bool = True, limit: int = 1 << 20) -> bytes:
    """The content of ``path``: the user's regular file, closed to others (``private``: to
    group and others for reading too; else for writing only), at most ``limit`` bytes."""
    fd = _open_own(path, os.O_RDONLY, private=private)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafePath(f"{path} is larger than {limit} bytes")
    return data


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` at ``mode``, atomically, through a fresh file (O_EXCL).

    The new file is renamed over ``path``: a link planted at ``path`` is replaced, never
    followed.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a crashed write (a link is removed, not followed)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # exact, whatever the umask
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
