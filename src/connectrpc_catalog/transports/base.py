"""Value types shared by the invoker and its transports (re-exported by `invoker`)."""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "CODE_NAMES",
    "CallEvent",
    "CallStatus",
    "CallTarget",
    "MethodRef",
    "Pair",
    "Protocol",
    "RawDetail",
    "ResponseHeaders",
    "ResponseMessage",
    "TLSConfig",
    "UnaryResult",
    "code_from_http_status",
    "code_name",
    "decode_bin",
    "failure",
    "header_pairs",
    "normalize_bin",
]

Pair = tuple[str, str]
"""One header or trailer: lower-case key and value (`-bin` values as padded base64)."""

CODE_NAMES: tuple[str, ...] = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""gRPC status names indexed by code number."""

OK, CANCELLED, UNKNOWN, DEADLINE_EXCEEDED = 0, 1, 2, 4
RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE = 8, 13, 14


def code_name(code: int) -> str:
    """The gRPC name of a status code number ("CODE_42" for codes outside the table)."""
    return CODE_NAMES[code] if 0 <= code < len(CODE_NAMES) else f"CODE_{code}"


_HTTP_TO_CODE = {
    400: INTERNAL,
    401: 16,
    403: 7,
    404: 12,
    429: UNAVAILABLE,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: UNAVAILABLE,
}


def code_from_http_status(status: int) -> int:
    """The gRPC code for an HTTP status without a protocol-level error (gRPC/Connect mapping)."""
    return _HTTP_TO_CODE.get(status, UNKNOWN)


def decode_bin(value: str) -> bytes | None:
    """A base64 value (padded or not, standard or URL alphabet) as bytes; None if invalid."""
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def normalize_bin(value: str) -> str:
    """Re-encode a base64 `-bin` header value as padded standard base64 (as is if invalid)."""
    raw = decode_bin(value)
    return value if raw is None else base64.b64encode(raw).decode()


def header_pairs(items: list[tuple[str, str]]) -> tuple[Pair, ...]:
    """Wire header pairs with `-bin` values normalized (see `normalize_bin`)."""
    return tuple((k, normalize_bin(v) if k.endswith("-bin") else v) for k, v in items)


class Protocol(enum.StrEnum):
    """The wire protocol of a call."""

    CONNECT = "connect"
    GRPC = "grpc"
    GRPC_WEB = "grpc-web"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTarget:
    """Where and how a call goes: host, port, path prefix, protocol, TLS and Connect codec."""

    host: str
    port: int
    path_prefix: str = ""
    protocol: Protocol = Protocol.CONNECT
    tls: TLSConfig | None = None
    codec: str = "proto"

    @property
    def authority(self) -> str:
        """host:port, with brackets around an IPv6 host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Scheme, authority and path prefix, without a trailing slash."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.authority}{self.path_prefix}"

    @classmethod
    def parse(
        cls,
        endpoint: str,
        *,
        protocol: Protocol,
        use_tls: bool = False,
        tls: TLSConfig | None = None,
        codec: str = "proto",
    ) -> CallTarget:
        """Parse `host:port` or an `http(s)://host[:port][/prefix]` URL; raises ValueError.

        An `https` URL or `use_tls` turns TLS on (with `tls`, or default settings).
        """
        text = endpoint.strip()
        if not text:
            raise ValueError("endpoint is empty")
        if "://" in text:
            parts = urlsplit(text)
            if parts.scheme not in ("http", "https"):
                raise ValueError(f"endpoint scheme {parts.scheme!r} is not http or https")
            if parts.query or parts.fragment:
                raise ValueError("endpoint URL must not have a query or a fragment")
            secure = parts.scheme == "https" or use_tls
            prefix = parts.path.rstrip("/")
            try:
                port = parts.port
            except ValueError as exc:
                raise ValueError(f"endpoint {endpoint!r} has an invalid port") from exc
            host = parts.hostname or ""
            if port is None:
                port = 443 if parts.scheme == "https" else 80
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
        )


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RawDetail:
    """One error detail as sent: an Any's type URL and serialized value."""

    type_url: str
    value: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStatus:
    """How a call ended: gRPC code, message, details, trailers and a readable error."""

    code: int
    message: str = ""
    details: tuple[RawDetail, ...] = ()
    trailers: tuple[Pair, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the code is OK."""
        return self.code == OK

    @property
    def name(self) -> str:
        """The code's gRPC name."""
        return code_name(self.code)


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


def failure(code: int, error: str, message: str = "") -> CallStatus:
    """A status for a failure the catalog observed itself (no upstream status)."""
    return CallStatus(code=code, message=message or error, error=error)


def stream_head(
    headers: tuple[Pair, ...], *, content_type: str, encoding_header: str, server: str
) -> tuple[str, list[CallEvent], bool]:
    """Check a streaming response's content type: (encoding, events, done).

    When the content type is not `content_type…`, the events end the call with UNKNOWN and
    a message asking whether the endpoint really is a `server`.
    """
    found = encoding = ""
    for key, value in headers:
        if key == "content-type":
            found = value
        elif key == encoding_header:
            encoding = value.strip().lower()
    events: list[CallEvent] = [ResponseHeaders(headers=headers)]
    if not found.lower().startswith(content_type):
        events.append(
            failure(UNKNOWN, f"upstream answered with content-type {found!r}: is it a {server}?")
        )
        return encoding, events, True
    return encoding, events, False
