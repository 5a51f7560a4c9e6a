"""The step runner: idempotent steps, retries with backoff, a live checklist.

A step is a function that looks a resource up and creates it only when
missing, so running it twice is safe; that is what makes retrying a whole step
(and rerunning a notebook after a crash) free of duplicates. It returns a
:class:`Result` saying what happened (``created``, ``reused``, ``would
create`` in a dry run, ...).

Transient faults (429 honouring ``Retry-After``, 5xx, connection resets,
timeouts) are retried with exponential backoff by tenacity. In Jupyter each
step shows a row that updates while it runs (its retries, its progress, and in
JupyterLab "running… N s" once it runs long); elsewhere it prints one line.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any, Generic, TypeVar

import requests
import tenacity

from .errors import BinderHubRegistryError, TransientCloudError
from .notebook import display, ipython_shell

__all__ = [
    "BACKOFF_VARIABLE",
    "Checklist",
    "Planned",
    "Result",
    "Runner",
    "StepRecord",
    "is_transient",
    "progress",
]

log = logging.getLogger("binderhub_registry")
#: Seconds a step runs before its row is shown live (quick steps show only their result).
LIVE_AFTER = 2.0
#: Seconds between updates of a live row's "running… N s".
TICK = 1.0
#: Set by Jupyter Server in the kernels it starts for a notebook (JupyterLab): someone watches.
SESSION_VARIABLE = "JPY_SESSION_NAME"
#: Environment variable: the first retry's wait in seconds when ``Runner(backoff=...)`` is not
#: given (0 to 30, default 0.2). The test suite shortens it: its faults need no real pause.
BACKOFF_VARIABLE = "BINDERHUB_REGISTRY_RETRY_BACKOFF"
DEFAULT_BACKOFF = 0.2
T = TypeVar("T")

ICONS = {
    "done": "✓",
    "created": "✓",
    "reused": "✓",
    "updated": "✓",
    "deleted": "✓",
    "skipped": "–",
    "warning": "⚠",  # done, with something to act on (e.g. storage above 80% of its limit)
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


class Planned(BaseException):
    """A dry run's stop: the step says what it would do and changes nothing.

    Not an :class:`Exception` (a step's outcome, not an error): an ``except Exception``
    between the plan and the runner does not swallow it.

    Raised by :meth:`~.providers.contract.Connection.plan` at the first change a step would
    make; the runner (and :func:`~.providers.contract.creates`) turn it into the step's
    ``planned`` :class:`Result`, so no step writes its own dry-run exit.
    """

    def __init__(self, would: str, value: Any = None) -> None:
        super().__init__(f"would {would}")
        self.would = would
        self.value = value  # what later steps of a dry run read (None: nothing yet)

    def result(self) -> Result[Any]:
        """The step's result: ``planned``, "would <what>"."""
        return Result(self.value, "planned", str(self))


def is_transient(exc: BaseException) -> bool:
    """True for faults worth retrying: ours, and requests' connection errors and timeouts."""
    if isinstance(exc, TransientCloudError):
        return True
    if isinstance(exc, requests.exceptions.SSLError):  # a certificate does not heal by retrying
        return False
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
    #: whole seconds the step has been running, shown while it runs (never in a final row)
    elapsed: int = 0

    def _status(self) -> str:
        if self.status == "running" and self.elapsed:
            return f"running… {self.elapsed} s"
        return self.status

    def text(self) -> str:
        """The row as one plain line."""
        detail = f": {self.detail}" if self.detail else ""
        again = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        return f"{ICONS.get(self.status, '?')} {self.title} [{self._status()}]{detail}{again}"

    def html(self) -> str:
        """The row as a table row (left-aligned: JupyterLab right-aligns table cells)."""
        again = f" <em>(after {self.attempts} attempts)</em>" if self.attempts > 1 else ""
        td = '<td style="text-align:left">'
        return (
            f"<tr>{td}{ICONS.get(self.status, '?')}</td>{td}{escape(self.title)}</td>"
            f"{td}<b>{escape(self._status())}</b></td>{td}{escape(self.detail)}{again}</td></tr>"
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
    return getattr(ipython_shell(), "kernel", None) is not None


class _Row:
    """Shows one step: its final line once, plus a live row while it retries or runs long.

    The live row appears only after a retry or ``LIVE_AFTER`` seconds, so quick,
    fault-free runs (the sandbox) display exactly one output per step and stay
    deterministic for nbval. A live row is one display updated in place (the
    retry's message, progress), and its last update is the final row, which is all
    papermill stores. In JupyterLab a clock thread also shows "running… N s" every
    ``TICK`` (a slow single call blocks the step's own thread); only there: nbval
    compares a row's first display, so headless runs keep one display per step.
    """

    def __init__(self, record: StepRecord) -> None:
        self.record = record
        self.started = time.monotonic()
        self.kernel = _in_kernel()
        self.handle: Any = None
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        if self.kernel and os.environ.get(SESSION_VARIABLE):
            # the cell's context (ipykernel's parent message): the clock's updates go to this cell
            context = contextvars.copy_context()
            threading.Thread(target=context.run, args=(self._tick,), daemon=True).start()

    def _tick(self) -> None:
        while not self.stopped.wait(TICK):
            elapsed = int(time.monotonic() - self.started)
            if elapsed < LIVE_AFTER:
                continue
            with self.lock:
                if self.stopped.is_set():
                    return
                self.record.elapsed = elapsed
                self._show()

    def _show(self) -> None:
        if self.handle is None:
            self.handle = display(Checklist([self.record]), display_id=True)
        else:
            self.handle.update(Checklist([self.record]))

    def live(self, force: bool = False) -> None:
        """Show the current state now if a live row is warranted."""
        if not force and self.handle is None and time.monotonic() - self.started < LIVE_AFTER:
            return
        with self.lock:
            if not self.kernel:
                print(self.record.text(), flush=True)
                return
            self._show()

    def done(self) -> None:
        """Show the final state (the live row, if any, becomes it)."""
        self.stopped.set()
        with self.lock:
            self.record.elapsed = 0
            if self.handle is not None:
                self.handle.update(Checklist([self.record]))
            elif self.kernel:
                display(Checklist([self.record]))
            else:
                print(self.record.text(), flush=True)


_current: list[_Row] = []


def progress(detail: str) -> None:
    """Report progress of the running step (an LRO poll, say); shown once it runs long."""
    if _current:
        _current[-1].record.detail = detail
        _current[-1].live()


def _backoff_from_environment() -> float:
    raw = os.environ.get(BACKOFF_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_BACKOFF
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 30:
        raise BinderHubRegistryError(
            f"environment variable {BACKOFF_VARIABLE}: seconds from 0 to 30 (got {raw[:20]!r})"
        )
    return seconds


class Runner:
    """Runs steps with retries and keeps the checklist.

    ``attempts`` bounds tries per step; waits grow exponentially from ``backoff``
    seconds (default: :data:`BACKOFF_VARIABLE`, else 0.2) to ``max_wait``, or follow
    ``Retry-After`` when the cloud sends one.
    ``transient`` says which exceptions are worth retrying (providers widen it to
    their SDK's errors).
    """

    def __init__(
        self,
        *,
        attempts: int = 6,
        backoff: float | None = None,
        max_wait: float = 30.0,
        transient: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.attempts = attempts
        self.backoff = _backoff_from_environment() if backoff is None else backoff
        self.max_wait = max_wait
        self.transient = transient
        self.sleep = sleep  # injectable, so tests need not wait
        self.checklist = Checklist()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self.max_wait))
        expo = tenacity.wait_exponential_jitter(
            multiplier=self.backoff, max=self.max_wait, jitter=self.backoff
        )
        return float(expo(state))

    def _start(self, title: str) -> tuple[_Row, dict[str, Any]]:
        """A new checklist row, and the tenacity settings shared by step and astep."""
        record = StepRecord(title)
        self.checklist.rows.append(record)
        row = _Row(record)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            record.attempts = state.attempt_number + 1
            wait = state.next_action.sleep if state.next_action else 0.0
            record.detail = f"retrying in {wait:.1f}s after: {exc}"
            # in Jupyter the live row says it (a log line there is a pink box under the cell)
            level = logging.INFO if row.kernel else logging.WARNING
            log.log(level, "%s: attempt %d failed (%s), retrying", title, state.attempt_number, exc)
            row.live(force=True)

        settings = {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(self.transient),
            "before_sleep": before_sleep,
            "reraise": True,
        }
        _current.append(row)
        return row, settings

    @staticmethod
    def _finish(row: _Row, result: Result[T] | BaseException) -> None:
        _current.remove(row)
        if isinstance(result, BaseException):
            row.record.status, row.record.detail = "failed", str(result)
        else:
            row.record.status, row.record.detail = result.status, result.detail
        row.done()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with the same retries as a step, but no checklist row: for
        a reading inside another command's output (``verify``'s storage row)."""
        return tenacity.Retrying(
            sleep=self.sleep,
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(self.transient),
            reraise=True,
        )(fn, *args, **kwargs)

    def step(self, title: str, fn: Callable[..., Result[T]], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` as one step, retrying transient faults; return its value."""
        row, settings = self._start(title)
        try:
            result: Result[T] = tenacity.Retrying(sleep=self.sleep, **settings)(fn, *args, **kwargs)
        except Planned as planned:
            result = planned.result()
        except BaseException as exc:
            self._finish(row, exc)
            raise
        self._finish(row, result)
        return result.value

    async def astep(
        self, title: str, fn: Callable[..., Awaitable[Result[T]]], *args: Any, **kwargs: Any
    ) -> T:
        """:meth:`step` for a coroutine function: ``await run.astep(...)`` in a notebook.

        For async-only SDKs (msgraph-sdk): the kernel's event loop runs the step, so
        one SDK client serves every cell.
        """
        row, settings = self._start(title)

        async def sleep(seconds: float) -> None:
            if self.sleep is time.sleep:  # wait without blocking the kernel's event loop
                await asyncio.sleep(seconds)
            else:  # an injected sleep (tests)
                self.sleep(seconds)

        try:
            result: Result[T] = await tenacity.AsyncRetrying(sleep=sleep, **settings)(
                fn, *args, **kwargs
            )
        except Planned as planned:
            result = planned.result()
        except BaseException as exc:
            self._finish(row, exc)
            raise
        self._finish(row, result)
        return result.value
