"""ECR's image sizes: DescribeImages' ``imageSizeInBytes`` is the sum of the image's layers as
pushed (compressed), what notebook 06's "Storage used" and ``verify`` add up under the prefix.

Images are pushed through the sandbox's registry as a client does (the distribution API with
ECR's Basic ``AWS:<token>``), then read with boto3 (the official SDK).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import requests

from binderhub_registry.sandbox.ecr.models import image_size

from .helpers import EcrBox

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}


class Client:
    """A registry client on ECR's front: Basic ``AWS:<password>`` from GetAuthorizationToken."""

    def __init__(self, box: EcrBox) -> None:
        data = box.client("ecr").get_authorization_token()["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        self.base = box.registry
        self.session = requests.Session()
        self.session.auth = (user, password)
        self.session.verify = box.ca_file
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would win over the session's CA

    def blob(self, name: str, blob: bytes) -> None:
        """A monolithic blob upload (POST, then PUT with the digest)."""
        started = self.session.post(f"{self.base}/v2/{name}/blobs/uploads/", timeout=10)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        url = location if location.startswith("http") else self.base + location
        done = self.session.put(
            url,
            params={"digest": _digest(blob)},
            data=blob,
            headers={"Content-Type": "application/octet-stream"},
            timeout=10,
        )
        assert done.status_code == 201, done.text

    def manifest(self, name: str, reference: str, manifest: bytes, media_type: str) -> None:
        """PUT a manifest under a tag or digest."""
        answer = self.session.put(
            f"{self.base}/v2/{name}/manifests/{reference}",
            data=manifest,
            headers={"Content-Type": media_type},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text

    def image(self, name: str, reference: str, layer_sizes: list[int]) -> bytes:
        """An image whose layers have ``layer_sizes`` bytes (and a small config); its manifest."""
        layers = [os.urandom(size) for size in layer_sizes]
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode()
        for blob in (*layers, config):
            self.blob(name, blob)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": _descriptor(OCI_CONFIG, config),
                "layers": [_descriptor(OCI_LAYER, layer) for layer in layers],
            }
        ).encode()
        self.manifest(name, reference, manifest, OCI_MANIFEST)
        return manifest


def test_describe_images_sizes_an_image_by_its_layers_as_pushed(ecr: EcrBox) -> None:
    client = ecr.client("ecr")
    client.create_repository(repositoryName="binderhub/sized")
    registry = Client(ecr)
    registry.image("binderhub/sized", "v1", [3000, 12_000, 500])
    registry.image("binderhub/sized", "v2", [7000])
    images = client.describe_images(repositoryName="binderhub/sized")["imageDetails"]
    sizes = {image["imageTags"][0]: image["imageSizeInBytes"] for image in images}
    assert sizes == {"v1": 15_500, "v2": 7000}  # moto: the config's size (~50 bytes)
    one = client.describe_images(repositoryName="binderhub/sized", imageIds=[{"imageTag": "v1"}])
    assert one["imageDetails"][0]["imageSizeInBytes"] == 15_500


def test_an_image_put_through_the_api_is_sized_by_its_layers_too(ecr: EcrBox) -> None:
    client = ecr.client("ecr")
    client.create_repository(repositoryName="binderhub/api")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _digest(b"c"), "size": 99},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": _digest(b"a"), "size": 1234},
            {"mediaType": OCI_LAYER, "digest": _digest(b"b"), "size": 4321},
        ],
    }
    client.put_image(
        repositoryName="binderhub/api", imageManifest=json.dumps(manifest), imageTag="x"
    )
    image = client.describe_images(repositoryName="binderhub/api")["imageDetails"][0]
    assert image["imageSizeInBytes"] == 5555


def test_a_manifest_list_is_the_largest_of_its_images() -> None:
    small = json.dumps({"layers": [{"size": 10}, {"size": 20}]})
    large = json.dumps({"layers": [{"size": 100}]})
    index = json.dumps(
        {
            "mediaType": OCI_INDEX,
            "manifests": [
                {"digest": "sha256:s", "size": len(small)},
                {"digest": "sha256:l", "size": len(large)},
                {"digest": "sha256:unknown", "size": 5},
            ],
        }
    )
    known = {"sha256:s": small, "sha256:l": large}
    assert image_size(index, known) == 100
    assert image_size(index, {}) is None  # no image of it in ECR's records: no size
    assert image_size(small, known) == 30
    assert image_size("not json", known) is None
