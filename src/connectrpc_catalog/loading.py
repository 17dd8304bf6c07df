"""Dispatching a LoadProtosRequest's source to the loader that handles it."""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from .descriptors import Schema
from .gen.catalog.v1 import catalog_pb
from .sources.core import Loader

__all__ = ["SOURCE_FIELDS", "load_source"]

SOURCE_FIELDS = "protoPath, protoRepo, bufModule, reflectionEndpoint, protoFiles or descriptorSet"


async def load_source(loader: Loader, req: catalog_pb.LoadProtosRequest) -> Schema:
    """Load the request's source; LoadError for a failed load, ConnectError for a bad request."""
    source = req.source
    if source is None:
        raise ConnectError(Code.INVALID_ARGUMENT, f"no source given: set one of {SOURCE_FIELDS}")
    field, value = source.field, source.value
    if field == "proto_path":
        return await loader.from_path(str(value))
    if field == "proto_files":
        files = value.files if isinstance(value, catalog_pb.ProtoFiles) else {}
        return await loader.from_files({k: v.encode() for k, v in files.items()})
    if field == "descriptor_set":
        if not isinstance(value, bytes) or not value:
            raise ConnectError(Code.INVALID_ARGUMENT, "descriptorSet is empty")
        return await loader.from_descriptor_set(value, origin="uploaded descriptor set")
    if field == "proto_repo":
        return await loader.from_git(str(value))
    if field == "buf_module":
        return await loader.from_buf(str(value))
    if field == "reflection_endpoint":
        opts = req.reflection_options
        return await loader.from_reflection(
            str(value),
            use_tls=bool(opts and opts.use_tls),
            server_name=opts.server_name if opts else "",
            timeout_seconds=float(opts.timeout_seconds)
            if opts and opts.timeout_seconds > 0
            else None,
        )
    raise ConnectError(Code.INVALID_ARGUMENT, f"unknown source {field}: set one of {SOURCE_FIELDS}")
