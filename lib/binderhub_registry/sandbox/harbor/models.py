"""Fake Harbor's state: users, projects, robot accounts, and who may do what on the registry.

The sources of each rule are in the package's table (``sandbox/harbor/__init__.py``).
Nothing here serves HTTP: :mod:`.api` does, under the instance's lock.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .retention import Retention

__all__ = [
    "ANONYMOUS",
    "CURRENT_VERSION",
    "DAY",
    "DB_AUTH",
    "NAME_RULE",
    "OIDC_AUTH",
    "PROJECT_ACTIONS",
    "ROBOT_PREFIX",
    "HarborState",
    "Principal",
    "Project",
    "Robot",
    "User",
    "iso",
    "new_secret",
    "secret_classes",
]

#: Project and robot names (src/pkg/project/manager.go restrictedNameChars; handler/robot.go).
NAME_RULE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
#: Harbor's default robot prefix (config ``robot_name_prefix``).
ROBOT_PREFIX = "robot$"
#: What a project robot's ``repository`` access may carry onto registry tokens.
PROJECT_ACTIONS = frozenset({"pull", "push", "delete"})
DAY = 86400
#: A current Harbor release, as ``GET /systeminfo``'s ``harbor_version`` renders it
#: (``<release>-<commit>``: src/controller/systeminfo/controller.go).
CURRENT_VERSION = "v2.12.2-0000000"  # the release OVHcloud ran in 2025; commit: placeholder
#: Harbor's auth modes (src/common/const.go): local database users, or OIDC.
DB_AUTH, OIDC_AUTH = "db_auth", "oidc_auth"


def iso(seconds: float) -> str:
    """An RFC 3339 date-time in UTC, as Harbor's ``strfmt.DateTime`` renders it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


@dataclass
class User:
    """A local Harbor user (the seeded admin, one ``POST /users`` or OVH's API made)."""

    user_id: int
    username: str
    password: str
    sysadmin: bool
    creation_time: float
    email: str = ""
    realname: str = ""  # UserCreationReq's; users made otherwise show their username
    comment: str = ""

    def public(self) -> dict[str, Any]:
        """``UserResp`` as ``GET /users/current`` shows it."""
        return {
            "user_id": self.user_id,
            "username": self.username,
            "email": self.email,
            "realname": self.realname or self.username,
            "comment": self.comment,
            "sysadmin_flag": self.sysadmin,
            "admin_role_in_auth": False,
            "creation_time": iso(self.creation_time),
            "update_time": iso(self.creation_time),
        }


@dataclass
class Project:
    """A Harbor project: the first segment of every repository name in it."""

    project_id: int
    name: str
    public: bool
    owner: User
    creation_time: float
    #: the id of the project's tag retention policy (metadata ``retention_id``), if any
    retention_id: int | None = None
    #: bytes its images may use (``ProjectReq.storage_limit``; -1: unlimited, the default of
    #: Harbor's ``storage_per_project`` setting)
    storage_limit: int = -1

    def public_view(self, repo_count: int) -> dict[str, Any]:
        """``Project`` as ``GET /projects`` shows it."""
        return {
            "project_id": self.project_id,
            "owner_id": self.owner.user_id,
            "owner_name": self.owner.username,
            "name": self.name,
            "registry_id": 0,
            "creation_time": iso(self.creation_time),
            "update_time": iso(self.creation_time),
            "deleted": False,
            "togglable": True,
            "current_user_role_id": 1,
            "current_user_role_ids": [1],
            "repo_count": repo_count,
            "metadata": {
                "public": "true" if self.public else "false",
                # swagger ProjectMetadata.retention_id: a string, set while a policy is bound
                **({"retention_id": str(self.retention_id)} if self.retention_id else {}),
            },
        }


@dataclass
class Robot:
    """A project-level robot account (Harbor 2.x "v2" robot)."""

    id: int
    name: str  # as created: the full name is robot$<project>+<name>
    project: Project
    secret: str
    duration: int  # days, or -1
    expires_at: int  # unix seconds, or -1
    permissions: list[dict[str, Any]]
    creator_ref: int
    creation_time: float
    description: str = ""
    disabled: bool = False

    @property
    def full_name(self) -> str:
        """``robot$<project>+<name>``: the username it signs in with."""
        return f"{ROBOT_PREFIX}{self.project.name}+{self.name}"

    def expired(self, now: float) -> bool:
        """Harbor's check in middleware/security/robot.go: ``ExpiresAt != -1 && <= now``."""
        return self.expires_at != -1 and self.expires_at <= now

    def actions(self) -> set[str]:
        """The registry actions its ``repository`` access grants in its project."""
        return {
            str(a.get("action"))
            for p in self.permissions
            if p.get("kind") == "project" and p.get("namespace") == self.project.name
            for a in p.get("access", [])
            if a.get("resource") == "repository" and a.get("action") in PROJECT_ACTIONS
        }

    def public(self) -> dict[str, Any]:
        """``Robot`` as ``GET /robots`` shows it (never the secret)."""
        return {
            "id": self.id,
            "name": self.full_name,
            "description": self.description,
            "level": "project",
            "duration": self.duration,
            "editable": True,
            "disable": self.disabled,
            "expires_at": self.expires_at,
            "permissions": self.permissions,
            "creator_type": "local",
            "creator_ref": self.creator_ref,
            "creation_time": iso(self.creation_time),
            "update_time": iso(self.creation_time),
        }


@dataclass(frozen=True)
class Principal:
    """Who a request's Basic credentials are (anonymous: ``subject`` empty)."""

    subject: str
    user: User | None = None
    robot: Robot | None = None

    @property
    def authenticated(self) -> bool:
        """False for the anonymous caller."""
        return bool(self.subject)


ANONYMOUS = Principal("")


def secret_classes(text: str) -> bool:
    """Harbor's character rule for robot secrets and user passwords alike (IsValidSec,
    user.go requireValidSecret): a lowercase letter, an uppercase one and a digit, as the
    regexps ``[a-z]``, ``[A-Z]`` and ``[0-9]`` find them (ASCII)."""
    return all(re.search(chars, text) for chars in ("[a-z]", "[A-Z]", "[0-9]"))


def new_secret() -> str:
    """A robot secret as Harbor makes one: 32 letters and digits (robot.CreateSec)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    while True:  # IsValidSec's rule
        made = "".join(secrets.choice(alphabet) for _ in range(32))
        if secret_classes(made):
            return made


@dataclass
class HarborState:
    """One Harbor's live state; ``clock`` is its idea of now (tests move it to expire robots)."""

    clock: Callable[[], float]
    #: ``db_auth`` or ``oidc_auth`` (a sandbox setting: a new Harbor is db_auth)
    auth_mode: Callable[[], str] = lambda: DB_AUTH
    users: dict[str, User] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    robots: dict[int, Robot] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=lambda: {"user": 1, "project": 1, "robot": 1})
    #: tag retention policies, the tags' push and pull times, the GC schedule
    retention: Retention = field(default_factory=Retention)

    def new_id(self, kind: str) -> int:
        """The next id of ``kind`` (deterministic, so stored notebook outputs stay stable)."""
        made = self.next_id[kind]
        self.next_id[kind] = made + 1
        return made

    def add_user(
        self,
        username: str,
        password: str,
        *,
        sysadmin: bool = True,
        email: str = "",
        realname: str = "",
        comment: str = "",
    ) -> User:
        """A local user (replaced when the name exists: OVH's API resets the password so)."""
        found = self.users.get(username)
        user_id = found.user_id if found else self.new_id("user")
        user = User(user_id, username, password, sysadmin, self.clock(), email, realname, comment)
        self.users[username] = user
        return user

    def add_project(
        self, name: str, owner: User, *, public: bool, storage_limit: int = -1
    ) -> Project:
        """A project (the caller checked the name and that it is free)."""
        project = Project(self.new_id("project"), name, public, owner, self.clock())
        project.storage_limit = storage_limit
        self.projects[name] = project
        return project

    def project(self, name_or_id: str, *, is_name: bool = False) -> Project | None:
        """By name, or by id when it is a number and ``is_name`` is false (X-Is-Resource-Name)."""
        if not is_name and name_or_id.isdigit():
            return next(
                (p for p in self.projects.values() if p.project_id == int(name_or_id)), None
            )
        return self.projects.get(name_or_id)

    def robot_named(self, full_name: str) -> Robot | None:
        """The robot whose sign-in name is ``full_name``."""
        return next((r for r in self.robots.values() if r.full_name == full_name), None)

    def principal(self, username: str, password: str) -> Principal | None:
        """Who these credentials are now, or None when Harbor would refuse them.

        A robot must exist, have this secret, be enabled and not expired
        (middleware/security/robot.go); a user must have this password.
        """
        if username.startswith(ROBOT_PREFIX):
            robot = self.robot_named(username)
            if (
                robot is None
                or not secrets.compare_digest(robot.secret, password)
                or robot.disabled
                or robot.expired(self.clock())
            ):
                return None
            return Principal(username, robot=robot)
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(user.password, password):
            return None
        if self.auth_mode() == OIDC_AUTH and user.user_id != 1:
            # src/core/auth/authenticator.go: in OIDC mode only the first admin (id 1) signs
            # in with a password; every other user signs in through the OIDC provider
            return None
        return Principal(username, user=user)

    def allow(self, who: Principal, repository: str, wanted: set[str]) -> set[str]:
        """The actions ``who`` gets on ``repository`` (``<project>/<name>``), of ``wanted``.

        The project must exist (a missing one grants nothing, so the registry answers
        401); a system admin gets everything, a robot its access in its own project
        only, anyone pull on a public project.
        """
        project_name, _, rest = repository.partition("/")
        project = self.projects.get(project_name)
        if project is None or not rest:
            return set()
        granted: set[str] = {"pull"} if project.public else set()
        if who.user is not None and who.user.sysadmin:
            granted |= set(PROJECT_ACTIONS)
        if who.robot is not None and who.robot.project is project:
            granted |= who.robot.actions()
        return wanted & granted
