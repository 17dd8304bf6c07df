"""TestService on a grpcio (thread pool) server bound to 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from . import behaviour
from .behaviour import Recorder
from .schema import SERVICE, load_schema
from .tls import ServerTLS

_STEP = 0.01


def _serialize(msg: Message) -> bytes:
    return msg.SerializeToString()


def _headers(context: grpc.ServicerContext, method: str) -> None:
    context.send_initial_metadata(((behaviour.HEADER_KEY, behaviour.HEADER_VALUE),))
    context.set_trailing_metadata(((behaviour.TRAILER_KEY, method),))


def _wait(context: grpc.ServicerContext, seconds: float) -> bool:
    """Sleep up to `seconds` in small steps; False when the call ended meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not context.is_active():
            return False
        time.sleep(min(_STEP, max(0.0, end - time.monotonic())))
    return context.is_active()


class _Service:
    def __init__(self, recorder: Recorder) -> None:
        self.rec = recorder

    def echo(self, req: Message, context: grpc.ServicerContext) -> Message:
        self.rec.call("Echo", context.peer())
        _headers(context, "Echo")
        return behaviour.echo(req)

    def server_stream(self, req: Message, context: grpc.ServicerContext) -> Iterator[Message]:
        self.rec.call("ServerStream", context.peer())
        _headers(context, "ServerStream")
        try:
            for i in range(req.count):
                if i and req.interval_ms and not _wait(context, req.interval_ms / 1000):
                    self.rec.cancel("ServerStream")
                    return
                yield behaviour.stream_item(req, i)
        except GeneratorExit:  # grpcio stopped pulling: the call ended early
            self.rec.cancel("ServerStream")
            raise
        if req.fail_at_end:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "stream failed at end")

    def client_stream(self, reqs: Iterator[Message], context: grpc.ServicerContext) -> Message:
        self.rec.call("ClientStream", context.peer())
        _headers(context, "ClientStream")
        return behaviour.joined(list(reqs))

    def bidi_stream(
        self, reqs: Iterator[Message], context: grpc.ServicerContext
    ) -> Iterator[Message]:
        self.rec.call("BidiStream", context.peer())
        _headers(context, "BidiStream")
        for i, req in enumerate(reqs):
            yield behaviour.echo(req, i)

    def fail(self, req: Message, context: grpc.ServicerContext) -> Message:
        self.rec.call("Fail", context.peer())
        status = behaviour.fail_status(req)
        context.abort_with_status(_RichStatus(status.SerializeToString()))
        raise AssertionError("unreachable")

    def echo_metadata(self, req: Message, context: grpc.ServicerContext) -> Message:
        self.rec.call("EchoMetadata", context.peer())
        head, tail = behaviour.echo_pairs(list(context.invocation_metadata()))
        context.send_initial_metadata(tuple(head))
        context.set_trailing_metadata(tuple(tail))
        return behaviour.text_response("ok")

    def sleep(self, req: Message, context: grpc.ServicerContext) -> Message:
        self.rec.call("Sleep", context.peer())
        _headers(context, "Sleep")
        if not _wait(context, req.millis / 1000):
            self.rec.cancel("Sleep")
        return behaviour.text_response("slept")


@dataclass(frozen=True)
class _RichStatus(grpc.Status):  # type: ignore[misc]
    details_bin: bytes

    @property
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.INVALID_ARGUMENT

    @property
    def details(self) -> str:
        return behaviour.FAIL_MESSAGE

    @property
    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return (("grpc-status-details-bin", self.details_bin),)


def _handler(recorder: Recorder) -> grpc.GenericRpcHandler:
    schema = load_schema()
    svc = _Service(recorder)

    def de(name: str) -> Any:
        return schema.cls(name).FromString

    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(svc.echo, de("EchoRequest"), _serialize),
        "ServerStream": grpc.unary_stream_rpc_method_handler(
            svc.server_stream, de("ServerStreamRequest"), _serialize
        ),
        "ClientStream": grpc.stream_unary_rpc_method_handler(
            svc.client_stream, de("EchoRequest"), _serialize
        ),
        "BidiStream": grpc.stream_stream_rpc_method_handler(
            svc.bidi_stream, de("EchoRequest"), _serialize
        ),
        "Fail": grpc.unary_unary_rpc_method_handler(svc.fail, de("FailRequest"), _serialize),
        "EchoMetadata": grpc.unary_unary_rpc_method_handler(
            svc.echo_metadata, de("EchoRequest"), _serialize
        ),
        "Sleep": grpc.unary_unary_rpc_method_handler(svc.sleep, de("SleepRequest"), _serialize),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


@dataclass
class GrpcServer:
    """A running grpcio server; `address` is host:port."""

    server: grpc.Server
    port: int
    recorder: Recorder

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)


def start_grpc_server(recorder: Recorder, tls: ServerTLS | None = None) -> GrpcServer:
    """Start TestService on 127.0.0.1 with an OS-chosen port (TLS/mTLS when given)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((_handler(recorder),))
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        creds = grpc.ssl_server_credentials(
            [(tls.key_pem, tls.cert_chain_pem)],
            root_certificates=tls.client_ca_pem,
            require_client_auth=tls.client_ca_pem is not None,
        )
        port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return GrpcServer(server=server, port=port, recorder=recorder)
