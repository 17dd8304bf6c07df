"""The Connect transport: unary POSTs and enveloped streams.

Unary and server-streaming calls go over the shared httpx client (`http.HttpClient`).
Client and bidi streams go over HTTP/2 through `h2duplex` when the server speaks it, so
each request message is sent as it comes and each response message is seen as it
arrives (an interactive conversation); over HTTP/1.1 (a plaintext server that speaks
only HTTP/1.1, a TLS server whose ALPN picks it, or HTTP/1.1 forced) they go over httpx,
which sends every request message before reading the response.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import ClassVar

from . import connect_wire as cw
from .base import Call, CallEvent, CallTarget, HttpVersion, Pair, Payloads, UnaryResult
from .envelope import enveloped
from .h2duplex import DuplexConnection, Endpoint, NotHttp2, connect_failure, open_duplex
from .headers import wire_headers
from .http import HttpClient
from .status import CallStatus
from .tls import build_ssl_context

__all__ = ["ConnectTransport"]


class ConnectTransport:
    """Connect calls (proto or JSON codec, as the target says) to one target."""

    label: ClassVar[str] = "Connect"
    client_streams: ClassVar[bool] = True

    __slots__ = ("_duplex_tls", "_http", "_live", "_target", "_tls_speaks_http1")

    def __init__(self, http: HttpClient, target: CallTarget) -> None:
        self._http = http
        self._target = target
        self._duplex_tls: ssl.SSLContext | None = None
        self._tls_speaks_http1 = False
        """ALPN picked HTTP/1.1 once: client streams go over httpx from then on."""
        self._live: set[DuplexConnection] = set()

    @classmethod
    async def open(cls, target: CallTarget) -> ConnectTransport:
        """A transport for the target; raises TLSMaterialError for unusable TLS material."""
        return cls(await HttpClient.open(target), target)

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
        events: AsyncGenerator[CallEvent, None] | None = None
        if call.method.client_streaming:
            events = await self._duplex(call, headers, payloads)
        if events is None:
            events = self._http.stream(call, headers, enveloped(payloads), cw.StreamParser)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def _duplex(
        self, call: Call, headers: list[Pair], payloads: Payloads
    ) -> AsyncGenerator[CallEvent, None] | None:
        """The call over a full-duplex HTTP/2 connection; None when it must use HTTP/1.1."""
        version = await self._http.settled_version(call)
        if isinstance(version, CallStatus):
            return _just(version)
        if version is HttpVersion.HTTP1 or self._tls_speaks_http1:
            return None
        endpoint = await self._endpoint()
        try:
            connection = await open_duplex(endpoint, call.deadline)
        except NotHttp2:
            self._tls_speaks_http1 = True
            return None
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            return _just(connect_failure(exc, endpoint, self._target.host))
        return self._run(connection, call, headers + wire_headers(call.metadata), payloads)

    async def _run(
        self, connection: DuplexConnection, call: Call, headers: list[Pair], payloads: Payloads
    ) -> AsyncGenerator[CallEvent, None]:
        self._live.add(connection)
        events = connection.exchange(call, headers, _aiter(payloads), cw.StreamParser)
        try:
            async for event in events:
                yield event
        finally:
            self._live.discard(connection)
            await events.aclose()

    async def _endpoint(self) -> Endpoint:
        target = self._target
        dial = target.connect_host  # the checked address; the name stays in :authority, SNI
        if target.tls is None:
            return Endpoint(host=dial, port=target.port, authority=target.authority)
        if self._duplex_tls is None:
            alpn = ["h2"] if target.http is HttpVersion.HTTP2 else ["h2", "http/1.1"]
            self._duplex_tls = await asyncio.to_thread(build_ssl_context, target.tls, alpn=alpn)
        name = target.tls.server_name
        return Endpoint(host=dial, port=target.port, authority=name or target.authority,
                        tls=self._duplex_tls, server_hostname=name or target.host)

    async def close(self) -> None:
        """Close the HTTP client's connections and every duplex call's."""
        for connection in list(self._live):
            connection.abort()
        await self._http.close()


async def _just(status: CallStatus) -> AsyncGenerator[CallEvent, None]:
    yield status


async def _aiter(payloads: Payloads) -> AsyncIterator[bytes]:
    if isinstance(payloads, Sequence):
        for payload in payloads:
            yield payload
        return
    async for payload in payloads:
        yield payload
