"""redact() replaces secrets also in their base64 forms (docker config auths, Basic headers)."""

from __future__ import annotations

import base64
import json

from binderhub_registry import RegistryValues, Secret, redact
from binderhub_registry.secrets import REDACTED

TOKEN = "dckr_pat_Q3v9Xw2LmT8kZr4NpY7sHd1Fb6Jc5Ge0"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def urlsafe(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_docker_config_auth_is_redacted() -> None:
    values = RegistryValues(
        "r.example/org/binder-", "binderhubdemo", Secret(TOKEN), "https://r.example"
    )
    text = json.dumps(values.docker_config())
    out = redact(text, [values.password])
    assert b64(f"binderhubdemo:{TOKEN}") not in out
    assert json.loads(out)["auths"]["https://r.example"]["auth"] == REDACTED


def test_base64_forms_of_a_secret_are_redacted() -> None:
    for encoded in (
        b64(TOKEN),
        b64("x" + TOKEN),  # unaligned: the secret starts inside a base64 quantum
        b64("ab" + TOKEN + "cd"),
        urlsafe("u:" + TOKEN),
        b64(f"_json_key:{TOKEN}"),
    ):
        out = redact(f"Authorization: Basic {encoded}\n", [TOKEN])
        assert out == f"Authorization: Basic {REDACTED}\n", encoded


def test_base64_nested_in_base64_is_redacted() -> None:
    config = json.dumps({"auths": {"h": {"auth": b64("u:" + TOKEN)}}})
    assert redact(b64(config), [Secret(TOKEN)]) == REDACTED


def test_base64_glued_to_other_text_is_redacted() -> None:
    out = redact({"log": [f"auth={b64('u:' + TOKEN)};next"]}, [TOKEN])
    assert out == {"log": [f"auth={REDACTED};next"]}


def test_innocent_base64_and_text_stay() -> None:
    text = f"digest sha256:{'a' * 64} and {b64('hello world, nothing secret here')} stay"
    assert redact(text, [TOKEN]) == text
    assert redact("plain text", []) == "plain text"
