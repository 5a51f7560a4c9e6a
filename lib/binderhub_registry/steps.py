"""The step runner: idempotent steps, retries with backoff, a live checklist.

A step is a function that looks a resource up and creates it only when
missing, so running it twice is safe; that is what makes retrying a whole step
(and rerunning a notebook after a crash) free of duplicates. It returns a
:class:`Result` saying what happened (``created``, ``reused``, ``would
create`` in a dry run, ...).

Transient faults (429 honouring ``Retry-After``, 5xx, connection resets,
timeouts) are retried with exponential backoff by tenacity. In Jupyter each
step shows a row that updates while it runs; elsewhere it prints one line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any, Generic, TypeVar

import requests
import tenacity

from .errors import TransientCloudError

__all__ = ["Checklist", "Result", "Runner", "StepRecord", "is_transient"]

log = logging.getLogger("binderhub_registry")
T = TypeVar("T")

ICONS = {
    "done": "✓",
    "created": "✓",
    "reused": "✓",
    "updated": "✓",
    "deleted": "✓",
    "skipped": "–",
    "planned": "○",
    "running": "…",
    "failed": "✗",
}


@dataclass(frozen=True)
class Result(Generic[T]):
    """What a step returns: its value, what happened (a key of ICONS) and a short detail."""

    value: T
    status: str = "done"
    detail: str = ""


def is_transient(exc: BaseException) -> bool:
    """True for faults worth retrying: ours, and requests' connection errors and timeouts."""
    if isinstance(exc, TransientCloudError):
        return True
    return isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )


@dataclass
class StepRecord:
    """One row of the checklist."""

    title: str
    status: str = "running"
    detail: str = ""
    attempts: int = 1

    def text(self) -> str:
        """The row as one plain line."""
        detail = f": {self.detail}" if self.detail else ""
        again = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        return f"{ICONS.get(self.status, '?')} {self.title} [{self.status}]{detail}{again}"

    def html(self) -> str:
        """The row as a table row."""
        again = f" <em>(after {self.attempts} attempts)</em>" if self.attempts > 1 else ""
        return (
            f"<tr><td>{ICONS.get(self.status, '?')}</td><td>{escape(self.title)}</td>"
            f"<td><b>{escape(self.status)}</b></td><td>{escape(self.detail)}{again}</td></tr>"
        )


@dataclass
class Checklist:
    """Rows shown as a table in Jupyter and as lines elsewhere."""

    rows: list[StepRecord] = field(default_factory=list)

    def __repr__(self) -> str:
        return "\n".join(r.text() for r in self.rows)

    def _repr_html_(self) -> str:
        return "<table>" + "".join(r.html() for r in self.rows) + "</table>"


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None  # type: ignore[attr-defined]
    return shell is not None and getattr(shell, "kernel", None) is not None


class _Row:
    """Shows one step: a display handle in a kernel, printed lines elsewhere."""

    def __init__(self, record: StepRecord) -> None:
        self.record = record
        self.handle: Any = None
        if _in_kernel():
            from IPython.display import display

            self.handle = display(Checklist([record]), display_id=True)

    def update(self, final: bool = False) -> None:
        if self.handle is not None:
            self.handle.update(Checklist([self.record]))
        elif final:
            print(self.record.text(), flush=True)


class Runner:
    """Runs steps with retries and keeps the checklist.

    ``attempts`` bounds tries per step; waits grow exponentially from ``backoff``
    seconds to ``max_wait``, or follow ``Retry-After`` when the cloud sends one.
    """

    def __init__(
        self,
        *,
        attempts: int = 6,
        backoff: float = 0.2,
        max_wait: float = 30.0,
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.transient = transient
        self.checklist = Checklist()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self.max_wait))
        expo = tenacity.wait_exponential_jitter(
            initial=self.backoff, max=self.max_wait, jitter=self.backoff
        )
        return float(expo(state))

    def step(self, title: str, fn: Callable[..., Result[T]], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` as one step, retrying transient faults; return its value."""
        record = StepRecord(title)
        self.checklist.rows.append(record)
        row = _Row(record)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            record.attempts = state.attempt_number + 1
            wait = state.next_action.sleep if state.next_action else 0.0
            record.detail = f"retrying in {wait:.1f}s after: {exc}"
            log.warning("%s: attempt %d failed (%s), retrying", title, state.attempt_number, exc)
            row.update()

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(self.transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            result = retrying(fn, *args, **kwargs)
        except BaseException as exc:
            record.status, record.detail = "failed", str(exc)
            row.update(final=True)
            raise
        record.status, record.detail = result.status, result.detail
        row.update(final=True)
        return result.value
