"""The errors binderhub-registry raises, each one a thing a person can act on.

The hierarchy::

    BinderHubRegistryError          root: catch this to catch them all
    ├── InvalidParameter            a parameter broke its rule (no cloud call was made)
    ├── MissingCredentials          no secret was found; says where to put one
    ├── AuthenticationFailed        the cloud refused the secret it was given
    ├── PermissionDenied            signed in, but not allowed to do the step
    ├── CloudError                  the cloud answered with an error we do not retry
    │   └── TransientCloudError     429, 5xx, reset or timeout: the step runner retries it
    ├── VerificationFailed          the BinderHub values do not work; carries a diagnosis
    └── SandboxError                the local sandbox could not start or be reached

Every message is one line and names what to change.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "BinderHubRegistryError",
    "CloudError",
    "InvalidParameter",
    "MissingCredentials",
    "PermissionDenied",
    "SandboxError",
    "TransientCloudError",
    "VerificationFailed",
]


class BinderHubRegistryError(Exception):
    """Root of every error this package raises on purpose."""


class InvalidParameter(BinderHubRegistryError, ValueError):
    """A notebook parameter does not follow its rule; raised before any cloud call."""

    def __init__(self, name: str, rule: str, value: object = None) -> None:
        self.name = name
        self.rule = rule
        self.value = value
        super().__init__(f"parameter {name!r}: {rule} (got {value!r})")


class MissingCredentials(BinderHubRegistryError):
    """No secret was available; the message says which variable to set or how to sign in."""

    def __init__(self, what: str, how: str) -> None:
        self.what = what
        self.how = how
        super().__init__(f"{what}: {how}")


class AuthenticationFailed(BinderHubRegistryError):
    """The cloud rejected the credentials (wrong password, revoked or expired token)."""


class PermissionDenied(BinderHubRegistryError):
    """Signed in, but the account may not do this (not an org member, missing role)."""


class CloudError(BinderHubRegistryError):
    """The cloud answered with an error that retrying will not fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class TransientCloudError(CloudError):
    """A fault worth retrying: 429, 5xx, a dropped connection or a timeout."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status)


class VerificationFailed(BinderHubRegistryError):
    """The emitted values fail BinderHub's handshake or a push; ``diagnosis`` says what to fix."""

    def __init__(self, check: str, diagnosis: str) -> None:
        self.check = check
        self.diagnosis = diagnosis
        super().__init__(f"{check}: {diagnosis}")


class SandboxError(BinderHubRegistryError):
    """The local sandbox is missing, could not start, or did not answer."""
