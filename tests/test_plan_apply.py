"""Plan, then apply: the one dry-run exit every step shares (``Connection.plan``), the usual
change whole (``Connection.create``) and "absent is fine" (``if_present``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry.errors import CloudError
from binderhub_registry.providers import Connection, Record, contract
from binderhub_registry.steps import Planned, Result, Runner

from .helpers import common_params


def connection(tmp_path: Path, *, dry_run: bool) -> Connection:
    params = common_params(tmp_path, dry_run=dry_run)
    return Connection(params, Record(tmp_path, "test"), None)


@contract.creates
def make_thing(conn: Connection, made: list[str]) -> Result[str]:
    """A step: look up (nothing), then create it."""
    thing = conn.create(
        "thing",
        "create thing 'a'",
        lambda: made.append("a") or "a",
        pending={"name": "a", "pending": True},
    )
    return Result(thing, "created", "thing 'a'")


@pytest.mark.parametrize("through_runner", [False, True])
def test_a_dry_run_stops_at_the_plan_and_changes_nothing(
    tmp_path: Path, through_runner: bool
) -> None:
    conn, made = connection(tmp_path, dry_run=True), []
    if through_runner:
        run = Runner()
        assert run.step("thing", make_thing, conn, made) is None
        row = run.checklist.rows[-1]
        result = Result(None, row.status, row.detail)
    else:
        result = make_thing(conn, made)
    assert (result.status, result.detail) == ("planned", "would create thing 'a'")
    assert made == [] and conn.record.created == {}
    assert not (tmp_path / Record.FILE).exists()  # the record is not written either


def test_a_real_run_records_pending_then_what_was_made(tmp_path: Path) -> None:
    conn, made = connection(tmp_path, dry_run=False), []
    seen: list[Any] = []

    def make() -> str:  # what a crash right here would leave: the pending mark, on disk
        seen.append(Record(tmp_path, "test").created.get("thing"))
        made.append("a")
        return "a"

    assert conn.create("thing", "create thing 'a'", make, pending={"pending": True}) == "a"
    assert seen == [{"pending": True}]
    assert Record(tmp_path, "test").created == {"thing": "a"}


def test_create_async_and_keep(tmp_path: Path) -> None:
    conn = connection(tmp_path, dry_run=False)

    async def make() -> dict[str, str]:
        return {"id": "7", "secret": "never recorded"}

    made = asyncio.run(conn.create_async("thing", "create it", make, keep=lambda m: m["id"]))
    assert made["id"] == "7" and Record(tmp_path, "test").created == {"thing": "7"}


def test_a_plan_is_not_swallowed_by_a_broad_except(tmp_path: Path) -> None:
    """A step's ``except Exception`` between its plan and the runner lets the plan through."""
    conn = connection(tmp_path, dry_run=True)

    @contract.stops_at_plan
    def step() -> Result[None]:
        try:
            conn.plan("delete it", value="kept for later steps")
        except Exception:  # the case under test
            return Result(None, "failed", "swallowed")
        return Result(None, "deleted", "it")

    assert step() == Result("kept for later steps", "planned", "would delete it")
    assert isinstance(Planned("x"), BaseException) and not isinstance(Planned("x"), Exception)


def test_if_present_takes_404_as_absent_and_raises_the_rest() -> None:
    def answer(status: int) -> str:
        raise CloudError("no", status=status)

    assert contract.if_present(answer, 404) is None
    assert contract.if_present(lambda: "here") == "here"
    with pytest.raises(CloudError):
        contract.if_present(answer, 500)

    async def gone() -> str:
        raise CloudError("no", status=404)

    assert asyncio.run(contract.if_present_async(gone)) is None
