"""The registries: one provider module each, all of one shape, found through a registry.

The shape is :class:`~.contract.Provider` plus a :class:`~.contract.Connection`
subclass (see :mod:`.contract`). Providers are registered by key, as papermill
registers its engines; :func:`get` imports one on first use, so the heavy SDKs
of the others are never loaded.

Adding a registry: write ``providers/<key>.py`` (parameters, ``validate`` made by
``validator``,
``sign_in``, its guide steps, a Connection with ``values``, ``deletions`` and
``retire``), register it in :data:`PROVIDERS` and in the ``TYPE_CHECKING`` block
below it (so mypy holds it to :class:`Provider`), and add its notebook and its
sandbox backend. The contract test suite then runs over it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from .contract import (
    COMMON_PARAMETERS,
    CommonParams,
    Connection,
    Deletion,
    Provider,
    Record,
    check_parameters,
    creates,
    validator,
)

__all__ = [
    "COMMON_PARAMETERS",
    "PROVIDERS",
    "CommonParams",
    "Connection",
    "Deletion",
    "Provider",
    "Record",
    "check_parameters",
    "creates",
    "get",
    "keys",
    "register",
    "validator",
]

#: Registered providers: key -> module path. Keys are also what ``binderhub-registry.json`` names.
PROVIDERS: dict[str, str] = {
    "dockerhub": "binderhub_registry.providers.dockerhub",
    "azure": "binderhub_registry.providers.azure",
    "google": "binderhub_registry.providers.google",
    "harbor": "binderhub_registry.providers.harbor",
    "ovh": "binderhub_registry.providers.ovh",
    "ecr": "binderhub_registry.providers.ecr",
}

# The contract checked: mypy compares each registered module with :class:`Provider` here (``get``
# can only cast). Under TYPE_CHECKING, so no provider's SDKs are loaded at run time; a registry
# added to PROVIDERS is added here too (tests/test_provider_types.py checks the two agree).
if TYPE_CHECKING:
    from . import azure, dockerhub, ecr, google, harbor, ovh

    # one line each: mypy's note then names the members a module gets wrong
    _dockerhub: Provider = dockerhub
    _azure: Provider = azure
    _google: Provider = google
    _harbor: Provider = harbor
    _ovh: Provider = ovh
    _ecr: Provider = ecr


def register(key: str, module: str) -> None:
    """Register provider ``module`` (a dotted path) under ``key``."""
    PROVIDERS[key] = module


def keys() -> list[str]:
    """The registered provider keys, in registration order."""
    return list(PROVIDERS)


def get(key: str) -> Provider:
    """The provider module registered as ``key`` (imported on first use).

    Raises KeyError for an unknown key, ImportError when its optional extra is missing.
    """
    return cast(Provider, importlib.import_module(PROVIDERS[key]))
