"""What every source shares: limits, the typed errors, the `Source` Protocol, the
`Context` a source is handed (caches, compiler, settings, work folder), the
content-addressed memo, and the rules for safe file names.

Errors: a source that cannot be loaded raises `LoadError` (the API answers
`success=false`); a request the catalog refuses raises a `RequestError` subclass that
carries its code (`SourceError`, `LimitError`, `UnreachableError`, `SetupError`). None of
it knows connectrpc: `api/errors.py` maps every `RequestError` to a Connect error.

This is the bottom of `sources/`: every source module imports it, and it imports no
source module and never the dispatch table (`connectrpc_catalog.loading`).
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
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..descriptors import Schema, SchemaCache
from ..problems import Code, RequestError
from .compiler import Compiler
from .incremental import FileMemo
from .run import remove_stale_dirs

__all__ = [
    "TEMP_PREFIX",
    "Context",
    "Given",
    "LimitError",
    "Limits",
    "LoadError",
    "Memo",
    "RequestError",
    "SetupError",
    "Source",
    "SourceError",
    "UnreachableError",
    "check_names",
    "check_size",
    "content_key",
    "given_text",
    "name_problem",
    "redact",
    "too_large",
]

_NAME_CHARS = re.compile(r"[A-Za-z0-9._/-]*")
_NAME_RULE = "only letters, digits, '.', '_', '-' and '/' are allowed"
_SHOWN_NAME_CHARS = 80
TEMP_PREFIX = "connectrpc-catalog-"
"""The temporary work folder is `TEMP_PREFIX<pid>-<random>` in the system temp folder."""
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"]*@")
_BARE_USERINFO = re.compile(r"(?<![^\s'\"(\[=,])[^\s/@:'\"]+:[^\s/@'\"]*@")


class LoadError(Exception):
    """A source that could not be loaded (missing, does not compile, a server that fails
    or refuses); reported as `success=false` with this message."""


class SourceError(RequestError):
    """A source given in a form that cannot be used (empty, an address or repository that
    does not parse, a refused file name, a file that is no schema): INVALID_ARGUMENT."""

    code = Code.INVALID_ARGUMENT


class LimitError(RequestError):
    """A load past one of the `Limits` (files, bytes, walk, checkout size):
    RESOURCE_EXHAUSTED."""

    code = Code.RESOURCE_EXHAUSTED


class UnreachableError(RequestError):
    """A remote the source needs (a Git host, the Buf Schema Registry) could not be
    reached; trying again may work: UNAVAILABLE."""

    code = Code.UNAVAILABLE


class SetupError(RequestError):
    """The catalog server lacks what the source needs (the Buf CLI, git) or is set up
    wrongly for it (its Git base URL): FAILED_PRECONDITION."""

    code = Code.FAILED_PRECONDITION


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Given:
    """A source as a request or a start-up flag gives it: the value, and how to reach it.

    `value` is text for most sources, bytes for an uploaded descriptor set, and import
    path → content for uploaded files. The rest matters to sources that dial a server.
    """

    value: str | bytes | Mapping[str, str]
    use_tls: bool = False
    server_name: str = ""
    timeout: float | None = None
    """Seconds; None for the source's default."""
    import_paths: tuple[str, ...] = ()
    """More import roots on the server's disk (`importPaths`), searched after the source's
    own folder."""
    read_roots: tuple[str, ...] | None = None
    """The folders the caller may read (the access policy's, groups included), which bound
    the search for an import root; None: only `Context.proto_roots` bound it."""
    dial: str | None = None
    """The address the access policy checked for the source's host, which the source must
    connect to instead of resolving the name again; None: resolve it."""


class Source(Protocol):
    """One kind of source: a module under `sources/` defining this function.

    It returns the shared `Schema`, raises `LoadError` when the source cannot be loaded
    (reported as `success=false`), and a `RequestError` when the request is refused.
    """

    async def load(self, ctx: Context, given: Given, /) -> Schema: ...


def given_text(given: Given, field: str) -> str:
    """The given value as text; SourceError naming `field` when it is not."""
    if isinstance(given.value, str):
        return given.value
    raise SourceError(f"{field} must be a string", field=field)


class Memo:
    """Schemas by content key, each built once at a time; least recently used evicted.

    Concurrent callers with the same key share one build; a caller that goes away does
    not cancel it for the others.
    """

    def __init__(self, max_entries: int = 128) -> None:
        self._done: OrderedDict[str, Schema] = OrderedDict()
        self._max = max_entries
        self.hits = 0
        """How many loads were answered from the memo (for metrics)."""
        self._inflight: dict[str, asyncio.Task[Schema]] = {}
        self._lock = threading.Lock()

    async def get(self, key: str, build: Callable[[], Awaitable[Schema]]) -> Schema:
        """The schema cached under `key`, or `build()`'s result."""
        with self._lock:
            hit = self._done.get(key)
            if hit is not None:
                self._done.move_to_end(key)
                self.hits += 1
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
            self._done[key] = schema
            while len(self._done) > self._max:
                self._done.popitem(last=False)
        return schema


def _retrieve(task: asyncio.Task[Schema]) -> None:
    """Mark a shared build's failure as seen, even when every waiter went away."""
    if not task.cancelled():
        task.exception()


class Context:
    """What every source is handed: the schema cache, the compiler, limits, settings,
    the memo of built schemas, a work folder, and counts of the tools it ran."""

    __slots__ = (
        "__weakref__",
        "_cache_dir",
        "_tmp_dir",
        "_tmp_lock",
        "buf",
        "cache",
        "compiled",
        "compiler",
        "git_base_url",
        "import_paths",
        "limits",
        "memo",
        "proto_roots",
        "runs",
        "tls_roots",
    )

    def __init__(
        self,
        cache: SchemaCache,
        compiler: Compiler,
        *,
        limits: Limits | None = None,
        max_compiled: int = 128,
        max_compiled_bytes: int = 256 << 20,
        buf: str | None = None,
        git_base_url: str = "",
        cache_dir: str | os.PathLike[str] | None = None,
        tls_roots: bytes | None = None,
        import_paths: Iterable[str | os.PathLike[str]] = (),
        proto_roots: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        """`buf`: path of the Buf CLI (default: $CONNECTRPC_CATALOG_BUF, then `buf` on PATH).

        `git_base_url` replaces `https://` in front of short repository names
        (`github.com/o/r`); `cache_dir` holds Git checkouts (default: a temporary folder
        removed with the context); `tls_roots` are PEM CA certificates trusted when
        reflecting over TLS (default: the system's); `max_compiled` bounds the memo (loads),
        `max_compiled_bytes` the compiled files kept for incremental loads.
        `import_paths` are searched for imports of every disk and upload load
        (`--import-path`); `proto_roots` bound the search for an import root above a
        folder given (`--proto-root`; empty: unbounded but for the level limit).
        """
        self.cache = cache
        self.compiler = compiler
        self.limits = limits or Limits()
        self.buf = buf
        self.git_base_url = git_base_url or "https://"
        self.tls_roots = tls_roots
        self.import_paths = tuple(Path(p).expanduser() for p in import_paths)
        self.proto_roots = tuple(Path(p).expanduser() for p in proto_roots)
        self.memo = Memo(max_compiled)
        self.compiled = FileMemo(max_compiled_bytes)
        """Compiled files by text and imports, for incremental loads (`incremental`)."""
        self.runs: Counter[str] = Counter()
        """How often each external step ran ("buf build", "git ls-remote", "git fetch");
        tests use it to prove that a cache hit ran nothing."""
        self._cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._tmp_dir: Path | None = None
        self._tmp_lock = threading.Lock()

    def work_dir(self) -> Path:
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
        """Remove the temporary work folder, if one was made."""
        tmp, self._tmp_dir = self._tmp_dir, None
        if tmp is not None:
            await asyncio.to_thread(shutil.rmtree, tmp, True)


def name_problem(limits: Limits, name: str) -> str | None:
    """Why `name` is not a safe import path to hand protoc, or None when it is.

    Allowed: relative `/`-separated paths of letters, digits, `.`, `_` and `-`, with no
    empty, `.` or `..` part and no part starting with `-` or `@` (protoc would read it
    as an option or an argument file), within the length and depth limits.
    """
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > limits.max_name_chars:
        return f"it is longer than {limits.max_name_chars} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it holds a control character"
    if "\\" in name:
        return "use '/' between folders, not '\\'"
    if name.startswith("/"):
        return "it starts with '/'"
    if not _NAME_CHARS.fullmatch(name):
        return _NAME_RULE
    parts = name.split("/")
    if len(parts) > limits.max_name_depth:
        return f"it is nested more than {limits.max_name_depth} folders deep"
    for part in parts:
        if not part:
            return "it has an empty folder name ('//' or a trailing '/')"
        if part in (".", ".."):
            return "'.' and '..' are not allowed"
        if part[0] in "-@":
            return "a part of it starts with '-' or '@'"
        if len(part) > limits.max_name_part_chars:
            return f"a part of it is longer than {limits.max_name_part_chars} characters"
    return None


def check_names(limits: Limits, names: Iterable[str], *, label: str | None = None) -> None:
    """SourceError unless every name is a safe import path and no two clash.

    Two names clash when they differ only in case, or when one is a file and the other
    uses it as a folder (`a.proto` and `a.proto/b.proto`). `label` names the folder the
    files come from (None: they were uploaded).
    """
    by_key: dict[str, str] = {}
    for name in names:
        problem = name_problem(limits, name)
        if problem is not None:
            raise bad_name(label, name, problem)
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


def check_size(limits: Limits, files: Mapping[str, bytes]) -> None:
    """LimitError when the files are more, or larger together, than one load may be."""
    total = sum(len(d) for d in files.values())
    if len(files) > limits.max_files or total > limits.max_bytes:
        raise LimitError(
            f"{len(files)} files, {total} bytes: past the limit of "
            f"{limits.max_files} files or {limits.max_bytes} bytes per load",
        )


def too_large(limits: Limits, what: str, size: int | None) -> LimitError:
    """The error for `what` of `size` bytes (None: it grew past the limit while read)."""
    limit = limits.max_bytes
    told = f"is {size} bytes" if size is not None else f"grew past {limit} bytes while read"
    return LimitError(f"{what} {told}; the limit is {limit} bytes")


def _show(name: object) -> str:
    """A user-given name for a message: repr'd (control characters escaped), truncated."""
    text = str(name)
    if len(text) > _SHOWN_NAME_CHARS:
        text = text[:_SHOWN_NAME_CHARS] + "…"
    return repr(text)


def bad_name(label: str | None, name: str, problem: str) -> SourceError:
    """The error for a refused file name, uploaded (`label` None) or below a folder."""
    if label is None:
        return SourceError(
            f"file name {_show(name)} is refused: {problem}; each name must be a relative "
            f"path inside the upload, like acme/v1/api.proto, made of letters, digits, "
            "'.', '_', '-' and '/'",
        )
    return SourceError(
        f"{label}: the file {_show(name)} is refused: {problem}; rename it, using only "
        "letters, digits, '.', '_', '-' and '/'",
    )


def _clashing_names(label: str | None, first: str, second: str, problem: str) -> SourceError:
    where = "file names" if label is None else f"{label}: the files"
    return SourceError(
        f"{where} {_show(first)} and {_show(second)} clash: {problem}; rename one of them",
    )


def content_key(files: Mapping[str, bytes], targets: list[str]) -> str:
    """A hash of file names, contents and targets: equal keys, equal compile results."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(files[name]).digest())
    h.update("\0".join(targets).encode())
    return h.hexdigest()
