"""Keyless verification pushes as a build pod would (with the metadata server's token, not a key).

With keyless values the chart's docker config (``buildDockerConfig`` in the chart's
``_helpers.tpl``) has no credential for the registry: no ``registry.*``, so it renders Docker
Hub's default key. ``GoogleArtifactRegistry`` has no ``get_credentials``
(binderhub/registry.py), so build pods get no metadata token either. The push is reported
"not covered by keyless", not "works".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from binderhub_registry import Runner, sandbox
from binderhub_registry.providers import google
from binderhub_registry.push import PUSH_CHECK

from .helpers import keyless_run, settings, signed_in, whole_run

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def gke_cluster(fresh: sandbox.Sandbox) -> None:
    settings(fresh, "google", workload_identity_pools=["binderhub-demo"])  # BinderHub's GKE cluster


def test_keyless_values_give_build_pods_no_push(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    conn = signed_in(run, tmp_path / "values", auth="metadata")
    files = keyless_run(run, conn)
    report = run.step("verify", conn.verify, files)
    checks = {c.name: c for c in report.checks}
    config = checks["build pods' docker config"]
    assert "https://index.docker.io/v1/" in config.detail
    assert f"none for {conn.host}" in config.detail and config.status == "skipped"
    push = checks[PUSH_CHECK]
    assert push.status == "skipped" and push.detail.startswith("not covered by keyless")
    assert report.consumers()["build pods (push)"] == "skipped"
    status, detail = run.checklist.rows[-1].status, run.checklist.rows[-1].detail
    assert status == "done" and "build pods' push is not covered by keyless" in detail
    assert "work" not in detail.replace("works;", "")  # nothing says the push works
    # the image the other checks need was pushed by the deployer, in a build pod's place
    assert checks[google.SEED_CHECK].ok and checks["BinderHub finds the pushed image"].ok


def test_an_earlier_key_still_in_secret_yaml_pushes_but_is_not_keyless(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    out = tmp_path / "values"
    whole_run(run, signed_in(run, out))  # auth = key: secret.yaml holds the key
    conn = signed_in(run, out, auth="metadata")
    files = keyless_run(run, conn)  # the key is retiring, secret.yaml still holds it
    report = run.step("verify", conn.verify, files)
    checks = {c.name: c for c in report.checks}
    assert "an earlier key in secret.yaml" in checks["build pods' docker config"].detail
    push = checks[PUSH_CHECK]
    assert push.status == "ok" and "not keylessly" in push.detail
    assert "not covered by keyless" in push.detail and google.SEED_CHECK not in checks
