"""Keeping the registry small: the retention rule in words, and storage used against its limit.

BinderHub pushes an image for every commit anyone launches and deletes none, so each notebook
sets its registry's own cleanup mechanism (``retention_days``, a common parameter: 30 by
default, as mybinder.org's Harbor policy; 0 keeps everything) and reports the storage the
registry says is used, against the limit it says applies (:class:`Usage`), warning above
:data:`WARN_AT`. What each registry can see decides the rule: the last pull where it keeps
one, else the push.

``binderhub-registry verify`` reports the same figures: each provider module may define
``usage_for_values(values, env, created, ca_file)`` (:class:`UsageHook`), which reads them
for the values alone (with the credential in them where it may, else with the notebook's
admin credential from ``env``) and answers a :class:`Usage`, a :class:`NotRead` saying what
to set, or None where the registry's API tells nothing. :func:`storage_row` turns any of
them into the one row the notebooks' step and verify's report both show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "NO_USAGE",
    "WARN_AT",
    "NotRead",
    "Usage",
    "UsageHook",
    "retention_text",
    "sandbox_of",
    "storage_row",
]

#: The share of the limit above which the usage is a warning.
WARN_AT = 0.8


def retention_text(days: int, seen: str = "pulled") -> str:
    """The rule in words: ``"images not pulled for 30 days are deleted"`` (``seen``: what the
    registry keeps the time of, "pulled" or "pushed"); 0: everything is kept."""
    if days == 0:
        return "retention_days = 0: every image is kept"
    return f"images not {seen} for {days} day{'s' if days != 1 else ''} are deleted"


def _size(count: int) -> str:
    """Bytes in binary units, as registries' consoles show them (``1.5 GiB``)."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Usage:
    """Storage used, as the registry reports it, against the limit it says applies."""

    used_bytes: int
    limit_bytes: int | None  # None: the registry states no limit (``source`` says why)
    source: str  # what the figures are, e.g. "Harbor project 'binderhub' quota"
    #: What reaching the limit does, for the warning (ACR's is included storage, billed beyond).
    full: str = "builds fail once it is full"

    @property
    def fraction(self) -> float | None:
        """Used over limit (None without a limit)."""
        if not self.limit_bytes:
            return None
        return self.used_bytes / self.limit_bytes

    @property
    def warning(self) -> bool:
        """True above :data:`WARN_AT` of the limit."""
        fraction = self.fraction
        return fraction is not None and fraction > WARN_AT

    def text(self) -> str:
        """One line: ``"1.5 GiB of 200.0 GiB used (0.8%): Harbor project 'x' quota"``."""
        fraction = self.fraction
        if fraction is None:
            amount = f"{_size(self.used_bytes)} used (no limit)"
        else:
            amount = (
                f"{_size(self.used_bytes)} of {_size(self.limit_bytes or 0)} used ({fraction:.1%})"
            )
        warning = (
            f"; above {WARN_AT:.0%}: {self.full}, so lower retention_days or raise the limit"
            if self.warning
            else ""
        )
        return f"{amount}: {self.source}{warning}"


@dataclass(frozen=True)
class NotRead:
    """Why the usage was not read (verify holds only BinderHub's credential), and what to set."""

    why: str  # e.g. "Harbor robots may not read their project's quota"
    variables: str  # e.g. "HARBOR_USERNAME and HARBOR_PASSWORD"

    def text(self) -> str:
        """One line: ``"not read: <why>; set <variables> (or run the notebook) to see it"``."""
        return f"not read: {self.why}; set {self.variables} (or run the notebook) to see it"


#: The row when a registry's API tells no usage.
NO_USAGE = "the registry's API tells no usage here"


def storage_row(found: Usage | NotRead | None, silent: str = NO_USAGE) -> tuple[str, str]:
    """The row of a reading, for the notebooks' step and verify's report alike:
    ``("warning", text)`` above :data:`WARN_AT`, ``("ok", text)`` below it, ``("skipped",
    why)`` when nothing was read (``silent`` when the registry tells nothing)."""
    if found is None:
        return "skipped", silent
    if isinstance(found, NotRead):
        return "skipped", found.text()
    return ("warning" if found.warning else "ok"), found.text()


class UsageHook(Protocol):
    """A provider module's ``usage_for_values``: the storage used for values alone.

    ``env`` is the environment (real credentials are read from it, never in the sandbox);
    ``created`` is what the notebook's record beside the values names (empty without one);
    ``ca_file`` the CA to trust (the sandbox's, or ``--ca-file``).
    """

    def __call__(
        self,
        values: Any,
        env: Mapping[str, str],
        created: Mapping[str, Any],
        ca_file: str | None,
    ) -> Usage | NotRead | None:
        """The reading (see the class docstring)."""
        ...


def sandbox_of(values: Any) -> Any:
    """The running sandbox when ``values`` point at this machine (a loopback registry, which
    no real cloud's is), else None: there, as in the notebooks, the sandbox's seeded
    credentials are used and real variables are never read."""
    import ipaddress

    from . import sandbox

    host = str(values.image_prefix).split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return None
    return sandbox.running() if loopback else None
