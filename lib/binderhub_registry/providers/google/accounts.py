"""Service accounts: found or made with this deployment's mark, proven ours before deletion,
and waited for until a new one reads well everywhere."""

from __future__ import annotations

import time
from typing import Any

from ...errors import CloudError, PermissionDenied, TransientCloudError
from ...steps import Result, progress
from ..contract import creates
from .errors import _if_present, _mapped
from .params import _MARKS, ACCOUNT, NAME, OWN_ACCOUNT
from .session import GoogleSession, _mark, _not_ours

#: The service accounts' descriptions, before `` (binderhub-registry <id>)``: records from
#: before marks made them with these texts exactly (see :func:`_account_is_ours`).
PUSHER_TEXT = "Pushes BinderHub's images to {repository}"
PULLER_TEXT = "User pods pull BinderHub's images from {repository}"


def _account_is_ours(conn: GoogleSession, account: Any, text: str) -> bool:
    """The live account carries this deployment's mark in its description; or, for a record
    from before marks, the exact text this notebook gave it then (no mark at all)."""
    marks = _MARKS.findall(account.description)
    if marks:
        return bool(marks == [conn.record.deployment])
    old = text.format(repository=conn.repository_name)
    return conn.legacy and account.description == old


def _own_named(conn: GoogleSession, email: str) -> bool:
    """``email`` is this deployment's own account (``binderhub-<id>``) or its ``-pull`` twin:
    no other deployment uses that name by default (:func:`_account_for` refuses it)."""
    own = OWN_ACCOUNT.format(deployment=conn.record.deployment)
    return email.partition("@")[0] in (own, f"{own}-pull")


def _checked_account(conn: GoogleSession, name: str, email: str, kind: str, text: str) -> Any:
    """The live account recorded as ``kind``, proven ours (None: gone); else the one line."""
    recorded = conn.record.created.get(kind)
    if recorded != email:
        raise _not_ours(f"service account {email}", f"{kind} = {recorded}", email)
    account = _get_account(conn, name)
    if account is None or _account_is_ours(conn, account, text):
        return account
    raise _not_ours(
        f"service account {email}",
        f"{email} described with '{_mark(conn)}'",
        f"{account.email} described {account.description!r}",
    )


def _marked_account(conn: GoogleSession, account: Any, kind: str, text: str) -> str:
    """A found account: record it when it carries our mark (made, then a crash before the
    record); add the mark to one a record from before marks lists (PatchServiceAccount may
    change the description). Words for the step's message, or ""."""
    from google.cloud.iam_admin_v1 import types
    from google.protobuf import field_mask_pb2  # type: ignore[import-untyped]

    email = account.email
    marks = _MARKS.findall(account.description)
    if marks == [conn.record.deployment]:
        if conn.record.created.get(kind) != email:
            conn.note(kind, email)
        return ""
    if marks or conn.record.created.get(kind) != email:
        return ""  # not ours: reused, never deleted
    if not _account_is_ours(conn, account, text):
        return ""  # recorded, unmarked and not our old text: teardown will refuse it
    conn.plan(f"add '{_mark(conn)}' to the description of service account {email}")
    marked = f"{account.description} ({_mark(conn)})"
    with _mapped():
        conn.iam.patch_service_account(
            request=types.PatchServiceAccountRequest(
                service_account=types.ServiceAccount(name=account.name, description=marked),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            )
        )
    return f"; marked '{_mark(conn)}' (made before marks)"


def _create_account(
    conn: GoogleSession,
    account_id: str,
    name: str,
    kind: str,
    display: str,
    text: str,
    would: str,
) -> None:
    """Plan ``would``, then create a service account with our mark, recorded first: an answer
    lost after it was made leaves it recorded; ALREADY_EXISTS keeps the record only when it
    carries our mark."""
    from google.cloud.iam_admin_v1 import types

    p = conn.params
    email = f"{account_id}@{p.project_id}.iam.gserviceaccount.com"
    account = types.ServiceAccount(
        display_name=display,
        description=f"{text.format(repository=conn.repository_name)} ({_mark(conn)})",
    )

    def make() -> Any:
        try:
            with _mapped():
                conn.iam.create_service_account(
                    name=f"projects/{p.project_id}", account_id=account_id, service_account=account
                )
        except CloudError as e:
            if e.status != 409:  # ALREADY_EXISTS: an earlier attempt, or someone else, made it
                conn.note(kind, None)
                raise
        conn.settling.accounts.add(email)  # its calls may fail for a while: waited out
        _wait_visible(conn, name)
        return _get_account(conn, name)

    def ours(live: Any) -> str | None:
        """Someone else's, made in between, is reused and never deleted: not recorded."""
        theirs = live is not None and _MARKS.findall(live.description) != [conn.record.deployment]
        return None if theirs else email

    conn.create(kind, would, make, pending=email, keep=ours)


def _get_account(conn: GoogleSession, name: str | None = None) -> Any | None:
    """The service account ``name`` (BinderHub's when None), or None when there is none
    (or, in a dry run, when the IAM API is still off)."""
    if not conn.iam_enabled:
        return None
    return _if_present(conn.iam.get_service_account, name=name or conn.account_name)


@creates
def ensure_service_account(conn: GoogleSession) -> Result[str | None]:
    """Create or reuse BinderHub's service account (IAM admin API over gRPC).

    A new account's description carries this deployment's mark (``binderhub-registry <id>``),
    which teardown checks before deleting it.
    """
    p = conn.params
    conn.note(ACCOUNT, p.email)
    found = _get_account(conn)
    if found is not None:
        marked = _marked_account(conn, found, "service_account", PUSHER_TEXT)
        return Result(p.email, "reused", f"service account {p.email}{marked}")
    _create_account(
        conn,
        p.service_account,
        conn.account_name,
        "service_account",
        "BinderHub image pusher",
        PUSHER_TEXT,
        f"create service account {p.email}",
    )
    return Result(p.email, "created", f"service account {p.email} (marked '{_mark(conn)}')")


def _wait_visible(conn: GoogleSession, name: str) -> None:
    """A new account is not readable everywhere at once: wait for three good reads in a row.

    Right after creation a read may answer 404 or 403 (terraform-provider-google#10227), and a
    good read may be followed by a bad one: Terraform waits for three consecutive good reads
    (GoogleCloudPlatform/magic-modules#14447). Past the deadline, one line says to rerun.
    """
    settling, email = conn.settling, name.rpartition("/")[2]
    started, good, misses = time.monotonic(), 0, 0
    settling.paused = True  # these reads count their own answers
    try:
        while good < 3:
            try:
                found = _get_account(conn, name) is not None
            except PermissionDenied:  # 403 "Permission iam.serviceAccounts.get is required"
                found = False
            if found:
                good += 1
                continue
            good, misses = 0, misses + 1
            waited = time.monotonic() - started
            if waited >= settling.account_deadline:
                raise TransientCloudError(
                    f"{NAME}: the new service account {email} was still not readable "
                    f"everywhere after {waited:.0f}s: rerun this notebook (it reuses the account)"
                )
            why = f"the new service account {email} is not readable everywhere yet"
            settling.notes[why] = settling.notes.get(why, 0) + 1
            progress(f"{why}: waiting for three good reads in a row ({waited:.0f}s)")
            time.sleep(min(settling.first_wait * 2 ** min(misses - 1, 16), settling.max_wait))
    finally:
        settling.paused = False
