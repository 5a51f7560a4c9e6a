"""What a registry adds is derived from ``providers.PROVIDERS``, or checked against it.

The sandbox mounts one backend per registered provider, each at ``sandbox/<key>/cloud.py``; the
docs render every provider's real values and, from its ``GUIDE``, what the landing page says of it
(its row of the guide's table, when to choose it, its column of the registry matrix); and
CONTRIBUTING's "Adding a registry" names the files that exist and the suites that do run over
every provider.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys

import pytest

from binderhub_registry import providers
from binderhub_registry.providers.contract import GuideEntry
from binderhub_registry.sandbox import app, server
from binderhub_registry.sandbox.bootstrap import python_argv

from .conftest import ROOT

SANDBOX = ROOT / "lib" / "binderhub_registry" / "sandbox"


def _prefixes(keys: list[str] | None = None) -> list[str]:
    """The prefixes of the backends the sandbox would build, in mount order."""
    return [f.__self__.prefix for f in server.backends(keys)]  # type: ignore[attr-defined]


def test_the_sandbox_mounts_one_backend_per_registered_provider_in_their_order() -> None:
    assert server.registered() == providers.keys()
    assert _prefixes() == [f"/{key}" for key in providers.keys()]
    assert _prefixes(["ovh", "dockerhub"]) == ["/ovh", "/dockerhub"]
    with pytest.raises(ModuleNotFoundError, match=r"sandbox\.nosuch"):
        server.backends(["nosuch"])  # a provider without a backend stops the start


def test_the_server_process_lists_its_backends_without_importing_the_providers() -> None:
    """The server runs without the packages' ``__init__`` (bootstrap.py); importing
    ``providers`` there would load the notebook API, most of the cold start's budget."""
    code = python_argv("binderhub_registry.sandbox.server")[2].replace(
        "runpy.run_module(",
        "m = __import__('binderhub_registry.sandbox.server', fromlist=['x'])\n"
        "print(len(m.backends()), sorted(n for n in sys.modules if 'providers' in n))\n"
        "(lambda *a, **k: None)(",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.split() == [str(len(providers.keys())), "[]"]


@pytest.mark.parametrize("key", providers.keys())
def test_every_backend_is_a_package_with_the_same_file_names(key: str) -> None:
    package = SANDBOX / key
    assert not (SANDBOX / f"{key}.py").exists(), f"sandbox/{key}.py: make it sandbox/{key}/"
    assert (package / "__init__.py").is_file() and (package / "cloud.py").is_file()
    cloud = importlib.import_module(f"binderhub_registry.sandbox.{key}.cloud")
    backend = cloud.BACKEND
    assert issubclass(backend, app.Backend) and backend.__module__ == cloud.__name__
    assert backend.prefix == f"/{key}"
    assert "create" in vars(backend), f"{backend.__name__} makes itself from the sandbox context"
    # the package re-exports its backend, so imports of the package keep working
    assert getattr(importlib.import_module(f"binderhub_registry.sandbox.{key}"), backend.__name__)
    # its table of behaviours and sources is the package's docstring
    assert "source" in (importlib.import_module(f"binderhub_registry.sandbox.{key}").__doc__ or "")


def test_the_backends_old_imports_still_work() -> None:
    from binderhub_registry.sandbox.dockerhub import (  # noqa: F401
        PULL_LIMIT_BODY,
        SEED_USER,
        SESSION_TTL,
        TOTP_STEP,
        DockerHub,
        totp,
    )
    from binderhub_registry.sandbox.harbor import Harbor, HarborInstance  # noqa: F401


@pytest.fixture(scope="module")
def guide() -> object:
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        return importlib.import_module("guide")
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))


@pytest.mark.parametrize("key", providers.keys())
def test_every_provider_has_its_real_values_rendered(guide: object, key: str) -> None:
    """The docs' real-values example of each provider (a missing one also fails ``make docs``)."""
    notebook = ROOT / "notebooks" / f"{providers.get(key).NOTEBOOK}.ipynb"
    text = guide.render_real_values(key, notebook)  # type: ignore[attr-defined]
    assert "# config.yaml" in text and "# secret.yaml" in text
    assert "127.0.0.1" not in text  # real hosts, not the sandbox's


def _section(key: str) -> str:
    """The guide section a provider's notebook says it does: its title's "2.x", or "Beyond the
    guide" for a registry the guide does not cover."""
    import json

    notebook = ROOT / "notebooks" / f"{providers.get(key).NOTEBOOK}.ipynb"
    title = "".join(json.loads(notebook.read_text())["cells"][0]["source"]).splitlines()[0]
    match = re.match(r"# (\d\.\d|Beyond the guide)\b", title)
    assert match, f"{notebook.name}: its title starts with its guide section: {title!r}"
    return match.group(1)


def _cells(line: str) -> list[str]:
    """A MyST table row's cells."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


@pytest.mark.parametrize("key", providers.keys())
def test_every_provider_declares_its_place_in_the_landing_page_tables(
    guide: object, key: str
) -> None:
    """Its ``GUIDE`` names its notebook's own section, and renders as a row of the guide's table,
    an item of "Choose your registry" and a column of the registry matrix (``make docs`` parses
    them; a missing entry fails it)."""
    entry = providers.get(key).GUIDE
    assert isinstance(entry, GuideEntry)
    assert entry.section == _section(key)
    sections = guide.sections_table([])  # type: ignore[attr-defined]
    rows = [
        r for r in sections.splitlines() if f"{{doc}}`notebooks/{providers.get(key).NOTEBOOK}`" in r
    ]
    assert len(rows) == 1 and _cells(rows[0])[0] == entry.row(), sections
    choices = guide.registry_choices()  # type: ignore[attr-defined]
    assert f"- **{entry.name}** {entry.choose}\n" in choices
    matrix = guide.registry_matrix()  # type: ignore[attr-defined]
    table = [line for line in matrix.splitlines() if line.startswith("|")]
    assert len({len(_cells(line)) for line in table}) == 1  # every row as wide as the header
    column = _cells(table[0]).index(entry.column())
    assert [_cells(line)[column] for line in table[2:]] == [cell for _, cell in entry.cells()]
    for name, text in entry.notes.items():
        assert f"[^{name}]: {text}\n" in matrix


def test_the_landing_page_tables_are_in_the_guides_order_with_a_column_per_provider(
    guide: object,
) -> None:
    table = guide.sections_table([]).splitlines()  # type: ignore[attr-defined]
    sections = [_cells(row)[0] for row in table[2:]]
    assert len(sections) == len(providers.keys())
    numbered = [s.split()[0] for s in sections if s[0].isdigit()]
    assert numbered == sorted(numbered) and sections[len(numbered) :] == [
        s for s in sections if s.startswith("Beyond the guide")
    ]
    matrix = guide.registry_matrix()  # type: ignore[attr-defined]
    header = next(line for line in matrix.splitlines() if line.startswith("|"))
    assert len(_cells(header)) == len(providers.keys()) + 1
    index = (ROOT / "docs" / "index.md").read_text()
    for directive in ("guide-sections", "registry-choices", "registry-matrix"):
        assert f"```{{{directive}}}" in index
    assert "{doc}`notebooks/" not in index and "[^" not in index  # nothing written by hand


def test_a_provider_without_its_guide_entry_stops_the_docs(
    guide: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(providers.PROVIDERS, "nosuch", "binderhub_registry.steps")
    with pytest.raises(AttributeError, match="provider 'nosuch' declares no GUIDE"):
        guide.registry_matrix()  # type: ignore[attr-defined]


def test_a_guide_entry_defines_each_note_its_cells_cite() -> None:
    entry = providers.get(providers.keys()[0]).GUIDE
    with pytest.raises(ValueError, match=r"missing=\['nosuch'\] unused=\[\]"):
        dataclasses.replace(entry, cost=entry.cost + " [^nosuch]")
    with pytest.raises(ValueError, match=r"unused=\['extra'\]"):
        dataclasses.replace(entry, notes={**entry.notes, "extra": "a note no cell cites"})
    with pytest.raises(ValueError, match="section must be"):
        dataclasses.replace(entry, section="2")


def _adding_a_registry() -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    return text.split("## Adding a registry\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("key", providers.keys())
def test_contributing_names_the_four_files_each_registry_has(key: str) -> None:
    section = _adding_a_registry()
    for pattern in (
        "lib/binderhub_registry/providers/<key>.py",
        "notebooks/NN-<key>.ipynb",
        "lib/binderhub_registry/sandbox/<key>/",
        "tests/test_<key>_notebook.py",
    ):
        assert f"`{pattern}" in section, pattern
    provider = ROOT / "lib" / "binderhub_registry" / "providers"
    assert (provider / f"{key}.py").is_file() or (provider / key / "__init__.py").is_file()
    assert (ROOT / "notebooks" / f"{providers.get(key).NOTEBOOK}.ipynb").is_file()
    assert (SANDBOX / key / "cloud.py").is_file()
    assert (ROOT / "tests" / f"test_{key}_notebook.py").is_file()


def test_contributing_says_the_docs_need_nothing_more_than_the_providers_guide() -> None:
    section = _adding_a_registry()
    assert "`GUIDE`" in section and "docs/index.md" not in section


def test_contributing_names_suites_that_run_over_every_provider() -> None:
    suites = set(re.findall(r"`tests/(test_\w+\.py)`", _adding_a_registry()))
    assert {"test_contract.py", "test_rotation.py", "test_faults.py"} <= suites
    for name in suites:
        text = (ROOT / "tests" / name).read_text()
        assert "providers.keys()" in text, f"{name} does not run over every registered provider"


@pytest.mark.parametrize("key", providers.keys())
def test_readme_names_every_registrys_notebook_and_when_to_choose_it(key: str) -> None:
    """README is read on GitHub, where the docs' directives do not render: its notebook table
    and its "Which registry" list name every registered registry (hand-written, so checked)."""
    provider = providers.get(key)
    readme = (ROOT / "README.md").read_text()
    assert f"(notebooks/{provider.NOTEBOOK}.ipynb)" in readme
    assert f"- **{provider.GUIDE.name}** if" in readme
