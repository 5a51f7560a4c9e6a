"""A keyless pod without the annotation gets a token, for another identity (the node's).

Under Workload Identity Federation for GKE a Kubernetes service account is itself a principal:
a pod whose account lacks ``iam.gke.io/gcp-service-account`` gets a token for that federated
principal (email ``<project>.svc.id.goog``); on a node pool without Workload Identity
(``GCE_METADATA``) every pod gets the node's service account. Either way a token, not a 404;
the registry then denies it (no role names that identity), and verification says whose token
BinderHub's pod got and how to fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import Runner, VerificationFailed, sandbox
from binderhub_registry.providers import google

from .helpers import TOKEN_PATH, keyless_run, metadata_url, settings, signed_in

pytestmark = pytest.mark.sandbox

NODE = "123456789012-compute@developer.gserviceaccount.com"  # GKE's default node account


def ask(box: sandbox.Sandbox, leaf: str) -> requests.Response:
    url = metadata_url(box) + TOKEN_PATH.rpartition("/")[0] + "/" + leaf
    return requests.get(url, headers={"Metadata-Flavor": "Google"}, timeout=10)


@pytest.fixture
def keyless(fresh: sandbox.Sandbox, tmp_path: Path, run: Runner) -> tuple[Any, Any]:
    """A keyless run that verified; its connection and files."""
    settings(fresh, "google", workload_identity_pools=["binderhub-demo"])
    conn = signed_in(run, tmp_path / "values", auth="metadata")
    files = keyless_run(run, conn)
    run.step("verify", conn.verify, files)
    return conn, files


@pytest.mark.parametrize(
    ("pod", "identity"),
    [
        ({}, "binderhub-demo.svc.id.goog"),  # Workload Identity node pool, no annotation
        ({"node_metadata": "GCE_METADATA"}, NODE),  # a node pool without Workload Identity
    ],
)
def test_a_pod_without_the_annotation_gets_a_token_the_registry_denies(
    keyless: tuple[Any, Any], fresh: sandbox.Sandbox, pod: dict[str, str], identity: str
) -> None:
    conn, _ = keyless
    base = {"namespace": "binderhub", "service_account": "binderhub", "annotation": ""}
    if pod:  # the node's account serves every pod, annotated or not
        base["annotation"] = conn.params.email
    settings(fresh, "google", metadata_pod=base | pod)
    assert ask(fresh, "email").text == identity
    r = ask(fresh, "token")
    assert r.status_code == 200  # a token, not a 404
    token = r.json()["access_token"]
    image = f"{conn._image_prefix().partition('/')[2]}binderhub-registry-check"
    m = requests.get(
        f"https://{conn.host}/v2/{image}/manifests/verify",
        headers={"Authorization": f"Bearer {token}"},
        verify=fresh.ca_file,
        timeout=10,
    )
    assert m.status_code == 403 and m.json()["errors"][0]["code"] == "DENIED"


def test_verification_says_whose_token_the_pod_got_and_how_to_fix_it(
    keyless: tuple[Any, Any], fresh: sandbox.Sandbox, run: Runner
) -> None:
    conn, files = keyless
    settings(
        fresh,
        "google",
        metadata_pod={"namespace": "binderhub", "service_account": "binderhub", "annotation": ""},
    )
    with pytest.raises(VerificationFailed) as err:
        run.step("verify again", conn.verify, files)
    diagnosis = err.value.diagnosis
    assert f"a token for binderhub-demo.svc.id.goog, not {conn.params.email}" in diagnosis
    assert google.annotate_command(conn.params) in diagnosis and "\n" not in diagnosis
