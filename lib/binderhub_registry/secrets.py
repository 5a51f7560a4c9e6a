"""Secret handling: a value type that will not print itself, 0600 files, redaction.

Secrets come from the environment or a getpass prompt, never from notebook
parameters (papermill stores injected parameters in its output notebook).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import MissingCredentials

__all__ = ["REDACTED", "Secret", "read_secret", "redact", "write_private_file"]

REDACTED = "<redacted>"


class Secret:
    """A secret string that shows ``<redacted>`` wherever it is printed or displayed.

    Call :meth:`reveal` at the one place the real value is needed.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a string")
        self._value = value

    def reveal(self) -> str:
        """Return the secret's real value."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # pickling would write the value somewhere unseen
        raise TypeError("Secret values cannot be pickled")


def read_secret(names: Sequence[str], what: str, *, prompt: bool = True) -> Secret:
    """Return the first non-empty environment variable of ``names``, else ask with getpass.

    Raises MissingCredentials when none is set and no prompt is possible (headless).
    """
    for name in names:
        value = os.environ.get(name, "")
        if value:
            return Secret(value)
    how = "set " + " or ".join(names) + " in the environment (never as a notebook parameter)"
    if prompt:
        try:
            value = getpass.getpass(f"{what} (or {how}): ")
        except Exception:  # headless kernels have no stdin: StdinNotImplementedError, EOFError
            value = ""
        if value:
            return Secret(value)
    raise MissingCredentials(what, how)


def write_private_file(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (0600), also when it existed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return target


def redact(value: Any, secrets: Iterable[str | Secret] = ()) -> Any:
    """Return a copy of ``value`` (str, dict, list) with every known secret replaced.

    Secret instances are always replaced; plain strings listed in ``secrets`` too,
    also where they appear inside longer text.
    """
    known = sorted(
        {s.reveal() if isinstance(s, Secret) else s for s in secrets if s}, key=len, reverse=True
    )

    def walk(v: Any) -> Any:
        if isinstance(v, Secret):
            return REDACTED
        if isinstance(v, str):
            for s in known:
                v = v.replace(s, REDACTED)
            return v
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(walk(x) for x in v)
        return v

    return walk(value)
