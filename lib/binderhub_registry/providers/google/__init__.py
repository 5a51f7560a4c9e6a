"""Google Artifact Registry (guide section 2.1; Container Registry was shut down on 2025-03-18).

The guide's steps stay recognisable (a service account, a role, a JSON key), done the way that
works today: Artifact Registry enabled through Service Usage, a Docker-format repository, a
service account made with the IAM admin API (gRPC, google-cloud-iam), the writer role on the
repository alone, and one JSON key that BinderHub pushes with as ``_json_key``.

Service Usage and Artifact Registry are called through google-api-python-client, built from
the discovery documents it ships (``static_discovery=True``: no download), which imports in a
fraction of the time of their generated clients (google-cloud-artifact-registry alone is 1.6 MB
of Python and pulls aiohttp in); IAM stays on google-cloud-iam's gRPC client.

Keyless (``auth = "metadata"``): no key is made. BinderHub's own image check uses
``binderhub.registry.GoogleArtifactRegistry`` (jupyterhub/binderhub ``binderhub/registry.py``
lines 344-370 at b9fad99), selected by ``config.BinderHub.registry_class`` (the ``registry_class``
trait, ``binderhub/app.py`` line 337): its ``token_url`` defaults to the GKE metadata server's
``.../service-accounts/default/token``, fetched with ``Metadata-Flavor: Google``, and the
``access_token`` it answers goes as a Bearer on the manifest request (``get_image_manifest``,
lines 272-333). ``DockerRegistry.url`` must be set: its default comes from the build docker
config's first key (lines 35-52). BinderHub's pod runs as the Kubernetes service account
``binderhub`` (helm chart ``templates/deployment.yaml`` line 49, ``templates/rbac.yaml``), which
Workload Identity lets act as the Google service account once that account's policy grants it
``roles/iam.workloadIdentityUser`` (done here) and the Kubernetes account carries the
``iam.gke.io/gcp-service-account`` annotation (``kubectl``; the chart has no value for it).
Build pods are another matter: ``GoogleArtifactRegistry`` has no ``get_credentials``
(``registry.py`` lines 335-341), so they push with the chart's docker config
(``binderhub/build.py`` lines 480-491); see the notebook's keyless section.

Switching ``auth`` on the same ``output_dir`` leaves nothing behind, through the rotation
mechanism (the ``retiring_keys`` record, emptied by ``finish_rotation`` once the new values
verified, so its ``keep_replaced`` applies too): key to metadata retires the keys this notebook
made (``ensure_key``), and ``secret.yaml``, which holds one, goes when that key is deleted (a
switch back before then reuses it); metadata to key retires the Workload Identity member this
notebook bound (``bind_workload_identity``), removed as ``gcloud iam service-accounts
remove-iam-policy-binding`` does (an etag-checked read-modify-write of the account's policy:
cloud.google.com/iam/docs/policies#etag). Switching back before they were removed takes them
out of the list again. Keyless for real, nothing can be verified from outside the cluster: what
a switch retired is removed only by a run after the one that said it was kept (``UNCHECKED``
in the record), so each removal follows a run that told the user to check BinderHub's pod.

The package, by concern (each part imports only those above it): ``params`` (the parameters
and the constants), ``errors`` (Google's SDK errors as ours), ``settling`` (eventual
consistency, waited out in the transports; the clients), ``session`` (the signed-in session
the steps use; the retiring list), ``accounts``, ``iam`` (policies, version 3),
``repository``, ``retention`` (the cleanup policy, the repository's size), ``services``
(enabling APIs), ``keys`` (the JSON key flow), ``keyless``
(Workload Identity, the metadata server), ``pull`` (user pods' pull), ``connection`` (the
shared steps) and ``auth`` (sign-in).
"""

from __future__ import annotations

# Besides the public names (``__all__``), the ones imported ``as`` themselves are re-exported
# for the tests, which read them as ``google.<name>``.
from ...binderhub import RegistryValues as RegistryValues
from ..contract import Record as Record
from .accounts import PULLER_TEXT as PULLER_TEXT
from .accounts import PUSHER_TEXT as PUSHER_TEXT
from .accounts import ensure_service_account
from .auth import sign_in
from .connection import REAL_EXAMPLE, GoogleConnection
from .errors import ServiceDisabled as ServiceDisabled
from .iam import grant_writer
from .keyless import (
    BINDERHUB_IMAGE_TOOLS,
    KeylessFiles,
    KeylessValues,
    annotate_command,
    bind_workload_identity,
    keyless_check_command,
    verify_keyless,
)
from .keyless import NOT_COVERED as NOT_COVERED
from .keyless import SEED_CHECK as SEED_CHECK
from .keys import ensure_key
from .params import ACCOUNT as ACCOUNT
from .params import GUIDE, KEY, NAME, NOTEBOOK, PARAMETERS, Params, validate
from .params import IAM_SERVICE as IAM_SERVICE
from .params import LEGACY_ACCOUNT as LEGACY_ACCOUNT
from .params import METADATA_URL as METADATA_URL
from .params import PULL_ROLE as PULL_ROLE
from .params import ROLE as ROLE
from .params import SECRET_ENVIRONMENT as SECRET_ENVIRONMENT
from .params import SERVICE as SERVICE
from .params import SERVICES as SERVICES
from .params import WORKLOAD_IDENTITY_USER as WORKLOAD_IDENTITY_USER
from .pull import ensure_pull_credential
from .repository import REPOSITORY_TEXT as REPOSITORY_TEXT
from .repository import ensure_repository
from .retention import CLEANUP_POLICY as CLEANUP_POLICY
from .retention import ensure_cleanup_policy, policy_id, usage_for_values
from .services import enable_api
from .session import BOUND
from .session import PULL_KEY as PULL_KEY
from .session import UNCHECKED as UNCHECKED

__all__ = [
    "BINDERHUB_IMAGE_TOOLS",
    "BOUND",
    "GUIDE",
    "KEY",
    "NAME",
    "NOTEBOOK",
    "PARAMETERS",
    "REAL_EXAMPLE",
    "GoogleConnection",
    "KeylessFiles",
    "KeylessValues",
    "Params",
    "annotate_command",
    "bind_workload_identity",
    "enable_api",
    "ensure_cleanup_policy",
    "ensure_key",
    "ensure_pull_credential",
    "ensure_repository",
    "ensure_service_account",
    "grant_writer",
    "keyless_check_command",
    "policy_id",
    "sign_in",
    "usage_for_values",
    "validate",
    "verify_keyless",
]
