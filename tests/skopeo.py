"""skopeo, a client nobody here wrote, pushing as a build pod does.

It finds credentials by host in the docker ``config.json`` the chart renders from
``secret.yaml`` (the ``--authfile``), and it re-encodes the layer to zstd on the way,
so the layer's size is unknown when its upload starts and Go's HTTP client sends
the PATCH body chunked (``Transfer-Encoding: chunked``), as a build pod's push of a
freshly compressed layer does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry.binderhub import chart_docker_config
from binderhub_registry.push import tiny_image

__all__ = ["CONVERTED", "SKOPEO", "needs_skopeo", "oci_layout", "skopeo_push"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(
    SKOPEO is None, reason="skopeo is not installed: apt-get install skopeo"
)
#: skopeo's debug line for a layer re-encoded on the fly (its size unknown: a chunked upload)
CONVERTED = "Blob will be converted"


def oci_layout(directory: Path) -> Path:
    """verify's one-layer test image as an OCI layout, tagged ``latest``."""
    layer, config, manifest = tiny_image()
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (layer, config, manifest):
        (blobs / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    return directory


def skopeo_push(
    ca_file: str, work: Path, registry: dict[str, Any], target: str
) -> subprocess.CompletedProcess[str]:
    """``skopeo copy`` of the test image to ``target`` (``host/name:tag``).

    ``registry`` is secret.yaml's ``registry`` (url, username, password): skopeo gets
    only the chart's ``config.json`` rendered from it, and the sandbox CA.
    """
    work.mkdir(parents=True, exist_ok=True)
    certs = work / "certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(ca_file, certs / "ca.crt")
    authfile = work / "config.json"
    authfile.write_text(json.dumps(chart_docker_config(registry)))
    layout = work / "layout"
    if not layout.exists():
        oci_layout(layout)
    assert SKOPEO is not None
    return subprocess.run(
        [
            SKOPEO,
            "--insecure-policy",  # no signature policy in question here
            "--debug",
            "copy",
            "--retry-times",
            "0",
            "--dest-compress-format",  # re-encode the layer: its upload is then chunked
            "zstd",
            "--authfile",
            str(authfile),
            "--dest-cert-dir",
            str(certs),
            f"oci:{layout}:latest",
            f"docker://{target}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(work)},
    )
