"""Google keyless: ``auth = "metadata"`` and the fake GKE metadata server.

BinderHub's ``GoogleArtifactRegistry`` takes its token from the metadata server; these tests
check the values it needs are emitted and verified through the sandbox's fake metadata server
(loopback only), that no key is made, and that google-auth's own metadata client, pointed at
the fake through ``GCE_METADATA_HOST``, gets tokens the registry front accepts.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
import yaml

from binderhub_registry import InvalidParameter, Runner, VerificationFailed, sandbox
from binderhub_registry.providers import COMMON_PARAMETERS, google
from binderhub_registry.providers.google.iam import _edit_account_policy, _revoke
from binderhub_registry.providers.google.repository import _host_of
from binderhub_registry.sandbox.google import SEED_ACCOUNT

from .helpers import (
    GOOGLE_DEFAULTS,
    KEYLESS,
    TOKEN_PATH,
    keyless_run,
    metadata_url,
    settings,
    signed_in,
    torn_down,
    up_to_the_key,
    whole_run,
)

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def gke_cluster(request: pytest.FixtureRequest) -> None:
    """Keyless needs BinderHub's GKE cluster: its project's Workload Identity pool exists."""
    if "fresh" in request.fixturenames:
        settings(
            request.getfixturevalue("fresh"), "google", workload_identity_pools=["binderhub-demo"]
        )


@pytest.fixture
def google_overrides() -> dict[str, Any]:
    """Keyless: conftest's ``conn`` signs in with ``auth = "metadata"``."""
    return {"auth": "metadata"}


#: What user pods' pull key adds to the record (pull_access = "secret", the default).
PULL = {"pull_service_account", "pull_binding", google.PULL_KEY}


def no_key_in_secret(out: Path) -> bool:
    """No BinderHub key in secret.yaml (user pods' pull key may stay in it)."""
    path = out / "secret.yaml"
    return not path.exists() or "registry" not in yaml.safe_load(path.read_text())


def loopback(url: str) -> bool:
    """True when ``url``'s host is a loopback address."""
    return ipaddress.ip_address(urlparse(url).hostname or "0.0.0.0").is_loopback


# --- parameters ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["Metadata", "workload", "", None, True])
def test_a_bad_auth_is_a_one_line_parameter_error(value: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as err:
        google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path), auth=value)
    assert err.value.name == "auth"
    assert "key, metadata" in str(err.value) and "\n" not in str(err.value)


def test_rotate_has_no_key_to_rotate_keyless(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as err:
        google.validate(KEYLESS, output_dir=str(tmp_path), rotate=True, pull_access="none")
    assert err.value.name == "rotate"


# --- the keyless run -----------------------------------------------------------------------------
def test_keyless_values_verify_through_the_fake_metadata_server(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    files = keyless_run(run, conn)
    out = tmp_path / "values"
    # BinderHub has no key: secret.yaml holds user pods' pull key alone
    assert list(yaml.safe_load((out / "secret.yaml").read_text())) == ["jupyterhub"]
    config = yaml.safe_load((out / "config.yaml").read_text())["config"]
    assert config["BinderHub"]["registry_class"] == "binderhub.registry.GoogleArtifactRegistry"
    token_url = config["DockerRegistry"]["token_url"]
    assert token_url == metadata_url(fresh) + TOKEN_PATH and loopback(token_url)
    assert (
        config["DockerRegistry"]["url"]
        == "https://" + config["BinderHub"]["image_prefix"].partition("/")[0]
    )

    report = run.step("verify", conn.verify, files)
    assert report is not None
    checks = {c.name: c for c in report.checks}
    assert checks["BinderHub's image check (GoogleArtifactRegistry)"].ok
    assert checks["push a test image"].ok and checks["BinderHub finds the pushed image"].ok
    log = [(e["method"], e["path"], e["status"]) for e in fresh.log()]
    assert ("GET", "/gce-metadata" + TOKEN_PATH, "200") in log


def test_no_key_is_created_keyless(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    keyless_run(run, conn)
    accounts = {a["email"]: a for a in fresh.state()["google"]["service_accounts"]}
    assert accounts[conn.params.email]["keys"] == []
    calls = [e["path"] for e in fresh.log()]
    assert sum(p.endswith("/CreateServiceAccountKey") for p in calls) == 1  # user pods' key
    assert "key" not in conn.record.created


def test_the_binding_is_made_once_and_torn_down(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    keyless_run(run, conn)
    again = run.step("workload identity", google.bind_workload_identity, conn)
    assert again is None and run.checklist.rows[-1].status == "reused"
    accounts = {a["email"]: a for a in fresh.state()["google"]["service_accounts"]}
    member = conn.params.workload_member
    assert member == "serviceAccount:binderhub-demo.svc.id.goog[binderhub/binderhub]"
    assert accounts[conn.params.email]["bindings"] == [
        {"role": "roles/iam.workloadIdentityUser", "members": [member]}
    ]
    down = google.validate(KEYLESS, output_dir=str(tmp_path / "values"), teardown=True)
    gone = run.step("sign in again", google.sign_in, down)
    asyncio.run(gone.teardown())
    sets = [e["status"] for e in fresh.log() if e["path"].endswith("IAM/SetIamPolicy")]
    assert sets == ["grpc OK", "grpc OK"]  # bound once, unbound once
    emails = [a["email"] for a in fresh.state()["google"]["service_accounts"]]
    assert emails == [SEED_ACCOUNT]


def test_a_binding_whose_answer_was_lost_is_still_recorded(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    """SetIamPolicy carried out, its answer lost: the retry finds the member bound, and the
    record (written just before the write) still says this notebook bound it."""
    up_to_the_key(run, conn)
    settings(
        fresh,
        "google",
        grpc_faults=[{"method": "SetIamPolicy", "code": "UNAVAILABLE", "times": 1, "after": True}],
    )
    run.step("workload identity", google.bind_workload_identity, conn)
    assert run.checklist.rows[-1].attempts == 2
    assert workload_members(conn) == [conn.params.workload_member]
    assert conn.record.created[google.BOUND] == conn.params.workload_member


def test_a_keyless_dry_run_plans_the_binding_and_creates_nothing(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    p = google.validate(KEYLESS, output_dir=str(tmp_path / "values"), dry_run=True)
    conn = run.step("sign in", google.sign_in, p)
    up_to_the_key(run, conn)
    run.step("workload identity", google.bind_workload_identity, conn)
    assert run.checklist.rows[-1].status == "planned"
    assert len(fresh.state()["google"]["service_accounts"]) == 1  # the seeded deployer only


def test_key_mode_skips_the_binding(fresh: sandbox.Sandbox, run: Runner, tmp_path: Path) -> None:
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"))
    conn = run.step("sign in", google.sign_in, p)
    run.step("workload identity", google.bind_workload_identity, conn)
    assert run.checklist.rows[-1].status == "skipped"


# --- the fake metadata server --------------------------------------------------------------------
def test_the_metadata_server_wants_metadata_flavor(fresh: sandbox.Sandbox) -> None:
    url = metadata_url(fresh) + TOKEN_PATH
    r = requests.get(url, timeout=10)
    assert r.status_code == 403 and 'Missing required header "Metadata-Flavor"' in r.text
    assert r.headers["Metadata-Flavor"] == "Google"


def test_no_token_without_the_binding(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    up_to_the_key(run, conn)
    pod = {
        "namespace": "binderhub",
        "service_account": "binderhub",
        "annotation": conn.params.email,
    }
    settings(fresh, "google", metadata_pod=pod)  # annotated, but the IAM binding is missing
    r = requests.get(
        metadata_url(fresh) + TOKEN_PATH, headers={"Metadata-Flavor": "Google"}, timeout=10
    )
    assert r.status_code == 403
    assert "missing IAM policy binding on the target IAM service account" in r.text
    values = google.KeylessValues(
        image_prefix="unused/binder-", url="https://127.0.0.1:1", token_url=r.url
    )
    with pytest.raises(VerificationFailed, match="workloadIdentityUser"):
        google.verify_keyless(values, fresh.ca_file, google.GoogleConnection.HINTS)


def test_a_token_without_the_writer_role_cannot_push(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    files = keyless_run(run, conn)
    _revoke(conn, google.ROLE, conn.params.member)  # the writer role on the repository, gone
    with pytest.raises(VerificationFailed) as err:
        run.step("verify", conn.verify, files)
    assert err.value.check == "BinderHub's image check (GoogleArtifactRegistry)"


def test_a_real_metadata_url_is_never_asked(fresh: sandbox.Sandbox) -> None:
    values = google.KeylessValues(
        image_prefix="us-central1-docker.pkg.dev/p/r/binder-",
        url="https://us-central1-docker.pkg.dev",
        token_url=google.METADATA_URL + TOKEN_PATH,
    )
    with pytest.raises(VerificationFailed, match="not the sandbox's metadata server"):
        google.verify_keyless(values, fresh.ca_file, google.GoogleConnection.HINTS)


def test_everything_stays_on_loopback(fresh: sandbox.Sandbox) -> None:
    assert loopback(metadata_url(fresh))
    env = sandbox.loopback_env()  # what every kernel and test gets: never 169.254.169.254
    for name in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):
        assert ipaddress.ip_address(env[name].split(":")[0]).is_loopback
    assert env["NO_GCE_CHECK"] == "True"
    for name in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):
        assert "169.254" not in os.environ.get(name, "")


GOOGLE_AUTH_CLIENT = """
import json, sys
from google.auth import compute_engine
from google.auth.compute_engine import _metadata
from google.auth.transport.requests import Request
import requests
session = requests.Session()
session.trust_env = False
request = Request(session)
found = _metadata.ping(request)
credentials = compute_engine.Credentials()
credentials.refresh(request)
print(json.dumps({"ping": found, "email": credentials.service_account_email,
                  "token": credentials.token}))
"""


def test_google_auth_reads_the_fake_through_gce_metadata_host(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner
) -> None:
    """google-auth's own metadata client (not ours), pointed at the fake by its variables."""
    keyless_run(run, conn)
    host = metadata_url(fresh).removeprefix("http://")
    env = os.environ | sandbox.loopback_env() | {"GCE_METADATA_HOST": host, "GCE_METADATA_IP": host}
    out = subprocess.run(
        [sys.executable, "-c", GOOGLE_AUTH_CLIENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["ping"] is True and got["email"] == conn.params.email
    # the token is what the registry front takes as oauth2accesstoken
    files_host = conn.host
    basic = base64.b64encode(f"oauth2accesstoken:{got['token']}".encode()).decode()
    r = requests.get(
        f"https://{files_host}/v2/token",
        params={
            "service": "us-central1-docker.pkg.dev",
            "scope": "repository:binderhub-demo/binderhub/x:pull,push",
        },
        headers={"Authorization": f"Basic {basic}"},
        verify=fresh.ca_file,
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["token"]


def test_real_keyless_values_are_what_googleartifactregistry_reads(tmp_path: Path) -> None:
    """Real mode (no network here): the class, the registry URL, the metadata token URL."""
    p = google.validate(KEYLESS, output_dir=str(tmp_path), sandbox=False, dry_run=True)
    conn = google.GoogleConnection.__new__(google.GoogleConnection)
    conn.params, conn.ca_file, conn.bound = p, None, True
    conn.metadata_url = google.METADATA_URL
    conn.host = _host_of(conn, None)
    values = conn.keyless_values()
    assert values is not None
    assert values.config() == {
        "config": {
            "BinderHub": {
                "use_registry": True,
                "image_prefix": "us-central1-docker.pkg.dev/binderhub-demo/binderhub/binder-",
                "registry_class": "binderhub.registry.GoogleArtifactRegistry",
            },
            "DockerRegistry": {
                "url": "https://us-central1-docker.pkg.dev",
                # binderhub/registry.py GoogleArtifactRegistry._default_token_url
                "token_url": "http://metadata.google.internal/computeMetadata/v1/instance/"
                "service-accounts/default/token",
            },
        }
    }
    assert google.annotate_command(p) == (
        "kubectl annotate serviceaccount binderhub --namespace binderhub "
        "iam.gke.io/gcp-service-account=binderhub-builder@binderhub-demo.iam.gserviceaccount.com"
        " --overwrite"
    )


def test_papermill_infers_the_keyless_parameters() -> None:
    """``papermill --help-notebook`` lists auth and k8s_namespace (a comment it cannot parse
    drops the parameter from its inference with only a warning)."""
    import papermill

    from .conftest import NOTEBOOKS

    inferred = papermill.inspect_notebook(str(NOTEBOOKS / f"{google.NOTEBOOK}.ipynb"))
    assert [p.name for p in google.PARAMETERS] == list(inferred)
    assert inferred["auth"]["default"] == '"key"'


# --- switching auth on the same output_dir ------------------------------------------------------
# key -> metadata retires the keys this notebook made, metadata -> key the Workload Identity
# member it bound: both through the retiring record, removed by finish_rotation once the new
# values verified; secret.yaml, which holds the old key, goes when that key is deleted.
OTHER_MEMBER = "serviceAccount:binderhub-demo.svc.id.goog[other/binderhub]"


class Crash(Exception):
    """A run dying half-way (not transient: the runner does not retry it)."""


def through_verify(run: Runner, conn: google.GoogleConnection) -> Any:
    """Every step of the notebook up to verification (not finish_rotation); the files."""
    files = keyless_run(run, conn)  # the steps up to the written values, in either mode
    run.step("verify", conn.verify, files)
    return files


def row(run: Runner, title: str) -> tuple[str, str]:
    """The status and detail of the last step called ``title``."""
    found = [r for r in run.checklist.rows if r.title == title]
    return found[-1].status, found[-1].detail


def created(out: Path) -> dict[str, Any]:
    """What the record in ``out`` says this notebook created."""
    data: dict[str, Any] = json.loads((out / "binderhub-registry.json").read_text())["created"]
    return data


def live_keys(box: sandbox.Sandbox, email: str) -> list[str]:
    """The user-managed keys of ``email`` in the fake IAM."""
    accounts = {a["email"]: a for a in box.state()["google"]["service_accounts"]}
    return list(accounts[email]["keys"]) if email in accounts else []


def workload_members(conn: google.GoogleConnection) -> list[str]:
    """The members of workloadIdentityUser on the service account, read through the SDK."""
    from google.iam.v1 import iam_policy_pb2  # type: ignore[import-untyped]

    policy = conn.iam.get_iam_policy(
        request=iam_policy_pb2.GetIamPolicyRequest(resource=conn.account_name)
    )
    return [
        m for b in policy.bindings if b.role == google.WORKLOAD_IDENTITY_USER for m in b.members
    ]


def add_member(conn: google.GoogleConnection, member: str) -> None:
    """Someone else binds ``member`` too (not this notebook's: it must stay)."""

    def add(bindings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*bindings, {"role": google.WORKLOAD_IDENTITY_USER, "members": [member]}]

    _edit_account_policy(conn, add)


def key_token_status(box: sandbox.Sandbox, conn: google.GoogleConnection, key_json: str) -> int:
    """The HTTP status of the registry's token endpoint for ``_json_key`` + ``key_json``."""
    r = requests.get(
        f"https://{conn.host}/v2/token",
        params={
            "service": "us-central1-docker.pkg.dev",
            "scope": "repository:binderhub-demo/binderhub/x:pull,push",
        },
        auth=("_json_key", key_json),
        verify=box.ca_file,
        timeout=10,
    )
    return r.status_code


def metadata_token_status(box: sandbox.Sandbox) -> int:
    """The HTTP status of a token request from BinderHub's (fake) pod."""
    r = requests.get(
        metadata_url(box) + TOKEN_PATH, headers={"Metadata-Flavor": "Google"}, timeout=10
    )
    return r.status_code


def key_json_of(conn: google.GoogleConnection) -> str:
    """The JSON key the connection made or reused."""
    assert conn.secret is not None
    return conn.secret.reveal()


def test_key_to_metadata_deletes_the_key_once_keyless_verification_passes(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "values"
    first = signed_in(run, out)
    whole_run(run, first)
    old = key_json_of(first)
    old_id = json.loads(old)["private_key_id"]
    assert created(out)["key"] == old_id and (out / "secret.yaml").exists()

    conn = signed_in(run, out, auth="metadata")
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    assert row(run, "key") == (
        "updated",
        "auth = metadata: no key; the key this notebook made is removed once keyless "
        "verification passes",
    )
    assert "key" not in created(out) and created(out)["retiring_keys"] == [old_id]
    run.step("workload identity", google.bind_workload_identity, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    files = run.step("values", conn.write_values)
    # kept with its key: build pods that cannot push keylessly use it, a switch back reuses it
    assert (out / "secret.yaml").exists()
    assert "secret.yaml (an earlier key) stays until that key is removed" in row(run, "values")[1]
    # the key lives on until the keyless values verified (the deployed BinderHub uses it)
    assert key_token_status(fresh, conn, old) == 200
    run.step("verify", conn.verify, files)
    assert key_token_status(fresh, conn, old) == 200
    asyncio.run(run.astep("finish", conn.finish_rotation))
    assert row(run, "finish")[0] == "deleted"

    assert key_token_status(fresh, conn, old) == 401  # the sandbox checks live keys
    assert live_keys(fresh, conn.params.email) == []
    assert no_key_in_secret(out)
    assert (
        set(created(out))
        == {"api", "repository", "service_account", "binding", google.BOUND, google.ACCOUNT} | PULL
    )
    assert metadata_token_status(fresh) == 200  # keyless works

    shown = capsys.readouterr()
    text = shown.out + shown.err + repr(files) + repr(run.checklist)
    private_key = json.loads(old)["private_key"]
    assert private_key not in text and private_key.replace("\n", "\\n") not in text
    assert "PRIVATE KEY" not in text


def test_metadata_to_key_removes_the_binding_once_the_key_verifies(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "values"
    whole_run(run, signed_in(run, out, auth="metadata"))
    member = created(out)[google.BOUND]
    assert metadata_token_status(fresh) == 200

    conn = signed_in(run, out)
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    run.step("workload identity", google.bind_workload_identity, conn)
    status, detail = row(run, "workload identity")
    assert status == "updated"
    assert detail.startswith(
        f"auth = key: roles/iam.workloadIdentityUser for {member}, which this notebook granted "
        f"on {conn.params.email}, is removed once the key verifies; once the new values are "
        "deployed: kubectl annotate serviceaccount binderhub --namespace binderhub "
        "iam.gke.io/gcp-service-account-"
    )
    assert created(out)["retiring_keys"] == [{google.BOUND: member}]
    assert google.BOUND not in created(out)
    # the deployed keyless BinderHub keeps its access until the key verified
    assert workload_members(conn) == [member] and metadata_token_status(fresh) == 200
    run.step("pull", google.ensure_pull_credential, conn)
    files = run.step("values", conn.write_values)
    report = run.step("verify", conn.verify, files)
    assert report is not None and all(c.ok for c in report.checks)
    assert workload_members(conn) == [member]
    asyncio.run(run.astep("finish", conn.finish_rotation))

    assert workload_members(conn) == []  # through the SDK's GetIamPolicy
    accounts = {a["email"]: a for a in fresh.state()["google"]["service_accounts"]}
    assert accounts[conn.params.email]["bindings"] == []
    assert metadata_token_status(fresh) == 403  # the pod lost the right
    key = key_json_of(conn)
    assert key_token_status(fresh, conn, key) == 200
    assert live_keys(fresh, conn.params.email) == [json.loads(key)["private_key_id"]]
    assert (
        set(created(out))
        == {"api", "repository", "service_account", "binding", "key", google.ACCOUNT} | PULL
    )

    shown = capsys.readouterr()
    text = shown.out + shown.err + repr(files) + repr(run.checklist)
    assert json.loads(key)["private_key"] not in text and "PRIVATE KEY" not in text


def test_only_the_recorded_member_goes_and_a_stale_etag_is_read_again(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "values"
    first = signed_in(run, out, auth="metadata")
    whole_run(run, first)
    member = created(out)[google.BOUND]
    add_member(first, OTHER_MEMBER)  # someone else's member of the same role

    conn = signed_in(run, out)
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    run.step("workload identity", google.bind_workload_identity, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    files = run.step("values", conn.write_values)
    run.step("verify", conn.verify, files)

    late = "serviceAccount:binderhub-demo.svc.id.goog[late/binderhub]"
    real_get = conn.iam.get_iam_policy
    reads: list[int] = []

    def get_then_someone_changes_it(*args: Any, **kwargs: Any) -> Any:
        policy = real_get(*args, **kwargs)
        reads.append(1)
        if len(reads) == 1:  # a concurrent change between our read and our write
            monkeypatch.setattr(conn.iam, "get_iam_policy", real_get)
            add_member(first, late)
            monkeypatch.setattr(conn.iam, "get_iam_policy", get_then_someone_changes_it)
        return policy

    monkeypatch.setattr(conn.iam, "get_iam_policy", get_then_someone_changes_it)
    asyncio.run(run.astep("finish", conn.finish_rotation))
    monkeypatch.undo()

    sets = [e["status"] for e in fresh.log() if e["path"].endswith("IAM/SetIamPolicy")]
    assert sets[-2:] == ["grpc ABORTED", "grpc OK"]  # the stale etag, then a fresh read
    assert len(reads) == 2
    assert sorted(workload_members(conn)) == sorted([OTHER_MEMBER, late])
    assert member not in workload_members(conn)


def test_keyless_for_real_keeps_the_key_until_a_later_run(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """Real mode cannot verify keyless values from outside the cluster: the key the switch
    replaced is kept by that run, and removed by the next (after the pod was checked)."""
    out = tmp_path / "values"
    first = signed_in(run, out)
    whole_run(run, first)
    old = key_json_of(first)
    conn = signed_in(run, out, auth="metadata")
    conn.params = dataclasses.replace(conn.params, sandbox=False)  # the clients stay on loopback
    whole_run(run, conn)
    assert row(run, "verify")[0] == "skipped"
    status, detail = row(run, "finish")
    assert status == "done" and detail.startswith("kept 1 replaced credential(s)")
    assert key_token_status(fresh, first, old) == 200
    assert (out / "secret.yaml").exists()  # the key is kept, and the file that holds it
    later = signed_in(run, out, auth="metadata")
    later.params = dataclasses.replace(later.params, sandbox=False)
    whole_run(run, later)
    assert row(run, "finish")[0] == "deleted"
    assert key_token_status(fresh, first, old) == 401
    assert "retiring_keys" not in created(out)
    assert google.UNCHECKED not in created(out)
    assert no_key_in_secret(out)  # gone with its key (user pods' pull key stays)


def test_keyless_for_real_resumed_after_a_stop_still_keeps_the_key_one_run(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """A real switch that stopped after retiring the key (say the binding was refused) must
    not delete it on the rerun: that rerun is the first to tell the user it is kept."""
    out = tmp_path / "values"
    first = signed_in(run, out)
    whole_run(run, first)
    old = key_json_of(first)
    stopped = signed_in(run, out, auth="metadata")
    stopped.params = dataclasses.replace(stopped.params, sandbox=False)
    up_to_the_key(run, stopped)
    run.step("key", google.ensure_key, stopped)  # the run stops here
    later = signed_in(run, out, auth="metadata")
    later.params = dataclasses.replace(later.params, sandbox=False)
    whole_run(run, later)
    assert row(run, "verify")[0] == "skipped"
    assert row(run, "finish")[1].startswith("kept 1 replaced credential(s)")
    assert key_token_status(fresh, first, old) == 200, "deleted with nothing verified"


def test_switching_back_to_key_after_a_real_keyless_run_reuses_the_kept_key(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """Keyless did not suit (build pods could not push), so the keyless values were never
    deployed: the switch back must reuse the key the deployed BinderHub still uses."""
    out = tmp_path / "values"
    first = signed_in(run, out)
    whole_run(run, first)
    old = key_json_of(first)
    old_id = created(out)["key"]
    keyless = signed_in(run, out, auth="metadata")
    keyless.params = dataclasses.replace(keyless.params, sandbox=False)
    whole_run(run, keyless)
    assert row(run, "finish")[1].startswith("kept 1")
    back = signed_in(run, out)
    whole_run(run, back)
    assert row(run, "key")[0] == "reused"
    assert created(out)["key"] == old_id and live_keys(fresh, back.params.email) == [old_id]
    assert key_token_status(fresh, first, old) == 200, "the deployed key was deleted"
    assert workload_members(back) == []  # the binding the keyless run made is gone
    assert "retiring_keys" not in created(out) and google.UNCHECKED not in created(out)


def test_keyless_for_real_keeps_what_it_had_not_told_of_yet(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """After a run said "kept" of the old key, a run that also retires the member of an
    earlier k8s_namespace removes nothing: that member was never told of, and the BinderHub
    deployed in that namespace uses it. A dry run says the same; the next run removes both."""
    out = tmp_path / "values"
    first = signed_in(run, out)
    whole_run(run, first)
    old = key_json_of(first)

    def real(**overrides: Any) -> google.GoogleConnection:
        conn = signed_in(run, out, auth="metadata", **overrides)
        conn.params = dataclasses.replace(conn.params, sandbox=False)  # clients stay on loopback
        return conn

    whole_run(run, real())
    assert row(run, "finish")[1].startswith("kept 1 replaced credential(s)")
    deployed_member = created(out)[google.BOUND]
    preview = real(k8s_namespace="binder-prod", dry_run=True)
    whole_run(run, preview)
    assert row(run, "finish") == ("planned", "would keep 2 replaced credential(s)")
    moved = real(k8s_namespace="binder-prod")
    whole_run(run, moved)
    assert row(run, "finish")[1].startswith("kept 2 replaced credential(s)")
    assert key_token_status(fresh, first, old) == 200
    assert deployed_member in workload_members(moved)
    whole_run(run, real(k8s_namespace="binder-prod"))
    assert row(run, "finish")[0] == "deleted"
    assert key_token_status(fresh, first, old) == 401
    assert workload_members(moved) == [moved.params.workload_member]
    assert "retiring_keys" not in created(out) and google.UNCHECKED not in created(out)


def test_keys_this_notebook_did_not_make_stay(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    out = tmp_path / "values"
    first = signed_in(run, out)
    up_to_the_key(run, first)
    first.record.forget("service_account")  # as if the account had been found, not created
    foreign = first.iam.create_service_account_key(name=first.account_name)
    foreign_id = foreign.name.rpartition("/")[2]
    run.step("key", google.ensure_key, first)
    ours = created(out)["key"]

    whole_run(run, signed_in(run, out, auth="metadata"))
    assert live_keys(fresh, first.params.email) == [foreign_id]
    assert ours != foreign_id and "key" not in created(out)
    assert "retiring_keys" not in created(out)


@pytest.mark.parametrize("switch", ["key->metadata", "metadata->key"])
def test_teardown_after_a_switch_deletes_exactly_what_is_recorded(
    switch: str, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    seeded = torn_down(fresh.state()["google"])
    before, after = switch.split("->")
    out = tmp_path / "values"
    whole_run(run, signed_in(run, out, auth=before))
    conn = signed_in(run, out, auth=after)
    through_verify(run, conn)  # replaced, not yet removed (a crash or keep_replaced)
    assert created(out)["retiring_keys"]
    down = signed_in(run, out, teardown=True)
    asyncio.run(run.astep("teardown", down.teardown))
    state = fresh.state()["google"]
    for backend in (state, seeded):  # images the verifications pushed are not the notebook's
        for registry in backend["registries"]:
            registry.pop("repositories", None)
    assert state == seeded
    assert created(out) == {} and not (out / "secret.yaml").exists()


@pytest.mark.parametrize("switch", ["key->metadata", "metadata->key"])
def test_a_dry_run_of_a_switch_changes_nothing(
    switch: str, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    before, after = switch.split("->")
    out = tmp_path / "values"
    whole_run(run, signed_in(run, out, auth=before))
    state = fresh.state()
    files = {f.name: f.read_bytes() for f in out.iterdir()}
    conn = signed_in(run, out, auth=after, dry_run=True)
    whole_run(run, conn)
    assert fresh.state() == state
    assert {f.name: f.read_bytes() for f in out.iterdir()} == files
    if after == "metadata":
        assert row(run, "key") == (
            "planned",
            "would remove the key this notebook made once keyless verification passes (auth = "
            "metadata: no key)",
        )
    else:
        status, detail = row(run, "workload identity")
        assert status == "planned" and "would remove roles/iam.workloadIdentityUser" in detail


@pytest.mark.parametrize("switch", ["key->metadata", "metadata->key"])
def test_a_crash_at_any_record_write_then_a_rerun_completes(
    switch: str,
    fresh: sandbox.Sandbox,
    run: Runner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The switch dies just before each of its record writes in turn (what it did in the
    cloud is done, the record does not say so yet); the rerun ends as an uncrashed switch."""
    # this deployment's own account (the default): a key made, then a crash before its
    # record, is found again as its own (on a named, perhaps shared, account it stays)
    from binderhub_registry.providers.contract import Record

    before, after = switch.split("->")
    save = Record.save
    ends: list[Any] = []
    for crash_at in range(1, 20):
        fresh.reset()
        settings(fresh, "google", workload_identity_pools=["binderhub-demo"])
        out = tmp_path / f"crash{crash_at}"
        whole_run(run, signed_in(run, out, auth=before, service_account=""))
        saves = 0

        def crashing_save(record: Record, at: int = crash_at) -> None:
            nonlocal saves
            saves += 1
            if saves == at:
                raise Crash(f"died before record write {at}")
            save(record)

        monkeypatch.setattr(Record, "save", crashing_save)
        try:
            whole_run(run, signed_in(run, out, auth=after, service_account=""))
            crashed = False
        except Crash:
            crashed = True
        monkeypatch.setattr(Record, "save", save)
        if crashed:
            whole_run(run, signed_in(run, out, auth=after, service_account=""))
        conn = signed_in(run, out, auth=after, service_account="")
        run.step("repository", google.ensure_repository, conn)  # its host, for the checks
        keys = live_keys(fresh, conn.params.email)
        ends.append((sorted(created(out)), len(keys), workload_members(conn)))
        assert "retiring_keys" not in created(out)
        if after == "metadata":
            assert keys == [] and no_key_in_secret(out)
            assert workload_members(conn) == [conn.params.workload_member]
            assert metadata_token_status(fresh) == 200
        else:
            assert keys == [created(out)["key"]] and workload_members(conn) == []
            stored = conn.stored_password("_json_key")
            assert stored is not None and key_token_status(fresh, conn, stored.reveal()) == 200
        if not crashed:
            break
    else:
        pytest.fail("the switch never completed")
    assert crash_at >= 3  # there were record writes to crash at
    assert all(end == ends[-1] for end in ends), ends  # each crash ends as the uncrashed switch


def test_switching_back_before_the_removal_keeps_what_is_in_use(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    out = tmp_path / "values"
    # key -> metadata stopped before its values were written, then key again: the stored key
    first = signed_in(run, out)
    whole_run(run, first)
    key_id = created(out)["key"]
    stopped = signed_in(run, out, auth="metadata")
    up_to_the_key(run, stopped)
    run.step("key", google.ensure_key, stopped)
    assert created(out)["retiring_keys"] == [key_id]
    whole_run(run, signed_in(run, out))
    assert row(run, "key") == (
        "reused",
        f"the stored JSON key of {first.params.email} is live and kept",
    )
    assert live_keys(fresh, first.params.email) == [key_id] and created(out)["key"] == key_id
    assert "retiring_keys" not in created(out)

    # metadata -> key stopped before its key verified, then metadata again: the binding stays
    whole_run(run, signed_in(run, out, auth="metadata"))
    member = created(out)[google.BOUND]
    stopped = signed_in(run, out)
    up_to_the_key(run, stopped)
    run.step("key", google.ensure_key, stopped)
    run.step("workload identity", google.bind_workload_identity, stopped)
    assert {google.BOUND: member} in created(out)["retiring_keys"]
    back = signed_in(run, out, auth="metadata")
    whole_run(run, back)
    assert workload_members(back) == [member] and created(out)[google.BOUND] == member
    assert metadata_token_status(fresh) == 200
    assert live_keys(fresh, back.params.email) == [] and "retiring_keys" not in created(out)


def test_a_new_namespace_replaces_the_member_once_it_verifies(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    out = tmp_path / "values"
    whole_run(run, signed_in(run, out, auth="metadata"))
    old = created(out)[google.BOUND]
    conn = signed_in(run, out, auth="metadata", k8s_namespace="binder-prod")
    whole_run(run, conn)
    assert workload_members(conn) == [conn.params.workload_member] != [old]
    assert created(out)[google.BOUND] == conn.params.workload_member


@pytest.mark.skipif(
    "keep_replaced" not in [p.name for p in COMMON_PARAMETERS],
    reason="keep_replaced is not in the contract yet",
)
@pytest.mark.parametrize("switch", ["key->metadata", "metadata->key"])
def test_keep_replaced_keeps_what_a_switch_replaced_until_a_later_run(
    switch: str, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """The contract's keep_replaced applies to a switch with no code of Google's own."""
    before, after = switch.split("->")
    out = tmp_path / "values"
    first = signed_in(run, out, auth=before)
    whole_run(run, first)
    old_key = key_json_of(first) if before == "key" else ""
    switched = signed_in(run, out, auth=after, keep_replaced=True)
    whole_run(run, switched)
    assert created(out)["retiring_keys"]  # kept: the deployed BinderHub still uses it
    deploy = "config.yaml" if after == "metadata" else "secret.yaml"
    assert f"deploy the new {deploy}, then rerun without keep_replaced" in row(run, "finish")[1]
    if after == "metadata":
        assert key_token_status(fresh, switched, old_key) == 200
        assert (out / "secret.yaml").exists()  # the file goes with its key, not before
    else:
        assert workload_members(switched) == [first.params.workload_member]
        assert metadata_token_status(fresh) == 200
    later = signed_in(run, out, auth=after)
    whole_run(run, later)
    assert "retiring_keys" not in created(out)
    if after == "metadata":
        assert key_token_status(fresh, switched, old_key) == 401
        assert live_keys(fresh, later.params.email) == []
    else:
        assert workload_members(later) == [] and metadata_token_status(fresh) == 403
