"""A dry run writes nothing, not even the record, on Harbor and OVH's Harbor alike.

A run whose creation answer was lost leaves a pending entry (``harbor_project_pending``,
``harbor_robot_pending``); the next run finds the project or robot and adopts it. A dry run
adopts it in memory only (``Connection.note``), so its plan and its teardown plan name it, and
the record on disk stays as it was: a dry run changes nothing (the contract's promise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from binderhub_registry import sandbox
from binderhub_registry.providers import harbor

from .conftest import NOTEBOOKS


def defaults() -> dict[str, Any]:
    """The Harbor notebook's parameters cell, as its defaults."""
    cells = json.loads((NOTEBOOKS / "05-harbor.ipynb").read_text())["cells"]
    source = next(
        "".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", [])
    )
    scope: dict[str, Any] = {}
    exec(source, scope)
    return {k: v for k, v in scope.items() if not k.startswith("__")}


def run(out: Path, **overrides: Any) -> harbor.HarborConnection:
    """Sign in, then the project and BinderHub's robot, in process."""
    p = harbor.validate(defaults() | {"output_dir": str(out)} | overrides)
    conn = harbor.sign_in(p).value
    harbor.ensure_project(conn)
    harbor.ensure_robot(conn)
    return conn


def test_a_dry_run_adopts_a_lost_answer_in_memory_only(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "values"
    conn = run(out)
    project, robot = conn.params.harbor_project, conn.record.created[harbor.BUILDER.kind]
    record = out / "binderhub-registry.json"
    data = json.loads(record.read_text())
    # what a run whose two creation answers were lost left: pending names, no entries
    data["created"] = {
        "harbor_project_pending": project,
        f"{harbor.BUILDER.kind}_pending": robot["name"],
    }
    record.write_text(json.dumps(data, indent=2))
    before = record.read_bytes()

    planned = run(out, dry_run=True)

    assert record.read_bytes() == before  # nothing written
    created = planned.record.created  # adopted in memory: teardown's plan names them
    assert created["harbor_project"]["name"] == project
    assert created[harbor.BUILDER.kind]["id"] == robot["id"]
    assert "harbor_project_pending" not in created

    again = run(out)  # the real run adopts them on disk
    saved = json.loads(record.read_text())["created"]
    assert saved["harbor_project"]["name"] == project
    assert saved[harbor.BUILDER.kind]["id"] == robot["id"] == again.robot["id"]
    assert not [kind for kind in saved if kind.endswith("_pending")]
