"""Google's steps plan, then apply: a dry run says what the real run would change, and only that.

Each step looks up first and stops at its first change (``Connection.plan``), so a dry run of a
deployment that is whole plans nothing, and the proof that what the record names is this
deployment's (``check_ours``) runs before a dry run's teardown plans any deletion, as it does
before a real one. Driven in-process on the sandbox.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from binderhub_registry import Runner, sandbox
from binderhub_registry.errors import CloudError
from binderhub_registry.providers import google

from .helpers import signed_in, whole_run

pytestmark = pytest.mark.sandbox


def rows(run: Runner) -> dict[str, tuple[str, str]]:
    """Each step's last row: its status and detail."""
    return {r.title: (r.status, r.detail) for r in run.checklist.rows}


def test_a_dry_run_of_a_whole_deployment_plans_nothing(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """The writer role and user pods' reader role are read, not assumed missing."""
    out = tmp_path / "values"
    whole_run(run, signed_in(run, out))
    before = fresh.state()["google"]
    dry = Runner(sleep=lambda seconds: None)
    conn = signed_in(dry, out, dry_run=True)
    whole_run(dry, conn)
    assert {title: row for title, row in rows(dry).items() if row[0] == "planned"} == {}
    assert rows(dry)["role"] == (
        "reused",
        f"{conn.params.email} has {google.ROLE} on the repository",
    )
    assert rows(dry)["pull"][0] == "reused"
    assert fresh.state()["google"] == before


def test_a_dry_run_teardown_refuses_what_is_not_ours_before_it_plans(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """A dry run's plan must not name another deployment's account for deletion."""
    # each its own account (service_account "")
    whole_run(run, signed_in(run, tmp_path / "gA", repository="staging", service_account=""))
    other = signed_in(run, tmp_path / "gB", repository="production", service_account="")
    whole_run(run, other)
    path = tmp_path / "gA" / google.Record.FILE
    data = json.loads(path.read_text())
    data["created"]["service_account"] = other.params.email  # gA's record names gB's account
    path.write_text(json.dumps(data))
    before = fresh.state()["google"]
    conn = signed_in(
        run, tmp_path / "gA", repository="staging", service_account="", teardown=True, dry_run=True
    )
    with pytest.raises(CloudError) as err:
        asyncio.run(run.astep("teardown", conn.teardown))
    message = str(err.value)
    assert "\n" not in message and "is not this deployment's" in message
    assert other.params.email in message
    assert fresh.state()["google"] == before
    assert json.loads(path.read_text()) == data  # a dry run writes no record
