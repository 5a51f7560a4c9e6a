"""The published site in a real browser: every page of the built docs, as a reader sees it.

Debian's chromium driven by Playwright (never ``playwright install``), with the flags of
DESIGN.md section 6; every host but 127.0.0.1 resolves to nothing, so a page that needs the
network shows up as a failed request. The site is built with ``make docs``'s flags.
"""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT
from .test_browser import CHROMIUM, CHROMIUM_ARGS

playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)
WIDTHS = (1280, 400)

#: distinct colours in a screenshot drawn on a canvas (the page's own pixels, no network)
COUNT_COLOURS = """async (src) => {
  const img = new Image();
  img.src = src;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, img.width, img.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4) {
    seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  }
  return seen.size;
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture(scope="module")
def site(docs_html: Path) -> Iterator[tuple[str, list[str]]]:
    """The docs built as ``make docs`` builds them, served on 127.0.0.1; (base URL, pages)."""
    out = docs_html
    # _static holds the theme's Jinja macro files, which are no pages
    pages = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*.html") if "_static" not in p.parts
    )
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for the module."""
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_every_page_is_in_the_site(site: tuple[str, list[str]]) -> None:
    _, pages = site
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    expected = {"index.html", "verify.html", "sandbox.html", "upstream.html"}
    expected |= {f"notebooks/{stem}.html" for stem in notebooks}
    assert expected <= set(pages)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_loads_cleanly_and_fits_the_width(
    site: tuple[str, list[str]], browser: Any, width: int, tmp_path: Path
) -> None:
    """No console error, no failed request, no sideways scrolling of the page itself."""
    base, pages = site
    problems: list[str] = []
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
    page.on(
        "response",
        lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )
    seen = 0
    for name in pages:
        page.goto(f"{base}/{name}", wait_until="load")
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if overflow > 0:
            page.screenshot(path=str(tmp_path / name.replace("/", "_")) + ".png", full_page=True)
            problems.append(f"{overflow}px wider than the {width}px window")
        problems[seen:] = [f"{name}: {p}" for p in problems[seen:]]
        seen = len(problems)
    page.close()
    assert not problems, "\n".join(problems)


def test_landing_page_screenshot_is_not_blank(
    site: tuple[str, list[str]], browser: Any, tmp_path: Path
) -> None:
    base, _ = site
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{base}/index.html", wait_until="networkidle")
    shot = page.screenshot(path=str(tmp_path / "landing.png"))
    png = "data:image/png;base64," + base64.b64encode(shot).decode()
    colours = page.evaluate(COUNT_COLOURS, png)
    text = page.locator("main").inner_text()
    page.close()
    assert colours > 50, f"only {colours} colours: a blank or unstyled page"
    assert "Choose your registry" in text
