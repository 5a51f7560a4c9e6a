"""Faults on each creating call of every provider's notebook: survived, or stopped cleanly.

A clean run of the notebook (once per provider and session) gives the calls that
create something in the fake cloud and the census of what a finished run leaves.
Each scenario then injects one fault kind on one of those calls (kind ``i`` on
call ``i mod n``, so every call is hit) and runs the notebook again from the
seeded state. The run must either end verified with the clean census (no
duplicate, nothing missing), or stop with one line, after which a rerun without
faults ends with the clean census (nothing orphaned, no duplicate).

The kinds are what clouds send under load (RFC 9110 15.6 and 10.2.3: 429/503 with
``Retry-After`` as seconds or an HTTP date; 500, 502, 504), lost connections
before and after the request was carried out, and a slow answer.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nbformat
import pytest
from papermill.exceptions import PapermillExecutionError

from binderhub_registry import providers, sandbox
from binderhub_registry.providers import Provider

from .conftest import NOTEBOOKS, NotebookRun, outputs_text
from .test_contract import census, creating_calls

pytestmark = pytest.mark.notebook


def _http_date(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


#: Fault kinds, by name: the spec's keys besides method and path (a callable: made at use).
KINDS: dict[str, Any] = {
    "429-retry-after-seconds": {"status": 429, "retry_after": 1},
    "429-retry-after-http-date": lambda: {"status": 429, "retry_after": _http_date(2)},
    "500": {"status": 500},
    "502": {"status": 502},
    "503-twice": {"status": 503, "times": 2},
    "504-after-a-delay": {"delay": 0.5, "status": 504},
    "drop-before": {"drop": True},
    "drop-after": {"drop": True, "after": True},
    "delay-then-pass": {"delay": 1.0},
    "500-forever": {"status": 500, "times": 99},
}
#: Which errors may stop a run (each printed as one line).
STOP_ERRORS = {"TransientCloudError", "CloudError", "PermissionDenied", "VerificationFailed"}

#: Kinds left out per provider, because a list of its own already has them (its notebook test
#: file's fault list): each Azure run costs several times a Docker Hub one.
SKIP = {"azure": {"429-retry-after-seconds"}}

_clean: dict[str, tuple[Counter[str], list[dict[str, Any]]]] = {}


def clean_run(
    provider: Provider, box: sandbox.Sandbox, workdir: Path
) -> tuple[Counter[str], list[dict[str, Any]]]:
    """The census after a run without faults, and that run's creating calls (cached)."""
    if provider.KEY not in _clean:
        box.reset()
        (workdir / "clean").mkdir()
        NotebookRun(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb", workdir / "clean")()
        # one entry per (method, path), sorted: async steps may log in either order
        calls = [
            {"method": m, "path": path}
            for m, path in sorted({(c["method"], c["path"]) for c in creating_calls(box)})
        ]
        assert calls, "the notebook created nothing in the fake cloud"
        _clean[provider.KEY] = (census(box.state()), calls)
    return _clean[provider.KEY]


def one_line_stop(err: PapermillExecutionError, run: NotebookRun) -> None:
    """The run stopped with one of the package's errors, as one line in the notebook too."""
    assert err.ename in STOP_ERRORS, (err.ename, err.evalue)
    assert "\n" not in err.evalue
    out = nbformat.reads(run.last_output(), as_version=4)
    errors = [o for c in out.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1 and len(errors[0].traceback) == 1, errors


@pytest.mark.timeout(150)  # a hang shows within the suite's patience, not after 300 s
@pytest.mark.parametrize(
    ("key", "kind"),
    [(key, kind) for key in providers.keys() for kind in KINDS if kind not in SKIP.get(key, ())],
    ids=lambda value: str(value),
)
def test_a_fault_on_a_creating_call_is_survived_or_stops_cleanly(
    key: str, kind: str, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    provider = providers.get(key)
    clean, calls = clean_run(provider, fresh, tmp_path)
    fresh.reset()
    call = calls[list(KINDS).index(kind) % len(calls)]
    how = KINDS[kind]() if callable(KINDS[kind]) else KINDS[kind]
    fresh.add_faults({"method": call["method"], "path": f"^{re.escape(call['path'])}$"} | how)
    run = NotebookRun(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb", tmp_path)
    try:
        out = run()
    except PapermillExecutionError as err:
        one_line_stop(err, run)
        assert kind == "500-forever" or kind == "500", f"{kind} stopped the run: {err.evalue}"
        assert fresh.faults()[0]["times"] == 0 or kind == "500-forever"
        fresh.clear_faults()
        out = run()  # the rerun finishes what the stopped run began
    else:
        assert kind != "500-forever", "a fault that never heals cannot be survived"
        assert fresh.faults()[0]["times"] == 0, "the fault was never injected"
    assert "BinderHub finds the pushed image" in outputs_text(out)
    assert census(fresh.state()) == clean
