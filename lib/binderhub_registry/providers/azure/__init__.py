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
loop). Everything this package creates is recorded in ``output_dir`` so reruns
reuse it and teardown deletes only that.

Speed (a sandbox run is mostly loading code): msgraph-sdk is loaded in a
background thread while the ARM steps run, and Graph's answers are read into
a small model of ours rather than msgraph-sdk's ``Application``, whose
base class loads ~1,200 generated modules on first use (:mod:`.graph_sdk`).
Each token is asked for once (:class:`.auth.KeptTokens`: ``az login``'s
credential caches nothing), the ARM clients share one HTTP session, the
registry name is checked once; in the sandbox, which counts polls and
attempts rather than seconds, long-running operations and replication
retries do not sleep.

The package, by concern: :mod:`.params` (names, role ids, the parameters), :mod:`.errors`
(Azure's errors as the package's), :mod:`.graph_sdk` (msgraph-sdk, loaded fast),
:mod:`.graph` (the Graph requests the steps and teardown share), :mod:`.auth` (signing in),
:mod:`.ours` (this deployment's marks), :mod:`.connection` (the connection and the contract's
parts) and :mod:`.steps` (the guide's steps).
"""

from __future__ import annotations

import importlib.util
import warnings

# the optional extra: say how to get it before any import line fails. msgraph-sdk is loaded
# only when the Graph steps need it (graph_sdk.py), so its presence is only looked up here
for _name in (
    "azure.core",
    "azure.identity",
    "azure.mgmt.authorization",
    "azure.mgmt.containerregistry",
    "azure.mgmt.resource",
    "kiota_abstractions",
    "msgraph",
    "msgraph_core",
    "kiota_http",
    "kiota_authentication_azure",
    "httpx",
):
    try:
        _found = importlib.util.find_spec(_name)
    except ImportError:  # pragma: no cover - depends on the installation (a parent is missing)
        _found = None
    if _found is None:  # pragma: no cover - depends on the installation
        raise ImportError(
            f"{_name} is missing: the Azure notebook needs the azure extra: "
            "pip install 'binderhub-registry[azure]'"
        )

# msgraph-sdk and kiota warn as they load about their own deprecated classes: not ours to fix.
# A filter rather than catch_warnings(), which is not thread-safe: they load in a background thread
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(msgraph|kiota_\w+)\.")

from .connection import REAL_EXAMPLE, AzureConnection, Principal, RegistryInfo  # noqa: E402
from .params import (  # noqa: E402
    ACR_PULL_ROLE,
    ACR_PUSH_ROLE,
    ARM_SCOPE,
    GRAPH_SCOPE,
    GUIDE,
    KEY,
    NAME,
    NOTEBOOK,
    PARAMETERS,
    REPOSITORY_READER_ROLE,
    REPOSITORY_WRITER_ROLE,
    ROLE_NAMES,
    SANDBOX_SECRET_VARIABLE,
    SECRET_ENVIRONMENT,
    Params,
    validate,
)
from .retention import ensure_purge_task, usage_for_values  # noqa: E402
from .steps import (  # noqa: E402
    ensure_password,
    ensure_pull_credential,
    ensure_registry,
    ensure_resource_group,
    ensure_role_assignment,
    ensure_service_principal,
    select_subscription,
    sign_in,
)

__all__ = [
    "ACR_PULL_ROLE",
    "ACR_PUSH_ROLE",
    "ARM_SCOPE",
    "GRAPH_SCOPE",
    "GUIDE",
    "KEY",
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "REAL_EXAMPLE",
    "REPOSITORY_READER_ROLE",
    "REPOSITORY_WRITER_ROLE",
    "ROLE_NAMES",
    "SANDBOX_SECRET_VARIABLE",
    "SECRET_ENVIRONMENT",
    "AzureConnection",
    "Params",
    "Principal",
    "RegistryInfo",
    "ensure_password",
    "ensure_pull_credential",
    "ensure_purge_task",
    "ensure_registry",
    "ensure_resource_group",
    "ensure_role_assignment",
    "ensure_service_principal",
    "select_subscription",
    "sign_in",
    "usage_for_values",
    "validate",
]
