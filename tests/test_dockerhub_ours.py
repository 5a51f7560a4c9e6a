"""Docker Hub deletes only the tokens this deployment made, when several share one account.

The mark: each token's label ends in ``#<deployment id>`` (``#<id> pull`` for user pods'
read-only token). Docker Hub keeps a token's ``token_label`` and ``created_at`` (the API
description's accessToken, tests/data/dockerhub/hub-api.yaml; the fake keeps both as Hub
does), and the record keeps each token's uuid, label and creation time. Before a token is
deleted (teardown, retiring after a rotation, a token whose answer was lost, a pending one,
the read-only one) the live token is read and must carry this deployment's id, and the
recorded label and creation time; else one line names both and nothing is deleted. The id is
the record's own (``Record.deployment``), one per deployment. Each test failed before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import PermissionDenied, sandbox

from .helpers import Run, hub, session, tokens

pytestmark = pytest.mark.notebook


def record_file(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run.output_dir / "binderhub-registry.json").read_text())
    return data


def edit_record(run: Run, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit the record as a careless copy between deployments or a hostile edit would."""
    data = record_file(run)
    change(data["created"])
    (run.output_dir / "binderhub-registry.json").write_text(json.dumps(data, indent=2))


def signs_in(box: sandbox.Sandbox, secret: str) -> bool:
    """Whether Docker Hub (the fake) still accepts ``secret``: the token works."""
    r = hub(box, "POST", "/v2/auth/token", json={"identifier": "binderhubdemo", "secret": secret})
    return r.status_code == 200


def two_deployments(tmp_path: Path) -> tuple[Run, Run]:
    """Staging and production on one account: the same namespace and prefix, two output_dirs."""
    ours, other = Run(tmp_path / "a"), Run(tmp_path / "b")
    ours()
    other()
    return ours, other


def uuids(box: sandbox.Sandbox) -> set[str]:
    return {t["uuid"] for t in tokens(box)}


def one_line_naming(err: pytest.ExceptionInfo[PermissionDenied], *names: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for name in names:
        assert name in message, (name, message)


def other_intact(box: sandbox.Sandbox, other: Run) -> None:
    """The other deployment's two tokens still exist and still sign in."""
    created = other.record()
    assert {created["access_token"]["uuid"], created["pull_token"]["uuid"]} <= uuids(box)
    assert signs_in(box, other.secret()["registry"]["password"])
    assert signs_in(box, other.pull()["password"])


# --- point 1: the issue's own scenario ---------------------------------------------------------
def test_the_issues_scenario_a_plain_rerun_never_revokes_another_deployments_token(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """Another deployment's token uuid added to retiring_tokens, then a plain rerun: it
    revoked the other deployment's token. Now it stops before any change, in one line naming
    the recorded uuid and the live label."""
    ours, other = two_deployments(tmp_path)
    theirs = other.record()["access_token"]
    edit_record(ours, lambda c: c.setdefault("retiring_tokens", []).append(theirs["uuid"]))
    before = fresh.state()
    try:
        ours()
    except PermissionDenied as e:
        stopped: PermissionDenied | None = e
    else:
        stopped = None
    other_intact(fresh, other)  # before the change: the other's token was revoked here
    assert fresh.state() == before  # nothing made, nothing deleted
    assert stopped is not None and "\n" not in str(stopped)
    for name in theirs["uuid"], theirs["label"], f"#{record_file(ours)['deployment']}":
        assert name in str(stopped), (name, str(stopped))


@pytest.mark.parametrize(
    "kind", ["access_token", "pull_token", "pending_token", "pending_pull_token"]
)
def test_teardown_with_another_deployments_token_recorded_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path, kind: str
) -> None:
    """The record names another deployment's token (its uuid and label, as a copied record
    would): teardown deletes nothing at all, its own tokens included, and says why."""
    ours, other = two_deployments(tmp_path)
    theirs = other.record()["pull_token" if "pull" in kind else "access_token"]
    edit_record(ours, lambda c: c.__setitem__(kind, dict(theirs, digest="0" * 16)))
    before = fresh.state()
    with pytest.raises(PermissionDenied) as err:
        ours(teardown=True)
    one_line_naming(err, kind, theirs["uuid"], theirs["label"])
    assert fresh.state() == before
    other_intact(fresh, other)


def test_teardown_with_another_deployments_uuid_under_our_label_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """Only the uuid changed (the label still ours): the live label names the other id."""
    ours, other = two_deployments(tmp_path)
    theirs = other.record()["access_token"]
    edit_record(ours, lambda c: c["access_token"].__setitem__("uuid", theirs["uuid"]))
    before = fresh.state()
    with pytest.raises(PermissionDenied) as err:
        ours(teardown=True)
    one_line_naming(err, theirs["uuid"], theirs["label"], ours.record()["access_token"]["label"])
    assert fresh.state() == before
    other_intact(fresh, other)


def test_rotate_with_another_deployments_token_recorded_stops_before_creating(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """A rotation would retire the recorded token: proven foreign, nothing is made first."""
    ours, other = two_deployments(tmp_path)
    theirs = other.record()["pull_token"]
    edit_record(ours, lambda c: c.__setitem__("pull_token", theirs))
    before = fresh.state()
    with pytest.raises(PermissionDenied) as err:
        ours(rotate=True)
    one_line_naming(err, theirs["uuid"], theirs["label"])
    assert fresh.state() == before
    other_intact(fresh, other)


def test_pull_access_none_never_retires_another_deployments_read_only_token(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """pull_access none retires the recorded read-only token: not when it is another's."""
    ours, other = two_deployments(tmp_path)
    theirs = other.record()["pull_token"]
    edit_record(ours, lambda c: c.__setitem__("pull_token", theirs))
    with pytest.raises(PermissionDenied) as err:
        ours(pull_access="none")
    one_line_naming(err, theirs["uuid"], theirs["label"])
    other_intact(fresh, other)


def test_a_token_with_our_label_but_another_creation_time_is_not_deleted(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """The record kept the token's creation time: a live token created at another time is
    not the one recorded (a record copied from before a rotation, say)."""
    ours = Run(tmp_path / "a")
    ours()
    edit_record(ours, lambda c: c["access_token"].__setitem__("created_at", "2001-01-01T00:00:00Z"))
    before = fresh.state()
    with pytest.raises(PermissionDenied) as err:
        ours(teardown=True)
    one_line_naming(err, "another creation time", "2001-01-01")
    assert fresh.state() == before


def test_the_record_keeps_each_tokens_creation_time(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    ours = Run(tmp_path / "a")
    ours()
    created = ours.record()
    assert created["access_token"]["created_at"] and created["pull_token"]["created_at"]


def test_teardown_of_our_own_tokens_still_deletes_them_all(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """The check lets this deployment's own tokens go, the other's stay."""
    ours, other = two_deployments(tmp_path)
    mine = {ours.record()[k]["uuid"] for k in ("access_token", "pull_token")}
    out = ours(teardown=True)
    assert "secret.yaml removed" in out
    assert not mine & uuids(fresh)
    other_intact(fresh, other)


# --- point 2: one deployment id ----------------------------------------------------------------
def test_the_tokens_carry_the_records_deployment_id(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    """One id per deployment: the one the record keeps at its top level is the one the
    labels carry, and the record keeps no second copy among what was created."""
    ours = Run(tmp_path / "a")
    ours()
    data = record_file(ours)
    assert "deployment" not in data["created"]
    assert data["created"]["access_token"]["label"].endswith(f" #{data['deployment']}")
    assert data["created"]["pull_token"]["label"].endswith(f" #{data['deployment']} pull")


def test_a_record_from_before_keeps_its_deployment_id(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """A record written before Record.deployment kept the id in created["deployment"] (and
    no creation times): a rerun reuses its tokens, its teardown deletes them, and the id
    moves to the record's top level unchanged."""
    ours = Run(tmp_path / "a")
    ours()
    data = record_file(ours)
    deployment = data.pop("deployment")
    data["created"]["deployment"] = deployment
    for kind in ("access_token", "pull_token"):
        data["created"][kind].pop("created_at", None)
    (ours.output_dir / "binderhub-registry.json").write_text(json.dumps(data))
    before = fresh.state()
    out = ours()
    assert "Access token for BinderHub [reused]" in out
    assert fresh.state() == before
    again = record_file(ours)
    assert again["deployment"] == deployment and "deployment" not in again["created"]
    assert again["created"]["access_token"]["created_at"]  # proven ours, then kept
    assert again["created"]["pull_token"]["created_at"]
    ours(teardown=True)
    assert tokens(fresh) == []


def test_a_token_labelled_before_deployment_ids_is_never_deleted(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """Runs before deployment ids (each output_dir's id, in every label) labelled the token
    without one, so nothing on Docker Hub says whose it is: it is never deleted, and the line
    says what to do."""
    ours = Run(tmp_path / "a")
    ours()
    made = hub(
        fresh,
        "POST",
        "/v2/access-tokens",
        json={"token_label": "BinderHub push binderhubdemo/binder-*", "scopes": ["repo:write"]},
        headers=session(fresh),
    ).json()
    old = {"uuid": made["uuid"], "label": made["token_label"]}
    edit_record(ours, lambda c: c.setdefault("retiring_tokens", []).append(old["uuid"]))
    before = fresh.state()
    with pytest.raises(PermissionDenied) as err:
        ours(teardown=True)
    one_line_naming(err, old["uuid"], repr(old["label"]), "revoke it on hub.docker.com")
    assert fresh.state() == before
