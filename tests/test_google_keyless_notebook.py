"""Notebook 01 keyless, end to end with papermill.

With BinderHub's GKE cluster in the project (its Workload Identity pool exists) the keyless run
completes, and its verification says the build pods' push is not covered by keyless; in a
project without a cluster it stops at the Workload Identity step with one line saying what to do.
"""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from binderhub_registry import sandbox
from binderhub_registry.providers import google

from .conftest import NOTEBOOKS, NotebookRun, outputs_text
from .helpers import settings

pytestmark = pytest.mark.sandbox


@pytest.fixture
def nb(tmp_path: Path, fresh: sandbox.Sandbox) -> NotebookRun:
    return NotebookRun(NOTEBOOKS / f"{google.NOTEBOOK}.ipynb", tmp_path)


def test_a_keyless_run_completes_and_says_what_keyless_does_not_cover(
    nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    settings(fresh, "google", workload_identity_pools=["binderhub-demo"])
    text = outputs_text(nb(auth="metadata"))
    assert "BinderHub's keyless check works; build pods' push is not covered by keyless" in text
    assert "a push to" not in text


def test_without_a_gke_cluster_the_keyless_run_stops_in_one_line(
    nb: NotebookRun, fresh: sandbox.Sandbox
) -> None:
    with pytest.raises(papermill.PapermillExecutionError):
        nb(auth="metadata")
    text = nb.last_output()
    assert "the Workload Identity pool binderhub-demo.svc.id.goog does not exist" in text
    assert "--workload-pool=binderhub-demo.svc.id.goog" in text
