"""The catalog reflecting itself: gRPC server reflection (v1 and v1alpha) for catalog.v1.

Every catalog.v1 service is served: `CatalogService` (catalog.proto) and
`CollectionService` (collections.proto, which imports catalog.proto).

With it, `buf curl --reflect`, grpcurl and the catalog's own reflection loader can call
the catalog with no .proto at hand. Served by `connectrpc-grpcreflect`; route every path
under `REFLECTION_PREFIXES` to `reflection_app()`.

The generated code carries no comments (protoc-gen-py strips source info), so comments
are served only when a descriptor set of catalog/v1/catalog.proto compiled with
`--include_source_info` is given, or shipped as `gen/catalog/v1/catalog.binpb`.
"""

from __future__ import annotations

import importlib.resources

from connectrpc_grpcreflect import (
    ServerReflectionAlphaASGIApplication,
    ServerReflectionAlphaService,
    ServerReflectionASGIApplication,
    ServerReflectionService,
)
from protobuf import DescFile
from protobuf._codegen import file_desc
from protobuf.wkt.google.protobuf import timestamp_pb
from protobuf.wkt.google.protobuf.descriptor_pb import FileDescriptorSet

from ..gen.catalog.v1 import catalog_pb, collections_pb
from .sessions import ASGIApp, Receive, Scope, Send

__all__ = [
    "REFLECTION_PREFIXES",
    "catalog_file",
    "catalog_files",
    "reflection_app",
    "reflection_routes",
]

V1_PREFIX = "/grpc.reflection.v1.ServerReflection/"
V1ALPHA_PREFIX = "/grpc.reflection.v1alpha.ServerReflection/"
REFLECTION_PREFIXES = (V1_PREFIX, V1ALPHA_PREFIX)
"""The path prefixes to route to `reflection_app()`."""

CATALOG_PROTO = "catalog/v1/catalog.proto"
COLLECTIONS_PROTO = "catalog/v1/collections.proto"
SOURCE_INFO_RESOURCE = ("connectrpc_catalog.gen.catalog.v1", "catalog.binpb")
"""Where a descriptor set of the catalog API with its comments is looked for."""
COLLECTIONS_RESOURCE = ("connectrpc_catalog.gen.catalog.v1", "collections.binpb")


def catalog_file(descriptor_set: bytes | None = None) -> DescFile:
    """The catalog.v1 file descriptor, with comments when a set with source info is found."""
    data = descriptor_set if descriptor_set is not None else _shipped_set(SOURCE_INFO_RESOURCE)
    if data:
        fds = FileDescriptorSet.from_binary(data)
        for proto in fds.file:
            if proto.name == CATALOG_PROTO and proto.source_code_info is not None:
                return file_desc(proto.to_binary(), [timestamp_pb.desc()], {})
    return catalog_pb.desc()


def catalog_files(descriptor_set: bytes | None = None) -> tuple[DescFile, ...]:
    """Every catalog.v1 file with a service, each with its comments when shipped."""
    catalog = catalog_file(descriptor_set)
    collections: DescFile = collections_pb.desc()
    data = _shipped_set(COLLECTIONS_RESOURCE)
    if data:
        for proto in FileDescriptorSet.from_binary(data).file:
            if proto.name == COLLECTIONS_PROTO and proto.source_code_info is not None:
                collections = file_desc(proto.to_binary(), [catalog], {})
    return catalog, collections


def _shipped_set(resource: tuple[str, str]) -> bytes | None:
    package, name = resource
    try:
        return importlib.resources.files(package).joinpath(name).read_bytes()
    except OSError:
        return None


def reflection_app(descriptor_set: bytes | None = None) -> ASGIApp:
    """An ASGI app serving grpc.reflection.v1 and v1alpha for the catalog.v1 API.

    `descriptor_set`: a serialized FileDescriptorSet holding catalog/v1/catalog.proto with
    source info, to serve its comments (default: the shipped one, if any).
    """
    descs = catalog_files(descriptor_set)
    v1: ASGIApp = ServerReflectionASGIApplication(ServerReflectionService(*descs))
    v1alpha: ASGIApp = ServerReflectionAlphaASGIApplication(ServerReflectionAlphaService(*descs))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            return
        path: str = scope.get("path", "")
        if path.startswith(V1ALPHA_PREFIX):
            await v1alpha(scope, receive, send)
        else:
            await v1(scope, receive, send)  # answers 404 for anything it does not serve

    return app


def reflection_routes(descriptor_set: bytes | None = None) -> dict[str, ASGIApp]:
    """`AppConfig.extra_routes` entries for self-reflection (one app for both prefixes)."""
    return dict.fromkeys(REFLECTION_PREFIXES, reflection_app(descriptor_set))
