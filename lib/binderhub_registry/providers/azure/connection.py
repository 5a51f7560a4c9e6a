"""The Azure connection: a signed-in session (credential, endpoints, ARM and Graph clients),
what the steps found, and the contract's parts (BinderHub's values, verification that waits
for Azure to apply a new role, the replaced passwords' removal, teardown's proof of ownership
and its deletions)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tenacity
from azure.core.credentials import TokenCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.core.polling.arm_polling import ARMPolling
from azure.mgmt.resource.resources import ResourceManagementClient

from ...binderhub import RegistryValues, ValuesFiles
from ...errors import CloudError, VerificationFailed, map_exceptions
from ...pull import PULL_CHECK
from ...secrets import Secret
from ...steps import Result, progress
from ...usage import Usage
from ...verify import VerificationReport, VerifyHints, verify_step
from ..contract import Connection, Deletion, RealExample
from . import graph
from .errors import AZURE_ERRORS, arm_if_present, graph_errors
from .graph_sdk import GraphObject, graph_client
from .ours import app_problem, live_app, mark_of, not_ours
from .params import (
    ABAC_MODE,
    ACR_PULL_ROLE,
    ACR_PUSH_ROLE,
    ASSIGNMENT_NS,
    LEGACY_MODE,
    MARK,
    NOTEBOOK,
    REPOSITORY_READER_ROLE,
    REPOSITORY_WRITER_ROLE,
    TAGS,
    TASKS_API_VERSION,
    Identity,
    Params,
    pull_identity,
    push_identity,
)

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient


@dataclass(frozen=True)
class RegistryInfo:
    """The registry BinderHub pushes to."""

    id: str
    name: str
    login_server: str
    role_assignment_mode: str = LEGACY_MODE
    anonymous_pull: bool = False  # anonymousPullEnabled (Standard and Premium only)
    location: str = ""  # where its child resources (the purge task) go

    @property
    def push_role(self) -> str:
        """The role that lets a principal push here: AcrPush, or in ABAC mode Repository Writer."""
        return REPOSITORY_WRITER_ROLE if self.role_assignment_mode == ABAC_MODE else ACR_PUSH_ROLE

    @property
    def pull_role(self) -> str:
        """The role that lets a principal pull only: AcrPull, or in ABAC mode Repository Reader."""
        return REPOSITORY_READER_ROLE if self.role_assignment_mode == ABAC_MODE else ACR_PULL_ROLE


@dataclass(frozen=True)
class Principal:
    """BinderHub's identity: the application (appId is the registry username) and its SP."""

    app_object_id: str
    app_id: str
    sp_id: str
    display_name: str


@dataclass
class AzureConnection(Connection):
    """A signed-in Azure session: credential, endpoints, clients, and what the steps found.

    ``registry`` and ``principal`` are set by their steps (None in a dry run or
    teardown); the shared steps of :class:`~.contract.Connection` use them.
    """

    NOTEBOOK = NOTEBOOK
    HINTS = VerifyHints(
        credentials=(
            "rerun this notebook (a password past its expiry is replaced) and rewrite secret.yaml"
        ),
        push=(
            "the service principal needs AcrPush on this registry (Container Registry Repository "
            "Writer if the registry is in ABAC mode); a role just granted can take up to 10 "
            "minutes to apply"
        ),
        pull=(
            "the service principal needs AcrPush (or AcrPull) on this registry (Container Registry "
            "Repository Writer or Reader in ABAC mode); a role just granted can take up to 10 "
            "minutes to apply"
        ),
    )
    retiring = "retiring_passwords"

    params: Params
    credential: TokenCredential
    tenant_id: str
    who: str
    ca_file: str | None
    arm_url: str
    graph_url: str | None  # None: Microsoft Graph itself
    authority: str | None  # None: Microsoft Entra ID itself
    lro_interval: float  # seconds between LRO polls when Azure sends no usable Retry-After
    replication_wait: float  # first wait between replication retries (Graph, then ARM)
    propagation: float  # seconds verification waits for a new password or role to apply
    propagation_poll: float  # seconds between verification attempts meanwhile
    #: seconds a long-running operation (registry creation, a deletion) may take before the
    #: step stops with one line saying what did not finish (:func:`wait_for`)
    lro_deadline: float = 1200.0
    subscription_id: str = ""
    subscription_name: str = ""
    fresh: bool = False  # a password or role assignment was just made: give Azure time
    name_available: bool = False  # this run found the registry name free (checked once)
    location_checked: bool = False  # ARM lists ``location`` for registries (asked once)
    new_application: bool = False  # made in this run: Graph may not know it everywhere yet
    clients: dict[str, Any] = field(default_factory=dict)
    registry: RegistryInfo | None = None
    principal: Principal | None = None
    pull_principal: Principal | None = None  # user pods' (pull_access "secret")
    _graph: tuple[Any, GraphServiceClient] | None = None
    _arm_transport: RequestsTransport | None = None  # owns the HTTP session the ARM clients share

    def arm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for every ARM client: the endpoint, in the sandbox its CA, and
        one HTTP session for them all (one connection to ARM, not one per client)."""
        verify: str | bool = self.ca_file or True
        if self._arm_transport is None:
            self._arm_transport = RequestsTransport(connection_verify=verify)
            self._arm_transport.open()  # azure-core makes the session and sets it up
        shared = RequestsTransport(
            session=self._arm_transport.session, session_owner=False, connection_verify=verify
        )
        return {
            "base_url": self.arm_url,
            "polling_interval": self.lro_interval,
            "transport": shared,
            # the step runner retries a step whose request failed (429 with its Retry-After,
            # 5xx, a lost connection); azure-core's RetryPolicy would first retry each request
            # up to 3 times (10 in all), so a fault that lasts cost 4 requests per attempt of
            # the runner's instead of one. Polls keep their retries (:meth:`polling`).
            "retry_total": 0,
        }

    def polling(self) -> ARMPolling:
        """How a long-running operation is polled: every ``lro_interval`` when Azure sends no
        usable Retry-After, each poll retried by azure-core as it does by default (3 times on a
        5xx or a lost connection). A poll is the one request the step runner cannot retry: a
        rerun of the step finds the registry it created but cannot take up the operation."""
        return ARMPolling(
            self.lro_interval, path_format_arguments={"endpoint": self.arm_url}, retry_total=10
        )

    @property
    def resources(self) -> ResourceManagementClient:
        """Resource groups."""
        client: ResourceManagementClient = self.clients["resources"]
        return client

    @property
    def acr(self) -> ContainerRegistryManagementClient:
        """Container registries."""
        client: ContainerRegistryManagementClient = self.clients["acr"]
        return client

    @property
    def authorization(self) -> AuthorizationManagementClient:
        """Role assignments."""
        client: AuthorizationManagementClient = self.clients["authorization"]
        return client

    def graph(self) -> GraphServiceClient:
        """The Graph client of the running event loop (msgraph-sdk's httpx client is per loop)."""
        loop = asyncio.get_running_loop()
        if self._graph is None or self._graph[0] is not loop:
            self._graph = (loop, graph_client(self.credential, self.graph_url, self.ca_file))
        return self._graph[1]

    @property
    def mark(self) -> str:
        """This deployment's mark (see :data:`MARK`)."""
        return f"{MARK} {self.record.deployment}"

    @property
    def tags(self) -> dict[str, str]:
        """The ARM tags of what this deployment creates: its origin, and its mark."""
        return TAGS | {MARK: self.record.deployment}

    async def application(self, object_id: str) -> GraphObject | None:
        """``GET /applications/{id}`` (None: no such application)."""
        return await graph.application(self, object_id)

    async def _checked_application(self, who: Identity, recorded: dict[str, Any]) -> None:
        if not recorded.get("id"):  # pending: found by name at deletion, and checked there
            return
        app = await self.application(str(recorded["id"]))
        problem = app and app_problem(self.mark, who, recorded, app)
        if app and problem:
            shown = {k: recorded.get(k) for k in ("display_name", "id", "app_id", "created")}
            raise not_ours(
                f"application {recorded.get('display_name')!r} ({problem})",
                f"{shown} with {self.mark}",
                live_app(app),
            )

    async def _checked_principal(self, who: Identity, recorded: dict[str, Any]) -> None:
        if not recorded.get("id"):
            return
        sp = await graph.service_principal_by_id(self, str(recorded["id"]))
        if sp is None:
            return
        app = self.record.created.get(who.kind("application"), {})
        mark = mark_of(sp)
        legacy = mark is None and not app.get("created")  # both made before marks
        if (
            sp.app_id != recorded.get("app_id")
            or sp.app_id != app.get("app_id")
            or sp.display_name != who.name
            or not (legacy or mark == self.mark)
        ):
            raise not_ours(
                f"service principal {recorded['id']}",
                f"{who.name!r} of appId {recorded.get('app_id')} with {self.mark}",
                f"{sp.display_name!r} of appId {sp.app_id}, {mark or 'no ' + MARK + ' mark'}",
            )

    def _checked_assignment(self, kind: str, recorded: dict[str, Any]) -> None:
        """The live role assignment is the recorded one, described with this deployment's mark;
        one from before marks (no description) must have the name this project derives from
        its scope, principal and role (``uuid5``), which no one else's has."""
        live = arm_if_present(self.authorization.role_assignments.get_by_id, recorded["id"])
        if live is None:
            return
        role = (live.role_definition_id or "").rsplit("/", 1)[-1].lower()
        derived = str(
            uuid.uuid5(ASSIGNMENT_NS, f"{(live.scope or '').lower()}|{live.principal_id}|{role}")
        )
        description = getattr(live, "description", None)
        principals = {
            self.record.created.get(k, {}).get("id")
            for k in ("service_principal", "pull_service_principal")
        }
        ok = (
            str(live.id).lower() == str(recorded["id"]).lower()
            and live.name == derived == recorded.get("name", derived)
            and (kind == "node_role_assignment" or live.principal_id in principals)
            and (description == self.mark or not description)
        )
        if not ok:
            raise not_ours(
                f"role assignment {recorded.get('name')}",
                f"{recorded['id']} described {self.mark!r}",
                f"{live.id} for principal {live.principal_id} described {description!r}",
            )

    def _checked_arm(self, what: str, recorded: dict[str, Any], live: Any) -> None:
        """A registry or resource group: its recorded name and id, this deployment's tag (or,
        recorded before marks, the ``created-by`` tag alone), its creation time if recorded."""
        tags = dict(getattr(live, "tags", None) or {})
        mark = tags.get(MARK)
        legacy = mark is None and tags.get("created-by") == TAGS["created-by"]
        created = recorded.get("created")
        ok = (
            str(live.name).lower() == str(recorded.get("name", "")).lower()
            and str(live.id).lower() == str(recorded.get("id", "")).lower()
            and (mark == self.record.deployment or (legacy and not created))
            and (not created or registry_created(live) == created)
        )
        if not ok:
            raise not_ours(
                what,
                f"{recorded.get('id')} tagged {MARK}={self.record.deployment}"
                + (f", created {created}" if created else ""),
                f"{live.id} tagged {MARK}={mark}"
                + (f", created {registry_created(live)}" if created else ""),
            )

    async def check_ours(self) -> None:
        """Before teardown deletes anything: every recorded thing that still lives is this
        deployment's (:meth:`_checked_application` and the others), else one line names the
        recorded and the live one, and nothing is deleted."""
        created = self.record.created
        for kind in ("pull_role_assignment", "node_role_assignment", "role_assignment"):
            if created.get(kind):
                self._checked_assignment(kind, created[kind])
        for who in (push_identity(self.params), pull_identity(self.params)):
            if created.get(who.kind("application")):
                await self._checked_application(who, created[who.kind("application")])
            if created.get(who.kind("service_principal")):
                await self._checked_principal(who, created[who.kind("service_principal")])
        if created.get("purge_task") and not created["purge_task"].get("pending"):
            self._check_task_ours(created["purge_task"])
        arm = {  # what each recorded ARM resource is called, and how it is read
            "registry": (
                "registry",
                lambda r: self.acr.registries.get(r["resource_group"], r["name"]),
            ),
            "resource_group": (
                "resource group",
                lambda r: self.resources.resource_groups.get(r["name"]),
            ),
        }
        for kind, (what, get) in arm.items():
            if created.get(kind):
                self._in_this_subscription(created[kind], f"the {what}")
                live = arm_if_present(get, created[kind])
                if live is not None:
                    self._checked_arm(f"{what} {created[kind].get('name')}", created[kind], live)

    # --- the contract: values, verification, rotation and teardown ----------------------
    def values(self) -> RegistryValues | None:
        """BinderHub's values: push as the service principal (appId and password).

        No ``token_url``: BinderHub appends ``service=container_registry`` to it,
        and ACR answers 400 to a ``service`` sent twice (jupyterhub/binderhub
        issue 1620), so BinderHub would rebuild at every launch. Without it
        BinderHub sends the appId and password as Basic credentials with the
        manifest request, which ACR accepts on its data plane (Azure/acr
        docs/AAD-OAuth.md).
        """
        if self.registry is None or self.principal is None or self.secret is None:
            return None
        p, login = self.params, self.registry.login_server
        return RegistryValues(
            image_prefix=f"{login}/{p.project}/{p.prefix}",
            username=self.principal.app_id,
            password=self.secret,
            registry_url=f"https://{login}",
            docker_registry={"url": f"https://{login}"},
        )

    # Overrides Connection.verify: Azure takes minutes to apply a new password or role, so after
    # a run that made one, a failed verification is retried for up to propagation_minutes.
    def verify(self, files: ValuesFiles | None) -> Result[VerificationReport | None]:
        """Verify as every notebook does, giving Azure time to apply a new password or role.

        Azure RBAC changes can take up to 10 minutes to reach the registry. After
        this run made a password or role assignment, a failed verification is
        retried, with its progress shown, for up to ``propagation_minutes``; when
        it still fails, the diagnosis says the change may still be propagating
        and that a rerun (which creates nothing new) verifies again.
        """
        if files is None or not self.fresh:
            return verify_step(files, self.ca_file, self.HINTS)
        started = time.monotonic()
        bound = self.params.propagation_minutes

        def waiting(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            waited = time.monotonic() - started
            what = exc.check if isinstance(exc, VerificationFailed) else "verification"
            progress(
                f"waiting for Azure to apply the new role and password: {what} failed, "
                f"retrying ({waited:.0f}s of up to {bound} min)"
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(self.propagation),
            wait=tenacity.wait_fixed(self.propagation_poll),
            retry=tenacity.retry_if_exception(lambda e: _may_be_propagating(self.params, e)),
            before_sleep=waiting,
            reraise=True,
        )
        try:
            return retrying(verify_step, files, self.ca_file, self.HINTS)
        except VerificationFailed as failed:
            waited = time.monotonic() - started
            note = (
                f"the role or password made by this run may still be propagating (Azure takes up "
                f"to 10 minutes; waited {waited:.0f}s, propagation_minutes = {bound}): rerun this "
                "notebook later, it creates nothing new and verifies again"
            )
            diagnosis = f"{failed.diagnosis}; {note}"
            if failed.report is not None and failed.report.checks:
                failed.report.checks[-1].detail = diagnosis
            raise VerificationFailed(failed.check, diagnosis, failed.report) from None

    async def retire(self, retiring: list[Any]) -> None:
        """Remove the passwords a rotation replaced (user pods' are tagged ``pull:``)."""
        for who, known in (
            (push_identity(self.params), self.principal),
            (pull_identity(self.params), self.pull_principal),
        ):
            tag = who.retire_tag
            mine = [
                str(k)[len(tag) :]
                for k in retiring
                if (str(k).startswith(tag) if tag else ":" not in str(k))
            ]
            if not mine:
                continue
            principal = known or await self._recorded_principal(who)
            if principal is not None:
                with map_exceptions(graph_errors()):
                    await graph.remove_passwords(self, principal.app_object_id, mine)

    async def _recorded_principal(self, who: Identity) -> Principal | None:
        """The application the passwords live on: recorded as created, else found by name."""
        app = self.record.created.get(who.kind("application"))
        if app and app.get("id"):
            return Principal(app["id"], app["app_id"], "", who.name)
        with map_exceptions(graph_errors()):
            apps = await graph.applications(self, who.name)
        if len(apps) == 1 and apps[0].id and apps[0].app_id:
            return Principal(apps[0].id, apps[0].app_id, "", who.name)
        return None

    def deletions(self) -> list[Deletion]:
        """The role assignments, passwords, service principals, applications, the purge task,
        the registry, the group.

        A registry's deletion is a long-running operation, polled to its end.
        """
        created = self.record.created
        group = created.get("resource_group", {}).get("name")
        push, pull = push_identity(self.params), pull_identity(self.params)
        return [
            Deletion("pull_role_assignment", "user pods' role assignment", self._unassign),
            Deletion("node_role_assignment", "the AKS kubelet's role assignment", self._unassign),
            Deletion("role_assignment", "the role assignment", self._unassign),
            Deletion(self.retiring, "the replaced passwords", self.retire),
            Deletion("pull_password", "user pods' password", lambda r: self._unpassword(pull, r)),
            Deletion("password", "the password", lambda r: self._unpassword(push, r)),
            Deletion(
                "pull_service_principal",
                "user pods' service principal",
                lambda r: self._drop_principal(pull, r),
            ),
            Deletion(
                "service_principal",
                "the service principal",
                lambda r: self._drop_principal(push, r),
            ),
            Deletion(
                "pull_application",
                "user pods' application",
                lambda r: self._drop_application(pull, r),
            ),
            Deletion("application", "the application", lambda r: self._drop_application(push, r)),
            # before the registry: on a reused registry the task is all teardown removes there
            Deletion("purge_task", "the purge task", self._drop_purge_task),
            Deletion(
                "registry",
                f"registry {created.get('registry', {}).get('name')}",
                self._drop_registry,
            ),
            Deletion("resource_group", f"resource group {group}", self._drop_group),
        ]

    def _check_task_ours(self, recorded: dict[str, Any]) -> None:
        """Before teardown: the recorded purge task, if it still lives, carries this
        deployment's mark."""
        live = arm_if_present(
            self.resources.resources.get_by_id, recorded["id"], api_version=TASKS_API_VERSION
        )
        if live is None:
            return
        mark = dict(live.tags or {}).get(MARK)
        if mark != self.record.deployment:
            raise CloudError(
                f"ACR Task {recorded.get('name')} is not this deployment's (recorded "
                f"{recorded['id']} tagged {MARK}={self.record.deployment}, found {MARK}={mark}): "
                "nothing deleted"
            )

    def delete_task(self, recorded: dict[str, Any]) -> None:
        """Delete the purge task ``recorded`` names (a 404: already gone)."""
        poller = arm_if_present(
            self.resources.resources.begin_delete_by_id,
            recorded["id"],
            api_version=TASKS_API_VERSION,
            polling=self.polling(),
        )
        if poller is not None:
            wait_for(self, poller, "deleting the purge task", "`az acr task list`")

    def _drop_purge_task(self, recorded: dict[str, Any]) -> None:
        """Teardown's deletion of the recorded purge task, checked to be ours first."""
        self._check_task_ours(recorded)
        self.delete_task(recorded)

    def storage_used(self) -> Usage | None:
        """``Registries_ListUsages``' ``Size`` against its limit, the storage the SKU includes
        (Basic 10 GiB, Standard 100 GiB, Premium 500 GiB: ACR service tiers page). Beyond it
        Azure bills extra storage per GiB and day rather than refusing pushes."""
        p, registry = self.params, self.registry
        if registry is None:
            return None
        usages = arm_if_present(self.acr.registries.list_usages, p.resource_group, p.acr_name)
        return size_usage(usages, registry.name)

    def _in_this_subscription(self, recorded: dict[str, Any], what: str) -> None:
        other = recorded["id"].split("/")[2]
        if other.lower() != self.subscription_id.lower():
            raise CloudError(
                f"{what} was created in another subscription ({other}): set subscription_id to it"
            )

    def _unassign(self, recorded: dict[str, Any]) -> None:
        with map_exceptions(AZURE_ERRORS):
            self.authorization.role_assignments.delete_by_id(recorded["id"])

    async def _unpassword(self, who: Identity, recorded: dict[str, Any]) -> None:
        await self.retire([who.retire_tag + recorded["key_id"]])

    async def _drop_principal(self, who: Identity, recorded: dict[str, Any]) -> None:
        with map_exceptions(graph_errors()):
            sp_id = recorded.get("id")
            if not sp_id:  # recorded pending: its answer was lost, find it by its appId
                found = await graph.service_principal(self, recorded["app_id"])
                sp_id = found.id if found else None
            if sp_id:
                await self.graph().service_principals.by_service_principal_id(sp_id).delete()

    async def _drop_application(self, who: Identity, recorded: dict[str, Any]) -> None:
        with map_exceptions(graph_errors()):
            app_id = recorded.get("id")
            if not app_id:  # recorded pending: its answer was lost, find it by name and mark
                apps = [
                    a for a in await graph.applications(self, who.name) if mark_of(a) == self.mark
                ]
                app_id = apps[0].id if len(apps) == 1 else None
            if app_id:
                await self.graph().applications.by_application_id(app_id).delete()

    def _drop_registry(self, recorded: dict[str, Any]) -> None:
        self._in_this_subscription(recorded, f"registry {recorded['name']}")
        with map_exceptions(AZURE_ERRORS):
            name, group = recorded["name"], recorded["resource_group"]
            wait_for(
                self,
                self.acr.registries.begin_delete(group, name, polling=self.polling()),
                f"deleting registry {name}",
                f"`az acr show --name {name} --resource-group {group}`; a rerun of teardown "
                "resumes",
            )

    def _drop_group(self, recorded: dict[str, Any]) -> None:
        self._in_this_subscription(recorded, f"resource group {recorded['name']}")
        with map_exceptions(AZURE_ERRORS):
            wait_for(
                self,
                self.resources.resource_groups.begin_delete(
                    recorded["name"], polling=self.polling()
                ),
                f"deleting resource group {recorded['name']}",
                f"`az group show --name {recorded['name']}`; a rerun of teardown resumes",
            )


def _may_be_propagating(p: Params, exc: BaseException) -> bool:
    """A failed verification a new role or password may explain; not an anonymous pull
    refused with ``pull_access = "none"`` (the registry is private: waiting heals nothing)."""
    if not isinstance(exc, VerificationFailed):
        return False
    return not (getattr(p, "pull_access", "") == "none" and exc.check == PULL_CHECK)


def size_usage(usages: Any, registry: str) -> Usage | None:
    """``Registries_ListUsages``' ``Size`` against its limit (None without a Size)."""
    for usage in (usages.value or []) if usages is not None else []:
        if str(usage.name) == "Size":
            return Usage(
                int(usage.current_value or 0),
                int(usage.limit) if usage.limit else None,
                f"registry {registry}'s Size (listUsages) against the storage its SKU "
                "includes; beyond it Azure bills the extra storage",
                full="beyond it each extra GiB is billed per day",
            )
    return None


def wait_for(conn: AzureConnection, poller: Any, what: str, check: str) -> Any:
    """A long-running operation's result, polled with its progress shown, within
    ``conn.lro_deadline``: past it, one line says what did not finish and what to check
    (an operation Azure never finishes is not waited for forever)."""
    started = time.monotonic()
    polls = 0
    while not poller.done():
        waited = time.monotonic() - started
        if waited >= conn.lro_deadline:
            raise CloudError(
                f"{what} did not finish in {waited:.0f}s (Azure still says {poller.status()} "
                f"after {polls} polls): check {check}"
            )
        poller.wait(timeout=min(max(conn.lro_interval, 1.0), conn.lro_deadline - waited))
        polls += 1
        progress(f"{what}: {poller.status()} after {time.monotonic() - started:.0f}s")
    return poller.result()


def registry_created(model: Any) -> str:
    """The registry's ``properties.creationDate``, ISO 8601 (what teardown compares)."""
    when = getattr(model.properties, "creation_date", None)
    return when.isoformat() if isinstance(when, dt.datetime) else str(when or "")


def sku_name(model: Any) -> str:
    """A registry's SKU name (``Basic``, ``Standard``, ``Premium``)."""
    name = getattr(model.sku, "name", "")
    return str(getattr(name, "value", name))  # an enum member, or already its string


def registry_info(model: Any) -> RegistryInfo:
    """What the steps keep of a registry ARM returned."""
    mode = getattr(model.properties, "role_assignment_mode", None) or LEGACY_MODE
    return RegistryInfo(
        id=str(model.id),
        name=str(model.name),
        login_server=str(model.properties.login_server),
        role_assignment_mode=str(getattr(mode, "value", mode)),
        anonymous_pull=bool(getattr(model.properties, "anonymous_pull_enabled", False)),
        location=str(model.location or ""),
    )


def _real_values(params: Any) -> RegistryValues:
    """The values of a real run with ``params`` (the docs' example)."""
    conn = AzureConnection.__new__(AzureConnection)
    conn.params, conn.secret = params, Secret("password")
    # what ARM and Graph return for a real registry and application: loginServer is the
    # registry name in lower case under azurecr.io; the appId is a GUID Graph assigns
    login = f"{params.acr_name.lower()}.azurecr.io"
    conn.registry = RegistryInfo(id="", name=params.acr_name, login_server=login)
    conn.principal = Principal(
        app_object_id="", app_id="APP_ID", sp_id="", display_name=params.sp_name
    )
    values = conn.values()
    assert values is not None
    return values


#: The docs' real-mode example of this notebook's values.
REAL_EXAMPLE = RealExample(
    overrides={"acr_name": "youracrname"},
    placeholders={"youracrname": "<ACR_NAME>", "APP_ID": "<APP_ID>"},
    build=_real_values,
)
