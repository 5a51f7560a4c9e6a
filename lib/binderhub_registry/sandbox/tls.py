"""TLS and token-signing material, made fresh at every sandbox start.

The files (CA, loopback server certificate and key, token-signing certificate and
key, a spare RSA key pair for a seeded service account) are made by
:mod:`.certs`. The server has them made in a child process (:func:`start_making`)
while it imports its web stack, and picks them up with :func:`finish_making`: on
two cores that takes ``cryptography``'s import, and RSA key generation, off the
cold start. :func:`generate` makes them in this process.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .bootstrap import python_argv
from .files import read_private

__all__ = ["Material", "finish_making", "generate", "start_making"]


@dataclass(frozen=True)
class Material:
    """Paths of the files, the token-signing key in PEM with its libtrust key id, and the
    spare RSA pair (PKCS#8 and SubjectPublicKeyInfo PEM) a backend may seed an account with."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    token_cert_file: Path
    token_key_pem: bytes
    token_kid: str
    service_key_pem: bytes
    service_public_pem: bytes

    @classmethod
    def load(cls, directory: Path, token_kid: str) -> Material:
        """The material written in ``directory``, whose token key has id ``token_kid``."""
        return cls(
            ca_file=directory / "ca.crt",
            cert_file=directory / "server.crt",
            key_file=directory / "server.key",
            token_cert_file=directory / "token.crt",
            token_key_pem=read_private(directory / "token.key"),
            token_kid=token_kid,
            service_key_pem=read_private(directory / "service.key"),
            service_public_pem=read_private(directory / "service.pub", private=False),
        )


def generate(directory: Path) -> Material:
    """Make the material in ``directory``, in this process."""
    from .certs import write_material  # cryptography: only where certificates are made

    directory.mkdir(parents=True, exist_ok=True)
    return Material.load(directory, write_material(directory))


def start_making(directory: Path) -> subprocess.Popen[str]:
    """Start a child that makes the material in ``directory`` (see :func:`finish_making`)."""
    directory.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        python_argv("binderhub_registry.sandbox.certs", str(directory)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


def finish_making(child: subprocess.Popen[str], directory: Path) -> Material:
    """Wait for :func:`start_making`'s child; its material, or RuntimeError if it failed."""
    out, _ = child.communicate(timeout=60)
    if child.returncode != 0:
        raise RuntimeError(f"making the sandbox's certificates failed ({child.returncode})")
    return Material.load(directory, out.strip())
