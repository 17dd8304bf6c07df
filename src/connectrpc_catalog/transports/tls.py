"""TLS helpers: SSL contexts for httpx, and the certificate fetch behind gRPC skip-verify.

grpcio has no "skip verification" switch. For `insecure_skip_verify` over gRPC the
invoker first connects with verification off, takes the certificate the server
presents, and then trusts exactly that certificate (as the only root), with the
name checked overridden to one the certificate carries. This works for self-signed
certificates, the usual development case; a leaf issued by an unknown CA is not a
trust anchor by itself, so such servers need `ca_cert_pem` over gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import ssl
import tempfile

from .base import TLSConfig
from .problems import InvalidRequestError

__all__ = [
    "TLSMaterialError",
    "build_ssl_context",
    "fetch_server_certificate",
    "validate_pems",
]

_CONNECT_TIMEOUT = 10.0


class TLSMaterialError(InvalidRequestError):
    """The PEM material of a request does not load; `field` and the message say which."""


def build_ssl_context(tls: TLSConfig, *, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client SSLContext for the settings (blocking); TLSMaterialError if unusable."""
    if tls.insecure_skip_verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif tls.ca_pem:
        try:
            ctx = ssl.create_default_context(cadata=tls.ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise TLSMaterialError(
                "caCertPem is not a valid PEM certificate bundle", field="caCertPem"
            ) from exc
    else:
        ctx = ssl.create_default_context()
    if tls.client_cert_pem or tls.client_key_pem:
        _load_client_cert(ctx, tls)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def validate_pems(tls: TLSConfig) -> None:
    """Raise TLSMaterialError when the PEM material does not load (blocking)."""
    build_ssl_context(TLSConfig(
        ca_pem=tls.ca_pem,
        client_cert_pem=tls.client_cert_pem,
        client_key_pem=tls.client_key_pem,
    ))


def _load_client_cert(ctx: ssl.SSLContext, tls: TLSConfig) -> None:
    if not (tls.client_cert_pem and tls.client_key_pem):
        missing = "clientKeyPem" if tls.client_cert_pem else "clientCertPem"
        raise TLSMaterialError(
            "mutual TLS needs both clientCertPem and clientKeyPem", field=missing
        )
    # ssl can only load a certificate chain from a file: write a private (0600) temp
    # file, load it, and delete it at once.
    fd, path = tempfile.mkstemp(prefix="catalog-client-", suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(tls.client_cert_pem.strip() + "\n" + tls.client_key_pem.strip() + "\n")
        ctx.load_cert_chain(path)
    except (ssl.SSLError, ValueError) as exc:
        raise TLSMaterialError(
            "clientCertPem/clientKeyPem are not a valid PEM certificate and matching key",
            field="clientCertPem",
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


async def fetch_server_certificate(host: str, port: int, sni: str) -> tuple[bytes, str]:
    """The PEM certificate the server presents and a name it is valid for.

    Raises OSError / ssl.SSLError / TimeoutError when the server cannot be reached.
    """
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    server_hostname = sni if not _is_ip(sni) else None
    async with asyncio.timeout(_CONNECT_TIMEOUT):
        _, writer = await asyncio.open_connection(
            host, port, ssl=ctx, server_hostname=server_hostname or ""
        )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der: bytes | None = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    names = certificate_names(der)
    name = sni if sni in names or not names else names[0]
    return ssl.DER_cert_to_PEM_cert(der).encode(), name


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- a minimal DER reader: just enough to list a certificate's subjectAltNames and CN.

_SAN_OID = bytes.fromhex("551d11")  # 2.5.29.17
_CN_OID = bytes.fromhex("550403")  # 2.5.4.3


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at `pos`."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = _tlv(data, pos)
        out.append((tag, cstart, cend))
        pos = cend
    return out


def certificate_names(der: bytes) -> list[str]:
    """DNS names and IP addresses from subjectAltName, then the subject CN ([] if unparsable)."""
    try:
        return _names(der)
    except (ValueError, IndexError):
        return []


def _names(der: bytes) -> list[str]:
    _, cstart, cend = _tlv(der, 0)
    _, tstart, tend = _children(der, cstart, cend)[0]  # tbsCertificate
    fields = _children(der, tstart, tend)
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    names: list[str] = []
    # serial, signature, issuer, validity, subject, spki, then optional [1] [2] [3]
    for tag, start, end in fields[6:]:
        if tag != 0xA3:
            continue
        (_, estart, eend), = _children(der, start, end)
        for _, xstart, xend in _children(der, estart, eend):
            parts = _children(der, xstart, xend)
            if der[parts[0][1] : parts[0][2]] != _SAN_OID:
                continue
            _, ostart, oend = parts[-1]  # OCTET STRING holding GeneralNames
            (_, gstart, gend), = _children(der, ostart, oend)
            for gtag, nstart, nend in _children(der, gstart, gend):
                value = der[nstart:nend]
                if gtag == 0x82:  # dNSName
                    names.append(value.decode("ascii", "replace"))
                elif gtag == 0x87 and len(value) in (4, 16):  # iPAddress
                    names.append(str(ipaddress.ip_address(value)))
    subject = fields[4]
    for _, rstart, rend in _children(der, subject[1], subject[2]):
        for _, astart, aend in _children(der, rstart, rend):
            oid, val = _children(der, astart, aend)[:2]
            if der[oid[1] : oid[2]] == _CN_OID:
                cn = der[val[1] : val[2]].decode("utf-8", "replace")
                if cn not in names:
                    names.append(cn)
    return names
