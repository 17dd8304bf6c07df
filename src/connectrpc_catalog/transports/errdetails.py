"""Decode error details (`grpc-status-details-bin`, Connect `details`) to a JSON array.

Types are resolved through the session's pool first, then the bundled `google.rpc.*`
error detail types (googleapis-common-protos). Unknown types stay readable as
`{"@type": url, "value": "<base64>"}`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import (  # type: ignore[import-untyped]
    error_details_pb2,  # noqa: F401 - importing it registers the google.rpc detail types
    status_pb2,
)

from .status import RawDetail

__all__ = ["details_json", "parse_status_details"]

# Importing error_details_pb2 registers google.rpc.* detail types in the default pool.
_BUNDLED_POOL = descriptor_pool.Default()


def parse_status_details(data: bytes) -> tuple[RawDetail, ...]:
    """The details of a serialized `google.rpc.Status` (empty when it does not parse)."""
    try:
        status = status_pb2.Status.FromString(data)
    except DecodeError:
        return ()
    return tuple(RawDetail(type_url=d.type_url, value=d.value) for d in status.details)


def details_json(details: Sequence[RawDetail], pool: descriptor_pool.DescriptorPool) -> str:
    """A JSON array with one object per detail, or "" when there are none."""
    if not details:
        return ""
    return json.dumps([_detail(d, pool) for d in details], separators=(",", ":"))


def _detail(detail: RawDetail, pool: descriptor_pool.DescriptorPool) -> dict[str, Any]:
    name = detail.type_url.rpartition("/")[2]
    found = _find(name, pool)
    if found is not None:
        desc, where = found
        try:
            msg: Message = message_factory.GetMessageClass(desc)()
            msg.ParseFromString(detail.value)
            body = json_format.MessageToDict(msg, descriptor_pool=where)
        except (DecodeError, json_format.Error, TypeError, ValueError):
            pass
        else:
            if isinstance(body, dict):
                return {"@type": detail.type_url, **body}
            return {"@type": detail.type_url, "value": body}
    return {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()}


def _find(
    name: str, pool: descriptor_pool.DescriptorPool
) -> tuple[Descriptor, descriptor_pool.DescriptorPool] | None:
    for where in (pool, _BUNDLED_POOL):
        try:
            return where.FindMessageTypeByName(name), where
        except KeyError:
            continue
    return None
