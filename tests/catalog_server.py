"""Running real catalog servers for tests: in-process (internals reachable) or as the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from connectrpc_catalog.app import App, AppConfig, create_app


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectrpc_catalog", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
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
