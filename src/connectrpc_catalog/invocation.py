"""InvokeGRPC and InvokeStream: JSON in, upstream call through the session's Invoker, JSON out.

Catalog-request failures (unknown method, bad `request_json`, wrong kind for the RPC,
no endpoint, a transport that cannot carry the method) raise `RequestError`.
Upstream failures (unreachable, TLS, deadline, non-OK status) are data:
`success=false` with the status code, name, message, a readable `error` and the
decoded error details.

JSON output is proto3 canonical JSON (lowerCamelCase names, default values omitted,
`Any` resolved through the session's pool), compact (no indentation): it travels
inside a JSON string field, so a UI pretty-prints it for display.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from typing import Protocol as TypingProtocol

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError, EncodeError, Message
from protobuf import Oneof

from .gen.catalog.v1 import catalog_pb
from .jsondepth import DEFAULT_MAX_DEPTH, JSONDepthError, check_depth
from .problems import Code, RequestError
from .transports import (
    CallStatus,
    CallTarget,
    Invoker,
    MethodRef,
    Pair,
    Payloads,
    ResponseHeaders,
    ResponseMessage,
    TLSConfig,
    WireProtocol,
    refusal,
)
from .transports.errdetails import details_json
from .transports.headers import decode_bin

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "CallLimits",
    "MethodRegistry",
    "PreparedStream",
    "encode_messages",
    "invoke_stream",
    "invoke_unary",
    "prepare_stream",
    "relay",
]

DEFAULT_TIMEOUT_SECONDS = 30
"""The deadline of a call whose `timeout_seconds` is 0."""

_OFF_LOOP_BYTES = 64 * 1024
"""Request texts or response payloads larger than this are converted in a worker thread."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallLimits:
    """Bounds on one InvokeGRPC / InvokeStream call, checked before any work."""

    max_timeout: float = 300.0
    """Longest deadline a call may ask for, in seconds (`--max-timeout`)."""
    max_messages: int = 10_000
    """Most request messages one stream may send (`--max-stream-messages`)."""
    max_call_bytes: int = 64 * 1024 * 1024
    """Most request JSON, in bytes, one call may carry in all its messages."""
    max_json_depth: int = DEFAULT_MAX_DEPTH
    """Deepest nesting of a request message's JSON (`--max-json-depth`)."""
    max_streams: int = 16
    """Most InvokeStream calls one session may have open at once."""


_HEADER_KEY = re.compile(r"^[0-9a-z_.-]+$")
_RESERVED_HEADERS = frozenset(
    (
        "content-type",
        "content-length",
        "content-encoding",
        "te",
        "host",
        "connection",
        "transfer-encoding",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "accept-encoding",
        "x-grpc-web",
    )
)
_PROTOCOLS = {
    catalog_pb.Transport.CONNECT: WireProtocol.CONNECT,
    catalog_pb.Transport.GRPC: WireProtocol.GRPC,
    catalog_pb.Transport.GRPC_WEB: WireProtocol.GRPC_WEB,
}


class MethodRegistry(TypingProtocol):
    """What invocation needs from a session's registry."""

    async def current(self) -> object:
        """Bring the registry's view up to date (off the event loop); lookups then use it."""
        ...

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
    raw: bool = False
    """Response messages as binary protobuf, not JSON (InvokeStreamRequest.raw_payload)."""


def _invalid(message: str) -> RequestError:
    return RequestError(message, code=Code.INVALID_ARGUMENT)


def _kind(method: MethodDescriptor) -> str:
    if method.client_streaming and method.server_streaming:
        return "bidi-streaming"
    if method.client_streaming:
        return "client-streaming"
    if method.server_streaming:
        return "server-streaming"
    return "unary"


def _prepare(
    registry: MethodRegistry, req: _Request, method: MethodDescriptor, limits: CallLimits
) -> _Call:
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
        raise _invalid(f"connectCodec must be 'proto' or 'json', not {req.connect_codec!r}")
    if protocol is not WireProtocol.CONNECT:
        codec = "proto"  # the codec choice applies to the Connect transport only
    pems = (req.ca_cert_pem, req.client_cert_pem, req.client_key_pem)
    args = (endpoint, protocol, use_tls, server_name, req.insecure_skip_verify, codec)
    if any(pems) or len(endpoint) + len(server_name) > _CACHED_TARGET_CHARS:
        target = _target(*args, *pems)
    else:  # the usual call: the same few targets again and again
        target = _cached_target(*args)
    if req.timeout_seconds < 0:
        raise _invalid("timeoutSeconds must not be negative")
    if req.timeout_seconds > limits.max_timeout:
        raise _invalid(
            f"timeoutSeconds {req.timeout_seconds} is longer than the catalog allows "
            f"({limits.max_timeout:g} s, set by --max-timeout)"
        )
    return _Call(
        target=target,
        method=MethodRef(
            path=f"/{method.containing_service.full_name}/{method.name}",
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
        ),
        metadata=_metadata(req.metadata),
        timeout=float(req.timeout_seconds or DEFAULT_TIMEOUT_SECONDS),
        raw=isinstance(req, catalog_pb.InvokeStreamRequest) and req.raw_payload,
    )


def _target(
    endpoint: str,
    protocol: WireProtocol,
    use_tls: bool,
    server_name: str,
    insecure_skip_verify: bool,
    codec: str,
    ca_pem: str = "",
    cert_pem: str = "",
    key_pem: str = "",
) -> CallTarget:
    """Where the call goes; RequestError for an endpoint or TLS settings that do not fit."""
    tls = None
    lower = endpoint.lower()
    if use_tls or lower.startswith("https://") or ca_pem or cert_pem or key_pem or (
        insecure_skip_verify
    ):
        tls = TLSConfig(
            server_name=server_name.strip(),
            ca_pem=ca_pem,
            client_cert_pem=cert_pem,
            client_key_pem=key_pem,
            insecure_skip_verify=insecure_skip_verify,
        )
    if lower.startswith("http://") and tls is not None and not use_tls:
        raise _invalid("TLS settings were given for an http:// endpoint: use https://")
    try:
        return CallTarget.parse(
            endpoint, protocol=protocol, use_tls=tls is not None, tls=tls, codec=codec
        )
    except ValueError as exc:
        raise _invalid(f"endpoint: {exc}") from None


_CACHED_TARGET_CHARS = 512
"""Targets whose endpoint and server name are longer than this are parsed every time (the
cache holds at most 256 entries of short strings, never PEM material)."""
_cached_target = functools.lru_cache(maxsize=256)(_target)


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


def _parse(
    registry: MethodRegistry, desc: Descriptor, text: str, where: str, max_depth: int
) -> Message:
    msg = registry.message_class(desc)()
    if text.strip():
        try:
            check_depth(text, max_depth)
        except JSONDepthError as exc:
            raise _invalid(f"{where} is not acceptable JSON: {exc}") from None
        try:
            json_format.Parse(text, msg, descriptor_pool=registry.pool)
        except json_format.ParseError as exc:
            # ParseError text names the field path (e.g. "...at EchoRequest.number").
            raise _invalid(f"{where} is not a valid {desc.full_name}: {exc}") from None
    return msg


def _compact_json(registry: MethodRegistry, msg: Message) -> str:
    """Proto3 JSON without insignificant whitespace (it travels inside a JSON string)."""
    value = json_format.MessageToDict(msg, descriptor_pool=registry.pool)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _encode(
    registry: MethodRegistry, msg: Message, codec: str, where: str, partial: bool = False
) -> bytes:
    """The message on the wire; missing proto2 `required` fields are refused unless
    `partial` (the request's sendPartial) asks to send it as it is."""
    if not partial and not msg.IsInitialized():  # proto2 `required` (editions LEGACY_REQUIRED)
        missing = ", ".join(msg.FindInitializationErrors()) or "a required field"
        raise _invalid(
            f"{where} is missing required fields: {missing} (proto2 `required`: set them, "
            "or set sendPartial to send the message as it is)"
        )
    if codec == "json":
        text = _compact_json(registry, msg)
        return text.encode()
    try:
        data: bytes = msg.SerializePartialToString() if partial else msg.SerializeToString()
    except EncodeError:
        missing = ", ".join(msg.FindInitializationErrors()) or "a required field"
        raise _invalid(f"{where} is missing required fields: {missing}") from None
    return data


def _encode_all(
    registry: MethodRegistry,
    desc: Descriptor,
    texts: Sequence[str],
    codec: str,
    where: str,
    max_depth: int,
    partial: bool = False,
) -> list[bytes]:
    """Parse and encode every request message (the caller picks the thread)."""
    single = len(texts) == 1 and where == "requestJson"
    out = []
    for i, text in enumerate(texts):
        label = where if single else f"{where}[{i}]"
        msg = _parse(registry, desc, text, label, max_depth)
        out.append(_encode(registry, msg, codec, label, partial))
    return out


async def _request_payloads(
    registry: MethodRegistry,
    desc: Descriptor,
    texts: Sequence[str],
    codec: str,
    where: str,
    limits: CallLimits,
    partial: bool = False,
) -> list[bytes]:
    """The request messages as payloads, bounded first; big inputs leave the event loop."""
    if len(texts) > limits.max_messages:
        raise RequestError(
            f"{where} holds {len(texts)} messages; the catalog sends at most "
            f"{limits.max_messages} per call (--max-stream-messages)",
            code=Code.RESOURCE_EXHAUSTED,
            field=where,
        )
    size = sum(len(t) for t in texts)
    if size > limits.max_call_bytes:
        raise RequestError(
            f"{where} holds {size} bytes of JSON; the catalog sends at most "
            f"{limits.max_call_bytes} bytes per call",
            code=Code.RESOURCE_EXHAUSTED,
            field=where,
        )
    args = (registry, desc, texts, codec, where, limits.max_json_depth, partial)
    if size > _OFF_LOOP_BYTES or len(texts) > 256:
        return await asyncio.to_thread(_encode_all, *args)
    return _encode_all(*args)


def _decode(registry: MethodRegistry, desc: Descriptor, payload: bytes, codec: str) -> str:
    """The message as compact proto3 JSON; raises ValueError when it does not decode."""
    msg = registry.message_class(desc)()
    try:
        if codec == "json":
            check_depth(payload)
            json_format.Parse(
                payload, msg, ignore_unknown_fields=True, descriptor_pool=registry.pool
            )
        else:
            msg.ParseFromString(payload)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, JSONDepthError) as exc:
        raise ValueError(f"upstream sent an invalid {desc.full_name} message") from exc
    try:
        text = _compact_json(registry, msg)
    except (TypeError, KeyError, json_format.Error) as exc:
        raise ValueError(
            f"upstream sent a {desc.full_name} the catalog cannot show as JSON "
            "(an Any field holds a type not loaded in this session?)"
        ) from exc
    return text


async def _response_json(
    registry: MethodRegistry, desc: Descriptor, payload: bytes, codec: str
) -> str:
    """`_decode`, in a worker thread when the payload is big."""
    if len(payload) > _OFF_LOOP_BYTES:
        return await asyncio.to_thread(_decode, registry, desc, payload, codec)
    return _decode(registry, desc, payload, codec)


def _binary(registry: MethodRegistry, desc: Descriptor, payload: bytes) -> bytes:
    """A JSON-codec response message as binary protobuf; raises ValueError as `_decode`."""
    msg = registry.message_class(desc)()
    try:
        check_depth(payload)
        json_format.Parse(payload, msg, ignore_unknown_fields=True, descriptor_pool=registry.pool)
    except (json_format.ParseError, UnicodeDecodeError, JSONDepthError) as exc:
        raise ValueError(f"upstream sent an invalid {desc.full_name} message") from exc
    data: bytes = msg.SerializePartialToString()
    return data


async def _response_binary(
    registry: MethodRegistry, desc: Descriptor, payload: bytes, codec: str
) -> bytes:
    """The payload for a raw event: the upstream's bytes as they are when they are binary
    protobuf already (not decoded: the client decodes them), else converted."""
    if codec != "json":
        return payload
    if len(payload) > _OFF_LOOP_BYTES:
        return await asyncio.to_thread(_binary, registry, desc, payload)
    return _binary(registry, desc, payload)


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


@dataclass(frozen=True, slots=True)
class _UnaryOutcome:
    """What a unary call gave: headers, the response as JSON (if any), and the status."""

    headers: Sequence[Pair]
    response_json: str | None
    status: CallStatus
    start: float


async def _call_unary(
    registry: MethodRegistry,
    invoker: Invoker,
    method: MethodDescriptor,
    call: _Call,
    payload: bytes,
) -> _UnaryOutcome:
    start = time.perf_counter()
    result = await invoker.unary(
        call.target, call.method, payload, metadata=call.metadata, timeout_s=call.timeout
    )
    status = result.status
    response_json = None
    if result.payload is not None:
        try:
            response_json = await _response_json(
                registry, method.output_type, result.payload, call.target.codec
            )
        except ValueError as exc:
            status = CallStatus(
                code=Code.INTERNAL,
                message=str(exc),
                details=status.details,
                trailers=status.trailers,
                error=str(exc),
            )
    return _UnaryOutcome(result.headers, response_json, status, start)


async def invoke_unary(
    registry: MethodRegistry,
    invoker: Invoker,
    req: catalog_pb.InvokeGRPCRequest,
    limits: CallLimits | None = None,
) -> catalog_pb.InvokeGRPCResponse:
    """Call a unary method; upstream failures are in the response, not raised."""
    limits = limits or CallLimits()
    await registry.current()
    method = registry.find_method(req.service, req.method)
    if method.client_streaming or method.server_streaming:
        raise _invalid(f"{method.full_name} is a {_kind(method)} method: call it with InvokeStream")
    call = _prepare(registry, req, method, limits)
    (payload,) = await _request_payloads(
        registry,
        method.input_type,
        [req.request_json],
        call.target.codec,
        "requestJson",
        limits,
        req.send_partial,
    )
    outcome = await _call_unary(registry, invoker, method, call, payload)
    duration = _ms(outcome.start)
    status = outcome.status
    return catalog_pb.InvokeGRPCResponse(
        success=status.ok,
        response_json=outcome.response_json or "",
        error=status.error,
        metadata=_merged(outcome.headers, status.trailers),
        status_code=status.code,
        status_message=status.message,
        response_headers=_headers(outcome.headers),
        response_trailers=_headers(status.trailers),
        error_details_json=details_json(status.details, registry.pool),
        duration_ms=duration,
        status_name=status.name,
    )


# -- InvokeStream ---------------------------------------------------------------


_HeadersEvent = Oneof[Literal["headers"], catalog_pb.StreamHeaders]
_MessageEvent = Oneof[Literal["message"], catalog_pb.StreamMessage]
_StatusEvent = Oneof[Literal["status"], catalog_pb.StreamStatus]


def _event_headers(pairs: Sequence[Pair], start: float) -> catalog_pb.InvokeStreamEvent:
    return catalog_pb.InvokeStreamEvent(
        event=_HeadersEvent(
            field="headers",
            value=catalog_pb.StreamHeaders(headers=_headers(pairs), elapsed_ms=_ms(start)),
        )
    )


def _event_message(text: str, index: int, start: float) -> catalog_pb.InvokeStreamEvent:
    return catalog_pb.InvokeStreamEvent(
        event=_MessageEvent(
            field="message",
            value=catalog_pb.StreamMessage(json=text, elapsed_ms=_ms(start), index=index),
        )
    )


def _event_raw(payload: bytes, index: int, start: float) -> catalog_pb.InvokeStreamEvent:
    return catalog_pb.InvokeStreamEvent(
        event=_MessageEvent(
            field="message",
            value=catalog_pb.StreamMessage(payload=payload, elapsed_ms=_ms(start), index=index),
        )
    )


def _event_status(
    registry: MethodRegistry, status: CallStatus, count: int, start: float
) -> catalog_pb.InvokeStreamEvent:
    return catalog_pb.InvokeStreamEvent(
        event=_StatusEvent(
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
    reason = refusal(call.target.protocol, call.method)
    if reason:
        raise RequestError(
            f"{method.full_name}: {reason}", code=Code.FAILED_PRECONDITION, field="transport"
        )


async def invoke_stream(
    registry: MethodRegistry,
    invoker: Invoker,
    req: catalog_pb.InvokeStreamRequest,
    limits: CallLimits | None = None,
) -> AsyncGenerator[catalog_pb.InvokeStreamEvent, None]:
    """Call a method of any kind and yield headers, each message, then the final status.

    Closing the generator cancels the upstream call.
    """
    limits = limits or CallLimits()
    await registry.current()
    method = registry.find_method(req.service, req.method)
    call = _prepare(registry, req, method, limits)
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
    payloads = await _request_payloads(
        registry, method.input_type, texts, codec, "requestMessagesJson", limits, req.send_partial
    )
    if not (method.client_streaming or method.server_streaming or call.raw):
        outcome = await _call_unary(registry, invoker, method, call, payloads[0])
        if outcome.headers or outcome.response_json is not None:
            yield _event_headers(outcome.headers, outcome.start)
        if outcome.response_json is not None:
            yield _event_message(outcome.response_json, 0, outcome.start)
        count = int(outcome.response_json is not None)
        yield _event_status(registry, outcome.status, count, outcome.start)
        return
    async for event in _relay(registry, invoker, method, call, payloads):
        yield event


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedStream:
    """A validated streaming call (for the live calls of `calls`): method and target."""

    method: MethodDescriptor
    call: _Call
    partial: bool = False
    """Send messages with missing proto2 `required` fields (the request's sendPartial)."""

    @property
    def codec(self) -> str:
        """The codec request messages are encoded with."""
        return self.call.target.codec


async def prepare_stream(
    registry: MethodRegistry, req: catalog_pb.InvokeStreamRequest, limits: CallLimits
) -> PreparedStream:
    """Validate an InvokeStreamRequest (method, target, transport) without calling."""
    await registry.current()
    method = registry.find_method(req.service, req.method)
    call = _prepare(registry, req, method, limits)
    _check_transport(call, method)
    return PreparedStream(method=method, call=call, partial=req.send_partial)


async def encode_messages(
    registry: MethodRegistry,
    prepared: PreparedStream,
    texts: Sequence[str],
    where: str,
    limits: CallLimits,
) -> list[bytes]:
    """Request messages in JSON as payloads of the prepared call, bounded first."""
    return await _request_payloads(
        registry,
        prepared.method.input_type,
        texts,
        prepared.codec,
        where,
        limits,
        prepared.partial,
    )


def relay(
    registry: MethodRegistry, invoker: Invoker, prepared: PreparedStream, payloads: Payloads
) -> AsyncGenerator[catalog_pb.InvokeStreamEvent, None]:
    """The events of a prepared call of any kind that sends `payloads` (a list, or an
    async iterator read while the call runs)."""
    return _relay(registry, invoker, prepared.method, prepared.call, payloads)


async def _relay(
    registry: MethodRegistry,
    invoker: Invoker,
    method: MethodDescriptor,
    call: _Call,
    payloads: Payloads,
) -> AsyncGenerator[catalog_pb.InvokeStreamEvent, None]:
    """A streaming call's events, as they come (a unary method's too: the invoker
    turns its result into events)."""
    start = time.perf_counter()
    codec = call.target.codec
    output = method.output_type
    events = invoker.stream(
        call.target, call.method, payloads, metadata=call.metadata, timeout_s=call.timeout
    )
    count = 0
    try:
        async for event in events:
            if isinstance(event, ResponseMessage):
                payload = event.payload
                try:  # small messages are converted here, without a coroutine per message
                    if call.raw:
                        if codec == "json":
                            payload = await _response_binary(registry, output, payload, codec)
                        message = _event_raw(payload, count, start)
                    elif len(payload) <= _OFF_LOOP_BYTES:
                        message = _event_message(_decode(registry, output, payload, codec), count,
                                                 start)
                    else:
                        text = await _response_json(registry, output, payload, codec)
                        message = _event_message(text, count, start)
                except ValueError as exc:
                    bad = CallStatus(code=Code.INTERNAL, message=str(exc), error=str(exc))
                    yield _event_status(registry, bad, count, start)
                    return
                yield message
                count += 1
            elif isinstance(event, ResponseHeaders):
                yield _event_headers(event.headers, start)
            else:
                yield _event_status(registry, event, count, start)
    finally:
        await events.aclose()
