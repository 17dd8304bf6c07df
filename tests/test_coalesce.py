"""api/coalesce.py: streamed body chunks leave in few writes, in order, bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connectrpc_catalog.api.coalesce import Coalesce
from connectrpc_catalog.api.refusal import Message

START: Message = {"type": "http.response.start", "status": 200, "headers": []}


def chunk(data: bytes, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


class Wire:
    """The server side of send: records every message; `gate` can hold writes back."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Event()
        self.waiting = asyncio.Event()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            self.waiting.set()
            await self.gate.wait()
        self.sent.append(message)
        self.arrived.set()

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def serve(app: Any, wire: Wire, **kw: Any) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    await Coalesce(app, **kw)({"type": "http"}, receive, wire.send)


async def test_a_fast_stream_leaves_in_few_writes_in_order() -> None:
    parts = [f"event {i};".encode() for i in range(1000)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        for p in parts:
            await send(chunk(p))
        await send(chunk(b"end", more=False))

    wire = Wire()
    await serve(app, wire, max_delay=10.0, max_bytes=1024)
    assert wire.sent[0] is START
    assert wire.body() == b"".join(parts) + b"end"
    bodies = [m for m in wire.sent if m["type"] == "http.response.body"]
    assert len(bodies) < len(parts) / 20  # ~1 KiB per write, not one write per event
    assert all(m["more_body"] for m in bodies[:-1]) and not bodies[-1]["more_body"]
    assert all(len(m["body"]) <= 1024 + 16 for m in bodies[:-1])


async def test_a_quiet_stream_is_written_without_waiting_for_the_next_event() -> None:
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(chunk(b"first"))
        await release.wait()  # the upstream is quiet: nothing else comes for a while
        await send(chunk(b"", more=False))

    wire = Wire()
    task = asyncio.create_task(serve(app, wire, max_delay=0.001))
    while wire.body() != b"first":  # the timer writes it while the app still waits
        wire.arrived.clear()
        await asyncio.wait_for(wire.arrived.wait(), 10)
    release.set()
    await task
    assert wire.body() == b"first" and not wire.sent[-1]["more_body"]


async def test_unary_responses_and_trailers_pass_through_in_order() -> None:
    final = chunk(b"whole", more=False)

    async def unary(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(final)

    wire = Wire()
    await serve(unary, wire)
    assert wire.sent == [START, final] and wire.sent[1] is final  # untouched

    trailers = {"type": "http.response.trailers", "headers": [], "more_trailers": False}

    async def grpc(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(chunk(b"a"))
        await send(chunk(b"b"))
        await send(chunk(b"", more=True))
        await send(trailers)

    wire = Wire()
    await serve(grpc, wire, max_delay=10.0)
    assert [m["type"] for m in wire.sent] == [
        "http.response.start", "http.response.body", "http.response.trailers"]
    assert wire.sent[1]["body"] == b"ab"


async def test_a_slow_reader_holds_the_writer_back() -> None:
    """Backpressure: once max_bytes are buffered, send waits for the write."""
    sent = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal sent
        await send(START)
        for _ in range(1000):
            await send(chunk(b"x" * 100))
            sent += 1
        await send(chunk(b"", more=False))

    wire = Wire()
    wire.gate.clear()  # the client does not read
    task = asyncio.create_task(serve(app, wire, max_delay=10.0, max_bytes=1000))
    for _ in range(50):
        await asyncio.sleep(0)
    assert 0 < sent <= 11  # 1,000 bytes buffered, then the producer waits for the write
    assert wire.body() == b""
    wire.gate.set()
    await task
    assert sent == 1000 and wire.body() == b"x" * 100_000


async def test_a_failed_timed_write_is_raised_to_the_app() -> None:
    class Gone(Exception):
        pass

    seen: list[BaseException] = []
    first_write = asyncio.Event()

    async def broken(message: Message) -> None:
        if message["type"] == "http.response.body":
            first_write.set()
            raise Gone

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(chunk(b"a"))
        await first_write.wait()  # the timer tried, and the connection was gone
        await asyncio.sleep(0)
        try:
            await send(chunk(b"b"))
        except Gone as exc:
            seen.append(exc)
            raise

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    with pytest.raises(Gone):
        await Coalesce(app, max_delay=0.001)({"type": "http"}, receive, broken)
    assert len(seen) == 1


async def test_cancelling_the_response_leaves_no_write_behind() -> None:
    """A stream cancelled while a timed write waits on a client that does not read: the
    write is cancelled with it, not left running."""
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(chunk(b"a"))
        started.set()
        await asyncio.Event().wait()  # an upstream that never sends again

    wire = Wire()
    wire.gate.clear()  # the client does not read: the timed write blocks
    task = asyncio.create_task(serve(app, wire, max_delay=0.001))
    await started.wait()
    await asyncio.wait_for(wire.waiting.wait(), 10)  # the timer's write waits on the client
    assert [t for t in asyncio.all_tasks() if "_timed_write" in repr(t.get_coro())]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(5):
        await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if "_timed_write" in repr(t.get_coro())]
    assert wire.body() == b""
