"""output_dir is checked, made and locked before any cloud call; its record must be the user's.

A run that cannot write its secret must not revoke or create anything; two runs on one
output_dir must not both create; a record others could write must not drive teardown.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import InvalidParameter
from binderhub_registry.outputs import LOCK_FILE, prepare_output_dir
from binderhub_registry.providers import dockerhub

from .conftest import NotebookRun, assert_fails_before_any_call

pytestmark = pytest.mark.notebook

PARAMS = {
    "username": "binderhubdemo",
    "organization": "",
    "prefix": "binder-",
    "dry_run": False,
    "teardown": False,
    "rotate": False,
    "sandbox": True,
}


def refused(output_dir: str, **extra: Any) -> str:
    with pytest.raises(InvalidParameter) as err:
        dockerhub.validate(PARAMS | {"output_dir": output_dir} | extra)
    assert err.value.name == "output_dir"
    message = str(err.value)
    assert "\n" not in message
    return message


def test_unwritable_places_are_refused_before_any_call(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "directory you can write" in refused("/dev/null")
    assert "not a directory" in refused(str(a_file / "values"))
    assert "longer than" in refused(str(tmp_path / ("x" * 300)))
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere: the mode check means nothing then
        assert "directory you can write" in refused(str(read_only / "values"))


def test_a_dry_run_creates_no_directory(tmp_path: Path) -> None:
    target = tmp_path / "not" / "yet"
    assert dockerhub.validate(PARAMS | {"output_dir": str(target), "dry_run": True})
    assert not (tmp_path / "not").exists()


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    p = dockerhub.validate(PARAMS | {"output_dir": "~/values"})
    assert p.output_dir == tmp_path / "values" and p.output_dir.is_dir()
    assert not Path("~").exists()


def test_a_second_run_on_the_same_directory_stops(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from binderhub_registry.outputs import prepare_output_dir;"
            f"prepare_output_dir({str(tmp_path)!r}, create=True); print('held', flush=True);"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        message = refused(str(tmp_path))
        assert f"in use by another run (pid {holder.pid})" in message
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock went with it
    assert dockerhub.validate(PARAMS | {"output_dir": str(tmp_path)}).output_dir == tmp_path
    # and this process may validate again (a notebook's cells run twice)
    assert prepare_output_dir(str(tmp_path), create=True) == tmp_path
    assert (tmp_path / LOCK_FILE).stat().st_mode & 0o777 == 0o600


def test_a_record_others_could_write_is_refused(tmp_path: Path) -> None:
    record = tmp_path / "binderhub-registry.json"
    record.write_text('{"provider": "dockerhub", "created": {}}')
    record.chmod(0o666)
    assert "chmod 600" in refused(str(tmp_path))
    assert "chmod 600" in refused(str(tmp_path), dry_run=True)
    record.chmod(0o600)
    dockerhub.validate(PARAMS | {"output_dir": str(tmp_path)})
    record.unlink()
    record.symlink_to(tmp_path / "elsewhere.json")
    assert "not a regular file" in refused(str(tmp_path))


def test_the_record_is_written_private(tmp_path: Path) -> None:
    from binderhub_registry.providers import Record

    old = os.umask(0)
    try:
        Record(tmp_path, "dockerhub").set("x", 1)
    finally:
        os.umask(old)
    assert (tmp_path / Record.FILE).stat().st_mode & 0o777 == 0o600


def test_an_unwritable_output_dir_stops_the_notebook_before_any_call(
    dockerhub_nb: NotebookRun, fresh: Any
) -> None:
    assert_fails_before_any_call(
        dockerhub_nb, fresh, {"output_dir": "/dev/null"}, "output_dir", "directory you can write"
    )


# --- issue 23: nothing overwritten that this project did not write ---------------------------
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
