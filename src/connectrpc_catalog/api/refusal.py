"""Refusing a request before the RPC runs, in words every kind of client reads.

A refusal is a Connect error body (`{"code": ..., "message": ...}`, JSON) with the HTTP
status the Connect protocol gives that code; gRPC and gRPC-Web clients read the same
code and message from `grpc-status`/`grpc-message` headers (a trailers-only answer).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from connectrpc.code import Code

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "header", "refuse"]

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
# gRPC status numbers, in the same order as connectrpc's Code members after OK.
_GRPC_NUMBER = {code: number for number, code in enumerate(Code, start=1)}


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (lower-case `name`), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _percent_encode(message: str) -> bytes:
    """grpc-message encoding: printable ASCII except `%` as is, every other byte as %XX."""
    return b"".join(
        bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b
        for b in message.encode()
    )


def _is_grpc(scope: Scope) -> bool:
    content_type = header(scope, b"content-type") or b""
    return content_type.startswith(b"application/grpc")


async def refuse(
    scope: Scope,
    send: Send,
    code: Code,
    message: str,
    *,
    http_status: int | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer the request with a Connect (or gRPC trailers-only) error, and nothing else.

    `http_status` overrides the code's usual status (e.g. 415 for a wrong content type).
    """
    headers = list(extra_headers or ())
    if _is_grpc(scope):
        status = 200
        content_type = header(scope, b"content-type") or b"application/grpc"
        headers += [
            (b"content-type", content_type),
            (b"grpc-status", str(_GRPC_NUMBER[code]).encode()),
            (b"grpc-message", _percent_encode(message)),
        ]
        body = b""
    else:
        status = http_status or _HTTP_STATUS.get(code, 400)
        headers.append((b"content-type", b"application/json"))
        body = json.dumps({"code": code.value, "message": message}).encode()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
