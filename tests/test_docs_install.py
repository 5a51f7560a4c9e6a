"""Every install command that the README, CONTRIBUTING.md and the docs show works from a fresh
clone of this repository.

The commands are read from the files themselves (fenced shell blocks, and inline code that
starts with an install command), so a command added to the docs is checked without touching this
test. Each kind is checked as cheaply as it can be honestly:

* ``git clone <Repository>`` then ``cd <folder>``: the address is the one of ``[project.urls]``
  (the repository is not published yet), so the clone is of this repository's HEAD, into that
  folder;
* ``make <target>``: the target exists in the clone's Makefile, and ``make install``, which every
  other command assumes, really runs there (with this checkout's pinned uv, so only its
  bootstrap from PyPI is skipped);
* ``pip install ...`` (also ``.venv/bin/pip``, ``python3 -m pip``): run as ``uv pip install``
  with the same arguments into a fresh venv of its own, from the clone, offline from uv's cache;
  where the cache lacks an index page (uv's cache after ``make install`` holds the lock's wheels,
  not the index's pages), each pinned requirement is checked against ``uv.lock`` instead, and each
  extra named against ``pyproject.toml``, so the command installs what ``make install`` did;
* after the install, the commands the docs run from ``.venv/bin`` exist, and the package the
  clone installed is the clone's own.

uv runs offline throughout (``UV_OFFLINE``): nothing beyond loopback is reached.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT

#: the pinned uv the Makefile bootstraps into this checkout (make install has run here)
UV = sorted((ROOT / ".tools").glob("uv-*/bin/uv"))
DOC_FILES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
#: a shell line that installs or sets up: what this test runs or checks
INSTALL = re.compile(
    r"^(?:git clone |cd |make |python3 -m venv |python3 -m pip install "
    r"|(?:\.venv/bin/)?pip install )"
)
#: the install of a release, which does not exist yet: shown only to say so
UNPUBLISHED = "pip install binderhub-registry"


def _shell_lines(text: str) -> Iterator[str]:
    """Lines of fenced ``bash`` blocks (continuations joined, comments dropped), then inline
    code spans, in order."""
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                yield line
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    yield from (span.strip() for span in re.findall(r"`([^`\n]+)`", prose))


def install_commands() -> list[tuple[str, str]]:
    """(file, command) of every install command shown, without repeats."""
    seen: dict[str, str] = {}
    for path in DOC_FILES:
        for line in _shell_lines(path.read_text()):
            if INSTALL.match(line) and line not in seen:
                seen[line] = str(path.relative_to(ROOT))
    return [(where, command) for command, where in seen.items()]


def _makefile_targets(makefile: Path) -> set[str]:
    return set(re.findall(r"^([\w.-]+):", makefile.read_text(), re.M))


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    env["UV_OFFLINE"] = "1"  # tests reach nothing beyond loopback: uv's cache only
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _uv_pip_install(clone: Path, venv: Path, arguments: list[str]) -> None:
    uv = str(UV[-1])
    made = _run([uv, "venv", "-q", "--python", sys.executable, str(venv)], clone)
    assert made.returncode == 0, made.stderr
    command = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *arguments]
    out = _run([*command, "--offline"], clone)
    if out.returncode != 0 and "network was disabled" in out.stderr:
        _matches_the_lock(clone, arguments)  # an index page not in uv's cache: check, offline
        return
    assert out.returncode == 0, f"uv pip install {shlex.join(arguments)}:\n{out.stderr}"


def _matches_the_lock(clone: Path, arguments: list[str]) -> None:
    """What ``pip install <arguments>`` would install is what ``make install`` installed: each
    ``-r`` or ``-c`` file's pins are the lock's versions, and each extra named exists."""
    locked: dict[str, set[str]] = {}  # a package can be locked at one version per marker
    for package in tomllib.loads((clone / "uv.lock").read_text())["package"]:
        locked.setdefault(package["name"], set()).add(package.get("version", ""))
    extras = set(
        tomllib.loads((clone / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    words = iter(arguments)
    for word in words:
        if word in ("-r", "-c"):
            for line in (clone / next(words)).read_text().splitlines():
                pin = re.match(r"^([\w.-]+)==([^\s;]+)", line)
                if pin:
                    name = re.sub(r"[-_.]+", "-", pin[1]).lower()
                    assert pin[2] in locked.get(name, set()), (line, locked.get(name))
        elif word.startswith("."):
            named = re.findall(r"\[([\w,-]+)\]", word)
            assert not named or set(named[0].split(",")) <= extras, word


def test_the_docs_show_the_install_commands_this_test_checks() -> None:
    commands = [command for _, command in install_commands()]
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"][
        "Repository"
    ]
    assert f"git clone {repository}" in commands
    assert "make install" in commands and "make demo" in commands
    assert any(c.startswith(".venv/bin/pip install -r requirements/all.txt") for c in commands)
    assert any("'.[azure]'" in c for c in commands)
    # a release is never offered: where its install is shown, it is said to find nothing
    for where, command in install_commands():
        if re.search(r"pip install (?!-)[\w.-]*binderhub-registry", command):
            assert command == UNPUBLISHED, (where, command)
            text = " ".join((ROOT / where).read_text().split())
            assert f"`{UNPUBLISHED}` finds nothing" in text, where


@pytest.mark.skipif(not UV, reason="no pinned uv in .tools/: run make install first")
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_every_install_command_shown_works_from_a_fresh_clone(tmp_path: Path) -> None:
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"][
        "Repository"
    ]
    folder = repository.rsplit("/", 1)[1]
    clone = tmp_path / folder
    cloned = _run(["git", "clone", "-q", str(ROOT), str(clone)], tmp_path)
    assert cloned.returncode == 0, cloned.stderr
    targets = _makefile_targets(clone / "Makefile")
    checked: list[str] = []
    pip_runs = 0
    for where, command in install_commands():
        words = shlex.split(command)
        if command == UNPUBLISHED:
            continue  # said to find nothing (the test above)
        if words[:2] == ["git", "clone"]:
            assert words[2:] == [repository], (where, command)
        elif words[0] == "cd":
            assert words[1:] == [folder], (where, command)  # the folder git clone makes
        elif words[0] == "make":
            wanted = {w for w in words[1:] if "=" not in w}  # make test JOBS=0: a variable
            assert wanted <= targets, (where, command)
        elif words[:3] == ["python3", "-m", "venv"]:
            assert words[3:] == [".venv"], (where, command)
        else:  # pip install ..., as uv pip install into a fresh venv of its own
            pip = words.index("install")
            pip_runs += 1
            _uv_pip_install(clone, tmp_path / f"venv-{pip_runs}", words[pip + 1 :])
        checked.append(f"{where}: {command}")
    assert pip_runs >= 2, checked
    # make install, for real, in the clone (the pinned uv given, so not bootstrapped again)
    install = _run(["make", "install", f"UV={UV[-1]}"], clone, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    for tool in ("jupyter-lab", "papermill", "binderhub-registry", "sphinx-build"):
        assert (clone / ".venv" / "bin" / tool).exists(), tool
    where = _run(
        [
            str(clone / ".venv" / "bin" / "python"),
            "-c",
            "import binderhub_registry as b; print(b.__file__)",
        ],
        clone,
    )
    assert where.stdout.strip().startswith(str(clone / "lib")), where.stdout + where.stderr
