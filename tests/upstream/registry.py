"""A stand-in for the session registry, built from the compiled test schema."""

from __future__ import annotations

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message

from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.problems import Code, RequestError

from .schema import TestSchema


class StubRegistry:
    """Implements what invocation needs (`MethodRegistry`) over one pool."""

    def __init__(self, schema: TestSchema, targets: dict[str, catalog_pb.Target] | None = None):
        self._schema = schema
        self._targets = targets or {}

    @property
    def pool(self) -> DescriptorPool:
        return self._schema.pool

    async def current(self) -> object:
        return self._schema

    def find_method(self, service: str, method: str) -> MethodDescriptor:
        try:
            svc = self._schema.pool.FindServiceByName(service)
        except KeyError:
            raise RequestError(
                code=Code.NOT_FOUND, message=f"service {service!r} is not loaded"
            ) from None
        found = svc.methods_by_name.get(method)
        if found is None:
            raise RequestError(
                code=Code.NOT_FOUND, message=f"service {service} has no method {method!r}"
            )
        return found

    def message_class(self, desc: Descriptor) -> type[Message]:
        return message_factory.GetMessageClass(desc)

    def default_target(self, service: str) -> catalog_pb.Target | None:
        return self._targets.get(service)
