"""The ``binderhub-registry`` command: the sandbox, a notebook run, verification of existing
values, the demo."""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import logging
import os
import shlex
import shutil
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import parse_qs, urlparse

import yaml

from . import providers, sandbox
from .binderhub import HelperValues, RegistryValues, load_values, secret_file_warning
from .errors import (
    BinderHubRegistryError,
    CloudError,
    InvalidParameter,
    InvalidValuesFile,
    VerificationFailed,
)
from .params import Parameter, check_names, read_parameters_cell
from .providers import Record
from .registry_http import DEADLINE
from .steps import Result, Runner
from .verify import VerificationReport, VerifyHints, stopped_sandbox, verify

__all__ = ["main"]


def _sandbox(args: argparse.Namespace) -> int:
    directory = Path(args.dir) if args.dir else None
    if args.action == "start":
        started = sandbox.start(directory)
        for name, value in started.env().items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if args.action == "stop":
        print("stopped" if sandbox.stop(directory) else "not running", file=sys.stderr)
        return 0
    if args.action == "az-setup":  # the real Azure CLI on the sandbox: eval "$(... az-setup)"
        from .sandbox.azure.az_cli import az_setup

        print(az_setup(sandbox.ensure(directory)).shell())
        return 0
    box = sandbox.running(directory)
    if args.action == "reset":
        if not box:
            print("not running", file=sys.stderr)
            return 1
        box.reset()
        return 0
    if not box:
        print(f"not running (directory {directory or sandbox.sandbox_dir()})")
        return 1
    print(f"running, pid {box.pid}\n  fake clouds: {box.url}\n  CA: {box.ca_file}")
    for name, url in box.registries.items():
        print(f"  registry {name}: {url}")
    where = f" --dir {shlex.quote(str(directory))}" if directory else ""
    print(f'  the Azure CLI on it: eval "$(binderhub-registry sandbox az-setup{where})"')
    return 0


# --- run: one notebook, headless ---------------------------------------------------------------
def _resolve_type(value: str) -> object:
    """A ``-p`` value as papermill's command reads it: True, False, None, int, float or str."""
    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


@dataclass(frozen=True)
class _Notebook:
    """A notebook's path, its parameters cell (names and literal defaults), and its provider."""

    path: Path
    names: list[str]
    defaults: dict[str, object]
    comments: dict[str, str]
    provider: providers.Provider | None

    @property
    def spec(self) -> dict[str, Parameter]:
        """The provider's rule for each parameter (none for a notebook of no provider)."""
        return {p.name: p for p in self.provider.PARAMETERS} if self.provider else {}


def _read_notebook(text: str) -> _Notebook:
    """The notebook at ``text`` and its parameters cell; InvalidParameter when it has none."""
    import nbformat

    path = Path(text)
    try:
        nb: Any = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    except FileNotFoundError:
        raise InvalidParameter("notebook", "must name a notebook file that exists", text) from None
    except (OSError, ValueError) as e:  # nbformat's NotJSONError is a ValueError
        raise InvalidParameter(
            "notebook", f"must be a readable .ipynb notebook ({type(e).__name__})", text
        ) from None
    cell = next(
        (c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None
    )
    if cell is None:
        raise InvalidParameter("notebook", "has no cell tagged 'parameters' to run with", text)
    try:
        read = read_parameters_cell(cell.source)
    except SyntaxError:
        raise InvalidParameter(
            "notebook", "has a parameters cell that is not Python", text
        ) from None
    provider = _provider_of(nb)
    return _Notebook(path, read.names, read.defaults, read.comments, provider)


def _provider_of(nb: Any) -> providers.Provider | None:
    """The provider whose ``validate`` the notebook's check cell calls (``harbor.validate(``
    after ``from binderhub_registry.providers import harbor``), imported alone."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue  # IPython magics: not the check cell
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "binderhub_registry.providers":
                for alias in node.names:
                    used = f"{alias.asname or alias.name}.validate("
                    if alias.name in providers.keys() and used in cell.source:
                        return providers.get(alias.name)
    return None


def _environment_lines(notebook: _Notebook) -> list[str]:
    """What the notebook reads from the environment against the real cloud, one line each
    (its provider's ``SECRET_ENVIRONMENT``)."""
    variables: tuple[tuple[str, str], ...] = getattr(notebook.provider, "SECRET_ENVIRONMENT", ())
    if not variables:
        return []
    width = max(len(name) for name, _ in variables)
    return [
        "",
        "Environment variables read against the real cloud, never in the sandbox (secrets are "
        "never parameters):",
        *(f"  {name.ljust(width)}  {what}" for name, what in variables),
    ]


def _params(args: argparse.Namespace) -> int:
    """List a notebook's parameters (default, rule) and the environment variables it reads."""
    notebook = _read_notebook(args.notebook)
    spec = notebook.spec
    print(f"Parameters of {notebook.path} (binderhub-registry run {notebook.path} -p NAME VALUE):")
    for name in notebook.names:
        default = notebook.defaults.get(name, "?")
        print(f"  {name} (default {default!r}): {notebook.comments.get(name, '')}".rstrip(": "))
        if name in spec:
            print(f"      rule: {spec[name].rule}")
    print("\n".join(_environment_lines(notebook)))
    return 0


class _Parameter(argparse.Action):
    """``-p``/``-r NAME VALUE``, kept in the order given (the last of a name wins)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        name, value = cast(list[str], values)
        kind = "raw" if option_string in ("-r", "--parameters_raw") else "typed"
        namespace.parameters = [*namespace.parameters, (kind, name, value)]


def _given_parameters(args: argparse.Namespace) -> dict[str, object]:
    """``-p`` (typed as papermill types it) and ``-r`` (raw strings), later ones winning."""
    given: dict[str, object] = {}
    for kind, name, value in args.parameters:
        given[name] = value if kind == "raw" else _resolve_type(value)
    return given


def _run(args: argparse.Namespace) -> int:
    """Run one notebook with papermill; exit 0 done, 1 a step failed, 2 bad parameters."""
    notebook = _read_notebook(args.notebook)
    if args.help_notebook:
        return _params(args)
    given = _given_parameters(args)
    # a typo would run with the defaults (papermill only warns): refused before any kernel
    check_names(given, notebook.names)
    spec = notebook.spec
    for name, value in given.items():
        if name in spec:
            spec[name].validate(value)
    output_dir = given.get("output_dir", notebook.defaults.get("output_dir", "."))
    output = Path(args.output or Path(str(output_dir)) / notebook.path.name)
    if output.resolve() == notebook.path.resolve():
        raise InvalidParameter("output", "must not be the notebook itself", str(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    return _execute(notebook, output, given)


def _execute(notebook: _Notebook, output: Path, parameters: dict[str, object]) -> int:
    """papermill's run, its failure told in a line or two instead of its traceback."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    failure: PapermillExecutionError | str | None = None
    with tempfile.TemporaryFile("w+") as kernel_log, _stderr_to(kernel_log) as stderr:
        try:
            papermill.execute_notebook(
                str(notebook.path),
                str(output),
                parameters=parameters,
                # the bar on the terminal; the kernel's own stderr (its shutdown notes) in the log
                progress_bar={"file": stderr} if stderr.isatty() else False,
            )
        except PapermillExecutionError as e:
            failure = e
        except Exception as e:  # no kernel, a kernel that died: what it said, in short
            stderr.flush()
            kernel_log.seek(0)
            said = [line for line in kernel_log.read().splitlines() if line.strip()][-3:]
            message = f"the notebook could not run: {type(e).__name__}: {_one_line(str(e))}"
            failure = message + "".join(f"\n  {line}" for line in said)
    if failure is None:
        print(f"done: the executed notebook is {output}")
        return 0
    if isinstance(failure, str):
        print(f"error: {failure}", file=sys.stderr)
        return 1
    if failure.ename in ("InvalidParameter", "UnknownParameter"):
        print(f"error: {failure.evalue}", file=sys.stderr)
        return 2
    step = _failed_step(output)
    print(f"error: {step}: {failure.ename}: {_one_line(failure.evalue)}", file=sys.stderr)
    print(f"the executed notebook, with every output: {output}", file=sys.stderr)
    return 1


@contextlib.contextmanager
def _stderr_to(file: IO[str]) -> Iterator[IO[str]]:
    """File descriptor 2 (the kernel's stderr, inherited) into ``file``; yields the terminal's."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w")
    os.dup2(file.fileno(), 2)
    try:
        yield terminal
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()


def _one_line(text: str) -> str:
    """The last non-empty line of ``text`` (our errors are one line already)."""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _failed_step(output: Path) -> str:
    """The heading above the cell that failed in the executed notebook, else its number."""
    import nbformat

    try:
        nb: Any = nbformat.read(str(output), as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError):
        return "a cell"
    heading = ""
    for index, cell in enumerate(nb.cells):
        if "papermill-error-cell-tag" in cell.get("metadata", {}).get("tags", []):
            continue  # the notes papermill adds about the failure
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            heading = cell.source.lstrip().splitlines()[0].lstrip("#").strip()
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return heading or f"cell {index}"
    return "a cell"


def _verify(args: argparse.Namespace) -> int:
    """Exit 0 when the values work, 1 when a check failed, 2 when the inputs are unusable."""
    try:
        return _verify_files(args)
    except BinderHubRegistryError:
        raise  # one line from main
    except Exception as e:
        if args.verbose:
            raise
        # its message may quote a file or a header: name the type only
        print(
            f"error: unexpected {type(e).__name__} (a bug: --verbose shows where)",
            file=sys.stderr,
        )
        return 2


def _verify_files(args: argparse.Namespace) -> int:
    ca_file = args.ca_file or os.environ.get("REQUESTS_CA_BUNDLE") or None
    if ca_file:
        _check_ca_file(ca_file, "--ca-file" if args.ca_file else "REQUESTS_CA_BUNDLE")
    # one file (`helm get values <release>`) or config.yaml and secret.yaml
    secret = args.secret or args.config
    values = load_values(args.config, secret)
    if args.pull_access == "secret" and values.pull is None:
        raise InvalidParameter(
            "--pull-access",
            f"is secret, but {secret} has no jupyterhub.imagePullSecret for user pods",
            "secret",
        )
    if args.pull_access:
        # "node" or "none": user pods do not use a pull secret, whatever the file holds
        values = replace(
            values,
            pull=values.pull if args.pull_access == "secret" else None,
            pull_access=args.pull_access,
        )
    if args.helper_url:
        if not isinstance(values, HelperValues):
            raise InvalidParameter(
                "--helper-url", "is for values with ExternalRegistryHelper only", args.helper_url
            )
        if urlparse(args.helper_url).scheme not in ("http", "https"):
            raise InvalidParameter("--helper-url", "must be an http(s):// URL", args.helper_url)
        values = replace(values, service_url=args.helper_url)
    elif isinstance(values, HelperValues) and _in_cluster(values.service_url):
        raise InvalidValuesFile(
            args.config,
            "config.ExternalRegistryHelper.service_url names a Service inside the cluster, "
            "which verify cannot reach: kubectl port-forward it and pass --helper-url "
            "http://127.0.0.1:<port>, or launch a repository and watch its build pod's log",
        )
    warning = secret_file_warning(secret)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    stopped = stopped_sandbox(values, ca_file, _rerun_command(Path(args.config).parent))
    if stopped:  # instead of retrying a port nothing listens on
        print(f"error: {stopped}", file=sys.stderr)
        return 1
    log = logging.getLogger("binderhub_registry")
    saved = log.handlers[:], log.level, log.propagate
    # the runner logs each retry at WARNING: told with --verbose only, else one line in the end
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr) if args.verbose else logging.NullHandler()
    )
    log.handlers, log.propagate = [handler], False
    log.setLevel(logging.INFO if args.verbose else logging.ERROR)
    rows = io.StringIO()  # the runner's live and final rows: shown with --verbose only
    try:
        with contextlib.redirect_stdout(sys.stdout if args.verbose else rows):
            report = Runner().step(
                "Verify the image check, push and pull",
                _verify_values,
                values,
                ca_file,
                args.keep,
                args.insecure,
                args.deadline,
            )
            # after the checks, outside their retries: a reading never fails verify
            _storage(report, values, ca_file, Path(args.config).parent)
    except VerificationFailed as failed:
        if args.verbose and failed.report is not None:
            print(failed.report)
        print(f"error: {failed}", file=sys.stderr)
        return 1
    except CloudError as e:  # TLS, unreachable after retries, an answer no retry fixes
        hint = ""
        if str(e).startswith("TLS verification"):
            hint = "; use --ca-file CA.crt when the registry's CA is private"
        print(f"error: {e}{hint}", file=sys.stderr)
        return 1
    except BinderHubRegistryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        log.handlers, log.level, log.propagate = saved[0], saved[1], saved[2]
    print(report)
    for check in report.warnings:  # told, as secret.yaml's mode is: the exit code stays 0
        print(f"warning: {check.name}: {check.detail}", file=sys.stderr)
    return 0


# --- storage used against the limit ----------------------------------------------------------
#: Values' hosts that name their registry when no notebook record lies beside them.
_HOSTS = (
    (".azurecr.io", "azure"),
    ("-docker.pkg.dev", "google"),
    ("gcr.io", "google"),
    (".container-registry.ovh.net", "ovh"),
    ("docker.io", "dockerhub"),
)


def _registry_of(values: RegistryValues, directory: Path) -> tuple[str | None, dict[str, Any]]:
    """Which registry's values these are, and what its notebook recorded creating: the record
    beside them (``binderhub-registry.json``) when there is one, else the values' shape."""
    try:
        data = json.loads((directory / Record.FILE).read_text())
        if data["provider"] in providers.keys() and isinstance(data.get("created", {}), dict):
            return str(data["provider"]), dict(data.get("created") or {})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if isinstance(values, HelperValues):
        return "ecr", {}
    host = values.image_prefix.split("/", 1)[0].lower()
    for suffix, key in _HOSTS:
        if host == suffix.lstrip(".-") or host.endswith(suffix):
            return key, {}
    query = parse_qs(urlparse(str(values.docker_registry.get("token_url") or "")).query)
    if query.get("service", [""])[0] == "harbor-registry":
        return "harbor", {}
    return None, {}


def _storage(
    report: VerificationReport, values: RegistryValues, ca_file: str | None, directory: Path
) -> None:
    """Add the storage row: the registry's usage hook (its module's ``usage_for_values``)
    reads it with the values' credential where that may, else with the notebook's admin
    credential from the environment; a failure to read is a skipped row, never verify's."""
    from .registry_http import secret_forms
    from .secrets import Secret, redact
    from .usage import NotRead, Usage
    from .verify import report_storage

    key, created = _registry_of(values, directory)
    if key is None:
        report_storage(report, None, "not read: which registry these values are for is unknown")
        return
    found: Usage | NotRead | None
    try:
        provider = providers.get(key)
        hook = getattr(provider, "usage_for_values", None)
        name = provider.NAME
        # a 429 or 5xx is retried as a step's would be (Retry-After honoured), then told
        reading = Runner(attempts=3, max_wait=10.0)
        found = reading.call(hook, values, os.environ, created, ca_file) if hook else None
    except ImportError:  # the registry's optional extra is not installed
        missing = f"not read: its SDK is not installed (pip install 'binderhub-registry[{key}]')"
        report_storage(report, None, missing)
        return
    except Exception as e:  # a reading never fails verify: the first line of why, redacted
        held = [values.password, getattr(values, "auth_token", None)]
        held += [values.pull.password if values.pull else None]
        known = secret_forms(*[s for s in held if isinstance(s, Secret)])
        known += [os.environ.get(v, "") for v in _secret_variables(key)]
        why = redact(_one_line(str(e)) or type(e).__name__, [k for k in known if k])
        report_storage(report, None, f"not read: {type(e).__name__}: {why}")
        return
    report_storage(report, found, f"{name}'s API tells no storage used against a limit")


def _secret_variables(key: str) -> list[str]:
    """The names of the environment variables the registry's notebook reads secrets from."""
    try:
        pairs = getattr(providers.get(key), "SECRET_ENVIRONMENT", ())
    except ImportError:
        return []
    return [name for name, _ in pairs]


def _rerun_command(directory: Path) -> str:
    """The command that writes the values in ``directory`` again, from the notebook's record
    there ("" without one)."""
    try:
        key = json.loads((directory / Record.FILE).read_text())["provider"]
        notebook = providers.get(key).NOTEBOOK
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return ""
    return (
        f"binderhub-registry run notebooks/{notebook}.ipynb -p output_dir "
        f"{shlex.quote(str(directory))} -p sandbox True"
    )


def _seconds(text: str) -> float:
    """``--deadline``'s value: seconds from 1 to 3600 (argparse reports the rule in one line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds from 1 to 3600") from None
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError("must be a number of seconds from 1 to 3600")
    return value


def _check_ca_file(path: str, flag: str) -> None:
    """Refuse a CA bundle that is missing or holds no certificate, before any request."""
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise InvalidParameter(flag, "must name a CA bundle file that exists", path) from None
    except (ssl.SSLError, OSError, ValueError):
        raise InvalidParameter(
            flag, "must name a readable file of PEM certificates (the registry's CA)", path
        ) from None


def _in_cluster(url: str) -> bool:
    """Whether ``url`` names a Kubernetes Service (``<name>.<namespace>.svc``), which only
    resolves inside its cluster."""
    host = urlparse(url).hostname or ""
    return host.endswith((".svc", ".svc.cluster.local"))


def _verify_values(
    values: RegistryValues, ca_file: str | None, keep: bool, insecure: bool, deadline: float
) -> Result[VerificationReport]:
    if isinstance(values, HelperValues):
        # BinderHub asks its registry helper, not the registry: its calls, then the push and
        # pull with the helper's short-lived token (ECR's helper is the one registered)
        from .providers.ecr import HINTS, verify_with_helper

        found = verify_with_helper(values, ca_file, HINTS)
        return Result(found, "done", f"{found.image}")
    report = verify(
        values,
        ca_bundle=ca_file,
        cleanup=not keep,
        insecure=insecure,
        hints=_hints_for(values),
        deadline=deadline,
    )
    return Result(report, "done", f"{report.image}")


def _hints_for(values: RegistryValues) -> VerifyHints | None:
    """The registry's own words for verify's diagnoses, where the values alone show which
    registry it is: a Harbor's token service (``service=harbor-registry``), whose refusals
    mean a robot expired, disabled or deleted more often than a missing right."""
    query = parse_qs(urlparse(str(values.docker_registry.get("token_url") or "")).query)
    if query.get("service", [""])[0] == "harbor-registry":
        from .providers import harbor

        return harbor.HINTS
    return None


def _demo(args: argparse.Namespace) -> int:
    import papermill

    root = Path(args.root).resolve()
    notebooks = sorted((root / "notebooks").glob("[0-9]*.ipynb"))
    # a private sandbox: the demo neither disturbs nor inherits state from one already running
    directory = Path(tempfile.mkdtemp(prefix="binderhub-registry-demo-"))
    box = sandbox.start(directory)
    os.environ.update(box.env())
    rows: list[tuple[str, str, str, str, str]] = []
    failed = 0
    try:
        for nb in notebooks:
            out_dir = root / "build" / nb.stem
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.mkdir(parents=True)
            t0 = time.perf_counter()
            try:
                papermill.execute_notebook(
                    str(nb),
                    str(out_dir / nb.name),
                    parameters={"output_dir": str(out_dir)},
                    cwd=str(root),
                    progress_bar=False,
                    kernel_name="python3",
                )
                # every notebook's verification covers the three consumers of its values
                result = f"verified: check, push, pull ({time.perf_counter() - t0:.1f}s)"
            except Exception as e:  # papermill's error carries the failing cell's
                failed += 1
                reason = getattr(e, "evalue", None) or str(e).strip().splitlines()[-1]
                result = f"FAILED: {getattr(e, 'ename', type(e).__name__)}: {reason}"
            try:
                config = yaml.safe_load((out_dir / "config.yaml").read_text())
                prefix = config["config"]["BinderHub"]["image_prefix"]
            except (OSError, KeyError, TypeError):
                prefix = "-"
            rows.append(
                (_registry_name(out_dir), nb.stem, prefix, result, str(out_dir.relative_to(root)))
            )
    finally:
        sandbox.stop(directory)
        shutil.rmtree(directory, ignore_errors=True)
    header = ("registry", "notebook", "image_prefix", "verification", "files")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print("(the sandbox is stopped: these values were proven against it, and point at it)")
    return 1 if failed or not rows else 0


def _registry_name(output_dir: Path) -> str:
    """The display name of the provider a notebook recorded in ``output_dir``."""
    try:
        key = json.loads((output_dir / Record.FILE).read_text())["provider"]
        return providers.get(key).NAME
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return "-"


def _prune(args: argparse.Namespace) -> int:
    from . import prune

    if args.cronjob:
        manifest = prune.cronjob_manifest(
            args.image_prefix, args.days, username=args.username, schedule=args.schedule
        )
        print(yaml.safe_dump(manifest, sort_keys=False), end="")
        return 0

    def pruned() -> Result[prune.PrunePlan]:
        plan = prune.prune(
            args.image_prefix,
            args.days,
            username=args.username,
            apply=args.apply,
            token_variable=args.token_env,
            hub_url=args.hub_url,
            ca_file=args.ca_file,
        )
        return Result(plan, "done", "")

    # the step runner retries Hub's 429 and 5xx: a second pass lists what the first left
    with contextlib.redirect_stdout(io.StringIO()):
        plan = Runner().step("Prune Docker Hub tags", pruned)
    print(plan.text())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``binderhub-registry`` console script."""
    parser = argparse.ArgumentParser(prog="binderhub-registry", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "sandbox",
        help="start, stop, reset or show the local sandbox; az-setup: shell lines that point "
        "the real Azure CLI at it",
    )
    p.add_argument("action", choices=["start", "stop", "status", "reset", "az-setup"])
    p.add_argument("--dir", help="sandbox directory (default: $BINDERHUB_REGISTRY_SANDBOX_DIR)")
    p.set_defaults(func=_sandbox)

    p = sub.add_parser(
        "run",
        help="run one notebook headless (papermill), refusing a parameter it does not have",
        description="Run NOTEBOOK with papermill. Each -p name must be one of the notebook's "
        "parameters (a typo is refused, not run with the defaults) and follow its rule; "
        "exit 0 done, 1 a step failed, 2 bad parameters. --help-notebook lists them.",
    )
    p.add_argument("notebook", help="the notebook, e.g. notebooks/05-harbor.ipynb")
    p.add_argument(
        "output",
        nargs="?",
        help="where the executed notebook goes (default: output_dir/<notebook's name>)",
    )
    p.add_argument(
        "-p",
        "--parameters",
        nargs=2,
        metavar=("NAME", "VALUE"),
        action=_Parameter,
        dest="parameters",
        default=[],
        help="a parameter, typed as papermill types it (True, False, None, numbers, else text)",
    )
    p.add_argument(
        "-r",
        "--parameters_raw",
        nargs=2,
        action=_Parameter,
        metavar=("NAME", "VALUE"),
        dest="parameters",
        default=[],
        help="a parameter, always as text",
    )
    p.add_argument(
        "--help-notebook",
        action="store_true",
        help="list the notebook's parameters, their rules and the environment variables it reads",
    )
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "params",
        help="list a notebook's parameters, their rules and the environment variables it reads",
    )
    p.add_argument("notebook", help="the notebook, e.g. notebooks/05-harbor.ipynb")
    p.set_defaults(func=_params)

    p = sub.add_parser(
        "verify",
        help="check BinderHub values as their consumers use them: BinderHub's image check, "
        "a build pod's push, a user pod's pull (jupyterhub.imagePullSecret); then report the "
        "storage used against the registry's limit (a warning above 80%%, exit code 0)",
    )
    p.add_argument(
        "config",
        help="config.yaml (with config.BinderHub.image_prefix), or one file with every value "
        "(what `helm get values <release>` prints)",
    )
    p.add_argument(
        "secret",
        nargs="?",
        help="secret.yaml (with registry.username and registry.password, and "
        "jupyterhub.imagePullSecret for user pods); none when CONFIG holds them",
    )
    p.add_argument(
        "--pull-access",
        choices=["secret", "node", "none"],
        help="how user pods pull: secret (jupyterhub.imagePullSecret), node (the nodes' "
        "identity: not checkable from here) or none (anonymously); default: secret when "
        "secret.yaml holds one, else an anonymous pull is tried and its refusal is no failure",
    )
    p.add_argument(
        "--ca-file", help="CA bundle to trust (the sandbox's ca.crt); default: system CAs"
    )
    p.add_argument("--keep", action="store_true", help="leave the test tag in place")
    p.add_argument(
        "--helper-url",
        help="where the registry helper answers here, for ExternalRegistryHelper values "
        "(kubectl port-forward's http://127.0.0.1:<port>); default: the file's service_url",
    )
    p.add_argument(
        "--deadline",
        type=_seconds,
        default=DEADLINE,
        metavar="SECONDS",
        help=f"time for the whole verification, 1 to 3600 (default {DEADLINE:g})",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a plain-HTTP registry or token service (sends the password in clear text)",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="show each step, retry and the report so far"
    )
    p.set_defaults(func=_verify)

    p = sub.add_parser(
        "prune",
        help="Docker Hub (no retention API): delete tags under the image prefix not pulled "
        "for N days; shows them, deletes only with --apply",
        description="List the tags of the namespace's repositories under the image prefix and "
        "select those not pulled (never pulled: not pushed) for --days days, from Hub's "
        "tag_last_pulled and tag_last_pushed. Nothing is deleted without --apply. The token "
        "is read from the environment (--token-env), never from an argument.",
    )
    p.add_argument(
        "--image-prefix",
        required=True,
        help="BinderHub's image_prefix, e.g. docker.io/<namespace>/binder-",
    )
    p.add_argument(
        "--days", type=int, default=30, help="keep tags pulled within this many days (30)"
    )
    p.add_argument(
        "--username",
        required=True,
        help="the token's Docker ID (an organization access token: the organization)",
    )
    p.add_argument("--apply", action="store_true", help="delete the selected tags")
    p.add_argument(
        "--token-env",
        default="DOCKERHUB_TOKEN",
        metavar="VARIABLE",
        help="the environment variable holding the token (default DOCKERHUB_TOKEN)",
    )
    p.add_argument("--hub-url", default="https://hub.docker.com", help=argparse.SUPPRESS)
    p.add_argument(
        "--ca-file", help="CA bundle to trust (the sandbox's ca.crt); default: system CAs"
    )
    p.add_argument(
        "--cronjob",
        action="store_true",
        help="print a Kubernetes CronJob running this with --apply (token from a Secret)",
    )
    p.add_argument("--schedule", default="23 4 * * *", help="the CronJob's schedule (cron syntax)")
    p.set_defaults(func=_prune)

    p = sub.add_parser("demo", help="run every notebook on the sandbox and summarise")
    p.add_argument("--root", default=".", help="project root holding notebooks/ (default: .)")
    p.set_defaults(func=_demo)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BinderHubRegistryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
