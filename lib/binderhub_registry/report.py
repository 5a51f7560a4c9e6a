"""What a verification produces and what a provider tells it: the report, its checks, the hints.

The lowest floor of the verification: it imports nothing of this package, so the errors
(:class:`~.errors.VerificationFailed` carries a report), the transport
(:mod:`.registry_http`), BinderHub's check, the push and the pull can all name these
types, and :mod:`.verify` on top runs them. Public through :mod:`binderhub_registry` and
:mod:`.verify`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

__all__ = [
    "CONSUMERS",
    "ICONS",
    "PULL_CHECK",
    "PUSH_CHECK",
    "PUSH_REFUSED_CHECK",
    "STORAGE_CHECK",
    "Check",
    "VerificationReport",
    "VerifyHints",
]

#: The check names that the push and the pull report, and the summary groups by.
PUSH_CHECK = "push a test image"
PULL_CHECK = "user pods' pull"
PUSH_REFUSED_CHECK = "least privilege"
#: The row of the storage used against the registry's limit (no consumer's: never a failure).
STORAGE_CHECK = "storage"
#: What a check can end as, and its icon; a warning is no failure (the storage above 80%).
ICONS = {"ok": "✓", "skipped": "–", "failed": "✗", "warning": "⚠"}
#: The consumers of the values, each with the checks that speak for it.
CONSUMERS = {
    "binder pod (image check)": (
        "BinderHub's image name",
        "BinderHub's registry URL",
        "BinderHub's image check",
        "BinderHub finds the pushed image",
    ),
    "build pods (push)": ("build pods' docker config", "push token", PUSH_CHECK),
    "user pods (pull)": ("user pods' pull secret", PULL_CHECK),
    "least privilege": (PUSH_REFUSED_CHECK,),
}


@dataclass(frozen=True)
class VerifyHints:
    """A registry's own words for the diagnoses; each completes a sentence after a colon."""

    #: How to get working credentials after the registry refused them.
    credentials: str = "create a new one and rewrite secret.yaml"
    #: What grants push on the image_prefix namespace.
    push: str = (
        "the token needs write scope (Docker Hub: repo:write; ACR: AcrPush; Harbor: push), "
        "and the account must be a member with write access of the namespace in image_prefix"
    )
    #: What grants pull, when BinderHub's token may not read the repository.
    pull: str = "the credentials lack pull"


@dataclass
class Check:
    """One verification step: ``status`` is ``ok``, ``warning``, ``skipped`` (with the reason)
    or ``failed``."""

    name: str
    status: str
    detail: str

    @property
    def ok(self) -> bool:
        """True unless the check failed (a skipped check is no failure)."""
        return self.status != "failed"


@dataclass
class VerificationReport:
    """The checks run so far; shown as a table in notebooks and as lines in a terminal."""

    image: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.ok for c in self.checks)

    @property
    def warnings(self) -> list[Check]:
        """The checks that passed with a warning (none of them fails the verification)."""
        return [c for c in self.checks if c.status == "warning"]

    def add(self, name: str, detail: str, status: str = "ok") -> None:
        """Record a check (``status``: ok, skipped, failed or warning)."""
        if status not in ICONS:
            raise ValueError(f"check status {status!r} is not one of {', '.join(ICONS)}")
        self.checks.append(Check(name, status, detail))

    def consumers(self) -> dict[str, str]:
        """ok, skipped or failed for each consumer of the values (:data:`CONSUMERS`).

        A consumer is failed when one of its checks failed, ok when one passed and none
        failed, skipped when its checks were skipped or not reached.
        """
        summary = {}
        for consumer, names in CONSUMERS.items():
            statuses = {c.status for c in self.checks if c.name in names}
            summary[consumer] = (
                "failed" if "failed" in statuses else "ok" if "ok" in statuses else "skipped"
            )
        return summary

    def __str__(self) -> str:
        lines = [f"Verification of {self.image}"]
        lines += [f"  {ICONS[c.status]} {c.name}: {c.detail}" for c in self.checks]
        lines.append(
            "  for " + "; ".join(f"{who}: {status}" for who, status in self.consumers().items())
        )
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        left = ' style="text-align:left"'  # JupyterLab right-aligns table cells
        rows = "".join(
            f"<tr><td{left}>{ICONS[c.status]}</td><td{left}>{escape(c.name)}</td>"
            f"<td{left}>{escape(c.detail)}</td></tr>"
            for c in self.checks
        )
        summary = ", ".join(
            f"{escape(who)} {ICONS[status]} {status}" for who, status in self.consumers().items()
        )
        return (
            f"<p>Verification of <code>{escape(self.image)}</code></p><table>{rows}</table>"
            f"<p>For each consumer of the values: {summary}</p>"
        )
