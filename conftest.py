"""Session set-up shared by the tests and by nbval on notebooks/.

One sandbox per test session, in a private directory; every cloud credential
probe pointed at loopback; the secrets variables of the developer's shell
removed so tests see only what they set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from binderhub_registry import sandbox

ROOT = Path(__file__).parent
_SANDBOX_DIR = Path(tempfile.mkdtemp(prefix="bhr-test-sandbox-"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ["BINDERHUB_REGISTRY_SANDBOX_DIR"] = str(_SANDBOX_DIR)
    os.environ.update(sandbox.loopback_env())
    for name in ("DOCKERHUB_TOKEN", "DOCKERHUB_PASSWORD", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
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
        shutil.rmtree(ROOT / "notebooks" / "build", ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # nbval skips cells tagged nbval-skip silently: say why instead
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and "nbval-skip" in cell.get("metadata", {}).get("tags", []):
            item.add_marker(
                pytest.mark.skip(reason="ipywidgets form cell: interactive only (skip-execution)")
            )
