"""Pull an image as a kubelet does, and show a pull-only credential cannot push.

User pods are pulled by each node's container runtime (containerd) with the
pod's ``imagePullSecrets``: the registry's challenge, a token for
``repository:<name>:pull`` from its realm with those credentials (or none, for
an anonymous pull), then the manifest and the layers. :func:`pull_image` does
exactly that with the credential ``jupyterhub.imagePullSecret`` gives user pods;
:func:`push_refused` asks the same realm for push and tries to start an upload,
which a pull-only credential must not be able to do.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urljoin

from .errors import VerificationFailed
from .push import push_auth
from .registry_http import OCI_MANIFEST, RegistryHTTP
from .report import PULL_CHECK, PUSH_REFUSED_CHECK, VerifyHints

__all__ = ["PULL_CHECK", "PUSH_REFUSED_CHECK", "pull_image", "push_refused"]

#: Largest manifest read; the check image's is under 1 KiB, real ones a few KiB.
MAX_MANIFEST_BYTES = 4 << 20


def pull_image(
    http: RegistryHTTP, registry_url: str, image: str, tag: str, *, hints: VerifyHints
) -> str:
    """Pull ``image:tag`` (manifest, then its first layer, digest checked); what was pulled.

    Raises VerificationFailed naming :data:`PULL_CHECK` with a diagnosis.
    """
    auth = push_auth(http, registry_url, image, "pull", check=PULL_CHECK, hints=hints)
    base = f"{registry_url}/v2/{image}"
    accept = {"Accept": OCI_MANIFEST}
    r = http.get(f"{base}/manifests/{tag}", headers=auth | accept)
    if r.status_code in (401, 403):
        raise VerificationFailed(
            PULL_CHECK,
            f"the registry refused user pods' pull of {image}: {hints.pull}; user pods would "
            "fail with ErrImagePull",
        )
    if r.status_code != 200:
        raise VerificationFailed(
            PULL_CHECK, f"the manifest of {image}:{tag} answered HTTP {r.status_code}"
        )
    try:
        if len(r.content) > MAX_MANIFEST_BYTES:
            raise ValueError("too large")
        layers = json.loads(r.content)["layers"]
        digest = str(layers[0]["digest"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise VerificationFailed(
            PULL_CHECK, f"the manifest of {image}:{tag} is not an OCI image manifest"
        ) from None
    r = http.get(f"{base}/blobs/{digest}", headers=auth)
    if r.status_code != 200:
        raise VerificationFailed(
            PULL_CHECK, f"a layer of {image} answered HTTP {r.status_code} to the pull"
        )
    if "sha256:" + hashlib.sha256(r.content).hexdigest() != digest:
        raise VerificationFailed(PULL_CHECK, f"a layer of {image} did not match its digest")
    return f"manifest and layer of {image}:{tag}"


def push_refused(http: RegistryHTTP, registry_url: str, image: str, *, hints: VerifyHints) -> bool:
    """True when the registry refuses these credentials a push to ``image``.

    Asks the realm for ``pull,push`` (it may grant less) and starts a blob upload, which
    a pull-only credential must not be able to do; a started upload is cancelled.
    """
    try:
        auth = push_auth(
            http, registry_url, image, "pull,push", check=PUSH_REFUSED_CHECK, hints=hints
        )
    except VerificationFailed:
        return True  # the token service refused push outright
    base = f"{registry_url}/v2/{image}"
    r = http.send("POST", f"{base}/blobs/uploads/", headers=auth)
    if r.status_code in (401, 403):
        return True
    if r.status_code == 202 and r.headers.get("Location"):
        http.send("DELETE", urljoin(base + "/", r.headers["Location"]), headers=auth)
    return False
