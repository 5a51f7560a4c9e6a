"""Regions: the fake's list is ARM's answer for Microsoft.ContainerRegistry.

ARM lists where registries can be created in ``GET /subscriptions/{id}/providers/
Microsoft.ContainerRegistry`` (``resourceTypes[].locations``, display names); the fake answers
it from vendored data (``sandbox/azure/regions.py``, with its sources) and checks ``location``
with it, and the notebook asks ARM the same question before it creates anything.
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerregistry.models import Registry, RegistryProperties, Sku
from papermill.exceptions import PapermillExecutionError

from binderhub_registry import sandbox

from .conftest import NotebookRun, outputs_text
from .helpers import Tenant

#: ACR regions the old Azure.Core list refused (a hand-kept list, before ARM's answer)
NEWER = (
    "italynorth",
    "polandcentral",
    "israelcentral",
    "mexicocentral",
    "spaincentral",
    "qatarcentral",
    "newzealandnorth",
)


def _registry(location: str) -> Registry:
    return Registry(
        location=location,
        sku=Sku(name="Basic"),
        properties=RegistryProperties(admin_user_enabled=False),
    )


def test_arm_lists_where_registries_can_be_made(tenant: Tenant) -> None:
    """Providers_Get as the SDK reads it: display names, the newer regions among them."""
    provider = tenant.resources().providers.get("Microsoft.ContainerRegistry")
    assert provider.namespace == "Microsoft.ContainerRegistry"
    assert provider.registration_state == "Registered"
    (registries,) = [t for t in provider.resource_types if t.resource_type == "registries"]
    assert "Italy North" in registries.locations and "West Europe" in registries.locations
    names = {x.lower().replace(" ", "") for x in registries.locations}
    assert set(NEWER) <= names
    from binderhub_registry.sandbox.azure.regions import REGISTRY_LOCATIONS

    assert names == set(REGISTRY_LOCATIONS)
    assert "2025-11-01" in registries.api_versions  # azure-mgmt-containerregistry's


@pytest.mark.parametrize("location", [*NEWER, "Italy North"])
def test_registries_can_be_made_in_current_regions(
    tenant: Tenant,
    location: str,
) -> None:
    """Each region ARM lists is taken, by name or by display name (ARM compares them so)."""
    tenant.resources().resource_groups.create_or_update("rg1", {"location": location})
    made = tenant.acr().registries.begin_create("rg1", "regional01", _registry(location)).result()
    assert made.location == location.lower().replace(" ", "")


def test_an_unknown_region_gets_azures_error(tenant: Tenant) -> None:
    """ARM's 400 LocationNotAvailableForResourceType, its message naming the regions it has
    (the shape captured in Azure/acr issue 406)."""
    tenant.resources().resource_groups.create_or_update("rg1", {"location": "westeurope"})
    with pytest.raises(HttpResponseError) as err:
        tenant.acr().registries.begin_create("rg1", "regional01", _registry("atlantis")).result()
    assert err.value.status_code == 400
    assert err.value.error is not None
    assert err.value.error.code == "LocationNotAvailableForResourceType"
    message = str(err.value.error.message)
    assert message.startswith(
        "The provided location 'atlantis' is not available for resource type "
        "'Microsoft.ContainerRegistry/registries'. List of available regions for the resource "
        "type is '"
    )
    assert "italynorth" in message and "westeurope" in message
    assert tenant.box.state()["azure"]["registries"] == []


def test_a_rehearsal_in_italy_north_succeeds(azure_nb: NotebookRun, fresh: sandbox.Sandbox) -> None:
    nb = azure_nb(location="italynorth")
    text = outputs_text(nb)
    assert "resource group binderhub-registry in italynorth" in text
    assert "BinderHub finds the pushed image" in text
    state = fresh.state()["azure"]
    assert [g["location"] for g in state["resource_groups"]] == ["italynorth"]
    assert [r["name"] for r in state["registries"]] == ["binderhubdemo"]


def test_a_region_arm_does_not_list_stops_before_anything_is_made(
    azure_nb: NotebookRun,
    fresh: sandbox.Sandbox,
) -> None:
    """The notebook asks ARM (Providers_Get) first: one line naming ``location``, nothing made."""
    before = fresh.state()
    with pytest.raises(PapermillExecutionError) as err:
        azure_nb(location="atlantis")
    assert err.value.ename == "InvalidParameter"
    message = err.value.evalue
    assert "\n" not in message
    assert message.startswith(
        "parameter 'location': must be a region where Azure offers Container Registry"
    )
    assert "italynorth" in message and "(got 'atlantis')" in message
    assert fresh.state() == before
    calls = [(e["method"], e["path"]) for e in fresh.log()]
    assert ("GET", calls[-1][1]) == calls[-1]
    assert calls[-1][1].endswith("/providers/Microsoft.ContainerRegistry")
