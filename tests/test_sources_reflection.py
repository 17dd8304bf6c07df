"""Reflection as a schema source: grpcio servers (v1 only, v1alpha only, none, TLS), the
catalog reflecting itself, caching, and every failure through the catalog's HTTP API."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import trustme
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

from connectrpc_catalog.api.self_reflection import (
    REFLECTION_PREFIXES,
    catalog_file,
    reflection_routes,
)
from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.descriptors import SchemaCache
from connectrpc_catalog.sources.compiler import Compiler
from connectrpc_catalog.sources.core import Context, LoadError
from connectrpc_catalog.sources.reflection import load_reflection, parse_endpoint, reflect

from .catalog_server import run_catalog
from .protohelp import compile_protos
from .sourcehelp import (
    call,
    find_buf,
    load_failed,
    load_ok,
    load_rejected,
    requires_buf,
    silent_listener,
)

PROTOS = {
    "acme/common/v1/money.proto": """syntax = "proto3";
package acme.common.v1;
// An amount of money.
message Money { string currency = 1; int64 units = 2; }
""",
    "acme/inventory/v1/item.proto": """syntax = "proto3";
package acme.inventory.v1;
import "acme/common/v1/money.proto";
import "google/protobuf/timestamp.proto";
message Item {
  string sku = 1;
  acme.common.v1.Money price = 2;
  google.protobuf.Timestamp updated = 3;
}
""",
    "acme/inventory/v1/inventory.proto": """syntax = "proto3";
package acme.inventory.v1;
import "acme/inventory/v1/item.proto";
// InventoryService keeps stock.
service InventoryService { rpc GetItem(GetItemRequest) returns (Item); }
message GetItemRequest { string sku = 1; }
""",
    "acme/audit/v1/audit.proto": """syntax = "proto3";
package acme.audit.v1;
import "acme/common/v1/money.proto";
service AuditService { rpc Record(acme.common.v1.Money) returns (acme.common.v1.Money); }
""",
}
USER_SERVICES = ["acme.audit.v1.AuditService", "acme.inventory.v1.InventoryService"]
V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pool.DescriptorPool:
    """The test protos plus grpcio-reflection's own v1alpha file."""
    _, pool = compile_protos(tmp_path_factory.mktemp("reflect"), PROTOS)
    pool.AddSerializedFile(reflection_pb2.DESCRIPTOR.serialized_pb)
    return pool


class OneFileReflection:
    """A minimal reflection servicer sending one file per answer, never its dependencies,
    so the client has to ask for every import itself; `hide` files answer NOT_FOUND."""

    def __init__(
        self, pool: descriptor_pool.DescriptorPool, services: list[str], hide: Iterable[str] = ()
    ) -> None:
        self.pool = pool
        self.services = services
        self.hide = set(hide)
        self.asked: list[str] = []

    def info(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for req in requests:
            kind = req.WhichOneof("message_request")
            resp = reflection_pb2.ServerReflectionResponse(original_request=req)
            if kind == "list_services":
                for name in self.services:
                    resp.list_services_response.service.add(name=name)
            else:
                what = getattr(req, kind)
                self.asked.append(what)
                try:
                    fd = (
                        self.pool.FindFileByName(what)
                        if kind == "file_by_filename"
                        else self.pool.FindFileContainingSymbol(what)
                    )
                    if fd.name in self.hide:
                        raise KeyError(fd.name)
                    proto = descriptor_pb2.FileDescriptorProto()
                    fd.CopyToProto(proto)
                    resp.file_descriptor_response.file_descriptor_proto.append(
                        proto.SerializeToString()
                    )
                except KeyError:
                    resp.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
                    resp.error_response.error_message = f"{what} not found"
            yield resp

    def handler(self, service: str = V1) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            service,
            {
                "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                    self.info,
                    request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                    response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                )
            },
        )


@contextlib.contextmanager
def grpc_server(
    *handlers: grpc.GenericRpcHandler,
    setup: Any = None,
    credentials: grpc.ServerCredentials | None = None,
) -> Iterator[str]:
    """A grpcio server on 127.0.0.1 with a free port; yields `127.0.0.1:PORT`."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if handlers:
        server.add_generic_rpc_handlers(handlers)
    if setup is not None:
        setup(server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


@pytest.fixture
async def ctx() -> AsyncIterator[Context]:
    ctx = Context(SchemaCache(), Compiler())
    yield ctx
    await ctx.compiler.close()
    await ctx.close()


async def test_v1_only_server_with_dependencies_fetched_one_by_one(
    pool: descriptor_pool.DescriptorPool, ctx: Context
) -> None:
    servicer = OneFileReflection(pool, [*USER_SERVICES, V1])
    with grpc_server(servicer.handler(V1)) as endpoint:
        schema = await load_reflection(ctx, endpoint)
    assert list(schema.service_names) == USER_SERVICES  # V1 itself is not in the pool: skipped
    assert {
        "acme/inventory/v1/inventory.proto",
        "acme/inventory/v1/item.proto",
        "acme/common/v1/money.proto",
        "google/protobuf/timestamp.proto",
    } <= set(schema.file_names)
    # dependencies were asked for by file name, each once
    assert servicer.asked.count("acme/common/v1/money.proto") == 1
    assert "acme/inventory/v1/item.proto" in servicer.asked
    item = schema.pool.FindMessageTypeByName("acme.inventory.v1.Item")
    assert item.fields_by_name["price"].message_type.full_name == "acme.common.v1.Money"


async def test_v1alpha_only_server_falls_back_and_keeps_the_reflection_file(
    pool: descriptor_pool.DescriptorPool, ctx: Context
) -> None:
    def setup(server: grpc.Server) -> None:
        reflection.enable_server_reflection([*USER_SERVICES, V1ALPHA], server, pool=pool)

    with grpc_server(setup=setup) as endpoint:
        target = parse_endpoint(endpoint)
        reflected = await reflect(target)
        schema = await load_reflection(ctx, endpoint)
    assert reflected.version == "v1alpha"
    assert list(schema.service_names) == [*USER_SERVICES, V1ALPHA]
    assert "grpc_reflection/v1alpha/reflection.proto" in schema.file_names


async def test_missing_well_known_import_is_completed_locally(
    pool: descriptor_pool.DescriptorPool, ctx: Context
) -> None:
    servicer = OneFileReflection(pool, USER_SERVICES, hide=["google/protobuf/timestamp.proto"])
    with grpc_server(servicer.handler()) as endpoint:
        schema = await load_reflection(ctx, endpoint)
    assert "google/protobuf/timestamp.proto" in schema.file_names
    assert schema.service("acme.inventory.v1.InventoryService") is not None


async def test_missing_user_import_names_the_importer(
    pool: descriptor_pool.DescriptorPool, ctx: Context
) -> None:
    servicer = OneFileReflection(pool, USER_SERVICES, hide=["acme/common/v1/money.proto"])
    with grpc_server(servicer.handler()) as endpoint, pytest.raises(LoadError) as info:
        await load_reflection(ctx, endpoint)
    message = str(info.value)
    assert endpoint in message
    assert "imports acme/common/v1/money.proto" in message
    assert "could not send" in message


async def test_listed_service_without_file_is_a_clear_error(
    pool: descriptor_pool.DescriptorPool, ctx: Context
) -> None:
    servicer = OneFileReflection(pool, [*USER_SERVICES, "acme.ghost.v1.Ghost"])
    with grpc_server(servicer.handler()) as endpoint, pytest.raises(LoadError) as info:
        await load_reflection(ctx, endpoint)
    assert "lists acme.ghost.v1.Ghost but could not send the file defining it" in str(info.value)


async def test_same_server_twice_builds_once_and_shares_the_schema(
    pool: descriptor_pool.DescriptorPool, ctx: Context
) -> None:
    with grpc_server(OneFileReflection(pool, USER_SERVICES).handler()) as endpoint:
        first = await load_reflection(ctx, endpoint)
        builds = ctx.cache.builds
        second = await load_reflection(ctx, endpoint)
    assert second is first
    assert ctx.cache.builds == builds
    assert ctx.compiler.compiles == 0  # reflection never runs protoc


async def test_tls_with_server_name_override(
    pool: descriptor_pool.DescriptorPool, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("catalog.test")
    creds = grpc.ssl_server_credentials(
        [(cert.private_key_pem.bytes(), b"".join(b.bytes() for b in cert.cert_chain_pems))]
    )
    ctx = Context(SchemaCache(), Compiler(), tls_roots=ca.cert_pem.bytes())  # never compiles
    servicer = OneFileReflection(pool, USER_SERVICES)
    with grpc_server(servicer.handler(), credentials=creds) as endpoint:
        schema = await load_reflection(ctx, endpoint, use_tls=True, server_name="catalog.test")
        assert list(schema.service_names) == USER_SERVICES
        with pytest.raises(LoadError) as wrong_name:  # the cert is not for 127.0.0.1
            await load_reflection(ctx, endpoint, use_tls=True, timeout_seconds=5)
        with pytest.raises(LoadError) as plaintext:
            await load_reflection(ctx, endpoint, timeout_seconds=5)
    assert endpoint in str(wrong_name.value)
    assert "serverName" in str(wrong_name.value)
    assert endpoint in str(plaintext.value)
    assert "useTls" in str(plaintext.value)


def test_endpoint_parsing() -> None:
    assert parse_endpoint("localhost:50051").address == "localhost:50051"
    assert not parse_endpoint("localhost:50051").use_tls
    assert parse_endpoint("api.example.com:443").use_tls
    https = parse_endpoint("https://api.example.com")
    assert (https.address, https.use_tls) == ("api.example.com:443", True)
    assert parse_endpoint("http://[::1]:8080").address == "[::1]:8080"
    assert parse_endpoint("h:1", timeout=0).timeout == 10.0
    assert parse_endpoint("h:1", timeout=2.5).timeout == 2.5


# --- the catalog reflecting itself -------------------------------------------------------


CATALOG_PROTO = Path(__file__).parent.parent / "proto" / "catalog" / "v1" / "catalog.proto"


@pytest.fixture(scope="module")
def reflecting_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A catalog serving gRPC reflection for its own API, comments included; yields its URL."""
    fds, _ = compile_protos(
        tmp_path_factory.mktemp("catalog"), {"catalog/v1/catalog.proto": CATALOG_PROTO.read_text()}
    )
    routes = reflection_routes(fds.SerializeToString())
    with run_catalog(AppConfig(extra_routes=routes)) as running:
        yield running.url


def test_without_source_info_the_generated_descriptor_is_served() -> None:
    desc = catalog_file()
    assert desc.name == "catalog/v1/catalog.proto"
    assert [s.type_name for s in desc.services] == ["catalog.v1.CatalogService"]


def test_routes_cover_both_versions() -> None:
    assert set(reflection_routes()) == set(REFLECTION_PREFIXES)
    assert REFLECTION_PREFIXES == (
        "/grpc.reflection.v1.ServerReflection/",
        "/grpc.reflection.v1alpha.ServerReflection/",
    )


async def test_our_loader_reflects_the_catalog(reflecting_catalog: str, ctx: Context) -> None:
    endpoint = reflecting_catalog.removeprefix("http://")
    reflected = await reflect(parse_endpoint(endpoint))
    assert reflected.version == "v1"
    assert "catalog.v1.CatalogService" in reflected.services
    schema = await load_reflection(ctx, endpoint)
    assert "catalog.v1.CatalogService" in schema.service_names
    assert V1 in schema.service_names and V1ALPHA in schema.service_names
    assert schema.comments["catalog.v1.CatalogService"].startswith("CatalogService is the")


def test_catalog_loads_itself_through_its_own_api(
    reflecting_catalog: str, http: httpx.Client
) -> None:
    endpoint = reflecting_catalog.removeprefix("http://")
    data, sid = load_ok(http, reflecting_catalog, {"reflectionEndpoint": endpoint})
    assert "catalog.v1.CatalogService" in data["loadedServices"]
    services = call(http, reflecting_catalog, "ListServices", {}, sid).json()["services"]
    [svc] = [s for s in services if s["name"] == "catalog.v1.CatalogService"]
    methods = {m["name"]: m for m in svc["methods"]}
    assert methods["LoadProtos"]["documentation"].startswith("Loads schemas from one source")


@requires_buf
def test_buf_curl_reflects_the_catalog(reflecting_catalog: str) -> None:
    buf = find_buf()
    assert buf is not None
    listed = subprocess.run(
        [buf, "curl", "--list-methods", "--http2-prior-knowledge", reflecting_catalog],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "catalog.v1.CatalogService/LoadProtos" in listed.stdout
    for protocol in ("grpc", "connect"):
        called = subprocess.run(
            [
                buf,
                "curl",
                "--protocol",
                protocol,
                "--http2-prior-knowledge",
                "--data",
                "{}",
                f"{reflecting_catalog}/catalog.v1.CatalogService/ListServices",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert called.returncode == 0, called.stderr
        assert called.stdout.strip().startswith("{")


# --- failures through the catalog's HTTP API ---------------------------------------------


def test_unreachable_endpoint(catalog_url: str, http: httpx.Client) -> None:
    error = load_failed(http, catalog_url, {"reflectionEndpoint": "127.0.0.1:1"})
    assert error.startswith("could not reach 127.0.0.1:1 for reflection")


def test_server_without_reflection(catalog_url: str, http: httpx.Client) -> None:
    with grpc_server(setup=lambda server: None) as endpoint:
        error = load_failed(http, catalog_url, {"reflectionEndpoint": endpoint})
    assert f"{endpoint} does not serve gRPC server reflection" in error
    assert "v1alpha" in error


def test_silent_server_times_out(catalog_url: str, http: httpx.Client) -> None:
    with silent_listener() as endpoint:
        error = load_failed(
            http,
            catalog_url,
            {"reflectionEndpoint": endpoint, "reflectionOptions": {"timeoutSeconds": 1}},
        )
    assert f"reflection of {endpoint} timed out after 1 s" in error


def test_tls_to_a_plaintext_server(
    catalog_url: str, http: httpx.Client, pool: descriptor_pool.DescriptorPool
) -> None:
    with grpc_server(OneFileReflection(pool, USER_SERVICES).handler()) as endpoint:
        error = load_failed(
            http,
            catalog_url,
            {
                "reflectionEndpoint": endpoint,
                "reflectionOptions": {"useTls": True, "timeoutSeconds": 5},
            },
        )
    assert endpoint in error
    assert "useTls" in error


@pytest.mark.parametrize(
    ("endpoint", "wanted"),
    [
        ("", "reflectionEndpoint is empty"),
        ("grpc://host:1", "give host:port"),
        ("host:notaport", "is not host:port"),
        ("http://host:1/some/path", "is not host:port"),
    ],
)
def test_malformed_endpoints_are_invalid_arguments(
    catalog_url: str, http: httpx.Client, endpoint: str, wanted: str
) -> None:
    code, message = load_rejected(http, catalog_url, {"reflectionEndpoint": endpoint})
    assert code == "invalid_argument"
    assert wanted in message


def test_reflection_of_a_running_server_through_the_api(
    catalog_url: str, http: httpx.Client, pool: descriptor_pool.DescriptorPool
) -> None:
    with grpc_server(OneFileReflection(pool, USER_SERVICES).handler()) as endpoint:
        data, _ = load_ok(http, catalog_url, {"reflectionEndpoint": endpoint})
    assert data["loadedServices"] == USER_SERVICES


async def test_the_catalog_reflects_every_catalog_v1_service(
    reflecting_catalog: str, ctx: Context
) -> None:
    """CollectionService is discoverable too, with the comments of its shipped descriptor set."""
    endpoint = reflecting_catalog.removeprefix("http://")
    reflected = await reflect(parse_endpoint(endpoint))
    assert "catalog.v1.CollectionService" in reflected.services
    schema = await load_reflection(ctx, endpoint)
    assert "catalog.v1.CollectionService" in schema.service_names
    assert schema.comments.get("catalog.v1.CollectionService", "").strip()
