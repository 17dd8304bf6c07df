"""Running external tools (buf, git), and cleaning up after processes that died.

`run_tool` runs a command without a shell or stdin, with a timeout and a cap on its
output, and kills its whole process group however it ends. `remove_stale_dirs` removes
the scratch folders that killed catalogs and compiler workers left behind. Imports
nothing of the package: the compiler's worker process uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import stat
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OutputTooLarge", "ToolResult", "remove_stale_dirs", "run_tool"]

_MAX_STDERR = 64 * 1024
_PID_PART = re.compile(r"(\d{1,10})-")


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


def remove_stale_dirs(parent: Path, prefix: str) -> None:
    """Remove the folders `parent/<prefix><pid>-*` whose process is gone.

    Only folders (not symlinks) owned by the current user are touched; every error is
    ignored (another process may be removing the same folder). Blocking: run in a thread.
    """
    uid, me = os.getuid(), os.getpid()
    with contextlib.suppress(OSError), os.scandir(parent) as listing:
        for entry in listing:
            if not entry.name.startswith(prefix):
                continue
            match = _PID_PART.match(entry.name, len(prefix))
            if match is None or int(match.group(1)) == me or _alive(int(match.group(1))):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
                shutil.rmtree(entry.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except (OverflowError, ValueError, OSError):
        return False
    return True
