"""Sphinx extension for the guide: each notebook page says where its outputs come from and shows
what its values look like for real, rendered at build time by the library's own code.

* ``source-read`` adds two markdown cells to each ``notebooks/NN-*.ipynb`` page (the notebooks
  themselves are not changed): a note after the title that the outputs come from the sandbox,
  and a ``real-values`` directive after the cell that writes the values.
* Each notebook page also gets a "Run this notebook" box (Binder, the ``.ipynb`` to download, the
  commands for JupyterLab on a clone), and its "2.5 Next step" gets the whole ``helm`` sequence
  with the files where the stored run wrote them (its ``output_dir``) and a chart version.
* Tables marked ``stack-narrow`` get a label in each cell (its column's header), which the
  stylesheet shows only on narrow screens, where such a table turns into one block per row.
* What the landing page says of each registry comes from its provider's ``GUIDE``
  (``providers.contract.GuideEntry``), in the guide's order: ``guide-sections`` (the guide's
  sections, a row per provider, then the rows written in the directive), ``registry-choices``
  (when to choose each) and ``registry-matrix`` (a column per provider, its footnotes under it).
* The ``real-values`` directive builds a provider's ``RegistryValues`` with its own
  ``REAL_EXAMPLE`` (``providers.contract.RealExample``) from the notebook's parameters cell
  with ``sandbox=False`` and example names, then shows the example names as placeholders.

A notebook no registered provider owns is a warning, so ``sphinx-build -W`` fails until its
page can show real values; so is a provider without its ``GUIDE``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from docutils import nodes  # type: ignore[import-untyped]
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from binderhub_registry import providers
from binderhub_registry.binderhub import (
    CHART_REPOSITORY,
    CHART_VERSION,
    CHART_VERSIONS,
    helm_commands,
)
from binderhub_registry.params import read_parameters_cell
from binderhub_registry.providers.contract import GuideEntry

__all__ = [
    "BINDER",
    "CHART_REPOSITORY",
    "CHART_VERSION",
    "CHART_VERSIONS",
    "LINKS",
    "GuideSections",
    "RealValues",
    "RegistryChoices",
    "RegistryMatrix",
    "binder_url",
    "clone_commands",
    "fill_links",
    "guide_entries",
    "helm_commands",
    "label_stacked_tables",
    "notebook_parameters",
    "registry_choices",
    "registry_matrix",
    "repository_url",
    "sections_table",
    "setup",
]

logger = logging.getLogger(__name__)
NOTEBOOK_DOC = re.compile(r"^notebooks/(\d\d-[\w-]+)$")
ROOT = Path(__file__).resolve().parents[2]

#: the public BinderHub the launch links use
BINDER = "https://mybinder.org"


def repository_url() -> str:
    """The repository's address: ``[project.urls] Repository`` in pyproject.toml, the one place
    it is set (README, docs and binder/ follow it; tests/test_docs_links.py checks)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return str(project["urls"]["Repository"]).rstrip("/")


def _github_parts(url: str) -> tuple[str, str]:
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", url)
    if not match:
        raise ValueError(
            f"[project.urls] Repository must be https://github.com/<owner>/<repo>: {url}"
        )
    return match.group(1), match.group(2)


def binder_url(path: str = "notebooks") -> str:
    """mybinder.org's link that opens ``path`` (a folder or a notebook) in JupyterLab."""
    owner, repo = _github_parts(repository_url())
    return f"{BINDER}/v2/gh/{owner}/{repo}/HEAD?urlpath=lab/tree/{path}"


def clone_commands(then: str) -> str:
    """Clone, install from the lock, then ``then``: how to run anything from a clone."""
    url = repository_url()
    folder = url.rsplit("/", 1)[1]
    install = "make install   # Python 3.11+ and make: installs uv.lock into .venv"
    return f"git clone {url}\ncd {folder}\n{install}\n{then}\n"


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The values of a notebook's ``parameters`` cell (our own notebooks: plain literals)."""
    cells = json.loads(notebook.read_text())["cells"]
    source = next(
        "".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", [])
    )
    return read_parameters_cell(source).defaults


def _provider_of(notebook: str) -> str | None:
    for key in providers.keys():
        if providers.get(key).NOTEBOOK == notebook:
            return key
    return None


def render_real_values(key: str, notebook: Path) -> str:
    """``config.yaml`` and ``secret.yaml`` as the notebook writes them in real mode."""
    example = providers.get(key).REAL_EXAMPLE
    # a dry run: validation then makes, writes and locks no output_dir
    params = providers.get(key).validate(
        notebook_parameters(notebook), **example.overrides, sandbox=False, dry_run=True
    )
    values = example.build(params)
    config = yaml.safe_dump(values.config(), sort_keys=False)
    secret = yaml.safe_dump(values.secret(), sort_keys=False)
    text = f"# config.yaml\n{config}\n# secret.yaml (mode 0600)\n{secret}"
    for example_text, placeholder in example.placeholders.items():
        text = text.replace(example_text, placeholder)
    return text


class RealValues(SphinxDirective):
    """``real-values``: the real-mode values of the notebook named as the argument."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """Render the values, or warn (failing a ``-W`` build) when the provider has no example."""
        stem = self.arguments[0]
        key = _provider_of(stem)
        if key is None:
            logger.warning(
                "no real-values example for %s: no provider in PROVIDERS has this NOTEBOOK",
                stem,
                location=self.get_location(),
            )
            return []
        for path in _module_files(key):  # so an incremental build renders an edited example
            self.env.note_dependency(str(path))
        notebook = Path(self.env.srcdir) / "notebooks" / f"{stem}.ipynb"
        try:
            text = render_real_values(key, notebook)
        except Exception as e:  # a notebook out of step with its provider: say so, fail -W
            logger.warning(
                "%s: real values not rendered: %s: %s",
                stem,
                type(e).__name__,
                e,
                location=self.get_location(),
            )
            return []
        block = nodes.literal_block(text, text, language="yaml")
        self.set_source_info(block)
        return [block]


def guide_entries() -> list[tuple[str, GuideEntry]]:
    """Each registered provider's key and ``GUIDE``, in the guide's order: its sections, then
    what is beyond it; registration order among equals. Raises AttributeError naming a
    provider without one."""
    entries = []
    for key in providers.keys():
        guide = getattr(providers.get(key), "GUIDE", None)
        if not isinstance(guide, GuideEntry):
            raise AttributeError(f"provider {key!r} declares no GUIDE (a contract.GuideEntry)")
        entries.append((key, guide))
    return sorted(entries, key=lambda entry: entry[1].sort_key())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a table cell's text, as one MyST table cell


def sections_table(after: list[str]) -> str:
    """The guide's table (MyST): a row per provider, its section and page, then ``after``."""
    lines = ["| Guide section | Page | Status |", "|---|---|---|"]
    for key, guide in guide_entries():
        page = f"{{doc}}`notebooks/{providers.get(key).NOTEBOOK}`"
        lines.append(f"| {_cell(guide.row())} | {page} | {guide.status} |")
    return "\n".join([*lines, *after]) + "\n"


def registry_choices() -> str:
    """The "Choose your registry" list (MyST): a bullet per provider, its name, then when."""
    return "".join(f"- **{guide.name}** {guide.choose}\n" for _, guide in guide_entries())


#: the scroll hint's count of columns, in words
_NUMBERS = "One Two Three Four Five Six Seven Eight Nine Ten Eleven Twelve".split()


def registry_matrix() -> str:
    """The registry matrix (MyST): its scroll hint, a column per provider, then the footnotes
    its cells cite (each defined once, by the provider whose cells cite it)."""
    entries = [guide for _, guide in guide_entries()]
    count = len(entries)
    words = _NUMBERS[count - 1] if count <= len(_NUMBERS) else str(count)
    rows = [label for label, _ in entries[0].cells()]
    columns = [dict(g.cells()) for g in entries]
    table = [
        "| | " + " | ".join(_cell(g.column()) for g in entries) + " |",
        "|---" * (count + 1) + "|",
        *("| " + " | ".join([row, *(_cell(c[row]) for c in columns)]) + " |" for row in rows),
    ]
    notes: dict[str, str] = {}
    for guide in entries:
        for name, text in guide.notes.items():
            if name in notes:
                raise ValueError(f"footnote [^{name}] is defined by two providers")
            notes[name] = text
    return (
        ":::{container} scroll-hint\n"
        f"{words} registries, one per column: scroll the table sideways to see them all.\n"
        ":::\n\n"
        "```{table}\n:class: registry-matrix stack-narrow\n:name: registry-matrix\n\n"
        + "\n".join(table)
        + "\n```\n\n"
        + "".join(f"[^{name}]: {text}\n" for name, text in notes.items())
    )


def _module_files(key: str) -> list[Path]:
    """A provider's source files: its module, or every file of its package."""
    module = Path(str(providers.get(key).__file__))
    return sorted(module.parent.glob("*.py")) if module.name == "__init__.py" else [module]


def _provider_files() -> list[Path]:
    """The files a page rendered from the providers depends on: each provider's and the
    contract."""
    return [
        Path(providers.contract.__file__),
        *(f for k in providers.keys() for f in _module_files(k)),
    ]


class _FromProviders(SphinxDirective):
    """A directive whose MyST text is rendered from the registered providers."""

    def markdown(self) -> str:
        """The MyST text to parse in place of the directive."""
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        """Parse :meth:`markdown` in place, or warn (failing a ``-W`` build) when it fails."""
        try:
            text = self.markdown()
        except Exception as e:  # a provider without its entry, or two notes of one name
            logger.warning(
                "%s: not rendered: %s: %s",
                self.name,
                type(e).__name__,
                e,
                location=self.get_location(),
            )
            return []
        for path in _provider_files():  # so an incremental build renders an edited GUIDE
            self.env.note_dependency(str(path))
        return self.parse_text_to_nodes(text)


class GuideSections(_FromProviders):
    """``guide-sections``: the guide's table, a row per provider; the directive's content (table
    rows in MyST) follows them."""

    has_content = True

    def markdown(self) -> str:
        """The table, with the directive's rows last."""
        return sections_table(list(self.content))


class RegistryChoices(_FromProviders):
    """``registry-choices``: when to choose each registry, a bullet per provider."""

    def markdown(self) -> str:
        """The bullets."""
        return registry_choices()


class RegistryMatrix(_FromProviders):
    """``registry-matrix``: the registry matrix, a column per provider, and its footnotes."""

    def markdown(self) -> str:
        """The scroll hint, the table and its footnotes."""
        return registry_matrix()


def _markdown(cell_id: str, text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


def _sandbox_note(stem: str) -> str:
    return (
        ":::{note}\n"
        "The outputs on this page come from a run against the {doc}`sandbox </sandbox>`: local "
        "fakes of the cloud and a real registry on `127.0.0.1`, so hosts show local ports and "
        "every id is the sandbox's. Nothing is re-run to build this page: it shows the stored "
        "outputs that the tests check. For what the values look like for real, see "
        f"[below](#real-values-{stem}).\n:::\n"
    )


def _real_values_cell(stem: str) -> str:
    return (
        f"(real-values-{stem})=\n### What the values look like for real\n\n"
        "Run with `sandbox = False`, the same code writes these files, shown here with "
        "placeholders for your names and the secret redacted (rendered when these docs are "
        "built, from the parameters cell above with `sandbox = False`):\n\n"
        f"```{{real-values}} {stem}\n```\n"
    )


def _run_cell(stem: str) -> str:
    jupyter = f".venv/bin/jupyter lab notebooks/{stem}.ipynb   # as root: add --allow-root"
    return (
        ":::{admonition} Run this notebook\n:class: tip run-notebook\n\n"
        f"- **On Binder**, with nothing to install: [open {stem}.ipynb in JupyterLab on "
        f"mybinder.org]({binder_url(f'notebooks/{stem}.ipynb')}); it runs against the sandbox.\n"
        f"- **Download** {{download}}`{stem}.ipynb <{stem}.ipynb>`: the notebook as stored, with "
        "its outputs; it imports this repository's package, so it runs from a clone (below).\n"
        "- **In JupyterLab on your machine**, from a clone:\n\n"
        f"```bash\n{clone_commands(jupyter)}```\n"
        ":::\n"
    )


def add_guide_cells(app: Sphinx, docname: str, source: list[str]) -> None:
    """Insert the sandbox note, the run box and the real values into a notebook page (the page
    only: the notebook is not changed). Its next step is the notebook's own ``next_step`` cell,
    whose stored output has the run's real paths."""
    match = NOTEBOOK_DOC.match(docname)
    if not match:
        return
    stem = match.group(1)
    nb = json.loads(source[0])
    cells = nb["cells"]
    writes = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code" and "write_values" in "".join(c["source"])
    ]
    if not writes:
        logger.warning("%s: no cell writes the values; real values not shown", docname)
        return
    if not any("next_step(" in "".join(c["source"]) for c in cells[writes[0] :]):
        logger.warning("%s: no cell shows the next step (next_step(files))", docname)
    cells.insert(writes[0] + 1, _markdown("guide-real-values", _real_values_cell(stem)))
    cells.insert(1, _markdown("guide-run-notebook", _run_cell(stem)))
    cells.insert(1, _markdown("guide-sandbox-note", _sandbox_note(stem)))
    source[0] = json.dumps(nb)


#: placeholders a page may use for what derives from the repository's address
LINKS: dict[str, Callable[[], str]] = {
    "{{ repository_url }}": repository_url,
    "{{ binder_url }}": binder_url,
    "{{ clone_commands }}": lambda: clone_commands(".venv/bin/jupyter lab notebooks/"),
}


def fill_links(app: Sphinx, docname: str, source: list[str]) -> None:
    """Replace the placeholders of :data:`LINKS` in a page with what the address gives."""
    for placeholder, make in LINKS.items():
        if placeholder in source[0]:
            source[0] = source[0].replace(placeholder, make())


def label_stacked_tables(app: Sphinx, doctree: nodes.document) -> None:
    """In each ``stack-narrow`` table, start every body cell with its column's header, shown by
    the stylesheet only where the table is one block per row (narrow screens)."""
    for table in doctree.findall(nodes.table):
        if "stack-narrow" not in table["classes"]:
            continue
        head = next(iter(table.findall(nodes.thead)), None)
        if head is None:
            continue
        labels = [entry.astext() for entry in next(iter(head.findall(nodes.row)))]
        for body in table.findall(nodes.tbody):
            for row in body.findall(nodes.row):
                for label, entry in zip(labels, row.findall(nodes.entry), strict=False):
                    if label:
                        entry.insert(0, nodes.paragraph("", label, classes=["cell-label"]))


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the page hooks."""
    app.add_directive("real-values", RealValues)
    app.add_directive("guide-sections", GuideSections)
    app.add_directive("registry-choices", RegistryChoices)
    app.add_directive("registry-matrix", RegistryMatrix)
    app.connect("source-read", add_guide_cells)
    app.connect("source-read", fill_links)
    app.connect("doctree-read", label_stacked_tables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
