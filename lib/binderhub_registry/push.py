"""Push a tiny OCI image as ``docker push`` does, and delete its tag afterwards where allowed.

The push token comes from the registry's own challenge on ``/v2/`` (as docker's
does, not from BinderHub's ``token_url``). The image is a single manifest, never
an index: BinderHub's ``Accept`` header would not see an index.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from typing import Any
from urllib.parse import urlencode, urljoin

import requests

from .errors import VerificationFailed
from .registry_auth import bearer_token
from .registry_http import OCI_MANIFEST, RegistryHTTP, parse_challenge
from .report import PUSH_CHECK, VerifyHints

__all__ = ["PUSH_CHECK", "delete_tag", "push_auth", "push_image", "tiny_image"]

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def push_auth(
    http: RegistryHTTP,
    registry_url: str,
    image: str,
    actions: str,
    *,
    check: str,
    hints: VerifyHints,
) -> dict[str, str]:
    """The Authorization header for ``actions`` on ``image``, from the registry's challenge."""
    r = http.get(f"{registry_url}/v2/")
    if r.status_code == 200:
        return {}
    scheme, params = parse_challenge(r.headers.get("www-authenticate", ""))
    if scheme == "basic":
        user, password = http.basic
        return {
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        }
    if scheme != "bearer" or "realm" not in params:
        raise VerificationFailed(check, f"{registry_url}/v2/ gave no usable auth challenge")
    args = {"scope": f"repository:{image}:{actions}"}
    if params.get("service"):
        args = {"service": params["service"]} | args
    token = bearer_token(http, params["realm"], args, check=check, hints=hints)
    return {"Authorization": "Bearer " + token}


def push_image(
    http: RegistryHTTP,
    registry_url: str,
    image: str,
    tag: str,
    auth: dict[str, str],
    *,
    hints: VerifyHints,
) -> str:
    """Push :func:`tiny_image` as ``image:tag``; return its manifest digest."""
    layer, config, manifest = tiny_image()
    base = f"{registry_url}/v2/{image}"
    for blob in (layer, config):
        digest = _digest(blob)
        if http.send("HEAD", f"{base}/blobs/{digest}", headers=auth).status_code == 200:
            continue
        r = http.send("POST", f"{base}/blobs/uploads/", headers=auth)
        _expect(r, 202, image, hints)
        location = urljoin(base + "/", r.headers["Location"])  # may be relative
        location += ("&" if "?" in location else "?") + urlencode({"digest": digest})
        r = http.send(
            "PUT", location, data=blob, headers=auth | {"Content-Type": "application/octet-stream"}
        )
        _expect(r, 201, image, hints)
    r = http.send(
        "PUT",
        f"{base}/manifests/{tag}",
        data=manifest,
        headers=auth | {"Content-Type": OCI_MANIFEST},
    )
    _expect(r, 201, image, hints)
    return r.headers.get("Docker-Content-Digest") or _digest(manifest)


def _expect(r: requests.Response, expected: int, image: str, hints: VerifyHints) -> None:
    if r.status_code == expected:
        return
    if r.status_code in (401, 403):
        raise VerificationFailed(
            PUSH_CHECK, f"signed in, but no push permission on {image}: {hints.push}"
        )
    raise VerificationFailed(
        PUSH_CHECK, f"registry answered HTTP {r.status_code} to {r.request.method}"
    )


def delete_tag(
    http: RegistryHTTP, registry_url: str, image: str, digest: str, *, hints: VerifyHints
) -> tuple[bool, str]:
    """Delete the pushed manifest; (deleted, what happened). Refusal is no failure.

    Push is all BinderHub needs, so credentials that may not delete leave the tag in place.
    """
    try:
        auth = push_auth(http, registry_url, image, "delete", check="delete", hints=hints)
    except VerificationFailed:
        return False, "not allowed with these credentials; the test tag was left in place"
    r = http.send("DELETE", f"{registry_url}/v2/{image}/manifests/{digest}", headers=auth)
    if r.status_code in (200, 202):
        return True, "deleted"
    if r.status_code in (401, 403, 405):
        return False, (
            "these credentials may not delete tags (push is all BinderHub needs); left in place"
        )
    return False, f"registry answered HTTP {r.status_code}; the test tag was left in place"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tiny_image() -> tuple[bytes, bytes, bytes]:
    """A deterministic one-layer OCI image: layer, config and manifest bytes."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.USTAR_FORMAT) as t:
        data = b"pushed by binderhub-registry verify\n"
        info = tarfile.TarInfo("binderhub-registry-check.txt")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        t.addfile(info, io.BytesIO(data))
    raw = tar.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]},
        },
        sort_keys=True,
    ).encode()

    def descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer)],
        },
        sort_keys=True,
    ).encode()
    return layer, config, manifest
