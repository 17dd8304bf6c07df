"""The Connect transport: unary POSTs and enveloped streams over the shared HTTP client."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import ClassVar

from . import connect_wire as cw
from .base import Call, CallEvent, CallTarget, Payloads, UnaryResult
from .envelope import enveloped
from .http import HttpClient
from .status import CallStatus

__all__ = ["ConnectTransport"]


class ConnectTransport:
    """Connect calls (proto or JSON codec, as the target says) to one target."""

    label: ClassVar[str] = "Connect"
    client_streams: ClassVar[bool] = True

    __slots__ = ("_http",)

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    @classmethod
    async def open(cls, target: CallTarget) -> ConnectTransport:
        """A transport for the target; raises TLSMaterialError for unusable TLS material."""
        return cls(await HttpClient.open(target))

    async def unary(self, call: Call, payload: bytes) -> UnaryResult:
        """A Connect unary POST (the codec's content type, trailers as `trailer-` headers)."""
        codec = call.target.codec
        reply = await self._http.post(
            call, cw.unary_request_headers(codec, call.remaining()), payload
        )
        if isinstance(reply, CallStatus):
            return UnaryResult(headers=(), payload=None, status=reply)
        return cw.unary_result(reply.status, reply.headers, reply.body, codec)

    async def stream(
        self, call: Call, payloads: Payloads
    ) -> AsyncGenerator[CallEvent, None]:
        """A Connect streaming call (client, server or bidi)."""
        headers = cw.stream_request_headers(call.target.codec, call.remaining())
        body = enveloped(payloads)
        events = self._http.stream(call, headers, body, cw.StreamParser)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def close(self) -> None:
        """Close the HTTP client's connections."""
        await self._http.close()
