"""The error tree and its one mapping from foreign faults (HTTP statuses, requests, gRPC)."""

from __future__ import annotations

import email.utils
import pickle
import time
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from binderhub_registry import errors
from binderhub_registry.errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    InvalidParameter,
    InvalidValuesFile,
    MissingCredentials,
    PermissionDenied,
    SandboxError,
    TransientCloudError,
    Translator,
    VerificationFailed,
    error_for_status,
    grpc_error,
    http_error,
    map_exceptions,
    requests_errors,
    retry_after,
)

# --- pickling -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "attributes"),
    [
        (BinderHubRegistryError("root"), {}),
        (InvalidParameter("acr_name", "must be 5 to 50 letters", "ab"), {"name": "acr_name"}),
        (InvalidValuesFile("secret.yaml", "not a mapping", 3), {"path": "secret.yaml", "line": 3}),
        (MissingCredentials("DOCKERHUB_PASSWORD", "set it"), {"what": "DOCKERHUB_PASSWORD"}),
        (AuthenticationFailed("refused"), {}),
        (PermissionDenied("not a member"), {}),
        (CloudError("gone", 410), {"status": 410}),
        (TransientCloudError("busy", 429, 2.5), {"status": 429, "retry_after": 2.5}),
        (VerificationFailed("push token", "no push"), {"check": "push token"}),
        (SandboxError("not running"), {}),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "",
)
def test_every_error_pickles_with_its_attributes(
    error: BinderHubRegistryError, attributes: dict[str, Any]
) -> None:
    error.add_note("a note")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error) and copy.args == error.args
    assert vars(copy) == vars(error)
    for name, value in attributes.items():
        assert getattr(copy, name) == value


def test_every_public_error_class_is_covered_by_the_pickle_test() -> None:
    classes = {
        obj
        for name in errors.__all__
        if isinstance(obj := getattr(errors, name), type) and issubclass(obj, Exception)
    }
    assert len(classes) == 10  # add new classes to the test above


def test_invalid_parameter_cuts_a_long_value_to_one_short_line() -> None:
    assert str(InvalidParameter("a", "rule", "ab")) == "parameter 'a': rule (got 'ab')"
    error = InvalidParameter("acr_name", "must be 5 to 50 letters", "x" * 10_000)
    message = str(error)
    assert len(message) < 120 and message.endswith("…)")
    assert "x" * 60 not in message
    assert error.value == "x" * 10_000  # the attribute keeps the whole value
    assert str(pickle.loads(pickle.dumps(error))) == message
    assert "\n" not in str(InvalidParameter("a", "rule", "line\n" * 50))


def test_invalid_values_file_names_file_and_line_only() -> None:
    error = InvalidValuesFile("/v/secret.yaml", "YAML syntax error: mapping values not allowed", 4)
    assert str(error) == "/v/secret.yaml, line 4: YAML syntax error: mapping values not allowed"
    assert str(InvalidValuesFile("c.yaml", "no such file")) == "c.yaml: no such file"
    assert isinstance(error, BinderHubRegistryError) and isinstance(error, ValueError)


# --- Retry-After --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: never negative
    ],
)
def test_retry_after_parses_seconds_and_rejects_garbage(
    value: str | None, expected: float | None
) -> None:
    assert retry_after(value) == expected


def test_retry_after_parses_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    wait = retry_after(when)
    assert wait is not None and 110 <= wait <= 121


# --- status tables ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, CloudError),
        (401, AuthenticationFailed),
        (403, PermissionDenied),
        (404, CloudError),
        (408, TransientCloudError),
        (409, CloudError),
        (425, TransientCloudError),
        (429, TransientCloudError),
        (500, TransientCloudError),
        (503, TransientCloudError),
    ],
)
def test_error_for_status_table(status: int, cls: type[BinderHubRegistryError]) -> None:
    error = error_for_status("Docker Hub", status, "nope", retry_after=4.0)
    assert type(error) is cls
    assert str(error) == f"Docker Hub answered {status}: nope"
    if isinstance(error, CloudError):
        assert error.status == status
    if isinstance(error, TransientCloudError):
        assert error.retry_after == 4.0


def test_error_for_status_keeps_messages_to_one_short_line() -> None:
    assert str(error_for_status("ACR", 404, "")) == "ACR answered 404"
    page = "<html>\n" + "x" * 1000 + "\n</html>"
    message = str(error_for_status("ACR", 502, page))
    assert "\n" not in message and len(message) < 350


@pytest.mark.parametrize(
    ("name", "cls", "status"),
    [
        ("UNAVAILABLE", TransientCloudError, 503),
        ("StatusCode.DEADLINE_EXCEEDED", TransientCloudError, 504),
        ("RESOURCE_EXHAUSTED", TransientCloudError, 429),
        ("ABORTED", TransientCloudError, 409),
        ("INTERNAL", TransientCloudError, 500),
        ("UNAUTHENTICATED", AuthenticationFailed, None),
        ("PERMISSION_DENIED", PermissionDenied, None),
        ("NOT_FOUND", CloudError, 404),
        ("ALREADY_EXISTS", CloudError, 409),
        ("FAILED_PRECONDITION", CloudError, 400),
        ("INVALID_ARGUMENT", CloudError, 400),
        ("UNIMPLEMENTED", CloudError, 501),
        ("something_new", CloudError, 500),
    ],
)
def test_grpc_error_by_status_name(
    name: str, cls: type[BinderHubRegistryError], status: int | None
) -> None:
    error = grpc_error("Artifact Registry", name, "details")
    assert type(error) is cls
    assert str(error).startswith("Artifact Registry answered ")
    assert getattr(error, "status", None) == status


# --- map_exceptions -----------------------------------------------------------------


class Foreign(Exception):
    pass


class MoreForeign(Foreign):
    pass


def test_map_exceptions_first_matching_class_wins_and_hides_the_original() -> None:
    table: dict[type[Exception], Translator] = {
        MoreForeign: lambda e: CloudError(f"more: {e}"),
        Foreign: lambda e: TransientCloudError(f"foreign: {e}"),
    }
    with pytest.raises(CloudError) as err, map_exceptions(table):
        raise MoreForeign("token=s3cret")
    assert type(err.value) is CloudError and str(err.value) == "more: token=s3cret"
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(TransientCloudError), map_exceptions(table):
        raise Foreign("x")


def test_map_exceptions_lets_ours_and_unlisted_through() -> None:
    table = {Exception: lambda e: CloudError("mapped")}
    ours = PermissionDenied("ours")
    with pytest.raises(PermissionDenied) as err, map_exceptions(table):
        raise ours
    assert err.value is ours
    with pytest.raises(KeyError), map_exceptions({Foreign: lambda e: CloudError("x")}):
        raise KeyError("unlisted")


def test_map_exceptions_is_a_decorator_too() -> None:
    @map_exceptions({Foreign: lambda e: SandboxError("mapped")})
    def fails() -> None:
        raise Foreign

    with pytest.raises(SandboxError):
        fails()


# --- requests and SDK errors with a status ------------------------------------------


def _mapped(exc: Exception, service: str = "the registry") -> BinderHubRegistryError:
    with pytest.raises(BinderHubRegistryError) as err, map_exceptions(requests_errors(service)):
        raise exc
    return err.value


@pytest.mark.parametrize(
    "exc",
    [
        requests.ConnectionError("reset"),
        requests.exceptions.ConnectTimeout("slow"),
        requests.exceptions.ReadTimeout("slow"),
        requests.exceptions.ChunkedEncodingError("cut"),
    ],
)
def test_requests_connection_faults_are_transient(exc: Exception) -> None:
    error = _mapped(exc, "Docker Hub")
    assert type(error) is TransientCloudError
    assert str(error) == f"cannot reach Docker Hub ({type(exc).__name__})"


def test_requests_tls_failure_is_not_transient_and_says_what_to_check() -> None:
    exc = requests.exceptions.SSLError(
        "HTTPSConnectionPool(host='x', port=443): Max retries exceeded (Caused by "
        "SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
        "verify failed: self-signed certificate (_ssl.c:1006)')))"
    )
    error = _mapped(exc, "Docker Hub")
    assert type(error) is CloudError
    assert str(error).startswith(
        "TLS verification of Docker Hub failed (certificate verify failed: self-signed "
        "certificate): check"
    )
    assert "CA" in str(error) and "clock" in str(error)


def test_requests_malformed_url_is_not_transient() -> None:
    error = _mapped(requests.exceptions.MissingSchema("no scheme"))
    assert type(error) is CloudError and "check the URL" in str(error)


def test_requests_http_error_goes_through_the_status_table() -> None:
    response = requests.Response()
    response.status_code, response.reason = 503, "Service Unavailable"
    response.headers["Retry-After"] = "7"
    error = _mapped(requests.HTTPError(response=response), "ACR")
    assert isinstance(error, TransientCloudError)
    assert (str(error), error.status, error.retry_after) == (
        "ACR answered 503: Service Unavailable",
        503,
        7.0,
    )


class FakeHttpResponseError(Exception):
    """The shape of azure-core's HttpResponseError, without azure-core."""

    def __init__(self, status: int | None, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status_code = status
        self.message = message
        self.response = SimpleNamespace(status_code=status, headers=headers)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthenticationFailed), (403, PermissionDenied), (429, TransientCloudError)],
)
def test_http_error_reads_azure_core_errors(status: int, cls: type[Exception]) -> None:
    exc = FakeHttpResponseError(status, "(AuthorizationFailed) no\nCode: x", {"retry-after": "2"})
    with pytest.raises(cls) as err, map_exceptions({FakeHttpResponseError: http_error("Azure")}):
        raise exc
    assert str(err.value) == f"Azure answered {status}: (AuthorizationFailed) no Code: x"
    if isinstance(err.value, TransientCloudError):
        assert err.value.retry_after == 2.0


def test_http_error_without_a_status_is_a_cloud_error() -> None:
    exc = FakeHttpResponseError(None, "no response", {})
    with pytest.raises(CloudError, match="Azure failed: no response"):
        with map_exceptions({FakeHttpResponseError: http_error("Azure")}):
            raise exc


def test_verification_failed_pickles_with_its_report() -> None:
    from binderhub_registry.verify import VerificationReport

    report = VerificationReport("r.example/p/x:t")
    report.add("push token", "refused", "failed")
    copy = pickle.loads(pickle.dumps(VerificationFailed("push token", "refused", report)))
    assert copy.report == report and copy.check == "push token"
