"""Buf modules: local modules and workspaces, and BSR references, built with the Buf CLI.

`buf build INPUT --as-file-descriptor-set -o -#format=binpb` writes a FileDescriptorSet
(imports and comments included) to stdout. A local module is cached by the content of
its files (`.proto`, `buf.yaml`, `buf.lock`, `buf.work.yaml`), so loading it again runs
neither buf nor anything else; a BSR reference may move, so it is built every time and
deduplicated by the content of the result.

`run_tool` (a subprocess with a timeout, output caps and process-group kill) is shared
with `gitrepo`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from .core import BUF_CONFIG_FILES, LoadError, content_key, redact

if TYPE_CHECKING:
    from ..descriptors import Schema
    from .core import Loader

__all__ = [
    "BUF_ENV",
    "INSTALL_HINT",
    "BufCLI",
    "OutputTooLarge",
    "ToolResult",
    "is_bsr_ref",
    "load_buf_dir",
    "load_buf_module",
    "run_tool",
]

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
_MAX_STDERR = 64 * 1024
_MAX_ERROR_LINES = 25


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A finished external command."""

    returncode: int
    stdout: bytes
    stderr: str


class OutputTooLarge(Exception):
    """A command wrote more than its cap to stdout and was stopped."""


async def run_tool(
    argv: Sequence[str],
    *,
    timeout_seconds: float,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    max_stdout: int = 1 << 20,
    check: Callable[[], Awaitable[None]] | None = None,
    check_every: float = 0.5,
) -> ToolResult:
    """Run a command without a shell or stdin; kill its whole process group on any failure.

    Raises TimeoutError past `timeout_seconds`, OutputTooLarge past `max_stdout`, OSError when the
    program cannot be started, and whatever `check` (awaited every `check_every` seconds
    while the command runs) raises.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_seconds):
            if proc.stdout is None or proc.stderr is None:  # pragma: no cover - PIPE given
                raise OSError("no pipes to the command")
            out = asyncio.ensure_future(_read(proc.stdout, max_stdout, strict=True))
            err = asyncio.ensure_future(_read(proc.stderr, _MAX_STDERR, strict=False))
            done = asyncio.ensure_future(asyncio.gather(out, err, proc.wait()))
            try:
                while check is not None and not done.done():
                    await asyncio.wait({done}, timeout=check_every)
                    if not done.done():
                        await check()
                stdout, stderr, code = await done
            finally:
                for task in (out, err, done):
                    task.cancel()
    except BaseException:
        _kill_group(proc)
        with contextlib.suppress(ProcessLookupError):
            await asyncio.shield(proc.wait())
        raise
    _kill_group(proc)  # leftovers of the command, e.g. the real binary behind a node shim
    return ToolResult(code, stdout, stderr.decode(errors="replace"))


async def _read(stream: asyncio.StreamReader, cap: int, *, strict: bool) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        if size + len(chunk) > cap:
            if strict:
                raise OutputTooLarge
            continue  # keep draining so the command is never blocked on a full pipe
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class BufCLI:
    """Finds and runs the Buf CLI: the given path, else $CONNECTRPC_CATALOG_BUF, else PATH."""

    def __init__(self, path: str | None = None, *, timeout: float = 120.0) -> None:
        self.path = path
        self.timeout = timeout
        self.builds = 0
        """How many times `buf build` ran (tests use it to prove a cache hit)."""

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
        raise ConnectError(
            Code.FAILED_PRECONDITION,
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
        self.builds += 1
        try:
            result = await run_tool(
                argv,
                timeout_seconds=self.timeout,
                cwd=cwd,
                env={**os.environ, "NO_COLOR": "1"},
                max_stdout=max_bytes,
            )
        except TimeoutError:
            raise LoadError(
                f"{label}: buf build did not finish within {self.timeout:.0f} s"
            ) from None
        except OSError:  # after TimeoutError, which is an OSError too
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                f"the Buf CLI at {exe} could not be started; {INSTALL_HINT}",
            ) from None
        except OutputTooLarge:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"{label}: the built descriptor set is larger than {max_bytes} bytes",
            ) from None
        if result.returncode == 0:
            return result.stdout
        stderr = result.stderr
        if cwd is not None:  # the folder may be a checkout in the catalog's cache: not shown
            stderr = stderr.replace(f"{cwd}{os.sep}", "").replace(str(cwd), label)
        text = _error_text(redact(stderr)) or f"buf exited with code {result.returncode}"
        if result.returncode != 100 and any(m in text.lower() for m in _UNREACHABLE):
            raise ConnectError(
                Code.UNAVAILABLE, f"{label}: the Buf Schema Registry could not be reached: {text}"
            )
        raise LoadError(f"{label}: buf build failed:\n{text}")


def is_bsr_ref(text: str) -> bool:
    """Whether `text` looks like a BSR module reference, e.g. `buf.build/acme/weather:v1`."""
    return bool(_BSR_REF.match(text))


async def load_buf_module(loader: Loader, ref: str) -> Schema:
    """Load `buf_module`: a local module or workspace folder, or a BSR reference."""
    value = ref.strip()
    if not value:
        raise ConnectError(Code.INVALID_ARGUMENT, "bufModule is empty")
    shown = redact(value)
    local = await asyncio.to_thread(Path(value).expanduser)
    kind = await asyncio.to_thread(_local_kind, local)
    if kind == "dir":
        return await load_buf_dir(loader, local, label=shown)
    if kind == "config":
        return await load_buf_dir(loader, local.parent, label=shown)
    if kind == "file":
        raise LoadError(
            f"{shown}: not a Buf module; give the folder that holds buf.yaml "
            "(a module or workspace), or a BSR reference like buf.build/owner/module"
        )
    if is_bsr_ref(value):
        data = await loader.buf.build(value, label=value, max_bytes=loader.limits.max_bytes)
        return await loader.from_descriptor_set(data, origin=value)
    if value.startswith(("/", ".", "~")) or os.sep in value:
        raise LoadError(f"{shown}: no such folder on the catalog server")
    raise ConnectError(
        Code.INVALID_ARGUMENT,
        f"bufModule {shown!r} is neither a folder on the catalog server nor a BSR "
        "reference like buf.build/owner/module[:ref]",
    )


async def load_buf_dir(loader: Loader, path: Path, *, label: str) -> Schema:
    """Build a local Buf module or workspace, cached by the content of its files."""
    files = await asyncio.to_thread(loader.read_tree, path, buf_files=True, label=label)
    if not any(name.endswith(".proto") for name in files):
        raise LoadError(f"{label}: no .proto files in this Buf module")

    async def build() -> Schema:
        data = await loader.buf.build(".", label=label, max_bytes=loader.limits.max_bytes, cwd=path)
        return await loader.from_descriptor_set(data, origin=label)

    return await loader.memo("buf:" + content_key(files, []), build)


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
