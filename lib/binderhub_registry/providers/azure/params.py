"""The Azure notebook's names and parameters: the registry key, Azure's endpoints and role ids,
this deployment's mark, the parameters and their rules, and the two identities it makes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from ...errors import InvalidParameter
from ...params import choice, flag, integer, text
from ..contract import COMMON_PARAMETERS, CommonParams, GuideEntry, validator

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
ASSIGNMENT_NS = uuid.UUID(
    "0d4c3f0e-2b8e-4a53-9d3e-5c1f6a7b8e90"
)  # role assignment names: uuid5(scope, ...)

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


@dataclass(frozen=True)
class Identity:
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


def push_identity(p: Params) -> Identity:
    """BinderHub's identity (push)."""
    return Identity(p.sp_name, p.password_label, "", "", "BinderHub's")


def pull_identity(p: Params) -> Identity:
    """User pods' identity (pull only)."""
    return Identity(p.pull_sp_name, p.pull_password_label, "pull_", "pull:", "user pods'")


#: This registry on the docs' landing page: its row of the guide's table, its item of "Choose your
#: registry" and its column of the registry matrix (docs/_ext/guide.py renders them).
GUIDE = GuideEntry(
    section="2.3",
    title="Azure Container Registry",
    name="Azure Container Registry",
    choose=(
        "if BinderHub runs on AKS: the cluster's kubelet identity can pull (`pull_access = "
        '"node"`, what `az aks update --attach-acr` grants).'
    ),
    cost=(
        "per registry per day, by tier (Basic, Standard, Premium), storage beyond the tier's "
        "included amount per GiB per day [^acr-skus]"
    ),
    limits=(
        "included storage 10, 100 or 500 GiB (Basic, Standard, Premium); read and write "
        "operations per minute and bandwidth grow with the tier [^acr-skus]"
    ),
    needs=(
        "an Azure subscription where you may create a resource group, a registry, an application "
        "and a role assignment"
    ),
    credential=(
        "a service principal with a password and the `AcrPush` role on the one registry; the "
        "admin user stays off"
    ),
    pull_credential=(
        "a second service principal, `<sp_name>-pull`, with `AcrPull` on the one registry "
        '(Repository Reader limited to `<project>/` on ABAC registries); `"node"`: `AcrPull` '
        "for the AKS kubelet identity"
    ),
    rotation=(
        "`rotate = True`: a new password, verified, then the old one removed; `keep_replaced = "
        "True` keeps it until a run without it, after you deploy"
    ),
    expires="the password, after `secret_expiry_days` (default 365; the date is shown)",
    notes={
        "acr-skus": (
            'Microsoft\'s ["Azure Container Registry SKU features and limits"]'
            "(https://learn.microsoft.com/azure/container-registry/container-registry-skus)."
        ),
    },
)


#: The api-version of ACR Tasks that azure-cli 2.91 sends (azure-mgmt-containerregistrytasks
#: 1.0.0b1's default).
TASKS_API_VERSION = "2025-03-01-preview"
