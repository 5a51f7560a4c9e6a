"""The guide's own ``az`` commands (section 2.3), as written, on a private sandbox.

``run_guide(az)`` starts a sandbox of its own, points the real Azure CLI at it
with the lines ``binderhub-registry sandbox az-setup`` prints (run by bash's
``eval``, as a reader would), runs every command of section 2.3, proves what
step 7 made (``az role assignment list``: the role and its scope; a push by
skopeo with the appId and password it printed), then the teardown commands, and
returns what happened: each command's exit code, seconds, requests the sandbox
saw, and its output (secrets removed). The client test asserts on it;
``make bench`` reports its times and request counts.

``run_guide(az, abac=True)`` runs the guide where a registry made without a
role assignment mode is in ABAC mode (the sandbox's ``default_role_assignment_mode``
setting: Microsoft's "ABAC repository permissions" page says ABAC-enabled mode "will
become the default"), shows step 7's AcrPush granting no push there, then runs
notebook 03 (papermill) on that registry and pushes again.

Run alone: ``python -m tests.clients.az_guide AZ_PATH OUT.json [abac]``. Where the
machine allows (root, ``unshare``), the test runs this module in a network
namespace of its own with only loopback up, so nothing can leave the machine;
everywhere, every Python the CLI starts loads ``guard/sitecustomize.py``, which
refuses and records any connection or name lookup beyond loopback.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from binderhub_registry.binderhub import chart_docker_config

from ..skopeo import SKOPEO, oci_layout

ROOT = Path(__file__).resolve().parents[2]
GUARD = Path(__file__).parent / "guard"

ACR_NAME = "binderhubdemo"
RESOURCE_GROUP = "binderhub-registry"
LOCATION = "westeurope"
SP_NAME = "binderhub-sp"


@dataclass
class Step:
    """One command as run: what the guide says, and what happened."""

    section: str  # "2.3 step N" (the guide's), "set-up", "check ..." (ours) or "teardown"
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
    world: str = "legacy"  # or "abac": registries made without a mode are in ABAC mode
    acr_id: str = ""
    app_id: str = ""  # step 7's appId (not a secret)
    notebook: dict[str, Any] = field(default_factory=dict)  # the ABAC world's notebook run

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


def run_guide(az: str, work: Path | None = None, *, abac: bool = False) -> GuideRun:
    """Start a sandbox, run the set-up, the guide's commands, the checks of step 7 and the
    teardown; stop it. ``abac``: in a world of ABAC registries, the guide then the notebook."""
    from binderhub_registry import sandbox
    from binderhub_registry.sandbox.azure.az_cli import az_setup

    work = work or Path(tempfile.mkdtemp(prefix="bhr-az-guide-"))
    directory = work / "sandbox"
    box = sandbox.start(directory)
    result = GuideRun(world="abac" if abac else "legacy")
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

    def push(section: str, tag: str, login: str, app_id: str, password: str) -> Step:
        """skopeo pushes the test image with these credentials alone (a 0600 auth file: the
        password is on no command line), as a build pod's docker does with secret.yaml's."""
        auth = base64.b64encode(f"{app_id}:{password}".encode()).decode()
        secrets.append(auth)
        where = work / section.replace(" ", "-")
        certs = where / "certs"
        certs.mkdir(parents=True)
        shutil.copy(box.ca_file, certs / "ca.crt")
        authfile = where / "auth.json"
        authfile.touch(mode=0o600)
        registry = {"url": f"https://{login}", "username": app_id, "password": password}
        authfile.write_text(json.dumps(chart_docker_config(registry)))
        layout = work / "layout"
        if not layout.exists():
            oci_layout(layout)
        return run(
            section,
            [
                SKOPEO or "skopeo",
                "--insecure-policy",  # no signature policy in question here
                "copy",
                "--retry-times",
                "0",
                "--dest-authfile",
                str(authfile),
                "--dest-cert-dir",
                str(certs),
                f"oci:{layout}:latest",
                f"docker://{login}/binderhub/guide-check:{tag}",
            ],
        )

    try:
        if abac:  # what a registry made without a mode is: Azure's announced default
            r = requests.post(
                f"{box.url}/_sandbox/azure/settings",
                json={"default_role_assignment_mode": "AbacRepositoryPermissions"},
                headers=box.admin_headers(),
                verify=box.ca_file,
                timeout=30,
            )
            r.raise_for_status()
        # the set-up as a reader runs it: eval of what `binderhub-registry sandbox az-setup`
        # prints (here from the library function the command prints; same text)
        run("set-up", ["eval", "<az-setup>"], shell=setup.shell())
        version = run("version", ["az", "version", "--output", "json"])
        result.az_version = json.loads(version.stdout or "{}").get("azure-cli", "")
        sub = box.credentials("azure")["subscription_id"]
        # 2.3 step 1 is `az login`: the set-up signed in as the seeded deployer
        run("2.3 step 2", ["az", "account", "set", "-s", sub])
        if not abac:
            run("2.3 step 2 list", ["az", "account", "list", "--refresh", "--output", "table"])
        run(
            "2.3 step 3",
            f"az group create --name {RESOURCE_GROUP} --location {LOCATION} --output table".split(),
        )
        if not abac:
            run(
                "2.3 step 4 check-name",
                f"az acr check-name --name {ACR_NAME} --output table".split(),
            )
        run(
            "2.3 step 4",
            f"az acr create --name {ACR_NAME} --resource-group {RESOURCE_GROUP} --sku Basic "
            "--output table".split(),
        )
        if abac:  # not a guide command: the mode the registry was made in
            run(
                "check step 4 mode",
                ["az", "acr", "show", "--name", ACR_NAME, "--query", "roleAssignmentMode",
                 "-o", "tsv"],
            )  # fmt: skip
        # step 5 is `az acr login --name`: it runs `docker login`, and there is no docker here;
        # --expose-token does the same token exchange and prints the token instead
        login = run("2.3 step 5", ["az", "acr", "login", "--name", ACR_NAME, "--expose-token"])
        login_server = ""
        if login.rc == 0:
            exposed = json.loads(login.stdout)
            secrets.append(exposed["accessToken"])
            login.stdout = hide(login.stdout)
            login_server = exposed["loginServer"]
        show = run(
            "2.3 step 6", ["az", "acr", "show", "--name", ACR_NAME, "--query", "id", "-o", "tsv"]
        )
        acr_id = result.acr_id = show.stdout.strip()
        # the guide's own spelling: `--scope`, which az still takes as an abbreviation of
        # `--scopes` (argparse's prefix matching, allow_abbrev, which azure-cli leaves on)
        created = run(
            "2.3 step 7",
            ["az", "ad", "sp", "create-for-rbac", "--name", SP_NAME, "--role", "AcrPush",
             "--scope", acr_id],
        )  # fmt: skip
        app_id = password = ""
        if created.rc == 0:
            made = json.loads(created.stdout)
            app_id, password = made["appId"], made["password"]
            result.app_id = app_id
            secrets.append(password)
            created.stdout = hide(created.stdout)
        # what step 7 made: the role and its scope, as Azure lists them
        run(
            "check step 7 role",
            ["az", "role", "assignment", "list", "--assignee", app_id or SP_NAME,
             "--scope", acr_id, "--output", "json"],
        )  # fmt: skip
        # and whether the appId and password it printed push (what BinderHub's build pods do)
        push("check step 7 push", "step7", login_server, app_id, password)
        if abac:
            _notebook_on_the_registry(box, work, result, hide)
            run(
                "check notebook role",
                ["az", "role", "assignment", "list", "--assignee", app_id or SP_NAME,
                 "--scope", acr_id, "--output", "json"],
            )  # fmt: skip
            # the same appId and password as step 7's, now that its principal has the role
            # that pushes on an ABAC registry
            push("check notebook push", "after-notebook", login_server, app_id, password)
        else:
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
            # not a guide command: Microsoft's purge page's scheduled task, as az makes it (the
            # notebook's purge task PUTs the same body: tests/test_azure_retention.py)
            run(
                "check purge task",
                ["az", "acr", "task", "create", "--name", "binderhub-purge-binderhub",
                 "--registry", ACR_NAME, "--schedule", "0 0 * * *", "--context", "/dev/null",
                 "--cmd", "acr purge --filter 'binderhub/binder-.*:.*' --ago 30d --untagged",
                 "--output", "json"],
            )  # fmt: skip
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


def _notebook_on_the_registry(
    box: Any, work: Path, result: GuideRun, hide: Callable[[str], str]
) -> None:
    """Notebook 03, as papermill runs it, on the guide's registry with the guide's names: it
    reuses the registry (ABAC mode) and the service principal, and grants the role that
    pushes there. What it printed (secrets hidden) and its error, if any, go to ``result``."""
    import nbformat
    import papermill

    out = work / "notebook.ipynb"
    saved = dict(os.environ)
    os.environ.update(box.env())
    t0 = time.perf_counter()
    error = ""
    try:
        papermill.execute_notebook(
            str(ROOT / "notebooks" / "03-azure-container-registry.ipynb"),
            str(out),
            parameters={
                "acr_name": ACR_NAME,
                "resource_group": RESOURCE_GROUP,
                "location": LOCATION,
                "sp_name": SP_NAME,
                "output_dir": str(work / "values"),
            },
            cwd=str(work),
            progress_bar=False,
            kernel_name="python3",
        )
    except Exception as e:  # the notebook's own error, shown by the test
        error = f"{type(e).__name__}: {e}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    texts = []
    if out.exists():
        for cell in nbformat.read(str(out), as_version=4).cells:
            for output in cell.get("outputs", []):
                texts.append(str(output.get("text", "")))
                texts.extend(str(v) for v in output.get("data", {}).values())
    result.notebook = {
        "seconds": round(time.perf_counter() - t0, 2),
        "error": hide(error),
        "text": hide("\n".join(texts)),
    }


def main() -> int:
    """``python -m tests.clients.az_guide AZ OUT.json [abac]``: run the guide, write the result."""
    az, out = sys.argv[1], Path(sys.argv[2])
    result = run_guide(az, abac=sys.argv[3:] == ["abac"])
    out.write_text(json.dumps(asdict(result), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
