"""Interactive use, as a person would: JupyterLab in headless Chromium, every notebook's form.

Debian's chromium driven by Playwright (never ``playwright install``); every
host but 127.0.0.1 resolves to nothing, so the browser cannot leave loopback.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from binderhub_registry.sandbox import Sandbox
from binderhub_registry.sandbox.registry import free_port

from .conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BIN = Path(sys.executable).parent
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or not (BIN / "jupyter-lab").exists(),
    reason="needs Debian's chromium (apt-get install chromium) and jupyterlab",
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


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
        env=os.environ | box.env() | {"JUPYTER_CONFIG_DIR": str(root / "config")},
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
    workdir = root / notebook.stem
    workdir.mkdir()
    shutil.copy(notebook, workdir)
    path = f"{notebook.stem}/{notebook.name}"
    yield f"{base}/lab/workspaces/{notebook.stem}/tree/{path}?reset&token={token}", workdir
    # its kernel would idle on until the module ends
    auth = {"Authorization": f"token {token}"}
    for kernel in requests.get(f"{base}/api/kernels", headers=auth, timeout=10).json():
        requests.delete(f"{base}/api/kernels/{kernel['id']}", headers=auth, timeout=30)


def _field(page: Any, name: str) -> Any:
    return page.locator(".widget-text", has_text=name).locator("input")


def test_form_edits_parameters_then_the_notebook_runs(
    lab: tuple[str, Path], fresh: Sandbox
) -> None:
    url, workdir = lab
    stem = workdir.name
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
        page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=60_000)  # kernel up
        if page.locator("text=Would you like to get notified").count():
            page.get_by_role("button", name="No", exact=True).click()  # JupyterLab's news prompt

        # start from a clean page: the stored outputs would satisfy every wait below
        page.get_by_role("menuitem", name="Edit").click()
        page.get_by_text("Clear Outputs of All Cells").click()
        assert page.locator("text=BinderHub finds the pushed image").count() == 0

        # the parameters cell, its markdown, then the form cell
        page.locator(".jp-CodeCell .jp-InputArea-editor").first.click()
        for _ in range(3):
            page.keyboard.press("Shift+Enter")
        prefix = _field(page, "prefix")
        try:
            prefix.wait_for(timeout=30_000)
        except playwright.Error:
            page.screenshot(path=str(workdir / "no-form.png"), full_page=True)
            raise

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

        # select the first cell after the form, then Run > Run Selected Cell and All Below
        page.locator(".jp-Notebook .jp-CodeCell").nth(2).locator(".jp-InputArea-prompt").click()
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run Selected Cell and All Below").click()
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
        # this deployment's two: BinderHub's push token and user pods' read-only one, each
        # labelled with the prefix, then the deployment's id
        push, pull = sorted((t["label"] for t in tokens), key=lambda label: label.endswith(" pull"))
        assert push.startswith(f"BinderHub push binderhubdemoorg/{FORM_PREFIX}* #")
        assert pull == push + " pull"
