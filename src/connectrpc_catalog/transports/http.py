"""The HTTP client the Connect and gRPC-Web transports share (httpx).

One `HttpClient` serves one target (authority, TLS settings, HTTP version). With TLS,
ALPN picks h2 or http/1.1. On plaintext, `HttpVersion.AUTO` asks the server once which
it speaks (`diagnose.probe`: the HTTP/2 preface on a connection of its own, carrying no
request) and remembers the answer: h2c with prior knowledge for an HTTP/2 server (such as
connect-es on `http2.createServer`, or connect-go behind h2c), HTTP/1.1 otherwise. Calls
wait for that answer; concurrent first calls share one probe.

Request messages are all sent before the response is read (the catalog half-closes
after its list of messages), so HTTP/1.1 can carry server and client streams; a server
that wants HTTP/2 for bidi streams says so (HTTP 505) and the status explains it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from .base import Call, CallEvent, CallStatus, CallTarget, HttpVersion, Metadata, Pair
from .diagnose import Speaks, dns_hint, explain, probe, tls_hint
from .envelope import EnvelopeError, EnvelopeReader
from .headers import wire_headers
from .status import Code, failure
from .tls import build_ssl_context

__all__ = ["HttpClient", "HttpReply", "StreamParser"]

_CONNECT_TIMEOUT = 10.0
_PROBE_READ_TIMEOUT = 2.0
_MAX_IDLE_STREAM_CLIENTS = 4


class StreamParser(Protocol):
    """Turns a streaming response into events (Connect and gRPC-Web each have one)."""

    done: bool
    """The final status was produced."""
    wants_body: bool
    """The response is not a stream: its whole body goes to `body`."""

    def start(self) -> list[CallEvent]:
        """Events from the response head."""
        ...

    def body(self, data: bytes) -> CallStatus:
        """The final status from a whole non-stream body."""
        ...

    def frame(self, flags: int, data: bytes) -> list[CallEvent]:
        """Events for one frame; EnvelopeError when it makes no sense."""
        ...

    def finish(self, *, truncated: bool) -> CallStatus:
        """The status when the body ended before the stream did."""
        ...


ParserFactory = Callable[[int, list[tuple[str, str]]], StreamParser]
"""Builds a parser from the response's HTTP status and header items."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A whole response: status, header items (trailers are in them for Connect), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class HttpClient:
    """httpx clients for one target, used by the Connect and gRPC-Web transports.

    Unary calls share one client (keep-alive HTTP/1.1, or multiplexed HTTP/2). Each
    streaming call takes a client of its own from a small idle list: httpx cannot
    reset a single HTTP/2 stream, so a stream the caller abandons is cancelled by
    closing its connection, which must then carry nothing else. A stream that ran to
    its end leaves a clean connection, and its client goes back to the idle list.
    """

    __slots__ = ("_client", "_extensions", "_host_header", "_idle", "_lock", "_origin",
                 "_target", "_verify", "_version")

    def __init__(self, target: CallTarget, verify: ssl.SSLContext | bool) -> None:
        self._target = target
        self._verify = verify
        plaintext_auto = target.tls is None and target.http is HttpVersion.AUTO
        self._version: HttpVersion | None = None if plaintext_auto else target.http
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None
        self._idle: list[httpx.AsyncClient] = []
        # With a dialled address (the access policy's) the URL holds that IP and the name
        # goes in Host (hence :authority), SNI and the certificate check.
        server_name = target.tls.server_name if target.tls is not None else ""
        sni = server_name or (target.host if target.dial and target.tls is not None else "")
        self._extensions: dict[str, Any] = {"sni_hostname": sni} if sni else {}
        self._host_header = server_name or (_host_value(target) if target.dial else "")
        self._origin = target.origin
        if target.dial:
            dial = f"[{target.dial}]" if ":" in target.dial else target.dial
            self._origin = f"{target.origin.split('://', 1)[0]}://{dial}:{target.port}"

    @classmethod
    async def open(cls, target: CallTarget) -> HttpClient:
        """A client for the target; raises TLSMaterialError for unusable TLS material."""
        verify: ssl.SSLContext | bool = False
        if target.tls is not None:
            verify = await asyncio.to_thread(build_ssl_context, target.tls)
        return cls(target, verify)

    @property
    def authority(self) -> str:
        """host:port of the target."""
        return self._target.authority

    async def close(self) -> None:
        """Close every connection of every client."""
        clients = [c for c in (self._client, *self._idle) if c is not None]
        self._client = None
        self._idle.clear()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    # -- the HTTP version ------------------------------------------------------

    async def _resolve(self, call: Call) -> CallStatus | None:
        """Settle the HTTP version (probing a plaintext AUTO target once); a status
        when the server cannot be reached or speaks TLS."""
        if self._version is not None:
            return None
        async with self._lock:
            if self._version is not None:
                return None
            host, port = self._target.connect_host, self._target.port
            try:
                async with asyncio.timeout_at(call.deadline):
                    speaks = await probe(host, port, connect_timeout=_CONNECT_TIMEOUT,
                                         read_timeout=_PROBE_READ_TIMEOUT)
            except TimeoutError:
                return self._deadline()
            except OSError as exc:
                return self._cannot_connect(exc)
            if speaks is Speaks.TLS:
                return failure(Code.UNAVAILABLE, f"cannot talk plaintext HTTP to "
                               f"{self.authority}: {tls_hint(plaintext=True)}")
            self._version = HttpVersion.HTTP2 if speaks is Speaks.HTTP2 else HttpVersion.HTTP1
        return None

    async def settled_version(self, call: Call) -> HttpVersion | CallStatus:
        """The HTTP version calls to the target use (a plaintext AUTO target is probed
        once; with TLS, AUTO leaves the choice to ALPN); a status when unreachable."""
        refused = await self._resolve(call)
        if refused is not None:
            return refused
        return self._version or self._target.http

    def _new_client(self) -> httpx.AsyncClient:
        version = self._version
        return httpx.AsyncClient(
            http1=version is not HttpVersion.HTTP2,
            http2=version is not HttpVersion.HTTP1,
            verify=self._verify,
            timeout=httpx.Timeout(None, connect=_CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=8),
            trust_env=False,
            follow_redirects=False,
        )

    def _headers(self, base: list[Pair], metadata: Metadata) -> list[Pair]:
        headers = base + wire_headers(metadata)
        if self._host_header:
            headers.append(("host", self._host_header))
        return headers

    # -- calls -----------------------------------------------------------------

    async def post(self, call: Call, headers: list[Pair], body: bytes) -> HttpReply | CallStatus:
        """POST `body` to the call's path and read the whole response."""
        refused = await self._resolve(call)
        if refused is not None:
            return refused
        if self._client is None:
            self._client = self._new_client()
        try:
            async with asyncio.timeout_at(call.deadline):
                response = await self._client.post(
                    self._origin + call.path,
                    content=body,
                    headers=self._headers(headers, call.metadata),
                    extensions=self._extensions,
                )
        except TimeoutError:
            return self._deadline()
        except httpx.HTTPError as exc:
            return await self._failure(exc)
        return HttpReply(response.status_code, response.headers.multi_items(), response.content)

    async def stream(
        self,
        call: Call,
        headers: list[Pair],
        body: bytes | AsyncIterator[bytes],
        parser: ParserFactory,
    ) -> AsyncGenerator[CallEvent, None]:
        """POST `body` and turn the streamed response into events with `parser`.

        A body iterator is sent as it yields (chunked on HTTP/1.1, DATA frames on HTTP/2);
        httpx reads the response only once the body ended, so a bidi call over this client
        sees its responses after the half-close."""
        refused = await self._resolve(call)
        if refused is not None:
            yield refused
            return
        client = self._idle.pop() if self._idle else self._new_client()
        inner = self._stream_on(client, call, self._headers(headers, call.metadata), body,
                                parser)
        clean = False
        try:
            async for event, clean in inner:  # noqa: B007 - the last pair decides
                if event is not None:
                    yield event
        finally:
            await inner.aclose()
            if clean and len(self._idle) < _MAX_IDLE_STREAM_CLIENTS:
                self._idle.append(client)
            else:
                await client.aclose()

    async def _stream_on(
        self,
        client: httpx.AsyncClient,
        call: Call,
        headers: list[Pair],
        body: bytes | AsyncIterator[bytes],
        parser_factory: ParserFactory,
    ) -> AsyncGenerator[tuple[CallEvent | None, bool], None]:
        """Events paired with "the connection is clean now" (the last pair says it all)."""
        request = client.build_request("POST", self._origin + call.path, content=body,
                                       headers=headers, extensions=self._extensions)
        try:
            async with asyncio.timeout_at(call.deadline):
                response = await client.send(request, stream=True)
        except TimeoutError:
            yield self._deadline(), False
            return
        except httpx.HTTPError as exc:
            yield await self._failure(exc), False
            return
        try:
            parser = parser_factory(response.status_code, response.headers.multi_items())
            for event in parser.start():
                yield event, False
            if parser.wants_body or parser.done:
                async for pair in self._whole_body(response, parser, call.deadline):
                    yield pair
                return
            async for pair in self._frames(response, parser, call.deadline):
                yield pair
        finally:
            await response.aclose()

    async def _whole_body(
        self, response: httpx.Response, parser: StreamParser, deadline: float
    ) -> AsyncGenerator[tuple[CallEvent | None, bool], None]:
        try:
            async with asyncio.timeout_at(deadline):
                data = await response.aread()
        except TimeoutError:
            yield (None if parser.done else self._deadline()), False
            return
        except httpx.HTTPError as exc:
            yield (None if parser.done else await self._failure(exc)), False
            return
        yield (None if parser.done else parser.body(data)), True

    async def _frames(
        self, response: httpx.Response, parser: StreamParser, deadline: float
    ) -> AsyncGenerator[tuple[CallEvent | None, bool], None]:
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
                yield (None if parser.done else await self._failure(exc)), False
                return
            if chunk is None:
                break
            if parser.done:  # data after the end of the stream: do not reuse
                return
            try:
                events = [e for f in reader.feed(chunk) for e in parser.frame(*f)]
            except EnvelopeError as exc:
                bad = failure(Code.INTERNAL, f"invalid response framing from upstream: {exc}")
                yield bad, False
                return
            for event in events:
                yield event, False
        if parser.done:
            yield None, reader.pending == 0
        else:
            yield parser.finish(truncated=reader.pending > 0), False

    # -- failures --------------------------------------------------------------

    def _deadline(self) -> CallStatus:
        return failure(Code.DEADLINE_EXCEEDED, f"deadline exceeded calling {self.authority}")

    def _cannot_connect(self, exc: BaseException) -> CallStatus:
        reason = _reason(exc)
        hint = dns_hint(exc, self._target.host)
        text = f"cannot connect to {self.authority}: {reason}"
        return failure(Code.UNAVAILABLE, f"{text}; {hint}" if hint else text)

    async def _failure(self, exc: httpx.HTTPError) -> CallStatus:
        reason = _reason(exc)
        authority = self.authority
        if isinstance(exc, httpx.TimeoutException):
            return failure(Code.DEADLINE_EXCEEDED, f"timed out talking to {authority}: {reason}")
        if isinstance(exc, httpx.ConnectError) and _is_tls(exc):
            hint = ""
            if "CERTIFICATE_VERIFY_FAILED" not in reason:
                hint = await explain(self._target.connect_host, self._target.port, tried="tls")
            text = f"TLS handshake with {authority} failed: {reason}"
            return failure(Code.UNAVAILABLE, f"{text}; {hint}" if hint else text)
        if isinstance(exc, httpx.ConnectError):
            return self._cannot_connect(exc)
        if isinstance(exc, httpx.TransportError):
            hint = await self._mismatch()
            what = "protocol error" if isinstance(exc, httpx.RemoteProtocolError) else "failure"
            text = f"{what} talking to {authority}: {reason}"
            return failure(Code.UNAVAILABLE, f"{text}; {hint}" if hint else text)
        return failure(Code.UNKNOWN, f"HTTP call to {authority} failed: {reason}")

    async def _mismatch(self) -> str:
        if self._target.tls is not None:
            return ""
        tried = "h2c" if self._version is HttpVersion.HTTP2 else "http/1.1"
        return await explain(self._target.connect_host, self._target.port, tried=tried)


def _host_value(target: CallTarget) -> str:
    """The Host header a client would send for the target (no default port)."""
    default = 443 if target.tls is not None else 80
    return target.authority if target.port != default else target.authority.rsplit(":", 1)[0]


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
