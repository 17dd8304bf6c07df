"""invoke_unary / invoke_stream against real upstreams, compared with direct calls."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from connectrpc.protocol import ProtocolType
from google.protobuf import json_format

from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.invocation import (
    CallLimits,
    encode_messages,
    invoke_stream,
    invoke_unary,
    prepare_stream,
    relay,
)
from connectrpc_catalog.problems import Code, RequestError
from connectrpc_catalog.transports import Invoker
from tests.upstream.connect_server import ConnectServer
from tests.upstream.direct import Outcome, connect_call, from_events, from_unary, grpc_call
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.registry import StubRegistry
from tests.upstream.schema import SERVICE, TestSchema

pytest_plugins = ["tests.upstream.fixtures"]

T = catalog_pb.Transport
KIND_REQUESTS: dict[str, list[str]] = {
    "Echo": ['{"message": "hi", "number": 7, "tags": ["a", "b"]}'],
    "ServerStream": ['{"message": "s", "count": 3}'],
    "ClientStream": ['{"message": "a", "number": 1}', '{"message": "b", "number": 2}'],
    "BidiStream": ['{"message": "a", "number": 1}', '{"message": "b", "number": 2}',
                   '{"message": "c"}'],
}
# (server, transport): every transport each server speaks.
ROUTES = [("grpcio", T.GRPC), ("connect", T.GRPC), ("connect", T.CONNECT),
          ("connect", T.GRPC_WEB)]
ROUTE_IDS = ["grpcio-grpc", "connect-grpc", "connect-connect", "connect-grpcweb"]


def unary_req(endpoint: str, method: str, body: str = "", transport: Any = T.CONNECT,
              **kw: Any) -> catalog_pb.InvokeGRPCRequest:
    return catalog_pb.InvokeGRPCRequest(
        endpoint=endpoint, service=SERVICE, method=method, request_json=body,
        transport=transport, **kw)


def stream_req(endpoint: str, method: str, bodies: list[str], transport: Any = T.CONNECT,
               **kw: Any) -> catalog_pb.InvokeStreamRequest:
    return catalog_pb.InvokeStreamRequest(
        endpoint=endpoint, service=SERVICE, method=method, request_messages_json=bodies,
        transport=transport, **kw)


async def collect(registry: StubRegistry, invoker: Invoker,
                  req: catalog_pb.InvokeStreamRequest) -> list[catalog_pb.InvokeStreamEvent]:
    return [e async for e in invoke_stream(registry, invoker, req)]


def _endpoint(server: str, grpc_up: GrpcServer, connect_up: ConnectServer) -> str:
    return grpc_up.address if server == "grpcio" else connect_up.address


async def direct(schema: TestSchema, server: str, transport: Any, method: str,
                 bodies: list[str], grpc_up: GrpcServer, connect_up: ConnectServer,
                 metadata: dict[str, str] | None = None) -> Outcome:
    desc = schema.method(method)
    cls = schema.cls(desc.input_type.full_name)
    msgs = [json_format.Parse(b, cls(), descriptor_pool=schema.pool) for b in bodies]
    md = metadata or {}
    if transport == T.GRPC or desc.client_streaming:
        # Connect client/bidi streams are compared with gRPC to the same server.
        pairs = [(k, base64.b64decode(v) if k.endswith("-bin") else v) for k, v in md.items()]
        address = _endpoint(server, grpc_up, connect_up)
        return await asyncio.to_thread(grpc_call, address, method, msgs, pairs)
    proto = ProtocolType.CONNECT if transport == T.CONNECT else ProtocolType.GRPC_WEB
    return await asyncio.to_thread(
        connect_call, f"http://{connect_up.address}", proto, method, msgs, md)


@pytest.mark.parametrize(("server", "transport"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("method", list(KIND_REQUESTS))
async def test_matrix_matches_direct_call(
    schema: TestSchema, registry: StubRegistry, invoker: Invoker,
    grpc_upstream: GrpcServer, connect_upstream: ConnectServer,
    server: str, transport: Any, method: str,
) -> None:
    bodies = KIND_REQUESTS[method]
    endpoint = _endpoint(server, grpc_upstream, connect_upstream)
    if transport == T.GRPC_WEB and schema.method(method).client_streaming:
        with pytest.raises(RequestError) as info:
            await collect(registry, invoker, stream_req(endpoint, method, bodies, transport))
        assert info.value.code == Code.FAILED_PRECONDITION
        assert "gRPC transport" in info.value.message and "Connect" in info.value.message
        return
    want = await direct(schema, server, transport, method, bodies, grpc_upstream,
                        connect_upstream)
    assert want.code == 0 and want.messages and ("x-served-by", "testsvc") in want.headers
    got = from_events(await collect(registry, invoker,
                                    stream_req(endpoint, method, bodies, transport)))
    assert got == want
    if method == "Echo":
        resp = await invoke_unary(registry, invoker, unary_req(endpoint, method, bodies[0],
                                                               transport))
        assert resp.success and resp.status_name == "OK" and resp.error == ""
        assert from_unary(resp) == want
        assert resp.duration_ms > 0
        assert resp.metadata["x-served-by"] == "testsvc"
        assert resp.metadata["x-done"] == "Echo"


@pytest.mark.parametrize(("server", "transport"), ROUTES, ids=ROUTE_IDS)
async def test_rich_error_details(
    schema: TestSchema, registry: StubRegistry, invoker: Invoker,
    grpc_upstream: GrpcServer, connect_upstream: ConnectServer, server: str, transport: Any,
) -> None:
    endpoint = _endpoint(server, grpc_upstream, connect_upstream)
    body = '{"field": "user.email", "reason": "is required"}'
    want = await direct(schema, server, transport, "Fail", [body], grpc_upstream,
                        connect_upstream)
    resp = await invoke_unary(registry, invoker, unary_req(endpoint, "Fail", body, transport))
    assert not resp.success
    assert (resp.status_code, resp.status_name) == (3, "INVALID_ARGUMENT")
    assert resp.status_message == "request is invalid"
    assert "INVALID_ARGUMENT" in resp.error and "request is invalid" in resp.error
    assert from_unary(resp) == want
    details = json.loads(resp.error_details_json)
    assert details == [
        {"@type": "type.googleapis.com/google.rpc.BadRequest",
         "fieldViolations": [{"field": "user.email", "description": "is required"}]},
        {"@type": "type.googleapis.com/testsvc.v1.CustomDetail",
         "reason": "quota", "retryAfterMs": 1500},
    ]
    events = await collect(registry, invoker, stream_req(endpoint, "Fail", [body], transport))
    status = events[-1].event.value  # type: ignore[union-attr]
    assert isinstance(status, catalog_pb.StreamStatus)
    assert json.loads(status.error_details_json) == details
    assert from_events(events) == want


@pytest.mark.parametrize(("server", "transport"), ROUTES, ids=ROUTE_IDS)
async def test_metadata_echo_keeps_headers_and_trailers_apart(
    schema: TestSchema, registry: StubRegistry, invoker: Invoker,
    grpc_upstream: GrpcServer, connect_upstream: ConnectServer, server: str, transport: Any,
) -> None:
    endpoint = _endpoint(server, grpc_upstream, connect_upstream)
    blob = base64.b64encode(b"\x00\x01\xfe\xff").decode()
    md = {"x-echo-token": "abc 123", "x-echo-data-bin": blob}
    want = await direct(schema, server, transport, "EchoMetadata", ["{}"], grpc_upstream,
                        connect_upstream, md)
    resp = await invoke_unary(
        registry, invoker, unary_req(endpoint, "EchoMetadata", "", transport, metadata=md))
    assert resp.success, resp.error
    got = from_unary(resp)
    assert got == want
    assert ("x-header-token", "abc 123") in got.headers
    assert ("x-header-data-bin", blob) in got.headers
    assert ("x-trailer-token", "abc 123") in got.trailers
    assert ("x-trailer-data-bin", blob) in got.trailers
    assert not any(k.startswith("x-trailer-") for k, _ in got.headers)
    assert not any(k.startswith("x-header-") for k, _ in got.trailers)
    assert resp.metadata["x-header-token"] == "abc 123"
    assert resp.metadata["x-trailer-token"] == "abc 123"
    events = await collect(registry, invoker,
                           stream_req(endpoint, "EchoMetadata", [], transport, metadata=md))
    assert from_events(events) == want


@pytest.mark.parametrize(("server", "transport"), ROUTES, ids=ROUTE_IDS)
async def test_deadline_exceeded(
    registry: StubRegistry, invoker: Invoker, recorder: Any,
    grpc_upstream: GrpcServer, connect_upstream: ConnectServer, server: str, transport: Any,
) -> None:
    endpoint = _endpoint(server, grpc_upstream, connect_upstream)
    before = recorder.cancelled["Sleep"]
    start = time.perf_counter()
    resp = await invoke_unary(registry, invoker, unary_req(
        endpoint, "Sleep", '{"millis": 5000}', transport, timeout_seconds=1))
    elapsed = time.perf_counter() - start
    assert not resp.success
    assert (resp.status_code, resp.status_name) == (4, "DEADLINE_EXCEEDED")
    assert resp.error
    assert 0.9 < elapsed < 3.0
    assert 900 < resp.duration_ms < 3000
    # The server saw the call end before it finished sleeping.
    assert await asyncio.to_thread(recorder.wait_cancelled, "Sleep", before + 1, 5.0)


@pytest.mark.parametrize("transport", [T.GRPC, T.CONNECT, T.GRPC_WEB])
async def test_unreachable_endpoint(
    registry: StubRegistry, invoker: Invoker, closed_port: int, transport: Any
) -> None:
    endpoint = f"127.0.0.1:{closed_port}"
    resp = await invoke_unary(registry, invoker, unary_req(
        endpoint, "Echo", "{}", transport, timeout_seconds=5))
    assert not resp.success
    assert (resp.status_code, resp.status_name) == (14, "UNAVAILABLE")
    assert endpoint in resp.error or "127.0.0.1" in resp.error
    events = await collect(registry, invoker, stream_req(
        endpoint, "ServerStream", ['{"count": 2}'], transport, timeout_seconds=5))
    assert [e.event.field for e in events if e.event] == ["status"]
    status = events[0].event.value  # type: ignore[union-attr]
    assert isinstance(status, catalog_pb.StreamStatus)
    assert status.status_name == "UNAVAILABLE" and not status.success


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("server", "transport"), ROUTES, ids=ROUTE_IDS)
async def test_cancelling_the_stream_cancels_upstream(
    registry: StubRegistry, invoker: Invoker, recorder: Any,
    grpc_upstream: GrpcServer, connect_upstream: ConnectServer, server: str, transport: Any,
) -> None:
    endpoint = _endpoint(server, grpc_upstream, connect_upstream)
    before = recorder.cancelled["ServerStream"]
    gen = invoke_stream(registry, invoker, stream_req(
        endpoint, "ServerStream", ['{"message": "m", "count": 1000, "interval_ms": 50}'],
        transport))
    seen = []
    async for event in gen:
        seen.append(event.event.field if event.event else "")
        if seen.count("message") == 2:
            break
    await gen.aclose()
    assert seen == ["headers", "message", "message"]
    assert await asyncio.to_thread(recorder.wait_cancelled, "ServerStream", before + 1, 5.0)


async def test_server_stream_error_at_end_keeps_messages(
    registry: StubRegistry, invoker: Invoker, grpc_upstream: GrpcServer,
    connect_upstream: ConnectServer,
) -> None:
    for endpoint, transport in [(grpc_upstream.address, T.GRPC),
                                (connect_upstream.address, T.CONNECT),
                                (connect_upstream.address, T.GRPC_WEB)]:
        events = await collect(registry, invoker, stream_req(
            endpoint, "ServerStream", ['{"message": "m", "count": 2, "failAtEnd": true}'],
            transport))
        out = from_events(events)
        assert [m["message"] for m in out.messages] == ["m 0", "m 1"]
        assert out.code == 8 and out.message == "stream failed at end"


async def test_stream_events_carry_timing(
    registry: StubRegistry, invoker: Invoker, connect_upstream: ConnectServer,
) -> None:
    events = await collect(registry, invoker, stream_req(
        connect_upstream.address, "ServerStream",
        ['{"message": "t", "count": 3, "interval_ms": 100}'], T.CONNECT))
    msgs = [e.event.value for e in events if e.event and e.event.field == "message"]
    times = [m.elapsed_ms for m in msgs]  # type: ignore[union-attr]
    assert len(times) == 3 and times == sorted(times)
    assert times[2] - times[0] >= 150  # arrival times, not the end of the call
    status = events[-1].event.value  # type: ignore[union-attr]
    assert isinstance(status, catalog_pb.StreamStatus)
    assert status.duration_ms >= times[-1] and status.message_count == 3


async def test_connect_json_codec_and_any_resolution(
    registry: StubRegistry, invoker: Invoker, connect_upstream: ConnectServer,
) -> None:
    body = json.dumps({"message": "any", "extra": {
        "@type": "type.googleapis.com/testsvc.v1.CustomDetail", "reason": "r",
        "retryAfterMs": 5}})
    results = []
    for codec in ("json", "proto"):
        resp = await invoke_unary(registry, invoker, unary_req(
            connect_upstream.address, "Echo", body, T.CONNECT, connect_codec=codec))
        assert resp.success, resp.error
        results.append(json.loads(resp.response_json))
        content_type = [h.value for h in resp.response_headers if h.key == "content-type"]
        assert content_type == [f"application/{codec}"]
    assert results[0] == results[1] == json.loads(body)


async def test_path_prefix(
    registry: StubRegistry, invoker: Invoker, connect_prefixed_upstream: ConnectServer,
) -> None:
    url = connect_prefixed_upstream.url
    assert url.endswith("/api")
    for transport in (T.CONNECT, T.GRPC_WEB):
        resp = await invoke_unary(registry, invoker, unary_req(
            url, "Echo", '{"message": "p"}', transport))
        assert resp.success, resp.error
        assert json.loads(resp.response_json) == {"message": "p"}
    resp = await invoke_unary(registry, invoker, unary_req(
        url.removesuffix("/api"), "Echo", '{"message": "p"}', T.CONNECT))
    assert not resp.success and resp.status_name == "UNIMPLEMENTED"  # HTTP 404


@pytest.mark.parametrize(("server", "transport"), ROUTES, ids=ROUTE_IDS)
async def test_raw_payload_events_carry_the_messages_bytes(
    schema: TestSchema, registry: StubRegistry, invoker: Invoker,
    grpc_upstream: GrpcServer, connect_upstream: ConnectServer, server: str, transport: Any,
) -> None:
    """rawPayload: each message event holds binary protobuf (no json) that decodes to what
    the JSON events show, for every kind of method and both Connect codecs."""
    endpoint = _endpoint(server, grpc_upstream, connect_upstream)
    codecs = ("proto", "json") if transport == T.CONNECT else ("proto",)
    for method, bodies in KIND_REQUESTS.items():
        if transport == T.GRPC_WEB and schema.method(method).client_streaming:
            continue
        out_cls = schema.cls(schema.method(method).output_type.full_name)
        for codec in codecs:
            plain = await collect(registry, invoker, stream_req(
                endpoint, method, bodies, transport, connect_codec=codec))
            raw = await collect(registry, invoker, stream_req(
                endpoint, method, bodies, transport, connect_codec=codec, raw_payload=True))
            assert [e.event.field for e in raw] == [e.event.field for e in plain]  # type: ignore[union-attr]
            msgs = [e.event.value for e in raw if e.event and e.event.field == "message"]
            assert msgs, (method, codec)
            decoded = []
            for i, m in enumerate(msgs):
                assert isinstance(m, catalog_pb.StreamMessage)
                assert m.json == "" and m.payload and m.index == i
                decoded.append(json_format.MessageToDict(
                    out_cls.FromString(m.payload), descriptor_pool=schema.pool))
            assert decoded == from_events(plain).messages
            assert from_events(plain).code == 0


async def test_raw_payload_reaches_live_calls(
    schema: TestSchema, registry: StubRegistry, invoker: Invoker, grpc_upstream: GrpcServer,
) -> None:
    """Live calls (calls.py) prepare and relay through the same functions: a prepared
    call with rawPayload relays binary messages, fed one payload at a time."""
    req = stream_req(grpc_upstream.address, "BidiStream", [], T.GRPC, raw_payload=True)
    limits = CallLimits()
    prepared = await prepare_stream(registry, req, limits)
    texts = ['{"message": "a"}', '{"message": "b"}']
    payloads = await encode_messages(registry, prepared, texts, "messageJson", limits)

    async def one_at_a_time() -> Any:
        for p in payloads:
            yield p

    events = [e async for e in relay(registry, invoker, prepared, one_at_a_time())]
    out_cls = schema.cls(schema.method("BidiStream").output_type.full_name)
    msgs = [e.event.value for e in events if e.event and e.event.field == "message"]
    assert [out_cls.FromString(m.payload).message for m in msgs] == ["a", "b"]  # type: ignore[union-attr,attr-defined]
    assert all(m.json == "" for m in msgs)  # type: ignore[union-attr]
    assert events[-1].event is not None and events[-1].event.field == "status"


# -- catalog request errors --------------------------------------------------------


async def test_bad_request_json_is_invalid_argument_with_path(
    registry: StubRegistry, invoker: Invoker, connect_upstream: ConnectServer,
) -> None:
    ep = connect_upstream.address
    with pytest.raises(RequestError) as info:
        await invoke_unary(registry, invoker, unary_req(ep, "Echo", '{"numbr": 1}'))
    assert info.value.code == Code.INVALID_ARGUMENT
    assert "numbr" in info.value.message and "testsvc.v1.EchoRequest" in info.value.message
    with pytest.raises(RequestError) as info:
        await invoke_unary(registry, invoker, unary_req(
            ep, "Echo", '{"extra": {"@type": "type.googleapis.com/testsvc.v1.CustomDetail",'
            ' "retryAfterMs": "soon"}}'))
    assert info.value.code == Code.INVALID_ARGUMENT
    assert "retryAfterMs" in info.value.message or "retry_after_ms" in info.value.message
    with pytest.raises(RequestError) as info:
        await collect(registry, invoker, stream_req(
            ep, "ClientStream", ['{"message": "ok"}', '{"number": "x"}']))
    assert info.value.code == Code.INVALID_ARGUMENT
    assert "requestMessagesJson[1]" in info.value.message  # the API's JSON name
    assert "number" in info.value.message


async def test_streaming_method_via_invoke_grpc_is_invalid_argument(
    registry: StubRegistry, invoker: Invoker, connect_upstream: ConnectServer,
) -> None:
    for method in ("ServerStream", "ClientStream", "BidiStream"):
        with pytest.raises(RequestError) as info:
            await invoke_unary(registry, invoker, unary_req(connect_upstream.address, method))
        assert info.value.code == Code.INVALID_ARGUMENT
        assert "InvokeStream" in info.value.message


async def test_unknown_method_and_empty_endpoint(
    registry: StubRegistry, invoker: Invoker, connect_upstream: ConnectServer,
) -> None:
    with pytest.raises(RequestError) as info:
        await invoke_unary(registry, invoker, unary_req(connect_upstream.address, "Nope"))
    assert info.value.code == Code.NOT_FOUND
    with pytest.raises(RequestError) as info:
        await invoke_unary(registry, invoker, unary_req("", "Echo"))
    assert info.value.code == Code.INVALID_ARGUMENT and "endpoint" in info.value.message
    for bad in ("no-port", "ftp://x:1", "host:99999", "http://"):
        with pytest.raises(RequestError) as info:
            await invoke_unary(registry, invoker, unary_req(bad, "Echo"))
        assert info.value.code == Code.INVALID_ARGUMENT, bad


async def test_default_target_is_used_for_empty_endpoint(
    schema: TestSchema, invoker: Invoker, grpc_upstream: GrpcServer,
) -> None:
    target = catalog_pb.Target(endpoint=grpc_upstream.address, transport=T.GRPC)
    registry = StubRegistry(schema, {SERVICE: target})
    resp = await invoke_unary(registry, invoker, unary_req("", "Echo", '{"message": "d"}'))
    assert resp.success and json.loads(resp.response_json) == {"message": "d"}


async def test_bad_metadata_is_invalid_argument(
    registry: StubRegistry, invoker: Invoker, connect_upstream: ConnectServer,
) -> None:
    for md in ({"bad key": "v"}, {"x-data-bin": "***"}, {"content-type": "text/plain"},
               {"grpc-timeout": "1S"}, {"x-v": "caf\u00e9"}):
        with pytest.raises(RequestError) as info:
            await invoke_unary(registry, invoker, unary_req(
                connect_upstream.address, "Echo", "", metadata=md))
        assert info.value.code == Code.INVALID_ARGUMENT, md


async def test_unary_method_takes_one_message_in_invoke_stream(
    registry: StubRegistry, invoker: Invoker, connect_upstream: ConnectServer,
) -> None:
    with pytest.raises(RequestError) as info:
        await collect(registry, invoker, stream_req(
            connect_upstream.address, "Echo", ["{}", "{}"]))
    assert info.value.code == Code.INVALID_ARGUMENT


async def test_connect_json_codec_streams(
    registry: StubRegistry, invoker: Invoker, connect_upstream: ConnectServer,
) -> None:
    outcomes = {}
    for codec in ("json", "proto"):
        for method in ("ServerStream", "BidiStream"):
            events = await collect(registry, invoker, stream_req(
                connect_upstream.address, method, KIND_REQUESTS[method], T.CONNECT,
                connect_codec=codec))
            first = events[0].event
            assert first is not None and first.field == "headers"
            content_type = [h.value for h in first.value.headers  # type: ignore[union-attr]
                            if h.key == "content-type"]
            assert content_type == [f"application/connect+{codec}"]
            outcomes[codec, method] = from_events(events)
            assert outcomes[codec, method].code == 0
    assert outcomes["json", "ServerStream"] == outcomes["proto", "ServerStream"]
    assert outcomes["json", "BidiStream"] == outcomes["proto", "BidiStream"]


async def test_close_while_opening_refuses_the_call(
    registry: StubRegistry, connect_tls_upstream: ConnectServer, tls_material: Any,
) -> None:
    invoker = Invoker()
    call = asyncio.create_task(invoke_unary(registry, invoker, unary_req(
        connect_tls_upstream.address, "Echo", "{}", T.CONNECT, use_tls=True,
        ca_cert_pem=tls_material.ca_pem)))
    await asyncio.sleep(0)  # the call is now loading its TLS context in a thread
    await invoker.close()
    with pytest.raises(RequestError) as info:
        await call
    assert info.value.code == Code.FAILED_PRECONDITION
    assert len(invoker) == 0


async def test_close_during_a_call_ends_it_as_data(
    registry: StubRegistry, grpc_upstream: GrpcServer, connect_upstream: ConnectServer,
) -> None:
    for endpoint, transport in ((grpc_upstream.address, T.GRPC),
                                (connect_upstream.address, T.CONNECT)):
        invoker = Invoker()
        call = asyncio.create_task(invoke_unary(registry, invoker, unary_req(
            endpoint, "Sleep", '{"millis": 2000}', transport)))
        await asyncio.sleep(0.3)  # the call is in flight
        await invoker.close()
        resp = await asyncio.wait_for(call, 5)
        assert not resp.success
        assert resp.status_name in ("CANCELLED", "UNAVAILABLE"), resp
