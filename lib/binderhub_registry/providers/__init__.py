"""One module per registry, each with the same shape.

Every provider module defines:

- ``NAME``, ``NOTEBOOK``: display name and notebook stem (default ``output_dir``);
- ``PARAMETERS``: the parameter rules (see :mod:`binderhub_registry.params`);
- ``Params`` and ``validate(**values) -> Params``: checked before any cloud call;
- ``sign_in(params) -> Result[Connection]``: sandbox or real endpoints and credentials;
- ``ensure_*`` steps, each ``(connection) -> Result``: look up, create only if missing;
- ``registry_values(connection, credential) -> RegistryValues``;
- ``teardown(connection) -> Result``: removes only what the notebook recorded creating.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["Record"]


class Record:
    """What a notebook created, kept in ``output_dir/binderhub-registry.json`` (no secrets).

    Reruns read it to reuse resources, teardown to delete only what was created.
    """

    FILE = "binderhub-registry.json"

    def __init__(self, output_dir: Path, provider: str) -> None:
        self.path = output_dir / self.FILE
        self.provider = provider
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        self.created: dict[str, Any] = (
            data.get("created", {}) if data.get("provider") == provider else {}
        )

    def set(self, kind: str, value: Any) -> None:
        """Record a created resource (and save at once, so a crash right after keeps it)."""
        self.created[kind] = value
        self.save()

    def forget(self, kind: str) -> None:
        """Drop a deleted resource."""
        self.created.pop(kind, None)
        self.save()

    def save(self) -> None:
        """Write the record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(
            json.dumps({"provider": self.provider, "created": self.created}, indent=2)
        )
