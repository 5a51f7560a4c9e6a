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

from binderhub_registry.outputs import LOCK_FILE, prepare_output_dir
from binderhub_registry.providers import dockerhub

from .conftest import NotebookRun, assert_fails_before_any_call
from .helpers import PARAMS, refused

pytestmark = pytest.mark.notebook


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
