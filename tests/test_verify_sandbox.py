"""``binderhub-registry verify`` as a newcomer meets it: values of a sandbox
that is not running are told so at once, one values file (``helm get values``) is as good as
two, and a wrong Harbor robot secret is diagnosed as a wrong secret."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from binderhub_registry import cli
from binderhub_registry.sandbox import Sandbox
from binderhub_registry.sandbox.certs import write_material

from .conftest import NOTEBOOKS, NotebookRun


def _verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@pytest.fixture
def stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    """Values as the sandbox writes them, for ports nothing listens on; no sandbox running
    (the user's sandbox directory is an empty one): (config, secret, address)."""
    address = f"127.0.0.1:{_closed_port()}"
    values = tmp_path / "values"
    values.mkdir()
    config, secret = values / "config.yaml", values / "secret.yaml"
    config.write_text(
        "config:\n  BinderHub:\n    use_registry: true\n"
        f"    image_prefix: {address}/binderhub/binder-\n"
        f"  DockerRegistry:\n    url: https://{address}\n"
        f"    token_url: https://{address}/service/token?service=harbor-registry\n"
    )
    secret.write_text(
        f"registry:\n  url: https://{address}\n  username: robot$binderhub+binderhub-builder\n"
        "  password: Robot-Secret-1234\n"
    )
    secret.chmod(0o600)
    idle = tmp_path / "no-sandbox"
    idle.mkdir(mode=0o700)
    monkeypatch.setenv("BINDERHUB_REGISTRY_SANDBOX_DIR", str(idle))
    return config, secret, address


def test_values_of_a_stopped_sandbox_say_so(
    stopped: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, secret, address = stopped
    write_material(tmp_path / "ca")  # a sandbox's CA, as --ca-file names it
    code, out, err = _verify(
        capsys, "--ca-file", str(tmp_path / "ca" / "ca.crt"), str(config), str(secret)
    )
    assert code == 1 and out == ""
    assert err == (
        f"error: these values point at a sandbox that is not running (nothing listens on "
        f'https://{address}): start it with eval "$(binderhub-registry sandbox start)", then '
        "write them again (each start takes new ports): rerun the notebook that wrote them "
        "with sandbox = True\n"
    )


def test_the_notebooks_record_beside_the_values_gives_the_command_that_rewrites_them(
    stopped: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, secret, _ = stopped
    record = {"provider": "harbor", "deployment": "0123abcd", "created": {}}
    (config.parent / "binderhub-registry.json").write_text(json.dumps(record))
    code, _, err = _verify(capsys, str(config), str(secret))  # no CA: the record tells
    assert code == 1
    assert err.startswith("error: these values point at a sandbox that is not running")
    assert err.rstrip("\n").endswith(
        f"binderhub-registry run notebooks/05-harbor.ipynb -p output_dir {config.parent} "
        "-p sandbox True"
    )
    assert len(err.splitlines()) == 1


def test_a_sandbox_running_on_other_ports_is_named(
    stopped: tuple[Path, Path, str],
    box: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, secret, address = stopped
    monkeypatch.setenv("BINDERHUB_REGISTRY_SANDBOX_DIR", str(box.directory))
    code, _, err = _verify(capsys, "--ca-file", box.ca_file, str(config), str(secret))
    assert code == 1
    assert err.startswith(
        f"error: these values point at a sandbox that is not running (nothing listens on "
        f"https://{address}; the sandbox running now is at {box.url}, and each start takes "
        "new ports): write them again against it: "
    )


def test_loopback_values_of_no_known_sandbox_say_what_nothing_listens_on(
    stopped: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, secret, address = stopped
    code, _, err = _verify(capsys, str(config), str(secret))
    assert code == 1
    assert err.startswith(
        f"error: nothing listens on https://{address}, on this machine: if these values come "
        "from the sandbox, it is not running: start it with"
    )
    assert "Robot-Secret" not in err


def _one_file(config: Path, secret: Path, target: Path) -> Path:
    """What `helm get values <release>` prints for a release installed with both files."""
    body = [
        line
        for line in (config.read_text() + secret.read_text()).splitlines()
        if not line.startswith("#")
    ]
    target.write_text("USER-SUPPLIED VALUES:\n" + "\n".join(body) + "\n")
    target.chmod(0o600)
    return target


def test_one_values_file_as_helm_get_values_prints_it(
    dockerhub_nb: NotebookRun, fresh: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dockerhub_nb.set_up()
    values = dockerhub_nb.output_dir
    merged = _one_file(values / "config.yaml", values / "secret.yaml", tmp_path / "release.yaml")
    code, out, err = _verify(capsys, "--ca-file", fresh.ca_file, str(merged))
    assert code == 0, err
    assert "✓ BinderHub finds the pushed image" in out
    assert "user pods (pull): ok" in out
    # a file without user pods' pull secret is named as the file given
    config_only = tmp_path / "config-only.yaml"
    config_only.write_text((values / "config.yaml").read_text())
    code, _, err = _verify(capsys, "--ca-file", fresh.ca_file, str(config_only))
    assert code == 2
    assert err.startswith(f"error: {config_only}: ") and "registry" in err


@pytest.fixture
def harbor_values(tmp_path: Path, fresh: Sandbox) -> Path:
    """The Harbor notebook's values, written against the sandbox."""
    run = NotebookRun(NOTEBOOKS / "05-harbor.ipynb", tmp_path)
    run.set_up()
    return run.output_dir


def _wrong(secret: Path, section: str) -> Path:
    """secret.yaml with the password under ``section`` (``registry`` or ``imagePullSecret``)
    changed, as a robot secret mistyped or from before a refresh."""
    text = secret.read_text()
    block = re.search(rf"{section}:\n(?:\s+.*\n)*?\s+password: (\S+)", text)
    assert block
    wrong = secret.with_name(f"wrong-{section}.yaml")
    wrong.write_text(text.replace(block.group(1), "Wrong" + block.group(1)[5:]))
    wrong.chmod(0o600)
    return wrong


def test_a_wrong_harbor_robot_secret_is_diagnosed_as_a_wrong_secret(
    harbor_values: Path, fresh: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    config, secret = harbor_values / "config.yaml", harbor_values / "secret.yaml"
    code, _, err = _verify(
        capsys, "--ca-file", fresh.ca_file, str(config), str(_wrong(secret, "registry"))
    )
    assert code == 1
    host = config.read_text().split("url: ")[1].split()[0]
    assert err == (
        f"error: BinderHub's image check: {host} refused user "
        "'robot$binderhub+binderhub-builder' at login (a token without scope, as docker login "
        "asks): the password or secret is wrong, or the account expired, was disabled or "
        "deleted; refresh the robot account's secret (rerun with rotate = True) and deploy "
        "the new secret.yaml; a robot that expired must be replaced (rerun this notebook)\n"
    )
    # user pods' pull robot alike
    code, _, err = _verify(
        capsys, "--ca-file", fresh.ca_file, str(config), str(_wrong(secret, "imagePullSecret"))
    )
    assert code == 1
    assert err.startswith("error: user pods' pull: ")
    assert "refused user 'robot$binderhub+binderhub-puller' at login" in err
    assert "the password or secret is wrong" in err
