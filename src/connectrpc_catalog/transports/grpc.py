"""gRPC over grpc.aio: generic calls with bytes passed through (no (de)serialization)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncGenerator, Sequence
from typing import Any, ClassVar

import grpc
import grpc.aio

from .base import (
    Call,
    CallEvent,
    CallTarget,
    Pair,
    Payloads,
    ResponseHeaders,
    ResponseMessage,
    UnaryResult,
    first_payload,
)
from .diagnose import dns_hint, explain
from .errdetails import parse_status_details
from .status import CallStatus, Code, failure, upstream_status
from .tls import fetch_server_certificate, validate_pems

__all__ = ["GrpcTransport"]

_MAX_MESSAGE = 64 * 1024 * 1024
_STATUS_DETAILS = "grpc-status-details-bin"


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
    raw = None
    for key, value in trailers or ():
        if key == _STATUS_DETAILS and isinstance(value, bytes):
            raw = value
    return upstream_status(
        Code(code.value[0]),
        details or "",
        details=parse_status_details(raw) if raw else (),
        trailers=_pairs(trailers),
        error=error,
    )


def _task_cancelled() -> bool:
    """True when the running task itself is being cancelled (not just the grpc call)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class GrpcTransport:
    """One grpc.aio channel to one target, with cached multicallables per method path."""

    label: ClassVar[str] = "gRPC"
    client_streams: ClassVar[bool] = True

    __slots__ = ("_calls", "_channel", "_target")

    def __init__(self, channel: grpc.aio.Channel, target: CallTarget) -> None:
        self._channel = channel
        self._target = target
        self._calls: dict[tuple[str, bool, bool], Any] = {}

    @classmethod
    async def open(cls, target: CallTarget) -> GrpcTransport:
        """A channel for the target; raises TLSMaterialError for unusable TLS material.

        With `insecure_skip_verify` the server's certificate is fetched first (see
        `tls`); an unreachable server then yields an UNAVAILABLE-failing channel.
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
        address = target.grpc_address  # the checked address when the policy gave one
        if tls is None:
            if target.dial:
                options.append(("grpc.default_authority", target.authority))
            return cls(grpc.aio.insecure_channel(address, options), target)
        if tls.ca_pem or tls.client_cert_pem or tls.client_key_pem:
            await asyncio.to_thread(validate_pems, tls)
        root = tls.ca_pem.encode() or None
        name = tls.server_name or (target.host if target.dial else "")
        if tls.insecure_skip_verify:
            try:
                root, name = await fetch_server_certificate(
                    target.connect_host, target.port, tls.server_name or target.host
                )
            except (OSError, ssl.SSLError, TimeoutError):
                # Unreachable: let the channel report it as a normal UNAVAILABLE status.
                root = None
        if name:
            options.append(("grpc.ssl_target_name_override", name))
        if tls.server_name or target.dial:
            options.append(("grpc.default_authority", tls.server_name or target.authority))
        creds = grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=tls.client_key_pem.encode() or None,
            certificate_chain=tls.client_cert_pem.encode() or None,
        )
        return cls(grpc.aio.secure_channel(address, creds, options), target)

    async def close(self) -> None:
        """Close the channel (cancels calls still running)."""
        await self._channel.close()

    def _multicallable(self, call: Call) -> Any:
        method = call.method
        key = (call.path, method.client_streaming, method.server_streaming)
        found = self._calls.get(key)
        if found is None:
            ch = self._channel
            factory = (
                (ch.stream_stream if method.server_streaming else ch.stream_unary)
                if method.client_streaming
                else (ch.unary_stream if method.server_streaming else ch.unary_unary)
            )
            found = self._calls[key] = factory(call.path)
        return found

    async def unary(self, call: Call, payload: bytes) -> UnaryResult:
        """One unary call."""
        grpc_call = self._multicallable(call)(
            payload, timeout=call.remaining(), metadata=call.metadata or None
        )
        try:
            response: bytes = await grpc_call
        except grpc.aio.AioRpcError as exc:
            status = await self._error_status(exc)
            return UnaryResult(headers=_pairs(exc.initial_metadata()), payload=None,
                               status=status)
        except asyncio.CancelledError:
            # grpc.aio raises CancelledError when the channel is closed under the call.
            if _task_cancelled():
                raise
            return UnaryResult(headers=(), payload=None, status=self._closed_status())
        headers = _pairs(await grpc_call.initial_metadata())
        trailers = await grpc_call.trailing_metadata()
        return UnaryResult(
            headers=headers,
            payload=response,
            status=_status_of(grpc.StatusCode.OK, await grpc_call.details(), trailers),
        )

    async def stream(self, call: Call, payloads: Payloads) -> AsyncGenerator[CallEvent, None]:
        """A streaming call as events; closing the iterator cancels the call.

        An async iterator of payloads is consumed by grpc.aio while responses are read,
        so a bidi call is interactive: each message goes out as the iterator yields it.
        """
        mc = self._multicallable(call)
        md = call.metadata or None
        if call.method.client_streaming:
            source = iter(payloads) if isinstance(payloads, Sequence) else aiter(payloads)
            grpc_call = mc(source, timeout=call.remaining(), metadata=md)
        else:
            grpc_call = mc(await first_payload(payloads), timeout=call.remaining(), metadata=md)
        try:
            async for event in self._events(grpc_call, call.method.server_streaming):
                yield event
        finally:
            if not grpc_call.done():
                grpc_call.cancel()

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
            yield await self._error_status(exc)
            return
        except asyncio.CancelledError:
            if _task_cancelled():
                raise
            yield self._closed_status()
            return
        code = await call.code()
        error = ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            error = f"deadline exceeded calling {self._target.authority}"
        yield _status_of(code, await call.details(), await call.trailing_metadata(), error)

    # -- failures --------------------------------------------------------------

    def _closed_status(self) -> CallStatus:
        return failure(
            Code.CANCELLED,
            f"the call to {self._target.authority} was cancelled: its connection closed",
        )

    async def _error_status(self, exc: grpc.aio.AioRpcError) -> CallStatus:
        code = exc.code()
        details = exc.details() or ""
        error = ""
        if code == grpc.StatusCode.UNAVAILABLE and not exc.trailing_metadata():
            error = f"upstream {self._target.authority} is unavailable: {details}"
            hint = await self._unavailable_hint(details)
            if hint:
                error = f"{error}; {hint}"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            error = f"deadline exceeded calling {self._target.authority}"
        return _status_of(code, details, exc.trailing_metadata(), error)

    async def _unavailable_hint(self, details: str) -> str:
        """Why a connection-level UNAVAILABLE happened, when the server can tell."""
        target = self._target
        dns = dns_hint(details, target.host)
        lower = details.lower()
        if dns or "connection refused" in lower:
            return dns
        if target.tls is not None:
            if "handshake" not in lower or "CERTIFICATE_VERIFY_FAILED" in details:
                return ""
            return await explain(target.connect_host, target.port, tried="tls")
        return await explain(target.connect_host, target.port, tried="grpc")
