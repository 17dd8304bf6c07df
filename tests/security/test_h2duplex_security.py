"""A hostile HTTP/2 upstream against the full-duplex client (transports/h2duplex.py):
frames written byte by byte on a real socket after a real h2 handshake.

- a CONTINUATION flood (a header block that never ends) and a header list over the
  client's MAX_HEADER_LIST_SIZE end the call with a status (h2's bounds, kept on);
- DATA past the client's receive window ends the call (flow control is enforced);
- a flood of frames that carry nothing (empty DATA, PING, SETTINGS, unknown types, 1xx
  header blocks) used to keep the call (and the event loop) busy, and the answers to
  PINGs queued without bound, until the deadline: now the call ends after a bounded
  number of them;
- request metadata h2 refuses to send (upper case, a space, a connection header) is a
  status, not an exception out of the transport.
"""

from __future__ import annotations

import asyncio

import h2.events
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
)

from connectrpc_catalog.transports import Call, CallStatus, Code, ResponseHeaders
from tests.transports.test_h2duplex import BIDI, Feed, Peer, Start, _open, _target, raw_server

__all__ = ["raw_server"]  # the fixture, imported for pytest


def _encode(headers: list[tuple[str, str]]) -> bytes:
    return bytes(hpack.Encoder().encode(headers))  # a fresh table: blocks stand alone


def _head_block() -> bytes:
    return _encode([(":status", "200"), ("content-type", "application/connect+proto")])


def _frame_bytes(frames: list[Frame]) -> bytes:
    return b"".join(f.serialize() for f in frames)


async def _call(start: Start, scenario: object, seconds: float = 8.0) -> list[object]:
    server = await start(scenario)
    transport, call = await _open(server.port, seconds=seconds)
    loop = asyncio.get_running_loop()
    began = loop.time()
    events = [e async for e in transport.stream(call, Feed())]
    await transport.close()
    assert loop.time() - began < seconds * 0.9, "the call ran to its deadline"
    return events


def _status(events: list[object]) -> CallStatus:
    status = events[-1]
    assert isinstance(status, CallStatus), events
    assert not status.ok
    return status


async def test_a_continuation_flood_ends_the_call(raw_server: Start) -> None:
    async def scenario(peer: Peer) -> None:
        sid = (await peer.event(h2.events.RequestReceived)).stream_id
        head = HeadersFrame(sid, _head_block()[:1])  # no END_HEADERS
        more = [ContinuationFrame(sid, b"\x00") for _ in range(5000)]
        peer.writer.write(_frame_bytes([head, *more]))
        await peer.event(h2.events.ConnectionTerminated)

    status = _status(await _call(raw_server, scenario))
    assert status.code == Code.UNAVAILABLE and "protocol error" in status.message


async def test_a_header_list_over_the_limit_ends_the_call(raw_server: Start) -> None:
    async def scenario(peer: Peer) -> None:
        sid = (await peer.event(h2.events.RequestReceived)).stream_id
        block = _encode(
            [(":status", "200"), *((f"x-h{i}", "v" * 4000) for i in range(40))]
        )  # 160 KB of headers, in 16 KB pieces
        pieces = [block[i : i + 16_000] for i in range(0, len(block), 16_000)]
        frames: list[Frame] = [HeadersFrame(sid, pieces[0])]
        frames += [ContinuationFrame(sid, p) for p in pieces[1:]]
        frames[-1].flags.add("END_HEADERS")
        peer.writer.write(_frame_bytes(frames))
        await peer.event(h2.events.ConnectionTerminated)

    events = await _call(raw_server, scenario)
    assert not any(isinstance(e, ResponseHeaders) for e in events)
    assert _status(events).code == Code.UNAVAILABLE


async def test_data_past_the_receive_window_ends_the_call(raw_server: Start) -> None:
    async def scenario(peer: Peer) -> None:
        sid = (await peer.event(h2.events.RequestReceived)).stream_id
        head = HeadersFrame(sid, _head_block(), flags=["END_HEADERS"])
        data = [DataFrame(sid, b"\x00" * 16_384) for _ in range(2 * 1024 * 1024 // 16_384)]
        peer.writer.write(_frame_bytes([head, *data]))  # 2 MiB, never waiting for updates
        await peer.event(h2.events.ConnectionTerminated)

    server = await raw_server(scenario)
    transport, call = await _open(server.port, seconds=8.0)
    events = transport.stream(call, Feed())
    assert isinstance(await anext(events), ResponseHeaders)
    await asyncio.sleep(0.5)  # not reading: the window is not opened again
    rest = [e async for e in events]
    await transport.close()
    status = _status(rest)
    assert status.code in (Code.UNAVAILABLE, Code.INTERNAL), status


def _nothing_frames(sid: int, kind: str, n: int) -> bytes:
    if kind == "empty-data":
        return _frame_bytes([DataFrame(sid, b"") for _ in range(n)])
    if kind == "ping":
        return _frame_bytes([PingFrame(0, b"12345678") for _ in range(n)])
    if kind == "settings":
        return _frame_bytes([SettingsFrame(0, {0x3: 100}) for _ in range(n)])
    if kind == "unknown":
        return (bytes((0, 0, 1, 0xEE, 0)) + (0).to_bytes(4, "big") + b"x") * n
    # 1xx header blocks, again and again
    info = _encode([(":status", "103")])
    return _frame_bytes([HeadersFrame(sid, info, flags=["END_HEADERS"]) for _ in range(n)])


@pytest.mark.parametrize("kind", ["empty-data", "ping", "settings", "unknown", "informational"])
async def test_a_flood_of_frames_that_carry_nothing_ends_the_call(
    raw_server: Start,
    kind: str,
) -> None:
    async def scenario(peer: Peer) -> None:
        sid = (await peer.event(h2.events.RequestReceived)).stream_id
        if kind != "informational":
            peer.writer.write(
                _frame_bytes([HeadersFrame(sid, _head_block(), flags=["END_HEADERS"])])
            )
        for _ in range(30):  # 30 x 5,000 frames, and never a response byte
            if peer.writer.is_closing():
                return
            peer.writer.write(_nothing_frames(sid, kind, 5000))
            try:
                await asyncio.wait_for(peer.writer.drain(), 5)
            except (ConnectionError, TimeoutError):
                return
        await peer.event(h2.events.ConnectionTerminated)

    status = _status(await _call(raw_server, scenario))
    assert status.code in (Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED), status
    assert "flood" in status.message or "protocol error" in status.message, status


@pytest.mark.parametrize(
    "metadata",
    [(("X-Upper", "v"),), (("bad name", "v"),), (("connection", "close"),), (("x-a", "v\r\nx"),)],
)
async def test_metadata_h2_refuses_is_a_status(
    raw_server: Start,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    async def scenario(peer: Peer) -> None:
        await peer.event(h2.events.ConnectionTerminated)

    server = await raw_server(scenario)
    target = _target(server.port)
    from connectrpc_catalog.transports.connect import ConnectTransport

    transport = await ConnectTransport.open(target)
    call = Call.start(target, BIDI, metadata, 1.0)
    try:
        events = [e async for e in transport.stream(call, Feed())]
    finally:
        await transport.close()
    status = events[-1]
    assert isinstance(status, CallStatus), events
