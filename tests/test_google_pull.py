"""Google: user pods' pull, driven in-process against the sandbox.

pull_access "secret" makes a second service account (``<service_account>-pull``) with
roles/artifactregistry.reader on the repository alone and a JSON key for
``jupyterhub.imagePullSecret``; "node" grants that role to the GKE nodes' service account;
"none" makes nothing. Each is checked against the fake's live state.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from binderhub_registry import InvalidParameter, Runner, sandbox
from binderhub_registry.errors import BinderHubRegistryError
from binderhub_registry.providers import google
from binderhub_registry.providers.google.keys import _delete_key
from binderhub_registry.pull import PULL_CHECK, PUSH_REFUSED_CHECK
from binderhub_registry.registry_http import RegistryHTTP

from .helpers import GOOGLE_DEFAULTS, grpc_calls, settings, torn_down

pytestmark = pytest.mark.sandbox

NODE_SA = "123456789012-compute@developer.gserviceaccount.com"  # GKE's default node account


def params(tmp_path: Path, **overrides: Any) -> google.Params:
    return google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), **overrides)


def full_run(run: Runner, p: google.Params) -> tuple[google.GoogleConnection, Any, Any]:
    """The notebook's steps in order; the connection, the pull step's result and the report."""
    conn, pull, files = run_until_write(run, p)
    report = run.step("verify", conn.verify, files)
    asyncio.run(run.astep("retire", conn.finish_rotation))
    return conn, pull, report


def accounts(box: sandbox.Sandbox) -> dict[str, Any]:
    return {a["email"]: a for a in box.state()["google"]["service_accounts"]}


def bindings(box: sandbox.Sandbox) -> list[dict[str, Any]]:
    (repo,) = box.state()["google"]["registries"]
    return list(repo["bindings"])


def secret_yaml(p: google.Params) -> dict[str, Any]:
    return dict(yaml.safe_load((p.output_dir / "secret.yaml").read_text()))


def pull_key_id(p: google.Params) -> str:
    password = secret_yaml(p)["jupyterhub"]["imagePullSecret"]["password"]
    return str(json.loads(password)["private_key_id"])


def statuses(run: Runner) -> dict[str, str]:
    return {row.title: row.status for row in run.checklist.rows}


def last_row(run: Runner, title: str) -> Any:
    return [row for row in run.checklist.rows if row.title == title][-1]


# --- parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"pull_access": "nodes"}, "pull_access"),
        ({"pull_access": "Secret"}, "pull_access"),
        ({"pull_access": True}, "pull_access"),
        ({"pull_access": "node"}, "node_service_account"),  # node needs the nodes' account
        ({"pull_access": "node", "node_service_account": "nodes"}, "node_service_account"),
        (
            {"pull_access": "node", "node_service_account": "x@binderhub-demo.iam.example.com"},
            "node_service_account",
        ),
        ({"service_account": "b" * 25 + "-pull"}, "service_account"),  # its -pull twin is itself
    ],
)
def test_bad_pull_inputs_give_one_line_before_any_call(
    tmp_path: Path, overrides: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidParameter) as err:
        params(tmp_path, **overrides)
    assert err.value.name == name and "\n" not in str(err.value)
    assert not (tmp_path / "values").exists()  # nothing made: checked before the output dir


def test_the_pull_account_id_follows_iams_rule(tmp_path: Path) -> None:
    assert params(tmp_path).pull_account == "binderhub-builder-pull"
    long = params(tmp_path, service_account="a" * 24 + "-bcdef").pull_account
    assert long == "a" * 24 + "-pull" and len(long) <= 30  # cut at 25, trailing '-' dropped


def test_pull_access_defaults_to_secret_when_a_cell_lacks_it(tmp_path: Path) -> None:
    values = {k: v for k, v in GOOGLE_DEFAULTS.items() if k != "pull_access"}
    p = google.validate(values, output_dir=str(tmp_path / "values"))
    assert p.pull_access == "secret" and p.node_service_account == ""


# --- the fake ------------------------------------------------------------------------------
def test_reader_pulls_but_its_push_gets_artifact_registrys_denied(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path)
    conn, pull, _ = full_run(run, p)
    assert pull is not None and pull.username == "_json_key" and pull.registry == conn.host
    url, image = f"https://{conn.host}", f"{p.project_id}/{p.repository}/{p.prefix}push-test"
    http = RegistryHTTP(pull.username, pull.password, fresh.ca_file)
    # through the token realm, as a client does: pull granted, push not
    r = http.get(
        f"{url}/v2/token",
        params={
            "service": f"{p.location}-docker.pkg.dev",
            "scope": f"repository:{image}:pull,push",
        },
        auth=(pull.username, pull.password.reveal()),
    )
    assert r.status_code == 200
    token = r.json()["token"]
    up = http.send(
        "POST", f"{url}/v2/{image}/blobs/uploads/", headers={"Authorization": f"Bearer {token}"}
    )
    assert up.status_code == 403
    error = up.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert error["message"] == (
        'Permission "artifactregistry.repositories.uploadArtifacts" denied on resource '
        f'"projects/{p.project_id}/locations/{p.location}/repositories/{p.repository}" '
        "(or it may not exist)"
    )
    # Basic credentials on the data plane: the same answer
    basic = http.send(
        "POST", f"{url}/v2/{image}/blobs/uploads/", auth=(pull.username, pull.password.reveal())
    )
    assert basic.status_code == 403 and basic.json()["errors"][0]["code"] == "DENIED"


def test_a_new_repository_grants_nobody_but_the_owner(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    conn = run.step("sign in", google.sign_in, params(tmp_path))
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    assert bindings(fresh) == []


# --- the default run -------------------------------------------------------------------------
def test_the_default_run_writes_a_pull_only_key_that_verifies(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path)
    conn, _, report = full_run(run, p)
    written = secret_yaml(p)["jupyterhub"]["imagePullSecret"]
    assert written["create"] is True and written["registry"] == conn.host
    assert written["username"] == "_json_key"
    assert json.loads(written["password"])["client_email"] == p.pull_email
    assert {"role": google.PULL_ROLE, "members": [p.pull_member]} in bindings(fresh)
    roles = [b["role"] for b in bindings(fresh) if p.pull_member in b["members"]]
    assert roles == [google.PULL_ROLE]  # reader on the repository, nothing else
    assert len(accounts(fresh)[p.pull_email]["keys"]) == 1
    checks = {c.name: c.status for c in report.checks}
    assert checks[PULL_CHECK] == "ok" and checks[PUSH_REFUSED_CHECK] == "ok"
    assert "PRIVATE KEY" not in repr(run.checklist)  # the key goes to secret.yaml only


def test_a_rerun_creates_nothing(fresh: sandbox.Sandbox, tmp_path: Path, run: Runner) -> None:
    p = params(tmp_path)
    full_run(run, p)
    before, key = fresh.state()["google"], pull_key_id(p)
    created = len(grpc_calls(fresh, "CreateServiceAccountKey"))
    again = Runner(sleep=lambda seconds: None)
    full_run(again, p)
    assert statuses(again)["pull"] == "reused"
    assert len(grpc_calls(fresh, "CreateServiceAccountKey")) == created
    assert fresh.state()["google"]["service_accounts"] == before["service_accounts"]
    assert bindings(fresh) == before["registries"][0]["bindings"] and pull_key_id(p) == key


def test_a_lost_pull_key_is_replaced_not_piled_up(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path)
    full_run(run, p)
    (p.output_dir / "secret.yaml").unlink()  # the JSON is lost
    full_run(run, p)
    assert len(accounts(fresh)[p.pull_email]["keys"]) == 1


# --- rotation -------------------------------------------------------------------------------
def test_rotate_replaces_the_pull_key_and_keep_replaced_keeps_the_old_one(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path)
    full_run(run, p)
    old = pull_key_id(p)
    full_run(run, params(tmp_path, rotate=True, keep_replaced=True))
    new = pull_key_id(p)
    keys = accounts(fresh)[p.pull_email]["keys"]
    assert new != old and sorted(keys) == sorted([old, new])  # the deployed one still pulls
    assert {google.PULL_KEY: old} in google.Record(p.output_dir, google.KEY).created[
        "retiring_keys"
    ]
    full_run(run, p)  # a plain run once the new secret.yaml is deployed
    assert accounts(fresh)[p.pull_email]["keys"] == [new]
    assert pull_key_id(p) == new


def test_rotate_without_keep_replaced_removes_the_old_pull_key_once_verified(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path)
    full_run(run, p)
    old = pull_key_id(p)
    full_run(run, params(tmp_path, rotate=True))
    assert accounts(fresh)[p.pull_email]["keys"] == [pull_key_id(p)] != [old]


# --- dry run and teardown ---------------------------------------------------------------------
def test_a_dry_run_creates_and_shows_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    seeded = fresh.state()["google"]
    p = params(tmp_path, dry_run=True)
    _, pull, report = full_run(run, p)
    assert pull is None and report is None and fresh.state()["google"] == seeded
    row = last_row(run, "pull")
    assert row.status == "planned" and "would create service account" in row.detail


def test_a_dry_run_of_a_rotation_says_what_it_would_do(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path)
    full_run(run, p)
    before = fresh.state()["google"]
    full_run(run, params(tmp_path, rotate=True, dry_run=True))
    assert last_row(run, "pull").status == "planned"
    assert "would create a new JSON key" in last_row(run, "pull").detail
    assert fresh.state()["google"] == before


def test_teardown_removes_the_pull_binding_key_and_account(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    seeded = torn_down(fresh.state()["google"])
    p = params(tmp_path)
    full_run(run, params(tmp_path, rotate=False))
    full_run(run, params(tmp_path, rotate=True, keep_replaced=True))  # a retiring pull key too
    down = run.step("sign in", google.sign_in, params(tmp_path, teardown=True))
    assert run.step("pull", google.ensure_pull_credential, down) is None
    asyncio.run(run.astep("teardown", down.teardown))
    assert fresh.state()["google"] == seeded
    assert not (p.output_dir / "secret.yaml").exists()


# --- faults: a lost answer, then a rerun ------------------------------------------------------
def test_a_lost_pull_key_answer_then_a_rerun_leaves_one_key(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path, service_account="")  # its own accounts: every key on them is its own
    conn = run.step("sign in", google.sign_in, p)
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    run.step("role", google.grant_writer, conn)
    run.step("key", google.ensure_key, conn)
    p = conn.params  # the account named from the deployment id
    # the pull key is made, its answer lost (a crash before it was recorded); not a 403: on
    # an account this run made, that is Google catching up (a new account is not ready
    # everywhere at once), waited out
    settings(
        fresh,
        "google",
        grpc_faults=[
            {"method": "CreateServiceAccountKey", "code": "FAILED_PRECONDITION", "after": True}
        ],
    )
    with pytest.raises(BinderHubRegistryError):
        run.step("pull", google.ensure_pull_credential, conn)
    assert len(accounts(fresh)[p.pull_email]["keys"]) == 1  # made, never recorded
    full_run(run, p)  # the rerun
    assert accounts(fresh)[p.pull_email]["keys"] == [pull_key_id(p)]


def test_a_lost_pull_account_answer_is_recorded_so_teardown_removes_it(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    seeded = torn_down(fresh.state()["google"])
    p = params(tmp_path)
    conn = run.step("sign in", google.sign_in, p)
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    settings(
        fresh,
        "google",
        grpc_faults=[
            {"method": "CreateServiceAccount", "code": "PERMISSION_DENIED", "after": True}
        ],
    )
    with pytest.raises(BinderHubRegistryError):
        run.step("pull", google.ensure_pull_credential, conn)
    assert p.pull_email in accounts(fresh)
    full_run(run, p)  # the rerun completes, with one account of each
    assert [e for e in accounts(fresh) if e == p.pull_email] == [p.pull_email]
    down = run.step("sign in", google.sign_in, params(tmp_path, teardown=True))
    asyncio.run(run.astep("teardown", down.teardown))
    assert fresh.state()["google"] == seeded


def test_a_lost_answer_to_the_reader_binding_is_retried_recorded_and_not_duplicated(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path)
    run_until_write(run, params(tmp_path, pull_access="none"))
    conn = run.step("sign in", google.sign_in, p)
    run.step("repository", google.ensure_repository, conn)
    before = [e for e in fresh.log() if e["path"].endswith(":setIamPolicy")]
    fresh.add_faults(
        {"method": "POST", "path": ":setIamPolicy$", "times": 1, "after": True, "drop": True}
    )
    run.step("pull", google.ensure_pull_credential, conn)  # the runner retries the step
    readers = [b for b in bindings(fresh) if b["role"] == google.PULL_ROLE]
    assert readers == [{"role": google.PULL_ROLE, "members": [p.pull_member]}]
    sets = [e for e in fresh.log() if e["path"].endswith(":setIamPolicy")][len(before) :]
    assert [e["status"] for e in sets].count(200) <= 1  # the retry found it made (or ABORTED)
    assert google.Record(p.output_dir, google.KEY).created["pull_binding"] == p.pull_member


# --- node and none ----------------------------------------------------------------------------
def test_node_grants_the_nodes_account_reader_and_says_it_cannot_be_verified(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    seeded = torn_down(fresh.state()["google"])
    p = params(tmp_path, pull_access="node", node_service_account=NODE_SA)
    _, pull, report = full_run(run, p)
    assert pull is None and "jupyterhub" not in secret_yaml(p)
    assert {"role": google.PULL_ROLE, "members": [f"serviceAccount:{NODE_SA}"]} in bindings(fresh)
    detail = last_row(run, "pull").detail
    assert "cannot be verified from here" in detail and "kubectl run" in detail
    assert "gcloud artifacts repositories get-iam-policy" in detail
    checks = {c.name: c.status for c in report.checks}
    assert checks[PULL_CHECK] == "skipped"
    assert p.pull_email not in accounts(fresh)  # no pull account for nodes
    down = run.step("sign in", google.sign_in, params(tmp_path, teardown=True))
    asyncio.run(run.astep("teardown", down.teardown))
    assert fresh.state()["google"] == seeded


def test_switching_secret_to_node_and_back_orphans_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path)
    full_run(run, p)
    old = pull_key_id(p)
    node = params(tmp_path, pull_access="node", node_service_account=NODE_SA)
    full_run(run, node)  # verified: the pull key is removed
    assert accounts(fresh)[p.pull_email]["keys"] == []
    full_run(run, p)  # back: a new pull key, the nodes' binding removed
    assert pull_key_id(p) != old and accounts(fresh)[p.pull_email]["keys"] == [pull_key_id(p)]
    assert all(f"serviceAccount:{NODE_SA}" not in b["members"] for b in bindings(fresh))


def test_none_makes_nothing_and_says_the_limits(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path, pull_access="none")
    conn, pull, report = run_until_write(run, p)
    assert pull is None and p.pull_email not in accounts(fresh)
    detail = last_row(run, "pull").detail
    assert "allUsers" in detail and "does not grant" in detail
    assert "jupyterhub" not in secret_yaml(p)
    with pytest.raises(BinderHubRegistryError):  # private: the anonymous pull is refused
        run.step("verify", conn.verify, report)


def run_until_write(run: Runner, p: google.Params) -> tuple[google.GoogleConnection, Any, Any]:
    conn = run.step("sign in", google.sign_in, p)
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    run.step("role", google.grant_writer, conn)
    run.step("key", google.ensure_key, conn)
    pull = run.step("pull", google.ensure_pull_credential, conn)
    return conn, pull, run.step("write", conn.write_values)


# --- keyless ----------------------------------------------------------------------------------
def test_keyless_writes_the_pull_key_alone_and_verifies_its_pull(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    settings(fresh, "google", workload_identity_pools=["binderhub-demo"])  # BinderHub's GKE cluster
    p = params(tmp_path, auth="metadata")
    conn = run.step("sign in", google.sign_in, p)
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    run.step("role", google.grant_writer, conn)
    run.step("bind", google.bind_workload_identity, conn)
    run.step("key", google.ensure_key, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    files = run.step("write", conn.write_values)
    assert list(secret_yaml(p)) == ["jupyterhub"]  # BinderHub has no key
    assert "PRIVATE KEY" not in repr(files)
    report = run.step("verify", conn.verify, files)
    checks = {c.name: c.status for c in report.checks}
    assert checks[PULL_CHECK] == "ok" and checks[PUSH_REFUSED_CHECK] == "ok"


def test_the_pull_key_is_refused_once_deleted(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = params(tmp_path)
    conn, pull, _ = full_run(run, p)
    assert pull is not None
    _delete_key(conn, pull_key_id(p), conn.pull_account_name)
    r = requests.get(
        f"https://{conn.host}/v2/token",
        params={"service": f"{p.location}-docker.pkg.dev", "scope": "repository:x/y/z:pull"},
        auth=(pull.username, pull.password.reveal()),
        verify=fresh.ca_file,
        timeout=10,
    )
    assert r.status_code == 401
