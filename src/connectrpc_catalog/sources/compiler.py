"""Compiling .proto sources with the protoc that grpcio-tools ships, in a worker process.

protoc holds the GIL for a whole compile and writes its errors to file descriptor 2, so
it runs in a separate process: the event loop never stalls, and redirecting fd 2 there
touches nobody else.
"""

from __future__ import annotations

import asyncio
import marshal
import os
import re
import struct
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .run import remove_stale_dirs

__all__ = ["SCRATCH_PREFIX", "CompileError", "Compiler", "clean_protoc_errors"]

_MAX_ERROR_LINES = 25
_HEADER = struct.Struct("<Q")
SCRATCH_PREFIX = "catalog-protoc-"
"""The worker's scratch folders are `SCRATCH_PREFIX<pid>-<random>` in the temp folder."""
_ABSL_LINE = re.compile(r"^(?:(?:WARNING|ERROR|INFO|FATAL): |[IWEF]\d{4} [\d:.]+ +\d+ [^\]]*\] )")
"""protoc's own log lines (absl), e.g. "WARNING: All log messages before absl::..."."""


class CompileError(Exception):
    """protoc rejected the sources; the message is protoc's `file:line:col: message` text."""


class Compiler:
    """Compiles sets of .proto files to serialized FileDescriptorSets in a worker process.

    The worker (`python -m connectrpc_catalog.sources.compiler`) lives as long as the compiler,
    takes one request at a time over its stdin/stdout, and is restarted if it dies or
    runs past the timeout.
    """

    def __init__(self, *, timeout: float = 120.0) -> None:
        self._timeout = timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.compiles = 0
        """How many compiles ran (tests use it to prove a cache hit skipped protoc)."""
        self.starts = 0
        """How many worker processes were started (a crash or a timeout starts another)."""

    async def _worker(self) -> asyncio.subprocess.Process:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "connectrpc_catalog.sources.compiler",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # Its own session: Ctrl+C in a terminal reaches the catalog, not the
                # worker (which would print a KeyboardInterrupt traceback); the catalog
                # stops it by closing stdin, and it exits on EOF if the catalog dies.
                start_new_session=True,
            )
            self._proc = proc
            self.starts += 1
        return proc

    async def warm_up(self) -> None:
        """Start the worker process ahead of the first compile."""
        async with self._lock:
            await self._worker()

    async def compile(self, files: Mapping[str, bytes], targets: list[str]) -> bytes:
        """Compile `targets` (import paths) given every file they may import; raise CompileError."""
        request = marshal.dumps((dict(files), list(targets)))
        async with self._lock:
            self.compiles += 1
            proc = await self._worker()
            try:
                ok, out = await asyncio.wait_for(self._roundtrip(proc, request), self._timeout)
            except TimeoutError:
                await self._kill()
                raise CompileError(
                    f"compiling took longer than {self._timeout:.0f} s and was stopped"
                ) from None
            except (OSError, EOFError, ValueError, asyncio.IncompleteReadError):
                await self._kill()
                raise CompileError("the compiler process stopped unexpectedly; try again") from None
        if not ok:
            raise CompileError(out.decode(errors="replace"))
        return bytes(out)

    @staticmethod
    async def _roundtrip(proc: asyncio.subprocess.Process, request: bytes) -> tuple[bool, bytes]:
        if proc.stdin is None or proc.stdout is None:
            raise EOFError
        proc.stdin.write(_HEADER.pack(len(request)) + request)
        await proc.stdin.drain()
        (size,) = _HEADER.unpack(await proc.stdout.readexactly(_HEADER.size))
        ok, out = marshal.loads(await proc.stdout.readexactly(size))
        return bool(ok), out

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def close(self) -> None:
        """Stop the worker process."""
        async with self._lock:
            proc, self._proc = self._proc, None
            if proc is None or proc.returncode is not None:
                return
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def clean_protoc_errors(text: str, *paths: str) -> str:
    """protoc's stderr for a person: no absl log lines, no server paths, at most 25 lines."""
    for path in paths:
        text = text.replace(f"{path}{os.sep}", "").replace(path, "<scratch>")
    lines = [ln for ln in text.splitlines() if ln.strip() and not _ABSL_LINE.match(ln)]
    if len(lines) > _MAX_ERROR_LINES:
        lines = [*lines[:_MAX_ERROR_LINES], f"... and {len(lines) - _MAX_ERROR_LINES} more"]
    return "\n".join(lines)


def _serve() -> None:
    """Worker side: answer compile requests on stdin/stdout until stdin closes."""
    # Keep the protocol stream private: anything else writing to fd 1 goes to stderr.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    remove_stale_dirs(Path(tempfile.gettempdir()), SCRATCH_PREFIX)  # of killed workers
    requests = sys.stdin.buffer
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        files, targets = marshal.loads(requests.read(size))
        reply = marshal.dumps(_answer(files, targets))
        channel.write(_HEADER.pack(len(reply)) + reply)
        channel.flush()


def _answer(files: dict[str, bytes], targets: list[str]) -> tuple[bool, bytes]:
    """Worker side: a compile's result, or a clean error; never an exception."""
    unsafe = next((n for n in (*files, *targets) if _unsafe(n)), None)
    if unsafe is not None:
        shown = repr(unsafe[:80] if isinstance(unsafe, str) else unsafe)
        return False, f"{shown} is not a file name protoc can be given safely".encode()
    if any(t not in files for t in targets):
        return False, b"a file to compile is not among the files"
    try:
        return _compile(files, targets)
    except Exception as exc:  # OSError (a name the file system refuses), ValueError, ...
        return False, (
            "the sources could not be written out for protoc "
            f"({type(exc).__name__}); check the file names"
        ).encode()


def _unsafe(name: object) -> bool:
    """Whether a name could be read by protoc as an option or land outside the scratch."""
    if not isinstance(name, str) or not name or name[0] in "-@/\\":
        return True
    if any(ord(c) < 32 or c == "\\" for c in name):
        return True
    return any(part in ("", ".", "..") or part[0] in "-@" for part in name.split("/"))


def _compile(files: dict[str, bytes], targets: list[str]) -> tuple[bool, bytes]:
    """Worker side: write the files to a scratch folder and run protoc on them."""
    from importlib import resources

    from grpc_tools import protoc

    wkt = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as tmp:
        root = Path(tmp, "src")
        for name, data in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        out = Path(tmp, "out.binpb")
        errors = Path(tmp, "errors.txt")
        args = [
            "protoc",
            f"-I{root}",
            f"-I{wkt}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *targets,
        ]
        saved = os.dup(2)
        try:
            with errors.open("wb") as err:
                os.dup2(err.fileno(), 2)
                code = protoc.main(args)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if code == 0 and out.exists():
            return True, out.read_bytes()
        text = clean_protoc_errors(errors.read_text(errors="replace"), str(root), wkt, tmp)
        return False, (text or f"protoc failed with exit code {code}").encode()


if __name__ == "__main__":
    _serve()
