"""Buf modules: local modules and workspaces, and BSR references, built with the Buf CLI.

`buf build INPUT --as-file-descriptor-set -o -#format=binpb` writes a FileDescriptorSet
(imports and comments included) to stdout. A local module is cached by the content of
its files (`.proto`, `buf.yaml`, `buf.lock`, `buf.work.yaml`), so loading it again runs
neither buf nor anything else; a BSR reference may move, so it is built every time and
deduplicated by the content of the result.

Commands run through `run.run_tool` (a timeout, output caps, process-group kill), which
the Git source uses too.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from ..descriptors import Schema
from ..problems import Code, RequestError
from .core import (
    Context,
    Given,
    LimitError,
    LoadError,
    SetupError,
    SourceError,
    UnreachableError,
    content_key,
    given_text,
    redact,
)
from .descriptor_set import load_set
from .disk import read_tree
from .run import OutputTooLarge, run_tool

__all__ = [
    "BUF_CONFIG_FILES",
    "BUF_ENV",
    "INSTALL_HINT",
    "BufCLI",
    "EgressRefused",
    "bsr_remote",
    "is_bsr_ref",
    "is_buf_dir",
    "load",
    "load_dir",
    "load_module",
    "through_proxy",
]

_FIELD = "bufModule"
"""The request field this source comes in."""

BUF_ENV = "CONNECTRPC_CATALOG_BUF"
"""Environment variable naming the Buf CLI binary (the `--buf` flag's default)."""

INSTALL_HINT = (
    "install it with `npm install -g @bufbuild/buf` "
    "(or see https://buf.build/docs/installation), or give its path with --buf"
)

_BSR_REF = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+(?::\d+)?"  # e.g. buf.build
    r"/[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*"  # owner/module
    r"(?::[A-Za-z0-9][A-Za-z0-9_./-]*)?$"  # optional :label or :commit
)
_UNREACHABLE = (
    "unavailable",
    "dial tcp",
    "no such host",
    "connection refused",
    "i/o timeout",
    "network is unreachable",
    "deadline exceeded",
    "tls handshake",
)
_MAX_ERROR_LINES = 25
_PROXY: ContextVar[str] = ContextVar("buf_egress_proxy", default="")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
# Go never sends requests for `localhost` or a loopback IP literal through a proxy: a
# module that names one as a remote is refused before buf runs.
_LOOPBACK_REMOTE = re.compile(
    r"(?i)(?<![\w.:-])(localhost|127(?:\.\d+){3}|\[?::1\]?|\[?(?:0{1,4}:){7}0{0,3}1\]?"
    r"|\[?::ffff:127[\d.]*\]?)(?::\d+)?/[\w.-]+/[\w.-]+"
)


class EgressRefused(RequestError):
    """A module remote buf would reach without the access policy's check:
    PERMISSION_DENIED."""

    code = Code.PERMISSION_DENIED


@contextmanager
def through_proxy(url: str) -> Iterator[None]:
    """Within the block, buf reaches the network only through the HTTP proxy at `url`
    (the access policy's egress proxy, which checks each host buf connects to)."""
    token = _PROXY.set(url)
    try:
        yield
    finally:
        _PROXY.reset(token)


def _env() -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1"}
    proxy = _PROXY.get()
    if proxy:
        env.update(dict.fromkeys(_PROXY_VARS, proxy), NO_PROXY="", no_proxy="")
    return env


def bsr_remote(ref: str) -> tuple[str, int] | None:
    """The host and port of a BSR reference (`buf.build/acme/weather` → buf.build, 443)."""
    if not is_bsr_ref(ref):
        return None
    host, _, port = ref.split("/", 1)[0].partition(":")
    return host, int(port) if port else 443
BUF_CONFIG_FILES = ("buf.yaml", "buf.work.yaml")
"""A folder holding one of these is a Buf module or workspace."""
_TREE_FILES = frozenset((*BUF_CONFIG_FILES, "buf.lock"))
"""The files besides .proto ones that a build of a local module depends on."""


@dataclass(frozen=True, slots=True)
class BufCLI:
    """Finds and runs the Buf CLI: the given path, else $CONNECTRPC_CATALOG_BUF, else PATH.

    Each `buf build` counts as "buf build" in `runs` (the context's counter).
    """

    path: str | None = None
    timeout: float = 120.0
    runs: Counter[str] = field(default_factory=Counter)

    def configured(self) -> str:
        """The path or name asked for: the setting, the environment variable, or `buf`."""
        return self.path or os.environ.get(BUF_ENV, "") or "buf"

    def locate(self) -> str | None:
        """The Buf CLI executable, or None when it is not installed (a few stat calls)."""
        name = os.path.expanduser(self.configured())
        if os.sep in name:
            return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
        return shutil.which(name)

    async def require(self) -> str:
        """The executable, or FAILED_PRECONDITION saying how to install it."""
        found = await asyncio.to_thread(self.locate)
        if found is not None:
            return found
        wanted = self.configured()
        where = "on PATH" if wanted == "buf" else f"at {wanted}"
        raise SetupError(
            f"loading Buf modules needs the Buf CLI, which was not found {where}; {INSTALL_HINT}",
        )

    async def build(
        self, source: str, *, label: str, max_bytes: int, cwd: Path | None = None
    ) -> bytes:
        """A serialized FileDescriptorSet of `source` (a folder, `.`, or a BSR reference)."""
        exe = await self.require()
        argv = [
            exe,
            "build",
            source,
            "--as-file-descriptor-set",
            "--output",
            "-#format=binpb",
            "--log-format",
            "text",
            "--error-format",
            "text",
        ]
        self.runs["buf build"] += 1
        try:
            result = await run_tool(
                argv,
                timeout_seconds=self.timeout,
                cwd=cwd,
                env=_env(),
                max_stdout=max_bytes,
            )
        except TimeoutError:
            raise LoadError(
                f"{label}: buf build did not finish within {self.timeout:.0f} s"
            ) from None
        except OSError:  # after TimeoutError, which is an OSError too
            raise SetupError(
                f"the Buf CLI at {exe} could not be started; {INSTALL_HINT}",
            ) from None
        except OutputTooLarge:
            raise LimitError(
                f"{label}: the built descriptor set is larger than {max_bytes} bytes",
            ) from None
        if result.returncode == 0:
            return result.stdout
        stderr = result.stderr
        if cwd is not None:  # the folder may be a checkout in the catalog's cache: not shown
            stderr = stderr.replace(f"{cwd}{os.sep}", "").replace(str(cwd), label)
        text = _error_text(redact(stderr)) or f"buf exited with code {result.returncode}"
        if result.returncode != 100 and any(m in text.lower() for m in _UNREACHABLE):
            raise UnreachableError(f"{label}: the Buf Schema Registry could not be reached: {text}")
        raise LoadError(f"{label}: buf build failed:\n{text}")


def is_bsr_ref(text: str) -> bool:
    """Whether `text` looks like a BSR module reference, e.g. `buf.build/acme/weather:v1`."""
    return bool(_BSR_REF.match(text))


def is_buf_dir(p: Path) -> bool:
    """Whether a folder is a Buf module or workspace (holds buf.yaml or buf.work.yaml)."""
    return any((p / name).is_file() for name in BUF_CONFIG_FILES)


def cli(ctx: Context) -> BufCLI:
    """The Buf CLI as the context's settings name it."""
    return BufCLI(ctx.buf, ctx.limits.buf_timeout, ctx.runs)


async def load(ctx: Context, given: Given) -> Schema:
    """The `bufModule` source: a local module or workspace folder, or a BSR reference."""
    return await load_module(ctx, given_text(given, _FIELD))


async def load_module(ctx: Context, ref: str) -> Schema:
    """A local Buf module or workspace folder, or a BSR reference, built with `buf`."""
    value = ref.strip()
    if not value:
        raise SourceError("bufModule is empty", field=_FIELD)
    shown = redact(value)
    local = await asyncio.to_thread(Path(value).expanduser)
    kind = await asyncio.to_thread(_local_kind, local)
    if kind == "dir":
        return await load_dir(ctx, local, label=shown)
    if kind == "config":
        return await load_dir(ctx, local.parent, label=shown)
    if kind == "file":
        raise LoadError(
            f"{shown}: not a Buf module; give the folder that holds buf.yaml "
            "(a module or workspace), or a BSR reference like buf.build/owner/module"
        )
    if is_bsr_ref(value):
        data = await cli(ctx).build(value, label=value, max_bytes=ctx.limits.max_bytes)
        return await load_set(ctx, data, origin=value)
    if value.startswith(("/", ".", "~")) or os.sep in value:
        raise LoadError(f"{shown}: no such folder on the catalog server")
    raise SourceError(
        f"bufModule {shown!r} is neither a folder on the catalog server nor a BSR "
        "reference like buf.build/owner/module[:ref]",
        field=_FIELD,
    )


async def load_dir(ctx: Context, path: Path, *, label: str) -> Schema:
    """Build a local Buf module or workspace, cached by the content of its files."""
    files = await asyncio.to_thread(read_tree, ctx.limits, path, also=_TREE_FILES, label=label)
    if not any(name.endswith(".proto") for name in files):
        raise LoadError(f"{label}: no .proto files in this Buf module")
    if _PROXY.get():
        for name, text in files.items():
            if name.endswith(".proto"):
                continue
            found = _LOOPBACK_REMOTE.search(text.decode(errors="replace"))
            if found is not None:
                raise EgressRefused(
                    f"{label}: {name} names the module {found.group(0)!r} on a loopback "
                    "address, which this catalog may not reach (--allow-target)"
                )

    async def build() -> Schema:
        data = await cli(ctx).build(".", label=label, max_bytes=ctx.limits.max_bytes, cwd=path)
        return await load_set(ctx, data, origin=label)

    return await ctx.memo.get("buf:" + content_key(files, []), build)


def _local_kind(p: Path) -> str:
    if p.is_dir():
        return "dir"
    if p.is_file():
        return "config" if p.name in BUF_CONFIG_FILES else "file"
    return "missing"


def _error_text(stderr: str) -> str:
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip()]
    if len(lines) > _MAX_ERROR_LINES:
        lines = [*lines[:_MAX_ERROR_LINES], f"... and {len(lines) - _MAX_ERROR_LINES} more"]
    return "\n".join(lines)
