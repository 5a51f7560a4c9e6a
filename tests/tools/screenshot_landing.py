"""Retake ``docs/_static/landing.png``, README's picture of the published site.

Run after ``make docs``: serves ``docs/_build/html`` on 127.0.0.1 and screenshots the landing
page at 1280 x 800 with Debian's chromium (the browser the site tests use).
"""

from __future__ import annotations

import functools
import http.server
import sys
import threading
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 (after the path)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


def main() -> int:
    """Serve the built site, screenshot its landing page, write the PNG."""
    html = ROOT / "docs" / "_build" / "html"
    if not (html / "index.html").exists():
        print("no built site: run `make docs` first", file=sys.stderr)
        return 2
    handler = functools.partial(_Quiet, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = ROOT / "docs" / "_static" / "landing.png"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"http://127.0.0.1:{server.server_port}/index.html", wait_until="networkidle")
            page.screenshot(path=str(out))
            browser.close()
    finally:
        server.shutdown()
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
