"""User pods' pull (``pull_access``): a reader account and key, the nodes' binding, or nothing."""

from __future__ import annotations

from functools import partial

from ...binderhub import PullSecret
from ...steps import Result
from ...verify import CHECK_IMAGE, NODE_PULL_COMMAND
from ..contract import creates
from .accounts import PULLER_TEXT, _create_account, _get_account, _marked_account
from .iam import _grant
from .keys import _ensure_json_key, _KeyOwner
from .params import PULL_ROLE, USERNAME
from .session import (
    PULL_KEY,
    PULL_NODE,
    GoogleSession,
    _keep,
    _retire_later,
    _retiring,
    _retiring_of,
)


# --- user pods' pull (pull_access) --------------------------------------------------------
@creates
def ensure_pull_credential(conn: GoogleSession) -> Result[PullSecret | None]:
    """How user pods (the kubelet) pull: ``pull_access``.

    - ``"secret"``: a second service account, ``<service_account>-pull``
      (:attr:`Params.pull_account`), with :data:`PULL_ROLE` on the repository alone and one
      JSON key, written as ``jupyterhub.imagePullSecret`` (``_json_key``); kept, rotated
      and removed as BinderHub's key is.
    - ``"node"``: :data:`PULL_ROLE` on the repository for ``node_service_account``, the GKE
      nodes' service account (the kubelet pulls from Artifact Registry as the node).
    - ``"none"``: nothing; the repository must be public (not done here: see the message).

    Each records what it creates before creating it; a switch of ``pull_access`` moves what
    the previous value made (the pull key, the nodes' binding) to the retiring list, removed
    once the new values verified (``keep_replaced`` keeps it), as a rotation does.
    """
    p = conn.params
    retired = _retire_other_pull(conn, p.pull_access)
    if p.pull_access == "none":
        return _pull_none(conn, retired)
    if p.pull_access == "node":
        return _pull_node(conn, retired)
    return _pull_secret(conn, retired)


def _retire_other_pull(conn: GoogleSession, keep: str) -> str:
    """Retire what another ``pull_access`` made (recorded only); its words, or ""."""
    p, said = conn.params, []
    key = conn.record.created.get(PULL_KEY)
    if keep != "secret" and key:
        _retire_later(conn, [{PULL_KEY: key}], PULL_KEY)  # a dry run: in memory only
        said.append(f"the pull key of {p.pull_email}")
    node = conn.record.created.get(PULL_NODE)
    if keep != "node" and node:
        _retire_later(conn, [{PULL_NODE: node}], PULL_NODE)
        said.append(f"{PULL_ROLE} for {str(node).partition(':')[2]}")
    if not said:
        return ""
    return f"; {' and '.join(said)} is removed once these values verify"


def _pull_none(conn: GoogleSession, retired: str) -> Result[PullSecret | None]:
    p = conn.params
    limits = (
        "pull_access = none: no credential for user pods, who pull anonymously: that works only "
        "from a public repository, and Artifact Registry repositories are private until "
        f"allUsers holds {PULL_ROLE} (gcloud artifacts repositories add-iam-policy-binding "
        f"{p.repository_id} --location={p.location} --project={p.project_id} --member=allUsers "
        f"--role={PULL_ROLE}), which this notebook does not grant: anyone could then pull "
        "every image, the project pays their egress, and an organization's domain restricted "
        "sharing policy (iam.allowedPolicyMemberDomains) refuses allUsers"
    )
    if not retired:
        return Result(None, "skipped", limits)
    conn.plan(f"switch user pods to anonymous pulls{retired}; {limits}")
    return Result(None, "updated", limits + retired)


def _node_check(conn: GoogleSession) -> str:
    """The commands that check the nodes' pull on the cluster (nothing here can)."""
    p = conn.params
    name, tag = CHECK_IMAGE
    image = f"{conn._image_prefix()}{name}:{tag}" if conn.host else f"<image_prefix>{name}:{tag}"
    return (
        f"gcloud artifacts repositories get-iam-policy {p.repository_id} "
        f"--location={p.location} --project={p.project_id}; once verification pushed the "
        f"check image: {NODE_PULL_COMMAND.format(image=image)} (ErrImagePull or "
        "ImagePullBackOff: the nodes cannot pull; a failed start of the program-less image "
        "means they can)"
    )


def _pull_node(conn: GoogleSession, retired: str) -> Result[PullSecret | None]:
    """:data:`PULL_ROLE` on the repository for the nodes' account (recorded before the write)."""
    p = conn.params
    member, email = p.node_member, p.node_service_account
    recorded = conn.record.created.get(PULL_NODE)
    if recorded and recorded != member:  # another node account: the old one goes
        _retire_later(conn, [{PULL_NODE: recorded}], PULL_NODE)
        retired += f"; {PULL_ROLE} for {str(recorded).partition(':')[2]} is removed"
    unverified = (
        "the binding is modelled by the sandbox, but a node's pull cannot be verified from here"
        if p.sandbox
        else "a node's pull cannot be verified from here"
    )
    would = f"grant {PULL_ROLE} on the repository to {email}{retired}"
    if not conn.host:  # the repository is only planned (a dry run): no policy to read
        conn.plan(would)
    if {PULL_NODE: member} in _retiring(conn):  # back to "node" before the switch finished
        _keep(conn, {PULL_NODE: member}, PULL_NODE, member)
    created = _grant(conn, PULL_ROLE, member, PULL_NODE, would)
    what = (
        f"{PULL_ROLE} on the repository for {email}"
        if created
        else (f"{email} has {PULL_ROLE} on the repository")
    )
    return Result(
        None,
        "created" if created else "reused",
        f"{what}; {unverified}: check it on the cluster: {_node_check(conn)}{retired}",
    )


def _pull_secret(conn: GoogleSession, retired: str) -> Result[PullSecret | None]:
    """User pods' own account, its reader binding, and its JSON key (each recorded first)."""
    p = conn.params
    email, name = p.pull_email, conn.pull_account_name
    done: list[str] = []
    live = _get_account(conn, name)
    marked = _marked_account(conn, live, "pull_service_account", PULLER_TEXT) if live else ""
    then = f"{PULL_ROLE} on the repository and create a JSON key for user pods{retired}"
    if live is None:
        # marked, and recorded first: an answer lost after the account was made leaves it ours
        _create_account(
            conn,
            p.pull_account,
            name,
            "pull_service_account",
            "BinderHub image puller",
            PULLER_TEXT,
            f"create service account {email}, grant it {then}",
        )
        done.append(f"service account {email}")
    would = f"grant {email} {then}"
    if not conn.host:  # the repository is only planned (a dry run): no policy to read
        conn.plan(would)
    if _grant(conn, PULL_ROLE, p.pull_member, "pull_binding", would):
        done.append(f"{PULL_ROLE} on the repository")
    owner = _KeyOwner(
        email,
        name,
        PULL_KEY,
        "pull_service_account",
        conn.stored_pull_password(USERNAME),
        lambda key: {PULL_KEY: key},
        partial(_retiring_of, kind=PULL_KEY),
    )
    key = _ensure_json_key(conn, owner)
    if key.value is not None:
        conn.pull_secret = PullSecret(conn.host, USERNAME, key.value)
    status = "created" if done else key.status
    detail = "; ".join([*done, key.detail]) + " (user pods pull with it: reader only)"
    return Result(conn.pull_secret, status, detail + marked + retired)
