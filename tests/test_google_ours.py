"""Google: a run deletes only what this deployment made, when several share one project.

Each deployment gets its own service accounts by default (``binderhub-<deployment id>`` and its
``-pull`` twin); what the notebook creates carries ``binderhub-registry <deployment id>`` (a
service account's description, a repository's label), and teardown reads the live resource
and checks that mark and the recorded name before deleting anything. Keys, which carry no
mark, are told apart by the ids each deployment recorded. Driven in-process on the sandbox.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from binderhub_registry import InvalidParameter, Runner, sandbox
from binderhub_registry.errors import CloudError
from binderhub_registry.providers import google

from .helpers import GOOGLE_DEFAULTS, torn_down

pytestmark = pytest.mark.sandbox

#: The notebook's defaults: no service_account (each deployment its own).
OWN = {k: v for k, v in GOOGLE_DEFAULTS.items() if k != "service_account"}


def signed_in(run: Runner, out: Path, **overrides: Any) -> google.GoogleConnection:
    p = google.validate(OWN, output_dir=str(out), **overrides)
    conn: google.GoogleConnection = run.step("sign in", google.sign_in, p)
    return conn


def full_run(run: Runner, out: Path, **overrides: Any) -> google.GoogleConnection:
    """The notebook's steps in order (teardown too, when asked)."""
    conn = signed_in(run, out, **overrides)
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    run.step("role", google.grant_writer, conn)
    run.step("key", google.ensure_key, conn)
    run.step("workload identity", google.bind_workload_identity, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    files = run.step("values", conn.write_values)
    run.step("verify", conn.verify, files)
    asyncio.run(run.astep("finish", conn.finish_rotation))
    asyncio.run(run.astep("teardown", conn.teardown))
    return conn


def teardown(run: Runner, out: Path, **overrides: Any) -> google.GoogleConnection:
    conn = signed_in(run, out, teardown=True, **overrides)
    asyncio.run(run.astep("teardown", conn.teardown))
    return conn


def accounts(box: sandbox.Sandbox) -> dict[str, Any]:
    return {a["email"]: a for a in box.state()["google"]["service_accounts"]}


def registries(box: sandbox.Sandbox) -> dict[str, Any]:
    return {r["name"]: r for r in box.state()["google"]["registries"]}


def stored_key(out: Path, pull: bool = False) -> str:
    values = yaml.safe_load((out / "secret.yaml").read_text())
    section = values["jupyterhub"]["imagePullSecret"] if pull else values["registry"]
    return str(json.loads(section["password"])["private_key_id"])


def record(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / google.Record.FILE).read_text()))


def edit_record(out: Path, **created: Any) -> None:
    data = record(out)
    data["created"].update(created)
    (out / google.Record.FILE).write_text(json.dumps(data))


def row(run: Runner, title: str) -> tuple[str, str]:
    found = [r for r in run.checklist.rows if r.title == title][-1]
    return found.status, found.detail


# --- point 2: deployments sharing a project ------------------------------------------------
def test_each_deployment_gets_its_own_accounts_named_and_marked_by_its_id(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    conn = full_run(run, tmp_path / "gA")
    deployment = record(tmp_path / "gA")["deployment"]
    assert conn.params.service_account == f"binderhub-{deployment}"
    assert conn.params.pull_account == f"binderhub-{deployment}-pull"
    live = accounts(fresh)
    mark = f"binderhub-registry {deployment}"
    assert mark in live[conn.params.email]["description"]
    assert mark in live[conn.params.pull_email]["description"]
    (repo,) = registries(fresh).values()
    assert repo["labels"] == {"binderhub-registry": deployment}
    # a rerun keeps the same accounts (the record names them) and makes nothing new
    again = full_run(run, tmp_path / "gA")
    assert again.params.email == conn.params.email and accounts(fresh) == live


def test_the_issue_scenario_with_defaults_leaves_the_other_deployments_key(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """`PM 01` into gA, then gB, then gA with rotate: gB's key stays live."""
    a = full_run(run, tmp_path / "gA")
    b = full_run(run, tmp_path / "gB")
    assert a.params.email != b.params.email  # two deployments, two accounts
    b_key, b_pull = stored_key(tmp_path / "gB"), stored_key(tmp_path / "gB", pull=True)
    full_run(run, tmp_path / "gA", rotate=True)
    live = accounts(fresh)
    assert live[b.params.email]["keys"] == [b_key]
    assert live[b.params.pull_email]["keys"] == [b_pull]
    assert "lost" not in row(run, "key")[1]


def test_a_shared_named_account_keeps_the_other_deployments_key(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """The issue's reproduction with the old default named on both: keys are told apart by
    the ids each deployment recorded; gB's is never "lost" to gA."""
    shared = {"service_account": "binderhub-builder"}
    full_run(run, tmp_path / "gA", **shared)
    full_run(run, tmp_path / "gB", **shared)
    b_key, b_pull = stored_key(tmp_path / "gB"), stored_key(tmp_path / "gB", pull=True)
    a = full_run(run, tmp_path / "gA", rotate=True, **shared)
    status, detail = row(run, "key")
    assert status == "created" and "lost" not in detail
    live = accounts(fresh)
    assert b_key in live[a.params.email]["keys"] and len(live[a.params.email]["keys"]) == 2
    assert b_pull in live[a.params.pull_email]["keys"]
    assert stored_key(tmp_path / "gA") in live[a.params.email]["keys"]
    # gA's teardown deletes its keys; the account it made stays, with its role, while gB's
    # key uses it
    teardown(run, tmp_path / "gA", **shared)
    live = accounts(fresh)
    assert live[a.params.email]["keys"] == [b_key]
    assert live[a.params.pull_email]["keys"] == [b_pull]
    full_run(run, tmp_path / "gB", **shared)  # gB still verifies with its keys
    assert row(run, "verify")[0] == "done"


def test_another_deployments_own_account_name_is_refused(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    full_run(run, tmp_path / "gB")
    other = accounts(fresh)
    b_name = next(e for e in other if e.startswith("binderhub-") and "-pull" not in e)
    with pytest.raises(InvalidParameter) as err:
        signed_in(run, tmp_path / "gA", service_account=b_name.partition("@")[0])
    assert "another deployment's own account" in str(err.value)
    assert "\n" not in str(err.value)


# --- point 1: teardown checks the live marks and names ---------------------------------------
def test_teardown_refuses_another_deployments_account_named_in_the_record(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    full_run(run, tmp_path / "gA", repository="staging")
    b = full_run(run, tmp_path / "gB", repository="production")
    # a careless copy or a hostile edit: gA's record names gB's account
    edit_record(tmp_path / "gA", account=b.params.email, service_account=b.params.email)
    before = fresh.state()["google"]
    with pytest.raises(CloudError) as err:
        teardown(run, tmp_path / "gA")
    message = str(err.value)
    assert "\n" not in message and b.params.email in message
    assert "recorded" in message and "live" in message
    assert fresh.state()["google"] == before  # nothing at all was deleted


def test_teardown_refuses_a_repository_without_this_deployments_label(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    a = full_run(run, tmp_path / "gA")
    # someone's own repository, made without this notebook (no label)
    parent = f"projects/{a.params.project_id}/locations/{a.params.location}"
    body = {"format": "DOCKER", "description": "the team's images"}
    a.registry.repositories().create(parent=parent, repositoryId="library", body=body).execute()
    library = f"{parent}/repositories/library"
    edit_record(tmp_path / "gA", repository=library)
    before = fresh.state()["google"]
    with pytest.raises(CloudError) as err:
        teardown(run, tmp_path / "gA", repository="library")
    assert "no binderhub-registry label" in str(err.value) and library in str(err.value)
    assert fresh.state()["google"] == before


def test_teardown_removes_only_the_recorded_member(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    full_run(run, tmp_path / "gA")
    edit_record(
        tmp_path / "gA", binding="serviceAccount:someone@binderhub-demo.iam.gserviceaccount.com"
    )
    before = fresh.state()["google"]
    with pytest.raises(CloudError, match="someone@"):
        teardown(run, tmp_path / "gA")
    assert fresh.state()["google"] == before


def test_teardown_keeps_the_api_while_another_deployments_repository_uses_it(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    full_run(run, tmp_path / "gA", repository="staging")  # it enabled the API
    b = full_run(run, tmp_path / "gB", repository="production")  # found it enabled
    assert "api" in record(tmp_path / "gA")["created"]
    teardown(run, tmp_path / "gA", repository="staging")
    state = fresh.state()["google"]
    assert google.SERVICE in state["services"]
    assert list(registries(fresh)) == [b.repository_name]
    assert b.params.email in accounts(fresh)


def test_a_teardown_with_marks_intact_deletes_everything_it_made(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    seeded = torn_down(fresh.state()["google"])
    full_run(run, tmp_path / "gA")
    teardown(run, tmp_path / "gA")
    assert fresh.state()["google"] == seeded
    assert not any(record(tmp_path / "gA")["created"].values())


# --- point 3: records from before marks ------------------------------------------------------
def make_legacy(conn: google.GoogleConnection, out: Path) -> None:
    """What this notebook left before marks: the old texts, no label, no deployment id."""
    from google.cloud.iam_admin_v1 import types
    from google.protobuf import field_mask_pb2

    p = conn.params
    for email, text in ((p.email, google.PUSHER_TEXT), (p.pull_email, google.PULLER_TEXT)):
        conn.iam.patch_service_account(
            request=types.PatchServiceAccountRequest(
                service_account=types.ServiceAccount(
                    name=f"projects/{p.project_id}/serviceAccounts/{email}",
                    description=text.format(repository=conn.repository_name),
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            )
        )
    conn.registry.repositories().patch(
        name=conn.repository_name,
        updateMask="labels,description",
        body={"labels": {}, "description": google.REPOSITORY_TEXT},
    ).execute()
    data = record(out)
    created = data["created"]
    created.pop(google.ACCOUNT)
    created["binding"], created["pull_binding"] = google.ROLE, google.PULL_ROLE
    (out / google.Record.FILE).write_text(json.dumps({"provider": "google", "created": created}))


def test_a_legacy_record_is_marked_by_a_rerun_then_torn_down(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    seeded = torn_down(fresh.state()["google"])
    out = tmp_path / "gA"
    old = full_run(run, out, service_account=google.LEGACY_ACCOUNT)
    make_legacy(old, out)
    key = stored_key(out)
    again = full_run(run, out)  # the new default: the account the record names
    assert again.params.email == old.params.email and stored_key(out) == key
    deployment = record(out)["deployment"]
    live = accounts(fresh)
    assert f"binderhub-registry {deployment}" in live[old.params.email]["description"]
    assert f"binderhub-registry {deployment}" in live[old.params.pull_email]["description"]
    assert registries(fresh)[old.repository_name]["labels"] == {"binderhub-registry": deployment}
    teardown(run, out)
    assert fresh.state()["google"] == seeded


def test_a_legacy_record_tears_down_by_name_and_old_text(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    seeded = torn_down(fresh.state()["google"])
    out = tmp_path / "gA"
    make_legacy(full_run(run, out, service_account=google.LEGACY_ACCOUNT), out)
    teardown(run, out)
    assert fresh.state()["google"] == seeded


def test_a_legacy_record_naming_an_account_with_other_text_is_refused(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    out = tmp_path / "gA"
    conn = full_run(run, out, service_account=google.LEGACY_ACCOUNT)
    make_legacy(conn, out)
    from google.cloud.iam_admin_v1 import types
    from google.protobuf import field_mask_pb2

    conn.iam.patch_service_account(  # someone else's account by that name now
        request=types.PatchServiceAccountRequest(
            service_account=types.ServiceAccount(
                name=conn.account_name, description="the data team's CI"
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        )
    )
    before = fresh.state()["google"]
    with pytest.raises(CloudError, match="the data team's CI"):
        teardown(run, out)
    assert fresh.state()["google"] == before
