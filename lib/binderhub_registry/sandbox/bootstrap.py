"""Run one of the sandbox's modules in a fresh interpreter, without the packages' ``__init__``.

The sandbox's processes (the server, and the certificate maker it starts) need the
sandbox's own modules only. Registering the two packages by path, without running
their ``__init__`` (the notebook API: requests, yaml, ...; ~0.3 s), keeps the cold
start within its 0.5 s budget. ``python -m binderhub_registry.sandbox.server DIR``
runs the same server, just slower to start.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["python_argv"]

_PACKAGES = [
    ("binderhub_registry", str(Path(__file__).parent.parent)),
    ("binderhub_registry.sandbox", str(Path(__file__).parent)),
]


def python_argv(module: str, *args: str) -> list[str]:
    """The command that runs ``module`` as ``__main__`` with ``args``, by this interpreter.

    The module's name is in the command line, where ``/proc/<pid>/cmdline`` shows it.
    """
    code = f"""
import runpy, sys, types
for name, path in {_PACKAGES!r}:
    package = types.ModuleType(name)
    package.__path__ = [path]
    sys.modules[name] = package
runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
"""
    return [sys.executable, "-c", code, *args]
