"""Refusing a request before the RPC runs, in words every kind of client reads.

A refusal is a Connect error body (`{"code": ..., "message": ...}`, JSON) with the HTTP
status the Connect protocol gives that code; gRPC and gRPC-Web clients read the same
code and message from `grpc-status`/`grpc-message` headers (a trailers-only answer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from connectrpc.code import Code

from ..problems import Code as CoreCode

__all__ = [
    "ASGIApp",
    "BodyDeadline",
    "Drained",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "drain",
    "header",
    "refuse",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The Connect protocol's HTTP status for each code it can answer before an RPC runs.
_HTTP_STATUS = {
    Code.INVALID_ARGUMENT: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.UNIMPLEMENTED: 501,
}
_GRPC_NUMBER = {Code(c.connect_name): c.value for c in CoreCode if c is not CoreCode.OK}
"""gRPC status numbers, from the core's one code enum (`problems.Code`)."""


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (lower-case `name`), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _percent_encode(message: str) -> bytes:
    """grpc-message encoding: printable ASCII except `%` as is, every other byte as %XX."""
    return b"".join(
        bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in message.encode()
    )


def _is_grpc(scope: Scope) -> bool:
    content_type = header(scope, b"content-type") or b""
    return content_type.startswith(b"application/grpc")


_REPEAT_POLL_S = 0.05
"""Pause between two receive() calls that bring nothing new after the body (see Drained)."""
_DRAIN_LIMIT = 256 * 1024 * 1024
"""Most request bytes read (and dropped) before a refusal; past it the connection may close."""


async def drain(receive: Receive, limit: int = _DRAIN_LIMIT) -> None:
    """Read what is left of the request body, up to `limit` bytes, and drop it.

    A response sent while the client is still sending makes hypercorn drop the whole
    HTTP/2 connection (a DATA frame for a finished stream), or close an HTTP/1.1 one
    without warning; reading the body first keeps the connection usable.
    """
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class Drained:
    """One request's receive() that knows when the body has ended, and the send() that
    reads the rest of it before a response starts (one object, no closures).

    Used by `BodyGuard` for every API request: whatever answers early — a guard,
    connectrpc refusing a bad header, a handler failing fast — then leaves the
    connection usable (see `drain`). The catalog's API has no bidi method, which would
    have to answer while the client still sends.

    `body` is a body already read whole (BodyGuard's): it is handed out once, and no
    send needs wrapping. After the body only a disconnect is news: pyvoy repeats the
    last body message at once, which made connectrpc's disconnect watch spin.
    """

    __slots__ = ("_body", "_done", "_receive", "_send")

    def __init__(self, receive: Receive, body: bytes | None = None) -> None:
        self._receive = receive
        self._body = body
        self._done = body is not None
        self._send: Send | None = None

    def sender(self, send: Send) -> Send:
        """`send`, or (while the body is still coming) one that drains it first."""
        if self._done:
            return send
        self._send = send
        return self._draining_send

    async def receive(self) -> Message:
        body = self._body
        if body is not None:
            self._body = None
            return {"type": "http.request", "body": body, "more_body": False}
        if self._done:
            while True:
                message = await self._receive()
                if message["type"] != "http.request":
                    return message
                await asyncio.sleep(_REPEAT_POLL_S)
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done = True
        return message

    async def _draining_send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and not self._done:
            self._done = True
            await drain(self._receive)
        send = self._send
        if send is not None:
            await send(message)


async def refuse(
    scope: Scope,
    receive: Receive | None,
    send: Send,
    code: Code,
    message: str,
    *,
    http_status: int | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer the request with a Connect (or gRPC trailers-only) error, and nothing else.

    The rest of the request body is read first (see `drain`), unless `receive` is None
    (the caller read all of it). `http_status` overrides
    the code's usual status (e.g. 415 for a wrong content type; for gRPC, whose errors
    are HTTP 200 with the status in the headers, only when given).
    """
    if receive is not None:
        await drain(receive)
    headers = list(extra_headers or ())
    if _is_grpc(scope):
        content_type = header(scope, b"content-type") or b"application/grpc"
        status_headers = [
            (b"grpc-status", str(_GRPC_NUMBER[code]).encode()),
            (b"grpc-message", _percent_encode(message)),
        ]
        headers.append((b"content-type", content_type))
        if _carries_trailers(scope, content_type):
            # HTTP/2 gRPC: an empty response whose trailers hold the status (hypercorn
            # cannot end a stream on its headers, and grpcio wants the status in a
            # frame that ends it).
            await send(
                {"type": "http.response.start", "status": 200, "headers": headers, "trailers": True}
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            await send(
                {
                    "type": "http.response.trailers",
                    "headers": status_headers,
                    "more_trailers": False,
                }
            )
            return
        status = http_status or 200
        headers += status_headers  # gRPC-Web (or gRPC on HTTP/1.1): trailers-only headers
        body = b""
    else:
        status = http_status or _HTTP_STATUS.get(code, 400)
        headers.append((b"content-type", b"application/json"))
        body = json.dumps({"code": code.value, "message": message}).encode()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    # A HEAD answer has no body (a server that sends it anyway breaks keep-alive).
    if scope.get("method") == "HEAD":
        body = b""
    await send({"type": "http.response.body", "body": body})


def _carries_trailers(scope: Scope, content_type: bytes) -> bool:
    return (
        not content_type.startswith(b"application/grpc-web")
        and scope.get("http_version") == "2"
        and "http.response.trailers" in scope.get("extensions", {})
    )


class BodyDeadline:
    """Pure-ASGI, at the edge: a request body must arrive whole within `seconds`
    (`--max-body-seconds`), else the request is refused with deadline_exceeded (HTTP 408)
    and the app sees the client go away. A body trickled in a byte at a time kept a
    connection and its handler forever on hypercorn, which times out only idle reads.

    Paths starting with one of `streaming` (routes whose request may stream for long,
    such as gRPC reflection) pass untimed.

    No timer per request: a body waiting in `receive()` is listed (a dict insert), and one
    timer callback per process runs a few times a second while any is listed and cancels
    the waits past their deadline, the way `asyncio.timeout` does (cancel, then
    `uncancel` where the wait ends). `asyncio.timeout_at` per `receive()` cost ~11 µs of
    a ~75 µs request; the listing costs ~0.3 µs. The refusal comes at most `_tick`
    seconds late.
    """

    def __init__(self, app: ASGIApp, seconds: float, streaming: tuple[str, ...] = ()) -> None:
        self.app = app
        self.seconds = seconds
        self.streaming = streaming
        self._tick = min(0.25, seconds / 4)
        self._waiting: dict[_TimedBody, asyncio.Task[Any]] = {}
        self._sweep_at: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or (self.streaming and path.startswith(self.streaming)):
            await self.app(scope, receive, send)
            return
        timed = _TimedBody(self, scope, receive, send)
        await self.app(scope, timed.receive, timed.send)

    def wait_listed(self, body: _TimedBody, task: asyncio.Task[Any]) -> None:
        """`body` waits in receive() on `task`: make sure a sweep is due."""
        self._waiting[body] = task
        loop = asyncio.get_running_loop()
        if self._sweep_at is None or self._sweep_loop is not loop:  # (an app served anew)
            self._sweep_loop = loop
            self._sweep_at = loop.call_later(self._tick, self._sweep, loop)

    def wait_ended(self, body: _TimedBody) -> None:
        self._waiting.pop(body, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """A timer callback (no task to outlive the loop): cancel the waits past their
        deadline; come again while any body waits."""
        if loop is not self._sweep_loop:
            return  # a timer of a loop this app is no longer served on
        self._sweep_at = None
        if not self._waiting:
            return
        now = loop.time()
        late = [(b, t) for b, t in self._waiting.items() if b.deadline <= now]
        for body, task in late:
            del self._waiting[body]
            body.expired = True
            task.cancel()
        if self._waiting and not loop.is_closed():
            self._sweep_at = loop.call_later(self._tick, self._sweep, loop)


class _TimedBody:
    """One request's receive() with the body's deadline, and the send() that answers
    nothing more once the deadline refused it."""

    __slots__ = (
        "_done",
        "_edge",
        "_receive",
        "_refused",
        "_scope",
        "_send",
        "_started",
        "deadline",
        "expired",
    )

    def __init__(self, edge: BodyDeadline, scope: Scope, receive: Receive, send: Send) -> None:
        self._edge, self._scope, self._receive, self._send = edge, scope, receive, send
        self.deadline = asyncio.get_running_loop().time() + edge.seconds
        self._done = self._refused = self._started = self.expired = False

    async def receive(self) -> Message:
        if self._done:
            return await self._receive()
        if self._refused:
            return {"type": "http.disconnect"}
        task = asyncio.current_task()
        if task is None:  # not in a task (never under an ASGI server): wait untimed
            return await self._receive()
        edge = self._edge
        edge.wait_listed(self, task)
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if not self.expired or task.uncancel() > 0:
                raise  # cancelled by someone else too: theirs to handle
            await self._refuse()
            return {"type": "http.disconnect"}
        finally:
            edge.wait_ended(self)
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done = True
        return message

    async def _refuse(self) -> None:
        self._refused = True
        if self._started:
            return  # an answer is on its way: the disconnect ends it
        self._started = True
        await refuse(
            self._scope,
            None,  # the rest of the body is not waited for
            self._send,
            Code.DEADLINE_EXCEEDED,
            f"the request body did not arrive within {self._edge.seconds:g} seconds, the "
            "catalog's limit (--max-body-seconds)",
            http_status=408,
        )

    async def send(self, message: Message) -> None:
        if self._refused:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)
