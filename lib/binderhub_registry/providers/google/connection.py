"""The connection: the shared steps (values, verify, rotation's end, teardown) over the session."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any

from ...binderhub import RegistryValues
from ...outputs import write_file
from ...push import PUSH_CHECK
from ...secrets import Secret
from ...steps import Result, progress
from ...usage import Usage
from ...verify import VerificationReport, VerifyHints
from ..contract import Deletion, RealExample, if_present, stops_at_plan
from .accounts import PULLER_TEXT, PUSHER_TEXT, _checked_account, _own_named
from .errors import _mapped
from .iam import _edit_account_policy, _revoke
from .keyless import (
    NOT_COVERED,
    KeylessFiles,
    KeylessValues,
    _keyless_header,
    _stored_section,
    _write_secret,
    annotate_command,
    keyless_check_command,
    verify_keyless,
)
from .keys import _delete_key, _user_keys
from .params import (
    ACCOUNT,
    MARK,
    NOTEBOOK,
    PULL_ROLE,
    ROLE,
    TOKEN_PATH,
    USERNAME,
    WORKLOAD_IDENTITY_USER,
)
from .repository import _find_repository, _google_host, _host_of, _repository_is_ours
from .retention import CLEANUP_POLICY, delete_cleanup_policy, policy_id, repository_size
from .session import (
    BOUND,
    PULL_KEY,
    PULL_NODE,
    UNCHECKED,
    GoogleSession,
    _not_ours,
    _retiring,
    _retiring_keys,
    _retiring_members,
    _retiring_of,
    _wait,
)
from .settling import _trusting


@dataclass
class GoogleConnection(GoogleSession):
    """A signed-in Google Cloud session (:class:`~.session.GoogleSession`) with the shared
    steps every notebook calls: ``write_values``, ``verify``, ``finish_rotation``, ``teardown``."""

    NOTEBOOK = NOTEBOOK
    HINTS = VerifyHints(
        credentials="the key was deleted or its service account is gone: rerun this notebook",
        push=(
            f"the service account needs {ROLE} on the repository (rerun this notebook), and the "
            "repository must exist"
        ),
        pull=f"the account needs {PULL_ROLE} on the repository (rerun this notebook)",
    )

    def keyless_values(self) -> KeylessValues | None:
        """BinderHub's keyless values, once the repository is known and the binding made."""
        if not self.host or not self.bound:
            return None
        return KeylessValues(
            image_prefix=self._image_prefix(),
            url=f"https://{self.host}",
            token_url=self.metadata_url + TOKEN_PATH,
        )

    # Overrides Connection.write_values: keyless values are config.yaml alone (no credential
    # for RegistryValues to hold), and an earlier key's registry.* stays in secret.yaml.
    def write_values(self) -> Result[Any]:
        """Key: ``config.yaml`` and ``secret.yaml``; keyless: ``config.yaml`` alone."""
        if not self.params.keyless:
            return super().write_values()
        p, out = self.params, self.params.output_dir
        values = self.keyless_values()
        if values is None or p.dry_run:  # a dry run writes nothing, as the core's
            return Result(None, "skipped", "nothing to write (dry run or teardown)")
        pull = self.pull_secret if p.pull_access == "secret" else None
        if p.pull_access == "secret" and pull is None:
            raise RuntimeError("pull_access is 'secret' but no pull credential was made (a bug)")
        import yaml

        out.mkdir(parents=True, exist_ok=True)
        path = out / "config.yaml"
        # beside it, then renamed over it, as the core writes config.yaml (a link is replaced)
        write_file(
            path,
            _keyless_header(path.parent) + yaml.safe_dump(values.config(), sort_keys=False),
            mode=0o644,
        )
        earlier = _stored_section(out, "registry")
        _write_secret(out, earlier, pull)
        detail = f"{path} (BinderHub: no key)"
        if pull is not None:
            detail += "; secret.yaml (0600): user pods' pull key"
        # an earlier key run's registry.* stays until finish_rotation deletes its key: build
        # pods that cannot push keylessly still need it, and a switch back reuses it
        if earlier is not None:
            detail += "; secret.yaml (an earlier key) stays until that key is removed"
        return Result(KeylessFiles(path, values, pull), "done", detail)

    # Overrides Connection.verify: keyless values are checked through the metadata server
    # (verify_keyless), which answers only inside the cluster or the sandbox.
    def verify(self, files: Any) -> Result[VerificationReport | None]:
        """Key: verify the files as usual; keyless: :func:`verify_keyless` in the sandbox."""
        if not self.params.keyless:
            return super().verify(files)
        if files is None:
            return Result(None, "skipped", "no values were written")
        if not self.params.sandbox:
            return Result(
                None,
                "skipped",
                "the metadata server answers only inside the cluster: check from BinderHub's "
                f"pod, with the tools its image has: {keyless_check_command(self.params)}",
            )
        report = verify_keyless(
            files.values,
            self.ca_file,
            self.HINTS,
            files.pull,
            registry=_stored_section(self.params.output_dir, "registry"),
            stand_in=("oauth2accesstoken", self._deployer_token()),
            account=self.params.email,
            fix=f"run {annotate_command(self.params)}",
        )
        push = next(c for c in report.checks if c.name == PUSH_CHECK)
        pushes = (
            f"build pods' push is {NOT_COVERED} (the written values give them no credential)"
            if push.status == "skipped"
            else f"build pods push to {report.image} with an earlier key, {NOT_COVERED}"
        )
        return Result(report, "done", f"BinderHub's keyless check works; {pushes}")

    def _deployer_token(self) -> Secret:
        """A fresh access token of the signed-in deployer (sandbox: the seeded Owner)."""
        import requests
        from google.auth.transport.requests import Request

        session = requests.Session()
        _trusting(session, self.ca_file)
        with _mapped():
            self.credentials.refresh(Request(session))
        return Secret(str(self.credentials.token))

    def values_to_deploy(self) -> str:
        """Keyless values are ``config.yaml`` alone; with a key, ``secret.yaml`` holds it."""
        return "config.yaml" if self.params.keyless else "secret.yaml"

    # Overrides Connection.finish_rotation: keyless for real, nothing here verified the new
    # values, so replaced keys are kept once and told of; then the secret.yaml holding one goes.
    @stops_at_plan
    async def finish_rotation(self) -> Result[None]:
        """Remove what a rotation or an auth switch replaced, once the new values verified.

        Keyless for real, nothing verified here: a run that finds anything retiring it has not
        yet told of keeps it all and says so (recorded as ``UNCHECKED``); a later run removes
        it. Once the keys are gone, so is the ``secret.yaml`` that held one.
        """
        p, retiring = self.params, _retiring(self)
        told = self.record.created.get(UNCHECKED, [])
        unverifiable = p.keyless and not p.sandbox and not p.teardown
        # anything retired since the last "kept" line (a new switch, another k8s_namespace)
        # is kept this run and told; only what an earlier run told of is removed
        if unverifiable and not p.keep_replaced and [e for e in retiring if e not in told]:
            self.plan(f"keep {len(retiring)} replaced credential(s)")
            self.note(UNCHECKED, retiring)
            return Result(
                None,
                "done",
                f"kept {len(retiring)} replaced credential(s): keyless access can be checked "
                "only from BinderHub's pod; deploy config.yaml, check it (see the verify step) "
                "and that build pods push without the key (step 7), then rerun to remove them",
            )
        result = await super().finish_rotation()
        gone = result.status == "deleted" or not retiring
        if gone and UNCHECKED in self.record.created:
            self.note(UNCHECKED, None)
        if result.status == "deleted" and p.keyless:  # its key was deleted: nothing may deploy it
            out = p.output_dir
            # user pods' key stays while it is theirs
            pull = _stored_section(out, "jupyterhub") if p.pull_access == "secret" else None
            if pull is None:
                (out / "secret.yaml").unlink(missing_ok=True)
            else:
                _write_secret(out, None, None, pull)
        return result

    def values(self) -> RegistryValues | None:
        """BinderHub's values: the repository's host, ``_json_key`` and the key JSON."""
        p, key = self.params, self.secret
        if key is None or not self.host:
            return None
        url = f"https://{self.host}"
        # pkg.dev: the form mybinder.org staging ran on Artifact Registry (mybinder.org-deploy
        # 9bd26443), so Google gets only BinderHub's appended service=container_registry, which
        # it ignores; gcr.io hosts: BinderHub's own default for them (registry.py,
        # _default_token_url). token_url stays: BinderHub's challenge-following path wants a
        # quoted service in the challenge, which gcr.io hosts send unquoted (DESIGN.md 9)
        token_url = f"{url}/v2/token"
        if p.gcr_domain:
            token_url += f"?service={_google_host(p)}"
        return RegistryValues(
            image_prefix=self._image_prefix(),
            username=USERNAME,
            password=key,
            registry_url=url,
            docker_registry={"url": url, "token_url": token_url},
        )

    def deletions(self) -> list[Deletion]:
        """Keys, the bindings, the service accounts, the cleanup policy (this deployment's id
        alone), the repository: only ours. Never an API (see :meth:`teardown`)."""
        p = self.params
        return [
            Deletion(self.retiring, "the replaced keys and bindings", self.retire),
            Deletion(
                PULL_KEY,
                "user pods' service account key",
                lambda key: _delete_key(self, key, self.pull_account_name),
            ),
            Deletion("key", "the service account key", lambda key: _delete_key(self, key)),
            Deletion(
                BOUND,
                f"{WORKLOAD_IDENTITY_USER} on {p.email} for BinderHub's Kubernetes account",
                lambda member: _revoke(
                    self, WORKLOAD_IDENTITY_USER, str(member), _edit_account_policy
                ),
            ),
            Deletion(
                PULL_NODE,
                f"{PULL_ROLE} for the nodes' service account",
                lambda member: _revoke(self, PULL_ROLE, str(member)),
            ),
            Deletion(
                "pull_binding",
                f"{PULL_ROLE} for {p.pull_email}",
                lambda v: self._unbind("pull_binding", v),
            ),
            Deletion(
                "binding",
                f"{ROLE} for {p.email}",
                lambda v: self._unbind("binding", v),
            ),
            Deletion(
                "pull_service_account",
                f"service account {p.pull_email}",
                lambda _: self._delete_account(None, pull=True),
            ),
            Deletion("service_account", f"service account {p.email}", self._delete_account),
            Deletion(
                CLEANUP_POLICY,
                f"cleanup policy {policy_id(self)} (other policies stay)",
                lambda recorded: delete_cleanup_policy(self, recorded),
            ),
            Deletion("repository", f"repository {p.repository_id}", self._delete_repository),
        ]

    def storage_used(self) -> Usage | None:
        """The repository's ``sizeBytes``; no limit (storage is billed as it grows)."""
        return repository_size(self)

    def retire(self, retiring: list[Any]) -> None:
        """Delete the keys a rotation or a switch to keyless replaced, and remove the Workload
        Identity members a switch to a key replaced (each only as recorded; gone is fine);
        user pods' side likewise: replaced pull keys, and the nodes' reader binding."""
        for member in _retiring_members(retiring):
            _revoke(self, WORKLOAD_IDENTITY_USER, member, _edit_account_policy)
        for key in _retiring_keys(retiring):
            _delete_key(self, key)
        for key in _retiring_of(retiring, PULL_KEY):
            _delete_key(self, key, self.pull_account_name)
        for member in _retiring_of(retiring, PULL_NODE):
            _revoke(self, PULL_ROLE, member)

    # --- deletions ---------------------------------------------------------------------
    def _bound(self, kind: str, recorded: Any) -> str:
        """The member whose role ``kind`` records: this deployment's account, as recorded
        (records from before name the role: then the account in use); else the one line."""
        p = self.params
        member = p.pull_member if kind == "pull_binding" else p.member
        if recorded in (member, PULL_ROLE if kind == "pull_binding" else ROLE):
            return member
        raise _not_ours(f"the {kind} member", recorded, member)

    def _unbind(self, kind: str, recorded: Any) -> None:
        """Remove the recorded member's role, unless another deployment still uses its
        account (:meth:`_shared`)."""
        p, member = self.params, self._bound(kind, recorded)
        pull = kind == "pull_binding"
        name, email = (
            (self.pull_account_name, p.pull_email) if pull else (self.account_name, p.email)
        )
        if not self._shared(name, email):
            _revoke(self, PULL_ROLE if pull else ROLE, member)

    def _checked_accounts(self) -> list[tuple[str, str]]:
        """The recorded accounts, each proven ours (or gone): (its name, its email)."""
        p, found = self.params, []
        for kind, name, email, words in (
            ("pull_service_account", self.pull_account_name, p.pull_email, PULLER_TEXT),
            ("service_account", self.account_name, p.email, PUSHER_TEXT),
        ):
            if self.record.created.get(kind) and _checked_account(self, name, email, kind, words):
                found.append((name, email))
        return found

    def _checked_repository(self) -> dict[str, Any] | None:
        """The recorded repository, proven ours (None: gone); else the one line."""
        recorded = self.record.created.get("repository")
        if recorded != self.repository_name:
            raise _not_ours("the repository", recorded, self.repository_name)
        repo = _find_repository(self)
        if repo is None or _repository_is_ours(self, repo):
            return repo
        live = (repo.get("labels") or {}).get(MARK)
        raise _not_ours(
            f"repository {self.repository_name}",
            f"label {MARK}: {self.record.deployment}",
            f"label {MARK}: {live}" if live else f"no {MARK} label",
        )

    def check_ours(self) -> None:
        """Every recorded member, account and the repository are this deployment's (their
        marks, their recorded names: :func:`_checked_account`): else one line, before
        anything is deleted."""
        created = self.record.created
        for kind in ("binding", "pull_binding"):
            if created.get(kind):
                self._bound(kind, created[kind])
        self._checked_accounts()
        if created.get(CLEANUP_POLICY) not in (None, policy_id(self)):
            raise _not_ours("the cleanup policy", created[CLEANUP_POLICY], policy_id(self))
        if created.get("repository"):
            self._checked_repository()

    # Overrides Connection.teardown: it leaves the project's APIs enabled (other users may need
    # them) and says so, and forgets the account name once nothing it named is left.
    async def teardown(self) -> Result[None]:
        """Delete as the core does (:meth:`check_ours` first), then say that the APIs stay."""
        created = self.record.created
        result = await super().teardown()
        if result.status == "deleted":
            self.note(ACCOUNT, None)  # nothing is left that it named
        apis = created.get("api")
        if not apis or not self.params.teardown:
            return result
        # an API is the project's, not this deployment's: disabling Artifact Registry skips
        # Service Usage's usage check by default (checkIfServiceHasUsage: SKIP, serviceusage
        # v1 discovery document), so every repository made since, by anyone, would stop
        stays = (
            f"{', '.join([apis] if isinstance(apis, str) else apis)} stay enabled (never "
            "disabled: other repositories and service accounts in the project may use them)"
        )
        self.note("api", None)
        if result.status == "skipped":
            return Result(None, "skipped", f"nothing to delete; {stays}")
        return _replace(result, detail=f"{result.detail}; {stays}")

    def _delete_account(self, _: Any, pull: bool = False) -> None:
        p = self.params
        kind, name, email, text = (
            ("pull_service_account", self.pull_account_name, p.pull_email, PULLER_TEXT)
            if pull
            else ("service_account", self.account_name, p.email, PUSHER_TEXT)
        )
        if _checked_account(self, name, email, kind, text) is None:
            return  # gone already
        if self._shared(name, email):
            return
        with _mapped():
            self.iam.delete_service_account(name=name)

    def _shared(self, name: str, email: str) -> bool:
        """A named account (not this deployment's own) that still holds keys once the ones
        this deployment recorded are deleted: another deployment pushes with it, so it stays,
        with its role on the repository (teardown deletes the keys before these)."""
        if _own_named(self, email):
            return False
        others = if_present(_user_keys, self, name)  # None: the account is gone
        if others:
            progress(f"{email} stays: {len(others)} key(s) this deployment did not make use it")
        return bool(others)

    def _delete_repository(self, _: Any) -> None:
        if self._checked_repository() is None:
            return  # gone already
        with _mapped():
            operation = self.registry.repositories().delete(name=self.repository_name).execute()
        _wait(self, self.registry, operation, "deleting the repository")


def _real_values(params: Any) -> RegistryValues:
    """The values of a real run with ``params`` (the docs' example)."""
    conn = GoogleConnection.__new__(GoogleConnection)
    conn.params, conn.secret, conn.ca_file = params, Secret("key-json"), None
    conn.host = _host_of(conn, None)  # the provider's own rule for the real host
    values = conn.values()
    assert values is not None
    return values


#: The docs' real-mode example of this notebook's values.
REAL_EXAMPLE = RealExample(
    overrides={"project_id": "your-project-id"},
    placeholders={"your-project-id": "<PROJECT_ID>"},
    build=_real_values,
)
