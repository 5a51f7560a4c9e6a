"""The three ways in: papermill's parameter help, the rendered docs, and Binder's configuration
(with conda's environment.yml: both install what uv.lock pins, through requirements/)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from binderhub_registry import providers

from .conftest import ROOT
from .helpers import SPHINX_STRICT

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "notebook", sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")), ids=lambda p: p.stem
)
def test_help_notebook_documents_every_parameter(notebook: Path) -> None:
    text = _help_notebook(notebook)
    nb = nbformat.read(str(notebook), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = [line.split(":")[0] for line in cell.source.splitlines()]
    for name, following in zip(names, [*names[1:], None], strict=True):
        start = text.index(f"  {name}: ")
        entry = text[start : text.index(f"  {following}: ") if following else None]
        header, _, comment = entry.partition(")")
        assert any(f": {t} (default" in header for t in ("str", "bool", "int")), entry
        assert len(comment.split()) >= 3, f"{name} has no comment: {entry!r}"


def _help_notebook(notebook: Path) -> str:
    """``papermill --help-notebook``'s output, from papermill's command in this process (the
    test below checks the installed command prints the same)."""
    from click.testing import CliRunner
    from papermill.cli import papermill

    out = CliRunner().invoke(papermill, ["--help-notebook", str(notebook)])
    assert out.exit_code == 0, out.output
    return out.output


def test_the_papermill_command_prints_the_same_help() -> None:
    notebook = ROOT / "notebooks" / "02-docker-hub.ipynb"
    out = subprocess.run(
        [str(BIN / "papermill"), "--help-notebook", str(notebook)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == _help_notebook(notebook)


#: the tags the notebooks may use, and what the docs do with them (DESIGN.md section 6)
KNOWN_TAGS = {
    "parameters",
    "skip-execution",
    "nbval-skip",
    "raises-exception",
    "remove-input",
    "nbval-ignore-output",
}
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def _sphinx(src: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "sphinx-build"), *SPHINX_STRICT, str(src), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_docs_render_the_stored_notebooks_offline(docs_html: Path) -> None:
    tmp_path = docs_html  # built with -W: no warning at all (shared with test_site.py)
    page = (tmp_path / "notebooks" / "02-docker-hub.html").read_text()
    assert "2.2 Set up Docker Hub" in page
    assert "BinderHub finds the pushed image" in page  # the stored verification output
    assert "&lt;redacted&gt;" in page
    assert "dckr_pat_" not in page
    index = (tmp_path / "index.html").read_text()
    assert "Choose your registry" in index
    for name in ("verify", "sandbox", "upstream"):
        assert f'href="{name}.html"' in index, name
    for notebook in NOTEBOOKS:
        page = (tmp_path / "notebooks" / f"{notebook.stem}.html").read_text()
        assert f'href="notebooks/{notebook.stem}.html"' in index
        assert "The outputs on this page come from a run against the" in page
        real = page[page.index(f'id="real-values-{notebook.stem}"') :]
        real = real[: real.index("</pre>")]
        # rendered from real-mode parameters: no sandbox host, placeholders for the names
        assert "image_prefix" in real and "&lt;redacted&gt;" in real
        assert "127.0.0.1" not in real and "sandbox" not in real.split("</p>")[-1]


def test_docs_build_fails_on_a_broken_reference_or_a_page_outside_the_tree(
    tmp_path: Path,
) -> None:
    src = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", src, symlinks=True, ignore=shutil.ignore_patterns("_build"))
    (src / "notebooks").unlink()
    (src / "notebooks").symlink_to(ROOT / "notebooks")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # the repository's address, read by the docs
    (src / "orphan.md").write_text("# Not in any toctree\n")
    (src / "verify.md").write_text((src / "verify.md").read_text() + "\nSee {doc}`no-such-page`.\n")
    out = _sphinx(src, tmp_path / "html")
    assert out.returncode != 0
    assert "orphan" in out.stderr and "document isn't included in any toctree" in out.stderr
    assert "no-such-page" in out.stderr


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cell_tags_are_the_known_ones_used_consistently(notebook: Path) -> None:
    """Skipped cells skip under nbval too; plumbing may hide its input, never its output."""
    nb = nbformat.read(str(notebook), as_version=4)
    for i, cell in enumerate(nb.cells):
        tags = set(cell.metadata.get("tags", []))
        assert tags <= KNOWN_TAGS, (i, tags - KNOWN_TAGS)
        assert ("skip-execution" in tags) == ("nbval-skip" in tags), (i, tags)
        if cell.cell_type == "markdown":
            assert not tags, (i, tags)
        assert not tags & {"remove-cell", "remove-output", "hide-output"}, (i, tags)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and not params[0].metadata.get("tags", []).count("remove-input")


@pytest.mark.skipif(
    shutil.which("repo2docker", path=str(BIN)) is None, reason="jupyter-repo2docker not installed"
)
def test_binder_uses_binder_folder_and_installs_docker_registry() -> None:
    out = subprocess.run(
        [str(BIN / "repo2docker"), "--no-build", "--no-run", "--debug", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dockerfile = out.stdout + out.stderr
    assert "binder/environment.yml" in dockerfile
    assert "docker-registry" in dockerfile
    assert "./binder/postBuild" in dockerfile


def _pins(path: Path) -> set[str]:
    text = path.read_text()
    return {canonicalize_name(n) for n in re.findall(r"^([A-Za-z0-9._-]+)==", text, re.M)}


def _requirement_names(*groups: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for group in groups:
        lines += project["optional-dependencies"][group]
    names = {canonicalize_name(Requirement(line).name) for line in lines}
    return names - {canonicalize_name(project["name"])}


def _conda_python_allows(spec: str, version: str) -> bool:
    """Whether conda's ``python>=3.11`` or ``python=3.11`` admits ``version`` (x.y)."""
    constraint = spec.removeprefix("python")
    if constraint.startswith("="):  # conda's =3.11 means 3.11.*
        constraint = "==" + constraint.lstrip("=") + ".*"
    return SpecifierSet(constraint).contains(version + ".0")


@pytest.mark.parametrize(
    ("env_file", "exported", "extras"),
    [
        ("environment.yml", "requirements/dev.txt", ("all", "azure", "test", "docs")),
        ("binder/environment.yml", "requirements/all.txt", ("all", "azure")),
    ],
)
def test_conda_and_binder_install_what_the_lock_pins(
    env_file: str, exported: str, extras: tuple[str, ...]
) -> None:
    """conda gives Python and pip only; every package comes from a file exported from uv.lock
    (tests/test_lock.py checks those files against the lock), which covers the requirements."""
    env = yaml.safe_load((ROOT / env_file).read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    python = next(d for d in conda if d.startswith("python"))
    assert sorted(conda) == sorted([python, "pip"]), "packages come from the lock, not conda"
    assert _conda_python_allows(python, "3.11")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains("3.11.0")
    if env_file == "binder/environment.yml":
        # repo2docker builds the environment before copying the repo: postBuild installs
        assert pip == []
        post = (ROOT / "binder" / "postBuild").read_text()
        assert f"pip install --no-cache-dir -r {exported}" in post
        assert "pip install --no-cache-dir --no-deps -e ." in post
    else:
        assert pip == [[f"-r {exported}", "-e ."]]
    assert _requirement_names(*extras) <= _pins(ROOT / exported)


def test_readme_has_the_binder_link_and_a_small_screenshot_of_the_site() -> None:
    readme = (ROOT / "README.md").read_text()
    choose = readme[readme.index("## Choose your path") :]
    choose = choose[: choose.index("\n## ", 1)]
    binder = re.search(r"\(https://mybinder\.org/v2/gh/[^)\s]+\)", choose)
    assert binder and "urlpath=lab/tree/notebooks" in binder.group(0)  # JupyterLab, notebooks/
    ways = (
        "make docs",
        "Binder",
        "jupyter lab",
        "binderhub-registry run",
        "binderhub-registry verify",
    )
    for way in ways:
        assert way in choose, way
    shot = re.search(r"!\[[^\]]+\]\((docs/_static/[\w.-]+\.png)\)", choose)
    assert shot, "no screenshot in Choose your path"
    png = ROOT / shot.group(1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 300_000


#: the README's sections, in order: the user's path and nothing else (the rest: CONTRIBUTING.md)
README_SECTIONS = [
    "Choose your path",
    "Install, from a clone",
    "Rehearse: `make demo`",
    "Do it for real",
    "Check values you already have: `verify`",
    "The docs",
    "Contributing",
]
#: what moved out of the README: to CONTRIBUTING.md, or to the docs
MOVED = {
    "CONTRIBUTING.md": ["## Layout", "## Adding a registry", "POST /_sandbox/faults", "make audit"],
    "docs/running.md": ["## Parameters", "## Scheduled rotation without an outage"],
}


def test_readme_is_the_users_path_and_the_rest_moved() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"^## (.+)$", readme, re.M) == README_SECTIONS
    assert len(readme.splitlines()) <= 200
    for where, texts in MOVED.items():
        text = (ROOT / where).read_text()
        for moved in texts:
            assert moved in text, (where, moved)
            assert moved not in readme, moved
    assert "_sandbox/" not in readme  # the fault API is a contributor's business
    # what is not true yet is said plainly
    flat = " ".join(readme.split())
    assert "**Not released yet.**" in flat and "install from a clone" in flat


def test_readme_runs_each_registry_for_real_with_the_variables_it_reads() -> None:
    readme = (ROOT / "README.md").read_text()
    real = readme[readme.index("## Do it for real") :]
    block = real[real.index("```bash\n") : real.index("```\n", real.index("```bash\n") + 8)]
    chunks = block.split("\n\n")
    for key in providers.keys():
        provider = providers.get(key)
        chunk = next(c for c in chunks if f"notebooks/{provider.NOTEBOOK}.ipynb" in c)
        assert "-p sandbox False" in chunk, key
        for variable, _ in provider.SECRET_ENVIRONMENT:
            assert variable in chunk, (key, variable)
        # every -p names a parameter of that notebook, with a value its rule takes (a
        # placeholder in capitals is the reader's to fill in)
        pairs = re.findall(r"-p (\w+) (\S+)", chunk)
        values = {name: _papermill_value(value) for name, value in pairs}
        placeholders = {n for n, v in values.items() if isinstance(v, str) and v.isupper()}
        defaults = guide_parameters(provider.NOTEBOOK)
        assert set(values) <= set(defaults), (key, set(values) - set(defaults))
        ours = {n: v for n, v in values.items() if n not in placeholders and n != "output_dir"}
        provider.validate(defaults, **ours, dry_run=True)  # raises InvalidParameter


def _papermill_value(value: str) -> object:
    """A ``-p`` value as papermill types it: as ``binderhub-registry run`` reads it."""
    from binderhub_registry.cli import _resolve_type

    return _resolve_type(value)


def guide_parameters(stem: str) -> dict[str, object]:
    """A notebook's parameters cell, as the docs' extension reads it."""
    import sys

    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    import guide

    return guide.notebook_parameters(ROOT / "notebooks" / f"{stem}.ipynb")


def test_jupyter_lab_as_root_is_explained() -> None:
    for where in ("README.md", "docs/running.md", "docs/index.md"):
        assert "--allow-root" in (ROOT / where).read_text(), where
    # the message jupyter_server prints, quoted where the docs explain it
    index = " ".join((ROOT / "docs" / "index.md").read_text().split())
    assert "Running as root is not recommended. Use --allow-root to bypass." in index


def test_every_chart_version_shown_is_the_one_example() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    import guide

    for path in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")]:
        for version in re.findall(r"--version=(\S+)", path.read_text()):
            assert version == guide.CHART_VERSION, (path.name, version)


# --- running.md, index.md and verify.md say something of every registry -----------------------
def _running_sections() -> dict[str, str]:
    """docs/running.md's "### " sections under "## Parameters": heading -> text."""
    text = (ROOT / "docs" / "running.md").read_text()
    part = text[text.index("\n## Parameters\n") :]
    part = part[: part.index("\n## ", 1)]
    chunks = part.split("\n### ")[1:]
    return {c.split("\n", 1)[0]: c for c in chunks}


def _table_names(text: str) -> set[str]:
    """The parameter names a parameters table's first column holds (several per row allowed)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    return names


@pytest.mark.parametrize("key", providers.keys())
def test_running_has_a_section_per_registry_with_its_parameters_and_variables(key: str) -> None:
    """Each registry's section in running.md: a table naming each of its notebook's own
    parameters, and the environment variables it reads for real."""
    from binderhub_registry.providers.contract import COMMON_PARAMETERS

    provider = providers.get(key)
    common = {p.name for p in COMMON_PARAMETERS}
    own = {p.name for p in provider.PARAMETERS} - common
    sections = [s for s in _running_sections().values() if own <= _table_names(s)]
    assert sections, f"docs/running.md has no section whose table names {sorted(own)}"
    (section,) = sections
    for variable, _ in provider.SECRET_ENVIRONMENT:
        assert variable in section, (key, variable)
    assert "common parameters" in section


def test_running_s_common_table_names_every_common_parameter() -> None:
    from binderhub_registry.providers.contract import COMMON_PARAMETERS

    text = (ROOT / "docs" / "running.md").read_text()
    part = text[text.index("\n## Parameters\n") :]
    common = part[: part.index("\n### ")]
    assert _table_names(common) == {p.name for p in COMMON_PARAMETERS}


def test_index_names_the_registries_whose_user_pods_pull_with_the_nodes() -> None:
    """The landing page's "Who uses which credential": the "node" row names every registry that
    takes ``pull_access = "node"``, and the text names every notebook whose default is not
    "secret"."""
    text = (ROOT / "docs" / "index.md").read_text()
    part = text[text.index("## Who uses which credential") : text.index("## Choose your registry")]
    (row,) = (line for line in part.splitlines() if line.startswith("| user pods |"))
    node = row[row.index('`pull_access = "node"`') :].split(")", 1)[0]
    prose = " ".join(part.split("\n\n")[1].split())
    for key in providers.keys():
        provider = providers.get(key)
        assert (provider.NAME in node) == bool(provider.Params.PULL_NODE), (key, node)
        default = guide_parameters(provider.NOTEBOOK)["pull_access"]
        if default != "secret":
            assert f"{provider.NAME}'s default is the nodes'" in prose, (key, default)


def test_verify_s_storage_table_has_a_row_per_registry() -> None:
    text = (ROOT / "docs" / "verify.md").read_text()
    table = text[text.index("| Registry | What is reported |") :].split("\n```", 1)[0]
    firsts = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    for key in providers.keys():
        word = providers.get(key).NAME.split()[0]  # "Amazon", "Azure", "OVHcloud", ...
        assert any(first.startswith(word) for first in firsts), (key, firsts)
