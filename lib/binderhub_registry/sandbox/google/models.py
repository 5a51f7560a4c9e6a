"""Fake Google Cloud's state: one project, its enabled services, repositories, service accounts.

=============================================  ================================================
behaviour                                      source
=============================================  ================================================
service-account email
``<id>@<project>.iam.gserviceaccount.com``,    cloud.google.com/iam/docs/service-accounts-create
id 6-30 chars ``[a-z][a-z0-9-]*[a-z0-9]``      (naming rules)
a service account holds at most 10 keys;      cloud.google.com/iam/docs/keys-create-delete
the 11th: FAILED_PRECONDITION                  ("up to 10 keys"); the status: assumption
key creation refused by the org policy         cloud.google.com/resource-manager/docs/
``iam.disableServiceAccountKeyCreation``:      organization-policy/restricting-service-accounts
FAILED_PRECONDITION "Key creation is not       (enforced by default for organizations
allowed on this service account." with a       created since 2024-05-03, as the managed
PreconditionFailure naming the constraint;     constraint: hashicorp-education/learn-terraform-
``key_creation_disabled = "managed"``: the     google-workspace#9); the body as gcloud prints it
managed ``iam.managed.disableService           in GaloyMoney/galoy-infra#242 and google/create-
AccountKeyCreation``                           service-account#21 (legacy type); the managed
                                               constraint's type in the violation: assumption
a new service account is NOT_FOUND for a       cloud.google.com/iam/docs/service-accounts-create
short while after creation (eventual           ("may take ... 60 seconds or more");
consistency)                                   modelled as ``not_found_after_create`` reads
... and, per kind of call, any answers         hashicorp/terraform-provider-google#10227 (a read
``new_account_answers`` lists, in order:       right after creation: 403 "Permission iam.
reads (403 as well as 404, a good read then    serviceAccounts.get is required ...") and PR
a bad one), key list/create, its own policy,   #15677 / magic-modules#8815 (retry it);
a repository policy naming it (400 "Service    magic-modules#14447 (a good read can be followed
account ... does not exist.")                  by a bad one: wait for three in a row)
a new project has only Google's default        cloud.google.com/service-usage/docs/enabled-
services on (console or gcloud; a project      service ("Services enabled by default", 2025
made through the API has none:                 list): no ``iam.googleapis.com``, no
hashicorp/terraform-provider-google#14174)     ``artifactregistry.googleapis.com``
an API just enabled still answers 403          the message's own "If you enabled this API
SERVICE_DISABLED for a while                   recently, wait a few minutes for the action to
(``disabled_after_enable`` calls)              propagate" (openshift/installer#2187); the
                                               Terraform provider's guide, "Newly activated
                                               service errors"
key file JSON: type, project_id,               the JSON key file google-auth reads
private_key_id, private_key (PKCS#8 PEM),      (google.oauth2.service_account.from_
client_email, client_id, token_uri, ...        service_account_info)
a repository keeps ``labels`` (at most 64,   Repository.labels in artifactregistry.v1's
keys ``[a-z][a-z0-9_-]{0,62}``, values         discovery document ("up to 64 entries. Label
``[a-z0-9_-]{0,63}``) and ``description``;     keys and values may be no longer than 63
``repositories.patch`` changes the fields      characters..."); Repository.description;
``updateMask`` names                           repositories.patch and its updateMask
IAM policy etag: changes at every set; a       cloud.google.com/iam/docs/policies#etag
set with a stale etag: 409 ABORTED             (concurrency control)
conditional bindings (``condition``: title,    cloud.google.com/iam/docs/troubleshooting-withcond
expression, description) are kept; a read      (a version 1 read shows ``<role>_withcond_<20 hex
below version 3 of a policy holding one shows  digits>``, without the condition); Policy.version
it as ``<role>_withcond_<hash>`` (version 1);  in the IAM API ("Operations affecting conditional
a write below version 3 with a condition, or   role bindings must specify version 3");
with an etag over a conditional policy, or     vault-plugin-secrets-gcp#88 (400 "Specified policy
naming a ``_withcond_`` role: 400              version (1) cannot be less than the existing
INVALID_ARGUMENT; a conditional grant gives    policy version (3)..."); the other two texts, and
no registry access (conditions not evaluated)  not evaluating conditions: assumptions
a service account has its own IAM policy;      cloud.google.com/kubernetes-engine/docs/how-to/
``roles/iam.workloadIdentityUser`` for         workload-identity (``gcloud iam service-accounts
``serviceAccount:<project>.svc.id.goog[<ns>/   add-iam-policy-binding ... --role roles/iam.
<ksa>]`` lets that Kubernetes service account  workloadIdentityUser --member "serviceAccount:
act as it                                      PROJECT_ID.svc.id.goog[NAMESPACE/KSA_NAME]"``;
                                               the same command quoted in cloudnative-pg/
                                               cloudnative-pg#5370)
a member ``serviceAccount:<p>.svc.id.goog[..]`` terraform-google-modules/terraform-google-
in a policy whose pool does not exist: 400     kubernetes-engine#916, jenkins-x/jx#7627 (REST:
INVALID_ARGUMENT "Identity Pool does not       ``Error 400: Identity Pool does not exist
exist (<p>.svc.id.goog). Please check ..."     (<p>.svc.id.goog). Please check that you ...``),
(the pool ``<p>.svc.id.goog`` exists once a    google/kctf#193 (gcloud: ``INVALID_ARGUMENT``);
GKE cluster with Workload Identity runs in     googleforgames/global-multiplayer-demo#39 (the
project ``<p>``: ``workload_identity_pools``,  pool appears with the project's first cluster
none in a new project)                         with Workload Identity)
``projectSettings``: ``legacyRedirectionState`` ProjectSettings in artifactregistry v1's
(gcr.io redirection), DISABLED in a new        discovery document (getProjectSettings,
project; updateProjectSettings sets DISABLED   updateProjectSettings; its enum, FINALIZED
or ENABLED (``updateMask``), else              deprecated); the default for a project that never
INVALID_ARGUMENT; old Container Registry       used Container Registry: assumption; no copy:
images are never copied in                     cloud.google.com/artifact-registry/docs/
                                               transition/setup-gcr-repo (images are copied
                                               separately, e.g. with gcrane)
``metadata_pod``: the Kubernetes service       sandbox knob standing in for ``kubectl annotate
account the fake metadata server serves, and   serviceaccount KSA iam.gke.io/gcp-service-
its ``iam.gke.io/gcp-service-account``         account=GSA`` (same how-to page); see
annotation                                     :mod:`.metadata`
=============================================  ================================================
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import threading

    from ..app import App

__all__ = [
    "DEFAULT_SERVICES",
    "DEFAULT_SETTINGS",
    "LAG_KINDS",
    "PROJECT",
    "PROJECT_NUMBER",
    "ROLE_ACTIONS",
    "SEED_ACCOUNT",
    "WORKLOAD_IDENTITY_USER",
    "Host",
    "Key",
    "Project",
    "Repository",
    "ServiceAccount",
    "missing_pool",
    "new_key",
    "policy_refusal",
    "policy_view",
    "rsa_pair",
    "seed_credentials",
    "seed_project",
]

PROJECT = "binderhub-demo"
PROJECT_NUMBER = "123456789012"
#: The deploying service account (project Owner) whose key file the sandbox seeds.
SEED_ACCOUNT = f"deployer@{PROJECT}.iam.gserviceaccount.com"
KEY_LIMIT = 10
#: What a role on a repository lets a principal do with its images (Artifact Registry roles page).
ROLE_ACTIONS: dict[str, set[str]] = {
    "roles/artifactregistry.reader": {"pull"},
    "roles/artifactregistry.writer": {"pull", "push"},
    "roles/artifactregistry.repoAdmin": {"pull", "push", "delete"},
    "roles/artifactregistry.admin": {"pull", "push", "delete"},
    "roles/owner": {"pull", "push", "delete"},
}
#: What a project created in the console or with gcloud has on (cloud.google.com/service-usage/
#: docs/enabled-service, "Services enabled by default"): IAM and Artifact Registry are not.
DEFAULT_SERVICES = frozenset(
    {
        "analyticshub.googleapis.com",
        "bigquery.googleapis.com",
        "bigqueryconnection.googleapis.com",
        "bigquerydatapolicy.googleapis.com",
        "bigquerymigration.googleapis.com",
        "bigqueryreservation.googleapis.com",
        "bigquerystorage.googleapis.com",
        "cloudapis.googleapis.com",
        "cloudtrace.googleapis.com",
        "dataform.googleapis.com",
        "dataplex.googleapis.com",
        "datastore.googleapis.com",
        "logging.googleapis.com",
        "monitoring.googleapis.com",
        "servicemanagement.googleapis.com",
        "serviceusage.googleapis.com",
        "sql-component.googleapis.com",
        "storage-api.googleapis.com",
        "storage-component.googleapis.com",
        "storage.googleapis.com",
    }
)
#: Kinds of IAM call on a new service account whose answers ``new_account_answers`` lists.
LAG_KINDS = ("read", "keys", "policy", "member")
DEFAULT_SETTINGS: dict[str, Any] = {
    "not_found_after_create": 1,  # reads of a new service account that answer NOT_FOUND
    # eventual consistency after creation, per kind of call on the new account: the status
    # names (or "OK") its first calls get, in order; "read": GetServiceAccount, "keys": list
    # and create keys, "policy": its own Get/SetIamPolicy, "member": a repository's
    # setIamPolicy naming it (answered INVALID_ARGUMENT "... does not exist.")
    "new_account_answers": {kind: [] for kind in LAG_KINDS},
    # calls to an API just enabled that still answer 403 SERVICE_DISABLED
    "disabled_after_enable": 0,
    # the org policy that forbids keys: True (iam.disableServiceAccountKeyCreation) or
    # "managed" (iam.managed.disableServiceAccountKeyCreation)
    "key_creation_disabled": False,
    "operation_polls": 1,  # polls an operation answers done=false before done=true
    "grpc_faults": [],  # [{"method": "CreateServiceAccount", "code": "UNAVAILABLE", ...}]
    # the pod the fake GKE metadata server answers for: its Kubernetes service account and
    # that account's iam.gke.io/gcp-service-account annotation ("" = not annotated)
    # ``project``: the project of the GKE cluster the pod runs in ("" = this project); also
    # ``node_metadata``: "GKE_METADATA" (default: a Workload Identity node pool) or
    # "GCE_METADATA" (none: the node's account, ``node_account``, for every pod)
    "metadata_pod": {
        "namespace": "binderhub",
        "service_account": "binderhub",
        "annotation": "",
        "project": "",
    },
    # projects with a GKE cluster with Workload Identity on, so a pool <project>.svc.id.goog:
    # none in a new project (binding a member of a missing pool is refused)
    "workload_identity_pools": [],
}
#: The role that lets a Kubernetes service account act as a Google service account.
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"


_POOL_MEMBER = re.compile(r"serviceAccount:([a-z][a-z0-9-]{4,28}[a-z0-9])\.svc\.id\.goog\[")


def missing_pool(project: Project, members: Any) -> str | None:
    """IAM's refusal of the first Workload Identity member whose pool does not exist, or None."""
    pools = set(project.settings["workload_identity_pools"])
    for member in members:
        found = _POOL_MEMBER.match(str(member))
        if found and found.group(1) not in pools:
            return (
                f"Identity Pool does not exist ({found.group(1)}.svc.id.goog). Please check that "
                "you specified a valid resource name as returned in the `name` attribute in the "
                "configuration API."
            )
    return None


def policy_view(bindings: list[dict[str, Any]], requested: int) -> tuple[int, list[dict[str, Any]]]:
    """A policy's version and bindings as IAM answers a read asking for version ``requested``:
    below 3, a conditional binding shows as ``<role>_withcond_<hash>``, without its condition."""
    shown = copy.deepcopy(bindings)
    if not any("condition" in b for b in shown):
        return 1, shown
    if requested >= 3:
        return 3, shown
    for b in shown:
        condition = b.pop("condition", None)
        if condition is not None:
            digest = hashlib.sha256(json.dumps(condition, sort_keys=True).encode()).hexdigest()
            b["role"] = f"{b['role']}_withcond_{digest[:20]}"
    return 1, shown


def policy_refusal(
    stored: list[dict[str, Any]], version: int, bindings: list[dict[str, Any]], etag: bool
) -> str | None:
    """IAM's INVALID_ARGUMENT text for a policy write below version 3 that would lose or fake
    conditions, else None (an etag-less write skips the version checks: Policy.etag docs)."""
    if version >= 3:
        return None
    if any(b.get("condition") for b in bindings):
        return f"Policy version {version or 1} does not support conditions; use version 3."
    if etag and any("condition" in b for b in stored):
        return (
            f"Specified policy version ({version or 1}) cannot be less than the existing policy "
            "version (3). For more information, please refer to "
            "https://cloud.google.com/iam/docs/policies#versions"
        )
    withcond = next((b["role"] for b in bindings if "_withcond_" in str(b.get("role"))), None)
    if withcond:
        return f"Role {withcond} is not supported for this resource."
    return None


def _rsa_pem() -> tuple[str, str]:
    """A new RSA key pair: (private PKCS#8 PEM, public PEM)."""
    # cryptography here, not at the top: the sandbox's start path needs none of it
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return pem, public


@functools.lru_cache(maxsize=64)
def public_of(private_pem: str, *, ours: bool = False) -> str | None:
    """The public PEM of a private PEM, or None when it is not one.

    ``ours``: the sandbox's own seeded key, whose RSA checks are skipped (they cost
    ~40 ms at every start and reset); a key a client presents is always checked.
    """
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(
            private_pem.encode(), password=None, unsafe_skip_rsa_key_validation=ours
        )
    except (ValueError, TypeError):
        return None
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class Key:
    """A service-account key: only the public half is kept, as Google does."""

    id: str
    public_pem: str
    created: str


@dataclass
class ServiceAccount:
    """A service account and its user-managed keys."""

    email: str
    unique_id: str
    display_name: str
    description: str = ""
    keys: dict[str, Key] = field(default_factory=dict)
    reads_hidden: int = 0  # eventual consistency: NOT_FOUND for this many reads
    lag: dict[str, list[str]] = field(default_factory=dict)  # new_account_answers left, by kind
    bindings: list[dict[str, Any]] = field(default_factory=list)  # its own IAM policy
    policy_version: int = 0  # bumped by every policy change: the etag

    @property
    def etag(self) -> bytes:
        """The policy's etag (bytes, as ``google.iam.v1.Policy.etag`` is)."""
        return hashlib.sha256(f"{self.email}#{self.policy_version}".encode()).digest()[:8]

    def members_of(self, role: str) -> set[str]:
        """The members this account's own policy grants ``role``."""
        found: set[str] = set()
        for binding in self.bindings:
            if binding.get("role") == role and "condition" not in binding:
                found |= set(binding.get("members", []))
        return found

    def lagging(self, kind: str) -> str | None:
        """The next answer ``new_account_answers`` gave this new account for ``kind`` (a
        status name; None: "OK" or none left): each is used up by one call."""
        answers = self.lag.get(kind) or []
        answer = answers.pop(0) if answers else "OK"
        return None if answer == "OK" else answer

    @property
    def account_id(self) -> str:
        """The part before ``@``."""
        return self.email.split("@", 1)[0]


@dataclass
class Repository:
    """An Artifact Registry repository and its IAM policy."""

    project: str
    location: str
    id: str
    format: str
    description: str
    created: str
    bindings: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0  # bumped by every policy change: the etag
    labels: dict[str, str] = field(default_factory=dict)
    # Repository.cleanupPolicies (by id) and cleanupPolicyDryRun: see :mod:`.retention`
    cleanup_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    cleanup_dry_run: bool = False

    @property
    def name(self) -> str:
        """``projects/<p>/locations/<l>/repositories/<id>``."""
        return f"projects/{self.project}/locations/{self.location}/repositories/{self.id}"

    @property
    def etag(self) -> str:
        """The policy's etag, as the JSON's base64 bytes."""
        digest = hashlib.sha256(f"{self.name}#{self.version}".encode()).digest()[:8]
        return base64.b64encode(digest).decode()

    def actions(self, member: str) -> set[str]:
        """What ``member`` (``serviceAccount:<email>``) may do here by this policy."""
        allowed: set[str] = set()
        for binding in self.bindings:
            if member in binding.get("members", []) and "condition" not in binding:
                allowed |= ROLE_ACTIONS.get(binding.get("role", ""), set())
        return allowed


@dataclass
class Project:
    """One project's state."""

    id: str
    number: str
    enabled: set[str]
    accounts: dict[str, ServiceAccount]
    repositories: dict[str, Repository] = field(default_factory=dict)  # by name
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> state
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> email
    owners: set[str] = field(default_factory=set)
    settings: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_SETTINGS))
    # Artifact Registry's ProjectSettings.legacyRedirectionState: gcr.io hosts reach the
    # project's gcr.io repositories only when redirection is on (off in a new project)
    redirection: str = "REDIRECTION_FROM_GCR_IO_DISABLED"
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    settling: dict[str, int] = field(default_factory=dict)  # just enabled: SERVICE_DISABLED left
    # seconds POST /_sandbox/clock moved the project ahead of the wall clock (versions' upload
    # times are on it: the registry front's record, see :mod:`.retention`)
    clock: float = 0.0

    def enable(self, service: str) -> None:
        """Turn ``service`` on; it answers SERVICE_DISABLED ``disabled_after_enable`` more times."""
        if service not in self.enabled:
            self.settling[service] = int(self.settings["disabled_after_enable"])
        self.enabled.add(service)

    def disable(self, service: str) -> None:
        """Turn ``service`` off."""
        self.enabled.discard(service)
        self.settling.pop(service, None)

    def refuses(self, service: str) -> bool:
        """True when a call to ``service`` gets 403 SERVICE_DISABLED: off, or just enabled and
        not yet everywhere (one of its ``disabled_after_enable`` answers is used up)."""
        if service not in self.enabled:
            return True
        if self.settling.get(service, 0) > 0:
            self.settling[service] -= 1
            return True
        return False

    def next_id(self, width: int = 21) -> str:
        """A deterministic numeric id (unique ids of service accounts, key ids...)."""
        return str(next(self.counter)).rjust(width, "1")

    def issue_token(self, email: str) -> str:
        """A new access token for ``email``."""
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        self.tokens[token] = email
        return token

    def principal(self, bearer: str) -> str | None:
        """Who an access token, or a self-signed JWT of a live key, stands for."""
        if bearer in self.tokens:
            return self.tokens[bearer]
        if bearer.count(".") == 2:
            return self.verify_jwt(bearer)
        return None

    def verify_jwt(self, token: str) -> str | None:
        """The issuer of an unexpired RS256 JWT signed by one of its live keys, else None.

        Token-endpoint assertions and self-signed JWTs (which the SDKs send as Bearer
        tokens for service-account keys: google-auth ``always_use_jwt_access``) alike.
        """
        # cryptography here, not at the top: the sandbox's start path needs none of it
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        try:
            head, body, signature = token.split(".")
            header = json.loads(_b64url(head))
            claims = json.loads(_b64url(body))
            account = self.accounts[claims["iss"]]
            key = account.keys[header["kid"]]
            public = serialization.load_pem_public_key(key.public_pem.encode())
            assert isinstance(public, rsa.RSAPublicKey)
            public.verify(
                _b64url(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (ValueError, KeyError, TypeError, AssertionError, InvalidSignature):
            return None
        if float(claims.get("exp", 0)) < time.time():
            return None
        return account.email

    def check_key_file(self, info: Any) -> ServiceAccount | None:
        """The live account whose live key ``info`` (a key file's JSON) is, else None."""
        if not isinstance(info, dict):
            return None
        account = self.accounts.get(str(info.get("client_email", "")))
        if account is None:
            return None
        key = account.keys.get(str(info.get("private_key_id", "")))
        if key is None:
            return None
        return account if public_of(str(info.get("private_key", ""))) == key.public_pem else None


def rsa_pair() -> tuple[str, str]:
    """A new RSA key pair (private PKCS#8 PEM, public PEM), as Google makes for a key."""
    return _rsa_pem()


def new_key(
    project: Project,
    account: ServiceAccount,
    token_uri: str,
    pair: tuple[str, str] | None = None,
) -> tuple[Key, dict[str, Any]]:
    """A new key for ``account``: the stored public half, and the key file's JSON.

    ``pair``: a pair made ahead (:func:`rsa_pair`), else a new one now.
    """
    private_pem, public_pem = pair or _rsa_pem()
    key_id = hashlib.sha1(public_pem.encode()).hexdigest()  # an id, not security
    key = Key(key_id, public_pem, "2026-01-01T00:00:00Z")
    account.keys[key_id] = key
    info = key_file(project.id, account, key_id, private_pem, token_uri)
    return key, info


def key_file(
    project: str, account: ServiceAccount, key_id: str, private_pem: str, token_uri: str
) -> dict[str, Any]:
    """A JSON key file as Google writes it."""
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": account.email,
        "client_id": account.unique_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": (
            f"https://www.googleapis.com/robot/v1/metadata/x509/{account.email}"
        ),
        "universe_domain": "googleapis.com",
    }


def seed_credentials(pair: tuple[str, str] | None = None) -> dict[str, str]:
    """The deployer's key (its private half), for the sandbox's ``credentials.json``, from
    ``pair`` (private PEM, public PEM: the sandbox's spare pair) or a new one."""
    private_pem, public_pem = pair or _rsa_pem()
    key_id = hashlib.sha1(public_pem.encode()).hexdigest()
    return {
        "project_id": PROJECT,
        "client_email": SEED_ACCOUNT,
        "private_key_id": key_id,
        "private_key": private_pem,
    }


def seed_project(deployer: dict[str, str], public_pem: str | None = None) -> Project:
    """The seeded project: Google's default services on (not IAM, not Artifact Registry), one
    Owner.

    ``public_pem``: the deployer's public key when known (else derived, ~60 ms of imports).
    """
    public = public_pem or public_of(deployer["private_key"], ours=True) or ""
    account = ServiceAccount(SEED_ACCOUNT, "100000000000000000001", "deployer")
    account.keys[deployer["private_key_id"]] = Key(
        deployer["private_key_id"], public, "2026-01-01T00:00:00Z"
    )
    return Project(
        id=PROJECT,
        number=PROJECT_NUMBER,
        enabled=set(DEFAULT_SERVICES),
        accounts={SEED_ACCOUNT: account},
        owners={f"serviceAccount:{SEED_ACCOUNT}"},
    )


def dumps(data: Any) -> bytes:
    """JSON bytes."""
    return json.dumps(data).encode()


class Host(Protocol):
    """What the REST routes (:mod:`.rest`), the IAM gRPC server (:mod:`.iam`) and the
    metadata server (:mod:`.metadata`) use of the backend that serves them
    (:class:`.cloud.GoogleCloud`), so that they need not import it: the live project (a reset
    replaces it), the lock, the app, gRPC's faults and log, and the registry fronts."""

    project: Project
    lock: threading.RLock
    app: App | None
    fronts: dict[str, Any]  # the registry fronts by location (or gcr.io domain)

    @property
    def token_uri(self) -> str:
        """The OAuth token endpoint key files name."""
        ...

    def grpc_fault(self, method: str) -> dict[str, Any] | None:
        """The first pending gRPC fault for ``method``, used up by one."""
        ...

    def log_grpc(self, method: str, code: str) -> None:
        """Log a gRPC call in the app's request log."""
        ...

    def registry_host(self, repo: Repository) -> str | None:
        """The host of ``repo``'s front (None before it starts)."""
        ...

    def ensure_front(self, repo: Repository) -> None:
        """Start the front serving ``repo``'s location (or gcr.io domain) if not running."""
        ...

    def drop_images(self, repo: Repository) -> None:
        """Free what a deleted repository held."""
        ...


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
