"""N worker processes on one port, supervised.

The supervisor (the `connectrpc-catalog` process) reserves the port, starts each worker
through its `Server` with a private channel (serving/channel.py) that carries the
settings, waits until every worker has loaded the base, and then keeps them running: a
worker that dies is started again (backing off when it keeps dying), `reload()` reaches
every worker (SIGHUP), and `run()` ends with a graceful stop of all of them.

The workers share the port through SO_REUSEPORT (the kernel spreads connections over
them); the supervisor holds a bound, never-listening socket on it so that port 0 resolves
once and a restart finds the same port. It imports neither the app nor a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import pickle
import shutil
import socket
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..settings import Settings
from ..sources.run import remove_stale_dirs
from .channel import FD_ENV, RELOAD, REOPEN, frame, read_frame
from .servers import Server, ServingError, WorkerSpec

__all__ = ["StartupFailed", "Supervisor", "resolve_host", "worker_count"]

_log = logging.getLogger("connectrpc_catalog.serving")
GRACE = 5.0
"""Seconds a stopping worker gives requests in flight."""
_REUSE_PORT = hasattr(socket, "SO_REUSEPORT")
_SCRATCH = "connectrpc-catalog-serving-"
"""The supervisor's folder (Envoy's admin address files): `<prefix><pid>-*` in the temp dir."""


class StartupFailed(Exception):
    """The catalog could not start; the message is for the person who started it."""


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def worker_count(settings: Settings) -> int:
    """`--workers`, or automatically: every core with a shared session store, else 1."""
    if settings.server.workers:
        return settings.server.workers
    return _cores() if settings.sessions.store else 1


def _share(settings: Settings, workers: int) -> Settings:
    """The settings one of `workers` workers gets: with the automatic compile pool (one
    protoc worker per core), its share of the cores, so N workers do not start N x cores."""
    if workers <= 1 or settings.limits.compile_workers:
        return settings
    share = max(1, -(-_cores() // workers))
    return replace(settings, limits=replace(settings.limits, compile_workers=share))


def resolve_host(host: str) -> str:
    """The IP literal to bind for --host (Envoy binds IP addresses only)."""
    bare = host.strip("[]")
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(bare))
    try:
        infos = socket.getaddrinfo(bare, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise StartupFailed(f"cannot listen on {host}: {exc}") from None
    return str(infos[0][4][0])


@dataclass(slots=True)
class _Worker:
    spec: WorkerSpec
    proc: asyncio.subprocess.Process
    writer: asyncio.StreamWriter


class Supervisor:
    """Start, watch, reload and stop the workers of one catalog."""

    def __init__(self, server: Server, settings: Settings, workers: int) -> None:
        if workers > 1 and not _REUSE_PORT:
            raise ServingError(f"--workers {workers}: this platform cannot share a port")
        self.server = server
        self.settings = settings
        self.count = workers
        self.host = resolve_host(settings.host)
        self.port = settings.port
        self.summary: dict[str, int] | None = None
        """The first worker's start-up report: services and start-up sources loaded."""
        self._workers: dict[int, _Worker] = {}
        self._hold: socket.socket | None = None
        self._scratch = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH}{os.getpid()}-"))
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (for tests and logs)."""
        return [w.proc.pid for w in self._workers.values()]

    async def start(self) -> None:
        """Reserve the port and start every worker; StartupFailed (all stopped) if one fails."""
        # the folders of supervisors that were killed
        await asyncio.to_thread(remove_stale_dirs, Path(tempfile.gettempdir()), _SCRATCH)
        self.port = self._reserve()
        results = await asyncio.gather(
            *(self._spawn(i) for i in range(self.count)), return_exceptions=True
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is None:
            try:
                await self._until_listening()
            except StartupFailed as exc:
                failure = exc
        if failure is not None:
            await self.stop()
            if isinstance(failure, StartupFailed):
                raise failure
            raise StartupFailed(f"a worker did not start: {failure}") from failure

    def _reserve(self) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:  # in use by anyone?
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((self.host, self.port))
                port = int(probe.getsockname()[1])
            if _REUSE_PORT:
                hold = socket.socket(family, socket.SOCK_STREAM)
                hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                hold.bind((self.host, port))  # bound, never listening: gets no connection
                self._hold = hold
        except OSError as exc:
            where = f"{self.settings.host}:{self.port}"
            raise StartupFailed(f"cannot listen on {where}: {exc}") from None
        return port

    async def _spawn(self, index: int) -> None:
        scratch = self._scratch / str(index)
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        spec = WorkerSpec(
            host=self.host,
            port=self.port,
            loop=self.settings.server.loop,
            log_level=self.settings.log_level,
            log_format=self.settings.server.log_format,
            scratch=scratch,
        )
        command = self.server.command(spec)
        ours, theirs = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                *command.argv,
                env={**os.environ, **command.env, FD_ENV: str(theirs.fileno())},
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # Ctrl+C reaches the supervisor, which stops them
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        writer.write(frame(pickle.dumps(_share(self.settings, self.count))))
        worker = _Worker(spec, proc, writer)
        old = self._workers.get(index)
        if old is not None:  # the channel of the worker this one replaces
            old.writer.close()
        self._workers[index] = worker
        answer = await self._answer(worker, reader)
        if "failed" in answer:
            await proc.wait()
            raise StartupFailed(str(answer["failed"]))
        ready = answer.get("ready")
        if self.summary is None and isinstance(ready, dict):
            self.summary = {str(k): int(v) for k, v in ready.items()}
        _log.debug("worker %d (pid %d) on %s is ready", index, proc.pid, self.server.name)

    async def _answer(self, worker: _Worker, reader: asyncio.StreamReader) -> dict[str, object]:
        """The worker's start-up answer, or a failure if it exits without one."""
        read = asyncio.ensure_future(read_frame(reader))
        exited = asyncio.ensure_future(worker.proc.wait())
        await asyncio.wait({read, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not read.done():  # an answer written just before the exit is still on its way
            await asyncio.wait({read}, timeout=1.0)
        exited.cancel()
        answer: object = None
        if read.done() and read.exception() is None:
            with contextlib.suppress(ValueError):
                answer = json.loads(read.result())
        else:
            read.cancel()
        if not isinstance(answer, dict):
            code = await worker.proc.wait()
            return {"failed": f"the {self.server.name} worker exited ({code}) while starting"}
        return answer

    async def _until_listening(self) -> None:
        """Ready workers open their listeners (Envoy just after the lifespan): wait for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30.0
        while loop.time() < deadline:
            for worker in self._workers.values():
                if worker.proc.returncode is not None:
                    raise StartupFailed(
                        f"the {self.server.name} worker exited with code "
                        f"{worker.proc.returncode} while starting"
                    )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                return
            await asyncio.sleep(0.02)
        raise StartupFailed(f"cannot listen on {self.settings.host}:{self.port}: no worker answers")

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the workers running until `stop` is set, then stop them all gracefully."""
        watchers = [asyncio.create_task(self._watch(i)) for i in list(self._workers)]
        try:
            await stop.wait()
        finally:
            for watcher in watchers:
                watcher.cancel()
            await self.stop()

    async def _watch(self, index: int) -> None:
        delay = 0.5
        loop = asyncio.get_running_loop()
        while not self._stopping:
            worker = self._workers[index]
            started = loop.time()
            code = await worker.proc.wait()
            if self._stopping:
                return
            _log.warning(
                "worker %d (pid %d) exited with code %s; starting a new one",
                index,
                worker.proc.pid,
                code,
            )
            delay = 0.5 if loop.time() - started > 30 else min(delay * 2, 30.0)
            while not self._stopping:
                await asyncio.sleep(delay)
                try:
                    await self._spawn(index)
                    break
                except StartupFailed as exc:
                    _log.error("worker %d did not start again: %s", index, exc)
                    delay = min(delay * 2, 30.0)

    def reload(self) -> None:
        """SIGHUP: every worker reopens its audit log; one reloads the start-up sources.
        Several workers share a session store, which announces that reload to every
        process of the catalog (these workers and other replicas alike)."""
        for n, worker in enumerate(w for w in self._workers.values() if w.proc.returncode is None):
            with contextlib.suppress(OSError, RuntimeError):
                worker.writer.write(frame(RELOAD if n == 0 else REOPEN))

    async def stop(self) -> None:
        """Stop every worker gracefully (requests in flight finish, up to GRACE seconds)."""
        self._stopping = True
        workers = [w for w in self._workers.values() if w.proc.returncode is None]
        await asyncio.gather(*(self.server.stop(w.proc, w.spec, GRACE) for w in workers))
        for worker in self._workers.values():
            worker.writer.close()
        if self._hold is not None:
            self._hold.close()
            self._hold = None
        shutil.rmtree(self._scratch, ignore_errors=True)
