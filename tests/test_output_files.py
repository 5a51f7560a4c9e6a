"""Nothing in an output_dir is overwritten that this project did not write.

Each test failed before its change: config.yaml was written through a planted link, a
shared or foreign directory was used, a user's own values files and another notebook's
record were replaced without a word, a corrupt record counted as empty, and secret.yaml
was left for git to pick up.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from binderhub_registry.providers import dockerhub

from .helpers import PARAMS, refused

pytestmark = pytest.mark.notebook


def run_values(directory: Path, source: str = "02-docker-hub") -> None:
    """config.yaml and secret.yaml as a run of ``source`` writes them."""
    from binderhub_registry import RegistryValues, Secret
    from binderhub_registry.binderhub import write_values

    write_values(directory, RegistryValues("r.example/p/b-", "u", Secret("p" * 12)), source=source)


def test_config_yaml_is_never_written_through_a_link(tmp_path: Path) -> None:
    """A link planted at config.yaml is replaced; its target is untouched (failed before:
    config.yaml was written with write_text, through the link)."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "values"
    out.mkdir()
    (out / "config.yaml").symlink_to(victim)
    (out / "secret.yaml").symlink_to(victim)
    run_values(out)
    assert victim.read_text() == "precious\n"
    assert (
        not (out / "config.yaml").is_symlink()
        and (out / "config.yaml").stat().st_mode & 0o777 == 0o644
    )
    assert (out / "secret.yaml").stat().st_mode & 0o777 == 0o600


def test_a_foreign_or_shared_output_dir_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert "writable by group or others (mode 0777)" in refused(str(shared))
    shared.chmod(0o700)
    assert dockerhub.validate(PARAMS | {"output_dir": str(shared)})
    if os.geteuid() == 0:  # only root can make a directory another user owns
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o755)
        os.chown(theirs, 65534, 65534)
        assert "belongs to another user (uid 65534)" in refused(str(theirs))


def test_files_this_project_did_not_write_are_not_replaced(tmp_path: Path) -> None:
    """A user's own config.yaml, or a link there, stops the run before any call (failed
    before: both values files were replaced without a word)."""
    out = tmp_path / "values"
    out.mkdir()
    (out / "config.yaml").write_text("hub:\n  config: {}\n")
    assert "holds a config.yaml that binderhub-registry did not write" in refused(str(out))
    (out / "config.yaml").unlink()
    (out / "secret.yaml").symlink_to(tmp_path / "elsewhere")
    assert "holds a secret.yaml that binderhub-registry did not write" in refused(str(out))
    (out / "secret.yaml").unlink()
    run_values(out)  # a run's own files are fine
    assert dockerhub.validate(PARAMS | {"output_dir": str(out)})


def test_another_notebooks_files_and_record_are_refused(tmp_path: Path) -> None:
    """01 then 05 into one output_dir replaced Google's record and key (failed before)."""
    from binderhub_registry.providers import Record

    out = tmp_path / "values"
    out.mkdir()
    run_values(out, source="05-harbor")
    assert "holds a config.yaml written by notebook 05-harbor" in refused(str(out))
    (out / "config.yaml").unlink()
    (out / "secret.yaml").unlink()
    Record(out, "harbor").set("harbor_project", {"name": "binderhub", "id": 1})
    assert "holds the record of another registry's notebook (harbor)" in refused(str(out))
    assert "holds the record of another registry's notebook" in refused(str(out), dry_run=True)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"provider": "dockerhub", "created": {},}', "not valid JSON (line 1)"),
        (b'{"provider": "dockerhub",\n "created": {"x": "\xff"}}', "not UTF-8 text"),
        (b'{"provider": "dockerhub", "created": "oops"}', "'created' is not a mapping"),
        (b'["dockerhub"]', "without a provider name"),
        (b'{"provider": "dockerhub", "deployment": 7, "created": {}}', "'deployment' is not text"),
    ],
)
def test_a_corrupt_record_stops_the_run_with_one_line(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    """A record that cannot be read is never taken as empty (failed before: the run called
    its own resources found, and teardown said 'nothing recorded' and exited 0)."""
    out = tmp_path / "values"
    out.mkdir()
    (out / "binderhub-registry.json").write_bytes(content)
    (out / "binderhub-registry.json").chmod(0o600)
    message = refused(str(out))
    assert problem in message and "binderhub-registry.json" in message


def test_the_secrets_in_an_output_dir_stay_out_of_git(tmp_path: Path) -> None:
    out = tmp_path / "values"
    dockerhub.validate(PARAMS | {"output_dir": str(out)})
    ignored = (out / ".gitignore").read_text().split()
    assert "secret.yaml" in ignored and "binderhub-registry.json" in ignored
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / ".gitignore").write_text("*.log")
    dockerhub.validate(PARAMS | {"output_dir": str(mine)})
    kept = (mine / ".gitignore").read_text()
    assert kept.startswith("*.log\n") and "secret.yaml" in kept.split()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    run_values(out)
    status = subprocess.run(
        ["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "config.yaml" in status and "secret.yaml" not in status
