"""The three ways in: papermill's parameter help, the rendered docs, and Binder's configuration."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from .conftest import ROOT

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "notebook", sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")), ids=lambda p: p.stem
)
def test_help_notebook_documents_every_parameter(notebook: Path) -> None:
    out = subprocess.run(
        [str(BIN / "papermill"), "--help-notebook", str(notebook)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    nb = nbformat.read(str(notebook), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = [line.split(":")[0] for line in cell.source.splitlines()]
    text = out.stdout
    for name, following in zip(names, [*names[1:], None], strict=True):
        start = text.index(f"  {name}: ")
        entry = text[start : text.index(f"  {following}: ") if following else None]
        header, _, comment = entry.partition(")")
        assert any(f": {t} (default" in header for t in ("str", "bool", "int")), entry
        assert len(comment.split()) >= 3, f"{name} has no comment: {entry!r}"


def test_docs_render_the_stored_notebooks_offline(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(BIN / "sphinx-build"), "-q", "-b", "html", str(ROOT / "docs"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "notebooks" / "02-docker-hub.html").read_text()
    assert "2.2 Set up Docker Hub" in page
    assert "BinderHub finds the pushed image" in page  # the stored verification output
    assert "&lt;redacted&gt;" in page
    assert "dckr_pat_" not in page
    assert "02-docker-hub" in (tmp_path / "index.html").read_text()


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
