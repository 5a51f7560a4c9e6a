"""Rotation that never leaves a running BinderHub without a working credential.

The BinderHub already deployed pushes with the credential of its last ``helm upgrade``.
With ``rotate`` and ``keep_replaced`` a run makes a new credential and keeps the one it
replaced, recorded as retiring, so both the deployed values and the new ones push; the
next run without ``keep_replaced`` (after the deploy) removes every kept one once its
values verify. Harbor and OVH robots keep one secret, so they refuse the pair before any
call. The in-process runs (:class:`~.conftest.InProcessRun`) run the notebooks' own cells;
one papermill run plays the scheduled job as a cron job runs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from binderhub_registry import InvalidParameter, VerificationFailed, providers, sandbox, verify
from binderhub_registry.binderhub import load_values
from binderhub_registry.providers import Connection, Provider
from binderhub_registry.providers.contract import Record
from binderhub_registry.providers.dockerhub import SANDBOX_SECRET_VARIABLE as SANDBOX_SECRET

from .conftest import (
    NOTEBOOKS,
    InProcessRun,
    NotebookRun,
    assert_fails_before_any_call,
    outputs_text,
)
from .helpers import (
    Crash,
    census,
    common_params,
    defaults,
    make_token,
    stopped_recording,
    stopped_writing_values,
)

pytestmark = pytest.mark.notebook


#: What one rotation replaces with the default pull_access ("secret"): BinderHub's push
#: credential and user pods' pull-only one.
PER_ROTATION = 2
#: Docker Hub also replaces its prune job's token (Read, Write, Delete; issue 22), made by
#: default (retention_days 30).
EXTRA_PER_ROTATION = {"dockerhub": 1}


def per_rotation(key: str) -> int:
    """What one rotation replaces on ``key``'s registry with the notebook's defaults."""
    return PER_ROTATION + EXTRA_PER_ROTATION.get(key, 0)


#: The providers whose replaced credential outlives the new one, and those whose does not.
KEEPERS = [k for k in providers.keys() if not providers.get(k).Params.REPLACED_STOPS]
STOPPERS = [k for k in providers.keys() if providers.get(k).Params.REPLACED_STOPS]


def test_every_provider_is_one_or_the_other() -> None:
    assert set(KEEPERS) >= {"dockerhub", "azure", "google"}
    # Harbor keeps one secret per robot; ECR's registry helper takes one auth token
    assert set(STOPPERS) == {"harbor", "ovh", "ecr"}


# --- helpers -------------------------------------------------------------------------------
class Job:
    """One ``output_dir`` rotated in process, run after run, as a scheduled job would."""

    def __init__(self, provider: Provider, workdir: Path) -> None:
        self.run = InProcessRun(NOTEBOOKS / f"{provider.NOTEBOOK}.ipynb", workdir)
        self.output_dir = self.run.output_dir
        self.saved = workdir / "deployed"
        self.retiring = ""  # the record kind of the provider's replaced credentials

    def __call__(self, **parameters: Any) -> str:
        """Run the notebook; what its cells displayed, as one string."""
        namespace = self.run(**parameters)
        conn = next(v for v in namespace.values() if isinstance(v, Connection))
        self.retiring = conn.retiring
        return "\n".join(self.run.outputs)

    def deploy(self, name: str) -> Path:
        """Copy the values as written now (what ``helm upgrade`` would have deployed)."""
        where = self.saved / name
        where.mkdir(parents=True)
        for file in ("config.yaml", "secret.yaml"):
            shutil.copy2(self.output_dir / file, where / file)
        return where

    def record(self) -> dict[str, Any]:
        """What the notebook recorded as created."""
        data = json.loads((self.output_dir / "binderhub-registry.json").read_text())
        created: dict[str, Any] = data["created"]
        return created

    def fingerprint(self, where: Path | None = None) -> str:
        """A digest of the password in ``where``'s secret.yaml (default: output_dir's): what
        the tests compare, so a failing assertion never prints a secret."""
        secret = load_values(
            (where or self.output_dir) / "config.yaml", (where or self.output_dir) / "secret.yaml"
        ).password
        return hashlib.sha256(secret.reveal().encode()).hexdigest()[:12]


def pushes(where: Path, box: sandbox.Sandbox) -> bool:
    """True when the values in ``where`` pass BinderHub's check and a push; False when the
    registry refuses them."""
    values = load_values(where / "config.yaml", where / "secret.yaml")
    try:
        verify(values, ca_bundle=box.ca_file)
    except VerificationFailed:
        return False
    return True


# --- keep_replaced: both work until a run without it ---------------------------------------
@pytest.mark.parametrize("key", KEEPERS)
def test_a_kept_credential_works_until_a_run_without_keep_replaced(
    key: str, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    job = Job(providers.get(key), tmp_path)
    job()
    clean = census(fresh.state())
    deployed = job.deploy("first")

    out = job(rotate=True, keep_replaced=True)
    kept = (
        f"kept {per_rotation(key)} replaced credential(s): deploy the new secret.yaml, then rerun"
    )
    assert kept in out
    assert job.fingerprint() != job.fingerprint(deployed)
    # verify pulls with user pods' credential too: the deployed pull secret still works
    assert pushes(deployed, fresh), "the deployed BinderHub lost its credential"
    assert pushes(job.output_dir, fresh)
    assert len(job.record()[job.retiring]) == per_rotation(key)

    out = job()  # after the deploy: plain, no rotate
    assert f"removed {per_rotation(key)} replaced credential(s)" in out
    assert pushes(job.output_dir, fresh)
    assert not pushes(deployed, fresh), "the replaced credential still works"
    assert job.retiring not in job.record()
    assert census(fresh.state()) == clean  # nothing duplicated, nothing left behind


@pytest.mark.parametrize("key", KEEPERS)
def test_two_kept_rotations_in_a_row_lose_none_and_a_plain_run_removes_both(
    key: str, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    job = Job(providers.get(key), tmp_path)
    job()
    clean = census(fresh.state())
    first = job.deploy("first")
    job(rotate=True, keep_replaced=True)
    second = job.deploy("second")  # written, never deployed
    out = job(rotate=True, keep_replaced=True)
    assert f"kept {2 * per_rotation(key)} replaced credential(s)" in out
    assert len(job.record()[job.retiring]) == 2 * per_rotation(key)
    assert len({job.fingerprint(first), job.fingerprint(second), job.fingerprint()}) == 3
    assert all(pushes(where, fresh) for where in (first, second, job.output_dir))

    out = job()
    assert f"removed {2 * per_rotation(key)} replaced credential(s)" in out
    assert pushes(job.output_dir, fresh)
    assert not pushes(first, fresh) and not pushes(second, fresh)
    assert job.retiring not in job.record()
    assert census(fresh.state()) == clean


@pytest.mark.parametrize("key", KEEPERS)
def test_a_run_without_rotate_removes_what_a_rotation_left_and_keep_replaced_keeps_it(
    key: str, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """finish_rotation removes recorded retiring credentials on any verified run, not only a
    rotating one; keep_replaced on a plain run keeps them still (the deploy is not done)."""
    job = Job(providers.get(key), tmp_path)
    job()
    deployed = job.deploy("first")
    job(rotate=True, keep_replaced=True)
    out = job(keep_replaced=True)  # not deployed yet: a plain run with keep_replaced
    assert f"kept {per_rotation(key)} replaced credential(s)" in out
    assert pushes(deployed, fresh)
    out = job(dry_run=True)
    assert f"would remove {per_rotation(key)} replaced credential(s)" in out
    assert pushes(deployed, fresh)
    assert f"removed {per_rotation(key)} replaced credential(s)" in job()
    assert not pushes(deployed, fresh)


def test_a_plain_run_after_a_rotation_stopped_keeps_the_stored_token(
    fresh: sandbox.Sandbox, tmp_path: Path, quick_waits: list[float]
) -> None:
    """A rotation that stopped before its new token was made has recorded the stored token as
    retiring; the next plain run reuses that token and must not then remove it."""
    job = Job(providers.get("dockerhub"), tmp_path)
    job()
    clean = census(fresh.state())
    fresh.add_faults({"method": "POST", "path": r"/v2/access-tokens$", "status": 500, "times": 99})
    with pytest.raises(Exception, match="500"):
        job(rotate=True, keep_replaced=True)
    fresh.clear_faults()
    assert job.record().get(job.retiring)  # the stored token, recorded before the creation
    out = job()
    assert "stored secret still works" in out and "removed" not in out
    assert pushes(job.output_dir, fresh)
    assert job.retiring not in job.record()
    assert census(fresh.state()) == clean


def test_azure_a_plain_run_after_a_rotation_stopped_before_its_values_keeps_the_stored_one(
    fresh: sandbox.Sandbox, tmp_path: Path, quick_waits: list[float]
) -> None:
    """The rotation made its new password, then stopped (at the role step) before writing
    secret.yaml: the stored secret is the older password, recorded as retiring. Any password
    of the application signs in, so the rerun tells which one is stored by Graph's hint, keeps
    it and removes the one whose secret nobody holds."""
    job = Job(providers.get("azure"), tmp_path)
    job()
    clean = census(fresh.state())
    stored = job.fingerprint()
    fresh.add_faults({"method": "GET", "path": r"roleAssignments", "status": 500, "times": 999})
    with pytest.raises(Exception, match="500"):
        job(rotate=True, keep_replaced=True)
    fresh.clear_faults()
    assert len(job.record()[job.retiring]) == 1  # the stored password
    out = job()
    assert "the stored secret still works" in out
    assert "removed 1 replaced credential(s)" in out  # the one made by the stopped rotation
    assert job.fingerprint() == stored and pushes(job.output_dir, fresh)
    assert job.retiring not in job.record()
    assert census(fresh.state()) == clean


def test_dockerhub_a_plain_run_after_a_rotation_stopped_before_writing_keeps_the_stored_token(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rotation made its new token, then could not write secret.yaml (a full disk): the
    stored secret is still the old, deployed token. Docker Hub accepts any active token, so
    the rerun must not take "the stored secret works" for "it is the newest token": it keeps
    the stored one and removes the one whose secret nobody holds."""
    job = Job(providers.get("dockerhub"), tmp_path)
    job()
    clean = census(fresh.state())
    deployed, stored = job.deploy("first"), job.fingerprint()

    with stopped_writing_values(monkeypatch), pytest.raises(OSError):
        job(rotate=True, keep_replaced=True)
    assert job.fingerprint() == stored
    out = job(dry_run=True)
    # the never written ones: BinderHub's token and user pods' read-only token
    assert "would remove 2 replaced credential(s)" in out
    out = job()
    assert "stored secret still works" in out and "removed 2 replaced credential(s)" in out
    assert job.fingerprint() == stored and pushes(job.output_dir, fresh)
    assert pushes(deployed, fresh), "the deployed token was deleted"
    assert job.retiring not in job.record() and "pending_token" not in job.record()
    assert census(fresh.state()) == clean


def test_dockerhub_a_brought_token_written_over_a_stopped_rotation_promotes_nothing(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a rotation stopped before writing, a run with a token the user brought writes
    that token: the pending one (whose secret nobody holds) must not become the recorded one."""
    job = Job(providers.get("dockerhub"), tmp_path)
    job()
    recorded = job.record()["access_token"]

    with stopped_writing_values(monkeypatch), pytest.raises(OSError):
        job(rotate=True, keep_replaced=True)
    pending = job.record()["pending_token"]
    with monkeypatch.context() as m:
        m.setenv(SANDBOX_SECRET, make_token(fresh, ["repo:write"]))
        out = job()
    assert "your personal access token is BinderHub's credential as it is" in out
    assert job.record()["access_token"] == recorded  # not the pending token
    assert job.record()["pending_token"] == pending  # still recorded: teardown deletes it


def test_dockerhub_teardown_after_a_rotation_stopped_before_writing_deletes_every_token(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token a stopped rotation recorded as pending is this notebook's too: teardown
    deletes it with the recorded one."""
    job = Job(providers.get("dockerhub"), tmp_path)
    before = list(fresh.state()["dockerhub"]["access_tokens"])

    job()
    with stopped_writing_values(monkeypatch), pytest.raises(OSError):
        job(rotate=True)
    assert "pending_token" in job.record()
    out = job(teardown=True)
    assert "the access token of a stopped rotation" in out
    assert set(job.record()) <= {"deployment"}  # the deployment id alone stays
    assert list(fresh.state()["dockerhub"]["access_tokens"]) == before


def test_a_full_disk_leaves_the_record_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record that cannot be written keeps what it said: truncated, it would forget every
    credential it lists (and a rerun would make new ones, leaving those behind)."""
    record = Record(tmp_path, "dockerhub")
    record.set("access_token", {"uuid": "a", "label": "x"})
    opened = os.fdopen

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    def full(fd: int, *args: Any, **kwargs: Any) -> Any:
        opened(fd).close()
        return Full()

    with monkeypatch.context() as m:
        m.setattr(os, "fdopen", full)
        with pytest.raises(OSError):
            record.set("pending_token", {"uuid": "b", "label": "x"})
    assert Record(tmp_path, "dockerhub").created == {"access_token": {"uuid": "a", "label": "x"}}
    assert [f.name for f in tmp_path.iterdir()] == [Record.FILE]


def test_dockerhub_a_rerun_after_a_stop_between_writing_and_recording_keeps_the_new_token(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """secret.yaml got the new token, the record did not (the run stopped in between): the
    rerun tells by the token's digest that secret.yaml holds it, and removes the old one."""
    job = Job(providers.get("dockerhub"), tmp_path)
    job()
    clean = census(fresh.state())
    deployed = job.deploy("first")
    with stopped_recording(monkeypatch, "access_token"), pytest.raises(Crash):
        job(rotate=True)  # stopped before the record says secret.yaml holds the new token
    written = job.fingerprint()
    assert written != job.fingerprint(deployed)
    out = job()
    assert "removed 2 replaced credential(s)" in out  # the old push and read-only tokens
    assert job.fingerprint() == written and pushes(job.output_dir, fresh)
    assert not pushes(deployed, fresh)
    assert job.retiring not in job.record() and "pending_token" not in job.record()
    assert census(fresh.state()) == clean


def test_azure_the_same_rotation_rerun_after_a_stop_before_its_retiring_list_keeps_the_deployed(
    fresh: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rotation stopped as it recorded what it replaces: rerunning the same command must
    not then remove the deployed password as one whose secret was lost."""
    job = Job(providers.get("azure"), tmp_path)
    job()
    clean = census(fresh.state())
    deployed = job.deploy("first")
    with stopped_recording(monkeypatch, "retiring_passwords"), pytest.raises(Crash):
        job(rotate=True, keep_replaced=True)  # stopped before the retiring list was recorded
    out = job(rotate=True, keep_replaced=True)  # the same command again
    assert "whose secret was lost" not in out
    assert f"kept {PER_ROTATION} replaced credential(s)" in out
    assert pushes(deployed, fresh), "keep_replaced rotation removed the deployed password"
    assert pushes(job.output_dir, fresh)
    assert f"removed {PER_ROTATION} replaced credential(s)" in job()
    assert not pushes(deployed, fresh)
    assert census(fresh.state()) == clean


def test_azure_a_rotation_never_removes_the_stored_password_as_lost(
    fresh: sandbox.Sandbox, tmp_path: Path, quick_waits: list[float]
) -> None:
    """A record that lists the newer password and not the stored one as retiring (written by
    a version that recorded the retiring list after adding the password, then stopped): the
    rotation tells the stored password by Graph's hint and keeps it; the one nobody holds
    goes at once."""
    job = Job(providers.get("azure"), tmp_path)
    job()
    clean = census(fresh.state())
    deployed = job.deploy("first")
    fresh.add_faults({"method": "GET", "path": r"roleAssignments", "status": 500, "times": 999})
    with pytest.raises(Exception, match="500"):
        job(rotate=True, keep_replaced=True)
    fresh.clear_faults()
    path = job.output_dir / "binderhub-registry.json"
    data = json.loads(path.read_text())
    del data["created"][job.retiring]
    path.write_text(json.dumps(data))
    out = job(rotate=True, keep_replaced=True)
    assert "removed 1 whose secret was lost" in out  # the stopped rotation's, never written
    assert f"kept {PER_ROTATION} replaced credential(s)" in out
    assert pushes(deployed, fresh), "the deployed password was removed as lost"
    assert f"removed {PER_ROTATION} replaced credential(s)" in job()
    assert not pushes(deployed, fresh) and pushes(job.output_dir, fresh)
    assert census(fresh.state()) == clean


def test_azure_teardown_creates_no_password(fresh: sandbox.Sandbox, tmp_path: Path) -> None:
    job = Job(providers.get("azure"), tmp_path)
    job()
    out = job(teardown=True)
    assert "Password for BinderHub [skipped]" in out and "would add a password" not in out


STOP_BEFORE_THE_NEW_ONE = {
    "dockerhub": {"method": "POST", "path": r"/v2/access-tokens$"},
    "azure": {"method": "POST", "path": r"addPassword$"},
}


@pytest.mark.parametrize("key", sorted(STOP_BEFORE_THE_NEW_ONE))
def test_a_dry_run_says_what_the_real_run_would_remove(
    key: str, fresh: sandbox.Sandbox, tmp_path: Path, quick_waits: list[float]
) -> None:
    """A dry run's last step says what the real run's would: a rotation's keep, and after a
    rotation stopped before its new credential, that the stored one is kept."""
    job = Job(providers.get(key), tmp_path)
    job()
    out = job(rotate=True, keep_replaced=True, dry_run=True)
    assert f"would keep {per_rotation(key)} replaced credential(s)" in out
    out = job(rotate=True, dry_run=True)
    assert f"would remove {per_rotation(key)} replaced credential(s)" in out
    fresh.add_faults(STOP_BEFORE_THE_NEW_ONE[key] | {"status": 500, "times": 999})
    with pytest.raises(Exception, match="500"):
        job(rotate=True, keep_replaced=True)
    fresh.clear_faults()
    assert job.record().get(job.retiring)  # the stored one, recorded before the creation
    out = job(dry_run=True)
    assert "no replaced credential to remove" in out and "would remove" not in out
    assert job.record().get(job.retiring)  # a dry run writes nothing
    out = job()
    assert "no replaced credential to remove" in out and "removed" not in out
    assert pushes(job.output_dir, fresh)


def test_the_keep_message_names_the_values_to_deploy(tmp_path: Path) -> None:
    """A provider whose values hold no credential (keyless) names the file to deploy."""

    class Keyless(Connection):
        def values_to_deploy(self) -> str:
            return "config.yaml"

    params = common_params(tmp_path, keep_replaced=True)
    record = Record(tmp_path, "keyless")
    record.set(Keyless.retiring, ["old"])
    result = asyncio.run(Keyless(params=params, record=record, ca_file=None).finish_rotation())
    assert result.detail.startswith("kept 1 replaced credential(s): deploy the new config.yaml,")
    assert record.created[Keyless.retiring] == ["old"]


# --- Google: kept keys count toward its 10 keys per service account -------------------------
def test_google_kept_keys_count_toward_its_limit_of_10(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    """Nine kept rotations fill the service account (the stored key and 9 kept: 10 live keys,
    none taken for a stale one); the tenth stops with one line before anything is lost, and
    the run after the deploy keeps the stored key and removes the 9."""
    job = Job(providers.get("google"), tmp_path)
    job()
    clean = census(fresh.state())
    deployed = job.deploy("first")
    for kept in range(1, 10):  # the push and the pull account each keep one key a rotation
        out = job(rotate=True, keep_replaced=True)
        assert f"kept {kept * PER_ROTATION} replaced credential(s)" in out
    assert len(job.record()[job.retiring]) == 9 * PER_ROTATION
    stored = job.fingerprint()
    with pytest.raises(Exception, match="10 keys") as err:
        job(rotate=True, keep_replaced=True)
    assert "\n" not in str(err.value)
    # not "delete unused ones": by hand, that could delete the key the deployed BinderHub uses
    assert "kept by keep_replaced: deploy the newest secret.yaml" in str(err.value)
    assert job.fingerprint() == stored and pushes(job.output_dir, fresh)
    assert pushes(deployed, fresh)  # the first key, kept 10 runs ago, still works
    out = job()  # the stopped rotation had listed the stored key as retiring: it is kept
    assert f"removed {9 * PER_ROTATION} replaced credential(s)" in out
    assert pushes(job.output_dir, fresh) and not pushes(deployed, fresh)
    assert job.retiring not in job.record()
    assert census(fresh.state()) == clean


# --- Harbor and OVH: a robot has one secret -------------------------------------------------
@pytest.mark.parametrize("key", STOPPERS)
def test_keep_replaced_with_rotate_is_refused_before_any_call(
    key: str, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    provider = providers.get(key)
    values = defaults(provider, tmp_path)
    before = fresh.state()
    with pytest.raises(InvalidParameter) as err:
        provider.validate(values, rotate=True, keep_replaced=True)
    message = str(err.value)
    assert err.value.name == "keep_replaced" and "\n" not in message
    assert message.startswith("parameter 'keep_replaced': cannot be combined with rotate = True")
    assert provider.Params.REPLACED_STOPS in message
    assert "rotate without keep_replaced and deploy the new secret.yaml" in message
    assert fresh.log() == [] and fresh.state() == before  # nothing sent, nothing created
    assert not (tmp_path / "values").exists()
    # each alone is fine: keep_replaced on a plain run has nothing to keep
    assert provider.validate(values, keep_replaced=True).keep_replaced is True
    assert provider.validate(values, rotate=True).rotate is True


def test_the_harbor_notebook_shows_the_refusal_as_one_line(
    fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    run = NotebookRun(NOTEBOOKS / "05-harbor.ipynb", tmp_path)
    pair = {"rotate": True, "keep_replaced": True}
    assert_fails_before_any_call(run, fresh, pair, "keep_replaced", "one secret per robot")


@pytest.mark.parametrize("key", KEEPERS)
def test_keep_replaced_with_rotate_is_accepted_where_the_old_credential_outlives_it(
    key: str, tmp_path: Path
) -> None:
    provider = providers.get(key)
    p = provider.validate(defaults(provider, tmp_path), rotate=True, keep_replaced=True)
    assert p.rotate and p.keep_replaced


def test_a_parameters_cell_without_keep_replaced_runs_as_before(tmp_path: Path) -> None:
    provider = providers.get("dockerhub")
    values = defaults(provider, tmp_path)
    del values["keep_replaced"]
    assert provider.validate(values).keep_replaced is False


# --- the scheduled job, through papermill ---------------------------------------------------
@pytest.fixture
def hub_job(tmp_path: Path, fresh: sandbox.Sandbox) -> Iterator[NotebookRun]:
    """The Docker Hub notebook, run by papermill in a forked kernel, as a cron job runs it."""
    yield NotebookRun(NOTEBOOKS / "02-docker-hub.ipynb", tmp_path)


def test_the_scheduled_two_phase_rotation_through_papermill(
    hub_job: NotebookRun, fresh: sandbox.Sandbox, tmp_path: Path
) -> None:
    hub_job.set_up()  # the deployment as it stands
    clean = census(fresh.state())
    deployed = tmp_path / "deployed"
    shutil.copytree(hub_job.output_dir, deployed, ignore=shutil.ignore_patterns("*.json"))

    out = outputs_text(hub_job(rotate=True, keep_replaced=True))  # 1. rotate, keep the old
    kept = per_rotation("dockerhub")
    assert re.search(rf"Remove the replaced credential \[done\]: kept {kept} replaced", out)
    assert pushes(deployed, fresh) and pushes(hub_job.output_dir, fresh)
    # 2. helm upgrade -f config.yaml -f secret.yaml: the new values are now the deployed ones
    out = outputs_text(hub_job())  # 3. after the deploy
    assert f"Remove the replaced credential [deleted]: removed {kept} replaced" in out
    assert not pushes(deployed, fresh) and pushes(hub_job.output_dir, fresh)
    assert census(fresh.state()) == clean
    assert hub_job.record()["created"].get("retiring_tokens") is None
