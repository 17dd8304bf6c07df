"""Binary gRPC-Web's wire details: request headers, trailer frames, stream parsing."""

from __future__ import annotations

from urllib.parse import unquote

from .base import CallEvent, Pair, ResponseHeaders, ResponseMessage, UnaryResult
from .envelope import FLAG_COMPRESSED, EnvelopeError, EnvelopeReader, decompress, envelope
from .errdetails import parse_status_details
from .headers import decode_bin, header_pairs, stream_head
from .status import CallStatus, Code, code_from_http, code_name, failure, upstream_status

__all__ = ["StreamParser", "envelope", "request_headers", "status_from_trailers", "unary_result"]

_FLAG_TRAILERS = 0x80
_KNOWN_FLAGS = FLAG_COMPRESSED | _FLAG_TRAILERS
_STATUS_KEYS = frozenset(("grpc-status", "grpc-message"))


def _grpc_timeout(timeout: float) -> str:
    ms = max(1, round(timeout * 1000))
    return f"{ms}m" if ms < 100_000_000 else f"{min(round(timeout), 99_999_999)}S"


def request_headers(timeout: float) -> list[tuple[str, str]]:
    """Headers of a binary gRPC-Web POST."""
    return [
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
        ("grpc-timeout", _grpc_timeout(timeout)),
        ("grpc-accept-encoding", "gzip"),
    ]


def status_from_trailers(pairs: tuple[Pair, ...]) -> CallStatus:
    """A status from gRPC trailers (grpc-status, grpc-message, grpc-status-details-bin)."""
    code_text = ""
    message = ""
    details_bin = None
    for key, value in pairs:
        if key == "grpc-status":
            code_text = value.strip()
        elif key == "grpc-message":
            message = unquote(value)
        elif key == "grpc-status-details-bin":
            details_bin = decode_bin(value)
    trailers = tuple(p for p in pairs if p[0] not in _STATUS_KEYS)
    if not code_text.isdigit():
        return CallStatus(
            code=Code.UNKNOWN if code_text else Code.INTERNAL,
            message=message,
            trailers=trailers,
            error="upstream sent an invalid grpc-status"
            if code_text
            else "upstream sent no grpc-status",
        )
    return upstream_status(
        int(code_text),
        message,
        details=parse_status_details(details_bin) if details_bin else (),
        trailers=trailers,
    )


def _parse_trailer_block(data: bytes) -> tuple[Pair, ...]:
    pairs: list[tuple[str, str]] = []
    for line in data.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise EnvelopeError("malformed gRPC-Web trailer line")
        pairs.append((key.strip().lower(), value.strip()))
    return header_pairs(pairs)


class StreamParser:
    """Turns a gRPC-Web response into call events (trailers from the 0x80 frame)."""

    __slots__ = ("_encoding", "_status", "done", "headers", "wants_body")

    def __init__(self, status: int, items: list[tuple[str, str]]) -> None:
        self._status = status
        self.headers = header_pairs(items)
        self._encoding = ""
        self.done = False
        self.wants_body = False

    def start(self) -> list[CallEvent]:
        """Events from the response head (a trailers-only response ends here)."""
        has_status = any(k == "grpc-status" for k, _ in self.headers)
        if has_status:
            # Trailers-only: everything the head carries is trailers (as grpcio reports it).
            self.done = True
            return [status_from_trailers(self.headers)]
        if self._status != 200:
            self.done = True
            code = code_from_http(self._status)
            return [
                ResponseHeaders(headers=self.headers),
                upstream_status(
                    code,
                    f"HTTP {self._status}",
                    error=f"upstream answered HTTP {self._status} ({code_name(code)})",
                ),
            ]
        self._encoding, events, self.done = stream_head(
            self.headers,
            content_type="application/grpc-web",
            encoding_header="grpc-encoding",
            server="gRPC-Web server",
        )
        return events

    def body(self, data: bytes) -> CallStatus:  # pragma: no cover - wants_body is never set
        """Unused for gRPC-Web (errors come in headers or trailers)."""
        self.done = True
        return failure(Code.UNKNOWN, f"upstream answered HTTP {self._status}")

    def frame(self, flags: int, data: bytes) -> list[CallEvent]:
        """Events for one frame; EnvelopeError for flags or data that make no sense."""
        if flags & ~_KNOWN_FLAGS:
            raise EnvelopeError(f"unknown frame flags 0x{flags:02x}")
        if flags & FLAG_COMPRESSED:
            data = decompress(self._encoding, data)
        if flags & _FLAG_TRAILERS:
            self.done = True
            return [status_from_trailers(_parse_trailer_block(data))]
        return [ResponseMessage(payload=data)]

    def finish(self, *, truncated: bool) -> CallStatus:
        """The status when the body ended without a trailer frame."""
        self.done = True
        what = "in the middle of a message" if truncated else "without trailers"
        return failure(Code.INTERNAL, f"the upstream gRPC-Web response ended {what}")


def unary_result(status: int, items: list[tuple[str, str]], body: bytes) -> UnaryResult:
    """The result of a complete gRPC-Web response to a unary call."""
    parser = StreamParser(status, items)
    headers: tuple[Pair, ...] = ()
    payloads: list[bytes] = []
    final: CallStatus | None = None
    try:
        events = parser.start()
        if not parser.done:
            reader = EnvelopeReader()
            for flags, data in reader.feed(body):
                events.extend(parser.frame(flags, data))
                if parser.done:
                    break
            if not parser.done:
                events.append(parser.finish(truncated=reader.pending > 0))
    except EnvelopeError as exc:
        events = [failure(Code.INTERNAL, f"invalid response framing from upstream: {exc}")]
    for event in events:
        if isinstance(event, ResponseHeaders):
            headers = event.headers
        elif isinstance(event, ResponseMessage):
            payloads.append(event.payload)
        else:
            final = event
    if final is None:  # pragma: no cover - every path above ends with a status
        final = failure(Code.INTERNAL, "no status")
    if final.ok and len(payloads) != 1:
        final = CallStatus(
            code=Code.INTERNAL,
            message=f"upstream sent {len(payloads)} messages to a unary call",
            trailers=final.trailers,
            error=f"upstream sent {len(payloads)} messages to a unary call",
        )
    return UnaryResult(headers=headers, payload=payloads[0] if final.ok else None, status=final)
