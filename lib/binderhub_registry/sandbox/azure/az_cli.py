"""The real Azure CLI (``az``) pointed at the sandbox: its environment and its set-up commands.

``binderhub-registry sandbox az-setup`` prints these as shell lines, and the
client tests (``make test-clients``) run them, so readers can rehearse the
guide's own ``az`` commands (section 2.3) against the sandbox.

==============================================  ===========================================
set-up                                          why, and its source
==============================================  ===========================================
``AZURE_CONFIG_DIR`` inside the sandbox         the CLI keeps its clouds, config and token
directory, one per sandbox start (its port:     cache there (azure-cli ``core``
the registered endpoints name it)               ``GLOBAL_CONFIG_DIR``): the user's ~/.azure
                                                is untouched
``AZURE_CORE_COLLECT_TELEMETRY=0`` and          telemetry would go to the internet (Microsoft
``core.collect_telemetry=false``                docs "Azure CLI configuration": env
                                                ``AZURE_CORE_COLLECT_TELEMETRY``)
``core.instance_discovery=false``               MSAL would ask login.microsoftonline.com
                                                about an unknown authority host (azure-cli
                                                ``core/_profile.py`` reads this setting)
``versionCheck.json`` written first: the        at every start with no such cache younger
pinned release's versions, checked now          than a day, the CLI asks
                                                azcliprod.blob.core.windows.net for the newest
                                                release (azure-cli ``core/util.py``
                                                ``handle_version_update``,
                                                ``get_cached_latest_versions``); with it, it
                                                asks nothing (another az release than the
                                                pinned one still asks once)
``REQUESTS_CA_BUNDLE``: the sandbox's CA        the CLI uses requests (TLS to the sandbox)
the loopback variables                          no credential probe leaves the machine
``az cloud register -n BinderHubSandbox         the CLI reads every other endpoint from
--endpoint-resource-manager <arm>/``            ``<arm>/metadata/endpoints`` (served by
                                                ``arm``)
``az login --service-principal ... --password   the sandbox's seeded deployer
@-``, the secret piped on its standard input    (``credentials.json``, 0600): the secret is
                                                read from that file, never printed, and on no
                                                process's command line (``ps`` shows argv):
                                                every az argument ``@<file>`` is that file's
                                                text, ``@-`` standard input (azure-cli 2.91.0
                                                ``core/commands/__init__.py``
                                                ``_expand_file_prefixed_files``, run on the
                                                arguments before parsing)
==============================================  ===========================================
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .. import Sandbox

__all__ = ["AZ_CLI_VERSION", "CLOUD_NAME", "AzSetup", "az_setup"]

#: The azure-cli release the client tests pin (``make test-clients`` installs it).
AZ_CLI_VERSION = "2.91.0"
#: The name the sandbox's cloud is registered under in the CLI.
CLOUD_NAME = "BinderHubSandbox"


@dataclass(frozen=True)
class AzSetup:
    """What makes ``az`` talk to one sandbox: environment, then commands (argv lists).

    ``login`` reads the secret from the sandbox's credentials file when run, so
    neither ``commands`` nor :meth:`shell` holds it.
    """

    env: dict[str, str]
    commands: list[list[str]]
    login: list[str]  # without ``--password``: see :meth:`login_argv`
    credentials_file: str
    files: dict[str, str] = field(default_factory=dict)  # in AZURE_CONFIG_DIR, written first

    def login_argv(self) -> list[str]:
        """``az login --service-principal ...`` reading the deployer's secret from standard
        input (``--password=@-``): give it there, never in an argument, which ``ps`` shows.

        With ``=``: azure-cli puts the file's text in place of ``@-`` before argparse reads the
        line (``_expand_file_prefixed_files``, core/commands/__init__.py, 2.91.0), and a
        separate value starting with ``-`` (one secret in 64 of ``token_urlsafe``'s) is taken
        for an option: "argument --password/-p: expected one argument", as az's own help warns.
        """
        return [*self.login, "--password=@-", "--output", "none"]

    def shell(self) -> str:
        """Lines for ``eval`` in a POSIX shell: exports, set-up commands, then the sign-in."""
        lines = ["# the real Azure CLI on this sandbox (`az` on PATH; its own config directory)"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.env.items()]
        lines.append('mkdir -p "$AZURE_CONFIG_DIR"')
        lines += [
            f"printf '%s' {shlex.quote(text)} > \"$AZURE_CONFIG_DIR\"/{shlex.quote(name)}"
            for name, text in self.files.items()
        ]
        lines += [shlex.join(argv) for argv in self.commands]
        read = "import json,sys; print(json.load(open(sys.argv[1]))['azure']['client_secret'])"
        # this Python, isolated (-I): no PATH lookup, no PYTHONPATH, so only the file decides
        python = shlex.quote(sys.executable)
        # piped to az's standard input: the secret is never an argument of any process
        reader = f"{python} -I -c {shlex.quote(read)} {shlex.quote(self.credentials_file)}"
        lines.append(f"{reader} | {shlex.join(self.login_argv())}")
        return "\n".join(lines)


def az_setup(box: Sandbox, config_dir: Path | None = None) -> AzSetup:
    """The Azure CLI's set-up for ``box``; ``config_dir`` defaults to one in the sandbox's
    directory for this start of it (``azure-cli-<port>``)."""
    from .. import loopback_env

    seeded = box.credentials("azure")
    config = config_dir or box.directory / f"azure-cli-{box.url.rsplit(':', 1)[-1]}"
    env = {
        "AZURE_CONFIG_DIR": str(config),
        "AZURE_CORE_COLLECT_TELEMETRY": "0",
        "AZURE_CORE_NO_COLOR": "1",
        "AZURE_CORE_ONLY_SHOW_ERRORS": "1",
        "REQUESTS_CA_BUNDLE": box.ca_file,
    } | loopback_env()
    commands = [
        [
            "az",
            "config",
            "set",
            "core.collect_telemetry=false",
            "core.instance_discovery=false",
            "--only-show-errors",
        ],
        [
            "az",
            "cloud",
            "register",
            "--name",
            CLOUD_NAME,
            "--endpoint-resource-manager",
            f"{box.url}/azure/management/",
            "--only-show-errors",
        ],
        ["az", "cloud", "set", "--name", CLOUD_NAME, "--only-show-errors"],
    ]
    login = [
        "az",
        "login",
        "--service-principal",
        "--username",
        seeded["client_id"],
        "--tenant",
        seeded["tenant_id"],
    ]
    # the CLI's own version cache, as it writes it (keys and time format of azure-cli's
    # core/util.py): fresh, so no CLI start asks the internet for the newest release
    pinned = {"local": AZ_CLI_VERSION, "pypi": AZ_CLI_VERSION}
    checked = {
        "versions": {"azure-cli": pinned, "core": pinned, "telemetry": dict(pinned)},
        "update_time": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    files = {"versionCheck.json": json.dumps(checked)}
    return AzSetup(env, commands, login, box.credentials_file, files)
