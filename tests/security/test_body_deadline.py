"""A request body must arrive whole within `--max-body-seconds`: the security review
found a body trickled in a byte at a time held a connection and its handler for ever on
hypercorn (which times out idle reads only). Raw sockets against a real server: the
in-process hypercorn one (or the one CATALOG_TEST_SERVER names)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from connectrpc_catalog.api.refusal import BodyDeadline, Message, Receive, Scope, Send
from connectrpc_catalog.app import create_app
from connectrpc_catalog.config import ConfigError, load_settings
from connectrpc_catalog.settings import LimitSettings, Settings
from tests.catalog_server import run_catalog, run_cli

PATH = "/catalog.v1.CatalogService/ListServices"
BODY = b"{" + b" " * 15 + b"}"  # 17 bytes of valid JSON


@dataclass(frozen=True)
class Served:
    url: str


@pytest.fixture(scope="module", params=["in-process", "cli"])
def catalog(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The in-process hypercorn server, and the CLI's own server (pyvoy where it installs,
    or what CATALOG_TEST_SERVER names): the sweeper must reach the request's task on both."""
    if request.param == "cli":
        with run_cli("--max-body-seconds", "1") as (url, _proc):
            yield Served(url)
        return
    app = create_app(Settings(limits=LimitSettings(max_body_seconds=1.0)))
    with run_catalog(app=app) as c:
        yield Served(c.url)


def _head(c: Served, length: int) -> bytes:
    host = c.url.removeprefix("http://")
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _connect(c: Served) -> socket.socket:
    host, _, port = c.url.removeprefix("http://").rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    return sock


def _complete(data: bytes) -> bool:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return rest.endswith(b"0\r\n\r\n")  # chunked: its last chunk


def _answer(sock: socket.socket, data: bytes = b"") -> bytes:
    """The rest of an HTTP/1.1 answer begun with `data` (to its Content-Length or EOF)."""
    while not _complete(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_trickled_body_is_refused_at_the_deadline(catalog: Served) -> None:
    sock = _connect(catalog)
    started = time.monotonic()
    sock.sendall(_head(catalog, len(BODY)))
    answered = b""
    sock.settimeout(0.25)
    for byte in BODY:  # 17 bytes x 0.25 s: 4 s, past the 1 s deadline
        try:
            sock.sendall(bytes((byte,)))
        except OSError:
            break  # the server closed the connection after its answer
        try:
            answered += sock.recv(65536)
        except TimeoutError:
            continue
        if answered:
            break
    sock.settimeout(15)
    answered = _answer(sock, answered)
    took = time.monotonic() - started
    sock.close()
    head, _, body = answered.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answered[:200]
    problem = json.loads(body)
    assert problem["code"] == "deadline_exceeded"
    assert "--max-body-seconds" in problem["message"]
    assert took < len(BODY) * 0.25  # answered before the whole body could have come


def test_a_prompt_body_still_passes(catalog: Served) -> None:
    sock = _connect(catalog)
    sock.sendall(_head(catalog, len(BODY)) + BODY)
    head, _, _ = _answer(sock).partition(b"\r\n\r\n")
    sock.close()
    assert head.startswith(b"HTTP/1.1 200"), head


def test_max_body_seconds_is_a_setting_checked_at_start_up() -> None:
    assert load_settings([], env={}).limits.max_body_seconds == 60.0
    env = {"CONNECTRPC_CATALOG_MAX_BODY_SECONDS": "5s"}
    assert load_settings([], env=env).limits.max_body_seconds == 5.0
    with pytest.raises(ConfigError, match="max_body_seconds"):
        load_settings([], env={"CONNECTRPC_CATALOG_MAX_BODY_SECONDS": "never"})


# -- the sweeper, in memory (pure ASGI: no server) ------------------------------------------


def _edge(seconds: float) -> tuple[BodyDeadline, list[Message]]:
    """A BodyDeadline over an app that reads the whole body, then answers 200."""
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return BodyDeadline(app, seconds), sent


def _scope() -> Scope:
    return {"type": "http", "method": "POST", "path": PATH, "headers": []}


def test_the_sweeper_refuses_a_stalled_body_and_then_stops() -> None:
    async def main() -> tuple[list[Message], int, bool]:
        edge, sent = _edge(0.2)
        first = True

        async def receive() -> Message:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b"{", "more_body": True}
            await asyncio.Event().wait()  # the rest never comes
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        await asyncio.wait_for(edge(_scope(), receive, send), 10)
        waiting = len(edge._waiting)
        for _ in range(100):  # bounded: the sweeps stop once nothing waits
            if edge._sweep_at is None:
                break
            await asyncio.sleep(0.05)
        return sent, waiting, edge._sweep_at is None

    sent, waiting, stopped = asyncio.run(main())
    assert sent[0]["status"] == 408
    assert b"--max-body-seconds" in b"".join(m.get("body", b"") for m in sent)
    assert waiting == 0
    assert stopped


def test_prompt_bodies_leave_nothing_listed() -> None:
    async def main() -> tuple[list[int], int]:
        edge, _ = _edge(30.0)
        statuses: list[int] = []

        async def one() -> None:
            async def receive() -> Message:
                await asyncio.sleep(0)
                return {"type": "http.request", "body": b"{}", "more_body": False}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            await edge(_scope(), receive, send)

        await asyncio.gather(*(one() for _ in range(200)))
        return statuses, len(edge._waiting)

    statuses, waiting = asyncio.run(main())
    assert statuses == [200] * 200
    assert waiting == 0


def test_a_cancel_from_elsewhere_is_not_taken_for_the_deadline() -> None:
    """Cancelling the request's task (the client went, the server stops) still cancels it:
    the edge only swallows its own cancel."""

    async def main() -> bool:
        edge, _ = _edge(30.0)
        started = asyncio.Event()

        async def receive() -> Message:
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            raise AssertionError("nothing is answered")

        task = asyncio.create_task(edge(_scope(), receive, send))
        await started.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return not edge._waiting
        return False

    assert asyncio.run(main())
