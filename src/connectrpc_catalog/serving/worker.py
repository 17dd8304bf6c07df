"""The app a worker process serves: `app` here, imported by name by any server.

Its lifespan owns the process's start-up: it reads the settings from the supervisor's
channel, builds the catalog `App`, loads the base, reports ready (or what failed), then
obeys the channel (`reload`, as SIGHUP used to) until the server shuts it down. When the
channel closes — the supervisor is gone — the worker stops itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import signal
import socket
import sys
from typing import Any

from ..app import App, create_app
from ..settings import Settings
from ..startup import BaseLoadError
from .channel import FD_ENV, RELOAD, REOPEN, ChannelClosed, frame, read_frame
from .logs import setup_logging

__all__ = ["WorkerApp", "app", "reload"]

_log = logging.getLogger("connectrpc_catalog")
Scope = dict[str, Any]
Message = dict[str, Any]


class WorkerApp:
    """ASGI: the catalog `App`, built in this process by the lifespan."""

    def __init__(self) -> None:
        self.app: App | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._channel: asyncio.StreamWriter | None = None
        """Kept: a writer that is collected closes the channel."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.app is None:  # servers start the lifespan first; this is a guard only
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"starting"})
            return
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.app is not None:
                    await self.app.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        sock = socket.socket(fileno=int(os.environ[FD_ENV]))
        reader, writer = await asyncio.open_connection(sock=sock)
        self._channel = writer
        settings: Settings = pickle.loads(await read_frame(reader))  # from our own parent
        setup_logging(settings)
        asyncio.get_running_loop().set_exception_handler(_quiet_pyvoy)
        answer: dict[str, object]
        try:
            self.app = create_app(settings)
            await self.app.startup()
            answer = {"ready": await _load_base(self.app, settings)}
        except _Failed as exc:
            answer = {"failed": str(exc)}
        except Exception as exc:  # e.g. the session store or the saved database does not answer
            _log.debug("start-up failed", exc_info=True)
            answer = {"failed": f"cannot start: {exc}"}
        writer.write(frame(json.dumps(answer).encode()))
        await writer.drain()
        if "failed" in answer:
            if self.app is not None:
                with contextlib.suppress(Exception):  # half started: close what it can
                    await self.app.shutdown()
            sys.stderr.flush()
            os._exit(1)  # the supervisor reports it; the server has nothing to serve
        task = asyncio.create_task(self._obey(reader, self.app))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _obey(self, reader: asyncio.StreamReader, app: App | None) -> None:
        try:
            while True:
                command = await read_frame(reader)
                if app is None:
                    continue
                if command == RELOAD:
                    await reload(app)
                elif command == REOPEN and app.audit is not None:
                    app.audit.reopen()
        except ChannelClosed:
            _log.warning("the supervisor is gone; this worker (pid %d) stops", os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)  # the server's own graceful shutdown


def _quiet_pyvoy(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """pyvoy 1.3 completes the future of a `receive()` that its caller had already
    cancelled (a request's disconnect watcher): asyncio logs InvalidStateError with no
    frame of ours. Everything else goes to the default handler."""
    exc = context.get("exception")
    if isinstance(exc, asyncio.InvalidStateError) and "_pyvoy" in repr(context.get("handle")):
        _log.debug("pyvoy completed a cancelled receive()")
        return
    loop.default_exception_handler(context)


class _Failed(Exception):
    """What the supervisor prints after `connectrpc-catalog: `."""


async def _load_base(app: App, settings: Settings) -> dict[str, int] | None:
    if not settings.base.sources:
        return None
    try:
        loaded = await app.reload_base()
    except BaseLoadError as exc:
        raise _Failed(
            f"a start-up source failed to load:\n{exc}\n(use --keep-going to start without it)"
        ) from None
    return {
        "services": len(loaded.schema.service_names),
        "sources": len(settings.base.sources) - len(loaded.skipped),
    }


async def reload(app: App) -> None:
    """SIGHUP: reopen the audit log; reload the start-up sources, keeping the old base if
    that fails."""
    if app.audit is not None:
        app.audit.reopen()
    try:
        loaded = await app.reload_base()
    except BaseLoadError as exc:
        _log.error("reload failed; the previous base stays in place:\n%s", exc)
        return
    _log.info("reloaded the base: %d services", len(loaded.schema.service_names))


if sys.version_info < (3, 12):  # pyvoy 1.3 passes 3.12's timeout (--loop asyncio)
    _shutdown_executor = asyncio.BaseEventLoop.shutdown_default_executor

    async def _shutdown_default_executor(
        self: asyncio.BaseEventLoop, timeout: float | None = None  # noqa: ASYNC109
    ) -> None:
        await _shutdown_executor(self)

    asyncio.BaseEventLoop.shutdown_default_executor = _shutdown_default_executor  # type: ignore[method-assign]

app = WorkerApp()
"""What the servers import: `connectrpc_catalog.serving.worker:app`."""
