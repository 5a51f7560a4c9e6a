"""BinderHub Helm values: ``config.yaml``, ``secret.yaml`` and the docker config they imply.

The chart accepts only ``registry.url``, ``registry.username`` and
``registry.password`` in its secret values, and renders the build pods' docker
``config.json`` from them as ``{"auths": {<url or Docker Hub's v1 key>:
{"auth": base64(user:password)}}}``. Registry settings that BinderHub itself
uses go under ``config.DockerRegistry`` (top level of ``config``, not under
``config.BinderHub``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .secrets import REDACTED, Secret, write_private_file

__all__ = [
    "DOCKER_HUB_AUTH_KEY",
    "RegistryValues",
    "ValuesFiles",
    "chart_docker_config",
    "image_host",
    "load_values",
    "split_image_reference",
    "write_values",
]

#: The chart's key when ``registry.url`` is unset, and the one docker looks up for Docker Hub.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class RegistryValues:
    """Everything BinderHub needs to push to and look up images in one registry."""

    image_prefix: str
    username: str
    password: Secret
    registry_url: str | None = None  # None: the chart's Docker Hub default key
    docker_registry: dict[str, Any] = field(default_factory=dict)  # config.DockerRegistry

    def config(self) -> dict[str, Any]:
        """The ``config.yaml`` values (nothing secret)."""
        config: dict[str, Any] = {
            "BinderHub": {"use_registry": True, "image_prefix": self.image_prefix}
        }
        if self.docker_registry:
            config["DockerRegistry"] = dict(self.docker_registry)
        return {"config": config}

    def secret(self, *, reveal: bool = False) -> dict[str, Any]:
        """The ``secret.yaml`` values; the password is redacted unless ``reveal``."""
        registry: dict[str, Any] = {}
        if self.registry_url:
            registry["url"] = self.registry_url
        registry["username"] = self.username
        registry["password"] = self.password.reveal() if reveal else REDACTED
        return {"registry": registry}

    def docker_config(self) -> dict[str, Any]:
        """The build pods' docker ``config.json``, as the chart renders it."""
        return chart_docker_config(self.secret(reveal=True)["registry"])


def chart_docker_config(registry: dict[str, Any]) -> dict[str, Any]:
    """Render ``config.json`` from ``secret.yaml``'s ``registry`` as the Helm chart does."""
    url = registry.get("url") or DOCKER_HUB_AUTH_KEY
    username = registry.get("username") or ("_json_key" if url == "https://gcr.io" else "<token>")
    password = registry.get("password") or ""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"auths": {url: {"auth": auth}}}


def split_image_reference(reference: str) -> tuple[str, str]:
    """``(host, path)`` of an image reference, as docker and BinderHub's parse_image_name read it.

    The first component is a host only when it is ``localhost`` or holds a ``.`` or
    ``:``; otherwise the image lives on Docker Hub (``docker.io``) under the whole path.
    """
    first, _, rest = reference.partition("/")
    if rest and (first == "localhost" or "." in first or ":" in first):
        return first, rest
    return "docker.io", reference


def image_host(image_prefix: str) -> str:
    """The registry host of an image reference, with docker's Docker Hub default."""
    return split_image_reference(image_prefix)[0]


def auth_key_host(key: str) -> str:
    """The host docker matches against for an ``auths`` key (Docker Hub's v1 key is docker.io)."""
    if key.rstrip("/") == DOCKER_HUB_AUTH_KEY.rstrip("/"):
        return "docker.io"
    parsed = urlparse(key if "://" in key else "https://" + key)
    return parsed.netloc


@dataclass(frozen=True)
class ValuesFiles:
    """Where the values were written, with a redacted display for notebooks."""

    config_path: Path
    secret_path: Path
    values: RegistryValues

    def _text(self) -> str:
        config = yaml.safe_dump(self.values.config(), sort_keys=False)
        secret = yaml.safe_dump(self.values.secret(), sort_keys=False)
        return f"# {self.config_path}\n{config}\n# {self.secret_path} (mode 0600)\n{secret}"

    def __repr__(self) -> str:
        return self._text()

    def _repr_markdown_(self) -> str:
        return f"```yaml\n{self._text()}```"


_HEADER = """\
# BinderHub Helm values written by binderhub-registry ({source}).
# Apply with: helm upgrade --install binderhub jupyterhub/binderhub -f config.yaml -f secret.yaml
"""


def write_values(output_dir: str | Path, values: RegistryValues, *, source: str) -> ValuesFiles:
    """Write ``config.yaml`` (0644) and ``secret.yaml`` (0600) into ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = _HEADER.format(source=source)
    config_path = out / "config.yaml"
    config_path.write_text(header + yaml.safe_dump(values.config(), sort_keys=False))
    secret_path = out / "secret.yaml"
    write_private_file(
        secret_path, header + yaml.safe_dump(values.secret(reveal=True), sort_keys=False)
    )
    return ValuesFiles(config_path, secret_path, values)


def load_values(config_path: str | Path, secret_path: str | Path) -> RegistryValues:
    """Read values back from a ``config.yaml`` and ``secret.yaml`` (as written or hand-made)."""
    config = yaml.safe_load(Path(config_path).read_text()) or {}
    secret = yaml.safe_load(Path(secret_path).read_text()) or {}
    cfg = config.get("config", {})
    binderhub = cfg.get("BinderHub", {})
    registry = secret.get("registry", {})
    return RegistryValues(
        image_prefix=str(binderhub.get("image_prefix", "")),
        username=str(registry.get("username", "")),
        password=Secret(str(registry.get("password") or "")),
        registry_url=registry.get("url"),
        docker_registry=dict(cfg.get("DockerRegistry", {})),
    )


def docker_config_json(values: RegistryValues) -> str:
    """The chart's ``config.json`` as text, for ``skopeo --authfile`` or ``docker --config``."""
    return json.dumps(values.docker_config(), indent=2)
