"""The output directory: checked before any cloud call, and held by one run at a time.

A run must never revoke or create what it cannot then write down: so before the
first cloud call ``output_dir`` is expanded (``~``), made (unless it is a dry
run), proven writable with a probe file, and locked for the life of the process.
A second run on the same directory stops at once with one line; the same
process (a notebook whose cells are run again) keeps its lock. The record of
created resources is refused when another user could have written it, because
teardown deletes what it names; so is a directory another user owns or that group
or others may write (they could plant a link or a record in it).

What a run writes there is written beside its target and renamed over it
(:func:`write_file`): a link at the target is replaced, never followed. Files a
run would replace must be this project's own: :func:`check_output_files` refuses,
before any cloud call, a ``config.yaml`` or ``secret.yaml`` without the header this
project writes, or written by another notebook, and another notebook's record.
A ``.gitignore`` keeps the secrets there out of git (:func:`ignore_secrets`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import InvalidParameter

__all__ = [
    "HEADER_MARK",
    "LOCK_FILE",
    "check_output_files",
    "ignore_secrets",
    "prepare_output_dir",
    "read_own_record",
    "read_record",
    "write_file",
]

LOCK_FILE = ".binderhub-registry.lock"
_RECORD_FILE = "binderhub-registry.json"
#: How every values file this project writes starts, followed by `` (<notebook>).``
HEADER_MARK = "# BinderHub Helm values written by binderhub-registry"
#: What the ``.gitignore`` this project writes into an output_dir keeps out of git.
_IGNORED = (
    "secret.yaml",
    "prune-secret.yaml",  # Docker Hub's prune job's token (its Secret manifest)
    "harbor-admin.json",
    "registry-helper.yaml",  # ECR: the registry helper's values, its IAM user's secret key
    "pull-secret-cronjob.yaml",  # ECR: the pull-only IAM user's key, in a Secret manifest
    _RECORD_FILE,
    ".binderhub-registry*",
    ".*.yaml.*",
)
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


def _check_owner(directory: Path, value: str) -> None:
    """Refuse a directory another user owns, or that group or others may write."""
    try:
        info = directory.lstat()
    except OSError:
        return  # made by this run (or not yet made, in a dry run)
    if stat.S_ISLNK(info.st_mode):
        directory = directory.resolve()
        info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        return  # not a directory: the write probe says so
    if info.st_uid != os.getuid():
        raise _refuse(
            f"belongs to another user (uid {info.st_uid}): they could plant a link or a record "
            "in it; use a directory of your own",
            value,
        )
    if info.st_mode & 0o022:
        raise _refuse(
            f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}): anyone "
            f"could plant a link or a record in it; chmod go-w {directory}, or use another one",
            value,
        )


def read_record(path: Path, value: str = "") -> dict[str, Any] | None:
    """The record at ``path`` checked (None when there is none), or one line naming its line.

    A record that cannot be read is never taken as empty: a run would then call its own
    resources "found" and teardown would leave them behind.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise _refuse(
            f"holds {path.name} that is not UTF-8 text: restore or remove it", value
        ) from None
    except OSError as e:
        raise _refuse(f"holds {path.name} that cannot be read ({e.strerror})", value) from None
    try:
        data = json.loads(text)
    except ValueError as e:
        line = getattr(e, "lineno", None)
        where = f" (line {line})" if line else ""
        raise _refuse(
            f"holds {path.name} that is not valid JSON{where}: fix it, or remove it only if "
            "nothing it names still exists",
            value,
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("provider"), str):
        raise _refuse(f"holds {path.name} without a provider name: restore or remove it", value)
    if not isinstance(data.get("created", {}), dict):
        raise _refuse(f"holds {path.name} whose 'created' is not a mapping: restore it", value)
    if "deployment" in data and not isinstance(data["deployment"], str):
        raise _refuse(f"holds {path.name} whose 'deployment' is not text: restore it", value)
    return data


def read_own_record(path: Path, provider: str, value: str = "") -> dict[str, Any] | None:
    """:func:`read_record`, refusing another registry's record (its teardown needs it)."""
    record = read_record(path, value)
    if record is not None and record["provider"] != provider:
        raise _refuse(
            f"holds the record of another registry's notebook ({record['provider']}): its "
            "teardown needs it; use one output_dir per notebook and deployment",
            value,
        )
    return record


def _header_source(path: Path) -> str | None:
    """The notebook named in the header of a values file this project wrote, else None."""
    try:
        with open(path, "rb") as f:
            first = f.readline(512).decode("utf-8", "replace")
    except OSError:
        return None
    if not first.startswith(HEADER_MARK + " ("):
        return None
    return first[len(HEADER_MARK) + 2 :].split(")", 1)[0]


def check_output_files(directory: Path, provider: str, notebook: str, value: str = "") -> None:
    """Refuse, before any call, files in ``directory`` that a run of ``notebook`` would
    replace but did not write: another notebook's record, or values files without this
    project's header or with another notebook's."""
    read_own_record(directory / _RECORD_FILE, provider, value)
    for name in ("config.yaml", "secret.yaml"):
        path = directory / name
        if not os.path.lexists(path):
            continue
        source = _header_source(path) if path.is_file() and not path.is_symlink() else None
        if source is None:
            raise _refuse(
                f"holds a {name} that binderhub-registry did not write (no header of ours, or "
                "not a regular file): move it away, or choose another output_dir",
                value,
            )
        if notebook and source != notebook:
            raise _refuse(
                f"holds a {name} written by notebook {source}: use one output_dir per notebook",
                value,
            )


def ignore_secrets(directory: Path) -> None:
    """Keep the secrets in ``directory`` out of git: a ``.gitignore`` made (or completed)."""
    path = directory / ".gitignore"
    try:
        existing = path.read_text() if path.is_file() and not path.is_symlink() else None
    except (OSError, UnicodeDecodeError):
        return
    # completed with what it lacks: one written before a secret file was added gains it
    missing = [e for e in _IGNORED if existing is None or e not in existing.split()]
    if not missing:
        return
    block = "# binderhub-registry: secrets stay out of git\n" + "\n".join(missing) + "\n"
    if existing is None:
        write_file(path, block, mode=0o644)
    else:
        write_file(path, existing + ("" if existing.endswith("\n") else "\n") + block, mode=0o644)


def write_file(path: str | os.PathLike[str], text: str, *, mode: int) -> Path:
    """Write ``text`` to ``path`` with ``mode``: beside it, synced, then renamed over it.

    ``mkstemp`` creates the new file (never an existing file or a link, 0600 until
    ``mode`` is set), so a link at ``path`` is replaced, never followed, and a full disk
    or a crash leaves the previous content whole.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


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
            _check_owner(directory, value)
            _check_record(directory, value)
        return directory
    _check_owner(directory, value)
    _probe(directory, value)
    _check_record(directory, value)
    _lock(directory, value)
    ignore_secrets(directory)
    return directory
