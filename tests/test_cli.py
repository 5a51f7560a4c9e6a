"""The binderhub-registry command: demo summary and exit codes, verify's exit codes and lines.

verify's bad inputs are listed in test_verify_inputs.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from binderhub_registry.sandbox import Sandbox

from .conftest import ROOT, NotebookRun

CLI = [sys.executable, "-m", "binderhub_registry.cli"]


def test_demo_runs_every_notebook_and_summarises(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "02-docker-hub.ipynb", tmp_path / "notebooks")
    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('boom')")])
    broken.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(broken, str(tmp_path / "notebooks" / "99-broken.ipynb"))
    out = subprocess.run(
        [*CLI, "demo", "--root", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 1  # one notebook failed
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["registry", "notebook", "image_prefix", "verification", "files"]
    hub = next(line for line in lines if line.startswith("Docker Hub  02-docker-hub"))
    assert "/binderhubdemo/binder-" in hub and "verified" in hub and "build/02-docker-hub" in hub
    broken_row = next(line for line in lines if "99-broken" in line)
    assert broken_row.startswith("-") and "FAILED: ValueError: boom" in broken_row
    secret = tmp_path / "build" / "02-docker-hub" / "secret.yaml"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert secret.read_text().split("password: ")[1].strip() not in out.stdout + out.stderr


def test_verify_exit_codes(dockerhub_nb: NotebookRun, fresh: Sandbox) -> None:
    dockerhub_nb()
    config, secret = (
        dockerhub_nb.output_dir / "config.yaml",
        dockerhub_nb.output_dir / "secret.yaml",
    )
    ok = subprocess.run(
        [*CLI, "verify", "--ca-file", fresh.ca_file, str(config), str(secret)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and "✓ BinderHub finds the pushed image" in ok.stdout
    wrong = secret.with_name("wrong.yaml")
    wrong.write_text(secret.read_text().replace("dckr_pat_", "dckr_pat_x"))
    wrong.chmod(0o600)  # else verify warns first (tested in test_verify_inputs.py)
    bad = subprocess.run(
        [*CLI, "verify", "--ca-file", fresh.ca_file, str(config), str(wrong)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    # one line: the failed check and its diagnosis
    assert bad.stderr.splitlines() == [bad.stderr.rstrip("\n")]
    assert bad.stderr.startswith("error: BinderHub's image check: ")
    assert "refused user 'binderhubdemo'" in bad.stderr
    verbose = subprocess.run(
        [*CLI, "verify", "-v", "--ca-file", fresh.ca_file, str(config), str(wrong)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verbose.returncode == 1
    assert "✓ build pods' docker config" in verbose.stdout  # the report so far
    assert "✗ BinderHub's image check" in verbose.stdout
    assert verbose.stderr.splitlines()[-1] == bad.stderr.rstrip("\n")
