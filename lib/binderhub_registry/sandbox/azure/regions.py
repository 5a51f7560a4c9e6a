"""Where Azure Container Registry can be created: ARM's answer for Microsoft.ContainerRegistry.

Vendored data (issue 19, point 5): the fake's ``GET /subscriptions/{id}/providers/
Microsoft.ContainerRegistry`` answers :data:`CONTAINER_REGISTRY_PROVIDER` (the shape of
Providers_Get in azure-rest-api-specs, ``specification/resources``, ``Provider`` and
``ProviderResourceType``: ``locations`` are display names such as ``"Italy North"``), and
ARM's checks of a ``location`` read :data:`REGISTRY_LOCATIONS`, its names (``italynorth``).

==============================================  ===========================================
data                                            source
==============================================  ===========================================
``registries`` locations, the first 34          ARM's own list for the type: the
(West US ... Korea South)                       ``NoRegisteredProviderFound`` answer for
                                                ``Microsoft.ContainerRegistry/registries``,
                                                captured 2024-11-05 in
                                                JulianHayward/Azure-MG-Sub-Governance-
                                                Reporting issue 266 ("The supported locations
                                                are 'westus, eastus, ... koreasouth, w..."),
                                                quoted in that order; the stored copy of the
                                                thread is cut after ``koreasouth``
the rest (West US 3 ... Jio India Central):     assumption. Each is a physical region in
regions created since, or left out of the       ARM's ``GET /subscriptions/{id}/locations``
capture by its cut                              as recorded by azure-cli 2.69
                                                (``resource/tests/latest/recordings/
                                                test_list_locations.yaml``, 2025), and issue
                                                19 names the newer ones as ACR regions; no
                                                captured Providers_Get for this namespace was
                                                found (searched: azure-rest-api-specs
                                                examples, azure-cli and azure-dev recordings,
                                                issue threads)
display names (``Italy North``) for names       the same azure-cli 2.69 recording
(``italynorth``)                                (``name`` and ``displayName`` of each region)
a display name compared with a name: lower      azure-cli ``containerapp/_utils.py``
case, without spaces or parentheses             ``format_location``, used by
                                                ``_ensure_location_allowed`` on exactly this
                                                answer (``providers.get(...).resource_types
                                                [].locations``)
``apiVersions`` of ``registries``               the same 2024 capture ("The supported
                                                api-versions are ..."); the later ones are the
                                                versions azure-mgmt-containerregistry 15
                                                (2025-11-01) and azure-cli 2.91.0's
                                                (2026-09-01-preview) send: assumption that
                                                ARM lists them (both work against Azure)
``checkNameAvailability`` and ``operations``:   Providers_Get's examples list such global
no locations                                    types with ``"locations": []``; assumption
                                                for this namespace
==============================================  ===========================================
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CONTAINER_REGISTRY_PROVIDER",
    "REGISTRY_LOCATIONS",
    "REGISTRY_TYPE",
    "location_name",
    "provider_answer",
]

REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries"

_CAPTURED = (  # ARM's list for registries as captured in 2024, in its order (see the table)
    "West US",
    "East US",
    "South Central US",
    "West Europe",
    "North Europe",
    "UK South",
    "UK West",
    "Australia East",
    "Australia Southeast",
    "Central India",
    "Korea Central",
    "France Central",
    "South Africa North",
    "UAE North",
    "East Asia",
    "Japan East",
    "Japan West",
    "Southeast Asia",
    "South India",
    "Brazil South",
    "Canada East",
    "Canada Central",
    "Central US",
    "East US 2",
    "North Central US",
    "West Central US",
    "West US 2",
    "Switzerland North",
    "UAE Central",
    "Switzerland West",
    "Germany West Central",
    "Brazil Southeast",
    "Norway East",
    "Korea South",
)
_SINCE = (  # assumption: after the capture's cut, physical regions of ARM's 2025 list
    "West US 3",
    "Sweden Central",
    "Australia Central",
    "Australia Central 2",
    "South Africa West",
    "Germany North",
    "Norway West",
    "France South",
    "Jio India West",
    "Jio India Central",
    "Qatar Central",
    "Poland Central",
    "Italy North",
    "Israel Central",
    "Spain Central",
    "Mexico Central",
    "New Zealand North",
)
_API_VERSIONS = [
    "2026-09-01-preview",
    "2025-11-01",
    "2023-11-01-preview",
    "2023-08-01-preview",
    "2023-07-01",
    "2023-06-01-preview",
    "2023-01-01-preview",
    "2022-12-01",
    "2022-02-01-preview",
    "2021-12-01-preview",
    "2021-09-01",
    "2021-08-01-preview",
    "2021-06-01-preview",
    "2020-11-01-preview",
    "2019-12-01-preview",
    "2019-05-01",
    "2017-10-01",
    "2017-03-01",
]

#: ARM's answer for the namespace, without the subscription (see :func:`provider_answer`).
CONTAINER_REGISTRY_PROVIDER: dict[str, Any] = {
    "namespace": "Microsoft.ContainerRegistry",
    "registrationPolicy": "RegistrationRequired",
    "resourceTypes": [
        {
            "resourceType": "registries",
            "locations": [*_CAPTURED, *_SINCE],
            "apiVersions": _API_VERSIONS,
            "defaultApiVersion": "2019-05-01",
            "capabilities": "CrossResourceGroupResourceMove, CrossSubscriptionResourceMove, "
            "SupportsTags, SupportsLocation",
        },
        {
            "resourceType": "checkNameAvailability",
            "locations": [],
            "apiVersions": _API_VERSIONS,
        },
        {"resourceType": "operations", "locations": [], "apiVersions": _API_VERSIONS},
    ],
}


def location_name(location: str) -> str:
    """A location as ARM compares it: ``"Italy North"`` and ``italynorth`` are the same."""
    return location.lower().replace(" ", "").replace("(", "").replace(")", "")


#: The registries' locations as names (``italynorth``), in ARM's order.
REGISTRY_LOCATIONS: tuple[str, ...] = tuple(location_name(x) for x in (*_CAPTURED, *_SINCE))


def provider_answer(subscription: str, namespace: str, state: str) -> dict[str, Any]:
    """Providers_Get for ``namespace``: the vendored types for Microsoft.ContainerRegistry,
    none for another (assumption: this sandbox models no other namespace's types)."""
    known = namespace.lower() == CONTAINER_REGISTRY_PROVIDER["namespace"].lower()
    body: dict[str, Any] = {
        "id": f"/subscriptions/{subscription}/providers/{namespace}",
        "namespace": namespace,
        "registrationState": state,
        "resourceTypes": [],
    }
    if known:
        body |= CONTAINER_REGISTRY_PROVIDER
    return body
