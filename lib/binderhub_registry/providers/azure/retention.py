"""Keeping the registry small on ACR: a scheduled ACR Task running ``acr purge``.

ACR's own retention policy deletes untagged manifests only, and only on Premium
(learn.microsoft.com "Set a retention policy for untagged manifests"); BinderHub's images
are tagged, so the documented way to delete old ones is ``acr purge`` run by a scheduled
ACR Task (learn.microsoft.com "Automatically purge images from an Azure container
registry": ``az acr task create --cmd "acr purge --filter '<repo regex>:<tag regex>' --ago
<N>d --untagged" --schedule "0 0 * * *" --context /dev/null``). ``--ago`` compares each tag's
last update time (its push): ACR records no pull time, so the rule is "not pushed for N days".

azure-mgmt-containerregistry 15 (api-version 2025-11-01) has no Tasks operations: ACR Tasks
are their own API (Tasks REST reference), which the az CLI reaches with a separate beta SDK:
azure-cli 2.91's ``acr task create`` (``command_modules/acr/task.py``) calls
azure-mgmt-containerregistrytasks 1.0.0b1's ``TasksOperations.create``, api-version
``2025-03-01-preview``. Rather than add a beta dependency for one resource, the task is PUT,
read and deleted with azure-mgmt-resource's generic ``resources.*_by_id`` at that api-version:
the same credential, pipeline and retries as every other ARM call here. Its body is what
``az acr task create --cmd ... --schedule ... --context /dev/null`` sends (``acr_task_create``,
``create_task_step``; ``_utils.get_yaml_template`` writes the YAML, ``build_timers_info``
names the timer ``t1``): an ``EncodedTask`` step, the registry's location, Linux, 2 CPUs,
a 3600 s timeout. az also adds a base-image trigger by default, meaningless for a task with
no Dockerfile: not set here.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from azure.mgmt.resource.resources.models import GenericResource

from ...binderhub import RegistryValues
from ...errors import CloudError
from ...steps import Result
from ...usage import NotRead, Usage, retention_text, sandbox_of
from ..contract import creates
from .connection import AzureConnection, size_usage, wait_for
from .errors import arm_if_present, arm_step
from .params import ABAC_MODE, MARK, TASKS_API_VERSION

__all__ = [
    "SCHEDULE",
    "TASKS_API_VERSION",
    "ensure_purge_task",
    "purge_command",
    "task_body",
    "task_name",
]

#: Daily at midnight UTC, as the purge page's example (``--schedule "0 0 * * *"``).
SCHEDULE = "0 0 * * *"
#: The run's timeout, seconds: the purge page's YAML example (``timeout: 3600``).
TIMEOUT = 3600
#: The characters a repository name may hold that a regular expression reads specially.
_SPECIAL = re.compile(r"([.\\+*?()\[\]{}|^$])")


def task_name(project: str) -> str:
    """The task's name: ``binderhub-purge-<project>`` with what a task name may not hold
    (letters, digits, ``-`` and ``_``, 5-50: Tasks REST reference) replaced by ``-``."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"binderhub-purge-{project}")[:50]


def purge_command(project: str, prefix: str, days: int) -> str:
    """``acr purge`` for BinderHub's repositories (``<project>/<prefix>...``), every tag.

    acr purge anchors the repository part of ``--filter`` (``^<regex>$``: Azure/acr-cli
    ``CollectTagFilters``), so ``<project>/<prefix>.*`` selects exactly the repositories under
    the image prefix; the literal part is escaped. ``--untagged`` also deletes the manifests
    left without a tag, which ``--ago`` alone would leave taking space.
    """
    literal = _SPECIAL.sub(r"\\\1", f"{project}/{prefix}")
    return f"acr purge --filter '{literal}.*:.*' --ago {days}d --untagged"


def _yaml(command: str) -> str:
    """The task's YAML, as ``az acr task create --cmd`` writes it (and the purge page shows)."""
    return (
        "version: v1.1.0\nsteps: \n"
        f"  - cmd: {command}\n    disableWorkingDirectoryOverride: true\n    timeout: {TIMEOUT}\n"
    )


def task_body(command: str) -> dict[str, Any]:
    """The Task resource's properties (Tasks REST reference, ``TaskProperties``)."""
    return {
        "status": "Enabled",
        "platform": {"os": "Linux", "architecture": "amd64"},
        "agentConfiguration": {"cpu": 2},
        "timeout": TIMEOUT,
        "step": {
            "type": "EncodedTask",
            "encodedTaskContent": base64.b64encode(_yaml(command).encode()).decode(),
            "values": [],
        },
        "trigger": {"timerTriggers": [{"name": "t1", "schedule": SCHEDULE, "status": "Enabled"}]},
        "isSystemTask": False,
    }


def _command_of(properties: dict[str, Any]) -> str | None:
    """The ``cmd`` of a task's encoded YAML (None: another kind of task)."""
    step = properties.get("step") or {}
    try:
        text = base64.b64decode(str(step.get("encodedTaskContent") or "")).decode()
    except ValueError:
        return None
    found = re.search(r"^\s*-\s*cmd:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else None


def _schedule_of(properties: dict[str, Any]) -> str | None:
    timers = (properties.get("trigger") or {}).get("timerTriggers") or []
    return str(timers[0].get("schedule")) if timers else None


def task_id(conn: AzureConnection) -> str:
    """The task's ARM id, under the registry."""
    p = conn.params
    return (
        f"/subscriptions/{conn.subscription_id}/resourceGroups/{p.resource_group}/providers/"
        f"Microsoft.ContainerRegistry/registries/{p.acr_name}/tasks/{task_name(p.project)}"
    )


@creates
@arm_step
def ensure_purge_task(conn: AzureConnection) -> Result[str | None]:
    """A scheduled ACR Task running ``acr purge`` on BinderHub's repositories (see the module).

    Looked up first: the same command and schedule is reused; ours with another
    ``retention_days`` is updated; a task of that name this deployment did not make (no
    mark tag of ours) is left alone and the step stops. ``retention_days = 0``: no task
    (one of ours is deleted).
    """
    p = conn.params
    name, days = task_name(p.project), p.retention_days
    command = purge_command(p.project, p.prefix, days)
    rule = retention_text(days, seen="pushed")
    registry = conn.registry
    if registry is None:  # a dry run planned the registry: plan the task after it
        conn.plan(f'create ACR Task {name} running daily ({SCHEDULE}): "{command}"; {rule}')
        raise CloudError("cannot create the purge task: run the notebook's earlier steps first")
    resource_id = task_id(conn)
    live = arm_if_present(
        conn.resources.resources.get_by_id, resource_id, api_version=TASKS_API_VERSION
    )
    tags = dict((live.tags if live is not None else None) or {})
    ours = live is not None and tags.get(MARK) == conn.record.deployment
    if live is not None and not ours:
        raise CloudError(
            f"registry {p.acr_name} already has a task named {name} that this deployment did "
            f"not create (tag {MARK}={tags.get(MARK)}): left alone; delete or rename it to let "
            "this notebook set its purge task"
        )
    if days == 0:
        if live is None:
            return Result(None, "skipped", f"{rule}: no purge task")
        conn.plan(f"delete ACR Task {name} ({rule})")
        conn.delete_task({"id": resource_id})
        conn.note("purge_task", None)
        return Result(None, "deleted", f"{rule}: deleted purge task {name}")
    properties = dict(live.properties or {}) if live is not None else {}
    if live is not None and (
        _command_of(properties) == command and _schedule_of(properties) == SCHEDULE
    ):
        if not conn.record.created.get("purge_task"):
            conn.note("purge_task", {"id": resource_id, "name": name})
        abac = _abac(conn)
        return Result(
            resource_id,
            "warning" if abac else "reused",
            f'ACR Task {name}, daily ({SCHEDULE}): "{command}"; {rule}{abac}',
        )
    body = GenericResource(
        location=registry.location or p.location,
        tags=conn.tags,
        properties=task_body(command),
    )
    verb = "update" if live is not None else "create"
    made = conn.create(
        "purge_task",
        f'{verb} ACR Task {name} running daily ({SCHEDULE}): "{command}"; {rule}',
        lambda: wait_for(
            conn,
            conn.resources.resources.begin_create_or_update_by_id(
                resource_id, body, api_version=TASKS_API_VERSION, polling=conn.polling()
            ),
            f"creating ACR Task {name}",
            f"`az acr task show --name {name} --registry {p.acr_name}`; a rerun reuses it",
        ),
        pending={"id": resource_id, "name": name, "pending": True},
        keep=lambda made: {"id": str(made.id or resource_id), "name": name},
    )
    abac = _abac(conn)
    return Result(
        str(made.id or resource_id),
        "warning" if abac else "updated" if live is not None else "created",
        f'ACR Task {name}, daily ({SCHEDULE}): "{command}"; {rule}; see its runs with '
        f"`az acr task list-runs --name {name} --registry {p.acr_name}`{abac}",
    )


def _abac(conn: AzureConnection) -> str:
    """On a registry in ABAC mode, the task's runs have no data-plane permission of their own:
    azure-cli 2.91's ``acr task create`` warns the same ("does not have data plane permissions
    to the source registry ... to perform image push, pull, or delete"; specify
    ``--source-acr-auth-id``). Said plainly; giving the task an identity is left to the user."""
    registry = conn.registry
    if registry is None or registry.role_assignment_mode != ABAC_MODE:
        return ""
    return (
        f"; registry {registry.name} is in ABAC mode, where the task's runs may not delete "
        "(az acr task create warns the same): give the task an identity (`az acr task identity "
        "assign`, then `az acr task update --source-acr-auth-id [system]`) with a role that "
        "deletes in the registry, or its purges delete nothing"
    )


# --- verify's reading of the storage used ------------------------------------------------------
#: What to set for verify to read listUsages outside the sandbox.
_SIGN_IN = "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or run az login)"


def usage_for_values(
    values: RegistryValues,
    env: Mapping[str, str],
    created: Mapping[str, Any],
    ca_file: str | None,
) -> Usage | NotRead | None:
    """``listUsages``' Size for ``binderhub-registry verify``, read as the notebook's deployer.

    Not with the values' service principal: listUsages is a control-plane action
    (``Microsoft.ContainerRegistry/registries/listUsages/read``, Registries_ListUsages), and
    AcrPush, its only role, holds ``registries/pull/read`` and ``registries/push/write``
    alone (learn.microsoft.com, Azure built-in roles: AcrPush). So: the sandbox's seeded
    deployer, or DefaultAzureCredential (the AZURE_* variables, az login, a managed
    identity). The registry's id is the notebook's record's; without one, the registry named
    by the ``<name>.azurecr.io`` host is looked up in AZURE_SUBSCRIPTION_ID.
    """
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import (
        ClientSecretCredential,
        CredentialUnavailableError,
        DefaultAzureCredential,
    )
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    recorded = str((created.get("registry") or {}).get("id") or "")
    if not recorded and not env.get("AZURE_SUBSCRIPTION_ID"):
        return NotRead(
            "no notebook record beside the values names the registry's subscription",
            "AZURE_SUBSCRIPTION_ID with " + _SIGN_IN,
        )
    box = sandbox_of(values)
    credential: Any
    if box is not None:
        seeded = box.credentials("azure")
        credential = ClientSecretCredential(
            seeded["tenant_id"],
            seeded["client_id"],
            seeded["client_secret"],
            authority=f"{box.url}/azure/login",
            disable_instance_discovery=True,
            connection_verify=box.ca_file,
        )
        arm, verify = f"{box.url}/azure/management", box.ca_file
    else:
        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        arm, verify = "https://management.azure.com", ca_file or True
    if recorded:
        parts = recorded.split("/")  # /subscriptions/<s>/resourceGroups/<g>/.../registries/<n>
        subscription, group, name = parts[2], parts[4], parts[-1]
    else:
        subscription, group = env["AZURE_SUBSCRIPTION_ID"], ""
        name = values.image_prefix.split("/", 1)[0].split(".", 1)[0]
    acr = ContainerRegistryManagementClient(
        credential, subscription, base_url=arm, connection_verify=verify, retry_total=0
    )
    try:
        if not group:
            found = [r for r in acr.registries.list() if str(r.name).lower() == name.lower()]
            if not found:
                return NotRead(f"no registry {name} in subscription {subscription}", _SIGN_IN)
            group = str(found[0].id).split("/")[4]
        usages = acr.registries.list_usages(group, name)
    except (CredentialUnavailableError, ClientAuthenticationError):
        return NotRead("AcrPush, the values' role, may not call listUsages", _SIGN_IN)
    return size_usage(usages, name)
