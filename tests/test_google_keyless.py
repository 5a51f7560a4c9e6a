"""Google keyless (issue 10, step 9): ``auth = "metadata"`` and the fake GKE metadata server.

BinderHub's ``GoogleArtifactRegistry`` takes its token from the metadata server; these tests
check the values it needs are emitted and verified through the sandbox's fake metadata server
(loopback only), that no key is made, and that google-auth's own metadata client, pointed at
the fake through ``GCE_METADATA_HOST``, gets tokens the registry front accepts.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
import yaml

from binderhub_registry import InvalidParameter, Runner, VerificationFailed, sandbox
from binderhub_registry.providers import google
from binderhub_registry.sandbox.google import SEED_ACCOUNT

from .test_google_sandbox import DEFAULTS, settings, up_to_the_key

pytestmark = pytest.mark.sandbox

KEYLESS = DEFAULTS | {"auth": "metadata"}
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"


@pytest.fixture
def conn(fresh: sandbox.Sandbox, tmp_path: Path, run: Runner) -> Iterator[google.GoogleConnection]:
    """A keyless connection on a fresh sandbox, writing into tmp_path."""
    p = google.validate(KEYLESS, output_dir=str(tmp_path / "values"))
    yield run.step("sign in", google.sign_in, p)


def keyless_run(run: Runner, conn: google.GoogleConnection) -> Any:
    """Every step of a keyless run up to the written values."""
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    run.step("workload identity", google.bind_workload_identity, conn)
    return run.step("values", conn.write_values)


def metadata_url(box: sandbox.Sandbox) -> str:
    """The fake metadata server's base URL."""
    return str(box.state()["google"]["metadata_server"])


def loopback(url: str) -> bool:
    """True when ``url``'s host is a loopback address."""
    return ipaddress.ip_address(urlparse(url).hostname or "0.0.0.0").is_loopback


# --- parameters ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["Metadata", "workload", "", None, True])
def test_a_bad_auth_is_a_one_line_parameter_error(value: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as err:
        google.validate(DEFAULTS, output_dir=str(tmp_path), auth=value)
    assert err.value.name == "auth"
    assert "key, metadata" in str(err.value) and "\n" not in str(err.value)


def test_rotate_has_no_key_to_rotate_keyless(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as err:
        google.validate(KEYLESS, output_dir=str(tmp_path), rotate=True)
    assert err.value.name == "rotate"


# --- the keyless run -----------------------------------------------------------------------------
def test_keyless_values_verify_through_the_fake_metadata_server(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    files = keyless_run(run, conn)
    out = tmp_path / "values"
    assert not (out / "secret.yaml").exists()  # nothing secret to write
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
    assert not any(p.endswith("/CreateServiceAccountKey") for p in calls)
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
    p = google.validate(DEFAULTS, output_dir=str(tmp_path / "values"))
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
    settings(fresh, metadata_pod=pod)  # annotated, but the IAM binding is missing
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
    conn._remove_binding()  # the writer role on the repository, gone
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
    conn.host = google._host_of(conn, None)
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
