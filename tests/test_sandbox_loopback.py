"""The sandbox's environment keeps every cloud SDK's credential probe on loopback: here botocore's
default chain, whose last source is the EC2 instance metadata at 169.254.169.254."""

from __future__ import annotations

from pathlib import Path

import pytest

from binderhub_registry import sandbox

from .helpers import loopback_connections

botocore_session = pytest.importorskip("botocore.session", reason="the aws extra is not installed")

#: what points botocore at credentials or a profile; cleared so the chain runs to its end
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def test_botocore_finds_no_credentials_without_leaving_loopback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for name, value in sandbox.loopback_env().items():
        monkeypatch.setenv(name, value)
    seen = loopback_connections(monkeypatch)
    assert botocore_session.Session().get_credentials() is None
    assert {address[0] for address in seen} <= {"127.0.0.1", "::1"}, seen
