"""What several test modules share: the sandbox's settings, censuses of its state, the
notebooks' defaults (read from each notebook's parameters cell) and each provider's steps up to a
point. Test modules take these from here and their fixtures from conftest.py, never from another
test module (test_suite_layout checks)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import socket
import ssl
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
import requests
import yaml
from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import Registry, RegistryProperties, Sku
from azure.mgmt.resource.resources import ResourceManagementClient

from binderhub_registry import (
    InvalidParameter,
    RegistryValues,
    Runner,
    Secret,
    ValuesFiles,
    providers,
    sandbox,
)
from binderhub_registry.params import read_parameters_cell
from binderhub_registry.providers import (
    CommonParams,
    Provider,
    contract,
    dockerhub,
    google,
    harbor,
    ovh,
)
from binderhub_registry.providers.contract import Record
from binderhub_registry.sandbox import Sandbox
from binderhub_registry.sandbox.azure import ACR_PUSH

with warnings.catch_warnings():  # msgraph-sdk and kiota warn about their own deprecated classes
    warnings.simplefilter("ignore", DeprecationWarning)
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
        AddPasswordPostRequestBody,
    )
    from msgraph.generated.models.application import Application
    from msgraph.generated.models.password_credential import PasswordCredential
    from msgraph.generated.models.service_principal import ServicePrincipal
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]

ROOT = Path(__file__).parent.parent
NOTEBOOKS = ROOT / "notebooks"


def notebook_defaults(key: str) -> dict[str, Any]:
    """The parameters cell of provider ``key``'s notebook, run: its names and default values."""
    return parameters_cell(providers.get(key))


def parameters_cell(provider: Provider) -> dict[str, Any]:
    """What ``provider``'s notebook's parameters cell sets, in its order."""
    nb = nbformat.read(str(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return dict(read_parameters_cell(cell.source).defaults)


def settings(box: sandbox.Sandbox, cloud: str, **values: Any) -> dict[str, Any]:
    """Change ``cloud``'s sandbox settings (``/_sandbox/<cloud>/settings``); read them when no
    value is given. The settings as they are after the change."""
    r = requests.request(
        "POST" if values else "GET",
        f"{box.url}/_sandbox/{cloud}/settings",
        json=values or None,
        headers=box.admin_headers(),
        verify=box.ca_file,
        timeout=10,
    )
    r.raise_for_status()
    result: dict[str, Any] = r.json() if r.content else {}
    return result


# --- the docs and the browser ----------------------------------------------------------------
SPHINX_STRICT = ["-W", "--keep-going", "-n", "-q", "-b", "html"]  # as `make docs`

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

#: the test environment's scripts (jupyter-lab, sphinx-build)
BIN = Path(sys.executable).parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def close_left_sidebar(page: Any) -> None:
    """Collapse JupyterLab's left sidebar (clicking its open tab, the file browser)."""
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
    page.locator("#jp-left-stack").wait_for(state="hidden")


WIDGET = "application/vnd.jupyter.widget-view+json"


def not_refreshed(nb: Any) -> list[str]:
    """Why ``nb`` is not what ``tests/tools/refresh_notebooks.py`` writes (empty: it is)."""
    problems = []
    if "widgets" in nb.metadata or "papermill" in nb.metadata:
        problems.append("notebook metadata holds a session's widget or papermill state")
    expected = 1
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        skipped = "skip-execution" in cell.metadata.get("tags", [])
        outputs = cell.get("outputs", [])
        if skipped and (cell.execution_count is not None or outputs):
            problems.append(f"cell {index} (skipped headless: the form) was run and saved")
        elif not skipped and cell.execution_count != expected:
            problems.append(
                f"cell {index}: execution count {cell.execution_count}, not {expected} "
                "(not one run from the top)"
            )
        if any(WIDGET in out.get("data", {}) for out in outputs):
            problems.append(f"cell {index} holds a widget")
        if not skipped:
            expected += 1
    return problems


# --- what a run made, and runs stopped half-way ----------------------------------------------
def census(state: Any, path: str = "") -> Counter[str]:
    """How many of each kind of thing the sandbox holds: leaf paths, list positions folded.

    Ids, secrets' expiry dates and other values are left out, so two runs that made the
    same things compare equal however their ids were drawn.
    """
    counts: Counter[str] = Counter()
    if isinstance(state, dict):
        for key, value in state.items():
            counts += census(value, f"{path}/{key}")
    elif isinstance(state, list):
        counts[f"{path}[]"] += 0  # present, even when empty
        for value in state:
            counts += census(value, f"{path}[]")
        counts[f"{path}[]#"] += len(state)
    else:
        counts[path] += 1
    return counts


def creating_calls(box: sandbox.Sandbox) -> list[dict[str, Any]]:
    """Requests that made something in a fake cloud (sign-ins, checks and pushes left out)."""
    return [
        e
        for e in box.log()
        if e["method"] in ("POST", "PUT", "PATCH")
        and e["status"] in (200, 201, 202)
        and not re.search(
            r"/auth/token|/oauth2|/login/|checkNameAvailability|/v2/.*/(blobs|manifests)/",
            e["path"],
            re.I,
        )
    ]


def defaults(provider: Provider, tmp_path: Path) -> dict[str, Any]:
    """The notebook's parameters cell, writing into ``tmp_path / "values"``."""
    return parameters_cell(provider) | {"output_dir": str(tmp_path / "values")}


#: BinderHub's class for a registry behind a helper service (binderhub/registry.py, PR #1637).
HELPER_CLASS = "binderhub.registry.ExternalRegistryHelper"


def credential(secret: dict[str, Any]) -> str:
    """The credential BinderHub holds in ``secret.yaml``: ``registry.password``, or for a
    registry behind ExternalRegistryHelper, the helper's auth token."""
    helper = (secret.get("config") or {}).get("ExternalRegistryHelper") or {}
    return str(helper.get("auth_token") or secret["registry"]["password"])


def helper_push_registry(
    config: dict[str, Any], secret: dict[str, Any], ca_file: str, name: str = "skopeo"
) -> dict[str, Any]:
    """A build pod's push credentials for ``<image_prefix><name>`` as BinderHub gets them from
    the helper (``ExternalRegistryHelper.get_image_manifest``, which makes the repository, then
    ``get_credentials``), in ``secret.yaml``'s ``registry`` form (url, username, password)."""
    from binderhub_registry.providers.ecr import HelperAPI

    service = config["config"]["ExternalRegistryHelper"]["service_url"]
    helper = HelperAPI(service, Secret(credential(secret)), ca_file)
    _, image = config["config"]["BinderHub"]["image_prefix"].split("/", 1)
    helper.get_image_manifest(f"{image}{name}", "1")
    creds = helper.get_credentials(f"{image}{name}", "1")
    assert creds, "the helper gave no push credentials"
    return {"url": creds["registry"], "username": creds["username"], "password": creds["password"]}


class Crash(Exception):
    """A run that stops at a chosen point (a killed kernel, a full disk)."""


@contextmanager
def stopped_writing_values(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Runs inside stop at the write step, as a full disk would stop them."""

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(contract, "write_values", disk_full)
        yield


@contextmanager
def stopped_recording(
    monkeypatch: pytest.MonkeyPatch, stop_at: str, skip: int = 0
) -> Iterator[None]:
    """Runs inside raise Crash as they are about to record ``stop_at``, after ``skip`` records
    of it (1: past the pending mark ``Connection.create`` records before its call)."""
    real_set = Record.set
    seen = [0]

    def stop(self: Record, kind: str, value: Any) -> None:
        if kind == stop_at:
            seen[0] += 1
            if seen[0] > skip:
                raise Crash(f"stopped before recording {stop_at}")
        real_set(self, kind, value)

    with monkeypatch.context() as m:
        m.setattr(Record, "set", stop)
        yield


#: Longest wait the matrix lets a client take (seconds): its waits are recorded, not waited.
QUICK_WAIT = 0.02


# --- Docker Hub ------------------------------------------------------------------------------
#: Docker Hub's notebook's parameters (output_dir is each test's)
PARAMS = notebook_defaults("dockerhub")


def refused(output_dir: str, **extra: Any) -> str:
    with pytest.raises(InvalidParameter) as err:
        dockerhub.validate(PARAMS | {"output_dir": output_dir} | extra)
    assert err.value.name == "output_dir"
    message = str(err.value)
    assert "\n" not in message
    return message


def hub(box: sandbox.Sandbox, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(
        method, f"{box.url}/dockerhub{path}", verify=box.ca_file, timeout=10, **kw
    )


def session(
    box: sandbox.Sandbox, user: str = "dockerhub", secret: str | None = None
) -> dict[str, str]:
    creds = box.credentials(user)
    r = hub(
        box,
        "POST",
        "/v2/auth/token",
        json={"identifier": creds["username"], "secret": secret or creds["password"]},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def realm(box: sandbox.Sandbox, user: str, secret: str, repository: str) -> list[str]:
    """The actions the registry's realm grants on ``repository``."""
    r = requests.get(
        f"{box.url}/dockerhub/token",
        params={"service": "registry.docker.io", "scope": f"repository:{repository}:pull,push"},
        auth=(user, secret),
        verify=box.ca_file,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    import jwt

    claims = jwt.decode(r.json()["token"], options={"verify_signature": False})
    return list(claims["access"][0]["actions"])


def _hub_token(box: sandbox.Sandbox, user: str, path: str, body: dict[str, Any]) -> str:
    """A token made by ``POST <Hub API>/<path>``, signed in as seeded ``user`` with its password."""
    creds = box.credentials(user)
    api = f"{box.url}/dockerhub/v2"
    session = requests.post(
        f"{api}/auth/token",
        json={"identifier": creds["username"], "secret": creds["password"]},
        verify=box.ca_file,
        timeout=10,
    ).json()["access_token"]
    made = requests.post(
        f"{api}/{path}",
        json=body,
        headers={"Authorization": f"Bearer {session}"},
        verify=box.ca_file,
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def make_token(box: sandbox.Sandbox, scopes: list[str], user: str = "dockerhub") -> str:
    """A personal access token made through the fake Hub API with the seeded password."""
    return _hub_token(box, user, "access-tokens", {"token_label": "my own token", "scopes": scopes})


class Run:
    """The Docker Hub notebook run in process, run after run, in one ``output_dir``."""

    def __init__(self, workdir: Path) -> None:
        from .conftest import InProcessRun  # conftest imports this module

        self.run = InProcessRun(NOTEBOOKS / "02-docker-hub.ipynb", workdir)
        self.output_dir = self.run.output_dir

    def __call__(self, **parameters: Any) -> str:
        self.run(**parameters)
        return "\n".join(self.run.outputs)

    def secret(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load((self.output_dir / "secret.yaml").read_text())
        return loaded

    def pull(self) -> dict[str, Any]:
        """``jupyterhub.imagePullSecret`` as written."""
        pull: dict[str, Any] = self.secret()["jupyterhub"]["imagePullSecret"]
        return pull

    def record(self) -> dict[str, Any]:
        return dict(dockerhub.Record(self.output_dir, dockerhub.KEY).created)


def tokens(box: sandbox.Sandbox) -> list[dict[str, Any]]:
    return list(box.state()["dockerhub"]["access_tokens"])


def hub_session(box: Sandbox, user: str = "dockerhub") -> dict[str, str]:
    """Authorization header of a signed-in session on the fake Hub API."""
    creds = box.credentials(user)
    session = requests.post(
        f"{box.url}/dockerhub/v2/auth/token",
        json={"identifier": creds["username"], "secret": creds["password"]},
        verify=box.ca_file,
        timeout=10,
    ).json()["access_token"]
    return {"Authorization": f"Bearer {session}"}


def hub_token(box: Sandbox, scopes: list[str]) -> str:
    """A fresh Docker Hub access token with ``scopes``, made through the fake Hub API."""
    r = requests.post(
        f"{box.url}/dockerhub/v2/access-tokens",
        json={"token_label": f"test {scopes}", "scopes": scopes},
        headers=hub_session(box),
        verify=box.ca_file,
        timeout=10,
    )
    r.raise_for_status()
    return str(r.json()["token"])


def values_for(
    box: Sandbox, password: str, namespace: str = "binderhubdemo", **overrides: object
) -> RegistryValues:
    registry = box.registries["dockerhub"]
    host = registry.split("://")[1]
    fields: dict[str, object] = {
        "image_prefix": f"{host}/{namespace}/binder-",
        "username": "binderhubdemo",
        "password": Secret(password),
        "registry_url": registry,
        "docker_registry": {
            "url": registry,
            "token_url": f"{box.url}/dockerhub/token?service=registry.docker.io",
            "not_found_401": True,
        },
    }
    return RegistryValues(**(fields | overrides))  # type: ignore[arg-type]


# --- Azure -----------------------------------------------------------------------------------
AZURE_DEFAULTS = notebook_defaults("azure")

AZURE_VARIABLES = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
)


def az(box: sandbox.Sandbox) -> dict[str, Any]:
    state: dict[str, Any] = box.state()["azure"]
    return state


GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def deployer_token(box: Sandbox, resource: str = "https://management.azure.com") -> str:
    """A client-credentials token of the seeded deployer for ``resource`` (as MSAL asks)."""
    seeded = box.credentials("azure")
    r = requests.post(
        f"{box.url}/azure/login/{seeded['tenant_id']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": seeded["client_id"],
            "client_secret": seeded["client_secret"],
            "scope": resource + "/.default",
        },
        verify=box.ca_file,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


@dataclass
class Tenant:
    """The seeded deployer's credential and ARM clients, against the sandbox."""

    box: Sandbox
    creds: dict[str, str]
    credential: ClientSecretCredential

    @property
    def sub(self) -> str:
        return self.creds["subscription_id"]

    def kwargs(self) -> dict[str, Any]:
        return {
            "base_url": f"{self.box.url}/azure/management",
            "connection_verify": self.box.ca_file,
            "polling_interval": 0.01,
        }

    def resources(self) -> ResourceManagementClient:
        return ResourceManagementClient(self.credential, self.sub, **self.kwargs())

    def acr(self) -> ContainerRegistryManagementClient:
        return ContainerRegistryManagementClient(self.credential, self.sub, **self.kwargs())

    def authorization(self) -> AuthorizationManagementClient:
        return AuthorizationManagementClient(self.credential, self.sub, **self.kwargs())

    def graph(self) -> GraphServiceClient:
        """A Graph client for the running event loop."""
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(
                verify=ssl.create_default_context(cafile=self.box.ca_file), trust_env=False
            )
        )
        adapter = GraphRequestAdapter(
            AzureIdentityAuthenticationProvider(self.credential, scopes=[GRAPH_SCOPE]), http
        )
        adapter.base_url = f"{self.box.url}/azure/graph/v1.0"
        return GraphServiceClient(request_adapter=adapter)

    def credential_for(self, client_id: str, secret: str) -> ClientSecretCredential:
        return ClientSecretCredential(
            self.creds["tenant_id"],
            client_id,
            secret,
            authority=f"{self.box.url}/azure/login",
            disable_instance_discovery=True,
            connection_verify=self.box.ca_file,
        )


def make_registry(t: Tenant, name: str = "sandboxacr01", group: str = "rg1") -> Any:
    t.resources().resource_groups.create_or_update(group, {"location": "westeurope"})
    poller = t.acr().registries.begin_create(
        group,
        name,
        Registry(
            location="westeurope",
            sku=Sku(name="Basic"),
            properties=RegistryProperties(admin_user_enabled=False),
        ),
    )
    return poller.result()


async def make_principal(t: Tenant, name: str = "test-sp") -> tuple[Any, Any, str]:
    """An application, its service principal and a password (the secret text)."""
    graph = t.graph()
    app = await graph.applications.post(Application(display_name=name))
    sp = await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))
    body = AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name="t"))
    password = await graph.applications.by_application_id(app.id).add_password.post(body)
    return app, sp, password.secret_text


def assign_push(t: Tenant, scope: str, sp_id: str, name: str) -> Any:
    role = f"/subscriptions/{t.sub}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PUSH}"
    params = RoleAssignmentCreateParameters(
        role_definition_id=role, principal_id=sp_id, principal_type="ServicePrincipal"
    )
    return t.authorization().role_assignments.create(scope, name, params)


# --- Google ----------------------------------------------------------------------------------
#: the notebook's, with a named account (its default, "", is one named from the deployment id)
GOOGLE_DEFAULTS = notebook_defaults("google") | {"service_account": "binderhub-builder"}

KEYLESS = GOOGLE_DEFAULTS | {"auth": "metadata"}

TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"


def signed_in(run: Runner, out: Path, **overrides: Any) -> google.GoogleConnection:
    """A connection for ``out`` with the test defaults and ``overrides``."""
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(out), **overrides)
    conn: google.GoogleConnection = run.step("sign in", google.sign_in, p)
    return conn


def up_to_the_key(run: Runner, conn: google.GoogleConnection) -> None:
    """The steps before the key: API, repository, service account, role."""
    run.step("api", google.enable_api, conn)
    run.step("repository", google.ensure_repository, conn)
    run.step("account", google.ensure_service_account, conn)
    run.step("role", google.grant_writer, conn)


def keyless_run(run: Runner, conn: google.GoogleConnection) -> Any:
    """Every step of a keyless run up to the written values."""
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    run.step("workload identity", google.bind_workload_identity, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    return run.step("values", conn.write_values)


def whole_run(run: Runner, conn: google.GoogleConnection) -> None:
    """Every step of the notebook, finish_rotation included (teardown is not asked)."""
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    run.step("workload identity", google.bind_workload_identity, conn)
    run.step("pull", google.ensure_pull_credential, conn)
    files = run.step("values", conn.write_values)
    run.step("verify", conn.verify, files)
    asyncio.run(run.astep("finish", conn.finish_rotation))


def grpc_calls(box: sandbox.Sandbox, method: str) -> list[str]:
    """The statuses of the gRPC IAM calls to ``method`` since the last reset."""
    return [e["status"] for e in box.log() if e["path"] == f"/google.iam.admin.v1.IAM/{method}"]


def torn_down(seeded: dict[str, Any]) -> dict[str, Any]:
    """The Google backend's ``seeded`` state as a teardown leaves it: the APIs the notebook
    enabled stay on (teardown never disables an API: others' repositories may use it)."""
    return seeded | {"services": sorted(set(seeded["services"]) | set(google.SERVICES))}


def metadata_url(box: sandbox.Sandbox) -> str:
    """The fake metadata server's base URL."""
    return str(box.state()["google"]["metadata_server"])


CONDITION = {
    "title": "until-2030",
    "expression": 'request.time < timestamp("2030-01-01T00:00:00Z")',
    "description": "someone else's temporary access",
}

#: Someone else's bindings on the repository: a conditional one on the writer role itself.
THEIRS = [
    {"role": google.ROLE, "members": ["user:dana@example.com"], "condition": CONDITION},
    {"role": google.PULL_ROLE, "members": ["user:lee@example.com"], "condition": CONDITION},
    {"role": google.PULL_ROLE, "members": ["user:kim@example.com"]},
]


def repository_policy(conn: google.GoogleConnection, version: int) -> dict[str, Any]:
    """The repository's policy read at ``version``, through the SDK."""
    request = conn.registry.repositories().getIamPolicy(
        resource=conn.repository_name, options_requestedPolicyVersion=version
    )
    return dict(request.execute())


def set_theirs(conn: google.GoogleConnection) -> None:
    """Someone else sets conditional bindings on the repository (at version 3, as they must)."""
    policy = repository_policy(conn, 3)
    body = {"policy": {"version": 3, "etag": policy["etag"], "bindings": THEIRS}}
    conn.registry.repositories().setIamPolicy(resource=conn.repository_name, body=body).execute()


ON = "REDIRECTION_FROM_GCR_IO_ENABLED"


def redirect(conn: google.GoogleConnection, state: str = ON) -> None:
    """``gcloud artifacts settings enable-upgrade-redirection``: updateProjectSettings."""
    conn.projects.updateProjectSettings(
        name=f"projects/{conn.params.project_id}/projectSettings",
        updateMask="legacyRedirectionState",
        body={"legacyRedirectionState": state},
    ).execute()


DATA = Path(__file__).parent / "data" / "google"

DOCS = {
    "serviceusage": json.loads((DATA / "serviceusage.v1.json").read_text()),
    "artifactregistry": json.loads((DATA / "artifactregistry.v1.json").read_text()),
}


def problems(api: str, value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where ``value`` has fields that ``schema`` (of ``api``'s document) does not describe."""
    schemas = DOCS[api]["schemas"]
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    found: list[str] = []
    if isinstance(value, dict):
        if "properties" not in schema:  # a map, or google.protobuf.Any: any keys
            return found
        for key, inner in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += problems(api, inner, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            found += problems(api, item, schema.get("items", {}), f"{path}[]")
    return found


# --- Harbor ----------------------------------------------------------------------------------
HARBOR_DEFAULTS = notebook_defaults("harbor")
#: Notebook 06's parameters cell: the sandbox's account and its seeded EKS cluster.
ECR_DEFAULTS = notebook_defaults("ecr")


def harbor_steps(tmp_path: Path, **overrides: Any) -> tuple[harbor.HarborConnection, ValuesFiles]:
    """Sign in, project, robot, values: the notebook's steps up to verify, in process."""
    values = HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values")} | overrides
    conn = harbor.sign_in(harbor.validate(values)).value
    harbor.ensure_project(conn)
    harbor.ensure_robot(conn)
    harbor.ensure_pull_credential(conn)
    files = conn.write_values().value
    assert files is not None
    return conn, files


def admin_api(box: sandbox.Sandbox) -> harbor.HarborAPI:
    """The sandbox Harbor's API as its seeded admin."""
    creds = box.credentials("harbor")
    return harbor.HarborAPI(
        box.registries["harbor"], creds["username"], Secret(creds["password"]), box.ca_file
    )


# --- OVHcloud --------------------------------------------------------------------------------
OVH_DEFAULTS = notebook_defaults("ovh")


def ovh_params(out: Path, **overrides: Any) -> ovh.Params:
    """Validated parameters: the notebook's defaults, writing into ``out``."""
    return ovh.validate(OVH_DEFAULTS | {"output_dir": str(out)}, **overrides)


def runner() -> Runner:
    """A runner that does not wait between retries."""
    return Runner(sleep=lambda seconds: None)


def up_to_admin(run: Runner, p: ovh.Params) -> ovh.OvhConnection:
    """Sign in, plans, registry, READY, Harbor admin user: the OVH half of the notebook."""
    conn = run.step("Sign in to OVHcloud", ovh.sign_in, p)
    run.step("Plans", ovh.list_plans, conn)
    run.step("Registry", ovh.ensure_registry, conn)
    run.step("READY", ovh.wait_until_ready, conn)
    run.step("Harbor admin", ovh.ensure_admin_user, conn)
    return conn


def full_run(run: Runner, p: ovh.Params) -> ovh.OvhConnection:
    """The whole notebook: the OVH half, the Harbor project and robot, values, verification."""
    conn = up_to_admin(run, p)
    run.step("Harbor project", harbor.ensure_project, conn)
    run.step("BinderHub's credential", ovh.ensure_credential, conn)
    run.step("Pull-only credential for user pods", ovh.ensure_pull_credential, conn)
    files = run.step("Write values", conn.write_values)
    run.step("Verify", conn.verify, files)
    return conn


def registries(box: sandbox.Sandbox) -> list[dict[str, Any]]:
    """The fake account's registries."""
    found: list[dict[str, Any]] = box.state()["ovh"]["registries"]
    return found


# --- Amazon ECR: the sandbox's backend in this process -------------------------------------------
#: The region the ECR tests work in (the seeded EKS cluster's).
ECR_REGION = "us-east-2"


@dataclass
class EcrBox:
    """The ECR backend on an app of its own in this process (``ecr_box`` in conftest.py): its
    URLs, CA, seeded admin key, and boto3 clients on it. It needs no registered provider, and
    its settings are set directly (``box.cloud.offset``)."""

    cloud: Any  # sandbox.ecr.cloud.EcrCloud (imported where the box starts: moto and boto3)
    app: Any  # sandbox.app.App
    ca_file: str
    admin: dict[str, str]

    @property
    def url(self) -> str:
        """The app's URL (AWS's endpoints are under ``/ecr``)."""
        return str(self.app.url)

    @property
    def registry(self) -> str:
        """ECR's registry front, ``https://127.0.0.1:PORT``."""
        return str(self.cloud.registries()["ecr"])

    def client(self, service: str, key: str = "", secret: str = "", **config: Any) -> Any:
        """A boto3 client of ``service`` (ecr, iam, sts, eks) on the sandbox, as the admin or
        as ``key``/``secret``; ``config``: botocore's Config (e.g. ``retries``)."""
        import boto3
        from botocore.config import Config

        endpoint = {"ecr": "api"}.get(service, service)
        return boto3.client(
            service,
            region_name=ECR_REGION,
            endpoint_url=f"{self.url}/ecr/{endpoint}",
            verify=self.ca_file,
            aws_access_key_id=key or self.admin["access_key_id"],
            aws_secret_access_key=secret or self.admin["secret_access_key"],
            config=Config(**config) if config else None,
        )

    def iam(self) -> Any:
        """The admin's IAM client."""
        return self.client("iam")

    def state(self) -> dict[str, Any]:
        """The backend's ``/_sandbox/state`` part (a JSON copy, taken under its lock)."""
        with self.cloud.lock:
            found: dict[str, Any] = json.loads(json.dumps(self.cloud.state()))
        return found

    def admin_headers(self) -> dict[str, str]:
        """The app's admin token header (as ``Sandbox.admin_headers``)."""
        from binderhub_registry.sandbox.app import ADMIN_HEADER

        token = json.loads((Path(self.app.directory) / "credentials.json").read_text())
        return {ADMIN_HEADER: token["sandbox"]["admin_token"]}

    def admin_post(self, path: str, body: Any) -> requests.Response:
        """POST to the app's ``/_sandbox/<path>`` with its admin token (faults, settings)."""
        return requests.post(
            f"{self.url}/_sandbox/{path}",
            json=body,
            headers=self.admin_headers(),
            verify=self.ca_file,
            timeout=30,
        )


def node_token(
    box: sandbox.Sandbox | EcrBox,
    cluster: str = "binderhub",
    nodegroup: str = "default",
    region: str = "",
) -> requests.Response:
    """``/_sandbox/ecr/node-token``: what ecr-credential-provider hands the kubelet of
    ``cluster``'s node group, minted as its node role for the registry of ``region`` (default:
    the cluster's; real life reads it from the image's host) (200 the plugin's
    CredentialProviderResponse; 400 ECR's refusal of GetAuthorizationToken to that role)."""
    params = {"cluster": cluster, "nodegroup": nodegroup} | ({"region": region} if region else {})
    return requests.get(
        f"{box.url}/_sandbox/ecr/node-token",
        params=params,
        headers=box.admin_headers(),
        verify=box.ca_file,
        timeout=30,
    )


def node_pull_credential(
    box: sandbox.Sandbox | EcrBox,
    cluster: str = "binderhub",
    nodegroup: str = "default",
    region: str = "",
) -> tuple[str, str] | None:
    """(``AWS``, password) the node's kubelet pulls ECR's images with, or None when its
    plugin fails (the node role may not GetAuthorizationToken): the kubelet then pulls
    without credentials."""
    answer = node_token(box, cluster, nodegroup, region)
    if answer.status_code == 400 and answer.json().get("code") == "AccessDeniedException":
        return None
    answer.raise_for_status()
    (entry,) = answer.json()["auth"].values()
    return entry["username"], entry["password"]


def run_pull_refresh(
    manifest: Path,
    box: EcrBox,
    tmp_path: Path,
    *,
    aws: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """ECR's ``pull-secret-cronjob.yaml``: its CronJob's login container run here, its script
    with its environment and its Secret's key (the pull-only user's), against the sandbox; the
    Secret it writes for the kubectl container to apply, parsed. ``aws`` is the real AWS CLI
    (``make test-clients``: tests/clients/test_aws_cli.py); without it a stand-in makes the call
    ``aws ecr get-login-password`` makes, with botocore, so ``make test`` needs no CLI and never
    depends on one the machine happens to have."""
    import os
    import subprocess

    docs = {d["kind"]: d for d in yaml.safe_load_all(manifest.read_text())}
    pod = docs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["initContainers"]
    key = docs["Secret"]["stringData"]
    work, bin_dir = tmp_path / "work", tmp_path / "bin"
    work.mkdir()
    bin_dir.mkdir()
    if aws is not None:
        (bin_dir / "aws").symlink_to(aws)
    else:
        stub = bin_dir / "aws"
        stub.write_text(
            f"#!{sys.executable}\n"
            "import base64, boto3, sys\n"
            "region = sys.argv[sys.argv.index('--region') + 1]\n"
            "data = boto3.client('ecr', region_name=region).get_authorization_token()\n"
            "token = data['authorizationData'][0]['authorizationToken']\n"
            "print(base64.b64decode(token).decode().partition(':')[2])\n"
        )
        stub.chmod(0o755)
    environment = (
        {e["name"]: e["value"] for e in container["env"]}
        | {
            "WORK": str(work),
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "AWS_ACCESS_KEY_ID": key["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": key["AWS_SECRET_ACCESS_KEY"],
            "AWS_ENDPOINT_URL_ECR": f"{box.url}/ecr/api",
            "AWS_CA_BUNDLE": box.ca_file,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": str(tmp_path),
        }
        | (env or {})
    )
    done = subprocess.run(
        container["command"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = work / "secret.yaml"
    assert written.stat().st_mode & 0o077 == 0  # umask 077: the password stays the pod's
    found: dict[str, Any] = yaml.safe_load(written.read_text())
    return found


@contextmanager
def ecr_app(directory: Path) -> Iterator[EcrBox]:
    """The ECR backend started on an app of its own in ``directory`` (0700), stopped after."""
    import threading

    from binderhub_registry.sandbox import tls
    from binderhub_registry.sandbox.app import App, Context
    from binderhub_registry.sandbox.ecr.cloud import EcrCloud

    directory.chmod(0o700)
    context = Context(directory, tls.generate(directory))
    cloud = EcrCloud.create(context)
    app = App([cloud], context)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(app.start(), loop).result(timeout=10)
    cloud.attach(app)
    try:
        yield EcrBox(cloud, app, str(context.material.ca_file), context.secret("ecr", dict))
    finally:
        cloud.shutdown()
        loop.call_soon_threadsafe(loop.stop)


#: the manifest type the Harbor retention tests push and pull
HARBOR_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _harbor_session(where: sandbox.Sandbox | harbor.HarborAPI) -> tuple[requests.Session, str]:
    """Basic auth as the sandbox Harbor's seeded admin, or as ``where``'s user (OVH's Harbor)."""
    http = requests.Session()
    if isinstance(where, harbor.HarborAPI):
        http.auth = where.http.auth
        http.verify, url = where.ca_file or True, where.url
    else:
        creds = where.credentials("harbor")
        http.auth = (creds["username"], creds["password"])
        http.verify, url = where.ca_file, where.registries["harbor"]
    http.trust_env = False
    return http, url


def harbor_push(where: sandbox.Sandbox | harbor.HarborAPI, repository: str, tag: str) -> None:
    """Push a one-layer image of its own (``repository:tag`` as its content)."""
    http, url = _harbor_session(where)
    layer = f"layer of {repository}:{tag}\n".encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "x": f"{repository}:{tag}"})
    blobs = []
    for blob in (layer, config.encode()):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        r = http.post(f"{url}/v2/{repository}/blobs/uploads/")
        assert r.status_code == 202, r.text
        location = r.headers["Location"]
        location = location if location.startswith("http") else url + location
        sep = "&" if "?" in location else "?"
        r = http.put(f"{location}{sep}digest={digest}", data=blob)
        assert r.status_code == 201, r.text
        blobs.append({"digest": digest, "size": len(blob)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": HARBOR_OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blobs[1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **blobs[0]}],
    }
    r = http.put(
        f"{url}/v2/{repository}/manifests/{tag}",
        data=json.dumps(manifest),
        headers={"Content-Type": HARBOR_OCI_MANIFEST},
    )
    assert r.status_code == 201, r.text


def harbor_pull(where: sandbox.Sandbox | harbor.HarborAPI, repository: str, tag: str) -> None:
    """Pull the manifest by tag, as a kubelet does (what Harbor counts as a pull)."""
    http, url = _harbor_session(where)
    r = http.get(f"{url}/v2/{repository}/manifests/{tag}", headers={"Accept": HARBOR_OCI_MANIFEST})
    assert r.status_code == 200, r.text


def common_params(output_dir: Path, **changes: Any) -> CommonParams:
    """The contract's common parameters as a first real run on the sandbox has them."""
    values: dict[str, Any] = {
        "prefix": "binder-",
        "pull_access": "secret",
        "output_dir": output_dir,
        "dry_run": False,
        "teardown": False,
        "rotate": False,
        "keep_replaced": False,
        "sandbox": True,
    }
    return CommonParams(**(values | changes))


#: The only hosts a test's process may connect to.
LOOPBACK = ("127.0.0.1", "::1")


def loopback_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every socket connection the process opens from now on (its addresses, in a list
    the caller reads after), and fail at once on one beyond :data:`LOOPBACK`."""
    seen: list[Any] = []
    connect = socket.socket.connect

    def recording(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        assert address[0] in LOOPBACK, f"a connection beyond loopback: {address}"
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    return seen
