"""Verification against the sandbox's real registry (docker-registry, Docker Hub's token auth)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from binderhub_registry import RegistryValues, Secret, VerificationFailed, verify
from binderhub_registry.binderhub import docker_config_json
from binderhub_registry.sandbox import Sandbox
from binderhub_registry.verify import CHECK_IMAGE, _test_image


def hub_session(box: Sandbox, user: str = "dockerhub") -> dict[str, str]:
    """Authorization header of a signed-in session on the fake Hub API."""
    creds = box.credentials(user)
    session = requests.post(
        f"{box.url}/dockerhub/v2/auth/token",
        json={"identifier": creds["username"], "secret": creds["password"]},
        verify=box.ca_file,
        timeout=10,
    ).json()["access_token"]
    return {"Authorization": f"Bearer {session}"}


def hub_token(box: Sandbox, scopes: list[str]) -> str:
    """A fresh Docker Hub access token with ``scopes``, made through the fake Hub API."""
    r = requests.post(
        f"{box.url}/dockerhub/v2/access-tokens",
        json={"token_label": f"test {scopes}", "scopes": scopes},
        headers=hub_session(box),
        verify=box.ca_file,
        timeout=10,
    )
    r.raise_for_status()
    return str(r.json()["token"])


def values_for(
    box: Sandbox, password: str, namespace: str = "binderhubdemo", **overrides: object
) -> RegistryValues:
    registry = box.registries["dockerhub"]
    host = registry.split("://")[1]
    fields: dict[str, object] = {
        "image_prefix": f"{host}/{namespace}/binder-",
        "username": "binderhubdemo",
        "password": Secret(password),
        "registry_url": registry,
        "docker_registry": {
            "url": registry,
            "token_url": f"{box.url}/dockerhub/token?service=registry.docker.io",
            "not_found_401": True,
        },
    }
    return RegistryValues(**(fields | overrides))  # type: ignore[arg-type]


def test_good_values_pass_every_check(fresh: Sandbox) -> None:
    report = verify(values_for(fresh, hub_token(fresh, ["repo:write"])), ca_bundle=fresh.ca_file)
    assert report.ok
    names = [c.name for c in report.checks]
    assert names == [
        "build pods' docker config",
        "BinderHub's image check",
        "push token",
        "push a test image",
        "BinderHub finds the pushed image",
        "delete the test tag",
    ]
    assert "not built yet" in report.checks[1].detail
    assert "may not delete tags" in report.checks[-1].detail  # repo:write cannot delete on Hub
    repo = f"binderhubdemo/binder-{CHECK_IMAGE[0]}"
    assert fresh.state()["dockerhub"]["repositories"] == {repo: [CHECK_IMAGE[1]]}


def test_admin_scope_deletes_the_test_tag(fresh: Sandbox) -> None:
    report = verify(values_for(fresh, hub_token(fresh, ["repo:admin"])), ca_bundle=fresh.ca_file)
    assert report.checks[-1].detail == "deleted"
    assert fresh.state()["dockerhub"]["repositories"] == {}


def test_wrong_password_is_diagnosed(fresh: Sandbox) -> None:
    with pytest.raises(VerificationFailed) as err:
        verify(values_for(fresh, "dckr_pat_wrong"), ca_bundle=fresh.ca_file)
    assert err.value.check == "BinderHub's image check"
    assert "refused user 'binderhubdemo'" in err.value.diagnosis
    assert "wrong, revoked or expired" in err.value.diagnosis


def test_revoked_token_can_no_longer_push(fresh: Sandbox) -> None:
    token = hub_token(fresh, ["repo:write"])
    values = values_for(fresh, token)
    assert verify(values, ca_bundle=fresh.ca_file).ok
    api, auth = fresh.url + "/dockerhub/v2", hub_session(fresh)
    listed = requests.get(f"{api}/access-tokens", headers=auth, verify=fresh.ca_file, timeout=10)
    for t in listed.json()["results"]:
        requests.delete(
            f"{api}/access-tokens/{t['uuid']}", headers=auth, verify=fresh.ca_file, timeout=10
        )
    with pytest.raises(VerificationFailed, match="refused user"):
        verify(values, ca_bundle=fresh.ca_file)


def test_host_mismatch_is_diagnosed(fresh: Sandbox) -> None:
    values = values_for(fresh, hub_token(fresh, ["repo:write"]), registry_url="https://127.0.0.1:1")
    seen = len(fresh.log())
    with pytest.raises(VerificationFailed) as err:
        verify(values, ca_bundle=fresh.ca_file)
    assert err.value.check == "build pods' docker config"
    assert "differs from the image_prefix host" in err.value.diagnosis
    assert len(fresh.log()) == seen  # caught before any request


def test_token_without_push_is_diagnosed(fresh: Sandbox) -> None:
    with pytest.raises(VerificationFailed) as err:
        verify(values_for(fresh, hub_token(fresh, ["repo:read"])), ca_bundle=fresh.ca_file)
    assert err.value.check == "push a test image"
    assert "no push permission" in err.value.diagnosis and "repo:write" in err.value.diagnosis


def test_namespace_of_another_organization_is_diagnosed(fresh: Sandbox) -> None:
    values = values_for(fresh, hub_token(fresh, ["repo:write"]), namespace="someoneelsesorg")
    with pytest.raises(VerificationFailed, match="no push permission on someoneelsesorg/"):
        verify(values, ca_bundle=fresh.ca_file)


def test_wrong_token_url_is_diagnosed(fresh: Sandbox) -> None:
    values = values_for(fresh, hub_token(fresh, ["repo:write"]))
    wrong = values.docker_registry | {
        "token_url": f"{fresh.url}/dockerhub/token?service=wrong.example"
    }
    with pytest.raises(VerificationFailed) as err:
        verify(
            values_for(fresh, values.password.reveal(), docker_registry=wrong),
            ca_bundle=fresh.ca_file,
        )
    assert "check DockerRegistry.token_url" in err.value.diagnosis


def test_missing_token_url_without_not_found_401_is_diagnosed(fresh: Sandbox) -> None:
    # BinderHub's discovery path: Docker Hub-style 401 for a missing repository is an error there
    values = values_for(fresh, hub_token(fresh, ["repo:write"]))
    bare = {"url": values.docker_registry["url"]}
    with pytest.raises(VerificationFailed) as err:
        verify(
            values_for(fresh, values.password.reveal(), docker_registry=bare),
            ca_bundle=fresh.ca_file,
        )
    assert err.value.check == "BinderHub's image check"
    assert "token_url" in err.value.diagnosis


def _oci_layout(path: Path) -> None:
    layer, config, manifest = _test_image()
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (layer, config, manifest):
        (blobs / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                "size": len(manifest),
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))


def _skopeo_push(
    box: Sandbox, values: RegistryValues, tmp_path: Path, repo: str
) -> subprocess.CompletedProcess[str]:
    """Push like a build pod: skopeo finds credentials in the chart's config.json by host."""
    authfile = tmp_path / "config.json"
    authfile.write_text(docker_config_json(values))
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(box.ca_file, certs / "ca.crt")
    layout = tmp_path / "layout"
    if not layout.exists():
        _oci_layout(layout)
    host = box.registries["dockerhub"].split("://")[1]
    return subprocess.run(
        [
            "skopeo",
            "copy",
            "--authfile",
            str(authfile),
            "--dest-cert-dir",
            str(certs),
            f"oci:{layout}",
            f"docker://{host}/{repo}:skopeo",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )


skopeo = pytest.mark.skipif(
    shutil.which("skopeo") is None, reason="skopeo missing: apt-get install skopeo"
)


@skopeo
def test_chart_config_lets_an_independent_client_push(fresh: Sandbox, tmp_path: Path) -> None:
    values = values_for(fresh, hub_token(fresh, ["repo:write"]))
    result = _skopeo_push(fresh, values, tmp_path, "binderhubdemo/binder-from-skopeo")
    assert result.returncode == 0, result.stderr
    assert fresh.state()["dockerhub"]["repositories"]["binderhubdemo/binder-from-skopeo"] == [
        "skopeo"
    ]


@skopeo
def test_independent_client_refuses_bad_values(fresh: Sandbox, tmp_path: Path) -> None:
    wrong = _skopeo_push(
        fresh, values_for(fresh, "dckr_pat_wrong"), tmp_path, "binderhubdemo/binder-x"
    )
    assert wrong.returncode != 0
    other = _skopeo_push(
        fresh,
        values_for(fresh, hub_token(fresh, ["repo:write"])),
        tmp_path,
        "someoneelsesorg/binder-x",
    )
    assert other.returncode != 0
    assert fresh.state()["dockerhub"]["repositories"] == {}
