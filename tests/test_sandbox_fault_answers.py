"""An injected fault answers in the protocol of the API it hits (``Backend.fault_answer``).

IAM and STS speak AWS's query protocol: botocore reads their errors as XML only, so a JSON
fault body there was its ``ResponseParserError``, where AWS's own answer is a ``ClientError``
with the status and the error code the step runner classifies. Evidence: AWS "Common Errors"
(InternalFailure 500, ServiceUnavailable 503), botocore ``parsers.QueryParser`` and
``retries/standard.py`` (Throttling).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from .helpers import EcrBox

ONCE = {"total_max_attempts": 1, "mode": "standard"}  # botocore's own retries off: one answer


def _iam(box: EcrBox) -> Any:
    return box.client("iam", retries=ONCE).list_roles()


def _sts(box: EcrBox) -> Any:
    return box.client("sts", retries=ONCE).get_caller_identity()


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "ServiceUnavailable"), (500, "InternalFailure"), (429, "Throttling")],
)
@pytest.mark.parametrize(("segment", "call"), [("iam", _iam), ("sts", _sts)])
def test_a_fault_on_iam_or_sts_is_a_client_error_with_aws_s_code(
    ecr: EcrBox, segment: str, call: Any, status: int, code: str
) -> None:
    fault = {"method": "*", "path": f"^/ecr/{segment}", "status": status, "retry_after": 1}
    assert ecr.admin_post("faults", [fault]).status_code == 201
    with pytest.raises(ClientError) as caught:
        call(ecr)
    answer = caught.value.response
    assert answer["Error"]["Code"] == code
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == status
    assert answer["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    call(ecr)  # the fault is used up: the real answer


def test_botocore_retries_an_iam_fault_and_succeeds(ecr: EcrBox) -> None:
    fault = {"method": "*", "path": "^/ecr/iam", "status": 503, "times": 2}
    assert ecr.admin_post("faults", [fault]).status_code == 201
    answer = ecr.client("iam").list_roles()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2


def test_a_fault_s_own_body_and_other_apis_keep_the_sandbox_s_json(ecr: EcrBox) -> None:
    body = {"__type": "ThrottlingException", "message": "Rate exceeded"}
    faults = [
        {"method": "*", "path": "^/ecr/api", "status": 503},
        {"method": "*", "path": "^/ecr/api", "status": 400, "body": body},
    ]
    assert ecr.admin_post("faults", faults).status_code == 201
    ecr_client = ecr.client("ecr", retries=ONCE)
    with pytest.raises(ClientError) as plain:  # JSON protocol: the status is botocore's code
        ecr_client.describe_repositories()
    assert plain.value.response["Error"]["Code"] == "503"
    assert plain.value.response["Error"]["Message"] == "injected fault 503"
    with pytest.raises(ClientError) as given:
        ecr_client.describe_repositories()
    assert given.value.response["Error"]["Code"] == "ThrottlingException"
