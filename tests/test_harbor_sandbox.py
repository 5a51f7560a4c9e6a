"""The fake Harbor against Harbor's own API description, and its registry against live state.

``tests/data/harbor/swagger.yaml`` is goharbor/harbor ``api/v2.0/swagger.yaml`` (commit
c50c7dd). It is Swagger 2.0: its ``definitions`` are read as JSON Schema draft 4, with
``x-nullable: true`` allowing null; ``$ref``s to ``#/parameters`` and ``#/responses`` are
followed. Every request the provider sends and every answer the fake gives through each
API route it serves must be described there: the operation, the status code, the query
parameters, the request body's schema, the answer's schema (an empty body where none is
described) and its headers. Beyond the description, each with its evidence: the ``sid``
cookie (session middleware, goharbor/harbor#12354), the CSRF refusal's
``X-Harbor-CSRF-Token`` header (middleware/csrf), and ``/service/token`` (the registry's
token service, no API route).

One Harbor instance runs in this process for the whole module (its docker-registry
started once); each test uses its own project names.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import jwt
import pytest
import requests
import yaml
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from binderhub_registry.providers import harbor
from binderhub_registry.sandbox import tls
from binderhub_registry.sandbox.app import App, Context
from binderhub_registry.sandbox.harbor import HarborInstance
from binderhub_registry.secrets import Secret

DATA = Path(__file__).parent / "data" / "harbor" / "swagger.yaml"
SPEC: dict[str, Any] = yaml.safe_load(DATA.read_text())
BASE = "urn:harbor-swagger"
ADMIN, PASSWORD = "admin", "Harbor12345"  # Harbor's documented default admin password
#: Headers an answer may carry beyond the description, with their evidence.
UNDESCRIBED_HEADERS = {
    "set-cookie": "session middleware sets sid (goharbor/harbor#12354)",
    "x-request-id": "src/server/middleware/requestid sets it on every answer",
    "x-harbor-csrf-token": "middleware/csrf attachToken on its refusal",
    "content-type": "HTTP",
    "content-length": "HTTP",
    "date": "HTTP",
    "transfer-encoding": "HTTP",
}


def as_json_schema(node: Any) -> Any:
    """Swagger 2.0 schema text read as JSON Schema draft 4 (``x-nullable`` allows null)."""
    if isinstance(node, list):
        return [as_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_json_schema(v) for k, v in node.items()}
    if node.get("x-nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


REGISTRY: Registry = Registry().with_resource(
    BASE, Resource.from_contents(as_json_schema(SPEC), default_specification=DRAFT4)
)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A ``#/...`` reference of the description, followed."""
    while "$ref" in node:
        found: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def validate(schema: dict[str, Any], instance: Any) -> list[str]:
    """Schema errors of ``instance`` (``$ref``s resolved against the description)."""
    # a ``$ref`` inside ``schema`` is relative to the description's root
    validator = Draft4Validator(_rebase(as_json_schema(schema)), registry=REGISTRY)
    return [e.message for e in validator.iter_errors(instance)]


def _rebase(node: Any) -> Any:
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    if isinstance(node, dict):
        return {
            k: (f"{BASE}{v}" if k == "$ref" and str(v).startswith("#") else _rebase(v))
            for k, v in node.items()
        }
    return node


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The described operation serving ``method path`` (path below ``/api/v2.0``)."""
    for template, item in SPEC["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in item:
            op: dict[str, Any] = item[method.lower()]
            return template, op
    raise AssertionError(f"{method} {path} is not in Harbor's API description")


def check_exchange(answer: requests.Response) -> list[str]:
    """Every way this request and its answer leave Harbor's API description."""
    request = answer.request
    url = urlparse(str(request.url))
    path = url.path.removeprefix(SPEC["basePath"])
    template, op = operation(str(request.method), path)
    where = f"{request.method} {template} {answer.status_code}"
    problems = []
    params = [resolve(p) for p in op.get("parameters", [])]
    declared_query = {p["name"] for p in params if p["in"] == "query"}
    for name in parse_qs(url.query):
        if name not in declared_query:
            problems.append(f"{where}: query parameter {name!r} is not described")
    body = next((p for p in params if p["in"] == "body"), None)
    if request.body:
        if body is None:
            problems.append(f"{where}: a request body where none is described")
        else:
            sent = json.loads(request.body)
            problems += [f"{where} request: {m}" for m in validate(body["schema"], sent)]
    described = op["responses"].get(str(answer.status_code))
    if described is None:
        return [*problems, f"{where}: status not described"]
    described = resolve(described)
    if "schema" in described:
        problems += [f"{where} answer: {m}" for m in validate(described["schema"], answer.json())]
    elif answer.content:
        problems.append(f"{where}: a body where none is described")
    headers = {h.lower() for h in described.get("headers", {})}
    for header in answer.headers:
        if header.lower() not in headers and header.lower() not in UNDESCRIBED_HEADERS:
            problems.append(f"{where}: header {header} is not described")
    return problems


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HarborInstance]:
    """One Harbor on an app in this process, seeded with an admin."""
    directory = tmp_path_factory.mktemp("harbor-app")
    context = Context(directory, tls.generate(directory))
    app = App([], context)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(app.start(), loop).result(timeout=10)
    made = HarborInstance("harbor-test", admins={ADMIN: PASSWORD})
    made.start(app)
    try:
        yield made
    finally:
        made.stop()
        loop.call_soon_threadsafe(loop.stop)


@pytest.fixture
def ca(instance: HarborInstance) -> str:
    """The CA the instance's TLS certificate chains to."""
    assert instance.front is not None
    return str(instance.front.process.material.ca_file)


@pytest.fixture
def api(instance: HarborInstance, ca: str) -> harbor.HarborAPI:
    """The provider's API client as the admin, recording every answer."""
    client = harbor.HarborAPI(instance.url, ADMIN, Secret(PASSWORD), ca)
    client.answers = []  # type: ignore[attr-defined]

    def keep(answer: requests.Response, *args: Any, **kwargs: Any) -> None:
        client.answers.append(answer)  # type: ignore[attr-defined]

    client.http.hooks["response"].append(keep)
    return client


def raw(ca: str) -> requests.Session:
    """A plain requests session trusting the instance (it keeps cookies, as requests does)."""
    http = requests.Session()
    http.verify, http.trust_env = ca, False
    return http


# --- Harbor's description -----------------------------------------------------------------
def test_every_route_and_answer_follows_harbors_api_description(
    instance: HarborInstance, api: harbor.HarborAPI, ca: str
) -> None:
    # the provider's own calls, through every route it uses
    api.current_user()
    made = harbor.create_project(api, "conformance")
    assert harbor.find_project(api, "nothere") is None
    robot, _ = harbor.create_robot(api, "conformance", "ci", 30)
    assert harbor.find_robot(api, made, "ci") is not None
    harbor.refresh_robot_secret(api, robot["id"])
    api.send("PATCH", f"/robots/{robot['id']}", json={"secret": "Given1secret"})
    api.send("GET", f"/robots/{robot['id']}")
    harbor.set_robot_expiry(api, api.call("GET", f"/robots/{robot['id']}"), -1)
    api.send("GET", "/projects", params={"name": "conformance"})
    api.send("HEAD", "/projects", params={"project_name": "conformance"})
    # the errors the provider meets
    api.send("POST", "/projects", json={"project_name": "conformance", "metadata": {}})
    api.send("POST", "/projects", json={"project_name": "Not_Valid", "metadata": {}})
    api.send("POST", "/robots", json={"name": "nodays", "level": "project", "permissions": []})
    api.send("PATCH", f"/robots/{robot['id']}", json={"secret": "short"})
    api.send("GET", "/robots/999")
    api.send("GET", "/projects/999")
    harbor.delete_robot(api, robot["id"])
    harbor.delete_project(api, "conformance")
    refused = harbor.HarborAPI(instance.url, ADMIN, Secret("wrong"), ca)
    refused.http.hooks["response"].append(lambda r, *a, **k: api.answers.append(r))  # type: ignore[attr-defined]
    refused.send("GET", "/projects")
    statuses = {(a.request.method, a.status_code) for a in api.answers}  # type: ignore[attr-defined]
    assert {("POST", 201), ("POST", 409), ("POST", 400), ("PATCH", 200), ("GET", 401)} <= statuses
    problems = [p for a in api.answers for p in check_exchange(a)]  # type: ignore[attr-defined]
    assert problems == []


def test_project_create_answers_201_with_an_empty_body_and_a_location(
    instance: HarborInstance, ca: str
) -> None:
    r = raw(ca).post(
        f"{instance.url}/api/v2.0/projects",
        json={"project_name": "located", "metadata": {"public": "false"}},
        auth=(ADMIN, PASSWORD),
    )
    assert r.status_code == 201 and r.content == b""
    assert re.fullmatch(r"/api/v2\.0/projects/\d+", r.headers["Location"])
    again = raw(ca).post(
        f"{instance.url}/api/v2.0/projects",
        json={"project_name": "located"},
        auth=(ADMIN, PASSWORD),
    )
    assert again.status_code == 409
    assert again.json()["errors"][0] == {
        "code": "CONFLICT",
        "message": "The project named located already exists",
    }


def test_robot_creation_without_duration_is_refused(instance: HarborInstance, ca: str) -> None:
    """Omitted, ``duration`` is 0, which Harbor's handler refuses (-1 or a positive number)."""
    permissions = harbor.robot_permissions("library")
    r = raw(ca).post(
        f"{instance.url}/api/v2.0/robots",
        json={"name": "noduration", "level": "project", "permissions": permissions},
        auth=(ADMIN, PASSWORD),
    )
    assert r.status_code == 400
    assert "duration must be either -1(Never) or a positive integer" in r.text


# --- users: createUser -----------------------------------------------------------------------
WEAK = (
    "the password or secret must be longer than 8 chars with at least 1 uppercase letter, "
    "1 lowercase letter and 1 number"
)


def new_user(name: str, **fields: str) -> dict[str, str]:
    """A UserCreationReq with a good password and profile, ``fields`` replacing its values."""
    made = {
        "username": name,
        "email": f"{name}@example.org",
        "realname": name.title(),
        "comment": "made by a test",
        "password": "Good1password",
    }
    return made | fields


def test_the_admin_creates_a_local_user_who_is_no_system_admin(
    instance: HarborInstance, api: harbor.HarborAPI, ca: str
) -> None:
    """createUser: 201, an empty body and ``Location`` ``/api/v2.0/users/<id>``; the new user
    signs in with its password, no system admin, with the profile it was given."""
    made = api.send("POST", "/users", json=new_user("u-made"))
    assert made.status_code == 201 and made.content == b""
    match = re.fullmatch(r"/api/v2\.0/users/(\d+)", made.headers["Location"])
    assert match is not None
    me = (
        raw(ca)
        .get(f"{instance.url}/api/v2.0/users/current", auth=("u-made", "Good1password"))
        .json()
    )
    assert me["user_id"] == int(match.group(1)) and me["sysadmin_flag"] is False
    assert (me["username"], me["email"], me["realname"], me["comment"]) == (
        "u-made",
        "u-made@example.org",
        "U-Made",
        "made by a test",
    )
    assert check_exchange(made) == []


def test_a_username_or_email_taken_is_a_conflict(
    instance: HarborInstance, api: harbor.HarborAPI
) -> None:
    """harbor_user's UNIQUE username and UNIQUE email: Harbor's dao answers 409 CONFLICT."""
    assert api.send("POST", "/users", json=new_user("u-twice")).status_code == 201
    for again in (
        new_user("u-twice", email="other@example.org"),
        new_user("u-other", email="u-twice@example.org"),
    ):
        refused = api.send("POST", "/users", json=again)
        assert refused.status_code == 409
        message = f"user {again['username']} or email {again['email']} already exists"
        assert refused.json() == {"errors": [{"code": "CONFLICT", "message": message}]}
        assert check_exchange(refused) == []
    assert "u-other" not in instance.live.users
    assert instance.live.users["u-twice"].email == "u-twice@example.org"  # the first kept


def test_a_weak_password_or_a_bad_profile_is_refused(
    instance: HarborInstance, api: harbor.HarborAPI
) -> None:
    """requireValidSecret: at least 8 characters with a lowercase letter, an uppercase one and a
    digit; then validateUserProfile's email and realname rules; each a 400, nobody made."""
    cases = [
        (new_user("u-weak", password="Short1a"), WEAK),  # 7 characters
        (new_user("u-weak", password="nouppercase1"), WEAK),
        (new_user("u-weak", password="NOLOWERCASE1"), WEAK),
        (new_user("u-weak", password="NoDigitsAtAll"), WEAK),
        (new_user("u-weak", email=""), "email can't be empty"),
        (new_user("u-weak", email="not-an-address"), "email with illegal format"),
        (new_user("u-weak", realname=""), "realname with illegal length"),
        (new_user("u-weak", realname="50%"), "realname contains illegal characters"),
        (new_user("u-weak", comment="x" * 31), "comment with illegal length"),
    ]
    for body, message in cases:
        refused = api.send("POST", "/users", json=body)
        assert refused.status_code == 400, body
        assert refused.json() == {"errors": [{"code": "BAD_REQUEST", "message": message}]}
        assert check_exchange(refused) == []
    assert "u-weak" not in instance.live.users
    # exactly 8 is long enough (Go's len(in) >= 8)
    assert (
        api.send("POST", "/users", json=new_user("u-weak", password="Eight8ch")).status_code == 201
    )


def test_only_a_system_admin_creates_users(
    instance: HarborInstance, api: harbor.HarborAPI, ca: str
) -> None:
    """Self-registration is off (Harbor's default): another user gets 403 with its name as the
    message (RequireSystemAccess), no credentials 401; under OIDC no local user is made."""
    api.call("POST", "/users", json=new_user("u-plain"))
    as_plain = raw(ca).post(
        f"{instance.url}/api/v2.0/users",
        json=new_user("u-by-plain"),
        auth=("u-plain", "Good1password"),
    )
    assert as_plain.status_code == 403
    assert as_plain.json() == {"errors": [{"code": "FORBIDDEN", "message": "u-plain"}]}
    assert check_exchange(as_plain) == []
    anonymous = raw(ca).post(f"{instance.url}/api/v2.0/users", json=new_user("u-by-nobody"))
    assert anonymous.status_code == 401 and check_exchange(anonymous) == []
    assert not {"u-by-plain", "u-by-nobody"} & set(instance.live.users)
    instance.auth_mode = lambda: "oidc_auth"
    try:
        refused = api.send("POST", "/users", json=new_user("u-oidc"))
    finally:
        instance.auth_mode = lambda: "db_auth"
    assert refused.status_code == 403
    assert refused.json()["errors"][0] == {
        "code": "FORBIDDEN",
        "message": "creating local user is not allowed under auth mode: oidc_auth",
    }
    assert "u-oidc" not in instance.live.users


# --- CSRF ---------------------------------------------------------------------------------
def test_a_write_sending_the_session_cookie_back_is_refused_for_csrf(
    instance: HarborInstance, api: harbor.HarborAPI, ca: str
) -> None:
    keeps_cookies = raw(ca)
    keeps_cookies.auth = (ADMIN, PASSWORD)
    first = keeps_cookies.get(f"{instance.url}/api/v2.0/users/current")
    assert first.ok and "sid" in keeps_cookies.cookies
    refused = keeps_cookies.post(
        f"{instance.url}/api/v2.0/projects", json={"project_name": "csrf", "metadata": {}}
    )
    assert refused.status_code == 403
    assert refused.json() == {"errors": [{"code": "FORBIDDEN", "message": "CSRF token invalid"}]}
    assert "csrf" not in instance.live.projects
    # the provider's client keeps no cookie: its writes go through, one after another
    api.current_user()
    harbor.create_project(api, "csrf")
    harbor.delete_project(api, "csrf")
    assert not api.http.cookies


# --- the registry: live state, the token service ----------------------------------------------
def token_actions(answer: requests.Response) -> list[Any]:
    """The access of a token answer."""
    claims = jwt.decode(answer.json()["token"], options={"verify_signature": False})
    return [a["actions"] for a in claims["access"]]


def test_the_token_service_reads_the_first_service_value(
    instance: HarborInstance, api: harbor.HarborAPI, ca: str
) -> None:
    harbor.create_project(api, "tokens")
    robot, secret = harbor.create_robot(api, "tokens", "ci", -1)
    http, url = raw(ca), f"{instance.url}/service/token"
    auth = (robot["name"], secret.reveal())
    scope = ("scope", "repository:tokens/x:pull")
    # BinderHub appends service=container_registry to token_url's own ?service=harbor-registry
    appended = http.get(
        url,
        params=[("service", "harbor-registry"), scope, ("service", "container_registry")],
        auth=auth,
    )
    assert appended.status_code == 200 and token_actions(appended) == [["pull"]]
    assert set(appended.json()) == {"token", "expires_in", "issued_at"}
    assert appended.json()["expires_in"] == 1800
    # a token_url without ?service=: BinderHub's value comes first and is refused
    first_wrong = http.get(url, params=[("service", "container_registry"), scope], auth=auth)
    assert first_wrong.status_code == 400
    assert first_wrong.text == "Unable to handle service: container_registry"
    assert http.get(url, params=[scope], auth=auth).status_code == 400
    # refused credentials are anonymous: a token without their actions, and 401 without a scope
    anonymous = http.get(url, params=[("service", "harbor-registry"), scope], auth=("x", "y"))
    assert anonymous.status_code == 200 and token_actions(anonymous) == [[]]
    login = http.get(url, params={"service": "harbor-registry"}, auth=("x", "y"))
    assert login.status_code == 401


def test_a_robot_is_checked_against_live_state(
    instance: HarborInstance, api: harbor.HarborAPI, ca: str
) -> None:
    harbor.create_project(api, "live")
    harbor.create_project(api, "elsewhere")
    robot, secret = harbor.create_robot(api, "live", "ci", 1)
    http, url = raw(ca), f"{instance.url}/service/token"

    def actions(repository: str, password: Secret) -> list[Any]:
        answer = http.get(
            url,
            params={"service": "harbor-registry", "scope": f"repository:{repository}:pull,push"},
            auth=(robot["name"], password.reveal()),
        )
        assert answer.status_code == 200
        return token_actions(answer)

    assert actions("live/x", secret) == [["pull", "push"]]
    assert actions("elsewhere/x", secret) == [[]]  # its project's scope only
    assert actions("missing/x", secret) == [[]]  # a missing project grants nothing
    assert harbor.robot_works(api, robot["name"], secret)
    # a refreshed-away secret is refused on the data plane with Harbor's Basic challenge
    fresh = harbor.refresh_robot_secret(api, robot["id"])
    assert actions("live/x", secret) == [[]] and actions("live/x", fresh) == [["pull", "push"]]
    ping = http.get(f"{instance.url}/v2/", auth=(robot["name"], secret.reveal()))
    assert ping.status_code == 401 and ping.headers["WWW-Authenticate"] == 'Basic realm="harbor"'
    # expiry, as Harbor's clock sees it
    instance.live.robots[robot["id"]].expires_at = int(instance.clock()) - 1
    assert actions("live/x", fresh) == [[]]
    assert not harbor.robot_works(api, robot["name"], fresh)
    # deleted: nothing
    harbor.delete_robot(api, robot["id"])
    assert actions("live/x", fresh) == [[]]
    challenge = http.get(f"{instance.url}/v2/").headers["WWW-Authenticate"]
    assert challenge == (f'Bearer realm="{instance.url}/service/token",service="harbor-registry"')


def test_a_project_with_repositories_is_deleted_only_empty(
    instance: HarborInstance, api: harbor.HarborAPI, ca: str
) -> None:
    from binderhub_registry.push import push_auth, push_image
    from binderhub_registry.registry_http import RegistryHTTP
    from binderhub_registry.verify import VerifyHints

    harbor.create_project(api, "full")
    robot, secret = harbor.create_robot(api, "full", "ci", -1)
    http = RegistryHTTP(robot["name"], secret, ca)
    auth = push_auth(http, instance.url, "full/a/b", "pull,push", check="push", hints=VerifyHints())
    push_image(http, instance.url, "full/a/b", "v1", auth, hints=VerifyHints())
    refused = api.send("DELETE", "/projects/full", headers={"X-Is-Resource-Name": "true"})
    assert refused.status_code == 412
    assert refused.json()["errors"][0]["code"] == "PRECONDITION"
    listed = api.call("GET", "/projects/full/repositories")
    assert [r["name"] for r in listed] == ["full/a/b"]
    assert api.send("DELETE", f"/projects/full/repositories/{quote(quote('a/b', safe=''))}").ok
    assert harbor.delete_project(api, "full") == 0
    assert "full" not in instance.live.projects and instance.repositories() == {}
