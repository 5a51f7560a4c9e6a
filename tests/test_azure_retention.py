"""ACR keeps the registry small: the notebook sets a scheduled ACR Task running ``acr purge
--filter '<project>/<prefix>.*:.*' --ago <N>d --untagged``, and the fake runs it on a clock the
test moves (``POST /_sandbox/clock``).

Shown with the clock advanced: an image under the prefix pushed too long ago goes; one pushed
recently stays (ACR keeps each tag's last update, not a pull time); images outside the prefix,
and outside the project, stay. A dry run shows the command and changes nothing, a rerun changes
nothing, teardown removes only this deployment's task (someone else's of the same name is left
alone), ``retention_days = 0`` sets none; the storage step reports listUsages' Size against the
SKU's included storage, warning above 80%. Driven in-process (the notebook's own cells).

The fake's ``acr purge`` on the sandbox's registry: ``--untagged`` deletes the manifests left
untagged (by the run or before), and nothing elsewhere; without it a purged tag's manifest stays
stored; ``--dry-run`` and a command acr purge refuses delete nothing. Its selection flag by flag,
with acr-cli's sources: test_azure_purge.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import CloudError, providers, sandbox
from binderhub_registry.providers.azure import retention
from binderhub_registry.push import push_auth, push_image, tiny_image
from binderhub_registry.registry_http import RegistryHTTP
from binderhub_registry.sandbox.azure.retention import _runs
from binderhub_registry.verify import VerifyHints

from .conftest import NOTEBOOKS, InProcessRun
from .helpers import settings

pytestmark = pytest.mark.notebook

AZURE = providers.get("azure")
TITLE = "Purge task: keep the registry small"


def notebook(tmp_path: Path) -> InProcessRun:
    return InProcessRun(NOTEBOOKS / f"{AZURE.NOTEBOOK}.ipynb", tmp_path)


def row(namespace: dict[str, Any], title: str = TITLE) -> tuple[str, str]:
    found = [r for r in namespace["run"].checklist.rows if r.title == title][-1]
    return found.status, found.detail


def push(box: sandbox.Sandbox, conn: Any, image: str) -> None:
    """Push the tiny image as ``<image>:v1`` with BinderHub's service principal."""
    http = RegistryHTTP(conn.principal.app_id, conn.secret, box.ca_file)
    url = f"https://{conn.registry.login_server}"
    auth = push_auth(http, url, image, "pull,push", check="push", hints=VerifyHints())
    push_image(http, url, image, "v1", auth, hints=VerifyHints())


def tags_in(deleted: list[str]) -> list[str]:
    """The tags of a purge's ``deleted`` (manifests are ``repository@digest``)."""
    return [d for d in deleted if "@" not in d]


def images(box: sandbox.Sandbox) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for registry in box.state()["azure"]["registries"]:
        found |= registry["repositories"]
    return found


def task(conn: Any) -> Any:
    """The task as ARM answers it (None: none)."""
    from binderhub_registry.providers.azure.errors import arm_if_present

    return arm_if_present(
        conn.resources.resources.get_by_id,
        retention.task_id(conn),
        api_version=retention.TASKS_API_VERSION,
    )


def writes(box: sandbox.Sandbox) -> list[str]:
    return [
        f"{c['method']} {c['path']}"
        for c in box.log()
        if c["method"] in ("PUT", "PATCH", "DELETE", "POST") and "/tasks/" in c["path"]
    ]


def test_an_old_image_under_the_prefix_goes_a_recent_one_and_others_stay(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    ns = notebook(tmp_path)()
    conn = ns["az"]
    status, detail = row(ns)
    command = "acr purge --filter 'binderhub/binder-.*:.*' --ago 30d --untagged"
    assert status == "created" and command in detail and "not pushed for 30 days" in detail
    live = task(conn)
    assert live.tags["binderhub-registry"] == conn.record.deployment
    content = base64.b64decode(live.properties["step"]["encodedTaskContent"]).decode()
    assert f"- cmd: {command}" in content
    assert live.properties["trigger"]["timerTriggers"][0]["schedule"] == "0 0 * * *"
    for image in ("binderhub/binder-old", "binderhub/other", "elsewhere/binder-x"):
        push(fresh, conn, image)
    assert fresh.advance_clock(20)["azure"]["deleted"] == []
    push(fresh, conn, "binderhub/binder-new")
    ran = fresh.advance_clock(15)["azure"]
    # verify's test image is under the prefix too, pushed with the old one
    check = "binderhub/binder-binderhub-registry-check"
    assert tags_in(ran["deleted"]) == [
        f"binderhubdemo/{check}:verify",
        "binderhubdemo/binderhub/binder-old:v1",
    ]
    # --untagged: the manifests those tags left go too (ACR would otherwise keep them, stored)
    assert [d.split("@")[0] for d in ran["deleted"] if "@" in d] == [
        f"binderhubdemo/{check}",
        "binderhubdemo/binderhub/binder-old",
    ]
    assert images(fresh) == {
        "binderhub/binder-new": ["v1"],
        "binderhub/other": ["v1"],
        "elsewhere/binder-x": ["v1"],
    }
    # the recent one goes once it too is older than 30 days
    assert tags_in(fresh.advance_clock(16)["azure"]["deleted"]) == [
        "binderhubdemo/binderhub/binder-new:v1"
    ]


def test_a_dry_run_shows_the_command_and_changes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    ns = notebook(tmp_path)(dry_run=True)
    status, detail = row(ns)
    assert status == "planned"
    assert "acr purge --filter 'binderhub/binder-.*:.*' --ago 30d --untagged" in detail
    assert "0 0 * * *" in detail
    assert writes(fresh) == []
    # over an existing registry too: the task is looked up, then only planned
    notebook(tmp_path)()
    before = len(writes(fresh))
    ns = notebook(tmp_path)(dry_run=True, retention_days=7)
    status, detail = row(ns)
    assert status == "planned" and "update ACR Task" in detail and "--ago 7d" in detail
    assert len(writes(fresh)) == before


def test_a_rerun_changes_nothing_and_another_retention_updates_ours(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    nb = notebook(tmp_path)
    nb()
    before = writes(fresh)
    ns = nb()
    assert row(ns)[0] == "reused" and writes(fresh) == before
    ns = nb(retention_days=7)
    assert row(ns)[0] == "updated" and "--ago 7d" in row(ns)[1]
    ns = nb(retention_days=0)
    status, detail = row(ns)
    assert status == "deleted" and "every image is kept" in detail
    assert task(ns["az"]) is None


def test_retention_days_0_sets_no_task(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    ns = notebook(tmp_path)(retention_days=0)
    assert row(ns) == ("skipped", "retention_days = 0: every image is kept: no purge task")
    assert task(ns["az"]) is None and writes(fresh) == []


def test_someone_elses_task_of_that_name_is_left_alone(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    nb = notebook(tmp_path)
    conn = nb()["az"]
    theirs = task(conn)
    theirs.tags = {"owner": "someone else"}
    conn.resources.resources.begin_create_or_update_by_id(
        retention.task_id(conn), theirs, api_version=retention.TASKS_API_VERSION
    ).result()
    with pytest.raises(CloudError, match="did not create") as e:
        nb()
    assert len(str(e.value).splitlines()) == 1
    assert task(conn).tags == {"owner": "someone else"}
    # teardown refuses too, and deletes nothing
    before = images(fresh), box_registries(fresh)
    with pytest.raises(CloudError, match="not this deployment's"):
        nb(teardown=True)
    assert (images(fresh), box_registries(fresh)) == before
    assert task(conn) is not None


def box_registries(box: sandbox.Sandbox) -> list[str]:
    return [r["name"] for r in box.state()["azure"]["registries"]]


def test_teardown_removes_our_task(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    nb = notebook(tmp_path)
    conn = nb()["az"]
    assert task(conn) is not None
    nb(teardown=True)
    assert any(w.startswith("DELETE") and "/tasks/" in w for w in writes(fresh))
    assert box_registries(fresh) == []


def test_storage_used_against_the_skus_included_storage(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    nb = notebook(tmp_path)
    ns = nb()
    status, detail = row(ns, "Storage used")
    assert status == "done" and "of 10.0 GiB used" in detail and "listUsages" in detail
    settings(fresh, "azure", registry_used_bytes=9 * 1024**3)
    ns = nb()
    status, detail = row(ns, "Storage used")
    assert status == "warning" and "9.0 GiB of 10.0 GiB used (90.0%)" in detail


def test_the_fake_runs_a_daily_schedule_at_its_time() -> None:
    import datetime as dt

    start = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    daily = {"trigger": {"timerTriggers": [{"schedule": "0 0 * * *"}]}}
    runs = _runs(daily, start, start + dt.timedelta(days=2))
    assert runs == [dt.datetime(2026, 1, d, tzinfo=dt.UTC) for d in (2, 3)]


def test_the_filter_escapes_the_literal_prefix() -> None:
    assert retention.purge_command("my.proj", "binder-", 5) == (
        "acr purge --filter 'my\\.proj/binder-.*:.*' --ago 5d --untagged"
    )


def test_on_an_abac_registry_the_task_is_set_with_a_warning_and_deletes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """az acr task create warns that a task on an ABAC registry cannot delete: so does the step,
    and the fake's purge deletes nothing there."""
    from azure.mgmt.containerregistry.models import Registry, RegistryProperties, Sku

    nb = notebook(tmp_path)
    conn = nb()["az"]
    p = conn.params
    abac = RegistryProperties(role_assignment_mode="AbacRepositoryPermissions")
    conn.acr.registries.begin_create(
        p.resource_group,
        p.acr_name,
        Registry(location=p.location, sku=Sku(name=p.sku), tags=conn.tags, properties=abac),
    ).result()
    ns = nb()
    status, detail = row(ns)
    assert status == "warning" and "ABAC mode" in detail and "--source-acr-auth-id" in detail
    before = images(fresh)
    assert fresh.advance_clock(40)["azure"]["deleted"] == []
    assert images(fresh) == before


# --- the fake's acr purge on the sandbox's registry (its selection: test_azure_purge.py) ------
def set_command(conn: Any, command: str) -> None:
    """Our task, now running ``command`` (as ``az acr task update --cmd`` would set it)."""
    ours = task(conn)
    ours.properties["step"]["encodedTaskContent"] = base64.b64encode(
        retention._yaml(command).encode()
    ).decode()
    conn.resources.resources.begin_create_or_update_by_id(
        retention.task_id(conn), ours, api_version=retention.TASKS_API_VERSION
    ).result()


def put_manifest(box: sandbox.Sandbox, conn: Any, image: str, tag: str, note: str) -> str:
    """Push the tiny image's manifest again, with an annotation (other content: another digest),
    as ``image:tag``; the manifest it replaces there is left untagged. Returns the new digest."""
    http = RegistryHTTP(conn.principal.app_id, conn.secret, box.ca_file)
    url = f"https://{conn.registry.login_server}"
    auth = push_auth(http, url, image, "pull,push", check="push", hints=VerifyHints())
    manifest = json.loads(tiny_image()[2]) | {"annotations": {"note": note}}
    body = json.dumps(manifest).encode()
    r = http.send(
        "PUT",
        f"{url}/v2/{image}/manifests/{tag}",
        data=body,
        headers=auth | {"Content-Type": manifest["mediaType"]},
    )
    assert r.status_code == 201, r.text
    return "sha256:" + hashlib.sha256(body).hexdigest()


def stored(box: sandbox.Sandbox, conn: Any, image: str, reference: str) -> bool:
    """Whether the registry still serves ``image@reference`` (a manifest, tagged or not)."""
    http = RegistryHTTP(conn.principal.app_id, conn.secret, box.ca_file)
    url = f"https://{conn.registry.login_server}"
    auth = push_auth(http, url, image, "pull,push", check="push", hints=VerifyHints())
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    r = http.send("GET", f"{url}/v2/{image}/manifests/{reference}", headers=auth | accept)
    return bool(r.ok)


def test_untagged_deletes_the_manifests_left_untagged_and_those_untagged_before(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """``--untagged`` (purge.go: purgeDanglingManifests after purgeTags): the manifest whose tag
    the run deleted goes, and so does one a newer push had left untagged; a tagged image in a
    repository the filter does not select stays."""
    conn = notebook(tmp_path)()["az"]
    set_command(conn, "acr purge --filter 'binderhub/binder-a:.*' --ago 1d --untagged")
    push(fresh, conn, "binderhub/binder-a")
    untagged_before = put_manifest(fresh, conn, "binderhub/binder-a", "v2", "one")
    untagged_by_run = put_manifest(fresh, conn, "binderhub/binder-a", "v2", "two")
    push(fresh, conn, "binderhub/binder-b")
    assert stored(fresh, conn, "binderhub/binder-a", untagged_before)
    ran = fresh.advance_clock(2)["azure"]["deleted"]
    repo = "binderhubdemo/binderhub/binder-a"
    assert tags_in(ran) == [f"{repo}:v1", f"{repo}:v2"]
    assert f"{repo}@{untagged_before}" in ran and f"{repo}@{untagged_by_run}" in ran
    assert len(ran) == 5  # v1's manifest too
    for digest in (untagged_before, untagged_by_run):
        assert not stored(fresh, conn, "binderhub/binder-a", digest)
    assert images(fresh)["binderhub/binder-b"] == ["v1"]
    assert "binderhub/binder-a" not in images(fresh)


def test_without_untagged_a_purged_tag_leaves_its_manifest_stored(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """ACR untags: "By default, the command deletes only tag references, not the underlying
    manifests" (the purge page). The manifest stays, as does a tag on it the filter does not
    select; a later run with ``--untagged`` deletes the untagged one."""
    conn = notebook(tmp_path)()["az"]
    set_command(conn, "acr purge --filter 'binderhub/binder-a:^v' --ago 1d")
    image = "binderhub/binder-a"
    push(fresh, conn, image)  # the blobs (v1 is then pushed again, with other content)
    shared = put_manifest(fresh, conn, image, "v1", "shared")
    assert put_manifest(fresh, conn, image, "keep", "shared") == shared
    alone = put_manifest(fresh, conn, image, "v2", "alone")
    ran = fresh.advance_clock(2)["azure"]["deleted"]
    assert sorted(ran) == [f"binderhubdemo/{image}:v1", f"binderhubdemo/{image}:v2"]
    assert images(fresh)[image] == ["keep"]
    assert stored(fresh, conn, image, alone) and stored(fresh, conn, image, shared)
    assert stored(fresh, conn, image, "keep")
    set_command(conn, "acr purge --filter 'binderhub/binder-a:^v' --ago 1d --untagged")
    ran = fresh.advance_clock(2)["azure"]["deleted"]
    # the first push's manifest too: the second push of v1 had left it untagged
    first = "sha256:" + hashlib.sha256(tiny_image()[2]).hexdigest()
    assert sorted(ran) == sorted(
        [f"binderhubdemo/{image}@{alone}", f"binderhubdemo/{image}@{first}"]
    )
    assert not stored(fresh, conn, image, alone) and stored(fresh, conn, image, "keep")


def test_a_dry_run_purge_deletes_nothing(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    """``--dry-run``: "no manifest or tag will be deleted" (its flag help)."""
    conn = notebook(tmp_path)()["az"]
    set_command(conn, "acr purge --filter '.*:.*' --ago 1d --untagged --dry-run")
    push(fresh, conn, "binderhub/binder-a")
    before = put_manifest(fresh, conn, "binderhub/binder-a", "v1", "newer")
    listed = images(fresh)
    assert fresh.advance_clock(2)["azure"]["deleted"] == []
    assert images(fresh) == listed and stored(fresh, conn, "binderhub/binder-a", before)


def test_a_purge_acr_purge_refuses_deletes_nothing(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    """A filter with two splitting colons (GetRepositoryAndTagRegex: "unable to correctly parse
    filter flag"), or no --ago: the run fails before any delete."""
    conn = notebook(tmp_path)()["az"]
    push(fresh, conn, "binderhub/binder-a")
    listed = images(fresh)
    for command in (
        "acr purge --filter 'binderhubdemo.azurecr.io:443/binderhub/binder-a:.*' --ago 1d",
        "acr purge --filter 'binderhub/binder-a:.*' --untagged",
    ):
        set_command(conn, command)
        assert fresh.advance_clock(2)["azure"]["deleted"] == []
    assert images(fresh) == listed


def test_a_repository_purged_of_every_tag_still_counts_in_list_usages(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """Without ``--untagged`` the manifests stay stored ("deletes only tag references, not the
    underlying manifests and layer data", the purge page), so listUsages' Size stays, also for
    repositories left with no tag at all (docker-registry then lists them with none)."""
    conn = notebook(tmp_path)()["az"]
    set_command(conn, "acr purge --filter '.*:.*' --ago 1d")
    push(fresh, conn, "binderhub/binder-a")
    used = conn.storage_used()
    assert used is not None and used.used_bytes > 0
    fresh.advance_clock(2)
    assert images(fresh) == {}  # every tag of every repository purged (verify's too)
    after = conn.storage_used()
    assert after is not None and after.used_bytes == used.used_bytes
