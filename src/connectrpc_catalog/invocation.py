"""InvokeGRPC and InvokeStream: JSON in, upstream call through the session's Invoker, JSON out.

Catalog-request failures (unknown method, bad `request_json`, wrong kind for the RPC,
no endpoint, a transport that cannot carry the method) raise `ConnectError`.
Upstream failures (unreachable, TLS, deadline, non-OK status) are data:
`success=false` with the status code, name, message, a readable `error` and the
decoded error details.

JSON output is proto3 canonical JSON (lowerCamelCase names, default values omitted,
`Any` resolved through the session's pool), compact (no indentation): it travels
inside a JSON string field, so a UI pretty-prints it for display.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from typing import Protocol as TypingProtocol

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError, Message
from protobuf import Oneof

from ._call_types import decode_bin
from .errdetails import details_json
from .gen.catalog.v1 import catalog_pb
from .invoker import (
    CallStatus,
    CallTarget,
    Invoker,
    MethodRef,
    Pair,
    Protocol,
    ResponseHeaders,
    ResponseMessage,
    TLSConfig,
)

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "MethodRegistry", "invoke_stream", "invoke_unary"]

DEFAULT_TIMEOUT_SECONDS = 30
"""The deadline of a call whose `timeout_seconds` is 0."""

_INTERNAL = 13
_HEADER_KEY = re.compile(r"^[0-9a-z_.-]+$")
_RESERVED_HEADERS = frozenset(
    (
        "content-type", "content-length", "content-encoding", "te", "host", "connection",
        "transfer-encoding", "upgrade", "keep-alive", "proxy-connection", "accept-encoding",
        "x-grpc-web",
    )
)
_PROTOCOLS = {
    catalog_pb.Transport.CONNECT: Protocol.CONNECT,
    catalog_pb.Transport.GRPC: Protocol.GRPC,
    catalog_pb.Transport.GRPC_WEB: Protocol.GRPC_WEB,
}


class MethodRegistry(TypingProtocol):
    """What invocation needs from a session's registry."""

    @property
    def pool(self) -> DescriptorPool: ...

    def find_method(self, service: str, method: str) -> MethodDescriptor: ...

    def message_class(self, desc: Descriptor) -> type[Message]: ...

    def default_target(self, service: str) -> catalog_pb.Target | None: ...


_Request = catalog_pb.InvokeGRPCRequest | catalog_pb.InvokeStreamRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    """A validated call: target, method, request headers and deadline."""

    target: CallTarget
    method: MethodRef
    metadata: list[tuple[str, str | bytes]]
    timeout: float


def _invalid(message: str) -> ConnectError:
    return ConnectError(Code.INVALID_ARGUMENT, message)


def _kind(method: MethodDescriptor) -> str:
    if method.client_streaming and method.server_streaming:
        return "bidi-streaming"
    if method.client_streaming:
        return "client-streaming"
    if method.server_streaming:
        return "server-streaming"
    return "unary"


def _prepare(registry: MethodRegistry, req: _Request, method: MethodDescriptor) -> _Call:
    endpoint = req.endpoint.strip()
    transport = req.transport
    use_tls = req.use_tls
    server_name = req.server_name
    if not endpoint:
        default = registry.default_target(method.containing_service.full_name)
        if default is None or not default.endpoint:
            raise _invalid(
                f"endpoint is empty and service {method.containing_service.full_name} has no "
                "default target: set endpoint to host:port or a URL"
            )
        endpoint = default.endpoint
        transport = default.transport
        use_tls = use_tls or default.use_tls
        server_name = server_name or default.server_name
    protocol = _PROTOCOLS.get(transport)
    if protocol is None:
        raise _invalid(f"unknown transport {transport!r}")
    codec = req.connect_codec.strip().lower() or "proto"
    if codec not in ("proto", "json"):
        raise _invalid(f"connect_codec must be 'proto' or 'json', not {req.connect_codec!r}")
    if protocol is not Protocol.CONNECT:
        codec = "proto"  # the codec choice applies to the Connect transport only
    tls = None
    if use_tls or endpoint.lower().startswith("https://") or req.ca_cert_pem or (
        req.client_cert_pem or req.client_key_pem or req.insecure_skip_verify
    ):
        tls = TLSConfig(
            server_name=server_name.strip(),
            ca_pem=req.ca_cert_pem,
            client_cert_pem=req.client_cert_pem,
            client_key_pem=req.client_key_pem,
            insecure_skip_verify=req.insecure_skip_verify,
        )
    if endpoint.lower().startswith("http://") and tls is not None and not use_tls:
        raise _invalid("TLS settings were given for an http:// endpoint: use https://")
    try:
        target = CallTarget.parse(
            endpoint, protocol=protocol, use_tls=tls is not None, tls=tls, codec=codec
        )
    except ValueError as exc:
        raise _invalid(f"endpoint: {exc}") from None
    if req.timeout_seconds < 0:
        raise _invalid("timeout_seconds must not be negative")
    return _Call(
        target=target,
        method=MethodRef(
            path=f"/{method.containing_service.full_name}/{method.name}",
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
        ),
        metadata=_metadata(req.metadata),
        timeout=float(req.timeout_seconds or DEFAULT_TIMEOUT_SECONDS),
    )


def _metadata(metadata: Mapping[str, str]) -> list[tuple[str, str | bytes]]:
    out: list[tuple[str, str | bytes]] = []
    for raw_key, value in metadata.items():
        key = raw_key.strip().lower()
        if not _HEADER_KEY.match(key):
            raise _invalid(f"metadata key {raw_key!r} is not a valid header name")
        if key in _RESERVED_HEADERS or key.startswith(("grpc-", "connect-", ":")):
            raise _invalid(f"metadata key {raw_key!r} is reserved for the protocol")
        if key.endswith("-bin"):
            data = decode_bin(value)
            if data is None:
                raise _invalid(f"metadata {raw_key!r}: a -bin value must be base64")
            out.append((key, data))
        else:
            if any(not (" " <= c <= "~" or c == "\t") for c in value):
                raise _invalid(
                    f"metadata {raw_key!r}: the value must be printable ASCII "
                    "(use a key ending in -bin for binary values, base64-encoded)"
                )
            out.append((key, value.strip()))
    return out


def _parse(registry: MethodRegistry, desc: Descriptor, text: str, where: str) -> Message:
    msg = registry.message_class(desc)()
    if text.strip():
        try:
            json_format.Parse(text, msg, descriptor_pool=registry.pool)
        except json_format.ParseError as exc:
            # ParseError text names the field path (e.g. "...at EchoRequest.number").
            raise _invalid(f"{where} is not a valid {desc.full_name}: {exc}") from None
    return msg


def _encode(registry: MethodRegistry, msg: Message, codec: str) -> bytes:
    if codec == "json":
        text: str = json_format.MessageToJson(msg, descriptor_pool=registry.pool, indent=None)
        return text.encode()
    data: bytes = msg.SerializeToString()
    return data


def _decode(registry: MethodRegistry, desc: Descriptor, payload: bytes, codec: str) -> str:
    """The message as compact proto3 JSON; raises ValueError when it does not decode."""
    msg = registry.message_class(desc)()
    try:
        if codec == "json":
            json_format.Parse(payload, msg, ignore_unknown_fields=True,
                              descriptor_pool=registry.pool)
        else:
            msg.ParseFromString(payload)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        raise ValueError(f"upstream sent an invalid {desc.full_name} message") from exc
    try:
        text: str = json_format.MessageToJson(msg, descriptor_pool=registry.pool, indent=None)
    except (TypeError, KeyError, json_format.Error) as exc:
        raise ValueError(
            f"upstream sent a {desc.full_name} the catalog cannot show as JSON "
            "(an Any field holds a type not loaded in this session?)"
        ) from exc
    return text


def _headers(pairs: Sequence[Pair]) -> list[catalog_pb.Header]:
    return [catalog_pb.Header(key=k, value=v) for k, v in pairs]


def _merged(headers: Sequence[Pair], trailers: Sequence[Pair]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for key, value in (*headers, *trailers):
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


# -- InvokeGRPC -----------------------------------------------------------------


async def invoke_unary(
    registry: MethodRegistry, invoker: Invoker, req: catalog_pb.InvokeGRPCRequest
) -> catalog_pb.InvokeGRPCResponse:
    """Call a unary method; upstream failures are in the response, not raised."""
    method = registry.find_method(req.service, req.method)
    if method.client_streaming or method.server_streaming:
        raise _invalid(
            f"{method.full_name} is a {_kind(method)} method: call it with InvokeStream"
        )
    call = _prepare(registry, req, method)
    msg = _parse(registry, method.input_type, req.request_json, "request_json")
    payload = _encode(registry, msg, call.target.codec)
    start = time.perf_counter()
    result = await invoker.unary(
        call.target, call.method, payload, metadata=call.metadata, timeout_s=call.timeout
    )
    duration = _ms(start)
    status = result.status
    response_json = ""
    if result.payload is not None:
        try:
            response_json = _decode(registry, method.output_type, result.payload,
                                    call.target.codec)
        except ValueError as exc:
            status = CallStatus(code=_INTERNAL, message=str(exc), details=status.details,
                                trailers=status.trailers, error=str(exc))
    return catalog_pb.InvokeGRPCResponse(
        success=status.ok,
        response_json=response_json,
        error=status.error,
        metadata=_merged(result.headers, status.trailers),
        status_code=status.code,
        status_message=status.message,
        response_headers=_headers(result.headers),
        response_trailers=_headers(status.trailers),
        error_details_json=details_json(status.details, registry.pool),
        duration_ms=duration,
        status_name=status.name,
    )


# -- InvokeStream ---------------------------------------------------------------


def _event_headers(pairs: Sequence[Pair], start: float) -> catalog_pb.InvokeStreamEvent:
    return catalog_pb.InvokeStreamEvent(
        event=Oneof[Literal["headers"], catalog_pb.StreamHeaders](
            field="headers",
            value=catalog_pb.StreamHeaders(headers=_headers(pairs), elapsed_ms=_ms(start)),
        )
    )


def _event_message(text: str, index: int, start: float) -> catalog_pb.InvokeStreamEvent:
    return catalog_pb.InvokeStreamEvent(
        event=Oneof[Literal["message"], catalog_pb.StreamMessage](
            field="message",
            value=catalog_pb.StreamMessage(json=text, elapsed_ms=_ms(start), index=index),
        )
    )


def _event_status(
    registry: MethodRegistry, status: CallStatus, count: int, start: float
) -> catalog_pb.InvokeStreamEvent:
    return catalog_pb.InvokeStreamEvent(
        event=Oneof[Literal["status"], catalog_pb.StreamStatus](
            field="status",
            value=catalog_pb.StreamStatus(
                success=status.ok,
                status_code=status.code,
                status_name=status.name,
                status_message=status.message,
                error=status.error,
                trailers=_headers(status.trailers),
                error_details_json=details_json(status.details, registry.pool),
                duration_ms=_ms(start),
                message_count=count,
            ),
        )
    )


def _check_transport(call: _Call, method: MethodDescriptor) -> None:
    if method.client_streaming and call.target.protocol is Protocol.GRPC_WEB:
        raise ConnectError(
            Code.FAILED_PRECONDITION,
            f"{method.full_name} is a {_kind(method)} method and gRPC-Web cannot carry "
            "client or bidi streams: use the gRPC transport, or Connect (over HTTP/2)",
        )


async def invoke_stream(
    registry: MethodRegistry, invoker: Invoker, req: catalog_pb.InvokeStreamRequest
) -> AsyncGenerator[catalog_pb.InvokeStreamEvent, None]:
    """Call a method of any kind and yield headers, each message, then the final status.

    Closing the generator cancels the upstream call.
    """
    method = registry.find_method(req.service, req.method)
    call = _prepare(registry, req, method)
    _check_transport(call, method)
    texts = list(req.request_messages_json)
    if not method.client_streaming:
        if len(texts) > 1:
            raise _invalid(
                f"{method.full_name} is a {_kind(method)} method: it takes one request "
                f"message, not {len(texts)}"
            )
        texts = texts or [""]
    codec = call.target.codec
    payloads = [
        _encode(registry, _parse(registry, method.input_type, text,
                                 f"request_messages_json[{i}]"), codec)
        for i, text in enumerate(texts)
    ]
    start = time.perf_counter()
    if not (method.client_streaming or method.server_streaming):
        result = await invoker.unary(
            call.target, call.method, payloads[0], metadata=call.metadata,
            timeout_s=call.timeout,
        )
        status = result.status
        count = 0
        if result.headers or result.payload is not None:
            yield _event_headers(result.headers, start)
        if result.payload is not None:
            try:
                text = _decode(registry, method.output_type, result.payload, codec)
            except ValueError as exc:
                status = CallStatus(code=_INTERNAL, message=str(exc), trailers=status.trailers,
                                    error=str(exc))
            else:
                yield _event_message(text, 0, start)
                count = 1
        yield _event_status(registry, status, count, start)
        return
    events = invoker.stream(
        call.target, call.method, payloads, metadata=call.metadata, timeout_s=call.timeout
    )
    count = 0
    try:
        async for event in events:
            if isinstance(event, ResponseHeaders):
                yield _event_headers(event.headers, start)
            elif isinstance(event, ResponseMessage):
                try:
                    text = _decode(registry, method.output_type, event.payload, codec)
                except ValueError as exc:
                    bad = CallStatus(code=_INTERNAL, message=str(exc), error=str(exc))
                    yield _event_status(registry, bad, count, start)
                    return
                yield _event_message(text, count, start)
                count += 1
            else:
                yield _event_status(registry, event, count, start)
    finally:
        await events.aclose()
