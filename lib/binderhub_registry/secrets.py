"""Secret handling: a value type that will not print itself, 0600 files, redaction.

Secrets come from the environment or a getpass prompt, never from notebook
parameters (papermill stores injected parameters in its output notebook).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import MissingCredentials
from .outputs import write_file

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
    """Write ``text`` to ``path`` readable by its owner only (0600), also when it existed.

    Written to a new file beside it, synced, then renamed over it (:func:`~.outputs.write_file`):
    a full disk or a crash leaves the previous content whole, and a link at ``path`` is
    replaced, never followed.
    """
    return write_file(path, text, mode=0o600)


#: A run of base64 (standard or URL-safe alphabet) long enough to hold a secret.
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")
#: How deep base64 inside base64 is looked into (a docker config.json encoded whole).
_BASE64_DEPTH = 3


def _b64_texts(token: str) -> Iterator[bytes]:
    """What ``token`` decodes to, from each of the 4 alignments (it may start mid-quantum)."""
    body = token.rstrip("=").replace("-", "+").replace("_", "/")
    for start in range(4):
        part = body[start:]
        part = part[: len(part) - len(part) % 4] if len(part) % 4 == 1 else part
        try:
            yield base64.b64decode(part + "=" * (-len(part) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue


def _holds_secret(data: bytes, known: list[bytes], depth: int) -> bool:
    if any(s in data for s in known):
        return True
    if depth <= 0:
        return False
    text = data.decode("latin-1")
    return any(
        _holds_secret(decoded, known, depth - 1)
        for token in _BASE64.findall(text)
        for decoded in _b64_texts(token)
    )


def redact(value: Any, secrets: Iterable[str | Secret] = ()) -> Any:
    """Return a copy of ``value`` (str, dict, list) with every known secret replaced.

    Secret instances are always replaced; plain strings listed in ``secrets`` too,
    also where they appear inside longer text. So is every base64 run (standard or
    URL-safe, at any alignment, nested up to 3 deep) that decodes to text holding a
    known secret: docker's ``auth`` is base64("user:password"), a Basic header too.
    """
    known = sorted(
        {s.reveal() if isinstance(s, Secret) else s for s in secrets if s}, key=len, reverse=True
    )
    known_bytes = [s.encode() for s in known]

    def encoded(match: re.Match[str]) -> str:
        token = match.group(0)
        hit = any(_holds_secret(d, known_bytes, _BASE64_DEPTH - 1) for d in _b64_texts(token))
        return REDACTED if hit else token

    def walk(v: Any) -> Any:
        if isinstance(v, Secret):
            return REDACTED
        if isinstance(v, str):
            if known:
                v = _BASE64.sub(encoded, v)  # before plain replacement, which breaks the runs
            for s in known:
                v = v.replace(s, REDACTED)
            return v
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(walk(x) for x in v)
        return v

    return walk(value)
