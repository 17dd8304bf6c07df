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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
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
from .filefacts import Facts, FactsError, scan, split_set

__all__ = [
    "EMPTY",
    "WELL_KNOWN_FILES",
    "Comments",
    "MergeConflict",
    "Schema",
    "SchemaCache",
    "SchemaError",
    "merge_files",
]

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
        "described_files",
        "file_names",
        "files",
        "key",
        "pool",
        "service_names",
    )

    def __init__(
        self,
        files: Mapping[str, bytes],
        facts: Mapping[str, Facts] | None = None,
        bare: Mapping[str, bytes] | None = None,
        *,
        key: str | None = None,
    ) -> None:
        """Build from file name → serialized FileDescriptorProto (dependencies included).

        `facts` are the files' `filefacts.Facts` when the caller has them already (the
        protoc worker ships them); the others are read off the wire. `bare` has some of
        the files without source info, which the pool (it keeps none) builds faster
        from. Comments are indexed per file on first lookup (see `Comments`), not here.
        `key` is `_key(files)` when the caller computed it already (`SchemaCache`).
        """
        self.files = dict(files)
        self.key = key or _key(self.files)
        known = facts or {}
        by_name = {name: known.get(name) or _scan(name, data) for name, data in self.files.items()}
        self.pool = descriptor_pool.DescriptorPool()
        pool_bytes = bare or {}
        for fact in _dependency_order(by_name.values()):
            try:
                self.pool.AddSerializedFile(pool_bytes.get(fact.name) or self.files[fact.name])
            except Exception as exc:  # upb raises TypeError; the pure runtime other types
                raise SchemaError(f"{fact.name}: {_pool_error(exc)}") from None
        self.file_names = tuple(sorted(self.files))
        self.described_files = frozenset(f.name for f in by_name.values() if f.described)
        """Files that came with source info (comments); reflection's never do."""
        self.comments = Comments(self.files, self.described_files, self.pool)
        self.service_names = tuple(sorted(s for f in by_name.values() for s in f.services))
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


_FILE_COMMENTS: OrderedDict[bytes, dict[str, str]] = OrderedDict()
"""Comment indexes of recently asked files, by the file's bytes (shared by every schema
holding the file: a session's merged view, the base)."""
_FILE_COMMENTS_MAX = 4096
_FILE_COMMENTS_LOCK = threading.Lock()


class Comments(Mapping[str, str]):
    """A schema's source comments by fully qualified name (see `comments.index_comments`),
    indexed one file at a time on first lookup.

    Indexing every location of a big schema costs more than protoc's compile of it, and
    a page shows a few services: a lookup finds the element's file in the pool (its
    parent's, for enum values, oneofs and methods) and indexes that file only, once.
    Iterating (or `len`) indexes every file.
    """

    __slots__ = ("_described", "_files", "_pool")

    def __init__(
        self,
        files: Mapping[str, bytes],
        described: frozenset[str],
        pool: descriptor_pool.DescriptorPool,
    ) -> None:
        self._files = files
        self._described = described
        self._pool = pool

    def _file_of(self, name: str) -> str | None:
        candidate = name
        for _ in range(3):  # the element, else its parent (an enum value's enum, a method's
            # service), else the parent's parent
            try:
                return str(self._pool.FindFileContainingSymbol(candidate).name)
            except KeyError:
                candidate = candidate.rpartition(".")[0]
                if not candidate:
                    return None
        return None

    def _index(self, file: str) -> dict[str, str]:
        data = self._files[file]
        with _FILE_COMMENTS_LOCK:
            hit = _FILE_COMMENTS.get(data)
            if hit is not None:
                _FILE_COMMENTS.move_to_end(data)
                return hit
        built = index_comments([_parse_file(file, data)])
        with _FILE_COMMENTS_LOCK:
            _FILE_COMMENTS[data] = built
            while len(_FILE_COMMENTS) > _FILE_COMMENTS_MAX:
                _FILE_COMMENTS.popitem(last=False)
        return built

    def __getitem__(self, name: str) -> str:
        file = self._file_of(name) if self._described else None
        if file is None or file not in self._described:
            raise KeyError(name)
        return self._index(file)[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def _all(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for file in sorted(self._described):
            out.update(self._index(file))
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


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
        self.hits = 0
        """How many lookups found the schema already built (for metrics)."""

    def from_set(self, data: bytes) -> Schema:
        """The schema of a serialized FileDescriptorSet (built if not cached).

        The set is split and its files read off the wire (`filefacts`), not parsed; a
        file given twice counts with its last copy.
        """
        files: dict[str, bytes] = {}
        facts: dict[str, Facts] = {}
        try:
            for part in split_set(data):
                fact = scan(part)
                if not fact.name:
                    raise SchemaError("descriptor set holds a file with no name")
                files[fact.name], facts[fact.name] = part, fact
        except FactsError:
            raise SchemaError("not a serialized google.protobuf.FileDescriptorSet") from None
        _complete(files, facts)
        return self.get(files, facts)

    def merge(self, parts: Sequence[Schema]) -> Schema:
        """The schema holding every file of `parts`, merged by Protobuf's own rules.

        A file loaded twice with the same definitions (source info and comments aside) is
        one file, and the copy with comments wins; the well-known types always resolve to
        the runtime's own copy; a file that defines, under another name, exactly what an
        earlier file defines is the same file (its importers import the earlier one).
        Anything else that defines one name twice raises `MergeConflict`, naming the parts.
        """
        live = [(i, p) for i, p in enumerate(parts) if p.files]
        if not live:
            return EMPTY
        if len(live) == 1:
            return live[0][1]
        return self.get(merge_files(live))

    def get(
        self,
        files: Mapping[str, bytes],
        facts: Mapping[str, Facts] | None = None,
        bare: Mapping[str, bytes] | None = None,
    ) -> Schema:
        """Find or build the schema of exactly these files (`facts`, `bare`: see `Schema`).

        Threads asking for the same files at once share one build (after a base reload,
        every session with loads of its own merges onto the same new base).
        """
        key = _key(files)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return hit
            pending = self._building.get(key)
            if pending is None:
                future: Future[Schema] = Future()
                self._building[key] = future
        if pending is not None:
            return pending.result()
        try:
            schema = Schema(files, facts, bare, key=key)
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


class MergeConflict(SchemaError):
    """Two parts of a merge define one name differently.

    `first` and `second` are the indices of the parts (in the order given to `merge`);
    `describe` words it with the caller's names for them and what the user can do.
    """

    def __init__(
        self, *, symbol: str, first_file: str, second_file: str, first: int, second: int
    ) -> None:
        self.symbol = symbol
        self.first_file = first_file
        self.second_file = second_file
        self.first = first
        self.second = second
        super().__init__(self.describe(lambda i: f"source {i + 1}", ""))

    def describe(self, name: Callable[[int], str], hint: str) -> str:
        """The conflict in words: `name(i)` names part i, `hint` says what to do."""
        a, b = name(self.first), name(self.second)
        if self.first_file == self.second_file:
            text = (
                f"{self.first_file} is loaded from {a} and from {b} with different "
                f"definitions ({self.symbol} differs)"
            )
        else:
            text = (
                f"{self.symbol} is defined in {self.first_file} from {a} and differently in "
                f"{self.second_file} from {b}"
            )
        return f"{text}; {hint}" if hint else text


@dataclass(frozen=True, slots=True)
class _FileFacts:
    """What merging compares of one file: its definitions without source info."""

    normalized: bytes
    richness: int
    """How many source locations (comments) the copy carries."""
    symbols: Mapping[str, bytes]
    """Top-level name (messages, enums, services, extensions) → its normalized definition."""


def _facts(schema: Schema) -> dict[str, _FileFacts]:
    out: dict[str, _FileFacts] = {}
    for name, data in schema.files.items():
        proto = _parse_file(name, data)
        richness = len(proto.source_code_info.location)
        proto.ClearField("source_code_info")
        # Imports only decide what is visible; the definitions name their types in full.
        # (A merge may also have pointed an import at an equal file under another name.)
        for imports in ("dependency", "public_dependency", "weak_dependency"):
            proto.ClearField(imports)
        if proto.syntax == "proto2":
            proto.ClearField("syntax")
        for msg in proto.message_type:
            _normalize_message(msg)
        for ext in proto.extension:
            _normalize_field(ext)
        prefix = f"{proto.package}." if proto.package else ""
        symbols: dict[str, bytes] = {}
        for group in (proto.message_type, proto.enum_type, proto.service, proto.extension):
            for item in group:
                symbols[prefix + item.name] = item.SerializeToString(deterministic=True)
        out[name] = _FileFacts(proto.SerializeToString(deterministic=True), richness, symbols)
    return out


def _normalize_message(msg: descriptor_pb2.DescriptorProto) -> None:
    for f in (*msg.field, *msg.extension):
        _normalize_field(f)
    for nested in msg.nested_type:
        _normalize_message(nested)


def _normalize_field(f: descriptor_pb2.FieldDescriptorProto) -> None:
    """protoc writes every json_name, generated code and reflection often none: drop the
    default one."""
    if f.HasField("json_name") and f.json_name == _default_json_name(f.name):
        f.ClearField("json_name")


def _default_json_name(name: str) -> str:
    out: list[str] = []
    upper = False
    for c in name:
        if c == "_":
            upper = True
        elif upper:
            out.append(c.upper())
            upper = False
        else:
            out.append(c)
    return "".join(out)


def merge_files(parts: Sequence[tuple[int, Schema]]) -> dict[str, bytes]:
    """The files of a merge (see `SchemaCache.merge`); `parts` are (index, schema) pairs."""
    files: dict[str, bytes] = {}
    chosen: dict[str, tuple[int, _FileFacts]] = {}
    owner: dict[str, tuple[str, int]] = {}  # symbol → (file, part index)
    alias: dict[str, str] = {}
    for index, part in parts:
        facts: dict[str, _FileFacts] = part.cached(("merge-facts",), lambda p=part: _facts(p))
        for name, fact in facts.items():
            data = part.files[name]
            seen = chosen.get(name)
            if seen is not None:
                first, old = seen
                if old.normalized == fact.normalized:
                    if fact.richness > old.richness:  # the copy with comments wins
                        files[name] = data
                        chosen[name] = (first, fact)
                elif name in WELL_KNOWN_FILES:
                    files[name] = WELL_KNOWN_FILES[name]  # one copy: the runtime's
                else:
                    raise MergeConflict(
                        symbol=_first_difference(old, fact),
                        first_file=name,
                        second_file=name,
                        first=first,
                        second=index,
                    )
                continue
            if name in alias:
                continue
            target = _same_elsewhere(name, fact, owner, chosen, index)
            if target is not None:
                alias[name] = target
                continue
            files[name] = data
            chosen[name] = (index, fact)
            for symbol in fact.symbols:
                owner[symbol] = (name, index)
    if alias:
        for name, data in files.items():
            proto = _parse_file(name, data)
            if any(d in alias for d in proto.dependency):
                files[name] = _redirect(proto, alias)
    return files


def _first_difference(a: _FileFacts, b: _FileFacts) -> str:
    for symbol in sorted({*a.symbols, *b.symbols}):
        if a.symbols.get(symbol) != b.symbols.get(symbol):
            return symbol
    return "the file's options or imports"


def _same_elsewhere(
    name: str,
    fact: _FileFacts,
    owner: Mapping[str, tuple[str, int]],
    chosen: Mapping[str, tuple[int, _FileFacts]],
    index: int,
) -> str | None:
    """The earlier file that defines exactly what `name` defines (None: no clash)."""
    clashing = [s for s in fact.symbols if s in owner]
    if not clashing:
        return None
    for symbol in clashing:
        other, first = owner[symbol]
        if chosen[other][1].symbols[symbol] != fact.symbols[symbol]:
            raise MergeConflict(
                symbol=symbol, first_file=other, second_file=name, first=first, second=index
            )
    targets = {owner[s][0] for s in clashing}
    if len(clashing) == len(fact.symbols) and len(targets) == 1:
        target = targets.pop()
        if set(chosen[target][1].symbols) == set(fact.symbols):
            return target
    symbol = clashing[0]
    other, first = owner[symbol]
    raise MergeConflict(
        symbol=symbol, first_file=other, second_file=name, first=first, second=index
    )


def _redirect(proto: descriptor_pb2.FileDescriptorProto, alias: Mapping[str, str]) -> bytes:
    """The file with its imports of aliased files pointing at their earlier copies."""
    old = list(proto.dependency)
    public = {old[i] for i in proto.public_dependency}
    weak = {old[i] for i in proto.weak_dependency}
    new: list[str] = []
    for dep in old:
        target = alias.get(dep, dep)
        if target not in new:
            new.append(target)
        if dep in public:
            public.add(target)
        if dep in weak:
            weak.add(target)
    del proto.dependency[:]
    proto.dependency.extend(new)
    del proto.public_dependency[:]
    proto.public_dependency.extend(i for i, d in enumerate(new) if d in public)
    del proto.weak_dependency[:]
    proto.weak_dependency.extend(i for i, d in enumerate(new) if d in weak and d not in public)
    data: bytes = proto.SerializeToString(deterministic=True)
    return data


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


def _scan(name: str, data: bytes) -> Facts:
    try:
        return scan(data)
    except FactsError:
        raise SchemaError(f"{name}: not a valid FileDescriptorProto") from None


def _complete(files: dict[str, bytes], facts: dict[str, Facts]) -> None:
    """Add the well-known-type files a set depends on but does not include."""
    pending = list(files)
    while pending:
        name = pending.pop()
        for dep in facts[name].deps:
            if dep not in files and dep in WELL_KNOWN_FILES:
                files[dep] = WELL_KNOWN_FILES[dep]
                facts[dep] = scan(files[dep])
                pending.append(dep)


def _dependency_order(facts: Iterable[Facts]) -> list[Facts]:
    by_name = {f.name: f for f in facts}
    ordered: list[Facts] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    for root in by_name:
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, i = stack.pop()
            if i == 0:
                if state.get(name) == 2:
                    continue
                state[name] = 1
            deps = by_name[name].deps
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
