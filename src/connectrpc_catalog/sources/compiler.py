"""Compiling .proto sources with the protoc that grpcio-tools ships, in a pool of worker
processes.

protoc holds the GIL for a whole compile and writes its errors to file descriptor 2, so
it runs in separate processes: the event loop never stalls, redirecting fd 2 there
touches nobody else, and as many compiles run at once as there are workers (default:
one per core). Jobs wait in one bounded queue; the next job is the oldest of the owner
(the session that asked) served longest ago, so one session's burst of loads cannot
starve the others.

A worker answers with the compiled files already split and read off the wire
(`filefacts`), each also without its source info (what descriptor pools are built from
and protoc is given again): the catalog's process neither parses nor strips them. Files the caller
already has compiled (`reuse`, without their source info) go to protoc as
`--descriptor_set_in` and are not compiled again (see `sources.incremental`). A worker
that grew past its memory limit during a job is replaced after it, and every worker
hands freed memory back to the system after each job.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import os
import re
import struct
import sys
import tempfile
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..filefacts import Facts, join_set, scan, split_set, without_source_info
from .run import remove_stale_dirs

__all__ = [
    "SCRATCH_PREFIX",
    "CompileError",
    "Compiled",
    "Compiler",
    "CompilerBusy",
    "clean_protoc_errors",
]

_MAX_ERROR_LINES = 25
_HEADER = struct.Struct("<Q")
SCRATCH_PREFIX = "catalog-protoc-"
"""The worker's scratch folders are `SCRATCH_PREFIX<pid>-<random>` in /dev/shm or the temp
folder (see `_scratch_base`)."""
_ABSL_LINE = re.compile(r"^(?:(?:WARNING|ERROR|INFO|FATAL): |[IWEF]\d{4} [\d:.]+ +\d+ [^\]]*\] )")
"""protoc's own log lines (absl), e.g. "WARNING: All log messages before absl::..."."""
_MIB = 1 << 20
_MAX_OWNERS_KEPT = 4096


class CompileError(Exception):
    """protoc rejected the sources; the message is protoc's `file:line:col: message` text."""


class CompilerBusy(Exception):
    """The queue of compiles waiting for a worker is full (`max_queue`)."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compile's files: the targets and everything they import, dependencies first.

    `files` and `facts` include the reused files the targets import; `compiled` names
    the files protoc compiled from source this time.
    """

    files: dict[str, bytes]
    facts: dict[str, Facts]
    compiled: frozenset[str]
    bare: Mapping[str, bytes] = field(default_factory=dict)
    """The files without their source info, where known (the worker strips every file it
    compiled): what the schema's descriptor pool is built from, where present."""


@dataclass(slots=True, eq=False)
class _Job:
    request: bytes
    owner: str
    future: asyncio.Future[Compiled] = field(default_factory=lambda: _loop().create_future())


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


@dataclass(slots=True, eq=False)
class _Worker:
    proc: asyncio.subprocess.Process
    rss: int = 0
    """Resident bytes after its last job (as the worker measured itself)."""

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


class Compiler:
    """Compiles sets of .proto files in a pool of worker processes.

    Each worker (`python -m connectrpc_catalog.sources.compiler`) takes one job at a time
    over its stdin/stdout. Workers start on demand, up to `workers` (0: one per core);
    one that dies or runs past `timeout` is killed and replaced by the next job; one
    whose memory grew past `max_worker_rss` bytes is stopped after its job.
    """

    def __init__(
        self,
        *,
        workers: int = 0,
        timeout: float = 120.0,
        max_queue: int = 256,
        max_worker_rss: int = 512 * _MIB,
    ) -> None:
        self.size = workers if workers > 0 else (os.cpu_count() or 1)
        self.max_queue = max_queue
        self.max_worker_rss = max_worker_rss
        self.timeout = timeout
        """Seconds one job may run on a worker before the worker is killed."""
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._free = self.size
        """Jobs that may start now (workers not busy)."""
        self._queues: dict[str, deque[_Job]] = {}
        """Waiting jobs by owner, owners in the order they first waited."""
        self._served: OrderedDict[str, int] = OrderedDict()
        """When each recent owner last had a job started (`_turn`): the next job is the
        oldest of the waiting owner served longest ago, so a burst takes turns."""
        self._turn = 0
        self._queued = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.compiles = 0
        """How many compiles ran (tests use it to prove a cache hit skipped protoc)."""
        self.starts = 0
        """How many worker processes were started (a crash or a timeout starts another)."""
        self.recycled = 0
        """Workers stopped after a job because they had grown past `max_worker_rss`."""

    # --- the caller's side ------------------------------------------------------------

    async def compile(
        self,
        files: Mapping[str, bytes],
        targets: list[str],
        *,
        reuse: Mapping[str, bytes] | None = None,
        owner: str = "",
    ) -> Compiled:
        """Compile `targets` (import paths) given every file they may import.

        Without `reuse` the result holds the targets and every file they import. With
        it (compiled files, name → serialized FileDescriptorProto, that protoc takes as
        they are when the sources import them; none of their names among `files`), the
        result holds the targets only. `owner` (a session) is whom the queue takes
        turns between. Raises CompileError, or CompilerBusy when the queue is full.
        """
        if self._closed:
            raise CompileError("the catalog is stopping")
        if self._queued >= self.max_queue:
            raise CompilerBusy(f"{self._queued} compiles are waiting for a worker")
        request = marshal.dumps((dict(files), list(targets), dict(reuse or {})))
        job = _Job(request, owner)
        self._queues.setdefault(owner, deque()).append(job)
        self._queued += 1
        self._pump()
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            self._withdraw(job)
            raise

    def _withdraw(self, job: _Job) -> None:
        """Take a job whose caller went away out of the queue (a running one finishes)."""
        queue = self._queues.get(job.owner)
        if queue is not None and job in queue:
            queue.remove(job)
            self._queued -= 1
            if not queue:
                del self._queues[job.owner]
        if not job.future.done():
            job.future.cancel()

    def _next(self) -> _Job | None:
        """The oldest job of the waiting owner served longest ago (or never)."""
        if not self._queues:
            return None
        owner = min(self._queues, key=lambda o: self._served.get(o, 0))
        queue = self._queues[owner]
        job = queue.popleft()
        if not queue:
            del self._queues[owner]
        self._queued -= 1
        self._turn += 1
        self._served[owner] = self._turn
        self._served.move_to_end(owner)
        while len(self._served) > _MAX_OWNERS_KEPT:
            self._served.popitem(last=False)
        return job

    def _pump(self) -> None:
        while self._free > 0 and not self._closed:
            job = self._next()
            if job is None:
                return
            self._free -= 1
            task = asyncio.ensure_future(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- the workers -------------------------------------------------------------------

    async def _run(self, job: _Job) -> None:
        try:
            result = await self._attempt(job)
        except BaseException as exc:  # handed to the caller, never lost
            if not job.future.done():
                job.future.set_exception(exc if isinstance(exc, CompileError) else _stopped(exc))
            if not isinstance(exc, Exception):
                raise
        else:
            if not job.future.done():
                job.future.set_result(result)
        finally:
            self._free += 1
            self._pump()

    async def _attempt(self, job: _Job) -> Compiled:
        worker = await self._checkout()
        self.compiles += 1
        try:
            ok, out = await asyncio.wait_for(self._roundtrip(worker, job.request), self.timeout)
        except TimeoutError:
            await self._kill(worker)
            raise CompileError(
                f"compiling took longer than {self.timeout:.0f} s and was stopped"
            ) from None
        except (OSError, EOFError, ValueError, asyncio.IncompleteReadError):
            await self._kill(worker)
            raise CompileError("the compiler process stopped unexpectedly; try again") from None
        except BaseException:
            await self._kill(worker)
            raise
        if not ok:
            self._checkin(worker)
            raise CompileError(bytes(out).decode(errors="replace"))
        records, worker.rss = out
        self._checkin(worker)
        return _assemble(records)

    async def _checkout(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            self._live.discard(worker)
        return await self._spawn()

    async def _spawn(self) -> _Worker:
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
        worker = _Worker(proc)
        self._live.add(worker)
        self.starts += 1
        return worker

    def _checkin(self, worker: _Worker) -> None:
        if self._closed or not worker.alive:
            self._live.discard(worker)
            return
        if worker.rss > self.max_worker_rss:  # its memory goes back to the system
            self.recycled += 1
            self._live.discard(worker)
            task = asyncio.ensure_future(_stop(worker))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._idle.append(worker)

    @staticmethod
    async def _roundtrip(worker: _Worker, request: bytes) -> tuple[bool, Any]:
        proc = worker.proc
        if proc.stdin is None or proc.stdout is None:
            raise EOFError
        proc.stdin.write(_HEADER.pack(len(request)) + request)
        await proc.stdin.drain()
        (size,) = _HEADER.unpack(await proc.stdout.readexactly(_HEADER.size))
        ok, out = marshal.loads(await proc.stdout.readexactly(size))
        return bool(ok), out

    async def _kill(self, worker: _Worker) -> None:
        self._live.discard(worker)
        if worker.alive:
            worker.proc.kill()
            await worker.proc.wait()

    # --- life cycle and figures --------------------------------------------------------

    async def warm_up(self) -> None:
        """Start a worker process ahead of the first compile (if none is running)."""
        if not any(w.alive for w in self._live) and not self._closed:
            self._idle.append(await self._spawn())

    def alive(self) -> bool:
        """Whether a worker process runs (or none has been needed since the last one left)."""
        return any(w.alive for w in self._live)

    def stats(self) -> dict[str, Any]:
        """Workers, their memory after their last job, the queue, and counters."""
        return {
            "workers": self.size,
            "running": len([w for w in self._live if w.alive]),
            "busy": self.size - self._free,
            "queued": self._queued,
            "worker_rss": sorted(w.rss for w in self._live),
            "pids": sorted(w.proc.pid for w in self._live if w.alive),
            "compiles": self.compiles,
            "starts": self.starts,
            "recycled": self.recycled,
        }

    async def close(self) -> None:
        """Stop every worker; waiting compiles fail with CompileError."""
        self._closed = True
        for queue in self._queues.values():
            for job in queue:
                if not job.future.done():
                    job.future.set_exception(CompileError("the catalog is stopping"))
        self._queues.clear()
        self._queued = 0
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_stop(w) for w in idle))
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), 5)
        for worker in list(self._live):
            await self._kill(worker)
        self._live.clear()


def _stopped(exc: BaseException) -> CompileError:
    del exc  # its text may name server paths
    return CompileError("the compiler process could not be started; try again")


async def _stop(worker: _Worker) -> None:
    """Close a worker's stdin (it exits on EOF); kill it if it does not within 5 s."""
    proc = worker.proc
    if proc.returncode is not None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 5)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def _assemble(records: list[tuple[Any, ...]]) -> Compiled:
    """The worker's records as a `Compiled`."""
    files: dict[str, bytes] = {}
    facts: dict[str, Facts] = {}
    bare: dict[str, bytes] = {}
    for record in records:
        name, data, deps, services, described, stripped = record
        files[name] = data
        bare[name] = stripped
        facts[name] = Facts(name, tuple(deps), tuple(services), bool(described))
    return Compiled(files, facts, frozenset(files), bare)


def clean_protoc_errors(text: str, *paths: str) -> str:
    """protoc's stderr for a person: no absl log lines, no server paths, at most 25 lines."""
    for path in paths:
        text = text.replace(f"{path}{os.sep}", "").replace(path, "<scratch>")
    lines = [ln for ln in text.splitlines() if ln.strip() and not _ABSL_LINE.match(ln)]
    if len(lines) > _MAX_ERROR_LINES:
        lines = [*lines[:_MAX_ERROR_LINES], f"... and {len(lines) - _MAX_ERROR_LINES} more"]
    return "\n".join(lines)


# --- the worker's side ------------------------------------------------------------------


def _serve() -> None:
    """Worker side: answer compile requests on stdin/stdout until stdin closes."""
    # Keep the protocol stream private: anything else writing to fd 1 goes to stderr.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    remove_stale_dirs(_scratch_base(), SCRATCH_PREFIX)  # of killed workers
    from grpc_tools import protoc  # imported once, ahead of the first job

    del protoc
    requests = sys.stdin.buffer
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        files, targets, reuse = marshal.loads(requests.read(size))
        ok, out = _answer(files, targets, reuse)
        _release_memory()
        reply = marshal.dumps((ok, (out, _rss()) if ok else out))
        del out
        channel.write(_HEADER.pack(len(reply)) + reply)
        channel.flush()
        del reply


def _answer(
    files: dict[str, bytes], targets: list[str], reuse: dict[str, bytes]
) -> tuple[bool, Any]:
    """Worker side: a compile's records, or a clean error; never an exception."""
    unsafe = next((n for n in (*files, *targets, *reuse) if _unsafe(n)), None)
    if unsafe is not None:
        shown = repr(unsafe[:80] if isinstance(unsafe, str) else unsafe)
        return False, f"{shown} is not a file name protoc can be given safely".encode()
    if any(t not in files for t in targets):
        return False, b"a file to compile is not among the files"
    if any(name in files for name in reuse):
        return False, b"a reused file is among the files to compile"
    try:
        return _compile(files, targets, reuse)
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


def _compile(
    files: dict[str, bytes], targets: list[str], reuse: dict[str, bytes]
) -> tuple[bool, Any]:
    """Worker side: write the files to a scratch folder and run protoc on them."""
    from importlib import resources

    from grpc_tools import protoc

    wkt = str(resources.files("grpc_tools") / "_proto")
    scratch = tempfile.TemporaryDirectory(
        prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=_scratch_base()
    )
    with scratch as tmp:
        root = Path(tmp, "src")
        for name, data in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        root.mkdir(exist_ok=True)
        out = Path(tmp, "out.binpb")
        errors = Path(tmp, "errors.txt")
        args = ["protoc", f"-I{root}", f"-I{wkt}", "--include_source_info"]
        if not reuse:
            args.append("--include_imports")
        else:
            given = Path(tmp, "in.binpb")
            given.write_bytes(join_set(list(reuse.values())))
            args.append(f"--descriptor_set_in={given}")
        args += [f"--descriptor_set_out={out}", *targets]
        saved = os.dup(2)
        try:
            with errors.open("wb") as err:
                os.dup2(err.fileno(), 2)
                code = protoc.main(args)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if code == 0 and out.exists():
            return True, _records(out.read_bytes())
        text = clean_protoc_errors(errors.read_text(errors="replace"), str(root), wkt, tmp)
        return False, (text or f"protoc failed with exit code {code}").encode()


def _scratch_base() -> Path:
    """Worker side: where scratch folders go: $TMPDIR when set, else the memory-backed
    /dev/shm where there is one (writing 500 files there costs a tenth of the CPU of a
    disk-backed /tmp, measured), else the system's temp folder."""
    if not os.environ.get("TMPDIR"):
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
            return shm
    return Path(tempfile.gettempdir())


def _records(data: bytes) -> list[tuple[Any, ...]]:
    """Worker side: each output file as (name, bytes, imports, services, described, the
    bytes without source info)."""
    out: list[tuple[Any, ...]] = []
    for part in split_set(data):
        fact = scan(part)
        bare = without_source_info(part) if fact.described else part
        out.append((fact.name, part, fact.deps, fact.services, fact.described, bare))
    return out


def _release_memory() -> None:
    """Worker side: hand the heap freed by the last compile back to the system (glibc)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss() -> int:
    """Worker side: its resident memory in bytes (0 where it cannot tell)."""
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/self/statm", "rb") as statm,
    ):
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]

        return int(psutil.Process().memory_info().rss)
    except Exception:  # not installed, or no permission
        return 0


if __name__ == "__main__":
    _serve()
