"""The published site: every page of the built docs, as a reader sees it.

Debian's chromium driven by Playwright (never ``playwright install``), with the flags of
DESIGN.md section 6; every host but 127.0.0.1 resolves to nothing, so a page that needs the
network shows up as a failed request. The site is built with ``make docs``'s flags. The checks
of the built HTML alone (buttons, links, the next step) need no browser.
"""

from __future__ import annotations

import base64
import functools
import html
import http.server
import json
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import providers

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "docs" / "_ext"))
import guide

from .helpers import CHROMIUM, CHROMIUM_ARGS

WIDTHS = (1280, 400)
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))

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
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_every_page_is_in_the_site(site: tuple[str, list[str]]) -> None:
    _, pages = site
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    expected = {"index.html", "running.html", "verify.html", "sandbox.html", "upstream.html"}
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


# --- from reading to running --------------------------------------------------------------------


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_each_notebook_page_has_its_repository_download_and_launch_buttons(
    docs_html: Path, stem: str
) -> None:
    page = (docs_html / "notebooks" / f"{stem}.html").read_text()
    repository = guide.repository_url()
    # the theme's header: the repository, the notebook's download, its launch on Binder
    assert f'href="{repository}"' in page
    assert "btn-source-repository-button" in page
    binder = guide.binder_url(f"notebooks/{stem}.ipynb")
    assert binder.startswith("https://mybinder.org/v2/gh/")
    assert f'href="{html.escape(binder)}"' in page or f'href="{binder}"' in page
    downloads = re.findall(r'href="\.\./(_(?:sources|downloads)/[^"]+\.ipynb)"', page)
    assert len(downloads) >= 2, downloads  # the theme's button and the Run box's link
    for href in downloads:  # each is the notebook as stored, outputs and all
        assert (docs_html / href).read_bytes() == (
            ROOT / "notebooks" / f"{stem}.ipynb"
        ).read_bytes()
    # the Run box: Binder, the download, and the commands for JupyterLab on a clone
    box = page[page.index("Run this notebook") :]
    box = _text(box[: box.index("</div>\n</div>")])
    assert f"git clone {repository}" in box
    assert "make install" in box
    assert f".venv/bin/jupyter lab notebooks/{stem}.ipynb" in box and "--allow-root" in box


def test_footnote_sources_are_links(docs_html: Path) -> None:
    index = (docs_html / "index.html").read_text()
    notes = re.findall(r'<aside class="footnote brackets" id="([\w-]+)"(.*?)</aside>', index, re.S)
    assert len(notes) >= 7
    for name, body in notes:
        assert re.search(r'<a class="reference external" href="https://', body), name


def test_pages_derive_the_repository_links_from_the_one_setting(docs_html: Path) -> None:
    index = (docs_html / "index.html").read_text()
    assert "{{" not in _text(index)  # every placeholder filled
    assert f"git clone {guide.repository_url()}" in _text(index)
    assert f'href="{html.escape(guide.binder_url())}"' in index


# --- the next step, complete (point 11) ----------------------------------------------------------


def _stored_paths(stem: str) -> tuple[str, str]:
    cells = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
    step = next(c for c in cells if "next_step(files)" in "".join(c["source"]))
    text = "".join(step["outputs"][0]["data"]["text/plain"])  # the stored run's own paths
    found = re.search(r"-f (\S+/config\.yaml) -f (\S+/secret\.yaml)", text)
    assert found is not None, text
    return found[1], found[2]


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_each_next_step_has_the_chart_repository_a_version_and_the_real_paths(
    docs_html: Path, stem: str
) -> None:
    page = (docs_html / "notebooks" / f"{stem}.html").read_text()
    step = page[page.index("<h2>2.5 Next step") :]
    text = _text(step)
    config, secret = _stored_paths(stem)
    assert config == f"build/{stem}/config.yaml"  # the stored run's output_dir
    assert f"helm repo add jupyterhub {guide.CHART_REPOSITORY}" in text
    assert "helm search repo jupyterhub/binderhub --devel --versions" in text
    assert f"--version={guide.CHART_VERSION}" in text and "<chart version>" not in text
    assert f"-f {config} -f {secret}" in text
    assert f"verify {config} {secret}" in text
    assert f'href="{guide.CHART_VERSIONS}"' in step


def test_the_landing_page_next_step_is_complete(docs_html: Path) -> None:
    index = (docs_html / "index.html").read_text()
    step = index[index.index('id="next-step"') :]
    step = step[: step.index('id="run-it"')]
    text = _text(step)
    assert f"helm repo add jupyterhub {guide.CHART_REPOSITORY}" in text
    assert f"--version={guide.CHART_VERSION}" in text
    assert "-f build/05-harbor/config.yaml -f build/05-harbor/secret.yaml" in text
    assert f'href="{guide.CHART_VERSIONS}"' in step


# --- in the browser: copy buttons, code that scrolls, tables on narrow screens (points 9, 10) ----

#: per code block: its white-space, overflow-x, and how many lines it renders against how many
#: it has (a wrapped line renders as two)
CODE_LINES = r"""() => [...document.querySelectorAll("div.highlight pre, div.cell_output pre")]
  .filter((pre) => pre.offsetParent !== null)
  .map((pre) => {
    const style = getComputedStyle(pre);
    const text = pre.innerText.replace(/\n+$/, "");
    const inner = pre.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    return {
      whiteSpace: style.whiteSpace,
      overflowX: style.overflowX,
      lines: text.split("\n").length,
      rendered: Math.round(inner / parseFloat(style.lineHeight)),
      scrolls: pre.scrollWidth > pre.clientWidth,
      first: text.split("\n")[0],
    };
  })"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["index.html", "notebooks/05-harbor.html"])
def test_code_keeps_its_lines_and_scrolls_instead_of_wrapping(
    site: tuple[str, list[str]], browser: Any, width: int, name: str
) -> None:
    base, _ = site
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{base}/{name}", wait_until="networkidle")
    blocks = page.evaluate(CODE_LINES)
    page.close()
    assert blocks
    wrapped = [b for b in blocks if b["rendered"] > b["lines"]]
    assert not wrapped, wrapped
    assert {(b["whiteSpace"], b["overflowX"]) for b in blocks} == {("pre", "auto")}
    if width == 400:  # the YAML of the real values and the helm lines are wider than a phone
        assert any(b["scrolls"] for b in blocks)


def test_every_code_block_has_a_copy_button_that_copies_its_text(
    site: tuple[str, list[str]], browser: Any
) -> None:
    base, _ = site
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.goto(f"{base}/index.html", wait_until="networkidle")
    counts = page.evaluate(
        """() => [...document.querySelectorAll("div.highlight")].map(
             (d) => d.querySelectorAll("button.copybtn").length)"""
    )
    assert counts and set(counts) == {1}, counts
    helm = page.locator("div.highlight", has_text="helm repo add").first
    helm.hover()
    helm.locator("button.copybtn").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    expected = helm.locator("pre").inner_text()
    context.close()
    assert copied.strip() == expected.strip()
    assert f"--version={guide.CHART_VERSION}" in copied


#: the table whose header has ``heading``: how far it overflows its box, whether its header row
#: is in view, and for each body cell of that column: in view, and its label (the header, or the
#: label the docs add on narrow screens) in view
COLUMN = """(heading) => {
  const shown = (e) => { const b = e.getBoundingClientRect();
    return e.offsetParent !== null && b.width > 0 && b.left >= 0 && b.right <= window.innerWidth; };
  const table = [...document.querySelectorAll("table")].find((t) =>
    [...t.querySelectorAll("thead th")].some((th) => th.innerText.trim() === heading));
  const column = [...table.querySelectorAll("thead th")].findIndex(
    (th) => th.innerText.trim() === heading);
  const header = table.querySelectorAll("thead th")[column];
  return {
    overflow: table.scrollWidth - table.clientWidth,
    headerShown: shown(header),
    cells: [...table.querySelectorAll("tbody tr")].map((tr) => {
      const td = tr.children[column];
      const label = td.querySelector("p.cell-label");
      return {shown: shown(td), labelled: shown(header) || (label !== null && shown(label))};
    }),
    labels: [...table.querySelectorAll("td > p.cell-label")].filter(shown).map((p) => p.innerText),
  };
}"""


def test_verify_table_keeps_what_to_change_at_400px(
    site: tuple[str, list[str]], browser: Any
) -> None:
    base, _ = site
    page = browser.new_page(viewport={"width": 400, "height": 900})
    page.goto(f"{base}/verify.html", wait_until="networkidle")
    table = page.evaluate(COLUMN, "What to change")
    page.close()
    assert len(table["cells"]) >= 10
    assert all(cell["shown"] and cell["labelled"] for cell in table["cells"]), table["cells"]
    assert table["overflow"] <= 0


@pytest.mark.parametrize("width", WIDTHS)
def test_registry_matrix_fits_or_says_it_scrolls_and_reads_on_a_phone(
    site: tuple[str, list[str]], browser: Any, width: int
) -> None:
    base, _ = site
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{base}/index.html", wait_until="networkidle")
    # the last registry's column: the one a wide table hides first
    table = page.evaluate(COLUMN, guide.guide_entries()[-1][1].column())
    hint = page.locator(".scroll-hint")
    hint_visible = hint.count() > 0 and hint.first.is_visible()
    picks = page.locator("#choose-your-registry li").all_inner_texts()
    page.close()
    registries = ["Docker Hub", "Google Artifact Registry", "Azure Container Registry"]
    assert all(any(p.startswith(r) and " if " in p for p in picks) for r in registries), picks
    if width == 1280:
        assert table["overflow"] <= 0 or hint_visible
    else:  # a phone: one block per row, each registry named beside its value, nothing hidden
        assert table["overflow"] <= 0 and not hint_visible
        assert all(cell["shown"] and cell["labelled"] for cell in table["cells"]), table["cells"]
        assert len(set(table["labels"])) == len(providers.keys()), table["labels"]
