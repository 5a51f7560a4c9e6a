"""Keeping the registry small: the retention rule in words, and storage used against its limit.

BinderHub pushes an image for every commit anyone launches and deletes none, so each notebook
sets its registry's own cleanup mechanism (``retention_days``, a common parameter: 30 by
default, as mybinder.org's Harbor policy; 0 keeps everything) and reports the storage the
registry says is used, against the limit it says applies (:class:`Usage`), warning above
:data:`WARN_AT`. What each registry can see decides the rule: the last pull where it keeps
one, else the push.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WARN_AT", "Usage", "retention_text"]

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
            f"; above {WARN_AT:.0%}: builds fail once it is full, so lower retention_days or "
            "raise the limit"
            if self.warning
            else ""
        )
        return f"{amount}: {self.source}{warning}"
