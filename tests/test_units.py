"""Unit tests of the lib: parameters, secrets, values, settings resolution, step runner."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from binderhub_registry import InvalidParameter, Result, Runner, Secret, TransientCloudError, redact
from binderhub_registry.binderhub import (
    DOCKER_HUB_AUTH_KEY,
    RegistryValues,
    chart_docker_config,
    image_host,
    load_values,
    write_values,
)
from binderhub_registry.errors import AuthenticationFailed, BinderHubRegistryError
from binderhub_registry.params import choice, directory, flag, integer, text, validate
from binderhub_registry.providers import dockerhub
from binderhub_registry.registry_http import url_concat
from binderhub_registry.secrets import read_secret, write_private_file
from binderhub_registry.steps import BACKOFF_VARIABLE
from binderhub_registry.verify import _split_image, binderhub_settings


# --- params -------------------------------------------------------------------
def test_text_rule_names_parameter_and_rule() -> None:
    param = text("acr_name", r"[a-z0-9]{5,50}", "must be 5 to 50 lowercase letters or digits")
    assert param.validate("binder1") == "binder1"
    with pytest.raises(InvalidParameter) as err:
        param.validate("ab")
    assert (
        str(err.value)
        == "parameter 'acr_name': must be 5 to 50 lowercase letters or digits (got 'ab')"
    )
    assert err.value.name == "acr_name"


def test_optional_text_accepts_empty_only_when_optional() -> None:
    assert text("org", r"[a-z]+", "letters", optional=True).validate("") == ""
    with pytest.raises(InvalidParameter):
        text("org", r"[a-z]+", "letters").validate("")


@pytest.mark.parametrize("value", [True, False])
def test_flag_accepts_bools(value: bool) -> None:
    assert flag("dry_run").validate(value) is value


@pytest.mark.parametrize("value", ["True", 1, 0, None])
def test_flag_refuses_non_bools(value: Any) -> None:
    with pytest.raises(InvalidParameter, match="must be True or False"):
        flag("dry_run").validate(value)


def test_integer_and_choice_rules() -> None:
    assert integer("days", 1, 730).validate(365) == 365
    for bad in (0, 731, True, "5"):
        with pytest.raises(InvalidParameter, match="whole number from 1 to 730"):
            integer("days", 1, 730).validate(bad)
    assert choice("sku", ["Basic", "Standard"]).validate("Basic") == "Basic"
    with pytest.raises(InvalidParameter, match="must be one of Basic, Standard"):
        choice("sku", ["Basic", "Standard"]).validate("basic")


def test_directory_refuses_files(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    assert directory("output_dir").validate(str(tmp_path / "new")) == str(tmp_path / "new")
    for bad in (str(tmp_path / "f"), "", "  ", 3):
        with pytest.raises(InvalidParameter):
            directory("output_dir").validate(bad)


def test_validate_reports_missing_and_first_bad() -> None:
    spec = (flag("a"), flag("b"))
    with pytest.raises(InvalidParameter, match="'a': is required"):
        validate(spec, {"b": True})
    with pytest.raises(InvalidParameter, match="'b'"):
        validate(spec, {"a": True, "b": "no"})


def hub_params(tmp_path: Path, **overrides: Any) -> dockerhub.Params:
    """Valid Docker Hub parameters (the notebook's defaults), with ``overrides``."""
    values = {
        "username": "binderhubdemo",
        "organization": "",
        "prefix": "binder-",
        "output_dir": str(tmp_path),
        "dry_run": False,
        "teardown": False,
        "rotate": False,
        "sandbox": True,
    }
    return dockerhub.validate(**(values | overrides))


def test_dockerhub_validate_builds_params(tmp_path: Path) -> None:
    p = hub_params(tmp_path)
    assert p.namespace == "binderhubdemo"
    assert p.output_dir == tmp_path
    assert p.token_label == "BinderHub push binderhubdemo/binder-*"


# --- secrets ------------------------------------------------------------------
def test_secret_never_prints_itself() -> None:
    s = Secret("hunter2")
    assert "hunter2" not in f"{s} {s!r} {[s]} { ({'p': s}) }"
    assert s.reveal() == "hunter2"
    with pytest.raises(TypeError):
        __import__("pickle").dumps(s)


def test_redact_nested_and_inside_text() -> None:
    data = {"a": ["token abc123 here", Secret("zzz")], "b": "abc123"}
    assert redact(data, ["abc123"]) == {
        "a": ["token <redacted> here", "<redacted>"],
        "b": "<redacted>",
    }


def test_private_file_is_0600_even_when_it_existed(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "secret.yaml"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    write_private_file(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "new"


def test_private_file_replaces_a_link_and_a_failed_write_keeps_the_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not yours")
    target = tmp_path / "secret.yaml"
    target.symlink_to(elsewhere)
    write_private_file(target, "new")
    assert elsewhere.read_text() == "not yours"  # the link was replaced, never followed
    assert not target.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError):
        write_private_file(target, "newer")
    assert target.read_text() == "new"  # whole, not truncated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "secret.yaml"]


def test_read_secret_from_env_or_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X_TOKEN", raising=False)
    monkeypatch.setenv("X_PASSWORD", "pw")
    assert read_secret(["X_TOKEN", "X_PASSWORD"], "X").reveal() == "pw"
    monkeypatch.delenv("X_PASSWORD")
    with pytest.raises(Exception, match="set X_TOKEN or X_PASSWORD"):
        read_secret(["X_TOKEN", "X_PASSWORD"], "X", prompt=False)


# --- BinderHub values -------------------------------------------------------------
def test_chart_docker_config_defaults() -> None:
    hub = chart_docker_config({"username": "u", "password": "p"})
    assert list(hub["auths"]) == [DOCKER_HUB_AUTH_KEY]
    assert base64.b64decode(hub["auths"][DOCKER_HUB_AUTH_KEY]["auth"]) == b"u:p"
    gcr = chart_docker_config({"url": "https://gcr.io", "password": "{}"})
    assert base64.b64decode(gcr["auths"]["https://gcr.io"]["auth"]) == b"_json_key:{}"
    other = chart_docker_config({"url": "https://x.azurecr.io", "password": "p"})
    assert base64.b64decode(other["auths"]["https://x.azurecr.io"]["auth"]) == b"<token>:p"


@pytest.mark.parametrize(
    ("prefix", "host"),
    [
        ("org/binder-", "docker.io"),
        ("binder-", "docker.io"),
        ("127.0.0.1:5000/org/binder-", "127.0.0.1:5000"),
        ("localhost/x/y-", "localhost"),
        ("europe-docker.pkg.dev/p/r/binder-", "europe-docker.pkg.dev"),
    ],
)
def test_image_host(prefix: str, host: str) -> None:
    assert image_host(prefix) == host


def test_write_and_load_values_roundtrip(tmp_path: Path) -> None:
    values = RegistryValues(
        image_prefix="myacr.azurecr.io/project/binder-",
        username="app-id",
        password=Secret("s3cret"),
        registry_url="https://myacr.azurecr.io",
        docker_registry={
            "token_url": "https://myacr.azurecr.io/oauth2/token?service=myacr.azurecr.io"
        },
    )
    files = write_values(tmp_path, values, source="test")
    assert stat.S_IMODE(files.secret_path.stat().st_mode) == 0o600
    assert "s3cret" not in files.config_path.read_text()
    assert "s3cret" not in repr(files) and "s3cret" not in files._repr_markdown_()
    config = yaml.safe_load(files.config_path.read_text())
    assert config == {
        "config": {
            "BinderHub": {"use_registry": True, "image_prefix": "myacr.azurecr.io/project/binder-"},
            "DockerRegistry": {
                "token_url": "https://myacr.azurecr.io/oauth2/token?service=myacr.azurecr.io"
            },
        }
    }
    loaded = load_values(files.config_path, files.secret_path)
    assert loaded == values


# --- BinderHub's settings resolution (binderhub/registry.py) -------------------------
def test_settings_for_docker_hub_defaults() -> None:
    values = RegistryValues(image_prefix="org/binder-", username="u", password=Secret("p"))
    s = binderhub_settings(values)
    assert s.url == "https://registry-1.docker.io"
    assert s.token_url == "https://auth.docker.io/token?service=registry.docker.io"
    assert s.auth_config_url == DOCKER_HUB_AUTH_KEY
    assert (s.username, s.password.reveal(), s.not_found_401) == ("u", "p", True)


def test_settings_for_gcr_and_plain_registry() -> None:
    gcr = RegistryValues(
        "gcr.io/p/binder-", "_json_key", Secret("{}"), registry_url="https://gcr.io"
    )
    assert binderhub_settings(gcr).token_url == "https://gcr.io/v2/token?service=gcr.io"
    plain = RegistryValues("r.example/p/", "u", Secret("p"), registry_url="https://r.example")
    s = binderhub_settings(plain)
    assert (s.url, s.token_url, s.not_found_401) == ("https://r.example", "", False)


def test_token_url_keeps_its_service_and_gets_binderhubs() -> None:
    url = url_concat(
        "https://a.azurecr.io/oauth2/token?service=a.azurecr.io",
        {"scope": "repository:p/x:pull", "service": "container_registry"},
    )
    assert url == (
        "https://a.azurecr.io/oauth2/token?service=a.azurecr.io"
        "&scope=repository%3Ap%2Fx%3Apull&service=container_registry"
    )


def test_split_image_like_binderhub() -> None:
    assert _split_image("org/binder-", "x", "t") == ("org/binder-x", "t")
    assert _split_image("127.0.0.1:5/org/binder-", "x", "t") == ("org/binder-x", "t")


# --- step runner --------------------------------------------------------------------
def test_runner_retries_transient_and_honours_retry_after() -> None:
    sleeps: list[float] = []
    calls = iter([TransientCloudError("429", 429, retry_after=3), TransientCloudError("503", 503)])

    def step() -> Result[str]:
        for exc in calls:
            raise exc
        return Result("ok", "created", "made it")

    runner = Runner(backoff=0.01, sleep=sleeps.append)
    assert runner.step("make it", step) == "ok"
    assert sleeps[0] == 3.0
    assert 0 < sleeps[1] < 1
    row = runner.checklist.rows[0]
    assert (row.status, row.attempts) == ("created", 3)
    assert "after 3 attempts" in repr(runner.checklist)


def test_runner_backoff_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKOFF_VARIABLE, raising=False)
    assert Runner().backoff == 0.2
    monkeypatch.setenv(BACKOFF_VARIABLE, "1.5")
    assert Runner().backoff == 1.5
    assert Runner(backoff=0.3).backoff == 0.3  # an explicit value wins
    for bad in ("soon", "-1", "31", "nan"):
        monkeypatch.setenv(BACKOFF_VARIABLE, bad)
        with pytest.raises(BinderHubRegistryError) as err:
            Runner()
        assert str(err.value).startswith(f"environment variable {BACKOFF_VARIABLE}: seconds")
        assert "\n" not in str(err.value)


def test_runner_does_not_retry_other_errors() -> None:
    calls = []

    def step() -> Result[None]:
        calls.append(1)
        raise AuthenticationFailed("wrong password")

    runner = Runner()
    with pytest.raises(AuthenticationFailed):
        runner.step("sign in", step)
    assert calls == [1]
    assert runner.checklist.rows[0].status == "failed"


def test_runner_gives_up_after_attempts() -> None:
    calls = []

    def step() -> Result[None]:
        calls.append(1)
        raise TransientCloudError("503", 503)

    with pytest.raises(TransientCloudError):
        Runner(attempts=4, sleep=lambda s: None).step("flaky", step)
    assert len(calls) == 4


def test_checklist_html_escapes() -> None:
    runner = Runner()
    runner.step("<b>", lambda: Result(None, "done", "<script>"))
    html = runner.checklist._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_record_survives_and_refuses_another_providers(tmp_path: Path) -> None:
    from binderhub_registry.providers import Record

    rec = Record(tmp_path, "dockerhub")
    rec.set("access_token", {"uuid": "u1"})
    again = Record(tmp_path, "dockerhub")
    assert again.created == {"access_token": {"uuid": "u1"}}
    assert again.deployment == rec.deployment and len(rec.deployment) == 8
    # another registry's record is never taken as empty (its teardown would forget all)
    with pytest.raises(InvalidParameter, match="holds the record of another registry's notebook"):
        Record(tmp_path, "azure")
    saved = json.loads((tmp_path / Record.FILE).read_text())
    assert saved["provider"] == "dockerhub" and saved["deployment"] == rec.deployment


def test_async_step_retries_like_step() -> None:
    import asyncio

    calls: list[int] = []

    async def step() -> Result[int]:
        calls.append(1)
        if len(calls) < 3:
            raise TransientCloudError("503", 503)
        return Result(5, "created", "ok")

    runner = Runner(sleep=lambda s: None)
    assert asyncio.run(runner.astep("make it", step)) == 5
    row = runner.checklist.rows[0]
    assert (row.status, row.attempts, len(calls)) == ("created", 3, 3)


def test_dockerhub_real_mode_values_use_the_charts_default_key(tmp_path: Path) -> None:
    from binderhub_registry.providers import Record
    from binderhub_registry.verify import binderhub_settings

    p = hub_params(tmp_path, username="myid", organization="myorg", sandbox=False)
    conn = dockerhub.HubConnection(
        params=p,
        record=Record(tmp_path, "dockerhub"),
        ca_file=None,
        hub=None,  # type: ignore[arg-type]
        registry_url=None,
        token_url=dockerhub.TOKEN_URL,
        secret=Secret("dckr_pat_x"),
    )
    values = conn.values()
    assert values is not None
    assert values.image_prefix == "myorg/binder-"
    assert "url" not in values.secret()["registry"]  # the chart's key: https://index.docker.io/v1/
    assert list(values.docker_config()["auths"]) == [DOCKER_HUB_AUTH_KEY]
    settings = binderhub_settings(values)
    assert settings.url == "https://registry-1.docker.io"
    assert settings.token_url == "https://auth.docker.io/token?service=registry.docker.io"
    assert settings.not_found_401 and settings.username == "myid"
