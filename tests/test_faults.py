"""Faults on each creating call of every provider's notebook: survived, or stopped cleanly.

A clean run of the notebook (once per provider and worker) gives the calls that
create something in the fake cloud and the census of what a finished run leaves.
Each scenario then injects one fault kind on one of those calls (kind ``i`` on
call ``i mod n``, so every call is hit) and runs the notebook again from the
seeded state. The run must either end verified with the clean census (no
duplicate, nothing missing), or stop with one line, after which a rerun without
faults ends with the clean census (nothing orphaned, no duplicate).

The kinds are what clouds send under load (RFC 9110 15.6 and 10.2.3: 429/503 with
``Retry-After`` as seconds or an HTTP date; 500, 502, 504), lost connections
before and after the request was carried out, and a slow answer.

The matrix runs the notebook's cells in this process (:class:`~.conftest.InProcessRun`:
the same cells, step runner and SDK calls, no kernel) with the client's waits cut short:
what is asserted is the outcome, not the time a retry waits (the runner's waits are
tested in ``test_units.py``). A stop is then the package's error with a one-line
message; that the notebook shows it as one line is proven by the few cases that also
run through papermill (:data:`NOTEBOOK_CASES`), and by every bad-input test.
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

from .conftest import NOTEBOOKS, InProcessRun, NotebookRun, outputs_text
from .helpers import census, creating_calls

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
#: file's fault list).
SKIP = {"azure": {"429-retry-after-seconds"}}

#: The cases also run through papermill, in a kernel: a lost answer to a carried-out request
#: (survived) for every provider, and a fault that never heals (one line in the notebook, then
#: a clean rerun) where the client's own retries make it quick.
NOTEBOOK_CASES = [(key, "drop-after") for key in providers.keys()] + [("dockerhub", "500-forever")]


_clean: dict[str, tuple[Counter[str], list[dict[str, Any]]]] = {}


def clean_run(
    provider: Provider, box: sandbox.Sandbox, workdir: Path
) -> tuple[Counter[str], list[dict[str, Any]]]:
    """The census after a run without faults, and that run's creating calls (cached)."""
    if provider.KEY not in _clean:
        box.reset()
        InProcessRun(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb", workdir / "clean")()
        # one entry per (method, path), sorted: async steps may log in either order
        calls = [
            {"method": m, "path": path}
            for m, path in sorted({(c["method"], c["path"]) for c in creating_calls(box)})
        ]
        assert calls, "the notebook created nothing in the fake cloud"
        _clean[provider.KEY] = (census(box.state()), calls)
    return _clean[provider.KEY]


def inject(box: sandbox.Sandbox, kind: str, calls: list[dict[str, Any]]) -> None:
    """From the seeded state: fault ``kind`` on its creating call (kind i on call i mod n)."""
    box.reset()
    call = calls[list(KINDS).index(kind) % len(calls)]
    how = KINDS[kind]() if callable(KINDS[kind]) else KINDS[kind]
    box.add_faults({"method": call["method"], "path": f"^{re.escape(call['path'])}$"} | how)


def one_line_stop(ename: str, evalue: str, kind: str, box: sandbox.Sandbox) -> None:
    """The run stopped with one of the package's errors and a one-line message, only for a
    fault that a retry cannot get past; the fault was used up unless it never heals."""
    assert ename in STOP_ERRORS, (ename, evalue)
    assert "\n" not in evalue
    assert kind == "500-forever" or kind == "500", f"{kind} stopped the run: {evalue}"
    assert box.faults()[0]["times"] == 0 or kind == "500-forever"


def survived(kind: str, box: sandbox.Sandbox) -> None:
    """The run ended although the fault was injected (and could be got past)."""
    assert kind != "500-forever", "a fault that never heals cannot be survived"
    assert box.faults()[0]["times"] == 0, "the fault was never injected"


def cases() -> list[tuple[str, str]]:
    """(provider, kind) for every provider and kind, less :data:`SKIP`."""
    return [
        (key, kind) for key in providers.keys() for kind in KINDS if kind not in SKIP.get(key, ())
    ]


@pytest.mark.timeout(150)  # a hang shows within the suite's patience, not after 300 s
@pytest.mark.parametrize(("key", "kind"), cases(), ids=lambda value: str(value))
def test_a_fault_on_a_creating_call_is_survived_or_stops_cleanly(
    key: str, kind: str, fresh: sandbox.Sandbox, tmp_path: Path, quick_waits: list[float]
) -> None:
    provider = providers.get(key)
    clean, calls = clean_run(provider, fresh, tmp_path)
    inject(fresh, kind, calls)
    run = InProcessRun(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb", tmp_path)
    try:
        run()
    except Exception as err:  # what the notebook's cell would raise
        one_line_stop(type(err).__name__, str(err), kind, fresh)
        fresh.clear_faults()
        run()  # the rerun finishes what the stopped run began
    else:
        survived(kind, fresh)
    assert any("BinderHub finds the pushed image" in out for out in run.outputs), run.outputs
    assert census(fresh.state()) == clean


@pytest.mark.timeout(150)
@pytest.mark.parametrize(("key", "kind"), NOTEBOOK_CASES, ids=lambda value: str(value))
def test_a_fault_in_the_notebook_is_survived_or_stops_with_one_line(
    key: str, kind: str, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    provider = providers.get(key)
    clean, calls = clean_run(provider, fresh, tmp_path)
    inject(fresh, kind, calls)
    run = NotebookRun(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb", tmp_path)
    try:
        out = run()
    except PapermillExecutionError as err:
        one_line_stop(err.ename, err.evalue, kind, fresh)
        notebook = nbformat.reads(run.last_output(), as_version=4)
        errors = [
            o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"
        ]
        assert len(errors) == 1 and len(errors[0].traceback) == 1, errors
        fresh.clear_faults()
        out = run()
    else:
        survived(kind, fresh)
    assert "BinderHub finds the pushed image" in outputs_text(out)
    assert census(fresh.state()) == clean
