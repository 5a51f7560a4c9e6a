"""User pods' pull in the values and in verification.

The pull-only credential goes where Zero to JupyterHub (the BinderHub chart's
``jupyterhub`` dependency) gives it to user pods: ``jupyterhub.imagePullSecret``.
Its rules below are those of z2jh's ``jupyterhub/values.schema.yaml``
(jupyterhub/zero-to-jupyterhub-k8s at 02dd73df01bdbb6d602fed21b0be12565ab38080):
``required: [create]``, and when ``create`` is true ``additionalProperties: false``
with ``registry``, ``username`` and ``password`` required, ``email`` string or null,
``automaticReferenceInjection`` boolean. They are restated here as a JSON Schema
(not copied) and checked with jsonschema. Verification runs against the sandbox's
Docker Hub registry (a real docker-registry with Hub's token auth), whose
``repo:read`` tokens pull only.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from binderhub_registry import RegistryValues, Secret, VerificationFailed, cli, verify
from binderhub_registry.binderhub import PullSecret, load_values, write_values
from binderhub_registry.errors import InvalidParameter, InvalidValuesFile
from binderhub_registry.providers import get as provider
from binderhub_registry.sandbox import Sandbox

from .helpers import defaults, hub_token, values_for

#: z2jh's rules for ``imagePullSecret`` (see the module docstring), as a JSON Schema.
Z2JH_IMAGE_PULL_SECRET = {
    "type": "object",
    "required": ["create"],
    "properties": {
        "create": {"type": "boolean"},
        "automaticReferenceInjection": {"type": "boolean"},
        "registry": {"type": "string"},
        "username": {"type": "string"},
        "password": {"type": "string"},
        "email": {"type": ["string", "null"]},
    },
    "if": {"properties": {"create": {"const": True}}},
    "then": {
        "additionalProperties": False,
        "required": ["registry", "username", "password"],
        "properties": {
            "create": {},
            "automaticReferenceInjection": {},
            "registry": {},
            "username": {},
            "password": {},
            "email": {},
        },
    },
}


def with_pull(values: RegistryValues, password: str, registry: str | None = None) -> RegistryValues:
    host = values.image_prefix.split("/")[0]
    pull = PullSecret(registry or host, values.username, Secret(password))
    return RegistryValues(
        **{k: getattr(values, k) for k in ("image_prefix", "username", "password")},
        registry_url=values.registry_url,
        docker_registry=values.docker_registry,
        pull=pull,
        pull_access="secret",
    )


def test_secret_yaml_holds_user_pods_credential_as_z2jh_takes_it(tmp_path: Path) -> None:
    values = RegistryValues(
        "r.example/p/binder-",
        "builder",
        Secret("push-secret"),
        "https://r.example",
        pull=PullSecret("r.example", "puller", Secret("pull-secret")),
        pull_access="secret",
    )
    files = write_values(tmp_path, values, source="test")
    secret = yaml.safe_load(files.secret_path.read_text())
    pull = secret["jupyterhub"]["imagePullSecret"]
    jsonschema.validate(pull, Z2JH_IMAGE_PULL_SECRET)
    assert pull == {
        "create": True,
        "registry": "r.example",
        "username": "puller",
        "password": "pull-secret",
    }
    assert secret["registry"]["username"] == "builder"  # build pods keep their own
    assert "pull-secret" not in repr(files) and "pull-secret" not in files._repr_markdown_()
    assert "imagePullSecret" not in files.config_path.read_text()
    back = load_values(files.config_path, files.secret_path)
    assert back.pull == values.pull and back.pull_access == "secret"


def test_the_schema_restated_here_refuses_what_z2jh_refuses() -> None:
    """The restated rules can fail: an unknown key, a missing password, create not a bool."""
    good = {"create": True, "registry": "r", "username": "u", "password": "p"}
    for bad in (good | {"extra": 1}, {k: v for k, v in good.items() if k != "password"}, {}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, Z2JH_IMAGE_PULL_SECRET)


def test_dockerconfigjson_is_rendered_as_z2jh_does() -> None:
    pull = PullSecret("r.example:5000", "puller", Secret("pw"))
    auths = pull.docker_config()["auths"]
    assert auths == {
        "r.example:5000": {
            "username": "puller",
            "password": "pw",
            "auth": base64.b64encode(b"puller:pw").decode(),
        }
    }
    assert list(PullSecret("", "u", Secret("p")).docker_config()["auths"]) == [
        "https://index.docker.io/v1/"
    ]


@pytest.mark.parametrize(
    ("pull", "problem"),
    [
        ({"registry": "r", "username": "u", "password": "p"}, "create is required"),
        ({"create": True, "registry": "r", "username": "u"}, "password is missing"),
        (
            {"create": True, "registry": "r", "username": "u", "password": "p", "pasword": "x"},
            "one is close to 'password'",
        ),
        ({"create": True, "registry": "r x", "username": "u", "password": "p"}, "whitespace"),
    ],
)
def test_a_broken_pull_secret_is_one_line(
    tmp_path: Path, pull: dict[str, object], problem: str
) -> None:
    (tmp_path / "config.yaml").write_text("config: {BinderHub: {image_prefix: r.example/p/b-}}\n")
    secret = {
        "registry": {"username": "u", "password": "hunter2"},
        "jupyterhub": {"imagePullSecret": pull},
    }
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(secret))
    with pytest.raises(InvalidValuesFile, match=problem) as err:
        load_values(tmp_path / "config.yaml", tmp_path / "secret.yaml")
    assert "hunter2" not in str(err.value) and "\n" not in str(err.value)


def test_create_false_gives_user_pods_nothing(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("config: {BinderHub: {image_prefix: r.example/p/b-}}\n")
    (tmp_path / "secret.yaml").write_text(
        "registry: {username: u, password: p}\njupyterhub: {imagePullSecret: {create: false}}\n"
    )
    values = load_values(tmp_path / "config.yaml", tmp_path / "secret.yaml")
    assert values.pull is None and values.pull_access == ""


def test_pull_only_credential_pulls_and_is_refused_a_push(fresh: Sandbox) -> None:
    push = values_for(fresh, hub_token(fresh, ["repo:write"]))
    values = with_pull(push, hub_token(fresh, ["repo:read"]))
    report = verify(values, ca_bundle=fresh.ca_file)
    checks = {c.name: c for c in report.checks}
    assert checks["user pods' pull"].status == "ok"
    assert "with jupyterhub.imagePullSecret" in checks["user pods' pull"].detail
    assert checks["least privilege"].status == "ok"
    assert report.consumers() == {
        "binder pod (image check)": "ok",
        "build pods (push)": "ok",
        "user pods (pull)": "ok",
        "least privilege": "ok",
    }
    assert "user pods (pull): ok" in str(report)


def test_a_pull_credential_that_can_push_fails_least_privilege(fresh: Sandbox) -> None:
    push = values_for(fresh, hub_token(fresh, ["repo:write"]))
    values = with_pull(push, push.password.reveal())  # the push token handed to user pods too
    with pytest.raises(VerificationFailed) as err:
        verify(values, ca_bundle=fresh.ca_file)
    assert err.value.check == "least privilege"
    assert "may push" in err.value.diagnosis
    assert err.value.report is not None
    assert err.value.report.consumers()["least privilege"] == "failed"
    assert err.value.report.consumers()["user pods (pull)"] == "ok"


def test_a_refused_pull_credential_is_diagnosed(fresh: Sandbox) -> None:
    push = values_for(fresh, hub_token(fresh, ["repo:write"]))
    with pytest.raises(VerificationFailed) as err:
        verify(with_pull(push, "dckr_pat_wrong"), ca_bundle=fresh.ca_file)
    assert err.value.check == "user pods' pull"
    assert "dckr_pat_wrong" not in str(err.value)


def test_a_pull_secret_for_another_host_is_caught(fresh: Sandbox) -> None:
    push = values_for(fresh, hub_token(fresh, ["repo:write"]))
    values = with_pull(push, hub_token(fresh, ["repo:read"]), registry="other.example")
    with pytest.raises(VerificationFailed) as err:
        verify(values, ca_bundle=fresh.ca_file)
    assert err.value.check == "user pods' pull secret"
    assert "kubelet finds pull credentials by host" in err.value.diagnosis


def private_namespace(box: Sandbox) -> None:
    """Repositories the seeded account pushes are private (Hub's default is public)."""
    r = requests.post(
        f"{box.url}/_sandbox/dockerhub/settings",
        json={"default_privacy": {"binderhubdemo": "private"}},
        headers=box.admin_headers(),
        verify=box.ca_file,
        timeout=10,
    )
    r.raise_for_status()


def test_pull_access_none_on_a_public_registry_pulls_anonymously(fresh: Sandbox) -> None:
    push = values_for(fresh, hub_token(fresh, ["repo:write"]), pull_access="none")
    report = verify(push, ca_bundle=fresh.ca_file)
    pull = next(c for c in report.checks if c.name == "user pods' pull")
    assert (pull.status, pull.detail) == ("ok", "anonymously: the repositories are public")


def test_pull_access_none_on_a_private_registry_fails(fresh: Sandbox) -> None:
    private_namespace(fresh)
    push = values_for(fresh, hub_token(fresh, ["repo:write"]), pull_access="none")
    with pytest.raises(VerificationFailed) as err:
        verify(push, ca_bundle=fresh.ca_file)
    assert err.value.check == "user pods' pull" and "private" in err.value.diagnosis


def test_no_pull_secret_says_how_to_check_the_nodes(fresh: Sandbox) -> None:
    private_namespace(fresh)
    push = values_for(fresh, hub_token(fresh, ["repo:write"]), pull_access="node")
    report = verify(push, ca_bundle=fresh.ca_file)
    pull = next(c for c in report.checks if c.name == "user pods' pull")
    assert pull.status == "skipped" and "kubectl run" in pull.detail
    assert report.consumers()["user pods (pull)"] == "skipped"


@pytest.mark.parametrize("value", ["Secret", "nodes", "", None, 1])
def test_bad_pull_access_is_one_line_before_any_call(tmp_path: Path, value: object) -> None:
    with pytest.raises(InvalidParameter, match="'pull_access': must be one of secret, node, none"):
        provider("harbor").validate(_defaults("harbor", tmp_path), pull_access=value)


@pytest.mark.parametrize("key", ["harbor", "ovh", "dockerhub"])
def test_node_is_refused_where_there_is_no_node_identity(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidParameter, match='cannot be "node" here'):
        provider(key).validate(_defaults(key, tmp_path), pull_access="node")


def test_a_cell_without_pull_access_gets_the_secret(tmp_path: Path) -> None:
    values = _defaults("harbor", tmp_path)
    values.pop("pull_access", None)
    assert provider("harbor").validate(values).pull_access == "secret"


def _defaults(key: str, tmp_path: Path) -> dict[str, object]:
    """The provider notebook's parameters cell, with output_dir in ``tmp_path``, a dry run."""
    return defaults(provider(key), tmp_path) | {"dry_run": True}


def test_the_verify_command_reads_user_pods_credential(
    fresh: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    push = values_for(fresh, hub_token(fresh, ["repo:write"]))
    files = write_values(tmp_path, with_pull(push, hub_token(fresh, ["repo:read"])), source="t")
    argv = ["verify", str(files.config_path), str(files.secret_path), "--ca-file", fresh.ca_file]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "✓ user pods' pull:" in out and "user pods (pull): ok; least privilege: ok" in out


def test_the_verify_command_refuses_pull_access_secret_without_one(
    fresh: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_values(tmp_path, values_for(fresh, "unused-password"), source="t")
    seen = len(fresh.log())
    argv = ["verify", str(files.config_path), str(files.secret_path), "--pull-access", "secret"]
    assert cli.main([*argv, "--ca-file", fresh.ca_file]) == 2
    err = capsys.readouterr().err
    # names the file given (one values file may hold it all)
    assert f"'--pull-access': is secret, but {files.secret_path} has no jupyterhub." in err
    assert len(fresh.log()) == seen  # nothing was sent
