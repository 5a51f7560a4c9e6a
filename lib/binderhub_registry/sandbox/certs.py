"""The certificates and keys of :mod:`.tls`, made with ``cryptography``.

EC P-256 keys keep start-up fast. The CA signs one leaf for 127.0.0.1, ::1 and
localhost (the fake clouds and the registries share it); a separate key signs
registry tokens, published to docker-registry as ``rootcertbundle``.

Run as ``__main__`` with a directory, it writes the files there and prints the
token key's id: the server runs it so while it imports its web stack, on the
other core (``cryptography`` alone is ~75 ms to import).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .files import write_private

__all__ = ["libtrust_key_id", "write_material"]


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key id docker-registry derives from a public key (libtrust fingerprint)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _service_key_pair() -> dict[str, bytes]:
    """A spare RSA key pair for a seeded service account (Google's deployer), made here
    rather than on the server's start path: RSA 2048 generation takes 20 to 90 ms."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"service.key": _pem_key(key), "service.pub": public}


def write_material(directory: Path) -> str:
    """Write a CA, a loopback server certificate and key, a token-signing certificate and
    key, and a spare RSA key pair (the files :class:`.tls.Material` names); return the
    token key's id."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert(
        "binderhub-registry sandbox CA",
        ca_key,
        _name("binderhub-registry sandbox CA"),
        ca_key,
        ca=True,
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    leaf = _cert("127.0.0.1", leaf_key, ca_cert.subject, ca_key, ca=False, sans=sans)
    token_key = ec.generate_private_key(ec.SECP256R1())
    token_cert = _cert(
        "sandbox token signer", token_key, _name("sandbox token signer"), token_key, ca=False
    )

    pem = serialization.Encoding.PEM
    files = {
        "ca.crt": ca_cert.public_bytes(pem),
        "server.crt": leaf.public_bytes(pem) + ca_cert.public_bytes(pem),
        "server.key": _pem_key(leaf_key),
        "token.crt": token_cert.public_bytes(pem),
        "token.key": _pem_key(token_key),
        **_service_key_pair(),
    }
    for name, data in files.items():  # fresh files, never written through a planted link
        write_private(directory / name, data, 0o600 if name.endswith(".key") else 0o644)
    return libtrust_key_id(token_key.public_key())


if __name__ == "__main__":
    print(write_material(Path(sys.argv[1])))
