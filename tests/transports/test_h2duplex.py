"""The full-duplex HTTP/2 client (transports/h2duplex.py) behind Connect client and bidi
streams: a conversation with connect-es, and its bounds against a raw HTTP/2 server (h2's
server side on a real socket) that shrinks windows, floods, resets and goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from connectrpc_catalog.transports import (
    Call,
    CallStatus,
    CallTarget,
    Code,
    HttpVersion,
    MethodRef,
    ResponseHeaders,
    ResponseMessage,
    TLSConfig,
    WireProtocol,
    h2duplex,
)
from connectrpc_catalog.transports.connect import ConnectTransport
from connectrpc_catalog.transports.envelope import envelope
from tests.upstream.node import SERVICE, NodeServer
from tests.upstream.tls import TLSMaterial

pytest_plugins = ["tests.upstream.fixtures"]

BIDI = MethodRef(path=f"/{SERVICE}/Chat", client_streaming=True, server_streaming=True)


class Feed:
    """Request payloads handed to a call one at a time (what a live call does)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (item := await self.queue.get()) is not None:
            yield item


async def _next_message(events: AsyncIterator[object]) -> object:
    while True:
        event = await asyncio.wait_for(anext(events), 10)
        if not isinstance(event, ResponseHeaders):
            return event


async def test_a_bidi_call_to_connect_es_is_a_conversation(connect_es_h2: NodeServer) -> None:
    target = CallTarget.parse(connect_es_h2.address, protocol=WireProtocol.CONNECT, codec="json")
    transport = await ConnectTransport.open(target)
    feed = Feed()
    events = transport.stream(Call.start(target, BIDI, (), 10), feed)
    try:
        for i in range(3):
            await feed.queue.put(json.dumps({"sentence": f"s{i}"}).encode())
            reply = await _next_message(events)  # before the next message is sent
            assert isinstance(reply, ResponseMessage), reply
            assert json.loads(reply.payload)["sentence"] == f"you said s{i}"
        await feed.queue.put(None)
        status = await _next_message(events)
        assert isinstance(status, CallStatus) and status.ok, status
    finally:
        await events.aclose()
        await transport.close()


# -- a raw HTTP/2 server -------------------------------------------------------------


@dataclass
class Peer:
    """The server side of one connection, for a scenario to drive."""

    conn: h2.connection.H2Connection
    writer: asyncio.StreamWriter
    events: asyncio.Queue[h2.events.Event] = field(default_factory=asyncio.Queue)
    received: bytearray = field(default_factory=bytearray)
    log: list[str] = field(default_factory=list)

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    async def event(self, kind: type[h2.events.Event]) -> h2.events.Event:
        while True:
            event = await asyncio.wait_for(self.events.get(), 10)
            if isinstance(event, kind):
                return event

    def respond(self, sid: int) -> None:
        self.conn.send_headers(sid, [(":status", "200"),
                                     ("content-type", "application/connect+proto")])
        self.flush()


Scenario = Callable[[Peer], Awaitable[None]]


@dataclass
class RawServer:
    port: int
    peers: list[Peer]


Start = Callable[..., Awaitable[RawServer]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def start(scenario: Scenario, settings: dict[int, int] | None = None) -> RawServer:
        peers: list[Peer] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            conn.local_settings = h2.settings.Settings(client=False, initial_values=settings or {})
            conn.initiate_connection()
            peer = Peer(conn, writer)
            peers.append(peer)
            peer.flush()
            task = asyncio.ensure_future(scenario(peer))
            try:
                while data := await reader.read(65536):
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.DataReceived):
                            peer.received += event.data
                        peer.events.put_nowait(event)
                    peer.flush()
            except (ConnectionError, h2.exceptions.ProtocolError):
                pass
            finally:
                peer.events.put_nowait(h2.events.ConnectionTerminated())
                await asyncio.wait([task], timeout=5)
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return RawServer(server.sockets[0].getsockname()[1], peers)

    yield start
    for server in servers:
        server.close()


def _target(port: int) -> CallTarget:
    return CallTarget(host="127.0.0.1", port=port, protocol=WireProtocol.CONNECT,
                      http=HttpVersion.HTTP2)


async def _open(port: int, seconds: float = 10) -> tuple[ConnectTransport, Call]:
    target = _target(port)
    return await ConnectTransport.open(target), Call.start(target, BIDI, (), seconds)


async def test_sends_wait_for_the_servers_flow_control_window(raw_server: Start) -> None:
    """The server allows 100 bytes at a time: a 5,000-byte message still arrives whole,
    sent as the server opens its window."""

    async def scenario(peer: Peer) -> None:
        sid = (await peer.event(h2.events.RequestReceived)).stream_id
        while len(peer.received) < 5005:
            event = await peer.event(h2.events.DataReceived)
            peer.log.append(f"chunk {len(event.data)}")
            peer.conn.acknowledge_received_data(event.flow_controlled_length, sid)
            peer.flush()
        peer.respond(sid)
        peer.conn.send_data(sid, envelope(0, bytes(peer.received[5:15])))
        peer.conn.send_data(sid, envelope(2, b"{}"), end_stream=True)
        peer.flush()

    server = await raw_server(scenario, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})
    transport, call = await _open(server.port)
    payload = bytes(range(256)) * 19 + bytes(136)
    feed = Feed()
    stream = transport.stream(call, feed)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)  # the server's SETTINGS (its window) came and were acknowledged
    for item in (payload, None):
        await feed.queue.put(item)
    events = [await first] + [e async for e in stream]
    await transport.close()
    assert isinstance(events[-1], CallStatus) and events[-1].ok, events
    assert [e.payload for e in events if isinstance(e, ResponseMessage)] == [payload[:10]]
    peer = server.peers[0]
    assert bytes(peer.received) == envelope(0, payload)
    assert len(peer.log) >= 50 and all(int(c.split()[1]) <= 100 for c in peer.log)


async def test_a_slow_reader_holds_the_server_to_the_receive_window(raw_server: Start) -> None:
    """The server tries to send 4 MiB while the caller reads nothing: it can send at most
    the client's window; once the caller reads, everything arrives."""
    chunk = envelope(0, b"x" * 16_000)
    total = 4 * 1024 * 1024 // len(chunk)

    async def scenario(peer: Peer) -> None:
        sid = (await peer.event(h2.events.RequestReceived)).stream_id
        peer.respond(sid)
        sent = 0
        while sent < total:
            if peer.conn.local_flow_control_window(sid) < len(chunk):
                peer.log.append(f"blocked after {sent * len(chunk)}")
                await peer.event(h2.events.WindowUpdated)
                continue
            peer.conn.send_data(sid, chunk)
            peer.flush()
            sent += 1
        peer.conn.send_data(sid, envelope(2, b"{}"), end_stream=True)
        peer.flush()

    server = await raw_server(scenario)
    transport, call = await _open(server.port)
    events = transport.stream(call, [b""])
    assert isinstance(await anext(events), ResponseHeaders)
    assert isinstance(await anext(events), ResponseMessage)
    await asyncio.sleep(0.5)  # the server sends what the window allows, then waits
    peer = server.peers[0]
    first_block = int(peer.log[0].split()[-1])
    assert first_block <= h2duplex._WINDOW + len(chunk), peer.log
    rest = [e async for e in events]
    await transport.close()
    assert sum(isinstance(e, ResponseMessage) for e in rest) == total - 1
    assert isinstance(rest[-1], CallStatus) and rest[-1].ok


async def test_closing_a_call_early_resets_its_stream(raw_server: Start) -> None:
    async def scenario(peer: Peer) -> None:
        sid = (await peer.event(h2.events.RequestReceived)).stream_id
        peer.respond(sid)
        peer.conn.send_data(sid, envelope(0, b"one"))
        peer.flush()
        reset = await peer.event(h2.events.StreamReset)
        peer.log.append(f"reset {h2.errors.ErrorCodes(reset.error_code).name}")  # type: ignore[attr-defined]

    server = await raw_server(scenario)
    transport, call = await _open(server.port)
    feed = Feed()
    events = transport.stream(call, feed)
    await feed.queue.put(b"")
    assert isinstance(await _next_message(events), ResponseMessage)
    await events.aclose()  # what CancelCall does
    for _ in range(100):
        if server.peers[0].log:
            break
        await asyncio.sleep(0.05)
    await transport.close()
    assert server.peers[0].log == ["reset CANCEL"]


@pytest.mark.parametrize("how", ["reset", "goaway", "oversized", "deadline"])
async def test_a_broken_stream_ends_with_a_status(raw_server: Start, how: str) -> None:
    async def scenario(peer: Peer) -> None:
        sid = (await peer.event(h2.events.RequestReceived)).stream_id
        peer.respond(sid)
        if how == "reset":
            peer.conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        elif how == "goaway":
            peer.conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        elif how == "oversized":  # a frame header announcing 100 MiB
            peer.conn.send_data(sid, bytes((0,)) + (100 << 20).to_bytes(4, "big"))
        peer.flush()
        await peer.event(h2.events.ConnectionTerminated)

    server = await raw_server(scenario)
    transport, call = await _open(server.port, seconds=1.0)
    events = [e async for e in transport.stream(call, Feed())]
    await transport.close()
    status = events[-1]
    assert isinstance(status, CallStatus)
    want = {
        "reset": (Code.UNAVAILABLE, "REFUSED_STREAM"),
        "goaway": (Code.UNAVAILABLE, "GOAWAY ENHANCE_YOUR_CALM"),
        "oversized": (Code.INTERNAL, "exceeds the limit"),
        "deadline": (Code.DEADLINE_EXCEEDED, "deadline exceeded"),
    }[how]
    assert status.code == want[0] and want[1] in status.message, status


@pytest.fixture
def http1_tls_server(tls_material: TLSMaterial) -> Iterator[int]:
    """The test service on hypercorn over TLS whose ALPN offers only http/1.1."""
    import os
    import socket
    import tempfile
    import threading

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from tests.upstream.behaviour import Recorder
    from tests.upstream.connect_server import TestServiceApp

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.alpn_protocols = ["http/1.1"]
    config.loglevel = "WARNING"
    folder = tempfile.mkdtemp(prefix="ui-scale-h1tls-")
    config.certfile, config.keyfile = os.path.join(folder, "c.pem"), os.path.join(folder, "k.pem")
    with open(config.certfile, "wb") as fh:
        fh.write(tls_material.server.cert_chain_pem)
    with open(config.keyfile, "wb") as fh:
        fh.write(tls_material.server.key_pem)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    app = TestServiceApp(Recorder())
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serve(app, config, shutdown_trigger=stop.wait),),  # type: ignore[arg-type]
        daemon=True,
    )
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        for name in ("c.pem", "k.pem"):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


async def test_a_tls_server_that_picks_http1_gets_the_call_over_http1(
    http1_tls_server: int, tls_material: TLSMaterial
) -> None:
    """ALPN chose http/1.1: the client stream goes over httpx (all sent, then read)."""
    target = CallTarget(host="127.0.0.1", port=http1_tls_server, protocol=WireProtocol.CONNECT,
                        tls=TLSConfig(ca_pem=tls_material.ca_pem), codec="json")
    transport = await ConnectTransport.open(target)
    method = MethodRef(path="/testsvc.v1.TestService/ClientStream", client_streaming=True)
    try:
        for _ in range(2):  # the second call goes straight to HTTP/1.1
            call = Call.start(target, method, (), 10)
            events = [e async for e in transport.stream(call, [b'{"message": "a"}',
                                                               b'{"message": "b"}'])]
            status = events[-1]
            assert isinstance(status, CallStatus) and status.ok, status
            [reply] = [e for e in events if isinstance(e, ResponseMessage)]
            assert json.loads(reply.payload)["message"]
            assert transport._tls_speaks_http1  # ALPN said so; remembered for the next call
    finally:
        await transport.close()


async def test_the_dialled_address_is_used_and_the_name_kept(raw_server: Start) -> None:
    """With `dial` (the address the access policy checked) the connection goes there, and
    the name stays in :authority."""

    async def scenario(peer: Peer) -> None:
        request = await peer.event(h2.events.RequestReceived)
        head = dict(request.headers)  # type: ignore[attr-defined]
        peer.log.append(head[b":authority"].decode())
        sid = request.stream_id  # type: ignore[attr-defined]
        peer.respond(sid)
        peer.conn.send_data(sid, envelope(2, b"{}"), end_stream=True)
        peer.flush()

    server = await raw_server(scenario)
    target = CallTarget(host="upstream.test", port=server.port, protocol=WireProtocol.CONNECT,
                        http=HttpVersion.HTTP2, dial="127.0.0.1")
    transport = await ConnectTransport.open(target)
    events = [e async for e in transport.stream(Call.start(target, BIDI, (), 10), [b""])]
    await transport.close()
    assert isinstance(events[-1], CallStatus) and events[-1].ok, events
    assert server.peers[0].log == [f"upstream.test:{server.port}"]
