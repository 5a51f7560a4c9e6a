"""The fake OVHcloud API against OVH's own API schema, and its signature checks.

``tests/data/ovh/cloud-containerRegistry.json`` is an unchanged excerpt of OVH's schema
(``cloud.json`` and ``auth.json``; its ``_source`` says where it comes from). Every route the
fake serves is an operation there; every answer of a run through the routes follows the
schema's models. How the schema's types are read: ``long`` an integer, ``datetime`` an
RFC 3339 string, ``password`` a string, ``X[]`` a list of X, a model's ``enum`` its values
(plus DELIVERING, which real OVH has sent since 2026-01 and the schema lacks:
ovh/terraform-provider-ovh issue 1200); ``canBeNull`` allows null, and an absent
``canBeNull`` property reads as null (listed users carry no password, as ovh/ovhcloud-cli's
captures show).

Most checks call the fake's handlers in-process (no server, signed as python-ovh signs);
one goes through the running sandbox to prove the signed URL is the one python-ovh sends.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import sandbox
from binderhub_registry.providers import ovh as provider
from binderhub_registry.sandbox.app import Request, Response
from binderhub_registry.sandbox.ovh import (
    ACCESS_RULES,
    OTHER_PROJECT,
    SEED_PROJECT,
    OvhCloud,
    seed_credentials,
)

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "ovh" / "cloud-containerRegistry.json").read_text()
)
MODELS: dict[str, Any] = SCHEMA["models"]
#: Values real OVH sends that the schema's enums lack, with their evidence.
BEYOND_ENUM = {"cloud.containerRegistry.StatusEnum": {"DELIVERING"}}  # terraform-provider-ovh#1200
#: Properties real OVH sends that the 2024 schema lacks, with their evidence.
BEYOND_PROPERTIES = {
    # terraform-provider-ovh resource_cloud_project_containerregistry_iam.go reads it off GET
    "cloud.containerRegistry.Registry": {"iamEnabled": "boolean"},
}
HOST = "127.0.0.1:1"
DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


# --- the schema, read as types ------------------------------------------------------------
def conforms(value: Any, type_: str, where: str = "answer") -> list[str]:
    """Where ``value`` breaks the schema type ``type_`` (empty: it conforms)."""
    if type_.endswith("[]"):
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not a list"]
        return [p for i, v in enumerate(value) for p in conforms(v, type_[:-2], f"{where}[{i}]")]
    simple = {
        "string": lambda v: isinstance(v, str),
        "password": lambda v: isinstance(v, str),
        "ipBlock": lambda v: isinstance(v, str),
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "datetime": lambda v: isinstance(v, str) and DATETIME.fullmatch(v) is not None,
        "void": lambda v: v is None,
    }
    if type_ in simple:
        return [] if simple[type_](value) else [f"{where}: {value!r} is not {type_}"]
    model = MODELS[type_]
    if "enum" in model:
        allowed = set(model["enum"]) | BEYOND_ENUM.get(type_, set())
        return [] if value in allowed else [f"{where}: {value!r} not in {type_}"]
    if not isinstance(value, dict):
        return [f"{where}: {value!r} is not a {type_}"]
    props = model["properties"]
    beyond = BEYOND_PROPERTIES.get(type_, {})
    problems = [
        f"{where}.{k}: not a property of {type_}"
        for k in value
        if k not in props and k not in beyond
    ]
    problems += [p for k, t in beyond.items() if k in value for p in conforms(value[k], t)]
    for name, prop in props.items():
        if name not in value:
            if not prop["canBeNull"]:  # an absent nullable one reads as null
                problems.append(f"{where}.{name}: missing")
        elif value[name] is None:
            if not prop["canBeNull"]:
                problems.append(f"{where}.{name}: null")
        else:
            problems += conforms(value[name], prop["fullType"], f"{where}.{name}")
    return problems


def operation(method: str, path: str) -> dict[str, Any] | None:
    """The schema's operation for a concrete path (``{x}`` segments match anything)."""
    for api in SCHEMA["apis"]:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", api["path"])
        if re.fullmatch(pattern, path):
            for op in api["operations"]:
                if op["httpMethod"] == method:
                    return dict(op)
    return None


# --- the fake in-process, signed as python-ovh signs -------------------------------------------
class Signed:
    """Calls the fake's handlers directly, with python-ovh's headers and signature."""

    def __init__(self) -> None:
        self.keys = seed_credentials()
        self.cloud = OvhCloud(self.keys)
        self.routes = [
            (m, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "/?$"), h)
            for p, handlers in self.cloud._routes.items()
            for m, h in handlers.items()
        ]
        self.answers: list[tuple[str, str, Response]] = []

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        secret: str | None = None,
        app_key: str | None = None,
        consumer: str | None = None,
        tamper: bool = False,
    ) -> Response:
        data = "" if body is None else json.dumps(body, separators=(",", ":"))
        now = str(int(time.time()))
        ck = self.keys["consumer_key"] if consumer is None else consumer
        url = f"https://{HOST}/ovh/1.0{path}"
        signed = "+".join([secret or self.keys["application_secret"], ck, method, url, data, now])
        signature = "$1$" + hashlib.sha1(signed.encode()).hexdigest()
        headers = {
            "host": HOST,
            "x-ovh-application": self.keys["application_key"] if app_key is None else app_key,
            "x-ovh-consumer": ck,
            "x-ovh-timestamp": now,
            "x-ovh-signature": signature + ("0" if tamper else ""),
        }
        for m, pattern, handler in self.routes:
            found = pattern.match("/1.0" + path) if m == method else None
            if found:
                request = Request(
                    method, "/ovh/1.0" + path, {}, headers, data.encode(), found.groupdict()
                )
                answer = handler(request)
                self.answers.append((method, path, answer))
                return answer
        raise AssertionError(f"no route for {method} {path}")


def body(answer: Response) -> Any:
    """An answer's JSON (None when empty)."""
    return json.loads(answer.body) if answer.body else None


@pytest.fixture
def fake() -> Signed:
    """A fresh fake OVH account, called in-process."""
    return Signed()


def a_full_life(fake: Signed) -> str:
    """Every route once, through a registry's life; returns its id."""
    base = f"/cloud/project/{SEED_PROJECT}"
    fake("GET", base + "/capabilities/containerRegistry")
    fake("GET", base + "/containerRegistry")
    plan = body(fake("GET", base + "/capabilities/containerRegistry"))[0]["plans"][1]["id"]
    made = body(
        fake("POST", base + "/containerRegistry", {"name": "r", "region": "GRA", "planID": plan})
    )
    rid = made["id"]
    statuses = [body(fake("GET", f"{base}/containerRegistry/{rid}"))["status"] for _ in range(3)]
    assert statuses == ["INSTALLING", "DELIVERING", "READY"]
    fake("GET", f"{base}/containerRegistry/{rid}/plan")
    fake("GET", f"{base}/containerRegistry/{rid}/ipRestrictions/management")
    fake("GET", f"{base}/containerRegistry/{rid}/ipRestrictions/registry")
    user = body(fake("POST", f"{base}/containerRegistry/{rid}/users", {"login": "admin"}))
    fake("PUT", f"{base}/containerRegistry/{rid}/users/{user['id']}/setAsAdmin")
    fake("GET", f"{base}/containerRegistry/{rid}/users")
    fake("GET", f"{base}/containerRegistry/{rid}/users/{user['id']}")
    fake("DELETE", f"{base}/containerRegistry/{rid}/users/{user['id']}")
    fake("DELETE", f"{base}/containerRegistry/{rid}")
    return str(rid)


# --- schema conformance --------------------------------------------------------------------
def test_every_route_is_an_operation_of_the_schema(fake: Signed) -> None:
    for pattern, handlers in fake.cloud._routes.items():
        path = pattern.removeprefix("/1.0")
        concrete = re.sub(r"\{\w+\}", "x", path)
        for method in handlers:
            assert operation(method, concrete) is not None, f"{method} {path} not in the schema"


def test_every_answer_follows_the_schema(fake: Signed) -> None:
    a_full_life(fake)
    assert len(fake.answers) >= 11
    for method, path, answer in fake.answers:
        op = operation(method, path)
        assert op is not None
        if answer.status == 204:
            assert op["responseType"] == "void"
            continue
        assert answer.status == 200, (method, path, answer.body)
        assert conforms(body(answer), op["responseType"], f"{method} {path}") == []


def test_the_provider_sends_what_the_schema_takes() -> None:
    creation = MODELS["cloud.ProjectContainerRegistryCreation"]["properties"]
    assert {"name", "region", "planID"} <= set(creation)
    users = MODELS["cloud.ProjectContainerRegistryUsersCreation"]["properties"]
    assert "login" in users
    # the rights the provider asks for are exactly the fake's seeded consumer key's
    assert provider.RIGHTS == ACCESS_RULES
    for method, path in ACCESS_RULES:
        assert operation(method, path.replace("{sn}", "x").replace("*", "y")) is not None


def test_the_user_password_is_shown_once(fake: Signed) -> None:
    base = f"/cloud/project/{SEED_PROJECT}/containerRegistry"
    rid = body(fake("POST", base, {"name": "r", "region": "GRA"}))["id"]
    refused = fake("POST", f"{base}/{rid}/users", {"login": "a"})  # not READY yet
    assert refused.status == 400 and body(refused)["class"] == "Client::BadRequest"
    while body(fake("GET", f"{base}/{rid}"))["status"] != "READY":
        pass
    made = body(fake("POST", f"{base}/{rid}/users", {"login": "a"}))
    assert made["password"]
    listed = body(fake("GET", f"{base}/{rid}/users"))
    assert all("password" not in u for u in listed)
    assert "password" not in body(fake("GET", f"{base}/{rid}/users/{made['id']}"))
    again = fake("POST", f"{base}/{rid}/users", {"login": "a"})
    assert again.status == 409


def test_status_moves_by_polls_and_settings(fake: Signed) -> None:
    fake.cloud.account.settings.update(installing_polls=3, delivering_polls=0, deleting_polls=2)
    base = f"/cloud/project/{SEED_PROJECT}/containerRegistry"
    rid = body(fake("POST", base, {"name": "r", "region": "DE"}))["id"]
    seen = [body(fake("GET", f"{base}/{rid}"))["status"] for _ in range(5)]
    assert seen == ["INSTALLING", "INSTALLING", "INSTALLING", "READY", "READY"]
    fake.cloud.account.settings.update(installing_polls=0, delivering_polls=2)
    other = body(fake("POST", base, {"name": "s", "region": "DE"}))["id"]
    seen = [body(fake("GET", f"{base}/{other}"))["status"] for _ in range(3)]
    assert seen == ["DELIVERING", "DELIVERING", "READY"]
    fake("DELETE", f"{base}/{other}")
    listed = body(fake("GET", base))  # a listing does not move a status
    assert [r["status"] for r in listed] == ["READY", "DELETING"] and listed[0]["url"]
    assert fake("DELETE", f"{base}/{rid}").status == 204
    seen = [fake("GET", f"{base}/{rid}").status for _ in range(4)]
    assert seen == [200, 200, 404, 404]


def test_bad_creations_are_400s_with_ovh_bodies(fake: Signed) -> None:
    base = f"/cloud/project/{SEED_PROJECT}/containerRegistry"
    for sent in ({"region": "GRA"}, {"name": "r"}, {"name": "r", "region": "MARS"}):
        answer = fake("POST", base, sent)
        assert answer.status == 400 and set(body(answer)) == {"class", "message"}
    answer = fake("POST", base, {"name": "r", "region": "GRA", "planID": "nope"})
    assert answer.status == 400
    assert fake.cloud.account.registries == {}


# --- authentication ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("how", "status", "code"),
    [
        ({"secret": "wrong"}, 400, "INVALID_SIGNATURE"),
        ({"tamper": True}, 400, "INVALID_SIGNATURE"),
        ({"app_key": "unknown"}, 403, "INVALID_KEY"),
        ({"consumer": "unknown"}, 403, "INVALID_CREDENTIAL"),
        ({"consumer": ""}, 403, "NOT_CREDENTIAL"),
    ],
)
def test_every_route_checks_the_signature(
    fake: Signed, how: dict[str, Any], status: int, code: str
) -> None:
    rid = "00000000-0000-0000-0000-000000000000"
    for pattern, handlers in fake.cloud._routes.items():
        if pattern.endswith("/auth/time"):
            continue
        path = (
            pattern.removeprefix("/1.0")
            .replace("{sn}", SEED_PROJECT)
            .replace("{rid}", rid)
            .replace("{uid}", "1")
        )
        for method in handlers:
            answer = fake(method, path, **how)
            assert answer.status == status, (method, path)
            assert body(answer)["errorCode"] == code
    assert fake.cloud.account.registries == {}


def test_calls_outside_the_rights_are_not_granted(fake: Signed) -> None:
    answer = fake("GET", f"/cloud/project/{OTHER_PROJECT}/containerRegistry")
    assert answer.status == 403 and body(answer)["errorCode"] == "NOT_GRANTED_CALL"
    answer = fake("GET", f"/cloud/project/{SEED_PROJECT}/containerRegistry/x/plan")
    assert answer.status != 403  # GET .../containerRegistry/* is granted


@pytest.mark.sandbox
def test_through_the_server_auth_time_is_unsigned_and_the_full_url_is_signed(
    fresh: sandbox.Sandbox,
) -> None:
    base = f"{fresh.url}/ovh/1.0"
    answer = requests.get(f"{base}/auth/time", verify=fresh.ca_file, timeout=10)
    assert answer.status_code == 200 and answer.text.strip().isdigit()
    assert abs(int(answer.text) - time.time()) < 5
    keys = fresh.credentials("ovh")
    url = f"{base}/cloud/project/{SEED_PROJECT}/capabilities/containerRegistry"
    now = str(int(time.time()))

    def get(signed_url: str) -> requests.Response:
        parts = [keys["application_secret"], keys["consumer_key"], "GET", signed_url, "", now]
        return requests.get(
            url,
            headers={
                "X-Ovh-Application": keys["application_key"],
                "X-Ovh-Consumer": keys["consumer_key"],
                "X-Ovh-Timestamp": now,
                "X-Ovh-Signature": "$1$" + hashlib.sha1("+".join(parts).encode()).hexdigest(),
            },
            verify=fresh.ca_file,
            timeout=10,
        )

    assert get(url).status_code == 200
    wrong = get(url.replace("/ovh/1.0", ""))  # signed for another URL
    assert wrong.status_code == 400 and wrong.json()["errorCode"] == "INVALID_SIGNATURE"
