"""Pure-ASGI middleware: session resolution and CORS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any

from .session import SessionManager, State

__all__ = ["CORSMiddleware", "SessionMiddleware", "current_session"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_HEADER = b"x-session-id"
_current: ContextVar[State] = ContextVar("catalog_session")


def current_session() -> State:
    """The session of the catalog request being handled."""
    return _current.get()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class SessionMiddleware:
    """Resolves X-Session-ID for every call under `prefix` and sends the id back."""

    def __init__(self, app: ASGIApp, manager: SessionManager, prefix: str) -> None:
        self.app = app
        self.manager = manager
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        raw = _header(scope, SESSION_HEADER)
        state, session_id = self.manager.get_or_create(raw.decode("latin-1") if raw else None)
        token = _current.set(state)
        id_header = (b"x-session-id", session_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


class CORSMiddleware:
    """Lets browser pages on allowed origins call the API and read X-Session-ID."""

    ALLOW_HEADERS = (
        b"content-type, connect-protocol-version, connect-timeout-ms, x-session-id, "
        b"x-grpc-web, x-user-agent, grpc-timeout, authorization"
    )
    EXPOSE_HEADERS = b"x-session-id, grpc-status, grpc-message, grpc-status-details-bin"

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        allowed = {o.rstrip("/") for o in origins}
        self.any = "*" in allowed
        self.origins = {o.encode() for o in allowed}

    def _allowed(self, origin: bytes) -> bool:
        return self.any or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None or not self._allowed(origin):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", origin),
                        (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                        (b"access-control-allow-headers", self.ALLOW_HEADERS),
                        (b"access-control-max-age", b"7200"),
                        (b"vary", b"Origin"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        cors = [
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", self.EXPOSE_HEADERS),
            (b"vary", b"Origin"),
        ]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)
