"""Azure Container Registry (guide section 2.3): a service principal with AcrPush for BinderHub,
and a pull-only one for user pods.

What the guide does with ``az``, done with the official SDKs (the optional
``azure`` extra): azure-identity signs in, azure-mgmt-resource picks the
subscription and the resource group, azure-mgmt-containerregistry creates the
registry, msgraph-sdk does what ``az ad sp create-for-rbac`` does (application,
service principal, password), and azure-mgmt-authorization grants AcrPush on
the registry alone.

What real Azure does that the steps allow for (each modelled by the sandbox,
with its source in ``sandbox/azure``): BinderHub gets no ``token_url`` (it
would send ``service`` twice, which ACR refuses) and signs in with Basic
credentials, which ACR accepts; a new application can be missing from Graph
for a few seconds and a new service principal from ARM (both retried); a
registry in ABAC mode ignores AcrPush (the registry is created in legacy mode,
a reused ABAC one gets Container Registry Repository Writer); a new role can
take up to 10 minutes to apply (verification waits up to ``propagation_minutes``);
registries exist in the regions ARM lists for ``Microsoft.ContainerRegistry``
(asked before anything is created, so a region without ACR stops the run first).

User pods (``pull_access``). The kubelet never sees BinderHub's ``registry.*``, and ACR is
private, so by default (``"secret"``) a second service principal, ``<sp_name>-pull``, gets a
password and the pull role alone, and goes to ``jupyterhub.imagePullSecret``. Least privilege
as ACR allows it: AcrPull (pull, nothing else) on the registry alone in legacy mode, where role
assignments cannot name repositories; on an ABAC registry, where AcrPull is not honoured,
Container Registry Repository Reader with a condition limiting it to the ``<project>/``
repositories (Microsoft's "ABAC repository permissions" page). Chosen over an ACR
repository-scoped token (a scope map plus a token with its own two passwords; in every tier
now, the docs' "available in all the service tiers", Premium-only while in preview): a token is
not an Entra identity, so it would need a second set of SDK calls, passwords limited to two
slots (a ``keep_replaced`` rotation could not keep more than one), and its own fakes, where a
principal reuses every step, record kind and rotation rule of the push side. ``"node"``: the
same role for an AKS cluster's kubelet identity, as ``az aks update --attach-acr`` does; it
cannot be verified from here, and the step prints the ``az aks check-acr`` that checks it.
``"none"``: nothing; ACR pulls anonymously only on Standard and Premium registries with
``anonymousPullEnabled``, which this notebook never turns on (it would make every repository
public), and the step says so.

Microsoft Graph's SDK is async only: the Graph steps are coroutine functions,
run with ``await run.astep(...)`` in the notebook (one Graph client per event
loop). Everything this module creates is recorded in ``output_dir`` so reruns
reuse it and teardown deletes only that.

Speed (a sandbox run is mostly loading code): msgraph-sdk is loaded in a
background thread while the ARM steps run, and Graph's answers are read into
a four-field model of ours rather than msgraph-sdk's ``Application``, whose
base class loads ~1,200 generated modules on first use (see ``_GraphObject``).
Each token is asked for once (``_KeptTokens``: ``az login``'s
credential caches nothing), the ARM clients share one HTTP session, the
registry name is checked once; in the sandbox, which counts polls and
attempts rather than seconds, long-running operations and replication
retries do not sleep.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import importlib.util
import json
import logging
import os
import re
import ssl
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity

from .. import sandbox as sandbox_mod
from ..binderhub import PullSecret, RegistryValues, ValuesFiles
from ..errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    InvalidParameter,
    MissingCredentials,
    PermissionDenied,
    SandboxError,
    TransientCloudError,
    Translator,
    VerificationFailed,
    error_for_status,
    map_exceptions,
    retry_after,
)
from ..params import choice, flag, integer, text
from ..pull import PULL_CHECK
from ..secrets import Secret
from ..steps import Result, progress
from ..verify import VerificationReport, VerifyHints, verify_step
from .contract import (
    COMMON_PARAMETERS,
    CommonParams,
    Connection,
    Deletion,
    RealExample,
    Record,
    creates,
    validator,
)

try:  # the optional extra: say how to get it rather than fail on an import line
    from azure.core.credentials import AccessToken, TokenCredential
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.core.pipeline.transport import RequestsTransport
    from azure.identity import (
        ClientSecretCredential,
        CredentialUnavailableError,
        DefaultAzureCredential,
        DeviceCodeCredential,
    )
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient
    from azure.mgmt.containerregistry.models import Registry as RegistryModel
    from azure.mgmt.containerregistry.models import RegistryProperties, Sku
    from azure.mgmt.resource.resources import ResourceManagementClient
    from azure.mgmt.resource.subscriptions import SubscriptionClient
    from kiota_abstractions.serialization import Parsable, ParseNode, SerializationWriter

    # msgraph-sdk is loaded when the Graph steps need it (see _load_graph_sdk); only check here
    # that it is installed, so a missing extra is said before the first step
    for _name in ("msgraph", "msgraph_core", "kiota_http", "kiota_authentication_azure", "httpx"):
        if importlib.util.find_spec(_name) is None:
            raise ModuleNotFoundError(f"No module named {_name!r}", name=_name)
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"{e.name} is missing: the Azure notebook needs the azure extra: "
        "pip install 'binderhub-registry[azure]'"
    ) from e

if TYPE_CHECKING:
    from msgraph.generated.models.password_credential import PasswordCredential
    from msgraph.graph_service_client import GraphServiceClient

# msgraph-sdk and kiota warn as they load about their own deprecated classes: not ours to fix.
# A filter rather than catch_warnings(), which is not thread-safe: they load in a background thread
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(msgraph|kiota_\w+)\.")

__all__ = [
    "ACR_PULL_ROLE",
    "ACR_PUSH_ROLE",
    "KEY",
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "REAL_EXAMPLE",
    "REPOSITORY_READER_ROLE",
    "REPOSITORY_WRITER_ROLE",
    "SANDBOX_SECRET_VARIABLE",
    "AzureConnection",
    "Params",
    "Principal",
    "RegistryInfo",
    "ensure_password",
    "ensure_pull_credential",
    "ensure_registry",
    "ensure_resource_group",
    "ensure_role_assignment",
    "ensure_service_principal",
    "select_subscription",
    "sign_in",
    "validate",
]

KEY = "azure"
NAME = "Azure Container Registry"
NOTEBOOK = "03-azure-container-registry"
#: The environment variables sign-in reads for real (never parameters); shown by the form
SECRET_ENVIRONMENT = (
    ("AZURE_TENANT_ID", "with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET; else az login"),
    ("AZURE_CLIENT_ID", "a service principal's application id"),
    ("AZURE_CLIENT_SECRET", "its secret"),
)
ARM = "https://management.azure.com"
ARM_SCOPE = ARM + "/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
#: AcrPush: pull and push, nothing else (no delete, no control plane); the same id in every tenant.
ACR_PUSH_ROLE = "8311e382-0749-4cb8-b61a-304f252e45ec"
#: Container Registry Repository Writer: what pushes on a registry in ABAC mode, where AcrPush
#: is not honoured (learn.microsoft.com, container-registry-rbac-abac-repository-permissions).
REPOSITORY_WRITER_ROLE = "2a1e307c-b015-4ebd-883e-5b7698a07328"
#: AcrPull: pull only (what ``az aks update --attach-acr`` grants the kubelet identity).
ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
#: Container Registry Repository Reader: what pulls on a registry in ABAC mode.
REPOSITORY_READER_ROLE = "b93aa761-3e63-49ed-ac28-beffa264f7ac"
ROLE_NAMES = {
    ACR_PUSH_ROLE: "AcrPush",
    REPOSITORY_WRITER_ROLE: "Container Registry Repository Writer",
    ACR_PULL_ROLE: "AcrPull",
    REPOSITORY_READER_ROLE: "Container Registry Repository Reader",
}
#: The api-version the managed cluster is read with (ManagedClusters_Get, a stable version).
AKS_API_VERSION = "2024-05-01"
#: The resource provider whose answer lists the regions registries can be created in.
ACR_NAMESPACE = "Microsoft.ContainerRegistry"
LEGACY_MODE = "LegacyRegistryPermissions"
ABAC_MODE = "AbacRepositoryPermissions"
#: A sandbox-only secret for the seeded deployer: how a wrong secret is rehearsed (never real).
SANDBOX_SECRET_VARIABLE = "BINDERHUB_REGISTRY_SANDBOX_AZURE_SECRET"
#: Tags on what this notebook creates in Azure, so a person browsing the portal knows its origin.
TAGS = {"created-by": "binderhub-registry"}
#: The word of this deployment's mark, ``binderhub-registry <deployment id>``: in an
#: application's ``notes`` and ``tags``, a service principal's ``notes`` and ``tags`` (Graph's
#: application and servicePrincipal resources), a role assignment's ``description``
#: (RoleAssignmentProperties), and as a tag key with the id as value on the registry and the
#: resource group (ARM tags). Teardown deletes only what carries it (see ``check_ours``).
MARK = "binderhub-registry"
_NS = uuid.UUID("0d4c3f0e-2b8e-4a53-9d3e-5c1f6a7b8e90")  # role assignment names: uuid5(scope, ...)
T = TypeVar("T")

PARAMETERS = (
    text("acr_name", r"[A-Za-z0-9]{5,50}", "must be 5 to 50 letters or digits (unique in Azure)"),
    # ARM also takes any Unicode letter (Char.IsLetterOrDigit: "Naming rules and restrictions
    # for Azure resources"); this notebook takes ASCII only, so that the group is the one
    # people read and type (a Cyrillic 'е' looks like 'e' and names another group)
    text(
        "resource_group",
        r"[A-Za-z0-9_.()-]{0,89}[A-Za-z0-9_()-]",
        "must be 1 to 90 ASCII letters, digits, '_', '-', '.', '(' or ')', not ending in '.' "
        "(Azure takes other letters too, but a look-alike such as a Cyrillic 'е' names another "
        "group than the one people read and type in reruns, teardown and az commands)",
        max_length=90,
    ),
    text(
        "location",
        r"[a-z][a-z0-9]{2,39}",
        "must be an Azure region name such as westeurope: lowercase letters and digits, "
        "no spaces (az account list-locations -o table)",
    ),
    choice("sku", ("Basic", "Standard", "Premium")),
    text(
        "sp_name",
        r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}",
        "must be 1 to 120 letters, digits, '.', '_' or '-', starting with a letter or digit",
        max_length=120,
    ),
    text(
        "project",
        r"[a-z0-9]+(?:[.-][a-z0-9]+)*",
        # no '_': BinderHub turns '_' into '-' in image names (builder.py), another repository
        "must be lowercase letters and digits with single '.' or '-' separators, at most 64 "
        "characters, no '/' and no '_' (BinderHub turns '_' into '-' in image names)",
        max_length=64,
    ),
    text(
        "subscription_id",
        r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}",
        "must be a subscription id, a GUID such as 00000000-0000-0000-0000-000000000000 "
        "(az account list -o table)",
        optional=True,
    ),
    integer("secret_expiry_days", 1, 730),
    integer("propagation_minutes", 0, 60),
    flag("device_code"),
    # "" when missing: parameters cells from before it still run as they did
    replace(
        text(
            "aks_cluster",
            r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?",
            "must be an AKS cluster name in resource_group: 1 to 63 letters, digits, '_' or '-', "
            'starting and ending with a letter or digit (needed with pull_access = "node")',
            optional=True,
            max_length=63,
        ),
        default="",
        required=False,
    ),
    *COMMON_PARAMETERS,
)


@dataclass(frozen=True)
class Params(CommonParams):
    """Validated parameters of the Azure Container Registry notebook."""

    acr_name: str
    resource_group: str
    location: str
    sku: str
    sp_name: str
    project: str
    subscription_id: str
    secret_expiry_days: int
    propagation_minutes: int
    device_code: bool
    aks_cluster: str

    PULL_NODE = (
        "AcrPull on the registry (Container Registry Repository Reader on an ABAC registry) "
        "for the AKS cluster's kubelet identity, as az aks update --attach-acr does"
    )

    @property
    def password_label(self) -> str:
        """The display name of BinderHub's password on the application: it finds it again."""
        return f"BinderHub push to {self.acr_name}"

    @property
    def pull_sp_name(self) -> str:
        """The display name of user pods' application and service principal."""
        return f"{self.sp_name}-pull"

    @property
    def pull_password_label(self) -> str:
        """The display name of user pods' password on their application."""
        return f"BinderHub user pods pull from {self.acr_name}"


def _aks_cluster_with_node(p: Params) -> None:
    """``aks_cluster`` names the cluster ``"node"`` grants, and is read by nothing else."""
    if p.pull_access == "node" and not p.aks_cluster:
        raise InvalidParameter(
            "aks_cluster",
            'is needed with pull_access = "node": the AKS cluster (in resource_group) whose '
            "kubelet identity gets the pull role",
            "",
        )
    if p.aks_cluster and p.pull_access != "node":
        raise InvalidParameter(
            "aks_cluster",
            f'is read only with pull_access = "node" (it is {p.pull_access!r}): leave it empty',
            p.aks_cluster,
        )


validate = validator(Params, PARAMETERS, _aks_cluster_with_node)


# --- errors --------------------------------------------------------------------------
def _one_line(text: object) -> str:
    return " ".join(str(text or "").split())


def _azure_message(exc: HttpResponseError) -> tuple[str, str]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or exc.reason or "error"
    message = getattr(error, "message", None) or exc.message
    return str(code), _one_line(str(message).split("\nCode:")[0])


_WHO_ARM = (
    "the signed-in identity needs Owner (or Contributor plus User Access Administrator) on "
    "the subscription or the resource group"
)
_WHO_GRAPH = (
    "creating applications needs the Application Developer role (a person) or "
    "Application.ReadWrite.OwnedBy (a service principal) in Microsoft Entra ID"
)


_WHO_ASSIGNS = (
    "only Owner, User Access Administrator or RBAC Administrator may assign roles: ask one "
    "for such a role, or to rerun this notebook"
)


def _client_of(message: str) -> str:
    """``"The client 'x' "`` from an AuthorizationFailed message, or nothing."""
    client = re.search(r"The client '([^']+)'", message)
    return f"the signed-in identity {client.group(1)} " if client else ""


def _from_arm(exc: Exception) -> BinderHubRegistryError:
    assert isinstance(exc, HttpResponseError)
    code, message = _azure_message(exc)
    if exc.status_code == 403:
        assigning = "Microsoft.Authorization/roleAssignments/write" in message
        # Azure's text names the client, the action and the scope: keep the action and the
        # scope's last part, so what to do still fits in the one line
        refused = re.search(r"perform action '([^']+)' over scope '([^']+)'", message)
        if refused:
            where = "/".join(refused.group(2).rstrip("/").split("/")[-2:])
            message = f"{_client_of(message)}may not do {refused.group(1)} on {where}"
        message += ": " + (_WHO_ASSIGNS if assigning else _WHO_ARM)
    elif code == "MissingSubscriptionRegistration":
        namespace = message.split("'")[1] if message.count("'") >= 2 else "the namespace"
        message += f": register it once with `az provider register --namespace {namespace}`"
    headers = getattr(exc.response, "headers", None) or {}
    return error_for_status(
        "Azure",
        exc.status_code or 0,
        f"({code}) {message}",
        retry_after=retry_after(headers.get("Retry-After")),
    )


def _from_graph(exc: Exception) -> BinderHubRegistryError:
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    assert isinstance(exc, ODataError)
    code = (exc.error.code if exc.error else None) or "error"
    message = _one_line((exc.error.message if exc.error else None) or exc.message)
    status = exc.response_status_code or 0
    if status == 403:
        message += ": " + _WHO_GRAPH
    elif code == "CredentialInvalidLifetimeAsPerAppPolicy":
        message = (
            "the tenant's app management policy refuses a password valid that long: set "
            "secret_expiry_days to at most the policy's limit (ask your Microsoft Entra ID "
            "administrator for it) and rerun"
        )
    headers = exc.response_headers or {}
    return error_for_status(
        "Microsoft Graph",
        status,
        f"({code}) {message}",
        retry_after=retry_after(headers.get("Retry-After") or headers.get("retry-after")),
    )


#: Azure Resource Manager's and Entra ID's errors (azure-core), mapped to the package's (first
#: matching class wins); :func:`_graph_errors` adds Microsoft Graph's.
_AZURE_ERRORS: dict[type[Exception], Translator] = {
    ClientAuthenticationError: lambda e: AuthenticationFailed(
        f"Azure refused the credential: {_one_line(getattr(e, 'message', e))}"
    ),
    HttpResponseError: _from_arm,
    ServiceRequestError: lambda e: TransientCloudError(
        f"cannot reach Azure: {_one_line(getattr(e, 'message', e))}"
    ),
    ServiceResponseError: lambda e: TransientCloudError(
        f"cannot reach Azure: {_one_line(getattr(e, 'message', e))}"
    ),
}


class _RegistrationProgress(logging.Handler):
    """azure-mgmt-core's resource provider registration, shown as the step's progress.

    On a fresh subscription ARM answers 409 MissingSubscriptionRegistration;
    azure-mgmt-core then registers the namespace itself and polls every 10 s,
    saying so only in a log warning: relay it, so the wait is visible.
    """

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "not registered" in text:
            text += " (a fresh subscription: Azure takes a minute or two)"
        progress(_one_line(text))


@contextlib.contextmanager
def _registration_progress() -> Iterator[None]:
    logger = logging.getLogger("azure.mgmt.core.policies._base")
    handler = _RegistrationProgress(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _step(fn: Callable[..., Result[T]]) -> Callable[..., Result[T]]:
    """A step whose SDK errors become the package's (one line, saying what to do)."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Result[T]:
        with map_exceptions(_AZURE_ERRORS), _registration_progress():
            return fn(*args, **kwargs)

    return run


def _astep(fn: Callable[..., Awaitable[Result[T]]]) -> Callable[..., Awaitable[Result[T]]]:
    """:func:`_step` for the coroutine (Microsoft Graph) steps."""

    @wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Result[T]:
        with map_exceptions(_graph_errors()):
            return await fn(*args, **kwargs)

    return run


# --- Microsoft Graph: msgraph-sdk, loaded while the ARM steps run ----------------------------
_graph_loading: threading.Thread | None = None


def _load_graph_sdk() -> None:
    """Import what the Graph steps use of msgraph-sdk, kiota and httpx (idempotent).

    About 270 modules (httpx and httpcore with h2 are half the time): 0.1 s
    with cached bytecode, 0.3 to 0.45 s without. Not what
    ``msgraph.generated.models.entity``'s field deserialisers load: see
    :class:`_GraphObject`.
    """
    import httpcore  # noqa: F401  (httpx imports it when its first client is made)
    import httpx  # noqa: F401
    from kiota_abstractions.base_request_configuration import RequestConfiguration  # noqa: F401
    from kiota_authentication_azure.azure_identity_authentication_provider import (  # noqa: F401
        AzureIdentityAuthenticationProvider,
    )
    from msgraph.generated.applications.applications_request_builder import (  # noqa: F401
        ApplicationsRequestBuilder,
    )
    from msgraph.generated.applications.item.add_password.add_password_post_request_body import (  # noqa: F401
        AddPasswordPostRequestBody,
    )
    from msgraph.generated.applications.item.application_item_request_builder import (  # noqa: F401
        ApplicationItemRequestBuilder,
    )
    from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (  # noqa: E501, F401
        RemovePasswordPostRequestBody,
    )
    from msgraph.generated.models.application import Application  # noqa: F401
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.password_credential import PasswordCredential
    from msgraph.generated.models.service_principal import ServicePrincipal  # noqa: F401
    from msgraph.generated.service_principals.service_principals_request_builder import (  # noqa: F401
        ServicePrincipalsRequestBuilder,
    )
    from msgraph.graph_request_adapter import GraphRequestAdapter  # noqa: F401
    from msgraph.graph_service_client import GraphServiceClient  # noqa: F401
    from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]  # noqa: F401

    # what the first answers deserialise: an error's parts, a password
    ODataError().get_field_deserializers()
    PasswordCredential().get_field_deserializers()


def _warm_graph() -> None:
    """Start loading msgraph-sdk in a background thread, once, while the ARM steps wait.

    The ARM steps before the Graph ones spend most of their time waiting for
    Azure, and the kernel idles between cells: the loading fits there. It only
    imports, and never fails a run: any error is left for the Graph step,
    which waits for this thread before loading anything itself (no module is
    imported by two threads at once).
    """
    global _graph_loading
    if _graph_loading is not None:
        return

    def load() -> None:
        with contextlib.suppress(Exception):  # the Graph step meets it, and says what to do
            _load_graph_sdk()

    _graph_loading = threading.Thread(target=load, name="msgraph-sdk-warm-up", daemon=True)
    _graph_loading.start()


def _graph_sdk() -> None:
    """msgraph-sdk loaded: by the warm-up thread (waited for), else here."""
    if _graph_loading is not None:
        _graph_loading.join()
    try:
        _load_graph_sdk()
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            f"{e.name} is missing: the Azure notebook needs the azure extra: "
            "pip install 'binderhub-registry[azure]'"
        ) from e


_GRAPH_ERRORS: dict[type[Exception], Translator] = {}


def _graph_errors() -> dict[type[Exception], Translator]:
    """:data:`_AZURE_ERRORS` and Microsoft Graph's (msgraph-sdk's and httpx's), loading them."""
    if not _GRAPH_ERRORS:
        _graph_sdk()
        import httpx
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        _GRAPH_ERRORS.update(_AZURE_ERRORS)
        _GRAPH_ERRORS[ODataError] = _from_graph
        _GRAPH_ERRORS[httpx.TransportError] = lambda e: TransientCloudError(
            f"cannot reach Microsoft Graph ({type(e).__name__})"
        )
    return _GRAPH_ERRORS


@dataclass
class _GraphObject(Parsable):
    """An application or a service principal, as the steps read it: four fields.

    msgraph-sdk's ``Application`` and ``ServicePrincipal`` derive from
    ``Entity``, whose field deserialisers import all of Graph's ~1,200 entity
    types to read ``id`` and ``@odata.type``: 1.1 s with cached bytecode, 1.7 s
    without, the largest cost of a sandbox run, for each process. So Graph's
    answers are read into this kiota model instead (kiota's own ``Parsable``
    interface, through the SDK's request adapter); requests are built by the
    SDK's request builders from its own models, as before.
    """

    id: str | None = None
    app_id: str | None = None
    display_name: str | None = None
    password_credentials: list[PasswordCredential] | None = None
    notes: str | None = None  # this deployment's mark (application, service principal)
    tags: list[str] | None = None  # likewise
    created: str | None = None  # createdDateTime (applications), as Graph writes it

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> _GraphObject:
        """kiota's factory: a new, empty object to read into."""
        return _GraphObject()

    def get_field_deserializers(self) -> dict[str, Callable[[ParseNode], None]]:
        """The fields read; Graph's others are skipped."""
        from msgraph.generated.models.password_credential import PasswordCredential

        def credentials(n: ParseNode) -> None:
            self.password_credentials = n.get_collection_of_object_values(PasswordCredential)

        return {
            "id": lambda n: setattr(self, "id", n.get_str_value()),
            "appId": lambda n: setattr(self, "app_id", n.get_str_value()),
            "displayName": lambda n: setattr(self, "display_name", n.get_str_value()),
            "passwordCredentials": credentials,
            "notes": lambda n: setattr(self, "notes", n.get_str_value()),
            "tags": lambda n: setattr(self, "tags", n.get_collection_of_primitive_values(str)),
            "createdDateTime": lambda n: setattr(self, "created", n.get_str_value()),
        }

    def serialize(self, writer: SerializationWriter) -> None:
        """Write the fields read (kiota's interface; the steps send the SDK's models)."""
        writer.write_str_value("id", self.id)
        writer.write_str_value("appId", self.app_id)
        writer.write_str_value("displayName", self.display_name)
        writer.write_collection_of_object_values("passwordCredentials", self.password_credentials)
        writer.write_str_value("notes", self.notes)
        writer.write_collection_of_primitive_values("tags", self.tags)
        writer.write_str_value("createdDateTime", self.created)


@dataclass
class _GraphPage(Parsable):
    """A page of a Graph collection of :class:`_GraphObject` (``value``)."""

    value: list[_GraphObject] | None = None

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> _GraphPage:
        """kiota's factory: a new, empty page to read into."""
        return _GraphPage()

    def get_field_deserializers(self) -> dict[str, Callable[[ParseNode], None]]:
        """The one field read."""

        def value(n: ParseNode) -> None:
            self.value = n.get_collection_of_object_values(_GraphObject)

        return {"value": value}

    def serialize(self, writer: SerializationWriter) -> None:
        """Write ``value`` (kiota's interface)."""
        writer.write_collection_of_object_values("value", self.value)


P = TypeVar("P", bound=Parsable)


async def _send(builder: Any, info: Any, model: type[P]) -> P | None:
    """Send a request a builder made, reading the answer as ``model``: the builder's own call.

    Exactly what the SDK's ``get()`` and ``post()`` do (the request adapter,
    with Graph's errors as ODataError), with the model read being ours.
    """
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    answer: P | None = await builder.request_adapter.send_async(info, model, {"XXX": ODataError})
    return answer


# --- connection --------------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryInfo:
    """The registry BinderHub pushes to."""

    id: str
    name: str
    login_server: str
    role_assignment_mode: str = LEGACY_MODE
    anonymous_pull: bool = False  # anonymousPullEnabled (Standard and Premium only)

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
    #: step stops with one line saying what did not finish (:func:`_finish`)
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
        }

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
        if self._graph is not None and self._graph[0] is loop:
            return self._graph[1]
        _graph_sdk()
        import httpx
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core import GraphClientFactory

        if self.graph_url is None:
            client = GraphServiceClient(credentials=self.credential, scopes=[GRAPH_SCOPE])
        else:
            verify = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
            http = GraphClientFactory.create_with_default_middleware(
                client=httpx.AsyncClient(verify=verify, trust_env=False, timeout=60)
            )
            auth = AzureIdentityAuthenticationProvider(self.credential, scopes=[GRAPH_SCOPE])
            adapter = GraphRequestAdapter(auth, http)
            adapter.base_url = self.graph_url
            client = GraphServiceClient(request_adapter=adapter)
        self._graph = (loop, client)
        return client

    @property
    def mark(self) -> str:
        """This deployment's mark (see :data:`MARK`)."""
        return f"{MARK} {self.record.deployment}"

    @property
    def tags(self) -> dict[str, str]:
        """The ARM tags of what this deployment creates: its origin, and its mark."""
        return TAGS | {MARK: self.record.deployment}

    async def application(self, object_id: str) -> _GraphObject | None:
        """``GET /applications/{id}`` (None: no such application)."""
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        item = self.graph().applications.by_application_id(object_id)
        try:
            return await _send(item, item.to_get_request_information(), _GraphObject)
        except ODataError as e:
            if e.response_status_code == 404:
                return None
            raise

    async def _checked_application(self, who: _Identity, recorded: dict[str, Any]) -> None:
        if not recorded.get("id"):  # pending: found by name at deletion, and checked there
            return
        with map_exceptions(_graph_errors()):
            app = await self.application(str(recorded["id"]))
        if app is None:
            return
        problem = _app_problem(self, who, recorded, app)
        if problem:
            shown = {k: recorded.get(k) for k in ("display_name", "id", "app_id", "created")}
            raise _not_ours(
                f"application {recorded.get('display_name')!r} ({problem})",
                f"{shown} with {self.mark}",
                _live_app(app),
            )

    async def _checked_principal(self, who: _Identity, recorded: dict[str, Any]) -> None:
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        if not recorded.get("id"):
            return
        item = self.graph().service_principals.by_service_principal_id(str(recorded["id"]))
        with map_exceptions(_graph_errors()):
            try:
                sp = await _send(item, item.to_get_request_information(), _GraphObject)
            except ODataError as e:
                if e.response_status_code == 404:
                    return
                raise
        if sp is None:
            return
        app = self.record.created.get(who.kind("application"), {})
        mark = _mark_of(sp)
        legacy = mark is None and not app.get("created")  # both made before marks
        if (
            sp.app_id != recorded.get("app_id")
            or sp.app_id != app.get("app_id")
            or sp.display_name != who.name
            or not (legacy or mark == self.mark)
        ):
            raise _not_ours(
                f"service principal {recorded['id']}",
                f"{who.name!r} of appId {recorded.get('app_id')} with {self.mark}",
                f"{sp.display_name!r} of appId {sp.app_id}, {mark or 'no ' + MARK + ' mark'}",
            )

    def _checked_assignment(self, kind: str, recorded: dict[str, Any]) -> None:
        """The live role assignment is the recorded one, described with this deployment's mark;
        one from before marks (no description) must have the name this project derives from
        its scope, principal and role (``uuid5``), which no one else's has."""
        with map_exceptions(_AZURE_ERRORS):
            try:
                live = self.authorization.role_assignments.get_by_id(recorded["id"])
            except ResourceNotFoundError:
                return
        role = (live.role_definition_id or "").rsplit("/", 1)[-1].lower()
        derived = str(uuid.uuid5(_NS, f"{(live.scope or '').lower()}|{live.principal_id}|{role}"))
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
            raise _not_ours(
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
            and (not created or _registry_created(live) == created)
        )
        if not ok:
            raise _not_ours(
                what,
                f"{recorded.get('id')} tagged {MARK}={self.record.deployment}"
                + (f", created {created}" if created else ""),
                f"{live.id} tagged {MARK}={mark}"
                + (f", created {_registry_created(live)}" if created else ""),
            )

    def _live_registry(self, recorded: dict[str, Any]) -> Any:
        with map_exceptions(_AZURE_ERRORS):
            try:
                return self.acr.registries.get(recorded["resource_group"], recorded["name"])
            except ResourceNotFoundError:
                return None

    def _live_group(self, recorded: dict[str, Any]) -> Any:
        with map_exceptions(_AZURE_ERRORS):
            try:
                return self.resources.resource_groups.get(recorded["name"])
            except ResourceNotFoundError:
                return None

    async def check_ours(self) -> None:
        """Before teardown deletes anything: every recorded thing that still lives is this
        deployment's (:meth:`_checked_application` and the others), else one line names the
        recorded and the live one, and nothing is deleted."""
        created = self.record.created
        for kind in ("pull_role_assignment", "node_role_assignment", "role_assignment"):
            if created.get(kind):
                self._checked_assignment(kind, created[kind])
        for who in (_push_identity(self.params), _pull_identity(self.params)):
            if created.get(who.kind("application")):
                await self._checked_application(who, created[who.kind("application")])
            if created.get(who.kind("service_principal")):
                await self._checked_principal(who, created[who.kind("service_principal")])
        if created.get("registry"):
            self._in_this_subscription(created["registry"], "the registry")
            live = self._live_registry(created["registry"])
            if live is not None:
                self._checked_arm(
                    f"registry {created['registry'].get('name')}", created["registry"], live
                )
        if created.get("resource_group"):
            self._in_this_subscription(created["resource_group"], "the resource group")
            live = self._live_group(created["resource_group"])
            if live is not None:
                self._checked_arm(
                    f"resource group {created['resource_group'].get('name')}",
                    created["resource_group"],
                    live,
                )

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
            (_push_identity(self.params), self.principal),
            (_pull_identity(self.params), self.pull_principal),
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
                with map_exceptions(_graph_errors()):
                    await _remove_passwords(self, principal, mine)

    async def _recorded_principal(self, who: _Identity) -> Principal | None:
        """The application the passwords live on: recorded as created, else found by name."""
        app = self.record.created.get(who.kind("application"))
        if app and app.get("id"):
            return Principal(app["id"], app["app_id"], "", who.name)
        with map_exceptions(_graph_errors()):
            apps = await _applications(self, who.name)
        if len(apps) == 1 and apps[0].id and apps[0].app_id:
            return Principal(apps[0].id, apps[0].app_id, "", who.name)
        return None

    def deletions(self) -> list[Deletion]:
        """The role assignment, passwords, service principal, application, registry, group.

        A registry's deletion is a long-running operation, polled to its end.
        """
        created = self.record.created
        group = created.get("resource_group", {}).get("name")
        push, pull = _push_identity(self.params), _pull_identity(self.params)
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
            Deletion(
                "registry",
                f"registry {created.get('registry', {}).get('name')}",
                self._drop_registry,
            ),
            Deletion("resource_group", f"resource group {group}", self._drop_group),
        ]

    def _in_this_subscription(self, recorded: dict[str, Any], what: str) -> None:
        other = recorded["id"].split("/")[2]
        if other.lower() != self.subscription_id.lower():
            raise CloudError(
                f"{what} was created in another subscription ({other}): set subscription_id to it"
            )

    def _unassign(self, recorded: dict[str, Any]) -> None:
        with map_exceptions(_AZURE_ERRORS):
            self.authorization.role_assignments.delete_by_id(recorded["id"])

    async def _unpassword(self, who: _Identity, recorded: dict[str, Any]) -> None:
        await self.retire([who.retire_tag + recorded["key_id"]])

    async def _drop_principal(self, who: _Identity, recorded: dict[str, Any]) -> None:
        with map_exceptions(_graph_errors()):
            sp_id = recorded.get("id")
            if not sp_id:  # recorded pending: its answer was lost, find it by its appId
                found = await _service_principal(self, recorded["app_id"])
                sp_id = found.id if found else None
            if sp_id:
                await self.graph().service_principals.by_service_principal_id(sp_id).delete()

    async def _drop_application(self, who: _Identity, recorded: dict[str, Any]) -> None:
        with map_exceptions(_graph_errors()):
            app_id = recorded.get("id")
            if not app_id:  # recorded pending: its answer was lost, find it by name and mark
                apps = [a for a in await _applications(self, who.name) if _mark_of(a) == self.mark]
                app_id = apps[0].id if len(apps) == 1 else None
            if app_id:
                await self.graph().applications.by_application_id(app_id).delete()

    def _drop_registry(self, recorded: dict[str, Any]) -> None:
        self._in_this_subscription(recorded, f"registry {recorded['name']}")
        with map_exceptions(_AZURE_ERRORS):
            name, group = recorded["name"], recorded["resource_group"]
            _finish(
                self,
                self.acr.registries.begin_delete(group, name),
                f"deleting registry {name}",
                f"`az acr show --name {name} --resource-group {group}`; a rerun of teardown "
                "resumes",
            )

    def _drop_group(self, recorded: dict[str, Any]) -> None:
        self._in_this_subscription(recorded, f"resource group {recorded['name']}")
        with map_exceptions(_AZURE_ERRORS):
            _finish(
                self,
                self.resources.resource_groups.begin_delete(recorded["name"]),
                f"deleting resource group {recorded['name']}",
                f"`az group show --name {recorded['name']}`; a rerun of teardown resumes",
            )


def _may_be_propagating(p: Params, exc: BaseException) -> bool:
    """A failed verification a new role or password may explain; not an anonymous pull
    refused with ``pull_access = "none"`` (the registry is private: waiting heals nothing)."""
    if not isinstance(exc, VerificationFailed):
        return False
    return not (getattr(p, "pull_access", "") == "none" and exc.check == PULL_CHECK)


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT access token, unverified (only to say who signed in)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _attempts(message: str) -> str:
    """DefaultAzureCredential's multi-line report as one line: each credential, first sentence."""
    tried = []
    for line in message.splitlines():
        if line.startswith("\t") and ":" in line:
            name, _, why = line.strip().partition(":")
            tried.append(f"{name} ({_one_line(why).split('. ')[0].rstrip('.')})")
    return "; ".join(tried) or _one_line(message)


_SIGN_IN_HOW = (
    "run `az login` and rerun, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, "
    "or run where a managed identity is assigned; or set device_code = True to sign in with a "
    "code in a browser"
)


class _KeptTokens:
    """A credential that keeps the tokens it got until five minutes before they expire.

    Every ARM client's authentication policy asks the credential for its own
    token, and msgraph-sdk's (kiota's) asks at every request. MSAL-based
    credentials answer from their cache; ``az login``'s (AzureCliCredential,
    which DefaultAzureCredential picks after ``az login``) caches nothing and
    runs ``az account get-access-token`` each time, about a second: a dozen
    times in a run. A request with ``claims`` (a Continuous Access Evaluation
    challenge) or other options always goes to the credential.
    """

    def __init__(self, credential: TokenCredential) -> None:
        self.credential = credential
        self._tokens: dict[tuple[Any, ...], AccessToken] = {}

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """The kept token for these scopes, tenant and CAE choice, else the credential's."""
        if claims or kwargs:
            return self.credential.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )
        key = (scopes, tenant_id, enable_cae)
        token = self._tokens.get(key)
        if token is None or token.expires_on - 300 < time.time():
            token = self._tokens[key] = self.credential.get_token(
                *scopes, tenant_id=tenant_id, enable_cae=enable_cae
            )
        return token


def _sandbox_credential(p: Params) -> tuple[TokenCredential, dict[str, str], str]:
    box = sandbox_mod.ensure()
    try:
        seeded = box.credentials("azure")
    except KeyError:
        raise SandboxError(
            f"the sandbox running in {box.directory} has no Azure yet (it predates it): "
            "restart it with `binderhub-registry sandbox stop`, then rerun"
        ) from None
    secret, source = seeded["client_secret"], "the sandbox's seeded secret"
    # never a real credential in sandbox mode: only this sandbox-only variable overrides the
    # seeded secret (how a wrong secret is rehearsed); AZURE_CLIENT_SECRET is not read
    if os.environ.get(SANDBOX_SECRET_VARIABLE):
        secret, source = os.environ[SANDBOX_SECRET_VARIABLE], SANDBOX_SECRET_VARIABLE
    credential = ClientSecretCredential(
        seeded["tenant_id"],
        seeded["client_id"],
        secret,
        authority=f"{box.url}/azure/login",
        disable_instance_discovery=True,
        connection_verify=box.ca_file,
    )
    endpoints = {
        "arm": f"{box.url}/azure/management",
        "graph": f"{box.url}/azure/graph/v1.0",
        "authority": f"{box.url}/azure/login",
        "ca_file": box.ca_file,
    }
    return credential, endpoints, source


@_step
def sign_in(p: Params) -> Result[AzureConnection]:
    """Sign in (guide step 1, ``az login``) and prove it with a token for Azure Resource Manager.

    Real Azure: DefaultAzureCredential (az login, environment variables, managed
    identity, ...), or a device code when ``device_code``. Sandbox: its seeded
    deploying service principal, with a real ClientSecretCredential.
    """
    _warm_graph()  # the Graph steps come after the ARM ones: load msgraph-sdk meanwhile
    source: str
    endpoints: dict[str, str] = {}
    credential: TokenCredential
    if p.sandbox:
        credential, endpoints, source = _sandbox_credential(p)
        if p.device_code:  # the sandbox has no browser sign-in to rehearse
            source += " (device_code applies to real Azure only)"
    elif p.device_code:
        tenant = os.environ.get("AZURE_TENANT_ID") or "organizations"
        credential = DeviceCodeCredential(tenant_id=tenant, timeout=600)
        source = "a device code"
    else:
        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        source = "DefaultAzureCredential"
    credential = _KeptTokens(credential)
    try:
        token = credential.get_token(ARM_SCOPE)
    except CredentialUnavailableError as e:
        raise MissingCredentials(
            f"no Azure sign-in worked (tried {_attempts(e.message)})", _SIGN_IN_HOW
        ) from None
    except ClientAuthenticationError as e:
        message = _one_line(e.message)
        if p.sandbox or "AADSTS" in message:  # a credential was there, and was refused
            raise AuthenticationFailed(
                f"Microsoft Entra ID refused the sign-in with {source}: "
                f"{message.split('Trace ID')[0].strip()}"
            ) from None
        raise MissingCredentials(
            f"no Azure sign-in worked (tried {_attempts(e.message)})", _SIGN_IN_HOW
        ) from None
    claims = _claims(token.token)
    tenant_id = str(claims.get("tid", ""))
    who = str(
        claims.get("upn") or claims.get("unique_name") or claims.get("appid") or "an identity"
    )
    kind = "service principal" if "appid" in claims and "upn" not in claims else "user"
    conn = AzureConnection(
        params=p,
        record=Record(p.output_dir, KEY),
        credential=credential,
        tenant_id=tenant_id,
        who=who,
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
        conn, "done", f"signed in to {where} as {kind} {who} (tenant {tenant_id}) with {source}"
    )


@_step
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
@_step
def ensure_resource_group(conn: AzureConnection) -> Result[str | None]:
    """Create the resource group unless it exists (guide step 3, ``az group create``)."""
    p = conn.params
    try:
        group = conn.resources.resource_groups.get(p.resource_group)
    except ResourceNotFoundError:
        group = None
    if group is not None:
        where = f"in {group.location}"
        if group.location != p.location:
            where += f" (the registry still goes to {p.location})"
        return Result(group.id, "reused", f"resource group {group.name} {where}")
    _check_location(conn)  # a region without ACR stops the run before anything is created
    _check_name(conn)  # so does a registry name taken elsewhere
    if p.dry_run:
        return Result(
            None, "planned", f"would create resource group {p.resource_group} in {p.location}"
        )
    group = conn.resources.resource_groups.create_or_update(
        p.resource_group, {"location": p.location, "tags": conn.tags}
    )
    conn.record.set(
        "resource_group",
        {"subscription": conn.subscription_id, "name": group.name, "id": group.id},
    )
    return Result(group.id, "created", f"resource group {group.name} in {group.location}")


def _finish(conn: AzureConnection, poller: Any, what: str, check: str) -> Any:
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


def _registry_created(model: Any) -> str:
    """The registry's ``properties.creationDate``, ISO 8601 (what teardown compares)."""
    when = getattr(model.properties, "creation_date", None)
    return when.isoformat() if isinstance(when, dt.datetime) else str(when or "")


def _sku(model: Any) -> str:
    name = getattr(model.sku, "name", "")
    return str(getattr(name, "value", name))  # an enum member, or already its string


def _registry_info(model: Any) -> RegistryInfo:
    mode = getattr(model.properties, "role_assignment_mode", None) or LEGACY_MODE
    return RegistryInfo(
        id=str(model.id),
        name=str(model.name),
        login_server=str(model.properties.login_server),
        role_assignment_mode=str(getattr(mode, "value", mode)),
        anonymous_pull=bool(getattr(model.properties, "anonymous_pull_enabled", False)),
    )


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
    raise InvalidParameter("acr_name", _one_line(available.message), p.acr_name)


@creates
@_step
def ensure_registry(conn: AzureConnection) -> Result[RegistryInfo | None]:
    """Create the registry unless it exists (guide step 4: ``az acr check-name``, ``create``).

    The name is checked first (registry names are global across Azure); creation
    is a long-running operation, polled until the registry is ready. The admin
    user stays disabled: BinderHub signs in as its own service principal.
    """
    p = conn.params
    try:
        found = conn.acr.registries.get(p.resource_group, p.acr_name)
    except ResourceNotFoundError:  # no such registry, or no such resource group yet
        found = None
    if found is not None:
        info = conn.registry = _registry_info(found)
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
            f"{info.name} ({_sku(found)}), login server {info.login_server}, {admin}, {mode}",
        )
    _check_location(conn)
    _check_name(conn)
    if p.dry_run:
        return Result(
            None,
            "planned",
            f"would create registry {p.acr_name} ({p.sku}) in {p.resource_group}, admin user "
            "disabled, legacy role assignment mode (the name is available)",
        )
    poller = conn.acr.registries.begin_create(
        p.resource_group,
        p.acr_name,
        RegistryModel(
            location=p.location,
            sku=Sku(name=p.sku),
            tags=conn.tags,
            # explicitly legacy: in ABAC mode (Azure's future default) AcrPush grants nothing
            properties=RegistryProperties(
                admin_user_enabled=False, role_assignment_mode=LEGACY_MODE
            ),
        ),
    )
    registry_id = (
        f"/subscriptions/{conn.subscription_id}/resourceGroups/{p.resource_group}"
        f"/providers/Microsoft.ContainerRegistry/registries/{p.acr_name}"
    )
    # recorded as soon as Azure accepted it: a crash while it provisions still tears it down
    conn.record.set(
        "registry",
        {"resource_group": p.resource_group, "name": p.acr_name, "id": registry_id},
    )
    created = _finish(
        conn,
        poller,
        f"creating registry {p.acr_name}",
        f"its provisioning state in the portal or `az acr show --name {p.acr_name} "
        f"--resource-group {p.resource_group} --query provisioningState`; a rerun reuses it",
    )
    info = conn.registry = _registry_info(created)
    conn.record.set(
        "registry",
        conn.record.created["registry"] | {"created": _registry_created(created)},
    )
    return Result(
        info,
        "created",
        f"{info.name} ({p.sku}), login server {info.login_server}, admin user disabled, legacy "
        "role assignment mode (AcrPush works)",
    )


# --- create-for-rbac: application, service principal, password ------------------------------
def _query(parameters: Any, **params: Any) -> Any:
    """A request configuration with query parameters (a builder's generated class)."""
    from kiota_abstractions.base_request_configuration import RequestConfiguration

    return RequestConfiguration(query_parameters=parameters(**params))


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"  # OData string literal


async def _applications(conn: AzureConnection, name: str) -> list[_GraphObject]:
    """``GET /applications?$filter=displayName eq '<name>'``."""
    builder = conn.graph().applications
    info = builder.to_get_request_information(
        _query(
            type(builder).ApplicationsRequestBuilderGetQueryParameters,
            filter=f"displayName eq {_quoted(name)}",
        )
    )
    page = await _send(builder, info, _GraphPage)
    return list(page.value or []) if page else []


async def _service_principal(conn: AzureConnection, app_id: str) -> _GraphObject | None:
    """``GET /servicePrincipals?$filter=appId eq '<app_id>'``: the first, if any."""
    builder = conn.graph().service_principals
    info = builder.to_get_request_information(
        _query(
            type(builder).ServicePrincipalsRequestBuilderGetQueryParameters,
            filter=f"appId eq {_quoted(app_id)}",
        )
    )
    page = await _send(builder, info, _GraphPage)
    found = list(page.value or []) if page else []
    return found[0] if found else None


def _not_replicated(exc: BaseException) -> bool:
    """Graph's answers while a new application replicates (the az CLI retries both).

    POST servicePrincipals: 400 NoBackingApplicationObject ("... does not
    reference a valid application object"); GET of the application: 404.
    """
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    if not isinstance(exc, ODataError) or exc.error is None:
        return False
    codes = {exc.error.code, *(d.code for d in exc.error.details or [])}
    text = str(exc.error.message or "")
    return (
        "NoBackingApplicationObject" in codes
        or "does not reference a valid application object" in text
        or (exc.response_status_code == 404 and "Request_ResourceNotFound" in codes)
    )


async def _while_replicating(conn: AzureConnection, what: str, call: Callable[[], Any]) -> Any:
    """Await ``call()``, retrying while Graph has not replicated a new application yet.

    Up to 36 attempts, as the az CLI's ``create_service_principal_for_rbac``
    (which waits 5 s each); here the waits grow from ``replication_wait``.
    """
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(36),
        wait=tenacity.wait_exponential(multiplier=conn.replication_wait, max=10),
        retry=tenacity.retry_if_exception(_not_replicated),
        before_sleep=lambda state: progress(
            f"the new application is replicating in Microsoft Graph: {what} "
            f"(attempt {state.attempt_number + 1})"
        ),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


def _mark_of(obj: _GraphObject) -> str | None:
    """The ``binderhub-registry <id>`` an application or service principal carries (its
    ``notes``, else a tag), or None: made before marks, or not by this project."""
    for value in (obj.notes, *(obj.tags or [])):
        if value and re.fullmatch(rf"{MARK} [0-9a-f]{{8}}", value):
            return value
    return None


def _live_app(app: _GraphObject) -> str:
    return (
        f"application {app.display_name!r} (id {app.id}, appId {app.app_id}, created "
        f"{app.created}, {_mark_of(app) or 'no ' + MARK + ' mark'})"
    )


def _app_record(app: _GraphObject, who: _Identity) -> dict[str, Any]:
    """What is recorded of an application: its ids, name and creation time (Graph's)."""
    return {
        "id": app.id,
        "app_id": app.app_id,
        "display_name": who.name,
        "created": app.created,
    }


def _not_ours(what: str, recorded: object, live: object) -> CloudError:
    """The one line a mismatch stops with: nothing (further) is deleted."""
    return CloudError(
        f"Azure: {what} is not this deployment's, so nothing is deleted: recorded {recorded}; "
        f"live {live}"
    )


def _app_problem(conn: AzureConnection, who: _Identity, recorded: dict[str, Any], app: Any) -> str:
    """Why the live application is not the recorded one of this deployment ("" when it is).

    Its id, appId and display name must be the recorded ones and ``who.name``; its mark this
    deployment's; its createdDateTime the recorded one when recorded. A record from before
    marks (no creation time recorded) accepts an application with no mark at all whose ids
    and name match: a rerun marks it (:func:`_mark_legacy_application`).
    """
    mark = _mark_of(app)
    same = (
        app.id == recorded.get("id")
        and app.app_id == recorded.get("app_id")
        and app.display_name == recorded.get("display_name") == who.name
    )
    if not same:
        return "another application"
    if mark is None and not recorded.get("created"):
        return ""  # a record from before marks: the ids and the name are what it proves
    if mark != conn.mark:
        return "another deployment's mark" if mark else "no mark"
    if recorded.get("created") and app.created != recorded["created"]:
        return "another creation time"
    return ""


async def _mark_legacy_application(
    conn: AzureConnection, who: _Identity, app: _GraphObject
) -> None:
    """An application this deployment recorded before marks existed: mark it (``PATCH``
    notes and tags, which Graph's application-update allows) and record its creation time."""
    from msgraph.generated.models.application import Application

    kind = who.kind("application")
    recorded = conn.record.created.get(kind, {})
    if _mark_of(app) is not None or recorded.get("created"):
        return
    full = await conn.application(str(app.id))
    if full is None or _app_problem(conn, who, recorded, full):
        return
    item = conn.graph().applications.by_application_id(str(app.id))
    await item.patch(Application(notes=conn.mark, tags=[*(full.tags or []), conn.mark]))
    conn.record.set(kind, _app_record(full, who))


@dataclass(frozen=True)
class _Identity:
    """One of the two identities this notebook makes, each an application, its service
    principal, a password and a role on the registry: BinderHub's (push) and user pods' (pull).

    Their record kinds differ by ``kind_prefix``; the pull identity's replaced passwords go to
    the same retiring list as the push identity's, tagged with ``retire_tag``.
    """

    name: str  # display name of the application and its service principal
    label: str  # display name of its password on the application
    kind_prefix: str  # "" (push) or "pull_"
    retire_tag: str  # "" (push) or "pull:"
    what: str  # in messages: "BinderHub's" or "user pods'"

    def kind(self, what: str) -> str:
        """The record kind of ``what`` ("application", "password", ...) for this identity."""
        return self.kind_prefix + what


def _push_identity(p: Params) -> _Identity:
    return _Identity(p.sp_name, p.password_label, "", "", "BinderHub's")


def _pull_identity(p: Params) -> _Identity:
    return _Identity(p.pull_sp_name, p.pull_password_label, "pull_", "pull:", "user pods'")


async def _ensure_principal(
    conn: AzureConnection, who: _Identity
) -> tuple[Principal | None, str, list[str]]:
    """The application and service principal named ``who.name``: found, or created.

    Returns the principal (None: a dry run would create it), what it is, and what was made.
    Each is recorded "pending" before its creation, so a run stopped before its answer is
    recorded still owns it: a rerun that finds it records it (reruns find by name and
    appId, and never make a second one).
    """
    from msgraph.generated.models.application import Application
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.service_principal import ServicePrincipal

    p = conn.params
    app_kind, sp_kind = who.kind("application"), who.kind("service_principal")
    recorded = conn.record.created.get(app_kind, {})
    apps = await _applications(conn, who.name)
    if len(apps) > 1:
        apps = [a for a in apps if a.id == recorded.get("id")] or apps
        if len(apps) > 1:
            raise CloudError(
                f"{len(apps)} applications are named {who.name!r} in this tenant: choose another "
                "sp_name, or delete the extras in Microsoft Entra ID > App registrations"
            )
    made: list[str] = []
    app: _GraphObject | None = apps[0] if apps else None
    if app is None and p.dry_run:
        return None, f"would create application and service principal {who.name!r}", made
    if app is None:
        conn.record.set(app_kind, {"pending": True, "display_name": who.name})
        builder = conn.graph().applications
        new_app = Application(display_name=who.name, notes=conn.mark, tags=[conn.mark])
        info = builder.to_post_request_information(new_app)
        app = await _send(builder, info, _GraphObject)
        assert app is not None and app.id and app.app_id
        conn.record.set(app_kind, _app_record(app, who))
        conn.new_application = True
        made.append("application")
    assert app.id and app.app_id
    recorded = conn.record.created.get(app_kind, {})
    if recorded.get("pending") and not p.dry_run:  # made by a run stopped before recording it
        if _mark_of(app) != conn.mark:
            raise _not_ours(
                f"application {who.name!r}",
                f"made by this deployment, {conn.mark}",
                _live_app(app),
            )
        conn.record.set(app_kind, _app_record(app, who))
    ours = conn.record.created.get(app_kind, {}).get("id") == app.id
    if ours and not p.dry_run:
        await _mark_legacy_application(conn, who, app)
    sp = await _service_principal(conn, app.app_id)
    if sp is None and p.dry_run:
        principal = Principal(app.id, app.app_id, "", who.name)
        return principal, f"would create the service principal of {who.name!r}", made
    if sp is None:
        if ours:
            conn.record.set(sp_kind, {"pending": True, "app_id": app.app_id})
        principals = conn.graph().service_principals
        new_sp = ServicePrincipal(app_id=app.app_id, notes=conn.mark, tags=[conn.mark])
        try:
            sp = await _while_replicating(
                conn,
                "its service principal waits",
                lambda: _send(
                    principals, principals.to_post_request_information(new_sp), _GraphObject
                ),
            )
        except ODataError as e:
            if e.response_status_code not in (400, 409):
                raise
            sp = await _service_principal(conn, app.app_id)  # made by a lost earlier attempt
            if sp is None:
                raise
        made.append("service principal")
    assert sp is not None and sp.id
    if ours and not conn.record.created.get(sp_kind, {}).get("id") and not p.dry_run:
        # the principal of an application we created is ours too, even if its answer was lost
        conn.record.set(sp_kind, {"id": sp.id, "app_id": app.app_id})
    principal = Principal(app.id, app.app_id, sp.id, who.name)
    what = f"application {who.name!r} (appId {app.app_id}), service principal {sp.id}"
    return principal, what, made


@creates
@_astep
async def ensure_service_principal(conn: AzureConnection) -> Result[Principal | None]:
    """The application and service principal named ``sp_name``: found, or created.

    The first half of ``az ad sp create-for-rbac --name``, through Microsoft
    Graph. A service principal whose creation answer was lost is found again
    (Graph answers 400 or 409 to a duplicate), so reruns never make a second one.
    """
    principal, what, made = await _ensure_principal(conn, _push_identity(conn.params))
    if principal is None or not principal.sp_id:
        return Result(principal, "planned", what)
    conn.principal = principal
    if made:
        return Result(principal, "created", f"{what}: created the {' and '.join(made)}")
    return Result(principal, "reused", what)


def _secret_works(conn: AzureConnection, app_id: str, secret: Secret) -> bool:
    """True when Entra ID issues ``app_id`` a token for ``secret`` (client-credentials sign-in)."""
    kwargs: dict[str, Any] = {}
    if conn.authority:
        kwargs = {"authority": conn.authority, "disable_instance_discovery": True}
    if conn.ca_file:
        kwargs["connection_verify"] = conn.ca_file
    try:
        ClientSecretCredential(conn.tenant_id, app_id, secret.reveal(), **kwargs).get_token(
            ARM_SCOPE
        )
    except ClientAuthenticationError:
        return False
    return True


def _day(when: dt.datetime | None) -> str:
    return when.strftime("%Y-%m-%d") if when else "never"


async def _passwords(conn: AzureConnection, principal: Principal) -> list[PasswordCredential]:
    """The application's passwords (``GET /applications/{id}``)."""
    item = conn.graph().applications.by_application_id(principal.app_object_id)

    def get() -> Awaitable[_GraphObject | None]:
        return _send(item, item.to_get_request_information(), _GraphObject)

    if conn.new_application:  # made moments ago: Graph may answer 404 for a while
        app = await _while_replicating(conn, "reading its passwords waits", get)
    else:
        app = await get()
    return list(app.password_credentials or []) if app else []


async def _remove_passwords(conn: AzureConnection, principal: Principal, key_ids: list[str]) -> int:
    from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (  # noqa: E501
        RemovePasswordPostRequestBody,
    )

    if not key_ids:
        return 0
    present = {str(c.key_id) for c in await _passwords(conn, principal)}
    removed = 0
    for key_id in key_ids:
        if key_id in present:  # removing an absent one is an error in Graph
            body = RemovePasswordPostRequestBody(key_id=uuid.UUID(key_id))
            item = conn.graph().applications.by_application_id(principal.app_object_id)
            await item.remove_password.post(body)
            removed += 1
    return removed


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
    who: _Identity,
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
        conn.note(
            who.kind("password"),
            {"key_id": str(held[0].key_id), "end": _day(held[0].end_date_time)},
        )
        return held[0]
    if keep != retiring:
        conn.note(conn.retiring, keep)
    return current


async def _ensure_password(
    conn: AzureConnection, who: _Identity, principal: Principal, stored: Secret | None
) -> Result[Secret | None]:
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
    mine = [c for c in await _passwords(conn, principal) if c.display_name == who.label]
    recorded = conn.record.created.get(who.kind("password"), {}).get("key_id")
    current = next((c for c in mine if str(c.key_id) == recorded), None)
    now = dt.datetime.now(dt.UTC)
    working = (
        current is not None
        and stored is not None
        and (current.end_date_time is None or current.end_date_time > now)
        and _secret_works(conn, principal.app_id, stored)
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
    if p.dry_run:
        extra = f", then remove {len(stale)} whose secret was lost" if stale else ""
        what = "rotate: would add a new password" if working else "would add a password"
        return Result(None, "planned", f"{what} valid for {days} days{extra}")
    end = now + dt.timedelta(days=days)
    body = AddPasswordPostRequestBody(
        password_credential=PasswordCredential(display_name=who.label, end_date_time=end)
    )
    item = conn.graph().applications.by_application_id(principal.app_object_id)
    created = await item.add_password.post(body)
    assert created is not None and created.secret_text and created.key_id
    conn.record.set(
        who.kind("password"), {"key_id": str(created.key_id), "end": _day(created.end_date_time)}
    )
    conn.fresh = True
    removed = await _remove_passwords(conn, principal, stale)
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
@_astep
async def ensure_password(conn: AzureConnection) -> Result[Secret | None]:
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
    p, principal = conn.params, conn.principal
    if principal is None or not principal.sp_id:
        return Result(
            None, "planned", f"would add a password valid for {p.secret_expiry_days} days"
        )
    stored = conn.stored_password(principal.app_id)
    result = await _ensure_password(conn, _push_identity(p), principal, stored)
    if result.value is not None:
        conn.secret = result.value
    return result


# --- role assignment ---------------------------------------------------------------------
def _is_principal_not_found(exc: BaseException) -> bool:
    error = getattr(exc, "error", None)
    return isinstance(exc, HttpResponseError) and getattr(error, "code", "") == "PrincipalNotFound"


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
) -> Result[str | None]:
    """``role`` at ``scope`` for ``principal_id`` (a service principal), recorded as ``kind``.

    An existing assignment is reused. A new service principal takes a while to reach Azure
    Resource Manager, which answers PrincipalNotFound meanwhile: retried (the az CLI does
    the same), with ``principal_type`` set as Azure advises. The assignment's name is
    derived from what it grants and recorded "pending" before it is made, so a rerun after a
    lost answer PUTs the same one and teardown still finds it.
    """
    recorded = conn.record.created.get(kind, {})
    existing = _role_assignment(conn, scope, principal_id, role)
    name = str(uuid.uuid5(_NS, f"{scope.lower()}|{principal_id}|{role}"))
    if existing:
        if recorded.get("pending") and existing.lower().endswith(name) and not conn.params.dry_run:
            conn.record.set(kind, {"id": existing, "scope": scope, "name": name})
        return Result(existing, "reused", label)
    if conn.params.dry_run:
        return Result(None, "planned", f"would assign {label}")
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
        retry=tenacity.retry_if_exception(_is_principal_not_found),
        reraise=True,
    )
    attempts = 0

    def create() -> Any:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            progress(f"the new service principal is replicating (attempt {attempts})")
        return conn.authorization.role_assignments.create(scope, name, parameters)

    assignment_id = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    conn.record.set(kind, {"id": assignment_id, "scope": scope, "name": name, "pending": True})
    try:
        assignment_id = str(retrying(create).id)
    except ResourceExistsError:  # RoleAssignmentExists: made by an attempt whose answer was lost
        found = _role_assignment(conn, scope, principal_id, role)
        if found is None:
            raise
        assignment_id = found
    conn.record.set(kind, {"id": assignment_id, "scope": scope, "name": name})
    conn.fresh = True
    waited = f" (after {attempts} attempts: the new service principal was replicating)"
    return Result(assignment_id, "created", f"{label}{waited if attempts > 1 else ''}")


@creates
@_step
def ensure_role_assignment(conn: AzureConnection) -> Result[str | None]:
    """The push role for the service principal on the registry alone (``--role AcrPush --scopes``).

    AcrPush, or on a registry in ABAC mode (where AcrPush is not honoured)
    Container Registry Repository Writer (see :func:`_assign`).
    """
    p, principal, registry = conn.params, conn.principal, conn.registry
    if principal is None or not principal.sp_id or registry is None:
        return Result(None, "planned", f"would assign AcrPush on registry {p.acr_name} only")
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
@_astep
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
    who = _pull_identity(p)
    registry = conn.registry
    principal, what, made = await _ensure_principal(conn, who)
    if principal is None or not principal.sp_id or registry is None:
        return Result(
            None,
            "planned",
            f"{what}, a password and the pull role on registry {p.acr_name}, for user pods",
        )
    conn.pull_principal = principal
    stored = conn.stored_pull_password(principal.app_id)
    password = await _ensure_password(conn, who, principal, stored)
    role, condition, words = _pull_grant(registry, p.project)
    with map_exceptions(_AZURE_ERRORS):
        assigned = _assign(
            conn, who.kind("role_assignment"), registry.id, principal.sp_id, role, words, condition
        )
    steps = [f"{what}" + (f": created the {' and '.join(made)}" if made else ""), password.detail]
    steps.append(assigned.detail)
    if password.value is not None:
        conn.pull_secret = PullSecret(registry.login_server, principal.app_id, password.value)
    statuses = {password.status, assigned.status, "created" if made else "reused"}
    status = next(s for s in ("planned", "created", "reused") if s in statuses)
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
    if registry is None:
        return Result(
            None,
            "planned",
            f"would assign the pull role on registry {p.acr_name} to AKS cluster "
            f"{p.aks_cluster}'s kubelet identity; then check it on the cluster: {check}",
        )
    cluster_id = (
        f"/subscriptions/{conn.subscription_id}/resourceGroups/{p.resource_group}/providers/"
        f"Microsoft.ContainerService/managedClusters/{p.aks_cluster}"
    )
    with map_exceptions(_AZURE_ERRORS):
        try:
            cluster = conn.resources.resources.get_by_id(cluster_id, api_version=AKS_API_VERSION)
        except ResourceNotFoundError:
            raise CloudError(
                f"no AKS cluster {p.aks_cluster!r} in resource group {p.resource_group}: the "
                'cluster must be in the registry\'s resource group; or use pull_access = "secret"'
            ) from None
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
            conn, "node_role_assignment", registry.id, object_id, role, words, condition
        )
    where = "rehearsed in the sandbox; on Azure " if p.sandbox else ""
    note = (
        f"; user pods' pull cannot be verified from here: {where}check it on the cluster with "
        f"`{check}`"
    )
    return Result(assigned.value, assigned.status, assigned.detail + note)


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
