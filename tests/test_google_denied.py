"""A signed-in pull without permission is Artifact Registry's 403 DENIED, not a 401.

Google's token endpoint answers a caller who may not pull (no role, or no such repository) with
403 ``DENIED`` "Permission "artifactregistry.repositories.downloadArtifacts" denied on resource
"projects/<p>/locations/<l>/repositories/<r>" (or it may not exist)" (DESIGN.md section 9;
docker prints ``denied: Permission ...``, googleapis/python-run#54), not a token for nothing
and then a 401. The client names the permission and what grants it.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from binderhub_registry import Runner, VerificationFailed, sandbox
from binderhub_registry.providers import google
from binderhub_registry.providers.google.iam import _revoke
from binderhub_registry.verify import verify

from .helpers import up_to_the_key

pytestmark = pytest.mark.sandbox

RESOURCE = "projects/binderhub-demo/locations/us-central1/repositories/{}"


@pytest.fixture
def conn(conn: google.GoogleConnection, run: Runner) -> google.GoogleConnection:
    """A key-mode run up to the key: the account has the writer role."""
    up_to_the_key(run, conn)
    run.step("key", google.ensure_key, conn)
    return conn


def token(box: sandbox.Sandbox, conn: google.GoogleConnection, repository: str) -> Any:
    values = conn.values()
    assert values is not None
    return requests.get(
        f"{values.registry_url}/v2/token",
        params={"scope": f"repository:binderhub-demo/{repository}/img:pull"},
        auth=(values.username, values.password.reveal()),
        verify=box.ca_file,
        timeout=10,
    )


@pytest.mark.parametrize("repository", ["binderhub", "someone-elses"])
def test_a_token_for_what_the_key_may_not_pull_is_403_denied(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox, repository: str
) -> None:
    _revoke(conn, google.ROLE, conn.params.member)  # the account keeps its key, loses its role
    r = token(fresh, conn, repository)
    assert r.status_code == 403
    (error,) = r.json()["errors"]
    assert error["code"] == "DENIED"
    assert error["message"] == (
        'Permission "artifactregistry.repositories.downloadArtifacts" denied on resource '
        f'"{RESOURCE.format(repository)}" (or it may not exist)'
    )


def test_binderhubs_check_says_which_permission_is_denied(
    conn: google.GoogleConnection, fresh: sandbox.Sandbox
) -> None:
    values = conn.values()
    assert values is not None
    _revoke(conn, google.ROLE, conn.params.member)
    with pytest.raises(VerificationFailed) as err:
        verify(values, ca_bundle=fresh.ca_file, hints=conn.HINTS)
    assert err.value.check == "BinderHub's image check"
    diagnosis = err.value.diagnosis
    wanted = 'denied: Permission "artifactregistry.repositories.downloadArtifacts" denied'
    assert wanted in diagnosis
    assert "needs roles/artifactregistry.reader on the repository" in diagnosis
    assert "HTTP 403" not in diagnosis and "\n" not in diagnosis
