"""The provider contract: what every registry module is, and the parts they all share.

A provider is a module (``providers/<key>.py``) registered in ``providers.PROVIDERS``.
It declares ``KEY``, ``NAME``, ``NOTEBOOK`` and its own ``PARAMETERS``, and
defines ``validate``, ``sign_in`` and its guide steps (``ensure_*``, each
``(connection) -> Result``: look up, create only if missing). Its connection
subclasses :class:`Connection`, which holds what every provider does alike:

- the common parameters (:data:`COMMON_PARAMETERS`: prefix, pull_access,
  output_dir, dry_run, teardown, rotate, keep_replaced, sandbox) and their rules,
  checked in one call by :func:`check_parameters`;
- the record of what the notebook created (:class:`Record`), which reruns read
  to reuse resources and teardown to delete only those;
- the stored values (:meth:`Connection.stored_password`,
  :meth:`Connection.stored_pull_password`), read in one place;
- the shared steps a notebook calls on its connection: ``write_values``,
  ``verify``, ``finish_rotation`` and ``teardown``.

A provider's connection supplies three things: :meth:`Connection.values`
(BinderHub's values from what the steps found or made), :meth:`Connection.deletions`
(how to delete each recorded kind, in order) and :meth:`Connection.retire`
(how to remove credentials a rotation replaced). It may add two hooks of the shared
steps: :meth:`Connection.check_ours` (teardown's proof that what the record names is this
deployment's) and :meth:`Connection.diagnose` (a failed verification's cause, as the
registry sees it). A provider that still overrides a shared step says why in a
``# Overrides Connection.<step>:`` comment above it.

Plan, then apply: a step looks up, and before its first change calls
:meth:`Connection.plan` with what it is about to do. In a dry run the step stops there
and its result is ``planned``, "would <what>" (:class:`~..steps.Planned`); otherwise it
goes on. :func:`creates` and :func:`stops_at_plan` mark the steps that plan.
:meth:`Connection.create` is the common case whole (plan, record as pending,
make, record what was made); :func:`if_present` reads or deletes what may be gone
(a 404 is an answer, not an error); :meth:`Connection.note` records, in memory only in a
dry run. So a dry run is written once, here, and no step has its own exit for it.

Rotation in two phases (``keep_replaced``): a rotation records the credential it
replaced under :attr:`Connection.retiring` and keeps it, so the BinderHub already
deployed goes on pushing until the new ``secret.yaml`` is deployed; the next run
without ``keep_replaced`` removes every recorded one once its values verify. A
registry whose replaced credential stops at once (Harbor: one secret per robot)
says why in its ``Params.REPLACED_STOPS``; the contract then refuses ``rotate``
with ``keep_replaced`` before any call, so a provider module needs nothing more.

User pods' pull (``pull_access``): each provider's ``ensure_pull_credential`` step
sets :attr:`Connection.pull_secret` (``"secret"``, the default: a pull-only
credential), grants the nodes' identity (``"node"``, where the registry's
``Params.PULL_NODE`` says what that grants; elsewhere it is refused before any
call) or makes nothing (``"none"``: a public registry). :meth:`Connection.write_values`
puts it into ``secret.yaml`` as ``jupyterhub.imagePullSecret``, and verification
pulls with it as a kubelet does.
"""

from __future__ import annotations

import inspect
import json
import re
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from ..binderhub import (
    PULL_ACCESS,
    PullSecret,
    RegistryValues,
    ValuesFiles,
    read_values_file,
    write_values,
)
from ..errors import CloudError, InvalidParameter, InvalidValuesFile, VerificationFailed
from ..forms import apply_form
from ..outputs import check_output_files, prepare_output_dir, read_own_record
from ..params import (
    Parameter,
    choice,
    directory,
    flag,
    image_name_prefix,
    integer,
    refuse_unknown_injected,
)
from ..params import validate as check_rules
from ..secrets import Secret, write_private_file
from ..steps import Planned, Result
from ..usage import Usage, storage_row
from ..verify import VerificationReport, VerifyHints, verify_step

__all__ = [
    "COMMON_PARAMETERS",
    "CommonParams",
    "Connection",
    "Deletion",
    "GuideEntry",
    "Provider",
    "RealExample",
    "Record",
    "check_parameters",
    "creates",
    "if_present",
    "if_present_async",
    "instant",
    "same_time",
    "stops_at_plan",
    "validator",
]

#: The parameters every notebook has, after its own; the same rules everywhere.
COMMON_PARAMETERS: tuple[Parameter, ...] = (
    image_name_prefix("prefix"),
    # "secret" when missing: a parameters cell from before it gets user pods' credential too
    choice("pull_access", PULL_ACCESS, default="secret"),
    # 30 when missing, as mybinder.org's Harbor policy: a cell from before it gets a policy too
    integer("retention_days", 0, 3650, default=30),
    directory("output_dir"),
    flag("dry_run"),
    flag("teardown"),
    flag("rotate"),
    # False when missing: parameters cells and scripts from before it still run as they did
    flag("keep_replaced", default=False),
    flag("sandbox"),
)

P = TypeVar("P", bound="CommonParams")
R = TypeVar("R")


@dataclass(frozen=True)
class CommonParams:
    """The validated common parameters; each provider's ``Params`` adds its own fields."""

    #: Why a credential a rotation replaces stops working at once, for a registry where it
    #: cannot outlive the new one (the text of ``keep_replaced``'s error); empty: it can.
    REPLACED_STOPS: ClassVar[str] = ""
    #: What ``pull_access = "node"`` grants on this registry, in words (whose identity gets
    #: which role); empty: the registry has no node identity and "node" is refused.
    PULL_NODE: ClassVar[str] = ""

    prefix: str
    pull_access: str
    output_dir: Path
    dry_run: bool
    teardown: bool
    rotate: bool
    keep_replaced: bool
    sandbox: bool
    #: Days an image may go unpulled (or unpushed, where the registry sees no pulls) before
    #: the registry's own cleanup deletes it; 0 keeps everything. A keyword with a default, so
    #: a provider's ``Params`` adds its own fields after it.
    retention_days: int = field(default=30, kw_only=True)


def check_parameters(
    cls: type[P],
    spec: tuple[Parameter, ...],
    values: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    checks: Sequence[Callable[[P], None]] = (),
) -> P:
    """Check ``spec`` against ``values`` (a notebook's ``globals()``) and build ``cls``.

    Only the names in ``spec`` are read, so a whole namespace can be passed.
    Raises InvalidParameter for the first parameter that breaks its rule; no
    cloud is contacted. ``checks`` then judge parameters together (each raises
    InvalidParameter). Only then is ``output_dir`` made, proven writable and
    locked for this run (a dry run only checks it could be), so nothing is ever
    created in a cloud whose secret could not be written down.
    """
    # the values typed into the notebook's form, when one was shown (Run All reset the cell's)
    merged = dict(apply_form(spec, values or {})) | dict(overrides or {})
    checked = check_rules(spec, merged)
    if checked["rotate"] and checked["teardown"]:
        raise InvalidParameter("rotate", "cannot be combined with teardown = True", True)
    if checked["rotate"] and checked["keep_replaced"] and cls.REPLACED_STOPS:
        raise InvalidParameter(
            "keep_replaced",
            f"cannot be combined with rotate = True here: {cls.REPLACED_STOPS}; rotate "
            "without keep_replaced and deploy the new secret.yaml right after",
            True,
        )
    if checked["pull_access"] == "node" and not cls.PULL_NODE:
        raise InvalidParameter(
            "pull_access",
            'cannot be "node" here: this registry knows no node identity; use "secret" (a '
            'pull-only credential for user pods) or "none" (a public registry)',
            "node",
        )
    for check in checks:
        check(cls(**checked))
    value = checked["output_dir"]
    checked["output_dir"] = prepare_output_dir(value, create=not checked["dry_run"])
    module = sys.modules.get(cls.__module__)  # the provider module defining ``cls``
    key, notebook = getattr(module, "KEY", ""), getattr(module, "NOTEBOOK", "")
    if key:  # files a run would replace must be this notebook's own, before any call
        check_output_files(checked["output_dir"], key, notebook, value)
    return cls(**checked)


def validator(
    cls: type[P], spec: tuple[Parameter, ...], *checks: Callable[[P], None]
) -> Callable[..., P]:
    """A provider's ``validate``: :func:`check_parameters` of ``cls``, ``spec`` and ``checks``
    (the rules that judge several parameters together)."""

    def validate(values: Mapping[str, Any] | None = None, /, **overrides: Any) -> P:
        """Check every parameter (no network); raise InvalidParameter for the first bad one.

        ``values`` is typically the notebook's ``globals()``; keywords override it. A name
        papermill injected that ``spec`` lacks (a typo) is refused first.
        """
        refuse_unknown_injected(spec, values or {})
        return check_parameters(cls, spec, values, overrides, checks)

    return validate


class Record:
    """What a notebook created, kept in ``output_dir/binderhub-registry.json`` (no secrets).

    Reruns read it to reuse resources, teardown to delete only what was created. It names
    its registry (``provider``) and its deployment (``deployment``, a random id made with
    the record: what a provider writes into the names, labels or descriptions of what it
    creates, so that the service itself can say a resource is this deployment's). A record
    that cannot be read, or another registry's, stops the run (:func:`check_parameters`
    refuses it before any call); it is never taken as empty.
    """

    FILE = "binderhub-registry.json"

    def __init__(self, output_dir: Path, provider: str) -> None:
        self.path = output_dir / self.FILE
        self.provider = provider
        data = read_own_record(self.path, provider, str(output_dir)) or {}
        self.created: dict[str, Any] = dict(data.get("created", {}))
        # older records kept Docker Hub's deployment id among what was created
        found = data.get("deployment") or self.created.get("deployment")
        self.deployment: str = found if isinstance(found, str) else secrets.token_hex(4)

    def set(self, kind: str, value: Any) -> None:
        """Record a created resource (and save at once, so a crash right after keeps it)."""
        self.created[kind] = value
        self.save()

    def forget(self, kind: str) -> None:
        """Drop a deleted resource."""
        self.created.pop(kind, None)
        self.save()

    def save(self) -> None:
        """Write the record, readable by its owner only.

        Written beside it, then renamed over it (:func:`write_private_file`): a full disk
        leaves the previous record whole (truncated, it would forget every credential it lists).
        """
        text = json.dumps(
            {"provider": self.provider, "deployment": self.deployment, "created": self.created},
            indent=2,
        )
        write_private_file(self.path, text)


def stops_at_plan(fn: Callable[..., R]) -> Callable[..., R]:
    """Mark a step that calls :meth:`Connection.plan`: a dry run's stop becomes its ``planned``
    result, so a step called directly (not through the runner) answers as in a notebook.

    Sync and coroutine steps both work.
    """
    if inspect.iscoroutinefunction(fn):

        @wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Planned as planned:
                return planned.result()

        return run_async  # type: ignore[return-value]

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Planned as planned:
            return planned.result()

    return run


def creates(fn: Callable[..., R]) -> Callable[..., R]:
    """Mark a step that creates something: with ``teardown = True`` it creates nothing, and
    in a dry run it stops at its plan (:func:`stops_at_plan`).

    The step's first argument is the connection; sync and coroutine steps both work.
    """
    skipped = Result(None, "skipped", "teardown requested: nothing is created")
    planning: Callable[..., Any] = stops_at_plan(fn)

    if inspect.iscoroutinefunction(fn):

        @wraps(fn)
        async def run_async(conn: Connection, *args: Any, **kwargs: Any) -> Any:
            if conn.params.teardown:
                return skipped
            return await planning(conn, *args, **kwargs)

        return run_async  # type: ignore[return-value]

    @wraps(fn)
    def run(conn: Connection, *args: Any, **kwargs: Any) -> Any:
        if conn.params.teardown:
            return skipped
        return planning(conn, *args, **kwargs)

    return run


def if_present(call: Callable[..., R], *args: Any, **kwargs: Any) -> R | None:
    """``call(*args, **kwargs)``, or None when the service answers 404: what may be gone is
    read or deleted with it (a lookup finds nothing; a deletion has nothing left to do)."""
    try:
        return call(*args, **kwargs)
    except CloudError as e:
        if e.status != 404:
            raise
        return None


async def if_present_async(
    call: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any
) -> R | None:
    """:func:`if_present` for a coroutine function."""
    try:
        return await call(*args, **kwargs)
    except CloudError as e:
        if e.status != 404:
            raise
        return None


def instant(value: Any) -> float | None:
    """An RFC 3339 date-time (a service's creation time) in seconds since the epoch; None
    when ``value`` is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def same_time(recorded: Any, live: Any) -> bool:
    """Whether a recorded creation time is the live one: the same instant to the second (a
    create answer and a later read may differ in sub-second digits), or the same text.

    Part of what proves a resource is the one this deployment recorded (``check_ours``).
    """
    a, b = instant(recorded), instant(live)
    if a is not None and b is not None:
        return abs(a - b) < 1
    return bool(recorded == live)


@dataclass(frozen=True)
class Deletion:
    """How teardown deletes one recorded kind: a label for people and the action."""

    kind: str
    label: str
    action: Callable[[Any], Any]  # given the recorded value; may return an awaitable


@dataclass
class Connection:
    """A signed-in session with one registry's cloud, and the shared steps every notebook runs.

    ``secret`` is set by the provider's step that makes BinderHub's credential
    (None in a dry run or teardown), ``pull_secret`` by its ``ensure_pull_credential``
    (user pods' pull-only credential, with ``pull_access = "secret"``); ``retiring``
    names the record kind holding credentials a rotation replaced.
    """

    NOTEBOOK: ClassVar[str] = ""  # the notebook stem, written in the values' header
    HINTS: ClassVar[VerifyHints] = VerifyHints()  # the registry's words for verify's diagnoses
    retiring: ClassVar[str] = "retiring"

    params: CommonParams
    record: Record
    ca_file: str | None  # the sandbox's CA; None: the system's
    secret: Secret | None = field(default=None, kw_only=True)
    pull_secret: PullSecret | None = field(default=None, kw_only=True)

    # --- what each provider supplies ---------------------------------------------------
    def values(self) -> RegistryValues | None:
        """BinderHub's values from what the steps found or made; None when nothing was made."""
        raise NotImplementedError

    def deletions(self) -> list[Deletion]:
        """Every kind this provider records as created, in the order teardown deletes them."""
        raise NotImplementedError

    def retire(self, retiring: list[Any]) -> Any:
        """Remove the credentials a rotation replaced (may return an awaitable)."""
        raise NotImplementedError

    def check_ours(self) -> Any:
        """Before teardown deletes anything: raise (one line naming the recorded and the live
        thing) when something the record names is not this deployment's; may return an
        awaitable. The default checks nothing: a registry whose record alone proves it."""
        return None

    def gone(self, exc: BaseException) -> bool:
        """True when ``exc`` says the thing to delete no longer exists."""
        return isinstance(exc, CloudError) and exc.status == 404

    # --- shared ---------------------------------------------------------------------------
    def stored_password(self, username: str) -> Secret | None:
        """The password in ``output_dir/secret.yaml`` when it is for ``username``."""
        return self._stored(("registry",), username)

    def stored_pull_password(self, username: str) -> Secret | None:
        """The password of ``secret.yaml``'s ``jupyterhub.imagePullSecret`` when it is for
        ``username`` (user pods' credential)."""
        return self._stored(("jupyterhub", "imagePullSecret"), username)

    def _stored(self, keys: tuple[str, ...], username: str) -> Secret | None:
        """The password of the credential at ``keys`` in ``secret.yaml``, for ``username``."""
        try:
            found: Any = read_values_file(self.params.output_dir / "secret.yaml")
            for key in keys:
                found = found[key]
            password = found["password"]
        except (OSError, InvalidValuesFile, KeyError, TypeError):
            return None  # absent or broken: a new credential is made (never echo its content)
        if found.get("username") != username or not isinstance(password, str) or not password:
            return None
        return Secret(password)

    def values_to_deploy(self) -> str:
        """The file whose deployment lets the replaced credentials go (in ``keep_replaced``'s
        message): ``secret.yaml``, which holds the new credential; a provider whose values
        hold none (keyless) names ``config.yaml``."""
        return "secret.yaml"

    def note(self, kind: str, value: Any) -> None:
        """Record ``value`` as ``kind`` (empty: forget it), as :class:`Record` does.

        A dry run changes the record in memory only: nothing is written, and its later steps
        (``finish_rotation``'s message) say what the real run would do.
        """
        if self.params.dry_run:
            if value:
                self.record.created[kind] = value
            else:
                self.record.created.pop(kind, None)
        elif value:
            self.record.set(kind, value)
        elif kind in self.record.created:
            self.record.forget(kind)

    def plan(self, would: str, value: Any = None) -> None:
        """State the change the step is about to make (``"create project 'x'"``).

        In a dry run the step stops here: its result is ``planned``, "would <would>", with
        ``value`` (what later steps of the dry run read); otherwise this returns and the step
        makes the change. The one dry-run exit every step shares.
        """
        if self.params.dry_run:
            raise Planned(would, value)

    def create(
        self,
        kind: str,
        would: str,
        make: Callable[[], R],
        *,
        pending: Any = None,
        keep: Callable[[R], Any] | None = None,
    ) -> R:
        """Plan ``would``, then ``make()`` it and record it as ``kind``: a step's usual change.

        ``pending`` (when given) is recorded as ``kind`` before the call, so a rerun after an
        answer lost on the way back knows the thing may exist and is this deployment's;
        what :meth:`note` records afterwards is ``keep(made)`` (default: ``made`` itself).
        """
        self.plan(would)
        if pending is not None:
            self.note(kind, pending)
        made = make()
        self.note(kind, made if keep is None else keep(made))
        return made

    async def create_async(
        self,
        kind: str,
        would: str,
        make: Callable[[], Awaitable[R]],
        *,
        pending: Any = None,
        keep: Callable[[R], Any] | None = None,
    ) -> R:
        """:meth:`create` for a coroutine function."""
        self.plan(would)
        if pending is not None:
            self.note(kind, pending)
        made = await make()
        self.note(kind, made if keep is None else keep(made))
        return made

    def retire_later(self, *entries: Any) -> None:
        """Add ``entries`` to the retiring list: ``finish_rotation`` removes them."""
        retiring = list(self.record.created.get(self.retiring, []))
        new = [e for e in entries if e not in retiring]
        if new:
            self.note(self.retiring, retiring + new)

    def unretire(self, entry: Any) -> None:
        """Take ``entry`` out of the retiring list: the stored values still use it.

        A rotation records the credential it replaces before making the new one; when it
        stopped before that, a rerun reuses the stored credential, which must not then be
        removed by ``finish_rotation``.
        """
        retiring = list(self.record.created.get(self.retiring, []))
        if entry in retiring:
            self.note(self.retiring, [e for e in retiring if e != entry])

    def write_values(self) -> Result[ValuesFiles | None]:
        """Write ``config.yaml`` and ``secret.yaml`` (0600); skipped when nothing was made."""
        values = self.values() if self.secret is not None else None
        if values is None or self.params.dry_run:  # a dry run writes nothing, even a reused secret
            return Result(None, "skipped", "nothing to write (dry run or teardown)")
        access = self.params.pull_access
        if access == "secret" and self.pull_secret is None:
            raise RuntimeError("pull_access is 'secret' but no pull credential was made (a bug)")
        pull = self.pull_secret if access == "secret" else None
        values = replace(values, pull=pull, pull_access=access)
        files = write_values(self.params.output_dir, values, source=self.NOTEBOOK)
        users = {
            "secret": "user pods pull with jupyterhub.imagePullSecret",
            "node": "user pods pull with the nodes' identity",
            "none": "user pods pull anonymously",
        }[access]
        return Result(files, "done", f"{files.config_path} and {files.secret_path} (0600); {users}")

    def diagnose(self) -> str | None:
        """After a failed verification: why, in the registry's own view of the credential it
        made (expired, disabled, deleted), or None to keep verify's diagnosis."""
        return None

    def storage_used(self) -> Usage | None:
        """Storage used against the limit, as the registry's API tells it; None where it tells
        nothing (or nothing was made). May return an awaitable."""
        return None

    async def report_storage(self) -> Result[Usage | None]:
        """The registry's storage used against its limit (:meth:`storage_used`), warning above
        80% of it."""
        if self.params.teardown:
            return Result(None, "skipped", "teardown: nothing to measure")
        found = await _maybe_await(self.storage_used())
        status, detail = storage_row(found)  # the row verify's report shows too
        return Result(found, "done" if status == "ok" else status, detail)

    def verify(self, files: ValuesFiles | None) -> Result[VerificationReport | None]:
        """BinderHub's handshake and a push with the written files (skipped without them).

        A failure names the cause :meth:`diagnose` finds, when it finds one.
        """
        try:
            return verify_step(files, self.ca_file, self.HINTS)
        except VerificationFailed as failed:
            diagnosis = self.diagnose()
            if diagnosis is None:
                raise
            report = failed.report
            if report is not None and report.checks:
                report.checks[-1].detail = diagnosis
            raise VerificationFailed(failed.check, diagnosis, report) from None

    @stops_at_plan
    async def finish_rotation(self) -> Result[None]:
        """After verification: remove the credentials a rotation replaced (kept until then).

        Any run whose values verified removes every recorded one, rotating or not; with
        ``keep_replaced`` none is removed, so a deployed BinderHub that still uses one goes
        on working until the new ``secret.yaml`` is deployed and a run without it follows.
        """
        retiring = list(self.record.created.get(self.retiring, []))
        if not retiring:
            return Result(None, "skipped", "no replaced credential to remove")
        if self.params.keep_replaced:
            kept = (
                f"{len(retiring)} replaced credential(s): deploy the new "
                f"{self.values_to_deploy()}, then rerun without keep_replaced to remove them"
            )
            self.plan(f"keep {kept}")
            return Result(None, "done", f"kept {kept}")
        self.plan(f"remove {len(retiring)} replaced credential(s)")
        await _maybe_await(self.retire(retiring))
        self.record.forget(self.retiring)
        return Result(
            None, "deleted", f"removed {len(retiring)} replaced credential(s): the new one works"
        )

    @stops_at_plan
    async def teardown(self) -> Result[None]:
        """With ``teardown = True``: delete what this notebook recorded creating, in order.

        Things it found and reused stay; :meth:`check_ours` first proves what the record names
        is this deployment's. Each deletion is recorded at once, so an
        interrupted teardown resumes; ``secret.yaml`` goes last.
        """
        p = self.params
        if not p.teardown:
            return Result(None, "skipped", "teardown = False: nothing is deleted")
        created = self.record.created
        plan = [d for d in self.deletions() if created.get(d.kind)]
        if not plan:
            return Result(None, "skipped", "nothing recorded as created by this notebook")
        await _maybe_await(self.check_ours())  # a dry run too: its plan must not name another's
        self.plan("delete " + ", ".join(d.label for d in plan))
        for deletion in plan:
            try:
                await _maybe_await(deletion.action(created[deletion.kind]))
            except Exception as exc:
                if not self.gone(exc):
                    raise
            self.record.forget(deletion.kind)
        (p.output_dir / "secret.yaml").unlink(missing_ok=True)
        done = ", ".join(d.label for d in plan)
        return Result(None, "deleted", f"{done}; secret.yaml removed")


async def _maybe_await(value: Any) -> Any:
    return await value if isinstance(value, Awaitable) else value


@dataclass(frozen=True)
class RealExample:
    """A provider's real-mode values as the docs show them: example parameters, the example
    text's placeholders, and how its connection renders BinderHub's values from them."""

    overrides: dict[str, Any]  # parameters set on top of the notebook's parameters cell
    placeholders: dict[str, str]  # example text in the rendered values -> what the reader types
    build: Callable[[Any], RegistryValues]  # validated real-mode Params -> the provider's values


class Provider(Protocol):
    """What a provider module defines (a module satisfies this protocol structurally)."""

    KEY: str  # the registry key, also the provider name in the record
    NAME: str  # display name, e.g. "Docker Hub"
    NOTEBOOK: str  # notebook stem, the default output_dir's last part
    PARAMETERS: tuple[Parameter, ...]  # its own parameters, then COMMON_PARAMETERS
    REAL_EXAMPLE: RealExample  # its real-mode values in the docs (no call is made)
    GUIDE: GuideEntry  # what the docs' landing page says of it

    @property
    def Params(self) -> type[CommonParams]:  # noqa: N802 (the class a module defines)
        """What ``validate`` returns (``REPLACED_STOPS``, ``PULL_NODE``: see the docstring above).

        A property: read-only, so each module's own subclass satisfies it.
        """
        ...

    def validate(
        self, values: Mapping[str, Any] | None = None, /, **overrides: Any
    ) -> CommonParams:
        """Check every parameter (no network); raise InvalidParameter for the first bad one."""
        ...

    def sign_in(self, params: Any) -> Result[Any]:
        """Sign in (sandbox or real endpoints and credentials); the result is a Connection."""
        ...


#: a MyST footnote reference, ``[^name]``
_FOOTNOTE_REF = re.compile(r"\[\^([\w-]+)\](?!:)")


def _row(label: str) -> Any:
    """A cell of the registry matrix: ``label`` is its row's first cell (MyST)."""
    return field(metadata={"row": label})


@dataclass(frozen=True)
class GuideEntry:
    """A provider's place on the docs' landing page, which ``docs/_ext/guide.py`` renders from
    every registered provider, so a new registry adds its declaration and leaves
    ``docs/index.md`` alone: its row of the guide's table (section, title, status), its item of
    "Choose your registry" (name, choose) and its column of the registry matrix (one field per
    row; the field's ``row`` metadata is the row's label).

    Text is MyST markdown, inline. A cell cites a source as a footnote, ``[^name]``, whose text is
    ``notes[name]`` (MyST too, with links); the name is unique on the page, and the footnotes
    show under the matrix, numbered in the order the matrix cites them.
    """

    section: str  # the guide section its notebook does ("2.1"), or "Beyond the guide"
    title: str  # the registry, as the guide's table names it after the section
    name: str  # the matrix column's header (the section follows it in brackets)
    choose: str  # when to choose it: "Choose your registry" puts it after the name, in bold
    cost: str = _row("Cost model")
    limits: str = _row("Limits to know")
    needs: str = _row("What you need")
    credential: str = _row("Credential the notebook creates")
    pull_credential: str = _row('User pods\' credential (`pull_access = "secret"`)')
    rotation: str = _row("Rotation")
    expires: str = _row("What expires")
    notes: dict[str, str] = field(default_factory=dict)  # footnote name -> its text
    status: str = "ready"  # the guide table's Status column

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d\.\d|Beyond the guide", self.section):
            raise ValueError(f'section must be "2.x" or "Beyond the guide": {self.section!r}')
        cited = {name for _, text in self.cells() for name in _FOOTNOTE_REF.findall(text)}
        if cited != set(self.notes):
            missing, unused = sorted(cited - set(self.notes)), sorted(set(self.notes) - cited)
            raise ValueError(f"notes must define what the cells cite: {missing=} {unused=}")

    def row(self) -> str:
        """Its first cell in the guide's table: the section, then the title."""
        sep = ":" if self.section == "Beyond the guide" else ""
        return f"{self.section}{sep} {self.title}"

    def column(self) -> str:
        """Its column's header in the matrix: the name, then the section in brackets."""
        return f"{self.name} ({self.section[0].lower()}{self.section[1:]})"

    def cells(self) -> list[tuple[str, str]]:
        """The matrix column, top to bottom: (row label, cell)."""
        return [(f.metadata["row"], getattr(self, f.name)) for f in fields(self) if f.metadata]

    def sort_key(self) -> tuple[int, ...]:
        """The guide's order: its sections 2.1, 2.2, ..., then what is beyond it."""
        if self.section == "Beyond the guide":
            return (1,)
        return (0, *(int(n) for n in self.section.split(".")))
