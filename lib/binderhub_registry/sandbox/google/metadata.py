"""A fake GKE metadata server, on loopback only, for BinderHub's keyless ``GoogleArtifactRegistry``.

It stands for the metadata server as one pod sees it under Workload Identity: the pod runs as
a Kubernetes service account (``metadata_pod`` in the backend's settings), and that account's
``iam.gke.io/gcp-service-account`` annotation names the Google service account whose tokens
the pod gets. Plain HTTP, as the real server (``http://metadata.google.internal``), but bound to
127.0.0.1 on a free port: nothing here ever listens on, or sends to, 169.254.169.254.
Clients reach it by URL (BinderHub's ``DockerRegistry.token_url``) or, for google-auth, through
``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` (google/auth/environment_vars.py, read in
google/auth/compute_engine/_metadata.py).

=============================================  ================================================
behaviour                                      source
=============================================  ================================================
every request needs ``Metadata-Flavor:         cloud.google.com/compute/docs/metadata/
Google``, else 403 ``Missing required header   querying-metadata (the header is required);
"Metadata-Flavor": "Google"``; answers carry   the GKE server's text quoted in google/kctf#194;
``Metadata-Flavor: Google``                    google-auth's ``ping`` checks the answer's header
``GET /computeMetadata/v1/instance/service-    BinderHub's ``GoogleArtifactRegistry._get_token``
accounts/{default|<email>}/token`` ->          (binderhub/registry.py, reads ``access_token``);
``{"access_token", "expires_in",               google-auth's ``get_service_account_token``
"token_type": "Bearer"}``                      (reads ``access_token`` and ``expires_in``)
``.../service-accounts/default/?recursive=     google-auth's ``get_service_account_info``
true`` -> ``{"email", "scopes", "aliases"}``;  (docstring example); querying-metadata page
``.../default/email``, ``project/project-id``  (text values)
a token only when the annotated account        kubernetes-sigs/external-dns#2064, camunda/
exists and its policy gives the pod's          camunda#31106: 403 "Unable to generate access
``serviceAccount:<project>.svc.id.goog[<ns>/   token; IAM returned 403 Forbidden: ... This
<ksa>]`` ``roles/iam.workloadIdentityUser``;   error could be caused by a missing IAM policy
else 403 with that text                        binding on the target IAM service account."
a pod without the annotation, on a node pool   Workload Identity Federation for GKE (cloud.
with Workload Identity (``GKE_METADATA``):     google.com/kubernetes-engine/docs/concepts/
200, a token for its Kubernetes service        workload-identity): a Kubernetes service account
account's own federated principal              is itself an IAM principal, ``principal://iam.
(``principal://iam.googleapis.com/projects/    googleapis.com/projects/<number>/locations/global/
<number>/locations/global/workloadIdentity     workloadIdentityPools/<project>.svc.id.goog/
Pools/<project>.svc.id.goog/subject/ns/<ns>/   subject/ns/<ns>/sa/<ksa>``, granted nothing
sa/<ksa>``), email ``<project>.svc.id.goog``;  unless a policy names it; the email value:
no repository role names it, so the registry   assumption (the pool's name)
answers 403 DENIED, never a 404 here
``metadata_pod.node_metadata =                 GKE's WorkloadMetadataConfig modes (GKE_METADATA,
"GCE_METADATA"``: a node pool without          GCE_METADATA: "expose all Compute Engine metadata
Workload Identity: every pod gets the node's   to pods"); google/skills gke-workload-identity
service account's tokens (``node_account``,    ("API calls that unexpectedly use the node's
default ``<number>-compute@developer.          default Compute Engine service account")
gserviceaccount.com``), annotation ignored
tokens are the project's access tokens, so     the token is an OAuth 2.0 access token for the
the registry front takes them as               service account (cloud.google.com/docs/
``oauth2accesstoken`` or as a Bearer           authentication/rest#metadata-server); see
                                               :mod:`.cloud`
=============================================  ================================================
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .models import WORKLOAD_IDENTITY_USER, Host

__all__ = ["MetadataServer", "workload_member"]

ROOT = "/computeMetadata/v1/"
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_DENIED = (
    "Unable to generate access token; IAM returned 403 Forbidden: Permission "
    "'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).\n"
    "This error could be caused by a missing IAM policy binding on the target IAM service "
    "account.\nFor more information, refer to the Workload Identity documentation:\n"
    "\thttps://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity#authenticating_to\n"
)


def workload_member(project: str, namespace: str, service_account: str) -> str:
    """The IAM member a Kubernetes service account is under Workload Identity."""
    return f"serviceAccount:{project}.svc.id.goog[{namespace}/{service_account}]"


class MetadataServer:
    """The fake metadata server: a thread serving plain HTTP on 127.0.0.1."""

    def __init__(self, cloud: Host) -> None:
        self.cloud = cloud
        handler = type("Handler", (_Handler,), {"cloud": cloud})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="sandbox-gce-metadata", daemon=True
        )
        self.thread.start()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the value for ``GCE_METADATA_HOST`` and ``GCE_METADATA_IP``."""
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    cloud: Host
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        """Quiet: the sandbox's request log records the calls instead."""

    def _answer(self, status: int, body: str, content_type: str = "application/text") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        """As GET, without the body."""
        self.do_GET()

    def do_GET(self) -> None:
        """Every endpoint is a GET."""
        path = urlsplit(self.path).path
        with self.cloud.lock:
            status, body, kind = self._route(path)
        if self.cloud.app is not None:
            self.cloud.app.record("GET", f"/gce-metadata{path}", "", str(status))
        self._answer(status, body, kind)

    def _route(self, path: str) -> tuple[int, str, str]:
        if self.headers.get("Metadata-Flavor") != "Google":
            return 403, 'Missing required header "Metadata-Flavor": "Google"\n', "text/plain"
        if path in ("", "/"):
            return 200, "computeMetadata/\n", "application/text"
        if not path.startswith(ROOT):
            return 404, "Not Found\n", "text/plain"
        rest = path.removeprefix(ROOT)
        project = self.cloud.project
        if rest == "project/project-id":
            return 200, project.id, "application/text"
        if rest == "project/numeric-project-id":
            return 200, project.number, "application/text"
        prefix = "instance/service-accounts/"
        if not rest.startswith(prefix):
            return 404, "Not Found\n", "text/plain"
        account, _, leaf = rest.removeprefix(prefix).partition("/")
        pod = project.settings["metadata_pod"]
        cluster = str(pod.get("project") or project.id)  # the pool is the cluster's project's
        member = workload_member(cluster, pod["namespace"], pod["service_account"])
        # whose tokens the pod gets: the annotated account (checked below), else the node's
        # (a node pool without Workload Identity) or its own federated principal
        email, identity = str(pod.get("annotation", "")), ""
        if pod.get("node_metadata", "GKE_METADATA") == "GCE_METADATA":
            email = str(
                pod.get("node_account") or f"{project.number}-compute@developer.gserviceaccount.com"
            )
            identity = email
        elif not email:
            email = f"{cluster}.svc.id.goog"
            identity = (
                f"principal://iam.googleapis.com/projects/{project.number}/locations/global/"
                f"workloadIdentityPools/{email}/subject/ns/{pod['namespace']}/sa/"
                f"{pod['service_account']}"
            )
        if account not in ("default", email):
            return 404, "Not Found\n", "text/plain"
        if leaf == "":
            info = {"aliases": ["default"], "email": email, "scopes": _SCOPES}
            return 200, json.dumps(info), "application/json"
        if leaf == "email":
            return 200, email, "application/text"
        if leaf == "scopes":
            return 200, "\n".join(_SCOPES), "application/text"
        if leaf != "token":
            return 404, "Not Found\n", "text/plain"
        if not identity:
            gsa = project.accounts.get(email)
            if gsa is None or member not in gsa.members_of(WORKLOAD_IDENTITY_USER):
                return 403, _DENIED, "text/plain"
        token = {"access_token": project.issue_token(identity or email), "expires_in": 3599}
        return 200, json.dumps(token | {"token_type": "Bearer"}), "application/json"
