"""One verification reads top-down: its modules call only the floors below them.

From the top: :mod:`verify` runs the checks; BinderHub's check and the push (then the pull)
word what a manifest or an upload answer means; ``registry_auth`` words what the token
service's answers mean; ``registry_http`` only carries requests; ``report`` (the checks and
a provider's hints) lies under them all. Read from the source with ``ast`` (nothing is
imported), every ``import`` counted wherever it stands, ``TYPE_CHECKING`` ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import binderhub_registry

ROOT = Path(binderhub_registry.__file__).parent
#: The verification's modules, lowest floor first; a module imports only from lower floors.
FLOORS = [
    {"report"},
    {"errors"},
    {"registry_http"},
    {"registry_auth"},
    {"binderhub_check", "push"},
    {"pull"},
    {"verify"},
]
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}


def tree(module: str) -> ast.Module:
    """The parsed source of ``binderhub_registry.<module>``."""
    path = ROOT / f"{module}.py"
    return ast.parse(path.read_text(), str(path))


def sibling_imports(module: str) -> set[str]:
    """The package's top-level modules that ``module`` imports (``from .x import ...``)."""
    found = set()
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.partition(".")[0])
            else:  # from . import x
                found.update(alias.name for alias in node.names)
    return found


def test_the_transport_words_no_diagnosis() -> None:
    """registry_http knows nothing of checks or a provider's hints: what a token service's 401
    or 403 means is said above it, so a verification no longer goes down to the transport for
    a diagnosis and back up to BinderHub's check."""
    source = tree("registry_http")
    # report holds the checks and the hints: the words of a verification, not of a transport
    words = {"report", "registry_auth", "binderhub_check", "push", "pull", "verify"}
    assert not sibling_imports("registry_http") & words
    names = {n.id for n in ast.walk(source) if isinstance(n, ast.Name)}
    names |= {a.name for n in ast.walk(source) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not names & {"VerifyHints", "Check", "VerificationReport"}
    texts = " ".join(
        n.value
        for n in ast.walk(source)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )
    for diagnosis in ("refused user", "accepted user", "token_url"):
        assert diagnosis not in texts


def test_the_verification_imports_only_down() -> None:
    upward = [
        f"{module} (floor {FLOOR[module]}) imports {other} (floor {FLOOR[other]})"
        for module in FLOOR
        for other in sibling_imports(module) & FLOOR.keys()
        if FLOOR[other] >= FLOOR[module]
    ]
    assert not upward


def test_the_token_services_answers_are_diagnosed_in_one_place() -> None:
    """Every token request of a verification goes through registry_auth.bearer_token."""
    callers = {
        module
        for module in FLOOR
        for node in ast.walk(tree(module))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "bearer_token"
    }
    assert callers == {"binderhub_check", "push"}
    defined = {
        module
        for module in FLOOR
        for node in ast.walk(tree(module))
        if isinstance(node, ast.FunctionDef) and node.name in ("token", "bearer_token")
    }
    assert defined == {"registry_auth"}
