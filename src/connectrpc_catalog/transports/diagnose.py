"""What a plaintext server speaks (h2c, HTTP/1.1 or TLS), and hints for mismatches.

`probe` opens one TCP connection, sends the HTTP/2 connection preface with an empty
SETTINGS frame, and reads the first bytes back; `classify_reply` (I/O-free) reads them:
an HTTP/2 server answers with a frame (its SETTINGS, or a GOAWAY), an HTTP/1.x server
with text (a status line such as "HTTP/1.1 400 …", or an HTTP/0.9-style error page), a
TLS server with a TLS record (an alert). The probe carries no request, so nothing runs
on the server twice. The plaintext HTTP transports use it once per endpoint to pick
h2c or HTTP/1.1; every transport uses it after a connection-level failure to say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import ssl

from .tls import fetch_server_certificate

__all__ = [
    "PREFACE",
    "Speaks",
    "classify_reply",
    "dns_hint",
    "explain",
    "mismatch_hint",
    "probe",
    "tls_hint",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
"""The HTTP/2 client connection preface followed by an empty SETTINGS frame."""

_FRAME_HEADER = 9
_GOODBYE = (
    b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"  # SETTINGS ACK
    b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + bytes(8)  # GOAWAY: no stream, NO_ERROR
)
_H2_FIRST_FRAMES = frozenset((0x04, 0x07))  # SETTINGS (required first), GOAWAY
_TLS_RECORDS = frozenset((0x15, 0x16))  # alert, handshake
_READ_BYTES = 64


class Speaks(enum.StrEnum):
    """What a plaintext port answered the HTTP/2 preface with."""

    HTTP2 = "h2c"
    HTTP1 = "http/1.1"
    TLS = "tls"
    UNKNOWN = "unknown"


def classify_reply(data: bytes) -> Speaks:
    """What the first bytes a server sent back to `PREFACE` say it speaks."""
    if len(data) >= 2 and data[0] in _TLS_RECORDS and data[1] == 0x03:
        return Speaks.TLS
    if data and (0x20 <= data[0] < 0x7F or data[0] in b"\r\n"):
        # Text: a status line ("HTTP/1.1 400 …"), or an HTTP/0.9-style error page (what
        # Python's http.server sends for "PRI * HTTP/2.0"). A first HTTP/2 frame starts
        # with a zero byte (its length is small), a TLS record with 0x15 or 0x16.
        return Speaks.HTTP1
    if len(data) >= _FRAME_HEADER and data[3] in _H2_FIRST_FRAMES:
        stream_id = int.from_bytes(data[5:9], "big") & 0x7FFF_FFFF
        if stream_id == 0:
            return Speaks.HTTP2
    return Speaks.UNKNOWN


async def probe(host: str, port: int, *, connect_timeout: float, read_timeout: float) -> Speaks:
    """Ask a plaintext port what it speaks (see the module docstring).

    A port that closes without a word (or stays silent) is offered a TLS handshake: many
    TLS servers drop a plaintext client without sending an alert. Raises OSError
    (refused, unresolvable host) or TimeoutError when it cannot connect; a server that
    says nothing intelligible is UNKNOWN.
    """
    data = await _first_bytes(host, port, connect_timeout, read_timeout)
    speaks = classify_reply(data)
    if not data and await _takes_tls(host, port, connect_timeout + read_timeout):
        return Speaks.TLS
    return speaks


async def _first_bytes(
    host: str, port: int, connect_timeout: float, read_timeout: float
) -> bytes:
    async with asyncio.timeout(connect_timeout):
        reader, writer = await asyncio.open_connection(host, port)
    data = b""
    try:
        writer.write(PREFACE)
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(read_timeout):
                await writer.drain()
                while len(data) < _FRAME_HEADER:
                    chunk = await reader.read(_READ_BYTES)
                    if not chunk:
                        break
                    data += chunk
                if classify_reply(data) is Speaks.HTTP2:
                    writer.write(_GOODBYE)  # leave as an HTTP/2 client does
                    await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
    return data


async def _takes_tls(host: str, port: int, within: float) -> bool:
    """Whether a TLS handshake (without verification) with the port succeeds."""
    try:
        async with asyncio.timeout(within):
            await fetch_server_certificate(host, port, host)
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    return True


_EXPLAIN_TIMEOUT = 2.0


async def explain(host: str, port: int, *, tried: str) -> str:
    """After a connection-level failure: probe the port and return `mismatch_hint` for
    what it speaks ("" when the probe cannot connect or finds no mismatch)."""
    try:
        speaks = await probe(
            host, port, connect_timeout=_EXPLAIN_TIMEOUT, read_timeout=_EXPLAIN_TIMEOUT
        )
    except (OSError, TimeoutError):
        return ""
    return mismatch_hint(speaks, tried=tried)


def mismatch_hint(speaks: Speaks, *, tried: str) -> str:
    """A hint for a call that failed at the connection level, given what the server
    speaks; `tried` is what the failed call used: "grpc", "h2c", "http/1.1", or "tls"
    (a TLS handshake that failed for a reason other than the certificate)."""
    if tried == "tls":
        return tls_hint(plaintext=False) if speaks in (Speaks.HTTP1, Speaks.HTTP2) else ""
    if speaks is Speaks.TLS:
        return tls_hint(plaintext=True)
    if speaks is Speaks.HTTP1 and tried == "grpc":
        return (
            "the server speaks only HTTP/1.1 and gRPC needs HTTP/2: "
            "try the Connect or the gRPC-Web transport"
        )
    if speaks is Speaks.HTTP1 and tried == "h2c":
        return "the server speaks only HTTP/1.1, not HTTP/2 (h2c): let the catalog use HTTP/1.1"
    if speaks is Speaks.HTTP2 and tried == "http/1.1":
        return (
            "the server speaks only HTTP/2 (h2c), not HTTP/1.1: use HTTP/2, "
            "or try the gRPC transport"
        )
    return ""


def tls_hint(*, plaintext: bool) -> str:
    """A hint for TLS spoken on one side only (`plaintext`: the catalog did not use TLS)."""
    if plaintext:
        return "the server expects TLS on this port: use an https:// endpoint or turn on useTls"
    return (
        "the server does not speak TLS on this port: use an http:// endpoint "
        "(or host:port) without useTls"
    )


_DNS_WORDS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "getaddrinfo failed",
    "dns resolution failed",
    "domain name not found",
    "could not resolve",
)


def dns_hint(error: BaseException | str, host: str) -> str:
    """A hint when an error (or its text) says the host name does not resolve; else ""."""
    if isinstance(error, BaseException):
        if _has_gaierror(error):
            return f"the host name {host!r} does not resolve: check the endpoint"
        error = str(error)
    lower = error.lower()
    if any(word in lower for word in _DNS_WORDS):
        return f"the host name {host!r} does not resolve: check the endpoint"
    return ""


def _has_gaierror(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
