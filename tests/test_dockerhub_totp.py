"""Two-factor codes as real Docker Hub takes them, and sessions renewed.

Docker Hub's second factor is a time-based one-time password (RFC 6238: a code per 30-second
step, taken once). A Hub session lasts 10 minutes, so a run that signs in with a code and
needs a new session must never send that code again: interactive, it asks for a fresh one;
headless, it stops with one line saying a token is the way. The sandbox exposes the
account's seed (its credentials ``dockerhub-totp``) so tests compute codes as an app does.
"""

from __future__ import annotations

import base64
import getpass
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import sandbox
from binderhub_registry.errors import AuthenticationFailed, MissingCredentials
from binderhub_registry.providers import dockerhub
from binderhub_registry.sandbox.dockerhub import TOTP_STEP, totp

SECOND_FACTOR = "/dockerhub/v2/users/2fa-login"


def code(box: sandbox.Sandbox, later: float = 0) -> str:
    """The code the account's authenticator app shows now (or ``later`` seconds from now)."""
    return totp(box.credentials("dockerhub-totp")["totp_seed"], time.time() + later)


def hub(box: sandbox.Sandbox, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(
        method, f"{box.url}/dockerhub{path}", verify=box.ca_file, timeout=10, **kw
    )


def second_factor(box: sandbox.Sandbox, one_time: str) -> int:
    """Sign in with the password, then ``one_time``: the second call's status."""
    creds = box.credentials("dockerhub-totp")
    login = hub(
        box,
        "POST",
        "/v2/users/login",
        json={"username": creds["username"], "password": creds["password"]},
    )
    assert login.status_code == 401 and login.json()["login_2fa_token"]
    done = hub(
        box,
        "POST",
        "/v2/users/2fa-login",
        json={"login_2fa_token": login.json()["login_2fa_token"], "code": one_time},
    )
    return done.status_code


def test_codes_are_rfc_6238() -> None:
    # RFC 6238 appendix B, HMAC-SHA-1, seed "12345678901234567890", 8 digits
    seed = base64.b32encode(b"12345678901234567890").decode()
    for at, expected in [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ]:
        assert totp(seed, at, digits=8) == expected
    assert totp(seed, 59) == "287082" and TOTP_STEP == 30  # what apps show: 6 digits, 30 s


def test_a_code_lives_one_step_and_is_taken_once(fresh: sandbox.Sandbox) -> None:
    assert second_factor(fresh, code(fresh, -3 * TOTP_STEP)) == 401  # a stale code
    now = code(fresh)
    assert second_factor(fresh, now) == 200
    assert second_factor(fresh, now) == 401  # the same code again: refused
    # the named clock setting: the code the app shows a step later is fresh
    fresh._admin("POST", "dockerhub/settings", {"totp_time_offset": TOTP_STEP})
    assert second_factor(fresh, code(fresh, TOTP_STEP)) == 200
    fresh.reset()
    assert fresh._admin("GET", "dockerhub/settings")["totp_time_offset"] == 0


def signed_in(
    box: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dockerhub.HubConnection:
    """A two-factor sign-in with the code now in the variable, whose session then expires."""
    creds = box.credentials("dockerhub-totp")
    monkeypatch.setenv(dockerhub.SANDBOX_SECRET_VARIABLE, creds["password"])
    monkeypatch.setenv(dockerhub.SANDBOX_OTP_VARIABLE, code(box))
    p = dockerhub.validate(
        username=creds["username"],
        organization="",
        prefix="binder-",
        output_dir=str(tmp_path),
        dry_run=False,
        teardown=False,
        rotate=False,
        sandbox=True,
    )
    result = dockerhub.sign_in(p)
    # said before anything starts, in one line: a token is the way for a long or headless run
    assert "a token is the way" in result.detail and "\n" not in result.detail
    assert dockerhub.SANDBOX_SECRET_VARIABLE in result.detail
    assert result.value is not None
    box._admin("POST", "dockerhub/settings", {"session_ttl": 0.3})
    time.sleep(0.4)  # the session expires (10 minutes on Docker Hub)
    return result.value


def sent(box: sandbox.Sandbox) -> list[int]:
    return [e["status"] for e in box.log() if e["path"] == SECOND_FACTOR]


def test_headless_renewal_stops_with_one_line_and_never_resends_the_code(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = signed_in(fresh, tmp_path, monkeypatch)

    def headless(prompt: str = "") -> str:
        raise EOFError  # a kernel without stdin

    monkeypatch.setattr(getpass, "getpass", headless)
    with pytest.raises(MissingCredentials) as err:
        dockerhub.ensure_access_token(conn)
    message = str(err.value)
    assert "\n" not in message and "a token is the way" in message
    assert "fresh Docker Hub two-factor code" in message
    assert sent(fresh) == [200]  # the spent code was not sent again
    assert fresh.state()["dockerhub"]["access_tokens"] == []


def test_interactive_renewal_asks_for_a_fresh_code(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = signed_in(fresh, tmp_path, monkeypatch)
    fresh._admin("POST", "dockerhub/settings", {"totp_time_offset": TOTP_STEP})  # 30 s later
    asked: list[str] = []

    def app(prompt: str = "") -> str:
        asked.append(prompt)
        return code(fresh, TOTP_STEP)  # the code the app shows then

    monkeypatch.setattr(getpass, "getpass", app)
    assert dockerhub.ensure_access_token(conn).status == "created"
    assert len(asked) == 1 and "fresh Docker Hub two-factor code" in asked[0]
    assert sent(fresh) == [200, 200]


def test_a_code_typed_twice_is_not_sent_twice(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = signed_in(fresh, tmp_path, monkeypatch)
    spent = dockerhub.os.environ[dockerhub.SANDBOX_OTP_VARIABLE]
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": spent)
    with pytest.raises(AuthenticationFailed) as err:
        dockerhub.ensure_access_token(conn)
    assert "sent already" in str(err.value) and "\n" not in str(err.value)
    assert sent(fresh) == [200]
