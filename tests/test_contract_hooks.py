"""The shared steps' hooks: what a provider supplies instead of overriding a shared step.

``check_ours`` (before teardown deletes anything, a dry run included) and ``diagnose`` (a
failed verification's cause in the registry's own view), each called by the contract's step.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry.errors import PermissionDenied, VerificationFailed
from binderhub_registry.providers import CommonParams, Connection, Deletion, Record, contract


class Recorded(Connection):
    """A connection whose record names one thing, which is another deployment's."""

    deleted: list[Any]

    def deletions(self) -> list[Deletion]:
        return [Deletion("thing", "thing 'a'", self.deleted.append)]

    def check_ours(self) -> None:
        raise PermissionDenied("thing 'a' is another deployment's")

    def diagnose(self) -> str | None:
        return "the registry says: the credential expired"


def connection(tmp_path: Path, **changes: Any) -> Recorded:
    values: dict[str, Any] = {
        "prefix": "binder-",
        "pull_access": "secret",
        "output_dir": tmp_path,
        "dry_run": False,
        "teardown": True,
        "rotate": False,
        "keep_replaced": False,
        "sandbox": True,
    }
    record = Record(tmp_path, "test")
    record.set("thing", {"name": "a"})
    conn = Recorded(CommonParams(**(values | changes)), record, None)
    conn.deleted = []
    return conn


@pytest.mark.parametrize("dry_run", [False, True])
def test_teardown_checks_ours_first_in_a_dry_run_too(tmp_path: Path, dry_run: bool) -> None:
    conn = connection(tmp_path, dry_run=dry_run)
    with pytest.raises(PermissionDenied, match="another deployment's"):
        asyncio.run(conn.teardown())
    assert conn.deleted == [] and conn.record.created["thing"] == {"name": "a"}


def test_a_failed_verification_names_the_registrys_diagnosis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*_: Any) -> Any:
        raise VerificationFailed("push", "unauthorized")

    monkeypatch.setattr(contract, "verify_step", failing)
    with pytest.raises(VerificationFailed) as err:
        connection(tmp_path).verify(None)
    assert err.value.check == "push"
    assert err.value.diagnosis == "the registry says: the credential expired"
