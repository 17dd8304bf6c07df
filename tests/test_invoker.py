"""The Invoker: TLS, mTLS, skip-verify, connection reuse, LRU bound, close without leaks."""

from __future__ import annotations

import asyncio
import gc
import json
import os
from typing import Any

import pytest

from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.invocation import invoke_stream, invoke_unary
from connectrpc_catalog.problems import Code, RequestError
from connectrpc_catalog.transports import (
    CallStatus,
    CallTarget,
    HttpVersion,
    Invoker,
    MethodRef,
    RawDetail,
    TLSConfig,
)
from connectrpc_catalog.transports import WireProtocol as Protocol
from connectrpc_catalog.transports.envelope import EnvelopeError, EnvelopeReader, envelope
from connectrpc_catalog.transports.errdetails import details_json
from tests.upstream.behaviour import Recorder
from tests.upstream.connect_server import ConnectServer, start_connect_server
from tests.upstream.grpc_server import GrpcServer, start_grpc_server
from tests.upstream.registry import StubRegistry
from tests.upstream.schema import SERVICE, TestSchema
from tests.upstream.tls import TLSMaterial

pytest_plugins = ["tests.upstream.fixtures"]

T = catalog_pb.Transport
ALL = [T.GRPC, T.CONNECT, T.GRPC_WEB]
ECHO = MethodRef(path=f"/{SERVICE}/Echo")


def req(endpoint: str, transport: Any, **kw: Any) -> catalog_pb.InvokeGRPCRequest:
    return catalog_pb.InvokeGRPCRequest(
        endpoint=endpoint, service=SERVICE, method="Echo", request_json='{"message": "tls"}',
        transport=transport, timeout_seconds=10, **kw)


def _upstream(transport: Any, grpc_up: GrpcServer, connect_up: ConnectServer) -> str:
    return grpc_up.address if transport == T.GRPC else connect_up.address


# -- TLS -------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ALL, ids=["grpc", "connect", "grpcweb"])
async def test_tls_with_ca(
    registry: StubRegistry, invoker: Invoker, tls_material: TLSMaterial,
    grpc_tls_upstream: GrpcServer, connect_tls_upstream: ConnectServer, transport: Any,
) -> None:
    ep = _upstream(transport, grpc_tls_upstream, connect_tls_upstream)
    ok = await invoke_unary(registry, invoker, req(
        ep, transport, use_tls=True, ca_cert_pem=tls_material.ca_pem))
    assert ok.success, ok.error
    assert json.loads(ok.response_json) == {"message": "tls"}
    # An https:// URL means TLS too; server_name overrides the name checked.
    ok = await invoke_unary(registry, invoker, req(
        f"https://{ep}", transport, ca_cert_pem=tls_material.ca_pem, server_name="localhost"))
    assert ok.success, ok.error
    # The system roots do not know the trustme CA: a TLS failure, reported as data.
    bad = await invoke_unary(registry, invoker, req(ep, transport, use_tls=True))
    assert not bad.success and bad.status_name == "UNAVAILABLE"
    assert bad.error
    # A name the certificate does not carry fails verification.
    bad = await invoke_unary(registry, invoker, req(
        ep, transport, use_tls=True, ca_cert_pem=tls_material.ca_pem,
        server_name="wrong.example"))
    assert not bad.success and bad.status_name == "UNAVAILABLE"


@pytest.mark.parametrize("transport", ALL, ids=["grpc", "connect", "grpcweb"])
async def test_mutual_tls(
    registry: StubRegistry, invoker: Invoker, mtls_material: TLSMaterial,
    grpc_mtls_upstream: GrpcServer, connect_mtls_upstream: ConnectServer, transport: Any,
) -> None:
    ep = _upstream(transport, grpc_mtls_upstream, connect_mtls_upstream)
    m = mtls_material
    ok = await invoke_unary(registry, invoker, req(
        ep, transport, use_tls=True, ca_cert_pem=m.ca_pem,
        client_cert_pem=m.client_cert_pem, client_key_pem=m.client_key_pem))
    assert ok.success, ok.error
    no_cert = await invoke_unary(registry, invoker, req(
        ep, transport, use_tls=True, ca_cert_pem=m.ca_pem))
    assert not no_cert.success
    assert no_cert.status_name in ("UNAVAILABLE", "UNKNOWN", "INTERNAL")


async def test_invalid_pem_is_invalid_argument(
    registry: StubRegistry, invoker: Invoker, connect_tls_upstream: ConnectServer,
) -> None:
    for transport in ALL:
        for fields in ({"ca_cert_pem": "not a pem"},
                       {"client_cert_pem": "nope", "client_key_pem": "nope"},
                       {"client_cert_pem": "only a cert"}):
            with pytest.raises(RequestError) as info:
                await invoke_unary(registry, invoker, req(
                    connect_tls_upstream.address, transport, use_tls=True, **fields))
            assert info.value.code == Code.INVALID_ARGUMENT
            assert "pem" in info.value.message.lower()


@pytest.mark.parametrize("transport", ALL, ids=["grpc", "connect", "grpcweb"])
async def test_insecure_skip_verify_self_signed(
    registry: StubRegistry, invoker: Invoker, grpc_self_signed_upstream: GrpcServer,
    connect_self_signed_upstream: ConnectServer, transport: Any,
) -> None:
    ep = _upstream(transport, grpc_self_signed_upstream, connect_self_signed_upstream)
    refused = await invoke_unary(registry, invoker, req(ep, transport, use_tls=True))
    assert not refused.success and refused.status_name == "UNAVAILABLE"
    ok = await invoke_unary(registry, invoker, req(
        ep, transport, use_tls=True, insecure_skip_verify=True))
    assert ok.success, ok.error


async def test_tls_streams_and_cancel(
    registry: StubRegistry, invoker: Invoker, recorder: Recorder, tls_material: TLSMaterial,
    grpc_tls_upstream: GrpcServer, connect_tls_upstream: ConnectServer,
) -> None:
    """Over TLS the HTTP transports negotiate HTTP/2 (ALPN); cancelling still reaches."""
    for transport in ALL:
        ep = _upstream(transport, grpc_tls_upstream, connect_tls_upstream)
        before = recorder.cancelled["ServerStream"]
        gen = invoke_stream(registry, invoker, catalog_pb.InvokeStreamRequest(
            endpoint=ep, service=SERVICE, method="ServerStream", transport=transport,
            use_tls=True, ca_cert_pem=tls_material.ca_pem,
            request_messages_json=['{"message": "c", "count": 1000, "interval_ms": 50}']))
        fields = []
        async for event in gen:
            assert event.event is not None
            fields.append(event.event.field)
            if fields.count("message") == 1:
                break
        await gen.aclose()
        assert fields == ["headers", "message"], transport
        assert await asyncio.to_thread(
            recorder.wait_cancelled, "ServerStream", before + 1, 5.0), transport


# -- pool --------------------------------------------------------------------------


async def test_one_connection_for_many_calls() -> None:
    rec = Recorder()
    grpc_up = start_grpc_server(rec)
    connect_up = start_connect_server(rec)
    invoker = Invoker()
    try:
        grpc_target = CallTarget.parse(grpc_up.address, protocol=Protocol.GRPC)
        connect_target = CallTarget.parse(connect_up.address, protocol=Protocol.CONNECT)
        web_target = CallTarget.parse(connect_up.address, protocol=Protocol.GRPC_WEB)
        for _ in range(30):
            for target in (grpc_target, connect_target, web_target):
                result = await invoker.unary(target, ECHO, b"", timeout_s=5)
                assert result.status.ok, result.status
        results = await asyncio.gather(
            *(invoker.unary(grpc_target, ECHO, b"", timeout_s=5) for _ in range(40)))
        assert all(r.status.ok for r in results)
        assert rec.calls["Echo"] == 130
        # One connection per transport: grpcio saw one peer, hypercorn one for Connect and
        # one for gRPC-Web (the h2c probes carry no call, so the servers never see them).
        assert len(rec.peers) == 3, rec.peers
        assert invoker.opened == 3 and len(invoker) == 3
    finally:
        await invoker.close()
        grpc_up.stop()
        connect_up.stop()


async def test_lru_bound_evicts_and_reopens(
    grpc_upstream: GrpcServer, connect_upstream: ConnectServer,
) -> None:
    invoker = Invoker(max_transports=2)
    try:
        targets = [
            CallTarget.parse(grpc_upstream.address, protocol=Protocol.GRPC),
            CallTarget.parse(connect_upstream.address, protocol=Protocol.CONNECT),
            CallTarget.parse(connect_upstream.address, protocol=Protocol.GRPC),
        ]
        for target in targets:
            assert (await invoker.unary(target, ECHO, b"", timeout_s=5)).status.ok
        assert len(invoker) == 2 and invoker.opened == 3
        # The first target was evicted (least recently used): calling it opens anew.
        assert (await invoker.unary(targets[0], ECHO, b"", timeout_s=5)).status.ok
        assert invoker.opened == 4 and len(invoker) == 2
        # The most recent one is still pooled.
        assert (await invoker.unary(targets[0], ECHO, b"", timeout_s=5)).status.ok
        assert invoker.opened == 4
    finally:
        await invoker.close()


async def test_eviction_waits_for_calls_in_flight(
    grpc_upstream: GrpcServer, connect_upstream: ConnectServer,
) -> None:
    invoker = Invoker(max_transports=1)
    sleep = MethodRef(path=f"/{SERVICE}/Sleep")
    slow_target = CallTarget.parse(grpc_upstream.address, protocol=Protocol.GRPC)
    other = CallTarget.parse(connect_upstream.address, protocol=Protocol.CONNECT)
    try:
        # SleepRequest{millis: 300}
        slow = asyncio.create_task(invoker.unary(slow_target, sleep, b"\x08\xac\x02", timeout_s=5))
        await asyncio.sleep(0.05)
        assert (await invoker.unary(other, ECHO, b"", timeout_s=5)).status.ok
        result = await slow
        assert result.status.ok, result.status  # not cancelled by the eviction
    finally:
        await invoker.close()


async def test_concurrent_first_calls_share_one_transport(grpc_upstream: GrpcServer) -> None:
    invoker = Invoker()
    try:
        target = CallTarget.parse(grpc_upstream.address, protocol=Protocol.GRPC)
        results = await asyncio.gather(
            *(invoker.unary(target, ECHO, b"", timeout_s=5) for _ in range(20)))
        assert all(r.status.ok for r in results)
        assert invoker.opened == 1
    finally:
        await invoker.close()


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


async def _settle_fds(limit: int) -> int:
    count = open_fds()
    for _ in range(100):
        if count <= limit:
            break
        gc.collect()
        await asyncio.sleep(0.05)
        count = open_fds()
    return count


async def test_close_releases_every_socket(
    registry: StubRegistry, tls_material: TLSMaterial, grpc_upstream: GrpcServer,
    connect_upstream: ConnectServer, grpc_tls_upstream: GrpcServer,
    connect_tls_upstream: ConnectServer,
) -> None:
    async def exercise(invoker: Invoker) -> None:
        for transport in ALL:
            for ep, tls in ((_upstream(transport, grpc_upstream, connect_upstream), {}),
                            (_upstream(transport, grpc_tls_upstream, connect_tls_upstream),
                             {"use_tls": True, "ca_cert_pem": tls_material.ca_pem})):
                r = await invoke_unary(registry, invoker, req(ep, transport, **tls))
                assert r.success, r.error
                events = [e async for e in invoke_stream(
                    registry, invoker, catalog_pb.InvokeStreamRequest(
                        endpoint=ep, service=SERVICE, method="ServerStream",
                        transport=transport, request_messages_json=['{"count": 2}'], **tls))]
                assert events[-1].event and events[-1].event.value.success  # type: ignore[union-attr]
        bidi = [e async for e in invoke_stream(registry, invoker, catalog_pb.InvokeStreamRequest(
            endpoint=connect_upstream.address, service=SERVICE, method="BidiStream",
            transport=T.CONNECT, request_messages_json=["{}", "{}"]))]
        assert bidi[-1].event and bidi[-1].event.value.success  # type: ignore[union-attr]

    warm = Invoker()
    await exercise(warm)  # let grpc and the servers create their process-wide fds
    await warm.close()
    baseline = open_fds()
    invoker = Invoker()
    await exercise(invoker)
    assert open_fds() > baseline  # the calls did hold sockets
    await invoker.close()
    after = await _settle_fds(baseline)
    assert after <= baseline, (after, baseline)
    with pytest.raises(RequestError) as info:
        await invoke_unary(registry, invoker, req(connect_upstream.address, T.CONNECT))
    assert info.value.code == Code.FAILED_PRECONDITION


# -- units ---------------------------------------------------------------------------


def test_call_target_parse() -> None:
    t = CallTarget.parse("localhost:8080", protocol=Protocol.GRPC)
    assert (t.host, t.port, t.path_prefix, t.tls) == ("localhost", 8080, "", None)
    t = CallTarget.parse("https://api.example.com/prefix/", protocol=Protocol.CONNECT)
    assert (t.host, t.port, t.path_prefix) == ("api.example.com", 443, "/prefix")
    assert t.tls == TLSConfig() and t.origin == "https://api.example.com:443"
    t = CallTarget.parse("http://[::1]:9000", protocol=Protocol.CONNECT)
    assert t.authority == "[::1]:9000" and t.tls is None
    t = CallTarget.parse("[::1]:9000", protocol=Protocol.GRPC, use_tls=True)
    assert t.host == "::1" and t.tls is not None
    for bad in ("", "localhost", "x:y", "ftp://h:1", "http://h:1?q=1", "h:0", "::1:80"):
        with pytest.raises(ValueError, match="endpoint"):
            CallTarget.parse(bad, protocol=Protocol.GRPC)


def test_tls_fingerprint_tracks_material() -> None:
    a = TLSConfig(ca_pem="A")
    assert a.fingerprint == TLSConfig(ca_pem="A").fingerprint
    assert a.fingerprint != TLSConfig(ca_pem="B").fingerprint
    assert a.fingerprint != TLSConfig(client_cert_pem="A").fingerprint


def test_error_details_fallback_and_bundled(schema: TestSchema) -> None:
    from google.rpc import error_details_pb2

    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.seconds = 3
    out = json.loads(details_json([
        RawDetail(type_url="type.googleapis.com/google.rpc.RetryInfo",
                  value=retry.SerializeToString()),
        RawDetail(type_url="type.googleapis.com/acme.Unknown", value=b"\x08\x01"),
        RawDetail(type_url="type.googleapis.com/testsvc.v1.CustomDetail", value=b"\xff"),
    ], schema.pool))
    assert out[0] == {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                      "retryDelay": "3s"}
    assert out[1] == {"@type": "type.googleapis.com/acme.Unknown", "value": "CAE="}
    assert out[2] == {"@type": "type.googleapis.com/testsvc.v1.CustomDetail", "value": "/w=="}
    assert details_json([], schema.pool) == ""


def test_envelope_reader_splits_and_limits() -> None:
    data = envelope(0, b"abc") + envelope(2, b"{}")
    reader = EnvelopeReader()
    frames = [f for i in range(len(data)) for f in reader.feed(data[i:i + 1])]
    assert frames == [(0, b"abc"), (2, b"{}")] and reader.pending == 0
    with pytest.raises(EnvelopeError):
        reader.feed(b"\x00\xff\xff\xff\xff")


async def test_http1_only_server_gets_http1_and_forced_h2c_gets_a_hint() -> None:
    """A plaintext HTTP/1.1-only server: the probe picks HTTP/1.1 for every Connect call
    (bidi included); forcing h2c fails with a hint naming what the server speaks."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    versions: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            versions.append(self.request_version)
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    invoker = Invoker()
    try:
        endpoint = f"127.0.0.1:{server.server_port}"
        target = CallTarget.parse(endpoint, protocol=Protocol.CONNECT)
        bidi = MethodRef(path=f"/{SERVICE}/BidiStream", client_streaming=True,
                         server_streaming=True)
        events = [e async for e in invoker.stream(target, bidi, [b""], timeout_s=5)]
        status = events[-1]
        assert isinstance(status, CallStatus) and status.name == "UNIMPLEMENTED"  # HTTP 404
        result = await invoker.unary(target, ECHO, b"", timeout_s=5)
        assert result.status.name == "UNIMPLEMENTED"
        assert versions == ["HTTP/1.1", "HTTP/1.1"]
        forced = CallTarget.parse(endpoint, protocol=Protocol.CONNECT, http=HttpVersion.HTTP2)
        result = await invoker.unary(forced, ECHO, b"", timeout_s=5)
        assert result.status.name == "UNAVAILABLE"
        assert "speaks only HTTP/1.1" in result.status.error, result.status.error
        grpc_target = CallTarget.parse(endpoint, protocol=Protocol.GRPC)
        result = await invoker.unary(grpc_target, ECHO, b"", timeout_s=5)
        assert result.status.name == "UNAVAILABLE"
        assert "Connect or the gRPC-Web transport" in result.status.error, result.status.error
    finally:
        await invoker.close()
        server.shutdown()
        server.server_close()
