"""What every registry's cleanup shares: the ``retention_days`` parameter, the storage used
against its limit (``usage.Usage``, the contract's ``report_storage``) and the sandbox's clock
(``POST /_sandbox/clock``), which moves every backend ahead and runs its cleanup policies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import requests

from binderhub_registry import InvalidParameter, providers, sandbox
from binderhub_registry.providers import Connection, Record
from binderhub_registry.usage import Usage, retention_text

from .helpers import HARBOR_DEFAULTS, common_params

GIB = 1 << 30


def test_retention_days_is_common_with_mybinder_orgs_default(tmp_path: Path) -> None:
    harbor = providers.get("harbor")
    values = HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values"), "dry_run": True}
    values.pop("retention_days", None)  # a parameters cell from before it
    assert harbor.validate(values).retention_days == 30
    assert harbor.validate(values, retention_days=0).retention_days == 0


@pytest.mark.parametrize("bad", [-1, 3651, "30", 7.5, True])
def test_a_bad_retention_days_is_one_line_naming_it(tmp_path: Path, bad: object) -> None:
    values = HARBOR_DEFAULTS | {"output_dir": str(tmp_path / "values"), "retention_days": bad}
    with pytest.raises(InvalidParameter) as caught:
        providers.get("harbor").validate(values)
    message = str(caught.value)
    assert "retention_days" in message and "whole number from 0 to 3650" in message
    assert "\n" not in message
    assert not (tmp_path / "values").exists()  # nothing made before the error


def test_the_rule_in_words() -> None:
    assert retention_text(30) == "images not pulled for 30 days are deleted"
    assert retention_text(1, "pushed") == "images not pushed for 1 day are deleted"
    assert retention_text(0) == "retention_days = 0: every image is kept"


def test_usage_warns_above_80_percent() -> None:
    low = Usage(int(1.5 * GIB), 200 * GIB, "Harbor project 'binderhub' quota")
    assert not low.warning
    assert low.text() == "1.5 GiB of 200.0 GiB used (0.8%): Harbor project 'binderhub' quota"
    high = Usage(170 * GIB, 200 * GIB, "OVH plan SMALL")
    assert high.warning and "above 80%" in high.text() and "retention_days" in high.text()
    unlimited = Usage(3 * GIB, None, "Artifact Registry repository size")
    assert not unlimited.warning and "no limit" in unlimited.text()


def test_report_storage_says_what_the_registry_tells(tmp_path: Path) -> None:
    params = common_params(tmp_path)

    class Full(Connection):
        def storage_used(self) -> Usage:
            return Usage(190 * GIB, 200 * GIB, "the plan's storage")

    silent = Connection(params, Record(tmp_path, "test"), None)
    assert asyncio.run(silent.report_storage()).status == "skipped"
    result = asyncio.run(Full(params, Record(tmp_path, "test"), None).report_storage())
    assert result.status == "warning" and result.detail.startswith("190.0 GiB of 200.0 GiB")


def test_the_sandbox_clock_moves_every_backend(fresh: sandbox.Sandbox) -> None:
    ran = fresh.advance_clock(31)
    assert set(ran) >= set(providers.keys())  # one answer per backend, what each deleted
    with pytest.raises(requests.HTTPError, match="advance_days"):
        fresh.advance_clock(-1)
