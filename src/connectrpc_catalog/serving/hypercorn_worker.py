"""One hypercorn worker: `python -m connectrpc_catalog.serving.hypercorn_worker HOST PORT
LOOP LOG_LEVEL`, started by the supervisor with its channel (see serving/channel.py).

It listens before the app's lifespan runs (connections wait in the backlog while the base
loads), on a SO_REUSEPORT socket where the platform has it, so workers share the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from .worker import app

__all__ = ["listen", "main"]


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port that other workers may share."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def _serve(sock: socket.socket, log_level: str) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.keep_alive_max_requests = 1 << 62  # hypercorn's default of 1,000 breaks gRPC clients
    config.loglevel = "WARNING" if log_level == "info" else log_level.upper()
    config.accesslog = None
    # hypercorn's own lines go through our handler: one format (time, level) for all.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.errorlog.setLevel(config.loglevel)  # its start-up chatter only at debug
    config.graceful_timeout = 5.0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(AttributeError):  # reloads come over the channel
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
    try:
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        with contextlib.suppress(OSError):  # hypercorn may have closed it already
            sock.close()


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (faster I/O for every request), else the standard loop."""
    if loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str]) -> int:
    host, port, loop, log_level = argv
    try:
        sock = listen(host, int(port))
    except OSError as exc:
        print(f"connectrpc-catalog: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        runner.run(_serve(sock, log_level))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
