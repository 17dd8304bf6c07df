"""Compiled schemas: immutable descriptor sets with their pool, comments and caches.

A `Schema` is built once per distinct set of files and shared by every session that
sees those files; nothing in it is copied per session. `SchemaCache` finds or builds
them by content hash and merges a session's sources into one view.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from google.protobuf import (  # the well-known types' modules register their files
    any_pb2,
    api_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    message_factory,
    source_context_pb2,
    struct_pb2,
    timestamp_pb2,
    type_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import Message

from .comments import index_comments

__all__ = ["EMPTY", "WELL_KNOWN_FILES", "Schema", "SchemaCache", "SchemaError"]

T = TypeVar("T")

WELL_KNOWN_FILES: dict[str, bytes] = {
    m.DESCRIPTOR.name: m.DESCRIPTOR.serialized_pb
    for m in (
        any_pb2,
        api_pb2,
        descriptor_pb2,
        duration_pb2,
        empty_pb2,
        field_mask_pb2,
        source_context_pb2,
        struct_pb2,
        timestamp_pb2,
        type_pb2,
        wrappers_pb2,
    )
}
"""The well-known types' files (name → serialized), for sets that leave them out."""


class SchemaError(Exception):
    """A descriptor set that cannot be loaded (conflicts, missing dependencies, garbage)."""


class Schema:
    """An immutable, shared set of files with a descriptor pool and lazily built caches."""

    __slots__ = (
        "__weakref__",
        "_building",
        "_building_lock",
        "_classes",
        "_extra",
        "_lock",
        "comments",
        "file_names",
        "files",
        "key",
        "pool",
        "service_names",
    )

    def __init__(self, files: Mapping[str, bytes]) -> None:
        """Build from file name → serialized FileDescriptorProto (dependencies included)."""
        self.files = dict(files)
        self.key = _key(self.files)
        protos = [_parse_file(name, data) for name, data in self.files.items()]
        self.pool = descriptor_pool.DescriptorPool()
        for proto in _dependency_order(protos):
            try:
                self.pool.AddSerializedFile(self.files[proto.name])
            except Exception as exc:  # upb raises TypeError; the pure runtime other types
                raise SchemaError(f"{proto.name}: {_pool_error(exc)}") from None
        self.file_names = tuple(sorted(self.files))
        self.comments = index_comments(protos)
        self.service_names = tuple(
            sorted(
                f"{p.package}.{s.name}" if p.package else s.name for p in protos for s in p.service
            )
        )
        self._classes: dict[str, type[Message]] = {}
        self._extra: dict[object, Any] = {}
        self._lock = threading.Lock()
        self._building: dict[object, Future[Any]] = {}
        self._building_lock = threading.Lock()

    def service(self, name: str) -> ServiceDescriptor | None:
        """The service with this fully qualified name, if the schema has it."""
        try:
            return self.pool.FindServiceByName(name)
        except KeyError:
            return None

    def message_class(self, desc: Descriptor) -> type[Message]:
        """The concrete message class for a descriptor of this schema (cached)."""
        cls = self._classes.get(desc.full_name)
        if cls is None:
            cls = message_factory.GetMessageClass(desc)
            self._classes[desc.full_name] = cls
        return cls

    def cached(self, key: object, build: Any) -> Any:
        """Memoize a derived value (service listings, JSON Schemas) on this schema."""
        value = self._extra.get(key)
        if value is None:
            with self._lock:
                value = self._extra.get(key)
                if value is None:
                    value = build()
                    self._extra[key] = value
        return value

    async def derive(self, key: object, build: Callable[[], T]) -> T:
        """Like `cached`, but `build` runs in a worker thread, once, however many tasks
        (on any event loop) ask for the same key meanwhile; they all await that one build.

        A failed build is not cached (every waiter gets its exception). A waiter that is
        cancelled stops waiting; the build goes on for the others.
        """
        value = self._extra.get(key)
        if value is not None:
            return value  # type: ignore[no-any-return]
        with self._building_lock:
            value = self._extra.get(key)
            if value is not None:
                return value  # type: ignore[no-any-return]
            future = self._building.get(key)
            owner = future is None
            if future is None:
                future = self._building[key] = Future()
                future.set_running_or_notify_cancel()  # waiters cannot cancel it
        if owner:
            asyncio.get_running_loop().run_in_executor(None, self._build, key, build, future)
        return await asyncio.wrap_future(future)

    def _build(self, key: object, build: Callable[[], Any], future: Future[Any]) -> None:
        try:
            value = build()
        except BaseException as exc:  # handed to the waiters, never lost
            with self._building_lock:
                del self._building[key]
            future.set_exception(exc)
            return
        with self._building_lock:
            self._extra[key] = value
            del self._building[key]
        future.set_result(value)


class SchemaCache:
    """Shared store of schemas by content, bounded, least recently used evicted.

    Sessions hold strong references to the schemas they use, so eviction only means the
    next identical load is rebuilt, never that a session loses its schema.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Schema] = OrderedDict()
        self._building: dict[str, Future[Schema]] = {}
        self.builds = 0

    def from_set(self, data: bytes) -> Schema:
        """The schema of a serialized FileDescriptorSet (built if not cached)."""
        fds = descriptor_pb2.FileDescriptorSet()
        try:
            fds.ParseFromString(data)
        except Exception:
            raise SchemaError("not a serialized google.protobuf.FileDescriptorSet") from None
        files: dict[str, bytes] = {}
        for f in fds.file:
            if not f.name:
                raise SchemaError("descriptor set holds a file with no name")
            files[f.name] = f.SerializeToString(deterministic=True)
        return self.get(_complete(files))

    def merge(self, parts: Sequence[Schema]) -> Schema:
        """The schema holding every file of `parts`; the same file twice is kept once."""
        live = [p for p in parts if p.files]
        if not live:
            return EMPTY
        if len(live) == 1:
            return live[0]
        files: dict[str, bytes] = {}
        for part in live:
            for name, data in part.files.items():
                seen = files.get(name)
                if seen is not None and seen != data:
                    raise SchemaError(
                        f"{name} is already loaded with different content; "
                        "close the session (CloseSession) to start over with the new version"
                    )
                files[name] = data
        return self.get(files)

    def get(self, files: Mapping[str, bytes]) -> Schema:
        """Find or build the schema of exactly these files.

        Threads asking for the same files at once share one build (after a base reload,
        every session with loads of its own merges onto the same new base).
        """
        key = _key(files)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
            pending = self._building.get(key)
            if pending is None:
                future: Future[Schema] = Future()
                self._building[key] = future
        if pending is not None:
            return pending.result()
        try:
            schema = Schema(files)
        except BaseException as exc:
            with self._lock:
                del self._building[key]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._building[key]
            self.builds += 1
            self._entries[key] = schema
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        future.set_result(schema)
        return schema

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _key(files: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        h.update(name.encode())
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _parse_file(name: str, data: bytes) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    try:
        proto.ParseFromString(data)
    except Exception:
        raise SchemaError(f"{name}: not a valid FileDescriptorProto") from None
    return proto


def _complete(files: dict[str, bytes]) -> dict[str, bytes]:
    """Add the well-known-type files a set depends on but does not include."""
    pending = list(files)
    while pending:
        name = pending.pop()
        for dep in _parse_file(name, files[name]).dependency:
            if dep not in files and dep in WELL_KNOWN_FILES:
                files[dep] = WELL_KNOWN_FILES[dep]
                pending.append(dep)
    return files


def _dependency_order(
    protos: Iterable[descriptor_pb2.FileDescriptorProto],
) -> list[descriptor_pb2.FileDescriptorProto]:
    by_name = {p.name: p for p in protos}
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    for root in by_name:
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, i = stack.pop()
            if i == 0:
                if state.get(name) == 2:
                    continue
                state[name] = 1
            deps = by_name[name].dependency
            if i < len(deps):
                stack.append((name, i + 1))
                dep = deps[i]
                if dep not in by_name:
                    raise SchemaError(f"{name} imports {dep}, which is not in the descriptor set")
                if state.get(dep) == 1:
                    raise SchemaError(f"import cycle between {name} and {dep}")
                if state.get(dep) != 2:
                    stack.append((dep, 0))
            else:
                state[name] = 2
                ordered.append(by_name[name])
    return ordered


def _pool_error(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "duplicate" in text.lower() or "already" in text.lower():
        return f"conflicting definition: {text}"
    return text


EMPTY = Schema({})
"""The schema with no files: a new session's view when there is no base."""
