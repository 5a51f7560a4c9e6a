"""``make bench``: the costs that matter, measured in one run, as ratios where machines differ.

- set-up, in a fresh clone of HEAD with empty pip and uv caches, as on a new machine: `make
  install` (uv bootstrapped, the lock installed), then `make demo`, then `make test` (goals: install
  + demo <= 60 s, test <= 5 min on 2 cores), what the install downloads and the venv's size with
  and without the azure extra; BENCH_SUITE=0 leaves out `make test`, BENCH_SETUP=0 all of these;
- sandbox cold start, from start() to every port answering (goal <= 0.5 s);
- each notebook's papermill run against the sandbox, divided by a trivial
  one-cell notebook's run, interleaved so both see the same machine (goal <= 1.5), measured two
  ways: in this process (``papermill.execute_notebook``: only the kernel's and the notebook's
  own costs, the stricter ratio) and as whole processes (the ``papermill`` command, each run a
  new process that imports papermill first, as a user's run does: median of BENCH_ROUNDS pairs);
  beside each in-process ratio, the notebook's shape alone (its cells, each code cell ``pass``):
  what papermill's saves and round trips cost before the notebook does any work;
- one verification on loopback: BinderHub's check, push, check again (goal <= 0.2 s);
- side by side on a sandbox, the guide's own az commands (section 2.3, the pinned Azure CLI that
  `make test-clients` installs) and the Azure notebook: seconds and requests each needs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib import metadata
from pathlib import Path

import nbformat
import papermill
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from binderhub_registry import load_values, sandbox, verify

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def timed(fn: object, *args: object, **kwargs: object) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - t0


Row = tuple[str, str, str, bool | None]  # met: None where there is no goal


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def download_size(venv: Path, lock_file: Path) -> int:
    """Bytes of the files uv fetches for ``venv``: for each installed distribution, the locked
    wheel this interpreter prefers (else the sdist)."""
    lock = tomllib.loads(lock_file.read_text())
    by_version = {(canonicalize_name(p["name"]), p["version"]): p for p in lock["package"]}
    priority = {tag: i for i, tag in enumerate(sys_tags())}
    site = next((venv / "lib").glob("python3*/site-packages"))
    total = 0
    for dist in metadata.distributions(path=[str(site)]):
        package = by_version.get((canonicalize_name(dist.metadata["Name"]), dist.version))
        if package is None:
            continue
        ranked = sorted(
            (
                min(
                    priority.get(t, len(priority))
                    for t in parse_wheel_filename(w["url"].rsplit("/", 1)[1])[3]
                ),
                w["size"],
            )
            for w in package.get("wheels", [])
        )
        if ranked and ranked[0][0] < len(priority):
            total += ranked[0][1]
        elif "sdist" in package:
            total += package["sdist"].get("size", 0)
    return total


def setup_rows() -> list[Row]:
    """A fresh clone of HEAD, empty caches: install, demo and test as a new machine runs them."""
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="bhr-bench-setup-"))
    repo = work / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BINDERHUB_REGISTRY_", "VIRTUAL_"))
    }
    env |= {"UV_CACHE_DIR": str(work / "uv-cache"), "PIP_NO_CACHE_DIR": "1"}
    env.pop("UV", None)  # the clone bootstraps its own pinned uv

    def make(*targets: str) -> float:
        t0 = time.perf_counter()
        out = subprocess.run(["make", *targets], cwd=repo, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"make {' '.join(targets)} failed in {repo}")
        return time.perf_counter() - t0

    print(f"set-up in a fresh clone of {head} (load average {os.getloadavg()[0]:.2f})", flush=True)
    install = make("install")
    demo = make("demo")
    rows.append(("make install (fresh clone, empty caches)", f"{install:.1f} s", "", None))
    rows.append(("make demo (installed)", f"{demo:.1f} s", "", None))
    total = install + demo
    rows.append(("make demo from a fresh clone", f"{total:.1f} s", "<= 60 s", total <= 60))
    downloaded = download_size(repo / ".venv", repo / "uv.lock")
    rows.append(("downloaded by the install", f"{downloaded / 1e6:.0f} MB", "", None))
    rows.append(("  .venv, every extra", f"{du(repo / '.venv') / 1e6:.0f} MB", "", None))
    uv = str(next((repo / ".tools").glob("uv-*/bin/uv")))
    subprocess.run(
        [uv, "sync", "-q", "--locked", "--extra", "test", "--extra", "docs"],
        cwd=repo,
        env=env | {"UV_PROJECT_ENVIRONMENT": str(work / "venv-no-azure")},
        check=True,
    )
    rows.append(
        ("  .venv without the azure extra", f"{du(work / 'venv-no-azure') / 1e6:.0f} MB", "", None)
    )
    # the google extra on top of that venv: what it adds to the install, in size and time
    no_google, venv = (
        du(work / "venv-no-azure"),
        {"UV_PROJECT_ENVIRONMENT": str(work / "venv-no-azure")},
    )
    google_s = timed(
        subprocess.run,
        [uv, "sync", "-q", "--locked", "--extra", "test", "--extra", "docs", "--extra", "google"],
        cwd=repo,
        env=env | venv,
        check=True,
    )
    rows.append(
        (
            "  the google extra adds",
            f"{(du(work / 'venv-no-azure') - no_google) / 1e6:.0f} MB, {google_s:.1f} s",
            "",
            None,
        )
    )
    if os.environ.get("BENCH_SUITE", "1") != "0":
        load = os.getloadavg()[0]
        suite = make("test")
        rows.append(
            (
                f"make test (-n auto, {os.cpu_count()} cores, load {load:.2f})",
                f"{suite:.0f} s",
                "<= 300 s",
                suite <= 300,
            )
        )
    shutil.rmtree(work, ignore_errors=True)
    return rows


def az_cli_rows(notebook_s: float, notebook_requests: int, work: Path) -> list[Row]:
    """The guide's az commands on a sandbox of their own, beside the Azure notebook's run."""
    sys.path.insert(0, str(ROOT))
    from binderhub_registry.sandbox.azure.az_cli import AZ_CLI_VERSION
    from tests.clients.az_guide import run_guide

    az = ROOT / ".tools" / f"azure-cli-{AZ_CLI_VERSION}" / "bin" / "az"
    if not az.exists():
        return [(f"az CLI {AZ_CLI_VERSION}: not installed (make test-clients)", "-", "", None)]
    guide = run_guide(str(az), work / "az")
    steps = [s for s in guide.steps if s.section.startswith("2.3")]
    failed = [s.section for s in guide.steps if s.rc != 0 and s.section != "2.3 second recipe"]
    seconds = sum(s.seconds for s in steps)
    count = sum(s.requests for s in steps)
    slowest = max(steps, key=lambda s: s.seconds)
    teardown = [s for s in guide.steps if s.section.startswith("teardown")]
    down_s, down_n = sum(s.seconds for s in teardown), sum(s.requests for s in teardown)
    return [
        (
            f"az CLI {guide.az_version}: section 2.3's commands as written"
            + (f" (FAILED: {', '.join(failed)})" if failed else ""),
            f"{seconds:.1f} s, {count} requests",
            "",
            None if not failed else False,
        ),
        (
            f"  of which the slowest, {' '.join(slowest.argv[:3])}",
            f"{slowest.seconds:.1f} s, {slowest.requests} requests",
            "",
            None,
        ),
        (
            "  az teardown (acr delete, ad sp/app delete, group delete)",
            f"{down_s:.1f} s, {down_n} requests",
            "",
            None,
        ),
        (
            "03-azure-container-registry (median, with a verified push)",
            f"{notebook_s:.1f} s, {notebook_requests} requests",
            "faster than az",
            notebook_s < seconds,
        ),
    ]


def main() -> int:
    rows: list[Row] = []
    if os.environ.get("BENCH_SETUP", "1") != "0":
        rows += setup_rows()
    work = Path(tempfile.mkdtemp(prefix="bhr-bench-"))
    os.environ.update(sandbox.loopback_env())

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
    requests: dict[str, int] = {}

    def shape_of(nb: Path) -> Path:
        """The notebook's cells with every code cell emptied to ``pass``: papermill's own cost."""
        copy = nbformat.read(str(nb), as_version=4)
        for cell in copy.cells:
            if cell.cell_type == "code":
                cell.source, cell.outputs = "pass", []
        path = work / f"{nb.stem}.shape.ipynb"
        nbformat.write(copy, str(path))
        return path

    def in_process(label: str, shapes: bool = False) -> dict[str, list[float]]:
        """Interleaved trivial and notebook runs in this process; rows of their ratios.

        With ``shapes``, each notebook's shape too: the same cells doing nothing, which is
        what papermill's per-cell saves and round trips alone cost."""
        base: list[float] = []
        times: dict[str, list[float]] = {nb.stem: [] for nb in notebooks}
        shape_times: dict[str, list[float]] = {nb.stem: [] for nb in notebooks}
        run(trivial, work / "warm.ipynb")  # warm the caches once, unmeasured
        for _ in range(ROUNDS):
            for nb in notebooks:
                base.append(run(trivial, work / "t.ipynb"))
                times[nb.stem].append(run(nb, work / f"{nb.stem}.out.ipynb"))
                requests[nb.stem] = len(box.log())  # since run()'s reset: its requests
                if shapes:
                    shape_times[nb.stem].append(run(shape_of(nb), work / "s.ipynb"))
        trivial_s = statistics.median(base)
        rows.append(
            (
                f"trivial one-cell notebook, in this process{label} (median of {len(base)})",
                f"{trivial_s:.2f} s",
                "reference",
                True,
            )
        )
        for stem, ts in times.items():
            ratio = statistics.median(ts) / trivial_s
            rows.append(
                (
                    f"{stem} / trivial, in this process{label}",
                    f"{ratio:.2f} ({statistics.median(ts):.2f} s)",
                    "<= 1.5",
                    ratio <= 1.5,
                )
            )
            if shapes:
                cells = len(nbformat.read(str(ROOT / "notebooks" / f"{stem}.ipynb"), 4).cells)
                shape = statistics.median(shape_times[stem]) / trivial_s
                rows.append(
                    (
                        f"  its shape alone ({cells} cells, each code cell `pass`) / trivial",
                        f"{shape:.2f}",
                        "reference",
                        None,
                    )
                )
        return times

    times = in_process("", shapes=True)
    # as the issues measured: kernels that compile every import from source, which is what
    # PYTHONDONTWRITEBYTECODE=1 (this machine's default, which make unsets) costs each run
    kept = {k: os.environ.pop(k) for k in ("PYTHONPYCACHEPREFIX",) if k in os.environ}
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        in_process(", compiling from source")
    finally:
        del os.environ["PYTHONDONTWRITEBYTECODE"]
        os.environ.update(kept)

    # as a user's run: each run a `papermill` process of its own, in interleaved pairs
    cli = str(Path(sys.executable).with_name("papermill"))

    def run_process(nb: Path, out: Path) -> float:
        box.reset()
        shutil.rmtree(work / "build" / nb.stem, ignore_errors=True)
        argv = [cli, str(nb), str(out), "--kernel", "python3", "--no-progress-bar"]
        t0 = time.perf_counter()
        done = subprocess.run(argv, cwd=work, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"papermill {nb.name} failed")
        return time.perf_counter() - t0

    pairs: dict[str, list[tuple[float, float]]] = {nb.stem: [] for nb in notebooks}
    run_process(trivial, work / "warm.ipynb")  # unmeasured, as above
    for _ in range(ROUNDS):
        for nb in notebooks:
            pair = (run_process(trivial, work / "t.ipynb"), run_process(nb, work / "p.ipynb"))
            pairs[nb.stem].append(pair)
    every = [t for ps in pairs.values() for t, _ in ps]
    rows.append(
        (
            f"trivial notebook, whole process (papermill command, median of {len(every)})",
            f"{statistics.median(every):.2f} s",
            "reference",
            True,
        )
    )
    for stem, ps in pairs.items():
        trivial_p = statistics.median(t for t, _ in ps)
        notebook_p = statistics.median(n for _, n in ps)
        ratio = notebook_p / trivial_p
        rows.append(
            (
                f"{stem} / trivial, whole process (median of {len(ps)} pairs)",
                f"{ratio:.2f} ({notebook_p:.2f} s)",
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
    azure = "03-azure-container-registry"
    if azure in times:
        rows += az_cli_rows(statistics.median(times[azure]), requests[azure], work)
    sandbox.stop(directory)
    shutil.rmtree(work, ignore_errors=True)

    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    print(
        f"{'measure'.ljust(widths[0])}  {'value'.ljust(widths[1])}  {'goal'.ljust(widths[2])}  met"
    )
    for name, value, goal, ok in rows:
        print(
            f"{name.ljust(widths[0])}  {value.ljust(widths[1])}  {goal.ljust(widths[2])}  "
            + ("-" if ok is None else "yes" if ok else "NO")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
