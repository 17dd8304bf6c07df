"""api/compression.py: only big unary answers are gzipped; small ones go as they are."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectrpc_catalog.api.compression import CompressLarge, _accepts_gzip
from connectrpc_catalog.api.refusal import Message

API = "/catalog.v1.CatalogService/"


async def answer(body: bytes, accept: bytes | None, ctype: bytes = b"application/json",
                 ) -> tuple[list[Message], list[Any]]:
    """Run CompressLarge over an app answering `body`; what left, and what the app saw."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["headers"])
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"content-type", ctype)]
    if accept is not None:
        headers.append((b"accept-encoding", accept))
    await CompressLarge(app, min_bytes=1000)({"type": "http", "headers": headers}, receive, send)
    return sent, seen


def _headers(message: Message) -> dict[bytes, bytes]:
    return dict(message["headers"])


async def test_small_answers_are_not_compressed_and_connectrpc_never_compresses() -> None:
    sent, seen = await answer(b'{"small":true}', b"gzip, deflate, br")
    assert (b"accept-encoding", b"gzip, deflate, br") not in seen[0]  # hidden from connectrpc
    assert b"content-encoding" not in _headers(sent[0])
    assert sent[1]["body"] == b'{"small":true}'


async def test_big_answers_are_gzipped_when_accepted() -> None:
    body = json.dumps({"items": [f"item {i}" for i in range(2000)]}).encode()
    sent, _ = await answer(body, b"gzip")
    head = _headers(sent[0])
    assert head[b"content-encoding"] == b"gzip" and head[b"vary"] == b"accept-encoding"
    assert int(head[b"content-length"]) == len(sent[1]["body"]) < len(body) / 3
    assert gzip.decompress(sent[1]["body"]) == body
    for refused in (b"identity", b"gzip;q=0", b"br"):
        sent, _ = await answer(body, refused)
        assert b"content-encoding" not in _headers(sent[0]) and sent[1]["body"] == body


async def test_very_big_answers_are_compressed_off_the_loop() -> None:
    """Past 64 KiB the gzip runs in a worker thread: the loop keeps ticking meanwhile."""
    body = json.dumps([f"row {i} " * 20 for i in range(20_000)]).encode()  # ~3 MB
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    sent, _ = await answer(body, b"gzip")
    task.cancel()
    assert _headers(sent[0])[b"content-encoding"] == b"gzip"
    assert gzip.decompress(sent[1]["body"]) == body
    assert ticks > 1  # inline, the ticker would not have run until the answer was sent


async def test_streams_keep_their_own_negotiation() -> None:
    body = b"x" * 5000
    sent, seen = await answer(body, b"gzip", ctype=b"application/connect+json")
    assert (b"accept-encoding", b"gzip") in seen[0]
    assert sent[1]["body"] == body


@pytest.mark.parametrize(("value", "ok"), [
    (b"gzip", True), (b"GZIP", True), (b"br, gzip;q=0.5", True), (b"*", True),
    (b"gzip;q=0", False), (b"identity", False), (b"gzip;q=x", False), (b"", False)])
def test_accept_encoding_parsing(value: bytes, ok: bool) -> None:
    assert _accepts_gzip(value) is ok


def test_the_catalog_answers_small_uncompressed_and_big_gzipped(
    catalog_url: str, weather_protos: Path,
) -> None:
    with httpx.Client(timeout=30, headers={"accept-encoding": "gzip"}) as client:
        r = client.post(catalog_url + API + "LoadProtos", json={"protoPath": str(weather_protos)})
        assert r.status_code == 200 and r.json()["success"], r.text
        sid = {"x-session-id": r.headers["x-session-id"]}
        small = client.post(catalog_url + API + "GetSession", json={}, headers=sid)
        assert small.status_code == 200
        assert small.headers.get("content-encoding", "identity") == "identity"
        big = client.post(catalog_url + API + "GetServiceSchema",
                          json={"serviceName": "acme.weather.v1.WeatherService"}, headers=sid)
        assert big.status_code == 200 and big.headers["content-encoding"] == "gzip"
        assert big.json()["service"]["name"]  # httpx inflated it: valid gzip of valid JSON
