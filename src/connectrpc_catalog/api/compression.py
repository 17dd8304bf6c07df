"""Pure-ASGI response compression by size, for unary API answers.

connectrpc gzips every unary response whose request accepts gzip — which a browser's
always does — on the event loop: measured, 52 µs for a 180-byte answer (zlib's set-up
dominates; the bytes saved are a few dozen) and tens of milliseconds for a multi-MB
GetServiceSchema, a stall for every other client. `CompressLarge` takes the choice
away from connectrpc (it hides `Accept-Encoding` from it, so it answers identity) and
gzips here only bodies of at least `min_bytes`, in a worker thread when they are big.

Streamed responses (Connect streams, gRPC) negotiate per-message compression with their
own headers and are left alone; request bodies (`Content-Encoding`) are untouched.
"""

from __future__ import annotations

import asyncio
import zlib

from .refusal import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MIN_BYTES", "CompressLarge"]

MIN_BYTES = 4096
"""Smaller unary bodies are sent as they are."""
_OFF_LOOP_BYTES = 64 * 1024
_LEVEL = 6
_STREAMING = (b"application/connect+", b"application/grpc")
_REPLACED = frozenset((b"content-length", b"content-encoding", b"vary"))


def _accepts_gzip(value: bytes) -> bool:
    for item in value.split(b","):
        name, _, params = item.strip().partition(b";")
        if name.strip().lower() not in (b"gzip", b"*"):
            continue
        q = params.strip().lower()
        if not q.startswith(b"q="):
            return True
        try:
            return float(q[2:]) > 0
        except ValueError:
            return False
    return False


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


class CompressLarge:
    """Unary answers of at least `min_bytes` are gzipped (when accepted); smaller are not."""

    def __init__(self, app: ASGIApp, *, min_bytes: int = MIN_BYTES) -> None:
        self.app = app
        self.min_bytes = min_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        accept = None
        for key, value in headers:
            if key == b"content-type" and bytes(value).lower().startswith(_STREAMING):
                await self.app(scope, receive, send)
                return
            if key == b"accept-encoding":
                accept = value
        if accept is None:
            await self.app(scope, receive, send)
            return
        inner = {**scope, "headers": [(k, v) for k, v in headers if k != b"accept-encoding"]}
        gzip_ok = _accepts_gzip(bytes(accept))
        await self.app(inner, receive, _Sender(send, self.min_bytes if gzip_ok else None).send)


class _Sender:
    """Holds the response start until the first body shows whether to compress."""

    __slots__ = ("_min", "_send", "_start")

    def __init__(self, send: Send, min_bytes: int | None) -> None:
        self._send = send
        self._min = min_bytes
        self._start: Message | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and self._min is not None:
            self._start = message
            return
        start, self._start = self._start, None
        if start is None:
            await self._send(message)
            return
        body: bytes = message.get("body", b"") if kind == "http.response.body" else b""
        if (
            kind == "http.response.body"
            and not message.get("more_body", False)
            and self._min is not None
            and len(body) >= self._min
            and all(
                k != b"content-encoding" or v == b"identity" for k, v in start.get("headers", ())
            )
        ):
            big = len(body) > _OFF_LOOP_BYTES
            packed = await asyncio.to_thread(_gzip, body) if big else _gzip(body)
            kept = [(k, v) for k, v in start.get("headers", ()) if k not in _REPLACED]
            start = {
                **start,
                "headers": [
                    *kept,
                    (b"content-encoding", b"gzip"),
                    (b"content-length", str(len(packed)).encode()),
                    (b"vary", b"accept-encoding"),
                ],
            }
            message = {**message, "body": packed}
        await self._send(start)
        await self._send(message)
