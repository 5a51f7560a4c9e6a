"""Interactive use, as a person would: JupyterLab in headless Chromium, the ipywidgets form.

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

import pytest
import requests

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


@pytest.fixture
def lab(tmp_path: Path, fresh: Sandbox) -> Iterator[tuple[str, Path]]:
    """JupyterLab on 127.0.0.1 serving a copy of the Docker Hub notebook; yields its URL."""
    shutil.copy(ROOT / "notebooks" / "02-docker-hub.ipynb", tmp_path)
    port, token = free_port(), secrets.token_hex(16)
    log = open(tmp_path / "lab.log", "wb")
    proc = subprocess.Popen(
        [
            str(BIN / "jupyter-lab"),
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.news_url=",
            "--allow-root",  # CI runs as root
        ],
        env=os.environ | fresh.env() | {"JUPYTER_CONFIG_DIR": str(tmp_path / "config")},
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
            pytest.fail("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
        yield f"{base}/lab/tree/02-docker-hub.ipynb?token={token}", tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_form_edits_parameters_then_the_notebook_runs(
    lab: tuple[str, Path], fresh: Sandbox
) -> None:
    url, workdir = lab
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
        username = page.locator(".widget-text", has_text="username").locator("input")
        try:
            username.wait_for(timeout=30_000)
        except playwright.Error:
            page.screenshot(path=str(workdir / "no-form.png"), full_page=True)
            raise

        username.fill("Not Valid")
        username.press("Enter")
        page.wait_for_selector("text=4 to 30 lowercase letters or digits", timeout=10_000)
        username.fill("binderhubdemo")
        username.press("Enter")
        organization = page.locator(".widget-text", has_text="organization").locator("input")
        organization.fill("binderhubdemoorg")
        organization.press("Enter")
        page.screenshot(path=str(workdir / "form.png"), full_page=False)

        # select Step 1's cell, then Run > Run Selected Cell and All Below, as a person would
        page.locator(".jp-Notebook .jp-CodeCell").nth(2).locator(".jp-InputArea-prompt").click()
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run Selected Cell and All Below").click()
        try:
            page.wait_for_selector("text=BinderHub finds the pushed image", timeout=90_000)
        except playwright.Error:
            page.screenshot(path=str(workdir / "not-done.png"), full_page=True)
            raise
        page.screenshot(path=str(workdir / "done.png"), full_page=True)
        text = page.locator(".jp-Notebook").inner_text()
        browser.close()

    assert "binderhubdemo is a member of binderhubdemoorg" in text
    assert "binderhubdemoorg/binder-" in text  # the form's value reached the values
    assert "<redacted>" in text and "dckr_pat_" not in text
    assert not errors, errors
    tokens = fresh.state()["dockerhub"]["access_tokens"]
    assert [t["label"] for t in tokens] == ["BinderHub push binderhubdemoorg/binder-*"]
