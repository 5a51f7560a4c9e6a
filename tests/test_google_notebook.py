"""Google beyond the contract: bad inputs, faults, key limits and policy, live-state registry auth.

The steps are driven in-process against the sandbox (the contract suite runs the notebook).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import InvalidParameter, PermissionDenied, Runner, sandbox
from binderhub_registry.errors import BinderHubRegistryError
from binderhub_registry.providers import google
from binderhub_registry.providers.contract import Record
from binderhub_registry.providers.google.iam import _revoke
from binderhub_registry.providers.google.keys import _delete_key
from binderhub_registry.providers.google.repository import _find_repository, _host_of
from binderhub_registry.secrets import Secret

from .helpers import GOOGLE_DEFAULTS, grpc_calls, redirect, settings, torn_down, up_to_the_key

pytestmark = pytest.mark.sandbox


# --- step 1: parameters ------------------------------------------------------------------
BAD_INPUTS = [
    ("project_id", "abc"),  # too short
    ("project_id", "a" * 31),  # too long
    ("project_id", "1binderhub"),  # starts with a digit
    ("project_id", "binderhub-"),  # ends with a hyphen
    ("project_id", "BinderHub-demo"),  # uppercase
    ("location", "mars"),
    ("location", "us-central"),  # no zone number
    ("location", "US-CENTRAL1"),
    ("repository", "Binderhub"),
    ("repository", "binder_hub"),
    ("repository", "-binderhub"),
    ("repository", "b" * 64),
    ("service_account", "short"),  # 5 characters
    ("service_account", "s" * 31),
    ("service_account", "builder-"),
    ("service_account", "9builder"),
    ("gcr_domain", "yes"),
    ("auth", "workload-identity"),
    ("auth", "Metadata"),
    ("k8s_namespace", "BinderHub"),
    ("k8s_namespace", "-binderhub"),
    ("k8s_namespace", "n" * 64),
    ("prefix", "Binder/"),
    ("sandbox", "true"),
]


@pytest.mark.parametrize(("name", "value"), BAD_INPUTS)
def test_bad_inputs_are_refused_by_their_rule(name: str, value: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as err:
        google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path), **{name: value})
    assert err.value.name == name


def test_gcr_domain_needs_a_multi_region(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="location"):
        google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path), gcr_domain=True)
    p = google.validate(
        GOOGLE_DEFAULTS, output_dir=str(tmp_path), gcr_domain=True, location="europe"
    )
    assert p.repository_id == "eu.gcr.io"


# --- steps 3-7: faults, limits and policies ---------------------------------------------------
def test_a_disabled_api_is_reported_clearly(conn: google.GoogleConnection, run: Runner) -> None:
    with pytest.raises(PermissionDenied, match="Artifact Registry API has not been used"):
        run.step("repository", google.ensure_repository, conn)


def test_unavailable_on_grpc_reads_and_creates_creates_once(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    settings(
        fresh,
        "google",
        grpc_faults=[
            {"method": "GetServiceAccount", "code": "UNAVAILABLE", "times": 2},
            # carried out, then the answer is lost: the SDK does not retry a create
            {"method": "CreateServiceAccount", "code": "UNAVAILABLE", "times": 1, "after": True},
        ],
    )
    run.step("account", google.ensure_service_account, conn)
    created = grpc_calls(fresh, "CreateServiceAccount")
    assert created[0] == "grpc UNAVAILABLE"  # the first create worked, its answer was lost
    assert "grpc OK" not in created  # never created twice: the retry found it (or ALREADY_EXISTS)
    accounts = [a["email"] for a in fresh.state()["google"]["service_accounts"]]
    assert accounts.count(conn.params.email) == 1


def test_a_stale_etag_restarts_the_read_modify_write(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    aborted = {
        "error": {
            "code": 409,
            "message": "There were concurrent policy changes. Please retry the whole "
            "read-modify-write with exponential backoff.",
            "status": "ABORTED",
        }
    }
    fresh.add_faults({"method": "POST", "path": ":setIamPolicy$", "status": 409, "body": aborted})
    run.step("role", google.grant_writer, conn)
    sets = [e["status"] for e in fresh.log() if e["path"].endswith(":setIamPolicy")]
    assert sets == [409, 200]
    (repo,) = fresh.state()["google"]["registries"]
    assert repo["bindings"] == [{"role": google.ROLE, "members": [conn.params.member]}]


def test_429_is_retried_after_its_retry_after(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    run.step("api", google.enable_api, conn)
    fresh.add_faults(
        {"method": "POST", "path": "/repositories$", "status": 429, "retry_after": 0, "times": 2}
    )
    run.step("repository", google.ensure_repository, conn)
    posts = [e["status"] for e in fresh.log() if e["path"].endswith("/repositories")]
    # under load the front's first start after a reset sometimes fails (a 500, retried too)
    assert posts[:2] == [429, 429] and posts[-1] == 200 and set(posts[2:-1]) <= {500}
    assert len(fresh.state()["google"]["registries"]) == 1


def test_the_ten_key_limit_is_reported(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    up_to_the_key(run, conn)
    for _ in range(10):  # someone else's keys on a reused account: not ours to delete
        conn.iam.create_service_account_key(name=conn.account_name)
    conn.record.forget("service_account")  # as if the account had been found, not created
    with pytest.raises(PermissionDenied, match="10 keys, Google's limit"):
        run.step("key", google.ensure_key, conn)


def test_a_rerun_never_piles_up_keys(fresh: sandbox.Sandbox, run: Runner, tmp_path: Path) -> None:
    # this deployment's own account (the default): every key on it is its own
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), service_account="")
    conn = run.step("sign in", google.sign_in, p)
    up_to_the_key(run, conn)
    for _ in range(3):  # keys whose JSON was lost (crashes after creation)
        conn.iam.create_service_account_key(name=conn.account_name)
    run.step("key", google.ensure_key, conn)
    accounts = {a["email"]: a for a in fresh.state()["google"]["service_accounts"]}
    assert len(accounts[conn.params.email]["keys"]) == 1


def test_the_key_creation_policy_is_one_line_pointing_to_keyless(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    up_to_the_key(run, conn)
    settings(fresh, "google", key_creation_disabled=True)
    with pytest.raises(PermissionDenied) as err:
        run.step("key", google.ensure_key, conn)
    message = str(err.value)
    assert "iam.disableServiceAccountKeyCreation" in message and "keyless" in message
    assert 'auth = "metadata"' in message
    assert "\n" not in message


def test_the_registry_checks_live_keys_and_the_repository_policy(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    up_to_the_key(run, conn)
    key = run.step("key", google.ensure_key, conn)
    assert key is not None
    values = conn.values()
    assert values is not None
    host = values.registry_url
    scope = "repository:binderhub-demo/binderhub/img:push,pull"

    def actions(user: str, password: str) -> Any:
        r = requests.get(
            f"{host}/v2/token",
            params={"service": "us-central1-docker.pkg.dev", "scope": scope},
            auth=(user, password),
            verify=fresh.ca_file,
            timeout=10,
        )
        if r.status_code != 200:
            return r.status_code
        token = r.json()["token"]
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        return sorted(claims["access"][0]["actions"])

    secret = key.reveal()
    assert actions("_json_key", secret) == ["pull", "push"]
    assert actions("_json_key_base64", base64.b64encode(secret.encode()).decode()) == [
        "pull",
        "push",
    ]
    # without the writer role: Artifact Registry's 403 DENIED
    _revoke(conn, google.ROLE, conn.params.member)
    assert actions("_json_key", secret) == 403
    _delete_key(conn, json.loads(secret)["private_key_id"])  # a deleted key: refused
    assert actions("_json_key", secret) == 401


def test_rotate_makes_a_new_key_and_retires_the_old_one_after_verification(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    files = run.step("write", conn.write_values)
    old = json.loads((conn.secret or pytest.fail("no key")).reveal())["private_key_id"]
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), rotate=True)
    again = run.step("sign in", google.sign_in, p)
    up_to_the_key(run, again)
    run.step("key", google.ensure_key, again)
    run.step("pull", google.ensure_pull_credential, again)
    keys = {a["email"]: a["keys"] for a in fresh.state()["google"]["service_accounts"]}
    assert old in keys[p.email] and len(keys[p.email]) == 2  # kept until the new one verifies
    files = run.step("write", again.write_values)
    run.step("verify", again.verify, files)
    import asyncio

    asyncio.run(run.astep("retire", again.finish_rotation))
    keys = {a["email"]: a["keys"] for a in fresh.state()["google"]["service_accounts"]}
    assert old not in keys[p.email] and len(keys[p.email]) == 1


def test_teardown_deletes_only_what_it_created(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    seeded = fresh.state()["google"]
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    run.step("write", conn.write_values)
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), teardown=True)
    down = run.step("sign in", google.sign_in, p)
    import asyncio

    asyncio.run(run.astep("teardown", down.teardown))
    assert fresh.state()["google"] == torn_down(seeded)


def test_no_private_key_in_the_stored_notebook() -> None:
    from .conftest import NOTEBOOKS

    text = (NOTEBOOKS / f"{google.NOTEBOOK}.ipynb").read_text()
    assert "PRIVATE KEY" not in text and "private_key" not in text


def test_errors_from_the_sdk_carry_no_token(conn: google.GoogleConnection) -> None:
    with pytest.raises(BinderHubRegistryError) as err:
        _find_repository(conn)  # the API is off: Google's 403
    assert "ya29." not in str(err.value) and "Bearer" not in str(err.value)


def test_a_gcr_io_domain_repository_takes_a_verified_push(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    p = google.validate(
        GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), gcr_domain=True, location="europe"
    )
    conn = run.step("sign in", google.sign_in, p)
    run.step("api", google.enable_api, conn)
    redirect(conn)  # gcr.io names reach Artifact Registry
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    files = run.step("write", conn.write_values)
    report = run.step("verify", conn.verify, files)
    assert report is not None
    values = conn.values()
    assert values is not None and values.image_prefix.endswith("/binderhub-demo/binder-")
    (repo,) = fresh.state()["google"]["registries"]
    assert repo["name"] == "projects/binderhub-demo/locations/europe/repositories/eu.gcr.io"
    assert any(image.startswith("binderhub-demo/binder-") for image in repo["repositories"])


def test_a_grant_whose_answer_was_lost_is_still_recorded(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    """setIamPolicy carried out, its answer lost: the retry finds the member present, and the
    record (written just before the write) still says this notebook granted it."""
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    fresh.add_faults(
        {"method": "POST", "path": ":setIamPolicy$", "drop": True, "after": True, "times": 1}
    )
    run.step("role", google.grant_writer, conn)
    assert run.checklist.rows[-1].status == "reused"  # a retry (httplib2's or ours) found it
    (repo,) = fresh.state()["google"]["registries"]
    assert repo["bindings"] == [{"role": google.ROLE, "members": [conn.params.member]}]
    assert conn.record.created["binding"] == conn.params.member  # so teardown removes it


@pytest.mark.parametrize(
    ("location", "gcr_domain", "host"),
    [("us-central1", False, "us-central1-docker.pkg.dev"), ("europe", True, "eu.gcr.io")],
)
def test_real_token_url_is_binderhubs_own_gcr_default(
    tmp_path: Path, location: str, gcr_domain: bool, host: str
) -> None:
    # the value the sandbox verifies is the value that ships: only the host differs there
    p = google.validate(
        GOOGLE_DEFAULTS,
        output_dir=str(tmp_path),
        sandbox=False,
        location=location,
        gcr_domain=gcr_domain,
    )
    conn = google.GoogleConnection(
        params=p,
        record=Record(p.output_dir, "google"),
        ca_file=None,
        credentials=None,
        usage=None,
        registry=None,
        iam=None,
        poll=0,
        secret=Secret("{}"),
    )
    conn.host = _host_of(conn, None)
    values = conn.values()
    assert values is not None
    # pkg.dev: the form mybinder.org ran; gcr.io hosts: BinderHub's
    # _default_token_url for them, https://{host}/v2/token?service={host}
    wanted = f"https://{host}/v2/token" + (f"?service={host}" if gcr_domain else "")
    assert values.docker_registry["token_url"] == wanted
