"""Prove BinderHub values work: BinderHub's own registry handshake, then a real push.

Using only the emitted values (``config.yaml`` + ``secret.yaml``):

1. render the build pods' docker config as the chart does, and check its host
   matches the ``image_prefix`` host (else pods push without credentials);
2. run BinderHub's existence check as ``binderhub/registry.py`` does it, on the
   path the values select (``token_url`` with ``service=container_registry``
   appended, or ``WWW-Authenticate`` discovery), same Accept header: expect
   "not built";
3. get a push token from the registry's own challenge, as ``docker push`` does;
4. push a tiny single-manifest OCI image (never an index: BinderHub's Accept
   header would not see it);
5. run BinderHub's check again: expect "found"; then delete the test tag where
   the registry allows it.

Each failure raises :class:`VerificationFailed` with a diagnosis a person can act on.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlparse, urlunparse

import requests

from .binderhub import DOCKER_HUB_AUTH_KEY, RegistryValues, ValuesFiles, auth_key_host, image_host
from .errors import TransientCloudError, VerificationFailed
from .secrets import Secret
from .steps import Result

__all__ = [
    "CHECK_IMAGE",
    "BinderHubRegistrySettings",
    "Check",
    "VerificationReport",
    "binderhub_settings",
    "verify",
    "verify_step",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_REGISTRY_URL = "https://registry-1.docker.io"
#: Image name (after image_prefix) and tag that verification pushes and then deletes.
CHECK_IMAGE = ("binderhub-registry-check", "verify")
TIMEOUT = 15.0


@dataclass(frozen=True)
class BinderHubRegistrySettings:
    """BinderHub's ``DockerRegistry`` as it resolves from the values and the docker config."""

    url: str
    token_url: str
    username: str
    password: Secret
    not_found_401: bool
    auth_config_url: str


def binderhub_settings(values: RegistryValues) -> BinderHubRegistrySettings:
    """Resolve ``DockerRegistry`` the way BinderHub does, from config.yaml and config.json."""
    auths: dict[str, dict[str, str]] = values.docker_config()["auths"]
    explicit = values.docker_registry
    url = explicit.get("url") or ""
    if not url:
        key = next(iter(auths))
        key = key if "://" in key else "https://" + key
        url = DEFAULT_REGISTRY_URL if key == DOCKER_HUB_AUTH_KEY else key
    host = urlparse(url).hostname or ""
    auth_config_url = explicit.get("auth_config_url") or (
        url
        if url in auths
        else host
        if host in auths
        else DOCKER_HUB_AUTH_KEY
        if ("." + host).endswith((".docker.io", ".docker.com"))
        else url
    )
    if "token_url" in explicit:
        token_url = explicit["token_url"] or ""
    elif ("." + host).endswith(".gcr.io"):
        token_url = f"https://{host}/v2/token?service={host}"
    elif url.endswith(".docker.io"):
        token_url = "https://auth.docker.io/token?service=registry.docker.io"
    else:
        token_url = ""
    user, password = "", ""
    if auth_config_url in auths:
        user, _, password = base64.b64decode(auths[auth_config_url]["auth"]).decode().partition(":")
    return BinderHubRegistrySettings(
        url=url.rstrip("/"),
        token_url=token_url,
        username=explicit.get("username") or user,
        password=Secret(explicit.get("password") or password),
        not_found_401=bool(explicit.get("not_found_401", url.endswith(".docker.io"))),
        auth_config_url=auth_config_url,
    )


@dataclass
class Check:
    """One verification step and what it found."""

    name: str
    ok: bool
    detail: str


@dataclass
class VerificationReport:
    """The checks run so far; shown as a table in notebooks and as lines in a terminal."""

    image: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def add(self, name: str, detail: str, ok: bool = True) -> None:
        """Record a check."""
        self.checks.append(Check(name, ok, detail))

    def __str__(self) -> str:
        lines = [f"Verification of {self.image}"]
        lines += [f"  {'✓' if c.ok else '✗'} {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        left = ' style="text-align:left"'  # JupyterLab right-aligns table cells
        rows = "".join(
            f"<tr><td{left}>{'✓' if c.ok else '✗'}</td><td{left}>{escape(c.name)}</td>"
            f"<td{left}>{escape(c.detail)}</td></tr>"
            for c in self.checks
        )
        return f"<p>Verification of <code>{escape(self.image)}</code></p><table>{rows}</table>"


def _url_concat(url: str, args: dict[str, str]) -> str:
    """Append query arguments keeping existing ones, as tornado's url_concat does."""
    parts = urlparse(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(args.items())
    return urlunparse(parts._replace(query=urlencode(query)))


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def _split_image(image_prefix: str, name: str, tag: str) -> tuple[str, str]:
    """BinderHub's parse_image_name: the repository path inside the registry, and the tag."""
    full = image_prefix + name
    first, _, rest = full.partition("/")
    path = rest if rest and (first == "localhost" or "." in first or ":" in first) else full
    return path, tag


class _Registry:
    """The HTTP calls of BinderHub's check and of ``docker push``, with the values' credentials."""

    def __init__(self, settings: BinderHubRegistrySettings, ca_bundle: str | None) -> None:
        self.s = settings
        self.http = requests.Session()
        self.http.verify = ca_bundle or True
        self.http.trust_env = False  # proxies and netrc must not change what is verified
        self.basic = (settings.username, settings.password.reveal())

    def get(self, url: str, **kw: Any) -> requests.Response:
        return self.send("GET", url, **kw)

    def token(self, realm: str, args: dict[str, str], what: str) -> str:
        r = self.get(_url_concat(realm, args), auth=self.basic)
        if r.status_code == 401:
            raise VerificationFailed(
                what,
                f"{_origin(realm)} refused user {self.s.username!r}: the password or access "
                "token is wrong, revoked or expired; create a new one and rewrite secret.yaml",
            )
        if r.status_code != 200:
            raise VerificationFailed(
                what,
                f"token request to {_origin(realm)} answered HTTP {r.status_code}: "
                "check DockerRegistry.token_url points at the registry's token endpoint",
            )
        try:
            body = r.json()
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError):
            raise VerificationFailed(
                what, f"{_origin(realm)} did not return a token: check DockerRegistry.token_url"
            ) from None

    def binderhub_manifest(self, image: str, tag: str) -> dict[str, Any] | None:
        """BinderHub's ``get_image_manifest``: None means "not built"."""
        what = "BinderHub's image check"
        url = f"{self.s.url}/v2/{image}/manifests/{tag}"
        headers = {"Accept": OCI_MANIFEST}
        token = ""
        if self.s.token_url:
            token = self.token(
                self.s.token_url,
                {"scope": f"repository:{image}:pull", "service": "container_registry"},
                what,
            )
            r = self.get(url, headers=headers | {"Authorization": f"Bearer {token}"})
        else:
            r = self.get(url, headers=headers, auth=self.basic)
        if r.status_code == 404:
            return None
        if r.status_code == 401 and token and self.s.not_found_401:
            return None
        if r.status_code == 401 and not token and "www-authenticate" in r.headers:
            scheme, params = _challenge(r.headers["www-authenticate"])
            if scheme != "bearer" or not {"realm", "service", "scope"} <= params.keys():
                raise VerificationFailed(
                    what,
                    f"the registry answers a {scheme.title()} challenge without realm, service "
                    "and scope, which BinderHub cannot follow: set DockerRegistry.token_url",
                )
            token = self.token(
                params["realm"], {"scope": params["scope"], "service": params["service"]}, what
            )
            r = self.get(url, headers={"Authorization": f"Bearer {token}"})
            if r.status_code == 404:
                return None
        if r.status_code == 401:
            raise VerificationFailed(
                what,
                f"the registry refused BinderHub's token for {image}: the credentials lack pull, "
                "or DockerRegistry.token_url names another registry's service",
            )
        if r.status_code != 200:
            raise VerificationFailed(what, f"manifest request answered HTTP {r.status_code}")
        manifest: dict[str, Any] = r.json()
        return manifest

    def push_auth(self, image: str, actions: str, what: str) -> dict[str, str]:
        """Authorization header for ``actions`` on ``image``, from the registry's challenge."""
        r = self.get(f"{self.s.url}/v2/")
        if r.status_code == 200:
            return {}
        scheme, params = _challenge(r.headers.get("www-authenticate", ""))
        if scheme == "basic":
            raw = f"{self.basic[0]}:{self.basic[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if scheme != "bearer" or "realm" not in params:
            raise VerificationFailed(what, f"{self.s.url}/v2/ gave no usable auth challenge")
        args = {"scope": f"repository:{image}:{actions}"}
        if params.get("service"):
            args = {"service": params["service"]} | args
        return {"Authorization": "Bearer " + self.token(params["realm"], args, what)}

    def send(self, method: str, url: str, **kw: Any) -> requests.Response:
        """One request; faults worth retrying raise TransientCloudError for the step runner."""
        try:
            r = self.http.request(method, url, timeout=TIMEOUT, **kw)
        except requests.RequestException as e:
            raise TransientCloudError(
                f"cannot reach {_origin(url)} ({type(e).__name__}): check the registry URL"
            ) from None
        if r.status_code == 429 or r.status_code >= 500:
            retry_after = r.headers.get("Retry-After", "")
            raise TransientCloudError(
                f"{_origin(url)} answered {r.status_code} to {method}",
                r.status_code,
                float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None,
            )
        return r

    def push(self, image: str, tag: str, auth: dict[str, str]) -> str:
        """Push the test image; return its manifest digest."""
        layer, config, manifest = _test_image()
        base = f"{self.s.url}/v2/{image}"
        for blob in (layer, config):
            digest = _digest(blob)
            if self.send("HEAD", f"{base}/blobs/{digest}", headers=auth).status_code == 200:
                continue
            r = self.send("POST", f"{base}/blobs/uploads/", headers=auth)
            self._push_status(r, 202, image)
            location = urljoin(base + "/", r.headers["Location"])
            location += ("&" if "?" in location else "?") + urlencode({"digest": digest})
            r = self.send(
                "PUT",
                location,
                data=blob,
                headers=auth | {"Content-Type": "application/octet-stream"},
            )
            self._push_status(r, 201, image)
        r = self.send(
            "PUT",
            f"{base}/manifests/{tag}",
            data=manifest,
            headers=auth | {"Content-Type": OCI_MANIFEST},
        )
        self._push_status(r, 201, image)
        return r.headers.get("Docker-Content-Digest") or _digest(manifest)

    def _push_status(self, r: requests.Response, expected: int, image: str) -> None:
        if r.status_code == expected:
            return
        if r.status_code in (401, 403):
            raise VerificationFailed(
                "push a test image",
                f"signed in, but no push permission on {image}: the token needs write "
                "scope (Docker Hub: repo:write; ACR: AcrPush; Harbor: push), and the account "
                "must be a member with write access of the namespace in image_prefix",
            )
        raise VerificationFailed(
            "push a test image", f"registry answered HTTP {r.status_code} to {r.request.method}"
        )

    def delete(self, image: str, digest: str) -> str:
        try:
            auth = self.push_auth(image, "delete", "delete the test tag")
        except VerificationFailed:
            return "not allowed with these credentials; the test tag was left in place"
        r = self.send("DELETE", f"{self.s.url}/v2/{image}/manifests/{digest}", headers=auth)
        if r.status_code in (200, 202):
            return "deleted"
        if r.status_code in (401, 403, 405):
            return (
                "these credentials may not delete tags (push is all BinderHub needs); left in place"
            )
        return f"registry answered HTTP {r.status_code}; the test tag was left in place"


def _origin(url: str) -> str:
    p = urlparse(url)
    return f"{p.scheme}://{p.netloc}"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _test_image() -> tuple[bytes, bytes, bytes]:
    """A deterministic one-layer OCI image: layer, config and manifest bytes."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.USTAR_FORMAT) as t:
        data = b"pushed by binderhub-registry verify\n"
        info = tarfile.TarInfo("binderhub-registry-check.txt")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        t.addfile(info, io.BytesIO(data))
    raw = tar.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]},
        },
        sort_keys=True,
    ).encode()

    def descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer)],
        },
        sort_keys=True,
    ).encode()
    return layer, config, manifest


def verify_step(
    files: ValuesFiles | None, ca_bundle: str | None = None
) -> Result[VerificationReport | None]:
    """The notebook step: verify written values (skipped in a dry run or teardown)."""
    if files is None:
        return Result(None, "skipped", "no values were written")
    report = verify(files.values, ca_bundle=ca_bundle)
    return Result(report, "done", f"BinderHub's check and a push to {report.image} work")


def verify(
    values: RegistryValues, *, ca_bundle: str | None = None, cleanup: bool = True
) -> VerificationReport:
    """Run every check on ``values``; return the report, or raise VerificationFailed.

    ``ca_bundle`` is a CA file to trust (the sandbox's); real registries need none.
    """
    name, tag = CHECK_IMAGE
    image, tag = _split_image(values.image_prefix, name, tag)
    report = VerificationReport(image=f"{image_host(values.image_prefix)}/{image}:{tag}")

    key = next(iter(values.docker_config()["auths"]))
    pod_host, prefix_host = auth_key_host(key), image_host(values.image_prefix)
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
    registry = _Registry(settings, ca_bundle)
    path = "token_url" if settings.token_url else "challenge discovery"
    if registry.binderhub_manifest(image, tag) is None:
        report.add("BinderHub's image check", f"via {path}: not built yet, as expected")
    else:
        report.add("BinderHub's image check", f"via {path}: a previous check image is present")

    auth = registry.push_auth(image, "pull,push", "push token")
    report.add("push token", "issued by the registry's own token service")
    digest = registry.push(image, tag, auth)
    report.add("push a test image", "pushed a one-layer OCI image")

    if registry.binderhub_manifest(image, tag) is None:
        raise VerificationFailed(
            "BinderHub finds the pushed image",
            "the push succeeded but BinderHub's check still says not built: BinderHub "
            "would rebuild at every launch; check DockerRegistry.url and token_url",
        )
    report.add("BinderHub finds the pushed image", "found, so launches will reuse built images")
    if cleanup:
        report.add("delete the test tag", registry.delete(image, digest))
    return report
