"""gRPC over grpc.aio: generic calls with bytes passed through (no (de)serialization)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import grpc
import grpc.aio

from .base import (
    CANCELLED,
    CallEvent,
    CallStatus,
    CallTarget,
    MethodRef,
    Pair,
    ResponseHeaders,
    ResponseMessage,
    UnaryResult,
    code_name,
    failure,
)
from .errdetails import parse_status_details
from .tls import fetch_server_certificate, validate_pems

__all__ = ["GrpcTransport"]

_MAX_MESSAGE = 64 * 1024 * 1024
_STATUS_DETAILS = "grpc-status-details-bin"

Metadata = Sequence[tuple[str, str | bytes]]


def _pairs(md: Any) -> tuple[Pair, ...]:
    if not md:
        return ()
    out: list[Pair] = []
    for key, value in md:
        if isinstance(value, bytes):
            out.append((key, base64.b64encode(value).decode()))
        else:
            out.append((key, value))
    return tuple(out)


def _status_of(
    code: grpc.StatusCode, details: str | None, trailers: Any, error: str = ""
) -> CallStatus:
    number: int = code.value[0]
    raw = None
    for key, value in trailers or ():
        if key == _STATUS_DETAILS and isinstance(value, bytes):
            raw = value
    message = details or ""
    if number and not error:
        error = f"upstream returned {code_name(number)}: {message}" if message else (
            f"upstream returned {code_name(number)}"
        )
    return CallStatus(
        code=number,
        message=message,
        details=parse_status_details(raw) if raw else (),
        trailers=_pairs(trailers),
        error=error,
    )


def _task_cancelled() -> bool:
    """True when the running task itself is being cancelled (not just the grpc call)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _closed_status(authority: str) -> CallStatus:
    return failure(CANCELLED, f"the call to {authority} was cancelled: its connection closed")


def _error_status(exc: grpc.aio.AioRpcError, authority: str) -> CallStatus:
    code = exc.code()
    details = exc.details() or ""
    error = ""
    if code == grpc.StatusCode.UNAVAILABLE and not exc.trailing_metadata():
        error = f"upstream {authority} is unavailable: {details}"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        error = f"deadline exceeded calling {authority}"
    return _status_of(code, details, exc.trailing_metadata(), error)


class GrpcTransport:
    """One grpc.aio channel to one authority, with cached multicallables per method path."""

    __slots__ = ("_authority", "_channel", "_stream_stream", "_stream_unary", "_unary_stream",
                 "_unary_unary")

    def __init__(self, channel: grpc.aio.Channel, authority: str) -> None:
        self._channel = channel
        self._authority = authority
        self._unary_unary: dict[str, Any] = {}
        self._unary_stream: dict[str, Any] = {}
        self._stream_unary: dict[str, Any] = {}
        self._stream_stream: dict[str, Any] = {}

    @classmethod
    async def open(cls, target: CallTarget) -> GrpcTransport:
        """A channel for the target; raises TLSMaterialError for unusable TLS material.

        With `insecure_skip_verify` the server's certificate is fetched first (see
        `_tls`); an unreachable server then yields an UNAVAILABLE-failing channel.
        """
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            # Own the connection: no sharing of subchannels with other sessions' channels,
            # so closing the channel closes its socket.
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.enable_retries", 0),
        ]
        tls = target.tls
        if tls is None:
            return cls(grpc.aio.insecure_channel(target.authority, options), target.authority)
        if tls.ca_pem or tls.client_cert_pem or tls.client_key_pem:
            await asyncio.to_thread(validate_pems, tls)
        root = tls.ca_pem.encode() or None
        name = tls.server_name
        if tls.insecure_skip_verify:
            try:
                root, name = await fetch_server_certificate(
                    target.host, target.port, tls.server_name or target.host
                )
            except (OSError, ssl.SSLError, TimeoutError):
                # Unreachable: let the channel report it as a normal UNAVAILABLE status.
                root = None
        if name:
            options.append(("grpc.ssl_target_name_override", name))
        if tls.server_name:
            options.append(("grpc.default_authority", tls.server_name))
        creds = grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=tls.client_key_pem.encode() or None,
            certificate_chain=tls.client_cert_pem.encode() or None,
        )
        channel = grpc.aio.secure_channel(target.authority, creds, options)
        return cls(channel, target.authority)

    async def close(self) -> None:
        """Close the channel (cancels calls still running)."""
        await self._channel.close()

    async def unary(
        self, path: str, payload: bytes, metadata: Metadata, timeout_s: float
    ) -> UnaryResult:
        """One unary call."""
        mc = self._unary_unary.get(path)
        if mc is None:
            mc = self._unary_unary[path] = self._channel.unary_unary(path)
        call = mc(payload, timeout=timeout_s, metadata=metadata or None)
        try:
            response: bytes = await call
        except grpc.aio.AioRpcError as exc:
            return UnaryResult(
                headers=_pairs(exc.initial_metadata()),
                payload=None,
                status=_error_status(exc, self._authority),
            )
        except asyncio.CancelledError:
            # grpc.aio raises CancelledError when the channel is closed under the call.
            if _task_cancelled():
                raise
            return UnaryResult(headers=(), payload=None, status=_closed_status(self._authority))
        headers = _pairs(await call.initial_metadata())
        trailers = await call.trailing_metadata()
        return UnaryResult(
            headers=headers,
            payload=response,
            status=_status_of(grpc.StatusCode.OK, await call.details(), trailers),
        )

    async def stream(
        self, method: MethodRef, payloads: Sequence[bytes], metadata: Metadata, timeout_s: float
    ) -> AsyncGenerator[CallEvent, None]:
        """Any kind of call as events; closing the iterator cancels the call."""
        path = method.path
        md = metadata or None
        call: Any
        if method.client_streaming:
            cache = self._stream_stream if method.server_streaming else self._stream_unary
            mc = cache.get(path)
            if mc is None:
                factory = (
                    self._channel.stream_stream
                    if method.server_streaming
                    else self._channel.stream_unary
                )
                mc = cache[path] = factory(path)
            call = mc(iter(payloads), timeout=timeout_s, metadata=md)
        else:
            if len(payloads) != 1:
                raise ValueError("a method without client streaming takes exactly one message")
            cache = self._unary_stream if method.server_streaming else self._unary_unary
            mc = cache.get(path)
            if mc is None:
                factory = (
                    self._channel.unary_stream
                    if method.server_streaming
                    else self._channel.unary_unary
                )
                mc = cache[path] = factory(path)
            call = mc(payloads[0], timeout=timeout_s, metadata=md)
        try:
            async for event in self._events(call, method.server_streaming):
                yield event
        finally:
            if not call.done():
                call.cancel()

    async def _events(self, call: Any, server_streaming: bool) -> AsyncGenerator[CallEvent, None]:
        try:
            headers = await call.initial_metadata()
            if headers or not call.done():
                yield ResponseHeaders(headers=_pairs(headers))
            if server_streaming:
                while True:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        break
                    yield ResponseMessage(payload=msg)
            else:
                yield ResponseMessage(payload=await call)
        except grpc.aio.AioRpcError as exc:
            yield _error_status(exc, self._authority)
            return
        except asyncio.CancelledError:
            if _task_cancelled():
                raise
            yield _closed_status(self._authority)
            return
        code = await call.code()
        if code != grpc.StatusCode.OK:
            trailers = await call.trailing_metadata()
            details = await call.details()
            error = ""
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                error = f"deadline exceeded calling {self._authority}"
            yield _status_of(code, details, trailers, error)
            return
        yield _status_of(code, await call.details(), await call.trailing_metadata())

