"""The guide's own ``az`` commands (section 2.3), as written, on a private sandbox.

``run_guide(az)`` starts a sandbox of its own, points the real Azure CLI at it
with the lines ``binderhub-registry sandbox az-setup`` prints (run by bash's
``eval``, as a reader would), runs every command of section 2.3, then the
teardown commands, and returns what happened: each command's exit code,
seconds, requests the sandbox saw, and its output (secrets removed). The client
test asserts on it; ``make bench`` reports its times and request counts.

Run alone: ``python -m tests.clients.az_guide AZ_PATH OUT.json``. Where the
machine allows (root, ``unshare``), the test runs this module in a network
namespace of its own with only loopback up, so nothing can leave the machine;
everywhere, every Python the CLI starts loads ``guard/sitecustomize.py``, which
refuses and records any connection or name lookup beyond loopback.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GUARD = Path(__file__).parent / "guard"

ACR_NAME = "binderhubdemo"
RESOURCE_GROUP = "binderhub-registry"
LOCATION = "westeurope"
SP_NAME = "binderhub-sp"


@dataclass
class Step:
    """One command as run: what the guide says, and what happened."""

    section: str  # where it comes from: "2.3 step N", "set-up" or "teardown"
    argv: list[str]
    rc: int
    seconds: float
    requests: int  # requests the sandbox logged while it ran
    stdout: str  # with any secret it printed replaced by <secret>
    stderr: str


@dataclass
class GuideRun:
    """Every step, the sandbox's request log, and what the network guard refused."""

    steps: list[Step] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    state_after: dict[str, Any] = field(default_factory=dict)
    az_version: str = ""

    def step(self, section: str) -> Step:
        """The step run for ``section`` (the first if several)."""
        return next(s for s in self.steps if s.section == section)


def _clean_env() -> dict[str, str]:
    """The caller's environment without proxies, cloud credentials or sandbox pointers."""
    drop = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "AZURE_", "BINDERHUB_REGISTRY_")
    return {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(drop) and k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
    }


def run_guide(az: str, work: Path | None = None) -> GuideRun:
    """Start a sandbox, run the set-up, the guide's commands and the teardown; stop it."""
    from binderhub_registry import sandbox
    from binderhub_registry.sandbox.azure.az_cli import az_setup

    work = work or Path(tempfile.mkdtemp(prefix="bhr-az-guide-"))
    directory = work / "sandbox"
    box = sandbox.start(directory)
    result = GuideRun()
    secrets: list[str] = [box.credentials("azure")["client_secret"]]
    setup = az_setup(box, work / "azure-cli")
    guard_log = work / "refused.txt"
    guard_log.touch()
    env = _clean_env() | setup.env
    env |= {
        "PATH": f"{Path(az).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(GUARD),
        "BHR_NET_GUARD_LOG": str(guard_log),
    }

    def hide(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "<secret>")
        return text

    def run(section: str, argv: list[str], shell: str | None = None) -> Step:
        before = len(box.log())
        t0 = time.perf_counter()
        out = subprocess.run(
            ["bash", "-c", shell] if shell else argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=work,
        )
        seconds = time.perf_counter() - t0
        step = Step(
            section,
            argv,
            out.returncode,
            round(seconds, 2),
            len(box.log()) - before,
            hide(out.stdout),
            hide(out.stderr),
        )
        result.steps.append(step)
        return step

    try:
        # the set-up as a reader runs it: eval of what `binderhub-registry sandbox az-setup`
        # prints (here from the library function the command prints; same text)
        run("set-up", ["eval", "<az-setup>"], shell=setup.shell())
        version = run("version", ["az", "version", "--output", "json"])
        result.az_version = json.loads(version.stdout or "{}").get("azure-cli", "")
        sub = box.credentials("azure")["subscription_id"]
        # 2.3 step 1 is `az login`: the set-up signed in as the seeded deployer
        run("2.3 step 2", ["az", "account", "set", "-s", sub])
        run("2.3 step 2 list", ["az", "account", "list", "--refresh", "--output", "table"])
        run(
            "2.3 step 3",
            f"az group create --name {RESOURCE_GROUP} --location {LOCATION} --output table".split(),
        )
        run("2.3 step 4 check-name", f"az acr check-name --name {ACR_NAME} --output table".split())
        run(
            "2.3 step 4",
            f"az acr create --name {ACR_NAME} --resource-group {RESOURCE_GROUP} --sku Basic "
            "--output table".split(),
        )
        # step 5 is `az acr login --name`: it runs `docker login`, and there is no docker here;
        # --expose-token does the same token exchange and prints the token instead
        login = run("2.3 step 5", ["az", "acr", "login", "--name", ACR_NAME, "--expose-token"])
        if login.rc == 0:
            secrets.append(json.loads(login.stdout)["accessToken"])
            login.stdout = hide(login.stdout)
        show = run(
            "2.3 step 6", ["az", "acr", "show", "--name", ACR_NAME, "--query", "id", "-o", "tsv"]
        )
        acr_id = show.stdout.strip()
        created = run(
            "2.3 step 7",
            ["az", "ad", "sp", "create-for-rbac", "--name", SP_NAME, "--role", "AcrPush",
             "--scope", acr_id],
        )  # fmt: skip
        app_id = ""
        if created.rc == 0:
            made = json.loads(created.stdout)
            app_id = made["appId"]
            secrets.append(made["password"])
            created.stdout = hide(created.stdout)
        # the guide's second recipe, as written (two command substitutions)
        recipe = (
            f"SERVICE_PRINCIPAL_PASSWORD=$(az ad sp create-for-rbac --name {SP_NAME} "
            f"--role AcrPush --scopes {shlex.quote(acr_id)} --query password --output tsv) "
            "|| exit 10\n"
            f"SERVICE_PRINCIPAL_ID=$(az ad sp show --id http://{SP_NAME} --query appId "
            "--output tsv) || exit $?\n"
            'echo "$SERVICE_PRINCIPAL_ID"'
        )
        run("2.3 second recipe", ["bash", "-c", "<recipe>"], shell=recipe)
        # teardown: what removes all of it again
        run("teardown acr", ["az", "acr", "delete", "--name", ACR_NAME, "--yes"])
        run("teardown sp", ["az", "ad", "sp", "delete", "--id", app_id or SP_NAME])
        run("teardown app", ["az", "ad", "app", "delete", "--id", app_id or SP_NAME])
        run("teardown group", ["az", "group", "delete", "--name", RESOURCE_GROUP, "--yes"])
        result.log = box.log()
        result.state_after = box.state()["azure"]
    finally:
        sandbox.stop(directory)
    result.refused = [line for line in guard_log.read_text().splitlines() if line]
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> int:
    """``python -m tests.clients.az_guide AZ OUT.json``: run the guide, write the result."""
    az, out = sys.argv[1], Path(sys.argv[2])
    result = run_guide(az)
    out.write_text(json.dumps(asdict(result), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
