"""Fake Harbor: the API v2.0, its token service and its registry, on one host.

:class:`HarborInstance` (``instance.py``) is one Harbor: its state
(``models.py``), its routes (``api.py``) and a registry front on its own port
serving ``/api/v2.0``, ``/service/token`` and ``/v2/``. :class:`Harbor` (``cloud.py``) is the
standalone backend of the Harbor notebook: one seeded instance whose admin's
password is in the sandbox's ``credentials.json`` (``harbor``), reset with the
sandbox, and ``/_sandbox/harbor/settings``: ``clock_offset_days`` runs its clock ahead
(robots expire), ``harbor_version`` and ``auth_mode`` are what ``GET /systeminfo``
answers (default a current release with local users). The OVH fake makes one instance
per registry.

Every behaviour modelled, with its source. ``swagger`` is goharbor/harbor
``api/v2.0/swagger.yaml`` (vendored in ``tests/data/harbor/``;
``tests/test_harbor_sandbox.py`` checks this fake's requests and answers
against it); ``src/...`` are goharbor/harbor source files (commit c50c7dd,
2026-08); "assumption" marks what no public source shows.

===========================================  ==============================================
behaviour                                    source
===========================================  ==============================================
API under ``/api/v2.0``, Basic auth of       swagger (basePath, securityDefinitions basic);
local users; none or wrong: 401              src/server/v2.0/handler/base.go
``{"errors":[{"code":"UNAUTHORIZED",...}]}`` (RequireAuthenticated); src/lib/http/error_test.go
                                             (body ``"message":"unauthorized"``)
errors ``{"errors": [{code, message}]}``     swagger (Errors, Error); src/lib/errors/const.go
every API answer sets a ``sid`` cookie       goharbor/harbor#12354 (Set-Cookie sid on an API
(on every answer: assumption); a write that  answer); src/server/middleware/session (any sid
sends ``sid`` back without                   cookie marks the request as carrying a session),
``X-Harbor-CSRF-Token`` is 403 FORBIDDEN
"CSRF token invalid"; with the header, the   src/server/middleware/csrf (only session-less
token is not checked (assumption)            /api/, /v2/, /service/ requests skip CSRF);
                                             captured bodies in #15994, #12676; #13570 ("disable
                                             the cookie for the python client")
``GET /users/current`` -> UserResp; a        swagger (getCurrentUserInfo); a robot is no
robot gets 401                               local user: assumption
``POST /users`` UserCreationReq {username,   swagger (createUser: 201 ``#/responses/201``
email, realname, password, comment} -> 201,  with Location, 400, 401, 403 "When self-
empty body, ``Location``                     registration is disabled, only admins can
``/api/v2.0/users/<id>``; the user is no     create users", 409; UserCreationReq);
system admin. Only under ``db_auth`` (else   src/server/v2.0/handler/user.go (CreateUser:
403 "creating local user is not allowed      requireCreatable, requireValidSecret,
under auth mode: X"); self-registration is   validateUserProfile and their messages;
off, so only a system admin (others: 403     Location = the path + ``/<uid>``);
FORBIDDEN, the message the caller's name;    handler/base.go (RequireSystemAccess: 401,
anonymous 401, also in OIDC mode, where      else 403 with the caller's username);
Harbor's 403 comes first: not modelled).     src/lib/config/metadata/metadatalist.go
400 in Harbor's order: password at least 8   (auth_mode default ``db_auth``,
bytes with a-z, A-Z and 0-9 ("the password   self_registration default "false": "admin
or secret must be longer than 8 chars...");  need to add user to the instance");
email empty or not an address; realname      src/common/utils (IsIllegalLength);
1-255 bytes without ``,~#$%``; comment up    src/pkg/user/dao/dao.go (Create: 409 via
to 30. A username or email taken: 409        orm.WrapConflictError);
CONFLICT "user X or email Y already          make/migrations/postgresql/0001_initial_
exists"; an empty username: 400              schema (harbor_user UNIQUE username, email)
(assumption)
``GET /systeminfo``, anonymous too:          swagger (getSystemInfo: "can be called by
``auth_mode``, ``self_registration``,        anonymous request", GeneralInfo);
``harbor_version`` (``v<release>-<commit>``) src/controller/systeminfo/controller.go and
for anyone, a few protected fields for a     handler/systeminfo.go (what anonymous callers
signed-in caller; the version and mode are   get; the ``%s-%s`` version); the commit part of
sandbox settings                             the default version: placeholder
Harbor before 2.2 has no v2 robots           goharbor/harbor 2.2 release notes (robot
(``POST /robots`` with permissions): the     accounts v2); mybinder.org-deploy #2522 (OVH's
setting ``harbor_version`` rehearses one;    2.0.1 in 2022: robots only once upgraded); the
the fake's routes stay a current Harbor's    fake does not remove its routes: assumption
``auth_mode`` ``oidc_auth``: a password      src/core/auth/authenticator.go (Login: in OIDC
signs in only the first admin (user id 1);   mode only user id 1 goes to the database
every other local user gets 401              authenticator), src/pkg/oidc; the fake's OVH
                                             Harbors keep id 1 for OVHcloud: assumption
``X-Request-Id`` on every API answer         src/server/middleware/requestid
a body that is no JSON object: 422           DESIGN section 10 (422 for binding errors)
a seeded public project ``library``          make/migrations/postgresql/0001_initial_schema
``POST /projects`` {project_name, metadata:  swagger (createProject: 201 with no schema,
{public}} -> 201, empty body, ``Location``   409 Errors); src/server/v2.0/handler/project.go
``/api/v2.0/projects/<id>`` (the name with   (Location, X-Resource-Name-In-Location, public
``X-Resource-Name-In-Location``); public     defaults to "false" and must be "true"/"false")
defaults to "false"; a taken name: 409       src/pkg/project/dao/dao.go ("The project named
CONFLICT                                     %s already exists")
project names ``^[a-z0-9]+(?:[._-][a-z0-9]   src/pkg/project/manager.go (restrictedNameChars,
]+)*$``, 1-255 characters; else 400          length 1-255, both messages)
only system admins create projects, robots   the setting ``project_creation_restriction``
and delete (the fake has no project roles)   (adminonly or everyone): assumption that it is
                                             adminonly; project roles: not modelled
``GET /projects/{name_or_id}``: a number is  swagger (isResourceName, projectNameOrId);
an id unless ``X-Is-Resource-Name: true``;   src/pkg/project/dao/dao.go ("project %s not
missing: 404 NOT_FOUND                       found")
``GET /projects?name=``: exact name          swagger (listProjects ``name``; Harbor matches
                                             it fuzzily: the fake exactly, assumption)
``DELETE /projects/{p}``: 412 PRECONDITION   swagger (deleteProject 412 Errors);
"the project contains repositories, can not  handler/project.go (deletable); its robots go
be deleted"; its robots go with it           with it: assumption
``GET/DELETE /projects/{p}/repositories``    swagger (listRepositories, deleteRepository:
(names with ``/`` URL-encoded twice); a      "encode it twice"); a repository is one with a
repository is in the registry with a tag     tag: assumption
``POST /robots`` {name, level, duration,     swagger (RobotCreate, RobotCreated, 201 with
permissions} -> 201 {id, name, secret,       Location); handler/robot.go (validate: duration
creation_time, expires_at}; name             -1 or > 0, else 400 "bad request error duration
``robot$<project>+<name>``; duration -1 or   input"; omitted is 0, so 400; one project
1.. days (omitted: 400); one project         permission; validateName); controller/robot
permission; expires_at = now + days or -1;   (``%s+%s``, ExpiresAt = now + duration days);
a taken name: 409                            src/pkg/robot/dao/dao.go (409 "robot account
                                             %d:%s already exists"); DESIGN section 10
``GET /robots?q=Level=project,ProjectID=N``  swagger (ListRobot, Robot); handler/robot.go
(no secret); ``GET``, ``DELETE /robots/id``  (ListRobot's q, "ProjectID must be a positive
(200, no body); system-level robots are not  integer", DeleteRobot 200); no system robots:
modelled (none listed, creation 403)         assumption
``PUT /robots/{id}`` the Robot back: name    swagger (UpdateRobot: body Robot, 200);
and level kept, a new duration sets          handler/robot.go (updateV2Robot: "cannot update
expires_at = creation + days (or -1),        the level or name of robot", "cannot update the
description, disable, permissions replaced   project id of robot", ExpiresAt from
                                             CreationTime); captured on demo.goharbor.io in
                                             container-registry/harbor-satellite#307 (a longer
                                             duration renews an expired robot at once)
``PATCH /robots/{id}`` RobotSec: ``{}``      swagger (RefreshSec: PATCH, body robotSec,
-> 200 {secret} (new, shown once); a given   200 RobotSec); handler/robot.go (RefreshSec,
secret must be 8-128 with upper, lower and   IsValidSec message, empty secret answered)
digit and is answered ``{}``; the old        goharbor/harbor#22256 (a refresh keeps the
secret stops working at once; expires_at     creation date, so the expiry)
stays
robot credentials against live state: a      src/server/middleware/security/robot.go (secret,
wrong secret, a disabled or expired robot    Disabled, ``ExpiresAt != -1 && <= now``: no
(``expires_at <= now``) is no one            security context); harbor-satellite#307
                                             (expired: ``/v2/`` 401, token 200 with empty
                                             actions, right or wrong secret alike)
``/v2/`` without credentials: ``Bearer       src/server/middleware/v2auth/auth.go
realm="https://<host>/service/token",        (getChallenge; with an Authorization header that
service="harbor-registry"``; wrong Basic     fails: ``Basic realm="harbor"``); Basic accepted
credentials: 401 ``Basic realm="harbor"``    on the data plane (security middleware)
``/service/token``: the first ``service``    src/core/service/token/token.go (``GetString``:
must be ``harbor-registry``, else 400        beego's Form.Get, the first value; "Unable to
"Unable to handle service: X"; refused       handle service"); creator.go (unauthenticated
credentials are anonymous: with a scope      without scope: 401; scopes split on spaces;
200 and a token without their actions,       filterAccess); DESIGN section 10 (expired robot:
without: 401                                 200, then the push 401)
token body {token, expires_in, issued_at},   authutils.go (MakeToken); token_expiration 30
30 minutes                                   minutes (Harbor's default configuration)
a robot's token: its project only, its       src/common/security/robot/context.go (project
``repository`` actions; a system admin: all  permissions); v2auth/access.go; a missing
on existing projects; a missing project:     project grants nothing (DESIGN section 10: 401)
nothing; a public project: pull for anyone
pushing to a new repository name creates it  DESIGN section 10; docker-registry does so
a call with credentials that may not do its  src/server/middleware/v2auth: access.go (POST,
action (push: POST, PATCH, PUT; pull: GET,   PATCH, PUT are push; GET, HEAD pull), auth.go
HEAD), Basic or a realm token: 401           (401 UNAUTHORIZED with that message; a request
UNAUTHORIZED "unauthorized to access         with an Authorization header gets the Basic
repository: R, action: A", ``Basic           challenge), before docker-registry; a foreign
realm="harbor"``: a pull-only robot's push   Bearer goes on to docker-registry: assumption
projects are private unless made public;     handler/project.go (public defaults to
a project robot's actions are its            "false"); jupyterhub/mybinder.org-deploy
permissions (``repository: pull`` alone:     terraform/modules/harbor/main.tf (user-puller:
pull only)                                   pull only, beside builder: push and pull)
tag retention (``retention.py``): ``POST     swagger (createRetention: 201, RetentionPolicy,
/retentions`` binds a RetentionPolicy to     RetentionRule, RetentionSelector; "should only be
its project (metadata ``retention_id``, a    called when no retention policy binded to
string); a second one: 400; ``GET``/``PUT``  project yet"; ProjectMetadata.retention_id); the
/``DELETE /retentions/{id}``; a deleted      400's wording and a deleted project taking its
project's policy goes with it                policy along: assumption
rules retain; rules combine with OR; in a    goharbor/harbor docs "Create Tag Retention
repository some rule's scope selects, an     Rules" (working-with-images/create-tag-retention-
artifact no rule retains is deleted with     rules.md: "retain", OR logic, "No action is taken
all its tags; a repository no rule selects   on the nonspecified repositories"; up to 15
is untouched; a candidate is an artifact     rules); src/pkg/retention: launcher.go,
(its tags' digest), with the latest push     policy/alg/or/processor.go, dep/client.go
and pull of its tags                         (GetCandidates)
templates (each retains): ``always`` all;    src/pkg/retention/policy/rule/{always,daysps,
``nDaysSinceLastPush`` (pushed) and          dayspl,latestps,latestpl}/evaluator.go; the
``nDaysSinceLastPull`` (pulled) n: at or     five names: GET /retentions/metadatas
after now - n days (never pulled: Harbor's   (server/v2.0/handler/retention.go); ties in
zero time, so no);
``latestPushedK``/``latestPulledN`` k: the k sort.Slice are in no set order: the fake's tag
newest by push/pull (never-pulled last, yet  order is an assumption
kept while k reaches them)
``latestActiveK``, ``lastXDays``: refused    registered in policy/rule/index/index.go, not
(400): not modelled                          in the metadata: the 400 is an assumption
selectors: ``repoMatches``/``repoExcludes``  src/lib/selector/selectors/doublestar/
on the name within the project; on an        selector.go (tagSelectMatch/tagSelectExclude,
artifact's tags ``matches`` (one tag         match: empty pattern); the portal wraps a comma
matches) / ``excludes`` (one tag does not);  list in braces (add-rule.component.ts);
every selector must pass; a pattern is not   bmatcuk/doublestar v1.3.4 (src/go.mod),
split at commas; an empty one matches all    doublestar.go doMatching/matchComponent; the
doublestar v1.3.4: ``**`` crosses ``/`` only fake agrees with the 82 error-free cases of
as a whole component (``binder-**`` is       its doublestar_test.go (checked by hand, not
``binder-*``); ``*``, ``?``, ``[class]``,    vendored); a bad pattern (Harbor: the run
``{a,b}``, ``\\`` escapes                    fails) and an alternative holding ``/``:
                                             assumption; untagged artifacts, label
                                             selectors, parameter bounds: not modelled
a tag's push time is its last manifest PUT   Harbor's artifact push/pull events; the
docker-registry stored (201), its pull time  record is the registry front's, for every fake
its last manifest GET by tag answered (200)  (``registry.TagRecords``), on the Harbor's clock;
(a HEAD is no pull; a refused call is        a pull by digest is not kept per tag:
neither)                                     assumption
``POST /_sandbox/clock``: the clock moves    the trigger's schedule (mybinder.org-deploy
(``clock_offset_days``), then each bound     terraform/modules/harbor/main.tf: weekly, cron
policy runs once, at the new now, deleting   ``0 0 7 * * 6``); one run per clock move, whatever
manifests in docker-registry                 the cron: assumption
``GET /projects/{p}/summary``: ``quota``     swagger (getProjectSummary, ProjectSummaryQuota,
``hard.storage`` (the project's              ResourceList; ProjectReq.storage_limit); Harbor
``storage_limit``, -1 unlimited) and         docs "Configure Project Quotas" (default -1);
``used.storage`` (distinct blobs of its      the blob sum as Harbor's count: assumption
tagged images)
``GET``/``POST``/``PUT /system/gc/schedule`` swagger (getGCSchedule: GCHistory; createGCSchedule
(system admins only): ``schedule`` {type,    201, 409; updateGCSchedule 200; Schedule,
cron}, ``parameters``; "None" cancels; a     ScheduleObj's types, "'None' means to cancel the
second POST: 409; never set: type "None"     schedule"); the 409's wording and the unset
                                             answer's shape: assumption; garbage collection
                                             itself is not modelled (the fake frees nothing)
===========================================  ==============================================
"""

from __future__ import annotations

from .cloud import DEFAULT_SETTINGS, SEED_ADMIN, Harbor
from .instance import HarborInstance

__all__ = ["DEFAULT_SETTINGS", "SEED_ADMIN", "Harbor", "HarborInstance"]
