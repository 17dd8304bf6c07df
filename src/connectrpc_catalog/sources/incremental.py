"""Incremental compiles: files compiled before are not compiled again.

A compiled file (its FileDescriptorProto) depends on its own text and on the compiled
files it imports, nothing else. So each compiled file is kept under a key made of its
name, the hash of its text and the keys of its imports (recursively); the imports of a
text are known from its last compile. When a folder is loaded again with one file
edited, every file whose key is known and that the files to compile import is handed
to protoc as it is (`--descriptor_set_in`), and only the edited file and the files that import it
(transitively: their keys change with it) are compiled from source. Added files are
compiled; a deleted file makes its importers compile again (and fail as protoc would).

What protoc checks across files that do not import each other (two files defining one
name) is checked again when the `Schema`'s pool is built from all the files.

Shared by every load (sessions and the base alike); bounded in bytes, least recently
used evicted. Blocking methods (hashing, walking the imports): call them in a thread.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..filefacts import Facts, import_names, without_source_info
from .compiler import Compiled

__all__ = ["FileMemo", "Kept", "Plan"]


class Kept:
    """One compiled file as kept: its bytes, facts, and (once asked) its bytes without
    source info, which is what protoc is given (a third of the size, parsed faster)."""

    __slots__ = ("_bare", "data", "facts", "size")

    def __init__(self, data: bytes, facts: Facts, bare: bytes | None = None) -> None:
        self.data = data
        self.facts = facts
        self._bare = bare
        self.size = len(data) + (len(bare) if bare is not None and bare is not data else 0)
        """What it counts against the memo's bytes (both copies, when both are kept)."""

    @property
    def bare(self) -> bytes:
        """The file without its source info (computed once)."""
        if self._bare is None:
            self._bare = without_source_info(self.data)
        return self._bare

    @property
    def stripped(self) -> bytes | None:
        """`bare` if it was computed, else None."""
        return self._bare


@dataclass(frozen=True, slots=True)
class Plan:
    """What a load must compile: the files to give protoc as sources (and compile: all
    `.proto` among them), and the compiled files to reuse."""

    sources: dict[str, bytes]
    targets: list[str]
    reuse: dict[str, Kept]
    digests: dict[str, bytes]

    def given(self) -> dict[str, bytes]:
        """The reused files the sources import (transitively), as protoc is given them
        (blocking: strips source info where the worker did not). An import the sources'
        `import` lines hide from `import_names` makes protoc fail, and the load is then
        compiled whole: never a wrong result."""
        pending = [name for data in self.sources.values() for name in import_names(data)]
        given: dict[str, bytes] = {}
        while pending:
            name = pending.pop()
            kept = self.reuse.get(name)
            if kept is None or name in given:
                continue
            given[name] = kept.bare
            pending.extend(kept.facts.deps)
        return given


class FileMemo:
    """Compiled files by name, text and imports; see the module's text."""

    def __init__(self, max_bytes: int = 256 << 20, max_texts: int = 200_000) -> None:
        self._max_bytes = max_bytes
        self._max_texts = max_texts
        self._imports: OrderedDict[tuple[str, bytes], tuple[str, ...]] = OrderedDict()
        """(name, text hash) → the imports of that text (from its last compile)."""
        self._compiled: OrderedDict[bytes, Kept] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.reused = 0
        """Files taken from the memo instead of compiled (tests and benchmarks read it)."""

    def plan(self, files: Mapping[str, bytes], targets: list[str]) -> Plan:
        """Split a load into what to compile and what to reuse (blocking)."""
        digests = {name: hashlib.sha256(data).digest() for name, data in files.items()}
        with self._lock:
            keys = self._keys(files, digests)
            reuse: dict[str, Kept] = {}
            for name, key in keys.items():
                hit = self._compiled.get(key) if key is not None else None
                if hit is not None and key is not None:
                    self._compiled.move_to_end(key)
                    reuse[name] = hit
            self.reused += len(reuse)
        sources = {n: d for n, d in files.items() if n not in reuse}
        # Every source is compiled (not only the targets: a non-target may be imported by
        # a target protoc is not given now); a compile that fails is redone whole.
        compile = sorted(n for n in sources if n.endswith(".proto"))
        return Plan(sources, compile if reuse else list(targets), reuse, digests)

    def _keys(
        self, files: Mapping[str, bytes], digests: dict[str, bytes]
    ) -> dict[str, bytes | None]:
        """Each file's key, None where an import's text was never compiled (or a cycle)."""
        keys: dict[str, bytes | None] = {}
        for root in files:
            stack: list[tuple[str, bool]] = [(root, False)]
            visiting: set[str] = set()
            while stack:
                name, ready = stack.pop()
                if name in keys:
                    continue
                deps = self._imports.get((name, digests[name]))
                if deps is None:
                    keys[name] = None
                    continue
                local = [d for d in deps if d in files]
                if not ready:
                    if name in visiting:  # an import cycle across loads: compile, protoc tells
                        keys[name] = None
                        continue
                    visiting.add(name)
                    stack.append((name, True))
                    stack.extend((d, False) for d in local if d not in keys)
                    continue
                keys[name] = _key(name, digests[name], deps, files, keys)
        return keys

    def close_over(
        self, targets: Iterable[str], compiled: Compiled, reuse: Mapping[str, Kept]
    ) -> Compiled | None:
        """The targets and all they import, from this compile, the reused files and the
        kept well-known types; None when one is missing (compile it all then)."""
        files: dict[str, bytes] = {}
        facts: dict[str, Facts] = {}
        bare: dict[str, bytes] = {}
        pending = list(targets)
        while pending:
            name = pending.pop()
            if name in files:
                continue
            if name in compiled.files:
                files[name], facts[name] = compiled.files[name], compiled.facts[name]
                if name in compiled.bare:
                    bare[name] = compiled.bare[name]
            else:
                kept = reuse.get(name) or self._external(name)
                if kept is None:
                    return None
                files[name], facts[name] = kept.data, kept.facts
                if kept.stripped is not None:
                    bare[name] = kept.stripped
            pending.extend(facts[name].deps)
        return Compiled(files, facts, compiled.compiled, bare)

    def _external(self, name: str) -> Kept | None:
        with self._lock:
            return self._compiled.get(_external_key(name))

    def store(
        self, files: Mapping[str, bytes], digests: Mapping[str, bytes], result: Compiled
    ) -> None:
        """Keep the files a compile produced (blocking)."""
        with self._lock:
            for name in result.compiled:
                if name in files:
                    self._remember(self._imports, (name, digests[name]), result.facts[name].deps)
            while len(self._imports) > self._max_texts:
                self._imports.popitem(last=False)
            keys = self._keys(files, dict(digests))
            for name in result.compiled:
                key = keys.get(name) if name in files else _external_key(name)
                if key is not None and key not in self._compiled:
                    kept = Kept(result.files[name], result.facts[name], result.bare.get(name))
                    self._compiled[key] = kept
                    self._bytes += kept.size
            while self._bytes > self._max_bytes and self._compiled:
                _, kept = self._compiled.popitem(last=False)
                self._bytes -= kept.size

    @staticmethod
    def _remember(
        table: OrderedDict[tuple[str, bytes], tuple[str, ...]],
        key: tuple[str, bytes],
        deps: tuple[str, ...],
    ) -> None:
        table[key] = deps
        table.move_to_end(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._compiled)


def _key(
    name: str,
    digest: bytes,
    deps: tuple[str, ...],
    files: Mapping[str, bytes],
    keys: Mapping[str, bytes | None],
) -> bytes | None:
    h = hashlib.sha256(b"F\0" + name.encode() + b"\0" + digest)
    for dep in deps:
        key = keys.get(dep) if dep in files else _external_key(dep)
        if key is None:
            return None
        h.update(key)
    return h.digest()


def _external_key(name: str) -> bytes:
    """A file protoc found outside the load: the well-known types it ships."""
    return hashlib.sha256(b"W\0" + name.encode()).digest()
