"""The step runner's row in Jupyter: a retry's message in the step's live
row (not a log line, a pink box under the cell), and "running… N s" in JupyterLab while a
single slow call blocks the step; headless runs keep one display per step (nbval)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from binderhub_registry import steps
from binderhub_registry.errors import TransientCloudError
from binderhub_registry.steps import Result, Runner


class Shown:
    """A stand-in for IPython's display: every display and update, as the rows' text."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []  # (kind, display number, row text)
        self.changed = threading.Condition()

    def display(self, obj: Any, **kwargs: Any) -> Any:
        number = len({n for _, n, _ in self.events})
        self._add("display", number, repr(obj))
        shown = self

        class Handle:
            def update(self, obj: Any) -> None:
                shown._add("update", number, repr(obj))

        return Handle() if kwargs.get("display_id") else None

    def _add(self, kind: str, number: int, text: str) -> None:
        with self.changed:
            self.events.append((kind, number, text))
            self.changed.notify_all()

    def wait_for(self, part: str) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: any(part in text for _, _, text in self.events), timeout=10
            )


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Shown:
    """As in a kernel: rows are displayed, not printed."""
    fake = Shown()
    monkeypatch.setattr(steps, "_in_kernel", lambda: True)
    monkeypatch.setattr(steps, "display", fake.display)
    return fake


def test_a_retry_is_told_in_the_steps_live_row_not_in_a_log_warning(
    shown: Shown, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def flaky() -> Result[str]:
        calls.append(1)
        if len(calls) == 1:
            raise TransientCloudError("503 Service Unavailable", status=503)
        return Result("ok", "created", "the project")

    with caplog.at_level(logging.INFO, logger="binderhub_registry"):
        assert Runner(sleep=lambda s: None).step("Project", flaky) == "ok"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    kinds = [(kind, number) for kind, number, _ in shown.events]
    assert kinds == [("display", 0), ("update", 0)]  # one row, updated in place
    assert "retrying in" in shown.events[0][2] and "503" in shown.events[0][2]
    assert shown.events[-1][2] == "✓ Project [created]: the project (after 2 attempts)"


def test_a_slow_call_shows_running_seconds_in_jupyterlab(
    shown: Shown, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steps, "LIVE_AFTER", 0.0)
    monkeypatch.setattr(steps, "TICK", 0.05)
    monkeypatch.setenv(steps.SESSION_VARIABLE, "/lab/05-harbor.ipynb")

    def slow() -> Result[None]:  # one blocking call: only the clock can tell it runs
        assert shown.wait_for("[running… 1 s]"), shown.events
        return Result(None, "done", "answered")

    Runner(sleep=lambda s: None).step("Slow call", slow)
    assert {number for _, number, _ in shown.events} == {0}
    assert shown.events[-1] == ("update", 0, "✓ Slow call [done]: answered")


def test_headless_a_slow_step_still_displays_once(
    shown: Shown, monkeypatch: pytest.MonkeyPatch
) -> None:
    """papermill and nbval kernels (no Jupyter Server session): no clock, one display."""
    monkeypatch.setattr(steps, "LIVE_AFTER", 0.0)
    monkeypatch.setattr(steps, "TICK", 0.01)
    monkeypatch.delenv(steps.SESSION_VARIABLE, raising=False)
    done = threading.Event()
    Runner(sleep=lambda s: None).step("Slow", lambda: Result(done.wait(0.2), "done"))
    assert shown.events == [("display", 0, "✓ Slow [done]")]


def test_outside_jupyter_a_retry_is_still_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The CLI shows retries with --verbose from the log, at WARNING as before."""
    calls = []

    def flaky() -> Result[None]:
        calls.append(1)
        if len(calls) == 1:
            raise TransientCloudError("reset", status=None)
        return Result(None)

    with caplog.at_level(logging.INFO, logger="binderhub_registry"):
        Runner(sleep=lambda s: None).step("Flaky", flaky)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
