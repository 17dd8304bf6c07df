"""Running real catalog servers for tests: in-process (internals reachable) or as the CLI.

CATALOG_TEST_SERVER=pyvoy|hypercorn puts them on one server stack: the CLI ones get
`--server` (unset: the CLI's default, `auto`); `run_catalog` serves a plain `AppConfig`
through the supervisor and a pyvoy worker, where a test that reaches into the app
(`.app`, `.call`) is skipped (the app lives in the Envoy process). Unset, `run_catalog`
serves in-process with hypercorn, internals reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from connectrpc_catalog.app import App, AppConfig, create_app

TEST_SERVER = os.environ.get("CATALOG_TEST_SERVER", "")
"""The server stack the test servers use: "", "pyvoy" or "hypercorn"."""


@dataclass
class RunningCatalog:
    """A catalog served by hypercorn on its own event loop in a background thread."""

    app: App
    url: str
    loop: asyncio.AbstractEventLoop

    def call(self, coro: object) -> object:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]


@contextlib.contextmanager
def run_catalog(
    config: AppConfig | None = None, app: App | None = None, port: int = 0
) -> Iterator[RunningCatalog]:
    """Serve an App on 127.0.0.1 (a free port unless `port`) for the duration of the block."""
    if TEST_SERVER == "pyvoy" and app is None and _plain(config or AppConfig()):
        with _run_supervised(config or AppConfig(), port) as running:
            yield running  # type: ignore[misc]
        return
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    app = app or create_app(config or AppConfig())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    cfg = Config()
    cfg.bind = [f"fd://{sock.fileno()}"]
    cfg.keep_alive_max_requests = 1 << 62
    cfg.loglevel = "WARNING"
    cfg.graceful_timeout = 1.0
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        ready.set()
        await serve(app, cfg, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port}"
    _wait_listening(port)
    try:
        yield RunningCatalog(app=app, url=url, loop=loop)
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        with contextlib.suppress(OSError):
            sock.close()
        loop.close()


def _plain(config: AppConfig) -> bool:
    """Whether the config can be handed to another process (no clock, no extra routes)."""
    return config.clock is time.time and not config.extra_routes


class SupervisedCatalog:
    """A catalog served by a worker process: only its URL is reachable."""

    def __init__(self, url: str, pids: list[int]) -> None:
        self.url = url
        self.pids = pids

    @property
    def app(self) -> Any:
        pytest.skip("reaches into the app, which runs in the pyvoy worker's process")

    def call(self, coro: object) -> object:
        if asyncio.iscoroutine(coro):
            coro.close()
        pytest.skip("runs code on the app's loop, which is in the pyvoy worker's process")


@contextlib.contextmanager
def _run_supervised(config: AppConfig, port: int) -> Iterator[SupervisedCatalog]:
    """Serve `config` through the CLI's supervisor with one worker on TEST_SERVER."""
    from connectrpc_catalog.serving import Supervisor, choose

    settings = config.settings()
    settings = replace(settings, server=replace(settings.server, port=port))
    loop = asyncio.new_event_loop()
    supervisor = Supervisor(choose(TEST_SERVER), settings, 1)
    stop = asyncio.Event()
    started = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        try:
            await supervisor.start()
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            started.set()
        await supervisor.run(stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(120)
    if failure:
        raise RuntimeError(f"catalog did not start: {failure[0]}")
    try:
        yield SupervisedCatalog(f"http://127.0.0.1:{supervisor.port}", supervisor.pids)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def _wait_listening(port: int) -> None:
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        threading.Event().wait(0.025)
    raise RuntimeError(f"catalog did not start listening on port {port}")


@contextlib.contextmanager
def run_cli(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start `python -m connectrpc_catalog --port 0 ARGS` and yield (url, process)."""
    chosen = {"CONNECTRPC_CATALOG_SERVER": TEST_SERVER} if TEST_SERVER else {}
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectrpc_catalog", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **chosen, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        seen = []
        match = None
        while match is None:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = re.search(r"listening on (http://\S+)", line)
        if not match:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"catalog CLI did not start: {''.join(seen)!r} {err}")
        yield match.group(1), proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
