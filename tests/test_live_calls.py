"""Live calls (StartCall, WatchCall, SendMessage, CloseSend, CancelCall) over HTTP/1.1,
against the real upstream test servers; and ExportDescriptorSet."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from connectrpc_catalog.app import AppConfig
from tests.connect_stream import stream_frames
from tests.upstream.connect_server import ConnectServer
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.schema import PROTO_DIR, SERVICE
from tests.upstream.tls import TLSMaterial

from .catalog_server import RunningCatalog, run_catalog

pytest_plugins = ["tests.upstream.fixtures"]

API = "/catalog.v1.CatalogService/"


class Api:
    def __init__(self, client: httpx.AsyncClient, url: str, sid: str) -> None:
        self.client, self.url, self.sid = client, url, sid

    async def post(self, method: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            self.url + API + method, json=body, headers={"x-session-id": self.sid}
        )

    async def ok(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.post(method, body)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    async def watch(self, call_id: str) -> AsyncIterator[dict[str, Any]]:
        data = json.dumps({"callId": call_id}).encode()
        async with self.client.stream(
            "POST",
            self.url + API + "WatchCall",
            content=struct.pack(">BI", 0, len(data)) + data,
            headers={"content-type": "application/connect+json", "x-session-id": self.sid},
        ) as r:
            assert r.status_code == 200
            async for frame in stream_frames(r):
                yield frame


@pytest.fixture
async def running() -> AsyncIterator[RunningCatalog]:
    with run_catalog(AppConfig()) as r:
        yield r


@pytest.fixture
async def api(running: RunningCatalog) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=30) as client:  # HTTP/1.1 only, as a browser may be
        r = await client.post(running.url + API + "LoadProtos", json={"protoPath": str(PROTO_DIR)})
        assert r.json()["success"], r.text
        yield Api(client, running.url, r.headers["x-session-id"])


def _call(
    endpoint: str,
    method: str,
    transport: str = "TRANSPORT_GRPC",
    messages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "call": {
            "endpoint": endpoint,
            "service": SERVICE,
            "method": method,
            "transport": transport,
            "timeoutSeconds": 20,
            "requestMessagesJson": [json.dumps(m) for m in messages or []],
        }
    }


UPSTREAMS = {
    "grpc": ("grpc_upstream", "TRANSPORT_GRPC", False),
    "connect-h2c": ("connect_upstream", "TRANSPORT_CONNECT", False),
    "connect-tls-h2": ("connect_tls_upstream", "TRANSPORT_CONNECT", True),
}


@pytest.mark.parametrize("upstream", list(UPSTREAMS))
async def test_bidi_is_interactive(
    api: Api, request: pytest.FixtureRequest, upstream: str, tls_material: TLSMaterial
) -> None:
    """Send one message, read its reply, then send the next: over gRPC, and over Connect
    on HTTP/2 (h2c found by the probe, and TLS with ALPN h2: the duplex client)."""
    fixture, transport, tls = UPSTREAMS[upstream]
    server = request.getfixturevalue(fixture)
    body = _call(server.address, "BidiStream", transport)
    if tls:
        body["call"].update(useTls=True, caCertPem=tls_material.ca_pem)
    started = await api.ok("StartCall", body)
    assert started["kind"] == "bidi-streaming"
    call_id = started["callId"]
    events = api.watch(call_id)
    replies: list[dict[str, Any]] = []
    for i in range(3):
        sent = await api.ok(
            "SendMessage", {"callId": call_id, "messageJson": json.dumps({"message": f"m{i}"})}
        )
        assert sent["sentCount"] == i + 1
        # The reply to message i arrives before message i+1 is sent: a conversation.
        event = await asyncio.wait_for(anext(events), 10)
        if i == 0 and "headers" in event:  # a server may send its headers with a reply
            event = await asyncio.wait_for(anext(events), 10)
        assert "message" in event, event
        replies.append(json.loads(event["message"]["json"]))
        assert replies[-1]["message"] == f"m{i}"
    assert (await api.ok("CloseSend", {"callId": call_id}))["sentCount"] == 3
    rest = [e async for e in events]
    assert "status" in rest[-1] and rest[-1]["status"].get("success") is True, rest
    assert rest[-1]["status"]["messageCount"] == 3
    # The call is forgotten once its status was read.
    r = await api.post("SendMessage", {"callId": call_id, "messageJson": "{}"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@pytest.mark.parametrize("transport", ["TRANSPORT_GRPC", "TRANSPORT_CONNECT"])
async def test_client_stream_sends_one_at_a_time(
    api: Api, connect_upstream: ConnectServer, transport: str
) -> None:
    started = await api.ok(
        "StartCall",
        _call(connect_upstream.address, "ClientStream", transport, [{"message": "a", "number": 1}]),
    )
    call_id = started["callId"]
    assert started["sentCount"] == 1
    await api.ok("SendMessage", {"callId": call_id, "messageJson": '{"message":"b"}'})
    await api.ok("CloseSend", {"callId": call_id})
    r = await api.post("SendMessage", {"callId": call_id, "messageJson": "{}"})
    assert r.json()["code"] == "failed_precondition"
    events = [e async for e in api.watch(call_id)]
    [message] = [e["message"] for e in events if "message" in e]
    assert json.loads(message["json"])["message"]  # the server saw both messages
    assert events[-1]["status"].get("success") is True


async def test_cancel_reaches_the_upstream(api: Api, grpc_upstream: GrpcServer) -> None:
    recorder = grpc_upstream.recorder
    before = recorder.cancelled["ServerStream"]
    slow = {"message": "x", "count": 1000, "intervalMs": 50}
    call_id = (
        await api.ok("StartCall", _call(grpc_upstream.address, "ServerStream", messages=[slow]))
    )["callId"]
    events = api.watch(call_id)
    assert "headers" in await anext(events)
    assert "message" in await anext(events)
    assert (await api.ok("CancelCall", {"callId": call_id})).get("cancelled") is True
    rest = [e async for e in events]
    assert rest[-1]["status"]["statusName"] == "CANCELLED"
    assert await asyncio.to_thread(recorder.wait_cancelled, "ServerStream", before + 1)


async def test_live_calls_are_bounded_and_end_with_the_session(
    api: Api, running: RunningCatalog, grpc_upstream: GrpcServer
) -> None:
    limit = running.app.service.call_limits.max_streams  # type: ignore[attr-defined]
    ids = [
        (await api.ok("StartCall", _call(grpc_upstream.address, "BidiStream")))["callId"]
        for _ in range(limit)
    ]
    r = await api.post("StartCall", _call(grpc_upstream.address, "BidiStream"))
    assert r.status_code == 429 and r.json()["code"] == "resource_exhausted"
    # A wrong id, a second watcher, SendMessage on a server stream: clear refusals.
    assert (await api.post("CloseSend", {"callId": "nope"})).json()["code"] == "not_found"
    events = api.watch(ids[0])
    assert "headers" in await anext(events)
    second = [e async for e in api.watch(ids[0])]
    assert second[0]["error"]["code"] == "failed_precondition"
    state = running.app.manager.get(api.sid)
    assert state is not None
    await api.ok("CloseSession", {})
    rest = [e async for e in events]
    assert rest[-1]["status"]["statusName"] == "CANCELLED"
    assert state.invoker.closed  # type: ignore[attr-defined]


async def test_server_stream_and_unary_as_live_calls(
    api: Api, connect_upstream: ConnectServer
) -> None:
    for method, body, count in (
        ("ServerStream", {"message": "s", "count": 4}, 4),
        ("Echo", {"message": "e"}, 1),
    ):
        started = await api.ok(
            "StartCall", _call(connect_upstream.address, method, "TRANSPORT_CONNECT", [body])
        )
        r = await api.post("SendMessage", {"callId": started["callId"], "messageJson": "{}"})
        assert r.json()["code"] == "failed_precondition"
        events = [e async for e in api.watch(started["callId"])]
        assert sum("message" in e for e in events) == count
        assert events[-1]["status"].get("success") is True


async def test_export_descriptor_set(api: Api) -> None:
    import base64

    body = await api.ok("ExportDescriptorSet", {"serviceName": SERVICE})
    fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(body["descriptorSet"]))
    assert body["fileCount"] == len(fds.file) >= 1
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:  # imports come first: each file adds cleanly in order
        pool.Add(f)
    assert pool.FindServiceByName(SERVICE).methods_by_name["BidiStream"]
    everything = await api.ok("ExportDescriptorSet", {})
    assert everything["fileCount"] >= body["fileCount"]
