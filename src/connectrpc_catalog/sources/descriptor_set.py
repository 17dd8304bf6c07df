"""Serialized FileDescriptorSets: where every source ends, and the `descriptorSet` source.

`load_set` turns the bytes into the shared `Schema` through the `SchemaCache` (keyed by
content, so the same set loaded again is the same object); `looks_like_set` sniffs a
file whose name does not say what it is.
"""

from __future__ import annotations

import asyncio

from google.protobuf import descriptor_pb2

from ..descriptors import Schema, SchemaError
from .core import Context, Given, LimitError, LoadError, SourceError

__all__ = ["SUFFIXES", "load", "load_set", "looks_like_set"]

SUFFIXES = (".binpb", ".pb", ".protoset", ".desc", ".bin")
"""File name endings that mark a descriptor set (other files are sniffed)."""


async def load(ctx: Context, given: Given) -> Schema:
    """The `descriptorSet` of a request: the bytes of a serialized FileDescriptorSet."""
    if not isinstance(given.value, bytes) or not given.value:
        raise SourceError("descriptorSet is empty", field="descriptorSet")
    return await load_set(ctx, given.value, origin="uploaded descriptor set")


async def load_set(ctx: Context, data: bytes, *, origin: str = "descriptor set") -> Schema:
    """Load a serialized FileDescriptorSet; `origin` names it in messages."""
    limit = ctx.limits.max_bytes
    if len(data) > limit:
        raise LimitError(f"{origin} is {len(data)} bytes; the limit is {limit} bytes")
    try:
        schema = await asyncio.to_thread(ctx.cache.from_set, data)
    except SchemaError as exc:
        raise LoadError(f"{origin}: {exc}") from None
    if not schema.files:
        raise LoadError(f"{origin}: not a serialized FileDescriptorSet (it holds no files)")
    return schema


def looks_like_set(data: bytes) -> bool:
    """Whether a file's bytes parse as a FileDescriptorSet of named files (CPU: in a thread)."""
    # A FileDescriptorSet starts with field 1, wire type 2 (0x0a); .proto text never does.
    if data[:1] != b"\x0a":
        return False
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    except Exception:  # DecodeError, or a runtime-specific error type
        return False
    return bool(fds.file) and all(f.name for f in fds.file)
