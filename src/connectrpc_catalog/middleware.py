"""Pure-ASGI session middleware: resolves X-Session-ID for the API, lazily."""

from __future__ import annotations

from contextvars import ContextVar

from .refusal import ASGIApp, Message, Receive, Scope, Send, header
from .session import SessionManager, State

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "SessionMiddleware", "current_session"]

SESSION_HEADER = b"x-session-id"


class _Slot:
    """The session of one request, found or created on first use.

    A request refused before its handler runs (bad content type, unknown method,
    malformed body) never asks for its session, so it never creates one; a session
    created for a request that then fails is dropped again (`settle`).
    """

    __slots__ = ("created", "manager", "requested", "state")

    def __init__(self, manager: SessionManager, requested: str | None) -> None:
        self.manager = manager
        self.requested = requested
        self.state: State | None = None
        self.created = False

    def resolve(self) -> State:
        if self.state is None:
            self.state, session_id = self.manager.get_or_create(self.requested)
            self.created = session_id != self.requested
        return self.state

    def settle(self, message: Message) -> tuple[bytes, bytes] | None:
        """At the response start: the X-Session-ID header to send, if any.

        A session this request created is kept only if the request succeeded.
        """
        state = self.state
        if state is None:
            return None
        if self.created and _failed(message):
            self.manager.delete(state.id)
            return None
        return (SESSION_HEADER, state.id.encode())


def _failed(start: Message) -> bool:
    """Whether a response start reports an error (HTTP status, or gRPC trailers-only)."""
    if int(start.get("status", 200)) >= 400:
        return True
    status = header({"headers": start.get("headers", ())}, b"grpc-status")
    return status is not None and status != b"0"


_current: ContextVar[_Slot] = ContextVar("catalog_session")


def current_session() -> State:
    """The session of the catalog request being handled (created on first use).

    Raises `SessionLimitError` when a new session is needed and the catalog is full.
    """
    return _current.get().resolve()


class SessionMiddleware:
    """Gives every call under `prefix` its session, and sends the session's id back."""

    def __init__(self, app: ASGIApp, manager: SessionManager, prefix: str) -> None:
        self.app = app
        self.manager = manager
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        raw = header(scope, SESSION_HEADER)
        slot = _Slot(self.manager, raw.decode("latin-1").strip() if raw else None)
        token = _current.set(slot)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                id_header = slot.settle(message)
                if id_header is not None:
                    message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
