"""TestService as a connectrpc ASGI app (Connect, gRPC, gRPC-Web) served by hypercorn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import json_format
from google.protobuf.message import Message
from hypercorn.asyncio import serve
from hypercorn.config import Config
from protobuf.wkt import Any as PyAny

from . import behaviour
from .behaviour import Recorder
from .schema import SERVICE, load_schema
from .tls import ServerTLS


class _JSONCodec(Codec[Message, Any]):
    """proto3 JSON through the test pool (so Any fields resolve)."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        pool = load_schema().pool
        return json_format.MessageToJson(message, descriptor_pool=pool, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: Any) -> Any:
        msg = message_class()
        json_format.Parse(bytes(data), msg, descriptor_pool=load_schema().pool)
        return msg


def _mark(ctx: RequestContext[Any, Any], method: str) -> None:
    ctx.response_headers[behaviour.HEADER_KEY] = behaviour.HEADER_VALUE
    ctx.response_trailers[behaviour.TRAILER_KEY] = method


class _Service:
    def __init__(self, recorder: Recorder) -> None:
        self.rec = recorder

    async def echo(self, req: Message, ctx: RequestContext[Any, Any]) -> Message:
        self.rec.call("Echo", ctx.client_address)
        _mark(ctx, "Echo")
        return behaviour.echo(req)

    async def server_stream(
        self, req: Message, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[Message]:
        self.rec.call("ServerStream", ctx.client_address)
        _mark(ctx, "ServerStream")
        try:
            for i in range(req.count):
                if i and req.interval_ms:
                    await asyncio.sleep(req.interval_ms / 1000)
                yield behaviour.stream_item(req, i)
        except (asyncio.CancelledError, GeneratorExit):
            self.rec.cancel("ServerStream")
            raise
        if req.fail_at_end:
            raise ConnectError(Code.RESOURCE_EXHAUSTED, "stream failed at end")

    async def client_stream(
        self, reqs: AsyncIterator[Message], ctx: RequestContext[Any, Any]
    ) -> Message:
        self.rec.call("ClientStream", ctx.client_address)
        _mark(ctx, "ClientStream")
        return behaviour.joined([r async for r in reqs])

    async def bidi_stream(
        self, reqs: AsyncIterator[Message], ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[Message]:
        self.rec.call("BidiStream", ctx.client_address)
        _mark(ctx, "BidiStream")
        i = 0
        async for req in reqs:
            yield behaviour.echo(req, i)
            i += 1

    async def fail(self, req: Message, ctx: RequestContext[Any, Any]) -> Message:
        self.rec.call("Fail", ctx.client_address)
        details = [
            ErrorDetail(PyAny(type_url=d.type_url, value=d.value))
            for d in behaviour.fail_details(req)
        ]
        raise ConnectError(Code.INVALID_ARGUMENT, behaviour.FAIL_MESSAGE, details)

    async def echo_metadata(self, req: Message, ctx: RequestContext[Any, Any]) -> Message:
        self.rec.call("EchoMetadata", ctx.client_address)
        pairs = [(k, v) for k in ctx.request_headers for v in ctx.request_headers.getall(k)]
        head, tail = behaviour.echo_pairs(pairs)  # type: ignore[arg-type]
        for key, value in head:
            ctx.response_headers.add(key, str(value))
        for key, value in tail:
            ctx.response_trailers.add(key, str(value))
        return behaviour.text_response("ok")

    async def sleep(self, req: Message, ctx: RequestContext[Any, Any]) -> Message:
        self.rec.call("Sleep", ctx.client_address)
        _mark(ctx, "Sleep")
        try:
            await asyncio.sleep(req.millis / 1000)
        except asyncio.CancelledError:
            self.rec.cancel("Sleep")
            raise
        return behaviour.text_response("slept")


def _endpoints(svc: _Service) -> Mapping[str, Endpoint[Any, Any]]:
    schema = load_schema()

    def info(name: str, stream: StreamType) -> MethodInfo[Any, Any]:
        m = schema.method(name)
        return MethodInfo(
            name=name,
            service_name=SERVICE,
            input=schema.cls(m.input_type.full_name),
            output=schema.cls(m.output_type.full_name),
            idempotency_level=IdempotencyLevel.UNKNOWN,
            stream_type=stream,
        )

    u, ss, cs, bs = (
        StreamType.UNARY,
        StreamType.SERVER_STREAM,
        StreamType.CLIENT_STREAM,
        StreamType.BIDI_STREAM,
    )
    eps: dict[str, Endpoint[Any, Any]] = {
        "Echo": Endpoint.unary(info("Echo", u), svc.echo),
        "ServerStream": Endpoint.server_stream(info("ServerStream", ss), svc.server_stream),
        "ClientStream": Endpoint.client_stream(info("ClientStream", cs), svc.client_stream),
        "BidiStream": Endpoint.bidi_stream(info("BidiStream", bs), svc.bidi_stream),
        "Fail": Endpoint.unary(info("Fail", u), svc.fail),
        "EchoMetadata": Endpoint.unary(info("EchoMetadata", u), svc.echo_metadata),
        "Sleep": Endpoint.unary(info("Sleep", u), svc.sleep),
    }
    return {f"/{SERVICE}/{name}": ep for name, ep in eps.items()}


class TestServiceApp(ConnectASGIApplication[_Service]):
    """The ASGI app serving TestService."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(
            service=_Service(recorder),
            endpoints=_endpoints,
            codecs=[google_protobuf_binary_codec(), _JSONCodec()],
        )

    @property
    def path(self) -> str:
        return f"/{SERVICE}"


class _PrefixApp:
    """Serves the app under an optional path prefix (like a reverse proxy would)."""

    def __init__(self, app: TestServiceApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.prefix:
            path: str = scope["path"]
            if not path.startswith(self.prefix + "/"):
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            scope = dict(scope, path=path[len(self.prefix) :])
        await self.app(scope, receive, send)


@dataclass
class ConnectServer:
    """A hypercorn server running the app on a background thread."""

    port: int
    recorder: Recorder
    tls: bool
    prefix: str
    _loop: asyncio.AbstractEventLoop
    _stop: asyncio.Event
    _thread: threading.Thread

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{self.prefix}"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def start_connect_server(
    recorder: Recorder, tls: ServerTLS | None = None, prefix: str = ""
) -> ConnectServer:
    """Start hypercorn (HTTP/1.1 + h2c, or TLS with ALPN h2) on 127.0.0.1, a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.keep_alive_max_requests = 1_000_000
    config.graceful_timeout = 0.5
    config.accesslog = None
    config.errorlog = None
    config.loglevel = "WARNING"
    files: list[str] = []
    if tls is not None:
        config.certfile = _temp_file(tls.cert_chain_pem, files)
        config.keyfile = _temp_file(tls.key_pem, files)
        if tls.client_ca_pem is not None:
            config.ca_certs = _temp_file(tls.client_ca_pem, files)
            config.verify_mode = ssl.CERT_REQUIRED
    app = _PrefixApp(TestServiceApp(recorder), prefix)
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = stop = asyncio.Event()
        ready.set()
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        _wait_listening(port, tls is not None)
    finally:
        for f in files:
            with contextlib.suppress(OSError):
                os.unlink(f)
    return ConnectServer(
        port=port,
        recorder=recorder,
        tls=tls is not None,
        prefix=prefix,
        _loop=holder["loop"],
        _stop=holder["stop"],
        _thread=thread,
    )


def _temp_file(data: bytes, files: list[str]) -> str:
    fd, path = tempfile.mkstemp(prefix="upstream-tls-", suffix=".pem")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    files.append(path)
    return path


def _wait_listening(port: int, tls: bool) -> None:
    """The socket listens from the start; wait until hypercorn answers."""

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                if tls:
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    with ctx.wrap_socket(raw):  # handshake done: the certs are loaded
                        return
                raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if raw.recv(16):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("upstream connect server did not start")
