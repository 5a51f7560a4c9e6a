"""Fake Docker Hub: the Hub API (``hub.docker.com``), its registry's token realm, its registry.

=============  =======================================================================
module         serves
=============  =======================================================================
``models``     the Hub's state: accounts, organizations and their plans and roles,
               access tokens (personal and organization), sessions; scopes; one-time
               codes; each tag's last push and pull
``cloud``      the backend: the Hub API under ``/dockerhub``, its registry's token realm
               (``/dockerhub/token``), the registry front with the anonymous pull
               limit, lifecycle, state and ``/_sandbox/dockerhub/settings``
``retention``  the tags' records, the repositories and tags listings and the tag delete
               ``binderhub-registry prune`` uses; the sandbox clock
=============  =======================================================================

Every behaviour modelled, with its source. ``spec`` is the Docker Hub OpenAPI,
docker/docs ``content/reference/api/hub/latest.yaml`` (vendored in
``tests/data/dockerhub/``, which ``tests/test_dockerhub_openapi.py`` checks
this fake against); "assumption" marks what no public source shows.

=========================================  ============================================
behaviour                                  source
=========================================  ============================================
``POST /v2/auth/token`` {identifier,       spec (AuthCreateAccessToken); "expires in
secret} -> ``access_token``, valid 10 min  10 minutes" (AuthCreateTokenResponse); the
(``settings.session_ttl``); an expired     expired answer's wording: assumption
one is refused with 401
wrong secret: 401 ``detail`` "Incorrect    spec (PostUsersLoginErrorResponse example);
authentication credentials"                docker/hub-feedback#2166 (a captured 401)
two-factor account, password alone:        spec (PostUsersLogin: "Authentication failed
``/v2/users/login`` answers 401 with       or second factor required", login_2fa_token;
``login_2fa_token``;                       PostUsers2FALogin {login_2fa_token, code} ->
``/v2/users/2fa-login`` with the code      token); trufflehog's Docker Hub detector
gives ``token`` (a session as long as      ("valid credentials can still return 401 if
``/v2/auth/token``'s: assumption)          2FA is enabled"). ``/v2/auth/token`` answers
                                           the same 401: assumption
the code is a time-based one-time          spec (Users2FALoginRequest.code: "The
password: RFC 6238 (HMAC-SHA-1, 6 digits,  Time-based One-Time Password"); docker/docs
30-second steps) of the account's seed     security/2fa/_index.md (a TOTP authenticator
(the sandbox's credentials                 app, "the six-digit code", a code "each time
``dockerhub-totp``: ``totp_seed``), the    you sign in"); RFC 6238 4.1 (30 s, the
current step's or the one before; each     default step), 5.2 (one step back for delay;
code is taken once (that step and every    the same code never accepted twice).
earlier one are refused after it);         Docker's own window: assumption
``settings.totp_time_offset`` moves the
fake's clock
single sign-on enforced: the password is   spec (authentication: "The password
refused (401), a PAT works                 authentication type is not available if your
                                           organization has SSO enforced"; wording:
                                           assumption)
a session opened with a personal access    docker/hub-feedback#2478 (403 "token issued
token is refused on management routes      from personal access token is not allowed" on
(access tokens, organizations): 403        /v2/access-tokens), #2438 (body {"message",
``{"message", "errinfo": {}}``             "errinfo": {}}), #2127 ("PATs are not
                                           currently supported for API operations"); the
                                           spec labels no such route ``pat``
``/v2/access-tokens``: create (label       spec (createAccessTokenRequest: token_label
1-100 chars, scopes repo:admin, write,     1-100, the four scopes; accessToken; the
read, public_read), list (paginated,       list's ``token`` is ""; 204 on delete; a 400 is
token ""), get, patch, delete; 400 for a   ValueError ``text`` and ``fields``); ``message``
bad field                                  beside them: assumption
a token keeps the ``token_label`` and      spec (accessToken: token_label, created_at,
``created_at`` it was made with (what a    "2021-07-20T12:00:00.000000Z"; patch changes
run reads to prove a token its own); only  the label or is_active alone:
``PATCH`` changes the label                patchAccessTokenRequest)
organization members with roles owner,     spec (org_member_paginated; the ``role`` query
editor, member; the listing filters by     parameter: owner, editor, member; org_member's
``search`` and ``role``; its ``role``      ``role`` enum Owner, Member, Invitee, and the
field says Owner or Member; members pull,  CSV export's Permission Owner, Member: so an
editors and owners also push and delete    editor shows as Member, assumption); docker/docs
                                           enterprise/security/roles-and-permissions/
                                           core-roles.md (members cannot create
                                           repositories, editors and owners can; editors
                                           "delete repositories" and "Manage tags")
non-member 403, unknown organization 404   spec (forbidden, not_found responses)
``GET /v2/users/{user}`` (unused here)      not in the spec: assumption
organization plans free, team, business;   spec (org-access-tokens:
organization access tokens                 createOrgAccessTokenRequest;
(``dckr_oat_``, username the               createOrgAccessTokenResponse example
organization) created by an owner on team  ``dckr_oat_``); docker/docs
or business plans only                     security/access-tokens/organization-access-tokens.md
                                           (Team and Business; managed by owners). The
                                           refusal's wording on a free plan: assumption
an OAT's resources: at least one, each     the current description's
with type, path and scopes; TYPE_REPO:     orgAccessTokenResource (docs.docker.com,
repository scopes, a path in the           reference/api/hub/latest/schemas/
organization that names an existing        orgAccessTokenResource: "Must be an existing
repository or is a glob (``org/*``), or    repository name", glob patterns,
``*/*/public``; TYPE_ORG: organization     ``*/*/public``; createOrgAccessTokenRequest:
scopes, the organization as path; else     label and resources required, minItems 1;
400 (ValueError)                           the vendored excerpt predates it,
                                           tests/data/dockerhub/README.md); scope
                                           names: docker/docs
                                           security/access-tokens/reference.md. The
                                           TYPE_ORG path, the refusal's wording, and
                                           refusing the old example names
                                           ``repo-pull``, ``repo-push``: assumption
an organization access token's session is  docker/docs security/access-tokens/
refused on organization access token       reference.md (the endpoints an OAT may call:
management (403 "token issued from         namespace repositories only; legacy routes
organization access token is not           answer this 403); the spec labels no
allowed"): a token cannot make tokens      org-access-tokens route ``oat``
OAT repository scopes:                     docker/docs access-tokens/reference.md
``scope-image-pull`` pulls,                (Repository scopes: Image Push includes
``scope-image-push`` pushes and pulls,     Image Pull, Image Delete includes Image
``scope-image-delete`` adds delete; the    Push; "Read public repositories" in
others grant no registry action; an OAT    organization-access-tokens.md); the current
pulls public repositories outside its      spec's example ``scope-image-pull``
resources only through ``*/*/public``
an OAT pushes to a repository that does    docker/docs access-tokens/reference.md
not exist yet (creating it) only with the  ("Creating a repository requires the
organization scope                         organization-level Repository Create scope.
``scope-repository-create``                No repository scope grants it");
(``settings.oat_new_repositories``         orgAccessTokenResource (existing
"scope"); "never": no OAT push creates     repositories). That a push with that scope
one; "any": Image Push on a matching glob  creates the repository: assumption (no
creates it (a named relaxation)            public source shows it)
anonymous pulls are limited per client     docker/docs docker-hub/usage/pulls.md (100
address: at ``anonymous_pull_limit``        per 6 hours per IPv4 address or IPv6 /64
manifest GETs with an anonymous token in    anonymously; a pull is a manifest GET, a HEAD
``pull_window`` seconds (100, 21600), the   is not counted; past the limit 429
next answers 429 ``TOOMANYREQUESTS`` with   ``toomanyrequests``, with ``ratelimit-limit:
``ratelimit-limit`` and                     100;w=21600`` and ``ratelimit-remaining``)
``ratelimit-remaining: 0``
not modelled (assumptions): the            docker/docs docker-hub/usage/pulls.md (200
authenticated limit (200 per 6 hours on     per 6 hours for Personal); docker/docs
Personal) and the ``ratelimit-*`` headers   docker-hub/usage (up to 1 private repository
of answers below the limit; a Personal      on Personal)
account's one private repository (a
second private one is refused on push)
no retention policy, no API to set one:    issue 22 (Hub's API reference lists none); the
the sandbox clock moves, Hub deletes       fields and routes below are what a client uses
nothing (``clock_ahead``)
tags listing ``GET /v2/namespaces/{ns}/    spec at the vendored commit (outside the
repositories/{repo}/tags`` with            excerpt, tests/data/dockerhub/README.md);
``tag_last_pulled`` (null: never pulled),  docker/hub-tool pkg/hub/tags.go (the fields);
``tag_last_pushed``; a manifest GET by     docker/docs docker-hub/usage/pulls.md (a pull
tag is a pull, a manifest PUT a push       is a manifest GET). Details: ``retention.py``
``GET /v2/repositories/{ns}/``,            docker/hub-tool pkg/hub/repositories.go,
``DELETE /v2/repositories/{ns}/{repo}/     tags.go (RemoveTag). The 204: assumption.
tags/{tag}/`` (the tag only); a token      The refusal: a captured answer,
that may not delete (``repo:write``) is    fletchto99/nicotine-plus-docker pull request
refused 403 "access denied: insufficient   80 (``retention.INSUFFICIENT_SCOPE``)
scope"
the registry's 429 ``TOOMANYREQUESTS``     docker/docs docker-hub/usage/pulls.md (a pull
(pull limit) comes from a fault with       is a manifest GET, HEAD is not counted; 429
:data:`PULL_LIMIT_BODY`                    toomanyrequests when the limit is reached)
=========================================  ============================================
"""

from __future__ import annotations

from .cloud import DockerHub
from .models import (
    EDITOR_ORG,
    MEMBER_ORG,
    PULL_LIMIT_BODY,
    SEED_ORG,
    SEED_USER,
    SESSION_TTL,
    TOTP_STEP,
    totp,
)

__all__ = [
    "EDITOR_ORG",
    "MEMBER_ORG",
    "PULL_LIMIT_BODY",
    "SEED_ORG",
    "SEED_USER",
    "SESSION_TTL",
    "TOTP_STEP",
    "DockerHub",
    "totp",
]
