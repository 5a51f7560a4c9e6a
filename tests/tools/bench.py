"""``make bench``: the costs that matter, measured in one run, as ratios where machines differ.

- sandbox cold start, from start() to every port answering (goal <= 0.5 s);
- each notebook's papermill run against the sandbox, divided by a trivial
  one-cell notebook's run, interleaved so both see the same machine (goal <= 1.5);
- one verification on loopback: BinderHub's check, push, check again (goal <= 0.2 s).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
import papermill

from binderhub_registry import load_values, sandbox, verify

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def timed(fn: object, *args: object, **kwargs: object) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - t0


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bhr-bench-"))
    os.environ.update(sandbox.loopback_env())
    rows: list[tuple[str, str, str, bool]] = []

    starts = []
    for i in range(5):
        d = work / f"cold{i}"
        starts.append(timed(sandbox.start, d))
        sandbox.stop(d)
    cold = statistics.median(starts)
    rows.append(("sandbox cold start (median of 5)", f"{cold:.3f} s", "<= 0.5 s", cold <= 0.5))

    directory = work / "sandbox"
    os.environ["BINDERHUB_REGISTRY_SANDBOX_DIR"] = str(directory)
    box = sandbox.start(directory)
    trivial = work / "trivial.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), str(trivial)
    )

    def run(nb: Path, out: Path) -> float:
        box.reset()
        shutil.rmtree(work / "build" / nb.stem, ignore_errors=True)  # this notebook's values only
        return timed(
            papermill.execute_notebook,
            str(nb),
            str(out),
            cwd=str(work),
            kernel_name="python3",
            progress_bar=False,
        )

    notebooks = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    base: list[float] = []
    times: dict[str, list[float]] = {nb.stem: [] for nb in notebooks}
    run(trivial, work / "warm.ipynb")  # warm the caches once, unmeasured
    for _ in range(ROUNDS):
        for nb in notebooks:
            base.append(run(trivial, work / "t.ipynb"))
            times[nb.stem].append(run(nb, work / f"{nb.stem}.out.ipynb"))
    trivial_s = statistics.median(base)
    rows.append(("trivial one-cell notebook (papermill)", f"{trivial_s:.2f} s", "reference", True))
    for stem, ts in times.items():
        ratio = statistics.median(ts) / trivial_s
        rows.append(
            (
                f"{stem} / trivial",
                f"{ratio:.2f} ({statistics.median(ts):.2f} s)",
                "<= 1.5",
                ratio <= 1.5,
            )
        )

    # fresh values from one more (unmeasured) Docker Hub run, then verified again and again
    run(ROOT / "notebooks" / "02-docker-hub.ipynb", work / "values.ipynb")
    values = load_values(
        work / "build" / "02-docker-hub" / "config.yaml",
        work / "build" / "02-docker-hub" / "secret.yaml",
    )
    verify(values, ca_bundle=box.ca_file)  # warm: connections, repository exists
    checks = [timed(verify, values, ca_bundle=box.ca_file) for _ in range(10)]
    v = statistics.median(checks)
    rows.append(("one verification on loopback (median of 10)", f"{v:.3f} s", "<= 0.2 s", v <= 0.2))
    sandbox.stop(directory)
    shutil.rmtree(work, ignore_errors=True)

    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(
        f"{'measure'.ljust(widths[0])}  {'value'.ljust(widths[1])}  {'goal'.ljust(widths[2])}  met"
    )
    for name, value, goal, ok in rows:
        print(
            f"{name.ljust(widths[0])}  {value.ljust(widths[1])}  {goal.ljust(widths[2])}  "
            + ("yes" if ok else "NO")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
