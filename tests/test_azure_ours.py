"""Azure: nothing is deleted that this deployment did not make, and no wait is
endless.

Teardown deletes an application, a service principal, a role assignment, the registry or the
resource group only when the live one carries this deployment's mark (``binderhub-registry
<deployment id>``: an application's ``notes`` and ``tags``, a service principal's ``notes``,
a role assignment's ``description``, the registry's and resource group's ``tags``) and its
recorded name, id and (where Azure has one) creation time; a mismatch is one line naming
both, and nothing is deleted. A resource group named with non-ASCII letters is refused
before any call; every long-running operation has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import CloudError, InvalidParameter, providers, sandbox

from .conftest import NOTEBOOKS, InProcessRun
from .helpers import defaults, settings

pytestmark = pytest.mark.notebook

AZURE = providers.get("azure")


def run(tmp_path: Path) -> InProcessRun:
    return InProcessRun(NOTEBOOKS / f"{AZURE.NOTEBOOK}.ipynb", tmp_path)


def record(nb: InProcessRun) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((nb.output_dir / "binderhub-registry.json").read_text())
    return data


def edit(nb: InProcessRun, change: Any) -> None:
    path = nb.output_dir / "binderhub-registry.json"
    data = json.loads(path.read_text())
    change(data["created"])
    path.write_text(json.dumps(data))


def tenant(box: sandbox.Sandbox) -> dict[str, Any]:
    state: dict[str, Any] = box.state()["azure"]
    return state


# --- point 11: a resource group with non-ASCII letters ---------------------------------------
@pytest.mark.parametrize("group", ["binderhub-r\u0435gistry", "ｂｉｎｄｅｒｈｕｂ"])
def test_a_non_ascii_resource_group_is_refused_before_any_call(
    group: str, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    before = len(fresh.log())
    with pytest.raises(InvalidParameter, match="resource_group") as e:
        run(tmp_path)(resource_group=group)
    assert len(str(e.value).splitlines()) == 1 and "ASCII" in str(e.value)
    assert len(fresh.log()) == before


def test_the_fake_completes_a_registry_in_a_unicode_resource_group_as_arm_does(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """ARM takes any letter in a group name (Char.IsLetterOrDigit) and percent-encodes it in
    the operation's URL: the registry is made, with no endless polling (the issue's 4,663)."""
    from binderhub_registry.providers import azure

    p = azure.validate(defaults(AZURE, tmp_path))
    p = replace(p, resource_group="binderhub-r\u0435gistry")
    conn = azure.sign_in(p).value
    azure.select_subscription(conn)
    azure.ensure_resource_group(conn)
    polls = len(fresh.log())
    result = azure.ensure_registry(conn)
    assert result.status == "created" and len(fresh.log()) - polls < 20
    (made,) = [r for r in tenant(fresh)["registries"] if r["name"] == "binderhubdemo"]
    assert made["provisioning_state"] == "Succeeded"
    assert made["resource_group"] == "binderhub-r\u0435gistry"


def test_a_registry_that_never_leaves_creating_stops_at_the_deadline(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    from binderhub_registry import CloudError
    from binderhub_registry.providers import azure

    settings(fresh, "azure", registry_polls=10**9)
    p = azure.validate(defaults(AZURE, tmp_path))
    conn = azure.sign_in(p).value
    conn.lro_deadline = 1.0
    azure.select_subscription(conn)
    azure.ensure_resource_group(conn)
    with pytest.raises(CloudError, match=r"creating registry binderhubdemo did not finish") as e:
        azure.ensure_registry(conn)
    assert len(str(e.value).splitlines()) == 1 and "az acr show" in str(e.value)
    # the SDK's poller thread polls on (azure-core has no way to stop it): the registry's
    # deletion ends it (its operation is then unknown), before the next test's sandbox
    conn.acr.registries.begin_delete(p.resource_group, p.acr_name).result()
    for thread in threading.enumerate():
        if thread.name.startswith("LROPoller"):
            thread.join(timeout=30)


# --- point 1: teardown deletes only what carries this deployment's mark ---------------------
def deployed(fresh: sandbox.Sandbox, tmp_path: Path) -> tuple[InProcessRun, Any]:
    """A default run; its connection (signed in as the sandbox's deployer)."""
    from binderhub_registry.providers import Connection

    nb = run(tmp_path)
    namespace = nb()
    conn = next(v for v in namespace.values() if isinstance(v, Connection))
    return nb, conn


def census(box: sandbox.Sandbox) -> str:
    state = tenant(box)
    return json.dumps({k: state[k] for k in sorted(state) if k != "settings"}, sort_keys=True)


def refused(nb: InProcessRun, box: sandbox.Sandbox, *words: str) -> str:
    before = census(box)
    with pytest.raises(CloudError) as e:
        nb(teardown=True)
    message = str(e.value)
    assert len(message.splitlines()) == 1 and "recorded" in message and "live" in message
    assert "is not this deployment's, so nothing is deleted" in message
    for word in words:
        assert word in message
    assert census(box) == before, "teardown deleted something"
    return message


def test_the_issue_teardown_with_the_deployers_application_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """The issue's record: application.id set to the deployer's own application."""
    nb, _ = deployed(fresh, tmp_path)
    deployer = fresh.credentials("azure")["client_id"]
    (app,) = [a for a in tenant(fresh)["applications"] if a["app_id"] == deployer]
    edit(nb, lambda c: c["application"].update(id=app["id"]))
    refused(nb, fresh, app["id"])
    edit(nb, lambda c: c["application"].update(id=app["id"], app_id=deployer))
    refused(nb, fresh, deployer)


def test_a_forged_role_assignment_registry_or_group_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    nb, conn = deployed(fresh, tmp_path)
    # the deployer's own Owner assignment on the subscription
    owner = next(
        a
        for a in tenant(fresh)["role_assignments"]
        if a["principal_id"] != conn.principal.sp_id and a["role"] == "Owner"
    )
    owner_id = f"{owner['scope']}/providers/Microsoft.Authorization/roleAssignments/{owner['name']}"
    good = record(nb)["created"]
    edit(nb, lambda c: c["role_assignment"].update(id=owner_id, name=owner["name"]))
    refused(nb, fresh, owner["name"])
    # another group, untagged (someone else's), named in the record
    conn.resources.resource_groups.create_or_update("someone-else", {"location": "westeurope"})
    other = conn.resources.resource_groups.get("someone-else").id
    edit(nb, lambda c: c.update(role_assignment=good["role_assignment"]))
    edit(nb, lambda c: c["resource_group"].update(name="someone-else", id=other))
    refused(nb, fresh, "someone-else")
    assert any(g["name"] == "someone-else" for g in tenant(fresh)["resource_groups"])
    # the registry recorded with another creation time
    edit(nb, lambda c: c.update(resource_group=good["resource_group"]))
    edit(nb, lambda c: c["registry"].update(created="2020-01-01T00:00:00+00:00"))
    refused(nb, fresh, "2020-01-01")
    edit(nb, lambda c: c.update(registry=good["registry"]))
    nb(teardown=True)
    assert not any(
        a["display_name"].startswith("binderhub-sp") for a in tenant(fresh)["applications"]
    )


def test_what_this_deployment_makes_carries_its_mark(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    nb, conn = deployed(fresh, tmp_path)
    mark = f"binderhub-registry {record(nb)['deployment']}"
    created = record(nb)["created"]

    async def graph() -> list[Any]:
        return [
            await conn.application(created[k]["id"]) for k in ("application", "pull_application")
        ]

    for app in asyncio.run(graph()):
        assert app.notes == mark and mark in app.tags and app.created
    assert created["application"]["created"] and created["registry"]["created"]
    assignment = conn.authorization.role_assignments.get_by_id(created["role_assignment"]["id"])
    assert assignment.description == mark
    group = conn.resources.resource_groups.get(created["resource_group"]["name"])
    assert group.tags["binderhub-registry"] == record(nb)["deployment"]


def test_a_record_from_before_marks_is_marked_by_a_rerun_then_torn_down(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """Decided: an application recorded without a creation time, living with no mark at all,
    is accepted when its id, appId and name match; a rerun marks it (PATCH notes, tags)."""
    from msgraph.generated.models.application import Application

    nb, conn = deployed(fresh, tmp_path)
    created = record(nb)["created"]

    async def unmark() -> None:
        item = conn.graph().applications.by_application_id(created["application"]["id"])
        await item.patch(Application(notes="", tags=[]))

    asyncio.run(unmark())
    edit(nb, lambda c: c["application"].pop("created"))
    nb()
    assert record(nb)["created"]["application"]["created"] == created["application"]["created"]
    app = asyncio.run(conn.application(created["application"]["id"]))
    assert app.notes == f"binderhub-registry {record(nb)['deployment']}"
    nb(teardown=True)
    assert not any(
        a["display_name"].startswith("binderhub-sp") for a in tenant(fresh)["applications"]
    )
