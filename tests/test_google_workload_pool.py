"""Keyless binds the Workload Identity pool of BinderHub's cluster (its project's pool).

The member is ``serviceAccount:<cluster project>.svc.id.goog[<namespace>/binderhub]``; that
pool exists only once a GKE cluster with Workload Identity runs in that project, and IAM
refuses a member of a missing pool with 400 "Identity Pool does not exist (<p>.svc.id.goog)"
(terraform-google-modules/terraform-google-kubernetes-engine#916, google/kctf#193).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from binderhub_registry import InvalidParameter, Runner, sandbox
from binderhub_registry.errors import CloudError
from binderhub_registry.providers import google

from .helpers import KEYLESS, keyless_run, settings, up_to_the_key

pytestmark = pytest.mark.sandbox


def test_the_cluster_project_defaults_to_project_id(tmp_path: Path) -> None:
    p = google.validate(KEYLESS, output_dir=str(tmp_path))
    assert p.workload_member == "serviceAccount:binderhub-demo.svc.id.goog[binderhub/binderhub]"
    other = google.validate(KEYLESS, output_dir=str(tmp_path), cluster_project="gke-project")
    assert other.workload_member == "serviceAccount:gke-project.svc.id.goog[binderhub/binderhub]"


@pytest.mark.parametrize("value", ["GKE", "abc", "gke-", 7])
def test_a_bad_cluster_project_is_one_line_before_any_call(value: object, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as err:
        google.validate(KEYLESS, output_dir=str(tmp_path), cluster_project=value)
    assert err.value.name == "cluster_project" and "\n" not in str(err.value)


def test_a_project_without_a_cluster_refuses_the_member_in_one_line(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    # a brand-new project: no GKE cluster, so no pool (the fake's default)
    p = google.validate(KEYLESS, output_dir=str(tmp_path / "values"))
    conn = run.step("sign in", google.sign_in, p)
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    with pytest.raises(CloudError) as err:
        run.step("workload identity", google.bind_workload_identity, conn)
    message = str(err.value)
    assert "binderhub-demo.svc.id.goog does not exist" in message and "\n" not in message
    assert "--workload-pool=binderhub-demo.svc.id.goog" in message and "cluster_project" in message
    assert google.BOUND not in conn.record.created  # nothing was bound
    accounts = {a["email"]: a for a in fresh.state()["google"]["service_accounts"]}
    assert accounts[p.email]["bindings"] == []


def test_a_cluster_in_another_project_binds_that_projects_pool(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    settings(fresh, "google", workload_identity_pools=["gke-project"])  # the cluster's project only
    p = google.validate(KEYLESS, output_dir=str(tmp_path / "values"), cluster_project="gke-project")
    conn = run.step("sign in", google.sign_in, p)
    files = keyless_run(run, conn)
    member = "serviceAccount:gke-project.svc.id.goog[binderhub/binderhub]"
    accounts = {a["email"]: a for a in fresh.state()["google"]["service_accounts"]}
    assert accounts[p.email]["bindings"] == [
        {"role": "roles/iam.workloadIdentityUser", "members": [member]}
    ]
    # the fake's pod runs in that cluster: the metadata server gives it the account's tokens
    report = run.step("verify", conn.verify, files)
    assert report is not None and report.checks[0].ok
