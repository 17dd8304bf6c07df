"""Connect (unary and streaming) and binary gRPC-Web over httpx.

One `HttpTransport` owns one httpx client to one authority. Plaintext uses HTTP/1.1,
or HTTP/2 with prior knowledge (h2c) when `h2_only` (Connect client/bidi streaming);
TLS offers ALPN h2 and http/1.1. Request messages are all sent before the response is
read (the catalog half-closes after its list of messages), so HTTP/1.1 can carry
server streams; the catalog asks for HTTP/2 where the Connect protocol requires it.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx

from . import connect_wire as cw
from . import grpcweb_wire as gw
from .base import (
    DEADLINE_EXCEEDED,
    INTERNAL,
    UNAVAILABLE,
    UNKNOWN,
    CallEvent,
    CallStatus,
    CallTarget,
    MethodRef,
    Protocol,
    UnaryResult,
    failure,
)
from .envelope import EnvelopeError, EnvelopeReader
from .tls import build_ssl_context

__all__ = ["HttpTransport"]

Metadata = Sequence[tuple[str, str | bytes]]


def _wire_headers(metadata: Metadata) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in metadata:
        if isinstance(value, bytes):
            out.append((key, base64.b64encode(value).decode()))
        else:
            out.append((key, value))
    return out


_MAX_IDLE_STREAM_CLIENTS = 4


class HttpTransport:
    """httpx clients for one authority, used for Connect and gRPC-Web calls.

    Unary calls share one client (keep-alive HTTP/1.1, or multiplexed HTTP/2). Each
    streaming call takes a client of its own from a small idle list: httpx cannot
    reset a single HTTP/2 stream, so a stream the caller abandons is cancelled by
    closing its connection, which must then carry nothing else. A stream that ran to
    its end leaves a clean connection, and its client goes back to the idle list.
    """

    __slots__ = ("_client", "_extensions", "_h2_only", "_host_header", "_idle", "_verify",
                 "authority")

    def __init__(
        self, *, verify: ssl.SSLContext | bool, h2_only: bool, authority: str, server_name: str
    ) -> None:
        self._verify = verify
        self._h2_only = h2_only
        self._client = self._new_client()
        self._idle: list[httpx.AsyncClient] = []
        self.authority = authority
        self._extensions: dict[str, Any] = {"sni_hostname": server_name} if server_name else {}
        self._host_header = server_name

    @classmethod
    async def open(cls, target: CallTarget, *, h2_only: bool) -> HttpTransport:
        """A transport for the target; raises TLSMaterialError for unusable TLS material."""
        verify: ssl.SSLContext | bool = False
        server_name = ""
        if target.tls is not None:
            verify = await asyncio.to_thread(build_ssl_context, target.tls)
            server_name = target.tls.server_name
        return cls(verify=verify, h2_only=h2_only, authority=target.authority,
                   server_name=server_name)

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            http1=not self._h2_only,
            http2=True,
            verify=self._verify,
            timeout=httpx.Timeout(None, connect=10.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=8),
            trust_env=False,
            follow_redirects=False,
        )

    async def close(self) -> None:
        """Close every connection of every client."""
        clients = [self._client, *self._idle]
        self._idle.clear()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    def _take_stream_client(self) -> httpx.AsyncClient:
        return self._idle.pop() if self._idle else self._new_client()

    async def _give_back(self, client: httpx.AsyncClient, clean: bool) -> None:
        if clean and len(self._idle) < _MAX_IDLE_STREAM_CLIENTS:
            self._idle.append(client)
        else:
            await client.aclose()

    def _headers(self, base: list[tuple[str, str]], metadata: Metadata) -> list[tuple[str, str]]:
        headers = base + _wire_headers(metadata)
        if self._host_header:
            headers.append(("host", self._host_header))
        return headers

    # -- unary ---------------------------------------------------------------

    async def unary(
        self,
        target: CallTarget,
        method: MethodRef,
        payload: bytes,
        metadata: Metadata,
        timeout_s: float,
    ) -> UnaryResult:
        """One unary call: a Connect unary POST, or a one-message gRPC-Web call."""
        if target.protocol is Protocol.CONNECT:
            base = cw.unary_request_headers(target.codec, timeout_s)
            body = payload
        else:
            base = gw.request_headers(timeout_s)
            body = gw.envelope(0, payload)
        url = target.base_url + method.path
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._client.post(
                    url,
                    content=body,
                    headers=self._headers(base, metadata),
                    extensions=self._extensions,
                )
        except TimeoutError:
            return UnaryResult(headers=(), payload=None, status=self._deadline())
        except httpx.HTTPError as exc:
            return UnaryResult(headers=(), payload=None, status=self._failure(exc))
        if target.protocol is Protocol.CONNECT:
            return cw.unary_result(response.status_code, response.headers.multi_items(),
                                   response.content, target.codec)
        return gw.unary_result(response.status_code, response.headers.multi_items(),
                               response.content)

    # -- streams -------------------------------------------------------------

    async def stream(
        self,
        target: CallTarget,
        method: MethodRef,
        payloads: Sequence[bytes],
        metadata: Metadata,
        timeout_s: float,
    ) -> AsyncGenerator[CallEvent, None]:
        """A streaming call (Connect streaming or gRPC-Web) as events."""
        connect = target.protocol is Protocol.CONNECT
        if connect:
            base = cw.stream_request_headers(target.codec, timeout_s)
        else:
            base = gw.request_headers(timeout_s)
        client = self._take_stream_client()
        inner = self._stream_on(client, connect, target, method, payloads, base, metadata,
                                timeout_s)
        clean = False
        try:
            async for event, clean in inner:  # noqa: B007 - the last pair decides
                if event is not None:
                    yield event
        finally:
            await inner.aclose()
            await self._give_back(client, clean)

    async def _stream_on(
        self,
        client: httpx.AsyncClient,
        connect: bool,
        target: CallTarget,
        method: MethodRef,
        payloads: Sequence[bytes],
        base: list[tuple[str, str]],
        metadata: Metadata,
        timeout_s: float,
    ) -> AsyncGenerator[tuple[CallEvent | None, bool], None]:
        """Events paired with "the connection is clean now" (the last pair says it all)."""
        body = b"".join(gw.envelope(0, p) for p in payloads)
        request = client.build_request(
            "POST",
            target.base_url + method.path,
            content=body,
            headers=self._headers(base, metadata),
            extensions=self._extensions,
        )
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                response = await client.send(request, stream=True)
        except TimeoutError:
            yield self._deadline(), False
            return
        except httpx.HTTPError as exc:
            yield self._failure(exc), False
            return
        try:
            parser: cw.StreamParser | gw.StreamParser
            if connect:
                parser = cw.StreamParser(response.status_code, response.headers.multi_items())
            else:
                parser = gw.StreamParser(response.status_code, response.headers.multi_items())
            for event in parser.start():
                yield event, False
            if parser.wants_body or parser.done:
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await response.aread()
                except TimeoutError:
                    yield (None if parser.done else self._deadline()), False
                    return
                except httpx.HTTPError as exc:
                    yield (None if parser.done else self._failure(exc)), False
                    return
                yield (None if parser.done else parser.body(data)), True
                return
            reader = EnvelopeReader()
            chunks = response.aiter_bytes()
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks, None)
                except TimeoutError:
                    yield (None if parser.done else self._deadline()), False
                    return
                except httpx.HTTPError as exc:
                    yield (None if parser.done else self._failure(exc)), False
                    return
                if chunk is None:
                    break
                if parser.done:  # data after the end of the stream: do not reuse
                    return
                try:
                    frames = reader.feed(chunk)
                    events = [e for f in frames for e in parser.frame(*f)]
                except EnvelopeError as exc:
                    yield failure(INTERNAL, f"invalid response framing from upstream: {exc}"), False
                    return
                for event in events:
                    yield event, False
            if parser.done:
                yield None, reader.pending == 0
            else:
                yield parser.finish(truncated=reader.pending > 0), False
        finally:
            await response.aclose()

    # -- failures ------------------------------------------------------------

    def _deadline(self) -> CallStatus:
        return failure(DEADLINE_EXCEEDED, f"deadline exceeded calling {self.authority}")

    def _failure(self, exc: httpx.HTTPError) -> CallStatus:
        reason = _reason(exc)
        if isinstance(exc, httpx.TimeoutException):
            return failure(DEADLINE_EXCEEDED, f"timed out talking to {self.authority}: {reason}")
        if isinstance(exc, httpx.ConnectError):
            if _is_tls(exc):
                return failure(UNAVAILABLE, f"TLS handshake with {self.authority} failed: {reason}")
            return failure(UNAVAILABLE, f"cannot connect to {self.authority}: {reason}")
        hint = (
            " (Connect client and bidi streams use HTTP/2 with prior knowledge on "
            "plaintext: the server must accept h2c; or use TLS, or the gRPC transport)"
            if self._h2_only
            else ""
        )
        if isinstance(exc, httpx.RemoteProtocolError):
            return failure(
                UNAVAILABLE, f"protocol error talking to {self.authority}: {reason}{hint}"
            )
        if isinstance(exc, httpx.TransportError):
            return failure(
                UNAVAILABLE, f"connection to {self.authority} failed: {reason}{hint}"
            )
        return failure(UNKNOWN, f"HTTP call to {self.authority} failed: {reason}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    while not text and cause is not None:
        text = str(cause).strip()
        cause = cause.__cause__ or cause.__context__
    return text or type(exc).__name__


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError) or "SSL" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False

