"""Every Protobuf feature through the schema and the call path: proto2 required, extensions,
defaults, groups, edition 2023 (presence, DELIMITED, closed enums), custom options
(google.api.http), and buf.validate rules, over gRPC, gRPC-Web and Connect (proto, JSON)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message
from hypercorn.asyncio import serve
from hypercorn.config import Config

from connectrpc_catalog.descriptors import Schema, SchemaCache
from connectrpc_catalog.sources.compiler import Compiler
from connectrpc_catalog.sources.core import Context
from connectrpc_catalog.sources.files import load_path

from .catalog_server import run_catalog
from .sourcehelp import call, load_ok

P2 = """syntax = "proto2";
package feat.p2;
import "google/api/annotations.proto";
import "buf/validate/validate.proto";
import "google/protobuf/any.proto";

option java_package = "com.example.feat.p2";

// A proto2 request.
message Req {
  required string name = 1;
  optional int32 count = 2 [default = 7];
  optional bytes blob = 3 [default = "a\\001"];
  optional group Item = 4 { optional string label = 1; }
  optional Color color = 5 [default = GREEN];
  optional string email = 6 [(buf.validate.field).string.email = true,
                             (buf.validate.field).string.max_len = 40];
  optional int32 age = 7 [(buf.validate.field).int32 = {gte: 0, lt: 150}];
  repeated string tags = 8 [(buf.validate.field).repeated = {
    min_items: 1, max_items: 3, items: {string: {min_len: 2}}}];
  optional string code = 9 [(buf.validate.field).cel = {
    id: "code.upper", message: "code must be upper case", expression: "this == this.upperAscii()"}];
  optional google.protobuf.Any extra = 10;
  extensions 100 to 200;
}
enum Color { RED = 0; GREEN = 1; }
extend Req { optional string note = 100; }
service P2 {
  // Echoes the request.
  rpc Echo(Req) returns (Req) {
    option (google.api.http) = { get: "/v1/echo/{name}" };
    option deprecated = true;
  }
}
"""

EDITION = """edition = "2023";
package feat.ed;
message Inner { int32 v = 1; }
enum Closed { option features.enum_type = CLOSED; ZERO = 0; ONE = 1; }
message Req {
  int32 explicit_field = 1;
  int32 implicit_field = 2 [features.field_presence = IMPLICIT];
  Inner delimited = 3 [features.message_encoding = DELIMITED];
  Closed closed = 4;
}
service Ed { rpc Echo(Req) returns (Req); }
"""

TRANSPORTS = [
    ("TRANSPORT_GRPC", ""),
    ("TRANSPORT_GRPC_WEB", ""),
    ("TRANSPORT_CONNECT", "proto"),
    ("TRANSPORT_CONNECT", "json"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features")
    (root / "feat" / "p2").mkdir(parents=True)
    (root / "feat" / "ed").mkdir(parents=True)
    (root / "feat" / "p2" / "p2.proto").write_text(P2)
    (root / "feat" / "ed" / "ed.proto").write_text(EDITION)
    return root


OTHER = """syntax = "proto3";
package other.v1;
// Defined in another source, reached through Any.
message Payload { string v = 1; }
"""


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("other")
    (root / "other" / "v1").mkdir(parents=True)
    (root / "other" / "v1" / "payload.proto").write_text(OTHER)
    return root


@pytest.fixture(scope="module")
def schema(folder: Path, other: Path) -> Schema:
    """What the echo server knows: both sources (its JSON codec resolves Any with it)."""

    async def build() -> Schema:
        ctx = Context(SchemaCache(), Compiler())
        try:
            parts = [await load_path(ctx, str(folder)), await load_path(ctx, str(other))]
            return ctx.cache.merge(parts)
        finally:
            await ctx.compiler.close()
            await ctx.close()

    return asyncio.run(build())


class _JSON(Codec[Message, Any]):
    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json_format.MessageToJson(message, descriptor_pool=self.schema.pool).encode()

    def decode(self, data: bytes | bytearray, message_class: Any) -> Any:
        msg = message_class()
        json_format.Parse(bytes(data), msg, descriptor_pool=self.schema.pool)
        return msg


class _Echo:
    async def echo(self, req: Message, ctx: RequestContext[Any, Any]) -> Message:
        return req


class _EchoApp(ConnectASGIApplication[_Echo]):
    """One service's Echo over Connect, gRPC and gRPC-Web."""

    def __init__(self, schema: Schema, service: str) -> None:
        self.service_name = service
        method = schema.pool.FindServiceByName(service).methods_by_name["Echo"]
        cls = message_factory.GetMessageClass(method.input_type)
        info: MethodInfo[Any, Any] = MethodInfo(
            name="Echo",
            service_name=service,
            input=cls,
            output=cls,
            idempotency_level=IdempotencyLevel.UNKNOWN,
            stream_type=StreamType.UNARY,
        )

        def endpoints(svc: _Echo) -> Mapping[str, Endpoint[Any, Any]]:
            return {f"/{service}/Echo": Endpoint.unary(info, svc.echo)}

        super().__init__(
            service=_Echo(),
            endpoints=endpoints,
            codecs=[google_protobuf_binary_codec(), _JSON(schema)],
        )

    @property
    def path(self) -> str:
        return f"/{self.service_name}"


def _app(schema: Schema) -> Any:
    apps = {f"/{s}/": _EchoApp(schema, s) for s in ("feat.p2.P2", "feat.ed.Ed")}

    async def route(scope: Any, receive: Any, send: Any) -> None:
        for prefix, app in apps.items():
            if scope["type"] != "http" or scope["path"].startswith(prefix):
                await app(scope, receive, send)
                return
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return route


@pytest.fixture(scope="module")
def upstream(schema: Schema) -> Iterator[str]:
    """The echo server (Connect, gRPC, gRPC-Web on hypercorn); yields 127.0.0.1:PORT."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.loglevel = "WARNING"
    config.graceful_timeout = 0.5
    app = _app(schema)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def main() -> None:
        ready.set()
        await serve(app, config, shutdown_trigger=stop.wait)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@pytest.fixture(scope="module")
def catalog(folder: Path, other: Path) -> Iterator[tuple[str, str]]:
    """A catalog with the feature protos and, from another source, the type an Any holds
    loaded into one session: (url, session id)."""
    with run_catalog() as cat, httpx.Client(timeout=30) as http:
        data, sid = load_ok(http, cat.url, {"protoPath": str(folder)})
        assert sorted(data["loadedServices"]) == ["feat.ed.Ed", "feat.p2.P2"]
        load_ok(http, cat.url, {"protoPath": str(other)}, sid)
        yield cat.url, sid


def _schemas(http: httpx.Client, url: str, sid: str, service: str) -> dict[str, Any]:
    r = call(http, url, "GetServiceSchema", {"serviceName": service}, sid)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_proto2_schema_has_required_defaults_groups_extensions_and_rules(
    catalog: tuple[str, str], http: httpx.Client
) -> None:
    url, sid = catalog
    body = _schemas(http, url, sid, "feat.p2.P2")
    [method] = body["service"]["methods"]
    options = {o["name"]: json.loads(o["valueJson"]) for o in method["options"]}
    assert options["(google.api.http)"] == {"get": "/v1/echo/{name}"}
    assert options["deprecated"] is True and method["deprecated"] is True
    assert body["service"]["hasSourceInfo"] is True
    file_options = {o["name"]: json.loads(o["valueJson"]) for o in body["service"]["fileOptions"]}
    assert file_options == {"java_package": "com.example.feat.p2"}  # the file's own options
    assert body["service"]["file"].endswith(".proto")
    req = json.loads(body["messageSchemas"]["feat.p2.Req"])
    props = req["properties"]
    assert req["required"] == ["name"]
    assert props["count"]["default"] == 7
    assert props["blob"]["default"] == "YQE="
    assert props["color"]["default"] == "GREEN" and props["color"]["x-proto-closed-enum"]
    assert props["item"]["x-proto-encoding"] == "delimited"
    assert props["[feat.p2.note]"]["x-proto-extension"] == "feat.p2.note"
    assert props["name"]["x-proto-presence"] == "explicit"
    # buf.validate: standard keywords where they map, x-buf-validate always
    assert props["email"]["format"] == "email" and props["email"]["maxLength"] == 40
    assert props["age"]["minimum"] == 0 and props["age"]["exclusiveMaximum"] == 150
    assert props["tags"]["minItems"] == 1 and props["tags"]["maxItems"] == 3
    assert props["tags"]["items"]["minLength"] == 2
    assert props["code"]["x-buf-validate"]["cel"][0]["message"] == "code must be upper case"


def test_edition_2023_schema_has_presence_delimited_and_closed_enums(
    catalog: tuple[str, str], http: httpx.Client
) -> None:
    url, sid = catalog
    body = _schemas(http, url, sid, "feat.ed.Ed")
    props = json.loads(body["messageSchemas"]["feat.ed.Req"])["properties"]
    assert props["explicitField"]["x-proto-presence"] == "explicit"
    assert props["implicitField"]["x-proto-presence"] == "implicit"
    assert props["delimited"]["x-proto-encoding"] == "delimited"
    assert props["closed"]["x-proto-closed-enum"] is True
    closed = json.loads(body["messageSchemas"]["feat.ed.Closed"])
    assert closed["anyOf"][1] == {"type": "integer", "enum": [0, 1]}


@pytest.mark.parametrize(("transport", "codec"), TRANSPORTS)
def test_proto2_and_editions_round_trip_on_every_transport(
    catalog: tuple[str, str], upstream: str, http: httpx.Client, transport: str, codec: str
) -> None:
    url, sid = catalog
    endpoint = upstream if transport == "TRANSPORT_GRPC" else f"http://{upstream}"
    base = {"endpoint": endpoint, "transport": transport, "method": "Echo"}
    if codec:
        base["connectCodec"] = codec
    sent = {
        "name": "n",
        "item": {"label": "g"},
        "color": "RED",
        "[feat.p2.note]": "extended",
        "tags": ["ab"],
        "extra": {"@type": "type.googleapis.com/other.v1.Payload", "v": "through Any"},
    }
    r = call(
        http,
        url,
        "InvokeGRPC",
        {**base, "service": "feat.p2.P2", "requestJson": json.dumps(sent)},
        sid,
    )
    body = r.json()
    assert body.get("success") is True, body
    assert json.loads(body["responseJson"]) == sent
    edition = {"explicitField": 0, "implicitField": 3, "delimited": {"v": 2}, "closed": "ONE"}
    r = call(
        http,
        url,
        "InvokeGRPC",
        {**base, "service": "feat.ed.Ed", "requestJson": json.dumps(edition)},
        sid,
    )
    body = r.json()
    assert body.get("success") is True, body
    assert json.loads(body["responseJson"]) == edition
    # a missing proto2 required field: a clear invalid_argument naming it, on every transport
    r = call(
        http,
        url,
        "InvokeGRPC",
        {**base, "service": "feat.p2.P2", "requestJson": '{"count": 1}'},
        sid,
    )
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["code"] == "invalid_argument"
    assert "requestJson is missing required fields: name" in error["message"]
    assert "sendPartial" in error["message"]
    # ... unless the user asks to send it as it is (to see how the server answers)
    r = call(
        http,
        url,
        "InvokeGRPC",
        {**base, "service": "feat.p2.P2", "requestJson": '{"count": 1}', "sendPartial": True},
        sid,
    )
    assert r.status_code == 200, r.text
    body = r.json()  # the message reached the server: its own answer comes back
    if body.get("success"):
        assert json.loads(body["responseJson"]) == {"count": 1}
    else:
        assert "missing required fields" in body["statusMessage"], body


def test_validate_message_checks_every_rule_with_protovalidate(
    catalog: tuple[str, str], http: httpx.Client
) -> None:
    url, sid = catalog
    bad = {"name": "n", "email": "nope", "age": 200, "tags": ["a"], "code": "low"}
    r = call(
        http,
        url,
        "ValidateMessage",
        {"typeName": "feat.p2.Req", "messageJson": json.dumps(bad)},
        sid,
    )
    assert r.status_code == 200, r.text
    found = {(v["fieldPath"], v["ruleId"]): v["message"] for v in r.json()["violations"]}
    assert ("email", "string.email") in found
    assert ("age", "int32.gte_lt") in found
    assert ("tags[0]", "string.min_len") in found
    assert found[("code", "code.upper")] == "code must be upper case"  # a CEL rule
    good = {"name": "n", "email": "a@b.example", "age": 30, "tags": ["ab"], "code": "UP"}
    r = call(
        http,
        url,
        "ValidateMessage",
        {"typeName": "feat.p2.Req", "messageJson": json.dumps(good)},
        sid,
    )
    assert r.json().get("violations", []) == []
    r = call(http, url, "ValidateMessage", {"typeName": "no.Such", "messageJson": "{}"}, sid)
    assert r.status_code == 404 and "no.Such" in r.json()["message"]
    r = call(
        http, url, "ValidateMessage", {"typeName": "feat.p2.Req", "messageJson": '{"nam": 1}'}, sid
    )
    assert r.status_code == 400 and "feat.p2.Req" in r.json()["message"]
