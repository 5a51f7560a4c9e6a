"""Fake Azure: Entra ID sign-in, ARM, Microsoft Graph, and ACR-like registries.

Split by service, moto-style, over one shared state (``models.Tenant``):

==========================  ===============================================================
module                      serves
==========================  ===============================================================
``models``                  the tenant's state, ids, built-in roles, and the queries on them
``regions``                 ARM's answer for Microsoft.ContainerRegistry (vendored, with its
                            sources): where registries can be created
``errors``                  ARM, Graph and Entra ID error bodies
``entra``                   ``/azure/login``: Entra ID authority
                            (``ClientSecretCredential(authority=...)``):
                            ``/{tenant}/v2.0/.well-known/openid-configuration`` and
                            ``/{tenant}/oauth2/v2.0/token`` (client credentials)
``arm``                     ``/azure/management``: ARM (``base_url=`` of the mgmt clients):
                            subscriptions, resource groups (the SDK sends lowercase
                            ``resourcegroups``), resource providers (their registration,
                            and Microsoft.ContainerRegistry's regions), Microsoft.ContainerRegistry
                            (checkNameAvailability, registries with the 201 +
                            ``Azure-AsyncOperation`` shape), Microsoft.Authorization role
                            assignments at any scope (with ABAC conditions),
                            Microsoft.ContainerService managed clusters (read only)
``graph``                   ``/azure/graph/v1.0``: Microsoft Graph
                            (``request_adapter.base_url``): applications (``$filter`` on
                            displayName or appId), addPassword, removePassword,
                            servicePrincipals
``acr``                     a registry front per registry created through ARM, on its own
                            port (the registry's ``loginServer``)
``retention``               ACR Tasks running ``acr purge`` on the registries' clock, ``listUsages``
``cloud``                   the backend: lifecycle, state, and ``/_sandbox/azure/settings``
==========================  ===============================================================

``/_sandbox/azure/settings`` (admin: not logged, not faulted): GET, or POST a
JSON object with any of ``principal_not_found`` (role assignment attempts a new
service principal fails with PrincipalNotFound, default 1),
``application_not_found`` (Graph attempts that do not know a new application
yet: 400 NoBackingApplicationObject, 404; default 0),
``role_propagation_seconds`` (before a new role assignment reaches the
registry, default 0), ``default_role_assignment_mode`` (a registry created
without ``roleAssignmentMode``: ``LegacyRegistryPermissions``, the default, or
``AbacRepositoryPermissions``), ``max_password_days`` (the tenant's password
lifetime policy, 0: none), ``unregistered_providers`` (namespaces answering
409 MissingSubscriptionRegistration until registered, default none),
``registry_polls`` (``InProgress`` answers before a new registry is Succeeded,
default 1), ``extra_subscription`` (a second subscription the deployer owns,
default False), ``aks_clusters`` (AKS clusters, ``"<resource group>/<name>"``
each, with a kubelet identity: default none, as in a new subscription),
``registry_used_bytes`` (``listUsages``' Size in bytes, 0: the stored blobs').
``POST /_sandbox/clock`` moves the registries' clock and runs their ACR Tasks'
``acr purge`` (``retention``).

Errors carry Azure's real bodies, so the SDKs raise ResourceExistsError,
ResourceNotFoundError, HttpResponseError, ClientAuthenticationError and
ODataError as they would against Azure. Each module's docstring lists the
behaviours it models with their sources. Ids come from counters (uuid5), so two
runs from the seeded state give the same ids.
"""

from __future__ import annotations

from .cloud import AzureCloud
from .models import (
    ACR_PULL,
    ACR_PUSH,
    OWNER,
    SEED_CLIENT_ID,
    SEED_SUBSCRIPTION,
    SEED_TENANT,
    TAKEN_REGISTRY,
    seed_credentials,
)

__all__ = [
    "ACR_PULL",
    "ACR_PUSH",
    "OWNER",
    "SEED_CLIENT_ID",
    "SEED_SUBSCRIPTION",
    "SEED_TENANT",
    "TAKEN_REGISTRY",
    "AzureCloud",
    "seed_credentials",
]
