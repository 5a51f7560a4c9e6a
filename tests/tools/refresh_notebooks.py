"""Re-execute the stored notebooks in place against a fresh sandbox (``make notebooks``).

Each notebook runs the way nbval checks it: a freshly reset sandbox, no values
left from earlier runs, the kernel in notebooks/, no injected parameters. The
papermill bookkeeping (timings, timestamps) is stripped so git sees only real
changes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

from binderhub_registry import sandbox

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def strip(path: Path) -> None:
    """Drop metadata that changes at every run."""
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, str(path))


def main(paths: list[str]) -> int:
    notebooks = [Path(p).resolve() for p in paths] or sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    directory = Path(tempfile.mkdtemp(prefix="bhr-refresh-"))
    os.environ["BINDERHUB_REGISTRY_SANDBOX_DIR"] = str(directory)
    os.environ.update(sandbox.loopback_env())
    box = sandbox.start(directory)
    try:
        for nb in notebooks:
            box.reset()
            shutil.rmtree(NOTEBOOKS / "build", ignore_errors=True)
            print(f"executing {nb.relative_to(ROOT)}", flush=True)
            papermill.execute_notebook(
                str(nb), str(nb), cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False
            )
            strip(nb)
    finally:
        sandbox.stop(directory)
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(NOTEBOOKS / "build", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
