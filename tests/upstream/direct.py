"""Direct calls to the upstreams (grpcio, connectrpc client) to compare the catalog against."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from connectrpc.client import ConnectClientSync, ResponseMetadata
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.protocol import ProtocolType
from google.protobuf import json_format
from google.protobuf.message import Message

from connectrpc_catalog.gen.catalog.v1 import catalog_pb

from .schema import SERVICE, load_schema

_CONNECT_CODES = {c: i for i, c in enumerate(
    [None, Code.CANCELED, Code.UNKNOWN, Code.INVALID_ARGUMENT, Code.DEADLINE_EXCEEDED,
     Code.NOT_FOUND, Code.ALREADY_EXISTS, Code.PERMISSION_DENIED, Code.RESOURCE_EXHAUSTED,
     Code.FAILED_PRECONDITION, Code.ABORTED, Code.OUT_OF_RANGE, Code.UNIMPLEMENTED,
     Code.INTERNAL, Code.UNAVAILABLE, Code.DATA_LOSS, Code.UNAUTHENTICATED]) if c}


def _keep(key: str) -> bool:
    return key.startswith("x-")


def _norm_value(key: str, value: str | bytes) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if key.endswith("-bin"):
        return base64.b64encode(base64.b64decode(value + "=" * (-len(value) % 4))).decode()
    return value


def _pairs(items: Any) -> list[tuple[str, str]]:
    return [(k, _norm_value(k, v)) for k, v in items or () if _keep(k)]


@dataclass
class Outcome:
    """What a call produced, normalized for comparison."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    code: int = 0
    message: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    detail_types: list[str] = field(default_factory=list)


def _json(msg: Message) -> dict[str, Any]:
    return json.loads(json_format.MessageToJson(msg, descriptor_pool=load_schema().pool))


def _detail_types_from_bin(trailers: Any) -> list[str]:
    from google.rpc import status_pb2

    for key, value in trailers or ():
        if key == "grpc-status-details-bin":
            raw = value if isinstance(value, bytes) else base64.b64decode(
                value + "=" * (-len(value) % 4))
            return [d.type_url for d in status_pb2.Status.FromString(raw).details]
    return []


def grpc_call(
    address: str,
    method: str,
    requests: Sequence[Message],
    metadata: Sequence[tuple[str, str | bytes]] = (),
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> Outcome:
    """Call a method with grpcio (blocking)."""
    schema = load_schema()
    desc = schema.method(method)
    out_cls = schema.cls(desc.output_type.full_name)
    path = f"/{SERVICE}/{method}"
    channel = (
        grpc.secure_channel(address, credentials, options)
        if credentials
        else grpc.insecure_channel(address, options)
    )
    ser, de = (lambda m: m.SerializeToString()), out_cls.FromString
    out = Outcome()
    md = tuple(metadata) or None
    try:
        if desc.client_streaming and desc.server_streaming:
            call = channel.stream_stream(path, ser, de)(iter(requests), metadata=md, timeout=10)
            out.messages = [_json(m) for m in call]
        elif desc.client_streaming:
            resp, call = channel.stream_unary(path, ser, de).with_call(
                iter(requests), metadata=md, timeout=10)
            out.messages = [_json(resp)]
        elif desc.server_streaming:
            call = channel.unary_stream(path, ser, de)(requests[0], metadata=md, timeout=10)
            out.messages = [_json(m) for m in call]
        else:
            resp, call = channel.unary_unary(path, ser, de).with_call(
                requests[0], metadata=md, timeout=10)
            out.messages = [_json(resp)]
        out.headers = _pairs(call.initial_metadata())
        out.trailers = _pairs(call.trailing_metadata())
    except grpc.RpcError as exc:
        out.code = exc.code().value[0]
        out.message = exc.details() or ""
        out.headers = _pairs(exc.initial_metadata())
        out.trailers = _pairs(exc.trailing_metadata())
        out.detail_types = _detail_types_from_bin(exc.trailing_metadata())
    finally:
        channel.close()
    return out


def connect_call(
    url: str,
    protocol: ProtocolType,
    method: str,
    requests: Sequence[Message],
    metadata: dict[str, str] | None = None,
) -> Outcome:
    """Call a method with the connectrpc client (Connect or gRPC-Web, blocking)."""
    schema = load_schema()
    desc = schema.method(method)
    kinds = {
        (False, False): StreamType.UNARY,
        (False, True): StreamType.SERVER_STREAM,
        (True, False): StreamType.CLIENT_STREAM,
        (True, True): StreamType.BIDI_STREAM,
    }
    info = MethodInfo(
        name=method,
        service_name=SERVICE,
        input=schema.cls(desc.input_type.full_name),
        output=schema.cls(desc.output_type.full_name),
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=kinds[(desc.client_streaming, desc.server_streaming)],
    )
    out = Outcome()
    with ConnectClientSync(
        url, protocol=protocol, codec=google_protobuf_binary_codec(), send_compression=None
    ) as client, ResponseMetadata() as md:
        try:
            if desc.server_streaming:
                results = list(client.execute_server_stream(
                    request=requests[0], method=info, headers=metadata, timeout_ms=10_000))
            else:
                results = [client.execute_unary(
                    request=requests[0], method=info, headers=metadata, timeout_ms=10_000)]
            out.messages = [_json(m) for m in results]
        except ConnectError as exc:
            out.code = _CONNECT_CODES[exc.code]
            out.message = exc.message
            out.detail_types = [f"type.googleapis.com/{d.type_name}" for d in exc.details]
        out.headers = _pairs(md.headers.items())
        out.trailers = _pairs(md.trailers.items())
    return out


def from_unary(resp: catalog_pb.InvokeGRPCResponse) -> Outcome:
    """The catalog's unary response, normalized."""
    return Outcome(
        messages=[json.loads(resp.response_json)] if resp.response_json else [],
        code=resp.status_code,
        message=resp.status_message,
        headers=[(h.key, h.value) for h in resp.response_headers if _keep(h.key)],
        trailers=[(h.key, h.value) for h in resp.response_trailers if _keep(h.key)],
        detail_types=[d["@type"] for d in json.loads(resp.error_details_json or "[]")],
    )


def from_events(events: Sequence[catalog_pb.InvokeStreamEvent]) -> Outcome:
    """The catalog's stream events, normalized (checks their order too)."""
    out = Outcome()
    kinds = [e.event.field for e in events if e.event is not None]
    assert kinds[-1] == "status" and kinds.count("status") == 1, kinds
    assert kinds.count("headers") <= 1 and (
        "headers" not in kinds or kinds.index("headers") == 0
    ), kinds
    for e in events:
        assert e.event is not None
        value: Any = e.event.value
        if e.event.field == "headers":
            out.headers = [(h.key, h.value) for h in value.headers if _keep(h.key)]
        elif e.event.field == "message":
            assert value.index == len(out.messages)
            out.messages.append(json.loads(value.json))
        else:
            out.code = value.status_code
            out.message = value.status_message
            out.trailers = [(h.key, h.value) for h in value.trailers if _keep(h.key)]
            out.detail_types = [d["@type"] for d in json.loads(value.error_details_json or "[]")]
            assert value.message_count == len(out.messages)
    return out
