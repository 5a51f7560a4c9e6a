"""``make audit``: the reliability figures (bad inputs handled, faults survived, attacks held),
from the test suite's own lists.

Runs the tests that hold the bad-input and fault lists with pytest, counts their
cases by name, and prints per family: tried / handled (bad inputs) and tried /
survived (faults: the run ended verified with no duplicate, or stopped with one
line and left nothing orphaned, as each test asserts). A case counts as handled
only when its test passed. The same run scans for leaks: every file the tests'
runs wrote (notebook outputs, values, records) and each sandbox's log, for every
seeded secret (each field of ``credentials.json`` that is no public identifier) and every
created one (each 0600 file a run keeps them in: ``secret.yaml``'s passwords and a Google
key's ``private_key``, Docker Hub's prune token, OVHcloud's Harbor admin, ECR's keys), plain,
JSON-escaped and base64-encoded (alone, and as docker's ``user:password``; a PEM key's body too).

Usage: ``python tests/tools/audit.py [-n JOBS]`` (also loaded by pytest as the plugin
``audit``, through ``-p audit``, which does the counting and the scan).
Exit status 0 when every goal is met: >= 120 bad inputs across the notebooks and
verify, all handled; >= 30 fault scenarios, all survived; 0 leaks.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["ATTACKS", "BAD_INPUTS", "FAULTS", "Family", "main"]

ROOT = Path(__file__).resolve().parents[2]
GOAL_BAD_INPUTS = 120
GOAL_FAULTS = 30


@dataclass(frozen=True)
class Family:
    """A test function whose cases are one list of the audit; ``weight`` counts the inputs
    one case checks when it checks several (the contract's every-parameter test)."""

    label: str
    test: str  # file::function
    goal: bool = True  # counted toward the goal (the sandbox's own admin inputs are not)
    weight: str = ""  # "parameters": each case checks every parameter of its provider, + 1


BAD_INPUTS = [
    Family(
        "verify: bad values files",
        "tests/test_verify_inputs.py::test_bad_input_gets_one_line_that_says_what_to_fix",
    ),
    Family(
        "docker hub notebook: bad parameters",
        "tests/test_dockerhub_notebook.py::test_bad_input_fails_before_any_call",
    ),
    Family(
        "azure notebook: bad parameters",
        "tests/test_azure_notebook.py::test_bad_input_fails_before_any_call",
    ),
    Family(
        "azure: bad parameters, validated in-process",
        "tests/test_azure_notebook.py::test_validate_names_the_parameter_and_its_rule",
    ),
    Family(
        "contract: every parameter's rule, per provider",
        "tests/test_contract.py::test_every_parameter_rule_is_checked_before_any_call",
        weight="parameters",
    ),
    Family(
        "contract: a bad parameter stops the notebook",
        "tests/test_contract.py::test_bad_input_stops_the_notebook_before_any_call",
    ),
    Family(
        "harbor: bad parameters, validated in-process",
        "tests/test_harbor_notebook.py::test_bad_input_is_one_line_naming_the_parameter_and_creates_nothing",
    ),
    Family(
        "ovh: bad parameters, validated in-process",
        "tests/test_ovh_notebook.py::test_bad_input_is_one_line_naming_the_parameter_and_nothing_is_created",
    ),
    Family(
        "harbor and ovh: keep_replaced with rotate (one secret per robot)",
        "tests/test_rotation.py::test_keep_replaced_with_rotate_is_refused_before_any_call",
    ),
    Family("output_dir: unusable places, locks, records", "tests/test_output_dir.py"),
    Family(
        "pull_access: a bad value, one line before any call",
        "tests/test_verify_pull.py::test_bad_pull_access_is_one_line_before_any_call",
    ),
    Family(
        "pull_access = node where there is no node identity",
        "tests/test_verify_pull.py::test_node_is_refused_where_there_is_no_node_identity",
    ),
    Family(
        "verify: a broken jupyterhub.imagePullSecret",
        "tests/test_verify_pull.py::test_a_broken_pull_secret_is_one_line",
    ),
    Family(
        "azure: bad pull parameters (pull_access, aks_cluster)",
        "tests/test_azure_pull.py::test_bad_pull_access_fails_before_any_call",
    ),
    Family(
        "docker hub: pull_access node, a bad value",
        "tests/test_dockerhub_pull.py::test_pull_access_node_is_refused_in_one_line_before_any_call",
    ),
    Family(
        "docker hub: a bad pull_access",
        "tests/test_dockerhub_pull.py::test_a_bad_pull_access_is_refused_before_any_call",
    ),
    Family(
        "docker hub: a wrong brought read-only token",
        "tests/test_dockerhub_pull.py::test_a_wrong_brought_read_only_token_is_refused_in_one_line",
    ),
    Family(
        "google: bad pull parameters (pull_access, node_service_account)",
        "tests/test_google_pull.py::test_bad_pull_inputs_give_one_line_before_any_call",
    ),
    Family(
        "harbor: bad pull parameters (pull_robot_name)",
        "tests/test_harbor_pull.py::test_a_bad_pull_parameter_is_one_line_before_any_call",
    ),
    Family(
        "ovh: bad pull parameters (pull_robot_name)",
        "tests/test_ovh_pull.py::test_a_bad_pull_parameter_is_one_line_before_any_call",
    ),
    Family(
        "ecr: bad parameters, validated in-process",
        "tests/test_ecr_params.py::test_a_bad_input_is_one_line_naming_the_parameter_and_its_rule",
    ),
    Family(
        "ecr: keep_replaced with rotate (the helper takes one auth token)",
        "tests/test_ecr_params.py::test_rotate_with_keep_replaced_is_refused_the_helper_takes_one_token",
    ),
    Family(
        "ecr: no AWS credentials for real (one line on how to get them)",
        "tests/test_ecr_params.py::test_no_credentials_for_real_is_one_line_on_how_to_get_them",
    ),
    Family(
        "ecr: an account_id other than the signed-in identity's",
        "tests/test_ecr_notebook.py::test_an_account_id_other_than_the_caller_s_stops_before_any_change",
    ),
    Family(
        "ecr: a helper_name too long for the pull-only IAM user",
        "tests/test_ecr_pull_secret.py::test_a_helper_name_too_long_for_the_puller_is_refused_before_any_call",
    ),
    Family(
        "verify: ECR values without the helper's auth token",
        "tests/test_ecr_notebook.py::test_helper_values_without_the_helper_s_token_are_refused",
    ),
    Family(
        "verify: a helper inside the cluster, a bad --helper-url",
        "tests/test_ecr_notebook.py::test_verify_names_a_helper_inside_the_cluster_and_takes_its_forwarded_url",
    ),
    Family(
        "docker hub prune: a bad image_prefix",
        "tests/test_dockerhub_prune.py::test_a_bad_image_prefix_is_refused_before_any_call",
    ),
    Family(
        "docker hub prune: no token variable",
        "tests/test_dockerhub_prune.py::test_the_cli_without_the_token_variable_says_which_in_one_line",
    ),
    Family(
        "docker hub prune: an organization access token",
        "tests/test_dockerhub_prune.py::test_prune_refuses_an_organization_access_token_before_any_call",
    ),
    Family(
        "sandbox harbor: createUser's weak passwords and bad profiles (not in the goal)",
        "tests/test_harbor_sandbox.py::test_a_weak_password_or_a_bad_profile_is_refused",
        goal=False,
    ),
    Family(
        "sandbox admin API: bad fault specs (not in the goal)",
        "tests/test_sandbox_security.py::test_a_bad_fault_spec_is_refused_and_breaks_nothing",
        goal=False,
    ),
]
#: Attacks on what a run may overwrite or send, by category: each case held
#: (refused with one line, nothing overwritten or leaked) or not.
ATTACKS = [
    Family(
        "records tampered (corrupt, wrong types)",
        "tests/test_output_files.py::test_a_corrupt_record_stops_the_run_with_one_line",
    ),
    Family(
        "harbor: tampered records, echoed secrets, unexpected 2xx bodies",
        "tests/test_harbor_ours.py",
    ),
    Family("records tampered: ovh (another registry or Harbor user)", "tests/test_ovh_ours.py"),
    Family(
        "google: tampered records, deployments sharing a project or an account",
        "tests/test_google_ours.py",
    ),
    Family(
        "docker hub: tampered records, deployments sharing an account",
        "tests/test_dockerhub_ours.py",
    ),
    Family(
        "azure: tampered records, non-ASCII groups, operations that never finish",
        "tests/test_azure_ours.py",
    ),
    Family(
        "ecr: a same-named IAM role without this deployment's tag",
        "tests/test_ecr_notebook.py::test_a_same_named_role_without_our_tag_is_never_taken",
    ),
    Family(
        "ecr: a same-named pull-only IAM user without this deployment's tag",
        "tests/test_ecr_pull_secret.py::test_a_same_named_user_without_our_tag_is_never_taken_nor_deleted",
    ),
    Family(
        "ecr: an OIDC provider without this deployment's tag, kept by teardown",
        "tests/test_ecr_notebook.py::test_teardown_keeps_an_oidc_provider_without_our_tag",
    ),
    Family(
        "ecr: an OIDC provider another role trusts, kept by teardown",
        "tests/test_ecr_notebook.py::test_teardown_keeps_an_oidc_provider_another_role_trusts_and_says_so",
    ),
    Family(
        "directories shared between notebooks",
        "tests/test_output_files.py::test_another_notebooks_files_and_record_are_refused",
    ),
    Family(
        "a user's own files in output_dir",
        "tests/test_output_files.py::test_files_this_project_did_not_write_are_not_replaced",
    ),
    Family(
        "links planted at the values files",
        "tests/test_output_files.py::test_config_yaml_is_never_written_through_a_link",
    ),
    Family(
        "output_dir of another user, or writable by others",
        "tests/test_output_files.py::test_a_foreign_or_shared_output_dir_is_refused",
    ),
    Family(
        "secrets echoed by servers",
        "tests/test_verify_hostile.py::test_a_secret_echoed_in_a_reason_phrase_is_redacted",
    ),
    Family(
        "hostile registries: another origin's Location",
        "tests/test_verify_hostile.py::test_credentials_never_go_to_an_upload_url_on_another_origin",
    ),
    Family(
        "hostile registries: a byte at a time",
        "tests/test_verify_hostile.py::test_a_server_sending_a_byte_at_a_time_cannot_hold_verification",
    ),
    Family(
        "hostile registries: a huge body",
        "tests/test_verify_hostile.py::test_a_huge_body_is_not_read_whole",
    ),
    Family(
        "an image_prefix BinderHub's name rule changes",
        "tests/test_verify_hostile.py::test_an_image_prefix_binderhub_would_change_fails_before_any_request",
    ),
    Family(
        "hostile registries: garbage in a 200",
        "tests/test_verify_hostile.py::test_garbage_in_a_200_is_one_line_and_exit_1",
    ),
    Family(
        "docker hub prune token: another deployment's kept by teardown",
        "tests/test_dockerhub_prune.py::test_teardown_leaves_another_deployments_prune_token",
    ),
]
FAULTS = [
    Family(
        "docker hub notebook: fault list",
        "tests/test_dockerhub_notebook.py::test_faults_are_retried_without_duplicates",
    ),
    Family(
        "docker hub notebook: crash, then rerun",
        "tests/test_dockerhub_notebook.py::test_crash_half_way_then_rerun",
    ),
    Family(
        "azure notebook: fault list",
        "tests/test_azure_notebook.py::test_faults_are_retried_without_duplicates",
    ),
    Family(
        "ovh: 503 twice, then 429 (python-ovh never retries)",
        "tests/test_ovh_notebook.py::test_503_twice_and_429_are_retried_without_duplicates",
    ),
    Family(
        "ovh: an answer slower than the client's timeout",
        "tests/test_ovh_notebook.py::test_a_slow_answer_past_the_client_timeout_is_retried",
    ),
    Family(
        "ovh: a registry creation whose answer was lost",
        "tests/test_ovh_notebook.py::test_a_lost_creation_answer_is_found_by_name_and_counted_as_ours",
    ),
    Family(
        "contract: crash half-way, then rerun",
        "tests/test_contract.py::test_crash_half_way_then_rerun_leaves_no_duplicates",
    ),
    Family(
        "google auth switch: a crash at each record write, then rerun",
        "tests/test_google_keyless.py::test_a_crash_at_any_record_write_then_a_rerun_completes",
    ),
    Family(
        "google auth switch: a binding whose answer was lost",
        "tests/test_google_keyless.py::test_a_binding_whose_answer_was_lost_is_still_recorded",
    ),
    Family(
        "google: a stale etag on the binding's removal",
        "tests/test_google_keyless.py::test_only_the_recorded_member_goes_and_a_stale_etag_is_read_again",
    ),
    Family(
        "rotation stopped half-way, then a plain run (docker hub, azure)",
        "tests/test_rotation.py::test_a_plain_run_after_a_rotation_stopped_keeps_the_stored_token",
    ),
    Family(
        "azure: a rotation stopped before its values, then a plain run",
        "tests/test_rotation.py::test_azure_a_plain_run_after_a_rotation_stopped_before_its_values_keeps_the_stored_one",
    ),
    Family(
        "azure: a pull identity's lost answer, then a rerun",
        "tests/test_azure_pull.py::test_a_lost_answer_then_a_rerun_leaves_no_duplicate_and_teardown_finds_it",
    ),
    Family(
        "docker hub: a stop between creating and recording the read-only token",
        "tests/test_dockerhub_pull.py::test_a_stop_between_creating_and_recording_leaves_no_duplicate",
    ),
    Family(
        "docker hub: a stop before writing, then teardown",
        "tests/test_dockerhub_pull.py::test_a_stop_before_writing_then_teardown_deletes_the_pending_read_only_token",
    ),
    Family(
        "google: a pull key's lost answer, then a rerun",
        "tests/test_google_pull.py::test_a_lost_pull_key_answer_then_a_rerun_leaves_one_key",
    ),
    Family(
        "google: a pull account's lost answer",
        "tests/test_google_pull.py::test_a_lost_pull_account_answer_is_recorded_so_teardown_removes_it",
    ),
    Family(
        "google: a reader binding's lost answer",
        "tests/test_google_pull.py::test_a_lost_answer_to_the_reader_binding_is_retried_recorded_and_not_duplicated",
    ),
    Family(
        "harbor: a crash between the pull robot's creation and its record",
        "tests/test_harbor_pull.py::test_a_crash_between_create_and_record_leaves_no_duplicate",
    ),
    Family(
        "ovh: a crash between the pull robot's creation and its record",
        "tests/test_ovh_pull.py::test_a_crash_between_create_and_record_leaves_no_duplicate",
    ),
    Family(
        "ecr: IAM's Throttling, retried by the step runner",
        "tests/test_ecr_notebook.py::test_throttling_is_retried_by_the_runner",
    ),
    Family(
        "ecr: ECR's ThrottlingException, retried by the step runner",
        "tests/test_ecr_notebook.py::test_ecr_s_throttling_exception_is_retried_by_the_runner",
    ),
    Family(
        "ecr: a role that propagates late, waited for without duplicates",
        "tests/test_ecr_notebook.py::test_a_role_that_propagates_late_is_waited_for_without_duplicates",
    ),
    Family(
        "ecr: a role not usable yet (IAM's eventual consistency)",
        "tests/test_ecr_notebook.py::test_a_role_not_usable_yet_is_waited_for",
    ),
    Family(
        "ecr: a 12-hour push token expired mid-run",
        "tests/test_ecr_notebook.py::test_a_push_token_that_expired_mid_run_is_refused_and_a_fresh_one_works",
    ),
    Family(
        "ecr: a repository gone before the push (RepositoryNotFoundException)",
        "tests/test_ecr_notebook.py::test_a_repository_gone_before_the_push_is_named",
    ),
    Family(
        "ecr: an unreadable 5xx and a busy helper",
        "tests/test_ecr_notebook.py::test_unreadable_5xx_and_a_busy_helper_are_retried",
    ),
    Family(
        "ecr: a new pull-only key AWS does not know yet",
        "tests/test_ecr_pull_secret.py::test_a_new_key_aws_does_not_know_yet_is_retried_and_kept",
    ),
    Family(
        "ecr sandbox: ECR's ThrottlingException, retried by botocore",
        "tests/test_ecr_sandbox.py::test_throttling_is_answered_as_aws_does_and_botocore_retries",
    ),
    Family(
        "ecr sandbox: an injected fault with AWS's throttling body, retried by botocore",
        "tests/test_ecr_sandbox.py::test_a_fault_with_aws_s_throttling_body_is_retried_too",
    ),
    Family(
        "ecr sandbox: throttling on BinderHub's image check, retried by the helper",
        "tests/test_ecr_sandbox.py::test_the_helper_retries_throttling_as_the_go_sdk_does",
    ),
    Family(
        "ecr sandbox: a role not propagated yet, then BinderHub's image check works",
        "tests/test_ecr_sandbox.py::test_a_role_not_propagated_yet_is_refused_until_it_is",
    ),
    Family(
        "ecr sandbox: a 12-hour token expired, then a fresh one pushes",
        "tests/test_ecr_sandbox.py::test_a_token_expires_after_12_hours_on_the_sandbox_clock",
    ),
    Family(
        "docker hub prune: Hub's transient answers",
        "tests/test_dockerhub_prune.py::test_the_cli_retries_hubs_transient_answers",
    ),
    Family(
        "each creating call x fault kind (test_faults.py, in-process)",
        "tests/test_faults.py::test_a_fault_on_a_creating_call_is_survived_or_stops_cleanly",
    ),
    Family(
        "the same, through papermill (test_faults.py)",
        "tests/test_faults.py::test_a_fault_in_the_notebook_is_survived_or_stops_with_one_line",
    ),
]


# --- the pytest plugin (-p audit) ----------------------------------------------------------
_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each case's outcome: failed if any phase failed, else its call's outcome."""
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.when == "call" or (report.skipped and report.nodeid not in _outcomes):
        _outcomes.setdefault(report.nodeid, report.outcome)


def _forms(name: str, secret: str, user: str = "") -> Iterator[tuple[str, str]]:
    yield name, secret
    yield f"{name} (JSON)", json.dumps(secret)[1:-1]
    yield f"{name} (base64)", base64.b64encode(secret.encode()).decode().rstrip("=")
    if user:
        auth = base64.b64encode(f"{user}:{secret}".encode()).decode().rstrip("=")
        yield f"{name} (docker auth)", auth
    if "-----BEGIN" in secret:
        # a PEM key (Google's private_key): each line of its body, however the key was quoted
        # or escaped, or printed in part
        for line in secret.splitlines():
            if len(line) >= 32 and not line.startswith("-----"):
                yield f"{name} (PEM body)", line


def _json_key(name: str, secret: str) -> list[tuple[str, str]]:
    """A Google JSON key's ``private_key`` (the password ``_json_key`` pushes with), in its
    own forms: a leak of the key alone does not hold the whole JSON."""
    try:
        key = json.loads(secret)
    except ValueError:
        return []
    pem = key.get("private_key") if isinstance(key, dict) else None
    return list(_forms(f"{name}'s private_key", pem)) if isinstance(pem, str) else []


#: Fields of the seeded accounts (``credentials.json``) that name an account or a key and are
#: shown on purpose (outputs print them, requests carry them in clear): every OTHER field is a
#: secret the scan looks for, so a backend's new credential is looked for without a change here.
_SEEDED_PUBLIC = frozenset(
    {
        "username",
        "user",
        "tenant_id",
        "client_id",
        "subscription_id",
        "project_id",
        "client_email",
        "private_key_id",  # Google: the key's id, the ``kid`` of every signed assertion
        "service_name",
        "account_id",
        "access_key_id",  # AWS: in clear in every SigV4 Authorization header
        "application_key",  # OVH: in clear in every request's X-Ovh-Application header
    }
)


def seeded_secrets(seeded: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """(what, form) for each secret of the seeded accounts: every field not in
    :data:`_SEEDED_PUBLIC` (OVH's application secret and consumer key, Google's private key,
    Docker Hub's passwords and TOTP seed, Azure's client secret, ECR's secret key, Harbor's
    admin password, the sandbox's admin token)."""
    found: list[tuple[str, str]] = []
    for account, values in seeded.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if key not in _SEEDED_PUBLIC and isinstance(value, str) and len(value) >= 8:
                found += _forms(f"seeded {account}.{key}", value, values.get("username", ""))
    return found


def _helper_secrets(directory: Path) -> Iterator[tuple[str, str]]:
    """ECR's secrets a run writes beside ``secret.yaml``, each in a file of its own (0600):
    the helper user's key in ``registry-helper.yaml``, the pull-only user's in
    ``pull-secret-cronjob.yaml``."""
    import yaml

    files = {"registry-helper.yaml": "helper key", "pull-secret-cronjob.yaml": "pull-only key"}
    for name, what in files.items():
        path = directory / name
        if not path.is_file() or path.is_symlink():
            continue
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        except Exception:  # not one a run wrote
            continue
        for document in documents:
            env = {e.get("name"): e.get("value") for e in document.get("extraEnv") or []}
            data = document.get("stringData") or {}
            for source in (env, data):
                secret = str(source.get("AWS_SECRET_ACCESS_KEY") or "")
                if len(secret) >= 8:
                    yield f"created {what} ({directory.name})", secret


def _other_secrets(directory: Path, user: str) -> Iterator[tuple[str, str]]:
    """The secrets a run writes in 0600 files of their own beside ``secret.yaml``: Docker Hub's
    prune token (``prune-secret.yaml``, a Secret's ``stringData.token``) and the Harbor system
    admin OVHcloud made for the notebook (``harbor-admin.json``'s password)."""
    import yaml

    path = directory / "prune-secret.yaml"
    if path.is_file() and not path.is_symlink():
        try:
            token = str(yaml.safe_load(path.read_text())["stringData"]["token"])
        except Exception:  # not one a run wrote
            token = ""
        if len(token) >= 8:
            yield from _forms(f"created prune token ({directory.name})", token, user)
    path = directory / "harbor-admin.json"
    if path.is_file() and not path.is_symlink():
        try:
            admin = json.loads(path.read_text())
            password, name = str(admin["password"]), str(admin.get("username", ""))
        except Exception:  # not one a run wrote
            password = name = ""
        if len(password) >= 8:
            yield from _forms(f"created Harbor admin password ({directory.name})", password, name)


#: The files a run keeps its created secrets in (0600), each parsed by :func:`_secrets`.
_RUN_SECRET_FILES = (
    "secret.yaml",
    "prune-secret.yaml",
    "harbor-admin.json",
    "registry-helper.yaml",
    "pull-secret-cronjob.yaml",
)


def _secrets(sandbox_dir: Path, written: Path) -> list[tuple[str, str]]:
    """(what, form) for each seeded and each created secret, each form to look for."""
    import yaml

    try:
        seeded = json.loads((sandbox_dir / "credentials.json").read_text())
    except (OSError, ValueError):
        seeded = {}
    found = seeded_secrets(seeded if isinstance(seeded, dict) else {})
    directories = {p.parent for name in _RUN_SECRET_FILES for p in written.rglob(name)}
    for directory in sorted(directories):
        # a run's, beside its record or its notebook's output; not an input a test wrote
        # (verify's bad inputs put their own test secret in config.yaml on purpose)
        ran = (directory / "binderhub-registry.json").exists() or any(
            directory.parent.glob("*run*.*")
        )
        if not ran:
            continue
        for what, secret in _helper_secrets(directory):
            found += _forms(what, secret)
        path = directory / "secret.yaml"
        if not path.is_file() or path.is_symlink():  # verify's bad inputs: a FIFO would block
            found += _other_secrets(directory, "")
            continue
        try:
            values = yaml.safe_load(path.read_text())
            registry = values["registry"]
            password, user = str(registry["password"]), str(registry.get("username", ""))
        except Exception:  # the bad inputs of verify's tests: no secret of a run
            found += _other_secrets(directory, "")
            continue
        found += _other_secrets(directory, user)
        if len(password) >= 8:
            found += _forms(f"created password ({directory.name})", password, user)
            found += _json_key(f"created key ({directory.name})", password)
        # ECR: BinderHub holds the registry helper's auth token, not a registry password
        helper = (values.get("config") or {}).get("ExternalRegistryHelper") or {}
        token = str(helper.get("auth_token") or "") if isinstance(helper, dict) else ""
        if len(token) >= 8:
            found += _forms(f"created helper auth token ({directory.name})", token)
        pull = (values.get("jupyterhub") or {}).get("imagePullSecret") or {}
        if isinstance(pull, dict) and len(str(pull.get("password", ""))) >= 8:
            # user pods' pull-only credential: a secret like the push one
            found += _forms(
                f"created pull password ({directory.name})",
                str(pull["password"]),
                str(pull.get("username", "")),
            )
            found += _json_key(f"created pull key ({directory.name})", str(pull["password"]))
    return found


#: Files that hold secrets on purpose (0600), and so are not outputs: a run's
#: (:data:`_RUN_SECRET_FILES`), the sandbox's seeded ones and docker's login.
_SECRET_FILES = {*_RUN_SECRET_FILES, "credentials.json", "config.json"}


def _scan(paths: list[Path], secrets: list[tuple[str, str]]) -> tuple[int, list[str]]:
    scanned, leaks = 0, []
    for path in paths:
        if path.name in _SECRET_FILES or not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_bytes()[: 20 << 20].decode("utf-8", "replace")
        except OSError:
            continue
        scanned += 1
        for what, form in secrets:
            if form in text:
                leaks.append(f"{what} in {path.name}")  # never the secret itself
    return scanned, leaks


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Workers (or a serial run): scan what this process's tests wrote, before the root
    conftest stops its sandbox. The controller: write the outcomes."""
    out = Path(os.environ["BHR_AUDIT_DIR"])
    worker = getattr(session.config, "workerinput", None)
    if worker is None:
        (out / "outcomes.json").write_text(json.dumps(_outcomes))
    if worker is None and session.config.pluginmanager.hasplugin("dsession"):
        return  # the controller of xdist workers: they scan
    from binderhub_registry import sandbox

    basetemp = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    box_dir = sandbox.sandbox_dir()
    secrets = _secrets(box_dir, basetemp)
    files = [*basetemp.rglob("*"), box_dir / "sandbox.log"]
    scanned, leaks = _scan(files, secrets)
    name = worker["workerid"] if worker else "main"
    report = {"secrets": len({w for w, _ in secrets}), "files": scanned, "leaks": leaks}
    (out / f"leaks-{name}.json").write_text(json.dumps(report))


# --- the command ---------------------------------------------------------------------------
def _count(family: Family, outcomes: dict[str, str]) -> tuple[int, int]:
    prefix = family.test + ("[" if "::" in family.test else "::")
    cases = {k: v for k, v in outcomes.items() if k == family.test or k.startswith(prefix)}
    cases = {k: v for k, v in cases.items() if v != "skipped"}
    if family.weight != "parameters":
        return len(cases), sum(v == "passed" for v in cases.values())
    from binderhub_registry import providers

    tried = handled = 0
    for nodeid, outcome in cases.items():
        key = nodeid.rsplit("[", 1)[-1].rstrip("]")
        weight = len(providers.get(key).PARAMETERS) + 1  # + the rotate-with-teardown rule
        tried += weight
        handled += weight if outcome == "passed" else 0
    return tried, handled


def _table(title: str, rows: list[tuple[str, int, int]], word: str) -> None:
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    for label, tried, ok in rows:
        print(f"  {label.ljust(width)}  {ok:4d} / {tried:<4d} {word}")


def main(argv: list[str] | None = None) -> int:
    """Run the families' tests, print the figures, exit 0 when every goal is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--jobs", default=os.environ.get("JOBS", "2"), help="xdist workers")
    args = parser.parse_args(argv)
    families = BAD_INPUTS + FAULTS + ATTACKS
    with tempfile.TemporaryDirectory(prefix="bhr-audit-") as work:
        env = os.environ | {
            "BHR_AUDIT_DIR": work,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "audit",
            "-q",
            "--no-header",
            "-p",
            "no:randomly",
            "-n",
            str(args.jobs),
            "--basetemp",
            str(Path(work) / "tmp"),
            *sorted({f.test for f in families}),
        ]
        print("$", " ".join(command[2:]), flush=True)
        done = subprocess.run(command, cwd=ROOT, env=env, check=False)
        outcomes: dict[str, str] = json.loads((Path(work) / "outcomes.json").read_text())
        scans = [json.loads(p.read_text()) for p in Path(work).glob("leaks-*.json")]

    bad = [(f.label, *_count(f, outcomes)) for f in BAD_INPUTS]
    faults = [(f.label, *_count(f, outcomes)) for f in FAULTS]
    _table("Bad inputs (handled: one line saying what to fix, nothing created)", bad, "handled")
    _table(
        "Faults (survived: verified with no duplicate, or one line and nothing orphaned)",
        faults,
        "survived",
    )
    attacks = [(f.label, *_count(f, outcomes)) for f in ATTACKS]
    _table(
        "Attacks on what a run overwrites or sends (held: refused, nothing lost)", attacks, "held"
    )
    goal_bad = [(t, h) for f, (_, t, h) in zip(BAD_INPUTS, bad, strict=True) if f.goal]
    bad_tried, bad_handled = sum(t for t, _ in goal_bad), sum(h for _, h in goal_bad)
    fault_tried, fault_ok = sum(r[1] for r in faults), sum(r[2] for r in faults)
    leaks = [leak for scan in scans for leak in scan["leaks"]]
    files = sum(scan["files"] for scan in scans)
    secrets = sum(scan["secrets"] for scan in scans)
    print("\nFigures")
    print(f"  bad inputs tried / handled (notebooks and verify): {bad_tried} / {bad_handled}")
    print(f"  faults tried / survived with no duplicates:         {fault_tried} / {fault_ok}")
    attack_tried, attack_held = sum(r[1] for r in attacks), sum(r[2] for r in attacks)
    print(f"  attacks tried / held (overwrites and sends):       {attack_tried} / {attack_held}")
    print(
        f"  secrets found in outputs: {len(leaks)} "
        f"({secrets} secrets looked for in {files} files and sandbox logs)"
    )
    for leak in sorted(set(leaks)):
        print(f"    LEAK: {leak}")
    met = (
        bad_tried >= GOAL_BAD_INPUTS
        and bad_handled == bad_tried
        and fault_tried >= GOAL_FAULTS
        and fault_ok == fault_tried
        and attack_held == attack_tried
        and not leaks
        and bool(scans)
    )
    print(
        f"  goals (>= {GOAL_BAD_INPUTS} bad inputs all handled, >= {GOAL_FAULTS} faults all "
        f"survived, 0 leaks): {'met' if met else 'NOT met'} (pytest exit {done.returncode})"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
