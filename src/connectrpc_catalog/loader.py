"""Turning a LoadProtos source into a shared `Schema`.

Every source ends as a serialized FileDescriptorSet handed to the `SchemaCache`;
sources that need protoc go through the `Compiler`, and their results are cached by the
content of the files, so loading the same files again never compiles twice. Buf modules
are cached by the content of their files too, Git repositories by URL + commit.

The source-specific work lives in `reflection`, `bufcli` and `gitrepo`; those modules
import this one, so they are imported lazily here.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from .compiler import CompileError, Compiler
from .descriptors import Schema, SchemaCache, SchemaError

if TYPE_CHECKING:
    from .bufcli import BufCLI
    from .gitrepo import GitRepos

__all__ = ["DESCRIPTOR_SET_SUFFIXES", "Limits", "LoadError", "Loader"]

DESCRIPTOR_SET_SUFFIXES = (".binpb", ".pb", ".protoset", ".desc", ".bin")
BUF_CONFIG_FILES = ("buf.yaml", "buf.work.yaml")
"""A folder holding one of these is a Buf module or workspace."""
_BUF_TREE_FILES = frozenset((*BUF_CONFIG_FILES, "buf.lock"))

_IMPORT = re.compile(rb'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)


class LoadError(Exception):
    """A source that could not be loaded; reported as `success=false` with this message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Caps on what one load may read, and on how long the tools it runs may take."""

    max_files: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    max_checkout_bytes: int = 512 * 1024 * 1024
    """A Git checkout (objects included) is stopped past this size."""
    git_timeout: float = 120.0
    buf_timeout: float = 120.0


class Loader:
    """Loads sources into schemas, sharing compiled results across sessions."""

    def __init__(
        self,
        cache: SchemaCache,
        compiler: Compiler,
        *,
        limits: Limits | None = None,
        max_compiled: int = 128,
        buf: str | None = None,
        git_base_url: str = "",
        cache_dir: str | os.PathLike[str] | None = None,
        tls_roots: bytes | None = None,
    ) -> None:
        """`buf`: path of the Buf CLI (default: $CONNECTRPC_CATALOG_BUF, then `buf` on PATH).

        `git_base_url` replaces `https://` in front of short repository names
        (`github.com/o/r`); `cache_dir` holds Git checkouts (default: a temporary folder
        removed with the loader); `tls_roots` are PEM CA certificates trusted when
        reflecting over TLS (default: the system's).
        """
        from .bufcli import BufCLI
        from .gitrepo import GitRepos

        self.cache = cache
        self.compiler = compiler
        self.limits = limits or Limits()
        self.git_base_url = git_base_url or "https://"
        self.tls_roots = tls_roots
        self.buf: BufCLI = BufCLI(buf, timeout=self.limits.buf_timeout)
        self.git: GitRepos = GitRepos(self._work_dir, limits=self.limits)
        self._cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._tmp_dir: Path | None = None
        self._compiled: OrderedDict[str, Schema] = OrderedDict()
        self._max_compiled = max_compiled
        self._inflight: dict[str, asyncio.Task[Schema]] = {}
        self._lock = threading.Lock()

    def _work_dir(self) -> Path:
        """Where on-disk caches go: `cache_dir`, or a temporary folder made on first use."""
        if self._cache_dir is not None:
            return self._cache_dir
        if self._tmp_dir is None:
            self._tmp_dir = Path(tempfile.mkdtemp(prefix="connectrpc-catalog-"))
            weakref.finalize(self, shutil.rmtree, self._tmp_dir, ignore_errors=True)
        return self._tmp_dir

    async def close(self) -> None:
        """Remove the temporary cache folder, if the loader made one."""
        tmp, self._tmp_dir = self._tmp_dir, None
        if tmp is not None:
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def from_path(self, path: str, *, label: str | None = None) -> Schema:
        """A directory of .proto files, one .proto file, or a descriptor-set file.

        A directory holding `buf.yaml` (or `buf.work.yaml`) is built with the Buf CLI when
        it is installed, and compiled as a plain folder otherwise. `label` names the path
        in error messages (default: the path itself).
        """
        if not path.strip():
            raise ConnectError(Code.INVALID_ARGUMENT, "proto_path is empty")
        shown = label or path
        p = await asyncio.to_thread(Path(path).expanduser)
        kind = await asyncio.to_thread(_kind, p)
        if kind == "missing":
            raise LoadError(f"{shown}: no such file or directory on the catalog server")
        if kind == "set":
            data = await asyncio.to_thread(self._read_capped, p)
            return await self.from_descriptor_set(data, origin=shown)
        if kind == "dir":
            is_buf = await asyncio.to_thread(is_buf_dir, p)
            if is_buf and await asyncio.to_thread(self.buf.locate) is not None:
                from .bufcli import load_buf_dir

                return await load_buf_dir(self, p, label=shown)
            files = await asyncio.to_thread(self.read_tree, p)
            if not files:
                raise LoadError(f"{shown}: no .proto files in this directory")
            if not is_buf:
                return await self.from_files(files)
            try:
                return await self.from_files(files)
            except LoadError as exc:
                raise LoadError(
                    f"{exc}\n({shown} is a Buf module, compiled as a plain folder because the "
                    "Buf CLI is not installed; install it with `npm install -g @bufbuild/buf`)"
                ) from None
        files = await asyncio.to_thread(self._read_closure, p)
        return await self.from_files(files, targets=[p.name])

    async def from_buf(self, ref: str) -> Schema:
        """A local Buf module or workspace folder, or a BSR reference, built with `buf`."""
        from .bufcli import load_buf_module

        return await load_buf_module(self, ref)

    async def from_git(self, spec: str) -> Schema:
        """A Git repository: `host/owner/repo[//sub/dir][@ref]` or a clone URL."""
        from .gitrepo import load_repo

        return await load_repo(self, spec)

    async def from_reflection(
        self,
        endpoint: str,
        *,
        use_tls: bool = False,
        server_name: str = "",
        timeout_seconds: float | None = None,
    ) -> Schema:
        """The schemas a server exposes through gRPC server reflection (v1, else v1alpha).

        TLS is used when `use_tls` is set or the port is 443; the timeout defaults to 10 s.
        """
        from .reflection import load_reflection

        return await load_reflection(
            self,
            endpoint,
            use_tls=use_tls,
            server_name=server_name,
            timeout_seconds=timeout_seconds,
        )

    async def memo(self, key: str, build: Callable[[], Awaitable[Schema]]) -> Schema:
        """The schema cached under `key`, or `build()`'s result, built once at a time.

        Concurrent callers with the same key share one build; a caller that goes away
        does not cancel it for the others. Least recently used keys are evicted.
        """
        with self._lock:
            hit = self._compiled.get(key)
            if hit is not None:
                self._compiled.move_to_end(key)
                return hit
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._build(key, build))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _build(self, key: str, build: Callable[[], Awaitable[Schema]]) -> Schema:
        try:
            schema = await build()
        finally:
            self._inflight.pop(key, None)
        with self._lock:
            self._compiled[key] = schema
            while len(self._compiled) > self._max_compiled:
                self._compiled.popitem(last=False)
        return schema

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

        async def build() -> Schema:
            try:
                data = await self.compiler.compile(clean, wanted)
            except CompileError as exc:
                raise LoadError(str(exc)) from None
            return await self.from_descriptor_set(data, origin="compiled sources")

        return await self.memo("protoc:" + content_key(clean, wanted), build)

    async def from_descriptor_set(self, data: bytes, *, origin: str = "descriptor set") -> Schema:
        """Load a serialized FileDescriptorSet."""
        if len(data) > self.limits.max_bytes:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"{origin} is {len(data)} bytes; the limit is {self.limits.max_bytes} bytes",
            )
        try:
            schema = await asyncio.to_thread(self.cache.from_set, data)
        except SchemaError as exc:
            raise LoadError(f"{origin}: {exc}") from None
        if not schema.files:
            raise LoadError(f"{origin}: not a serialized FileDescriptorSet (it holds no files)")
        return schema

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

    def read_tree(self, root: Path, *, buf_files: bool = False) -> dict[str, bytes]:
        """Every .proto below `root` (and Buf's config files, if asked) by relative path.

        Hidden folders (`.git`, ...) are skipped; symlinked folders are not followed.
        """
        found: list[Path] = []
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found.extend(
                Path(folder, n)
                for n in names
                if not n.startswith(".")
                and (n.endswith(".proto") or (buf_files and n in _BUF_TREE_FILES))
            )
            if len(found) > self.limits.max_files:
                raise ConnectError(
                    Code.RESOURCE_EXHAUSTED,
                    f"more than {self.limits.max_files} .proto files below the folder; "
                    "point at a smaller folder",
                )
        files: dict[str, bytes] = {}
        total = 0
        for p in sorted(found):
            if not p.is_file():
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


def is_buf_dir(p: Path) -> bool:
    """Whether a folder is a Buf module or workspace (holds buf.yaml or buf.work.yaml)."""
    return any((p / name).is_file() for name in BUF_CONFIG_FILES)


def _retrieve(task: asyncio.Task[Schema]) -> None:
    """Mark a shared build's failure as seen, even when every waiter went away."""
    if not task.cancelled():
        task.exception()


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


def content_key(files: Mapping[str, bytes], targets: list[str]) -> str:
    """A hash of file names, contents and targets: equal keys, equal compile results."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(files[name]).digest())
    h.update("\0".join(targets).encode())
    return h.hexdigest()
