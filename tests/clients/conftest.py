"""The client tests run only under ``make test-clients``, which installs the clients first.

Elsewhere (``make test``, a bare ``pytest``) each is skipped with the reason
printed in the summary (``-ra``), rather than deselected without a word.
"""

from __future__ import annotations

import os

import pytest

#: Set by ``make test-clients``: the paths of the pinned Azure CLI and AWS CLI it installed.
AZ_ENV = "BHR_AZ_CLI"
AWS_ENV = "BHR_AWS_CLI"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(AZ_ENV) and os.environ.get(AWS_ENV):
        return
    skip = pytest.mark.skip(
        reason="drives a real cloud CLI (Azure's, AWS's): `make test-clients` installs them "
        "(.tools/) and runs this"
    )
    for item in items:
        if item.get_closest_marker("clients"):
            item.add_marker(skip)
