"""The sandbox on a shared machine, and its admin API: each attack on it as a test.

Another local user can create directories and links in shared places, and can read
what the sandbox leaves open: a planted sandbox directory, a planted pid, planted
links at the sandbox's file names, a planted ``sandbox.json``, and requests to the
admin API without the owner's token must each get nowhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from binderhub_registry import sandbox
from binderhub_registry.errors import SandboxError
from binderhub_registry.sandbox import Sandbox

CLI = [sys.executable, "-m", "binderhub_registry.cli", "sandbox"]


@pytest.fixture
def private(tmp_path: Path) -> Path:
    """A sandbox directory as the user's own: mode 0700."""
    directory = tmp_path / "sb"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process of the user's (what a planted pid points at)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def plant_info(directory: Path, pid: int, url: str = "https://127.0.0.1:9", **more: Any) -> None:
    """A ``sandbox.json`` as someone other than the sandbox would write it."""
    info = {
        "pid": pid,
        "url": url,
        "ca_file": str(directory / "ca.crt"),
        "registries": {},
        "credentials_file": str(directory / "credentials.json"),
    } | more
    (directory / "sandbox.json").write_text(json.dumps(info))


def one_line_refusal(err: pytest.ExceptionInfo[SandboxError]) -> str:
    message = str(err.value)
    assert "\n" not in message and message.startswith("refusing the sandbox directory: ")
    return message


# --- the directory -------------------------------------------------------------------------
def test_the_default_directory_is_per_user_and_not_in_the_shared_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BINDERHUB_REGISTRY_SANDBOX_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert sandbox.sandbox_dir() == runtime / "binderhub-registry-sandbox"
    runtime.chmod(0o777)  # a runtime directory others can write is not used
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / ".cache" / "binderhub-registry" / "sandbox"
    assert sandbox.sandbox_dir() == cache
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert sandbox.sandbox_dir() == cache


def test_a_planted_directory_open_to_others_is_refused(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    planted = tmp_path / "planted"
    planted.mkdir()
    planted.chmod(0o777)  # what another user leaves for the victim to use
    plant_info(planted, stranger.pid, "https://attacker.example")
    with pytest.raises(SandboxError) as err:
        sandbox.running(planted)
    assert "open to other users (mode 0777)" in one_line_refusal(err)
    with pytest.raises(SandboxError):
        sandbox.start(planted)
    assert sorted(p.name for p in planted.iterdir()) == ["sandbox.json"]  # nothing written
    # the CLI says it in one line, also when the directory comes from the environment
    env = os.environ | {"BINDERHUB_REGISTRY_SANDBOX_DIR": str(planted)}
    for action in ("status", "stop", "start"):
        done = subprocess.run([*CLI, action], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("error: refusing the sandbox directory: ")
        assert done.stderr.count("\n") == 1
    assert stranger.poll() is None


def test_a_directory_of_another_user_is_refused(
    private: Path, monkeypatch: pytest.MonkeyPatch, stranger: subprocess.Popen[bytes]
) -> None:
    plant_info(private, stranger.pid, "https://attacker.example")
    real = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real + 1)  # the directory is now someone else's
    with pytest.raises(SandboxError) as err:
        sandbox.running(private)
    assert f"belongs to another user (uid {real})" in one_line_refusal(err)
    with pytest.raises(SandboxError):
        sandbox.start(private)
    with pytest.raises(SandboxError):
        sandbox.stop(private)
    assert stranger.poll() is None


def test_a_planted_link_as_the_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "sb").symlink_to(target)
    with pytest.raises(SandboxError) as err:
        sandbox.running(tmp_path / "sb")
    assert "symbolic link" in one_line_refusal(err)


def test_a_new_directory_is_made_0700(tmp_path: Path) -> None:
    old = os.umask(0)  # even with the most permissive umask
    try:
        made = sandbox._private_dir(tmp_path / "made" / "sb", create=True)
    finally:
        os.umask(old)
    assert made.stat().st_mode & 0o777 == 0o700


# --- the pid -------------------------------------------------------------------------------
def test_a_planted_pid_is_never_signalled(
    private: Path, tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    plant_info(private, stranger.pid)
    assert sandbox.running(private) is None
    assert sandbox.stop(private) is False
    done = subprocess.run([*CLI, "stop", "--dir", str(private)], capture_output=True, timeout=30)
    assert done.returncode == 0 and b"not running" in done.stderr
    assert stranger.poll() is None
    # a process that names the server module, but for another directory, is not it either
    lookalike = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)  # binderhub_registry.sandbox.server",
            str(tmp_path),
        ]
    )
    try:
        plant_info(private, lookalike.pid)
        assert sandbox.stop(private) is False
        assert lookalike.poll() is None
    finally:
        lookalike.kill()
        lookalike.wait()


# --- files in the directory ----------------------------------------------------------------
def test_a_planted_lock_link_truncates_nothing(private: Path, tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's work")
    (private / "lock").symlink_to(victim)
    with pytest.raises(SandboxError, match="lock file"):
        sandbox.start(private)
    assert victim.read_text() == "the user's work"
    missing = tmp_path / "created-by-lock"
    (private / "lock").unlink()
    (private / "lock").symlink_to(missing)
    with pytest.raises(SandboxError, match="lock file"):
        sandbox.start(private)
    assert not missing.exists()


def test_a_planted_log_link_creates_nothing(private: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "created-by-log"
    (private / "sandbox.log").symlink_to(elsewhere)
    try:
        with pytest.raises(SandboxError, match="log file"):
            sandbox.start(private)
    finally:
        sandbox.stop(private)
    assert not elsewhere.exists()


def test_planted_links_at_generated_files_are_replaced_not_followed(
    private: Path, tmp_path: Path
) -> None:
    """The TLS files, the registry's config and sandbox.json: made afresh, 0600 where secret.

    A planted credentials.json link is refused: the sandbox does not start, nothing is read
    or written through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (private / "credentials.json").symlink_to(outside / "credentials.json")
    with pytest.raises(SandboxError, match="exited at start"):
        sandbox.start(private)
    assert list(outside.iterdir()) == []
    assert "credentials.json" in (private / "sandbox.log").read_text()
    (private / "credentials.json").unlink()
    names = ["ca.crt", "server.crt", "server.key", "token.crt", "registry-dockerhub.yml"]
    names.append("sandbox.json")
    for name in names:  # made by the start refused above: planted anew
        (private / name).unlink(missing_ok=True)
        (private / name).symlink_to(outside / name)
    box = sandbox.start(private)
    try:
        assert list(outside.iterdir()) == []  # nothing written through a link
        for name in names:
            path = private / name
            assert not path.is_symlink() and path.is_file(), name
        assert (private / "server.key").stat().st_mode & 0o777 == 0o600
        assert (private / "sandbox.json").stat().st_mode & 0o777 == 0o600
        assert (private / "registry-dockerhub.yml").stat().st_mode & 0o777 == 0o600
        assert box.state()["dockerhub"]["access_tokens"] == []  # and it works
        check_planted_info(box)
    finally:
        sandbox.stop(private)


def check_planted_info(box: Sandbox) -> None:
    """A running sandbox's sandbox.json, tampered with: its url is never trusted blindly, its
    paths never; a link or a file others can write is not read at all."""
    info_file = box.directory / "sandbox.json"
    info = json.loads(info_file.read_text())
    evil = box.directory.parent / "evil"
    evil.mkdir()
    (evil / "ca.crt").write_text("attacker's CA")
    (evil / "creds.json").write_text("{}")
    try:
        for url in ("https://attacker.example:443", "http://127.0.0.1:80", "https://127.0.0.2:1"):
            info_file.write_text(json.dumps(info | {"url": url}))
            assert sandbox.running(box.directory) is None, url
        info_file.write_text(
            json.dumps(
                info
                | {
                    "registries": {"dockerhub": "https://attacker.example"},
                }
            )
        )
        assert sandbox.running(box.directory) is None
        info_file.write_text(
            json.dumps(
                info
                | {"ca_file": str(evil / "ca.crt"), "credentials_file": str(evil / "creds.json")}
            )
        )
        found = sandbox.running(box.directory)
        assert found is not None  # the pid and url are right: the paths are the directory's own
        assert found.ca_file == str(box.directory / "ca.crt")
        assert found.credentials_file == str(box.directory / "credentials.json")
        info_file.write_text(json.dumps(info))
        info_file.chmod(0o666)
        assert sandbox.running(box.directory) is None  # others could have written it
        info_file.unlink()
        (evil / "info.json").write_text(json.dumps(info))
        info_file.symlink_to(evil / "info.json")
        assert sandbox.running(box.directory) is None  # read through a link: never
    finally:
        info_file.unlink(missing_ok=True)
        info_file.write_text(json.dumps(info))
        info_file.chmod(0o600)


# --- the admin API -------------------------------------------------------------------------
ADMIN = [
    ("GET", "state"),
    ("POST", "reset"),
    ("GET", "faults"),
    ("POST", "faults"),
    ("DELETE", "faults"),
    ("GET", "log"),
    ("GET", "azure/settings"),
    ("POST", "azure/settings"),
    ("GET", "no-such-endpoint"),
]


def test_admin_api_wants_the_sandbox_token(box: Sandbox) -> None:
    assert os.stat(box.credentials_file).st_mode & 0o777 == 0o600
    token = box.credentials("sandbox")["admin_token"]
    assert len(token) >= 32
    for headers in ({}, {"X-Sandbox-Token": ""}, {"X-Sandbox-Token": token[:-1] + "x"}):
        for method, name in ADMIN:
            r = requests.request(
                method,
                f"{box.url}/_sandbox/{name}",
                json={"method": "*", "path": "", "status": 500} if method == "POST" else None,
                headers=headers,
                verify=box.ca_file,
                timeout=10,
            )
            assert r.status_code == 401, (method, name, headers)
            assert "X-Sandbox-Token" in r.json()["message"] and token not in r.text
    assert box.state()["dockerhub"]  # the client sends it
    ok = requests.get(f"{box.url}/dockerhub/v2/users/binderhubdemo", verify=box.ca_file, timeout=10)
    assert ok.status_code == 200  # no fault was added by the refused POSTs


#: Fault specs the admin API must refuse with 400 and a reason naming what is wrong.
BAD_FAULT_SPECS: list[tuple[str, Any, str]] = [
    ("unknown-key", {"method": "GET", "path": "x", "statuss": 500}, "unknown key 'statuss'"),
    ("bad-regex", {"method": "GET", "path": "("}, "path is not a valid regex"),
    ("times-string", {"method": "GET", "path": "x", "times": "2"}, "times must be a whole"),
    ("times-negative", {"method": "GET", "path": "x", "times": -1}, "times must be from 1"),
    ("times-zero", {"method": "GET", "path": "x", "times": 0}, "times must be from 1"),
    ("times-float", {"method": "GET", "path": "x", "times": 1.5}, "times must be a whole"),
    ("times-bool", {"method": "GET", "path": "x", "times": True}, "times must be a whole"),
    ("delay-negative", {"method": "GET", "path": "x", "delay": -1}, "delay must be from 0"),
    ("delay-string", {"method": "GET", "path": "x", "delay": "1"}, "delay must be a number"),
    ("delay-huge", {"method": "GET", "path": "x", "delay": 1e9}, "delay must be from 0"),
    ("status-string", {"method": "GET", "path": "x", "status": "503"}, "status must be a whole"),
    ("status-low", {"method": "GET", "path": "x", "status": 99}, "status must be from 100"),
    ("status-high", {"method": "GET", "path": "x", "status": 600}, "status must be from 100"),
    ("retry-negative", {"method": "GET", "path": "x", "retry_after": -5}, "retry_after must"),
    ("retry-words", {"method": "GET", "path": "x", "retry_after": "soon"}, "seconds or an HTTP"),
    ("drop-string", {"method": "GET", "path": "x", "drop": "yes"}, "drop must be true or false"),
    ("after-alone", {"method": "GET", "path": "x", "after": True}, "after needs drop"),
    ("drop-and-status", {"method": "GET", "path": "x", "drop": True, "status": 500}, "drop sends"),
    ("method-unknown", {"method": "FETCH", "path": "x"}, "method must be one of"),
    ("method-missing", {"path": "x"}, "method is required"),
    ("path-missing", {"method": "GET"}, "path is required"),
    ("path-number", {"method": "GET", "path": 5}, "path is required"),
    ("path-huge", {"method": "GET", "path": "x" * 1001}, "at most 1000"),
    ("not-an-object", ["GET /x"], "a fault is a JSON object, not str"),
    ("null", None, "a fault is a JSON object, not NoneType"),
    ("one-bad-of-two", [{"method": "GET", "path": "x"}, {"method": "GET", "path": "["}], "regex"),
]


@pytest.mark.parametrize(
    ("spec", "reason"), [c[1:] for c in BAD_FAULT_SPECS], ids=[c[0] for c in BAD_FAULT_SPECS]
)
def test_a_bad_fault_spec_is_refused_and_breaks_nothing(
    box: Sandbox, spec: Any, reason: str
) -> None:
    box.clear_faults()
    r = requests.post(
        f"{box.url}/_sandbox/faults",
        data=json.dumps(spec),
        headers=box.admin_headers(),
        verify=box.ca_file,
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert reason in r.json()["message"] and "\n" not in r.json()["message"]
    faults = requests.get(
        f"{box.url}/_sandbox/faults", headers=box.admin_headers(), verify=box.ca_file, timeout=10
    )
    assert faults.json() == []  # nothing of the spec was added, not even its good part
    ok = requests.get(f"{box.url}/dockerhub/v2/users/binderhubdemo", verify=box.ca_file, timeout=10)
    assert ok.status_code == 200  # later requests are served


def test_a_body_that_is_not_json_is_refused(box: Sandbox) -> None:
    r = requests.post(
        f"{box.url}/_sandbox/faults",
        data=b"{not json",
        headers=box.admin_headers(),
        verify=box.ca_file,
        timeout=10,
    )
    assert r.status_code == 400 and "not JSON" in r.json()["message"]


def hub(box: Sandbox, path: str) -> requests.Response:
    return requests.get(f"{box.url}/dockerhub{path}", verify=box.ca_file, timeout=10)


def test_delay_then_pass_answer_or_drop(fresh: Sandbox) -> None:
    user = "/v2/users/binderhubdemo"
    fresh.add_faults({"method": "GET", "path": user + "$", "delay": 0.2})
    assert hub(fresh, user).status_code == 200  # a delay alone lets the request through
    fresh.add_faults({"method": "GET", "path": user + "$", "delay": 0.1, "status": 502})
    assert hub(fresh, user).status_code == 502
    fresh.add_faults({"method": "GET", "path": user + "$", "delay": 0.1, "drop": True})
    with pytest.raises(requests.ConnectionError):
        hub(fresh, user)
    fresh.add_faults({"method": "get", "path": user + "$"})  # no status: 503; method any case
    assert hub(fresh, user).status_code == 503
    assert [e["status"] for e in fresh.log()] == [200, 502, "dropped", 503]


def test_retry_after_as_seconds_or_http_date(fresh: Sandbox) -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    fresh.add_faults(
        {"method": "GET", "path": "/v2/users/", "status": 429, "retry_after": 2.0},
        {"method": "GET", "path": "/v2/users/", "status": 429, "retry_after": date},
    )
    assert hub(fresh, "/v2/users/binderhubdemo").headers["Retry-After"] == "2"
    assert hub(fresh, "/v2/users/binderhubdemo").headers["Retry-After"] == date
