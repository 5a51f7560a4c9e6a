"""Each notebook's values, used by the real engines of BinderHub's three consumers.

For every registered provider, its notebook runs once (default parameters) on the sandbox;
then, with only what the chart and Zero to JupyterHub give each consumer:

- build pods push with dockerd (the host and dind builders), ``docker --config`` holding the
  ``config.json`` the chart renders from ``registry.*`` (behind BinderHub's
  ``ExternalRegistryHelper``, ECR's, the helper's short-lived push token that BinderHub hands
  the build instead);
- build pods push with podman (the pink builder), the same file as ``--authfile``;
- user pods' images are pulled by containerd as a kubelet pulls them, with the entry of
  ``jupyterhub.imagePullSecret``'s ``.dockerconfigjson`` the kubelet matches to the image's
  host, and nothing else; or, where the notebook's user pods pull as the nodes
  (``pull_access = "node"``, ECR's default), with what the node's kubelet gets from its image
  credential provider (the sandbox's ``/_sandbox/ecr/node-token``, minted as the node role);
- that pull-only credential is refused a push;
- without a credential the pull is refused, unless the repository is public (Docker Hub's
  default for a repository a push creates).

The engines (tests/engines.py) are Debian's, as root, on private sockets; each registry's image
is a one-file tar imported into each engine, its content the registry's own, so containerd
fetches every layer from the registry it tests rather than finding it in its store.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import providers, sandbox
from binderhub_registry.binderhub import (
    HelperValues,
    RegistryValues,
    auth_key_host,
    chart_docker_config,
    image_host,
    load_values,
)

from . import engines as engines_module
from .conftest import NOTEBOOKS, NotebookRun, outputs_text
from .engines import Engines, engines_or_skip, hosts_dir, start_engines, tiny_tar
from .helpers import defaults, helper_push_registry, node_pull_credential

pytestmark = [pytest.mark.notebook, pytest.mark.sandbox]

#: What a registry's refusal of a credential (or of none) looks like in each engine's output.
REFUSED = re.compile(
    r"denied|unauthori[sz]ed|insufficient_scope|authentication required|401|403", re.I
)


@pytest.fixture(scope="session")
def engines() -> Iterator[Engines]:
    """dockerd (with its containerd) and a podman store, for this worker's session."""
    engines_or_skip()
    running = start_engines()
    yield running
    running.stop()


@dataclass
class Case:
    """One provider's notebook run and what the engines need from it."""

    key: str
    values: RegistryValues
    work: Path
    ca_file: str
    push: dict[str, Any]  # the build pods' config.json
    node: tuple[str, str] | None = None  # the node's kubelet's credential (pull_access "node")

    @property
    def host(self) -> str:
        return image_host(self.values.image_prefix)

    def ref(self, tag: str) -> str:
        return f"{self.values.image_prefix}engine-check:{tag}"

    def config_dir(self, name: str, config: dict[str, Any]) -> Path:
        """A directory holding ``config`` as ``config.json`` (0600: it holds a password)."""
        directory = self.work / name
        directory.mkdir(exist_ok=True)
        path = directory / "config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        return directory

    def cert_dir(self) -> Path:
        """podman's ``--cert-dir``: the sandbox CA as ``ca.crt``."""
        directory = self.work / "certs"
        directory.mkdir(exist_ok=True)
        (directory / "ca.crt").write_bytes(Path(self.ca_file).read_bytes())
        return directory

    def hosts(self) -> Path:
        """containerd's ``--hosts-dir`` for this registry, with the sandbox CA."""
        return hosts_dir(self.work / "hosts.d", self.host, self.ca_file)

    def pull_credential(self) -> tuple[str, str]:
        """What a kubelet sends for this image: the ``imagePullSecret`` entry whose key
        names the image's host (the kubelet's keyring matches by host), only that; or the
        node's own credential where user pods pull as the nodes."""
        if self.values.pull is None and self.node is not None:
            return self.node
        if self.values.pull is None:
            pytest.fail(
                f"{self.key}: secret.yaml has no jupyterhub.imagePullSecret: user pods "
                "would pull with no credential",
                pytrace=False,
            )
        auths = self.values.pull.docker_config()["auths"]
        for key, entry in auths.items():
            if auth_key_host(key) == self.host:
                return entry["username"], entry["password"]
        pytest.fail(
            f"{self.key}: jupyterhub.imagePullSecret.registry names no key for {self.host}: "
            "the kubelet would send no credential",
            pytrace=False,
        )

    def pull_config(self) -> dict[str, Any]:
        """The pull credential as a docker ``config.json`` (to show it cannot push)."""
        username, password = self.pull_credential()
        return chart_docker_config({"url": self.host, "username": username, "password": password})


@pytest.fixture(scope="module", params=providers.keys())
def case(
    request: pytest.FixtureRequest, box: sandbox.Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Case:
    """The provider's notebook, run once with its defaults on a freshly reset sandbox.

    Module-scoped: a test of another module that resets the sandbox runs only after this
    fixture is finished (pytest tears a module's fixtures down before the next module's test).
    """
    key = request.param
    box.reset()
    work = tmp_path_factory.mktemp(f"engines-{key}")
    run = NotebookRun(NOTEBOOKS / f"{providers.get(key).NOTEBOOK}.ipynb", work)
    out = run()
    assert "[failed]" not in outputs_text(out)
    values = load_values(run.output_dir / "config.yaml", run.output_dir / "secret.yaml")
    push = values.docker_config()
    if isinstance(values, HelperValues):  # each build gets the helper's token for its image
        config, secret = (values.config(), values.secret(reveal=True))
        push = chart_docker_config(
            helper_push_registry(config, secret, box.ca_file, "engine-check")
        )
    node = None
    if values.pull is None and defaults(providers.get(key), work)["pull_access"] == "node":
        node = node_pull_credential(box)  # what the node's image credential provider gives
    return Case(key, values, work, box.ca_file, push, node)


def _output(result: Any) -> str:
    return f"{result.stdout}\n{result.stderr}".strip()


@pytest.fixture(scope="module")
def docker_pushed(case: Case, engines: Engines) -> Any:
    """``<prefix>engine-check:dockerd``, imported into dockerd and pushed with the chart's
    ``config.json``: the image the pull tests pull (the push test checks the outcome)."""
    engines.trust(case.host, case.ca_file)
    ref = case.ref("dockerd")
    imported = engines.docker(case.work, "import", "-", ref, stdin=tiny_tar(case.key))
    assert imported.returncode == 0, _output(imported)
    config = case.config_dir("build-pod", case.push)
    return engines.docker(config, "push", ref)


def test_dockerd_pushes_with_the_charts_config_json(docker_pushed: Any, case: Case) -> None:
    assert docker_pushed.returncode == 0, _output(docker_pushed)
    assert re.search(r"dockerd: digest: sha256:[0-9a-f]{64}", docker_pushed.stdout)


def test_podman_pushes_with_the_charts_config_json_as_authfile(
    case: Case, engines: Engines
) -> None:
    ref = case.ref("podman")
    tar = case.work / "podman.tar"
    tar.write_bytes(tiny_tar(case.key + "/podman"))
    imported = engines.podman("import", str(tar), ref)
    assert imported.returncode == 0, _output(imported)
    config = case.config_dir("build-pod", case.push)
    pushed = engines.podman(
        "push",
        "--authfile",
        str(config / "config.json"),
        "--cert-dir",
        str(case.cert_dir()),
        ref,
    )
    assert pushed.returncode == 0, _output(pushed)
    assert "Writing manifest to image destination" in pushed.stderr


def test_containerd_pulls_with_only_the_user_pods_secret(
    docker_pushed: Any, case: Case, engines: Engines
) -> None:
    assert docker_pushed.returncode == 0, "nothing to pull: " + _output(docker_pushed)
    ref = case.ref("dockerd")
    pulled = engines.ctr_pull(case.hosts(), ref, case.pull_credential())
    assert pulled.returncode == 0, _output(pulled)
    # every layer came from the registry (each registry's layer is its own content)
    assert re.search(r"layer-sha256:[0-9a-f]{64}:\s+done", pulled.stdout), pulled.stdout
    listed = engines.ctr("images", "ls", "--quiet")
    assert ref in listed.stdout.split()
    password = case.pull_credential()[1]
    assert password not in _output(pulled)  # typed at the prompt, never echoed


def test_the_user_pods_secret_is_refused_a_push(
    docker_pushed: Any, case: Case, engines: Engines
) -> None:
    assert docker_pushed.returncode == 0, _output(docker_pushed)
    password = case.pull_credential()[1]
    config = case.config_dir("user-pod", case.pull_config())
    ref = case.ref("by-puller")
    tagged = engines.docker(config, "tag", case.ref("dockerd"), ref)
    assert tagged.returncode == 0, _output(tagged)
    pushed = engines.docker(config, "push", ref)
    assert pushed.returncode != 0, f"{case.key}: the pull-only credential pushed {ref}"
    assert REFUSED.search(pushed.stderr), _output(pushed)
    assert password not in _output(pushed)


def test_containerd_without_a_credential_pulls_public_repositories_only(
    docker_pushed: Any, case: Case, engines: Engines, box: sandbox.Sandbox
) -> None:
    # the image exists (pushed above): a refusal here is the registry's privacy, not a 404
    assert docker_pushed.returncode == 0, _output(docker_pushed)
    ref = case.ref("dockerd")
    pulled = engines.ctr_pull(case.hosts(), ref)
    # Docker Hub gives a repository its namespace's default privacy when a push creates it,
    # Public on a new account (the fake's state says which); every other registry is private
    name = ref.split("/", 1)[1].rsplit(":", 1)[0]
    if box.state().get(case.key, {}).get("privacy", {}).get(name) == "public":
        assert pulled.returncode == 0, _output(pulled)  # anyone pulls, within the pull limits
        return
    assert pulled.returncode != 0, f"{case.key}: an anonymous kubelet pulled a private image"
    assert REFUSED.search(pulled.stderr), _output(pulled)


def test_a_missing_engine_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engines_module, "engine_problem", lambda: "podman not installed")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI requires the real engines: podman"):
        engines_or_skip()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="podman not installed"):
        engines_or_skip()
