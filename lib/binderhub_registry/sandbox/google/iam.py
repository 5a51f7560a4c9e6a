"""The IAM admin service over gRPC (``google.iam.admin.v1.IAM``), on its own TLS port.

Built from google-cloud-iam's own message types (``google.cloud.iam_admin_v1.types``), so the
real ``IAMClient`` talks to it unchanged. Imported only when the sandbox attaches the Google
backend (grpcio and google-cloud-iam are the ``google`` extra).

=============================================  ================================================
behaviour                                      source
=============================================  ================================================
methods and messages: GetServiceAccount,       google/iam/admin/v1/iam.proto, as shipped in
CreateServiceAccount, DeleteServiceAccount,    google-cloud-iam (the client's stubs name the
PatchServiceAccount,                           method paths ``/google.iam.admin.v1.IAM/...``)
ListServiceAccountKeys,
CreateServiceAccountKey,
DeleteServiceAccountKey, GetIamPolicy,
SetIamPolicy (a service account's own
policy, ``google.iam.v1`` messages)
names ``projects/{p|-}/serviceAccounts/        iam.proto comments (resource names; ``-`` as
{email}[/keys/{key}]``                         the project wildcard)
existing account: ALREADY_EXISTS; unknown:     cloud.google.com/iam/docs/reference/rpc
NOT_FOUND; no token: UNAUTHENTICATED;          (google.rpc.Code), status names as the API
not an owner: PERMISSION_DENIED               answers them
IAM API disabled, or just enabled              the REST body of :func:`.rest.
(``disabled_after_enable``):                   service_disabled_error`` (captured in
PERMISSION_DENIED with Help and ErrorInfo      terraform-example-foundation#1133), carried as
``SERVICE_DISABLED`` in the rich status        gRPC carries details (``grpc-status-details-bin``,
                                               read by google-api-core's ``from_grpc_error``)
a new account's calls answer as                see :mod:`.models`; the 403's text as terraform-
``new_account_answers`` lists (PERMISSION_     provider-google#10227 quotes it ("Permission
DENIED "Permission iam.serviceAccounts.get     iam.serviceAccounts.get is required to perform
is required ...", NOT_FOUND, ...)              this operation on service account ...")
key limit, org policy, eventual consistency,   see :mod:`.models`
a Workload Identity pool that does not exist
SetIamPolicy with a stale etag: ABORTED;       cloud.google.com/iam/docs/policies#etag; the
an empty etag overwrites                       ``etag`` field comment in google/iam/v1/policy.proto
GetIamPolicy at ``options.                     GetPolicyOptions in google/iam/v1/options.proto;
requested_policy_version``; conditions and     versions and conditions: see :mod:`.models`
versions as in :mod:`.models`
PatchServiceAccount changes only             PatchServiceAccountRequest in iam.v1's
``display_name`` and ``description``, named    discovery document ("You can patch only the
in ``update_mask``; other paths:               display_name and description fields. You must
INVALID_ARGUMENT                               use the update_mask field"); the status of a
                                               bad mask: assumption
``description`` kept as given, at most 256     ServiceAccount.description in iam.v1's discovery
UTF-8 bytes (longer: INVALID_ARGUMENT,         document ("The maximum length is 256 UTF-8
assumption); ``display_name`` at most 100      bytes"), displayName ("100 UTF-8 bytes")
injected faults (``grpc_faults``): a status    sandbox knob: the App's HTTP faults cannot reach
before the call, or after it (``after``: the   a gRPC port
call is carried out and its answer lost)
=============================================  ================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.cloud.iam_admin_v1 import types
from google.iam.v1 import iam_policy_pb2, policy_pb2  # type: ignore[import-untyped]
from google.protobuf import empty_pb2  # type: ignore[import-untyped]
from google.type import expr_pb2  # type: ignore[import-untyped]

from .models import (
    KEY_LIMIT,
    LAG_KINDS,
    Host,
    ServiceAccount,
    missing_pool,
    new_key,
    policy_refusal,
    policy_view,
    rsa_pair,
)
from .rest import service_disabled_error

__all__ = ["IamServer"]

SERVICE = "google.iam.admin.v1.IAM"


class _Abort(Exception):
    def __init__(
        self, code: grpc.StatusCode, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []  # google.rpc details, as the REST body's "details"


def _rich_status(abort: _Abort) -> Any:
    """``abort`` as a grpc status with its details (ErrorInfo, Help, PreconditionFailure)."""
    from google.protobuf import any_pb2, json_format
    from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
    from grpc_status import rpc_status  # type: ignore[import-untyped]

    kinds = {
        "type.googleapis.com/google.rpc.ErrorInfo": error_details_pb2.ErrorInfo,
        "type.googleapis.com/google.rpc.Help": error_details_pb2.Help,
        "type.googleapis.com/google.rpc.PreconditionFailure": error_details_pb2.PreconditionFailure,
    }
    packed = []
    for detail in abort.details:
        fields = {k: v for k, v in detail.items() if k != "@type"}
        message = json_format.ParseDict(fields, kinds[detail["@type"]]())
        wrapper = any_pb2.Any()
        wrapper.Pack(message)
        packed.append(wrapper)
    return rpc_status.to_status(
        status_pb2.Status(code=abort.code.value[0], message=abort.message, details=packed)
    )


#: The permission a new account's lagging call is refused (terraform-provider-google#10227).
_LAG_PERMISSIONS = {
    "read": "iam.serviceAccounts.get",
    "keys": "iam.serviceAccountKeys.create",
    "policy": "iam.serviceAccounts.getIamPolicy",
}


class _Pb:
    """A plain protobuf message type with proto-plus's (de)serialize names."""

    def __init__(self, message: Any) -> None:
        self.deserialize = message.FromString
        self.serialize = message.SerializeToString


_POLICY = _Pb(policy_pb2.Policy)


def _check_texts(account: Any) -> None:
    """IAM's length limits on a service account's free texts (iam.v1 discovery document)."""
    if len(account.description.encode()) > 256 or len(account.display_name.encode()) > 100:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "description or display name too long")


def _condition(expr: Any) -> dict[str, str]:
    """A binding's ``google.type.Expr`` as the fake keeps it (its set fields)."""
    fields = ("title", "expression", "description", "location")
    return {f: getattr(expr, f) for f in fields if getattr(expr, f)}


class IamServer:
    """A grpc server for the IAM admin methods the notebook uses, over the cloud's project."""

    def __init__(self, cloud: Host, cert: bytes, key: bytes, port: int = 0) -> None:
        self.cloud = cloud
        # the next key's RSA pair is made ahead, off the request (2048 bits: ~0.1 s of CPU
        # that CreateServiceAccountKey would otherwise keep the notebook waiting for)
        self._pairs = futures.ThreadPoolExecutor(1, thread_name_prefix="sandbox-rsa")
        self._next_pair = self._pairs.submit(rsa_pair)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        methods: dict[str, tuple[Callable[[Any], Any], Any, Any]] = {
            "GetServiceAccount": (
                self.get_account,
                types.GetServiceAccountRequest,
                types.ServiceAccount,
            ),
            "CreateServiceAccount": (
                self.create_account,
                types.CreateServiceAccountRequest,
                types.ServiceAccount,
            ),
            "DeleteServiceAccount": (self.delete_account, types.DeleteServiceAccountRequest, None),
            "PatchServiceAccount": (
                self.patch_account,
                types.PatchServiceAccountRequest,
                types.ServiceAccount,
            ),
            "ListServiceAccountKeys": (
                self.list_keys,
                types.ListServiceAccountKeysRequest,
                types.ListServiceAccountKeysResponse,
            ),
            "CreateServiceAccountKey": (
                self.create_key,
                types.CreateServiceAccountKeyRequest,
                types.ServiceAccountKey,
            ),
            "DeleteServiceAccountKey": (
                self.delete_key,
                types.DeleteServiceAccountKeyRequest,
                None,
            ),
            "GetIamPolicy": (self.get_policy, _Pb(iam_policy_pb2.GetIamPolicyRequest), _POLICY),
            "SetIamPolicy": (self.set_policy, _Pb(iam_policy_pb2.SetIamPolicyRequest), _POLICY),
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._wrap(name, fn),
                request_deserializer=request_type.deserialize,
                response_serializer=(
                    response_type.serialize if response_type else empty_pb2.Empty.SerializeToString
                ),
            )
            for name, (fn, request_type, response_type) in methods.items()
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        credentials = grpc.ssl_server_credentials([(key, cert)])
        self.port = self.server.add_secure_port(f"127.0.0.1:{port}", credentials)
        self.server.start()

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT``, the gRPC target."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving (sandbox exit)."""
        self.server.stop(grace=None)
        self._pairs.shutdown(wait=False, cancel_futures=True)

    def _wrap(
        self, name: str, fn: Callable[[Any], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            cloud = self.cloud
            with cloud.lock:
                fault = cloud.grpc_fault(name)
                try:
                    if fault and not fault.get("after"):
                        raise _Abort(grpc.StatusCode[fault["code"]], "injected fault")
                    self._auth(context)
                    answer = fn(request)
                    if fault:  # carried out, answer lost
                        raise _Abort(grpc.StatusCode[fault["code"]], "injected fault")
                except _Abort as abort:
                    cloud.log_grpc(name, abort.code.name)
                    if abort.details:
                        context.abort_with_status(_rich_status(abort))
                    context.abort(abort.code, abort.message)
                cloud.log_grpc(name, "OK")
            return answer if answer is not None else empty_pb2.Empty()

        return handle

    # --- helpers --------------------------------------------------------------------
    def _auth(self, context: grpc.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata())
        header = str(metadata.get("authorization", ""))
        email = self.cloud.project.principal(
            header[7:] if header.lower().startswith("bearer ") else ""
        )
        if email is None:
            raise _Abort(
                grpc.StatusCode.UNAUTHENTICATED, "Request had invalid authentication credentials."
            )
        if f"serviceAccount:{email}" not in self.cloud.project.owners:
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED, "The caller does not have permission")
        if self.cloud.project.refuses("iam.googleapis.com"):
            message, details = service_disabled_error(self.cloud.project, "iam.googleapis.com")
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED, message, details)

    def _project(self, name: str) -> None:
        project = self.cloud.project
        if name not in (project.id, project.number, "-"):
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED, f"Permission denied on project {name}")

    def _account(self, name: str, read: bool = False, kind: str = "") -> ServiceAccount:
        parts = name.split("/")
        if len(parts) < 4 or parts[0] != "projects" or parts[2] != "serviceAccounts":
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource name {name}")
        self._project(parts[1])
        ref = parts[3]
        project = self.cloud.project
        account = project.accounts.get(ref) or next(
            (a for a in project.accounts.values() if a.unique_id == ref), None
        )
        if account is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Unknown service account {ref}")
        if read and account.reads_hidden > 0:  # not yet visible everywhere
            account.reads_hidden -= 1
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Unknown service account {ref}")
        lag = account.lagging("read" if read else kind) if read or kind else None
        if lag == "PERMISSION_DENIED":
            permission = _LAG_PERMISSIONS["read" if read else kind]
            raise _Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission {permission} is required to perform this operation on service "
                f"account {name}.",
            )
        if lag == "NOT_FOUND":
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Unknown service account {ref}")
        if lag is not None:
            raise _Abort(grpc.StatusCode[lag], f"Invalid service account {ref}")
        return account

    def _message(self, account: ServiceAccount) -> Any:
        project = self.cloud.project
        return types.ServiceAccount(
            name=f"projects/{project.id}/serviceAccounts/{account.email}",
            project_id=project.id,
            unique_id=account.unique_id,
            email=account.email,
            display_name=account.display_name,
            description=account.description,
            oauth2_client_id=account.unique_id,
        )

    # --- methods --------------------------------------------------------------------
    def get_account(self, request: Any) -> Any:
        """GetServiceAccount."""
        return self._message(self._account(request.name, read=True))

    def create_account(self, request: Any) -> Any:
        """CreateServiceAccount: ALREADY_EXISTS when the id is taken."""
        project = self.cloud.project
        self._project(request.name.removeprefix("projects/"))
        account_id = request.account_id
        if not (6 <= len(account_id) <= 30) or not account_id[0].isalpha():
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid account id {account_id}")
        email = f"{account_id}@{project.id}.iam.gserviceaccount.com"
        _check_texts(request.service_account)
        if email in project.accounts:
            raise _Abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"Service account {account_id} already exists within project "
                f"projects/{project.id}.",
            )
        account = ServiceAccount(
            email,
            project.next_id(),
            request.service_account.display_name,
            request.service_account.description,
            reads_hidden=int(project.settings["not_found_after_create"]),
            lag={
                kind: list(project.settings["new_account_answers"].get(kind, []))
                for kind in LAG_KINDS
            },
        )
        project.accounts[email] = account
        return self._message(account)

    def patch_account(self, request: Any) -> Any:
        """PatchServiceAccount: ``display_name`` and ``description``, as ``update_mask`` names."""
        account = self._account(request.service_account.name)
        paths = list(request.update_mask.paths)
        wrong = [f for f in paths if f not in ("display_name", "description")]
        if not paths or wrong:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid update mask {paths}")
        _check_texts(request.service_account)
        if "display_name" in paths:
            account.display_name = request.service_account.display_name
        if "description" in paths:
            account.description = request.service_account.description
        return self._message(account)

    def delete_account(self, request: Any) -> None:
        """DeleteServiceAccount: its keys go with it, and so do its grants."""
        account = self._account(request.name)
        project = self.cloud.project
        del project.accounts[account.email]
        for token, email in list(project.tokens.items()):
            if email == account.email:
                del project.tokens[token]

    def list_keys(self, request: Any) -> Any:
        """ListServiceAccountKeys (user-managed keys; system-managed ones are not modelled)."""
        account = self._account(request.name, kind="keys")
        return types.ListServiceAccountKeysResponse(
            keys=[
                types.ServiceAccountKey(
                    name=f"{request.name}/keys/{key.id}",
                    key_algorithm=types.ServiceAccountKeyAlgorithm.KEY_ALG_RSA_2048,
                    key_origin=types.ServiceAccountKeyOrigin.GOOGLE_PROVIDED,
                    key_type=types.ListServiceAccountKeysRequest.KeyType.USER_MANAGED,
                )
                for key in account.keys.values()
            ]
        )

    def create_key(self, request: Any) -> Any:
        """CreateServiceAccountKey: the key file JSON in ``private_key_data``."""
        account = self._account(request.name, kind="keys")
        project = self.cloud.project
        policy = project.settings["key_creation_disabled"]
        if policy:
            managed = ".managed" if policy == "managed" else ""
            text = "Key creation is not allowed on this service account."
            violation = {
                "type": f"constraints/iam{managed}.disableServiceAccountKeyCreation",
                "subject": f"{request.name}?configvalue={account.email.replace('@', '%40')}",
                "description": text,
            }
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                text,
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                        "violations": [violation],
                    }
                ],
            )
        if len(account.keys) >= KEY_LIMIT:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, "Precondition check failed.")
        pair, self._next_pair = self._next_pair.result(), self._pairs.submit(rsa_pair)
        key, info = new_key(project, account, self.cloud.token_uri, pair)
        return types.ServiceAccountKey(
            name=f"projects/{project.id}/serviceAccounts/{account.email}/keys/{key.id}",
            private_key_type=types.ServiceAccountPrivateKeyType.TYPE_GOOGLE_CREDENTIALS_FILE,
            key_algorithm=types.ServiceAccountKeyAlgorithm.KEY_ALG_RSA_2048,
            private_key_data=json.dumps(info, indent=2).encode(),
            key_origin=types.ServiceAccountKeyOrigin.GOOGLE_PROVIDED,
            key_type=types.ListServiceAccountKeysRequest.KeyType.USER_MANAGED,
        )

    def delete_key(self, request: Any) -> None:
        """DeleteServiceAccountKey."""
        account_name, _, key_id = request.name.rpartition("/keys/")
        account = self._account(account_name)
        if key_id not in account.keys:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Unknown key {key_id}")
        del account.keys[key_id]

    def _policy(self, account: ServiceAccount, requested: int) -> Any:
        version, bindings = policy_view(account.bindings, requested)
        return policy_pb2.Policy(
            version=version,
            etag=account.etag,
            bindings=[
                policy_pb2.Binding(
                    role=b["role"],
                    members=b["members"],
                    condition=expr_pb2.Expr(**b["condition"]) if "condition" in b else None,
                )
                for b in bindings
            ],
        )

    def get_policy(self, request: Any) -> Any:
        """GetIamPolicy of a service account, at ``options.requested_policy_version``."""
        account = self._account(request.resource, kind="policy")
        return self._policy(account, request.options.requested_policy_version)

    def set_policy(self, request: Any) -> Any:
        """SetIamPolicy of a service account: a stale etag is ABORTED."""
        account = self._account(request.resource, kind="policy")
        policy = request.policy
        if policy.etag and policy.etag != account.etag:
            raise _Abort(
                grpc.StatusCode.ABORTED,
                "There were concurrent policy changes. Please retry the whole read-modify-write "
                "with exponential backoff.",
            )
        bindings = [
            {"role": b.role, "members": sorted(b.members)}
            | ({"condition": _condition(b.condition)} if b.HasField("condition") else {})
            for b in policy.bindings
            if b.members
        ]
        refused = missing_pool(
            self.cloud.project, [m for b in bindings for m in b["members"]]
        ) or policy_refusal(account.bindings, policy.version, bindings, bool(policy.etag))
        if refused:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, refused)
        account.bindings = bindings
        account.policy_version += 1
        return self._policy(account, policy.version)
