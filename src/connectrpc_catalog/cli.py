"""The `connectrpc-catalog` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence

from .app import App, AppConfig, create_app

__all__ = ["main", "parse_duration"]

ENV_PREFIX = "CONNECTRPC_CATALOG_"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_log = logging.getLogger("connectrpc_catalog")


def parse_duration(text: str) -> float:
    """Seconds from "90s", "30m", "2h", "1.5h", "500ms" or a bare number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number with a unit, e.g. 90s, 30m, 2h"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be greater than zero")
    return seconds


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return port


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"), default)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every flag's default can come from CONNECTRPC_CATALOG_<NAME>."""
    p = argparse.ArgumentParser(
        prog="connectrpc-catalog",
        description="A proto-native API explorer for Connect, gRPC and gRPC-Web services.",
        epilog="Every flag can also be set with an environment variable "
        "CONNECTRPC_CATALOG_<FLAG>, e.g. CONNECTRPC_CATALOG_PORT=9090.",
    )
    p.add_argument("--host", default=_env("host", "127.0.0.1"), help="address to listen on")
    p.add_argument("--port", type=_port, default=_env("port", "8080"), help="port (0 = any)")
    p.add_argument(
        "--session-ttl",
        type=parse_duration,
        default=_env("session-ttl", "1h"),
        help="idle time after which a session expires, e.g. 90s, 30m, 2h (default 1h)",
    )
    p.add_argument(
        "--log-level",
        default=_env("log-level", "info"),
        choices=["debug", "info", "warning", "error"],
        type=str.lower,
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        help="browser origin allowed to call the API (repeatable; default: any origin)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, start the server and block until Ctrl+C or SIGTERM."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    origins = args.cors_origin or [o for o in _env("cors-origin", "*").split(",") if o]
    app = create_app(AppConfig(session_ttl=args.session_ttl, cors_origins=origins))
    try:
        return asyncio.run(serve(app, args.host, args.port, args.log_level))
    except KeyboardInterrupt:
        return 0


async def serve(app: App, host: str, port: int, log_level: str = "info") -> int:
    """Serve HTTP/1.1 and HTTP/2 cleartext on one port until a stop signal."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.keep_alive_max_requests = 1 << 62  # hypercorn's default of 1,000 breaks gRPC clients
    config.loglevel = "WARNING" if log_level == "info" else log_level.upper()
    config.accesslog = None
    config.graceful_timeout = 5.0

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    try:
        sockets = config.create_sockets()
    except OSError as exc:
        print(f"connectrpc-catalog: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    addr = sockets.insecure_sockets[0].getsockname()
    shown = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    print(f"connectrpc-catalog listening on http://{shown}:{addr[1]}", flush=True)
    config.bind = [f"fd://{s.fileno()}" for s in sockets.insecure_sockets]
    try:
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        for s in sockets.insecure_sockets:
            with contextlib.suppress(OSError):  # hypercorn may have closed it already
                s.close()
    print("connectrpc-catalog stopped", flush=True)
    return 0
