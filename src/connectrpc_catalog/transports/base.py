"""The transport contract: what a call is, what it yields, and the one `Transport` Protocol.

Every transport (gRPC, Connect, gRPC-Web, …) takes the same `Call` — target, method
path, metadata and deadline — and yields the same events; the invoker never looks at
which one it holds. The path prefix of a target is applied in one place, `Call.path`.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from collections.abc import AsyncGenerator, AsyncIterable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, Self
from urllib.parse import urlsplit

from .status import CallStatus, Pair, RawDetail

__all__ = [
    "Call",
    "CallEvent",
    "CallStatus",
    "CallTarget",
    "HttpVersion",
    "Metadata",
    "MethodRef",
    "Pair",
    "Payloads",
    "RawDetail",
    "ResponseHeaders",
    "ResponseMessage",
    "TLSConfig",
    "Transport",
    "UnaryResult",
    "WireProtocol",
    "grpc_address",
]

Metadata = Sequence[tuple[str, str | bytes]]
"""Request headers: lower-case keys; `-bin` keys carry raw bytes."""


Payloads = Sequence[bytes] | AsyncIterable[bytes]
"""Request messages of a stream: a list sent at once, or an async iterator whose items are
sent as they come (the stream half-closes when it ends) — what interactive calls use."""


async def first_payload(payloads: Payloads) -> bytes:
    """The one request message of a call without client streaming; ValueError otherwise."""
    if isinstance(payloads, Sequence):
        if len(payloads) != 1:
            raise ValueError("a method without client streaming takes exactly one message")
        return payloads[0]
    async for payload in payloads:
        return payload
    raise ValueError("a method without client streaming takes exactly one message")


class WireProtocol(enum.StrEnum):
    """The wire protocol of a call."""

    CONNECT = "connect"
    GRPC = "grpc"
    GRPC_WEB = "grpc-web"


class HttpVersion(enum.StrEnum):
    """The HTTP version Connect and gRPC-Web use (gRPC is always HTTP/2).

    AUTO: with TLS, ALPN picks (h2 or http/1.1); on plaintext the transport asks the
    server once (HTTP/2 prior knowledge, h2c, or HTTP/1.1) and remembers the answer.
    HTTP1 and HTTP2 force one version (HTTP2 on plaintext is h2c prior knowledge).
    """

    AUTO = "auto"
    HTTP1 = "http/1.1"
    HTTP2 = "h2"


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSConfig:
    """TLS settings of a target; PEM strings are empty when unused."""

    server_name: str = ""
    ca_pem: str = ""
    client_cert_pem: str = ""
    client_key_pem: str = ""
    insecure_skip_verify: bool = False
    fingerprint: str = field(init=False, default="")

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        for part in (self.ca_pem, self.client_cert_pem, self.client_key_pem):
            digest.update(part.encode())
            digest.update(b"\0")
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    @property
    def key(self) -> str:
        """What identifies these settings for pooling (the PEMs only by their hash)."""
        return f"{self.server_name}|{self.insecure_skip_verify}|{self.fingerprint}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTarget:
    """Where and how a call goes: host, port, path prefix, protocol, TLS, codec, HTTP."""

    host: str
    port: int
    path_prefix: str = ""
    protocol: WireProtocol = WireProtocol.CONNECT
    tls: TLSConfig | None = None
    codec: str = "proto"
    http: HttpVersion = HttpVersion.AUTO
    dial: str | None = None
    """The address to connect to (an IP the access policy checked), or None to resolve
    `host` when connecting. `host` still names the server: Host/:authority, TLS SNI and
    the certificate check use it, never `dial`."""

    @property
    def connect_host(self) -> str:
        """What a connection goes to: `dial` when set, else `host`."""
        return self.dial or self.host

    @property
    def grpc_address(self) -> str:
        """The grpc channel target: `ipv4:`/`ipv6:` of `dial` (no second resolution), or
        the authority."""
        return grpc_address(self.host, self.port, self.dial)

    @property
    def authority(self) -> str:
        """host:port, with brackets around an IPv6 host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """Scheme and authority (the path prefix belongs to `Call.path`)."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.authority}"

    @property
    def pool_key(self) -> Hashable:
        """What two targets must share to share a transport: protocol, authority, dialled
        address, TLS settings and HTTP version (not the path prefix or the codec, set per
        call)."""
        tls = "" if self.tls is None else self.tls.key
        return (self.protocol, self.authority, self.dial, tls, self.http)

    @classmethod
    def parse(
        cls,
        endpoint: str,
        *,
        protocol: WireProtocol,
        use_tls: bool = False,
        tls: TLSConfig | None = None,
        codec: str = "proto",
        http: HttpVersion = HttpVersion.AUTO,
    ) -> CallTarget:
        """Parse `host:port` or an `http(s)://host[:port][/prefix]` URL; raises ValueError.

        An `https` URL or `use_tls` turns TLS on (with `tls`, or default settings).
        """
        text = endpoint.strip()
        if not text:
            raise ValueError("endpoint is empty")
        if "://" in text:
            host, port, prefix, secure = _parse_url(text, endpoint)
            secure = secure or use_tls
        else:
            secure = use_tls
            prefix = ""
            host, port = _split_host_port(text)
        if not host:
            raise ValueError(f"endpoint {endpoint!r} has no host")
        if any(c.isspace() or c in "/?#@" for c in host):
            raise ValueError(f"endpoint {endpoint!r} has an invalid host")
        if not 0 < port < 65536:
            raise ValueError(f"endpoint {endpoint!r} has an invalid port")
        return cls(
            host=host,
            port=port,
            path_prefix=prefix,
            protocol=protocol,
            tls=(tls or TLSConfig()) if secure else None,
            codec=codec,
            http=http,
        )


def grpc_address(host: str, port: int, dial: str | None) -> str:
    """A grpc channel target for `host:port`, connecting to `dial` when it is set (the
    `ipv4:`/`ipv6:` schemes take the address as is: grpc resolves nothing)."""
    if not dial:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"ipv6:[{dial}]:{port}" if ":" in dial else f"ipv4:{dial}:{port}"


def _parse_url(text: str, endpoint: str) -> tuple[str, int, str, bool]:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"endpoint scheme {parts.scheme!r} is not http or https")
    if parts.query or parts.fragment:
        raise ValueError("endpoint URL must not have a query or a fragment")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"endpoint {endpoint!r} has an invalid port") from exc
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", port, parts.path.rstrip("/"), parts.scheme == "https"


def _split_host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or not port_text:
            raise ValueError(f"endpoint {text!r} must be [ipv6]:port")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"endpoint {text!r} must be host:port or a URL")
        if ":" in host:
            raise ValueError(f"endpoint {text!r}: write an IPv6 address as [address]:port")
    if not port_text.isdigit():
        raise ValueError(f"endpoint {text!r} has an invalid port")
    return host, int(port_text)


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodRef:
    """A method as the wire sees it: `/package.Service/Method` and its streaming kind."""

    path: str
    client_streaming: bool = False
    server_streaming: bool = False

    @property
    def is_unary(self) -> bool:
        """Neither side streams."""
        return not (self.client_streaming or self.server_streaming)

    @property
    def kind(self) -> str:
        """The kind: unary, server-streaming, client-streaming or bidi-streaming."""
        if self.client_streaming:
            return "bidi-streaming" if self.server_streaming else "client-streaming"
        return "server-streaming" if self.server_streaming else "unary"


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One call as every transport takes it: target, method, metadata and deadline."""

    target: CallTarget
    method: MethodRef
    metadata: Metadata = ()
    deadline: float
    """When the call must end, on the event loop's clock (`loop.time()`)."""

    @classmethod
    def start(
        cls, target: CallTarget, method: MethodRef, metadata: Metadata, timeout_s: float
    ) -> Call:
        """A call whose deadline is `timeout_s` from now (needs a running loop)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        return cls(target=target, method=method, metadata=metadata, deadline=deadline)

    @property
    def path(self) -> str:
        """The request path: the target's prefix, then `/package.Service/Method`."""
        return self.target.path_prefix + self.method.path

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHeaders:
    """The response headers of a call, in wire order."""

    headers: tuple[Pair, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseMessage:
    """One response message, still encoded with the call's codec."""

    payload: bytes


CallEvent = ResponseHeaders | ResponseMessage | CallStatus
"""What a streamed call yields: headers (at most once), messages, then one final status."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnaryResult:
    """The outcome of a unary call; `payload` is None unless the status is OK."""

    headers: tuple[Pair, ...]
    payload: bytes | None
    status: CallStatus


class Transport(Protocol):
    """One upstream connection (or pool of them) for one `CallTarget.pool_key`.

    Upstream failures — unreachable, TLS, deadline, a non-OK status — are returned as a
    `CallStatus`, never raised. `open` may raise `CallRefused` (unusable TLS material).
    """

    label: ClassVar[str]
    """The transport's name in messages ("gRPC-Web")."""
    client_streams: ClassVar[bool]
    """Whether it can carry client and bidi streams."""

    @classmethod
    async def open(cls, target: CallTarget) -> Self:
        """A transport for the target (no connection is made yet)."""
        ...

    async def unary(self, call: Call, payload: bytes) -> UnaryResult:
        """One unary call."""
        ...

    def stream(self, call: Call, payloads: Payloads) -> AsyncGenerator[CallEvent, None]:
        """A streaming call (client, server or bidi): sends `payloads` (a list, or an async
        iterator read while the call runs), half-closes when they end, and yields headers
        (at most once), messages, then exactly one `CallStatus`. Closing the iterator
        early cancels the call."""
        ...

    async def close(self) -> None:
        """Close every connection (cancelling calls still running)."""
        ...
