"""uv.lock: it matches pyproject.toml, the venv was installed from it, and the requirement files
exported from it (Binder's and conda's) follow it.

The checks on parsed data need nothing but the files; the ones that ask uv itself (offline, so no
registry is contacted) run where uv is: the Makefile exports ``UV``, its pinned bootstrap.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from .conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
NAME = PYPROJECT["project"]["name"]
ROOT_PACKAGE = next(p for p in LOCK["package"] if p["name"] == NAME)
EXPORTS = [ROOT / "requirements" / "all.txt", ROOT / "requirements" / "dev.txt"]

Key = tuple[str, frozenset[str], SpecifierSet, str | None]


def uv() -> str:
    """The uv the Makefile uses, else one on PATH; skip when there is none."""
    found = os.environ.get("UV")
    if found and not os.path.isabs(found) and "/" in found:
        found = str(ROOT / found)
    found = shutil.which(found) if found else shutil.which("uv")
    if not found:
        pytest.skip("uv not found (the Makefile bootstraps it into .tools/)")
    return found


def run_uv(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    return subprocess.run(
        [uv(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def pyproject_requirements() -> set[Key]:
    """(name, extras, specifier, extra it belongs to) for the core and every extra."""
    keys: set[Key] = set()
    groups: dict[str | None, list[str]] = {None: PYPROJECT["project"]["dependencies"]}
    groups |= PYPROJECT["project"]["optional-dependencies"]
    for group, lines in groups.items():
        for line in lines:
            req = Requirement(line)
            keys.add((canonicalize_name(req.name), frozenset(req.extras), req.specifier, group))
    return keys


def lock_requirements() -> set[Key]:
    """The same, as uv recorded them in the lock's own package entry."""
    keys: set[Key] = set()
    for dep in ROOT_PACKAGE["metadata"]["requires-dist"]:
        extra = re.search(r"extra == '([^']+)'", dep.get("marker", ""))
        keys.add(
            (
                canonicalize_name(dep["name"]),
                frozenset(dep.get("extras", [])),
                SpecifierSet(dep.get("specifier", "")),
                extra.group(1) if extra else None,
            )
        )
    return keys


def locked_versions() -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for package in LOCK["package"]:
        versions.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
    return versions


def test_lock_records_every_requirement_of_pyproject() -> None:
    assert lock_requirements() == pyproject_requirements(), "pyproject.toml changed: `make lock`"
    extras = sorted(PYPROJECT["project"]["optional-dependencies"])
    assert sorted(ROOT_PACKAGE["metadata"]["provides-extras"]) == extras
    assert LOCK["requires-python"] == PYPROJECT["project"]["requires-python"]


def test_uv_lock_check_offline() -> None:
    out = run_uv("lock", "--check")
    assert out.returncode == 0, out.stderr


def test_every_locked_version_satisfies_pyproject() -> None:
    versions = locked_versions()
    for name, _, specifier, _ in pyproject_requirements():
        if name == NAME:
            continue  # `all` names the project's own extras
        assert name in versions, f"{name} is not in uv.lock"
        for version in versions[name]:
            assert specifier.contains(version, prereleases=True), (name, version, specifier)


def test_lock_pins_no_gpu_stack() -> None:
    heavy = re.compile(r"^(torch|torchvision|torchaudio|triton|jax|jaxlib|tensorflow|nvidia-.*)$")
    assert [p["name"] for p in LOCK["package"] if heavy.match(p["name"])] == []


def test_the_venv_is_installed_from_the_lock() -> None:
    versions = locked_versions()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {
        name: (version, sorted(versions[name]))
        for name, version in installed.items()
        if name in versions and version not in versions[name]
    }
    assert wrong == {}, "installed versions differ from uv.lock: `make install`"
    # every core and test requirement is there (the tests run, so the test extra is installed)
    needed = {k[0] for k in pyproject_requirements() if k[3] in (None, "test")}
    assert needed - set(installed) == set()


def _exported(path: Path) -> tuple[list[str], str]:
    """The uv export command in a file's header, and the file without its header."""
    lines = path.read_text().splitlines(keepends=True)
    assert lines[0].startswith("# This file was autogenerated by uv"), path
    command = shlex.split(lines[1].lstrip("#").strip())
    return command, "".join(lines[2:])


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.name)
def test_exported_requirements_pin_the_locked_versions(path: Path) -> None:
    versions = locked_versions()
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s;]+)", path.read_text(), re.M)
    assert pins
    for name, version in pins:
        assert version in versions.get(canonicalize_name(name), set()), (name, version)
    command, _ = _exported(path)
    assert command[:3] == ["uv", "export", "--frozen"], "exported by `make exports` from uv.lock"


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.name)
def test_exported_requirements_are_what_uv_exports_now(path: Path) -> None:
    command, body = _exported(path)
    args: list[Any] = []
    rest = command[2:]
    while rest:  # the header's arguments less the output file
        arg = rest.pop(0)
        if arg in ("-o", "--output-file"):
            rest.pop(0)
        else:
            args.append(arg)
    out = run_uv("export", *args, "--no-header", "-q")
    assert out.returncode == 0, out.stderr
    assert out.stdout == body, f"{path.name} is stale: `make exports`"
