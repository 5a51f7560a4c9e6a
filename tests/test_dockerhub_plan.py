"""Docker Hub's steps plan, then apply (``Connection.plan``, ``create``, ``note``).

A token is marked pending in the record (its label, which carries the deployment id) before
the call that creates it, as ``Connection.create`` does: so a creation whose answer was lost
is this deployment's even when no run finishes, and teardown deletes it (before, the record
was saved before the call only as an empty list of retiring tokens, and teardown found
nothing to delete): the first two tests failed before the change. A dry run stops at each
step's plan and changes nothing, not even the record file (the last two: they held before,
when the steps wrote their own dry-run exits and saved the record themselves).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from binderhub_registry import sandbox
from binderhub_registry.errors import TransientCloudError

from .helpers import Run, tokens

pytestmark = pytest.mark.notebook

#: Every creation of a token answers nothing, after Docker Hub made it (a reset on the way back).
LOST = {"method": "POST", "path": "/access-tokens$", "drop": True, "after": True, "times": 99}


def test_teardown_deletes_a_token_whose_creation_answer_was_lost(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    run = Run(tmp_path)
    fresh.add_faults(LOST)
    with pytest.raises(TransientCloudError):
        run()
    fresh.clear_faults()
    assert len(tokens(fresh)) == 1  # made by this deployment; nobody holds its secret
    pending = run.record()["pending_token"]
    assert set(pending) == {"label"} and pending["label"] == tokens(fresh)[0]["label"]
    out = run(teardown=True)
    assert "the access token of a stopped rotation" in out
    assert tokens(fresh) == []
    assert run.record() == {}


def test_a_rerun_that_reuses_its_token_keeps_a_lost_ones_mark_for_teardown(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """A rotation whose new token's answer was lost, then a plain rerun: the stored token still
    works and is reused, and the lost one stays marked until teardown deletes it."""
    run = Run(tmp_path)
    run()
    kept = run.record()["access_token"]["uuid"]
    fresh.add_faults(LOST)
    with pytest.raises(TransientCloudError):
        run(rotate=True)
    fresh.clear_faults()
    run()
    assert run.record()["access_token"]["uuid"] == kept
    assert "label" in run.record()["pending_token"]
    assert len(tokens(fresh)) == 4  # push, read-only, prune, and the lost one
    run(teardown=True)
    assert tokens(fresh) == []


def test_a_dry_run_writes_no_record(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    run = Run(tmp_path)
    out = run(dry_run=True)
    assert "would create access token" in out
    assert not (run.output_dir / "binderhub-registry.json").exists()
    assert tokens(fresh) == []


def test_a_dry_run_leaves_an_old_records_deployment_id_where_it_was(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """Records from before ``Record.deployment`` kept the id among what was created: a real
    run moves it to the top level; a dry run reads it and writes nothing."""
    run = Run(tmp_path)
    run.output_dir.mkdir(parents=True)
    path = run.output_dir / "binderhub-registry.json"
    old = {"provider": "dockerhub", "created": {"deployment": "0a1b2c3d"}}
    path.write_text(json.dumps(old))
    assert "#0a1b2c3d" in run(dry_run=True)
    assert json.loads(path.read_text()) == old
    run()
    data = json.loads(path.read_text())
    assert data["deployment"] == "0a1b2c3d" and "deployment" not in data["created"]
