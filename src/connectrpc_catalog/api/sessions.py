"""Pure-ASGI session middleware: resolves X-Session-ID for the API, lazily."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING

from connectrpc.code import Code

from ..identity import current_identity, set_session_tag
from ..problems import RequestError
from ..session import SessionManager, State
from ..session_store import StoreUnavailable
from .refusal import ASGIApp, Message, Receive, Scope, Send, header, refuse

if TYPE_CHECKING:
    from ..shared import Replica

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "SessionMiddleware",
    "current_session",
    "session_status",
]

_log = logging.getLogger(__name__)
SESSION_HEADER = b"x-session-id"
STATUS_HEADER = b"x-session-status"


class _Slot:
    """The session of one request, found or created on first use.

    A request refused before its handler runs (bad content type, unknown method,
    malformed body) never asks for its session, so it never creates one; a session
    created for a request that then fails is dropped again (`settle`).
    """

    __slots__ = (
        "created",
        "gone",
        "manager",
        "refused",
        "replica",
        "requested",
        "scope",
        "send",
        "state",
        "status",
    )

    def __init__(
        self,
        manager: SessionManager,
        requested: str | None,
        scope: Scope,
        send: Send,
        replica: Replica | None,
    ) -> None:
        self.manager = manager
        self.requested = requested
        self.scope = scope
        self.send = send
        self.replica = replica
        self.refused = False
        """The answer was replaced by a refusal (the store failed): drop the rest."""
        self.state: State | None = None
        self.created = False
        self.gone = ""
        """Why a shared store no longer has the requested session ("closed", "expired")."""
        self.status = "active"
        """What became of the requested id: active, new (none sent), expired, closed, unknown."""

    def resolve(self) -> State:
        if self.state is None:
            requested = self.requested
            owner = current_identity().key
            self.state, session_id = self.manager.get_or_create(requested, owner)
            self.created = session_id != requested
            if self.created:
                ended = self.manager.ended(requested, owner) if requested else None
                self.status = (ended or self.gone or "unknown") if requested else "new"
            set_session_tag(self.state.id)
        return self.state

    async def send_with_id(self, message: Message) -> None:
        """The request's send(): the session's headers join the response start."""
        if self.refused:
            return
        if message["type"] == "http.response.start":
            try:
                extra = await self.settle(message, self.replica)
            except RequestError as exc:
                self.refused = True
                await _refuse(self.scope, None, self.send, exc)
                return
            if extra:
                message["headers"] = [*message.get("headers", ()), *extra]
        await self.send(message)

    async def settle(self, message: Message, replica: Replica | None) -> list[tuple[bytes, bytes]]:
        """At the response start: the X-Session-ID and X-Session-Status headers to send.

        A session this request created is kept only if the request succeeded; with a
        shared store it is written there first (and what the request loaded), so the
        next request may land in any process. StoreUnavailable if that fails.
        """
        state = self.state
        if state is None:
            return []
        if self.created and _failed(message):
            self.manager.delete(state.id, remember=False)
            return []
        if replica is not None and not _failed(message):
            try:
                await replica.save(state, self.created)
            except RequestError:
                if self.created:
                    self.manager.delete(state.id, remember=False)
                raise
        return [(SESSION_HEADER, state.id.encode()), (STATUS_HEADER, self.status.encode())]


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


def session_status() -> str:
    """What became of the id the request sent: active, new, expired, closed or unknown."""
    slot = _current.get(None)
    return slot.status if slot is not None else "active"


class SessionMiddleware:
    """Gives every call under `prefix` its session, and sends the session's id back."""

    def __init__(
        self, app: ASGIApp, manager: SessionManager, prefix: str, replica: Replica | None = None
    ) -> None:
        self.app = app
        self.manager = manager
        self.prefix = prefix
        self.replica = replica
        """Set when sessions are shared with other processes (`--session-store`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        raw = header(scope, SESSION_HEADER)
        replica = self.replica
        requested = raw.decode("latin-1").strip()[:128] if raw else None
        slot = _Slot(self.manager, requested, scope, send, replica)
        if replica is not None:
            try:
                slot.gone = await replica.prepare(slot.requested, current_identity().key)
            except RequestError as exc:
                await _refuse(scope, receive, send, exc)
                return
        token = _current.set(slot)
        try:
            await self.app(scope, receive, slot.send_with_id)
        finally:
            _current.reset(token)


async def _refuse(scope: Scope, receive: Receive | None, send: Send, exc: RequestError) -> None:
    """Answer with the store's error (`unavailable` when it does not answer)."""
    code = Code(exc.code.connect_name)
    # A limit reached (the store's atomic session count) is a refusal, counted in the
    # metrics like the others; what else goes wrong with the store is worth a warning.
    if not isinstance(exc, StoreUnavailable) and code is not Code.RESOURCE_EXHAUSTED:
        _log.warning("the session could not be restored or saved: %s", exc.message)
    grpc = (header(scope, b"content-type") or b"").startswith(b"application/grpc")
    status = 503 if code is Code.UNAVAILABLE and not grpc else None
    await refuse(scope, receive, send, code, exc.message, http_status=status)
