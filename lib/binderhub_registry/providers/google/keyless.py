"""Keyless (``auth = "metadata"``): Workload Identity, the values for BinderHub's
``GoogleArtifactRegistry`` and their verification through the (sandbox's) metadata server."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ... import sandbox as sandbox_mod
from ...binderhub import (
    PullSecret,
    auth_key_host,
    chart_docker_config,
    next_commands,
    read_values_file,
    split_image_reference,
    values_header,
)
from ...errors import BinderHubRegistryError, CloudError, VerificationFailed
from ...pull import PULL_CHECK, PUSH_REFUSED_CHECK, pull_image, push_refused
from ...push import PUSH_CHECK, delete_tag, push_auth, push_image
from ...registry_http import RegistryHTTP, denied
from ...secrets import Secret, write_private_file
from ...steps import Result
from ...verify import CHECK_IMAGE, VerificationReport, VerifyHints
from ..contract import creates
from .iam import _edit_account_policy, _grant
from .params import (
    BINDERHUB_KSA,
    KEYLESS_CLASS,
    METADATA_URL,
    NAME,
    NOTEBOOK,
    ROLE,
    WORKLOAD_IDENTITY_USER,
    Params,
)
from .session import BOUND, GoogleSession, _keep, _retire_later, _retiring, _retiring_members
from .settling import _NOT_LAG


# --- keyless values ------------------------------------------------------------------------
def _keyless_header(out: Path) -> str:
    """The values files' opening comment: the core's (source, then the helm commands with the
    files' real paths), and that BinderHub has no key."""
    return values_header(NOTEBOOK, out / "config.yaml", out / "secret.yaml") + (
        "# auth = metadata: BinderHub has no key; secret.yaml: user pods' pull key, when written\n"
    )


@dataclass(frozen=True)
class KeylessValues:
    """BinderHub's values for ``GoogleArtifactRegistry``: ``config.yaml`` only, no secret."""

    image_prefix: str
    url: str  # DockerRegistry.url: the registry, https://<host>
    token_url: str  # the metadata server's token URL

    def config(self) -> dict[str, Any]:
        """The ``config.yaml`` values."""
        return {
            "config": {
                "BinderHub": {
                    "use_registry": True,
                    "image_prefix": self.image_prefix,
                    "registry_class": KEYLESS_CLASS,
                },
                "DockerRegistry": {"url": self.url, "token_url": self.token_url},
            }
        }


@dataclass(frozen=True)
class KeylessFiles:
    """Where the keyless ``config.yaml`` was written, with its display."""

    config_path: Path
    values: KeylessValues
    pull: PullSecret | None = None  # user pods' key, in secret.yaml (pull_access = "secret")

    def _text(self) -> str:
        import yaml

        body = yaml.safe_dump(self.values.config(), sort_keys=False)
        if self.pull is None:
            return f"# {self.config_path}\n{body}\n# no secret.yaml: no key (auth = metadata)"
        secret = yaml.safe_dump(
            {"jupyterhub": {"imagePullSecret": self.pull.values()}}, sort_keys=False
        )
        return (
            f"# {self.config_path}\n{body}\n# {self.config_path.parent / 'secret.yaml'} (mode "
            f"0600): user pods' pull key alone (BinderHub has no key: auth = metadata)\n{secret}"
        )

    def __repr__(self) -> str:
        return self._text()

    def _repr_markdown_(self) -> str:
        return f"```yaml\n{self._text()}\n```"

    def next_step(self) -> str:
        """The helm commands that install BinderHub with these files, then ``verify``'s."""
        return next_commands(self.config_path, self.config_path.parent / "secret.yaml")


def _stored_section(out: Path, key: str) -> dict[str, Any] | None:
    """``secret.yaml``'s top-level ``key`` (``registry``, ``jupyterhub``), or None."""
    try:
        section = read_values_file(out / "secret.yaml").get(key)
    except (OSError, BinderHubRegistryError, AttributeError):
        return None
    return section if isinstance(section, dict) and section else None


def _write_secret(
    out: Path,
    registry: dict[str, Any] | None,
    pull: PullSecret | None,
    jupyterhub: dict[str, Any] | None = None,
) -> None:
    """Keyless ``secret.yaml`` (0600): an earlier key's ``registry``, if it must stay, and
    user pods' ``jupyterhub.imagePullSecret``; removed when it would hold neither."""
    import yaml

    values: dict[str, Any] = {}
    if registry is not None:
        values["registry"] = registry
    if pull is not None:
        jupyterhub = {"imagePullSecret": pull.values(reveal=True)}
    if jupyterhub is not None:
        values["jupyterhub"] = jupyterhub
    if not values:
        return  # nothing to hold (an earlier file stays as finish_rotation leaves it)
    text = _keyless_header(out) + yaml.safe_dump(values, sort_keys=False)
    write_private_file(out / "secret.yaml", text)


def _annotate_sandbox_pod(conn: GoogleSession) -> None:
    """Sandbox: what ``kubectl annotate serviceaccount`` does, on the fake cluster's pod."""
    import requests

    box = sandbox_mod.ensure()
    pod = {
        "namespace": conn.params.k8s_namespace,
        "service_account": BINDERHUB_KSA,
        "annotation": conn.params.email,
        "project": conn.params.pool.partition(".")[0],
    }
    r = requests.post(
        f"{box.url}/_sandbox/google/settings",
        json={"metadata_pod": pod},
        headers=box.admin_headers(),
        verify=box.ca_file,
        timeout=10,
    )
    r.raise_for_status()


#: The programs in BinderHub's image (jupyterhub/binderhub helm-chart/images/binderhub/
#: Dockerfile at b9fad99: python:3.13-slim-bookworm plus git, libcurl4 and tini): no curl.
BINDERHUB_IMAGE_TOOLS = frozenset({"python", "python3", "pip", "git", "tini"})
#: What :func:`keyless_check_command` runs in BinderHub's pod: the account the metadata server
#: gives it, then a token's lifetime (never the token), as ``GoogleArtifactRegistry`` asks.
_CHECK_CODE = (
    "import json,urllib.request as u;h={{'Metadata-Flavor':'Google'}};"
    "b='{base}/computeMetadata/v1/instance/service-accounts/default/';"
    "print('account:',u.urlopen(u.Request(b+'email',headers=h)).read().decode());"
    "t=json.load(u.urlopen(u.Request(b+'token',headers=h)));"
    "print('token: yes, expires in',t['expires_in'],'s')"
)


def keyless_check_command(p: Params, metadata_url: str = METADATA_URL) -> str:
    """The ``kubectl exec`` line that asks the metadata server from BinderHub's pod as
    BinderHub does, with ``python -c`` (its image has no curl: :data:`BINDERHUB_IMAGE_TOOLS`)."""
    code = _CHECK_CODE.format(base=metadata_url)
    return f'kubectl exec --namespace {p.k8s_namespace} deploy/binder -- python -c "{code}"'


def annotate_command(p: Params) -> str:
    """The ``kubectl`` line that lets BinderHub's pod act as the service account."""
    return (
        f"kubectl annotate serviceaccount {BINDERHUB_KSA} --namespace {p.k8s_namespace} "
        f"iam.gke.io/gcp-service-account={p.email} --overwrite"
    )


@creates
def bind_workload_identity(conn: GoogleSession) -> Result[None]:
    """Keyless: let BinderHub's Kubernetes service account act as ours (Workload Identity).

    Grants ``roles/iam.workloadIdentityUser`` on the service account to
    ``serviceAccount:<project>.svc.id.goog[<namespace>/binderhub]``, as
    ``gcloud iam service-accounts add-iam-policy-binding`` does (GKE's Workload Identity
    how-to). The ``iam.gke.io/gcp-service-account`` annotation is a Kubernetes change:
    done on the sandbox's fake pod, printed as a ``kubectl`` line for a real cluster.
    The member is recorded just before the policy write (:func:`_adding`). With ``auth =
    "key"`` the member this notebook recorded is retired instead (:func:`_unbind_later`),
    and a member of another ``k8s_namespace`` recorded earlier is retired once the new one
    is bound.
    """
    p = conn.params
    if not p.keyless:
        return _unbind_later(conn)
    entry, member = {BOUND: p.workload_member}, p.workload_member
    recorded = conn.record.created.get(BOUND)
    moved = recorded not in (None, member)
    # k8s_namespace changed: the old member goes (in a dry run, in memory: finish's message)
    if moved:
        _retire_later(conn, [{BOUND: recorded}], BOUND)
    would = f"grant {WORKLOAD_IDENTITY_USER} on {p.email} to {member}"
    if moved:
        would += f" ({recorded}, which this notebook bound, is removed once this verifies)"
    conn.plan(would)  # before any read: in a dry run the account itself may be only planned
    if entry in _retiring(conn):  # back to keyless before the switch to a key finished
        _keep(conn, entry, BOUND, member)
    try:
        created = _grant(conn, WORKLOAD_IDENTITY_USER, member, BOUND, would, _edit_account_policy)
    except CloudError as e:
        if _NOT_LAG not in str(e):
            raise
        conn.note(BOUND, None)  # refused: nothing was bound
        raise CloudError(_NO_POOL.format(pool=p.pool, project=p.pool.partition(".")[0])) from None
    conn.bound = True
    if p.sandbox:
        _annotate_sandbox_pod(conn)
        then = "the sandbox's BinderHub pod annotated as kubectl would"
    else:
        # the chart makes that Kubernetes service account (with rbac.enabled, its default)
        then = f"after helm upgrade --install (2.5), run: {annotate_command(p)}"
    what = f"{member} may act as {p.email}"
    if moved:
        what += f" ({recorded}, which this notebook bound, is removed once this verifies)"
    return Result(None, "created" if created else "reused", f"{what}; {then}")


#: IAM refused the member: its pool exists only once a GKE cluster with Workload Identity runs
#: in that project (terraform-google-modules/terraform-google-kubernetes-engine#916).
_NO_POOL = (
    f"{NAME}: the Workload Identity pool {{pool}} does not exist: it exists once a GKE cluster "
    "with Workload Identity runs in project {project} (gcloud container clusters update "
    "<cluster> --workload-pool={pool}); if BinderHub's cluster is in another project, set "
    "cluster_project to that project"
)


def _unbind_later(conn: GoogleSession) -> Result[None]:
    """``auth = key``: the member this notebook bound (an earlier keyless run) is removed by
    ``finish_rotation`` once the key verified; until then the deployed keyless BinderHub works."""
    p = conn.params
    recorded = conn.record.created.get(BOUND)
    pending = [m for m in _retiring_members(_retiring(conn)) if m != recorded]
    if not recorded and not pending:
        return Result(None, "skipped", "auth = key: BinderHub pushes with a JSON key")
    member = str(recorded or pending[0])
    what = f"{WORKLOAD_IDENTITY_USER} for {member}, which this notebook granted on {p.email},"
    if recorded:
        conn.plan(f"remove {what} once the key verifies (auth = key)")
        _retire_later(conn, [{BOUND: recorded}], BOUND)
    namespace = member.partition("[")[2].partition("/")[0]
    unannotate = (
        f"kubectl annotate serviceaccount {BINDERHUB_KSA} --namespace {namespace} "
        "iam.gke.io/gcp-service-account-"
    )
    return Result(
        None,
        "updated" if recorded else "done",
        f"auth = key: {what} is removed once the key verifies; once the new values are "
        f"deployed: {unannotate}",
    )


# --- keyless verification -------------------------------------------------------------------
def _metadata_token(token_url: str, check: str, account: str = "", fix: str = "") -> Secret:
    """The access token, asked as ``GoogleArtifactRegistry._get_token`` does; with
    ``account``, the metadata server must say the token is that account's (``.../email``):
    a pod whose Kubernetes service account lacks the annotation gets a token too, for its own
    federated identity (or, on a node pool without Workload Identity, the node's account)."""
    import requests

    if urlparse(token_url).hostname not in ("127.0.0.1", "::1"):  # never a real metadata server
        raise VerificationFailed(check, f"{token_url} is not the sandbox's metadata server")
    session = requests.Session()
    session.trust_env = False
    r = session.get(token_url, headers={"Metadata-Flavor": "Google"}, timeout=10)
    if r.status_code != 200:
        first = r.text.strip().splitlines()[0][:200] if r.text.strip() else ""
        raise VerificationFailed(
            check,
            f"the metadata server refused a token (HTTP {r.status_code}: {first}): BinderHub's "
            f"Kubernetes service account needs {WORKLOAD_IDENTITY_USER} on the Google service "
            "account and the iam.gke.io/gcp-service-account annotation: rerun this notebook",
        )
    try:
        token = Secret(str(r.json()["access_token"]))
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed(check, "the metadata server answered no access_token") from None
    if account:
        email_url = token_url.rpartition("/token")[0] + "/email"
        who = session.get(email_url, headers={"Metadata-Flavor": "Google"}, timeout=10)
        got = who.text.strip()[:200] if who.status_code == 200 else f"HTTP {who.status_code}"
        if got != account:
            raise VerificationFailed(
                check,
                f"the metadata server gives BinderHub's pod a token for {got}, not {account}: "
                "its Kubernetes service account lacks the iam.gke.io/gcp-service-account "
                "annotation, or its node pool runs without Workload Identity (GKE_METADATA)"
                + (f"; {fix}" if fix else ""),
            )
    return token


def _keyless_manifest(
    http: RegistryHTTP, url: str, token: Secret, image: str, tag: str, check: str
) -> bool:
    """``get_image_manifest`` with ``GoogleArtifactRegistry``'s token: True when found."""
    r = http.get(
        f"{url}/v2/{image}/manifests/{tag}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json",
            "Authorization": f"Bearer {token.reveal()}",
        },
    )
    if r.status_code == 404:
        return False
    if r.status_code == 200:
        return True
    words = f" (denied: {denied(r)})" if r.status_code == 403 and denied(r) else ""
    raise VerificationFailed(
        check,
        f"the registry answered HTTP {r.status_code} to the metadata server's token{words}: the "
        f"service account needs {ROLE} (or reader) on the repository",
    )


#: The report's line for build pods under keyless values (the push they cannot do).
NOT_COVERED = "not covered by keyless"
#: The check that puts the test image in place when build pods cannot (sandbox only).
SEED_CHECK = "stand-in push of the test image"


def _build_pod_push(
    values: KeylessValues,
    registry: dict[str, Any] | None,
    ca_bundle: str | None,
    image: str,
    tag: str,
    hints: VerifyHints,
    report: VerificationReport,
) -> tuple[RegistryHTTP, str] | None:
    """Push as a build pod would, with the docker config the chart renders from the written
    values (``registry.*`` of secret.yaml, absent keyless: the chart's Docker Hub default).

    (the client and digest) when that pushes; None, with the push reported
    :data:`NOT_COVERED`, when it cannot: ``GoogleArtifactRegistry`` has no ``get_credentials``
    (binderhub/registry.py), so build pods get no metadata token.
    """
    host = urlparse(values.url).netloc
    auths = chart_docker_config(registry or {})["auths"]
    key = next((k for k in auths if auth_key_host(k) == host), None)
    user, _, password = (
        base64.b64decode(auths[key]["auth"]).decode().partition(":") if key else ("", "", "")
    )
    rendered = ", ".join(auths)
    http = RegistryHTTP(user, Secret(password), ca_bundle)
    what = "an earlier key in secret.yaml (registry.*)" if key else f"none for {host}"
    report.add(
        "build pods' docker config",
        f"the chart renders credentials for {rendered}: {what}",
        "ok" if key else "skipped",
    )
    try:
        auth = push_auth(http, values.url, image, "pull,push", check="push token", hints=hints)
        digest = push_image(http, values.url, image, tag, auth, hints=hints)
    except VerificationFailed:
        report.add(
            PUSH_CHECK,
            f"{NOT_COVERED}: build pods push with that docker config, and {host} refused "
            "their push; GoogleArtifactRegistry gives them no token: they need a way to push "
            "of their own (step 7), or auth = key",
            "skipped",
        )
        return None
    report.add(
        PUSH_CHECK,
        f"pushed with {what}, not keylessly: once that key is removed build pods cannot push "
        f"({NOT_COVERED})",
    )
    return http, digest


def verify_keyless(
    values: KeylessValues,
    ca_bundle: str | None,
    hints: VerifyHints,
    pull: PullSecret | None = None,
    *,
    registry: dict[str, Any] | None = None,
    stand_in: tuple[str, Secret] | None = None,
    account: str = "",
    fix: str = "",
) -> VerificationReport:
    """Do what BinderHub's ``GoogleArtifactRegistry`` does, then push as a build pod would.

    1. the token from ``token_url`` with ``Metadata-Flavor: Google``, and the manifest
       request with it as a Bearer (binderhub/registry.py): expect "not built";
    2. a push with what the chart renders from the written values (``registry``: secret.yaml's
       ``registry`` section, None keyless): no credential for the registry, so the push is
       refused and reported :data:`NOT_COVERED`, not failed; ``stand_in`` credentials (the
       deployer's, ``oauth2accesstoken``) then push the test image, so that the rest can be
       checked;
    3. the check again: expect "found"; then delete the test tag where allowed;
    4. with user pods' ``pull`` key: pull the image as a kubelet does, and see it refused a
       push (:mod:`...pull`).

    ``account``: the Google service account the pod must act as (checked first, ``fix`` says
    how). Only against the sandbox: a token URL off loopback is refused before any request.
    """
    host, image = split_image_reference(values.image_prefix + CHECK_IMAGE[0])
    tag = CHECK_IMAGE[1]
    report = VerificationReport(image=f"{host}/{image}:{tag}")
    check = "BinderHub's image check (GoogleArtifactRegistry)"
    try:
        token = _metadata_token(values.token_url, check, account, fix)
        checker = RegistryHTTP("oauth2accesstoken", token, ca_bundle)
        if _keyless_manifest(checker, values.url, token, image, tag, check):
            detail = "a previous check image is present"
        else:
            detail = "not built yet, as expected"
        report.add(check, f"metadata server token as Bearer: {detail}")
        pushed = _build_pod_push(values, registry, ca_bundle, image, tag, hints, report)
        if pushed is None:
            if stand_in is None:
                return report
            check = SEED_CHECK
            http = RegistryHTTP(stand_in[0], stand_in[1], ca_bundle)
            auth = push_auth(http, values.url, image, "pull,push", check=check, hints=hints)
            digest = push_image(http, values.url, image, tag, auth, hints=hints)
            report.add(
                check,
                "pushed with the deployer's credentials in a build pod's place, so BinderHub's "
                "check and user pods' pull can be verified",
            )
        else:
            http, digest = pushed
        check = "BinderHub finds the pushed image"
        if not _keyless_manifest(checker, values.url, token, image, tag, check):
            raise VerificationFailed(check, "pushed, but BinderHub's keyless check does not see it")
        report.add(check, "found, so launches will reuse built images")
        if pull is not None:
            puller = RegistryHTTP(pull.username, pull.password, ca_bundle)
            pulled = pull_image(puller, values.url, image, tag, hints=hints)
            report.add(PULL_CHECK, f"{pulled} with jupyterhub.imagePullSecret ({pull.username})")
            check = PUSH_REFUSED_CHECK
            if not push_refused(puller, values.url, image, hints=hints):
                raise VerificationFailed(check, "user pods' key may push: it must be reader only")
            report.add(check, "user pods' credential may pull but is refused a push")
        deleted, detail = delete_tag(http, values.url, image, digest, hints=hints)
        report.add("delete the test tag", detail, "ok" if deleted else "skipped")
    except VerificationFailed as failed:
        report.add(failed.check, failed.diagnosis, "failed")
        failed.report = report
        raise
    return report
