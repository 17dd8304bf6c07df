"""Example upstream for connectrpc-catalog: the Skylark Weather API over Connect.

    .venv/bin/python examples/connect_server.py --port 8000

The same services and answers as ``examples/server.py`` (``weather.v1.WeatherService``
and ``weather.v1.AlertService``, all four kinds of method), served by a connectrpc ASGI
app on hypercorn: Connect (JSON and binary, HTTP/1.1 and HTTP/2 cleartext), gRPC and
gRPC-Web on one port. ``--prefix /api`` serves them under a path prefix, as behind a
reverse proxy. No reflection: load the schema from ``examples/weather``.

The protos are compiled with grpc_tools into a temporary directory at start (nothing
generated is committed), and the handlers of ``examples/server.py`` run unchanged in
worker threads behind a small adapter for their ``grpc.ServicerContext``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf.message_factory import GetMessageClass
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from protobuf.wkt import Any as PyAny

sys.path.insert(0, str(Path(__file__).resolve().parent))
from connectrpc_catalog.demo.weather import build_services, compile_protos

LOG = logging.getLogger("weather-connect-example")
_END = object()


class _Context:
    """What the grpcio handlers of examples/server.py use of a ServicerContext."""

    def __init__(self, ctx: RequestContext[Any, Any]) -> None:
        self._ctx = ctx
        self._details: list[ErrorDetail] = []
        self.cancelled = threading.Event()

    def send_initial_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        for key, value in metadata:
            self._ctx.response_headers.add(key, value)

    def set_trailing_metadata(self, metadata: tuple[tuple[str, Any], ...]) -> None:
        for key, value in metadata:
            if key == "grpc-status-details-bin":  # rich error details: Connect sends them itself
                from google.rpc import status_pb2

                status = status_pb2.Status.FromString(value)
                self._details = [
                    ErrorDetail(PyAny(type_url=d.type_url, value=d.value)) for d in status.details
                ]
            else:
                self._ctx.response_trailers.add(key, value)

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        name = "CANCELED" if code.name == "CANCELLED" else code.name
        raise ConnectError(Code[name], message, self._details)

    def is_active(self) -> bool:
        return not self.cancelled.is_set()


def _sync_requests(requests: AsyncIterator[Any], loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """A blocking iterator over an async one, for a handler running in a worker thread."""
    while True:
        future = asyncio.run_coroutine_threadsafe(anext(requests, _END), loop)
        item = future.result()
        if item is _END:
            return
        yield item


async def _drain(results: Iterator[Any], context: _Context) -> AsyncIterator[Any]:
    """Yield what a blocking generator yields, each step in a worker thread."""
    try:
        while (item := await asyncio.to_thread(next, results, _END)) is not _END:
            yield item
    finally:  # the client went away (or the stream ended): stop the handler
        context.cancelled.set()


def _endpoints(services: tuple[Any, Any], pb: Any, alerts_pb: Any) -> dict[str, Endpoint[Any, Any]]:
    weather, alerts = services

    def info(service: str, name: str, module: Any, kind: StreamType) -> MethodInfo[Any, Any]:
        method = module.DESCRIPTOR.services_by_name[service.rsplit(".", 1)[1]].methods_by_name[name]
        return MethodInfo(
            name=name,
            service_name=service,
            input=GetMessageClass(method.input_type),
            output=GetMessageClass(method.output_type),
            idempotency_level=IdempotencyLevel.UNKNOWN,
            stream_type=kind,
        )

    def unary(handler: Callable[[Any, Any], Any]) -> Any:
        async def call(request: Any, ctx: RequestContext[Any, Any]) -> Any:
            return await asyncio.to_thread(handler, request, _Context(ctx))

        return call

    def server_stream(handler: Callable[[Any, Any], Iterator[Any]]) -> Any:
        async def call(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
            context = _Context(ctx)
            async for item in _drain(handler(request, context), context):
                yield item

        return call

    def client_stream(handler: Callable[[Iterator[Any], Any], Any]) -> Any:
        async def call(requests: AsyncIterator[Any], ctx: RequestContext[Any, Any]) -> Any:
            loop = asyncio.get_running_loop()
            return await asyncio.to_thread(handler, _sync_requests(requests, loop), _Context(ctx))

        return call

    def bidi_stream(handler: Callable[[Iterator[Any], Any], Iterator[Any]]) -> Any:
        async def call(
            requests: AsyncIterator[Any], ctx: RequestContext[Any, Any]
        ) -> AsyncIterator[Any]:
            context = _Context(ctx)
            results = handler(_sync_requests(requests, asyncio.get_running_loop()), context)
            async for item in _drain(results, context):
                yield item

        return call

    u, ss, cs, bs = (
        StreamType.UNARY,
        StreamType.SERVER_STREAM,
        StreamType.CLIENT_STREAM,
        StreamType.BIDI_STREAM,
    )
    ws, als = "weather.v1.WeatherService", "weather.v1.AlertService"
    table = [
        (ws, "GetCurrentConditions", pb, u, Endpoint.unary, unary, weather),
        (ws, "GetForecast", pb, u, Endpoint.unary, unary, weather),
        (ws, "WatchObservations", pb, ss, Endpoint.server_stream, server_stream, weather),
        (ws, "ReportObservations", pb, cs, Endpoint.client_stream, client_stream, weather),
        (als, "Subscribe", alerts_pb, bs, Endpoint.bidi_stream, bidi_stream, alerts),
        (als, "GetAlert", alerts_pb, u, Endpoint.unary, unary, alerts),
    ]
    return {
        f"/{service}/{name}": make(info(service, name, module, kind), wrap(getattr(impl, name)))
        for service, name, module, kind, make, wrap, impl in table
    }


class WeatherApp(ConnectASGIApplication[dict[str, Endpoint[Any, Any]]]):
    """Both weather services in one connectrpc ASGI app (Connect, gRPC and gRPC-Web)."""

    def __init__(self, endpoints: dict[str, Endpoint[Any, Any]]) -> None:
        super().__init__(
            service=endpoints,
            endpoints=lambda eps: eps,
            codecs=[google_protobuf_binary_codec(), google_protobuf_json_codec()],
        )

    @property
    def path(self) -> str:
        return "/weather.v1."


def with_prefix(app: Any, prefix: str) -> Any:
    """Serve `app` under a path prefix (`/api/weather.v1.WeatherService/...`)."""
    if not prefix:
        return app

    async def prefixed(scope: Mapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if not path.startswith(prefix + "/"):
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            scope = dict(scope, path=path[len(prefix) :], root_path=prefix)
        await app(scope, receive, send)

    return prefixed


def serve(host: str, port: int, prefix: str) -> None:
    tmp = tempfile.TemporaryDirectory(prefix="weather-connect-example-")
    compile_protos(Path(tmp.name))
    sys.path.insert(0, tmp.name)
    pb = importlib.import_module("weather.v1.weather_pb2")
    pb_grpc = importlib.import_module("weather.v1.weather_pb2_grpc")
    alerts_pb = importlib.import_module("weather.v1.alerts_pb2")
    alerts_grpc = importlib.import_module("weather.v1.alerts_pb2_grpc")
    services = build_services(pb, pb_grpc, alerts_pb, alerts_grpc)
    app = with_prefix(WeatherApp(_endpoints(services, pb, alerts_pb)), prefix.rstrip("/"))

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.keep_alive_max_requests = 1 << 62  # hypercorn closes after 1,000 by default
    config.graceful_timeout = 1.0
    config.accesslog = None
    config.loglevel = "WARNING"

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = asyncio.create_task(
            hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        )
        await _wait_listening(host, port, server)
        print(
            f"Skylark Weather example listening on http://{host}:{port}{prefix.rstrip('/')} "
            "(Connect, gRPC and gRPC-Web)",
            flush=True,
        )
        await server

    try:
        asyncio.run(main())
    finally:
        tmp.cleanup()


async def _wait_listening(host: str, port: int, server: asyncio.Task[None]) -> None:
    while not server.done():
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        await asyncio.sleep(0.02)
    server.result()  # hypercorn stopped (e.g. the port is taken): raise its error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--prefix", default="", help="serve under this path, e.g. /api")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    try:
        serve(args.host, args.port, args.prefix)
    except OSError as exc:
        raise SystemExit(f"cannot listen on {args.host}:{args.port}: {exc}") from None


if __name__ == "__main__":
    main()
