"""The I/O-free parts of the transports, in memory: framing, Connect and gRPC-Web parsing,
status codes, header helpers, what a server's first bytes say, and the transport table."""

from __future__ import annotations

import base64
import gzip
import json
import socket

import grpc
import pytest
from connectrpc.code import Code as ConnectCode
from google.rpc import status_pb2

from connectrpc_catalog.transports import TRANSPORTS, MethodRef, WireProtocol, refusal
from connectrpc_catalog.transports import connect_wire as cw
from connectrpc_catalog.transports import grpcweb_wire as gw
from connectrpc_catalog.transports.base import ResponseHeaders, ResponseMessage
from connectrpc_catalog.transports.diagnose import (
    PREFACE,
    Speaks,
    classify_reply,
    dns_hint,
    mismatch_hint,
)
from connectrpc_catalog.transports.envelope import (
    MAX_MESSAGE_BYTES,
    EnvelopeError,
    EnvelopeReader,
    decompress,
    envelope,
)
from connectrpc_catalog.transports.headers import decode_bin, normalize_bin, wire_headers
from connectrpc_catalog.transports.status import (
    CallStatus,
    Code,
    code_from_connect,
    code_from_http,
    code_name,
    upstream_status,
)

CONNECT_OK = [("content-type", "application/connect+proto")]
WEB_OK = [("content-type", "application/grpc-web+proto")]


# -- status ------------------------------------------------------------------------


def test_code_enum_matches_grpc_and_connect() -> None:
    assert [(c.name, c.value) for c in Code] == [(s.name, s.value[0]) for s in grpc.StatusCode]
    assert {c.connect_name for c in Code if c is not Code.OK} == {c.value for c in ConnectCode}
    assert code_from_connect("canceled") is Code.CANCELLED
    assert code_from_connect("no_such_code") is Code.UNKNOWN
    assert code_name(42) == "CODE_42" and code_name(14) == "UNAVAILABLE"


def test_http_status_table() -> None:
    assert {s: code_from_http(s).name for s in (400, 401, 403, 404, 429, 502, 503, 504)} == {
        400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
        404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
        504: "UNAVAILABLE"}
    assert code_from_http(418) is Code.UNKNOWN and code_from_http(500) is Code.UNKNOWN


def test_upstream_status_builds_the_error_text_once() -> None:
    assert upstream_status(5, "gone").error == "upstream returned NOT_FOUND: gone"
    assert upstream_status(5).error == "upstream returned NOT_FOUND"
    assert upstream_status(0, "fine").error == ""
    assert upstream_status(14, "x", error="precise").error == "precise"
    assert upstream_status(99).name == "CODE_99"


# -- headers -----------------------------------------------------------------------


def test_bin_values() -> None:
    assert decode_bin("AAH-_w") == b"\x00\x01\xfe\xff"  # URL alphabet, unpadded
    assert decode_bin("***") is None
    assert normalize_bin("AAH-_w") == "AAH+/w=="
    assert normalize_bin("***") == "***"
    assert wire_headers([("a", "b"), ("x-bin", b"\x00")]) == [("a", "b"), ("x-bin", "AA==")]


# -- envelopes ---------------------------------------------------------------------


def test_envelope_reader_reassembles_chunks() -> None:
    data = envelope(0, b"abc") + envelope(2, b"{}")
    reader = EnvelopeReader()
    frames = [f for i in range(len(data)) for f in reader.feed(data[i:i + 1])]
    assert frames == [(0, b"abc"), (2, b"{}")] and reader.pending == 0


def test_envelope_reader_truncated_and_oversized() -> None:
    reader = EnvelopeReader()
    assert reader.feed(envelope(0, b"abcdef")[:-2]) == []
    assert reader.pending == 9
    with pytest.raises(EnvelopeError, match="exceeds the limit"):
        EnvelopeReader().feed(b"\x00" + (MAX_MESSAGE_BYTES + 1).to_bytes(4, "big"))


def test_decompress() -> None:
    assert decompress("gzip", gzip.compress(b"hello")) == b"hello"
    for encoding in ("", "identity"):
        with pytest.raises(EnvelopeError, match="names no encoding"):
            decompress(encoding, b"x")
    with pytest.raises(EnvelopeError, match="unsupported message encoding 'br'"):
        decompress("br", b"x")
    with pytest.raises(EnvelopeError, match="invalid gzip"):
        decompress("gzip", b"not gzip")


# -- Connect -----------------------------------------------------------------------


def _connect_stream(headers: list[tuple[str, str]] = CONNECT_OK) -> cw.StreamParser:
    parser = cw.StreamParser(200, headers)
    parser.start()
    return parser


def test_connect_stream_frames_and_end() -> None:
    parser = _connect_stream()
    assert parser.frame(0, b"m") == [ResponseMessage(payload=b"m")]
    end = json.dumps({"metadata": {"X-A": ["1", "2"], "x-b": "3"}}).encode()
    [status] = parser.frame(2, end)
    assert isinstance(status, CallStatus) and status.ok and parser.done
    assert status.trailers == (("x-a", "1"), ("x-a", "2"), ("x-b", "3"))
    [status] = _connect_stream().frame(2, b"")
    assert isinstance(status, CallStatus) and status.ok


def test_connect_stream_end_with_error() -> None:
    end = json.dumps({"error": {"code": "not_found", "message": "gone", "details": [
        {"type": "acme.Detail", "value": "CAE"},
        {"type": "type.example.com/acme.Other", "value": "CAE="},
        {"type": "acme.Bad", "value": "***"}, {"type": 1, "value": "x"}, "not an object",
    ]}}).encode()
    [status] = _connect_stream().frame(2, end)
    assert isinstance(status, CallStatus)
    assert (status.name, status.message) == ("NOT_FOUND", "gone")
    assert status.error == "upstream returned NOT_FOUND: gone"
    assert [d.type_url for d in status.details] == [
        "type.googleapis.com/acme.Detail", "type.example.com/acme.Other"]
    [status] = _connect_stream().frame(2, b'{"error": "text"}')
    assert isinstance(status, CallStatus) and status.name == "UNKNOWN"
    [status] = _connect_stream().frame(2, b'{"error": {"code": 5}}')
    assert isinstance(status, CallStatus) and status.name == "UNKNOWN"


@pytest.mark.parametrize(("flags", "data", "match"), [
    (2, b"{not json", "not JSON"),
    (2, b"[1, 2]", "not a JSON object"),
    (2, b"\xff\xfe", "not JSON"),
    (0x04, b"", "unknown frame flags 0x04"),
    (0x80, b"", "unknown frame flags 0x80"),
    (1, b"x", "names no encoding"),
])
def test_connect_stream_bad_frames(flags: int, data: bytes, match: str) -> None:
    with pytest.raises(EnvelopeError, match=match):
        _connect_stream().frame(flags, data)


def test_connect_stream_compressed_frames() -> None:
    parser = _connect_stream([*CONNECT_OK, ("connect-content-encoding", "gzip")])
    assert parser.frame(1, gzip.compress(b"m")) == [ResponseMessage(payload=b"m")]
    [status] = parser.frame(3, gzip.compress(b"{}"))
    assert isinstance(status, CallStatus) and status.ok
    with pytest.raises(EnvelopeError, match="invalid gzip"):
        _connect_stream([*CONNECT_OK, ("connect-content-encoding", "gzip")]).frame(1, b"x")


def test_connect_stream_head_errors() -> None:
    parser = cw.StreamParser(200, [("content-type", "text/html")])
    events = parser.start()
    assert parser.done and isinstance(events[-1], CallStatus)
    assert "is it a Connect server?" in events[-1].error
    parser = cw.StreamParser(404, [("content-type", "application/json")])
    assert parser.start() == [ResponseHeaders(headers=(("content-type", "application/json"),))]
    assert parser.wants_body
    status = parser.body(b'{"code": "permission_denied", "message": "no"}')
    assert (status.name, status.message) == ("PERMISSION_DENIED", "no")
    assert cw.StreamParser(503, []).body(b"<html>").name == "UNAVAILABLE"
    assert cw.StreamParser(429, []).body(b"").name == "UNAVAILABLE"
    version = cw.StreamParser(505, []).body(b"")
    assert version.name == "UNKNOWN" and "only over HTTP/2" in version.error


def test_connect_stream_finish() -> None:
    assert "middle of a message" in _connect_stream().finish(truncated=True).error
    status = _connect_stream().finish(truncated=False)
    assert status.name == "INTERNAL" and "without an end-of-stream message" in status.error


def test_connect_unary_result() -> None:
    items = [("content-type", "application/proto"), ("trailer-x-t", "1"), ("x-h", "2")]
    result = cw.unary_result(200, items, b"payload", "proto")
    assert result.payload == b"payload" and result.status.ok
    assert result.headers == (("content-type", "application/proto"), ("x-h", "2"))
    assert result.status.trailers == (("x-t", "1"),)
    wrong = cw.unary_result(200, [("content-type", "text/html")], b"<html>", "proto")
    assert wrong.payload is None and "is it a Connect server?" in wrong.status.error
    error = cw.unary_result(400, [], b'{"code": "invalid_argument", "message": "m"}', "proto")
    assert (error.status.name, error.status.message) == ("INVALID_ARGUMENT", "m")
    bare = cw.unary_result(401, [], b"not json", "json")
    assert (bare.status.name, bare.status.message) == ("UNAUTHENTICATED", "HTTP 401")


# -- gRPC-Web ------------------------------------------------------------------------


def _web_stream(headers: list[tuple[str, str]] = WEB_OK) -> gw.StreamParser:
    parser = gw.StreamParser(200, headers)
    parser.start()
    return parser


def test_grpcweb_trailers() -> None:
    details = status_pb2.Status(code=3, details=[{"type_url": "t/x", "value": b"v"}])
    raw = base64.b64encode(details.SerializeToString()).decode()
    block = f"grpc-status: 3\r\ngrpc-message: bad%20thing\r\ngrpc-status-details-bin: {raw}" \
            "\r\nx-t: 1\r\n\r\n"
    [status] = _web_stream().frame(0x80, block.encode())
    assert isinstance(status, CallStatus)
    assert (status.name, status.message) == ("INVALID_ARGUMENT", "bad thing")
    assert status.error == "upstream returned INVALID_ARGUMENT: bad thing"
    assert [d.type_url for d in status.details] == ["t/x"]
    assert status.trailers == (("grpc-status-details-bin", raw), ("x-t", "1"))


@pytest.mark.parametrize(("block", "name", "error"), [
    (b"x-t: 1\r\n", "INTERNAL", "upstream sent no grpc-status"),
    (b"grpc-status: nope\r\n", "UNKNOWN", "upstream sent an invalid grpc-status"),
])
def test_grpcweb_bad_status(block: bytes, name: str, error: str) -> None:
    [status] = _web_stream().frame(0x80, block)
    assert isinstance(status, CallStatus) and (status.name, status.error) == (name, error)


@pytest.mark.parametrize(("flags", "data", "match"), [
    (0x80, b"no colon here\r\n", "malformed gRPC-Web trailer line"),
    (0x02, b"", "unknown frame flags 0x02"),
    (0x01, b"x", "names no encoding"),
])
def test_grpcweb_bad_frames(flags: int, data: bytes, match: str) -> None:
    with pytest.raises(EnvelopeError, match=match):
        _web_stream().frame(flags, data)


def test_grpcweb_head() -> None:
    trailers_only = gw.StreamParser(200, [("grpc-status", "5"), ("grpc-message", "gone")])
    [status] = trailers_only.start()
    assert isinstance(status, CallStatus) and status.name == "NOT_FOUND" and trailers_only.done
    parser = gw.StreamParser(404, [])
    events = parser.start()
    assert parser.done and isinstance(events[-1], CallStatus)
    assert events[-1].error == "upstream answered HTTP 404 (UNIMPLEMENTED)"
    parser = gw.StreamParser(200, [("content-type", "application/json")])
    events = parser.start()
    assert parser.done and "is it a gRPC-Web server?" in events[-1].error  # type: ignore[union-attr]
    compressed = _web_stream([*WEB_OK, ("grpc-encoding", "gzip")])
    assert compressed.frame(1, gzip.compress(b"m")) == [ResponseMessage(payload=b"m")]
    assert "without trailers" in _web_stream().finish(truncated=False).error


def test_grpcweb_unary_result() -> None:
    trailer = envelope(0x80, b"grpc-status: 0\r\n")
    ok = gw.unary_result(200, WEB_OK, envelope(0, b"m") + trailer)
    assert ok.payload == b"m" and ok.status.ok
    none = gw.unary_result(200, WEB_OK, trailer)
    assert none.payload is None and "sent 0 messages" in none.status.error
    two = gw.unary_result(200, WEB_OK, envelope(0, b"a") + envelope(0, b"b") + trailer)
    assert two.status.name == "INTERNAL" and "sent 2 messages" in two.status.error
    cut = gw.unary_result(200, WEB_OK, envelope(0, b"abc")[:-1])
    assert cut.status.name == "INTERNAL" and "middle of a message" in cut.status.error
    bad = gw.unary_result(200, WEB_OK, envelope(0x40, b""))
    assert bad.status.name == "INTERNAL" and "invalid response framing" in bad.status.error
    early = gw.unary_result(200, WEB_OK, trailer + envelope(0, b"late"))
    assert early.payload is None  # the trailers end it; later bytes are ignored


# -- what a server speaks ---------------------------------------------------------------


@pytest.mark.parametrize(("reply", "speaks"), [
    (b"\x00\x00\x12\x04\x00\x00\x00\x00\x00" + bytes(18), Speaks.HTTP2),  # SETTINGS
    (b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + bytes(8), Speaks.HTTP2),  # GOAWAY
    (b"\x00\x00\x04\x04\x00\x00\x00\x00\x01" + bytes(4), Speaks.UNKNOWN),  # on a stream
    (b"\x00\x00\x04\x01\x00\x00\x00\x00\x00", Speaks.UNKNOWN),  # HEADERS first
    (b"\x00\x00\x00", Speaks.UNKNOWN),  # too short for a frame
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", Speaks.HTTP1),
    (b"<!DOCTYPE HTML>", Speaks.HTTP1),  # HTTP/0.9-style answer
    (b"\r\n", Speaks.HTTP1),
    (b"\x15\x03\x01\x00\x02\x02\x32", Speaks.TLS),  # alert
    (b"\x16\x03\x03\x00\x7a", Speaks.TLS),
    (b"", Speaks.UNKNOWN),
    (b"\xff\xfe", Speaks.UNKNOWN),
])
def test_classify_reply(reply: bytes, speaks: Speaks) -> None:
    assert classify_reply(reply) is speaks


def test_preface_is_the_http2_one() -> None:
    assert PREFACE.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") and PREFACE[-6] == 0x04


def test_mismatch_hints() -> None:
    assert "Connect or the gRPC-Web transport" in mismatch_hint(Speaks.HTTP1, tried="grpc")
    assert "speaks only HTTP/1.1" in mismatch_hint(Speaks.HTTP1, tried="h2c")
    assert "speaks only HTTP/2" in mismatch_hint(Speaks.HTTP2, tried="http/1.1")
    assert "expects TLS" in mismatch_hint(Speaks.TLS, tried="grpc")
    assert "does not speak TLS" in mismatch_hint(Speaks.HTTP2, tried="tls")
    assert mismatch_hint(Speaks.TLS, tried="tls") == ""
    assert mismatch_hint(Speaks.HTTP2, tried="grpc") == ""
    assert mismatch_hint(Speaks.UNKNOWN, tried="h2c") == ""


def test_dns_hint() -> None:
    exc = OSError("connect failed")
    exc.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert "does not resolve" in dns_hint(exc, "nope.invalid")
    assert "'h'" in dns_hint("DNS resolution failed for h:1: Domain name not found", "h")
    assert dns_hint(ConnectionRefusedError("refused"), "h") == ""


# -- the table -------------------------------------------------------------------------


def test_every_protocol_has_a_transport() -> None:
    assert set(TRANSPORTS) == set(WireProtocol)
    bidi = MethodRef(path="/s.S/M", client_streaming=True, server_streaming=True)
    reason = refusal(WireProtocol.GRPC_WEB, bidi)
    assert "gRPC-Web cannot carry client or bidi streams" in reason
    assert "bidi-streaming" in reason and "the gRPC transport or the Connect transport" in reason
    assert refusal(WireProtocol.GRPC_WEB, MethodRef(path="/s.S/M", server_streaming=True)) == ""
    assert refusal(WireProtocol.CONNECT, bidi) == ""
