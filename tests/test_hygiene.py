"""Secret hygiene: no secret the sandbox issued shows up in notebooks, logs or stdout."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from binderhub_registry.sandbox import Sandbox

from .conftest import ROOT, NotebookRun


def stored_notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_stored_notebooks_hold_no_sandbox_secret_shapes() -> None:
    for path in stored_notebooks():
        text = path.read_text()
        assert "dckr_pat_" not in text, path
        # an empty password (ECR's helper values: build pods push with the helper's token) is none
        shown = text.replace("password: <redacted>", "").replace("password: ''", "")
        assert "password: " not in shown, path
        assert "hub-session-" not in text, path


def test_parameters_cells_take_no_secrets() -> None:
    for path in stored_notebooks():
        nb = nbformat.read(str(path), as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, path
        names = [
            line.split(":")[0]
            for line in params[0].source.splitlines()
            if line and not line.startswith("#")
        ]
        # a name that holds a secret (password, client_secret, token, api_key), not one that
        # only talks about one (secret_expiry_days)
        holds_secret = re.compile(r"(password|secret|token|key)$", re.IGNORECASE)
        assert not [n for n in names if holds_secret.search(n)], path


def test_no_secret_in_outputs_logs_or_stdout(
    dockerhub_nb: NotebookRun, fresh: Sandbox, tmp_path: Path, capfd: object
) -> None:
    dockerhub_nb()
    issued = yaml.safe_load((dockerhub_nb.output_dir / "secret.yaml").read_text())["registry"][
        "password"
    ]
    seeded = fresh.credentials("dockerhub")["password"]
    secrets = [issued, seeded]
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "binderhub_registry.cli",
            "verify",
            "--ca-file",
            fresh.ca_file,
            str(dockerhub_nb.output_dir / "config.yaml"),
            str(dockerhub_nb.output_dir / "secret.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "BinderHub finds the pushed image" in cli.stdout
    places = {
        "papermill output notebook": dockerhub_nb.last_output(),
        "sandbox request log": json.dumps(fresh.log()),
        "sandbox state": json.dumps(fresh.state()),
        "sandbox process log": (fresh.directory / "sandbox.log").read_text(),
        "config.yaml": (dockerhub_nb.output_dir / "config.yaml").read_text(),
        "record": (dockerhub_nb.output_dir / "binderhub-registry.json").read_text(),
        "verify stdout": cli.stdout + cli.stderr,
        "pytest captured output": "".join(capfd.readouterr()),  # type: ignore[attr-defined]
    }
    places |= {f"stored {p.name}": p.read_text() for p in stored_notebooks()}
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into the {where}"
    assert (dockerhub_nb.output_dir / "secret.yaml").stat().st_mode & 0o777 == 0o600
    assert (
        issued in (dockerhub_nb.output_dir / "secret.yaml").read_text()
    )  # it is there, and only there


def test_git_ignores_generated_values() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "build/02-docker-hub/secret.yaml", "notebooks/build/x/secret.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == [
        "build/02-docker-hub/secret.yaml",
        "notebooks/build/x/secret.yaml",
    ]
