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
import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from google.protobuf import descriptor_pb2

from ..descriptors import Schema, SchemaCache, SchemaError
from .compiler import CompileError, Compiler, remove_stale_dirs

if TYPE_CHECKING:
    from .buf import BufCLI
    from .git import GitRepos

__all__ = [
    "DESCRIPTOR_SET_SUFFIXES",
    "TEMP_PREFIX",
    "FileTooLarge",
    "Limits",
    "LoadError",
    "Loader",
    "read_at_most",
    "redact",
]

DESCRIPTOR_SET_SUFFIXES = (".binpb", ".pb", ".protoset", ".desc", ".bin")
BUF_CONFIG_FILES = ("buf.yaml", "buf.work.yaml")
"""A folder holding one of these is a Buf module or workspace."""
_BUF_TREE_FILES = frozenset((*BUF_CONFIG_FILES, "buf.lock"))

_IMPORT = re.compile(rb'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)
_NAME_CHARS = re.compile(r"[A-Za-z0-9._/-]*")
_NAME_RULE = "only letters, digits, '.', '_', '-' and '/' are allowed"
_SHOWN_NAME_CHARS = 80
TEMP_PREFIX = "connectrpc-catalog-"
"""The loader's temporary folder is `TEMP_PREFIX<pid>-<random>` in the system temp folder."""
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"]*@")
_BARE_USERINFO = re.compile(r"(?<![^\s'\"(\[=,])[^\s/@:'\"]+:[^\s/@'\"]*@")
_NOT_A_SCHEMA = "is neither a .proto file nor a descriptor set"


class LoadError(Exception):
    """A source that could not be loaded; reported as `success=false` with this message."""


class FileTooLarge(Exception):
    """A file past the size it may have; `size` is its size, or None if it grew while read."""

    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


def redact(text: str) -> str:
    """`text` with the credentials of any URL in it (`https://user:pass@host`) replaced."""
    return _BARE_USERINFO.sub("***@", _URL_USERINFO.sub(r"\1***@", text))


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Caps on what one load may read, and on how long the tools it runs may take."""

    max_files: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    max_checkout_bytes: int = 512 * 1024 * 1024
    """A Git checkout (objects included) is stopped past this size."""
    git_timeout: float = 120.0
    buf_timeout: float = 120.0
    max_walk_entries: int = 100_000
    """Directory entries a folder load may look at (hidden ones included) before it stops."""
    max_walk_depth: int = 64
    """How deep below the given folder a folder load may descend."""
    max_name_chars: int = 512
    """The longest import path (file name of an upload or below a folder)."""
    max_name_part_chars: int = 128
    """The longest single folder or file name in an import path."""
    max_name_depth: int = 32
    """The most `/`-separated parts an import path may have."""


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
        from .buf import BufCLI
        from .git import GitRepos

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
        self._tmp_lock = threading.Lock()

    def _work_dir(self) -> Path:
        """Where on-disk caches go: `cache_dir`, or a temporary folder made on first use.

        Blocking (call it in a thread): making the temporary folder also removes the ones
        that catalogs which have since died (killed, crashed) left behind.
        """
        if self._cache_dir is not None:
            return self._cache_dir
        with self._tmp_lock:
            if self._tmp_dir is None:
                remove_stale_dirs(Path(tempfile.gettempdir()), TEMP_PREFIX)
                tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
                weakref.finalize(self, shutil.rmtree, tmp, ignore_errors=True)
                self._tmp_dir = tmp
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
        shown = redact(label or path)
        p = await asyncio.to_thread(Path(path).expanduser)
        kind = await asyncio.to_thread(_kind, p)
        if kind == "missing":
            raise LoadError(f"{shown}: no such file or directory on the catalog server")
        if kind == "dir":
            return await self._from_dir(p, shown)
        if kind == "proto":
            files = await asyncio.to_thread(self._read_closure, p, shown)
            return await self.from_files(files, targets=[p.name], label=shown)
        if kind == "other":
            raise ConnectError(Code.INVALID_ARGUMENT, f"{shown} {_NOT_A_SCHEMA}")
        data = await asyncio.to_thread(self._read_capped, p, shown)
        if kind == "unknown" and not await asyncio.to_thread(_looks_like_set, data):
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"{shown} {_NOT_A_SCHEMA}; give a .proto file (its name ends in .proto), a "
                "folder of them, or a serialized FileDescriptorSet",
            )
        return await self.from_descriptor_set(data, origin=shown)

    async def _from_dir(self, p: Path, shown: str) -> Schema:
        is_buf = await asyncio.to_thread(is_buf_dir, p)
        if is_buf and await asyncio.to_thread(self.buf.locate) is not None:
            from .buf import load_buf_dir

            return await load_buf_dir(self, p, label=shown)
        files = await asyncio.to_thread(self.read_tree, p, label=shown)
        if not files:
            raise LoadError(f"{shown}: no .proto files in this directory")
        if not is_buf:
            return await self.from_files(files, label=shown)
        try:
            return await self.from_files(files, label=shown)
        except LoadError as exc:
            raise LoadError(
                f"{exc}\n({shown} is a Buf module, compiled as a plain folder because the "
                "Buf CLI is not installed; install it with `npm install -g @bufbuild/buf`)"
            ) from None

    async def from_buf(self, ref: str) -> Schema:
        """A local Buf module or workspace folder, or a BSR reference, built with `buf`."""
        from .buf import load_buf_module

        return await load_buf_module(self, ref)

    async def from_git(self, spec: str) -> Schema:
        """A Git repository: `host/owner/repo[//sub/dir][@ref]` or a clone URL."""
        from .git import load_repo

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
        self,
        files: Mapping[str, bytes],
        targets: list[str] | None = None,
        *,
        label: str | None = None,
    ) -> Schema:
        """Compile .proto sources given as import path → content (all of them by default).

        Every name is checked before anything else happens (see `name_problem`); `label`
        names the folder the files come from in messages (default: they were uploaded).
        """
        if not files:
            raise ConnectError(Code.INVALID_ARGUMENT, "no .proto files were given")
        if len(files) > self.limits.max_files:
            self._check_size(files)
        self.check_names(files, label=label)
        clean = dict(files)
        self._check_size(clean)
        wanted = sorted(targets or [n for n in clean if n.endswith(".proto")])
        if not wanted:
            raise LoadError("none of the given files ends in .proto")
        if any(t not in clean for t in wanted):
            raise ConnectError(Code.INVALID_ARGUMENT, "a file to compile is not among the files")

        async def build() -> Schema:
            try:
                data = await self.compiler.compile(clean, wanted)
            except CompileError as exc:
                raise LoadError(str(exc)) from None
            return await self.from_descriptor_set(data, origin="compiled sources")

        return await self.memo("protoc:" + content_key(clean, wanted), build)

    def name_problem(self, name: str) -> str | None:
        """Why `name` is not a safe import path to hand protoc, or None when it is.

        Allowed: relative `/`-separated paths of letters, digits, `.`, `_` and `-`, with no
        empty, `.` or `..` part and no part starting with `-` or `@` (protoc would read it
        as an option or an argument file), within the length and depth limits.
        """
        lim = self.limits
        if not isinstance(name, str) or not name:
            return "it is empty"
        if len(name) > lim.max_name_chars:
            return f"it is longer than {lim.max_name_chars} characters"
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            return "it holds a control character"
        if "\\" in name:
            return "use '/' between folders, not '\\'"
        if name.startswith("/"):
            return "it starts with '/'"
        if not _NAME_CHARS.fullmatch(name):
            return _NAME_RULE
        parts = name.split("/")
        if len(parts) > lim.max_name_depth:
            return f"it is nested more than {lim.max_name_depth} folders deep"
        for part in parts:
            if not part:
                return "it has an empty folder name ('//' or a trailing '/')"
            if part in (".", ".."):
                return "'.' and '..' are not allowed"
            if part[0] in "-@":
                return "a part of it starts with '-' or '@'"
            if len(part) > lim.max_name_part_chars:
                return f"a part of it is longer than {lim.max_name_part_chars} characters"
        return None

    def check_names(self, names: Iterable[str], *, label: str | None = None) -> None:
        """INVALID_ARGUMENT unless every name is a safe import path and no two clash.

        Two names clash when they differ only in case, or when one is a file and the other
        uses it as a folder (`a.proto` and `a.proto/b.proto`).
        """
        by_key: dict[str, str] = {}
        for name in names:
            problem = self.name_problem(name)
            if problem is not None:
                raise _bad_name(label, name, problem)
            other = by_key.setdefault(name.lower(), name)
            if other != name:
                raise _clashing_names(label, other, name, "they differ only in case")
        for name in by_key.values():
            parts = name.split("/")
            for i in range(1, len(parts)):
                clash = by_key.get("/".join(parts[:i]).lower())
                if clash is not None:
                    raise _clashing_names(
                        label, clash, name, "the first is a file, the second uses it as a folder"
                    )

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

    def _too_large(self, what: str, size: int | None) -> ConnectError:
        limit = self.limits.max_bytes
        told = f"is {size} bytes" if size is not None else f"grew past {limit} bytes while read"
        return ConnectError(Code.RESOURCE_EXHAUSTED, f"{what} {told}; the limit is {limit} bytes")

    def _read_capped(self, path: Path, shown: str) -> bytes:
        """A whole file of at most `max_bytes`, refused before reading when larger."""
        try:
            return read_at_most(path, self.limits.max_bytes)
        except FileTooLarge as exc:
            raise self._too_large(shown, exc.size) from None
        except OSError as exc:
            raise _unreadable(shown, exc) from None

    def read_tree(
        self, root: Path, *, buf_files: bool = False, label: str | None = None
    ) -> dict[str, bytes]:
        """Every .proto below `root` (and Buf's config files, if asked) by relative path.

        Hidden folders (`.git`, ...) are skipped; symlinked folders are not followed. The
        walk, the number of files and their total size are bounded (see `Limits`) before
        anything is read; `label` names `root` in messages (default: the path).
        """
        shown = label or str(root)

        def wanted(name: str) -> bool:
            return name.endswith(".proto") or (buf_files and name in _BUF_TREE_FILES)

        sized: list[tuple[str, Path, int]] = []
        for p in sorted(self._walk(root, shown, wanted)):
            try:
                st = p.stat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                sized.append((p.relative_to(root).as_posix(), p, st.st_size))
        limit = self.limits.max_bytes
        if sum(size for _, _, size in sized) > limit:
            rel, _, size = max(sized, key=lambda item: item[2])
            if size > limit:
                raise self._too_large(f"{shown}: {rel}", size)
            raise self._too_large(f"{shown}: the files below it together", None)
        files: dict[str, bytes] = {}
        budget = limit
        for rel, p, _ in sized:
            try:
                data = read_at_most(p, budget)
            except FileTooLarge:
                raise self._too_large(f"{shown}: the files below it together", None) from None
            except OSError:
                continue
            budget -= len(data)
            files[rel] = data
        return files

    def _walk(self, root: Path, shown: str, wanted: Callable[[str], bool]) -> list[Path]:
        """The wanted files below `root`, stopping early past the walk and file limits."""
        lim = self.limits
        hint = "point at the folder that holds your .proto files"
        found: list[Path] = []
        entries = 0
        stack: list[tuple[str, int]] = [(str(root), 0)]
        while stack:
            folder, depth = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    for entry in listing:
                        entries += 1
                        if entries > lim.max_walk_entries:
                            raise ConnectError(
                                Code.RESOURCE_EXHAUSTED,
                                f"the folder {shown} holds more than {lim.max_walk_entries} "
                                f"entries; {hint}",
                            )
                        if entry.name.startswith("."):
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            if depth >= lim.max_walk_depth:
                                raise ConnectError(
                                    Code.RESOURCE_EXHAUSTED,
                                    f"the folder {shown} has folders nested more than "
                                    f"{lim.max_walk_depth} deep; {hint}",
                                )
                            stack.append((entry.path, depth + 1))
                        elif wanted(entry.name):
                            found.append(Path(entry.path))
                            if len(found) > lim.max_files:
                                raise ConnectError(
                                    Code.RESOURCE_EXHAUSTED,
                                    f"{shown}: more than {lim.max_files} .proto files below "
                                    "the folder; point at a smaller folder",
                                )
            except OSError:
                continue  # an unreadable folder is skipped, as os.walk does
        return found

    def _read_closure(self, file: Path, shown: str) -> dict[str, bytes]:
        """The file and every file it imports that exists below its folder."""
        problem = self.name_problem(file.name)
        if problem is not None:
            raise _bad_name(shown, file.name, problem)
        root = file.parent
        files: dict[str, bytes] = {}
        budget = self.limits.max_bytes
        pending = [file.name]
        while pending:
            name = pending.pop()
            if name in files or self.name_problem(name) is not None:
                continue  # an import that is no safe path is reported by protoc as missing
            if len(files) >= self.limits.max_files:
                raise ConnectError(
                    Code.RESOURCE_EXHAUSTED,
                    f"{shown} imports more than {self.limits.max_files} files; the limit is "
                    f"{self.limits.max_files} files per load",
                )
            try:
                data = read_at_most(root / name, budget)
            except FileTooLarge as exc:
                if name == file.name:
                    raise self._too_large(shown, exc.size) from None
                raise self._too_large(f"{shown} with the files it imports", None) from None
            except OSError as exc:
                if name == file.name:
                    raise _unreadable(shown, exc) from None
                continue  # a well-known type, or missing: protoc says which
            files[name] = data
            budget -= len(data)
            pending.extend(m.decode(errors="replace") for m in _IMPORT.findall(data))
        return files


def read_at_most(path: Path, limit: int) -> bytes:
    """A regular file's content, refused (FileTooLarge) when it is larger than `limit`.

    The size is checked before reading, and at most `limit + 1` bytes are ever read, so a
    file that grows meanwhile is bounded too. Anything but a regular file (a FIFO, a
    device) is an OSError, as is a file that cannot be opened. Blocking: run it in a thread.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if st.st_size > limit:
            raise FileTooLarge(st.st_size)
        parts: list[bytes] = []
        size = 0
        step = min(limit, st.st_size) + 1
        while size <= limit:
            chunk = os.read(fd, min(step, limit + 1 - size))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            step = 1 << 20  # a short read, or the file grew: go on in bounded steps
    finally:
        os.close(fd)
    if size > limit:
        raise FileTooLarge(None)
    return b"".join(parts)


def is_buf_dir(p: Path) -> bool:
    """Whether a folder is a Buf module or workspace (holds buf.yaml or buf.work.yaml)."""
    return any((p / name).is_file() for name in BUF_CONFIG_FILES)


def _retrieve(task: asyncio.Task[Schema]) -> None:
    """Mark a shared build's failure as seen, even when every waiter went away."""
    if not task.cancelled():
        task.exception()


def _kind(p: Path) -> str:
    """dir, proto, set (by its suffix), unknown (a file to sniff), other, or missing."""
    try:
        mode = p.stat().st_mode
    except OSError:
        return "missing"
    if stat.S_ISDIR(mode):
        return "dir"
    if not stat.S_ISREG(mode):
        return "other"
    if p.suffix in DESCRIPTOR_SET_SUFFIXES:
        return "set"
    if p.suffix == ".proto":
        return "proto"
    return "unknown"


def _looks_like_set(data: bytes) -> bool:
    """Whether a file's bytes parse as a FileDescriptorSet of named files."""
    # A FileDescriptorSet starts with field 1, wire type 2 (0x0a); .proto text never does.
    if data[:1] != b"\x0a":
        return False
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    except Exception:  # DecodeError, or a runtime-specific error type
        return False
    return bool(fds.file) and all(f.name for f in fds.file)


def _show(name: object) -> str:
    """A user-given name for a message: repr'd (control characters escaped), truncated."""
    text = str(name)
    if len(text) > _SHOWN_NAME_CHARS:
        text = text[:_SHOWN_NAME_CHARS] + "…"
    return repr(text)


def _bad_name(label: str | None, name: str, problem: str) -> ConnectError:
    if label is None:
        return ConnectError(
            Code.INVALID_ARGUMENT,
            f"file name {_show(name)} is refused: {problem}; each name must be a relative "
            f"path inside the upload, like acme/v1/api.proto, made of letters, digits, "
            "'.', '_', '-' and '/'",
        )
    return ConnectError(
        Code.INVALID_ARGUMENT,
        f"{label}: the file {_show(name)} is refused: {problem}; rename it, using only "
        "letters, digits, '.', '_', '-' and '/'",
    )


def _clashing_names(label: str | None, first: str, second: str, problem: str) -> ConnectError:
    where = "file names" if label is None else f"{label}: the files"
    return ConnectError(
        Code.INVALID_ARGUMENT,
        f"{where} {_show(first)} and {_show(second)} clash: {problem}; rename one of them",
    )


def _unreadable(shown: str, exc: OSError) -> LoadError:
    reason = os.strerror(exc.errno) if exc.errno else "it could not be read"
    if exc.errno == errno.EINVAL:
        reason = "not a regular file"
    return LoadError(f"{shown}: cannot be read on the catalog server ({reason.lower()})")


def content_key(files: Mapping[str, bytes], targets: list[str]) -> str:
    """A hash of file names, contents and targets: equal keys, equal compile results."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(files[name]).digest())
    h.update("\0".join(targets).encode())
    return h.hexdigest()
