"""Issue 23, Azure: nothing is deleted that this deployment did not make, and no wait is
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

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import InvalidParameter, providers, sandbox

from .conftest import NOTEBOOKS, InProcessRun
from .test_azure_sandbox import settings
from .test_rotation import defaults

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

    settings(fresh, registry_polls=10**9)
    p = azure.validate(defaults(AZURE, tmp_path))
    conn = azure.sign_in(p).value
    conn.lro_deadline = 1.0
    azure.select_subscription(conn)
    azure.ensure_resource_group(conn)
    with pytest.raises(CloudError, match=r"creating registry binderhubdemo did not finish") as e:
        azure.ensure_registry(conn)
    assert len(str(e.value).splitlines()) == 1 and "az acr show" in str(e.value)
