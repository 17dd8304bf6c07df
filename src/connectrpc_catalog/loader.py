"""Turning a LoadProtos source into a shared `Schema`.

Every source ends as a serialized FileDescriptorSet handed to the `SchemaCache`;
sources that need protoc go through the `Compiler`, and their results are cached by the
content of the files, so loading the same files again never compiles twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from .compiler import CompileError, Compiler
from .descriptors import Schema, SchemaCache, SchemaError

__all__ = ["DESCRIPTOR_SET_SUFFIXES", "Limits", "LoadError", "Loader"]

DESCRIPTOR_SET_SUFFIXES = (".binpb", ".pb", ".protoset", ".desc", ".bin")

_IMPORT = re.compile(rb'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)


class LoadError(Exception):
    """A source that could not be loaded; reported as `success=false` with this message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Caps on what one load may read."""

    max_files: int = 10_000
    max_bytes: int = 64 * 1024 * 1024


class Loader:
    """Loads sources into schemas, sharing compiled results across sessions."""

    def __init__(
        self,
        cache: SchemaCache,
        compiler: Compiler,
        *,
        limits: Limits | None = None,
        max_compiled: int = 128,
    ) -> None:
        self.cache = cache
        self.compiler = compiler
        self.limits = limits or Limits()
        self._compiled: OrderedDict[str, Schema] = OrderedDict()
        self._max_compiled = max_compiled
        self._lock = threading.Lock()

    async def from_path(self, path: str) -> Schema:
        """A directory of .proto files, one .proto file, or a descriptor-set file."""
        if not path.strip():
            raise ConnectError(Code.INVALID_ARGUMENT, "proto_path is empty")
        p = await asyncio.to_thread(Path(path).expanduser)
        kind = await asyncio.to_thread(_kind, p)
        if kind == "missing":
            raise LoadError(f"{path}: no such file or directory on the catalog server")
        if kind == "set":
            data = await asyncio.to_thread(self._read_capped, p)
            return await self.from_descriptor_set(data, origin=str(p))
        if kind == "dir":
            files = await asyncio.to_thread(self._read_tree, p)
            if not files:
                raise LoadError(f"{path}: no .proto files in this directory")
            return await self.from_files(files)
        files = await asyncio.to_thread(self._read_closure, p)
        return await self.from_files(files, targets=[p.name])

    async def from_files(
        self, files: Mapping[str, bytes], targets: list[str] | None = None
    ) -> Schema:
        """Compile .proto sources given as import path → content (all of them by default)."""
        clean = {_check_relative(name): data for name, data in files.items()}
        if not clean:
            raise ConnectError(Code.INVALID_ARGUMENT, "no .proto files were given")
        self._check_size(clean)
        wanted = sorted(targets or [n for n in clean if n.endswith(".proto")])
        if not wanted:
            raise LoadError("none of the given files ends in .proto")
        key = _content_key(clean, wanted)
        with self._lock:
            hit = self._compiled.get(key)
            if hit is not None:
                self._compiled.move_to_end(key)
                return hit
        try:
            data = await self.compiler.compile(clean, wanted)
        except CompileError as exc:
            raise LoadError(str(exc)) from None
        schema = await self.from_descriptor_set(data, origin="compiled sources")
        with self._lock:
            self._compiled[key] = schema
            while len(self._compiled) > self._max_compiled:
                self._compiled.popitem(last=False)
        return schema

    async def from_descriptor_set(self, data: bytes, *, origin: str = "descriptor set") -> Schema:
        """Load a serialized FileDescriptorSet."""
        if len(data) > self.limits.max_bytes:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"{origin} is {len(data)} bytes; the limit is {self.limits.max_bytes} bytes",
            )
        try:
            return await asyncio.to_thread(self.cache.from_set, data)
        except SchemaError as exc:
            raise LoadError(f"{origin}: {exc}") from None

    def _check_size(self, files: Mapping[str, bytes]) -> None:
        total = sum(len(d) for d in files.values())
        if len(files) > self.limits.max_files or total > self.limits.max_bytes:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"{len(files)} files, {total} bytes: past the limit of "
                f"{self.limits.max_files} files or {self.limits.max_bytes} bytes per load",
            )

    def _read_capped(self, path: Path) -> bytes:
        size = path.stat().st_size
        if size > self.limits.max_bytes:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"{path} is {size} bytes; the limit is {self.limits.max_bytes} bytes",
            )
        return path.read_bytes()

    def _read_tree(self, root: Path) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        total = 0
        for p in sorted(root.rglob("*.proto")):
            if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
                continue
            data = p.read_bytes()
            total += len(data)
            files[p.relative_to(root).as_posix()] = data
            if len(files) > self.limits.max_files or total > self.limits.max_bytes:
                self._check_size(files)
        return files

    def _read_closure(self, file: Path) -> dict[str, bytes]:
        """The file and every file it imports that exists below its folder."""
        root = file.parent
        files: dict[str, bytes] = {}
        pending = [file.name]
        while pending:
            name = pending.pop()
            if name in files:
                continue
            p = root / name
            if not p.is_file():
                continue  # a well-known type, or missing: protoc says which
            files[name] = p.read_bytes()
            self._check_size(files)
            pending.extend(m.decode(errors="replace") for m in _IMPORT.findall(files[name]))
        return files


def _kind(p: Path) -> str:
    if p.is_dir():
        return "dir"
    if not p.is_file():
        return "missing"
    if p.suffix in DESCRIPTOR_SET_SUFFIXES:
        return "set"
    if p.suffix == ".proto":
        return "proto"
    with p.open("rb") as f:
        head = f.read(1)
    # A FileDescriptorSet starts with field 1, wire type 2 (0x0a); .proto text never does.
    return "set" if head == b"\x0a" else "proto"


def _check_relative(name: str) -> str:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or not posix.parts:
        raise ConnectError(
            Code.INVALID_ARGUMENT,
            f"file name {name!r} must be a relative path inside the upload (no '..', no leading /)",
        )
    return posix.as_posix()


def _content_key(files: Mapping[str, bytes], targets: list[str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(files[name]).digest())
    h.update("\0".join(targets).encode())
    return h.hexdigest()
