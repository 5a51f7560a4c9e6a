"""binderhub-registry: set up a container registry for BinderHub, step by step, and prove it works.

The public API, used by the notebooks and the CLI::

    from binderhub_registry import Runner, verify, write_values
    from binderhub_registry.providers import dockerhub
"""

from __future__ import annotations

from .binderhub import (
    RegistryValues,
    ValuesFiles,
    chart_docker_config,
    load_values,
    next_step,
    write_values,
)
from .errors import (
    AuthenticationFailed,
    BinderHubRegistryError,
    CloudError,
    InvalidParameter,
    InvalidValuesFile,
    MissingCredentials,
    PermissionDenied,
    SandboxError,
    TransientCloudError,
    VerificationFailed,
)
from .notebook import short_errors
from .secrets import Secret, redact
from .steps import Result, Runner
from .verify import VerificationReport, VerifyHints, verify, verify_step

__all__ = [
    "AuthenticationFailed",
    "BinderHubRegistryError",
    "CloudError",
    "InvalidParameter",
    "InvalidValuesFile",
    "MissingCredentials",
    "PermissionDenied",
    "RegistryValues",
    "Result",
    "Runner",
    "SandboxError",
    "Secret",
    "TransientCloudError",
    "ValuesFiles",
    "VerificationFailed",
    "VerificationReport",
    "VerifyHints",
    "chart_docker_config",
    "load_values",
    "next_step",
    "redact",
    "short_errors",
    "verify",
    "verify_step",
    "write_values",
]
__version__ = "0.1.0"
