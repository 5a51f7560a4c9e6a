"""Harbor you run: its version and sign-in mode, read before the password is sent (and OIDC
sign-in for a self-hosted Harbor). Each test failed before the change
(the fake had no ``/systeminfo`` and no OIDC mode; the client read neither).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from binderhub_registry import sandbox
from binderhub_registry.errors import AuthenticationFailed, CloudError
from binderhub_registry.providers import harbor

from .helpers import HARBOR_DEFAULTS, settings

pytestmark = pytest.mark.sandbox


def params(tmp_path: Path) -> harbor.Params:
    """The notebook's defaults, writing into ``tmp_path``."""
    return harbor.validate(HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values")})


def test_a_harbor_before_2_2_is_refused_before_the_password_is_sent(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    settings(fresh, "harbor", harbor_version="v2.1.5-0aee4d3d")
    with pytest.raises(CloudError) as err:
        harbor.sign_in(params(tmp_path))
    message = str(err.value)
    assert "v2.1.5-0aee4d3d" in message and "Harbor 2.2" in message and "\n" not in message
    paths = [e["path"] for e in fresh.log()]
    assert paths == ["/api/v2.0/systeminfo"]  # anonymously: no /users/current, no password


def test_the_sign_in_names_the_version(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    result = harbor.sign_in(params(tmp_path))
    assert "(Harbor v2.12.2-" in result.detail
    settings(fresh, "harbor", harbor_version="2.2.0")  # the oldest with v2 robots is fine
    assert "(Harbor 2.2.0)" in harbor.sign_in(params(tmp_path)).detail
    settings(fresh, "harbor", harbor_version="")  # a Harbor that hides it: said, not refused
    assert "version not shown" in harbor.sign_in(params(tmp_path)).detail


def test_an_oidc_harbor_says_only_its_first_admin_takes_a_password(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings(fresh, "harbor", auth_mode="oidc_auth")
    assert harbor.sign_in(params(tmp_path)).value.api is not None  # the seeded admin is id 1
    monkeypatch.setenv(harbor.SANDBOX_PASSWORD_VARIABLE, "not-the-password")
    with pytest.raises(AuthenticationFailed) as err:
        harbor.sign_in(params(tmp_path))
    message = str(err.value)
    assert "OIDC" in message and "user id 1" in message and "\n" not in message
    assert "not-the-password" not in message
