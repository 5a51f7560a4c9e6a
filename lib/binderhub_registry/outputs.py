"""The output directory: checked before any cloud call, and held by one run at a time.

A run must never revoke or create what it cannot then write down: so before the
first cloud call ``output_dir`` is expanded (``~``), made (unless it is a dry
run), proven writable with a probe file, and locked for the life of the process.
A second run on the same directory stops at once with one line; the same
process (a notebook whose cells are run again) keeps its lock. The record of
created resources is refused when another user could have written it, because
teardown deletes what it names.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from .errors import InvalidParameter

__all__ = ["LOCK_FILE", "prepare_output_dir"]

LOCK_FILE = ".binderhub-registry.lock"
_RECORD_FILE = "binderhub-registry.json"
#: Locks this process holds, by directory: a notebook's cells may be run again.
_held: dict[Path, int] = {}


def _refuse(rule: str, value: object) -> InvalidParameter:
    return InvalidParameter("output_dir", rule, value)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        try:
            os.lstat(candidate)
        except OSError:  # missing, or a name too long to look up
            continue
        return candidate
    return Path(".")


def _check_names(path: Path, value: str) -> None:
    limit = os.pathconf(_nearest_existing(path), "PC_NAME_MAX")
    for part in path.parts:
        if len(part.encode()) > limit:
            raise _refuse(f"has a component longer than {limit} bytes", value)


def _probe(directory: Path, value: str) -> None:
    """Create ``directory`` and write (then remove) a file in it, or say why not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not directory.is_dir():
            raise FileExistsError(errno.EEXIST, "not a directory")
        probe = directory / f".binderhub-registry-probe-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise _refuse(f"must be a directory you can write ({reason.lower()})", value) from None


def _lock(directory: Path, value: str) -> None:
    key = directory.resolve()
    if key in _held:
        return
    try:
        fd = os.open(
            directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as e:
        reason = (e.strerror or type(e).__name__).lower()
        raise _refuse(f"must hold a lock file this run can open ({reason})", value) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise _refuse(
            f"is in use by another run (pid {holder}): wait for it to finish or choose another "
            "output_dir",
            value,
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[key] = fd  # held until the process ends: the kernel, papermill's run, the CLI


def _check_record(directory: Path, value: str) -> None:
    record = directory / _RECORD_FILE
    try:
        info = record.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise _refuse(f"holds {_RECORD_FILE} that is not a regular file: remove it", value)
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise _refuse(
            f"holds {_RECORD_FILE} that another user could have written (teardown deletes what "
            "it names): check its content, then chmod 600 it",
            value,
        )


def prepare_output_dir(value: str, *, create: bool) -> Path:
    """Expand ``~`` in ``value``, check the directory, and unless ``create`` is False, lock it.

    A dry run (``create=False``) writes nothing: it only checks that the directory
    could be made. Raises InvalidParameter naming ``output_dir`` with what to change.
    """
    directory = Path(value).expanduser()
    _check_names(directory, value)
    existing = _nearest_existing(directory)
    if existing != directory and not existing.is_dir():
        raise _refuse(f"is under {existing}, which is not a directory", value)
    if not create:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise _refuse(f"must be a directory you can write ({existing} is not writable)", value)
        if existing == directory:
            _check_record(directory, value)
        return directory
    _probe(directory, value)
    _check_record(directory, value)
    _lock(directory, value)
    return directory
