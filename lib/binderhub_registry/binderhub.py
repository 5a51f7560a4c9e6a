"""BinderHub Helm values: ``config.yaml``, ``secret.yaml`` and the docker config they imply.

The chart accepts only ``registry.url``, ``registry.username`` and
``registry.password`` in its secret values, and renders the build pods' docker
``config.json`` from them as ``{"auths": {<url or Docker Hub's v1 key>:
{"auth": base64(user:password)}}}``. Registry settings that BinderHub itself
uses go under ``config.DockerRegistry`` (top level of ``config``, not under
``config.BinderHub``).

User pods are pulled by each node's kubelet, which never sees ``registry.*``:
the chart's ``jupyterhub`` dependency (Zero to JupyterHub) turns
``jupyterhub.imagePullSecret`` (``create``, ``registry``, ``username``,
``password``) into a ``kubernetes.io/dockerconfigjson`` Secret that every pod it
runs references. That is where the pull-only credential goes (:class:`PullSecret`).

Who uses which value:

==================  ==========================  =======================================
consumer            what it does                credential
==================  ==========================  =======================================
binder pod          BinderHub's image check     ``registry.*`` (and ``DockerRegistry``)
build pods          push (dockerd, podman)      ``registry.*``, as the chart's config.json
user pods           pull (the kubelet)          ``jupyterhub.imagePullSecret``, or the
                                                node's identity (``pull_access = "node"``)
==================  ==========================  =======================================
"""

from __future__ import annotations

import base64
import datetime
import difflib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import yaml

from .errors import InvalidValuesFile
from .outputs import HEADER_MARK, write_file
from .secrets import REDACTED, Secret, write_private_file

__all__ = [
    "CHART_REPOSITORY",
    "CHART_VERSION",
    "CHART_VERSIONS",
    "DOCKER_HUB_AUTH_KEY",
    "HELPER_CLASS",
    "MAX_VALUES_BYTES",
    "PULL_ACCESS",
    "HelperValues",
    "NextStep",
    "PullSecret",
    "RegistryValues",
    "ValuesFiles",
    "chart_docker_config",
    "helm_commands",
    "image_host",
    "load_values",
    "next_commands",
    "next_step",
    "read_values_file",
    "secret_file_warning",
    "split_image_reference",
    "values_header",
    "write_values",
]

#: The chart's key when ``registry.url`` is unset, and the one docker looks up for Docker Hub.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


#: How user pods pull: a pull-only credential in ``jupyterhub.imagePullSecret``, the
#: nodes' own cloud identity, or anonymously from a public registry.
PULL_ACCESS = ("secret", "node", "none")


@dataclass(frozen=True)
class PullSecret:
    """``jupyterhub.imagePullSecret``: the pull-only credential user pods' kubelet pulls with."""

    registry: str  # the dockerconfigjson ``auths`` key: ``host[:port]``, or Docker Hub's v1 key
    username: str
    password: Secret

    def values(self, *, reveal: bool = False) -> dict[str, Any]:
        """Zero to JupyterHub's ``imagePullSecret``; the password redacted unless ``reveal``."""
        return {
            "create": True,
            "registry": self.registry,
            "username": self.username,
            "password": self.password.reveal() if reveal else REDACTED,
        }

    def docker_config(self) -> dict[str, Any]:
        """The Secret's ``.dockerconfigjson``, as Zero to JupyterHub renders it.

        (``jupyterhub.dockerconfigjson.yaml`` in its ``_helpers-names.tpl``: the registry,
        defaulting to Docker Hub's v1 key, with username, password and their ``auth``.)
        """
        password = self.password.reveal()
        auth = base64.b64encode(f"{self.username}:{password}".encode()).decode()
        entry = {"username": self.username, "password": password, "auth": auth}
        return {"auths": {self.registry or DOCKER_HUB_AUTH_KEY: entry}}


@dataclass(frozen=True)
class RegistryValues:
    """Everything BinderHub needs to push to and look up images in one registry, and user
    pods to pull them."""

    image_prefix: str
    username: str
    password: Secret
    registry_url: str | None = None  # None: the chart's Docker Hub default key
    docker_registry: dict[str, Any] = field(default_factory=dict)  # config.DockerRegistry
    pull: PullSecret | None = None  # user pods' credential (pull_access "secret")
    pull_access: str = ""  # how user pods pull: one of PULL_ACCESS ("": not known)
    #: Secrets the cluster holds that user pods pull with (``jupyterhub.singleuser.image.
    #: pullSecrets``), read back from ``config.yaml``: their content is in no values file
    pull_secret_names: tuple[str, ...] = ()

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
        values: dict[str, Any] = {"registry": registry}
        if self.pull is not None:
            values["jupyterhub"] = {"imagePullSecret": self.pull.values(reveal=reveal)}
        return values

    def docker_config(self) -> dict[str, Any]:
        """The build pods' docker ``config.json``, as the chart renders it."""
        return chart_docker_config(self.secret(reveal=True)["registry"])


#: BinderHub's class for a registry behind a helper service (binderhub/registry.py, PR #1637).
HELPER_CLASS = "binderhub.registry.ExternalRegistryHelper"


@dataclass(frozen=True)
class HelperValues(RegistryValues):
    """BinderHub's values for ``ExternalRegistryHelper``: no static push credential.

    ``registry.*`` names the registry with an empty username and password, as mybinder.org's
    curvenote member has it: build pods push with the helper's short-lived token instead
    (BinderHub sets ``build.registry_credentials`` from ``get_credentials``). BinderHub's
    auth token for the helper goes to ``secret.yaml``'s ``config.ExternalRegistryHelper``.
    """

    service_url: str = ""
    auth_token: Secret = field(default_factory=lambda: Secret(""))

    def config(self) -> dict[str, Any]:
        """``config.yaml``: ``image_prefix``, ``registry_class`` and the helper's URL."""
        config = super().config()
        config["config"]["BinderHub"]["registry_class"] = HELPER_CLASS
        config["config"]["ExternalRegistryHelper"] = {"service_url": self.service_url}
        return config

    def secret(self, *, reveal: bool = False) -> dict[str, Any]:
        """``secret.yaml``: ``registry.url`` and BinderHub's auth token for the helper."""
        values = super().secret(reveal=reveal)
        values["registry"]["password"] = ""  # none, by design (shown as it is written)
        token = self.auth_token.reveal() if reveal else REDACTED
        values["config"] = {"ExternalRegistryHelper": {"auth_token": token}}
        return values


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
        config = yaml.safe_dump(self.values.config(), sort_keys=False)  # never a secret
        secret = yaml.safe_dump(self.values.secret(), sort_keys=False)
        return f"# {self.config_path}\n{config}\n# {self.secret_path} (mode 0600)\n{secret}"

    def __repr__(self) -> str:
        return self._text()

    def _repr_markdown_(self) -> str:
        return f"```yaml\n{self._text()}```"

    def next_step(self) -> str:
        """The helm commands that install BinderHub with these files, then ``verify``'s."""
        return next_commands(self.config_path, self.secret_path)


def next_commands(config: Path, secret: Path) -> str:
    """The helm commands that install BinderHub with the values files at their real paths, then
    the ``verify`` command that checks them later (``secret`` left out where none was written)."""
    written = secret if secret.exists() else None
    files = f"{config} {written}" if written else str(config)
    return (
        helm_commands(config, written)
        + "# later, to check the files again without a notebook:\n"
        + f"binderhub-registry verify {files}\n"
    )


class WrittenFiles(Protocol):
    """What a values-writing step returns: it knows the commands that apply its files."""

    def next_step(self) -> str:
        """The commands that install BinderHub with the files written."""
        ...


@dataclass(frozen=True)
class NextStep:
    """What to run after the notebook: shown as a shell block in JupyterLab and the docs."""

    files: WrittenFiles | None

    def __repr__(self) -> str:
        if self.files is None:
            return "nothing was written in this run (dry run or teardown): no next step"
        return self.files.next_step()

    def _repr_markdown_(self) -> str:
        if self.files is None:
            return repr(self)
        return f"```bash\n{self.files.next_step()}```"


def next_step(files: WrittenFiles | None) -> NextStep:
    """The next step after a run that wrote ``files`` (``None``: nothing written): the helm
    commands with the files' real paths, and the ``verify`` command."""
    return NextStep(files)


#: The Helm chart repository of JupyterHub and BinderHub (jupyterhub/helm-chart's README).
CHART_REPOSITORY = "https://hub.jupyter.org/helm-chart/"
#: Where the chart's versions are listed: BinderHub is published as development releases only.
CHART_VERSIONS = "https://hub.jupyter.org/helm-chart/#development-releases-binderhub"
#: An example version: the one mybinder.org-deploy's ``mybinder/Chart.yaml`` pinned (003079a).
CHART_VERSION = "1.0.0-0.dev.git.3983.h383374de"


def helm_commands(config: str | Path, secret: str | Path | None = None) -> str:
    """The next step in full: add the chart repository, list its versions, and install with the
    values files at their real paths (``secret`` omitted where there is none)."""
    files = f"-f {config}" + (f" -f {secret}" if secret else "")
    return (
        f"helm repo add jupyterhub {CHART_REPOSITORY}\n"
        "helm repo update\n"
        "helm search repo jupyterhub/binderhub --devel --versions | head -n 5   # newest first\n"
        "helm upgrade --install binderhub jupyterhub/binderhub \\\n"
        f"  --version={CHART_VERSION} \\\n"
        f"  {files}   # plus your other values\n"
    )


def values_header(source: str, config: str | Path, secret: str | Path | None) -> str:
    """The comment that opens each values file: its source, then the commands that apply it
    (BinderHub has development releases only, so helm needs ``--version``: see CHART_VERSIONS)."""
    commands = "".join(f"#   {line}\n" for line in helm_commands(config, secret).splitlines())
    return (
        f"{HEADER_MARK} ({source}).\n"
        f"# Apply with your other values; pick a version from {CHART_VERSIONS}:\n{commands}"
    )


def write_values(output_dir: str | Path, values: RegistryValues, *, source: str) -> ValuesFiles:
    """Write ``config.yaml`` (0644) and ``secret.yaml`` (0600) into ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.yaml"
    secret_path = out / "secret.yaml"
    header = values_header(source, config_path, secret_path)
    # beside it, then renamed: a link planted at config.yaml is replaced, never followed
    write_file(config_path, header + yaml.safe_dump(values.config(), sort_keys=False), mode=0o644)
    write_private_file(
        secret_path, header + yaml.safe_dump(values.secret(reveal=True), sort_keys=False)
    )
    return ValuesFiles(config_path, secret_path, values)


#: Largest values file read: real ones are a few KiB (a service-account key is ~2.3 KiB).
MAX_VALUES_BYTES = 1 << 20
#: Deepest nesting of YAML collections accepted (BinderHub's values nest 4 deep).
MAX_VALUES_DEPTH = 32
#: The only keys the chart accepts under ``registry`` in secret.yaml.
REGISTRY_KEYS = ("url", "username", "password")
#: The keys Zero to JupyterHub's schema accepts under ``imagePullSecret`` when ``create`` is true
#: (``additionalProperties: false``; ``registry``, ``username`` and ``password`` required).
PULL_SECRET_KEYS = (
    "create",
    "automaticReferenceInjection",
    "registry",
    "username",
    "password",
    "email",
)


class _ValuesLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without aliases (a 358-byte alias bomb takes over 1 GB) or deep nests."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            raise yaml.MarkedYAMLError(
                problem="YAML aliases (*name) are not allowed in values files: write the value out",
                problem_mark=mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_VALUES_DEPTH:
                raise yaml.MarkedYAMLError(
                    problem=f"nested more than {MAX_VALUES_DEPTH} levels deep", problem_mark=mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError):  # a date out of range, a number past the limit
            raise yaml.MarkedYAMLError(
                problem="a value that cannot be read (a date or number out of range?): quote it",
                problem_mark=node.start_mark,
            ) from None


# A parser's problem text may quote a piece of the file: keep only token names and punctuation.
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_HARMLESS = re.compile(r"<[a-z ]+>|[^\w\s]{1,3}|\\[tnr]")


def _problem(text: str) -> str:
    def keep(m: re.Match[str]) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        return m.group(0) if _HARMLESS.fullmatch(inner) else "…"

    return " ".join(_QUOTED.sub(keep, text).split())


def read_values_file(path: str | Path) -> dict[str, Any]:
    """Read a Helm values file safely: a mapping, or InvalidValuesFile naming file and line.

    Refuses non-regular files (directories, FIFOs, devices), files over
    ``MAX_VALUES_BYTES`` (checked before reading), text that is not UTF-8, YAML
    aliases, tags, deep nesting and anything but a mapping at the top. Messages
    never hold the file's content, nor do chained exceptions (raised from None).
    """
    where = str(path)

    def bad(problem: str, line: int | None = None) -> InvalidValuesFile:
        return InvalidValuesFile(where, problem, line)

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just after)
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise bad("is not a regular file: give the path of a YAML file")
            if info.st_size > MAX_VALUES_BYTES:
                raise bad(f"is {info.st_size} bytes; values files are at most 1 MiB")
            data = f.read(MAX_VALUES_BYTES + 1)  # the size may have changed since fstat
    except FileNotFoundError:
        raise bad("no such file") from None
    except IsADirectoryError:
        raise bad("is not a regular file (a directory): give the path of a YAML file") from None
    except PermissionError:
        raise bad("cannot be read (permission denied)") from None
    except OSError as e:
        raise bad(f"cannot be read ({e.strerror or type(e).__name__})") from None
    if len(data) > MAX_VALUES_BYTES:
        raise bad("is over 1 MiB; values files are at most 1 MiB")
    try:
        text = data.decode("utf-8-sig")  # Helm reads UTF-8; a BOM is harmless
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise bad("is not UTF-8 text (is it binary, or saved as UTF-16?)", line) from None
    try:
        loaded = yaml.load(text, Loader=_ValuesLoader)
    except yaml.MarkedYAMLError as e:
        # the line where the parser stopped, and where the broken construct started
        mark = e.problem_mark or e.context_mark
        context = _problem(e.context or "")
        if context and e.context_mark and mark and e.context_mark.line != mark.line:
            context += f" (from line {e.context_mark.line + 1})"
        said = [t for t in (context, _problem(e.problem or "")) if t]
        problem = "YAML syntax error: " + ", ".join(said or ["malformed"])
        if isinstance(e, yaml.constructor.ConstructorError):
            problem = "a YAML tag (!name or !!type) that values files may not hold: remove it"
        elif e.__class__ is yaml.MarkedYAMLError:  # raised by _ValuesLoader: not a syntax error
            problem = ", ".join(said)
        raise bad(problem, mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        raise bad(
            "a control character YAML does not allow (is this a binary file?)", line
        ) from None
    except yaml.YAMLError:
        raise bad("is not valid YAML") from None
    except RecursionError:
        raise bad(f"nested more than {MAX_VALUES_DEPTH} levels deep") from None
    if loaded is None:
        raise bad("is empty: expected a YAML mapping of Helm values")
    if not isinstance(loaded, dict):
        raise bad(f"must be a mapping of Helm values, not {_kind(loaded)}")
    return loaded


def _kind(value: object) -> str:
    """What a YAML value is, in words (never the value itself)."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "a date"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    return "text" if isinstance(value, str) else type(value).__name__


class _Fields:
    """Typed access to one values file's keys, each failure naming the file and dotted key."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def bad(self, problem: str) -> InvalidValuesFile:
        return InvalidValuesFile(self.path, problem)

    def mapping(
        self, data: dict[str, Any], key: str, dotted: str, *, required: bool
    ) -> dict[str, Any]:
        if key not in data:
            if required:
                raise self.bad(f"{dotted} is missing")
            return {}
        value = data[key]
        if not isinstance(value, dict):
            raise self.bad(f"{dotted} must be a mapping, not {_kind(value)}")
        return value

    def text(self, data: dict[str, Any], key: str, dotted: str, *, required: bool) -> str | None:
        if key not in data:
            if required:
                raise self.bad(f"{dotted} is missing")
            return None
        value = data[key]
        if value is None:
            if required:
                raise self.bad(f"{dotted} is empty")
            return None
        if not isinstance(value, str):
            hint = ": quote it" if _kind(value) in ("a number", "true/false", "a date") else ""
            raise self.bad(f"{dotted} must be text, not {_kind(value)}{hint}")
        if required and not value.strip():
            raise self.bad(f"{dotted} is empty")
        return value


def _check_url(fields: _Fields, dotted: str, url: str | None) -> None:
    """A URL the chart and BinderHub can use: no whitespace, http(s) scheme when one is given."""
    if not url:
        return
    if any(c.isspace() for c in url):
        raise fields.bad(f"{dotted} holds whitespace: write the URL alone")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme and scheme not in ("http", "https"):
        raise fields.bad(f"{dotted} must be an https:// URL")


def load_values(config_path: str | Path, secret_path: str | Path) -> RegistryValues:
    """Read values back from a ``config.yaml`` and ``secret.yaml`` (as written or hand-made).

    Both files go through :func:`read_values_file`; then every key BinderHub's
    registry settings need is checked for presence and type. Raises
    InvalidValuesFile naming the file, line or key, never the content.
    """
    config = read_values_file(config_path)
    secret = read_values_file(secret_path)
    c, s = _Fields(config_path), _Fields(secret_path)
    cfg = c.mapping(config, "config", "config", required=True)
    binderhub = c.mapping(cfg, "BinderHub", "config.BinderHub", required=True)
    prefix = c.text(binderhub, "image_prefix", "config.BinderHub.image_prefix", required=True)
    assert prefix is not None  # required
    if "://" in prefix:
        raise c.bad("config.BinderHub.image_prefix has a scheme: drop http(s)://")
    if any(ch.isspace() for ch in prefix):
        raise c.bad("config.BinderHub.image_prefix holds whitespace")
    docker_registry = c.mapping(cfg, "DockerRegistry", "config.DockerRegistry", required=False)
    for key in ("url", "token_url", "username", "password", "auth_config_url"):
        value = c.text(docker_registry, key, f"config.DockerRegistry.{key}", required=False)
        if key.endswith("url"):
            _check_url(c, f"config.DockerRegistry.{key}", value)
    if not isinstance(docker_registry.get("not_found_401", False), bool):
        raise c.bad("config.DockerRegistry.not_found_401 must be true or false")
    registry = s.mapping(secret, "registry", "registry", required=True)
    if not registry:
        raise s.bad("registry must be a mapping with username and password, not empty")
    _known_keys(
        s,
        registry,
        REGISTRY_KEYS,
        "registry holds keys the chart refuses",
        "url, username and password",
    )
    url = s.text(registry, "url", "registry.url", required=False)
    _check_url(s, "registry.url", url)
    # behind ExternalRegistryHelper, builds push with the helper's tokens: registry.* holds none
    helper = binderhub.get("registry_class") == HELPER_CLASS
    username = s.text(registry, "username", "registry.username", required=not helper)
    password = s.text(registry, "password", "registry.password", required=not helper)
    pull = _pull_secret(s, secret)
    names = _pull_secret_names(c, config)
    pull_access = "secret" if pull or names else ""
    if helper:
        service = c.mapping(
            cfg, "ExternalRegistryHelper", "config.ExternalRegistryHelper", required=True
        )
        service_url = c.text(
            service, "service_url", "config.ExternalRegistryHelper.service_url", required=True
        )
        _check_url(c, "config.ExternalRegistryHelper.service_url", service_url)
        held = s.mapping(
            s.mapping(secret, "config", "config", required=True),
            "ExternalRegistryHelper",
            "config.ExternalRegistryHelper",
            required=True,
        )
        token = s.text(
            held, "auth_token", "config.ExternalRegistryHelper.auth_token", required=True
        )
        assert service_url is not None and token is not None  # required
        return HelperValues(
            image_prefix=prefix,
            username=username or "",
            password=Secret(password or ""),
            registry_url=url or None,
            docker_registry=dict(docker_registry),
            pull=pull,
            pull_access=pull_access,
            pull_secret_names=names,
            service_url=service_url,
            auth_token=Secret(token),
        )
    assert username is not None and password is not None  # required
    return RegistryValues(
        image_prefix=prefix,
        username=username,
        password=Secret(password),
        registry_url=url or None,
        docker_registry=dict(docker_registry),
        pull=pull,
        # files alone do not say whether user pods pull as nodes or anonymously
        pull_access=pull_access,
        pull_secret_names=names,
    )


def _pull_secret_names(c: _Fields, values: dict[str, Any]) -> tuple[str, ...]:
    """``jupyterhub.singleuser.image.pullSecrets`` of ``config.yaml``: Secrets the cluster
    already holds, by name (Zero to JupyterHub's schema: a list of names; KubeSpawner's
    ``image_pull_secrets`` also takes ``{name: ...}``), which user pods pull with."""
    where = "jupyterhub.singleuser.image.pullSecrets"
    jupyterhub = c.mapping(values, "jupyterhub", "jupyterhub", required=False)
    singleuser = c.mapping(jupyterhub, "singleuser", "jupyterhub.singleuser", required=False)
    image = c.mapping(singleuser, "image", "jupyterhub.singleuser.image", required=False)
    listed = image.get("pullSecrets", [])
    if not isinstance(listed, list):
        raise c.bad(f"{where} must be a list of Secret names")
    names: list[str] = []
    for item in listed:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name:
            raise c.bad(f"{where} must list Secret names (text)")
        names.append(name)
    return tuple(names)


def _known_keys(
    fields: _Fields, mapping: dict[str, Any], allowed: tuple[str, ...], problem: str, takes: str
) -> None:
    """Refuse a key of ``mapping`` outside ``allowed``, naming the close one if any; the key
    itself is never shown (a token pasted as a key would be)."""
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
        near = f" (one is close to {close[0]!r})" if close else ""
        raise fields.bad(f"{problem}{near}: it takes {takes}")


def _pull_secret(s: _Fields, secret: dict[str, Any]) -> PullSecret | None:
    """``jupyterhub.imagePullSecret`` checked by Zero to JupyterHub's schema rules, or None."""
    jupyterhub = s.mapping(secret, "jupyterhub", "jupyterhub", required=False)
    where = "jupyterhub.imagePullSecret"
    pull = s.mapping(jupyterhub, "imagePullSecret", where, required=False)
    if not pull:
        return None
    create = pull.get("create")
    if not isinstance(create, bool):
        raise s.bad(f"{where}.create is required and must be true or false")
    if not create:
        return None  # z2jh makes no Secret: user pods pull as the nodes do
    _known_keys(
        s,
        pull,
        PULL_SECRET_KEYS,
        f"{where} holds keys Zero to JupyterHub refuses",
        "create, registry, username, password, email and automaticReferenceInjection",
    )
    registry = s.text(pull, "registry", f"{where}.registry", required=True)
    username = s.text(pull, "username", f"{where}.username", required=True)
    password = s.text(pull, "password", f"{where}.password", required=True)
    assert registry is not None and username is not None and password is not None
    if any(c.isspace() for c in registry):
        raise s.bad(f"{where}.registry holds whitespace: write the registry host alone")
    return PullSecret(registry, username, Secret(password))


def secret_file_warning(path: str | Path) -> str | None:
    """A warning when ``path`` is readable by group or others (it holds a password), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if not stat.S_ISREG(mode) or not mode & 0o077:
        return None
    return (
        f"{path} is readable by group or others (mode {stat.S_IMODE(mode):04o}) and holds "
        f"a password: chmod 600 {path}"
    )


def docker_config_json(values: RegistryValues) -> str:
    """The chart's ``config.json`` as text, for ``skopeo --authfile`` or ``docker --config``."""
    return json.dumps(values.docker_config(), indent=2)
