"""Connect and gRPC-Web against connect-es on Node: an h2c-only and an HTTP/1.1-only server.

Every call goes through the real Invoker (via invoke_unary / invoke_stream). Plaintext
Connect and gRPC-Web must find out which HTTP version each server speaks on their own.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.invocation import invoke_stream, invoke_unary
from connectrpc_catalog.problems import Code, RequestError
from connectrpc_catalog.transports import (
    CallTarget,
    HttpVersion,
    Invoker,
    MethodRef,
    WireProtocol,
)
from tests.upstream.node import SERVICE, NodeServer
from tests.upstream.registry import StubRegistry
from tests.upstream.schema import TestSchema

pytest_plugins = ["tests.upstream.fixtures"]

T = catalog_pb.Transport
SERVERS = ["h2", "h1"]
PROTOCOLS = {"connect": T.CONNECT, "grpcweb": T.GRPC_WEB}
CALLS: dict[str, tuple[list[str], list[dict[str, Any]]]] = {
    "Say": (['{"sentence": "hi"}'], [{"sentence": "hi"}]),
    "Countdown": (['{"start": 3}'], [{"sentence": "3"}, {"sentence": "2", "index": 1},
                                     {"sentence": "1", "index": 2}]),
    "Collect": (['{"sentence": "a"}', '{"sentence": "b"}', '{"sentence": "c"}'],
                [{"sentence": "a,b,c", "index": 3}]),
    "Chat": (['{"sentence": "a"}', '{"sentence": "b"}'],
             [{"sentence": "you said a"}, {"sentence": "you said b", "index": 1}]),
}
CLIENT_STREAMING = {"Collect", "Chat"}


@pytest.fixture
def es_registry(connect_es_schema: TestSchema) -> StubRegistry:
    return StubRegistry(connect_es_schema)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> NodeServer:
    """The connect-es server named by the test's `mode` parameter."""
    mode = request.node.callspec.params["mode"]
    found: NodeServer = request.getfixturevalue(f"connect_es_{mode}")
    return found


def _stream_req(endpoint: str, method: str, bodies: list[str],
                transport: Any) -> catalog_pb.InvokeStreamRequest:
    return catalog_pb.InvokeStreamRequest(
        endpoint=endpoint, service=SERVICE, method=method, request_messages_json=bodies,
        transport=transport, timeout_seconds=10)


async def _collect(registry: StubRegistry, invoker: Invoker,
                   req: catalog_pb.InvokeStreamRequest) -> dict[str, Any]:
    out: dict[str, Any] = {"headers": {}, "messages": [], "status": None}
    async for event in invoke_stream(registry, invoker, req):
        assert event.event is not None
        value = event.event.value
        if isinstance(value, catalog_pb.StreamHeaders):
            out["headers"] = {h.key: h.value for h in value.headers}
        elif isinstance(value, catalog_pb.StreamMessage):
            out["messages"].append(json.loads(value.json))
        else:
            out["status"] = value
    return out


@pytest.mark.parametrize("method", list(CALLS))
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("mode", SERVERS)
async def test_every_kind_over_both_http_versions(
    es_registry: StubRegistry, invoker: Invoker, server: NodeServer,
    mode: str, protocol: str, method: str,
) -> None:
    bodies, want = CALLS[method]
    transport = PROTOCOLS[protocol]
    req = _stream_req(server.address, method, bodies, transport)
    if protocol == "grpcweb" and method in CLIENT_STREAMING:
        with pytest.raises(RequestError) as info:
            await _collect(es_registry, invoker, req)
        assert info.value.code == Code.FAILED_PRECONDITION
        assert "gRPC-Web cannot carry client or bidi streams" in info.value.message
        return
    got = await _collect(es_registry, invoker, req)
    status = got["status"]
    if mode == "h1" and method == "Chat":
        # connect-es refuses bidi streams over HTTP/1.1 (505): the status says why.
        assert not status.success and "HTTP/2" in status.error, status
        return
    assert status.success, status.error
    assert got["messages"] == want
    assert got["headers"]["x-served-by"] == "connect-es"
    assert got["headers"]["x-http-version"] == ("2.0" if mode == "h2" else "1.1")
    assert [t.value for t in status.trailers if t.key == "x-done"] == [method]
    if method == "Say":
        resp = await invoke_unary(es_registry, invoker, catalog_pb.InvokeGRPCRequest(
            endpoint=server.address, service=SERVICE, method=method, request_json=bodies[0],
            transport=transport, timeout_seconds=10))
        assert resp.success, resp.error
        assert json.loads(resp.response_json) == want[0]
        assert resp.metadata["x-http-version"] == ("2.0" if mode == "h2" else "1.1")
        assert resp.metadata["x-done"] == "Say"


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("mode", SERVERS)
async def test_errors_over_both_http_versions(
    es_registry: StubRegistry, invoker: Invoker, server: NodeServer, mode: str, protocol: str,
) -> None:
    resp = await invoke_unary(es_registry, invoker, catalog_pb.InvokeGRPCRequest(
        endpoint=server.address, service=SERVICE, method="Fail",
        request_json='{"sentence": "x"}', transport=PROTOCOLS[protocol], timeout_seconds=10))
    assert (resp.success, resp.status_name) == (False, "FAILED_PRECONDITION")
    assert resp.status_message == "cannot: x"
    assert resp.error == "upstream returned FAILED_PRECONDITION: cannot: x"


async def test_grpc_works_on_h2c_and_names_other_transports_on_http1(
    es_registry: StubRegistry, invoker: Invoker, connect_es_h2: NodeServer,
    connect_es_h1: NodeServer,
) -> None:
    got = await _collect(es_registry, invoker, _stream_req(
        connect_es_h2.address, "Chat", ['{"sentence": "g"}'], T.GRPC))
    assert got["status"].success and got["messages"] == [{"sentence": "you said g"}]
    resp = await invoke_unary(es_registry, invoker, catalog_pb.InvokeGRPCRequest(
        endpoint=connect_es_h1.address, service=SERVICE, method="Say", request_json="{}",
        transport=T.GRPC, timeout_seconds=10))
    assert resp.status_name == "UNAVAILABLE"
    assert "try the Connect or the gRPC-Web transport" in resp.error, resp.error


@pytest.mark.parametrize("protocol", [WireProtocol.CONNECT, WireProtocol.GRPC_WEB])
async def test_a_forced_http_version_the_server_lacks_gets_a_hint(
    connect_es_h2: NodeServer, connect_es_h1: NodeServer, protocol: WireProtocol,
) -> None:
    say = MethodRef(path=f"/{SERVICE}/Say")
    invoker = Invoker()
    try:
        h1 = CallTarget.parse(connect_es_h2.address, protocol=protocol, http=HttpVersion.HTTP1)
        result = await invoker.unary(h1, say, b"", timeout_s=10)
        assert result.status.name == "UNAVAILABLE"
        assert "speaks only HTTP/2 (h2c)" in result.status.error, result.status.error
        h2 = CallTarget.parse(connect_es_h1.address, protocol=protocol, http=HttpVersion.HTTP2)
        result = await invoker.unary(h2, say, b"", timeout_s=10)
        assert result.status.name == "UNAVAILABLE"
        assert "speaks only HTTP/1.1" in result.status.error, result.status.error
    finally:
        await invoker.close()
