"""A session's descriptor registry: the shared base schema plus what the session loaded.

The registry holds references only; the schemas themselves live in the shared
`SchemaCache`, so a session on already-loaded schemas costs a few hundred bytes.
"""

from __future__ import annotations

import asyncio

from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message

from .base import Base
from .descriptors import MergeConflict, Schema, SchemaCache, SchemaError
from .gen.catalog.v1 import catalog_pb
from .problems import Code, RequestError

__all__ = ["Registry"]


class Registry:
    """What one session can see: `base` (shared, reloadable) layered under its own loads."""

    __slots__ = ("_base", "_cache", "_labels", "_own", "_view", "_view_base")

    def __init__(self, base: Base, cache: SchemaCache) -> None:
        self._base = base
        self._cache = cache
        self._own: tuple[Schema, ...] = ()
        self._labels: tuple[str, ...] = ()
        """How each of `_own` was loaded, e.g. "protoPath ./protos" (for conflicts)."""
        self._view: Schema | None = None
        self._view_base: Schema | None = None

    @property
    def view(self) -> Schema:
        """The merged schema the session sees now (recomputed if the base was reloaded).

        After a reload this merges on the calling thread; request handlers use
        `await current()` instead, which merges in a worker thread.
        """
        base = self._base.schema
        if self._view is None or self._view_base is not base:
            self._view = self._merge_with(base, self._own)
            self._view_base = base
        return self._view

    async def current(self) -> Schema:
        """The merged schema the session sees now; a merge after a base reload runs in a
        worker thread, so the event loop never merges. Once it returns, `view` and the
        lookups (`find_service`, `pool`, …) are up to date until the next `await`."""
        while True:
            base, own, view = self._base.schema, self._own, self._view
            if view is not None and self._view_base is base:
                return view
            if not own:
                merged = base
            else:
                merged = await asyncio.to_thread(self._merge_with, base, own)
            if self._own is own and self._base.schema is base:
                self._view, self._view_base = merged, base
                return merged

    def _merge_with(self, base: Schema, own: tuple[Schema, ...]) -> Schema:
        if not own:
            return base
        try:
            return self._cache.merge((base, *own))
        except SchemaError:
            # A reloaded base now clashes with what this session loaded: the session's own
            # schemas win, so its calls keep working; the clashing base stays hidden here.
            return self._cache.merge(own)

    @property
    def pool(self) -> DescriptorPool:
        """The descriptor pool of everything the session sees."""
        return self.view.pool

    @property
    def base(self) -> Base:
        """The shared base this registry layers on."""
        return self._base

    async def add(self, schema: Schema, label: str = "this load") -> Schema:
        """Add a loaded schema; raises SchemaError (and changes nothing) on a conflict.

        `label` names the source in conflict messages ("protoPath ./protos"). The merge
        runs in a thread; if another load of this session landed meanwhile, the merge is
        redone on top of it, so concurrent loads never lose each other.
        """
        while True:
            own, labels, base = self._own, self._labels, self._base.schema
            if any(s is schema for s in own):
                return await self.current()
            try:
                merged = await asyncio.to_thread(self._cache.merge, (base, *own, schema))
            except MergeConflict as exc:
                raise SchemaError(self._conflict(exc, (*labels, label))) from None
            if self._own is own and self._base.schema is base:
                self._own = (*own, schema)
                self._labels = (*labels, label)
                self._view, self._view_base = merged, base
                return merged

    def _conflict(self, exc: MergeConflict, labels: tuple[str, ...]) -> str:
        """A conflict in words, naming both sources and what the user can do."""
        base = self._base

        def name(i: int) -> str:
            if i == 0:
                file = exc.first_file if exc.first == 0 else exc.second_file
                return base.origins.get(file, "the catalog's start-up sources")
            return labels[i - 1] if i - 1 < len(labels) else "this load"

        if exc.first == 0:
            hint = (
                "the catalog's start-up schema cannot be replaced from a session: load a "
                "version that matches it, or restart the catalog without that source"
            )
        else:
            hint = (
                "a session keeps what it loaded: end the session (End session in the UI, "
                "CloseSession in the API) and load only the version you want, or make the "
                "two agree"
            )
        return "conflict: " + exc.describe(name, hint)

    @property
    def load_count(self) -> int:
        """How many schemas the session loaded."""
        return len(self._own)

    @property
    def loads(self) -> tuple[tuple[str, Schema], ...]:
        """What the session loaded, in order: (label, schema) — its manifest."""
        return tuple(zip(self._labels, self._own, strict=True))

    async def restore(self, loads: tuple[tuple[str, Schema], ...]) -> None:
        """Hold exactly `loads` (a manifest read from a shared session store), merged onto
        the base in a worker thread. A session restored in another process merged before,
        so a conflict here can only come from a different base: the loads win (as after a
        reload)."""
        own = tuple(schema for _, schema in loads)
        while True:
            base = self._base.schema
            merged = await asyncio.to_thread(self._merge_with, base, own)
            if self._base.schema is base:
                self._own, self._labels = own, tuple(label for label, _ in loads)
                self._view, self._view_base = merged, base
                return

    def own_services(self) -> tuple[str, ...]:
        """Services the session loaded itself that the base does not define."""
        base = set(self._base.schema.service_names)
        return tuple(sorted({n for s in self._own for n in s.service_names} - base))

    def find_service(self, name: str) -> ServiceDescriptor:
        """The service by fully qualified name, or a NOT_FOUND error."""
        svc = self.view.service(name.lstrip("."))
        if svc is None:
            raise RequestError(
                code=Code.NOT_FOUND,
                message=f"service {name!r} is not loaded in this session; call LoadProtos first "
                "or check the name with ListServices",
            )
        return svc

    def find_method(self, service: str, method: str) -> MethodDescriptor:
        """The method of a service, or a NOT_FOUND error naming what is missing."""
        svc = self.find_service(service)
        found = svc.methods_by_name.get(method)
        if found is None:
            known = ", ".join(sorted(svc.methods_by_name)) or "none"
            raise RequestError(
                code=Code.NOT_FOUND,
                message=f"service {svc.full_name} has no method {method!r} (methods: {known})",
            )
        return found

    def message_class(self, desc: Descriptor) -> type[Message]:
        """The concrete class for a message of this session's schemas (shared cache)."""
        return self.view.message_class(desc)

    def default_target(self, service: str) -> catalog_pb.Target | None:
        """Where the service is called when a request leaves the endpoint empty."""
        return self._base.target_for(service)

    async def close(self) -> None:
        """Drop the session's references to its schemas."""
        self._own = ()
        self._labels = ()
        self._view = None
        self._view_base = None
