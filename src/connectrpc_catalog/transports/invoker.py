"""The per-session invoker: a bounded pool of upstream transports and the call API.

One `Invoker` per session keeps one transport per `CallTarget.pool_key` (protocol,
authority, TLS settings including a hash of the PEM material, HTTP version), opened
through the table in `registry`. Transports are reused across calls, kept in LRU order
(16 by default); an evicted transport is closed once the calls using it finish.
`close()` closes everything.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Hashable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .base import (
    Call,
    CallEvent,
    CallTarget,
    Metadata,
    MethodRef,
    Payloads,
    ResponseHeaders,
    ResponseMessage,
    Transport,
    UnaryResult,
    first_payload,
)
from .problems import InvokerClosedError, RequestError, UnsupportedCallError
from .registry import refusal, transport_class

__all__ = ["DEFAULT_MAX_TRANSPORTS", "Invoker"]

DEFAULT_MAX_TRANSPORTS = 16


class Closeable(Protocol):
    """Something a session keeps beside its transports, closed with them."""

    async def close(self) -> None: ...


_C = TypeVar("_C", bound=Closeable)


class _OpenAborted(Exception):
    """The call opening a transport failed unexpectedly or was cancelled: open anew."""


@dataclass(slots=True)
class _Entry:
    transport: Transport
    active: int = 0
    evicted: bool = False


def _events_of(result: UnaryResult) -> list[CallEvent]:
    """A unary result as the events of a stream."""
    events: list[CallEvent] = []
    if result.headers or result.payload is not None:
        events.append(ResponseHeaders(headers=result.headers))
    if result.payload is not None:
        events.append(ResponseMessage(payload=result.payload))
    events.append(result.status)
    return events


class Invoker:
    """Calls upstream methods over any transport in the registry, reusing connections."""

    def __init__(self, *, max_transports: int = DEFAULT_MAX_TRANSPORTS) -> None:
        if max_transports < 1:
            raise ValueError("max_transports must be at least 1")
        self._max = max_transports
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._opening: dict[Hashable, asyncio.Future[_Entry]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._attached: dict[str, Closeable] = {}
        self.opened = 0
        """How many transports were created so far (for tests and stats)."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed

    async def unary(
        self,
        target: CallTarget,
        method: MethodRef,
        payload: bytes,
        *,
        metadata: Metadata = (),
        timeout_s: float = 30.0,
    ) -> UnaryResult:
        """Call a unary method; upstream failures come back in `status`, never raised.

        Raises InvalidRequestError (TLS material that does not load) and
        InvokerClosedError after `close()`.
        """
        call = Call.start(target, method, metadata, timeout_s)
        entry = await self._acquire(target)
        try:
            return await entry.transport.unary(call, payload)
        finally:
            self._release(entry)

    async def stream(
        self,
        target: CallTarget,
        method: MethodRef,
        payloads: Payloads,
        *,
        metadata: Metadata = (),
        timeout_s: float = 30.0,
    ) -> AsyncGenerator[CallEvent, None]:
        """Call a method of any kind: sends `payloads` in order, half-closes, yields events.

        `payloads` is a list, or an async iterator read while the call runs (an
        interactive call: each message is sent when the iterator yields it).

        Events: ResponseHeaders (at most once), ResponseMessage per message, then exactly
        one CallStatus. Closing the iterator early cancels the upstream call. Raises
        UnsupportedCallError when the target's transport cannot carry the method.
        """
        reason = refusal(target.protocol, method)
        if reason:
            raise UnsupportedCallError(reason, field="transport")
        call = Call.start(target, method, metadata, timeout_s)
        entry = await self._acquire(target)
        try:
            if method.is_unary:
                payload = await first_payload(payloads)
                for event in _events_of(await entry.transport.unary(call, payload)):
                    yield event
                return
            events = entry.transport.stream(call, payloads)
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()
        finally:
            self._release(entry)

    def attached(self, key: str, make: Callable[[], _C]) -> _C:
        """The session's object under `key` (made on first use), closed by `close()` before
        the transports: what must end with the session, such as its live calls."""
        if self._closed:
            raise InvokerClosedError("the session was closed")
        found = self._attached.get(key)
        if found is None:
            found = self._attached[key] = make()
        return found  # type: ignore[return-value]  # one key, one type

    async def close(self) -> None:
        """Close every transport (cancelling calls in flight); later calls are refused."""
        self._closed = True
        attached = list(self._attached.values())
        self._attached.clear()
        await asyncio.gather(*(a.close() for a in attached), return_exceptions=True)
        entries = list(self._entries.values())
        self._entries.clear()
        pending = list(self._closing)
        await asyncio.gather(
            *(e.transport.close() for e in entries), *pending, return_exceptions=True
        )

    # -- pool ----------------------------------------------------------------

    async def _acquire(self, target: CallTarget) -> _Entry:
        if self._closed:
            raise InvokerClosedError("the session was closed")
        key = target.pool_key
        entry = self._entries.get(key)
        if entry is None:
            entry = await self._open(key, target)
        else:
            self._entries.move_to_end(key)
        entry.active += 1
        return entry

    def _release(self, entry: _Entry) -> None:
        entry.active -= 1
        if entry.evicted and entry.active == 0:
            self._close_later(entry)

    async def _open(self, key: Hashable, target: CallTarget) -> _Entry:
        fut = self._opening.get(key)
        if fut is not None:
            try:
                return await asyncio.shield(fut)
            except _OpenAborted:
                return await self._open(key, target)
        fut = asyncio.get_running_loop().create_future()
        self._opening[key] = fut
        try:
            transport = await transport_class(target.protocol).open(target)
        except BaseException as exc:
            if not fut.done():
                # Waiters share the caller's own mistake; anything else they retry.
                fut.set_exception(exc if isinstance(exc, RequestError) else _OpenAborted())
                fut.exception()  # mark retrieved: waiters (if any) re-raise it
            raise
        finally:
            self._opening.pop(key, None)
        self.opened += 1
        entry = _Entry(transport=transport)
        if self._closed:  # closed while this transport was being opened
            closed = InvokerClosedError("the session was closed")
            fut.set_exception(closed)
            fut.exception()
            await transport.close()
            raise closed
        self._entries[key] = entry
        while len(self._entries) > self._max:
            _, old = self._entries.popitem(last=False)
            old.evicted = True
            if old.active == 0:
                self._close_later(old)
        fut.set_result(entry)
        return entry

    def _close_later(self, entry: _Entry) -> None:
        task = asyncio.get_running_loop().create_task(entry.transport.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
