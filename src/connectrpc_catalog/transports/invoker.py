"""The per-session invoker: a bounded pool of upstream connections and the call API.

One `Invoker` per session keeps a transport per (protocol family, authority, TLS
settings including a hash of the PEM material, HTTP mode): a grpc.aio channel for
gRPC, an httpx client for Connect and gRPC-Web. Transports are reused across calls,
kept in LRU order (16 by default); an evicted transport is closed once the calls
using it finish. `close()` closes everything.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, replace

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from .base import (
    CODE_NAMES,
    CallEvent,
    CallStatus,
    CallTarget,
    MethodRef,
    Pair,
    Protocol,
    RawDetail,
    ResponseHeaders,
    ResponseMessage,
    TLSConfig,
    UnaryResult,
    code_name,
)
from .grpc import GrpcTransport
from .http import HttpTransport
from .tls import TLSMaterialError

__all__ = [
    "CODE_NAMES",
    "CallEvent",
    "CallStatus",
    "CallTarget",
    "Invoker",
    "Metadata",
    "MethodRef",
    "Pair",
    "Protocol",
    "RawDetail",
    "ResponseHeaders",
    "ResponseMessage",
    "TLSConfig",
    "TLSMaterialError",
    "UnaryResult",
    "code_name",
]

DEFAULT_MAX_TRANSPORTS = 16

Metadata = Sequence[tuple[str, str | bytes]]
"""Request headers: lower-case keys; `-bin` keys carry raw bytes."""

_Transport = GrpcTransport | HttpTransport
_Key = tuple[str, str, str, bool]


@dataclass(slots=True)
class _Entry:
    transport: _Transport
    active: int = 0
    evicted: bool = False


def _key(target: CallTarget, h2_only: bool) -> _Key:
    family = "grpc" if target.protocol is Protocol.GRPC else "http"
    tls = target.tls
    tls_key = (
        ""
        if tls is None
        else f"{tls.server_name}|{tls.insecure_skip_verify}|{tls.fingerprint}"
    )
    return (family, target.authority, tls_key, h2_only)


def needs_h2(target: CallTarget, method: MethodRef) -> bool:
    """True when the call must use HTTP/2 prior knowledge: plaintext Connect client/bidi."""
    return (
        target.protocol is Protocol.CONNECT
        and method.client_streaming
        and target.tls is None
    )


class Invoker:
    """Calls upstream methods over Connect, gRPC or gRPC-Web, reusing connections."""

    def __init__(self, *, max_transports: int = DEFAULT_MAX_TRANSPORTS) -> None:
        if max_transports < 1:
            raise ValueError("max_transports must be at least 1")
        self._max = max_transports
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._opening: dict[_Key, asyncio.Future[_Entry]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
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

        Raises ConnectError(INVALID_ARGUMENT) when the TLS material does not load and
        ConnectError(FAILED_PRECONDITION) after `close()`.
        """
        entry = await self._acquire(target, False)
        try:
            if isinstance(entry.transport, GrpcTransport):
                path = target.path_prefix + method.path
                return await entry.transport.unary(path, payload, metadata, timeout_s)
            return await entry.transport.unary(target, method, payload, metadata, timeout_s)
        finally:
            self._release(entry)

    async def stream(
        self,
        target: CallTarget,
        method: MethodRef,
        payloads: Sequence[bytes],
        *,
        metadata: Metadata = (),
        timeout_s: float = 30.0,
    ) -> AsyncGenerator[CallEvent, None]:
        """Call a method of any kind: sends `payloads` in order, half-closes, yields events.

        Events: ResponseHeaders (at most once), ResponseMessage per message, then exactly
        one CallStatus. Closing the iterator early cancels the upstream call.
        """
        entry = await self._acquire(target, needs_h2(target, method))
        try:
            if isinstance(entry.transport, GrpcTransport):
                if target.path_prefix:
                    method = replace(method, path=target.path_prefix + method.path)
                events = entry.transport.stream(method, payloads, metadata, timeout_s)
            else:
                events = entry.transport.stream(target, method, payloads, metadata, timeout_s)
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()
        finally:
            self._release(entry)

    async def close(self) -> None:
        """Close every transport (cancelling calls in flight); later calls are refused."""
        self._closed = True
        entries = list(self._entries.values())
        self._entries.clear()
        pending = list(self._closing)
        await asyncio.gather(
            *(e.transport.close() for e in entries), *pending, return_exceptions=True
        )

    # -- pool ----------------------------------------------------------------

    async def _acquire(self, target: CallTarget, h2_only: bool) -> _Entry:
        if self._closed:
            raise ConnectError(Code.FAILED_PRECONDITION, "the session was closed")
        key = _key(target, h2_only)
        entry = self._entries.get(key)
        if entry is None:
            entry = await self._open(key, target, h2_only)
        else:
            self._entries.move_to_end(key)
        entry.active += 1
        return entry

    def _release(self, entry: _Entry) -> None:
        entry.active -= 1
        if entry.evicted and entry.active == 0:
            self._close_later(entry)

    async def _open(self, key: _Key, target: CallTarget, h2_only: bool) -> _Entry:
        fut = self._opening.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._opening[key] = fut
        try:
            transport: _Transport
            if target.protocol is Protocol.GRPC:
                transport = await GrpcTransport.open(target)
            else:
                transport = await HttpTransport.open(target, h2_only=h2_only)
        except TLSMaterialError as exc:
            err = ConnectError(Code.INVALID_ARGUMENT, str(exc))
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved: waiters (if any) re-raise it
            raise err from None
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(ConnectError(Code.UNAVAILABLE, "opening the connection failed"))
                fut.exception()
            raise exc
        finally:
            self._opening.pop(key, None)
        self.opened += 1
        entry = _Entry(transport=transport)
        if self._closed:  # closed while this transport was being opened
            closed = ConnectError(Code.FAILED_PRECONDITION, "the session was closed")
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

