"""The Azure notebook's steps, in the guide's order: sign in, the subscription, the resource
group and the registry (Azure Resource Manager), BinderHub's application, service principal
and password (Microsoft Graph, as ``az ad sp create-for-rbac``), its role on the registry, and
user pods' pull credential.

Each step looks up, then plans its change (:meth:`~..contract.Connection.plan`: a dry run
stops there) and makes it, recording what it made before and after the call
(:meth:`~..contract.Connection.create`), so a rerun reuses it and teardown deletes only that.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, NoReturn

import tenacity
from azure.core.exceptions import ResourceExistsError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import Registry as RegistryModel
from azure.mgmt.containerregistry.models import RegistryProperties, Sku
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient

from ...binderhub import PullSecret
from ...errors import CloudError, InvalidParameter, PermissionDenied
from ...secrets import Secret
from ...steps import Result, progress
from ..contract import Record, creates
from . import graph
from .auth import secret_works, signed_in
from .connection import (
    AzureConnection,
    Principal,
    RegistryInfo,
    registry_created,
    registry_info,
    sku_name,
    wait_for,
)
from .errors import arm_if_present, arm_step, graph_step, is_principal_not_found, one_line
from .graph_sdk import GraphObject, send, warm_graph
from .ours import app_problem, app_record, live_app, mark_of, not_ours
from .params import (
    ABAC_MODE,
    ACR_NAMESPACE,
    ACR_PULL_ROLE,
    ACR_PUSH_ROLE,
    AKS_API_VERSION,
    ARM,
    ASSIGNMENT_NS,
    KEY,
    LEGACY_MODE,
    ROLE_NAMES,
    Identity,
    Params,
    pull_identity,
    push_identity,
)

if TYPE_CHECKING:
    from msgraph.generated.models.password_credential import PasswordCredential


@arm_step
def sign_in(p: Params) -> Result[AzureConnection]:
    """Sign in (guide step 1, ``az login``) and prove it with a token for Azure Resource Manager.

    Real Azure: DefaultAzureCredential (az login, environment variables, managed
    identity, ...), or a device code when ``device_code``. Sandbox: its seeded
    deploying service principal, with a real ClientSecretCredential.
    """
    warm_graph()  # the Graph steps come after the ARM ones: load msgraph-sdk meanwhile
    signed = signed_in(p)
    endpoints = signed.endpoints
    conn = AzureConnection(
        params=p,
        record=Record(p.output_dir, KEY),
        credential=signed.credential,
        tenant_id=signed.tenant_id,
        who=signed.who,
        ca_file=endpoints.get("ca_file"),
        arm_url=endpoints.get("arm", ARM),
        graph_url=endpoints.get("graph"),
        authority=endpoints.get("authority"),
        # the sandbox counts polls and attempts, not seconds (its Retry-After: 0 makes
        # azure-core fall back to this interval): no waiting there. Azure's ACR creation
        # takes tens of seconds, replication seconds to minutes.
        lro_interval=0.0 if p.sandbox else 5.0,
        replication_wait=0.0 if p.sandbox else 2.0,
        propagation=p.propagation_minutes * 60.0,
        propagation_poll=0.25 if p.sandbox else 15.0,
        # Azure: ACR creation takes tens of seconds, a resource group's deletion minutes
        lro_deadline=60.0 if p.sandbox else 1200.0,
    )
    where = "the sandbox's Entra ID" if p.sandbox else "Microsoft Entra ID"
    return Result(
        conn,
        "done",
        f"signed in to {where} as {signed.kind} {signed.who} (tenant {signed.tenant_id}) "
        f"with {signed.source}",
    )


@arm_step
def select_subscription(conn: AzureConnection) -> Result[str]:
    """Pick the subscription (guide step 2, ``az account set -s``); build the ARM clients.

    ``subscription_id`` when given, else the only one this sign-in sees; with
    several and none given, list them and stop.
    """
    p = conn.params
    subs = list(SubscriptionClient(conn.credential, **conn.arm_kwargs()).subscriptions.list())
    listing = ", ".join(f"{s.subscription_id} ({s.display_name})" for s in subs)
    if p.subscription_id:
        chosen = [s for s in subs if (s.subscription_id or "").lower() == p.subscription_id.lower()]
        if not chosen:
            raise InvalidParameter(
                "subscription_id",
                f"is not a subscription this sign-in can use; it sees: {listing or 'none'}",
                p.subscription_id,
            )
    elif len(subs) == 1:
        chosen = subs
    elif not subs:
        raise PermissionDenied(
            f"{conn.who} sees no Azure subscription: ask for Owner (or Contributor plus User "
            "Access Administrator) on one, or sign in as another identity"
        )
    else:
        raise InvalidParameter(
            "subscription_id",
            f"is needed: this sign-in sees {len(subs)} subscriptions: {listing}",
            p.subscription_id,
        )
    sub = chosen[0]
    conn.subscription_id, conn.subscription_name = str(sub.subscription_id), str(sub.display_name)
    kwargs = conn.arm_kwargs()
    conn.clients = {
        "resources": ResourceManagementClient(conn.credential, conn.subscription_id, **kwargs),
        "acr": ContainerRegistryManagementClient(conn.credential, conn.subscription_id, **kwargs),
        "authorization": AuthorizationManagementClient(
            conn.credential, conn.subscription_id, **kwargs
        ),
    }
    how = "as given" if p.subscription_id else "the only one this sign-in sees"
    return Result(
        conn.subscription_id, "done", f"{conn.subscription_name} ({conn.subscription_id}), {how}"
    )


# --- resource group and registry --------------------------------------------------------
@creates
@arm_step
def ensure_resource_group(conn: AzureConnection) -> Result[str | None]:
    """Create the resource group unless it exists (guide step 3, ``az group create``)."""
    p = conn.params
    group = arm_if_present(conn.resources.resource_groups.get, p.resource_group)
    if group is not None:
        where = f"in {group.location}"
        if group.location != p.location:
            where += f" (the registry still goes to {p.location})"
        return Result(group.id, "reused", f"resource group {group.name} {where}")
    _check_location(conn)  # a region without ACR stops the run before anything is created
    _check_name(conn)  # so does a registry name taken elsewhere
    group_id = f"/subscriptions/{conn.subscription_id}/resourceGroups/{p.resource_group}"
    group = conn.create(
        "resource_group",
        f"create resource group {p.resource_group} in {p.location}",
        lambda: conn.resources.resource_groups.create_or_update(
            p.resource_group, {"location": p.location, "tags": conn.tags}
        ),
        # a rerun after a lost answer finds the group, recorded as this deployment's
        pending={
            "subscription": conn.subscription_id,
            "name": p.resource_group,
            "id": group_id,
            "pending": True,
        },
        keep=lambda made: {"subscription": conn.subscription_id, "name": made.name, "id": made.id},
    )
    return Result(group.id, "created", f"resource group {group.name} in {group.location}")


def _location_name(location: str) -> str:
    """A location as ARM compares it: the display name ``"Italy North"`` is ``italynorth``
    (azure-cli's ``format_location``, which compares exactly these lists)."""
    return location.lower().replace(" ", "").replace("(", "").replace(")", "")


def _check_location(conn: AzureConnection) -> None:
    """Stop with one line when ARM does not offer registries in ``location`` to this subscription.

    Asked once per run, before anything is created: ``GET /subscriptions/{id}/providers/
    Microsoft.ContainerRegistry``, the ``locations`` of its ``registries`` type (display names;
    the list is the subscription's, as some regions are open on request only). An answer that
    lists no location leaves the check to the registry's creation.
    """
    p = conn.params
    if conn.location_checked:
        return
    provider = conn.resources.providers.get(ACR_NAMESPACE)
    offered = [
        _location_name(str(location))
        for kind in provider.resource_types or []
        if str(kind.resource_type or "").lower() == "registries"
        for location in kind.locations or []
    ]
    if offered and _location_name(p.location) not in offered:
        raise InvalidParameter(
            "location",
            f"must be a region where Azure offers Container Registry to this subscription; "
            f"ARM lists {len(offered)}: {', '.join(sorted(offered))}",
            p.location,
        )
    conn.location_checked = True


def _check_name(conn: AzureConnection) -> None:
    """Stop with a clear error when the registry name is taken (names are global in Azure).

    Once per run: the resource group's step checks before creating the group,
    the registry's step then needs no second answer.
    """
    p = conn.params
    if conn.name_available:
        return
    available = conn.acr.registries.check_name_availability(
        {"name": p.acr_name, "type": "Microsoft.ContainerRegistry/registries"}
    )
    if available.name_available:
        conn.name_available = True
        return
    if available.reason == "AlreadyExists":
        raise CloudError(
            f"registry name {p.acr_name!r} is taken: ACR names are unique across Azure and "
            f"another subscription (or another resource group) holds {p.acr_name.lower()}"
            ".azurecr.io; choose another acr_name"
        )
    raise InvalidParameter("acr_name", one_line(available.message), p.acr_name)


@creates
@arm_step
def ensure_registry(conn: AzureConnection) -> Result[RegistryInfo | None]:
    """Create the registry unless it exists (guide step 4: ``az acr check-name``, ``create``).

    The name is checked first (registry names are global across Azure); creation
    is a long-running operation, polled until the registry is ready. The admin
    user stays disabled: BinderHub signs in as its own service principal.
    """
    p = conn.params
    # None: no such registry, or no such resource group yet
    found = arm_if_present(conn.acr.registries.get, p.resource_group, p.acr_name)
    if found is not None:
        info = conn.registry = registry_info(found)
        admin = (
            "admin user ENABLED (not needed: consider disabling it)"
            if found.properties and found.properties.admin_user_enabled
            else "admin user disabled"
        )
        mode = (
            "ABAC mode: AcrPush is not honoured here, BinderHub gets Container Registry "
            "Repository Writer"
            if info.role_assignment_mode == ABAC_MODE
            else "legacy role assignment mode (AcrPush works)"
        )
        return Result(
            info,
            "reused",
            f"{info.name} ({sku_name(found)}), login server {info.login_server}, {admin}, {mode}",
        )
    _check_location(conn)
    _check_name(conn)
    recorded = {
        "resource_group": p.resource_group,
        "name": p.acr_name,
        "id": f"/subscriptions/{conn.subscription_id}/resourceGroups/{p.resource_group}"
        f"/providers/Microsoft.ContainerRegistry/registries/{p.acr_name}",
    }
    body = RegistryModel(
        location=p.location,
        sku=Sku(name=p.sku),
        tags=conn.tags,
        # explicitly legacy: in ABAC mode (Azure's future default) AcrPush grants nothing
        properties=RegistryProperties(admin_user_enabled=False, role_assignment_mode=LEGACY_MODE),
    )
    created = conn.create(
        "registry",
        f"create registry {p.acr_name} ({p.sku}) in {p.resource_group}, admin user disabled, "
        "legacy role assignment mode (the name is available)",
        lambda: wait_for(
            conn,
            conn.acr.registries.begin_create(
                p.resource_group, p.acr_name, body, polling=conn.polling()
            ),
            f"creating registry {p.acr_name}",
            f"its provisioning state in the portal or `az acr show --name {p.acr_name} "
            f"--resource-group {p.resource_group} --query provisioningState`; a rerun reuses it",
        ),
        # recorded before the call: a crash while it provisions, or a lost answer, still
        # leaves it this deployment's to tear down
        pending=recorded | {"pending": True},
        keep=lambda made: recorded | {"created": registry_created(made)},
    )
    info = conn.registry = registry_info(created)
    return Result(
        info,
        "created",
        f"{info.name} ({p.sku}), login server {info.login_server}, admin user disabled, legacy "
        "role assignment mode (AcrPush works)",
    )


# --- create-for-rbac: application, service principal, password ------------------------------
async def _mark_legacy_application(conn: AzureConnection, who: Identity, app: GraphObject) -> None:
    """An application this deployment recorded before marks existed: mark it (``PATCH``
    notes and tags, which Graph's application-update allows) and record its creation time."""
    from msgraph.generated.models.application import Application

    kind = who.kind("application")
    recorded = conn.record.created.get(kind, {})
    if mark_of(app) is not None or recorded.get("created"):
        return
    full = await conn.application(str(app.id))
    if full is None or app_problem(conn.mark, who, recorded, full):
        return
    item = conn.graph().applications.by_application_id(str(app.id))
    await item.patch(Application(notes=conn.mark, tags=[*(full.tags or []), conn.mark]))
    conn.note(kind, app_record(full, who))


async def _ensure_principal(
    conn: AzureConnection, who: Identity, then: str = ""
) -> tuple[Principal, str, list[str]]:
    """The application and service principal named ``who.name``: found, or created.

    Returns the principal, what it is, and what was made; a dry run stops at the first
    creation (its plan ends with ``then``, what the step would do next). Each is recorded
    "pending" before its creation, so a run stopped before its answer is recorded still owns
    it: a rerun that finds it records it (reruns find by name and appId, and never make a
    second one).
    """
    from msgraph.generated.models.application import Application
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.service_principal import ServicePrincipal

    p = conn.params
    app_kind, sp_kind = who.kind("application"), who.kind("service_principal")
    recorded = conn.record.created.get(app_kind, {})
    apps = await graph.applications(conn, who.name)
    if len(apps) > 1:
        apps = [a for a in apps if a.id == recorded.get("id")] or apps
        if len(apps) > 1:
            raise CloudError(
                f"{len(apps)} applications are named {who.name!r} in this tenant: choose another "
                "sp_name, or delete the extras in Microsoft Entra ID > App registrations"
            )
    made: list[str] = []
    app: GraphObject | None = apps[0] if apps else None
    if app is None:
        builder = conn.graph().applications
        new_app = Application(display_name=who.name, notes=conn.mark, tags=[conn.mark])
        pending = {"pending": True, "display_name": who.name}
        app = await conn.create_async(
            app_kind,
            f"create application and service principal {who.name!r}{then}",
            lambda: send(builder, builder.to_post_request_information(new_app), GraphObject),
            pending=pending,
            keep=lambda made: app_record(made, who) if made else pending,
        )
        conn.new_application = True
        made.append("application")
    assert app is not None and app.id and app.app_id
    if conn.record.created.get(app_kind, {}).get("pending"):  # a run stopped before recording it
        if mark_of(app) != conn.mark:
            raise not_ours(
                f"application {who.name!r}", f"made by this deployment, {conn.mark}", live_app(app)
            )
        conn.note(app_kind, app_record(app, who))
    ours = conn.record.created.get(app_kind, {}).get("id") == app.id
    if ours and not p.dry_run:  # a dry run reads on: an old record's mark waits for a real run
        await _mark_legacy_application(conn, who, app)
    sp = await graph.service_principal(conn, app.app_id)
    if sp is None:
        conn.plan(f"create the service principal of {who.name!r}{then}")
        if ours:
            conn.note(sp_kind, {"pending": True, "app_id": app.app_id})
        principals = conn.graph().service_principals
        new_sp = ServicePrincipal(app_id=app.app_id, notes=conn.mark, tags=[conn.mark])
        try:
            sp = await graph.while_replicating(
                conn,
                "its service principal waits",
                lambda: send(
                    principals, principals.to_post_request_information(new_sp), GraphObject
                ),
            )
        except ODataError as e:
            if e.response_status_code not in (400, 409):
                raise
            sp = await graph.service_principal(conn, app.app_id)  # made by a lost earlier attempt
            if sp is None:
                raise
        made.append("service principal")
    assert sp is not None and sp.id
    if ours and not conn.record.created.get(sp_kind, {}).get("id"):
        # the principal of an application we created is ours too, even if its answer was lost
        conn.note(sp_kind, {"id": sp.id, "app_id": app.app_id})
    principal = Principal(app.id, app.app_id, sp.id, who.name)
    what = f"application {who.name!r} (appId {app.app_id}), service principal {sp.id}"
    return principal, what, made


@creates
@graph_step
async def ensure_service_principal(conn: AzureConnection) -> Result[Principal | None]:
    """The application and service principal named ``sp_name``: found, or created.

    The first half of ``az ad sp create-for-rbac --name``, through Microsoft
    Graph. A service principal whose creation answer was lost is found again
    (Graph answers 400 or 409 to a duplicate), so reruns never make a second one.
    """
    principal, what, made = await _ensure_principal(conn, push_identity(conn.params))
    conn.principal = principal
    if made:
        return Result(principal, "created", f"{what}: created the {' and '.join(made)}")
    return Result(principal, "reused", what)


def _day(when: dt.datetime | None) -> str:
    return when.strftime("%Y-%m-%d") if when else "never"


def _password_record(made: PasswordCredential | None) -> dict[str, str]:
    """What is recorded of a new password: its key id and its expiry day (never its secret)."""
    assert made is not None and made.key_id
    return {"key_id": str(made.key_id), "end": _day(made.end_date_time)}


def _held(
    mine: list[PasswordCredential], stored: Secret | None, now: dt.datetime
) -> list[PasswordCredential]:
    """The unexpired passwords ``stored`` may be, told by Graph's ``hint`` (each password's
    first three characters): any password of the application signs in, so only the hint
    tells which one secret.yaml holds. An expired one is left out: nothing pushes with it."""
    if stored is None:
        return []
    hint = stored.reveal()[:3]
    return [
        c for c in mine if c.hint == hint and (c.end_date_time is None or c.end_date_time > now)
    ]


def _record_stored_password(
    conn: AzureConnection,
    who: Identity,
    mine: list[PasswordCredential],
    current: PasswordCredential,
    stored: Secret,
    now: dt.datetime,
) -> PasswordCredential:
    """The password ``secret.yaml`` holds, made the recorded one and never left retiring.

    A stopped rotation can leave the stored secret older than the recorded password (made,
    then the run stopped before writing it) and listed as retiring: removing it would stop
    the deployed BinderHub. Any password of the application signs in, so which one is stored
    is told by Graph's ``hint``, the first three characters of each password
    (learn.microsoft.com/graph/api/resources/passwordcredential). Every password the stored
    secret can be leaves the retiring list; when exactly one can, and it is not the recorded
    one, it becomes the recorded password, and the recorded one (whose secret nobody holds)
    is retired instead. A dry run changes the record in memory only (``Connection.note``).
    """
    held = _held(mine, stored, now) or [current]
    in_use = {who.retire_tag + str(c.key_id) for c in held}
    retiring = list(conn.record.created.get(conn.retiring, []))
    keep = [k for k in retiring if k not in in_use]
    if len(held) == 1 and held[0] is not current:
        if who.retire_tag + str(current.key_id) not in keep:
            keep.append(who.retire_tag + str(current.key_id))
        conn.note(conn.retiring, keep)  # first: a crash in between forgets neither
        conn.note(who.kind("password"), _password_record(held[0]))
        return held[0]
    if keep != retiring:
        conn.note(conn.retiring, keep)
    return current


async def _ensure_password(
    conn: AzureConnection, who: Identity, principal: Principal, stored: Secret | None
) -> Result[Secret]:
    """``who``'s password on its application: reused while ``stored`` works, else added.

    See :func:`ensure_password`; the pull identity's is the same, with its own record kind
    and its replaced passwords tagged in the retiring list.
    """
    from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
        AddPasswordPostRequestBody,
    )
    from msgraph.generated.models.password_credential import PasswordCredential

    p = conn.params
    days = p.secret_expiry_days
    listed = await graph.passwords(conn, principal.app_object_id)
    mine = [c for c in listed if c.display_name == who.label]
    recorded = conn.record.created.get(who.kind("password"), {}).get("key_id")
    current = next((c for c in mine if str(c.key_id) == recorded), None)
    now = dt.datetime.now(dt.UTC)
    working = (
        current is not None
        and stored is not None
        and (current.end_date_time is None or current.end_date_time > now)
        and secret_works(conn.authority, conn.ca_file, conn.tenant_id, principal.app_id, stored)
    )
    if working and not p.rotate:
        assert current is not None and stored is not None
        kept = _record_stored_password(conn, who, mine, current, stored, now)
        return Result(
            stored,
            "reused",
            f"password {who.label!r}, expires {_day(kept.end_date_time)}; the stored "
            "secret still works",
        )
    held = _held(mine, stored, now) or ([current] if working and current is not None else [])
    # what secret.yaml holds may be deployed: removed only after the new one verifies
    conn.retire_later(*(who.retire_tag + str(c.key_id) for c in held))
    retiring = list(conn.record.created.get(conn.retiring, []))
    stale = [str(c.key_id) for c in mine if who.retire_tag + str(c.key_id) not in retiring]
    extra = f", then remove {len(stale)} whose secret was lost" if stale else ""
    what = "add a new password (rotate)" if working else "add a password"
    end = now + dt.timedelta(days=days)
    body = AddPasswordPostRequestBody(
        password_credential=PasswordCredential(display_name=who.label, end_date_time=end)
    )
    item = conn.graph().applications.by_application_id(principal.app_object_id)
    created = await conn.create_async(
        who.kind("password"),
        f"{what} valid for {days} days{extra}",
        lambda: item.add_password.post(body),
        keep=_password_record,
    )
    assert created is not None and created.secret_text
    conn.fresh = True
    removed = await graph.remove_passwords(conn, principal.app_object_id, stale)
    detail = (
        f"password {who.label!r}, expires {_day(created.end_date_time)} (in {days} days); "
        "shown once, kept only in secret.yaml"
    )
    if working:
        detail += "; the old password is removed once this one verifies"
    if removed:
        detail += f"; removed {removed} whose secret was lost"
    return Result(Secret(created.secret_text), "created", detail)


@creates
@graph_step
async def ensure_password(conn: AzureConnection) -> Result[Secret]:
    """BinderHub's password on the application: reused while the stored one works, else added.

    The second half of ``az ad sp create-for-rbac``: the password is shown once,
    at creation, and kept only in ``secret.yaml``. Passwords with this notebook's
    label whose secret was lost are removed once the new one exists. With
    ``rotate`` a new password is added even if the stored one works; the old one
    is removed by ``finish_rotation`` after the new one verifies. The password the stored
    secret is (by Graph's hint) is never one whose secret was lost: it is retired, as the
    one the deployed BinderHub may use; the retiring list is saved before the new password
    is added, so a run stopped in between forgets none.
    """
    p = conn.params
    principal = conn.principal or _planned_earlier(
        conn, f"add a password valid for {p.secret_expiry_days} days"
    )
    stored = conn.stored_password(principal.app_id)
    result = await _ensure_password(conn, push_identity(p), principal, stored)
    conn.secret = result.value
    return result


# --- role assignment ---------------------------------------------------------------------
def _planned_earlier(conn: AzureConnection, would: str) -> NoReturn:
    """A step whose input an earlier step only planned (a dry run): plan ``would`` too.

    In a real run the earlier step made it or stopped the run: reaching here means the
    notebook's cells ran out of order.
    """
    conn.plan(would)
    raise CloudError(f"cannot {would}: run the notebook's earlier steps first (Run All)")


def _role_assignment(conn: AzureConnection, scope: str, sp_id: str, role: str) -> str | None:
    """The id of the principal's assignment of ``role`` at exactly ``scope``, if any."""
    for a in conn.authorization.role_assignments.list_for_scope(
        scope, filter=f"principalId eq '{sp_id}'"
    ):
        defined = (a.role_definition_id or "").lower()
        if defined.endswith(role) and (a.scope or "").lower() == scope.lower():
            return str(a.id)
    return None


def _assign(
    conn: AzureConnection,
    kind: str,
    scope: str,
    principal_id: str,
    role: str,
    label: str,
    condition: str | None = None,
    then: str = "",
) -> Result[str]:
    """``role`` at ``scope`` for ``principal_id`` (a service principal), recorded as ``kind``.

    An existing assignment is reused. A new service principal takes a while to reach Azure
    Resource Manager, which answers PrincipalNotFound meanwhile: retried (the az CLI does
    the same), with ``principal_type`` set as Azure advises. The assignment's name is
    derived from what it grants and recorded "pending" before it is made, so a rerun after a
    lost answer PUTs the same one and teardown still finds it.
    """
    recorded = conn.record.created.get(kind, {})
    existing = _role_assignment(conn, scope, principal_id, role)
    name = str(uuid.uuid5(ASSIGNMENT_NS, f"{scope.lower()}|{principal_id}|{role}"))
    if existing:
        if recorded.get("pending") and existing.lower().endswith(name):
            conn.note(kind, {"id": existing, "scope": scope, "name": name})
        return Result(existing, "reused", label)
    role_definition = (
        f"/subscriptions/{conn.subscription_id}/providers/Microsoft.Authorization/"
        f"roleDefinitions/{role}"
    )
    parameters = RoleAssignmentCreateParameters(
        role_definition_id=role_definition,
        principal_id=principal_id,
        principal_type="ServicePrincipal",
        condition=condition,
        condition_version="2.0" if condition else None,
        description=conn.mark,
    )
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(36),
        wait=tenacity.wait_exponential(multiplier=conn.replication_wait, max=10),
        retry=tenacity.retry_if_exception(is_principal_not_found),
        reraise=True,
    )
    attempts = 0

    def attempt() -> Any:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            progress(f"the new service principal is replicating (attempt {attempts})")
        return conn.authorization.role_assignments.create(scope, name, parameters)

    def create() -> str:
        try:
            return str(retrying(attempt).id)
        # RoleAssignmentExists: made by an attempt whose answer was lost
        except ResourceExistsError:
            found = _role_assignment(conn, scope, principal_id, role)
            if found is None:
                raise
            return found

    pending = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    assignment_id = conn.create(
        kind,
        f"assign {label}{then}",
        create,
        pending={"id": pending, "scope": scope, "name": name, "pending": True},
        keep=lambda made: {"id": made, "scope": scope, "name": name},
    )
    conn.fresh = True
    waited = f" (after {attempts} attempts: the new service principal was replicating)"
    return Result(assignment_id, "created", f"{label}{waited if attempts > 1 else ''}")


@creates
@arm_step
def ensure_role_assignment(conn: AzureConnection) -> Result[str]:
    """The push role for the service principal on the registry alone (``--role AcrPush --scopes``).

    AcrPush, or on a registry in ABAC mode (where AcrPush is not honoured)
    Container Registry Repository Writer (see :func:`_assign`).
    """
    p, principal, registry = conn.params, conn.principal, conn.registry
    if principal is None or registry is None:
        _planned_earlier(conn, f"assign AcrPush on registry {p.acr_name} only")
    push_role = registry.push_role
    label = f"{ROLE_NAMES[push_role]} on registry {registry.name} only"
    if push_role != ACR_PUSH_ROLE:
        label += " (the registry is in ABAC mode, where AcrPush is not honoured)"
    return _assign(conn, "role_assignment", registry.id, principal.sp_id, push_role, label)


# --- user pods' pull ----------------------------------------------------------------------
def _pull_grant(registry: RegistryInfo, project: str) -> tuple[str, str | None, str]:
    """The pull role for ``registry``, its ABAC condition (None in legacy mode), in words.

    Legacy mode: AcrPull, pull on every repository (the registry's role assignments cannot
    name repositories). ABAC mode: Container Registry Repository Reader, limited by the
    condition Microsoft's "ABAC repository permissions" page gives for a repository prefix
    to the ``<project>/`` repositories (its trailing ``/`` keeps ``<project>-other/`` out).
    """
    role = registry.pull_role
    if role == ACR_PULL_ROLE:
        return role, None, f"AcrPull on registry {registry.name} only (pull, nothing else)"
    prefix = project + "/"
    condition = (
        "((!(ActionMatches{'Microsoft.ContainerRegistry/registries/repositories/content/read'})"
        " AND !(ActionMatches{'Microsoft.ContainerRegistry/registries/repositories/metadata/"
        "read'})) OR (@Request[Microsoft.ContainerRegistry/registries/repositories:name] "
        f"StringStartsWithIgnoreCase '{prefix}'))"
    )
    words = (
        f"Container Registry Repository Reader on registry {registry.name}, limited to the "
        f"{prefix} repositories (ABAC mode, where AcrPull is not honoured)"
    )
    return role, condition, words


@creates
@graph_step
async def ensure_pull_credential(conn: AzureConnection) -> Result[Any]:
    """What user pods' kubelet pulls with (``pull_access``), made and recorded like the push side.

    ``"secret"``: a second application and service principal (``<sp_name>-pull``) with a
    password and only the pull role on the registry (:func:`_pull_grant`), written to
    ``secret.yaml`` as ``jupyterhub.imagePullSecret``. ``"node"``: the pull role for the AKS
    cluster's kubelet identity, as ``az aks update --attach-acr`` does. ``"none"``: nothing.
    """
    p = conn.params
    if p.pull_access == "none":
        return _no_pull_credential(conn)
    if p.pull_access == "node":
        return _node_pull(conn)
    who = pull_identity(p)
    then = f", a password and the pull role on registry {p.acr_name}, for user pods"
    principal, what, made = await _ensure_principal(conn, who, then)
    registry = conn.registry or _planned_earlier(conn, f"give {what}{then[1:]}")
    conn.pull_principal = principal
    stored = conn.stored_pull_password(principal.app_id)
    password = await _ensure_password(conn, who, principal, stored)
    role, condition, words = _pull_grant(registry, p.project)
    assigned = _assign(
        conn, who.kind("role_assignment"), registry.id, principal.sp_id, role, words, condition
    )
    steps = [f"{what}" + (f": created the {' and '.join(made)}" if made else ""), password.detail]
    steps.append(assigned.detail)
    conn.pull_secret = PullSecret(registry.login_server, principal.app_id, password.value)
    statuses = {password.status, assigned.status, "created" if made else "reused"}
    status = "created" if "created" in statuses else "reused"
    return Result(conn.pull_secret, status, "; ".join(steps))


def _no_pull_credential(conn: AzureConnection) -> Result[None]:
    """``pull_access = "none"``: nothing made; whether user pods can pull at all, said plainly.

    ACR is private: anonymous pull exists only on Standard and Premium registries with
    ``anonymousPullEnabled`` (doc page "Make your registry available for anonymous pull
    access"; RegistryProperties in azure-rest-api-specs), which this notebook never turns on.
    """
    registry, name = conn.registry, conn.params.acr_name
    if registry is not None and registry.anonymous_pull:
        return Result(
            None,
            "skipped",
            f"no pull credential: anonymous pull is enabled on registry {registry.name}, so user "
            "pods pull without one (every repository in it is public; Azure may throttle "
            "unauthenticated pulls)",
        )
    return Result(
        None,
        "skipped",
        f"no pull credential, and registry {name} refuses anonymous pulls: user pods cannot pull "
        "from it. ACR allows anonymous pull only on Standard or Premium registries with "
        f"anonymousPullEnabled (`az acr update --name {name} --anonymous-pull-enabled true`, "
        "which makes every repository public), which this notebook does not turn on; use "
        'pull_access = "secret" (or "node" on AKS)',
    )


def _node_pull(conn: AzureConnection) -> Result[str | None]:
    """``pull_access = "node"``: the pull role for the AKS cluster's kubelet identity.

    What ``az aks update --attach-acr`` does (azure-cli ``acs/managed_cluster_decorator.py``:
    the kubelet identity's objectId, from the managed cluster's
    ``identityProfile.kubeletidentity``, gets AcrPull on the registry). The cluster is read
    with the generic ``resources.get_by_id`` and the containerservice api-version, so
    azure-mgmt-containerservice (tens of API versions, megabytes of generated models) is not
    needed for one field. On an ABAC registry AcrPull is not honoured: Repository Reader on
    the ``<project>/`` repositories instead. The nodes' pull cannot be checked from here.
    """
    p, registry = conn.params, conn.registry
    check = (
        f"az aks check-acr --name {p.aks_cluster} --resource-group {p.resource_group} "
        f"--acr {p.acr_name.lower()}.azurecr.io"
    )
    then = f"; then check it on the cluster: {check}"
    registry = registry or _planned_earlier(
        conn,
        f"assign the pull role on registry {p.acr_name} to AKS cluster {p.aks_cluster}'s "
        f"kubelet identity{then}",
    )
    cluster_id = (
        f"/subscriptions/{conn.subscription_id}/resourceGroups/{p.resource_group}/providers/"
        f"Microsoft.ContainerService/managedClusters/{p.aks_cluster}"
    )
    cluster = arm_if_present(
        conn.resources.resources.get_by_id, cluster_id, api_version=AKS_API_VERSION
    )
    if cluster is None:
        raise CloudError(
            f"no AKS cluster {p.aks_cluster!r} in resource group {p.resource_group}: the "
            'cluster must be in the registry\'s resource group; or use pull_access = "secret"'
        )
    properties = cluster.properties if isinstance(cluster.properties, dict) else {}
    kubelet = (properties.get("identityProfile") or {}).get("kubeletidentity") or {}
    object_id = kubelet.get("objectId")
    if not object_id:
        raise CloudError(
            f"AKS cluster {p.aks_cluster!r} has no kubelet managed identity (it runs as a "
            'service principal): use pull_access = "secret", or `az aks update '
            f"--attach-acr {p.acr_name}` for its service principal"
        )
    role, condition, words = _pull_grant(registry, p.project)
    words += f", for AKS cluster {p.aks_cluster}'s kubelet identity {object_id}"
    assigned = _assign(
        conn, "node_role_assignment", registry.id, object_id, role, words, condition, then
    )
    where = "rehearsed in the sandbox; on Azure " if p.sandbox else ""
    note = (
        f"; user pods' pull cannot be verified from here: {where}check it on the cluster with "
        f"`{check}`"
    )
    return Result(assigned.value, assigned.status, assigned.detail + note)
