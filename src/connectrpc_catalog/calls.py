"""Live calls: streaming calls a browser drives one request at a time over plain HTTP/1.1.

`StartCall` validates an InvokeStreamRequest, starts the upstream call with an async
iterator of request payloads (see `transports.Payloads`) and answers a call id;
`SendMessage` puts one more payload on that iterator, `CloseSend` ends it (the
half-close), `CancelCall` cancels the upstream call, and `WatchCall` streams the events
— from the first one no watcher has read yet, so a watch that starts late or reconnects
loses nothing.

Bounds: live calls per session (`max_calls`), request messages per call
(`CallLimits.max_messages`), request JSON per call (`CallLimits.max_call_bytes`), events
buffered ahead of the watcher (`_BUFFERED_EVENTS`; past it the upstream call is not read,
so its flow control slows the server) and the call's deadline (at most `--max-timeout`).
A call that ended is forgotten once its status was watched, or `_LINGER_S` after it ended.
The session's `LiveCalls` hangs on its invoker (`Invoker.attached`), so ending the session
cancels every live call.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from protobuf import Oneof

from .gen.catalog.v1 import catalog_pb
from .invocation import (
    CallLimits,
    MethodRegistry,
    PreparedStream,
    encode_messages,
    prepare_stream,
    relay,
)
from .problems import Code, RequestError
from .transports import Invoker

__all__ = ["CallDirectory", "LiveCalls", "live_calls"]

_BUFFERED_EVENTS = 256
"""Events a call holds for its watcher; past it the upstream stream is not read."""
_QUEUED_SENDS = 64
"""Request messages waiting to go out; past it SendMessage waits for the upstream."""
_LINGER_S = 60.0
"""How long an ended call whose status nobody watched stays readable."""
_END = object()


@dataclass(slots=True, eq=False)
class _LiveCall:
    id: str
    registry: MethodRegistry
    prepared: PreparedStream
    limits: CallLimits
    sends: asyncio.Queue[bytes | object] = field(
        default_factory=lambda: asyncio.Queue(_QUEUED_SENDS)
    )
    events: asyncio.Queue[catalog_pb.InvokeStreamEvent] = field(
        default_factory=lambda: asyncio.Queue(_BUFFERED_EVENTS)
    )
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    tail: list[catalog_pb.InvokeStreamEvent] = field(default_factory=list)
    """The final status when the call ended without relaying one (cancelled, refused)."""
    has_status: bool = False
    sent: int = 0
    sent_bytes: int = 0
    half_closed: bool = False
    ended: bool = False
    watching: bool = False
    task: asyncio.Task[None] | None = None

    async def payloads(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.sends.get()
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item


def _not_found(call_id: str) -> RequestError:
    return RequestError(
        f"no live call {call_id!r} in this session (it ended, or was never started here)",
        code=Code.NOT_FOUND,
        field="callId",
    )


class CallDirectory(Protocol):
    """Where live calls live when processes share sessions (the routing seam; see
    shared.py): a call is owned by the process that started it, and a request for it
    that lands in another process is relayed to the owner."""

    def new_id(self) -> str:
        """A fresh call id that names this process."""
        ...

    def is_remote(self, call_id: str) -> bool:
        """Whether the call id names another process."""
        ...

    async def relay_unary(self, op: str, session_id: str, call_id: str, text: str = "") -> int:
        """SendMessage ("send"), CloseSend ("close_send") or CancelCall ("cancel") at the
        owner; the count it answered (cancel: 1 if it cancelled)."""
        ...

    def relay_watch(
        self, session_id: str, call_id: str
    ) -> AsyncIterator[catalog_pb.InvokeStreamEvent]:
        """WatchCall at the owner: its events."""
        ...


class LiveCalls:
    """The live calls of one session."""

    def __init__(
        self,
        invoker: Invoker,
        *,
        max_calls: int = 16,
        directory: CallDirectory | None = None,
        session_id: str = "",
    ) -> None:
        self._invoker = invoker
        self._max = max_calls
        self._calls: dict[str, _LiveCall] = {}
        self._closed = False
        self._directory = directory
        self._session_id = session_id

    def _elsewhere(self, call_id: str) -> CallDirectory | None:
        """The directory to relay through when the call lives in another process."""
        d = self._directory
        cid = call_id.strip()
        return d if d is not None and cid not in self._calls and d.is_remote(cid) else None

    def __len__(self) -> int:
        return len(self._calls)

    async def start(
        self, registry: MethodRegistry, req: catalog_pb.InvokeStreamRequest, limits: CallLimits
    ) -> catalog_pb.StartCallResponse:
        """Validate and start a call; its first messages are queued at once."""
        if self._closed:
            raise RequestError("the session was closed", code=Code.FAILED_PRECONDITION)
        if len(self._calls) >= self._max:
            raise RequestError(
                f"this session already has {self._max} live calls, the most it may hold: "
                "cancel one or wait for one to end",
                code=Code.RESOURCE_EXHAUSTED,
            )
        prepared = await prepare_stream(registry, req, limits)
        method = prepared.method
        texts = list(req.request_messages_json)
        if not method.client_streaming:
            if len(texts) > 1:
                raise RequestError(
                    f"{method.full_name} takes one request message, not {len(texts)}",
                    field="call.requestMessagesJson",
                )
            texts = texts or [""]
        payloads = await encode_messages(
            registry, prepared, texts, "call.requestMessagesJson", limits
        )
        call_id = self._directory.new_id() if self._directory else secrets.token_hex(8)
        live = _LiveCall(id=call_id, registry=registry, prepared=prepared, limits=limits)
        live.sent = len(payloads)
        live.sent_bytes = sum(len(t) for t in texts)
        for payload in payloads[:_QUEUED_SENDS]:
            live.sends.put_nowait(payload)
        rest = payloads[_QUEUED_SENDS:]
        if not method.client_streaming:
            live.half_closed = True
        self._calls[live.id] = live
        live.task = asyncio.get_running_loop().create_task(self._run(live, rest))
        kind = (
            ("bidi-streaming" if method.server_streaming else "client-streaming")
            if method.client_streaming
            else ("server-streaming" if method.server_streaming else "unary")
        )
        return catalog_pb.StartCallResponse(call_id=live.id, kind=kind, sent_count=live.sent)

    async def _run(self, live: _LiveCall, rest: list[bytes]) -> None:
        events = relay(live.registry, self._invoker, live.prepared, live.payloads())
        try:
            for payload in rest:
                await live.sends.put(payload)
            if live.half_closed:
                await live.sends.put(_END)
            async for event in events:
                await live.events.put(event)
                live.wake.set()
                if _is_status(event):
                    live.has_status = True
        except asyncio.CancelledError:
            live.tail.append(_status_event(Code.CANCELLED, "the call was cancelled (CancelCall)"))
            raise
        except Exception as exc:  # a refused call (a closed session, …): the watcher hears
            live.tail.append(_status_event(Code.UNAVAILABLE, str(exc)))
        finally:
            try:
                await events.aclose()
            finally:
                live.ended = True
                live.wake.set()
                asyncio.get_running_loop().call_later(_LINGER_S, self._forget, live)

    def _forget(self, live: _LiveCall) -> None:
        if self._calls.get(live.id) is live:
            del self._calls[live.id]

    def _get(self, call_id: str) -> _LiveCall:
        live = self._calls.get(call_id.strip())
        if live is None:
            raise _not_found(call_id)
        return live

    async def watch(self, call_id: str) -> AsyncGenerator[catalog_pb.InvokeStreamEvent, None]:
        """The call's events not yet read, as they come, up to its final status."""
        elsewhere = self._elsewhere(call_id)
        if elsewhere is not None:
            async for event in elsewhere.relay_watch(self._session_id, call_id.strip()):
                yield event
            return
        live = self._get(call_id)
        if live.watching:
            raise RequestError(
                f"live call {call_id!r} is already being watched (one watcher at a time)",
                code=Code.FAILED_PRECONDITION,
                field="callId",
            )
        live.watching = True
        try:
            while True:
                while not live.events.empty():
                    event = live.events.get_nowait()
                    yield event
                    if _is_status(event):
                        self._forget(live)
                        return
                if live.ended:
                    if not live.has_status:
                        for event in live.tail:
                            yield event
                    self._forget(live)
                    return
                live.wake.clear()
                await live.wake.wait()
        finally:
            live.watching = False

    async def send(self, call_id: str, text: str) -> int:
        """Queue one request message; the count sent so far."""
        elsewhere = self._elsewhere(call_id)
        if elsewhere is not None:
            return await elsewhere.relay_unary("send", self._session_id, call_id.strip(), text)
        live = self._get(call_id)
        method = live.prepared.method
        if not method.client_streaming:
            raise RequestError(
                f"{method.full_name} takes a single request message: it was sent with StartCall",
                code=Code.FAILED_PRECONDITION,
            )
        if live.half_closed or live.ended:
            raise RequestError(
                f"live call {call_id!r} is {'over' if live.ended else 'half-closed'}: "
                "it takes no more messages",
                code=Code.FAILED_PRECONDITION,
            )
        limits = live.limits
        if live.sent >= limits.max_messages:
            raise RequestError(
                f"live call {call_id!r} already sent {live.sent} messages, the most one call "
                "may send (--max-stream-messages)",
                code=Code.RESOURCE_EXHAUSTED,
            )
        if live.sent_bytes + len(text) > limits.max_call_bytes:
            raise RequestError(
                f"live call {call_id!r} would send more than {limits.max_call_bytes} bytes "
                "of JSON, the most one call may send",
                code=Code.RESOURCE_EXHAUSTED,
            )
        (payload,) = await encode_messages(
            live.registry, live.prepared, [text], "messageJson", limits
        )
        live.sent += 1
        live.sent_bytes += len(text)
        await self._put(live, payload)
        return live.sent

    async def close_send(self, call_id: str) -> int:
        """Half-close the call (idempotent); the count of messages sent."""
        elsewhere = self._elsewhere(call_id)
        if elsewhere is not None:
            return await elsewhere.relay_unary("close_send", self._session_id, call_id.strip())
        live = self._get(call_id)
        if not live.half_closed:
            live.half_closed = True
            if not live.ended:
                await self._put(live, _END)
        return live.sent

    async def _put(self, live: _LiveCall, item: bytes | object) -> None:
        """Queue a send; waits while the upstream is slow, but no longer than the call."""
        task = live.task
        if task is None or task.done():
            return
        putting = asyncio.ensure_future(live.sends.put(item))
        await asyncio.wait((putting, task), return_when=asyncio.FIRST_COMPLETED)
        if not putting.done():
            putting.cancel()

    async def cancel(self, call_id: str) -> bool:
        """Cancel the upstream call; False when it had already ended."""
        elsewhere = self._elsewhere(call_id)
        if elsewhere is not None:
            return bool(await elsewhere.relay_unary("cancel", self._session_id, call_id.strip()))
        live = self._get(call_id)
        if live.ended or live.task is None:
            return False
        await _cancel_task(live.task)
        return True

    async def close(self) -> None:
        """Cancel every live call (the session ends)."""
        self._closed = True
        calls = list(self._calls.values())
        self._calls.clear()
        await asyncio.gather(
            *(_cancel_task(c.task) for c in calls if c.task is not None),
            return_exceptions=True,
        )


async def _cancel_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _is_status(event: catalog_pb.InvokeStreamEvent) -> bool:
    return event.event is not None and event.event.field == "status"


def _status_event(code: Code, message: str) -> catalog_pb.InvokeStreamEvent:
    status = catalog_pb.StreamStatus(
        success=False,
        status_code=int(code),
        status_name=code.name,
        status_message=message,
        error=message,
    )
    return catalog_pb.InvokeStreamEvent(
        event=Oneof[Literal["status"], catalog_pb.StreamStatus](field="status", value=status)
    )


def live_calls(invoker: Invoker, max_calls: int) -> LiveCalls:
    """The session's live calls (made on first use, closed with the session's invoker)."""
    return invoker.attached("live-calls", lambda: LiveCalls(invoker, max_calls=max_calls))
