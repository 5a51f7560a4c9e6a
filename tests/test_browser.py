"""Interactive use, as a person would: JupyterLab in headless Chromium, every notebook's form.

Debian's chromium driven by Playwright (never ``playwright install``); every
host but 127.0.0.1 resolves to nothing, so the browser cannot leave loopback.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
import yaml

from binderhub_registry.sandbox import Sandbox
from binderhub_registry.sandbox.registry import free_port

from .conftest import ROOT
from .helpers import BIN, CHROMIUM, CHROMIUM_ARGS, close_left_sidebar, not_refreshed

playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or not (BIN / "jupyter-lab").exists(),
    reason="needs Debian's chromium (apt-get install chromium) and jupyterlab",
)


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
#: every notebook's form has the common ``prefix``: a bad value shows its rule, a good one
#: ends up in the written config.yaml's image_prefix
PREFIX_RULE = "must start with a lowercase letter or digit"
FORM_PREFIX = "formtest-"
#: parameters set through the form beyond ``prefix``, per notebook
EXTRA_FIELDS = {"02-docker-hub": {"organization": "binderhubdemoorg"}}


@pytest.fixture(scope="module")
def lab_server(
    tmp_path_factory: pytest.TempPathFactory, box: Sandbox
) -> Iterator[tuple[str, str, Path]]:
    """One JupyterLab on 127.0.0.1 for the module's tests (a start is 5-15 s); yields its base
    URL, token and root folder. The sandbox's variables do not change when it is reset."""
    root = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    # every cell in the page: JupyterLab 4's default windowing ("contentVisibility") leaves
    # off-screen cells out of innerText, which the tests read whole
    tracker = root / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    log = open(root / "lab.log", "wb")
    proc = subprocess.Popen(
        [
            str(BIN / "jupyter-lab"),
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.news_url=",
            "--allow-root",  # CI runs as root
        ],
        # the form keeps typed values per notebook under the cache: this lab's own
        env=os.environ
        | box.env()
        | {
            "JUPYTER_CONFIG_DIR": str(root / "config"),
            "XDG_CACHE_HOME": str(root / "cache"),
            "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
        },
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"{base}/api/status?token={token}", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            pytest.fail("JupyterLab did not start: " + (root / "lab.log").read_text()[-2000:])
        yield base, token, root
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def lab(
    request: pytest.FixtureRequest, lab_server: tuple[str, str, Path], fresh: Sandbox
) -> Iterator[tuple[str, Path]]:
    """A copy of one notebook in a folder of its own (named as the notebook), opened in a
    workspace of its own, reset (no tab of an earlier test); yields its URL and folder."""
    notebook: Path = request.param
    base, token, root = lab_server
    workdir, n = root / notebook.stem, 1
    while workdir.exists():  # a notebook several tests open
        workdir, n = root / f"{notebook.stem}-{n}", n + 1
    workdir.mkdir()
    shutil.copy(notebook, workdir)
    path = f"{workdir.name}/{notebook.name}"
    yield f"{base}/lab/workspaces/{workdir.name}/tree/{path}?reset&token={token}", workdir
    # its kernel would idle on until the module ends
    auth = {"Authorization": f"token {token}"}
    for kernel in requests.get(f"{base}/api/kernels", headers=auth, timeout=10).json():
        requests.delete(f"{base}/api/kernels/{kernel['id']}", headers=auth, timeout=30)


def _field(page: Any, name: str) -> Any:
    """The form's input for parameter ``name`` (the newest form: Run All shows it again)."""
    return page.locator(f".bhr-param-{name} input").last


def _open(page: Any, url: str) -> None:
    """Open the notebook, wait for its kernel, and clear the stored outputs (they would
    satisfy every wait)."""
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
    page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=60_000)  # kernel up
    if page.locator("text=Would you like to get notified").count():
        page.get_by_role("button", name="No", exact=True).click()  # JupyterLab's news prompt
    page.get_by_role("menuitem", name="Edit").click()
    page.get_by_text("Clear Outputs of All Cells").click()
    assert page.locator("text=BinderHub finds the pushed image").count() == 0
    if page.viewport_size["width"] < 800:  # a phone: the file browser would take most of it
        close_left_sidebar(page)


def _run_form_cells(page: Any, workdir: Path) -> None:
    """Run the parameters cell, its markdown, then the form cell; wait for the form."""
    page.locator(".jp-CodeCell .jp-InputArea-editor").first.click()
    for _ in range(3):
        page.keyboard.press("Shift+Enter")
    try:
        _field(page, "prefix").wait_for(timeout=30_000)
    except playwright.Error:
        page.screenshot(path=str(workdir / "no-form.png"), full_page=True)
        raise


def _type(page: Any, name: str, value: str) -> None:
    field = _field(page, name)
    field.fill(value)
    field.press("Enter")  # text fields send their value on Enter or leaving them


def _run(page: Any, how: str) -> None:
    """Run the notebook as a person would: Run All (after restarting the kernel), or the
    check cell and all below."""
    if how == "restart-run-all":
        page.get_by_role("menuitem", name="Kernel", exact=True).click()
        page.get_by_text("Restart Kernel and Run All Cells…", exact=True).click()
        page.get_by_role("button", name="Confirm Kernel Restart").click()
        return
    if how == "run-below":
        page.locator(".jp-Notebook .jp-CodeCell").nth(2).locator(".jp-InputArea-prompt").click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    name = "Run All Cells" if how == "run-all" else "Run Selected Cell and All Below"
    page.get_by_text(name, exact=True).click()


def test_form_edits_parameters_then_the_notebook_runs(
    lab: tuple[str, Path], fresh: Sandbox
) -> None:
    url, workdir = lab
    stem = next(workdir.glob("*.ipynb")).stem
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("pageerror", lambda e: errors.append(str(e)))
        _open(page, url)
        _run_form_cells(page, workdir)
        prefix = _field(page, "prefix")
        prefix.fill("Not_Valid")  # the form shows the parameter's rule as you type
        prefix.press("Enter")
        try:
            page.get_by_text(PREFIX_RULE).first.wait_for(timeout=10_000)
        except playwright.Error:
            page.screenshot(path=str(workdir / "no-rule.png"), full_page=False)
            raise
        prefix.fill(FORM_PREFIX)
        prefix.press("Enter")
        for name, value in EXTRA_FIELDS.get(stem, {}).items():
            _field(page, name).fill(value)
            _field(page, name).press("Enter")
        page.screenshot(path=str(workdir / "form.png"), full_page=False)

        _run(page, "run-below")  # the first cell after the form, and all below
        try:
            page.wait_for_selector("text=BinderHub finds the pushed image", timeout=180_000)
        except playwright.Error:
            page.screenshot(path=str(workdir / "not-done.png"), full_page=True)
            raise
        page.screenshot(path=str(workdir / "done.png"), full_page=True)
        text = page.locator(".jp-Notebook").inner_text()
        browser.close()

    assert not errors, errors
    # the form's values reached the files the notebook wrote
    config = yaml.safe_load((workdir / "build" / stem / "config.yaml").read_text())
    image_prefix = config["config"]["BinderHub"]["image_prefix"]
    assert image_prefix.endswith("/" + FORM_PREFIX), image_prefix
    assert f"/{FORM_PREFIX}" in text
    assert "<redacted>" in text
    if stem == "02-docker-hub":
        assert "binderhubdemo is an owner of binderhubdemoorg" in text  # the role, checked
        assert image_prefix.endswith(f"binderhubdemoorg/{FORM_PREFIX}")
        assert "dckr_pat_" not in text
        tokens = fresh.state()["dockerhub"]["access_tokens"]
        # this deployment's three: BinderHub's push token, user pods' read-only one and the
        # prune job's, each labelled with the prefix, then the deployment's id
        push, prune, pull = sorted(t["label"] for t in tokens)  # "#<id>" < " prune" < " pull"
        assert push.startswith(f"BinderHub push binderhubdemoorg/{FORM_PREFIX}* #")
        assert pull == push + " pull" and prune == push + " prune"


HARBOR = ROOT / "notebooks" / "05-harbor.ipynb"
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


@pytest.mark.parametrize("lab", [HARBOR], indirect=True, ids=["05-harbor"])
@pytest.mark.parametrize(
    ("width", "how", "then"),
    [(1280, "run-all", "restart-run-all"), (400, "run-below", "run-below")],
)
def test_the_forms_values_are_the_ones_used(
    lab: tuple[str, Path], fresh: Sandbox, width: int, how: str, then: str
) -> None:
    """The form never loses what was typed: values survive Run All, Restart and Run All, run-below;
    an invalid one stops the check cell with its rule; retries and a slow call show in the
    step's own row; labels, sandbox first, one run-mode choice, a link to the step."""
    url, workdir = lab
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        _open(page, url)
        _run_form_cells(page, workdir)
        # point 3: sandbox first, one run-mode choice, and a field's link to its step
        assert "bhr-param-sandbox" in str(page.locator(".bhr-param").first.get_attribute("class"))
        assert page.locator(".bhr-param-run_mode select").count() == 1
        page.get_by_role("link", name="Step 3: a robot account for BinderHub").click()
        heading = page.locator("h2", has_text="Step 3: a robot account for BinderHub")
        top = heading.evaluate("e => e.getBoundingClientRect().top")
        assert 0 <= top < page.viewport_size["height"] / 2, top
        _type(page, "harbor_project", "uxproject")
        _type(page, "robot_name", "ux-robot")
        _type(page, "robot_expiry_days", "99999")
        page.get_by_text("whole number of days from 1 to 3650").first.wait_for(timeout=10_000)
        page.screenshot(path=str(workdir / f"form-{width}.png"), full_page=False)

        # point 2: the invalid field stops the check cell with its rule, nothing is made
        _run(page, how)
        check = page.locator(".jp-Notebook .jp-CodeCell").nth(2).locator(".jp-OutputArea")
        try:
            check.get_by_text("parameter 'robot_expiry_days'").wait_for(timeout=60_000)
        except playwright.Error:
            page.screenshot(path=str(workdir / "no-refusal.png"), full_page=True)
            raise
        # text_content: JupyterLab leaves cells out of view unrendered (innerText is empty)
        assert "using the form's values:" in str(check.text_content())
        assert "uxproject" not in str(fresh.state()["harbor"])
        # Run All showed the form again: with what was typed, not the cell's defaults
        assert _field(page, "harbor_project").input_value() == "uxproject"

        # point 4: a slow sign-in (one call taking 3 s) and a robot made at the second attempt
        fresh.add_faults(
            {"method": "GET", "path": "/api/v2.0/users/current$", "delay": 3},
            {"method": "POST", "path": "/api/v2.0/robots$", "status": 503},
        )
        _type(page, "robot_expiry_days", "30")
        page.wait_for_timeout(500)  # the value reaches the kernel
        _run(page, then)
        try:
            running = page.get_by_text("running… 2 s").first
            running.wait_for(timeout=60_000)
            running.scroll_into_view_if_needed()
            page.screenshot(path=str(workdir / f"running-{width}.png"), full_page=False)
            page.wait_for_selector("text=BinderHub finds the pushed image", timeout=180_000)
        except playwright.Error:
            page.screenshot(path=str(workdir / "not-done.png"), full_page=True)
            raise
        text = str(page.locator(".jp-Notebook").text_content())
        stderr = page.locator(STDERR).count()
        page.keyboard.press("Control+s")  # a person saves (point 5: the copy is refused below)
        page.wait_for_timeout(1000)
        browser.close()

    assert not errors, errors
    # point 1: the form's values, said by the check cell and used by every step
    assert (
        "using the form's values: harbor_project='uxproject', robot_name='ux-robot', "
        "robot_expiry_days=30" in text
    )
    config = yaml.safe_load((workdir / "build" / "05-harbor" / "config.yaml").read_text())
    assert "/uxproject/" in config["config"]["BinderHub"]["image_prefix"]
    robots = [r["name"] for r in fresh.state()["harbor"]["robots"]]
    assert "robot$uxproject+ux-robot" in robots, robots
    # point 4: no pink box, the retry told in the row, "running… N s" gone from final rows
    assert stderr == 0
    assert "attempt 1 failed" not in text
    assert "(after 2 attempts)" in text
    assert "running…" not in text
    # point 5: a notebook saved from JupyterLab is not a stored notebook the suite accepts
    saved = nbformat.read(workdir / HARBOR.name, as_version=4)
    assert not_refreshed(saved)
