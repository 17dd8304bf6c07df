"""The Connect protocol's wire details: request headers, unary results, stream parsing."""

from __future__ import annotations

import json
from typing import Any

from .base import CallEvent, Pair, ResponseHeaders, ResponseMessage, UnaryResult
from .envelope import FLAG_COMPRESSED, EnvelopeError, decompress
from .headers import decode_bin, header_pairs, stream_head
from .status import (
    CallStatus,
    Code,
    RawDetail,
    code_from_connect,
    code_from_http,
    failure,
    upstream_status,
)

__all__ = [
    "StreamParser",
    "stream_request_headers",
    "unary_request_headers",
    "unary_result",
]

_FLAG_END_STREAM = 0x02
_KNOWN_FLAGS = FLAG_COMPRESSED | _FLAG_END_STREAM
_HTTP_VERSION_NOT_SUPPORTED = 505


def _timeout_ms(timeout: float) -> str:
    return str(min(max(1, round(timeout * 1000)), 9_999_999_999))


def unary_request_headers(codec: str, timeout: float) -> list[tuple[str, str]]:
    """Headers of a Connect unary POST."""
    return [
        ("content-type", f"application/{codec}"),
        ("connect-protocol-version", "1"),
        ("connect-timeout-ms", _timeout_ms(timeout)),
        ("accept-encoding", "gzip"),
    ]


def stream_request_headers(codec: str, timeout: float) -> list[tuple[str, str]]:
    """Headers of a Connect streaming POST."""
    return [
        ("content-type", f"application/connect+{codec}"),
        ("connect-protocol-version", "1"),
        ("connect-timeout-ms", _timeout_ms(timeout)),
        ("connect-accept-encoding", "gzip"),
    ]


def _error_status(
    error: Any, trailers: tuple[Pair, ...], fallback_code: Code, fallback_message: str
) -> CallStatus:
    """A status from a Connect error object ({code, message, details})."""
    if not isinstance(error, dict):
        return upstream_status(fallback_code, fallback_message, trailers=trailers)
    code_text = error.get("code")
    code = code_from_connect(code_text) if isinstance(code_text, str) else fallback_code
    message = error.get("message")
    message = message if isinstance(message, str) else ""
    details: list[RawDetail] = []
    raw_details = error.get("details")
    for item in raw_details if isinstance(raw_details, list) else ():
        if not isinstance(item, dict):
            continue
        type_name, value = item.get("type"), item.get("value")
        if not isinstance(type_name, str) or not isinstance(value, str):
            continue
        data = decode_bin(value)
        if data is None:
            continue
        url = type_name if "/" in type_name else f"type.googleapis.com/{type_name}"
        details.append(RawDetail(type_url=url, value=data))
    return upstream_status(code, message, details=tuple(details), trailers=trailers)


def _http_error(status: int, body: bytes, trailers: tuple[Pair, ...]) -> CallStatus:
    try:
        error = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        error = None
    if status == _HTTP_VERSION_NOT_SUPPORTED and not isinstance(error, dict):
        code = code_from_http(status)
        return upstream_status(
            code,
            f"HTTP {status}",
            trailers=trailers,
            error=(
                f"upstream answered HTTP {status} (HTTP Version Not Supported): it takes this "
                "kind of call (a bidi stream) only over HTTP/2; use TLS, a server that "
                "accepts h2c, or the gRPC transport"
            ),
        )
    return _error_status(error, trailers, code_from_http(status), f"HTTP {status}")


def unary_result(status: int, items: list[tuple[str, str]], body: bytes, codec: str) -> UnaryResult:
    """The result of a Connect unary response (trailers come as `trailer-` headers)."""
    headers: list[tuple[str, str]] = []
    trailers: list[tuple[str, str]] = []
    content_type = ""
    for key, value in items:
        if key.startswith("trailer-"):
            trailers.append((key[8:], value))
        else:
            if key == "content-type":
                content_type = value
            headers.append((key, value))
    head, tail = header_pairs(headers), header_pairs(trailers)
    if status != 200:
        return UnaryResult(headers=head, payload=None, status=_http_error(status, body, tail))
    if content_type.split(";")[0].strip().lower() != f"application/{codec}":
        bad = failure(
            Code.UNKNOWN,
            f"upstream answered with content-type {content_type!r}, "
            f"not application/{codec}: is it a Connect server?",
        )
        return UnaryResult(headers=head, payload=None, status=bad)
    return UnaryResult(headers=head, payload=body, status=CallStatus(code=Code.OK, trailers=tail))


class StreamParser:
    """Turns a Connect streaming response into call events."""

    __slots__ = ("_encoding", "_status", "done", "headers", "wants_body")

    def __init__(self, status: int, items: list[tuple[str, str]]) -> None:
        self._status = status
        self.headers = header_pairs(items)
        self._encoding = ""
        self.done = False
        self.wants_body = False

    def start(self) -> list[CallEvent]:
        """Events from the response head; sets `wants_body` when the body holds an error."""
        if self._status != 200:
            self.wants_body = True
            return [ResponseHeaders(headers=self.headers)]
        self._encoding, events, self.done = stream_head(
            self.headers,
            content_type="application/connect+",
            encoding_header="connect-content-encoding",
            server="Connect server",
        )
        return events

    def body(self, data: bytes) -> CallStatus:
        """The final status of a non-200 response from its body."""
        self.done = True
        return _http_error(self._status, data, ())

    def frame(self, flags: int, data: bytes) -> list[CallEvent]:
        """Events for one frame; EnvelopeError for flags or data that make no sense."""
        if flags & ~_KNOWN_FLAGS:
            raise EnvelopeError(f"unknown frame flags 0x{flags:02x}")
        if flags & FLAG_COMPRESSED:
            data = decompress(self._encoding, data)
        if flags & _FLAG_END_STREAM:
            self.done = True
            return [_end_stream(data)]
        return [ResponseMessage(payload=data)]

    def finish(self, *, truncated: bool) -> CallStatus:
        """The status when the body ended without an end-of-stream message."""
        self.done = True
        what = "in the middle of a message" if truncated else "without an end-of-stream message"
        return failure(Code.INTERNAL, f"the upstream stream ended {what}")


def _end_stream(data: bytes) -> CallStatus:
    try:
        end = json.loads(data) if data else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError("the end-of-stream message is not JSON") from exc
    if not isinstance(end, dict):
        raise EnvelopeError("the end-of-stream message is not a JSON object")
    trailers: list[tuple[str, str]] = []
    metadata = end.get("metadata")
    if isinstance(metadata, dict):
        for key, values in metadata.items():
            for value in values if isinstance(values, list) else [values]:
                trailers.append((str(key).lower(), str(value)))
    tail = header_pairs(trailers)
    error = end.get("error")
    if error is None:
        return CallStatus(code=Code.OK, trailers=tail)
    return _error_status(error, tail, Code.UNKNOWN, "")
