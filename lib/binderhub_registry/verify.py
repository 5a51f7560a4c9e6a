"""Prove BinderHub values work: BinderHub's own registry handshake, then a real push.

Using only the emitted values (``config.yaml`` + ``secret.yaml``):

1. render the build pods' docker config as the chart does, and check its host
   matches the ``image_prefix`` host (else pods push without credentials);
2. run BinderHub's existence check (:mod:`.binderhub_check`) on the path the
   values select: expect "not built";
3. get a push token from the registry's own challenge, as ``docker push`` does;
4. push a tiny single-manifest OCI image (:mod:`.push`);
5. run BinderHub's check again: expect "found";
6. pull the image as user pods' kubelet does, with only ``jupyterhub.imagePullSecret``
   (:mod:`.pull`), and show that credential is refused a push (least privilege);
   without a pull secret, an anonymous pull says whether the registry is public;
7. delete the test tag where the credentials allow it (else the check is
   "skipped", not failed).

The report sums the checks up per consumer of the values: the binder pod's image
check, the build pods' push, the user pods' pull, and least privilege.

Each failure raises :class:`VerificationFailed` with a diagnosis a person can act
on, and the report so far (``.report``); when the registry refuses the credentials
themselves at login (as ``docker login`` asks), that is the diagnosis, whatever check
failed (Harbor takes a wrong robot secret as anonymous and refuses only later).
:func:`stopped_sandbox` tells values whose loopback registry no longer listens (a
sandbox that stopped) before any retry. A provider passes :class:`VerifyHints`
to word the diagnoses for its registry (what grants push, how to renew credentials).
Each floor calls only the ones below it, so one verification goes down and comes back
once: this module runs the checks; BinderHub's check, the push and the pull word what a
manifest or upload answer means; :mod:`.registry_auth` words what the token service's
answers mean (and asks, as ``docker login`` does, whether the credentials themselves are
refused); :mod:`.registry_http` only carries requests (https, the deadline, faults). The
report, its checks and the hints are :mod:`.report`'s, the floor below them all.

Read top-down: :func:`verify`, then its checks in the order they run, then the
diagnosis of values whose sandbox stopped.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse, urlsplit

from .binderhub import RegistryValues, ValuesFiles, auth_key_host, split_image_reference
from .binderhub_check import BinderHubRegistrySettings, binderhub_settings, get_image_manifest
from .errors import CloudError, InvalidParameter, VerificationFailed
from .pull import pull_image, push_refused
from .push import delete_tag, push_auth, push_image
from .registry_auth import login_refused
from .registry_http import (
    DEADLINE,
    Deadline,
    RegistryHTTP,
    origin,
    plain_http_refusal,
    secret_forms,
)
from .report import (
    PULL_CHECK,
    PUSH_CHECK,
    PUSH_REFUSED_CHECK,
    STORAGE_CHECK,
    Check,
    VerificationReport,
    VerifyHints,
)
from .secrets import Secret, redact
from .steps import Result
from .usage import NO_USAGE, NotRead, Usage, storage_row

__all__ = [
    "CHECK_IMAGE",
    "SANDBOX_CA",
    "BinderHubRegistrySettings",
    "Check",
    "VerificationReport",
    "VerifyHints",
    "binderhub_image_name",
    "binderhub_settings",
    "report_storage",
    "stopped_sandbox",
    "verify",
    "verify_step",
]

#: Image name (after image_prefix) and tag that verification pushes and then deletes.
CHECK_IMAGE = ("binderhub-registry-check", "verify")


def verify_step(
    files: ValuesFiles | None,
    ca_bundle: str | None = None,
    hints: VerifyHints | None = None,
    *,
    insecure: bool = False,
    deadline: float = DEADLINE,
) -> Result[VerificationReport | None]:
    """The notebook step: verify written values (skipped in a dry run or teardown)."""
    if files is None:
        return Result(None, "skipped", "no values were written")
    report = verify(
        files.values, ca_bundle=ca_bundle, hints=hints, insecure=insecure, deadline=deadline
    )
    summary = ", ".join(f"{who} {status}" for who, status in report.consumers().items())
    return Result(report, "done", f"{report.image}: {summary}")


def verify(
    values: RegistryValues,
    *,
    ca_bundle: str | None = None,
    cleanup: bool = True,
    hints: VerifyHints | None = None,
    insecure: bool = False,
    deadline: float = DEADLINE,
) -> VerificationReport:
    """Run every check on ``values``; return the report, or raise VerificationFailed.

    ``ca_bundle`` is a CA file to trust (the sandbox's); real registries need none.
    ``cleanup`` deletes the test tag when the credentials may. ``hints`` words the
    diagnoses for the provider's registry (default: generic text). Plain-HTTP
    registries, token URLs and realms are refused before any credential is sent
    unless ``insecure`` (docker too refuses them unless listed as insecure). The
    raised VerificationFailed carries the report so far, its failed check last.
    ``deadline`` bounds the whole verification in seconds (a registry that answers a byte
    at a time cannot hold it); every message built from a server's answer is redacted of
    the secrets in use.
    """
    if ca_bundle and not os.path.isfile(ca_bundle):  # "" means the system CAs, as before
        raise InvalidParameter("ca_bundle", "must be a CA bundle file that exists", ca_bundle)
    host, image = split_image_reference(values.image_prefix + CHECK_IMAGE[0])
    tag = CHECK_IMAGE[1]
    report = VerificationReport(image=f"{host}/{image}:{tag}")
    secrets = tuple(s for s in (values.password, values.pull and values.pull.password) if s)
    session = _Session(ca_bundle, insecure, Deadline(deadline), secrets)
    try:
        _run_checks(report, values, host, image, tag, session, cleanup, hints or VerifyHints())
    except VerificationFailed as failed:
        diagnosis = session.redact(failed.diagnosis)
        report.add(failed.check, diagnosis, "failed")
        raise VerificationFailed(failed.check, diagnosis, report) from None
    except CloudError as error:  # a server's words may be in it: redacted, one line
        cleaned = copy.copy(error)
        cleaned.args = (session.redact(str(error)),)
        raise cleaned from None
    for check in report.checks:
        check.detail = session.redact(check.detail)
    return report


@dataclass(frozen=True)
class _Session:
    """What every registry client of one verification shares: trust, time, secrets."""

    ca_bundle: str | None
    insecure: bool
    deadline: Deadline
    secrets: tuple[Secret, ...]

    def client(self, username: str, password: Secret, home: str) -> RegistryHTTP:
        """A client for ``home``'s registry (the only origin it gives credentials)."""
        return RegistryHTTP(
            username,
            password,
            self.ca_bundle,
            insecure=self.insecure,
            home=home,
            deadline=self.deadline,
            secrets=self.secrets,
        )

    def redact(self, text: str) -> str:
        """``text`` without any secret of this verification, in any form."""
        cleaned: str = redact(text, secret_forms(*self.secrets))
        return cleaned


def _run_checks(
    report: VerificationReport,
    values: RegistryValues,
    prefix_host: str,
    image: str,
    tag: str,
    session: _Session,
    cleanup: bool,
    hints: VerifyHints,
) -> None:
    insecure = session.insecure
    used = binderhub_image_name(values.image_prefix)
    if used != values.image_prefix:
        raise VerificationFailed(
            "BinderHub's image name",
            f"BinderHub lowercases image names and turns '_' into '-' (builder.py), so it would "
            f"push to and look for {used}..., not {values.image_prefix}...: make image_prefix "
            "(and the project or namespace in it) lowercase, without '_'",
        )
    key = next(iter(values.docker_config()["auths"]))
    pod_host = auth_key_host(key)
    if pod_host != prefix_host:
        raise VerificationFailed(
            "build pods' docker config",
            f"registry.url host {pod_host} differs from the image_prefix host {prefix_host}: "
            "docker push finds credentials by host, so build pods would push without them; "
            "make registry.url and image_prefix name the same host",
        )
    report.add("build pods' docker config", f"credentials for {prefix_host} match image_prefix")

    settings = binderhub_settings(values)
    url_host = urlparse(settings.url).netloc
    if url_host != prefix_host and not (
        prefix_host == "docker.io" and url_host.endswith("docker.io")
    ):
        raise VerificationFailed(
            "BinderHub's registry URL",
            f"DockerRegistry.url host {url_host} differs from the image_prefix host "
            f"{prefix_host}: BinderHub would look for images in the wrong registry",
        )
    # before any request: none may carry the password over plain HTTP unless the user said so
    for what, url in (
        ("registry.url", values.registry_url or ""),
        ("DockerRegistry.url", settings.url),
        ("DockerRegistry.token_url", settings.token_url),
    ):
        if url.lower().startswith("http://") and not insecure:
            raise VerificationFailed("BinderHub's registry URL", plain_http_refusal(what, url))
    http = session.client(settings.username, settings.password, settings.url)
    with _credentials_first(http, settings.url, hints):
        digest = _binderhub_checks(report, settings, image, tag, http, hints)
    _pull_checks(report, values, settings.url, prefix_host, image, tag, session, hints)
    if not cleanup:
        report.add("delete the test tag", "kept, as asked", "skipped")
        return
    deleted, detail = delete_tag(http, settings.url, image, digest, hints=hints)
    report.add("delete the test tag", detail, "ok" if deleted else "skipped")


@contextlib.contextmanager
def _credentials_first(http: RegistryHTTP, registry_url: str, hints: VerifyHints) -> Iterator[None]:
    """A failed check whose cause is that the registry refuses the credentials themselves is
    told so: a registry that takes refused credentials as anonymous (Harbor) would otherwise
    fail later, worded as a missing right, when the secret is wrong."""
    try:
        yield
    except VerificationFailed as failed:
        if "refused user '" in failed.diagnosis or not http.username:
            raise  # already about the credentials, or none were sent
        if not login_refused(http, registry_url):
            raise
        raise VerificationFailed(
            failed.check,
            f"{origin(registry_url)} refused user {http.username!r} at login (a token without "
            "scope, as docker login asks): the password or secret is wrong, or the account "
            f"expired, was disabled or deleted; {hints.credentials}",
        ) from None


def _binderhub_checks(
    report: VerificationReport,
    settings: BinderHubRegistrySettings,
    image: str,
    tag: str,
    http: RegistryHTTP,
    hints: VerifyHints,
) -> str:
    """BinderHub's image check, the push token, the push, the check again; the digest."""
    registry_host = urlparse(settings.url).hostname
    path = "token_url" if settings.token_url else "Basic credentials (no token_url)"
    check = "BinderHub's image check"
    if get_image_manifest(http, settings, image, tag, check=check, hints=hints) is None:
        detail = f"via {path}: not built yet, as expected"
    else:
        detail = f"via {path}: a previous check image is present"
    if not settings.token_url:
        detail += _foreign_realm(http.realms, registry_host)
    report.add(check, detail)

    http.realms.clear()
    auth = push_auth(http, settings.url, image, "pull,push", check="push token", hints=hints)
    detail = "issued by the registry's own token service"
    report.add("push token", detail + _foreign_realm(http.realms, registry_host))
    digest = push_image(http, settings.url, image, tag, auth, hints=hints)
    report.add(PUSH_CHECK, "pushed a one-layer OCI image")

    check = "BinderHub finds the pushed image"
    if get_image_manifest(http, settings, image, tag, check=check, hints=hints) is None:
        raise VerificationFailed(
            check,
            "the push succeeded but BinderHub's check still says not built: BinderHub "
            "would rebuild at every launch; check DockerRegistry.url and token_url",
        )
    report.add(check, "found, so launches will reuse built images")
    return digest


def _foreign_realm(realms: list[str], registry_host: str | None) -> str:
    """Words for a token service on another host than the registry's ("" when none is)."""
    hosts = sorted({h for r in realms if (h := urlparse(r).hostname) and h != registry_host})
    if not hosts:
        return ""
    # Docker Hub (auth.docker.io) and others do this on purpose; the user should still know
    # which host received the password
    return (
        f" at {', '.join(hosts)}, another host than the registry's {registry_host}: "
        "its WWW-Authenticate realm sent the credentials there"
    )


#: The command that checks a node's pull on the cluster (pull_access "node").
NODE_PULL_COMMAND = (
    "kubectl run binderhub-pull-check --rm -it --restart=Never --image-pull-policy=Always "
    "--image={image} --command -- true"
)


def _pull_checks(
    report: VerificationReport,
    values: RegistryValues,
    registry_url: str,
    prefix_host: str,
    image: str,
    tag: str,
    session: _Session,
    hints: VerifyHints,
) -> None:
    """User pods' pull with only what the values give them, then least privilege."""
    pull = values.pull
    reference = f"{prefix_host}/{image}:{tag}"
    if pull is None:
        anonymous = session.client("", Secret(""), registry_url)
        try:
            pull_image(anonymous, registry_url, image, tag, hints=hints)
        except VerificationFailed:
            if values.pull_access == "none":
                raise VerificationFailed(
                    PULL_CHECK,
                    "pull_access = none, but the registry refused an anonymous pull: the "
                    "repositories are private, so user pods would fail with ErrImagePull; use "
                    'pull_access = "secret" (a pull-only credential) or make them public',
                ) from None
            command = NODE_PULL_COMMAND.format(image=reference)
            if values.pull_secret_names:
                names = ", ".join(values.pull_secret_names)
                secrets = ",".join(f'{{"name":"{n}"}}' for n in values.pull_secret_names)
                # kubectl run's --overrides: the pod pulls with the Secrets, as user pods do
                overrides = f'--overrides=\'{{"spec":{{"imagePullSecrets":[{secrets}]}}}}\''
                command = command.replace(" --command", f" {overrides} --command")
                how = (
                    f"user pods pull with Secret {names} (jupyterhub.singleuser.image."
                    "pullSecrets), which the cluster holds and these files do not, so it cannot "
                    "be checked from here"
                )
            else:
                how = (
                    "no jupyterhub.imagePullSecret: user pods pull with the nodes' identity, "
                    "which cannot be checked from here"
                )
            report.add(
                PULL_CHECK,
                f"{how} (the registry refuses anonymous pulls); in the user pods' namespace, "
                f"run: {command}",
                "skipped",
            )
        else:
            report.add(PULL_CHECK, "anonymously: the repositories are public")
        report.add(PUSH_REFUSED_CHECK, "no pull credential to check", "skipped")
        return
    key_host = auth_key_host(pull.registry)
    if key_host != prefix_host:
        raise VerificationFailed(
            "user pods' pull secret",
            f"jupyterhub.imagePullSecret.registry host {key_host} differs from the image_prefix "
            f"host {prefix_host}: the kubelet finds pull credentials by host, so user pods "
            "would pull without them; make it name the image_prefix host",
        )
    http = session.client(pull.username, pull.password, registry_url)
    with _credentials_first(http, registry_url, hints):
        pulled = pull_image(http, registry_url, image, tag, hints=hints)
    report.add(PULL_CHECK, f"{pulled} with jupyterhub.imagePullSecret ({pull.username})")
    if not push_refused(http, registry_url, image, hints=hints):
        raise VerificationFailed(
            PUSH_REFUSED_CHECK,
            f"user pods' credential ({pull.username}) may push: anyone who reads the "
            "image-pull Secret could overwrite BinderHub's images; give user pods a pull-only "
            "credential",
        )
    report.add(PUSH_REFUSED_CHECK, "user pods' credential may pull but is refused a push")


def report_storage(
    report: VerificationReport, found: Usage | NotRead | None, silent: str = NO_USAGE
) -> Check:
    """Add the row of the storage used against the registry's limit (:data:`STORAGE_CHECK`),
    as the notebooks' step words it (:func:`~.usage.storage_row`): a warning above 80%, never
    a failure. ``silent`` says why there is no figure when the registry's API tells none."""
    status, detail = storage_row(found, silent)
    report.add(STORAGE_CHECK, detail, status)
    return report.checks[-1]


def binderhub_image_name(name: str) -> str:
    """The name BinderHub really uses for ``name``: ``(image_prefix + slug + ":" + ref)
    .replace("_", "-").lower()`` (binderhub/builder.py)."""
    return name.replace("_", "-").lower()


def _split_image(image_prefix: str, name: str, tag: str) -> tuple[str, str]:
    """BinderHub's parse_image_name: the repository path inside the registry, and the tag."""
    return split_image_reference(image_prefix + name)[1], tag


# --- values whose sandbox stopped --------------------------------------------------------
#: The subject of the sandbox's CA (sandbox/certs.py): a CA bundle holding it is the sandbox's.
SANDBOX_CA = "binderhub-registry sandbox CA"
#: How to start the sandbox, as its own command prints the variables.
START_SANDBOX = 'eval "$(binderhub-registry sandbox start)"'


def stopped_sandbox(
    values: RegistryValues, ca_bundle: str | None = None, rerun: str = ""
) -> str | None:
    """The diagnosis when ``values`` point at this machine (loopback) where nothing listens,
    as a sandbox's values do once it stopped; None when every loopback origin answers or
    there is none. Only loopback is probed (one TCP connect each, refused at once).

    Values are the sandbox's when ``ca_bundle`` holds its CA (:data:`SANDBOX_CA`) or
    ``rerun`` (the command that rewrites them, from the notebook's record beside them) is
    given: the sandbox listens on new ports at each start, so they must be written again.
    """
    settings = binderhub_settings(values)
    hosts = [values.image_prefix.split("/", 1)[0], settings.url, settings.token_url]
    hosts += [values.registry_url or "", values.pull.registry if values.pull else ""]
    # one probe per origin, however the values spell it
    origins = dict.fromkeys(origin(h if "://" in h else f"https://{h}") for h in hosts if h)
    where = next((o for o in origins if _nothing_listens(o)), None)
    if where is None:
        return None
    again = rerun or "rerun the notebook that wrote them with sandbox = True"
    running = _running_sandbox()
    if running:  # a sandbox runs, on other ports
        return (
            f"these values point at a sandbox that is not running (nothing listens on {where}; "
            f"the sandbox running now is at {running}, and each start takes new ports): "
            f"write them again against it: {again}"
        )
    if _is_sandbox_ca(ca_bundle) or rerun:
        return (
            f"these values point at a sandbox that is not running (nothing listens on {where}): "
            f"start it with {START_SANDBOX}, then write them again (each start takes new "
            f"ports): {again}"
        )
    return (
        f"nothing listens on {where}, on this machine: if these values come from the sandbox, "
        f"it is not running: start it with {START_SANDBOX} and {again}; else start the "
        "registry there"
    )


def _nothing_listens(address: str) -> bool:
    """Whether ``address`` (a URL or ``host[:port]``) is loopback and refuses a connection."""
    parts = urlsplit(address if "://" in address else f"https://{address}")
    try:
        host, port = parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError:  # a port that is no number: the values' check says so
        return False
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
    if not loopback:
        return False
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # not a plain refusal: the verification tells what it is
    return False


def _is_sandbox_ca(ca_bundle: str | None) -> bool:
    """Whether the CA bundle file holds the sandbox's CA."""
    if not ca_bundle:
        return False
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        with open(ca_bundle, "rb") as f:
            certificates = x509.load_pem_x509_certificates(f.read(1 << 20))
    except (OSError, ValueError):
        return False
    return any(
        attribute.value == SANDBOX_CA
        for certificate in certificates
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    )


def _running_sandbox() -> str | None:
    """The URL of the user's sandbox when one runs (its default directory), else None."""
    from . import sandbox
    from .errors import SandboxError

    try:
        box = sandbox.running()
    except (SandboxError, OSError):
        return None
    return box.url if box else None
