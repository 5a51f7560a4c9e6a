"""Retake the pictures of a notebook's form in JupyterLab (``docs/_static/form-*.png``).

Starts a private sandbox and a JupyterLab on 127.0.0.1 over a copy of the notebook, runs the
parameters cell and the form cell in Debian's chromium (the browser the tests use), and
screenshots the form at each width::

    .venv/bin/python tests/tools/screenshot_form.py notebooks/05-harbor.ipynb --suffix after
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from binderhub_registry import sandbox  # noqa: E402 (after the path)
from binderhub_registry.sandbox.registry import free_port  # noqa: E402
from tests.helpers import BIN, CHROMIUM, CHROMIUM_ARGS, close_left_sidebar  # noqa: E402


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--widths", default="1280,400")
    parser.add_argument("--suffix", default="", help="added to the file name: before, after")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "_static")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start a sandbox and JupyterLab, run the form's cells, screenshot the form per width."""
    args = _arguments(argv)
    notebook = args.notebook.resolve()
    work = Path(tempfile.mkdtemp(prefix="bhr-form-"))
    box = sandbox.start(work / "sandbox")
    (work / "lab").mkdir()  # the lab shows only the notebook
    shutil.copy(notebook, work / "lab" / notebook.name)
    port, token = free_port(), secrets.token_hex(16)
    log = open(work / "lab.log", "wb")
    env = os.environ | box.env() | sandbox.loopback_env() | {"JUPYTER_CONFIG_DIR": str(work / "c")}
    lab = subprocess.Popen(
        [
            str(BIN / "jupyter-lab"),
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work / 'lab'}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.news_url=",
            "--allow-root",
        ],
        env=env,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    suffix = f"-{args.suffix}" if args.suffix else ""
    try:
        for _ in range(300):
            try:
                if requests.get(f"{base}/api/status?token={token}", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for width in (int(w) for w in args.widths.split(",")):
                page = browser.new_page(viewport={"width": width, "height": 1200})
                page.goto(
                    f"{base}/lab/workspaces/w{width}/tree/{notebook.name}?reset&token={token}",
                    timeout=120_000,
                )
                page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=60_000)
                news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's prompt
                if page.locator("text=Would you like to get notified").count():
                    news.click()
                if width < 800:  # as on a phone: the file browser would take most of it
                    close_left_sidebar(page)
                page.locator(".jp-CodeCell .jp-InputArea-editor").first.click()
                for _ in range(3):  # the parameters cell, its markdown, the form cell
                    page.keyboard.press("Shift+Enter")
                widget = page.locator(".jp-OutputArea-output .widget-vbox").first
                widget.wait_for(timeout=60_000)
                page.wait_for_timeout(500)  # the widgets' last layout pass
                widget.scroll_into_view_if_needed()
                out = args.out / f"form-{notebook.stem}-{width}{suffix}.png"
                # the form in the notebook as seen at this width: the whole panel, from its top
                page.evaluate(
                    "e => e.closest('.jp-WindowedPanel-outer, .jp-Notebook').scrollTop +="
                    " e.getBoundingClientRect().top - 120",
                    widget.element_handle(),
                )
                page.screenshot(path=str(out), full_page=False)
                print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
                page.close()
            browser.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)
        log.close()
        sandbox.stop(work / "sandbox")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
