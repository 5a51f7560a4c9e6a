"""Session set-up shared by the tests and by nbval on notebooks/.

One sandbox per test session, in a private directory; every cloud credential
probe pointed at loopback; the secrets variables of the developer's shell
removed so tests see only what they set.

Under pytest-xdist every worker is its own session: it imports this file, so it
gets its own sandbox directory (and sandbox); a notebook's nbval cells share one
kernel, so one worker runs them all, in order (the scheduler below).
"""

from __future__ import annotations

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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N``: tests one by one to whichever worker is free, but a notebook's cells as one
    unit, in order (they share a kernel). What ``--dist loadgroup`` with xdist_group marks would
    do, which pytest 9.2 defeats (xdist 3.8 renames node ids through a field pytest no longer
    reads). The largest units (the notebooks) are handed out first."""
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.endswith(".ipynb") else nodeid

    return NotebookScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # nbval skips cells tagged nbval-skip silently: say why instead
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and "nbval-skip" in cell.get("metadata", {}).get("tags", []):
            item.add_marker(
                pytest.mark.skip(reason="ipywidgets form cell: interactive only (skip-execution)")
            )
