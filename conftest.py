"""Session set-up shared by the tests and by nbval on notebooks/.

One sandbox per test session, in a private directory; every cloud credential
probe pointed at loopback; the secrets variables of the developer's shell
removed so tests see only what they set.

Under pytest-xdist every worker is its own session: it imports this file, so it
gets its own sandbox directory (and sandbox); a notebook's nbval cells share one
kernel, so one worker runs them all, in order (the scheduler below).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import sandbox

ROOT = Path(__file__).parent
_SANDBOX_DIR = Path(tempfile.mkdtemp(prefix="bhr-test-sandbox-"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ["BINDERHUB_REGISTRY_SANDBOX_DIR"] = str(_SANDBOX_DIR)
    os.environ.update(sandbox.loopback_env())
    # the sandbox's faults need no real pause between retries: every crash-then-rerun test
    # would otherwise wait out about 6 s of backoff (Retry-After is still honoured)
    os.environ.setdefault("BINDERHUB_REGISTRY_RETRY_BACKOFF", "0.01")
    for name in (
        "DOCKERHUB_TOKEN",
        "DOCKERHUB_PASSWORD",
        "DOCKERHUB_OTP",
        "BINDERHUB_REGISTRY_SANDBOX_DOCKERHUB_SECRET",
        "BINDERHUB_REGISTRY_SANDBOX_DOCKERHUB_OTP",
        "BINDERHUB_REGISTRY_SANDBOX_AZURE_SECRET",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
    ):
        os.environ.pop(name, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    sandbox.stop(_SANDBOX_DIR)
    shutil.rmtree(_SANDBOX_DIR, ignore_errors=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # nbval: before a notebook's first cell, a seeded sandbox and no values from earlier runs,
    # so the stored outputs (made the same way by `make notebooks`) can match
    from nbval.plugin import IPyNbCell

    if isinstance(item, IPyNbCell) and not getattr(item.parent, "_bhr_reset", False):
        item.parent._bhr_reset = True  # type: ignore[attr-defined]
        sandbox.ensure().reset()
        # only this notebook's values (its default output_dir is build/<stem>): another worker
        # may be running another notebook in notebooks/ at the same time
        shutil.rmtree(_notebook_build_dir(item), ignore_errors=True)


def _notebook_build_dir(item: pytest.Item) -> Path:
    assert item.parent is not None
    return ROOT / "notebooks" / "build" / item.parent.path.stem


#: Tests that share an expensive fixture, by node id prefix: one unit each, so that one worker
#: runs them in a row and makes it once (a module fixture is made again each time a worker comes
#: back to its module; a session fixture once per worker that needs it)
SHARED = {
    "tests/test_site.py": "the docs build",
    "tests/test_docs.py::test_docs_render_the_stored_notebooks_offline": "the docs build",
    "tests/test_browser.py": "a JupyterLab server",
    "tests/test_engines.py": "one dockerd and one notebook run per registry",
}
#: Each test's last duration (setup + call + teardown, seconds), kept between runs so the
#: scheduler hands out the longest work first; in build/ (git ignores it, `make clean` drops it)
DURATIONS = ROOT / "build" / "test-durations.json"
#: What a test never timed is taken to last (seconds): most tests take well under a second.
UNTIMED = 1.0
_durations: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    # the controller (or a serial run) keeps the durations; workers only report them
    if hasattr(session.config, "workerinput") or not _durations:
        return
    try:
        DURATIONS.parent.mkdir(exist_ok=True)
        known = _read_durations() | {k: round(v, 2) for k, v in _durations.items()}
        tmp = DURATIONS.with_suffix(f".{os.getpid()}.tmp")  # another run may write it too
        tmp.write_text(json.dumps(known, indent=0, sort_keys=True))
        tmp.replace(DURATIONS)
    except OSError:
        pass  # an ordering hint only


def _read_durations() -> dict[str, float]:
    try:
        data = json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N``: tests one by one to whichever worker is free, but a notebook's cells as one
    unit, in order (they share a kernel). What ``--dist loadgroup`` with xdist_group marks would
    do, which pytest 9.2 defeats (xdist 3.8 renames node ids through a field pytest no longer
    reads). The longest units first, by the last run's durations (a notebook's: its cells'),
    so that the run does not end waiting on one long test that started late."""
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    durations = _read_durations()

    class NotebookScheduling(LoadScopeScheduling):  # type: ignore[misc]
        _longest_first = False

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path.endswith(".ipynb"):
                return path
            return next((u for p, u in SHARED.items() if nodeid.startswith(p)), nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if not self._longest_first:  # the queue is complete at the first assignment
                self._longest_first = True
                units = sorted(
                    self.workqueue.items(),
                    key=lambda unit: -sum(durations.get(n, UNTIMED) for n in unit[1]),
                )
                self.workqueue.clear()
                self.workqueue.update(units)
            super()._assign_work_unit(node)

    return NotebookScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # nbval skips cells tagged nbval-skip silently: say why instead
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and "nbval-skip" in cell.get("metadata", {}).get("tags", []):
            item.add_marker(
                pytest.mark.skip(reason="ipywidgets form cell: interactive only (skip-execution)")
            )
