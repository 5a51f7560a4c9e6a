"""Fake OVHcloud API: signed calls, Public Cloud managed private registries, their Harbor users.

==========  ================================================================================
module      serves
==========  ================================================================================
``models``  the account's state: API keys, consumer key rights, plans, registries, users
``api``     ``/ovh/1.0`` (python-ovh's endpoint): ``/auth/time``, signature checks, OVH's
            error bodies, the ``containerRegistry`` routes
``cloud``   the backend: lifecycle, status progression, a Harbor per delivered registry,
            ``/_sandbox/ovh/settings``
==========  ================================================================================

Every behaviour modelled, with its source. ``schema`` is OVH's API schema
(eu.api.ovh.com/1.0/cloud.json and auth.json; the excerpt vendored in
``tests/data/ovh/cloud-containerRegistry.json`` is what ``tests/test_ovh_sandbox.py``
checks every answer against); "assumption" marks what no public source shows.

============================================  ==================================================
behaviour                                     source
============================================  ==================================================
``GET /auth/time``, unsigned, answers a       schema (auth.json: ``noAuthentication``,
bare integer                                  ``long``); ovh/python-ovh ``client.py``
                                              (``time_delta``)
signed calls: ``X-Ovh-Application``,          ovh/python-ovh 1.2.0 ``client.py`` (``raw_call``:
``X-Ovh-Consumer``, ``X-Ovh-Timestamp``,      the headers and the signed string; the body is
``X-Ovh-Signature`` = ``$1$`` + sha1 of       compact JSON as sent); OVH's API guide (first
AS+CK+METHOD+full URL+body+timestamp, joined  steps with the API)
by ``+``
wrong signature (e.g. a wrong application     ovh/php-ovh issues 62 and 80, ovh/java-ovh issue 4
secret): 400 ``{"errorCode":                  (the body captured); ovh/python-ovh issue 103
"INVALID_SIGNATURE", "httpCode": "400 Bad     (python-ovh raises BadParametersError "Invalid
Request", "message": "Invalid signature"}``   signature"); mlabouardy/komiser issue 1490 (2024:
plus ``class`` Client::BadRequest             ``Client::BadRequest: "Invalid signature"``)
unknown consumer key: 403                     ovh/php-ovh issue 56 (captured); python-ovh maps
``INVALID_CREDENTIAL`` "This credential is    it to InvalidCredential
not valid"
call outside the consumer key's rights: 403   ovh/python-ovh issues 86 and 141 (NotGrantedCall
``NOT_GRANTED_CALL`` "This call has not been  "This call has not been granted"); the rights are
granted"                                      OVH's access rules (method + path with ``*``)
unknown application key: 403 ``INVALID_KEY``  python-ovh ``client.py`` maps INVALID_KEY; the
"Invalid application key"; no consumer key:   wording, and NOT_CREDENTIAL's, assumption
403 ``NOT_CREDENTIAL``
business errors ``{"class": "Client::...",    DESIGN.md section 10; ovh/ovhcloud-cli issue 130
"message"}``; a project the account does not  (``Client::NotFound: "This service does not
have: 404 "This service does not exist"       exist"`` on capabilities/containerRegistry)
``GET .../capabilities/containerRegistry``:   schema (cloud.containerRegistry.Capability, Plan,
``[{regionName, plans: [{id, name, code,      Limits, Features); ovh/ovhcloud-cli
createdAt, updatedAt, registryLimits:         ``internal/cmd/cloud_reference_test.go`` (SMALL and
{imageStorage, parallelRequest}, features:    MEDIUM ids, codes and limits captured); LARGE's
{vulnerability}}]}]``                         figures: assumption (OVHcloud's product page)
``POST .../containerRegistry`` ``{name,       schema (cloud.ProjectContainerRegistryCreation,
region, planID?}`` -> 200 Registry,           Registry); ovh/ovhcloud-cli
INSTALLING; a missing field, unknown region   ``cloud_container_registry_test.go`` (200, status
or plan: 400                                  INSTALLING); the 400 wordings: assumption
Registry ``{id, name, projectID, region,      schema; ``version`` 2.12.2 as captured by
size, status, createdAt, updatedAt, url,      ovhcloud-cli; ``url`` empty until delivered:
version}``                                    assumption (real:
                                              ``https://<id>.<region>.container-registry.ovh.net``,
                                              terraform-provider-ovh parses it)
a READY registry is a Harbor: its ``url``     OVH's MPR guides (a Harbor per registry; "Harbor
serves Harbor's API v2.0, token service and   API" is the registry's URL); the Harbor itself is
registry (one ``HarborInstance`` per          ``sandbox/harbor`` (its own table of sources);
registry); the OVH users are its local        the fake Harbor starts with no ``library``
users; deleting a user removes it there       project here: assumption
status INSTALLING -> DELIVERING -> READY      ovh/terraform-provider-ovh
over polls; DELETE (204) -> DELETING -> 404   ``resource_cloud_project_containerregistry.go``
                                              (Pending INSTALLING, Target READY; delete waits
                                              DELETING then 404), issue 1200 and PR 1202
                                              (DELIVERING, since 2026-01); 204: ovhcloud-cli's
                                              delete test; real creation takes minutes
``POST .../users`` ``{login?, email?}`` ->    schema (ProjectContainerRegistryUsersCreation,
``{id, user, email, password}``, the          User: ``password`` only there); ovhcloud-cli
password shown only there; listing and GET    (users create/list tests); the email is
omit it; no email: kept empty; a user         optional in the schema, required by
before READY: 400, a taken login: 409         Terraform's ``containerregistry_user``
                                              (terraform-provider-ovh PR #1037): what OVH
                                              does without one, and the 400 and 409:
                                              assumption
a user the API makes is no Harbor system      schema: ``PUT .../users/{userID}/setAsAdmin``
admin until ``PUT .../setAsAdmin`` (200,      "Set the user as Admin" (void; answered 200
void): Harbor's ``sysadmin_flag`` false, so   ``null``: assumption); that the Control
it may not create projects or robots          Panel's user is an admin (ovh/manager
                                              ``pci-private-registry``) may come from a
                                              further call (issue 19, point 1)
Registry ``iamEnabled``; the setting          terraform-provider-ovh
``iam_enabled`` turns it on for every         ``resource_cloud_project_containerregistry_iam``
registry: its Harbor then takes no local     (reads ``iam_enabled`` off GET .../{registryID},
user's password, as with OIDC (assumption)    POST/DELETE .../iam, ``delete_users``: IAM
                                              replaces local users); not in the vendored
                                              2024 schema
a registry's Harbor answers ``GET             sandbox/harbor's table (systeminfo, OIDC);
/api/v2.0/systeminfo``; the settings          OVH's OIDC is set with .../openIdConnect
``harbor_version`` (also the registry's       (schema); mybinder.org-deploy #2522 (OVH ran
``version``, without ``v`` and commit) and    Harbor 2.0.1 in 2022, robots came with an
``auth_mode`` (``oidc_auth``: an OIDC         upgrade); ovh/public-cloud-roadmap #597
configuration) rehearse an old or an OIDC     (2.6 in 2024); ovhcloud-cli (2.12.2 captured)
Harbor
``GET .../ipRestrictions/management`` and     schema (IPRestrictions: ipBlock, description,
``.../registry``: ``[{ipBlock, description,   createdAt, updatedAt); a new registry has none:
createdAt, updatedAt}]`` from the settings    assumption; the fake does not enforce them
``ip_restrictions_management`` and            (assumption: what a blocked caller gets is not
``ip_restrictions_registry`` (default none)   documented)
Registry ``size``: bytes used (setting        schema (``size``: "Current size of the
``used_bytes``, default 0)                    registry (bytes)")
the setting ``consumer_key_pending``: every   ovh/php-ovh #62 (a consumer key "on pending
signed call is 400 INVALID_SIGNATURE, as      validation" answered INVALID_SIGNATURE); the
for a consumer key not validated yet          seeded key is validated (createToken validates
                                              it at once)
python-ovh never retries; 429 and 5xx come    python-ovh ``client.py`` (no retry; other
from the sandbox's fault API                  statuses raise APIError)
============================================  ==================================================

Ids are deterministic (uuid5 over a counter), so two runs from the seed give the
same ids. ``/_sandbox/ovh/settings``: ``installing_polls``, ``delivering_polls``,
``deleting_polls`` (GETs spent in each status, default 1),
``harbor_clock_offset_days`` (how far the registries' Harbors' clocks run ahead, default 0:
robots expire), and what the account's registries are like: ``harbor_version``,
``auth_mode``, ``iam_enabled``, ``ip_restrictions_management``, ``ip_restrictions_registry``,
``used_bytes``, and ``consumer_key_pending`` (defaults: a current Harbor with local users,
no IAM, no restriction, nothing used, the consumer key validated).
"""

from __future__ import annotations

from .cloud import OvhCloud
from .models import ACCESS_RULES, OTHER_PROJECT, PLANS, REGIONS, SEED_PROJECT, seed_credentials

__all__ = [
    "ACCESS_RULES",
    "OTHER_PROJECT",
    "PLANS",
    "REGIONS",
    "SEED_PROJECT",
    "OvhCloud",
    "seed_credentials",
]
