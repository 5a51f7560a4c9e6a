"""JSON keys: BinderHub's and user pods', kept, rotated and retired (the guide's key flow)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import CloudError, PermissionDenied
from ...secrets import Secret
from ...steps import Result
from ..contract import creates, if_present
from .accounts import _get_account, _own_named
from .errors import _if_present, _mapped
from .params import _MARKS, USERNAME
from .session import GoogleSession, _keep, _retire_later, _retiring, _retiring_keys


def _user_keys(conn: GoogleSession, name: str | None = None) -> list[str]:
    """The user-managed key ids of the account ``name`` (BinderHub's when None)."""
    from google.cloud.iam_admin_v1 import types

    with _mapped():
        found = conn.iam.list_service_account_keys(
            name=name or conn.account_name,
            key_types=[types.ListServiceAccountKeysRequest.KeyType.USER_MANAGED],
        )
    return [k.name.rpartition("/")[2] for k in found.keys]


def _delete_key(conn: GoogleSession, key_id: str, account: str | None = None) -> None:
    """Delete a key of ``account`` (a resource name; BinderHub's when None); gone is fine."""
    name = f"{account or conn.account_name}/keys/{key_id}"
    _if_present(conn.iam.delete_service_account_key, name=name)


def _key_id(stored: Secret | None, email: str) -> str | None:
    """The key id of a stored key file JSON, when it is a key of ``email``."""
    if stored is None:
        return None
    try:
        info = json.loads(stored.reveal())
    except ValueError:
        return None
    if not isinstance(info, dict) or info.get("client_email") != email:
        return None
    return str(info.get("private_key_id", "")) or None


def _stored_key_id(conn: GoogleSession) -> str | None:
    return _key_id(conn.stored_password(USERNAME), conn.params.email)


@dataclass(frozen=True)
class _KeyOwner:
    """Whose JSON key :func:`_ensure_json_key` keeps: BinderHub's account or user pods'."""

    email: str
    name: str  # the account's resource name
    kind: str  # the record kind of its key
    account_kind: str  # the record kind of the account, when this notebook created it
    stored: Secret | None  # the key JSON in secret.yaml
    entry: Callable[[str], Any]  # a key id as a retiring entry
    ids: Callable[[list[Any]], list[str]]  # the key ids of its retiring entries

    def retiring(self, conn: GoogleSession) -> list[str]:
        """The ids of this account's keys in the retiring list."""
        return self.ids(_retiring(conn))


@creates
def ensure_key(conn: GoogleSession) -> Result[Secret | None]:
    """Reuse the stored JSON key while it is live; else create one (at most one of ours).

    Keys this notebook created whose JSON was lost are deleted first, so keys never
    pile up against Google's limit of 10. With ``rotate`` a new key is made; the old
    one is deleted by ``finish_rotation`` once the new one verifies. With ``auth =
    "metadata"`` no key is made and the keys this notebook made are retired the same way
    (:func:`_retire_keys_for_keyless`); a stored key still retiring (a switch or rotation
    undone before ``finish_rotation``) is taken back.
    """
    p = conn.params
    if p.keyless:
        return _retire_keys_for_keyless(conn)
    owner = _KeyOwner(
        p.email,
        conn.account_name,
        "key",
        "service_account",
        conn.stored_password(USERNAME),
        str,
        _retiring_keys,
    )
    result = _ensure_json_key(conn, owner)
    conn.secret = result.value
    return result


#: The organization policy constraints that forbid service account keys: the managed one,
#: enforced by default on organizations created since 2024-05-03 (hashicorp-education/learn-
#: terraform-google-workspace#9), and the legacy boolean one (google/create-service-account#21).
KEY_POLICIES = (
    "iam.managed.disableServiceAccountKeyCreation",
    "iam.disableServiceAccountKeyCreation",
)


def _key_policy_refusal(error: str, project: str) -> str:
    """The one line for FAILED_PRECONDITION "Key creation is not allowed": the constraint the
    refusal names (its PreconditionFailure), else both, and what to do."""
    named = [c for c in KEY_POLICIES if f"constraints/{c}" in error]
    which = named[0] if named else f"{KEY_POLICIES[0]} (or the legacy {KEY_POLICIES[1]})"
    shown = named[0] if named else KEY_POLICIES[0]
    return (
        f"the organization policy {which} forbids service account keys (enforced by default "
        "for organizations created since 2024-05-03): ask an organization policy administrator "
        f"to exempt project {project} (gcloud org-policies describe {shown} --project={project} "
        'shows it); auth = "metadata" (keyless) covers BinderHub\'s image check, but build '
        "pods still need a way to push (step 7)"
    )


def _all_keys_ours(conn: GoogleSession, email: str, name: str, kind: str) -> bool:
    """Every user-managed key of the account is this deployment's: the account is its own
    (named from its id, recorded as created, carrying its mark). Keys have no description or
    label (iam.v1 ServiceAccountKey), so on any other account, a name given and perhaps
    shared, only the key ids this deployment recorded are its own."""
    if not _own_named(conn, email) or conn.record.created.get(kind) != email:
        return False
    account = _get_account(conn, name)
    return account is not None and _MARKS.findall(account.description) == [conn.record.deployment]


def _ensure_json_key(conn: GoogleSession, owner: _KeyOwner) -> Result[Secret | None]:
    """Reuse ``owner``'s stored JSON key while it is live; else create one (at most one of
    ours): BinderHub's key and user pods' pull key alike.

    Keys this deployment created whose JSON was lost are deleted first (every key of its own
    marked account, :func:`_all_keys_ours`; on another account only the recorded key id),
    so keys never pile up against Google's limit of 10.
    With ``rotate`` a new key is made and the old one goes to the retiring list
    (``finish_rotation`` deletes it once the new one verifies); a stored key found there (a
    rotation or switch undone before then) is taken back.
    """
    p = conn.params
    email = owner.email
    # none when the account is not there (yet: a dry run plans it, or its API)
    live = (if_present(_user_keys, conn, owner.name) or []) if conn.iam_enabled else []
    stored_id = _key_id(owner.stored, email)
    working = stored_id if stored_id in live else None
    replaced = owner.retiring(conn)
    recorded = conn.record.created.get(owner.kind)
    if working and not p.rotate:
        if working in replaced:
            # a switch (to keyless, or of pull_access) or a rotation stopped before
            # finish_rotation, now undone: the stored key is in use again; a later key of ours
            # whose JSON never reached secret.yaml goes, as below
            conn.plan(f"keep the stored JSON key of {email}, which is live")
            if recorded and recorded != working and recorded not in replaced:
                _delete_key(conn, str(recorded), owner.name)
            _keep(conn, owner.entry(working), owner.kind, working)
            return Result(
                owner.stored, "reused", f"the stored JSON key of {email} is live and kept"
            )
        return Result(owner.stored, "reused", f"the stored JSON key of {email} is live")
    conn.plan(
        f"create a new JSON key for {email} (rotate)"
        if working
        else f"create a JSON key for {email}"
    )
    if working and working not in replaced:
        replaced.append(working)
    # a key this deployment did not make is never "lost": on an account others may use too,
    # only the key id it recorded is (issue 23: a shared account's other keys are theirs)
    ours = _all_keys_ours(conn, email, owner.name, owner.account_kind)
    stale = [k for k in live if k not in replaced and (ours or k == recorded)]
    for key_id in stale:
        _delete_key(conn, key_id, owner.name)
    if working:  # recorded before the new key is made: finish_rotation deletes it
        conn.retire_later(owner.entry(working))
    try:
        with _mapped():
            created = conn.iam.create_service_account_key(name=owner.name)
    except CloudError as e:
        if "Key creation is not allowed" in str(e):
            raise PermissionDenied(_key_policy_refusal(str(e), p.project_id)) from None
        if "Precondition" in str(e) and len(live) - len(stale) >= 10:
            in_use = [k for k in replaced if k in live]
            if in_use:  # deleting by hand could remove the key the deployed BinderHub uses
                raise PermissionDenied(
                    f"{email} already holds 10 keys, Google's limit, {len(in_use)} of them kept "
                    "by keep_replaced: deploy the newest secret.yaml, then rerun without rotate "
                    "and keep_replaced to remove them"
                ) from None
            raise PermissionDenied(
                f"{email} already holds 10 keys, Google's limit: delete unused ones "
                "(gcloud iam service-accounts keys list/delete) and rerun"
            ) from None
        raise
    key_id = created.name.rpartition("/")[2]
    conn.note(owner.kind, key_id)
    secret = Secret(bytes(created.private_key_data).decode())
    detail = f"a JSON key for {email}"
    if stale:
        detail += f", replacing {len(stale)} whose JSON was lost"
    if working:
        detail += "; the old key is deleted once this one verifies"
    return Result(secret, "created", detail)


def _retire_keys_for_keyless(conn: GoogleSession) -> Result[Secret | None]:
    """``auth = metadata``: no key is made, and the keys this notebook made are retired.

    Ours, as in key mode: the recorded key and, on this deployment's own marked account
    (:func:`_all_keys_ours`), every user-managed key (those whose JSON was lost); keys it did
    not record on any other account are never touched. They stay live until the keyless
    values verified: ``finish_rotation`` deletes them then (or a later run, with
    ``keep_replaced``).
    """
    p = conn.params
    recorded = conn.record.created.get("key")
    ours: list[str] = [str(recorded)] if recorded else []
    if _all_keys_ours(conn, p.email, conn.account_name, "service_account"):
        ours += [k for k in _user_keys(conn) if k not in ours]
    retiring = _retiring(conn)
    new = [k for k in ours if k not in retiring]
    pending = _retiring_keys(retiring)
    if not new and not pending:
        return Result(
            None, "skipped", "auth = metadata: no key, tokens come from the metadata server"
        )
    count = len(new) + len(pending)
    keys = "the key this notebook made" if count == 1 else f"the {count} keys this notebook made"
    _retire_later(conn, new, "key")  # a dry run: in memory only (finish_rotation's message)
    if new:
        conn.plan(f"remove {keys} once keyless verification passes (auth = metadata: no key)")
    return Result(
        None,
        "updated" if new else "done",
        f"auth = metadata: no key; {keys} is removed once keyless verification passes"
        if count == 1
        else f"auth = metadata: no key; {keys} are removed once keyless verification passes",
    )
