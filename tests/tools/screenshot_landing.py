"""Retake the pictures of the published site: ``docs/_static/landing.png`` (README's), and with
``--page``, any page at any width (the narrow-screen before/after pictures).

Run after ``make docs``: serves ``docs/_build/html`` (or ``--html``) on 127.0.0.1 and screenshots
the page with Debian's chromium (the browser the site tests use)::

    .venv/bin/python tests/tools/screenshot_landing.py
    .venv/bin/python tests/tools/screenshot_landing.py --page notebooks/05-harbor.html \\
        --anchor real-values-05-harbor --width 400 --out docs/_static/harbor-400-after.png
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 (after the path)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "docs" / "_build" / "html")
    parser.add_argument("--page", default="index.html", help="page, relative to the site")
    parser.add_argument("--anchor", default="", help="element id to scroll to the top")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "_static" / "landing.png")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve the built site, screenshot one page, write the PNG."""
    args = _arguments(argv)
    html = args.html.resolve()
    if not (html / args.page).exists():
        print(f"no {args.page} in {html}: run `make docs` first", file=sys.stderr)
        return 2
    handler = functools.partial(_Quiet, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = args.out.resolve()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            url = f"http://127.0.0.1:{server.server_port}/{args.page}"
            page.goto(url, wait_until="networkidle")
            if args.anchor:
                # the element at the top of the picture, below the theme's sticky header
                page.evaluate(
                    "id => { const e = document.getElementById(id);"
                    " window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 70); }",
                    args.anchor,
                )
            page.screenshot(path=str(out))
            browser.close()
    finally:
        server.shutdown()
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
