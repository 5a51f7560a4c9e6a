"""Fake Harbor's HTTP side: the API v2.0 routes, the token service, and their error bodies.

Every route is a ``(method, path, handler)`` of the registry front
(:attr:`~..registry_front.FrontConfig.extra`), so the API, ``/service/token`` and
``/v2/`` share one host as on a real Harbor. Handlers run under the instance's
lock and read its live :class:`~.models.HarborState`. The sources of each
behaviour are in the package's table (``sandbox/harbor/__init__.py``).
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from urllib.request import Request as UrlRequest
from urllib.request import urlopen

from ..app import Request, Response, json_response
from ..registry_front import ACTIONS, parse_scopes
from .models import (
    ANONYMOUS,
    DAY,
    DB_AUTH,
    NAME_RULE,
    HarborState,
    Principal,
    Robot,
    iso,
    new_secret,
    secret_classes,
)
from .retention import manifest_bytes, policy_problem

if TYPE_CHECKING:
    from ..registry import RegistryProcess
    from ..registry_front import RegistryFront

__all__ = [
    "API",
    "SERVICE",
    "TOKEN_LIFETIME",
    "HarborApi",
    "harbor_error",
]

API = "/api/v2.0"
#: The token service's one service name (src/core/service/token/creator.go ``Registry``).
SERVICE = "harbor-registry"
#: Seconds a registry token lives: Harbor's default token_expiration of 30 minutes.
TOKEN_LIFETIME = 1800
_SAFE = ("GET", "HEAD", "OPTIONS", "TRACE")  # gorilla/csrf's safe methods
_MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

FrontHandler = Callable[["RegistryFront", Request], Response]


def harbor_error(status: int, code: str, message: str, **headers: str) -> Response:
    """Harbor's error body: ``{"errors": [{"code", "message"}]}`` (swagger ``Errors``)."""
    body = {"errors": [{"code": code, "message": message}]}
    return json_response(status, body, {"X-Request-Id": secrets.token_hex(8)} | headers)


class HarborApi:
    """The routes of one Harbor over its state (``state``) and its registry (the front's)."""

    def __init__(
        self, state: Callable[[], HarborState], info: Callable[[], tuple[str, str]]
    ) -> None:
        self._state = state  # a callable: a reset replaces the state object
        self._info = info  # (harbor_version, auth_mode): sandbox settings

    @property
    def state(self) -> HarborState:
        """The live state."""
        return self._state()

    def routes(self) -> tuple[tuple[str, str, FrontHandler], ...]:
        """Every route, as the front's ``extra`` wants them."""
        table: list[tuple[str, str, Callable[[RegistryFront, Request, Principal], Response]]] = [
            ("GET", "/users/current", self.current_user),
            ("POST", "/users", self.create_user),
            ("HEAD", "/projects", self.head_project),  # ahead of GET, which Starlette adds HEAD to
            ("GET", "/projects", self.list_projects),
            ("POST", "/projects", self.create_project),
            ("GET", "/projects/{project}", self.get_project),
            ("DELETE", "/projects/{project}", self.delete_project),
            ("GET", "/projects/{project}/repositories", self.list_repositories),
            ("DELETE", "/projects/{project}/repositories/{repository}", self.delete_repository),
            ("GET", "/robots", self.list_robots),
            ("POST", "/robots", self.create_robot),
            ("GET", "/robots/{robot_id}", self.get_robot),
            ("PUT", "/robots/{robot_id}", self.update_robot),
            ("PATCH", "/robots/{robot_id}", self.refresh_secret),
            ("DELETE", "/robots/{robot_id}", self.delete_robot),
            ("GET", "/projects/{project}/summary", self.project_summary),
            ("POST", "/retentions", self.create_retention),
            ("GET", "/retentions/{retention_id}", self.get_retention),
            ("PUT", "/retentions/{retention_id}", self.update_retention),
            ("DELETE", "/retentions/{retention_id}", self.delete_retention),
            ("GET", "/system/gc/schedule", self.get_gc_schedule),
            ("POST", "/system/gc/schedule", self.set_gc_schedule),
            ("PUT", "/system/gc/schedule", self.set_gc_schedule),
        ]
        routes: list[tuple[str, str, FrontHandler]] = [
            (method, API + path, self._guarded(handler)) for method, path, handler in table
        ]
        routes.append(("GET", API + "/systeminfo", lambda front, r: self.system_info(r)))
        routes.append(("GET", "/service/token", lambda front, r: self.token(front, r)))
        return tuple(routes)

    # --- what every API call goes through ---------------------------------------------
    def _guarded(
        self, handler: Callable[[RegistryFront, Request, Principal], Response]
    ) -> FrontHandler:
        def guarded(front: RegistryFront, request: Request) -> Response:
            refused = self._csrf(request)
            if refused is not None:
                return refused
            who = self._caller(request)
            if not who.authenticated:
                answer = harbor_error(401, "UNAUTHORIZED", "unauthorized")
            else:
                answer = handler(front, request, who)
            # Harbor answers API calls with a session cookie, Basic auth or not: a client that
            # keeps it sends it back, and then its writes need the CSRF token
            answer.headers["Set-Cookie"] = f"sid={secrets.token_hex(16)}; Path=/; HttpOnly"
            answer.headers.setdefault("X-Request-Id", secrets.token_hex(8))
            return answer

        return guarded

    def _csrf(self, request: Request) -> Response | None:
        """A write carrying a ``sid`` cookie without ``X-Harbor-CSRF-Token``: 403."""
        cookies = request.headers.get("cookie", "")
        carries_session = any(
            part.strip().startswith("sid=") for part in cookies.split(";") if part.strip()
        )
        if not carries_session or request.method in _SAFE:
            return None
        if request.headers.get("x-harbor-csrf-token"):
            return None  # a token from an earlier answer: not checked here (assumption)
        return harbor_error(
            403, "FORBIDDEN", "CSRF token invalid", **{"X-Harbor-CSRF-Token": secrets.token_hex(32)}
        )

    def _caller(self, request: Request) -> Principal:
        creds = request.basic_auth()
        if creds is None:
            return ANONYMOUS
        return self.state.principal(*creds) or ANONYMOUS

    @staticmethod
    def _admin(who: Principal) -> Response | None:
        """403 unless a system admin (the fake models no project roles: assumption)."""
        if who.user is not None and who.user.sysadmin:
            return None
        return harbor_error(403, "FORBIDDEN", "forbidden")

    # --- system info ----------------------------------------------------------------------
    def system_info(self, request: Request) -> Response:
        """``GET /systeminfo``: anyone gets ``auth_mode``, ``self_registration`` and
        ``harbor_version``; a signed-in caller also the protected part (a few of its fields)."""
        version, auth_mode = self._info()
        body: dict[str, Any] = {
            "auth_mode": auth_mode,
            "self_registration": False,
            "harbor_version": version,
        }
        if self._caller(request).authenticated:
            body |= {
                "project_creation_restriction": "adminonly",
                "read_only": False,
                "has_ca_root": False,
                "notification_enable": True,
            }
        return json_response(200, body, {"X-Request-Id": secrets.token_hex(8)})

    # --- users ----------------------------------------------------------------------------
    def current_user(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``GET /users/current``: the signed-in user (a robot is no user: 401)."""
        if who.user is None:
            return harbor_error(401, "UNAUTHORIZED", "unauthorized")
        return json_response(200, who.user.public())

    def create_user(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``POST /users`` (createUser): a local user, no system admin; 201, ``Location``.

        As handler/user.go's CreateUser: only under ``db_auth``; self-registration is off
        (Harbor's default), so only a system admin; then the password rule, the profile
        (email, realname, comment), and a username or email taken: 409.
        """
        _, auth_mode = self._info()
        if auth_mode != DB_AUTH:
            return harbor_error(
                403, "FORBIDDEN", f"creating local user is not allowed under auth mode: {auth_mode}"
            )
        if who.user is None or not who.user.sysadmin:
            return harbor_error(403, "FORBIDDEN", who.subject)  # RequireSystemAccess's message
        body = request.json()
        fields = ("username", "email", "realname", "comment", "password")
        if not isinstance(body, dict) or any(not isinstance(body.get(f, ""), str) for f in fields):
            return harbor_error(422, "UNPROCESSABLE_ENTITY", "the body is not a UserCreationReq")
        username, email, realname, comment, password = (str(body.get(f, "")) for f in fields)
        problem = _user_problem(username, email, realname, comment, password)
        if problem:
            return harbor_error(400, "BAD_REQUEST", problem)
        taken = any(
            u.username == username or (u.email and u.email == email)
            for u in self.state.users.values()
        )
        if taken:  # harbor_user's UNIQUE (username), UNIQUE (email)
            return harbor_error(409, "CONFLICT", f"user {username} or email {email} already exists")
        user = self.state.add_user(
            username,
            password,
            sysadmin=False,
            email=email,
            realname=realname,
            comment=comment,
        )
        location = f"{API}/users/{user.user_id}"
        return Response(201, b"", {"Location": location, "X-Request-Id": secrets.token_hex(8)})

    # --- projects -------------------------------------------------------------------------
    def _repositories(self, front: RegistryFront, project: str) -> dict[str, list[str]]:
        return {
            name: tags
            for name, tags in front.process.repositories().items()
            if name.startswith(project + "/")
        }

    def list_projects(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``GET /projects`` (``name`` filters by exact name in the fake: assumption)."""
        name = request.arg("name")
        found = [p for p in self.state.projects.values() if not name or p.name == name]
        body = [p.public_view(len(self._repositories(front, p.name))) for p in found]
        return json_response(200, body, {"X-Total-Count": str(len(body))})

    def head_project(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``HEAD /projects?project_name=``: 200 when it exists, else 404."""
        exists = request.arg("project_name") in self.state.projects
        return Response(200 if exists else 404)

    def create_project(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``POST /projects``: 201, no body, ``Location``; 409 for a taken name."""
        refused = self._admin(who)
        if refused is not None:
            return refused
        body = request.json()
        name = body.get("project_name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            return harbor_error(
                400,
                "BAD_REQUEST",
                f"Project name {name} is illegal in length. (greater than 255 or less than 1)",
            )
        if not NAME_RULE.match(name):
            return harbor_error(
                400,
                "BAD_REQUEST",
                "project name is not in lower case or contains illegal characters",
            )
        metadata = body.get("metadata") or {}
        public = metadata.get("public", "false") if isinstance(metadata, dict) else "false"
        if public not in ("true", "false"):
            return harbor_error(
                400,
                "BAD_REQUEST",
                f"metadata.public should only be 'true' or 'false', but got: '{public}'",
            )
        if name in self.state.projects:
            return harbor_error(409, "CONFLICT", f"The project named {name} already exists")
        assert who.user is not None
        limit = body.get("storage_limit", -1)
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else -1
        project = self.state.add_project(
            name, who.user, public=public == "true", storage_limit=limit
        )
        location = f"{API}/projects/{project.project_id}"
        if request.headers.get("x-resource-name-in-location", "").lower() == "true":
            location = f"{API}/projects/{name}"
        return Response(201, b"", {"Location": location, "X-Request-Id": secrets.token_hex(8)})

    def _project(self, request: Request, key: str = "project") -> Any:
        is_name = request.headers.get("x-is-resource-name", "").lower() == "true"
        return self.state.project(unquote(request.params[key]), is_name=is_name)

    def get_project(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``GET /projects/{project_name_or_id}``."""
        project = self._project(request)
        if project is None:
            return _not_found("project", request.params["project"])
        return json_response(200, project.public_view(len(self._repositories(front, project.name))))

    def delete_project(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``DELETE /projects/{project_name_or_id}``: 412 while it holds repositories."""
        refused = self._admin(who)
        if refused is not None:
            return refused
        project = self._project(request)
        if project is None:
            return _not_found("project", request.params["project"])
        if self._repositories(front, project.name):
            return harbor_error(
                412, "PRECONDITION", "the project contains repositories, can not be deleted"
            )
        del self.state.projects[project.name]
        if project.retention_id:  # its retention policy goes with it (assumption)
            self.state.retention.policies.pop(project.retention_id, None)
        for robot in [r for r in self.state.robots.values() if r.project is project]:
            del self.state.robots[robot.id]  # a project's robots go with it
        return Response(200)

    def list_repositories(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``GET /projects/{project_name}/repositories``."""
        name = unquote(request.params["project"])
        project = self.state.projects.get(name)
        if project is None:
            return _not_found("project", name)
        body = [
            {
                "id": index,
                "project_id": project.project_id,
                "name": repository,
                "artifact_count": len(tags),
                "pull_count": 0,
            }
            for index, (repository, tags) in enumerate(
                sorted(self._repositories(front, name).items()), 1
            )
        ]
        return json_response(200, body, {"X-Total-Count": str(len(body))})

    def delete_repository(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``DELETE /projects/{p}/repositories/{r}`` (``r`` URL-encoded twice when it has ``/``)."""
        refused = self._admin(who)
        if refused is not None:
            return refused
        project = unquote(request.params["project"])
        repository = f"{project}/{unquote(unquote(request.params['repository']))}"
        if repository not in self._repositories(front, project):
            return _not_found("repository", repository)
        _delete_manifests(front.process, repository)
        return Response(200)

    def project_summary(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``GET /projects/{p}/summary``: ``repo_count`` and the storage ``quota`` (``hard``: the
        project's ``storage_limit``, -1 unlimited; ``used``: its images' distinct blobs).

        A robot may do only what its permissions list (src/common/security/robot/context.go):
        the summary needs read on the project itself, its quota read on ``quota`` too
        (src/server/v2.0/handler/project.go, GetProjectSummary: RequireProjectAccess, then
        HasProjectPermission(quota)). A public project gives anyone the first, never the second
        (src/common/rbac/project/rbac_user.go, util.go publicProjectPolicies). So a robot with
        ``repository`` permissions gets 403 on a private project, no ``quota`` on a public one.
        """
        project = self._project(request)
        if project is None:
            return _not_found("project", request.params["project"])
        granted = _robot_grants(who.robot, project.name) if who.robot is not None else None
        if granted is not None and ("", "read") not in granted and not project.public:
            return harbor_error(403, "FORBIDDEN", "forbidden")
        repositories = self._repositories(front, project.name)
        body: dict[str, Any] = {"repo_count": len(repositories)}
        if granted is None or ("quota", "read") in granted:
            used = manifest_bytes(front.process, repositories)
            hard = {"storage": project.storage_limit}
            body["quota"] = {"hard": hard, "used": {"storage": used}}
        return json_response(200, body)

    # --- tag retention --------------------------------------------------------------------
    def create_retention(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``POST /retentions``: 201 and ``Location``; binds the policy to its project
        (metadata ``retention_id``); a project that has one already: 400."""
        refused = self._admin(who)
        if refused is not None:
            return refused
        policy = request.json()
        problem = policy_problem(policy)
        if problem:
            return harbor_error(400, "BAD_REQUEST", problem)
        project = self.state.project(str(policy["scope"].get("ref", "")))
        if project is None:
            return _not_found("project", str(policy["scope"].get("ref", "")))
        if project.retention_id:
            return harbor_error(
                400,
                "BAD_REQUEST",
                f"project: {project.project_id} already has retention policy: "
                f"{project.retention_id}",
            )
        retention = self.state.retention
        policy_id = retention.next_id
        retention.next_id += 1
        retention.policies[policy_id] = {**policy, "id": policy_id}
        project.retention_id = policy_id
        location = f"{API}/retentions/{policy_id}"
        return Response(201, b"", {"Location": location, "X-Request-Id": secrets.token_hex(8)})

    def _retention(self, request: Request) -> tuple[int, dict[str, Any]] | Response:
        raw = request.params["retention_id"]
        policy = self.state.retention.policies.get(int(raw)) if raw.isdigit() else None
        if policy is None:
            return _not_found("retention policy", raw)
        return int(raw), policy

    def get_retention(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``GET /retentions/{id}``: the policy."""
        found = self._retention(request)
        if isinstance(found, Response):
            return found
        return json_response(200, found[1])

    def update_retention(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``PUT /retentions/{id}``: the policy replaced (its id and scope kept)."""
        refused = self._admin(who)
        if refused is not None:
            return refused
        found = self._retention(request)
        if isinstance(found, Response):
            return found
        policy_id, old = found
        policy = request.json()
        if isinstance(policy, dict):
            policy = {**policy, "scope": old["scope"]}
        problem = policy_problem(policy)
        if problem:
            return harbor_error(400, "BAD_REQUEST", problem)
        self.state.retention.policies[policy_id] = {**policy, "id": policy_id}
        return Response(200)

    def delete_retention(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``DELETE /retentions/{id}``: 200; the project's ``retention_id`` goes."""
        refused = self._admin(who)
        if refused is not None:
            return refused
        found = self._retention(request)
        if isinstance(found, Response):
            return found
        policy_id, _ = found
        del self.state.retention.policies[policy_id]
        for project in self.state.projects.values():
            if project.retention_id == policy_id:
                project.retention_id = None
        return Response(200)

    # --- garbage collection ---------------------------------------------------------------
    def get_gc_schedule(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``GET /system/gc/schedule`` (system admins): a ``GCHistory`` whose ``schedule`` is
        the one set (type "None" until then)."""
        refused = self._admin(who)
        if refused is not None:
            return refused
        found = self.state.retention.gc_schedule
        if found is None:
            return json_response(200, {"schedule": {"type": "None"}})
        return json_response(200, found)

    def set_gc_schedule(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``POST``/``PUT /system/gc/schedule`` (system admins) a ``Schedule``: ``schedule``
        {type, cron} and ``parameters``; type "None" cancels it."""
        refused = self._admin(who)
        if refused is not None:
            return refused
        body = request.json()
        schedule = body.get("schedule") if isinstance(body, dict) else None
        kind = schedule.get("type") if isinstance(schedule, dict) else None
        if kind not in ("Hourly", "Daily", "Weekly", "Custom", "Manual", "None", "Schedule"):
            return harbor_error(400, "BAD_REQUEST", f"invalid schedule type: {kind}")
        retention = self.state.retention
        if request.method == "POST" and retention.gc_schedule is not None:
            return harbor_error(409, "CONFLICT", "fail to set schedule for gc: already exists")
        if kind == "None":
            retention.gc_schedule = None
        elif kind != "Manual":
            now = iso(self.state.clock())
            retention.gc_schedule = {
                "id": 1,
                "job_name": "GARBAGE_COLLECTION",
                "job_kind": "SCHEDULE",
                "job_parameters": json.dumps(body.get("parameters") or {}),
                "schedule": {"type": kind, "cron": str((schedule or {}).get("cron", ""))},
                "creation_time": now,
                "update_time": now,
            }
        return Response(201 if request.method == "POST" else 200)

    # --- robots ---------------------------------------------------------------------------
    def list_robots(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``GET /robots?q=Level=project,ProjectID=<id>``; without ``q``: system robots (none)."""
        query = dict(
            part.split("=", 1) for part in request.arg("q").split(",") if part.count("=") == 1
        )
        if query.get("Level") == "project":
            project_id = query.get("ProjectID", "")
            if not project_id.isdigit() or int(project_id) <= 0:
                return harbor_error(400, "BAD_REQUEST", "ProjectID must be a positive integer")
            robots = [
                r for r in self.state.robots.values() if r.project.project_id == int(project_id)
            ]
        else:
            robots = []  # system-level robots: the fake has none
        body = [r.public() for r in robots]
        return json_response(200, body, {"X-Total-Count": str(len(body))})

    def create_robot(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``POST /robots``: a project robot; 201 ``RobotCreated``, its secret shown only here."""
        body = request.json()
        if not isinstance(body, dict):
            return harbor_error(422, "UNPROCESSABLE_ENTITY", "the body is not a RobotCreate")
        name, level = body.get("name"), body.get("level")
        duration, permissions = body.get("duration", 0), body.get("permissions") or []
        if not isinstance(name, str) or not NAME_RULE.match(name):
            return harbor_error(
                400,
                "BAD_REQUEST",
                "robot name is not in lower case or contains illegal characters",
            )
        if (refused := _bad_duration(duration)) is not None:
            return refused
        if level not in ("system", "project"):
            return harbor_error(400, "BAD_REQUEST", f"bad request error level input: {level}")
        if not isinstance(permissions, list) or not permissions:
            return harbor_error(400, "BAD_REQUEST", "bad request empty permission")
        if level == "system":
            return harbor_error(403, "FORBIDDEN", "system robots are not modelled by the sandbox")
        if len(permissions) > 1:
            return harbor_error(400, "BAD_REQUEST", "bad request permission")
        permission = permissions[0]
        if not isinstance(permission, dict) or not permission.get("access"):
            return harbor_error(400, "BAD_REQUEST", "bad request empty access")
        if permission.get("kind") != "project":
            return harbor_error(
                400, "BAD_REQUEST", f"bad request permission level: {permission.get('kind')}"
            )
        project = self.state.projects.get(str(permission.get("namespace", "")))
        if project is None:
            return _not_found("project", str(permission.get("namespace", "")))
        refused = self._admin(who)
        if refused is not None:
            return refused
        if any(r.project is project and r.name == name for r in self.state.robots.values()):
            return harbor_error(
                409,
                "CONFLICT",
                f"robot account {project.project_id}:{project.name}+{name} already exists",
            )
        now = self.state.clock()
        assert who.user is not None
        robot = Robot(
            id=self.state.new_id("robot"),
            name=name,
            project=project,
            secret=new_secret(),
            duration=duration,
            expires_at=-1 if duration == -1 else int(now + duration * DAY),
            permissions=[permission],
            creator_ref=who.user.user_id,
            creation_time=now,
            description=str(body.get("description", "")),
            disabled=bool(body.get("disable", False)),
        )
        self.state.robots[robot.id] = robot
        created = {
            "id": robot.id,
            "name": robot.full_name,
            "secret": robot.secret,
            "creation_time": iso(now),
            "expires_at": robot.expires_at,
        }
        return json_response(201, created, {"Location": f"{API}/robots/{robot.id}"})

    def _robot(self, request: Request, who: Principal | None = None) -> Robot | Response:
        """The path's robot, else 404; with ``who``, then 403 unless ``who`` may change it."""
        raw = request.params["robot_id"]
        robot = self.state.robots.get(int(raw)) if raw.isdigit() else None
        if robot is None:
            return _not_found("robot", raw)
        refused = self._admin(who) if who is not None else None
        return robot if refused is None else refused

    def get_robot(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``GET /robots/{robot_id}`` (no secret)."""
        robot = self._robot(request)
        return robot if isinstance(robot, Response) else json_response(200, robot.public())

    def update_robot(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``PUT /robots/{robot_id}`` (UpdateRobot): the whole ``Robot`` back, changed.

        Name and level must stay; a new ``duration`` sets ``expires_at`` from the
        robot's creation time (-1: never); description, disable and permissions
        (when given) are replaced. 200, no body.
        """
        robot = self._robot(request, who)
        if isinstance(robot, Response):
            return robot
        body = request.json()
        if not isinstance(body, dict):
            return harbor_error(422, "UNPROCESSABLE_ENTITY", "the body is not a Robot")
        duration = body.get("duration")
        duration = robot.duration if duration is None else duration
        if (refused := _bad_duration(duration)) is not None:
            return refused
        permissions = body.get("permissions") or []
        if not isinstance(permissions, list) or not permissions:
            return harbor_error(400, "BAD_REQUEST", "bad request empty permission")
        first = permissions[0] if isinstance(permissions[0], dict) else {}
        if first.get("namespace") != robot.project.name:
            return harbor_error(400, "BAD_REQUEST", "cannot update the project id of robot")
        if body.get("level") != "project" or body.get("name") != robot.full_name:
            return harbor_error(400, "BAD_REQUEST", "cannot update the level or name of robot")
        if duration != robot.duration:
            robot.duration = duration
            robot.expires_at = -1 if duration == -1 else int(robot.creation_time + duration * DAY)
        robot.description = str(body.get("description", ""))
        robot.disabled = bool(body.get("disable", False))
        robot.permissions = permissions
        return Response(200)

    def refresh_secret(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``PATCH /robots/{robot_id}`` (RefreshSec): ``{}`` makes a new secret, shown once.

        A given ``secret`` must be 8-128 characters with an uppercase letter, a
        lowercase one and a digit; it is set and not shown back. The old secret
        stops working at once.
        """
        robot = self._robot(request, who)
        if isinstance(robot, Response):
            return robot
        body = request.json()
        given = body.get("secret", "") if isinstance(body, dict) else ""
        if given:
            if not _valid_secret(str(given)):
                return harbor_error(
                    400,
                    "BAD_REQUEST",
                    "the secret must be 8-128, inclusively, characters long with at least 1 "
                    "uppercase letter, 1 lowercase letter and 1 number",
                )
            robot.secret = str(given)
            return json_response(200, {})
        robot.secret = new_secret()
        return json_response(200, {"secret": robot.secret})

    def delete_robot(self, front: RegistryFront, request: Request, who: Principal) -> Response:
        """``DELETE /robots/{robot_id}``: 200 with no body."""
        robot = self._robot(request, who)
        if isinstance(robot, Response):
            return robot
        del self.state.robots[robot.id]
        return Response(200)

    # --- the registry's token service -------------------------------------------------------
    def token(self, front: RegistryFront, request: Request) -> Response:
        """``GET /service/token``: the first ``service`` must be ``harbor-registry``.

        Credentials Harbor refuses (wrong, deleted, expired, disabled) make the
        caller anonymous: with a scope it still gets 200 and a token, whose
        actions are only what anonymous may do (pull on public projects).
        Anonymous without any scope is 401 (``docker login``).
        """
        service = request.arg("service")  # Go's Query().Get: the first value
        if service != SERVICE:
            return Response(
                400,
                f"Unable to handle service: {service}".encode(),
                {"Content-Type": "text/plain; charset=utf-8"},
            )
        creds = request.basic_auth()
        who = (self.state.principal(*creds) if creds else None) or ANONYMOUS
        scopes = [s for value in request.query.get("scope", []) for s in value.split(" ")]
        if not who.authenticated and not scopes:
            return Response(401)
        access = [
            {
                "type": "repository",
                "name": name,
                "actions": sorted(self.state.allow(who, name, wanted & set(ACTIONS))),
            }
            for name, wanted in parse_scopes(scopes)
        ]
        token = front.process.issuer.issue(SERVICE, who.subject, access)
        now = time.time()
        body = {"token": token, "expires_in": TOKEN_LIFETIME, "issued_at": iso(now)}
        return json_response(200, body)


def _bad_duration(duration: Any) -> Response | None:
    """Harbor's 400 for a robot duration that is neither -1 (never) nor a positive int32, as
    on create and on update; None when it is good."""
    if isinstance(duration, int) and (duration == -1 or 0 < duration < 2**31 - 1):
        return None
    return harbor_error(
        400,
        "BAD_REQUEST",
        f"bad request error duration input: {duration}, duration must be either -1(Never) "
        "or a positive integer",
    )


def _not_found(kind: str, name: str) -> Response:
    return harbor_error(404, "NOT_FOUND", f"{kind} {name} not found")


def _valid_secret(secret: str) -> bool:
    return 8 <= len(secret) <= 128 and secret_classes(secret)


#: handler/user.go validateUserProfile's email pattern (Go's RE2 reads it as Python does).
_EMAIL = re.compile(
    r"""^(([^<>()[\]\\.,;:\s@\"]+(\.[^<>()[\]\\.,;:\s@\"]+)*)|(\".+\"))@"""
    r"""((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\])|(([a-zA-Z\-0-9]+\.)+[a-zA-Z]{2,}))$"""
)


def _user_problem(username: str, email: str, realname: str, comment: str, password: str) -> str:
    """Harbor's 400 message for a UserCreationReq it refuses, in its order; '' when good.

    Lengths are Go's ``len``: bytes. The username is not checked by Harbor's handler; an empty
    one is refused here (assumption)."""
    if not (len(password.encode()) >= 8 and secret_classes(password)):  # requireValidSecret
        return (
            "the password or secret must be longer than 8 chars with at least 1 uppercase "
            "letter, 1 lowercase letter and 1 number"
        )
    if not email:
        return "email can't be empty"
    if not _EMAIL.fullmatch(email):  # RE2's $ is the text's end, not before a newline
        return "email with illegal format"
    if not 1 <= len(realname.encode()) <= 255:
        return "realname with illegal length"
    if any(c in realname for c in ",~#$%"):
        return "realname contains illegal characters"
    if len(comment.encode()) > 30:
        return "comment with illegal length"
    if not username:
        return "username can't be empty"
    return ""


def _delete_manifests(process: RegistryProcess, repository: str) -> None:
    """Delete every tagged manifest of ``repository`` in docker-registry (so it disappears)."""
    token = process.issuer.issue(
        process.service,
        "sandbox-admin",
        [{"type": "repository", "name": repository, "actions": ["pull", "delete"]}],
    )
    context = ssl.create_default_context(cafile=str(process.material.ca_file))
    headers = {"Authorization": f"Bearer {token}", "Accept": _MANIFEST_TYPES}
    for tag in process.tags(repository):
        head = UrlRequest(
            f"{process.url}/v2/{repository}/manifests/{tag}", headers=headers, method="HEAD"
        )
        with urlopen(head, timeout=10, context=context) as answer:
            digest = answer.headers["Docker-Content-Digest"]
        # its tags' times go too; two tags of one manifest: the second finds it gone (False)
        process.delete_manifest(repository, digest)


def _robot_grants(robot: Robot, project: str) -> set[tuple[str, str]]:
    """(resource, action) pairs a robot's permissions give it in ``project`` (resource ``""``:
    the project itself), as its security context builds them from its access list."""
    return {
        (str(a.get("resource", "")), str(a.get("action", "")))
        for p in robot.permissions
        if p.get("kind") == "project" and p.get("namespace") == project
        for a in p.get("access", [])
    }
