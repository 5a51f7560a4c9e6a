"""Organization access tokens and the new repositories BinderHub pushes.

Docker's current description of a token's repository resource says the path "must be an
existing repository name" (globs such as ``org/*`` allowed), and its access token reference
says creating a repository takes the organization scope ``scope-repository-create``, which
no repository scope grants. So an OAT with Image Push on ``org/*`` alone pushes to the
organization's existing repositories, never a new one; with ``scope-repository-create`` the
fake lets its push create one (that a push counts as that creation: unproven, see
``sandbox/dockerhub.py``), and ``settings.oat_new_repositories`` picks the stricter
("never") or the relaxed ("any") reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from binderhub_registry import sandbox
from binderhub_registry.providers import dockerhub

from . import helpers
from .skopeo import needs_skopeo, skopeo_push

ORG = "binderhubdemoorg"  # the seeded account owns it, on a Team plan
PUSH_ON_ALL = {"type": "TYPE_REPO", "path": f"{ORG}/*", "scopes": ["scope-image-push"]}
CREATE = {"type": "TYPE_ORG", "path": ORG, "scopes": ["scope-repository-create"]}


def hub(box: sandbox.Sandbox, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(
        method, f"{box.url}/dockerhub{path}", verify=box.ca_file, timeout=10, **kw
    )


def owner(box: sandbox.Sandbox) -> dict[str, str]:
    """The owner's password session."""
    creds = box.credentials("dockerhub")
    r = hub(
        box,
        "POST",
        "/v2/auth/token",
        json={"identifier": creds["username"], "secret": creds["password"]},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def make_oat(box: sandbox.Sandbox, *resources: dict[str, Any]) -> requests.Response:
    body = {"label": "BinderHub", "resources": list(resources)}
    return hub(box, "POST", f"/v2/orgs/{ORG}/access-tokens", headers=owner(box), json=body)


def oat(box: sandbox.Sandbox, *resources: dict[str, Any]) -> str:
    made = make_oat(box, *resources)
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def realm(box: sandbox.Sandbox, secret: str, repository: str) -> list[str]:
    """What the registry's realm grants the OAT on ``repository`` when it asks to push."""
    return sorted(helpers.realm(box, ORG, secret, repository))


def push(box: sandbox.Sandbox, work: Path, user: str, secret: str, image: str) -> Any:
    """skopeo's push of a tiny image to ``image`` (``name:tag``) with these credentials."""
    url = box.registries["dockerhub"]
    registry = {"url": url, "username": user, "password": secret}
    return skopeo_push(box.ca_file, work, registry, f"{url.split('://')[1]}/{image}")


def existing(box: sandbox.Sandbox, work: Path, name: str) -> None:
    """Make ``ORG/name`` exist: its owner pushes to it (an owner may create repositories)."""
    creds = box.credentials("dockerhub")
    pushed = push(box, work, creds["username"], creds["password"], f"{ORG}/{name}:v1")
    assert pushed.returncode == 0, pushed.stderr


def test_image_push_on_all_repositories_does_not_create_one(fresh: sandbox.Sandbox) -> None:
    # the old fake let Image Push on org/* push (and so create) any repository
    token = oat(fresh, PUSH_ON_ALL)
    assert realm(fresh, token, f"{ORG}/new") == []


@needs_skopeo
def test_image_push_on_all_repositories_pushes_to_existing_ones(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    existing(fresh, tmp_path / "owner", "old")
    token = oat(fresh, PUSH_ON_ALL)
    assert realm(fresh, token, f"{ORG}/old") == ["pull", "push"]
    assert push(fresh, tmp_path / "oat", ORG, token, f"{ORG}/old:v2").returncode == 0
    refused = push(fresh, tmp_path / "oat", ORG, token, f"{ORG}/new:v1")
    assert refused.returncode != 0
    assert f"{ORG}/new" not in fresh.state()["dockerhub"]["repositories"]


@needs_skopeo
def test_repository_create_scope_lets_a_push_create_one(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    token = oat(fresh, PUSH_ON_ALL, CREATE)
    assert realm(fresh, token, f"{ORG}/new") == ["pull", "push"]
    assert push(fresh, tmp_path, ORG, token, f"{ORG}/new:v1").returncode == 0
    assert fresh.state()["dockerhub"]["repositories"][f"{ORG}/new"] == ["v1"]
    assert realm(fresh, token, "binderhubdemo/new") == []  # not the organization's


def test_the_named_settings_choose_the_reading(fresh: sandbox.Sandbox) -> None:
    assert fresh._admin("GET", "dockerhub/settings")["oat_new_repositories"] == "scope"
    plain, creating = oat(fresh, PUSH_ON_ALL), oat(fresh, PUSH_ON_ALL, CREATE)
    fresh._admin("POST", "dockerhub/settings", {"oat_new_repositories": "never"})
    assert realm(fresh, creating, f"{ORG}/new") == []
    fresh._admin("POST", "dockerhub/settings", {"oat_new_repositories": "any"})
    assert realm(fresh, plain, f"{ORG}/new") == ["pull", "push"]
    fresh.reset()
    assert fresh._admin("GET", "dockerhub/settings")["oat_new_repositories"] == "scope"


@needs_skopeo
def test_resources_follow_the_current_description(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    # a repository path must name an existing repository (globs allowed)
    missing = make_oat(
        fresh, {"type": "TYPE_REPO", "path": f"{ORG}/new", "scopes": ["scope-image-push"]}
    )
    assert missing.status_code == 400
    assert "must be an existing repository name" in missing.json()["message"]
    existing(fresh, tmp_path, "named")
    one = {"type": "TYPE_REPO", "path": f"{ORG}/named", "scopes": ["scope-image-push"]}
    token = oat(fresh, one)
    assert realm(fresh, token, f"{ORG}/named") == ["pull", "push"]
    assert realm(fresh, token, f"{ORG}/other") == []
    # the current scope names; the old description's example names are refused
    for scopes in (["repo-push"], ["repo-pull"], ["scope-repository-create"]):
        bad = make_oat(fresh, {"type": "TYPE_REPO", "path": f"{ORG}/*", "scopes": scopes})
        assert bad.status_code == 400, scopes
        assert bad.json()["fields"] == {"resources": [bad.json()["message"]]}
    assert (
        make_oat(
            fresh, {"type": "TYPE_ORG", "path": ORG, "scopes": ["scope-image-push"]}
        ).status_code
        == 400
    )
    assert make_oat(fresh).status_code == 400  # at least one resource


def test_the_client_says_the_organization_token_path_is_unproven() -> None:
    line = dockerhub.oat_new_repositories(ORG)
    assert "unproven" in line and "scope-repository-create" in line and "\n" not in line
    assert "Editor or Owner" in line
    assert "scope-repository-create" in dockerhub.HubConnection.HINTS.push


@needs_skopeo
def test_public_repositories_through_their_own_path(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    existing(fresh, tmp_path, "shown")  # public: a new account's default privacy
    public = {"type": "TYPE_REPO", "path": "*/*/public", "scopes": ["scope-image-push"]}
    token = oat(fresh, public)
    assert realm(fresh, token, f"{ORG}/shown") == ["pull"]  # read, never write
    assert realm(fresh, oat(fresh, PUSH_ON_ALL), "binderhubdemo/none") == []
