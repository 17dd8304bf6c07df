"""The gRPC-Web transport (binary, `application/grpc-web+proto`) over the shared HTTP client.

gRPC-Web has no client streams: it carries unary and server-streaming methods.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import ClassVar

from . import grpcweb_wire as gw
from .base import Call, CallEvent, CallTarget, Payloads, UnaryResult
from .envelope import envelope, enveloped
from .http import HttpClient
from .problems import UnsupportedCallError
from .status import CallStatus

__all__ = ["GrpcWebTransport"]


class GrpcWebTransport:
    """Binary gRPC-Web calls to one target."""

    label: ClassVar[str] = "gRPC-Web"
    client_streams: ClassVar[bool] = False

    __slots__ = ("_http",)

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    @classmethod
    async def open(cls, target: CallTarget) -> GrpcWebTransport:
        """A transport for the target; raises TLSMaterialError for unusable TLS material."""
        return cls(await HttpClient.open(target))

    async def unary(self, call: Call, payload: bytes) -> UnaryResult:
        """A one-message gRPC-Web call, read whole."""
        headers = gw.request_headers(call.remaining())
        reply = await self._http.post(call, headers, envelope(0, payload))
        if isinstance(reply, CallStatus):
            return UnaryResult(headers=(), payload=None, status=reply)
        return gw.unary_result(reply.status, reply.headers, reply.body)

    async def stream(
        self, call: Call, payloads: Payloads
    ) -> AsyncGenerator[CallEvent, None]:
        """A server-streaming call (one request message)."""
        if call.method.client_streaming:
            raise UnsupportedCallError("gRPC-Web cannot carry client or bidi streams")
        body = enveloped(payloads)
        events = self._http.stream(call, gw.request_headers(call.remaining()), body,
                                   gw.StreamParser)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def close(self) -> None:
        """Close the HTTP client's connections."""
        await self._http.close()
