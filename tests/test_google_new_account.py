"""A service account just created is not ready everywhere at once.

Right after creation its reads may answer 403 as well as 404, a good read may be followed by a
bad one, and listing keys, creating a key and setting a policy may fail the same way
(terraform-provider-google#10227, PR #15677; magic-modules#14447). The fake's setting
``new_account_answers`` produces each case for a few calls; the notebook waits them out, and
only for accounts it made itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import PermissionDenied, Runner, sandbox
from binderhub_registry.errors import TransientCloudError
from binderhub_registry.providers import google

from .helpers import GOOGLE_DEFAULTS, grpc_calls, settings, up_to_the_key

pytestmark = pytest.mark.sandbox


def signed_in(run: Runner, tmp_path: Path, **overrides: Any) -> google.GoogleConnection:
    """A connection on the (fresh) sandbox, writing into tmp_path/values."""
    p = google.validate(GOOGLE_DEFAULTS, output_dir=str(tmp_path / "values"), **overrides)
    return run.step("sign in", google.sign_in, p)


def test_reads_right_after_creation_wait_for_three_good_ones_in_a_row(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    settings(
        fresh,
        "google",
        not_found_after_create=0,
        new_account_answers={"read": ["PERMISSION_DENIED", "OK", "NOT_FOUND", "OK", "OK"]},
    )
    conn = signed_in(run, tmp_path)
    run.step("api", google.enable_api, conn)
    run.step("account", google.ensure_service_account, conn)
    assert run.checklist.rows[-1].status == "created" and run.checklist.rows[-1].attempts == 1
    reads = grpc_calls(fresh, "GetServiceAccount")
    # the look-up (NOT_FOUND: none yet), then 403, good, 404, and three good ones in a row
    assert reads == [
        "grpc NOT_FOUND",
        "grpc PERMISSION_DENIED",
        "grpc OK",
        "grpc NOT_FOUND",
        "grpc OK",
        "grpc OK",
        "grpc OK",
        "grpc OK",  # then the step reads the mark back
    ]
    assert conn.settling.notes == {
        "the new service account binderhub-builder@binderhub-demo.iam.gserviceaccount.com is "
        "not readable everywhere yet": 2
    }


def test_keys_and_policies_of_a_new_account_are_waited_for(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """keys.list, keys.create, and a repository policy naming it."""
    settings(
        fresh,
        "google",
        new_account_answers={
            "keys": ["PERMISSION_DENIED", "NOT_FOUND", "OK", "NOT_FOUND"],
            "member": ["INVALID_ARGUMENT", "INVALID_ARGUMENT"],
        },
    )
    conn = signed_in(run, tmp_path)
    up_to_the_key(run, conn)  # the writer role: a repository policy naming the new account
    run.step("key", google.ensure_key, conn)
    assert all(row.attempts == 1 for row in run.checklist.rows)
    assert grpc_calls(fresh, "ListServiceAccountKeys")[:2] == [
        "grpc PERMISSION_DENIED",
        "grpc NOT_FOUND",
    ]
    assert grpc_calls(fresh, "CreateServiceAccountKey") == ["grpc NOT_FOUND", "grpc OK"]
    sets = [e["status"] for e in fresh.log() if e["path"].endswith(":setIamPolicy")]
    assert sets == [400, 400, 200]
    account = fresh.state()["google"]["service_accounts"]
    assert [len(a["keys"]) for a in account if a["email"] == conn.params.email] == [1]
    assert conn.settling.notes  # each wait was shown as the step's progress


def test_the_new_accounts_own_policy_is_waited_for(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """Keyless binds on the account's own policy (get, then set), right after creating it."""
    settings(
        fresh,
        "google",
        new_account_answers={"policy": ["NOT_FOUND", "PERMISSION_DENIED", "OK", "NOT_FOUND"]},
        workload_identity_pools=["binderhub-demo"],  # BinderHub's GKE cluster
    )
    conn = signed_in(run, tmp_path, auth="metadata")
    up_to_the_key(run, conn)
    run.step("workload identity", google.bind_workload_identity, conn)
    assert run.checklist.rows[-1].status == "created" and run.checklist.rows[-1].attempts == 1
    assert grpc_calls(fresh, "GetIamPolicy") == [
        "grpc NOT_FOUND",
        "grpc PERMISSION_DENIED",
        "grpc OK",
    ]
    assert grpc_calls(fresh, "SetIamPolicy") == ["grpc NOT_FOUND", "grpc OK"]


def test_a_403_on_an_account_this_run_did_not_make_is_not_waited_for(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    """An account found, not made: its 403 is a real refusal, said at once."""
    first = signed_in(run, tmp_path)
    up_to_the_key(run, first)
    settings(
        fresh,
        "google",
        grpc_faults=[{"method": "ListServiceAccountKeys", "code": "PERMISSION_DENIED"}],
    )
    again = signed_in(run, tmp_path)  # a rerun: it finds the account
    run.step("account", google.ensure_service_account, again)
    with pytest.raises(PermissionDenied):
        run.step("key", google.ensure_key, again)
    assert grpc_calls(fresh, "ListServiceAccountKeys") == ["grpc PERMISSION_DENIED"]
    assert again.settling.notes == {}


def test_a_new_account_that_never_settles_is_one_line(
    fresh: sandbox.Sandbox, run: Runner, tmp_path: Path
) -> None:
    settings(fresh, "google", not_found_after_create=10**6)
    conn = signed_in(run, tmp_path)
    conn.settling.account_deadline = 0.05  # the sandbox answers at once: a short deadline
    run.step("api", google.enable_api, conn)
    with pytest.raises(TransientCloudError) as err:
        google.ensure_service_account(conn)
    assert "\n" not in str(err.value)
    assert "was still not readable everywhere" in str(err.value)
    assert "rerun this notebook" in str(err.value)
