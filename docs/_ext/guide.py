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
* The ``real-values`` directive builds a provider's ``RegistryValues`` through its
  ``Connection.values()`` from the notebook's own parameters cell with
  ``sandbox=False`` and example names, then shows the example names as placeholders.

A notebook of a provider without a builder in :data:`REAL_EXAMPLES` is a warning, so
``sphinx-build -W`` fails until its page can show real values.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
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
    RegistryValues,
    helm_commands,
)
from binderhub_registry.params import read_parameters_cell
from binderhub_registry.secrets import Secret

__all__ = [
    "BINDER",
    "CHART_REPOSITORY",
    "CHART_VERSION",
    "CHART_VERSIONS",
    "LINKS",
    "REAL_EXAMPLES",
    "RealExample",
    "RealValues",
    "binder_url",
    "clone_commands",
    "fill_links",
    "helm_commands",
    "label_stacked_tables",
    "notebook_parameters",
    "repository_url",
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


@dataclass(frozen=True)
class RealExample:
    """How a provider's real-mode values are rendered: example names and their placeholders."""

    overrides: dict[str, Any]  # parameters set on top of the notebook's parameters cell
    placeholders: dict[str, str]  # example text in the rendered values -> what the reader types
    build: Callable[[Any], RegistryValues]  # validated real-mode Params -> the provider's values


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The values of a notebook's ``parameters`` cell (our own notebooks: plain literals)."""
    cells = json.loads(notebook.read_text())["cells"]
    source = next(
        "".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", [])
    )
    return read_parameters_cell(source).defaults


def _dockerhub(params: Any) -> RegistryValues:
    from binderhub_registry.providers import dockerhub

    # values() reads only the parameters and what the steps found: no session is opened
    conn = dockerhub.HubConnection.__new__(dockerhub.HubConnection)
    conn.params, conn.secret = params, Secret("access-token")
    conn.registry_url, conn.token_url = None, dockerhub.TOKEN_URL  # Docker Hub itself
    values = conn.values()
    assert values is not None
    return values


def _azure(params: Any) -> RegistryValues:
    from binderhub_registry.providers import azure

    conn = azure.AzureConnection.__new__(azure.AzureConnection)
    conn.params, conn.secret = params, Secret("password")
    # what ARM and Graph return for a real registry and application: loginServer is the
    # registry name in lower case under azurecr.io; the appId is a GUID Graph assigns
    login = f"{params.acr_name.lower()}.azurecr.io"
    conn.registry = azure.RegistryInfo(id="", name=params.acr_name, login_server=login)
    conn.principal = azure.Principal(
        app_object_id="", app_id="APP_ID", sp_id="", display_name=params.sp_name
    )
    values = conn.values()
    assert values is not None
    return values


def _google(params: Any) -> RegistryValues:
    from binderhub_registry.providers import google

    conn = google.GoogleConnection.__new__(google.GoogleConnection)
    conn.params, conn.secret, conn.ca_file = params, Secret("key-json"), None
    conn.host = google._host_of(conn, None)  # the provider's own rule for the real host
    values = conn.values()
    assert values is not None
    return values


def _harbor(params: Any) -> RegistryValues:
    from binderhub_registry.providers import harbor

    # a project robot's name as Harbor makes it (robot$<project>+<name>), and the secret redacted
    robot = f"robot${params.harbor_project}+{params.robot_name}"
    return harbor.harbor_values(
        params.harbor_url, params.harbor_project, params.prefix, robot, Secret("robot-secret")
    )


def _ovh(params: Any) -> RegistryValues:
    from binderhub_registry.providers import harbor, ovh

    conn = ovh.OvhConnection.__new__(ovh.OvhConnection)
    conn.params, conn.secret = params, Secret("robot-secret")
    # the URL OVHcloud gives a registry (https://<id>.<region>.container-registry.ovh.net,
    # as terraform-provider-ovh parses it), and its robot as Harbor names it
    url = f"https://registry-id.{params.region.lower()}.container-registry.ovh.net"
    conn.registry = {"url": url}
    conn.api = harbor.HarborAPI(url, ovh.ADMIN_LOGIN, Secret("admin-password"))
    conn.robot = {"name": f"robot${params.harbor_project}+{params.robot_name}"}
    conn.admin_username = ovh.ADMIN_LOGIN
    values = conn.values()
    assert values is not None
    return values


#: provider key -> how its real values are rendered; a new provider adds its entry here
REAL_EXAMPLES: dict[str, RealExample] = {
    "google": RealExample(
        overrides={"project_id": "your-project-id"},
        placeholders={"your-project-id": "<PROJECT_ID>"},
        build=_google,
    ),
    "dockerhub": RealExample(
        overrides={"username": "yourdockerid", "organization": "yourorg"},
        placeholders={"yourdockerid": "<DOCKER_ID>", "yourorg": "<ORGANIZATION>"},
        build=_dockerhub,
    ),
    "azure": RealExample(
        overrides={"acr_name": "youracrname"},
        placeholders={"youracrname": "<ACR_NAME>", "APP_ID": "<APP_ID>"},
        build=_azure,
    ),
    "harbor": RealExample(
        overrides={"harbor_url": "https://harbor.example.org"},
        placeholders={"harbor.example.org": "<HARBOR_HOST>"},
        build=_harbor,
    ),
    "ovh": RealExample(
        overrides={"service_name": "0123456789abcdef0123456789abcdef"},
        placeholders={"registry-id": "<REGISTRY_ID>"},
        build=_ovh,
    ),
}


def _provider_of(notebook: str) -> str | None:
    for key in providers.keys():
        if providers.get(key).NOTEBOOK == notebook:
            return key
    return None


def render_real_values(key: str, notebook: Path) -> str:
    """``config.yaml`` and ``secret.yaml`` as the notebook writes them in real mode."""
    example = REAL_EXAMPLES[key]
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
        if key is None or key not in REAL_EXAMPLES:
            logger.warning(
                "no real-values example for %s: add one to REAL_EXAMPLES in docs/_ext/guide.py",
                stem,
                location=self.get_location(),
            )
            return []
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
    """Register the directive and the page hook."""
    app.add_directive("real-values", RealValues)
    app.connect("source-read", add_guide_cells)
    app.connect("source-read", fill_links)
    app.connect("doctree-read", label_stacked_tables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
