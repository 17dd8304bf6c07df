"""A full-duplex HTTP/2 client for one streaming call (Connect client and bidi streams).

httpx reads a response only after its request body ended, so over it a bidi call sees
its replies after the half-close. Here each request message goes out as the payload
iterator yields it, and each response message is handed over as soon as its frame is
complete: the call is a conversation. `h2` (the HTTP/2 state machine hypercorn itself
uses; I/O-free) keeps the protocol state; asyncio streams carry the bytes; TLS is an
`ssl` context offering ALPN `h2` (and `http/1.1` unless HTTP/2 was forced: a server that
picks HTTP/1.1 gets the call over the shared httpx client instead, see `NotHttp2`).

Each call has a connection of its own (opened per call, closed when it ends): ending or
abandoning a call is a RST_STREAM (CANCEL) and a close, and nothing else shares it.

Bounds: the receive window (`_WINDOW` per stream and for the connection; data is
acknowledged only once its messages were handed over, so a slow reader slows the server
instead of buffering), the header list (`_MAX_HEADER_LIST`), a message (the envelope
reader's limit), a non-stream error body (`_MAX_ERROR_BODY`), the connect time
(`_CONNECT_TIMEOUT`) and the call's deadline for everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from .base import Call, CallEvent, CallStatus, Pair
from .diagnose import dns_hint
from .envelope import EnvelopeError, EnvelopeReader, envelope
from .http import ParserFactory, StreamParser
from .status import Code, failure

__all__ = ["DuplexConnection", "Endpoint", "NotHttp2", "connect_failure", "open_duplex"]

_CONNECT_TIMEOUT = 10.0
_WINDOW = 1 << 20
"""Bytes the server may send ahead of what was handed over (per stream and connection)."""
_MAX_HEADER_LIST = 64 * 1024
_MAX_ERROR_BODY = 1 << 20
_READ_BYTES = 64 * 1024
_CLOSE_TIMEOUT = 1.0
_MAX_EMPTY_FRAMES = 10_000
"""Frames bringing no response bytes (empty DATA, PING, SETTINGS, PRIORITY, unknown types,
1xx heads) a call takes: a flood of them kept the loop busy and queued PING answers
until the deadline."""
_CARRY_NOTHING = (
    h2.events.PingReceived, h2.events.PingAckReceived, h2.events.RemoteSettingsChanged,
    h2.events.SettingsAcknowledged, h2.events.PriorityUpdated, h2.events.UnknownFrameReceived,
    h2.events.InformationalResponseReceived,
)
_HOP_BY_HOP = frozenset(
    ("host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
     "te")
)
_RESET_CODES = {
    h2.errors.ErrorCodes.REFUSED_STREAM: Code.UNAVAILABLE,
    h2.errors.ErrorCodes.CANCEL: Code.CANCELLED,
    h2.errors.ErrorCodes.ENHANCE_YOUR_CALM: Code.RESOURCE_EXHAUSTED,
    h2.errors.ErrorCodes.INADEQUATE_SECURITY: Code.PERMISSION_DENIED,
}


class NotHttp2(Exception):
    """The TLS server picked HTTP/1.1 in ALPN: send the call over HTTP/1.1."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where a duplex connection goes and what it says it talks to."""

    host: str
    """The address to connect to (a resolved address, or the target's host)."""
    port: int
    authority: str
    """`:authority` (the TLS server name when one is set, else host:port)."""
    tls: ssl.SSLContext | None = None
    server_hostname: str = ""
    """The name the certificate is checked against (and sent as SNI)."""

    @property
    def scheme(self) -> str:
        """https with TLS, http otherwise."""
        return "https" if self.tls is not None else "http"


async def open_duplex(endpoint: Endpoint, deadline: float) -> DuplexConnection:
    """Connect, agree on HTTP/2 and send the preface.

    Raises NotHttp2 (ALPN chose HTTP/1.1), TimeoutError, OSError or ssl.SSLError."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(min(deadline, loop.time() + _CONNECT_TIMEOUT)):
        reader, writer = await asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=endpoint.tls,
            server_hostname=(endpoint.server_hostname or endpoint.host) if endpoint.tls else None,
        )
    if endpoint.tls is not None:
        ssl_object = writer.get_extra_info("ssl_object")
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if chosen != "h2":
            writer.close()
            raise NotHttp2(chosen or "")
    return DuplexConnection(reader, writer, endpoint)


class DuplexConnection:
    """One HTTP/2 connection carrying one call; see `exchange`."""

    __slots__ = ("_conn", "_empty", "_endpoint", "_inbox", "_reader", "_sid", "_window",
                 "_writer")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, endpoint: Endpoint
    ) -> None:
        self._reader, self._writer, self._endpoint = reader, writer, endpoint
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._conn = h2.connection.H2Connection(config)
        self._conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: _MAX_HEADER_LIST,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1,
            },
        )
        self._conn.initiate_connection()
        self._conn.increment_flow_control_window(_WINDOW - 65_535)
        self._flush()
        self._sid = 0
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue()
        """What the socket brought, in order; bounded by the receive windows."""
        self._window = asyncio.Event()
        self._empty = 0
        """Frames that brought nothing so far (see `_MAX_EMPTY_FRAMES`)."""

    def abort(self) -> None:
        """Drop the connection (the transport closes): the call ends as unavailable."""
        self._writer.close()

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def exchange(
        self, call: Call, headers: list[Pair], payloads: AsyncIterable[bytes],
        parser_factory: ParserFactory,
    ) -> AsyncGenerator[CallEvent, None]:
        """POST to the call's path, sending `payloads` as frames while reading the response;
        yields headers, messages and one final status. Closing it early resets the stream.
        The connection is closed when it ends."""
        self._sid = self._conn.get_next_available_stream_id()
        try:
            self._conn.send_headers(self._sid, self._request_head(call, headers))
        except h2.exceptions.H2Error as exc:  # a header h2 refuses to send
            self._writer.close()
            yield failure(Code.INVALID_ARGUMENT, f"the request headers cannot be sent "
                                                 f"over HTTP/2: {exc}")
            return
        self._flush()
        pump = asyncio.ensure_future(self._pump())
        sender = asyncio.ensure_future(self._send(payloads))
        response = _Response(parser_factory, self._endpoint.authority)
        try:
            while not response.finished:
                try:
                    async with asyncio.timeout_at(call.deadline):
                        item = await self._inbox.get()
                except TimeoutError:
                    yield failure(Code.DEADLINE_EXCEEDED,
                                  f"deadline exceeded calling {self._endpoint.authority}")
                    return
                if isinstance(item, _SendFailed):
                    raise item.error
                for event in response.take(item):
                    yield event
                if isinstance(item, _Data):
                    self._acknowledge(item.flow)
        finally:
            for task in (sender, pump):
                task.cancel()
            await asyncio.gather(sender, pump, return_exceptions=True)
            await self._shut(reset=not response.clean)

    def _request_head(self, call: Call, headers: list[Pair]) -> list[tuple[str, str]]:
        head = [(":method", "POST"), (":scheme", self._endpoint.scheme),
                (":authority", self._endpoint.authority), (":path", call.path)]
        head += [(k, v) for k, v in headers if k not in _HOP_BY_HOP and not k.startswith(":")]
        return head

    def _acknowledge(self, flow: int) -> None:
        with contextlib.suppress(h2.exceptions.H2Error):
            self._conn.acknowledge_received_data(flow, self._sid)
            self._flush()

    # -- sending ---------------------------------------------------------------

    async def _send(self, payloads: AsyncIterable[bytes]) -> None:
        """Send each payload as one frame as it comes, then half-close."""
        try:
            async for payload in payloads:
                await self._write(envelope(0, payload))
            self._conn.end_stream(self._sid)
            self._flush()
            await self._writer.drain()
        except (h2.exceptions.StreamClosedError, OSError, ssl.SSLError):
            return  # the server ended or reset the stream, or the connection went away
        except h2.exceptions.ProtocolError:
            return
        except Exception as exc:  # the payload iterator failed: the call does too
            self._inbox.put_nowait(_SendFailed(exc))

    async def _write(self, data: bytes) -> None:
        """Send within the peer's flow-control windows (StreamClosedError once the server
        ended or reset the stream)."""
        view = memoryview(data)
        while view:
            room = min(self._conn.local_flow_control_window(self._sid),
                       self._conn.max_outbound_frame_size)
            if room <= 0:
                self._window.clear()
                await self._window.wait()
                continue
            self._conn.send_data(self._sid, bytes(view[:room]))
            view = view[room:]
            self._flush()
            await self._writer.drain()

    # -- receiving -------------------------------------------------------------

    async def _pump(self) -> None:
        """Read the socket into h2 and the inbox until the connection ends."""
        try:
            while True:
                data = await self._reader.read(_READ_BYTES)
                if not data:
                    self._inbox.put_nowait(_Gone("the upstream closed the connection"))
                    return
                try:
                    events = self._conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    self._flush()
                    self._inbox.put_nowait(_Gone(f"HTTP/2 protocol error ({exc})"))
                    return
                for event in events:
                    self._on(event)
                self._flush()
        except (OSError, ssl.SSLError) as exc:
            self._inbox.put_nowait(_Gone(f"connection failed ({_reason(exc)})"))
        finally:
            self._window.set()

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, _CARRY_NOTHING) or (
            isinstance(event, h2.events.DataReceived) and not event.flow_controlled_length
        ):
            self._empty += 1
            if self._empty == _MAX_EMPTY_FRAMES:
                self._inbox.put_nowait(_Gone(f"a flood of {_MAX_EMPTY_FRAMES} frames that "
                                             "carry no response"))
        if isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._window.set()
            code = _code_name(int(event.error_code or 0))
            self._inbox.put_nowait(_Gone(f"the upstream ended the connection (GOAWAY {code})"))
        elif getattr(event, "stream_id", None) != self._sid:
            return
        elif isinstance(event, h2.events.ResponseReceived):
            self._inbox.put_nowait(_Head(_decode(event.headers)))
        elif isinstance(event, h2.events.DataReceived):
            self._inbox.put_nowait(_Data(bytes(event.data), event.flow_controlled_length))
        elif isinstance(event, h2.events.StreamEnded):
            self._inbox.put_nowait(_End())
        elif isinstance(event, h2.events.StreamReset):
            self._window.set()
            self._inbox.put_nowait(_Reset(event.error_code))

    async def _shut(self, *, reset: bool) -> None:
        """Reset the stream if it is still open (the call was abandoned) and close."""
        with contextlib.suppress(h2.exceptions.H2Error):
            if reset:
                self._conn.reset_stream(self._sid, h2.errors.ErrorCodes.CANCEL)
            self._conn.close_connection()
        self._flush()
        writer = self._writer
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError, RuntimeError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await writer.drain()
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError, RuntimeError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await writer.wait_closed()


# -- what the socket brought, and the response it adds up to ---------------------


@dataclass(frozen=True, slots=True)
class _Head:
    headers: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class _Data:
    data: bytes
    flow: int


@dataclass(frozen=True, slots=True)
class _End:
    pass


@dataclass(frozen=True, slots=True)
class _Reset:
    code: int


@dataclass(frozen=True, slots=True)
class _Gone:
    reason: str


@dataclass(frozen=True, slots=True)
class _SendFailed:
    error: Exception


_Item = _Head | _Data | _End | _Reset | _Gone | _SendFailed


class _Response:
    """The response of the call, item by item (I/O-free): events, and when it is over."""

    __slots__ = ("_authority", "_body", "_factory", "_parser", "_reader", "clean", "finished")

    def __init__(self, factory: ParserFactory, authority: str) -> None:
        self._factory, self._authority = factory, authority
        self._parser: StreamParser | None = None
        self._reader = EnvelopeReader()
        self._body = bytearray()
        self.finished = False
        self.clean = False
        """The stream ended on the server's side (no reset needed)."""

    def take(self, item: _Item) -> list[CallEvent]:
        """The events an item adds (sets `finished` with the final status)."""
        parser = self._parser
        if isinstance(item, _Head):
            return self._head(item)
        if isinstance(item, _Data) and parser is not None:
            return self._data(parser, item.data)
        if isinstance(item, _End):
            self.clean = True
            return self._end(parser)
        self.finished = True
        if isinstance(item, _Reset):
            code = _RESET_CODES.get(item.code, Code.INTERNAL)  # type: ignore[call-overload]
            self.clean = True
            return [failure(code, f"the upstream reset the stream (HTTP/2 "
                                  f"{_code_name(item.code)})")]
        if isinstance(item, _Gone):
            return [] if parser is not None and parser.done else [
                failure(Code.UNAVAILABLE, f"talking to {self._authority}: {item.reason}")]
        return [failure(Code.INTERNAL, "the upstream sent data before its response headers")]

    def _head(self, item: _Head) -> list[CallEvent]:
        if self._parser is not None:
            return []  # trailers: Connect streams carry their status in the body
        status_text = next((v for k, v in item.headers if k == ":status"), "")
        items = [(k, v) for k, v in item.headers if not k.startswith(":")]
        status = int(status_text) if status_text.isdigit() else 0
        self._parser = parser = self._factory(status, items)
        events = parser.start()
        if parser.done:
            self.finished = True
        return events

    def _data(self, parser: StreamParser, data: bytes) -> list[CallEvent]:
        if parser.done:
            return []
        if parser.wants_body:
            self._body += data
            if len(self._body) > _MAX_ERROR_BODY:
                self.finished = True
                return [failure(Code.INTERNAL, f"the upstream's error body is over "
                                               f"{_MAX_ERROR_BODY} bytes")]
            return []
        try:
            events = [e for f in self._reader.feed(data) for e in parser.frame(*f)]
        except EnvelopeError as exc:
            self.finished = True
            return [failure(Code.INTERNAL, f"invalid response framing from upstream: {exc}")]
        if parser.done:
            self.finished = True
        return events

    def _end(self, parser: StreamParser | None) -> list[CallEvent]:
        self.finished = True
        if parser is None:
            return [failure(Code.INTERNAL, "the upstream ended the stream without a response")]
        if parser.done:
            return []
        if parser.wants_body:
            return [parser.body(bytes(self._body))]
        return [parser.finish(truncated=self._reader.pending > 0)]


def _decode(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("utf-8", "replace")) for k, v in headers]


def _code_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"error 0x{code:x}"


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def connect_failure(exc: BaseException, endpoint: Endpoint, host: str) -> CallStatus:
    """The status of a connection that could not be opened (`host`: the target's name)."""
    if isinstance(exc, TimeoutError):
        return failure(Code.DEADLINE_EXCEEDED, f"timed out connecting to {endpoint.authority}")
    if isinstance(exc, ssl.SSLError):
        return failure(Code.UNAVAILABLE,
                       f"TLS handshake with {endpoint.authority} failed: {_reason(exc)}")
    hint = dns_hint(exc, host)
    text = f"cannot connect to {endpoint.authority}: {_reason(exc)}"
    return failure(Code.UNAVAILABLE, f"{text}; {hint}" if hint else text)
