"""Fake Google Cloud: OAuth for service-account keys, Service Usage, Artifact Registry, IAM.

==========  =========================================================================
module      serves
==========  =========================================================================
``models``  the project's state: services, service accounts and keys (real RSA pairs,
            only the public half kept), repositories and their IAM policies
``rest``    ``/google/oauth2/token`` (the key files' ``token_uri``),
            ``/google/serviceusage/v1`` and ``/google/artifactregistry/v1`` (the
            SDKs' REST transports, ``api_endpoint`` pointed here), Google's error bodies
``iam``     ``google.iam.admin.v1.IAM`` over gRPC + TLS on its own port
            (``sandbox.json`` ``registries["google-iam"]``)
``cloud``   the backend: lifecycle, state, registry fronts, ``/_sandbox/google/settings``
==========  =========================================================================

Each module's docstring lists the behaviours it models with their sources.
"""

from __future__ import annotations

from .cloud import GoogleCloud
from .models import PROJECT, SEED_ACCOUNT, seed_credentials

__all__ = ["PROJECT", "SEED_ACCOUNT", "GoogleCloud", "seed_credentials"]
