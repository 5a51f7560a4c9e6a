"""The repository's address is one setting, ``[project.urls]`` in pyproject.toml: the docs derive
their buttons, Binder links and clone commands from it at build time, and every file that must
spell it out (README, CONTRIBUTING, binder/, the publishing workflow) spells the same address."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "docs" / "_ext"))
import guide

#: an address of this project: on GitHub, on Binder, on GitHub Pages
OURS = re.compile(
    r"https://github\.com/([\w.-]+)/([\w.-]+)"
    r"|https://mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)"
    r"|https://([\w-]+)\.github\.io/([\w.-]+)"
)
NAME = "binderhub-registry"
#: the files that spell the address out, and the sources that must derive it instead
SPELLED = ["README.md", "CONTRIBUTING.md", "binder", ".github/workflows"]
DERIVED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
DERIVED += ["docs/conf.py", "docs/_ext/guide.py"]


def _urls() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]


def _files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = ROOT / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def _ours(text: str) -> list[tuple[str, str]]:
    """(owner, repo) of every address in ``text`` that names this project."""
    found = []
    for match in OURS.finditer(text):
        parts = [g for g in match.groups() if g is not None]
        owner, repo = parts[0], parts[1].removesuffix(".git")
        if NAME in (owner, repo):
            found.append((owner, repo))
    return found


def test_pyproject_sets_the_repository_and_the_docs_address() -> None:
    urls = _urls()
    owner, repo = guide._github_parts(urls["Repository"])
    assert urls["Repository"] == f"https://github.com/{owner}/{repo}"
    assert urls["Documentation"] == f"https://{owner}.github.io/{repo}/"  # GitHub Pages
    assert guide.repository_url() == urls["Repository"]


def test_files_that_spell_the_address_spell_the_one_in_pyproject() -> None:
    owner, repo = guide._github_parts(_urls()["Repository"])
    seen = 0
    for path in _files(SPELLED):
        for found in _ours(path.read_text()):
            assert found == (owner, repo), f"{path.relative_to(ROOT)}: {found}"
            seen += 1
    assert seen >= 4  # README: the status line, the clone, Binder, the docs' address
    readme = (ROOT / "README.md").read_text()
    assert f"git clone {_urls()['Repository']}\ncd {repo}\n" in readme
    assert f"]({guide.binder_url()})" in readme
    assert f"<{_urls()['Documentation']}>" in readme


def test_docs_sources_derive_the_address_instead_of_writing_it() -> None:
    for path in _files(DERIVED):
        assert not _ours(path.read_text()), path.relative_to(ROOT)


def test_a_fork_changes_one_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "pyproject.toml").read_text()
    text = text.replace(_urls()["Repository"], "https://github.com/someone/fork-of-it")
    (tmp_path / "pyproject.toml").write_text(text)
    monkeypatch.setattr(guide, "ROOT", tmp_path)
    assert guide.binder_url("notebooks/05-harbor.ipynb") == (
        "https://mybinder.org/v2/gh/someone/fork-of-it/HEAD?urlpath=lab/tree/notebooks/05-harbor.ipynb"
    )
    assert guide.clone_commands("ls").startswith(
        "git clone https://github.com/someone/fork-of-it\ncd fork-of-it\nmake install"
    )
    source = ["[Binder]({{ binder_url }}) and {{ repository_url }}"]
    guide.fill_links(None, "index", source)  # type: ignore[arg-type]
    assert source == [
        "[Binder](https://mybinder.org/v2/gh/someone/fork-of-it/HEAD?urlpath=lab/tree/notebooks)"
        " and https://github.com/someone/fork-of-it"
    ]


def test_the_docs_workflow_builds_with_make_docs_and_deploys_the_build() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "docs.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    assert any(s.get("run") == "make docs" for s in steps)
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages"))
    assert upload["with"]["path"] == "docs/_build/html"
    python = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python"))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={python['with']['python-version']}"
    deploy = workflow["jobs"]["deploy"]["steps"]
    assert any(str(s.get("uses", "")).startswith("actions/deploy-pages") for s in deploy)
    assert workflow[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads `on` as True
