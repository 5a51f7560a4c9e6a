"""ECR keeps the registry small: the registry helper puts a lifecycle policy on each repository
it creates (``sinceImagePushed`` ``retention_days`` days, ``tagStatus`` any), and the fake's
clock (``POST /_sandbox/clock``, :meth:`EcrCloud.clock_ahead`) runs ECR's evaluator over it.

After notebook 06's steps (the helper deployed with ``retention_days`` 30): an image pushed too
long ago goes, from ECR's records and from the registry (a pull fails); one pushed later stays;
a repository outside the prefix, or under it without the policy, is untouched. The evaluator's
rule precedence is checked against the ECR user guide's own examples.

The backend runs in this process on an app of its own (conftest's ``ecr``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from binderhub_registry import Runner
from binderhub_registry.providers import ecr as provider

from .helpers import ECR_DEFAULTS, ECR_REGION, EcrBox

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def deployed(box: EcrBox, out: Path) -> tuple[str, str]:
    """Notebook 06's steps up to Verify (which pushes its check image); the helper's URL and
    BinderHub's token for it."""
    params = provider.validate(ECR_DEFAULTS | {"output_dir": str(out)})
    conn = provider.connect(params, box.app.url, box.ca_file, box.admin, box.registry)
    run = Runner(backoff=0.0)
    run.step("Sign in to AWS", provider.who_am_i, conn)
    run.step("The helper's IAM policy", provider.ensure_policy, conn)
    run.step("The helper's identity", provider.ensure_identity, conn)
    run.step("The registry helper", provider.ensure_helper, conn)
    run.step("User pods' pull", provider.ensure_pull_credential, conn)
    files = run.step("Write the values", conn.write_values)
    run.step("Verify", conn.verify, files)
    failed = [f"{r.title}: {r.detail}" for r in run.checklist.rows if r.status == "failed"]
    assert not failed, failed
    config = yaml.safe_load((out / "config.yaml").read_text())["config"]
    secret = yaml.safe_load((out / "secret.yaml").read_text())["config"]
    helper = config["ExternalRegistryHelper"]["service_url"]
    return helper, secret["ExternalRegistryHelper"]["auth_token"]


def binderhub_login(box: EcrBox, helper: str, token: str, image: str) -> tuple[str, str]:
    """What BinderHub's ExternalRegistryHelper does before a build: look the repository up,
    have the helper create it (with its lifecycle policy), then ask for push credentials."""
    headers = {"Authorization": f"Bearer {token}"}
    found = requests.get(f"{helper}/repo/{image}", headers=headers, verify=box.ca_file)
    assert found.status_code == 404, found.text  # a new image: no repository yet
    made = requests.post(f"{helper}/repo/{image}", headers=headers, verify=box.ca_file)
    assert made.status_code == 200, made.text
    answer = requests.post(f"{helper}/token/{image}:v1", headers=headers, verify=box.ca_file)
    assert answer.status_code == 200, answer.text
    return answer.json()["username"], answer.json()["password"]


def admin_login(box: EcrBox) -> tuple[str, str]:
    """The administrator's registry credentials (GetAuthorizationToken)."""
    import base64

    data = box.client("ecr").get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return username, password


def push(box: EcrBox, login: tuple[str, str], repository: str, tag: str = "v1") -> None:
    """Push a one-layer image of its own content as ``repository:tag`` (Basic on every call,
    as docker does with ECR's credentials)."""
    http = requests.Session()
    http.auth, http.verify, http.trust_env = login, box.ca_file, False
    url = box.registry
    blobs = []
    config = json.dumps({"architecture": "amd64", "os": "linux", "x": f"{repository}:{tag}"})
    for blob in (f"layer of {repository}:{tag}\n".encode(), config.encode()):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        started = http.post(f"{url}/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        location = location if location.startswith("http") else url + location
        sep = "&" if "?" in location else "?"
        done = http.put(f"{location}{sep}digest={digest}", data=blob)
        assert done.status_code == 201, done.text
        blobs.append({"digest": digest, "size": len(blob)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blobs[1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **blobs[0]}],
    }
    stored = http.put(
        f"{url}/v2/{repository}/manifests/{tag}",
        data=json.dumps(manifest),
        headers={"Content-Type": MANIFEST},
    )
    assert stored.status_code == 201, stored.text


def pull(box: EcrBox, login: tuple[str, str], repository: str, tag: str = "v1") -> int:
    """A manifest GET, as a kubelet's pull starts: its status."""
    answer = requests.get(
        f"{box.registry}/v2/{repository}/manifests/{tag}",
        auth=login,
        headers={"Accept": MANIFEST},
        verify=box.ca_file,
        timeout=10,
    )
    return answer.status_code


def advance(box: EcrBox, days: float) -> list[str]:
    """``POST /_sandbox/clock`` for this backend (the sandbox holds its lock the same way)."""
    with box.cloud.lock:
        deleted: list[str] = box.cloud.clock_ahead(days).get("deleted", [])
    return deleted


def tags(box: EcrBox, repository: str) -> list[str]:
    """The tags ECR's DescribeImages lists for ``repository``."""
    images = box.client("ecr").describe_images(repositoryName=repository)["imageDetails"]
    return sorted(t for i in images for t in i.get("imageTags", []))


def test_an_old_image_under_the_prefix_goes_a_recent_one_and_others_stay(
    ecr: EcrBox, tmp_path: Path
) -> None:
    helper, token = deployed(ecr, tmp_path / "values")
    old, new = "binderhub/binder-old", "binderhub/binder-new"
    push(ecr, binderhub_login(ecr, helper, token, old), old)
    admin = admin_login(ecr)
    api = ecr.client("ecr")
    for outside in ("other/base", "binderhub/binder-no-policy"):  # made without the helper
        api.create_repository(repositoryName=outside)
        push(ecr, admin, outside)
    assert advance(ecr, 20) == []  # nothing pushed more than 30 days ago
    push(ecr, binderhub_login(ecr, helper, token, new), new)  # a fresh token: the clock moved
    deleted = advance(ecr, 15)  # 35 days since the first pushes, 15 since the second
    check = "binderhub/binder-binderhub-registry-check"  # Verify's image, as old
    assert deleted == [f"{ECR_REGION}/{check}:verify", f"{ECR_REGION}/{old}:v1"]
    admin = admin_login(ecr)
    assert tags(ecr, old) == [] and pull(ecr, admin, old) == 404  # gone from the registry too
    assert tags(ecr, new) == ["v1"] and pull(ecr, admin, new) == 200
    for outside in ("other/base", "binderhub/binder-no-policy"):
        assert tags(ecr, outside) == ["v1"] and pull(ecr, admin, outside) == 200
    assert advance(ecr, 16) == [f"{ECR_REGION}/{new}:v1"]  # its turn, 31 days after its push


def test_describe_images_dates_a_push_on_ecr_s_clock(ecr: EcrBox) -> None:
    api = ecr.client("ecr")
    api.create_repository(repositoryName="binderhub/binder-x")
    advance(ecr, 10)
    push(ecr, admin_login(ecr), "binderhub/binder-x")
    (image,) = api.describe_images(repositoryName="binderhub/binder-x")["imageDetails"]
    assert abs(image["imagePushedAt"].timestamp() - ecr.cloud.clock()) < 60
    # the registry's digest, as ECR reports the pushed manifest's
    answer = requests.head(
        f"{ecr.registry}/v2/binderhub/binder-x/manifests/v1",
        auth=admin_login(ecr),
        headers={"Accept": MANIFEST},
        verify=ecr.ca_file,
        timeout=10,
    )
    assert image["imageDigest"] == answer.headers["Docker-Content-Digest"]


# --- the evaluator against the ECR user guide's examples ------------------------------------
DAY = 86400.0
NOW = 1_000 * DAY


def image(name: str, tags: list[str], days_ago: float) -> Any:
    from binderhub_registry.sandbox.ecr.lifecycle import Image

    return Image(name, tuple(tags), NOW - days_ago * DAY)


def expired(policy: dict[str, Any], images: list[Any], now: float) -> dict[str, int]:
    """The evaluator (imported here: the integration tests above need only the backend)."""
    from binderhub_registry.sandbox.ecr.lifecycle import expired as evaluate

    return evaluate(policy, images, now)


def rule(priority: int, count: dict[str, Any], **selection: Any) -> dict[str, Any]:
    return {
        "rulePriority": priority,
        "selection": selection | count,
        "action": {"type": "expire"},
    }


def more_than(n: int) -> dict[str, Any]:
    return {"countType": "imageCountMoreThan", "countNumber": n}


def older_than(days: int) -> dict[str, Any]:
    return {"countType": "sinceImagePushed", "countUnit": "days", "countNumber": days}


def test_a_higher_rule_s_images_cannot_be_expired_by_a_lower_one() -> None:
    """The guide's "Filtering on multiple rules": rule 1 (prod, more than 1) marks A; rule 2
    (beta, more than 1) marks A and B, but A is rule 1's already and B matches rule 1's tags."""
    images = [
        image("A", ["beta-1", "prod-1"], 10),
        image("B", ["beta-2", "prod-2"], 9),
        image("C", ["beta-3"], 8),
    ]
    policy = {
        "rules": [
            rule(2, more_than(1), tagStatus="tagged", tagPrefixList=["beta"]),
            rule(1, more_than(1), tagStatus="tagged", tagPrefixList=["prod"]),
        ]
    }
    assert expired(policy, images, NOW) == {"A": 1}


def test_a_prefix_list_needs_every_prefix_on_some_tag() -> None:
    """The guide's "Filtering on multiple tags in a single rule": alpha and beta, more than 1."""
    images = [
        image("A", ["alpha-1", "beta-1", "gamma-1"], 10),
        image("B", ["alpha-2", "beta-2"], 9),
        image("C", ["alpha-3", "beta-3", "gamma-3"], 8),
        image("D", ["alpha-4"], 7),
    ]
    policy = {"rules": [rule(1, more_than(1), tagStatus="tagged", tagPrefixList=["alpha", "beta"])]}
    assert expired(policy, images, NOW) == {"A": 1, "B": 1}


def test_since_image_pushed_expires_only_what_is_older_than_its_days() -> None:
    images = [image("old", ["a"], 31), image("edge", ["b"], 30), image("new", ["c"], 1)]
    assert expired({"rules": [rule(1000, older_than(30), tagStatus="any")]}, images, NOW) == {
        "old": 1000
    }


def test_untagged_and_pattern_rules_and_the_any_rule_last() -> None:
    images = [
        image("untagged-old", [], 40),
        image("untagged-new", [], 2),
        image("prod-old", ["prod-1"], 40),
        image("dev-old", ["dev-1"], 40),
        image("dev-new", ["dev-2"], 1),
    ]
    policy = {
        "rules": [
            rule(1, more_than(1), tagStatus="untagged"),
            rule(2, more_than(5), tagStatus="tagged", tagPatternList=["prod*"]),
            rule(3, older_than(30), tagStatus="any"),
        ]
    }
    # prod-old matches rule 2's tags (kept by its count): the any rule cannot expire it
    assert expired(policy, images, NOW) == {"untagged-old": 1, "dev-old": 3}


@pytest.mark.parametrize(
    ("pattern", "tag", "matches"),
    [
        ("prod*", "prod", True),
        ("prod*", "production-team1", True),
        ("*prod*", "repo-production", True),
        ("prod*", "preprod", False),
        ("v1.*", "v1x", False),  # only * is a wildcard
    ],
)
def test_tag_patterns_as_the_guide_describes(pattern: str, tag: str, matches: bool) -> None:
    from binderhub_registry.sandbox.ecr.lifecycle import pattern_matches

    assert pattern_matches(pattern, tag) is matches


def test_what_is_not_modelled_marks_nothing() -> None:
    images = [image("A", ["a"], 400)]
    pulled = {"countType": "sinceImagePulled", "countUnit": "days", "countNumber": 1}
    assert expired({"rules": [rule(1, pulled, tagStatus="any")]}, images, NOW) == {}
    transition = rule(1, older_than(1), tagStatus="any") | {
        "action": {"type": "transition", "targetStorageClass": "archive"}
    }
    assert expired({"rules": [transition]}, images, NOW) == {}
