"""The printed real-mode keyless check runs with what BinderHub's image has (no gcloud).

BinderHub's image (jupyterhub/binderhub ``helm-chart/images/binderhub/Dockerfile``) is
python:3.13-slim-bookworm plus git, libcurl4 and tini: no curl. The check is ``python -c``.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from binderhub_registry import Runner, sandbox
from binderhub_registry.providers import google
from binderhub_registry.providers.contract import Record

from .helpers import KEYLESS, keyless_run, metadata_url, settings


def real_keyless(tmp_path: Path) -> google.GoogleConnection:
    """A real-mode keyless connection that makes no call (none is needed to print the check)."""
    p = google.validate(KEYLESS, output_dir=str(tmp_path), sandbox=False, k8s_namespace="bhub")
    return google.GoogleConnection(
        params=p,
        record=Record(p.output_dir, "google"),
        ca_file=None,
        credentials=None,
        usage=None,
        registry=None,
        iam=None,
        poll=0,
    )


def test_the_printed_check_uses_only_tools_in_binderhubs_image(tmp_path: Path) -> None:
    result = real_keyless(tmp_path).verify(object())
    assert result.status == "skipped"
    command = result.detail.partition("tools its image has: ")[2]
    argv = shlex.split(command)
    assert argv[:5] == ["kubectl", "exec", "--namespace", "bhub", "deploy/binder"]
    in_pod = argv[argv.index("--") + 1 :]
    assert in_pod[0] in google.BINDERHUB_IMAGE_TOOLS and in_pod[:2] == ["python", "-c"]
    assert "curl" not in command
    compile(in_pod[2], "<check>", "exec")  # valid Python, one line
    assert "http://metadata.google.internal/computeMetadata/v1/" in in_pod[2]


@pytest.mark.sandbox
def test_the_check_code_reports_the_account_the_metadata_server_gives(
    fresh: sandbox.Sandbox, tmp_path: Path, run: Runner
) -> None:
    settings(fresh, "google", workload_identity_pools=["binderhub-demo"])  # BinderHub's GKE cluster
    p = google.validate(KEYLESS, output_dir=str(tmp_path / "values"))
    conn = run.step("sign in", google.sign_in, p)
    keyless_run(run, conn)
    argv = shlex.split(google.keyless_check_command(p, metadata_url(fresh)))
    code = argv[argv.index("-c") + 1]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[0] == f"account: {conn.params.email}"
    assert lines[1].startswith("token: yes, expires in")
    assert "ya29" not in done.stdout  # the token itself is never printed
