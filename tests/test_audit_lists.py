"""``make audit``'s lists (tests/tools/audit.py) hold every registry, and name tests that exist.

The audit runs the tests its families name and counts their cases: a registry with no family of
its own is missing from its figures, and a family naming a test that is gone stops the whole run
(pytest: "not found"). Its leak scan looks for every secret each backend seeds and every kind a
run writes, ECR's too.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from binderhub_registry import providers
from binderhub_registry.sandbox import Sandbox

from .conftest import ROOT


@cache
def audit() -> ModuleType:
    """tests/tools/audit.py, loaded as a module (it is a script and a pytest plugin)."""
    name = "bhr_audit_tool"  # not "audit", the name its pytest plugin has in `make audit`
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "tools" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _families() -> list[object]:
    tool = audit()
    return [*tool.BAD_INPUTS, *tool.FAULTS, *tool.ATTACKS]


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_family_names_a_test_that_exists() -> None:
    for family in _families():
        test: str = family.test  # type: ignore[attr-defined]
        file, _, function = test.partition("::")
        path = ROOT / file
        assert path.is_file(), test
        if function:
            assert function.startswith("test_") and function in _functions(path), test


@pytest.mark.parametrize("key", providers.keys())
@pytest.mark.parametrize("kind", ["BAD_INPUTS", "FAULTS", "ATTACKS"])
def test_every_registry_has_families_of_its_own(key: str, kind: str) -> None:
    """Bad inputs, faults and attacks of each registry's own tests (``tests/test_<key>_*``),
    beside the suites that run over every provider (contract, test_faults.py)."""
    own = [f for f in getattr(audit(), kind) if f.test.startswith(f"tests/test_{key}_")]
    assert own, f"make audit counts no {kind.lower().replace('_', ' ')} of {key}'s own tests"


def test_the_leak_scan_looks_for_ecr_s_secrets(tmp_path: Path) -> None:
    """The seeded AWS secret key, BinderHub's auth token for the helper, and the helper's and
    the pull-only user's access keys: each looked for, and found where an output leaks it; the
    files that hold them on purpose (0600) are not outputs."""
    tool = audit()
    box = tmp_path / "box"
    box.mkdir()
    seeded = "seeded-aws-secret-0123456789"
    (box / "credentials.json").write_text(
        json.dumps({"ecr": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": seeded}})
    )
    out = tmp_path / "tests" / "values"
    out.mkdir(parents=True)
    (out / "binderhub-registry.json").write_text(json.dumps({"provider": "ecr", "created": {}}))
    token, helper_key, pull_key = (
        "helper-auth-token-xyz",
        "helper-key-secret-1",
        "pull-key-secret-2",
    )
    secret = {
        "registry": {"url": "https://127.0.0.1:1", "username": "", "password": ""},
        "config": {"ExternalRegistryHelper": {"auth_token": token}},
    }
    (out / "secret.yaml").write_text(yaml.safe_dump(secret))
    env = [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIAHELPER"}]
    env += [{"name": "AWS_SECRET_ACCESS_KEY", "value": helper_key}]
    (out / "registry-helper.yaml").write_text(yaml.safe_dump({"extraEnv": env}))
    manifest = [
        {"kind": "Secret", "stringData": {"AWS_SECRET_ACCESS_KEY": pull_key}},
        {"kind": "CronJob", "spec": {}},
    ]
    (out / "pull-secret-cronjob.yaml").write_text(yaml.safe_dump_all(manifest))
    forms = {form for _, form in tool._secrets(box, tmp_path / "tests")}
    assert {seeded, token, helper_key, pull_key} <= forms
    leaked = tmp_path / "tests" / "run1.ipynb"
    leaked.write_text(f"an output printing {token} and {pull_key}")
    files = [*(tmp_path / "tests").rglob("*"), box / "credentials.json"]
    scanned, leaks = tool._scan(files, tool._secrets(box, tmp_path / "tests"))
    assert scanned == 2  # the notebook and the record: the 0600 files are not outputs
    assert "created helper auth token (values) in run1.ipynb" in leaks
    assert "created pull-only key (values) in run1.ipynb" in leaks
    assert not [leak for leak in leaks if "seeded" in leak or "helper key" in leak]
    assert token not in " ".join(leaks)  # never the secret itself


def test_the_leak_scan_looks_for_every_seeded_secret_of_every_backend(box: Sandbox) -> None:
    """Every credential each backend seeds (the sandbox's own ``credentials.json``, as its
    backends wrote it: OVHcloud's application secret and consumer key, Google's private key,
    Docker Hub's passwords and TOTP seed, ...) is looked for, plain and base64, and a PEM key
    by its body too; only fields the audit names as public identifiers are not."""
    tool = audit()
    seeded = json.loads(Path(box.credentials_file).read_text())
    # every backend seeded an account here: none escapes the derivation
    assert {key for key in providers.keys() if not any(a.startswith(key) for a in seeded)} == set()
    with_forms = {form for _, form in tool._secrets(box.directory, box.directory / "none")}
    missing = []
    for account, values in seeded.items():
        for field, value in values.items():
            if field in tool._SEEDED_PUBLIC or len(value) < 8:
                continue
            b64 = base64.b64encode(value.encode()).decode().rstrip("=")
            if not {value, b64} <= with_forms:
                missing.append(f"{account}.{field}")
            if "-----BEGIN" in value and value.splitlines()[1] not in with_forms:
                missing.append(f"{account}.{field} (PEM body)")
    assert missing == [], "make audit does not look for these seeded secrets"
    # a public identifier is shown on purpose: none of them is a secret's field
    assert not {f for f in tool._SEEDED_PUBLIC if any(w in f for w in ("secret", "password"))}


def _pem(first: int) -> str:
    lines = [base64.b64encode(bytes([i]) * 48).decode() for i in range(first, first + 3)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"


def test_the_leak_scan_looks_for_every_created_secret_in_its_0600_file(tmp_path: Path) -> None:
    """A Google JSON key's private_key (BinderHub's and user pods'), Docker Hub's prune token
    (prune-secret.yaml) and OVHcloud's Harbor admin password (harbor-admin.json): looked for,
    found where an output leaks them (the key's body, the token in base64, the password in a
    docker auth), and the 0600 files that hold them on purpose are not outputs."""
    tool = audit()
    from binderhub_registry.providers import dockerhub, ecr, ovh

    files = {dockerhub.PRUNE_SECRET_FILE, ovh.ADMIN_FILE, ecr.HELPER_FILE, ecr.PULL_FILE}
    assert files <= set(tool._RUN_SECRET_FILES) and files <= tool._SECRET_FILES
    out = tmp_path / "tests" / "values"
    out.mkdir(parents=True)
    (out / "binderhub-registry.json").write_text(json.dumps({"provider": "x", "created": {}}))
    push, pull = _pem(0), _pem(3)
    key = {"type": "service_account", "private_key_id": "k1", "private_key": push}
    pull_key = key | {"private_key": pull}
    secret = {
        "registry": {"url": "https://h", "username": "_json_key", "password": json.dumps(key)},
        "jupyterhub": {
            "imagePullSecret": {"username": "_json_key", "password": json.dumps(pull_key)}
        },
    }
    (out / "secret.yaml").write_text(yaml.safe_dump(secret))
    token, admin = "prune-token-secret-0123", "harbor-admin-password-456"
    prune = {"kind": "Secret", "stringData": {"token": token}}
    (out / "prune-secret.yaml").write_text(yaml.safe_dump(prune))
    record = {"id": "u1", "username": "binderhub-admin", "password": admin}
    (out / "harbor-admin.json").write_text(json.dumps(record))
    box = tmp_path / "box"
    box.mkdir()
    found = tool._secrets(box, tmp_path / "tests")
    forms = {form for _, form in found}
    assert {push, pull, json.dumps(push)[1:-1], token, admin} <= forms
    leaked = tmp_path / "tests" / "run1.ipynb"
    body = push.splitlines()[2]
    docker = base64.b64encode(f"binderhub-admin:{admin}".encode()).decode().rstrip("=")
    leaked.write_text(f"{body} {base64.b64encode(token.encode()).decode()} {docker}")
    scanned, leaks = tool._scan(list((tmp_path / "tests").rglob("*")), found)
    assert scanned == 2  # the notebook and the record: the 0600 files are not outputs
    assert "created key (values)'s private_key (PEM body) in run1.ipynb" in leaks
    assert "created prune token (values) (base64) in run1.ipynb" in leaks
    assert "created Harbor admin password (values) (docker auth) in run1.ipynb" in leaks
    assert not [leak for leak in leaks if "pull key" in leak]
    assert not [leak for leak in leaks if token in leak or admin in leak or body in leak]


def test_every_file_a_run_keeps_secrets_in_stays_out_of_git(tmp_path: Path) -> None:
    """The files the scan skips as holding a run's secrets on purpose are the ones the
    ``.gitignore`` a run writes in its output_dir keeps out of git (ECR's two were not)."""
    from binderhub_registry import outputs

    outputs.ignore_secrets(tmp_path)
    ignored = (tmp_path / ".gitignore").read_text().split()
    assert [name for name in audit()._RUN_SECRET_FILES if name not in ignored] == []
