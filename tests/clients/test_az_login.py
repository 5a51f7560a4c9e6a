"""The sandbox's ``az login`` line with the real Azure CLI, for any secret the sandbox seeds.

The seeded secret is ``token_urlsafe``'s, so one start in 64 seeds one that begins with
``-``. Given as a separate argument (``--password @-``), azure-cli put it in place of ``@-``
and argparse took it for an option ("expected one argument"): ``make bench`` and the guide's
client test then failed at their set-up, by chance. Nothing leaves loopback (the guard).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from binderhub_registry import sandbox
from binderhub_registry.sandbox.azure.az_cli import az_setup

from .az_guide import GUARD, _clean_env

pytestmark = pytest.mark.clients


def test_a_secret_starting_with_a_dash_reaches_the_token_endpoint(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    az = os.environ["BHR_AZ_CLI"]
    setup = az_setup(fresh, tmp_path / "azure-cli")
    env = _clean_env() | setup.env
    env |= {"PATH": f"{Path(az).parent}{os.pathsep}{env.get('PATH', '')}", "PYTHONPATH": str(GUARD)}
    refused = tmp_path / "refused.txt"
    refused.touch()
    env["BHR_NET_GUARD_LOG"] = str(refused)
    prepare = "\n".join(line for line in setup.shell().splitlines() if "az login" not in line)
    subprocess.run(["bash", "-c", prepare], env=env, check=True, capture_output=True, timeout=300)

    login = subprocess.run(
        setup.login_argv(),
        input="-" + "x" * 39,  # a secret az must read as the password's value, not an option
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # it reached the sandbox's Entra ID, which refused a wrong secret as Entra ID does
    assert login.returncode != 0
    assert "expected one argument" not in login.stderr
    assert "AADSTS7000215" in login.stderr
    assert not refused.read_text()
