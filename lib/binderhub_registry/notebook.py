"""Notebook conveniences: one-line errors instead of tracebacks for the package's own errors."""

from __future__ import annotations

import sys
from typing import Any, cast

from .errors import BinderHubRegistryError

__all__ = ["ipython_shell", "short_errors"]


def ipython_shell() -> Any:
    """The running IPython shell, or None outside IPython (never imports IPython itself)."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython else None


def display(obj: Any, **kwargs: Any) -> Any:
    """IPython's ``display`` (imported only when a kernel is running)."""
    from IPython.display import display as ipython_display

    return cast(Any, ipython_display)(obj, **kwargs)


def short_errors() -> None:
    """In IPython, show this package's errors as one red line naming what to fix.

    The exception is still raised, so papermill and nbval see the cell fail.
    Other exceptions keep their full traceback.
    """
    shell = ipython_shell()
    if shell is None:
        return

    def handler(
        shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None
    ) -> None:
        # the regular error output (papermill and nbclient read its ename and evalue), one line long
        mode = shell.InteractiveTB.mode
        shell.InteractiveTB.set_mode("Minimal")
        try:
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        finally:
            shell.InteractiveTB.set_mode(mode)

    shell.set_custom_exc((BinderHubRegistryError,), handler)
