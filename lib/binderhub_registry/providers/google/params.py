"""The Google notebook's parameters, their rules, and the constants every part reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import replace as _replace

from ...errors import InvalidParameter
from ...params import choice, flag, text
from ..contract import COMMON_PARAMETERS, CommonParams, GuideEntry, validator

KEY = "google"
NAME = "Google Artifact Registry"
NOTEBOOK = "01-google-artifact-registry"
#: The environment variables sign-in reads for real (never parameters); shown by the form
SECRET_ENVIRONMENT = (
    ("GOOGLE_APPLICATION_CREDENTIALS", "a service account key file, else gcloud's login"),
)
SERVICE = "artifactregistry.googleapis.com"
IAM_SERVICE = "iam.googleapis.com"
#: Every API the notebook calls that a new project has off (Service Usage is among Google's
#: default services: cloud.google.com/service-usage/docs/enabled-service).
SERVICES = (SERVICE, IAM_SERVICE)
#: The project gcloud's own OAuth client belongs to: user credentials without a quota project
#: are billed to it, where Service Usage is off (hashicorp/terraform-provider-google#1538).
GCLOUD_PROJECT_NUMBER = "764086051850"
_QUOTA_FIX = (
    "user credentials (gcloud auth application-default login) need a quota project for "
    "Service Usage: run `gcloud auth application-default set-quota-project {project}` (or set "
    "GOOGLE_CLOUD_QUOTA_PROJECT), then rerun"
)
ROLE = "roles/artifactregistry.writer"
#: User pods' role on the repository: pull only (Artifact Registry's access-control page).
PULL_ROLE = "roles/artifactregistry.reader"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
USERNAME = "_json_key"
#: Keyless: BinderHub's registry class, and the token URL it defaults to (binderhub/registry.py).
KEYLESS_CLASS = "binderhub.registry.GoogleArtifactRegistry"
METADATA_URL = "http://metadata.google.internal"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
#: The Kubernetes service account BinderHub's pod runs as (helm chart, templates/deployment.yaml).
BINDERHUB_KSA = "binderhub"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
#: gcr.io-domain repositories: the repository id (and host) for each multi-region.
GCR_HOSTS = {"us": "gcr.io", "europe": "eu.gcr.io", "asia": "asia.gcr.io"}
_SIGN_IN_HOW = (
    "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file"
)
#: IAM's rule for a service account id (cloud.google.com/iam/docs/service-accounts-create).
ACCOUNT_ID = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
#: What every resource this notebook creates carries, with the deployment id
#: (``Record.deployment``): a service account's ``description``, a repository's label
#: ``binderhub-registry: <id>`` and its ``description``. Both fields are kept by the services
#: (iam.v1 ServiceAccount.description, 256 bytes; artifactregistry.v1 Repository.labels).
MARK = "binderhub-registry"
_MARKS = re.compile(r"\bbinderhub-registry ([0-9a-f]{8})\b")
#: ``service_account = ""``: this deployment's own account, named from its id (18 characters,
#: its ``-pull`` twin 23: both inside IAM's 6-30).
OWN_ACCOUNT = "binderhub-{deployment}"
#: The default before each deployment had its own account: records written then keep it.
LEGACY_ACCOUNT = "binderhub-builder"
#: record kind: the email of the service account this deployment uses (found or created).
ACCOUNT = "account"

PARAMETERS = (
    text(
        "project_id",
        r"[a-z][a-z0-9-]{4,28}[a-z0-9]",
        "must be a Google Cloud project id: 6 to 30 lowercase letters, digits or hyphens, "
        "starting with a letter and not ending with a hyphen",
    ),
    text(
        "location",
        r"us|europe|asia|[a-z]+-[a-z]+[0-9]{1,2}",
        "must be an Artifact Registry region (e.g. us-central1) or multi-region (us, europe, asia)",
    ),
    text(
        "repository",
        r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?",
        "must be an Artifact Registry repository id: lowercase letters, digits and hyphens, "
        "starting with a letter, at most 63",
    ),
    # "": this deployment's own account, binderhub-<deployment id> (:func:`_account_for`)
    _replace(
        text(
            "service_account",
            ACCOUNT_ID,
            "must be a service account id: 6 to 30 lowercase letters, digits or hyphens, "
            "starting with a letter and ending with a letter or digit",
            optional=True,
        ),
        default="",
        required=False,
    ),
    flag("gcr_domain"),
    choice("auth", ("key", "metadata")),
    text(
        "k8s_namespace",
        r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
        "must be a Kubernetes namespace: at most 63 lowercase letters, digits or hyphens, "
        "starting and ending with a letter or digit",
    ),
    # keyless: the project of the GKE cluster BinderHub runs on, whose Workload Identity pool
    # (<cluster_project>.svc.id.goog) its pod is a member of; "": project_id
    _replace(
        text(
            "cluster_project",
            r"[a-z][a-z0-9-]{4,28}[a-z0-9]",
            "must be the Google Cloud project id of BinderHub's GKE cluster (6 to 30 lowercase "
            'letters, digits or hyphens), or "" for project_id',
            optional=True,
        ),
        default="",
        required=False,
    ),
    # "" when missing: only pull_access = "node" needs it (cells from before it still run)
    _replace(
        text(
            "node_service_account",
            r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
            r"|[0-9]{1,19}-compute@developer\.gserviceaccount\.com",
            "must be the email of the GKE nodes' service account (<id>@<project>.iam."
            "gserviceaccount.com, or <project number>-compute@developer.gserviceaccount.com)",
            optional=True,
        ),
        default="",
        required=False,
    ),
    *COMMON_PARAMETERS,
)


@dataclass(frozen=True)
class Params(CommonParams):
    """Validated parameters of the Google notebook."""

    PULL_NODE = (
        f"{PULL_ROLE} on the repository for the GKE nodes' service account (node_service_account)"
    )

    project_id: str
    location: str
    repository: str
    service_account: str  # "" until sign_in names this deployment's own account
    gcr_domain: bool
    auth: str  # "key": a JSON key; "metadata": keyless, tokens from the GKE metadata server
    k8s_namespace: str  # where BinderHub runs (its pod's Kubernetes service account, keyless)
    cluster_project: str  # keyless: the GKE cluster's project ("": project_id)
    node_service_account: str  # pull_access = "node": the GKE nodes' service account's email

    @property
    def keyless(self) -> bool:
        """True with ``auth = "metadata"``: no key, Workload Identity instead."""
        return self.auth == "metadata"

    @property
    def pool(self) -> str:
        """The Workload Identity pool of BinderHub's cluster: its project's ``.svc.id.goog``."""
        return f"{self.cluster_project or self.project_id}.svc.id.goog"

    @property
    def workload_member(self) -> str:
        """BinderHub's Kubernetes service account as an IAM member (Workload Identity)."""
        return f"serviceAccount:{self.pool}[{self.k8s_namespace}/{BINDERHUB_KSA}]"

    @property
    def repository_id(self) -> str:
        """The repository's id: ``gcr.io`` and its siblings for gcr.io-domain repositories."""
        return GCR_HOSTS[self.location] if self.gcr_domain else self.repository

    @property
    def email(self) -> str:
        """The service account's email."""
        return f"{self.service_account}@{self.project_id}.iam.gserviceaccount.com"

    @property
    def member(self) -> str:
        """The service account as an IAM policy member."""
        return f"serviceAccount:{self.email}"

    @property
    def pull_account(self) -> str:
        """User pods' service account id: ``<service_account>-pull``, cut to IAM's 30.

        Derived, not a parameter: it follows the pusher's name (one account pair per
        notebook, found again by every rerun), and the parameters stay the guide's.
        """
        return f"{self.service_account[:25].rstrip('-')}-pull"

    @property
    def pull_email(self) -> str:
        """User pods' service account's email."""
        return f"{self.pull_account}@{self.project_id}.iam.gserviceaccount.com"

    @property
    def pull_member(self) -> str:
        """User pods' service account as an IAM policy member."""
        return f"serviceAccount:{self.pull_email}"

    @property
    def node_member(self) -> str:
        """The GKE nodes' service account as an IAM policy member."""
        return f"serviceAccount:{self.node_service_account}"


def _location_and_auth_fit(p: Params) -> None:
    """gcr.io host names exist in three multi-regions only; keyless has no key to rotate."""
    if p.gcr_domain and p.location not in GCR_HOSTS:
        raise InvalidParameter(
            "location", "must be us, europe or asia with gcr_domain = True", p.location
        )
    if p.keyless and p.rotate and p.pull_access != "secret":
        raise InvalidParameter("rotate", 'has no key to rotate with auth = "metadata"', True)
    if p.pull_access == "node" and not p.node_service_account:
        raise InvalidParameter(
            "node_service_account",
            "must be the GKE nodes' service account's email with pull_access = \"node\"",
            "",
        )
    if p.service_account and p.pull_account == p.service_account:
        raise InvalidParameter(
            "service_account",
            "must not be 30 characters ending in -pull: user pods' account (<id>-pull, cut to "
            "30) would be the same",
            p.service_account,
        )


validate = validator(Params, PARAMETERS, _location_and_auth_fit)


#: This registry on the docs' landing page: its row of the guide's table, its item of "Choose your
#: registry" and its column of the registry matrix (docs/_ext/guide.py renders them).
GUIDE = GuideEntry(
    section="2.1",
    title=(
        "Google Artifact Registry (Container Registry was shut down on 2025-03-18; Artifact "
        "Registry serves the gcr.io names)"
    ),
    name="Google Artifact Registry",
    choose=(
        "if BinderHub runs on GKE: the nodes can pull with their own identity (`pull_access = "
        '"node"`), and BinderHub\'s image check can go keyless (`auth = "metadata"`) where '
        "the organisation forbids keys."
    ),
    cost="per GiB stored per month, with a free allowance, plus network egress [^ar-pricing]",
    limits=(
        "registry host per location (`<location>-docker.pkg.dev`); a repository must exist "
        "before the first push [^design-google]"
    ),
    needs=(
        "a Google Cloud project with billing, and the right to enable APIs, create service "
        "accounts and keys and set IAM policies"
    ),
    credential=(
        "a service account with `roles/artifactregistry.writer` on the one repository, and a "
        'JSON key (username `_json_key`); with `auth = "metadata"` no key, tokens from the GKE '
        "metadata server"
    ),
    pull_credential=(
        "a second service account, `<service_account>-pull`, with "
        "`roles/artifactregistry.reader` on the one repository, and its own JSON key; "
        '`"node"`: the reader role for the GKE node service account'
    ),
    rotation=(
        "`rotate = True`: a new key, verified, then the old one deleted; `keep_replaced = True` "
        "keeps it until a run without it, after you deploy (kept keys count toward the 10 per "
        "service account)"
    ),
    expires=(
        "keys do not expire by default; organisations created since May 2024 forbid key creation "
        "by default [^design-google]"
    ),
    notes={
        "ar-pricing": (
            'Google\'s ["Artifact Registry pricing"]'
            "(https://cloud.google.com/artifact-registry/pricing)."
        ),
        "design-google": (
            'Artifact Registry\'s ["Configure authentication to Artifact Registry for Docker"]'
            "(https://cloud.google.com/artifact-registry/docs/docker/authentication) and "
            '["Transition from Container Registry"]'
            "(https://cloud.google.com/artifact-registry/docs/transition/transition-from-gcr) "
            "pages (Container Registry shut down on 2025-03-18), IAM's [\"Restricting service "
            'account usage"]'
            "(https://cloud.google.com/resource-manager/docs/organization-policy/restricting-service-accounts)"
            ' (the `iam.disableServiceAccountKeyCreation` constraint) and ["Secure by default '
            'organization resources"]'
            "(https://cloud.google.com/resource-manager/docs/secure-by-default-organizations) "
            "(enforced by default for organisations created since 2024-05-03) and the 10-key "
            "limit in [IAM's quotas page](https://cloud.google.com/iam/quotas); each sandbox "
            "behaviour names its own source in the fake's module table."
        ),
    },
)
