"""Google's eventual consistency, waited out in the SDKs' transports; the clients built on them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...steps import progress
from .errors import T, _error_info

# --- Google's eventual consistency -----------------------------------------------------------
_ACCOUNT_IN_NAME = re.compile(r"/serviceAccounts/([^/]+)")
#: A new service account's answers while it is not visible everywhere (DESIGN.md 9; terraform-
#: provider-google#10227: 403 on a read; magic-modules#8815 retries it).
_LAGGING = ("NOT_FOUND", "PERMISSION_DENIED", "INVALID_ARGUMENT")
#: An INVALID_ARGUMENT that is no lag: the member's Workload Identity pool has no GKE cluster
#: (terraform-google-kubernetes-engine#916); waiting does not make one.
_NOT_LAG = "Identity Pool does not exist"


@dataclass
class _Settling:
    """Retries, in the transports, exactly the answers Google says to wait out.

    - 403 SERVICE_DISABLED for an API Service Usage says is on in this project (this run
      enabled it, or found it on): "If you enabled this API recently, wait a few minutes for
      the action to propagate to our systems and retry" (the error's own text; Terraform's
      guide, "Newly activated service errors"), for up to ``api_deadline`` seconds;
    - NOT_FOUND, PERMISSION_DENIED or INVALID_ARGUMENT on a service account this run created
      (read, key list or create, its policy, a repository policy naming it), for up to
      ``account_deadline`` seconds, as Terraform retries them (terraform-provider-google#10227,
      PR #15677 / magic-modules#8815; DESIGN.md 9: ~90 s, as Google's samples).

    Anything else passes through at once: a disabled API nobody enabled, a refusal on an
    account made earlier, another project's answer. Each wait is shown as the running step's
    progress and kept in ``notes`` (what was waited for, and how often).

    Why a second retry beside the step runner's (``steps.Runner``), and not a predicate of it:

    - what is worth waiting for depends on what this run did (the APIs it enabled, the accounts
      it made, the project's number Service Usage named), which this object holds; the
      runner's ``transient`` sees only the exception, and one Runner serves every connection;
    - the answers are not faults: a SERVICE_DISABLED or PERMISSION_DENIED is a refusal
      (``PermissionDenied``), which the runner must never retry for anyone else;
    - the budget is time per reason (minutes for an enable, ``account_deadline`` for a new
      account: DESIGN.md 9, Terraform's), where the runner counts attempts (six, each wait
      under 30 s) of the whole step;
    - the call is repeated, not the step: a lag met after the step made something (a key, a
      binding) would rerun its look-ups and the checks of what is ours; and
      :func:`~.accounts._wait_visible` counts three good reads in a row itself (``paused``),
      which a retry of failures alone cannot.
    """

    consumers: set[str]  # projects/<id> (and projects/<number>, once Service Usage named it)
    first_wait: float
    max_wait: float
    api_deadline: float = 300.0
    account_deadline: float = 120.0
    enabled: set[str] = field(default_factory=set)  # APIs Service Usage says are on
    accounts: set[str] = field(default_factory=set)  # emails of accounts this run created
    paused: bool = False  # while a caller counts the answers itself (:func:`_wait_visible`)
    notes: dict[str, int] = field(default_factory=dict)  # why -> retries

    def why(self, code: str, reason: str, service: str, consumer: str, account: str) -> str:
        """The wait worth doing for a failed call, or ""."""
        if self.paused:
            return ""
        if reason == "SERVICE_DISABLED" and service in self.enabled and consumer in self.consumers:
            return (
                f"{service} was just enabled: Google answers SERVICE_DISABLED until the change "
                "reaches all its servers (its message says to wait a few minutes)"
            )
        if account in self.accounts and code in _LAGGING:
            return f"the new service account {account} is not visible everywhere yet ({code})"
        return ""

    def retry(self, call: Callable[[], T], failure: Callable[[T], str]) -> T:
        """``call()`` until ``failure`` of its outcome is "" or the deadline passes."""
        started, attempt = time.monotonic(), 0
        while True:
            outcome = call()
            why = failure(outcome)
            if not why:
                return outcome
            waited = time.monotonic() - started
            deadline = self.api_deadline if "SERVICE_DISABLED" in why else self.account_deadline
            if waited >= deadline:
                return outcome  # the caller raises the answer as it is
            attempt += 1
            self.notes[why] = self.notes.get(why, 0) + 1
            progress(f"{why}: waiting ({waited:.0f}s, attempt {attempt + 1})")
            time.sleep(min(self.first_wait * 2 ** min(attempt - 1, 16), self.max_wait))

    def rest_failure(self, status: int, content: bytes, body: Any) -> str:
        """:meth:`why` for a REST answer (Google's JSON error body)."""
        if status not in (400, 403, 404):
            return ""
        try:
            error = json.loads(content)["error"]
        except (ValueError, KeyError, TypeError):
            return ""
        if _NOT_LAG in str(error.get("message", "")):
            return ""
        reason, metadata = _error_info(error.get("details"))
        info = metadata if isinstance(metadata, dict) else {}
        named = re.findall(r"serviceAccount:([^\"\s,]+)", body if isinstance(body, str) else "")
        account = next((a for a in named if a in self.accounts), "")
        return self.why(
            str(error.get("status", "")),
            str(reason or ""),
            str(info.get("service", "")),
            str(info.get("consumer", "")),
            account,
        )

    def grpc_failure(self, call: Any, request: Any) -> str:
        """:meth:`why` for a gRPC outcome (ErrorInfo from the rich status)."""
        code = call.code() if callable(getattr(call, "code", None)) else None
        if code is None or code.name == "OK":
            return ""
        if callable(getattr(call, "details", None)) and _NOT_LAG in str(call.details() or ""):
            return ""
        reason = service = consumer = ""
        for key, value in call.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                reason, service, consumer = _grpc_error_info(value)
        name = str(getattr(request, "name", "") or getattr(request, "resource", "") or "")
        found = _ACCOUNT_IN_NAME.search(name)
        return self.why(code.name, reason, service, consumer, found.group(1) if found else "")


def _grpc_error_info(status: bytes) -> tuple[str, str, str]:
    """(reason, service, consumer) of the ErrorInfo in a ``grpc-status-details-bin`` value."""
    from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

    try:
        for detail in status_pb2.Status.FromString(status).details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                meta = dict(info.metadata)
                return info.reason, meta.get("service", ""), meta.get("consumer", "")
    except Exception:  # a malformed trailer: no reason to wait
        pass
    return "", "", ""


class _SettlingHttp:
    """An httplib2-like ``Http`` for google-api-python-client that retries as
    :class:`_Settling` says (everything else is the wrapped ``AuthorizedHttp``'s)."""

    def __init__(self, http: Any, settling: _Settling) -> None:
        self._http = http
        self._settling = settling

    def request(self, uri: str, method: str = "GET", body: Any = None, **kwargs: Any) -> Any:
        """``Http.request``, retried while Google settles."""
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return self._settling.retry(
            lambda: self._http.request(uri, method, body=body, **kwargs),
            lambda answer: self._settling.rest_failure(int(answer[0].status), answer[1], text),
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._http, name)


def _settling_interceptor(settling: _Settling) -> Any:
    """A gRPC client interceptor that retries IAM calls as :class:`_Settling` says."""
    import grpc  # type: ignore[import-untyped]

    class Interceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return settling.retry(
                lambda: continuation(details, request),
                lambda call: settling.grpc_failure(call, request),
            )

    return Interceptor()


# --- sign-in ------------------------------------------------------------------------------
def _trusting(session: Any, ca_file: str | None) -> None:
    """Make an SDK's requests session trust the sandbox's CA (and no proxy)."""
    if ca_file:
        session.verify = ca_file
        session.trust_env = False


def _rest_client(
    api: str,
    credentials: Any,
    endpoint: str | None,
    ca_file: str | None,
    settling: _Settling | None = None,
) -> Any:
    """A google-api-python-client service from its shipped discovery document (no download);
    its HTTP retries what ``settling`` says to wait out."""
    import google_auth_httplib2  # type: ignore[import-untyped]
    import httplib2  # type: ignore[import-untyped]
    from googleapiclient.discovery import build  # type: ignore[import-untyped]

    # the sandbox's CA, and no proxy from the environment (requests' trust_env=False)
    plain = (
        httplib2.Http(ca_certs=ca_file, proxy_info=None, timeout=60)
        if ca_file
        else httplib2.Http(timeout=60)
    )
    http: Any = google_auth_httplib2.AuthorizedHttp(credentials, http=plain)
    if settling is not None:
        http = _SettlingHttp(http, settling)
    options = {"api_endpoint": endpoint + "/"} if endpoint else None
    return build(
        api,
        "v1",
        http=http,
        client_options=options,
        static_discovery=True,
        cache_discovery=False,
    )
