"""TLS material for the upstream servers: trustme CA-issued and self-signed certificates."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTLS:
    """A server's key and chain; `client_ca_pem` set means client certificates are required."""

    key_pem: bytes
    cert_chain_pem: bytes
    client_ca_pem: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSMaterial:
    """What a test needs for TLS: the server side, the CA and a client certificate."""

    server: ServerTLS
    ca_pem: str
    client_cert_pem: str
    client_key_pem: str


def issue(*, mutual: bool) -> TLSMaterial:
    """A fresh trustme CA with a server cert for localhost/127.0.0.1 and a client cert."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    client_cert = ca.issue_cert("client@example.test")
    ca_pem = ca.cert_pem.bytes()
    return TLSMaterial(
        server=ServerTLS(
            key_pem=server_cert.private_key_pem.bytes(),
            cert_chain_pem=b"".join(blob.bytes() for blob in server_cert.cert_chain_pems),
            client_ca_pem=ca_pem if mutual else None,
        ),
        ca_pem=ca_pem.decode(),
        client_cert_pem=b"".join(b.bytes() for b in client_cert.cert_chain_pems).decode(),
        client_key_pem=client_cert.private_key_pem.bytes().decode(),
    )


def self_signed(common_name: str = "localhost") -> ServerTLS:
    """A self-signed server certificate (its own issuer) for localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(common_name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return ServerTLS(
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert_chain_pem=cert.public_bytes(serialization.Encoding.PEM),
    )
